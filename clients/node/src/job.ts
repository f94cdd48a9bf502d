// A reserved job as a handler sees it.
import type { Connection } from "./connection";
import { decodePayload, Decode, Reserved, send } from "./protocol";

export class Job<T = any> {
  /** The job's id in its queue. */
  readonly id: string;
  /** The raw payload bytes, as the server holds them. */
  readonly payload: Buffer;
  /** This reservation's number (1 on the first try); with `id` it fences ACK, NACK and EXTEND. */
  readonly attempt: number;
  readonly queue: string;
  /** What the handler returned, once it has. */
  returnvalue: unknown = undefined;
  private readonly decode: Decode;
  private readonly conn: Connection;
  private decoded: { value: T } | undefined;

  constructor(queue: string, reserved: Reserved, decode: Decode, conn: Connection) {
    this.queue = queue;
    this.id = reserved.id;
    this.payload = reserved.payload;
    this.attempt = reserved.attempt;
    this.decode = decode;
    this.conn = conn;
  }

  /** The payload as pushed: objects parsed from JSON, other payloads as text (see the worker's `decode`). */
  get data(): T {
    if (this.decoded === undefined) this.decoded = { value: decodePayload(this.payload, this.decode) as T };
    return this.decoded.value;
  }

  /** Sets this reservation's lease to now + ms; false if the job is no longer this worker's (lease lost). */
  async extendLease(ms: number): Promise<boolean> {
    const deadline = await send(this.conn, "ONCE.EXTEND", this.queue, [this.id, ms, "ATTEMPT", this.attempt]);
    return deadline !== null;
  }

  /** Records progress (ONCE.PROGRESS, fenced); false if the job is no longer this worker's. */
  async progress(data: string | Buffer | object): Promise<boolean> {
    const value = typeof data === "string" || Buffer.isBuffer(data) ? data : JSON.stringify(data);
    return (await send(this.conn, "ONCE.PROGRESS", this.queue, [this.id, value, "ATTEMPT", this.attempt])) === 1;
  }
}
