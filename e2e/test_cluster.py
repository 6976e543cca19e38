"""Redis Cluster behind respcache (issue 14): `--backend redis+cluster://127.0.0.1:P1,127.0.0.1:P2` with a
plain client (redis-py `redis.Redis`, raw RESP, redis-cli without -c) that must get what it would get
from one Redis holding the whole data set, and never see MOVED or ASK.

Each test runs against the module's cluster (clusterlib: 3 masters + 3 replicas, emptied before each
test) and, where a reply comes from Redis, compares respcache's bytes with those of a standalone Redis
(conftest's `redis_server`, "one Redis") given the same commands; where cluster mode has its own answer
(CROSSSLOT, SELECT), with the bytes a cluster node gives itself. Where a key lives is checked directly
on the nodes (GET on the owner, CLUSTER COUNTKEYSINSLOT on the others).

Every wait is bounded; no assertion is about how long something took."""

from __future__ import annotations

import subprocess
import time
from typing import List

import pytest
import redis

from clusterlib import (REDIS_CLI, TRANSIENT_ERRORS, RedisCluster, SetGetLoad, redis_cluster,  # noqa: F401
                        redis_cluster_module, start_proxy)
from conftest import HOST, RawClient, RespReader, scaled, wait_until

CROSSSLOT = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
SELECT_REFUSED = b"-ERR SELECT is not allowed in cluster mode\r\n"


# ---------------------------------------------------------------------------------------------------
# Helpers.


def raw(conn: RawClient, *args) -> bytes:
    """Sends one command and returns the exact bytes of its reply."""
    conn.send_command(*args)
    return conn.read_raw_reply()


def no_redirect(reply: bytes, what):
    """A redirection must never reach the client, not even inside an array (EXEC)."""
    for marker in (b"-MOVED ", b"-ASK "):
        assert not reply.startswith(marker) and b"\r\n" + marker not in reply, \
            f"{what}: a redirection reached the client: {reply!r}"


def via(conn: RawClient, *args) -> bytes:
    """One command through respcache: its raw reply, checked for redirections."""
    reply = raw(conn, *args)
    no_redirect(reply, args)
    return reply


def same(proxy: RawClient, one: RawClient, *args) -> bytes:
    """Sends the command through respcache and to the standalone Redis; their bytes must be equal."""
    got = via(proxy, *args)
    want = raw(one, *args)
    assert got == want, f"{args!r}: respcache {got!r}, one Redis {want!r}"
    return got


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def parse(reply: bytes):
    """The value of one complete raw reply."""
    r = RespReader()
    r.feed(reply)
    value, _ = r.pop()
    assert not r.buf, f"more than one reply: {reply!r}"
    return value


def assert_only_on_owner(cluster: RedisCluster, key: str):
    """`key` is on the master that owns its slot and on no other master."""
    slot = cluster.keyslot(key)
    owner = cluster.slot_owner(slot)
    assert owner.command("EXISTS", key) == 1, f"{key} (slot {slot}) is not on its owner {owner}"
    for m in cluster.masters():
        if m is not owner:
            assert m.command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0, f"{m} holds keys of slot {slot} ({key})"


def keys_per_master(cluster: RedisCluster, n: int, prefix: str) -> List[List[str]]:
    """For each master, `n` keys `prefix:<i>` of its slots."""
    return [cluster.keys_on(m, n, prefix) for m in cluster.masters()]


def tag_on(cluster: RedisCluster, master, base: str) -> str:
    """A hash tag `{base<i>}` whose slot `master` serves."""
    owners = cluster.owners()
    for i in range(10000):
        tag = f"{{{base}{i}}}"
        if owners[cluster.keyslot(tag)] is master:
            return tag
    raise AssertionError(f"no tag {base}* on {master}")


def interleave(groups: List[List[str]]) -> List[str]:
    return [k for row in zip(*groups) for k in row]


@pytest.fixture
def proxy(respcache, redis_cluster):
    """respcache with default options in front of the cluster."""
    return start_proxy(respcache, redis_cluster)


@pytest.fixture
def one(redis_server):
    """A raw connection to a standalone Redis: what one Redis holding the whole data set answers."""
    with redis_server.raw() as c:
        yield c


# ---------------------------------------------------------------------------------------------------
# 1. Keys spread over every master.


