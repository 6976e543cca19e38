"""Compatibility check against Redis itself (issue "Drop-in: every Redis command works through respcache",
item 6).

One scripted session of several hundred commands (every data type, scripting, errors, and the connection
state commands: SELECT, MULTI/EXEC/DISCARD/WATCH, CLIENT SETNAME/GETNAME, HELLO, RESET, QUIT, blocking pops,
pub/sub) runs first against a fresh redis-server directly, every reply recorded as raw bytes; then, after
FLUSHALL + SCRIPT FLUSH + FUNCTION FLUSH, the identical session runs through a fresh respcache in front of
the SAME redis-server (same process: same hash seed, so SCAN/SMEMBERS/KEYS come in the same order), and
every reply must be byte-identical, except for the documented differences below. GETs follow the writes,
repeated, so that the cache serves hits and every write must have invalidated what it touched.

Each session runs in both protocols (`for_protocol`):
 - RESP2: as written;
 - RESP3: `HELLO 3` is sent first on every connection of the session (and on every connection opened again
   after QUIT), and again after each RESET (which returns a connection to RESP2, in Redis as in respcache;
   a GET of a missing key between the two checks that: `$-1`). The session's own HELLOs ask for the run's
   protocol (`PROTO`), and a short excursion to the other protocol (`OTHER_PROTO`) and back is part of both
   runs. So every command of the session is compared in RESP3 too: maps, sets, doubles, nulls, verbatim
   strings, pushes (pub/sub messages and confirmations, UNSUBSCRIBE outside a subscription), and, in RESP3,
   ordinary commands while subscribed (which Redis allows in RESP3 only).

Documented differences (each one excluded from the session or normalized precisely):
 1. HELLO / HELLO 2|3 [AUTH ...] [SETNAME ...]: the reply's `id` field is the client id, respcache's own
    numbering versus Redis's: normalized (the integer after "id" only, in the RESP2 array `*14 ... $2 id :N`
    and in the RESP3 map `%7 ... $2 id :N`). Everything else must match, including "version" (respcache
    reports the backend's) and "proto".
 2. CLIENT ID, CLIENT INFO, CLIENT LIST, CLIENT KILL: excluded; ids, addresses, ports, fds, ages and memory
    figures describe different connections (respcache answers them for its own clients).
 3. CLIENT SETINFO: excluded; respcache answers +OK as Redis 7.2 does (client libraries send it at
    connect), this Redis 7.0 answers "ERR unknown subcommand 'SETINFO'". Tested in test_clients.py.
 4. CLIENT TRACKING / CLIENT CACHING / CLIENT GETREDIR / CLIENT TRACKINGINFO: excluded here; redirect ids
    are client ids (difference 1), and an invalidation arrives whenever its key changes, not at a point
    of the session. test_client_tracking.py compares them with Redis side by side, as transcripts with
    both sides' ids and the moments of the changes aligned.
 5. INFO, MONITOR, CLIENT NO-TOUCH, commands whose replies carry time or randomness (TIME, OBJECT
    IDLETIME/FREQ, RANDOMKEY, SRANDMEMBER, XINFO CONSUMERS, XPENDING's extended form, PTTL of a volatile
    key, ...): excluded; they differ between any two runs (INFO also gains respcache's "proxy" section).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import pytest

from conftest import RawClient, scaled

MIN_COMMANDS = 250
READ_TIMEOUT = scaled(5)

Arg = Union[str, bytes, int, Callable[[dict], Union[str, bytes]]]


@dataclass
class Step:
    conn: str  # which connection ("a", "b")
    args: Tuple[Arg, ...]  # the command; empty: read only
    replies: int = 1  # how many replies to read after sending (0: none, e.g. CLIENT REPLY OFF)
    save: Optional[str] = None  # keep the parsed reply under this name for later arguments
    quit: bool = False  # after the reply, the server closes the connection: read until EOF
    normalize: Optional[Callable[[bytes], bytes]] = None
    added: bool = False  # added by for_protocol (the RESP3 run's HELLO 3s and the GET after RESET)


@dataclass
class Script:
    steps: List[Step] = field(default_factory=list)

    def c(self, *args: Arg, conn: str = "a", replies: int = 1, save: Optional[str] = None, normalize=None):
        """One command on `conn`, and its reply (or `replies` replies)."""
        self.steps.append(Step(conn, tuple(args), replies, save, normalize=normalize))

    def w(self, *args: Arg, get: Optional[Sequence[str]] = None, conn: str = "a"):
        """A write, then GET of the key(s) it touches, twice: the first GET may fill the cache, the
        second is a hit, and a later write must invalidate it."""
        self.c(*args, conn=conn)
        for key in (get if get is not None else [args[1]]):
            self.c("GET", key, conn=conn)
            self.c("GET", key, conn=conn)

    def g(self, *keys: str, conn: str = "a"):
        for key in keys:
            self.c("GET", key, conn=conn)

    def send(self, *args: Arg, conn: str = "a"):
        """Sends without reading (the reply is read by a later read())."""
        self.steps.append(Step(conn, tuple(args), 0))

    def read(self, n: int = 1, conn: str = "a"):
        self.steps.append(Step(conn, (), n))

    def quit(self, conn: str = "a"):
        self.steps.append(Step(conn, ("QUIT",), 1, quit=True))

    @property
    def commands(self) -> int:
        return sum(1 for s in self.steps if s.args)

    @property
    def own_commands(self) -> int:
        """The session's own commands, without those for_protocol added (what MIN_COMMANDS counts)."""
        return sum(1 for s in self.steps if s.args and not s.added)


_HELLO_ID = re.compile(rb"(\$2\r\nid\r\n):\d+\r\n")
# The head of a HELLO reply: the RESP2 array of 7 field/value pairs, or the RESP3 map of 7 pairs.
_HELLO_HEAD = re.compile(rb"(\*14|%7)\r\n\$6\r\nserver\r\n")


