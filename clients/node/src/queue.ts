// A queue's producer and admin side: push, bulk push, schedules, stats, inspect, pause/resume, retry, purge.
import type { Connection, ConnectionOption } from "./connection";
import { blockingOptions, openOwn, openShared, whenReady } from "./connection";
import {
  encodePayload, JobInfo, numericMap, OnceUnsupportedError, parseJobInfo, parseSchedules, Payload, PushOptions,
  pushArgs, ScheduleInfo, send, toMap,
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

export class Queue {
  readonly name: string;
  readonly connection: Connection;
  private readonly owned: boolean;
  private readonly spec: ConnectionOption | undefined;
  private hasBulk: boolean | undefined;

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

  /** Pushes one job; returns its id. Objects are JSON-encoded (a worker's `job.data` parses them back). */
  async add(payload: Payload, options: PushOptions = {}): Promise<string> {
    return this.cmd("ONCE.PUSH", [encodePayload(payload), ...pushArgs(options)]);
  }

  /**
   * Pushes many jobs with the same options; returns their ids in order. One ONCE.BULK where the module has it
   * (one replicated record), else one PUSH per job, all written at once without waiting for replies.
   */
  async addBulk(payloads: Payload[], options: PushOptions = {}): Promise<string[]> {
    if (payloads.length === 0) return [];
    if (options.id !== undefined) throw new TypeError("addBulk takes no id: push jobs with their own ids with add()");
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
  async list(state: "ready" | "delayed" | "reserved" | "dead", options: ListOptions = {}):
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

  /** Removes jobs in any state but reserved; returns how many. */
  async cancel(ids: string[]): Promise<number> {
    return this.cmd("ONCE.CANCEL", ids);
  }

  async purge(state: "ready" | "delayed" | "dead"): Promise<number> {
    return this.cmd("ONCE.PURGE", [state]);
  }

  /** Sets the queue's own settings (e.g. `{ RETRIES: 5, "DEAD-MAX": 1000 }`) and returns all of them. */
  async configure(settings: Record<string, number | [number, number]> = {}): Promise<Record<string, unknown>> {
    const args: Array<string | number> = [];
    for (const [name, value] of Object.entries(settings)) {
      if (Array.isArray(value)) args.push(name.toUpperCase(), value[0], "PER", value[1]);
      else args.push(name.toUpperCase(), value);
    }
    return toMap(await this.cmd("ONCE.CONFIGURE", args)) ?? {};
  }

  /**
   * Pushes a job and waits for its outcome (ONCE.CALL); null when `timeout` ms pass first. Needs a module with
   * ONCE.CALL, else throws OnceUnsupportedError. The call blocks, so it goes on a connection of its own (never
   * re-sent after a reconnect: a CALL sent twice would push the job twice).
   */
  async call(payload: Payload, options: PushOptions & { timeout: number; cancel?: boolean }):
    Promise<Record<string, any> | null> {
    const { timeout, cancel, ...push } = options;
    if (!(timeout > 0)) throw new TypeError("call() needs a timeout in ms");
    const args = [encodePayload(payload), ...pushArgs(push), "TIMEOUT", timeout];
    if (cancel) args.push("CANCEL");
    const conn = openOwn(this.spec ?? this.connection, { ...blockingOptions(timeout), connectionName: "once-call" });
    conn.on("error", () => undefined); // the call's own reply carries the failure
    try {
      await whenReady(conn, 10_000);
      return toMap(await send(conn, "ONCE.CALL", this.name, args));
    } finally {
      conn.disconnect();
    }
  }

  /** Closes the connection if this queue made it (an instance passed in stays open). */
  async close(): Promise<void> {
    if (this.owned) await this.connection.quit().catch(() => this.connection.disconnect());
  }
}