def test_data_commands_on_keys_of_every_master(proxy, redis_cluster, one):
    """GET/SET/INCR/HSET/HGETALL/LPUSH/RPUSH/LRANGE (and Redis's errors for a wrong type) on keys of each
    master give one Redis's bytes; each key is then on the master owning its slot, and nowhere else."""
    cl = redis_cluster
    groups = keys_per_master(cl, 6, "data")
    assert len(groups) == 3
    written = []
    with proxy.raw() as c:
        for g, keys in enumerate(groups):
            s, n, h, lst, missing, hmissing = keys
            same(c, one, "SET", s, f"value of {s}")
            same(c, one, "GET", s)
            same(c, one, "GET", s)  # a second read (a hit, if cached) is the same
            for _ in range(3):
                same(c, one, "INCR", n)
            assert same(c, one, "GET", n) == b"$1\r\n3\r\n"
            same(c, one, "HSET", h, "f1", "v1", "f2", f"v2 of {h}", "f3", "")
            same(c, one, "HGETALL", h)
            same(c, one, "HGETALL", h)
            same(c, one, "HGET", h, "f2")
            same(c, one, "LPUSH", lst, "a", "b", "c")
            same(c, one, "RPUSH", lst, "z")
            same(c, one, "LRANGE", lst, 0, -1)
            same(c, one, "LRANGE", lst, 1, 2)
            assert same(c, one, "GET", missing) == b"$-1\r\n"
            same(c, one, "HGETALL", hmissing)
            same(c, one, "INCR", s)  # Redis's own error (not an integer), from the right node
            same(c, one, "HGETALL", s)  # WRONGTYPE
            written += [s, n, h, lst]
    # Where each key landed, asked of the nodes themselves: on its owner, holding what one Redis holds.
    for key in written:
        assert_only_on_owner(cl, key)
        owner = cl.node_for_key(key)
        read = {b"string": ("GET", key), b"hash": ("HGETALL", key), b"list": ("LRANGE", key, 0, -1)}[
            owner.command("TYPE", key)]
        assert owner.raw_command(*read) == raw(one, *read), f"{key} on {owner}"
    assert sum(m.dbsize() for m in cl.masters()) == len(written)
    for m, keys in zip(cl.masters(), groups):
        assert m.dbsize() == 4, f"{m} holds {m.dbsize()} keys, not the 4 of its slots"
        assert m.raw_command("GET", keys[0]) == bulk(f"value of {keys[0]}".encode())
        assert m.raw_command("LRANGE", keys[3], 0, -1) == b"*4\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nz\r\n"
        assert m.raw_command("HGET", keys[2], "f2") == bulk(f"v2 of {keys[2]}".encode())


def test_redis_py_and_redis_cli_as_plain_clients(proxy, redis_cluster):
    """A plain redis.Redis (no cluster support) and redis-cli without -c, on keys of every master."""
    cl = redis_cluster
    r = proxy.client()
    keys = [k for ks in keys_per_master(cl, 3, "plain") for k in ks]
    for k in keys:
        assert r.set(k, f"v-{k}") is True
    for k in keys:
        assert r.get(k) == f"v-{k}".encode()
        assert cl.node_for_key(k).client().get(k) == f"v-{k}".encode()
    assert r.incrby(keys[0] + ":n", 5) == 5
    for k in keys:
        out = subprocess.run([REDIS_CLI, "-h", HOST, "-p", str(proxy.port), "GET", k], capture_output=True,
                             text=True, timeout=scaled(10), stdin=subprocess.DEVNULL)
        assert out.returncode == 0 and out.stdout == f"v-{k}\n", (out.stdout, out.stderr)


# ---------------------------------------------------------------------------------------------------
# 2. Hash tags.


def test_hash_tags_keep_keys_together(proxy, redis_cluster, one):
    """{user1}:a and {user1}:b land in one slot of one node; a tag on each master keeps its keys there, and
    commands within the tag's slot (MGET, RENAME) give one Redis's bytes."""
    cl = redis_cluster
    assert cl.keyslot("{user1}:a") == cl.keyslot("{user1}:b") == cl.keyslot("user1")
    with proxy.raw() as c:
        same(c, one, "SET", "{user1}:a", "A")
        same(c, one, "SET", "{user1}:b", "B")
        same(c, one, "MGET", "{user1}:a", "{user1}:b", "{user1}:none")
        owner = cl.node_for_key("{user1}:a")
        assert owner.raw_command("GET", "{user1}:a") == b"$1\r\nA\r\n"
        assert owner.raw_command("GET", "{user1}:b") == b"$1\r\nB\r\n"
        assert owner.command("CLUSTER", "COUNTKEYSINSLOT", cl.keyslot("user1")) == 2
        assert_only_on_owner(cl, "{user1}:a")
        # One tag per master: each pair goes to its tag's master, and same-slot commands work there.
        for m in cl.masters():
            tag = tag_on(cl, m, "t")
            same(c, one, "SET", f"{tag}:a", "1")
            same(c, one, "SET", f"{tag}:b", "2")
            same(c, one, "RENAME", f"{tag}:a", f"{tag}:c")
            same(c, one, "MGET", f"{tag}:a", f"{tag}:b", f"{tag}:c")
            assert m.command("CLUSTER", "COUNTKEYSINSLOT", cl.keyslot(tag)) == 2
            assert m.raw_command("GET", f"{tag}:c") == b"$1\r\n1\r\n"


# ---------------------------------------------------------------------------------------------------
# 3. Multi-key commands split over slots.


def test_cross_slot_mget_mset(proxy, redis_cluster, one):
    """MGET over keys of every master (missing ones among them, one key twice) answers in the keys' order
    with nil for the missing, as one Redis; MSET over every master puts each key on its own node."""
    cl = redis_cluster
    groups = keys_per_master(cl, 5, "mk")
    present = interleave([g[:4] for g in groups])  # m0 m1 m2 m0 m1 m2 ...
    missing = [g[4] for g in groups]
    with proxy.raw() as c:
        args = [x for k in present for x in (k, f"val:{k}")]
        assert same(c, one, "MSET", *args) == b"+OK\r\n"
        for k in present:
            assert_only_on_owner(cl, k)
            assert cl.node_for_key(k).raw_command("GET", k) == bulk(f"val:{k}".encode())
        order = [present[0], missing[0], *present[1:6], missing[1], present[7], present[6], missing[2], *present[8:],
                 present[0]]
        reply = same(c, one, "MGET", *order)
        expected = [None if k in missing else f"val:{k}".encode() for k in order]
        assert parse(reply) == expected
        same(c, one, "MGET", *order)  # again (hits, if cached)
        same(c, one, "MGET", missing[2], missing[0])
        # MSET over keys already cached: every one is overwritten.
        same(c, one, "MSET", *[x for k in present for x in (k, f"new:{k}")])
        assert parse(same(c, one, "MGET", *present)) == [f"new:{k}".encode() for k in present]
        for k in present:
            assert cl.node_for_key(k).raw_command("GET", k) == bulk(f"new:{k}".encode())


