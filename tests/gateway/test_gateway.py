"""purser-gateway end to end: a real 3-node cluster, the C mock provider and
the gateway (conftest.py).  One behaviour per test; the module shares one
cluster + gateway, every test works on accounts of its own.

Token counts are the mock's deterministic rule (prompt = body bytes / 4,
output = min(max_tokens, 16) unless X-Mock-Output-Tokens), prices are set
in conftest.PRICES, costs follow the gateway's rule (ceil per part).
"""
import json
import socket
from http import client as httpclient
import threading
import time

from conftest import PRICES, UNPRICED_MODEL, UPSTREAM_TIMEOUT_MS, USD, Gateway, cost, http, \
    micros_per_mtok, open_stream, read_events

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
MESSAGES = "/v1/messages"
BUDGET = "/v1/budget"


def usd(micros):
    return f"{micros // USD}.{micros % USD:06d}"


def dumps(doc):
    return json.dumps(doc).encode()


def worst_case(model, body_len, max_tokens):
    """The gateway's reservation: every body byte a token at the dearest
    input rate, plus the output bound at the output rate."""
    p = PRICES[model]
    dearest = max((p.get(k, "0") for k in ("input", "cached", "cache-write")),
                  key=micros_per_mtok)
    return cost(body_len, dearest) + cost(max_tokens, p["output"])


def openai_cost(model, usage):
    p = PRICES[model]
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return (cost(usage["prompt_tokens"] - cached, p["input"]) +
            cost(cached, p.get("cached", "0")) +
            cost(usage.get("completion_tokens", 0), p["output"]))


def anthropic_cost(model, usage):
    p = PRICES[model]
    return (cost(usage["input_tokens"], p["input"]) +
            cost(usage.get("cache_read_input_tokens", 0), p["cached"]) +
            cost(usage.get("cache_creation_input_tokens", 0), p["cache-write"]) +
            cost(usage["output_tokens"], p["output"]))


def chat_body(max_tokens=50, content="Say hello.", **extra):
    doc = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}],
           "max_tokens": max_tokens}
    doc.update(extra)
    return doc


def spends(env, account):
    return [p for p in env.journal() if p["kind"] == "spend" and p["debit"] == account]


def wait_settled(env, account, timeout=10.0):
    """Until the account holds no reservation; returns `account show`."""
    deadline = time.time() + timeout
    while True:
        a = env.account(account)
        if a["reserved_micros"] == 0 or time.time() > deadline:
            return a
        time.sleep(0.05)


def assert_error(r, status, etype, message, **extra):
    assert r.status == status, r
    assert r.header("content-type") == "application/json"
    assert r.json == {"error": dict({"type": etype, "code": etype, "message": message}, **extra)}


def raw_request(port, path, body, headers):
    """A POST on a plain socket (for clients that leave mid-answer)."""
    s = socket.create_connection(("127.0.0.1", port))
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in headers.items()]
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return s


def recv_until(s, marker, timeout=10.0):
    s.settimeout(timeout)
    got = b""
    while marker not in got:
        chunk = s.recv(65536)
        assert chunk, f"closed before {marker!r}: {got!r}"
        got += chunk
    return got


# ---------------------------------------------------------------------------
# the proxy endpoints


