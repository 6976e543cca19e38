"""--warm-file: the reads of the hottest entries are saved (never their values) at shutdown and every
--warm-interval, and fetched anew from Redis at start-up, through tracking, before respcache reports
ready. What reached Redis is read from its INFO commandstats; values changed while respcache was down
must never be served.
"""

import pytest

from conftest import scaled, wait_until


def commandstats_of(redis_server, *names):
    stats = redis_server.commandstats()
    return {n: stats.get(n, 0) for n in names}


def test_a_warm_restart_serves_hits_and_nothing_stale(respcache, redis_server, tmp_path):
    warm = tmp_path / "respcache.warm"
    r = redis_server.client()
    r.set("a", "1")
    r.hset("h", mapping={"f": "v1", "g": "w"})
    r.rpush("l", "x", "y")
    rc = respcache.start(["--warm-file", str(warm)], backend=redis_server)
    c = rc.client()
    assert c.get("a") == b"1"
    assert c.hgetall("h") == {b"f": b"v1", b"g": b"w"}
    assert c.get("nothing") is None
    with rc.raw() as c3:
        c3.command("HELLO", "3")
        assert c3.command("LRANGE", "l", "0", "-1") == [b"x", b"y"]
    rc.stop()
    rc.wait_for_log(r"warm file saved .*reads=4")
    saved = warm.read_bytes()
    assert b"v1" not in saved and b"hgetall" in saved  # keys and commands, never values

    # While respcache is down, the data changes.
    r.set("a", "2")
    r.hset("h", "f", "v2")
    r.set("nothing", "now")
    r.rpush("l", "z")
    r.execute_command("CONFIG", "RESETSTAT")

    rc = respcache.start(["--warm-file", str(warm)], backend=redis_server)
    rc.wait_for_log(r"warm start: saved reads fetched again reads=4")
    fetched = commandstats_of(redis_server, "get", "hgetall", "lrange")
    assert fetched == {"get": 2, "hgetall": 1, "lrange": 1}
    c = rc.client()
    assert c.get("a") == b"2"
    assert c.hgetall("h") == {b"f": b"v2", b"g": b"w"}
    assert c.get("nothing") == b"now"
    with rc.raw() as c3:
        c3.command("HELLO", "3")
        assert c3.command("LRANGE", "l", "0", "-1") == [b"x", b"y", b"z"]
    assert commandstats_of(redis_server, "get", "hgetall", "lrange") == fetched  # all hits


@pytest.mark.parametrize("damage", ["missing", "truncated", "corrupt", "not a warm file"])
def test_a_damaged_warm_file_is_a_warning_and_a_cold_start(respcache, redis_server, tmp_path, damage):
    warm = tmp_path / "respcache.warm"
    redis_server.client().set("a", "1")
    if damage != "missing":
        rc = respcache.start(["--warm-file", str(warm)], backend=redis_server)
        assert rc.client().get("a") == b"1"
        rc.stop()
        good = warm.read_bytes()
        warm.write_bytes({"truncated": good[: len(good) - 5],
                          "corrupt": good.replace(b"GET", b"GEX"),
                          "not a warm file": b"\x00\xff junk"}[damage])
    rc = respcache.start(["--warm-file", str(warm)], backend=redis_server)
    rc.wait_for_log(r"\[warning\] warm start: (no warm file|the warm file is unusable), starting cold")
    assert rc.running()
    assert rc.client().get("a") == b"1"  # served, cold


def test_the_warm_file_is_saved_every_interval(respcache, redis_server, tmp_path):
    warm = tmp_path / "respcache.warm"
    redis_server.client().set("k", "v")
    rc = respcache.start(["--warm-file", str(warm), "--warm-interval", "1s"], backend=redis_server)
    assert rc.client().get("k") == b"v"
    wait_until(lambda: warm.exists() and b"\r\nk\r\n" in warm.read_bytes(), scaled(5), "the periodic save")
    assert rc.running()
    assert not (tmp_path / "respcache.warm.tmp").exists()


def test_warm_keys_bounds_what_is_saved(respcache, redis_server, tmp_path):
    warm = tmp_path / "respcache.warm"
    r = redis_server.client()
    keys = [f"k{i}" for i in range(20)]
    r.mset({k: "v" for k in keys})
    rc = respcache.start(["--warm-file", str(warm), "--warm-keys", "5", "--cache-shards", "1"], backend=redis_server)
    c = rc.client()
    for k in keys:
        assert c.get(k) == b"v"
    rc.stop()
    rc.wait_for_log(r"warm file saved .*reads=5")
    saved = warm.read_bytes()
    # The five most recently used, which are the last five read.
    assert all(f"\r\n{k}\r\n".encode() in saved for k in keys[-5:])
    assert not any(f"\r\n{k}\r\n".encode() in saved for k in keys[:-5])
