"""Issue 5, points 1 to 3: INFO with its `# Proxy` section, /metrics, /healthz and /readyz, and the JSON log
with its rate limit on connection errors."""

import re

import pytest

from conftest import RawClient, free_port, parse_json_log, run_respcache, scaled, wait_until
from opslib import PROXY_FIELDS, http_get, metrics, parse_info, proxy_info, subscribe_warm


def start_with_metrics(respcache, backend, extra=()):
    """respcache with --metrics-port on a free port (another is tried if that one was taken meanwhile)."""
    for _ in range(3):
        port = free_port()
        try:
            return respcache.start(["--metrics-port", str(port), *extra], backend=backend), port
        except (AssertionError, RuntimeError):
            if "cannot serve metrics" not in respcache.instances[-1].log:
                raise
    raise AssertionError("no free port for --metrics-port after 3 attempts")


# ---------------------------------------------------------------------------------------------------
# 1. INFO.


def test_info_is_the_backends_info_plus_a_proxy_section(proxy):
    version = run_respcache(["--version"]).stdout.split()[1]
    with proxy.raw() as c:
        full = c.command("INFO")
        assert isinstance(full, bytes), full
        sections = parse_info(full)
        # The backend's default sections, then the proxy's, last.
        for name in ("Server", "Clients", "Memory", "Stats", "Replication", "CPU", "Keyspace"):
            assert name in sections, (name, list(sections))
        assert list(sections)[-1] == "Proxy"
        assert "redis_version" in sections["Server"]
        proxy_section = sections["Proxy"]
        for field in PROXY_FIELDS:
            assert field in proxy_section, (field, proxy_section)
        assert proxy_section["proxy_version"] == version
        assert proxy_section["io_threads"] == "2"  # the harness starts it with --threads 2
        assert proxy_section["backend_state"] == "up"
        assert int(proxy_section["uptime_in_seconds"]) >= 0
        assert int(proxy_section["connected_clients"]) >= 1

        # INFO proxy: the proxy's section alone.
        only = parse_info(c.command("INFO", "proxy"))
        assert list(only) == ["Proxy"]
        assert set(PROXY_FIELDS) <= set(only["Proxy"])
        # Case-insensitive, as Redis's section names are.
        assert list(parse_info(c.command("INFO", "PROXY"))) == ["Proxy"]
        # A backend section alone comes without the proxy's; `INFO all` has both.
        assert list(parse_info(c.command("INFO", "server"))) == ["Server"]
        everything = parse_info(c.command("INFO", "all"))
        assert "Server" in everything and "Proxy" in everything


def test_info_counters_hits_misses_ratio_evictions_invalidations_keys_bytes(respcache, redis_server):
    rc = respcache.start(["--capacity", "3"], backend=redis_server)
    direct = redis_server.client()
    for i in range(6):
        direct.set(f"k{i}", f"value-{i}" * 10)
    before = proxy_info(rc.port)
    assert int(before["cache_hits"]) == 0 and int(before["cache_misses"]) == 0
    assert before["cache_hit_ratio"] == "0.0000"
    assert int(before["cached_keys"]) == 0 and int(before["cached_bytes"]) == 0
    assert int(before["cache_capacity"]) == 3

    with rc.raw() as c:
        assert c.command("GET", "k0") == b"value-0" * 10  # miss, filled
        assert c.command("GET", "k0") == b"value-0" * 10  # hit
        assert c.command("GET", "k0") == b"value-0" * 10  # hit
        info = proxy_info(rc.port)
        assert (int(info["cache_hits"]), int(info["cache_misses"])) == (2, 1)
        assert info["cache_hit_ratio"] == "0.6667"
        assert int(info["cached_keys"]) == 1
        assert int(info["cached_bytes"]) >= len(b"value-0" * 10)
        assert int(info["total_commands_processed"]) >= int(before["total_commands_processed"]) + 3
        assert int(info["cache_evictions"]) == 0

        # Five more keys through a cache of three: at least three evictions, never more than three keys.
        for i in range(1, 6):
            assert c.command("GET", f"k{i}") == f"value-{i}".encode() * 10
        info = proxy_info(rc.port)
        assert int(info["cache_misses"]) == 6
        assert int(info["cache_evictions"]) >= 3, info
        assert int(info["cached_keys"]) == 3, info

        # A write through the proxy invalidates its key.
        inval_before = int(info["cache_invalidations"])
        assert c.command("GET", "k5") == b"value-5" * 10  # hit: k5 is cached
        assert c.command("SET", "k5", "new") == b"OK"
        info = proxy_info(rc.port)
        assert int(info["cache_invalidations"]) > inval_before, info
        assert int(info["cached_keys"]) == 2, info
        # A write that bypasses the proxy invalidates through client tracking.
        assert c.command("GET", "k4") == b"value-4" * 10
        inval_before = int(info["cache_invalidations"])
        direct.set("k4", "elsewhere")
        wait_until(lambda: int(proxy_info(rc.port)["cache_invalidations"]) > inval_before, scaled(10),
                   "the tracking invalidation of k4 to be counted")
        assert int(proxy_info(rc.port)["invalidation_messages"]) >= 1
        assert c.command("GET", "k4") == b"elsewhere"


