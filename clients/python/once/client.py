"""``Once``: one queue of the Once Redis module, every ONCE.* command as a method with a typed result."""
import contextlib
import dataclasses
import datetime
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import redis

from . import blocking
from .errors import WrongTypeError, is_wrong_type, naming_wrong_type, wrong_type_error
from .types import (
    GroupInfo,
    Job,
    JobControl,
    JobId,
    JobInfo,
    Payload,
    Result,
    Schedule,
    Settings,
    Stats,
    encode_value,
    error_text,
    parse_group,
    parse_groups,
    parse_job_info,
    parse_jobs,
    parse_list,
    parse_result,
    parse_schedules,
    parse_settings,
    parse_stats,
    to_id,
    to_int,
    to_str,
)

if TYPE_CHECKING:  # the worker imports this module: Once.worker() imports the worker when it is called
    from .worker import WorkerSummary

JobRef = Union[Job, JobId]
AckRef = Union[JobRef, Sequence[Job]]       # what ack-and-fetch acknowledges: one job, or a batch of Jobs
Millis = Union[int, float, datetime.timedelta]
Seconds = Union[int, float, datetime.timedelta]

BULK_MAX = 10_000        # payloads per ONCE.BULK call (the module's limit); push_many sends more in several calls


def _ms(value: Millis) -> int:
    """A duration in ms: an int, or a timedelta."""
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)


def _block_ms(timeout: Optional[Seconds]) -> int:
    """A wait in seconds (None: forever) as a BLOCK / TIMEOUT argument, where 0 means forever: a wait shorter than
    a millisecond is 1 ms, never 0."""
    if timeout is None:
        return 0
    seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
    if seconds <= 0:
        raise ValueError("a timeout must be positive (None waits forever)")
    return max(1, round(seconds * 1000))


def _unix_ms(value: Union[int, float, datetime.datetime]) -> int:
    """A point in time as unix ms: an int, or a datetime (naive datetimes are local time, as datetime.timestamp())."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def _payload(value: Payload) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"payload must be str or bytes, not {type(value).__name__}")


def _job_id(job: JobRef) -> JobId:
    return job.id if isinstance(job, Job) else job


def _job_options(delay_ms: Optional[Millis], at: Optional[Union[int, datetime.datetime]], retries: Optional[int],
                 backoff_ms: Optional[Millis], lease_ms: Optional[Millis], priority: Optional[int],
                 group: Optional[Union[str, bytes]]) -> List[Any]:
    """PUSH's (and BULK's) options but ID, as command arguments."""
    if delay_ms is not None and at is not None:
        raise ValueError("give delay_ms or at, not both")
    args: List[Any] = []
    if delay_ms is not None:
        args += ["DELAY", _ms(delay_ms)]
    if at is not None:
        args += ["AT", _unix_ms(at)]
    if retries is not None:
        args += ["RETRIES", int(retries)]
    if backoff_ms is not None:
        args += ["BACKOFF", _ms(backoff_ms)]
    if lease_ms is not None:
        args += ["LEASE", _ms(lease_ms)]
    if priority is not None:
        args += ["PRIORITY", int(priority)]
    if group is not None:
        args += ["GROUP", group]
    return args


def _finish_options(keep: Optional[Millis], ttl: Optional[Millis], ttl_drop: bool) -> List[Any]:
    """PUSH's (and CALL's) KEEP and TTL options, which BULK does not take."""
    args: List[Any] = []
    if keep is not None:
        args += ["KEEP", _ms(keep)]
    if ttl is not None:
        args += ["TTL", _ms(ttl)] + (["DROP"] if ttl_drop else [])
    elif ttl_drop:
        raise ValueError("ttl_drop goes with ttl")
    return args


class Pushed(str):
    """What ``Once.push`` returns: the job's id (a str, equal to it, usable wherever the id is), which also knows
    its queue and can wait for the job's outcome. Pickled or copied, it is a plain str."""

    once: "Once"
    queue: str

    def __new__(cls, job_id: str, once: "Once", queue: str) -> "Pushed":
        self = super().__new__(cls, job_id)
        self.once, self.queue = once, queue
        return self

    def __reduce__(self) -> Any:
        return (str, (str(self),))

    @property
    def id(self) -> str:
        return str(self)

    def result(self, timeout: Optional[Seconds] = None, *,
               decode: Optional[Union[bool, str]] = None) -> Optional[Result]:
        """Waits for the job to finish (ONCE.RESULT ... BLOCK) and returns its ``Result`` (completed, dead or
        cancelled: see ``Result.ok``, ``text``, ``json()``, ``error``). ``timeout`` in seconds (a timedelta too;
        None waits as long as it takes); ``TimeoutError`` when the job is still unfinished then. None when the
        queue does not hold the job: it finished before the wait began and was not kept (push with ``keep=``)."""
        outcome = self.once.result(self, wait=timeout if timeout is not None else 0, decode=decode)
        if outcome is not None and not outcome.done:
            raise TimeoutError(f"job {str(self)!r} still {outcome.state} after {timeout}s")
        return outcome

    def inspect(self, *, decode: Optional[Union[bool, str]] = None) -> Optional[JobInfo]:
        """ONCE.INSPECT of this job."""
        return self.once.inspect(self, decode=decode)

    def cancel(self) -> bool:
        """ONCE.CANCEL of this job; True if it was cancelled."""
        return self.once.cancel(self) > 0


