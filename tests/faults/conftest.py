"""Harness for the fault suite: tests/cluster/conftest.py's Harness (real
purserd processes on 127.0.0.1, free ports, stopped by PID), with every
node's raft traffic through netproxy.NetProxy: a node listens on a private
port (--raft-bind) and its peers reach it through the proxy on its
advertised --raft port.

PURSER_BUILD points at the meson build dir (default: build).
"""
import importlib.util
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER_DIR = os.path.join(os.path.dirname(HERE), "cluster")
for d in (HERE, CLUSTER_DIR):
    if d not in sys.path:
        sys.path.insert(0, d)

# tests/cluster/conftest.py under its own name: this file is "conftest" too.
_spec = importlib.util.spec_from_file_location("purser_cluster_harness",
                                               os.path.join(CLUSTER_DIR, "conftest.py"))
if "purser_cluster_harness" in sys.modules:
    _harness = sys.modules["purser_cluster_harness"]
else:
    _harness = importlib.util.module_from_spec(_spec)
    sys.modules["purser_cluster_harness"] = _harness
    _spec.loader.exec_module(_harness)

Harness = _harness.Harness
free_port = _harness.free_port
checkpoint_hashes = _harness.checkpoint_hashes
PURSERD = _harness.PURSERD
SECRETS = _harness.SECRETS

import tally  # noqa: E402
from netproxy import NetProxy  # noqa: E402

ELECTION_MS = 1000


class FaultCluster:
    """A 3-node cluster whose raft links go through one NetProxy.

    rpc_proxy: every node also advertises an RPC address on the proxy (the
    /RPC part of its bootstrap entry, what leader hints name) while it
    listens on n.rpc; clients given n.rpc reach it directly, clients that
    follow a hint go through the proxy, where block_clients() cuts them."""

    def __init__(self, h, size=3, extra=(), data_dirs=None, rpc_proxy=False):
        self.h = h
        self.proxy = NetProxy()
        self.nodes = [h.add_node() for _ in range(size)]
        for n in self.nodes:
            n.raft_bind = f"127.0.0.1:{free_port()}"
            if data_dirs and n.id in data_dirs:
                n.data = data_dirs[n.id]
            self.proxy.add_route(n.id, n.raft, n.raft_bind)
            n.rpc_advertised = n.rpc
            if rpc_proxy:
                n.rpc_advertised = f"127.0.0.1:{free_port()}"
                self.proxy.add_client_route(n.id, n.rpc_advertised, n.rpc)
        self.proxy.start()
        spec = ",".join(f"{n.id}@{n.raft}/{n.rpc_advertised}" for n in self.nodes)
        for n in self.nodes:
            n.start(bootstrap=spec, extra=["--raft-bind", n.raft_bind] + list(extra))
        h.wait_leader()

    def node(self, node_id):
        return next(n for n in self.nodes if n.id == node_id)

    def close(self):
        if self.proxy.thread is not None:
            tally.proxy_faults(n for _, n in self.proxy.faults)
        self.proxy.close()


@pytest.fixture(autouse=True)
def tally_row(request):
    tally.begin(request.node.nodeid)
    yield


def pytest_terminal_summary(terminalreporter):
    terminalreporter.section("faults injected and operations checked")
    for line in tally.report():
        terminalreporter.write_line(line)


@pytest.fixture
def harness():
    if not os.path.exists(PURSERD):
        pytest.fail(f"{PURSERD} is not built")
    h = Harness(election_ms=ELECTION_MS)
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def fcluster(harness):
    fc = FaultCluster(harness)
    try:
        yield fc
    finally:
        fc.close()


@pytest.fixture
def tmpfs_dir(harness):
    """A small tmpfs mounted under the harness dir; unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounts = []

    def mount(name, size):
        path = os.path.join(harness.dir, name)
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path],
                       check=True)
        mounts.append(path)
        return path

    try:
        yield mount
    finally:
        for n in harness.nodes:
            n.kill()
        for path in mounts:
            subprocess.run(["umount", "-l", path], check=False)


def node_status(n, timeout=1.0):
    """A node's status, or None (down, stopped, or slow to answer)."""
    if not n.alive():
        return None
    try:
        c = _harness.Client(n.rpc, "reader", SECRETS["reader"], timeout=timeout)
    except (OSError, ConnectionError, _harness.RpcError):
        return None
    try:
        return c.status()
    except (OSError, ConnectionError, _harness.RpcError):
        return None
    finally:
        c.close()


def wait_leader(h, exclude=(), among=None, timeout=20.0):
    """The node that says it leads, not one of exclude, polled with short
    timeouts (a SIGSTOPped node accepts connections but never answers)."""
    deadline = time.time() + timeout
    candidates = among or h.nodes
    while time.time() < deadline:
        for n in candidates:
            if n in exclude:
                continue
            st = node_status(n, timeout=0.5)
            if st and st["state"] == "leader":
                return n
        time.sleep(0.05)
    logs = "\n".join(f"--- node {n.id}\n{n.log()[-2000:]}" for n in h.nodes)
    raise AssertionError(f"no leader within {timeout}s\n{logs}")
