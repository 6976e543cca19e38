"""--tracking-mode: how Redis tracks for respcache's invalidation channel.

optin (the default): every cache-filling read goes out on a data link that has CLIENT TRACKING on ...
OPTIN, behind CLIENT CACHING yes; Redis remembers each key read and announces its next write. bcast: the
channel's own connection has CLIENT TRACKING on REDIRECT <itself> BCAST; Redis remembers nothing, announces
every write of every key, and a fill is the read alone. The coherence suites (test_coherence.py,
test_client_tracking.py, the hash, missing-key, MGET and cluster cases) run in both modes; here is what
tells the two apart, as Redis itself reports it (CLIENT LIST, INFO commandstats)."""

from __future__ import annotations

import pytest

from coherence_lib import (INVALIDATION_CLIENT_NAME, assert_cached, client_list, kill_client, poll_proxy,
                           proxy_counter, proxy_info)
from conftest import scaled, wait_until

SOON = scaled(2.0)


def caching_calls(redis_server) -> int:
    return redis_server.commandstats().get("client|caching", 0)


@pytest.mark.parametrize("mode", ["optin", "bcast"])
def test_who_tracks_and_what_a_fill_costs(respcache, redis_server, mode):
    rc = respcache.start(["--tracking-mode", mode], backend=redis_server)
    assert proxy_info(rc)["tracking_mode"] == mode
    direct = redis_server.client()
    direct.set("k", "v")
    direct.hset("h", mapping={"f": "1"})
    caching = caching_calls(redis_server)
    with rc.raw() as c:
        assert_cached(c, redis_server, "k", b"v")
        before = redis_server.commandstats().get("hgetall", 0)
        for _ in range(3):
            assert c.command("HGETALL", "h") == [b"f", b"1"]
        assert redis_server.commandstats().get("hgetall", 0) - before == 1
    clients = client_list(redis_server)
    channel = [cl for cl in clients if cl.get("name") == INVALIDATION_CLIENT_NAME]
    assert len(channel) == 1, clients
    tracking = [cl for cl in clients if "t" in cl.get("flags", "")]
    if mode == "bcast":
        # The channel tracks for itself, broadcasting; no data link tracks; no read carried CLIENT CACHING.
        assert "B" in channel[0]["flags"] and "t" in channel[0]["flags"], channel
        assert channel[0]["redir"] == channel[0]["id"], channel
        assert tracking == channel, tracking
        assert caching_calls(redis_server) == caching
    else:
        assert "t" not in channel[0]["flags"], channel
        assert tracking and all(cl["redir"] == channel[0]["id"] for cl in tracking), tracking
        assert caching_calls(redis_server) - caching >= 2  # one per fill: GET k, HGETALL h


@pytest.mark.parametrize("mode", ["optin", "bcast"])
def test_writes_of_keys_never_read_are_announced_only_in_bcast(respcache, redis_server, mode):
    """The price of bcast: Redis sends the channel a message for writes of keys respcache never cached."""
    rc = respcache.start(["--tracking-mode", mode], backend=redis_server)
    direct = redis_server.client()
    with rc.raw() as c:
        assert c.command("GET", "fence") is None
        before = proxy_counter(rc, "invalidation_messages")
        for i in range(20):
            direct.set(f"never-read:{i}", "x")
        direct.set("fence", "1")  # announced in both modes: it was read (a missing key, cached)
        poll_proxy(c, "fence", b"1", SOON, "the write of the fence to be seen")
    heard = proxy_counter(rc, "invalidation_messages") - before
    if mode == "bcast":
        assert heard >= 2, heard  # the 20 writes came in at least one message, the fence in another or the same
        assert heard <= 21, heard
    else:
        assert heard == 1, heard


def test_bcast_a_lost_data_connection_keeps_the_cache(respcache, redis_server):
    """In bcast mode Redis tracked nothing for a data connection: losing one loses no invalidation, so the
    cache is kept (in optin mode it is flushed: test_coherence.py), and coherence holds after it."""
    rc = respcache.start(["--tracking-mode", "bcast"], backend=redis_server)
    direct = redis_server.client()
    direct.set("kept", "old")
    with rc.raw() as c:
        assert_cached(c, redis_server, "kept", b"old")
        losses = proxy_counter(rc, "invalidation_channel_losses")
        data = [int(cl["id"]) for cl in client_list(redis_server) if cl.get("name") == "respcache"]
        assert data, client_list(redis_server)
        for i in data:
            kill_client(redis_server, i)
        gets = redis_server.get_calls()
        assert c.command("GET", "kept") == b"old"
        assert redis_server.get_calls() == gets, "the entry went with the data connection"
        assert proxy_counter(rc, "invalidation_channel_losses") == losses
        direct.set("kept", "new")
        poll_proxy(c, "kept", b"new", SOON, "a direct write to be seen after the data connection was lost")
        wait_until(lambda: proxy_info(rc)["backend_state"] == "up", SOON, "the data connection to be back")
