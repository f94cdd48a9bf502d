// A fan-in end to end, Once beside BullMQ's FlowProducer: push N children and one parent that waits for them, the
// workers run them all, and the clock stops when the parent's handler has read its children's results.
//
//     (cd clients/node && npm ci && npm run build)
//     node bench/flows_bullmq.mjs [--children 1000] [--concurrency 20] [--rounds 3] [--server redis|valkey] [--json]
//
// Both sides on one redis-server 7.0 (or valkey-server 9.1) with the module loaded (ONCE_MODULE, else
// target/release/libonce.so), started here on a free loopback port, FLUSHALL between runs; one worker per side,
// in this process, with the same concurrency, started (and warmed up with a small flow) before the clock starts.
//   Once:   queue.addFlow({ payload, children: N × { payload: { i } } }) (one MULTI: N+1 ONCE.PUSH, the parent
//           with AFTER); a child returns 2i (ACK ... RESULT); the parent reads job.deps() and sums them.
//   BullMQ: new FlowProducer().add({ name, queueName, data, children: N × { ..., data: { i } } }); a child returns
//           2i; the parent reads job.getChildrenValues() and sums them. Jobs removed on completion.
// Each side's sum is checked (every child ran and its result reached the parent). Figures per side: push (ms
// until the add resolved), total (ms until the parent's handler had the sum), jobs/s ((N+1) / total), server CPU
// (INFO cpu delta over the run) and commands (INFO commandstats delta). Rounds alternate which side goes first;
// medians are printed side by side, every round with --json (one line, for bench/bench.py).
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, "clients/node/package.json"));
const { Redis } = require("ioredis");
const bullmq = require("bullmq");
const once = require(path.join(root, "clients/node/dist/index.js"));
// The harness starts the server with ONCE_MODULE's module, as bench/bench.py sets it.
const { serverKinds, startServer } = await import(path.join(root, "clients/node/test/harness.mjs"));
const { serverCpu, calls } = await import(path.join(root, "bench/server_figures.mjs"));

const { values: opts } = parseArgs({
  options: {
    children: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "20" },
    rounds: { type: "string", default: "3" },
    server: { type: "string", default: "redis" },
    json: { type: "boolean", default: false },
  },
});
const N = Number(opts.children);
const C = Number(opts.concurrency);
const ROUNDS = Number(opts.rounds);
if (!(Number.isInteger(N) && N > 0 && Number.isInteger(C) && C > 0 && Number.isInteger(ROUNDS) && ROUNDS > 0)) {
  console.error("--children, --concurrency and --rounds are positive integers");
  process.exit(2);
}
const kind = serverKinds().find((k) => k.name.startsWith(opts.server));
if (!kind) {
  console.error(`--server must be redis or valkey, not ${opts.server}`);
  process.exit(2);
}
const EXPECTED = N * (N - 1); // the sum of 2i for i < N

/**
 * Times one fan-in: `push(n)` adds it and resolves when added; `parentDone` (set by the side before) resolves with
 * the parent's sum. Returns the figures of one run.
 */
async function measure(redis, push, parentDone) {
  await redis.config("RESETSTAT");
  const cpu0 = await serverCpu(redis);
  const calls0 = await calls(redis);
  const t0 = performance.now();
  await push(N);
  const pushMs = performance.now() - t0;
  const sum = await parentDone;
  const totalMs = performance.now() - t0;
  const cpuMs = (await serverCpu(redis) - cpu0) * 1000;
  const commands = await calls(redis) - calls0 - 2; // the INFO calls of this measurement
  if (sum !== EXPECTED) throw new Error(`the parent summed ${sum}, not ${EXPECTED}: children or results missing`);
  return { pushMs, totalMs, jobsPerSec: (N + 1) / (totalMs / 1000), serverCpuMs: cpuMs, commands };
}

/** A promise resolved by the next parent's handler, and the function that resolves it. */
function nextParent() {
  let resolve;
  const done = new Promise((r) => (resolve = r));
  return { done, resolve: (v) => resolve(v) };
}

