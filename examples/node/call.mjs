// Results: a worker's handler returns a value, and a caller waits for it (ONCE.CALL, ONCE.RESULT ... BLOCK).
//
//     node examples/node/call.mjs [HOST [PORT]]
//
// HOST and PORT default to $ONCE_HOST / $ONCE_PORT, else localhost:6379. It runs a worker and a caller in one
// process on the queue 'thumbnails', prints what each call got back, and exits.
let once;
try {
  once = await import("once-queue");
} catch (err) {
  if (err.code !== "ERR_MODULE_NOT_FOUND") throw err;
  once = await import("../../clients/node/dist/index.js").catch(() => {
    console.error("once-queue is not built: run (cd clients/node && npm ci && npm run build) first");
    process.exit(1);
  });
}

const host = process.argv[2] ?? process.env.ONCE_HOST ?? "localhost";
const port = Number(process.argv[3] ?? process.env.ONCE_PORT ?? 6379);
const connection = { host, port };

// What the handler returns is the job's result: a string or Buffer as it is, anything else as JSON.
const worker = new once.Worker("thumbnails", async (job) => {
  await job.progress({ stage: "resizing" });          // shown by queue.result(id).progress while it runs
  if (job.cancelled) return undefined;                // cancelled meanwhile (queue.cancel): not acknowledged
  return { url: `https://cdn.example/${job.data.image}-small.jpg`, bytes: 48213 };
}, { connection, concurrency: 4 });
worker.on("error", (err) => console.log(`Redis: ${err.message}; retrying`));

const queue = new once.Queue("thumbnails", { connection });
try {
  // push and wait in one round trip; null if 5 s pass first (with cancel: true the job is then cancelled)
  const outcome = await queue.call({ image: "cat-42" }, { timeout: 5000 });
  console.log(`call: ${outcome?.state} ${JSON.stringify(outcome?.json())}`);

  // push now, wait later: keep the outcome 60 s so that it can be read after the job finished
  const id = await queue.add({ image: "cat-43" }, { keep: 60000 });
  const later = await queue.result(id, { wait: 5000 });
  console.log(`result of ${id}: ${later?.state} ${JSON.stringify(later?.json())} (progress ${later?.progressText})`);
} finally {
  await worker.close();
  await queue.close();
}