def test_info_counts_expirations_with_a_short_ttl(respcache, redis_server):
    rc = respcache.start(["--ttl", "200ms", "--reaper-interval", "20ms"], backend=redis_server)
    redis_server.client().set("short", "lived")
    with rc.raw() as c:
        assert c.command("GET", "short") == b"lived"
    wait_until(lambda: int(proxy_info(rc.port)["cache_expirations"]) >= 1, scaled(10), "an expiration")
    info = proxy_info(rc.port)
    assert int(info["cached_keys"]) == 0 and int(info["cached_bytes"]) == 0, info
    assert int(info["cache_ttl_ms"]) == 200


def test_info_connected_clients_pinned_connections_and_in_flight(proxy, redis_server):
    def clients():
        # proxy_info's own connection is one of them.
        return int(proxy_info(proxy.port)["connected_clients"]) - 1

    wait_until(lambda: clients() == 0, scaled(10), "no other client connected")
    held = [proxy.raw() for _ in range(3)]
    try:
        for c in held:
            assert c.command("PING") == b"PONG"
        assert clients() == 3
        assert int(proxy_info(proxy.port)["pinned_connections"]) == 0

        # A client in MULTI holds a dedicated backend connection until EXEC.
        tx = held[0]
        assert tx.command("MULTI") == b"OK"
        assert tx.command("SET", "in-tx", "1") == b"QUEUED"
        assert int(proxy_info(proxy.port)["pinned_connections"]) == 1
        assert tx.command("EXEC") == [b"OK"]
        wait_until(lambda: int(proxy_info(proxy.port)["pinned_connections"]) == 0, scaled(10), "EXEC to unpin")

        # So does a subscriber, until it leaves.
        sub = held[1]
        subscribe_warm(sub, "news")
        assert int(proxy_info(proxy.port)["pinned_connections"]) == 1
        sub.close()
        wait_until(lambda: int(proxy_info(proxy.port)["pinned_connections"]) == 0, scaled(10),
                   "the subscriber's connection to be released")
        wait_until(lambda: clients() == 2, scaled(10), "the subscriber to be counted out")

        # A request waiting for the backend is in flight.
        blocked = held[2]
        blocked.send_command("BLPOP", "empty-list", "2")
        wait_until(lambda: int(proxy_info(proxy.port)["backend_inflight_requests"]) >= 1, scaled(10),
                   "the BLPOP to be in flight")
        redis_server.client().rpush("empty-list", "x")
        assert blocked.read_reply() == [b"empty-list", b"x"]
        wait_until(lambda: int(proxy_info(proxy.port)["backend_inflight_requests"]) == 0, scaled(10),
                   "nothing in flight")
    finally:
        for c in held:
            c.close()
    wait_until(lambda: clients() == 0, scaled(10), "every client counted out")


def test_first_subscribe_without_an_idle_dedicated_connection_is_answered(proxy, redis_server):
    with RawClient(proxy.port, timeout=scaled(5)) as c:
        assert c.command("SUBSCRIBE", "first") == [b"subscribe", b"first", 1]
        assert redis_server.client().publish("first", "hello") == 1
        assert c.read_reply() == [b"message", b"first", b"hello"]


# ---------------------------------------------------------------------------------------------------
# 2. Prometheus, /healthz and /readyz.

