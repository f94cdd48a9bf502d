"""Operating a queue: LIST (orders, cursors under concurrent writes), PURGE, RETRY ALL, PAUSE/RESUME,
CONFIGURE precedence, DEAD-MAX and DEAD-TTL, keyspace notifications; each survives reloads and a replica."""
import random
import threading
import time

import pytest
import redis

from durability_helpers import RespPipe, attach_replica, digest, fast_restart, wait_in_sync
from helpers import as_map, inspect, push, reserve_one, stats, wait_until


def page(r, queue, st, cursor="0", count=100, *extra):
    nxt, jobs = r.execute_command("ONCE.LIST", queue, st, "CURSOR", cursor, "COUNT", count, *extra)
    return nxt, [as_map(j) for j in jobs]


def walk(r, queue, st, count=7, during=None):
    """Every job a full walk returns, page by page (calling `during()` between pages)."""
    out, cursor = [], "0"
    for _ in range(100_000):
        cursor, jobs = page(r, queue, st, cursor, count)
        out += jobs
        if during:
            during()
        if cursor == "0":
            return out
    raise AssertionError("the walk did not end")


def make_dead(r, queue, n, error="poison"):
    ids = [push(r, queue, f"bad{i}", "RETRIES", 0, "ID", f"d{i}") for i in range(n)]
    for _ in range(n):
        job, _, attempt = reserve_one(r, queue)
        assert r.execute_command("ONCE.NACK", queue, job, "ATTEMPT", attempt, "ERROR", f"{error} {job}") == 1
    return ids


def test_list_orders_every_state(r, key):
    dead = make_dead(r, key, 2)
    low = push(r, key, "low", "PRIORITY", -1)
    a, b = push(r, key, "a"), push(r, key, "b")
    high = push(r, key, "high", "PRIORITY", 5)
    late = push(r, key, "late", "DELAY", 90_000)
    soon = push(r, key, "soon", "DELAY", 60_000)
    held1 = push(r, key, "h1", "PRIORITY", 9)
    held2 = push(r, key, "h2", "PRIORITY", 9)
    r.execute_command("ONCE.RESERVE", key, "COUNT", 1, "LEASE", 50_000)
    r.execute_command("ONCE.RESERVE", key, "COUNT", 1, "LEASE", 20_000)
    ids = lambda st: [j["id"] for j in walk(r, key, st, count=2)]      # noqa: E731
    assert ids("ready") == [high, a, b, low]                           # RESERVE's order
    assert ids("delayed") == [soon, late]                              # by due time
    assert ids("reserved") == [held2, held1]                           # by lease deadline
    assert ids("dead") == [dead[1], dead[0]]                           # most recent first
    nxt, jobs = page(r, key, "ready", "0", 10)
    assert nxt == "0" and "payload" not in jobs[0] and jobs[0]["state"] == "ready"
    _, jobs = page(r, key, "dead", "0", 10, "WITHPAYLOADS")
    assert jobs[0]["payload"] == "bad1" and jobs[0]["last_error"] == f"poison {dead[1]}" and jobs[0]["died"] > 0


def test_list_missing_key_and_empty_state(r, key):
    assert r.execute_command("ONCE.LIST", key, "ready") == ["0", []]
    push(r, key, "p")
    assert r.execute_command("ONCE.LIST", key, "dead") == ["0", []]


def test_paging_through_10000_jobs_while_others_write_misses_and_repeats_nothing(server, r, key):
    pipe = RespPipe(server.port)
    ids = pipe.run([["ONCE.PUSH", key, f"p{i}", "PRIORITY", i % 3] for i in range(10_000)])
    pipe.close()
    w = server.client(decode_responses=True, protocol=2)
    rng = random.Random(7)
    touched = set()

    def churn():
        # Other clients: push new jobs, reserve and ack some, fail some (which leave ready for good here).
        for _ in range(5):
            push(w, key, "new")
        got = w.execute_command("ONCE.RESERVE", key, "COUNT", rng.randint(0, 3) or 1)
        for job_id, _, attempt in got or []:
            touched.add(job_id)
            if rng.random() < 0.5:
                w.execute_command("ONCE.ACK", key, job_id)
            else:
                w.execute_command("ONCE.NACK", key, job_id, "ATTEMPT", attempt, "DEAD")

    seen = [j["id"] for j in walk(r, key, "ready", count=50, during=churn)]
    assert len(seen) == len(set(seen)), "a job was returned twice"
    stayed = set(ids) - touched
    assert stayed <= set(seen), f"{len(stayed - set(seen))} jobs that stayed ready were missed"
    w.close()


