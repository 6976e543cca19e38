"""Edge cases found in review: each test pins down a behaviour that was once wrong.

- the invalidation channel refused at log-in (a changed password) neither deadlocks nor blocks shutdown;
- a transaction cannot leave state-changing commands (HELLO 3, SUBSCRIBE, AUTH, CLIENT...) on a pooled
  dedicated connection: they are refused and EXEC aborts, as Redis does for a command it cannot queue;
- a client that writes a whole pipeline before reading gets every reply with the default options;
- SELECT against a backend whose database count is unknown (CONFIG renamed away) is judged by Redis;
- WAIT counts the replicas that have the client's writes, not those of an idle connection;
- writes pipelined behind the last UNSUBSCRIBE invalidate what they write;
- RESET is answered even after CLIENT REPLY OFF.
"""

import os
import signal
import time

import pytest

from conftest import RawClient, RespError, encode_command, scaled, wait_until


def error_text(reply) -> str:
    assert isinstance(reply, RespError), f"expected an error reply, got {reply!r}"
    return reply.message


def proxy_info(rc) -> dict:
    with rc.raw() as c:
        text = c.command("INFO", "proxy").decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


@pytest.mark.timeout(60)
def test_invalidation_channel_refused_at_login_neither_deadlocks_nor_blocks_shutdown(respcache, redis_server):
    direct = redis_server.client()
    direct.config_set("requirepass", "pw1")
    direct = redis_server.client(password="pw1")
    rc = respcache.start([], backend=f"redis://:pw1@127.0.0.1:{redis_server.port}")
    wait_until(lambda: proxy_info(rc)["invalidation_channel"] == "live", scaled(5), "the channel live")
    # The channel reconnects and its AUTH is refused.
    direct.config_set("requirepass", "pw2")
    direct = redis_server.client(password="pw2")
    direct.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    wait_until(lambda: proxy_info(rc)["invalidation_channel"] == "down", scaled(5), "the channel down")
    time.sleep(0.3)  # a few refused log-ins
    assert proxy_info(rc)["invalidation_channel"] == "down"  # the proxy still answers
    # The password comes back: so does the channel.
    direct.config_set("requirepass", "pw1")
    wait_until(lambda: proxy_info(rc)["invalidation_channel"] == "live", scaled(10), "the channel live again")
    direct.config_set("requirepass", "pw2")
    direct = redis_server.client(password="pw2")
    direct.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    wait_until(lambda: proxy_info(rc)["invalidation_channel"] == "down", scaled(5), "the channel down")
    assert rc.stop(signal.SIGTERM) == 0
    direct.config_set("requirepass", "")


@pytest.mark.parametrize("queued", [["HELLO", "3"], ["SUBSCRIBE", "ch"], ["AUTH", "nobody", "nothing"],
                                    ["CLIENT", "REPLY", "OFF"], ["MONITOR"]])
def test_state_changing_commands_are_refused_inside_multi(proxy, redis_server, queued):
    with proxy.raw() as c:
        assert c.command("MULTI") == b"OK"
        assert error_text(c.command(*queued)) == "ERR Command not allowed inside a transaction"
        assert c.command("SET", "k", "v") == b"QUEUED"
        assert error_text(c.command("EXEC")).startswith("EXECABORT")
        assert c.command("GET", "k") is None  # nothing ran
    # The dedicated connection went back to the pool in RESP2, unsubscribed: the next users see Redis as usual.
    for _ in range(3):
        with proxy.raw() as c:
            c.send(encode_command("BLPOP", "nolist", "0.05"))
            assert c.read_raw_reply() == b"*-1\r\n"
            assert c.command("MULTI") == b"OK"
            assert c.command("PING") == b"QUEUED"
            c.send(encode_command("EXEC"))
            assert c.read_raw_reply() == b"*1\r\n+PONG\r\n"


@pytest.mark.timeout(120)
def test_a_pipeline_written_whole_before_reading_gets_every_reply_by_default(proxy, redis_server):
    """redis-py writes a whole pipeline, then reads: the proxy must buffer the replies meanwhile (Redis's
    normal clients have no output limit either)."""
    value = b"x" * 1024
    redis_server.client().set("kb", value)
    r = proxy.client()
    p = r.pipeline(transaction=False)
    n = 50000
    for _ in range(n):
        p.get("kb")
    replies = p.execute()
    assert len(replies) == n and all(v == value for v in replies)
    assert int(proxy_info(proxy)["output_buffer_disconnects"]) == 0


def test_select_is_judged_by_redis_when_the_database_count_is_unknown(respcache, redis_factory):
    server = redis_factory.start("--databases", "4", "--rename-command", "CONFIG", "")
    rc = respcache.start([], backend=server)
    with rc.raw() as a, rc.raw() as b:
        assert b.command("SELECT", "2") == b"OK"
        assert b.command("SET", "bkey", "bval") == b"OK"
        assert error_text(a.command("SELECT", "10")) == "ERR DB index is out of range"
        assert a.command("SET", "bkey", "other") == b"OK"  # in db 0, where `a` still is
        assert a.command("SELECT", "2") == b"OK"
        assert a.command("GET", "bkey") == b"bval"
        assert a.command("SELECT", "0") == b"OK"
        assert a.command("GET", "bkey") == b"other"
    with RawClient(server.port) as d:
        assert d.command("SELECT", "2") == b"OK"
        assert d.command("GET", "bkey") == b"bval"


@pytest.mark.timeout(60)
def test_wait_counts_replicas_that_have_the_clients_writes(respcache, redis_server, redis_factory):
    replica = redis_factory.start("--replicaof", "127.0.0.1", str(redis_server.port))
    direct = redis_server.client()
    def replica_online():
        slave = direct.info("replication").get("slave0")
        return isinstance(slave, dict) and slave.get("state") == "online"

    wait_until(replica_online, scaled(10), "the replica in sync")
    assert direct.execute_command("WAIT", "1", "2000") == 1
    rc = respcache.start([], backend=redis_server)
    with rc.raw() as c:
        assert c.command("SET", "wkey", "1") == b"OK"
        assert c.command("WAIT", "1", "2000") == 1  # the replica is up: it acknowledges
        os.kill(replica.pid, signal.SIGSTOP)
        try:
            assert c.command("SET", "wkey", "2") == b"OK"
            assert c.command("WAIT", "1", "300") == 0  # it cannot have this write
        finally:
            os.kill(replica.pid, signal.SIGCONT)


def test_writes_pipelined_behind_the_last_unsubscribe_invalidate(respcache, redis_server):
    rc = respcache.start(["--invalidation", "ttl"], backend=redis_server)
    redis_server.client().set("uk", "old")
    with rc.raw() as c:
        assert c.command("GET", "uk") == b"old"
        assert c.command("GET", "uk") == b"old"  # cached
        c.send(encode_command("SUBSCRIBE", "a") + encode_command("UNSUBSCRIBE", "a") +
               encode_command("SET", "uk", "new"))
        c.read_raw_replies(2)
        assert c.read_reply() == b"OK"
        wait_until(lambda: c.command("PING") == b"PONG", scaled(5), "the tunnel to end")
        assert c.command("GET", "uk") == b"new"


def test_reset_is_answered_after_client_reply_off(proxy):
    with proxy.raw() as c:
        c.send(encode_command("CLIENT", "REPLY", "OFF") + encode_command("RESET") + encode_command("PING"))
        assert c.read_raw_replies(2) == [b"+RESET\r\n", b"+PONG\r\n"]
