"""Cron schedules (issue 5): ONCE.SCHEDULE / UNSCHEDULE / SCHEDULES against real servers (redis 7.0, valkey 9.1).

Each tick of a schedule pushes one job with id `name@<fire unix ms>`. The tests read fire times from those ids and
collect jobs with `schedule_helpers.drain`, which reserves and ACKs them: an acked id is free again, so a tick that
fired twice would show as a repeated id instead of hiding behind the queue's refusal of a live id.

Timing: a tick more than 1 s late is "missed" (MISSED once: one catch-up job for the latest missed tick; skip: none).
The restart test computes every tick from the next_fire the server replied, so it does not depend on luck.
"""
import time

import pytest

from durability_helpers import attach_replica, digest, digest_value, module_trouble, shutdown, wait_in_sync
from helpers import RawClient, as_map, inspect, keys_in_order, server_ms, stats, wait_until
from schedule_helpers import (assert_unique, collect, drain, fire_of, gaps, next_local_time, now_ms, schedules_of,
                              sleep_until_ms, sleep_until_server_ms)

SCHEDULE_FIELDS = ["name", "spec", "tz", "next_fire", "last_fire", "payload", "retries", "backoff", "lease",
                   "priority", "missed"]
YEARLY = "0 0 1 1 *"  # does not fire during a test


@pytest.fixture
def q(r, key):
    """The test's queue key; deleted afterwards so that a failed test leaves no schedule firing on the server."""
    yield key
    r.delete(key)


def schedule(r, queue, name, spec, payload, *opts):
    return r.execute_command("ONCE.SCHEDULE", queue, name, spec, payload, *opts)


def pushed(r, queue):
    return stats(r, queue)["pushed_total"]


# ---- cadence -----------------------------------------------------------------------------------------------------

def test_every_100ms_for_2s_gives_20_jobs_100ms_apart(r, q):
    before = server_ms(r)
    first = schedule(r, q, "s", "@every 100ms", "payload")
    after = server_ms(r)
    assert before + 100 <= first <= after + 100, "the first tick of @every 100ms is 100 ms after the SCHEDULE"
    created = first - 100
    sleep_until_server_ms(r, created + 2000 + 40)   # the 2 s window, plus a little for the last tick's timer
    count = pushed(r, q)
    listed = schedules_of(r, q)["s"]
    assert r.execute_command("ONCE.UNSCHEDULE", q, "s") == 1
    assert 19 <= count <= 21, f"@every 100ms pushed {count} jobs in 2 s"

    jobs = drain(r, q)
    total = pushed(r, q)
    ids = [j[0] for j in jobs]
    assert len(jobs) == total, f"RESERVE found {len(jobs)} jobs, STATS says {total} pushed"
    assert_unique(ids)
    assert all(p == "payload" for _, p in jobs)
    fires = [fire_of(i) for i in ids]
    assert fires[0] == first, "the first job is the tick SCHEDULE announced"
    assert gaps(fires) == [100] * (len(fires) - 1), f"fire times not 100 ms apart: {fires}"
    # SCHEDULES as read during the run: last_fire is a tick that fired, next_fire the tick after it
    assert listed["last_fire"] in fires
    assert listed["next_fire"] == listed["last_fire"] + 100


def test_six_field_cron_fires_every_whole_second(r, q):
    t0 = server_ms(r)
    first = schedule(r, q, "s", "*/1 * * * * *", "sec")
    assert first % 1000 == 0 and t0 < first <= server_ms(r) + 1000, first
    sleep_until_server_ms(r, t0 + 3200)
    assert r.execute_command("ONCE.UNSCHEDULE", q, "s") == 1
    jobs = drain(r, q)
    fires = [fire_of(i) for i, _ in jobs]
    assert 3 <= len(fires) <= 4, f"*/1 * * * * * fired {len(fires)} times in 3.2 s: {fires}"
    assert fires[0] == first
    assert all(f % 1000 == 0 for f in fires), fires
    assert gaps(fires) == [1000] * (len(fires) - 1), fires
    assert pushed(r, q) == len(fires)


