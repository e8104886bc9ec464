"""Network partitions of a 3-node cluster under load, through the raft proxy
(netproxy.py): isolate the leader, split 2/1 (dropped and blackholed links),
split 1/1/1 (no quorum), heal.  After each: no overspend, nothing
acknowledged lost, nothing applied twice, the minority refused writes, the
cluster recovered by itself and every node has the same state hash."""
import threading
import time

from conftest import node_status, wait_leader
from workload import (Load, assert_no_writes_between, check_ledger, probe_writes, setup_wallets,
                      wait_served)


def start_probes(nodes, duration, stats):
    keys = []

    def run():
        keys.extend(probe_writes(nodes, duration, stats))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, keys


def assert_probes_refused(stats, why):
    probes = stats.get("probes", [])
    assert probes, "no probe was sent"
    ok = [p for p in probes if p[2] != "error"]
    assert not ok, f"{why}: the minority answered writes: {ok[:3]}"
    # Some were refused outright (NOT_LEADER): those keys are checked absent.
    definite = [p for p in probes if p[2:] == ("error", "NOT_LEADER")]
    assert definite, f"{why}: no probe was refused as NOT_LEADER: {probes[:3]}"


def ok_attempts_at(load, addr, since, until):
    """Attempts answered by addr for operations invoked after since,
    answered before until."""
    return [o for o in load.snapshot() if o.invoke >= since
            for a in o.attempts if a[0] == addr and a[1] == "ok" and a[2] <= until]


def test_isolate_leader(fcluster):
    fc, h = fcluster, fcluster.h
    setup_wallets(h)
    stats = {}
    with Load(h, threads=5) as load:
        time.sleep(1.5)
        old = wait_leader(h)
        t_part = time.monotonic()
        fc.proxy.isolate(old.id)
        probes, probe_keys = start_probes([old], 3.0, stats)
        new = wait_leader(h, exclude=[old], timeout=10)
        failover = time.monotonic() - t_part
        served = wait_served(load, since=t_part + failover)
        time.sleep(1.0)
        st = node_status(old)
        assert st and st["state"] != "leader", f"the isolated node still leads: {st}"
        probes.join()
        t_heal = time.monotonic()
        fc.proxy.heal()
        time.sleep(2.0)
    assert not load.errors, load.errors[:3]
    assert served, "the majority served nothing after electing a new leader"
    assert_probes_refused(stats, "isolated old leader")
    bad = ok_attempts_at(load, old.rpc, t_part, t_heal)
    assert not bad, f"the isolated old leader acknowledged writes: {bad[:3]}"
    res = check_ledger(h, load, extra_absent=probe_keys)
    assert wait_leader(h) is not None
    codes = {}
    for o in load.snapshot():
        for a in o.attempts:
            if a[0] == old.rpc and t_part <= a[2] <= t_heal:
                codes[a[1]] = codes.get(a[1], 0) + 1
    print(f"isolate leader {old.id}: new leader {new.id} after {failover:.2f}s; "
          f"old leader's answers while isolated {codes}; probes "
          f"{sorted(set(p[3] for p in stats['probes']))}; {res}; {load.counts()}; "
          f"{fc.proxy.summary()}")


def test_split_two_one(fcluster):
    """A follower alone (links dropped), then the leader alone (links
    blackholed: its bytes are held and delivered late after the heal)."""
    fc, h = fcluster, fcluster.h
    setup_wallets(h)
    stats = {}
    all_probe_keys = []
    with Load(h, threads=5) as load:
        time.sleep(1.0)
        lead = wait_leader(h)
        lone = next(n for n in h.nodes if n is not lead)
        t0 = time.monotonic()
        fc.proxy.partition([[n.id for n in h.nodes if n is not lone], [lone.id]], mode="drop")
        probes, keys = start_probes([lone], 2.5, stats)
        assert wait_served(load, since=t0), "the majority (with the leader) served nothing"
        probes.join()
        all_probe_keys += keys
        t1 = time.monotonic()
        assert wait_leader(h, timeout=1) is lead, "the leader changed though it kept a majority"
        fc.proxy.heal()
        time.sleep(1.5)

        lead = wait_leader(h)
        t2 = time.monotonic()
        fc.proxy.partition([[lead.id], [n.id for n in h.nodes if n is not lead]],
                           mode="blackhole")
        probes, keys = start_probes([lead], 3.0, stats)
        new = wait_leader(h, exclude=[lead], timeout=10)
        assert wait_served(load, since=time.monotonic()), "the majority served nothing"
        probes.join()
        all_probe_keys += keys
        t3 = time.monotonic()
        fc.proxy.heal()
        time.sleep(2.0)
    assert not load.errors, load.errors[:3]
    assert_probes_refused(stats, "minority of a 2/1 split")
    assert not ok_attempts_at(load, lone.rpc, t0, t1)
    assert not ok_attempts_at(load, lead.rpc, t2, t3)
    res = check_ledger(h, load, extra_absent=all_probe_keys)
    print(f"split 2/1: follower {lone.id} alone (drop), then leader {lead.id} alone "
          f"(blackhole, new leader {new.id}); {res}; {load.counts()}; {fc.proxy.summary()}")


def test_split_one_one_one_no_quorum(fcluster):
    fc, h = fcluster, fcluster.h
    setup_wallets(h)
    stats = {}
    with Load(h, threads=5, op_deadline=3.0) as load:
        time.sleep(1.0)
        t_split = time.monotonic()
        fc.proxy.partition([[1], [2], [3]])
        probes, probe_keys = start_probes(h.nodes, 4.0, stats)
        time.sleep(2.5)
        leaders = [n.id for n in h.nodes if (node_status(n) or {}).get("state") == "leader"]
        probes.join()
        t_heal = time.monotonic()
        fc.proxy.heal()
        wait_leader(h, timeout=10)
        t_led = time.monotonic()
        served = wait_served(load, since=t_led)
        time.sleep(1.0)
    assert not load.errors, load.errors[:3]
    assert not leaders, f"a node still led without a quorum: {leaders}"
    assert_probes_refused(stats, "1/1/1 split")
    assert_no_writes_between(load, t_split, t_heal, "no quorum")
    assert served, "nothing succeeded after the heal"
    res = check_ledger(h, load, extra_absent=probe_keys)
    print(f"split 1/1/1: {len(stats['probes'])} probes refused "
          f"{sorted(set(p[3] for p in stats['probes']))}; recovered "
          f"{t_led - t_heal:.2f}s after heal; {res}; {load.counts()}; {fc.proxy.summary()}")
