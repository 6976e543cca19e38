"""MGET through GET's entries: keys found in the cache are served from it, only the others are fetched,
in one MGET of just them, and the reply is put together in the client's order, in either protocol.

What reached Redis is read from its INFO commandstats and, where the keys fetched matter, from MONITOR
on Redis itself.
"""

import pytest

from conftest import RawClient, scaled, wait_until
from opslib import proxy_info


def raw_in(port, proto):
    c = RawClient(port)
    if proto == 3:
        c.command("HELLO", "3")
    return c


def monitor_until(redis_server, action, last):
    """The commands Redis executed from when `action` ran, as MONITOR reports them, up to the first
    line that contains `last`."""
    lines = []
    with redis_server.raw() as mon:
        assert mon.command("MONITOR") == b"OK"
        action()
        while not lines or last not in lines[-1]:
            lines.append(mon.read_reply().decode())
    return lines


@pytest.mark.parametrize("mode", ["optin", "bcast"])
@pytest.mark.parametrize("proto", [2, 3])
def test_mget_partial_hit_fetches_only_the_missing_keys(respcache, redis_server, proto, mode):
    rc = respcache.start(["--tracking-mode", mode], backend=redis_server)
    r = redis_server.client()
    r.mset({"a": "1", "b": "2", "c": "3"})
    with raw_in(rc.port, proto) as c, raw_in(redis_server.port, proto) as direct:
        assert c.command("GET", "a") == b"1"
        assert c.command("GET", "nope") is None  # a missing key, cached as such
        stats = redis_server.commandstats()
        seen = monitor_until(redis_server, lambda: c.send_command("MGET", "a", "b", "nope", "c"), '"PTTL" "c"')
        # Only b and c were fetched, in one MGET, then each one's PTTL.
        commands = [line.split("] ", 1)[1] for line in seen if '"CLIENT"' not in line]
        assert commands == ['"MGET" "b" "c"', '"PTTL" "b"', '"PTTL" "c"'], seen
        reply = c.read_raw_reply()
        after = redis_server.commandstats()
        assert after.get("mget", 0) - stats.get("mget", 0) == 1
        direct.send_command("MGET", "a", "b", "nope", "c")
        assert reply == direct.read_raw_reply()  # byte for byte Redis's, nulls in the client's protocol
        after["mget"] += 1
        # Now all four are hits: Redis sees no MGET at all.
        c.send_command("MGET", "a", "b", "nope", "c")
        assert c.read_raw_reply() == reply
        assert redis_server.commandstats().get("mget", 0) == after["mget"]
        # ... and GET shares the entries MGET filled.
        assert c.command("GET", "c") == b"3"
        assert redis_server.commandstats().get("get", 0) == after.get("get", 0)


def test_mget_counts_hits_misses_and_partial_hits(respcache, redis_server):
    rc = respcache.start([], backend=redis_server)
    redis_server.client().mset({"a": "1", "b": "2"})
    c = rc.client()
    assert c.mget("a", "b") == [b"1", b"2"]  # a miss
    assert c.mget("a", "b") == [b"1", b"2"]  # a hit
    assert c.mget("a", "z") == [b"1", None]  # partial
    assert proxy_info(rc.port)["cached_mget"] == "hits=1,misses=1,partial=1"


def test_mget_sees_writes_through_the_proxy_and_direct(respcache, redis_server):
    rc = respcache.start([], backend=redis_server)
    r = redis_server.client()
    r.mset({"a": "1", "b": "2"})
    c = rc.client()
    assert c.mget("a", "b") == [b"1", b"2"]
    c.set("a", "new")  # through the proxy: read your writes at once
    assert c.mget("a", "b") == [b"new", b"2"]
    r.set("b", "direct")  # directly in Redis: its invalidation drops b
    wait_until(lambda: c.mget("a", "b") == [b"new", b"direct"], scaled(5), "the direct write to be seen")
    r.delete("a")
    wait_until(lambda: c.mget("a", "b") == [None, b"direct"], scaled(5), "the direct DEL to be seen")


def test_mget_in_a_transaction_and_errors_are_redis_own(proxy, redis_server):
    with proxy.raw() as c, redis_server.raw() as direct:
        assert c.command("MGET") == direct.command("MGET")  # wrong number of arguments
        redis_server.client().rpush("list", "x")
        assert c.command("MGET", "list") == direct.command("MGET", "list") == [None]
        assert c.command("MULTI") == b"OK"
        assert c.command("MGET", "a", "b") == b"QUEUED"
        assert c.command("EXEC") == [[None, None]]


# ---- Concurrent misses share one request, whichever command asked first. ----
# Redis is paused (CLIENT PAUSE ... ALL) while the first reads reach respcache, so that they are still in
# flight when the others come; respcache's own INFO proxy (served while Redis sleeps) says when they are.


def inflight(rc) -> int:
    return int(proxy_info(rc.port)["backend_inflight_requests"])


