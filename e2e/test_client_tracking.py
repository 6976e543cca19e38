"""CLIENT TRACKING for respcache's own clients, compared with Redis itself.

Every side-by-side test runs one scenario twice: first with every connection of the scenario straight to
Redis, then with the same connections made to respcache in front of that Redis (writes "behind the back"
always go straight to Redis, on a connection of the test's own). Each connection records every frame it
receives, in order (replies and pushes), and the two transcripts must be equal byte for byte. Client ids
differ (respcache numbers its own clients), so an id is replaced by the name of the connection it belongs
to, and only in the frames that carry one (CLIENT GETREDIR, CLIENT TRACKINGINFO's `redirect`, the
`tracking-redir-broken` push).

Absence is proven without sleeping: a connection that must have received nothing more is "fenced": a key
it tracks (read by it just before, or matching its BCAST prefix) is written straight to Redis, and the very
next frame it receives must be that key's invalidation. Invalidations of one Redis are delivered in the
order Redis sent them, so anything pending would have come first.

Redis's batching: in default mode Redis sends one push per invalidated key, in BCAST mode one push per
prefix per event-loop iteration (beforeSleep). A single command's keys therefore come in a deterministic
batch, which is compared exactly; writes made by several commands (pipelined) may fall in one iteration or
several, depending on how the bytes arrive, so for those only the set of keys announced is compared.

The proxy-only tests (no Redis equivalent): the loss of respcache's invalidation connection, which must be
announced to every tracking client as a flush (the bytes Redis sends for FLUSHALL to that kind of client),
and then tracking works again; and reply ordering: an invalidation is never delivered before the reply of
the read it invalidates.
"""

from __future__ import annotations

import random
import select
import socket
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import pytest

from coherence_lib import invalidation_client_ids, kill_client, proxy_info, wait_channel_live
from conftest import RawClient, RespError, RespReader, encode_command, scaled, wait_until

@pytest.fixture
def proxy(proxy_any_tracking):
    """Whatever the proxy's own --tracking-mode, its clients see what Redis would send them."""
    return proxy_any_tracking


READ = scaled(5)  # the longest wait for any one frame
INVALIDATE_CHANNEL = "__redis__:invalidate"
FLUSH_PUSH = b">2\r\n$10\r\ninvalidate\r\n_\r\n"


def push_keys(*keys: str) -> bytes:
    """The RESP3 invalidation push for `keys` (one batch), as Redis writes it."""
    out = [b">2\r\n$10\r\ninvalidate\r\n*%d\r\n" % len(keys)]
    for k in keys:
        out.append(b"$%d\r\n%s\r\n" % (len(k), k.encode()))
    return b"".join(out)


