"""purserd's RPC surface with real processes: handshake and roles, writes
through the leader, linearizable and stale reads, malformed input."""
import struct
import time

import msgpack
import pytest

import purser_rpc as pr
from conftest import SECRETS
from purser_rpc import Client, RpcError


def test_single_node_bootstraps_and_applies(harness):
    n = harness.add_node()
    n.start(bootstrap=n.spec)
    harness.wait_leader()
    c = n.client()
    assert c.apply(pr.account_create("acme", cap=10 * pr.USD)).ok
    r = c.apply(pr.reserve("acme", 4 * pr.USD))
    assert r.ok and r.amount_micros == 4 * pr.USD
    acct = c.read("account", "acme")
    assert acct["reserved_micros"] == 4 * pr.USD
    assert acct["available_micros"] == 6 * pr.USD
    c.close()


def test_wrong_proof_is_refused_and_connection_closed(cluster3):
    n = cluster3.nodes[0]
    with pytest.raises(RpcError) as e:
        Client(n.rpc, "admin", "not-the-secret")
    assert e.value.code == "UNAUTHORIZED"


def test_unknown_role_is_refused(cluster3):
    with pytest.raises(RpcError) as e:
        Client(cluster3.nodes[0].rpc, "root", "x")
    assert e.value.code == "UNAUTHORIZED"


def test_request_before_hello_is_refused(cluster3):
    s = pr.open_socket(cluster3.nodes[0].rpc, timeout=5)
    pr.read_frame(s)  # the challenge
    body = msgpack.packb([0, 7, "status", []])
    s.sendall(struct.pack(">I", len(body)) + body)
    msg = pr.read_frame(s)
    assert msg[0] == 1 and msg[1] == 7 and msg[2][0] == "UNAUTHORIZED"
    s.close()


def test_reader_may_not_apply(cluster3):
    lead = cluster3.leader()
    c = lead.client("reader")
    with pytest.raises(RpcError) as e:
        c.apply(pr.account_create("acme"))
    assert e.value.code == "FORBIDDEN"
    c.close()


def test_gateway_may_reserve_but_not_create_accounts(cluster3):
    lead = cluster3.leader()
    admin = lead.client()
    assert admin.apply(pr.account_create("acme", cap=5 * pr.USD)).ok
    gw = lead.client("gateway")
    with pytest.raises(RpcError) as e:
        gw.apply(pr.account_create("other"))
    assert e.value.code == "FORBIDDEN"
    r = gw.apply(pr.reserve("acme", pr.USD))
    assert r.ok
    admin.close()
    gw.close()


def test_follower_answers_not_leader_with_the_leaders_address(cluster3):
    lead = cluster3.leader()
    follower = next(n for n in cluster3.nodes if n is not lead)
    c = follower.client()
    with pytest.raises(RpcError) as e:
        c.apply(pr.account_create("acme"))
    assert e.value.code == "NOT_LEADER"
    assert e.value.detail == [lead.id, lead.rpc]
    c.close()


def test_write_is_visible_on_every_node_after_replication(cluster3):
    cl = cluster3.cluster()
    assert cl.apply(pr.account_create("acme", cap=100 * pr.USD)).ok
    r = cl.apply(pr.reserve("acme", 3 * pr.USD))
    c = cl.apply(pr.commit(r.id, 2 * pr.USD))
    assert c.ok and c.amount_micros == 2 * pr.USD
    index = cluster3.leader().status()["applied_index"]
    cluster3.wait_applied(cluster3.nodes, index)
    for n in cluster3.nodes:
        cli = n.client("reader")
        a = cli.read("account", "acme", consistency="stale")
        assert a["spent_micros"] == 2 * pr.USD and a["reserved_micros"] == 0
        cli.close()


def test_linear_read_on_a_follower_is_redirected(cluster3):
    lead = cluster3.leader()
    follower = next(n for n in cluster3.nodes if n is not lead)
    c = follower.client("reader")
    with pytest.raises(RpcError) as e:
        c.read("account", "acme")
    assert e.value.code == "NOT_LEADER"
    c.close()


def test_read_of_unknown_account_is_not_found(cluster3):
    c = cluster3.leader().client("reader")
    with pytest.raises(RpcError) as e:
        c.read("account", "nope")
    assert e.value.code == "NOT_FOUND"
    c.close()


def test_refusal_is_a_result_not_an_error(cluster3):
    cl = cluster3.cluster()
    assert cl.apply(pr.account_create("acme", cap=pr.USD)).ok
    r = cl.apply(pr.reserve("acme", 2 * pr.USD))
    assert r.status_name == "budget_exceeded" and r.name == "acme"


def test_malformed_command_gets_bad_request_and_node_keeps_serving(cluster3):
    c = cluster3.leader().client()
    with pytest.raises(RpcError) as e:
        c.call("apply", [b"\x93\x01\x02"])
    assert e.value.code == "BAD_REQUEST"
    with pytest.raises(RpcError) as e:
        c.call("apply", ["not a bin"])
    assert e.value.code == "BAD_REQUEST"
    with pytest.raises(RpcError) as e:
        c.call("no_such_method", [])
    assert e.value.code == "BAD_REQUEST"
    assert c.apply(pr.account_create("still-alive")).ok
    c.close()


def test_read_with_more_than_65535_params_is_not_shortened(cluster3):
    # method_read rebuilds the params header: a count above 65535 once
    # wrapped (65539 read as 3), so trailing junk was silently ignored.
    cl = cluster3.cluster()
    assert cl.apply(pr.account_create("wide")).ok
    c = cluster3.leader().client("reader")
    assert c.read("account", "wide", consistency="stale")["name"] == "wide"
    with pytest.raises(RpcError) as e:
        c.call("read", ["account", "stale", "wide"] + [None] * 65536)
    assert e.value.code == "BAD_REQUEST"
    c.close()


def test_oversized_frame_closes_only_that_connection(cluster3):
    lead = cluster3.leader()
    bad = lead.client()
    bad.send_raw(struct.pack(">I", 200 << 20))  # announces 200 MiB
    with pytest.raises((ConnectionError, OSError)):
        bad._read()
    good = lead.client()
    assert good.apply(pr.account_create("after-bomb")).ok
    good.close()


def test_garbage_frame_closes_only_that_connection(cluster3):
    lead = cluster3.leader()
    bad = lead.client()
    bad.send_raw(struct.pack(">I", 5) + b"\xdd\xff\xff\xff\xff")  # array count bomb
    with pytest.raises((ConnectionError, OSError)):
        bad._read()
    good = lead.client()
    assert good.status()["state"] == "leader"
    good.close()


def test_pipelined_requests_are_all_answered(cluster3):
    c = cluster3.leader().client()
    assert c.apply(pr.account_create("acme")).ok
    ids = [c.send("apply", [pr.reserve("acme", 1000)]) for _ in range(500)]
    got = {}
    while len(got) < len(ids):
        msgid, err, result = c.recv()
        assert err is None
        got[msgid] = pr.Result(msgpack.unpackb(result, raw=False))
    assert all(r.ok for r in got.values())
    assert len({r.id for r in got.values()}) == 500
    c.close()


def test_expire_runs_on_the_leader_every_second(cluster3):
    cl = cluster3.cluster()
    assert cl.apply(pr.account_create("acme", cap=pr.USD)).ok
    r = cl.apply(pr.reserve("acme", pr.USD, ttl_ms=200))
    assert r.ok
    deadline = time.time() + 10
    while time.time() < deadline:
        if cl.read("account", "acme")["reserved_micros"] == 0:
            break
        time.sleep(0.2)
    assert cl.read("reservation", r.id)["status"] == "expired"
