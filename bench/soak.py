#!/usr/bin/env python3
"""`make soak`: respcache under mixed load for SOAK_SECONDS (default 600), its RSS sampled throughout.

The harness starts its own redis-server and respcache on free ports of 127.0.0.1, with a cache far
smaller than the key space (--capacity CAPACITY over KEYS keys), so the cache is full early and every
later fill evicts. Then, at once, until the time is up:

  pipeline x2   pipelines of 100: 80% GETs, 15% SETs (both on a hot tenth of the keys 9 times in 10),
                5% MGETs of 5 keys
  churn    x2   connect, 1 to 40 commands (GET, SET, INCR, DEL, EXPIRE, a MULTI/EXEC), leave; one visit
                in five leaves with a pipeline of 50 GETs unread
  slow     x1   pipelines 100 GETs of 64 KB values, then reads them 16 KB every 20 ms, and leaves

Every reply is checked: a GET answers nil or a value that names its key, a SET answers OK, and so on;
any error reply, unexpected reply or broken connection counts as an error. Every SAMPLE seconds
(SOAK_SAMPLE_SECONDS, default 5) it records respcache's VmRSS (/proc/PID/status), cached_keys,
connected_clients and total_commands_processed (INFO proxy) while the load runs, and prints a table at
the end (then RSS once the load has stopped, which is not judged).

Verdict (exit status 1 on failure):
  - the cache must be full (cached_keys >= 99% of CAPACITY) before a third of the run has passed;
  - RSS must not keep growing once it is full: the samples from then on are cut into three equal
    parts; the largest RSS of the last part may exceed the largest of the middle part by at most
    max(4 MB, 5%). The first part is the allocator settling after the fill, and is only reported.
    The slope of a least-squares line over the last two parts is printed (MB/min) for information;
  - no error, respcache still running and exiting 0 on SIGTERM, no [error] line in its log.

Only the standard library; the RESP client and the process control are bench/run.py's. Every process
started is stopped by its pid when the run ends, also on Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from run import REPO, Conn, Procs, encode, info

KEYS = 100_000
HOT_KEYS = KEYS // 10
CAPACITY = 10_000
VALUE_MAX = 1024  # bytes of a value (at most), random per SET
BIG_KEYS = 50  # keys of 64 KB values, read by the slow reader
BIG_SIZE = 64 * 1024
RESPCACHE_ARGS = ["--threads", "2", "--capacity", str(CAPACITY), "--request-timeout", "5s"]


def key(i: int) -> bytes:
    return b"soak:%06d" % i


def value_of(k: bytes, rng: random.Random) -> bytes:
    return (k + b":").ljust(rng.randrange(16, VALUE_MAX), b"v")


def big_key(i: int) -> bytes:
    return b"soak:big:%02d" % i


def names_its_key(k: bytes, reply) -> bool:
    return reply is None or (isinstance(reply, bytes) and reply.startswith(k + b":"))


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = self.errors = self.visits = 0
        self.first_errors: List[str] = []

    def add(self, requests: int, problem: Optional[str] = None):
        with self.lock:
            self.requests += requests
            if problem is not None:
                self.errors += 1
                if len(self.first_errors) < 10:
                    self.first_errors.append(problem)


# ---------------------------------------------------------------------------------------------------
# The workers: each a loop until `stop` is set; a worker whose connection broke starts a new one.


def pipeline_worker(port: int, stop: threading.Event, counts: Counters, seed: int):
    rng = random.Random(seed)
    with Conn(port, timeout=30) as c:
        while not stop.is_set():
            batch, checks = [], []
            for _ in range(100):
                r = rng.random()
                i = rng.randrange(HOT_KEYS) if rng.random() < 0.9 else rng.randrange(KEYS)
                if r < 0.80:
                    batch.append(encode(b"GET", key(i)))
                    checks.append(lambda reply, k=key(i): names_its_key(k, reply))
                elif r < 0.95:
                    batch.append(encode(b"SET", key(i), value_of(key(i), rng)))
                    checks.append(lambda reply: reply == "OK")
                else:
                    ks = [key(rng.randrange(KEYS)) for _ in range(5)]
                    batch.append(encode(b"MGET", *ks))
                    checks.append(lambda reply, ks=ks: isinstance(reply, list) and len(reply) == 5 and
                                  all(names_its_key(k, v) for k, v in zip(ks, reply)))
            c.send(b"".join(batch))
            for check in checks:
                reply = c.read_reply()
                counts.add(1, None if check(reply) else f"pipeline: {str(reply)[:120]}")


def churn_visit(port: int, rng: random.Random, counts: Counters):
    with Conn(port, timeout=30) as c:
        for _ in range(rng.randrange(1, 40)):
            i = rng.randrange(KEYS)
            k, r = key(i), rng.random()
            if r < 0.5:
                reply = c.call(b"GET", k)
                ok = names_its_key(k, reply)
            elif r < 0.7:
                reply = c.call(b"SET", k, value_of(k, rng))
                ok = reply == "OK"
            elif r < 0.8:
                reply = c.call(b"INCR", b"soak:counter:%d" % (i % 100))
                ok = isinstance(reply, int)
            elif r < 0.9:
                reply = c.call(b"EXPIRE", k, rng.randrange(1, 30))
                ok = reply in (0, 1)
            elif r < 0.95:
                reply = c.call(b"DEL", k)
                ok = reply in (0, 1)
            else:
                c.send(encode(b"MULTI") + encode(b"SET", k, value_of(k, rng)) + encode(b"GET", k) + encode(b"EXEC"))
                reply = [c.read_reply() for _ in range(4)]
                ok = reply[:3] == ["OK", "QUEUED", "QUEUED"] and isinstance(reply[3], list) and \
                    reply[3][0] == "OK" and names_its_key(k, reply[3][1])
            counts.add(1, None if ok else f"churn: {str(reply)[:120]}")
        if rng.random() < 0.2:  # leaves with replies unread
            c.send(b"".join(encode(b"GET", key(rng.randrange(KEYS))) for _ in range(50)))
            counts.add(50)
    with counts.lock:
        counts.visits += 1


def churn_worker(port: int, stop: threading.Event, counts: Counters, seed: int):
    rng = random.Random(seed)
    while not stop.is_set():
        churn_visit(port, rng, counts)


def slow_worker(port: int, stop: threading.Event, counts: Counters, seed: int):
    rng = random.Random(seed)
    one_reply = len(b"$%d\r\n" % BIG_SIZE) + BIG_SIZE + 2
    while not stop.is_set():
        with Conn(port, timeout=30) as c:
            ks = [big_key(rng.randrange(BIG_KEYS)) for _ in range(100)]
            c.send(b"".join(encode(b"GET", k) for k in ks))
            got = bytearray()
            while len(got) < one_reply * len(ks) and not stop.is_set():
                chunk = c.sock.recv(16384)  # a slow reader: 16 KB per 20 ms at most
                if not chunk:
                    raise ConnectionError("connection closed by the server")
                got += chunk
                time.sleep(0.02)
            if len(got) < one_reply * len(ks):
                return  # stopped meanwhile
            c.buf, c.pos = bytes(got), 0
            for k in ks:
                reply = c.read_reply()
                ok = isinstance(reply, bytes) and len(reply) == BIG_SIZE and reply.startswith(k + b":")
                counts.add(1, None if ok else f"slow: {str(reply)[:120]}")
        with counts.lock:
            counts.visits += 1


def guarded(worker: Callable, port: int, stop: threading.Event, counts: Counters, seed: int):
    """Runs `worker` until `stop`; an exception (a broken connection, a timeout) counts as an error and
    the worker starts again."""
    while not stop.is_set():
        try:
            worker(port, stop, counts, seed)
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            counts.add(0, f"{worker.__name__}: {e!r}")
            seed += 1000


WORKERS = [(pipeline_worker, 2), (churn_worker, 2), (slow_worker, 1)]


# ---------------------------------------------------------------------------------------------------
# Samples and the verdict.


@dataclass
class Sample:
    t: float  # seconds since the load started
    rss_mb: float
    cached_keys: int
    clients: int
    commands: int
    requests: int
    errors: int


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def slope_mb_per_min(samples: List[Sample]) -> float:
    n = len(samples)
    mt = sum(s.t for s in samples) / n
    mr = sum(s.rss_mb for s in samples) / n
    var = sum((s.t - mt) ** 2 for s in samples)
    return 60.0 * sum((s.t - mt) * (s.rss_mb - mr) for s in samples) / var if var else 0.0


def verdict(samples: List[Sample], duration: float) -> List[str]:
    """The failures of the RSS criterion (see the module comment); prints the figures it judged."""
    full = [i for i, s in enumerate(samples) if s.cached_keys >= 0.99 * CAPACITY]
    if not full or samples[full[0]].t > duration / 3:
        return [f"the cache was not full within a third of the run (cached_keys: "
                f"{[s.cached_keys for s in samples[:5]]}...)"]
    after = samples[full[0]:]
    if len(after) < 9:
        return [f"only {len(after)} samples once the cache was full: run longer (SOAK_SECONDS)"]
    third = len(after) // 3
    settling, middle, last = after[:third], after[third:2 * third], after[2 * third:]
    middle_max, last_max = max(s.rss_mb for s in middle), max(s.rss_mb for s in last)
    tolerance = max(4.0, 0.05 * middle_max)
    print(f"cache full at {after[0].t:.0f} s; max RSS: settling {max(s.rss_mb for s in settling):.1f} MB, "
          f"middle third {middle_max:.1f} MB, last third {last_max:.1f} MB (allowed up to "
          f"{middle_max + tolerance:.1f} MB); least-squares slope over the last two thirds "
          f"{slope_mb_per_min(middle + last):+.3f} MB/min")
    if last_max > middle_max + tolerance:
        return [f"RSS kept growing once the cache was full: {middle_max:.1f} MB -> {last_max:.1f} MB"]
    return []


def print_table(samples: List[Sample], every: float = 30.0):
    print(f"{'t (s)':>7} {'RSS (MB)':>9} {'cached':>7} {'clients':>7} {'commands':>10} {'checked':>9} {'errors':>6}")
    next_t = 0.0
    for i, s in enumerate(samples):
        if s.t >= next_t or i == len(samples) - 1:
            print(f"{s.t:7.0f} {s.rss_mb:9.1f} {s.cached_keys:7d} {s.clients:7d} {s.commands:10d} "
                  f"{s.requests:9d} {s.errors:6d}")
            next_t = s.t + every


# ---------------------------------------------------------------------------------------------------
# The run.


def sample(rc, started: float, counts: Counters) -> Sample:
    i = info(rc.port, "proxy")
    with counts.lock:
        requests, errors = counts.requests, counts.errors
    return Sample(time.monotonic() - started, rss_mb(rc.pid), int(i["cached_keys"]), int(i["connected_clients"]),
                  int(i["total_commands_processed"]), requests, errors)


def soak(procs: Procs, duration: float, every: float) -> List[str]:
    redis = procs.start_redis("redis")
    rc = procs.start_respcache("respcache", redis.port, RESPCACHE_ARGS)
    print(f"soak: {duration:.0f} s, respcache pid {rc.pid} {' '.join(rc.argv[1:])}; {KEYS} keys, "
          f"RSS every {every:.0f} s", flush=True)
    with Conn(redis.port) as c:
        c.send(b"".join(encode(b"SET", big_key(i), (big_key(i) + b":").ljust(BIG_SIZE, b"b"))
                        for i in range(BIG_KEYS)))
        assert all(c.read_reply() == "OK" for _ in range(BIG_KEYS))
    stop, counts, samples = threading.Event(), Counters(), []
    threads = [threading.Thread(target=guarded, args=(w, rc.port, stop, counts, 100 * n + k), daemon=True)
               for n, (w, k_max) in enumerate(WORKERS) for k in range(k_max)]
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        while time.monotonic() - started < duration:
            if not rc.alive():
                return [f"respcache exited with status {rc.popen.returncode}: {rc.log_tail()}"]
            samples.append(sample(rc, started, counts))
            if len(samples) % max(1, int(60 / every)) == 0:
                s = samples[-1]
                print(f"  {s.t:5.0f} s  RSS {s.rss_mb:6.1f} MB  cached {s.cached_keys}  errors {s.errors}", flush=True)
            stop.wait(every)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    print_table(samples)
    after = sample(rc, started, counts)
    print(f"once the load stopped: RSS {after.rss_mb:.1f} MB, {after.cached_keys} cached keys")
    print(f"{counts.requests} replies checked, {counts.visits} connections came and went, {counts.errors} errors")
    failures = verdict(samples, duration)
    if counts.errors:
        failures.append(f"{counts.errors} errors, first: {counts.first_errors}")
    procs.stop_all()
    return failures + procs.anomalies


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=str(REPO / "build" / "respcache"), help="the respcache binary")
    ap.add_argument("--keep-logs", action="store_true", help="keep the server logs (temporary directory)")
    opts = ap.parse_args()
    duration = float(os.environ.get("SOAK_SECONDS", "600"))
    every = float(os.environ.get("SOAK_SAMPLE_SECONDS", "5"))
    if not os.access(opts.bin, os.X_OK):
        ap.error(f"--bin {opts.bin} is not an executable (run `make build` first)")

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    workdir = Path(tempfile.mkdtemp(prefix="respcache-soak-"))
    procs = Procs(workdir, str(Path(opts.bin).resolve()))
    try:
        failures = soak(procs, duration, every)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process started", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        if opts.keep_logs:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    for f in failures:
        print(f"FAIL: {f}")
    print("soak: FAILED" if failures else "soak: passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
