"""ONCE.NACK (ATTEMPT fence, ERROR, DELAY, DEAD) and ONCE.EXTEND."""
import time

from helpers import inspect, push, reserve, reserve_one, server_ms, state, stats, wait_until


def nack(r, key, job_id, *opts):
    return r.execute_command("ONCE.NACK", key, job_id, *opts)


def extend(r, key, job_id, ms, *opts):
    return r.execute_command("ONCE.EXTEND", key, job_id, ms, *opts)


def test_nack_schedules_a_retry_with_backoff(r, key):
    job_id = push(r, key, "p", "RETRIES", 2, "BACKOFF", 10000)
    reserve_one(r, key)
    before = server_ms(r)
    assert nack(r, key, job_id) == 1
    after = server_ms(r)
    job = inspect(r, key, job_id)
    assert job["state"] == "delayed"
    assert job["attempts"] == 1
    assert job["lease_deadline"] is None
    assert before + 5000 <= job["due"] <= after + 10000        # first retry: d = BACKOFF, jitter [d/2, d]
    s = stats(r, key)
    assert (s["reserved"], s["delayed"], s["nacked_total"], s["retried_total"], s["dead_total"]) == (0, 1, 1, 1, 0)
    assert reserve(r, key) is None


def test_nack_error_text_shown_by_inspect(r, key):
    job_id = push(r, key, "p", "BACKOFF", 0)
    reserve_one(r, key)
    assert nack(r, key, job_id, "ERROR", "boom: disk full") == 1
    assert inspect(r, key, job_id)["last_error"] == "boom: disk full"
    wait_until(lambda: state(r, key, job_id) == "ready", what="retry ready")
    reserve_one(r, key)
    assert nack(r, key, job_id) == 1                           # no ERROR: the latest text given stays
    assert inspect(r, key, job_id)["last_error"] == "boom: disk full"
    wait_until(lambda: state(r, key, job_id) == "ready", what="retry ready")
    reserve_one(r, key)
    assert nack(r, key, job_id, "error", "second") == 1
    assert inspect(r, key, job_id)["last_error"] == "second"


def test_nack_error_text_is_binary_safe(r, key):
    job_id = push(r, key, "p", "BACKOFF", 60000)
    reserve_one(r, key)
    text = "line 1\r\nline 2\ttab 'quoted' \u00e9"
    assert nack(r, key, job_id, "ERROR", text) == 1
    assert inspect(r, key, job_id)["last_error"] == text


def test_nack_attempt_fence(r, key):
    job_id = push(r, key, "p", "BACKOFF", 60000)
    _, _, attempt = reserve_one(r, key)
    assert attempt == 1
    assert nack(r, key, job_id, "ATTEMPT", 2, "ERROR", "stale") == 0
    job = inspect(r, key, job_id)
    assert job["state"] == "reserved" and job["last_error"] is None
    assert stats(r, key)["nacked_total"] == 0
    assert nack(r, key, job_id, "ATTEMPT", 1) == 1
    assert inspect(r, key, job_id)["state"] == "delayed"


def test_stale_worker_cannot_nack_or_extend_after_lease_expired(r, key):
    job_id = push(r, key, "p", "BACKOFF", 0, "RETRIES", 5)
    _, _, first = reserve_one(r, key, "LEASE", 50)
    wait_until(lambda: state(r, key, job_id) == "ready", what="lease expiry and retry")
    _, _, second = reserve_one(r, key)
    assert (first, second) == (1, 2)
    deadline = inspect(r, key, job_id)["lease_deadline"]
    assert nack(r, key, job_id, "ATTEMPT", first, "ERROR", "late") == 0
    assert extend(r, key, job_id, 100000, "ATTEMPT", first) is None
    job = inspect(r, key, job_id)
    assert job["state"] == "reserved" and job["attempts"] == 2 and job["lease_deadline"] == deadline
    assert job["last_error"] == "lease expired"
    assert extend(r, key, job_id, 100000, "ATTEMPT", second) is not None
    assert nack(r, key, job_id, "ATTEMPT", second) == 1


def test_nack_delay_replaces_backoff(r, key):
    job_id = push(r, key, "p", "BACKOFF", 1)
    reserve_one(r, key)
    before = server_ms(r)
    assert nack(r, key, job_id, "DELAY", 5000) == 1
    after = server_ms(r)
    job = inspect(r, key, job_id)
    assert job["state"] == "delayed"
    assert before + 5000 <= job["due"] <= after + 5000          # exactly DELAY, no jitter
    assert stats(r, key)["retried_total"] == 1


