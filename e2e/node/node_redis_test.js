#!/usr/bin/env node
// node-redis 6 (npm `redis`, from e2e/node/package.json) against respcache, with its defaults: RESP3
// (HELLO 3), CLIENT SETINFO and the other handshake commands it sends by itself.
//
// Usage: node node_redis_test.js <proxy port> [family ...]
// Families: basics pipelines multi pubsub csc cscwatch (default: all, in that order).
//
// csc (client-side caching, the `clientSideCache` option) is driven together with the Python test that
// runs this script (e2e/test_node_redis.py), which checks Redis's own counters and writes to Redis
// directly. At each step this script prints one line `SYNC <step> <json>` and waits for one line on stdin:
// `go` to continue, anything else to fail the family with that text (cscwatch likewise). With
// E2E_NO_DRIVER=1 both are skipped (they need what only the driver does).
//
// Talks to 127.0.0.1 only. Prints "ok: <family>" or "FAIL: <family>: <what>: expected ..., got ..." for
// each family (a family stops at its first mismatch; the next one still runs), then "all checks passed"
// and exits 0, or exits 1 if any family failed; it gives up (exit 2) after a time bound.

"use strict";

const { Mismatch, show, eq, check, sleep, boundTime } = require("./checks");
const { createClient, BasicClientSideCache, MultiErrorReply, WatchError } = require("redis");
const readline = require("readline");

const HOST = "127.0.0.1";
const proxyPort = Number(process.argv[2]);
const wanted = process.argv.slice(3);
if (!proxyPort) {
  console.error("usage: node node_redis_test.js <proxy port> [family ...]");
  process.exit(64);
}

// How long a direct write may take to reach the client's own cache through respcache (a bound).
const SOON_MS = Number(process.env.E2E_SOON_MS || 2000);
boundTime();

const clients = [];
async function connect(options = {}) {
  const c = createClient({
    socket: { host: HOST, port: proxyPort, connectTimeout: 5000, reconnectStrategy: false },
    ...options,
  });
  c.on("error", (e) => console.error(`client error: ${e.message}`));
  clients.push(c);
  await c.connect();
  return c;
}


function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Mismatch(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------------
// The driver (the Python test) for csc.

let lines = null;
let pending = [];
let waiters = [];
function startDriver() {
  if (lines) return;
  lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (l) => {
    if (waiters.length) waiters.shift()(l);
    else pending.push(l);
  });
  lines.on("close", () => {
    for (const w of waiters.splice(0)) w("stdin closed");
    pending.push("stdin closed");
  });
}

async function sync(step, data = {}) {
  console.log(`SYNC ${step} ${JSON.stringify(data)}`);
  const line = pending.length
    ? pending.shift()
    : await withTimeout(new Promise((r) => waiters.push(r)), 20000, `the driver's answer to ${step}`);
  if (line !== "go") throw new Mismatch(`driver at ${step}: ${line}`);
}

// ---------------------------------------------------------------------------------------------------
// Families.

