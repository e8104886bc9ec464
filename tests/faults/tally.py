"""What the fault suite did, for its closing summary: per test, the faults
injected and the operations checked.  Tests (and the helpers they share)
call fault() and checked(); conftest.py starts a row per test and prints
the rows and their totals at the end of the session."""
import collections
import re

# Printed in this order; anything else after them.
FAULTS = ("partitions", "one-way link blocks", "client route cuts", "link delays",
          "kill -9", "SIGSTOP", "disk full")
CHECKS = ("ops recorded", "acked ops verified", "refusals verified", "unknown outcomes",
          "minority writes verified absent", "histories checked", "history ops checked",
          "checker states", "gateway calls checked")

_rows = collections.OrderedDict()  # test id -> {"faults": Counter, "checks": Counter}
_current = None


def begin(test_id):
    global _current
    _current = test_id
    _rows.setdefault(test_id, {"faults": collections.Counter(),
                               "checks": collections.Counter()})


def _row():
    if _current is None:
        begin("(outside a test)")
    return _rows[_current]


def fault(kind, n=1):
    _row()["faults"][kind] += n


def checked(kind, n=1):
    _row()["checks"][kind] += n


def proxy_faults(notes):
    """Count what a NetProxy injected from its notes (NetProxy.faults);
    heals, unblocks and zero delays undo faults and are not counted."""
    for note in notes:
        if note.startswith("partition "):
            fault("partitions")
        elif note.startswith("block clients"):
            fault("client route cuts")
        elif note.startswith("block "):
            fault("one-way link blocks")
        elif note.startswith("delay "):
            m = re.search(r" ([0-9.]+)s$", note)
            if m and float(m.group(1)) > 0:
                fault("link delays")


def ledger_checked(res, absent=0):
    """res: what workload.check_ledger returns, after its checks passed."""
    checked("ops recorded", res["ops"])
    checked("acked ops verified", res["acked"])
    checked("refusals verified", res["refused"])
    checked("unknown outcomes", res["unknown"])
    checked("minority writes verified absent", absent)


def _fmt(counter, order):
    keys = [k for k in order if counter.get(k)] + sorted(k for k in counter if k not in order
                                                           and counter[k])
    return ", ".join(f"{counter[k]} {k}" for k in keys) or "-"


def report():
    """The summary's lines: one per test that injected or checked
    something, then the totals."""
    lines = []
    faults, checks = collections.Counter(), collections.Counter()
    for test_id, row in _rows.items():
        if not row["faults"] and not row["checks"]:
            continue
        faults.update(row["faults"])
        checks.update(row["checks"])
        lines.append(f"{test_id}: faults: {_fmt(row['faults'], FAULTS)}; "
                     f"checked: {_fmt(row['checks'], CHECKS)}")
    lines.append(f"TOTAL faults injected: {sum(faults.values())} "
                 f"({_fmt(faults, FAULTS)})")
    lines.append(f"TOTAL checked: {_fmt(checks, CHECKS)}")
    return lines
