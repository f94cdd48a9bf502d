// The Once Node worker beside a BullMQ worker, same machine, same server, same no-op jobs: jobs/s and CPU per job.
//
//     (cd clients/node && npm ci && npm run build)
//     node bench/node_vs_bullmq.mjs [--jobs 20000] [--concurrency 20] [--server redis|valkey] [--rounds 1]
//
// "Once raw loop" is the worker's commands without a worker (RESERVE COUNT c with the previous batch's fenced ACKS
// inside), the bound a worker's client-side overhead is measured against.
// Starts its own redis-server 7.0 (or valkey-server 9.1) with the module on a free loopback port. For each side:
// push N no-op jobs (not timed), then time a worker draining them. Server CPU per job is the delta of INFO cpu
// (used_cpu_user + used_cpu_sys) over the drain, divided by N; commands per job from INFO commandstats. BullMQ
// jobs are removed on completion (Once keeps no finished jobs either).
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, "clients/node/package.json"));
const { Redis } = require("ioredis");
const bullmq = require("bullmq");
const once = require(path.join(root, "clients/node/dist/index.js"));
const { serverKinds, startServer, waitFor } = await import(path.join(root, "clients/node/test/harness.mjs"));
const { serverCpu, calls } = await import(path.join(root, "bench/server_figures.mjs"));

const { values: opts } = parseArgs({
  options: {
    jobs: { type: "string", default: "20000" },
    concurrency: { type: "string", default: "20" },
    server: { type: "string", default: "redis" },
    rounds: { type: "string", default: "1" },
  },
});
const N = Number(opts.jobs);
const C = Number(opts.concurrency);
if (!(N > 0 && C > 0)) {
  console.error("--jobs and --concurrency must be positive numbers");
  process.exit(2);
}
const kind = serverKinds().find((k) => k.name.startsWith(opts.server));
if (!kind) {
  console.error(`--server must be redis or valkey, not ${opts.server}`);
  process.exit(2);
}

/** Times `drain()` (resolves when N jobs are done): jobs/s, server and client CPU µs per job, commands per job. */
async function measure(redis, drain) {
  await redis.config("RESETSTAT");
  const cpu0 = await serverCpu(redis);
  const calls0 = await calls(redis);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  await drain();
  const secs = (performance.now() - t0) / 1000;
  const client = process.cpuUsage(client0);
  const cpu = await serverCpu(redis) - cpu0;
  const cmds = await calls(redis) - calls0 - 2; // the INFO calls of this measurement
  return {
    jobsPerSec: N / secs,
    serverUsPerJob: (cpu * 1e6) / N,
    clientUsPerJob: (client.user + client.system) / N,
    commandsPerJob: cmds / N,
  };
}

async function onceSide(server, redis) {
  const queue = new once.Queue("bench", { connection: redis });
  for (let i = 0; i < N; i += 1000) await queue.addBulk(Array.from({ length: Math.min(1000, N - i) }, () => "x"));
  let done = 0;
  const result = await measure(redis, async () => {
    const worker = new once.Worker("bench", async () => undefined,
      { connection: { host: "127.0.0.1", port: server.port }, concurrency: C });
    worker.on("completed", () => (done += 1));
    await waitFor(() => done >= N, "the Once drain", 600000);
    await worker.close();
  });
  const stats = await queue.stats();
  if (stats.acked_total !== N) throw new Error(`Once acked ${stats.acked_total} of ${N}`);
  return result;
}

/** The same commands without a worker: RESERVE COUNT C ACKS n id attempt ... WITHACK (the last round's jobs). */
async function rawSide(server, redis) {
  const queue = new once.Queue("bench", { connection: redis });
  for (let i = 0; i < N; i += 1000) await queue.addBulk(Array.from({ length: Math.min(1000, N - i) }, () => "x"));
  const conn = new Redis(server.port, "127.0.0.1");
  const result = await measure(redis, async () => {
    let acks = [];
    for (let done = 0; done < N;) {
      const args = ["bench", "COUNT", C];
      if (acks.length) args.push("ACKS", acks.length, ...acks.flat(), "WITHACK");
      const reply = await conn.call("ONCE.RESERVE", ...args);
      const jobs = (acks.length ? reply[1] : reply) ?? [];
      done += jobs.length;
      acks = jobs.map(([id, , attempt]) => [id, attempt]);
    }
    if (acks.length) await conn.call("ONCE.ACK", "bench", "ACKS", acks.length, ...acks.flat());
  });
  conn.disconnect();
  return result;
}

async function bullSide(server, redis) {
  const connection = { host: "127.0.0.1", port: server.port, maxRetriesPerRequest: null };
  const queue = new bullmq.Queue("bench", { connection });
  for (let i = 0; i < N; i += 1000) {
    await queue.addBulk(Array.from({ length: Math.min(1000, N - i) }, () => ({ name: "noop", data: "x",
      opts: { removeOnComplete: true } })));
  }
  let done = 0;
  const result = await measure(redis, async () => {
    const worker = new bullmq.Worker("bench", async () => undefined, { connection, concurrency: C });
    worker.on("completed", () => (done += 1));
    await waitFor(() => done >= N, "the BullMQ drain", 600000);
    await worker.close();
  });
  await queue.close();
  return result;
}

const server = await startServer(kind);
const redis = new Redis(server.port, "127.0.0.1");
try {
  const rows = [];
  for (let r = 0; r < Number(opts.rounds); r++) {
    await redis.flushall();
    rows.push(["Once Worker", await onceSide(server, redis)]);
    await redis.flushall();
    rows.push(["Once raw loop", await rawSide(server, redis)]);
    await redis.flushall();
    rows.push(["BullMQ Worker", await bullSide(server, redis)]);
  }
  console.log(`${kind.name}, ${N} no-op jobs, concurrency ${C}, node ${process.version}, bullmq ${require("bullmq/package.json").version}`);
  console.log("worker          jobs/s   server µs/job   client µs/job   commands/job");
  for (const [name, m] of rows) {
    console.log(`${name.padEnd(14)} ${m.jobsPerSec.toFixed(0).padStart(7)} ${m.serverUsPerJob.toFixed(1).padStart(15)}`
      + ` ${m.clientUsPerJob.toFixed(1).padStart(15)} ${m.commandsPerJob.toFixed(2).padStart(14)}`);
  }
} finally {
  redis.disconnect();
  await server.stop();
}