def test_list_bad_input(r, key):
    push(r, key, "p")
    bad = [
        (["ONCE.LIST", key, "finished"], "state must be ready|delayed|reserved|dead"),
        (["ONCE.LIST", key, "ready", "COUNT", 0], "COUNT must be between 1 and 1000, got 0"),
        (["ONCE.LIST", key, "ready", "COUNT", 1001], "COUNT must be between 1 and 1000, got 1001"),
        (["ONCE.LIST", key, "ready", "CURSOR", "banana"], "invalid cursor 'banana'"),
        (["ONCE.LIST", key, "ready", "CURSOR", "1:-2"], "invalid cursor '1:-2'"),
        (["ONCE.LIST", key, "ready", "NOPE"], "unknown option 'NOPE'"),
        (["ONCE.PURGE", key, "reserved"], "state must be ready|delayed|dead"),
        (["ONCE.CONFIGURE", key, "RETRIES", 1001], "RETRIES must be between 0 and 1000, got 1001"),
        (["ONCE.CONFIGURE", key, "DEAD-MAX", -1], "DEAD-MAX must be between 0 and 1000000000, got -1"),
        (["ONCE.CONFIGURE", key, "RATE", 5], "RATE needs PER ms"),
        (["ONCE.CONFIGURE", key, "RATE", 5, "PER", 0], "PER must be between 1 and 86400000, got 0"),
        (["ONCE.CONFIGURE", key, "CONCURRENCY", -1], "CONCURRENCY must be between 0 and 1000000, got -1"),
        (["ONCE.CONFIGURE", key, "LEASE"], "option 'LEASE' needs a value"),
    ]
    before = r.execute_command("DEBUG", "DIGEST-VALUE", key)
    for args, message in bad:
        with pytest.raises(redis.ResponseError, match=message):
            r.execute_command(*args)
    assert r.execute_command("DEBUG", "DIGEST-VALUE", key) == before


def test_purge_removes_a_state_at_once_and_the_ids_are_free_again(r, key):
    make_dead(r, key, 3)
    ready = [push(r, key, f"r{i}", "ID", f"r{i}") for i in range(50)]
    push(r, key, "later", "DELAY", 60_000)
    held = push(r, key, "held", "PRIORITY", 100)
    assert reserve_one(r, key)[0] == held
    assert r.execute_command("ONCE.PURGE", key, "ready") == 50
    st = stats(r, key)
    assert (st["ready"], st["delayed"], st["reserved"], st["dead"]) == (0, 1, 1, 3)
    assert inspect(r, key, ready[0]) is None and r.execute_command("ONCE.CANCEL", key, ready[1]) == 0
    assert r.execute_command("ONCE.RESERVE", key) is None
    assert push(r, key, "again", "ID", "r0") == "r0"                  # the id is free again
    assert inspect(r, key, "r0")["payload"] == "again"
    assert r.execute_command("ONCE.PURGE", key, "DEAD") == 3
    assert r.execute_command("ONCE.PURGE", key, "delayed") == 1
    assert r.execute_command("ONCE.PURGE", key, "delayed") == 0
    st = stats(r, key)
    assert (st["ready"], st["delayed"], st["reserved"], st["dead"]) == (1, 0, 1, 0)
    assert r.execute_command("ONCE.ACK", key, held) == 1


def test_purge_of_many_is_freed_by_the_timer_and_survives_a_reload(fresh_server):
    r = fresh_server.client(decode_responses=True, protocol=2)
    pipe = RespPipe(fresh_server.port)
    pipe.run([["ONCE.PUSH", "q", f"p{i}", "DELAY", 600_000] for i in range(100_000)])
    pipe.close()
    full = r.memory_usage("q")
    assert r.execute_command("ONCE.PURGE", "q", "delayed") == 100_000
    assert stats(r, "q")["delayed"] == 0
    wait_until(lambda: r.memory_usage("q") < full / 10, timeout=10, what="purged jobs freed")
    assert r.info("once")["once_timer_max_tick_us"] < 20_000
    push(r, "q", "kept")
    before = r.execute_command("DEBUG", "DIGEST-VALUE", "q")
    assert r.execute_command("DEBUG", "RELOAD") == "OK"
    assert r.execute_command("DEBUG", "DIGEST-VALUE", "q") == before


