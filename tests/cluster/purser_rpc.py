"""A small synchronous purser RPC client for the process-level tests.

Speaks docs/rpc.md: 4-byte big-endian length frames of msgpack, the
challenge/hello handshake (HMAC-SHA256 proof), requests matched by msgid.
Commands are encoded as proto/codec.c does (arrays by position).  This is
test code talking to the real purserd; it is not a mock of anything.
"""
import hashlib
import hmac
import os
import socket
import ssl
import struct

import msgpack

# enum proto_cmd_type
ACCOUNT_CREATE, ACCOUNT_UPDATE, ACCOUNT_FREEZE, ACCOUNT_UNFREEZE, ACCOUNT_CLOSE = 1, 2, 3, 4, 5
RESERVE, COMMIT, RELEASE, EXPIRE, TRANSFER = 6, 7, 8, 9, 10
GRANT_CREATE, GRANT_CLOSE, PERIOD_CLOSE, PRICE_SET, KEY_CREATE, KEY_REVOKE, POLICY_SET = (
    11, 12, 13, 14, 15, 16, 17)
RATE_LIMIT_SET, APPROVAL_SET = 21, 22

STATUS_NAMES = ["ok", "invalid", "not_found", "exists", "budget_exceeded", "account_frozen",
                "account_closed", "grant_expired", "period_closed", "forbidden", "conflict",
                "rate_limited", "approval_required"]
PERIODS = {"none": 0, "day": 1, "week": 2, "month": 3}
USD = 1_000_000


class RpcError(Exception):
    def __init__(self, code, message, detail=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail


class Result:
    """A decoded proto_result."""
    FIELDS = ["status", "id", "amount_micros", "remaining_micros", "expires_at_ms",
              "transfer_id", "overrun_micros", "returned_micros", "name", "message",
              "retry_after_ms"]

    def __init__(self, arr):
        self.retry_after_ms = 0  # trailing optional
        for k, v in zip(self.FIELDS, arr):
            setattr(self, k, v)

    @property
    def ok(self):
        return self.status == 0

    @property
    def status_name(self):
        return STATUS_NAMES[self.status]

    def __repr__(self):
        return f"Result({self.status_name}, id={self.id}, amount={self.amount_micros}, {self.message!r})"


def cmd(ctype, key="", *fields, role=1):
    return msgpack.packb([ctype, role, key] + list(fields), use_bin_type=True)


def account_create(name, cap=-1, period="none", tz=0, tags=None, key=""):
    return cmd(ACCOUNT_CREATE, key, name, cap, PERIODS[period], tz, tags)


def reserve(account, amount, ttl_ms=60000, payee="", metadata=None, key="", on_expire=0):
    return cmd(RESERVE, key, account, payee, amount, ttl_ms, on_expire, metadata or {})


def commit(rid, actual, metadata=None, key=""):
    return cmd(COMMIT, key, rid, actual, metadata or {})


def release(rid, key=""):
    return cmd(RELEASE, key, rid)


def transfer(debit, credit, amount, kind=2, metadata=None, key=""):
    return cmd(TRANSFER, key, debit, credit, amount, kind, metadata or {})


# The TLS context clients use when none is given (conftest sets it when the
# suite runs against TLS nodes: PURSER_TEST_TLS=1).
DEFAULT_TLS = None


def tls_context(ca, cert=None, key=None):
    """A client context that verifies nodes against `ca` (IP in the SAN)."""
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def open_socket(addr, timeout=10.0, tls=None):
    """A connected socket to addr, TLS-wrapped with `tls` (or DEFAULT_TLS)."""
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tls = tls or DEFAULT_TLS
    if tls is not None:
        try:
            sock = tls.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
    return sock


def read_frame(sock):
    """One frame's decoded message, read from a raw socket."""
    def exact(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("connection closed")
            out += chunk
        return out
    (n,) = struct.unpack(">I", exact(4))
    return msgpack.unpackb(exact(n), raw=False)


def grant_create(parent, amount, workflow="", ttl_ms=3600000, metadata=None, key=""):
    return cmd(GRANT_CREATE, key, parent, workflow, amount, ttl_ms, metadata or {})


def grant_close(grant_id, key=""):
    return cmd(GRANT_CLOSE, key, grant_id)


class Client:
    def __init__(self, addr, role="admin", secret=None, timeout=10.0, tls=None):
        self.addr = addr
        self.sock = open_socket(addr, timeout, tls)
        self.next_id = 1
        self.buf = b""
        kind, method, params = self._read()
        assert kind == 2 and method == "challenge", (kind, method)
        version, nonce, self.node_id = params
        proof = None
        if secret:
            proof = hmac.new(secret.encode(), nonce + role.encode(), hashlib.sha256).digest()
        self.hello = self.call("hello", [1, role, proof])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read(self):
        (n,) = struct.unpack(">I", self._read_exact(4))
        return msgpack.unpackb(self._read_exact(n), raw=False)

    def send(self, method, params):
        msgid = self.next_id
        self.next_id += 1
        body = msgpack.packb([0, msgid, method, params], use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        return msgid

    def recv(self):
        msg = self._read()
        assert msg[0] == 1, msg
        _, msgid, err, result = msg
        return msgid, err, result

    def call(self, method, params):
        msgid = self.send(method, params)
        while True:
            rid, err, result = self.recv()
            if rid != msgid:
                continue
            if err is not None:
                raise RpcError(err[0], err[1], err[2])
            return result

    def apply(self, command_bytes):
        return Result(msgpack.unpackb(self.call("apply", [command_bytes]), raw=False))

    def read(self, query, *args, consistency="linear"):
        return self.call("read", [query, consistency] + list(args))

    def status(self):
        return self.call("status", [])


class Cluster:
    """A client that follows the leader across nodes, like proto/client.c."""

    def __init__(self, addrs, role="admin", secret=None, timeout=5.0, tls=None):
        self.addrs = list(addrs)
        self.role = role
        self.secret = secret
        self.timeout = timeout
        self.tls = tls
        self.conn = None

    def _connect(self, addr):
        self.close()
        self.conn = Client(addr, self.role, self.secret, self.timeout, self.tls)

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def call(self, method, params, attempts=60, delay=0.1):
        import time
        last = None
        order = list(self.addrs)
        for i in range(attempts):
            try:
                if self.conn is None:
                    self._connect(order[i % len(order)])
                return self.conn.call(method, params)
            except RpcError as e:
                last = e
                if e.code == "NOT_LEADER":
                    if e.detail:
                        leader = e.detail[1]
                        if leader not in self.addrs:
                            self.addrs.append(leader)
                        self.close()
                        try:
                            self._connect(leader)
                            continue
                        except OSError as oe:
                            last = oe
                    else:
                        self.close()
                elif e.code in ("UNAVAILABLE", "TOO_MANY"):
                    self.close()
                else:
                    raise
            except (OSError, ConnectionError) as e:
                last = e
                self.close()
            time.sleep(delay)
        raise last

    def apply(self, command_bytes):
        return Result(msgpack.unpackb(self.call("apply", [command_bytes]), raw=False))

    def read(self, query, *args, consistency="linear"):
        return self.call("read", [query, consistency] + list(args))
