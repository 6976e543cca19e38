"""Issue 5, points 6 and 7: access control (--requirepass, --requirepass-file, the backend's credentials,
the exposure warning) and SIGHUP reload of the --config file."""

import re
import signal

import pytest

from conftest import RawClient, RespError, free_port, scaled, wait_until
from opslib import parse_info, proxy_info, spawn, wait_started

PASSWORD = "Cl13nt-S3cret-Passw0rd"
NOAUTH = b"-NOAUTH Authentication required.\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"


def raw_reply(c: RawClient, *args) -> bytes:
    c.send_command(*args)
    return c.read_raw_reply()


def authed(port: int, password: str) -> RawClient:
    c = RawClient(port, timeout=scaled(10))
    assert raw_reply(c, "AUTH", password) == b"+OK\r\n"
    return c


# ---------------------------------------------------------------------------------------------------
# --requirepass


def test_requirepass_gates_every_command(respcache, redis_server):
    rc = wait_started(respcache.start(["--requirepass", PASSWORD], backend=redis_server, wait_ready=False))
    with RawClient(rc.port, timeout=scaled(10)) as c:
        assert raw_reply(c, "PING") == NOAUTH
        assert raw_reply(c, "GET", "k") == NOAUTH
        assert raw_reply(c, "SET", "k", "v") == NOAUTH
        assert raw_reply(c, "INFO", "proxy") == NOAUTH
        assert raw_reply(c, "AUTH", "wrong-password") == WRONGPASS
        assert raw_reply(c, "AUTH", "someone", PASSWORD) == WRONGPASS  # only the default user exists
        assert raw_reply(c, "PING") == NOAUTH
        assert raw_reply(c, "AUTH", PASSWORD) == b"+OK\r\n"
        assert c.command("PING") == b"PONG"
        assert c.command("SET", "k", "v") == b"OK"
        assert c.command("GET", "k") == b"v"
        assert int(parse_info(c.command("INFO", "proxy"))["Proxy"]["auth_failures"]) == 2

    with authed(rc.port, PASSWORD) as c:
        assert c.command("GET", "k") == b"v"
    with RawClient(rc.port, timeout=scaled(10)) as c:
        assert raw_reply(c, "AUTH", "default", PASSWORD) == b"+OK\r\n"
        assert c.command("GET", "k") == b"v"
    with RawClient(rc.port, timeout=scaled(10)) as c:
        assert raw_reply(c, "HELLO", "2").startswith(b"-NOAUTH")
        assert raw_reply(c, "HELLO", "2", "AUTH", "default", "nope") == WRONGPASS
        hello = c.command("HELLO", "2", "AUTH", "default", PASSWORD)
        assert isinstance(hello, list) and hello[:2] == [b"server", b"redis"], hello
        assert dict(zip(hello[::2], hello[1::2]))[b"proto"] == 2
        assert c.command("GET", "k") == b"v"

    # Before AUTH, requests are kept small, as Redis keeps them.
    with RawClient(rc.port, timeout=scaled(10)) as c:
        c.send(b"*11\r\n")
        assert c.read_until_eof() == b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    with RawClient(rc.port, timeout=scaled(10)) as c:
        c.send(b"*2\r\n$4\r\nAUTH\r\n$20000\r\n")
        assert c.read_until_eof() == b"-ERR Protocol error: unauthenticated bulk length\r\n"
    # After AUTH, they are not.
    with authed(rc.port, PASSWORD) as c:
        assert c.command("MSET", *[f"a{i}" for i in range(12)]) == b"OK"

    assert PASSWORD not in rc.log
    rc.stop()
    assert PASSWORD not in rc.log
    assert "password_required=true" in rc.log


def test_requirepass_file(respcache, redis_server, tmp_path):
    secret = tmp_path / "client-password"
    secret.write_text(PASSWORD + "\n")
    rc = wait_started(respcache.start(["--requirepass-file", str(secret)], backend=redis_server, wait_ready=False))
    with RawClient(rc.port, timeout=scaled(10)) as c:
        assert raw_reply(c, "PING") == NOAUTH
        assert raw_reply(c, "AUTH", PASSWORD + "\n") == WRONGPASS  # the line ending is not part of it
        assert raw_reply(c, "AUTH", PASSWORD) == b"+OK\r\n"
        assert c.command("SET", "f", "1") == b"OK"
        assert c.command("GET", "f") == b"1"
    rc.stop()
    assert PASSWORD not in rc.log


# ---------------------------------------------------------------------------------------------------
# The backend's credentials.

BACKEND_PASSWORD = "B4ckend-S3cret-Passw0rd"