def test_cross_slot_del_unlink_exists_touch(proxy, redis_cluster, one):
    """DEL, UNLINK, EXISTS and TOUCH over keys of every master answer the sum, as one Redis counts it
    (duplicates included), and the keys are gone from their nodes."""
    cl = redis_cluster
    groups = keys_per_master(cl, 5, "dk")
    present = interleave([g[:4] for g in groups])
    missing = [g[4] for g in groups]
    with proxy.raw() as c:
        for k in present:
            same(c, one, "SET", k, "x")
            same(c, one, "GET", k)
        # Duplicates count twice for EXISTS and TOUCH, once for DEL, as in Redis.
        probe = [present[0], missing[0], present[1], present[2], present[0], missing[1], present[5]]
        assert same(c, one, "EXISTS", *probe) == b":5\r\n"
        assert same(c, one, "TOUCH", *probe) == b":5\r\n"
        assert same(c, one, "EXISTS", *missing) == b":0\r\n"
        doomed = present[:6]
        assert same(c, one, "DEL", *doomed, missing[2], doomed[0]) == b":6\r\n"
        for k in doomed:
            assert cl.node_for_key(k).command("EXISTS", k) == 0, f"{k} still on its node after DEL"
            assert same(c, one, "GET", k) == b"$-1\r\n"
        rest = present[6:]
        assert same(c, one, "UNLINK", *rest, *missing) == b":%d\r\n" % len(rest)
        for k in rest:
            assert cl.node_for_key(k).command("EXISTS", k) == 0, f"{k} still on its node after UNLINK"
        assert same(c, one, "EXISTS", *present) == b":0\r\n"
        assert sum(m.dbsize() for m in cl.masters()) == 0


# ---------------------------------------------------------------------------------------------------
# 4. Multi-key commands that cannot be split.


def test_unsplittable_commands_across_slots_get_crossslot(proxy, redis_cluster, one):
    """Commands that cannot be split, with keys in different slots (of different masters, or of one master),
    get Redis Cluster's own CROSSSLOT error byte for byte, and change nothing; within one slot they work."""
    cl = redis_cluster
    m0, m1, m2 = cl.masters()
    a, a2 = cl.keys_on(m0, 2, "xs-a")  # a and a2: one master, two slots
    assert cl.keyslot(a) != cl.keyslot(a2)
    b = cl.keys_on(m1, 1, "xs-b")[0]
    dst = cl.keys_on(m2, 1, "xs-d")[0]
    s1, s2 = cl.keys_on(m0, 1, "xs-s")[0], cl.keys_on(m1, 1, "xs-t")[0]
    l1, l2 = cl.keys_on(m1, 1, "xs-l")[0], cl.keys_on(m2, 1, "xs-m")[0]
    z1, z2 = cl.keys_on(m2, 1, "xs-z")[0], cl.keys_on(m0, 1, "xs-y")[0]
    commands = [
        ("SUNIONSTORE", dst, a, b),
        ("SUNIONSTORE", a, a, a2),  # two slots of one master: still CROSSSLOT
        ("SDIFFSTORE", dst, a, a2),
        ("SMOVE", a, b, "x"),
        ("RENAME", s1, s2),
        ("RENAMENX", s1, s2),
        ("COPY", s1, s2),
        ("LMOVE", l1, l2, "LEFT", "RIGHT"),
        ("RPOPLPUSH", l1, l2),
        ("ZUNIONSTORE", dst, 2, z1, z2),
        ("EVAL", "return redis.call('GET', KEYS[1])", 2, s1, s2),
    ]
    with proxy.raw() as c:
        for k, v in ((a, "x"), (a2, "y"), (b, "z")):
            assert via(c, "SADD", k, v) == b":1\r\n"
        assert via(c, "SET", s1, "one") == b"+OK\r\n"
        assert via(c, "RPUSH", l1, "e") == b":1\r\n"
        assert via(c, "ZADD", z1, 1, "m") == b":1\r\n"
        for cmd in commands:
            first_key_owner = cl.node_for_key(cmd[3] if cmd[0] == "EVAL" else cmd[1])
            direct = first_key_owner.raw_command(*cmd)
            assert direct == CROSSSLOT, f"the cluster itself answers {cmd!r} with {direct!r}"
            got = via(c, *cmd)
            assert got == CROSSSLOT, f"{cmd!r}: respcache {got!r}, Redis Cluster {CROSSSLOT!r}"
        # Nothing ran.
        assert via(c, "SMEMBERS", a) == b"*1\r\n$1\r\nx\r\n"
        assert via(c, "SMEMBERS", b) == b"*1\r\n$1\r\nz\r\n"
        assert via(c, "GET", s1) == b"$3\r\none\r\n"
        assert via(c, "LRANGE", l1, 0, -1) == b"*1\r\n$1\r\ne\r\n"
        for k in (dst, s2, l2):
            assert via(c, "EXISTS", k) == b":0\r\n"
            assert cl.node_for_key(k).command("EXISTS", k) == 0
        # The same commands within one slot work, as on one Redis.
        tag = tag_on(cl, m1, "xs")
        for k, v in ((f"{tag}a", "x"), (f"{tag}b", "y")):
            same(c, one, "SADD", k, v)
        same(c, one, "SUNIONSTORE", f"{tag}d", f"{tag}a", f"{tag}b")
        assert sorted(parse(via(c, "SMEMBERS", f"{tag}d"))) == [b"x", b"y"]  # a set's order is the node's own
        same(c, one, "SET", f"{tag}s", "v")
        same(c, one, "RENAME", f"{tag}s", f"{tag}t")
        same(c, one, "GET", f"{tag}t")
        assert m1.raw_command("SCARD", f"{tag}d") == b":2\r\n"


