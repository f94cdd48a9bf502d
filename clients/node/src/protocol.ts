// The one client layer: how a Once command is sent (routed by its queue key, also in Redis Cluster) and how each
// reply is turned into a typed value, once, whichever protocol the connection speaks (RESP2 flat maps or RESP3).
import { Command } from "ioredis";
import type { Connection } from "./connection";

export type Payload = string | Buffer | object;

/** The Once module on this server lacks a command (an older build, or one without that feature yet). */
export class OnceUnsupportedError extends Error {
  constructor(command: string) {
    super(`this server's Once module has no ${command}`);
    this.name = "OnceUnsupportedError";
  }
}

/** Thrown by a handler, fails the job for good: it goes to the dead set at once, whatever retries it has left. */
export class PermanentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PermanentError";
  }
}

export function isUnknownCommand(err: unknown): boolean {
  return err instanceof Error && /^ERR unknown command/i.test(err.message);
}

/**
 * The command `name queue ...args`, routed by its queue: the queue is named as its key, so ioredis sends it to the
 * queue's node in a Cluster (ioredis does not know module commands' keys). `buffers` keeps bulk replies as
 * Buffers (payloads); otherwise they are UTF-8 strings.
 */
export function command(name: string, queue: string, args: Array<string | number | Buffer>, buffers = false): Command {
  const cmd = new Command(name, [queue, ...args], { replyEncoding: buffers ? null : "utf8" });
  (cmd as unknown as { keys: string[] }).keys = [queue];
  return cmd;
}

/** The reply of a command sent, with a clear error when the module lacks the command. */
export function reply(cmd: Command): Promise<any> {
  return cmd.promise.catch((err: unknown) => {
    if (isUnknownCommand(err)) throw new OnceUnsupportedError(cmd.name.toUpperCase());
    throw err;
  });
}

/** Sends one command on `conn` (see `command`); resolves with its reply. */
export function send(conn: Connection, name: string, queue: string, args: Array<string | number | Buffer>,
                     buffers = false): Promise<any> {
  const cmd = command(name, queue, args, buffers);
  conn.sendCommand(cmd);
  return reply(cmd);
}

/** Sends commands on `conn` in one write; resolves with each one's reply or error, in order. */
export function sendAll(conn: Connection, cmds: Command[]): Array<Promise<any>> {
  const pipe = conn.pipeline() as unknown as { sendCommand(c: Command): unknown; exec(): Promise<unknown> };
  for (const cmd of cmds) pipe.sendCommand(cmd);
  pipe.exec().catch(() => undefined); // each command's own promise carries its outcome
  return cmds.map(reply);
}

/** Payload bytes for the server: strings and Buffers as they are, anything else as JSON. */
export function encodePayload(payload: Payload): string | Buffer {
  if (typeof payload === "string" || Buffer.isBuffer(payload)) return payload;
  if (payload === null || typeof payload !== "object") {
    throw new TypeError(`a payload is a string, a Buffer or an object (JSON-encoded), not ${typeof payload}`);
  }
  return JSON.stringify(payload);
}

export type Decode = "auto" | "text" | "json" | "buffer";

/**
 * What a handler sees as `job.data`: with "auto" (the default) a payload that is a JSON object or array (what
 * `add()` makes of an object) is parsed, any other payload is its UTF-8 text; "text", "json" and "buffer" force one.
 */
export function decodePayload(raw: Buffer, how: Decode): unknown {
  if (how === "buffer") return raw;
  const text = raw.toString("utf8");
  if (how === "text") return text;
  if (how === "json") return JSON.parse(text);
  const first = text.trimStart()[0];
  if (first === "{" || first === "[") {
    try {
      return JSON.parse(text);
    } catch {
      return text; // text that merely starts like JSON is still text
    }
  }
  return text;
}

/** A reply map: RESP3 gives a Map or an object, RESP2 a flat [field, value, ...] array. */
export function toMap(reply: unknown): Record<string, any> | null {
  if (reply == null) return null;
  if (reply instanceof Map) return Object.fromEntries([...reply].map(([k, v]) => [String(k), v]));
  if (Array.isArray(reply)) {
    const out: Record<string, any> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = reply[i + 1];
    return out;
  }
  if (typeof reply === "object") return reply as Record<string, any>;
  throw new Error(`expected a map reply, got ${typeof reply}`);
}

