"""Month-end close on a real 3-node cluster (docs/ledger-rules.md "Month-end
close"): a reservation opened before `period close` commits after it into
the open month; a correction is an adjustment in the open month naming the
posting it corrects (metadata `corrects`), listed by that month's report,
while the closed month's report stays byte-identical.

A real cluster stamps entries with its wall clock, so "the open month" is
the current one and the closed month is the previous one; crossing a month
boundary with entry time is covered by tests/unit/test_ledger_close.c."""
import json
import time

import purser_rpc as pr

USD = pr.USD


def month_text(y, m):
    return f"{y:04d}-{m:02d}"


def this_and_previous():
    t = time.gmtime()
    y, m = t.tm_year, t.tm_mon
    return (y, m), ((y, m - 1) if m > 1 else (y - 1, 12))


def ctl_ok(h, *args):
    p = h.ctl(*args)
    assert p.returncode == 0, f"purserctl {' '.join(args)} -> {p.returncode}\n{p.stderr}"
    return p.stdout


def test_close_then_settle_and_correct_in_the_open_month(cluster3):
    h = cluster3
    (y, m), (py, pm) = this_and_previous()
    cl = h.cluster()
    try:
        for name in ("corp", "corp/eng", "corp/ops"):
            assert cl.apply(pr.account_create(name)).ok
        wrong = cl.apply(pr.transfer("corp/eng", "corp/ops", 10 * USD))
        assert wrong.ok
        hold = cl.apply(pr.reserve("corp/eng", 5 * USD, ttl_ms=600000))
        assert hold.ok
    finally:
        cl.close()
    ctl_ok(h, "period", "close", month_text(py, pm))
    closed_args = ["report", "transfers", "--month", month_text(py, pm), "--format", "csv"]
    closed_before = ctl_ok(h, *closed_args)
    trial_args = ["report", "trial-balance", "--month", month_text(py, pm), "--format", "json"]
    trial_before = ctl_ok(h, *trial_args)

    # The hold opened before the close commits after it, with its own time.
    out = json.loads(ctl_ok(h, "--json", "commit", str(hold.id), "4"))
    settled = out["transfer_id"]
    # The correction: an adjustment in the open month naming what it corrects.
    fix = json.loads(ctl_ok(h, "--json", "transfer", "corp/ops", "corp/eng", "4", "--kind",
                            "adjustment", "--tag", f"corrects={wrong.id}"))
    bad = h.ctl("transfer", "corp/ops", "corp/eng", "1", "--kind", "adjustment", "--tag",
                "corrects=999999")
    assert bad.returncode == 1 and "corrects" in bad.stderr

    assert ctl_ok(h, *closed_args) == closed_before  # byte for byte
    assert ctl_ok(h, *trial_args) == trial_before
    rows = json.loads(ctl_ok(h, "report", "transfers", "--month", month_text(y, m),
                             "--format", "json"))["views"][0]["rows"]
    by_id = {r["id"]: r for r in rows}
    assert by_id[settled]["kind"] == "spend" and by_id[settled]["reservation_id"] == hold.id
    adj = by_id[fix["id"]]
    assert adj["kind"] == "adjustment"
    assert adj["metadata"] == {"corrects": str(wrong.id)}
    assert adj["amount_micros"] == 4 * USD
