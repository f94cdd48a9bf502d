"""The worker loop: blocking ack-and-fetch reserves, lease keeping, failure handling, monitoring, graceful stop.

Threads of one ``Worker.run()``:

- N *reservers* (``concurrency``), each on a connection of its own:
  ``ONCE.RESERVE q COUNT prefetch BLOCK b LEASE l [ACK prev ATTEMPT n | ACKS k id attempt ...] WITHACK
  [ALSO q2 ...]`` waits on the server for up to ``prefetch`` jobs (no polling) and acknowledges the jobs finished
  since the last round trip in the same one, each fenced by its attempt (a job whose lease ran out and that another
  worker holds now is not completed by this late ACK, and WITHACK tells the worker so: it logs a warning); finished
  jobs of the ALSO queues go as ``ONCE.ACK q2 ...`` in that round trip. The jobs run one after the other in that
  thread; a failure is nacked with its ``ATTEMPT`` and error text; the last ACKs when stopping are ``ONCE.ACK``.
- one *lease keeper*: for every job in hand (running, or prefetched and waiting its turn),
  ``ONCE.EXTEND q id lease ATTEMPT n`` every ``extend_every_ms``. An EXTEND refused because the job was cancelled
  (``ONCE.CANCEL`` of a running job; ``ONCE.RESULT`` tells) sets the job's ``cancelled``.
- one *monitor* (when a monitor_handler is given): ``ONCE.STATS`` every ``monitor_interval`` seconds.
- the calling thread waits for a stop (a signal, ``stop()``, the stop event), then wakes the reservers still
  blocked (``CLIENT UNBLOCK``; a user without the right to CLIENT ID / CLIENT UNBLOCK just waits out block_ms),
  lets every job in hand finish and be acked, and returns.

A queue key that holds a list (a list producer that started first) is adopted: ``ONCE.ADOPT`` turns it into the
queue, its items into jobs, and one line says how many; from then on the module turns that producer's RPUSH/LPUSH
into jobs. A key of any other type stops the worker with one line naming it (``WrongTypeError``); a key that does
not exist yet is waited for. At start the worker logs a warning when the
server's eviction policy can drop whole queues (INFO once).
"""
import dataclasses
import logging
import random
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .client import Once
from .errors import WrongTypeError, is_no_permission
from .server import server_eviction_warning
from .types import Job, PermanentError, Stats, decode_payload, encode_value, error_text, to_str

log = logging.getLogger("once.worker")

# Errors after which the same command may succeed later: the connection, or a server that is loading or failing over.
# What a failover or a slot move answers: the worker waits and tries again (on the new master, through its client).
# UNBLOCKED: Redis 7.0 answers a blocked RESERVE so when its master becomes a replica; MOVED/ASK: Valkey and a
# cluster that moved the slot.
_TRANSIENT_PREFIXES = ("LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY", "READONLY", "NOREPLICAS",
                       "UNBLOCKED", "MOVED", "ASK")


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError)):
        return True
    if isinstance(exc, (redis.ReadOnlyError, redis.exceptions.AskError)):
        return True
    if isinstance(exc, redis.ResponseError):
        return str(exc).upper().startswith(_TRANSIENT_PREFIXES)
    return False


# Pool-internal keyword arguments that a pool adds to its connection_kwargs and that must not leak into another pool.
_POOL_OWNED = ("maint_notifications_pool_handler", "maint_notifications_config", "orig_host_address",
               "orig_socket_timeout", "orig_socket_connect_timeout", "himport_registry", "event_dispatcher",
               "cache", "cache_config", "connection_pool")


def was_cancelled(once: Any, job: Job) -> bool:
    """Whether a reservation the server no longer honours was cancelled (ONCE.RESULT); False where the module has
    no ONCE.RESULT (it cannot cancel a running job) or the question fails."""
    try:
        return bool(once.was_cancelled(job))
    except redis.RedisError as exc:
        log.debug("ONCE.RESULT %s: %s", job.id, exc)
        return False


def mark_cancelled(job: Job) -> None:
    if job._control is not None and not job._control.cancelled.is_set():
        job._control.cancelled.set()
        log.info("job %s (attempt %d) was cancelled while it ran: it is not acknowledged", job.id, job.attempt)


