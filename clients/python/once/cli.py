"""``once``: the command line of the Once job queue (``python -m once`` works too).

    once [--url redis://host:6379/0] COMMAND ...      ($ONCE_URL is the default URL)

Reads (``queues``, ``stats``, ``list``, ``inspect``, ``deps``, ``result``, ``schedules``, ``events``, ``configure``
without options) and ``call`` take ``--json``. Exit codes: 0 done; 1 the server refused (an error reply), the
job/queue was not found, or a wait ended without an outcome; 2 bad usage; 3 the server could not be reached; 130
interrupted.
"""
import argparse
import datetime
import json
import os
import shlex
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import redis

from . import __version__
from .admin import Admin
from .client import Once
from .format import fmt_ms, fmt_rate, fmt_time, short
from .server import has_command, info_once, queues, readable_stats, server_eviction_warning
from .serving import EXIT_CONNECT, EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CliError
from .serving import serve_until_stopped  # noqa: F401 - importable from here, as before it moved
from .types import COUNT_FIELDS, LIST_STATES, PURGEABLE, Result, plain, to_str

DEFAULT_URL = "redis://127.0.0.1:6379/0"


# ---------------------------------------------------------------------------------------------------------------
# output


def _console(stderr: bool = False):
    from rich.console import Console
    width = None
    stream = sys.stderr if stderr else sys.stdout
    if not stream.isatty():
        width = int(os.environ.get("COLUMNS", "0") or 0) or 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def warn(message: str) -> None:
    """One line on stderr, where it does not mix with a table or JSON on stdout."""
    _console(stderr=True).print(f"once: {message}", markup=False, style="yellow")


def warn_eviction(r) -> None:
    """The server's eviction warning (INFO once), if it has one for this user to see."""
    line = server_eviction_warning(r)
    if line:
        warn(f"warning: {line}")


def again(args, *words: Any) -> str:
    """A ``once`` command line to run next, with the --url this one was given (its password masked)."""
    parts = ["once"] + (["--url", _safe_url(args.url)] if args.url_given else []) + [str(w) for w in words]
    return " ".join(shlex.quote(p) for p in parts)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, sort_keys=False) + "\n")
    sys.stdout.flush()


