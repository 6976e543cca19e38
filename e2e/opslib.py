"""Helpers of the operations tests (test_ops_*.py): INFO and Prometheus parsing, HTTP probes, peak RSS,
a backend that never answers and a small GET/SET load generator. Built on conftest's fixtures; nothing
here sleeps for a fixed time and every socket is bounded."""

from __future__ import annotations

import re
import socket
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from conftest import HOST, RawClient, Respcache, RespError, scaled, wait_until

# ---------------------------------------------------------------------------------------------------
# INFO.

# The fields issue 5 lists for the `# Proxy` section (names as report.cpp writes them).
PROXY_FIELDS = (
    "proxy_version", "uptime_in_seconds", "io_threads", "connected_clients", "total_commands_processed",
    "cache_hits", "cache_misses", "cache_hit_ratio", "cache_evictions", "cache_expirations",
    "cache_invalidations", "cached_keys", "cached_bytes", "backend_inflight_requests", "backend_state",
    "backend_last_error", "backend_reconnects", "pinned_connections",
)


def parse_info(text: bytes) -> Dict[str, Dict[str, str]]:
    """An INFO reply -> {section name: {field: value}}; section names as written after '# '."""
    sections: Dict[str, Dict[str, str]] = {}
    current: Optional[Dict[str, str]] = None
    for line in text.decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        if line.startswith("# "):
            current = sections.setdefault(line[2:].strip(), {})
            continue
        assert current is not None, f"INFO field before any section: {line!r}"
        key, sep, value = line.partition(":")
        assert sep, f"INFO line without ':': {line!r}"
        current[key] = value
    return sections


def proxy_info(port: int) -> Dict[str, str]:
    """`INFO proxy` on a new connection to respcache, parsed: {field: value} of the `# Proxy` section."""
    with RawClient(port, timeout=scaled(10)) as c:
        reply = c.command("INFO", "proxy")
    assert isinstance(reply, bytes), reply
    sections = parse_info(reply)
    assert list(sections) == ["Proxy"], list(sections)
    return sections["Proxy"]


def proxy_int(port: int, field: str) -> int:
    return int(proxy_info(port)[field])


# ---------------------------------------------------------------------------------------------------
# HTTP (the metrics port).


def http_get(port: int, path: str, timeout: float = scaled(10)) -> Tuple[int, str]:
    """GET http://127.0.0.1:port/path -> (status, body); error statuses are returned, not raised."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Prometheus:
    """A /metrics body, checked line by line for the text exposition format (0.0.4).

    samples: {(name, ((label, value), ...)): float}; types: {family: type}; helps: {family: text}."""

    def __init__(self, text: str):
        self.samples: Dict[Tuple[str, tuple], float] = {}
        self.types: Dict[str, str] = {}
        self.helps: Dict[str, str] = {}
        assert text.endswith("\n"), "the exposition must end with a newline"
        for line in text.split("\n")[:-1]:
            assert line.strip(), "empty line in /metrics"
            if line.startswith("# HELP "):
                name, _, help_text = line[len("# HELP "):].partition(" ")
                assert name and help_text, line
                self.helps[name] = help_text
                continue
            if line.startswith("# TYPE "):
                name, _, kind = line[len("# TYPE "):].partition(" ")
                assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
                assert name not in self.types, f"two TYPE lines for {name}"
                self.types[name] = kind
                continue
            assert not line.startswith("#"), f"unexpected comment: {line!r}"
            m = _SAMPLE.match(line)
            assert m, f"not a `name{{labels}} value` sample: {line!r}"
            name, labels_text, value = m.group(1), m.group(3), m.group(4)
            labels: tuple = ()
            if labels_text:
                pairs = _LABEL.findall(labels_text)
                rebuilt = ",".join(f'{k}="{v}"' for k, v in pairs)
                assert rebuilt == labels_text.rstrip(","), f"malformed labels: {line!r}"
                labels = tuple(sorted(pairs))
            v = float(value)  # accepts +Inf, NaN as Prometheus does
            key = (name, labels)
            assert key not in self.samples, f"duplicate sample: {line!r}"
            self.samples[key] = v
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in self.types or family in self.types, f"sample without a TYPE line: {line!r}"

    def value(self, name: str, **labels) -> float:
        return self.samples[(name, tuple(sorted(labels.items())))]

    def buckets(self, name: str, **labels) -> List[Tuple[float, float]]:
        """[(le, cumulative count)] of a histogram, in the order of le."""
        out = []
        for (n, lbls), v in self.samples.items():
            d = dict(lbls)
            if n != name + "_bucket" or any(d.get(k) != val for k, val in labels.items()):
                continue
            out.append((float(d["le"]), v))
        return sorted(out)


def metrics(port: int) -> Prometheus:
    status, body = http_get(port, "/metrics")
    assert status == 200, (status, body)
    return Prometheus(body)


# ---------------------------------------------------------------------------------------------------
# Memory.


def vm_hwm_mb(pid: int) -> float:
    """The peak resident set size of a process (VmHWM in /proc/<pid>/status), in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")



# ---------------------------------------------------------------------------------------------------
# A backend that accepts connections and reads, but never answers.


