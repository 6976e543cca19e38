"""A Redis Cluster of the test's own (3 masters, 3 replicas) on 127.0.0.1, and respcache in front of it
(issue 14: `--backend redis+cluster://host:port,host:port,...`). Used by test_cluster.py.

RedisCluster
    Six `redis-server --cluster-enabled yes` processes on free ports below 55536 whose cluster bus port
    (port + 10000) is free as well, joined with `redis-cli --cluster create ... --cluster-replicas 1`;
    start() returns once every node says `cluster_state:ok`, every slot is served, every node has the
    same slot map and every replica's link to its master is up (wait_stable()). Each node is stopped by
    its pid at stop().

    Looking it up (always asked of the nodes, never remembered, so it stays right after moves and
    failovers): keyslot(key), slot_owner(slot), node_for_key(key), client_for_key(key), masters(),
    replicas(), replica_of(master), commandstats(node).

    Changing it: move_slot(slot, dst), or its three steps begin_migration / migrate_keys /
    finish_migration (so that a test can act while the slot is MIGRATING on the source); failover(master)
    (CLUSTER FAILOVER on its replica, then waits until the roles have swapped and every node agrees);
    flushall() (on every master, then waits until every node is empty).

SetGetLoad
    Threads each sending SET k <unique value> pipelined with GET k through respcache, every reply checked
    (the value a key may hold, or an allowed transient error; never MOVED or ASK), for changes made to
    the cluster under load.

Fixtures (import them into the test module)
    redis_cluster_module  one cluster per test module (forming one takes a few seconds)
    redis_cluster         that cluster, stable and empty (FLUSHALL, SCRIPT FLUSH on every master) for
                          each test
    (respcache in front of it: start_proxy(respcache, cluster, extra_args=[...]), with conftest's
    `respcache` factory.)

Every wait is bounded (conftest's wait_until and scaled()); nothing sleeps for a fixed time."""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import pytest
import redis

from conftest import (HOST, redis_client, REDIS_SERVER, SOCKET_TIMEOUT, STARTUP_TIMEOUT, _LIVE_PROCESSES, RawClient, Respcache,
                      RespError, RespReader, _option_values, _stop_process, encode_command, scaled, wait_until)
from coherence_lib import parse_info
from faultlib import KeyState, LoadThreads

_SIBLING_CLI = Path(REDIS_SERVER).with_name("redis-cli")
REDIS_CLI = str(_SIBLING_CLI) if _SIBLING_CLI.is_file() else (shutil.which("redis-cli") or "/usr/bin/redis-cli")
NODE_TIMEOUT_MS = 2000  # --cluster-node-timeout
SLOTS = 16384
BUS_OFFSET = 10000  # a node's cluster bus listens on port + 10000
# Node ports are drawn from here: below the kernel's ephemeral range (32768-60999), where free_port() and
# outgoing connections take theirs, with the bus port (+10000) below it as well.
PORT_RANGE = (12000, 22700)
STABLE_TIMEOUT = scaled(30.0)  # the cluster agrees again after a change
# In cluster mode respcache logs "backend ready" once it has the command table, and "invalidation channels
# live" once every master's invalidation channel is: only then does it serve and fill the cache. By default
# start_proxy() waits for both (wait_channel=False: "backend ready" only).
WAIT_FOR_CHANNEL = True


# ---------------------------------------------------------------------------------------------------
# Ports.


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def cluster_ports(n: int, rng: random.Random, exclude: Iterable[int] = ()) -> List[int]:
    """`n` ports P, each with P and P + 10000 free a moment ago, all below 55536 and none another's bus
    port. Callers retry on a clash (a node that cannot bind exits, see RedisCluster._start_node)."""
    taken = set()
    for p in exclude:
        taken |= {p, p + BUS_OFFSET}
    out: List[int] = []
    for _ in range(10000):
        p = rng.randrange(*PORT_RANGE)
        if {p, p + BUS_OFFSET} & taken:
            continue
        if _bindable(p) and _bindable(p + BUS_OFFSET):
            out.append(p)
            taken |= {p, p + BUS_OFFSET}
            if len(out) == n:
                return out
    raise RuntimeError(f"found only {len(out)} free port pairs (P, P+{BUS_OFFSET}) in {PORT_RANGE}")


