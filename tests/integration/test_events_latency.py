"""The event log (ONCE.CONFIGURE ... EVENTS-MAX, ONCE.EVENTS with AFTER/COUNT/BLOCK), the keyspace notifications
that go with it, the wait/run latency histograms (ONCE.HISTOGRAM, the STATS percentiles and sums), their survival
across DEBUG RELOAD, an AOF rewrite + restart and a replica with its own AOF, and the bad input of the three commands.

Each test runs on both server kinds (the `kind` fixture of conftest.py)."""
import threading
import time

import pytest
import redis

from durability_helpers import (attach_replica, digest, digest_value, fast_restart, read_aof, wait_in_sync,
                                wait_rewrite_done)
from helpers import as_map, push, reserve, reserve_one, server_ms, state, stats, wait_until

BOUNDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000,
          500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 50_000_000, 86_400_000, "+inf"]
KINDS = {"push", "reserve", "ack", "nack", "retry", "expire", "dead", "drop", "cancel", "pause", "resume"}


def events(r, queue, *opts):
    """ONCE.EVENTS as a list of (id, event, job, attempt, ms, error); None for the null reply."""
    got = r.execute_command("ONCE.EVENTS", queue, *opts)
    if got is None:
        return None
    out = []
    for e in got:
        assert len(e) == 6, e
        out.append(tuple(e))
    return out


def kinds_of(evs):
    return [e[1] for e in evs or []]


def ids_of(evs):
    return [e[0] for e in evs or []]


def histogram(r, queue, which):
    got = r.execute_command("ONCE.HISTOGRAM", queue, which)
    assert [b for b, _ in got] == [str(b) if isinstance(b, str) else b for b in BOUNDS], got
    return [(b, c) for b, c in got]


def per_bucket(hist):
    """Samples per bucket (not cumulative), keyed by the upper bound."""
    out, prev = {}, 0
    for b, c in hist:
        assert c >= prev, f"not cumulative: {hist}"
        out[b] = c - prev
        prev = c
    return out


def enable(r, queue, n=1000, *more):
    got = as_map(r.execute_command("ONCE.CONFIGURE", queue, "EVENTS-MAX", n, *more))
    assert got["events_max"] == n, got


# ---- keyspace notifications --------------------------------------------------------------------------------------


def test_keyspace_notifications_follow_every_transition_in_order_and_match_the_log(server, r, key):
    """push, reserve, nack → retry, lease expiry → dead, dead → drop (DEAD-MAX 1), pause, resume, cancel, RETRY,
    ack: the `once.*` notifications on `__keyspace@0__:<key>` come in the order of the event log."""
    enable(r, key, 1000, "DEAD-MAX", 1)
    r.config_set("notify-keyspace-events", "Kd")
    sub = server.client(decode_responses=True, protocol=2).pubsub()
    try:
        sub.subscribe(f"__keyspace@0__:{key}")
        assert sub.get_message(timeout=2)["type"] == "subscribe"
        a = push(r, key, "a", "ID", "a", "RETRIES", 1, "BACKOFF", 0)
        assert reserve_one(r, key)[0] == a
        assert r.execute_command("ONCE.NACK", key, a, "ERROR", "first") == 1       # nack, retry
        assert reserve_one(r, key, "LEASE", 50)[0] == a
        wait_until(lambda: state(r, key, a) == "dead", timeout=5, what="the lease to run out")  # expire, dead
        b = push(r, key, "b", "ID", "b", "RETRIES", 0)
        assert reserve_one(r, key)[0] == b
        assert r.execute_command("ONCE.NACK", key, b, "ERROR", "second") == 1      # nack, dead, drop of a
        assert r.execute_command("ONCE.PAUSE", key) == 1
        assert r.execute_command("ONCE.RESUME", key) == 1
        c = push(r, key, "c", "ID", "c")
        assert r.execute_command("ONCE.CANCEL", key, c) == 1
        assert r.execute_command("ONCE.RETRY", key, b) == 1                        # retry
        assert reserve_one(r, key)[0] == b
        assert r.execute_command("ONCE.ACK", key, b) == 1
        got = []
        for _ in range(100):
            m = sub.get_message(timeout=1)
            if m is None:
                break
            if m["type"] == "message":
                got.append(m["data"])
    finally:
        sub.close()
        r.config_set("notify-keyspace-events", "")
    expected = ["push", "reserve", "nack", "retry", "reserve", "expire", "dead", "push", "reserve", "nack", "dead",
                "drop", "pause", "resume", "push", "cancel", "retry", "reserve", "ack"]
    assert got == ["once." + k for k in expected], got
    log = events(r, key)
    assert kinds_of(log) == expected, log


