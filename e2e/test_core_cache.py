"""The core daemon's cache, end to end: hits and misses, TTL expiry, LRU and byte bounds, invalidation.

A hit is proven by the backend's own count of GET calls (INFO commandstats), never by timing. Where a
test needs to know what the cache holds, it deletes the keys directly in Redis: whatever respcache still
returns was served from its cache.
"""

import time

import pytest

from conftest import RespError, scaled, wait_until
from opslib import proxy_info, proxy_int

# Values must differ from what Redis holds after the direct DEL, or the check proves nothing.
SEEDED = b"seeded-"


def seed(redis_server, keys, value=lambda k: SEEDED + k.encode()):
    r = redis_server.client()
    for k in keys:
        r.set(k, value(k))


def delete_directly(redis_server, keys):
    redis_server.client().delete(*keys)


@pytest.mark.parametrize("invalidation", ["tracking", "ttl"])
def test_second_get_is_a_hit(respcache, redis_server, invalidation):
    rc = respcache.start(["--invalidation", invalidation], backend=redis_server)
    redis_server.client().set("hit", "v")
    before = redis_server.get_calls()
    c = rc.client()
    assert c.get("hit") == b"v"
    assert c.get("hit") == b"v"
    assert redis_server.get_calls() - before == 1
    # A hit on another connection too: the cache is the process's, not the connection's.
    assert rc.client().get("hit") == b"v"
    assert redis_server.get_calls() - before == 1


def test_missing_key_is_cached_and_its_creation_invalidates(respcache, redis_server):
    rc = respcache.start([], backend=redis_server)
    before = redis_server.get_calls()
    c = rc.client()
    assert c.get("missing") is None
    assert c.get("missing") is None
    assert redis_server.get_calls() - before == 1  # negative caching: the second null came from the cache
    # Redis tracks the missing key: its creation, directly in Redis, drops the null entry.
    redis_server.client().set("missing", "now here")
    wait_until(lambda: c.get("missing") == b"now here", scaled(5), "the creation to be seen")
    assert c.get("missing") == b"now here"


@pytest.mark.parametrize("args", [["--invalidation", "ttl"], ["--negative-caching", "no"]])
def test_missing_key_is_not_cached_without_tracking_or_when_turned_off(respcache, redis_server, args):
    rc = respcache.start(args, backend=redis_server)
    before = redis_server.get_calls()
    c = rc.client()
    assert c.get("missing") is None
    assert c.get("missing") is None
    assert redis_server.get_calls() - before == 2
    # ... so a key created directly in Redis is seen at once, whatever the invalidation mode.
    redis_server.client().set("missing", "now here")
    assert c.get("missing") == b"now here"


def test_errors_are_not_cached(proxy, redis_server):
    redis_server.client().rpush("alist", "x")
    before = redis_server.get_calls()
    with proxy.raw() as c:
        for _ in range(2):
            reply = c.command("GET", "alist")
            assert isinstance(reply, RespError) and reply.message.startswith("WRONGTYPE"), reply
    assert redis_server.get_calls() - before == 2


def test_databases_are_separate(proxy, redis_server):
    direct = redis_server.client()
    direct.set("dbkey", "in-db-0")
    redis_server.client(db=3).set("dbkey", "in-db-3")
    with proxy.raw() as c:
        assert c.command("GET", "dbkey") == b"in-db-0"
        assert c.command("SELECT", "3") == b"OK"
        assert c.command("GET", "dbkey") == b"in-db-3"
        assert c.command("GET", "dbkey") == b"in-db-3"
        assert c.command("SELECT", "0") == b"OK"
        assert c.command("GET", "dbkey") == b"in-db-0"


@pytest.mark.parametrize("invalidation", ["tracking", "ttl"])
def test_writes_through_the_proxy_are_read_back(respcache, redis_server, invalidation):
    """Read your writes: once a write is acknowledged, no client reads the older value from the cache."""
    rc = respcache.start(["--invalidation", invalidation], backend=redis_server)
    redis_server.client().set("ryw", "old")
    writer, reader = rc.client(), rc.client()
    assert reader.get("ryw") == b"old"  # cached
    assert reader.get("ryw") == b"old"
    assert writer.set("ryw", "new") is True
    assert reader.get("ryw") == b"new"
    assert writer.append("ryw", "er") == 5
    assert reader.get("ryw") == b"newer"
    assert writer.delete("ryw") == 1
    assert reader.get("ryw") is None
    assert writer.set("ryw", "again") is True
    assert reader.get("ryw") == b"again"
    assert writer.flushall() is True
    assert reader.get("ryw") is None


def test_pipelined_write_then_get_reads_the_write(respcache, redis_server):
    rc = respcache.start(["--invalidation", "ttl"], backend=redis_server)
    redis_server.client().set("pw", "old")
    with rc.raw() as c:
        assert c.command("GET", "pw") == b"old"  # cached
        c.send(b"".join([b"*3\r\n$3\r\nSET\r\n$2\r\npw\r\n$3\r\nnew\r\n", b"*2\r\n$3\r\nGET\r\n$2\r\npw\r\n"]))
        assert c.read_replies(2) == [b"OK", b"new"]


