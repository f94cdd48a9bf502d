"""Issue 10's defects, each as a test: a schedule that made the data unloadable, CANCEL that scanned the ready
line, cron work outside the timer's budget; and the caps and memory that bound what one key can cost."""
import pytest
import redis

from durability_helpers import RespPipe
from helpers import inspect, push, reserve_one, stats, wait_until

HUGE = "10000000000000000000"


def info_once(r):
    return r.info("once")


def commandstat(r, cmd):
    stats_ = r.info("commandstats")
    assert f"cmdstat_{cmd.lower()}" in stats_, sorted(stats_)
    return stats_[f"cmdstat_{cmd.lower()}"]


@pytest.mark.parametrize("spec", [f"@every {HUGE}ms", "@every 315360000001ms", "@every 99999999h",
                                  "@every 18446744073709551615ms"])
def test_a_schedule_beyond_the_ranges_is_refused_and_the_server_still_reloads(fresh_server, spec):
    r = fresh_server.client(decode_responses=True, protocol=2)
    with pytest.raises(redis.ResponseError, match="invalid schedule"):
        r.execute_command("ONCE.SCHEDULE", "q", "big", spec, "x")
    assert r.exists("q") == 0
    # The longest allowed interval is accepted, saves, loads and restarts.
    nxt = r.execute_command("ONCE.SCHEDULE", "q", "edge", "@every 315360000000ms", "x")
    assert 0 < nxt < 2 ** 63
    before = r.execute_command("DEBUG", "DIGEST-VALUE", "q")
    assert r.execute_command("DEBUG", "RELOAD") == "OK"
    r.execute_command("SAVE")
    fresh_server.restart()
    r = fresh_server.client(decode_responses=True, protocol=2)
    assert r.execute_command("DEBUG", "DIGEST-VALUE", "q") == before
    assert stats(r, "q")["schedules"] == 1


def test_internal_schedule_out_of_range_is_refused(r, key):
    args = [key, "s", "@every 1s", "UTC", "p", 3, 1000, 0, 0, "once", HUGE, -1]
    with pytest.raises(redis.ResponseError, match="bad schedule"):
        r.execute_command("ONCE._SCHED", *args)
    assert r.exists(key) == 0


