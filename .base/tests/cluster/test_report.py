"""purserctl report against a real 3-node cluster (API.md `report`, docs/rpc.md
`report`): every format, totals that reconcile to the micro-dollar with the
journal, RFC 4180 quoting, XLSX sheets and totals, byte-identical output on
repeated runs and from a follower with --stale, --out, paging by offset, and
usage errors.

A real cluster stamps entries with its wall clock, so the postings land in the
current month; byte stability is checked on it with no writes in between (and
on the closed previous month).  The ledger's own tests cover month bounds."""
import csv
import io
import json
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
import zipfile
from decimal import Decimal

import pytest

import purser_rpc as pr
from conftest import PURSERCTL, PURSERD, Harness

USD = pr.USD
KINDS = ["chargeback", "spend", "trial-balance", "transfers"]
FORMATS = ["table", "csv", "json", "xlsx", "focus"]
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
TRICKY_CC = 'CC,200 "west"'
TRICKY_MODEL = 'claude, "sonnet"\nv2'


def this_month():
    t = time.gmtime()
    return t.tm_year, t.tm_mon


def month_text(y, m):
    return f"{y:04d}-{m:02d}"


def previous(y, m):
    return (y, m - 1) if m > 1 else (y - 1, 12)


def apply_ok(cl, command):
    r = cl.apply(command)
    assert r.ok, r
    return r


@pytest.fixture(scope="module")
def ledger():
    """A cluster with a small month of chargebacks, spend and an adjustment."""
    if not os.path.exists(PURSERD):
        pytest.fail(f"{PURSERD} is not built")
    h = Harness()
    try:
        h.start_cluster(3)
        cl = h.cluster()
        apply_ok(cl, pr.account_create("corp"))
        apply_ok(cl, pr.account_create("corp/eng", tags={"cost_center": "CC-100",
                                                         "owner": 'Ops, "North"'}))
        apply_ok(cl, pr.account_create("corp/mkt", tags={"cost_center": TRICKY_CC}))
        apply_ok(cl, pr.account_create("corp/ops"))
        apply_ok(cl, pr.transfer("corp/eng", "corp/mkt", 1_500_000, metadata={"team": "platform"}))
        apply_ok(cl, pr.transfer("corp/mkt", "corp/eng", 1))
        apply_ok(cl, pr.transfer("corp/ops", "corp/eng", 2_250_000,
                                 metadata={"ticket_id": 'T-1, "urgent"'}))
        apply_ok(cl, pr.transfer("corp/eng", "corp/mkt", 500_000))
        spends = [("corp/eng", "vendor/openai", 123_456,
                   {"team": "platform", "project_id": "p1", "model": "gpt-4o"}),
                  ("corp/mkt", "vendor/anthropic", 1_000_001,
                   {"team": "growth", "model": TRICKY_MODEL}),
                  ("corp/eng", "vendor/openai", 200_000, {}),
                  ("corp/eng", "vendor/openai", 76_544,
                   {"team": "platform", "project_id": "p1", "model": "gpt-4o"})]
        for account, payee, amount, meta in spends:
            rid = apply_ok(cl, pr.reserve(account, 2 * USD, payee=payee)).id
            apply_ok(cl, pr.commit(rid, amount, metadata=meta))
        apply_ok(cl, pr.transfer("corp/ops", "corp/eng", 5 * USD, kind=4))  # adjustment
        y, m = previous(*this_month())
        apply_ok(cl, pr.cmd(pr.PERIOD_CLOSE, "", month_text(y, m)))
        cl.close()
        yield h
    finally:
        h.close()


def ctl_ok(h, *args, **kw):
    p = h.ctl(*args, **kw)
    assert p.returncode == 0, f"purserctl {' '.join(args)} -> {p.returncode}\n{p.stderr}"
    return p


def ctl_raw(h, *args):
    """purserctl with its output as bytes (conftest's ctl reads text)."""
    env = dict(os.environ, PURSER_CLUSTER=",".join(h.addrs()), PURSER_AUTH=h.auth_path)
    return subprocess.run([PURSERCTL, *args], env=env, capture_output=True, timeout=60)


