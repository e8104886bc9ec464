"""A linearizability checker for one purser wallet (Wing & Gong's search,
with the memoization of Lowe's "Testing for linearizability", 2017).

The model is a single capped wallet:

  reserve(amount)   -> ok id | refused      ok iff amount <= available
  commit(id, actual)-> ok | refused         ok iff id is open (or was already
                                            committed with this actual)
  release(id)       -> ok | refused         ok iff id is open or released
  read()            -> available            (a linearizable read)

available = cap - spent - held.  A commit frees the hold and spends the
actual amount; a release frees the hold.  An ok answer may also carry the
wallet's available amount right after the operation ("remaining"), which the
model checks like a read.

A history is a list of Op: invoke and complete times from one monotonic
clock, an outcome "ok", "fail" (a definite refusal) or "unknown" (no answer:
the operation may or may not have taken effect, and if it did, at any point
after its invoke).  An unknown reserve that took effect holds its amount
under an id nobody learned.  Unknown reads say nothing and are dropped.

check() searches for a total order of the operations that respects real
time (a completed before b was invoked => a before b) and in which every
answer is what the model gives.  The search is a DFS over "which operation
takes effect next", among the operations no pending completed operation
precedes; every (set of linearized operations, model state) pair is visited
once.  Completed operations must all be placed; unknown ones may be left out.
"""
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

INF = math.inf


@dataclass
class Op:
    kind: str                     # "reserve" | "commit" | "release" | "read"
    invoke: float
    complete: Optional[float]     # when answered (ignored for "unknown")
    outcome: str                  # "ok" | "fail" | "unknown"
    amount: int = 0               # reserve: amount; commit: actual
    rid: Optional[int] = None     # reserve ok: the id it got; commit/release: the id
    value: Optional[int] = None   # read: available; ok writes: remaining (or None)
    proc: Any = None              # who called (for messages only)
    note: str = field(default="", compare=False)

    def __repr__(self):
        end = "?" if self.complete is None else f"{self.complete:.4f}"
        what = {"reserve": f"reserve({self.amount})", "commit": f"commit({self.rid},{self.amount})",
                "release": f"release({self.rid})", "read": "read()"}[self.kind]
        res = self.outcome
        if self.kind == "reserve" and self.outcome == "ok":
            res = f"ok id={self.rid}"
        if self.value is not None:
            res += f" -> {self.value}"
        return f"[{self.invoke:.4f}..{end}] p{self.proc} {what} {res}"


class WalletModel:
    """State: (available, open holds as a frozenset of (id, amount),
    settled as a frozenset of (id, "c", actual) / (id, "r", 0))."""

    def __init__(self, cap):
        self.cap = cap

    def initial(self):
        return (self.cap, frozenset(), frozenset())

    @staticmethod
    def _open_amount(open_, rid):
        for i, a in open_:
            if i == rid:
                return a
        return None

    def step(self, state, op):
        """The state after op takes effect with its recorded answer, or None
        if the model cannot give that answer here.  For an unknown op: the
        state if it took effect (None when it could not have: then it did
        not, and the search simply leaves it out)."""
        avail, open_, settled = state
        k = op.kind
        if k == "read":
            return state if op.value == avail else None
        if k == "reserve":
            if op.outcome == "fail":
                return state if op.amount > avail else None
            if op.amount > avail:
                return None
            new_avail = avail - op.amount
            if op.outcome == "ok" and op.value is not None and op.value != new_avail:
                return None
            if op.outcome == "ok":
                if self._open_amount(open_, op.rid) is not None or any(
                        s[0] == op.rid for s in settled):
                    return None  # an id handed out twice
                return (new_avail, open_ | {(op.rid, op.amount)}, settled)
            return (new_avail, open_, settled)  # unknown: a hold with an unknown id
        held = self._open_amount(open_, op.rid)
        if k == "commit":
            if held is not None:
                if op.outcome == "fail":
                    return None
                new_avail = avail + held - op.amount
                if op.outcome == "ok" and op.value is not None and op.value != new_avail:
                    return None
                return (new_avail, open_ - {(op.rid, held)}, settled | {(op.rid, "c", op.amount)})
            same = (op.rid, "c", op.amount) in settled
            if op.outcome == "fail":
                return None if same else state
            if op.outcome == "ok" and same:
                return None if op.value is not None and op.value != avail else state
            return None
        if k == "release":
            if held is not None:
                if op.outcome == "fail":
                    return None
                new_avail = avail + held
                if op.outcome == "ok" and op.value is not None and op.value != new_avail:
                    return None
                return (new_avail, open_ - {(op.rid, held)}, settled | {(op.rid, "r", 0)})
            released = (op.rid, "r", 0) in settled
            if op.outcome == "fail":
                return None if released else state
            if op.outcome == "ok" and released:
                return None if op.value is not None and op.value != avail else state
            return None
        raise ValueError(f"unknown op kind {k}")


