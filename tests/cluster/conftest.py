"""Process harness for the cluster suites: real purserd processes on
127.0.0.1, free ports, a fresh data dir each, always stopped by PID.

PURSER_BUILD points at the meson build dir (default: build).
PURSER_TEST_TLS=1 runs every harness over TLS: nodes get --tls-cert,
--tls-key and --tls-ca (scripts/make-test-certs), the Python clients wrap
their sockets, and purserctl / purser-gateway find the CA in the
environment (PURSER_TLS_CA, PURSER_CLUSTER_TLS_CA).
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import purser_rpc
from purser_rpc import Client, Cluster, RpcError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("PURSER_BUILD", os.path.join(ROOT, "build"))
PURSERD = os.path.join(BUILD, "cluster", "purserd")
PURSERCTL = os.path.join(BUILD, "cluster", "purserctl")
MAKE_CERTS = os.path.join(ROOT, "scripts", "make-test-certs")
TLS_ENV = os.environ.get("PURSER_TEST_TLS") == "1"

_certs = {}


def test_certs():
    """The test CA and certificates (scripts/make-test-certs), made once per
    run: {"ca", "cert", "key", "client_cert", "client_key", "other_ca"}."""
    if not _certs:
        # One set per run, even when this file is loaded under several
        # module names (the gateway and fault suites load it as a module).
        d = os.environ.get("PURSER_TEST_CERTS_DIR")
        if not d or not os.path.exists(os.path.join(d, "other-ca.pem")):
            d = tempfile.mkdtemp(prefix="purser-certs-")
            atexit.register(shutil.rmtree, d, True)
            subprocess.run([MAKE_CERTS, d], check=True, capture_output=True)
            os.environ["PURSER_TEST_CERTS_DIR"] = d
        _certs.update(ca=f"{d}/ca.pem", cert=f"{d}/server.pem", key=f"{d}/server.key",
                      client_cert=f"{d}/client.pem", client_key=f"{d}/client.key",
                      other_ca=f"{d}/other-ca.pem")
    return _certs


if TLS_ENV:
    # Clients that do not go through a Harness (raw sockets, purserctl run
    # with a test's own environment) speak TLS too.
    purser_rpc.DEFAULT_TLS = purser_rpc.tls_context(test_certs()["ca"])
    os.environ["PURSER_TLS_CA"] = test_certs()["ca"]
    os.environ["PURSER_CLUSTER_TLS_CA"] = test_certs()["ca"]

SECRETS = {"admin": "adm-secret-1", "gateway": "gw-secret-1", "reader": "rd-secret-1"}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, harness, node_id):
        self.h = harness
        self.id = node_id
        self.raft = f"127.0.0.1:{free_port()}"
        self.rpc = f"127.0.0.1:{free_port()}"
        self.data = os.path.join(harness.dir, f"node{node_id}")
        self.log_path = os.path.join(harness.dir, f"node{node_id}.log")
        self.proc = None
        self.extra = []

    @property
    def spec(self):
        return f"{self.id}@{self.raft}/{self.rpc}"

    def start(self, bootstrap=None, join=None, extra=None):
        if extra is None:
            extra = self.extra
        self.extra = list(extra)
        args = [PURSERD, "--id", str(self.id), "--raft", self.raft, "--rpc", self.rpc,
                "--data", self.data, "--auth", self.h.auth_path,
                "--election-timeout-ms", str(self.h.election_ms)]
        if bootstrap:
            args += ["--bootstrap", bootstrap]
        if join:
            args += ["--join", join]
        if self.h.tls:
            args += self.h.tls_flags()
        args += list(extra)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.h.pids.add(self.proc.pid)
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.h.pids.discard(self.proc.pid)
        self.proc = None

    def stop(self):
        self.kill(signal.SIGTERM)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self, role="admin"):
        return Client(self.rpc, role, SECRETS[role], tls=self.h.tls_ctx)

    def status(self):
        c = self.client("reader")
        try:
            return c.status()
        finally:
            c.close()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class Harness:
    def __init__(self, election_ms=1000, tls=None):
        """tls: run the nodes' RPC ports over TLS (default: PURSER_TEST_TLS)."""
        self.dir = tempfile.mkdtemp(prefix="purser-test-")
        self.tls = test_certs() if (TLS_ENV if tls is None else tls) else None
        # the harness's own clients show a client certificate, so that nodes
        # run with --tls-require-client-cert can be watched too
        self.tls_ctx = (purser_rpc.tls_context(self.tls["ca"], self.tls["client_cert"],
                                               self.tls["client_key"]) if self.tls else None)
        self.auth_path = os.path.join(self.dir, "auth")
        with open(self.auth_path, "w") as f:
            for role, secret in SECRETS.items():
                f.write(f"{role} {secret}\n")
        self.gateway_auth = os.path.join(self.dir, "auth-gateway")
        with open(self.gateway_auth, "w") as f:
            f.write(f"gateway {SECRETS['gateway']}\n")
        self.nodes = []
        self.pids = set()
        self.election_ms = election_ms

    def tls_flags(self):
        return ["--tls-cert", self.tls["cert"], "--tls-key", self.tls["key"],
                "--tls-ca", self.tls["ca"]]

    def add_node(self):
        n = Node(self, len(self.nodes) + 1)
        self.nodes.append(n)
        return n

    def start_cluster(self, size=3, extra=()):
        nodes = [self.add_node() for _ in range(size)]
        spec = ",".join(n.spec for n in nodes)
        for n in nodes:
            n.start(bootstrap=spec, extra=extra)
        self.wait_leader()
        return nodes

    def addrs(self):
        return [n.rpc for n in self.nodes if n.alive()]

    def cluster(self, role="admin"):
        return Cluster(self.addrs(), role, SECRETS[role], tls=self.tls_ctx)

    def leader(self):
        for n in self.nodes:
            if not n.alive():
                continue
            try:
                st = n.status()
            except (OSError, RpcError, ConnectionError):
                continue
            if st["state"] == "leader":
                return n
        return None

    def wait_leader(self, timeout=20.0, exclude=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            lead = self.leader()
            if lead is not None and lead is not exclude:
                return lead
            time.sleep(0.05)
        logs = "\n".join(f"--- node {n.id}\n{n.log()[-2000:]}" for n in self.nodes)
        raise AssertionError(f"no leader within {timeout}s\n{logs}")

    def wait_applied(self, nodes, index, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(n.status()["applied_index"] >= index for n in nodes):
                return
            time.sleep(0.05)
        raise AssertionError(f"nodes did not reach applied index {index}")

    def ctl(self, *args, auth=None, check=False, timeout=60):
        env = dict(os.environ)
        env["PURSER_CLUSTER"] = ",".join(self.addrs())
        env["PURSER_AUTH"] = auth or self.auth_path
        if self.tls:
            env["PURSER_TLS_CA"] = self.tls["ca"]
        p = subprocess.run([PURSERCTL] + list(args), env=env, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"purserctl {' '.join(args)} -> {p.returncode}\n{p.stderr}")
        return p

    def close(self):
        for n in self.nodes:
            n.kill(signal.SIGKILL)
        for pid in list(self.pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def harness():
    if not os.path.exists(PURSERD):
        pytest.fail(f"{PURSERD} is not built")
    h = Harness()
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def cluster3(harness):
    harness.start_cluster(3)
    return harness


def checkpoint_hashes(h, nodes, timeout=20.0):
    """Propose a checkpoint and return {node id: hash at that index}."""
    cl = h.cluster()
    index = cl.call("checkpoint", [])["index"]
    cl.close()
    deadline = time.time() + timeout
    out = {}
    while time.time() < deadline and len(out) < len(nodes):
        for n in nodes:
            if n.id in out:
                continue
            try:
                c = n.client("reader")
                hs = c.call("hash", [])
                c.close()
            except (OSError, RpcError, ConnectionError):
                continue
            for cp in hs["checkpoints"]:
                if cp["index"] == index:
                    out[n.id] = cp["hash"]
        time.sleep(0.1)
    missing = [n for n in nodes if n.id not in out]
    logs = "\n".join(f"--- node {n.id} alive={n.alive()}\n{n.log()[-3000:]}" for n in missing)
    assert not missing, f"checkpoint {index} reached only {sorted(out)}\n{logs}"
    return index, out
