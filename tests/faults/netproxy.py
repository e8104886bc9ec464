"""A fault-injecting TCP proxy for raft traffic on loopback.

Every purserd of the fault suite listens for raft peers on a private port
(--raft-bind) and advertises another one (--raft, the address in the raft
configuration, which its peers connect to).  This proxy owns the advertised
ports: one listener per node, forwarding to that node's bind port.

raft_uv_tcp opens one connection per direction: node A connects to B's
advertised address to send A's messages to B, and B answers over its own
connection to A.  Each connection starts with A's handshake (raft 0.15,
uv_tcp_connect.c; checked against what the nodes send, see
test_proxy.py):

    u64 LE protocol version (1) | u64 LE server id | u64 LE address length
    | the address, NUL-terminated and zero-padded to that length

so the proxy learns who sends (A) from the handshake and who receives (B)
from the listener the connection arrived on.  The address A names is its
advertised one: B sends its answers to A there, so answers cross the proxy
as well (purserd passes --raft-bind to raft_uv_tcp_set_bind_address, which
changes where A listens but not what it advertises).  The fault model is per directed
link A->B:

  - "drop": existing A->B connections are cut (RST), new ones are closed
    right after the handshake: the sender sees a dead peer and reconnects;
  - "blackhole": connections stay up but nothing A sends to B arrives, as if
    packets vanished on the wire; the bytes are held (TCP would retransmit
    them; a full buffer closes the sender's window) and arrive, late and in
    order, after heal — unless the link is cut meanwhile;
  - delay: bytes A sends to B are forwarded that many seconds later, in order.

partition(groups) blocks every link between two different groups (both
directions); heal() unblocks everything.

Client routes (add_client_route) carry RPC traffic, not raft: a node that
advertises the proxy's address as its RPC address in the raft
configuration (the /RPC part of --bootstrap) is reached there by every
client that follows a leader hint.  Those bytes are forwarded as they come,
no handshake; the link is (CLIENTS, ("rpc", node id)) and block_clients()
cuts it, so a test can decide which nodes a gateway reaches.  All changes are applied on the
proxy's loop before the call returns, so a test knows that from then on no
byte crosses a blocked link.  Everything listens and connects on 127.0.0.1.
"""
import asyncio
import collections
import socket
import struct
import threading
import time

HANDSHAKE_HEADER = struct.Struct("<QQQ")  # version, server id, address length
CLIENTS = "clients"  # the source of every client route's connections
RAFT_UV_PROTOCOL = 1
ADDRESS_MAX = 4096