def test_nack_delay_zero_retries_now(r, key):
    job_id = push(r, key, "p", "BACKOFF", 60000)
    reserve_one(r, key)
    assert nack(r, key, job_id, "DELAY", 0) == 1
    wait_until(lambda: reserve(r, key), timeout=1, what="job retried with DELAY 0")
    assert inspect(r, key, job_id)["attempts"] == 2


def test_retried_job_joins_the_back(r, key):
    a = push(r, key, "a")
    b = push(r, key, "b")
    assert reserve_one(r, key)[0] == a
    assert nack(r, key, a, "DELAY", 0) == 1
    wait_until(lambda: state(r, key, a) == "ready", timeout=1, what="retry ready")
    c = push(r, key, "c")
    assert [j[0] for j in reserve(r, key, "COUNT", 3)] == [b, a, c]


def test_nack_dead(r, key):
    job_id = push(r, key, "p", "RETRIES", 5)
    reserve_one(r, key)
    assert nack(r, key, job_id, "DEAD", "ERROR", "poison") == 1
    job = inspect(r, key, job_id)
    assert job["state"] == "dead"
    assert job["last_error"] == "poison"
    assert job["due"] is None and job["lease_deadline"] is None
    s = stats(r, key)
    assert (s["dead"], s["dead_total"], s["retried_total"], s["nacked_total"], s["reserved"]) == (1, 1, 0, 1, 0)
    assert reserve(r, key) is None


def test_nack_with_no_attempts_left_is_dead_whatever_delay(r, key):
    job_id = push(r, key, "p", "RETRIES", 0)
    reserve_one(r, key)
    assert nack(r, key, job_id, "DELAY", 5000) == 1
    assert inspect(r, key, job_id)["state"] == "dead"
    s = stats(r, key)
    assert (s["dead"], s["delayed"], s["dead_total"], s["retried_total"]) == (1, 0, 1, 0)


def test_nack_of_job_not_reserved_is_zero(r, key):
    ready = push(r, key, "p")
    delayed = push(r, key, "p", "DELAY", 60000)
    assert nack(r, key, ready) == 0
    assert nack(r, key, delayed, "DEAD") == 0
    assert nack(r, key, "unknown") == 0
    assert inspect(r, key, ready)["state"] == "ready"
    assert inspect(r, key, delayed)["state"] == "delayed"
    s = stats(r, key)
    assert (s["nacked_total"], s["dead"], s["ready"], s["delayed"]) == (0, 0, 1, 1)


def test_extend_sets_deadline_to_now_plus_ms(r, key):
    job_id = push(r, key, "p")
    reserve_one(r, key, "LEASE", 1000)
    before = server_ms(r)
    deadline = extend(r, key, job_id, 60000)
    after = server_ms(r)
    assert isinstance(deadline, int)
    assert before + 60000 <= deadline <= after + 60000
    assert inspect(r, key, job_id)["lease_deadline"] == deadline
    before = server_ms(r)
    shorter = extend(r, key, job_id, 2000)                       # sets, does not add
    after = server_ms(r)
    assert before + 2000 <= shorter <= after + 2000
    assert inspect(r, key, job_id)["lease_deadline"] == shorter


def test_extend_not_reserved_is_nil(r, key):
    ready = push(r, key, "p")
    delayed = push(r, key, "p", "DELAY", 60000)
    assert extend(r, key, ready, 1000) is None
    assert extend(r, key, delayed, 1000) is None
    assert extend(r, key, "unknown", 1000) is None
    assert inspect(r, key, ready)["lease_deadline"] is None


def test_extend_attempt_fence(r, key):
    job_id = push(r, key, "p")
    reserve_one(r, key, "LEASE", 10000)
    deadline = inspect(r, key, job_id)["lease_deadline"]
    assert extend(r, key, job_id, 90000, "ATTEMPT", 2) is None
    assert inspect(r, key, job_id)["lease_deadline"] == deadline
    new = extend(r, key, job_id, 90000, "attempt", 1)
    assert new is not None and new > deadline
    assert inspect(r, key, job_id)["lease_deadline"] == new


def test_extend_keeps_the_lease_alive(r, key):
    job_id = push(r, key, "p")
    reserve_one(r, key, "LEASE", 100)
    assert extend(r, key, job_id, 5000) is not None
    time.sleep(0.4)   # absence check: well past the original deadline, nothing may happen
    job = inspect(r, key, job_id)
    assert job["state"] == "reserved" and job["attempts"] == 1 and job["last_error"] is None
    assert stats(r, key)["expired_total"] == 0
