// The examples in Node (examples/node): the seed example (a producer adding one job a second and a worker
// printing them), and call.mjs (a caller waiting for a worker's return value).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT, serverKinds, startServer, waitFor } from "./harness.mjs";

function run(script, port) {
  const child = spawn(process.execPath, [path.join(ROOT, "examples/node", script)], {
    env: { ...process.env, ONCE_PORT: String(port), ONCE_HOST: "127.0.0.1" }, stdio: ["ignore", "pipe", "pipe"],
  });
  child.out = "";
  child.stdout.on("data", (d) => (child.out += d));
  child.stderr.on("data", (d) => (child.out += d));
  child.done = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  return child;
}

for (const kind of serverKinds()) {
  describe(`examples/node on ${kind.name}`, () => {
    let server;
    before(async () => (server = await startServer(kind)));
    after(async () => server?.stop());

    test("the producer's tasks are printed by the consumer; SIGINT stops both cleanly", async () => {
      const consumer = run("consumer.mjs", server.port);
      const producer = run("producer.mjs", server.port);
      try {
        await waitFor(() => (consumer.out.match(/Processing task: Task created at \S+ \S+: \d+/g) ?? []).length >= 2,
          "two tasks processed", 20000);
        assert.match(consumer.out, /Queue size: \d+/);
        assert.match(producer.out, /Pushed \S+: Task created at/);
      } finally {
        producer.kill("SIGINT");
        consumer.kill("SIGINT");
      }
      assert.equal(await producer.done, 0, producer.out);
      assert.equal(await consumer.done, 0, consumer.out);
      assert.doesNotMatch(consumer.out, /failed|Error/);
    });

    test("call.mjs: a caller gets the worker's return value back (call and result)", async () => {
      const child = run("call.mjs", server.port);
      assert.equal(await child.done, 0, child.out);
      assert.match(child.out, /^call: completed \{"url":"https:\/\/cdn.example\/cat-42-small.jpg","bytes":48213\}$/m);
      assert.match(child.out,
        /^result of \S+: completed \{"url":".*cat-43-small.jpg","bytes":48213\} \(progress \{"stage":"resizing"\}\)$/m);
    });
  });
}