FAMILIES = {  # Prometheus name -> (INFO proxy field, type)
    "respcache_cache_hits_total": ("cache_hits", "counter"),
    "respcache_cache_misses_total": ("cache_misses", "counter"),
    "respcache_cache_evictions_total": ("cache_evictions", "counter"),
    "respcache_cache_expirations_total": ("cache_expirations", "counter"),
    "respcache_cache_invalidations_total": ("cache_invalidations", "counter"),
    "respcache_cache_keys": ("cached_keys", "gauge"),
    "respcache_cache_bytes": ("cached_bytes", "gauge"),
    "respcache_pinned_connections": ("pinned_connections", "gauge"),
    "respcache_backend_reconnects_total": ("backend_reconnects", "counter"),
    "respcache_backend_inflight_requests": ("backend_inflight_requests", "gauge"),
    "respcache_forwarded_commands_total": ("forwarded_commands", "counter"),
    "respcache_connected_clients": ("connected_clients", "gauge"),
    "respcache_protocol_errors_total": ("protocol_errors", "counter"),
}


def test_metrics_endpoint_is_prometheus_text_with_the_info_figures_and_latency_histograms(respcache, redis_server):
    rc, mport = start_with_metrics(respcache, redis_server, ["--capacity", "2"])
    assert re.search(rf"respcache started.*\bmetrics_port={mport}\b", rc.log), rc.log
    direct = redis_server.client()
    for i in range(4):
        direct.set(f"m{i}", i)
    with rc.raw() as c:
        for i in range(4):
            assert c.command("GET", f"m{i}") == str(i).encode()  # 4 misses, 2 evictions
        for _ in range(5):
            assert c.command("GET", "m3") == b"3"  # 5 hits
        assert c.command("SET", "m3", "x") == b"OK"  # an invalidation
        assert c.command("GET", "nothing") is None  # a miss

        # Taken while this client is the only one, and idle: the same figures in both.
        m = metrics(mport)
        info = parse_info(c.command("INFO", "proxy"))["Proxy"]
    for name, (field, kind) in FAMILIES.items():
        assert m.types.get(name) == kind, (name, m.types.get(name))
        assert name in m.helps, name
        assert m.value(name) == float(info[field]), (name, m.value(name), info[field])
    assert m.value("respcache_cache_hits_total") == 5
    assert m.value("respcache_cache_misses_total") == 5
    assert m.value("respcache_cache_evictions_total") >= 2
    assert m.value("respcache_backend_up") == 1
    assert m.value("respcache_invalidation_channel_up") == 1
    assert m.value("respcache_uptime_seconds") >= 0

    # Latency histograms of hits and misses: cumulative buckets, +Inf equal to the count.
    assert m.types["respcache_request_duration_seconds"] == "histogram"
    for result, expected in (("hit", 5), ("miss", 5)):
        buckets = m.buckets("respcache_request_duration_seconds", result=result)
        assert len(buckets) >= 3, buckets
        assert buckets[-1][0] == float("inf")
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), f"{result} buckets not cumulative: {buckets}"
        count = m.value("respcache_request_duration_seconds_count", result=result)
        assert buckets[-1][1] == count == expected, (result, buckets, count)
        assert m.value("respcache_request_duration_seconds_sum", result=result) > 0

    assert http_get(mport, "/healthz")[0] == 200
    assert http_get(mport, "/readyz") == (200, "ready\n")
    assert http_get(mport, "/no-such-page")[0] == 404


def test_readyz_follows_the_backend_and_info_reports_backend_state(respcache, redis_server):
    rc, mport = start_with_metrics(respcache, redis_server, ["--connect-timeout", "200ms", "--request-timeout", "500ms"])
    assert http_get(mport, "/readyz")[0] == 200
    assert proxy_info(rc.port)["backend_state"] == "up"

    redis_server.stop()
    status, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(http_get(mport, "/readyz")),
                              scaled(15), "/readyz to answer 503")
    assert body.startswith("not ready: ") and len(body.strip()) > len("not ready:"), body
    assert http_get(mport, "/healthz")[0] == 200  # the process is still up
    wait_until(lambda: proxy_info(rc.port)["backend_state"] == "down", scaled(15), "backend_state:down")
    info = proxy_info(rc.port)
    assert info["backend_last_error"] != "", info
    assert metrics(mport).value("respcache_backend_up") == 0

    redis_server.start()
    wait_until(lambda: http_get(mport, "/readyz")[0] == 200, scaled(20), "/readyz to answer 200 again")
    info = proxy_info(rc.port)
    assert info["backend_state"] == "up", info
    assert int(info["backend_reconnects"]) >= 1, info
    assert metrics(mport).value("respcache_backend_up") == 1


