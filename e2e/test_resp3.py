"""RESP3 through respcache, compared with Redis itself wherever Redis defines the answer.

- HELLO: `HELLO 3` answers Redis's map (proto 3, the backend's version, the proxy's client id), with
  SETNAME and AUTH (a backend without a password, one with `requirepass`, and respcache's own
  --requirepass), Redis's errors for HELLO 4/1/0/abc, and HELLO 2 / RESET back to RESP2;
  CLIENT INFO/LIST say resp=3; INFO is a verbatim string as in Redis.
- The cache in RESP3: hits are Redis's bytes (proved with Redis's commandstats: cmdstat_get does not
  move), one entry serves RESP2 and RESP3 clients alike, a missing key is `_` in RESP3 and `$-1` in RESP2.
- MULTI/EXEC in RESP3: maps, sets, doubles and nulls inside EXEC are Redis's bytes; every RESP3 type
  (DEBUG PROTOCOL: big numbers, booleans, attributes, verbatim strings), alone and inside EXEC, in both
  protocols; a push Redis sends ahead of a reply (DEBUG PROTOCOL push) reaches the client first.
- Pub/sub in RESP3: pushes and ordinary replies on one connection, in Redis's order when the timing is
  made deterministic (a publish only between commands, each reply awaited), and all of them, in order,
  under a concurrent publisher; PING while subscribed in both protocols; CLIENT REPLY OFF and SUBSCRIBE.
- Real tools: `redis-cli -3` prints what it prints against Redis; `redis-benchmark -3` runs clean.

Every scenario is run first against Redis directly, then through respcache in front of the same Redis,
and the raw bytes are compared; the HELLO reply's `id` (respcache numbers its own clients) is the one
value normalized. The byte-for-byte session of test_compat.py also runs in RESP3 (`for_protocol`).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from typing import List, Sequence, Tuple

import pytest

from conftest import HOST, RawClient, RespReader, encode_command, scaled
from opslib import wait_started
from test_compat import hello_id

READ_TIMEOUT = scaled(3)
PASSWORD = "R3sp3-Passw0rd"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"

Cmd = Tuple[str, ...]


# ---------------------------------------------------------------------------------------------------
# Helpers.


def _hello3(c: RawClient) -> bytes:
    c.send_command("HELLO", "3")
    raw = c.read_raw_reply()
    assert raw.startswith(b"%7\r\n"), raw
    return raw


def exchange(port: int, commands: Sequence[Cmd], proto: int = 3, normalize_hello: bool = True) -> List[bytes]:
    """One connection: HELLO 3 first if proto is 3 (its reply not returned), then each command and its raw
    reply, one at a time. A missing reply is recorded as <timeout>/<eof> and ends the exchange."""
    out: List[bytes] = []
    with RawClient(port, timeout=READ_TIMEOUT) as c:
        if proto == 3:
            _hello3(c)
        for cmd in commands:
            c.send_command(*cmd)
            try:
                raw = c.read_raw_reply()
            except OSError:
                out.append(b"<timeout>")
                break
            except EOFError:
                out.append(b"<eof>")
                break
            if normalize_hello and cmd[0].upper() == "HELLO":
                raw = hello_id(raw)
            out.append(raw)
    return out


def assert_same(direct: Sequence[bytes], proxied: Sequence[bytes], commands: Sequence = ()):
    """Byte-identical replies, with a readable report of each difference."""
    if list(direct) == list(proxied):
        return
    lines = []
    for i in range(max(len(direct), len(proxied))):
        d = direct[i] if i < len(direct) else b"<missing>"
        p = proxied[i] if i < len(proxied) else b"<missing>"
        if d != p:
            label = " ".join(map(str, commands[i])) if i < len(commands) else f"frame {i}"
            lines.append(f"  {label}\n    redis:     {d!r}\n    respcache: {p!r}")
    raise AssertionError("replies through respcache differ from Redis's:\n" + "\n".join(lines))


def flush(port: int):
    with RawClient(port) as c:
        assert c.command("FLUSHALL") == b"OK"


def proxy_info(port: int) -> dict:
    with RawClient(port) as c:
        text = c.command("INFO", "proxy")
    assert isinstance(text, bytes), text
    out = {}
    for line in text.decode().splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def hits(port: int) -> int:
    return int(proxy_info(port)["cache_hits"])


def push(kind: str, *items) -> bytes:
    """A RESP3 push of bulk strings (ints as integers): push('message', 'ch', 'hi')."""
    out = [b">%d\r\n" % (len(items) + 1), b"$%d\r\n%s\r\n" % (len(kind), kind.encode())]
    for item in items:
        if isinstance(item, int):
            out.append(b":%d\r\n" % item)
        else:
            b = item.encode() if isinstance(item, str) else item
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


# ---------------------------------------------------------------------------------------------------
# HELLO


def _map(raw: bytes) -> dict:
    r = RespReader()
    r.feed(raw)
    value, _ = r.pop()
    return value


def test_hello3_answers_redis_map_with_the_proxys_id(proxy, redis_server):
    replies = {}
    for name, port in (("redis", redis_server.port), ("respcache", proxy.port)):
        with RawClient(port, timeout=READ_TIMEOUT) as c:
            raw = _hello3(c)
            client_id = c.command("CLIENT", "ID")
            again = c.command("HELLO")  # no argument: the current protocol, not switched
            assert isinstance(again, dict) and again[b"proto"] == 3, (name, again)
        fields = _map(raw)
        assert fields[b"proto"] == 3 and fields[b"id"] == client_id, (name, raw, client_id)
        replies[name] = raw
    assert hello_id(replies["respcache"]) == hello_id(replies["redis"])
    # The same version as Redis's (respcache reports its backend's).
    with RawClient(redis_server.port) as c:
        version = re.search(rb"redis_version:(\S+)", c.command("INFO", "server")).group(1)
    assert _map(replies["respcache"])[b"version"] == version


def test_hello3_setname_sets_the_name(proxy, redis_server):
    commands = [("HELLO", "3", "SETNAME", "resp3-name"), ("CLIENT", "GETNAME"),
                ("HELLO", "3", "SETNAME", "bad name"), ("CLIENT", "GETNAME"),
                ("HELLO", "3", "SETNAME"), ("HELLO", "2", "SETNAME", "back-to-two"), ("CLIENT", "GETNAME"),
                ("HELLO", "3", "SETNAME", ""), ("CLIENT", "GETNAME")]
    direct = exchange(redis_server.port, commands, proto=2)
    proxied = exchange(proxy.port, commands, proto=2)
    assert_same(direct, proxied, commands)
    assert proxied[1] == b"$10\r\nresp3-name\r\n" and proxied[6] == b"$11\r\nback-to-two\r\n"
    assert proxied[8] == b"_\r\n", proxied[8]  # the empty name is no name; RESP3 null
    with RawClient(proxy.port) as c:
        c.command("HELLO", "3", "SETNAME", "listed")
        info = c.command("CLIENT", "INFO")
        assert b" name=listed " in info and b" resp=3" in info, info


def test_hello3_auth_without_backend_password(proxy, redis_server):
    """No requirepass anywhere: the default user takes any password, in Redis and through respcache."""
    commands = [("HELLO", "3", "AUTH", "default", "wrong-password"), ("GET", "missing"),
                ("HELLO", "3", "AUTH", "nosuchuser", "pw"), ("GET", "missing"),
                ("HELLO", "3", "AUTH", "default"), ("HELLO", "2", "AUTH", "default", "x", "SETNAME", "authed"),
                ("GET", "missing"), ("CLIENT", "GETNAME")]
    direct = exchange(redis_server.port, commands, proto=2)
    proxied = exchange(proxy.port, commands, proto=2)
    assert_same(direct, proxied, commands)
    assert proxied[0].startswith(b"%7\r\n") and proxied[1] == b"_\r\n"
    assert proxied[2] == WRONGPASS and proxied[3] == b"_\r\n"  # a refused HELLO does not switch back


def test_hello3_auth_with_backend_requirepass(respcache, redis_server):
    # The harness probes a new Redis with an unauthenticated PING, so requirepass is set once it is up
    # (the same as starting it with --requirepass).
    assert redis_server.client().config_set("requirepass", PASSWORD)
    rc = respcache.start(backend=f"redis://:{PASSWORD}@{HOST}:{redis_server.port}")
    commands = [("HELLO", "3", "AUTH", "default", "wrong-password"), ("HELLO", "3", "AUTH", "nosuchuser", "pw"),
                ("HELLO", "3", "AUTH", "default"), ("HELLO", "4", "AUTH", "default", PASSWORD),
                ("HELLO", "3", "AUTH", "default", PASSWORD), ("GET", "missing"),
                ("HELLO", "3", "AUTH", "default", "wrong-again"), ("GET", "missing")]
    direct = exchange(redis_server.port, commands, proto=2)
    proxied = exchange(rc.port, commands, proto=2)
    assert_same(direct, proxied, commands)
    assert proxied[0] == WRONGPASS and proxied[1] == WRONGPASS
    assert proxied[4].startswith(b"%7\r\n") and proxied[5] == b"_\r\n" and proxied[6] == WRONGPASS
    # Before a successful AUTH, Redis answers -NOAUTH where respcache (no --requirepass of its own) runs the
    # command with its backend credentials (README: AUTH without --requirepass); but the refused HELLO
    # must not have switched the protocol.
    with RawClient(rc.port, timeout=READ_TIMEOUT) as c:
        c.send_command("HELLO", "3", "AUTH", "default", "wrong-password")
        assert c.read_raw_reply() == WRONGPASS
        c.send_command("GET", "missing")
        assert c.read_raw_reply() == b"$-1\r\n"


def test_hello3_auth_with_respcache_requirepass(respcache, redis_server):
    """respcache's own --requirepass answers as a Redis with that requirepass does, in RESP3 too."""
    # (not wait_ready: the harness's probe PING would be answered -NOAUTH)
    rc = wait_started(respcache.start(["--requirepass", PASSWORD], backend=redis_server, wait_ready=False))
    commands = [("GET", "missing"), ("HELLO", "3"), ("HELLO", "3", "AUTH", "default", "wrong-password"),
                ("GET", "missing"), ("HELLO", "3", "AUTH", "default", PASSWORD, "SETNAME", "n"), ("GET", "missing"),
                ("CLIENT", "GETNAME"), ("HGETALL", "nohash")]
    proxied = exchange(rc.port, commands, proto=2)
    assert redis_server.client().config_set("requirepass", PASSWORD)
    direct = exchange(redis_server.port, commands, proto=2)
    assert_same(direct, proxied, commands)
    assert proxied[2] == WRONGPASS and proxied[4].startswith(b"%7\r\n") and proxied[5] == b"_\r\n"


