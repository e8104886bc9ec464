"""Failures under load: kill -9 the leader while concurrent clients
reserve and commit on a capped, contended wallet; restart and catch up;
a new empty node catches up by snapshot; membership changes under load."""
import os
import threading
import time
import uuid

import pytest

import purser_rpc as pr
from conftest import checkpoint_hashes
from purser_rpc import RpcError

CAP = 50 * pr.USD
HOLD = 300_000        # 0.30 USD per reservation
ACTUAL = 250_000      # 0.25 USD committed


class Load:
    """Concurrent callers doing keyed reserve -> commit, recording every
    acknowledged answer.  Retries reuse the command bytes (same key)."""

    def __init__(self, h, threads=6, account="acme/team"):
        self.h = h
        self.account = account
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked_reserves = {}   # key -> reservation id
        self.acked_commits = {}    # key -> (transfer id, cost)
        self.refusals = 0
        self.errors = []
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self):
        cl = self.h.cluster()
        cl.timeout = 3.0
        while not self.stop.is_set():
            key = uuid.uuid4().hex
            try:
                r = cl.apply(pr.reserve(self.account, HOLD, ttl_ms=120000,
                                        metadata={"k": key}, key="r-" + key))
                if not r.ok:
                    with self.lock:
                        self.refusals += 1
                    time.sleep(0.01)
                    continue
                with self.lock:
                    self.acked_reserves[key] = r.id
                c = cl.apply(pr.commit(r.id, ACTUAL, key="c-" + key))
                assert c.ok, c
                with self.lock:
                    self.acked_commits[key] = (c.transfer_id, c.amount_micros)
            except AssertionError as e:
                self.errors.append(str(e))
            except Exception as e:  # gave up after retries: outcome unknown
                self.errors.append(repr(e))
        cl.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)


def journal(h):
    cl = h.cluster()
    lt = time.gmtime()
    postings = cl.read("journal", lt.tm_year, lt.tm_mon)["postings"]
    cl.close()
    return postings


def check_ledger(h, load):
    import json
    postings = journal(h)
    spends = [p for p in postings if p["debit"] == load.account]
    total = sum(p["amount_micros"] for p in spends)
    assert total <= CAP, f"spent {total} over the cap {CAP}"
    per_key = {}
    for p in spends:
        k = p["metadata"].get("k")
        per_key[k] = per_key.get(k, 0) + 1
    assert all(v == 1 for v in per_key.values()), "a reservation was committed twice"
    by_id = {p["id"]: p for p in spends}
    for key, (tid, cost) in load.acked_commits.items():
        assert tid in by_id, f"acknowledged commit {tid} ({key}) was lost"
        assert by_id[tid]["amount_micros"] == cost
    cl = h.cluster()
    for key, rid in list(load.acked_reserves.items())[:200]:
        res = cl.read("reservation", rid)
        assert res["metadata"]["k"] == key
    acct = cl.read("account", load.account)
    cl.close()
    assert acct["spent_micros"] + acct["reserved_micros"] <= CAP
    return total


def setup_wallet(h):
    cl = h.cluster()
    assert cl.apply(pr.account_create("acme", cap=CAP, period="month")).ok
    assert cl.apply(pr.account_create("acme/team")).ok
    cl.close()


def test_kill_leader_under_load_loses_nothing(cluster3):
    h = cluster3
    setup_wallet(h)
    with Load(h) as load:
        time.sleep(1.5)
        old = h.leader()
        killed_at = time.time()
        old.kill()
        new = h.wait_leader(timeout=10, exclude=old)
        failover = time.time() - killed_at
        time.sleep(2.0)
    assert new is not old
    assert failover < 8.0, f"no new leader for {failover:.1f}s"
    assert not load.errors, load.errors[:3]
    assert len(load.acked_commits) > 10
    total = check_ledger(h, load)
    assert total == ACTUAL * len({k for k in load.acked_commits}) or total >= ACTUAL * len(load.acked_commits)
    # The killed node comes back and catches up to the same state.
    old.start()
    h.wait_leader()
    index, hashes = checkpoint_hashes(h, h.nodes)
    assert len(set(hashes.values())) == 1, f"state hashes differ at {index}: {hashes}"


def test_wallet_is_never_overspent_under_contention(cluster3):
    h = cluster3
    setup_wallet(h)
    with Load(h, threads=8) as load:
        deadline = time.time() + 30
        while time.time() < deadline:
            acct = h.cluster().read("account", "acme")
            if acct["available_micros"] < HOLD:
                break
            time.sleep(0.2)
    assert load.refusals > 0, "the cap was never reached"
    total = check_ledger(h, load)
    assert CAP - total < HOLD + ACTUAL, "callers stopped long before the cap"