def test_tracking_invalidates_writes_that_bypass_the_proxy(proxy, redis_server):
    """Default mode (client tracking): a write made directly in Redis reaches the cache, although the
    TTL (300 s by default) is far away."""
    direct = redis_server.client()
    direct.set("tracked", "v1")
    c = proxy.client()
    assert c.get("tracked") == b"v1"
    before = redis_server.get_calls()
    assert c.get("tracked") == b"v1"
    assert redis_server.get_calls() == before  # cached
    direct.set("tracked", "v2")
    wait_until(lambda: c.get("tracked") == b"v2", scaled(10), "the direct write to be seen through the proxy")


def test_entry_expires_after_the_global_ttl(respcache, redis_server):
    """--ttl 300ms, TTL-only invalidation: a value changed directly in Redis is served stale until the
    TTL, then fresh; reads do not extend an entry's life."""
    ttl = 0.3
    rc = respcache.start(["--ttl", "300ms", "--invalidation", "ttl"], backend=redis_server)
    direct = redis_server.client()
    c = rc.client()
    for attempt in range(5):
        key = f"ttl:{attempt}"
        direct.set(key, "old")
        t0 = time.monotonic()  # the entry is inserted after this, so it lives until at least t0 + ttl
        assert c.get(key) == b"old"
        direct.set(key, "new")
        stale = c.get(key)
        if time.monotonic() < t0 + ttl:
            assert stale == b"old", "a GET within the TTL must be served from the cache"
            break
        # The machine was too slow to observe the stale read within the TTL: try again with a new key.
    else:
        pytest.skip("could not GET twice within 300 ms on this machine")
    # Keep reading (which must not extend the entry's life) until the fresh value shows.
    wait_until(lambda: c.get(key) == b"new", scaled(10), "the entry to expire after --ttl", interval=0.01)


def test_entry_never_outlives_the_keys_own_ttl(respcache, redis_server):
    rc = respcache.start(["--invalidation", "ttl"], backend=redis_server)  # global TTL: 300 s
    redis_server.client().set("short", "lived", px=400)
    c = rc.client()
    assert c.get("short") == b"lived"
    wait_until(lambda: c.get("short") is None, scaled(10), "the key's own expiry to reach the cache")


def test_lru_eviction_at_capacity(respcache, redis_server):
    """--capacity 4 (one shard, so an exact LRU): after k1..k4, k1 again and k5, k2 is the one evicted."""
    rc = respcache.start(["--capacity", "4", "--invalidation", "ttl"], backend=redis_server)
    keys = ["k1", "k2", "k3", "k4", "k5"]
    seed(redis_server, keys)
    c = rc.client()
    for k in ["k1", "k2", "k3", "k4", "k1", "k5"]:
        assert c.get(k) == SEEDED + k.encode()
    delete_directly(redis_server, keys)
    before = redis_server.get_calls()
    for k in ["k1", "k3", "k4", "k5"]:
        assert c.get(k) == SEEDED + k.encode(), f"{k} should still be cached"
    assert c.get("k2") is None, "k2 was the least recently used and should have been evicted"
    assert redis_server.get_calls() - before == 1


def test_max_memory_bound_evicts_large_values(respcache, redis_server):
    """--max-memory 10000: three entries of ~3 kB fit, a fourth evicts the least recently used."""
    rc = respcache.start(["--max-memory", "10000", "--capacity", "100", "--invalidation", "ttl"],
                         backend=redis_server)
    keys = ["m1", "m2", "m3", "m4"]
    seed(redis_server, keys, value=lambda k: k.encode() * 1500)  # 3000 bytes each
    c = rc.client()
    for k in keys:
        assert c.get(k) == k.encode() * 1500
    delete_directly(redis_server, keys)
    before = redis_server.get_calls()
    for k in ["m2", "m3", "m4"]:
        assert c.get(k) == k.encode() * 1500, f"{k} should still be cached"
    assert c.get("m1") is None, "m1 should have been evicted by the byte bound"
    assert redis_server.get_calls() - before == 1


def test_max_memory_value_larger_than_the_bound_is_served_not_cached(respcache, redis_server):
    rc = respcache.start(["--max-memory", "10000", "--capacity", "100", "--invalidation", "ttl"],
                         backend=redis_server)
    seed(redis_server, ["small"])
    redis_server.client().set("huge", b"h" * 20000)
    c = rc.client()
    assert c.get("small") == SEEDED + b"small"
    before = redis_server.get_calls()
    assert c.get("huge") == b"h" * 20000
    assert c.get("huge") == b"h" * 20000
    assert redis_server.get_calls() - before == 2  # not cached
    delete_directly(redis_server, ["small"])
    assert c.get("small") == SEEDED + b"small"  # and it evicted nothing