def report(h, kind, fmt, *extra, binary=False):
    """The report's exact output, through --out (stdout would lose CRs in
    text mode): bytes for xlsx, else text."""
    y, m = this_month()
    args = ["report", kind, "--month", month_text(y, m), "--format", fmt, *extra]
    path = os.path.join(h.dir, f"out-{time.monotonic_ns()}.{fmt}")
    assert ctl_ok(h, *args, "--out", path).stdout == ""
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data if binary else data.decode()


def journal(h):
    cl = h.cluster("reader")
    try:
        return cl.read("journal", *this_month())["postings"]
    finally:
        cl.close()


def journal_sum(h, kind=None):
    return sum(p["amount_micros"] for p in journal(h) if kind is None or p["kind"] == kind)


def micros(decimal_text):
    v = Decimal(decimal_text) * USD
    assert v == int(v), decimal_text
    return int(v)


# ---- reconciliation, per format ----

def test_csv_reconciles_with_the_journal_in_decimals_and_micros(ledger):
    h = ledger
    expect = {"chargeback": journal_sum(h, "chargeback"), "spend": journal_sum(h, "spend"),
              "transfers": journal_sum(h)}
    for kind, total in expect.items():
        text = report(h, kind, "csv")
        assert "\r\n" in text and not re.search(r"[^\r]\n", text)  # CRLF lines
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert rows, kind
        assert sum(int(r["amount_micros"]) for r in rows) == total, kind
        assert sum(micros(r["amount"]) for r in rows) == total, kind
        for r in rows:
            assert micros(r["amount"]) == int(r["amount_micros"])
    rows = list(csv.DictReader(io.StringIO(report(h, "trial-balance", "csv"), newline="")))
    assert sum(int(r["net_micros"]) for r in rows) == 0
    assert sum(int(r["debit_micros"]) for r in rows) == journal_sum(h)
    by_account = {r["account"]: r for r in rows}
    assert by_account["corp/ops"]["debit"] == "7.250000"
    assert by_account["vendor/anthropic"]["credit_micros"] == "1000001"


def test_csv_quotes_fields_with_commas_quotes_and_newlines(ledger):
    h = ledger
    text = report(h, "chargeback", "csv")
    assert '"CC,200 ""west"""' in text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert {r["creditor_cost_center"] for r in rows} >= {TRICKY_CC, "CC-100"}
    assert rows[0]["debtor"] == "corp/eng" and rows[0]["creditor"] == "corp/mkt"
    assert rows[0]["amount_micros"] == "2000000" and rows[0]["postings"] == "2"
    text = report(h, "spend", "csv", "--group-by", "team,model")
    assert '"claude, ""sonnet""\nv2"' in text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0].keys())[:4] == ["team", "model", "account", "payee"]
    assert [(r["team"], r["model"], r["amount_micros"]) for r in rows] == [
        ("", "", "200000"), ("growth", TRICKY_MODEL, "1000001"),
        ("platform", "gpt-4o", "200000")]
    text = report(h, "transfers", "csv")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    meta = [json.loads(r["metadata"]) for r in rows]
    assert {"ticket_id": 'T-1, "urgent"'} in meta
    assert [r["kind"] for r in rows].count("adjustment") == 1