def _table(title: Optional[str], columns: Sequence[str], rows: Sequence[Sequence[Any]], justify_numbers=True):
    from rich.table import Table
    t = Table(title=title, title_justify="left", header_style="bold cyan")
    for c in columns:
        numeric = justify_numbers and c in COUNT_FIELDS + ("schedules", "pushed", "acked", "attempts", "priority",
                                                           "in/s", "out/s", "fail/s")
        t.add_column(c, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        t.add_row(*[("" if v is None else str(v)) for v in row])
    return t


def _kv_table(title: str, mapping: Dict[str, Any], formats: Optional[Dict[str, Any]] = None):
    from rich.table import Table
    from rich.text import Text
    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for k, v in mapping.items():
        f = (formats or {}).get(k)
        shown = f(v) if f and v is not None else ("-" if v is None else str(v))
        t.add_row(k, Text(shown))
    return t


JOB_TIMES = ("created", "due", "lease_deadline", "died", "finished")


# ---------------------------------------------------------------------------------------------------------------
# commands


def cmd_queues(r, args) -> int:
    stats, refused = readable_stats(r, queues(r, match=args.match))
    if refused:
        warn(f"left out the queues this user may not read ({refused})")
    rows = [{"queue": name, **s} for name, s in stats.items()]
    if args.json:
        print_json(rows)
        return EXIT_OK
    con = _console()
    if not rows:
        con.print("no queues")
        return EXIT_OK
    cols = ["queue", "ready", "delayed", "reserved", "dead", "waiting", "paused", "schedules", "pushed", "acked"]
    table_rows = [[q["queue"], q.get("ready", 0), q.get("delayed", 0), q.get("reserved", 0), q.get("dead", 0),
                   q.get("waiting", 0), "yes" if q.get("paused") else "no", q.get("schedules", 0),
                   q.get("pushed_total", 0), q.get("acked_total", 0)] for q in rows]
    con.print(_table(None, cols, table_rows))
    return EXIT_OK


def _require_queue(r, name: str) -> None:
    if not r.exists(name):
        raise CliError(f"no queue {name!r} (no such key)")


def cmd_stats(r, args) -> int:
    _require_queue(r, args.queue)
    s = Admin(r, args.queue).stats()
    warn_eviction(r)
    if args.json:
        print_json(s)
        return EXIT_OK
    formats: Dict[str, Callable[[Any], str]] = {k: fmt_ms for k in s if k.endswith("_ms")}
    formats["paused"] = lambda v: "yes" if v else "no"
    _console().print(_kv_table(f"queue {args.queue}", s, formats))
    return EXIT_OK


def _matching(r, args):
    """LIST ... MATCH: (cursor, jobs) of one page, or of every page with --all. The server examines a bounded
    number of jobs per call, so a page may hold fewer than --count jobs, even none, before the end."""
    once, cursor, jobs = Once(r, args.queue), args.cursor, []
    while True:
        cursor, page = once.list(args.state, cursor=cursor, count=args.count, payloads=args.payloads,
                                 match=args.match)
        jobs += [plain(j) for j in page]
        if cursor == "0" or not args.all:
            break
    if not args.payloads:                  # the reply had none: the parsed job's empty payload is not the job's
        for j in jobs:
            j.pop("payload", None)
    return cursor, jobs


def cmd_list(r, args) -> int:
    _require_queue(r, args.queue)
    a = Admin(r, args.queue)
    if args.match is not None:
        cursor, jobs = _matching(r, args)
    elif args.all:
        jobs = list(a.walk(args.state, count=args.count or 100, payloads=args.payloads))
        cursor = "0"
    else:
        cursor, jobs = a.list(args.state, cursor=args.cursor, count=args.count, payloads=args.payloads)
    if args.json:
        print_json({"cursor": cursor, "jobs": jobs})
        return EXIT_OK
    con = _console()
    when = {"delayed": "due", "reserved": "lease_deadline", "dead": "died", "completed": "finished",
            "cancelled": "finished"}.get(args.state, "created")
    waiting = args.state == "waiting"          # what a waiting job still waits on says more than its attempts
    cols = ["id", "deps_left" if waiting else "attempts", "priority", when, "last_error"]
    cols += ["payload"] if args.payloads else []
    rows = []
    for j in jobs:
        row = [j.get("id"), j.get("deps_left" if waiting else "attempts"), j.get("priority"), fmt_time(j.get(when)),
               short(j.get("last_error"))]
        if args.payloads:
            row.append(short(j.get("payload")))
        rows.append(row)
    table = _table(f"{args.state} jobs of {args.queue}", cols, [[_plain(v) for v in row] for row in rows])
    con.print(table)
    if cursor != "0":
        more = ["list", args.queue, args.state, "--cursor", cursor]
        more += (["--count", args.count] if args.count is not None else []) + (["--payloads"] if args.payloads else [])
        more += ["--match", args.match] if args.match is not None else []
        if args.match is not None:
            con.print(f"{len(jobs)} matching job(s) in this stretch; the search goes on", markup=False)
        con.print(f"more: {again(args, *more)}", markup=False)
    else:
        con.print(f"{len(jobs)} job(s), end of list", markup=False)
    return EXIT_OK


def _payloads(args) -> List[str]:
    if args.file is None:
        return list(args.payloads)
    if args.payloads:
        raise CliError("give payloads or --file, not both", EXIT_USAGE)
    try:
        f = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
    except OSError as e:
        raise CliError(f"cannot read {args.file}: {e.strerror}", EXIT_USAGE) from None
    with f:
        return [line.rstrip("\r\n") for line in f if line.strip()]


def cmd_push(r, args) -> int:
    payloads = _payloads(args)
    if not payloads:
        raise CliError("nothing to push: give payloads, or --file with one payload per line", EXIT_USAGE)
    ids = Once(r, args.queue).push_many(payloads, delay_ms=args.delay, retries=args.retries,
                                        priority=args.priority, group=args.group)
    if args.json:
        print_json({"ids": ids})
    else:
        for i in ids:
            print(i)
    return EXIT_OK


def _plain(v: Any):
    from rich.text import Text
    return Text("" if v is None else str(v))


def cmd_inspect(r, args) -> int:
    _require_queue(r, args.queue)
    job = Admin(r, args.queue).inspect(args.id)
    if job is None:
        if args.json:
            print_json(None)
        raise CliError(f"no job {args.id!r} in queue {args.queue!r}")
    if args.json:
        print_json(job)
        return EXIT_OK
    formats = {k: fmt_time for k in JOB_TIMES}
    formats.update({"backoff": fmt_ms, "lease": fmt_ms})
    con = _console()
    con.print(_kv_table(f"job {args.id} of {args.queue}", job, formats))
    if job.get("deps_total"):
        con.print(f"its dependencies: {again(args, 'deps', args.queue, args.id)}", markup=False)
    return EXIT_OK


def cmd_deps(r, args) -> int:
    _require_queue(r, args.queue)
    deps = Admin(r, args.queue).deps(args.id)
    if deps is None:
        if args.json:
            print_json(None)
        raise CliError(f"no job {args.id!r} in queue {args.queue!r}")
    if args.json:
        print_json(deps)
        return EXIT_OK
    con = _console()
    if not deps:
        con.print(f"job {args.id} of {args.queue} waits on no job", markup=False)
        return EXIT_OK
    rows = [[_plain(d.get("queue")), _plain(d.get("id")), _plain(d.get("state")), _plain(d.get("outcome")),
             _plain(short(d.get("result"))), _plain(short(d.get("error")))] for d in deps]
    con.print(_table(f"job {args.id} of {args.queue} waits on", ["queue", "id", "state", "outcome", "result",
                                                                   "error"], rows))
    outcomes: Dict[str, int] = {}
    for d in deps:
        outcomes[str(d.get("outcome"))] = outcomes.get(str(d.get("outcome")), 0) + 1
    con.print(f"{len(deps)} dependencies: " + ", ".join(f"{n} {o}" for o, n in outcomes.items()), markup=False)
    return EXIT_OK


def _report(args, key: str, n: int, message: str) -> int:
    if args.json:
        print_json({key: n})
    else:
        _console().print(message, markup=False)
    return EXIT_OK


def cmd_retry(r, args) -> int:
    _require_queue(r, args.queue)
    a = Admin(r, args.queue)
    if args.all:
        n = a.retry_all()
        return _report(args, "retried", n, f"retried {n} dead job(s) of {args.queue}")
    n = a.retry(args.ids)
    code = _report(args, "retried", n, f"retried {n} of {len(args.ids)} job(s) (only dead jobs are retried)")
    return code if n else EXIT_FAIL


def cmd_cancel(r, args) -> int:
    _require_queue(r, args.queue)
    n = Admin(r, args.queue).cancel(args.ids)
    note = "" if has_command(r, "ONCE.RESULT") else " (reserved jobs are not cancelled by this server's module)"
    _report(args, "cancelled", n, f"cancelled {n} of {len(args.ids)} job(s){note}")
    return EXIT_OK if n else EXIT_FAIL


def _print_result(args, title: str, outcome: Result) -> None:
    if args.json:
        print_json(plain(outcome))
        return
    _console().print(_kv_table(title, plain(outcome), {"finished": fmt_time}))


def cmd_result(r, args) -> int:
    _require_queue(r, args.queue)
    if args.wait is not None and args.wait <= 0:
        raise CliError("--wait takes a number of seconds above 0", EXIT_USAGE)
    outcome = Once(r, args.queue).result(args.id, wait=args.wait)
    if outcome is None:
        if args.json:
            print_json(None)
        raise CliError(f"no job {args.id!r} in queue {args.queue!r} (a finished job is only kept with KEEP)")
    _print_result(args, f"job {args.id} of {args.queue}", outcome)
    if args.wait is not None and not outcome.done:
        raise CliError(f"job {args.id!r} is still {outcome.state} after {args.wait:g}s")
    return EXIT_OK


def cmd_call(r, args) -> int:
    if args.timeout <= 0:
        raise CliError("--timeout takes a number of milliseconds above 0", EXIT_USAGE)
    outcome = Once(r, args.queue).call(args.payload, timeout=args.timeout / 1000.0, cancel=args.cancel,
                                       id=args.id, keep=args.keep)
    if outcome is None:
        if args.json:
            print_json(None)
        fate = "it was cancelled" if args.cancel else "it stays queued"
        raise CliError(f"no outcome within {args.timeout} ms: {fate}")
    if args.json:
        print_json(plain(outcome))
    elif outcome.ok:
        if outcome.result is not None:
            sys.stdout.write(to_str(outcome.result) + "\n")
            sys.stdout.flush()
    if not outcome.ok:
        why = f": {outcome.error}" if outcome.error else ""
        raise CliError(f"the job ended {outcome.state}{why}")
    return EXIT_OK


def cmd_purge(r, args) -> int:
    _require_queue(r, args.queue)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError(f"purge removes every {args.state} job of {args.queue}: give --yes to confirm",
                           EXIT_USAGE)
        answer = input(f"Remove every {args.state} job of {args.queue}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise CliError("not purged", EXIT_FAIL)
    n = Admin(r, args.queue).purge(args.state)
    return _report(args, "purged", n, f"purged {n} {args.state} job(s) of {args.queue}")


def cmd_pause(r, args) -> int:
    changed = Admin(r, args.queue).pause()      # a queue not made yet is made paused, so the pause holds
    if not r.exists(args.queue):
        raise CliError(f"no queue {args.queue!r}: this server's Once module does not keep a pause on a queue "
                       f"that has no key yet (a newer module does)")
    if args.json:
        print_json({"paused": True, "changed": changed})
    else:
        _console().print(f"paused {args.queue}" if changed else f"{args.queue} was already paused", markup=False)
    return EXIT_OK


def cmd_resume(r, args) -> int:
    _require_queue(r, args.queue)
    changed = Admin(r, args.queue).resume()
    if args.json:
        print_json({"paused": False, "changed": changed})
    else:
        _console().print(f"resumed {args.queue}" if changed else f"{args.queue} was not paused", markup=False)
    return EXIT_OK


def cmd_schedules(r, args) -> int:
    _require_queue(r, args.queue)
    items = Admin(r, args.queue).schedules()
    if args.json:
        print_json(items)
        return EXIT_OK
    con = _console()
    if not items:
        con.print(f"no schedules in {args.queue}", markup=False)
        return EXIT_OK
    rows = [[_plain(s.get("name")), _plain(s.get("spec")), _plain(s.get("tz") or "-"), fmt_time(s.get("next_fire")),
             fmt_time(s.get("last_fire")), _plain(short(s.get("payload"), 40))] for s in items]
    con.print(_table(f"schedules of {args.queue}", ["name", "spec", "tz", "next_fire", "last_fire", "payload"], rows))
    return EXIT_OK


def _print_event(con, args, e: Dict[str, Any]) -> None:
    if args.json:
        print_json(e)
        return
    from rich.text import Text
    line = Text()
    line.append(fmt_time(e.get("time")), style="dim")
    if e.get("event_id") is not None:
        line.append(f"  {e.get('event_id')}")
    line.append("  ")
    style = {"dead": "red", "expire": "yellow", "nack": "yellow", "ack": "green", "drop": "red"}.get(
        str(e.get("event", "")).split(".")[-1], "")
    line.append(f"{e.get('event')}", style=style)
    if e.get("job_id") is not None:
        line.append(f"  {e.get('job_id')}")
    if e.get("attempt") is not None:
        line.append(f"  attempt {e.get('attempt')}")
    if e.get("error"):
        line.append(f"  {e.get('error')}", style="red")
    con.print(line)


def cmd_events(r, args) -> int:
    a = Admin(r, args.queue)
    con = _console()
    after = args.after
    shown = 0
    if args.follow and (args.notifications or not has_command(r, "ONCE.EVENTS")):
        return follow_notifications(r, args, con)     # a queue's first push is worth seeing: no key needed yet
    _require_queue(r, args.queue)
    if not args.follow:
        events = a.events(after=after, count=args.count)
        if args.json:
            print_json(events)
        else:
            for e in events:
                _print_event(con, args, e)
            if not events:
                con.print(f"no events in {args.queue} (is EVENTS-MAX set? "
                          f"{again(args, 'configure', args.queue, '--events-max', 1000)})", markup=False)
        return EXIT_OK
    stop = _stop_flag()
    while not stop["stop"]:
        events = a.events(after=after, count=args.count, block_ms=args.block_ms)
        for e in events:
            _print_event(con, args, e)
            after = e["event_id"]
            shown += 1
            if args.limit and shown >= args.limit:
                return EXIT_OK
    return EXIT_OK


def follow_notifications(r, args, con) -> int:
    """``events --follow`` through the queue key's keyspace notifications (``__keyspace@<db>__:<queue>``, module
    class ``d``): each transition's name as it happens, no job id (the event log of ONCE.EVENTS has those)."""
    db = int(r.connection_pool.connection_kwargs.get("db", 0) or 0)
    try:
        flags = r.config_get("notify-keyspace-events").get("notify-keyspace-events", "")
        flags = flags.decode() if isinstance(flags, bytes) else flags
        if "K" not in flags or ("d" not in flags and "A" not in flags):
            _console(stderr=True).print(f"once: keyspace notifications are off for module events (notify-keyspace-"
                                        f"events is {flags!r}): CONFIG SET notify-keyspace-events Kd",
                                        markup=False, style="yellow")
    except redis.ResponseError:
        pass                                    # CONFIG not allowed to this user: just listen
    ps = r.pubsub(ignore_subscribe_messages=True)
    channel = f"__keyspace@{db}__:{args.queue}"
    ps.subscribe(channel)
    stop = _stop_flag()
    shown = 0
    if not args.json:
        con.print(f"following {channel} (keyspace notifications; Ctrl-C stops)", markup=False, style="dim")
    try:
        while not stop["stop"]:
            m = ps.get_message(timeout=1.0)
            if not m or m.get("type") != "message":
                continue
            name = m["data"].decode() if isinstance(m["data"], bytes) else m["data"]
            _print_event(con, args, {"event_id": None, "event": name, "job_id": None, "attempt": None,
                                     "time": int(time.time() * 1000), "error": None})
            shown += 1
            if args.limit and shown >= args.limit:
                break
    finally:
        ps.close()
    return EXIT_OK


def _stop_flag() -> Dict[str, bool]:
    flag = {"stop": False}

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True
    signal.signal(signal.SIGTERM, handler)
    return flag


def cmd_configure(r, args) -> int:
    options = {k: getattr(args, k) for k in ("retries", "backoff", "lease", "dead_max", "dead_ttl", "events_max",
                                             "keep", "keep_max")}
    if all(v is None for v in options.values()):
        _require_queue(r, args.queue)           # reading makes no key: say a missing queue is missing
    settings = Admin(r, args.queue).configure(**options)
    if args.json:
        print_json(settings)
    else:
        _console().print(_kv_table(f"settings of {args.queue}", settings))
    return EXIT_OK


def top_rows(prev: Optional[Dict], cur: Dict, dt: float) -> List[Dict[str, Any]]:
    rows = []
    for name, s in cur.items():
        p = (prev or {}).get(name)

        def rate(field, p=p, s=s):      # bound now: called in this iteration only
            if p is None or dt <= 0:
                return None
            return max(0.0, (s.get(field, 0) - p.get(field, 0)) / dt)
        fail = None
        if p is not None and dt > 0:
            fail = max(0.0, (s.get("nacked_total", 0) + s.get("expired_total", 0)
                             - p.get("nacked_total", 0) - p.get("expired_total", 0)) / dt)
        rows.append({"queue": name, "ready": s.get("ready", 0), "delayed": s.get("delayed", 0),
                     "reserved": s.get("reserved", 0), "dead": s.get("dead", 0), "waiting": s.get("waiting", 0),
                     "paused": bool(s.get("paused")),
                     "in_per_s": rate("pushed_total"), "out_per_s": rate("acked_total"), "fail_per_s": fail,
                     "wait_p99_ms": s.get("wait_p99_ms"), "run_p99_ms": s.get("run_p99_ms")})
    return rows


def top_table(rows: List[Dict[str, Any]], url: str):
    from rich.text import Text
    cols = ["queue", "ready", "delayed", "reserved", "dead", "waiting", "paused", "in/s", "out/s", "fail/s",
            "wait p99", "run p99"]
    table_rows = []
    for q in rows:
        table_rows.append([Text(q["queue"]), q["ready"], q["delayed"], q["reserved"],
                           Text(str(q["dead"]), style="red" if q["dead"] else ""), q["waiting"],
                           Text("PAUSED", style="bold yellow") if q["paused"] else "",
                           fmt_rate(q["in_per_s"]), fmt_rate(q["out_per_s"]), fmt_rate(q["fail_per_s"]),
                           fmt_ms(q["wait_p99_ms"]), fmt_ms(q["run_p99_ms"])])
    title = f"once top — {_safe_url(url)} — {datetime.datetime.now().strftime('%H:%M:%S')}"
    return _table(title, cols, table_rows)


def cmd_top(r, args) -> int:
    con = _console()
    prev, prev_t = None, None
    n = 0
    stop = _stop_flag()
    warn_eviction(r)
    live = None
    if con.is_terminal and not args.json:
        from rich.live import Live
        live = Live(console=con, auto_refresh=False, screen=False)
        live.start()
    try:
        while not stop["stop"]:
            now = time.monotonic()
            cur, refused = readable_stats(r, queues(r, match=args.match))
            if refused and n == 0:
                warn(f"left out the queues this user may not read ({refused})")
            rows = top_rows(prev, cur, (now - prev_t) if prev_t else 0.0)
            if args.json:
                print_json({"time": int(time.time() * 1000), "queues": rows})
            elif live is not None:
                live.update(top_table(rows, args.url), refresh=True)
            else:
                con.print(top_table(rows, args.url))
            prev, prev_t = cur, now
            n += 1
            if args.iterations and n >= args.iterations:
                break
            end = time.monotonic() + args.interval
            while not stop["stop"] and time.monotonic() < end:
                time.sleep(min(0.1, max(0.0, end - time.monotonic())))
    finally:
        if live is not None:
            live.stop()
    return EXIT_OK


def cmd_web(r, args) -> int:
    try:
        from .web.app import serve
    except ImportError as e:
        raise CliError(f"once web needs the dashboard's packages ({e.name}): pip install 'once-queue[all]'",
                       EXIT_USAGE) from None
    return serve(r, args)


def cmd_exporter(r, args) -> int:
    try:
        from .exporter import serve
    except ImportError as e:
        raise CliError(f"once exporter needs prometheus_client ({e.name}): pip install 'once-queue[all]'",
                       EXIT_USAGE) from None
    return serve(r, args)


def cmd_info(r, args) -> int:
    info = info_once(r)
    if args.json:
        print_json(info)
    else:
        _console().print(_kv_table("INFO once", info))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------
# parser


def _safe_url(url: str) -> str:
    """The URL without its password."""
    try:
        from urllib.parse import urlsplit, urlunsplit
        p = urlsplit(url)
        if p.password:
            netloc = p.netloc.replace(f":{p.password}@", ":***@")
            return urlunsplit((p.scheme, netloc, p.path, p.query, p.fragment))
    except ValueError:
        pass
    return url


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"the server, redis://[user:password@]host:port/db (default $ONCE_URL or {DEFAULT_URL})")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON instead of tables (for scripts)")

    p = argparse.ArgumentParser(prog="once", parents=[common],
                                description="Look at and operate the queues of the Once Redis module.",
                                epilog="exit codes: 0 done, 1 refused or not found, 2 bad usage, 3 cannot connect")
    p.add_argument("--version", action="version", version=f"once {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name, func, help_text):
        sp = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        sp.set_defaults(func=func)
        return sp

    sp = add("queues", cmd_queues, "every queue in the database with its counts (SCAN ... TYPE OnceQueue)")
    sp.add_argument("--match", help="only keys matching this glob pattern")

    sp = add("stats", cmd_stats, "a queue's counts, totals, latency percentiles and settings (ONCE.STATS)")
    sp.add_argument("queue")

    sp = add("list", cmd_list, "one page of the jobs in a state (ONCE.LIST)")
    sp.add_argument("queue")
    sp.add_argument("state", choices=LIST_STATES)
    sp.add_argument("--count", type=int, default=None, help="jobs per page (1-1000; the server's default is 100)")
    sp.add_argument("--cursor", default="0", help="the cursor the previous page printed")
    sp.add_argument("--payloads", action="store_true", help="show payloads too (WITHPAYLOADS)")
    sp.add_argument("--all", action="store_true", help="walk every page")
    sp.add_argument("--match", metavar="PATTERN",
                    help="only jobs whose id, payload or last error match this glob (LIST ... MATCH, on the server; "
                         "a page may hold fewer than --count)")

    sp = add("push", cmd_push, "add jobs (ONCE.BULK: 10,000 per call, in order; prints their ids)")
    sp.add_argument("queue")
    sp.add_argument("payloads", nargs="*", metavar="PAYLOAD")
    sp.add_argument("--file", metavar="FILE", help="one payload per line (blank lines skipped); - reads stdin")
    sp.add_argument("--delay", type=int, metavar="MS", help="ready after this many milliseconds")
    sp.add_argument("--retries", type=int, help="tries after a failure (0: one attempt)")
    sp.add_argument("--priority", type=int, help="higher first (default 0)")
    sp.add_argument("--group", help="the jobs' group (flow control)")

    sp = add("inspect", cmd_inspect, "one job in full (ONCE.INSPECT); exit 1 if there is no such job")
    sp.add_argument("queue")
    sp.add_argument("id")

    sp = add("deps", cmd_deps, "the jobs a job waits (or waited) on, with their state, outcome and result "
                               "(ONCE.DEPS); exit 1 if there is no such job")
    sp.add_argument("queue")
    sp.add_argument("id")

    sp = add("retry", cmd_retry, "send dead jobs back to ready (ONCE.RETRY)")
    sp.add_argument("queue")
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("ids", nargs="*", default=[], metavar="ID")
    g.add_argument("--all", action="store_true", help="every dead job (ONCE.RETRY queue ALL)")

    sp = add("cancel", cmd_cancel, "cancel jobs; a running one finishes as cancelled (ONCE.CANCEL)")
    sp.add_argument("queue")
    sp.add_argument("ids", nargs="+", metavar="ID")

    sp = add("result", cmd_result, "a job's outcome: state, result or error, attempts, finished, progress "
                                   "(ONCE.RESULT); exit 1 if there is no such job")
    sp.add_argument("queue")
    sp.add_argument("id")
    sp.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                    help="wait up to this long for an unfinished job to finish (exit 1 if it has not)")

    sp = add("call", cmd_call, "push a job and wait for its outcome in one round trip (ONCE.CALL); prints the "
                               "result; exit 1 at the timeout or when the job ends dead or cancelled")
    sp.add_argument("queue")
    sp.add_argument("payload")
    sp.add_argument("--timeout", type=int, default=30000, metavar="MS", help="how long to wait (default 30000)")
    sp.add_argument("--cancel", action="store_true", help="cancel the job at the timeout (else it stays queued)")
    sp.add_argument("--id", default=None, help="the job's id (a job with this id still held: no new job)")
    sp.add_argument("--keep", type=int, default=None, metavar="MS",
                    help="keep the finished job this long (ONCE.RESULT reads it; its id is a dedup window)")

    sp = add("purge", cmd_purge, "remove every job in a state (ONCE.PURGE)")
    sp.add_argument("queue")
    sp.add_argument("state", choices=PURGEABLE)
    sp.add_argument("-y", "--yes", action="store_true", help="do not ask")

    sp = add("pause", cmd_pause, "stop serving a queue's jobs; pushes are still accepted (ONCE.PAUSE)")
    sp.add_argument("queue")
    sp = add("resume", cmd_resume, "serve a paused queue again (ONCE.RESUME)")
    sp.add_argument("queue")

    sp = add("schedules", cmd_schedules, "a queue's cron schedules with their next fire (ONCE.SCHEDULES)")
    sp.add_argument("queue")

    sp = add("events", cmd_events, "the queue's event log (ONCE.EVENTS; needs EVENTS-MAX set)")
    sp.add_argument("queue")
    sp.add_argument("-f", "--follow", action="store_true", help="wait for new events until interrupted")
    sp.add_argument("--after", default=None, help="only events after this event id")
    sp.add_argument("--count", type=int, default=None, help="events per read")
    sp.add_argument("--block-ms", type=int, default=5000, help=argparse.SUPPRESS)
    sp.add_argument("--limit", type=int, default=0, help="with --follow: stop after this many events")
    sp.add_argument("--notifications", action="store_true",
                    help="with --follow: listen to the key's keyspace notifications (the default where the module "
                         "has no ONCE.EVENTS); needs notify-keyspace-events Kd")

    sp = add("configure", cmd_configure, "read or change a queue's settings (ONCE.CONFIGURE)")
    sp.add_argument("queue")
    for opt, what in (("retries", "retries of a job without its own"), ("backoff", "backoff ms"),
                      ("lease", "lease ms"), ("dead-max", "most dead jobs kept (0: all)"),
                      ("dead-ttl", "ms a dead job is kept (0: forever)"),
                      ("events-max", "events kept for ONCE.EVENTS (0: none)"),
                      ("keep", "ms a finished job is kept with its outcome (0: not kept)"),
                      ("keep-max", "most finished jobs kept (0: no cap)")):
        sp.add_argument(f"--{opt}", type=int, default=None, help=what)

    sp = add("top", cmd_top, "a live view of every queue: counts, rates in/out, wait/run p99")
    sp.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    sp.add_argument("--iterations", type=int, default=0, help="stop after this many refreshes (0: never)")
    sp.add_argument("--match", help="only keys matching this glob pattern")

    sp = add("info", cmd_info, "the server-wide figures of INFO once")

    sp = add("web", cmd_web, "serve the dashboard (needs once-queue[all])")
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=8080)
    sp.add_argument("--read-only", action="store_true", help="no actions at all")
    sp.add_argument("--allowed-host", action="append", default=[], metavar="HOST[:PORT]",
                    help="a Host name to answer besides the loopback names and --host (repeatable; also "
                         "$ONCE_WEB_ALLOWED_HOSTS, comma-separated)")
    sp.add_argument("--token", default=os.environ.get("ONCE_WEB_TOKEN"),
                    help="actions need this token (default $ONCE_WEB_TOKEN)")
    sp.add_argument("--basic-auth", default=os.environ.get("ONCE_WEB_BASIC_AUTH"), metavar="USER:PASSWORD",
                    help="every page needs HTTP basic auth (default $ONCE_WEB_BASIC_AUTH)")
    sp.add_argument("--interval", type=float, default=2.0, help="seconds between STATS samples for the charts")
    sp.add_argument("--history", type=float, default=600.0, help="seconds of samples kept for the charts")
    sp.add_argument("--match", help="only queues whose keys match this glob pattern")

    sp = add("exporter", cmd_exporter, "serve Prometheus metrics alone (needs once-queue[all])")
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=9808)
    sp.add_argument("--match", help="only queues whose keys match this glob pattern")
    return p