def test_values_over_max_value_size_are_not_cached(respcache, redis_server):
    rc = respcache.start(["--max-value-size", "1kb", "--invalidation", "ttl"], backend=redis_server)
    direct = redis_server.client()
    direct.set("big", b"b" * 1025)
    direct.set("fits", b"f" * 1024)
    c = rc.client()
    before = redis_server.get_calls()
    for _ in range(2):
        assert c.get("big") == b"b" * 1025
        assert c.get("fits") == b"f" * 1024
    assert redis_server.get_calls() - before == 3  # big twice, fits once


def test_capacity_zero_disables_the_cache(respcache, redis_server):
    rc = respcache.start(["--capacity", "0"], backend=redis_server)
    redis_server.client().set("nocache", "v")
    c = rc.client()
    before = redis_server.get_calls()
    for _ in range(3):
        assert c.get("nocache") == b"v"
    assert redis_server.get_calls() - before == 3


@pytest.mark.parametrize("key_exists", [True, False])
def test_concurrent_misses_of_one_key_share_one_request(respcache, redis_server, key_exists):
    """While Redis is paused, 24 clients spread over respcache's io threads ask for one cold key: one GET
    reaches Redis, and every client gets its value (or its null)."""
    import threading

    rc = respcache.start(["--threads", "2"], backend=redis_server)
    r = redis_server.client()
    if key_exists:
        r.set("cold", "value")
    clients = [rc.raw() for _ in range(24)]
    for c in clients:
        assert c.command("PING") == b"PONG"  # connected and served before the pause
    before = redis_server.get_calls()
    replies = [b"unset"] * len(clients)
    r.execute_command("CLIENT", "PAUSE", "1000", "ALL")

    def ask(i):
        replies[i] = clients[i].command("GET", "cold")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(scaled(10))
    for c in clients:
        c.close()
    assert replies == [b"value" if key_exists else None] * len(clients)
    assert redis_server.get_calls() - before == 1
    # Every other client waited for that one request (or, had it come after the reply, hit the entry).
    info = proxy_info(rc.port)
    assert int(info["cache_shared_misses"]) + int(info["cache_hits"]) == len(clients) - 1, info
    assert int(info["cache_shared_misses"]) > 0, info


@pytest.mark.parametrize("invalidation", ["tracking", "ttl"])
def test_refresh_ahead_keeps_a_hot_key_from_ever_missing(respcache, redis_server, invalidation):
    """--ttl 1s --refresh-ahead 0.5: a key read every 50 ms for 3 s (three TTLs) misses once, at first;
    each hit in the second half of its entry's life reads it again in the background."""
    rc = respcache.start(["--ttl", "1s", "--refresh-ahead", "0.5", "--invalidation", invalidation],
                         backend=redis_server)
    r = redis_server.client()
    r.set("hot", "v0")
    c = rc.client()
    before = redis_server.get_calls()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert c.get("hot") == b"v0"
        time.sleep(0.05)
    info = proxy_info(rc.port)
    assert int(info["cache_misses"]) == 1, info
    refreshes = int(info["cache_refreshes"])
    assert refreshes >= 2, info  # at least once per TTL after the first
    assert redis_server.get_calls() - before == 1 + refreshes


def test_refresh_ahead_brings_a_direct_write_without_tracking(respcache, redis_server):
    """With --invalidation ttl a direct write is seen at the latest when a refresh brings it: never later
    than one TTL, and without a miss."""
    rc = respcache.start(["--ttl", "1s", "--refresh-ahead", "0.5", "--invalidation", "ttl"], backend=redis_server)
    r = redis_server.client()
    r.set("k", "old")
    c = rc.client()
    assert c.get("k") == b"old"
    r.set("k", "new")
    start = time.monotonic()
    while c.get("k") != b"new":
        assert time.monotonic() - start < scaled(1.5), "the direct write was not brought by a refresh"
        time.sleep(0.05)
    assert proxy_int(rc.port, "cache_misses") == 1


def test_tinylfu_keeps_often_read_keys_when_a_rarely_read_one_comes(respcache, redis_server):
    """--capacity 2 on one shard: a and b read often fill it; c, read once, is not admitted (INFO counts
    it) and a and b stay hits; c read often enough is admitted in the place of the least recently used."""
    seed(redis_server, ["a", "b", "c"])
    rc = respcache.start(["--capacity", "2", "--cache-shards", "1", "--eviction-policy", "tinylfu"],
                         backend=redis_server)
    with rc.raw() as c:
        for _ in range(3):
            for k in ("a", "b"):
                assert c.command("GET", k) == SEEDED + k.encode()
        assert c.command("GET", "c") == b"seeded-c"
        assert proxy_int(rc.port, "cache_fills_not_admitted") == 1
        calls = redis_server.get_calls()
        assert c.command("GET", "a") == b"seeded-a"
        assert c.command("GET", "b") == b"seeded-b"
        assert redis_server.get_calls() == calls
        for _ in range(6):
            assert c.command("GET", "c") == b"seeded-c"
        calls = redis_server.get_calls()
        assert c.command("GET", "c") == b"seeded-c"
        assert redis_server.get_calls() == calls