# ---------------------------------------------------------------------------------------------------
# 5. Commands that concern every master.


def test_dbsize_and_keys_cover_every_master(proxy, redis_cluster, one):
    """DBSIZE is the sum over the masters (replicas not counted); KEYS is the union, without duplicates."""
    cl = redis_cluster
    keys = [k for ks in keys_per_master(cl, 10, "fan") for k in ks]
    with proxy.raw() as c:
        assert same(c, one, "DBSIZE") == b":0\r\n"
        assert same(c, one, "KEYS", "*") == b"*0\r\n"
        for k in keys:
            same(c, one, "SET", k, "v")
        assert all(m.dbsize() == 10 for m in cl.masters())
        assert same(c, one, "DBSIZE") == b":30\r\n"
        assert via(c, "DBSIZE") == b":%d\r\n" % sum(m.dbsize() for m in cl.masters())
        for pattern in ("*", "fan:1*", "fan:?", "nomatch*"):
            got, want = parse(via(c, "KEYS", pattern)), parse(raw(one, "KEYS", pattern))
            assert isinstance(got, list), got
            assert len(got) == len(set(got)), f"KEYS {pattern}: duplicates {sorted(got)}"
            assert sorted(got) == sorted(want), f"KEYS {pattern}: respcache {sorted(got)}, one Redis {sorted(want)}"
        union = set()
        for m in cl.masters():
            union |= set(m.command("KEYS", "*"))
        assert set(parse(via(c, "KEYS", "*"))) == union == {k.encode() for k in keys}


def scan_all(c: RawClient, *options) -> List[bytes]:
    """Every key a full SCAN iteration through respcache returns (bounded: at most 10000 calls)."""
    cursor, seen = b"0", []
    for _ in range(10000):
        reply = parse(via(c, "SCAN", cursor, *options))
        assert isinstance(reply, list) and len(reply) == 2, reply
        cursor, keys = reply
        seen.extend(keys)
        if cursor == b"0":
            return seen
    raise AssertionError("SCAN did not end")


def test_scan_visits_every_master(proxy, redis_cluster, one):
    """A SCAN iteration through respcache (its cursor names the master) returns every key of every master,
    with MATCH, COUNT and TYPE as Redis applies them; an invalid cursor gets Redis's error."""
    cl = redis_cluster
    keys = [k for ks in keys_per_master(cl, 40, "scan") for k in ks]
    with proxy.raw() as c:
        assert scan_all(c) == []
        for k in keys:
            assert via(c, "SET", k, "v") == b"+OK\r\n"
        assert via(c, "HSET", "scanhash", "f", "v") == b":1\r\n"
        every = {k.encode() for k in keys} | {b"scanhash"}
        for count in ("1", "7", "1000"):
            got = scan_all(c, "COUNT", count)
            assert set(got) == every, f"COUNT {count}: missing {sorted(every - set(got))[:5]}"
        assert set(scan_all(c, "MATCH", "scan:1*")) == {k for k in every if k.startswith(b"scan:1")}
        assert set(scan_all(c, "TYPE", "hash")) == {b"scanhash"}
        assert via(c, "SCAN", "abc") == raw(one, "SCAN", "abc")


@pytest.mark.parametrize("flush", ["FLUSHALL", "FLUSHDB"])
def test_flush_empties_every_master(proxy, redis_cluster, one, flush):
    """FLUSHALL / FLUSHDB (plain, ASYNC, SYNC) through the proxy: by its +OK every master is empty, and no
    key read before is served again."""
    cl = redis_cluster
    keys = [k for ks in keys_per_master(cl, 4, "fl") for k in ks]
    with proxy.raw() as c:
        for k in keys:
            same(c, one, "SET", k, "v")
            same(c, one, "GET", k)  # cached, if respcache caches
        assert all(m.dbsize() == 4 for m in cl.masters())
        assert same(c, one, flush) == b"+OK\r\n"
        # Once the proxy has answered, every master has flushed.
        assert [m.dbsize() for m in cl.masters()] == [0, 0, 0]
        for k in keys:
            assert same(c, one, "GET", k) == b"$-1\r\n"
        assert same(c, one, "DBSIZE") == b":0\r\n"
    wait_until(lambda: all(n.dbsize() == 0 for n in cl.nodes), scaled(10), "the replicas to be empty too")
    with proxy.raw() as c:
        assert same(c, one, flush, "ASYNC") == b"+OK\r\n"
        assert same(c, one, flush, "SYNC") == b"+OK\r\n"


