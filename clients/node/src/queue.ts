// A queue's producer and admin side: push, bulk push, flows (jobs that wait for others), results and calls,
// schedules, stats, inspect, pause/resume, retry, cancel, purge.
import { randomUUID } from "node:crypto";
import type { Command } from "ioredis";
import type Redis from "ioredis";
import calculateSlot from "cluster-key-slot";
import type { Connection, ConnectionOption } from "./connection";
import { blockingOptions, isCluster, nodeOf, openNode, openOwn, openShared, whenReady } from "./connection";
import {
  command, Dep, depGroups, DepRef, DepsOptions, encodePayload, encodeValue, fetchDeps, isUnknownCommand, JobInfo,
  numericMap, OnceUnsupportedError, parseJobInfo, parseResult, parseSchedules, Payload, PushOptions, PUSH_ONLY,
  pushArgs, reply, Result, ScheduleInfo, send, toMap,
} from "./protocol";

export interface QueueOptions {
  /** An ioredis Redis or Cluster instance (shared, left open by close()), ioredis options or a redis:// URL. */
  connection?: ConnectionOption;
}

export interface ScheduleOptions {
  retries?: number;
  backoff?: number;
  lease?: number;
  priority?: number;
  tz?: string;
  missed?: "once" | "skip";
}

export interface ListOptions {
  cursor?: string;
  count?: number;
  withPayloads?: boolean;
}

export type Stats = Record<string, number | null>;

/** One job of a flow (addFlow): pushed after its children, and waiting for them to complete. */
export interface FlowJob {
  /** Its queue (default: the queue addFlow is called on); every queue of a flow shares one hash slot. */
  queue?: string;
  payload: Payload;
  /** add()'s options. Without `id` the client makes one (a UUID); `after` names jobs beyond its children to wait
   *  for, and `onFail` applies to all of them. */
  options?: PushOptions;
  /** The jobs this one waits for, pushed before it (each a FlowJob; one object named twice is pushed once). */
  children?: FlowJob[];
}

/** A pushed flow job: its queue and id, and its children's. */
export interface FlowNode {
  queue: string;
  id: string;
  children: FlowNode[];
}

/** A flow that was not pushed whole: a push inside its MULTI was refused (the others ran: MULTI does not roll
 *  back); `pushed` lists the jobs that were added all the same. */
export class FlowError extends Error {
  readonly pushed: Array<{ queue: string; id: string }>;
  constructor(message: string, pushed: Array<{ queue: string; id: string }>) {
    super(message);
    this.name = "FlowError";
    this.pushed = pushed;
  }
}

export interface CallOptions extends PushOptions {
  /** How long to wait for the outcome, in ms (0: as long as it takes). */
  timeout: number;
  /** At the timeout, cancel the job (its error reads `call timed out`); else it stays queued. */
  cancel?: boolean;
}

export interface ResultOptions {
  /** Wait up to this many ms for an unfinished job to finish (ONCE.RESULT ... BLOCK; 0: as long as it takes). */
  wait?: number;
}

/** A connection that carries blocking commands (RESULT BLOCK, CALL), and the Cluster node it talks to. */
interface Waiter {
  conn: Redis;
  node: string | undefined;
}

/** Idle blocking connections a queue keeps for its next waits. */
const MAX_IDLE_WAITERS = 8;

/** A wait in ms as a BLOCK / TIMEOUT argument (0: forever); a fraction of a ms is rounded up. */
function waitMs(ms: number, what: string): number {
  if (typeof ms !== "number" || !(ms >= 0) || !Number.isFinite(ms)) {
    throw new TypeError(`${what} is a wait in ms (0: as long as it takes), not ${ms}`);
  }
  return Math.ceil(ms);
}

export class Queue {
  readonly name: string;
  readonly connection: Connection;
  private readonly owned: boolean;
  private readonly spec: ConnectionOption | undefined;
  private hasBulk: boolean | undefined;
  private readonly idle: Waiter[] = [];
  private readonly waiters = new Set<Waiter>();
  private closing = false;

