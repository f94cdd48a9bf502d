"""Work done by the server timer on its own: promoting delayed jobs, expiring leases, backoff, dead-lettering."""
import threading
import time

from helpers import inspect, push, reserve, reserve_one, server_ms, state, stats, wait_until


def test_delayed_job_becomes_ready_without_any_command(r, key):
    job_id = push(r, key, "p", "DELAY", 100)
    assert state(r, key, job_id) == "delayed"
    time.sleep(0.35)  # the point of the test: the server is left alone past the due time
    assert state(r, key, job_id) == "ready"
    s = stats(r, key)
    assert (s["ready"], s["delayed"]) == (1, 0)


def test_a_deadline_centuries_away_leaves_the_server_answering(r, key):
    """A due time near the largest AT once overflowed Redis's timer clock: the timer fired and re-armed at once,
    forever, and the server never answered again (found by the property test, seed 3351063560)."""
    far = push(r, key, "far", "AT", 4611686018427387904)
    near = push(r, key, "near", "DELAY", 100)
    time.sleep(0.35)  # past the near one: the timer fires and re-arms for the far one
    t = time.monotonic()
    assert state(r, key, near) == "ready"
    assert r.ping() and time.monotonic() - t < 1.0
    assert state(r, key, far) == "delayed"


def test_delayed_job_is_ready_soon_after_due(r, key):
    job_id = push(r, key, "p", "DELAY", 100)
    due = inspect(r, key, job_id)["due"]
    wait_until(lambda: state(r, key, job_id) == "ready", timeout=2, interval=0.002, what="promotion")
    seen = time.time() * 1000
    late = seen - due
    print(f"\n[{r.connection_pool.connection_kwargs['port']}] delayed job seen ready {late:.1f} ms after due")
    assert late < 50
    assert reserve(r, key) == [[job_id, "p", 1]]


def test_blocked_reserve_is_woken_by_promotion(server, r, key):
    job_id = push(r, key, "p", "DELAY", 100)
    due = inspect(r, key, job_id)["due"]
    out = {}

    def worker():
        c = server.client(decode_responses=True)
        out["got"] = c.execute_command("ONCE.RESERVE", key, "BLOCK", 5000)
        out["at"] = time.time() * 1000
        c.close()

    t = threading.Thread(target=worker)
    t.start()
    t.join(6)
    assert out.get("got") == [[job_id, "p", 1]]
    print(f"\nblocked reserve woken {out['at'] - due:.1f} ms after due")
    assert -5 < out["at"] - due < 50


def test_lease_expiry_retries_the_job(r, key):
    job_id = push(r, key, "p", "RETRIES", 3, "BACKOFF", 0)
    reserve_one(r, key, "LEASE", 100)
    deadline = inspect(r, key, job_id)["lease_deadline"]
    wait_until(lambda: state(r, key, job_id) != "reserved", timeout=2, interval=0.002, what="lease expiry")
    print(f"\nlease expiry seen {time.time() * 1000 - deadline:.1f} ms after the deadline")
    assert time.time() * 1000 - deadline < 50
    job = inspect(r, key, job_id)
    assert job["state"] in ("delayed", "ready")
    assert job["attempts"] == 1
    assert job["last_error"] == "lease expired"
    assert job["lease_deadline"] is None
    s = stats(r, key)
    assert (s["expired_total"], s["retried_total"], s["reserved"], s["dead_total"]) == (1, 1, 0, 0)
    _, _, attempt = wait_until(lambda: reserve(r, key), timeout=1, what="retry reservable")[0]
    assert attempt == 2


def test_lease_expiry_waits_for_backoff(r, key):
    job_id = push(r, key, "p", "RETRIES", 3, "BACKOFF", 10000)
    reserve_one(r, key, "LEASE", 50)
    deadline = inspect(r, key, job_id)["lease_deadline"]
    wait_until(lambda: state(r, key, job_id) == "delayed", timeout=2, what="lease expiry")
    job = inspect(r, key, job_id)
    assert job["last_error"] == "lease expired"
    now = server_ms(r)
    assert deadline + 5000 <= job["due"] <= now + 10000      # expired at T in [deadline, now]; due in [T+d/2, T+d]
    assert reserve(r, key) is None


def test_job_lease_from_push_expires(r, key):
    job_id = push(r, key, "p", "LEASE", 100, "BACKOFF", 0)
    reserve_one(r, key)
    wait_until(lambda: inspect(r, key, job_id)["last_error"] == "lease expired", timeout=2, what="lease expiry")
    assert stats(r, key)["expired_total"] == 1