def test_cancel_in_the_middle_costs_what_cancel_at_the_head_costs(fresh_server):
    """With 200,000 ready jobs, cancelling 2,000 ids from the middle took ~100x the head's time when the ready
    line was scanned; removal is O(1) now. The ratio of two server-side costs in one run, with a wide margin."""
    r = fresh_server.client(decode_responses=True, protocol=2)
    n = 200_000
    pipe = RespPipe(fresh_server.port)
    ids = pipe.run([["ONCE.PUSH", "q", f"p{i}"] for i in range(n)])
    pipe.close()
    head, middle = ids[:2000], ids[n // 2:n // 2 + 2000]
    r.config_resetstat()
    assert r.execute_command("ONCE.CANCEL", "q", *head) == 2000
    head_us = commandstat(r, "once.cancel")["usec"]
    r.config_resetstat()
    assert r.execute_command("ONCE.CANCEL", "q", *middle) == 2000
    middle_us = commandstat(r, "once.cancel")["usec"]
    assert middle_us <= max(5 * head_us, 5000), (head_us, middle_us)
    # The line still serves in order, without the cancelled jobs, and the state is consistent.
    first = r.execute_command("ONCE.RESERVE", "q", "COUNT", 3)
    assert [j[0] for j in first] == ids[2000:2003]
    assert stats(r, "q")["ready"] == n - 4003
    assert r.execute_command("ONCE.CANCEL", "q", ids[n // 2]) == 0
    before = r.execute_command("DEBUG", "DIGEST-VALUE", "q")
    assert r.execute_command("DEBUG", "RELOAD") == "OK"
    assert r.execute_command("DEBUG", "DIGEST-VALUE", "q") == before


def test_a_cancelled_job_that_comes_back_is_served_in_its_new_place(r, key):
    ids = [push(r, key, f"p{i}", "ID", f"j{i}") for i in range(4)]
    assert r.execute_command("ONCE.CANCEL", key, "j1") == 1
    assert push(r, key, "again", "ID", "j1") == "j1"          # the id is free again: a new job, at the back
    order = [j[0] for j in r.execute_command("ONCE.RESERVE", key, "COUNT", 10)]
    assert order == ["j0", "j2", "j3", "j1"]
    assert inspect(r, key, "j1")["payload"] == "again"


def test_two_thousand_cron_schedules_keep_to_the_timer_budget(fresh_server):
    """2,000 schedules `@every 10ms` on one key once held the server for 44 ms per tick; each tick now stops
    after its budget and the next one carries on."""
    r = fresh_server.client(decode_responses=True, protocol=2)
    pipe = RespPipe(fresh_server.port)
    pipe.run([["ONCE.SCHEDULE", "q", f"s{i}", "@every 10ms", "x", "MISSED", "skip"] for i in range(2000)])
    pipe.close()
    r.config_resetstat()
    wait_until(lambda: stats(r, "q")["pushed_total"] > 20_000, timeout=30, what="cron fires")
    info = info_once(r)
    # Budget 1 ms; one schedule's fires may overrun it a little, and a busy 2-core machine may deschedule the
    # server mid-tick. 44 ms before the change.
    assert info["once_timer_max_tick_us"] < 20_000, info
    assert stats(r, "q")["schedules"] == 2000


def test_schedules_per_key_and_spec_length_are_capped(r, key):
    with pytest.raises(redis.ResponseError, match="schedule spec is 300 bytes, over the limit of 256"):
        r.execute_command("ONCE.SCHEDULE", key, "s", "*" * 300, "x")
    with pytest.raises(redis.ResponseError, match="TZ must be an IANA zone name"):
        r.execute_command("ONCE.SCHEDULE", key, "s", "@every 1s", "x", "TZ", "Z" * 300)
    assert r.exists(key) == 0


def test_long_error_text_is_kept_cut_short_never_refused(r, key):
    job = push(r, key, "p", "RETRIES", 2)
    _, _, attempt = reserve_one(r, key)
    text = "Traceback: " + "x" * 100_000
    assert r.execute_command("ONCE.NACK", key, job, "ATTEMPT", attempt, "ERROR", text) == 1
    kept = inspect(r, key, job)["last_error"]
    assert kept == text[:4096]


def test_error_replies_quote_a_short_prefix_of_client_input(r, key):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("ONCE.PUSH", key, "p", "Q" * 10_000, "1")
    assert len(str(e.value)) < 120 and "..." in str(e.value)


def test_the_timer_forgets_a_deleted_queue_at_once(fresh_server):
    r = fresh_server.client(decode_responses=True, protocol=2)
    for i in range(50):
        push(r, f"far{i}", "p", "DELAY", 315360000000)
    assert info_once(r)["once_timer_queues_waiting"] == 50
    r.delete(*[f"far{i}" for i in range(25)])
    r.execute_command("RENAME", "far30", "moved")
    assert info_once(r)["once_timer_queues_waiting"] == 25
    r.flushdb()
    assert info_once(r)["once_timer_queues_waiting"] == 0


def test_memory_comes_back_after_a_burst_of_client_ids(fresh_server):
    r = fresh_server.client(decode_responses=True, protocol=2)
    n = 100_000
    pipe = RespPipe(fresh_server.port)
    pipe.run([["ONCE.PUSH", "q", "p", "ID", f"client-id-{i:08d}"] for i in range(n)])
    full = r.memory_usage("q")
    while stats(r, "q")["ready"]:
        got = r.execute_command("ONCE.RESERVE", "q", "COUNT", 10000)
        pipe.run([["ONCE.ACK", "q"] + [j[0] for j in got]])
    pipe.close()
    empty = r.memory_usage("q")
    assert empty < full / 20 and empty < 200_000, (full, empty)


def test_sixty_thousand_kept_jobs_and_ttls_end_in_timer_steps(fresh_server):
    """Issue 21's timed work is bounded: 60,000 finished jobs whose KEEP ends at once, and 60,000 TTLs that run
    out at once, are freed and expired by the timer in slices, each tick within the same bound as cron's."""
    r = fresh_server.client(decode_responses=True, protocol=2)
    pipe = RespPipe(fresh_server.port)
    n = 60_000
    pipe.run([["ONCE.PUSH", "kept", f"j{i}", "KEEP", 3000] for i in range(n)])
    for _ in range(n // 10_000):
        got = r.execute_command("ONCE.RESERVE", "kept", "COUNT", 10_000, "LEASE", 600_000)
        assert r.execute_command("ONCE.ACK", "kept", *[g[0] for g in got]) == len(got)
    pipe.run([["ONCE.PUSH", "ttl", f"t{i}", "TTL", 1500, "DROP"] for i in range(n)])
    pipe.close()
    assert stats(r, "kept")["acked_total"] == n
    r.config_resetstat()
    wait_until(lambda: stats(r, "kept")["completed"] == 0 and stats(r, "ttl")["ready"] == 0, timeout=30,
               what="kept jobs freed and TTLs expired by the timer")
    assert stats(r, "ttl")["expired_unstarted_total"] == n
    info = info_once(r)
    assert info["once_timer_max_tick_us"] < 20_000, info
