#!/usr/bin/env node
// ioredis (from npm) against respcache: pipelines, MULTI/EXEC and WATCH, pub/sub, blocking pops, SELECT,
// CLIENT SETINFO at connect, and read-your-writes across two connections.
//
// Usage: node client_test.js <proxy port> <redis port> [family ...]
// Families: pipelines transactions pubsub blocking ryw databases (default: all, in that order).
// Talks to 127.0.0.1 only. Prints "ok: <family>" or "FAIL: <family>: <what>: expected ..., got ..." for
// each family (a family stops at its first mismatch; the next one still runs), then "all checks passed"
// and exits 0, or exits 1 if any family failed; it gives up (exit 2) after a time bound.

"use strict";

const { Mismatch, show, eq, check, sleep, boundTime } = require("./checks");
const Redis = require("ioredis");

const HOST = "127.0.0.1";
const [proxyPort, redisPort] = process.argv.slice(2, 4).map(Number);
const wanted = process.argv.slice(4);
if (!proxyPort || !redisPort) {
  console.error("usage: node client_test.js <proxy port> <redis port>");
  process.exit(64);
}

boundTime();

const clients = [];
function connect(port, options = {}) {
  const c = new Redis({
    host: HOST,
    port,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null, // never reconnect behind the test's back
    connectTimeout: 5000,
    commandTimeout: 5000,
    ...options,
  });
  c.on("error", (e) => console.error(`client error (port ${port}): ${e.message}`));
  clients.push(c);
  return c;
}


// Resolves with the next `n` events `name` of `emitter`, rejects after `ms`.
function nextEvents(emitter, name, n, ms = 5000) {
  return new Promise((resolve, reject) => {
    const got = [];
    const timer = setTimeout(() => {
      emitter.removeListener(name, on);
      reject(new Mismatch(`only ${got.length} of ${n} '${name}' events within ${ms} ms: ${show(got)}`));
    }, ms);
    function on(...args) {
      got.push(args);
      if (got.length === n) {
        clearTimeout(timer);
        emitter.removeListener(name, on);
        resolve(got);
      }
    }
    emitter.on(name, on);
  });
}

let direct; // straight to Redis: INFO commandstats only

async function getCalls() {
  const info = await direct.info("commandstats");
  const m = /cmdstat_get:calls=(\d+)/.exec(info);
  return m ? Number(m[1]) : 0;
}

// B reads until a read is a cache hit (the backend's GET count stays; normally the second read: in tracking
// mode Redis's invalidation of an earlier write may evict the entry B's first read filled, a harmless extra
// miss), A writes, B's very next read (no sleep, no polling) returns the new value.
async function readYourWrites(what, readB, old, writeA, fresh) {
  eq(`${what}: B's first read`, await readB(), old);
  const deadline = Date.now() + 3000;
  for (let reads = 2; ; reads++) {
    const before = await getCalls();
    eq(`${what}: B's read #${reads}`, await readB(), old);
    if ((await getCalls()) === before) break; // a cache hit
    check(`${what}: B's reads were never served from the cache (${reads} reads each ran a GET in Redis)`,
      Date.now() < deadline);
  }
  await writeA();
  eq(`${what}: B's read right after A's write (stale cache?)`, await readB(), fresh);
}

async function pipelines(a, b) {
  const p = a.pipeline();
  const expected = [];
  for (let i = 0; i < 200; i++) {
    p.set(`node:p:${i}`, String(i));
    expected.push([null, "OK"]);
    p.get(`node:p:${i}`);
    expected.push([null, String(i)]);
    p.incr(`node:p:${i}`);
    expected.push([null, i + 1]);
    p.get(`node:p:${i}`);
    expected.push([null, String(i + 1)]);
  }
  p.rpush("node:p:list", "a", "b", "c");
  expected.push([null, 3]);
  p.lrange("node:p:list", 0, -1);
  expected.push([null, ["a", "b", "c"]]);
  p.hset("node:p:h", "f", "v");
  expected.push([null, 1]);
  p.hgetall("node:p:h");
  expected.push([null, { f: "v" }]);
  p.get("node:p:missing");
  expected.push([null, null]);
  const results = await p.exec();
  eq("pipeline reply count", results.length, expected.length);
  for (let i = 0; i < expected.length; i++) eq(`pipeline reply ${i}`, results[i], expected[i]);
  // An error inside a pipeline is that command's, the others are unaffected.
  const mixed = await a.pipeline().get("node:p:list").set("node:p:after", "1").get("node:p:after").exec();
  check("WRONGTYPE inside a pipeline", mixed[0][0] && /^WRONGTYPE/.test(mixed[0][0].message), show(mixed[0]));
  eq("pipeline after an error", mixed.slice(1), [[null, "OK"], [null, "1"]]);
  await readYourWrites("pipeline", () => b.get("node:p:7"), "8",
    () => a.pipeline().incrby("node:p:7", 2).append("node:p:7", "x").exec(), "10x");
}

