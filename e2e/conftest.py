"""Shared fixtures of the respcache end-to-end suite.

Every test talks to real processes on 127.0.0.1 only: a `redis-server` of its own on a free port and the
real `respcache` binary started with `--port 0` (it logs the port it got). Nothing here sleeps for a fixed
time to "let things settle": every wait is a bounded poll (`wait_until`), every socket has a timeout and
every process a test starts is stopped by its pid (SIGTERM, then SIGKILL after a bound) when the test
ends, whether it passed or not.

Fixtures
--------
redis_server     a fresh Redis for the test (a `RedisServer`): .port, .pid, .client(), .stop(), .start()
                 (again on the same port), .commandstats(), .get_calls()
redis_factory    starts more Redis servers: redis_factory.start(*extra_redis_args) -> RedisServer
respcache        starts respcache processes: respcache.start(extra_args=[...], backend=redis_server)
                 -> `Respcache`: .port, .pid, .client(**kw), .raw(), .stop(sig) -> exit code, .log
proxy            a respcache with default options in front of `redis_server`

Helpers (importable: `from conftest import ...`)
------------------------------------------------
RawClient        a plain socket speaking RESP: .send(bytes), .send_command(*args), .read_reply(),
                 .read_raw_reply(), .read_raw_replies(n), .read_until_eof(), .command(*args)
RespReader       the minimal RESP reader RawClient uses (RESP2 plus the RESP3 types)
RespError        a parsed error reply (returned, not raised, by the readers)
encode_command   *args -> the multibulk bytes of one request
wait_until       bounded polling: wait_until(predicate, timeout, what)
scaled           a time bound scaled for sanitizer builds (E2E_SANITIZED=1)
run_respcache    runs the binary to completion (for --help and configuration errors)

Environment
-----------
E2E_BIN          the respcache binary (default: <repo>/build/respcache)
E2E_SANITIZED=1  an ASan/UBSan build: every bound (start-up, socket and test timeouts) is multiplied
E2E_REDIS_SERVER the redis-server binary (default: redis-server on PATH)

Variables named RESPCACHE_* are configuration to respcache (it rejects unknown ones), so the harness never
uses that prefix, and strips any such variable from the environment it gives respcache unless a test
passes it explicitly with `env=`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Union

import pytest
import redis

# ---------------------------------------------------------------------------------------------------
# Configuration of the harness.

REPO = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("E2E_BIN") or REPO / "build" / "respcache")
REDIS_SERVER = os.environ.get("E2E_REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
SANITIZED = os.environ.get("E2E_SANITIZED") == "1"
# What AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer print when they find something.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
# Sanitized builds start and run several times slower; every bound below is multiplied by this.
SCALE = 4.0 if SANITIZED else 1.0
HOST = "127.0.0.1"


def scaled(seconds: float) -> float:
    """A time bound, multiplied for sanitizer builds. Use it for every wait and socket timeout."""
    return seconds * SCALE


STARTUP_TIMEOUT = scaled(15.0)  # a process is up and answering
STOP_TIMEOUT = scaled(10.0)  # SIGTERM -> exit, before SIGKILL
SOCKET_TIMEOUT = scaled(10.0)  # any one socket operation


def pytest_collection_modifyitems(config, items):
    """Under E2E_SANITIZED=1 scale every test's time bound (the ini default and explicit markers)."""
    if not SANITIZED:
        return
    default = float(config.getini("timeout") or 60)
    for item in items:
        marker = item.get_closest_marker("timeout")
        seconds = float(marker.args[0]) if marker is not None and marker.args else default
        item.add_marker(pytest.mark.timeout(scaled(seconds)), append=False)


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.02):
    """Polls `predicate` until it returns a true value (returned) or `timeout` seconds pass (AssertionError
    naming `what`). Exceptions from the predicate count as "not yet"; the last one is reported."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - polled operations fail until they succeed
            last_exc = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc is not None else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


def free_port() -> int:
    """A port that was free a moment ago (bind to port 0 and release it). Callers retry on a clash."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _env_without_respcache_vars(extra: Optional[dict] = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESPCACHE_")}
    if extra:
        env.update(extra)
    return env


# Every process started by the harness, so that even an interrupted session leaves none behind.
_LIVE_PROCESSES: List[subprocess.Popen] = []


