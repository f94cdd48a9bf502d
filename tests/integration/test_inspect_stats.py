"""ONCE.INSPECT and ONCE.STATS: every field, in order, in RESP2 and RESP3, for every state."""
from helpers import (EMPTY_STATS, INSPECT_FIELDS, STATS_FIELDS, as_map, inspect, keys_in_order, push, reserve_one, server_ms,
                     stats, wait_until)


def test_inspect_fields_in_order_resp2_and_resp3(r, r3, key):
    job_id = push(r, key, "p")
    flat = r.execute_command("ONCE.INSPECT", key, job_id)
    assert isinstance(flat, list)
    assert keys_in_order(flat) == INSPECT_FIELDS
    m = r3.execute_command("ONCE.INSPECT", key, job_id)
    assert isinstance(m, dict)
    assert keys_in_order(m) == INSPECT_FIELDS
    assert m == as_map(flat)


def test_inspect_unknown_is_nil(r, r3, key):
    assert inspect(r, key, "nope") is None               # missing key
    push(r, key, "p")
    assert inspect(r, key, "nope") is None               # existing key
    assert r3.execute_command("ONCE.INSPECT", key, "nope") is None


def test_inspect_ready_job(r, key):
    before = server_ms(r)
    job_id = push(r, key, "body", "RETRIES", 4, "BACKOFF", 20, "LEASE", 3000, "PRIORITY", 7)
    after = server_ms(r)
    assert inspect(r, key, job_id) == {
        "id": job_id, "state": "ready", "payload": "body", "attempts": 0, "retries": 4, "priority": 7,
        "created": inspect(r, key, job_id)["created"], "due": None, "lease_deadline": None, "last_error": None,
        "backoff": 20, "lease": 3000, "tries": 0, "died": None, "group": None,
        "result": None, "progress": None, "finished": None,
    }
    assert before <= inspect(r, key, job_id)["created"] <= after


def test_inspect_delayed_job(r, key):
    before = server_ms(r)
    job_id = push(r, key, "body", "DELAY", 30000)
    job = inspect(r, key, job_id)
    assert job["state"] == "delayed"
    assert job["due"] >= before + 30000 and job["due"] - job["created"] == 30000
    assert job["lease_deadline"] is None and job["attempts"] == 0


def test_inspect_reserved_job(r, key):
    job_id = push(r, key, "body")
    before = server_ms(r)
    reserve_one(r, key, "LEASE", 4000)
    after = server_ms(r)
    job = inspect(r, key, job_id)
    assert job["state"] == "reserved"
    assert job["attempts"] == 1
    assert job["due"] is None
    assert before + 4000 <= job["lease_deadline"] <= after + 4000
    assert job["lease"] is None           # RESERVE's LEASE does not change the job's own LEASE


def test_inspect_dead_job(r, key):
    job_id = push(r, key, "body", "RETRIES", 0)
    reserve_one(r, key)
    r.execute_command("ONCE.NACK", key, job_id, "ERROR", "bad input")
    job = inspect(r, key, job_id)
    assert job["state"] == "dead"
    assert job["attempts"] == 1 and job["retries"] == 0
    assert job["due"] is None and job["lease_deadline"] is None
    assert job["last_error"] == "bad input"
    assert job["payload"] == "body"
    assert job["result"] is None and job["progress"] is None and job["finished"] == job["died"]


def test_inspect_kept_completed_job_shows_result_progress_and_finished(r, r3, key):
    job_id = push(r, key, "body", "KEEP", 60000)
    reserve_one(r, key)
    assert r.execute_command("ONCE.PROGRESS", key, job_id, "half") == 1
    job = inspect(r, key, job_id)
    assert (job["state"], job["progress"], job["result"], job["finished"]) == ("reserved", "half", None, None)
    before = server_ms(r)
    assert r.execute_command("ONCE.ACK", key, job_id, "RESULT", "done") == 1
    after = server_ms(r)
    job = inspect(r, key, job_id)
    assert keys_in_order(r.execute_command("ONCE.INSPECT", key, job_id)) == INSPECT_FIELDS
    assert keys_in_order(r3.execute_command("ONCE.INSPECT", key, job_id)) == INSPECT_FIELDS
    assert (job["state"], job["payload"], job["attempts"], job["result"], job["progress"]) == (
        "completed", "body", 1, "done", "half")
    assert job["lease_deadline"] is None and job["due"] is None and job["died"] is None
    assert before <= job["finished"] <= after


def test_inspect_kept_cancelled_job(r, key):
    job_id = push(r, key, "body", "KEEP", 60000)
    assert r.execute_command("ONCE.CANCEL", key, job_id) == 1
    job = inspect(r, key, job_id)
    assert (job["state"], job["attempts"], job["result"]) == ("cancelled", 0, None)
    assert job["finished"] is not None


