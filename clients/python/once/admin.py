"""Operating a queue: the commands an operator uses (design.md, "Operating a queue"), with plain, JSON-ready results.

Used by the ``once`` command line and the dashboard (``once web``). ``Admin`` is built on the typed client: each
reply is parsed once, by the parsers of ``once.types`` that ``Once`` uses, and the typed result is turned into
dicts, lists, str, int, float and None only (``once.types.plain``), so it can be printed as JSON as it is.

    import redis
    from once.admin import Admin, queues

    r = redis.Redis()
    for name in queues(r):
        print(name, Admin(r, name).stats())
"""
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import redis

from . import blocking
from .client import Once
from .errors import TYPE_NAME, is_no_permission, naming_wrong_type  # noqa: F401 - importable from here

# Names the command line, the dashboard, the exporter and their tests import from here.
from .server import (  # noqa: F401
    eviction_warning,
    forget_commands,
    has_command,
    has_retry_all,
    info_once,
    queues,
    readable_stats,
    server_eviction_warning,
)
from .types import (  # noqa: F401
    COUNT_FIELDS,
    FLOW_INFO_FIELDS,
    PURGEABLE,
    STATES,
    Bucket,
    GroupInfo,
    Settings,
    as_map,
    buckets_to_counts,
    number,
    parse_bound,
    parse_events,
    parse_group,
    parse_groups,
    parse_histogram,
    parse_settings,
    plain,
    text,
)

TOTAL_FIELDS = ("pushed_total", "reserved_total", "acked_total", "nacked_total", "expired_total",
                "retried_total", "dead_total", "dead_dropped_total")
LATENCY_FIELDS = ("wait_p50_ms", "wait_p99_ms", "run_p50_ms", "run_p99_ms")
EVENT_FIELDS = ("event_id", "event", "job_id", "attempt", "time", "error")
TEXT_FIELDS = {"id", "state", "payload", "last_error", "name", "spec", "tz", "missed", "group", "event", "job_id",
               "error", "event_id"}          # the reply fields that are text, never numbers


def plain_map(reply: Any) -> Optional[Dict[str, Any]]:
    """A map reply (RESP3 map or RESP2 field/value array) as a JSON-ready dict; None stays None."""
    m = as_map(reply)
    return None if m is None else plain(m)


