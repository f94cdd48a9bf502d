"""The asyncio worker: ``concurrency`` handlers at once in one event loop, fetched in batches, acknowledged in batches.

One loop reserves on a connection of its own: ``ONCE.RESERVE q COUNT free BLOCK b LEASE l``, where ``free`` is how
many handlers may start now (at most ``prefetch``), so one round trip fetches a batch, and waits on the server (no
polling) when there is none. A job is started as soon as it arrives, so a fetched job never waits for a handler.
Jobs that succeeded meanwhile are acknowledged in the same round trip, each fenced by its attempt: while the queue
is busy (the last RESERVE came back full) inside it, ``... ACKS n id attempt ... WITHACK`` without BLOCK, whose
reply says how many held; else as ``ONCE.ACK q ACKS n ...`` written just ahead of the blocking RESERVE. A job that
succeeds while that RESERVE waits is acknowledged at once on the worker's other connections, which also carry the
lease extensions (``ONCE.EXTEND q id l ATTEMPT n`` every ``extend_every_ms`` while a handler runs), the NACKs
(``ONCE.NACK q id ATTEMPT n ERROR text``) and the monitor's ONCE.STATS.

``close()`` stops reserving (a blocked RESERVE is woken with CLIENT UNBLOCK), lets the jobs in hand finish and be
acknowledged, and closes the worker's connections. Cancelling ``run()`` instead cancels the handlers in hand and
nacks their jobs (retried at once, a try spent, as when a lease runs out). A lost connection or a server restart is
retried with backoff; what a lost reply had reserved comes back after its lease.
"""
import asyncio
import dataclasses
import inspect
import logging
import signal
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..errors import is_no_permission, is_wrong_type
from ..types import Job, PermanentError, Stats, decode_payload, error_text, parse_jobs
from ..worker import _POOL_OWNED, Backoff, WorkerSummary, _transient
from . import blocking
from .client import Once, wrong_type

log = logging.getLogger("once.aio.worker")


@dataclasses.dataclass
class _Done:
    """A job whose handler returned, to be acknowledged; ``tried`` once an ACK of it may have reached the server
    without its reply coming back (a refusal then most likely means that first ACK took it)."""

    job: Job
    tried: bool = False


@dataclasses.dataclass
class _InHand:
    job: Job
    extend_at: float
    task: Optional["asyncio.Task[None]"] = None


def _pairs(dones: List[_Done]) -> List[Any]:
    return [x for d in dones for x in (d.job.id, d.job.attempt)]


def _derive_pool(client: Any) -> redis.asyncio.ConnectionPool:
    """A pool with the settings of the ``redis.asyncio.Redis`` ``client`` (host, auth, TLS, db, protocol...), raw
    bytes replies and no redis-py retries: the worker retries itself, and only what is safe to send twice."""
    source = getattr(client, "connection_pool", None)
    if source is None or not hasattr(source, "connection_kwargs"):
        raise TypeError("once.aio.Worker needs a redis.asyncio.Redis client (one with a connection_pool)")
    kwargs = {k: v for k, v in source.connection_kwargs.items() if k not in _POOL_OWNED}
    kwargs.update(decode_responses=False, retry=Retry(NoBackoff(), 0), retry_on_timeout=False)
    kwargs.pop("retry_on_error", None)
    return redis.asyncio.ConnectionPool(connection_class=source.connection_class, **kwargs)