def test_no_notifications_without_the_module_class(server, r, key):
    """With notify-keyspace-events set to a class without `d` (here K$: string commands), no once.* message."""
    r.config_set("notify-keyspace-events", "K$")
    sub = server.client(decode_responses=True, protocol=2).pubsub()
    try:
        sub.subscribe(f"__keyspace@0__:{key}")
        assert sub.get_message(timeout=2)["type"] == "subscribe"
        job = push(r, key, "p")
        reserve_one(r, key)
        r.execute_command("ONCE.ACK", key, job)
        r.set(key + ":marker", "x")
        sub.subscribe(f"__keyspace@0__:{key}:marker")
        r.set(key + ":marker", "y")
        # Everything published before the marker's own message arrives first: read until the marker shows
        # (under load a message may take a while).
        got = []
        deadline = time.time() + 10
        while time.time() < deadline and (f"__keyspace@0__:{key}:marker", "set") not in got:
            m = sub.get_message(timeout=0.5)
            if m is not None and m["type"] == "message":
                got.append((m["channel"], m["data"]))
    finally:
        sub.close()
        r.config_set("notify-keyspace-events", "")
    assert got == [(f"__keyspace@0__:{key}:marker", "set")], got


# ---- ONCE.EVENTS ---------------------------------------------------------------------------------------------------


def test_events_record_a_known_sequence_with_ids_attempts_times_and_errors(r, key):
    assert events(r, key) is None                                   # no such queue
    enable(r, key, 1000, "DEAD-MAX", 1)
    assert events(r, key) is None                                   # nothing yet
    t0 = server_ms(r)
    a = push(r, key, "a", "RETRIES", 1, "BACKOFF", 0)
    reserve_one(r, key)
    assert r.execute_command("ONCE.NACK", key, a, "ERROR", "smtp timeout") == 1
    _, _, attempt = reserve_one(r, key)
    assert attempt == 2
    assert r.execute_command("ONCE.ACK", key, a) == 1
    c = push(r, key, "c", "ID", "cancel-me")
    assert r.execute_command("ONCE.CANCEL", key, c) == 1
    assert r.execute_command("ONCE.PAUSE", key) == 1
    assert r.execute_command("ONCE.RESUME", key) == 1
    d1 = push(r, key, "d1", "RETRIES", 0)
    reserve_one(r, key)
    assert r.execute_command("ONCE.NACK", key, d1, "ERROR", "fatal \u00e9") == 1
    d2 = push(r, key, "d2", "RETRIES", 0)
    reserve_one(r, key)
    assert r.execute_command("ONCE.NACK", key, d2, "DEAD") == 1
    t1 = server_ms(r)
    log = events(r, key)
    expected = [
        ("push", a, 0, None), ("reserve", a, 1, None), ("nack", a, 1, "smtp timeout"), ("retry", a, 1, None),
        ("reserve", a, 2, None), ("ack", a, 2, None),
        ("push", "cancel-me", 0, None), ("cancel", "cancel-me", 0, None),
        ("pause", None, 0, None), ("resume", None, 0, None),
        ("push", d1, 0, None), ("reserve", d1, 1, None), ("nack", d1, 1, "fatal \u00e9"), ("dead", d1, 1, "fatal \u00e9"),
        ("push", d2, 0, None), ("reserve", d2, 1, None), ("nack", d2, 1, None), ("dead", d2, 1, None),
        ("drop", d1, 1, None),                                       # DEAD-MAX 1: the older dead job goes
    ]
    assert [(e[1], e[2], e[3], e[5]) for e in log] == expected, log
    assert ids_of(log) == list(range(1, len(expected) + 1))
    times = [e[4] for e in log]
    assert times == sorted(times) and t0 <= times[0] and times[-1] <= t1, (t0, times, t1)
    assert set(kinds_of(log)) <= KINDS
    assert stats(r, key)["dead_dropped_total"] == 1


def test_events_after_count_and_dollar_page_through_the_log(r, key):
    enable(r, key, 1000)
    jobs = [push(r, key, f"p{i}") for i in range(25)]
    first = events(r, key, "COUNT", 10)
    assert ids_of(first) == list(range(1, 11)) and [e[2] for e in first] == jobs[:10]
    assert ids_of(events(r, key, "AFTER", 10, "COUNT", 10)) == list(range(11, 21))
    assert ids_of(events(r, key, "AFTER", 20)) == list(range(21, 26))
    assert ids_of(events(r, key, "AFTER", 0, "COUNT", 1)) == [1]
    assert ids_of(events(r, key, "after", 24, "count", 10000)) == [25]      # option names in any case
    assert events(r, key, "AFTER", 25) is None
    assert events(r, key, "AFTER", 10 ** 15) is None
    assert events(r, key, "AFTER", "$") is None
    assert events(r, key, "AFTER", "$", "BLOCK", 1) is None                   # nothing after the newest
    last = push(r, key, "new")
    assert events(r, key, "AFTER", 25) == events(r, key, "AFTER", 25, "COUNT", 1)
    assert [(e[0], e[1], e[2]) for e in events(r, key, "AFTER", 25)] == [(26, "push", last)]
    # the default COUNT is 100
    for i in range(150):
        push(r, key, f"more{i}")
    assert ids_of(events(r, key)) == list(range(1, 101))
    assert ids_of(events(r, key, "AFTER", 100)) == list(range(101, 177))
    # ids of another queue count on their own
    other = key + ":other"
    enable(r, other, 10)
    push(r, other, "x")
    assert ids_of(events(r, other)) == [1]


