"""The cache in front of a Redis Cluster (issue 14, item 3): hits that never reach the masters, and the
coherence rules of one Redis kept across many: one invalidation channel per master, a lost channel's
entries flushed, a slot that moves taking its entries with it, two respcache instances coherent with
each other.

What the masters saw is read from their INFO commandstats; every wait is bounded; no assertion is about
how long something took."""

from __future__ import annotations

import os
import signal
import time

import pytest

from clusterlib import (TRANSIENT_ERRORS, SetGetLoad, redis_cluster, redis_cluster_module,  # noqa: F401
                        running_cluster, start_proxy)
from coherence_lib import parse_info
from conftest import RawClient, scaled, wait_until

SOON = scaled(5)  # how long a change made elsewhere may take to reach the cache (a bound, not a speed)


def reply(conn: RawClient, *args) -> bytes:
    conn.send_command(*args)
    return conn.read_raw_reply()


def calls(cluster, node, command: str) -> int:
    return cluster.commandstats(node).get(command, 0)


def proxy_info(conn: RawClient) -> dict:
    return parse_info(conn.command("INFO", "proxy"))


def cached(conn: RawClient, cluster, node, key: str, value: bytes) -> bool:
    """Whether a GET of `key` through respcache, after one more to fill it, is served without `node`."""
    assert reply(conn, "GET", key) == value
    n = calls(cluster, node, "get")
    assert reply(conn, "GET", key) == value
    return calls(cluster, node, "get") == n


def seen_soon(conn: RawClient, args, expected: bytes, what: str):
    wait_until(lambda: reply(conn, *args) == expected, SOON, what)


@pytest.mark.parametrize("mode", ["optin", "bcast"])
def test_hits_never_reach_the_masters(respcache, redis_cluster, mode):
    """GET and HGETALL of keys on every master, read three times through respcache: each master runs each
    read once; an MGET of keys on all three masters, once all are cached, reaches none."""
    cl = redis_cluster
    rc = start_proxy(respcache, cl, ["--tracking-mode", mode])
    keys = {m: cl.keys_on(m, 2, "hit") for m in cl.masters()}
    for m, (k, h) in keys.items():
        assert m.command("SET", k, f"v-{k}") == b"OK"
        assert m.command("HSET", h, "f", "1", "g", "2") == 2
    before = {m: (calls(cl, m, "get"), calls(cl, m, "hgetall"), calls(cl, m, "mget")) for m in keys}
    with rc.raw() as c:
        for _ in range(3):
            for m, (k, h) in keys.items():
                assert reply(c, "GET", k) == f"${len('v-' + k)}\r\nv-{k}\r\n".encode()
                assert reply(c, "HGETALL", h) == b"*4\r\n$1\r\nf\r\n$1\r\n1\r\n$1\r\ng\r\n$1\r\n2\r\n"
        every = [k for k, _ in keys.values()]
        want = b"*3\r\n" + b"".join(f"${len('v-' + k)}\r\nv-{k}\r\n".encode() for k in every)
        assert reply(c, "MGET", *every) == want
        assert int(proxy_info(c)["cache_hits"]) >= 2 * 2 * 3 + 3
    for m in keys:
        get0, hgetall0, mget0 = before[m]
        assert calls(cl, m, "get") - get0 == 1, f"{m}: GET reached it more than once"
        assert calls(cl, m, "hgetall") - hgetall0 == 1, f"{m}: HGETALL reached it more than once"
        assert calls(cl, m, "mget") == mget0, f"{m}: the all-hit MGET reached it"


@pytest.mark.parametrize("mode", ["optin", "bcast"])
def test_losing_one_masters_channel_flushes_and_recovers(respcache, redis_cluster, mode):
    """The invalidation channel to one master is killed: respcache counts a loss, re-reads what it had
    cached (from every master: the whole cache goes), and caches again once the channel is back."""
    cl = redis_cluster
    rc = start_proxy(respcache, cl, ["--tracking-mode", mode])
    victim = cl.masters()[1]
    k = cl.keys_on(victim, 1, "loss")[0]
    assert victim.command("SET", k, "v") == b"OK"
    with rc.raw() as c:
        assert reply(c, "GET", k) == b"$1\r\nv\r\n"
        assert reply(c, "GET", k) == b"$1\r\nv\r\n"
        losses = int(proxy_info(c)["invalidation_channel_losses"])
        gets = calls(cl, victim, "get")
        assert victim.command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
        wait_until(lambda: int(proxy_info(c)["invalidation_channel_losses"]) > losses, SOON, "the loss to be counted")
        wait_until(lambda: proxy_info(c)["invalidation_channel"] == "live", SOON, "the channel to come back")
        # The entry was flushed: the next read goes to the master; the one after is a hit again.
        assert reply(c, "GET", k) == b"$1\r\nv\r\n"
        assert calls(cl, victim, "get") == gets + 1
        wait_until(lambda: cached(c, cl, victim, k, b"$1\r\nv\r\n"), SOON, "the key to be cached again")
        # And it is tracked again: a direct write is seen.
        assert victim.command("SET", k, "w") == b"OK"
        seen_soon(c, ("GET", k), b"$1\r\nw\r\n", "the direct write after the channel came back")