function num(v: unknown): number | null {
  if (v == null) return null;
  if (typeof v === "number") return v;
  const n = Number(Buffer.isBuffer(v) ? v.toString() : v);
  return Number.isNaN(n) ? null : n;
}

function str(v: unknown): string | null {
  if (v == null) return null;
  return Buffer.isBuffer(v) ? v.toString("utf8") : String(v);
}

/** A map whose values are all numbers or nil (STATS, CONFIGURE). */
export function numericMap(reply: unknown): Record<string, number | null> {
  const map = toMap(reply) ?? {};
  const out: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(map)) out[k] = num(v);
  return out;
}

/** One reservation: `[id, payload, attempt]` from RESERVE. */
export interface Reserved {
  id: string;
  payload: Buffer;
  attempt: number;
}

export function parseJobs(reply: unknown): Reserved[] {
  if (reply == null) return [];
  return (reply as unknown[][]).map((j) => ({
    id: str(j[0])!,
    payload: Buffer.isBuffer(j[1]) ? j[1] : Buffer.from(String(j[1])),
    attempt: num(j[2])!,
  }));
}

export type JobState =
  "ready" | "delayed" | "reserved" | "waiting" | "completed" | "dead" | "cancelled" | "gone" | string;

/** The states of a job that has its outcome (ONCE.RESULT): it was acked, it died, or it was cancelled. */
export const FINISHED_STATES: readonly string[] = ["completed", "dead", "cancelled"];

/** ONCE.INSPECT's map (and each job of ONCE.LIST). */
export interface JobInfo {
  id: string;
  state: JobState;
  payload: Buffer | null;
  attempts: number;
  retries: number;
  priority: number;
  created: number;
  due: number | null;
  leaseDeadline: number | null;
  lastError: string | null;
  backoff: number | null;
  lease: number | null;
  tries: number | null;
  died: number | null;
  group: string | null;
  /** What a completed job was acked with (ACK ... RESULT), as stored; null without one. */
  result: Buffer | null;
  /** The last ONCE.PROGRESS of the job, as stored; null without one. */
  progress: Buffer | null;
  /** When a completed, dead or cancelled job finished (unix ms); null while unfinished. */
  finished: number | null;
  [field: string]: unknown;
}

function bytes(v: unknown): Buffer | null {
  if (v == null) return null;
  return Buffer.isBuffer(v) ? v : Buffer.from(String(v));
}

export function parseJobInfo(reply: unknown): JobInfo | null {
  const m = toMap(reply);
  if (m == null) return null;
  const info: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m)) {
    const key = k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    if (k === "payload" || k === "result" || k === "progress") info[key] = bytes(v);
    else if (["id", "state", "last_error", "group"].includes(k)) info[key] = str(v);
    else info[key] = num(v) ?? str(v);
  }
  return info as JobInfo;
}

/**
 * A handler's return value (or a progress report) as the bytes the server keeps, by the rule the Python client
 * follows too, so that either side reads what the other wrote: undefined and null are no value (null), a string is
 * its UTF-8 text, a Buffer (or Uint8Array) its bytes, anything else compact JSON (Result.json() reads it back).
 * TypeError for a value JSON cannot encode (a function, a symbol, a BigInt, a cycle).
 */
export function encodeValue(value: unknown): string | Buffer | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string" || Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`a ${typeof value} is not a string, a Buffer or JSON`);
  return json;
}

/**
 * ONCE.RESULT's (and ONCE.CALL's) reply: a job's outcome, or where it stands while it has none.
 *
 * `state`: ready, delayed, reserved, waiting (for the jobs it is pushed after; all unfinished: `done` is false),
 * completed, dead or cancelled. `result`: what the worker acked the job with, as stored (null without one): a
 * handler's string return value is kept as its text, a Buffer as it is, any other value as JSON (by a Node or a
 * Python worker alike), so read it with `text` or `json()`, as the handler returns. `error`: a dead job's last error, a cancelled job's reason (`cancelled`, or
 * `call timed out`). `attempts`: reservations so far. `finished`: unix ms, null while unfinished. `progress`: the
 * last ONCE.PROGRESS (same encoding as results).
 */
