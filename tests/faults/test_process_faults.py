"""Process faults under load: the leader paused (SIGSTOP) for longer than
the election timeout, a kill -9 loop, and a follower whose data dir (a small
tmpfs) fills up.  After each: no overspend, nothing acknowledged lost,
nothing applied twice, recovery without an operator, equal state hashes.

Found with the full disk (canonical raft 0.15, not purser code): a follower
whose appends fail with ENOSPC keeps the entries in its in-memory log; an
InstallSnapshot then finds them there ("have all entries") and answers
success, so the leader records a match index the follower's disk does not
have.  After the follower restarts (with less on disk) the leader sends it a
snapshot again, but replicationUpdate() returns early when the match index
does not grow, so progress never leaves SNAPSHOT state, and every rejection
is dropped as stale until install_snapshot_timeout (30 s by default) aborts
the snapshot.  About half the runs of test_full_disk_on_a_follower show the
~30 s stall; raft_set_install_snapshot_timeout in node.c would bound it.
"""
import os
import random
import signal
import threading
import time
import uuid
import warnings

import purser_rpc as pr
import tally
from conftest import ELECTION_MS, FaultCluster, node_status, wait_leader
from purser_rpc import Client, RpcError
from workload import SECRETS, Load, check_ledger, setup_wallets, wait_served

CATCH_UP_S = 40.0  # > raft's default install snapshot timeout (30 s)


def test_sigstop_leader_longer_than_election_timeout(fcluster):
    h = fcluster.h
    setup_wallets(h)
    with Load(h, threads=5) as load:
        time.sleep(1.5)
        old = wait_leader(h)
        pause = 3 * ELECTION_MS / 1000
        t_stop = time.monotonic()
        old.proc.send_signal(signal.SIGSTOP)
        tally.fault("SIGSTOP")
        try:
            new = wait_leader(h, exclude=[old], timeout=10)
            failover = time.monotonic() - t_stop
            # Stay stopped for at least `pause`, and until the new leader
            # has acknowledged writes invoked after it was elected.
            t_new = time.monotonic()
            deadline = t_new + 10
            while time.monotonic() < deadline:
                served = load.acked(since=t_new, until=time.monotonic())
                if served and time.monotonic() - t_stop >= pause:
                    break
                time.sleep(0.1)
            stopped_for = time.monotonic() - t_stop
        finally:
            old.proc.send_signal(signal.SIGCONT)
        time.sleep(2.5)
        st = node_status(old)
    assert not load.errors, load.errors[:3]
    assert served, "nothing was served while the old leader was stopped"
    assert st and st["state"] == "follower", f"the resumed old leader: {st}"
    res = check_ledger(h, load)
    old_answers = {}
    for o in load.snapshot():
        for a in o.attempts:
            if a[0] == old.rpc and a[2] >= t_stop:
                old_answers[a[1]] = old_answers.get(a[1], 0) + 1
    print(f"SIGSTOP leader {old.id} for {stopped_for:.1f}s: new leader {new.id} after "
          f"{failover:.2f}s; the old leader's answers after stop/cont {old_answers}; "
          f"{res}; {load.counts()}")


def test_kill9_loop(fcluster):
    h = fcluster.h
    setup_wallets(h)
    rng = random.Random(os.environ.get("PURSER_FAULT_SEED", 7))
    kills = []
    with Load(h, threads=5) as load:
        time.sleep(1.0)
        end = time.monotonic() + 15.0
        while time.monotonic() < end:
            t = time.monotonic()
            # Every other kill hits whoever leads now; the rest are random.
            victim = None
            if len(kills) % 2 == 0:
                victim = next((n for n in h.nodes
                               if (node_status(n) or {}).get("state") == "leader"), None)
            victim = victim or rng.choice(h.nodes)
            st = node_status(victim)
            kills.append((victim.id, (st or {}).get("state")))
            victim.kill()
            tally.fault("kill -9")
            time.sleep(rng.uniform(0.3, 1.0))
            victim.start()
            time.sleep(max(0.0, 2.0 - (time.monotonic() - t)))
        wait_leader(h, timeout=10)
        t_end = time.monotonic()
        served = wait_served(load, since=t_end)
        time.sleep(1.0)
    assert not load.errors, load.errors[:3]
    assert served, "nothing succeeded after the kill loop"
    res = check_ledger(h, load)
    print(f"kill -9 loop: {len(kills)} kills {kills}; {res}; {load.counts()}; "
          f"attempt answers {load.attempt_codes()}")