def derive_pool(client: Any, max_connections: int, socket_timeout: Optional[float]) -> redis.ConnectionPool:
    """A new connection pool with the settings of ``client`` (host, auth, TLS, db, protocol...), raw bytes replies,
    ``socket_timeout`` for the long blocking reads, and no redis-py retries (the worker retries itself)."""
    source = getattr(client, "connection_pool", None)
    if source is None:
        raise TypeError("Once.worker needs a redis.Redis client (one with a connection_pool)")
    kwargs = {k: v for k, v in source.connection_kwargs.items() if k not in _POOL_OWNED}
    kwargs.update(socket_timeout=socket_timeout, decode_responses=False, retry=Retry(NoBackoff(), 0),
                  retry_on_timeout=False)
    kwargs.pop("retry_on_error", None)
    return redis.ConnectionPool(connection_class=source.connection_class, max_connections=max_connections, **kwargs)


class Backoff:
    """Exponential backoff with jitter for reconnecting: base, 2*base, ... up to cap, each drawn in [d/2, d]."""

    def __init__(self, base: float = 0.1, cap: float = 5.0):
        self.base, self.cap, self.failures = base, cap, 0

    def next(self) -> float:
        d = min(self.cap, self.base * (2 ** self.failures))
        self.failures += 1
        return random.uniform(d / 2, d)

    def reset(self) -> None:
        self.failures = 0


@dataclass
class WorkerSummary:
    """What a ``worker()`` run did: jobs whose task returned (acked) and jobs whose task raised (nacked)."""

    processed: int = 0
    failed: int = 0
    lease_lost: int = 0
    late_acks: int = 0          # ACKs the server refused: the job's lease had run out before it was acked
    cancelled: int = 0          # jobs cancelled while they ran (ONCE.CANCEL): neither acked nor nacked


class _Slot:
    """One reserver thread's state, as the stopping thread needs to see it."""

    def __init__(self, index: int):
        self.index = index
        self.client_id: Optional[int] = None     # None: not known (yet, or CLIENT ID is not permitted)
        self.in_reserve = False
        self.thread: threading.Thread            # set by the worker as soon as it makes the slot


