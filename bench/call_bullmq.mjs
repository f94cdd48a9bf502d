// The BullMQ row of bench/call_roundtrip.py: a call's round trip the way a BullMQ user waits for a job today.
//
//     node bench/call_bullmq.mjs --port P [--calls 5000] [--warmup 500]     (a server of yours, module or not)
//     node bench/call_bullmq.mjs [--calls 5000]                              (starts redis-server 7.0 itself)
//
// The caller: `job = await queue.add("call", {p})`, then `await job.waitUntilFinished(queueEvents, 5000)` (BullMQ's
// own wait: QueueEvents reads the queue's events stream with XREAD BLOCK; waitUntilFinished also checks once
// whether the job finished already). The worker: a BullMQ Worker, concurrency 1, in a process of its own (this file
// with --worker), returning "ok:" + the payload; jobs are removed on completion past the last 1000. Calls are made one
// after another; each is timed from before queue.add until the result is back, and checked. Prints one JSON line:
// {n, p50, p90, p99, p999, max, mean (µs), errors, total_calls, bullmq}.
import { fork } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, "clients/node/package.json"));
const bullmq = require("bullmq");

const { values: opts } = parseArgs({
  options: {
    port: { type: "string" },
    calls: { type: "string", default: "5000" },
    warmup: { type: "string", default: "500" },
    worker: { type: "boolean", default: false },
  },
});
const QUEUE = "rpc-bullmq";

if (opts.worker) {
  const connection = { host: "127.0.0.1", port: Number(opts.port), maxRetriesPerRequest: null };
  const worker = new bullmq.Worker(QUEUE, async (job) => `ok:${job.data.p}`, { connection, concurrency: 1 });
  await worker.waitUntilReady();
  process.send("ready");
  process.on("disconnect", () => process.exit(0)); // the caller went away: stop
} else {
  await caller();
}

async function caller() {
  const N = Number(opts.calls);
  const W = Number(opts.warmup);
  if (!(N > 0 && W >= 0)) {
    console.error("--calls must be positive, --warmup not negative");
    process.exit(2);
  }
  let server = null;
  let port = Number(opts.port);
  if (!opts.port) {
    const { serverKinds, startServer } = await import(path.join(root, "clients/node/test/harness.mjs"));
    server = await startServer(serverKinds().find((k) => k.name.startsWith("redis")));
    port = server.port;
  }
  const connection = { host: "127.0.0.1", port, maxRetriesPerRequest: null };
  const child = fork(fileURLToPath(import.meta.url), ["--worker", "--port", String(port)], { stdio: "inherit" });
  const queue = new bullmq.Queue(QUEUE, { connection });
  const events = new bullmq.QueueEvents(QUEUE, { connection });
  try {
    await new Promise((resolve, reject) => {
      child.once("message", resolve);
      child.once("exit", (code) => reject(new Error(`the BullMQ worker exited (${code})`)));
    });
    await queue.waitUntilReady();
    await events.waitUntilReady();
    const us = [];
    let errors = 0;
    for (let i = 0; i < W + N; i++) {
      const p = String(i).padStart(16, "0");
      const t0 = process.hrtime.bigint();
      let got;
      try {
        const job = await queue.add("call", { p }, { removeOnComplete: 1000, removeOnFail: 1000 });
        got = await job.waitUntilFinished(events, 5000);
      } catch (e) {
        got = e;
      }
      const t1 = process.hrtime.bigint();
      if (i < W) continue;
      if (got === `ok:${p}`) us.push(Number(t1 - t0) / 1000);
      else errors += 1;
    }
    us.sort((a, b) => a - b);
    const pct = (q) => us[Math.min(us.length - 1, Math.max(0, Math.round((q / 100) * us.length + 0.5) - 1))];
    console.log(JSON.stringify({
      n: us.length, p50: pct(50), p90: pct(90), p99: pct(99), p999: pct(99.9), max: us[us.length - 1],
      mean: us.reduce((a, b) => a + b, 0) / us.length, errors, total_calls: W + N,
      bullmq: require("bullmq/package.json").version,
    }));
  } finally {
    child.kill();
    await events.close();
    await queue.close();
    if (server) await server.stop();
  }
}
