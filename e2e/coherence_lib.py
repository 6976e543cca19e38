"""Helpers of the coherence tests (test_coherence.py): INFO proxy and CLIENT LIST parsing, proof that a
key is cached, and the checker of the concurrent read/write histories.

Time in histories is time.monotonic() of this process. A write's `ack` is taken after its reply was read,
a read's `start` before its request was sent: both errors of measurement make the check more lenient, so
a violation found is a real one.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List

from conftest import RawClient, RespError, scaled, wait_until

INVALIDATION_CLIENT_NAME = "respcache-invalidation"


# ---------------------------------------------------------------------------------------------------
# What the processes say about themselves.


def parse_info(text: bytes) -> Dict[str, str]:
    out = {}
    for line in text.decode("utf-8", "replace").splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def proxy_info(rc) -> Dict[str, str]:
    """`INFO proxy` asked through respcache `rc`, as {field: text}."""
    with RawClient(rc.port, timeout=scaled(5)) as c:
        reply = c.command("INFO", "proxy")
    assert isinstance(reply, bytes), f"INFO proxy: {reply!r}"
    return parse_info(reply)


def proxy_counter(rc, name: str) -> int:
    return int(proxy_info(rc)[name])


def client_list(redis_server) -> List[Dict[str, str]]:
    """Redis's CLIENT LIST, one {field: value} per connection."""
    with redis_server.raw() as c:
        reply = c.command("CLIENT", "LIST")
    assert isinstance(reply, bytes), reply
    out = []
    for line in reply.decode().splitlines():
        fields = {}
        for part in line.split(" "):
            if "=" in part:
                k, v = part.split("=", 1)
                fields[k] = v
        if fields:
            out.append(fields)
    return out


def invalidation_client_ids(redis_server) -> List[int]:
    return [int(c["id"]) for c in client_list(redis_server) if c.get("name") == INVALIDATION_CLIENT_NAME]


def tracking_client_ids(redis_server) -> List[int]:
    """Connections that have CLIENT TRACKING on (flag `t`), i.e. respcache's cache-filling connections."""
    return [int(c["id"]) for c in client_list(redis_server) if "t" in c.get("flags", "")]


def kill_client(redis_server, client_id: int):
    with redis_server.raw() as c:
        assert c.command("CLIENT", "KILL", "ID", str(client_id)) == 1


def wait_channel_live(rc, timeout: float = scaled(5)):
    wait_until(lambda: proxy_info(rc)["invalidation_channel"] == "live", timeout, "invalidation_channel:live")


# ---------------------------------------------------------------------------------------------------
# Proof of caching.


def assert_cached(client: RawClient, redis_server, key: str, expected, attempts: int = 3) -> None:
    """GETs `key` through the proxy until a GET is answered without reaching Redis (its GET count did not
    move), every reply being `expected`: the value is then in the cache. A few attempts are allowed
    because a fill that races the invalidation of the write that produced `expected` is rightly dropped,
    and the next GET fills again."""
    first = client.command("GET", key)
    assert first == expected, f"GET {key} through the proxy: {first!r}, expected {expected!r}"
    for _ in range(attempts):
        before = redis_server.get_calls()
        again = client.command("GET", key)
        assert again == expected, f"GET {key} again: {again!r}, expected {expected!r}"
        if redis_server.get_calls() == before:
            return
    raise AssertionError(f"GET {key} went to Redis {attempts + 1} times in a row: it was not cached")


def poll_proxy(client: RawClient, key: str, expected, timeout: float, what: str) -> float:
    """GETs `key` through the proxy until it returns `expected` (bounded). Returns the seconds it took.
    For an error, `expected` may be a RespError prefix matcher (see error_prefix)."""
    t0 = time.monotonic()

    def ok():
        got = client.command("GET", key)
        if callable(expected):
            return expected(got)
        return got == expected

    wait_until(ok, timeout, what, interval=0.002)
    return time.monotonic() - t0


def error_prefix(prefix: str):
    return lambda got: isinstance(got, RespError) and got.message.startswith(prefix)


# ---------------------------------------------------------------------------------------------------
# Concurrent histories.


@dataclass
class History:
    """Writes: per key, (version, ack time), versions increasing with Redis's order of the writes.
    Reads: (key, start time, version read)."""

    writes: Dict[str, List[tuple]] = field(default_factory=dict)
    reads: List[tuple] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Violation:
    key: str
    read_start: float
    version_read: int
    newest_acked: int
    window: float  # read start minus the ack of the first write newer than what was read


