"""Real client software against respcache (issue "Drop-in: every Redis command works through respcache",
item 5): redis-cli (one-shot, --pipe, an interactive session on a pseudo-terminal), redis-benchmark's
default suite, python3-redis (pipelines, transactions, pub/sub, blocking pops, SELECT, CLIENT SETNAME,
HELLO) and Node.js ioredis (e2e/node/client_test.js).

Every client test also checks read-your-writes across two client connections: client B reads a key
twice through the proxy (the second read is a cache hit: the backend's GET count does not move), client
A writes it through the proxy, and B's very next read returns the new value (no sleep, no polling).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import redis

from clientlib import PtySession, check_read_your_writes, cli_value, read_your_writes_cases, redis_cli, run_tool
from conftest import HOST, RawClient, encode_command, scaled

NODE_DIR = Path(__file__).resolve().parent / "node"


def delayed(seconds: float, fn, *args):
    """Runs fn(*args) on a thread after a deliberate delay (a writer acting while another client blocks).
    Returns the thread; join it with a bound."""
    def body():
        time.sleep(seconds)
        fn(*args)
    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t


# ---------------------------------------------------------------------------------------------------
# redis-cli


def test_redis_cli_one_shot_commands_print_what_redis_prints(proxy, redis_server):
    """The same one-shot redis-cli commands, through the proxy then straight to Redis (after a FLUSHALL),
    print the same output and exit with the same status (--no-raw: the formatting of a terminal)."""
    script = [
        ("SET", "cli:s", "hello"), ("GET", "cli:s"), ("APPEND", "cli:s", " world"), ("GET", "cli:s"),
        ("INCRBYFLOAT", "cli:n", "1.5"), ("GET", "cli:none"), ("RPUSH", "cli:l", "a", "b", "c"),
        ("LRANGE", "cli:l", "0", "-1"), ("HSET", "cli:h", "f1", "v1"), ("ZADD", "cli:z", "1", "one", "2", "two"),
        ("ZRANGE", "cli:z", "0", "-1", "WITHSCORES"), ("GET", "cli:l"), ("NOSUCHCOMMAND", "x"),
        ("SET", "cli:only-key"), ("DBSIZE",),
    ]

    def run_all(port):
        out = [(cmd, *_result(redis_cli(port, *cmd, extra=("--no-raw",)))) for cmd in script]
        # Raw mode (stdout not a terminal, no --no-raw): values printed bare.
        out += [(("raw",) + cmd, *_result(redis_cli(port, *cmd))) for cmd in (("GET", "cli:s"), ("LRANGE", "cli:l", "0", "-1"))]
        return out

    through_proxy = run_all(proxy.port)
    with RawClient(redis_server.port) as c:
        assert c.command("FLUSHALL") == b"OK"
    direct = run_all(redis_server.port)
    diffs = [(p[0], p[1:], d[1:]) for p, d in zip(through_proxy, direct) if p != d]
    assert not diffs, "redis-cli output differs (command, through proxy, direct):\n" + "\n".join(map(repr, diffs))
    # The outputs are the expected ones, not merely equal.
    outputs = {cmd: out for cmd, _, out, _ in through_proxy}
    assert outputs[("GET", "cli:s")] == b'"hello world"\n'
    assert outputs[("LRANGE", "cli:l", "0", "-1")] == b'1) "a"\n2) "b"\n3) "c"\n'
    assert outputs[("GET", "cli:none")] == b"(nil)\n"
    assert outputs[("raw", "LRANGE", "cli:l", "0", "-1")] == b"a\nb\nc\n"
    assert b"WRONGTYPE" in outputs[("GET", "cli:l")]


def _result(cp):
    return cp.returncode, cp.stdout, cp.stderr


def test_redis_cli_read_your_writes_across_invocations(proxy, redis_server):
    """Each redis-cli invocation is its own connection: B (GET) caches, A writes, B reads the write."""
    key = "cli:ryw"

    def read_b():
        out = cli_value(proxy.port, "GET", key, extra=("--no-raw",))
        return None if out == "(nil)" else out.strip('"').encode()

    cases = {name: (write, new) for name, write, new in read_your_writes_cases(key)}
    for name in ("SET", "INCR", "APPEND", "DEL", "EXPIRE 0"):
        write, new = cases[name]
        assert cli_value(proxy.port, "SET", key, "10") == "OK"
        check_read_your_writes(redis_server, read_b, b"10", lambda: cli_value(proxy.port, *write), new, name)


def _pipe_input(n: int, prefix: str, value_of) -> bytes:
    return b"".join(encode_command("SET", f"{prefix}{i}", value_of(i)) for i in range(n))


def test_redis_cli_pipe_mass_insertion_of_10000_sets(proxy, redis_server):
    cp = redis_cli(proxy.port, "--pipe", input=_pipe_input(10000, "mass:", lambda i: f"value-{i}"),
                   timeout=scaled(60))
    summary = cp.stdout.decode(errors="replace") + cp.stderr.decode(errors="replace")
    assert cp.returncode == 0, summary
    assert "errors: 0, replies: 10000" in summary, summary
    with RawClient(proxy.port) as via_proxy, RawClient(redis_server.port) as direct:
        assert via_proxy.command("DBSIZE") == 10000
        assert direct.command("DBSIZE") == 10000
        for i in (0, 1, 4999, 9998, 9999):
            assert via_proxy.command("GET", f"mass:{i}") == f"value-{i}".encode()
            assert direct.command("GET", f"mass:{i}") == f"value-{i}".encode()
        # Read your writes: B caches two keys, A (a second --pipe) overwrites them, B reads the new values.
        for i in (7, 8):
            assert via_proxy.command("GET", f"mass:{i}") == f"value-{i}".encode()
        before = redis_server.get_calls()
        assert via_proxy.command("GET", "mass:7") == b"value-7"
        assert redis_server.get_calls() == before, "the second GET of mass:7 was not a cache hit"
        cp = redis_cli(proxy.port, "--pipe", input=_pipe_input(10, "mass:", lambda i: f"second-{i}"),
                       timeout=scaled(30))
        assert cp.returncode == 0 and b"errors: 0, replies: 10" in cp.stdout, (cp.stdout, cp.stderr)
        assert via_proxy.command("GET", "mass:7") == b"second-7"
        assert via_proxy.command("GET", "mass:8") == b"second-8"
        assert via_proxy.command("GET", "mass:11") == b"value-11"


def test_redis_cli_interactive_session_on_a_pty(proxy, redis_server):
    port = proxy.port
    prompt0 = re.escape(f"{HOST}:{port}> ")
    prompt2 = re.escape(f"{HOST}:{port}[2]> ")
    prompt2tx = re.escape(f"{HOST}:{port}[2](TX)> ")
    env = dict(os.environ, TERM="dumb")  # linenoise then reads plain lines: no escape sequences
    env.pop("REDISCLI_AUTH", None)
    env["REDISCLI_HISTFILE"] = "/dev/null"
    with PtySession(["redis-cli", "-h", HOST, "-p", str(port)], env=env) as s:

        def do(line: str, reply_pattern: str, prompt: str):
            s.sendline(line)
            s.expect(re.escape(line) + r"\n" + reply_pattern + r"\n" + prompt)

        s.expect(prompt0)
        do("SET greeting hello", "OK", prompt0)
        do("GET greeting", '"hello"', prompt0)
        before = redis_server.get_calls()
        do("GET greeting", '"hello"', prompt0)
        assert redis_server.get_calls() == before, "the second GET in the session was not a cache hit"
        # Read your writes: A (a one-shot redis-cli) writes; this session (B) reads it at once.
        assert cli_value(port, "SET", "greeting", "bonjour") == "OK"
        do("GET greeting", '"bonjour"', prompt0)
        do("SELECT 2", "OK", prompt2)
        do("GET greeting", r"\(nil\)", prompt2)
        do("MULTI", "OK", prompt2tx)
        do("SET greeting tx", "QUEUED", prompt2tx)
        do("GET greeting", "QUEUED", prompt2tx)
        do("EXEC", r'1\) OK\n2\) "tx"', prompt2)
        do("GET greeting", '"tx"', prompt2)
        do("GET greeting", '"tx"', prompt2)
        assert cli_value(port, "-n", "2", "APPEND", "greeting", "!") == "3"
        do("GET greeting", '"tx!"', prompt2)
        do("SELECT 0", "OK", prompt0)
        do("GET greeting", '"bonjour"', prompt0)
        s.sendline("QUIT")
        assert s.wait_exit() == 0, s.text
    with RawClient(redis_server.port) as c:
        assert c.command("GET", "greeting") == b"bonjour"
        assert c.command("SELECT", "2") == b"OK"
        assert c.command("GET", "greeting") == b"tx!"


# ---------------------------------------------------------------------------------------------------
# redis-benchmark

DEFAULT_SUITE = ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP", "SADD", "HSET",
                 "SPOP", "ZADD", "ZPOPMIN", "LPUSH (needed to benchmark LRANGE)", "LRANGE_100 (first 100 elements)",
                 "LRANGE_300 (first 300 elements)", "LRANGE_500 (first 500 elements)",
                 "LRANGE_600 (first 600 elements)", "MSET (10 keys)"]


def _benchmark_results(stdout: bytes) -> list:
    """[(test name, requests per second)] from `redis-benchmark -q` output; AssertionError on any other
    line (progress updates overwritten with \\r are dropped)."""
    results = []
    for line in stdout.decode(errors="replace").split("\n"):
        final = line.split("\r")[-1].strip()
        if not final:
            continue
        m = re.fullmatch(r"(.+): ([0-9.]+) requests per second, p50=[0-9.]+ msec", final)
        assert m, f"unexpected redis-benchmark output line: {final!r}\nfull output:\n{stdout.decode(errors='replace')}"
        results.append((m.group(1), float(m.group(2))))
    return results


@pytest.mark.timeout(120)
@pytest.mark.parametrize("extra,expected", [
    ((), DEFAULT_SUITE),
    (("-t", "get,set,lpush,lpop,incr,mset", "-P", "16"), ["SET", "GET", "INCR", "LPUSH", "LPOP", "MSET (10 keys)"]),
], ids=["default-suite", "pipelined-P16"])
def test_redis_benchmark(proxy, redis_server, extra, expected):
    b = proxy.client()
    # B caches the key the benchmark's SET test writes ("key:__rand_int__" without -r), A is the benchmark.
    assert b.set("key:__rand_int__", "before") is True
    assert b.get("key:__rand_int__") == b"before"
    before = redis_server.get_calls()
    assert b.get("key:__rand_int__") == b"before"
    assert redis_server.get_calls() == before, "the second GET was not a cache hit"
    # redis-benchmark 7 stops at the first error reply ("exit on error to avoid false results"), so a
    # complete list of results with status 0 means no command of the suite got an error.
    cp = run_tool(["redis-benchmark", "-h", HOST, "-p", str(proxy.port), "-n", "2000", "-c", "10", "-q", *extra],
                  timeout=scaled(90))
    assert cp.returncode == 0, (cp.stdout, cp.stderr)
    assert b"rror" not in cp.stdout and not cp.stderr.strip(), (cp.stdout, cp.stderr)
    results = _benchmark_results(cp.stdout)
    assert [name for name, _ in results] == expected
    assert all(rps > 0 for _, rps in results), results
    # The benchmark's values are random bytes of -d 3 (default) length.
    with RawClient(redis_server.port) as c:
        written = c.command("GET", "key:__rand_int__")
    assert isinstance(written, bytes) and len(written) == 3 and written != b"before"
    assert b.get("key:__rand_int__") == written, "B read a stale value after the benchmark's SET/MSET"
    assert b.ping() is True
    with RawClient(proxy.port) as c:
        assert c.command("PING") == b"PONG"
    with RawClient(redis_server.port) as c:
        assert c.command("GET", "counter:__rand_int__") == b"2000"


# ---------------------------------------------------------------------------------------------------
# python3-redis


def _as_value(fn):
    """Wraps a read so that an error reply becomes its first word (b'WRONGTYPE'), for comparisons."""
    def read():
        try:
            return fn()
        except redis.ResponseError as e:
            return str(e).split()[0].encode()
    return read


def test_redis_py_pipeline_without_transaction(proxy, redis_server):
    a = proxy.client()
    b = proxy.client()
    pipe = a.pipeline(transaction=False)
    expected = []
    for i in range(300):
        pipe.set(f"pp:{i}", i)
        expected.append(True)
        pipe.get(f"pp:{i}")
        expected.append(str(i).encode())
        pipe.incr(f"pp:{i}")
        expected.append(i + 1)
        pipe.get(f"pp:{i}")
        expected.append(str(i + 1).encode())
    pipe.rpush("pp:list", *range(5))
    expected.append(5)
    pipe.lrange("pp:list", 0, -1)
    expected.append([str(i).encode() for i in range(5)])
    pipe.get("pp:list")
    expected.append(None)  # placeholder: the WRONGTYPE error, checked below
    pipe.hset("pp:h", mapping={"a": "1", "b": "2"})
    expected.append(2)
    pipe.hgetall("pp:h")
    expected.append({b"a": b"1", b"b": b"2"})
    pipe.get("pp:missing")
    expected.append(None)
    results = pipe.execute(raise_on_error=False)
    assert len(results) == len(expected)
    assert isinstance(results[-4], redis.ResponseError) and "WRONGTYPE" in str(results[-4])
    results[-4] = None
    assert results == expected
    # Read your writes: B caches, A pipelines writes, B reads them at once.
    check_read_your_writes(redis_server, lambda: b.get("pp:5"), b"6",
                           lambda: a.pipeline(transaction=False).incr("pp:5").append("pp:5", "x").execute(), b"7x",
                           "pipelined INCR + APPEND")


def test_redis_py_read_your_writes_for_each_write_family(proxy, redis_server):
    a = proxy.client()
    b = proxy.client()
    key = "ryw:k"
    for name, write, new in read_your_writes_cases(key):
        a.set(key, "10")
        check_read_your_writes(redis_server, lambda: b.get(key), b"10", lambda: a.execute_command(*write), new, name)
    # Writes that reach the key by another way than its first argument.
    sha = a.script_load("return redis.call('SET', KEYS[1], ARGV[1])")
    a.function_load("#!lua name=rywlib\nredis.register_function('setit', function(keys, args) "
                    "return redis.call('SET', keys[1], args[1]) end)", replace=True)
    others = [
        ("RENAME", lambda: (a.set("ryw:src", "renamed"), a.rename("ryw:src", key)), b"renamed"),
        ("COPY REPLACE", lambda: (a.set("ryw:src", "copied"), a.copy("ryw:src", key, replace=True)), b"copied"),
        ("RESTORE REPLACE", lambda: (a.set("ryw:src", "restored"),
                                     a.restore(key, 0, a.dump("ryw:src"), replace=True)), b"restored"),
        ("EVAL", lambda: a.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, key, "evaled"), b"evaled"),
        ("EVALSHA", lambda: a.evalsha(sha, 1, key, "evalshaed"), b"evalshaed"),
        ("FCALL", lambda: a.execute_command("FCALL", "setit", 1, key, "fcalled"), b"fcalled"),
        ("SORT STORE", lambda: (a.rpush("ryw:list", 3, 1, 2), a.sort("ryw:list", store=key)), b"WRONGTYPE"),
        ("ZUNIONSTORE", lambda: (a.zadd("ryw:z", {"m": 1}), a.zunionstore(key, ["ryw:z"])), b"WRONGTYPE"),
        ("MOVE", lambda: a.move(key, 5), None),
        ("SWAPDB", lambda: a.swapdb(0, 6), None),
        ("FLUSHDB", lambda: a.flushdb(), None),
        ("FLUSHALL", lambda: a.flushall(), None),
        ("MULTI/EXEC", lambda: a.pipeline(transaction=True).set(key, "in-tx").append(key, "!").execute(), b"in-tx!"),
    ]
    for name, write, new in others:
        a.delete(key)
        a.set(key, "10")
        check_read_your_writes(redis_server, _as_value(lambda: b.get(key)), b"10", write, new, name)


def test_redis_py_transactions_and_watch_retry(proxy, redis_server):
    a = proxy.client()
    b = proxy.client()
    other = proxy.client()
    # A pipeline with transaction=True: MULTI ... EXEC, results of every queued command.
    results = a.pipeline(transaction=True).set("tx:k", "v").get("tx:k").incr("tx:n").incrby("tx:n", 10) \
        .lpush("tx:l", "a", "b").lrange("tx:l", 0, -1).execute()
    assert results == [True, b"v", 1, 11, 2, [b"b", b"a"]]
    # WATCH/MULTI/EXEC with a WatchError retry loop; another client writes between WATCH and EXEC once.
    a.set("tx:counter", 0)
    attempts = 0
    with a.pipeline() as pipe:
        while True:
            attempts += 1
            try:
                pipe.watch("tx:counter")
                value = int(pipe.get("tx:counter"))
                if attempts == 1:
                    assert other.incrby("tx:counter", 100) == 100
                pipe.multi()
                pipe.set("tx:counter", value + 1)
                pipe.get("tx:counter")
                assert pipe.execute() == [True, str(value + 1).encode()]
                break
            except redis.WatchError:
                assert attempts < 5, "WATCH kept failing"
    assert attempts == 2, "the write by another client should have aborted exactly the first EXEC"
    assert b.get("tx:counter") == b"101"

    # The same under concurrency: two clients increment with Redis.transaction (its own retry loop) while a
    # third writes the key; nothing is lost.
    a.set("tx:shared", 0)
    per_thread = 25
    retries = []

    def incrementer():
        c = proxy.client()
        tries = 0

        def step(pipe):
            nonlocal tries
            tries += 1
            value = int(pipe.get("tx:shared"))
            pipe.multi()
            pipe.set("tx:shared", value + 1)

        for _ in range(per_thread):
            c.transaction(step, "tx:shared")
        retries.append(tries - per_thread)

    def outside_writer():
        c = proxy.client()
        for _ in range(20):
            c.incr("tx:shared")

    threads = [threading.Thread(target=f, daemon=True) for f in (incrementer, incrementer, outside_writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=scaled(30))
        assert not t.is_alive(), "a transaction thread did not finish"
    assert len(retries) == 2
    assert int(b.get("tx:shared")) == 2 * per_thread + 20
    with RawClient(redis_server.port) as c:
        assert c.command("GET", "tx:shared") == str(2 * per_thread + 20).encode()
    # Read your writes through a transaction: B caches, A writes in MULTI/EXEC, B reads it at once.
    check_read_your_writes(redis_server, lambda: b.get("tx:k"), b"v",
                           lambda: a.pipeline(transaction=True).set("tx:k", "w").execute(), b"w", "MULTI/EXEC")


def _next_message(p, timeout: float = scaled(5)):
    """The next pub/sub message, waiting (bounded) for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = p.get_message(timeout=max(0.01, deadline - time.monotonic()))
        if m is not None:
            return m
    raise AssertionError("no pub/sub message within the time bound")


