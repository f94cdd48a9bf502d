// Results (issue 21): a handler's return value as the job's result, read by call() and result({ wait }), progress,
// TTL and KEEP push options, and a running job cancelled (job.cancelled, no ACK). A waiter is shown blocked on the
// server before the job it waits for runs, so each case tests the wake-up, not a reply that was there already.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import Redis from "ioredis";
import { Queue, Result, Worker } from "../dist/index.js";
import { ROOT, serverKinds, sleep, startServer, waitFor } from "./harness.mjs";

const RETURNS = {
  text: "héllo",
  buffer: Buffer.from([0xff, 0x00, 0x72, 0x61, 0x77]),
  json: { n: [1, 2.5, null], ok: true, s: "é" },
  none: undefined,
  number: 42,
};

async function blockedClients(redis) {
  return Number(/blocked_clients:(\d+)/.exec(await redis.info("clients"))[1]);
}

async function commandCalls(redis, name) {
  const m = new RegExp(`cmdstat_${name}:calls=(\\d+)`, "i").exec(await redis.info("commandstats"));
  return m ? Number(m[1]) : 0;
}

/** Runs a Python snippet with the project's Python client (clients/python) and `port` in scope. */
function python(port, code) {
  return execFileSync("python3", ["-c", `import redis, json\nfrom once import Once\nport = ${port}\n${code}`], {
    encoding: "utf8", env: { ...process.env, PYTHONPATH: path.join(ROOT, "clients/python") },
  }).trim();
}