def message_keys(*keys: str) -> bytes:
    """The RESP2 `message` on __redis__:invalidate that a redirect target in RESP2 receives."""
    out = [b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*%d\r\n" % len(keys)]
    for k in keys:
        out.append(b"$%d\r\n%s\r\n" % (len(k), k.encode()))
    return b"".join(out)


def is_push(frame: bytes) -> bool:
    return frame.startswith(b">") or frame.startswith(b"*3\r\n$7\r\nmessage\r\n") \
        or frame.startswith(b"*4\r\n$8\r\npmessage\r\n")


def invalidated_keys(frame: bytes) -> Optional[List[bytes]]:
    """The keys of an invalidation frame (push or RESP2 message); [] for a flush; None if it is not one."""
    r = RespReader()
    r.feed(frame)
    got = r.pop()
    if got is None:
        return None
    value = got[0]
    if not isinstance(value, list):
        return None
    if len(value) == 2 and value[0] == b"invalidate":
        return list(value[1]) if value[1] is not None else []
    if len(value) == 3 and value[0] == b"message" and value[1] == INVALIDATE_CHANNEL.encode():
        return list(value[2]) if isinstance(value[2], list) else []
    return None


# ---------------------------------------------------------------------------------------------------
# The side-by-side harness.


class Side:
    """One run of a scenario: against Redis itself (`label` 'redis') or through respcache ('respcache').

    port:    where the scenario's clients connect
    port2:   "another proxy in front of the same Redis" (Redis itself on the Redis side)
    direct:  a connection straight to Redis, for writes behind the clients' back (not recorded)
    log:     the transcript: (connection name, what was sent or received)"""

    def __init__(self, label: str, port: int, port2: int, redis_port: int):
        self.label = label
        self.port = port
        self.port2 = port2
        self.redis_port = redis_port
        self.log: List[Tuple[str, object]] = []
        self.peers: Dict[str, "Peer"] = {}
        self.direct = RawClient(redis_port, timeout=READ)
        self._fence_n = 0

    def peer(self, name: str, proto: int = 3, port: Optional[int] = None) -> "Peer":
        p = Peer(self, name, proto, port or self.port)
        self.peers[name] = p
        return p

    def write(self, *args) -> object:
        """A write straight to Redis (recorded as a step, its reply asserted not to be an error)."""
        self.log.append(("direct", _shown(args)))
        reply = self.direct.command(*_wire(args))
        assert not isinstance(reply, RespError), f"direct {args}: {reply!r}"
        return reply

    def normalize(self, frame: bytes) -> bytes:
        """Client ids replaced by the names of their connections (only called on frames carrying one)."""
        for p in self.peers.values():
            frame = frame.replace(b":%d\r\n" % p.id, b":<id of %s>\r\n" % p.name.encode())
        return frame

    def fence(self, receiver: "Peer", tracker: Optional["Peer"] = None, arm: str = "get"):
        """Proves that `receiver` has nothing pending: makes `tracker` (default: the receiver) track a fresh
        key (`arm`: 'get' reads it, 'optin' reads it after CLIENT CACHING yes, 'bcast' nothing: the key
        matches the prefix), writes it straight to Redis, and expects its invalidation as the very next
        frame on `receiver`."""
        tracker = tracker or receiver
        self._fence_n += 1
        key = f"fence:{self._fence_n}"
        if arm == "optin":
            tracker.call("CLIENT", "CACHING", "yes")
        if arm in ("get", "optin"):
            tracker.call("GET", key)
        self.write("SET", key, "f")
        frame = receiver.push()
        keys = invalidated_keys(frame)
        assert keys is not None and key.encode() in keys, \
            f"[{self.label}] {receiver.name}: expected only the fence's invalidation of {key}, got {frame!r}\n" \
            f"transcript so far:\n{render(self.log)}"

    def close(self):
        for p in self.peers.values():
            p.close()
        self.direct.close()


class IdOf:
    """A command argument that is the client id of `peer`: sent as the number, recorded as its name."""

    def __init__(self, peer: "Peer"):
        self.peer = peer

    def __str__(self):
        return str(self.peer.id)

    def label(self):
        return f"<id of {self.peer.name}>"


def _wire(args) -> List[str]:
    return [str(a) for a in args]


def _shown(args) -> str:
    return " ".join(a.label() if isinstance(a, IdOf) else str(a) for a in args)


class Peer:
    """A client connection of a scenario; everything it receives goes to the transcript."""

    def __init__(self, side: Side, name: str, proto: int, port: int):
        self.side = side
        self.name = name
        self.proto = proto
        self.c = RawClient(port, timeout=READ)
        if proto == 3:
            self.c.send_command("HELLO", "3")
            hello = self.c.read_raw_reply()
            assert hello.startswith(b"%7\r\n"), f"[{side.label}] HELLO 3: {hello!r}"
        self.c.send_command("CLIENT", "ID")
        reply = self.c.read_reply()
        assert isinstance(reply, int), f"[{side.label}] CLIENT ID: {reply!r}"
        self.id = reply

    def _record(self, frame: bytes, normalize: bool = False) -> bytes:
        if normalize or b"tracking-redir-broken" in frame:
            frame = self.side.normalize(frame)
        self.side.log.append((self.name, frame))
        return frame

    def send(self, *args):
        """Sends a command without reading anything (recorded)."""
        self.side.log.append((self.name, "> " + _shown(args)))
        self.c.send_command(*_wire(args))

    def reply(self, normalize: bool = False) -> bytes:
        """Reads frames until a reply (pushes met on the way are recorded too); returns the reply."""
        while True:
            frame = self.c.read_raw_reply()
            rec = self._record(frame, normalize)
            if not is_push(frame):
                return rec

    def call(self, *args, normalize: bool = False) -> bytes:
        """A command and its reply (see reply())."""
        self.send(*args)
        return self.reply(normalize)

    def subscribe_reply(self) -> bytes:
        """The confirmation of a (P)SUBSCRIBE sent with send() (a RESP2 subscriber's replies look like pushes)."""
        return self._record(self.c.read_raw_reply())

    def push(self) -> bytes:
        """The next frame, which must be a push (bounded by READ)."""
        try:
            frame = self.c.read_raw_reply()
        except socket.timeout:
            raise AssertionError(f"[{self.side.label}] {self.name}: no push within {READ:.0f}s\n"
                                 f"transcript so far:\n{render(self.side.log)}") from None
        self._record(frame)
        assert is_push(frame), f"[{self.side.label}] {self.name}: expected a push, got {frame!r}"
        return frame

    def pushes(self, n: int, ordered: bool = True) -> List[bytes]:
        """The next n frames, each a push; recorded sorted unless `ordered`."""
        if ordered:
            return [self.push() for _ in range(n)]
        frames = []
        for _ in range(n):
            frame = self.c.read_raw_reply()
            assert is_push(frame), f"[{self.side.label}] {self.name}: expected a push, got {frame!r}"
            frames.append(frame)
        for frame in sorted(frames):
            self._record(frame)
        return frames

    def keys_until(self, expected: Iterable[str]) -> List[bytes]:
        """Reads invalidations until every key of `expected` was announced; records only the sorted set of
        keys announced (Redis's batching of several commands depends on timing)."""
        want = {k.encode() for k in expected}
        seen: set = set()
        deadline = time.monotonic() + READ
        while not want <= seen:
            assert time.monotonic() < deadline, f"[{self.side.label}] {self.name}: announced {sorted(seen)}, " \
                                                f"expected {sorted(want)}"
            frame = self.c.read_raw_reply()
            keys = invalidated_keys(frame)
            assert keys is not None and keys, f"[{self.side.label}] {self.name}: not a key invalidation: {frame!r}"
            seen.update(keys)
        self.side.log.append((self.name, f"keys announced: {sorted(seen)}"))
        return sorted(seen)

    def close(self):
        self.c.close()


def render(log: Sequence[Tuple[str, object]]) -> str:
    return "\n".join(f"  {who:>8} {what!r}" if isinstance(what, bytes) else f"  {who:>8} {what}"
                     for who, what in log)


def compare(redis_server, proxy_port: int, scenario: Callable[[Side], None], proxy2_port: Optional[int] = None):
    """Runs `scenario` against Redis, then through respcache, and asserts equal transcripts."""
    logs = {}
    for label, port, port2 in (("redis", redis_server.port, redis_server.port),
                               ("respcache", proxy_port, proxy2_port or proxy_port)):
        with RawClient(redis_server.port, timeout=READ) as d:
            assert d.command("FLUSHALL") == b"OK"
        side = Side(label, port, port2, redis_server.port)
        try:
            scenario(side)
        except AssertionError as e:
            raise AssertionError(f"{e}\n[{label}] transcript:\n{render(side.log)}"
                                 + (f"\n[redis] transcript:\n{render(logs['redis'])}" if "redis" in logs else "")) \
                from None
        finally:
            side.close()
        logs[label] = side.log
    if logs["redis"] != logs["respcache"]:
        first = next((i for i, (a, b) in enumerate(zip(logs["redis"], logs["respcache"])) if a != b),
                     min(len(logs["redis"]), len(logs["respcache"])))
        raise AssertionError(
            f"transcripts differ at step {first}:\n"
            f"  redis:     {logs['redis'][first] if first < len(logs['redis']) else '<end>'!r}\n"
            f"  respcache: {logs['respcache'][first] if first < len(logs['respcache']) else '<end>'!r}\n"
            f"redis transcript:\n{render(logs['redis'])}\nrespcache transcript:\n{render(logs['respcache'])}")
    return logs["redis"]


# ---------------------------------------------------------------------------------------------------
# Default mode, RESP3.


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "cached-in-proxy"])
def test_default_mode_get_then_direct_write(proxy, redis_server, warm):
    """GET then a direct write: one push. Read twice: invalidated once. After an invalidation, another write
    says nothing until the key is read again. `cached-in-proxy`: another client read the key first, so the
    tracking client's GET is a hit of respcache's cache (Redis never sees it)."""

    def scenario(s: Side):
        s.write("SET", "k", "v1")
        if warm:
            other = s.peer("other", proto=2)
            for _ in range(3):
                other.call("GET", "k")
        c = s.peer("C")
        c.call("CLIENT", "TRACKING", "on")
        c.call("GET", "k")
        c.call("GET", "k")  # read twice ...
        s.write("SET", "k", "v2")
        c.push()  # ... invalidated once
        s.fence(c)
        s.write("SET", "k", "v3")  # no longer tracked: nothing
        s.fence(c)
        c.call("GET", "k")  # read again: tracked again
        s.write("DEL", "k")
        c.push()
        s.fence(c)

    log = compare(redis_server, proxy.port, scenario)
    assert ("C", push_keys("k")) in log