@pytest.mark.parametrize("mode", ["optin", "bcast"])
def test_a_moved_slot_takes_its_entries_with_it(respcache, redis_cluster, mode):
    """A key cached from its master; its slot moves to another master; a direct write on the new master is
    seen through respcache (an entry kept from the old master would be tracked there only, and stale)."""
    cl = redis_cluster
    rc = start_proxy(respcache, cl, ["--tracking-mode", mode])
    src, dst = cl.masters()[0], cl.masters()[2]
    k = cl.keys_on(src, 1, "mv")[0]
    assert src.command("SET", k, "old") == b"OK"
    with rc.raw() as c:
        assert reply(c, "GET", k) == b"$3\r\nold\r\n"
        assert reply(c, "GET", k) == b"$3\r\nold\r\n"
        cl.move_slot(cl.keyslot(k), dst)
        assert cl.node_for_key(k) is dst
        assert reply(c, "GET", k) == b"$3\r\nold\r\n"  # now read from, or redirected to, the new master
        assert dst.command("SET", k, "new") == b"OK"
        seen_soon(c, ("GET", k), b"$3\r\nnew\r\n", "the direct write on the slot's new master")
        # Cached again from the new master, and tracked there.
        wait_until(lambda: cached(c, cl, dst, k, b"$3\r\nnew\r\n"), SOON, "the key to be cached from its new master")
        assert dst.command("SET", k, "newer") == b"OK"
        seen_soon(c, ("GET", k), b"$5\r\nnewer\r\n", "a second direct write on the new master")


def test_two_instances_in_front_of_one_cluster_stay_coherent(respcache, redis_cluster):
    """Two respcache processes in front of the same cluster: what one writes (SET, DEL, HSET), the other,
    which had it cached, serves."""
    cl = redis_cluster
    a = start_proxy(respcache, cl)
    b = start_proxy(respcache, cl, seeds=[m.port for m in cl.masters()[1:]])
    keys = [cl.keys_on(m, 1, "two")[0] for m in cl.masters()]
    with a.raw() as ca, b.raw() as cb:
        for k in keys:
            assert reply(ca, "SET", k, "1") == b"+OK\r\n"
            assert reply(cb, "GET", k) == b"$1\r\n1\r\n"
            assert reply(cb, "GET", k) == b"$1\r\n1\r\n"  # cached by b
            assert reply(ca, "SET", k, "2") == b"+OK\r\n"
            seen_soon(cb, ("GET", k), b"$1\r\n2\r\n", f"a's SET of {k} in b")
            assert reply(ca, "DEL", k) == b":1\r\n"
            seen_soon(cb, ("GET", k), b"$-1\r\n", f"a's DEL of {k} in b")
            h = k + ":h"
            assert reply(cb, "HSET", h, "f", "x") == b":1\r\n"
            assert reply(ca, "HGET", h, "f") == b"$1\r\nx\r\n"
            assert reply(ca, "HGET", h, "f") == b"$1\r\nx\r\n"
            assert reply(cb, "HSET", h, "f", "y") == b":0\r\n"
            seen_soon(ca, ("HGET", h, "f"), b"$1\r\ny\r\n", f"b's HSET of {h} in a")


@pytest.mark.parametrize("resp", [2, 3])
def test_read_your_writes_through_the_proxy(respcache, redis_cluster, resp):
    """A client's own write, pipelined behind a cached read of the same key and before another, is seen by
    the read after it, on every master, in RESP2 and RESP3."""
    cl = redis_cluster
    rc = start_proxy(respcache, cl)
    with rc.raw() as c:
        if resp == 3:
            reply(c, "HELLO", "3")
        for m in cl.masters():
            k = cl.keys_on(m, 1, f"ryw{resp}")[0]
            assert reply(c, "SET", k, "a") == b"+OK\r\n"
            assert reply(c, "GET", k) == b"$1\r\na\r\n"
            assert reply(c, "GET", k) == b"$1\r\na\r\n"
            c.send_command("GET", k)
            c.send_command("SET", k, "b")
            c.send_command("GET", k)
            assert c.read_raw_replies(3) == [b"$1\r\na\r\n", b"+OK\r\n", b"$1\r\nb\r\n"]


