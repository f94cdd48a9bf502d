"""Operating a queue: the commands an operator uses (design.md, "Operating a queue"), with plain, JSON-ready results.

Used by the ``once`` command line, the dashboard (``once web``) and the Prometheus exporter. Every result is made of
dicts, lists, str, int, float and None only, so it can be printed as JSON as it is.

    import redis
    from once.admin import Admin, queues

    r = redis.Redis()
    for name in queues(r):
        print(name, Admin(r, name).stats())
"""
import math
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import redis

from . import blocking
from .errors import TYPE_NAME, is_no_permission, naming_wrong_type
from .types import GroupInfo, parse_group, parse_groups

STATES = ("ready", "delayed", "reserved", "dead")
PURGEABLE = ("ready", "delayed", "dead")
COUNT_FIELDS = ("ready", "delayed", "reserved", "dead")
TOTAL_FIELDS = ("pushed_total", "reserved_total", "acked_total", "nacked_total", "expired_total",
                "retried_total", "dead_total", "dead_dropped_total")
LATENCY_FIELDS = ("wait_p50_ms", "wait_p99_ms", "run_p50_ms", "run_p99_ms")
EVENT_FIELDS = ("event_id", "event", "job_id", "attempt", "time", "error")
TEXT_FIELDS = {"id", "state", "payload", "last_error", "name", "spec", "tz", "missed", "group", "event", "job_id",
               "error", "event_id"}


def text(value: Any) -> Any:
    """bytes -> str (UTF-8, undecodable bytes as \\x escapes); anything else unchanged."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return value


def number(value: Any) -> Any:
    """A reply value as int or float where it is one (RESP integers, doubles, or their text); else as text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value
    s = text(value)
    if isinstance(s, str):
        try:
            return int(s)
        except ValueError:
            pass
        try:
            f = float(s)
            return int(f) if f.is_integer() and "." not in s and "e" not in s.lower() else f
        except ValueError:
            return s
    return s


def as_map(reply: Any) -> Optional[Dict[str, Any]]:
    """A RESP3 map or a RESP2 flat field/value array as a dict with str keys; None stays None."""
    if reply is None:
        return None
    if isinstance(reply, dict):
        return {text(k): v for k, v in reply.items()}
    if not isinstance(reply, (list, tuple)) or len(reply) % 2:
        raise ValueError(f"expected a map reply, got {reply!r:.200}")
    return {text(reply[i]): reply[i + 1] for i in range(0, len(reply), 2)}


def plain_map(reply: Any) -> Optional[Dict[str, Any]]:
    """A map reply with its values made plain: text fields as str, the others as numbers (or nested maps)."""
    m = as_map(reply)
    if m is None:
        return None
    out: Dict[str, Any] = {}
    for k, v in m.items():
        if isinstance(v, (dict, list, tuple)) and k not in TEXT_FIELDS:
            try:
                out[k] = plain_map(v)
            except ValueError:
                out[k] = [number(x) for x in v]
        elif k in TEXT_FIELDS:
            out[k] = text(v)
        else:
            out[k] = number(v)
    return out


def parse_bound(value: Any) -> float:
    """A histogram bucket's upper bound in ms (``inf`` / ``+inf`` for the last one)."""
    v = text(value)
    if isinstance(v, str) and v.strip().lower() in ("inf", "+inf", "infinity", "+infinity"):
        return math.inf
    return float(v)


def queues(r: Any, match: Optional[str] = None, count: int = 1000) -> List[str]:
    """Every queue key in the client's database (``SCAN 0 TYPE OnceQueue``), sorted by name."""
    found = set()
    cursor = 0
    kwargs: Dict[str, Any] = {"count": count, "_type": TYPE_NAME}
    if match:
        kwargs["match"] = match
    for _ in range(1_000_000):                     # bounded: SCAN ends when the cursor comes back to 0
        cursor, keys = r.scan(cursor=cursor, **kwargs)
        found.update(text(k) for k in keys)
        if int(cursor) == 0:
            break
    return sorted(found)