def test_retry_all_sends_every_dead_job_back_in_steps(fresh_server):
    r = fresh_server.client(decode_responses=True, protocol=2)
    n = 5000
    pipe = RespPipe(fresh_server.port)
    pipe.run([["ONCE.PUSH", "q", f"p{i}", "RETRIES", 0] for i in range(n)])
    got = r.execute_command("ONCE.RESERVE", "q", "COUNT", 10_000)
    pipe.run([["ONCE.NACK", "q", j[0], "ATTEMPT", j[2]] for j in got])
    pipe.close()
    assert stats(r, "q")["dead"] == n
    assert r.execute_command("ONCE.RETRY", "q", "ALL") == n
    wait_until(lambda: stats(r, "q")["ready"] == n, timeout=10, what="all dead jobs back in ready")
    assert stats(r, "q")["dead"] == 0
    assert r.execute_command("ONCE.RETRY", "q", "all") == 0
    first = r.execute_command("ONCE.RESERVE", "q")[0]
    assert first[2] == 2                                                # its attempt number kept growing


def test_pause_holds_reserve_and_resume_serves_a_blocked_reserver(server, r, key):
    assert r.execute_command("ONCE.RESUME", key) == 0                   # no such queue yet: made, not paused
    job = push(r, key, "p")
    assert r.execute_command("ONCE.PAUSE", key) == 1
    assert r.execute_command("ONCE.PAUSE", key) == 0
    assert stats(r, key)["paused"] == 1
    assert r.execute_command("ONCE.RESERVE", key) is None
    push(r, key, "soon", "DELAY", 50)
    wait_until(lambda: stats(r, key)["ready"] == 2, timeout=3, what="the timer still promotes")
    got = {}
    w = server.client(decode_responses=True, protocol=2)
    t = threading.Thread(target=lambda: got.setdefault("r", w.execute_command("ONCE.RESERVE", key, "BLOCK", 5000)))
    t.start()
    time.sleep(0.3)
    assert "r" not in got
    assert r.execute_command("ONCE.RESUME", key) == 1
    t.join(5)
    assert got["r"][0][0] == job
    assert stats(r, key)["paused"] == 0
    w.close()


def test_configure_precedence_job_then_queue_then_module(r, key):
    shown = as_map(r.execute_command("ONCE.CONFIGURE", key))
    assert shown == {
        "retries": None, "backoff": None, "lease": None, "dead_max": 0, "dead_ttl": 0, "paused": 0, "events_max": 0,
        "concurrency": 0, "rate": 0, "rate_per": 0, "group_concurrency": 0, "group_rate": 0, "group_rate_per": 0,
        "keep": 0, "keep_max": 0}
    assert list(shown)[-3:] == ["group_rate_per", "keep", "keep_max"], list(shown)
    assert r.exists(key) == 0                                           # reading creates nothing
    got = as_map(r.execute_command("ONCE.CONFIGURE", key, "RETRIES", 7, "BACKOFF", 55, "LEASE", 4000))
    assert (got["retries"], got["backoff"], got["lease"]) == (7, 55, 4000)
    assert (got["keep"], got["keep_max"]) == (0, 0)                     # untouched settings stay as they were
    got = as_map(r.execute_command("ONCE.CONFIGURE", key, "KEEP", 60000, "KEEP-MAX", 5))
    assert (got["keep"], got["keep_max"], got["retries"], got["backoff"], got["lease"]) == (60000, 5, 7, 55, 4000)
    got = as_map(r.execute_command("ONCE.CONFIGURE", key, "KEEP", 0, "KEEP-MAX", 0))
    assert (got["keep"], got["keep_max"]) == (0, 0)
    plain = push(r, key, "plain")
    own = push(r, key, "own", "RETRIES", 1, "BACKOFF", 9, "LEASE", 100)
    assert (inspect(r, key, plain)["retries"], inspect(r, key, plain)["backoff"]) == (7, 55)
    assert (inspect(r, key, own)["retries"], inspect(r, key, own)["backoff"]) == (1, 9)
    t0 = r.time()
    now = t0[0] * 1000 + t0[1] // 1000
    assert reserve_one(r, key)[0] == plain
    assert 3900 <= inspect(r, key, plain)["lease_deadline"] - now <= 4200   # the queue's LEASE
    assert reserve_one(r, key)[0] == own
    assert inspect(r, key, own)["lease_deadline"] - now <= 1000             # the job's own LEASE
    st = stats(r, key)
    assert (st["retries"], st["backoff"], st["lease"], st["keep"], st["keep_max"]) == (7, 55, 4000, 0, 0)


