"""A backend in trouble: a script or function running past busy-reply-threshold, a command slower than
--request-timeout. Clients get Redis's own replies (compared with a direct client of the same Redis) or
"-ERR backend unavailable: ..." within the request timeout; SCRIPT KILL and FUNCTION KILL reach Redis
while a shared connection is stuck behind the script; nothing is refused afterwards that Redis accepts;
and a slow command fails no one else's request on a connection that is still alive.

respcache runs with --threads 1 and one shared connection, so that every client of a test shares the
pipeline that the slow command holds: the case that went wrong before."""

import signal
import threading
import time

import pytest

from conftest import RawClient, RespError, encode_command, scaled, wait_until
from opslib import proxy_info

BUSY_PREFIX = "BUSY "
SPIN = "#!lua name=spinlib\nredis.register_function('spin', function() while true do end end)"


def one_thread(*extra):
    return ["--threads", "1", "--backend-connections", "1", *extra]


def busy_redis(redis_factory):
    return redis_factory.start("--busy-reply-threshold", "100")


def wait_busy(redis_server):
    """Until Redis answers a direct client -BUSY (the script has passed busy-reply-threshold)."""
    def busy():
        with RawClient(redis_server.port, timeout=scaled(5)) as c:
            reply = c.command("PING")
        return isinstance(reply, RespError) and reply.message.startswith(BUSY_PREFIX)
    wait_until(busy, scaled(10), "Redis to answer -BUSY")


def direct_reply(redis_server, *args):
    with RawClient(redis_server.port, timeout=scaled(5)) as c:
        return c.command(*args)


@pytest.mark.timeout(60)
def test_while_a_script_is_busy_replies_are_redis_own_and_select_is_never_refused(respcache, redis_factory):
    redis_server = busy_redis(redis_factory)
    rc = respcache.start(one_thread(), backend=redis_server)
    redis_server.client().set("k", "v")
    script = RawClient(redis_server.port, timeout=scaled(30))  # the script runs on a direct connection
    try:
        script.send(encode_command("EVAL", "while true do end", 0))
        wait_busy(redis_server)
        expected = direct_reply(redis_server, "GET", "missing")
        assert isinstance(expected, RespError) and expected.message.startswith(BUSY_PREFIX)
        with rc.raw(timeout=scaled(10)) as c:
            # In another database (a SELECT first on the shared connection, which Redis refuses too): the
            # client gets Redis's -BUSY, never a refusal of its SELECT.
            assert c.command("SELECT", "2") == b"OK"
            assert c.command("GET", "missing") == expected
            assert c.command("SELECT", "0") == b"OK"
            assert c.command("GET", "missing") == expected
            # PING follows Redis once it has answered -BUSY: the same error a direct client gets.
            assert c.command("PING") == direct_reply(redis_server, "PING")
            assert c.command("SCRIPT", "KILL") == b"OK"
        reply = script.read_reply()
        assert isinstance(reply, RespError) and "Script killed" in reply.message, reply
    finally:
        script.close()
    # Afterwards everything works, in every database, without an error Redis would not give.
    with rc.raw(timeout=scaled(10)) as c:
        assert c.command("PING") == b"PONG"
        assert c.command("PING") == b"PONG"
        for db in ("3", "0", "5"):
            assert c.command("SELECT", db) == b"OK"
            assert c.command("SET", f"after:{db}", db) == b"OK"
            assert c.command("GET", f"after:{db}") == db.encode()
    assert redis_server.client(db=3).get("after:3") == b"3"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["script", "function"])
def test_kill_reaches_redis_while_the_shared_connection_is_stuck_behind_the_script(respcache, redis_factory, kind):
    redis_server = busy_redis(redis_factory)
    if kind == "function":
        redis_server.client().function_load(SPIN)
    # A request timeout longer than the test's wait, so that the script's client hears Redis's answer.
    rc = respcache.start(one_thread("--request-timeout", "20s"), backend=redis_server)
    runner = rc.raw(timeout=scaled(30))
    try:
        runner.send(encode_command("EVAL", "while true do end", 0) if kind == "script"
                    else encode_command("FCALL", "spin", 0))
        wait_busy(redis_server)
        stuck = rc.raw(timeout=scaled(30))
        stuck.send(encode_command("GET", "queued-behind-the-script"))  # the same shared connection
        with rc.raw(timeout=scaled(10)) as killer:
            assert killer.command("SCRIPT" if kind == "script" else "FUNCTION", "KILL") == b"OK"
        reply = runner.read_reply()
        assert isinstance(reply, RespError) and "killed" in reply.message.lower(), reply
        assert stuck.read_reply() is None  # its reply, once Redis read it: the key is missing
        stuck.close()
    finally:
        runner.close()
    assert redis_server.commandstats()[f"{kind}|kill"] == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["debug sleep", "client pause"])