def test_script_load_then_evalsha_on_every_master(proxy, redis_cluster, one):
    """SCRIPT LOAD through the proxy, then EVALSHA / EVALSHA_RO on keys of every master work (the script is
    known wherever the key lives); SCRIPT EXISTS and NOSCRIPT as one Redis says them."""
    cl = redis_cluster
    read_script = "return {KEYS[1], redis.call('GET', KEYS[1])}"
    write_script = "return redis.call('SET', KEYS[1], ARGV[1])"
    keys = [k for ks in keys_per_master(cl, 2, "sc") for k in ks]
    with proxy.raw() as c:
        rsha = same(c, one, "SCRIPT", "LOAD", read_script)
        wsha = same(c, one, "SCRIPT", "LOAD", write_script)
        rsha, wsha = parse(rsha), parse(wsha)
        same(c, one, "SCRIPT", "EXISTS", rsha, wsha, "0" * 40)
        for k in keys:
            assert same(c, one, "EVALSHA", wsha, 1, k, f"by-script:{k}") == b"+OK\r\n"
            assert cl.node_for_key(k).raw_command("GET", k) == bulk(f"by-script:{k}".encode())
            same(c, one, "EVALSHA", rsha, 1, k)
            same(c, one, "EVALSHA_RO", rsha, 1, k)
            same(c, one, "GET", k)
        same(c, one, "EVALSHA", "0" * 40, 1, keys[0])  # NOSCRIPT, as Redis says it
        same(c, one, "EVAL", read_script, 1, keys[-1])


def test_randomkey(proxy, redis_cluster, one):
    """RANDOMKEY: nil on an empty cluster, otherwise an existing key, also when only one master has any."""
    cl = redis_cluster
    with proxy.raw() as c:
        assert same(c, one, "RANDOMKEY") == b"$-1\r\n"
        keys = {k.encode() for ks in keys_per_master(cl, 3, "rk") for k in ks}
        for k in sorted(keys):
            same(c, one, "SET", k, "v")
        for _ in range(30):
            got = parse(via(c, "RANDOMKEY"))
            assert got in keys, f"RANDOMKEY: {got!r} is not one of the keys"
        # One key only, on one master: the others are empty, and RANDOMKEY still finds it.
        assert via(c, "FLUSHALL") == b"+OK\r\n"
        lone = sorted(keys)[4]
        assert via(c, "SET", lone, "v") == b"+OK\r\n"
        for _ in range(10):
            assert via(c, "RANDOMKEY") == bulk(lone)
        assert via(c, "DEL", lone) == b":1\r\n"
        assert raw(one, "FLUSHALL") == b"+OK\r\n"
        assert same(c, one, "RANDOMKEY") == b"$-1\r\n"


# ---------------------------------------------------------------------------------------------------
# 6. SELECT.


def test_select(proxy, redis_cluster):
    """SELECT 1 gets Redis Cluster's own error, SELECT 0 is OK, and the client stays in database 0."""
    cl = redis_cluster
    m = cl.masters()[0]
    assert m.raw_command("SELECT", 1) == SELECT_REFUSED, "the cluster's own answer changed"
    assert m.raw_command("SELECT", 0) == b"+OK\r\n"
    key = cl.keys_on(m, 1, "sel")[0]
    with proxy.raw() as c:
        assert via(c, "SELECT", 1) == SELECT_REFUSED
        assert via(c, "SELECT", 0) == b"+OK\r\n"
        assert via(c, "SELECT", 1) == SELECT_REFUSED
        # Still in database 0.
        assert via(c, "SET", key, "db0") == b"+OK\r\n"
        assert m.raw_command("GET", key) == b"$3\r\ndb0\r\n"
        assert via(c, "GET", key) == b"$3\r\ndb0\r\n"
    r = proxy.client()
    with pytest.raises(redis.exceptions.ResponseError) as e:
        r.execute_command("SELECT", 1)
    assert "SELECT is not allowed in cluster mode" in str(e.value)


# ---------------------------------------------------------------------------------------------------
# 7. Transactions within one slot.


def test_multi_exec_on_one_slot_of_each_master(proxy, redis_cluster, one):
    """MULTI / SET {t}a / SET {t}b / ... / EXEC on a tag of each master: one Redis's bytes, both keys set on
    the tag's node; DISCARD leaves nothing."""
    cl = redis_cluster
    with proxy.raw() as c:
        for m in cl.masters():
            t = tag_on(cl, m, "tx")
            assert same(c, one, "MULTI") == b"+OK\r\n"
            assert same(c, one, "SET", f"{t}a", "1") == b"+QUEUED\r\n"
            assert same(c, one, "SET", f"{t}b", "2") == b"+QUEUED\r\n"
            assert same(c, one, "INCR", f"{t}a") == b"+QUEUED\r\n"
            assert same(c, one, "GET", f"{t}b") == b"+QUEUED\r\n"
            assert same(c, one, "EXEC") == b"*4\r\n+OK\r\n+OK\r\n:2\r\n$1\r\n2\r\n"
            assert m.raw_command("GET", f"{t}a") == b"$1\r\n2\r\n"
            assert m.raw_command("GET", f"{t}b") == b"$1\r\n2\r\n"
            assert m.command("CLUSTER", "COUNTKEYSINSLOT", cl.keyslot(t)) == 2
            same(c, one, "MGET", f"{t}a", f"{t}b")
            # DISCARD leaves nothing behind.
            same(c, one, "MULTI")
            same(c, one, "SET", f"{t}c", "3")
            same(c, one, "DISCARD")
            assert m.command("EXISTS", f"{t}c") == 0
            same(c, one, "GET", f"{t}c")


# ---------------------------------------------------------------------------------------------------
# 8. A slot moved under the proxy, and a slot being migrated.

PROXY_VARIANTS = {"cache": [], "no-cache": ["--capacity", "0"]}


