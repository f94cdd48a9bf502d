"""A total-queue checker for Once, in the spirit of Jepsen's total-queue test.

Producers push unique payloads and record which pushes were *acknowledged*: the push replied with an id and a
`WAIT <replicas> <timeout>` sent right after it on the same connection returned at least `wait_replicas`.
Workers reserve with a lease, "process" each job, and acknowledge it with a fenced `ONCE.ACK q id ATTEMPT n`
(or `ONCE.RESERVE q ... ACK id ATTEMPT n`, ack-and-fetch), recording every reservation and every ACK sent.
Faults are injected by the caller while both run. At the end, with the deployment healed and quiet, the caller
calls `drain()` (reserves and acks what is ready) and `check()`:

- lost:          acknowledged pushes that no worker acked and that the queue no longer holds (INSPECT of the id).
                 A job may leave the queue only by an ACK, so this must be empty. (An ACK sent whose reply was
                 lost counts as acked: it may have taken effect. A fenced ACK that replied 0 does not.)
- duplicated:    payloads acked (ACK replied 1, or an ACK of unknown outcome) more than once (at-least-once
                 delivery allows it: the ACK of an earlier delivery was lost with a master).
- redelivered:   payloads reserved more than once.
- unexpected:    payloads reserved that no producer ever sent (corruption).
- attempt_regressions: two reservations of one job, each confirmed replicated (`WAIT` after the RESERVE) or made
                 by the drain on the healed deployment, the later with an attempt number not above the earlier
                 one: a fencing token that repeated or went back across a fault (design.md v2: attempts only
                 grow).
- retries_changed: jobs still held at the end whose `retries` is not what the producer pushed.
- mismatched:    jobs held at the end (by their pushed id) whose payload is not the pushed payload.

API (also used by tests/cluster)::

    from checker import Workload

    wl = Workload(client_factory, ["q1", "q2"], producers=2, workers=2, lease_ms=1000, backlog_queues=["q3"])
    wl.start()
    ...                       # inject faults; wl.note_fault("kill -9 master") names them in the report
    wl.stop()                 # producers and workers end (bounded: each op is bounded by the client's timeouts)
    ...                       # heal the deployment, wait until quiet
    wl.drain()                # reserves and acks every ready job (recorded like a worker's)
    result = wl.check()       # a Result; result.ok is False when anything acknowledged is lost
    print(result.line("master+replica redis"))

`client_factory()` returns a new redis-py client each call: `redis.Redis(...)`, `Sentinel(...).master_for(...)`
or `RedisCluster(...)`. Each producer and worker thread asks for its own and asks again after an error, so a
factory that follows the current master (or Sentinel, or the cluster) makes the threads follow failovers. Give
clients a `socket_timeout` (a stopped master must not hang a thread) and no hidden retries
(`retry=Retry(NoBackoff(), 0)`), so what the checker records is what the server did.

`durable_push(client, queue, args) -> (reply, replicas_acked)` can be given to replace the default (a pipeline of
`ONCE.PUSH` then `WAIT` on one connection; for a `RedisCluster`, on the connection of the node owning the key).
"""
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import redis

ClientFactory = Callable[[], Any]


def _s(v: Any) -> Any:
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v


def _map(reply: Any) -> Optional[Dict[str, Any]]:
    if reply is None:
        return None
    if isinstance(reply, dict):
        return {_s(k): v for k, v in reply.items()}
    return {_s(reply[i]): reply[i + 1] for i in range(0, len(reply), 2)}


def node_client(client: Any, queue: str) -> Any:
    """The plain client a command on `queue` must use: the client itself, or for a RedisCluster the Redis client
    of the node that owns the key's slot (WAIT must follow the write on the same connection)."""
    if hasattr(client, "get_node_from_key") and hasattr(client, "get_redis_connection"):
        return client.get_redis_connection(client.get_node_from_key(queue))
    return client


def pipelined(client: Any, queue: str, args: Sequence[Any], wait_replicas: int, wait_timeout_ms: int):
    """Runs `args` then `WAIT wait_replicas wait_timeout_ms` in one pipeline on one connection.
    Returns (reply of args, replicas that acknowledged); an error reply of `args` is raised."""
    c = node_client(client, queue)
    pipe = c.pipeline(transaction=False)
    pipe.execute_command(*args)
    pipe.execute_command("WAIT", wait_replicas, wait_timeout_ms)
    reply, acked = pipe.execute(raise_on_error=False)
    if isinstance(reply, Exception):
        raise reply
    return reply, (acked if isinstance(acked, int) else 0)


