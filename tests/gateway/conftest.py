"""Process harness for the gateway suite: a real 3-node purserd cluster
(tests/cluster/conftest.py's Harness), the C mock provider
(tests/mock/mock_upstream) and purser-gateway, each on a free loopback port
and always stopped by PID; a small HTTP client on http.client.

PURSER_BUILD points at the meson build dir (default: build).
"""
from http import client as httpclient
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER_DIR = os.path.join(os.path.dirname(HERE), "cluster")
if CLUSTER_DIR not in sys.path:
    sys.path.insert(0, CLUSTER_DIR)

# tests/cluster/conftest.py, loaded under its own name: this file is
# "conftest" too, so a plain import would find itself.
_spec = importlib.util.spec_from_file_location("purser_cluster_harness",
                                               os.path.join(CLUSTER_DIR, "conftest.py"))
_harness = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("purser_cluster_harness", _harness)
_spec.loader.exec_module(_harness)

Harness = _harness.Harness
free_port = _harness.free_port
BUILD = _harness.BUILD
SECRETS = _harness.SECRETS

GATEWAY = os.path.join(BUILD, "gateway", "purser-gateway")
MOCK = os.path.join(BUILD, "tests", "mock", "mock_upstream")
MOCK_KEY = "sk-mock-provider-key"
USD = 1_000_000

# Prices (USD per million tokens) set by the shared fixture; in micros per
# token these are whole numbers, so costs are easy to state exactly.
PRICES = {
    "gpt-4o-mini": {"input": "2", "output": "8", "cached": "1"},
    "text-davinci": {"input": "3", "output": "6"},
    "embed-small": {"input": "1", "output": "0"},
    "claude-x": {"input": "3", "output": "15", "cached": "0.3", "cache-write": "3.75"},
}
# Routed by the config but never priced.
UNPRICED_MODEL = "gpt-unpriced"
UPSTREAM_TIMEOUT_MS = 1000


def micros_per_mtok(usd_text):
    """'3.75' -> 3750000 (exact)."""
    whole, _, frac = usd_text.partition(".")
    return int(whole) * USD + int((frac + "000000")[:6])


