// Flows (issue 24): jobs pushed `after` others wait until those have completed, a tree pushed in one MULTI by
// addFlow, ON-FAIL, and a handler reading what its dependencies returned with job.deps(). Every dependent is
// shown `waiting` before any worker runs, so each case tests the wait, not an order that happened by chance.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import Redis, { Cluster } from "ioredis";
import calculateSlot from "cluster-key-slot";
import { Dep, FlowError, PermanentError, Queue, Worker } from "../dist/index.js";
import { serverKinds, Server, startServer, waitFor } from "./harness.mjs";

/** A worker on `name` whose handler is `handler`, noting the order in which handlers ran into `ran`. */
function worker(redis, name, ran, handler) {
  return new Worker(name, async (job) => {
    ran.push(`${job.queue} ${job.id}`);
    return handler(job);
  }, { connection: redis, concurrency: 4, blockMs: 200 });
}

async function closeAll(...things) {
  await Promise.all(things.map((t) => t.close()));
}

for (const kind of serverKinds()) {
  describe(`flows on ${kind.name}`, () => {
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

    test("a chain across three same-tag queues runs in order, each handler reading the one before", async () => {
      const charge = new Queue("{shop}:charge", { connection: redis });
      const ship = new Queue("{shop}:ship", { connection: redis });
      const email = new Queue("{shop}:email", { connection: redis });
      const c = await charge.add({ order: 42, cents: 1999 });
      const s = await ship.add({ order: 42 }, { after: [{ queue: charge.name, id: c }] });
      const e = await email.add({ order: 42 }, { after: [{ queue: ship.name, id: s }], keep: 60000 });
      assert.equal((await charge.result(c)).state, "ready");
      assert.equal((await ship.result(s)).state, "waiting");
      assert.equal((await email.result(e)).state, "waiting");
      assert.equal((await ship.stats()).waiting, 1);
      assert.equal((await ship.stats()).ready, 0);
      assert.deepEqual((await ship.list("waiting")).jobs.map((j) => j.id), [s]);
      const info = await email.inspect(e);
      assert.equal(info.state, "waiting");
      assert.equal(info.depsTotal, 1);
      assert.equal(info.depsLeft, 1);
      assert.equal(info.onFail, "fail");

      const ran = [];
      const seen = {};
      // the last queue's worker starts first: a release out of order would run it first
      const workers = [
        worker(redis, email.name, ran, async (job) => {
          seen.email = await job.deps();
          return `mailed ${seen.email[0].json().tracking}`;
        }),
        worker(redis, ship.name, ran, async (job) => {
          seen.ship = await job.deps();
          return { tracking: `T-${seen.ship[0].json().charged}` };
        }),
        worker(redis, charge.name, ran, async (job) => ({ charged: job.data.cents })),
      ];
      try {
        const outcome = await email.result(e, { wait: 20000 });
        assert.equal(outcome.state, "completed");
        assert.equal(outcome.text, "mailed T-1999");
        assert.deepEqual(ran, [`{shop}:charge ${c}`, `{shop}:ship ${s}`, `{shop}:email ${e}`]);
        assert.equal(seen.ship.length, 1);
        assert.ok(seen.ship[0] instanceof Dep);
        assert.equal(seen.ship[0].queue, "{shop}:charge");
        assert.equal(seen.ship[0].id, c);
        assert.equal(seen.ship[0].outcome, "completed");
        assert.ok(seen.ship[0].ok);
        assert.equal(seen.ship[0].text, '{"charged":1999}');
        assert.equal(seen.email[0].id, s);
        assert.deepEqual(seen.email[0].json(), { tracking: "T-1999" });
        assert.equal((await ship.stats()).waiting, 0);
      } finally {
        await closeAll(...workers, charge, ship, email);
      }
    });

    test("add({ after }) takes a bare id of its own queue, a { queue, id } and a worker's job; deps() lists them",
      async () => {
        const q = new Queue("{mix}:a", { connection: redis });
        const other = new Queue("{mix}:b", { connection: redis });
        const first = await q.add("first", { id: "first" });
        await other.add("second", { id: "second" });
        // a Job of the worker is a dependency as it is (it has .queue and .id): push one after the running job
        let fromHandler;
        const w = new Worker(other.name, async (job) => {
          if (job.id === "second") fromHandler = await q.add("third", { id: "third", after: [job, first, job] });
          return `done ${job.id}`;
        }, { connection: redis, blockMs: 200 });
        try {
          await waitFor(() => fromHandler, "the handler's push");
          const deps = await q.deps(fromHandler);
          assert.deepEqual(deps.map((d) => [d.queue, d.id]), [["{mix}:b", "second"], ["{mix}:a", "first"]],
            "one dependency per id (named twice counts once), in the order named");
          assert.ok(deps.every((d) => d instanceof Dep));
          await waitFor(async () => (await q.deps(fromHandler))[0].outcome === "completed", "second to complete");
          const [doneDep, pendingDep] = await q.deps(fromHandler);
          assert.equal(doneDep.text, "done second");
          assert.equal(pendingDep.state, "ready");
          assert.equal(pendingDep.outcome, "pending");
          assert.equal(pendingDep.result, null);
          assert.equal((await q.result(fromHandler)).state, "waiting", "one dependency is still pending");
          assert.equal(await q.deps("no-such-job"), null);
          assert.deepEqual(await q.deps("first"), [], "a job that waits for nothing");
          const page = await q.deps(fromHandler, { from: 1, count: 1 });
          assert.deepEqual(page.map((d) => d.id), ["first"]);
        } finally {
          await closeAll(w, q, other);
        }
      });

    test("deps() reads every page of a job waiting for 2,500 jobs; from/count read one page", async () => {
      const q = new Queue("{pages}:a", { connection: redis });
      try {
        const fresh = await q.addBulk(Array.from({ length: 2500 }, (_, i) => ({ i })), { delay: 60000 });
        const waiting = await q.add("fan-in", { after: fresh });
        const all = await q.deps(waiting);
        assert.equal(all.length, 2500);
        assert.deepEqual(all.map((d) => d.id), fresh, "every page, in the order named");
        assert.ok(all.every((d) => d.state === "delayed" && d.outcome === "pending"));
        const page = await q.deps(waiting, { from: 1999, count: 3 });
        assert.deepEqual(page.map((d) => d.id), fresh.slice(1999, 2002));
      } finally {
        await q.close();
      }
    });

    test("addFlow pushes a tree in one MULTI: children run first, each parent reads its children's results",
      async () => {
        const q = new Queue("{flow}:report", { connection: redis });
        const parts = new Queue("{flow}:parts", { connection: redis });
        const shared = { queue: parts.name, payload: { n: 100 } };
        const tree = {
          payload: { sum: true },
          options: { keep: 60000 },
          children: [
            { queue: parts.name, payload: { n: 1 } },
            {
              queue: parts.name, payload: { sum: true }, options: { id: "middle" },
              children: [{ queue: parts.name, payload: { n: 2 } }, shared],
            },
            shared, // named twice: pushed once, waited on by both parents
          ],
        };
        const pushedBefore = (await q.stats()).pushed_total + (await parts.stats()).pushed_total;
        const calls = (await redis.info("commandstats")).match(/cmdstat_exec:calls=(\d+)/)?.[1] ?? "0";
        const root = await q.addFlow(tree);
        const callsAfter = (await redis.info("commandstats")).match(/cmdstat_exec:calls=(\d+)/)[1];
        assert.equal(Number(callsAfter), Number(calls) + 1, "one MULTI/EXEC");
        assert.equal(root.queue, q.name);
        assert.match(root.id, /^[0-9a-f-]{36}$/, "a client-made id");
        assert.equal(root.children.length, 3);
        const [leaf1, middle, sharedNode] = root.children;
        assert.equal(middle.id, "middle", "an id given in options is kept");
        assert.equal(middle.children[1], sharedNode, "the shared child is one node");
        assert.equal((await q.stats()).pushed_total + (await parts.stats()).pushed_total - pushedBefore, 5);
        assert.equal((await q.result(root.id)).state, "waiting");
        assert.equal((await parts.result("middle")).state, "waiting");
        for (const leaf of [leaf1, middle.children[0], sharedNode]) {
          assert.equal((await parts.result(leaf.id)).state, "ready");
        }
        assert.deepEqual((await q.deps(root.id)).map((d) => d.id), [leaf1.id, "middle", sharedNode.id]);

        const ran = [];
        // a handler that sums its children's results, or returns its own n
        const handler = async (job) => {
          if (!job.data.sum) return job.data.n;
          const deps = await job.deps();
          assert.ok(deps.every((d) => d.outcome === "completed"), "every child completed before its parent ran");
          return deps.reduce((total, d) => total + d.json(), 0);
        };
        const workers = [worker(redis, q.name, ran, handler), worker(redis, parts.name, ran, handler)];
        try {
          const outcome = await q.result(root.id, { wait: 20000 });
          assert.equal(outcome.state, "completed");
          assert.equal(outcome.json(), 1 + (2 + 100) + 100);
          assert.equal(ran.length, 5, "each job ran once");
          const at = (node) => ran.indexOf(`${node.queue} ${node.id}`);
          assert.ok(at(middle) > at(middle.children[0]) && at(middle) > at(sharedNode));
          assert.equal(at(root), 4, "the root ran last");
        } finally {
          await closeAll(...workers, q, parts);
        }
      });

    test("addFlow checks the hash slot before sending: queues of other slots push nothing", async () => {
      const q = new Queue("{one}:a", { connection: redis });
      try {
        const before = (await q.stats()).pushed_total;
        await assert.rejects(q.addFlow({ payload: "p", children: [{ queue: "{two}:b", payload: "c" }] }),
          /share one hash slot/);
        const badOnFail = { payload: "p", options: { onFail: "sometimes" }, children: [{ payload: "c" }] };
        await assert.rejects(q.addFlow(badOnFail), /onFail is "fail", "ignore" or "continue"/);
        const loop = { payload: "loop", children: [] };
        loop.children.push(loop);
        await assert.rejects(q.addFlow(loop), /among its own children/);
        assert.equal((await q.stats()).pushed_total, before);
        assert.equal(await redis.exists("{two}:b"), 0);
      } finally {
        await q.close();
      }
    });

    test("a push refused inside addFlow's MULTI: FlowError lists what was pushed", async () => {
      const q = new Queue("{refuse}:a", { connection: redis });
      try {
        // the server refuses a payload over once.max-payload-bytes at EXEC time, after its sibling was pushed
        const [, max] = await redis.config("GET", "once.max-payload-bytes");
        await redis.config("SET", "once.max-payload-bytes", "1000");
        const err = await q.addFlow({
          payload: "parent", children: [{ payload: "ok", options: { id: "ok" } }, { payload: "x".repeat(1001) }],
        }).then(() => null, (e) => e);
        await redis.config("SET", "once.max-payload-bytes", max);
        assert.ok(err instanceof FlowError, `a FlowError, not ${err}`);
        assert.match(err.message, /over the limit/);
        assert.deepEqual(err.pushed, [{ queue: q.name, id: "ok" }], "the first child was pushed; the parent not");
        assert.equal((await q.stats()).waiting, 0);
        assert.equal((await q.result("ok")).state, "ready");
      } finally {
        await q.close();
      }
    });

    for (const onFail of ["fail", "ignore", "continue"]) {
      test(`onFail "${onFail}": a dependency that dies after its last try, and one that is cancelled`, async () => {
        const q = new Queue(`onfail-${onFail}`, { connection: redis });
        const dies = await q.add("die", { retries: 0 });
        const cancelled = await q.add("wait", { delay: 60000 });
        const lives = await q.add("live", { keep: 60000 }); // kept: its outcome is read after the dependents end
        const options = (dep) => ({ after: [dep, lives], keep: 60000, ...(onFail === "fail" ? {} : { onFail }) });
        const afterDeath = await q.add("after death", options(dies));
        const afterCancel = await q.add("after cancel", options(cancelled));
        assert.equal((await q.inspect(afterDeath)).onFail, onFail, "fail is the default");
        assert.equal(await q.cancel([cancelled]), 1);
        if (onFail === "fail") {
          const now = await q.result(afterCancel);
          assert.equal(now.state, "dead", "dead at the cancel of its dependency");
          assert.equal(now.error, `dependency onfail-fail ${cancelled} was cancelled`);
        } else {
          assert.equal((await q.result(afterCancel)).state, "waiting", "still waiting for the other one");
        }
        const seen = {};
        const w = new Worker(q.name, async (job) => {
          if (job.data === "die") throw new PermanentError("boom");
          if (job.data.startsWith("after")) seen[job.id] = await job.deps();
          return `ran ${job.data}`;
        }, { connection: redis, blockMs: 200 });
        try {
          const death = await q.result(afterDeath, { wait: 20000 });
          const cancel = await q.result(afterCancel, { wait: 20000 });
          assert.equal((await q.result(lives, { wait: 20000 })).state, "completed"); // a dead dependent does not wait
          const [died] = await q.deps(afterDeath);
          assert.deepEqual([died.id, died.state, died.outcome, died.error],
            [dies, "dead", "dead", "PermanentError: boom"]);
          const [gone] = await q.deps(afterCancel);
          assert.deepEqual([gone.id, gone.outcome], [cancelled, "cancelled"]);
          // not asserted: what a dependent that died already says of `lives`, which completed after its death
          if (onFail === "fail") {
            assert.equal(death.state, "dead");
            assert.equal(death.error, `dependency onfail-fail ${dies} died`);
            assert.equal(cancel.state, "dead");
            assert.deepEqual(seen, {}, "neither dependent ran");
          } else {
            assert.equal(death.text, "ran after death");
            assert.equal(cancel.text, "ran after cancel");
            assert.deepEqual(seen[afterDeath].map((d) => d.outcome), ["dead", "completed"]);
            assert.deepEqual((await q.deps(afterCancel)).map((d) => d.outcome), ["cancelled", "completed"]);
            assert.equal(seen[afterDeath][0].error, "PermanentError: boom");
            assert.equal(seen[afterCancel][0].outcome, "cancelled");
            const info = await q.inspect(afterDeath);
            assert.equal(info.depsLeft, 0, "released");
            assert.equal(info.depsFailed, 1);
          }
        } finally {
          await closeAll(w, q);
        }
      });
    }

    test("after() adds dependencies to a waiting job; refusals and client-side checks", async () => {
      const q = new Queue("{later}:a", { connection: redis });
      try {
        const a = await q.add("a", { delay: 60000 });
        const b = await q.add("b", { delay: 60000 });
        const waiting = await q.add("w", { after: [a] });
        assert.equal(await q.after(waiting, [b, a]), 1, "a is already a dependency");
        assert.deepEqual((await q.deps(waiting)).map((d) => d.id), [a, b]);
        assert.equal((await q.inspect(waiting)).depsTotal, 2);
        await assert.rejects(q.after(a, [b]), /job is not waiting/);
        await assert.rejects(q.after("nope", [b]), /no such job/);
        const further = await q.add("further", { after: [waiting] });
        await assert.rejects(q.after(waiting, [further]), /AFTER would make a cycle/);
        const before = (await q.stats()).pushed_total;
        await assert.rejects(q.add("x", { after: ["missing"] }), /AFTER names no job: \{later\}:a missing/);
        await assert.rejects(q.add("x", { after: [{ queue: "{elsewhere}:b", id: a }] }),
          /CROSSSLOT AFTER queue '\{elsewhere\}:b' hashes to another slot/);
        assert.equal((await q.stats()).pushed_total, before, "nothing pushed by a refused push");
        await assert.rejects(q.add("x", { onFail: "ignore" }), /onFail goes with after/);
        await assert.rejects(q.addBulk(["x"], { after: [a] }), /addBulk takes no after/);
        await assert.rejects(q.add("x", { after: [{ queue: q.name }] }), /a dependency is a job id or \{ queue, id \}/);
      } finally {
        await q.close();
      }
    });
  });
}

