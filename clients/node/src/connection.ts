// Connections: what a `connection` option may be, the connections a worker makes for itself, and the node that
// holds a queue in Redis Cluster.
import Redis, { Cluster } from "ioredis";
import type { RedisOptions } from "ioredis";
import calculateSlot from "cluster-key-slot";

export type Connection = Redis | Cluster;

/** An ioredis instance (Redis or Cluster, used as it is), ioredis options, or a redis:// URL. */
export type ConnectionOption = Connection | RedisOptions | string;

export function isConnection(c: unknown): c is Connection {
  return typeof (c as Connection)?.sendCommand === "function" && typeof (c as Connection)?.duplicate === "function";
}

export function isCluster(c: Connection): c is Cluster {
  return (c as Cluster).isCluster === true;
}

/** The caller's own instance as it is, or a new one made from options (then `owned`: closed with its user). */
export function openShared(spec: ConnectionOption | undefined): { conn: Connection; owned: boolean } {
  if (isConnection(spec)) return { conn: spec, owned: false };
  return { conn: fromOptions(spec, {}), owned: true };
}

/** A connection of the caller's settings that only its maker uses. */
export function openOwn(spec: ConnectionOption | undefined, overrides: RedisOptions = {}): Connection {
  if (isConnection(spec)) {
    return isCluster(spec) ? spec.duplicate(undefined, { redisOptions: { ...spec.options.redisOptions, ...overrides } })
      : spec.duplicate(overrides);
  }
  return fromOptions(spec, overrides);
}

function fromOptions(spec: RedisOptions | string | undefined, overrides: RedisOptions): Redis {
  if (spec !== undefined && typeof spec !== "string" && (typeof spec !== "object" || spec === null)) {
    throw new TypeError("connection must be an ioredis instance, ioredis options or a redis:// URL");
  }
  return typeof spec === "string" ? new Redis(spec, overrides) : new Redis({ ...(spec ?? {}), ...overrides });
}

/**
 * Settings of a connection that carries blocking RESERVEs: no client-side timeout shorter than the block, and a
 * command is never queued while disconnected nor re-sent after a reconnect (a RESERVE whose reply was lost may
 * have reserved jobs: sent again it would reserve more; those are left to their leases instead).
 */
export function blockingOptions(blockMs: number): RedisOptions {
  return {
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    enableAutoPipelining: false,
    // a half-open socket shows only as a missing reply: give up on it well after the server's own timeout
    commandTimeout: blockMs > 0 ? blockMs + 10_000 : undefined,
    socketTimeout: undefined,
    blockingTimeout: undefined,
    lazyConnect: false,
    connectionName: "once-worker-reserve",
  };
}

/** A plain connection to one node, for a blocking RESERVE on a queue of a Cluster (see Worker). */
export function openNode(cluster: Cluster, hostPort: string, overrides: RedisOptions): Redis {
  const at = hostPort.lastIndexOf(":");
  return new Redis({ ...cluster.options.redisOptions, host: hostPort.slice(0, at), port: Number(hostPort.slice(at + 1)),
    ...overrides });
}

/** "host:port" of the master that holds `key`'s slot, after asking the cluster for its current slots. */
export async function nodeOf(cluster: Cluster, key: string, refresh: boolean): Promise<string> {
  await whenReady(cluster, 10_000);
  if (refresh) await new Promise<void>((resolve) => cluster.refreshSlotsCache(() => resolve()));
  const node = cluster.slots[calculateSlot(key)]?.[0];
  if (!node) throw new Error(`the cluster has no node for the slot of '${key}'`);
  return node;
}

/** Resolves when `conn` is connected and ready, rejects after `timeoutMs` or if it has given up. */
export function whenReady(conn: Connection, timeoutMs: number): Promise<void> {
  if (conn.status === "ready") return Promise.resolve();
  if (conn.status === "end") return Promise.reject(new Error("the connection is closed"));
  if (conn.status === "wait") conn.connect().catch(() => undefined); // lazyConnect: errors surface as a timeout
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      conn.off("ready", onReady);
      conn.off("end", onEnd);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const onEnd = () => done(new Error("the connection is closed"));
    const timer = setTimeout(() => done(new Error(`could not connect to Redis within ${timeoutMs} ms`)), timeoutMs);
    conn.on("ready", onReady);
    conn.on("end", onEnd);
  });
}

/** Errors after which the same command may succeed later: the connection, a server loading or failing over. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (/^(LOADING|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|BUSY|READONLY|NOREPLICAS|UNBLOCKED|MOVED|ASK)\b/.test(err.message)) {
    return true;
  }
  return err.name === "MaxRetriesPerRequestError"
    || /connect|closed|writeable|timed out|ECONN|EPIPE|socket/i.test(err.message);
}