def test_json_has_rows_and_totals_in_micros(ledger):
    h = ledger
    out = json.loads(report(h, "chargeback", "json"))
    assert out["report"] == "chargeback" and out["month"] == month_text(*this_month())
    views = {v["view"]: v for v in out["views"]}
    assert list(views) == ["by_account", "by_cost_center"]
    total = journal_sum(h, "chargeback")
    for v in views.values():
        assert sum(r["amount_micros"] for r in v["rows"]) == total
        assert v["total"]["amount_micros"] == total
        assert micros(v["total"]["amount"]) == total
    cc = {(r["debtor_cost_center"], r["creditor_cost_center"]): r["amount_micros"]
          for r in views["by_cost_center"]["rows"]}
    assert cc == {("", "CC-100"): 2_250_000, ("CC-100", TRICKY_CC): 2_000_000,
                  (TRICKY_CC, "CC-100"): 1}
    out = json.loads(report(h, "spend", "json", "--group-by", "project_id"))
    assert out["group_by"] == ["project_id"]
    rows = out["views"][0]["rows"]
    assert [(r["project_id"], r["account"], r["payee"], r["amount_micros"]) for r in rows] == [
        ("", "corp/eng", "vendor/openai", 200_000),
        ("", "corp/mkt", "vendor/anthropic", 1_000_001),
        ("p1", "corp/eng", "vendor/openai", 200_000)]
    assert out["views"][0]["total"]["amount_micros"] == journal_sum(h, "spend")
    out = json.loads(report(h, "trial-balance", "json"))
    assert out["views"][0]["total"]["net_micros"] == 0
    # --json picks the JSON format too
    y, m = this_month()
    p = ctl_ok(h, "--json", "report", "transfers", "--month", month_text(y, m))
    rows = json.loads(p.stdout)["views"][0]["rows"]
    assert [r["id"] for r in rows] == [p["id"] for p in journal(h)]
    assert all(r["time"].endswith("Z") for r in rows)


def test_table_is_aligned_with_exact_decimals_and_totals(ledger):
    h = ledger
    text = report(h, "trial-balance", "table")
    lines = text.splitlines()
    assert lines[0].split() == ["ACCOUNT", "POSTINGS", "DEBIT", "CREDIT", "NET"]
    assert len({len(line) for line in lines}) == 1  # aligned
    total = [line for line in lines if line.startswith("TOTAL")]
    assert len(total) == 1
    assert total[0].split()[-1] == "0.000000"
    debits = Decimal(journal_sum(h)) / USD
    assert total[0].split()[2] == f"{debits:.6f}"
    text = report(h, "chargeback", "table")
    assert "by_account:" in text and "by_cost_center:" in text
    assert sum(1 for line in text.splitlines() if line.startswith("TOTAL")) == 2


def test_focus_csv_has_the_focus_columns_and_reconciles(ledger):
    h = ledger
    y, m = this_month()
    start = f"{y:04d}-{m:02d}-01T00:00:00.000Z"
    for kind in ["spend", "chargeback", "transfers"]:
        rows = list(csv.DictReader(io.StringIO(report(h, kind, "focus"), newline="")))
        for col in ["BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart",
                    "ChargePeriodEnd", "ChargeCategory", "SubAccountId", "SubAccountName",
                    "ServiceName", "ConsumedQuantity", "ConsumedUnit", "Tags", "x_transfer_id",
                    "x_kind", "x_debit", "x_credit", "x_reservation_id"]:
            assert col in rows[0], col
        total = journal_sum(h, None if kind == "transfers" else kind)
        assert sum(micros(r["BilledCost"]) for r in rows) == total
        assert sum(int(r["x_BilledCostMicros"]) for r in rows) == total
        for r in rows:
            assert r["BillingCurrency"] == "USD" and r["EffectiveCost"] == r["BilledCost"]
            assert r["ChargePeriodStart"] == start and r["ChargePeriodEnd"] > start
            assert r["ChargeCategory"] == ("Adjustment" if r["x_kind"] == "adjustment"
                                           else "Usage")
            assert r["SubAccountId"] == r["x_debit"] and r["ServiceName"] == r["x_credit"]
            json.loads(r["Tags"])
    rows = list(csv.DictReader(io.StringIO(report(h, "spend", "focus", "--group-by", "model"),
                                           newline="")))
    assert {"model": TRICKY_MODEL} in [json.loads(r["Tags"]) for r in rows]
    rows = list(csv.DictReader(io.StringIO(report(h, "transfers", "focus"), newline="")))
    assert all(r["x_transfer_id"].isdigit() for r in rows)
    assert sum(1 for r in rows if r["x_reservation_id"]) == 4  # the four commits