@pytest.mark.parametrize("how", ["url", "file"])
def test_backend_password_is_used_and_never_logged(respcache, redis_server, tmp_path, how):
    # The harness probes a new Redis with an unauthenticated PING, so the password is set once it is up
    # (the same as starting it with --requirepass).
    assert redis_server.client().config_set("requirepass", BACKEND_PASSWORD)
    direct = redis_server.client(password=BACKEND_PASSWORD)
    direct.set("from-redis", "hello")
    if how == "url":
        rc = respcache.start(backend=f"redis://:{BACKEND_PASSWORD}@127.0.0.1:{redis_server.port}")
    else:
        secret = tmp_path / "backend-password"
        secret.write_text(BACKEND_PASSWORD + "\n")
        rc = respcache.start(["--backend-password-file", str(secret)], backend=redis_server.url)
    rc.wait_for_log(r"backend ready")
    rc.wait_for_log(r"invalidation channel live")
    with rc.raw() as c:
        assert c.command("GET", "from-redis") == b"hello"
        assert c.command("GET", "from-redis") == b"hello"  # a hit
        assert c.command("SET", "from-proxy", "hi") == b"OK"
        # Neither INFO (the proxy's section included) nor the proxy's CLIENT LIST shows it.
        info = c.command("INFO")
        assert BACKEND_PASSWORD.encode() not in info
        assert BACKEND_PASSWORD.encode() not in c.command("CLIENT", "LIST")
    assert direct.get("from-proxy") == b"hi"
    assert int(proxy_info(rc.port)["cache_hits"]) == 1
    rc.stop()
    log = rc.log
    assert BACKEND_PASSWORD not in log
    if how == "url":
        assert "redis://:***@127.0.0.1" in log


def test_wrong_backend_password_is_reported_without_the_password(respcache, redis_server):
    assert redis_server.client().config_set("requirepass", BACKEND_PASSWORD)
    wrong = "Wr0ng-" + BACKEND_PASSWORD
    rc = respcache.start(["--request-timeout", "500ms", "--connect-timeout", "200ms"],
                         backend=f"redis://:{wrong}@127.0.0.1:{redis_server.port}")
    with rc.raw() as c:
        reply = c.command("GET", "x")
        assert isinstance(reply, RespError) and reply.message.startswith("ERR backend unavailable"), reply
        assert wrong.encode() not in reply.message.encode()
    wait_until(lambda: "AUTH failed" in proxy_info(rc.port)["backend_last_error"], scaled(10),
               "the AUTH failure to be the backend's last error")
    rc.stop()
    assert wrong not in rc.log and BACKEND_PASSWORD not in rc.log


# ---------------------------------------------------------------------------------------------------
# Exposure warning.

EXPOSED = re.compile(r"non-loopback address without --requirepass")


@pytest.mark.parametrize("password", [None, PASSWORD], ids=["no-password", "requirepass"])
def test_exposure_warning_when_bound_beyond_loopback(respcache, redis_server, password):
    args = ["--port", "0", "--bind", "0.0.0.0", "--backend", redis_server.url, "--threads", "1"]
    if password:
        args += ["--requirepass", password]
    rc = spawn(respcache, args)
    try:
        wait_started(rc, backend_ready=False)
        with RawClient(rc.port, timeout=scaled(10)) as c:  # connect through 127.0.0.1 only
            assert raw_reply(c, "PING") == (b"+PONG\r\n" if password is None else NOAUTH)
    finally:
        rc.stop()
    if password is None:
        assert EXPOSED.search(rc.log), rc.log
        warning = next(line for line in rc.log.splitlines() if EXPOSED.search(line))
        assert "[warning]" in warning and "bind=0.0.0.0" in warning, warning
    else:
        assert not EXPOSED.search(rc.log), rc.log
        assert password not in rc.log


def test_no_exposure_warning_on_loopback(proxy):
    assert not EXPOSED.search(proxy.log)


# ---------------------------------------------------------------------------------------------------
# SIGHUP reload.


def write_config(path, **options):
    path.write_text("".join(f"{k.replace('_', '-')} = {v}\n" for k, v in options.items()))


def start_from_config(respcache, path):
    rc = spawn(respcache, ["--config", str(path)])
    return wait_started(rc)


def reloads(rc) -> int:
    return rc.log.count("configuration reloaded")


def sighup(rc, expect: str, before: int):
    """Sends SIGHUP and waits for a log line matching `expect` beyond the first `before` log characters."""
    rc.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: re.search(expect, rc.log[before:]), scaled(10), f"log line {expect!r} after SIGHUP")


