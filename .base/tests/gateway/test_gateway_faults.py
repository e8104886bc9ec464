"""purser-gateway against a cluster that changes under it: a global metadata
policy, the whole ledger gone (fail closed), the leader killed under load
(nothing unmetered).  Each test gets a cluster + mock + gateway of its own
(conftest.fresh_env).
"""
import json
import signal
import threading
import time

from conftest import USD, http

CHAT = "/v1/chat/completions"


def chat_body(max_tokens=16):
    return {"model": "gpt-4o-mini", "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "Say hello."}]}


def test_required_metadata_missing_keys_named_400(fresh_env):
    env = fresh_env
    acct, key = env.wallet("10")
    env.ctl("policy", "set", "required-metadata", "team,project_id")
    env.mock.reset()
    r = env.call(CHAT, chat_body(), key)
    assert r.status == 400, r
    assert r.json == {"error": {
        "type": "invalid_request", "code": "invalid_request",
        "message": "X-Budget-Metadata is missing required keys: team, project_id",
        "missing_metadata": ["team", "project_id"]}}
    r = env.call(CHAT, chat_body(), key, {"X-Budget-Metadata": json.dumps({"team": "search"})})
    assert r.status == 400, r
    assert r.json["error"]["message"] == "X-Budget-Metadata is missing required keys: project_id"
    assert r.json["error"]["missing_metadata"] == ["project_id"]
    assert env.mock.requests() == []
    assert env.account(acct)["spent_micros"] == 0
    meta = {"team": "search", "project_id": "p-9", "workflow": "w"}
    r = env.call(CHAT, chat_body(), key, {"X-Budget-Metadata": json.dumps(meta)})
    assert r.status == 200, r
    (p,) = [p for p in env.journal() if p["kind"] == "spend" and p["debit"] == acct]
    assert p["metadata"] == dict(meta, model="gpt-4o-mini")


def test_ledger_gone_is_503_and_nothing_forwarded(fresh_env):
    env = fresh_env
    acct, key = env.wallet("10")
    _, cold_key = env.wallet("10")  # never seen by the gateway: not cached
    # warm the gateway's caches (key, price, policy): only the reserve is left
    assert env.call(CHAT, chat_body(), key).status == 200
    env.mock.reset()
    for n in env.h.nodes:
        n.kill(signal.SIGKILL)
    r = env.call(CHAT, chat_body(), key)
    assert r.status == 503, r
    err = r.json["error"]
    assert (err["type"], err["code"]) == ("ledger_unavailable", "ledger_unavailable")
    assert err["message"]
    r = env.call(CHAT, chat_body(), cold_key)
    assert r.status == 503, r
    assert r.json == {"error": {"type": "ledger_unavailable", "code": "ledger_unavailable",
                                "message": "no ledger quorum answered: the call was not"
                                           " forwarded"}}
    assert env.mock.requests() == []
    deadline = time.time() + 10
    while env.get("/readyz").status != 503:
        assert time.time() < deadline, "/readyz still 200 with no ledger"
        time.sleep(0.1)
    assert env.get("/healthz").status == 200


def test_leader_killed_under_load_nothing_unmetered(fresh_env):
    env = fresh_env
    acct, key = env.wallet("1000")
    env.mock.reset()
    results = []
    lock = threading.Lock()
    stop = threading.Event()
    limit = 950  # the mock remembers the last 1000 requests

    def worker():
        while not stop.is_set():
            with lock:
                if len(results) >= limit:
                    return
            try:
                r = http("POST", env.gw.url, CHAT, body=chat_body(),
                         headers={"Authorization": f"Bearer {key}"}, timeout=30)
            except OSError as e:
                r = e
            with lock:
                results.append(r)
            time.sleep(0.03)  # ~250 calls/s in all: the load spans the failover

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    old = env.h.leader()
    with lock:
        kill_at_n = len(results)
    old.kill(signal.SIGKILL)
    env.h.wait_leader(exclude=old)
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(timeout=60)

    statuses = [r.status if hasattr(r, "status") else repr(r) for r in results]
    assert set(statuses) <= {200, 402, 503}, sorted(set(map(str, statuses)))
    assert 50 < kill_at_n and len(results) > kill_at_n + 100, (kill_at_n, len(results))
    ok = [r for r in results if r.status == 200]
    assert len(ok) > 50, statuses.count(200)
    # every 200 is durably in the journal, at the cost it announced
    deadline = time.time() + 20
    while True:
        a = env.account(acct)
        if a["reserved_micros"] == 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    spends = {p["reservation_id"]: p for p in env.journal()
              if p["kind"] == "spend" and p["debit"] == acct}
    for r in ok:
        cost = int(r.header("x-budget-cost").replace(".", ""))
        p = spends.get(int(r.header("x-budget-reservation")))
        assert p is not None, f"answered 200 but not in the journal: {r}"
        assert p["amount_micros"] == cost
    # none unmetered: every call the provider answered was charged, and only those
    seen = env.mock.requests()
    assert len(seen) == len(ok) == len(spends), (len(seen), len(ok), len(spends))
    assert a["reserved_micros"] == 0
    assert a["spent_micros"] == sum(p["amount_micros"] for p in spends.values())
    assert a["spent_micros"] <= 1000 * USD
