"""The core daemon as a process: many clients, the client limit, a backend that goes away and comes back,
signals, configuration errors and structured logs."""

import signal
import socket
import threading
import time

import pytest

from conftest import (RawClient, RespError, encode_command, parse_json_log, run_respcache, scaled,
                      wait_until)


# ---------------------------------------------------------------------------------------------------
# Many clients.


@pytest.mark.timeout(120)
def test_200_concurrent_clients_each_doing_50_round_trips(proxy):
    clients_n, rounds = 200, 50
    conns = [proxy.raw() for _ in range(clients_n)]
    # Every connection is open (and served) before any of them starts its round trips.
    for c in conns:
        assert c.command("PING") == b"PONG"
    start = threading.Barrier(clients_n, timeout=scaled(30))
    failures = []

    def client(i: int, c: RawClient):
        try:
            start.wait()
            for j in range(rounds):
                key, value = f"c{i}:k{j % 5}", f"client {i} round {j}"
                c.send(encode_command("SET", key, value) + encode_command("GET", key))
                replies = c.read_replies(2)
                if replies != [b"OK", value.encode()]:
                    failures.append((i, j, replies))
                    return
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append((i, "exception", repr(e)))

    threads = [threading.Thread(target=client, args=(i, c), daemon=True) for i, c in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=scaled(90))
    for c in conns:
        c.close()
    assert not any(t.is_alive() for t in threads), "some clients did not finish"
    assert failures == []


def test_max_clients_limit(respcache, redis_server):
    rc = respcache.start(["--max-clients", "5"], backend=redis_server)

    def connect_served() -> RawClient:
        # The start-up probe's connection may still be counted for a moment after it closed: retry,
        # bounded. A limit below 5 still fails here.
        def attempt():
            c = rc.raw()
            try:
                if c.command("PING") == b"PONG":
                    return c
            except (EOFError, OSError):
                pass
            c.close()
            return None

        return wait_until(attempt, scaled(10), "a connection to be served")

    conns = [connect_served() for _ in range(5)]
    for i, c in enumerate(conns):
        assert c.command("SET", f"mc{i}", i) == b"OK"

    with rc.raw() as sixth:
        assert sixth.read_until_eof() == b"-ERR max number of clients reached\r\n"
    # The five are unaffected.
    for i, c in enumerate(conns):
        assert c.command("GET", f"mc{i}") == str(i).encode()

    conns.pop().close()
    replacement = connect_served()  # accepted once the closed one is gone
    assert replacement.command("GET", "mc0") == b"0"
    with rc.raw() as again:
        assert again.read_until_eof() == b"-ERR max number of clients reached\r\n"
    for c in conns + [replacement]:
        c.close()


# ---------------------------------------------------------------------------------------------------
# The backend goes away and comes back.


def test_redis_restart_under_the_proxy(respcache, redis_server):
    rc = respcache.start(["--request-timeout", "500ms", "--connect-timeout", "200ms", "--invalidation", "ttl"],
                         backend=redis_server)
    redis_server.client().set("survivor", "cached value")
    with rc.raw() as c:
        assert c.command("GET", "survivor") == b"cached value"

    redis_server.stop()
    with rc.raw() as c:
        # A hit needs no backend.
        assert c.command("GET", "survivor") == b"cached value"
        # A miss is an error reply, not a hang (the read is bounded by the socket timeout).
        reply = c.command("GET", "not-cached")
        assert isinstance(reply, RespError), reply
        assert reply.message.startswith("ERR backend unavailable"), reply
        # The connection is still usable, and local commands still work.
        assert c.command("PING") == b"PONG"
        reply = c.command("SET", "while-down", "x")
        assert isinstance(reply, RespError) and reply.message.startswith("ERR backend unavailable"), reply

    redis_server.start()  # same port, empty (no persistence)

    def misses_served():
        # Each io thread has its own backend connection, reconnecting on its own backoff; new clients are
        # spread over the threads, so several fresh connections in a row must all be served.
        for _ in range(6):
            with rc.raw() as c:
                if c.command("GET", "not-cached") is not None:
                    return False
        return True

    wait_until(misses_served, scaled(20), "respcache to reconnect to the restarted Redis")
    c = rc.client()
    assert c.set("after-restart", "ok") is True
    assert c.get("after-restart") == b"ok"
    assert redis_server.client().get("after-restart") == b"ok"


