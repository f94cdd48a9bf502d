"""The timer follows the queue wherever its key goes (RENAME, MOVE, COPY, other DBs) and copes with keys that vanish."""
import time

from helpers import inspect, push, reserve, reserve_one, state, stats, wait_until


def test_promotion_in_due_order(r, key):
    a = push(r, key, "a", "DELAY", 150)
    b = push(r, key, "b", "DELAY", 50)
    c = push(r, key, "c", "DELAY", 100)
    wait_until(lambda: stats(r, key)["ready"] == 3, timeout=2, what="all promoted")
    assert [j[0] for j in reserve(r, key, "COUNT", 3)] == [b, c, a]


def test_promoted_high_priority_job_goes_first(r, key):
    low = push(r, key, "low")
    high = push(r, key, "high", "PRIORITY", 5, "DELAY", 50)
    wait_until(lambda: state(r, key, high) == "ready", timeout=2, what="promotion")
    assert [j[0] for j in reserve(r, key, "COUNT", 2)] == [high, low]


def test_many_leases_expire_together(r, key):
    ids = [push(r, key, f"p{i}", "BACKOFF", 0) for i in range(5)]
    assert len(reserve(r, key, "COUNT", 5, "LEASE", 50)) == 5
    wait_until(lambda: stats(r, key)["expired_total"] == 5, timeout=2, what="five expiries")
    assert all(inspect(r, key, i)["last_error"] == "lease expired" for i in ids)
    got = wait_until(lambda: stats(r, key)["ready"] == 5 and reserve(r, key, "COUNT", 10), timeout=2)
    assert sorted(j[0] for j in got) == sorted(ids)
    assert all(j[2] == 2 for j in got)


def test_timer_follows_rename(r, key):
    delayed = push(r, key, "d", "DELAY", 100, "ID", "d")
    leased = push(r, key, "l", "ID", "l", "BACKOFF", 0)
    reserve_one(r, key, "LEASE", 100)
    other = key + ":renamed"
    r.rename(key, other)
    wait_until(lambda: state(r, other, delayed) == "ready", timeout=2, what="promotion after RENAME")
    wait_until(lambda: inspect(r, other, leased)["last_error"] == "lease expired", timeout=2,
               what="lease expiry after RENAME")
    assert r.exists(key) == 0
    assert stats(r, other)["expired_total"] == 1


def test_timer_follows_move_to_another_db(server, r, key):
    push(r, key, "d", "DELAY", 100, "ID", "d")
    assert r.move(key, 5) is True
    r5 = server.client(decode_responses=True, protocol=2, db=5)
    wait_until(lambda: state(r5, key, "d") == "ready", timeout=2, what="promotion after MOVE")
    assert r.exists(key) == 0
    assert reserve(r5, key) == [["d", "d", 1]]
    r5.delete(key)
    r5.close()


def test_timer_works_in_another_db(server, key):
    r7 = server.client(decode_responses=True, protocol=2, db=7)
    job_id = push(r7, key, "p", "LEASE", 50, "BACKOFF", 0, "DELAY", 50)
    wait_until(lambda: state(r7, key, job_id) == "ready", timeout=2, what="promotion in db 7")
    reserve_one(r7, key)
    wait_until(lambda: inspect(r7, key, job_id)["last_error"] == "lease expired", timeout=2, what="expiry in db 7")
    r7.delete(key)
    r7.close()


def test_timer_serves_a_copy(r, key):
    push(r, key, "d", "DELAY", 100, "ID", "d")
    copy = key + ":copy"
    assert r.copy(key, copy) is True
    wait_until(lambda: state(r, copy, "d") == "ready", timeout=2, what="promotion in the copy")
    wait_until(lambda: state(r, key, "d") == "ready", timeout=2, what="promotion in the original")
    r.delete(copy)


def test_key_deleted_with_pending_timer_work(r, key):
    push(r, key, "d", "DELAY", 50)
    push(r, key, "l")
    reserve_one(r, key, "LEASE", 50)
    before = r.info("once")
    r.delete(key)
    time.sleep(0.2)  # absence check: the timer must not touch the deleted queue (or crash the server)
    assert r.ping() is True
    assert r.exists(key) == 0
    info = r.info("once")
    assert info["once_expired_total"] == before["once_expired_total"]
    assert info["once_jobs_delayed"] == before["once_jobs_delayed"] - 1
    assert info["once_jobs_reserved"] == before["once_jobs_reserved"] - 1


def test_key_recreated_after_delete_is_served(r, key):
    push(r, key, "old", "DELAY", 100)
    r.delete(key)
    new = push(r, key, "new", "DELAY", 150)
    wait_until(lambda: state(r, key, new) == "ready", timeout=2, what="promotion in the recreated queue")
    s = stats(r, key)
    assert (s["ready"], s["delayed"], s["pushed_total"]) == (1, 0, 1)


def test_key_expiring_with_pending_jobs(r, key):
    push(r, key, "d", "DELAY", 60000)
    r.pexpire(key, 50)
    wait_until(lambda: r.exists(key) == 0, timeout=2, what="key expiry")
    time.sleep(0.05)
    assert r.ping() is True
    assert stats(r, key)["pushed_total"] == 0


def test_flushall_with_pending_timer_work(fresh_server, key):
    r = fresh_server.client(decode_responses=True, protocol=2)
    push(r, key, "d", "DELAY", 50)
    push(r, key + "2", "l")
    reserve_one(r, key + "2", "LEASE", 50)
    r.flushall()
    time.sleep(0.2)  # absence check: nothing left for the timer to do
    assert r.ping() is True
    info = r.info("once")
    assert info["once_queues"] == 0
    assert sum(info[f"once_jobs_{s}"] for s in ("ready", "delayed", "reserved", "dead")) == 0
    assert info["once_expired_total"] == 0


def test_timer_follows_swapdb(fresh_server, key):
    r = fresh_server.client(decode_responses=True, protocol=2)
    push(r, key, "d", "DELAY", 100, "ID", "d")
    assert r.swapdb(0, 8) is True
    r8 = fresh_server.client(decode_responses=True, protocol=2, db=8)
    wait_until(lambda: state(r8, key, "d") == "ready", timeout=2, what="promotion after SWAPDB")
    assert r.exists(key) == 0


def test_timer_holds_off_during_client_pause_write(fresh_server, key):
    r = fresh_server.client(decode_responses=True, protocol=2)
    job_id = push(r, key, "d", "DELAY", 50)
    leased = push(r, key, "l", "BACKOFF", 0, "PRIORITY", 1)
    reserve_one(r, key, "LEASE", 50)
    r.execute_command("CLIENT", "PAUSE", 300, "WRITE")
    time.sleep(0.15)  # the timer comes due while writes are paused; it must not write (Redis 7.0 would abort)
    assert r.ping() is True
    assert state(r, key, job_id) == "delayed"          # still paused: the timer has written nothing
    assert state(r, key, leased) == "reserved"
    wait_until(lambda: state(r, key, job_id) == "ready", timeout=3, what="promotion after the pause")
    wait_until(lambda: inspect(r, key, leased)["last_error"] == "lease expired", timeout=3, what="expiry")
    assert fresh_server.alive()