def paused_reads(rc, redis_server, leaders, followers, proto=2, pause_ms=1500):
    """Sends each of `leaders` (commands) on a connection of its own, waits until they are in flight at
    respcache, then sends each of `followers` on connections of their own, spread over the io threads.
    Returns (leaders' raw replies, followers' raw replies, commandstats delta)."""
    r = redis_server.client()
    conns = [raw_in(rc.port, proto) for _ in range(len(leaders) + len(followers))]
    for c in conns:
        assert c.command("PING") in (b"PONG", "PONG")  # connected before the pause
    before = redis_server.commandstats()
    r.execute_command("CLIENT", "PAUSE", str(pause_ms), "ALL")
    for c, cmd in zip(conns, leaders):
        c.send_command(*cmd)
    wait_until(lambda: inflight(rc) >= len(leaders), scaled(pause_ms / 2000), "the leaders in flight")
    for c, cmd in zip(conns[len(leaders):], followers):
        c.send_command(*cmd)
    replies = [c.read_raw_reply() for c in conns]
    for c in conns:
        c.close()
    after = redis_server.commandstats()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("get", "mget")}
    return replies[: len(leaders)], replies[len(leaders):], delta


def direct_replies(redis_server, commands, proto):
    """Redis's own raw replies to `commands`, on one connection in protocol `proto`."""
    with raw_in(redis_server.port, proto) as d:
        for cmd in commands:
            d.send_command(*cmd)
        return d.read_raw_replies(len(commands))


@pytest.mark.parametrize("proto", [2, 3])
def test_mget_missing_keys_wait_for_gets_in_flight(respcache, redis_server, proto):
    """GETs of a (a string), n (no such key) and h (a hash) are in flight; ten MGETs of a n h then ask:
    Redis runs the three GETs and no MGET, and each MGET is Redis's own reply (h's null included)."""
    rc = respcache.start(["--threads", "2"], backend=redis_server)
    r = redis_server.client()
    r.set("a", "va")
    r.hset("h", "f", "v")
    gets = [("GET", "a"), ("GET", "n"), ("GET", "h")]
    mgets = [("MGET", "a", "n", "h")] * 10
    first, then, delta = paused_reads(rc, redis_server, gets, mgets, proto)
    assert delta == {"get": 3, "mget": 0}, delta
    assert first == direct_replies(redis_server, gets, proto)
    assert then == direct_replies(redis_server, mgets, proto)
    assert int(proxy_info(rc.port)["cache_shared_misses"]) == 30


@pytest.mark.parametrize("proto", [2, 3])
def test_gets_and_mgets_wait_for_an_mget_in_flight(respcache, redis_server, proto):
    """One MGET of a n h is in flight; GETs and MGETs of its keys wait for it. a's value and n's null
    come from that MGET; h's null there does not tell a GET what it would say (WRONGTYPE), so one GET of
    h reaches Redis for all the GETs of h, and the MGETs take the MGET's null."""
    rc = respcache.start(["--threads", "2"], backend=redis_server)
    r = redis_server.client()
    r.set("a", "va")
    r.hset("h", "f", "v")
    mget = [("MGET", "a", "n", "h")]
    followers = [("GET", "a"), ("GET", "n"), ("GET", "h")] * 3 + [("MGET", "h", "a", "n")] * 3
    first, then, delta = paused_reads(rc, redis_server, mget, followers, proto)
    assert delta == {"get": 1, "mget": 1}, delta
    assert first == direct_replies(redis_server, mget, proto)
    assert then == direct_replies(redis_server, followers, proto)
    assert then[2].startswith(b"-WRONGTYPE")


def test_mgets_of_the_same_cold_keys_share_one_mget(respcache, redis_server):
    rc = respcache.start(["--threads", "2"], backend=redis_server)
    redis_server.client().mset({"x": "1", "y": "2"})
    first, then, delta = paused_reads(rc, redis_server, [("MGET", "x", "y")], [("MGET", "y", "x", "y")] * 12)
    assert delta == {"get": 0, "mget": 1}, delta
    assert first == [b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"]
    assert then == [b"*3\r\n$1\r\n2\r\n$1\r\n1\r\n$1\r\n2\r\n"] * 12


def test_a_shared_fill_that_fails_fails_the_mgets_waiting_for_it(respcache, redis_server):
    """--request-timeout 300ms while Redis sleeps 1.5 s: the GET in flight fails, and so does every MGET
    that waited for it (an error, never a made-up null); afterwards the keys are read again."""
    rc = respcache.start(["--threads", "2", "--request-timeout", "300ms"], backend=redis_server)
    redis_server.client().mset({"x": "1", "y": "2"})
    first, then, _ = paused_reads(rc, redis_server, [("GET", "x")], [("MGET", "x", "y")] * 4)
    assert first[0].startswith(b"-ERR backend unavailable"), first
    assert all(t.startswith(b"-ERR backend unavailable") for t in then), then
    with rc.raw() as c:
        wait_until(lambda: c.command("MGET", "x", "y") == [b"1", b"2"], scaled(10), "Redis to answer again")