def test_events_max_trims_the_oldest_and_ids_keep_growing(r, key):
    enable(r, key, 5)
    for i in range(12):
        push(r, key, f"p{i}")
    assert ids_of(events(r, key)) == [8, 9, 10, 11, 12]
    assert ids_of(events(r, key, "AFTER", 3)) == [8, 9, 10, 11, 12]          # an id trimmed away: from the oldest
    assert ids_of(events(r, key, "AFTER", 9)) == [10, 11, 12]
    assert as_map(r.execute_command("ONCE.CONFIGURE", key, "EVENTS-MAX", 2))["events_max"] == 2
    assert ids_of(events(r, key)) == [11, 12]                                 # lowering trims at once
    assert stats(r, key)["events_max"] == 2
    push(r, key, "x")
    assert ids_of(events(r, key)) == [12, 13]
    # off: nothing is kept, nothing read
    enable(r, key, 0)
    assert events(r, key) is None and events(r, key, "AFTER", 0) is None
    push(r, key, "while-off")
    assert events(r, key) is None
    # on again: a new event never reuses an id a reader has seen
    enable(r, key, 10)
    push(r, key, "after")
    got = events(r, key)
    assert len(got) == 1 and got[0][0] > 13 and got[0][1] == "push", got
    assert events(r, key, "AFTER", 13) == got
    # raising EVENTS-MAX keeps what is there
    enable(r, key, 100_000)
    assert events(r, key) == got


def test_only_real_transitions_are_recorded(r, key):
    """A push of a live id, a PAUSE of a paused queue, an ACK/NACK/CANCEL that changes nothing: no event."""
    enable(r, key, 100)
    assert push(r, key, "a", "ID", "a") == "a"
    assert push(r, key, "again", "ID", "a") == "a"                  # live id: nothing added
    assert r.execute_command("ONCE.PAUSE", key) == 1
    assert r.execute_command("ONCE.PAUSE", key) == 0
    assert r.execute_command("ONCE.RESUME", key) == 1
    assert r.execute_command("ONCE.RESUME", key) == 0
    assert r.execute_command("ONCE.CANCEL", key, "nope") == 0
    assert r.execute_command("ONCE.NACK", key, "a") == 0              # not reserved
    assert r.execute_command("ONCE.ACK", key, "a") == 0
    assert r.execute_command("ONCE.RETRY", key, "a") == 0             # not dead
    assert r.execute_command("ONCE.EXTEND", key, "a", 1000) is None
    assert kinds_of(events(r, key)) == ["push", "pause", "resume"]
    push(r, key, "b", "ID", "b")
    got = reserve(r, key, "COUNT", 2, "LEASE", 60_000)
    assert [g[0] for g in got] == ["a", "b"]
    assert r.execute_command("ONCE.ACK", key, "a", "ATTEMPT", 5) == 0   # another reservation: no ack
    assert r.execute_command("ONCE.EXTEND", key, "a", 90_000) is not None  # an extension is no transition
    push(r, key, "c", "ID", "c")
    assert reserve(r, key, "ACK", "b")[0][0] == "c"                 # ack-and-fetch: the ack, then the reserve
    log = events(r, key, "AFTER", 3)
    assert [(e[1], e[2], e[3]) for e in log] == [("push", "b", 0), ("reserve", "a", 1), ("reserve", "b", 1),
                                                  ("push", "c", 0), ("ack", "b", 1), ("reserve", "c", 1)], log


def test_schedule_fires_are_push_events(r, key):
    enable(r, key, 100)
    r.execute_command("ONCE.SCHEDULE", key, "tick", "@every 100ms", "tp")
    wait_until(lambda: len(events(r, key) or []) >= 2, timeout=5, what="two schedule fires")
    r.execute_command("ONCE.UNSCHEDULE", key, "tick")
    log = events(r, key)
    assert all(e[1] == "push" and e[2].startswith("tick@") for e in log), log
    for e in log:
        fire_ms = int(e[2].split("@")[1])
        assert fire_ms <= e[4] < fire_ms + 1000, e                  # recorded when it fired


def test_events_off_by_default(r, key):
    push(r, key, "p")
    assert as_map(r.execute_command("ONCE.CONFIGURE", key))["events_max"] == 0
    assert stats(r, key)["events_max"] == 0
    assert events(r, key) is None


def _blocked_events(server, key, args, out):
    c = server.client(decode_responses=True, protocol=2)
    try:
        t = time.monotonic()
        out["reply"] = c.execute_command("ONCE.EVENTS", key, *args)
        out["done"] = time.monotonic()
        out["took"] = out["done"] - t
    finally:
        c.close()


def blocked_clients(r):
    return int(r.info("clients")["blocked_clients"])


