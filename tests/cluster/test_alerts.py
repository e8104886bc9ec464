"""Alerting on a real cluster: purserctl breaker/alert/events, and webhook
delivery of the outbox by the leader — signed, at least once, and still
delivered after the leader that first tried is killed."""
import hashlib
import hmac
import http.server
import json
import os
import threading

import purser_rpc as pr
from conftest import checkpoint_hashes
from test_purserctl import js as ctl_json, wait_for

SECRET = b"whsec-test-5b1c"


class Receiver:
    """A webhook endpoint on a free port: answers 500 while failing, 200
    otherwise; records every attempt (event id, body, signature valid)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempts = []      # (event id, status answered, signature ok, body)
        self.failing = True
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
                sig_ok = hmac.compare_digest(self.headers.get("X-Purser-Signature", ""), want)
                event_id = int(self.headers.get("X-Purser-Event-Id", "0"))
                with receiver.lock:
                    status = 500 if receiver.failing else 200
                    receiver.attempts.append((event_id, status, sig_ok, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.attempts)

    def set_failing(self, failing):
        with self.lock:
            self.failing = failing

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def spend(cl, account, amount):
    r = cl.apply(pr.reserve(account, amount))
    assert r.ok, r
    c = cl.apply(pr.commit(r.id, amount))
    assert c.ok, c


def test_purserctl_breaker_alert_and_events(harness):
    h = harness
    h.start_cluster(1)
    h.ctl("account", "create", "acme", "--cap", "100", "--period", "month", check=True)
    out = ctl_json(h, "breaker", "set", "acme", "--velocity", "5/1h", "--bedtime",
                   "22:00-07:00", "--bedtime-factor", "2.5", "--bedtime-floor", "1")
    assert out["account"] == "acme" and out["status"] == "set"
    show = ctl_json(h, "breaker", "show", "acme")
    assert show["velocity_max_micros"] == 5 * pr.USD
    assert show["velocity_window_ms"] == 3600 * 1000
    assert (show["bedtime_start_min"], show["bedtime_end_min"]) == (22 * 60, 7 * 60)
    assert show["bedtime_factor_pct"] == 250
    assert show["bedtime_floor_micros"] == pr.USD
    assert show["thresholds"] == "50,80,100" and show["is_default_thresholds"]
    ctl_json(h, "alert", "set", "acme", "10,60")
    cl = h.cluster()
    try:
        spend(cl, "acme", 6 * pr.USD)   # 6% of the cap, then past the 5 USD velocity
        r = cl.apply(pr.reserve("acme", 1))
        assert r.status_name == "account_frozen" and "reason: velocity" in r.message
    finally:
        cl.close()
    acct = ctl_json(h, "account", "show", "acme")
    assert acct["status"] == "frozen" and acct["frozen_reason"] == "velocity"
    human = h.ctl("account", "show", "acme", check=True).stdout
    assert "frozen (reason: velocity)" in human
    ev = ctl_json(h, "events", "--pending")
    assert [e["type"] for e in ev["events"]] == ["breaker"]
    assert json.loads(ev["events"][0]["detail"])["reason"] == "velocity"
    assert ev["pending_count"] == 1 and ev["dropped_count"] == 0
    table = h.ctl("events", check=True).stdout
    assert "breaker" in table and "1 pending" in table
    h.ctl("account", "unfreeze", "acme", check=True)
    assert ctl_json(h, "breaker", "show", "acme")["velocity_spent_micros"] == 0
    out = ctl_json(h, "breaker", "clear", "acme")
    assert out["status"] == "cleared"
    assert not ctl_json(h, "breaker", "show", "acme")["is_set"]
    # exit codes: refused 1, usage 2
    assert h.ctl("breaker", "set", "nobody", "--velocity", "1/1h").returncode == 1
    assert h.ctl("breaker", "show", "nobody").returncode == 1
    assert h.ctl("breaker", "set", "acme", "--velocity", "1").returncode == 2
    assert h.ctl("breaker", "set", "acme", "--bedtime", "25:00-07:00").returncode == 2
    assert h.ctl("breaker", "set", "acme").returncode == 2
    assert h.ctl("alert", "set", "acme", "80,50").returncode == 1


def test_webhook_delivers_events_raised_before_a_leader_kill(harness):
    h = harness
    rx = Receiver()
    secret_path = os.path.join(h.dir, "webhook-secret")
    with open(secret_path, "wb") as f:
        f.write(SECRET + b"\n")
    try:
        nodes = h.start_cluster(3, extra=["--webhook-url", rx.url,
                                          "--webhook-secret", secret_path])
        h.ctl("account", "create", "acme", "--cap", "10", "--period", "month", check=True)
        h.ctl("breaker", "set", "acme", "--velocity", "1/1h", check=True)
        cl = h.cluster()
        try:
            spend(cl, "acme", 6 * pr.USD)  # 50% threshold, then the velocity breaker
        finally:
            cl.close()
        ev = ctl_json(h, "events")
        ids = sorted(e["id"] for e in ev["events"])
        assert [e["type"] for e in ev["events"]] == ["threshold", "breaker"]
        # The leader tries and the receiver refuses: nothing is acknowledged.
        wait_for(lambda: any(a[0] == ids[0] for a in rx.snapshot()), 30, "a first attempt")
        assert all(a[1] == 500 for a in rx.snapshot())
        assert all(a[2] for a in rx.snapshot()), "every attempt is signed"
        old = h.leader()
        old.kill()
        new = h.wait_leader(exclude=old)
        assert new is not old
        rx.set_failing(False)
        # Each event id reaches the receiver with a 200 and a valid signature.
        wait_for(lambda: {a[0] for a in rx.snapshot() if a[1] == 200} >= set(ids), 30,
                 "delivery of every event after the kill")
        for event_id, status, sig_ok, body in rx.snapshot():
            assert sig_ok
            doc = json.loads(body)
            assert doc["id"] == event_id and doc["account"] == "acme"
        delivered = {json.loads(a[3])["id"]: json.loads(a[3]) for a in rx.snapshot()
                     if a[1] == 200}
        assert delivered[ids[0]]["type"] == "threshold"
        assert delivered[ids[0]]["detail"]["threshold_pct"] == 50
        assert delivered[ids[1]]["detail"]["reason"] == "velocity"
        # The acks are replicated: the outbox drains on every live node.
        wait_for(lambda: ctl_json(h, "events")["pending_count"] == 0, 30, "the outbox to drain")
        old.start()
        live = [n for n in nodes if n.alive()]
        _, hashes = checkpoint_hashes(h, live)
        assert len(set(hashes.values())) == 1, hashes
    finally:
        rx.close()


def test_purserd_refuses_a_webhook_without_a_secret_file(harness):
    h = harness
    n = h.add_node()
    n.start(bootstrap=n.spec, extra=["--webhook-url", "http://127.0.0.1:9/x"])
    assert n.proc.wait(timeout=10) == 2
    assert "--webhook-secret" in n.log()
    n.proc = None
