"""ONCE.RETRY (dead jobs back to ready) and ONCE.CANCEL (remove a job that is not reserved)."""
import pytest
import redis

from durability_helpers import attach_replica, digest, wait_in_sync
from helpers import inspect, push, reserve_one, stats


def make_dead(r, key, payload="p", error="boom"):
    job_id = push(r, key, payload, "RETRIES", 0)
    got, _, attempt = reserve_one(r, key)
    assert got == job_id
    assert r.execute_command("ONCE.NACK", key, job_id, "ATTEMPT", attempt, "ERROR", error) == 1
    assert inspect(r, key, job_id)["state"] == "dead"
    return job_id


def test_retry_sends_dead_jobs_back_with_fresh_attempts(r, key):
    dead = make_dead(r, key, "dead")
    first = push(r, key, "first")
    assert r.execute_command("ONCE.RETRY", key, dead, first, "unknown") == 1   # only the dead one counts
    job = inspect(r, key, dead)
    assert (job["state"], job["attempts"], job["last_error"]) == ("ready", 0, "boom")
    assert stats(r, key)["dead"] == 0
    # It joins the back of the line and gets its attempts again.
    assert reserve_one(r, key)[0] == first
    assert reserve_one(r, key)[:3] == (dead, "dead", 1)
    assert r.execute_command("ONCE.RETRY", key, dead) == 0                     # reserved now, not dead


def test_cancel_removes_ready_delayed_and_dead_but_not_reserved(r, key):
    dead = make_dead(r, key, "c")
    ready = push(r, key, "a", "ID", "custom")
    delayed = push(r, key, "b", "DELAY", 60000)
    held = push(r, key, "d")
    assert reserve_one(r, key)[0] == ready
    assert r.execute_command("ONCE.CANCEL", key, ready, delayed, dead, held, "nope") == 3
    assert inspect(r, key, delayed) is None and inspect(r, key, dead) is None and inspect(r, key, held) is None
    assert inspect(r, key, ready)["state"] == "reserved"
    st = stats(r, key)
    assert (st["ready"], st["delayed"], st["reserved"], st["dead"]) == (0, 0, 1, 0)
    assert r.execute_command("ONCE.ACK", key, ready) == 1
    # A cancelled id is free again.
    assert push(r, key, "again", "ID", "custom") == "custom"
    assert stats(r, key)["ready"] == 1


def test_missing_key_wrong_type_and_arity(r, key):
    assert r.execute_command("ONCE.RETRY", key, "x") == 0
    assert r.execute_command("ONCE.CANCEL", key, "x") == 0
    assert r.exists(key) == 0
    for cmd in ("ONCE.RETRY", "ONCE.CANCEL"):
        with pytest.raises(redis.ResponseError, match=f"wrong number of arguments for '{cmd.lower()}' command"):
            r.execute_command(cmd, key)
    r.set(key, "string")
    for cmd in ("ONCE.RETRY", "ONCE.CANCEL"):
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            r.execute_command(cmd, key, "x")


def test_retry_and_cancel_replicate(make_server):
    master, replica = make_server(), make_server()
    attach_replica(replica, master)
    m = master.client(decode_responses=True, protocol=2)
    rep = replica.client(decode_responses=True, protocol=2)
    dead = make_dead(m, "q", "x")
    gone = push(m, "q", "y")
    m.execute_command("ONCE.RETRY", "q", dead)
    m.execute_command("ONCE.CANCEL", "q", gone)
    wait_in_sync(m, rep)
    assert digest(m) == digest(rep)
    assert inspect(rep, "q", dead)["state"] == "ready" and inspect(rep, "q", gone) is None
