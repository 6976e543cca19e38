"""Coherence of the cache with Redis itself (issue 4): Redis client tracking invalidates what writers that
bypass the proxy change; a lost invalidation channel flushes the cache; an entry never outlives its key's
own TTL; --invalidation ttl is the plain TTL cache; read-your-writes through the proxy holds under
concurrency.

That a value is cached is proven by Redis's own count of GET calls (INFO commandstats), never by timing.
"Soon after" is a bounded poll, never a fixed sleep. Helpers: coherence_lib.py.
"""

import os
import signal
import threading
import time

import pytest

from fake_redis import FakeRedis5

from coherence_lib import (assert_cached, error_prefix, find_stale_reads, invalidation_client_ids, kill_client,
                           poll_proxy, proxy_counter, proxy_info, run_history, summarize, tracking_client_ids,
                           wait_channel_live)
from conftest import encode_command, scaled, wait_until

# How long a change made directly in Redis may take to reach the cache (a bound, not a speed claim).
SOON = scaled(2.0)


def direct_get(redis_server, key, db=0):
    """GET straight from Redis, parsed exactly as a proxy reply is (RespError for an error)."""
    with redis_server.raw() as c:
        if db:
            assert c.command("SELECT", str(db)) == b"OK"
        return c.command("GET", key)


@pytest.fixture
def proxy(proxy_any_tracking):
    return proxy_any_tracking


# ---------------------------------------------------------------------------------------------------
# 1. Writes that bypass the proxy.

def _hset_over_string(r):
    p = r.pipeline(transaction=True)
    p.delete("k")
    p.hset("k", "field", "value")
    p.execute()


def _rename_onto(r):
    r.set("src", "new")
    r.rename("src", "k")


def _copy_replace(r):
    r.set("src", "new")
    r.copy("src", "k", replace=True)


def _multi_exec(r):
    p = r.pipeline(transaction=True)
    p.set("k", "new")
    p.execute()


DIRECT_WRITES = {
    # name: (the change, made directly on Redis, to k which holds "old"; what GET k returns afterwards)
    "set": (lambda r: r.set("k", "new"), b"new"),
    "del": (lambda r: r.delete("k"), None),
    "unlink": (lambda r: r.unlink("k"), None),
    "getdel": (lambda r: r.getdel("k"), None),
    "expire_0": (lambda r: r.expire("k", 0), None),
    "pexpire_short": (lambda r: r.pexpire("k", 30), None),
    "rename_away": (lambda r: r.rename("k", "k2"), None),
    "rename_onto": (_rename_onto, b"new"),
    "copy_replace": (_copy_replace, b"new"),
    "move": (lambda r: r.move("k", 1), None),
    "hset_over_string": (_hset_over_string, error_prefix("WRONGTYPE")),
    "mset": (lambda r: r.mset({"other": "x", "k": "new"}), b"new"),
    "append": (lambda r: r.append("k", "+more"), b"old+more"),
    "setrange": (lambda r: r.setrange("k", 0, "n"), b"nld"),
    "lua": (lambda r: r.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "new"), b"new"),
    "multi_exec": (_multi_exec, b"new"),
    "flushdb": (lambda r: r.flushdb(), None),
}


@pytest.mark.parametrize("change", list(DIRECT_WRITES))
def test_direct_write_is_seen_soon(proxy, redis_server, change):
    write, expected = DIRECT_WRITES[change]
    direct = redis_server.client()
    direct.set("k", "old")
    with proxy.raw() as c:
        assert_cached(c, redis_server, "k", b"old")
        write(direct)
        if change == "pexpire_short":
            wait_until(lambda: direct_get(redis_server, "k") is None, SOON, "Redis to expire k")
        now = direct_get(redis_server, "k")
        assert expected(now) if callable(expected) else now == expected, f"Redis itself says {now!r}"
        took = poll_proxy(c, "k", expected, SOON, f"the proxy to serve what Redis holds after {change}")
        print(f"{change}: new value served {took * 1e3:.1f} ms after the direct write")
        # It stays so, and a value is cached again (and tracked again: a second change is seen too).
        if isinstance(now, bytes):
            assert_cached(c, redis_server, "k", now)
            direct.set("k", "newer")
            poll_proxy(c, "k", b"newer", SOON, "a second direct write to be seen")
        else:
            got = c.command("GET", "k")
            assert expected(got) if callable(expected) else got == expected, got