def test_block_is_woken_by_the_next_event_not_by_a_timeout(server, r, key):
    enable(r, key, 100)
    push(r, key, "old")
    base = blocked_clients(r)
    out = {}
    t = threading.Thread(target=_blocked_events, args=(server, key, ["AFTER", "$", "BLOCK", 5000], out))
    t.start()
    wait_until(lambda: blocked_clients(r) == base + 1, timeout=3, what="the reader to block")
    # a change that records no event (settings) does not serve it
    r.execute_command("ONCE.CONFIGURE", key, "RETRIES", 3)
    time.sleep(0.2)
    assert "reply" not in out and blocked_clients(r) == base + 1
    sent = time.monotonic()
    job = push(r, key, "new")
    t.join(6)
    assert not t.is_alive()
    assert [(e[0], e[1], e[2]) for e in out["reply"]] == [(2, "push", job)], out
    assert out["done"] - sent < 1.0, f"woken {out['done'] - sent:.3f} s after the push (BLOCK 5000)"


def test_block_without_after_waits_for_the_first_event_of_a_new_queue(server, r, key):
    base = blocked_clients(r)
    out = {}
    t = threading.Thread(target=_blocked_events, args=(server, key, ["BLOCK", 5000], out))
    t.start()
    wait_until(lambda: blocked_clients(r) == base + 1, timeout=3, what="the reader to block")
    enable(r, key, 10)                      # creates the queue; no event yet
    time.sleep(0.1)
    assert "reply" not in out
    job = push(r, key, "first")
    t.join(6)
    assert [(e[0], e[1], e[2]) for e in out["reply"]] == [(1, "push", job)], out
    assert out["took"] < 4.0


def test_block_is_woken_by_the_timer_s_events_too(server, r, key):
    """A lease that runs out (found by the timer, no client command) wakes a reader blocked AFTER $."""
    enable(r, key, 100)
    job = push(r, key, "p", "RETRIES", 0)
    reserve_one(r, key, "LEASE", 300)
    base = blocked_clients(r)
    out = {}
    t = threading.Thread(target=_blocked_events, args=(server, key, ["AFTER", "$", "BLOCK", 5000], out))
    t.start()
    wait_until(lambda: blocked_clients(r) == base + 1, timeout=3, what="the reader to block")
    t.join(6)
    assert [(e[1], e[2], e[5]) for e in out["reply"]] == [("expire", job, "lease expired"),
                                                         ("dead", job, "lease expired")], out
    assert out["took"] < 3.0


def test_every_blocked_reader_is_woken_by_one_event(server, r, key):
    enable(r, key, 100)
    push(r, key, "old")
    base = blocked_clients(r)
    outs = [{}, {}, {}]
    threads = [threading.Thread(target=_blocked_events, args=(server, key, args, o))
               for args, o in zip((["AFTER", "$", "BLOCK", 5000], ["AFTER", 1, "BLOCK", 5000],
                                   ["AFTER", "$", "COUNT", 1, "BLOCK", 0]), outs)]
    for t in threads:
        t.start()
    wait_until(lambda: blocked_clients(r) == base + 3, timeout=3, what="three readers to block")
    sent = time.monotonic()
    job = push(r, key, "new")
    for t in threads:
        t.join(6)
        assert not t.is_alive()
    for o in outs:
        assert [(e[0], e[1], e[2]) for e in o["reply"]] == [(2, "push", job)], outs
        assert o["done"] - sent < 1.0


def test_a_blocked_reader_survives_its_key_being_deleted_or_replaced(server, r, key):
    """DEL, then a string at the key, while a reader waits: no crash; the reader ends with null (timeout) or an
    error, never with events of another queue."""
    enable(r, key, 100)
    push(r, key, "p")
    base = blocked_clients(r)
    out = {}
    t = threading.Thread(target=_blocked_events_any, args=(server, key, ["AFTER", "$", "BLOCK", 800], out))
    t.start()
    wait_until(lambda: blocked_clients(r) == base + 1, timeout=3, what="the reader to block")
    r.delete(key)
    r.set(key, "now a string")
    t.join(5)
    assert not t.is_alive()
    assert out["reply"] is None or isinstance(out["reply"], redis.ResponseError), out
    assert r.ping() and r.get(key) == "now a string"
    r.delete(key)


def _blocked_events_any(server, key, args, out):
    c = server.client(decode_responses=True, protocol=2)
    try:
        out["reply"] = c.execute_command("ONCE.EVENTS", key, *args)
    except redis.ResponseError as e:
        out["reply"] = e
    finally:
        c.close()


def test_block_times_out_with_a_null_reply(r, key):
    enable(r, key, 10)
    push(r, key, "p")
    t = time.monotonic()
    assert r.execute_command("ONCE.EVENTS", key, "AFTER", "$", "BLOCK", 300) is None
    took = time.monotonic() - t
    assert 0.25 <= took < 3.0, took
    # BLOCK with something to read replies at once
    t = time.monotonic()
    assert ids_of(events(r, key, "AFTER", 0, "BLOCK", 5000)) == [1]
    assert time.monotonic() - t < 1.0