def test_short_stall_within_grace_loses_no_tick(r, q):
    """A tick less than 1 s late is not missed, so each tick of a 350 ms stall still gets its own job."""
    first = schedule(r, q, "s", "@every 100ms", "p")
    wait_until(lambda: pushed(r, q) >= 2, timeout=3, what="two ticks")
    r.execute_command("DEBUG", "SLEEP", "0.35")        # the server does nothing for 350 ms
    sleep_until_server_ms(r, server_ms(r) + 250)
    assert r.execute_command("ONCE.UNSCHEDULE", q, "s") == 1
    fires = [fire_of(i) for i, _ in drain(r, q)]
    assert fires[0] == first
    missing = sorted(set(range(fires[0], fires[-1] + 1, 100)) - set(fires))
    assert not missing, (f"ticks less than 1 s late never fired: {missing} "
                         f"(fired: {[f - first for f in fires]} ms after the first)")


# ---- reply, SCHEDULES, STATS ---------------------------------------------------------------------------------------

def test_reply_schedules_and_stats(r, r3, q):
    before = server_ms(r)
    nxt = schedule(r, q, "full", "*/5 * * * * *", "full-payload", "RETRIES", 7, "BACKOFF", 250, "LEASE", 1234,
                   "PRIORITY", -5, "TZ", "Europe/Berlin", "MISSED", "skip")
    assert isinstance(nxt, int) and nxt % 5000 == 0 and before < nxt <= server_ms(r) + 5000, nxt
    assert stats(r, q)["schedules"] == 1
    yearly = schedule(r, q, "plain", YEARLY, "plain-payload")
    assert stats(r, q)["schedules"] == 2

    raw2 = r.execute_command("ONCE.SCHEDULES", q)
    raw3 = r3.execute_command("ONCE.SCHEDULES", q)
    assert len(raw2) == len(raw3) == 2
    for entry in list(raw2) + list(raw3):
        assert keys_in_order(entry) == SCHEDULE_FIELDS
    by3 = {as_map(e)["name"]: as_map(e) for e in raw3}
    listed = schedules_of(r, q)
    assert listed == by3, "RESP2 and RESP3 list the same schedules"
    full = listed["full"]
    if full["last_fire"] is None:      # the */5 spec may have fired already; before that, next_fire is the reply
        assert full["next_fire"] == nxt
    assert listed["plain"] == {
        "name": "plain", "spec": YEARLY, "tz": "UTC", "next_fire": yearly, "last_fire": None,
        "payload": "plain-payload", "retries": 3, "backoff": 1000, "lease": None, "priority": 0, "missed": "once"}
    assert {k: v for k, v in full.items() if k not in ("next_fire", "last_fire")} == {
        "name": "full", "spec": "*/5 * * * * *", "tz": "Europe/Berlin", "payload": "full-payload", "retries": 7,
        "backoff": 250, "lease": 1234, "priority": -5, "missed": "skip"}

    assert r.execute_command("ONCE.UNSCHEDULE", q, "full") == 1
    assert stats(r, q)["schedules"] == 1
    assert list(schedules_of(r, q)) == ["plain"]


@pytest.mark.parametrize("spec, zone, hour, minute, weekdays", [
    ("0 9 * * *", "Asia/Tokyo", 9, 0, None),
    ("30 2 * * *", "Europe/Berlin", 2, 30, None),
    ("0 9 * * 1-5", "America/New_York", 9, 0, {0, 1, 2, 3, 4}),
    ("0 0 * * 0", "Australia/Adelaide", 0, 0, {6}),
    ("15 23 * * 7", "Asia/Kolkata", 23, 15, {6}),
    ("0 30 6 * * SAT", "UTC", 6, 30, {5}),
    ("@daily", "America/St_Johns", 0, 0, None),
])
def test_next_fire_in_a_time_zone(r, q, spec, zone, hour, minute, weekdays):
    for _ in range(3):
        before = server_ms(r)
        nxt = schedule(r, q, "z", spec, "p", "TZ", zone)
        after = server_ms(r)
        want = next_local_time(before, zone, hour, minute, weekdays)
        if want == next_local_time(after, zone, hour, minute, weekdays):
            break
    if spec == "0 9 * * *":
        assert want % 86_400_000 == 0, "09:00 in Tokyo is 00:00 UTC"
    assert nxt == want, f"{spec!r} TZ {zone}: next fire {nxt}, expected {want} (off by {(nxt - want) / 3.6e6} h)"
    listed = schedules_of(r, q)["z"]
    assert (listed["tz"], listed["spec"], listed["next_fire"], listed["last_fire"]) == (zone, spec, nxt, None)