def broadcasting(proxy) -> bool:
    """Whether `proxy` runs --tracking-mode bcast: its channel then hears of one event loop's writes in one
    message, in Redis's key order (sorted), not in the order one command wrote them."""
    return "bcast" in proxy.args


def test_mget_mset_one_push_per_key(proxy, redis_server):
    # With a bcast proxy, one push per key still, but in key order: compared as a set.
    ordered = not broadcasting(proxy)

    def scenario(s: Side):
        s.write("SET", "b", "x")
        c = s.peer("C")
        c.call("CLIENT", "TRACKING", "on")
        c.call("MGET", "a", "b", "c")  # a and c do not exist: tracked all the same
        s.write("MSET", "c", "3", "a", "1", "b", "2", "untracked", "0")
        c.pushes(3, ordered)
        s.fence(c)
        c.call("MGET", "a", "b")
        c.call("GET", "c")
        s.write("DEL", "a", "b", "c")
        c.pushes(3, ordered)
        s.fence(c)

    log = compare(redis_server, proxy.port, scenario)
    assert sum(1 for who, f in log if who == "C" and f in (push_keys("a"), push_keys("b"), push_keys("c"))) == 6


def test_other_reads_track_their_keys(proxy, redis_server):
    """Not only GET: HGETALL, STRLEN, LRANGE, EXISTS of a missing key (forwarded reads)."""

    def scenario(s: Side):
        s.write("HSET", "h", "f", "1")
        s.write("SET", "s", "abc")
        s.write("RPUSH", "l", "x")
        c = s.peer("C")
        c.call("CLIENT", "TRACKING", "on")
        c.call("HGETALL", "h")
        c.call("STRLEN", "s")
        c.call("LRANGE", "l", "0", "-1")
        c.call("EXISTS", "e")
        for write in (("HSET", "h", "g", "2"), ("APPEND", "s", "d"), ("LPUSH", "l", "y"), ("SET", "e", "1")):
            s.write(*write)
            c.push()
        s.fence(c)

    compare(redis_server, proxy.port, scenario)


def test_reads_in_multi_and_under_watch_are_tracked(proxy, redis_server):
    """Reads that respcache sends on a dedicated connection (queued in MULTI and run by EXEC, or made while
    a WATCH is active) are tracked as Redis tracks them; with OPTIN, CLIENT CACHING yes before MULTI covers
    the whole transaction."""

    def scenario(s: Side):
        c = s.peer("C")
        c.call("CLIENT", "TRACKING", "on")
        c.call("MULTI")
        c.call("GET", "m1")
        c.call("STRLEN", "m2")
        c.call("EXEC")
        s.write("SET", "m1", "1")
        c.push()
        s.write("SET", "m2", "1")
        c.push()
        s.fence(c)
        c.call("WATCH", "unrelated")
        c.call("GET", "w1")
        c.call("STRLEN", "w2")
        c.call("UNWATCH")
        s.write("MSET", "w1", "1", "w2", "1")
        c.push()
        c.push()
        s.fence(c)
        o = s.peer("O")
        o.call("CLIENT", "TRACKING", "on", "OPTIN")
        o.call("CLIENT", "CACHING", "yes")
        o.call("MULTI")
        o.call("GET", "a")
        o.call("GET", "b")
        o.call("EXEC")
        s.write("MSET", "a", "4", "b", "4")
        o.push()
        o.push()
        s.fence(o, arm="optin")

    compare(redis_server, proxy.port, scenario)


def test_first_reads_on_a_fresh_proxy_send_no_flush(proxy, redis_server):
    """Nothing was flushed, so nothing says so: several new tracking clients (spread over respcache's io
    threads), RESP3 and RESP2 with REDIRECT, each make their first read (not a GET: a forwarded command),
    and the next thing each is told is the invalidation of the key it reads next, written directly."""

    def scenario(s: Side):
        t = s.peer("T", proto=2)
        t.send("SUBSCRIBE", INVALIDATE_CHANNEL)
        t.subscribe_reply()
        for i in range(4):
            c = s.peer(f"C{i}")
            c.call("CLIENT", "TRACKING", "on")
            c.call("STRLEN", f"first:{i}")
            s.fence(c)
        for i in range(4):
            c = s.peer(f"R{i}", proto=2)
            c.call("CLIENT", "TRACKING", "on", "REDIRECT", IdOf(t))
            c.call("EXISTS", f"first2:{i}")
            s.fence(t, tracker=c)

    compare(redis_server, proxy.port, scenario)


def test_write_through_the_proxy_by_another_client(proxy, redis_server):
    """The writer is another client of the same respcache (on the Redis side: another client of Redis)."""

    def scenario(s: Side):
        s.write("SET", "k", "v1")
        c = s.peer("C")
        w = s.peer("W", proto=2)
        c.call("CLIENT", "TRACKING", "on")
        c.call("GET", "k")
        w.call("SET", "k", "v2")
        c.push()
        c.call("GET", "k")
        w.call("MSET", "k", "v3", "j", "x")
        c.push()
        s.fence(c)
        c.call("GET", "k")
        w.call("FLUSHDB")
        c.push()
        s.fence(c)

    log = compare(redis_server, proxy.port, scenario)
    assert log.count(("C", FLUSH_PUSH)) == 1


def test_write_through_a_second_respcache(respcache, redis_server):
    """The writer is a client of another respcache instance in front of the same Redis."""
    a = respcache.start(backend=redis_server)
    b = respcache.start(backend=redis_server)

    def scenario(s: Side):
        s.write("SET", "k", "v1")
        c = s.peer("C")
        w = s.peer("W", proto=3, port=s.port2)
        c.call("CLIENT", "TRACKING", "on")
        c.call("GET", "k")
        w.call("GET", "k")  # cached in the second proxy too
        w.call("SET", "k", "v2")
        c.push()
        c.call("GET", "k")
        w.call("DEL", "k")
        c.push()
        s.fence(c)

    compare(redis_server, a.port, scenario, proxy2_port=b.port)


def test_expiry_is_announced(proxy, redis_server):
    """PEXPIRE is itself a write (announced); the key read again is announced again when it expires."""

    def scenario(s: Side):
        s.write("SET", "k", "v")
        s.write("SET", "e", "v", "PX", "300")  # written before tracking: only its expiry is announced
        c = s.peer("C")
        c.call("CLIENT", "TRACKING", "on")
        c.call("GET", "e")
        c.call("GET", "k")
        s.write("PEXPIRE", "k", "600")
        c.push()
        assert c.call("GET", "k") == b"$1\r\nv\r\n", f"[{s.label}] k expired before it was read again"
        # Redis expires keys by itself (active expiry, about every 100 ms): in its own time, in order.
        c.push()  # e
        c.push()  # k
        s.fence(c)

    log = compare(redis_server, proxy.port, scenario)
    pushes = [f for who, f in log if who == "C" and isinstance(f, bytes) and f.startswith(b">")]
    assert pushes[:3] == [push_keys("k"), push_keys("e"), push_keys("k")], pushes