export class Result {
  readonly state: JobState;
  readonly result: Buffer | null;
  readonly error: string | null;
  readonly attempts: number;
  readonly finished: number | null;
  readonly progress: Buffer | null;

  constructor(fields: { state: JobState; result?: Buffer | null; error?: string | null; attempts?: number;
                        finished?: number | null; progress?: Buffer | null }) {
    this.state = fields.state;
    this.result = fields.result ?? null;
    this.error = fields.error ?? null;
    this.attempts = fields.attempts ?? 0;
    this.finished = fields.finished ?? null;
    this.progress = fields.progress ?? null;
  }

  /** The job finished: completed, dead or cancelled. */
  get done(): boolean {
    return FINISHED_STATES.includes(this.state);
  }

  /** The job completed (it was acked). */
  get ok(): boolean {
    return this.state === "completed";
  }

  /** The result as UTF-8 text; null without one. */
  get text(): string | null {
    return this.result === null ? null : this.result.toString("utf8");
  }

  /** The result read as JSON (a handler returned an object, array, number, boolean); null without one. Throws a
   *  SyntaxError when it is not JSON. */
  json<V = any>(): V | null {
    return this.result === null ? null : JSON.parse(this.result.toString("utf8"));
  }

  /** The progress as UTF-8 text; null without one. */
  get progressText(): string | null {
    return this.progress === null ? null : this.progress.toString("utf8");
  }

  /** The progress read as JSON; null without one. */
  progressJson<V = any>(): V | null {
    return this.progress === null ? null : JSON.parse(this.progress.toString("utf8"));
  }
}

/** ONCE.RESULT's and ONCE.CALL's reply (sent with Buffer replies): null, or the map of state, result, error,
 *  attempts, finished, progress. */
export function parseResult(reply: unknown): Result | null {
  const m = toMap(reply);
  if (m == null) return null;
  return new Result({
    state: str(m.state) ?? "",
    result: bytes(m.result),
    error: str(m.error),
    attempts: num(m.attempts) ?? 0,
    finished: num(m.finished),
    progress: bytes(m.progress),
  });
}

export interface ScheduleInfo {
  name: string;
  spec: string;
  tz: string;
  nextFire: number;
  lastFire: number | null;
  payload: string;
  [field: string]: unknown;
}

export function parseSchedules(reply: unknown): ScheduleInfo[] {
  return ((reply as unknown[]) ?? []).map((s) => {
    const m = toMap(s)!;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(m)) {
      const key = k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
      out[key] = ["name", "spec", "tz", "payload", "missed"].includes(k) ? str(v) : num(v) ?? str(v);
    }
    return out as ScheduleInfo;
  });
}

/** Options of a push (ONCE.PUSH, ONCE.BULK and ONCE.SCHEDULE share them; times in ms). */
export interface PushOptions {
  id?: string;
  delay?: number;
  at?: number | Date;
  retries?: number;
  backoff?: number;
  lease?: number;
  priority?: number;
  group?: string;
  /** Once finished (completed or cancelled) the job is kept with its outcome this many ms, for result() and as a
   *  dedup window for its id (0: not kept; unset: the queue's KEEP, see configure). Not for addBulk. */
  keep?: number;
  /** A job no worker reserved within this many ms of its push becomes dead (`expired before start`), or is
   *  removed with `ttlDrop`. Not for addBulk. */
  ttl?: number;
  /** With `ttl`: an expired job is removed instead of dead (TTL ms DROP). */
  ttlDrop?: boolean;
  /** The jobs this one waits for: it stays `waiting` until each has completed (AFTER clauses, one per queue).
   *  Each is a job id of the same queue, or `{ queue, id }` (a worker's `job`, a flow's node) of a queue sharing
   *  the pushed queue's hash slot (`{shop}:charge`, `{shop}:ship`). Not for addBulk. */
  after?: DepRef[];
  /** What a dependency that dies or is cancelled does to this job (ON-FAIL; default "fail": it dies too). */
  onFail?: OnFail;
}