async function transactions(a, b, other) {
  const res = await a.multi().set("node:tx:k", "v").get("node:tx:k").incr("node:tx:n").lpush("node:tx:l", "x").exec();
  eq("MULTI/EXEC results", res, [[null, "OK"], [null, "v"], [null, 1], [null, 1]]);
  // EXECABORT: a queued command with the wrong arity discards the transaction.
  const aborted = await a.multi().set("node:tx:k").exec().then(
    (r) => ({ ok: r }), (e) => ({ err: e.message }));
  check("EXECABORT", aborted.err && /EXECABORT/.test(aborted.err), show(aborted));
  eq("value after EXECABORT", await a.get("node:tx:k"), "v");
  // WATCH aborted by another client's write, then retried.
  await a.set("node:tx:counter", "0");
  let attempts = 0;
  for (;;) {
    attempts++;
    check("WATCH retries bounded", attempts <= 5);
    await a.watch("node:tx:counter");
    const value = Number(await a.get("node:tx:counter"));
    if (attempts === 1) eq("other client's INCRBY", await other.incrby("node:tx:counter", 100), 100);
    const r = await a.multi().set("node:tx:counter", String(value + 1)).exec();
    if (r === null) continue; // WatchError: retry
    eq("EXEC after WATCH", r, [[null, "OK"]]);
    break;
  }
  eq("attempts (the first EXEC must be aborted by the other write)", attempts, 2);
  eq("counter after the WATCH loop", await b.get("node:tx:counter"), "101");
  // DISCARD, and EXEC without MULTI.
  eq("MULTI (not pipelined)", await a.multi({ pipeline: false }), "OK");
  eq("queued SET", await a.set("node:tx:k", "discarded"), "QUEUED");
  eq("DISCARD", await a.discard(), "OK");
  eq("value after DISCARD", await a.get("node:tx:k"), "v");
  const noMulti = await a.exec().then((r) => r, (e) => e.message);
  check("EXEC without MULTI", /EXEC without MULTI/.test(String(noMulti)), show(noMulti));
  await readYourWrites("MULTI/EXEC", () => b.get("node:tx:k"), "v",
    () => a.multi().set("node:tx:k", "w").append("node:tx:k", "!").exec(), "w!");
}

async function pubsub(a, publisher) {
  const sub = connect(proxyPort);
  eq("SUBSCRIBE count", await sub.subscribe("node:chan"), 1);
  eq("PSUBSCRIBE count", await sub.psubscribe("node:news.*"), 2);
  const messages = nextEvents(sub, "message", 20);
  const pmessages = nextEvents(sub, "pmessage", 1);
  for (let i = 0; i < 20; i++) eq(`PUBLISH ${i}`, await publisher.publish("node:chan", `m${i}`), 1);
  eq("PUBLISH to a pattern", await publisher.publish("node:news.tech", "p"), 1);
  eq("PUBLISH to nobody", await publisher.publish("node:nobody", "x"), 0);
  eq("messages in order", (await messages).map(([ch, msg]) => `${ch}:${msg}`),
    Array.from({ length: 20 }, (_, i) => `node:chan:m${i}`));
  eq("pmessage", (await pmessages)[0], ["node:news.*", "node:news.tech", "p"]);
  eq("UNSUBSCRIBE count", await sub.unsubscribe("node:chan"), 1);
  eq("PUNSUBSCRIBE count", await sub.punsubscribe("node:news.*"), 0);
  eq("PUBLISH after unsubscribing", await publisher.publish("node:chan", "late"), 0);
  // The same connection serves ordinary commands again.
  eq("SET on the former subscriber", await sub.set("node:ps:k", "10"), "OK");
  await readYourWrites("former subscriber", () => sub.get("node:ps:k"), "10", () => a.set("node:ps:k", "11"), "11");
  eq("SUBSCRIBE again", await sub.subscribe("node:chan2"), 1);
  const again = nextEvents(sub, "message", 1);
  eq("PUBLISH again", await publisher.publish("node:chan2", "again"), 1);
  eq("message again", (await again)[0], ["node:chan2", "again"]);
  eq("UNSUBSCRIBE all", await sub.unsubscribe(), 0);
  eq("GET after the second subscription", await sub.get("node:ps:k"), "11");
}

