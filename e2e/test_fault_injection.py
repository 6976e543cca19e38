"""Fault injection: three defects, each reproduced end to end against a real redis-server 7.0.

1. A busy script (Redis answering -BUSY) while the invalidation channel re-establishes itself must not
   leave the cache off for good: once the script is killed the channel is live again and GET hits again.
2. --client-output-buffer-limit bounds what respcache holds for a client that does not read: it is
   closed near the limit, not after buffering tens of times the limit.
3. An inline command line longer than Redis's 64 KB limit is refused with Redis's exact error and the
   connection closed, also when the whole line arrives in one read (not only when it arrives slowly).

Every wait is bounded (wait_until, socket timeouts, scaled()); everything is on 127.0.0.1; every process
is started and stopped (by pid) by the conftest fixtures."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from typing import Optional, Set

import pytest

from conftest import HOST, RawClient, RespError, encode_command, scaled, wait_until
from opslib import proxy_info, proxy_int, sees_eof


# ---------------------------------------------------------------------------------------------------
# Helpers of this file only.


def vm_hwm_kb(pid: int) -> int:
    """The peak resident set size of a process (VmHWM in /proc/<pid>/status), in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def tcp_peers_of(pid: int, remote_port: int) -> Set[int]:
    """Local ports of the ESTABLISHED IPv4 TCP connections that process `pid` holds to `remote_port`
    (from /proc/<pid>/fd and /proc/<pid>/net/tcp). Diagnostics only: it shows reconnections."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue  # closed meanwhile
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    ports = set()
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state == "01" and inode in inodes and int(remote.split(":")[1], 16) == remote_port:
                ports.add(int(local.split(":")[1], 16))
    return ports


# ---------------------------------------------------------------------------------------------------
# 1. The invalidation channel comes back after a busy script.


@pytest.mark.timeout(60)
def test_invalidation_channel_recovers_after_a_busy_script(respcache, redis_factory):
    """A Lua script that loops makes Redis answer every other command with -BUSY once it has run longer
    than busy-reply-threshold (Redis 7.0's name; lua-time-limit is its alias). Asserted: after SCRIPT
    KILL, `INFO proxy` shows invalidation_channel:live again within scaled(10) s, and a GET through the
    proxy is then a cache hit again (its second GET of a key does not reach Redis: cmdstat_get's calls do
    not move).

    Timings. Redis: --busy-reply-threshold 100 (accepted by 7.0 as a start argument and by CONFIG SET;
    CONFIG GET lua-time-limit then shows the same 100), so -BUSY starts 100 ms into the script. respcache:
    --request-timeout 500ms; the channel is PINGed every second and declared lost when no PONG came for
    request-timeout + 1 s, i.e. 2 to 3 s into the script (measured: about 2.1 s). It is then reset and
    reconnected at once (a working connection is retried without backoff), so its log-in (CLIENT SETNAME,
    CLIENT ID) and its SUBSCRIBE are sent while Redis still answers -BUSY. The script is kept running for
    1 s more after invalidation_channel:down is seen (a minimum time that is the point of the test: that
    re-establishment must happen, and be refused, while Redis is busy), then killed. Today SUBSCRIBE's
    -BUSY is taken as a stream reply and ignored, nothing retries, and the channel stays down (so the
    cache stays empty) for as long as respcache runs; reproduced in every run. The failure message lists
    respcache's TCP connections to Redis before and during the script, showing the reconnection made
    while Redis was busy."""
    redis_server = redis_factory.start("--busy-reply-threshold", "100")
    rc = respcache.start(["--request-timeout", "500ms"], backend=redis_server)
    assert proxy_info(rc.port)["invalidation_channel"] == "live"
    assert redis_server.client().set("greeting", "hello")
    before_script = tcp_peers_of(rc.pid, redis_server.port)

    script = RawClient(redis_server.port, timeout=scaled(30))
    try:
        script.send(encode_command("EVAL", "while true do end", 0))  # its reply is read after SCRIPT KILL
        wait_until(lambda: proxy_info(rc.port)["invalidation_channel"] == "down", scaled(10),
                   "invalidation_channel:down while the script runs")
        # A minimum elapsed time is the point here: the channel re-establishes itself (and is refused)
        # while Redis is still busy. Today that takes milliseconds after the loss; 1 s leaves a wide margin.
        time.sleep(scaled(1.0))
        during_script = tcp_peers_of(rc.pid, redis_server.port)
        with RawClient(redis_server.port, timeout=scaled(10)) as killer:
            assert killer.command("SCRIPT", "KILL") == b"OK"
        reply = script.read_reply()
        assert isinstance(reply, RespError) and "Script killed" in reply.message, reply
    finally:
        script.close()
    reconnected = sorted(during_script - before_script)
    context = (f"respcache's connections to Redis before the script {sorted(before_script)}, during it "
               f"{sorted(during_script)} (opened while busy: {reconnected})")

    def live():
        return proxy_info(rc.port)["invalidation_channel"] == "live"

    try:
        wait_until(live, scaled(10), "invalidation_channel:live after SCRIPT KILL")
    except AssertionError as e:
        info = proxy_info(rc.port)
        fields = {k: info[k] for k in ("invalidation_channel", "invalidation_channel_losses", "backend_state")}
        raise AssertionError(f"{e}; INFO proxy: {fields}; {context}") from None

    # Caching is back: the second GET of a key is served without Redis (retried, in case the first fill
    # raced with the data connections re-enabling tracking for the new channel).
    def second_get_is_a_hit():
        with rc.raw() as c:
            assert c.command("GET", "greeting") == b"hello"
            calls = redis_server.get_calls()
            assert c.command("GET", "greeting") == b"hello"
            return redis_server.get_calls() == calls

    wait_until(second_get_is_a_hit, scaled(10), "a GET through respcache to be a cache hit again")
    assert rc.running()


# ---------------------------------------------------------------------------------------------------
# 2. --client-output-buffer-limit is honoured with large forwarded replies.

LIMIT_MB = 64
VALUE_MB = 4
PIPELINED_GETS = 20000
# The bound on respcache's peak RSS growth. A correct proxy needs the limit (up to twice over while the
# buffer grows by doubling, or while one copy is being written), a few 4 MB replies in flight (being framed,
# being appended) and the backend connection's read buffer: a proxy that checks the limit as each reply
# arrives was measured at +87 MB. Today's code checks it only once the whole read batch of 744 GETs is
# answered: 3.1 GB of unwritten replies when it closes the client, +4.1 GB of VmHWM measured (46 times the
# limit).
HWM_GROWTH_BOUND_MB = 4 * LIMIT_MB


class PipelineSender(threading.Thread):
    """Writes `payload` on `sock` in chunks, never reading, until it is all sent or the socket fails
    (closed by the server, or no progress for the socket's timeout)."""

    def __init__(self, sock: socket.socket, payload: bytes, chunk: int = 16384):
        super().__init__(daemon=True)
        self.sock, self.payload, self.chunk = sock, payload, chunk
        self.sent = 0
        self.error: Optional[BaseException] = None

    def run(self):
        try:
            while self.sent < len(self.payload):
                self.sock.sendall(self.payload[self.sent:self.sent + self.chunk])
                self.sent = min(len(self.payload), self.sent + self.chunk)
        except OSError as e:  # BrokenPipe / ConnectionReset once closed; socket.timeout if stalled
            self.error = e


@pytest.mark.timeout(90)
def test_output_buffer_limit_is_not_overshot_by_large_forwarded_replies(respcache, redis_server):
    """A client pipelines 20,000 `GET big` (a 4 MB value, over --max-value-size 1mb so never cached:
    every GET is forwarded) with --client-output-buffer-limit 64mb, and never reads. Asserted:
    respcache's peak RSS (VmHWM, read before and after) grew by less than 4 x the limit (256 MB);
    output_buffer_disconnects counts the client within scaled(40) s; the sender has then finished
    (everything sent, or its socket failed) and the client's socket reaches EOF or a reset within the
    socket timeout. The measured figures are in the assertion message.

    respcache reads the pipeline 16 KB (744 GETs) at a time and forwards each read batch whole, so Redis
    runs 744 GETs and queues ~3 GB of replies whatever the proxy does; what is asserted is that the proxy
    does not keep them. A correct proxy closes the client after ~17 replies and discards the rest as it
    reads them (+87 MB, 2 to 8 s measured). Today's code gathers every reply of the batch before it looks
    at the limit: +4.1 GB, 11 to 22 s."""
    value = b"v" * (VALUE_MB * 1024 * 1024)
    assert redis_server.client().set("big", value)
    # --request-timeout 30s: Redis executes a read batch of 744 GETs before writing any of their 3 GB of
    # replies, which can take more than the default 3 s on a loaded machine; the backend connection would
    # then be dropped and the GETs answered with short `-ERR backend unavailable` errors instead.
    rc = respcache.start(["--client-output-buffer-limit", f"{LIMIT_MB}mb", "--request-timeout", "30s"],
                         backend=redis_server)
    with rc.raw() as c:  # warm: one GET through, so that the idle peak includes a 4 MB reply
        assert c.command("GET", "big") == value
    hwm_before = vm_hwm_kb(rc.pid)
    gets_before = redis_server.get_calls()
    disconnects_before = proxy_int(rc.port, "output_buffer_disconnects")

    def disconnected() -> bool:
        return proxy_int(rc.port, "output_buffer_disconnects") > disconnects_before

    started = time.monotonic()
    slow = RawClient(rc.port, timeout=scaled(10))
    sender = PipelineSender(slow.sock, encode_command("GET", "big") * PIPELINED_GETS)
    counted = closed = False
    try:
        sender.start()
        # Polled slowly: an INFO connection that lands on the io thread busy with the replies waits its turn.
        try:
            counted = wait_until(disconnected, scaled(40), "output_buffer_disconnects to count the client",
                                 interval=0.25)
        except AssertionError:
            pass  # reported below, after the memory figures
        if counted:
            sender.join(timeout=scaled(10))
            closed = sees_eof(slow)  # reading only now: what the kernel held, then the end (or a reset)
    finally:
        slow.close()
        sender.join(timeout=scaled(10))
    elapsed = time.monotonic() - started
    hwm_after = vm_hwm_kb(rc.pid)
    growth_mb = (hwm_after - hwm_before) / 1024.0
    figures = (f"VmHWM {hwm_before / 1024:.0f} MB before, {hwm_after / 1024:.0f} MB after (+{growth_mb:.0f} MB, "
               f"bound {HWM_GROWTH_BOUND_MB} MB); {sender.sent} of {len(sender.payload)} bytes sent "
               f"(sender: {sender.error!r}); Redis ran {redis_server.get_calls() - gets_before} GETs; "
               f"output_buffer_disconnects counted: {counted}; {elapsed:.1f} s")
    assert growth_mb < HWM_GROWTH_BOUND_MB, f"respcache's peak memory overshot the limit: {figures}"
    assert counted, f"output_buffer_disconnects did not count the client within {scaled(40):.0f} s: {figures}"
    assert not sender.is_alive(), f"the sender is still blocked after the disconnect: {figures}"
    assert closed, f"respcache did not close the client: {figures}"
    assert rc.running()
    with rc.raw() as c:
        assert c.command("PING") == b"PONG"


# ---------------------------------------------------------------------------------------------------
# 3. The inline length limit holds however the bytes arrive.

TOO_BIG_INLINE = b"-ERR Protocol error: too big inline request\r\n"


def reply_then_close(port: int, payload: bytes):
    """Sends `payload` in one sendall, then reads until the server closes the connection (a reset counts
    as the close) or nothing more arrives for scaled(5) s. Returns (bytes received, closed)."""
    with socket.create_connection((HOST, port), timeout=scaled(5)) as s:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = bytearray()
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                return bytes(received), True
            except socket.timeout:
                return bytes(received), False
            if not data:
                return bytes(received), True
            received += data


def test_inline_line_over_64kb_in_one_read_is_refused_as_redis_does(proxy, redis_server):
    """One inline line of 100,002 bytes (with its CRLF) sent in one sendall: a bare word, then a
    realistic `SET k <99,994 bytes>`. Asserted, side by side for each: Redis 7.0 answers exactly
    `-ERR Protocol error: too big inline request` and closes the connection; respcache answers the same
    bytes and closes too (and the SET is not executed). Today respcache takes the line whole when it
    arrives in one read: it answers `-ERR unknown command 'AAAA...'` (and `+OK` for the SET, which Redis
    then holds), and keeps the connection open (nothing more arrives within the read bound)."""
    for line in (b"A" * 100000, b"SET k " + b"v" * 99994):
        payload = line + b"\r\n"
        assert len(payload) == 100002
        from_redis = reply_then_close(redis_server.port, payload)
        assert from_redis == (TOO_BIG_INLINE, True), (from_redis[0][:200], from_redis[1])
        from_proxy = reply_then_close(proxy.port, payload)
        assert (from_proxy[0][:200], from_proxy[1]) == (from_redis[0], True), \
            f"{line[:10]!r}... : respcache answered {from_proxy[0][:200]!r}, closed={from_proxy[1]}"
        assert redis_server.client().exists("k") == 0
    with proxy.raw() as c:
        assert c.command("PING") == b"PONG"
