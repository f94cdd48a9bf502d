// The worker: runs a handler on a queue's jobs, `concurrency` at a time.
//
// One loop reserves on a connection of its own: `ONCE.RESERVE q COUNT free BLOCK b LEASE l`, where `free` is how
// many handlers may start now (at most `prefetch`), so one round trip fetches a batch and waits on the server (no
// polling) when there is none. Jobs that succeeded meanwhile are acknowledged in the same write, each fenced by its
// attempt: `ONCE.ACK q id ATTEMPT n` just ahead of the RESERVE and, while the queue is busy, the last one inside it
// (`... ACK id ATTEMPT n WITHACK`, not blocking, whose reply says whether that ACK held). A job that succeeds while
// the loop waits on the server is acknowledged at once on the worker's other connection, which also carries the
// lease extensions (`ONCE.EXTEND q id l ATTEMPT n`, every extendEveryMs while a handler runs) and the NACKs.
//
// A handler's return value is the job's result: a job that returned something (not undefined or null) is
// acknowledged with it at once on the command connection (`ONCE.ACK q id ATTEMPT n RESULT data`, those finishing
// in the same moment in one write), so that a caller waiting for it (ONCE.CALL, RESULT ... BLOCK) has it without
// waiting for the next round. An EXTEND, PROGRESS or ACK refused for a job that ONCE.RESULT says was cancelled
// marks it `cancelled` (no ACK, no NACK) rather than `lost`.
import { EventEmitter } from "node:events";
import type Redis from "ioredis";
import type { Cluster } from "ioredis";
import {
  blockingOptions, Connection, ConnectionOption, isCluster, isTransient, nodeOf, openNode, openOwn, whenReady,
} from "./connection";
import { Job } from "./job";
import {
  command, Decode, encodeValue, parseJobs, parseResult, PermanentError, send, sendAll, toMap,
} from "./protocol";

export interface WorkerOptions {
  /** An ioredis Redis or Cluster instance (the worker makes its own connections with its settings), ioredis
   *  options, or a redis:// URL. */
  connection?: ConnectionOption;
  /** Handlers running at once (default 1). */
  concurrency?: number;
  /** The most jobs one RESERVE fetches (default: concurrency). 1 takes one job per round trip. */
  prefetch?: number;
  /** How long one RESERVE waits on the server for a job before it is sent again (default 5000 ms). */
  blockMs?: number;
  /** The lease asked for each job (default 30000 ms); a job whose lease runs out is tried again elsewhere. */
  leaseMs?: number;
  /** How often a running job's lease is extended by leaseMs (default leaseMs / 3). */
  extendEveryMs?: number;
  /** What `job.data` is: "auto" (default: JSON objects/arrays parsed, else text), "text", "json" or "buffer". */
  decode?: Decode;
  /** The longest wait between two reconnect attempts (default 5000 ms). */
  maxBackoffMs?: number;
  /** While closing, how long to keep trying to deliver the last ACKs to an unreachable server (default 10000). */
  stopTimeoutMs?: number;
  /** Start at once (default true); else call run(). */
  autorun?: boolean;
}

export type Handler<T, R> = (job: Job<T>) => Promise<R> | R;

class Backoff {
  private failures = 0;
  constructor(private readonly base: number, private readonly cap: number) {}
  next(): number {
    const d = Math.min(this.cap, this.base * 2 ** this.failures++);
    return d / 2 + Math.random() * d / 2;
  }
  reset(): void {
    this.failures = 0;
  }
}

/** `id attempt` of each job, for ACKS. */
const pairs = (dones: Done[]) => dones.flatMap((d) => [d.job.id, d.job.attempt]);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function errorText(err: unknown): string {
  return err instanceof Error ? String(err) : `Error: ${String(err)}`;
}

/** A job whose ACK is to be sent; `tried` once an ACK may have reached the server without its reply coming back. */
interface Done {
  job: Job;
  tried: boolean;
}