def _stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
    """Sends `sig` to `proc` (by its pid), waits up to `timeout`, then SIGKILLs it. Returns the exit code
    (negative: killed by that signal)."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=scaled(10))
    if proc in _LIVE_PROCESSES:
        _LIVE_PROCESSES.remove(proc)
    return proc.returncode


@pytest.fixture(scope="session", autouse=True)
def _reap_leftover_processes():
    yield
    for proc in list(_LIVE_PROCESSES):
        _stop_process(proc, signal.SIGKILL, timeout=scaled(5))


# ---------------------------------------------------------------------------------------------------
# RESP on a raw socket.


class RespError:
    """An error reply, e.g. RespError('ERR unknown command ...'). Readers return it; they never raise it."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message

    def __eq__(self, other):
        return isinstance(other, RespError) and other.message == self.message

    def __hash__(self):
        return hash(self.message)

    def __repr__(self):
        return f"RespError({self.message!r})"


class _Incomplete(Exception):
    pass


class RespReader:
    """A minimal incremental RESP reader. feed() bytes, then pop() complete replies.

    Parsed values: simple string and bulk string -> bytes, integer -> int, nil -> None, array -> list,
    error -> RespError; RESP3 maps -> dict, sets -> list, booleans -> bool, doubles -> float."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data: bytes):
        self.buf += data

    def pop(self):
        """Returns (value, raw bytes of the reply) for the next complete reply, or None if incomplete."""
        try:
            value, end = self._parse(0)
        except _Incomplete:
            return None
        raw = bytes(self.buf[:end])
        del self.buf[:end]
        return value, raw

    def _line(self, pos: int):
        end = self.buf.find(b"\r\n", pos)
        if end < 0:
            raise _Incomplete()
        return bytes(self.buf[pos:end]), end + 2

    def _parse(self, pos: int):
        if pos >= len(self.buf):
            raise _Incomplete()
        kind = self.buf[pos : pos + 1]
        line, after = self._line(pos + 1)
        if kind == b"+":
            return line, after
        if kind == b"-":
            return RespError(line.decode("utf-8", "replace")), after
        if kind in (b":", b"("):
            return int(line), after
        if kind == b",":
            return float(line), after
        if kind == b"#":
            return line == b"t", after
        if kind == b"_":
            return None, after
        if kind in (b"$", b"=", b"!"):
            n = int(line)
            if n < 0:
                return None, after
            if len(self.buf) < after + n + 2:
                raise _Incomplete()
            if self.buf[after + n : after + n + 2] != b"\r\n":
                raise ValueError(f"bulk string not terminated by CRLF: {bytes(self.buf[pos:after + n + 2])!r}")
            return bytes(self.buf[after : after + n]), after + n + 2
        if kind in (b"*", b"~", b">", b"%", b"|"):
            n = int(line)
            if n < 0:
                return None, after
            count = 2 * n if kind in (b"%", b"|") else n
            items = []
            for _ in range(count):
                item, after = self._parse(after)
                items.append(item)
            if kind in (b"%", b"|"):
                return {items[i]: items[i + 1] for i in range(0, len(items), 2)}, after
            return items, after
        raise ValueError(f"not a RESP reply: {bytes(self.buf[pos:pos + 80])!r}")


def encode_command(*args: Union[bytes, str, int]) -> bytes:
    """The multibulk encoding of one request: encode_command('SET', 'k', 1) -> b'*3\\r\\n$3\\r\\nSET...'."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a)
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RawClient:
    """A plain TCP connection that sends bytes as given and reads replies exactly as they come.

    Every read is bounded by `timeout` (socket.timeout is raised when nothing arrives in time). Use it as
    a context manager or call close()."""

    def __init__(self, port: int, timeout: float = SOCKET_TIMEOUT, host: str = HOST):
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.reader = RespReader()
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- sending

    def send(self, data: bytes):
        """Sends all of `data` (one write from the caller's point of view)."""
        self.sock.sendall(data)

    def send_command(self, *args):
        self.send(encode_command(*args))

    # -- receiving

    def _recv(self) -> bool:
        """Reads what is available into the reader; False at EOF (a reset counts as EOF)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.reader.feed(data)
        return True

    def _next(self):
        while True:
            got = self.reader.pop()
            if got is not None:
                return got
            if not self._recv():
                raise EOFError(f"connection closed by the server; unparsed bytes: {bytes(self.reader.buf)[:200]!r}")

    def read_reply(self):
        """The next reply, parsed (see RespReader). EOFError if the server closes first."""
        return self._next()[0]

    def read_raw_reply(self) -> bytes:
        """The exact bytes of the next complete reply."""
        return self._next()[1]

    def read_raw_replies(self, n: int) -> List[bytes]:
        """The exact bytes of the next `n` replies, one item per reply."""
        return [self._next()[1] for _ in range(n)]

    def read_replies(self, n: int) -> list:
        return [self._next()[0] for _ in range(n)]

    def read_until_eof(self) -> bytes:
        """Every byte until the server closes the connection (socket.timeout if it does not)."""
        while self._recv():
            pass
        data = bytes(self.reader.buf)
        self.reader.buf.clear()
        return data

    def command(self, *args):
        """Sends one command and returns its parsed reply."""
        self.send_command(*args)
        return self.read_reply()


# ---------------------------------------------------------------------------------------------------
# redis-server.


def redis_client(port: int, clients: List[redis.Redis], **kw) -> redis.Redis:
    """A redis-py client of 127.0.0.1:`port` (bytes replies, bounded socket waits), added to `clients` so
    that its owner closes it."""
    kw.setdefault("decode_responses", False)
    kw.setdefault("socket_timeout", SOCKET_TIMEOUT)
    kw.setdefault("socket_connect_timeout", SOCKET_TIMEOUT)
    c = redis.Redis(host=HOST, port=port, **kw)
    clients.append(c)
    return c


class RedisServer:
    """A redis-server process of the test's own, on 127.0.0.1, without persistence, in a temp dir."""

    def __init__(self, workdir: Path, extra_args: Sequence[str] = ()):
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self._clients: List[redis.Redis] = []
        self._starts = 0

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def _spawn(self, port: int) -> bool:
        self._starts += 1
        log = open(self.workdir / f"redis-{port}-{self._starts}.log", "wb")
        args = [REDIS_SERVER, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", str(self.workdir),
                # DEBUG PROTOCOL <type> produces every RESP3 reply type (test_resp3.py).
                "--enable-debug-command", "local", *self.extra_args]
        self.proc = subprocess.Popen(args, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        _LIVE_PROCESSES.append(self.proc)
        self.port = port

        def up():
            if self.proc.poll() is not None:
                return "exited"
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.settimeout(scaled(2))
                s.sendall(b"PING\r\n")
                return "ok" if s.recv(16).startswith(b"+PONG") else None

        state = wait_until(up, STARTUP_TIMEOUT, f"redis-server on port {port}")
        if state == "exited":
            _stop_process(self.proc)
            return False
        return True

    def start(self, port: Optional[int] = None, attempts: int = 5) -> "RedisServer":
        """Starts redis-server on `port`, or on the port it had before (a restart), or on a free one.
        A free port taken meanwhile by someone else is replaced by another, up to `attempts` times; a
        fixed port is retried (it may be briefly busy) but never replaced."""
        assert self.proc is None or self.proc.poll() is not None, "redis-server is already running"
        fixed = port or self.port
        for _ in range(attempts):
            if self._spawn(fixed or free_port()):
                return self
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start (port {fixed or 'free'}); see logs in {self.workdir}")

    def stop(self, sig: int = signal.SIGTERM) -> Optional[int]:
        """Stops the server by its pid; its port is kept for start(). Returns the exit code."""
        for c in self._clients:
            c.close()
        self._clients.clear()
        if self.proc is None:
            return None
        return _stop_process(self.proc, sig)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, **kw) -> redis.Redis:
        """A redis-py client talking straight to this server (bytes replies)."""
        return redis_client(self.port, self._clients, **kw)

    def raw(self, timeout: float = SOCKET_TIMEOUT) -> RawClient:
        return RawClient(self.port, timeout)

    def commandstats(self) -> dict:
        """Calls per command from INFO commandstats: {'get': 3, 'set': 1, 'client|tracking': 1, ...}."""
        with RawClient(self.port) as c:
            text = c.command("INFO", "commandstats")
        assert isinstance(text, bytes), text
        out = {}
        for line in text.decode().splitlines():
            m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
            if m:
                out[m.group(1).lower()] = int(m.group(2))
        return out

    def get_calls(self) -> int:
        """How many GET commands this server has executed."""
        return self.commandstats().get("get", 0)