  constructor(name: string, options: QueueOptions = {}) {
    if (typeof name !== "string" || name.length === 0) throw new TypeError("a queue name is a non-empty string");
    this.name = name;
    const { conn, owned } = openShared(options.connection);
    this.connection = conn;
    this.owned = owned;
    this.spec = options.connection;
  }

  private cmd(command: string, args: Array<string | number | Buffer> = [], buffers = false): Promise<any> {
    return send(this.connection, command, this.name, args, buffers);
  }

  /**
   * Pushes one job; returns its id. Objects are JSON-encoded (a worker's `job.data` parses them back). With
   * `keep` its outcome is kept once finished, for `result(id)`; `ttl` (and `ttlDrop`) bound how long it may wait.
   */
  async add(payload: Payload, options: PushOptions = {}): Promise<string> {
    return this.cmd("ONCE.PUSH", [encodePayload(payload), ...pushArgs(options, undefined, this.name)]);
  }

  /**
   * Pushes a tree of jobs in one MULTI: children first, each parent pushed after its children (`AFTER`), so it
   * stays `waiting` until they have completed, and runs then (its handler reads their results with `job.deps()`).
   * Ids are made by the client (a UUID where a node has no `id` option), so one transaction holds the whole tree.
   * Every queue must share the root's hash slot (`{shop}:charge`, `{shop}:ship`): checked before anything is
   * sent. Returns the root's FlowNode (queue, id, children). A push the server refuses inside the MULTI throws a
   * FlowError that lists the jobs that were pushed all the same.
   */
  async addFlow(tree: FlowJob): Promise<FlowNode> {
    const cmds: Command[] = [];
    const nodes: FlowNode[] = []; // in the order of cmds
    const made = new Map<FlowJob, FlowNode>();
    const path = new Set<FlowJob>();
    let slot: { queue: string; slot: number } | undefined;
    const visit = (job: FlowJob): FlowNode => {
      if (job === null || typeof job !== "object") {
        throw new TypeError("a flow job is an object { queue, payload, options, children }");
      }
      const seen = made.get(job);
      if (seen) return seen;
      if (path.has(job)) throw new TypeError("a flow job is among its own children");
      const queue = job.queue ?? this.name;
      if (typeof queue !== "string" || queue.length === 0) {
        throw new TypeError("a flow job's queue is a non-empty string");
      }
      const s = calculateSlot(queue);
      slot ??= { queue, slot: s };
      if (s !== slot.slot) {
        throw new TypeError(`a flow's queues share one hash slot (a hash tag: {shop}:charge, {shop}:ship): `
          + `'${queue}' is not in the slot of '${slot.queue}'`);
      }
      if (job.children !== undefined && !Array.isArray(job.children)) throw new TypeError("children is an array");
      path.add(job);
      const children = (job.children ?? []).map(visit);
      path.delete(job);
      const { after, ...options } = job.options ?? {};
      const id = options.id ?? randomUUID();
      const deps: DepRef[] = [...children.map((c) => ({ queue: c.queue, id: c.id })), ...(after ?? [])];
      const args = pushArgs({ ...options, id, after: deps.length > 0 ? deps : undefined }, undefined, queue);
      cmds.push(command("ONCE.PUSH", queue, [encodePayload(job.payload), ...args]));
      const node = { queue, id, children };
      nodes.push(node);
      made.set(job, node);
      return node;
    };
    const root = visit(tree);
    const multi = this.connection.multi() as unknown as {
      sendCommand(c: Command): unknown; exec(): Promise<Array<[Error | null, unknown]>>;
    };
    for (const cmd of cmds) multi.sendCommand(cmd);
    let results;
    try {
      results = await multi.exec();
    } catch (err) {
      // EXECABORT (nothing ran): the refused command's own error says why (an unknown command, say)
      const first = ((err as { previousErrors?: Error[] }).previousErrors ?? [])[0] ?? err;
      if (isUnknownCommand(first)) throw new OnceUnsupportedError("ONCE.PUSH");
      throw first;
    }
    const refused = results.findIndex(([err]) => err);
    if (refused >= 0) {
      const pushed = nodes.filter((_, i) => !results[i][0]).map(({ queue, id }) => ({ queue, id }));
      const { queue, id } = nodes[refused];
      throw new FlowError(`addFlow: the push of ${queue} ${id} was refused (${results[refused][0]!.message}); `
        + `${pushed.length} of the flow's ${nodes.length} jobs were pushed`, pushed);
    }
    return root;
  }