/** A job to be acknowledged with its handler's result (ACK ... RESULT data). */
interface DoneWithResult extends Done {
  result: string | Buffer;
}

/**
 * Events: `active` (job), `completed` (job, result) once its ACK holds, `failed` (job, error) once nacked,
 * `lost` (job) when the server refused its EXTEND or ACK (its lease ran out: it may run again elsewhere),
 * `cancelled` (job) when the job was cancelled while it ran (ONCE.CANCEL; it is neither acked nor nacked),
 * `drained` when a RESERVE waited blockMs and found nothing, `error` (error) for connection and server errors
 * (the worker retries; without a listener they are printed), `closed`.
 *
 * What the handler returns is the job's result, read by `queue.result(id)` and `queue.call()`: a string is kept as
 * its UTF-8 text, a Buffer as it is, undefined or null as no result, anything else as JSON (as the Python worker
 * does, so either reads what the other wrote). A value JSON cannot encode is reported (`error`) and the job acked
 * without a result; a result the server refuses (larger than once.max-payload-bytes) dead-letters the job.
 */
export class Worker<T = any, R = any> extends EventEmitter {
  readonly name: string;
  readonly concurrency: number;
  readonly prefetch: number;
  private readonly handler: Handler<T, R>;
  private readonly blockMs: number;
  private readonly leaseMs: number;
  private readonly extendEveryMs: number;
  private readonly decode: Decode;
  private readonly maxBackoffMs: number;
  private readonly stopTimeoutMs: number;
  private readonly spec: ConnectionOption | undefined;
  private readonly cmd: Connection;
  private blk: Redis | undefined;
  private blkNode: string | undefined; // Cluster: the node blk talks to
  private blkRepoint: string | boolean = false; // Cluster: the node a MOVED named, or true to ask the cluster
  private blkId: number | undefined; // CLIENT ID of blk's current connection, for CLIENT UNBLOCK
  private blkFresh = true;
  private readonly running = new Map<Job, number>(); // job in hand → when its lease is next extended
  private keeper: NodeJS.Timeout | undefined;
  private readonly lostJobs = new WeakSet<Job>();
  private pendingAcks: Done[] = [];
  private soonAcks: Done[] = []; // to go out together on the command connection, in a moment
  private resultAcks: DoneWithResult[] = []; // ACK ... RESULT, likewise
  private readonly settling = new Set<Promise<void>>();
  private readonly wakers = new Set<() => void>();
  private inRound = false;
  private lastFull = false;
  private withAck: boolean | undefined;
  private acksForm: boolean | undefined;
  private closing = false;
  private loopDone: Promise<void> | undefined;
  private closed: Promise<void> | undefined;
  private readonly stopped: Promise<void>;
  private stop!: () => void;

  constructor(name: string, handler: Handler<T, R>, options: WorkerOptions = {}) {
    super();
    if (typeof name !== "string" || name.length === 0) throw new TypeError("a queue name is a non-empty string");
    if (typeof handler !== "function") throw new TypeError("a worker needs a handler function");
    const int = (v: number | undefined, dflt: number, min: number, what: string) => {
      const n = v ?? dflt;
      if (!Number.isInteger(n) || n < min) throw new RangeError(`${what} must be an integer >= ${min}, not ${v}`);
      return n;
    };
    this.name = name;
    this.handler = handler;
    this.concurrency = int(options.concurrency, 1, 1, "concurrency");
    this.prefetch = Math.min(int(options.prefetch, this.concurrency, 1, "prefetch"), this.concurrency, 10000);
    this.blockMs = int(options.blockMs, 5000, 0, "blockMs");
    this.leaseMs = int(options.leaseMs, 30000, 1, "leaseMs");
    this.extendEveryMs = int(options.extendEveryMs, Math.max(1, Math.floor(this.leaseMs / 3)), 1, "extendEveryMs");
    this.decode = options.decode ?? "auto";
    if (!["auto", "text", "json", "buffer"].includes(this.decode)) {
      throw new TypeError(`decode must be auto, text, json or buffer, not ${options.decode}`);
    }
    this.maxBackoffMs = int(options.maxBackoffMs, 5000, 1, "maxBackoffMs");
    this.stopTimeoutMs = int(options.stopTimeoutMs, 10000, 0, "stopTimeoutMs");
    this.spec = options.connection;
    this.cmd = openOwn(this.spec, { connectionName: "once-worker" });
    this.cmd.on("error", () => undefined); // each command's failure is handled where it is sent
    this.stopped = new Promise((resolve) => (this.stop = resolve));
    if (options.autorun ?? true) void this.run();
  }

