"""Rate limits, estimates and approvals end to end (ledger/ratelimit.c,
ledger/estimate.c, docs/ledger-rules.md): a real 3-node cluster, the mock
provider and one or two gateways.  The ledger decides, so two gateways
agree; 429 carries the Retry-After the ledger computed; the estimate
endpoint and `purserctl estimate` answer the same percentiles; approval
refuses agents and admin-created grants are the approval.
"""
import json

import purser_rpc as pr
from conftest import USD, Gateway

CHAT = "/v1/chat/completions"
BUDGET = "/v1/budget"


def dumps(doc):
    return json.dumps(doc).encode()


def chat_body(max_tokens=8):
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": max_tokens}


def meta(**kv):
    return {"X-Budget-Metadata": json.dumps(kv)}


def assert_rate_limited(r, scope):
    assert r.status == 429, r
    err = r.json["error"]
    assert err["type"] == "rate_limited" and err["scope"] == scope, err
    retry = int(r.header("retry-after"))
    assert 1 <= retry <= 60
    assert retry == -(-err["retry_after_ms"] // 1000)  # seconds, rounded up
    return retry


def test_rpm_429_with_retry_after_and_two_gateways_agree(env):
    acct, key = env.wallet("10")
    env.ctl("limit", "set", acct, "--rpm", "2")
    gw2 = Gateway(env.h, env.config_path, name="gateway-limits")
    try:
        assert env.call(CHAT, dumps(chat_body()), key).status == 200
        assert env.call(CHAT, dumps(chat_body()), key, gw=gw2).status == 200
        env.mock.reset()
        # The window of acct is shared: both gateways refuse the third call.
        assert_rate_limited(env.call(CHAT, dumps(chat_body()), key), acct)
        assert_rate_limited(env.call(CHAT, dumps(chat_body()), key, gw=gw2), acct)
        # ... so do budget API reservations on the subtree.
        r = env.call(f"{BUDGET}/reservations", {"account": f"{acct}/bot", "amount_micros": 1000},
                     key)
        assert_rate_limited(r, acct)
        assert env.mock.requests() == []
        assert env.account(acct)["reserved_micros"] == 0
        listed = env.ctl_json("limit", "list")["rate_limits"]
        (mine,) = [x for x in listed if x["account"] == acct]
        assert mine["rpm"] == 2 and mine["requests_minute"] == 2
    finally:
        gw2.stop()
        env.ctl("limit", "clear", acct)
    assert env.call(CHAT, dumps(chat_body()), key).status == 200


def test_tokens_per_metadata_value_count_actual_tokens_after_commit(env):
    acct, key = env.wallet("10")
    project = env.unique("proj")
    body = dumps(chat_body(max_tokens=8))
    worst = len(body) + 8                 # prompt bytes bound + max_tokens
    actual = len(body) // 4 + 8           # the mock: bytes / 4 prompt, min(max, 16) output
    # Room for one worst case and a bit: a second call fits only once the
    # first one's actual tokens replaced its worst case.
    env.ctl("limit", "set", "--meta", f"project_id={project}", "--tph", str(worst + actual))
    try:
        r = env.call(CHAT, body, key, meta(project_id=project))
        assert r.status == 200, r
        (mine,) = [x for x in env.ctl_json("limit", "list")["rate_limits"]
                   if x["meta_value"] == project]
        assert mine["meta_key"] == "project_id" and mine["tokens_hour"] == actual
        assert env.call(CHAT, body, key, meta(project_id=project)).status == 200
        # 2 * actual used; a worst case no longer fits the hour: 429.
        r = env.call(CHAT, body, key, meta(project_id=project))
        assert r.status == 429 and r.json["error"]["scope"] == f"project_id={project}", r
        assert int(r.header("retry-after")) > 60  # the hour window, not the minute
        # Another project is not limited.
        assert env.call(CHAT, body, key, meta(project_id=project + "x")).status == 200
    finally:
        env.ctl("limit", "clear", "--meta", f"project_id={project}")


def tasks(env, parent, workflow, costs, model="gpt-4o-mini"):
    """Closed grants of `workflow` that spent `costs` (admin, over RPC)."""
    cl = env.h.cluster()
    try:
        for c in costs:
            g = cl.apply(pr.grant_create(parent, c + USD, workflow, metadata={"model": model}))
            assert g.ok, g
            r = cl.apply(pr.reserve(g.name, c))
            assert r.ok, r
            assert cl.apply(pr.commit(r.id, c)).ok
            assert cl.apply(pr.grant_close(g.id)).ok
    finally:
        cl.close()


def test_estimate_endpoint_and_purserctl_estimate(env):
    acct, key = env.wallet("1000")
    wf = env.unique("triage")
    tasks(env, f"{acct}/bot", wf, [c * USD for c in (7, 2, 10, 1, 5, 9, 3, 8, 6, 4)])
    r = env.call(f"{BUDGET}/estimate", {"workflow": wf, "prompt_bytes": 1200, "max_tokens": 50},
                 key)
    assert r.status == 200, r
    assert r.json == {"workflow": wf, "model": "", "p50_micros": 5 * USD,
                      "p90_micros": 9 * USD, "samples": 10}
    r = env.call(f"{BUDGET}/estimate", {"workflow": wf, "model": "gpt-4o-mini"}, key)
    assert r.json["model"] == "gpt-4o-mini" and r.json["samples"] == 10
    r = env.call(f"{BUDGET}/estimate", {"workflow": wf + "-never"}, key)
    assert r.status == 200 and r.json["samples"] == 0
    r = env.call(f"{BUDGET}/estimate", {"model": "gpt-4o-mini"}, key)
    assert r.status == 400 and "workflow" in r.json["error"]["message"], r
    r = env.call(f"{BUDGET}/estimate", {"workflow": wf, "max_tokens": -1}, key)
    assert r.status == 400, r
    assert env.call(f"{BUDGET}/estimate", {"workflow": wf}, None).status == 401
    j = env.ctl_json("estimate", wf, "--model", "gpt-4o-mini")
    assert (j["p50_micros"], j["p90_micros"], j["samples"]) == (5 * USD, 9 * USD, 10)
    text = env.ctl("estimate", wf)
    assert "p50 5.000000 USD, p90 9.000000 USD over 10 tasks" in text


def test_approval_required_and_the_admin_grant_is_the_approval(env):
    acct, key = env.wallet("1000")
    wf = env.unique("audit")
    tasks(env, f"{acct}/bot", wf, [c * USD for c in range(1, 11)])  # p90 9 USD
    env.ctl("policy", "set", "approval-above", "8")
    try:
        assert "approval above: 8.000000" in env.ctl("policy", "show")
        g = env.call(f"{BUDGET}/grants", {"parent": f"{acct}/bot", "amount_micros": 20 * USD,
                                          "workflow": wf}, key)
        assert g.status == 402, g
        assert g.json["error"]["type"] == "approval_required"
        assert g.json["error"]["p90_micros"] == 9 * USD
        env.mock.reset()
        r = env.call(CHAT, dumps(chat_body()), key, meta(workflow=wf))
        assert r.status == 402 and r.json["error"]["type"] == "approval_required", r
        assert env.mock.requests() == []
        # Without the workflow, or for another one: not judged.
        assert env.call(CHAT, dumps(chat_body()), key).status == 200
        assert env.call(CHAT, dumps(chat_body()), key, meta(workflow=wf + "-new")).status == 200
        # An admin creates the grant: calls charging it pass.
        admin = env.ctl_json("grant", "create", f"{acct}/bot", "20", "--workflow", wf)
        r = env.call(CHAT, dumps(chat_body()), key,
                     {"X-Budget-Grant": str(admin["id"]), **meta(workflow=wf)})
        assert r.status == 200, r
    finally:
        env.ctl("policy", "set", "approval-above", "none")
    g = env.call(f"{BUDGET}/grants", {"parent": f"{acct}/bot", "amount_micros": 20 * USD,
                                      "workflow": wf}, key)
    assert g.status == 201, g
