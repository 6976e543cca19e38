"""Faults injected under a steady pipelined load whose every reply is checked (faultlib.CheckedLoad):
the backend stopped with SIGSTOP and resumed, killed and restarted on the same port, a relay that cuts
the connection in the middle of a large reply, and a relay that black-holes it.

For each fault, asserted: every request gets exactly one reply, in order, and each is either a value the
key may hold or `-ERR backend unavailable: ...` (never a wrong or stale value, never a missing or extra
reply, never a connection closed by respcache); no reply takes longer than --request-timeout plus a
margin (REPLY_BOUND); once the fault ends, respcache recovers by itself (every client gets a wholly
correct pipeline, INFO proxy shows the backend up and the invalidation channel live), after which no
pipeline gets an error; and what Redis holds at the end is, key by key, a value the load may have left.

Time to recover (fault end -> the first reply of a wholly correct pipeline sent after it, by the first
client and by every client) is printed as `recovery <fault>: ...` (run with -s to see it) and recorded as
a property of the test (pytest --junitxml)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import RespError, encode_command, scaled, wait_until
from faultlib import CheckedLoad, Relay
from opslib import proxy_info

REQUEST_TIMEOUT_S = 1.0
RESPCACHE_ARGS = ["--request-timeout", "1s", "--connect-timeout", "500ms"]
# The longest wait for any one reply: the request timeout, a connect timeout before it, and a wide margin
# for a loaded machine. A reply later than this is a hang.
REPLY_BOUND = scaled(REQUEST_TIMEOUT_S + 5.0)
FAULT_SECONDS = 3.0  # how long each fault lasts: past the request timeout and the channel's loss detection
BIG_VALUE = b"B" * (2 * 1024 * 1024)  # over --max-value-size (1mb): never cached, always through the relay
BIG_MARKER = b"$%d\r\n" % len(BIG_VALUE)


def warm(load: CheckedLoad):
    wait_until(lambda: load.counts()[0] >= 400 or load.problems, scaled(30), "load before the fault")
    assert load.problems == [], load.summary()
    assert load.counts()[1] == 0, f"errors before any fault: {load.summary()}"


def recover(load: CheckedLoad, rc, fault_end: float, what: str, record_property) -> float:
    """Waits until every client has a wholly correct pipeline sent after `fault_end` and respcache shows
    the backend up with the channel live; then asserts that load sent afterwards gets no error at all.
    Prints and records the recovery time; returns the time (monotonic) the check started."""
    clients = len(load.threads)

    def every_client_served():
        if load.problems:
            return "problems"
        try:
            return load.recovery(fault_end)
        except AssertionError:
            return None

    recovered = wait_until(every_client_served, scaled(30), f"every client served after {what}", interval=0.05)
    assert load.problems == [], load.summary()
    first, last = recovered
    print(f"\nrecovery {what}: first correct reply {first * 1000:.0f} ms, every client {last * 1000:.0f} ms "
          f"after the fault ended")
    record_property(f"recovery_first_ms_{what}", round(first * 1000))
    record_property(f"recovery_all_ms_{what}", round(last * 1000))

    def settled():
        info = proxy_info(rc.port)
        return info["backend_state"] == "up" and info["invalidation_channel"] == "live"

    wait_until(settled, scaled(30), f"backend up and invalidation channel live after {what}")
    settled_at = time.monotonic()
    errors_before = load.counts()[1]
    wait_until(lambda: load.correct_pipelines_sent_after(settled_at) >= 20 * clients or load.problems,
               scaled(30), f"load after {what}")
    assert load.problems == [], load.summary()
    assert load.correct_pipelines_sent_after(settled_at) >= 20 * clients
    late_errors = load.counts()[1] - errors_before
    # Errors of pipelines sent before settled_at may still be arriving; none sent after it may fail.
    assert all(r.all_correct for client in load.results for r in client if r.sent >= settled_at), \
        f"error replies after respcache had recovered from {what} ({late_errors} since): {load.summary()}"
    return settled_at


def finish(load: CheckedLoad, direct):
    load.stop()
    assert load.problems == [], load.summary()
    assert load.sent == load.replied == load.correct + load.errors, load.summary()
    assert load.errors > 0, f"the fault was not felt: {load.summary()}"
    assert load.unexplained_values(direct) == []


def held_fault(rc, backend, inject, heal, what: str, record_property):
    """Under checked load through `rc`: inject(load), wait for the first error reply, keep the fault for
    FAULT_SECONDS, heal(load) (also on failure), then check the recovery (see recover) and the whole run
    (see finish); `backend` is the RedisServer behind."""
    load = CheckedLoad(rc.port, reply_timeout=REPLY_BOUND).start()
    try:
        warm(load)
        inject(load)
        try:
            wait_until(lambda: load.counts()[1] > 0 or load.problems, REPLY_BOUND, f"error replies: {what}")
            time.sleep(FAULT_SECONDS)  # the fault's duration is the point: it lasts this long
        finally:
            heal(load)
        recover(load, rc, time.monotonic(), what, record_property)
    finally:
        load.stop()
    finish(load, backend.client())


@pytest.mark.timeout(120)
def test_backend_stopped_and_resumed(respcache, redis_server, record_property):
    rc = respcache.start(RESPCACHE_ARGS, backend=redis_server)
    held_fault(rc, redis_server, lambda load: os.kill(redis_server.pid, signal.SIGSTOP),
               lambda load: os.kill(redis_server.pid, signal.SIGCONT), "sigstop", record_property)


@pytest.mark.timeout(120)
def test_backend_killed_and_restarted_on_the_same_port(respcache, redis_server, record_property):
    rc = respcache.start(RESPCACHE_ARGS, backend=redis_server)

    def restart(load):
        load.restarting()  # without persistence: requests sent from now on must not see the old values
        redis_server.start()

    held_fault(rc, redis_server, lambda load: redis_server.stop(signal.SIGKILL), restart, "kill_restart",
               record_property)

@pytest.mark.timeout(150)
def test_connection_cut_in_the_middle_of_a_reply(respcache, redis_server, record_property):
    """The relay resets the connection that carries a 2 MB reply 100 KB into its data, three times."""
    redis_server.client().set("big", BIG_VALUE)
    with Relay(redis_server.port) as relay:
        rc = respcache.start(RESPCACHE_ARGS, backend=relay.port)
        load = CheckedLoad(rc.port, reply_timeout=REPLY_BOUND, big=("big", BIG_VALUE)).start()
        try:
            warm(load)
            for n in range(3):
                relay.cut_in_reply(BIG_MARKER, 100_000)
                wait_until(lambda: len(relay.cuts) > n or load.problems, scaled(20), f"cut {n + 1}")
                assert load.problems == [], load.summary()
                recover(load, rc, relay.cuts[n], "cut_mid_reply" if n == 0 else f"cut_mid_reply_{n + 1}",
                        record_property)
        finally:
            load.stop()
        assert relay.accepted > 3, "respcache did not reconnect through the relay"
        finish(load, redis_server.client())


@pytest.mark.timeout(120)
def test_backend_black_holed(respcache, redis_server, record_property):
    """The relay forwards nothing either way for FAULT_SECONDS (connections kept, new ones accepted), then
    forwards again what waited: replies of requests respcache has already answered with an error arrive
    late on the connections it kept."""
    with Relay(redis_server.port) as relay:
        rc = respcache.start(RESPCACHE_ARGS, backend=relay.port)
        held_fault(rc, redis_server, lambda load: relay.black_hole(), lambda load: relay.heal(), "black_hole",
                   record_property)


@pytest.mark.timeout(90)
def test_a_command_slower_than_the_timeout_fails_only_itself(respcache, redis_server):
    """DEBUG SLEEP 1.5 through respcache (--request-timeout 1s) under the checked load. 0.8 s into the
    sleep, four new clients each send a SET and a GET: Redis answers them 0.7 s later, within their
    timeout, so each must get its correct replies, although the load's requests sent before the sleep
    time out (and get the timeout error, as the sleeper does) 0.2 s after the probes were sent."""
    rc = respcache.start(RESPCACHE_ARGS, backend=redis_server)
    load = CheckedLoad(rc.port, reply_timeout=REPLY_BOUND).start()
    probes = [rc.raw(timeout=REPLY_BOUND) for _ in range(4)]
    try:
        warm(load)
        with rc.raw() as sleeper:
            sleeper.send_command("DEBUG", "SLEEP", "1.5")
            time.sleep(0.8)  # the point of the test: probes sent while Redis sleeps, 0.7 s before it wakes
            for i, probe in enumerate(probes):
                probe.send(encode_command("SET", f"probe:{i}", f"p{i}") + encode_command("GET", f"probe:{i}"))
            replies = [probe.read_replies(2) for probe in probes]
            slept = sleeper.read_reply()
        wait_until(lambda: load.counts()[0] >= 40 or load.problems, scaled(30), "load after the sleep")
    finally:
        load.stop()
        for probe in probes:
            probe.close()
    assert load.problems == [], load.summary()
    assert isinstance(slept, RespError) and slept.message.startswith("ERR backend unavailable: no reply"), slept
    assert replies == [[b"OK", f"p{i}".encode()] for i in range(len(probes))]