async function basics() {
  const c = await connect();
  const info = await c.sendCommand(["CLIENT", "INFO"]);
  check("CLIENT INFO says resp=3 (node-redis 6 defaults to RESP3)", /\bresp=3\b/.test(String(info)), String(info));
  const hello = await c.hello();
  eq("HELLO proto", hello.proto, 3);
  eq("set", await c.set("nr:s", "v"), "OK");
  eq("get", await c.get("nr:s"), "v");
  eq("get again (served by respcache's cache)", await c.get("nr:s"), "v");
  eq("get missing", await c.get("nr:missing"), null);
  eq("set EX NX on an existing key", await c.set("nr:s", "w", { EX: 100, NX: true }), null);
  check("ttl", (await c.ttl("nr:s")) === -1);
  eq("incr", await c.incr("nr:n"), 1);
  eq("incrBy", await c.incrBy("nr:n", 41), 42);
  eq("mSet", await c.mSet({ "nr:m1": "1", "nr:m2": "2" }), "OK");
  eq("mGet", await c.mGet(["nr:m1", "nr:m2", "nr:missing"]), ["1", "2", null]);
  eq("hSet", await c.hSet("nr:h", { a: "1", b: "2" }), 2);
  eq("hGetAll (a RESP3 map)", await c.hGetAll("nr:h"), { a: "1", b: "2" });
  eq("hGetAll missing", await c.hGetAll("nr:nohash"), {});
  eq("sAdd", await c.sAdd("nr:set", ["x", "y"]), 2);
  eq("sMembers (a RESP3 set)", (await c.sMembers("nr:set")).sort(), ["x", "y"]);
  eq("zAdd", await c.zAdd("nr:z", [{ score: 1.5, value: "a" }]), 1);
  eq("zScore (a RESP3 double)", await c.zScore("nr:z", "a"), 1.5);
  const big = "x".repeat(200000);
  eq("set big", await c.set("nr:big", big), "OK");
  eq("get big", (await c.get("nr:big")).length, big.length);
  eq("del", await c.del(["nr:s", "nr:big"]), 2);
  eq("get deleted", await c.get("nr:s"), null);
  let err = null;
  try {
    await c.hGetAll("nr:n");
  } catch (e) {
    err = e;
  }
  check("WRONGTYPE error", err && /^WRONGTYPE/.test(err.message), String(err && err.message));
  eq("ping after an error", await c.ping(), "PONG");
}

async function pipelines() {
  const c = await connect();
  // Auto-pipelining: everything sent in one tick goes out together.
  const ops = [];
  const expected = [];
  for (let i = 0; i < 300; i++) {
    ops.push(c.set(`nr:p:${i}`, String(i)));
    expected.push("OK");
    ops.push(c.get(`nr:p:${i}`));
    expected.push(String(i));
    ops.push(c.incr(`nr:p:${i}`));
    expected.push(i + 1);
    ops.push(c.get(`nr:p:${i}`));
    expected.push(String(i + 1));
  }
  eq("300 x (set, get, incr, get) auto-pipelined", await Promise.all(ops), expected);
  // An explicit pipeline (no MULTI).
  const p = c.multi();
  for (let i = 0; i < 50; i++) p.get(`nr:p:${i}`);
  p.hSet("nr:ph", "f", "v").hGetAll("nr:ph");
  const got = await p.execAsPipeline();
  eq("execAsPipeline", got.slice(0, 3).concat(got.slice(-2)), ["1", "2", "3", 1, { f: "v" }]);
  eq("execAsPipeline length", got.length, 52);
}

async function multi() {
  const a = await connect();
  const b = await connect();
  const replies = await a.multi().set("nr:t", "1").incr("nr:t").get("nr:t").hSet("nr:th", "f", "v").hGetAll("nr:th").exec();
  eq("MULTI/EXEC", replies, ["OK", 2, "2", 1, { f: "v" }]);
  eq("get after EXEC", await b.get("nr:t"), "2");
  // WATCH: another client's write aborts the transaction.
  await a.watch("nr:t");
  eq("get under watch", await a.get("nr:t"), "2");
  eq("other client's write", await b.set("nr:t", "changed"), "OK");
  let err = null;
  try {
    await a.multi().set("nr:t", "mine").exec();
  } catch (e) {
    err = e;
  }
  check("EXEC after a watched key changed throws WatchError", err instanceof WatchError, String(err));
  eq("the other client's value stands", await a.get("nr:t"), "changed");
  // WATCH without interference: EXEC runs.
  await a.watch("nr:t");
  eq("watched EXEC without interference", await a.multi().set("nr:t", "mine").exec(), ["OK"]);
  eq("value after EXEC", await b.get("nr:t"), "mine");
  // An error inside EXEC is reported per command (node-redis throws MultiErrorReply with every reply).
  let mixed = null;
  try {
    await a.multi().set("nr:t2", "x").incr("nr:t2").get("nr:t2").exec();
  } catch (e) {
    mixed = e;
  }
  check("EXEC with an error reply throws MultiErrorReply", mixed instanceof MultiErrorReply, String(mixed));
  eq("its error indexes", mixed.errorIndexes, [1]);
  check("its replies", mixed.replies[0] === "OK" && /not an integer/.test(String(mixed.replies[1])) &&
    mixed.replies[2] === "x", show(mixed.replies.map(String)));
}

