"""Typed results of the ONCE.* commands, and the small parsers that build them from redis-py replies.

The parsers accept what redis-py hands back under either protocol: RESP2 maps arrive as flat field/value arrays,
RESP3 maps as dicts; strings arrive as bytes, or as str when the client has ``decode_responses=True``.
"""
import dataclasses
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

Payload = Union[bytes, str]
JobId = Union[str, bytes]
Bucket = Tuple[float, int]               # ONCE.HISTOGRAM: (upper bound in ms, math.inf for the last; count)
Settings = Dict[str, Optional[int]]      # ONCE.CONFIGURE: setting -> value, None where the module default applies

STATES = ("ready", "delayed", "reserved", "dead")
KEPT_STATES = ("completed", "cancelled")     # finished jobs a queue keeps for KEEP ms (ONCE.LIST lists them too)
# jobs pushed with AFTER, until their dependencies complete (issue 24: flows); a module with ONCE.DEPS has them
FLOW_STATES = ("waiting",)
LIST_STATES = STATES + KEPT_STATES + FLOW_STATES
FINISHED_STATES = ("completed", "dead", "cancelled")    # ONCE.RESULT: the job has its outcome
PURGEABLE = ("ready", "delayed", "dead") + FLOW_STATES
COUNT_FIELDS = STATES + FLOW_STATES
ON_FAIL = ("fail", "ignore", "continue")     # PUSH ... AFTER ... ON-FAIL: what a dependency's death does to a job


class PermanentError(Exception):
    """Raise from a worker's task to fail the job for good: it is nacked with ``DEAD``, whatever retries it has left."""


@dataclass(frozen=True)
class Job:
    """One reservation of a job: ``(id, attempt)`` names it, and fences NACK and EXTEND.

    ``payload`` is bytes, or str when the payload was decoded (see ``Once(decode=...)`` and ``worker(decode=...)``).
    """

    id: JobId
    payload: Payload
    attempt: int
    queue: str = ""
    # set on the Jobs a Once or a worker hands out: how job.progress() reaches the server, and the cancelled flag
    _control: Optional["JobControl"] = field(default=None, compare=False, repr=False)

    @property
    def text(self) -> str:
        """The payload as text (UTF-8), whatever form ``payload`` has."""
        return self.payload if isinstance(self.payload, str) else self.payload.decode("utf-8")

    @property
    def cancelled(self) -> bool:
        """True once the worker learnt that this reservation was cancelled (``ONCE.CANCEL`` of the running job):
        its lease extension, ``progress()`` or ACK was refused and the job's state is ``cancelled``. A handler that
        runs long checks it and stops early; the worker does not ACK a cancelled job, whatever the handler returns."""
        return self._control is not None and self._control.cancelled.is_set()

    def progress(self, data: Any) -> bool:
        """ONCE.PROGRESS for this reservation (fenced by its attempt): ``data`` as str/bytes, other values as JSON.
        Shown by INSPECT and RESULT (``Result.progress``). False if the job is no longer held by this reservation
        (then ``cancelled`` tells whether it was cancelled)."""
        if self._control is None:
            raise RuntimeError("this Job was not handed out by a Once or a worker: call Once.progress(job, data)")
        return self._control.progress(self, data)

    def deps(self, *, decode: Optional[Union[bool, str]] = None) -> List["Dep"]:
        """ONCE.DEPS of this job: the jobs it waited on (``push(after=...)``, ``flow``), in the order named, each
        with its ``outcome`` and ``result``. A completed dependency is kept until every job waiting on it has ended,
        so a handler (every attempt of it) reads its dependencies' results here whatever their KEEP. [] for a job
        that waited on nothing. In the asyncio worker: ``await once.deps(job)``."""
        if self._control is None or self._control.deps is None:
            raise RuntimeError("this Job was not handed out by a Once or a worker: call Once.deps(job)")
        return self._control.deps(self, decode)


