"""Issue 5, point 4: failures around the proxy. Redis killed and restarted under load, a backend that never
answers, clients that do not read their replies, idle clients."""

import signal

import pytest

from conftest import RawClient, RespError, encode_command, scaled, wait_until
from opslib import Load, SilentBackend, proxy_info, proxy_int, sees_eof, subscribe_warm


def is_backend_error(reply) -> bool:
    return isinstance(reply, RespError) and reply.message.startswith("ERR backend unavailable")


@pytest.mark.timeout(90)
def test_redis_killed_and_restarted_under_load(respcache, redis_server):
    # ttl invalidation: in tracking mode a lost invalidation channel empties the cache (DESIGN.md 3.5), so
    # serving hits while Redis is down is the ttl mode's promise.
    rc = respcache.start(["--invalidation", "ttl", "--request-timeout", "500ms", "--connect-timeout", "200ms"],
                         backend=redis_server)
    redis_server.client().set("hot", "cached value")
    with rc.raw() as c:
        assert c.command("GET", "hot") == b"cached value"  # now cached

    # Each reply is awaited at most 5 s: far above the request timeout (500 ms) plus a reconnect attempt.
    load = Load(rc.port, threads=4, reply_timeout=scaled(5)).start()
    try:
        wait_until(lambda: load.counts()[0] >= 200 or load.problems, scaled(20), "load before the kill")
        assert load.problems == []

        redis_server.stop(signal.SIGKILL)
        wait_until(lambda: load.counts()[1] >= 20 or load.problems, scaled(20), "error replies while Redis is down")
        assert load.problems == []
        # While Redis is down, cached hits are still served (and misses are errors, not hangs).
        with RawClient(rc.port, timeout=scaled(5)) as c:
            for _ in range(20):
                assert c.command("GET", "hot") == b"cached value"
            assert is_backend_error(c.command("GET", "not-cached"))
            assert c.command("PING") == b"PONG"
        assert proxy_info(rc.port)["backend_state"] == "down"

        redis_server.start()  # the same port

        def recovered():
            with RawClient(rc.port, timeout=scaled(5)) as c:
                return c.command("SET", "after", "restart") == b"OK" and c.command("GET", "after") == b"restart"

        wait_until(recovered, scaled(30), "respcache to recover by itself after Redis restarted")
        # Every io thread's backend connection is back (each retries with its own jittered backoff, <= 2 s).
        wait_until(lambda: proxy_info(rc.port)["backend_state"] == "up", scaled(30), "backend_state:up")
        ok_now = load.counts()[0]
        wait_until(lambda: load.counts()[0] >= ok_now + 50 or load.problems, scaled(20), "load after the restart")
        ok_now, errors_now = load.counts()
        wait_until(lambda: load.counts()[0] >= ok_now + 200 or load.problems, scaled(20), "more load")
        assert load.counts()[1] == errors_now, "errors after the proxy had recovered"
    finally:
        load.stop()
    # Every request got exactly one reply: a value or 'ERR backend unavailable', in order, none missing.
    assert load.problems == []
    assert load.sent == load.replied == load.ok + load.errors
    assert load.errors > 0
    info = proxy_info(rc.port)
    assert info["backend_state"] == "up" and int(info["backend_reconnects"]) >= 1, info
    assert redis_server.client().get("after") == b"restart"


def test_backend_that_never_answers_is_detected_by_the_request_timeout(respcache):
    with SilentBackend() as silent:
        rc = respcache.start(["--request-timeout", "300ms", "--connect-timeout", "300ms"], backend=silent.port)
        wait_until(lambda: silent.accepted >= 1, scaled(10), "respcache to connect to the silent backend")
        # Bounded generously: the reply must come, its timing is not asserted.
        with RawClient(rc.port, timeout=scaled(15)) as c:
            for key in ("a", "b"):
                reply = c.command("GET", key)
                assert is_backend_error(reply), reply
            assert c.command("PING") == b"PONG"
            reply = c.command("SET", "a", "1")
            assert is_backend_error(reply), reply
        assert rc.running()
        rc.stop()


# ---------------------------------------------------------------------------------------------------
# Clients that do not read their replies.


def client_ids(port: int) -> set:
    with RawClient(port, timeout=scaled(10)) as c:
        text = c.command("CLIENT", "LIST")
    assert isinstance(text, bytes), text
    return {int(line.split(" ", 1)[0][3:]) for line in text.decode().splitlines() if line.startswith("id=")}


def flood_until_unsubscribed(redis_server, channel: str) -> int:
    """Publishes 64 KB messages on `channel` (straight to Redis) until nobody receives them; at most 1000
    (64 MB). Returns how many were published."""
    publisher = redis_server.client()
    payload = b"x" * 65536
    for published in range(1, 1001):
        if publisher.publish(channel, payload) == 0:
            return published
    raise AssertionError("the subscriber was still subscribed after 1000 messages of 64 KB")