  /** Starts the worker (done by the constructor unless autorun is false); resolves when it has stopped. */
  run(): Promise<void> {
    if (this.closing) return Promise.reject(new Error("the worker is closed"));
    this.loopDone ??= this.loop();
    return this.loopDone;
  }

  /** Stops reserving, lets the jobs in hand finish and be acknowledged, then closes the worker's connections. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closing = true;
      this.stop();
      this.wakeUp();
      this.closed = this.shutdown();
    }
    return this.closed;
  }

  /** Jobs whose handler is running now. */
  get active(): number {
    return this.running.size;
  }

  // --- the loop ----------------------------------------------------------------------------------------------

  private async loop(): Promise<void> {
    const backoff = new Backoff(100, this.maxBackoffMs);
    while (!this.closing) {
      if (this.running.size >= this.concurrency) {
        await this.nap();
        continue;
      }
      const want = Math.min(this.prefetch, this.concurrency - this.running.size);
      let jobs, blocked;
      try {
        ({ jobs, blocked } = await this.round(want, this.pendingAcks.splice(0)));
        backoff.reset();
      } catch (err) {
        if (this.closing && this.isUnblocked(err)) break;
        this.report(err);
        this.recover(err as Error);
        await Promise.race([sleep(backoff.next()), this.stopped]);
        continue;
      }
      if (jobs.length === 0 && blocked && this.blockMs > 0) this.fire("drained");
      for (const j of jobs) this.start(new Job<T>(this.name, j, this.decode, this.cmd));
    }
    while (this.running.size > 0) await this.nap();
    await this.flushAcks();
  }

  /** One round trip on the blocking connection: the ACKs of `acks`, then a RESERVE for up to `want` jobs. */
  private async round(want: number, acks: Done[]) {
    let blk: Redis;
    try {
      blk = await this.blocking();
      if (this.closing) throw new Error("closing");
    } catch (err) {
      this.pendingAcks.push(...acks);
      throw err;
    }
    // While the queue is busy the ACKs go inside the RESERVE (all with ACKS, else the last with ACK), which then
    // does not block, so that its reply (did the ACKs hold?) comes at once; when it finds no job, the next blocks.
    const inside: Done[] = [];
    if (acks.length > 0 && this.lastFull) inside.push(...(this.acksForm ? acks.splice(0) : [acks.pop()!]));
    const args: Array<string | number> = ["COUNT", want, "LEASE", this.leaseMs];
    if (inside.length === 0) args.push("BLOCK", this.blockMs);
    else if (this.acksForm) args.push("ACKS", inside.length, ...pairs(inside), "WITHACK");
    else {
      args.push("ACK", inside[0].job.id, "ATTEMPT", inside[0].job.attempt);
      if (this.withAck !== false) args.push("WITHACK");
    }
    const ahead = this.ackCommands(acks);
    const replies = sendAll(blk, [...ahead, command("ONCE.RESERVE", this.name, args, true)]);
    const acked = this.settleAcks(acks, replies.slice(0, ahead.length), false);
    let reply;
    this.inRound = true;
    try {
      reply = await replies[ahead.length];
    } catch (err) {
      if (inside.length === 1 && this.withAck === undefined
        && /unknown option 'WITHACK'/i.test((err as Error).message)) {
        this.withAck = false; // a module from before WITHACK: its ack-and-fetch replies only the jobs
        this.pendingAcks.push(...inside);
        await acked;
        return { jobs: [], blocked: false };
      }
      for (const d of inside) d.tried = true;
      this.pendingAcks.push(...inside);
      await acked;
      throw err;
    } finally {
      this.inRound = false;
    }
    await acked;
    if (inside.length > 0 && this.withAck !== false) {
      this.withAck = true;
      const [count, jobs] = reply as [number, unknown];
      this.track(this.settleBatch(inside, count));
      reply = jobs;
    } else if (inside.length > 0) {
      this.settled(inside[0], 1); // no WITHACK: the server does not say, and a fenced ACK refused is rare
    }
    const jobs = parseJobs(reply);
    this.lastFull = jobs.length === want;
    return { jobs, blocked: inside.length === 0 };
  }