def test_block_inside_multi_does_not_block(r, key):
    enable(r, key, 10)
    push(r, key, "p")
    p = r.pipeline(transaction=True)
    p.execute_command("ONCE.EVENTS", key, "AFTER", "$", "BLOCK", 5000)
    p.execute_command("ONCE.EVENTS", key, "AFTER", 0, "BLOCK", 5000)
    t = time.monotonic()
    got = p.execute()
    assert time.monotonic() - t < 1.0
    assert got[0] is None and ids_of([tuple(e) for e in got[1]]) == [1], got


# ---- histograms ----------------------------------------------------------------------------------------------------


def test_histograms_of_a_missing_queue_are_zeros(r, key):
    for which in ("wait", "run", "WAIT", "Run"):
        assert [c for _, c in histogram(r, key, which)] == [0] * 26
    s = stats(r, key)
    assert (s["wait_p50_ms"], s["wait_p99_ms"], s["run_p50_ms"], s["run_p99_ms"]) == (None,) * 4
    assert (s["wait_sum_ms"], s["run_sum_ms"]) == (0, 0)


def test_histograms_after_a_known_workload(r, key):
    n = 8
    t_push0 = server_ms(r)
    jobs = [push(r, key, f"w{i}") for i in range(n)]
    t_push1 = server_ms(r)
    s = stats(r, key)
    assert s["wait_p50_ms"] is None and s["run_p50_ms"] is None
    time.sleep(0.13)
    t_res0 = server_ms(r)
    got = reserve(r, key, "COUNT", n, "LEASE", 600_000)
    t_res1 = server_ms(r)
    assert [g[0] for g in got] == jobs
    wait_lo, wait_hi = t_res0 - t_push1, t_res1 - t_push0       # every wait lies in [wait_lo, wait_hi]
    assert wait_lo > 100
    wait = histogram(r, key, "wait")
    assert wait[-1] == ("+inf", n) and dict(wait)[100] == 0
    if wait_hi <= 200:                                          # the usual case: all in (100, 200]
        assert per_bucket(wait)[200] == n, wait
    assert [c for _, c in histogram(r, key, "run")] == [0] * 26
    time.sleep(0.06)
    t_ack0 = server_ms(r)
    assert r.execute_command("ONCE.ACK", key, *jobs) == n
    t_ack1 = server_ms(r)
    run_lo, run_hi = t_ack0 - t_res1, t_ack1 - t_res0
    assert run_lo > 50
    run = histogram(r, key, "run")
    assert run[-1] == ("+inf", n) and dict(run)[50] == 0
    if run_hi <= 100:
        assert per_bucket(run)[100] == n, run
    assert histogram(r, key, "wait") == wait                    # ACK adds no wait sample
    s = stats(r, key)
    if wait_hi <= 200:
        assert 100 <= s["wait_p50_ms"] <= 200 and 100 <= s["wait_p99_ms"] <= 200, s
    assert s["wait_p50_ms"] <= s["wait_p99_ms"]
    if run_hi <= 100:
        assert 50 <= s["run_p50_ms"] <= 100 and 50 <= s["run_p99_ms"] <= 100, s
    assert n * wait_lo <= s["wait_sum_ms"] <= n * wait_hi, (s["wait_sum_ms"], wait_lo, wait_hi)
    assert n * run_lo <= s["run_sum_ms"] <= n * run_hi, (s["run_sum_ms"], run_lo, run_hi)


def test_a_nack_is_a_run_sample_and_a_lease_expiry_is_not(r, key):
    a = push(r, key, "a", "RETRIES", 3, "BACKOFF", 0)
    reserve_one(r, key)
    time.sleep(0.03)
    assert r.execute_command("ONCE.NACK", key, a) == 1
    run = histogram(r, key, "run")
    assert run[-1] == ("+inf", 1) and dict(run)[20] == 0            # one run sample, > 20 ms
    run_sum = stats(r, key)["run_sum_ms"]
    assert run_sum >= 30
    reserve_one(r, key, "LEASE", 50)                                 # its second wait sample
    wait_until(lambda: stats(r, key)["expired_total"] == 1, timeout=5, what="the lease to run out")
    assert histogram(r, key, "run") == run and stats(r, key)["run_sum_ms"] == run_sum
    assert histogram(r, key, "wait")[-1] == ("+inf", 2)


def test_wait_counts_from_when_the_job_became_ready(r, key):
    """A delayed job waits from its due time, a job sent back by RETRY from the RETRY, not from its push."""
    push(r, key, "later", "DELAY", 250)
    wait_until(lambda: stats(r, key)["ready"] == 1, timeout=5, interval=0.002, what="the timer to promote it")
    job, _, _ = reserve_one(r, key)
    s = stats(r, key)
    assert s["wait_sum_ms"] < 150, s                                   # not the 250 ms it spent delayed
    assert r.execute_command("ONCE.NACK", key, job, "DEAD") == 1
    time.sleep(0.3)
    assert r.execute_command("ONCE.RETRY", key, job) == 1
    reserve_one(r, key)
    s2 = stats(r, key)
    assert s2["wait_sum_ms"] - s["wait_sum_ms"] < 150, (s, s2)         # not the 300 ms it spent dead
    assert histogram(r, key, "wait")[-1] == ("+inf", 2)