def _fenced_acks(jobs: Sequence[Job]) -> List[Any]:
    """ACK's arguments that fence each job by its own attempt: ``id ATTEMPT n`` for one, ``ACKS n id attempt ...``."""
    if len(jobs) == 1:
        return [jobs[0].id, "ATTEMPT", jobs[0].attempt]
    args: List[Any] = ["ACKS", len(jobs)]
    for j in jobs:
        args += [j.id, j.attempt]
    return args


def _by_queue(jobs: Iterable[Job], default: str) -> Dict[str, List[Job]]:
    """Jobs grouped by the queue they came from (in first-seen order)."""
    out: Dict[str, List[Job]] = {}
    for j in jobs:
        out.setdefault(j.queue or default, []).append(j)
    return out


def group_args(queue: str, name: Union[str, bytes], concurrency: Optional[int], rate: Optional[Tuple[int, Millis]],
               reset: bool) -> List[Any]:
    """The ONCE.GROUP command for these options (RESET first, so the new limits apply after it)."""
    args: List[Any] = ["ONCE.GROUP", queue, name]
    if reset:
        args.append("RESET")
    if concurrency is not None:
        args += ["CONCURRENCY", int(concurrency)]
    if rate is not None:
        n, per = rate
        args += ["RATE", int(n), "PER", _ms(per)]
    return args


class DurabilityError(Exception):
    """A durable push (``wait_replicas`` / ``wait_aof``) was added on the master but not confirmed by enough
    replicas (WAIT) or AOF fsyncs (WAITAOF) within ``wait_timeout_ms``: the job exists on the master, and a failover
    right now could lose it. Pushing again with the same ``id`` is safe (an id still live adds nothing).

    ``job_id``: the id the master returned. ``replicas``: replicas that acknowledged it (WAIT), ``wanted``: how
    many were asked for. ``aof_local`` / ``aof_replicas``: WAITAOF's reply (None when WAITAOF was not sent).
    """

    def __init__(self, job_id: JobId, replicas: int, wanted: int, aof_local: Optional[int] = None,
                 aof_replicas: Optional[int] = None, aof_local_wanted: int = 0):
        self.job_id, self.replicas, self.wanted = job_id, replicas, wanted
        self.aof_local, self.aof_replicas, self.aof_local_wanted = aof_local, aof_replicas, aof_local_wanted
        text = f"job {job_id!r} pushed but acknowledged by {replicas} of {wanted} replicas"
        if aof_local is not None:
            text += (f"; fsynced to the AOF locally {aof_local}/{aof_local_wanted} and on {aof_replicas}/{wanted} "
                     f"replicas")
        super().__init__(text)