@pytest.mark.parametrize("proto", [2, 3], ids=["from-resp2", "from-resp3"])
def test_hello_protocol_errors(proxy, redis_server, proto):
    commands = [("HELLO", "4"), ("HELLO", "1"), ("HELLO", "0"), ("HELLO", "-1"), ("HELLO", "abc"),
                ("HELLO", "3.0"), ("HELLO", "99999999999999999999"), ("HELLO", "3", "NOSUCHOPTION"),
                ("HELLO", "2", "AUTH", "onlyuser"), ("GET", "missing"), ("HELLO",)]
    direct = exchange(redis_server.port, commands, proto=proto)
    proxied = exchange(proxy.port, commands, proto=proto)
    assert_same(direct, proxied, commands)
    noproto = b"-NOPROTO unsupported protocol version\r\n"
    assert proxied[0] == noproto and proxied[1] == noproto, proxied[:2]
    assert proxied[4].startswith(b"-ERR "), proxied[4]
    assert proxied[9] == (b"_\r\n" if proto == 3 else b"$-1\r\n")  # no error switched the protocol


def test_hello2_and_reset_return_to_resp2(proxy, redis_server):
    with RawClient(redis_server.port) as c:
        assert c.command("HSET", "h", "f", "v") == 1
    commands = [("GET", "missing"), ("HGETALL", "h"), ("CLIENT", "GETNAME"), ("HELLO", "2"),
                ("GET", "missing"), ("HGETALL", "h"), ("CLIENT", "GETNAME"), ("HELLO", "3"), ("GET", "missing"),
                ("SELECT", "2"), ("CLIENT", "SETNAME", "before-reset"), ("RESET",), ("GET", "missing"),
                ("HGETALL", "h"), ("CLIENT", "GETNAME"), ("HELLO",), ("UNSUBSCRIBE",)]
    direct = exchange(redis_server.port, commands, proto=3)
    proxied = exchange(proxy.port, commands, proto=3)
    assert_same(direct, proxied, commands)
    assert proxied[0] == b"_\r\n" and proxied[1] == b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n" and proxied[2] == b"_\r\n"
    assert proxied[3].startswith(b"*14\r\n") and proxied[4] == b"$-1\r\n" and proxied[6] == b"$-1\r\n"
    assert proxied[5] == b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    assert proxied[8] == b"_\r\n"
    assert proxied[11] == b"+RESET\r\n" and proxied[12] == b"$-1\r\n" and proxied[13] == b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    assert proxied[15].startswith(b"*14\r\n")
    assert proxied[16] == b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"


