"""Issue 13, item 1: TLS on both sides. respcache's --tls-port (redis-cli --tls and Python's ssl as
clients, --tls-auth-clients yes|optional|no compared with a redis-server given the same options) and a
rediss:// backend (a redis-server with --port 0 --tls-port, so that nothing reaches it in the clear),
with certificates made here with `openssl`, and their reload on SIGHUP."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import pytest
import redis

from conftest import (HOST, REDIS_SERVER, RawClient, RespReader, STARTUP_TIMEOUT, _LIVE_PROCESSES, _stop_process,
                      encode_command, free_port, scaled, wait_until)
from opslib import spawn, wait_started
from tlscerts import OPENSSL, Certs

REDIS_CLI = shutil.which("redis-cli")

pytestmark = pytest.mark.skipif(OPENSSL is None or REDIS_CLI is None, reason="needs openssl and redis-cli")


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"), timeout=scaled(30))


# ---------------------------------------------------------------------------------------------------
# Clients.


def tls_context(certs: Certs, client: Optional[str] = "client", ca: str = "ca") -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=certs.crt(ca))
    if client:
        ctx.load_cert_chain(certs.crt(client), certs.key(client))
    return ctx


def tls_connect(port: int, ctx: ssl.SSLContext, timeout: float = scaled(10)) -> ssl.SSLSocket:
    raw = socket.create_connection((HOST, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=HOST)
    except BaseException:
        raw.close()
        raise


def tls_command(sock: ssl.SSLSocket, *args) -> bytes:
    """Sends one command on `sock` and returns the raw bytes of its reply."""
    sock.sendall(encode_command(*args))
    reader = RespReader()
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before a reply")
        reader.feed(data)
        popped = reader.pop()
        if popped is not None:
            return popped[1]


def ping_outcome(port: int, ctx: ssl.SSLContext) -> str:
    """'PONG' if a TLS client with `ctx` gets PING answered, else 'refused' (handshake failed, or the
    server dropped the connection before answering: with TLS 1.3 a refused client certificate is only
    reported after the client's side of the handshake is done)."""
    try:
        with tls_connect(port, ctx) as s:
            return "PONG" if tls_command(s, "PING") == b"+PONG\r\n" else "other"
    except (ssl.SSLError, ConnectionError, OSError):
        return "refused"


def redis_cli(port: int, certs: Certs, *args: str, with_cert: bool = True) -> subprocess.CompletedProcess:
    cmd = [REDIS_CLI, "-h", HOST, "-p", str(port), *certs.client_args()]
    if not with_cert:
        cmd = cmd[:cmd.index("--cert")]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=scaled(10), stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------------------------
# A redis-server that speaks TLS only (--port 0).


class TlsRedis:
    def __init__(self, workdir: Path, certs: Certs, extra: List[str], trust: str):
        # trust: the CA our own clients check its certificate with.
        self.workdir, self.certs, self.extra, self.trust = workdir, certs, extra, trust
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None

    def start(self, attempts: int = 5) -> "TlsRedis":
        for _ in range(attempts):
            self.port = free_port()
            log = open(self.workdir / f"redis-{self.port}.log", "wb")
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", "0", "--tls-port", str(self.port), "--bind", HOST, "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir), *self.extra],
                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            _LIVE_PROCESSES.append(self.proc)
            ctx = tls_context(self.certs, ca=self.trust)
            ctx.check_hostname = False  # it is up; whether its name fits is for respcache to find out

            def up():
                if self.proc.poll() is not None:
                    return "exited"
                return ping_outcome(self.port, ctx) == "PONG"

            if wait_until(up, STARTUP_TIMEOUT, f"redis-server --tls-port {self.port}") is True:
                return self
            _stop_process(self.proc)
        raise RuntimeError(f"redis-server with TLS did not start; logs in {self.workdir}")

    @property
    def url(self) -> str:
        return f"rediss://{HOST}:{self.port}"

    def client(self) -> redis.Redis:
        c = self.certs
        return redis.Redis(host=HOST, port=self.port, ssl=True, ssl_ca_certs=c.crt(self.trust), ssl_check_hostname=False, ssl_certfile=c.crt("client"),
                           ssl_keyfile=c.key("client"), socket_timeout=scaled(10))

    def commandstats(self) -> dict:
        out = {}
        for name, stats in self.client().info("commandstats").items():
            out[name.removeprefix("cmdstat_").lower()] = stats["calls"]
        return out

    def stop(self):
        if self.proc is not None:
            _stop_process(self.proc)