@dataclass
class Result:
    ok: bool
    ops: int
    states: int
    linearization: list = None     # the order found (ok)
    stuck: list = None             # (fail) the longest prefix placed ...
    blocked: list = None           # ... and the completed ops that could not follow

    def explain(self):
        if self.ok:
            return f"linearizable: {self.ops} ops, {self.states} states searched"
        lines = [f"NOT linearizable: {self.ops} ops, {self.states} states searched;",
                 f"longest linearizable prefix ({len(self.stuck)} ops) ends:"]
        lines += [f"  {o!r}" for o in self.stuck[-8:]]
        lines.append("none of these could come next:")
        lines += [f"  {o!r}" for o in self.blocked[:8]]
        return "\n".join(lines)


def check(history, model, max_states=2_000_000):
    """history: list of Op.  Returns a Result."""
    ops = [o for o in history if not (o.kind == "read" and o.outcome != "ok")]
    for o in ops:
        assert o.outcome in ("ok", "fail", "unknown"), o
        assert o.outcome == "unknown" or o.complete is not None, o
    ops.sort(key=lambda o: o.invoke)
    n = len(ops)
    inv = [o.invoke for o in ops]
    comp = [INF if o.outcome == "unknown" else o.complete for o in ops]
    must = 0
    for i, o in enumerate(ops):
        if o.outcome != "unknown":
            must |= 1 << i
    seen = set()
    best = [0, []]   # (depth, prefix) of the deepest dead end, for the report
    path = []
    limit = sys.getrecursionlimit()
    if limit < 4 * n + 100:
        sys.setrecursionlimit(4 * n + 100)

    def candidates(done):
        # The earliest completion among pending completed ops bounds which
        # ops may take effect next: nothing pending may precede them.
        horizon = INF
        for i in range(n):
            if not (done >> i) & 1 and comp[i] < horizon:
                horizon = comp[i]
        out = []
        for i in range(n):
            if inv[i] > horizon:
                break  # sorted by invoke
            if not (done >> i) & 1:
                out.append(i)
        return out

    def dfs(done, state):
        if done & must == must:
            return True
        key = (done, state)
        if key in seen:
            return False
        seen.add(key)
        if len(seen) > max_states:
            raise RuntimeError(f"linearizability search gave up after {max_states} states")
        cands = candidates(done)
        # Completed ops first: they must be placed; unknown ones are optional.
        cands.sort(key=lambda i: comp[i] == INF)
        for i in cands:
            nxt = model.step(state, ops[i])
            if nxt is None:
                continue
            path.append(i)
            if dfs(done | (1 << i), nxt):
                return True
            path.pop()
        if len(path) >= best[0]:
            best[0] = len(path)
            best[1] = (list(path), [ops[i] for i in cands if comp[i] != INF])
        return False

    ok = dfs(0, model.initial())
    if ok:
        return Result(True, n, len(seen), linearization=[ops[i] for i in path])
    prefix, blocked = best[1] if best[1] else ([], [])
    return Result(False, n, len(seen), stuck=[ops[i] for i in prefix], blocked=blocked)