# ---------------------------------------------------------------------------------------------------
# One node.


class ClusterNode:
    """One redis-server of the cluster. `id` is its cluster node id (CLUSTER MYID)."""

    def __init__(self, port: int, workdir: Path):
        self.port = port
        self.workdir = workdir
        self.proc: Optional[subprocess.Popen] = None
        self.id: Optional[str] = None
        self._clients: List[redis.Redis] = []

    def __repr__(self):
        return f"<node :{self.port}>"

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    def spawn(self):
        log = open(self.workdir / f"node-{self.port}.log", "ab")
        args = [REDIS_SERVER, "--port", str(self.port), "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.workdir / f"nodes-{self.port}.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", "", "--appendonly", "no",
                "--bind", HOST, "--dir", str(self.workdir), "--daemonize", "no"]
        self.proc = subprocess.Popen(args, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        _LIVE_PROCESSES.append(self.proc)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> Optional[int]:
        for c in self._clients:
            c.close()
        self._clients.clear()
        if self.proc is None:
            return None
        return _stop_process(self.proc)

    def log(self) -> str:
        path = self.workdir / f"node-{self.port}.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    # -- talking to it

    def client(self, **kw) -> redis.Redis:
        """A plain (non-cluster) redis-py client of this node: bytes replies; a key of another node's slot
        raises redis's ResponseError('MOVED ...')."""
        return redis_client(self.port, self._clients, **kw)

    def raw(self, timeout: float = SOCKET_TIMEOUT) -> RawClient:
        return RawClient(self.port, timeout)

    def command(self, *args):
        """One command on a new connection; the parsed reply (RespError for an error)."""
        with self.raw() as c:
            return c.command(*args)

    def raw_command(self, *args) -> bytes:
        """One command on a new connection; the exact bytes of its reply."""
        with self.raw() as c:
            c.send_command(*args)
            return c.read_raw_reply()

    def info(self, section: str) -> Dict[str, str]:
        text = self.command("INFO", section)
        assert isinstance(text, bytes), text
        return parse_info(text)

    def cluster_info(self) -> Dict[str, str]:
        text = self.command("CLUSTER", "INFO")
        assert isinstance(text, bytes), text
        return dict(line.split(":", 1) for line in text.decode().splitlines() if ":" in line)

    def role(self) -> str:
        """'master' or 'slave', as the node itself says (ROLE)."""
        reply = self.command("ROLE")
        assert isinstance(reply, list), reply
        return reply[0].decode()

    def dbsize(self) -> int:
        return self.command("DBSIZE")


# ---------------------------------------------------------------------------------------------------
# The cluster.


class RedisCluster:
    """3 masters + 3 replicas; see the module comment."""

    def __init__(self, workdir: Path, masters: int = 3, replicas_per_master: int = 1):
        self.workdir = workdir
        self.n_masters = masters
        self.replicas_per_master = replicas_per_master
        self.nodes: List[ClusterNode] = []
        self._rng = random.Random()
        self._lock = threading.Lock()  # guards _keyslot_conn
        self._keyslot_conn: Optional[RawClient] = None

    # -- starting and stopping

    def _start_node(self, port: int) -> Optional[ClusterNode]:
        node = ClusterNode(port, self.workdir)
        node.spawn()

        def up():
            if not node.running():
                return "exited"
            return "ok" if node.command("PING") == b"PONG" else None

        if wait_until(up, STARTUP_TIMEOUT, f"cluster node on port {port}") == "exited":
            _stop_process(node.proc)
            return None
        return node

    def start(self) -> "RedisCluster":
        total = self.n_masters * (1 + self.replicas_per_master)
        for _ in range(total * 5):
            if len(self.nodes) == total:
                break
            used = [n.port for n in self.nodes]
            port = cluster_ports(1, self._rng, exclude=used)[0]
            node = self._start_node(port)  # None: the port (or its bus port) was taken meanwhile
            if node is not None:
                self.nodes.append(node)
        if len(self.nodes) != total:
            raise RuntimeError(f"started only {len(self.nodes)} of {total} cluster nodes; see {self.workdir}")
        create = [REDIS_CLI, "--cluster", "create", *[n.addr for n in self.nodes],
                  "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=scaled(60), stdin=subprocess.DEVNULL)
        if done.returncode != 0 or "All 16384 slots covered" not in done.stdout:
            raise RuntimeError(f"redis-cli --cluster create failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        for n in self.nodes:
            n.id = n.command("CLUSTER", "MYID").decode()
        self.wait_stable()
        return self

    def stop(self):
        if self._keyslot_conn is not None:
            self._keyslot_conn.close()
        for n in self.nodes:
            n.stop()

    @property
    def ports(self) -> List[int]:
        return [n.port for n in self.nodes]

    def node_by_port(self, port: int) -> ClusterNode:
        for n in self.nodes:
            if n.port == port:
                return n
        raise KeyError(f"no node on port {port}")

    def node_by_id(self, node_id: str) -> ClusterNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(f"no node with id {node_id}")

    # -- what it looks like now

    def _slot_map_of(self, node: ClusterNode) -> Tuple[Tuple[int, int, int], ...]:
        """(start, end, master port) of every slot range, as `node` sees it (CLUSTER SLOTS), sorted."""
        reply = node.command("CLUSTER", "SLOTS")
        assert isinstance(reply, list), reply
        return tuple(sorted((r[0], r[1], r[2][1]) for r in reply))

    def slot_map(self) -> Tuple[Tuple[int, int, int], ...]:
        return self._slot_map_of(self.nodes[0])

    def keyslot(self, key) -> int:
        """CLUSTER KEYSLOT, on a connection kept for it (the answer is the same on every node)."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._keyslot_conn is None:
                        alive = next(n for n in self.nodes if n.running())
                        self._keyslot_conn = alive.raw()
                    slot = self._keyslot_conn.command("CLUSTER", "KEYSLOT", key)
                    assert isinstance(slot, int), slot
                    return slot
                except (OSError, EOFError):
                    self._keyslot_conn.close()
                    self._keyslot_conn = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def owners(self) -> List[ClusterNode]:
        """The master serving each slot (a list of 16384 nodes), by CLUSTER SHARDS, asked of the first node
        that is running."""
        asked = next(n for n in self.nodes if n.running())
        shards = asked.command("CLUSTER", "SHARDS")
        assert isinstance(shards, list), f"CLUSTER SHARDS on {asked}: {shards!r}"
        out: List[Optional[ClusterNode]] = [None] * SLOTS
        for shard in shards:
            fields = dict(zip(shard[0::2], shard[1::2]))
            master = [dict(zip(nd[0::2], nd[1::2])) for nd in fields[b"nodes"]]
            master = [a for a in master if a[b"role"] == b"master"]
            ranges = fields[b"slots"]
            if not ranges:
                continue
            assert len(master) == 1, f"a shard serving slots without one master: {shard!r}"
            node = self.node_by_id(master[0][b"id"].decode())
            for i in range(0, len(ranges), 2):
                for slot in range(ranges[i], ranges[i + 1] + 1):
                    out[slot] = node
        missing = [i for i, n in enumerate(out) if n is None]
        assert not missing, f"{len(missing)} slots without a master in CLUSTER SHARDS of {asked}, e.g. {missing[:5]}"
        return out  # type: ignore[return-value]

    def slot_owner(self, slot: int) -> ClusterNode:
        return self.owners()[slot]

    def node_for_key(self, key) -> ClusterNode:
        return self.slot_owner(self.keyslot(key))

    def client_for_key(self, key) -> redis.Redis:
        """A direct (non-cluster) connection to the master owning `key`'s slot."""
        return self.node_for_key(key).client()

    def masters(self) -> List[ClusterNode]:
        """The nodes that are masters now and serve slots, in the order of their first slot."""
        seen: List[ClusterNode] = []
        for _, _, port in self.slot_map():
            n = self.node_by_port(port)
            if n not in seen:
                seen.append(n)
        return seen

    def replicas(self) -> List[ClusterNode]:
        masters = self.masters()
        return [n for n in self.nodes if n not in masters]

    def replica_of(self, master: ClusterNode) -> ClusterNode:
        """A replica of `master` (CLUSTER REPLICAS)."""
        lines = master.command("CLUSTER", "REPLICAS", master.id)
        assert isinstance(lines, list) and lines, f"{master} has no replica: {lines!r}"
        return self.node_by_id(lines[0].split()[0].decode())

    def commandstats(self, node: ClusterNode) -> Dict[str, int]:
        """Calls per command from INFO commandstats of `node`: {'get': 3, 'cluster|slots': 1, ...}."""
        out = {}
        for k, v in node.info("commandstats").items():
            m = re.match(r"cmdstat_(.+)", k)
            c = re.match(r"calls=(\d+)", v)
            if m and c:
                out[m.group(1).lower()] = int(c.group(1))
        return out

    def keys_on(self, node: ClusterNode, n: int, prefix: str = "k", avoid_slots: Sequence[int] = ()) -> List[str]:
        """`n` distinct keys `prefix:<i>` whose slots `node` serves (and not in `avoid_slots`)."""
        owners = self.owners()
        out: List[str] = []
        i = 0
        while len(out) < n:
            key = f"{prefix}:{i}"
            i += 1
            if i > 100000:
                raise AssertionError(f"no {n} keys {prefix}:* on {node}")
            slot = self.keyslot(key)
            if slot not in avoid_slots and owners[slot] is node:
                out.append(key)
        return out

    # -- waiting for agreement

    def problems(self) -> List[str]:
        """What keeps the cluster from being stable: a node down, not ok, a slot unserved, nodes that
        disagree on the slot map, a replica whose link to its master is down. Empty when stable."""
        out = []
        maps = {}
        for n in self.nodes:
            if not n.running():
                out.append(f"{n} is not running")
                continue
            try:
                ci = n.cluster_info()
                if ci.get("cluster_state") != "ok":
                    out.append(f"{n}: cluster_state:{ci.get('cluster_state')}")
                if ci.get("cluster_slots_ok") != str(SLOTS):
                    out.append(f"{n}: cluster_slots_ok:{ci.get('cluster_slots_ok')}")
                if ci.get("cluster_known_nodes") != str(len(self.nodes)):
                    out.append(f"{n}: cluster_known_nodes:{ci.get('cluster_known_nodes')}")
                maps[n.port] = self._slot_map_of(n)
                covered = sum(e - s + 1 for s, e, _ in maps[n.port])
                if covered != SLOTS:
                    out.append(f"{n}: CLUSTER SLOTS covers {covered} slots")
                rep = n.info("replication")
                if rep.get("role") == "slave" and rep.get("master_link_status") != "up":
                    out.append(f"{n}: replica link {rep.get('master_link_status')}")
                # A migration left behind shows as [slot->-id] or [slot-<-id] in CLUSTER NODES.
                nodes = n.command("CLUSTER", "NODES")
                if b"->-" in nodes or b"-<-" in nodes:
                    out.append(f"{n}: a slot is still migrating or importing")
            except (OSError, AssertionError, EOFError) as e:
                out.append(f"{n}: {e!r}")
        if len(set(maps.values())) > 1:
            out.append(f"nodes disagree on the slot map: {maps}")
        masters = {p for m in maps.values() for _, _, p in m}
        if maps and len(masters) != self.n_masters:
            out.append(f"{len(masters)} masters serve slots, not {self.n_masters}")
        return out

    def wait_stable(self, timeout: float = STABLE_TIMEOUT):
        last: List[List[str]] = [[]]

        def stable():
            last[0] = self.problems()
            return not last[0]

        try:
            wait_until(stable, timeout, "the cluster to be stable", interval=0.05)
        except AssertionError as e:
            raise AssertionError(f"{e}: {last[0]}") from None

    # -- changing it

    def begin_migration(self, slot: int, dst: ClusterNode) -> ClusterNode:
        """IMPORTING on `dst`, then MIGRATING on the slot's owner; returns the owner (the source)."""
        src = self.slot_owner(slot)
        assert src is not dst, f"slot {slot} is already on {dst}"
        assert dst.command("CLUSTER", "SETSLOT", slot, "IMPORTING", src.id) == b"OK"
        assert src.command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.id) == b"OK"
        return src

    def migrate_keys(self, slot: int, src: ClusterNode, dst: ClusterNode, keys: Optional[Sequence[str]] = None):
        """MIGRATE `keys` (default: every key of the slot still on `src`) from `src` to `dst`."""
        batches: Iterable[Sequence] = [keys] if keys is not None else iter(
            lambda: src.command("CLUSTER", "GETKEYSINSLOT", slot, 100), [])
        for batch in batches:
            if not batch:
                break
            reply = src.command("MIGRATE", HOST, dst.port, "", 0, int(scaled(10) * 1000), "REPLACE", "KEYS", *batch)
            # NOKEY: none of the keys named was on the source.
            assert reply == b"OK" or (keys is not None and reply == b"NOKEY"), \
                f"MIGRATE {batch!r} from {src} to {dst}: {reply!r}"

    def finish_migration(self, slot: int, src: ClusterNode, dst: ClusterNode):
        """SETSLOT NODE dst on dst, then on src, then on every other master; waits until every node agrees."""
        others = [m for m in self.masters() if m is not src and m is not dst]
        for n in [dst, src, *others]:
            reply = n.command("CLUSTER", "SETSLOT", slot, "NODE", dst.id)
            assert reply == b"OK", f"CLUSTER SETSLOT {slot} NODE on {n}: {reply!r}"
        self.wait_stable()
        assert self.slot_owner(slot) is dst

    def move_slot(self, slot: int, dst: ClusterNode) -> ClusterNode:
        """Moves `slot` and its keys to the master `dst`; returns the former owner."""
        src = self.begin_migration(slot, dst)
        self.migrate_keys(slot, src, dst)
        self.finish_migration(slot, src, dst)
        return src

    def failover(self, master: ClusterNode) -> ClusterNode:
        """CLUSTER FAILOVER on a replica of `master`; waits until the replica is a master serving the slots
        `master` served, `master` its replica, and the cluster stable. Returns the new master."""
        self.wait_stable()
        replica = self.replica_of(master)
        assert replica.command("CLUSTER", "FAILOVER") == b"OK"

        def swapped():
            return replica.role() == "master" and master.role() == "slave" and not self.problems()

        wait_until(swapped, STABLE_TIMEOUT, f"{replica} to take over from {master}", interval=0.05)
        return replica

    def flushall(self):
        """FLUSHALL and SCRIPT FLUSH on every master; waits until every node (replicas too) is empty."""
        for m in self.masters():
            assert m.command("FLUSHALL") == b"OK"
            assert m.command("SCRIPT", "FLUSH") == b"OK"
        wait_until(lambda: all(n.dbsize() == 0 for n in self.nodes), scaled(10), "every node to be empty")


# ---------------------------------------------------------------------------------------------------
# A checked SET/GET load.

# Errors a request may get while the cluster changes under the proxy: respcache's own when it cannot reach
# a node in time, and Redis Cluster's own that say "not now" (a failover, a slot without its owner for a
# moment). A redirection (MOVED, ASK) is never among them: the proxy must follow it.
TRANSIENT_ERRORS = ("ERR backend unavailable", "CLUSTERDOWN ", "TRYAGAIN ", "LOADING ")


@dataclass
class Op:
    thread: int
    sent: float  # time.monotonic() when the SET/GET pair was sent
    correct: bool  # both replies right (False: an allowed error)


class SetGetLoad(LoadThreads):
    """`len(keys)` threads, thread t with its own connection to `port` and its own keys `keys[t]`: each
    round, `SET k v:<t>:<n>` (a value never written before) pipelined with `GET k`, then reads exactly
    two replies, each within `reply_timeout`. A SET answered +OK makes its value the only one the GET,
    and every later GET of k until the next SET, may return; a SET answered with an allowed error
    makes its value possible for good besides the last acknowledged one (it may have run). Any other
    reply (a wrong or stale value, MOVED or ASK, another error, no reply, a closed connection) is a
    problem, and that thread stops."""

    def __init__(self, port: int, keys: Sequence[Sequence[str]], allowed_errors: Sequence[str] = TRANSIENT_ERRORS,
                 reply_timeout: float = scaled(10)):
        self.port, self.keys, self.allowed = port, [list(k) for k in keys], tuple(allowed_errors)
        self.reply_timeout = reply_timeout
        self.lock = threading.Lock()  # guards everything below
        self.states: Dict[str, KeyState] = {k: KeyState() for ks in self.keys for k in ks}
        self.ops: List[Op] = []
        self.problems: List[str] = []
        self.error_texts: Set[str] = set()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(len(self.keys))]

    # -- looking at it

    def count(self) -> int:
        with self.lock:
            return len(self.ops)

    def wait_ops(self, n: int, what: str, timeout: float = scaled(30)):
        """Waits until `n` more rounds are done (or a problem stops a thread); AssertionError on a problem."""
        target = self.count() + n
        wait_until(lambda: self.count() >= target or self.problems, timeout, f"{n} rounds of load {what}")
        assert not self.problems, self.summary()

    def ops_sent_after(self, t: float) -> List[Op]:
        with self.lock:
            return [op for op in self.ops if op.sent >= t]

    def recovered_after(self, t: float, run: int) -> bool:
        """Every thread has `run` consecutive correct rounds, all sent after `t`."""
        ops = self.ops_sent_after(t)
        for thread in range(len(self.threads)):
            streak = 0
            for op in ops:
                if op.thread == thread:
                    streak = streak + 1 if op.correct else 0
            if streak < run:
                return False
        return True

    def possible(self, key: str) -> Set[Optional[bytes]]:
        with self.lock:
            return self.states[key].possible(time.monotonic(), None)

    def summary(self) -> str:
        with self.lock:
            errors = sum(1 for op in self.ops if not op.correct)
            return (f"{len(self.ops)} rounds, {errors} with an allowed error {sorted(self.error_texts)[:4]}; "
                    f"problems: {self.problems[:5]}")

    # -- one thread

    def _read(self, sock: socket.socket, reader: RespReader):
        return self._pop_reply(sock, reader)

    def _judge_error(self, what: str, reply: RespError) -> Optional[str]:
        if reply.message.startswith(self.allowed):
            self.error_texts.add(reply.message[:80])
            return None
        return f"{what}: error {reply.message!r}"

    def _round(self, t: int, n: int, sock: socket.socket, reader: RespReader) -> bool:
        key = self.keys[t][n % len(self.keys[t])]
        value = f"v:{t}:{n}".encode()
        sent = time.monotonic()
        sock.sendall(encode_command("SET", key, value) + encode_command("GET", key))
        (set_reply, set_raw) = self._read(sock, reader)
        (get_reply, get_raw) = self._read(sock, reader)
        with self.lock:
            state = self.states[key]
            problem = None
            correct = True
            if isinstance(set_reply, RespError):
                problem = self._judge_error(f"SET {key} {value!r}", set_reply)
                state.set_failed(value, sent)
                correct = False
            elif set_raw != b"+OK\r\n":
                problem = f"SET {key} {value!r}: reply {set_raw!r}"
            else:
                state.set_ok(value, sent)
            if problem is None and isinstance(get_reply, RespError):
                problem = self._judge_error(f"GET {key}", get_reply)
                correct = False
            elif problem is None:
                possible = state.possible(sent, None)
                if get_reply not in possible or (get_reply is not None and get_raw != b"$%d\r\n%s\r\n" % (
                        len(get_reply), get_reply)):
                    problem = f"GET {key} after SET {value!r} ({set_raw!r}): {get_raw!r}, possible {sorted(map(repr, possible))}"
            if problem is not None:
                self.problems.append(f"thread {t} round {n}: {problem}")
                return False
            self.ops.append(Op(t, sent, correct))
            if reader.buf:
                self.problems.append(f"thread {t} round {n}: extra bytes {bytes(reader.buf[:80])!r}")
                return False
        return True

    def _run(self, t: int):
        sock = self._connect(f"thread {t}")
        if sock is None:
            return
        reader = RespReader()
        n = 0
        try:
            while not self.stop_event.is_set():
                try:
                    if not self._round(t, n, sock, reader):
                        return
                except (AssertionError, OSError) as e:
                    with self.lock:
                        self.problems.append(f"thread {t} round {n}: {e}")
                    return
                n += 1
        finally:
            sock.close()


# ---------------------------------------------------------------------------------------------------
# respcache in front of it.


def cluster_url(ports: Sequence[int]) -> str:
    return "redis+cluster://" + ",".join(f"{HOST}:{p}" for p in ports)


def start_proxy(respcache, cluster: RedisCluster, extra_args: Sequence[str] = (), seeds: Optional[Sequence[int]] = None,
                wait_channel: Optional[bool] = None) -> Respcache:
    """respcache (conftest's factory) with `--backend redis+cluster://` naming `seeds` (default: the ports
    of two masters). Waits until it answers PING and has logged "backend ready"; and, if `wait_channel`
    (default WAIT_FOR_CHANNEL) and not --invalidation ttl, "invalidation channel live"."""
    if seeds is None:
        seeds = [m.port for m in cluster.masters()[:2]]
    if wait_channel is None:
        wait_channel = WAIT_FOR_CHANNEL
    rc = respcache.start(extra_args=list(extra_args), backend=cluster_url(seeds), wait_ready=False)
    # An option respcache refuses (exit 2) fails at once, with its message, rather than after a timeout.
    started = re.compile(r"respcache started.*?\bport=\d+|\"message\":\"respcache started\"")
    wait_until(lambda: not rc.running() or started.search(rc.log), STARTUP_TIMEOUT, "respcache's start-up line")
    if not rc.running():
        raise AssertionError(f"respcache exited with {rc.proc.returncode}:\n{rc.log}")
    tracking = wait_channel and "ttl" not in _option_values(list(extra_args), "--invalidation")
    rc._wait_ready(backend_ready=True, tracking=False)  # the port, PING, "backend ready"
    if tracking:
        # Every master's channel live: only then does the cache serve and fill.
        rc.wait_for_log(r"invalidation channels live")
    return rc


# ---------------------------------------------------------------------------------------------------
# Fixtures.


@contextlib.contextmanager
def running_cluster(workdir: Path):
    """A cluster of 3 masters and 3 replicas in `workdir` (made if missing), each node stopped by its pid
    when the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = RedisCluster(workdir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def redis_cluster_module(tmp_path_factory):
    """One cluster for the whole test module, stopped (each node by its pid) at the module's end."""
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster(redis_cluster_module) -> RedisCluster:
    """The module's cluster, stable and empty at the start of the test."""
    redis_cluster_module.wait_stable()
    redis_cluster_module.flushall()
    return redis_cluster_module
