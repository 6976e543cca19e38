"""The core daemon, end to end: the RESP protocol as clients see it (issue "The core daemon", item 8).

Connection commands, error texts, inline commands, pipelining and malformed input. Where respcache must
behave as Redis does, the test sends the same bytes to the real redis-server and compares byte for byte.
"""

import random
import socket

import pytest

from conftest import RawClient, RespError, encode_command


def exchange_until_eof(port: int, data: bytes) -> bytes:
    """Sends `data` on a new connection and returns every byte until the server closes it."""
    with RawClient(port) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close while the tail of an oversized request is still being sent
        return c.read_until_eof()


def exchange(port: int, data: bytes, replies: int) -> list:
    """Sends `data` on a new connection and returns the raw bytes of the next `replies` replies."""
    with RawClient(port) as c:
        c.send(data)
        return c.read_raw_replies(replies)


def assert_still_serving(port: int):
    with RawClient(port) as c:
        assert c.command("PING") == b"PONG"
        assert c.command("SET", "still:serving", "yes") == b"OK"
        assert c.command("GET", "still:serving") == b"yes"


# ---------------------------------------------------------------------------------------------------
# Connection commands.


def test_ping_without_argument(proxy):
    with proxy.raw() as c:
        c.send(encode_command("PING"))
        assert c.read_raw_reply() == b"+PONG\r\n"


def test_ping_with_argument_is_a_bulk_string(proxy):
    with proxy.raw() as c:
        c.send(encode_command("PING", "hello there"))
        assert c.read_raw_reply() == b"$11\r\nhello there\r\n"


def test_echo(proxy):
    with proxy.raw() as c:
        c.send(encode_command("ECHO", b"bin\x00ary\r\n"))
        assert c.read_raw_reply() == b"$9\r\nbin\x00ary\r\n\r\n"


def test_quit_replies_ok_then_the_server_closes(proxy):
    with proxy.raw() as c:
        c.send(encode_command("QUIT"))
        assert c.read_until_eof() == b"+OK\r\n"


def test_quit_ignores_what_follows_it_like_redis(proxy, redis_server):
    data = encode_command("PING") + encode_command("QUIT") + encode_command("SET", "after:quit", "1")
    expected = exchange_until_eof(redis_server.port, data)
    assert expected == b"+PONG\r\n+OK\r\n"
    assert exchange_until_eof(proxy.port, data) == expected
    assert redis_server.client().exists("after:quit") == 0


def test_redis_py_client_round_trip(proxy):
    c = proxy.client()
    assert c.ping() is True
    assert c.echo(b"x") == b"x"
    assert c.set("rt", b"\xff\x00v") is True
    assert c.get("rt") == b"\xff\x00v"
    assert c.incr("rt:n") == 1


# ---------------------------------------------------------------------------------------------------
# Error texts and command names.


def test_unknown_command_error_text_exact(proxy, redis_server):
    expected = b"-ERR unknown command 'foo', with args beginning with: 'bar' 'baz' \r\n"
    assert exchange(proxy.port, encode_command("foo", "bar", "baz"), 1) == [expected]
    assert exchange(proxy.port, b"foo bar baz\r\n", 1) == [expected]
    # The same text as Redis, and the connection stays open.
    assert exchange(redis_server.port, encode_command("foo", "bar", "baz"), 1) == [expected]
    with proxy.raw() as c:
        c.send(encode_command("FOO") + encode_command("PING"))
        assert c.read_raw_replies(2) == [b"-ERR unknown command 'FOO', with args beginning with: \r\n", b"+PONG\r\n"]


def test_wrong_arity_error_text_exact(proxy):
    expected = b"-ERR wrong number of arguments for 'get' command\r\n"
    with proxy.raw() as c:
        c.send(encode_command("GET") + encode_command("GeT", "a", "b") + encode_command("get", "a", "b", "c")
               + encode_command("PING"))
        assert c.read_raw_replies(4) == [expected, expected, expected, b"+PONG\r\n"]


def test_command_names_are_case_insensitive(proxy, redis_server):
    redis_server.client().set("ci", "value")
    before = redis_server.get_calls()
    with proxy.raw() as c:
        for name in ("get", "GeT", "GET", "gEt"):
            assert c.command(name, "ci") == b"value", name
        assert c.command("pInG") == b"PONG"
        assert c.command("eChO", "e") == b"e"
        assert c.command("SeT", "ci2", "v2") == b"OK"
        assert c.command("Get", "ci2") == b"v2"
    # Every spelling of GET went through the cache: one miss for `ci` (then hits), one for `ci2`.
    assert redis_server.get_calls() - before == 2


# ---------------------------------------------------------------------------------------------------
# Inline commands, as telnet and nc users type them.


