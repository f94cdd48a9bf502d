// Processes the tasks of the Once queue 'tasks' (see producer.mjs), printing the queue size now and then.
//
//     node examples/node/consumer.mjs [HOST [PORT]]
//
// HOST and PORT default to $ONCE_HOST / $ONCE_PORT, else localhost:6379. Ctrl-C (or SIGTERM) lets the task in
// hand finish and be acknowledged, then exits.
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

const worker = new once.Worker("tasks", async (job) => {
  console.log(`Processing task: ${job.data}`);
}, { connection });

worker.on("failed", (job, err) => console.log(`Task ${job.id} failed: ${err.message}`));
worker.on("error", (err) => console.log(`Redis: ${err.message}; retrying`));

const queue = new once.Queue("tasks", { connection });
const showSize = async () => {
  const stats = await queue.stats().catch(() => null);
  if (stats) console.log(`Queue size: ${stats.ready}`);
};
void showSize();
const monitor = setInterval(showSize, 5000);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, async () => {
    clearInterval(monitor);
    await worker.close();
    await queue.close();
  });
}