class _LeaseKeeper:
    """Extends the lease of every job in hand, each ``every`` seconds, fenced by the job's attempt."""

    def __init__(self, once_factory: Callable[[], Any], lease_ms: int, every: float):
        self._once_factory = once_factory
        self._lease_ms = lease_ms
        self._every = every
        self._cond = threading.Condition()
        self._due: Dict[Tuple[Any, int], Tuple[Job, float]] = {}
        self._lost: set = set()
        self._closed = False
        self.thread = threading.Thread(target=self._run, name="once-lease-keeper", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.thread.join(timeout=5)

    def track(self, job: Job) -> None:
        with self._cond:
            self._due[(job.id, job.attempt)] = (job, time.monotonic() + self._every)
            self._cond.notify_all()

    def untrack(self, job: Job) -> bool:
        """Stops extending ``job``; returns False if its lease was found lost meanwhile."""
        key = (job.id, job.attempt)
        with self._cond:
            self._due.pop(key, None)
            if key in self._lost:
                self._lost.discard(key)
                return False
            return True

    def _run(self) -> None:
        once = None
        while True:
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                due = [job for job, at in self._due.values() if at <= now]
                if not due:
                    timeout = min((at for _, at in self._due.values()), default=now + 3600) - now
                    self._cond.wait(timeout)
                    continue
                for job in due:
                    self._due[(job.id, job.attempt)] = (job, now + self._every)
            for job in due:
                key = (job.id, job.attempt)
                try:
                    once = once or self._once_factory()
                    deadline = once.extend(job, self._lease_ms)
                except Exception as exc:  # noqa: BLE001 - a keeper must not die; the lease just may run out
                    level = logging.WARNING if _transient(exc) else logging.ERROR
                    log.log(level, "could not extend the lease of job %s (attempt %d): %s", job.id, job.attempt, exc)
                    with self._cond:
                        if key in self._due:  # try again soon rather than a whole period later
                            self._due[key] = (job, time.monotonic() + min(self._every, 1.0))
                    continue
                if deadline is None:
                    cancelled = was_cancelled(once, job)
                    if cancelled:
                        mark_cancelled(job)
                    with self._cond:
                        if key in self._due:
                            del self._due[key]
                            if cancelled:
                                continue
                            self._lost.add(key)
                            log.warning("job %s (attempt %d) lost its lease: it ran out or another worker holds "
                                        "it now; it may run twice", job.id, job.attempt)


class Worker:
    """Runs ``execute`` on the jobs of one queue. Usually made by ``Once.worker(...)``; usable directly too::

        w = Worker(once, execute, error_handler, monitor_handler, concurrency=4)
        w.start()        # in a background thread (no signal handlers); or w.run() to block here
        ...
        w.stop(); w.join()

    Options:

    - ``concurrency``: reserver threads, each with its own connection and its own blocking reserve (default 1).
    - ``prefetch``: jobs one reserver takes in one round trip and then runs one after the other (default 1).
      Finished ones are acknowledged together in the next round trip. Raise it (10 or so) for many short jobs:
      a round trip per job is what bounds a worker with fast jobs. Keep 1 for slow jobs: a prefetched job waits
      for the ones before it, and no other worker can take it meanwhile (its lease is kept alive).
    - ``block_ms``: how long one blocking RESERVE waits on the server before it is sent again (default 5000).
      Stopping wakes blocked reserves at once with CLIENT UNBLOCK when the server allows it, else within block_ms.
    - ``lease_ms``: the lease asked for each job (default 30000); ``extend_every_ms``: how often a running job's
      lease is extended by ``lease_ms`` (default lease_ms / 3).
    - ``monitor_interval``: seconds between two monitor_handler calls (default 5.0; the first call is at start).
    - ``decode``: the payload handed to ``execute`` is str (UTF-8, the default), bytes with ``decode=False``, or
      str in the named encoding; a payload that does not decode fails like a task that raised.
    - ``pass_job``: hand ``execute`` the whole Job (id, payload, attempt) instead of the payload: then the task
      can report ``job.progress(data)``, read the outcomes and results of the jobs it waited on with
      ``job.deps()`` (a job pushed with ``after=`` or by ``flow``), and check ``job.cancelled`` (set when the job
      was cancelled while it ran; the worker learns it at the next lease extension, so set ``extend_every_ms`` to
      how soon it must know).
    - ``stop_event``: a ``threading.Event`` that stops the worker when set.
    - ``handle_signals``: on SIGINT/SIGTERM, stop gracefully (default True; only possible in the main thread).
      A second signal while stopping raises KeyboardInterrupt (jobs in hand are then left to their leases).
    - ``max_backoff``: the longest wait between two reconnect attempts, in seconds (default 5.0).
    - ``stop_timeout``: while stopping, how long to keep trying to deliver a final ACK/NACK to an unreachable
      server before leaving the job to its lease (default 10.0 s).

    A task that raises ``once.PermanentError`` is dead-lettered at once (NACK ... DEAD).

    What a task returns is the job's result (``ONCE.ACK ... RESULT``), read by ``Once.result``, ``push(...).result()``
    and ``Once.call``: str is stored as its UTF-8 text, bytes as they are, None as no result (the job is then
    acknowledged with the next RESERVE, in the same round trip), any other value as JSON (``Result.json()`` reads it
    back; a value JSON cannot encode is logged and the job acknowledged without a result). A job with a result is
    acknowledged as soon as its task returns, in a round trip of its own, so a waiting caller has it at once; a
    result the server refuses (larger than its max-payload-bytes) dead-letters the job with the server's error. A job
    cancelled while it ran is neither acknowledged nor nacked, whatever its task did.
    """

    def __init__(
        self,
        once: Any,
        execute: Callable[[Any], Any],
        error_handler: Optional[Callable[[Job, BaseException], Any]] = None,
        monitor_handler: Optional[Callable[[Stats], Any]] = None,
        *,
        concurrency: int = 1,
        prefetch: int = 1,
        block_ms: int = 5000,
        lease_ms: int = 30000,
        extend_every_ms: Optional[int] = None,
        monitor_interval: float = 5.0,
        decode: Union[bool, str] = True,
        pass_job: bool = False,
        stop_event: Optional[threading.Event] = None,
        handle_signals: bool = True,
        max_backoff: float = 5.0,
        stop_timeout: float = 10.0,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 1 <= prefetch <= 10000:
            raise ValueError("prefetch must be between 1 and 10000")
        if block_ms < 0 or lease_ms < 1:
            raise ValueError("block_ms must be >= 0 and lease_ms >= 1")
        if monitor_interval <= 0:
            raise ValueError("monitor_interval must be positive")
        self.once = once
        self.execute = execute
        self.error_handler = error_handler
        self.monitor_handler = monitor_handler
        self.concurrency = concurrency
        self.prefetch = int(prefetch)
        self.block_ms = int(block_ms)
        self.lease_ms = int(lease_ms)
        self.extend_every = (extend_every_ms if extend_every_ms is not None else self.lease_ms / 3) / 1000.0
        self.monitor_interval = monitor_interval
        self.decode = decode
        self.pass_job = pass_job
        self.handle_signals = handle_signals
        self.max_backoff = max_backoff
        self.stop_timeout = stop_timeout
        self.summary = WorkerSummary()
        self._stop = stop_event or threading.Event()
        self._signalled = False
        self._fatal: Optional[BaseException] = None
        self._lock = threading.Lock()
        self._slots: List[_Slot] = []
        self._pool: Optional[redis.ConnectionPool] = None
        self._keeper: _LeaseKeeper               # made by run() before any reserver starts
        self._bg: Optional[threading.Thread] = None
        self._withack: Optional[bool] = None     # does the server's RESERVE take WITHACK (None: not tried yet)
        self._may_client_id = True               # False once CLIENT ID was refused to this user (ACL)

    # --- control --------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop gracefully: jobs in hand finish and are acked, no more are reserved. Any thread may call it."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> "Worker":
        """Runs the worker in a background thread (without signal handlers); ``stop()`` then ``join()``."""
        self.handle_signals = False
        self._bg = threading.Thread(target=self._run_bg, name=f"once-worker-{self.once.queue}", daemon=True)
        self._bg.start()
        return self

    def join(self, timeout: Optional[float] = None) -> bool:
        """Waits for a ``start()``ed worker to end; returns True if it has."""
        if self._bg is None:
            return True
        self._bg.join(timeout)
        return not self._bg.is_alive()

    def _run_bg(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # noqa: BLE001 - kept for the caller, who reads .error
            self._fatal = exc
            log.error("worker ended with an error: %r", exc)

    @property
    def error(self) -> Optional[BaseException]:
        """The error that ended the worker, if one did (a command the server refuses, such as WRONGTYPE)."""
        return self._fatal

    # --- the run --------------------------------------------------------------------------------------------

    def run(self) -> WorkerSummary:
        """Processes jobs until stopped; returns the summary. Raises the error that made it give up, if any."""
        socket_timeout = None if self.block_ms == 0 else self.block_ms / 1000.0 + 10.0
        self._pool = derive_pool(self.once.redis, self.concurrency + 4, socket_timeout)
        shared = redis.Redis(connection_pool=self._pool)
        self._keeper = _LeaseKeeper(lambda: self._once_on(shared), self.lease_ms, self.extend_every)
        self._warn_eviction(shared)
        restore = self._install_signal_handlers()
        self.once._workers.append(self)
        monitor = None
        try:
            self._keeper.start()
            if self.monitor_handler is not None:
                monitor = threading.Thread(target=self._monitor, args=(shared,), name="once-monitor", daemon=True)
                monitor.start()
            for i in range(self.concurrency):
                slot = _Slot(i)
                slot.thread = threading.Thread(target=self._reserver, args=(slot,), name=f"once-reserver-{i}",
                                               daemon=True)
                self._slots.append(slot)
                slot.thread.start()
            while not self._stop.is_set():
                if self._signalled:
                    log.info("signal received: finishing the jobs in hand, then stopping")
                    self._stop.set()
                    break
                if not any(s.thread.is_alive() for s in self._slots):
                    break
                self._stop.wait(0.1)
            self._stop.set()
            while any(s.thread.is_alive() for s in self._slots):
                self._unblock(shared)
                for s in self._slots:
                    s.thread.join(0.05)
        finally:
            self._stop.set()
            restore()
            if monitor is not None:
                monitor.join(timeout=max(5.0, self.monitor_interval))
            self._keeper.close()
            if self in self.once._workers:
                self.once._workers.remove(self)
            self._pool.disconnect()
        if self._fatal is not None:
            raise self._fatal
        return self.summary

    def _install_signal_handlers(self) -> Callable[[], None]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_signal(signum: int, frame: Any) -> None:
            # Only a flag: the main thread turns it into a stop (taking locks inside a handler can deadlock).
            if self._signalled or self._stop.is_set():
                raise KeyboardInterrupt(f"signal {signum} while stopping")
            self._signalled = True

        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _once_on(self, client: Any) -> Once:
        return Once(client, self.once.queues, decode=False)

    def _unblock(self, shared: Any) -> None:
        """Wakes reservers blocked on the server, so a stop does not wait out block_ms."""
        for s in self._slots:
            if s.in_reserve and s.client_id is not None and s.thread.is_alive():
                try:
                    shared.execute_command("CLIENT", "UNBLOCK", s.client_id, "TIMEOUT")
                except redis.RedisError as exc:
                    log.debug("CLIENT UNBLOCK %s: %s", s.client_id, exc)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            first = self._fatal is None
            if first:
                self._fatal = exc
        if first:
            log.error("once worker stopping: %s", exc)
        self._stop.set()

    def _warn_eviction(self, client: Any) -> None:
        try:
            line = server_eviction_warning(client)
        except redis.RedisError as exc:         # the server is not up yet: the reservers will wait for it
            log.debug("INFO once: %s", exc)
            return
        if line:
            log.warning("once: %s", line)

    def _client_id(self, client: Any) -> Optional[int]:
        """This connection's id, for CLIENT UNBLOCK at stop; None when the user may not run CLIENT ID."""
        if not self._may_client_id:
            return None
        try:
            return int(client.client_id())
        except redis.ResponseError as exc:
            if not is_no_permission(exc):
                raise
            self._may_client_id = False
            log.debug("CLIENT ID refused (%s): a stop waits out block_ms instead of unblocking", exc)
            return None

    def _ack_and_fetch(self, once: Any, pending: List[Job], resent: bool) -> List[Job]:
        """RESERVE with the finished jobs' fenced ACKs; refused ACKs (their leases ran out) are logged."""
        if not pending or self._withack is False:
            return once.reserve(self.prefetch, block_ms=self.block_ms, lease_ms=self.lease_ms, ack=pending or None)
        try:
            acked, jobs = once.ack_reserve(pending, self.prefetch, block_ms=self.block_ms, lease_ms=self.lease_ms)
        except redis.ResponseError as exc:
            if "WITHACK" not in str(exc).upper():
                raise
            # a module without WITHACK refuses the whole command before acting: send it again without
            self._withack = False
            log.debug("RESERVE ... WITHACK refused (%s): late ACKs go unnoticed on this server", exc)
            return once.reserve(self.prefetch, block_ms=self.block_ms, lease_ms=self.lease_ms, ack=pending)
        self._withack = True
        if acked < len(pending):
            self._late_ack(once, pending, len(pending) - acked, resent)
        return jobs

    def _late_ack(self, once: Any, jobs: List[Job], refused: int, resent: bool) -> None:
        """``refused`` of the ACKs of ``jobs`` (sent together) were refused; which ones the reply does not say, but
        a job found cancelled (it was cancelled after its task returned) was one."""
        if not resent:
            cancelled = [j for j in jobs if was_cancelled(once, j)]
            for j in cancelled:
                mark_cancelled(j)
            with self._lock:
                self.summary.cancelled += len(cancelled)
                self.summary.processed -= len(cancelled)
            jobs = [j for j in jobs if j not in cancelled]
            refused -= len(cancelled)
            if refused <= 0:
                return
        names = ", ".join(f"{to_str(j.id)} (attempt {j.attempt})" for j in jobs)
        if resent:
            # the round trip that carried these ACKs before lost its reply: that one may have acked the jobs
            log.info("job %s: its ACK, sent again after a lost reply, was refused (the first one may have taken it, "
                     "or its lease ran out)", names)
            return
        with self._lock:
            self.summary.late_acks += refused
        if len(jobs) == 1:
            log.warning("job %s finished but its ACK was refused: its lease had run out, so the job went back to "
                        "the queue or to another worker and may run again", names)
        else:
            log.warning("%d of %d jobs acknowledged together (%s) finished but their ACK was refused: their lease "
                        "had run out, so they went back to the queue or to another worker and may run again",
                        refused, len(jobs), names)

    def _adopt(self, client: Any, exc: WrongTypeError) -> None:
        """A list where a queue should be: a list producer started first. ONCE.ADOPT makes it the queue; any other
        type, or a user who may not run ONCE.ADOPT, raises ``exc`` (or the error naming the key of another type).
        Several reservers may race here: the first adopts, the others find a queue (0) and go on."""
        from .client import Once

        for queue in self.once.queues:
            try:
                n = Once(client, queue).adopt()
            except WrongTypeError as other:
                raise other from None
            except redis.ResponseError as refused:
                if not is_no_permission(refused) and "unknown command" not in str(refused).lower():
                    raise
                log.debug("ONCE.ADOPT %s: %s", queue, refused)
                raise exc from None
            if n:
                # a warning, so that it shows without logging set up: the key's type changed under its readers
                log.warning("once: adopted the list %r: its %d item(s) are jobs now, and RPUSH/LPUSH onto it add "
                            "jobs from here on", queue, n)
    # --- one reserver thread --------------------------------------------------------------------------------

    def _reserver(self, slot: _Slot) -> None:
        client = None
        # the jobs that succeeded since the last round trip: acked by the next RESERVE (ack-and-fetch) or a final
        # ACK, each fenced by its attempt, so a job whose lease ran out and that another worker now holds is not
        # completed here
        pending_ack: List[Job] = []
        ack_resent = False          # pending_ack went out in a round trip whose reply was lost
        backoff = Backoff(cap=self.max_backoff)
        give_up_at = None
        try:
            while True:
                stopping = self._stop.is_set()
                if stopping and not pending_ack:
                    return
                try:
                    if client is None:
                        client = redis.Redis(connection_pool=self._pool, single_connection_client=True)
                    once = self._once_on(client)
                    if stopping:
                        acked = once.ack(*pending_ack)
                        if acked < len(pending_ack):
                            self._late_ack(once, pending_ack, len(pending_ack) - acked, ack_resent)
                        return
                    if slot.client_id is None:
                        slot.client_id = self._client_id(client)
                    slot.in_reserve = True
                    try:
                        if self._stop.is_set():
                            continue  # a stop came in meanwhile: ack with a plain ACK instead
                        jobs = self._ack_and_fetch(once, pending_ack, ack_resent)
                    finally:
                        slot.in_reserve = False
                    pending_ack, ack_resent = [], False
                    backoff.reset()
                    give_up_at = None
                except WrongTypeError as exc:
                    try:
                        self._adopt(client, exc)
                    except Exception as final:  # noqa: BLE001 - the worker ends with it, logged once
                        if not _transient(final):   # a transient one comes back at the reserve, with backoff
                            self._fail(final)
                            return
                    ack_resent = bool(pending_ack)
                    continue
                except Exception as exc:  # noqa: BLE001
                    if not _transient(exc):
                        self._fail(exc)
                        return
                    slot.client_id = None  # a new connection has a new id
                    ack_resent = bool(pending_ack)
                    if self._stop.is_set():
                        give_up_at = give_up_at or time.monotonic() + self.stop_timeout
                        if time.monotonic() > give_up_at:
                            log.warning("stopping without acking job %s: %s (redelivered after its lease)",
                                        ", ".join(to_str(j.id) for j in pending_ack), exc)
                            return
                    delay = backoff.next()
                    log.warning("once: %s; retrying in %.2fs", exc, delay)
                    if self._stop.is_set():
                        time.sleep(delay)
                    else:
                        self._stop.wait(delay)
                    continue
                for job in jobs:
                    self._keeper.track(job)       # from now: a prefetched job keeps its lease while it waits
                for job in jobs:
                    if self._process(once, job):
                        pending_ack.append(job)
        finally:
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001
                    pass

    def _process(self, once: Any, job: Job) -> bool:
        """Runs one job (tracked by the lease keeper); True if it succeeded without a result (to be acked with the
        next RESERVE), False if it was acked with its result, failed (nacked here) or was cancelled."""
        shown = job
        try:
            data = decode_payload(job.payload, self.decode)
            shown = dataclasses.replace(job, payload=data)
            value = self.execute(shown if self.pass_job else data)
        except BaseException as exc:  # noqa: BLE001 - every failure of a task is the job's failure
            if not isinstance(exc, Exception):  # SystemExit, KeyboardInterrupt raised by the task: stop
                self.stop()
            if job.cancelled:
                self._count_cancelled()
                return False
            self._handle_error(shown, exc)
            self._nack(once, job, exc)
            with self._lock:
                self.summary.failed += 1
            return False
        finally:
            if not self._keeper.untrack(job) and not job.cancelled:
                with self._lock:
                    self.summary.lease_lost += 1
        if job.cancelled:
            self._count_cancelled()
            return False
        try:
            result = encode_value(value)
        except (TypeError, ValueError) as exc:
            log.warning("job %s (attempt %d): its task returned a %s, which is not str, bytes or JSON (%s): "
                        "acknowledged without a result", job.id, job.attempt, type(value).__name__, exc)
            result = None
        with self._lock:
            self.summary.processed += 1
        if result is None:
            return True
        self._ack_result(once, job, result)
        return False

    def _count_cancelled(self) -> None:
        with self._lock:
            self.summary.cancelled += 1

    def _ack_result(self, once: Any, job: Job, result: bytes) -> None:
        """ACK ... ATTEMPT n RESULT data, now; a refused result (too large) dead-letters the job with the server's
        error, a refused ACK is a cancel or a lease that ran out."""
        try:
            acked = self._deliver(lambda: once.ack(job, result=result), f"the ACK of job {to_str(job.id)}")
        except redis.ResponseError as exc:
            log.error("job %s (attempt %d): the server refused its result (%s): the job is dead-lettered",
                      job.id, job.attempt, exc)
            with self._lock:
                self.summary.processed -= 1
                self.summary.failed += 1
            self._nack(once, job, RuntimeError(f"result refused: {exc}"), dead=True)
            return
        if acked is not None and not acked:
            self._late_ack(once, [job], 1, False)

    def _deliver(self, send: Callable[[], Any], what: str) -> Any:
        """``send()``, again on connection errors (a fenced command makes a resend harmless) until the lease would
        have run out; None when it could not be delivered (the job is left to its lease). An error reply is
        raised."""
        backoff = Backoff(cap=self.max_backoff)
        give_up_at = time.monotonic() + max(self.stop_timeout, self.lease_ms / 1000.0)
        while True:
            try:
                return send()
            except redis.ResponseError as err:
                if _transient(err):
                    if time.monotonic() > give_up_at:
                        log.error("could not send %s: %s; the job's lease will expire instead", what, err)
                        return None
                else:
                    raise
            except Exception as err:  # noqa: BLE001
                if not _transient(err) or time.monotonic() > give_up_at:
                    log.error("could not send %s: %s; the job's lease will expire instead", what, err)
                    return None
                log.warning("once: %s; %s again", err, what)
            time.sleep(backoff.next())

    def _handle_error(self, job: Job, exc: BaseException) -> None:
        if self.error_handler is None:
            log.warning("job %s (attempt %d) failed: %s", job.id, job.attempt, error_text(exc))
            return
        try:
            self.error_handler(job, exc)
        except Exception:
            log.exception("error_handler raised on job %s", job.id)

    def _nack(self, once: Any, job: Job, exc: BaseException, dead: bool = False) -> None:
        """NACK with ATTEMPT and the error text; resent on connection errors (the fence makes a resend harmless)."""
        try:
            self._deliver(lambda: once.nack(job, error=error_text(exc), dead=dead or isinstance(exc, PermanentError)),
                          f"the NACK of job {to_str(job.id)} (attempt {job.attempt})")
        except redis.ResponseError as err:
            log.error("could not nack job %s (attempt %d): %s; its lease will expire instead", job.id, job.attempt, err)

    # --- the monitor ----------------------------------------------------------------------------------------

    def _monitor(self, shared: Any) -> None:
        assert self.monitor_handler is not None, "run() starts the monitor only with a monitor_handler"
        once = self._once_on(shared)
        while True:
            try:
                stats = once.stats()
            except WrongTypeError as exc:
                # the reservers adopt a list, or stop the worker on another type: the monitor leaves it to them
                log.debug("ONCE.STATS: %s", exc)
            except Exception as exc:  # noqa: BLE001
                log.warning("once: could not read ONCE.STATS: %s", exc)
            else:
                try:
                    self.monitor_handler(stats)
                except Exception:
                    log.exception("monitor_handler raised")
            if self._stop.wait(self.monitor_interval):
                return