def test_direct_write_in_another_database_is_seen(proxy, redis_server):
    """Invalidation messages carry no database: a key cached in db 3 is invalidated by a write there."""
    direct3 = redis_server.client(db=3)
    direct3.set("k", "old3")
    redis_server.client().set("k", "old0")
    with proxy.raw() as c0, proxy.raw() as c3:
        assert c3.command("SELECT", "3") == b"OK"
        assert_cached(c3, redis_server, "k", b"old3")
        assert_cached(c0, redis_server, "k", b"old0")
        direct3.set("k", "new3")
        poll_proxy(c3, "k", b"new3", SOON, "the direct write in db 3 to be seen")
        assert c0.command("GET", "k") == b"old0"  # db 0 is another key


def test_many_keys_invalidated_at_once(proxy, redis_server):
    """One write touching many cached keys (MSET, DEL k1 k2 ...) invalidates every one of them."""
    direct = redis_server.client()
    keys = [f"many:{i}" for i in range(50)]
    direct.mset({k: "old" for k in keys})
    with proxy.raw() as c:
        for k in keys:
            assert c.command("GET", k) == b"old"
        before = redis_server.get_calls()
        for k in keys:
            assert c.command("GET", k) == b"old"
        assert redis_server.get_calls() == before, "not all keys were cached"
        direct.mset({k: "new" for k in keys})
        for k in keys:
            poll_proxy(c, k, b"new", SOON, f"{k} to be invalidated by the direct MSET")
        direct.delete(*keys)
        for k in keys:
            poll_proxy(c, k, None, SOON, f"{k} to be invalidated by the direct DEL")


# ---------------------------------------------------------------------------------------------------
# 2. Two proxies in front of one Redis.


def test_two_proxies_stay_coherent(respcache, redis_server):
    a = respcache.start(backend=redis_server)
    b = respcache.start(backend=redis_server)
    redis_server.client().set("shared", "v0")
    took = []
    with a.raw() as ca, b.raw() as cb:
        for i in range(1, 11):
            old, new = f"v{i - 1}".encode(), f"v{i}".encode()
            writer, reader = (ca, cb) if i % 2 else (cb, ca)
            assert_cached(reader, redis_server, "shared", old)
            assert_cached(writer, redis_server, "shared", old)
            assert writer.command("SET", "shared", new) == b"OK"
            assert writer.command("GET", "shared") == new  # read your writes, at once
            took.append(poll_proxy(reader, "shared", new, SOON, f"round {i}: the other proxy to see {new!r}"))
        assert ca.command("DEL", "shared") == 1
        poll_proxy(cb, "shared", None, SOON, "B to see A's DEL")
    print(f"write through one proxy seen through the other after at most {max(took) * 1e3:.1f} ms")


# ---------------------------------------------------------------------------------------------------
# 3. The invalidation channel lost.