@pytest.mark.parametrize("flush", [("FLUSHALL",), ("FLUSHALL", "ASYNC"), ("FLUSHDB",)])
def test_flush_sends_a_null(proxy, redis_server, flush):
    def scenario(s: Side):
        s.write("SET", "k", "v")
        c = s.peer("C")
        c.call("CLIENT", "TRACKING", "on")
        c.call("GET", "k")
        s.write(*flush)
        c.push()
        s.fence(c)
        # A client that read nothing gets the null all the same (Redis sends it to every tracking client).
        idle = s.peer("idle")
        idle.call("CLIENT", "TRACKING", "on")
        s.write(*flush)
        c.push()
        idle.push()

    log = compare(redis_server, proxy.port, scenario)
    assert log.count(("C", FLUSH_PUSH)) == 2 and log.count(("idle", FLUSH_PUSH)) == 1


def test_tracking_off_then_on(proxy, redis_server):
    """Keys read while tracking is off are not tracked; turning it off forgets nothing Redis remembers."""

    def scenario(s: Side):
        c = s.peer("C")
        c.call("CLIENT", "TRACKING", "on")
        c.call("GET", "before")
        c.call("CLIENT", "TRACKING", "off")
        c.call("GET", "while-off")
        c.call("CLIENT", "TRACKING", "on")
        s.write("SET", "while-off", "1")
        s.write("SET", "before", "1")
        # Redis still holds C's id under `before`, read while tracking was on the first time.
        c.push()
        s.fence(c)

    compare(redis_server, proxy.port, scenario)


# ---------------------------------------------------------------------------------------------------
# OPTIN, OPTOUT, NOLOOP.


def test_optin(proxy, redis_server):
    def scenario(s: Side):
        c = s.peer("C")
        c.call("CLIENT", "TRACKING", "on", "OPTIN")
        c.call("GET", "a")  # not opted in: not tracked
        s.write("SET", "a", "1")
        s.fence(c, arm="optin")
        c.call("CLIENT", "CACHING", "yes")
        c.call("GET", "a")
        c.call("GET", "b")  # CACHING yes is for the next command only
        s.write("MSET", "a", "2", "b", "2")
        c.push()
        s.fence(c, arm="optin")
        # Pipelined: CACHING yes and the read in one packet (respcache may answer the GET from its cache).
        c.send("CLIENT", "CACHING", "yes")
        c.send("GET", "a")
        c.reply()
        c.reply()
        s.write("SET", "a", "3")
        c.push()
        s.fence(c, arm="optin")
        # (CACHING yes before MULTI: in test_reads_in_multi_and_under_watch_are_tracked.)

    compare(redis_server, proxy.port, scenario)


def test_optout(proxy, redis_server):
    def scenario(s: Side):
        c = s.peer("C")
        c.call("CLIENT", "TRACKING", "on", "OPTOUT")
        c.call("GET", "a")
        c.call("CLIENT", "CACHING", "no")
        c.call("GET", "b")  # opted out
        c.call("GET", "c")  # CACHING no is for the next command only
        s.write("MSET", "a", "1", "b", "1", "c", "1")
        c.push()
        c.push()
        s.fence(c)
        c.send("CLIENT", "CACHING", "no")
        c.send("GET", "a")
        c.reply()
        c.reply()
        s.write("SET", "a", "2")
        s.fence(c)

    compare(redis_server, proxy.port, scenario)


def test_noloop(proxy, redis_server):
    """NOLOOP: the client's own writes are not announced to it (and, as in Redis, the key is then no longer
    tracked); another client's writes are."""

    def scenario(s: Side):
        c = s.peer("C")
        w = s.peer("W")
        c.call("CLIENT", "TRACKING", "on", "NOLOOP")
        c.call("GET", "a")
        c.call("SET", "a", "mine")  # silent
        s.fence(c)
        s.write("SET", "a", "theirs")  # a was forgotten when C wrote it: silent too
        s.fence(c)
        c.call("GET", "a")
        w.call("SET", "a", "other client")  # another client of the same respcache
        c.push()
        c.call("MGET", "a", "b")
        c.call("MSET", "a", "1", "b", "1")
        s.fence(c)
        c.call("GET", "a")
        s.write("SET", "a", "direct")
        c.push()
        s.fence(c)

    compare(redis_server, proxy.port, scenario)


# ---------------------------------------------------------------------------------------------------
# BCAST.


def test_bcast_without_prefix(proxy, redis_server):
    """Every key written is announced, read or not; one command's keys in one push, as Redis batches them."""

    def scenario(s: Side):
        c = s.peer("C")
        c.call("CLIENT", "TRACKING", "on", "BCAST")
        s.write("SET", "never-read", "1")
        c.push()
        s.write("MSET", "x", "1", "y", "2", "z", "3")
        c.push()  # one push with the three keys, in Redis's order
        s.write("DEL", "x", "nope")  # only keys that existed are modified
        c.push()
        s.fence(c, arm="bcast")
        w = s.peer("W", proto=2)
        w.call("SET", "through", "1")
        c.push()
        s.write("FLUSHALL")
        c.push()
        s.fence(c, arm="bcast")

    log = compare(redis_server, proxy.port, scenario)
    assert ("C", push_keys("never-read")) in log and ("C", FLUSH_PUSH) in log


def test_bcast_with_prefixes(proxy, redis_server):
    def scenario(s: Side):
        c = s.peer("C")
        c.call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:", "PREFIX", "obj:", "PREFIX", "fence:")
        c.call("CLIENT", "TRACKINGINFO")
        s.write("SET", "other:1", "x")  # no prefix matches: silent
        s.write("SET", "user:1", "x")
        c.push()
        s.write("MSET", "user:2", "a", "obj:1", "b", "other:2", "c", "user:3", "d")
        c.push()  # one push per prefix
        c.push()
        s.fence(c, arm="bcast")
        s.write("SET", "usera", "x")  # not the prefix `user:`
        s.fence(c, arm="bcast")

    log = compare(redis_server, proxy.port, scenario)
    assert ("C", push_keys("user:1")) in log


def test_bcast_noloop_and_several_commands(proxy, redis_server):
    """BCAST NOLOOP: own writes are not announced. Several pipelined writes by another client: Redis batches
    what one event-loop iteration wrote, which depends on how the bytes arrive, so only the set of keys
    announced is compared."""

    def scenario(s: Side):
        c = s.peer("C")
        w = s.peer("W", proto=2)
        c.call("CLIENT", "TRACKING", "on", "BCAST", "NOLOOP", "PREFIX", "p:", "PREFIX", "fence:")
        c.call("SET", "p:own", "1")
        s.fence(c, arm="bcast")
        for i in range(5):
            w.send("SET", f"p:{i}", "1")
        for _ in range(5):
            w.reply()
        c.keys_until([f"p:{i}" for i in range(5)])
        s.fence(c, arm="bcast")
        c.call("MSET", "p:own", "2", "fence:own", "2")
        s.write("SET", "p:theirs", "1")
        c.push()
        s.fence(c, arm="bcast")

    compare(redis_server, proxy.port, scenario)


