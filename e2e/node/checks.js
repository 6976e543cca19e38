// What the Node.js client checks share: a mismatch error, equality by JSON (buffers shown as text),
// sleeping, and the overall time bound of a check script.

"use strict";

class Mismatch extends Error {}

function show(v) {
  return JSON.stringify(v, (k, x) => (Buffer.isBuffer(x) ? `<buffer ${x.toString()}>` : x));
}

function eq(what, actual, expected) {
  if (show(actual) !== show(expected)) {
    throw new Mismatch(`${what}: expected ${show(expected)}, got ${show(actual)}`);
  }
}

function check(what, condition, detail = "") {
  if (!condition) throw new Mismatch(`${what}${detail ? ": " + detail : ""}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Exits 2 if the script is still running after E2E_NODE_TIMEOUT_MS (default 45 s).
function boundTime() {
  const ms = Number(process.env.E2E_NODE_TIMEOUT_MS || 45000);
  setTimeout(() => {
    console.error(`FAIL: not finished after ${ms} ms (a reply never came?)`);
    process.exit(2);
  }, ms).unref();
}

module.exports = { Mismatch, show, eq, check, sleep, boundTime };