def test_retried_job_waits_from_its_due_time(r, key):
    job = push(r, key, "x", "RETRIES", 2)
    reserve_one(r, key)
    assert r.execute_command("ONCE.NACK", key, job, "DELAY", 250) == 1
    wait_until(lambda: stats(r, key)["ready"] == 1, timeout=5, interval=0.002, what="the retry to fall due")
    before = stats(r, key)["wait_sum_ms"]
    reserve_one(r, key)
    assert stats(r, key)["wait_sum_ms"] - before < 150


# ---- durability ----------------------------------------------------------------------------------------------------


def build_workload(r, q):
    """Events (trimmed, so the oldest id kept is not 1), both histograms, a dead job with an error."""
    enable(r, q, 30, "DEAD-MAX", 2)
    for i in range(20):
        push(r, q, f"p{i}", "ID", f"j{i}", "RETRIES", 0)
    got = reserve(r, q, "COUNT", 10, "LEASE", 600_000)
    for job, _, _ in got[:6]:
        assert r.execute_command("ONCE.ACK", q, job) == 1
    for job, _, attempt in got[6:]:
        assert r.execute_command("ONCE.NACK", q, job, "ATTEMPT", attempt, "ERROR", f"failed {job}") == 1
    r.execute_command("ONCE.PAUSE", q)
    r.execute_command("ONCE.RESUME", q)
    r.execute_command("ONCE.CANCEL", q, "j19")


def visible(r, q):
    """What a client sees of the log and the latencies."""
    s = stats(r, q)
    return {
        "events": events(r, q, "COUNT", 10000),
        "wait": histogram(r, q, "wait"),
        "run": histogram(r, q, "run"),
        "stats": {k: s[k] for k in ("events_max", "wait_p50_ms", "wait_p99_ms", "run_p50_ms", "run_p99_ms",
                                    "wait_sum_ms", "run_sum_ms", "dead", "dead_dropped_total")},
        "digest_value": digest_value(r, q),
    }


def test_digest_covers_the_log_and_the_histograms_and_copy_restore_keep_them(r, key):
    push(r, key, "p")
    d0 = digest_value(r, key)
    r.execute_command("ONCE.PAUSE", key)
    r.execute_command("ONCE.RESUME", key)
    assert digest_value(r, key) == d0                                  # no log: nothing recorded
    enable(r, key, 10)
    d1 = digest_value(r, key)
    assert d1 != d0                                                    # the setting
    r.execute_command("ONCE.PAUSE", key)
    r.execute_command("ONCE.RESUME", key)
    d2 = digest_value(r, key)
    assert d2 != d1                                                    # only the log changed
    job, _, _ = reserve_one(r, key)
    r.execute_command("ONCE.ACK", key, job)
    # the same jobs, totals and log, another wait histogram: another digest
    other = key + ":other"
    assert r.copy(key, other)
    assert digest_value(r, other) == digest_value(r, key)
    assert events(r, other) == events(r, key) and histogram(r, other, "wait") == histogram(r, key, "wait")
    counts = [c for c in per_bucket(histogram(r, other, "wait")).values()]
    bumped = counts[:25] + [counts[25] + 1]
    r.execute_command("ONCE._HIST", other, "wait", stats(r, other)["wait_sum_ms"] + 90_000_000, *bumped)
    assert histogram(r, other, "wait")[-1] == ("+inf", sum(counts) + 1)
    assert digest_value(r, other) != digest_value(r, key)
    # DUMP / RESTORE carries both
    payload = r.dump(key)
    restored = key + ":restored"
    r.restore(restored, 0, payload)
    assert digest_value(r, restored) == digest_value(r, key)
    assert events(r, restored) == events(r, key)
    assert histogram(r, restored, "run") == histogram(r, key, "run") and stats(r, restored)["run_sum_ms"] == \
        stats(r, key)["run_sum_ms"]