def test_default_lease_from_module_args_expires(make_server, key):
    s = make_server(module_args=["default-lease-ms", 200])
    r = s.client(decode_responses=True)
    job_id = push(r, key, "p", "BACKOFF", 0)
    before = server_ms(r)
    reserve_one(r, key)
    after = server_ms(r)
    assert before + 200 <= inspect(r, key, job_id)["lease_deadline"] <= after + 200
    wait_until(lambda: state(r, key, job_id) != "reserved", timeout=2, what="default lease expiry")
    assert inspect(r, key, job_id)["last_error"] == "lease expired"
    assert stats(r, key)["expired_total"] == 1


def test_backoff_grows_and_is_jittered_within_bounds(r, key):
    backoff = 40
    job_id = push(r, key, "p", "RETRIES", 4, "BACKOFF", backoff)
    for k in (1, 2, 3):
        wait_until(lambda: state(r, key, job_id) == "ready", timeout=3, what=f"retry {k} ready")
        _, _, attempt = reserve_one(r, key)
        assert attempt == k
        before = server_ms(r)
        assert r.execute_command("ONCE.NACK", key, job_id) == 1
        after = server_ms(r)
        d = backoff * 2 ** (k - 1)
        due = inspect(r, key, job_id)["due"]
        print(f"\nretry {k}: d={d} waited {due - before}..{due - after} ms")
        assert before + d // 2 <= due <= after + d, (k, d, due - before)
    assert stats(r, key)["retried_total"] == 3


def test_backoff_jitter_varies(r, key):
    """Jitter is uniform in [d/2, d]: 20 retries scheduled with d = 100000 should not all wait the same."""
    waits = []
    for i in range(20):
        job_id = push(r, key, "p", "BACKOFF", 100000, "ID", f"j{i}")
        reserve_one(r, key)
        now = server_ms(r)
        r.execute_command("ONCE.NACK", key, job_id)
        waits.append(inspect(r, key, job_id)["due"] - now)
    assert all(50000 - 5 <= w <= 100000 + 5 for w in waits), waits
    assert max(waits) - min(waits) > 1000, waits


def test_dead_after_retries_plus_one_attempts(r, key):
    job_id = push(r, key, "p", "RETRIES", 2, "BACKOFF", 0)
    for attempt in (1, 2, 3):
        got = wait_until(lambda: reserve(r, key), timeout=2, what=f"attempt {attempt}")
        assert got == [[job_id, "p", attempt]]
        assert r.execute_command("ONCE.NACK", key, job_id, "ERROR", f"fail {attempt}") == 1
    job = inspect(r, key, job_id)
    assert job["state"] == "dead" and job["attempts"] == 3 and job["last_error"] == "fail 3"
    s = stats(r, key)
    assert (s["dead"], s["dead_total"], s["retried_total"], s["nacked_total"], s["reserved_total"]) == (1, 1, 2, 3, 3)
    assert reserve(r, key) is None


def test_dead_after_leases_expire(r, key):
    job_id = push(r, key, "p", "RETRIES", 1, "BACKOFF", 0, "LEASE", 50)
    for attempt in (1, 2):
        got = wait_until(lambda: reserve(r, key), timeout=2, what=f"attempt {attempt}")
        assert got == [[job_id, "p", attempt]]
        wait_until(lambda: state(r, key, job_id) != "reserved", timeout=2, what="lease expiry")
    job = inspect(r, key, job_id)
    assert job["state"] == "dead"
    assert job["last_error"] == "lease expired"
    s = stats(r, key)
    assert (s["dead"], s["dead_total"], s["expired_total"], s["retried_total"], s["reserved"]) == (1, 1, 2, 1, 0)


def test_backoff_of_a_late_retry_is_capped_without_overflow(r, key):
    """Retry 70 of a job with the largest BACKOFF: BACKOFF x 2^69 overflows 64 bits; the cap must still hold."""
    job_id = push(r, key, "p", "RETRIES", 1000, "BACKOFF", 315360000000)
    for attempt in range(1, 70):
        got = wait_until(lambda: reserve(r, key), timeout=2, what=f"attempt {attempt}")
        assert got[0][2] == attempt
        assert r.execute_command("ONCE.NACK", key, job_id, "DELAY", 0) == 1
    wait_until(lambda: reserve(r, key), timeout=2, what="attempt 70")
    before = server_ms(r)
    assert r.execute_command("ONCE.NACK", key, job_id) == 1      # retry 70 with the job's own backoff
    after = server_ms(r)
    due = inspect(r, key, job_id)["due"]
    assert before + 1800000 <= due <= after + 3600000            # d = once.backoff-max-ms (default 3600000)
    assert r.ping() is True
