"""A fill of a key Redis already tracks for respcache skips CLIENT CACHING yes, and stays coherent.

Redis keeps a name in its tracking table until it announces the name's change, however respcache's entry
of it ended. So after an entry expires by --ttl (or is evicted), its next fill is the read and PTTL alone.
Proven with Redis's own INFO commandstats (`client|caching` calls) and by the invalidation Redis still
sends for a direct write after such a fill.
"""

import time

from conftest import scaled, wait_until
from opslib import proxy_int


def caching_calls(redis_server) -> int:
    return redis_server.commandstats().get("client|caching", 0)


def test_refill_after_expiry_skips_client_caching_and_is_still_invalidated(respcache, redis_server):
    rc = respcache.start(["--ttl", "300ms"], backend=redis_server)
    direct = redis_server.client()
    direct.set("rt:k", "v1")
    c = rc.client()

    before_caching, before_gets = caching_calls(redis_server), redis_server.get_calls()
    assert c.get("rt:k") == b"v1"  # the first fill asks Redis to track the key
    assert caching_calls(redis_server) - before_caching == 1
    assert proxy_int(rc.port, "fills_pre_tracked") == 0

    # The entry expires; the reaper (or the next lookup) leaves its name behind.
    time.sleep(0.35)
    wait_until(lambda: proxy_int(rc.port, "cached_keys") == 0, scaled(5), "the entry to expire")
    assert proxy_int(rc.port, "cache_tracked_names") == 1
    assert c.get("rt:k") == b"v1"
    assert redis_server.get_calls() - before_gets == 2  # a miss: it reached Redis
    assert caching_calls(redis_server) - before_caching == 1  # without CLIENT CACHING yes
    assert proxy_int(rc.port, "fills_pre_tracked") == 1
    assert c.get("rt:k") == b"v1"
    assert redis_server.get_calls() - before_gets == 2  # and it was cached: a hit

    # Redis still tracks the key: a direct write is announced and drops the entry.
    heard = proxy_int(rc.port, "invalidation_messages")
    direct.set("rt:k", "v2")
    wait_until(lambda: proxy_int(rc.port, "invalidation_messages") > heard, scaled(5), "the write's invalidation")
    assert proxy_int(rc.port, "cache_tracked_names") == 0
    assert c.get("rt:k") == b"v2"
    # The announcement ended Redis's tracking of the key: the next fill asks for it again.
    assert caching_calls(redis_server) - before_caching == 2
    assert proxy_int(rc.port, "fills_pre_tracked") == 1


def test_refill_after_eviction_skips_client_caching(respcache, redis_server):
    rc = respcache.start(["--capacity", "2"], backend=redis_server)
    direct = redis_server.client()
    for k in ("ev:a", "ev:b", "ev:c"):
        direct.set(k, k)
    c = rc.client()
    before = caching_calls(redis_server)
    for k in ("ev:a", "ev:b", "ev:c"):  # capacity 2: ev:a is evicted
        assert c.get(k) == k.encode()
    assert caching_calls(redis_server) - before == 3
    assert proxy_int(rc.port, "cache_evictions") == 1
    gets = redis_server.get_calls()
    assert c.get("ev:a") == b"ev:a"
    assert redis_server.get_calls() - gets == 1
    assert caching_calls(redis_server) - before == 3
    assert proxy_int(rc.port, "fills_pre_tracked") == 1
    heard = proxy_int(rc.port, "invalidation_messages")
    direct.set("ev:a", "changed")
    wait_until(lambda: proxy_int(rc.port, "invalidation_messages") > heard, scaled(5), "the write's invalidation")
    assert c.get("ev:a") == b"changed"


def test_bcast_and_ttl_modes_never_send_client_caching(respcache, redis_server):
    for args in (["--tracking-mode", "bcast"], ["--invalidation", "ttl"]):
        rc = respcache.start(["--ttl", "300ms", *args], backend=redis_server)
        redis_server.client().set("m:k", "v")
        before = caching_calls(redis_server)
        c = rc.client()
        assert c.get("m:k") == b"v"
        time.sleep(0.35)
        assert c.get("m:k") == b"v"
        assert caching_calls(redis_server) == before
        assert proxy_int(rc.port, "cache_tracked_names") == 0
        rc.stop()


def test_a_lost_data_connection_or_a_flush_forgets_the_names(respcache, redis_server):
    """Redis forgets what a connection read when the connection goes, so a name remembered from it must not
    spare the next fill its CLIENT CACHING yes: the loss flushes the cache and the names. A FLUSHALL (Redis
    drops its whole tracking table) forgets them too."""
    from coherence_lib import kill_client, tracking_client_ids

    rc = respcache.start(["--ttl", "300ms"], backend=redis_server)
    direct = redis_server.client()
    direct.set("lost:k", "v1")
    c = rc.client()

    def fill_and_expire():
        assert c.get("lost:k") == direct.get("lost:k")
        time.sleep(0.35)
        wait_until(lambda: proxy_int(rc.port, "cache_tracked_names") == 1, scaled(5), "the name to be remembered")

    fill_and_expire()
    losses = proxy_int(rc.port, "invalidation_channel_losses")
    ids = tracking_client_ids(redis_server)
    assert ids  # the connection that filled the entry tracks
    for i in ids:
        kill_client(redis_server, i)
    wait_until(lambda: proxy_int(rc.port, "invalidation_channel_losses") > losses, scaled(10), "the loss to be seen")
    assert proxy_int(rc.port, "cache_tracked_names") == 0
    before = caching_calls(redis_server)
    pre = proxy_int(rc.port, "fills_pre_tracked")
    assert c.get("lost:k") == b"v1"
    assert caching_calls(redis_server) - before == 1  # tracked anew, on the new connection
    assert proxy_int(rc.port, "fills_pre_tracked") == pre
    # And that new tracking works: a direct write is announced.
    heard = proxy_int(rc.port, "invalidation_messages")
    direct.set("lost:k", "v2")
    wait_until(lambda: proxy_int(rc.port, "invalidation_messages") > heard, scaled(5), "the write's invalidation")
    assert c.get("lost:k") == b"v2"

    time.sleep(0.35)
    wait_until(lambda: proxy_int(rc.port, "cache_tracked_names") == 1, scaled(5), "the name to be remembered")
    direct.flushall()
    wait_until(lambda: proxy_int(rc.port, "cache_tracked_names") == 0, scaled(5), "the flush to forget the name")
    direct.set("lost:k", "v3")
    before = caching_calls(redis_server)
    assert c.get("lost:k") == b"v3"
    assert caching_calls(redis_server) - before == 1
