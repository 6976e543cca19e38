"""Helpers of the fault-injection tests under load (test_faults_under_load.py): a load generator whose
every reply is checked, and a TCP relay between respcache and Redis that can cut a connection in the
middle of a reply or stop forwarding altogether.

CheckedLoad
    `clients` threads, each with its own connection and its own keys, sending pipelines of SETs and GETs
    of values that name the client, the key and a sequence number (`v:<client>:<key>:<n>`), so a reply
    given to the wrong request, a reply given twice or a stale value cannot pass for the right one. Each
    client knows which values a key may hold (see KeyState), reads exactly one reply per request with a
    bounded wait, and records anything else as a problem. It also records, for every pipeline, when it
    was sent and whether every reply in it was correct (no error at all), which gives the time to
    recover after a fault.

Relay
    A TCP relay on 127.0.0.1 (a free port) in front of a Redis port, one thread per direction of each
    connection. `cut_in_reply(marker, after)` closes the next connection whose reply stream carries
    `marker`, `after` bytes past it (in the middle of that reply); `black_hole()` stops forwarding in
    both directions while keeping every connection (bytes wait in the kernel's buffers, as behind a
    network partition), `heal()` resumes. close() stops every thread and closes every socket.

Every socket is bounded by a timeout; nothing sleeps for a fixed time to let things settle."""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from conftest import HOST, RespError, RespReader, encode_command, scaled

BACKEND_UNAVAILABLE = "ERR backend unavailable"


# ---------------------------------------------------------------------------------------------------
# What a key may hold.


@dataclass
class KeyState:
    """The values one key of one client may hold: the value of the last acknowledged SET (None: never
    written) and every value whose SET was answered with an error. Such a write may have run, or may
    still run later (Redis stopped with it in its socket buffer), so it stays possible for good. Each
    value is kept with the time its pipeline was sent, for a backend that restarts empty at `restart`:
    a request sent after that may only see what was written after it (or nothing)."""

    acknowledged: Optional[bytes] = None
    acknowledged_sent: float = 0.0
    uncertain: Dict[bytes, float] = field(default_factory=dict)  # value -> when its SET was sent

    def possible(self, sent: float, restart: Optional[float]) -> Set[Optional[bytes]]:
        """The values a GET sent at `sent` may return, the backend having restarted empty at `restart`."""
        if restart is None:
            return {self.acknowledged} | set(self.uncertain)
        if sent < restart:  # served before the restart (from the cache or the old Redis) or after it
            return {self.acknowledged, None} | set(self.uncertain)
        fresh = self.acknowledged if self.acknowledged_sent >= restart else None
        return {fresh} | {v for v, t in self.uncertain.items() if t >= restart}

    def set_ok(self, value: bytes, sent: float):
        self.acknowledged, self.acknowledged_sent = value, sent

    def set_failed(self, value: bytes, sent: float):
        self.uncertain[value] = sent


@dataclass
class PipelineResult:
    """One pipeline: when it was sent and answered (time.monotonic()), and whether every reply was a
    correct value (False: at least one allowed error reply)."""

    sent: float
    answered: float
    all_correct: bool


# ---------------------------------------------------------------------------------------------------
# The checked load.