  /** The blocking connection, connected (to the queue's node in a Cluster), its CLIENT ID known. */
  private async blocking(): Promise<Redis> {
    const cluster = isCluster(this.cmd) ? (this.cmd as Cluster) : undefined;
    if (cluster) {
      let node = this.blkNode;
      if (typeof this.blkRepoint === "string") node = this.blkRepoint;
      else if (this.blkRepoint || node === undefined) node = await nodeOf(cluster, this.name, this.blkRepoint);
      this.blkRepoint = false;
      if (node !== this.blkNode || !this.blk) {
        this.blk?.disconnect();
        this.blk = this.hook(openNode(cluster, node, blockingOptions(this.blockMs)));
        this.blkNode = node;
      }
    } else if (!this.blk) {
      this.blk = this.hook(openOwn(this.spec, blockingOptions(this.blockMs)) as Redis);
    }
    const blk = this.blk!;
    const ready = whenReady(blk, 2000);
    ready.catch(() => undefined); // when closing wins the race
    await Promise.race([ready, this.stopped]);
    if (this.closing) throw new Error("closing");
    if (this.acksForm === undefined) {
      // ACKS (one fenced ACK of many reservations) where COMMAND DOCS lists it; without the right to ask, one
      // ACK per job, as on a module from before ACKS (where ONCE.ACK would take the word ACKS for a job id)
      const docs = await blk.call("COMMAND", "DOCS", "ONCE.RESERVE").catch(() => null);
      this.acksForm = JSON.stringify(docs ?? "").includes('"ACKS"');
    }
    if (this.blkFresh) {
      this.blkFresh = false;
      try {
        this.blkId = Number(await blk.client("ID"));
      } catch (err) {
        // a user without +CLIENT|ID: close() then waits for the blocked RESERVE to return (at most blockMs)
        if (!/^NOPERM/.test((err as Error).message)) throw err;
        this.blkId = undefined;
      }
    }
    return blk;
  }

  private hook(conn: Redis): Redis {
    conn.on("ready", () => (this.blkFresh = true));
    conn.on("error", () => undefined); // a failed RESERVE reports it
    return conn;
  }

  /** After a failed round: follow a MOVED, reconnect after a failover or a reply that never came. */
  private recover(err: Error): void {
    const moved = /^MOVED \d+ (\S+)/.exec(err.message);
    if (isCluster(this.cmd)) {
      if (moved) this.blkRepoint = moved[1];
      else if (isTransient(err)) this.blkRepoint = true;
    } else if (/^(UNBLOCKED|READONLY)|timed out/.test(err.message)) {
      this.blk?.disconnect(true); // a master that became a replica: Sentinel names the new one on reconnect
    }
  }

  private isUnblocked(err: unknown): boolean {
    return err instanceof Error && (err.message === "closing" || /^UNBLOCKED/.test(err.message));
  }

  // --- jobs in hand ------------------------------------------------------------------------------------------

