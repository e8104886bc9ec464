"""Histories of concurrent operations on two hot wallets, recorded while the
leader is killed or cut off, checked for linearizability against the wallet
model (linearizability.py).  Reads are `read account` with consistency
"linear"; every write is keyed, and a retry reuses its key, so one logical
operation spans all its attempts."""
import random
import threading
import time
import uuid

import msgpack

import purser_rpc as pr
import tally
from conftest import wait_leader
from linearizability import Op, WalletModel, check
from purser_rpc import RpcError
from workload import call_recorded, _drop
import workload

WALLETS = ["hot1", "hot2"]
CAP = 4 * pr.USD
OPS_PER_WALLET = 180
THREADS_PER_WALLET = 6
OP_DEADLINE = 1.2  # seconds of retries: shorter than a failover, so some ops stay unknown


class Recorder:
    def __init__(self, h, wallet, seed):
        self.h = h
        self.wallet = wallet
        self.addrs = [n.rpc for n in h.nodes]
        self.ops = []
        self.lock = threading.Lock()
        self.started = 0
        self.rng = random.Random(seed)
        self.attempt_codes = {}

    def claim(self):
        with self.lock:
            if self.started >= OPS_PER_WALLET:
                return False
            self.started += 1
            return True

    def _call(self, conn, method, params, kind, **kw):
        rec = workload.Op(kind, "", self.wallet, 0)
        t0 = time.monotonic()
        try:
            res = call_recorded(conn, self.addrs, method, params, rec, t0 + OP_DEADLINE,
                                client_timeout=1.5)
            out = ("ok", res)
        except (RpcError, OSError, ConnectionError) as e:
            out = ("unknown", e)
        t1 = time.monotonic()
        with self.lock:
            for _, code, _ in rec.attempts:
                self.attempt_codes[code] = self.attempt_codes.get(code, 0) + 1
        return t0, t1, out

    def _record(self, op):
        with self.lock:
            self.ops.append(op)

    def worker(self, proc, pause):
        rng = random.Random(self.rng.random())
        conn = [None, None]
        mine = []  # (rid, amount) reservations this worker holds
        try:
            while self.claim():
                r = rng.random()
                if mine and r < 0.4:
                    rid, amount = mine.pop(rng.randrange(len(mine)))
                    key = uuid.uuid4().hex
                    if rng.random() < 0.6:
                        actual = rng.randrange(0, amount + 1, 10_000)
                        kind, cmd = "commit", pr.commit(rid, actual, key="c-" + key)
                    else:
                        actual = 0
                        kind, cmd = "release", pr.release(rid, key="l-" + key)
                    t0, t1, (outcome, res) = self._call(conn, "apply", [cmd], kind)
                    if outcome == "ok":
                        res = pr.Result(msgpack.unpackb(res, raw=False))
                        assert res.ok or res.status_name == "conflict", res
                        self._record(Op(kind, t0, t1, "ok" if res.ok else "fail", amount=actual,
                                        rid=rid, value=res.remaining_micros if res.ok else None,
                                        proc=proc))
                    else:
                        self._record(Op(kind, t0, None, "unknown", amount=actual, rid=rid,
                                        proc=proc))
                elif r < 0.65:
                    t0, t1, (outcome, res) = self._call(
                        conn, "read", ["account", "linear", self.wallet], "read")
                    if outcome == "ok":
                        self._record(Op("read", t0, t1, "ok", value=res["available_micros"],
                                        proc=proc))
                else:
                    amount = rng.randrange(100_000, 600_000, 10_000)
                    key = "r-" + uuid.uuid4().hex
                    cmd = pr.reserve(self.wallet, amount, ttl_ms=600_000, metadata={"k": key},
                                     key=key)
                    t0, t1, (outcome, res) = self._call(conn, "apply", [cmd], "reserve")
                    if outcome == "ok":
                        res = pr.Result(msgpack.unpackb(res, raw=False))
                        if res.ok:
                            mine.append((res.id, amount))
                            self._record(Op("reserve", t0, t1, "ok", amount=amount, rid=res.id,
                                            value=res.remaining_micros, proc=proc))
                        else:
                            assert res.status_name == "budget_exceeded", res
                            self._record(Op("reserve", t0, t1, "fail", amount=amount, proc=proc))
                    else:
                        self._record(Op("reserve", t0, None, "unknown", amount=amount,
                                        proc=proc))
                time.sleep(pause * rng.uniform(0.5, 1.5))
        finally:
            _drop(conn)


def record_histories(h, fault, pause=0.02, seed=1):
    cl = h.cluster()
    for w in WALLETS:
        assert cl.apply(pr.account_create(w, cap=CAP, period="none")).ok
    cl.close()
    recs = [Recorder(h, w, seed * 10 + i) for i, w in enumerate(WALLETS)]
    threads = [threading.Thread(target=r.worker, args=(f"{r.wallet}.{i}", pause), daemon=True)
               for r in recs for i in range(THREADS_PER_WALLET)]
    for t in threads:
        t.start()
    fault()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return recs


def check_histories(recs, what, t_fault, t_back):
    lines = []
    for rec in recs:
        hist = rec.ops
        before = [o for o in hist if o.outcome == "ok" and o.complete < t_fault]
        after = [o for o in hist if o.outcome == "ok" and o.invoke > t_back]
        assert before and after, f"{rec.wallet}: the history does not span the fault"
        t = time.monotonic()
        res = check(hist, WalletModel(CAP))
        took = time.monotonic() - t
        assert res.ok, f"{what}, wallet {rec.wallet}:\n{res.explain()}"
        tally.checked("histories checked")
        tally.checked("history ops checked", res.ops)
        tally.checked("checker states", res.states)
        kinds = {}
        for o in hist:
            kinds[f"{o.kind}/{o.outcome}"] = kinds.get(f"{o.kind}/{o.outcome}", 0) + 1
        lines.append(f"{rec.wallet}: {len(hist)} ops {dict(sorted(kinds.items()))}, "
                     f"{res.states} states, {took:.2f}s; attempts {rec.attempt_codes}")
    return lines


def test_histories_linearizable_across_a_leader_kill(fcluster):
    h = fcluster.h
    info = {}

    def fault():
        time.sleep(0.4)
        old = wait_leader(h)
        info["t_fault"] = time.monotonic()
        old.kill()
        tally.fault("kill -9")
        info["killed"] = old.id
        info["new"] = wait_leader(h, exclude=[old], timeout=10).id
        info["t_back"] = time.monotonic()
        time.sleep(0.5)
        old.start()

    recs = record_histories(h, fault, seed=1)
    lines = check_histories(recs, "leader kill", info["t_fault"], info["t_back"])
    print(f"leader {info['killed']} killed, new leader {info['new']}: " + "; ".join(lines))


def test_histories_linearizable_across_a_partition(fcluster):
    fc, h = fcluster, fcluster.h
    info = {}

    def fault():
        time.sleep(0.4)
        old = wait_leader(h)
        info["t_fault"] = time.monotonic()
        fc.proxy.isolate(old.id)
        info["isolated"] = old.id
        info["new"] = wait_leader(h, exclude=[old], timeout=10).id
        info["t_back"] = time.monotonic()
        time.sleep(1.0)
        fc.proxy.heal()

    recs = record_histories(h, fault, seed=2)
    lines = check_histories(recs, "partition", info["t_fault"], info["t_back"])
    print(f"leader {info['isolated']} isolated, new leader {info['new']}: " + "; ".join(lines))