class Once:
    """A queue named ``queue`` in the Redis server behind ``redis_client`` (a ``redis.Redis``).

    ``queue`` may also be a list of names, in priority order (``Once(r, ['urgent', 'tasks'])``): ``reserve()`` and
    the worker then take jobs from the first queue that has ready ones (``ONCE.RESERVE urgent ... ALSO tasks``),
    each Job says its ``queue``, and a Job's ACK, NACK and EXTEND go to its own queue; the other methods (push,
    stats, ...) act on the first queue. In a cluster the queues must share a slot (``{shop}:urgent``).

    Payloads are given as str (sent as UTF-8) or bytes, and come back as bytes unless ``decode`` is true (UTF-8)
    or names an encoding; every reading method also takes ``decode=`` to choose per call. Job ids are str.

    The client's own protocol and settings are used as they are (RESP2 or RESP3). Calls that wait on the server
    (``reserve(block_ms=...)``, a durable ``push``'s WAIT) run on one connection of the client read with a timeout
    longer than the wait and are never re-sent by the client's retries, so a client made with redis-py's defaults
    (a 5 s socket timeout, retries on timeout) can block for longer. ``worker()`` opens a connection pool of its
    own, derived from the client's settings. A queue key of another type raises ``WrongTypeError`` (a
    ``redis.ResponseError``) naming what the key holds.

    Durable pushes: replication to replicas is asynchronous, so a job the master acknowledged can be lost if the
    master dies before a replica has it. With ``wait_replicas=n`` every ``push()`` is followed, on the same
    connection and in the same round trip, by ``WAIT n wait_timeout_ms``; when fewer than n replicas confirm it,
    ``push()`` raises ``DurabilityError`` (the job is on the master; pushing again with the same ``id`` is safe).
    With ``wait_aof=True`` it is also followed by ``WAITAOF numlocal n wait_timeout_ms`` (the push is fsynced to
    the AOF of the master, when it has AOF on, and of n replicas) on servers that have WAITAOF (Redis 7.2+,
    Valkey); whether this server has it is probed once (``waitaof`` tells, after the first durable push). Redis
    7.0 has no WAITAOF: there only WAIT is sent. ``wait_timeout_ms`` bounds each wait (0 waits forever, as WAIT
    does). All three can be set per call: ``push(..., wait_replicas=...)``. Workers need none of this: their
    ACKs are fenced (a lost ACK only means the job runs again).
    """

    def __init__(self, redis_client: Any, queue: Union[str, Sequence[str]], *, decode: Union[bool, str] = False,
                 wait_replicas: int = 0, wait_timeout_ms: Millis = 1000, wait_aof: bool = False):
        queues = [queue] if isinstance(queue, (str, bytes)) else list(queue)
        if not queues or not all(queues):
            raise ValueError("queue name must not be empty")
        if len(set(queues)) != len(queues):
            raise ValueError("a queue is named twice")
        if wait_replicas < 0:
            raise ValueError("wait_replicas must be >= 0")
        self.redis = redis_client
        self.queue: str = queues[0]
        self.queues: Tuple[str, ...] = tuple(queues)   # in priority order; the first is ``queue``
        self.decode = decode
        self.wait_replicas = int(wait_replicas)
        self.wait_timeout_ms = _ms(wait_timeout_ms)
        self.wait_aof = bool(wait_aof)
        self.waitaof: Optional[bool] = None      # whether the server has WAITAOF (probed at the first use)
        self._aof_local = 0                      # WAITAOF's numlocal: 1 when the master has AOF on
        self._workers: List[Any] = []

    def __repr__(self) -> str:
        if len(self.queues) > 1:
            return f"Once(queues={list(self.queues)!r})"
        return f"Once(queue={self.queue!r})"

    def _decode(self, decode: Optional[Union[bool, str]]) -> Union[bool, str]:
        return self.decode if decode is None else decode

    # --- producing ------------------------------------------------------------------------------------------

    def push(
        self,
        payload: Payload,
        *,
        id: Optional[JobId] = None,
        delay_ms: Optional[Millis] = None,
        at: Optional[Union[int, datetime.datetime]] = None,
        retries: Optional[int] = None,
        backoff_ms: Optional[Millis] = None,
        lease_ms: Optional[Millis] = None,
        priority: Optional[int] = None,
        group: Optional[Union[str, bytes]] = None,
        keep: Optional[Millis] = None,
        ttl: Optional[Millis] = None,
        ttl_drop: bool = False,
        wait_replicas: Optional[int] = None,
        wait_timeout_ms: Optional[Millis] = None,
        wait_aof: Optional[bool] = None,
    ) -> JobId:
        """ONCE.PUSH: adds a job and returns its id, as a ``Pushed`` (a str) whose ``.result(timeout)`` waits for
        the job's outcome.

        ``id``: a client id (1-256 bytes); pushing an id that is still live in the queue adds nothing and returns it.
        ``delay_ms`` or ``at`` (unix ms or a datetime): when the job becomes ready (not both).
        ``retries``: how many times a failed job is tried again (0 = one attempt). ``backoff_ms``: the base of the
        exponential backoff between retries. ``lease_ms``: this job's lease when reserved. ``priority``: higher first.
        ``group``: the job's group (1-256 bytes; see ``group()``); None: the queue's default group.
        ``keep`` (ms): once finished (completed or cancelled) the job is kept with its outcome that long, for
        ``result()`` and as a dedup window for its id (0: not kept; None: the queue's KEEP, see ``configure``).
        ``ttl`` (ms): a job not reserved within that long after the push becomes dead (``expired before start``),
        or with ``ttl_drop=True`` is removed.
        ``wait_replicas``, ``wait_timeout_ms``, ``wait_aof``: a durable push for this call (default: the Once's
        settings, see the class): ``DurabilityError`` when fewer replicas (or AOF fsyncs) than asked confirm it.
        """
        args: List[Any] = ["ONCE.PUSH", self.queue, _payload(payload)]
        if id is not None:
            args += ["ID", id]
        args += _job_options(delay_ms, at, retries, backoff_ms, lease_ms, priority, group)
        args += _finish_options(keep, ttl, ttl_drop)
        replicas = self.wait_replicas if wait_replicas is None else int(wait_replicas)
        aof = self.wait_aof if wait_aof is None else bool(wait_aof)
        if replicas <= 0 and not aof:
            return self._pushed(to_id(self._cmd(*args)))
        timeout = self.wait_timeout_ms if wait_timeout_ms is None else _ms(wait_timeout_ms)
        return self._pushed(self._durable(args, max(0, replicas), timeout, aof))

    def _pushed(self, job_id: JobId) -> JobId:
        """The id a push returns: a ``Pushed`` (an id that is not UTF-8 stays bytes)."""
        return Pushed(job_id, self, self.queue) if isinstance(job_id, str) else job_id

    def call(
        self,
        payload: Payload,
        *,
        timeout: Optional[Seconds],
        cancel: bool = False,
        id: Optional[JobId] = None,
        delay_ms: Optional[Millis] = None,
        at: Optional[Union[int, datetime.datetime]] = None,
        retries: Optional[int] = None,
        backoff_ms: Optional[Millis] = None,
        lease_ms: Optional[Millis] = None,
        priority: Optional[int] = None,
        group: Optional[Union[str, bytes]] = None,
        keep: Optional[Millis] = None,
        ttl: Optional[Millis] = None,
        ttl_drop: bool = False,
        decode: Optional[Union[bool, str]] = None,
    ) -> Optional[Result]:
        """ONCE.CALL: pushes a job and waits, in the same round trip, until it finishes; returns its ``Result``
        (``ok``, ``text``, ``json()``, ``error``), or None when ``timeout`` (seconds, or a timedelta; None: forever)
        ran out first. Then the job stays queued, or with ``cancel=True`` it is cancelled (its error reads ``call
        timed out``). The other options are ``push``'s. Never re-sent by the client's retries (a second CALL would
        push again), and read with a timeout longer than the wait, whatever the client's ``socket_timeout``."""
        wait = _block_ms(timeout)
        args: List[Any] = ["ONCE.CALL", self.queue, _payload(payload)]
        if id is not None:
            args += ["ID", id]
        args += _job_options(delay_ms, at, retries, backoff_ms, lease_ms, priority, group)
        args += _finish_options(keep, ttl, ttl_drop)
        args += ["TIMEOUT", wait] + (["CANCEL"] if cancel else [])
        with naming_wrong_type(self.redis, self.queue):
            reply = blocking.call_one(self.redis, self.queue, args, wait)
        return parse_result(reply, self._decode(decode))

    def result(self, job: JobRef, *, wait: Optional[Seconds] = None,
               decode: Optional[Union[bool, str]] = None) -> Optional[Result]:
        """ONCE.RESULT: the job's outcome (completed with its ``result``, dead or cancelled with its ``error``) or
        where it stands while unfinished (``Result.done`` is False); None for a job the queue does not hold.

        ``wait`` (seconds, or a timedelta; 0 waits as long as it takes): wait up to that long for an unfinished job
        to finish (RESULT ... BLOCK, woken by the job's own ACK, death or cancel); the reply is then the outcome, or
        the job as it stands at the timeout. A waiter that was waiting when the job finished gets the outcome even
        when the job is not kept. The wait runs on one connection read with a timeout longer than it, never re-sent
        by the client's retries. A waiter whose master turns replica (a failover) gets the server's ``UNBLOCKED``
        error (a ``redis.ResponseError``): ask again, of the new master."""
        args: List[Any] = ["ONCE.RESULT", self.queue, _job_id(job)]
        if wait is None:
            return parse_result(self._cmd(*args), self._decode(decode))
        ms = 0 if wait == 0 else _block_ms(wait)
        with naming_wrong_type(self.redis, self.queue):
            reply = blocking.call_one(self.redis, self.queue, args + ["BLOCK", ms], ms)
        return parse_result(reply, self._decode(decode))

    def progress(self, job: JobRef, data: Any, *, attempt: Optional[int] = None) -> bool:
        """ONCE.PROGRESS: stores ``data`` (str or bytes; other values as JSON) as a reserved job's progress, shown by
        ``inspect`` and ``result``. Fenced by ``attempt`` (a Job gives its own): True if the job is reserved (under
        that attempt) and the progress was stored, False if not (lease ran out, cancelled, finished)."""
        encoded = encode_value(data)
        if encoded is None:
            raise ValueError("progress needs data")
        if attempt is None and isinstance(job, Job):
            attempt = job.attempt
        queue = self._queue_of(job)
        args: List[Any] = ["ONCE.PROGRESS", queue, _job_id(job), encoded]
        if attempt is not None:
            args += ["ATTEMPT", int(attempt)]
        return bool(self._cmd_on(queue, *args))

    def was_cancelled(self, job: JobRef) -> bool:
        """Whether the job finished as cancelled (ONCE.RESULT): why a reservation's EXTEND, PROGRESS or ACK was
        refused, when it was."""
        queue = self._queue_of(job)
        outcome = parse_result(self._cmd_on(queue, "ONCE.RESULT", queue, _job_id(job)))
        return outcome is not None and outcome.state == "cancelled"

    def _job_progress(self, job: Job, data: Any) -> bool:
        """``Job.progress``: PROGRESS, and a refusal because the job was cancelled sets its ``cancelled``."""
        if self.progress(job, data):
            return True
        if job._control is not None and self.was_cancelled(job):
            job._control.cancelled.set()
        return False

    def _controlled(self, job: Job) -> Job:
        """``job`` with a control of its own, so that ``job.progress()`` goes through this Once."""
        return dataclasses.replace(job, _control=JobControl(self._job_progress))

    def push_many(
        self,
        payloads: Iterable[Payload],
        *,
        ids: Optional[Iterable[JobId]] = None,
        delay_ms: Optional[Millis] = None,
        at: Optional[Union[int, datetime.datetime]] = None,
        retries: Optional[int] = None,
        backoff_ms: Optional[Millis] = None,
        lease_ms: Optional[Millis] = None,
        priority: Optional[int] = None,
        group: Optional[Union[str, bytes]] = None,
    ) -> List[JobId]:
        """ONCE.BULK: adds one job per payload, all with the same options (``push``'s, but ``id`` and the durable
        ones), and returns their ids in order. ``ids``: one id per payload, each idempotent like ``push(id=...)``.

        Each ONCE.BULK call takes at most 10,000 payloads and adds all of them or none; more are sent in several
        calls, one after the other, so a failure part-way leaves the earlier calls' jobs in place (with ``ids``,
        calling again is safe: live ids add nothing)."""
        batch = [_payload(p) for p in payloads]
        names = None if ids is None else list(ids)
        if names is not None and len(names) != len(batch):
            raise ValueError(f"ids gives {len(names)} ids for {len(batch)} payloads: give one id per payload")
        options = _job_options(delay_ms, at, retries, backoff_ms, lease_ms, priority, group)
        out: List[JobId] = []
        for start in range(0, len(batch), BULK_MAX):
            args: List[Any] = ["ONCE.BULK", self.queue] + options
            if names is not None:
                args += ["IDS"] + names[start:start + BULK_MAX]
            args += ["PAYLOADS"] + batch[start:start + BULK_MAX]
            out += [to_id(i) for i in self._cmd(*args)]
        return out

    def adopt(self) -> int:
        """ONCE.ADOPT: turns a list at the queue's key (a list producer that started first) into the queue, each
        element a ready job, head first; returns how many. 0 when the key is already a queue or missing."""
        return int(self._cmd("ONCE.ADOPT", self.queue))

    def _probe_waitaof(self, node: Any) -> None:
        """Once: does the server have WAITAOF, and has the master AOF on (WAITAOF's numlocal)?"""
        try:
            node.execute_command("WAITAOF", 0, 0, 0)     # met at once where it exists
            self.waitaof = True
        except Exception as exc:  # an unknown command: Redis < 7.2
            if "unknown command" not in str(exc).lower():
                raise
            self.waitaof = False
            return
        try:
            self._aof_local = 1 if int(node.info("persistence").get("aof_enabled", 0)) == 1 else 0
        except Exception:  # noqa: BLE001 - INFO refused: do not ask for a local fsync
            self._aof_local = 0

    def _durable(self, args: List[Any], replicas: int, timeout: int, aof: bool) -> JobId:
        """PUSH, then WAIT (and WAITAOF) on the same connection in one round trip; raises DurabilityError.
        WAIT may wait ``timeout`` ms (0: forever): the round trip is never re-sent (a retry would push twice)."""
        if aof and self.waitaof is None:
            self._probe_waitaof(blocking.node_client(self.redis, self.queue))
        use_aof = aof and bool(self.waitaof)
        commands = [args, ["WAIT", replicas, timeout]]
        if use_aof:
            commands.append(["WAITAOF", self._aof_local, replicas, timeout])
        replies = blocking.call(self.redis, self.queue, commands, timeout)
        for r in replies:
            if isinstance(r, Exception):
                with naming_wrong_type(self.redis, self.queue):
                    raise r
        job_id = to_id(replies[0])
        acked = int(replies[1])
        local, remote = (int(replies[2][0]), int(replies[2][1])) if use_aof else (None, None)
        if acked < replicas or (local is not None and remote is not None
                                and (local < self._aof_local or remote < replicas)):
            raise DurabilityError(job_id, acked, replicas, local, remote, self._aof_local if use_aof else 0)
        return job_id

    def _cmd(self, *args: Any) -> Any:
        """One command on the queue's key; WRONGTYPE is raised as a WrongTypeError naming what the key holds."""
        return self._cmd_on(self.queue, *args)

    def _cmd_on(self, key: str, *args: Any) -> Any:
        with naming_wrong_type(self.redis, key):
            return self.redis.execute_command(*args)

    # --- consuming ------------------------------------------------------------------------------------------

    def reserve(
        self,
        count: Optional[int] = None,
        *,
        block_ms: Optional[Millis] = None,
        lease_ms: Optional[Millis] = None,
        ack: Optional[AckRef] = None,
        ack_attempt: Optional[int] = None,
        decode: Optional[Union[bool, str]] = None,
    ) -> List[Job]:
        """ONCE.RESERVE: leases up to ``count`` ready jobs (default 1); ``[]`` when there are none. With several
        queues (``Once(r, [...])``), from the first that has ready ones on (``ALSO``); each Job says its ``queue``.

        ``block_ms``: wait up to that long for a job (0 waits forever). The wait runs on one connection of the
        client read with a timeout longer than the wait, whatever the client's ``socket_timeout``, and is never
        re-sent by the client's retries (a second RESERVE could lease a job to a connection nobody reads).
        ``lease_ms``: the lease for these jobs (else the job's own, else the module default).
        ``ack``: ack-and-fetch, the job (or id) to acknowledge first, in the same round trip. A Job is fenced by its
        attempt (``ACK id ATTEMPT n``: acked only while that very reservation holds); with an id, pass
        ``ack_attempt`` to fence it. A list of Jobs is acknowledged together, each fenced by its own attempt
        (``ACKS n id attempt ...``); Jobs of another queue than the first go as ``ONCE.ACK`` to their queue in the
        same round trip. ``ack_reserve()`` also tells whether the ACKs were taken.
        """
        before, args = self._reserve_args(count, block_ms, lease_ms, ack, ack_attempt, False)
        return self._parse_reserved(self._reserve(before, args, block_ms)[1], decode)

    def ack_reserve(
        self,
        ack: AckRef,
        count: Optional[int] = None,
        *,
        block_ms: Optional[Millis] = None,
        lease_ms: Optional[Millis] = None,
        ack_attempt: Optional[int] = None,
        decode: Optional[Union[bool, str]] = None,
    ) -> Tuple[int, List[Job]]:
        """ONCE.RESERVE ... ACK id [ATTEMPT n] WITHACK (or ``ACKS n ...`` for a list of Jobs): acknowledges ``ack``
        and reserves, as ``reserve(ack=...)`` does, and returns ``(acked, jobs)``: ``acked`` counts the ACKs taken,
        fewer than given when a fenced ACK was refused (its lease had run out: the job went back to ready or to
        another worker, and may run twice). Needs a module whose RESERVE takes WITHACK (an older one answers an
        error)."""
        before, args = self._reserve_args(count, block_ms, lease_ms, ack, ack_attempt, True)
        acked, reply = self._reserve(before, args, block_ms)
        return acked + int(reply[0]), self._parse_reserved(reply[1], decode)

    def _reserve_args(self, count: Optional[int], block_ms: Optional[Millis], lease_ms: Optional[Millis],
                      ack: Optional[AckRef], ack_attempt: Optional[int],
                      withack: bool) -> Tuple[List[List[Any]], List[Any]]:
        """The RESERVE command, and the ONCE.ACKs to send before it for finished jobs of the other queues."""
        args: List[Any] = ["ONCE.RESERVE", self.queue]
        before: List[List[Any]] = []
        if count is not None:
            args += ["COUNT", int(count)]
        if block_ms is not None:
            args += ["BLOCK", _ms(block_ms)]
        if lease_ms is not None:
            args += ["LEASE", _ms(lease_ms)]
        if isinstance(ack, Job) and ack_attempt is None:
            ack = [ack]
        if ack is None:
            if ack_attempt is not None:
                raise ValueError("ack_attempt needs ack")
        elif isinstance(ack, (Job, str, bytes)):
            args += ["ACK", _job_id(ack), "ATTEMPT", int(ack_attempt)] if ack_attempt is not None else ["ACK", ack]
        else:
            jobs = list(ack)
            if ack_attempt is not None or not all(isinstance(j, Job) for j in jobs):
                raise TypeError("a list to acknowledge holds Jobs, each fenced by its own attempt")
            groups = _by_queue(jobs, self.queue)
            mine = groups.pop(self.queue, [])
            if mine:
                args += (["ACK"] if len(mine) == 1 else []) + _fenced_acks(mine)
            before = [["ONCE.ACK", q] + _fenced_acks(js) for q, js in groups.items()]
        if withack:
            args.append("WITHACK")
        if len(self.queues) > 1:
            args += ["ALSO", *self.queues[1:]]
        return before, args

    def _reserve(self, before: List[List[Any]], args: List[Any], block_ms: Optional[Millis]) -> Tuple[int, Any]:
        """Sends ``before`` (ONCE.ACKs) and the RESERVE in one round trip: (jobs the ACKs completed, RESERVE's
        reply)."""
        wait = None if block_ms is None else _ms(block_ms)
        with self._naming_wrong_type_of_any():
            if not before:
                reply = self.redis.execute_command(*args) if wait is None else \
                    blocking.call_one(self.redis, self.queue, args, wait)
                return 0, reply
            replies = blocking.call(self.redis, self.queue, before + [args], wait)
            for r in replies:
                if isinstance(r, Exception):
                    raise r
            return sum(int(r) for r in replies[:-1]), replies[-1]

    @contextlib.contextmanager
    def _naming_wrong_type_of_any(self) -> Iterator[None]:
        """As ``naming_wrong_type``, for a command on all of this Once's queues: names the first key of another
        type."""
        if len(self.queues) == 1:
            with naming_wrong_type(self.redis, self.queue):
                yield
            return
        try:
            yield
        except redis.ResponseError as exc:
            if isinstance(exc, WrongTypeError) or not is_wrong_type(exc):
                raise
            named = [wrong_type_error(self.redis, q) for q in self.queues]
            raise next((e for e in named if e.held), named[0]) from None

    def _parse_reserved(self, reply: Any, decode: Optional[Union[bool, str]]) -> List[Job]:
        """RESERVE's jobs; with ALSO each entry carries its queue as a 4th element."""
        if len(self.queues) == 1:
            jobs = parse_jobs(reply, self.queue, self._decode(decode))
        else:
            jobs = [job for e in reply or [] for job in parse_jobs([e[:3]], to_str(e[3]), self._decode(decode))]
        return [self._controlled(j) for j in jobs]

    def _queue_of(self, job: JobRef) -> str:
        """The queue a Job came from (an id: the first queue)."""
        return job.queue if isinstance(job, Job) and job.queue else self.queue

    def ack(self, *jobs: JobRef, attempt: Optional[int] = None, result: Any = None) -> int:
        """ONCE.ACK: completes reserved jobs (Job objects or ids); returns how many were reserved and are now gone.

        ``result``: the job's result (str or bytes as given, other values as JSON; one job only), kept with the
        finished job for ``result()`` and handed to a waiting ``call()``; at most the module's max-payload-bytes.

        A Job is fenced by its attempt (``ACK id ATTEMPT n``; several as ``ACKS n id attempt ...``): it is acked
        only while that very reservation holds, so a worker whose lease ran out cannot complete the job another
        worker now holds. A Job goes to its own queue. Ids are acked as they are, on the first queue, unless
        ``attempt`` is given (then with exactly one job). Everything goes in one round trip.
        """
        if not jobs:
            raise ValueError("ack needs at least one job")
        encoded = encode_value(result)
        if encoded is not None:
            if len(jobs) != 1:
                raise ValueError("a result goes with exactly one job")
            if attempt is None and isinstance(jobs[0], Job):
                attempt = jobs[0].attempt
            queue = self._queue_of(jobs[0])
            args: List[Any] = ["ONCE.ACK", queue, _job_id(jobs[0])]
            args += ["ATTEMPT", int(attempt)] if attempt is not None else []
            return int(self._cmd_on(queue, *args, "RESULT", encoded))
        if attempt is not None:
            if len(jobs) != 1:
                raise ValueError("attempt fences exactly one job")
            return int(self._cmd("ONCE.ACK", self.queue, _job_id(jobs[0]), "ATTEMPT", int(attempt)))
        fenced = [j for j in jobs if isinstance(j, Job)]
        plain = [j for j in jobs if not isinstance(j, Job)]
        commands = [["ONCE.ACK", q] + _fenced_acks(js) for q, js in _by_queue(fenced, self.queue).items()]
        if plain:
            commands.append(["ONCE.ACK", self.queue, *plain])
        if len(commands) == 1:
            return int(self._cmd_on(commands[0][1], *commands[0]))
        pipe = self.redis.pipeline(transaction=False)
        for c in commands:
            pipe.execute_command(*c)
        with self._naming_wrong_type_of_any():
            return sum(int(n) for n in pipe.execute())

    def nack(
        self,
        job: JobRef,
        *,
        attempt: Optional[int] = None,
        error: Optional[Union[str, BaseException]] = None,
        delay_ms: Optional[Millis] = None,
        dead: bool = False,
    ) -> bool:
        """ONCE.NACK: records a failed attempt; the job is retried (after ``delay_ms`` or its backoff) or is dead.

        Given a Job, its ``attempt`` fences the call (it acts only while that reservation holds); with an id, pass
        ``attempt`` yourself. ``error``: the text kept as the job's ``last_error`` (an exception gives its text).
        ``dead=True`` dead-letters the job at once. Returns True if the reservation was failed, False if it no
        longer held (lease ran out, acked, or unknown).
        """
        if dead and delay_ms is not None:
            raise ValueError("give delay_ms or dead, not both")
        if attempt is None and isinstance(job, Job):
            attempt = job.attempt
        queue = self._queue_of(job)
        args: List[Any] = ["ONCE.NACK", queue, _job_id(job)]
        if attempt is not None:
            args += ["ATTEMPT", int(attempt)]
        if error is not None:
            args += ["ERROR", error_text(error) if isinstance(error, BaseException) else error]
        if delay_ms is not None:
            args += ["DELAY", _ms(delay_ms)]
        if dead:
            args.append("DEAD")
        return bool(self._cmd_on(queue, *args))

    def extend(self, job: JobRef, ms: Millis, *, attempt: Optional[int] = None) -> Optional[int]:
        """ONCE.EXTEND: sets a reserved job's lease to now + ``ms``; returns the new deadline (unix ms), or None if
        the job is not reserved (under this ``attempt``; a Job gives its own)."""
        if attempt is None and isinstance(job, Job):
            attempt = job.attempt
        queue = self._queue_of(job)
        args: List[Any] = ["ONCE.EXTEND", queue, _job_id(job), _ms(ms)]
        if attempt is not None:
            args += ["ATTEMPT", int(attempt)]
        return to_int(self._cmd_on(queue, *args))

    def retry(self, *jobs: JobRef) -> int:
        """ONCE.RETRY: sends dead jobs back to ready with a fresh set of attempts; returns how many were dead."""
        if not jobs:
            raise ValueError("retry needs at least one job")
        return int(self._cmd("ONCE.RETRY", self.queue, *[_job_id(j) for j in jobs]))

    def cancel(self, *jobs: JobRef) -> int:
        """ONCE.CANCEL: cancels jobs; returns how many were. A ready, delayed or dead job is removed (kept as
        ``cancelled`` with KEEP); a reserved one finishes as ``cancelled`` at once, and its holder's EXTEND, PROGRESS
        and ACK are refused from then on (a Python worker sets the job's ``cancelled`` and does not ACK it). A module
        older than issue 21 does not cancel reserved jobs."""
        if not jobs:
            raise ValueError("cancel needs at least one job")
        return int(self._cmd("ONCE.CANCEL", self.queue, *[_job_id(j) for j in jobs]))

    # --- reading --------------------------------------------------------------------------------------------

    def inspect(self, job: JobRef, *, decode: Optional[Union[bool, str]] = None) -> Optional[JobInfo]:
        """ONCE.INSPECT: the job's state and fields, or None if the queue does not hold it."""
        return parse_job_info(self._cmd("ONCE.INSPECT", self.queue, _job_id(job)),
                              self._decode(decode))

    def list(self, state: str, *, cursor: str = "0", count: Optional[int] = None, payloads: bool = False,
             match: Optional[Union[str, bytes]] = None,
             decode: Optional[Union[bool, str]] = None) -> Tuple[str, List[JobInfo]]:
        """ONCE.LIST: one page of the jobs in ``state`` (ready, delayed, reserved, dead, or the kept completed and
        cancelled): ``(next_cursor, jobs)``;
        pass ``next_cursor`` back as ``cursor`` until it is "0". ``payloads``: with their payloads (WITHPAYLOADS).
        ``match``: only jobs whose id, payload or last error match this glob (as SCAN MATCH); the server examines a
        bounded number of jobs per call, so a page may hold fewer than ``count`` jobs, even none, before the end."""
        args: List[Any] = ["ONCE.LIST", self.queue, state]
        if cursor not in (None, "", "0", 0):
            args += ["CURSOR", cursor]
        if count is not None:
            args += ["COUNT", int(count)]
        if payloads:
            args.append("WITHPAYLOADS")
        if match is not None:
            args += ["MATCH", match]
        return parse_list(self._cmd(*args), self._decode(decode))

    def stats(self) -> Stats:
        """ONCE.STATS: job counts by state and totals (``stats().items_waiting`` = ready jobs)."""
        return parse_stats(self._cmd("ONCE.STATS", self.queue))

    def configure(self, *, keep: Optional[Millis] = None, keep_max: Optional[int] = None,
                  **settings: Optional[int]) -> Settings:
        """ONCE.CONFIGURE: sets the queue's settings given and returns them all (only reads without any).
        ``keep`` (ms): how long a finished job is kept with its outcome when its push did not say (0: not kept);
        ``keep_max``: at most that many kept, the one nearest its expiry dropped first (0: no cap). Other settings by
        their name in lower case: ``dead_max=100``, ``events_max=1000``, ``lease=30000`` (ms)..."""
        args: List[Any] = ["ONCE.CONFIGURE", self.queue]
        if keep is not None:
            args += ["KEEP", _ms(keep)]
        if keep_max is not None:
            args += ["KEEP-MAX", int(keep_max)]
        for name, value in settings.items():
            if value is not None:
                args += [name.upper().replace("_", "-"), int(value)]
        return parse_settings(self._cmd(*args))

    # --- flow control ---------------------------------------------------------------------------------------

    def group(
        self,
        name: Union[str, bytes],
        *,
        concurrency: Optional[int] = None,
        rate: Optional[Tuple[int, Millis]] = None,
        reset: bool = False,
    ) -> GroupInfo:
        """ONCE.GROUP: a group's counts and own limits. With ``concurrency`` (0: no limit), ``rate=(n, per_ms)``
        or ``reset=True`` (drop the group's own limits first) it sets them; an override wins over the queue's
        GROUP-CONCURRENCY / GROUP-RATE. Without them it only reads (a missing group reads as zeros)."""
        return parse_group(self._cmd(*group_args(self.queue, name, concurrency, rate, reset)))

    def groups(self, cursor: str = "0", count: Optional[int] = None) -> Tuple[str, List[GroupInfo]]:
        """ONCE.GROUPS: one page of the named groups by name, ``(next_cursor, groups)``; start and end at "0"."""
        args: List[Any] = ["ONCE.GROUPS", self.queue, "CURSOR", cursor]
        if count is not None:
            args += ["COUNT", int(count)]
        return parse_groups(self._cmd(*args))

    # --- schedules ------------------------------------------------------------------------------------------

    def schedule(
        self,
        name: str,
        spec: str,
        payload: Payload,
        *,
        retries: Optional[int] = None,
        backoff_ms: Optional[Millis] = None,
        lease_ms: Optional[Millis] = None,
        priority: Optional[int] = None,
        tz: Optional[str] = None,
        missed: Optional[str] = None,
    ) -> int:
        """ONCE.SCHEDULE: adds or replaces the schedule ``name``; returns its next fire time (unix ms).

        ``spec`` is cron (5 or 6 fields) or ``@every <duration>`` such as ``@every 500ms``; each tick pushes one job
        whose id is ``name@<fire-ms>``. ``tz``: a time zone name for cron. ``missed``: ``"once"`` or ``"skip"``.
        """
        args: List[Any] = ["ONCE.SCHEDULE", self.queue, name, spec, _payload(payload)]
        if retries is not None:
            args += ["RETRIES", int(retries)]
        if backoff_ms is not None:
            args += ["BACKOFF", _ms(backoff_ms)]
        if lease_ms is not None:
            args += ["LEASE", _ms(lease_ms)]
        if priority is not None:
            args += ["PRIORITY", int(priority)]
        if tz is not None:
            args += ["TZ", tz]
        if missed is not None:
            args += ["MISSED", missed]
        return int(self._cmd(*args))

    def unschedule(self, name: str) -> bool:
        """ONCE.UNSCHEDULE: removes the schedule; True if there was one."""
        return bool(self._cmd("ONCE.UNSCHEDULE", self.queue, name))

    def schedules(self, *, decode: Optional[Union[bool, str]] = None) -> List[Schedule]:
        """ONCE.SCHEDULES: the queue's schedules with their next fire times."""
        return parse_schedules(self._cmd("ONCE.SCHEDULES", self.queue), self._decode(decode))

    # --- the worker -----------------------------------------------------------------------------------------

    def worker(
        self,
        execute: Callable[[Any], Any],
        error_handler: Optional[Callable[[Job, BaseException], Any]] = None,
        monitor_handler: Optional[Callable[[Stats], Any]] = None,
        **options: Any,
    ) -> "WorkerSummary":
        """Processes jobs until stopped (SIGINT/SIGTERM, ``stop()``, or ``stop_event``); see ``once.Worker``.

        ``execute(data)`` gets each job's payload, as str by default (``decode=False`` for bytes,
        ``pass_job=True`` to get the Job itself). A job whose ``execute`` returns is acked; one that raises is
        handed to ``error_handler(job, exception)`` and nacked with the exception's text, so the queue's retries
        and dead-letter apply. ``monitor_handler(stats)`` is called every ``monitor_interval`` seconds.

        A queue key that holds another type (a list a producer RPUSHed to) ends the program: the worker logs one
        line naming the key and its type, and this raises ``SystemExit(1)`` rather than a traceback. Use
        ``once.Worker`` directly to get the ``WrongTypeError`` instead.
        """
        from .worker import Worker

        try:
            return Worker(self, execute, error_handler, monitor_handler, **options).run()
        except WrongTypeError:
            raise SystemExit(1) from None

    def stop(self) -> None:
        """Asks every worker running on this Once object to stop: jobs in hand finish and are acked, no more are
        reserved. Safe to call from any thread."""
        for w in list(self._workers):
            w.stop()


def __getattr__(name: str) -> Any:
    """``once.client.Worker`` and ``WorkerSummary``, importable from here as before the worker imported the client."""
    if name in ("Worker", "WorkerSummary"):
        from . import worker
        return getattr(worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