@pytest.mark.timeout(90)
def test_subscriber_that_does_not_read_is_disconnected_at_the_output_buffer_limit(respcache, redis_server):
    rc = respcache.start(["--pubsub-output-buffer-limit", "1mb"], backend=redis_server)
    sub = RawClient(rc.port, timeout=scaled(10))
    try:
        sub_id = sub.command("CLIENT", "ID")
        subscribe_warm(sub, "flood")
        assert sub_id in client_ids(rc.port)
        flood_until_unsubscribed(redis_server, "flood")
        wait_until(lambda: proxy_int(rc.port, "output_buffer_disconnects") >= 1, scaled(10),
                   "output_buffer_disconnects to count it")
        assert proxy_int(rc.port, "pinned_connections") == 0
        assert "closing subscriber: output buffer limit reached" in rc.log
        # Reading now: what the kernel held, then the end of the connection (bounded by the socket timeout).
        assert sees_eof(sub)
        wait_until(lambda: sub_id not in client_ids(rc.port), scaled(10), "CLIENT LIST without the subscriber")
    finally:
        sub.close()
    with rc.raw() as c:
        assert c.command("PING") == b"PONG"


@pytest.mark.timeout(60)
def test_subscriber_over_the_output_buffer_limit_leaves_client_list_without_reading(respcache, redis_server):
    rc = respcache.start(["--pubsub-output-buffer-limit", "1mb"], backend=redis_server)
    sub = RawClient(rc.port, timeout=scaled(10))
    try:
        sub_id = sub.command("CLIENT", "ID")
        subscribe_warm(sub, "flood")
        flood_until_unsubscribed(redis_server, "flood")
        wait_until(lambda: proxy_int(rc.port, "output_buffer_disconnects") >= 1, scaled(10),
                   "output_buffer_disconnects to count it")
        # The subscriber has not read a byte: the proxy must have dropped it anyway.
        wait_until(lambda: sub_id not in client_ids(rc.port), scaled(5), "CLIENT LIST without the subscriber")
    finally:
        sub.close()


@pytest.mark.timeout(60)
def test_client_pipelining_big_replies_without_reading_is_disconnected(respcache, redis_server):
    rc = respcache.start(["--client-output-buffer-limit", "1mb"], backend=redis_server)
    redis_server.client().set("big", b"v" * 65536)
    slow = RawClient(rc.port, timeout=scaled(10))
    try:
        slow.send(encode_command("GET", "big") * 100)  # 100 x 64 KB of replies: 6.4 MB, never read
        wait_until(lambda: proxy_int(rc.port, "output_buffer_disconnects") >= 1, scaled(20),
                   "the client to be closed at the output buffer limit")
        assert sees_eof(slow)
    finally:
        slow.close()
    with rc.raw() as c:
        assert c.command("GET", "big") == b"v" * 65536


@pytest.mark.timeout(60)
def test_client_pipelining_cached_big_replies_without_reading_is_disconnected(respcache, redis_server):
    """The same slow reader, with the value already cached (every GET a hit)."""
    rc = respcache.start(["--client-output-buffer-limit", "1mb"], backend=redis_server)
    redis_server.client().set("big", b"v" * 65536)
    with rc.raw() as c:
        assert c.command("GET", "big") == b"v" * 65536
        assert c.command("GET", "big") == b"v" * 65536
    assert proxy_int(rc.port, "cache_hits") == 1
    slow = RawClient(rc.port, timeout=scaled(10))
    try:
        slow.send(encode_command("GET", "big") * 100)
        wait_until(lambda: proxy_int(rc.port, "output_buffer_disconnects") >= 1, scaled(5),
                   "the client to be closed at the output buffer limit")
        assert sees_eof(slow)
    finally:
        slow.close()


# ---------------------------------------------------------------------------------------------------
# Idle clients.


@pytest.mark.timeout(60)
def test_idle_clients_are_closed_after_timeout_and_never_with_timeout_0(respcache, redis_server):
    never = respcache.start(["--timeout", "0"], backend=redis_server)
    one_second = respcache.start(["--timeout", "1s"], backend=redis_server)
    keeps = never.raw()
    subscriber = one_second.raw()
    try:
        assert keeps.command("PING") == b"PONG"
        subscribe_warm(subscriber, "idle-news")  # subscribers are not idle clients
        idle = RawClient(one_second.port, timeout=scaled(10))
        with idle:
            assert idle.command("PING") == b"PONG"
            # Closed after about a second of silence: EOF within the read bound (10 s).
            assert idle.read_until_eof() == b""
        assert proxy_int(one_second.port, "idle_disconnects") >= 1
        # `keeps` has been idle longer than `idle` was (it was last used before `idle` connected).
        assert keeps.command("PING") == b"PONG"
        assert proxy_int(never.port, "idle_disconnects") == 0
        # The subscriber is still there, and still gets messages.
        assert redis_server.client().publish("idle-news", "still here") == 1
        assert subscriber.read_reply() == [b"message", b"idle-news", b"still here"]
    finally:
        keeps.close()
        subscriber.close()
