"""Small helpers of the cluster tests: replies as dicts, MOVED parsing, direct per-node clients, a load generator."""
import threading
import time

from redis.cluster import RedisCluster

from helpers import RawClient, encode_command  # noqa: F401  (tests/integration/helpers.py)


NOTES = []  # one line per figure worth seeing (acknowledged counts, redirect times): printed after the run


def note(line):
    """Prints a result line and keeps it for the session's terminal summary (shown without -s too)."""
    NOTES.append(line)
    print("\n" + line)


def as_map(reply):
    if reply is None or isinstance(reply, dict):
        return reply
    return {reply[i]: reply[i + 1] for i in range(0, len(reply), 2)}


def stats(client, queue):
    """ONCE.STATS as ints (the queue's unset settings stay None)."""
    return {k: None if v is None else int(v) for k, v in as_map(client.execute_command("ONCE.STATS", queue)).items()}


def inspect(client, queue, job_id):
    return as_map(client.execute_command("ONCE.INSPECT", queue, job_id))


def moved_target(exc_text):
    """'MOVED 1234 127.0.0.1:7001' or redis-py's stripped '1234 127.0.0.1:7001' -> (slot, port)."""
    parts = exc_text.split()
    if parts and parts[0] in ("MOVED", "ASK"):
        parts = parts[1:]
    return int(parts[0]), int(parts[1].rsplit(":", 1)[1])


def cluster_client(cluster, **kw):
    kw.setdefault("decode_responses", True)
    kw.setdefault("protocol", 2)
    return RedisCluster(host="127.0.0.1", port=cluster.masters()[0].port, **kw)


def queues_on_every_master(cluster, prefix, n):
    """n queue names spread evenly over the masters' slot ranges (n / 3 per master)."""
    from cluster_harness import keys_over_slots

    return keys_over_slots(prefix, n, cluster.master_ranges())


def scan_queues(client):
    """The Once queue keys of one node (SCAN ... TYPE OnceQueue)."""
    return set(client.scan_iter(_type="OnceQueue", count=1000))


class Load:
    """Producers and workers on many queues through RedisCluster, in threads, until stop().

    - producers push ids `p<producer>-<n>` round-robin over `queues` (at most `rate` pushes/s each; every other
      push goes to `hot` if given), recording every push that got its reply (`pushed`: id -> queue);
    - `blockers` workers per queue in `block_queues` run `ONCE.RESERVE q BLOCK 1000 ACK <previous>`;
    - `pollers` workers walk every queue with `ONCE.RESERVE q COUNT 10` and `ONCE.ACK`;
    - `acked`: id -> number of acks that completed it (1 for each job; duplicates would show as 2).
    Every loop is bounded by `max_secs`; errors are collected in `errors`, not raised.
    """

    def __init__(self, cluster, queues, block_queues=(), producers=2, blockers=2, pollers=1, rate=300,
                 max_secs=60, hot=None):
        self.cluster, self.queues = cluster, list(queues)
        self.block_queues = list(block_queues)
        self.stop_push = threading.Event()
        self.stop_all = threading.Event()
        self.lock = threading.Lock()
        self.pushed, self.acked, self.errors = {}, {}, []
        self.reserves_by_queue = {}
        self.rate, self.max_secs = rate, max_secs
        self.hot = hot  # a queue that gets every other push
        self.threads = []
        for p in range(producers):
            self.threads.append(threading.Thread(target=self._producer, args=(p,), daemon=True))
        for q in self.block_queues:
            for _ in range(blockers):
                self.threads.append(threading.Thread(target=self._blocker, args=(q,), daemon=True))
        for _ in range(pollers):
            self.threads.append(threading.Thread(target=self._poller, daemon=True))
        self.t0 = None

    def start(self):
        self.t0 = time.time()
        for t in self.threads:
            t.start()
        return self

    def _client(self):
        return cluster_client(self.cluster, socket_timeout=10)

    def _err(self, where, e):
        with self.lock:
            self.errors.append(f"{where}: {type(e).__name__}: {e}")

    def _expired(self):
        return time.time() - self.t0 > self.max_secs

    def _producer(self, p):
        rc = self._client()
        n = 0
        try:
            while not self.stop_push.is_set() and not self._expired():
                q = self.hot if self.hot and n % 2 == 0 else self.queues[n % len(self.queues)]
                jid = f"p{p}-{n}"
                try:
                    got = rc.execute_command("ONCE.PUSH", q, f"job {jid}", "ID", jid)
                    assert got == jid, got
                    with self.lock:
                        self.pushed[jid] = q
                except Exception as e:  # noqa: BLE001
                    self._err(f"push {jid}", e)
                    time.sleep(0.05)
                n += 1
                if self.rate:
                    time.sleep(1.0 / self.rate)
        finally:
            rc.close()

    def _done(self, jid):
        with self.lock:
            self.acked[jid] = self.acked.get(jid, 0) + 1

    def _blocker(self, q):
        rc = self._client()
        held = None
        try:
            while not self.stop_all.is_set() and not self._expired():
                args = ["ONCE.RESERVE", q, "BLOCK", 1000]
                if held:
                    args += ["ACK", held]
                try:
                    r = rc.execute_command(*args)
                except Exception as e:  # noqa: BLE001
                    self._err(f"reserve {q}", e)
                    time.sleep(0.05)
                    continue
                if held:
                    self._done(held)
                    held = None
                if r:
                    held = r[0][0]
                    with self.lock:
                        self.reserves_by_queue[q] = self.reserves_by_queue.get(q, 0) + 1
            if held:
                if rc.execute_command("ONCE.ACK", q, held) == 1:
                    self._done(held)
        except Exception as e:  # noqa: BLE001
            self._err(f"blocker {q}", e)
        finally:
            rc.close()

    def _poller(self):
        rc = self._client()
        others = [q for q in self.queues if q not in self.block_queues]
        try:
            while not self.stop_all.is_set() and not self._expired():
                got = 0
                for q in others:
                    try:
                        r = rc.execute_command("ONCE.RESERVE", q, "COUNT", 10)
                        if r:
                            ids = [j[0] for j in r]
                            n = rc.execute_command("ONCE.ACK", q, *ids)
                            assert n == len(ids), (n, ids)
                            for jid in ids:
                                self._done(jid)
                            got += len(ids)
                    except Exception as e:  # noqa: BLE001
                        self._err(f"poll {q}", e)
                if not got:
                    time.sleep(0.02)
        finally:
            rc.close()

    def drain(self, timeout=30):
        """Stops producing, waits until every pushed job was acked (bounded), then stops the workers."""
        self.stop_push.set()
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if set(self.pushed) <= set(self.acked):
                    break
            time.sleep(0.05)
        self.stop_all.set()
        for t in self.threads:
            t.join(timeout=15)
        return self


def once_info(client):
    """INFO once as {field without the once_ prefix: value} (redis-py makes the numbers ints)."""
    return {k[len("once_"):]: v for k, v in client.info("once").items()}


def slot_migrations(client):
    """CLUSTER GETSLOTMIGRATIONS (Valkey 9) as a list of dicts, newest first."""
    return [as_map(m) for m in client.execute_command("CLUSTER", "GETSLOTMIGRATIONS")]


def digest_value(client, key):
    d = client.execute_command("DEBUG", "DIGEST-VALUE", key)
    return d[0] if isinstance(d, list) else d