def hello_id(raw: bytes) -> bytes:
    """Difference 1: the client id inside a HELLO reply (RESP2 array or RESP3 map), and nothing else. An
    error reply is left as it is."""
    if raw.startswith(b"-"):
        return raw
    assert _HELLO_HEAD.match(raw), f"not a HELLO reply: {raw!r}"
    out, n = _HELLO_ID.subn(rb"\1:<client id>\r\n", raw)
    assert n == 1, raw
    return out


class _Proto:
    """An argument standing for the protocol of the run ("2" or "3"), or for the other one."""

    def __init__(self, other: bool):
        self.other = other

    def resolve(self, proto: int) -> str:
        return str((5 - proto) if self.other else proto)


PROTO = _Proto(other=False)
OTHER_PROTO = _Proto(other=True)


# ---------------------------------------------------------------------------------------------------
# The session.

def build_main_session() -> Script:
    s = Script()
    c, w, g = s.c, s.w, s.g

    # -- strings
    w("SET", "s:a", "hello")
    w("APPEND", "s:a", " world")
    c("STRLEN", "s:a")
    c("GETRANGE", "s:a", "0", "4")
    c("GETRANGE", "s:a", "-5", "-1")
    w("SETRANGE", "s:a", "6", "WORLD")
    w("SETRANGE", "s:pad", "5", "x")  # zero-padded
    w("SETNX", "s:a", "ignored")
    w("SETNX", "s:new", "created")
    w("SET", "s:a", "replaced", "XX")
    w("SET", "s:none", "v", "XX")
    w("SET", "s:a", "got-old", "GET")
    w("SET", "s:n", "10")
    c("OBJECT", "ENCODING", "s:n")
    c("OBJECT", "ENCODING", "s:a")
    w("INCR", "s:n")
    w("INCRBY", "s:n", "-20")
    w("DECR", "s:n")
    w("DECRBY", "s:n", "5")
    w("INCRBYFLOAT", "s:f", "2.5")
    w("INCRBYFLOAT", "s:f", "1e2")
    w("INCRBYFLOAT", "s:f", "-0.25")
    w("MSET", "s:m1", "one", "s:m2", "two", "s:m3", "three", get=["s:m1", "s:m3"])
    c("MGET", "s:m1", "s:nope", "s:m2", "s:m3")
    w("MSETNX", "s:m1", "x", "s:m4", "four", get=["s:m1", "s:m4"])
    w("MSETNX", "s:m5", "five", "s:m6", "six", get=["s:m5", "s:m6"])
    w("GETSET", "s:m1", "uno")
    w("GETDEL", "s:m2")
    w("GETEX", "s:m3", "EX", "100")
    c("TTL", "s:m3")
    w("GETEX", "s:m3", "PERSIST")
    c("TTL", "s:m3")
    w("SETEX", "s:ex", "100", "expiring")
    c("TTL", "s:ex")
    w("SET", "s:ex", "kept", "KEEPTTL")
    c("TTL", "s:ex")
    w("PSETEX", "s:pex", "100000", "p")
    c("TTL", "s:pex")
    c("LCS", "s:m1", "s:m4")
    c("SET", "s:lcs1", "ohmytext")
    c("SET", "s:lcs2", "mynewtext")
    c("LCS", "s:lcs1", "s:lcs2", "LEN")
    c("SET", "s:big", "x" * 5000)
    g("s:big", "s:big")
    w("APPEND", "s:big", "y")
    c("STRLEN", "s:big")
    w("SET", "s:bin", b"\x00\r\n\xff binary \x00")
    # errors on strings
    w("SET", "s:a", "notanumber")
    c("INCR", "s:a")
    c("INCRBYFLOAT", "s:a", "1")
    c("SET", "s:a", "v", "NX", "XX")
    c("SET", "s:a", "v", "EX", "-5")
    c("SETRANGE", "s:a", "-1", "x")
    c("GETEX", "s:a", "EX")
    g("s:a")

    # -- bitmaps
    w("SETBIT", "b:1", "7", "1")
    w("SETBIT", "b:1", "0", "1")
    c("GETBIT", "b:1", "7")
    c("GETBIT", "b:1", "100")
    c("BITCOUNT", "b:1")
    c("BITPOS", "b:1", "1")
    c("BITPOS", "b:1", "0")
    c("SET", "b:2", "\xff")
    w("BITOP", "AND", "b:and", "b:1", "b:2")
    w("BITOP", "OR", "b:or", "b:1", "b:2")
    w("BITOP", "NOT", "b:not", "b:1")
    c("BITFIELD", "b:bf", "SET", "u8", "0", "200", "GET", "u8", "0", "INCRBY", "u4", "4", "3")
    g("b:bf")
    w("BITFIELD", "b:bf", "INCRBY", "u8", "0", "100", "OVERFLOW", "SAT", "INCRBY", "u8", "8", "300")
    c("BITFIELD_RO", "b:bf", "GET", "u8", "0")
    c("SETBIT", "b:1", "1", "2")

    # -- lists
    c("RPUSH", "l:1", "a", "b", "c", "d", "e")
    c("LPUSH", "l:1", "z")
    c("LPUSHX", "l:none", "x")
    c("RPUSHX", "l:1", "f")
    c("LRANGE", "l:1", "0", "-1")
    c("LLEN", "l:1")
    c("LINDEX", "l:1", "2")
    c("LSET", "l:1", "0", "zz")
    c("LINSERT", "l:1", "BEFORE", "c", "bb")
    c("LREM", "l:1", "0", "bb")
    c("LPOS", "l:1", "d")
    c("LPOP", "l:1", "2")
    c("RPOP", "l:1")
    c("LTRIM", "l:1", "0", "1")
    c("LRANGE", "l:1", "0", "-1")
    c("OBJECT", "ENCODING", "l:1")
    c("LMOVE", "l:1", "l:2", "LEFT", "RIGHT")
    c("RPOPLPUSH", "l:1", "l:2")
    c("LRANGE", "l:2", "0", "-1")
    c("LMPOP", "2", "l:none", "l:2", "LEFT", "COUNT", "1")
    c("EXISTS", "l:1")
    c("LSET", "l:none", "0", "x")
    g("l:2")  # WRONGTYPE
    w("SET", "l:dst", "a string")
    c("LMOVE", "l:2", "l:dst", "LEFT", "LEFT")  # WRONGTYPE: the destination is a string
    g("l:dst")
    c("RPUSH", "l:sort", "3", "10", "1", "2")
    c("SORT", "l:sort")
    c("SORT", "l:sort", "DESC", "LIMIT", "0", "2")
    c("SORT", "l:sort", "ALPHA")
    c("SORT_RO", "l:sort")
    w("SET", "l:sorted", "cached string")
    w("SORT", "l:sort", "STORE", "l:sorted")  # the cached string becomes a list: GET -> WRONGTYPE
    c("LRANGE", "l:sorted", "0", "-1")

    # -- hashes
    c("HSET", "h:1", "f1", "v1", "f2", "v2", "n", "5")
    c("HGET", "h:1", "f1")
    c("HMGET", "h:1", "f1", "nope", "f2")
    c("HGETALL", "h:1")
    c("HINCRBY", "h:1", "n", "10")
    c("HINCRBYFLOAT", "h:1", "n", "0.5")
    c("HSETNX", "h:1", "f1", "x")
    c("HSETNX", "h:1", "f3", "v3")
    c("HEXISTS", "h:1", "f3")
    c("HDEL", "h:1", "f3", "nope")
    c("HLEN", "h:1")
    c("HKEYS", "h:1")
    c("HVALS", "h:1")
    c("HSTRLEN", "h:1", "f2")
    c("HSCAN", "h:1", "0")
    c("OBJECT", "ENCODING", "h:1")
    c("HINCRBY", "h:1", "f1", "1")
    c("HSET", "h:1", "odd")
    g("h:1")

    # -- sets (same process in both runs: same hash seed, same member order)
    c("SADD", "t:1", "a", "b", "c", "d")
    c("SADD", "t:2", "c", "d", "e")
    c("SADD", "t:int", "3", "1", "2")
    c("SMEMBERS", "t:int")
    c("OBJECT", "ENCODING", "t:int")
    c("SMEMBERS", "t:1")
    c("SISMEMBER", "t:1", "a")
    c("SMISMEMBER", "t:1", "a", "x")
    c("SCARD", "t:1")
    c("SINTER", "t:1", "t:2")
    c("SINTERCARD", "2", "t:1", "t:2")
    c("SUNION", "t:1", "t:2")
    c("SDIFF", "t:1", "t:2")
    w("SET", "t:store", "cached")
    w("SINTERSTORE", "t:store", "t:1", "t:2")
    c("SMEMBERS", "t:store")
    c("SUNIONSTORE", "t:u", "t:1", "t:2")
    c("SDIFFSTORE", "t:d", "t:1", "t:2")
    c("SMOVE", "t:1", "t:2", "a")
    c("SREM", "t:1", "b", "zz")
    c("SMEMBERS", "t:2")
    c("SPOP", "t:store", "5")  # two members: all of them, in dict order

    # -- sorted sets
    c("ZADD", "z:1", "1", "one", "2", "two", "3", "three")
    c("ZADD", "z:2", "10", "two", "20", "four")
    c("ZADD", "z:1", "XX", "CH", "1.5", "one", "9", "nine")
    c("ZINCRBY", "z:1", "0.25", "two")
    c("ZSCORE", "z:1", "two")
    c("ZMSCORE", "z:1", "one", "none")
    c("ZRANK", "z:1", "three")
    c("ZREVRANK", "z:1", "three")
    c("ZRANGE", "z:1", "0", "-1", "WITHSCORES")
    c("ZRANGE", "z:1", "(1.5", "+inf", "BYSCORE", "LIMIT", "0", "1")
    c("ZRANGEBYSCORE", "z:1", "-inf", "2.5")
    c("ZREVRANGE", "z:1", "0", "0")
    c("ZRANGEBYLEX", "z:2", "-", "+")
    c("ZCOUNT", "z:1", "1", "3")
    c("ZCARD", "z:1")
    w("SET", "z:u", "cached")
    w("ZUNIONSTORE", "z:u", "2", "z:1", "z:2", "WEIGHTS", "1", "2")
    c("ZRANGE", "z:u", "0", "-1", "WITHSCORES")
    c("ZINTERSTORE", "z:i", "2", "z:1", "z:2", "AGGREGATE", "MAX")
    c("ZRANGE", "z:i", "0", "-1", "WITHSCORES")
    c("ZUNION", "2", "z:1", "z:2")
    c("ZDIFF", "2", "z:1", "z:2", "WITHSCORES")
    w("SET", "z:rs", "cached")
    w("ZRANGESTORE", "z:rs", "z:1", "0", "1")
    c("ZRANGE", "z:rs", "0", "-1")
    c("ZPOPMIN", "z:1")
    c("ZPOPMAX", "z:1", "2")
    c("ZREM", "z:1", "two", "nope")
    c("ZREMRANGEBYSCORE", "z:2", "0", "15")
    c("ZRANGE", "z:2", "0", "-1", "WITHSCORES")
    c("OBJECT", "ENCODING", "z:2")
    c("ZADD", "z:1", "notafloat", "x")
    c("ZADD", "z:1", "NX", "XX", "1", "x")

    # -- streams (explicit ids: no clock)
    c("XADD", "x:1", "1-1", "f", "v1")
    c("XADD", "x:1", "2-1", "f", "v2", "g", "w2")
    c("XADD", "x:1", "3-1", "f", "v3")
    c("XADD", "x:1", "2-0", "f", "too small")
    c("XLEN", "x:1")
    c("XRANGE", "x:1", "-", "+")
    c("XREVRANGE", "x:1", "+", "-", "COUNT", "1")
    c("XRANGE", "x:1", "(1-1", "+")
    c("XREAD", "COUNT", "2", "STREAMS", "x:1", "0")
    c("XGROUP", "CREATE", "x:1", "grp", "0")
    c("XGROUP", "CREATE", "x:1", "grp", "0")
    c("XREADGROUP", "GROUP", "grp", "alice", "COUNT", "2", "STREAMS", "x:1", ">")
    c("XREADGROUP", "GROUP", "grp", "bob", "STREAMS", "x:1", ">")
    c("XACK", "x:1", "grp", "1-1", "9-9")
    c("XPENDING", "x:1", "grp")
    c("XREADGROUP", "GROUP", "grp", "alice", "STREAMS", "x:1", "0")
    c("XDEL", "x:1", "2-1")
    c("XTRIM", "x:1", "MAXLEN", "1")
    c("XRANGE", "x:1", "-", "+")
    c("XREAD", "STREAMS", "x:1", "x:none", "0", "0")
    g("x:1")

    # -- HyperLogLog (a string inside: GET returns its bytes, and is cached)
    w("PFADD", "p:1", "a", "b", "c")
    w("PFADD", "p:1", "c", "d")
    c("PFCOUNT", "p:1")
    c("PFADD", "p:2", "x", "y")
    w("PFMERGE", "p:m", "p:1", "p:2")
    c("PFCOUNT", "p:m")
    c("SET", "p:bad", "not a hll")
    c("PFADD", "p:bad", "x")

    # -- geo
    c("GEOADD", "geo:1", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania")
    c("GEOADD", "geo:1", "12.496366", "41.902782", "Rome")
    c("GEODIST", "geo:1", "Palermo", "Catania", "km")
    c("GEOPOS", "geo:1", "Palermo", "Nowhere")
    c("GEOHASH", "geo:1", "Rome")
    c("GEOSEARCH", "geo:1", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC", "WITHDIST", "WITHCOORD")
    c("GEOSEARCH", "geo:1", "FROMMEMBER", "Rome", "BYBOX", "1000", "1000", "km", "DESC", "COUNT", "2")
    w("SET", "geo:store", "cached")
    w("GEOSEARCHSTORE", "geo:store", "geo:1", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC")
    c("ZRANGE", "geo:store", "0", "-1")
    c("GEOSEARCHSTORE", "geo:dist", "geo:1", "FROMMEMBER", "Palermo", "BYRADIUS", "500", "km", "ASC", "STOREDIST")
    c("ZRANGE", "geo:dist", "0", "-1", "WITHSCORES")
    c("GEOADD", "geo:1", "200", "100", "bad")

    # -- keys
    c("EXISTS", "s:n", "s:none", "s:n")
    c("TYPE", "s:n")
    c("TYPE", "l:2")
    c("TYPE", "h:1")
    c("TYPE", "t:1")
    c("TYPE", "z:1")
    c("TYPE", "x:1")
    c("TYPE", "nothing")
    w("SET", "k:1", "first")
    w("EXPIRE", "k:1", "100")
    c("TTL", "k:1")
    w("PEXPIRE", "k:1", "200000")
    c("TTL", "k:1")
    w("PERSIST", "k:1")
    c("TTL", "k:1")
    c("PTTL", "k:1")
    c("TTL", "k:missing")
    c("PTTL", "k:missing")
    c("EXPIRE", "k:1", "100", "NX")
    c("EXPIRE", "k:1", "100", "NX")
    c("EXPIRE", "k:1", "abc")
    w("PERSIST", "k:1")
    w("SET", "k:2", "second")
    w("RENAME", "k:1", "k:2", get=["k:1", "k:2"])
    c("RENAME", "k:missing", "k:3")
    w("SET", "k:3", "third")
    w("RENAMENX", "k:2", "k:3", get=["k:2", "k:3"])
    w("COPY", "k:2", "k:3", get=["k:3"])
    w("COPY", "k:2", "k:3", "REPLACE", get=["k:3"])
    w("SET", "k:4", "fourth")
    c("DUMP", "k:4", save="dump")
    w("RESTORE", "k:3", "0", lambda ctx: ctx["dump"], get=["k:3"])  # BUSYKEY
    w("RESTORE", "k:3", "0", lambda ctx: ctx["dump"], "REPLACE", get=["k:3"])
    w("RESTORE", "k:5", "0", lambda ctx: ctx["dump"])
    c("RESTORE", "k:6", "0", "not a payload")
    w("DEL", "k:3", "k:5", "k:none", get=["k:3", "k:5"])
    w("UNLINK", "k:4")
    c("SET", "k:touch", "t")
    c("TOUCH", "k:touch", "k:none")
    w("PEXPIREAT", "k:touch", "1")  # in the past: deleted at once
    c("EXISTS", "k:touch")
    w("SET", "k:gone", "soon")
    w("EXPIRE", "k:gone", "-1")
    c("OBJECT", "ENCODING", "k:none")
    c("OBJECT", "NOSUCH", "k:2")

    # -- databases: the same key in several databases; MOVE, COPY DB, SWAPDB
    w("SET", "db:k", "zero")
    c("SELECT", "1")
    g("db:k")
    w("SET", "db:k", "one")
    c("SELECT", "2")
    w("SET", "db:k", "two")
    c("SELECT", "1")
    g("db:k", "db:k")
    c("SELECT", "0")
    g("db:k", "db:k")
    w("SET", "db:mv", "moving")
    w("MOVE", "db:mv", "3", get=["db:mv"])
    c("SELECT", "3")
    g("db:mv", "db:mv")
    w("COPY", "db:mv", "db:cp", "DB", "2")
    c("SELECT", "2")
    g("db:cp", "db:k")
    w("SET", "db:cp", "overwritten in 2")
    c("SELECT", "3")
    w("COPY", "db:mv", "db:cp", "DB", "2", "REPLACE", get=["db:mv"])
    c("SELECT", "2")
    g("db:cp", "db:cp")
    c("SELECT", "0")
    c("SWAPDB", "0", "2")
    g("db:k", "db:cp", "db:k")
    c("SWAPDB", "0", "2")
    g("db:k", "db:k")
    c("SELECT", "4")
    w("SET", "db:only4", "four")
    c("FLUSHDB")
    g("db:only4")
    c("DBSIZE")
    c("SELECT", "16")
    c("SELECT", "-1")
    c("SELECT", "notanumber")
    g("db:k")
    c("SELECT", "0")
    c("MOVE", "db:k", "0")

    # -- key listing, in a database of its own
    c("SELECT", "9")
    c("MSET", "ka", "1", "kb", "2", "kc", "3", "kd", "4", "ke", "5", "kf", "6")
    c("SADD", "kset", "m")
    c("KEYS", "*")
    c("KEYS", "k[a-c]")
    c("SCAN", "0", "COUNT", "100")
    c("SCAN", "0", "MATCH", "k?", "COUNT", "100", "TYPE", "string")
    c("DBSIZE")
    c("SELECT", "0")

    # -- scripting and functions
    c("SCRIPT", "LOAD", "return redis.call('GET', KEYS[1])", save="sha_get")
    c("SCRIPT", "LOAD", "return redis.call('SET', KEYS[1], ARGV[1])", save="sha_set")
    c("SCRIPT", "EXISTS", lambda ctx: ctx["sha_get"], "0000000000000000000000000000000000000000")
    w("SET", "sc:k", "before script")
    c("EVALSHA", lambda ctx: ctx["sha_get"], "1", "sc:k")
    w("EVALSHA", lambda ctx: ctx["sha_set"], "1", "sc:k", "set by evalsha", get=["sc:k"])
    w("EVAL", "return redis.call('APPEND', KEYS[1], ARGV[1])", "1", "sc:k", "+eval", get=["sc:k"])
    c("EVAL", "return {1, 'two', {3, 'four'}, redis.status_reply('OK'), false}", "0")
    c("EVAL", "return redis.error_reply('MY custom error')", "0")
    c("EVAL", "return redis.call('INCR', KEYS[1])", "1", "sc:k")
    c("EVAL", "this is not lua", "0")
    c("EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "sc:k")
    c("EVAL_RO", "return redis.call('SET', KEYS[1], 'x')", "1", "sc:k")
    c("EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0")
    c("EVALSHA", "nosuchsha", "0")
    c("FUNCTION", "LOAD", "#!lua name=compatlib\n"
      "redis.register_function('getit', function(keys, args) return redis.call('GET', keys[1]) end)\n"
      "redis.register_function{function_name='setit', callback=function(keys, args) "
      "return redis.call('SET', keys[1], args[1]) end}\n"
      "redis.register_function{function_name='ro', callback=function(keys, args) return #keys end, "
      "flags={'no-writes'}}")
    c("FUNCTION", "LOAD", "#!lua name=compatlib\nredis.register_function('x', function() return 1 end)")
    c("FCALL", "getit", "1", "sc:k")
    w("FCALL", "setit", "1", "sc:k", "set by fcall", get=["sc:k"])
    c("FCALL_RO", "ro", "2", "a", "b")
    c("FCALL", "nosuchfunction", "0")
    c("FUNCTION", "LIST", "LIBRARYNAME", "compatlib")

    # -- errors
    c("NOSUCHCOMMAND")
    c("NOSUCHCOMMAND", "with", "args")
    c("nosuchcommand", "x" * 200)
    c("GET")
    c("GET", "a", "b")
    c("SET", "only-key")
    c("LPUSH", "l:x")
    c("HSET", "h:x", "f")
    c("ZADD", "z:x", "1")
    c("XADD", "x:x", "1-1")
    c("CONFIG", "NOSUCH")
    c("CLIENT", "NOSUCH")
    c("CLIENT", "GETNAME", "extra")
    c("PING", "a", "b")
    c("ECHO")
    c("ECHO", "a", "b")
    c("SELECT")
    c("AUTH", "nopassword")
    c("AUTH", "someone", "wrong")
    c("get", "s:n")
    c("gEt", "s:n")
    c("PING")
    c("PING", "with an argument")
    c("ECHO", b"echo \x00 binary \r\n")
    c("COMMAND", "COUNT")
    c("CONFIG", "GET", "databases")
    c("EXISTS", "s:n")

    # -- CLIENT SETNAME/GETNAME, CLIENT REPLY
    c("CLIENT", "GETNAME")
    c("CLIENT", "SETNAME", "compat-client")
    c("CLIENT", "GETNAME")
    c("CLIENT", "SETNAME", "bad name")
    c("CLIENT", "GETNAME")
    c("CLIENT", "SETNAME", "")
    c("CLIENT", "GETNAME")
    c("CLIENT", "NO-EVICT", "on")
    c("CLIENT", "NO-EVICT", "maybe")
    c("CLIENT", "REPLY", "SKIP", replies=0)
    c("SET", "cr:k", "skipped reply", replies=0)
    g("cr:k")
    c("CLIENT", "REPLY", "OFF", replies=0)
    c("SET", "cr:k", "no reply", replies=0)
    c("GET", "cr:k", replies=0)
    c("CLIENT", "REPLY", "ON")
    g("cr:k", "cr:k")

    # -- HELLO (difference 1: the id is normalized); PROTO is the run's protocol, OTHER_PROTO the other one
    c("HELLO", normalize=hello_id)
    c("HELLO", PROTO, normalize=hello_id)
    c("HELLO", PROTO, "SETNAME", "hello-name", normalize=hello_id)
    c("CLIENT", "GETNAME")
    c("HELLO", PROTO, "AUTH", "default", "any-password-works-without-requirepass", normalize=hello_id)
    c("HELLO", PROTO, "AUTH", "nosuchuser", "pw")
    c("HELLO", "4")
    c("HELLO", "1")
    c("HELLO", "0")
    c("HELLO", "two")
    c("HELLO", PROTO, "NOSUCHOPTION")
    c("HELLO", PROTO, "SETNAME")
    g("s:n")
    # An excursion to the other protocol and back: nulls, maps and the HELLO reply change form.
    c("HELLO", OTHER_PROTO, normalize=hello_id)
    g("s:none", "s:n", "s:n")
    c("HGETALL", "h:1")
    c("ZRANGE", "z:u", "0", "1", "WITHSCORES")
    c("CLIENT", "GETNAME")
    c("HELLO", OTHER_PROTO, "NOSUCHOPTION")  # refused: the protocol stays
    c("HELLO", normalize=hello_id)
    c("HELLO", PROTO, normalize=hello_id)
    g("s:none", "s:n")
    c("HGETALL", "h:1")

    # -- MULTI / EXEC / DISCARD / WATCH
    w("SET", "tx:k", "before")
    c("MULTI")
    c("SET", "tx:k", "in transaction")
    c("GET", "tx:k")
    c("INCR", "tx:n")
    c("PING")
    c("ECHO", "echo in multi")
    c("LPUSH", "tx:l", "a")
    c("GET", "tx:l")  # WRONGTYPE at EXEC, the others still run
    c("EXEC")
    g("tx:k", "tx:k", "tx:n")
    c("MULTI")
    c("SET", "tx:k", "discarded")
    c("DISCARD")
    g("tx:k")
    c("MULTI")
    c("MULTI")  # nested: an error, the transaction goes on
    c("SET", "tx:k", "after nested")
    c("EXEC")
    g("tx:k")
    c("MULTI")
    c("SET", "tx:k", "never")
    c("SET", "tx:k")  # wrong arity: EXECABORT
    c("NOSUCHCOMMAND")
    c("EXEC")
    g("tx:k", "tx:k")
    c("EXEC")
    c("DISCARD")
    c("MULTI")
    c("SELECT", "5")
    c("SET", "tx:db", "in five")
    c("GET", "tx:db")
    c("EXEC")
    g("tx:db", "tx:db")  # the connection is in db 5 now
    c("SELECT", "0")
    g("tx:db")
    c("MULTI")
    c("WATCH", "tx:k")
    c("DISCARD")
    # WATCH, then a write from a second connection: EXEC aborts (nil).
    w("WATCH", "tx:k")
    w("SET", "tx:k", "changed by b", conn="b")
    c("MULTI")
    c("SET", "tx:k", "lost")
    c("EXEC")
    g("tx:k", "tx:k")
    # WATCH without interference: EXEC runs.
    c("WATCH", "tx:k", "tx:other")
    g("tx:k")
    c("MULTI")
    c("APPEND", "tx:k", "+watched")
    c("EXEC")
    g("tx:k", "tx:k")
    c("WATCH", "tx:k")
    c("UNWATCH")
    c("SET", "tx:k", "changed by b again", conn="b")
    c("MULTI")
    c("SET", "tx:k", "kept")
    c("EXEC")
    g("tx:k", "tx:k")
    c("GET", "tx:k", conn="b")
    c("UNWATCH")

    # -- blocking commands with short timeouts, and data pushed from a second connection
    c("BLPOP", "bl:empty", "0.1")
    c("BRPOP", "bl:empty", "bl:empty2", "0.1")
    c("RPUSH", "bl:q", "x", "y")
    c("BLPOP", "bl:none", "bl:q", "1")
    c("BRPOP", "bl:q", "1")
    c("BLMOVE", "bl:empty", "bl:dst", "LEFT", "RIGHT", "0.1")
    c("BRPOPLPUSH", "bl:empty", "bl:dst", "0.1")
    c("BZPOPMIN", "bl:zempty", "0.1")
    c("BLMPOP", "0.1", "1", "bl:empty", "LEFT")
    c("XREAD", "BLOCK", "100", "STREAMS", "x:1", "$")
    c("BLPOP", "bl:q", "notanumber")
    c("BLPOP", "bl:q", "-1")
    # timeouts too large to count in milliseconds: respcache sets no bound of its own, Redis answers
    c("BLPOP", "bl:q", "inf")
    c("BLPOP", "bl:q", "1e300")
    c("BLMPOP", "inf", "1", "bl:q", "LEFT")
    c("BZPOPMIN", "bl:zempty", "-inf")
    s.send("BLPOP", "bl:later", "2")
    c("RPUSH", "bl:later", "pushed by b", conn="b")
    s.read()
    s.send("BLMOVE", "bl:src", "bl:dst", "RIGHT", "LEFT", "2")
    c("LPUSH", "bl:src", "moved", conn="b")
    s.read()
    c("LRANGE", "bl:dst", "0", "-1")
    s.send("BZPOPMAX", "bl:z", "2")
    c("ZADD", "bl:z", "1", "m", conn="b")
    s.read()
    w("SET", "bl:k", "after blocking")

    # -- pub/sub commands that do not subscribe
    c("UNSUBSCRIBE")
    c("UNSUBSCRIBE", "never", "subscribed", replies=2)
    c("PUNSUBSCRIBE")
    c("PUBLISH", "nobody", "listens")
    c("PUBSUB", "NUMSUB", "nobody")

    # -- RESET and QUIT
    c("SELECT", "3")
    c("CLIENT", "SETNAME", "before-reset")
    c("MULTI")
    c("SET", "db:mv", "queued before reset")
    c("RESET")
    c("CLIENT", "GETNAME")
    g("db:mv", "db:k")  # db 0 again, the transaction discarded
    c("EXEC")
    c("SELECT", "3")
    g("db:mv")
    c("WATCH", "db:mv")
    c("RESET")
    w("SET", "s:after-reset", "ok")
    c("SELECT", "2")
    s.quit()
    g("db:k", "db:k")  # a new connection: db 0
    c("QUIT", "with", "arguments")  # Redis ignores them (QUIT has arity -1)
    s.steps[-1].quit = True
    c("PING")
    g("s:n", "s:after-reset")
    s.quit(conn="b")
    return s


def build_pubsub_session() -> Script:
    s = Script()
    c, w, g = s.c, s.w, s.g
    w("SET", "ps:k", "before")
    c("SUBSCRIBE", "ch:1", "ch:2", replies=2)
    c("PUBLISH", "ch:1", "hello", conn="b")
    c("PUBLISH", "ch:3", "nobody", conn="b")
    s.read()
    c("PING")
    c("PING", "in subscribed mode")
    # Ordinary commands while subscribed: refused in RESP2, run in RESP3 (and the SET must invalidate the
    # cached ps:k: the GETs after the subscription ends see it).
    c("GET", "ps:k")
    c("SET", "ps:k", "set while subscribed")
    c("GET", "ps:k")
    c("ECHO", "while subscribed")
    c("HGETALL", "ps:nohash")
    c("PUBLISH", "ch:2", "between commands", conn="b")
    c("GET", "ps:k", replies=2)  # the message, then the reply (RESP3), or the message and the error (RESP2)
    c("PUBLISH", "ch:1", "before a ping", conn="b")
    c("PING", replies=2)
    c("PSUBSCRIBE", "pat:*")
    c("PUBLISH", "pat:x", "by pattern", conn="b")
    c("PUBLISH", "ch:2", "two", conn="b")
    s.read(2)
    c("SUBSCRIBE", "ch:1")
    c("UNSUBSCRIBE", "ch:1")
    c("PUNSUBSCRIBE", "pat:*")
    c("PUBSUB", "NUMSUB", "ch:1", "ch:2", conn="b")
    c("UNSUBSCRIBE")  # the last one: back to normal mode
    g("ps:k")
    w("SET", "ps:k", "after", conn="b")
    g("ps:k", "ps:k")
    w("APPEND", "ps:k", "+a")
    c("SUBSCRIBE", "ch:again")
    c("PUBLISH", "ch:again", "again", conn="b")
    s.read()
    c("RESET")
    g("ps:k")
    c("SUBSCRIBE", "ch:quit")
    s.quit()
    g("ps:k")
    c("PSUBSCRIBE", "p1", "p2", replies=2)
    c("PUNSUBSCRIBE", replies=2)
    g("ps:k")
    return s


# ---------------------------------------------------------------------------------------------------
# The two protocols.

MISSING_KEY = "compat:missing"  # never written


def for_protocol(script: Script, proto: int) -> Script:
    """The session as run in `proto`: PROTO / OTHER_PROTO arguments resolved and, for RESP3, `HELLO 3` (its
    reply compared too) sent first on every connection, on every connection opened again after QUIT, and
    after every RESET (preceded by a GET of a missing key, which must answer RESP2's `$-1`)."""
    assert proto in (2, 3)
    out = Script()
    opened: set = set()

    def hello3(conn: str):
        out.steps.append(Step(conn, ("HELLO", "3"), normalize=hello_id, added=True))

    for step in script.steps:
        args = tuple(a.resolve(proto) if isinstance(a, _Proto) else a for a in step.args)
        if proto == 3 and step.conn not in opened:
            assert args, f"the first step on connection {step.conn!r} is a read"
            hello3(step.conn)
        opened.add(step.conn)
        out.steps.append(Step(step.conn, args, step.replies, step.save, step.quit, step.normalize))
        if step.quit:
            opened.discard(step.conn)
        elif proto == 3 and args and str(args[0]).upper() == "RESET":
            assert step.replies == 1, step
            out.steps.append(Step(step.conn, ("GET", MISSING_KEY), added=True))
            hello3(step.conn)
    return out


# ---------------------------------------------------------------------------------------------------
# Running and comparing.

@dataclass
class Record:
    index: int
    conn: str
    label: str
    raw: bytes


def _label(args) -> str:
    parts = []
    for a in args:
        if callable(a):
            parts.append("<saved>")
            continue
        text = a.decode("latin-1") if isinstance(a, bytes) else str(a)
        parts.append(text if len(text) <= 40 else text[:37] + "...")
    return " ".join(repr(p) if (" " in p or "\n" in p or not p) else p for p in parts)


def run_session(port: int, script: Script) -> List[Record]:
    conns: Dict[str, RawClient] = {}
    saved: dict = {}
    records: List[Record] = []

    def conn(name: str) -> RawClient:
        if name not in conns:
            conns[name] = RawClient(port, timeout=READ_TIMEOUT)
        return conns[name]

    try:
        for i, step in enumerate(script.steps):
            cl = conn(step.conn)
            if step.args:
                args = [a(saved) if callable(a) else a for a in step.args]
                cl.send_command(*args)
            label = _label(step.args) if step.args else "(read)"
            for k in range(step.replies):
                try:
                    value, raw = cl._next()
                except (OSError, EOFError) as e:  # socket.timeout is an OSError
                    records.append(Record(i, step.conn, label, f"<no reply: {type(e).__name__}>".encode()))
                    raise _Stop() from None
                if step.normalize is not None:
                    raw = step.normalize(raw)
                if step.save is not None:
                    saved[step.save] = value
                records.append(Record(i, step.conn, label if k == 0 else label + f" (reply {k + 1})", raw))
            if step.quit:
                try:
                    rest = cl.read_until_eof()
                    records.append(Record(i, step.conn, label + " (then)", b"<closed>" + rest))
                except OSError as e:
                    records.append(Record(i, step.conn, label + " (then)", f"<not closed: {e!r}>".encode()))
                cl.close()
                del conns[step.conn]
    except _Stop:
        pass
    finally:
        for cl in conns.values():
            cl.close()
    return records


class _Stop(Exception):
    pass


def _show(raw: bytes, limit: int = 300) -> str:
    text = repr(raw)
    return text if len(text) <= limit else text[:limit] + f"... ({len(raw)} bytes)"


def diff_report(direct: List[Record], proxied: List[Record], limit: int = 25) -> str:
    lines = []
    n = max(len(direct), len(proxied))
    shown = 0
    for i in range(n):
        d = direct[i] if i < len(direct) else None
        p = proxied[i] if i < len(proxied) else None
        if d is not None and p is not None and d.raw == p.raw and d.label == p.label:
            continue
        shown += 1
        if shown > limit:
            lines.append(f"... and more differences (showing the first {limit})")
            break
        ref = d or p
        lines.append(f"step {ref.index} [{ref.conn}] {ref.label}")
        lines.append(f"    redis:     {_show(d.raw) if d else '<missing>'}")
        lines.append(f"    respcache: {_show(p.raw) if p else '<missing>'}")
    return "\n".join(lines)


def reset_redis(port: int):
    with RawClient(port) as c:
        assert c.command("FLUSHALL") == b"OK"
        assert c.command("SCRIPT", "FLUSH") == b"OK"
        assert c.command("FUNCTION", "FLUSH") == b"OK"


def proxy_cache_hits(port: int) -> int:
    with RawClient(port) as c:
        text = c.command("INFO", "proxy")
    m = re.search(rb"cache_hits:(\d+)", text)
    assert m, text
    return int(m.group(1))


def compare(respcache, redis_server, script: Script, extra_args: Sequence[str] = ()) -> Tuple[list, list, object]:
    """`script` (already resolved by for_protocol) against Redis direct, then through a fresh respcache in
    front of the same Redis; every reply must be byte-identical."""
    assert not any(isinstance(a, _Proto) for st in script.steps for a in st.args), "resolve with for_protocol"
    direct = run_session(redis_server.port, script)
    reset_redis(redis_server.port)
    proxy = respcache.start(extra_args=list(extra_args), backend=redis_server)
    proxied = run_session(proxy.port, script)
    report = diff_report(direct, proxied)
    assert not report, (f"{len(script.steps)} steps, {script.commands} commands: replies through respcache differ "
                        f"from Redis's:\n{report}")
    return direct, proxied, proxy


def _proto_of(raw: bytes) -> Optional[int]:
    """2 or 3 for a (normalized) HELLO reply, else None."""
    m = re.search(rb"\$5\r\nproto\r\n:(\d)\r\n", raw)
    return int(m.group(1)) if m and _HELLO_HEAD.match(raw) else None


def check_protocol_was_used(direct: List[Record], proto: int):
    """The direct run really spoke `proto`: its HELLO replies say so, and (RESP3) some RESP3-only types came."""
    hellos = [_proto_of(r.raw) for r in direct if r.label.startswith("HELLO") and _proto_of(r.raw)]
    assert hellos and hellos[0] == proto, hellos
    if proto == 3:
        kinds = {r.raw[:1] for r in direct}
        for kind in (b"%", b"_", b",", b">"):
            assert kind in kinds, f"no {kind!r} reply in the RESP3 run: {sorted(kinds)}"


# ---------------------------------------------------------------------------------------------------
# The tests.


PROTOCOLS = [pytest.param(2, id="resp2"), pytest.param(3, id="resp3")]


def test_session_sizes():
    main = build_main_session()
    # MIN_COMMANDS counts the session as written; the RESP3 run adds only its HELLO 3 preludes (and the
    # GET after each RESET) on top of the same commands.
    assert main.commands >= MIN_COMMANDS, f"the main session has only {main.commands} commands"
    assert build_pubsub_session().commands >= 30
    for build in (build_main_session, build_pubsub_session):
        base = build()
        resp2, resp3 = for_protocol(base, 2), for_protocol(base, 3)
        assert resp2.commands == resp2.own_commands == resp3.own_commands == base.commands
        preludes = sum(1 for st in resp3.steps if st.added and st.args[0] == "HELLO")
        resets = sum(1 for st in base.steps if st.args and str(st.args[0]).upper() == "RESET")
        conns = {st.conn for st in base.steps}
        reopened = sum(1 for i, st in enumerate(base.steps)
                       if st.quit and any(later.conn == st.conn for later in base.steps[i + 1:]))
        assert resp3.commands == base.commands + preludes + resets
        # one per connection, per connection opened again after QUIT, per RESET
        assert preludes == len(conns) + reopened + resets, (preludes, conns, reopened, resets)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("invalidation", ["tracking", "ttl"])
def test_main_session_replies_are_byte_identical(respcache, redis_server, invalidation, proto):
    script = for_protocol(build_main_session(), proto)
    direct, proxied, proxy = compare(respcache, redis_server, script, ["--invalidation", invalidation])
    assert script.own_commands >= MIN_COMMANDS
    print(f"RESP{proto}: {script.own_commands} commands of the session ({script.commands} with the RESP3 "
          f"preludes), {len(direct)} replies compared")
    check_protocol_was_used(direct, proto)
    # The direct run is sane (not a session of errors), and the cache was exercised.
    errors = sum(1 for r in direct if r.raw.startswith(b"-"))
    assert 40 <= errors <= len(direct) // 3, f"{errors} error replies of {len(direct)}"
    hits = proxy_cache_hits(proxy.port)
    print(f"{invalidation}: {hits} cache hits")
    # About 96 of the session's GETs can be hits, and are in ttl mode. In tracking mode an invalidation of an
    # earlier write may still be on its way (or waiting in the channel's socket) when a GET comes, and
    # respcache then asks Redis: correct, with fewer hits (50 to 96 seen on a loaded 2-core machine).
    floor = 80 if invalidation == "ttl" else 20
    assert hits >= floor, f"only {hits} cache hits through the session"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("proto", PROTOCOLS)
def test_pubsub_session_replies_are_byte_identical(respcache, redis_server, proto):
    script = for_protocol(build_pubsub_session(), proto)
    direct, _, _ = compare(respcache, redis_server, script)
    if proto == 3:
        assert sum(1 for r in direct if r.raw.startswith(b">")) >= 15, "too few pushes in the RESP3 run"