  /**
   * Makes the waiting job `id` wait for more jobs as well (ONCE.AFTER; `deps` as add()'s `after`); returns how many
   * were added (one it already waits for is not). Refused for a job that is not waiting, a missing dependency, or
   * one that would make a cycle.
   */
  async after(id: string, deps: DepRef[]): Promise<number> {
    const groups = depGroups(this.name, deps);
    if (groups.length === 0) throw new TypeError("after() needs at least one job to wait for");
    return this.cmd("ONCE.AFTER", [id, ...groups.flat()]);
  }

  /**
   * The jobs job `id` waits (or waited) for, in the order they were named, each with its state, outcome, result
   * and error (ONCE.DEPS); null for a job the queue does not hold. Without `from`/`count`: all of them.
   */
  async deps(id: string, options: DepsOptions = {}): Promise<Dep[] | null> {
    return fetchDeps(this.connection, this.name, id, options);
  }

  /**
   * Pushes many jobs with the same options; returns their ids in order. One ONCE.BULK where the module has it
   * (one replicated record), else one PUSH per job, all written at once without waiting for replies.
   */
  async addBulk(payloads: Payload[], options: PushOptions = {}): Promise<string[]> {
    if (payloads.length === 0) return [];
    if (options.id !== undefined) throw new TypeError("addBulk takes no id: push jobs with their own ids with add()");
    for (const key of PUSH_ONLY) {
      if (options[key] !== undefined && options[key] !== false) {
        throw new TypeError(`addBulk takes no ${key} (ONCE.BULK has no KEEP, TTL or AFTER): push such jobs with add()`);
      }
    }
    const encoded = payloads.map(encodePayload);
    const opts = pushArgs(options);
    if (this.hasBulk !== false) {
      try {
        const ids = await this.cmd("ONCE.BULK", [...opts, "PAYLOADS", ...encoded]);
        this.hasBulk = true;
        return ids;
      } catch (err) {
        if (!(err instanceof OnceUnsupportedError)) throw err;
        this.hasBulk = false;
      }
    }
    return Promise.all(encoded.map((p) => this.cmd("ONCE.PUSH", [p, ...opts])));
  }

  /** Creates or replaces a recurring schedule (cron or `@every 30s`); returns its next fire time (unix ms). */
  async schedule(name: string, spec: string, payload: Payload, options: ScheduleOptions = {}): Promise<number> {
    const args: Array<string | number | Buffer> = [name, spec, encodePayload(payload)];
    const flags: Record<keyof ScheduleOptions, string> = {
      retries: "RETRIES", backoff: "BACKOFF", lease: "LEASE", priority: "PRIORITY", tz: "TZ", missed: "MISSED",
    };
    for (const [key, value] of Object.entries(options)) {
      const flag = flags[key as keyof ScheduleOptions];
      if (!flag) throw new TypeError(`unknown schedule option '${key}'`);
      if (value !== undefined) args.push(flag, value as string | number);
    }
    return Number(await this.cmd("ONCE.SCHEDULE", args));
  }

  async unschedule(name: string): Promise<boolean> {
    return (await this.cmd("ONCE.UNSCHEDULE", [name])) === 1;
  }

  async schedules(): Promise<ScheduleInfo[]> {
    return parseSchedules(await this.cmd("ONCE.SCHEDULES"));
  }

  /** Counts by state, totals, settings and latencies (ONCE.STATS), every value a number or null. */
  async stats(): Promise<Stats> {
    return numericMap(await this.cmd("ONCE.STATS"));
  }

  /** One job in full (payload as a Buffer), or null for an unknown id. */
  async inspect(id: string): Promise<JobInfo | null> {
    return parseJobInfo(await this.cmd("ONCE.INSPECT", [id], true));
  }

