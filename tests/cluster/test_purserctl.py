"""purserctl against a real 3-node cluster: every command of API.md's
purserctl section (but `report`), its --json fields, exact money, exit codes
0/1/2/3, idempotency keys, roles, and stale reads on a follower.

Amounts are checked exactly: micros in --json, six-decimal USD in tables."""
import glob
import hashlib
import json
import os
import re
import subprocess
import time

import purser_rpc as pr
from conftest import PURSERCTL, SECRETS, free_port

USD = pr.USD
VOLATILE = ("applied_index", "now_ms")


# ---- helpers ----

def ok(h, *args, **kw):
    p = h.ctl(*args, **kw)
    assert p.returncode == 0, f"purserctl {' '.join(args)} -> {p.returncode}\n{p.stderr}"
    return p.stdout


def js(h, *args, **kw):
    return json.loads(ok(h, "--json", *args, **kw))


def refused(h, code, *args, **kw):
    """Run expecting exit `code`; returns stderr, checked to be one line."""
    p = h.ctl(*args, **kw)
    assert p.returncode == code, (
        f"purserctl {' '.join(args)} -> {p.returncode} (wanted {code})\n"
        f"stdout: {p.stdout}\nstderr: {p.stderr}")
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("purserctl: "), p.stderr
    assert p.stdout == "", p.stdout
    return lines[0]


def show(h, name, *extra):
    a = js(h, "account", "show", name, *extra)
    for k in VOLATILE:
        a.pop(k, None)
    return a


def balances(h, name):
    a = show(h, name)
    return a["spent_micros"], a["reserved_micros"], a["available_micros"], a["status"]


def accounts(h):
    return js(h, "account", "list")["accounts"]


def run_ctl(cluster, auth, *args, timeout=30):
    env = dict(os.environ)
    env["PURSER_CLUSTER"] = cluster
    env["PURSER_AUTH"] = auth
    return subprocess.run([PURSERCTL] + list(args), env=env, capture_output=True, text=True,
                          timeout=timeout)


def write_auth(h, name, lines):
    path = os.path.join(h.dir, name)
    with open(path, "w") as f:
        f.write("".join(f"{role} {secret}\n" for role, secret in lines))
    return path


