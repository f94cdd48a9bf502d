// A reserved job as a handler sees it.
import type { Connection } from "./connection";
import {
  decodePayload, Decode, Dep, DepsOptions, encodeValue, fetchDeps, parseResult, Reserved, send,
} from "./protocol";

export class Job<T = any> {
  /** The job's id in its queue. */
  readonly id: string;
  /** The raw payload bytes, as the server holds them. */
  readonly payload: Buffer;
  /** This reservation's number (1 on the first try); with `id` it fences ACK, NACK, EXTEND and PROGRESS. */
  readonly attempt: number;
  readonly queue: string;
  /** What the handler returned, once it has. */
  returnvalue: unknown = undefined;
  /** @internal called once when the job is found cancelled (the worker's `cancelled` event). */
  onCancelled: ((job: Job<T>) => void) | undefined;
  private readonly decode: Decode;
  private readonly conn: Connection;
  private decoded: { value: T } | undefined;
  private isCancelled = false;
  private controller: AbortController | undefined;

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

  /**
   * True once this reservation is known to be cancelled (ONCE.CANCEL of the running job): its lease extension,
   * progress() or ACK was refused and ONCE.RESULT says `cancelled` (the job must be kept, KEEP, for that to be
   * told; else the refusal reads as a lost lease). A long handler checks it (or `signal`) and stops early; the
   * worker neither acks nor nacks a cancelled job, whatever its handler then returns or throws.
   */
  get cancelled(): boolean {
    return this.isCancelled;
  }

  /** Aborted when the job is found cancelled (see `cancelled`): hand it to fetch() and other abortable work. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.isCancelled) this.controller.abort();
    }
    return this.controller.signal;
  }

  /** Sets this reservation's lease to now + ms; false if the job is no longer this worker's (lease lost, or
   *  cancelled: then `cancelled` is true). */
  async extendLease(ms: number): Promise<boolean> {
    const deadline = await send(this.conn, "ONCE.EXTEND", this.queue, [this.id, ms, "ATTEMPT", this.attempt]);
    if (deadline === null) await this.checkCancelled();
    return deadline !== null;
  }

  /**
   * Records how far the job is (ONCE.PROGRESS, fenced by the attempt): a string or Buffer as it is, any other value
   * as JSON, as results are. Shown by `queue.result(id).progress` and INSPECT. False if the job is no longer this
   * worker's (lease lost, or cancelled: then `cancelled` is true).
   */
  async progress(data: unknown): Promise<boolean> {
    const value = encodeValue(data);
    if (value === null) throw new TypeError("progress needs data");
    const args = [this.id, value, "ATTEMPT", this.attempt];
    const stored = (await send(this.conn, "ONCE.PROGRESS", this.queue, args)) === 1;
    if (!stored) await this.checkCancelled();
    return stored;
  }

  /**
   * The jobs this one waited for (it was pushed with `after`, or is a flow's parent), in the order they were
   * named, each with its outcome and result: `(await job.deps()).map((d) => d.json())` reads the children's
   * results. Empty for a job that waited for none.
   */
  async deps(options: DepsOptions = {}): Promise<Dep[]> {
    return (await fetchDeps(this.conn, this.queue, this.id, options)) ?? [];
  }

  /**
   * @internal After a refusal: asks ONCE.RESULT whether the job was cancelled, and if so marks it. False when it
   * was not, or when the server cannot say (a module without RESULT, a user without the right to it).
   */
  async checkCancelled(): Promise<boolean> {
    if (this.isCancelled) return true;
    let outcome;
    try {
      outcome = parseResult(await send(this.conn, "ONCE.RESULT", this.queue, [this.id], true));
    } catch {
      return false;
    }
    if (outcome?.state !== "cancelled") return false;
    this.markCancelled();
    return true;
  }

  /** @internal Marks the job cancelled: `cancelled`, `signal` aborted, the worker told (once). */
  markCancelled(): void {
    if (this.isCancelled) return;
    this.isCancelled = true;
    this.controller?.abort();
    this.onCancelled?.(this);
  }
}
