// Redis Cluster: 3 masters made by `redis-cli --cluster create`; a hash-tagged queue is drained through an ioredis
// Cluster, and its slot is moved to another master mid-drain (MIGRATE), which the worker follows (MOVED).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import Redis, { Cluster } from "ioredis";
import calculateSlot from "cluster-key-slot";
import { Queue, Worker } from "../dist/index.js";
import { serverKinds, sleep, Server, waitFor } from "./harness.mjs";

const CLUSTER_ARGS = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"];

async function clusterState(port) {
  const c = new Redis(port, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await c.connect();
    const info = await c.cluster("INFO");
    return /cluster_state:ok/.test(info) && /cluster_slots_assigned:16384/.test(info);
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

/** Moves `slot` from the master on port `from` to the one on port `to`, keys and all, and tells every master. */
async function moveSlot(slot, from, to, allPorts) {
  const src = new Redis(from, "127.0.0.1");
  const dst = new Redis(to, "127.0.0.1");
  try {
    const srcId = await src.cluster("MYID");
    const dstId = await dst.cluster("MYID");
    await dst.cluster("SETSLOT", slot, "IMPORTING", srcId);
    await src.cluster("SETSLOT", slot, "MIGRATING", dstId);
    for (;;) {
      const keys = await src.cluster("GETKEYSINSLOT", slot, 100);
      if (keys.length === 0) break;
      await src.migrate("127.0.0.1", to, "", 0, 5000, "KEYS", ...keys);
    }
    for (const port of [to, ...allPorts.filter((p) => p !== to)]) {
      const c = new Redis(port, "127.0.0.1");
      await c.cluster("SETSLOT", slot, "NODE", dstId);
      c.disconnect();
    }
  } finally {
    src.disconnect();
    dst.disconnect();
  }
}

async function ownerPort(port, slot) {
  const c = new Redis(port, "127.0.0.1");
  try {
    for (const [start, end, [, p]] of await c.cluster("SLOTS")) if (slot >= start && slot <= end) return p;
    return null;
  } finally {
    c.disconnect();
  }
}

for (const kind of serverKinds()) {
  describe(`Redis Cluster of ${kind.name}`, () => {
    const nodes = [];
    let cluster;
    before(async () => {
      for (let i = 0; i < 3; i++) nodes.push(await new Server(kind, CLUSTER_ARGS).start());
      execFileSync(kind.cli, ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`),
        "--cluster-replicas", "0", "--cluster-yes"], { stdio: "ignore", timeout: 60000 });
      for (const n of nodes) await waitFor(() => clusterState(n.port), `cluster ok on :${n.port}`, 30000);
      cluster = new Cluster([{ host: "127.0.0.1", port: nodes[0].port }]);
    });
    after(async () => {
      cluster?.disconnect();
      for (const n of nodes) await n.stop();
    });

    test("a hash-tagged queue drains through a Cluster, and follows its slot to another master", async () => {
      const name = "{mail}:outbox";
      const slot = calculateSlot(name);
      const queue = new Queue(name, { connection: cluster });
      const first = await queue.addBulk(Array.from({ length: 2000 }, (_, i) => ({ i })));
      const seen = new Map();
      let completed = 0;
      const worker = new Worker(name, async (job) => {
        seen.set(job.id, (seen.get(job.id) ?? 0) + 1);
        await sleep(1);
      }, { connection: cluster, concurrency: 10, leaseMs: 3000, maxBackoffMs: 300 });
      worker.on("completed", () => (completed += 1));
      const errors = [];
      worker.on("error", (err) => errors.push(err.message)); // MOVED and ASK while the slot moves: it retries
      await waitFor(() => completed >= 300, "300 jobs done");
      const ports = nodes.map((n) => n.port);
      const from = await ownerPort(ports[0], slot);
      const to = ports.find((p) => p !== from);
      await moveSlot(slot, from, to, ports);
      const second = await queue.addBulk(Array.from({ length: 500 }, (_, i) => ({ i: 2000 + i })));
      const all = [...first, ...second];
      await waitFor(() => all.every((id) => seen.has(id)), "every job handled after the move", 60000);
      await waitFor(async () => {
        const s = await queue.stats();
        return s.ready + s.reserved + s.delayed === 0;
      }, "nothing left ready or reserved");
      await worker.close();
      assert.equal(await ownerPort(ports[0], slot), to);
      assert.ok(errors.some((e) => /^(MOVED|ASK)/.test(e)), `the worker was redirected: ${errors.join("; ")}`);
      const direct = new Redis(to, "127.0.0.1");
      const stats = await new Queue(name, { connection: direct }).stats();
      direct.disconnect();
      assert.equal(stats.dead, 0);
      assert.equal(stats.pushed_total, 2500);
      // a job runs twice only if its lease ran out while the slot moved
      assert.ok([...seen.values()].filter((c) => c > 1).length <= 20);
    });

    test("call() and result({ wait }) wait on the queue's master, and follow its slot to another", async () => {
      const name = "{rpc}:calls";
      const slot = calculateSlot(name);
      const queue = new Queue(name, { connection: cluster });
      const worker = new Worker(name, async (job) => ({ twice: job.data.n * 2 }), { connection: cluster });
      worker.on("error", () => undefined); // its RESERVE's MOVED after the move: it follows
      try {
        assert.deepEqual((await queue.call({ n: 21 }, { timeout: 5000 })).json(), { twice: 42 });
        const ports = nodes.map((n) => n.port);
        const from = await ownerPort(ports[0], slot);
        await moveSlot(slot, from, ports.find((p) => p !== from), ports);
        // the queue's idle waiting connection still talks to the old master: MOVED, then the new one
        const outcome = await queue.call({ n: 5 }, { timeout: 5000 });
        assert.deepEqual(outcome?.json(), { twice: 10 });
        const id = await queue.add({ n: 8 }, { keep: 60000 });
        assert.deepEqual((await queue.result(id, { wait: 5000 })).json(), { twice: 16 });
      } finally {
        await worker.close();
        await queue.close();
      }
    });
  });
}
