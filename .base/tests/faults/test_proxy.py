"""The raft proxy itself (netproxy.py) in front of real nodes: it reads the
raft_uv handshake right, delays and blocks single directed links."""
import statistics
import time

import purser_rpc as pr
from conftest import checkpoint_hashes, wait_leader


def test_handshake_names_the_sender(fcluster):
    """raft_uv opens one connection per direction; the proxy must see the
    leader's connections to each follower and the followers' connections
    back (their answers), each named by its sender."""
    fc, h = fcluster, fcluster.h
    lead = wait_leader(h)
    want = set()
    for n in h.nodes:
        if n is not lead:
            want |= {(lead.id, n.id), (n.id, lead.id)}
    deadline = time.time() + 10
    while time.time() < deadline:
        links = {(src, dst) for _, src, dst, _, _ in fc.proxy.handshakes}
        if links >= want:
            break
        time.sleep(0.1)
    assert links >= want, links
    for _, src, dst, version, addr in fc.proxy.handshakes:
        assert version == 1
        # The sender names itself by its advertised address (the proxy), not
        # by --raft-bind: answers go where the handshake says, and must
        # cross the proxy too.
        assert addr == fc.node(src).raft, (src, addr)
    assert fc.proxy.stats["bad_handshake"] == 0


def apply_latency(h, n=12):
    cl = h.cluster()
    out = []
    for i in range(n):
        t = time.monotonic()
        assert cl.apply(pr.account_create(f"lat{time.monotonic_ns()}-{i}")).ok
        out.append(time.monotonic() - t)
    cl.close()
    return statistics.median(out)


def test_delay_on_the_leaders_links_slows_commits(fcluster):
    fc, h = fcluster, fcluster.h
    lead = wait_leader(h)
    base = apply_latency(h)
    for n in h.nodes:
        if n is not lead:
            fc.proxy.set_delay(lead.id, n.id, 0.15)
    slow = apply_latency(h)
    for n in h.nodes:
        if n is not lead:
            fc.proxy.set_delay(lead.id, n.id, 0)
    assert slow >= 0.15 > base, (base, slow)
    assert wait_leader(h) is lead  # 150 ms < the election timeout
    print(f"median commit {base * 1000:.1f} ms, with 150 ms on the leader's links "
          f"{slow * 1000:.1f} ms")


def test_one_way_block_from_the_leader(fcluster):
    """The leader's messages are lost but it still hears the followers: they
    elect a new leader, whose higher term makes the old one step down."""
    fc, h = fcluster, fcluster.h
    lead = wait_leader(h)
    for n in h.nodes:
        if n is not lead:
            fc.proxy.block(lead.id, n.id)
    new = wait_leader(h, exclude=[lead], timeout=10)
    cl = h.cluster()
    assert cl.apply(pr.account_create("after-one-way")).ok
    cl.close()
    for n in h.nodes:
        if n is not lead:
            fc.proxy.unblock(lead.id, n.id)
    index, hashes = checkpoint_hashes(h, h.nodes)
    assert len(set(hashes.values())) == 1, hashes
    assert new is not lead