def test_a_command_slower_than_the_request_timeout_fails_alone(respcache, redis_server, how):
    """Redis stalls for 3 s (DEBUG SLEEP 3 sent through respcache, or CLIENT PAUSE 3000 sent to Redis
    directly while a GET through respcache waits) with --request-timeout 2s: the first request gets the
    timeout error at 2 s; a GET sent behind it on the same connection 2 s in (its own deadline is 4 s)
    gets its value when Redis wakes at 3 s; the shared connection is never dropped (backend_reconnects
    stays), as nothing but one command was slow."""
    redis_server.client().set("k", "value")
    redis_server.client().set("k2", "value 2")
    rc = respcache.start(one_thread("--request-timeout", "2s"), backend=redis_server)
    reconnects = int(proxy_info(rc.port)["backend_reconnects"])
    replies = {}

    def first():
        with rc.raw(timeout=scaled(30)) as c:
            replies["first"] = c.command("DEBUG", "SLEEP", "3") if how == "debug sleep" else c.command("GET", "k")

    if how == "client pause":
        assert direct_reply(redis_server, "CLIENT", "PAUSE", "3000", "ALL") == b"OK"
    t = threading.Thread(target=first, daemon=True)
    t.start()
    time.sleep(2.0)  # a minimum: the GET must be sent after the first request's timeout has been reached
    with rc.raw(timeout=scaled(30)) as c:  # another key: a miss of k would share the first GET's outcome
        assert c.command("GET", "k2") == b"value 2"
    t.join(scaled(30))
    reply = replies["first"]
    assert isinstance(reply, RespError) and reply.message == "ERR backend unavailable: no reply within 2000ms", reply
    with rc.raw(timeout=scaled(10)) as c:
        assert c.command("SET", "k", "next") == b"OK"
        assert c.command("GET", "k") == b"next"
    assert int(proxy_info(rc.port)["backend_reconnects"]) == reconnects


# ---------------------------------------------------------------------------------------------------
# --stale-if-error: hits while the backend is unreachable, for a bounded time, opt in.


def is_backend_error(reply) -> bool:
    return isinstance(reply, RespError) and reply.message.startswith("ERR backend unavailable")


def backend_down(port):
    info = proxy_info(port)
    return info["backend_state"] == "down" and info["invalidation_channel"] == "down"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("window", ["0", "4s"])
def test_stale_if_error_serves_hits_for_its_window_only_while_redis_is_unreachable(respcache, redis_server, window):
    rc = respcache.start(["--stale-if-error", window, "--request-timeout", "500ms", "--connect-timeout", "200ms"],
                         backend=redis_server)
    redis_server.client().set("hot", "before")
    with rc.raw() as c:
        assert c.command("GET", "hot") == b"before"
        wait_until(lambda: c.command("GET", "hot") == b"before" and proxy_info(rc.port)["cached_keys"] == "1",
                   scaled(10), "the key cached")
    redis_server.stop(signal.SIGKILL)
    wait_until(lambda: backend_down(rc.port), scaled(10), "respcache to see Redis gone")
    with rc.raw(timeout=scaled(10)) as c:
        if window == "0":
            reply = c.command("GET", "hot")
            assert is_backend_error(reply), reply  # the cache went with the channel: today's behaviour
            assert int(proxy_info(rc.port)["cache_stale_hits"]) == 0
            return
        # Served stale while the link is down (between its reconnect attempts; during one, the read waits
        # for it and gets the error).
        wait_until(lambda: c.command("GET", "hot") == b"before", scaled(3), "a stale hit")
        assert is_backend_error(c.command("GET", "never-cached"))
        assert int(proxy_info(rc.port)["cache_stale_hits"]) >= 1
        # Past the window the stale entries are not served (the window counts from the loss).
        wait_until(lambda: is_backend_error(c.command("GET", "hot")), scaled(15), "the window to close")
    # Redis back (empty, then written directly): the stale entry is gone before anything is served.
    redis_server.start()
    redis_server.client().set("hot", "after")
    wait_until(lambda: proxy_info(rc.port)["invalidation_channel"] == "live", scaled(15), "the channel back")
    with rc.raw(timeout=scaled(10)) as c:
        wait_until(lambda: c.command("GET", "hot") == b"after", scaled(10), "the fresh value")


@pytest.mark.timeout(60)
def test_stale_if_error_serves_nothing_stale_while_redis_is_reachable(respcache, redis_server):
    """Tracking lost while Redis still answers (the channel's connection, or the data connections that
    tracked the reads, killed): the entries it left are never served, and a write made meanwhile is read
    back fresh."""
    rc = respcache.start(["--stale-if-error", "60s"], backend=redis_server)
    direct = redis_server.client()
    direct.set("k", "old")
    for name in ("respcache", "respcache-invalidation"):
        with rc.raw() as c:
            assert c.command("GET", "k") == direct.get("k")
            assert c.command("GET", "k") == direct.get("k")
        losses = int(proxy_info(rc.port)["invalidation_channel_losses"])
        for line in direct.client_list():
            if line.get("name") == name:
                direct.client_kill_filter(_id=line["id"])
        # Once respcache has seen the loss (until then a hit may precede it, as any hit may precede a
        # direct write by the time the write's news takes to arrive).
        wait_until(lambda: int(proxy_info(rc.port)["invalidation_channel_losses"]) > losses, scaled(10),
                   f"respcache to see its {name} connection killed")
        direct.set("k", f"new after {name} killed")
        with rc.raw(timeout=scaled(10)) as c:
            assert c.command("GET", "k") == direct.get("k")
    assert int(proxy_info(rc.port)["cache_stale_hits"]) == 0
