"""TLS on the RPC port (docs/rpc.md "TLS"): a 3-node cluster whose RPC
ports speak TLS only (certificates from scripts/make-test-certs), reached by
purserctl, the Python client and purser-gateway.  Plain TCP to a TLS port,
a CA that did not sign the node's certificate and a wrong hello secret are
all refused, and the node keeps serving."""
import importlib.util
import json
import os
import socket
import ssl
import struct
import sys
import time

import msgpack
import pytest

import purser_rpc as pr
from conftest import PURSERCTL, PURSERD, SECRETS, Harness
from purser_rpc import Client, RpcError

HERE = os.path.dirname(os.path.abspath(__file__))
GATEWAY_DIR = os.path.join(os.path.dirname(HERE), "gateway")


@pytest.fixture
def tls3():
    if not os.path.exists(PURSERD):
        pytest.fail(f"{PURSERD} is not built")
    h = Harness(tls=True)
    try:
        h.start_cluster(3)
        yield h
    finally:
        h.close()


def ctl(h, *args, env=None, timeout=60):
    """purserctl with the cluster and auth in the environment and nothing
    about TLS unless the caller says (flags or `env`)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("PURSER_TLS_")}
    e["PURSER_CLUSTER"] = ",".join(h.addrs())
    e["PURSER_AUTH"] = h.auth_path
    e.update(env or {})
    import subprocess
    return subprocess.run([PURSERCTL, *args], env=e, capture_output=True, text=True,
                          timeout=timeout)


def ok(p):
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr}"
    return p.stdout


def assert_serving(h):
    """Every node still answers a TLS client."""
    for n in h.nodes:
        try:
            st = n.status()
        except OSError as e:  # say what the node saw (one CI run had a reset here)
            raise AssertionError(f"node {n.id}: {e!r}\n{n.log()[-3000:]}") from e
        assert st["state"] in ("leader", "follower"), st


def test_purserctl_over_tls(tls3):
    h = tls3
    ca = h.tls["ca"]
    out = ok(ctl(h, "--tls-ca", ca, "cluster", "status"))
    assert "leader" in out
    ok(ctl(h, "--tls-ca", ca, "account", "create", "acme", "--cap", "10"))
    # the environment variable does the same as the flag
    r = json.loads(ok(ctl(h, "--json", "reserve", "acme", "2.5", env={"PURSER_TLS_CA": ca})))
    rid = r["id"]
    ok(ctl(h, "--tls-ca", ca, "commit", str(rid), "1.25"))
    acct = json.loads(ok(ctl(h, "--tls-ca", ca, "--json", "account", "show", "acme")))
    assert acct["spent_micros"] == 1_250_000 and acct["reserved_micros"] == 0
    # a client certificate is verified against the node's --tls-ca, and accepted
    ok(ctl(h, "--tls-ca", ca, "--tls-cert", h.tls["client_cert"], "--tls-key",
           h.tls["client_key"], "account", "show", "acme"))
    # the Python client over TLS sees the same ledger
    c = h.cluster("reader")
    assert c.read("account", "acme")["spent_micros"] == 1_250_000
    c.close()


def test_plain_tcp_to_a_tls_port_is_refused_and_the_node_keeps_serving(tls3):
    h = tls3
    n = h.nodes[0]
    host, port = n.rpc.split(":")
    # A plain client waits for a challenge that never comes in clear; when it
    # sends a frame, the node sees no TLS record and hangs up.
    s = socket.create_connection((host, int(port)), timeout=5)
    body = msgpack.packb([0, 1, "hello", [1, "admin", None]])
    s.sendall(struct.pack(">I", len(body)) + body)
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    s.close()
    assert b"challenge" not in got, got
    assert "dropped: TLS handshake failed" in n.log()
    # purserctl without a CA: exit 3 naming the likely cause
    p = ctl(h, "--timeout", "3s", "cluster", "status")
    assert p.returncode == 3, p
    assert "speaks TLS" in p.stderr, p.stderr
    assert_serving(h)
    ok(ctl(h, "--tls-ca", h.tls["ca"], "account", "create", "still-serving"))


def test_wrong_ca_fails_with_exit_3_and_a_clear_message(tls3):
    h = tls3
    p = ctl(h, "--tls-ca", h.tls["other_ca"], "--timeout", "3s", "account", "list")
    assert p.returncode == 3, p
    assert "cluster unreachable" in p.stderr and "certificate verify failed" in p.stderr, \
        p.stderr
    # the Python client agrees: the node's certificate is not from that CA
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(h.nodes[0].rpc, "reader", SECRETS["reader"],
               tls=pr.tls_context(h.tls["other_ca"]))
    assert_serving(h)


def test_bad_tls_files_are_usage_errors(tls3):
    h = tls3
    p = ctl(h, "--tls-ca", "/nonexistent/ca.pem", "cluster", "status")
    assert p.returncode == 2 and "--tls-ca /nonexistent/ca.pem" in p.stderr, p
    p = ctl(h, "--tls-cert", h.tls["client_cert"], "cluster", "status")
    assert p.returncode == 2 and "need --tls-ca" in p.stderr, p


def test_hello_proof_is_still_required_over_tls(tls3):
    h = tls3
    n = h.nodes[0]
    with pytest.raises(RpcError) as e:
        Client(n.rpc, "admin", "not-the-secret", tls=h.tls_ctx)
    assert e.value.code == "UNAUTHORIZED"
    with pytest.raises(RpcError) as e:
        Client(n.rpc, "admin", None, tls=h.tls_ctx)
    assert e.value.code == "UNAUTHORIZED"
    bad = os.path.join(h.dir, "auth-bad")
    with open(bad, "w") as f:
        f.write("admin wrong-secret\n")
    p = ctl(h, "--tls-ca", h.tls["ca"], "--timeout", "3s", "account", "list",
            env={"PURSER_AUTH": bad})
    assert p.returncode == 1 and "refused purserctl's credentials" in p.stderr, p
    assert_serving(h)


def test_required_client_certificates_and_a_join_over_tls():
    h = Harness(tls=True)
    try:
        h.start_cluster(3, extra=["--tls-require-client-cert"])
        ca = h.tls["ca"]
        p = ctl(h, "--tls-ca", ca, "--timeout", "3s", "cluster", "status")
        assert p.returncode == 3 and "certificate required" in p.stderr, p
        with_cert = ["--tls-ca", ca, "--tls-cert", h.tls["client_cert"], "--tls-key",
                     h.tls["client_key"]]
        ok(ctl(h, *with_cert, "account", "create", "acme"))
        # a joining node shows its own certificate (serverAuth + clientAuth)
        lead = h.leader()
        n4 = h.add_node()
        n4.start(join=lead.rpc, extra=["--tls-require-client-cert"])
        deadline = time.time() + 30
        while time.time() < deadline:
            out = ok(ctl(h, *with_cert, "--json", "cluster", "members"))
            if any(m["id"] == 4 for m in json.loads(out)["members"]):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("node 4 never joined\n" + n4.log())
    finally:
        h.close()


def _gateway_harness():
    """tests/gateway/conftest.py under its own name (it is "conftest" too)."""
    name = "purser_gateway_harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(GATEWAY_DIR, "conftest.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def test_gateway_over_tls_serves_a_governed_call():
    gh = _gateway_harness()
    h = Harness(tls=True)
    try:
        env = gh.start_env(h)
        assert "(TLS)" in env.gw.log()
        name, key = env.wallet(cap_usd="5")
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 100}
        r = env.call("/v1/chat/completions", body, key=key,
                     headers={"X-Budget-Account": f"{name}/bot"})
        assert r.status == 200, r
        assert len(env.mock.requests()) == 1
        spent = env.account(name)["spent_micros"]
        u = r.json["usage"]
        want = (gh.cost(u["prompt_tokens"], gh.PRICES["gpt-4o-mini"]["input"]) +
                gh.cost(u["completion_tokens"], gh.PRICES["gpt-4o-mini"]["output"]))
        assert spent == want > 0
    finally:
        h.close()
