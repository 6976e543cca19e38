"""The cache beyond GET: every read-only, deterministic one-key read of the backend's command table.

- Each family (strings, hashes, lists, sets, sorted sets, streams, bits, TYPE, EXPIRETIME, one-key
  SINTER/SUNION) is read twice through respcache in RESP2 and in RESP3: both replies are the exact bytes
  Redis itself sends for that command in that protocol, and Redis executed the command once.
- An entry is keyed by db, key and variant (protocol, command, arguments): RESP2 and RESP3 clients of one
  key, LRANGE with other bounds, the same key in another db are separate entries, each right.
- One write of a key, directly in Redis (client tracking announces it) or through respcache
  (read-your-writes, at once), drops every entry of that key.
- Never cached: nondeterministic reads (TTL, SRANDMEMBER, SCAN, OBJECT ...), multi-key reads, errors.
- Negative caching of missing keys and `--negative-caching no`; `--cache-commands` narrowing, widening
  and its usage error.

A hit is proven by Redis's own count of calls of that command (INFO commandstats), never by timing; the
reads a test makes directly in Redis to learn the expected bytes are counted before the baseline.
"""

from __future__ import annotations

import time
from typing import Callable, List, Sequence

import pytest

from conftest import RawClient, run_respcache, scaled, wait_until

# Far in the future but fixed, so that EXPIRETIME (and the key's own TTL) are deterministic.
EXPIRE_AT = int(time.time()) + 86400


def seed(redis_server):
    """One key of each type, written directly in Redis."""
    r = redis_server.client()
    r.set("s", "Hello, cache!")
    r.expireat("s", EXPIRE_AT)
    r.hset("h", mapping={"f": "v1", "g": "v2", "n": "10"})
    r.rpush("l", "a", "b", "c", "a")
    r.sadd("set", "x", "y", "z")
    r.zadd("z", {"a": 1, "b": 2.5, "c": 3})
    r.zadd("lex", {"alpha": 0, "beta": 0, "gamma": 0})
    r.xadd("x", {"f1": "v1"}, id="1-1")
    r.xadd("x", {"f2": "v2", "f3": "v3"}, id="2-1")