@pytest.fixture
def tls_redis_factory(tmp_path, certs):
    servers: List[TlsRedis] = []

    def start(*extra: str, trust: str = "ca") -> TlsRedis:
        workdir = Path(tempfile.mkdtemp(prefix="redis-tls-", dir=tmp_path))
        server = TlsRedis(workdir, certs, list(extra), trust).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def tls_redis(tls_redis_factory, certs) -> TlsRedis:
    """A TLS-only redis-server that requires a client certificate of the test CA."""
    return tls_redis_factory(*certs.server_args())


def start_tls_respcache(respcache, certs: Certs, backend: str, extra: List[str] = (), plain: bool = False,
                        auth: str = "yes", files: Optional[Path] = None, backend_ready: bool = True):
    """respcache with a TLS port (and a plain one when `plain`); returns (process, tls_port). The backend's
    TLS options (the test CA, our client certificate) are given when `backend` is rediss://."""
    for _ in range(5):
        tls_port = free_port()
        args = ["--bind", HOST, "--port", str(free_port()) if plain else "0", "--tls-port", str(tls_port),
                "--backend", backend, *certs.server_args(auth, files=files)]
        if backend.startswith("rediss://") and "--backend-tls-ca-cert-file" not in extra:
            args += ["--backend-tls-ca-cert-file", certs.crt("ca")]
        if backend.startswith("rediss://"):
            args += ["--backend-tls-cert-file", certs.crt("client"), "--backend-tls-key-file", certs.key("client")]
        if "--threads" not in extra:
            args += ["--threads", "2"]
        rc = spawn(respcache, [*args, *extra])
        try:
            m = rc.wait_for_log(r"respcache started.*?\btls_port=(\d+)")
        except AssertionError:
            if "cannot listen" in rc.log:
                continue  # a port taken meanwhile: try others
            raise
        assert int(m.group(1)) == tls_port
        wait_started(rc, backend_ready=backend_ready)
        return rc, tls_port
    raise RuntimeError("could not start respcache on free ports")


# ---------------------------------------------------------------------------------------------------
# Both sides.


def test_redis_cli_over_tls_hits_and_misses_through_a_tls_backend(respcache, tls_redis, certs):
    rc, tls_port = start_tls_respcache(respcache, certs, tls_redis.url, plain=True)
    assert rc.port != 0, "--port with --tls-port keeps the plain port open"
    assert redis_cli(tls_port, certs, "SET", "tls:k", "v1").stdout == "OK\n"
    before = tls_redis.commandstats().get("get", 0)
    for _ in range(3):
        out = redis_cli(tls_port, certs, "GET", "tls:k")
        assert (out.returncode, out.stdout) == (0, "v1\n"), out
    assert tls_redis.commandstats().get("get", 0) == before + 1, "one miss, then hits from the cache"
    # The plain port serves the same cache.
    with RawClient(rc.port) as c:
        assert c.command("GET", "tls:k") == b"v1"
    assert tls_redis.commandstats().get("get", 0) == before + 1
    # A write through TLS invalidates; the next read is a miss that sees the new value.
    assert redis_cli(tls_port, certs, "SET", "tls:k", "v2").stdout == "OK\n"
    assert redis_cli(tls_port, certs, "GET", "tls:k").stdout == "v2\n"
    assert tls_redis.commandstats().get("get", 0) == before + 2
    # A direct write to the backend reaches the cache through the invalidation channel (over TLS too).
    tls_redis.client().set("tls:k", "v3")
    wait_until(lambda: redis_cli(tls_port, certs, "GET", "tls:k").stdout == "v3\n", scaled(5), "invalidation")