class LoadThreads:
    """Threads that run `_run` until stop(): each subclass makes `self.threads` and `self.stop_event`."""

    threads: List[threading.Thread]
    stop_event: threading.Event

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _connect(self, who: str) -> Optional[socket.socket]:
        """A connection to self.port waiting at most self.reply_timeout; None (a problem noted) if refused."""
        try:
            sock = socket.create_connection((HOST, self.port), timeout=self.reply_timeout)
        except OSError as e:
            with self.lock:
                self.problems.append(f"{who}: connect failed: {e!r}")
            return None
        sock.settimeout(self.reply_timeout)
        return sock

    def _pop_reply(self, sock: socket.socket, reader: RespReader):
        """The next reply (what RespReader.pop gives), read within self.reply_timeout; AssertionError if none
        comes or respcache closes the connection."""
        while True:
            got = reader.pop()
            if got is not None:
                return got
            try:
                data = sock.recv(1 << 16)
            except socket.timeout:
                raise AssertionError(f"no reply within {self.reply_timeout:.1f}s") from None
            except ConnectionResetError:
                data = b""
            if not data:
                raise AssertionError("connection closed by respcache")
            reader.feed(data)

    def stop(self, timeout: float = scaled(30)):
        """Stops the threads after what they have in flight; AssertionError if one is still waiting."""
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=timeout)
        alive = sum(t.is_alive() for t in self.threads)
        assert alive == 0, f"{alive} load threads still waiting for a reply after {timeout:.0f}s"