class Admin:
    """One queue, for an operator: every read and action of "Operating a queue" with plain results.

    ``r`` is a redis-py client (either protocol, bytes or decoded replies), ``queue`` the queue key. ``once`` is
    the typed client of the same queue the reads go through.
    """

    def __init__(self, r: Any, queue: str):
        self.once = Once(r, queue)
        self.r = r
        self.queue = queue

    def __repr__(self) -> str:
        return f"Admin(queue={self.queue!r})"

    def _call(self, *args: Any) -> Any:
        with naming_wrong_type(self.r, self.queue):
            return self.r.execute_command(args[0], self.queue, *args[1:])

    # reads -----------------------------------------------------------------------------------------------------

    def stats(self) -> Dict[str, Any]:
        """ONCE.STATS: counts by state, ``paused``, totals, wait/run percentiles, the queue's settings."""
        return plain(self.once.stats())

    def inspect(self, job_id: str) -> Optional[Dict[str, Any]]:
        """ONCE.INSPECT: the job as a dict, or None for an unknown id. The dependency fields (``deps_total``,
        ``deps_left``, ``dependents``, ...) are there only for a job that has dependencies or dependents."""
        info = self.once.inspect(job_id)
        if info is None:
            return None
        out = plain(info)
        for k in FLOW_INFO_FIELDS:
            if out.get(k) is None:
                out.pop(k, None)
        return out

    def deps(self, job_id: str, *, start: Optional[int] = None,
             count: Optional[int] = None) -> Optional[List[Dict[str, Any]]]:
        """ONCE.DEPS: the jobs ``job_id`` waits (or waited) on, each ``{queue, id, state, outcome, result, error}``;
        None for an unknown id."""
        found = self.once.deps(job_id, start=start, count=count)
        return None if found is None else [plain(d) for d in found]

    def list(self, state: str, *, cursor: str = "0", count: Optional[int] = None, payloads: bool = False,
             match: Optional[str] = None) -> Tuple[str, List[Dict[str, Any]]]:
        """ONCE.LIST: one page of the jobs in ``state``: ``(next_cursor, jobs)``; next_cursor is "0" at the end.
        ``match``: only jobs whose id, payload or last error match this glob (see ``Once.list``)."""
        next_cursor, jobs = self.once.list(state, cursor=cursor, count=count, payloads=payloads, match=match)
        out = [plain(j) for j in jobs]
        if not payloads:                   # the reply had none: the parsed job's empty payload is not the job's
            for j in out:
                j.pop("payload", None)
        return next_cursor, out

    def walk(self, state: str, *, count: int = 100, payloads: bool = False, match: Optional[str] = None,
             limit: int = 1_000_000) -> Iterator[Dict[str, Any]]:
        """Every job in ``state``, page by page (at most ``limit`` jobs)."""
        cursor, seen = "0", 0
        while True:
            cursor, jobs = self.list(state, cursor=cursor, count=count, payloads=payloads, match=match)
            for j in jobs:
                yield j
                seen += 1
                if seen >= limit:
                    return
            if cursor == "0":
                return

    def schedules(self) -> List[Dict[str, Any]]:
        """ONCE.SCHEDULES: one dict per schedule."""
        return [plain(s) for s in self.once.schedules()]

    def events(self, *, after: Optional[str] = None, count: Optional[int] = None,
               block_ms: Optional[int] = None) -> List[Dict[str, Any]]:
        """ONCE.EVENTS: events after ``after`` (oldest first), each ``{event_id, event, job_id, attempt, time,
        error}``; [] when there are none (or the wait ran out)."""
        args: List[Any] = ["ONCE.EVENTS"]
        if after is not None:
            args += ["AFTER", after]
        if count is not None:
            args += ["COUNT", int(count)]
        if block_ms is None:
            reply = self._call(*args)
        else:
            args += ["BLOCK", int(block_ms)]
            with naming_wrong_type(self.r, self.queue):
                reply = blocking.call_one(self.r, self.queue, [args[0], self.queue, *args[1:]], int(block_ms))
        return [plain(e) for e in parse_events(reply)]

    def histogram(self, kind: str) -> List[Bucket]:
        """ONCE.HISTOGRAM ``wait`` or ``run``: ``[(upper_bound_ms, cumulative_count), ...]`` (the last bound may be
        ``math.inf``)."""
        return parse_histogram(self._call("ONCE.HISTOGRAM", kind))

    def settings(self) -> Settings:
        """ONCE.CONFIGURE without options: the queue's settings (reading creates no key)."""
        return parse_settings(self._call("ONCE.CONFIGURE"))

    # actions ---------------------------------------------------------------------------------------------------

    def retry(self, ids: Sequence[str]) -> int:
        """ONCE.RETRY queue id ...: dead jobs sent back to ready; how many were dead."""
        return self.once.retry(*ids) if ids else 0

    def retry_all(self) -> int:
        """ONCE.RETRY queue ALL: every dead job back to ready; how many. Raises ``redis.ResponseError`` on a module
        whose RETRY does not take ALL (it would read ALL as a job id)."""
        if not has_retry_all(self.r):
            raise redis.ResponseError("this server's Once module has no ONCE.RETRY queue ALL (a newer module has)")
        return int(self._call("ONCE.RETRY", "ALL"))

    def cancel(self, ids: Sequence[str]) -> int:
        """ONCE.CANCEL: removes jobs in any state but reserved; how many."""
        return self.once.cancel(*ids) if ids else 0

    def purge(self, state: str) -> int:
        """ONCE.PURGE queue ready|delayed|dead: how many jobs were removed."""
        return int(self._call("ONCE.PURGE", state))

    def pause(self) -> bool:
        """ONCE.PAUSE: True if the queue was running and is now paused."""
        return bool(self._call("ONCE.PAUSE"))

    def resume(self) -> bool:
        """ONCE.RESUME: True if the queue was paused and now runs."""
        return bool(self._call("ONCE.RESUME"))

    def configure(self, **options: Any) -> Settings:
        """ONCE.CONFIGURE with options named as keywords (``dead_max=100``, ``events_max=1000``,
        ``rate=(10, 1000)`` for RATE 10 PER 1000): the settings after applying them."""
        args: List[Any] = ["ONCE.CONFIGURE"]
        for name, value in options.items():
            if value is None:
                continue
            token = name.upper().replace("_", "-")
            if isinstance(value, (tuple, list)):
                args += [token, int(value[0]), "PER", int(value[1])]
            else:
                args += [token, int(value)]
        return parse_settings(self._call(*args))

    def group(self, name: Any, *, concurrency: Optional[int] = None, rate: Optional[Tuple[int, int]] = None,
              reset: bool = False) -> GroupInfo:
        """ONCE.GROUP: a group's counts and own limits (sets them with ``concurrency``, ``rate=(n, per_ms)``,
        ``reset=True``; only reads without them)."""
        return self.once.group(name, concurrency=concurrency, rate=rate, reset=reset)

    def groups(self, cursor: str = "0", count: Optional[int] = None) -> Tuple[str, List[GroupInfo]]:
        """ONCE.GROUPS: one page of the named groups, ``(next_cursor, [GroupInfo, ...])``."""
        return self.once.groups(cursor, count)

    def all_groups(self, count: int = 100) -> Iterator[GroupInfo]:
        """Every named group, by name, paging through ONCE.GROUPS."""
        cursor = "0"
        while True:
            cursor, page = self.groups(cursor, count)
            yield from page
            if cursor == "0":
                return