def test_redis_py_pubsub_then_same_connection_serves_get_set(proxy, redis_server):
    publisher = proxy.client()
    a = proxy.client()
    client = proxy.client()
    p = client.pubsub()
    p.subscribe("chan:one")
    assert _next_message(p) == {"type": "subscribe", "pattern": None, "channel": b"chan:one", "data": 1}
    p.psubscribe("news.*")
    assert _next_message(p) == {"type": "psubscribe", "pattern": None, "channel": b"news.*", "data": 2}
    assert publisher.publish("chan:one", "hello") == 1
    assert publisher.publish("news.tech", "pattern hello") == 1
    assert publisher.publish("nobody", "lost") == 0
    assert _next_message(p) == {"type": "message", "pattern": None, "channel": b"chan:one", "data": b"hello"}
    assert _next_message(p) == {"type": "pmessage", "pattern": b"news.*", "channel": b"news.tech",
                                "data": b"pattern hello"}
    # PING in subscribed mode is answered as Redis does (a pong message).
    p.ping()
    assert _next_message(p)["type"] == "pong"
    # Many messages from another client, in order.
    for i in range(50):
        publisher.publish("chan:one", f"m{i}")
    assert [_next_message(p)["data"] for _ in range(50)] == [f"m{i}".encode() for i in range(50)]
    p.unsubscribe("chan:one")
    assert _next_message(p) == {"type": "unsubscribe", "pattern": None, "channel": b"chan:one", "data": 1}
    p.punsubscribe("news.*")
    assert _next_message(p) == {"type": "punsubscribe", "pattern": None, "channel": b"news.*", "data": 0}
    assert publisher.publish("chan:one", "after") == 0
    # The same connection, no longer subscribed, serves ordinary commands again (B of read-your-writes).
    conn = p.connection
    assert conn is not None

    def cmd(*args):
        conn.send_command(*args)
        return conn.read_response()

    assert cmd("SET", "ps:k", "10") == b"OK"
    check_read_your_writes(redis_server, lambda: cmd("GET", "ps:k"), b"10", lambda: a.set("ps:k", "11"), b"11",
                           "GET on the former subscriber connection")
    assert cmd("SUBSCRIBE", "chan:two") == [b"subscribe", b"chan:two", 1]
    assert publisher.publish("chan:two", "again") == 1
    assert conn.read_response() == [b"message", b"chan:two", b"again"]
    assert cmd("UNSUBSCRIBE") == [b"unsubscribe", b"chan:two", 0]
    assert cmd("GET", "ps:k") == b"11"
    p.close()