def wait_for(pred, timeout=15.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def month_text(year, month):
    return f"{year:04d}-{month:02d}"


def this_and_last_month():
    t = time.gmtime()
    y, m = t.tm_year, t.tm_mon
    py, pm = (y, m - 1) if m > 1 else (y - 1, 12)
    return month_text(y, m), month_text(py, pm)


def journal(h):
    cl = h.cluster()
    t = time.gmtime()
    try:
        return cl.read("journal", t.tm_year, t.tm_mon)["postings"]
    finally:
        cl.close()


def rpc_read(h, query, *args):
    cl = h.cluster()
    try:
        return cl.read(query, *args)
    finally:
        cl.close()


# ---- cluster ----

def test_cluster_status_json_and_table(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme")
    lead = h.leader()
    index = lead.status()["applied_index"]
    h.wait_applied(h.nodes, index)
    st = js(h, "cluster", "status")
    assert set(st) >= {"leader_id", "term", "members"}
    assert st["leader_id"] == lead.id
    assert st["term"] == lead.status()["term"]
    by_id = {m["id"]: m for m in st["members"]}
    assert sorted(by_id) == [1, 2, 3]
    for n in h.nodes:
        m = by_id[n.id]
        assert set(m) >= {"id", "raft", "rpc", "role", "state", "applied_index", "commit_index"}
        assert (m["raft"], m["rpc"], m["role"]) == (n.raft, n.rpc, "voter")
        assert m["state"] == ("leader" if n is lead else "follower")
        assert isinstance(m["applied_index"], int) and m["applied_index"] >= index
        assert m["commit_index"] >= m["applied_index"]
    text = ok(h, "cluster", "status")
    assert text.splitlines()[0] == f"leader {lead.id}, term {st['term']}"
    assert text.splitlines()[1].split() == ["ID", "RAFT", "RPC", "ROLE", "STATE", "APPLIED",
                                           "COMMIT"]
    rows = {int(line.split()[0]): line.split() for line in text.splitlines()[2:]}
    assert rows[lead.id][1:5] == [lead.raft, lead.rpc, "voter", "leader"]


def test_cluster_members_json_and_table(cluster3):
    h = cluster3
    lead = h.leader()
    ms = js(h, "cluster", "members")
    assert ms["leader_id"] == lead.id
    assert sorted((m["id"], m["raft"], m["rpc"], m["role"]) for m in ms["members"]) == \
        sorted((n.id, n.raft, n.rpc, "voter") for n in h.nodes)
    text = ok(h, "cluster", "members").splitlines()
    assert text[0].split() == ["ID", "RAFT", "RPC", "ROLE", "LEADER"]
    starred = [line.split()[0] for line in text[1:] if line.rstrip().endswith("*")]
    assert starred == [str(lead.id)]


def test_cluster_status_shows_a_killed_node_as_unreachable(cluster3):
    h = cluster3
    lead = h.leader()
    victim = next(n for n in h.nodes if n is not lead)
    victim.kill()
    st = js(h, "cluster", "status")
    by_id = {m["id"]: m for m in st["members"]}
    assert len(by_id) == 3
    dead = by_id[victim.id]
    assert dead["state"] == "unreachable"
    assert dead["applied_index"] is None and dead["commit_index"] is None
    assert dead["rpc"] == victim.rpc and dead["role"] == "voter"
    assert by_id[lead.id]["state"] == "leader"
    for n in h.nodes:
        if n is not victim:
            assert isinstance(by_id[n.id]["applied_index"], int)
    row = next(line.split() for line in ok(h, "cluster", "status").splitlines()
               if line.split()[0] == str(victim.id))
    assert row[4:] == ["unreachable", "-", "-"]


def test_cluster_add_promote_remove(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "7.5")
    n4 = h.add_node()
    n4.start()  # neither --bootstrap nor --join: waits to be added
    wait_for(lambda: _status_or_none(n4), what="node 4 rpc")
    out = js(h, "cluster", "add", "4", f"{n4.raft}/{n4.rpc}")
    assert out == {"id": 4, "result": {"id": 4}}
    m4 = next(m for m in js(h, "cluster", "members")["members"] if m["id"] == 4)
    assert (m4["raft"], m4["rpc"], m4["role"]) == (n4.raft, n4.rpc, "spare")

    assert js(h, "cluster", "promote", "4") == {"id": 4, "result": {"id": 4}}
    m4 = next(m for m in js(h, "cluster", "members")["members"] if m["id"] == 4)
    assert m4["role"] == "voter"
    index = h.leader().status()["applied_index"]
    h.wait_applied([n4], index)
    c = n4.client("reader")
    assert c.read("account", "acme", consistency="stale")["cap_micros"] == 7_500_000
    c.close()
    v = js(h, "cluster", "verify")
    assert v["is_equal"] is True
    assert sorted(x["id"] for x in v["nodes"]) == [1, 2, 3, 4]
    assert len({x["hash"] for x in v["nodes"]}) == 1

    assert js(h, "cluster", "remove", "4") == {"id": 4, "result": {"id": 4}}
    ms = js(h, "cluster", "members")["members"]
    assert sorted(m["id"] for m in ms) == [1, 2, 3]
    n4.stop()
    assert sorted(m["id"] for m in js(h, "cluster", "status")["members"]) == [1, 2, 3]


def _status_or_none(n):
    try:
        return n.status()
    except (OSError, pr.RpcError, ConnectionError):
        return None


def test_transfer_leader_to_a_named_node(cluster3):
    h = cluster3
    lead = h.leader()
    target = next(n for n in h.nodes if n is not lead)
    out = js(h, "cluster", "transfer-leader", str(target.id))
    assert out["id"] == target.id
    assert out["result"]["leader_id"] == target.id
    assert out["result"]["leader_rpc"] == target.rpc
    assert h.wait_leader(exclude=lead) is target
    st = js(h, "cluster", "status")
    assert st["leader_id"] == target.id
    assert {m["id"]: m["state"] for m in st["members"]}[target.id] == "leader"
    # the ledger keeps working under the new leader
    assert js(h, "account", "create", "after")["name"] == "after"


def test_transfer_leader_without_id_picks_another_node(cluster3):
    h = cluster3
    lead = h.leader()
    out = js(h, "cluster", "transfer-leader")
    new_id = out["result"]["leader_id"]
    assert new_id != lead.id and new_id in (1, 2, 3)
    assert h.wait_leader(exclude=lead).id == new_id
    assert js(h, "cluster", "status")["leader_id"] == new_id


def test_verify_reports_every_node_equal(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "10")
    rid = js(h, "reserve", "acme", "2")["id"]
    js(h, "commit", str(rid), "1.25")
    v = js(h, "cluster", "verify")
    assert v["is_equal"] is True
    assert sorted(x["id"] for x in v["nodes"]) == [1, 2, 3]
    assert {x["verdict"] for x in v["nodes"]} == {"equal"}
    hashes = {x["hash"] for x in v["nodes"]}
    assert len(hashes) == 1 and re.fullmatch(r"[0-9a-f]{64}", hashes.pop())
    # the hash shown is what each node recorded at that checkpoint index
    for n in h.nodes:
        c = n.client("reader")
        cps = {cp["index"]: cp["hash"].hex() for cp in c.call("hash", [])["checkpoints"]}
        c.close()
        node = next(x for x in v["nodes"] if x["id"] == n.id)
        assert cps[v["index"]] == node["hash"]
    text = ok(h, "cluster", "verify").splitlines()
    assert re.fullmatch(r"checkpoint at index \d+", text[0])
    assert len(text) == 4 and all(line.endswith("  equal") for line in text[1:])


def test_snapshot_takes_a_raft_snapshot_on_the_leader(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme")
    lead = h.leader()
    before = lead.status()["applied_index"]
    out = js(h, "snapshot")
    assert set(out) == {"index", "bytes"} and out["index"] >= before
    assert out["bytes"] > 4096  # a real ledger image

    def snapshot_files():
        files = glob.glob(os.path.join(lead.data, "snapshot-*"))
        idx = [int(os.path.basename(f).split("-")[2]) for f in files
               if not f.endswith(".meta") and not f.endswith(".tmp")]
        return [i for i in idx if i >= out["index"]]
    # raft_uv names a snapshot snapshot-TERM-INDEX-TIMESTAMP in the data dir
    deadline = time.time() + 10
    while time.time() < deadline and not snapshot_files():
        time.sleep(0.1)
    assert snapshot_files(), (
        f"`purserctl snapshot` answered index {out['index']} but no raft snapshot at or after "
        f"that index appeared in the leader's data dir: {sorted(os.listdir(lead.data))}")


def test_backup_then_restore_round_trip(cluster3, tmp_path):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "100", "--tag", "team=eng")
    ok(h, "account", "create", "acme/mkt", "--cap", "12.5")
    r1 = js(h, "reserve", "acme/mkt", "2.25", "--ttl", "2h")["id"]
    js(h, "commit", str(r1), "1.5")
    open_res = js(h, "reserve", "acme/mkt", "0.75", "--ttl", "2h")["id"]
    ok(h, "price", "set", "gpt-4o", "--input", "2.5", "--output", "10")
    ok(h, "policy", "set", "required-metadata", "team")
    before = {"accounts": accounts(h), "prices": js(h, "price", "list")["prices"],
              "policy": js(h, "policy", "show")["required_metadata"],
              "reservation": rpc_read(h, "reservation", open_res)}
    for k in VOLATILE:
        before["reservation"].pop(k, None)

    path = str(tmp_path / "ledger.img")
    b = js(h, "backup", path)
    assert b["file"] == path and b["bytes"] == os.path.getsize(path) and b["bytes"] > 0
    assert re.fullmatch(r"[0-9a-f]{64}", b["hash"]) and b["index"] > 0
    assert not os.path.exists(path + ".tmp")

    # change everything after the backup
    ok(h, "account", "create", "late")
    js(h, "commit", str(open_res), "0.5")
    ok(h, "account", "update", "acme", "--cap", "50", "--tag", "team=ops")
    ok(h, "account", "freeze", "acme/mkt")
    ok(h, "price", "set", "gpt-4o", "--input", "9", "--output", "9")
    ok(h, "policy", "set", "required-metadata", "team,project_id")
    assert accounts(h) != before["accounts"]

    out = js(h, "restore", path)
    assert isinstance(out["index"], int)
    after = {"accounts": accounts(h), "prices": js(h, "price", "list")["prices"],
             "policy": js(h, "policy", "show")["required_metadata"],
             "reservation": rpc_read(h, "reservation", open_res)}
    for k in VOLATILE:
        after["reservation"].pop(k, None)
    assert after == before
    assert balances(h, "acme/mkt") == (1_500_000, 750_000, 10_250_000, "active")
    assert "not found" in refused(h, 1, "account", "show", "late")
    assert js(h, "cluster", "verify")["is_equal"] is True
    # the same state gives the same image hash
    assert js(h, "backup", str(tmp_path / "again.img"))["hash"] == b["hash"]


# ---- accounts ----

def test_account_create_and_show_json_fields(cluster3):
    h = cluster3
    out = js(h, "account", "create", "acme", "--cap", "100", "--period", "month", "--tz",
             "+02:00", "--tag", "team=eng", "--tag", "cc=42")
    assert out["name"] == "acme" and isinstance(out["id"], int)
    a = show(h, "acme")
    assert {k: a[k] for k in ("name", "cap_micros", "period", "spent_micros", "reserved_micros",
                              "available_micros", "status", "tags", "tz_offset_min")} == {
        "name": "acme", "cap_micros": 100 * USD, "period": "month", "spent_micros": 0,
        "reserved_micros": 0, "available_micros": 100 * USD, "status": "active",
        "tags": {"team": "eng", "cc": "42"}, "tz_offset_min": 120}
    assert a["id"] == out["id"]
    # no cap: unlimited is null in JSON
    js(h, "account", "create", "acme/free")
    f = show(h, "acme/free")
    assert f["cap_micros"] is None and f["period"] == "none" and f["tags"] == {}
    assert f["available_micros"] == 100 * USD  # the tightest room on the path
    assert "exists" in refused(h, 1, "account", "create", "acme")
    assert "not found" in refused(h, 1, "account", "show", "nope")


def test_account_update_changes_only_what_is_given(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "10", "--period", "day", "--tag", "a=1")
    rid = js(h, "reserve", "acme", "1")["id"]
    js(h, "commit", str(rid), "1")
    out = js(h, "account", "update", "acme", "--cap", "20.25", "--tag", "owner=bob")
    assert out["name"] == "acme"
    a = show(h, "acme")
    assert (a["cap_micros"], a["period"], a["tags"]) == (20_250_000, "day", {"owner": "bob"})
    assert (a["spent_micros"], a["available_micros"]) == (USD, 19_250_000)
    ok(h, "account", "update", "acme", "--period", "month")
    a = show(h, "acme")
    assert (a["cap_micros"], a["period"], a["tags"]) == (20_250_000, "month", {"owner": "bob"})
    assert "nothing to change" in refused(h, 2, "account", "update", "acme")
    assert "conflict" in refused(h, 1, "account", "update", "acme", "--cap", "0.5")
    assert show(h, "acme")["cap_micros"] == 20_250_000


def test_account_list_in_name_order_with_prefix(cluster3):
    h = cluster3
    for name, cap in [("zeta", "1"), ("acme", "5"), ("acme/b", "2"), ("acme/a", "3")]:
        ok(h, "account", "create", name, "--cap", cap)
    lst = accounts(h)
    assert [a["name"] for a in lst] == ["acme", "acme/a", "acme/b", "zeta"]
    assert [a["cap_micros"] for a in lst] == [5 * USD, 3 * USD, 2 * USD, USD]
    assert all(isinstance(a["tags"], dict) for a in lst)
    # NAME lists that account and its subtree; a trailing "/" means the same
    for prefix in ("acme", "acme/"):
        sub = js(h, "account", "list", prefix)["accounts"]
        assert [a["name"] for a in sub] == ["acme", "acme/a", "acme/b"], prefix
    assert [a["name"] for a in js(h, "account", "list", "acme/b")["accounts"]] == ["acme/b"]
    assert js(h, "account", "list", "ac")["accounts"] == []
    rows = ok(h, "account", "list", "acme/").splitlines()
    assert [r.split()[0] for r in rows] == ["NAME", "acme", "acme/a", "acme/b"]


def test_freeze_refuses_spend_and_unfreeze_restores_it(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "10")
    ok(h, "account", "create", "acme/team")
    out = js(h, "account", "freeze", "acme", "--reason", "audit")
    assert (out["name"], out["status"]) == ("acme", "frozen")
    assert show(h, "acme")["status"] == "frozen"
    err = refused(h, 1, "reserve", "acme/team", "1")
    assert "account_frozen" in err and '"acme"' in err
    assert balances(h, "acme") == (0, 0, 10 * USD, "frozen")
    out = js(h, "account", "unfreeze", "acme")
    assert (out["name"], out["status"]) == ("acme", "active")
    assert js(h, "reserve", "acme/team", "1")["amount_micros"] == USD
    assert balances(h, "acme") == (0, USD, 9 * USD, "active")


def test_close_account_is_final(cluster3):
    h = cluster3
    ok(h, "account", "create", "old", "--cap", "3")
    out = js(h, "account", "close", "old")
    assert (out["name"], out["status"]) == ("old", "closed")
    assert show(h, "old")["status"] == "closed"
    err = refused(h, 1, "reserve", "old", "1")
    assert "account_closed" in err and '"old"' in err
    assert "account_closed" in refused(h, 1, "account", "unfreeze", "old")
    assert balances(h, "old") == (0, 0, 3 * USD, "closed")


# ---- grants ----

def test_grant_create_and_close(cluster3):
    h = cluster3
    ok(h, "account", "create", "eng", "--cap", "50")
    t0 = int(time.time() * 1000)
    g = js(h, "grant", "create", "eng", "2", "--ttl", "30m", "--workflow", "wf1")
    t1 = int(time.time() * 1000)
    assert g["account"] == f"eng/grant-{g['id']}"
    assert (g["amount_micros"], g["remaining_micros"]) == (2 * USD, 2 * USD)
    assert t0 + 30 * 60_000 - 2000 <= g["expires_at_ms"] <= t1 + 30 * 60_000 + 2000
    ga = show(h, g["account"])
    assert (ga["cap_micros"], ga["is_grant"], ga["status"]) == (2 * USD, True, "active")
    assert balances(h, "eng") == (0, 2 * USD, 48 * USD, "active")

    rid = js(h, "reserve", g["account"], "0.5")["id"]
    js(h, "commit", str(rid), "0.3")
    closed = js(h, "grant", "close", str(g["id"]))
    assert closed == {"id": g["id"], "spent_micros": 300_000, "returned_micros": 1_700_000}
    assert js(h, "grant", "close", str(g["id"])) == closed  # closing again: the same answer
    assert show(h, g["account"])["status"] == "closed"
    assert balances(h, "eng") == (300_000, 0, 49_700_000, "active")
    assert "grant_expired" in refused(h, 1, "reserve", g["account"], "0.1")
    info = rpc_read(h, "grant", g["id"])
    assert (info["workflow"], info["is_open"]) == ("wf1", False)


# ---- reservations ----

def test_reserve_commit_json_fields_and_repeated_commit(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "12.5")
    t0 = int(time.time() * 1000)
    r = js(h, "reserve", "acme", "2.25", "--ttl", "90s")
    assert set(r) == {"id", "amount_micros", "expires_at_ms", "remaining_micros"}
    assert (r["amount_micros"], r["remaining_micros"]) == (2_250_000, 10_250_000)
    assert t0 + 88_000 <= r["expires_at_ms"] <= t0 + 95_000
    assert balances(h, "acme") == (0, 2_250_000, 10_250_000, "active")

    c = js(h, "commit", str(r["id"]), "1.5")
    assert set(c) == {"transfer_id", "cost_micros", "overrun_micros", "remaining_micros"}
    assert (c["cost_micros"], c["overrun_micros"], c["remaining_micros"]) == (
        1_500_000, 0, 11_000_000)
    assert c["transfer_id"] > 0
    # a second commit (a new idempotency key) answers like the first
    assert js(h, "commit", str(r["id"]), "1.5") == c
    assert balances(h, "acme") == (1_500_000, 0, 11_000_000, "active")
    res = rpc_read(h, "reservation", r["id"])
    assert (res["status"], res["actual_micros"], res["payee"]) == (
        "committed", 1_500_000, "vendor/unknown")
    # an overrun is posted and reported
    r2 = js(h, "reserve", "acme", "1")["id"]
    c2 = js(h, "commit", str(r2), "1.25")
    assert (c2["cost_micros"], c2["overrun_micros"], c2["remaining_micros"]) == (
        1_250_000, 250_000, 9_750_000)


def test_commit_with_a_different_amount_is_refused(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "10")
    rid = js(h, "reserve", "acme", "3")["id"]
    js(h, "commit", str(rid), "2")
    err = refused(h, 1, "commit", str(rid), "2.5")
    assert "conflict" in err and str(rid) in err
    assert balances(h, "acme") == (2 * USD, 0, 8 * USD, "active")
    assert rpc_read(h, "reservation", rid)["actual_micros"] == 2 * USD


def test_release_returns_the_hold_and_repeats_the_answer(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "10")
    rid = js(h, "reserve", "acme", "3.000001")["id"]
    assert balances(h, "acme") == (0, 3_000_001, 6_999_999, "active")
    out = js(h, "release", str(rid))
    assert out == {"id": rid, "returned_micros": 3_000_001, "remaining_micros": 10 * USD}
    assert js(h, "release", str(rid)) == out
    assert balances(h, "acme") == (0, 0, 10 * USD, "active")
    assert rpc_read(h, "reservation", rid)["status"] == "released"
    assert "conflict" in refused(h, 1, "commit", str(rid), "1")
    assert "not_found" in refused(h, 1, "release", "999999")


def test_budget_exceeded_exit_1_names_the_account(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "10")
    ok(h, "account", "create", "acme/team")
    js(h, "reserve", "acme/team", "9")
    err = refused(h, 1, "reserve", "acme/team", "1.000001")
    assert "budget_exceeded" in err and '"acme"' in err
    assert balances(h, "acme") == (0, 9 * USD, USD, "active")
    assert js(h, "reserve", "acme/team", "1")["remaining_micros"] == 0


# ---- transfers ----

def test_transfer_chargeback(cluster3):
    h = cluster3
    ok(h, "account", "create", "eng", "--cap", "50")
    ok(h, "account", "create", "mkt", "--cap", "30")
    out = js(h, "transfer", "eng", "mkt", "1.5", "--kind", "chargeback", "--tag", "ticket=T-1")
    assert (out["kind"], out["amount_micros"]) == ("chargeback", 1_500_000)
    assert balances(h, "eng") == (1_500_000, 0, 48_500_000, "active")
    assert balances(h, "mkt") == (0, 0, 30 * USD, "active")  # credits never reduce spent
    p = journal(h)[-1]
    assert (p["id"], p["kind"], p["debit"], p["credit"], p["amount_micros"], p["metadata"]) == (
        out["id"], "chargeback", "eng", "mkt", 1_500_000, {"ticket": "T-1"})
    # a chargeback must fit the debit's cap
    err = refused(h, 1, "transfer", "eng", "mkt", "48.500001", "--kind", "chargeback")
    assert "budget_exceeded" in err and '"eng"' in err
    assert balances(h, "eng")[0] == 1_500_000


def test_transfer_adjustment(cluster3):
    h = cluster3
    ok(h, "account", "create", "eng", "--cap", "5")
    ok(h, "account", "create", "mkt", "--cap", "30")
    out = js(h, "transfer", "mkt", "eng", "0.25", "--kind", "adjustment")
    assert (out["kind"], out["amount_micros"]) == ("adjustment", 250_000)
    assert balances(h, "mkt") == (250_000, 0, 29_750_000, "active")
    p = journal(h)[-1]
    assert (p["id"], p["kind"], p["debit"], p["credit"], p["amount_micros"]) == (
        out["id"], "adjustment", "mkt", "eng", 250_000)
    # an adjustment is not fitted: it may overdraw
    js(h, "transfer", "eng", "mkt", "6", "--kind", "adjustment")
    assert balances(h, "eng") == (6 * USD, 0, 0, "active")
    assert refused(h, 2, "transfer", "eng", "mkt", "1", "--kind", "gift").count("gift") == 1


# ---- keys, prices, policy, periods ----

def test_key_create_stores_the_secret_hash_and_revoke(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme")
    k = js(h, "key", "create", "acme")
    assert re.fullmatch(r"key_[0-9a-f]{12}", k["id"])
    assert re.fullmatch(r"pk_[0-9a-f]{64}", k["key"])
    found = rpc_read(h, "key_by_hash", hashlib.sha256(k["key"].encode()).digest())
    assert (found["id"], found["account"], found["role"], found["is_revoked"]) == (
        k["id"], "acme", "agent", False)
    adm = js(h, "key", "create", "acme", "--role", "admin")
    assert adm["key"] != k["key"] and adm["id"] != k["id"]
    assert rpc_read(h, "key_by_hash",
                    hashlib.sha256(adm["key"].encode()).digest())["role"] == "admin"

    out = js(h, "key", "revoke", k["id"])
    assert (out["id"], out["status"]) == (k["id"], "revoked")
    found = rpc_read(h, "key_by_hash", hashlib.sha256(k["key"].encode()).digest())
    assert found["is_revoked"] is True
    assert "not_found" in refused(h, 1, "key", "revoke", "key_000000000000")
    assert "not_found" in refused(h, 1, "key", "create", "nope")
    assert "--role" in refused(h, 2, "key", "create", "acme", "--role", "root")


def test_price_set_and_list(cluster3):
    h = cluster3
    out = js(h, "price", "set", "gpt-4o", "--input", "2.5", "--output", "10")
    assert out == {"model": "gpt-4o", "input_micros": 2_500_000, "output_micros": 10 * USD,
                   "cached_micros": 2_500_000, "cache_write_micros": 2_500_000}
    ok(h, "price", "set", "claude", "--input", "3", "--output", "15", "--cached", "0.3",
       "--cache-write", "3.75")
    lst = js(h, "price", "list")["prices"]
    assert lst == [
        {"model": "claude", "input_micros": 3 * USD, "output_micros": 15 * USD,
         "cached_micros": 300_000, "cache_write_micros": 3_750_000},
        {"model": "gpt-4o", "input_micros": 2_500_000, "output_micros": 10 * USD,
         "cached_micros": 2_500_000, "cache_write_micros": 2_500_000}]
    rows = {line.split()[0]: line.split() for line in ok(h, "price", "list").splitlines()[1:]}
    assert rows["MODEL"] == ["MODEL", "INPUT", "OUTPUT", "CACHED", "CACHE_WRITE"]
    assert rows["claude"] == ["claude", "3.000000", "15.000000", "0.300000", "3.750000"]
    assert "--input" in refused(h, 2, "price", "set", "x", "--output", "1")


def test_policy_set_and_show(cluster3):
    h = cluster3
    assert js(h, "policy", "show")["required_metadata"] == []
    out = js(h, "policy", "set", "required-metadata", "team,project_id,ticket_id")
    assert out == {"required_metadata": ["team", "project_id", "ticket_id"]}
    assert js(h, "policy", "show")["required_metadata"] == ["team", "project_id", "ticket_id"]
    assert ok(h, "policy", "show") == ("required metadata: team, project_id, ticket_id\n"
                                       "approval above: none\n")
    assert js(h, "policy", "show")["approval_above_micros"] is None
    assert js(h, "policy", "set", "approval-above", "2.5") == {"approval_above_micros": 2500000}
    assert ok(h, "policy", "show").endswith("approval above: 2.500000\n")
    assert js(h, "policy", "set", "approval-above", "none") == {"approval_above_micros": None}
    assert "approval-above" in refused(h, 2, "policy", "set", "approval-above", "-1")
    assert "unknown policy" in refused(h, 2, "policy", "set", "colour", "red")


def test_limit_set_list_clear(cluster3):
    h = cluster3
    ok(h, "account", "create", "lim")
    out = js(h, "limit", "set", "lim", "--rpm", "5", "--tpd", "1000")
    assert out == {"account": "lim", "meta_key": "", "meta_value": "", "rpm": 5, "tpm": 0,
                   "tph": 0, "tpd": 1000}
    ok(h, "limit", "set", "--meta", "project_id=p1", "--tpm", "300")
    rows = js(h, "limit", "list")["rate_limits"]
    assert [(r["account"], r["meta_key"], r["meta_value"], r["rpm"], r["tpm"], r["tpd"])
            for r in rows] == [("", "project_id", "p1", 0, 300, 0), ("lim", "", "", 5, 0, 1000)]
    table = ok(h, "limit", "list").splitlines()
    assert table[0].split()[:5] == ["SCOPE", "RPM", "TPM", "TPH", "TPD"]
    assert table[1].split()[0] == "project_id=p1" and table[2].split()[:2] == ["lim", "5"]
    assert ok(h, "limit", "clear", "lim") == "rate limits of account lim cleared\n"
    assert [r["account"] for r in js(h, "limit", "list")["rate_limits"]] == [""]
    assert "one of them" in refused(h, 2, "limit", "set", "lim", "--meta", "a=b", "--rpm", "1")
    assert "KEY=VALUE" in refused(h, 2, "limit", "set", "--meta", "novalue", "--rpm", "1")
    assert "--rpm" in refused(h, 2, "limit", "set", "lim", "--rpm", "x")
    assert "not_found" in refused(h, 1, "limit", "set", "nobody", "--rpm", "1")
    assert js(h, "estimate", "never")["samples"] == 0
    assert "no estimate yet" in ok(h, "estimate", "never")


def test_period_close_refuses_the_current_month_and_closes_a_past_one(cluster3):
    h = cluster3
    current, last = this_and_last_month()
    err = refused(h, 1, "period", "close", current)
    assert "conflict" in err and current in err
    assert js(h, "period", "list")["periods"] == []
    t0 = int(time.time() * 1000)
    out = js(h, "period", "close", last)
    assert out == {"month": last, "status": "closed"}
    periods = js(h, "period", "list")["periods"]
    assert [p["month"] for p in periods] == [last]
    assert t0 - 2000 <= periods[0]["closed_at_ms"] <= t0 + 10_000
    assert js(h, "period", "close", last) == out  # closing again is OK
    text = ok(h, "period", "list").splitlines()
    assert text[0].split() == ["MONTH", "CLOSED_AT"] and text[1].split()[0] == last
    assert "YYYY-MM" in refused(h, 2, "period", "close", "2020-13")


# ---- exit codes, idempotency, auth ----

def test_usage_errors_exit_2_and_change_nothing(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "10")
    cases = [
        (("reserve", "acme", "1.2345678"), "1.2345678"),
        (("reserve", "acme", "-5"), "negative"),
        (("reserve", "acme", "0"), "more than 0"),
        (("reserve", "acme", "ten"), "ten"),
        (("frobnicate",), "frobnicate"),
        (("account", "frob", "x"), "frob"),
        (("account",), "subcommand"),
        (("reserve", "acme"), "reserve"),
        (("commit", "1"), "commit"),
        (("commit", "abc", "1"), "abc"),
        (("account", "create", "x", "--cap"), "--cap"),
        (("account", "create", "x", "--bogus"), "--bogus"),
        (("account", "show", "acme", "--ttl", "5s"), "--ttl"),
        (("reserve", "acme", "1", "--ttl", "5 minutes"), "--ttl"),
        (("account", "create", "x", "--tz", "+25:00"), "--tz"),
        (("transfer", "a", "b", "1", "--tag", "novalue"), "novalue"),
    ]
    for args, named in cases:
        err = refused(h, 2, *args)
        assert named in err, (args, err)
    assert accounts(h)[0]["name"] == "acme" and len(accounts(h)) == 1
    assert balances(h, "acme") == (0, 0, 10 * USD, "active")


def test_unreachable_cluster_exits_3(harness):
    closed = f"127.0.0.1:{free_port()}"
    for args in [("account", "show", "acme"), ("account", "create", "acme"),
                 ("cluster", "status"), ("backup", os.path.join(harness.dir, "b.img"))]:
        t0 = time.time()
        p = run_ctl(closed, harness.auth_path, "--timeout", "1s", *args)
        assert p.returncode == 3, (args, p.returncode, p.stderr)
        assert p.stdout == ""
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "unreachable" in lines[0] and closed in lines[0], p.stderr
        assert time.time() - t0 < 8


def test_same_key_same_request_answers_the_same_and_changes_nothing(cluster3):
    h = cluster3
    a = js(h, "--key", "create-acme", "account", "create", "acme", "--cap", "10")
    assert js(h, "--key", "create-acme", "account", "create", "acme", "--cap", "10") == a
    r = js(h, "--key", "hold-1", "reserve", "acme", "0.5")
    assert js(h, "--key", "hold-1", "reserve", "acme", "0.5") == r
    assert balances(h, "acme") == (0, 500_000, 9_500_000, "active")
    c = js(h, "--key", "commit-1", "commit", str(r["id"]), "0.4")
    assert js(h, "--key", "commit-1", "commit", str(r["id"]), "0.4") == c
    t = js(h, "--key", "move-1", "transfer", "acme", "vendor/x", "1", "--kind", "adjustment")
    assert js(h, "--key", "move-1", "transfer", "acme", "vendor/x", "1", "--kind",
              "adjustment") == t
    assert balances(h, "acme") == (1_400_000, 0, 8_600_000, "active")
    assert len([p for p in journal(h) if p["debit"] == "acme"]) == 2


def test_same_key_different_request_is_a_conflict(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "10")
    r = js(h, "--key", "K1", "reserve", "acme", "0.5")
    err = refused(h, 1, "--key", "K1", "reserve", "acme", "0.75")
    assert "conflict" in err and "K1" in err
    err = refused(h, 1, "--key", "K1", "account", "create", "other")
    assert "conflict" in err
    assert "not found" in refused(h, 1, "account", "show", "other")
    assert balances(h, "acme") == (0, 500_000, 9_500_000, "active")
    assert js(h, "--key", "K1", "reserve", "acme", "0.5") == r


def test_reader_may_read_but_writes_are_forbidden(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "10")
    reader = write_auth(h, "auth-reader", [("reader", SECRETS["reader"])])
    assert show(h, "acme")["cap_micros"] == 10 * USD
    assert js(h, "account", "show", "acme", auth=reader)["cap_micros"] == 10 * USD
    assert len(js(h, "cluster", "status", auth=reader)["members"]) == 3
    for args in [("account", "create", "x"), ("reserve", "acme", "1"),
                 ("account", "freeze", "acme"), ("snapshot",),
                 ("cluster", "transfer-leader"), ("price", "set", "m", "--input", "1",
                                                  "--output", "1")]:
        err = refused(h, 1, *args, auth=reader)
        assert "FORBIDDEN" in err and "reader" in err, (args, err)
    assert [a["name"] for a in accounts(h)] == ["acme"]
    assert balances(h, "acme") == (0, 0, 10 * USD, "active")
    assert js(h, "price", "list")["prices"] == []


def test_wrong_secret_is_a_clear_refusal(cluster3):
    h = cluster3
    wrong = write_auth(h, "auth-wrong", [("admin", "not-the-secret")])
    for args in [("account", "list"), ("account", "create", "x"), ("cluster", "status")]:
        err = refused(h, 1, "--timeout", "2s", *args, auth=wrong)
        assert "UNAUTHORIZED" in err and wrong in err and "admin" in err, err
    assert accounts(h) == []
    missing = os.path.join(h.dir, "no-such-auth")
    assert "no-such-auth" in refused(h, 2, "account", "list", auth=missing)


# ---- output ----

def test_human_output_shows_exact_decimals(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "100")
    ok(h, "account", "create", "acme/mkt", "--cap", "12.5", "--tag", "team=eng")
    out = ok(h, "reserve", "acme/mkt", "2.000001")
    rid = int(re.match(r"reservation (\d+): ", out).group(1))
    assert re.fullmatch(
        rf"reservation {rid}: 2\.000001 USD held until \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z;"
        r" 10\.499999 USD left\n", out), out
    out = ok(h, "commit", str(rid), "0.25")
    assert re.fullmatch(rf"reservation {rid} committed: cost 0\.250000 USD \(overrun 0\.000000\),"
                        rf" transfer \d+; 12\.250000 USD left\n", out), out
    lines = ok(h, "account", "show", "acme/mkt").splitlines()
    fields = {line.split()[0]: line.split(None, 1)[1] for line in lines}
    assert fields["cap"] == "12.500000"
    assert fields["spent"] == "0.250000"
    assert fields["reserved"] == "0.000000"
    assert fields["available"] == "12.250000"
    assert fields["status"] == "active"
    assert fields["tags"] == '{"team":"eng"}'
    table = ok(h, "account", "list").splitlines()
    assert table[0].split() == ["NAME", "STATUS", "CAP", "PERIOD", "SPENT", "RESERVED",
                                "AVAILABLE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["acme"] == ["acme", "active", "100.000000", "none", "0.250000", "0.000000",
                            "99.750000"]
    assert rows["acme/mkt"] == ["acme/mkt", "active", "12.500000", "none", "0.250000",
                                "0.000000", "12.250000"]
    assert rows["vendor/unknown"][2] == "unlimited"


def test_stale_read_is_answered_by_a_follower_without_quorum(cluster3):
    h = cluster3
    ok(h, "account", "create", "acme", "--cap", "12.5")
    rid = js(h, "reserve", "acme", "2.25")["id"]
    js(h, "commit", str(rid), "1.5")
    lead = h.leader()
    index = lead.status()["applied_index"]
    h.wait_applied(h.nodes, index)
    followers = [n for n in h.nodes if n is not lead]
    lead.kill()
    followers[0].kill()
    survivor = followers[1]
    assert h.addrs() == [survivor.rpc]
    a = js(h, "--stale", "account", "show", "acme")
    assert a["applied_index"] >= index
    assert (a["cap_micros"], a["spent_micros"], a["reserved_micros"], a["available_micros"]) == (
        12_500_000, 1_500_000, 0, 11_000_000)
    assert ok(h, "--stale", "account", "list").splitlines()[1].split()[:3] == [
        "acme", "active", "12.500000"]
    # a linearizable read needs the (gone) quorum
    err = refused(h, 3, "--timeout", "2s", "account", "show", "acme")
    assert "acme" in err