def test_killed_invalidation_connection_flushes_the_cache(proxy, redis_server):
    direct = redis_server.client()
    keys = [f"kill:{i}" for i in range(5)]
    direct.mset({k: "before" for k in keys})
    with proxy.raw() as c:
        for k in keys:
            assert_cached(c, redis_server, k, b"before")
        info = proxy_info(proxy)
        losses = int(info["invalidation_channel_losses"])
        assert info["invalidation_channel"] == "live"
        assert int(info["cached_keys"]) >= len(keys)
        ids = invalidation_client_ids(redis_server)
        assert len(ids) == 1, f"expected one {ids!r} connection named respcache-invalidation"
        kill_client(redis_server, ids[0])
        # Written while the channel is gone: Redis has nowhere to send the invalidation.
        direct.set(keys[0], "during")

        # As soon as the loss is visible, the cache is empty: nothing from before it is served.
        def flushed():
            i = proxy_info(proxy)
            return int(i["invalidation_channel_losses"]) == losses + 1 and int(i["cached_keys"]) == 0

        wait_until(flushed, SOON, "the loss to be counted and the cache flushed")
        before = redis_server.get_calls()
        assert c.command("GET", keys[0]) == b"during"
        for k in keys[1:]:
            assert c.command("GET", k) == b"before"
        assert redis_server.get_calls() - before == len(keys), "a key cached before the loss was served from the cache"

        # The channel comes back (a new connection), caching resumes, and so does coherence.
        wait_channel_live(proxy)
        new_ids = invalidation_client_ids(redis_server)
        assert len(new_ids) == 1 and new_ids != ids, new_ids
        assert_cached(c, redis_server, keys[1], b"before")
        direct.set(keys[1], "after")
        poll_proxy(c, keys[1], b"after", SOON, "a direct write to be seen once the channel is back")
        assert proxy_counter(proxy, "invalidation_channel_losses") == losses + 1


@pytest.mark.timeout(40)
def test_unanswered_ping_on_the_channel_flushes_the_cache(respcache, redis_server):
    """Redis stops answering (SIGSTOP): the channel's PING goes unanswered, the channel is declared lost
    and the cache flushed; once Redis is back, the channel is live again and the key is read from Redis."""
    rc = respcache.start(["--request-timeout", "300ms"], backend=redis_server)
    redis_server.client().set("frozen", "v")
    with rc.raw() as c:
        assert_cached(c, redis_server, "frozen", b"v")
        losses = proxy_counter(rc, "invalidation_channel_losses")
        os.kill(redis_server.pid, signal.SIGSTOP)
        try:
            # INFO is forwarded to Redis too: while it is stopped, the proxy answers with its own section
            # after the request timeout.
            wait_until(lambda: proxy_info(rc)["invalidation_channel"] != "live", scaled(10),
                       "the channel to be declared lost", interval=0.1)
        finally:
            os.kill(redis_server.pid, signal.SIGCONT)
        info = proxy_info(rc)
        assert int(info["invalidation_channel_losses"]) == losses + 1
        wait_channel_live(rc, scaled(10))
        before = redis_server.get_calls()
        assert c.command("GET", "frozen") == b"v"
        assert redis_server.get_calls() == before + 1, "the entry from before the loss was served"
        assert_cached(c, redis_server, "frozen", b"v")


def test_killed_data_connection_does_not_leave_untracked_entries(respcache, redis_server):
    """--tracking-mode optin: Redis tracked the key for the data connection that read it; that connection
    lost, Redis forgets, so the entry must go (the bcast side: test_tracking_mode.py)."""
    proxy = respcache.start(["--tracking-mode", "optin"], backend=redis_server)
    direct = redis_server.client()
    direct.set("orphan", "old")
    with proxy.raw() as c:
        assert_cached(c, redis_server, "orphan", b"old")
        ids = tracking_client_ids(redis_server)
        assert ids, "no connection with client tracking on"
        for i in ids:
            kill_client(redis_server, i)
        wait_until(lambda: not set(ids) & set(tracking_client_ids(redis_server)), SOON, "the kills")
        direct.set("orphan", "new")
        poll_proxy(c, "orphan", b"new", SOON, "the direct write to be seen after the data connection was lost")


def test_entry_filled_on_a_dedicated_connection_stays_coherent(proxy, redis_server):
    """A client holding a dedicated connection (WATCH) reads Redis itself: its GETs are neither served from
    nor inserted into the cache (an entry filled through a connection that leaves with the client would
    never be invalidated)."""
    direct = redis_server.client()
    direct.set("watched", "old")
    with proxy.raw() as w:
        assert w.command("WATCH", "something") == b"OK"
        for _ in range(2):
            before = redis_server.get_calls()
            assert w.command("GET", "watched") == b"old"
            assert redis_server.get_calls() == before + 1, "a GET under WATCH did not reach Redis"
    # The client that filled the entry is gone, and its dedicated connection with it.
    with proxy.raw() as c:
        assert c.command("GET", "watched") == b"old"
        direct.set("watched", "new")
        poll_proxy(c, "watched", b"new", SOON, "the direct write to be seen")


