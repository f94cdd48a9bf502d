"""Helpers for the schedule tests (test_schedule.py); no fixtures here: those live in conftest.py.

Jobs pushed by a schedule have the id `name@<fire unix ms>`. A queue refuses a second job with an id that is still
live, so a repeated tick could hide behind the first job. `drain` therefore reserves *and acknowledges* every ready
job: once acked an id is free again, and a tick fired twice shows up as two collected jobs with the same id.
"""
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from helpers import as_map, server_ms


def now_ms():
    """This machine's clock in unix ms (the servers run here, so it is their clock too)."""
    return time.time_ns() // 1_000_000


def fire_of(job_id, name="s"):
    """The fire time (unix ms) in a schedule job id `name@<ms>`."""
    prefix = f"{name}@"
    assert job_id.startswith(prefix), f"{job_id!r} is not a job of schedule {name!r}"
    tail = job_id[len(prefix):]
    assert tail.isdigit(), f"{job_id!r}: no fire ms after '@'"
    return int(tail)


def drain(r, queue):
    """Reserves every ready job of `queue` and ACKs them; returns [(id, payload)] in RESERVE order."""
    got = r.execute_command("ONCE.RESERVE", queue, "COUNT", 10000, "LEASE", 600000) or []
    if got:
        ids = [g[0] for g in got]
        assert r.execute_command("ONCE.ACK", queue, *ids) == len(ids)
    return [(g[0], g[1]) for g in got]


def collect(r, queue, seconds, interval=0.03, into=None):
    """Drains `queue` every `interval` s for `seconds`; returns (and appends to `into`) the jobs in order."""
    out = [] if into is None else into
    end = time.monotonic() + seconds
    while True:
        out.extend(drain(r, queue))
        if time.monotonic() >= end:
            return out
        time.sleep(interval)


def sleep_until_server_ms(r, target):
    """Sleeps until the server's clock reaches `target` (unix ms)."""
    while True:
        left = target - server_ms(r)
        if left <= 0:
            return
        time.sleep(min(left, 50) / 1000)


def sleep_until_ms(target):
    while True:
        left = target - now_ms()
        if left <= 0:
            return
        time.sleep(min(left, 50) / 1000)


def schedules_of(r, queue):
    """ONCE.SCHEDULES as {name: fields}."""
    return {m["name"]: m for m in (as_map(s) for s in (r.execute_command("ONCE.SCHEDULES", queue) or []))}


def assert_unique(ids, what="job ids"):
    dup = sorted({i for i in ids if ids.count(i) > 1})
    assert not dup, f"{what} repeat (a tick fired twice): {dup}"


def gaps(fires):
    return [b - a for a, b in zip(fires, fires[1:])]


def next_local_time(after_ms, zone, hour, minute, weekdays=None):
    """The first instant strictly after `after_ms` whose wall-clock time in `zone` is hour:minute:00 on one of
    `weekdays` (Python numbering, Monday = 0; None = any day), the way cron reads a daily spec: a wall time that
    does not exist that day (clocks going forward) is skipped, a repeated one is taken at its first occurrence."""
    z = ZoneInfo(zone)
    today = datetime.fromtimestamp(after_ms / 1000, timezone.utc).astimezone(z).date()
    for d in range(-1, 15):
        day = today + timedelta(days=d)
        if weekdays is not None and day.weekday() not in weekdays:
            continue
        naive = datetime(day.year, day.month, day.day, hour, minute)
        aware = naive.replace(tzinfo=z, fold=0)
        if aware.astimezone(timezone.utc).astimezone(z).replace(tzinfo=None) != naive:
            continue  # does not exist on that day
        ms = int(aware.timestamp() * 1000)
        if ms > after_ms:
            return ms
    raise AssertionError("no local time found")
