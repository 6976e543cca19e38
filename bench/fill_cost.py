#!/usr/bin/python3
"""What a cache fill costs Redis: Redis's own CPU time per key for each shape of request a fill can take.

Starts its own redis-server on a free loopback port (stopped by pid at the end), seeds KEYS keys of
100-byte values, then for each shape sends N random reads in pipelined batches of BATCH over one
connection and reads /proc/<pid>/stat of Redis around them:

  GET                                        what twemproxy (or a client straight at Redis) sends
  GET + PTTL                                 a fill with --invalidation ttl
  CLIENT CACHING yes + GET + PTTL, OPTIN     a fill with --invalidation tracking (respcache's)
  GET + PTTL, tracking in the default mode   every read tracked, no CLIENT CACHING
  GET + PTTL, BCAST tracking                 Redis remembers no keys; it announces every write instead

Each shape runs ROUNDS times, alternated; the median is printed. Usage:
  /usr/bin/python3 bench/fill_cost.py [--reads N] [--rounds R]
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import STRINGS, Conn, cpu_seconds, encode, free_port, key_name, wait_until  # noqa: E402

KEYS = STRINGS.count
BATCH = 50


SHAPES = [
    ("GET", None, lambda k: [(b"GET", k)]),
    ("GET + PTTL", None, lambda k: [(b"GET", k), (b"PTTL", k)]),
    ("CLIENT CACHING yes + GET + PTTL, OPTIN tracking", b"OPTIN",
     lambda k: [(b"CLIENT", b"CACHING", b"yes"), (b"GET", k), (b"PTTL", k)]),
    ("GET + PTTL, default tracking", b"", lambda k: [(b"GET", k), (b"PTTL", k)]),
    ("GET + PTTL, BCAST tracking", b"BCAST", lambda k: [(b"GET", k), (b"PTTL", k)]),
]


def measure(port: int, pid: int, mode, shape, reads: int) -> float:
    conn = Conn(port)
    listener = None
    if mode is not None:
        listener = Conn(port)
        rid = listener.call(b"CLIENT", b"ID")
        listener.call(b"SUBSCRIBE", b"__redis__:invalidate")
        args = [b"CLIENT", b"TRACKING", b"on", b"REDIRECT", rid]
        if mode:
            args.append(mode)
        conn.call(*args)
    rng = random.Random(1)
    before = cpu_seconds(pid)
    for _ in range(reads // BATCH):
        commands = [c for _ in range(BATCH) for c in shape(key_name(rng.randrange(KEYS)))]
        conn.send(b"".join(encode(*c) for c in commands))
        for _ in commands:
            conn.read_reply()
    spent = cpu_seconds(pid) - before
    conn.close()
    if listener is not None:
        listener.close()
    return spent * 1e6 / reads


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reads", type=int, default=200_000, help="reads per shape and round (default 200000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, shapes alternated (default 3)")
    a = ap.parse_args()
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="fill-cost-")
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", workdir],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answers() -> bool:
            with Conn(port) as c:
                return c.call(b"PING") == "PONG"

        wait_until(answers, 10, "redis-server to answer")
        seed = Conn(port)
        for start in range(0, KEYS, 1000):
            seed.send(b"".join(STRINGS.write(i) for i in range(start, start + 1000)))
            for _ in range(1000):
                seed.read_reply()
        seed.close()
        results = {name: [] for name, _, _ in SHAPES}
        for _ in range(a.rounds):
            for name, mode, shape in SHAPES:
                results[name].append(measure(port, redis.pid, mode, shape, a.reads))
        base = statistics.median(results["GET"])
        print(f"Redis CPU per key read, µs, median of {a.rounds} rounds of {a.reads} reads "
              f"(pipelined by {BATCH}, {KEYS} keys, 100-byte values):")
        for name, _, _ in SHAPES:
            m = statistics.median(results[name])
            print(f"  {name:<50} {m:5.2f}  ({m / base:.2f}x GET)")
        return 0
    finally:
        redis.terminate()
        try:
            redis.wait(timeout=10)
        except subprocess.TimeoutExpired:
            redis.kill()
            redis.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