# ---------------------------------------------------------------------------------------------------
# 3. JSON logs, rate-limited connection errors.

PROTOCOL_ERROR = "closing client: protocol error"


@pytest.mark.timeout(90)
def test_json_log_and_rate_limited_connection_errors(respcache, redis_server):
    rc = respcache.start(["--log-format", "json"], backend=redis_server)
    burst = 300
    conns = [rc.raw() for _ in range(burst)]
    try:
        for c in conns:
            c.send(b"*1\r\n$abc\r\n")
        for c in conns:
            assert c.read_until_eof() == b"-ERR Protocol error: invalid bulk length\r\n"
    finally:
        for c in conns:
            c.close()
    wait_until(lambda: int(proxy_info(rc.port)["protocol_errors"]) == burst, scaled(10), "every error counted")

    def error_records():
        return [r for r in parse_json_log(rc.log) if r.get("message") == PROTOCOL_ERROR]

    logged = len(error_records())
    # At most 10 such lines a second are written: the burst leaves far fewer lines than clients.
    assert 1 <= logged <= burst // 5, logged

    # Once a new second begins, the next error's line says how many were held back.
    extra = 0

    def suppressed_reported():
        nonlocal extra
        extra += 1
        with rc.raw() as c:
            c.send(b"*1\r\n$abc\r\n")
            c.read_until_eof()
        return any("suppressed" in r for r in error_records())

    wait_until(suppressed_reported, scaled(15), "a line with a 'suppressed' field", interval=0.2)
    records = error_records()
    # Every error is either a line or counted in a later line's "suppressed".
    assert len(records) + sum(int(r.get("suppressed", 0)) for r in records) == burst + extra
    for r in records:
        assert r["level"] == "info" and isinstance(r.get("client"), int) and r.get("addr"), r
        assert r["error"] == "ERR Protocol error: invalid bulk length", r

    assert rc.stop() == 0
    all_records = parse_json_log(rc.log)  # every stderr line is one JSON object
    for r in all_records:
        for field in ("time", "level", "message"):
            assert isinstance(r.get(field), str) and r[field], (field, r)
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", r["time"]), r
    assert any(r["message"] == "respcache started" and r["port"] == rc.port for r in all_records)


def test_per_command_figures_and_hot_keys_in_info_and_metrics(respcache, redis_server):
    rc, mport = start_with_metrics(respcache, redis_server)
    r = redis_server.client()
    r.set("hot", "1")
    r.hset("h", "f", "v")
    r.set("odd,key=\n", "x")
    c = rc.client()
    for i in range(400):
        assert c.get("hot") == b"1"
        if i % 4 == 0:
            assert c.hget("h", "f") == b"v"
            assert c.get("odd,key=\n") == b"x"
    info = proxy_info(rc.port)
    assert info["cached_get"] == "hits=498,misses=2,partial=0"
    assert info["cached_hget"] == "hits=99,misses=1,partial=0"
    assert "hgetall" in info["cached_commands"].split(",")
    assert info["hot_key_1"].startswith("db=0,key=hot,reads="), info
    # Sampled: one read in 16 at random, so an estimate; 400 reads are far more than the others' 100.
    assert 200 <= int(info["hot_key_1"].split("reads=")[1]) <= 800
    odd = [v for k, v in info.items() if k.startswith("hot_key_") and "odd" in v]
    assert odd == [] or odd[0].startswith("db=0,key=odd\\x2ckey\\x3d\\x0a,reads="), odd
    m = metrics(mport)
    assert m.value("respcache_cached_command_hits_total", command="get") == 498
    assert m.value("respcache_cached_command_misses_total", command="hget") == 1
    assert m.value("respcache_hot_key_reads", rank="1", db="0", key="hot") == int(info["hot_key_1"].split("reads=")[1])
