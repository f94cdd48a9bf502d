// What the Node benches read off the server for both sides alike: its CPU time and how many commands it ran.

/** The server's CPU seconds so far (user + system, INFO cpu). */
export async function serverCpu(redis) {
  const info = await redis.info("cpu");
  const f = (k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)[1]);
  return f("used_cpu_user") + f("used_cpu_sys");
}

/** Every command the server has run so far (INFO commandstats, summed). */
export async function calls(redis) {
  const info = await redis.info("commandstats");
  return [...info.matchAll(/calls=(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
}