def retrying(factory: ClientFactory, fn: Callable[[Any], Any], timeout: float = 20.0) -> Any:
    """`fn(client)` with a client from `factory`, again on a new client after a connection error or a transient
    error reply (READONLY, LOADING, MASTERDOWN...), for up to `timeout` seconds: the end of a run must not fail
    because the deployment was still settling."""
    deadline = time.monotonic() + timeout
    while True:
        client = factory()
        try:
            return fn(client)
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, redis.BusyLoadingError):
            if time.monotonic() > deadline:
                raise
        except redis.ResponseError as exc:
            if time.monotonic() > deadline or not str(exc).upper().startswith(("MASTERDOWN", "TRYAGAIN", "LOADING")):
                raise
        finally:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        time.sleep(0.2)


@dataclass
class Push:
    payload: str
    queue: str
    retries: int
    id: Optional[str] = None
    status: str = "unknown"   # ok (acknowledged) | unreplicated (replied, WAIT short) | refused | unknown
    replicas: int = 0


@dataclass
class Reservation:
    payload: str
    queue: str
    id: str
    attempt: int
    at: float
    durable: bool


@dataclass
class Result:
    topology: str = ""
    faults: List[str] = field(default_factory=list)
    pushed: int = 0                 # pushes attempted
    acknowledged: int = 0           # pushes with an id and WAIT >= wait_replicas
    completed: int = 0              # distinct payloads acked by a worker or the drain
    in_queue: int = 0               # acknowledged, not completed, still held by the queue at the end
    lost: List[str] = field(default_factory=list)
    duplicated: int = 0
    redelivered: int = 0
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)
    attempt_regressions: List[str] = field(default_factory=list)
    retries_changed: List[str] = field(default_factory=list)
    acks_refused: int = 0           # fenced ACKs that replied 0 (the reservation no longer held)
    errors: Dict[str, int] = field(default_factory=dict)   # client errors seen, by kind (faults cause them)
    extra: Dict[str, Any] = field(default_factory=dict)    # what a topology adds (digests compared, ...)
    failures: List[str] = field(default_factory=list)      # other checks a topology failed

    @property
    def ok(self) -> bool:
        return not (self.lost or self.unexpected or self.mismatched or self.attempt_regressions
                    or self.retries_changed or self.failures) and self.acknowledged > 0

    def line(self, topology: Optional[str] = None) -> str:
        """One line: topology, faults injected, acknowledged, completed, lost, duplicated (and the rest)."""
        topo = topology or self.topology
        faults = ", ".join(self.faults) or "none"
        parts = [f"topology={topo}", f"faults=[{faults}]", f"acknowledged={self.acknowledged}",
                 f"completed={self.completed}", f"lost={len(self.lost)}", f"duplicated={self.duplicated}",
                 f"redelivered={self.redelivered}", f"in_queue={self.in_queue}", f"unexpected={len(self.unexpected)}",
                 f"attempt_regressions={len(self.attempt_regressions)}",
                 f"retries_changed={len(self.retries_changed)}", f"pushed={self.pushed}"]
        parts += [f"{k}={v}" for k, v in self.extra.items()]
        if self.failures:
            parts.append("failures=" + "; ".join(self.failures))
        parts.append("OK" if self.ok else "FAIL")
        return " ".join(parts)

    def details(self, limit: int = 10) -> str:
        """The first few offending items of each kind, for a failure message."""
        out = []
        for name in ("lost", "unexpected", "mismatched", "attempt_regressions", "retries_changed", "failures"):
            items = getattr(self, name)
            if items:
                out.append(f"{name} ({len(items)}): " + "; ".join(map(str, items[:limit])))
        if self.errors:
            out.append("client errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.errors.items())))
        return "\n".join(out)


class Workload:
    """Producers and workers on `queues` through clients from `client_factory`, recording a history to check.

    Options: `producers`, `workers` (threads); `lease_ms` (RESERVE's LEASE); `count` (RESERVE COUNT);
    `retries` (each job's RETRIES: high, so no job goes dead in a run); `delay_every` (one push in n is delayed by
    up to `max_delay_ms`, so the timer promotes); `slow_every` (one job in n is held longer than its lease, so
    leases expire and jobs are redelivered); `nack_every` (one job in n is nacked, fenced, with a short DELAY);
    `ack_fetch_every` (one ack in n rides on the next RESERVE as `ACK id ATTEMPT n`); `wait_replicas`,
    `wait_timeout_ms` (what makes a push acknowledged, and a reservation durable); `push_interval` (seconds
    between pushes of one producer); `durable_push` (see the module doc); `backlog_queues`: queues the producers
    push to too but no worker reads until `drain()`, so jobs sit in the queue across every fault (a backlog, where
    a fault that drops state shows as lost jobs); `schedule_every_ms`: a schedule `@every <n>ms` on each worker
    queue, so the timer fires schedules all along (its jobs carry the payload `<tag>/cron`, are acked like the
    others, and are left out of the lost/duplicated/unexpected counts; `drain()` removes the schedules first);
    `reserve_wait_ms`: the WAIT after each RESERVE (it only decides whether a reservation counts as durable for
    the attempt check, so it is short: workers keep going while no replica is attached).
    """

    def __init__(self, client_factory: ClientFactory, queues: Sequence[str], *, producers: int = 2,
                 workers: int = 2, lease_ms: int = 1000, count: int = 4, retries: int = 1000, delay_every: int = 5,
                 max_delay_ms: int = 300, slow_every: int = 40, nack_every: int = 25, ack_fetch_every: int = 3,
                 wait_replicas: int = 1, wait_timeout_ms: int = 1000, push_interval: float = 0.004,
                 durable_push: Optional[Callable[[Any, str, List[Any]], Tuple[Any, int]]] = None,
                 seed: Optional[int] = None, tag: Optional[str] = None, backlog_queues: Sequence[str] = (),
                 schedule_every_ms: int = 0, reserve_wait_ms: int = 100):
        if not queues:
            raise ValueError("at least one queue")
        self.factory = client_factory
        self.queues = list(queues)
        self.backlog_queues = [q for q in backlog_queues if q not in self.queues]
        self.schedule_every_ms = schedule_every_ms
        self.reserve_wait_ms = reserve_wait_ms
        self.n_producers, self.n_workers = producers, workers
        self.lease_ms, self.count, self.retries = lease_ms, count, retries
        self.delay_every, self.max_delay_ms = delay_every, max_delay_ms
        self.slow_every, self.nack_every, self.ack_fetch_every = slow_every, nack_every, ack_fetch_every
        self.wait_replicas, self.wait_timeout_ms = wait_replicas, wait_timeout_ms
        self.push_interval = push_interval
        self.durable_push = durable_push or (lambda c, q, args: pipelined(c, q, args, self.wait_replicas,
                                                                         self.wait_timeout_ms))
        self.seed = random.randrange(1 << 30) if seed is None else seed
        self.tag = tag or uuid.uuid4().hex[:6]
        self.lock = threading.Lock()
        self.pushes: Dict[str, Push] = {}
        self.reservations: List[Reservation] = []
        self.acks: Dict[str, List[str]] = {}         # payload -> outcomes: "acked" | "refused" | "unknown"
        self.errors: Dict[str, int] = {}
        self.faults: List[str] = []
        self.stop_event = threading.Event()
        self.threads: List[threading.Thread] = []
        self.reserve_ack_fenced = True               # cleared if the server refuses RESERVE ... ACK id ATTEMPT n

    # --- recording ------------------------------------------------------------------------------------------

    def note_fault(self, text: str) -> None:
        """Names a fault in the report (call it when injecting one)."""
        with self.lock:
            self.faults.append(text)

    def _error(self, exc: BaseException) -> None:
        text = str(exc).split("\n")[0]
        kind = type(exc).__name__ + (":" + text.split()[0] if isinstance(exc, redis.ResponseError) and text
                                     else "")
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def _ack_outcome(self, payload: str, outcome: str) -> None:
        with self.lock:
            self.acks.setdefault(payload, []).append(outcome)

    # --- threads --------------------------------------------------------------------------------------------

    @property
    def cron_payload(self) -> str:
        return f"{self.tag}/cron"

    def _schedule_name(self) -> str:
        return f"chaos-{self.tag}"

    def start(self) -> "Workload":
        if self.schedule_every_ms:
            client = self.factory()
            try:
                for q in self.queues:
                    node_client(client, q).execute_command(
                        "ONCE.SCHEDULE", q, self._schedule_name(), f"@every {self.schedule_every_ms}ms",
                        self.cron_payload, "RETRIES", self.retries, "BACKOFF", 20)
            finally:
                client.close()
        for i in range(self.n_producers):
            self._spawn(self._producer, i, f"chaos-producer-{i}")
        for i in range(self.n_workers):
            self._spawn(self._worker, i, f"chaos-worker-{i}")
        return self

    def _spawn(self, fn: Callable[[int], None], i: int, name: str) -> None:
        def run() -> None:
            try:
                fn(i)
            except Exception as exc:  # noqa: BLE001 - a crashed thread is a failure of the run, reported
                self._error(exc)
                with self.lock:
                    self.errors["thread crashed: " + repr(exc)[:200]] = 1
        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        """Stops every producer and worker and waits for them (each is bounded by its client's timeouts)."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            with self.lock:
                self.errors["threads still running at stop: " + ",".join(alive)] = 1

    def _client(self, old: Any = None) -> Any:
        if old is not None:
            try:
                old.close()
            except Exception:  # noqa: BLE001
                pass
        return self.factory()

    def _pause(self, rnd: random.Random) -> None:
        self.stop_event.wait(rnd.uniform(0.02, 0.1))

    def _producer(self, index: int) -> None:
        rnd = random.Random(self.seed * 1000 + index)
        client = None
        seq = 0
        targets = self.queues + self.backlog_queues
        while not self.stop_event.is_set():
            queue = targets[seq % len(targets)]
            payload = f"{self.tag}/p{index}/{seq}"
            seq += 1
            args: List[Any] = ["ONCE.PUSH", queue, payload, "RETRIES", self.retries, "BACKOFF", 20,
                               "PRIORITY", rnd.randint(0, 2)]
            if self.delay_every and rnd.randrange(self.delay_every) == 0:
                args += ["DELAY", rnd.randint(1, self.max_delay_ms)]
            rec = Push(payload, queue, self.retries)
            with self.lock:
                self.pushes[payload] = rec
            try:
                client = client or self._client()
                reply, replicas = self.durable_push(client, queue, args)
                rec.id, rec.replicas = _s(reply), replicas
                rec.status = "ok" if replicas >= self.wait_replicas else "unreplicated"
            except redis.ResponseError as exc:
                # an error reply: the push was refused (READONLY, LOADING, MASTERDOWN...), nothing added
                rec.status = "refused"
                self._error(exc)
                client = self._client(client) if client is not None else None
                self._pause(rnd)
            except Exception as exc:  # noqa: BLE001 - connection lost, timeout: the push may or may not be in
                rec.status = "unknown"
                self._error(exc)
                client = self._client(client) if client is not None else None
                self._pause(rnd)
            else:
                if self.push_interval:
                    self.stop_event.wait(self.push_interval)
        if client is not None:
            client.close()

    def _ack(self, client: Any, job: Reservation, ambiguous: bool = False) -> Any:
        """A fenced ACK, resent on errors (the fence makes a resend harmless). Recorded as "acked" (replied 1),
        "refused" (a first, definite 0: the reservation no longer held) or "unknown" (no reply within 10 s, or a
        0 after a send whose fate is unknown: that send may have acked it). `ambiguous`: an earlier send of this
        ACK (RESERVE ... ACK) may have taken effect."""
        deadline = time.monotonic() + 10.0
        while True:
            try:
                client = client or self._client()
                n = node_client(client, job.queue).execute_command("ONCE.ACK", job.queue, job.id, "ATTEMPT",
                                                                   job.attempt)
                self._ack_outcome(job.payload, "acked" if int(n) == 1 else "unknown" if ambiguous else "refused")
                return client
            except Exception as exc:  # noqa: BLE001
                self._error(exc)
                ambiguous = ambiguous or not isinstance(exc, redis.ResponseError)
                client = self._client(client)
                if time.monotonic() > deadline:
                    self._ack_outcome(job.payload, "unknown")
                    return client
                time.sleep(0.05)

    def _reserve(self, client: Any, queue: str, count: int, lease_ms: int,
                 ack: Optional[Reservation] = None) -> List[Reservation]:
        args: List[Any] = ["ONCE.RESERVE", queue, "COUNT", count, "LEASE", lease_ms]
        if ack is not None:
            args += ["ACK", ack.id, "ATTEMPT", ack.attempt]
        reply, replicas = pipelined(client, queue, args, self.wait_replicas, self.reserve_wait_ms)
        now = time.monotonic()
        durable = replicas >= self.wait_replicas
        got = [Reservation(_s(p), queue, _s(i), int(a), now, durable) for i, p, a in (reply or [])]
        with self.lock:
            self.reservations.extend(got)
        return got

    def _worker(self, index: int) -> None:
        rnd = random.Random(self.seed * 1000 + 500 + index)
        client = None
        turn = index
        pending: Optional[Reservation] = None      # a finished job to ack with the next RESERVE (same queue)
        while not self.stop_event.is_set():
            queue = pending.queue if pending is not None else self.queues[turn % len(self.queues)]
            turn += 1
            try:
                client = client or self._client()
                try:
                    jobs = self._reserve(client, queue, self.count, self.lease_ms, pending)
                except redis.ResponseError as exc:
                    if pending is not None and "ATTEMPT" in str(exc).upper():
                        self.reserve_ack_fenced = False     # this server has no RESERVE ... ACK id ATTEMPT n
                    raise
                if pending is not None:
                    self._ack_outcome(pending.payload, "unknown")   # RESERVE's ACK does not say if it took effect
                    pending = None
            except Exception as exc:  # noqa: BLE001
                self._error(exc)
                client = self._client(client) if client is not None else None
                if pending is not None:                 # deliver that ACK on its own, fenced
                    client = self._ack(client, pending, ambiguous=True)
                    pending = None
                self._pause(rnd)
                continue
            if not jobs:
                self.stop_event.wait(0.01)
                continue
            for k, job in enumerate(jobs):
                roll = rnd.randrange(1000)
                if self.slow_every and roll % self.slow_every == 0 and not self.stop_event.is_set():
                    # held past its lease: it expires and is redelivered; the late ACK must be refused
                    self.stop_event.wait(self.lease_ms / 1000.0 * 1.5)
                elif self.nack_every and roll % self.nack_every == 1:
                    try:
                        node_client(client, queue).execute_command(
                            "ONCE.NACK", queue, job.id, "ATTEMPT", job.attempt, "ERROR", "chaos nack", "DELAY",
                            rnd.randint(0, 50))
                    except Exception as exc:  # noqa: BLE001 - the lease will expire instead
                        self._error(exc)
                    continue
                else:
                    time.sleep(rnd.uniform(0, 0.003))       # the work
                last = k == len(jobs) - 1
                if (last and self.reserve_ack_fenced and self.ack_fetch_every
                        and rnd.randrange(self.ack_fetch_every) == 0 and not self.stop_event.is_set()):
                    pending = job
                else:
                    client = self._ack(client, job)
        if pending is not None:
            client = self._ack(client, pending)
        if client is not None:
            client.close()

    # --- the end --------------------------------------------------------------------------------------------

    def drain(self, client_factory: Optional[ClientFactory] = None, timeout: float = 30.0,
              settle: Optional[float] = None) -> int:
        """With producers and workers stopped and the deployment healed: waits `settle` seconds (default: the
        lease plus the longest delay, so held leases run out and delayed jobs come due), then reserves and acks
        every ready job of every queue (recorded like a worker's). Returns how many jobs it acked."""
        self.stop_event.set()
        factory = client_factory or self.factory
        time.sleep(settle if settle is not None else (self.lease_ms + self.max_delay_ms) / 1000.0 + 0.5)
        deadline = time.monotonic() + timeout
        done = 0
        if self.schedule_every_ms:
            for q in self.queues:
                retrying(factory, lambda c, q=q: node_client(c, q).execute_command(
                    "ONCE.UNSCHEDULE", q, self._schedule_name()))

        def batch(client: Any, queue: str) -> int:
            """Reserves up to 1000 ready jobs and acks them; how many were reserved."""
            c = node_client(client, queue)
            reply = c.execute_command("ONCE.RESERVE", queue, "COUNT", 1000, "LEASE", 600000)
            if not reply:
                return 0
            # taken from the healed deployment, which holds every durable change: compared with the durable
            # reservations for attempt regressions
            jobs = [Reservation(_s(p), queue, _s(i), int(a), time.monotonic(), True) for i, p, a in reply]
            with self.lock:
                self.reservations.extend(jobs)
            pipe = c.pipeline(transaction=False)
            for j in jobs:
                pipe.execute_command("ONCE.ACK", queue, j.id, "ATTEMPT", j.attempt)
            try:
                replies = pipe.execute(raise_on_error=False)
            except Exception:
                for j in jobs:                          # those ACKs may or may not have been applied
                    self._ack_outcome(j.payload, "unknown")
                raise
            for j, n in zip(jobs, replies):
                self._ack_outcome(j.payload, "acked" if n == 1 else "refused")
            return len(jobs)

        for queue in self.queues + self.backlog_queues:
            while time.monotonic() < deadline:
                n = retrying(factory, lambda c, queue=queue: batch(c, queue))
                done += n
                if not n:
                    break
        return done

    def check(self, client_factory: Optional[ClientFactory] = None) -> Result:
        """Compares the history with what the queues hold now (INSPECT of every acknowledged job not acked)."""
        factory = client_factory or self.factory
        res = Result(faults=list(self.faults), errors=dict(self.errors))
        res.failures += [k for k in self.errors if k.startswith(("thread crashed", "threads still running"))]
        with self.lock:
            pushes = dict(self.pushes)
            reservations = list(self.reservations)
            acks = {k: list(v) for k, v in self.acks.items()}
        res.pushed = len(pushes)
        cron = self.cron_payload
        res.extra["cron_jobs"] = len({(r.queue, r.id) for r in reservations if r.payload == cron})
        acks.pop(cron, None)
        reservations_all, reservations = reservations, [r for r in reservations if r.payload != cron]
        completed = {p for p, outcomes in acks.items() if any(o in ("acked", "unknown") for o in outcomes)}
        res.completed = len(completed)
        res.duplicated = sum(1 for outcomes in acks.values()
                             if sum(o in ("acked", "unknown") for o in outcomes) > 1)
        res.acks_refused = sum(o == "refused" for outcomes in acks.values() for o in outcomes)
        seen: Dict[str, int] = {}
        for r in reservations:
            seen[r.payload] = seen.get(r.payload, 0) + 1
        res.redelivered = sum(1 for n in seen.values() if n > 1)
        res.unexpected = sorted(p for p in seen if p not in pushes)
        # attempts: durable reservations of one job must carry growing attempt numbers
        by_id: Dict[Tuple[str, str], List[Reservation]] = {}
        for r in reservations_all:
            if r.durable:
                by_id.setdefault((r.queue, r.id), []).append(r)
        for (queue, job_id), rs in by_id.items():
            rs.sort(key=lambda r: r.at)
            for a, b in zip(rs, rs[1:]):
                if b.attempt <= a.attempt:
                    res.attempt_regressions.append(f"{queue} {job_id}: attempt {a.attempt} then {b.attempt}")
        acknowledged = [p for p in pushes.values() if p.status == "ok"]
        res.acknowledged = len(acknowledged)
        state: Dict[str, Any] = {}

        def inspect(p: Push) -> Any:
            def once(c: Any) -> Any:
                return _map(node_client(c, p.queue).execute_command("ONCE.INSPECT", p.queue, p.id))
            try:
                return once(state["client"])
            except Exception:  # noqa: BLE001 - the deployment was still settling: a fresh client, with retries
                state["client"].close()
                state["client"] = factory()
                return retrying(factory, once)

        state["client"] = factory()
        try:
            for p in acknowledged:
                if p.payload in completed:
                    continue
                info = inspect(p)
                if info is None:
                    res.lost.append(f"{p.queue} {p.id} {p.payload}")
                    continue
                res.in_queue += 1
                if _s(info.get("payload")) != p.payload:
                    res.mismatched.append(f"{p.queue} {p.id}: payload {_s(info.get('payload'))!r}, "
                                          f"pushed {p.payload!r}")
                if int(info.get("retries")) != p.retries:
                    res.retries_changed.append(f"{p.queue} {p.id}: retries {info.get('retries')}, "
                                               f"pushed {p.retries}")
        finally:
            state["client"].close()
        res.extra["reserve_ack_fenced"] = "yes" if self.reserve_ack_fenced else "unsupported"
        return res