def test_a_read_redirected_by_ask_is_not_cached_untracked(respcache, redis_cluster):
    """While a slot migrates, a key already moved is read through respcache (the source answers ASK, the
    read lands on the target, where CLIENT CACHING cannot apply): a direct write on the target is seen,
    so nothing untracked was cached. Then the migration ends, and the key is cached and tracked there."""
    cl = redis_cluster
    rc = start_proxy(respcache, cl)
    src, dst = cl.masters()[1], cl.masters()[0]
    k = cl.keys_on(src, 1, "ask")[0]
    slot = cl.keyslot(k)
    assert src.command("SET", k, "before") == b"OK"
    with rc.raw() as c:
        assert reply(c, "GET", k) == b"$6\r\nbefore\r\n"
        cl.begin_migration(slot, dst)
        cl.migrate_keys(slot, src, dst, [k])
        asks = int(proxy_info(c)["cluster_ask_redirections"])
        for _ in range(3):
            assert reply(c, "GET", k) == b"$6\r\nbefore\r\n"  # through ASK
        assert int(proxy_info(c)["cluster_ask_redirections"]) >= asks + 3
        with dst.raw() as d:
            d.send_command("ASKING")
            d.send_command("SET", k, "after")
            assert d.read_raw_replies(2) == [b"+OK\r\n", b"+OK\r\n"]
        seen_soon(c, ("GET", k), b"$5\r\nafter\r\n", "a direct write on the migration's target")
        cl.finish_migration(slot, src, dst)
        wait_until(lambda: cached(c, cl, dst, k, b"$5\r\nafter\r\n"), SOON, "the key to be cached from its new master")
        assert dst.command("SET", k, "later") == b"OK"
        seen_soon(c, ("GET", k), b"$5\r\nlater\r\n", "a direct write after the migration")


def test_a_plain_redis_url_naming_a_cluster_node_is_taken_as_the_cluster(respcache, redis_cluster):
    """--backend redis://<one master> (not redis+cluster://): respcache asks the node at start, finds a
    cluster node, and routes and caches as for redis+cluster:// with that node as the seed."""
    cl = redis_cluster
    seed = cl.masters()[0]
    rc = respcache.start(backend=f"redis://127.0.0.1:{seed.port}", wait_ready=False)
    rc._wait_ready(backend_ready=True, tracking=False)  # the port, PING, "backend ready"
    rc.wait_for_log(r"the backend is a Redis Cluster node: routing")
    rc.wait_for_log(r"invalidation channels live")
    with rc.raw() as c:
        info = proxy_info(c)
        assert info["backend_mode"] == "cluster"
        assert info["cluster_masters"] == "3"
        assert int(info["cluster_slot_map_refreshes"]) >= 1
        for m in cl.masters():
            k = cl.keys_on(m, 1, "plain")[0]
            assert reply(c, "SET", k, "v") == b"+OK\r\n"
            assert m.command("GET", k) == b"v"
            assert reply(c, "GET", k) == b"$1\r\nv\r\n"
            assert cached(c, cl, m, k, b"$1\r\nv\r\n")


def test_a_plain_redis_is_not_taken_for_a_cluster(respcache, redis_server):
    rc = respcache.start(backend=redis_server)
    with rc.raw() as c:
        assert proxy_info(c)["backend_mode"] == "standalone"
    assert "Redis Cluster" not in rc.log


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster of this test's own (3 masters, 3 replicas): the test kills one of its masters."""
    with running_cluster(tmp_path / "own-cluster") as cluster:
        yield cluster


@pytest.mark.timeout(180)
def test_a_killed_master_under_load(respcache, own_cluster):
    """Under a checked SET/GET load through respcache on keys of every master, one master is killed
    (SIGKILL): its requests fail with respcache's or Redis Cluster's own errors, never a wrong or stale
    value; once the cluster has promoted its replica, every request succeeds again, without restarting
    respcache, and the cache serves hits again."""
    cl = own_cluster
    rc = start_proxy(respcache, cl)
    pid = rc.pid
    victim = cl.masters()[1]
    replica = cl.replica_of(victim)
    keys = [[k for m in cl.masters() for k in cl.keys_on(m, 4, f"kill{t}")] for t in range(2)]
    load = SetGetLoad(rc.port, keys).start()
    try:
        load.wait_ops(300, "before the kill")
        os.kill(victim.pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: replica.role() == "master", scaled(60), f"{replica} to take over from {victim}")
        wait_until(lambda: load.recovered_after(killed, 50) or load.problems, scaled(60),
                   "every load thread to have 50 correct rounds in a row after the promotion")
        assert not load.problems, load.summary()
        settled = time.monotonic()
        print(f"\nkilled master: replica promoted and 50 correct rounds per thread {settled - killed:.1f}s after "
              f"the kill; {load.summary()}")
        load.wait_ops(300, "once settled")
    finally:
        load.stop()
    assert not load.problems, load.summary()
    late = [op for op in load.ops_sent_after(settled) if not op.correct]
    assert not late, f"{len(late)} rounds failed after the promotion had settled: {load.summary()}"
    unexpected = [e for e in load.error_texts if not e.startswith(TRANSIENT_ERRORS)]
    assert not unexpected, unexpected
    assert rc.running() and rc.pid == pid
    with rc.raw() as c:
        for k in [k for ks in keys for k in ks]:
            got = reply(c, "GET", k)
            possible = load.possible(k)
            assert any(got == (b"$-1\r\n" if v is None else b"$%d\r\n%s\r\n" % (len(v), v)) for v in possible), \
                f"{k}: {got!r} not among {possible}"
        k = keys[0][4]  # a key of the promoted replica's slots
        wait_until(lambda: cached(c, cl, replica, k, reply(c, "GET", k)), SOON, "hits again on the new master")