# ---------------------------------------------------------------------------------------------------
# REDIRECT, RESP2 and RESP3.


@pytest.mark.parametrize("tracker_proto,target_proto", [(2, 2), (3, 2), (2, 3), (3, 3)],
                         ids=["resp2-to-resp2", "resp3-to-resp2", "resp2-to-resp3", "resp3-to-resp3"])
def test_redirect_to_a_subscriber(proxy, redis_server, tracker_proto, target_proto):
    """Invalidations go to the redirect target: a RESP2 subscriber of __redis__:invalidate receives
    `message` frames, a RESP3 one pushes; the flush is a null there too."""

    def scenario(s: Side):
        t = s.peer("T", proto=target_proto)
        t.send("SUBSCRIBE", INVALIDATE_CHANNEL)
        t.subscribe_reply()
        c = s.peer("C", proto=tracker_proto)
        c.call("CLIENT", "TRACKING", "on", "REDIRECT", IdOf(t))
        c.call("CLIENT", "GETREDIR", normalize=True)
        c.call("CLIENT", "TRACKINGINFO", normalize=True)
        c.call("GET", "k")
        c.call("MGET", "a", "b")
        s.write("SET", "k", "1")
        t.push()
        s.write("MSET", "a", "1", "b", "1")
        t.push()
        t.push()
        s.fence(t, tracker=c)
        c.call("GET", "k")
        s.write("FLUSHALL")
        t.push()
        s.fence(t, tracker=c)

    log = compare(redis_server, proxy.port, scenario)
    if target_proto == 2:
        assert ("T", message_keys("k")) in log
    else:
        assert ("T", push_keys("k")) in log


def test_redirect_to_a_resp2_client_subscribed_elsewhere_or_not_at_all(proxy, redis_server):
    """Redis sends a RESP2 target the `message` frames when it is in pub/sub mode at all (any channel), and
    nothing when it is not; a RESP3 target gets pushes whether it subscribed or not."""

    def scenario(s: Side):
        elsewhere = s.peer("elsewhere", proto=2)
        elsewhere.send("SUBSCRIBE", "some-channel")
        elsewhere.subscribe_reply()
        plain2 = s.peer("plain2", proto=2)
        plain3 = s.peer("plain3", proto=3)
        c1 = s.peer("C1", proto=2)
        c2 = s.peer("C2", proto=2)
        c3 = s.peer("C3", proto=2)
        c1.call("CLIENT", "TRACKING", "on", "REDIRECT", IdOf(elsewhere))
        c2.call("CLIENT", "TRACKING", "on", "REDIRECT", IdOf(plain2))
        c3.call("CLIENT", "TRACKING", "on", "REDIRECT", IdOf(plain3))
        for c in (c1, c2, c3):
            c.call("GET", "k")
        s.write("SET", "k", "1")
        elsewhere.push()
        plain3.push()
        s.fence(elsewhere, tracker=c1)
        s.fence(plain3, tracker=c3)
        # plain2 got nothing: it answers its next command with nothing before the reply.
        plain2.call("PING")

    compare(redis_server, proxy.port, scenario)


@pytest.mark.parametrize("tracker_proto", [3, 2])
def test_redirect_target_disconnects(proxy, redis_server, tracker_proto):
    """The target goes away: the next invalidation finds no one; a RESP3 tracker is pushed
    `tracking-redir-broken <id>`, and CLIENT TRACKINGINFO says broken_redirect (in both protocols)."""

    def scenario(s: Side):
        t = s.peer("T", proto=2)
        t.send("SUBSCRIBE", INVALIDATE_CHANNEL)
        t.subscribe_reply()
        c = s.peer("C", proto=tracker_proto)
        c.call("CLIENT", "TRACKING", "on", "REDIRECT", IdOf(t))
        c.call("GET", "k")
        c.call("GET", "j")
        c.call("CLIENT", "TRACKINGINFO", normalize=True)
        t.close()
        with RawClient(s.port, timeout=READ) as probe:
            wait_until(lambda: f"id={t.id} ".encode() not in probe.command("CLIENT", "LIST"), READ,
                       f"[{s.label}] the redirect target to be gone from CLIENT LIST")
        s.write("SET", "k", "1")
        if tracker_proto == 3:
            c.push()
        else:
            # Nothing is sent to a RESP2 tracker; the flag is set when the invalidation is handled, which
            # through respcache happens a moment after the direct write's reply (these polls are not recorded).
            def broken():
                c.c.send_command("CLIENT", "TRACKINGINFO")
                return b"broken_redirect" in c.c.read_raw_reply()

            wait_until(broken, READ, f"[{s.label}] TRACKINGINFO to say broken_redirect")
        c.call("CLIENT", "TRACKINGINFO", normalize=True)
        c.call("CLIENT", "GETREDIR", normalize=True)
        s.write("SET", "j", "1")  # broken again: RESP3 is told again
        if tracker_proto == 3:
            c.push()
        c.call("CLIENT", "TRACKING", "off")
        c.call("CLIENT", "TRACKINGINFO", normalize=True)
        c.call("CLIENT", "GETREDIR", normalize=True)

    log = compare(redis_server, proxy.port, scenario)
    if tracker_proto == 3:
        assert ("C", b">2\r\n$21\r\ntracking-redir-broken\r\n:<id of T>\r\n") in log, render(log)


# ---------------------------------------------------------------------------------------------------
# CLIENT TRACKINGINFO, CLIENT GETREDIR, argument errors.


MODES = [
    (),
    ("on",),
    ("on", "OPTIN"),
    ("on", "OPTOUT"),
    ("on", "NOLOOP"),
    ("on", "BCAST"),
    ("on", "BCAST", "PREFIX", "a:", "PREFIX", "b:"),
    ("on", "BCAST", "NOLOOP", "PREFIX", "x"),
    ("on", "OPTIN", "NOLOOP"),
    ("on", "REDIRECT", "<T>"),
    ("on", "REDIRECT", "<T>", "OPTOUT", "NOLOOP"),
    ("on", "REDIRECT", "<T>", "BCAST", "PREFIX", "p"),
]


