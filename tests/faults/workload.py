"""Bounded concurrent load for the fault suite, with every call's answer
recorded, and the checks run on the ledger afterwards.

Callers do keyed reserve -> commit on capped wallets and plain chargeback
transfers.  Each call is one logical operation: the client follows the
leader and retries with the same command bytes (so the same idempotency key)
until it gets an answer or gives up; the operation's outcome is then

  ok       the ledger applied it and said so (acknowledged);
  refused  the ledger answered with a refusal status (e.g. budget_exceeded);
  unknown  no answer (timeouts, UNAVAILABLE, connection lost): it may or may
           not have been applied.

Every idempotency key also travels in the command's metadata ("k"), so the
journal and the reservations can be matched to the calls afterwards.
"""
import random
import socket
import threading
import time
import uuid

import msgpack

import purser_rpc as pr
import tally
from purser_rpc import Client, RpcError

SECRETS = {"admin": "adm-secret-1", "gateway": "gw-secret-1", "reader": "rd-secret-1"}
USD = pr.USD

# Two capped wallets: "tight" runs into its cap during a test (refusals and
# contention at the edge), "loose" never does (liveness after a heal).
TIGHT, TIGHT_CAP = "acme/team", 40 * USD
LOOSE, LOOSE_CAP = "beta/team", 1_000_000 * USD
PAYEE = "infra"  # the department chargebacks pay
HOLD = 300_000
ACTUAL = 250_000
XFER = 100_000


def setup_wallets(h):
    cl = h.cluster()
    for cmd in (pr.account_create("acme", cap=TIGHT_CAP, period="none"),
                pr.account_create(TIGHT),
                pr.account_create("beta", cap=LOOSE_CAP, period="none"),
                pr.account_create(LOOSE),
                pr.account_create(PAYEE)):
        r = cl.apply(cmd)
        assert r.ok, r
    cl.close()


class Op:
    __slots__ = ("kind", "key", "account", "amount", "rid", "invoke", "complete", "outcome",
                 "result", "attempts", "thread")

    def __init__(self, kind, key, account, amount, rid=None, thread=None):
        self.kind = kind
        self.key = key
        self.account = account
        self.amount = amount
        self.rid = rid
        self.invoke = time.monotonic()
        self.complete = None
        self.outcome = None
        self.result = None
        self.attempts = []  # (addr, "ok" | error code | exception name, time)
        self.thread = thread

    def __repr__(self):
        return (f"Op({self.kind} {self.key} {self.account} {self.amount} rid={self.rid} "
                f"{self.outcome} {self.result!r} attempts={self.attempts[-4:]})")


def call_recorded(conn_holder, addrs, method, params, op, deadline, client_timeout=2.0):
    """Call until an answer or the deadline; record every attempt in op.
    conn_holder is a one-element list holding the open Client (or None).
    Returns the result, or raises the last error."""
    order = list(addrs)
    i = random.randrange(len(order))
    last = None
    while True:
        addr = conn_holder[1] or order[i % len(order)]
        try:
            if conn_holder[0] is None:
                conn_holder[0] = Client(addr, "gateway", SECRETS["gateway"],
                                        timeout=client_timeout)
                conn_holder[1] = addr
            res = conn_holder[0].call(method, params)
            op.attempts.append((conn_holder[1], "ok", time.monotonic()))
            return res
        except RpcError as e:
            last = e
            op.attempts.append((conn_holder[1] or addr, e.code, time.monotonic()))
            _drop(conn_holder)
            if e.code == "NOT_LEADER" and e.detail and e.detail[1]:
                conn_holder[1] = e.detail[1]
            elif e.code not in ("NOT_LEADER", "UNAVAILABLE", "TOO_MANY"):
                raise
            else:
                i += 1
        except (OSError, ConnectionError) as e:
            last = e
            name = "timeout" if isinstance(e, socket.timeout) else type(e).__name__
            op.attempts.append((conn_holder[1] or addr, name, time.monotonic()))
            _drop(conn_holder)
            i += 1
        if time.monotonic() >= deadline:
            raise last
        time.sleep(0.05)


def _drop(conn_holder):
    if conn_holder[0] is not None:
        conn_holder[0].close()
    conn_holder[0] = None
    conn_holder[1] = None