class CheckedLoad(LoadThreads):
    """Pipelined SET/GET load through `port`; see the module comment. `big` is (key, value) of a large
    value that client 0 also reads (every 4th pipeline) and that must come back whole; `allowed_errors`
    are the error prefixes accepted during faults; `reply_timeout` bounds every wait for a reply (a
    longer wait is a hang, recorded as a problem)."""

    def __init__(self, port: int, clients: int = 4, depth: int = 8, keys: int = 32,
                 reply_timeout: float = scaled(6), big: Optional[Tuple[str, bytes]] = None,
                 allowed_errors: Sequence[str] = (BACKEND_UNAVAILABLE,)):
        self.port, self.depth, self.keys = port, depth, keys
        self.reply_timeout, self.big, self.allowed_errors = reply_timeout, big, tuple(allowed_errors)
        self.lock = threading.Lock()  # guards every field below and every KeyState
        self.states = [[KeyState() for _ in range(keys)] for _ in range(clients)]
        self.results: List[List[PipelineResult]] = [[] for _ in range(clients)]  # per client
        self.problems: List[str] = []
        self.sent = self.replied = self.correct = self.errors = 0
        self.error_texts: Set[str] = set()
        self.restart: Optional[float] = None  # when the backend restarted empty, see restarting()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in range(clients)]

    # -- control

    def restarting(self):
        """The backend (killed) is about to restart empty: a request sent from now on may only see what was
        written from now on. Call while the backend is down, just before starting it again."""
        with self.lock:
            self.restart = time.monotonic()

    def counts(self) -> Tuple[int, int]:
        """(correct replies, allowed error replies) so far."""
        with self.lock:
            return self.correct, self.errors

    def correct_pipelines_sent_after(self, t: float) -> int:
        with self.lock:
            return sum(1 for client in self.results for r in client if r.sent >= t and r.all_correct)

    def recovery(self, fault_end: float) -> Tuple[float, float]:
        """(first, last): seconds from `fault_end` to the first reply of a wholly correct pipeline sent after
        it, by any client (first) and by every client (last). AssertionError if a client has none."""
        per_client = []
        with self.lock:
            for c, client in enumerate(self.results):
                ends = [r.answered for r in client if r.sent >= fault_end and r.all_correct]
                assert ends, f"client {c} had no wholly correct pipeline after the fault ended"
                per_client.append(min(ends) - fault_end)
        return min(per_client), max(per_client)

    def unexplained_values(self, direct) -> List[str]:
        """The keys whose value in Redis (read with `direct`, a redis-py client of the backend) is not one
        the load knows it may hold: a write invented, lost after its acknowledgement, or misplaced."""
        out = []
        with self.lock:
            for c, client in enumerate(self.states):
                values = direct.mget([f"fl:{c}:{i}" for i in range(self.keys)])
                now = time.monotonic()
                out += [f"fl:{c}:{i}={v!r}" for i, v in enumerate(values)
                        if v not in client[i].possible(now, self.restart)]
        return out

    def summary(self) -> str:
        with self.lock:
            return (f"{self.sent} requests sent, {self.replied} replies ({self.correct} correct, {self.errors} "
                    f"allowed errors: {sorted(self.error_texts)[:3]}); problems: {self.problems[:5]}")

    # -- one client

    def _requests(self, c: int, n: int, rng: random.Random) -> List[Tuple[str, int, Optional[bytes]]]:
        """Pipeline n of client c as (kind, key index, value): in each group of four a SET of a random key,
        a GET of that key (read your writes, through the cache), two GETs of random keys (hits); and
        every 4th pipeline of client 0 a GET of the big value."""
        requests: List[Tuple[str, int, Optional[bytes]]] = []
        for j in range(self.depth):
            if j % 4 == 0:
                i = rng.randrange(self.keys)
                requests.append(("SET", i, f"v:{c}:{i}:{n}:{j}".encode()))
            elif j % 4 == 1:
                requests.append(("GET", requests[-1][1], None))
            else:
                requests.append(("GET", rng.randrange(self.keys), None))
        if self.big is not None and c == 0 and n % 4 == 0:
            requests.append(("BIG", -1, None))
        return requests

    def _encode(self, c: int, requests) -> bytes:
        out = []
        for kind, i, value in requests:
            if kind == "SET":
                out.append(encode_command("SET", f"fl:{c}:{i}", value))
            elif kind == "GET":
                out.append(encode_command("GET", f"fl:{c}:{i}"))
            else:
                out.append(encode_command("GET", self.big[0]))
        return b"".join(out)

    def _judge(self, c: int, request, reply, sent: float) -> str:
        """'ok', 'error' (an allowed error reply) or a problem's description. Updates the key's state;
        called with the lock held, in reply order."""
        kind, i, value = request
        if isinstance(reply, RespError):
            if not reply.message.startswith(self.allowed_errors):
                return f"{kind} {i}: unexpected error {reply.message!r}"
            self.error_texts.add(reply.message[:80])
            if kind == "SET":
                self.states[c][i].set_failed(value, sent)
            return "error"
        if kind == "SET":
            if reply != b"OK":
                return f"SET fl:{c}:{i}: reply {reply!r}"
            self.states[c][i].set_ok(value, sent)
            return "ok"
        if kind == "BIG":
            return "ok" if reply == self.big[1] else f"GET {self.big[0]}: {len(reply or b'')} bytes, not the value"
        possible = self.states[c][i].possible(sent, self.restart)
        if reply in possible:
            return "ok"
        return f"GET fl:{c}:{i}: {reply!r}, possible: {sorted(map(repr, possible))[:4]}"

    def _read(self, sock: socket.socket, reader: RespReader):
        return self._pop_reply(sock, reader)[0]

    def _one_pipeline(self, c: int, n: int, sock: socket.socket, reader: RespReader, rng) -> bool:
        """Sends and checks pipeline n; False (with the problem recorded) when the client must stop."""
        requests = self._requests(c, n, rng)
        sent = time.monotonic()
        all_correct = True
        with self.lock:
            self.sent += len(requests)
        try:
            sock.sendall(self._encode(c, requests))
            for request in requests:
                reply = self._read(sock, reader)
                with self.lock:
                    self.replied += 1
                    verdict = self._judge(c, request, reply, sent)
                    if verdict == "error":
                        self.errors += 1
                        all_correct = False
                    elif verdict == "ok":
                        self.correct += 1
                    else:
                        self.problems.append(f"client {c} pipeline {n}: {verdict}")
                        return False
        except (AssertionError, OSError) as e:
            with self.lock:
                self.problems.append(f"client {c} pipeline {n}: {e}")
            return False
        with self.lock:
            if reader.buf:
                self.problems.append(f"client {c} pipeline {n}: extra bytes {bytes(reader.buf[:80])!r}")
                return False
            self.results[c].append(PipelineResult(sent, time.monotonic(), all_correct))
        return True

    def _run(self, c: int):
        rng = random.Random(c)
        sock = self._connect(f"client {c}")
        if sock is None:
            return
        reader = RespReader()
        n = 0
        try:
            while not self.stop_event.is_set() and self._one_pipeline(c, n, sock, reader, rng):
                n += 1
        finally:
            sock.close()