def find_stale_reads(history: History) -> List[Violation]:
    """Every read that returned a version older than one whose write was acknowledged before the read
    started. Strict: no slack at all. The window of a stale read is how long before the read started a
    newer version had been acknowledged (the earliest such ack)."""
    index = {}
    for key, ws in history.writes.items():
        # Acks are not necessarily in version order (several writers): the newest version acknowledged by
        # time t is the running maximum over the writes sorted by ack time.
        by_ack = sorted(ws, key=lambda w: w[1])
        acks = [a for _, a in by_ack]
        running, best = [], -1
        for v, _ in by_ack:
            best = max(best, v)
            running.append(best)
        # Earliest ack of any version >= v: suffix minimum over the writes sorted by version.
        by_version = sorted(ws)
        versions = [v for v, _ in by_version]
        earliest = [0.0] * len(by_version)
        m = float("inf")
        for j in range(len(by_version) - 1, -1, -1):
            m = min(m, by_version[j][1])
            earliest[j] = m
        index[key] = (acks, running, versions, earliest)
    out = []
    for key, start, version in history.reads:
        acks, running, versions, earliest = index[key]
        i = bisect.bisect_left(acks, start)  # writes acknowledged strictly before the read started
        if i == 0:
            continue
        newest = running[i - 1]
        if version < newest:
            j = bisect.bisect_right(versions, version)
            out.append(Violation(key, start, version, newest, start - earliest[j]))
    return out


def summarize(violations: List[Violation]) -> str:
    if not violations:
        return "no stale reads"
    windows = sorted(v.window for v in violations)
    return (f"{len(violations)} stale reads; window after the newer write's ack: "
            f"min {windows[0] * 1e3:.3f} ms, median {windows[len(windows) // 2] * 1e3:.3f} ms, "
            f"max {windows[-1] * 1e3:.3f} ms; worst: {max(violations, key=lambda v: v.window)}")


def run_history(redis_server, read_port: int, write_port: int, keys: List[str], writers: int, readers: int,
                duration: float, write_pause: float = 0.002) -> History:
    """Runs `writers` threads doing INCR on `keys` (on `write_port`: Redis directly, or a proxy) and
    `readers` threads doing GET on `read_port` (each its own connection) for `duration` seconds.
    Every key starts at 0 (set directly in Redis). Returns the history."""
    with redis_server.raw() as c:
        for k in keys:
            assert c.command("SET", k, "0") == b"OK"
    h = History(writes={k: [(0, 0.0)] for k in keys})
    stop = threading.Event()

    def writer(n: int):
        local = {k: [] for k in keys}
        try:
            with RawClient(write_port, timeout=scaled(10)) as c:
                i = n
                while not stop.is_set():
                    k = keys[i % len(keys)]
                    i += 1 + n  # writers walk the keys in different orders
                    v = c.command("INCR", k)
                    ack = time.monotonic()
                    if not isinstance(v, int):
                        raise AssertionError(f"INCR {k}: {v!r}")
                    local[k].append((v, ack))
                    if write_pause:
                        time.sleep(write_pause)  # pacing only: let readers hit the cache between writes
        except Exception as e:  # noqa: BLE001 - reported by the test
            with h.lock:
                h.errors.append(f"writer {n}: {e!r}")
        with h.lock:
            for k, ws in local.items():
                h.writes[k].extend(ws)

    def reader(n: int):
        local = []
        try:
            with RawClient(read_port, timeout=scaled(10)) as c:
                i = n
                while not stop.is_set():
                    k = keys[i % len(keys)]
                    i += 1
                    start = time.monotonic()
                    v = c.command("GET", k)
                    if not isinstance(v, bytes):
                        raise AssertionError(f"GET {k}: {v!r}")
                    local.append((k, start, int(v)))
        except Exception as e:  # noqa: BLE001
            with h.lock:
                h.errors.append(f"reader {n}: {e!r}")
        with h.lock:
            h.reads.extend(local)

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(writers)]
    threads += [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(readers)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline and not h.errors:
        stop.wait(0.05)
    stop.set()
    for t in threads:
        t.join(scaled(15))
        assert not t.is_alive(), "a stress thread did not stop"
    return h
