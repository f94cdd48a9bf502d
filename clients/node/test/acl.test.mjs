// The worker as README's ACL "worker" user (by name: RESERVE, ACK, NACK, EXTEND, PROGRESS, STATS, RESULT): it
// drains and stops, and sends nothing else but what it can do without (CLIENT ID/UNBLOCK/SETNAME/SETINFO, INFO for
// ioredis' ready check, COMMAND DOCS to learn whether the module takes ACKS).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import Redis from "ioredis";
import { Queue, Worker } from "../dist/index.js";
import { serverKinds, startServer, waitFor } from "./harness.mjs";

const WORKER_ACL = "ACL SETUSER worker on >worker-secret ~jobs:* +ONCE.RESERVE +ONCE.ACK +ONCE.NACK +ONCE.EXTEND "
  + "+ONCE.PROGRESS +ONCE.STATS +ONCE.RESULT";

for (const kind of serverKinds()) {
  describe(`ACL worker user on ${kind.name}`, () => {
    let server;
    let admin;
    before(async () => {
      server = await startServer(kind);
      admin = new Redis(server.port, "127.0.0.1");
      await admin.call(...WORKER_ACL.split(" "));
    });
    after(async () => {
      admin?.disconnect();
      await server?.stop();
    });

    test("drains, nacks, extends and closes with only the worker's rights", async () => {
      const queue = new Queue("jobs:acl", { connection: admin });
      await queue.addBulk(Array.from({ length: 50 }, (_, i) => `job ${i}`), { retries: 0 });
      await admin.call("ACL", "LOG", "RESET");
      const done = [];
      const failed = [];
      const worker = new Worker("jobs:acl", async (job) => {
        if (job.data === "job 7") throw new Error("seven");
        if (job.data === "job 9") await new Promise((r) => setTimeout(r, 300)); // outlives an extension period
        if (job.data === "job 3") await job.progress({ step: 1 });
        return job.data === "job 5" ? { five: 5 } : undefined; // a result: ACK ... RESULT
      }, { connection: { port: server.port, host: "127.0.0.1", username: "worker", password: "worker-secret" },
        concurrency: 4, blockMs: 1000, leaseMs: 300 });
      worker.on("completed", (job) => done.push(job.id));
      worker.on("failed", (job) => failed.push(job.data));
      const errors = [];
      worker.on("error", (err) => errors.push(err.message));
      await waitFor(() => done.length === 49 && failed.length === 1, "49 done and 1 failed");
      const t0 = Date.now();
      await worker.close();
      assert.ok(Date.now() - t0 < 3000, "close() waits at most for the blocked RESERVE");
      assert.deepEqual(errors, []);
      const stats = await queue.stats();
      assert.equal(stats.acked_total, 49);
      assert.equal(stats.dead, 1);
      const refused = (await admin.call("ACL", "LOG")).map((e) => {
        const f = Object.fromEntries(e.reduce((a, v, i) => (i % 2 ? a : [...a, [v, e[i + 1]]]), []));
        return f.object;
      });
      const optional = /^(client\|(id|unblock|setname|setinfo)|info|command\|docs)$/i;
      assert.deepEqual(refused.filter((o) => !optional.test(o)), [], `refused: ${refused}`);
    });
  });
}