# ---------------------------------------------------------------------------------------------------
# The relay.


class Relay:
    """A TCP relay from a free port of 127.0.0.1 to `HOST:target_port`; see the module comment."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()  # guards the fields below
        self.accepted = 0
        self.cuts: List[float] = []  # time.monotonic() of each cut made
        self._cut: Optional[Tuple[bytes, int]] = None  # (marker, bytes after it) while armed
        self._sockets: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._stop = threading.Event()
        self._spawn(self._accept_loop)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _spawn(self, target: Callable, *args):
        t = threading.Thread(target=target, args=args, daemon=True)
        with self.lock:
            self._threads.append(t)
        t.start()

    # -- faults

    def cut_in_reply(self, marker: bytes, after: int):
        """Arms a cut: the next connection whose reply stream carries `marker` is closed (both sides, with
        a reset) once `after` bytes past the end of the marker have been forwarded. See `cuts`."""
        with self.lock:
            self._cut = (marker, after)

    def black_hole(self):
        """Stops forwarding anything in either direction; connections stay open, new ones are accepted."""
        self._forwarding.clear()

    def heal(self):
        self._forwarding.set()

    # -- the forwarding

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=scaled(5))
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.settimeout(None)  # blocking; _pump polls with select so that it sees stop and pauses
            with self.lock:
                self.accepted += 1
                self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream, False)
            self._spawn(self._pump, upstream, client, True)

    def _wait_forwarding(self) -> bool:
        while not self._forwarding.wait(0.05):
            if self._stop.is_set():
                return False
        return not self._stop.is_set()

    def _pump(self, src: socket.socket, dst: socket.socket, replies: bool):
        """Copies src to dst until either side closes. `replies`: this is the Redis -> respcache side, where
        cuts are made."""
        tail = b""  # the end of what was forwarded, to find a marker split across reads
        cut_at: Optional[int] = None  # bytes still to forward before the cut, once the marker is seen
        while self._wait_forwarding():
            try:
                if not select.select([src], [], [], 0.05)[0]:
                    continue
                data = src.recv(65536)
            except (OSError, ValueError):  # ValueError: closed by close() meanwhile
                break
            if not data or not self._wait_forwarding():
                break
            if replies and cut_at is None:
                cut_at = self._find_marker(tail, data)
                tail = (tail + data)[-64:]
            if cut_at is not None and cut_at <= len(data):
                self._send(dst, data[:cut_at])
                self._reset(src, dst)
                return
            if cut_at is not None:
                cut_at -= len(data)
            if not self._send(dst, data):
                break
        self._close(src, dst)

    def _find_marker(self, tail: bytes, data: bytes) -> Optional[int]:
        """Where in `data` to cut (may be past its end) if the armed marker ends in tail + data; disarms."""
        with self.lock:
            if self._cut is None:
                return None
            marker, after = self._cut
            pos = (tail + data).find(marker)
            if pos < 0:
                return None
            self._cut = None
        return pos + len(marker) - len(tail) + after

    @staticmethod
    def _send(dst: socket.socket, data: bytes) -> bool:
        try:
            dst.sendall(data)
            return True
        except OSError:
            return False

    def _reset(self, *socks: socket.socket):
        with self.lock:
            self.cuts.append(time.monotonic())
        for s in socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self._close(*socks)

    @staticmethod
    def _close(*socks: socket.socket):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        self._stop.set()
        self._forwarding.set()
        self.listener.close()
        with self.lock:
            threads, socks = list(self._threads), list(self._sockets)
        self._close(*socks)
        for t in threads:
            t.join(timeout=scaled(5))