async function pubsub() {
  const pub = await connect();
  const sub = pub.duplicate();
  sub.on("error", (e) => console.error(`subscriber error: ${e.message}`));
  clients.push(sub);
  await sub.connect();
  const got = [];
  let notify = null;
  const listener = (message, channel) => {
    got.push([channel, message]);
    if (notify) notify();
  };
  const waitFor = (n, what) =>
    withTimeout(
      new Promise((resolve) => {
        const done = () => {
          if (got.length >= n) {
            notify = null;
            resolve();
          }
        };
        notify = done;
        done();
      }),
      5000,
      what,
    );
  await sub.subscribe("nr:ch", listener);
  await sub.pSubscribe("nr:pat:*", (message, channel) => listener(message, channel));
  // RESP3: the subscribed connection still answers ordinary commands.
  eq("ping on the subscribed connection", await sub.ping(), "PONG");
  eq("get on the subscribed connection (RESP3)", await sub.get("nr:t"), "mine");
  eq("publish to one subscriber", await pub.publish("nr:ch", "hello"), 1);
  eq("publish to a pattern", await pub.publish("nr:pat:1", "by pattern"), 1);
  for (let i = 0; i < 100; i++) pub.publish("nr:ch", `m${i}`);
  await waitFor(102, "102 messages");
  eq("first messages", got.slice(0, 2), [["nr:ch", "hello"], ["nr:pat:1", "by pattern"]]);
  eq("100 more, in order", got.slice(2).map((x) => x[1]), Array.from({ length: 100 }, (_, i) => `m${i}`));
  await sub.unsubscribe("nr:ch");
  await sub.pUnsubscribe("nr:pat:*");
  eq("publish after unsubscribe", await pub.publish("nr:ch", "nobody"), 0);
  eq("set on the former subscriber", await sub.set("nr:after", "sub"), "OK");
  eq("get through the other connection", await pub.get("nr:after"), "sub");
}

async function pollUntil(what, read, expected, hits) {
  const t0 = Date.now();
  let reads = 0;
  let fromCache = 0;
  for (;;) {
    const before = hits();
    const v = await read();
    reads++;
    if (hits() > before) fromCache++;
    if (show(v) === show(expected)) return { ms: Date.now() - t0, reads, fromCache };
    check(`${what}: still ${show(v)} after ${Date.now() - t0} ms (${reads} reads, ${fromCache} from the ` +
      `client's cache), expected ${show(expected)}`, Date.now() - t0 < SOON_MS);
    await sleep(2);
  }
}