def info_once(r: Any) -> Dict[str, Any]:
    """INFO once as a dict of numbers (``once_queues``, ``once_timer_ticks``, ...)."""
    raw = r.execute_command("INFO", "once")
    if isinstance(raw, dict):
        return {text(k): number(v) for k, v in raw.items()}
    out: Dict[str, Any] = {}
    for line in text(raw).splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        out[k] = number(v)
    return out


def readable_stats(r: Any, names: Sequence[str]) -> Tuple[Dict[str, Dict[str, Any]], Optional[str]]:
    """ONCE.STATS of each queue in one pipeline, leaving out those this Redis user may not read (a NOPERM on one key
    must not fail the others): (stats by name, the server's NOPERM message when some were left out)."""
    pipe = r.pipeline(transaction=False)
    for n in names:
        pipe.execute_command("ONCE.STATS", n)
    stats: Dict[str, Dict[str, Any]] = {}
    refused = None
    for n, s in zip(names, pipe.execute(raise_on_error=False)):
        if is_no_permission(s):
            refused = refused or str(s)
        elif isinstance(s, Exception):
            raise s
        else:
            stats[n] = plain_map(s) or {}
    return stats, refused


def eviction_warning(info: Dict[str, Any]) -> Optional[str]:
    """One line when INFO once says the server's eviction policy can drop whole queues, or that it dropped some;
    None when neither (or INFO lacks the fields: a module without them)."""
    def field(name: str) -> Any:
        return info.get("once_" + name, info.get(name))
    risk, evicted, policy, jobs = (field("eviction_risk"), field("evicted_queues"), field("eviction_policy"),
                                   field("evicted_jobs"))
    parts = []
    if risk == 1:
        parts.append(f"maxmemory-policy is {policy or 'an allkeys-* policy'}: the server may evict whole queues "
                     f"with every job in them; set maxmemory-policy noeviction")
    if isinstance(evicted, int) and evicted > 0:
        parts.append(f"{evicted} queue(s) evicted since the server started"
                     + (f" ({jobs} jobs)" if isinstance(jobs, int) else ""))
    return "; ".join(parts) or None


def server_eviction_warning(r: Any) -> Optional[str]:
    """``eviction_warning`` of the server behind ``r``; None when this user may not run INFO."""
    try:
        return eviction_warning(info_once(r))
    except redis.ResponseError:
        return None


class _Probes(dict):
    """What the server has, per server and command, forgotten after a minute (a server may load a newer module)."""

    TTL = 60.0

    def __contains__(self, key):
        item = dict.get(self, key)
        return item is not None and time.monotonic() - item[1] < self.TTL

    def __getitem__(self, key):
        return dict.__getitem__(self, key)[0]

    def __setitem__(self, key, value):
        dict.__setitem__(self, key, (value, time.monotonic()))


_COMMANDS: Dict[Tuple[int, str], bool] = _Probes()


def has_command(r: Any, name: str) -> bool:
    """Whether the server knows command ``name`` (``COMMAND INFO``), asked once per server and name."""
    kw = r.connection_pool.connection_kwargs
    key = (hash((kw.get("host"), kw.get("port"), kw.get("path"))), name.lower())
    if key not in _COMMANDS:
        try:
            reply = _raw(r, "COMMAND", "INFO", name)
        except Exception:      # noqa: BLE001 - a server without COMMAND INFO: assume it has it, the call will tell
            reply = [True]
        if isinstance(reply, dict):
            ok = any(v for v in reply.values())
        else:
            ok = bool(reply) and reply[0] is not None
        _COMMANDS[key] = ok
    return _COMMANDS[key]


