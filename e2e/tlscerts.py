"""Test certificates made with the openssl command line (standard library only, so that bench/run.py
uses it too): a CA, a server certificate for 127.0.0.1 and localhost, a client certificate, and a second
CA with a client and a server certificate of its own (which the first CA's holders must refuse)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import List, Optional

OPENSSL = shutil.which("openssl")
SERVER_SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1"


class Certs:
    def __init__(self, root: Path, timeout: float = 30.0):
        if OPENSSL is None:
            raise RuntimeError("the openssl command is needed to make test certificates")
        self.root = root
        self.timeout = timeout
        for ca in ("ca", "other-ca"):
            self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                          "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2", "-subj", f"/CN={ca}")
        self.issue("server", "ca", "/CN=respcache-test-server", SERVER_SAN)
        self.issue("client", "ca", "/CN=respcache-test-client")
        self.issue("other-client", "other-ca", "/CN=other-client")
        self.issue("other-server", "other-ca", "/CN=other-server", SERVER_SAN)
        # Signed by the right CA but for another name: a server dialled as 127.0.0.1 must not pass with it.
        self.issue("misnamed", "ca", "/CN=elsewhere", "subjectAltName=DNS:elsewhere.invalid")

    def _openssl(self, *args: str):
        subprocess.run([OPENSSL, *args], cwd=self.root, check=True, capture_output=True, timeout=self.timeout,
                       stdin=subprocess.DEVNULL)

    def issue(self, name: str, ca: str, subject: str, ext: Optional[str] = None):
        """<name>.crt and <name>.key, signed by the CA `ca`, with the extension line `ext` if given."""
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                      f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        extra: List[str] = []
        if ext:
            (self.root / f"{name}.ext").write_text(ext + "\n")
            extra = ["-extfile", f"{name}.ext"]
        self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                      "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *extra)

    def crt(self, name: str) -> str:
        return str(self.root / f"{name}.crt")

    def key(self, name: str) -> str:
        return str(self.root / f"{name}.key")

    def server_args(self, auth: str = "yes", name: str = "server", files: Optional[Path] = None) -> List[str]:
        """The --tls-* options that redis-server and respcache share: the certificate `name` (from `files`,
        a directory holding <name>.crt and <name>.key, if given), the CA of client certificates, and
        --tls-auth-clients `auth`."""
        root = files or self.root
        return ["--tls-cert-file", str(root / f"{name}.crt"), "--tls-key-file", str(root / f"{name}.key"),
                "--tls-ca-cert-file", self.crt("ca"), "--tls-auth-clients", auth]

    def client_args(self, prefix: str = "--") -> List[str]:
        """redis-cli's and redis-benchmark's options for a TLS connection with our client certificate."""
        return [f"{prefix}tls", f"{prefix}cacert", self.crt("ca"), f"{prefix}cert", self.crt("client"),
                f"{prefix}key", self.key("client")]
