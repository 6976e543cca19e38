#!/usr/bin/env python3
"""`make bench`: respcache side by side with Redis direct and twemproxy, on one machine, in one run.

The harness starts everything it measures on free ports of 127.0.0.1 (a redis-server, respcache
instances, a nutcracker in front of the same Redis), seeds 100k keys of 100-byte values, and runs each
scenario with redis-benchmark against every target, alternating the targets (A B C A B C ...) for
several rounds. It prints medians with min and max and the ratios respcache / Redis and
respcache / twemproxy, and writes bench/results/latest.json (every round, every command line) and
bench/results/latest.md (the table for the README).

Besides redis-benchmark it measures, with its own small RESP client: memory per cached entry (RSS of
respcache against Redis's own figure), the staleness window of client tracking, and it checks every run
against the servers' own counters (INFO proxy of respcache, INFO commandstats of Redis), because
redis-benchmark counts error replies as successful requests.

The hgetall_hits_light* scenarios send the load of hgetall_hits with respload (bench/respload.cpp, built
as the CMake target `respload`) instead of redis-benchmark, which is itself the bound there; every
single-process run records the load generator's CPU beside the target's.

The cluster_* scenarios start a Redis Cluster of 3 masters of their own (ports below the ephemeral
range, bus ports + 10000) and compare respcache in front of it (--backend redis+cluster://) with
redis-benchmark --cluster straight to the masters, on the same keys.

Only the Python standard library is used. Every process started is stopped by its pid when the run
ends, also on Ctrl-C or SIGTERM. See bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
from tlscerts import OPENSSL, Certs  # noqa: E402  (standard library only)

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
KEYS = 100_000           # distinct keys of the throughput scenarios (redis-benchmark -r 100000)
VALUE_SIZE = 100         # bytes per value (redis-benchmark -d 100)
KEY_LEN = 16             # "key:" + 12 digits, redis-benchmark's __rand_int__ names
HASH_KEYS = 1000         # hashes of the HGETALL scenario (redis-benchmark -r 1000)
HASH_FIELDS = 50         # fields per hash, 10-byte values
CACHE_TTL = "3600s"      # long enough that nothing expires during a run (hit scenarios stay hits)
CLUSTER_MASTERS = 3      # masters of the Redis Cluster scenarios (no replicas)
CLUSTER_BUS_OFFSET = 10000  # a cluster node's bus listens on its port + 10000


# ---------------------------------------------------------------------------------------------------
# A minimal RESP client (blocking socket, pipelining by batches): RESP2, and the RESP3 types a
# connection gets after HELLO 3 (the RESP3 scenarios' spot checks).

class ErrorReply(str):
    """An error reply (returned, not raised)."""


class Push(list):
    """A RESP3 push (>): out-of-band, never the reply to a request."""


def encode(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def key_name(i: int) -> bytes:
    return b"key:%012d" % i


def seed_value(i: int) -> bytes:
    return (key_name(i) + b":").ljust(VALUE_SIZE, b"v")


@dataclass(frozen=True)
class KeySet:
    """Keys seeded directly in Redis, named `prefix` + i in 12 digits as redis-benchmark's __rand_int__
    (with -r count) writes them, 0 <= i < count."""
    prefix: bytes
    count: int
    write: Callable[[int], bytes]                  # the encoded command seeding key i
    read: Optional[Callable[[int], bytes]] = None  # the encoded read that caches key i (warming)
    value: Optional[Callable[[int], object]] = None  # what that read answers

    def name(self, i: int) -> bytes:
        return b"%s%012d" % (self.prefix, i)


def hash_fields(i: int) -> List[bytes]:
    return [x for j in range(HASH_FIELDS) for x in (b"f:%02d" % j, b"v:%08d" % (i * HASH_FIELDS + j))]


STRINGS = KeySet(b"key:", KEYS, lambda i: encode(b"SET", key_name(i), seed_value(i)),
                 lambda i: encode(b"GET", key_name(i)), seed_value)
HASHES = KeySet(b"h:", HASH_KEYS, lambda i: encode(b"HSET", HASHES.name(i), *hash_fields(i)),
                lambda i: encode(b"HGETALL", HASHES.name(i)), hash_fields)
# One byte longer than the `smallvalues` instance's --max-value-size: served, never cached (MGET half hits).
UNCACHED = KeySet(b"big:", KEYS, lambda i: encode(b"SET", UNCACHED.name(i),
                                                  (UNCACHED.name(i) + b":").ljust(VALUE_SIZE + 1, b"v")))


class Conn:
    def __init__(self, port: int, timeout: float = 30.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 2
                return line
            self._fill()

    def _exact(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n:
            self._fill()
        data = self.buf[self.pos:self.pos + n]
        self.pos += n
        return data

    def read_reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            return self._exact(n + 2)[:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return ErrorReply(rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read_reply() for _ in range(n)]
        # RESP3
        if t == b"_":
            return None
        if t == b"%":
            n = int(rest)
            out = {}
            for _ in range(n):
                key = self.read_reply()
                out[key] = self.read_reply()
            return out
        if t == b"~":
            return [self.read_reply() for _ in range(int(rest))]
        if t == b">":
            return Push(self.read_reply() for _ in range(int(rest)))
        if t == b"#":
            return rest == b"t"
        if t == b",":
            return float(rest)
        if t == b"(":
            return int(rest)
        if t == b"=":
            return self._exact(int(rest) + 2)[4:-2]  # drop "txt:" / "mkd:"
        if t == b"!":
            return ErrorReply(self._exact(int(rest) + 2)[:-2].decode(errors="replace"))
        if t == b"|":  # attribute: metadata before the real reply
            for _ in range(2 * int(rest)):
                self.read_reply()
            return self.read_reply()
        raise ValueError(f"unexpected reply type {line[:40]!r}")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, *args):
        self.sock.sendall(encode(*args))
        return self.read_reply()


def info(port: int, section: str) -> Dict[str, str]:
    with Conn(port, timeout=10) as c:
        text = c.call("INFO", section)
    if not isinstance(text, bytes):
        raise RuntimeError(f"INFO {section} on port {port} answered {text!r}")
    out = {}
    for line in text.decode(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def info_cluster(port: int) -> Dict[str, str]:
    """CLUSTER INFO of the node on `port`, as a dict."""
    with Conn(port, timeout=10) as c:
        text = c.call("CLUSTER", "INFO")
    if not isinstance(text, bytes):
        raise RuntimeError(f"CLUSTER INFO on port {port} answered {text!r}")
    return dict(line.split(":", 1) for line in text.decode(errors="replace").splitlines() if ":" in line)


def pipelined(port: int, count: int, make: Callable[[int], bytes], check: Callable[[int, object], bool],
              batch: int = 1000, start: int = 0) -> int:
    """Sends make(i) for i in [start, start+count) in batches on one connection; returns how many
    replies failed check(i, reply)."""
    bad = 0
    with Conn(port, timeout=60) as c:
        for lo in range(start, start + count, batch):
            hi = min(lo + batch, start + count)
            c.send(b"".join(make(i) for i in range(lo, hi)))
            for i in range(lo, hi):
                if not check(i, c.read_reply()):
                    bad += 1
    return bad


# ---------------------------------------------------------------------------------------------------
# Processes.

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether `port` can be bound on HOST now (without SO_REUSEADDR: a port in TIME_WAIT counts as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (32768 unless configured otherwise)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def cluster_ports(count: int, avoid: Sequence[int] = ()) -> List[int]:
    """`count` ports P for cluster nodes, each free with its bus port P + 10000 free too, all below the
    ephemeral range (so no outgoing connection takes one meanwhile) and so below 55536. Scanned from a
    random start, so that two harnesses started together rarely try the same ports."""
    top = min(ephemeral_low(), 65536) - CLUSTER_BUS_OFFSET  # P and P + 10000 both below the range
    low = 10000
    if top - low < 100:
        raise RuntimeError(f"no room for cluster ports below the ephemeral range (starts at {ephemeral_low()})")
    start = random.randrange(low, top)
    out: List[int] = []
    for i in range(top - low):
        p = low + (start - low + i) % (top - low)
        if p in avoid or any(abs(p - q) == CLUSTER_BUS_OFFSET for q in out):
            continue
        if port_is_free(p) and port_is_free(p + CLUSTER_BUS_OFFSET):
            out.append(p)
            if len(out) == count:
                return out
    raise RuntimeError(f"found only {len(out)} free port pairs P, P+{CLUSTER_BUS_OFFSET} below {top + CLUSTER_BUS_OFFSET}")


def raise_nofile() -> None:
    """preexec_fn of every child: as many file descriptors as the hard limit allows (1000 clients)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def child_env() -> Dict[str, str]:
    # respcache reads RESPCACHE_* as configuration: give it none but what we pass as flags.
    return {k: v for k, v in os.environ.items() if not k.startswith("RESPCACHE_")}


