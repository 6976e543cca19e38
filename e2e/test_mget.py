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


@pytest.mark.parametrize("proto", [2, 3])
def test_mget_partial_hit_fetches_only_the_missing_keys(respcache, redis_server, proto):
    rc = respcache.start([], backend=redis_server)
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