def test_client_info_and_list_show_resp3(proxy, redis_server):
    def describe(port):
        out = []
        with RawClient(port, timeout=READ_TIMEOUT) as c, RawClient(port, timeout=READ_TIMEOUT) as other:
            other.command("CLIENT", "SETNAME", "resp2-neighbour")
            for step in ("HELLO3", "INFO", "LIST", "HELLO2", "INFO", "HELLO3", "RESET", "INFO"):
                if step.startswith("HELLO"):
                    c.send_command("HELLO", step[-1])
                    c.read_raw_reply()
                    continue
                if step == "RESET":
                    assert c.command("RESET") == b"RESET"
                    continue
                c.send_command("CLIENT", step)
                raw = c.read_raw_reply()
                m = re.match(rb"([=$])(\d+)\r\n", raw)
                assert m, raw
                body = raw[m.end():-2]
                assert len(body) == int(m.group(2)), raw
                mine = [line for line in body.split(b"\n") if line and b" name=resp2-neighbour " not in line]
                neighbour = [line for line in body.split(b"\n") if b" name=resp2-neighbour " in line]
                out.append((step, m.group(1), body[:4] if m.group(1) == b"=" else b"",
                            re.findall(rb" resp=(\d)", b"\n".join(mine))[-1:],
                            re.findall(rb" resp=(\d)", b"\n".join(neighbour))))
        return out

    direct, proxied = describe(redis_server.port), describe(proxy.port)
    assert proxied == direct
    # CLIENT INFO in RESP3: a verbatim string "txt:...", resp=3; RESP2: a bulk string, resp=2.
    assert proxied[0] == ("INFO", b"=", b"txt:", [b"3"], [])
    assert proxied[1] == ("LIST", b"=", b"txt:", [b"3"], [b"2"])
    assert proxied[2] == ("INFO", b"$", b"", [b"2"], []) and proxied[3] == ("INFO", b"$", b"", [b"2"], [])


def test_info_in_resp3_is_a_verbatim_string_with_the_proxy_section(proxy, redis_server):
    for section in ((), ("server",), ("proxy",), ("everything",)):
        with RawClient(redis_server.port) as d, RawClient(proxy.port) as p:
            _hello3(d)
            _hello3(p)
            d.send_command("INFO", *section)
            p.send_command("INFO", *section)
            direct, proxied = d.read_raw_reply(), p.read_raw_reply()
        assert direct.startswith(b"=") and proxied.startswith(b"="), (section, direct[:20], proxied[:20])
        head = re.match(rb"=(\d+)\r\ntxt:", proxied)
        assert head and len(proxied) == head.end() - 4 + int(head.group(1)) + 2, proxied[:40]
        if section != ("server",):
            assert b"# Proxy\r\n" in proxied and b"cache_hits:" in proxied, (section, proxied[:200])


# ---------------------------------------------------------------------------------------------------
# The cache in RESP3.


def _warm_up(c: RawClient):
    """One GET on the client's connection first, so that its io thread's RESP3 shared backend link exists
    (made when first needed) before the GETs a test counts; test_first_resp3_get_on_a_new_link_is_cached
    is about the GET that makes it."""
    c.send_command("GET", "warm-up:missing")
    assert c.read_raw_reply() == b"_\r\n"


def _get_counted(redis_server, c: RawClient, key: str) -> Tuple[bytes, int]:
    """GET key on c: (raw reply, how many GETs Redis ran meanwhile)."""
    before = redis_server.get_calls()
    c.send_command("GET", key)
    raw = c.read_raw_reply()
    return raw, redis_server.get_calls() - before


@pytest.mark.parametrize("value", [b"plain", b"\x00\r\n binary \xff", b"x" * 6000], ids=["small", "binary", "large"])
def test_resp3_hit_is_redis_bytes_and_redis_sees_one_get(proxy, redis_server, value):
    with RawClient(redis_server.port) as c:
        assert c.command("SET", "k", value) == b"OK"
        _hello3(c)
        c.send_command("GET", "k")
        direct = c.read_raw_reply()
    with RawClient(proxy.port, timeout=READ_TIMEOUT) as c:
        _hello3(c)
        _warm_up(c)
        h0 = hits(proxy.port)
        first, first_calls = _get_counted(redis_server, c, "k")
        second, second_calls = _get_counted(redis_server, c, "k")
        third, third_calls = _get_counted(redis_server, c, "k")
    assert first == second == third == direct == b"$%d\r\n%s\r\n" % (len(value), value)
    assert first_calls == 1, "the first GET is a miss, fetched from Redis"
    assert (second_calls, third_calls) == (0, 0), "the later GETs must be hits: Redis's cmdstat_get moved"
    assert hits(proxy.port) == h0 + 2