class RedisFactory:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.servers: List[RedisServer] = []

    def start(self, *extra_args: str) -> RedisServer:
        workdir = Path(tempfile.mkdtemp(prefix="redis-", dir=self.tmp_path))
        server = RedisServer(workdir, extra_args)
        self.servers.append(server)
        return server.start()

    def stop_all(self):
        for s in self.servers:
            s.stop()


@pytest.fixture
def redis_factory(tmp_path):
    """Starts Redis servers for the test; all are stopped when it ends."""
    factory = RedisFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture
def redis_server(redis_factory) -> RedisServer:
    """A fresh, empty redis-server for this test."""
    return redis_factory.start()


# ---------------------------------------------------------------------------------------------------
# respcache.

_PORT_PATTERNS = (re.compile(r"respcache started.*?\bport=(\d+)"),
                  re.compile(r'"message":"respcache started".*?"port":(\d+)'))


def run_respcache(args: Sequence[str] = (), env: Optional[dict] = None, timeout: float = scaled(20)):
    """Runs the binary to completion (for --help, --version and configuration errors).
    Returns a subprocess.CompletedProcess with text stdout and stderr."""
    return subprocess.run([str(BIN), *args], env=_env_without_respcache_vars(env), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class Respcache:
    """One respcache process. Its stderr (the log) goes to a file; `.log` is what was written so far."""

    def __init__(self, args: List[str], workdir: Path, env: Optional[dict] = None):
        self.args = args
        self.workdir = workdir
        self.log_path = workdir / "respcache.stderr"
        self.port: Optional[int] = None
        self.returncode: Optional[int] = None
        self._clients: List[redis.Redis] = []
        with open(self.log_path, "wb") as err, open(workdir / "respcache.stdout", "wb") as out:
            self.proc = subprocess.Popen([str(BIN), *args], cwd=workdir, env=_env_without_respcache_vars(env),
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _LIVE_PROCESSES.append(self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log(self) -> str:
        """Everything respcache has written on stderr so far."""
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def log_lines(self) -> List[str]:
        return [line for line in self.log.splitlines() if line.strip()]

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_for_log(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> "re.Match":
        """Waits (bounded) until a line of the log matches the regular expression `pattern`."""
        rx = re.compile(pattern)

        def found():
            m = rx.search(self.log)
            if m is None and not self.running():
                raise AssertionError(f"respcache exited ({self.proc.returncode}) before logging {pattern!r}:\n"
                                     f"{self.log}")
            return m

        try:
            return wait_until(found, timeout, f"log line matching {pattern!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nlog so far:\n{self.log}") from None

    def _wait_ready(self, backend_ready: bool, tracking: bool):
        def port_logged():
            if not self.running():
                raise RuntimeError(f"respcache exited with {self.proc.returncode}:\n{self.log}")
            for rx in _PORT_PATTERNS:
                m = rx.search(self.log)
                if m:
                    return int(m.group(1))
            return None

        try:
            self.port = wait_until(port_logged, STARTUP_TIMEOUT, "respcache's start-up line with its port")
        except AssertionError as e:
            raise AssertionError(f"{e}\nlog so far:\n{self.log}") from None

        def pong():
            with RawClient(self.port, timeout=scaled(2)) as c:
                return c.command("PING") == b"PONG"

        wait_until(pong, STARTUP_TIMEOUT, "respcache to answer PING")
        # Before these, respcache answers but does not yet know the backend's command table (so unknown
        # commands are the backend's to reject) or does not cache (tracking mode without its channel).
        if backend_ready:
            self.wait_for_log(r"backend ready")
        if backend_ready and tracking:
            self.wait_for_log(r"invalidation channel live")

    def client(self, **kw) -> redis.Redis:
        """A redis-py client talking to respcache (bytes replies unless decode_responses=True)."""
        kw.setdefault("decode_responses", False)
        kw.setdefault("socket_timeout", SOCKET_TIMEOUT)
        kw.setdefault("socket_connect_timeout", SOCKET_TIMEOUT)
        c = redis.Redis(host=HOST, port=self.port, **kw)
        self._clients.append(c)
        return c

    def raw(self, timeout: float = SOCKET_TIMEOUT) -> RawClient:
        """A new raw connection to respcache (close it, or use it as a context manager)."""
        return RawClient(self.port, timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Sends `sig` to the process and returns its exit code (SIGKILL after `timeout`: negative)."""
        for c in self._clients:
            c.close()
        self._clients.clear()
        self.returncode = _stop_process(self.proc, sig, timeout)
        return self.returncode


class RespcacheFactory:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.instances: List[Respcache] = []

    def start(self, extra_args: Iterable[str] = (), backend: Union[RedisServer, int, str, None] = None,
              env: Optional[dict] = None, wait_ready: bool = True) -> Respcache:
        """Starts respcache with `--port 0` and `extra_args`.

        backend: a RedisServer, a port on 127.0.0.1 or a redis:// URL. None means a port where nothing
        listens, so that respcache never reaches a Redis the test did not start.
        wait_ready: wait until respcache has logged its port and answers PING; and, when the backend is
        running, until it has learned the backend's command table and (in the default tracking mode) its
        invalidation channel is live, so that caching is in effect when the test begins."""
        extra_args = list(extra_args)
        backend_running = False
        if isinstance(backend, RedisServer):
            backend_running = backend.running()
            url = backend.url
        elif isinstance(backend, int):
            url = f"redis://{HOST}:{backend}"
        elif isinstance(backend, str):
            url = backend
        else:
            url = f"redis://{HOST}:{free_port()}"
        args = ["--port", "0", "--bind", HOST, "--backend", url, *extra_args]
        if "--threads" not in extra_args:
            args += ["--threads", "2"]
        workdir = Path(tempfile.mkdtemp(prefix="respcache-", dir=self.tmp_path))
        rc = Respcache(args, workdir, env)
        self.instances.append(rc)
        if wait_ready:
            tracking = "ttl" not in _option_values(extra_args, "--invalidation")
            rc._wait_ready(backend_ready=backend_running, tracking=tracking)
        return rc

    def stop_all(self):
        for rc in self.instances:
            if rc.running():
                rc.stop()


def _option_values(args: Sequence[str], name: str) -> List[str]:
    out = []
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith(name + "="):
            out.append(a.split("=", 1)[1])
    return out


@pytest.fixture
def respcache(tmp_path, redis_factory):
    """Starts respcache processes for the test: respcache.start(extra_args=[...], backend=redis_server).
    All are stopped when the test ends, before the test's Redis servers (hence `redis_factory` here).
    On failure, their logs are printed (pytest shows them)."""
    if not BIN.is_file():
        pytest.fail(f"respcache binary not found at {BIN}; build it or set E2E_BIN")
    factory = RespcacheFactory(tmp_path)
    yield factory
    factory.stop_all()
    for rc in factory.instances:
        print(f"--- respcache {' '.join(rc.args)} (exit {rc.returncode}) log:\n{rc.log}")
    # Under the sanitizers a report fails the test that provoked it, whatever else the test checked.
    reports = [rc for rc in factory.instances if any(m in rc.log for m in SANITIZER_MARKERS)]
    if reports:
        pytest.fail("sanitizer report in respcache's log:\n" + reports[0].log[-6000:])


@pytest.fixture
def proxy(respcache, redis_server) -> Respcache:
    """respcache with default options (tracking invalidation) in front of `redis_server`."""
    return respcache.start(backend=redis_server)


@pytest.fixture(params=["optin", "bcast"])
def proxy_any_tracking(request, respcache, redis_server) -> Respcache:
    """respcache in front of `redis_server` in each --tracking-mode: Redis remembers the keys the cache
    filled and announces their writes (optin, the default), or announces every write of every key (bcast).
    A module whose tests must hold in both overrides `proxy` with it."""
    return respcache.start(["--tracking-mode", request.param], backend=redis_server)


def parse_json_log(text: str) -> List[dict]:
    """Each non-empty line of a --log-format json log, parsed (AssertionError naming a bad line)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise AssertionError(f"log line is not JSON ({e}): {line!r}") from None
        assert isinstance(obj, dict), f"log line is not a JSON object: {line!r}"
        out.append(obj)
    return out