def test_log_and_histograms_survive_reload_rewrite_restart_and_a_replica_with_aof(make_server):
    # No RDB preamble in the master's AOF, so the rewrite writes the ONCE._EVENTS / ONCE._HIST commands.
    master = make_server(extra=["--appendonly", "yes", "--aof-use-rdb-preamble", "no"])
    replica = make_server(extra=["--appendonly", "yes"])
    attach_replica(replica, master)
    r = master.client(decode_responses=True, protocol=2)
    rr = replica.client(decode_responses=True, protocol=2)
    build_workload(r, "q")
    before = visible(r, "q")
    ev = before["events"]
    assert len(ev) == 30 and ev[0][0] > 1 and ids_of(ev) == list(range(ev[0][0], ev[0][0] + 30))
    assert before["wait"][-1] == ("+inf", 10) and before["run"][-1] == ("+inf", 10)
    assert any(e[5] for e in ev), "no error text in the log"
    r.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
    wait_in_sync(r, rr)
    d = digest(r)
    assert digest(rr) == d
    assert visible(rr, "q") == before
    r.execute_command("CLIENT", "UNPAUSE")
    # the digest covers the log and the histograms
    push(r, "probe", "x")
    assert r.execute_command("DEBUG", "RELOAD") == "OK"
    assert visible(r, "q") == before
    assert digest(r) != d                                             # "probe" is new
    r.delete("probe")
    assert digest(r) == d
    # AOF rewrite + restart
    r.execute_command("BGREWRITEAOF")
    wait_rewrite_done(r)
    aof = read_aof(master)
    assert b"ONCE._EVENTS" in aof and b"ONCE._HIST" in aof
    fast_restart(master)
    r = master.client(decode_responses=True, protocol=2)
    assert digest(r) == d and visible(r, "q") == before
    # ids go on from where they were, after the reload and the restart
    nxt = push(r, "q", "after-restart")
    new = events(r, "q", "AFTER", ev[-1][0])
    assert [(e[0], e[1], e[2], e[3], e[5]) for e in new] == [(ev[-1][0] + 1, "push", nxt, 0, None)], new
    # the replica (re-attached after the master's restart) gets the new event and holds the same
    wait_until(lambda: rr.info("replication").get("master_link_status") == "up", timeout=20, what="link up")
    wait_in_sync(r, rr)
    after = visible(r, "q")
    assert visible(rr, "q") == after and digest(rr) == digest(r)
    d2 = digest(r)
    # the replica restarted from its own AOF holds the same
    replica.restart()
    rr = replica.client(decode_responses=True, protocol=2)
    rr.execute_command("REPLICAOF", "NO", "ONE")
    assert digest(rr) == d2 and visible(rr, "q") == after
    # promoted, it goes on numbering where the master was
    last = after["events"][-1][0]
    job = push(rr, "q", "on-the-promoted-replica")
    assert [(e[0], e[1], e[2]) for e in events(rr, "q", "AFTER", last)] == [(last + 1, "push", job)]


def test_replica_replays_time_carrying_commands_at_the_masters_time(make_server):
    """ACK/NACK/RETRY/CANCEL on the master carry their time: the replica's event times, latencies and digest
    are the master's even though it applies them later."""
    master = make_server()
    replica = make_server(extra=["--appendonly", "yes", "--appendfsync", "always"])
    attach_replica(replica, master)
    r = master.client(decode_responses=True, protocol=2)
    rr = replica.client(decode_responses=True, protocol=2)
    enable(r, "q", 100)
    jobs = [push(r, "q", f"p{i}", "RETRIES", 0) for i in range(6)]
    time.sleep(0.02)
    got = reserve(r, "q", "COUNT", 6, "LEASE", 600_000)
    time.sleep(0.02)
    r.execute_command("ONCE.ACK", "q", got[0][0])
    r.execute_command("ONCE.NACK", "q", got[1][0], "ERROR", "e")
    r.execute_command("ONCE.RETRY", "q", got[1][0])
    r.execute_command("ONCE.CANCEL", "q", got[1][0])
    r.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
    wait_in_sync(r, rr)
    assert visible(rr, "q") == visible(r, "q") and digest(rr) == digest(r)
    m_events = events(r, "q")
    r.execute_command("CLIENT", "UNPAUSE")
    assert len(m_events) == 6 + 6 + 1 + 2 + 1 + 1
    replica.restart()
    rr = replica.client(decode_responses=True, protocol=2)
    rr.execute_command("REPLICAOF", "NO", "ONE")
    assert events(rr, "q") == m_events and digest(rr) == digest(r)
    assert jobs[0] == got[0][0]


def test_ids_are_not_reused_after_the_log_was_off_across_reload_and_rewrite(make_server):
    """The last id handed out persists even while the log is empty (EVENTS-MAX 0): a reader's AFTER id never
    matches an event from after a reload or an AOF rewrite + restart."""
    s = make_server(extra=["--appendonly", "yes", "--aof-use-rdb-preamble", "no"])
    r = s.client(decode_responses=True, protocol=2)
    enable(r, "q", 5)
    for i in range(7):
        push(r, "q", f"p{i}")
    assert ids_of(events(r, "q"))[-1] == 7
    enable(r, "q", 0)
    assert r.execute_command("DEBUG", "RELOAD") == "OK"
    enable(r, "q", 5)
    push(r, "q", "after-reload")
    assert ids_of(events(r, "q")) == [8]
    enable(r, "q", 0)
    r.execute_command("BGREWRITEAOF")
    wait_rewrite_done(r)
    fast_restart(s)
    r = s.client(decode_responses=True, protocol=2)
    enable(r, "q", 5)
    push(r, "q", "after-restart")
    assert ids_of(events(r, "q")) == [9]