async function csc() {
  if (process.env.E2E_NO_DRIVER === "1") {
    console.log("skipped: csc (no driver)");
    return;
  }
  startDriver();
  const cache = new BasicClientSideCache({ ttl: 0, maxEntries: 0, evictPolicy: "LRU" });
  const invalidations = [];
  cache.on("invalidate", (key) => invalidations.push(key === null ? null : String(key)));
  const c = await connect({ clientSideCache: cache });
  const hits = () => cache.stats().hitCount;
  const info = await c.sendCommand(["CLIENT", "TRACKINGINFO"]);
  check("CLIENT TRACKINGINFO says tracking is on (node-redis sent CLIENT TRACKING ON)",
    show(info).includes('"on"'), show(info));

  // 1. A string: read twice, the second from the client's own cache; then written straight to Redis.
  eq("first get", await c.get("csc:k"), "v1");
  await sync("read1", { hits: hits(), size: cache.size() });
  const h1 = hits();
  eq("second get", await c.get("csc:k"), "v1");
  check("the second get was a hit of the client's cache", hits() === h1 + 1, `hits ${h1} -> ${hits()}`);
  await sync("read2", { hits: hits() });
  // The driver has checked that neither Redis nor respcache saw the second GET, and has set csc:k to v2
  // directly in Redis.
  const r1 = await pollUntil("the direct SET of csc:k to reach the client", () => c.get("csc:k"), "v2", hits);
  await sync("fresh", { ...r1, invalidations });

  // 2. The same for a hash (HGETALL is cacheable too), changed by a direct HSET.
  eq("first hGetAll", await c.hGetAll("csc:h"), { f: "1" });
  const h2 = hits();
  eq("second hGetAll", await c.hGetAll("csc:h"), { f: "1" });
  check("the second hGetAll was a hit of the client's cache", hits() === h2 + 1, `hits ${h2} -> ${hits()}`);
  await sync("hash-cached", { hits: hits() });
  const r2 = await pollUntil("the direct HSET of csc:h to reach the client", () => c.hGetAll("csc:h"),
    { f: "2" }, hits);
  await sync("hash-fresh", r2);

  // 3. A write through the client itself: the next read is its own write (read your writes).
  eq("get, cached again", await c.get("csc:k"), "v2");
  eq("own set", await c.set("csc:k", "v3"), "OK");
  eq("own write read back at once", await c.get("csc:k"), "v3");

  // 4. A direct DEL, then FLUSHALL (the whole client cache is dropped).
  eq("get before DEL", await c.get("csc:k"), "v3");
  await c.get("csc:k");
  await sync("before-del");
  const r3 = await pollUntil("the direct DEL of csc:k to reach the client", () => c.get("csc:k"), null, hits);
  eq("hGetAll, cached", await c.hGetAll("csc:h"), { f: "2" });
  await c.hGetAll("csc:h");
  check("the client's cache holds entries before FLUSHALL", cache.size() > 0, `size ${cache.size()}`);
  await sync("before-flush", r3);
  const t0 = Date.now();
  while (cache.size() !== 0) {
    check(`the client's cache to be emptied by the direct FLUSHALL (size ${cache.size()})`,
      Date.now() - t0 < SOON_MS);
    await sleep(2);
  }
  eq("hGetAll after FLUSHALL", await c.hGetAll("csc:h"), {});
  check("a null invalidation was received", invalidations.includes(null), show(invalidations));
  await sync("done", { flushMs: Date.now() - t0, invalidations: invalidations.length });
}

// A read made while a WATCH is active (respcache sends it on the client's dedicated connection) is kept in
// the client's cache like any other: it must be invalidated like any other when the key is written.
async function cscwatch() {
  if (process.env.E2E_NO_DRIVER === "1") {
    console.log("skipped: cscwatch (no driver)");
    return;
  }
  startDriver();
  const cache = new BasicClientSideCache({ ttl: 0, maxEntries: 0, evictPolicy: "LRU" });
  const c = await connect({ clientSideCache: cache });
  const hits = () => cache.stats().hitCount;
  eq("watch", await c.watch("csc:other"), "OK");
  eq("get under WATCH", await c.get("csc:w"), "old");
  eq("unwatch", await c.unwatch(), "OK");
  const h = hits();
  eq("get again", await c.get("csc:w"), "old");
  check("the second get was a hit of the client's cache", hits() === h + 1, `hits ${h} -> ${hits()}`);
  await sync("watch-read", { hits: hits() });
  const r = await pollUntil("the direct SET of csc:w (read under WATCH) to reach the client", () => c.get("csc:w"),
    "new", hits);
  await sync("watch-fresh", r);
}

const FAMILIES = { basics, pipelines, multi, pubsub, csc, cscwatch };

(async () => {
  const names = wanted.length ? wanted : Object.keys(FAMILIES);
  let failed = false;
  for (const name of names) {
    const fn = FAMILIES[name];
    if (!fn) {
      console.log(`FAIL: ${name}: no such family`);
      failed = true;
      continue;
    }
    try {
      await fn();
      console.log(`ok: ${name}`);
    } catch (e) {
      failed = true;
      console.log(`FAIL: ${name}: ${e instanceof Mismatch ? e.message : e.stack || e}`);
      if (name.startsWith("csc")) console.log("SYNC abort {}");
    }
  }
  for (const c of clients) {
    try {
      c.destroy();
    } catch (e) {
      /* already closed */
    }
  }
  if (lines) lines.close();
  if (!failed) console.log("all checks passed");
  process.exit(failed ? 1 : 0);
})();
