#!/usr/bin/python3
"""Writes the seed corpus of every harness under fuzz/corpus/<harness>/ (the files are committed; run
this again only to change them). Requests and config files are written out here; replies are what a
real redis-server (started on a free port of 127.0.0.1 and stopped by its pid) answers, RESP2 and RESP3.

Usage: /usr/bin/python3 fuzz/make_corpus.py
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))
from conftest import RawClient, RedisServer, encode_command  # noqa: E402

CORPUS = HERE / "corpus"


def cmd(*args) -> bytes:
    return encode_command(*args)


def write(harness: str, data: bytes):
    d = CORPUS / harness
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


# ---- requests: byte 0 the limits (bits 0-2 small, bit 3 unauthenticated), byte 1 the split seed
REQUESTS = [
    cmd("GET", "k"), cmd("SET", "k", "v"), cmd("PING"), cmd("MGET", "a", "b", "c"),
    cmd("SET", "k", "x" * 40, "EX", "10"), cmd("HSET", "h", "f", "v", "g", "w"), cmd("AUTH", "pw"),
    cmd("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a:"), cmd("MULTI") + cmd("INCR", "n") + cmd("EXEC"),
    cmd("SUBSCRIBE", "ch") + cmd("PING"), cmd("GET", "") + cmd("GET", "bin\0ary\r\n"),
    b"PING\r\n", b"GET k\n", b'SET k "a b\\x41\\n"\r\n', b"SET k 'it\\'s'\r\n", b'SET k "unbalanced\r\n',
    b"\r\n\r\n  \r\nPING\r\n", b"GET k\0junk\r\n", b"*0\r\n*-1\r\n" + cmd("PING"), b"*1\r\n$-1\r\n",
    b"*2\r\n$3\r\nGET\r\n$99999999999\r\n", b"*3000000000\r\n", b"*1\r\n$4\r\nPING\r\nPING\r\n",
    b"*1\r\nx4\r\nPING\r\n", b"*2\r\n$3\r\nGET\r\n$1\r\nk", b"*1\r\n$4\r\nPINGXX", b"*+1\r\n$4\r\nPING\r\n",
    b"*11\r\n" + b"$1\r\na\r\n" * 11, b"GET " + b"k" * 40 + b"\r\n",
]


def request_seeds():
    for i, r in enumerate(REQUESTS):
        write("parser", bytes([0, 1 + i]) + r)
        if i % 3 == 0:
            write("parser", bytes([7 | (8 if i % 2 else 0), 0]) + r)


# ---- replies, captured from Redis: byte 0 the limits, byte 1 the split seed
REPLY_COMMANDS = [
    ("SET", "k", "v"), ("GET", "k"), ("GET", "missing"), ("INCR", "n"), ("MGET", "k", "missing"),
    ("HSET", "h", "f", "v"), ("HGETALL", "h"), ("LPUSH", "l", "a", "b"), ("LRANGE", "l", "0", "-1"),
    ("ZADD", "z", "1.5", "m"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"), ("SMEMBERS", "nothing"),
    ("NOSUCH",), ("GET",), ("PTTL", "k"), ("SCAN", "0"), ("CLIENT", "INFO"), ("COMMAND", "INFO", "get"),
    ("XADD", "s", "*", "f", "v"), ("XRANGE", "s", "-", "+"), ("EXISTS", "k"), ("TYPE", "h"),
]
RESP3_TYPES = ["string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib", "push",
               "verbatim", "true", "false"]


def reply_seeds(port: int):
    with RawClient(port) as c:
        for i, args in enumerate(REPLY_COMMANDS):
            c.send_command(*args)
            write("reply_framer", bytes([0, i]) + c.read_raw_reply())
        c.send_command("MULTI")
        for args in REPLY_COMMANDS[:4]:
            c.send_command(*args)
        c.send_command("EXEC")
        write("reply_framer", b"\x00\x00" + b"".join(c.read_raw_replies(6)))
        c.send_command("HELLO", "3")
        write("reply_framer", b"\x00\x05" + c.read_raw_reply())
        for i, t in enumerate(RESP3_TYPES):
            c.send_command("DEBUG", "PROTOCOL", t)
            write("reply_framer", bytes([2 if i % 2 else 0, i]) + c.read_raw_reply())
        for args in REPLY_COMMANDS[4:8]:
            c.send_command(*args)
        write("reply_framer", b"\x01\x09" + b"".join(c.read_raw_replies(4)))


# ---- configurations: command line lines \0 environment lines \0 config file
CONFIGS = [
    (["--port", "0"], [], None), (["--help"], [], None), (["--version"], [], None),
    (["--ttl", "30s", "--capacity", "100", "--max-memory", "64mb"], [], None),
    (["--backend", "redis://user:pw@127.0.0.1:6380/2"], [], None),
    (["--backend", "redis://[::1]:6379"], [], None), (["--backend=redis://h:99999"], [], None),
    (["--invalidation", "ttl", "--consistency", "strict"], [], None),
    (["--cache-commands", "default,+hgetall,-mget"], [], None), (["--negative-caching", "yes"], [], None),
    (["--refresh-ahead", "0.8", "--warm-file", "/tmp/warm", "--warm-keys", "10"], [], None),
    (["--threads", "4", "--backend-connections", "2", "--cache-shards", "8"], [], None),
    (["--log-format", "json", "--log-level", "debug"], [], None), (["--requirepass", "secret"], [], None),
    (["--timeout", "1m", "--request-timeout", "250ms", "--connect-timeout", "2h"], [], None),
    (["--client-output-buffer-limit", "1gb", "--client-query-buffer-limit", "1kb"], [], None),
    (["stray"], [], None), (["--port"], [], None), (["--nope", "1"], [], None),
    ([], ["RESPCACHE_PORT=0", "RESPCACHE_MAX_MEMORY=1gb", "HOME=/root"], None),
    ([], ["RESPCACHE_BOGUS=1"], None), (["--port", "1"], ["RESPCACHE_PORT=2"], "port = 3\n"),
    ([], [], "# respcache\nport = 8001\nbackend = redis://127.0.0.1:6379\nttl = 5m\ncapacity = 10000\n"),
    ([], [], "max-memory = 256mb\ninvalidation = tracking\nconsistency = bounded\nthreads = 2\n"),
    ([], [], "[section]\nport = 1\n"), ([], [], "unknown = 1\n"), ([], [], "port\n"),
    ([], [], "requirepass = a\nrequirepass-file = /dev/null\n"),
    ([], [], "metrics-port = 9121\nwarm-interval = 10s\nlog-format = text\n"),
]


def config_seeds():
    for args, env, text in CONFIGS:
        data = "\n".join(args).encode()
        if env or text is not None:
            data += b"\0" + "\n".join(env).encode()
        if text is not None:
            data += b"\0" + text.encode()
        write("config", data)


# ---- client core scripts: byte 0 the set-up, then steps (see fuzz_client_core.cpp)
SHARED, RESP3, DEDICATED = 0, 1, 2


def client(data: bytes) -> bytes:
    out = b""
    for i in range(0, len(data), 255):
        piece = data[i:i + 255]
        out += bytes([0, len(piece)]) + piece
    return out


def redis_says(link: int, data: bytes) -> bytes:
    out = b""
    for i in range(0, len(data), 255):
        piece = data[i:i + 255]
        out += bytes([1 | link << 3, len(piece)]) + piece
    return out


def core_seeds(port: int):
    """Each scenario: what the client sends, and on which link Redis answers what it answered to the
    commands respcache sends it for them (captured from the real server)."""
    scenarios = [
        (0, [("GET", "k")], SHARED, [("GET", "k"), ("PTTL", "k")]),
        (0, [("SET", "k", "v"), ("GET", "k"), ("GET", "k")], SHARED, [("SET", "k", "v"), ("GET", "k"), ("PTTL", "k")]),
        (0, [("MULTI",), ("SET", "a", "1"), ("GET", "a"), ("EXEC",)], DEDICATED,
         [("MULTI",), ("SET", "a", "1"), ("GET", "a"), ("EXEC",)]),
        (0, [("WATCH", "a"), ("GET", "a"), ("UNWATCH",)], DEDICATED, [("WATCH", "a"), ("GET", "a"), ("UNWATCH",)]),
        (0, [("SUBSCRIBE", "ch"), ("PING",), ("UNSUBSCRIBE",)], DEDICATED,
         [("SUBSCRIBE", "ch"), ("PING",), ("UNSUBSCRIBE",)]),
        (0, [("BLPOP", "l", "1")], DEDICATED, [("BLPOP", "l", "1")]),
        (0, [("HELLO", "3"), ("GET", "k"), ("HGETALL", "h")], RESP3, [("GET", "k"), ("PTTL", "k"), ("HGETALL", "h")]),
        (0, [("SELECT", "2"), ("GET", "k")], SHARED, [("SELECT", "2"), ("GET", "k"), ("PTTL", "k")]),
        (0, [("MGET", "a", "b"), ("INCR", "n"), ("DEL", "a")], SHARED, [("MGET", "a", "b"), ("INCR", "n"), ("DEL", "a")]),
        (0, [("CLIENT", "REPLY", "OFF"), ("SET", "a", "1"), ("CLIENT", "REPLY", "ON")], SHARED, [("SET", "a", "1")]),
        (1, [("GET", "k"), ("GET", "k")], SHARED,
         [("CLIENT", "TRACKING", "on", "REDIRECT", "42", "OPTIN"), ("CLIENT", "CACHING", "yes"), ("GET", "k"), ("PTTL", "k")]),
        (3, [("GET", "k")], SHARED, [("GET", "k"), ("PTTL", "k")]),
        (4, [("GET", "k"), ("AUTH", "pw"), ("GET", "k")], SHARED, [("GET", "k"), ("PTTL", "k")]),
        (0, [("AUTH", "alice", "secret"), ("GET", "k")], DEDICATED, [("AUTH", "default", "")]),
        (0, [("CLIENT", "TRACKING", "on"), ("GET", "k"), ("SET", "k", "2")], SHARED,
         [("GET", "k"), ("PTTL", "k"), ("SET", "k", "2")]),
        (8, [("GET", "big"), ("MONITOR",)], SHARED, [("GET", "big"), ("PTTL", "big")]),
        (0, [("EVAL", "return 1", "0"), ("INFO", "server"), ("DBSIZE",)], SHARED,
         [("EVAL", "return 1", "0"), ("INFO", "server"), ("DBSIZE",)]),
        (0, [("RESET",), ("QUIT",)], SHARED, []),
    ]
    with RawClient(port) as c:
        c.command("SET", "big", "x" * 300)
        for i, (setup, sends, link, backend) in enumerate(scenarios):
            replies = b""
            for args in backend:
                c.send_command(*args)
                replies += c.read_raw_reply()
            requests = b"".join(cmd(*a) for a in sends)
            write("client_core", bytes([setup]) + client(requests) + redis_says(link, replies))
            # The same, the client's bytes in pieces, the link answered and then failing, time passing.
            half = len(requests) // 2
            write("client_core", bytes([setup]) + client(requests[:half]) + bytes([5, 10]) +
                  client(requests[half:]) + redis_says(link, replies[: len(replies) // 2]) +
                  bytes([3 | link << 3, 4]))
    write("client_core", b"\x00" + client(b"PING\r\n*1\r\n$x\r\n"))
    write("client_core", b"\x00" + client(b"GET k\r\n") + bytes([2, 1, 2, 5, 5, 0]))


def main():
    request_seeds()
    config_seeds()
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp)).start()
        try:
            reply_seeds(redis.port)
            core_seeds(redis.port)
        finally:
            redis.stop()
    for d in sorted(CORPUS.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} seeds")


if __name__ == "__main__":
    main()