class SilentBackend:
    """A TCP server on 127.0.0.1 (a free port) that accepts every connection and reads what it is sent,
    never writing a byte. Use as a context manager; close() stops its threads and closes every socket."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.accepted = 0
        self._conns: List[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(0.1)
            with self._lock:
                self._conns.append(conn)
                self.accepted += 1
            t = threading.Thread(target=self._read_loop, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _read_loop(self, conn: socket.socket):
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.received += data

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=scaled(5))
        with self._lock:
            for c in self._conns:
                try:
                    c.close()
                except OSError:
                    pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------------------
# Load: client threads doing GET/SET in a loop through the proxy.


class Load:
    """`threads` raw connections, each sending SET then GET of its own keys in a loop until stop().
    Every request's reply is classified; anything else than a value or an `ERR backend unavailable`
    error (an exception, EOF, a timeout, another error) is recorded in `problems`."""

    def __init__(self, port: int, threads: int = 4, reply_timeout: float = scaled(10)):
        self.port = port
        self.reply_timeout = reply_timeout
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.errors = 0
        self.problems: List[str] = []
        self.sent = 0
        self.replied = 0
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def _classify(self, reply, expect_ok: bool) -> Optional[str]:
        if isinstance(reply, RespError):
            if reply.message.startswith("ERR backend unavailable"):
                return "error"
            return f"unexpected error reply {reply!r}"
        if expect_ok:
            return "ok" if reply == b"OK" else f"unexpected SET reply {reply!r}"
        return "ok" if reply is None or isinstance(reply, bytes) else f"unexpected GET reply {reply!r}"

    def _run(self, i: int):
        try:
            c = RawClient(self.port, timeout=self.reply_timeout)
        except OSError as e:
            with self.lock:
                self.problems.append(f"thread {i}: connect failed: {e!r}")
            return
        n = 0
        try:
            while not self.stop_event.is_set():
                key = f"load:{i}:{n % 20}"
                value = f"v{n}".encode()
                set_ok = False
                for cmd, expect_ok in ((("SET", key, value), True), (("GET", key), False)):
                    with self.lock:
                        self.sent += 1
                    try:
                        reply = c.command(*cmd)
                    except Exception as e:  # noqa: BLE001 - every failure is a finding
                        with self.lock:
                            self.problems.append(f"thread {i}: {cmd[0]} raised {e!r}")
                        return
                    verdict = self._classify(reply, expect_ok)
                    if expect_ok:
                        set_ok = verdict == "ok"
                    elif set_ok and verdict == "ok" and reply != value:
                        # Read your writes: after an acknowledged SET, its value or an error, nothing else.
                        verdict = f"GET {key} after SET {value!r} returned {reply!r}"
                    with self.lock:
                        self.replied += 1
                        if verdict == "ok":
                            self.ok += 1
                        elif verdict == "error":
                            self.errors += 1
                        else:
                            self.problems.append(f"thread {i}: {verdict}")
                            return
                n += 1
        finally:
            c.close()

    def counts(self) -> Tuple[int, int]:
        with self.lock:
            return self.ok, self.errors

    def stop(self, timeout: float = scaled(20)):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=timeout)
        alive = [t for t in self.threads if t.is_alive()]
        assert not alive, f"{len(alive)} load threads still waiting for a reply"


def connect_retrying(port: int, timeout: float = scaled(10)) -> RawClient:
    """A RawClient whose PING is answered (retried while a just-closed connection may still count)."""

    def attempt():
        c = RawClient(port, timeout=timeout)
        try:
            if c.command("PING") == b"PONG":
                return c
        except (EOFError, OSError):
            pass
        c.close()
        return None

    return wait_until(attempt, timeout, "a served connection")


def subscribe_warm(c: RawClient, channel: str):
    """SUBSCRIBE `channel` on `c`, after a MULTI/DISCARD that leaves a ready dedicated backend connection in
    the pool of c's io thread. A workaround for the bug test_ops_observability.py::
    test_first_subscribe_without_an_idle_dedicated_connection_is_answered shows (a SUBSCRIBE that must open a
    new backend connection is never answered), so that the tests of other points can use subscribers."""
    assert c.command("MULTI") == b"OK"
    assert c.command("DISCARD") == b"OK"
    reply = c.command("SUBSCRIBE", channel)
    assert reply == [b"subscribe", channel.encode(), 1], reply


def sees_eof(c: RawClient) -> bool:
    """True once the server has closed `c` (reads what is there; a reset counts as closed)."""
    try:
        c.read_until_eof()
        return True
    except socket.timeout:
        return False


# ---------------------------------------------------------------------------------------------------
# Starting respcache where the harness's readiness probe (a PING without AUTH, with --bind 127.0.0.1 and
# --port 0 on the command line) does not fit: with --requirepass, another --bind, or a --config file.


def wait_started(rc, backend_ready: bool = True, tracking: bool = True):
    """Waits (bounded) for respcache's start-up line, sets rc.port from it, then for the backend to be ready
    and (tracking) the invalidation channel live. No client command is sent."""
    m = rc.wait_for_log(r"respcache started.*?\bport=(\d+)")
    rc.port = int(m.group(1))
    if backend_ready:
        rc.wait_for_log(r"backend ready")
    if backend_ready and tracking:
        rc.wait_for_log(r"invalidation channel live")
    return rc


def spawn(factory, args, env=None):
    """A respcache process with exactly `args` (nothing added), registered with the `respcache` fixture's
    factory so that it is stopped when the test ends. Not waited for: see wait_started."""
    workdir = Path(tempfile.mkdtemp(prefix="respcache-", dir=factory.tmp_path))
    rc = Respcache([str(a) for a in args], workdir, env)
    factory.instances.append(rc)
    return rc