  private start(job: Job<T>): void {
    this.running.set(job, Date.now() + this.extendEveryMs);
    // one timer for every job in hand (a timer per job costs more than a no-op job)
    this.keeper ??= setInterval(() => this.keepLeases(), Math.max(10, Math.min(1000, this.extendEveryMs / 4)));
    job.onCancelled = (j) => this.fire("cancelled", j);
    this.fire("active", job);
    Promise.resolve()
      .then(() => this.handler(job))
      .then(
        (value) => {
          this.finish(job);
          job.returnvalue = value;
          if (!job.cancelled) this.succeeded(job, value);
          this.wakeUp();
        },
        (err) => {
          this.finish(job);
          if (!job.cancelled) this.track(this.nack(job, err));
          this.wakeUp();
        },
      );
  }

  /** A handler returned: its job is acked with the result at once, or without one with the next round. */
  private succeeded(job: Job, value: unknown): void {
    let result: string | Buffer | null;
    try {
      result = encodeValue(value);
    } catch (err) {
      this.report(new TypeError(`job ${job.id}: its handler returned a value that is not a string, a Buffer or JSON `
        + `(${(err as Error).message}): acknowledged without a result`));
      result = null;
    }
    if (result !== null) {
      this.ackResultSoon({ job, tried: false, result });
      return;
    }
    const done = { job, tried: false };
    if (this.inRound || this.closing) this.ackSoon(done);
    else this.pendingAcks.push(done);
  }

  private finish(job: Job): void {
    this.running.delete(job);
    if (this.running.size === 0 && this.keeper) {
      clearInterval(this.keeper);
      this.keeper = undefined;
    }
  }

  private keepLeases(): void {
    const now = Date.now();
    for (const [job, due] of this.running) {
      if (due > now || this.lostJobs.has(job) || job.cancelled) continue;
      this.running.set(job, now + this.extendEveryMs);
      void this.extend(job);
    }
  }

  private track(p: Promise<void>): void {
    this.settling.add(p);
    void p.finally(() => this.settling.delete(p));
  }

  private async extend(job: Job): Promise<void> {
    try {
      const deadline = await send(this.cmd, "ONCE.EXTEND", this.name, [job.id, this.leaseMs, "ATTEMPT", job.attempt]);
      if (deadline === null && this.running.has(job) && !(await job.checkCancelled())) this.markLost(job);
    } catch (err) {
      this.report(err); // the next period tries again; the lease itself is longer than a period
    }
  }

  private markLost(job: Job): void {
    if (this.lostJobs.has(job)) return;
    this.lostJobs.add(job);
    this.fire("lost", job);
  }

  /** The fenced ACKs of `dones`: one `ONCE.ACK q ACKS n id attempt ...` where the module has it, else one each. */
  private ackCommands(dones: Done[]) {
    if (dones.length === 0) return [];
    if (this.acksForm) return [command("ONCE.ACK", this.name, ["ACKS", dones.length, ...pairs(dones)])];
    return dones.map((d) => command("ONCE.ACK", this.name, [d.job.id, "ATTEMPT", d.job.attempt]));
  }

  /** ACKs on the command connection, those of the jobs that finish in the same moment in one write. */
  private ackSoon(done: Done): void {
    this.soonAcks.push(done);
    if (this.soonAcks.length > 1) return;
    this.track(new Promise((resolve) => setImmediate(() => {
      const batch = this.soonAcks.splice(0);
      resolve(this.settleAcks(batch, sendAll(this.cmd, this.ackCommands(batch)), true));
    })));
  }

  /** ACK ... RESULT on the command connection, at once (those of jobs finishing in the same moment in one write). */
  private ackResultSoon(done: DoneWithResult): void {
    this.resultAcks.push(done);
    if (this.resultAcks.length > 1) return;
    this.track(new Promise((resolve) => setImmediate(() => {
      const batch = this.resultAcks.splice(0);
      const replies = sendAll(this.cmd, batch.map((d) => command("ONCE.ACK", this.name,
        [d.job.id, "ATTEMPT", d.job.attempt, "RESULT", d.result])));
      resolve(Promise.all(batch.map((d, i) => this.settleResultAck(d, replies[i]))).then(() => undefined));
    })));
  }