@pytest.mark.parametrize("proto", [3, 2])
def test_trackinginfo_and_getredir(proxy, redis_server, proto):
    def scenario(s: Side):
        t = s.peer("T", proto=2)
        t.send("SUBSCRIBE", INVALIDATE_CHANNEL)
        t.subscribe_reply()
        for i, mode in enumerate(MODES):
            c = s.peer(f"C{i}", proto=proto)
            if mode:
                c.call("CLIENT", "TRACKING", *[IdOf(t) if a == "<T>" else a for a in mode])
            c.call("CLIENT", "TRACKINGINFO", normalize=True)
            c.call("CLIENT", "GETREDIR", normalize=True)
            if "OPTIN" in mode:
                c.call("CLIENT", "CACHING", "yes")
                c.call("CLIENT", "TRACKINGINFO", normalize=True)
            if "OPTOUT" in mode:
                c.call("CLIENT", "CACHING", "no")
                c.call("CLIENT", "TRACKINGINFO", normalize=True)
            if mode:
                c.call("CLIENT", "TRACKING", "off")
                c.call("CLIENT", "TRACKINGINFO", normalize=True)
                c.call("CLIENT", "GETREDIR", normalize=True)
            # Lower case and mixed case options are Redis's too.
            c.call("client", "tracking", "ON", "bcast", "prefix", "Q")
            c.call("client", "trackinginfo")
            c.close()
            del s.peers[c.name]

    compare(redis_server, proxy.port, scenario)


