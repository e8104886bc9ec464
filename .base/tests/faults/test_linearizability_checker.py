"""The linearizability checker itself, on small hand-made histories whose
verdict is known, and on generated ones (linearizable by construction, then
broken by one wrong answer)."""
import random
import time

import pytest

from linearizability import Op, WalletModel, check

CAP = 10_000


def ok(kind, t0, t1, amount=0, rid=None, value=None, proc=0):
    return Op(kind, t0, t1, "ok", amount=amount, rid=rid, value=value, proc=proc)


def fail(kind, t0, t1, amount=0, rid=None, proc=0):
    return Op(kind, t0, t1, "fail", amount=amount, rid=rid, proc=proc)


def unknown(kind, t0, amount=0, rid=None, proc=0):
    return Op(kind, t0, None, "unknown", amount=amount, rid=rid, proc=proc)


def verdict(history, cap=CAP):
    return check(history, WalletModel(cap))


def test_sequential_history_is_linearizable():
    h = [ok("reserve", 0, 1, 3000, rid=1, value=7000),
         ok("read", 2, 3, value=7000),
         ok("commit", 4, 5, 2500, rid=1, value=7500),
         ok("read", 6, 7, value=7500),
         ok("reserve", 8, 9, 7000, rid=2),
         fail("reserve", 10, 11, 1000),
         ok("release", 12, 13, rid=2, value=7500),
         ok("read", 14, 15, value=7500)]
    r = verdict(h)
    assert r.ok, r.explain()
    assert [o.kind for o in r.linearization] == [o.kind for o in h]


def test_read_missing_an_acknowledged_reserve_is_rejected():
    # The reserve was acknowledged (complete at 1) before the read began (2):
    # the read must see it.
    h = [ok("reserve", 0, 1, 3000, rid=1), ok("read", 2, 3, value=CAP)]
    r = verdict(h)
    assert not r.ok
    assert "NOT linearizable" in r.explain()


def test_read_concurrent_with_a_reserve_may_see_either():
    for seen in (CAP, CAP - 3000):
        h = [ok("reserve", 0, 5, 3000, rid=1), ok("read", 1, 2, value=seen)]
        assert verdict(h).ok, seen
    h = [ok("reserve", 0, 5, 3000, rid=1), ok("read", 1, 2, value=CAP - 1)]
    assert not verdict(h).ok


def test_stale_read_after_commit_is_rejected():
    h = [ok("reserve", 0, 1, 3000, rid=1),
         ok("commit", 2, 3, 1000, rid=1),
         ok("read", 4, 5, value=CAP - 3000)]   # still sees the hold, not the spend
    assert not verdict(h).ok
    h[2] = ok("read", 4, 5, value=CAP - 1000)
    assert verdict(h).ok


def test_overspend_is_rejected_sequential_and_concurrent():
    h = [ok("reserve", 0, 1, 6000, rid=1), ok("reserve", 2, 3, 6000, rid=2)]
    assert not verdict(h).ok
    h = [ok("reserve", 0, 3, 6000, rid=1), ok("reserve", 1, 2, 6000, rid=2)]
    assert not verdict(h).ok
    # One of two concurrent reserves refused: fine, whichever came first.
    for first in (1, 2):
        h = [Op("reserve", 0, 3, "ok" if first == 1 else "fail", amount=6000, rid=1),
             Op("reserve", 1, 2, "ok" if first == 2 else "fail", amount=6000, rid=2)]
        assert verdict(h).ok


def test_refusal_with_room_left_is_rejected():
    h = [ok("reserve", 0, 1, 3000, rid=1), fail("reserve", 2, 3, 7000)]
    assert not verdict(h).ok
    h = [ok("reserve", 0, 1, 3000, rid=1), fail("reserve", 2, 3, 7001)]
    assert verdict(h).ok


def test_remaining_in_answers_is_checked():
    h = [ok("reserve", 0, 1, 3000, rid=1, value=7000), ok("commit", 2, 3, 1000, rid=1, value=9000)]
    assert verdict(h).ok
    h[1] = ok("commit", 2, 3, 1000, rid=1, value=7000)
    assert not verdict(h).ok


def test_retried_commit_with_the_same_actual_is_one_commit():
    h = [ok("reserve", 0, 1, 3000, rid=1),
         ok("commit", 2, 3, 1000, rid=1),
         ok("commit", 4, 5, 1000, rid=1),
         fail("commit", 6, 7, 2000, rid=1),    # another actual: a conflict
         fail("release", 8, 9, rid=1),          # committed: cannot release
         ok("read", 10, 11, value=CAP - 1000)]
    assert verdict(h).ok
    h[3] = ok("commit", 6, 7, 2000, rid=1)
    assert not verdict(h).ok