# Cached reads, each of a key `seed` wrote. RESP3 replies of many differ from RESP2's: maps (HGETALL),
# doubles (ZSCORE, ZRANGE WITHSCORES), sets (SMEMBERS), nulls inside arrays (HMGET, ZMSCORE).
CACHED_READS = [
    ("GETRANGE", "s", "0", "4"), ("STRLEN", "s"), ("EXISTS", "s"), ("TYPE", "s"), ("TYPE", "z"),
    ("BITCOUNT", "s"), ("BITCOUNT", "s", "1", "2"), ("GETBIT", "s", "1"), ("EXPIRETIME", "s"),
    ("HGET", "h", "f"), ("HMGET", "h", "f", "nope", "g"), ("HGETALL", "h"), ("HKEYS", "h"), ("HVALS", "h"),
    ("HLEN", "h"), ("HEXISTS", "h", "f"), ("HSTRLEN", "h", "f"),
    ("LRANGE", "l", "0", "-1"), ("LINDEX", "l", "1"), ("LINDEX", "l", "99"), ("LLEN", "l"),
    ("LPOS", "l", "a", "RANK", "2"),
    ("SMEMBERS", "set"), ("SISMEMBER", "set", "y"), ("SMISMEMBER", "set", "x", "nope"), ("SCARD", "set"),
    ("SINTER", "set"), ("SUNION", "set"),
    ("ZRANGE", "z", "0", "-1"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
    ("ZRANGEBYSCORE", "z", "1", "3", "WITHSCORES"), ("ZRANGEBYLEX", "lex", "-", "+"),
    ("ZREVRANGE", "z", "0", "-1", "WITHSCORES"), ("ZSCORE", "z", "b"), ("ZMSCORE", "z", "a", "nope"),
    ("ZCARD", "z"), ("ZRANK", "z", "c"), ("ZCOUNT", "z", "1", "2.5"),
    ("XRANGE", "x", "-", "+"), ("XREVRANGE", "x", "+", "-", "COUNT", "1"), ("XLEN", "x"),
]

# Reads whose RESP2 and RESP3 bytes differ, for the test of one key read in both protocols.
PROTOCOL_SENSITIVE = [("HGETALL", "h"), ("ZSCORE", "z", "b"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
                      ("SMEMBERS", "set"), ("HMGET", "h", "f", "nope"), ("ZMSCORE", "z", "a", "nope"),
                      ("LINDEX", "l", "99")]

# Never cached: nondeterministic, not read-only, or of more than one key. Each is sent twice.
UNCACHED_READS = [
    ("TTL", "s"), ("PTTL", "s"), ("SRANDMEMBER", "set"), ("HRANDFIELD", "h"), ("ZRANDMEMBER", "z"),
    ("RANDOMKEY",), ("SCAN", "0"), ("SSCAN", "set", "0"), ("HSCAN", "h", "0"), ("ZSCAN", "z", "0"),
    ("OBJECT", "ENCODING", "h"), ("XINFO", "STREAM", "x"), ("TOUCH", "s"), ("SORT_RO", "l", "ALPHA"),
    ("SINTER", "set", "other"), ("SUNION", "set", "other"), ("EXISTS", "s", "h"),
]


def ident(cmd: Sequence[str]) -> str:
    return " ".join(cmd)


def stat_name(cmd: Sequence[str]) -> str:
    """The command's name in INFO commandstats: 'hgetall', or 'object|encoding' for a subcommand."""
    name = cmd[0].lower()
    return f"{name}|{cmd[1].lower()}" if name in ("object", "xinfo") else name


def connect(port: int, proto: int) -> RawClient:
    """A raw connection, switched to RESP3 with HELLO 3 when proto is 3."""
    c = RawClient(port)
    if proto == 3:
        c.send_command("HELLO", "3")
        hello = c.read_reply()
        assert isinstance(hello, dict) and hello.get(b"proto") == 3, hello
    return c


def replies(port: int, proto: int, commands: Sequence[Sequence[str]]) -> List[bytes]:
    """The raw reply of each command, sent one at a time on one connection in protocol `proto`."""
    with connect(port, proto) as c:
        out = []
        for cmd in commands:
            c.send_command(*cmd)
            out.append(c.read_raw_reply())
        return out


def calls_of(redis_server, *cmds: Sequence[str]) -> Callable[[], dict]:
    """A function returning how many more times Redis has executed each of `cmds`' commands since now."""
    names = {stat_name(c) for c in cmds}
    before = redis_server.commandstats()

    def delta():
        now = redis_server.commandstats()
        return {n: now.get(n, 0) - before.get(n, 0) for n in names}

    return delta


def assert_same(redis_bytes: Sequence[bytes], proxied: Sequence[bytes], commands: Sequence[Sequence[str]]):
    diffs = [f"  {ident(cmd)}\n    redis:     {d!r}\n    respcache: {p!r}"
             for cmd, d, p in zip(commands, redis_bytes, proxied) if d != p]
    assert not diffs, "replies through respcache differ from Redis's:\n" + "\n".join(diffs)


# ---------------------------------------------------------------------------------------------------
# Hits are Redis's bytes, per protocol.


@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
@pytest.mark.parametrize("cmd", CACHED_READS, ids=ident)
def test_read_is_cached_with_redis_bytes(proxy, redis_server, cmd, proto):
    seed(redis_server)
    expected = replies(redis_server.port, proto, [cmd])[0]
    delta = calls_of(redis_server, cmd)
    got = replies(proxy.port, proto, [cmd, cmd])
    assert_same([expected, expected], got, [cmd, cmd])
    assert delta() == {stat_name(cmd): 1}, "the second read should have been served from the cache"


@pytest.mark.parametrize("cmd", PROTOCOL_SENSITIVE, ids=ident)
def test_resp2_and_resp3_entries_of_one_key_are_distinct(proxy, redis_server, cmd):
    seed(redis_server)
    want2, want3 = replies(redis_server.port, 2, [cmd])[0], replies(redis_server.port, 3, [cmd])[0]
    assert want2 != want3, "not a protocol-sensitive read: the test would prove nothing"
    delta = calls_of(redis_server, cmd)
    # Interleaved on two connections, so that each protocol's first read finds the other's entry cached.
    with connect(proxy.port, 2) as c2, connect(proxy.port, 3) as c3:
        got = []
        for c in (c2, c3, c2, c3):
            c.send_command(*cmd)
            got.append(c.read_raw_reply())
    assert_same([want2, want3, want2, want3], got, [("RESP2",) + cmd, ("RESP3",) + cmd] * 2)
    # One miss per protocol, then hits.
    assert delta() == {stat_name(cmd): 2}


def test_other_arguments_are_other_entries(proxy, redis_server):
    seed(redis_server)
    cmds = [("LRANGE", "l", "0", "1"), ("LRANGE", "l", "0", "-1")]
    expected = replies(redis_server.port, 2, cmds)
    assert expected[0] != expected[1]
    delta = calls_of(redis_server, *cmds)
    got = replies(proxy.port, 2, cmds * 2)
    assert_same(expected * 2, got, cmds * 2)
    assert delta() == {"lrange": 2}


def test_databases_are_separate_entries(proxy, redis_server):
    redis_server.client(db=0).hset("dbh", "f", "in-db-0")
    redis_server.client(db=1).hset("dbh", "f", "in-db-1")
    delta = calls_of(redis_server, ("HGETALL",))
    with proxy.raw() as c:
        for db in ("0", "1", "0", "1"):
            assert c.command("SELECT", db) == b"OK"
            assert c.command("HGETALL", "dbh") == [b"f", b"in-db-" + db.encode()], f"db {db}"
    assert delta() == {"hgetall": 2}


# ---------------------------------------------------------------------------------------------------
# Invalidation drops every entry of the key.

HASH_READS = [("HGET", "h", "f"), ("HMGET", "h", "f", "g"), ("HGETALL", "h"), ("HLEN", "h")]


def cache_hash_reads(proxy, redis_server) -> RawClient:
    """Caches every read of HASH_READS (checked: their second round reaches Redis no more)."""
    seed(redis_server)
    c = proxy.raw()
    delta = calls_of(redis_server, *HASH_READS)
    first = [c.command(*cmd) for cmd in HASH_READS]
    assert first == [b"v1", [b"v1", b"v2"], [b"f", b"v1", b"g", b"v2", b"n", b"10"], 3]
    assert [c.command(*cmd) for cmd in HASH_READS] == first
    assert delta() == {stat_name(cmd): 1 for cmd in HASH_READS}
    return c


def read_all(c: RawClient) -> List[bytes]:
    out = []
    for cmd in HASH_READS:
        c.send_command(*cmd)
        out.append(c.read_raw_reply())
    return out


def test_a_direct_write_drops_every_entry_of_the_key(proxy_any_tracking, redis_server):
    with cache_hash_reads(proxy_any_tracking, redis_server) as c:
        # A new value for f and a new field, so that every one of the four replies changes.
        redis_server.client().hset("h", mapping={"f": "new", "e": "extra"})
        fresh = replies(redis_server.port, 2, HASH_READS)
        # Client tracking is asynchronous: wait for the first read to see the write; the one
        # invalidation message drops all four entries at once, so the other three must see it too.
        wait_until(lambda: read_all(c)[0] == fresh[0], scaled(10), "the direct HSET to reach the cache")
        assert_same(fresh, read_all(c), HASH_READS)


def test_a_write_through_respcache_drops_every_entry_at_once(proxy, redis_server):
    with cache_hash_reads(proxy, redis_server) as c, proxy.raw() as writer:
        assert writer.command("HSET", "h", "f", "newer", "e", "extra") == 1
        # Read-your-writes: no wait, and on a connection other than the writer's.
        assert_same(replies(redis_server.port, 2, HASH_READS), read_all(c), HASH_READS)


@pytest.mark.parametrize("read,write", [
    (("EXPIRETIME", "s"), ("EXPIREAT", "s", str(EXPIRE_AT + 60))), (("EXPIRETIME", "s"), ("PERSIST", "s")),
    (("BITCOUNT", "s"), ("SETBIT", "s", "0", "1")), (("STRLEN", "s"), ("APPEND", "s", "!")),
    (("LRANGE", "l", "0", "-1"), ("LPUSH", "l", "new")), (("SMEMBERS", "set"), ("SREM", "set", "y")),
    (("ZRANGE", "z", "0", "-1", "WITHSCORES"), ("ZINCRBY", "z", "5", "a")),
    (("XLEN", "x"), ("XADD", "x", "*", "f", "v")),
    (("TYPE", "s"), ("RENAME", "h", "s")), (("HGETALL", "h"), ("DEL", "h")),
], ids=lambda v: ident(v))
def test_write_through_respcache_is_read_back(proxy, redis_server, read, write):
    seed(redis_server)
    delta = calls_of(redis_server, read)
    with proxy.raw() as c:
        replies_before = replies(proxy.port, 2, [read, read])
        assert delta() == {stat_name(read): 1}  # cached
        c.command(*write)
        after = replies(redis_server.port, 2, [read])[0]
        assert after != replies_before[0], "the write changed nothing: the test would prove nothing"
        # Read-your-writes: no wait, on the writer's connection and on another one.
        c.send_command(*read)
        assert_same([after, after], [c.read_raw_reply(), replies(proxy.port, 2, [read])[0]], [read, read])


# ---------------------------------------------------------------------------------------------------
# What is never cached.


@pytest.mark.parametrize("cmd", UNCACHED_READS, ids=ident)
def test_read_that_is_never_cached_reaches_redis_each_time(proxy, redis_server, cmd):
    seed(redis_server)
    redis_server.client().sadd("other", "y")
    delta = calls_of(redis_server, cmd)
    with proxy.raw() as c:
        for _ in range(2):
            c.send_command(*cmd)
            c.read_raw_reply()
    assert delta() == {stat_name(cmd): 2}


def test_wrongtype_error_is_not_cached(proxy, redis_server):
    seed(redis_server)
    cmd = ("HGET", "s", "f")
    expected = replies(redis_server.port, 2, [cmd])[0]
    assert expected.startswith(b"-WRONGTYPE"), expected
    delta = calls_of(redis_server, cmd)
    assert_same([expected, expected], replies(proxy.port, 2, [cmd, cmd]), [cmd, cmd])
    assert delta() == {"hget": 2}


# ---------------------------------------------------------------------------------------------------
# Missing keys.

# (read of the missing key, its creation directly in Redis)
MISSING = [(("HGETALL", "missing"), ("HSET", "missing", "f", "v")),
           (("SMEMBERS", "missing"), ("SADD", "missing", "m")),
           (("GET", "missing"), ("SET", "missing", "now here"))]


@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
@pytest.mark.parametrize("read,create", MISSING, ids=lambda v: ident(v))
def test_missing_key_is_cached_until_redis_announces_its_creation(proxy_any_tracking, redis_server, read, create,
                                                                  proto):
    proxy = proxy_any_tracking
    # Empty in RESP3 is its own type: `%0` (HGETALL), `~0` (SMEMBERS), `_` (GET); `*0` or `$-1` in RESP2.
    empty = replies(redis_server.port, proto, [read])[0]
    delta = calls_of(redis_server, read)
    assert_same([empty, empty], replies(proxy.port, proto, [read, read]), [read, read])
    assert delta() == {stat_name(read): 1}, "the second read of the missing key should be a hit"
    with connect(proxy.port, proto) as c:
        redis_server.client().execute_command(*create)
        created = replies(redis_server.port, proto, [read])[0]
        assert created != empty

        def fresh():
            c.send_command(*read)
            return c.read_raw_reply() == created

        wait_until(fresh, scaled(10), f"the creation ({ident(create)}) to reach the cache")


@pytest.mark.parametrize("read", [r for r, _ in MISSING], ids=ident)
def test_missing_key_is_not_cached_with_negative_caching_off(respcache, redis_server, read):
    rc = respcache.start(["--negative-caching", "no"], backend=redis_server)
    empty = replies(redis_server.port, 2, [read])[0]
    delta = calls_of(redis_server, read)
    assert_same([empty, empty], replies(rc.port, 2, [read, read]), [read, read])
    assert delta() == {stat_name(read): 2}
    # ... and an existing key is still cached.
    redis_server.client().execute_command(*dict(MISSING)[read])
    delta = calls_of(redis_server, read)
    replies(rc.port, 2, [read, read])
    assert delta() == {stat_name(read): 1}


# ---------------------------------------------------------------------------------------------------
# --cache-commands.


@pytest.mark.parametrize("spec,hits,misses", [
    ("get,hgetall", [("HGETALL", "h"), ("GET", "s")], [("HGET", "h", "f"), ("LLEN", "l")]),
    ("default,-hgetall", [("HGET", "h", "f"), ("LLEN", "l")], [("HGETALL", "h")]),
    ("default,-hgetall,+object|encoding", [("OBJECT", "ENCODING", "h"), ("HGET", "h", "f")], [("HGETALL", "h")]),
])
def test_cache_commands_narrows_and_widens(respcache, redis_server, spec, hits, misses):
    rc = respcache.start(["--cache-commands", spec], backend=redis_server)
    seed(redis_server)
    cmds = hits + misses
    expected = replies(redis_server.port, 2, cmds)
    delta = calls_of(redis_server, *cmds)
    assert_same(expected * 2, replies(rc.port, 2, cmds * 2), cmds * 2)
    assert delta() == {**{stat_name(c): 1 for c in hits}, **{stat_name(c): 2 for c in misses}}


@pytest.mark.parametrize("args", [["--cache-commands", ","], ["--cache-commands", "get,,hget"],
                                  ["--cache-commands", "-get"], ["--negative-caching", "maybe"]],
                         ids=lambda a: " ".join(a))
def test_bad_option_value_is_a_usage_error(args):
    result = run_respcache(args)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and args[0] in lines[0] and args[1] in lines[0], result.stderr
    assert result.stdout == ""