def wait_until(pred: Callable[[], bool], timeout: float, what: str, proc: Optional["Proc"] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with status {proc.popen.returncode} while waiting for "
                               f"{what}; log: {proc.log_tail()}")
        try:
            if pred():
                return
        except (OSError, ValueError, RuntimeError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Proc:
    name: str
    kind: str  # redis | respcache | twemproxy
    popen: subprocess.Popen
    log: Path
    port: int = 0
    tls_port: int = 0  # 0: no TLS port
    argv: List[str] = field(default_factory=list)
    exit_status: Optional[int] = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 5) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def rss_kb(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")


class Procs:
    """Owns every process the harness starts; stop_all() stops them by pid."""

    def __init__(self, workdir: Path, respcache_bin: str):
        self.workdir = workdir
        self.bin = respcache_bin
        self.procs: List[Proc] = []
        self.anomalies: List[str] = []

    def _spawn(self, name: str, kind: str, argv: List[str], log: Path, stdout_to_log: bool = True) -> Proc:
        logf = open(log, "ab")
        try:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=logf if stdout_to_log else subprocess.DEVNULL, stderr=logf,
                                     preexec_fn=raise_nofile, start_new_session=True, env=child_env(),
                                     cwd=self.workdir)
        finally:
            logf.close()
        p = Proc(name=name, kind=kind, popen=popen, log=log, argv=argv)
        self.procs.append(p)
        return p

    def start_redis(self, name: str, tls_args: Sequence[str] = ()) -> Proc:
        """A redis-server; with `tls_args` (its --tls-* options) also listening for TLS on p.tls_port."""
        port = free_port()
        d = self.workdir / name
        d.mkdir(exist_ok=True)
        argv = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", str(d), "--logfile", ""]
        tls_port = free_port() if tls_args else 0
        if tls_args:
            argv += ["--tls-port", str(tls_port), *tls_args]
        p = self._spawn(name, "redis", argv, self.workdir / f"{name}.log")
        p.port, p.tls_port = port, tls_port
        def ready() -> bool:
            with Conn(port, timeout=2) as c:
                return c.call("PING") == "PONG"
        wait_until(ready, 10, f"{name} to answer PING", p)
        return p

    def start_respcache(self, name: str, backend_port: int, args: Sequence[str], backend_url: str = "",
                        tls_args: Sequence[str] = ()) -> Proc:
        """respcache in front of Redis on backend_port (or at backend_url); with `tls_args` (--tls-port and
        the rest) it also listens for TLS on p.tls_port, beside a plain port (warming, INFO)."""
        plain = str(free_port()) if tls_args else "0"
        argv = [self.bin, "--bind", HOST, "--port", plain, "--backend",
                backend_url or f"redis://{HOST}:{backend_port}", *tls_args, *args]
        log = self.workdir / f"{name}.log"
        p = self._spawn(name, "respcache", argv, log)
        pat = re.compile(rb"\bport=(\d+)")
        def port_logged() -> bool:
            m = pat.search(log.read_bytes())
            if m:
                p.port = int(m.group(1))
            return p.port != 0
        wait_until(port_logged, 10, f"{name} to log its port", p)
        m = re.search(rb"\btls_port=(\d+)", log.read_bytes())
        p.tls_port = int(m.group(1)) if m else 0
        def ready() -> bool:
            i = info(p.port, "proxy")
            return i.get("backend_state") == "up" and i.get("invalidation_channel") in ("live", "off")
        wait_until(ready, 10, f"{name} backend up and invalidation channel live", p)
        return p

    def start_twemproxy(self, name: str, redis_port: int) -> Proc:
        port, stats_port = free_port(), free_port()
        conf = self.workdir / f"{name}.yml"
        conf.write_text(
            "bench:\n"
            f"  listen: {HOST}:{port}\n"
            "  hash: fnv1a_64\n"
            "  distribution: ketama\n"
            "  redis: true\n"
            "  timeout: 5000\n"
            "  backlog: 1024\n"
            "  preconnect: true\n"
            "  auto_eject_hosts: false\n"
            "  server_connections: 1\n"
            "  servers:\n"
            f"   - {HOST}:{redis_port}:1\n")
        argv = ["nutcracker", "-c", str(conf), "-s", str(stats_port), "-a", HOST,
                "-o", str(self.workdir / f"{name}.log"), "-v", "4"]
        p = self._spawn(name, "twemproxy", argv, self.workdir / f"{name}.out")
        p.port = port
        def ready() -> bool:
            with Conn(port, timeout=2) as c:
                return c.call("GET", "bench:twemproxy-ready") is None  # forwarded to Redis
        wait_until(ready, 10, f"{name} to forward a GET", p)
        return p

    def start_cluster(self, name: str, masters: int) -> tuple:
        """A Redis Cluster of `masters` masters and no replicas: redis-server --cluster-enabled yes on free
        ports below the ephemeral range (and their bus ports, + 10000), joined with redis-cli --cluster
        create; returns (nodes, record) once every node reports cluster_state:ok and knows all the others.
        A node that fails to start (a port taken meanwhile) is stopped with the others and the cluster is
        tried again on other ports, at most 3 times."""
        d = self.workdir / name
        d.mkdir(exist_ok=True)
        tried: List[int] = []
        for attempt in range(3):
            ports = cluster_ports(masters, tried)
            tried += ports
            nodes = []
            try:
                for port in ports:
                    argv = ["redis-server", "--port", str(port), "--cluster-enabled", "yes",
                            "--cluster-config-file", str(d / f"nodes-{port}.conf"), "--save", "",
                            "--appendonly", "no", "--bind", HOST, "--dir", str(d), "--daemonize", "no",
                            "--logfile", ""]
                    nodes.append(self._spawn(f"{name}-{port}", "redis", argv, self.workdir / f"{name}-{port}.log"))
                    nodes[-1].port = port
                for p in nodes:
                    def ready(port=p.port) -> bool:
                        with Conn(port, timeout=2) as c:
                            return c.call("PING") == "PONG"
                    wait_until(ready, 10, f"{p.name} to answer PING", p)
            except RuntimeError as e:
                for p in nodes:
                    self.stop(p)
                if attempt == 2:
                    raise
                print(f"  cluster nodes on {ports} did not start ({e}); trying other ports", flush=True)
                continue
            break
        create = ["redis-cli", "--cluster", "create", *(f"{HOST}:{p.port}" for p in nodes), "--cluster-yes"]
        t0 = time.monotonic()
        try:
            r = subprocess.run(create, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:  # subprocess.run has killed it (by pid)
            raise RuntimeError(f"{' '.join(create)} did not end within 60 s")
        (self.workdir / f"{name}-create.log").write_text(r.stdout + r.stderr)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(create)} exited {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}")
        def ok() -> bool:
            for p in nodes:
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited: {p.log_tail()}")
                i = info_cluster(p.port)
                if i.get("cluster_state") != "ok" or int(i.get("cluster_known_nodes", 0)) != masters:
                    return False
            return True
        wait_until(ok, 30, f"cluster_state:ok on all {masters} nodes, each knowing the others")
        record = {"ports": [p.port for p in nodes], "bus_ports": [p.port + CLUSTER_BUS_OFFSET for p in nodes],
                  "create_command": " ".join(create), "seconds_to_ok": round(time.monotonic() - t0, 2),
                  "node_args": [a if not a.endswith(".conf") else "<dir>/nodes-<port>.conf" for a in nodes[0].argv]}
        return nodes, record

    def stop(self, p: Proc) -> None:
        if p.exit_status is not None:
            return
        if p.popen.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.anomalies.append(f"{p.name} (pid {p.pid}) did not exit within 10s of SIGTERM: killed")
                os.kill(p.pid, signal.SIGKILL)
                p.popen.wait(timeout=10)
        else:
            self.anomalies.append(f"{p.name} (pid {p.pid}) had exited by itself with status "
                                  f"{p.popen.returncode}: {p.log_tail()}")
        p.exit_status = p.popen.returncode
        if p.kind == "respcache":
            if p.exit_status != 0:
                self.anomalies.append(f"{p.name} exited with status {p.exit_status} after SIGTERM")
            bad = [l for l in p.log.read_text(errors="replace").splitlines()
                   if re.search(r"\[(error|critical)\]", l)]
            if bad:
                self.anomalies.append(f"{p.name} logged {len(bad)} error line(s), first: {bad[0][:300]}")

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            try:
                self.stop(p)
            except Exception as e:  # keep stopping the others
                print(f"warning: stopping {p.name} (pid {p.pid}): {e}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------
# redis-benchmark.

RB_FIELDS = ["rps", "avg_ms", "min_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"]


# --csv before `args`: everything after a custom command's name (HGETALL h:__rand_int__) is part of it.
def rb_argv(port: int, args: Sequence[str]) -> List[str]:
    return ["redis-benchmark", "-h", HOST, "-p", str(port), "--csv", *args]


def rb_template(args: Sequence[str]) -> str:
    return " ".join(["redis-benchmark", "-h", HOST, "-p", "<port>", "--csv", *(shlex.quote(a) for a in args)])


def rb_parse(out: str, test: str) -> Dict[str, float]:
    for row in csv.reader(io.StringIO(out)):
        if row and row[0] == test and len(row) >= 8:
            return dict(zip(RB_FIELDS, (float(x) for x in row[1:8])))
    raise RuntimeError(f"no CSV row for {test} in redis-benchmark output: {out.strip()[-300:]!r}")


def rb_clients(args: Sequence[str]) -> int:
    """redis-benchmark's connections (-c) in `args` (its default: 50)."""
    return int(args[args.index("-c") + 1]) if "-c" in args else 50


def split_by_clients(n: int, parts: Sequence[Sequence[str]]) -> List[int]:
    """Requests (-n) of each of several redis-benchmark processes run at once for n in all, in proportion
    to their clients."""
    clients = [rb_clients(a) for a in parts]
    return [n * c // sum(clients) for c in clients]


def rb_start(port: int, args: Sequence[str]) -> subprocess.Popen:
    return subprocess.Popen(rb_argv(port, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, preexec_fn=raise_nofile,
                            start_new_session=True)


def rb_finish(p: subprocess.Popen, test: str, timeout: float) -> Dict[str, float]:
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        # A hung run (or Ctrl-C): stop this redis-benchmark by its pid, then re-raise.
        p.kill()
        p.communicate()
        raise
    if p.returncode != 0:
        raise RuntimeError(f"redis-benchmark exited {p.returncode}: {err.strip()[-300:]}")
    return rb_parse(out, test)


def rb_run(port: int, args: Sequence[str], test: str, timeout: float,
           during: Optional[Callable[[subprocess.Popen], object]] = None) -> Dict:
    """One redis-benchmark run; during(popen), if given, runs while it does and its result is returned
    as r["during"]."""
    t0 = time.monotonic()
    p = rb_start(port, args)
    seen = None
    if during is not None:
        try:
            seen = during(p)
        except BaseException:
            p.kill()
            p.communicate()
            raise
    r = rb_finish(p, test, timeout)
    r["seconds"] = round(time.monotonic() - t0, 3)
    if during is not None:
        r["during"] = seen
    return r


def rb_together(port: int, runs: Sequence[tuple], timeout: float) -> Dict:
    """Several redis-benchmark runs (args, test) at once on one target, each to its end. Returns their
    results, each with the seconds from the common start to its own end, and the wall time of all."""
    t0 = time.monotonic()
    procs: List[subprocess.Popen] = []
    try:
        for args, _ in runs:
            procs.append(rb_start(port, args))
        ends: List[Optional[float]] = [None] * len(procs)
        while None in ends:  # --csv prints nothing until the end: the pipes need no reading meanwhile
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"redis-benchmark runs still going after {timeout:g}s")
            for i, p in enumerate(procs):
                if ends[i] is None and p.poll() is not None:
                    ends[i] = round(time.monotonic() - t0, 3)
            time.sleep(0.005)
        results = [rb_finish(p, test, timeout) for p, (_, test) in zip(procs, runs)]
    except BaseException:
        for p in procs:  # by pid, as rb_finish does
            if p.poll() is None:
                p.kill()
                p.communicate()
        raise
    for r, end in zip(results, ends):
        r["seconds"] = end
    return {"runs": results, "seconds": max(ends)}


# ---------------------------------------------------------------------------------------------------
# respload (bench/respload.cpp): a load generator that costs little per reply, for the rows where
# redis-benchmark itself is the bound (it builds a hiredis reply object per element of every reply).
# Its arguments read as redis-benchmark's (-c, -P, -n, -r, the command with __rand_int__); it prints one
# JSON line and exits non-zero on a connection failure, a protocol error or any error reply.

def rl_argv(binary: str, port: int, args: Sequence[str]) -> List[str]:
    return [binary, "--host", HOST, "--port", str(port), *args]


def rl_template(args: Sequence[str]) -> str:
    return " ".join(["respload", "--host", HOST, "--port", "<port>", *(shlex.quote(a) for a in args)])


def rl_run(binary: str, port: int, args: Sequence[str], timeout: float) -> Dict:
    """One respload run: its JSON line, with the wall time of the process ("wall_seconds"; its own
    "seconds" run from the first request sent to the last reply)."""
    t0 = time.monotonic()
    argv = rl_argv(binary, port, args)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         text=True, preexec_fn=raise_nofile, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        p.kill()  # by pid, as rb_finish does
        p.communicate()
        raise
    line = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        r = json.loads(line)
    except ValueError:
        r = None
    if p.returncode != 0 or r is None:
        what = f"{r['errors']} error replies, first {r['first_error']!r}" if r and r.get("errors") else err.strip()[-300:]
        raise RuntimeError(f"respload exited {p.returncode}: {what}")
    r["wall_seconds"] = round(time.monotonic() - t0, 3)
    return r


def children_cpu() -> float:
    """User + system CPU of this process's children reaped so far: around one load-generator run (the
    only child that ends meanwhile), what the load generator itself used."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


RESP3_LINE = re.compile(rb"(?:^| )resp=3(?: |$)")


def resp3_clients(c: Conn) -> int:
    """Connections CLIENT LIST shows in RESP3 (resp=3) on the server `c` is connected to."""
    text = c.call("CLIENT", "LIST")
    if not isinstance(text, bytes):
        raise RuntimeError(f"CLIENT LIST answered {text!r}")
    return sum(1 for line in text.splitlines() if RESP3_LINE.search(line))


def watch_resp3(port: int, want: int) -> Callable[[subprocess.Popen], Dict]:
    """A `during` for rb_run: samples CLIENT LIST every 10 ms while redis-benchmark runs, until it has
    seen `want` more RESP3 connections than before the start (HELLO 3 accepted on every benchmark
    connection). redis-benchmark ignores the reply to HELLO, so a refused HELLO would silently leave
    the run in RESP2: this is the proof that the run spoke RESP3."""
    c = Conn(port, timeout=10)  # itself a RESP2 connection: not counted
    baseline = resp3_clients(c)
    def during(p: subprocess.Popen) -> Dict:
        best, samples = 0, 0
        try:
            while p.poll() is None and best < want:
                best = max(best, resp3_clients(c) - baseline)
                samples += 1
                if best < want:
                    time.sleep(0.01)
        finally:
            c.close()
        return {"resp3_connections_seen": best, "expected": want, "baseline": baseline,
                "client_list_samples": samples}
    return during


# ---------------------------------------------------------------------------------------------------
# Scenarios.

@dataclass
class Target:
    label: str
    kind: str                # respcache | redis | twemproxy | cluster (the masters of the Redis Cluster)
    instance: str            # which process (a key of Bench.instances)


@dataclass
class Scenario:
    name: str
    title: str
    meaning: str
    mode: str                # rps | mix | latency | together | cluster | light
    args: List[str]          # redis-benchmark args (mode rps/latency; respload's in mode light); GET half for mix
    test: str = "GET"
    warm: bool = False       # warm the respcache instance before each of its runs (hit scenarios)
    expect_hits: Optional[bool] = None  # True: respcache must answer from cache; False: must miss
    targets: List[Target] = field(default_factory=list)
    ratio_pairs: List[tuple] = field(default_factory=list)  # (numerator label, denominator label)
    set_args: List[str] = field(default_factory=list)  # mix: the SET half
    resp3: bool = False      # redis-benchmark -3 (HELLO 3 on every connection); args include "-3"
    resp2_twin: Optional[str] = None  # the RESP2 scenario with the same load (CPU cost comparison)
    keys: KeySet = STRINGS   # what warming reads through respcache
    seeds: tuple = ()        # key sets seeded in Redis for this scenario (STRINGS always is)
    hit_ratio_expected: Optional[float] = None  # a partial-hit scenario's ratio by construction (checked)
    parts: List[List[str]] = field(default_factory=list)  # mode together: redis-benchmark args of each process
    tls: bool = False        # redis-benchmark --tls to the targets' TLS ports (mode rps)
    reads_missing: bool = False  # the load reads keys that do not exist (Redis must count them as misses)

    @property
    def command(self) -> str:
        """The Redis command the load sends (its INFO commandstats entry)."""
        return self.test.split()[0].lower()

    @property
    def lookups(self) -> int:
        """Cache lookups per request: one per key (respcache looks up each key of an MGET)."""
        return max(1, self.test.count("__rand_int__"))


COMMON = ["-r", str(KEYS), "-d", str(VALUE_SIZE)]
RESPCACHE, REDIS, TWEM = "respcache", "Redis direct", "twemproxy"
CLUSTER = "Redis Cluster direct"


def custom_load(r: int, *command: str) -> Dict:
    """A Scenario's args and test for a command of redis-benchmark's own (50 clients): each __rand_int__
    becomes a key number below r, drawn independently; the CSV row is named by the command line."""
    return {"args": ["-c", "50", "-r", str(r), *command], "test": " ".join(command)}


# The Zipf-like mix: (-r, clients) of redis-benchmark processes running at once, requests in proportion
# to clients. Nested uniform ranges over the seeded keys: the most requested 100 / 1k / 10k keys get
# 42 / 62 / 82% of the requests, as with a Zipf law of exponent 1 over 100k keys (43 / 62 / 81%).
ZIPF_TIERS = [(100, 20), (1_000, 10), (10_000, 10), (KEYS, 10)]
ZIPF_CAPACITY = KEYS // 10


def zipf_top_share(m: int) -> float:
    """The share of the mix's requests that go to its m most requested keys (m = ZIPF_CAPACITY: the hit
    ratio of a cache always holding the most requested keys)."""
    clients = sum(c for _, c in ZIPF_TIERS)
    return sum(c / clients * min(m, r) / r for r, c in ZIPF_TIERS)


def three(instance: str) -> List[Target]:
    return [Target(RESPCACHE, "respcache", instance), Target(REDIS, "redis", "redis"),
            Target(TWEM, "twemproxy", "twemproxy")]


THREE_RATIOS = [(RESPCACHE, REDIS), (RESPCACHE, TWEM)]
NO_RESP3 = "n/a (no RESP3)"


def two(instance: str) -> List[Target]:
    """The RESP3 rows: twemproxy does not speak RESP3 (it closes the connection at HELLO)."""
    return [Target(RESPCACHE, "respcache", instance), Target(REDIS, "redis", "redis")]


# The Redis Cluster rows: redis-benchmark --cluster gives each of its connections one master, in turn
# (connection i: the i-th master of CLUSTER NODES modulo their number), and redis-benchmark 7.0 writes
# into each key's {tag} the hash tag of that master's first slot, from a fixed table: for 3 masters made
# by redis-cli --cluster create, {06S}, {8M}} and {63n} (a 2-character tag is padded with '}'), so
# `GET key:{tag}:__rand_int__` with -r 100000 reads key:{06S}:000000012345 ... (seen with MONITOR).
# respcache is loaded with the same keys from plain redis-benchmark processes, one per master with that
# master's tag written in (the tags are learnt from the cluster at the start: Bench.probe_cluster_tags).
CLUSTER_VALUE = "v" * VALUE_SIZE  # what the cluster SET rows write (a custom command: -d does not apply)
CLUSTER_ROWS = ("cluster_get", "cluster_get_hits", "cluster_set", "cluster_get_misses")
# The respcache instances in front of the cluster (see Bench.RESPCACHE_ARGS): `cluster` with --capacity 0
# for the routing rows (nothing cached: the cost of routing alone), `cluster_cache` for the hit row.
CLUSTER_INSTANCES = ("cluster", "cluster_cache")
CLUSTER_CAPACITY = 400_000  # cluster_cache: every key of the cluster rows (KEYS per master) fits


def cluster_targets(instance: str) -> List[Target]:
    return [Target(RESPCACHE, "respcache", instance), Target(CLUSTER, "cluster", "redis_cluster")]


def cluster_scenario(name: str, title: str, meaning: str, *command: str, reads_missing: bool = False,
                     instance: str = "cluster", warm: bool = False, expect_hits: bool = False) -> "Scenario":
    """A cluster row; by default a routing row (the `cluster` instance, --capacity 0: no hit expected)."""
    return Scenario(name, title, meaning, "cluster", **custom_load(KEYS, *command),
                    targets=cluster_targets(instance), ratio_pairs=[(RESPCACHE, CLUSTER)],
                    reads_missing=reads_missing, warm=warm, expect_hits=expect_hits)


def cluster_how(respcache: str) -> str:
    return (f"respcache (--backend redis+cluster://, {respcache}) loaded by 3 plain "
            "redis-benchmark processes at once, one per master with its tag and 17/17/16 of the 50 "
            "connections, against one redis-benchmark --cluster straight to the masters; same keys, -c, "
            "-n, -P, -r; requests / wall time of the load.")


CLUSTER_HOW = cluster_how("--capacity 0: routing alone, nothing cached")
CLUSTER_HOW_CACHED = cluster_how(f"--capacity {CLUSTER_CAPACITY} --ttl {CACHE_TTL}: every key of the row "
                                 "cached, warmed before each run")


def zipf_scenario(name: str, instance: str, suffix: str) -> "Scenario":
    """The Zipf-like mix against the respcache `instance` (see RESPCACHE_ARGS)."""
    return Scenario(name, "GET, Zipf-like skew, cache 10% of the keys" + suffix,
             f"{len(ZIPF_TIERS)} redis-benchmark GET processes at once on the target, "
             + ", ".join(f"{c} clients on -r {r}" for r, c in ZIPF_TIERS)
             + " (50 clients): the most requested 100 / 1k / 10k keys get "
             + " / ".join(f"{zipf_top_share(m) * 100:.0f}" for m in (100, 1_000, 10_000))
             + f"% of the requests, about a Zipf law of exponent 1 over the 100k keys. Each process does a fixed "
             f"number of requests in proportion to its clients, so every target serves the same "
             f"mixture; the figure is all requests / the time until the last process ended. respcache "
             f"runs with --capacity {ZIPF_CAPACITY} (10% of the keys) and is warmed before each run by "
             f"the same mixture (a third of the requests, not measured); its hit ratio is measured "
             f"(a cache always holding the {ZIPF_CAPACITY:,} most requested keys would reach "
             f"{zipf_top_share(ZIPF_CAPACITY) * 100:.1f}%).",
             "together", ["-t", "get", "-c", "50", *COMMON], warm=True,
             parts=[["-t", "get", "-c", str(c), "-r", str(r), "-d", str(VALUE_SIZE)] for r, c in ZIPF_TIERS],
             targets=three(instance), ratio_pairs=THREE_RATIOS)


def scenarios() -> List[Scenario]:
    return [
        Scenario("get_hits", "GET hits, 50 clients",
                 "GET of random keys among 100k, all cached in respcache (warmed before each run); "
                 "50 connections, one request in flight each. Redis and twemproxy serve the same GETs "
                 "from Redis itself.",
                 "rps", ["-t", "get", "-c", "50", *COMMON], warm=True, expect_hits=True,
                 targets=three("main"), ratio_pairs=THREE_RATIOS),
        Scenario("get_hits_p16", "GET hits, 50 clients, pipeline 16",
                 "As above with 16 requests in flight per connection (redis-benchmark -P 16).",
                 "rps", ["-t", "get", "-c", "50", "-P", "16", *COMMON], warm=True, expect_hits=True,
                 targets=three("main"), ratio_pairs=THREE_RATIOS),
        Scenario("get_hits_resp3", "GET hits, 50 clients, RESP3",
                 "GET hits as in 'GET hits, 50 clients' (same keys, values and warming, the warming "
                 "over RESP2: a GET's cache entry serves both protocols) with redis-benchmark -3: every "
                 "connection starts with HELLO 3. Before each respcache run a RESP3 connection reads "
                 "every 100th key and checks the values and that they were hits; during every run "
                 "CLIENT LIST must show the 50 connections in RESP3. twemproxy does not speak RESP3 (it "
                 "closes the connection at HELLO; the harness checks this once per run): respcache vs "
                 "Redis direct only.",
                 "rps", ["-3", "-t", "get", "-c", "50", *COMMON], warm=True, expect_hits=True,
                 targets=two("main"), ratio_pairs=[(RESPCACHE, REDIS)], resp3=True, resp2_twin="get_hits"),
        Scenario("get_hits_p16_resp3", "GET hits, 50 clients, pipeline 16, RESP3",
                 "As 'GET hits, 50 clients, RESP3' with 16 requests in flight per connection "
                 "(redis-benchmark -3 -P 16).",
                 "rps", ["-3", "-t", "get", "-c", "50", "-P", "16", *COMMON], warm=True, expect_hits=True,
                 targets=two("main"), ratio_pairs=[(RESPCACHE, REDIS)], resp3=True,
                 resp2_twin="get_hits_p16"),
        Scenario("get_miss_nocache", "GET misses, cache disabled",
                 "respcache started with --capacity 0: every GET is forwarded to Redis (the pure "
                 "forwarding cost of the miss path, no cache fill).",
                 "rps", ["-t", "get", "-c", "50", *COMMON], expect_hits=False,
                 targets=three("nocache"), ratio_pairs=THREE_RATIOS),
        Scenario("get_miss_cold", "GET misses that fill the cache",
                 "respcache with the cache on but --ttl 1ms: each entry expires 1 ms after its fill, so "
                 "a random key is practically never found (the measured hit ratio is printed): every GET "
                 "is a miss that reads Redis and fills the cache. A key's first fill sends CLIENT CACHING "
                 "yes + GET + PTTL; once its entry has expired, Redis still tracks the name for respcache, "
                 "so its later fills send GET + PTTL alone (from the second round on, nearly all of them).",
                 "rps", ["-t", "get", "-c", "50", *COMMON],
                 targets=three("cold"), ratio_pairs=THREE_RATIOS),
        Scenario("get_miss_cold_ttl", "GET misses that fill the cache, --invalidation ttl",
                 "as the row above, with --invalidation ttl: no client tracking, so every GET is a miss "
                 "that sends GET + PTTL and fills the cache; what tracking costs a fill is the "
                 "difference between the two rows.",
                 "rps", ["-t", "get", "-c", "50", *COMMON],
                 targets=three("cold_ttl"), ratio_pairs=THREE_RATIOS),
        Scenario("get_miss_cold_bcast", "GET misses that fill the cache, --tracking-mode bcast",
                 "as the get_miss_cold row, with --tracking-mode bcast: the invalidation channel tracks "
                 "every key for itself, so a fill is GET + PTTL and Redis remembers nothing; each write "
                 "is announced instead (the set_bcast row).",
                 "rps", ["-t", "get", "-c", "50", *COMMON],
                 targets=three("cold_bcast"), ratio_pairs=THREE_RATIOS),
        Scenario("set", "SET, 50 clients",
                 "SET of random keys (100-byte values): forwarded by respcache and twemproxy; respcache "
                 "also invalidates the key in its cache.",
                 "rps", ["-t", "set", "-c", "50", *COMMON], test="SET",
                 targets=three("main"), ratio_pairs=THREE_RATIOS),
        Scenario("set_bcast", "SET, 50 clients, --tracking-mode bcast",
                 "as the set row, through a respcache with --tracking-mode bcast: Redis also announces "
                 "each write to respcache's channel, which applies it (what bcast costs a write).",
                 "rps", ["-t", "set", "-c", "50", *COMMON], test="SET",
                 targets=three("main_bcast"), ratio_pairs=THREE_RATIOS),
        Scenario("mix", "GET/SET mix, 45 GET + 5 SET clients",
                 "redis-benchmark cannot mix commands, so two run at once on the same target: 45 GET "
                 "clients and 5 SET clients. The GET process does a fixed number of requests; the SET "
                 "process runs meanwhile and is stopped when the GET process ends. The figure is "
                 "(GETs + SETs done meanwhile, as counted by Redis) / the GET process's wall time, so both "
                 "loads overlap for the whole measurement. 90/10 by clients: the share of SET requests "
                 "follows from each target's speed for each command (10-20%, printed). respcache is warmed before each run; its SETs invalidate "
                 "keys that the GETs then miss and refill.",
                 "mix", ["-t", "get", "-c", "45", *COMMON], warm=True,
                 set_args=["-t", "set", "-c", "5", *COMMON],
                 targets=three("main"), ratio_pairs=THREE_RATIOS),
        Scenario("latency", "single client GET hit latency",
                 "One connection, one request at a time; redis-benchmark's p50 and p99 latency in ms "
                 "(lower is better; ratios are respcache's p99 over the other's p99).",
                 "latency", ["-t", "get", "-c", "1", "--precision", "3", *COMMON], warm=True,
                 expect_hits=True, targets=three("main"), ratio_pairs=THREE_RATIOS),
        Scenario("clients_1000", "GET hits, 1000 clients",
                 "1000 concurrent connections, one request in flight each.",
                 "rps", ["-t", "get", "-c", "1000", *COMMON], warm=True, expect_hits=True,
                 targets=three("main"), ratio_pairs=THREE_RATIOS),
        Scenario("hgetall_hits", "HGETALL hits, 50-field hashes, 50 clients",
                 f"HGETALL of random hashes among {HASH_KEYS:,} (h:000000000000 ..., redis-benchmark "
                 f"-r {HASH_KEYS}), each of {HASH_FIELDS} fields f:00 ... of 10-byte values, seeded directly "
                 "in Redis; all cached in respcache (every hash read once through it before each run, each "
                 "reply checked). 50 connections, one request in flight each.",
                 "rps", **custom_load(HASH_KEYS, "HGETALL", "h:__rand_int__"), warm=True, expect_hits=True,
                 keys=HASHES, seeds=(HASHES,), targets=three("main"), ratio_pairs=THREE_RATIOS),
        Scenario("hgetall_hits_light", "HGETALL hits, 50-field hashes, 50 clients, light load generator",
                 "The load of 'HGETALL hits, 50-field hashes, 50 clients' (same hashes, seeding, warming, reply "
                 "check, 50 connections, one request in flight each, keys drawn per request below -r "
                 f"{HASH_KEYS}) sent by respload (bench/respload.cpp) instead of redis-benchmark: it counts "
                 "replies by walking their framing, without building an object per element, so it needs "
                 "much less CPU per HGETALL reply than redis-benchmark, which uses a whole core there. "
                 "The load generator's own CPU is measured in every run.",
                 "light", **custom_load(HASH_KEYS, "HGETALL", "h:__rand_int__"), warm=True,
                 expect_hits=True, keys=HASHES, seeds=(HASHES,), targets=three("main"),
                 ratio_pairs=THREE_RATIOS),
        Scenario("hgetall_hits_light_p16", "HGETALL hits, 50-field hashes, 50 clients, pipeline 16, light load generator",
                 "As 'HGETALL hits ..., light load generator' with 16 requests in flight per connection "
                 "(respload -P 16: a batch of 16, the next once all 16 replies are in, as redis-benchmark -P "
                 "does): fewer system calls per request on every side.",
                 "light", args=["-P", "16", *custom_load(HASH_KEYS, "HGETALL", "h:__rand_int__")["args"]],
                 test="HGETALL h:__rand_int__", warm=True, expect_hits=True, keys=HASHES, seeds=(HASHES,),
                 targets=three("main"), ratio_pairs=THREE_RATIOS),
        Scenario("mget10_hits", "MGET of 10 keys, all hits, 50 clients",
                 "MGET of 10 random keys among 100k (each drawn independently), all cached in respcache "
                 "by the GET warming: respcache serves an MGET key by key from GET entries. Its hit ratio "
                 "counts the keys.",
                 "rps", **custom_load(KEYS, "MGET", *["key:__rand_int__"] * 10), warm=True,
                 expect_hits=True, targets=three("main"), ratio_pairs=THREE_RATIOS),
        Scenario("mget10_half", "MGET of 10 keys, half hits, 50 clients",
                 f"MGET of 5 random keys key:... (100-byte values, cached by the GET warming) alternating "
                 f"with 5 random keys big:... (100k more keys seeded in Redis, {VALUE_SIZE + 1}-byte values) "
                 f"against a respcache with --max-value-size {VALUE_SIZE}: a big: key is served but never "
                 "cached, so each of its reads stays a miss that goes to Redis with its fill request and "
                 "whose fill is refused, for the whole run and every round (a key missing in Redis would "
                 "be negative-cached after one read; a cache too small for the key space would lose the "
                 "hot keys too). The hit ratio (of keys) is 50% by construction and checked.",
                 "rps", **custom_load(KEYS, "MGET", *["key:__rand_int__", "big:__rand_int__"] * 5),
                 warm=True, hit_ratio_expected=0.5, seeds=(UNCACHED,), targets=three("smallvalues"),
                 ratio_pairs=THREE_RATIOS),
        zipf_scenario("zipf", "zipf", ""),
        zipf_scenario("zipf_tinylfu", "zipf_tinylfu", ", --eviction-policy tinylfu"),
        Scenario("scaling", "GET hits, 50 clients: the default --threads against --threads 2 and Redis direct",
                 "The hit scenario (50 clients, unpipelined) against respcache with its default io threads "
                 "(half the cores: 1 here), with --threads 2, and Redis direct; throughput and p99 latency "
                 "(redis-benchmark's, per run). redis-benchmark itself needs most of one core.",
                 "rps", ["-t", "get", "-c", "50", *COMMON], warm=True, expect_hits=True,
                 targets=[Target("respcache default threads", "respcache", "main"),
                          Target("respcache --threads 2", "respcache", "threads2"),
                          Target(REDIS, "redis", "redis")],
                 ratio_pairs=[("respcache default threads", "respcache --threads 2"),
                              ("respcache default threads", REDIS)]),
        Scenario("tls_get_hits", "GET hits over TLS, 50 clients",
                 "The 'GET hits, 50 clients' load with redis-benchmark --tls (TLS 1.3, client certificates "
                 "made by the harness with openssl, --tls-auth-clients yes on both targets): respcache's "
                 "--tls-port, whose backend is the same Redis over TLS (rediss://), against Redis's own "
                 "--tls-port.",
                 "rps", ["-t", "get", "-c", "50", *COMMON], warm=True, expect_hits=True, tls=True,
                 targets=[Target("respcache TLS", "respcache", "tls"), Target("Redis direct TLS", "redis", "redis")],
                 ratio_pairs=[("respcache TLS", "Redis direct TLS")]),
        Scenario("tracking", "GET hits, --invalidation tracking vs ttl, --consistency strict",
                 "The hit scenario (50 clients) with client tracking on (default), off (--invalidation ttl), "
                 "and on with --consistency strict (a read barrier before hits); the ratios are "
                 "tracking / ttl and strict / tracking.",
                 "rps", ["-t", "get", "-c", "50", *COMMON], warm=True, expect_hits=True,
                 targets=[Target("respcache tracking", "respcache", "main"),
                          Target("respcache ttl", "respcache", "ttlmode"),
                          Target("respcache strict", "respcache", "strict")],
                 ratio_pairs=[("respcache tracking", "respcache ttl"),
                              ("respcache strict", "respcache tracking")]),
        cluster_scenario("cluster_get", "Redis Cluster, 3 masters: GET of existing keys, 50 clients",
                         f"GET of random keys key:{{tag}}:000000000000 ... among {KEYS:,} per master (each master's "
                         "keys seeded beforehand with 100-byte values, so every GET finds its key in Redis). "
                         + CLUSTER_HOW, "GET", "key:{tag}:__rand_int__"),
        cluster_scenario("cluster_get_hits", "Redis Cluster, 3 masters: GET hits, cached in respcache, 50 clients",
                         f"The GETs of 'GET of existing keys' (key:{{tag}}:... among {KEYS:,} per master) against "
                         f"a respcache in cluster mode that caches: before each of its runs every key of the row "
                         f"({KEYS:,} per master) is read once through it (each reply checked), so every GET of the "
                         "run is a hit (checked: respcache's cache_hits cover the GETs and the masters run no GET "
                         "meanwhile). The direct side is the same redis-benchmark --cluster run as in 'GET of "
                         "existing keys', served by the masters. " + CLUSTER_HOW_CACHED,
                         "GET", "key:{tag}:__rand_int__", instance="cluster_cache", warm=True, expect_hits=True),
        cluster_scenario("cluster_set", "Redis Cluster, 3 masters: SET, 50 clients",
                         f"SET of random keys key:{{tag}}:... (the keys of the GET row) to a {VALUE_SIZE}-byte "
                         "value. " + CLUSTER_HOW, "SET", "key:{tag}:__rand_int__", CLUSTER_VALUE),
        cluster_scenario("cluster_get_misses", "Redis Cluster, 3 masters: GET of missing keys, 50 clients",
                         "GET of random keys miss:{tag}:... that no one writes: every GET is a miss in Redis "
                         "(checked with keyspace_misses), a nil reply. " + CLUSTER_HOW,
                         "GET", "miss:{tag}:__rand_int__", reads_missing=True),
    ]


EXTRA = ["staleness", "memory"]


def cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU time used so far by process `pid` (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(sorted_xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_xs:
        return float("nan")
    k = max(0, min(len(sorted_xs) - 1, int(-(-p * len(sorted_xs) // 100)) - 1))
    return sorted_xs[k]


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.workdir = Path(tempfile.mkdtemp(prefix="respcache-bench-"))
        self.procs = Procs(self.workdir, opts.bin)
        self.respload = opts.respload  # the light load generator (bench/respload.cpp), mode light
        self.instances: Dict[str, Proc] = {}
        self.results: Dict = {}
        self.warnings: List[str] = []
        self.rounds = 1 if opts.quick else opts.rounds
        self.duration = opts.duration if opts.duration else (1.0 if opts.quick else 3.0)
        self.calibrated: Dict[str, int] = {}
        self.bench_payload: Optional[bytes] = None  # the value redis-benchmark's SET writes
        self.seeded: Dict[bytes, int] = {}  # KeySet prefix -> keys seeded in Redis
        self.twem_resp3: Optional[Dict] = None  # the probe of twemproxy with redis-benchmark -3
        self.certs: Optional[Certs] = None  # made when a TLS scenario first needs them
        self.cluster_nodes: List[Proc] = []  # the Redis Cluster's masters, started when a scenario first needs them
        self.cluster_record: Optional[Dict] = None  # ports, tags, the create command, seeding
        self.cluster_tags: List[str] = []  # redis-benchmark --cluster's hash tag of each master, in node order

    # ----- instances, started lazily and restarted (loudly) if one died
    RESPCACHE_ARGS = {
        "main": ["--capacity", "200000", "--ttl", CACHE_TTL],
        "nocache": ["--capacity", "0"],
        "cold": ["--capacity", "200000", "--ttl", "1ms"],
        "cold_ttl": ["--capacity", "200000", "--ttl", "1ms", "--invalidation", "ttl"],
        "cold_bcast": ["--capacity", "200000", "--ttl", "1ms", "--tracking-mode", "bcast"],
        "main_bcast": ["--capacity", "200000", "--ttl", CACHE_TTL, "--tracking-mode", "bcast"],
        "threads2": ["--capacity", "200000", "--ttl", CACHE_TTL, "--threads", "2"],
        "ttlmode": ["--capacity", "200000", "--ttl", CACHE_TTL, "--invalidation", "ttl"],
        "strict": ["--capacity", "200000", "--ttl", CACHE_TTL, "--consistency", "strict"],
        "smallvalues": ["--capacity", "200000", "--ttl", CACHE_TTL, "--max-value-size", str(VALUE_SIZE)],
        "zipf": ["--capacity", str(ZIPF_CAPACITY), "--ttl", CACHE_TTL],
        "zipf_tinylfu": ["--capacity", str(ZIPF_CAPACITY), "--ttl", CACHE_TTL, "--eviction-policy", "tinylfu"],
        "tls": ["--capacity", "200000", "--ttl", CACHE_TTL],  # with the TLS options of tls_instance_args
        # --backend redis+cluster://<the masters>. The routing rows' instance caches nothing by choice
        # (--capacity 0: what routing alone costs); the hit row's holds every key of the row.
        "cluster": ["--capacity", "0"],
        "cluster_cache": ["--capacity", str(CLUSTER_CAPACITY), "--ttl", CACHE_TTL],
    }

    def wants_tls(self) -> bool:
        """Whether the run includes a TLS scenario (Redis then listens for TLS too) and openssl is there."""
        only = self.opts.only.split(",") if self.opts.only else None
        return OPENSSL is not None and (only is None or any(s.tls and s.name in only for s in scenarios()))

    def tls_certs(self) -> Certs:
        if self.certs is None:
            d = self.workdir / "certs"
            d.mkdir(exist_ok=True)
            self.certs = Certs(d)
        return self.certs

    def tls_instance_args(self) -> Dict:
        """start_respcache's arguments for the TLS instance: TLS for clients and to Redis's TLS port."""
        c = self.tls_certs()
        return {"backend_url": f"rediss://{HOST}:{self.instance('redis').tls_port}",
                "tls_args": ["--tls-port", str(free_port()), *c.server_args(), "--backend-tls-ca-cert-file",
                             c.crt("ca"), "--backend-tls-cert-file", c.crt("client"), "--backend-tls-key-file",
                             c.key("client")]}

    def bench_port(self, sc: Scenario, p: Proc) -> tuple:
        """The port redis-benchmark talks to on `p` and the options it needs there (TLS for TLS scenarios)."""
        if not sc.tls:
            return p.port, []
        if not p.tls_port:
            raise RuntimeError(f"{sc.name}: {p.name} has no TLS port (is the openssl command installed?)")
        return p.tls_port, self.tls_certs().client_args()

    def instance(self, name: str) -> Proc:
        p = self.instances.get(name)
        if p is not None and p.alive():
            return p
        if p is not None:
            msg = (f"{p.name} (pid {p.pid}) exited with status {p.popen.returncode} during the run: "
                   f"{p.log_tail()}; restarting it")
            self.warn(msg)
            self.procs.stop(p)
        if name == "redis_cluster":
            return self.redis_cluster()[0]  # the seed node redis-benchmark --cluster is given
        if name == "redis":
            p = self.procs.start_redis("redis", self.tls_certs().server_args() if self.wants_tls() else ())
        elif name in CLUSTER_INSTANCES:
            p = self.procs.start_respcache(f"respcache-{name}", 0, self.RESPCACHE_ARGS[name],
                                           backend_url=self.cluster_url())
        elif name == "twemproxy":
            p = self.procs.start_twemproxy("twemproxy", self.instance("redis").port)
        else:
            extra = self.tls_instance_args() if name == "tls" else {}
            p = self.procs.start_respcache(f"respcache-{name}", self.instance("redis").port,
                                           self.RESPCACHE_ARGS[name], **extra)
        self.instances[name] = p
        return p

    def retire(self, name: str) -> None:
        if name == "redis_cluster":
            for p in self.cluster_nodes:
                self.procs.stop(p)
            self.cluster_nodes = []
            return
        p = self.instances.pop(name, None)
        if p is not None:
            self.procs.stop(p)

    # ----- the Redis Cluster (3 masters), for the cluster_* scenarios
    def redis_cluster(self) -> List[Proc]:
        """The cluster's masters: started, their redis-benchmark hash tags learnt and their keys seeded on
        first use. Not restarted if a node dies (its keys would be gone): the scenario fails instead."""
        if self.cluster_nodes:
            dead = [p for p in self.cluster_nodes if not p.alive()]
            if dead:
                raise RuntimeError(f"cluster node {dead[0].name} exited with status {dead[0].popen.returncode}: "
                                   f"{dead[0].log_tail()}")
            return self.cluster_nodes
        if self.cluster_record is not None:
            raise RuntimeError("the Redis Cluster was already stopped in this run")
        t0 = time.monotonic()
        self.cluster_nodes, self.cluster_record = self.procs.start_cluster("cluster", CLUSTER_MASTERS)
        self.cluster_record["tags"] = self.probe_cluster_tags()
        self.say(f"Redis Cluster: masters on ports {', '.join(str(p.port) for p in self.cluster_nodes)} (bus ports "
                 f"+{CLUSTER_BUS_OFFSET}), cluster_state:ok after {self.cluster_record['seconds_to_ok']}s; "
                 f"redis-benchmark --cluster's hash tags, in that order: {' '.join(self.cluster_tags)}")
        self.seed_cluster()
        self.cluster_record["setup_seconds"] = round(time.monotonic() - t0, 1)
        return self.cluster_nodes

    def cluster_url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{p.port}" for p in self.redis_cluster())

    def probe_cluster_tags(self) -> Dict:
        """Which hash tag redis-benchmark --cluster writes into {tag} for each master (what the respcache
        side must send to touch the same keys): a short run of `SET bench:tagprobe:{tag} 1` with a few
        connections per master, then each master's keys. One tag per master is expected: redis-benchmark
        7.0 always writes the tag of its master's first slot (later versions draw one of the master's
        slots per request, a key space this harness cannot seed: the probe then stops the cluster rows)."""
        nodes = self.cluster_nodes
        prefix = b"bench:tagprobe:"
        args = ["--cluster", "-c", str(3 * len(nodes)), "-n", str(30 * len(nodes)), "SET", prefix.decode() + "{tag}", "1"]
        r = subprocess.run(rb_argv(nodes[0].port, args), capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"tag probe: redis-benchmark --cluster exited {r.returncode}: {r.stderr.strip()[-300:]}")
        found = {}
        for p in nodes:
            with Conn(p.port) as c:
                keys, cursor = [], b"0"
                while True:
                    cursor, batch = c.call("SCAN", cursor, "MATCH", prefix + b"*", "COUNT", "1000")
                    keys += batch
                    if cursor == b"0":
                        break
                if len(keys) != 1:
                    raise RuntimeError(f"tag probe: {p.name} holds {len(keys)} keys {prefix.decode()}* "
                                       f"({[k.decode() for k in keys][:5]}), one expected")
                c.call("DEL", keys[0])
            found[p.port] = keys[0][len(prefix):].decode()
        self.cluster_tags = [found[p.port] for p in nodes]
        return {"command": rb_template(args), "tags_by_port": found,
                "keys_seen": [f"{prefix.decode()}{t}" for t in self.cluster_tags]}

    def cluster_keyset(self, i: int, prefix: str = "key:") -> KeySet:
        """The keys of master i as redis-benchmark --cluster names them: prefix + tag + ':' + 12 digits."""
        pre = f"{prefix}{self.cluster_tags[i]}:".encode()
        name = lambda j: b"%s%012d" % (pre, j)
        value = lambda j: (name(j) + b":").ljust(VALUE_SIZE, b"v")
        return KeySet(pre, KEYS, lambda j: encode(b"SET", name(j), value(j)), lambda j: encode(b"GET", name(j)), value)

    def seed_cluster(self) -> None:
        """Writes key:{tag}:000000000000 ... (KEYS per master, 100-byte values) on the master of each tag,
        then checks respcache in front of the cluster against the masters."""
        t0 = time.monotonic()
        for i, p in enumerate(self.cluster_nodes):
            ks = self.cluster_keyset(i)
            bad = pipelined(p.port, ks.count, ks.write, lambda j, r: r == "OK")
            if bad:
                raise RuntimeError(f"seeding {ks.prefix.decode()}... on {p.name}: {bad} writes failed")
            with Conn(p.port) as c:
                n = c.call("DBSIZE")
            if n != ks.count:
                raise RuntimeError(f"seeding the cluster: {p.name} holds {n} keys, {ks.count} expected")
        total = KEYS * len(self.cluster_nodes)
        self.cluster_record["seeded_keys"] = total
        self.say(f"seeded {total} keys key:{{tag}}:000000000000 ... key:{{tag}}:{KEYS - 1:012d} "
                 f"({KEYS} per master) in {time.monotonic() - t0:.1f}s")
        self.cluster_sanity()

    def cluster_sanity(self) -> None:
        """Spot check through respcache in cluster mode: GETs of every 997th key of each master, an MGET
        across the three masters (split by respcache) and a GET of a missing key return what the masters
        hold."""
        rc = self.instance("cluster")
        wrong, checked = [], 0
        with Conn(rc.port) as c:
            for i, p in enumerate(self.cluster_nodes):
                ks = self.cluster_keyset(i)
                for j in range(0, KEYS, 997):
                    got = c.call("GET", ks.name(j))
                    checked += 1
                    if got != ks.value(j):
                        wrong.append(f"GET {ks.name(j).decode()}: {str(got)[:120]}")
            sets = [self.cluster_keyset(i) for i in range(len(self.cluster_nodes))]
            got = c.call("MGET", *(ks.name(7) for ks in sets))
            if got != [ks.value(7) for ks in sets]:
                wrong.append(f"MGET across the masters: {str(got)[:200]}")
            got = c.call("GET", f"miss:{self.cluster_tags[0]}:000000000007")
            if got is not None:
                wrong.append(f"GET of a missing key: {str(got)[:120]}")
        if wrong:
            self.warn(f"cluster sanity: {len(wrong)} of {checked + 2} replies through respcache differ from the "
                      f"masters', first: {wrong[0]}")
        else:
            self.say(f"cluster sanity check passed: {checked} GETs, an MGET across the masters and a missing key "
                     f"through respcache return what the masters hold")
        self.cluster_record["sanity_wrong_replies"] = len(wrong)

    def cluster_warm(self, p: Proc) -> Dict:
        """The cluster hit row's warming: reads every key of the cluster rows (KEYS per master) once through
        respcache, checking each reply is the key's value (as seeded, or CLUSTER_VALUE once cluster_set has
        written it), then that respcache caches them all."""
        t0 = time.monotonic()
        bad = 0
        written = CLUSTER_VALUE.encode()
        for i in range(len(self.cluster_nodes)):
            ks = self.cluster_keyset(i)
            bad += pipelined(p.port, ks.count, ks.read, lambda j, r, ks=ks: r == ks.value(j) or r == written)
        total = KEYS * len(self.cluster_nodes)
        if bad:
            self.warn(f"warming {p.name}: {bad} of {total} replies to GETs of key:{{tag}}:... were not the key's value")
        cached = int(info(p.port, "proxy").get("cached_keys", "0"))
        if cached < total:
            self.warn(f"after warming {p.name} caches {cached} keys, fewer than {total}")
        return {"seconds": round(time.monotonic() - t0, 2), "wrong_replies": bad, "cached_keys": cached}

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        print(f"  WARNING: {msg}", flush=True)

    def say(self, msg: str) -> None:
        print(msg, flush=True)

    # ----- data
    def seed(self, ks: KeySet = STRINGS) -> None:
        """Writes the keys of `ks` directly in Redis (once per run)."""
        if ks.prefix in self.seeded:
            return
        port = self.instance("redis").port
        t0 = time.monotonic()
        bad = pipelined(port, ks.count, ks.write, lambda i, r: r is not None and not isinstance(r, ErrorReply))
        if bad:
            raise RuntimeError(f"seeding {ks.prefix.decode()}...: {bad} writes failed")
        self.seeded[ks.prefix] = ks.count
        n = int(info(port, "keyspace").get("db0", "keys=0").split(",")[0].split("=")[1])
        if n < sum(self.seeded.values()):
            raise RuntimeError(f"seeding: Redis holds {n} keys, expected {sum(self.seeded.values())}")
        self.say(f"seeded {ks.count} keys {ks.name(0).decode()} ... {ks.name(ks.count - 1).decode()} "
                 f"in {time.monotonic() - t0:.1f}s")

    def warm(self, p: Proc, ks: KeySet = STRINGS) -> Dict:
        """Reads every key of `ks` once through respcache, checking each reply is the key's value (as
        seeded, or for a GET the 100-byte payload redis-benchmark's SET writes)."""
        t0 = time.monotonic()
        def ok(i: int, r) -> bool:
            if r == ks.value(i) or (ks is STRINGS and r is not None and r == self.bench_payload):
                return True
            if ks is STRINGS and self.bench_payload is None and isinstance(r, bytes) and len(r) == VALUE_SIZE:
                # redis-benchmark's SET writes one fixed 100-byte payload: learn it from Redis itself.
                with Conn(self.instance("redis").port) as d:
                    if d.call("GET", key_name(i)) == r:
                        self.bench_payload = r
                        return True
            return False
        bad = pipelined(p.port, ks.count, ks.read, ok)
        if bad:
            self.warn(f"warming {p.name}: {bad} of {ks.count} replies to reads of {ks.prefix.decode()}... "
                      f"were not the key's value")
        cached = int(info(p.port, "proxy").get("cached_keys", "0"))
        if cached < ks.count:
            self.warn(f"after warming {p.name} caches {cached} keys, fewer than {ks.count}")
        return {"seconds": round(time.monotonic() - t0, 2), "wrong_replies": bad, "cached_keys": cached}

    def resp3_spot_check(self, p: Proc, step: int = 100) -> Dict:
        """After the (RESP2) warming, a RESP3 connection (HELLO 3) reads every `step`-th key: each reply
        must be the key's value and respcache must count the reads as hits (its cache entries serve
        both protocols), else the RESP3 run would not measure hits."""
        idx = list(range(0, KEYS, step))
        before = info(p.port, "proxy")
        with Conn(p.port) as c:
            hello = c.call("HELLO", "3")
            if not isinstance(hello, dict) or hello.get(b"proto") != 3:
                raise RuntimeError(f"{p.name}: HELLO 3 answered {str(hello)[:200]}")
            c.send(b"".join(encode(b"GET", key_name(i)) for i in idx))
            bad = 0
            for i in idx:
                r = c.read_reply()
                if r != seed_value(i) and (self.bench_payload is None or r != self.bench_payload):
                    bad += 1
        after = info(p.port, "proxy")
        hits = int(after["cache_hits"]) - int(before["cache_hits"])
        misses = int(after["cache_misses"]) - int(before["cache_misses"])
        if bad:
            self.warn(f"RESP3 spot check of {p.name}: {bad} of {len(idx)} GET replies were not the key's value")
        if hits < 0.99 * len(idx):
            self.warn(f"RESP3 spot check of {p.name}: {hits} hits and {misses} misses for {len(idx)} GETs "
                      f"of warmed keys")
        return {"gets": len(idx), "wrong_replies": bad, "hits": hits, "misses": misses}

    def reply_check(self, p: Proc, sc: Scenario, count: int = 200) -> Dict:
        """Before each respcache run of a command of redis-benchmark's own (HGETALL h:__rand_int__, MGET
        ...): `count` such requests, key numbers drawn as redis-benchmark draws them, sent to respcache
        and to Redis; every reply must be Redis's (redis-benchmark never looks at them)."""
        words, r = sc.test.split(), int(sc.args[sc.args.index("-r") + 1])
        rng = random.Random(count)
        reqs = [[w.replace("__rand_int__", "%012d" % rng.randrange(r)) for w in words] for _ in range(count)]
        wrong = []
        with Conn(p.port) as c, Conn(self.instance("redis").port) as d:
            data = b"".join(encode(*q) for q in reqs)
            c.send(data)
            d.send(data)
            for q in reqs:
                got, want = c.read_reply(), d.read_reply()
                if got != want:
                    wrong.append(f"{' '.join(q)[:120]}: respcache answered {str(got)[:200]}, Redis {str(want)[:200]}")
        if wrong:
            self.warn(f"reply check of {p.name}: {len(wrong)} of {count} replies differ from Redis's, "
                      f"first: {wrong[0]}")
        return {"requests": count, "wrong_replies": len(wrong), "first_wrong": wrong[:3]}

    def twemproxy_resp3_probe(self) -> Dict:
        """Once per run: does twemproxy speak RESP3? (nutcracker 0.5 does not know HELLO and closes the
        connection: redis-benchmark -3 fails.) If it ever does, the RESP3 rows should include it."""
        if self.twem_resp3 is None:
            args = ["-3", "-t", "get", "-c", "1", "-n", "100", *COMMON]
            p = subprocess.run(rb_argv(self.instance("twemproxy").port, args), capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
            err = " ".join((p.stderr.strip() or p.stdout.strip()).splitlines()[-2:])
            self.twem_resp3 = {"command": rb_template(args), "exit_status": p.returncode, "output": err[-300:],
                               "speaks_resp3": p.returncode == 0}
            if p.returncode == 0:
                self.warn("twemproxy answered redis-benchmark -3: it may speak RESP3 now; the RESP3 rows "
                          "leave it out")
            else:
                self.say(f"  twemproxy and RESP3: redis-benchmark -3 exited {p.returncode} ({err[-120:]}): "
                         f"left out of the RESP3 rows")
        return self.twem_resp3

    def sanity(self) -> None:
        """Spot check: respcache and twemproxy return what Redis holds, hit and miss."""
        rp = self.instance("redis").port
        for inst in ("main", "twemproxy"):
            port = self.instance(inst).port
            wrong = 0
            with Conn(port) as c, Conn(rp) as d:
                for i in range(0, KEYS, 997):
                    for _ in range(2):  # the first GET may be a miss, the second a hit
                        if c.call("GET", key_name(i)) != d.call("GET", key_name(i)):
                            wrong += 1
            if wrong:
                self.warn(f"sanity: {inst} returned {wrong} values different from Redis")
        self.say("sanity check passed: respcache and twemproxy return Redis's values" if not self.warnings
                 else "sanity check found differences (see warnings)")

    # ----- counters around each run
    def redis_set_calls(self) -> int:
        v = info(self.instance("redis").port, "commandstats").get("cmdstat_set", "calls=0")
        return int(v.split(",")[0].split("=")[1])

    def snapshot(self, sc: Scenario, target: Target, port: int) -> Dict[str, int]:
        r = {}
        cs = info(self.instance("redis").port, "commandstats")
        for cmd in dict.fromkeys(("get", "set", sc.command)):
            v = cs.get(f"cmdstat_{cmd}", "calls=0")
            r[f"redis_{cmd}_calls"] = int(v.split(",")[0].split("=")[1])
        st = info(self.instance("redis").port, "stats")
        r["redis_error_replies"] = int(st.get("total_error_replies", "0"))
        r["redis_keyspace_misses"] = int(st.get("keyspace_misses", "0"))
        if target.kind == "respcache":
            px = info(port, "proxy")
            for k in ("cache_hits", "cache_misses", "backend_errors", "protocol_errors", "forwarded_commands",
                      "output_buffer_disconnects", "rejected_connections", "cache_evictions"):
                r[k] = int(px.get(k, "0"))
        return r

    def check(self, sc: Scenario, target: Target, n_get: int, n_set: int, before: Dict, after: Dict,
              resp3_seen: Optional[Dict] = None) -> Dict:
        d = {k: after[k] - before.get(k, 0) for k in after}
        notes = []
        if sc.resp3:
            d["resp3_connections_seen"] = seen = (resp3_seen or {}).get("resp3_connections_seen", 0)
            want = (resp3_seen or {}).get("expected", 0)
            if seen < want:
                notes.append(f"CLIENT LIST showed {seen} RESP3 connections during the run, {want} expected "
                             f"(HELLO 3 refused? redis-benchmark ignores its reply)")
        if d["redis_error_replies"]:
            notes.append(f"Redis sent {d['redis_error_replies']} error replies")
        if d["redis_keyspace_misses"]:  # every scenario reads seeded keys only
            notes.append(f"Redis saw {d['redis_keyspace_misses']} GETs of missing keys")
        cmd = sc.command.upper()
        if target.kind == "respcache":
            answered = d["cache_hits"] + d["cache_misses"]
            if answered < n_get * sc.lookups:
                notes.append(f"respcache counted {answered} cache lookups, redis-benchmark sent {n_get} {cmd}s"
                             + (f" of {sc.lookups} keys" if sc.lookups > 1 else ""))
            for k in ("backend_errors", "protocol_errors", "output_buffer_disconnects", "rejected_connections"):
                if d[k]:
                    notes.append(f"respcache {k} +{d[k]}")
            d["hit_ratio"] = round(d["cache_hits"] / answered, 6) if answered else None
            if sc.expect_hits is True and answered and d["hit_ratio"] < 0.99:
                notes.append(f"hit ratio {d['hit_ratio']:.4f} in a hit scenario")
            if sc.expect_hits is False and d["cache_hits"]:
                notes.append(f"{d['cache_hits']} hits in a miss scenario")
            x = sc.hit_ratio_expected
            if x is not None and answered and abs(d["hit_ratio"] - x) > 0.01:
                notes.append(f"hit ratio {d['hit_ratio']:.4f}, {x:.2f} by construction")
            if sc.mode != "mix" and n_set and d["redis_set_calls"] < n_set:
                notes.append(f"Redis saw {d['redis_set_calls']} SETs, {n_set} were sent through respcache")
        else:
            if d[f"redis_{sc.command}_calls"] < n_get:
                notes.append(f"Redis saw {d[f'redis_{sc.command}_calls']} {cmd}s, {n_get} were sent")
            if sc.mode != "mix" and d["redis_set_calls"] < n_set:
                notes.append(f"Redis saw {d['redis_set_calls']} SETs, {n_set} were sent")
        d["problems"] = notes
        for n in notes:
            self.warn(f"{sc.name} / {target.label}: {n}")
        return d

    # ----- sizing
    def calibrate(self, sc: Scenario) -> int:
        """Requests for a run of about --duration seconds, from a short run against Redis direct (the
        same -n is then used for every target and round of the scenario). The cluster rows calibrate
        against the cluster direct (redis-benchmark --cluster)."""
        key = (" ".join(sc.args) + (" (TLS)" if sc.tls else "") + (" (cluster)" if sc.mode == "cluster" else "")
               + (" (respload)" if sc.mode == "light" else ""))
        if key in self.calibrated:
            return self.calibrated[key]
        probe_n = 5000 if rb_clients(sc.args) == 1 else 20000
        if "-P" in sc.args:
            probe_n *= 4
        if sc.mode == "light":  # respload against Redis direct
            r = rl_run(self.respload, self.instance("redis").port, ["-n", str(probe_n), *sc.args], timeout=120)
            n = int(r["rps"] * self.duration)
            n = max(2000, min(n, 5_000_000))
            n = (n // 1000) * 1000 or 1000
            self.calibrated[key] = n
            return n
        if sc.mode == "cluster":
            port, tls = self.instance("redis_cluster").port, ["--cluster"]
        else:
            port, tls = self.bench_port(sc, self.instance("redis"))
        r = rb_run(port, ["-n", str(probe_n), *tls, *sc.args], sc.test, timeout=120)
        n = int(r["rps"] * self.duration)
        n = max(2000, min(n, 5_000_000))
        n = (n // 1000) * 1000 or 1000
        self.calibrated[key] = n
        return n

    # ----- one scenario
    def run_scenario(self, sc: Scenario) -> Dict:
        self.say(f"\n== {sc.name}: {sc.title}")
        for ks in sc.seeds:
            self.seed(ks)
        for t in sc.targets:
            self.instance(t.instance)
        n = self.calibrate(sc)
        res = {"title": sc.title, "meaning": sc.meaning, "mode": sc.mode, "requests_per_run": n,
               "rounds": self.rounds, "targets": {}, "ratios": {}, "loadavg_before": os.getloadavg()}
        if sc.resp3:
            res["protocol"] = "RESP3"
            if "twemproxy" in self.instances:
                res["excluded_targets"] = {TWEM: {"reason": "does not speak RESP3",
                                                  "probe": self.twemproxy_resp3_probe()}}
        if sc.mode == "mix":
            # The SET process gets more requests than it can finish and is stopped when the GET process
            # ends; the SETs done meanwhile are counted by Redis (every target forwards them).
            n_get, n_set = n * 9 // 10, 2 * n
            res["commands"] = {"get": rb_template(["-n", str(n_get), *sc.args]),
                               "set": rb_template(["-n", str(n_set), *sc.set_args]) + "  # stopped when GET ends"}
        elif sc.mode == "together":
            # Each process a fixed number of requests in proportion to its clients: the same mixture for
            # every target, however fast it serves each part.
            split = split_by_clients(n, sc.parts)
            together = [(["-n", str(m), *a], sc.test) for m, a in zip(split, sc.parts)]
            warm_load = [(["-n", str(m // 3), *a], sc.test) for m, a in zip(split, sc.parts)]
            n_get, n_set = sum(split), 0
            res["commands"] = [rb_template(a) for a, _ in together]
        elif sc.mode == "light":
            n_get, n_set = n, 0
            res["commands"] = rl_template(["-n", str(n), *sc.args])
        else:
            n_get, n_set = (0, n) if sc.command == "set" else (n, 0)
            tls = ["--tls", "--cacert", "ca.crt", "--cert", "client.crt", "--key", "client.key"] if sc.tls else []
            res["commands"] = rb_template(["-n", str(n), *tls, *sc.args])
        timeout = max(120.0, 30 * self.duration)
        for t in sc.targets:
            res["targets"][t.label] = {"kind": t.kind, "instance": t.instance, "runs": []}
        for rnd in range(self.rounds):
            for t in sc.targets:
                p = self.instance(t.instance)
                run: Dict = {"round": rnd + 1}
                if sc.warm and t.kind == "respcache" and sc.mode == "together":
                    run["warm"] = {"by_load": rb_together(p.port, warm_load, timeout)["seconds"]}
                elif sc.warm and t.kind == "respcache":
                    run["warm"] = self.warm(p, sc.keys)
                    if sc.resp3:
                        run["warm"]["resp3_spot_check"] = self.resp3_spot_check(p)
                    if "__rand_int__" in sc.test:
                        run["warm"]["reply_check"] = self.reply_check(p, sc)
                before = self.snapshot(sc, t, p.port)
                redis_pid = self.instance("redis").pid
                cpu_before = (cpu_seconds(p.pid), cpu_seconds(redis_pid))
                if sc.mode == "mix":
                    get_cmd = ["-n", str(n_get), *sc.args]
                    set_cmd = ["-n", str(n_set), *sc.set_args]
                    t0 = time.monotonic()
                    sp = rb_start(p.port, set_cmd)
                    try:
                        gr = rb_finish(rb_start(p.port, get_cmd), "GET", timeout)
                        t_get = time.monotonic() - t0
                        sets_done = self.redis_set_calls() - before["redis_set_calls"]
                        set_ended_first = sp.poll() is not None
                    finally:
                        sp.kill()  # by pid: the SET process was only there to load the target meanwhile
                        sp.communicate()
                    if set_ended_first:
                        self.warn(f"mix / {t.label}: the SET process ended before the GET process")
                    total = n_get + sets_done
                    run.update({"rps": round(total / t_get, 2), "seconds": round(t_get, 3), "get": gr,
                                "sets_during_get": sets_done, "set_rps": round(sets_done / t_get, 2),
                                "set_share": round(sets_done / total, 4),
                                "argv": [rb_argv(p.port, get_cmd), rb_argv(p.port, set_cmd)]})
                elif sc.mode == "together":
                    tg = rb_together(p.port, together, timeout)
                    total = n_get
                    run.update({"rps": round(total / tg["seconds"], 2), "seconds": tg["seconds"],
                                "parts": tg["runs"], "argv": [rb_argv(p.port, a) for a, _ in together]})
                elif sc.mode == "light":
                    args = ["-n", str(n), *sc.args]
                    client0 = children_cpu()
                    rl = rl_run(self.respload, p.port, args, timeout)
                    run.update({"rps": rl["rps"], "seconds": rl["seconds"], "wall_seconds": rl["wall_seconds"],
                                "p50_ms": rl["p50_ms"], "p99_ms": rl["p99_ms"], "respload": rl,
                                "argv": rl_argv(self.respload, p.port, args)})
                    if rl["requests"] != n or rl["errors"]:
                        self.warn(f"{sc.name} / {t.label}: respload counted {rl['requests']} replies for {n} "
                                  f"requests, {rl['errors']} errors")
                    total = n
                else:
                    port, tls = self.bench_port(sc, p)
                    args = ["-n", str(n), *tls, *sc.args]
                    during = watch_resp3(p.port, rb_clients(sc.args)) if sc.resp3 else None
                    client0 = children_cpu()
                    run.update(rb_run(port, args, sc.test, timeout, during))
                    run["argv"] = rb_argv(port, args)
                    total = n
                if sc.mode in ("rps", "latency", "light"):
                    # The load generator's own CPU (the one child reaped meanwhile), as a share of a core
                    # over its process's wall time, beside the target's share: does the generator, rather
                    # than the server, bound the row?
                    wall = run.get("wall_seconds") or run["seconds"]
                    run["client_cpu_seconds"] = round(children_cpu() - client0, 3)
                    run["client_cpu_share"] = round(run["client_cpu_seconds"] / wall, 3) if wall else None
                    if None not in cpu_before and cpu_seconds(p.pid) is not None and wall:
                        run["server_cpu_share"] = round((cpu_seconds(p.pid) - cpu_before[0]) / wall, 3)
                # CPU time per request of the target's process and of Redis behind it (the same process
                # for Redis direct): what a request costs, which the throughput of 3 busy processes on
                # shared cores hides. Clock-tick resolution (10 ms) over runs of about 2 s of CPU.
                cpu_after = (cpu_seconds(p.pid), cpu_seconds(redis_pid))
                if None not in cpu_before and None not in cpu_after and total > 0:
                    run["cpu_us_per_request"] = round((cpu_after[0] - cpu_before[0]) * 1e6 / total, 2)
                    run["redis_cpu_us_per_request"] = round((cpu_after[1] - cpu_before[1]) * 1e6 / total, 2)
                if not p.alive():
                    self.warn(f"{p.name} died during {sc.name}: status {p.popen.returncode}: {p.log_tail()}")
                    run["problems"] = ["server died"]
                else:
                    run["counters"] = self.check(sc, t, n_get, n_set, before, self.snapshot(sc, t, p.port),
                                                 run.pop("during", None))
                res["targets"][t.label]["runs"].append(run)
                extra = ""
                if sc.mode == "latency":
                    extra = f"  p50 {run['p50_ms']:.3f} ms  p99 {run['p99_ms']:.3f} ms"
                if run.get("client_cpu_share") is not None:
                    extra += (f"  CPU (cores): load generator {run['client_cpu_share']:.2f}"
                              + (f", {t.label} {run['server_cpu_share']:.2f}" if "server_cpu_share" in run else ""))
                hr = run.get("counters", {}).get("hit_ratio")
                if hr is not None:
                    extra += f"  hit ratio {hr:.4f}"
                self.say(f"  round {rnd + 1}  {t.label:<24} {run['rps']:>12,.0f} rps{extra}")
        return self.summarize(sc, res)

    def summarize(self, sc: Scenario, res: Dict) -> Dict:
        """Medians, min and max over the rounds of each target, and the scenario's ratios."""
        for label, tr in res["targets"].items():
            rps = [r["rps"] for r in tr["runs"]]
            tr.update({"median_rps": median(rps), "min_rps": min(rps), "max_rps": max(rps)})
            cpus = [r["cpu_us_per_request"] for r in tr["runs"] if "cpu_us_per_request" in r]
            redis_cpus = [r["redis_cpu_us_per_request"] for r in tr["runs"] if "redis_cpu_us_per_request" in r]
            if cpus:
                tr["median_cpu_us_per_request"] = median(cpus)
                tr["median_redis_cpu_us_per_request"] = median(redis_cpus)
            for f in ("client_cpu_share", "server_cpu_share"):
                xs = [r[f] for r in tr["runs"] if r.get(f) is not None]
                if xs:
                    tr[f"median_{f}"] = median(xs)
            if sc.mode == "latency" or sc.name == "scaling" or sc.mode == "light":
                for f in ("p50_ms", "p99_ms"):
                    xs = [r[f] for r in tr["runs"]]
                    tr.update({f"median_{f}": median(xs), f"min_{f}": min(xs), f"max_{f}": max(xs)})
            if sc.mode == "mix":
                tr["median_set_share"] = median([r["set_share"] for r in tr["runs"]])
            if sc.mode == "together":
                tr["median_part_seconds"] = [median(xs) for xs in zip(*([q["seconds"] for q in r["parts"]]
                                                                        for r in tr["runs"]))]
            hrs = [r["counters"]["hit_ratio"] for r in tr["runs"]
                   if r.get("counters", {}).get("hit_ratio") is not None]
            if hrs:
                tr["hit_ratio_min"] = min(hrs)
                tr["hit_ratio_median"] = median(hrs)
        for a, b in sc.ratio_pairs:
            ta, tb = res["targets"][a], res["targets"][b]
            key = f"{a} / {b}"
            res["ratios"][key] = {"rps": round(ta["median_rps"] / tb["median_rps"], 3)}
            if sc.mode == "latency":
                res["ratios"][key]["p50"] = round(ta["median_p50_ms"] / tb["median_p50_ms"], 3)
                res["ratios"][key]["p99"] = round(ta["median_p99_ms"] / tb["median_p99_ms"], 3)
            self.say(f"  median {key}: " + ", ".join(f"{k} {v:.2f}x" for k, v in res["ratios"][key].items()))
        res["loadavg_after"] = os.getloadavg()
        return res

    # ----- the Redis Cluster rows
    def cluster_parts(self, sc: Scenario, n: int) -> List[tuple]:
        """The respcache side of a cluster row: one plain redis-benchmark per master, at once, with the
        connections redis-benchmark --cluster gives that master (connection i goes to master i modulo
        their number: 17, 17, 16 of 50), that master's tag written into {tag}, and requests in proportion
        to connections. Returns (args, test) for rb_together."""
        total, k = rb_clients(sc.args), len(self.cluster_tags)
        clients = [total // k + (1 if i < total % k else 0) for i in range(k)]
        i_c = sc.args.index("-c")
        parts = []
        for tag, c in zip(self.cluster_tags, clients):
            a = [w.replace("{tag}", tag) for w in sc.args]
            a[i_c + 1] = str(c)
            parts.append(a)
        return [(["-n", str(m), *a], sc.test.replace("{tag}", tag))
                for m, a, tag in zip(split_by_clients(n, parts), parts, self.cluster_tags)]

    def cluster_snapshot(self, sc: Scenario, target: Target, port: int) -> Dict:
        """The masters' counters, summed (and the command's calls per master), and respcache's own."""
        r: Dict = {"per_master_calls": []}
        for p in self.cluster_nodes:
            cs, st = info(p.port, "commandstats"), info(p.port, "stats")
            for cmd in dict.fromkeys(("get", "set", sc.command)):
                v = int(cs.get(f"cmdstat_{cmd}", "calls=0").split(",")[0].split("=")[1])
                r[f"redis_{cmd}_calls"] = r.get(f"redis_{cmd}_calls", 0) + v
                if cmd == sc.command:
                    r["per_master_calls"].append(v)
            for k_, f in (("redis_error_replies", "total_error_replies"), ("redis_keyspace_misses", "keyspace_misses"),
                          ("redis_keyspace_hits", "keyspace_hits")):
                r[k_] = r.get(k_, 0) + int(st.get(f, "0"))
        if target.kind == "respcache":
            px = info(port, "proxy")
            for k_ in ("cache_hits", "cache_misses", "backend_errors", "protocol_errors", "forwarded_commands",
                       "output_buffer_disconnects", "rejected_connections"):
                r[k_] = int(px.get(k_, "0"))
        return r

    def cluster_check(self, sc: Scenario, target: Target, n: int, before: Dict, after: Dict) -> Dict:
        d = {k_: after[k_] - before[k_] for k_ in after if k_ != "per_master_calls"}
        d["per_master_calls"] = [a - b for a, b in zip(after["per_master_calls"], before["per_master_calls"])]
        notes = []
        cmd = sc.command.upper()
        if d["redis_error_replies"]:
            notes.append(f"the masters sent {d['redis_error_replies']} error replies (MOVED and ASK count)")
        hit_row = sc.expect_hits is True and target.kind == "respcache"
        if hit_row and d[f"redis_{sc.command}_calls"]:
            notes.append(f"the masters ran {d[f'redis_{sc.command}_calls']} {cmd}s during a run of hits "
                         f"(respcache counted {d['cache_misses']} misses)")
        if not hit_row and d[f"redis_{sc.command}_calls"] < n:
            notes.append(f"the masters ran {d[f'redis_{sc.command}_calls']} {cmd}s, {n} were sent")
        if sc.command == "get" and sc.reads_missing and d["redis_keyspace_misses"] < n:
            notes.append(f"the masters counted {d['redis_keyspace_misses']} misses for {n} GETs of missing keys")
        if sc.command == "get" and not sc.reads_missing and d["redis_keyspace_misses"]:
            notes.append(f"the masters saw {d['redis_keyspace_misses']} GETs of missing keys")
        calls = d["per_master_calls"]
        if not hit_row and sum(calls) and min(calls) < 0.2 * sum(calls):
            notes.append(f"{cmd}s per master {calls}: one got less than a fifth")
        if target.kind == "respcache":
            answered = d["cache_hits"] + d["cache_misses"]
            if sc.command == "get" and answered < n:
                notes.append(f"respcache counted {answered} cache lookups, redis-benchmark sent {n} GETs")
            if sc.expect_hits is True and d["cache_hits"] < n:
                notes.append(f"respcache served {d['cache_hits']} hits for {n} GETs of warmed keys "
                             f"({d['cache_misses']} misses)")
            if sc.expect_hits is False and d["cache_hits"]:
                notes.append(f"respcache served {d['cache_hits']} hits in a routing row (its instance runs with "
                             f"--capacity 0): the row no longer measures routing alone")
            for k_ in ("backend_errors", "protocol_errors", "output_buffer_disconnects", "rejected_connections"):
                if d[k_]:
                    notes.append(f"respcache {k_} +{d[k_]}")
            d["hit_ratio"] = round(d["cache_hits"] / answered, 6) if answered else None
        d["problems"] = notes
        for m in notes:
            self.warn(f"{sc.name} / {target.label}: {m}")
        return d

    def run_cluster_scenario(self, sc: Scenario) -> Dict:
        """A cluster row: respcache in front of the cluster (plain redis-benchmark, one process per
        master) against redis-benchmark --cluster straight to the masters, alternated for --rounds."""
        self.say(f"\n== {sc.name}: {sc.title}")
        nodes = self.redis_cluster()
        for t in sc.targets:
            self.instance(t.instance)
        n = self.calibrate(sc)
        parts = self.cluster_parts(sc, n)
        direct = ["-n", str(n), "--cluster", *sc.args]
        res = {"title": sc.title, "meaning": sc.meaning, "mode": sc.mode, "requests_per_run": n,
               "rounds": self.rounds, "targets": {}, "ratios": {}, "loadavg_before": os.getloadavg(),
               "cluster_tags": list(self.cluster_tags),
               "respcache_side_connections": [rb_clients(a) for a, _ in parts],
               "commands": {RESPCACHE: [rb_template(a) for a, _ in parts], CLUSTER: rb_template(direct)}}
        timeout = max(120.0, 30 * self.duration)
        for t in sc.targets:
            res["targets"][t.label] = {"kind": t.kind, "instance": t.instance, "runs": []}
        for rnd in range(self.rounds):
            for t in sc.targets:
                p = self.instance(t.instance)
                run: Dict = {"round": rnd + 1}
                if sc.warm and t.kind == "respcache":
                    run["warm"] = self.cluster_warm(p)
                before = self.cluster_snapshot(sc, t, p.port)
                pids = [q.pid for q in nodes]
                def cluster_cpu() -> Optional[float]:
                    xs = [cpu_seconds(pid) for pid in pids]
                    return None if None in xs else sum(xs)
                cpu_before = (cpu_seconds(p.pid) if t.kind == "respcache" else cluster_cpu(), cluster_cpu())
                if t.kind == "respcache":
                    tg = rb_together(p.port, parts, timeout)
                    run.update({"seconds": tg["seconds"], "parts": tg["runs"],
                                "argv": [rb_argv(p.port, a) for a, _ in parts]})
                else:
                    r = rb_run(p.port, direct, sc.test, timeout)
                    run.update(r)
                    run["redis_benchmark_rps"] = r["rps"]  # its own figure (from its first request on)
                    run["argv"] = rb_argv(p.port, direct)
                run["rps"] = round(n / run["seconds"], 2)
                # CPU per request: respcache's process (+ the masters behind it); for the direct row the
                # masters' CPU is both figures.
                cpu_after = (cpu_seconds(p.pid) if t.kind == "respcache" else cluster_cpu(), cluster_cpu())
                if None not in cpu_before and None not in cpu_after:
                    run["cpu_us_per_request"] = round((cpu_after[0] - cpu_before[0]) * 1e6 / n, 2)
                    run["redis_cpu_us_per_request"] = round((cpu_after[1] - cpu_before[1]) * 1e6 / n, 2)
                dead = [q for q in [p, *nodes] if not q.alive()]
                if dead:
                    self.warn(f"{dead[0].name} died during {sc.name}: status {dead[0].popen.returncode}: "
                              f"{dead[0].log_tail()}")
                    run["problems"] = ["server died"]
                else:
                    run["counters"] = self.cluster_check(sc, t, n, before, self.cluster_snapshot(sc, t, p.port))
                res["targets"][t.label]["runs"].append(run)
                hr = run.get("counters", {}).get("hit_ratio")
                self.say(f"  round {rnd + 1}  {t.label:<24} {run['rps']:>12,.0f} rps"
                         f"  {sc.command.upper()}s per master {run.get('counters', {}).get('per_master_calls')}"
                         + (f"  hit ratio {hr:.4f}" if hr is not None and sc.warm else ""))
        return self.summarize(sc, res)

    # ----- staleness window (issue 4.7)
    def staleness(self) -> Dict:
        self.say("\n== staleness: direct write to Redis -> first fresh read through respcache (tracking)")
        trials = 200 if self.opts.quick else 1000
        proxy, rp = self.instance("main"), self.instance("redis").port
        key = b"bench:stale"
        windows, stale_reads, poll_rtts, problems, stale_spans = [], [], [], [], []
        before = info(proxy.port, "proxy")
        with Conn(proxy.port) as pc, Conn(rp) as dc:
            prev = b"v0"
            dc.call("SET", key, prev)
            wait_until(lambda: pc.call("GET", key) == prev, 5, "the first value through the proxy")
            for i in range(1, trials + 1):
                if pc.call("GET", key) != prev:  # cached now: this read is a hit
                    problems.append(f"trial {i}: the proxy did not serve the previous value before the write")
                new = b"v%d" % i
                dc.send(encode("SET", key, new))
                r = dc.read_reply()
                t_ack = time.perf_counter_ns()
                if r != "OK":
                    raise RuntimeError(f"SET answered {r!r}")
                stale = 0
                last_stale_us = 0.0
                while True:
                    t_send = time.perf_counter_ns()
                    v = pc.call("GET", key)
                    t_recv = time.perf_counter_ns()
                    poll_rtts.append(t_recv - t_send)
                    if v == new:
                        break
                    if v != prev:
                        problems.append(f"trial {i}: read {v!r}, neither {prev!r} nor {new!r}")
                    stale += 1
                    last_stale_us = (t_recv - t_ack) / 1000.0
                    if t_recv - t_ack > 2e9:
                        problems.append(f"trial {i}: still stale 2 s after the write")
                        break
                windows.append((t_recv - t_ack) / 1000.0)
                stale_reads.append(stale)
                if stale:
                    stale_spans.append(last_stale_us)
                prev = new
        after = info(proxy.port, "proxy")
        w = sorted(windows)
        rtt = sorted(x / 1000.0 for x in poll_rtts)
        res = {
            "trials": trials,
            "window_us": {"median": median(w), "p99": percentile(w, 99), "max": w[-1], "min": w[0]},
            "poll_rtt_us": {"median": median(rtt), "p99": percentile(rtt, 99)},
            "trials_with_stale_reads": sum(1 for s in stale_reads if s),
            "stale_reads_total": sum(stale_reads),
            "max_stale_reads_in_a_trial": max(stale_reads),
            # For trials that read the old value after the +OK: from the +OK to the arrival of the last
            # stale reply (how long the old value was observably served after the write completed).
            "stale_after_ack_us": {"count": len(stale_spans), "median": median(stale_spans),
                                   "max": max(stale_spans) if stale_spans else 0.0},
            "proxy_hits": int(after["cache_hits"]) - int(before["cache_hits"]),
            "proxy_misses": int(after["cache_misses"]) - int(before["cache_misses"]),
            "invalidation_messages": int(after.get("invalidation_messages", 0)) - int(before.get("invalidation_messages", 0)),
            "problems": problems[:20],
            "meaning": ("Per trial: SET a new value directly on Redis (not through the proxy) while the proxy "
                        "caches the old one; from the moment the SET's +OK arrives, GET through the proxy "
                        "back to back until the new value comes back. Window = time from the +OK to the "
                        "arrival of the first fresh reply, so it includes one proxy round trip (the poll "
                        "granularity, poll_rtt_us). A window near one round trip means the first read "
                        "after the write was already fresh; stale reads count the reads after the +OK "
                        "that still returned the old value (each is a read sent after the write had "
                        "completed: DESIGN.md rule 5 and issue 4.6 say there should be none)."),
        }
        for p in problems[:5]:
            self.warn(f"staleness: {p}")
        ww = res["window_us"]
        self.say(f"  window median {ww['median']:.0f} us, p99 {ww['p99']:.0f} us, max {ww['max']:.0f} us; "
                 f"poll round trip median {res['poll_rtt_us']['median']:.0f} us; "
                 f"{res['trials_with_stale_reads']} of {trials} trials saw a stale read after the +OK"
                 + (f" (the old value served up to {res['stale_after_ack_us']['max']:.0f} us after it)"
                    if stale_spans else ""))
        return res

    # ----- memory per cached entry
    def memory(self) -> Dict:
        n = 200_000 if self.opts.quick else 1_000_000
        self.say(f"\n== memory: {n:,} entries of {KEY_LEN}-byte keys and {VALUE_SIZE}-byte values")
        payload = KEY_LEN + VALUE_SIZE
        value = b"m" * VALUE_SIZE
        mr = self.procs.start_redis("redis-mem")
        try:
            with Conn(mr.port) as c:
                c.call("FLUSHALL")
            used0 = int(info(mr.port, "memory")["used_memory"])
            rss0 = mr.rss_kb()
            t0 = time.monotonic()
            bad = pipelined(mr.port, n, lambda i: encode(b"SET", key_name(i), value), lambda i, r: r == "OK",
                            batch=2000)
            if bad:
                raise RuntimeError(f"memory seeding: {bad} SETs failed")
            self.say(f"  seeded Redis in {time.monotonic() - t0:.1f}s")
            used1 = int(info(mr.port, "memory")["used_memory"])
            rss1 = mr.rss_kb()
            rc = self.procs.start_respcache("respcache-mem", mr.port,
                                            ["--capacity", str(n + n // 10), "--ttl", CACHE_TTL])
            try:
                with Conn(rc.port) as c:
                    c.call("PING")
                time.sleep(0.2)
                prss0 = rc.rss_kb()
                t0 = time.monotonic()
                bad = pipelined(rc.port, n, lambda i: encode(b"GET", key_name(i)), lambda i, r: r == value,
                                batch=2000)
                if bad:
                    self.warn(f"memory: {bad} GETs through respcache did not return the value")
                self.say(f"  read all through respcache in {time.monotonic() - t0:.1f}s")
                time.sleep(0.2)
                prss1 = rc.rss_kb()
                px = info(rc.port, "proxy")
            finally:
                self.procs.stop(rc)
        finally:
            self.procs.stop(mr)
        cached = int(px["cached_keys"])
        if cached != n:
            self.warn(f"memory: respcache holds {cached} entries, expected {n}")
        res = {
            "entries": n, "key_bytes": KEY_LEN, "value_bytes": VALUE_SIZE, "payload_bytes_per_entry": payload,
            "respcache": {
                "rss_kb_before": prss0, "rss_kb_after": prss1, "cached_keys": cached,
                "rss_bytes_per_entry": round((prss1 - prss0) * 1024 / cached, 1) if cached else None,
                "overhead_bytes_per_entry": round((prss1 - prss0) * 1024 / cached - payload, 1) if cached else None,
                "accounted_bytes_per_entry": round(int(px["cached_bytes"]) / cached, 1) if cached else None,
            },
            "redis": {
                "used_memory_before": used0, "used_memory_after": used1,
                "used_memory_bytes_per_key": round((used1 - used0) / n, 1),
                "overhead_bytes_per_key": round((used1 - used0) / n - payload, 1),
                "rss_kb_before": rss0, "rss_kb_after": rss1,
                "rss_overhead_bytes_per_key": round((rss1 - rss0) * 1024 / n - payload, 1),
            },
            "meaning": ("respcache: (VmRSS after caching N entries - VmRSS of the fresh, connected process) / N, "
                        "minus the 116-byte payload (16-byte key + 100-byte value). respcache stores the "
                        "encoded reply ($100\\r\\n...\\r\\n, 108 bytes), so 8 of the overhead bytes are "
                        "framing. accounted_bytes_per_entry is respcache's own --max-memory charge. "
                        "Redis: (used_memory after SETting the same N keys in a fresh instance - before) / N "
                        "minus 116, as Redis reports it (allocator bytes, dict tables included); its RSS "
                        "figure is given too."),
        }
        r, d = res["respcache"], res["redis"]
        self.say(f"  respcache overhead {r['overhead_bytes_per_entry']} B/entry (RSS), "
                 f"own accounting {r['accounted_bytes_per_entry']} B/entry; Redis overhead "
                 f"{d['overhead_bytes_per_key']} B/key (used_memory), {d['rss_overhead_bytes_per_key']} B/key (RSS)")
        return res

    # ----- the whole run
    def run(self, only: Optional[List[str]]) -> int:
        started = time.monotonic()
        self.results = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "mode": "quick" if self.opts.quick else "full",
            "only": only,
            "machine": machine(),
            "versions": versions(self.opts.bin),
            "settings": {"rounds": self.rounds, "target_seconds_per_run": self.duration, "keys": KEYS,
                         "value_bytes": VALUE_SIZE, "respcache_bin": self.opts.bin,
                         "respcache_args": {k: v for k, v in self.RESPCACHE_ARGS.items()},
                         "respload_bin": self.respload,
                         "order": "targets alternated in the listed order within each round"},
            "loadavg_start": os.getloadavg(),
            "scenarios": {}, "errors": [],
        }
        print(f"respcache benchmark ({self.results['mode']}, {self.rounds} round(s), ~{self.duration:g}s per run), "
              f"{self.results['machine']['nproc']} cores, load average {os.getloadavg()[0]:.2f}; "
              f"processes and logs in {self.workdir}", flush=True)
        wanted = [s for s in scenarios() if not only or s.name in only]
        extras = [e for e in EXTRA if not only or e in only]
        if any(s.mode != "cluster" for s in wanted) or "staleness" in extras:
            self.instance("redis")
            self.seed()
            self.instance("main")
            self.instance("twemproxy")
            self.sanity()
        for sc in wanted:
            try:
                run = self.run_cluster_scenario if sc.mode == "cluster" else self.run_scenario
                self.results["scenarios"][sc.name] = run(sc)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:
                self.results["errors"].append(f"{sc.name}: {e}")
                self.warn(f"scenario {sc.name} failed: {e}")
            for inst in [*(i for i in self.RESPCACHE_ARGS if i != "main"), "redis_cluster"]:  # respcache first
                if not any(t.instance == inst for s in wanted[wanted.index(sc) + 1:] for t in s.targets):
                    self.retire(inst)
        self.results["resp3_vs_resp2"] = resp3_vs_resp2(self.results["scenarios"])
        for key, c in self.results["resp3_vs_resp2"].items():
            self.say(f"RESP3 / RESP2 ({key}): respcache CPU per request {c['respcache']:.2f}x"
                     + (f", Redis direct {c['redis_direct']:.2f}x" if c.get("redis_direct") else ""))
        for name, fn in (("staleness", self.staleness), ("memory", self.memory)):
            if name not in extras:
                continue
            try:
                self.results[name] = fn()
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:
                self.results["errors"].append(f"{name}: {e}")
                self.warn(f"{name} failed: {e}")
        self.procs.stop_all()
        self.results["settings"]["seeded_keys"] = {k.decode() + "...": v for k, v in self.seeded.items()}
        if self.cluster_record is not None:
            self.results["settings"]["cluster"] = self.cluster_record
        self.results["anomalies"] = self.procs.anomalies
        self.results["warnings"] = self.warnings
        self.results["loadavg_end"] = os.getloadavg()
        self.results["total_seconds"] = round(time.monotonic() - started, 1)
        for a in self.procs.anomalies:
            print(f"ANOMALY: {a}", file=sys.stderr)
        return 1 if self.results["errors"] else 0


def resp3_vs_resp2(sc: Dict) -> Dict:
    """CPU µs per request of each RESP3 row over its RESP2 twin, both measured in this run (the
    requirement: a RESP3 hit costs what a RESP2 hit costs). Redis direct's ratio is the reference."""
    out = {}
    for s3 in scenarios():
        if not s3.resp3 or s3.name not in sc or s3.resp2_twin not in sc:
            continue
        a, b = sc[s3.name]["targets"], sc[s3.resp2_twin]["targets"]
        row = {"resp3_scenario": s3.name, "resp2_scenario": s3.resp2_twin}
        for label, key in ((RESPCACHE, "respcache"), (REDIS, "redis_direct")):
            x = a.get(label, {}).get("median_cpu_us_per_request")
            y = b.get(label, {}).get("median_cpu_us_per_request")
            row[f"{key}_resp3_us"], row[f"{key}_resp2_us"] = x, y
            row[key] = round(x / y, 3) if x is not None and y else None
        if row["respcache"] is not None:
            out[f"{s3.name} / {s3.resp2_twin}"] = row
    return out


# ---------------------------------------------------------------------------------------------------
# Environment facts.

def machine() -> Dict:
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_model": model, "kernel": platform.release(),
            "mem_total_kb": mem_kb, "python": platform.python_version()}


def versions(binary: str) -> Dict[str, str]:
    def first_line(argv: List[str]) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (p.stdout.strip() or p.stderr.strip()).splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError) as e:
            return f"unavailable ({e})"
    return {"respcache": first_line([binary, "--version"]),
            "redis-server": first_line(["redis-server", "--version"]),
            "redis-benchmark": first_line(["redis-benchmark", "--version"]),
            "nutcracker": first_line(["nutcracker", "--version"])}


# ---------------------------------------------------------------------------------------------------
# Report.

def k(x: float) -> str:
    if x != x:
        return "n/a"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def markdown(res: Dict) -> str:
    m, v = res["machine"], res["versions"]
    L = []
    L.append(f"### Benchmark: respcache vs Redis direct vs twemproxy ({res['date']})")
    L.append("")
    mode = res["mode"] + (f", only {','.join(res['only'])}" if res.get("only") else "")
    L.append(f"`make bench` (`bench/run.py`, {mode} run: {res['settings']['rounds']} round(s), about "
             f"{res['settings']['target_seconds_per_run']:g} s per run, targets alternated within each round), "
             f"{m['nproc']} cores ({m['cpu_model']}), load average {res['loadavg_start'][0]:.2f} at start and "
             f"{res['loadavg_end'][0]:.2f} at the end. {v['respcache']}, {v['redis-server'].split(' sha=')[0]}, "
             f"{v['nutcracker'].replace('This is ', '')}. The load generator and all servers share these cores.")
    L.append("")
    sc = res["scenarios"]
    three_rows = [n for n in ("get_hits", "get_hits_p16", "get_hits_resp3", "get_hits_p16_resp3",
                              "get_miss_nocache", "get_miss_cold", "get_miss_cold_ttl",
                              "get_miss_cold_bcast", "set", "set_bcast", "mix", "clients_1000",
                              "hgetall_hits", "hgetall_hits_light", "hgetall_hits_light_p16", "mget10_hits", "mget10_half", "zipf", "zipf_tinylfu") if n in sc]
    if three_rows or "latency" in sc:
        L.append("Requests per second, median over rounds [min–max]; ratios of medians (> 1: respcache faster).")
        L.append("")
        L.append(f"| scenario | {RESPCACHE} | {REDIS} | {TWEM} | respcache / Redis | respcache / twemproxy "
                 f"| respcache hit ratio |")
        L.append("|---|---|---|---|---|---|---|")
        for n in three_rows:
            s = sc[n]
            cells = []
            for t in (RESPCACHE, REDIS, TWEM):
                tr = s["targets"].get(t)
                cells.append(NO_RESP3 if tr is None else f"{k(tr['median_rps'])} [{k(tr['min_rps'])}–{k(tr['max_rps'])}]")
            ra = s["ratios"]
            hr = s["targets"][RESPCACHE].get("hit_ratio_median")
            tw_ratio = ra.get(f"{RESPCACHE} / {TWEM}")
            L.append(f"| {s['title']} | {' | '.join(cells)} | {ra[f'{RESPCACHE} / {REDIS}']['rps']:.2f}x | "
                     f"{'n/a' if tw_ratio is None else format(tw_ratio['rps'], '.2f') + 'x'} | "
                     f"{'n/a' if hr is None else f'{hr * 100:.1f}%'} |")
        if "latency" in sc:
            s = sc["latency"]
            cells = []
            for t in (RESPCACHE, REDIS, TWEM):
                tr = s["targets"][t]
                cells.append(f"{tr['median_p50_ms']:.3f} / {tr['median_p99_ms']:.3f} ms")
            ra = s["ratios"]
            hr = s["targets"][RESPCACHE].get("hit_ratio_median")
            L.append(f"| single client GET hit latency p50 / p99 (lower is better) | {' | '.join(cells)} | "
                     f"p99 {ra[f'{RESPCACHE} / {REDIS}']['p99']:.2f}x | p99 {ra[f'{RESPCACHE} / {TWEM}']['p99']:.2f}x | "
                     f"{'n/a' if hr is None else f'{hr * 100:.1f}%'} |")
        if "mix" in sc:
            s = sc["mix"]
            share = ", ".join(f"{t} {s['targets'][t]['median_set_share'] * 100:.1f}%" for t in (RESPCACHE, REDIS, TWEM))
            L.append("")
            L.append(f"Mix: two redis-benchmark processes at once on the same target (45 GET clients, 5 SET "
                     f"clients); all requests done while the GET process ran, over its wall time. Share of "
                     f"SETs: {share}.")
        if "zipf" in sc:
            s = sc["zipf"]
            ends = "; ".join(f"{t} " + " / ".join(f"{x:.2f}" for x in s["targets"][t]["median_part_seconds"])
                             for t in (RESPCACHE, REDIS, TWEM))
            L.append("")
            L.append(f"Zipf-like mix: {len(ZIPF_TIERS)} GET processes at once, "
                     + ", ".join(f"{c} clients on `-r {r}`" for r, c in ZIPF_TIERS)
                     + f", each a fixed share of the requests (by clients); figure: all requests / the time "
                     f"until the last process ended. respcache `--capacity {ZIPF_CAPACITY}` (10% of the keys); "
                     f"a cache always holding the {ZIPF_CAPACITY:,} most requested keys would hit "
                     f"{zipf_top_share(ZIPF_CAPACITY) * 100:.1f}%. Seconds until each process ended (median, "
                     f"in that order): {ends}.")
        resp3_rows = [n for n in three_rows if sc[n].get("protocol") == "RESP3"]
        if resp3_rows:
            probe = next((sc[n]["excluded_targets"][TWEM]["probe"] for n in resp3_rows
                          if TWEM in sc[n].get("excluded_targets", {})), None)
            L.append("")
            L.append("RESP3 rows: `redis-benchmark -3` (HELLO 3 on every connection; CLIENT LIST checked to show "
                     "them all in RESP3 during every run), same keys and warming as the RESP2 rows (the warming "
                     "reads over RESP2; a RESP3 spot check of every 100th key before each run must be all hits). "
                     "twemproxy does not speak RESP3"
                     + (f": `{probe['command']}` exited {probe['exit_status']} ({probe['output']})."
                        if probe and not probe["speaks_resp3"] else "."))
        gen_rows = [n for n in ("hgetall_hits", "hgetall_hits_light", "hgetall_hits_light_p16") if n in sc]
        if any(sc[n]["mode"] == "light" for n in gen_rows):
            parts = []
            for n in gen_rows:
                s_ = sc[n]
                cells = ", ".join(f"{t} {s_['targets'][t].get('median_client_cpu_share', float('nan')):.2f} "
                                  f"(server {s_['targets'][t].get('median_server_cpu_share', float('nan')):.2f})"
                                  for t in (RESPCACHE, REDIS, TWEM) if t in s_["targets"])
                gen = "respload" if s_["mode"] == "light" else "redis-benchmark"
                parts.append(f"{s_['title']} ({gen}): {cells}")
            L.append("")
            L.append("Load generator CPU, cores (1.00: a whole core), median over rounds, against each target, with "
                     "the target's own process in brackets (user + system over the generator's wall time; "
                     "`getrusage(RUSAGE_CHILDREN)` and `/proc/<pid>/stat`): " + "; ".join(parts) + ".")
        L.append("")
        cpu_rows = [n for n in three_rows + (["latency"] if "latency" in sc else [])
                    if all("median_cpu_us_per_request" in sc[n]["targets"][t] for t in (RESPCACHE, REDIS))
                    and ("median_cpu_us_per_request" in sc[n]["targets"].get(TWEM, {})
                         or sc[n].get("protocol") == "RESP3")]
        if cpu_rows:
            L.append("CPU time per request, µs, median over rounds (lower is better): the proxy's own process "
                     "(+ Redis behind it), from /proc/<pid>/stat around each run. Throughput on 2 shared cores "
                     "is mostly who gets scheduled; this is what each request costs.")
            L.append("")
            L.append(f"| scenario | {RESPCACHE} (+ Redis) | {TWEM} (+ Redis) | {REDIS} | respcache / twemproxy |")
            L.append("|---|---|---|---|---|")
            for n in cpu_rows:
                s = sc[n]
                rc_, rd = (s["targets"][t] for t in (RESPCACHE, REDIS))
                tw = s["targets"].get(TWEM)
                if tw is None:
                    tw_cell, ratio_cell = NO_RESP3, "n/a"
                else:
                    tw_cell = (f"{tw['median_cpu_us_per_request']:.1f} "
                               f"(+ {tw['median_redis_cpu_us_per_request']:.1f})")
                    ratio_cell = (f"{rc_['median_cpu_us_per_request'] / tw['median_cpu_us_per_request']:.2f}x"
                                  if tw["median_cpu_us_per_request"] else "n/a")
                L.append(f"| {s['title']} | {rc_['median_cpu_us_per_request']:.1f} "
                         f"(+ {rc_['median_redis_cpu_us_per_request']:.1f}) | {tw_cell} | "
                         f"{rd['median_cpu_us_per_request']:.1f} | {ratio_cell} |")
            L.append("")
            cmp_ = res.get("resp3_vs_resp2") or {}
            if cmp_:
                parts = []
                for c in cmp_.values():
                    t3, t2 = sc[c["resp3_scenario"]]["title"], sc[c["resp2_scenario"]]["title"]
                    part = (f"{t3} / {t2}: respcache {c['respcache_resp3_us']:.1f} / {c['respcache_resp2_us']:.1f} µs "
                            f"= **{c['respcache']:.2f}x**")
                    if c.get("redis_direct") is not None:
                        part += (f" (Redis direct {c['redis_direct_resp3_us']:.1f} / {c['redis_direct_resp2_us']:.1f} µs "
                                 f"= {c['redis_direct']:.2f}x)")
                    parts.append(part)
                L.append("RESP3 hit cost against RESP2 hit cost, CPU µs per request of respcache's process, "
                         "medians from this run (1.00x: a RESP3 hit costs what a RESP2 hit costs; Redis direct "
                         "for reference): " + "; ".join(parts) + ".")
                L.append("")
    cl_rows = [n for n in CLUSTER_ROWS if n in sc]
    if cl_rows:
        cr = res["settings"].get("cluster", {})
        tags = cr.get("tags", {}).get("tags_by_port", {})
        conns = sc[cl_rows[0]].get("respcache_side_connections", [])
        ra = res["settings"].get("respcache_args", {})
        how = []
        if any(n != "cluster_get_hits" for n in cl_rows):
            how.append(f"`{' '.join(ra.get('cluster', []))}` in the routing rows (nothing cached: routing alone)")
        if "cluster_get_hits" in sc:
            hr = sc["cluster_get_hits"]["targets"][RESPCACHE].get("hit_ratio_median")
            how.append(f"`{' '.join(ra.get('cluster_cache', []))}` in the hit row (cached), warmed before each of "
                       f"its runs by reading every key of the row once through it (hit ratio, median over rounds: "
                       f"{'n/a' if hr is None else format(hr * 100, '.2f') + '%'})")
        L.append(f"Redis Cluster rows: {len(cr.get('ports', []))} masters, no replicas (redis-server "
                 f"--cluster-enabled yes on ports {', '.join(str(x) for x in cr.get('ports', []))}, joined with "
                 f"`redis-cli --cluster create`), {cr.get('seeded_keys', 0):,} keys seeded. respcache: `--backend "
                 f"redis+cluster://` with the masters as seeds (routes each command to its slot's master), "
                 f"{'; '.join(how)}; "
                 f"loaded by {len(tags)} plain redis-benchmark processes at "
                 f"once, one per master with its hash tag ({', '.join(f'`{t}`' for t in tags.values())}) and "
                 f"its share of the connections ({' + '.join(str(c) for c in conns)}: `redis-benchmark "
                 f"--cluster` gives connection i to master i modulo {len(conns)}), requests in proportion; Redis "
                 f"Cluster direct: one `redis-benchmark --cluster` process. Same keys, -c, -n, -P and -r; "
                 f"requests / wall time of the load, median over rounds [min–max]. CPU per request from "
                 f"/proc/<pid>/stat around each run: respcache's process (+ the three masters' together), "
                 f"and the masters' for the direct runs.")
        L.append("")
        L.append(f"| scenario | {RESPCACHE} | {CLUSTER} | respcache / cluster direct | CPU µs/request: respcache "
                 f"(+ masters) | CPU µs/request: masters direct | (respcache + masters) / direct |")
        L.append("|---|---|---|---|---|---|---|")
        for n in cl_rows:
            s_ = sc[n]
            rc_, cd = s_["targets"][RESPCACHE], s_["targets"][CLUSTER]
            ratio = s_["ratios"][f"{RESPCACHE} / {CLUSTER}"]["rps"]
            if "median_cpu_us_per_request" in rc_ and "median_cpu_us_per_request" in cd:
                own, behind, direct = (rc_["median_cpu_us_per_request"], rc_["median_redis_cpu_us_per_request"],
                                       cd["median_cpu_us_per_request"])
                cpu = (f"{own:.1f} (+ {behind:.1f}) | {direct:.1f} | "
                       + (f"{(own + behind) / direct:.2f}x" if direct else "n/a"))
            else:
                cpu = "n/a | n/a | n/a"
            L.append(f"| {s_['title']} | {k(rc_['median_rps'])} [{k(rc_['min_rps'])}–{k(rc_['max_rps'])}] | "
                     f"{k(cd['median_rps'])} [{k(cd['min_rps'])}–{k(cd['max_rps'])}] | {ratio:.2f}x | {cpu} |")
        L.append("")
    for n, label in (("scaling", "Scaling"), ("tracking", "Invalidation")):
        if n in sc:
            s = sc[n]
            parts = [f"{t} {k(tr['median_rps'])} rps [{k(tr['min_rps'])}–{k(tr['max_rps'])}]"
                     + (f", p99 {tr['median_p99_ms']:.3f} ms" if "median_p99_ms" in tr else "")
                     for t, tr in s["targets"].items()]
            ratios = "; ".join(f"{key} {ratio['rps']:.2f}x" for key, ratio in s["ratios"].items())
            L.append(f"- **{label}** ({s['title']}): {'; '.join(parts)}; ratio {ratios}.")
    if "memory" in res:
        mm = res["memory"]
        r, d = mm["respcache"], mm["redis"]
        L.append(f"- **Memory per cached entry** ({mm['entries']:,} entries, {mm['key_bytes']}-byte keys, "
                 f"{mm['value_bytes']}-byte values, payload {mm['payload_bytes_per_entry']} B): respcache "
                 f"{r['rss_bytes_per_entry']} B of RSS per entry = **{r['overhead_bytes_per_entry']} B overhead** "
                 f"(its own --max-memory accounting: {r['accounted_bytes_per_entry']} B/entry); Redis "
                 f"used_memory {d['used_memory_bytes_per_key']} B per key = **{d['overhead_bytes_per_key']} B "
                 f"overhead** ({d['rss_overhead_bytes_per_key']} B by RSS).")
    if "staleness" in res:
        st = res["staleness"]
        w, p = st["window_us"], st["poll_rtt_us"]
        L.append(f"- **Staleness window** (tracking on, {st['trials']} trials, write direct to Redis, poll "
                 f"through respcache): median {w['median']:.0f} µs, p99 {w['p99']:.0f} µs, max {w['max']:.0f} µs "
                 f"from the write's +OK to the first fresh reply; this includes one poll round trip (median "
                 f"{p['median']:.0f} µs, the measurement's granularity). {st['trials_with_stale_reads']} of "
                 f"{st['trials']} trials read the old value at least once after the +OK"
                 + (f" (served up to {st['stale_after_ack_us']['max']:.0f} µs after it)."
                    if st['trials_with_stale_reads'] else "."))
    L.append("")
    L.append("What the rows measure (redis-benchmark; unless said otherwise 100-byte values, random keys among "
             "100k, `-r 100000`):")
    L.append("")
    for n, s in sc.items():
        L.append(f"- *{s['title']}*: {s['meaning']}")
    L.append("")
    L.append("Commands (`<port>` is the target's port; every run's exact command line is in bench/results/latest.json):")
    L.append("")
    L.append("```")
    for n, s in sc.items():
        c = s["commands"]
        if s.get("mode") == "cluster":
            L.append(f"# {n}, {RESPCACHE}: all at once (<port>: respcache's)\n" + "\n".join(c[RESPCACHE])
                     + f"\n# {n}, {CLUSTER} (<port>: a master's)\n{c[CLUSTER]}")
        elif isinstance(c, dict):
            L.append(f"# {n}: both at once\n{c['get']}\n{c['set']}")
        elif isinstance(c, list):
            L.append(f"# {n}: all at once\n" + "\n".join(c))
        else:
            L.append(f"# {n}\n{c}")
    L.append("```")
    if res.get("warnings") or res.get("anomalies") or res.get("errors"):
        L.append("")
        L.append("Warnings from this run:")
        L.append("")
        for w in res.get("errors", []) + res.get("anomalies", []) + res.get("warnings", []):
            L.append(f"- {w}")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------------------------------------------

def main() -> int:
    names = [s.name for s in scenarios()] + EXTRA
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="scenarios: " + ", ".join(names))
    ap.add_argument("--bin", default=str(REPO / "build" / "respcache"), help="the respcache binary")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 round, ~1 s runs, 200 staleness trials, 200k entries for memory")
    ap.add_argument("--only", help="comma-separated scenarios to run (default: all)")
    ap.add_argument("--respload", help="the respload binary of the light rows (default: respload beside --bin; "
                    "`make bench` builds it)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of A B C (default 3; --quick: 1)")
    ap.add_argument("--duration", type=float, default=0,
                    help="target seconds per redis-benchmark run (default 3; --quick: 1)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results"),
                    help="directory for latest.json and latest.md (default bench/results)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the server logs (temporary directory)")
    opts = ap.parse_args()
    only = None
    if opts.only:
        only = [s.strip() for s in opts.only.split(",") if s.strip()]
        unknown = [s for s in only if s not in names]
        if unknown:
            ap.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(names)}")
    opts.bin = str(Path(opts.bin).resolve())
    if not os.access(opts.bin, os.X_OK):
        ap.error(f"--bin {opts.bin} is not an executable (run `make build` first)")
    opts.respload = str(Path(opts.respload).resolve() if opts.respload else Path(opts.bin).parent / "respload")
    if any(s.mode == "light" and (only is None or s.name in only) for s in scenarios()) \
            and not os.access(opts.respload, os.X_OK):
        ap.error(f"respload {opts.respload} is not an executable (cmake --build <build dir> --target respload, "
                 f"or --respload PATH; `make bench` builds it)")
    for tool in ("redis-server", "redis-benchmark", "redis-cli", "nutcracker"):
        if shutil.which(tool) is None:
            ap.error(f"{tool} not found on PATH (make deps installs it)")

    # SIGTERM behaves like Ctrl-C: unwind, stop every child, exit.
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored

    bench = Bench(opts)
    status = 1
    try:
        status = bench.run(only)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process started; no result file written", file=sys.stderr)
        return 130
    except Exception as e:
        print(f"benchmark failed: {e}", file=sys.stderr)
        bench.results.setdefault("errors", []).append(str(e))
        return 1
    finally:
        bench.procs.stop_all()
        if opts.keep_logs:
            print(f"logs kept in {bench.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(bench.workdir, ignore_errors=True)

    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(bench.results, indent=2) + "\n")
    md = markdown(bench.results)
    (out / "latest.md").write_text(md)
    print("\n" + md)
    print(f"total {bench.results['total_seconds']} s; wrote {out / 'latest.json'} and {out / 'latest.md'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