def test_dead_max_drops_the_oldest_and_dead_ttl_expires_them(server, r, key):
    r.execute_command("ONCE.CONFIGURE", key, "DEAD-MAX", 3)
    ids = make_dead(r, key, 10)
    wait_until(lambda: stats(r, key)["dead"] == 3, timeout=3, what="dead set down to its cap")
    assert stats(r, key)["dead_dropped_total"] == 7
    assert [j["id"] for j in walk(r, key, "dead")] == [ids[9], ids[8], ids[7]]
    assert inspect(r, key, ids[0]) is None
    r.execute_command("ONCE.CONFIGURE", key, "DEAD-MAX", 0, "DEAD-TTL", 300)
    wait_until(lambda: stats(r, key)["dead"] == 0, timeout=5, what="dead jobs expired by DEAD-TTL")
    assert stats(r, key)["dead_dropped_total"] == 10


def test_keyspace_notifications_name_each_transition(server, r, key):
    r.config_set("notify-keyspace-events", "Kd")
    sub = server.client(decode_responses=True, protocol=2).pubsub()
    sub.subscribe(f"__keyspace@0__:{key}")
    assert sub.get_message(timeout=2)["type"] == "subscribe"
    job = push(r, key, "p", "RETRIES", 0)
    _, _, attempt = reserve_one(r, key)
    r.execute_command("ONCE.NACK", key, job, "ATTEMPT", attempt)
    r.execute_command("ONCE.RETRY", key, job)
    reserve_one(r, key)
    r.execute_command("ONCE.ACK", key, job)
    r.execute_command("ONCE.PAUSE", key)
    r.execute_command("ONCE.RESUME", key)
    push(r, key, "x", "ID", "x")
    r.execute_command("ONCE.CANCEL", key, "x")
    events = []
    for _ in range(40):
        m = sub.get_message(timeout=1)
        if m is None:
            break
        events.append(m["data"])
    assert events == ["once.push", "once.reserve", "once.nack", "once.dead", "once.retry", "once.reserve",
                      "once.ack", "once.pause", "once.resume", "once.push", "once.cancel"], events
    sub.close()
    r.config_set("notify-keyspace-events", "")


def test_operations_survive_reload_rewrite_restart_and_a_replica(make_server):
    master = make_server(extra=["--appendonly", "yes"])
    replica = make_server(extra=["--appendonly", "yes"])
    attach_replica(replica, master)
    r = master.client(decode_responses=True, protocol=2)
    rr = replica.client(decode_responses=True, protocol=2)
    r.execute_command("ONCE.CONFIGURE", "q", "RETRIES", 2, "DEAD-MAX", 4, "LEASE", 9000)
    make_dead(r, "q", 6)
    for i in range(20):
        push(r, "q", f"p{i}", "PRIORITY", i % 2)
    push(r, "q", "later", "DELAY", 600_000)
    wait_until(lambda: stats(r, "q")["dead"] == 4, timeout=3, what="dead cap")
    r.execute_command("ONCE.PURGE", "q", "delayed")
    r.execute_command("ONCE.PAUSE", "q")
    for i in range(5):
        r.execute_command("ONCE.CANCEL", "q", walk(r, "q", "ready")[i * 2]["id"])
    r.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
    wait_in_sync(r, rr)
    before = digest(r)
    assert digest(rr) == before
    order = [j["id"] for j in walk(r, "q", "ready")]
    r.execute_command("CLIENT", "UNPAUSE")
    assert r.execute_command("DEBUG", "RELOAD") == "OK"
    assert digest(r) == before and [j["id"] for j in walk(r, "q", "ready")] == order
    r.execute_command("BGREWRITEAOF")
    wait_until(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0, timeout=10, what="rewrite")
    fast_restart(master)
    r = master.client(decode_responses=True, protocol=2)
    assert digest(r) == before and stats(r, "q")["paused"] == 1
    # The replica restarted from its own AOF holds the same.
    replica.restart()
    rr = replica.client(decode_responses=True, protocol=2)
    rr.execute_command("REPLICAOF", "NO", "ONE")
    assert digest(rr) == before


def test_a_cursor_from_before_a_purge_still_finds_what_was_pushed_after(r, key):
    for i in range(6):
        push(r, key, f"old{i}")
    cursor, _ = page(r, key, "ready", "0", 2)
    assert r.execute_command("ONCE.PURGE", key, "ready") == 6
    new = [push(r, key, f"new{i}") for i in range(2)]
    _, jobs = page(r, key, "ready", cursor, 5)
    assert [j["id"] for j in jobs] == new
    # The same when a line empties by itself (every job reserved) and comes back.
    for i in range(3):
        push(r, key, f"more{i}")
    cursor, _ = page(r, key, "ready", "0", 1)
    assert len(r.execute_command("ONCE.RESERVE", key, "COUNT", 10)) == 5
    later = [push(r, key, f"later{i}") for i in range(2)]
    _, jobs = page(r, key, "ready", cursor, 5)
    assert [j["id"] for j in jobs] == later