  /**
   * The reply of an ACK ... RESULT. On a connection error it is sent again (the fence makes that harmless) until
   * the job's lease would have run out; a result larger than the server takes dead-letters the job; any other
   * refusal (a module from before results) is reported and the job acked without its result.
   */
  private async settleResultAck(done: DoneWithResult, first: Promise<number>): Promise<void> {
    const backoff = new Backoff(100, this.maxBackoffMs);
    const giveUp = Date.now() + Math.max(this.stopTimeoutMs, this.leaseMs);
    let reply = first;
    for (;;) {
      try {
        this.settled(done, await reply);
        return;
      } catch (err) {
        if (/max-payload-bytes/.test((err as Error).message)) { // the `failed` event carries the server's reason
          await this.nack(done.job, new PermanentError(`result refused: ${(err as Error).message}`));
          return;
        }
        if (!isTransient(err)) {
          // a module without results (an older build) or another refusal: the plain ACK says whether it holds
          this.report(new Error(`job ${done.job.id}: its result was refused (${(err as Error).message}): `
            + "acknowledged without it"));
          this.ackSoon({ job: done.job, tried: done.tried });
          return;
        }
        done.tried = true;
        this.report(err);
        if (Date.now() > giveUp) {
          this.report(new Error(`job ${done.job.id}: its ACK could not be sent: it will run again after its lease`));
          return;
        }
        await sleep(backoff.next());
        reply = send(this.cmd, "ONCE.ACK", this.name,
          [done.job.id, "ATTEMPT", done.job.attempt, "RESULT", done.result]);
      }
    }
  }

  /** The outcome of ackCommands(dones); unconfirmed (the connection failed) they go back to the pending ones. */
  private async settleAcks(dones: Done[], replies: Array<Promise<number>>, report: boolean): Promise<void> {
    if (dones.length === 0) return;
    if (!this.acksForm) {
      await Promise.all(dones.map((d, i) => this.settleAck(d, replies[i], report)));
      return;
    }
    let count;
    try {
      count = await replies[0];
    } catch (err) {
      for (const d of dones) d.tried = true;
      this.pendingAcks.push(...dones);
      if (report) this.report(err);
      return;
    }
    await this.settleBatch(dones, count);
  }

  private async settleAck(done: Done, reply: Promise<number>, report: boolean): Promise<void> {
    try {
      this.settled(done, await reply);
    } catch (err) {
      done.tried = true;
      this.pendingAcks.push(done);
      if (report) this.report(err);
    }
  }

  /** `count` of the ACKs of `dones` held: all, or INSPECT tells which (an acked job is gone, or completed). */
  private async settleBatch(dones: Done[], count: number): Promise<void> {
    if (count === dones.length || dones.length === 1) {
      for (const d of dones) this.settled(d, count === dones.length ? 1 : 0);
      return;
    }
    for (const d of dones) {
      let info;
      try {
        info = toMap(await send(this.cmd, "ONCE.INSPECT", this.name, [d.job.id]));
      } catch (err) {
        this.report(err);
        this.markLost(d.job); // cannot tell: warn rather than hide a possible second run
        continue;
      }
      if (info === null || (info.state === "completed" && Number(info.attempts) === d.job.attempt)) {
        this.fire("completed", d.job, d.job.returnvalue);
      } else if (info.state === "cancelled") {
        d.job.markCancelled();
      } else {
        this.markLost(d.job);
      }
    }
  }

  private settled(done: Done, count: number): void {
    if (count === 1) this.fire("completed", done.job, done.job.returnvalue);
    else this.track(this.refused(done));
  }

  /** An ACK was refused: the job was cancelled, or an earlier ACK whose reply was lost held, or its lease ran out. */
  private async refused(done: Done): Promise<void> {
    const { job } = done;
    let outcome;
    try {
      outcome = parseResult(await send(this.cmd, "ONCE.RESULT", this.name, [job.id], true));
    } catch {
      outcome = null; // a module without RESULT, a user without the right to it: as if the job were gone
    }
    if (outcome?.state === "cancelled") job.markCancelled();
    else if (outcome?.state === "completed" && outcome.attempts === job.attempt) {
      this.fire("completed", job, job.returnvalue);
    } else if (outcome === null && done.tried) {
      // gone, after an attempt whose reply was lost: that attempt was most likely applied
      this.fire("completed", job, job.returnvalue);
    } else this.markLost(job);
  }

