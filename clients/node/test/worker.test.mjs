import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import Redis from "ioredis";
import { Queue, Worker } from "../dist/index.js";
import { serverKinds, sleep, startServer, waitFor } from "./harness.mjs";

for (const kind of serverKinds()) {
  describe(`worker on ${kind.name}`, () => {
    let server;
    let redis;
    before(async () => {
      server = await startServer(kind);
      redis = new Redis(server.port, "127.0.0.1");
    });
    after(async () => {
      redis?.disconnect();
      await server?.stop();
    });

    test("10,000 jobs, concurrency 20: each handled and acknowledged exactly once", async () => {
      const queue = new Queue("drain", { connection: redis });
      const pushed = [];
      for (let i = 0; i < 10000; i += 1000) {
        pushed.push(...await queue.addBulk(Array.from({ length: 1000 }, (_, k) => ({ n: i + k }))));
      }
      assert.equal(new Set(pushed).size, 10000);
      const seen = new Map();
      const completed = new Set();
      let concurrent = 0;
      let most = 0;
      const worker = new Worker("drain", async (job) => {
        concurrent += 1;
        most = Math.max(most, concurrent);
        seen.set(job.id, (seen.get(job.id) ?? 0) + 1);
        assert.equal(typeof job.data.n, "number");
        if (job.data.n % 100 === 0) await sleep(1);
        concurrent -= 1;
        return job.data.n;
      }, { connection: { port: server.port, host: "127.0.0.1" }, concurrency: 20 });
      worker.on("completed", (job, result) => {
        assert.equal(result, job.data.n);
        completed.add(job.id);
      });
      await waitFor(() => completed.size === 10000, "10,000 completions", 120000);
      await worker.close();
      assert.equal(seen.size, 10000);
      assert.ok([...seen.values()].every((c) => c === 1), "a job ran twice");
      assert.deepEqual([...completed].sort(), [...pushed].sort());
      assert.ok(most > 1 && most <= 20, `at most 20 at once (saw ${most})`);
      const stats = await queue.stats();
      assert.equal(stats.acked_total, 10000);
      assert.equal(stats.reserved_total, 10000);
      assert.equal(stats.ready + stats.reserved + stats.delayed + stats.dead, 0);
    });

    test("a throwing handler: NACKed with its error, retried, then dead with last_error", async () => {
      const queue = new Queue("fails", { connection: redis });
      const id = await queue.add("x", { retries: 2, backoff: 10 });
      const attempts = [];
      const failed = [];
      const worker = new Worker("fails", async (job) => {
        attempts.push(job.attempt);
        throw new Error(`boom ${job.attempt}`);
      }, { connection: redis });
      worker.on("failed", (job, err) => failed.push(err.message));
      await waitFor(async () => (await queue.inspect(id))?.state === "dead", "the job to be dead");
      await worker.close();
      assert.deepEqual(attempts, [1, 2, 3]);
      assert.deepEqual(failed, ["boom 1", "boom 2", "boom 3"]);
      const info = await queue.inspect(id);
      assert.equal(info.lastError, "Error: boom 3");
      assert.equal(info.attempts, 3);
      const stats = await queue.stats();
      assert.equal(stats.nacked_total, 3);
      assert.equal(stats.acked_total, 0);
    });

    test("a handler slower than the lease keeps its lease (no expiry, one run)", async () => {
      const queue = new Queue("slow", { connection: redis });
      const id = await queue.add("slow job");
      let runs = 0;
      const lost = [];
      const done = [];
      const worker = new Worker("slow", async (job) => {
        runs += 1;
        await sleep(2500);
        return job.data;
      }, { connection: redis, leaseMs: 600 });
      worker.on("lost", (job) => lost.push(job.id));
      worker.on("completed", (job) => done.push(job.id));
      await waitFor(() => done.length === 1, "the slow job to complete");
      await worker.close();
      assert.equal(runs, 1);
      assert.deepEqual(lost, []);
      assert.deepEqual(done, [id]);
      const stats = await queue.stats();
      assert.equal(stats.expired_total, 0);
      assert.equal(stats.acked_total, 1);
    });

    test("a lease that ran out: the late ACK is refused (lost), the job runs again and completes", async () => {
      const queue = new Queue("late", { connection: redis });
      const id = await queue.add("late job", { backoff: 10 });
      const lost = [];
      const completed = [];
      const worker = new Worker("late", async (job) => {
        if (job.attempt === 1) await sleep(1000);
        return job.attempt;
      }, { connection: redis, leaseMs: 200, extendEveryMs: 60000 });
      worker.on("lost", (job) => lost.push([job.id, job.attempt]));
      worker.on("completed", (job, result) => {
        completed.push([job.id, result]);
        throw new Error("a listener that throws does not stop the worker");
      });
      worker.on("error", () => undefined);
      await waitFor(() => completed.length === 1, "the second attempt to complete");
      await worker.close();
      assert.deepEqual(lost, [[id, 1]]);
      assert.deepEqual(completed, [[id, 2]]);
      const stats = await queue.stats();
      assert.equal(stats.expired_total, 1);
      assert.equal(stats.acked_total, 1);
    });

    test("a batch of ACKs of which one is refused: the others complete, that one is lost", async () => {
      const queue = new Queue("batch", { connection: redis });
      const [keep1, keep2, drop] = await queue.addBulk(["keep", "keep", "drop"], { backoff: 10 });
      let release;
      const gate = new Promise((resolve) => (release = resolve));
      const lost = [];
      const completed = [];
      const worker = new Worker("batch", async (job) => {
        if (job.attempt > 1) return;
        if (job.data === "keep") await job.extendLease(10000);
        await gate; // all three finish in one moment: their ACKs go out as one batch
      }, { connection: redis, concurrency: 3, leaseMs: 200, extendEveryMs: 60000 });
      worker.on("lost", (job) => lost.push([job.id, job.attempt]));
      worker.on("completed", (job) => completed.push([job.id, job.attempt]));
      await waitFor(async () => (await queue.stats()).expired_total === 1, "the lease of 'drop' to run out");
      release();
      await waitFor(() => completed.length === 3, "three completions");
      await worker.close();
      assert.deepEqual(lost, [[drop, 1]]);
      assert.deepEqual(completed.sort(), [[keep1, 1], [keep2, 1], [drop, 2]].sort());
      assert.equal((await queue.stats()).acked_total, 3);
    });

    test("close() during work: the jobs in hand finish and are acked, nothing stays reserved", async () => {
      const queue = new Queue("closing", { connection: redis });
      await queue.addBulk(["a", "b", "c", "d", "e", "f", "g", "h"]);
      const started = [];
      const finished = [];
      const worker = new Worker("closing", async (job) => {
        started.push(job.data);
        await sleep(400);
        finished.push(job.data);
      }, { connection: redis, concurrency: 5 });
      await waitFor(() => started.length === 5, "5 handlers running");
      await worker.close();
      assert.deepEqual([...finished].sort(), [...started].sort());
      assert.equal(started.length, 5, "no job started after close()");
      const stats = await queue.stats();
      assert.equal(stats.reserved, 0);
      assert.equal(stats.acked_total, 5);
      assert.equal(stats.ready, 3);
    });

    test("close() of an idle worker blocked on the server returns at once", async () => {
      const worker = new Worker("idle", async () => undefined, { connection: redis, blockMs: 20000 });
      await waitFor(async () => (await redis.client("LIST")).includes("once-worker-reserve")
        && (await redis.info("clients")).match(/blocked_clients:1/), "the worker to block");
      const t0 = Date.now();
      await worker.close();
      assert.ok(Date.now() - t0 < 2000, `close took ${Date.now() - t0} ms`);
    });

    test("prefetch: one RESERVE fetches up to concurrency jobs, job.data gives back what was pushed", async () => {
      const queue = new Queue("shapes", { connection: redis });
      await queue.add({ a: [1, 2] });
      await queue.add("plain text");
      await queue.add(Buffer.from([0xff, 0x00, 0x41]));
      await queue.add("[not json");
      const got = [];
      const raw = [];
      const worker = new Worker("shapes", async (job) => {
        got.push(job.data);
        raw.push(job.payload);
      }, { connection: redis, concurrency: 4 });
      await waitFor(() => got.length === 4, "4 jobs");
      await worker.close();
      assert.deepEqual(got[0], { a: [1, 2] });
      assert.equal(got[1], "plain text");
      assert.deepEqual(raw[2], Buffer.from([0xff, 0x00, 0x41]));
      assert.equal(got[3], "[not json");
      const stats = await queue.stats();
      assert.equal(stats.reserved_total, 4);
    });

    test("bad options are refused with a clear message", () => {
      assert.throws(() => new Worker("q", async () => 1, { connection: redis, concurrency: 0, autorun: false }),
        /concurrency must be an integer >= 1/);
      assert.throws(() => new Worker("q", "nope", { connection: redis }), /needs a handler function/);
      assert.throws(() => new Worker("q", async () => 1, { connection: redis, decode: "xml", autorun: false }),
        /decode must be/);
    });
  });
}
