import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import Redis from "ioredis";
import { Job, OnceUnsupportedError, Queue } from "../dist/index.js";
import { serverKinds, startServer } from "./harness.mjs";

for (const kind of serverKinds()) {
  describe(`queue on ${kind.name}`, () => {
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

    test("add with options, inspect and stats read back what was pushed", async () => {
      const queue = new Queue("emails", { connection: redis });
      const id = await queue.add({ to: "ada@example.com" }, { id: "welcome-1", delay: 60000, retries: 5, backoff: 250,
        lease: 9000, priority: 7, group: "tenant-a" });
      assert.equal(id, "welcome-1");
      assert.equal(await queue.add("again", { id: "welcome-1" }), "welcome-1", "a live id adds nothing");
      const info = await queue.inspect(id);
      assert.equal(info.state, "delayed");
      assert.deepEqual(JSON.parse(info.payload.toString()), { to: "ada@example.com" });
      assert.equal(info.retries, 5);
      assert.equal(info.priority, 7);
      assert.equal(info.lease, 9000);
      assert.equal(info.group, "tenant-a");
      assert.ok(info.due > Date.now());
      assert.equal(info.leaseDeadline, null);
      assert.equal(await queue.inspect("nope"), null);
      const stats = await queue.stats();
      assert.equal(stats.delayed, 1);
      assert.equal(stats.pushed_total, 1);
      assert.equal(stats.wait_p50_ms, null);
      assert.equal(await queue.cancel([id]), 1);
      assert.equal((await queue.stats()).delayed, 0);
    });

    test("addBulk returns ids in order and pushes each payload once", async () => {
      const queue = new Queue("bulk", { connection: redis });
      const ids = await queue.addBulk(["a", Buffer.from("b"), { c: 1 }], { priority: 2 });
      assert.equal(ids.length, 3);
      const { jobs } = await queue.list("ready", { withPayloads: true });
      assert.deepEqual(jobs.map((j) => j.id), ids);
      assert.deepEqual(jobs.map((j) => j.payload.toString()), ["a", "b", '{"c":1}']);
      assert.ok(jobs.every((j) => j.priority === 2));
      assert.deepEqual(await queue.addBulk([]), []);
    });

    test("schedule, schedules, unschedule", async () => {
      const queue = new Queue("cron", { connection: redis });
      const next = await queue.schedule("digest", "30 2 * * *", { kind: "digest" }, { tz: "Europe/Berlin", retries: 1 });
      assert.ok(next > Date.now());
      const [s] = await queue.schedules();
      assert.equal(s.name, "digest");
      assert.equal(s.spec, "30 2 * * *");
      assert.equal(s.tz, "Europe/Berlin");
      assert.equal(s.nextFire, next);
      assert.equal(s.lastFire, null);
      assert.equal(await queue.unschedule("digest"), true);
      assert.equal(await queue.unschedule("digest"), false);
    });

    test("pause and resume, retry and purge of dead jobs", async () => {
      const queue = new Queue("ops", { connection: redis });
      await queue.add("x");
      assert.equal(await queue.pause(), true);
      assert.equal(await queue.pause(), false);
      assert.equal((await queue.stats()).paused, 1);
      assert.equal(await redis.call("ONCE.RESERVE", "ops"), null, "a paused queue serves nothing");
      assert.equal(await queue.resume(), true);
      const [[id, , attempt]] = await redis.call("ONCE.RESERVE", "ops");
      await redis.call("ONCE.NACK", "ops", id, "ATTEMPT", attempt, "DEAD", "ERROR", "bad");
      assert.equal((await queue.inspect(id)).lastError, "bad");
      assert.equal(await queue.retry("ALL"), 1);
      assert.equal((await queue.inspect(id)).state, "ready");
      assert.equal(await queue.purge("ready"), 1);
      const settings = await queue.configure({ retries: 4, "dead-max": 10 });
      assert.equal(settings.retries, 4);
      assert.equal(settings.dead_max, 10);
    });

    test("call() and job.progress() say so when the module lacks ONCE.CALL / ONCE.PROGRESS", async (t) => {
      const queue = new Queue("calls", { connection: redis });
      const names = (await redis.call("COMMAND", "LIST", "FILTERBY", "PATTERN", "once.*")).map((n) => n.toLowerCase());
      if (names.includes("once.call")) t.skip("this module has ONCE.CALL");
      else await assert.rejects(queue.call("x", { timeout: 100 }), (err) => err instanceof OnceUnsupportedError
        && err.message === "this server's Once module has no ONCE.CALL");
      const job = new Job("calls", { id: "j", payload: Buffer.from("x"), attempt: 1 }, "auto", redis);
      if (!names.includes("once.progress")) {
        await assert.rejects(job.progress({ pct: 50 }), /this server's Once module has no ONCE.PROGRESS/);
      }
    });

    test("bad input is refused with a one-line message", async () => {
      const queue = new Queue("bad", { connection: redis });
      await assert.rejects(queue.add(42), /a payload is a string, a Buffer or an object/);
      await assert.rejects(queue.add("x", { dealy: 5 }), /unknown option 'dealy'/);
      await assert.rejects(queue.add("x", { delay: 5, at: Date.now() }), /DELAY and AT cannot be used together/);
      await assert.rejects(queue.addBulk(["x"], { id: "a" }), /addBulk takes no id/);
      assert.throws(() => new Queue(""), /a queue name is a non-empty string/);
      await redis.set("plain-string", "v");
      await assert.rejects(new Queue("plain-string", { connection: redis }).stats(), /WRONGTYPE/);
    });
  });
}