async function onceSide(port, redis) {
  const connection = { host: "127.0.0.1", port };
  const queue = new once.Queue("{fan}", { connection });
  let parent = nextParent();
  const worker = new once.Worker("{fan}", async (job) => {
    if (job.data.parent === undefined) return 2 * job.data.i;
    const deps = await job.deps();
    const sum = deps.reduce((total, d) => total + (d.ok ? d.json() : NaN), 0);
    parent.resolve(deps.length === job.data.parent ? sum : NaN);
    return sum;
  }, { connection, concurrency: C });
  worker.on("error", (err) => console.error(`once worker: ${err.message}`));
  const push = (n) => queue.addFlow({
    payload: { parent: n }, children: Array.from({ length: n }, (_, i) => ({ payload: { i } })),
  });
  try {
    await push(3); // warm-up: connections open, the worker's first RESERVE sent
    await parent.done;
    parent = nextParent();
    return await measure(redis, push, parent.done);
  } finally {
    await worker.close();
    await queue.close();
  }
}

async function bullSide(port, redis) {
  const connection = { host: "127.0.0.1", port, maxRetriesPerRequest: null };
  const flows = new bullmq.FlowProducer({ connection });
  let parent = nextParent();
  const worker = new bullmq.Worker("fan", async (job) => {
    if (job.data.parent === undefined) return 2 * job.data.i;
    const values = Object.values(await job.getChildrenValues());
    const sum = values.reduce((total, v) => total + v, 0);
    parent.resolve(values.length === job.data.parent ? sum : NaN);
    return sum;
  }, { connection, concurrency: C });
  worker.on("error", (err) => console.error(`bullmq worker: ${err.message}`));
  const done = { removeOnComplete: true };
  const push = (n) => flows.add({
    name: "parent", queueName: "fan", data: { parent: n }, opts: done,
    children: Array.from({ length: n }, (_, i) => ({ name: "child", queueName: "fan", data: { i }, opts: done })),
  });
  try {
    await worker.waitUntilReady();
    await push(3);
    await parent.done;
    parent = nextParent();
    return await measure(redis, push, parent.done);
  } finally {
    await worker.close();
    await flows.close();
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const server = await startServer(kind);
const redis = new Redis(server.port, "127.0.0.1");
try {
  const runs = { once: [], bullmq: [] };
  const sides = { once: onceSide, bullmq: bullSide };
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of r % 2 ? ["bullmq", "once"] : ["once", "bullmq"]) {
      await redis.flushall();
      runs[name].push(await sides[name](server.port, redis));
    }
  }
  const med = Object.fromEntries(Object.entries(runs).map(([name, rs]) => [name,
    Object.fromEntries(Object.keys(rs[0]).map((k) => [k, median(rs.map((x) => x[k]))]))]));
  const meta = { server: kind.name, children: N, concurrency: C, rounds: ROUNDS, node: process.version,
    bullmq: require("bullmq/package.json").version };
  if (opts.json) {
    console.log(JSON.stringify({ ...meta, median: med, runs }));
  } else {
    console.log(`${kind.name}, fan-in of ${N} children + 1 parent, concurrency ${C}, median of ${ROUNDS} rounds, `
      + `node ${process.version}, bullmq ${meta.bullmq}`);
    console.log("side                 push ms   total ms     jobs/s   server CPU ms   commands");
    const label = { once: "Once addFlow", bullmq: "BullMQ FlowProducer" };
    for (const [name, m] of Object.entries(med)) {
      console.log(`${label[name].padEnd(19)} ${m.pushMs.toFixed(1).padStart(8)} ${m.totalMs.toFixed(1).padStart(10)}`
        + ` ${m.jobsPerSec.toFixed(0).padStart(10)} ${m.serverCpuMs.toFixed(1).padStart(15)}`
        + ` ${String(m.commands).padStart(10)}`);
    }
  }
} finally {
  redis.disconnect();
  await server.stop();
}