def test_large_values_and_pipelines_cross_tls_intact(respcache, tls_redis, certs):
    rc, tls_port = start_tls_respcache(respcache, certs, tls_redis.url)
    big = bytes(range(256)) * 4096  # 1 MB: many TLS records each way
    with tls_connect(tls_port, tls_context(certs)) as s:
        assert tls_command(s, "SET", "big", big) == b"+OK\r\n"
        for _ in range(2):  # a miss, then a hit
            assert tls_command(s, "GET", "big") == b"$%d\r\n%s\r\n" % (len(big), big)
        s.sendall(b"".join(encode_command("INCR", "n") for _ in range(500)))
        reader, got = RespReader(), []
        while len(got) < 500:
            data = s.recv(65536)
            assert data, "closed mid-pipeline"
            reader.feed(data)
            while (popped := reader.pop()) is not None:
                got.append(popped[0])
        assert got == list(range(1, 501))


# ---------------------------------------------------------------------------------------------------
# Client certificates: --tls-auth-clients, side by side with redis-server given the same options.

AUTH_CASES = [
    # (tls-auth-clients, the client's certificate: None, "client" (our CA) or "other-client", accepted)
    ("yes", None, False), ("yes", "client", True), ("yes", "other-client", False),
    ("optional", None, True), ("optional", "client", True), ("optional", "other-client", False),
    ("no", None, True), ("no", "other-client", True),
]


@pytest.mark.parametrize("auth", ["yes", "optional", "no"])
def test_tls_auth_clients_as_redis(respcache, tls_redis_factory, certs, auth):
    backend = tls_redis_factory(*certs.server_args())
    reference = tls_redis_factory(*certs.server_args(auth))
    _, tls_port = start_tls_respcache(respcache, certs, backend.url, auth=auth)
    for mode, client, accepted in AUTH_CASES:
        if mode != auth:
            continue
        ctx = tls_context(certs, client)
        expected = "PONG" if accepted else "refused"
        assert ping_outcome(reference.port, ctx) == expected, f"redis-server, {client}"
        assert ping_outcome(tls_port, ctx) == expected, f"respcache --tls-auth-clients {auth}, {client}"
    if auth == "yes":
        out = redis_cli(tls_port, certs, "PING", with_cert=False)
        assert "PONG" not in out.stdout, out


def test_client_that_does_not_trust_our_ca_refuses_us(respcache, tls_redis, certs):
    _, tls_port = start_tls_respcache(respcache, certs, tls_redis.url)
    assert ping_outcome(tls_port, tls_context(certs, "client", ca="other-ca")) == "refused"


# ---------------------------------------------------------------------------------------------------
# The backend's certificate is verified.


@pytest.mark.parametrize("case", ["wrong CA", "wrong name", "no client certificate"])
def test_backend_certificate_checked(respcache, tls_redis_factory, certs, case):
    if case == "wrong CA":
        backend = tls_redis_factory(*certs.server_args(name="other-server"), trust="other-ca")
        expected = "TLS handshake failed: certificate verify failed: unable to get local issuer certificate"
    elif case == "wrong name":
        backend = tls_redis_factory(*certs.server_args(name="misnamed"))
        expected = "TLS handshake failed: certificate verify failed: IP address mismatch"
    else:
        backend = tls_redis_factory(*certs.server_args())
        expected = "certificate required"  # Redis's alert, read after our side of the TLS 1.3 handshake
    args = ["--bind", HOST, "--port", "0", "--tls-port", str(free_port()), "--backend", backend.url,
            "--backend-tls-ca-cert-file", certs.crt("ca"), *certs.server_args()]
    if case != "no client certificate":
        args += ["--backend-tls-cert-file", certs.crt("client"), "--backend-tls-key-file", certs.key("client")]
    rc = spawn(respcache, args)
    m = rc.wait_for_log(r"respcache started.*?\btls_port=(\d+)")
    tls_port = int(m.group(1))
    with tls_connect(tls_port, tls_context(certs)) as s:
        reply = tls_command(s, "GET", "k")
    assert reply.startswith(b"-ERR backend unavailable: "), reply
    assert expected in reply.decode(), reply
    assert "backend ready" not in rc.log
    assert backend.commandstats().get("get", 0) == 0


# ---------------------------------------------------------------------------------------------------
# Reload, and a handshake that never comes.


def peer_common_name(sock: ssl.SSLSocket) -> str:
    subject = dict(x[0] for x in sock.getpeercert()["subject"])
    return subject["commonName"]


