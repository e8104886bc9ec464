"""Gateways on both sides of a 2/1 partition (issue #6): a gateway that can
reach only the minority node answers governed calls 503 ledger_unavailable
within its client deadline and forwards nothing to the provider, while a
gateway on the majority side keeps serving; after heal both serve, and the
ledger's spend is exactly the cost of the calls that were answered 200.

Raft links go through netproxy.NetProxy; so do the RPC addresses the nodes
advertise (the ones leader hints name), so the minority gateway, given only
the minority node's address, cannot reach a leader by following a hint."""
import importlib.util
import os
import sys
import time

import pytest

import tally
from conftest import FaultCluster, wait_leader

HERE = os.path.dirname(os.path.abspath(__file__))
GATEWAY_DIR = os.path.join(os.path.dirname(HERE), "gateway")

# tests/gateway/conftest.py (mock upstream, gateway process, prices) under
# its own name: this file's conftest is "conftest" too.
if "purser_gateway_harness" in sys.modules:
    gwh = sys.modules["purser_gateway_harness"]
else:
    _spec = importlib.util.spec_from_file_location("purser_gateway_harness",
                                                   os.path.join(GATEWAY_DIR, "conftest.py"))
    gwh = importlib.util.module_from_spec(_spec)
    sys.modules["purser_gateway_harness"] = gwh
    _spec.loader.exec_module(gwh)

CHAT = "/v1/chat/completions"
HTTP_TIMEOUT = 30.0  # far above the gateway's 5 s client deadline: a hang fails the test


def chat_body():
    return {"model": "gpt-4o-mini", "max_tokens": 16,
            "messages": [{"role": "user", "content": "Say hello."}]}


def charged(r):
    """What a 200 cost: the gateway's rule on the usage it reported."""
    u = r.json["usage"]
    price = gwh.PRICES["gpt-4o-mini"]
    return gwh.cost(u["prompt_tokens"], price["input"]) + \
        gwh.cost(u["completion_tokens"], price["output"])


def wait_ready(gw, want, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if gwh.http("GET", gw.url, "/readyz", timeout=2).status == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"{gw.url} /readyz never {want}\n{gw.log()[-2000:]}")


@pytest.fixture
def split_env(harness):
    for path in (gwh.GATEWAY, gwh.MOCK):
        if not os.path.exists(path):
            pytest.fail(f"{path} is not built")
    fc = FaultCluster(harness, rpc_proxy=True)
    try:
        mock = gwh.Mock(harness.dir, harness.pids)
        config = gwh.write_config(harness, mock.url)
        env = gwh.Env(harness, mock, None, config)
        gwh.set_prices(env.ctl)
        yield fc, env
    finally:
        fc.close()


def test_minority_gateway_answers_503_and_forwards_nothing(split_env):
    fc, env = split_env
    h = env.h
    leader = wait_leader(h)
    minority = next(n for n in fc.nodes if n is not leader)
    majority = [n for n in fc.nodes if n is not minority]
    # The minority gateway knows only the minority node (leader hints lead it
    # through the proxy); the majority one knows the majority nodes directly.
    gw_min = gwh.Gateway(h, env.config_path, name="gw-minority", addrs=[minority.rpc])
    gw_maj = gwh.Gateway(h, env.config_path, name="gw-majority",
                         addrs=[n.rpc for n in majority])
    acct, key = env.wallet("100")
    ok = []  # every 200: its cost

    def call(gw):
        t0 = time.monotonic()
        r = env.call(CHAT, chat_body(), key, gw=gw, timeout=HTTP_TIMEOUT)
        elapsed = time.monotonic() - t0
        tally.checked("gateway calls checked")
        if r.status == 200:
            ok.append(charged(r))
        return r, elapsed

    # both serve before the partition (and warm their key caches)
    for gw in (gw_min, gw_maj):
        r, _ = call(gw)
        assert r.status == 200, r
    env.mock.reset()

    fc.proxy.partition([[n.id for n in majority], [minority.id]])
    fc.proxy.block_clients([n.id for n in majority])
    # the majority keeps (or regains) a leader
    wait_leader(h, among=majority, timeout=20)

    waits = []
    for _ in range(3):
        r, elapsed = call(gw_min)
        assert r.status == 503, r
        err = r.json["error"]
        assert (err["type"], err["code"]) == ("ledger_unavailable", "ledger_unavailable"), r
        waits.append(elapsed)
    # a key the minority gateway never saw: refused just the same
    _, cold_key = env.wallet("100")
    r = env.call(CHAT, chat_body(), cold_key, gw=gw_min, timeout=HTTP_TIMEOUT)
    tally.checked("gateway calls checked")
    assert r.status == 503 and r.json["error"]["code"] == "ledger_unavailable", r
    assert env.mock.requests() == [], "the minority gateway forwarded a call"
    wait_ready(gw_min, 503)

    served = 0
    for _ in range(5):
        r, _ = call(gw_maj)
        assert r.status == 200, r
        served += 1
    assert len(env.mock.requests()) == served
    print(f"minority gateway 503 after {', '.join(f'{w:.2f}' for w in waits)} s")

    fc.proxy.heal()
    wait_ready(gw_min, 200)
    for gw in (gw_min, gw_maj, gw_min):
        r, _ = call(gw)
        assert r.status == 200, r
    assert len(env.mock.requests()) == served + 3

    # every reservation settled: the spend is exactly what the 200s cost
    deadline = time.time() + 20
    while True:
        a = env.account(acct)
        if a["reserved_micros"] == 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert a["reserved_micros"] == 0, a
    assert a["spent_micros"] == sum(ok), (a, ok)
    assert len(ok) == 2 + served + 3
    for gw in (gw_min, gw_maj):
        assert gw.proc.poll() is None, gw.log()[-2000:]
        gw.stop()