def cost(tokens, usd_per_mtok):
    """The gateway's rule: ceil(tokens * price_micros_per_mtok / 1e6)."""
    n = tokens * micros_per_mtok(usd_per_mtok)
    return -(-n // USD) if tokens > 0 else 0


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"Response({self.status}, {self.headers}, {self.body[:400]!r})"


def _split(url):
    m = re.fullmatch(r"http://([^:/]+):(\d+)", url)
    assert m, url
    return m.group(1), int(m.group(2))


def http(method, url, path, body=None, headers=None, timeout=30.0):
    """One request on a fresh connection; body: dict (sent as JSON), str or bytes."""
    host, port = _split(url)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    conn = httpclient.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def open_stream(url, path, body, headers=None, timeout=30.0):
    """POST and return (connection, response) with the body unread."""
    host, port = _split(url)
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    conn = httpclient.HTTPConnection(host, port, timeout=timeout)
    conn.request("POST", path, body=json.dumps(body).encode(), headers=hdrs)
    return conn, conn.getresponse()


def read_events(resp):
    """Read an SSE body to its end: [(arrival time, event text)], one per
    blank-line-terminated event."""
    events, cur = [], []
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.decode()
        if line in ("\n", "\r\n"):
            if cur:
                events.append((time.monotonic(), "".join(cur)))
                cur = []
        else:
            cur.append(line)
    if cur:
        events.append((time.monotonic(), "".join(cur)))
    return events


class Mock:
    """mock_upstream on a free port, stopped by PID."""

    def __init__(self, workdir, pids):
        self.log_path = os.path.join(workdir, "mock_upstream.log")
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([MOCK, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                     stderr=log)
        log.close()
        pids.add(self.proc.pid)
        line = self.proc.stdout.readline().decode()
        m = re.search(r"listening on (\S+)", line)
        assert m, f"mock_upstream did not start: {line!r}"
        self.url = f"http://{m.group(1)}"

    def requests(self):
        r = http("GET", self.url, "/mock/requests")
        assert r.status == 200, r
        return r.json

    def reset(self):
        assert http("POST", self.url, "/mock/reset", body="{}").status == 200


class Gateway:
    """purser-gateway on a free port, stopped by PID; ready when /readyz is 200."""

    def __init__(self, h, config_path, name="gateway", addrs=None, wait=True):
        """addrs: the rpc addresses given to --cluster (default: every node's)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(h.dir, f"{name}.log")
        env = dict(os.environ, MOCK_KEY=MOCK_KEY)
        log = open(self.log_path, "ab")
        args = [GATEWAY, "--listen", f"127.0.0.1:{self.port}",
                "--cluster", ",".join(addrs or [n.rpc for n in h.nodes]),
                "--config", config_path, "--auth", h.gateway_auth]
        if h.tls:
            args += ["--cluster-tls-ca", h.tls["ca"]]
        # PURSER_TEST_UPSTREAM_CLIENT=curl: the same suite on libcurl (CI
        # runs it both ways; the default is the native HTTP/1.1 client).
        args += ["--upstream-client", os.environ.get("PURSER_TEST_UPSTREAM_CLIENT", "native")]
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        h.pids.add(self.proc.pid)
        self.h = h
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, f"purser-gateway exited\n{self.log()[-2000:]}"
            try:
                if http("GET", self.url, "/readyz", timeout=1).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"purser-gateway not ready on {self.url}\n{self.log()[-2000:]}")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.h.pids.discard(self.proc.pid)


def write_config(h, mock_url, name="gateway.json"):
    config = {
        "upstreams": {
            "oa": {"base_url": mock_url + "/v1", "provider": "openai", "api_key_env": "MOCK_KEY"},
            "an": {"base_url": mock_url + "/v1", "provider": "anthropic",
                   "api_key_env": "MOCK_KEY"},
        },
        "models": {
            "gpt-4o-mini": {"upstream": "oa"},
            "text-davinci": {"upstream": "oa"},
            "embed-small": {"upstream": "oa"},
            UNPRICED_MODEL: {"upstream": "oa"},
            "claude-x": {"upstream": "an", "max_output_tokens": 1000},
        },
        "upstream_timeout_ms": UPSTREAM_TIMEOUT_MS,
    }
    path = os.path.join(h.dir, name)
    with open(path, "w") as f:
        json.dump(config, f)
    return path


class Env:
    """A cluster, the mock and a gateway, plus helpers for the ledger."""

    def __init__(self, h, mock, gw, config_path):
        self.h = h
        self.mock = mock
        self.gw = gw
        self.config_path = config_path
        self._n = 0

    # -- purserctl --
    def ctl(self, *args):
        p = self.h.ctl(*args)
        assert p.returncode == 0, f"purserctl {' '.join(args)} -> {p.returncode}: {p.stderr}"
        return p.stdout

    def ctl_json(self, *args):
        return json.loads(self.ctl("--json", *args))

    def unique(self, prefix):
        self._n += 1
        return f"{prefix}{self._n}"

    def wallet(self, cap_usd="10", children=("bot",), prefix="t"):
        """A fresh top-level account (distinct per test) with children and an
        agent key for it: (account, key)."""
        name = self.unique(prefix)
        self.ctl("account", "create", name, "--cap", cap_usd)
        for ch in children:
            self.ctl("account", "create", f"{name}/{ch}")
        key = self.ctl_json("key", "create", name)["key"]
        return name, key

    def account(self, name):
        return self.ctl_json("account", "show", name)

    # -- RPC reads --
    def read(self, query, *args):
        cl = self.h.cluster("reader")
        try:
            return cl.read(query, *args)
        finally:
            cl.close()

    def journal(self):
        t = time.gmtime()
        return self.read("journal", t.tm_year, t.tm_mon)["postings"]

    # -- HTTP --
    def call(self, path, body, key=None, headers=None, gw=None, settle=True, **kw):
        """POST; for a proxied call that was answered 200, wait until its
        reservation is settled: the gateway answers first and commits in
        the background (proxy.c), and the tests check the settled ledger."""
        hdrs = {}
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        hdrs.update(headers or {})
        r = http("POST", (gw or self.gw).url, path, body=body, headers=hdrs, **kw)
        rid = r.headers.get("x-budget-reservation") if settle else None
        if rid and not path.startswith("/v1/budget/"):
            self.wait_reservation_settled(int(rid))
        return r

    def wait_reservation_settled(self, rid, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.read("reservation", rid)["status"] != "open":
                return
            time.sleep(0.01)
        raise AssertionError(f"reservation {rid} not settled within {timeout}s")

    def get(self, path, key=None, headers=None, gw=None):
        hdrs = {"Authorization": f"Bearer {key}"} if key else {}
        hdrs.update(headers or {})
        return http("GET", (gw or self.gw).url, path, headers=hdrs)


def set_prices(ctl):
    for model, p in PRICES.items():
        args = ["price", "set", model, "--input", p["input"], "--output", p["output"]]
        if "cached" in p:
            args += ["--cached", p["cached"]]
        if "cache-write" in p:
            args += ["--cache-write", p["cache-write"]]
        ctl(*args)


def start_env(h):
    """Start 3 nodes, the mock and a gateway on Harness `h`."""
    for path in (GATEWAY, MOCK, _harness.PURSERD, _harness.PURSERCTL):
        if not os.path.exists(path):
            pytest.fail(f"{path} is not built")
    h.start_cluster(3)
    mock = Mock(h.dir, h.pids)
    config_path = write_config(h, mock.url)
    env = Env(h, mock, None, config_path)
    set_prices(env.ctl)
    env.gw = Gateway(h, config_path)
    return env


def run_env():
    h = Harness()
    try:
        e = start_env(h)
        yield e
        # whatever the tests did, the gateway is still up (no crash, no abort)
        assert e.gw.proc.poll() is None, f"purser-gateway died\n{e.gw.log()[-3000:]}"
    finally:
        h.close()


@pytest.fixture(scope="module")
def env():
    """One cluster + mock + gateway shared by a module's tests (each test uses
    its own accounts)."""
    yield from run_env()


@pytest.fixture
def fresh_env():
    """A cluster + mock + gateway of its own, for tests that break things."""
    yield from run_env()