@pytest.mark.parametrize("variant", list(PROXY_VARIANTS))
def test_slot_moved_under_the_proxy(respcache, redis_cluster, variant):
    """After a slot moves to another master (the old one answers MOVED), GET/SET/MGET of keys in it keep
    working through the proxy, on a connection opened before the move and on a new one; no MOVED is seen."""
    cl = redis_cluster
    rc = start_proxy(respcache, cl, PROXY_VARIANTS[variant])
    key, other = "{moved}:k", "{moved}:other"
    slot = cl.keyslot(key)
    src = cl.slot_owner(slot)
    dst = next(m for m in cl.masters() if m is not src)
    with rc.raw() as c:
        assert via(c, "SET", key, "before") == b"+OK\r\n"
        assert via(c, "GET", key) == b"$6\r\nbefore\r\n"
        assert via(c, "GET", key) == b"$6\r\nbefore\r\n"
        assert cl.move_slot(slot, dst) is src
        # The premise: the old owner now redirects.
        assert src.raw_command("GET", key) == f"-MOVED {slot} {HOST}:{dst.port}\r\n".encode()
        assert dst.raw_command("GET", key) == b"$6\r\nbefore\r\n"
        # The same connection, opened before the move.
        assert via(c, "GET", key) == b"$6\r\nbefore\r\n"
        assert via(c, "SET", key, "after") == b"+OK\r\n"
        assert via(c, "GET", key) == b"$5\r\nafter\r\n"
        assert dst.raw_command("GET", key) == b"$5\r\nafter\r\n"
        assert via(c, "SET", other, "new key") == b"+OK\r\n"
        assert dst.raw_command("GET", other) == b"$7\r\nnew key\r\n"
        assert via(c, "MGET", key, other) == b"*2\r\n$5\r\nafter\r\n$7\r\nnew key\r\n"
        assert via(c, "INCR", key) == b"-ERR value is not an integer or out of range\r\n"
    with rc.raw() as fresh:
        assert via(fresh, "GET", key) == b"$5\r\nafter\r\n"
        assert via(fresh, "DEL", key, other) == b":2\r\n"
        assert dst.command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0


@pytest.mark.parametrize("variant", list(PROXY_VARIANTS))
def test_slot_migrating_under_the_proxy_ask_is_followed(respcache, redis_cluster, variant):
    """While a slot is MIGRATING with one key already moved (the source answers ASK for it and for new keys),
    the proxy follows ASK: reads and writes of the moved key and new keys reach the target, the key still on
    the source is served there; no ASK is seen."""
    cl = redis_cluster
    rc = start_proxy(respcache, cl, PROXY_VARIANTS[variant])
    moved, stays, new = "{mig}:moved", "{mig}:stays", "{mig}:new"
    slot = cl.keyslot(moved)
    src = cl.slot_owner(slot)
    dst = next(m for m in cl.masters() if m is not src)
    with rc.raw() as c:
        assert via(c, "SET", moved, "m1") == b"+OK\r\n"
        assert via(c, "SET", stays, "s1") == b"+OK\r\n"
        assert via(c, "GET", stays) == b"$2\r\ns1\r\n"
        assert cl.begin_migration(slot, dst) is src
        try:
            cl.migrate_keys(slot, src, dst, [moved])
            # The premise: the source answers ASK for the key it no longer has, and serves the other.
            ask = f"-ASK {slot} {HOST}:{dst.port}\r\n".encode()
            assert src.raw_command("GET", moved) == ask
            assert src.raw_command("GET", new) == ask
            assert src.raw_command("GET", stays) == b"$2\r\ns1\r\n"
            assert via(c, "GET", moved) == b"$2\r\nm1\r\n"
            assert via(c, "GET", stays) == b"$2\r\ns1\r\n"
            assert via(c, "SET", moved, "m2") == b"+OK\r\n"
            assert via(c, "GET", moved) == b"$2\r\nm2\r\n"
            assert via(c, "SET", new, "n1") == b"+OK\r\n"  # not on the source: created on the target
            assert via(c, "GET", new) == b"$2\r\nn1\r\n"
            assert via(c, "SET", stays, "s2") == b"+OK\r\n"  # still on the source: written there
            assert via(c, "GET", stays) == b"$2\r\ns2\r\n"
            with dst.raw() as d:
                assert d.command("ASKING") == b"OK"
                assert raw(d, "GET", moved) == b"$2\r\nm2\r\n"
                assert d.command("ASKING") == b"OK"
                assert raw(d, "GET", new) == b"$2\r\nn1\r\n"
            assert src.raw_command("GET", stays) == b"$2\r\ns2\r\n"
            assert src.command("CLUSTER", "COUNTKEYSINSLOT", slot) == 1
        finally:
            cl.migrate_keys(slot, src, dst)
            cl.finish_migration(slot, src, dst)
        assert via(c, "MGET", moved, stays, new) == b"*3\r\n$2\r\nm2\r\n$2\r\ns2\r\n$2\r\nn1\r\n"
        assert dst.command("CLUSTER", "COUNTKEYSINSLOT", slot) == 3
        assert src.command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0


# ---------------------------------------------------------------------------------------------------
# 9. Writes that bypass the proxy.