/** True once the node on `port` sees a cluster with every slot assigned. */
async function clusterOk(port) {
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

for (const kind of serverKinds()) {
  describe(`flows in a Redis Cluster of ${kind.name}`, () => {
    const nodes = [];
    let cluster;
    before(async () => {
      const args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", "2000"];
      for (let i = 0; i < 3; i++) nodes.push(await new Server(kind, args).start());
      execFileSync(kind.cli, ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`),
        "--cluster-replicas", "0", "--cluster-yes"], { stdio: "ignore", timeout: 60000 });
      for (const n of nodes) await waitFor(() => clusterOk(n.port), `cluster ok on :${n.port}`, 30000);
      cluster = new Cluster([{ host: "127.0.0.1", port: nodes[0].port }]);
    });
    after(async () => {
      cluster?.disconnect();
      for (const n of nodes) await n.stop();
    });

    test("addFlow's MULTI goes to the flow's master (not the calling queue's); the parent reads its children",
      async () => {
        // a calling queue whose slot is on another master than the flow's: the MULTI follows the flow's keys
        await cluster.ping(); // connected: its slots map is known
        const master = (key) => cluster.slots[calculateSlot(key)][0];
        const caller = ["a", "b", "c", "d", "e", "f"].map((n) => `caller-${n}`)
          .find((n) => master(n) !== master("{t}:parent"));
        const queue = new Queue(caller, { connection: cluster });
        const root = await queue.addFlow({
          queue: "{t}:parent", payload: "sum", options: { keep: 60000 },
          children: [1, 2, 3].map((n) => ({ queue: "{t}:parts", payload: { n } })),
        });
        await assert.rejects(queue.addFlow({ queue: "{t}:parent", payload: "p", children: [{ payload: "c" }] }),
          /share one hash slot/, "a child in the calling queue, of another slot");
        const parent = new Queue("{t}:parent", { connection: cluster });
        assert.equal((await parent.result(root.id)).state, "waiting");
        const workers = [
          new Worker("{t}:parts", async (job) => job.data.n * 10, { connection: cluster, blockMs: 200 }),
          new Worker("{t}:parent", async (job) => (await job.deps()).map((d) => d.json()),
            { connection: cluster, blockMs: 200 }),
        ];
        try {
          const outcome = await parent.result(root.id, { wait: 20000 });
          assert.deepEqual(outcome.json(), [10, 20, 30]);
          assert.deepEqual((await parent.deps(root.id)).map((d) => d.id), root.children.map((c) => c.id));
        } finally {
          await closeAll(...workers, queue, parent);
        }
      });
  });
}