def bulk_writer(h, stop, stats, account="bulk"):
    """Pipelined reserves with the largest metadata the ledger takes
    (~5 KB each): grows the raft log fast so a full disk is reached."""
    meta_base = {f"m{i:02d}" + "x" * 61: "v" * 256 for i in range(15)}
    while not stop.is_set():
        lead = wait_leader(h, timeout=10)
        try:
            c = Client(lead.rpc, "gateway", SECRETS["gateway"], timeout=5)
        except (OSError, ConnectionError, RpcError):
            continue
        try:
            while not stop.is_set():
                ids = []
                for _ in range(32):
                    key = "b-" + uuid.uuid4().hex
                    meta = dict(meta_base, k=key)
                    ids.append(c.send("apply", [pr.reserve(account, 1000, ttl_ms=600_000,
                                                           metadata=meta, key=key)]))
                for _ in ids:
                    _, err, _ = c.recv()
                    if err is None:
                        stats["bulk_ok"] = stats.get("bulk_ok", 0) + 1
                    else:
                        stats["bulk_err"] = stats.get("bulk_err", 0) + 1
        except (OSError, ConnectionError, AssertionError):
            pass
        finally:
            c.close()


def test_full_disk_on_a_follower(harness, tmpfs_dir):
    h = harness
    full = 3
    data = tmpfs_dir("node3-data", "40m")
    fc = FaultCluster(h, data_dirs={full: data}, extra=["--snapshot-threshold", "256"])
    try:
        node3 = fc.node(full)
        lead = wait_leader(h)
        if lead is node3:
            cl = h.cluster()
            cl.call("transfer_leader", [1])
            cl.close()
            lead = wait_leader(h, exclude=[node3], timeout=10)
        setup_wallets(h)
        cl = h.cluster()
        assert cl.apply(pr.account_create("bulk")).ok
        cl.close()
        # Fill what the node left free (it preallocates its open segments).
        filler = os.path.join(data, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        tally.fault("disk full")
        st = os.statvfs(data)
        free_after_fill = st.f_bavail * st.f_frsize
        stats = {}
        stop = threading.Event()
        with Load(h, threads=4) as load:
            bulk = threading.Thread(target=bulk_writer, args=(h, stop, stats), daemon=True)
            bulk.start()
            deadline = time.monotonic() + 20
            node3_state = None
            stalled = False
            while time.monotonic() < deadline:
                time.sleep(0.5)
                s3 = node_status(node3)
                node3_state = (node3.alive(), (s3 or {}).get("state"),
                               (s3 or {}).get("applied_index"))
                ls = node_status(wait_leader(h, exclude=[node3]))
                if not node3.alive() or s3 is None or s3["state"] == "unavailable" or (
                        ls and ls["applied_index"] - s3["applied_index"] > 200):
                    stalled = True
                    break
            stop.set()
            bulk.join(timeout=30)
            t_full = time.monotonic()
            time.sleep(1.0)
            served = load.acked(since=t_full - 1.0)
        assert not load.errors, load.errors[:3]
        assert served, "the two healthy nodes stopped serving"
        assert stalled, f"node 3 never ran out of space: {node3_state}"
        log3 = node3.log()
        # Free the space; restart the full node (kill it first if it
        # survived): it must load what it wrote and catch up.
        node3.kill()
        os.unlink(filler)
        target = node_status(wait_leader(h, exclude=[node3]))["commit_index"]
        t_restart = time.monotonic()
        node3.start()
        # It must catch up by itself.  canonical raft 0.15 can leave the
        # leader's progress for it in SNAPSHOT state until its install
        # snapshot timeout (30 s; purser keeps the default): see the
        # module docstring.
        caught_up = None
        while time.monotonic() < t_restart + CATCH_UP_S:
            s3 = node_status(node3)
            if s3 and s3["applied_index"] >= target:
                caught_up = time.monotonic() - t_restart
                break
            time.sleep(0.2)
        assert caught_up is not None, \
            f"node 3 did not catch up within {CATCH_UP_S}s of its restart: {node_status(node3)}"
        if caught_up > 10:
            warnings.warn(f"node 3 took {caught_up:.1f}s to catch up after the full disk "
                          "(raft's snapshot-progress stall)")
        res = check_ledger(h, load)
    finally:
        fc.close()
    print(f"full disk on node {full}: free after fill {free_after_fill} B; caught up "
          f"{caught_up:.1f}s after restart; node 3 at the end "
          f"(alive, state, applied) {node3_state}; bulk {stats}; {res}; {load.counts()}; "
          f"node 3 log tail: {log3[-600:]!r}")
