"""Helpers of the real-client end-to-end tests (test_clients.py) and of the compatibility check
(test_compat.py): bounded subprocesses, a pseudo-terminal session, and the read-your-writes check.

Every process started here is stopped by its pid, whatever happens: run_tool() kills on timeout,
PtySession.close() sends SIGTERM then SIGKILL.
"""

from __future__ import annotations

import errno
import os
import re
import select
import signal
import subprocess
import time
from typing import Callable, List, Optional, Sequence

from conftest import HOST, RedisServer, scaled

# ---------------------------------------------------------------------------------------------------
# Subprocesses.


def run_tool(args: Sequence[str], timeout: float, input: Optional[bytes] = None, cwd: Optional[str] = None,
             env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Runs a client program to completion with a time bound. On timeout the process is killed by its
    pid (and waited for) and an AssertionError shows what it had written so far."""
    proc = subprocess.Popen(list(args), stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env)
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=scaled(10))
        raise AssertionError(f"{args[0]} did not finish within {timeout:.0f}s: {' '.join(map(str, args))}\n"
                             f"stdout (tail): {out[-2000:]!r}\nstderr (tail): {err[-2000:]!r}") from None
    return subprocess.CompletedProcess(list(args), proc.returncode, out, err)


def redis_cli(port: int, *args: str, timeout: float = scaled(20), input: Optional[bytes] = None,
              extra: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """One redis-cli invocation against 127.0.0.1:`port` (non-interactive: stdout is a pipe)."""
    return run_tool(["redis-cli", "-h", HOST, "-p", str(port), *extra, *args], timeout, input=input)


def cli_value(port: int, *args: str, extra: Sequence[str] = ()) -> str:
    """The stdout of a one-shot redis-cli command, without the trailing newline; fails on a non-zero
    exit status."""
    cp = redis_cli(port, *args, extra=extra)
    assert cp.returncode == 0, f"redis-cli {' '.join(args)} exited {cp.returncode}: {cp.stderr!r}"
    return cp.stdout.decode().rstrip("\n")


# ---------------------------------------------------------------------------------------------------
# A program on a pseudo-terminal (redis-cli's interactive mode only starts on a tty).

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r")


class PtySession:
    """A program started with os.forkpty(); send lines, read until a pattern, every read bounded."""

    def __init__(self, argv: Sequence[str], env: Optional[dict] = None):
        self.argv = list(argv)
        pid, fd = os.forkpty()
        if pid == 0:  # the child: exec the program, never return into the test runner
            try:
                os.execvpe(self.argv[0], self.argv, env if env is not None else dict(os.environ, TERM="dumb"))
            finally:
                os._exit(127)
        self.pid = pid
        self.fd = fd
        self.raw = bytearray()  # everything the program wrote
        self.pos = 0  # where the next expect() starts looking, in the cleaned text
        self.status: Optional[int] = None

    def _read_some(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([self.fd], [], [], remaining)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError as e:  # EIO: the program exited and the pty closed
            if e.errno == errno.EIO:
                return False
            raise
        if not data:
            return False
        self.raw += data
        return True

    @property
    def text(self) -> str:
        """The output with terminal control sequences and carriage returns removed."""
        return _ANSI.sub(b"", bytes(self.raw)).decode("utf-8", "replace")

    def expect(self, pattern: str, timeout: float = scaled(10)) -> re.Match:
        """Reads until the regular expression `pattern` matches the output after the previous match;
        AssertionError with the output so far when it does not within `timeout`."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text, self.pos)
            if m:
                self.pos = m.end()
                return m
            if not self._read_some(deadline):
                if time.monotonic() >= deadline or self.exited():
                    raise AssertionError(f"{self.argv[0]}: no output matching {pattern!r} within {timeout:.0f}s; "
                                         f"output after the last match:\n{self.text[self.pos:]!r}")

    def sendline(self, line: str):
        os.write(self.fd, line.encode() + b"\r")

    def exited(self) -> bool:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = status
        return self.status is not None

    def wait_exit(self, timeout: float = scaled(10)) -> int:
        """Waits (bounded, reading the pty meanwhile so that nothing is lost) for the program to exit;
        returns its exit code."""
        deadline = time.monotonic() + timeout
        while True:
            got = self._read_some(min(deadline, time.monotonic() + 0.05))
            if not got and self.exited():
                return os.waitstatus_to_exitcode(self.status)
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.argv[0]} did not exit within {timeout:.0f}s; output:\n{self.text!r}")

    def close(self):
        if not self.exited():
            for sig, bound in ((signal.SIGTERM, scaled(5)), (signal.SIGKILL, scaled(5))):
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + bound
                while not self.exited() and time.monotonic() < deadline:
                    time.sleep(0.02)
                if self.exited():
                    break
        try:
            os.close(self.fd)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------------------
# Read your writes.


def check_read_your_writes(redis_server: RedisServer, read_b: Callable[[], object], old, write_a: Callable[[], object],
                           new, what: str = "", hit_timeout: float = scaled(3)):
    """Client B reads a key through the proxy until a read is a cache hit (the backend's GET count does not
    move; normally the second read), client A then writes it through the proxy, and B's very next read (no
    sleep, no polling) must return `new`.

    More than two reads are allowed before the hit because, in tracking mode, Redis's invalidation message
    for an earlier write of the key (sent on respcache's separate invalidation connection) may arrive just
    after B's first read filled the entry and evict it: a harmless extra miss, never a stale read."""
    label = f" ({what})" if what else ""
    first = read_b()
    assert first == old, f"B's first read{label}: {first!r}, expected {old!r}"
    deadline = time.monotonic() + hit_timeout
    reads = 1
    while True:
        before = redis_server.get_calls()
        again = read_b()
        reads += 1
        assert again == old, f"B's read #{reads}{label}: {again!r}, expected {old!r}"
        if redis_server.get_calls() == before:
            break  # a cache hit
        assert time.monotonic() < deadline, \
            f"B's reads{label} were never served from the cache: each one ran a GET in Redis ({reads} reads)"
    write_a()
    fresh = read_b()
    assert fresh == new, f"B read {fresh!r} right after A's write{label}; expected {new!r} (stale cache entry?)"


def read_your_writes_cases(key: str) -> List[tuple]:
    """(name, write command, value after the write) for one key holding b'10' before the write: the write
    families that must invalidate a cached string."""
    return [
        ("SET", ["SET", key, "11"], b"11"),
        ("INCR", ["INCR", key], b"11"),
        ("INCRBY", ["INCRBY", key, "5"], b"15"),
        ("APPEND", ["APPEND", key, "x"], b"10x"),
        ("SETRANGE", ["SETRANGE", key, "0", "2"], b"20"),
        ("DEL", ["DEL", key], None),
        ("UNLINK", ["UNLINK", key], None),
        ("GETDEL", ["GETDEL", key], None),
        ("GETSET", ["GETSET", key, "12"], b"12"),
        ("MSET", ["MSET", "other:" + key, "x", key, "13"], b"13"),
        ("PEXPIREAT in the past", ["PEXPIREAT", key, "1"], None),
        ("EXPIRE 0", ["EXPIRE", key, "0"], None),
    ]