/** A job named as a dependency: an id of the queue being pushed to, or a job of any queue by its queue and id. */
export type DepRef = string | { queue: string; id: string };

/** ON-FAIL: "fail" (the waiting job dies: `dependency <queue> <id> died`), "ignore" (that dependency is dropped,
 *  not counted as done) or "continue" (it counts as done). */
export type OnFail = "fail" | "ignore" | "continue";

const ON_FAIL: readonly string[] = ["fail", "ignore", "continue"];

/**
 * `dep-queue n id ...` groups, one per queue in the order each queue first appears (ids in their given order), as
 * ONCE.PUSH's AFTER clauses and ONCE.AFTER take them; `queue` is the queue a bare id string belongs to.
 */
export function depGroups(queue: string, deps: readonly DepRef[]): Array<Array<string | number>> {
  if (!Array.isArray(deps)) throw new TypeError("after is an array of job ids or { queue, id } objects");
  const groups = new Map<string, string[]>();
  for (const dep of deps) {
    const [q, id] = typeof dep === "string" ? [queue, dep] : [dep?.queue, dep?.id];
    if (typeof q !== "string" || q.length === 0 || typeof id !== "string" || id.length === 0) {
      throw new TypeError(`a dependency is a job id or { queue, id } of non-empty strings, not ${JSON.stringify(dep)}`);
    }
    let ids = groups.get(q);
    if (!ids) groups.set(q, (ids = []));
    ids.push(id);
  }
  return [...groups].map(([q, ids]) => [q, ids.length, ...ids]);
}

/** ONCE.PUSH's `AFTER q n id ... [ON-FAIL how]` for `after` and `onFail`; nothing when both are unset. */
export function afterArgs(queue: string, after: readonly DepRef[] | undefined, onFail: OnFail | undefined):
  Array<string | number> {
  const groups = depGroups(queue, after ?? []);
  if (onFail !== undefined && onFail !== null) {
    if (!ON_FAIL.includes(onFail)) throw new TypeError(`onFail is "fail", "ignore" or "continue", not ${onFail}`);
    if (groups.length === 0) throw new TypeError("onFail goes with after (the jobs this one waits for)");
  }
  const args = groups.flatMap((g) => ["AFTER", ...g]);
  if (groups.length > 0 && onFail) args.push("ON-FAIL", onFail);
  return args;
}

const PUSH_FLAGS: Array<[keyof PushOptions, string]> = [
  ["id", "ID"], ["delay", "DELAY"], ["at", "AT"], ["retries", "RETRIES"], ["backoff", "BACKOFF"],
  ["lease", "LEASE"], ["priority", "PRIORITY"], ["group", "GROUP"], ["keep", "KEEP"], ["ttl", "TTL"],
];

/** The options the server's ONCE.BULK does not take (PUSH and CALL do). */
export const PUSH_ONLY: ReadonlyArray<keyof PushOptions> = ["keep", "ttl", "ttlDrop", "after", "onFail"];

/** Options that are not one flag and value each (see afterArgs and ttlDrop below). */
const OTHER_OPTIONS: ReadonlyArray<keyof PushOptions> = ["ttlDrop", "after", "onFail"];

/** The arguments of `opts`; `queue` (the queue pushed to) is what a bare id in `after` belongs to. */
export function pushArgs(opts: PushOptions = {}, allowed?: ReadonlyArray<keyof PushOptions>, queue?: string):
  Array<string | number> {
  const args: Array<string | number> = [];
  for (const key of Object.keys(opts) as Array<keyof PushOptions>) {
    if (!OTHER_OPTIONS.includes(key) && !PUSH_FLAGS.some(([k]) => k === key)) {
      throw new TypeError(`unknown option '${key}'`);
    }
    const v = opts[key];
    if (allowed && !allowed.includes(key) && v !== undefined && v !== null && v !== false) {
      throw new TypeError(`option '${key}' does not apply here`);
    }
  }
  for (const [key, flag] of PUSH_FLAGS) {
    const v = opts[key];
    if (v === undefined || v === null) continue;
    args.push(flag, v instanceof Date ? v.getTime() : (v as string | number));
  }
  if (opts.ttlDrop) {
    if (opts.ttl === undefined || opts.ttl === null) throw new TypeError("ttlDrop goes with ttl");
    args.push("DROP");
  }
  if ((opts.after !== undefined && opts.after !== null) || (opts.onFail !== undefined && opts.onFail !== null)) {
    if (queue === undefined) throw new TypeError("after and onFail do not apply here");
    args.push(...afterArgs(queue, opts.after ?? undefined, opts.onFail ?? undefined));
  }
  return args;
}