def test_a_reader_blocked_on_a_replica_is_woken_by_the_masters_event(make_server):
    master = make_server()
    replica = make_server()
    attach_replica(replica, master)
    r = master.client(decode_responses=True, protocol=2)
    rr = replica.client(decode_responses=True, protocol=2)
    enable(r, "q", 100)
    push(r, "q", "old")
    wait_in_sync(r, rr, stable_reads=1)
    assert ids_of(events(rr, "q")) == [1]
    base = blocked_clients(rr)
    out = {}
    t = threading.Thread(target=_blocked_events, args=(replica, "q", ["AFTER", "$", "BLOCK", 5000], out))
    t.start()
    wait_until(lambda: blocked_clients(rr) == base + 1, timeout=3, what="the reader on the replica to block")
    sent = time.monotonic()
    job = push(r, "q", "new")
    t.join(6)
    assert [(e[0], e[1], e[2]) for e in out["reply"]] == [(2, "push", job)], out
    assert out["done"] - sent < 1.0


# ---- bad input -----------------------------------------------------------------------------------------------------


def test_bad_input_is_refused_and_changes_nothing(r, key):
    enable(r, key, 7)
    push(r, key, "p")
    reserve_one(r, key)
    r.set(key + ":s", "string")
    s = key + ":s"
    bad = [
        (["ONCE.EVENTS", key, "COUNT", 0], "COUNT must be between 1 and 10000, got 0"),
        (["ONCE.EVENTS", key, "COUNT", 10001], "COUNT must be between 1 and 10000, got 10001"),
        (["ONCE.EVENTS", key, "COUNT", "x"], "COUNT must be an integer, got 'x'"),
        (["ONCE.EVENTS", key, "AFTER", -1], r"AFTER must be an event id \(a non-negative integer\) or \$, got '-1'"),
        (["ONCE.EVENTS", key, "AFTER", "abc"], r"AFTER must be an event id .* got 'abc'"),
        (["ONCE.EVENTS", key, "AFTER", "1.5"], r"AFTER must be an event id .* got '1.5'"),
        (["ONCE.EVENTS", key, "AFTER"], "option 'AFTER' needs a value"),
        (["ONCE.EVENTS", key, "BLOCK", -1], "BLOCK must be between 0 and"),
        (["ONCE.EVENTS", key, "COUNT", 5, "COUNT", 6], "option 'COUNT' given twice"),
        (["ONCE.EVENTS", key, "NOPE"], "unknown option 'NOPE'"),
        (["ONCE.EVENTS"], "wrong number of arguments for 'once.events' command"),
        (["ONCE.EVENTS", s], "WRONGTYPE"),
        (["ONCE.HISTOGRAM", key, "latency"], "histogram must be wait|run, got 'latency'"),
        (["ONCE.HISTOGRAM", key, ""], "histogram must be wait|run, got ''"),
        (["ONCE.HISTOGRAM", key], "wrong number of arguments for 'once.histogram' command"),
        (["ONCE.HISTOGRAM", key, "wait", "run"], "wrong number of arguments for 'once.histogram' command"),
        (["ONCE.HISTOGRAM", s, "wait"], "WRONGTYPE"),
        (["ONCE.CONFIGURE", key, "EVENTS-MAX", 100001], "EVENTS-MAX must be between 0 and 100000, got 100001"),
        (["ONCE.CONFIGURE", key, "EVENTS-MAX", -1], "EVENTS-MAX must be between 0 and 100000, got -1"),
        (["ONCE.CONFIGURE", key, "EVENTS-MAX", "x"], "EVENTS-MAX must be an integer, got 'x'"),
        (["ONCE.CONFIGURE", key, "EVENTS-MAX"], "option 'EVENTS-MAX' needs a value"),
        (["ONCE.CONFIGURE", key, "EVENTS-MAX", 0, "RETRIES", 1001], "RETRIES must be between 0 and 1000, got 1001"),
        (["ONCE.CONFIGURE", s, "EVENTS-MAX", 5], "WRONGTYPE"),
    ]
    before = (digest_value(r, key, s), events(r, key), stats(r, key), histogram(r, key, "wait"))
    for args, message in bad:
        with pytest.raises(redis.ResponseError, match=message):
            r.execute_command(*args)
    assert (digest_value(r, key, s), events(r, key), stats(r, key), histogram(r, key, "wait")) == before
    assert r.get(s) == "string"
    assert stats(r, key)["events_max"] == 7
    missing = key + ":missing"
    for args in (["ONCE.CONFIGURE", missing, "EVENTS-MAX", 100001], ["ONCE.EVENTS", missing, "COUNT", 0],
                 ["ONCE.HISTOGRAM", missing, "nope"]):
        with pytest.raises(redis.ResponseError):
            r.execute_command(*args)
    assert r.exists(missing) == 0                                     # nothing created
    assert r.execute_command("ONCE.HISTOGRAM", missing, "run") and r.exists(missing) == 0
    assert events(r, missing, "AFTER", "$") is None and r.exists(missing) == 0