def test_redis_py_blocking_pops(proxy, redis_server):
    pusher = proxy.client()
    b = proxy.client()
    # BLPOP: the data comes from another client 0.3 s after the client blocked.
    t = delayed(0.3, pusher.rpush, "bl:q", "x")
    assert b.blpop(["bl:q"], timeout=5) == (b"bl:q", b"x")
    t.join(scaled(5))
    # BLPOP timing out returns None.
    assert b.blpop(["bl:empty"], timeout=0.2) is None
    # Data already there: no waiting.
    pusher.rpush("bl:q", "y", "z")
    assert b.brpop(["bl:q"], timeout=1) == (b"bl:q", b"z")
    # BRPOPLPUSH and BLMOVE, fed after a delay.
    t = delayed(0.3, pusher.lpush, "bl:src", "moved")
    assert b.brpoplpush("bl:src", "bl:dst", timeout=5) == b"moved"
    t.join(scaled(5))
    t = delayed(0.3, pusher.rpush, "bl:src", "m1", "m2")
    assert b.blmove("bl:src", "bl:dst", 5, "LEFT", "RIGHT") == b"m1"
    t.join(scaled(5))
    assert b.lrange("bl:dst", 0, -1) == [b"moved", b"m1"]
    # BZPOPMIN and XREAD BLOCK.
    t = delayed(0.3, pusher.zadd, "bl:z", {"member": 2})
    assert b.bzpopmin(["bl:z"], timeout=5) == (b"bl:z", b"member", 2.0)
    t.join(scaled(5))
    t = delayed(0.3, pusher.xadd, "bl:stream", {"f": "v"}, "5-1")
    assert b.xread({"bl:stream": "$"}, block=5000) == [[b"bl:stream", [(b"5-1", {b"f": b"v"})]]]
    t.join(scaled(5))
    # The connection that blocked is an ordinary one again: read your writes across two connections.
    assert b.set("bl:k", "10") is True
    check_read_your_writes(redis_server, lambda: b.get("bl:k"), b"10", lambda: pusher.incr("bl:k"), b"11",
                           "after blocking pops")