@pytest.mark.parametrize("consistency", [
    "bounded",
    "strict",
])
def test_direct_write_on_the_owner_is_seen(respcache, redis_cluster, consistency):
    """A write made directly on the key's master (SET, DEL, HSET), after reads that cached the old value, is
    seen through the proxy: by the very next read with --consistency strict; with the default (bounded),
    which may miss a direct write acknowledged less than a millisecond earlier, within a bound."""
    cl = redis_cluster
    rc = start_proxy(respcache, cl, ["--consistency", consistency])

    def seen(c, read, expected: bytes, what: str):
        if consistency == "bounded":
            wait_until(lambda: via(c, *read) == expected, scaled(5), f"{what} to be seen")
        got = via(c, *read)
        assert got == expected, f"{what}: the next {read[0]} through respcache gives {got!r}"

    with rc.raw() as c:
        for m in cl.masters():
            key = cl.keys_on(m, 1, "dw")[0]
            h = key + ":h"
            assert m.command("SET", key, "old") == b"OK"
            assert via(c, "GET", key) == b"$3\r\nold\r\n"
            assert via(c, "GET", key) == b"$3\r\nold\r\n"
            assert cl.node_for_key(key).command("SET", key, "new") == b"OK"
            seen(c, ("GET", key), b"$3\r\nnew\r\n", f"the direct SET of {key} on {m}")
            assert cl.node_for_key(key).command("DEL", key) == 1
            seen(c, ("GET", key), b"$-1\r\n", f"the direct DEL of {key} on {m}")
            owner = cl.node_for_key(h)
            assert owner.command("HSET", h, "f", "1") == 1
            assert via(c, "HGETALL", h) == b"*2\r\n$1\r\nf\r\n$1\r\n1\r\n"
            assert via(c, "HGETALL", h) == b"*2\r\n$1\r\nf\r\n$1\r\n1\r\n"
            assert owner.command("HSET", h, "f", "2") == 0
            seen(c, ("HGETALL", h), b"*2\r\n$1\r\nf\r\n$1\r\n2\r\n", f"the direct HSET of {h} on {owner}")


# ---------------------------------------------------------------------------------------------------
# 10. A slot move and a failover under a checked load.


@pytest.mark.timeout(180)
def test_slot_move_and_failover_under_load(respcache, redis_cluster):
    """Under a checked SET/GET load (clusterlib.SetGetLoad) on keys of every master and of the slot that moves:
    a slot move (step by step, with load in the MIGRATING states) then a CLUSTER FAILOVER of the master
    holding it. No wrong value ever, errors only TRANSIENT_ERRORS, never MOVED/ASK; once the load has
    recovered (bounded wait) no request fails; the same respcache process throughout; each key ends on its
    owner with a value the load may have left."""
    cl = redis_cluster
    rc = start_proxy(respcache, cl)
    pid = rc.pid
    slot = cl.keyslot("{mv}")
    src = cl.slot_owner(slot)
    dst = next(m for m in cl.masters() if m is not src)
    third = next(m for m in cl.masters() if m is not src and m is not dst)
    threads = 2
    keys = []
    for t in range(threads):
        keys.append([f"{{mv}}:{t}:{i}" for i in range(4)]  # the slot that moves, then fails over
                    + cl.keys_on(src, 4, f"ld{t}", avoid_slots=[slot])
                    + cl.keys_on(dst, 4, f"ld{t}")
                    + cl.keys_on(third, 4, f"ld{t}"))
    load = SetGetLoad(rc.port, keys).start()
    try:
        load.wait_ops(300, "before any change")
        assert all(op.correct for op in load.ops_sent_after(0)), f"errors before any change: {load.summary()}"

        # The move, step by step, with load in each state.
        assert cl.begin_migration(slot, dst) is src
        load.wait_ops(100, "with the slot MIGRATING")
        half = [k for ks in keys for k in ks[:2]]
        cl.migrate_keys(slot, src, dst, half)  # half the slot's keys on the target: ASK for those
        load.wait_ops(200, "with half the slot's keys migrated")
        cl.migrate_keys(slot, src, dst)
        load.wait_ops(100, "with every key of the slot migrated")
        cl.finish_migration(slot, src, dst)
        load.wait_ops(200, "after the move")

        # The failover of the master now holding the slot.
        new_master = cl.failover(dst)
        fault_end = time.monotonic()
        assert cl.slot_owner(slot) is new_master

        wait_until(lambda: load.recovered_after(fault_end, 50) or load.problems, scaled(30),
                   "every load thread to have 50 correct rounds in a row after the failover")
        assert not load.problems, load.summary()
        settled = time.monotonic()
        load.wait_ops(400, "once settled")
    finally:
        load.stop()
    print(f"\nload: {load.summary()}")
    assert not load.problems, load.summary()
    late = [op for op in load.ops_sent_after(settled) if not op.correct]
    assert not late, f"{len(late)} rounds failed after the cluster had settled: {load.summary()}"
    unexpected = [e for e in load.error_texts if not e.startswith(TRANSIENT_ERRORS)]
    assert not unexpected, unexpected
    # What the cluster holds is, key by key, a value the load may have left, on the key's owner.
    for k in [k for ks in keys for k in ks]:
        got = cl.node_for_key(k).command("GET", k)
        assert got in load.possible(k), f"{k} = {got!r} on {cl.node_for_key(k)}; possible {load.possible(k)}"
        assert_only_on_owner(cl, k)
    assert rc.running() and rc.pid == pid, "respcache was restarted or exited"
    with rc.raw() as c:
        for k in [k for ks in keys for k in ks]:
            assert parse(via(c, "GET", k)) in load.possible(k)


# ---------------------------------------------------------------------------------------------------
# 11. Pub/sub.


def _numsub(cl: RedisCluster, channel: str) -> int:
    """Subscribers of `channel` over every node (PUBSUB NUMSUB is per node)."""
    return sum(n.command("PUBSUB", "NUMSUB", channel)[1] for n in cl.nodes)


def _numpat(cl: RedisCluster) -> int:
    return sum(n.command("PUBSUB", "NUMPAT") for n in cl.nodes)