/**
 * One job another waited for, as ONCE.DEPS tells it: its `queue` and `id`; its `state` now (ready, delayed,
 * reserved, waiting, completed, dead, cancelled, or `gone` once it finished and was freed); how it ended,
 * `outcome` (pending, completed, dead, cancelled: still told when `gone`); its `result` as stored (a Buffer, read
 * with `text` or `json()` as a Result's) and a dead or cancelled job's `error`.
 */
export class Dep {
  readonly queue: string;
  readonly id: string;
  readonly state: JobState;
  readonly outcome: "pending" | "completed" | "dead" | "cancelled" | string;
  readonly result: Buffer | null;
  readonly error: string | null;

  constructor(fields: { queue: string; id: string; state: JobState; outcome: string; result?: Buffer | null;
                        error?: string | null }) {
    this.queue = fields.queue;
    this.id = fields.id;
    this.state = fields.state;
    this.outcome = fields.outcome;
    this.result = fields.result ?? null;
    this.error = fields.error ?? null;
  }

  /** The dependency has its outcome (it is no longer pending). */
  get done(): boolean {
    return this.outcome !== "pending";
  }

  /** The dependency completed (it was acked). */
  get ok(): boolean {
    return this.outcome === "completed";
  }

  /** The result as UTF-8 text; null without one. */
  get text(): string | null {
    return this.result === null ? null : this.result.toString("utf8");
  }

  /** The result read as JSON; null without one. Throws a SyntaxError when it is not JSON. */
  json<V = any>(): V | null {
    return this.result === null ? null : JSON.parse(this.result.toString("utf8"));
  }
}

/** ONCE.DEPS's reply (sent with Buffer replies): null (no such job), or one map per dependency. */
export function parseDeps(reply: unknown): Dep[] | null {
  if (reply == null) return null;
  return (reply as unknown[]).map((d) => {
    const m = toMap(d)!;
    return new Dep({
      queue: str(m.queue) ?? "", id: str(m.id) ?? "", state: str(m.state) ?? "", outcome: str(m.outcome) ?? "",
      result: bytes(m.result), error: str(m.error),
    });
  });
}

export interface DepsOptions {
  /** The first dependency to list (0-based, in the order they were named). */
  from?: number;
  /** At most this many. Without `from` and `count`, every dependency (read in pages). */
  count?: number;
}

/** How many dependencies one ONCE.DEPS reads while reading them all. */
const DEPS_PAGE = 1000;

/**
 * The dependencies of job `id` of `queue` (ONCE.DEPS), null for a job the queue does not hold. With `from` or
 * `count` one page as asked; else all of them, page after page (a job may wait on up to 100,000 per push).
 */
export async function fetchDeps(conn: Connection, queue: string, id: string, options: DepsOptions = {}):
  Promise<Dep[] | null> {
  const page = (from: number | undefined, count: number | undefined) => {
    const args: Array<string | number> = [id];
    if (from !== undefined) args.push("FROM", from);
    if (count !== undefined) args.push("COUNT", count);
    return send(conn, "ONCE.DEPS", queue, args, true).then(parseDeps);
  };
  if (options.from !== undefined || options.count !== undefined) return page(options.from, options.count);
  const all: Dep[] = [];
  for (;;) {
    const deps = await page(all.length, DEPS_PAGE);
    if (deps === null) return all.length === 0 ? null : all; // freed between two pages: what was read
    all.push(...deps);
    if (deps.length < DEPS_PAGE) return all;
  }
}