def test_commit_of_a_released_reservation_is_refused():
    h = [ok("reserve", 0, 1, 3000, rid=1), ok("release", 2, 3, rid=1),
         ok("release", 4, 5, rid=1), fail("commit", 6, 7, 100, rid=1),
         ok("read", 8, 9, value=CAP)]
    assert verdict(h).ok
    h[3] = ok("commit", 6, 7, 100, rid=1)
    assert not verdict(h).ok


def test_unknown_operations_may_or_may_not_take_effect():
    # An unanswered reserve shows up later: it took effect after its invoke.
    h = [unknown("reserve", 0, 3000),
         ok("read", 1, 2, value=CAP),
         ok("read", 3, 4, value=CAP - 3000),
         ok("read", 5, 6, value=CAP - 3000)]
    assert verdict(h).ok
    # ... or never: also fine.
    h = [unknown("reserve", 0, 3000), ok("read", 1, 2, value=CAP)]
    assert verdict(h).ok
    # But it cannot take effect before it was invoked ...
    h = [ok("read", 0, 1, value=CAP - 3000), unknown("reserve", 2, 3000)]
    assert not verdict(h).ok
    # ... nor be undone: its hold has an id nobody knows, so it stays.
    h = [unknown("reserve", 0, 3000),
         ok("read", 1, 2, value=CAP - 3000),
         ok("read", 3, 4, value=CAP)]
    assert not verdict(h).ok
    # An unanswered commit of a known reservation.
    h = [ok("reserve", 0, 1, 3000, rid=1), unknown("commit", 2, 500, rid=1),
         ok("read", 3, 4, value=CAP - 500)]
    assert verdict(h).ok
    # Unanswered reads say nothing.
    h = [ok("reserve", 0, 1, 3000, rid=1), Op("read", 2, None, "unknown", value=None)]
    assert verdict(h).ok


def test_reservation_ids_must_be_unique():
    h = [ok("reserve", 0, 1, 1000, rid=7), ok("reserve", 2, 3, 1000, rid=7)]
    assert not verdict(h).ok


def generate(seed, n=200, procs=8, cap=50_000, p_unknown=0.03):
    """A linearizable history by construction: op k takes effect at time k,
    inside [invoke, complete]; each process calls one op at a time."""
    rng = random.Random(seed)
    model = WalletModel(cap)
    state = model.initial()
    free = [0.0] * procs
    mine = [[] for _ in range(procs)]
    next_id = 1
    out = []
    k = 0.0
    while len(out) < n:
        k += 1.0
        ready = [p for p in range(procs) if free[p] <= k]
        if not ready:
            continue
        p = rng.choice(ready)
        invoke = rng.uniform(max(free[p], k - 2.0), k)
        complete = k + rng.uniform(0.0, 3.0)
        free[p] = complete
        avail = state[0]
        r = rng.random()
        if mine[p] and r < 0.45:
            rid, amount = mine[p].pop(rng.randrange(len(mine[p])))
            if rng.random() < 0.6:
                op = Op("commit", invoke, complete, "ok", amount=rng.randrange(0, amount + 1, 1000),
                        rid=rid, proc=p)
            else:
                op = Op("release", invoke, complete, "ok", rid=rid, proc=p)
        elif r < 0.7:
            op = Op("read", invoke, complete, "ok", value=avail, proc=p)
        else:
            amount = rng.randrange(1000, 9000, 1000)
            if amount <= avail:
                op = Op("reserve", invoke, complete, "ok", amount=amount, rid=next_id, proc=p)
                mine[p].append((next_id, amount))
                next_id += 1
            else:
                op = Op("reserve", invoke, complete, "fail", amount=amount, proc=p)
        nxt = model.step(state, op)
        assert nxt is not None, (op, state)
        state = nxt
        if op.kind != "read" and op.outcome == "ok" and rng.random() < 0.5:
            op.value = state[0]
        if op.kind != "read" and rng.random() < p_unknown:
            op.outcome, op.complete = "unknown", None   # it took effect; nobody heard
            if op.kind == "reserve":
                op.rid = None
                mine[p] = [m for m in mine[p] if m[0] != next_id - 1]
        out.append(op)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_generated_histories(seed):
    h = generate(seed)
    t = time.monotonic()
    r = verdict(h, cap=50_000)
    assert r.ok, r.explain()
    # One read answers one micro-dollar off: no order explains it.
    reads = [o for o in h if o.kind == "read"]
    bad = random.Random(seed).choice(reads)
    bad.value += 1
    r2 = verdict(h, cap=50_000)
    assert not r2.ok
    assert time.monotonic() - t < 20, "the checker is too slow for 200 ops"