@pytest.mark.parametrize("invalidation", ["tracking", "ttl"])
def test_first_resp3_get_on_a_new_link_is_cached(respcache, redis_server, invalidation):
    """The first RESP3 GET of a fresh respcache (which makes its thread's RESP3 shared link) fills the cache
    as the first RESP2 GET does: the second GET is a hit."""
    rc = respcache.start(["--threads", "1", "--invalidation", invalidation], backend=redis_server)
    with RawClient(redis_server.port) as c:
        c.command("SET", "k2", "for resp2")
        c.command("SET", "k3", "for resp3")
    counts = {}
    with RawClient(rc.port, timeout=READ_TIMEOUT) as two, RawClient(rc.port, timeout=READ_TIMEOUT) as three:
        _hello3(three)
        for name, c, key in (("resp2", two, "k2"), ("resp3", three, "k3")):
            counts[name] = [_get_counted(redis_server, c, key)[1] for _ in range(3)]
    assert counts == {"resp2": [1, 0, 0], "resp3": [1, 0, 0]}, \
        f"GETs Redis ran for each of 3 GETs of one key: {counts} (RESP3 should cache like RESP2)"


def test_resp2_and_resp3_clients_share_the_cache_entry(proxy, redis_server):
    with RawClient(redis_server.port) as c:
        c.command("SET", "a", "value-a")
        c.command("SET", "b", "value-b")
    with RawClient(proxy.port, timeout=READ_TIMEOUT) as two, RawClient(proxy.port, timeout=READ_TIMEOUT) as three:
        _hello3(three)
        _warm_up(three)
        two.send_command("GET", "warm-up:missing")
        assert two.read_raw_reply() == b"$-1\r\n"
        hits0 = hits(proxy.port)
        seen = []
        for first, then, key in ((two, three, "a"), (three, two, "b")):
            seen.append(_get_counted(redis_server, first, key))
            seen.append(_get_counted(redis_server, then, key))
        assert [raw for raw, _ in seen] == [b"$7\r\nvalue-a\r\n"] * 2 + [b"$7\r\nvalue-b\r\n"] * 2, seen
        assert [n for _, n in seen] == [1, 0, 1, 0], f"GETs Redis ran: {seen} (the other protocol's GET is a hit)"
        assert hits(proxy.port) == hits0 + 2
        # A write by the RESP3 client invalidates what the RESP2 client reads, and the other way round.
        three.send_command("SET", "a", "new-a")
        assert three.read_raw_reply() == b"+OK\r\n"
        two.send_command("GET", "a")
        assert two.read_raw_reply() == b"$5\r\nnew-a\r\n"
        two.send_command("DEL", "b")
        assert two.read_raw_reply() == b":1\r\n"
        three.send_command("GET", "b")
        assert three.read_raw_reply() == b"_\r\n"
        two.send_command("GET", "b")
        assert two.read_raw_reply() == b"$-1\r\n"


def test_missing_key_is_null_in_resp3_and_nil_bulk_in_resp2(proxy, redis_server):
    def run(port):
        out = []
        with RawClient(port, timeout=READ_TIMEOUT) as two, RawClient(port, timeout=READ_TIMEOUT) as three:
            _hello3(three)
            for _ in range(3):  # repeated: whatever the proxy remembers of a miss must fit each protocol
                for c in (three, two):
                    for cmd in (("GET", "missing"), ("MGET", "missing", "k"), ("GETDEL", "missing"),
                                ("GETEX", "missing"), ("SET", "k", "v"), ("GET", "k"), ("DEL", "k"), ("GET", "k")):
                        c.send_command(*cmd)
                        out.append(c.read_raw_reply())
        return out

    direct, proxied = run(redis_server.port), run(proxy.port)
    assert_same(direct, proxied)
    assert proxied[0] == b"_\r\n" and proxied[1] == b"*2\r\n_\r\n_\r\n" and proxied[7] == b"_\r\n"
    assert proxied[8] == b"$-1\r\n" and proxied[9] == b"*2\r\n$-1\r\n$-1\r\n" and proxied[15] == b"$-1\r\n"


# ---------------------------------------------------------------------------------------------------
# MULTI / EXEC


def _tx_data(port: int):
    with RawClient(port) as c:
        assert c.command("FLUSHALL") == b"OK"
        c.command("HSET", "h", "f1", "v1", "f2", "v2")
        c.command("ZADD", "z", "1.5", "a", "2.25", "b", "-inf", "low", "3", "c")
        c.command("SADD", "s", "x", "y", "z")
        c.command("SET", "k", "v")