def test_backend_down_at_start_up_then_up(respcache, redis_server):
    redis_server.stop()
    rc = respcache.start(["--request-timeout", "500ms", "--connect-timeout", "200ms"], backend=redis_server)
    with rc.raw() as c:
        reply = c.command("GET", "k")
        assert isinstance(reply, RespError) and reply.message.startswith("ERR backend unavailable"), reply
    redis_server.start()
    redis_server.client().set("k", "v")

    def served():
        for _ in range(6):  # on every io thread (see test_redis_restart_under_the_proxy)
            with rc.raw() as c:
                if c.command("GET", "k") != b"v":
                    return False
        return True

    wait_until(served, scaled(20), "respcache to connect to Redis once it is up")


# ---------------------------------------------------------------------------------------------------
# Signals.


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_with_status_0(proxy, sig):
    with proxy.raw() as c:
        assert c.command("SET", "s", "1") == b"OK"
    assert proxy.stop(sig) == 0
    assert "respcache stopped" in proxy.log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_idle_client_does_not_delay_exit_status(proxy, sig):
    idle = proxy.raw()
    assert idle.command("PING") == b"PONG"
    try:
        assert proxy.stop(sig) == 0
        assert idle.read_until_eof() == b""
    finally:
        idle.close()


def test_pipeline_in_flight_at_sigterm_gets_every_reply(proxy):
    """A pipeline sent, then SIGTERM right away: every request gets its reply, then the server closes."""
    n = 200  # about 8 kB: in respcache's socket buffer before the signal is sent, and read in one go
    data = b"".join(encode_command("SET", f"inflight:{i}", i) + encode_command("GET", f"inflight:{i}")
                    for i in range(n // 2))
    with proxy.raw() as c:
        c.send(data)
        proxy.proc.send_signal(signal.SIGTERM)
        replies = c.read_replies(n)
        assert c.read_until_eof() == b""
    assert replies == [v for i in range(n // 2) for v in (b"OK", str(i).encode())]
    assert proxy.stop() == 0


def test_repeated_sigterm_while_stopping_still_exits_with_status_0(proxy):
    """Signals sent again and again, through the drain and the last clean-up after "respcache stopped":
    none of them turns the clean exit into death by signal."""
    idle = proxy.raw()
    assert idle.command("PING") == b"PONG"
    deadline = time.monotonic() + scaled(20)
    try:
        while proxy.proc.poll() is None and time.monotonic() < deadline:
            proxy.proc.send_signal(signal.SIGTERM)
            time.sleep(0.002)
        assert proxy.proc.poll() is not None, "respcache still running"
        assert proxy.stop() == 0
        assert "respcache stopped" in proxy.log
    finally:
        idle.close()


def test_large_pipeline_received_before_sigterm_gets_every_reply(proxy):
    """A pipeline larger than one read: its tail is still in respcache's socket buffer when SIGTERM
    arrives. Every request the client sent before the signal must still be answered."""
    n = 4000  # about 160 kB
    data = b"".join(encode_command("SET", f"big:{i}", "x" * 10) for i in range(n))
    with proxy.raw() as c:
        c.send(data)
        first = c.read_reply()
        proxy.proc.send_signal(signal.SIGTERM)
        rest = []
        try:
            while len(rest) < n - 1:
                rest.append(c.read_reply())
        except EOFError:
            pass
    assert proxy.stop() == 0
    assert [first] + rest == [b"OK"] * n, f"{1 + len(rest)} of {n} replies before the connection closed"


def test_blocked_request_in_flight_at_sigterm_gets_its_reply(proxy, redis_server):
    with proxy.raw() as c:
        c.send(encode_command("BLPOP", "nothing-here", "0.5") + encode_command("PING"))

        def blocked_in_redis():
            clients = redis_server.client().client_list()
            return any(cl.get("cmd") == "blpop" for cl in clients)

        wait_until(blocked_in_redis, scaled(10), "the BLPOP to reach Redis")
        proxy.proc.send_signal(signal.SIGTERM)
        assert c.read_raw_replies(2) == [b"*-1\r\n", b"+PONG\r\n"]
        assert c.read_until_eof() == b""
    assert proxy.stop() == 0


def test_no_new_clients_after_sigterm(proxy, redis_server):
    held = proxy.raw()
    try:
        held.send(encode_command("BLPOP", "nothing-here", "1"))
        wait_until(lambda: any(cl.get("cmd") == "blpop" for cl in redis_server.client().client_list()),
                   scaled(10), "the BLPOP to reach Redis")
        proxy.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "shutting down" in proxy.log, scaled(10), "respcache to begin shutting down")

        def refused_or_closed():
            try:
                with RawClient(proxy.port, timeout=scaled(2)) as c:
                    c.send(encode_command("PING"))
                    return c.read_until_eof() == b""
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
                return True

        assert refused_or_closed()
        assert held.read_raw_reply() == b"*-1\r\n"
    finally:
        held.close()
    assert proxy.stop() == 0


# ---------------------------------------------------------------------------------------------------
# Configuration.


@pytest.mark.parametrize("args,env,names", [
    (["--ttl", "abc"], None, "--ttl"),
    (["--ttl=abc"], None, "--ttl"),
    (["--port", "70000"], None, "--port"),
    (["--capacity", "-1"], None, "--capacity"),
    (["--max-memory", "lots"], None, "--max-memory"),
    (["--backend", "http://127.0.0.1:1"], None, "--backend"),
    (["--invalidation", "sometimes"], None, "--invalidation"),
    (["--tracking-mode", "broadcast"], None, "--tracking-mode"),
    (["--tracking-mode", "bcast", "--invalidation", "ttl"], None, "--tracking-mode bcast needs --invalidation tracking"),
    (["--log-format", "xml"], None, "--log-format"),
    (["--no-such-option"], None, "no-such-option"),
    ([], {"RESPCACHE_TTL": "abc"}, "ttl"),
    ([], {"RESPCACHE_NO_SUCH_THING": "1"}, "RESPCACHE_NO_SUCH_THING"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_configuration_error_exits_2_with_one_line(args, env, names):
    result = run_respcache(args, env=env)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert names in lines[0], lines[0]
    assert result.stdout == ""


def test_help_exits_0():
    result = run_respcache(["--help"])
    assert result.returncode == 0, result
    assert "Usage" in result.stdout
    for option in ("--port", "--backend", "--ttl", "--capacity", "--max-memory", "--invalidation",
                   "--max-clients", "--log-format"):
        assert option in result.stdout, option


def test_version_exits_0():
    result = run_respcache(["--version"])
    assert result.returncode == 0, result
    assert result.stdout.startswith("respcache ")


def test_port_in_use_exits_non_zero(redis_server):
    result = run_respcache(["--port", str(redis_server.port), "--backend", redis_server.url])
    assert result.returncode not in (0, None), result
    assert "cannot listen" in result.stderr


# ---------------------------------------------------------------------------------------------------
# Logging.


def test_json_log_lines_are_objects_with_time_level_message(respcache, redis_server):
    rc = respcache.start(["--log-format", "json", "--log-level", "debug"], backend=redis_server)
    redis_server.client().set("j", "v")
    with rc.raw() as c:
        assert c.command("GET", "j") == b"v"
        assert c.command("GET", "j") == b"v"
        assert c.command("SET", "j", "w") == b"OK"
    # Something odd for the log to quote: a protocol error from a client sending non-ASCII bytes.
    with rc.raw() as c:
        c.send(b'*1\r\n$\xff"\\\x01\r\n')
        assert c.read_until_eof().startswith(b"-ERR Protocol error")
    assert rc.stop() == 0
    records = parse_json_log(rc.log)
    assert records, "no log lines"
    for rec in records:
        for field in ("time", "level", "message"):
            assert isinstance(rec.get(field), str) and rec[field], (field, rec)
    started = [r for r in records if r["message"] == "respcache started"]
    assert len(started) == 1 and started[0]["port"] == rc.port
    assert records[-1]["message"] == "respcache stopped"


def test_text_log_start_line_names_the_port(proxy):
    first = proxy.log_lines()[0]
    assert "respcache started" in first and f"port={proxy.port}" in first
