"""What a Redis server has and says about its Once queues: the queue keys, INFO once, what its module can do.

A leaf of the package (it imports only the reply parsers, ``errors`` and ``blocking``), shared by the command line,
the dashboard, the exporter and the worker.
"""
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import redis

from . import blocking
from .errors import TYPE_NAME, is_no_permission
from .types import number, parse_stats, plain, to_str


def queues(r: Any, match: Optional[str] = None, count: int = 1000) -> List[str]:
    """Every queue key in the client's database (``SCAN 0 TYPE OnceQueue``), sorted by name."""
    found: Set[str] = set()
    cursor = 0
    kwargs: Dict[str, Any] = {"count": count, "_type": TYPE_NAME}
    if match:
        kwargs["match"] = match
    for _ in range(1_000_000):                     # bounded: SCAN ends when the cursor comes back to 0
        cursor, keys = r.scan(cursor=cursor, **kwargs)
        found.update(str(to_str(k)) for k in keys)
        if int(cursor) == 0:
            break
    return sorted(found)


def info_once(r: Any) -> Dict[str, Any]:
    """INFO once as a dict of numbers (``once_queues``, ``once_timer_ticks``, ...)."""
    raw = r.execute_command("INFO", "once")
    if isinstance(raw, dict):
        return {str(to_str(k)): number(v) for k, v in raw.items()}
    out: Dict[str, Any] = {}
    for line in str(to_str(raw)).splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        out[k] = number(v)
    return out


def readable_stats(r: Any, names: Sequence[str]) -> Tuple[Dict[str, Dict[str, Any]], Optional[str]]:
    """ONCE.STATS of each queue in one pipeline, as plain dicts, leaving out those this Redis user may not read (a
    NOPERM on one key must not fail the others): (stats by name, the server's NOPERM message when some were left
    out)."""
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
            stats[n] = plain(parse_stats(s))
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


ProbeKey = Tuple[int, str]


class _Probes:
    """What the server has, per server and command, forgotten after a minute (a server may load a newer module)."""

    TTL = 60.0

    def __init__(self) -> None:
        self._seen: Dict[ProbeKey, Tuple[bool, float]] = {}

    def get(self, key: ProbeKey) -> Optional[bool]:
        item = self._seen.get(key)
        if item is None or time.monotonic() - item[1] >= self.TTL:
            return None
        return item[0]

    def put(self, key: ProbeKey, value: bool) -> bool:
        self._seen[key] = (value, time.monotonic())
        return value

    def clear(self) -> None:
        self._seen.clear()


_COMMANDS = _Probes()


def _server_key(r: Any, what: str) -> ProbeKey:
    kw = r.connection_pool.connection_kwargs
    return hash((kw.get("host"), kw.get("port"), kw.get("path"))), what


def has_command(r: Any, name: str) -> bool:
    """Whether the server knows command ``name`` (``COMMAND INFO``), asked once per server and name."""
    key = _server_key(r, name.lower())
    known = _COMMANDS.get(key)
    if known is not None:
        return known
    try:
        reply = _raw(r, "COMMAND", "INFO", name)
    except redis.ResponseError:        # a server without COMMAND INFO: assume it has it, the call will tell
        return _COMMANDS.put(key, True)
    if isinstance(reply, dict):
        return _COMMANDS.put(key, any(v for v in reply.values()))
    return _COMMANDS.put(key, bool(reply) and reply[0] is not None)


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
    key = _server_key(r, "once.retry all")
    known = _COMMANDS.get(key)
    if known is not None:
        return known
    try:
        docs = _raw(r, "COMMAND", "DOCS", "ONCE.RETRY")
    except redis.ResponseError:        # no COMMAND DOCS (an old server): assume the command knows ALL
        return _COMMANDS.put(key, True)
    return _COMMANDS.put(key, any(str(to_str(x)).upper() == "ALL" for x in _flat(docs)
                                  if isinstance(x, (bytes, str))))


def forget_commands() -> None:
    """Forget what has_command learnt (a newer module may have been loaded)."""
    _COMMANDS.clear()