def test_multi_exec_replies_in_resp3_are_redis_bytes(proxy, redis_server):
    commands = [("GET", "k"), ("GET", "k"),  # cached before the transaction
                ("MULTI",), ("HGETALL", "h"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"), ("ZSCORE", "z", "b"),
                ("ZMSCORE", "z", "a", "none"), ("SMEMBERS", "s"), ("GET", "missing"), ("GET", "k"),
                ("HGET", "h", "nosuch"), ("LPOP", "nolist"), ("ZINCRBY", "z", "0.5", "a"), ("INCRBYFLOAT", "f", "1.5"),
                ("CONFIG", "GET", "maxmemory"), ("HRANDFIELD", "nohash", "2"), ("EXISTS", "k"),
                ("ZPOPMIN", "z"), ("SET", "k", "in tx"), ("GET", "k"), ("EXEC",),
                ("GET", "k"), ("GET", "k"),
                ("MULTI",), ("SET", "k", "discarded"), ("DISCARD",), ("GET", "k"),
                ("MULTI",), ("HGETALL", "h"), ("SET", "k"), ("EXEC",), ("GET", "k")]
    _tx_data(redis_server.port)
    direct = exchange(redis_server.port, commands)
    _tx_data(redis_server.port)
    proxied = exchange(proxy.port, commands)
    assert_same(direct, proxied, commands)
    exec_reply = proxied[commands.index(("EXEC",))]
    for token in (b"%2\r\n", b",1.5\r\n", b",-inf\r\n", b"~3\r\n", b"_\r\n", b",2.25\r\n"):
        assert token in exec_reply, (token, exec_reply)
    assert proxied[21] == b"$5\r\nin tx\r\n" and proxied[-1] == b"$5\r\nin tx\r\n"
    assert proxied[-2].startswith(b"-EXECABORT"), proxied[-2]


DEBUG_TYPES = ("string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib", "verbatim",
               "true", "false")


@pytest.mark.parametrize("proto", [2, 3])
def test_every_resp3_type_is_redis_bytes(proxy, redis_server, proto):
    """DEBUG PROTOCOL <type> makes Redis answer with each of its reply types (big numbers, booleans,
    attributes...): through respcache, alone and inside MULTI/EXEC, in each protocol, Redis's bytes."""
    commands = [("DEBUG", "PROTOCOL", t) for t in DEBUG_TYPES]
    commands += [("MULTI",), *commands, ("EXEC",)]
    direct = exchange(redis_server.port, commands, proto=proto)
    proxied = exchange(proxy.port, commands, proto=proto)
    assert_same(direct, proxied, commands)
    if proto == 3:
        for token in (b"(1234567", b"#t\r\n", b"|1\r\n", b"=29\r\ntxt:", b"~3\r\n", b"%3\r\n", b",3.141"):
            assert token in b"".join(proxied), (token, proxied)


@pytest.mark.parametrize("proto", [2, 3])
def test_a_push_ahead_of_a_reply_reaches_the_client(proxy, redis_server, proto):
    """DEBUG PROTOCOL push: Redis sends a RESP3 client a push, then the reply (RESP2: an error)."""
    def run(port):
        with RawClient(port, timeout=READ_TIMEOUT) as c:
            if proto == 3:
                _hello3(c)
            c.send_command("DEBUG", "PROTOCOL", "push")
            frames = [c.read_raw_reply()]
            if proto == 3:
                frames.append(c.read_raw_reply())
            c.send_command("PING")
            frames.append(c.read_raw_reply())
            return frames
    direct = run(redis_server.port)
    assert direct[0].startswith(b">2\r\n" if proto == 3 else b"-ERR"), direct
    assert run(proxy.port) == direct


def test_watch_abort_in_resp3_is_a_null(proxy, redis_server):
    def run(port):
        out = []
        with RawClient(port, timeout=READ_TIMEOUT) as a, RawClient(port, timeout=READ_TIMEOUT) as b:
            _hello3(a)
            for conn, cmd in ((a, ("SET", "w", "1")), (a, ("GET", "w")), (a, ("WATCH", "w")), (b, ("SET", "w", "2")),
                              (a, ("MULTI",)), (a, ("GET", "w")), (a, ("EXEC",)), (a, ("GET", "w")),
                              (a, ("WATCH", "w")), (a, ("MULTI",)), (a, ("INCR", "w")), (a, ("EXEC",)), (a, ("GET", "w"))):
                conn.send_command(*cmd)
                out.append(conn.read_raw_reply())
        return out

    flush(redis_server.port)
    direct = run(redis_server.port)
    flush(redis_server.port)
    proxied = run(proxy.port)
    assert_same(direct, proxied)
    assert proxied[6] == b"_\r\n" and proxied[7] == b"$1\r\n2\r\n" and proxied[11] == b"*1\r\n:3\r\n"


# ---------------------------------------------------------------------------------------------------
# Pub/sub in RESP3.

# (who, command, replies): on the subscriber "a", read frames until `replies` non-push replies came; on
# the publisher "b", one reply. A PUBLISH's reply comes after Redis has queued the message for "a", so
# the message precedes the reply of whatever "a" sends next: a deterministic interleaving.
SCENARIO: List[Tuple[str, Cmd, int]] = [
    ("a", ("SET", "k", "before"), 1), ("a", ("GET", "k"), 1), ("a", ("GET", "k"), 1),
    ("a", ("SUBSCRIBE", "ch:1", "ch:2"), 0), ("a", ("PSUBSCRIBE", "p:*"), 0),
    ("b", ("PUBLISH", "ch:1", "m1"), 1),
    ("a", ("SET", "k", "while subscribed"), 1),
    ("a", ("GET", "k"), 1),
    ("b", ("PUBLISH", "ch:2", "m2"), 1),
    ("a", ("GET", "k"), 1),  # the message first, then the value
    ("b", ("PUBLISH", "p:x", "m3"), 1),
    ("a", ("PING",), 1),
    ("b", ("PUBLISH", "ch:1", "m4"), 1), ("b", ("PUBLISH", "ch:2", "m5"), 1),
    ("a", ("ECHO", "e"), 1),
    ("b", ("PUBLISH", "ch:1", "m6"), 1),
    ("a", ("INCR", "n"), 1),
    ("b", ("PUBLISH", "ch:1", "m7"), 1),
    ("a", ("HGETALL", "nohash"), 1),
    ("b", ("PUBLISH", "ch:1", "m8"), 1),
    ("a", ("PING", "with arg"), 1),
    ("a", ("SUBSCRIBE", "ch:3"), 0),
    ("b", ("PUBLISH", "ch:3", "m9"), 1),
    ("a", ("UNSUBSCRIBE", "ch:1"), 0),
    ("b", ("PUBLISH", "ch:1", "nobody"), 1),
    ("a", ("GET", "k"), 1),
    ("a", ("PUNSUBSCRIBE",), 0), ("a", ("UNSUBSCRIBE",), 0),
    ("b", ("PUBLISH", "ch:2", "after"), 1),
    ("a", ("GET", "k"), 1), ("a", ("GET", "k"), 1),
]
SCENARIO_PUSHES = {("SUBSCRIBE", "ch:1", "ch:2"): 2, ("PSUBSCRIBE", "p:*"): 1, ("SUBSCRIBE", "ch:3"): 1,
                   ("UNSUBSCRIBE", "ch:1"): 1, ("PUNSUBSCRIBE",): 1, ("UNSUBSCRIBE",): 2}


def _run_scenario(port: int, proto: int) -> List[Tuple[str, bytes]]:
    """SCENARIO on two connections; returns (step label, frame) for every frame, in arrival order."""
    frames: List[Tuple[str, bytes]] = []
    with RawClient(port, timeout=READ_TIMEOUT) as a, RawClient(port, timeout=READ_TIMEOUT) as b:
        if proto == 3:
            _hello3(a)
        delivered = 0  # messages published to "a" since its last step
        for who, cmd, replies in SCENARIO:
            label = f"{who}: {' '.join(cmd)}"
            if who == "b":
                b.send_command(*cmd)
                raw = b.read_raw_reply()
                frames.append((label, raw))
                delivered += int(raw[1:-2]) if raw.startswith(b":") else 0
                continue
            a.send_command(*cmd)
            # the messages published since the last step, the command's confirmations, its replies
            for _ in range(delivered + SCENARIO_PUSHES.get(cmd, 0) + replies):
                try:
                    frames.append((label, a.read_raw_reply()))
                except OSError:
                    frames.append((label, b"<timeout>"))
                    return frames
            delivered = 0
        # Nothing else waits: the next reply after a final PING is its own.
        a.send_command("PING")
        frames.append(("a: PING (final)", a.read_raw_reply()))
    return frames


@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
def test_pubsub_pushes_and_replies_interleave_as_in_redis(proxy, redis_server, proto):
    flush(redis_server.port)
    direct = _run_scenario(redis_server.port, proto)
    flush(redis_server.port)
    proxied = _run_scenario(proxy.port, proto)
    assert_same([f for _, f in direct], [f for _, f in proxied], [(label,) for label, _ in direct])
    assert [label for label, _ in direct] == [label for label, _ in proxied]
    frames = [f for _, f in proxied]
    assert b"<timeout>" not in frames
    if proto == 3:
        i = frames.index(push("message", "ch:2", "m2"))
        assert frames[i + 1] == b"$16\r\nwhile subscribed\r\n", frames[i:i + 2]
        assert push("pmessage", "p:*", "p:x", "m3") in frames and b"+PONG\r\n" in frames
        # the SET while subscribed was seen after the subscription ended (it invalidated the cached "before")
        assert frames[-3:] == [b"$16\r\nwhile subscribed\r\n"] * 2 + [b"+PONG\r\n"], frames[-3:]
    else:
        assert b"*2\r\n$4\r\npong\r\n$0\r\n\r\n" in frames


@pytest.mark.timeout(60)
def test_resp3_pubsub_concurrent_publisher_loses_nothing(proxy, redis_server):
    """A publisher floods the channel while the subscriber pipelines ordinary commands: every message
    arrives, in order, and every reply, in request order."""
    n_messages, n_rounds = 2000, 300
    errors: List[BaseException] = []
    published = threading.Event()

    def publisher():
        try:
            with RawClient(proxy.port, timeout=READ_TIMEOUT) as b:
                for i in range(0, n_messages, 20):
                    b.send(b"".join(encode_command("PUBLISH", "flood", f"msg-{j}") for j in range(i, i + 20)))
                    for raw in b.read_raw_replies(20):
                        assert raw == b":1\r\n", raw
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)
        finally:
            published.set()

    with RawClient(proxy.port, timeout=READ_TIMEOUT) as a:
        _hello3(a)
        a.send_command("SUBSCRIBE", "flood")
        assert a.read_raw_reply() == push("subscribe", "flood", 1)
        thread = threading.Thread(target=publisher, daemon=True)
        thread.start()
        messages: List[bytes] = []
        replies: List[bytes] = []
        expected: List[bytes] = []
        for r in range(n_rounds):
            value = f"v-{r}".encode()
            a.send(encode_command("SET", "flood:k", value) + encode_command("GET", "flood:k") +
                   encode_command("PING") + encode_command("ECHO", f"e-{r}") + encode_command("INCR", "flood:n"))
            expected += [b"+OK\r\n", b"$%d\r\n%s\r\n" % (len(value), value), b"+PONG\r\n",
                         b"$%d\r\ne-%d\r\n" % (len(str(r)) + 2, r), b":%d\r\n" % (r + 1)]
            while len(replies) < len(expected):
                raw = a.read_raw_reply()
                (messages if raw.startswith(b">") else replies).append(raw)
        assert published.wait(scaled(30)), "the publisher did not finish"
        thread.join(scaled(5))
        assert not errors, errors
        deadline = time.monotonic() + scaled(10)
        while len(messages) < n_messages and time.monotonic() < deadline:
            raw = a.read_raw_reply()
            assert raw.startswith(b">"), raw
            messages.append(raw)
        assert replies == expected
        assert messages == [push("message", "flood", f"msg-{j}") for j in range(n_messages)]
        a.send_command("UNSUBSCRIBE")
        assert a.read_raw_reply() == push("unsubscribe", "flood", 0)
        a.send_command("PING")
        assert a.read_raw_reply() == b"+PONG\r\n"


