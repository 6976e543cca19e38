"""Bad input gets Redis's errors and harms no one else.

A table of protocol abuse, each row sent to respcache and to a real redis-server side by side (two
Redis servers: one behind respcache, one spoken to directly, so that nothing one row does is seen by the
other side). Asserted per row: respcache answers the same bytes as Redis (error texts included) and
closes the connection exactly when Redis does; then a fresh client is served, and what a row must not
have done (a half-sent SET) is not done. Then slowloris clients (one byte a second) and 2000 idle
connections, throughout which a fresh client is served (each wait bounded by a generous timeout; speed
is not asserted).

How a row is read: Redis's answer first; if Redis closed the connection, respcache's is read until it
closes (bounded); otherwise until it has sent as many bytes as Redis did, then for QUIET seconds more, to
see that nothing else comes and the connection stays open."""

from __future__ import annotations

import random
import resource
import socket
import threading
import time
from typing import List, Optional, Sequence, Tuple

import pytest

from conftest import HOST, RawClient, encode_command, scaled, wait_until
from opslib import proxy_int, spawn, wait_started

QUIET = scaled(0.5)  # nothing more arrives for this long: the server has said all it will
CLOSE_BOUND = scaled(10)  # the longest wait for an answer or a close


def junk(seed: int, n: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(n))