for (const kind of serverKinds()) {
  describe(`results on ${kind.name}`, () => {
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

    test("call(): the handler's return value comes back, string/Buffer as given, other values as JSON", async () => {
      const queue = new Queue("rt", { connection: redis });
      const worker = new Worker("rt", async (job) => RETURNS[job.data], { connection: redis, concurrency: 5 });
      const completed = [];
      worker.on("completed", (job, value) => completed.push([job.data, value]));
      try {
        const outcomes = Object.fromEntries(await Promise.all(Object.keys(RETURNS).map(
          async (k) => [k, await queue.call(k, { timeout: 5000 })])));
        assert.equal((await queue.stats()).pushed_total, 5, "each call sent once");
        for (const o of Object.values(outcomes)) {
          assert.ok(o instanceof Result);
          assert.equal(o.state, "completed");
          assert.ok(o.ok && o.done);
          assert.equal(o.attempts, 1);
          assert.ok(o.finished > Date.now() - 60000);
        }
        assert.equal(outcomes.text.text, "héllo");
        assert.deepEqual(outcomes.buffer.result, RETURNS.buffer);
        assert.deepEqual(outcomes.json.json(), RETURNS.json);
        assert.equal(outcomes.json.text, '{"n":[1,2.5,null],"ok":true,"s":"é"}', "compact JSON, as Python writes");
        assert.equal(outcomes.none.result, null);
        assert.equal(outcomes.none.json(), null);
        assert.equal(outcomes.number.json(), 42);
        await waitFor(() => completed.length === 5, "5 completed events");
        assert.deepEqual(completed.find(([k]) => k === "json")[1], RETURNS.json, "the event has the raw value");
      } finally {
        await worker.close();
        await queue.close();
      }
    });

    test("result({ wait }): a waiter blocked before the job runs is woken by its ACK", async () => {
      const queue = new Queue("wait", { connection: redis });
      const id = await queue.add({ n: 7 }, { keep: 60000 });
      assert.equal(await queue.result("no-such-job"), null);
      const now = await queue.result(id);
      assert.equal(now.state, "ready");
      assert.equal(now.done, false);
      assert.equal(now.finished, null);
      const t0 = Date.now();
      const timedOut = await queue.result(id, { wait: 150 });
      assert.ok(Date.now() - t0 >= 140, "waited on the server");
      assert.equal(timedOut.state, "ready", "at the timeout: the job as it stands");
      const blocked = await blockedClients(redis);
      const waiting = queue.result(id, { wait: 10000 });
      await waitFor(async () => (await blockedClients(redis)) > blocked, "the waiter to block");
      const worker = new Worker("wait", async (job) => ({ doubled: job.data.n * 2 }), { connection: redis });
      try {
        const outcome = await waiting;
        assert.ok(outcome.ok);
        assert.deepEqual(outcome.json(), { doubled: 14 });
        assert.deepEqual((await queue.result(id)).json(), { doubled: 14 }, "kept (KEEP) for a later read");
        const info = await queue.inspect(id);
        assert.equal(info.state, "completed");
        assert.equal(info.result.toString(), '{"doubled":14}');
        assert.ok(info.finished > 0);
      } finally {
        await worker.close();
        await queue.close();
      }
    });

    test("call() timing out: null, the job stays queued; with cancel it is cancelled ('call timed out')", async () => {
      const queue = new Queue("late", { connection: redis });
      try {
        const t0 = Date.now();
        assert.equal(await queue.call("stays", { id: "stays", timeout: 200 }), null);
        assert.ok(Date.now() - t0 >= 190);
        assert.equal((await queue.result("stays")).state, "ready");
        assert.equal(await queue.call("goes", { id: "goes", timeout: 200, cancel: true, keep: 60000 }), null);
        const gone = await queue.result("goes");
        assert.equal(gone.state, "cancelled");
        assert.equal(gone.error, "call timed out");
        const stats = await queue.stats();
        assert.equal(stats.ready, 1);
        assert.equal(stats.cancelled, 1);
        assert.deepEqual((await queue.list("cancelled")).jobs.map((j) => j.id), ["goes"]);
      } finally {
        await queue.close();
      }
      await assert.rejects(queue.call("x", { timeout: -1 }), /timeout is a wait in ms/);
      await assert.rejects(queue.call("x", {}), /call\(\) needs a timeout/);
    });

    test("job.progress() is visible in result() while the job runs", async () => {
      const queue = new Queue("prog", { connection: redis });
      const id = await queue.add("p", { keep: 60000 });
      let release;
      const gate = new Promise((resolve) => (release = resolve));
      const stored = [];
      const worker = new Worker("prog", async (job) => {
        stored.push(await job.progress({ pct: 50 }));
        await gate;
        stored.push(await job.progress("almost"));
        return "done";
      }, { connection: redis });
      try {
        const running = await waitFor(async () => {
          const r = await queue.result(id);
          return r.progress !== null && r;
        }, "the progress");
        assert.equal(running.state, "reserved");
        assert.deepEqual(running.progressJson(), { pct: 50 });
        assert.equal((await queue.inspect(id)).progress.toString(), '{"pct":50}');
        release();
        const outcome = await queue.result(id, { wait: 5000 });
        assert.equal(outcome.text, "done");
        assert.deepEqual(stored, [true, true]);
        await assert.rejects(queue.progress(id, null), /progress needs data/);
        assert.equal(await queue.progress(id, "late", { attempt: 1 }), false, "a finished job takes no progress");
      } finally {
        await worker.close();
        await queue.close();
      }
    });

    test("a running job cancelled: job.cancelled and its signal are set, the worker neither acks nor nacks it",
      async () => {
        const queue = new Queue("cancel", { connection: redis });
        const id = await queue.add("stop me", { keep: 60000 });
        const seen = {};
        const events = [];
        const worker = new Worker("cancel", async (job) => {
          await job.progress("working");
          await new Promise((resolve) => job.signal.addEventListener("abort", resolve));
          seen.cancelled = job.cancelled;
          seen.aborted = job.signal.aborted;
          return "finished anyway"; // returned after the cancel: must not become an ACK
        }, { connection: redis, leaseMs: 5000, extendEveryMs: 50 });
        for (const e of ["completed", "failed", "lost", "cancelled"]) worker.on(e, (job) => events.push([e, job.id]));
        const acks = await commandCalls(redis, "once.ack");
        try {
          await waitFor(async () => (await queue.result(id)).progressText === "working", "the handler's progress");
          assert.equal(await queue.cancel([id]), 1);
          await waitFor(() => events.length > 0 && seen.cancelled !== undefined, "the worker to learn the cancel");
          await sleep(100);
        } finally {
          await worker.close();
        }
        assert.deepEqual(events, [["cancelled", id]]);
        assert.deepEqual(seen, { cancelled: true, aborted: true });
        assert.equal(await commandCalls(redis, "once.ack"), acks, "no ACK sent");
        const outcome = await queue.result(id);
        assert.equal(outcome.state, "cancelled");
        assert.equal(outcome.error, "cancelled");
        assert.equal(outcome.result, null);
        const stats = await queue.stats();
        assert.equal(stats.acked_total, 0);
        assert.equal(stats.nacked_total, 0);
        await queue.close();
      });

    test("a result the server refuses (too large) dead-letters the job; a TTL expires an unreserved job",
      async () => {
        const queue = new Queue("big", { connection: redis });
        const [, before] = await redis.config("GET", "once.max-payload-bytes");
        await redis.config("SET", "once.max-payload-bytes", "1024");
        const worker = new Worker("big", async () => "x".repeat(2048), { connection: redis });
        const failed = [];
        worker.on("failed", (job, err) => failed.push(err.message));
        try {
          const outcome = await queue.call("big", { timeout: 5000 });
          assert.equal(outcome.state, "dead");
          assert.match(outcome.error, /^PermanentError: result refused: /);
          // The worker emits `failed` once its NACK has been answered, which may be after the caller has the
          // outcome: wait for the event, then count it.
          await waitFor(() => failed.length > 0, "the worker's failed event", 5000);
          assert.equal(failed.length, 1);
        } finally {
          await worker.close();
          await redis.config("SET", "once.max-payload-bytes", before);
        }
        const ttl = new Queue("ttl", { connection: redis });
        const dead = await ttl.add("too late", { ttl: 50, keep: 60000 });
        const dropped = await ttl.add("dropped", { ttl: 50, ttlDrop: true });
        const outcome = await ttl.result(dead, { wait: 5000 });
        assert.equal(outcome.state, "dead");
        assert.equal(outcome.error, "expired before start");
        await waitFor(async () => (await ttl.result(dropped)) === null, "the TTL DROP job to be removed", 5000);
        assert.equal((await ttl.stats()).expired_unstarted_total, 2);
        await assert.rejects(ttl.add("x", { ttlDrop: true }), /ttlDrop goes with ttl/);
        await assert.rejects(ttl.addBulk(["x"], { keep: 10 }), /addBulk takes no keep/);
        await ttl.close();
        await queue.close();
      });

    test("the Python client reads a Node worker's result, and a Node caller a Python-written one", async () => {
      const queue = new Queue("py", { connection: redis });
      const worker = new Worker("py", async (job) => (job.data === "from-node" ? RETURNS.json : undefined),
        { connection: redis });
      try {
        const id = await queue.add("from-node", { keep: 60000 });
        assert.ok((await queue.result(id, { wait: 5000 })).ok);
        const read = python(server.port,
          `print(json.dumps(Once(redis.Redis(port=port), "py").result("${id}").json()))`);
        assert.deepEqual(JSON.parse(read), RETURNS.json);
      } finally {
        await worker.close();
      }
      const id = await queue.add("for-python", { keep: 60000 });
      python(server.port, `o = Once(redis.Redis(port=port), "py")
[job] = o.reserve()
assert o.ack(job, result={"n": [1, 2.5, None], "ok": True, "s": "é"}) == 1`);
      const outcome = await queue.result(id);
      assert.deepEqual(outcome.json(), RETURNS.json);
      assert.equal(outcome.result.toString(), JSON.stringify(RETURNS.json));
      await queue.close();
    });
  });
}