  /** A page of the jobs in one state; pass `next` back as `cursor` until it is "0". */
  async list(state: "ready" | "delayed" | "reserved" | "waiting" | "dead" | "completed" | "cancelled",
             options: ListOptions = {}):
    Promise<{ next: string; jobs: JobInfo[] }> {
    const args: Array<string | number> = [state];
    if (options.cursor !== undefined) args.push("CURSOR", options.cursor);
    if (options.count !== undefined) args.push("COUNT", options.count);
    if (options.withPayloads) args.push("WITHPAYLOADS");
    const [next, jobs] = await this.cmd("ONCE.LIST", args, true);
    return { next: String(next), jobs: (jobs as unknown[]).map((j) => parseJobInfo(j)!) };
  }

  async pause(): Promise<boolean> {
    return (await this.cmd("ONCE.PAUSE")) === 1;
  }

  async resume(): Promise<boolean> {
    return (await this.cmd("ONCE.RESUME")) === 1;
  }

  /** Sends dead jobs back to ready ("ALL": every dead job); returns how many were dead. */
  async retry(ids: string[] | "ALL"): Promise<number> {
    return this.cmd("ONCE.RETRY", ids === "ALL" ? ["ALL"] : ids);
  }

  /**
   * Cancels jobs; returns how many. A waiting job is removed (kept as `cancelled` with KEEP); a running one
   * finishes as `cancelled` at once, and its worker's next EXTEND, progress() or ACK is refused (the worker then
   * sets `job.cancelled` where the job is kept, and does not ACK it).
   */
  async cancel(ids: string[]): Promise<number> {
    return this.cmd("ONCE.CANCEL", ids);
  }

  async purge(state: "ready" | "delayed" | "waiting" | "dead" | "completed"): Promise<number> {
    return this.cmd("ONCE.PURGE", [state]);
  }

  /** Sets the queue's own settings (e.g. `{ RETRIES: 5, "DEAD-MAX": 1000, keep: 60000, "keep-max": 10000 }`) and
   *  returns all of them. */
  async configure(settings: Record<string, number | [number, number]> = {}): Promise<Record<string, unknown>> {
    const args: Array<string | number> = [];
    for (const [name, value] of Object.entries(settings)) {
      if (Array.isArray(value)) args.push(name.toUpperCase(), value[0], "PER", value[1]);
      else args.push(name.toUpperCase(), value);
    }
    return toMap(await this.cmd("ONCE.CONFIGURE", args)) ?? {};
  }

  /**
   * A job's outcome (ONCE.RESULT): completed with its `result`, dead or cancelled with its `error`, or where it
   * stands while unfinished (`done` false); null for a job the queue does not hold (it finished before anyone
   * waited and was not kept: push with `keep`). With `wait` (ms, 0: as long as it takes) an unfinished job is
   * waited for on the server (RESULT ... BLOCK, woken by its ACK, death or cancel); at the timeout the reply is the
   * job as it then stands. A waiter whose master becomes a replica (a failover) gets the server's `UNBLOCKED`
   * error: ask again.
   */
  async result(id: string, options: ResultOptions = {}): Promise<Result | null> {
    if (options.wait === undefined || options.wait === null) {
      return parseResult(await this.cmd("ONCE.RESULT", [id], true));
    }
    const wait = waitMs(options.wait, "wait");
    return parseResult(await this.blockingSend("ONCE.RESULT", [id, "BLOCK", wait], wait));
  }

  /**
   * Pushes a job and waits for its outcome in the same round trip (ONCE.CALL); null when `timeout` ms (0: as long
   * as it takes) pass first: then the job stays queued, or with `cancel` is cancelled (error `call timed out`).
   * The other options are add()'s. Never re-sent after a reconnect (a CALL sent twice would push twice).
   */
  async call(payload: Payload, options: CallOptions): Promise<Result | null> {
    const { timeout, cancel, ...push } = options ?? ({} as CallOptions);
    if (timeout === undefined) throw new TypeError("call() needs a timeout in ms (0: as long as it takes)");
    const wait = waitMs(timeout, "timeout");
    const args = [encodePayload(payload), ...pushArgs(push, undefined, this.name), "TIMEOUT", wait];
    if (cancel) args.push("CANCEL");
    return parseResult(await this.blockingSend("ONCE.CALL", args, wait));
  }

