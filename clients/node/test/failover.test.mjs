// A Sentinel failover mid-drain: the old master becomes a replica (its blocked RESERVE is answered UNBLOCKED, its
// clients are killed), the worker finds the new master through Sentinel and every job gets done.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import Redis from "ioredis";
import { Queue, Worker } from "../dist/index.js";
import { serverKinds, sleep, startSentinel, startServer, waitFor } from "./harness.mjs";

for (const kind of serverKinds()) {
  describe(`Sentinel failover on ${kind.name}`, () => {
    let master;
    let replica;
    let sentinel;
    before(async () => {
      master = await startServer(kind);
      replica = await startServer(kind, ["--replicaof", "127.0.0.1", String(master.port)]);
      sentinel = await startSentinel(kind, master.port);
      const s = new Redis(sentinel.port, "127.0.0.1");
      try {
        await waitFor(async () => (await s.call("SENTINEL", "REPLICAS", "once")).some((r) => {
          const f = Object.fromEntries(r.reduce((a, v, i) => (i % 2 ? a : [...a, [v, r[i + 1]]]), []));
          return f.port === String(replica.port) && f.flags === "slave" && f["master-link-status"] === "ok";
        }), "the sentinel to see the replica", 30000);
      } finally {
        s.disconnect();
      }
    });
    after(async () => {
      await sentinel?.stop();
      await replica?.stop();
      await master?.stop();
    });

    test("the worker follows the new master and every job gets done", async () => {
      const connection = { sentinels: [{ host: "127.0.0.1", port: sentinel.port }], name: "once" };
      const queue = new Queue("failover", { connection });
      const first = await queue.addBulk(Array.from({ length: 2000 }, (_, i) => `job ${i}`));
      const m = new Redis(master.port, "127.0.0.1");
      await m.call("WAIT", 1, 5000);
      m.disconnect();
      const seen = new Map();
      const worker = new Worker("failover", async (job) => {
        seen.set(job.id, (seen.get(job.id) ?? 0) + 1);
        await sleep(5);
      }, { connection, concurrency: 2, leaseMs: 3000, maxBackoffMs: 300 });
      let failedOver = false;
      let doneAfter = 0;
      worker.on("error", () => undefined); // connection errors while the master changes: the worker retries
      worker.on("completed", () => { if (failedOver) doneAfter += 1; });
      await waitFor(() => seen.size >= 300, "300 jobs handled");
      const s = new Redis(sentinel.port, "127.0.0.1");
      await s.call("SENTINEL", "FAILOVER", "once");
      await waitFor(async () => (await s.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "once"))[1] === String(replica.port),
        "the replica to be master", 30000);
      s.disconnect();
      failedOver = true;
      const left = 2000 - seen.size;
      let second;
      await waitFor(async () => (second = await queue.addBulk(["after 1", "after 2"]).catch(() => null)),
        "a push to the new master");
      await waitFor(() => [...first, ...second].every((id) => seen.has(id)), "every job handled", 60000);
      await waitFor(async () => {
        const st = await queue.stats();
        return st.ready + st.reserved + st.delayed === 0;
      }, "nothing left ready or reserved", 30000);
      await worker.close();
      await queue.close();
      assert.ok(left > 100 && doneAfter >= left, `the worker went on after the failover (${doneAfter} of ${left})`);
      const direct = new Redis(replica.port, "127.0.0.1");
      assert.equal((await direct.info("replication")).match(/role:(\w+)/)[1], "master");
      const stats = await new Queue("failover", { connection: direct }).stats();
      direct.disconnect();
      assert.equal(stats.dead, 0);
    });
  });
}
