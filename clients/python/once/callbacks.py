"""redis-py response callbacks for the ONCE.* commands, so that they return ``Once``'s typed values wherever they
are sent: ``execute_command``, a pipeline, a transaction.

    import redis, once

    r = once.register(redis.Redis())
    with r.pipeline() as pipe:
        pipe.execute_command("ONCE.STATS", "emails")
        pipe.execute_command("ONCE.INSPECT", "emails", job_id)
        stats, job = pipe.execute()        # a once.Stats and a once.JobInfo (or None)

This is what redis-py's own modules (JSON, search) do. Payloads come back as bytes, as ``Once`` gives them by
default. ``Once`` on a registered client works as on any other: its parsers take a reply parsed already as it is.
ONCE.RESERVE is left as the server sends it: its reply's shape depends on WITHACK and ALSO, which a callback does
not see, and a worker's RESERVE does not belong in a pipeline.
"""
from typing import Any, Callable, Dict, List, Optional

from .types import (
    Dep,
    GroupInfo,
    JobId,
    JobInfo,
    Schedule,
    parse_deps,
    parse_events,
    parse_group,
    parse_groups,
    parse_histogram,
    parse_job_info,
    parse_list,
    parse_result,
    parse_schedules,
    parse_settings,
    parse_stats,
    to_id,
    to_int,
)


def _inspect(reply: Any) -> Optional[JobInfo]:
    return parse_job_info(reply, False)


def _list(reply: Any) -> Any:
    return parse_list(reply, False)


def _schedules(reply: Any) -> List[Schedule]:
    return parse_schedules(reply, False)


def _ids(reply: Any) -> List[JobId]:
    return [to_id(i) for i in reply]


def _group(reply: Any) -> GroupInfo:
    return parse_group(reply)


def _deps(reply: Any) -> Optional[List[Dep]]:
    return parse_deps(reply, False)


PARSERS: Dict[str, Callable[[Any], Any]] = {
    "ONCE.PUSH": to_id,
    "ONCE.BULK": _ids,
    "ONCE.ADOPT": int,
    "ONCE.ACK": int,
    "ONCE.NACK": bool,
    "ONCE.EXTEND": to_int,
    "ONCE.RETRY": int,
    "ONCE.CANCEL": int,
    "ONCE.PURGE": int,
    "ONCE.PAUSE": bool,
    "ONCE.RESUME": bool,
    "ONCE.INSPECT": _inspect,
    "ONCE.STATS": parse_stats,
    "ONCE.LIST": _list,
    "ONCE.SCHEDULE": int,
    "ONCE.UNSCHEDULE": bool,
    "ONCE.SCHEDULES": _schedules,
    "ONCE.EVENTS": parse_events,
    "ONCE.HISTOGRAM": parse_histogram,
    "ONCE.CONFIGURE": parse_settings,
    "ONCE.GROUP": _group,
    "ONCE.GROUPS": parse_groups,
    "ONCE.RESULT": parse_result,
    "ONCE.CALL": parse_result,
    "ONCE.PROGRESS": bool,
    "ONCE.AFTER": int,
    "ONCE.DEPS": _deps,
}


def _callback(parse: Callable[[Any], Any]) -> Callable[..., Any]:
    def callback(response: Any, **options: Any) -> Any:      # options: the command's, which redis-py passes on
        return parse(response)
    return callback


def register(client: Any) -> Any:
    """Sets the ONCE.* response callbacks on ``client`` (a ``redis.Redis`` or ``RedisCluster``, either protocol;
    pipelines made from it after this inherit them) and returns it."""
    for command, parse in PARSERS.items():
        client.set_response_callback(command, _callback(parse))
    return route_by_first_key(client)


# Commands whose keys all share the first key's slot: the server refuses CROSSSLOT otherwise (AFTER's queues,
# RESERVE's ALSO queues). It marks them `movablekeys`, for which redis-py's RedisCluster asks the server with
# COMMAND GETKEYS — one more round trip — before every call; the first key routes them just as well.
FIRST_KEY_ROUTES = ("once.push", "once.call", "once.after", "once.reserve")


def route_by_first_key(client: Any) -> Any:
    """Lets a ``RedisCluster`` route ``FIRST_KEY_ROUTES`` by their first key, without a COMMAND GETKEYS per call.
    Any other client (or a cluster client whose command table is not loaded yet) is left as it is."""
    table = getattr(getattr(client, "commands_parser", None), "commands", None)
    if not isinstance(table, dict):
        return client
    for name in FIRST_KEY_ROUTES:
        info = table.get(name)
        if not isinstance(info, dict):
            continue
        flags = [f for f in info.get("flags", ()) if f not in ("movablekeys", b"movablekeys")]
        table[name] = {**info, "flags": flags, "first_key_pos": 1, "last_key_pos": 1, "step_count": 1}
    return client
