"""Per-user access, never weaker than Redis's ACL. A client that logs in as user U (AUTH, HELLO AUTH) has
its commands run on Redis as U, on connections pooled per user and io thread, and reads cached for one
user are never served to another: Redis judges every user's first read of an entry.

Users (made with ACL SETUSER on the test's redis-server):
  app     every key, every command
  reader  only keys public:*, read commands and the connection category (CLIENT TRACKING and CLIENT
          CACHING among them, which caching a user's reads needs)
respcache itself logs in as the default user (no password), as in every other test."""

import pytest

from conftest import RawClient, RespError, scaled, wait_until

APP = ("app", "app-secret")
READER = ("reader", "reader-secret")


@pytest.fixture
def acl_redis(redis_server):
    c = redis_server.client()
    c.execute_command("ACL", "SETUSER", APP[0], "on", f">{APP[1]}", "~*", "&*", "+@all")
    c.execute_command("ACL", "SETUSER", READER[0], "on", f">{READER[1]}", "~public:*", "+@read", "+@connection")
    c.set("secret:x", "classified")
    c.set("public:y", "open")
    return redis_server


def logged_in(port, user, timeout=10.0):
    c = RawClient(port, timeout=scaled(timeout))
    assert c.command("AUTH", *user) == b"OK"
    return c


def direct_as(redis_server, user, *args):
    with logged_in(redis_server.port, user) as c:
        return c.command(*args)


def test_a_reader_gets_redis_noperm_even_right_after_another_user_cached_the_key(respcache, acl_redis):
    rc = respcache.start([], backend=acl_redis)
    expected = direct_as(acl_redis, READER, "GET", "secret:x")
    assert isinstance(expected, RespError) and expected.message.startswith("NOPERM"), expected
    with logged_in(rc.port, APP) as app:
        assert app.command("GET", "secret:x") == b"classified"
        calls = acl_redis.get_calls()
        assert app.command("GET", "secret:x") == b"classified"  # a hit, in app's part of the cache
        assert acl_redis.get_calls() == calls
    with rc.raw() as anonymous:  # the proxy's own user, with a cache of its own
        assert anonymous.command("GET", "secret:x") == b"classified"
    with logged_in(rc.port, READER) as reader:
        for _ in range(3):
            assert reader.command("GET", "secret:x") == expected
        assert reader.command("HGETALL", "secret:x") == direct_as(acl_redis, READER, "HGETALL", "secret:x")
        assert reader.command("MGET", "public:y", "secret:x") == direct_as(acl_redis, READER, "MGET", "public:y",
                                                                           "secret:x")
        # Writes are Redis's to refuse too.
        assert reader.command("SET", "public:y", "x") == direct_as(acl_redis, READER, "SET", "public:y", "x")
        # What the reader may read is cached for it.
        assert reader.command("GET", "public:y") == b"open"
        calls = acl_redis.get_calls()
        assert reader.command("GET", "public:y") == b"open"
        assert acl_redis.get_calls() == calls
    assert acl_redis.client().get("public:y") == b"open"


def test_commands_run_as_the_user_on_connections_pooled_per_user(respcache, acl_redis):
    rc = respcache.start(["--threads", "2", "--backend-connections", "1"], backend=acl_redis)
    clients = [logged_in(rc.port, APP) for _ in range(6)]
    try:
        for c in clients:
            assert c.command("ACL", "WHOAMI") == b"app"
        with rc.raw() as anonymous:
            assert anonymous.command("ACL", "WHOAMI") == b"default"

        def app_links():
            lines = acl_redis.client().client_list()
            return [l for l in lines if l.get("user") == "app"]
        # Six clients, two io threads with one shared link each: at most two of app's (the log-in checks
        # ran on connections of their own, closed once answered).
        wait_until(lambda: 1 <= len(app_links()) <= 2, scaled(10), "app's connections to be the pooled ones")
        # A write through app invalidates what the proxy's own user cached.
        with rc.raw() as anonymous:
            assert anonymous.command("GET", "public:y") == b"open"
            assert clients[0].command("SET", "public:y", "changed") == b"OK"
            wait_until(lambda: anonymous.command("GET", "public:y") == b"changed", scaled(5), "the new value")
    finally:
        for c in clients:
            c.close()


def test_hello_auth_and_reset(respcache, acl_redis):
    rc = respcache.start([], backend=acl_redis)
    expected3 = None
    with RawClient(acl_redis.port, timeout=scaled(10)) as direct:
        direct.command("HELLO", "3", "AUTH", *READER)
        expected3 = direct.command("GET", "secret:x")
    with RawClient(rc.port, timeout=scaled(10)) as c:
        hello = c.command("HELLO", "3", "AUTH", *READER)
        assert not isinstance(hello, RespError), hello
        assert c.command("GET", "secret:x") == expected3
        # Run as reader, whom Redis does not let run ACL WHOAMI: its refusal is the proof.
        assert c.command("ACL", "WHOAMI") == direct_as(acl_redis, READER, "ACL", "WHOAMI")
        # RESET: back to a new connection's state, the proxy's own user.
        assert c.command("RESET") == b"RESET"
        assert c.command("ACL", "WHOAMI") == b"default"
        assert c.command("GET", "secret:x") == b"classified"
    with RawClient(rc.port, timeout=scaled(10)) as c:
        bad = c.command("AUTH", READER[0], "wrong")
        assert bad == direct_as_error(acl_redis, READER[0], "wrong")
        assert c.command("ACL", "WHOAMI") == b"default"


def direct_as_error(redis_server, user, password):
    with RawClient(redis_server.port, timeout=scaled(10)) as c:
        return c.command("AUTH", user, password)


def test_a_permission_taken_away_through_respcache_is_not_outlived_by_the_cache(respcache, acl_redis):
    rc = respcache.start([], backend=acl_redis)
    with logged_in(rc.port, READER) as reader:
        assert reader.command("GET", "public:y") == b"open"
        assert reader.command("GET", "public:y") == b"open"  # cached for reader
        with rc.raw() as admin:
            assert admin.command("ACL", "SETUSER", READER[0], "resetkeys", "~other:*") == b"OK"
        expected = direct_as(acl_redis, READER, "GET", "public:y")
        assert isinstance(expected, RespError) and expected.message.startswith("NOPERM"), expected
        assert reader.command("GET", "public:y") == expected


def test_hot_keys_never_show_what_another_user_read(respcache, acl_redis):
    rc = respcache.start([], backend=acl_redis)
    with logged_in(rc.port, APP) as app:
        for _ in range(400):
            assert app.command("GET", "secret:x") == b"classified"
    with rc.raw() as anonymous:
        for _ in range(400):
            assert anonymous.command("GET", "public:y") == b"open"
        info = anonymous.command("INFO", "proxy").decode()
    assert "key=public:y" in info, info
    assert "secret:x" not in info