def test_inline_commands(proxy, redis_server):
    with proxy.raw() as c:
        c.send(b"PING\r\n")
        assert c.read_raw_reply() == b"+PONG\r\n"
        c.send(b'SET a "hello world"\r\n')
        assert c.read_raw_reply() == b"+OK\r\n"
        c.send(b"GET a\r\n")
        assert c.read_raw_reply() == b"$11\r\nhello world\r\n"
    assert redis_server.client().get("a") == b"hello world"


def test_inline_commands_match_redis_byte_for_byte(proxy, redis_server):
    data = (b"PING\n"  # a bare LF, as nc sends it
            b"ECHO 'single quoted' \"esc\\x41ped\\n\"\r\n"
            b"\r\n"  # an empty line is ignored
            b"   SET   spaced   v1  \r\n"
            b"GET spaced\r\n"
            b"INCR spaced\r\n"
            b"PING two words\r\n")
    replies = 6
    expected = exchange(redis_server.port, data, replies)
    redis_server.client().flushall()
    assert exchange(proxy.port, data, replies) == expected


# ---------------------------------------------------------------------------------------------------
# Pipelining.


def mixed_pipeline(n: int, seed: int) -> bytes:
    """`n` commands of every kind: writes, reads of keys written earlier in the same pipeline, counters,
    type errors, PING and ECHO, an unknown command and wrong arities."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        key = f"p:{rng.randrange(30)}"
        kind = rng.randrange(10)
        if kind == 0:
            out.append(encode_command("SET", key, f"value-{i}"))
        elif kind in (1, 2, 3):
            out.append(encode_command("GET", key))
        elif kind == 4:
            out.append(encode_command("INCR", f"n:{rng.randrange(4)}"))
        elif kind == 5:
            out.append(encode_command("INCR", key))  # an error when the key holds a word
        elif kind == 6:
            out.append(encode_command("PING") if rng.random() < 0.5 else encode_command("PING", f"hi {i}"))
        elif kind == 7:
            out.append(encode_command("nosuchcommand", key, i))
        elif kind == 8:
            out.append(rng.choice([encode_command("GET"), encode_command("SET", key), encode_command("get", 1, 2)]))
        else:
            out.append(rng.choice([encode_command("DEL", key), encode_command("ECHO", f"e{i}"),
                                   encode_command("APPEND", key, "+")]))
    return b"".join(out)


def snapshot(client) -> dict:
    return {k: client.get(k) for k in sorted(client.keys("*"))}


@pytest.mark.parametrize("invalidation", ["tracking", "ttl"])
def test_pipeline_of_1000_mixed_commands_matches_redis(respcache, redis_server, invalidation):
    rc = respcache.start(["--invalidation", invalidation], backend=redis_server)
    n = 1000
    data = mixed_pipeline(n, seed=8)
    direct = redis_server.client()

    expected = exchange(redis_server.port, data, n)
    expected_state = snapshot(direct)
    direct.flushall()

    with rc.raw() as c:
        c.send(data)  # one write
        got = c.read_raw_replies(n)
        c.sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            c.sock.recv(1)  # exactly n replies, nothing more
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"reply {i} differs"
    assert snapshot(direct) == expected_state


def test_pipeline_split_at_random_boundaries(proxy, redis_server):
    n = 300
    data = mixed_pipeline(n, seed=99)
    expected = exchange(redis_server.port, data, n)
    redis_server.client().flushall()

    rng = random.Random(5)
    with proxy.raw() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pos = 0
        while pos < len(data):
            step = rng.randrange(1, 40)
            c.send(data[pos:pos + step])
            pos += step
        assert c.read_raw_replies(n) == expected


# ---------------------------------------------------------------------------------------------------
# Malformed input: Redis's error reply, then the connection is closed; other clients are not affected.

MALFORMED = {
    "bulk-length-not-a-number": b"*1\r\n$abc\r\n",
    "no-dollar-before-argument": b"*1\r\nfoo\r\n",
    "multibulk-count-too-big": b"*3000000000\r\n",
    "inline-70000-bytes-without-newline": b"x" * 70000,
    "bulk-length-10gb": b"*1\r\n$10000000000\r\n",
    "valid-command-then-garbage": b"PING\r\n*1\r\n$-5\r\n",
    "unbalanced-quotes-inline": b'SET k "unterminated\r\n',
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_gets_redis_error_then_close(proxy, redis_server, data):
    expected = exchange_until_eof(redis_server.port, data)
    assert b"-ERR Protocol error" in expected  # the case really is malformed for Redis
    got = exchange_until_eof(proxy.port, data)
    assert got == expected
    assert_still_serving(proxy.port)


def test_malformed_input_does_not_disturb_other_clients(proxy):
    with proxy.raw() as other:
        assert other.command("SET", "bystander", "1") == b"OK"
        for data in MALFORMED.values():
            exchange_until_eof(proxy.port, data)
            assert other.command("INCR", "bystander") is not None
        assert other.command("GET", "bystander") == str(1 + len(MALFORMED)).encode()