def test_jobs_carry_payload_and_options(r, q):
    schedule(r, q, "s", "@every 100ms", "job-payload", "RETRIES", 7, "BACKOFF", 250, "LEASE", 1234,
             "PRIORITY", 5)
    schedule(r, q, "t", "@every 100ms", "plain-payload")
    wait_until(lambda: all(x["last_fire"] for x in schedules_of(r, q).values()), timeout=3,
               what="both schedules to fire")
    pipe = r.pipeline(transaction=True)      # the last ticks as listed, and no tick after them
    pipe.execute_command("ONCE.SCHEDULES", q)
    pipe.execute_command("ONCE.UNSCHEDULE", q, "s")
    pipe.execute_command("ONCE.UNSCHEDULE", q, "t")
    listed, gone_s, gone_t = pipe.execute()
    assert (gone_s, gone_t) == (1, 1)
    last = {as_map(x)["name"]: as_map(x)["last_fire"] for x in listed}

    job = inspect(r, q, f"s@{last['s']}")
    assert job is not None, f"no job s@{last['s']} for the last tick SCHEDULES reported"
    assert (job["state"], job["payload"], job["retries"], job["backoff"], job["lease"], job["priority"],
            job["attempts"], job["due"]) == ("ready", "job-payload", 7, 250, 1234, 5, 0, None), job
    assert job["created"] >= last["s"], "a tick never fires early"
    plain = inspect(r, q, f"t@{last['t']}")
    assert plain is not None, f"no job t@{last['t']}"
    assert (plain["payload"], plain["retries"], plain["backoff"], plain["lease"], plain["priority"]) == \
        ("plain-payload", 3, 1000, None, 0), plain

    # PRIORITY 5 jobs come out before the priority-0 ones; the schedule's LEASE applies at RESERVE
    t_before = server_ms(r)
    got = r.execute_command("ONCE.RESERVE", q, "COUNT", 10000)
    t_after = server_ms(r)
    names = [g[0].split("@")[0] for g in got]
    assert names == sorted(names) and names[0] == "s" and names[-1] == "t", f"priority 5 jobs (s) not first: {names}"
    assert all(g[1] == ("job-payload" if g[0].startswith("s@") else "plain-payload") for g in got), got
    deadline = inspect(r, q, got[0][0])["lease_deadline"]
    assert t_before + 1234 <= deadline <= t_after + 1234, "LEASE 1234 of the schedule is the job's lease"


# ---- errors --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, zone, fragments", [
    ("* * *", None, ["5 or 6 fields", "3"]),
    ("61 * * * *", None, ["61"]),
    ("@every 0s", None, ["at least 1ms"]),
    ("@every 5x", None, ["5x", "'x'"]),
    ("0 9 * * *", "Mars/Base", ["Mars/Base"]),
])
def test_invalid_spec_or_zone_is_refused_and_creates_nothing(server, r, q, spec, zone, fragments):
    raw = RawClient(server.port)
    opts = ["TZ", zone] if zone else []
    msg = raw.error("ONCE.SCHEDULE", q, "s", spec, "p", *opts)
    prefix = "ERR invalid schedule: "
    assert msg.startswith(prefix), msg
    detail = msg[len(prefix):]
    for f in fragments:
        assert f in detail, f"{msg!r} does not quote the parser's message (missing {f!r})"
    assert r.exists(q) == 0, "a refused SCHEDULE created the key"
    # on an existing queue, a refused upsert leaves the schedule as it was
    schedule(r, q, "s", YEARLY, "kept")
    before = (schedules_of(r, q), stats(r, q))
    assert raw.error("ONCE.SCHEDULE", q, "s", spec, "p2", *opts).startswith(prefix)
    assert (schedules_of(r, q), stats(r, q)) == before
    raw.close()