class Load:
    """threads callers, each looping: reserve -> commit (70 %) or a chargeback
    transfer (30 %), on TIGHT or LOOSE, until stopped.  op_deadline bounds how
    long one operation keeps retrying."""

    def __init__(self, h, threads=6, op_deadline=6.0, pause=0.005, seed=None):
        self.h = h
        self.addrs = [n.rpc for n in h.nodes]
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.ops = []
        self.op_deadline = op_deadline
        self.pause = pause
        self.rng = random.Random(seed)
        self.errors = []
        self.threads = [threading.Thread(target=self._run, args=(i, self.rng.random()),
                                         daemon=True) for i in range(threads)]

    # ---- running -------------------------------------------------------

    def _apply(self, conn, op, command):
        try:
            raw = call_recorded(conn, self.addrs, "apply", [command], op,
                                time.monotonic() + self.op_deadline)
            r = pr.Result(msgpack.unpackb(raw, raw=False))
            op.result = r
            op.outcome = "ok" if r.ok else "refused"
        except (RpcError, OSError, ConnectionError) as e:
            op.result = e
            op.outcome = "unknown"
        op.complete = time.monotonic()
        with self.lock:
            self.ops.append(op)
        return op

    def _run(self, tid, seed):
        rng = random.Random(seed)
        conn = [None, None]
        try:
            while not self.stop_ev.is_set():
                account = TIGHT if rng.random() < 0.5 else LOOSE
                key = uuid.uuid4().hex
                if rng.random() < 0.7:
                    op = self._apply(conn, Op("reserve", "r-" + key, account, HOLD, thread=tid),
                                     pr.reserve(account, HOLD, ttl_ms=600_000,
                                                metadata={"k": "r-" + key}, key="r-" + key))
                    if op.outcome == "ok":
                        rid = op.result.id
                        op.rid = rid
                        self._apply(conn, Op("commit", "c-" + key, account, ACTUAL, rid=rid,
                                             thread=tid),
                                    pr.commit(rid, ACTUAL, key="c-" + key))
                else:
                    self._apply(conn, Op("transfer", "t-" + key, account, XFER, thread=tid),
                                pr.transfer(account, PAYEE, XFER, kind=2,
                                            metadata={"k": "t-" + key}, key="t-" + key))
                if self.pause:
                    time.sleep(self.pause)
        except Exception as e:  # a bug in the test or an unexpected answer
            self.errors.append(repr(e))
        finally:
            _drop(conn)

    def __enter__(self):
        self.started = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads), "load threads did not stop"

    # ---- queries -------------------------------------------------------

    def snapshot(self):
        with self.lock:
            return list(self.ops)

    def acked(self, kind=None, since=None, until=None):
        return [o for o in self.snapshot() if o.outcome == "ok" and (kind is None or o.kind == kind)
                and (since is None or o.invoke >= since) and (until is None or o.complete <= until)]

    def counts(self):
        out = {}
        for o in self.snapshot():
            out[(o.kind, o.outcome)] = out.get((o.kind, o.outcome), 0) + 1
        return {f"{k}/{v}": n for (k, v), n in sorted(out.items())}

    def attempt_codes(self):
        codes = {}
        for o in self.snapshot():
            for _, code, _ in o.attempts:
                codes[code] = codes.get(code, 0) + 1
        return codes


def wait_served(load, since, timeout=10.0):
    """Operations invoked after since and acknowledged, waiting up to
    timeout for the first (a loaded machine elects and serves slower)."""
    deadline = time.monotonic() + timeout
    while True:
        served = load.acked(since=since)
        if served or time.monotonic() > deadline:
            return served
        time.sleep(0.1)


# ---- probes on the minority side -------------------------------------------

def probe_writes(nodes, duration, stats, timeout=2.0, pause=0.2):
    """Send keyed chargebacks straight to each of nodes (no leader following)
    for duration seconds; record every answer in stats["probes"] as
    (node id, key, outcome, detail).  Returns the keys whose answer proves
    the write was not applied: a ledger refusal, or NOT_LEADER (refused
    before proposing).  A timeout, a dropped connection or UNAVAILABLE is an
    unknown outcome (the entry may have been proposed by a leader that had
    not yet noticed it lost its quorum, and commit after the heal, as raft
    allows): those keys may be applied, once (check_ledger's "nothing
    applied twice" still covers them)."""
    deadline = time.monotonic() + duration
    keys = []
    while time.monotonic() < deadline:
        for n in nodes:
            key = "p-" + uuid.uuid4().hex
            cmd = pr.transfer(LOOSE, PAYEE, XFER, kind=2, metadata={"k": key}, key=key)
            try:
                c = Client(n.rpc, "gateway", SECRETS["gateway"], timeout=timeout)
                try:
                    r = c.apply(cmd)
                    outcome = ("ok" if r.ok else "refused", r.status_name)
                finally:
                    c.close()
            except RpcError as e:
                outcome = ("error", e.code)
            except (OSError, ConnectionError) as e:
                outcome = ("error", "timeout" if isinstance(e, socket.timeout)
                           else type(e).__name__)
            stats.setdefault("probes", []).append((n.id, key) + outcome)
            if outcome[0] == "refused" or outcome == ("error", "NOT_LEADER"):
                keys.append(key)
        time.sleep(pause)
    return keys


# ---- checks ----------------------------------------------------------------