async function blockingPops(a, b) {
  let pushed = sleep(300).then(() => a.rpush("node:bl:q", "x"));
  eq("BLPOP fed after 0.3 s", await b.blpop("node:bl:q", 5), ["node:bl:q", "x"]);
  await pushed;
  eq("BLPOP timing out", await b.blpop("node:bl:empty", 0.2), null);
  pushed = sleep(300).then(() => a.lpush("node:bl:src", "moved"));
  eq("BRPOPLPUSH", await b.brpoplpush("node:bl:src", "node:bl:dst", 5), "moved");
  await pushed;
  pushed = sleep(300).then(() => a.rpush("node:bl:src", "m1", "m2"));
  eq("BLMOVE", await b.blmove("node:bl:src", "node:bl:dst", "LEFT", "RIGHT", 5), "m1");
  await pushed;
  eq("list after the moves", await b.lrange("node:bl:dst", 0, -1), ["moved", "m1"]);
  pushed = sleep(300).then(() => a.xadd("node:bl:stream", "7-1", "f", "v"));
  eq("XREAD BLOCK", await b.xread("BLOCK", 5000, "STREAMS", "node:bl:stream", "$"),
    [["node:bl:stream", [["7-1", ["f", "v"]]]]]);
  await pushed;
  eq("SET after blocking", await b.set("node:bl:k", "10"), "OK");
  await readYourWrites("after blocking pops", () => b.get("node:bl:k"), "10", () => a.incr("node:bl:k"), "11");
}

async function readYourWritesFamilies(a, b) {
  const key = "node:ryw";
  const cases = [
    ["SET", () => a.set(key, "11"), "11"],
    ["DEL", () => a.del(key), null],
    ["INCR", () => a.incr(key), "11"],
    ["APPEND", () => a.append(key, "x"), "10x"],
    ["EXPIRE 0", () => a.expire(key, 0), null],
    ["GETDEL", () => a.getdel(key), null],
    ["GETSET", () => a.getset(key, "12"), "12"],
    ["MSET", () => a.mset("node:other", "x", key, "13"), "13"],
    ["SETRANGE", () => a.setrange(key, 0, "2"), "20"],
    ["RENAME", async () => { await a.set("node:src", "ren"); await a.rename("node:src", key); }, "ren"],
    ["EVAL", () => a.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, key, "ev"), "ev"],
    ["FLUSHDB", () => a.flushdb(), null],
  ];
  for (const [name, write, fresh] of cases) {
    await a.set(key, "10");
    await readYourWrites(name, () => b.get(key), "10", write, fresh);
  }
  // Binary values come back byte for byte.
  const bin = Buffer.from([0, 1, 2, 13, 10, 255, 254]);
  await a.set("node:bin", bin);
  eq("binary value", (await b.getBuffer("node:bin")).equals(bin), true);
  eq("binary value (cached)", (await b.getBuffer("node:bin")).equals(bin), true);
}

async function databases() {
  const c3 = connect(proxyPort, { db: 3 });
  const c0 = connect(proxyPort, { db: 0 });
  const a3 = connect(proxyPort, { db: 3 });
  eq("SET in db 3", await c3.set("node:db", "three"), "OK");
  eq("SET in db 0", await c0.set("node:db", "zero"), "OK");
  await readYourWrites("db 3", () => c3.get("node:db"), "three", () => a3.append("node:db", "+"), "three+");
  eq("db 0 unaffected", await c0.get("node:db"), "zero");
  const info = await c3.client("INFO");
  check("CLIENT SETINFO sent by ioredis at connect was accepted", /lib-name=ioredis/.test(info), info);
  eq("CLIENT SETNAME", await c3.client("SETNAME", "node-client"), "OK");
  eq("CLIENT GETNAME", await c3.client("GETNAME"), "node-client");
}

async function main() {
  direct = connect(redisPort);
  const a = connect(proxyPort);
  const b = connect(proxyPort);
  const other = connect(proxyPort);
  eq("PING", await a.ping(), "PONG");
  const families = {
    pipelines: () => pipelines(a, b),
    transactions: () => transactions(a, b, other),
    pubsub: () => pubsub(a, other),
    blocking: () => blockingPops(a, b),
    ryw: () => readYourWritesFamilies(a, b),
    databases: () => databases(),
  };
  const names = wanted.length ? wanted : Object.keys(families);
  let failed = 0;
  for (const name of names) {
    if (!families[name]) throw new Mismatch(`unknown family '${name}' (known: ${Object.keys(families).join(" ")})`);
    try {
      await families[name]();
      console.log(`ok: ${name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL: ${name}: ${e instanceof Mismatch ? e.message : e.stack || e}`);
    }
  }
  return failed;
}

main().then(
  (failed) => {
    if (failed === 0) console.log("all checks passed");
    for (const c of clients) c.disconnect();
    process.exit(failed === 0 ? 0 : 1);
  },
  (e) => {
    console.log(`FAIL: ${e.message}`);
    for (const c of clients) c.disconnect();
    process.exit(1);
  },
);