def test_bad_missed_and_name_are_refused_and_create_nothing(server, r, q):
    raw = RawClient(server.port)
    msg = raw.error("ONCE.SCHEDULE", q, "s", "@every 1s", "p", "MISSED", "never")
    assert msg.startswith("ERR ") and "MISSED" in msg, msg
    assert raw.error("ONCE.SCHEDULE", q, "s", "@every 1s", "p", "MISSED") == "ERR option 'MISSED' needs a value"
    assert raw.error("ONCE.SCHEDULE", q, "x" * 201, "@every 1s", "p") == "ERR schedule name must be 1 to 200 bytes"
    assert raw.error("ONCE.SCHEDULE", q, "", "@every 1s", "p") == "ERR schedule name must be 1 to 200 bytes"
    assert r.exists(q) == 0
    assert raw.call("ONCE.SCHEDULE", q, "s", YEARLY, "p", "missed", "SKIP") > server_ms(r)
    assert schedules_of(r, q)["s"]["missed"] == "skip"
    raw.close()


# ---- unschedule and upsert ------------------------------------------------------------------------------------------

def test_unschedule_stops_firing(r, q):
    schedule(r, q, "s", "@every 100ms", "p")
    wait_until(lambda: pushed(r, q) >= 2, timeout=3, what="two ticks")
    assert r.execute_command("ONCE.UNSCHEDULE", q, "s") == 1
    flat = pushed(r, q)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:      # five ticks' worth of time: nothing may fire
        assert pushed(r, q) == flat, "a job was pushed after UNSCHEDULE"
        time.sleep(0.02)
    assert r.execute_command("ONCE.UNSCHEDULE", q, "s") == 0
    assert stats(r, q)["schedules"] == 0 and schedules_of(r, q) == {}
    assert r.exists(q) == 1, "the queue key stays after its last schedule is gone"
    assert r.execute_command("ONCE.UNSCHEDULE", f"{q}:missing", "s") == 0
    assert r.exists(f"{q}:missing") == 0


def test_upsert_changes_spec_without_double_fire(r, q):
    schedule(r, q, "s", "@every 100ms", "old")
    jobs = collect(r, q, 0.5)
    # the replacement, atomically between two listings
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("ONCE.SCHEDULES", q)
    pipe.execute_command("ONCE.SCHEDULE", q, "s", "@every 300ms", "new")
    pipe.execute_command("ONCE.SCHEDULES", q)
    pipe.time()
    old_list, nxt, new_list, (sec, usec) = pipe.execute()
    at = sec * 1000 + usec // 1000
    old, new = as_map(old_list[0]), as_map(new_list[0])
    assert (new["spec"], new["payload"]) == ("@every 300ms", "new")
    assert new["last_fire"] == old["last_fire"] is not None, "the upsert keeps the last tick fired"
    assert new["next_fire"] == nxt and at < nxt <= at + 300, (at, nxt)
    assert len(schedules_of(r, q)) == 1 and stats(r, q)["schedules"] == 1
    collect(r, q, 1.1, into=jobs)
    assert r.execute_command("ONCE.UNSCHEDULE", q, "s") == 1
    jobs += drain(r, q)

    ids = [i for i, _ in jobs]
    assert_unique(ids)
    assert len(ids) == pushed(r, q)
    fires = [fire_of(i) for i in ids]
    assert fires == sorted(fires) and len(set(fires)) == len(fires), f"fire times not strictly increasing: {fires}"
    old_fires = [fire_of(i) for i, p in jobs if p == "old"]
    new_fires = [fire_of(i) for i, p in jobs if p == "new"]
    assert old_fires[-1] == old["last_fire"], "no tick of the old spec after the upsert"
    assert set(gaps(old_fires)) == {100}, old_fires
    assert len(new_fires) >= 3 and new_fires[0] == nxt, (nxt, new_fires)
    assert set(gaps(new_fires)) == {300}, f"after the upsert ticks are not 300 ms apart: {new_fires}"


def test_upsert_same_cron_right_after_a_tick_does_not_repeat_it(r, q):
    schedule(r, q, "s", "*/1 * * * * *", "p")
    first = wait_until(lambda: drain(r, q), timeout=3, what="the first tick")
    assert len(first) == 1
    fired = fire_of(first[0][0])
    nxt = schedule(r, q, "s", "*/1 * * * * *", "p")       # acked above: a repeat would be a new job
    assert nxt == fired + 1000, (fired, nxt)
    more = wait_until(lambda: drain(r, q), timeout=3, what="the next tick")
    assert r.execute_command("ONCE.UNSCHEDULE", q, "s") == 1
    more += drain(r, q)
    assert [fire_of(i) for i, _ in more][0] == fired + 1000, more
    assert fired not in [fire_of(i) for i, _ in more], "the upsert fired its tick again"