def test_sighup_reloads_the_certificate_for_new_connections(respcache, tls_redis, certs, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    certs.issue("second", "ca", "/CN=respcache-second", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    for suffix in ("crt", "key"):
        shutil.copy(certs.root / f"server.{suffix}", live / f"server.{suffix}")
    rc, tls_port = start_tls_respcache(respcache, certs, tls_redis.url, files=live)

    old = tls_connect(tls_port, tls_context(certs))
    try:
        assert peer_common_name(old) == "respcache-test-server"
        for suffix in ("crt", "key"):
            shutil.copy(certs.root / f"second.{suffix}", live / f"server.{suffix}")
        rc.proc.send_signal(signal.SIGHUP)
        rc.wait_for_log(r"TLS certificates reloaded")
        with tls_connect(tls_port, tls_context(certs)) as new:
            assert peer_common_name(new) == "respcache-second"
            assert tls_command(new, "PING") == b"+PONG\r\n"
        assert tls_command(old, "PING") == b"+PONG\r\n", "a connection made before the reload stays up"
        # A reload whose files cannot be used changes nothing.
        (live / "server.key").write_text("not a key\n")
        rc.proc.send_signal(signal.SIGHUP)
        rc.wait_for_log(r"TLS certificates not reloaded")
        with tls_connect(tls_port, tls_context(certs)) as new:
            assert peer_common_name(new) == "respcache-second"
    finally:
        old.close()


def test_a_client_that_never_handshakes_is_closed_and_blocks_no_one(respcache, tls_redis, certs):
    _, tls_port = start_tls_respcache(respcache, certs, tls_redis.url, extra=["--threads", "1"])
    silent = socket.create_connection((HOST, tls_port), timeout=scaled(15))
    try:
        started = time.monotonic()
        # Meanwhile (on the same io thread) others are served.
        for _ in range(3):
            assert ping_outcome(tls_port, tls_context(certs)) == "PONG"
        assert silent.recv(1) == b"", "the silent client is closed"
        elapsed = time.monotonic() - started
        # The handshake limit is a fixed 5 s: a minimum (never scaled) and a generous, scaled maximum.
        assert 4.0 <= elapsed + 0.5 and elapsed < scaled(8), elapsed
    finally:
        silent.close()


def test_shutdown_does_not_wait_for_a_handshake(respcache, tls_redis, certs):
    rc, tls_port = start_tls_respcache(respcache, certs, tls_redis.url)
    silent = socket.create_connection((HOST, tls_port), timeout=scaled(15))
    try:
        wait_until(lambda: ping_outcome(tls_port, tls_context(certs)) == "PONG", scaled(5), "a TLS client served")
        started = time.monotonic()
        assert rc.stop(signal.SIGTERM) == 0
        elapsed = time.monotonic() - started
        # Not the 5 s of the handshake timeout (nor --shutdown-timeout's 5 s): the handshake is ended.
        assert elapsed < scaled(2), elapsed
        assert "shutdown timeout" not in rc.log, rc.log
        assert silent.recv(1) == b""
    finally:
        silent.close()


def test_tls_configuration_errors(certs):
    from conftest import run_respcache
    cases = [
        (["--tls-port", "7000"], "--tls-port needs --tls-cert-file and --tls-key-file"),
        (["--tls-port", "7000", "--tls-cert-file", certs.crt("server"), "--tls-key-file", certs.key("server")],
         "--tls-auth-clients yes or optional needs --tls-ca-cert-file"),
        (["--backend-tls-ca-cert-file", certs.crt("ca")], "--backend-tls-* options need a rediss:// --backend"),
        (["--backend", "rediss://127.0.0.1:1", "--backend-tls-cert-file", certs.crt("client")],
         "give both or neither"),
        (["--tls-auth-clients", "maybe"], "--tls-auth-clients: invalid value 'maybe' (expected yes, no or optional)"),
    ]
    for args, text in cases:
        out = run_respcache(args)
        assert out.returncode == 2 and text in out.stderr, (args, out.stderr)
    # A file that cannot be used stops the start with a reason.
    out = run_respcache(["--port", "0", "--tls-port", str(free_port()), "--tls-auth-clients", "no",
                         "--tls-cert-file", certs.crt("server"), "--tls-key-file", certs.key("client")],
                        timeout=scaled(10))
    assert out.returncode == 1 and "cannot load private key" in out.stderr, out.stderr