# ---------------------------------------------------------------------------------------------------
# 4. FLUSHALL / FLUSHDB directly on Redis.


@pytest.mark.parametrize("flush", [["FLUSHALL"], ["FLUSHALL", "ASYNC"], ["FLUSHDB"], ["FLUSHDB", "SYNC"]])
def test_flush_on_redis_empties_the_cache(proxy, redis_server, flush):
    direct = redis_server.client()
    keys = [f"fl:{i}" for i in range(10)]
    direct.mset({k: "v" for k in keys})
    with proxy.raw() as c:
        for k in keys:
            assert_cached(c, redis_server, k, b"v")
        assert int(proxy_info(proxy)["cached_keys"]) >= len(keys)
        with redis_server.raw() as r:
            assert r.command(*flush) == b"OK"
        wait_until(lambda: int(proxy_info(proxy)["cached_keys"]) == 0, SOON, f"{' '.join(flush)} to empty the cache")
        before = redis_server.get_calls()
        for k in keys:
            assert c.command("GET", k) is None
        assert redis_server.get_calls() - before == len(keys)


# ---------------------------------------------------------------------------------------------------
# 5. A key's own TTL in Redis.


def _watch_expiry(c, redis_server, key, timeout):
    """Alternates a direct GET and a proxy GET until Redis says the key is gone; every proxy GET started
    after that must return nil at once. Returns how many proxy GETs were hits before the expiry."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"{key} did not expire in Redis within {timeout} s"
        gone = direct_get(redis_server, key) is None
        got = c.command("GET", key)
        if gone:
            assert got is None, f"the proxy served {got!r} after Redis said {key} had expired"
            break
        assert got in (b"lived", None), got  # nil a bit early is allowed: the cap is conservative
        time.sleep(0.001)
    for _ in range(3):
        assert c.command("GET", key) is None


@pytest.mark.parametrize("mode", [["--invalidation", "tracking"], ["--invalidation", "ttl", "--ttl", "60s"]],
                         ids=["tracking", "ttl-60s"])
def test_entry_does_not_outlive_the_keys_pexpire(respcache, redis_server, mode):
    rc = respcache.start(mode, backend=redis_server)
    with rc.raw() as c:
        for key, setter in (("px", lambda r: r.set("px", "lived", px=400)),
                            ("ex", lambda r: (r.set("ex", "lived"), r.expire("ex", 1)))):
            setter(redis_server.client())
            assert_cached(c, redis_server, key, b"lived")
            _watch_expiry(c, redis_server, key, scaled(5))


def test_expire_set_directly_after_caching_is_honoured(proxy, redis_server):
    """Tracking mode: PEXPIRE on a cached key (no TTL when cached) is a change; the entry is refetched with
    its new TTL and does not outlive the key."""
    direct = redis_server.client()
    direct.set("later", "lived")
    with proxy.raw() as c:
        assert_cached(c, redis_server, "later", b"lived")
        direct.pexpire("later", 500)
        _watch_expiry(c, redis_server, "later", scaled(5))


# ---------------------------------------------------------------------------------------------------
# 6. --invalidation ttl: the documented staleness.


def test_ttl_mode_serves_a_direct_write_only_after_the_ttl(respcache, redis_server):
    ttl = 1.0
    rc = respcache.start(["--invalidation", "ttl", "--ttl", "1s"], backend=redis_server)
    assert proxy_info(rc)["invalidation_channel"] == "off"
    assert not invalidation_client_ids(redis_server)
    direct = redis_server.client()
    with rc.raw() as c:
        for attempt in range(3):
            key = f"stale:{attempt}"
            direct.set(key, "v1")
            t0 = time.monotonic()  # the entry is inserted after this: it lives until at least t0 + ttl
            assert_cached(c, redis_server, key, b"v1")
            direct.set(key, "v2")
            stale = c.command("GET", key)
            if time.monotonic() < t0 + ttl:
                assert stale == b"v1", "within --ttl, a direct write is not seen (documented)"
                break
        else:
            pytest.skip("could not GET within the 1 s TTL on this machine")
        poll_proxy(c, key, b"v2", scaled(5), "the entry to expire after --ttl")
        assert c.command("GET", key) == b"v2"
        # Writes through the proxy still invalidate at once.
        assert c.command("SET", key, "v3") == b"OK"
        assert c.command("GET", key) == b"v3"


# ---------------------------------------------------------------------------------------------------
# 7. Stress: writers directly on Redis, readers through the proxy.

STRESS_SECONDS = 5.0
STRESS_KEYS = [f"stress:{i}" for i in range(4)]
# A stale read this long after the newer write's ack means an invalidation was lost or stuck, not merely
# late: a lost one would leave the old value until --ttl (300 s). Observed maxima: 7 to 51 ms.
STALE_WINDOW_BOUND = scaled(0.250)


def _stress(respcache, redis_server, *extra_args):
    rc = respcache.start(extra_args, backend=redis_server)
    hits = proxy_counter(rc, "cache_hits")
    h = run_history(redis_server, read_port=rc.port, write_port=redis_server.port, keys=STRESS_KEYS,
                    writers=3, readers=4, duration=STRESS_SECONDS)
    assert not h.errors, h.errors
    hits = proxy_counter(rc, "cache_hits") - hits
    writes = sum(len(w) - 1 for w in h.writes.values())
    violations = find_stale_reads(h)
    print(f"stress {' '.join(extra_args) or '(defaults)'}: {writes} direct writes, {len(h.reads)} proxy reads, "
          f"{hits} cache hits; {summarize(violations)}")
    assert writes > 0 and h.reads
    assert hits > 0, "no read was a cache hit: the test did not exercise the cache"
    return rc, violations


@pytest.mark.timeout(40)
@pytest.mark.parametrize("mode", ["optin", "bcast"])
def test_stress_strict_no_read_older_than_an_acknowledged_direct_write(respcache, redis_server, mode):
    """Issue 4, must-have 6, exactly as stated, with --consistency strict: no reader ever saw a value older
    than one whose direct write had been acknowledged before the read started (no slack at all)."""
    rc, violations = _stress(respcache, redis_server, "--consistency", "strict", "--tracking-mode", mode)
    assert not violations, summarize(violations)
    assert proxy_counter(rc, "read_barriers") > 0


@pytest.mark.timeout(40)
@pytest.mark.parametrize("mode", ["optin", "bcast"])
def test_stress_bounded_stale_reads_only_shortly_after_the_ack(respcache, redis_server, mode):
    """The default, --consistency bounded: a hit does not wait for Redis, so it can miss an invalidation
    that Redis has not yet written to the channel although it already acknowledged the write (it writes
    the writer's reply first, in the same event-loop iteration). Measured on 2 shared cores: about 30 of
    75,000 reads, each begun 0.01 to 0.5 ms after the newer write's ack. What must hold: a superseded value
    stops being served within STALE_WINDOW_BOUND, i.e. no invalidation is lost."""
    _, violations = _stress(respcache, redis_server, "--tracking-mode", mode)
    late = [v for v in violations if v.window > STALE_WINDOW_BOUND]
    assert not late, summarize(late)


def test_strict_hit_waits_for_the_barrier_and_never_reaches_get(respcache, redis_server):
    """--consistency strict: a hit is still served from the cache (Redis counts no GET), but only after
    a PING round trip on the invalidation channel, so while Redis pauses its clients the hit waits."""
    rc = respcache.start(["--consistency", "strict"], backend=redis_server)
    direct = redis_server.client()
    direct.set("k", "v1")
    with rc.raw() as c:
        assert_cached(c, redis_server, "k", b"v1")
        barriers = proxy_counter(rc, "read_barriers")
        pings = redis_server.commandstats().get("ping", 0)
        gets = redis_server.get_calls()
        for _ in range(20):
            assert c.command("GET", "k") == b"v1"
        assert redis_server.get_calls() == gets, "a strict hit reached Redis as a GET"
        assert proxy_counter(rc, "read_barriers") >= barriers + 20
        assert redis_server.commandstats().get("ping", 0) >= pings + 20
        # The barrier is a real round trip: paused, Redis answers it only when the pause ends.
        pause = 0.4
        direct.execute_command("CLIENT", "PAUSE", int(pause * 1000), "ALL")
        t0 = time.monotonic()
        assert c.command("GET", "k") == b"v1"
        waited = time.monotonic() - t0
        assert waited >= pause * 0.5, f"a strict hit was answered {waited * 1e3:.0f} ms into a {pause * 1e3:.0f} ms pause"


def test_strict_hits_fall_back_to_redis_while_the_channel_is_down(respcache, redis_server):
    """--consistency strict with the channel gone (its connection killed): the barrier fails rather than
    hangs, no hit is served from before the loss (GETs are answered by Redis), and caching resumes once
    the channel is back."""
    rc = respcache.start(["--consistency", "strict"], backend=redis_server)
    direct = redis_server.client()
    direct.set("k", "v1")
    with rc.raw() as c:
        assert_cached(c, redis_server, "k", b"v1")
        for cid in invalidation_client_ids(redis_server):
            kill_client(redis_server, cid)
        direct.set("k", "v2")
        assert c.command("GET", "k") == b"v2"
        wait_channel_live(rc)
        assert_cached(c, redis_server, "k", b"v2")


# ---------------------------------------------------------------------------------------------------
# 8. Read your writes through the proxy, under concurrency (DESIGN.md 3.1): strict.


@pytest.mark.timeout(40)
@pytest.mark.parametrize("invalidation", ["tracking", "ttl"])
def test_read_your_writes_through_the_proxy_under_concurrency(respcache, redis_server, invalidation):
    rc = respcache.start(["--invalidation", invalidation], backend=redis_server)
    hits = proxy_counter(rc, "cache_hits")
    h = run_history(redis_server, read_port=rc.port, write_port=rc.port, keys=STRESS_KEYS, writers=2,
                    readers=4, duration=3.0)
    assert not h.errors, h.errors
    hits = proxy_counter(rc, "cache_hits") - hits
    violations = find_stale_reads(h)
    print(f"read-your-writes ({invalidation}): {sum(len(w) - 1 for w in h.writes.values())} writes, "
          f"{len(h.reads)} reads, {hits} hits; {summarize(violations)}")
    assert hits > 0, "no read was a cache hit: the test did not exercise the cache"
    assert not violations, summarize(violations)


@pytest.mark.timeout(40)
@pytest.mark.parametrize("invalidation", ["tracking", "ttl"])
def test_pipelined_set_then_get_reads_the_write_while_others_fill(respcache, redis_server, invalidation):
    """`SET k vN; GET k` in one write on one connection returns vN, every time, while other connections keep
    reading k (so a fill of the older value is racing the write)."""

    rc = respcache.start(["--invalidation", invalidation], backend=redis_server)
    redis_server.client().set("pipe", "v0")
    stop = threading.Event()
    errors = []

    def reader():
        try:
            with rc.raw() as r:
                while not stop.is_set():
                    got = r.command("GET", "pipe")
                    if not (isinstance(got, bytes) and got.startswith(b"v")):
                        errors.append(got)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    bad = []
    try:
        with rc.raw() as c:
            assert_cached(c, redis_server, "pipe", c.command("GET", "pipe"))
            for i in range(1, 401):
                v = f"v{i}".encode()
                c.send(encode_command("SET", "pipe", v) + encode_command("GET", "pipe") +
                       encode_command("GET", "pipe"))
                replies = c.read_replies(3)
                if replies != [b"OK", v, v]:
                    bad.append((i, replies))
    finally:
        stop.set()
        for t in threads:
            t.join(scaled(10))
    assert not errors, errors[:5]
    assert not bad, bad[:5]


# ---------------------------------------------------------------------------------------------------
# 9. A Redis without client tracking.


@pytest.fixture
def fake_redis5():
    """A stand-in for Redis 5 (no client tracking): e2e/fake_redis.py."""
    fake = FakeRedis5()
    yield fake
    fake.stop()


def test_redis_without_tracking_falls_back_to_ttl(respcache, fake_redis5):
    fake = fake_redis5
    rc = respcache.start(["--ttl", "1s"], backend=fake.port)
    rc.wait_for_log("falling back to TTL-only")
    rc.wait_for_log("backend ready")
    wait_until(lambda: proxy_info(rc)["invalidation_channel"] == "unsupported", SOON, "invalidation_channel:unsupported")
    fake.set_direct(b"old5", b"v1")
    with rc.raw() as c:
        assert c.command("GET", "old5") == b"v1"
        before = fake.get_calls
        assert c.command("GET", "old5") == b"v1"
        assert fake.get_calls == before, "not cached: the TTL-only mode must still cache"
        # Nothing was asked of tracking, which this Redis does not have.
        asked = [a for a in fake.commands if a[0].lower() == b"client" and len(a) > 1 and
                 a[1].lower() in (b"tracking", b"caching")]
        assert not asked, asked
        # A write behind the proxy is served stale until the TTL, as documented...
        fake.set_direct(b"old5", b"v2")
        assert c.command("GET", "old5") == b"v1"
        poll_proxy(c, "old5", b"v2", scaled(3), "the TTL to expire the entry")
        # ...while writes through the proxy are seen at once.
        assert c.command("SET", "old5", "v3") == b"OK"
        assert c.command("GET", "old5") == b"v3"
    assert rc.log.count("falling back to TTL-only") == 1, "the warning is logged once"


def test_strict_against_redis_without_tracking_caches_nothing(respcache, fake_redis5):
    """--consistency strict cannot be kept without client tracking: rather than serve TTL-only hits,
    respcache says so once and sends every GET to Redis."""
    fake = fake_redis5
    rc = respcache.start(["--consistency", "strict"], backend=fake.port)
    rc.wait_for_log("--consistency strict cannot be kept")
    rc.wait_for_log("backend ready")
    fake.set_direct(b"k5", b"v1")
    with rc.raw() as c:
        before = fake.get_calls
        for _ in range(3):
            assert c.command("GET", "k5") == b"v1"
        assert fake.get_calls == before + 3, "a GET was served from the cache"
        fake.set_direct(b"k5", b"v2")
        assert c.command("GET", "k5") == b"v2"
    assert proxy_counter(rc, "cache_hits") == 0
    assert rc.log.count("--consistency strict cannot be kept") == 1


def test_strict_client_killed_while_waiting_for_a_barrier_is_closed_at_once(respcache, redis_server):
    """A client waiting for a read barrier (Redis paused) that is killed meanwhile is closed without
    waiting for Redis, and nothing it had sent after the GET is run."""
    rc = respcache.start(["--consistency", "strict"], backend=redis_server)
    direct = redis_server.client()
    direct.set("k", "v1")
    with rc.raw() as victim, rc.raw() as admin:
        assert_cached(victim, redis_server, "k", b"v1")
        victim_id = victim.command("CLIENT", "ID")
        assert isinstance(victim_id, int), victim_id
        pause = scaled(5.0)
        direct.execute_command("CLIENT", "PAUSE", int(pause * 1000), "ALL")
        t0 = time.monotonic()
        victim.send(encode_command("GET", "k") + encode_command("SET", "after-kill", "x"))
        time.sleep(0.2)  # let the GET reach the barrier
        assert admin.command("CLIENT", "KILL", "ID", str(victim_id)) == 1
        rest = victim.read_until_eof()
        closed_after = time.monotonic() - t0
        assert closed_after < pause * 0.8, f"closed {closed_after:.1f} s into a {pause:.0f} s pause"
        assert b"OK" not in rest, rest
    direct.execute_command("CLIENT", "UNPAUSE")
    assert direct.get("after-kill") is None, "a command sent after the GET ran although its client was killed"