def _raw(r: Any, *args: Any) -> Any:
    """A command's reply as the server sent it, past redis-py's reply callbacks (its COMMAND INFO callback fails on
    the nil entry of an unknown command)."""
    pool = r.connection_pool
    conn = blocking.take_connection(pool, args[0])
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        pool.release(conn)


def _flat(reply: Any) -> Iterator[Any]:
    if isinstance(reply, dict):
        reply = [x for kv in reply.items() for x in kv]
    if isinstance(reply, (list, tuple)):
        for x in reply:
            yield from _flat(x)
    else:
        yield reply


def has_retry_all(r: Any) -> bool:
    """Whether the server's ONCE.RETRY takes ``ALL`` (its COMMAND DOCS name the token). An older module would read
    ALL as a job id and retry nothing."""
    kw = r.connection_pool.connection_kwargs
    key = (hash((kw.get("host"), kw.get("port"), kw.get("path"))), "once.retry all")
    if key not in _COMMANDS:
        try:
            docs = _raw(r, "COMMAND", "DOCS", "ONCE.RETRY")
            _COMMANDS[key] = any(text(x).upper() == "ALL" for x in _flat(docs) if isinstance(x, (bytes, str)))
        except Exception:  # noqa: BLE001 - no COMMAND DOCS (old server): assume the command knows
            _COMMANDS[key] = True
    return _COMMANDS[key]


def forget_commands() -> None:
    """Forget what has_command learnt (a newer module may have been loaded)."""
    _COMMANDS.clear()