def sheet_cells(z, n):
    """Rows of sheet n as lists of cell values (shared strings resolved)."""
    strings = []
    if "xl/sharedStrings.xml" in z.namelist():
        root = ET.fromstring(z.read("xl/sharedStrings.xml"))
        for si in root.findall("m:si", NS):
            strings.append("".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t")))
    root = ET.fromstring(z.read(f"xl/worksheets/sheet{n}.xml"))
    rows = []
    for row in root.iter(f"{{{NS['m']}}}row"):
        cells = []
        for c in row.findall("m:c", NS):
            col = 0
            for ch in re.match(r"[A-Z]+", c.get("r")).group(0):
                col = col * 26 + ord(ch) - 64
            cells += [None] * (col - 1 - len(cells))  # cells not written
            v = c.find("m:v", NS)
            if v is None:
                cells.append(None)
            elif c.get("t") == "s":
                cells.append(strings[int(v.text)])
            else:
                cells.append(float(v.text))
        rows.append(cells)
    return rows


def test_xlsx_has_a_sheet_per_view_with_a_totals_row(ledger):
    h = ledger
    data = report(h, "chargeback", "xlsx", binary=True)
    z = zipfile.ZipFile(io.BytesIO(data))
    book = ET.fromstring(z.read("xl/workbook.xml"))
    names = [s.get("name") for s in book.iter(f"{{{NS['m']}}}sheet")]
    assert names == ["by_account", "by_cost_center"]
    total = journal_sum(h, "chargeback")
    for n in (1, 2):
        rows = sheet_cells(z, n)
        header = rows[0]
        assert "amount" in header and "amount_micros" in header
        last = rows[-1]
        assert last[0] == "TOTAL"
        money = last[header.index("amount")]
        assert money == total / 1e6
        assert int(last[header.index("amount_micros")]) == total
        assert sum(int(r[header.index("amount_micros")]) for r in rows[1:-1]) == total
    styles = z.read("xl/styles.xml").decode()
    assert '&quot;$&quot;#,##0.00####' in styles  # a currency number format
    for kind, sheet in [("spend", "spend"), ("trial-balance", "trial_balance"),
                        ("transfers", "transfers")]:
        z = zipfile.ZipFile(io.BytesIO(report(h, kind, "xlsx", binary=True)))
        book = ET.fromstring(z.read("xl/workbook.xml"))
        assert [s.get("name") for s in book.iter(f"{{{NS['m']}}}sheet")] == [sheet]
        rows = sheet_cells(z, 1)
        assert rows[-1][0] == "TOTAL"
    # no --out: the same workbook goes to stdout
    y, m = this_month()
    p = ctl_raw(h, "report", "trial-balance", "--month", month_text(y, m), "--format", "xlsx")
    assert p.returncode == 0, p.stderr
    assert p.stdout == report(h, "trial-balance", "xlsx", binary=True)


# ---- determinism ----

def outputs(h, *extra):
    out = {}
    for kind in KINDS:
        for fmt in FORMATS:
            if fmt == "focus" and kind == "trial-balance":
                continue
            out[(kind, fmt)] = report(h, kind, fmt, *extra, binary=True)
    return out


def test_reports_are_byte_identical_on_every_run_and_from_a_follower(ledger):
    h = ledger
    first = outputs(h)
    time.sleep(1.1)  # a clock second passes: nothing may depend on it
    assert outputs(h) == first
    lead = h.leader()
    applied = lead.status()["applied_index"]
    follower = next(n for n in h.nodes if n is not lead)
    h.wait_applied([follower], applied)
    saved = list(h.nodes)
    try:
        h.nodes = [follower]  # PURSER_CLUSTER = the follower alone
        assert outputs(h, "--stale") == first
    finally:
        h.nodes = saved


def test_a_closed_month_is_empty_and_stable(ledger):
    h = ledger
    y, m = previous(*this_month())
    for kind in KINDS:
        args = ["report", kind, "--month", month_text(y, m), "--format", "json"]
        a = ctl_ok(h, *args).stdout
        assert ctl_ok(h, *args).stdout == a
        view = json.loads(a)["views"][0]
        assert view["rows"] == []
        total = view["total"]
        assert total.get("amount_micros", total.get("debit_micros")) == 0


def test_out_writes_the_file_and_nothing_to_stdout(ledger):
    h = ledger
    y, m = this_month()
    path = os.path.join(h.dir, "spend.csv")
    p = ctl_ok(h, "report", "spend", "--month", month_text(y, m), "--format", "csv",
               "--group-by", "team", "--out", path)
    assert p.stdout == ""
    with open(path, "rb") as f:
        assert f.read().decode() == report(h, "spend", "csv", "--group-by", "team")
    raw = ctl_raw(h, "report", "spend", "--month", month_text(y, m), "--format", "csv",
                  "--group-by", "team").stdout  # the same bytes on stdout
    with open(path, "rb") as f:
        assert f.read() == raw


# ---- the RPC ----

def test_rpc_report_pages_by_offset_and_states_the_applied_index(ledger):
    h = ledger
    y, m = this_month()
    lead = h.leader()
    follower = next(n for n in h.nodes if n is not lead)
    c = follower.client("reader")
    try:
        full = c.read("report", "transfers", y, m, [], consistency="stale")
        assert full["columns"][:3] == ["is_total", "id", "ts_ms"]
        assert "applied_index" in full and "now_ms" in full
        rows = list(full["rows"])
        pages = 1
        while "next_offset" in full:  # only with a small page (-DREPORT_PAGE_BYTES)
            assert full["next_offset"] == len(rows)
            full = c.read("report", "transfers", y, m, [], len(rows), consistency="stale")
            assert "applied_index" in full
            rows += full["rows"]
            pages += 1
        assert len(rows) == len(journal(h)) + 1
        assert rows[-1][0] is True
        assert rows[-1][full["columns"].index("amount_micros")] == journal_sum(h)
        tail = c.read("report", "transfers", y, m, [], 3, consistency="stale")
        assert tail["rows"] == rows[3:3 + len(tail["rows"])]
        spend = c.read("report", "spend", y, m, ["team", "model"], consistency="stale")
        assert spend["columns"] == ["is_total", "team", "model", "account", "payee", "postings",
                                    "amount_micros", "overrun_micros"]
        with pytest.raises(pr.RpcError) as e:
            c.read("report", "spend", y, 13, [], consistency="stale")
        assert e.value.code == "BAD_REQUEST" and "month" in e.value.message
        with pytest.raises(pr.RpcError) as e:
            c.read("report", "ledger", y, m, [], consistency="stale")
        assert e.value.code == "BAD_REQUEST"
        with pytest.raises(pr.RpcError) as e:
            c.read("report", "transfers", y, m, consistency="stale")
        assert e.value.code == "BAD_REQUEST"
        with pytest.raises(pr.RpcError) as e:
            c.read("report", "transfers", y, m, [], consistency="linear")
        assert e.value.code == "NOT_LEADER"
    finally:
        c.close()


def test_usage_errors_exit_2(ledger):
    h = ledger
    month = month_text(*this_month())
    cases = [["report", "spend"],
             ["report", "ledger", "--month", month],
             ["report", "spend", "--month", "2025-13"],
             ["report", "chargeback", "--month", month, "--group-by", "team"],
             ["report", "trial-balance", "--month", month, "--format", "focus"],
             ["report", "spend", "--month", month, "--format", "pdf"],
             ["report", "spend", "--month", month, "--view", "account"],
             ["report", "chargeback", "--month", month, "--view", "team"]]
    for args in cases:
        p = h.ctl(*args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert p.stdout == "" and p.stderr.startswith("purserctl: "), (args, p.stderr)