  /** NACK with the error text, fenced; sent again on connection errors (the fence makes that harmless). */
  private async nack(job: Job, err: unknown): Promise<void> {
    const args: Array<string | number> = [job.id, "ATTEMPT", job.attempt, "ERROR", errorText(err)];
    if (err instanceof PermanentError) args.push("DEAD");
    const backoff = new Backoff(100, this.maxBackoffMs);
    const giveUp = Date.now() + Math.max(this.stopTimeoutMs, this.leaseMs);
    for (;;) {
      try {
        if ((await send(this.cmd, "ONCE.NACK", this.name, args)) === 0 && !(await job.checkCancelled())) {
          this.markLost(job);
        }
        break;
      } catch (e) {
        this.report(e);
        if (!isTransient(e) || Date.now() > giveUp) break; // its lease runs out instead: the same retry, later
        await sleep(backoff.next());
      }
    }
    if (!job.cancelled) this.fire("failed", job, err);
  }

  /** The last ACKs, on the command connection, until they hold or stopTimeoutMs has passed. */
  private async flushAcks(): Promise<void> {
    const giveUp = Date.now() + this.stopTimeoutMs;
    const backoff = new Backoff(100, this.maxBackoffMs);
    for (;;) {
      while (this.settling.size > 0) await Promise.all([...this.settling]);
      const acks = this.pendingAcks.splice(0);
      if (acks.length === 0) return;
      if (Date.now() > giveUp) {
        const n = acks.length;
        this.report(new Error(`closing without acknowledging ${n} job(s): they will run again after their lease`));
        return;
      }
      await this.settleAcks(acks, sendAll(this.cmd, this.ackCommands(acks)), true);
      if (this.pendingAcks.length > 0) await sleep(backoff.next());
    }
  }

  // --- stopping ----------------------------------------------------------------------------------------------

  private async shutdown(): Promise<void> {
    const giveUp = Date.now() + this.stopTimeoutMs;
    let unblocker: Redis | undefined;
    try {
      // CLIENT UNBLOCK from a connection of its own: the blocked RESERVE replies null now, not after blockMs
      while (this.inRound && this.blk && this.blkId !== undefined && Date.now() < giveUp) {
        if (!unblocker) {
          unblocker = this.blk.duplicate({ connectionName: "once-worker-unblock", enableOfflineQueue: true,
            maxRetriesPerRequest: 1, commandTimeout: 2000 });
          unblocker.on("error", () => undefined); // the RESERVE ends anyway, at the latest after blockMs
        }
        await unblocker.client("UNBLOCK", this.blkId, "TIMEOUT").catch(() => undefined);
        await sleep(50);
      }
    } finally {
      unblocker?.disconnect();
    }
    await this.loopDone;
    clearInterval(this.keeper);
    await Promise.all([this.cmd, this.blk].map((c) => c?.quit().catch(() => c.disconnect())));
    this.fire("closed");
  }

  private nap(): Promise<void> {
    return new Promise((resolve) => this.wakers.add(resolve));
  }

  private wakeUp(): void {
    const wakers = [...this.wakers];
    this.wakers.clear();
    for (const w of wakers) w();
  }

  /** Emits an event; a listener that throws does not stop the worker (its error is reported). */
  private fire(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch (err) {
      this.report(err);
    }
  }

  private report(err: unknown): void {
    const text = `once worker '${this.name}': ${err instanceof Error ? err.message : String(err)}`;
    try {
      if (this.listenerCount("error") > 0) this.emit("error", err);
      else console.error(text);
    } catch {
      console.error(text); // the error listener itself threw
    }
  }
}