def test_redis_py_blpop_state_of_other_clients_is_unaffected(proxy):
    """While one client blocks, others keep being served by the proxy (it pins only the blocked one)."""
    blocked = proxy.client()
    other = proxy.client()
    result = {}

    def block():
        result["v"] = blocked.blpop(["bl:later"], timeout=5)

    t = threading.Thread(target=block, daemon=True)
    t.start()
    for i in range(50):
        assert other.set(f"bl:o{i}", i) is True
        assert other.get(f"bl:o{i}") == str(i).encode()
    other.rpush("bl:later", "done")
    t.join(scaled(10))
    assert not t.is_alive()
    assert result["v"] == (b"bl:later", b"done")


def test_redis_py_select_setname_and_hello(proxy, redis_server):
    c3 = proxy.client(db=3)
    c0 = proxy.client(db=0)
    a3 = proxy.client(db=3)
    assert c3.set("db:k", "three") is True
    assert c0.set("db:k", "zero") is True
    assert c3.get("db:k") == b"three"
    assert c0.get("db:k") == b"zero"
    check_read_your_writes(redis_server, lambda: c3.get("db:k"), b"three", lambda: a3.append("db:k", "+"), b"three+",
                           "SELECT 3 via db=3")
    assert c0.get("db:k") == b"zero"
    with RawClient(redis_server.port) as c:
        assert c.command("SELECT", "3") == b"OK"
        assert c.command("GET", "db:k") == b"three+"

    named = proxy.client(client_name="first-name")
    assert named.client_getname() == "first-name"  # redis-py 4 decodes the name
    assert named.client_setname("second-name") is True
    assert named.client_getname() == "second-name"
    assert any(c.get("name") == "second-name" for c in named.client_list())

    r = proxy.client()
    hello = r.execute_command("HELLO")
    fields = dict(zip(hello[::2], hello[1::2]))
    assert fields[b"server"] == b"redis" and fields[b"proto"] == 2 and fields[b"mode"] == b"standalone"
    assert fields[b"id"] == r.client_id()
    hello2 = r.execute_command("HELLO", "2", "SETNAME", "via-hello")
    assert dict(zip(hello2[::2], hello2[1::2]))[b"proto"] == 2
    assert r.client_getname() == "via-hello"
    # HELLO 3 switches to RESP3 (which this redis-py cannot read: see test_resp3.py); HELLO 4 is refused
    # with Redis's own error.
    with pytest.raises(redis.ResponseError, match="NOPROTO"):
        r.execute_command("HELLO", "4")
    # What newer redis-py versions send at connect must work (Redis 7.2 answers +OK).
    assert r.execute_command("CLIENT", "SETINFO", "LIB-NAME", "redis-py") in (b"OK", True)
    assert r.execute_command("CLIENT", "SETINFO", "LIB-VER", redis.__version__) in (b"OK", True)
    info = r.client_info()
    # (CLIENT INFO ends with a newline, in Redis too; redis-py 4 leaves it on the last field.)
    assert info.get("lib-name") == "redis-py" and info.get("lib-ver", "").strip() == redis.__version__, info
    assert r.set("hello:k", "v") is True and r.get("hello:k") == b"v"
    # A client that connects the way redis-py 5 does when asked for RESP3 gets RESP3 (HELLO's map).
    with RawClient(proxy.port) as raw:
        hello3 = raw.command("HELLO", "3")
        assert isinstance(hello3, dict) and hello3[b"proto"] == 3, hello3
        assert raw.command("PING") == b"PONG"