# (id, chunks sent in order, a short pause between them; whether to shut down our side after the last)
ROWS: List[Tuple[str, Sequence[bytes], bool]] = [
    ("multibulk_count_999999999999", [b"*999999999999\r\n"], False),
    ("multibulk_count_2147483648", [b"*2147483648\r\n"], False),
    ("multibulk_count_not_a_number", [b"*12x\r\n"], False),
    ("multibulk_count_negative", [b"*-5\r\n", b"PING\r\n"], False),
    ("multibulk_count_minus_one", [b"*-1\r\n", b"PING\r\n"], False),
    ("multibulk_count_zero", [b"*0\r\n", b"PING\r\n"], False),
    ("bulk_length_2147483648", [b"*1\r\n$2147483648\r\n"], False),
    ("bulk_length_999999999999", [b"*2\r\n$3\r\nGET\r\n$999999999999\r\n"], False),
    ("bulk_length_minus_one", [b"*1\r\n$-1\r\n"], False),
    ("bulk_length_negative", [b"*2\r\n$3\r\nGET\r\n$-7\r\n"], False),
    ("bulk_length_not_a_number", [b"*1\r\n$4x\r\nPING\r\n"], False),
    ("bulk_expected_got_other", [b"*1\r\n+PING\r\n"], False),
    ("bulk_at_top_level", [b"$4\r\nPING\r\n"], False),
    # 1 MB: Redis refuses a header line over 64 KB only when its query buffer holds more than that without
    # the line's end, which depends on how the bytes arrive below a few hundred KB (README, Limits).
    ("multibulk_header_line_1mb", [b"*" + b"1" * (1 << 20) + b"\r\n"], False),
    ("bulk_header_line_1mb", [b"*1\r\n$" + b"1" * (1 << 20) + b"\r\n"], False),
    ("inline_1mb", [b"a" * (1 << 20) + b"\r\n"], False),
    ("inline_1mb_set", [b"SET k " + b"v" * (1 << 20) + b"\r\n"], False),
    ("inline_unbalanced_quotes", [b'SET k "v\r\n'], False),
    ("inline_quote_then_letter", [b'SET k "v"x\r\n'], False),
    ("inline_lf_only", [b"PING\n"], False),
    ("inline_empty_lines", [b"\r\n\r\n\n", b"PING\r\n"], False),
    ("inline_nul_bytes", [b"PI\x00NG\r\n"], False),
    ("deep_nesting", [b"*1\r\n" * 100000], False),
    ("nested_array_argument", [b"*2\r\n$3\r\nGET\r\n*1\r\n$1\r\nk\r\n"], False),
    ("binary_junk_1", [junk(1, 4096)], False),
    ("binary_junk_2", [junk(2, 65536)], False),
    ("binary_junk_3_crlf", [junk(3, 1000) + b"\r\n"], False),
    ("binary_junk_after_command", [encode_command("PING") + junk(4, 512)], False),
    ("bulk_without_crlf_after_data", [b"*1\r\n$4\r\nPINGxx", b"*1\r\n$4\r\nPING\r\n"], False),
    ("count_larger_than_what_follows", [b"*5\r\n$4\r\nPING\r\n"], False),
    ("count_larger_then_the_rest", [b"*3\r\n$3\r\nSET\r\n", b"$1\r\nk\r\n", b"$1\r\nv\r\n$3\r\nGET\r\n"], False),
    ("half_sent_set_then_close", [b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$5\r\nval"], True),
    ("half_sent_header_then_close", [b"*3\r\n$3\r\nSET\r\n$4"], True),
    ("half_sent_inline_then_close", [b"SET half value"], True),
]


def exchange(port: int, chunks: Sequence[bytes], shut: bool, until: Optional[Tuple[bytes, bool]]):
    """Sends `chunks` on a new connection and returns (bytes received, closed by the server). `until` is
    Redis's result, None for Redis itself (see the module comment for how each side is read)."""
    with socket.create_connection((HOST, port), timeout=CLOSE_BOUND) as s:
        try:
            for i, chunk in enumerate(chunks):
                if i:
                    time.sleep(0.05)  # separate reads on the server's side
                s.sendall(chunk)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = bytearray()
        deadline = time.monotonic() + CLOSE_BOUND
        while True:
            want_all = until is not None and (until[1] or len(received) < len(until[0]))
            s.settimeout(max(0.01, deadline - time.monotonic()) if want_all else QUIET)
            data = recv_some(s)
            if not data:
                return bytes(received), data == b""
            received += data


def recv_some(s: socket.socket) -> Optional[bytes]:
    """The next bytes; b"" once the server has closed (a reset counts), None if nothing came in time."""
    try:
        return s.recv(65536)
    except ConnectionResetError:
        return b""
    except socket.timeout:
        return None


@pytest.fixture
def sides(respcache, redis_factory):
    """(respcache in front of one Redis, another Redis spoken to directly)."""
    behind = redis_factory.start()
    rc = respcache.start(backend=behind)
    direct = redis_factory.start()
    yield rc, direct, behind
    assert rc.running(), "respcache died"


def served(rc):
    """A fresh client is served (a write, then reading it back), bounded by the socket timeout."""
    with RawClient(rc.port, timeout=scaled(10)) as c:
        assert c.command("SET", "fresh", "client") == b"OK"
        assert c.command("GET", "fresh") == b"client"


@pytest.mark.parametrize("chunks,shut", [pytest.param(c, s, id=name) for name, c, s in ROWS])
def test_protocol_abuse_is_answered_as_redis_does(sides, chunks, shut):
    rc, direct, behind = sides
    from_redis = exchange(direct.port, chunks, shut, None)
    from_proxy = exchange(rc.port, chunks, shut, from_redis)
    assert (from_proxy[0][:300], from_proxy[1]) == (from_redis[0][:300], from_redis[1])
    assert from_proxy == from_redis
    served(rc)
    # Nothing a refused or unfinished command held was run (the rows use `half`; `k` only where Redis
    # runs it too).
    assert behind.client().exists("half") == direct.client().exists("half") == 0
    assert behind.client().get("k") == direct.client().get("k")



# Before AUTH, Redis bounds a command to 10 arguments and an argument to 16 KB (as respcache, README Limits).
UNAUTHENTICATED_ROWS = [
    ("eleven_arguments", [b"*11\r\n"]),
    ("ten_arguments", [b"*10\r\n" + b"$1\r\nx\r\n" * 10]),
    ("argument_over_16kb", [b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"]),
    ("argument_of_16kb", [b"*2\r\n$4\r\nAUTH\r\n$16384\r\n" + b"p" * 16384 + b"\r\n"]),
    ("inline_before_auth", [b"GET k\r\n"]),
    # Redis checks that the command exists and its arity before authentication.
    ("known_command", [encode_command("GET", "k")]),
    ("unknown_command", [encode_command("NOPE", "a", "b")]),
    ("wrong_arity", [encode_command("GET")]),
    ("wrong_arity_of_a_local_command", [encode_command("SELECT")]),
    ("container_alone", [encode_command("CLIENT")]),
    ("unknown_subcommand", [encode_command("CLIENT", "FOO")]),
    ("wrong_arity_of_a_subcommand", [encode_command("CLIENT", "KILL")]),
    ("known_subcommand", [encode_command("CLIENT", "LIST")]),
    ("ping_with_arguments", [encode_command("PING", "a", "b")]),
]


@pytest.mark.parametrize("chunks", [pytest.param(c, id=name) for name, c in UNAUTHENTICATED_ROWS])
def test_abuse_before_auth_is_answered_as_redis_does(respcache, redis_factory, chunks):
    """The same comparison with --requirepass on respcache and requirepass on the Redis spoken to."""
    behind = redis_factory.start()
    rc = wait_started(spawn(respcache, ["--port", 0, "--bind", HOST, "--backend", behind.url, "--threads", 2,
                                        "--requirepass", "secret"]))
    direct = redis_factory.start()
    direct.client().config_set("requirepass", "secret")
    from_redis = exchange(direct.port, chunks, False, None)
    from_proxy = exchange(rc.port, chunks, False, from_redis)
    assert from_proxy == from_redis
    with RawClient(rc.port, timeout=scaled(10)) as c:
        assert c.command("AUTH", "secret") == b"OK"
        assert c.command("PING") == b"PONG"

# ---------------------------------------------------------------------------------------------------
# Clients that take their time, and clients that do nothing.

SLOW_COMMAND = encode_command("ECHO", "slowloris")  # 29 bytes: 29 s at one byte a second


class Trickle(threading.Thread):
    """Sends `payload` on every socket of `socks`, one byte each per `interval` seconds, until done or
    stopped. A send error is recorded in `errors` (a client closed by the server)."""

    def __init__(self, socks: List[socket.socket], payload: bytes, interval: float = 1.0):
        super().__init__(daemon=True)
        self.socks, self.payload, self.interval = socks, payload, interval
        self.sent = 0
        self.errors: List[str] = []
        self.stop = threading.Event()

    def run(self):
        while self.sent < len(self.payload) and not self.stop.wait(self.interval if self.sent else 0):
            for i, s in enumerate(self.socks):
                try:
                    s.sendall(self.payload[self.sent:self.sent + 1])
                except OSError as e:
                    self.errors.append(f"slow client {i}: {e!r}")
            self.sent += 1


@pytest.mark.timeout(120)
def test_slowloris_clients_harm_no_one(respcache, redis_server):
    """50 clients each send a 29-byte command one byte a second. Throughout, fresh clients (a new
    connection each time) are served; at the end every slow client gets its reply."""
    rc = respcache.start(backend=redis_server)
    slow = [RawClient(rc.port, timeout=scaled(10)) for _ in range(50)]
    trickle = Trickle([c.sock for c in slow], SLOW_COMMAND)
    fresh = 0
    try:
        trickle.start()
        while trickle.is_alive():
            served(rc)
            fresh += 1
            time.sleep(0.2)  # pacing of the fresh clients, not a wait for anything
        assert trickle.errors == []
        for i, c in enumerate(slow):
            assert c.read_raw_reply() == b"$9\r\nslowloris\r\n", f"slow client {i}"
    finally:
        trickle.stop.set()
        trickle.join(timeout=scaled(5))
        for c in slow:
            c.close()
    assert fresh >= 20, f"only {fresh} fresh clients were served during the trickle"
    assert rc.running()


def raise_nofile(need: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"needs {need} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


@pytest.mark.timeout(180)
def test_2000_idle_connections_harm_no_one(respcache, redis_server):
    """2000 connections that do nothing (half of them after one PING). respcache (which inherits this
    process's file descriptor limit, raised if needed) keeps them all; fresh clients are served, one with
    a pipeline of 1000 GETs; then every idle connection is still served."""
    idle_count = 2000
    raise_nofile(idle_count + 500)
    rc = respcache.start(["--max-clients", "3000"], backend=redis_server)
    idle: List[RawClient] = []
    try:
        for i in range(idle_count):
            c = RawClient(rc.port, timeout=scaled(10))
            idle.append(c)
            if i % 2:
                assert c.command("PING") == b"PONG"
        wait_until(lambda: proxy_int(rc.port, "connected_clients") >= idle_count + 1, scaled(30),
                   "every idle connection counted")
        for _ in range(5):
            served(rc)
        with RawClient(rc.port, timeout=scaled(30)) as c:
            c.send(encode_command("SET", "pipelined", "yes") + encode_command("GET", "pipelined") * 1000)
            assert c.read_raw_replies(1001) == [b"+OK\r\n"] + [b"$3\r\nyes\r\n"] * 1000
        for i, c in enumerate(idle):
            c.send_command("ECHO", i)
        for i, c in enumerate(idle):
            assert c.read_reply() == str(i).encode(), f"idle connection {i}"
    finally:
        for c in idle:
            c.close()
    wait_until(lambda: proxy_int(rc.port, "connected_clients") <= 1, scaled(30), "the idle connections gone")
    served(rc)
