"""A scripted stand-in for a Redis older than 6.0, for what a real one cannot show here (only Redis 7 is
installed): it answers the commands respcache sends like Redis 5 does (no CLIENT TRACKING, no CLIENT
CACHING), keeps strings in a dict, and counts the GETs it serves.

Talks only on 127.0.0.1; stop() closes every socket and joins every thread.
"""

import socket
import threading
from pathlib import Path
from typing import Dict, List, Optional

COMMAND_REPLY = (Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "command_reply_redis7.resp").read_bytes()


def bulk(b: Optional[bytes]) -> bytes:
    return b"$-1\r\n" if b is None else b"$%d\r\n%s\r\n" % (len(b), b)


def array(items: List[bytes]) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(items)


class FakeRedis5:
    def __init__(self, version: str = "5.0.14"):
        self.version = version
        self.data: Dict[bytes, bytes] = {}
        self.get_calls = 0
        self.commands: List[List[bytes]] = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.conns: List[socket.socket] = []
        self.threads: List[threading.Thread] = []
        self.stopping = False
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self):
        self.stopping = True
        self.listener.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        for t in self.threads:
            t.join(timeout=5)

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn: socket.socket):
        buf = b""
        subscribed = False
        try:
            while not self.stopping:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while True:
                    parsed = self._parse(buf)
                    if parsed is None:
                        break
                    args, buf = parsed
                    reply, subscribed = self._reply(args, subscribed)
                    conn.sendall(reply)
        except OSError:
            return

    @staticmethod
    def _parse(buf: bytes):
        if not buf.startswith(b"*"):
            return None
        end = buf.find(b"\r\n")
        if end < 0:
            return None
        n = int(buf[1:end])
        pos = end + 2
        args = []
        for _ in range(n):
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            length = int(buf[pos + 1:end])
            start = end + 2
            if len(buf) < start + length + 2:
                return None
            args.append(buf[start:start + length])
            pos = start + length + 2
        return args, buf[pos:]

    def _reply(self, args: List[bytes], subscribed: bool):
        name = args[0].lower()
        with self.lock:
            self.commands.append(args)
        if name == b"ping":
            return (array([bulk(b"pong"), bulk(b"")]) if subscribed else b"+PONG\r\n"), subscribed
        if name == b"subscribe":
            return b"".join(array([bulk(b"subscribe"), bulk(ch), b":%d\r\n" % (i + 1)])
                            for i, ch in enumerate(args[1:])), True
        if name == b"client":
            sub = args[1].lower() if len(args) > 1 else b""
            if sub == b"setname":
                return b"+OK\r\n", subscribed
            if sub == b"id":
                return b":7\r\n", subscribed
            return b"-ERR Unknown subcommand or wrong number of arguments for '%s'. Try CLIENT HELP\r\n" % args[1], subscribed
        if name == b"command":
            return COMMAND_REPLY, subscribed
        if name == b"info":
            text = b"# Server\r\nredis_version:%s\r\n" % self.version.encode()
            return bulk(text), subscribed
        if name == b"config":
            return array([bulk(b"databases"), bulk(b"16")]), subscribed
        if name == b"select":
            return b"+OK\r\n", subscribed
        if name == b"get":
            with self.lock:
                self.get_calls += 1
                return bulk(self.data.get(args[1])), subscribed
        if name == b"pttl":
            with self.lock:
                return (b":-1\r\n" if args[1] in self.data else b":-2\r\n"), subscribed
        if name == b"set":
            with self.lock:
                self.data[args[1]] = args[2]
            return b"+OK\r\n", subscribed
        if name == b"del":
            with self.lock:
                n = sum(1 for k in args[1:] if self.data.pop(k, None) is not None)
            return b":%d\r\n" % n, subscribed
        return b"-ERR unknown command '%s'\r\n" % args[0], subscribed

    def set_direct(self, key: bytes, value: bytes):
        """A write made behind the proxy's back (no invalidation can follow: there is no tracking)."""
        with self.lock:
            self.data[key] = value

    def sent(self, name: bytes) -> int:
        with self.lock:
            return sum(1 for a in self.commands if a[0].lower() == name)