def read_all(h, node=None):
    """Journal postings and every reservation, read from one node (stale:
    call after checkpoint_hashes, when every node has applied everything)."""
    node = node or h.leader()
    c = node.client("reader")
    try:
        lt = time.gmtime()
        postings = c.read("journal", lt.tm_year, lt.tm_mon, consistency="stale")["postings"]
        reservations = {}
        rid = 1
        while True:
            try:
                res = c.read("reservation", rid, consistency="stale")
            except RpcError as e:
                assert e.code == "NOT_FOUND", e
                break
            reservations[rid] = res
            rid += 1
        accounts = {a["name"]: a for a in
                    c.read("accounts", "", consistency="stale")["accounts"]}
    finally:
        c.close()
    return postings, reservations, accounts


def check_ledger(h, load, extra_absent=(), expect_nodes=None):
    """After the faults: recovery, no overspend, nothing acknowledged lost,
    nothing applied twice.  extra_absent: keys that must not be in the
    ledger (writes the minority refused).  Returns numbers for the report."""
    from conftest import checkpoint_hashes
    nodes = expect_nodes or h.nodes
    h.wait_leader(timeout=20)
    index, hashes = checkpoint_hashes(h, nodes, timeout=30)
    assert len(hashes) == len(nodes) and len(set(hashes.values())) == 1, \
        f"state hashes differ at {index}: {hashes}"
    postings, reservations, accounts = read_all(h)
    ops = load.snapshot()

    # No overspend: per capped tree, postings debited + open holds <= cap.
    for root, cap in (("acme", TIGHT_CAP), ("beta", LOOSE_CAP)):
        acct = accounts[root]
        assert acct["spent_micros"] + acct["reserved_micros"] <= cap, acct
        spent = sum(p["amount_micros"] for p in postings
                    if p["debit"] == root or p["debit"].startswith(root + "/"))
        assert spent == acct["spent_micros"], (root, spent, acct)
        held = sum(r["amount_micros"] for r in reservations.values()
                   if r["status"] == "open" and (r["account"] + "/").startswith(root + "/"))
        assert held == acct["reserved_micros"], (root, held, acct)
        assert spent + held <= cap, f"{root}: spent {spent} + held {held} > cap {cap}"

    # Nothing applied twice: per key at most one reservation, one posting.
    res_by_key = {}
    for r in reservations.values():
        k = (r.get("metadata") or {}).get("k")
        if k:
            res_by_key.setdefault(k, []).append(r)
    post_by_key = {}
    for p in postings:
        k = (p.get("metadata") or {}).get("k")
        if k:
            post_by_key.setdefault(k, []).append(p)
    twice = {k: v for k, v in list(res_by_key.items()) + list(post_by_key.items()) if len(v) > 1}
    assert not twice, f"applied twice: {list(twice.items())[:3]}"
    by_tid = {p["id"]: p for p in postings}

    # Nothing acknowledged lost.
    lost = []
    for o in ops:
        if o.outcome != "ok":
            continue
        if o.kind == "reserve":
            r = reservations.get(o.result.id)
            if not r or r["metadata"].get("k") != o.key or r["amount_micros"] != o.amount \
                    or r["account"] != o.account:
                lost.append((o, r))
        elif o.kind == "commit":
            p = by_tid.get(o.result.transfer_id)
            r = reservations.get(o.rid)
            if not p or p["amount_micros"] != o.amount or p["reservation_id"] != o.rid \
                    or not r or r["status"] != "committed":
                lost.append((o, p))
        elif o.kind == "transfer":
            p = by_tid.get(o.result.transfer_id)
            if not p or p["metadata"].get("k") != o.key or p["amount_micros"] != o.amount:
                lost.append((o, p))
    assert not lost, f"{len(lost)} acknowledged operations lost: {lost[:3]}"

    # Commits of our own open reservations (actual < hold) always fit.
    refused_commits = [o for o in ops if o.kind == "commit" and o.outcome == "refused"]
    assert not refused_commits, f"commits refused: {refused_commits[:3]}"

    # A refusal was a real refusal: nothing under its key.
    for o in ops:
        if o.outcome == "refused":
            assert o.key not in res_by_key and o.key not in post_by_key, o
    for k in extra_absent:
        assert k not in res_by_key and k not in post_by_key, \
            f"a write the minority refused was applied: {k}"
    unknown_applied = sum(1 for o in ops if o.outcome == "unknown" and
                          (o.key in res_by_key or o.key in post_by_key))
    res = {
        "ops": len(ops),
        "acked": sum(1 for o in ops if o.outcome == "ok"),
        "refused": sum(1 for o in ops if o.outcome == "refused"),
        "unknown": sum(1 for o in ops if o.outcome == "unknown"),
        "unknown_applied": unknown_applied,
        "postings": len(postings),
        "reservations": len(reservations),
        "index": index,
    }
    tally.ledger_checked(res, absent=len(extra_absent))
    return res


def assert_no_writes_between(load, since, until, why):
    """No operation invoked after `since` was acknowledged before `until`."""
    bad = [o for o in load.snapshot() if o.outcome in ("ok", "refused")
           and o.invoke >= since and o.complete <= until]
    assert not bad, f"{why}: {len(bad)} writes answered: {bad[:3]}"