class Worker:
    """Runs ``handler`` on the jobs of one queue (a ``once.aio.Once``)::

        w = Worker(once, handle, concurrency=20)
        task = asyncio.create_task(w.run())
        ...
        await w.close()          # graceful: the jobs in hand finish and are acknowledged

    ``handler(data)`` is a coroutine function (a plain function works too, run in the event loop); it gets the
    payload as str (``decode=False``: bytes; an encoding name: str in it), or the Job with ``pass_job=True``. A job
    whose handler returns is acknowledged (what it returns is not kept as the job's result here, as the sync
    ``once.Worker`` keeps it); one that raises is handed to ``error_handler(job, exc)`` (plain or async) and
    nacked with the exception's text, so retries, backoff and the dead set apply; ``PermanentError`` sends it to
    the dead set at once. ``monitor_handler(stats)`` is called every ``monitor_interval`` seconds.

    Options: ``concurrency`` handlers at once (default 1); ``prefetch`` the most jobs one RESERVE fetches (default
    ``concurrency``; it never exceeds the handlers free at that moment, so no fetched job waits, and slow jobs are
    as safe as with 1; 1 fetches one job per round trip); ``block_ms`` (5000) how long one RESERVE waits on the
    server; ``lease_ms`` (30000) the lease asked for each job, extended every ``extend_every_ms`` (lease / 3) while
    its handler runs; ``max_backoff`` (5.0 s) the longest wait between reconnect attempts; ``stop_timeout`` (10.0 s)
    how long a closing worker keeps trying to deliver its last ACKs to an unreachable server.
    """

    def __init__(
        self,
        once: Once,
        handler: Callable[[Any], Any],
        error_handler: Optional[Callable[[Job, BaseException], Any]] = None,
        monitor_handler: Optional[Callable[[Stats], Any]] = None,
        *,
        concurrency: int = 1,
        prefetch: Optional[int] = None,
        block_ms: int = 5000,
        lease_ms: int = 30000,
        extend_every_ms: Optional[int] = None,
        monitor_interval: float = 5.0,
        decode: Union[bool, str] = True,
        pass_job: bool = False,
        max_backoff: float = 5.0,
        stop_timeout: float = 10.0,
    ):
        if len(once.queues) > 1:
            raise ValueError("once.aio.Worker serves one queue: run one worker per queue, or once.Worker for several")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if prefetch is not None and prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        if block_ms < 0 or lease_ms < 1:
            raise ValueError("block_ms must be >= 0 and lease_ms >= 1")
        if monitor_interval <= 0:
            raise ValueError("monitor_interval must be positive")
        self.once = once
        self.handler = handler
        self.error_handler = error_handler
        self.monitor_handler = monitor_handler
        self.concurrency = concurrency
        self.prefetch = min(prefetch or concurrency, concurrency, 10000)
        self.block_ms = int(block_ms)
        self.lease_ms = int(lease_ms)
        self.extend_every = (extend_every_ms if extend_every_ms is not None else lease_ms / 3) / 1000.0
        self.monitor_interval = monitor_interval
        self.decode = decode
        self.pass_job = pass_job
        self.max_backoff = max_backoff
        self.stop_timeout = stop_timeout
        self.summary = WorkerSummary()
        self._in_hand: Dict[Tuple[Any, int], _InHand] = {}
        self._acks: List[_Done] = []
        self._ack_task: Optional[asyncio.Task[bool]] = None
        self._cancelled: List[Job] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._blocked = False           # the reserving connection waits on the server
        self._busy = False              # the last RESERVE came back full: ACKs go inside the next one
        self._client_id: Optional[int] = None
        self._may_client_id = True
        self._fatal: Optional[BaseException] = None
        self._running = False
        self._ended = asyncio.Event()
        self._pool: Optional[redis.asyncio.ConnectionPool] = None
        self._cmd: Any = None           # a Once on the worker's command connections
        self._conn: Any = None          # the reserving connection

    # --- control --------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stops reserving, lets the jobs in hand finish and be acknowledged; returns when ``run()`` has ended."""
        self._closing = True
        self._wake.set()
        if not self._running:
            return
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.stop_timeout
        # CLIENT UNBLOCK: the blocked RESERVE replies now rather than after block_ms (a user without the right to
        # CLIENT UNBLOCK waits it out); sent again until it lands, as the RESERVE may not have reached the server
        while self._blocked and self._client_id is not None and loop.time() < give_up:
            try:
                await self._cmd.redis.execute_command("CLIENT", "UNBLOCK", self._client_id, "TIMEOUT")
            except redis.RedisError as exc:
                log.debug("CLIENT UNBLOCK %s: %s", self._client_id, exc)
            try:
                await asyncio.wait_for(self._ended.wait(), 0.05)
            except asyncio.TimeoutError:
                pass
        await self._ended.wait()

    @property
    def active(self) -> int:
        """Jobs whose handler runs now."""
        return len(self._in_hand)

    # --- the run --------------------------------------------------------------------------------------------

    async def run(self, *, handle_signals: bool = False) -> WorkerSummary:
        """Processes jobs until ``close()`` or a cancel; returns the summary, or raises the error that made it give
        up (a queue key of another type raises WrongTypeError). ``handle_signals``: SIGINT/SIGTERM close the worker
        (a second one cancels it); only in the main thread."""
        if self._running or self._ended.is_set():
            raise RuntimeError("a Worker runs once")
        self._running = True
        self._pool = _derive_pool(self.once.redis)
        self._cmd = Once(redis.asyncio.Redis(connection_pool=self._pool), self.once.queue)
        self.once._workers.append(self)
        restore = self._install_signal_handlers() if handle_signals else (lambda: None)
        helpers = [asyncio.create_task(self._keep_leases())]
        if self.monitor_handler is not None:
            helpers.append(asyncio.create_task(self._monitor()))
        try:
            try:
                await self._reserve_loop()
            except asyncio.CancelledError:
                self._closing = True
                for entry in list(self._in_hand.values()):
                    if entry.task is not None:
                        entry.task.cancel()
                await self._finish()
                raise
            await self._finish()
        finally:
            restore()
            for t in helpers:
                t.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if self in self.once._workers:
                self.once._workers.remove(self)
            if self._conn is not None:
                await self._conn.disconnect()
            await self._pool.disconnect()
            self._ended.set()
        if self._fatal is not None:
            raise self._fatal
        return self.summary

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal(signum: int) -> None:
            if self._closing and task is not None:
                log.info("signal %d while closing: cancelling the jobs in hand", signum)
                task.cancel()
                return
            log.info("signal %d: finishing the jobs in hand, then stopping", signum)
            loop.create_task(self.close())

        sigs = (signal.SIGINT, signal.SIGTERM)
        for sig in sigs:
            loop.add_signal_handler(sig, on_signal, sig)

        def restore() -> None:
            for sig in sigs:
                loop.remove_signal_handler(sig)

        return restore

    async def _finish(self) -> None:
        """After the loop: waits for the handlers in hand, nacks the cancelled ones, delivers the last ACKs."""
        tasks = [e.task for e in self._in_hand.values() if e.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        for job in self._cancelled:
            await self._nack(job, "worker cancelled while the job ran", delay_ms=0)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.stop_timeout
        backoff = Backoff(cap=self.max_backoff)
        while True:
            if self._ack_task is not None:
                await asyncio.gather(self._ack_task, return_exceptions=True)
            if not self._acks:
                return
            if loop.time() > give_up:
                log.warning("closing without acknowledging %d job(s): they will run again after their lease",
                            len(self._acks))
                return
            if not await self._ack_now():
                await asyncio.sleep(backoff.next())

    # --- reserving ------------------------------------------------------------------------------------------

    async def _reserve_loop(self) -> None:
        backoff = Backoff(cap=self.max_backoff)
        while not self._closing:
            free = self.concurrency - len(self._in_hand)
            if free <= 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                jobs = await self._round(min(self.prefetch, free))
                backoff.reset()
            except Exception as exc:  # noqa: BLE001 - sorted just below: transient ones back off, the rest stop the worker
                if not _transient(exc):
                    self._fatal = exc
                    log.error("once worker stopping: %s", exc)
                    return
                delay = backoff.next()
                log.warning("once: %s; retrying in %.2fs", exc, delay)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)    # a close() ends the wait
                except asyncio.TimeoutError:
                    pass
                continue
            for job in jobs:
                self._start(job)

    async def _reserving_connection(self) -> Any:
        """The worker's own connection for RESERVE, connected, its CLIENT ID known (for CLIENT UNBLOCK)."""
        if self._conn is None:
            assert self._pool is not None       # made by run()
            self._conn = self._pool.make_connection()
        if not self._conn.is_connected:
            await self._conn.connect()
            self._client_id = None
            if self._may_client_id:
                reply = (await blocking.send(self._conn, [["CLIENT", "ID"]], None))[0]
                if isinstance(reply, Exception):
                    if not is_no_permission(reply):
                        raise reply
                    self._may_client_id = False
                    log.debug("CLIENT ID refused (%s): close() waits for a blocked RESERVE", reply)
                else:
                    self._client_id = int(reply)
        return self._conn

    async def _round(self, want: int) -> List[Job]:
        """One round trip on the reserving connection: the pending ACKs, and a RESERVE of up to ``want`` jobs."""
        conn = await self._reserving_connection()
        if self._closing:
            return []
        acks, self._acks = self._acks, []
        inside = acks if self._busy else []
        ahead = [] if self._busy else acks
        queue = self.once.queue
        reserve: List[Any] = ["ONCE.RESERVE", queue, "COUNT", want, "LEASE", self.lease_ms]
        if inside:
            # not blocking, so that the reply saying whether the ACKs held comes at once
            reserve += ["ACKS", len(inside), *_pairs(inside), "WITHACK"]
        else:
            reserve += ["BLOCK", self.block_ms]
        commands = ([["ONCE.ACK", queue, "ACKS", len(ahead), *_pairs(ahead)]] if ahead else []) + [reserve]
        self._blocked = not inside
        try:
            replies = await blocking.send(conn, commands, None if inside else self.block_ms)
        except BaseException:
            for d in acks:
                d.tried = True
            self._acks.extend(acks)
            raise
        finally:
            self._blocked = False
        if ahead:
            self._settled(ahead, replies[0])
        reply = replies[-1]
        if isinstance(reply, Exception):
            if is_wrong_type(reply):
                raise await wrong_type(self._cmd.redis, queue)
            raise reply
        if inside:
            count, reply = reply
            self._settled(inside, count)
        jobs = parse_jobs(reply, queue, False)
        self._busy = len(jobs) == want
        return jobs

    # --- acknowledging --------------------------------------------------------------------------------------

    def _settled(self, dones: List[_Done], reply: Any) -> None:
        """The outcome of a fenced ACK of ``dones``: ``reply`` is how many held, or the error it got."""
        if isinstance(reply, Exception):
            log.error("could not acknowledge %d job(s): %s; they will run again after their lease", len(dones), reply)
            return
        refused = len(dones) - int(reply)
        if refused <= 0:
            return
        if any(d.tried for d in dones):
            # a round trip that carried these ACKs before lost its reply: that one may have taken them
            log.info("%d of %d ACKs, sent again after a lost reply, were refused (the first send may have taken "
                     "them, or their leases ran out)", refused, len(dones))
            return
        self.summary.late_acks += refused
        log.warning("%d of %d finished jobs had their ACK refused: their lease had run out, so they went back to the "
                    "queue or to another worker and may run again", refused, len(dones))

    def _ack_soon(self) -> None:
        """The reserving connection waits on the server: ACKs go out on another one, those of the jobs that finish
        in the same moment together."""
        if self._ack_task is None or self._ack_task.done():
            self._ack_task = asyncio.get_running_loop().create_task(self._ack_now(yield_first=True))

    async def _ack_now(self, yield_first: bool = False) -> bool:
        """ACKs of every finished job in one command on the command connections; False when it failed (the jobs
        wait for the next round)."""
        if yield_first:
            await asyncio.sleep(0)
        acks, self._acks = self._acks, []
        if not acks:
            return True
        try:
            count = await self._cmd.ack(*[d.job for d in acks])
        except redis.RedisError as exc:
            for d in acks:
                d.tried = True
            self._acks.extend(acks)
            log.warning("once: could not acknowledge %d job(s) now: %s; they go with the next round", len(acks), exc)
            return False
        self._settled(acks, count)
        return True

    # --- jobs in hand ---------------------------------------------------------------------------------------

    def _start(self, job: Job) -> None:
        entry = _InHand(job, asyncio.get_running_loop().time() + self.extend_every)
        self._in_hand[(job.id, job.attempt)] = entry
        entry.task = asyncio.get_running_loop().create_task(self._process(job))

    async def _process(self, job: Job) -> None:
        shown = job
        try:
            data = decode_payload(job.payload, self.decode)
            shown = dataclasses.replace(job, payload=data)
            result = self.handler(shown if self.pass_job else data)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            self._cancelled.append(job)
            raise
        except Exception as exc:  # noqa: BLE001 - any error of the user's handler fails that job, never the worker
            await self._handle_error(shown, exc)
            await self._nack(job, error_text(exc), dead=isinstance(exc, PermanentError))
            self.summary.failed += 1
        else:
            self.summary.processed += 1
            self._acks.append(_Done(job))
            if self._blocked or self._closing:
                self._ack_soon()
        finally:
            self._in_hand.pop((job.id, job.attempt), None)
            self._wake.set()

    async def _handle_error(self, job: Job, exc: BaseException) -> None:
        if self.error_handler is None:
            log.warning("job %s (attempt %d) failed: %s", job.id, job.attempt, error_text(exc))
            return
        try:
            result = self.error_handler(job, exc)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("error_handler raised on job %s", job.id)

    async def _nack(self, job: Job, error: str, *, dead: bool = False, delay_ms: Optional[int] = None) -> None:
        """NACK with ATTEMPT and the error text; sent again on connection errors (the fence makes that harmless)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + max(self.stop_timeout, self.lease_ms / 1000.0)
        backoff = Backoff(cap=self.max_backoff)
        while True:
            try:
                if not await self._cmd.nack(job, error=error, dead=dead, delay_ms=delay_ms):
                    self.summary.lease_lost += 1
                    log.warning("job %s (attempt %d): its NACK was refused, its lease had run out", job.id,
                                job.attempt)
                return
            except redis.RedisError as exc:
                if not _transient(exc) or loop.time() > give_up:
                    log.error("could not nack job %s (attempt %d): %s; its lease will expire instead", job.id,
                              job.attempt, exc)
                    return
                delay = backoff.next()
                log.warning("once: %s; nack of job %s again in %.2fs", exc, job.id, delay)
                await asyncio.sleep(delay)

    async def _keep_leases(self) -> None:
        """Extends the lease of every job in hand every ``extend_every`` seconds, fenced by its attempt."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            due = [e for e in self._in_hand.values() if e.extend_at <= now]
            for e in due:
                e.extend_at = now + self.extend_every
            if due:
                await asyncio.gather(*(self._extend(e) for e in due))
            soonest = min((e.extend_at for e in self._in_hand.values()), default=now + self.extend_every)
            await asyncio.sleep(max(0.005, min(soonest, now + self.extend_every) - loop.time()))

    async def _extend(self, entry: _InHand) -> None:
        job = entry.job
        try:
            deadline = await self._cmd.extend(job, self.lease_ms)
        except redis.RedisError as exc:       # tried again soon; the lease itself outlasts a period
            log.warning("could not extend the lease of job %s (attempt %d): %s", job.id, job.attempt, exc)
            entry.extend_at = min(entry.extend_at, asyncio.get_running_loop().time() + 1.0)
            return
        if deadline is None and (job.id, job.attempt) in self._in_hand:
            entry.extend_at = float("inf")     # lost for good: stop extending it
            self.summary.lease_lost += 1
            log.warning("job %s (attempt %d) lost its lease: it ran out or another worker holds it now; it may "
                        "run twice", job.id, job.attempt)

    async def _monitor(self) -> None:
        while True:
            try:
                stats = await self._cmd.stats()
            except redis.RedisError as exc:
                log.warning("once: could not read ONCE.STATS: %s", exc)
            else:
                try:
                    result = self.monitor_handler(stats)  # type: ignore[misc]
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("monitor_handler raised")
            await asyncio.sleep(self.monitor_interval)
