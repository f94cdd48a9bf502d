"""``Once``: one queue of the Once Redis module, every ONCE.* command as a method with a typed result."""
import contextlib
import dataclasses
import datetime
import uuid
from builtins import id as builtins_id        # ``id`` is a parameter name of push and FlowJob
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

import redis

from . import blocking
from .callbacks import route_by_first_key
from .errors import WrongTypeError, is_wrong_type, naming_wrong_type, wrong_type_error
from .types import (
    ON_FAIL,
    Dep,
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
    parse_deps,
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

_Q = TypeVar("_Q", bound="QueuedId")

DEPS_PAGE = 1000         # dependencies per ONCE.DEPS call when deps() reads them all
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


def _dep_clauses(after: Iterable["AfterRef"], default: str) -> List[List[Any]]:
    """The dependencies ``after`` names as ``[queue, n, id, ...]`` clauses: a QueuedId (a Pushed) and a Job name
    their own queue, a ``(queue, id)`` pair its queue, a plain id ``default``. Neighbours of one queue share a
    clause, so the order given is kept (ONCE.DEPS, and so ``job.deps()``, list them in it); an id named twice is
    sent once, where it was first named."""
    clauses: List[List[Any]] = []
    seen = set()
    queue: str
    job_id: JobId
    for dep in after:
        if isinstance(dep, QueuedId):
            queue, job_id = dep.queue, str(dep)
        elif isinstance(dep, Job):
            queue, job_id = dep.queue or default, dep.id
        elif isinstance(dep, (str, bytes)):
            queue, job_id = default, dep
        elif isinstance(dep, tuple) and len(dep) == 2:
            queue, job_id = dep
        else:
            raise TypeError(f"a dependency is a Pushed, a Job, a (queue, id) pair or an id, not {dep!r:.80}")
        if (queue, job_id) in seen:
            continue
        seen.add((queue, job_id))
        if clauses and clauses[-1][0] == queue:
            clauses[-1].append(job_id)
            clauses[-1][1] += 1
        else:
            clauses.append([queue, 1, job_id])
    return clauses


def _after_options(after: Optional[Iterable["AfterRef"]], on_fail: Optional[str], default: str) -> List[Any]:
    """PUSH's AFTER clauses and ON-FAIL."""
    clauses = _dep_clauses(after or (), default)
    if on_fail is not None:
        if on_fail not in ON_FAIL:
            raise ValueError(f"on_fail is one of {', '.join(ON_FAIL)}, not {on_fail!r}")
        if not clauses:
            raise ValueError("on_fail goes with after")
    args: List[Any] = []
    for clause in clauses:
        args += ["AFTER", *clause]
    return args + (["ON-FAIL", on_fail] if on_fail is not None else [])


class QueuedId(str):
    """A job id (a str, equal to it, usable wherever the id is) that also knows its ``queue``, and for a node of a
    ``flow`` the ids of its ``children`` (the jobs it waited on, in the order given). It can be named in
    ``push(after=[...])`` whatever queue it is in. Pickled or copied, it is a plain str."""

    queue: str
    children: Tuple["QueuedId", ...] = ()

    def __new__(cls: Type[_Q], job_id: str, queue: str, children: Sequence["QueuedId"] = ()) -> _Q:
        self = super().__new__(cls, job_id)
        self.queue, self.children = queue, tuple(children)
        return self

    def __reduce__(self) -> Any:
        return (str, (str(self),))

    @property
    def id(self) -> str:
        return str(self)


class Pushed(QueuedId):
    """What ``Once.push`` returns: the job's id (a str, equal to it, usable wherever the id is), which also knows
    its queue and can wait for the job's outcome. ``Once.flow`` returns the root's, whose ``children`` are the
    Pushed of the jobs it waited on (and theirs their own). Pickled or copied, it is a plain str."""

    once: "Once"

    def __new__(cls, job_id: str, once: "Once", queue: str, children: Sequence[QueuedId] = ()) -> "Pushed":
        self = QueuedId.__new__(cls, job_id, queue, children)
        self.once = once
        return self

    def _once(self) -> "Once":
        """A Once of the job's own queue: a flow's nodes may sit in other queues than the Once that pushed them."""
        if self.once.queue == self.queue:
            return self.once
        return Once(self.once.redis, self.queue, decode=self.once.decode)

    def result(self, timeout: Optional[Seconds] = None, *,
               decode: Optional[Union[bool, str]] = None) -> Optional[Result]:
        """Waits for the job to finish (ONCE.RESULT ... BLOCK) and returns its ``Result`` (completed, dead or
        cancelled: see ``Result.ok``, ``text``, ``json()``, ``error``). ``timeout`` in seconds (a timedelta too;
        None waits as long as it takes); ``TimeoutError`` when the job is still unfinished then. None when the
        queue does not hold the job: it finished before the wait began and was not kept (push with ``keep=``)."""
        outcome = self._once().result(self, wait=timeout if timeout is not None else 0, decode=decode)
        if outcome is not None and not outcome.done:
            raise TimeoutError(f"job {str(self)!r} still {outcome.state} after {timeout}s")
        return outcome

    def inspect(self, *, decode: Optional[Union[bool, str]] = None) -> Optional[JobInfo]:
        """ONCE.INSPECT of this job."""
        return self._once().inspect(self, decode=decode)

    def deps(self, *, decode: Optional[Union[bool, str]] = None) -> Optional[List[Dep]]:
        """ONCE.DEPS of this job: the jobs it waits on, with their outcomes and results."""
        return self._once().deps(self, decode=decode)

    def cancel(self) -> bool:
        """ONCE.CANCEL of this job; True if it was cancelled."""
        return self._once().cancel(self) > 0


AfterRef = Union[QueuedId, Job, Tuple[str, JobId], JobId]     # a dependency: see Once.push(after=...)


@dataclasses.dataclass
class FlowJob:
    """One node of a ``Once.flow`` tree: a job of ``queue`` with ``payload`` that waits on its ``children`` (each a
    FlowJob, run first; a FlowJob named under two parents is one job both wait on). The other fields are
    ``push``'s options; ``after``: jobs outside the tree it also waits on (named as in ``push(after=...)``). ``id``:
    the job's id (None: one is made up, as a flow names every job before it is pushed). An empty ``queue`` is the
    first queue of the Once that pushes the flow."""

    queue: str
    payload: Payload
    children: Sequence["FlowJob"] = ()
    id: Optional[JobId] = None
    delay_ms: Optional[Millis] = None
    at: Optional[Union[int, datetime.datetime]] = None
    retries: Optional[int] = None
    backoff_ms: Optional[Millis] = None
    lease_ms: Optional[Millis] = None
    priority: Optional[int] = None
    group: Optional[Union[str, bytes]] = None
    keep: Optional[Millis] = None
    ttl: Optional[Millis] = None
    ttl_drop: bool = False
    on_fail: Optional[str] = None
    after: Sequence[AfterRef] = ()


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
        self.redis = route_by_first_key(redis_client)
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
        after: Optional[Iterable[AfterRef]] = None,
        on_fail: Optional[str] = None,
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
        ``after``: jobs this one waits on (AFTER): it stays ``waiting`` until every one of them has completed, then
        becomes ready (or delayed, with ``delay_ms`` / ``at`` still ahead). Each is a ``Pushed`` (it knows its
        queue), a ``Job``, a ``(queue, id)`` pair, or an id of this queue; other queues must share this one's
        hash slot (``{shop}:charge``, ``{shop}:ship``). ``deps()`` and ``job.deps()`` list them in this order.
        ``on_fail``: what a dependency that ends dead or cancelled does to this job: ``"fail"`` (the default: it
        becomes dead), ``"ignore"`` (that dependency is dropped) or ``"continue"`` (it counts as done).
        """
        args: List[Any] = ["ONCE.PUSH", self.queue, _payload(payload)]
        if id is not None:
            args += ["ID", id]
        args += _job_options(delay_ms, at, retries, backoff_ms, lease_ms, priority, group)
        args += _finish_options(keep, ttl, ttl_drop)
        args += _after_options(after, on_fail, self.queue)
        replicas = self.wait_replicas if wait_replicas is None else int(wait_replicas)
        aof = self.wait_aof if wait_aof is None else bool(wait_aof)
        if replicas <= 0 and not aof:
            return self._pushed(to_id(self._cmd(*args)))
        timeout = self.wait_timeout_ms if wait_timeout_ms is None else _ms(wait_timeout_ms)
        return self._pushed(self._durable(args, max(0, replicas), timeout, aof))

    def _pushed(self, job_id: JobId, queue: Optional[str] = None) -> JobId:
        """The id a push returns: a ``Pushed`` (an id that is not UTF-8 stays bytes)."""
        return Pushed(job_id, self, queue or self.queue) if isinstance(job_id, str) else job_id

    def _flow_node(self, job_id: JobId, queue: str) -> JobId:
        """The id ``flow`` returns for one of its jobs: a ``Pushed`` of that job's queue."""
        return self._pushed(job_id, queue)

    # --- flows ----------------------------------------------------------------------------------------------

    def after(self, job: JobRef, deps: Iterable[AfterRef]) -> int:
        """ONCE.AFTER: makes a waiting job (pushed with ``after=``) also wait on ``deps`` (named as in
        ``push(after=...)``); returns how many dependencies were added (one it already waits on is not). Errors:
        the job is missing or no longer waiting, a dependency does not exist, or the new dependencies would make a
        cycle. Add them before the job's earlier dependencies have all completed: by then it has been released."""
        clauses = _dep_clauses(deps, self.queue)
        if not clauses:
            raise ValueError("after needs at least one dependency")
        queue = self._ref_queue(job)
        args: List[Any] = ["ONCE.AFTER", queue, _job_id(job)]
        for clause in clauses:
            args += clause
        return int(self._cmd_on(queue, *args))

    def deps(self, job: JobRef, *, start: Optional[int] = None, count: Optional[int] = None,
             decode: Optional[Union[bool, str]] = None) -> Optional[List[Dep]]:
        """ONCE.DEPS: the jobs ``job`` waits (or waited) on, in the order they were named, each a ``Dep`` with its
        state, outcome, result and error; None when the queue does not hold the job. ``start`` / ``count``: that
        stretch of them (FROM / COUNT); without ``count`` every one from ``start`` on, read ``DEPS_PAGE`` at a time.
        A Job or a Pushed is asked of its own queue."""
        queue = self._ref_queue(job)
        first = int(start or 0)
        out: List[Dep] = []
        while True:
            page = DEPS_PAGE if count is None else int(count)
            args: List[Any] = ["ONCE.DEPS", queue, _job_id(job), "FROM", first + len(out), "COUNT", page]
            got = parse_deps(self._cmd_on(queue, *args), self._decode(decode))
            if got is None:              # no such job (or it went between two pages: it has no more to read)
                return None if not out else out
            out += got
            if count is not None or len(got) < page:
                return out

    def flow(self, tree: FlowJob) -> JobId:
        """Pushes a tree of jobs in one round trip (MULTI/EXEC): each ``FlowJob`` waits on its ``children``, so the
        leaves run first and the root last; a handler reads what its children returned with ``job.deps()``.
        Returns the root's ``Pushed``, whose ``children`` are its children's (and so on down the tree).

        Every job is named before it is pushed (its ``id``, else a random one), so that a parent's AFTER can name
        its children in the same transaction. The tree's queues must share a hash slot (``{shop}:charge``). A
        command the server refuses inside the transaction (a payload too large, say) is raised; a transaction does
        not roll back, so the jobs it did push stay (those that do not wait on the refused one): give the jobs ids
        to make pushing the flow again safe (a live id adds nothing). A flow is not a durable push: no WAIT follows
        it, whatever ``wait_replicas`` says."""
        order: List[Tuple[FlowJob, JobId]] = []      # children before their parents
        ids: Dict[int, JobId] = {}                   # id(node) -> its job id, for a node named under two parents
        open_nodes: set = set()                      # nodes whose children are being walked: a cycle if met again

        def walk(node: FlowJob) -> JobId:
            key = builtins_id(node)
            if key in ids:
                return ids[key]
            if key in open_nodes:
                raise ValueError("a flow's tree has a cycle: a FlowJob is among its own descendants")
            open_nodes.add(key)
            for child in node.children:
                walk(child)
            open_nodes.discard(key)
            job_id = node.id if node.id is not None else uuid.uuid4().hex
            ids[key] = job_id
            order.append((node, job_id))
            return job_id

        walk(tree)
        commands: List[List[Any]] = [["MULTI"]]
        for node, job_id in order:
            queue = node.queue or self.queue
            children: List[AfterRef] = [(c.queue or self.queue, ids[builtins_id(c)]) for c in node.children]
            args: List[Any] = ["ONCE.PUSH", queue, _payload(node.payload), "ID", job_id]
            args += _job_options(node.delay_ms, node.at, node.retries, node.backoff_ms, node.lease_ms,
                                 node.priority, node.group)
            args += _finish_options(node.keep, node.ttl, node.ttl_drop)
            args += _after_options(children + list(node.after), node.on_fail, queue)
            commands.append(args)
        commands.append(["EXEC"])
        root_queue = tree.queue or self.queue
        replies = blocking.call(self.redis, root_queue, commands, None)
        # a command refused as it was queued (EXEC then aborts), else EXEC's own error, else the first command EXEC
        # ran that failed; a WRONGTYPE names the key of that job's queue
        executed = replies[-1]
        if isinstance(replies[0], Exception):        # MULTI refused (an ACL): its reason says most
            raise replies[0]
        for stage in (replies[1:-1], executed if isinstance(executed, list) else []):
            for (node, _), reply in zip(order, stage):
                if isinstance(reply, Exception):
                    with naming_wrong_type(self.redis, node.queue or self.queue):
                        raise reply
        if isinstance(executed, Exception):
            raise executed
        if not isinstance(executed, list):
            raise redis.ResponseError(f"the flow's transaction did not run (EXEC answered {executed!r})")
        # the ids as the server answered them (once.aio runs this method again to parse the replies, and that run
        # makes up other random ids than the run that sent the commands)
        pushed: Dict[int, JobId] = {}
        for (node, _), reply in zip(order, executed):
            p = self._flow_node(to_id(reply), node.queue or self.queue)
            if isinstance(p, QueuedId):
                p.children = tuple(c for c in (pushed[builtins_id(n)] for n in node.children)
                                   if isinstance(c, QueuedId))
            pushed[builtins_id(node)] = p
        return pushed[builtins_id(tree)]

    def _ref_queue(self, job: Any) -> str:
        """The queue a job named by a Job or a QueuedId (a Pushed) is in; a plain id: this Once's queue."""
        if isinstance(job, (Job, QueuedId)) and job.queue:
            return job.queue
        return self.queue

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
        after: Optional[Iterable[AfterRef]] = None,
        on_fail: Optional[str] = None,
    ) -> Optional[Result]:
        """ONCE.CALL: pushes a job and waits, in the same round trip, until it finishes; returns its ``Result``
        (``ok``, ``text``, ``json()``, ``error``), or None when ``timeout`` (seconds, or a timedelta; None: forever)
        ran out first. Then the job stays queued, or with ``cancel=True`` it is cancelled (its error reads ``call
        timed out``). The other options are ``push``'s (with ``after``, the wait covers the dependencies' too).
        Never re-sent by the client's retries (a second CALL would push again), and read with a timeout longer than
        the wait, whatever the client's ``socket_timeout``."""
        wait = _block_ms(timeout)
        args: List[Any] = ["ONCE.CALL", self.queue, _payload(payload)]
        if id is not None:
            args += ["ID", id]
        args += _job_options(delay_ms, at, retries, backoff_ms, lease_ms, priority, group)
        args += _finish_options(keep, ttl, ttl_drop)
        args += _after_options(after, on_fail, self.queue)
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

    def _job_deps(self, job: Job, decode: Optional[Union[bool, str]]) -> List[Dep]:
        """``Job.deps``: ONCE.DEPS of a reserved job (one that is gone has none left to read)."""
        return self.deps(job, decode=decode) or []

    def _controlled(self, job: Job) -> Job:
        """``job`` with a control of its own, so that ``job.progress()`` and ``job.deps()`` go through this Once."""
        return dataclasses.replace(job, _control=JobControl(self._job_progress, self._job_deps))

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