class JobControl:
    """Shared by the copies of one reserved Job: ``progress`` sends ONCE.PROGRESS (and sets ``cancelled`` when the
    refusal was a cancel), ``deps`` reads ONCE.DEPS, ``cancelled`` is set by whoever finds the job cancelled (the
    worker's lease keeper)."""

    def __init__(self, progress: Callable[[Job, Any], bool],
                 deps: Optional[Callable[[Job, Optional[Union[bool, str]]], List["Dep"]]] = None):
        self.cancelled = threading.Event()
        self.progress = progress
        self.deps = deps


def encode_value(value: Any) -> Optional[bytes]:
    """A handler's return value (or progress) as the bytes the server keeps: None stays None (no result), bytes as
    they are, str as UTF-8, anything else as compact JSON (``Result.json()`` reads it back). TypeError when the value
    is none of these and not JSON-serializable."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Result:
    """ONCE.RESULT / ONCE.CALL: a job's outcome, or where it stands while it has none.

    ``state``: waiting (on its dependencies), ready, delayed, reserved (unfinished), completed, dead or cancelled
    (``done``). ``result``: what the worker acked the job with (bytes, or str when decoded; None without one). A
    Python worker stores a handler's str return value as its UTF-8 text, bytes as they are, and anything else as
    JSON: read it with ``text`` or ``json()``, whichever the handler returns (the same rule for ``progress``).
    ``error``: a dead job's last error, or a cancelled job's reason (``cancelled``, or ``call timed out``).
    ``finished``: unix ms, None while unfinished.
    """

    state: str
    result: Optional[Payload] = None
    error: Optional[str] = None
    attempts: int = 0
    finished: Optional[int] = None
    progress: Optional[Payload] = None
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def done(self) -> bool:
        """The job finished: completed, dead or cancelled."""
        return self.state in FINISHED_STATES

    @property
    def ok(self) -> bool:
        """The job completed (it was acked)."""
        return self.state == "completed"

    @property
    def text(self) -> Optional[str]:
        """The result as text (UTF-8), None without one."""
        return None if self.result is None else _as_text(self.result)

    def json(self) -> Any:
        """The result read as JSON (a Python worker's handler returned a dict, list, number, bool...); None without
        one. ValueError when it is not JSON."""
        return None if self.result is None else json.loads(self.result)

    def progress_json(self) -> Any:
        """The progress read as JSON; None without one."""
        return None if self.progress is None else json.loads(self.progress)


def _as_text(value: Payload) -> str:
    return value if isinstance(value, str) else value.decode("utf-8")


@dataclass(frozen=True)
class JobInfo:
    """ONCE.INSPECT: one job as the queue holds it. Times are unix ms; ``None`` where a field does not apply."""

    id: JobId
    state: str  # waiting | ready | delayed | reserved | dead | completed | cancelled
    payload: Payload
    attempts: int
    retries: int
    priority: int
    created: int
    due: Optional[int] = None
    lease_deadline: Optional[int] = None
    last_error: Optional[str] = None
    backoff: Optional[int] = None
    lease: Optional[int] = None  # None: the module default applies
    tries: int = 0  # reservations since the last ONCE.RETRY (counted against ``retries``); ``attempts`` never resets
    died: Optional[int] = None  # when a dead job died
    group: Optional[str] = None  # the job's group (PUSH ... GROUP); None: the default group
    result: Optional[Payload] = None  # what a completed job was acked with (decoded as the payload is)
    progress: Optional[Payload] = None  # the last ONCE.PROGRESS of a reserved (or finished) job
    finished: Optional[int] = None  # when a completed / dead / cancelled job finished
    # A job pushed with AFTER (None for one that waits on nothing): how many dependencies it has, how many
    # completed (or counted as done by ON-FAIL continue), failed, are left, and its ON-FAIL.
    deps_total: Optional[int] = None
    deps_done: Optional[int] = None
    deps_failed: Optional[int] = None
    deps_left: Optional[int] = None
    on_fail: Optional[str] = None
    dependents: Optional[int] = None  # jobs to be told when this one ends (None: none)
    pinned_by: Optional[int] = None  # jobs waiting on this one that have not ended: it is kept for them
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


FLOW_INFO_FIELDS = ("deps_total", "deps_done", "deps_failed", "deps_left", "on_fail", "dependents", "pinned_by")


@dataclass(frozen=True)
class Dep:
    """One entry of ONCE.DEPS: a job another one waits (or waited) on.

    ``queue`` and ``id`` name it. ``state``: its state now (ready, delayed, reserved, waiting, completed, dead,
    cancelled), or ``gone`` once it finished and was freed. ``outcome``: how it ended as far as the waiting job is
    concerned: pending, completed, dead or cancelled. ``result``: what it was acked with (bytes, or str when
    decoded; None without one); ``error``: a dead or cancelled dependency's error."""

    queue: str
    id: JobId
    state: str
    outcome: str
    result: Optional[Payload] = None
    error: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def done(self) -> bool:
        """The dependency has its outcome (it is no longer pending)."""
        return self.outcome != "pending"

    @property
    def ok(self) -> bool:
        """The dependency completed (it was acked)."""
        return self.outcome == "completed"

    @property
    def text(self) -> Optional[str]:
        """The result as text (UTF-8), None without one."""
        return None if self.result is None else _as_text(self.result)

    def json(self) -> Any:
        """The result read as JSON (a Python worker's handler returned a dict, list, number...); None without one."""
        return None if self.result is None else json.loads(self.result)


@dataclass(frozen=True)
class Stats:
    """ONCE.STATS: counts of jobs by state, and totals since the queue was made.

    ``items_waiting`` is the number of jobs ready to be reserved (``ready``).
    """

    ready: int = 0
    delayed: int = 0
    reserved: int = 0
    dead: int = 0
    waiting: int = 0  # jobs waiting on their dependencies (PUSH ... AFTER)
    schedules: int = 0
    pushed_total: int = 0
    reserved_total: int = 0
    acked_total: int = 0
    nacked_total: int = 0
    expired_total: int = 0
    retried_total: int = 0
    dead_total: int = 0
    dead_dropped_total: int = 0  # dead jobs dropped by DEAD-MAX / DEAD-TTL
    completed: int = 0  # finished jobs kept with their outcome (KEEP)
    cancelled: int = 0
    expired_unstarted_total: int = 0  # jobs not reserved within their TTL (dead or dropped)
    paused: int = 0
    # The queue's own settings (ONCE.CONFIGURE); None where the module config applies.
    retries: Optional[int] = None
    backoff: Optional[int] = None
    lease: Optional[int] = None
    dead_max: int = 0
    dead_ttl: int = 0
    events_max: int = 0  # events the queue keeps for ONCE.EVENTS (0: no log)
    keep: int = 0  # ms a finished job is kept with its outcome when its push did not say (0: not kept)
    keep_max: int = 0  # most finished jobs kept (0: no cap)
    groups: int = 0  # named groups that exist (PUSH ... GROUP, ONCE.GROUP)
    # flow control (ONCE.CONFIGURE; 0: no limit)
    concurrency: int = 0
    rate: int = 0
    rate_per: int = 0
    group_concurrency: int = 0
    group_rate: int = 0
    group_rate_per: int = 0
    # Latency percentiles from the queue's histograms (ONCE.HISTOGRAM); None until there is a sample.
    wait_p50_ms: Optional[int] = None
    wait_p99_ms: Optional[int] = None
    run_p50_ms: Optional[int] = None
    run_p99_ms: Optional[int] = None
    wait_sum_ms: int = 0  # sum of every wait sample (a Prometheus histogram's _sum)
    run_sum_ms: int = 0
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def items_waiting(self) -> int:
        """Jobs ready to be reserved now."""
        return self.ready

    @property
    def total(self) -> int:
        """Jobs the queue holds, in any state."""
        return self.ready + self.delayed + self.reserved + self.dead + self.completed + self.cancelled + self.waiting


@dataclass(frozen=True)
class Schedule:
    """One entry of ONCE.SCHEDULES. Times are unix ms."""

    name: str
    spec: str
    tz: Optional[str]
    next_fire: Optional[int]
    last_fire: Optional[int]
    payload: Payload
    retries: Optional[int] = None
    backoff: Optional[int] = None
    lease: Optional[int] = None
    priority: Optional[int] = None
    missed: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Event:
    """One entry of ONCE.EVENTS (a queue with EVENTS-MAX set). ``time`` is unix ms; ``error`` only for a NACK."""

    event_id: str
    event: str
    job_id: Optional[JobId]
    attempt: Optional[int]
    time: Optional[int]
    error: Optional[str] = None


@dataclass(frozen=True)
class GroupInfo:
    """ONCE.GROUP / ONCE.GROUPS: one group of a queue, its counts and its own limits.

    ``concurrency``, ``rate`` and ``rate_per`` are the group's own override; ``None`` where the queue's
    GROUP-CONCURRENCY / GROUP-RATE apply. A group that does not exist reads as all zeros.
    """

    name: str
    ready: int = 0
    reserved: int = 0
    concurrency: Optional[int] = None
    rate: Optional[int] = None
    rate_per: Optional[int] = None
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


# ---------------------------------------------------------------------------------------------------------------
# parsing helpers


def to_str(value: Any) -> Any:
    """bytes -> str (UTF-8, undecodable bytes as \\x escapes); anything else unchanged."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return value


text = to_str


def number(value: Any) -> Any:
    """A reply value as int or float where it is one (RESP integers, doubles, or their text); else as text."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    s = to_str(value)
    if not isinstance(s, str):
        return s
    try:
        return int(s)
    except ValueError:
        pass
    try:
        f = float(s)
    except ValueError:
        return s
    return int(f) if f.is_integer() and "." not in s and "e" not in s.lower() else f


def to_id(value: Any) -> JobId:
    """A job id as str; an id that is not UTF-8 (a client ``ID`` may be any bytes) stays bytes."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def to_int(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    return int(value)


def as_map(reply: Any) -> Optional[Dict[str, Any]]:
    """A RESP3 map (dict) or a RESP2 flat field/value array as a dict with str keys; None stays None."""
    if reply is None:
        return None
    if isinstance(reply, dict):
        return {to_str(k): v for k, v in reply.items()}
    if not isinstance(reply, (list, tuple)) or len(reply) % 2:
        raise ValueError(f"expected a map reply, got {reply!r:.200}")
    return {to_str(reply[i]): reply[i + 1] for i in range(0, len(reply), 2)}


def decode_payload(value: Any, decode: Union[bool, str]) -> Payload:
    """The payload as bytes, or as str when ``decode`` is true (UTF-8) or names an encoding."""
    if not decode:
        if isinstance(value, str):  # a client with decode_responses=True already decoded it
            return value.encode("utf-8")
        return bytes(value)
    if isinstance(value, str):
        return value
    return bytes(value).decode("utf-8" if decode is True else decode)


# Every parser below takes the server's reply under either protocol, or what it returned before: a client with
# Once's response callbacks (once.register) hands the typed value over already parsed.


def parse_jobs(reply: Any, queue: str, decode: Union[bool, str]) -> List[Job]:
    """ONCE.RESERVE's reply: null (none) or an array of ``[id, payload, attempt]``."""
    if not reply:
        return []
    return [Job(j.id, decode_payload(j.payload, decode), j.attempt, queue or j.queue) if isinstance(j, Job)
            else Job(to_id(j[0]), decode_payload(j[1], decode), int(j[2]), queue) for j in reply]


_STATS_FIELDS = {f for f in Stats.__dataclass_fields__ if f != "extra"}
_INFO_FIELDS = {f for f in JobInfo.__dataclass_fields__ if f != "extra"}
_SCHEDULE_FIELDS = {f for f in Schedule.__dataclass_fields__ if f != "extra"}
_GROUP_FIELDS = {f for f in GroupInfo.__dataclass_fields__ if f != "extra"}


def parse_stats(reply: Any) -> Stats:
    if isinstance(reply, Stats):
        return reply
    m = as_map(reply) or {}
    known: Dict[str, Any] = {k: to_int(v) for k, v in m.items() if k in _STATS_FIELDS}
    extra = {k: to_str(v) for k, v in m.items() if k not in _STATS_FIELDS}
    return Stats(**known, extra=extra)


def parse_job_info(reply: Any, decode: Union[bool, str]) -> Optional[JobInfo]:
    """ONCE.INSPECT's reply (and an entry of ONCE.LIST's, whose payload may be left out: then it is empty)."""
    if isinstance(reply, JobInfo):
        return dataclasses.replace(reply, payload=decode_payload(reply.payload, decode))
    m = as_map(reply)
    if m is None:
        return None
    known = {k: v for k, v in m.items() if k in _INFO_FIELDS}
    extra = {k: to_str(v) for k, v in m.items() if k not in _INFO_FIELDS}
    for k in ("attempts", "retries", "priority", "created", "due", "lease_deadline", "backoff", "lease", "tries",
              "died", "deps_total", "deps_done", "deps_failed", "deps_left", "dependents", "pinned_by"):
        if k in known:
            known[k] = to_int(known[k])
    known["id"] = to_id(known.get("id"))
    known["state"] = to_str(known.get("state"))
    known["last_error"] = to_str(known.get("last_error"))
    if "on_fail" in known:
        known["on_fail"] = to_str(known["on_fail"])
    if "group" in known:
        known["group"] = to_id(known["group"])
    known["payload"] = decode_payload(known.get("payload", b""), decode)
    for k in ("result", "progress"):
        if known.get(k) is not None:
            known[k] = decode_payload(known[k], decode)
    if "finished" in known:
        known["finished"] = to_int(known["finished"])
    return JobInfo(**known, extra=extra)


_RESULT_FIELDS = {f for f in Result.__dataclass_fields__ if f != "extra"}


def parse_result(reply: Any, decode: Union[bool, str] = False) -> Optional[Result]:
    """ONCE.RESULT's (and ONCE.CALL's) reply: null, or the map of state, result, error, attempts, finished,
    progress."""
    if isinstance(reply, Result):
        decoded: Dict[str, Any] = {k: decode_payload(getattr(reply, k), decode)
                                   for k in ("result", "progress") if getattr(reply, k) is not None}
        return dataclasses.replace(reply, **decoded)
    m = as_map(reply)
    if m is None:
        return None
    known = {k: v for k, v in m.items() if k in _RESULT_FIELDS}
    extra = {k: to_str(v) for k, v in m.items() if k not in _RESULT_FIELDS}
    known["state"] = to_str(known.get("state"))
    known["error"] = to_str(known.get("error"))
    known["attempts"] = to_int(known.get("attempts")) or 0
    known["finished"] = to_int(known.get("finished"))
    for k in ("result", "progress"):
        if known.get(k) is not None:
            known[k] = decode_payload(known[k], decode)
    return Result(**known, extra=extra)


_DEP_FIELDS = {f for f in Dep.__dataclass_fields__ if f != "extra"}


def parse_dep(reply: Any, decode: Union[bool, str] = False) -> Dep:
    """One entry of ONCE.DEPS' reply: the map of queue, id, state, outcome, result, error."""
    if isinstance(reply, Dep):
        return reply if reply.result is None else dataclasses.replace(reply, result=decode_payload(reply.result,
                                                                                                  decode))
    m = as_map(reply) or {}
    known = {k: v for k, v in m.items() if k in _DEP_FIELDS}
    extra = {k: to_str(v) for k, v in m.items() if k not in _DEP_FIELDS}
    for k in ("queue", "state", "outcome", "error"):
        known[k] = to_str(known.get(k))
    known["id"] = to_id(known.get("id"))
    if known.get("result") is not None:
        known["result"] = decode_payload(known["result"], decode)
    return Dep(**known, extra=extra)


def parse_deps(reply: Any, decode: Union[bool, str] = False) -> Optional[List[Dep]]:
    """ONCE.DEPS' reply: null (no such job) or an array of dependency maps, in the order they were named."""
    if reply is None:
        return None
    return [parse_dep(d, decode) for d in reply]


def parse_list(reply: Any, decode: Union[bool, str]) -> Tuple[str, List[JobInfo]]:
    """ONCE.LIST's reply as ``(next_cursor, jobs)``; the cursor is ``"0"`` at the end."""
    cursor, items = reply
    jobs = [parse_job_info(j, decode) for j in (items or [])]
    return str(to_str(cursor)), [j for j in jobs if j is not None]


def parse_schedules(reply: Any, decode: Union[bool, str]) -> List[Schedule]:
    out = []
    for entry in reply or []:
        if isinstance(entry, Schedule):
            out.append(dataclasses.replace(entry, payload=decode_payload(entry.payload, decode)))
            continue
        m = as_map(entry) or {}
        known = {k: v for k, v in m.items() if k in _SCHEDULE_FIELDS}
        extra = {k: to_str(v) for k, v in m.items() if k not in _SCHEDULE_FIELDS}
        for k in ("name", "spec", "tz", "missed"):
            known[k] = to_str(known.get(k))
        for k in ("next_fire", "last_fire", "retries", "backoff", "lease", "priority"):
            known[k] = to_int(known.get(k))
        known["payload"] = decode_payload(known.get("payload", b""), decode)
        out.append(Schedule(**known, extra=extra))
    return out


def parse_group(reply: Any) -> GroupInfo:
    """One group's map (ONCE.GROUP's reply, an entry of ONCE.GROUPS)."""
    if isinstance(reply, GroupInfo):
        return reply
    m = as_map(reply) or {}
    known = {k: v for k, v in m.items() if k in _GROUP_FIELDS}
    extra = {k: to_str(v) for k, v in m.items() if k not in _GROUP_FIELDS}
    for k in ("ready", "reserved", "concurrency", "rate", "rate_per"):
        if k in known:
            known[k] = to_int(known[k])
    known["name"] = to_id(known.get("name"))
    return GroupInfo(**known, extra=extra)


def parse_groups(reply: Any) -> Tuple[str, List[GroupInfo]]:
    """ONCE.GROUPS' reply as ``(next_cursor, [GroupInfo, ...])``; the cursor is ``"0"`` at the end."""
    cursor, items = reply
    return str(to_str(cursor)), [parse_group(g) for g in (items or [])]


def parse_events(reply: Any) -> List[Event]:
    """ONCE.EVENTS' reply: ``[event_id, event, job_id, attempt, time, error]`` per event, oldest first."""
    out = []
    for e in reply or []:
        if isinstance(e, Event):
            out.append(e)
            continue
        e = list(e) + [None] * (6 - len(e))
        out.append(Event(str(to_str(e[0])), str(to_str(e[1])), None if e[2] is None else to_id(e[2]),
                         to_int(e[3]), to_int(e[4]), to_str(e[5])))
    return out


def parse_bound(value: Any) -> float:
    """A histogram bucket's upper bound in ms (``inf`` / ``+inf`` for the last one)."""
    v = to_str(value)
    if isinstance(v, str) and v.strip().lower() in ("inf", "+inf", "infinity", "+infinity"):
        return math.inf
    return float(v)


def parse_histogram(reply: Any) -> List[Bucket]:
    """ONCE.HISTOGRAM's reply as ``[(upper_bound_ms, cumulative_count), ...]`` (the last bound may be inf)."""
    return [(parse_bound(b), int(c)) for b, c in (reply or [])]


def parse_settings(reply: Any) -> Settings:
    """ONCE.CONFIGURE's reply: the queue's settings (``paused`` among them)."""
    return {k: to_int(v) for k, v in (as_map(reply) or {}).items()}


def buckets_to_counts(buckets: Sequence[Bucket]) -> List[Bucket]:
    """Cumulative ``[(bound, count)]`` -> ``[(bound, count in this bucket)]``."""
    out, prev = [], 0
    for bound, cum in buckets:
        out.append((bound, max(0, cum - prev)))
        prev = cum
    return out


def plain(value: Any) -> Any:
    """A typed result as JSON-ready values: a dataclass as a dict (its ``extra`` fields merged in, after its
    own), tuples as lists, bytes as text (undecodable bytes as \\x escapes)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
               if f.name != "extra" and not f.name.startswith("_")}
        out.update({k: plain(v) for k, v in getattr(value, "extra", {}).items()})
        return out
    if isinstance(value, dict):
        return {to_str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return to_str(value)


def error_text(exc: BaseException, limit: int = 8192) -> str:
    """The text a failed job's NACK carries: ``TypeName: message``, cut to ``limit`` characters."""
    message = str(exc)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