def connect(url: str):
    try:
        r = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
    except ValueError as e:
        raise CliError(f"bad --url {_safe_url(url)!r}: {e}", EXIT_USAGE) from None
    return r


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.url_given = getattr(args, "url", None) is not None
    args.url = getattr(args, "url", None) or os.environ.get("ONCE_URL") or DEFAULT_URL
    args.json = getattr(args, "json", False)
    if getattr(args, "count", None) is not None and args.count < 1:
        parser.error("--count must be at least 1")
    r = None
    try:
        r = connect(args.url)
        return args.func(r, args)
    except CliError as e:
        _console(stderr=True).print(f"once: {e}", markup=False, style="red")
        return e.code
    except redis.AuthenticationError as e:
        _console(stderr=True).print(f"once: {_safe_url(args.url)}: {e}", markup=False, style="red")
        return EXIT_CONNECT
    except (redis.ConnectionError, redis.TimeoutError) as e:
        _console(stderr=True).print(f"once: cannot reach {_safe_url(args.url)}: {e}", markup=False, style="red")
        return EXIT_CONNECT
    except redis.ResponseError as e:
        msg = str(e)
        if msg.lower().startswith("unknown command"):
            msg += " (this server's Once module is older than this command)"
        _console(stderr=True).print(f"once: {msg}", markup=False, style="red")
        return EXIT_FAIL
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    finally:
        if r is not None:
            r.close()


if __name__ == "__main__":
    sys.exit(main())