def test_subscribe_through_the_proxy_receives_publish_on_any_master(proxy, redis_cluster, redis_server):
    """SUBSCRIBE and PSUBSCRIBE through the proxy get one Redis's confirmations, then every message PUBLISHed
    directly on each master (and a replica, and through the proxy), byte for byte."""
    cl = redis_cluster
    with proxy.raw(timeout=scaled(5)) as sub, proxy.raw(timeout=scaled(5)) as psub, \
            redis_server.raw() as one_sub, redis_server.raw() as one_psub:
        sub.send_command("SUBSCRIBE", "news", "other")
        one_sub.send_command("SUBSCRIBE", "news", "other")
        assert sub.read_raw_replies(2) == one_sub.read_raw_replies(2)
        psub.send_command("PSUBSCRIBE", "ne*")
        one_psub.send_command("PSUBSCRIBE", "ne*")
        assert psub.read_raw_reply() == one_psub.read_raw_reply()
        # Once the cluster knows of the subscriptions, a message published on any node reaches them.
        wait_until(lambda: _numsub(cl, "news") >= 1 and _numpat(cl) >= 1, scaled(5),
                   "respcache's subscriptions to reach a node")
        for i, m in enumerate(cl.masters()):
            msg = f"from {m.port} #{i}"
            m.command("PUBLISH", "news", msg)
            assert sub.read_raw_reply() == b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n" + bulk(msg.encode())
            assert psub.read_raw_reply() == (b"*4\r\n$8\r\npmessage\r\n$3\r\nne*\r\n$4\r\nnews\r\n"
                                             + bulk(msg.encode()))
        replica = cl.replicas()[0]
        replica.command("PUBLISH", "other", "from a replica")
        assert sub.read_raw_reply() == b"*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n" + bulk(b"from a replica")
        with proxy.raw() as pub:
            assert parse(via(pub, "PUBLISH", "news", "via the proxy")) >= 0
            assert sub.read_raw_reply() == b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n" + bulk(b"via the proxy")
            assert psub.read_raw_reply() == (b"*4\r\n$8\r\npmessage\r\n$3\r\nne*\r\n$4\r\nnews\r\n"
                                             + bulk(b"via the proxy"))
        sub.send_command("UNSUBSCRIBE", "news")
        one_sub.send_command("UNSUBSCRIBE", "news")
        assert sub.read_raw_reply() == one_sub.read_raw_reply()
        # The subscriber is still a working connection once it has left every channel.
        sub.send_command("UNSUBSCRIBE")
        one_sub.send_command("UNSUBSCRIBE")
        assert sub.read_raw_reply() == one_sub.read_raw_reply()
        assert via(sub, "PING") == b"+PONG\r\n"


def test_ssubscribe_goes_to_the_shard_channels_master(proxy, redis_cluster):
    """SSUBSCRIBE through the proxy lands on the master of the shard channel's slot: an SPUBLISH made
    directly on that master reaches the subscriber; SPUBLISH through the proxy too."""
    cl = redis_cluster
    for m in cl.masters():
        channel = cl.keys_on(m, 1, "shard")[0]
        with proxy.raw(timeout=scaled(5)) as sub:
            sub.send_command("SSUBSCRIBE", channel)
            assert sub.read_raw_reply() == b"*3\r\n$10\r\nssubscribe\r\n" + bulk(channel.encode()) + b":1\r\n"
            assert m.command("PUBSUB", "SHARDNUMSUB", channel) == [channel.encode(), 1]
            assert m.command("SPUBLISH", channel, "direct") == 1
            assert sub.read_raw_reply() == b"*3\r\n$8\r\nsmessage\r\n" + bulk(channel.encode()) + bulk(b"direct")
            with proxy.raw() as pub:
                assert via(pub, "SPUBLISH", channel, "proxied") == b":1\r\n"
            assert sub.read_raw_reply() == b"*3\r\n$8\r\nsmessage\r\n" + bulk(channel.encode()) + bulk(b"proxied")


def test_blocking_commands_wait_on_the_keys_master(proxy, redis_cluster):
    """BLPOP through the proxy blocks on the master of its key: an RPUSH made directly there wakes it; a
    BLMOVE between two slots gets CROSSSLOT."""
    cl = redis_cluster
    for m in cl.masters():
        k = cl.keys_on(m, 1, "blk")[0]
        with proxy.raw(timeout=scaled(10)) as c:
            c.send_command("BLPOP", k, "5")
            wait_until(lambda: any(cl_.get("cmd") == "blpop" for cl_ in m.client().client_list()), scaled(5),
                       f"the BLPOP to block on {m}")
            assert m.command("RPUSH", k, "x") == 1
            assert c.read_raw_reply() == b"*2\r\n" + bulk(k.encode()) + bulk(b"x")
    a, b = cl.keys_on(cl.masters()[0], 1, "bm")[0], cl.keys_on(cl.masters()[1], 1, "bm")[0]
    with proxy.raw() as c:
        assert via(c, "BLMOVE", a, b, "LEFT", "RIGHT", "0.1") == CROSSSLOT


def test_cluster_commands_say_this_is_one_redis(proxy, redis_server):
    """CLUSTER INFO, CLUSTER SLOTS, READONLY through the proxy: what a standalone Redis answers, so that no
    client is told to go cluster-aware."""
    with proxy.raw() as c, redis_server.raw() as one:
        for args in (("CLUSTER", "INFO"), ("CLUSTER", "SLOTS"), ("CLUSTER", "SHARDS"), ("READONLY",),
                     ("READWRITE",)):
            assert via(c, *args) == raw(one, *args), args