def _split(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


class _Conn:
    __slots__ = ("src", "dst", "client", "backend", "queue", "tasks", "closed")

    def __init__(self, src, dst, client):
        self.src = src
        self.dst = dst
        self.client = client
        self.backend = None
        self.queue = None
        self.tasks = []
        self.closed = False


class NetProxy:
    def __init__(self):
        self.routes = {}            # node id -> (advertised addr, backend addr)
        self.client_routes = {}     # node id -> (advertised rpc addr, the node's --rpc)
        self.blocked = {}           # (src, dst) -> "drop" | "blackhole"
        self.delays = {}            # (src, dst) -> seconds
        self.conns = set()
        self.handshakes = []        # (time, src, dst, version, address) seen
        self.stats = collections.Counter()
        self.link_bytes = collections.Counter()   # (src, dst) -> bytes forwarded
        self.link_stalled = collections.Counter()  # (src, dst) -> bytes held by a blackhole
        self.faults = []            # (time, description): what was injected
        self.loop = asyncio.new_event_loop()
        self.servers = []
        self.thread = None

    # ---- setup -------------------------------------------------------------

    def add_route(self, node_id, advertised, backend):
        self.routes[node_id] = (advertised, backend)

    def add_client_route(self, node_id, advertised, backend):
        """RPC clients reaching node_id at `advertised` (forwarded to backend)."""
        self.client_routes[node_id] = (advertised, backend)

    def start(self):
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="netproxy")
        self.thread.start()
        for node_id, (adv, _) in self.routes.items():
            self._run(self._listen(node_id, adv))
        for node_id, (adv, _) in self.client_routes.items():
            self._run(self._listen(node_id, adv, self._accept_client))

    def close(self):
        if self.thread is None:
            return
        try:
            self._run(self._shutdown(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.thread = None
            self.loop.close()

    def _run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _listen(self, node_id, adv, accept=None):
        host, port = _split(adv)
        assert host == "127.0.0.1", adv
        accept = accept or self._accept
        srv = await asyncio.start_server(lambda r, w: accept(node_id, r, w), host, port,
                                         reuse_address=True)
        self.servers.append(srv)

    async def _shutdown(self):
        for srv in self.servers:
            srv.close()
        for c in list(self.conns):
            self._cut(c)
        for srv in self.servers:
            await srv.wait_closed()

    # ---- faults ------------------------------------------------------------

    def block(self, src, dst, mode="drop"):
        """Block the directed link src -> dst."""
        self.set_links({(src, dst): mode}, note=f"block {src}->{dst} ({mode})")

    def unblock(self, src, dst):
        self.set_links({(src, dst): None}, note=f"unblock {src}->{dst}")

    def partition(self, groups, mode="drop"):
        """Cut every link between nodes of different groups, both ways.
        Nodes not named in any group form a group of their own each."""
        ids = list(self.routes)
        group_of = {}
        for i, g in enumerate(groups):
            for n in g:
                group_of[n] = i
        for n in ids:
            group_of.setdefault(n, ("alone", n))
        links = {}
        for a in ids:
            for b in ids:
                if a != b:
                    links[(a, b)] = mode if group_of[a] != group_of[b] else None
        shown = " | ".join(",".join(str(n) for n in g) for g in groups)
        self.set_links(links, note=f"partition {shown} ({mode})")

    def isolate(self, node_id, mode="drop"):
        others = [n for n in self.routes if n != node_id]
        self.partition([[node_id], others], mode)

    def block_clients(self, node_ids, blocked=True):
        """Cut (or restore) the client routes to these nodes."""
        self.set_links({(CLIENTS, ("rpc", n)): "drop" if blocked else None for n in node_ids},
                       note=f"{'block' if blocked else 'unblock'} clients -> {list(node_ids)}")

    def heal(self):
        self.set_links({link: None for link in list(self.blocked)}, note="heal")

    def set_delay(self, src, dst, seconds):
        def apply():
            if seconds:
                self.delays[(src, dst)] = seconds
            else:
                self.delays.pop((src, dst), None)
        self._run(self._call(apply))
        self.faults.append((time.time(), f"delay {src}->{dst} {seconds}s"))

    def set_links(self, links, note=None):
        """links: {(src, dst): "drop" | "blackhole" | None (unblock)}."""
        def apply():
            for link, mode in links.items():
                if mode is None:
                    self.blocked.pop(link, None)
                else:
                    assert mode in ("drop", "blackhole"), mode
                    self.blocked[link] = mode
            for c in list(self.conns):
                if self.blocked.get((c.src, c.dst)) == "drop":
                    self.stats["cut"] += 1
                    self._cut(c)
        self._run(self._call(apply))
        if note:
            self.faults.append((time.time(), note))

    async def _call(self, fn):
        return fn()

    # ---- connections -------------------------------------------------------

    def _cut(self, c):
        if c.closed:
            return
        c.closed = True
        self.conns.discard(c)
        for w in (c.client, c.backend):
            if w is not None:
                try:
                    w.transport.abort()
                except Exception:
                    pass
        for t in c.tasks:
            if t is not asyncio.current_task():
                t.cancel()

    async def _accept(self, dst, reader, writer):
        self.stats["accepted"] += 1
        try:
            head = await asyncio.wait_for(reader.readexactly(HANDSHAKE_HEADER.size), 10)
            version, src, alen = HANDSHAKE_HEADER.unpack(head)
            if version != RAFT_UV_PROTOCOL or alen > ADDRESS_MAX or src not in self.routes:
                self.stats["bad_handshake"] += 1
                writer.transport.abort()
                return
            addr = await asyncio.wait_for(reader.readexactly(alen), 10)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            self.stats["bad_handshake"] += 1
            writer.transport.abort()
            return
        self.handshakes.append((time.time(), src, dst, version,
                                addr.split(b"\0", 1)[0].decode(errors="replace")))
        await self._forward(src, dst, reader, writer, self.routes[dst][1], head + addr)

    async def _accept_client(self, node_id, reader, writer):
        self.stats["accepted"] += 1
        await self._forward(CLIENTS, ("rpc", node_id), reader, writer,
                            self.client_routes[node_id][1], b"")

    async def _forward(self, src, dst, reader, writer, backend, first):
        """Connect to backend and carry src -> dst (`first` already read)."""
        c = _Conn(src, dst, writer)
        if self.blocked.get((src, dst)) == "drop":
            self.stats["refused"] += 1
            writer.transport.abort()
            return
        try:
            host, port = _split(backend)
            breader, bwriter = await asyncio.open_connection(host, port)
        except OSError:
            self.stats["backend_down"] += 1
            writer.transport.abort()
            return
        for w in (writer, bwriter):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.backend = bwriter
        if self.blocked.get((src, dst)) == "drop":  # blocked while connecting
            self._cut(c)
            return
        self.conns.add(c)
        c.queue = asyncio.Queue(maxsize=64)
        if first:
            c.queue.put_nowait((self.loop.time(), first))
        c.tasks = [asyncio.ensure_future(self._up(c, reader)),
                   asyncio.ensure_future(self._deliver(c)),
                   asyncio.ensure_future(self._down(c, breader))]

    async def _up(self, c, reader):
        """src -> dst bytes, read as they come (a full queue stops reading:
        the sender's TCP window closes, as on a congested wire)."""
        link = (c.src, c.dst)
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                if self.blocked.get(link) == "drop":
                    break
                delay = self.delays.get(link, 0)
                await c.queue.put((self.loop.time() + delay, data))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if c.queue is not None and not c.closed:
                try:
                    c.queue.put_nowait(None)
                except asyncio.QueueFull:
                    self._cut(c)

    async def _deliver(self, c):
        """Forward in order after the link's delay.  A blackholed link holds
        its bytes (TCP would retransmit them) until it is healed, or cut."""
        link = (c.src, c.dst)
        try:
            while True:
                item = await c.queue.get()
                if item is None:
                    break
                at, data = item
                wait = at - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                stalled = False
                while self.blocked.get(link) == "blackhole":
                    stalled = True
                    await asyncio.sleep(0.02)
                if stalled:
                    self.link_stalled[link] += len(data)
                if self.blocked.get(link) == "drop":
                    break
                c.backend.write(data)
                self.link_bytes[link] += len(data)
                await c.backend.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._cut(c)

    async def _down(self, c, breader):
        """dst -> src on the same connection (raft sends nothing back here,
        but a closed backend must close the client side; RPC answers come
        back this way)."""
        try:
            while True:
                data = await breader.read(1 << 16)
                if not data:
                    break
                c.client.write(data)
                await c.client.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._cut(c)

    # ---- reporting ---------------------------------------------------------

    def summary(self):
        return {
            "faults": [f for _, f in self.faults],
            "connections": self.stats["accepted"],
            "cut": self.stats["cut"],
            "refused": self.stats["refused"],
            "bytes_forwarded": sum(self.link_bytes.values()),
            "bytes_held_by_blackhole": sum(self.link_stalled.values()),
        }