# ---- persistence ---------------------------------------------------------------------------------------------------

def test_debug_reload_keeps_schedules_and_never_double_fires(server, r, q):
    schedule(r, q, "s", "@every 100ms", "tick", "RETRIES", 2, "PRIORITY", 3)
    schedule(r, q, "y", YEARLY, "yearly", "TZ", "Europe/Paris", "LEASE", 777, "MISSED", "skip")
    jobs = collect(r, q, 0.25)
    reloads = 4
    for _ in range(reloads):
        pipe = r.pipeline(transaction=True)
        pipe.execute_command("ONCE.SCHEDULES", q)
        pipe.execute_command("DEBUG", "RELOAD")
        pipe.execute_command("ONCE.SCHEDULES", q)
        before, ok, after = pipe.execute()
        assert ok is True or ok == "OK"
        assert [as_map(x) for x in after] == [as_map(x) for x in before], "DEBUG RELOAD changed the schedules"
        collect(r, q, 0.25, into=jobs)
    reloaded_at = server_ms(r) - 250
    collect(r, q, 0.25, into=jobs)
    assert r.execute_command("ONCE.UNSCHEDULE", q, "s") == 1
    jobs += drain(r, q)

    ids = [i for i, _ in jobs]
    assert_unique(ids)
    assert len(ids) == pushed(r, q), "every push was collected once"
    fires = [fire_of(i) for i in ids]
    assert fires == sorted(fires), fires
    assert all(g % 100 == 0 and g > 0 for g in gaps(fires)), f"off the 100 ms grid: {gaps(fires)}"
    assert len(fires) >= 12, f"only {len(fires)} ticks in ~1.5 s across {reloads} reloads"
    assert sum(f > reloaded_at for f in fires) >= 2, "the schedule did not carry on after the last reload"
    assert list(schedules_of(r, q)) == ["y"] and schedules_of(r, q)["y"]["lease"] == 777
    assert not module_trouble(server), module_trouble(server)


def test_restart_after_missed_ticks_once_and_skip(make_server):
    """Down across two ticks and 1.6 s past the second: MISSED once fires the second (latest) tick at once,
    MISSED skip fires neither; both then tick on the schedule's grid."""
    srv = make_server()
    c = srv.client(decode_responses=True, protocol=2)
    every = 3000
    t1 = {"q:once": c.execute_command("ONCE.SCHEDULE", "q:once", "s", f"@every {every}ms", "once-p", "MISSED", "once"),
          "q:skip": c.execute_command("ONCE.SCHEDULE", "q:skip", "s", f"@every {every}ms", "skip-p", "MISSED", "skip")}
    saved = {queue: schedules_of(c, queue)["s"] for queue in t1}
    c.save()
    c.close()
    shutdown(srv)                                     # SAVE above wrote the RDB; no later write happened
    down_at = now_ms()
    assert down_at < min(t1.values()) - 500, "the server must be down before the first tick"
    t2 = {queue: t + every for queue, t in t1.items()}
    t3 = {queue: t + 2 * every for queue, t in t1.items()}
    sleep_until_ms(max(t2.values()) + 1600)           # both ticks are now more than 1.5 s in the past
    start_at = now_ms()
    srv.start()
    up_at = now_ms()
    assert up_at < min(t3.values()) - 300, f"restart took too long for this test ({up_at - down_at} ms down)"
    c = srv.client(decode_responses=True, protocol=2)

    kept = ("spec", "payload", "missed", "retries", "backoff", "lease", "priority", "tz")
    for queue in t1:
        s = schedules_of(c, queue)["s"]
        assert {k: s[k] for k in kept} == {k: saved[queue][k] for k in kept}, "the RDB lost schedule fields"

    def moved_on(queue):
        """The schedule once the timer has visited it after the restart (next_fire is then t3)."""
        s = schedules_of(c, queue)["s"]
        return s if s["next_fire"] == t3[queue] else None

    # MISSED once: one job, for the latest missed tick (t2), promptly
    wait_until(lambda: stats(c, "q:once")["pushed_total"] >= 1, timeout=1.0, what="the catch-up job after restart")
    s = wait_until(lambda: moved_on("q:once"), timeout=1.0, what="q:once next_fire to move to t3")
    assert s["last_fire"] == t2["q:once"], (s, t1["q:once"], t2["q:once"])
    job = inspect(c, "q:once", f"s@{t2['q:once']}")
    assert job is not None and job["payload"] == "once-p", job
    assert start_at <= job["created"] <= up_at + 1000, (start_at, job["created"], up_at)
    assert inspect(c, "q:once", f"s@{t1['q:once']}") is None, "MISSED once fired the older missed tick too"
    assert stats(c, "q:once")["pushed_total"] == 1

    # MISSED skip: the timer has been past it (next_fire moved on) and pushed nothing
    s = wait_until(lambda: moved_on("q:skip"), timeout=1.0, what="q:skip next_fire to move to t3")
    assert s["last_fire"] is None, s
    assert stats(c, "q:skip")["pushed_total"] == 0, "MISSED skip fired a tick of the downtime"

    # then the regular ticks carry on, on the grid
    wait_until(lambda: stats(c, "q:once")["pushed_total"] == 2 and stats(c, "q:skip")["pushed_total"] == 1,
               timeout=(max(t3.values()) - now_ms()) / 1000 + 1.5,
               what="the first tick after the downtime")
    once_ids = [i for i, _ in drain(c, "q:once")]
    skip_ids = [i for i, _ in drain(c, "q:skip")]
    assert once_ids == [f"s@{t2['q:once']}", f"s@{t3['q:once']}"], once_ids
    assert skip_ids == [f"s@{t3['q:skip']}"], skip_ids
    for queue in t1:
        assert c.execute_command("ONCE.UNSCHEDULE", queue, "s") == 1
    assert not module_trouble(srv), module_trouble(srv)