  /**
   * Stores a reserved job's progress (ONCE.PROGRESS): a string or Buffer as it is, other values as JSON. Fenced by
   * `attempt` when given (a worker's handler calls `job.progress(data)`, which is). True if stored, false if the
   * job is not reserved (under that attempt).
   */
  async progress(id: string, data: unknown, options: { attempt?: number } = {}): Promise<boolean> {
    const value = encodeValue(data);
    if (value === null) throw new TypeError("progress needs data");
    const args: Array<string | number | Buffer> = [id, value];
    if (options.attempt !== undefined) args.push("ATTEMPT", options.attempt);
    return (await this.cmd("ONCE.PROGRESS", args)) === 1;
  }

  /**
   * One blocking command on a connection of its own (to the queue's master in a Cluster): no client-side timeout
   * shorter than the wait, never queued while disconnected nor re-sent after a reconnect. The connection goes back
   * to a small pool after a reply, and is closed after an error (its state is then unknown).
   */
  private async blockingSend(name: string, args: Array<string | number | Buffer>, wait: number): Promise<any> {
    let movedTo: string | undefined;
    for (let redirects = 0; ; redirects++) {
      const waiter = await this.waiter(movedTo);
      const cmd = command(name, this.name, args, true);
      // a half-open socket shows only as a missing reply: give up on it well after the server's own timeout
      if (wait > 0) cmd.setTimeout(wait + 10_000);
      let out;
      try {
        waiter.conn.sendCommand(cmd);
        out = await reply(cmd);
      } catch (err) {
        this.drop(waiter);
        // a MOVED reply ran nothing: the slot has moved, so send it (once more) to its new master
        const moved = /^MOVED \d+ (\S+)/.exec((err as Error).message);
        if (moved && redirects < 2 && isCluster(this.connection)) {
          movedTo = moved[1];
          this.connection.refreshSlotsCache();
          continue;
        }
        throw err;
      }
      this.release(waiter);
      return out;
    }
  }

  /** A ready blocking connection: an idle one, else a new one (in a Cluster: to `node`, else the queue's master). */
  private async waiter(node?: string): Promise<Waiter> {
    if (this.closing) throw new Error("the queue is closed");
    if (node === undefined && isCluster(this.connection)) node = await nodeOf(this.connection, this.name, false);
    for (const w of this.idle.filter((w) => w.conn.status !== "ready")) this.drop(w); // closed while idle
    const at = this.idle.findIndex((w) => w.node === node);
    let waiter: Waiter;
    if (at >= 0) {
      waiter = this.idle.splice(at, 1)[0];
      waiter.conn.stream?.ref();
    } else {
      // never reconnects by itself: a connection that closes is dropped, and the next wait opens another
      const options = { ...blockingOptions(0), connectionName: "once-wait", retryStrategy: () => null };
      const conn = (node !== undefined && isCluster(this.connection) ? openNode(this.connection, node, options)
        : openOwn(this.spec ?? this.connection, options)) as Redis;
      conn.on("error", () => undefined); // the command's own reply carries the failure
      waiter = { conn, node };
    }
    this.waiters.add(waiter);
    try {
      await whenReady(waiter.conn, 10_000);
    } catch (err) {
      this.drop(waiter);
      throw err;
    }
    return waiter;
  }

  /** Back to the pool after a reply; an idle connection does not keep the process alive. */
  private release(waiter: Waiter): void {
    this.waiters.delete(waiter);
    if (this.closing || this.idle.length >= MAX_IDLE_WAITERS || waiter.conn.status !== "ready") {
      waiter.conn.disconnect();
      return;
    }
    waiter.conn.stream?.unref();
    this.idle.push(waiter);
  }

  private drop(waiter: Waiter): void {
    this.waiters.delete(waiter);
    const at = this.idle.indexOf(waiter);
    if (at >= 0) this.idle.splice(at, 1);
    waiter.conn.disconnect();
  }

  /** Closes the connection if this queue made it (an instance passed in stays open), and the queue's waiting
   *  connections (a result() or call() still waiting then fails). */
  async close(): Promise<void> {
    this.closing = true;
    for (const w of [...this.idle, ...this.waiters]) this.drop(w);
    if (this.owned) await this.connection.quit().catch(() => this.connection.disconnect());
  }
}
