// Pushes a task to the Once queue 'tasks' every second.
//
//     node examples/node/producer.mjs [HOST [PORT]]
//
// HOST and PORT default to $ONCE_HOST / $ONCE_PORT, else localhost:6379. Ctrl-C stops it.
// Uses the package `once-queue` if installed (npm install ./clients/node), else this checkout's clients/node build.
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
const queue = new once.Queue("tasks", { connection: { host, port } });

const timer = setInterval(async () => {
  const now = new Date().toISOString().replace("T", " ").slice(0, 19);
  const task = `Task created at ${now}: ${Math.floor(Math.random() * 101)}`;
  try {
    const id = await queue.add(task);
    console.log(`Pushed ${id}: ${task}`);
  } catch (err) {
    console.log(`Redis unavailable (${err.message}); retrying`);
  }
}, 1000);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, async () => {
    clearInterval(timer);
    await queue.close();
  });
}