def test_stats_fields_in_order_resp2_and_resp3(r, r3, key):
    push(r, key, "p")
    flat = r.execute_command("ONCE.STATS", key)
    assert isinstance(flat, list)
    assert keys_in_order(flat) == STATS_FIELDS
    m = r3.execute_command("ONCE.STATS", key)
    assert isinstance(m, dict)
    assert keys_in_order(m) == STATS_FIELDS
    assert m == as_map(flat)


def test_stats_missing_key_is_all_zeros(r, r3, key):
    assert stats(r, key) == EMPTY_STATS
    assert r3.execute_command("ONCE.STATS", key) == EMPTY_STATS


def test_stats_every_count_and_total(r, key):
    ready = push(r, key, "ready", "PRIORITY", -1)
    push(r, key, "delayed", "DELAY", 60000)
    acked = push(r, key, "acked", "PRIORITY", 5)
    reserved = push(r, key, "reserved", "PRIORITY", 4)
    retried = push(r, key, "retried", "PRIORITY", 3, "BACKOFF", 60000)
    dead = push(r, key, "dead", "PRIORITY", 2, "RETRIES", 0)
    got = [j[0] for j in r.execute_command("ONCE.RESERVE", key, "COUNT", 4)]
    assert got == [acked, reserved, retried, dead]
    assert r.execute_command("ONCE.ACK", key, acked) == 1
    assert r.execute_command("ONCE.NACK", key, retried) == 1
    assert r.execute_command("ONCE.NACK", key, dead) == 1
    got = stats(r, key)
    # Latency depends on the clock: 4 reservations waited, 3 ended by ACK or NACK (each a run sample).
    latency = {k: got.pop(k) for k in ("wait_p50_ms", "wait_p99_ms", "run_p50_ms", "run_p99_ms", "wait_sum_ms",
                                       "run_sum_ms")}
    assert None not in latency.values(), latency
    assert r.execute_command("ONCE.HISTOGRAM", key, "wait")[-1][1] == 4
    assert r.execute_command("ONCE.HISTOGRAM", key, "run")[-1][1] == 3
    assert got == {
        "ready": 1, "delayed": 2, "reserved": 1, "dead": 1, "schedules": 0, "completed": 0, "cancelled": 0, "waiting": 0,
        "groups": 0, "pushed_total": 6, "reserved_total": 4, "acked_total": 1, "nacked_total": 2, "expired_total": 0,
        "retried_total": 1, "dead_total": 1, "dead_dropped_total": 0, "expired_unstarted_total": 0,
        "paused": 0, "retries": None, "backoff": None, "lease": None, "dead_max": 0, "dead_ttl": 0, "events_max": 0,
        "concurrency": 0, "rate": 0, "rate_per": 0, "group_concurrency": 0, "group_rate": 0, "group_rate_per": 0,
        "keep": 0, "keep_max": 0,
    }
    assert inspect(r, key, ready)["state"] == "ready"
    assert inspect(r, key, reserved)["state"] == "reserved"


def test_stats_counts_kept_jobs_and_jobs_expired_before_start(r, key):
    r.execute_command("ONCE.CONFIGURE", key, "KEEP", 60000, "KEEP-MAX", 10)
    done = push(r, key, "done")
    running = push(r, key, "running")
    waiting = push(r, key, "waiting")
    assert [j[0] for j in r.execute_command("ONCE.RESERVE", key, "COUNT", 2)] == [done, running]
    assert r.execute_command("ONCE.ACK", key, done, "RESULT", "r") == 1
    assert r.execute_command("ONCE.CANCEL", key, running, waiting) == 2
    push(r, key, "late", "TTL", 1)
    push(r, key, "late-drop", "TTL", 1, "DROP")
    wait_until(lambda: stats(r, key)["expired_unstarted_total"] == 2, what="both TTLs to run out")
    got = stats(r, key)
    assert (got["completed"], got["cancelled"], got["ready"], got["reserved"], got["dead"]) == (1, 2, 0, 0, 1), got
    assert (got["acked_total"], got["dead_total"], got["expired_total"], got["expired_unstarted_total"]) == (
        1, 1, 0, 2), got
    assert (got["keep"], got["keep_max"]) == (60000, 10), got


def test_stats_totals_outlive_jobs(r, key):
    a = push(r, key, "a")
    reserve_one(r, key)
    r.execute_command("ONCE.ACK", key, a)
    s = stats(r, key)
    assert (s["ready"], s["reserved"], s["pushed_total"], s["reserved_total"], s["acked_total"]) == (0, 0, 1, 1, 1)
    assert r.exists(key) == 1