# ---------------------------------------------------------------------------------------------------
# Node.js (ioredis from npm)


def _run_node(proxy, redis_server, families):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (make deps installs nodejs)")
    assert (NODE_DIR / "node_modules" / "ioredis").is_dir(), \
        f"ioredis is not installed in {NODE_DIR}: run `make deps` (npm ci there)"
    version = json.loads((NODE_DIR / "node_modules" / "ioredis" / "package.json").read_text())["version"]
    assert version.startswith("6."), f"node_modules/ioredis is {version}, expected the pinned 6.x"
    cp = run_tool([node, str(NODE_DIR / "client_test.js"), str(proxy.port), str(redis_server.port), *families],
                  timeout=scaled(60), cwd=str(NODE_DIR))
    out = cp.stdout.decode(errors="replace") + cp.stderr.decode(errors="replace")
    assert cp.returncode == 0, f"client_test.js {' '.join(families)} failed (exit {cp.returncode}):\n{out}"
    assert "all checks passed" in out, out
    for family in families:
        assert f"ok: {family}" in out, out


@pytest.mark.timeout(90)
def test_node_ioredis_client(proxy, redis_server):
    """ioredis: pipelines, MULTI/EXEC + WATCH, blocking pops, read-your-writes, SELECT and CLIENT SETINFO."""
    _run_node(proxy, redis_server, ["pipelines", "transactions", "blocking", "ryw", "databases"])


@pytest.mark.timeout(90)
def test_node_ioredis_pubsub(proxy, redis_server):
    """ioredis: SUBSCRIBE/PSUBSCRIBE, messages from another client, then ordinary commands again."""
    _run_node(proxy, redis_server, ["pubsub"])