@pytest.mark.timeout(60)
def test_sighup_applies_live_options_and_keeps_connections(respcache, redis_server, tmp_path):
    conf = tmp_path / "respcache.conf"
    old_pw, new_pw = "Old-" + PASSWORD, "New-" + PASSWORD
    base = dict(bind="127.0.0.1", port=free_port(), backend=redis_server.url, threads=2)
    write_config(conf, **base, ttl="300s", capacity=100, log_level="info", timeout=0, requirepass=old_pw)
    rc = start_from_config(respcache, conf)
    assert rc.port == base["port"]

    a = authed(rc.port, old_pw)
    try:
        info = parse_info(a.command("INFO", "proxy"))["Proxy"]
        assert (info["cache_capacity"], info["cache_ttl_ms"]) == ("100", "300000")
        assert a.command("SET", "r", "1") == b"OK"
        assert "[debug]" not in rc.log

        write_config(conf, **base, ttl="20s", capacity=50, log_level="debug", timeout="2s", requirepass=new_pw)
        sighup(rc, r"configuration reloaded.*ttl_ms=20000.*capacity=50", 0)
        line = next(l for l in rc.log.splitlines() if "configuration reloaded" in l)
        assert "log_level=debug" in line and "timeout_ms=2000" in line and "password_required=true" in line
        assert not re.search(r"only take effect after a restart", rc.log)

        # The existing connection is still open, still authenticated, and sees the new figures.
        assert a.command("PING") == b"PONG"
        info = parse_info(a.command("INFO", "proxy"))["Proxy"]
        assert (info["cache_capacity"], info["cache_ttl_ms"]) == ("50", "20000")
        assert a.command("GET", "r") == b"1"

        # A new client needs the new password.
        with RawClient(rc.port, timeout=scaled(10)) as b:
            assert raw_reply(b, "PING") == NOAUTH
            assert raw_reply(b, "AUTH", old_pw) == WRONGPASS
            assert raw_reply(b, "AUTH", new_pw) == b"+OK\r\n"
            assert b.command("GET", "r") == b"1"
            # The new log level: MODULE LIST makes respcache learn the command table again, logged at debug.
            assert b.command("MODULE", "LIST") == []
        rc.wait_for_log(r"\[debug\] learned the backend's command table", timeout=scaled(10))
    finally:
        a.close()

    # The new idle timeout: a silent client is closed (bounded by the read timeout).
    with authed(rc.port, new_pw) as idle:
        assert idle.read_until_eof() == b""
    assert int(proxy_info_authed(rc.port, new_pw)["idle_disconnects"]) >= 1
    assert reloads(rc) == 1
    rc.stop()
    assert old_pw not in rc.log and new_pw not in rc.log


def proxy_info_authed(port: int, password: str) -> dict:
    with authed(port, password) as c:
        return parse_info(c.command("INFO", "proxy"))["Proxy"]


@pytest.mark.timeout(60)
def test_sighup_names_options_needing_a_restart_and_refuses_an_invalid_file(respcache, redis_server, tmp_path):
    conf = tmp_path / "respcache.conf"
    base = dict(bind="127.0.0.1", backend=redis_server.url, threads=2)
    first_port = free_port()
    write_config(conf, **base, port=first_port, capacity=100, ttl="300s")
    rc = start_from_config(respcache, conf)
    held = rc.raw()
    try:
        assert held.command("SET", "p", "1") == b"OK"

        # A new port cannot be applied live: named in a log line; what can change does.
        other_port = free_port()
        write_config(conf, **base, port=other_port, capacity=60, ttl="300s")
        mark = len(rc.log)
        sighup(rc, r"only take effect after a restart", mark)
        line = next(l for l in rc.log[mark:].splitlines() if "only take effect after a restart" in l)
        assert re.search(r"options=\S*\bport\b", line), line
        assert proxy_info(rc.port)["cache_capacity"] == "60"
        assert held.command("GET", "p") == b"1"  # still listening where it was, the client still served
        with RawClient(rc.port, timeout=scaled(10)) as c:
            assert c.command("PING") == b"PONG"

        # An invalid file: an error line, and the running configuration stays.
        mark = len(rc.log)
        conf.write_text(conf.read_text().replace("capacity = 60", "capacity = 30") + "ttl-typo = banana\n")
        sighup(rc, r"reload refused", mark)
        conf.write_text("capacity = lots\n")
        mark = len(rc.log)
        sighup(rc, r"reload refused", mark)
        line = next(l for l in rc.log[mark:].splitlines() if "reload refused" in l)
        assert "[error]" in line and "capacity" in line, line
        info = proxy_info(rc.port)
        assert (info["cache_capacity"], info["cache_ttl_ms"]) == ("60", "300000")
        assert held.command("GET", "p") == b"1"
        assert rc.running()
    finally:
        held.close()