@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
@pytest.mark.parametrize("subscribe", [("SUBSCRIBE", "ch"), ("PSUBSCRIBE", "p*"), ("SSUBSCRIBE", "sch")])
def test_ping_while_subscribed(proxy, redis_server, proto, subscribe):
    commands = [subscribe, ("PING",), ("PING", "hi"), ("PING", ""), ("PING", "a", "b")]
    direct = exchange(redis_server.port, commands, proto)
    proxied = exchange(proxy.port, commands, proto)
    assert_same(direct, proxied, commands)
    if proto == 2:
        assert proxied[1:3] == [b"*2\r\n$4\r\npong\r\n$0\r\n\r\n", b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n"]
    else:
        assert proxied[1:3] == [b"+PONG\r\n", b"$2\r\nhi\r\n"]


def _reply_off_scenario(port: int, proto: int, steps) -> List[bytes]:
    """Steps ('a', cmd, frames to read on "a") or ('b', cmd): b publishes, its reply is recorded."""
    out: List[bytes] = []
    with RawClient(port, timeout=READ_TIMEOUT) as a, RawClient(port, timeout=READ_TIMEOUT) as b:
        if proto == 3:
            _hello3(a)
        for step in steps:
            if step[0] == "b":
                b.send_command(*step[1])
                out.append(b"published " + b.read_raw_reply())
                continue
            _, cmd, n = step
            a.send_command(*cmd)
            for _ in range(n):
                try:
                    out.append(a.read_raw_reply())
                except OSError:
                    out.append(b"<timeout after %s>" % " ".join(cmd).encode())
                    return out
    return out


@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
def test_client_reply_off_then_subscribe_still_pushes(proxy, redis_server, proto):
    """CLIENT REPLY OFF silences replies, not pub/sub confirmations and messages (Redis 7.0, both protocols).
    A reply that should not come would show up before the next push that must."""
    steps = [("a", ("CLIENT", "REPLY", "OFF"), 0),
             ("a", ("SET", "silenced", "1"), 0),
             ("a", ("SUBSCRIBE", "ch"), 1),  # the confirmation (not SET's +OK)
             ("b", ("PUBLISH", "ch", "m1")),
             ("a", ("PING",), 0),  # silenced
             ("a", ("SUBSCRIBE", "ch2"), 2),  # m1, then the confirmation (no PING reply between)
             ("b", ("PUBLISH", "ch2", "m2")),
             ("a", ("PSUBSCRIBE", "p*"), 2),  # m2, the confirmation
             ("b", ("PUBLISH", "pp", "m3")),
             ("a", ("UNSUBSCRIBE", "ch"), 2),  # the pmessage, the confirmation
             ("a", ("PUNSUBSCRIBE",), 1)]
    direct = _reply_off_scenario(redis_server.port, proto, steps)
    proxied = _reply_off_scenario(proxy.port, proto, steps)
    assert not any(b"<timeout" in f for f in direct), direct
    assert [f[:1] for f in direct if not f.startswith(b"published")] == [b">" if proto == 3 else b"*"] * 8, direct
    assert_same(direct, proxied)


@pytest.mark.parametrize("proto", [2, 3], ids=["resp2", "resp3"])
def test_client_reply_on_while_subscribed(proxy, redis_server, proto):
    """CLIENT REPLY OFF before SUBSCRIBE, then CLIENT REPLY ON while subscribed: RESP3 Redis answers it
    (+OK) and what follows; RESP2 Redis refuses CLIENT while subscribed (silently: replies are off)
    until the subscription ends."""
    steps = [("a", ("CLIENT", "REPLY", "OFF"), 0), ("a", ("SUBSCRIBE", "ch"), 1)]
    if proto == 3:
        steps += [("a", ("CLIENT", "REPLY", "ON"), 1), ("a", ("PING",), 1), ("b", ("PUBLISH", "ch", "m")),
                  ("a", ("GET", "missing"), 2), ("a", ("UNSUBSCRIBE",), 1), ("a", ("PING",), 1)]
    else:
        steps += [("a", ("CLIENT", "REPLY", "ON"), 0), ("a", ("PING",), 0), ("a", ("UNSUBSCRIBE",), 1),
                  ("a", ("CLIENT", "REPLY", "ON"), 1), ("a", ("PING",), 1)]
    direct = _reply_off_scenario(redis_server.port, proto, steps)
    proxied = _reply_off_scenario(proxy.port, proto, steps)
    assert not any(b"<timeout" in f for f in direct), direct
    assert_same(direct, proxied)


def test_resp3_local_commands_while_subscribed_are_answered_as_outside(respcache, redis_server):
    """In RESP3 Redis runs any command while subscribed. Through respcache the commands it answers itself
    (README, "Served locally": CLIENT ID/SETNAME/GETNAME/INFO/..., INFO's Proxy section) must still be about
    the client's own connection to respcache, as outside a subscription: never about the backend
    connection that carries the subscription, nor leak what an earlier subscriber set on that connection."""
    rc = respcache.start(["--threads", "1"], backend=redis_server)  # one pool: the dedicated link is reused

    def run(port) -> List[Tuple[str, bytes]]:
        out = []
        with RawClient(port, timeout=READ_TIMEOUT) as first:
            _hello3(first)
            own_id = first.command("CLIENT", "ID")
            for i, cmd in enumerate((("SUBSCRIBE", "ch"), ("CLIENT", "GETNAME"), ("CLIENT", "SETNAME", "first-sub"),
                                     ("CLIENT", "GETNAME"), ("UNSUBSCRIBE",), ("CLIENT", "GETNAME"),
                                     ("SUBSCRIBE", "ch"))):
                first.send_command(*cmd)
                out.append((f"first, step {i}: " + " ".join(cmd), first.read_raw_reply()))
            out.append(("first: CLIENT ID (subscribed) == CLIENT ID before",
                        b"same id" if first.command("CLIENT", "ID") == own_id else b"another id"))
            first.send_command("CLIENT", "INFO")
            info = first.read_raw_reply()
            out.append(("first: CLIENT INFO (subscribed) describes it",
                        b"its own" if b"id=%d " % own_id in info else b"another connection's: " + info[:90]))
            first.send_command("UNSUBSCRIBE")  # the subscription ends cleanly: its backend link may be reused
            out.append(("first: UNSUBSCRIBE", first.read_raw_reply()))
        with RawClient(port, timeout=READ_TIMEOUT) as second:
            _hello3(second)
            for cmd in (("SUBSCRIBE", "ch"), ("CLIENT", "GETNAME")):
                second.send_command(*cmd)
                out.append(("second: " + " ".join(cmd), second.read_raw_reply()))
        return out

    direct, proxied = run(redis_server.port), run(rc.port)
    problems = [f"  {label}\n    redis:     {d!r}\n    respcache: {p!r}"
                for (label, d), (_, p) in zip(direct, proxied) if d != p]
    # INFO while subscribed still has respcache's section (Redis has none to compare with).
    with RawClient(rc.port, timeout=READ_TIMEOUT) as c:
        _hello3(c)
        c.send_command("SUBSCRIBE", "ch")
        c.read_raw_reply()
        info = c.command("INFO")
        if b"# Proxy" not in info:
            problems.append("  INFO while subscribed has no # Proxy section (it is Redis's INFO of the "
                            "subscription's backend connection)")
    assert not problems, "while subscribed in RESP3, respcache answers differently:\n" + "\n".join(problems)


def test_resp3_subscriber_cannot_kill_backend_connections(proxy, redis_server):
    """CLIENT KILL is about respcache's own clients (README): outside a subscription, the id of a backend
    connection (here the invalidation channel's, which respcache logs) is no client of respcache (:0).
    A RESP3 subscriber must get the same answer, and the channel must live on."""
    channel_id = int(re.search(r"invalidation channel live redirect_id=(\d+)", proxy.log).group(1))
    losses = int(proxy_info(proxy.port)["invalidation_channel_losses"])
    with RawClient(proxy.port, timeout=READ_TIMEOUT) as c:
        _hello3(c)
        c.send_command("CLIENT", "KILL", "ID", str(channel_id))
        outside = c.read_raw_reply()
        c.send_command("SUBSCRIBE", "ch")
        assert c.read_raw_reply() == push("subscribe", "ch", 1)
        c.send_command("CLIENT", "KILL", "ID", str(channel_id))
        inside = c.read_raw_reply()
    assert outside == b":0\r\n", outside
    assert inside == outside, f"CLIENT KILL ID {channel_id} while subscribed answered {inside!r}"
    assert int(proxy_info(proxy.port)["invalidation_channel_losses"]) == losses, "the channel was killed"


# ---------------------------------------------------------------------------------------------------
# Real tools.


def _tool_supports_resp3(tool: str) -> bool:
    cp = subprocess.run([tool, "--help"], capture_output=True, timeout=scaled(10), stdin=subprocess.DEVNULL)
    return b"\n -3 " in cp.stdout + cp.stderr or b"  -3 " in cp.stdout + cp.stderr


def _cli(port: int, *args: str) -> bytes:
    cp = subprocess.run(["redis-cli", "-3", "-h", HOST, "-p", str(port), *args], capture_output=True,
                        timeout=scaled(10), stdin=subprocess.DEVNULL)
    assert cp.returncode == 0 and not cp.stderr, (args, cp)
    return cp.stdout


def test_redis_cli_3_prints_what_it_prints_against_redis(proxy, redis_server):
    if not _tool_supports_resp3("redis-cli"):
        pytest.skip("this redis-cli has no -3")
    with RawClient(redis_server.port) as c:
        c.command("SET", "k", "value")
        c.command("HSET", "h", "f1", "v1", "f2", "2")
        c.command("ZADD", "z", "1.5", "a")
    normalize_id = lambda out: re.sub(rb"(\bid\b\D*)\d+", rb"\1<id>", out)  # noqa: E731
    for args in (("hello", "3"), ("--no-raw", "hello", "3"), ("get", "k"), ("get", "k"), ("--no-raw", "get", "k"),
                 ("get", "missing"), ("--no-raw", "get", "missing"), ("hgetall", "h"), ("--no-raw", "hgetall", "h"),
                 ("--no-raw", "zrange", "z", "0", "-1", "withscores"), ("--no-raw", "client", "getname"),
                 ("--no-raw", "ping")):
        direct, proxied = _cli(redis_server.port, *args), _cli(proxy.port, *args)
        if "hello" in args:
            assert re.search(rb"proto\D*3", proxied), proxied
            direct, proxied = normalize_id(direct), normalize_id(proxied)
        assert proxied == direct, (args, direct, proxied)
    assert _cli(proxy.port, "--no-raw", "get", "missing") == b"(nil)\n"
    assert _cli(proxy.port, "--no-raw", "hgetall", "h") == b'1# "f1" => "v1"\n2# "f2" => "2"\n'


@pytest.mark.timeout(90)
def test_redis_benchmark_3_runs_clean(proxy, redis_server):
    if not _tool_supports_resp3("redis-benchmark"):
        pytest.skip("this redis-benchmark has no -3")
    n = 2000
    stats0, info0 = redis_server.commandstats(), proxy_info(proxy.port)
    cp = subprocess.run(["redis-benchmark", "-3", "-h", HOST, "-p", str(proxy.port), "-t", "get,set", "-n", str(n), "-q"],
                        capture_output=True, timeout=scaled(60), stdin=subprocess.DEVNULL)
    out = (cp.stdout + cp.stderr).decode(errors="replace")
    assert cp.returncode == 0, out
    assert re.search(r"SET: [\d.]+ requests per second", out) and re.search(r"GET: [\d.]+ requests per second", out), out
    assert "error" not in out.lower() and "ERR" not in out, out
    stats1, info1 = redis_server.commandstats(), proxy_info(proxy.port)
    sets = stats1.get("set", 0) - stats0.get("set", 0)
    gets = stats1.get("get", 0) - stats0.get("get", 0)
    hit_count = int(info1["cache_hits"]) - int(info0["cache_hits"])
    shared = int(info1["cache_shared_misses"]) - int(info0["cache_shared_misses"])
    assert sets == n, f"Redis ran {sets} SETs of the benchmark's {n}"
    assert gets + hit_count + shared == n, f"Redis ran {gets} GETs, respcache served {hit_count} hits and " \
                                           f"{shared} misses that shared a request, of {n} GETs"
    assert hit_count >= n // 2, f"only {hit_count} hits for {n} GETs of one key"
    assert int(info1["protocol_errors"]) == int(info0["protocol_errors"])
