"""node-redis 6 (npm `redis`, pinned in e2e/node/package.json) through respcache, with its defaults (RESP3).

e2e/node/node_redis_test.js does the client side. The families basics, pipelines, multi and pubsub run on
their own; csc (node-redis's `clientSideCache`, which turns on CLIENT TRACKING and keeps replies in the
client) is driven from here, step by step over the script's stdin/stdout: this side checks Redis's own
INFO commandstats with a direct client (a read served from the client's cache reaches neither respcache nor
Redis) and makes the writes straight to Redis, behind respcache's back; the script then polls, bounded, until
its reads return the new value.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from coherence_lib import proxy_info
from conftest import scaled

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "node_redis_test.js"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (make deps installs nodejs)")
    pkg = NODE_DIR / "node_modules" / "redis" / "package.json"
    assert pkg.is_file(), f"node-redis is not installed in {NODE_DIR}: run `make deps` (npm ci there)"
    version = json.loads(pkg.read_text())["version"]
    assert version.startswith("6."), f"node_modules/redis is {version}, expected the pinned 6.x"
    return node


class NodeScript:
    """node_redis_test.js running with pipes: stdout lines are queued as they come (bounded reads)."""

    def __init__(self, node: str, port: int, families, env_extra=None):
        env = dict(os.environ)
        env.update({"E2E_NODE_TIMEOUT_MS": str(int(scaled(45) * 1000)), "E2E_SOON_MS": str(int(scaled(2) * 1000))})
        env.update(env_extra or {})
        self.proc = subprocess.Popen([node, str(SCRIPT), str(port), *families], cwd=str(NODE_DIR), env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: "queue.Queue" = queue.Queue()
        self.out: list = []
        self.err: list = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines, self.out), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, None, self.err), daemon=True).start()

    @staticmethod
    def _pump(stream, q, acc):
        for line in stream:
            acc.append(line)
            if q is not None:
                q.put(line.rstrip("\n"))
        if q is not None:
            q.put(None)

    def next_line(self, timeout: float):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"node_redis_test.js said nothing for {timeout:.0f}s:\n{self.output()}") from None

    def answer(self, text: str):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float) -> int:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=scaled(10))
            raise AssertionError(f"node_redis_test.js did not finish within {timeout:.0f}s:\n{self.output()}") from None

    def output(self) -> str:
        return "".join(self.out) + "".join(self.err)


def _check_output(out: str, families):
    assert "all checks passed" in out, out
    for f in families:
        assert f"ok: {f}" in out, out


@pytest.mark.timeout(90)
def test_node_redis_defaults_resp3(proxy, redis_server):
    """node-redis 6 with its defaults (RESP3): strings, hashes, sets, doubles, errors, auto-pipelining and
    execAsPipeline, MULTI/EXEC with WATCH (WatchError) and an error inside EXEC, pub/sub on a duplicate()
    connection (messages in order, ordinary commands on the subscribed RESP3 connection)."""
    node = _node()
    families = ["basics", "pipelines", "multi", "pubsub"]
    t0 = time.monotonic()
    script = NodeScript(node, proxy.port, families, {"E2E_NO_DRIVER": "1"})
    rc = script.finish(scaled(60))
    out = script.output()
    print(out)
    print(f"node-redis families took {time.monotonic() - t0:.2f}s")
    assert rc == 0, f"node_redis_test.js failed (exit {rc}):\n{out}"
    _check_output(out, families)


def _proxy_reads(rc) -> int:
    info = proxy_info(rc)
    return int(info["cache_hits"]) + int(info["cache_misses"])


def _drive(script: NodeScript, handlers) -> dict:
    """Answers the script's SYNC lines: handlers[step](data) returns None (go) or a problem (the family
    fails with it). Returns {step: data} of every step reached."""
    steps = {}
    deadline = time.monotonic() + scaled(60)
    while True:
        line = script.next_line(max(1.0, deadline - time.monotonic()))
        if line is None:
            return steps
        if not line.startswith("SYNC "):
            continue
        _, step, data = line.split(" ", 2)
        steps[step] = json.loads(data)
        if step == "abort":
            return steps
        handler = handlers.get(step)
        problem = handler(steps[step]) if handler else None
        script.answer("go" if problem is None else f"fail: {problem}")
        if problem:
            return steps


def _run_driven(node, port, family, handlers, expected_steps):
    script = NodeScript(node, port, [family])
    try:
        steps = _drive(script, handlers)
        rc = script.finish(scaled(30))
    finally:
        if script.proc.poll() is None:
            script.proc.kill()
            script.proc.wait(timeout=scaled(10))
    out = script.output()
    print(out)
    assert rc == 0, f"node_redis_test.js {family} failed (exit {rc}):\n{out}"
    _check_output(out, [family])
    for step in expected_steps:
        assert step in steps, f"step {step} never reached:\n{out}"
    return steps


@pytest.mark.timeout(90)
def test_node_redis_client_side_cache(proxy, redis_server):
    """clientSideCache: a second read is served from node-redis's own cache (Redis's cmdstat_get does not
    move, nor do respcache's hits and misses: the GET never left the client); a direct write to Redis reaches
    the client's cache through respcache's invalidation push within the bound (the next reads return the
    new value); the same for HGETALL and HSET; a direct DEL; and a direct FLUSHALL empties the client's cache."""
    node = _node()
    direct = redis_server.client()
    direct.set("csc:k", "v1")
    direct.hset("csc:h", "f", "1")
    baseline = {}

    def read1(_):
        baseline["get"] = redis_server.get_calls()
        baseline["proxy"] = _proxy_reads(proxy)

    def read2(_):
        gets, proxied = redis_server.get_calls(), _proxy_reads(proxy)
        if gets != baseline["get"]:
            return f"the second GET reached Redis: cmdstat_get {baseline['get']} -> {gets}"
        if proxied != baseline["proxy"]:
            return f"the second GET reached respcache: hits+misses {baseline['proxy']} -> {proxied}"
        assert direct.set("csc:k", "v2")  # straight to Redis, behind respcache's back
        return None

    def fresh(_):
        baseline["hgetall"] = redis_server.commandstats().get("hgetall", 0)

    def hash_cached(_):
        n = redis_server.commandstats().get("hgetall", 0) - baseline["hgetall"]
        if n != 1:
            return f"two HGETALLs by the client reached Redis {n} times, expected 1 (the second is cached)"
        direct.hset("csc:h", "f", "2")
        return None

    def before_del(_):
        assert direct.delete("csc:k") == 1

    def before_flush(_):
        assert direct.flushall()

    handlers = {"read1": read1, "read2": read2, "fresh": fresh, "hash-cached": hash_cached,
                "before-del": before_del, "before-flush": before_flush}
    steps = _run_driven(node, proxy.port, "csc", handlers,
                        ("read1", "read2", "fresh", "hash-cached", "hash-fresh", "before-del", "before-flush", "done"))
    print(f"direct SET seen by the client after {steps['fresh']['ms']} ms ({steps['fresh']['reads']} reads, "
          f"{steps['fresh']['fromCache']} from its cache); HSET after {steps['hash-fresh']['ms']} ms; "
          f"DEL after {steps['before-flush']['ms']} ms; FLUSHALL emptied the client cache in "
          f"{steps['done']['flushMs']} ms")


@pytest.mark.timeout(90)
def test_node_redis_client_side_cache_read_under_watch(proxy, redis_server):
    """node-redis caches a GET made while a WATCH is active like any other (respcache sends that GET on the
    client's dedicated connection): a direct write of the key must reach the client's cache all the same."""
    node = _node()
    direct = redis_server.client()
    direct.set("csc:w", "old")

    def watch_read(_):
        assert direct.set("csc:w", "new")

    steps = _run_driven(node, proxy.port, "cscwatch", {"watch-read": watch_read}, ("watch-read", "watch-fresh"))
    print(f"direct SET of a key read under WATCH seen after {steps['watch-fresh']['ms']} ms")