class Admin:
    """One queue, for an operator: every read and action of "Operating a queue" with plain results.

    ``r`` is a redis-py client (either protocol, bytes or decoded replies), ``queue`` the queue key.
    """

    def __init__(self, r: Any, queue: str):
        if not queue:
            raise ValueError("queue name must not be empty")
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
        return plain_map(self._call("ONCE.STATS")) or {}

    def inspect(self, job_id: str) -> Optional[Dict[str, Any]]:
        """ONCE.INSPECT: the job as a dict, or None for an unknown id."""
        return plain_map(self._call("ONCE.INSPECT", job_id))

    def list(self, state: str, *, cursor: str = "0", count: Optional[int] = None,
             payloads: bool = False) -> Tuple[str, List[Dict[str, Any]]]:
        """ONCE.LIST: one page of the jobs in ``state``: ``(next_cursor, jobs)``; next_cursor is "0" at the end."""
        args: List[Any] = ["ONCE.LIST", state]
        if cursor not in (None, "", "0", 0):
            args += ["CURSOR", cursor]
        if count is not None:
            args += ["COUNT", int(count)]
        if payloads:
            args.append("WITHPAYLOADS")
        reply = self._call(*args)
        next_cursor, jobs = reply[0], reply[1]
        return str(text(next_cursor)), [plain_map(j) for j in (jobs or [])]

    def walk(self, state: str, *, count: int = 100, payloads: bool = False, limit: int = 1_000_000) -> Iterator[Dict]:
        """Every job in ``state``, page by page (at most ``limit`` jobs)."""
        cursor, seen = "0", 0
        while True:
            cursor, jobs = self.list(state, cursor=cursor, count=count, payloads=payloads)
            for j in jobs:
                yield j
                seen += 1
                if seen >= limit:
                    return
            if cursor == "0":
                return

    def schedules(self) -> List[Dict[str, Any]]:
        """ONCE.SCHEDULES: one dict per schedule."""
        return [plain_map(s) for s in (self._call("ONCE.SCHEDULES") or [])]

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
                reply = blocking.call_one(self.r, self.queue, [args[0], self.queue] + args[1:], int(block_ms))
        out = []
        for e in reply or []:
            e = list(e) + [None] * (len(EVENT_FIELDS) - len(e))
            out.append({"event_id": str(text(e[0])), "event": text(e[1]), "job_id": text(e[2]),
                        "attempt": number(e[3]), "time": number(e[4]), "error": text(e[5])})
        return out

    def histogram(self, kind: str) -> List[Tuple[float, int]]:
        """ONCE.HISTOGRAM ``wait`` or ``run``: ``[(upper_bound_ms, cumulative_count), ...]`` (the last bound may be
        ``math.inf``)."""
        return parse_histogram(self._call("ONCE.HISTOGRAM", kind))

    def settings(self) -> Dict[str, Any]:
        """ONCE.CONFIGURE without options: the queue's settings (reading creates no key)."""
        return plain_map(self._call("ONCE.CONFIGURE")) or {}

    # actions ---------------------------------------------------------------------------------------------------

    def retry(self, ids: Sequence[str]) -> int:
        """ONCE.RETRY queue id ...: dead jobs sent back to ready; how many were dead."""
        return int(self._call("ONCE.RETRY", *ids)) if ids else 0

    def retry_all(self) -> int:
        """ONCE.RETRY queue ALL: every dead job back to ready; how many. Raises ``redis.ResponseError`` on a module
        whose RETRY does not take ALL (it would read ALL as a job id)."""
        if not has_retry_all(self.r):
            raise redis.ResponseError("this server's Once module has no ONCE.RETRY queue ALL (a newer module has)")
        return int(self._call("ONCE.RETRY", "ALL"))

    def cancel(self, ids: Sequence[str]) -> int:
        """ONCE.CANCEL: removes jobs in any state but reserved; how many."""
        return int(self._call("ONCE.CANCEL", *ids)) if ids else 0

    def purge(self, state: str) -> int:
        """ONCE.PURGE queue ready|delayed|dead: how many jobs were removed."""
        return int(self._call("ONCE.PURGE", state))

    def pause(self) -> bool:
        """ONCE.PAUSE: True if the queue was running and is now paused."""
        return bool(self._call("ONCE.PAUSE"))

    def resume(self) -> bool:
        """ONCE.RESUME: True if the queue was paused and now runs."""
        return bool(self._call("ONCE.RESUME"))

    def configure(self, **options: Any) -> Dict[str, Any]:
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
        return plain_map(self._call(*args)) or {}

    def group(self, name: Any, *, concurrency: Optional[int] = None, rate: Optional[Tuple[int, int]] = None,
              reset: bool = False) -> GroupInfo:
        """ONCE.GROUP: a group's counts and own limits (sets them with ``concurrency``, ``rate=(n, per_ms)``,
        ``reset=True``; only reads without them)."""
        from .client import group_args
        args = group_args(self.queue, name, concurrency, rate, reset)
        return parse_group(self.r.execute_command(*args))

    def groups(self, cursor: str = "0", count: Optional[int] = None) -> Tuple[str, List[GroupInfo]]:
        """ONCE.GROUPS: one page of the named groups, ``(next_cursor, [GroupInfo, ...])``."""
        args: List[Any] = ["ONCE.GROUPS", "CURSOR", cursor] + (["COUNT", int(count)] if count is not None else [])
        return parse_groups(self._call(*args))

    def all_groups(self, count: int = 100) -> Iterator[GroupInfo]:
        """Every named group, by name, paging through ONCE.GROUPS."""
        cursor = "0"
        while True:
            cursor, page = self.groups(cursor, count)
            yield from page
            if cursor == "0":
                return


def parse_histogram(reply: Any) -> List[Tuple[float, int]]:
    """ONCE.HISTOGRAM's reply as ``[(upper_bound_ms, cumulative_count), ...]``."""
    return [(parse_bound(b), int(number(c))) for b, c in (reply or [])]


def buckets_to_counts(buckets: Sequence[Tuple[float, int]]) -> List[Tuple[float, int]]:
    """Cumulative ``[(bound, count)]`` -> ``[(bound, count in this bucket)]``."""
    out, prev = [], 0
    for bound, cum in buckets:
        out.append((bound, max(0, cum - prev)))
        prev = cum
    return out