def test_chat_completion_is_charged_its_usage(env):
    acct, key = env.wallet("10")
    env.mock.reset()
    body = dumps(chat_body(max_tokens=50))
    r = env.call(CHAT, body, key, {"X-Budget-Account": f"{acct}/bot"})
    assert r.status == 200, r
    usage = r.json["usage"]
    assert usage["prompt_tokens"] == len(body) // 4 and usage["completion_tokens"] == 16
    expected = cost(len(body) // 4, "2") + cost(16, "8")
    assert expected == openai_cost("gpt-4o-mini", usage)
    assert r.header("x-budget-cost") == usd(expected)
    assert r.header("x-budget-remaining") == usd(10 * USD - expected)
    rid = int(r.header("x-budget-reservation"))
    timing = r.header("server-timing")
    assert [part.split(";")[0] for part in timing.split(", ")] == ["reserve", "upstream", "settle"]
    # the provider saw the body unchanged, with the provider key (not the caller's)
    (seen,) = env.mock.requests()
    assert seen["path"] == "/v1/chat/completions" and seen["body"].encode() == body
    assert seen["headers"]["authorization"] == "Bearer sk-mock-provider-key"
    assert not any(h.startswith("x-budget") for h in seen["headers"])
    # the ledger: one spend, credited to the vendor, on the reservation named
    (p,) = spends(env, f"{acct}/bot")
    assert (p["credit"], p["amount_micros"], p["reservation_id"]) == \
        ("vendor/openai", expected, rid)
    assert p["metadata"] == {"model": "gpt-4o-mini"}
    a = env.account(acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (expected, 0)


def test_caller_headers_passed_through_credentials_stripped(env):
    acct, key = env.wallet("10")
    env.mock.reset()
    r = env.call(CHAT, dumps(chat_body(max_tokens=2)), key, {
        "OpenAI-Beta": "assistants=v2", "X-Trace": "t-1", "Cookie": "s=1",
        "Idempotency-Key": "call-1", "OpenAI-Organization": "org-caller",
        "X-Budget-Metadata": json.dumps({"team": "a"}), "Accept-Encoding": "gzip"})
    assert r.status == 200, r
    (seen,) = env.mock.requests()
    hdrs = seen["headers"]
    assert (hdrs["openai-beta"], hdrs["x-trace"]) == ("assistants=v2", "t-1")
    assert hdrs["authorization"] == "Bearer sk-mock-provider-key"
    for name in ("cookie", "idempotency-key", "openai-organization", "x-budget-metadata",
                 "accept-encoding"):
        assert name not in hdrs, name


def test_chat_completion_cached_tokens_priced_at_cached_rate(env):
    acct, key = env.wallet("10")
    body = dumps(chat_body(max_tokens=8))
    r = env.call(CHAT, body, key, {"X-Mock-Cached-Tokens": "6"})
    assert r.status == 200, r
    prompt = len(body) // 4
    expected = cost(prompt - 6, "2") + cost(6, "1") + cost(8, "8")
    assert r.header("x-budget-cost") == usd(expected)
    assert env.account(acct)["spent_micros"] == expected


def test_completions_endpoint(env):
    acct, key = env.wallet("10")
    env.mock.reset()
    body = dumps({"model": "text-davinci", "prompt": "Once upon a time", "max_tokens": 12})
    r = env.call(COMPLETIONS, body, key)
    assert r.status == 200, r
    assert r.json["usage"]["prompt_tokens"] == len(body) // 4
    expected = cost(len(body) // 4, "3") + cost(12, "6")
    assert r.header("x-budget-cost") == usd(expected)
    assert [q["path"] for q in env.mock.requests()] == ["/v1/completions"]
    rid = int(r.header("x-budget-reservation"))
    assert env.read("reservation", rid)["amount_micros"] == cost(len(body), "3") + cost(12, "6")
    assert env.account(acct)["spent_micros"] == expected


def test_embeddings_reserve_input_only_and_charge_prompt(env):
    acct, key = env.wallet("10")
    body = dumps({"model": "embed-small", "input": ["alpha", "beta", "gamma"]})
    r = env.call(EMBEDDINGS, body, key)
    assert r.status == 200, r
    assert len(r.json["data"]) == 3
    expected = cost(len(body) // 4, "1")
    assert r.header("x-budget-cost") == usd(expected)
    res = env.read("reservation", int(r.header("x-budget-reservation")))
    assert res["amount_micros"] == cost(len(body), "1")  # no output part
    assert (res["status"], res["actual_micros"]) == ("committed", expected)
    assert env.account(acct)["spent_micros"] == expected


def test_anthropic_messages_with_cache_fields(env):
    acct, key = env.wallet("10")
    env.mock.reset()
    body = dumps({"model": "claude-x", "max_tokens": 20,
                  "messages": [{"role": "user", "content": "Hello, Claude."}]})
    r = env.call(MESSAGES, body, key, {"X-Mock-Cached-Tokens": "40",
                                       "X-Mock-Cache-Write-Tokens": "30"})
    assert r.status == 200, r
    usage = r.json["usage"]
    assert usage == {"input_tokens": len(body) // 4, "output_tokens": 16,
                     "cache_creation_input_tokens": 30, "cache_read_input_tokens": 40}
    expected = (cost(len(body) // 4, "3") + cost(40, "0.3") + cost(30, "3.75") +
                cost(16, "15"))
    assert r.header("x-budget-cost") == usd(expected)
    (seen,) = env.mock.requests()
    assert seen["headers"]["x-api-key"] == "sk-mock-provider-key"
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen["headers"]
    (p,) = spends(env, acct)
    assert (p["credit"], p["amount_micros"]) == ("vendor/anthropic", expected)


def test_openai_stream_passed_through_and_metered(env):
    acct, key = env.wallet("10")
    env.mock.reset()
    body = chat_body(max_tokens=40, stream=True)
    conn, resp = open_stream(env.gw.url, CHAT, body, {
        "Authorization": f"Bearer {key}", "X-Mock-Chunks": "3", "X-Mock-Chunk-Delay-Ms": "250"})
    try:
        t0 = time.monotonic()
        assert resp.status == 200
        assert resp.getheader("content-type") == "text/event-stream"
        reserved = worst_case("gpt-4o-mini", len(dumps(body)), 40)
        assert resp.getheader("x-budget-reserved") == usd(reserved)
        rid = int(resp.getheader("x-budget-reservation"))
        events = read_events(resp)
    finally:
        conn.close()
    datas = [ev[len("data: "):].strip() for _, ev in events]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    # role, 3 pieces, finish, usage: each its own event, in order
    assert [c["choices"][0]["delta"].get("content") if c["choices"] else None
            for c in chunks] == ["", "mock ", "mock ", "mock ", None, None]
    assert chunks[4]["choices"][0]["finish_reason"] == "stop"
    usage = chunks[5]["usage"]
    # event by event: the first piece came well before the last
    times = [t for t, _ in events]
    assert times[1] - t0 >= 0.2 and times[-1] - times[1] >= 0.4
    # the gateway asked for the usage the caller did not ask for
    (seen,) = env.mock.requests()
    fwd = json.loads(seen["body"])
    assert fwd["stream_options"] == {"include_usage": True}
    assert usage["prompt_tokens"] == len(seen["body"]) // 4 and usage["completion_tokens"] == 16
    expected = openai_cost("gpt-4o-mini", usage)
    a = wait_settled(env, acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (expected, 0)
    res = env.read("reservation", rid)
    assert (res["amount_micros"], res["status"], res["actual_micros"]) == \
        (reserved, "committed", expected)
    assert expected <= reserved


def test_openai_stream_include_usage_false_is_overridden(env):
    acct, key = env.wallet("10")
    env.mock.reset()
    body = chat_body(max_tokens=5, stream=True, stream_options={"include_usage": False})
    conn, resp = open_stream(env.gw.url, CHAT, body, {"Authorization": f"Bearer {key}"})
    try:
        assert resp.status == 200
        events = read_events(resp)
    finally:
        conn.close()
    (seen,) = env.mock.requests()
    assert json.loads(seen["body"])["stream_options"] == {"include_usage": True}
    usage = json.loads(events[-2][1][len("data: "):])["usage"]
    assert wait_settled(env, acct)["spent_micros"] == openai_cost("gpt-4o-mini", usage)


def test_anthropic_stream_passed_through_and_metered(env):
    acct, key = env.wallet("10")
    env.mock.reset()
    body = {"model": "claude-x", "max_tokens": 30, "stream": True,
            "messages": [{"role": "user", "content": "Stream, please."}]}
    conn, resp = open_stream(env.gw.url, MESSAGES, body, {
        "Authorization": f"Bearer {key}", "X-Mock-Chunks": "2", "X-Mock-Chunk-Delay-Ms": "250",
        "X-Mock-Cached-Tokens": "10"})
    try:
        assert resp.status == 200
        reserved = worst_case("claude-x", len(dumps(body)), 30)
        assert resp.getheader("x-budget-reserved") == usd(reserved)
        rid = int(resp.getheader("x-budget-reservation"))
        events = read_events(resp)
    finally:
        conn.close()
    names = [ev.split("\n")[0] for _, ev in events]
    assert names == ["event: message_start", "event: content_block_start",
                     "event: content_block_delta", "event: content_block_delta",
                     "event: content_block_stop", "event: message_delta", "event: message_stop"]
    times = [t for t, _ in events]
    assert times[-1] - times[2] >= 0.2  # the second piece came 250 ms after the first
    start = json.loads(events[0][1].split("\n")[1][len("data: "):])
    delta = json.loads(events[5][1].split("\n")[1][len("data: "):])
    usage = dict(start["message"]["usage"], output_tokens=delta["usage"]["output_tokens"])
    (seen,) = env.mock.requests()
    assert seen["body"] == json.dumps(body)  # Anthropic streams report usage unasked: unchanged
    assert usage == {"input_tokens": len(seen["body"]) // 4, "cache_creation_input_tokens": 0,
                     "cache_read_input_tokens": 10, "output_tokens": 16}
    expected = anthropic_cost("claude-x", usage)
    a = wait_settled(env, acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (expected, 0)
    assert env.read("reservation", rid)["actual_micros"] == expected


def test_payee_header_credits_the_payee(env):
    acct, key = env.wallet("10", children=("bot", "eng"))
    r = env.call(CHAT, dumps(chat_body(max_tokens=4)), key,
                 {"X-Budget-Account": f"{acct}/bot", "X-Budget-Payee": f"{acct}/eng",
                  "X-Budget-Metadata": json.dumps({"team": "t", "ticket_id": "T-1"})})
    assert r.status == 200, r
    (p,) = spends(env, f"{acct}/bot")
    assert p["credit"] == f"{acct}/eng"
    assert p["amount_micros"] == int(r.header("x-budget-cost").replace(".", ""))
    assert p["metadata"] == {"team": "t", "ticket_id": "T-1", "model": "gpt-4o-mini"}


# ---------------------------------------------------------------------------
# the reservation is a true upper bound


def test_reserve_is_bytes_times_dearest_input_plus_max_tokens(env):
    acct, key = env.wallet("10")
    body = dumps(chat_body(max_tokens=300, content="x" * 2000))
    r = env.call(CHAT, body, key)
    assert r.status == 200, r
    res = env.read("reservation", int(r.header("x-budget-reservation")))
    # dearest input is 2 USD/Mtok (cached is 1): bytes * 2 + 300 * 8 micros
    assert res["amount_micros"] == len(body) * 2 + 300 * 8
    assert res["actual_micros"] == int(r.header("x-budget-cost").replace(".", ""))
    assert res["actual_micros"] <= res["amount_micros"]
    assert res["on_expire"] == "charge"


def test_reserve_without_max_tokens_uses_default_output_bound(env):
    acct, key = env.wallet("10")
    doc = chat_body()
    del doc["max_tokens"]
    body = dumps(doc)
    r = env.call(CHAT, body, key)
    assert r.status == 200, r
    res = env.read("reservation", int(r.header("x-budget-reservation")))
    assert res["amount_micros"] == cost(len(body), "2") + cost(4096, "8")


def test_reserve_caps_max_tokens_at_the_model_limit(env):
    acct, key = env.wallet("10")
    body = dumps({"model": "claude-x", "max_tokens": 5000,
                  "messages": [{"role": "user", "content": "hi"}]})
    r = env.call(MESSAGES, body, key)
    assert r.status == 200, r
    res = env.read("reservation", int(r.header("x-budget-reservation")))
    # dearest input is the cache-write rate 3.75; output bound is the model's 1000
    assert res["amount_micros"] == cost(len(body), "3.75") + cost(1000, "15")


# ---------------------------------------------------------------------------
# refusals


def test_budget_exceeded_402_forwards_nothing(env):
    acct, key = env.wallet("0.001")
    env.mock.reset()
    body = dumps(chat_body(max_tokens=1000))
    need = worst_case("gpt-4o-mini", len(body), 1000)
    r = env.call(CHAT, body, key, {"X-Budget-Account": f"{acct}/bot"})
    assert_error(r, 402, "budget_exceeded",
                 f'account "{acct}" has 1000 micros left of its cap, {need} needed',
                 account=f"{acct}/bot", limit_account=acct, requested_micros=need,
                 remaining_micros=1000)
    assert env.mock.requests() == []
    a = env.account(acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (0, 0)
    assert spends(env, f"{acct}/bot") == []


def test_account_frozen_402(env):
    acct, key = env.wallet("10")
    env.ctl("account", "freeze", acct)
    env.mock.reset()
    r = env.call(CHAT, dumps(chat_body()), key, {"X-Budget-Account": f"{acct}/bot"})
    assert_error(r, 402, "account_frozen", f'account "{acct}" is frozen (reason: admin)',
                 account=acct, reason="admin")
    assert env.mock.requests() == []
    assert env.account(acct)["spent_micros"] == 0


def test_open_grant_is_charged(env):
    acct, key = env.wallet("10")
    g = env.call(f"{BUDGET}/grants", {"parent": f"{acct}/bot", "amount_micros": 50000,
                                      "ttl_ms": 600000, "workflow": "wf"}, key)
    assert g.status == 201, g
    r = env.call(CHAT, dumps(chat_body(max_tokens=4)), key, {"X-Budget-Grant": str(g.json["id"])})
    assert r.status == 200, r
    charged = int(r.header("x-budget-cost").replace(".", ""))
    assert r.header("x-budget-remaining") == usd(50000 - charged)
    (p,) = spends(env, g.json["account"])
    assert p["amount_micros"] == charged


def test_closed_grant_402_grant_expired(env):
    acct, key = env.wallet("10")
    g = env.call(f"{BUDGET}/grants", {"parent": f"{acct}/bot", "amount_micros": 50000,
                                      "ttl_ms": 600000}, key).json
    assert env.call(f"{BUDGET}/grants/{g['id']}/close", None, key).status == 200
    env.mock.reset()
    r = env.call(CHAT, dumps(chat_body()), key, {"X-Budget-Grant": str(g["id"])})
    assert_error(r, 402, "grant_expired", "the grant is closed",
                 account=f"{acct}/bot/grant-{g['id']}")
    assert g["account"] == f"{acct}/bot/grant-{g['id']}"
    assert env.mock.requests() == []


def test_malformed_json_400(env):
    acct, key = env.wallet("10")
    r = env.call(CHAT, b'{"model": "gpt-4o-mini", ', key)
    assert_error(r, 400, "invalid_request", "the body must be a JSON object")


def test_missing_model_400(env):
    acct, key = env.wallet("10")
    r = env.call(CHAT, {"messages": [], "max_tokens": 5}, key)
    assert_error(r, 400, "invalid_request", '"model" must be a non-empty string')


def test_unrouted_model_400(env):
    acct, key = env.wallet("10")
    r = env.call(CHAT, chat_body(model="gpt-nowhere"), key)
    assert_error(r, 400, "invalid_request", 'model "gpt-nowhere" is not routed by this gateway')


def test_model_without_price_400_not_free(env):
    acct, key = env.wallet("10")
    env.mock.reset()
    r = env.call(CHAT, chat_body(model=UNPRICED_MODEL), key)
    assert_error(r, 400, "invalid_request",
                 f'model "{UNPRICED_MODEL}" has no price: it is refused rather than priced at zero')
    assert env.mock.requests() == []


def test_bad_metadata_header_400(env):
    acct, key = env.wallet("10")
    r = env.call(CHAT, chat_body(), key, {"X-Budget-Metadata": "team=x"})
    assert_error(r, 400, "invalid_request", "X-Budget-Metadata must be a JSON object of strings")
    r = env.call(CHAT, chat_body(), key, {"X-Budget-Metadata": '{"team": 7}'})
    assert_error(r, 400, "invalid_request",
                 'X-Budget-Metadata: the value of "team" is not a string')
    assert env.account(acct)["spent_micros"] == 0


def test_no_key_401(env):
    r = env.call(CHAT, chat_body())
    assert_error(r, 401, "unauthorized", "an Authorization: Bearer <key> header is required")


def test_bad_key_401(env):
    r = env.call(CHAT, chat_body(), "pk-not-a-key")
    assert_error(r, 401, "unauthorized", "unknown API key")


def test_revoked_key_401_within_cache_ttl(env):
    acct, _ = env.wallet("10")
    made = env.ctl_json("key", "create", acct)
    assert env.call(CHAT, chat_body(max_tokens=2), made["key"]).status == 200  # now cached
    env.ctl("key", "revoke", made["id"])
    t0 = time.time()
    while True:
        r = env.call(CHAT, chat_body(max_tokens=2), made["key"])
        if r.status != 200:
            break
        assert time.time() - t0 < 7, "the revoked key still works after the cache TTL"
        time.sleep(0.25)
    assert_error(r, 401, "unauthorized", "revoked API key")


def test_account_outside_key_subtree_403(env):
    acct, key = env.wallet("10")
    other, _ = env.wallet("10")
    env.mock.reset()
    for target in (other, f"{other}/bot", f"{acct}x"):  # a name prefix is not a subtree
        r = env.call(CHAT, chat_body(), key, {"X-Budget-Account": target})
        assert_error(r, 403, "forbidden", "X-Budget-Account is outside this key's accounts")
    assert env.mock.requests() == []


# ---------------------------------------------------------------------------
# provider failures and settlement


def test_provider_500_is_502_and_released(env):
    acct, key = env.wallet("10")
    r = env.call(CHAT, chat_body(), key, {"X-Mock-Status": "500"})
    assert_error(r, 502, "upstream_error",
                 "the provider failed: status 500; the reservation was released",
                 upstream_status=500)
    a = env.account(acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (0, 0)
    assert spends(env, acct) == []


def test_provider_timeout_is_504_and_released(env):
    acct, key = env.wallet("10")
    t0 = time.time()
    r = env.call(CHAT, chat_body(), key, {"X-Mock-Delay-Ms": str(UPSTREAM_TIMEOUT_MS * 3)})
    elapsed = time.time() - t0
    assert r.status == 504, r
    err = r.json["error"]
    assert (err["type"], err["code"], err["upstream_status"]) == \
        ("upstream_error", "upstream_error", 0)
    assert err["message"].startswith("the provider failed: ")
    assert err["message"].endswith("; the reservation was released")
    assert 0.9 <= elapsed < 2.5
    a = env.account(acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (0, 0)


def test_provider_4xx_passed_through_unchanged_and_released(env):
    acct, key = env.wallet("10")
    direct = env.call(CHAT, chat_body(), None, {"X-Mock-Status": "400"}, gw=env.mock)
    r = env.call(CHAT, chat_body(), key, {"X-Mock-Status": "400"})
    assert r.status == 400
    assert r.body == direct.body
    assert json.loads(r.body) == {"error": {"type": "invalid_request_error", "code": None,
                                            "message": "mock status 400 (X-Mock-Status)"}}
    assert r.header("x-budget-cost") == "0.000000"
    res = env.read("reservation", int(r.header("x-budget-reservation")))
    assert res["status"] == "released"
    a = env.account(acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (0, 0)


def test_anthropic_4xx_passed_through_unchanged(env):
    acct, key = env.wallet("10")
    body = {"model": "claude-x", "max_tokens": 5, "messages": []}
    direct = env.call(MESSAGES, body, None, {"X-Mock-Status": "429"}, gw=env.mock)
    r = env.call(MESSAGES, body, key, {"X-Mock-Status": "429"})
    assert (r.status, r.body) == (429, direct.body)
    assert r.json["type"] == "error" and r.json["error"]["type"] == "rate_limit_error"
    assert env.account(acct)["spent_micros"] == 0


def test_client_leaving_openai_stream_is_charged_whole_reservation(env):
    """No usage seen yet (OpenAI sends it last): the whole hold is charged."""
    acct, key = env.wallet("10")
    env.mock.reset()
    body = dumps(chat_body(max_tokens=64, stream=True))
    s = raw_request(env.gw.port, CHAT, body, {"Authorization": f"Bearer {key}",
                                              "X-Mock-Chunks": "30",
                                              "X-Mock-Chunk-Delay-Ms": "100"})
    head = recv_until(s, b'"content":"mock "')
    s.close()
    rid = int(head.split(b"x-budget-reservation: ")[1].split(b"\r\n")[0])
    reserved = worst_case("gpt-4o-mini", len(body), 64)
    a = wait_settled(env, acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (reserved, 0)
    res = env.read("reservation", rid)
    assert (res["status"], res["actual_micros"]) == ("committed", reserved)


def test_client_leaving_anthropic_stream_is_charged_whole_reservation(env):
    """message_start alone is not usage (its output count is a placeholder,
    tests/unit/test_sse.c): a client leaving after it is charged the whole hold."""
    acct, key = env.wallet("10")
    body = dumps({"model": "claude-x", "max_tokens": 64, "stream": True,
                  "messages": [{"role": "user", "content": "a long story"}]})
    s = raw_request(env.gw.port, MESSAGES, body, {"Authorization": f"Bearer {key}",
                                                  "X-Mock-Chunks": "30",
                                                  "X-Mock-Chunk-Delay-Ms": "100",
                                                  "X-Mock-Cache-Write-Tokens": "8"})
    recv_until(s, b'"text_delta"')
    s.close()
    reserved = worst_case("claude-x", len(body), 64)
    a = wait_settled(env, acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (reserved, 0)


def test_provider_stream_cut_charges_whole_reservation(env):
    acct, key = env.wallet("10")
    body = chat_body(max_tokens=64, stream=True)
    conn, resp = open_stream(env.gw.url, CHAT, body, {"Authorization": f"Bearer {key}",
                                                      "X-Mock-Stream-Cut": "1"})
    try:
        assert resp.status == 200
        reserved = worst_case("gpt-4o-mini", len(dumps(body)), 64)
        assert resp.getheader("x-budget-reserved") == usd(reserved)
        events = read_events(resp)
    finally:
        conn.close()
    assert len(events) == 2  # the role chunk and the first piece, then the cut
    assert all('"usage":null' in ev for _, ev in events)
    a = wait_settled(env, acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (reserved, 0)


# ---------------------------------------------------------------------------
# the budget API


def test_budget_reservation_create_and_commit(env):
    acct, key = env.wallet("10")
    r = env.call(f"{BUDGET}/reservations", {"account": f"{acct}/bot", "amount_micros": 5000,
                                            "ttl_ms": 60000,
                                            "metadata": {"team": "search"}}, key)
    assert r.status == 201, r
    doc = r.json
    assert set(doc) == {"id", "amount_micros", "expires_at_ms", "remaining_micros"}
    assert (doc["amount_micros"], doc["remaining_micros"]) == (5000, 10 * USD - 5000)
    assert abs(doc["expires_at_ms"] - (time.time() * 1000 + 60000)) < 5000
    assert r.header("x-budget-reservation") == str(doc["id"])
    c = env.call(f"{BUDGET}/reservations/{doc['id']}/commit", {"actual_micros": 3000}, key)
    assert c.status == 200, c
    (p,) = spends(env, f"{acct}/bot")
    assert c.json == {"transfer_id": p["id"], "cost_micros": 3000, "overrun_micros": 0,
                      "remaining_micros": 10 * USD - 3000}
    assert c.header("x-budget-cost") == "0.003000"
    assert (p["amount_micros"], p["reservation_id"], p["credit"]) == \
        (3000, doc["id"], "vendor/unknown")
    assert p["metadata"] == {"team": "search"}
    a = env.account(acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (3000, 0)


def test_budget_reservation_release(env):
    acct, key = env.wallet("10")
    doc = env.call(f"{BUDGET}/reservations", {"amount_micros": 7000}, key).json
    assert env.account(acct)["reserved_micros"] == 7000
    r = env.call(f"{BUDGET}/reservations/{doc['id']}/release", None, key)
    assert (r.status, r.json) == (200, {"id": doc["id"], "returned_micros": 7000})
    a = env.account(acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (0, 0)
    assert env.read("reservation", doc["id"])["status"] == "released"


def test_budget_idempotency_key_returns_same_reservation(env):
    acct, key = env.wallet("10")
    hdr = {"Idempotency-Key": "job-42-step-1"}
    first = env.call(f"{BUDGET}/reservations", {"amount_micros": 4000}, key, hdr)
    again = env.call(f"{BUDGET}/reservations", {"amount_micros": 4000}, key, hdr)
    assert (first.status, again.status) == (201, 201)
    assert again.json == first.json
    assert env.account(acct)["reserved_micros"] == 4000
    other = env.call(f"{BUDGET}/reservations", {"amount_micros": 4000}, key,
                     {"Idempotency-Key": "job-42-step-2"})
    assert other.json["id"] != first.json["id"]
    assert env.account(acct)["reserved_micros"] == 8000


def test_budget_account_get(env):
    acct, key = env.wallet("10")
    env.call(f"{BUDGET}/reservations", {"account": f"{acct}/bot", "amount_micros": 2500}, key)
    r = env.get(f"{BUDGET}/accounts/{acct}/bot", key)
    assert r.status == 200, r
    doc = r.json
    assert {k: doc[k] for k in ("name", "cap_micros", "period", "spent_micros",
                                "reserved_micros", "available_micros", "status")} == \
        {"name": f"{acct}/bot", "cap_micros": None, "period": "none", "spent_micros": 0,
         "reserved_micros": 2500, "available_micros": 10 * USD - 2500, "status": "active"}
    top = env.get(f"{BUDGET}/accounts/{acct}", key).json
    assert (top["cap_micros"], top["reserved_micros"]) == (10 * USD, 2500)


def test_budget_grant_create_and_close(env):
    acct, key = env.wallet("10")
    r = env.call(f"{BUDGET}/grants", {"parent": f"{acct}/bot", "amount_micros": 20000,
                                      "ttl_ms": 600000, "workflow": "triage"}, key)
    assert r.status == 201, r
    g = r.json
    assert set(g) == {"id", "account", "amount_micros", "expires_at_ms"}
    assert (g["account"], g["amount_micros"]) == (f"{acct}/bot/grant-{g['id']}", 20000)
    res = env.call(f"{BUDGET}/reservations", {"account": g["account"], "amount_micros": 1500},
                   key).json
    env.call(f"{BUDGET}/reservations/{res['id']}/commit", {"actual_micros": 1200}, key)
    c = env.call(f"{BUDGET}/grants/{g['id']}/close", None, key)
    assert (c.status, c.json) == (200, {"spent_micros": 1200, "returned_micros": 18800})
    view = env.read("grant", g["id"])
    assert (view["is_open"], view["workflow"]) == (False, "triage")


def test_budget_transfer_chargeback(env):
    acct, key = env.wallet("10", children=("bot", "eng"))
    r = env.call(f"{BUDGET}/transfers", {"debit": f"{acct}/bot", "credit": f"{acct}/eng",
                                         "amount_micros": 1234, "kind": "chargeback",
                                         "metadata": {"ticket_id": "FIN-7"}}, key)
    assert r.status == 201, r
    (p,) = [p for p in env.journal() if p["id"] == r.json["id"]]
    assert (p["kind"], p["debit"], p["credit"], p["amount_micros"], p["metadata"]) == \
        ("chargeback", f"{acct}/bot", f"{acct}/eng", 1234, {"ticket_id": "FIN-7"})
    assert r.json == {"id": p["id"]}


def test_budget_foreign_subtree_403(env):
    acct, key = env.wallet("10")
    other, other_key = env.wallet("10")
    theirs = env.call(f"{BUDGET}/reservations", {"amount_micros": 3000}, other_key).json
    their_grant = env.call(f"{BUDGET}/grants", {"amount_micros": 3000}, other_key).json
    before = env.journal()
    cases = [
        ("POST", f"{BUDGET}/reservations", {"account": other, "amount_micros": 10},
         "the account is outside this key's"),
        ("POST", f"{BUDGET}/reservations/{theirs['id']}/commit", {"actual_micros": 10},
         "it belongs to an account outside this key's"),
        ("POST", f"{BUDGET}/reservations/{theirs['id']}/release", None,
         "it belongs to an account outside this key's"),
        ("GET", f"{BUDGET}/accounts/{other}", None, "the account is outside this key's"),
        ("POST", f"{BUDGET}/grants", {"parent": other, "amount_micros": 10},
         "the account is outside this key's"),
        ("POST", f"{BUDGET}/grants/{their_grant['id']}/close", None,
         "it belongs to an account outside this key's"),
        ("POST", f"{BUDGET}/transfers", {"debit": other, "credit": acct, "amount_micros": 10,
                                         "kind": "chargeback"},
         "the account is outside this key's"),
    ]
    for method, path, body, message in cases:
        r = env.get(path, key) if method == "GET" else env.call(path, body, key)
        assert_error(r, 403, "forbidden", message)
    assert env.journal() == before
    assert env.read("reservation", theirs["id"])["status"] == "open"
    assert env.read("grant", their_grant["id"])["is_open"] is True
    assert env.account(other)["reserved_micros"] == 6000  # the hold and the open grant


def test_budget_bad_amounts_400_post_nothing(env):
    acct, key = env.wallet("10", children=("bot", "eng"))
    res = env.call(f"{BUDGET}/reservations", {"amount_micros": 1000}, key).json
    before = env.journal()
    cases = [
        (f"{BUDGET}/reservations", {"amount_micros": 1.5}, "amount_micros must be an integer"),
        (f"{BUDGET}/reservations", {"amount_micros": "100"}, "amount_micros must be an integer"),
        (f"{BUDGET}/reservations", {}, "amount_micros is required"),
        (f"{BUDGET}/reservations", {"amount_micros": -5},
         "amount_micros: -5 is outside 1..1000000000000000"),
        (f"{BUDGET}/reservations/{res['id']}/commit", {"actual_micros": 2.5},
         "actual_micros must be an integer"),
        (f"{BUDGET}/reservations/{res['id']}/commit", {"actual_micros": -1}, None),
        (f"{BUDGET}/transfers", {"debit": f"{acct}/bot", "credit": f"{acct}/eng",
                                 "amount_micros": -3, "kind": "chargeback"},
         "amount_micros: -3 is outside 1..1000000000000000"),
        (f"{BUDGET}/transfers", {"debit": f"{acct}/bot", "credit": f"{acct}/eng",
                                 "amount_micros": "3", "kind": "chargeback"},
         "amount_micros must be an integer"),
        (f"{BUDGET}/grants", {"amount_micros": 0}, None),
    ]
    for path, body, message in cases:
        r = env.call(path, body, key)
        assert r.status == 400, (path, body, r)
        assert r.json["error"]["type"] == "invalid_request", r
        if message is not None:
            assert r.json["error"]["message"] == message, (path, body, r)
    assert env.journal() == before
    a = env.account(acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (0, 1000)
    assert env.read("reservation", res["id"])["status"] == "open"


# ---------------------------------------------------------------------------
# operations


def test_healthz_readyz(env):
    r = env.get("/healthz")
    assert (r.status, r.body) == (200, b"ok\n")
    r = env.get("/readyz")
    assert (r.status, r.body) == (200, b"ready\n")


def metric(text, name_and_labels):
    for line in text.splitlines():
        if line.startswith(name_and_labels + " "):
            return int(float(line.split()[-1]))
    return 0


def test_metrics_count_requests_and_refusals(env):
    acct, key = env.wallet("0.000001")
    before = env.get("/metrics").body.decode()
    assert env.call(CHAT, chat_body(), key).status == 402
    assert env.call(CHAT, chat_body(), "pk-nope").status == 401
    r = env.get("/metrics")
    assert r.status == 200 and r.header("content-type").startswith("text/plain")
    after = r.body.decode()
    assert "# TYPE purser_gateway_requests_total counter" in after
    for series in ('purser_gateway_requests_total{endpoint="chat_completions",status="402"}',
                   'purser_gateway_requests_total{endpoint="chat_completions",status="401"}',
                   'purser_gateway_refusals_total{type="budget_exceeded"}',
                   'purser_gateway_refusals_total{type="unauthorized"}'):
        assert metric(after, series) == metric(before, series) + 1, series
    assert 'purser_gateway_phase_seconds_bucket{phase="reserve",le="+Inf"}' in after
    assert "purser_gateway_ready 1" in after


def test_keep_alive_survives_refusals_and_201(env):
    """One client connection: a 402, a 400, a 201 and a 200 in a row."""
    acct, key = env.wallet("0.01")
    conn = httpclient.HTTPConnection("127.0.0.1", env.gw.port, timeout=10)
    hdrs = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        answers = []
        for path, body in ((CHAT, chat_body(max_tokens=100000)), (CHAT, {"max_tokens": 1}),
                           (f"{BUDGET}/reservations", {"amount_micros": 10}),
                           (CHAT, chat_body(max_tokens=2))):
            conn.request("POST", path, body=dumps(body), headers=hdrs)
            r = conn.getresponse()
            r.read()
            answers.append((r.status, r.getheader("connection"),
                            r.getheader("content-length") is not None or
                            r.getheader("transfer-encoding") == "chunked"))
        assert answers == [(402, "keep-alive", True), (400, "keep-alive", True),
                           (201, "keep-alive", True), (200, "keep-alive", True)]
    finally:
        conn.close()


def test_body_over_8mib_is_413_and_posts_nothing(env):
    acct, key = env.wallet("10")
    env.mock.reset()
    before = env.journal()
    n = (8 << 20) + 1
    s = socket.create_connection(("127.0.0.1", env.gw.port))
    s.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {n}\r\n\r\n".encode())
    try:
        s.sendall(b'{"model":"gpt-4o-mini","x":"' + b"x" * n)
    except OSError:
        pass  # the gateway answers and closes before reading it all
    answer = recv_until(s, b"\r\n\r\n")
    s.close()
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert env.mock.requests() == []
    assert env.journal() == before
    a = env.account(acct)
    assert (a["spent_micros"], a["reserved_micros"]) == (0, 0)


# ---------------------------------------------------------------------------
# concurrency: the cap holds under parallel callers


def parallel_calls(urls, key, body, n, headers):
    results = [None] * n
    barrier = threading.Barrier(n)

    def worker(i):
        barrier.wait()
        try:
            results[i] = http("POST", urls[i % len(urls)], CHAT, body=body,
                              headers=dict({"Authorization": f"Bearer {key}"}, **headers))
        except OSError as e:
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def check_exactly_k(env, urls, k=7, n=100):
    body = dumps(chat_body(max_tokens=100))
    w = worst_case("gpt-4o-mini", len(body), 100)
    cap = k * w + w - 1  # K worst cases fit, K + 1 do not
    acct, key = env.wallet(usd(cap))
    env.mock.reset()
    # the provider holds each call long enough for every reserve to land first
    results = parallel_calls(urls, key, body, n, {"X-Mock-Delay-Ms": "700"})
    statuses = [r.status if hasattr(r, "status") else repr(r) for r in results]
    assert statuses.count(200) == k, statuses
    assert statuses.count(402) == n - k, statuses
    for r in results:
        if r.status == 402:
            assert r.json["error"]["type"] == "budget_exceeded"
            assert r.json["error"]["requested_micros"] == w
    costs = [int(r.header("x-budget-cost").replace(".", "")) for r in results if r.status == 200]
    a = wait_settled(env, acct)
    assert a["spent_micros"] == sum(costs) <= cap
    assert a["reserved_micros"] == 0
    assert len(env.mock.requests()) == k


def test_parallel_callers_exactly_k_succeed(env):
    check_exactly_k(env, [env.gw.url])


def test_parallel_callers_across_two_gateways(env):
    gw2 = Gateway(env.h, env.config_path, name="gateway2")
    try:
        check_exactly_k(env, [env.gw.url, gw2.url])
    finally:
        gw2.stop()


def test_budget_hint_is_recorded_and_a_bad_hint_is_refused(env):
    acct, key = env.wallet("5")
    body = dumps(chat_body(max_tokens=20))
    r = env.call(CHAT, body, key, {"X-Budget-Account": f"{acct}/bot", "X-Budget-Hint": "0.25"})
    assert r.status == 200, r
    res = env.read("reservation", int(r.header("x-budget-reservation")))
    assert res["metadata"]["hint_usd"] == "0.250000"
    r = env.call(CHAT, body, key, {"X-Budget-Account": f"{acct}/bot", "X-Budget-Hint": "-1"})
    assert r.status == 400 and r.json["error"]["type"] == "invalid_request"
    assert "X-Budget-Hint" in r.json["error"]["message"]


def test_metrics_show_money_through_the_gateway(env):
    acct, key = env.wallet("5")
    r = env.call(CHAT, dumps(chat_body(max_tokens=20)), key, {"X-Budget-Account": f"{acct}/bot"})
    assert r.status == 200, r
    cost = int(r.header("x-budget-cost").replace(".", ""))
    wait_settled(env, acct)
    text = env.get("/metrics").body.decode()
    spent = int(next(l.split()[1] for l in text.splitlines()
                     if l.startswith("purser_gateway_spent_micros_total ")))
    assert spent >= cost
    assert any(l.startswith("purser_gateway_reserved_micros ") for l in text.splitlines())