ERRORS = [
    ("CLIENT", "TRACKING"),
    ("CLIENT", "TRACKING", "maybe"),
    ("CLIENT", "TRACKING", "on", "bogus"),
    ("CLIENT", "TRACKING", "on", "REDIRECT"),
    ("CLIENT", "TRACKING", "on", "REDIRECT", "abc"),
    ("CLIENT", "TRACKING", "on", "REDIRECT", "-1"),
    ("CLIENT", "TRACKING", "on", "REDIRECT", "987654321"),
    ("CLIENT", "TRACKING", "on", "REDIRECT", "<T>", "REDIRECT", "<T>"),
    ("CLIENT", "TRACKING", "on", "PREFIX", "a"),
    ("CLIENT", "TRACKING", "on", "PREFIX"),
    ("CLIENT", "TRACKING", "on", "BCAST", "PREFIX"),
    ("CLIENT", "TRACKING", "on", "BCAST", "OPTIN"),
    ("CLIENT", "TRACKING", "on", "BCAST", "OPTOUT"),
    ("CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"),
    ("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "ab", "PREFIX", "a"),
    ("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a", "PREFIX", "ab"),
    ("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a", "PREFIX", "a"),
    ("CLIENT", "TRACKING", "off", "BCAST"),
    ("CLIENT", "TRACKING", "off", "REDIRECT", "987654321"),
    ("CLIENT", "CACHING"),
    ("CLIENT", "CACHING", "yes"),
    ("CLIENT", "CACHING", "no"),
    ("CLIENT", "CACHING", "maybe"),
    ("CLIENT", "CACHING", "yes", "extra"),
    ("CLIENT", "GETREDIR", "extra"),
    ("CLIENT", "TRACKINGINFO", "extra"),
    ("CLIENT", "TRACKING", "on", "OPTIN"),
    ("CLIENT", "CACHING", "no"),
    ("CLIENT", "CACHING", "maybe"),
    ("CLIENT", "TRACKING", "on", "OPTOUT"),  # switching mode while on
    ("CLIENT", "TRACKING", "on", "BCAST"),
    ("CLIENT", "TRACKING", "on"),
    ("CLIENT", "CACHING", "yes"),
    ("CLIENT", "TRACKING", "off"),
    ("CLIENT", "TRACKING", "on", "OPTOUT"),
    ("CLIENT", "CACHING", "yes"),
    ("CLIENT", "TRACKING", "on", "OPTIN"),
    ("CLIENT", "TRACKING", "off"),
    ("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "x"),
    ("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "xy"),  # adding an overlapping prefix while on
    ("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "y"),  # adding a prefix while on
    ("CLIENT", "TRACKINGINFO"),
    ("CLIENT", "TRACKING", "on"),  # BCAST -> default while on
    ("CLIENT", "TRACKING", "off"),
    ("CLIENT", "TRACKINGINFO"),
]


@pytest.mark.parametrize("proto", [3, 2])
def test_argument_errors_and_mode_changes(proxy, redis_server, proto):
    """Each command's reply, in order on one connection (state carries over, as the list intends): the
    same bytes as Redis. The target id of a REDIRECT is the connection's own name after normalization."""

    def scenario(s: Side):
        t = s.peer("T", proto=2)
        t.send("SUBSCRIBE", INVALIDATE_CHANNEL)
        t.subscribe_reply()
        c = s.peer("C", proto=proto)
        for cmd in ERRORS:
            c.call(*[IdOf(t) if a == "<T>" else a for a in cmd], normalize=True)

    log = compare(redis_server, proxy.port, scenario)
    assert any(isinstance(f, bytes) and f.startswith(b"-") for _, f in log)


# ---------------------------------------------------------------------------------------------------
# The invalidation channel lost (respcache only; the flush is what Redis sends for FLUSHALL).


def _tracking_clients(port: int, redirect_target_proto: int = 2):
    """A set of tracking clients of every kind on `port`, each having read `k:<name>`. Returns
    (name -> (RawClient the invalidations arrive on, the RawClient that tracks)), non-tracking clients."""
    clients = {}
    opened = []

    def open_(proto):
        c = RawClient(port, timeout=READ)
        opened.append(c)
        if proto == 3:
            c.send_command("HELLO", "3")
            assert c.read_raw_reply().startswith(b"%7")
        return c

    for name, proto, args in (("default", 3, ()), ("optin", 3, ("OPTIN",)), ("optout", 3, ("OPTOUT",)),
                              ("noloop", 3, ("NOLOOP",)), ("bcast", 3, ("BCAST",)),
                              ("bcast-prefix", 3, ("BCAST", "PREFIX", "k:")), ("idle", 3, ())):
        c = open_(proto)
        assert c.command("CLIENT", "TRACKING", "on", *args) == b"OK"
        if name == "optin":
            assert c.command("CLIENT", "CACHING", "yes") == b"OK"
        if name != "idle":
            c.command("GET", f"k:{name}")
        clients[name] = (c, c)
    # RESP2 and RESP3 trackers redirecting to a RESP2 subscriber.
    for name, proto in (("redirect2", 2), ("redirect3", 3)):
        target = open_(2)
        target_id = target.command("CLIENT", "ID")
        target.send_command("SUBSCRIBE", INVALIDATE_CHANNEL)
        assert target.read_reply()[0] == b"subscribe"
        c = open_(proto)
        assert c.command("CLIENT", "TRACKING", "on", "REDIRECT", str(target_id)) == b"OK"
        c.command("GET", f"k:{name}")
        clients[name] = (target, c)
    plain = open_(3)
    plain.command("GET", "k:plain")
    return clients, plain, opened


def _reply_after_flushes(c: RawClient) -> Tuple[int, bytes]:
    """Reads invalidations until something else comes: (how many were flushes, the first other frame).
    Key invalidations are skipped too: the channel may be back before a direct write made right after the
    kill, and a BCAST tracker is then rightly told about that write."""
    flushes = 0
    while True:
        frame = c.read_raw_reply()
        keys = invalidated_keys(frame)
        if keys is None:
            return flushes, frame
        if not keys:
            flushes += 1


def _until_key_invalidated(receiver: RawClient, key: str) -> List[bytes]:
    """Reads invalidations (flushes allowed: one more is sent when the channel is back) until `key`'s."""
    frames = []
    while True:
        frame = receiver.read_raw_reply()
        frames.append(frame)
        keys = invalidated_keys(frame)
        assert keys is not None, f"not an invalidation while waiting for {key}'s: {frames!r}"
        if key.encode() in keys:
            return frames


def test_lost_invalidation_channel_flushes_every_tracking_client(proxy, redis_server):
    """Every tracking client of every kind is sent a flush, the bytes Redis sends it for FLUSHALL; a client
    that does not track is sent nothing; when the channel is back, tracking works again."""
    # What Redis itself sends each kind of client on FLUSHALL: the expected flush.
    expected = {}
    direct_clients, direct_plain, opened = _tracking_clients(redis_server.port)
    try:
        with RawClient(redis_server.port, timeout=READ) as d:
            assert d.command("FLUSHALL") == b"OK"
        for name, (receiver, _) in direct_clients.items():
            expected[name] = receiver.read_raw_reply()
        direct_plain.send_command("PING")
        assert direct_plain.read_raw_reply() == b"+PONG\r\n"
    finally:
        for c in opened:
            c.close()
    assert expected["default"] == FLUSH_PUSH
    assert expected["redirect2"] == b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n", expected
    # Redis writes the null in the TRACKER's protocol, also when it redirects to a client of the other one
    # (a RESP3 `_` inside a RESP2 message); respcache writes the target's. That difference is pinned by
    # test_redirect_to_a_subscriber[resp3-to-resp2]; here either is a flush.
    also_ok = {"redirect3": b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"}

    direct = redis_server.client()
    direct.mset({f"k:{n}": "before" for n in list(expected) + ["plain"]})
    clients, plain, opened = _tracking_clients(proxy.port)
    try:
        # Each tracker is settled: its PING answered (and nothing else pending) before the kill.
        for name, (receiver, tracker) in clients.items():
            if receiver is tracker:
                tracker.send_command("PING")
                assert tracker.read_raw_reply() == b"+PONG\r\n", name
        losses = int(proxy_info(proxy)["invalidation_channel_losses"])
        ids = invalidation_client_ids(redis_server)
        assert len(ids) == 1, ids
        t0 = time.monotonic()
        kill_client(redis_server, ids[0])
        direct.set("k:default", "during")  # no one can tell respcache about this write
        got = {}
        for name, (receiver, _) in clients.items():
            got[name] = receiver.read_raw_reply()  # bounded by READ
        took = time.monotonic() - t0
        wrong = {n: f for n, f in got.items() if f != expected[n] and f != also_ok.get(n)}
        assert not wrong, f"flush on channel loss: respcache sent {wrong!r}; Redis sends {expected!r} on FLUSHALL"
        # Nothing but flushes before each tracker's next reply; nothing at all for a client that does not track.
        extra = {}
        for name, (receiver, tracker) in clients.items():
            if receiver is tracker:
                tracker.send_command("PING")
                extra[name], reply = _reply_after_flushes(tracker)
                assert reply == b"+PONG\r\n", (name, reply)
        plain.send_command("PING")
        assert plain.read_raw_reply() == b"+PONG\r\n", "a client that does not track got something"
        assert int(proxy_info(proxy)["invalidation_channel_losses"]) == losses + 1
        print(f"flush pushed to {len(got)} tracking clients within {took * 1e3:.1f} ms of the kill; "
              f"further flushes before the next reply: {extra}")

        # The channel comes back; the trackers read again, and a direct write is announced again.
        wait_channel_live(proxy)
        for name, (receiver, tracker) in clients.items():
            if name == "optin":
                assert tracker.send_command("CLIENT", "CACHING", "yes") is None
                assert _reply_after_flushes(tracker)[1] == b"+OK\r\n"
            if name != "idle":
                tracker.send_command("GET", f"k:{name}")
                _, v = _reply_after_flushes(tracker)
                want = b"during" if name == "default" else b"before"
                assert v == b"$%d\r\n%s\r\n" % (len(want), want), (name, v)
        for name in clients:
            direct.set(f"k:{name}", "after")
        for name, (receiver, _) in clients.items():
            if name != "idle":
                _until_key_invalidated(receiver, f"k:{name}")
    finally:
        for c in opened:
            c.close()


def test_lost_channel_flush_comes_before_the_next_reply(proxy, redis_server):
    """Once respcache counts the loss, a tracking client's next request is answered after a flush (one more
    flush follows when the channel is back: harmless, and allowed), with the value written meanwhile."""
    direct = redis_server.client()
    direct.set("k", "before")
    with proxy.raw() as c:
        c.send_command("HELLO", "3")
        c.read_raw_reply()
        assert c.command("CLIENT", "TRACKING", "on") == b"OK"
        assert c.command("GET", "k") == b"before"
        losses = int(proxy_info(proxy)["invalidation_channel_losses"])
        kill_client(redis_server, invalidation_client_ids(redis_server)[0])
        direct.set("k", "during")
        wait_until(lambda: int(proxy_info(proxy)["invalidation_channel_losses"]) == losses + 1, READ,
                   "the loss to be counted")
        c.send_command("GET", "k")
        flushes, reply = _reply_after_flushes(c)
        assert flushes >= 1, f"the GET after the loss was answered ({reply!r}) before any flush"
        assert reply == b"$6\r\nduring\r\n", reply
        wait_channel_live(proxy)
        c.send_command("GET", "k")
        assert _reply_after_flushes(c)[1] == b"$6\r\nduring\r\n"
        direct.set("k", "after")
        assert _until_key_invalidated(c, "k")[-1] == push_keys("k")


# ---------------------------------------------------------------------------------------------------
# Reply ordering: an invalidation never overtakes the reply of the read it invalidates.


def _busy_wait(seconds: float):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _ordering_trials(port: int, redis_port: int, trials: int, warm_port: Optional[int],
                     late_ok: bool = False) -> Dict[str, int]:
    """late_ok: an invalidation may also follow a reply of the new value (a bcast proxy hears of a write
    at the end of Redis's event loop, which may have run the GET after the SET): a spurious one, never a
    missing one."""
    rng = random.Random(7)
    outcomes = {"old": 0, "new": 0, "early-push-with-new-value": 0, "late-push-with-new-value": 0}
    with RawClient(port, timeout=READ) as c, RawClient(redis_port, timeout=READ) as d:
        c.send_command("HELLO", "3")
        c.read_raw_reply()
        assert c.command("CLIENT", "TRACKING", "on") == b"OK"
        warm = RawClient(warm_port, timeout=READ) if warm_port else None
        try:
            for i in range(trials):
                key = f"order:{i}"
                assert d.command("SET", key, "old") == b"OK"
                if warm is not None:
                    for _ in range(2):
                        assert warm.command("GET", key) == b"old"  # now cached in respcache
                n_pings = rng.randrange(0, 4)
                pipelined = encode_command("PING") * n_pings + encode_command("GET", key)
                delay = rng.uniform(0, 300e-6)
                if rng.random() < 0.2:
                    d.send_command("SET", key, "new")
                    _busy_wait(delay)
                    c.send(pipelined)
                else:
                    c.send(pipelined)
                    _busy_wait(delay)
                    d.send_command("SET", key, "new")
                assert d.read_reply() == b"OK"
                # c's frames up to and including the GET reply.
                early = []
                replies = 0
                while True:
                    frame = c.read_raw_reply()
                    keys = invalidated_keys(frame)
                    if keys is not None:
                        assert key.encode() in keys, f"trial {i}: unexpected invalidation {frame!r}"
                        early.append(frame)
                        continue
                    replies += 1
                    if replies > n_pings:
                        value = frame
                        break
                    assert frame == b"+PONG\r\n", frame
                assert value in (b"$3\r\nold\r\n", b"$3\r\nnew\r\n"), value
                if value == b"$3\r\nold\r\n":
                    outcomes["old"] += 1
                    assert not early, \
                        f"trial {i}: the invalidation of {key} {early!r} was delivered BEFORE the reply of the " \
                        f"GET it invalidates ({value!r}): a client-side cache would keep the old value"
                    # The old value was read and tracked: its invalidation must follow.
                    frame = c.read_raw_reply()
                    assert invalidated_keys(frame) == [key.encode()], \
                        f"trial {i}: read the old value of {key}, then got {frame!r} instead of its invalidation"
                else:
                    outcomes["new"] += 1
                    if early:
                        outcomes["early-push-with-new-value"] += 1  # harmless: it invalidates nothing
                    # Fence: anything about `key` still on its way arrives before the fence's invalidation.
                    fence = f"order-fence:{i}"
                    c.send_command("GET", fence)
                    late = 0
                    while (keys := invalidated_keys(frame := c.read_raw_reply())) is not None:
                        assert keys == [key.encode()], f"trial {i}: unexpected invalidation {frame!r}"
                        late += 1
                    assert frame == b"_\r\n", frame
                    assert d.command("SET", fence, "1") == b"OK"
                    while True:
                        frame = c.read_raw_reply()
                        keys = invalidated_keys(frame)
                        assert keys is not None, frame
                        if fence.encode() in keys:
                            break
                        assert keys == [key.encode()], f"trial {i}: unexpected invalidation {frame!r}"
                        late += 1
                    if late:
                        assert late_ok, f"trial {i}: read the new value of {key}, then got its invalidation"
                        outcomes["late-push-with-new-value"] += 1
        finally:
            if warm is not None:
                warm.close()
    return outcomes


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", ["redis", "respcache-miss", "respcache-hit"])
def test_invalidation_never_overtakes_the_reply(proxy, redis_server, target):
    """A tracking client pipelines GET k (behind 0-3 PINGs) while a direct SET k races it: the invalidation
    of k, if any, comes after the GET's reply; if the reply was the old value, the invalidation does come.
    `redis`: the same check against Redis itself (the reference); `respcache-hit`: k is in respcache's
    cache when the GET arrives."""
    port = redis_server.port if target == "redis" else proxy.port
    warm = proxy.port if target == "respcache-hit" else None
    t0 = time.monotonic()
    late_ok = target != "redis" and broadcasting(proxy)
    outcomes = _ordering_trials(port, redis_server.port, trials=400, warm_port=warm, late_ok=late_ok)
    print(f"{target}: {outcomes} in {time.monotonic() - t0:.2f}s")
    assert outcomes["old"] > 0, f"no trial read the old value: the race was never exercised ({outcomes})"


# ---------------------------------------------------------------------------------------------------
# A client's own write: its invalidation comes with the write's reply.


def _own_write_trials(port: int, trials: int, hit: bool) -> List[Tuple[int, int]]:
    """A tracking client reads k (twice if `hit`: the second is a hit of respcache's cache), then writes k
    itself. Redis queues the invalidation of the writer's own key right after the write's reply and writes
    both at once, so a client that has read the reply already has the push. Returns the trials where the
    push was not readable at the moment the reply had been read: (trial, microseconds until it came)."""
    late = []
    push = push_keys("k")
    with RawClient(port, timeout=READ) as c:
        c.send_command("HELLO", "3")
        c.read_raw_reply()
        assert c.command("CLIENT", "TRACKING", "on") == b"OK"
        for i in range(trials):
            for _ in range(2 if hit else 1):
                c.send_command("GET", "k")
                assert c.read_raw_reply() in (b"_\r\n", b"$%d\r\n%s\r\n" % (len(str(i - 1)), str(i - 1).encode()))
            c.send_command("SET", "k", str(i))
            assert c.read_raw_reply() == b"+OK\r\n"
            t0 = time.perf_counter()
            if not c.reader.buf and not select.select([c.sock], [], [], 0)[0]:
                frame = c.read_raw_reply()  # bounded by READ
                late.append((i, round((time.perf_counter() - t0) * 1e6)))
            else:
                frame = c.read_raw_reply()
            assert frame == push, f"trial {i}: after the reply of its own SET, {frame!r} instead of {push!r}"
    return late


@pytest.mark.parametrize("target", ["redis", "respcache-miss", "respcache-hit"])
def test_own_write_invalidation_comes_with_the_reply(proxy, redis_server, target):
    """A client with a client-side cache (node-redis's clientSideCache) drops its copy of k when the push
    arrives: if the reply of its own SET k is delivered before the push, its next read of k, which it
    answers itself, returns the value it just overwrote. Redis never lets that happen (`redis` checks it);
    through respcache the push must come with the reply too."""
    port = redis_server.port if target == "redis" else proxy.port
    trials = 2000
    late = _own_write_trials(port, trials, hit=(target == "respcache-hit"))
    print(f"{target}: {len(late)}/{trials} own writes answered before their invalidation; first: {late[:5]}")
    assert not late, (f"{len(late)} of {trials} replies to the client's own SET k reached it before the "
                      f"invalidation of k (trial, µs until the push came): {late[:10]}")