def test_empty_node_joins_and_catches_up_by_snapshot(harness):
    h = harness
    h.start_cluster(3, extra=["--snapshot-threshold", "64"])
    setup_wallet(h)
    cl = h.cluster()
    for i in range(400):
        r = cl.apply(pr.reserve("acme/team", 1000, key=f"k{i}"))
        assert r.ok
        assert cl.apply(pr.commit(r.id, 900)).ok
    lead = h.leader()
    n4 = h.add_node()
    n4.start(join=lead.rpc, extra=["--snapshot-threshold", "64"])
    deadline = time.time() + 30
    while time.time() < deadline:
        st = lead.status()
        if any(m["id"] == 4 and m["role"] == "voter" for m in st["members"]):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("node 4 never became a voter\n" + n4.log())
    index, hashes = checkpoint_hashes(h, h.nodes)
    assert len(hashes) == 4 and len(set(hashes.values())) == 1, hashes
    c4 = n4.client("reader")
    acct = c4.read("account", "acme/team", consistency="stale")
    assert acct["spent_micros"] == 400 * 900
    c4.close()


def test_remove_and_add_member_under_load(cluster3):
    h = cluster3
    setup_wallet(h)
    with Load(h, threads=4) as load:
        time.sleep(1.0)
        lead = h.leader()
        victim = next(n for n in h.nodes if n is not lead)
        cl = h.cluster()
        assert cl.call("remove", [victim.id])["id"] == victim.id
        victim.kill()
        time.sleep(1.0)
        n4 = h.add_node()
        n4.start(join=h.leader().rpc)
        deadline = time.time() + 30
        while time.time() < deadline:
            st = h.leader().status()
            if any(m["id"] == n4.id and m["role"] == "voter" for m in st["members"]):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the new node never became a voter")
        time.sleep(1.0)
        cl.close()
    assert not load.errors, load.errors[:3]
    check_ledger(h, load)
    live = [n for n in h.nodes if n.alive()]
    index, hashes = checkpoint_hashes(h, live)
    assert len(set(hashes.values())) == 1


def test_backup_then_restore_round_trip(cluster3):
    h = cluster3
    setup_wallet(h)
    cl = h.cluster()
    r = cl.apply(pr.reserve("acme/team", 2 * pr.USD))
    assert cl.apply(pr.commit(r.id, pr.USD)).ok
    image = b""
    chunk = cl.call("backup", [0])
    image += chunk["data"]
    while len(image) < chunk["total_bytes"]:
        chunk = cl.call("backup", [len(image)])
        image += chunk["data"]
    # Change the state, then restore the image: the change is gone.
    assert cl.apply(pr.account_create("after-backup")).ok
    total = len(image)
    off = 0
    while off < total:
        part = image[off:off + (1 << 20)]
        res = cl.call("restore", [off, total, part])
        off += len(part)
    assert "index" in res
    with pytest.raises(RpcError) as e:
        cl.read("account", "after-backup")
    assert e.value.code == "NOT_FOUND"
    assert cl.read("account", "acme/team")["spent_micros"] == pr.USD
    index, hashes = checkpoint_hashes(h, h.nodes)
    assert len(set(hashes.values())) == 1
    cl.close()


def test_restore_of_garbage_is_refused_and_changes_nothing(cluster3):
    h = cluster3
    setup_wallet(h)
    cl = h.cluster()
    junk = b"SQLite format 3\x00" + b"\x00" * 1000
    with pytest.raises(RpcError) as e:
        cl.call("restore", [0, len(junk), junk])
    assert e.value.code == "BAD_REQUEST"
    assert cl.read("account", "acme")["cap_micros"] == CAP
    cl.close()


def test_sigterm_on_leader_hands_over_quickly(cluster3):
    h = cluster3
    lead = h.leader()
    t0 = time.time()
    lead.stop()
    new = h.wait_leader(timeout=10, exclude=lead)
    assert new is not lead
    assert time.time() - t0 < 5.0


def snapshot_indexes(node):
    """The last indexes of the snapshots raft_uv kept in the node's data dir
    (files snapshot-TERM-INDEX-TIMESTAMP)."""
    out = set()
    for name in os.listdir(node.data):
        parts = name.split("-")
        if len(parts) == 4 and parts[0] == "snapshot" and not name.endswith(".meta"):
            out.add(int(parts[2]))
    return out


def test_replicas_snapshot_at_staggered_indexes(harness):
    """Node k snapshots at indexes = ((k - 1) mod 3) * T/3 (mod T), so the
    three never pay a snapshot's stall at the same entry."""
    h = harness
    t = 90
    h.start_cluster(3, extra=["--snapshot-threshold", str(t)])
    setup_wallet(h)
    cl = h.cluster()
    for i in range(450):  # one entry each: several snapshots per node
        assert cl.apply(pr.reserve("acme/team", 1000, key=f"s{i}")).ok
    cl.close()
    phases = {}
    deadline = time.time() + 20
    while time.time() < deadline:
        phases = {n.id: snapshot_indexes(n) for n in h.nodes}
        if all(len(s) >= 2 for s in phases.values()):
            break
        time.sleep(0.2)
    for n in h.nodes:
        idx = phases[n.id]
        assert len(idx) >= 2, (n.id, idx)
        want = ((n.id - 1) % 3) * (t // 3)
        # On the phase, or a few entries past it when one apply step
        # committed several entries at once.
        assert all((i - want) % t < 5 for i in idx), (n.id, sorted(idx), want)
    latest = [sorted(phases[n.id])[-1] for n in h.nodes]
    assert len({(i % t) // (t // 3) for i in latest}) == 3, latest