# ---- replication ---------------------------------------------------------------------------------------------------

def test_replica_gets_schedule_never_fires_and_takes_over(make_server):
    master, replica = make_server(), make_server()
    attach_replica(replica, master)
    m = master.client(decode_responses=True, protocol=2)
    rc = replica.client(decode_responses=True, protocol=2)
    q = "rq"
    schedule(m, q, "s", "@every 200ms", "rp", "RETRIES", 2, "PRIORITY", 3, "LEASE", 5000)
    jobs = collect(m, q, 1.0, interval=0.05)            # the master's worker takes and acks the jobs
    assert len(jobs) >= 3, jobs

    wait_until(lambda: list(schedules_of(rc, q)) == ["s"], timeout=5, what="the replica to get the schedule")
    # quiet the master: while clients are paused for writes the timer fires nothing
    m.execute_command("CLIENT", "PAUSE", 60000, "WRITE")
    quiet = stats(m, q)["pushed_total"]
    time.sleep(0.45)
    assert stats(m, q)["pushed_total"] == quiet, "the master fired while CLIENT PAUSE WRITE was on"
    wait_in_sync(m, rc)
    assert stats(rc, q) == stats(m, q), "replica STATS differ (pushed_total: did the replica fire itself?)"
    assert schedules_of(rc, q) == schedules_of(m, q)
    assert digest_value(rc, q) == digest_value(m, q)
    assert digest(rc) == digest(m) != "0" * 40
    before = stats(rc, q)

    master.stop(kill=True)
    # still a replica of a dead master: its timer must not fire, whatever is due
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        assert stats(rc, q)["pushed_total"] == before["pushed_total"], "a replica fired a tick"
        time.sleep(0.02)
    assert schedules_of(rc, q)["s"]["next_fire"] < server_ms(rc), "a tick is due on the replica"

    rc.execute_command("REPLICAOF", "NO", "ONE")
    wait_until(lambda: stats(rc, q)["pushed_total"] >= before["pushed_total"] + 3, timeout=3,
               what="the promoted replica to fire")
    collect(rc, q, 0.05, into=jobs)
    assert rc.execute_command("ONCE.UNSCHEDULE", q, "s") == 1
    jobs += drain(rc, q)

    ids = [i for i, _ in jobs]
    assert_unique(ids, "job ids across the failover")
    assert len(ids) == stats(rc, q)["pushed_total"], "every tick was collected once"
    fires = [fire_of(i) for i in ids]
    assert fires == sorted(fires), f"fire times go back across the failover: {fires}"
    assert all(g > 0 and g % 200 == 0 for g in gaps(fires)), f"off the 200 ms grid: {gaps(fires)}"
    assert all(p == "rp" for _, p in jobs)
    assert not module_trouble(replica), module_trouble(replica)
