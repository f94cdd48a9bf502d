"""ONCE.RETRY (dead jobs back to ready) and ONCE.CANCEL (remove a job, or since issue 21 stop a reserved one)."""
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


def test_retry_sends_dead_jobs_back_with_a_fresh_budget(r, key):
    dead = make_dead(r, key, "dead")
    first = push(r, key, "first")
    assert r.execute_command("ONCE.RETRY", key, dead, first, "unknown") == 1   # only the dead one counts
    job = inspect(r, key, dead)
    # The attempt number is a fencing token: it keeps growing across RETRY; the retry budget starts again.
    assert (job["state"], job["attempts"], job["tries"], job["last_error"]) == ("ready", 1, 0, "boom")
    assert stats(r, key)["dead"] == 0
    assert reserve_one(r, key)[0] == first
    assert reserve_one(r, key)[:3] == (dead, "dead", 2)
    assert r.execute_command("ONCE.RETRY", key, dead) == 0                     # reserved now, not dead
    # RETRIES 0 counts from the retry: one more failure makes it dead again.
    assert r.execute_command("ONCE.NACK", key, dead, "ATTEMPT", 2) == 1
    assert inspect(r, key, dead)["state"] == "dead"


def test_a_stale_fence_from_before_a_retry_changes_nothing(r, key):
    dead = make_dead(r, key, "dead")                 # attempt 1 failed
    assert r.execute_command("ONCE.RETRY", key, dead) == 1
    assert reserve_one(r, key)[:3] == (dead, "dead", 2)
    # A worker still holding (dead, 1) must not touch reservation 2.
    assert r.execute_command("ONCE.NACK", key, dead, "ATTEMPT", 1) == 0
    assert r.execute_command("ONCE.EXTEND", key, dead, 1000, "ATTEMPT", 1) is None
    assert r.execute_command("ONCE.ACK", key, dead, "ATTEMPT", 1) == 0
    assert r.execute_command("ONCE.RESERVE", key, "ACK", dead, "ATTEMPT", 1) is None
    assert inspect(r, key, dead)["state"] == "reserved"
    assert r.execute_command("ONCE.ACK", key, dead, "ATTEMPT", 2) == 1
    assert inspect(r, key, dead) is None


def test_fenced_ack_completes_only_the_named_reservation(r, key):
    a = push(r, key, "a")
    b = push(r, key, "b")
    assert reserve_one(r, key)[:3] == (a, "a", 1)
    assert r.execute_command("ONCE.ACK", key, a, "attempt", 2) == 0
    assert r.execute_command("ONCE.ACK", key, a, "ATTEMPT", 1) == 1
    assert reserve_one(r, key)[:3] == (b, "b", 1)
    # RESERVE's ACK with a fence: a wrong fence leaves b reserved, the right one completes it.
    c = push(r, key, "c")
    got = r.execute_command("ONCE.RESERVE", key, "ACK", b, "ATTEMPT", 9)
    assert got[0][0] == c and inspect(r, key, b)["state"] == "reserved"
    assert r.execute_command("ONCE.RESERVE", key, "ACK", b, "ATTEMPT", 1) is None
    assert inspect(r, key, b) is None
    assert stats(r, key)["acked_total"] == 2


@pytest.mark.parametrize("args, message", [
    (["ONCE.ACK", "{k}", "x", "y", "ATTEMPT", "1"], "ERR ATTEMPT goes with a single id"),
    (["ONCE.ACK", "{k}", "x", "ATTEMPT", "0"], "ERR ATTEMPT must be between 1 and 9223372036854775807, got 0"),
    (["ONCE.ACK", "{k}", "x", "ATTEMPT", "z"], "ERR ATTEMPT must be an integer, got 'z'"),
    (["ONCE.RESERVE", "{k}", "ATTEMPT", "1"], "ERR ATTEMPT goes with ACK (it fences the job acknowledged)"),
])
def test_bad_fences_are_refused(r, key, args, message):
    push(r, key, "p")
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command(*[key if a == "{k}" else a for a in args])
    assert "ERR " + str(e.value) == message     # redis-py strips the ERR prefix
    assert stats(r, key)["ready"] == 1


def test_cancel_removes_ready_delayed_dead_and_reserved(r, key):
    # Issue 21: CANCEL stops a reserved job too. Not kept (no KEEP), it is gone at once, and its holder's
    # ACK / NACK / EXTEND / PROGRESS of that reservation are refused.
    dead = make_dead(r, key, "c")
    ready = push(r, key, "a", "ID", "custom")
    delayed = push(r, key, "b", "DELAY", 60000)
    held = push(r, key, "d")
    got, _, attempt = reserve_one(r, key)
    assert got == ready
    assert r.execute_command("ONCE.CANCEL", key, ready, delayed, dead, held, "nope") == 4
    for job in (ready, delayed, dead, held):
        assert inspect(r, key, job) is None
    st = stats(r, key)
    assert (st["ready"], st["delayed"], st["reserved"], st["dead"], st["cancelled"]) == (0, 0, 0, 0, 0)
    assert r.execute_command("ONCE.ACK", key, ready) == 0
    assert r.execute_command("ONCE.ACK", key, ready, "ATTEMPT", attempt) == 0
    assert r.execute_command("ONCE.NACK", key, ready, "ATTEMPT", attempt) == 0
    assert r.execute_command("ONCE.EXTEND", key, ready, 1000, "ATTEMPT", attempt) is None
    assert r.execute_command("ONCE.PROGRESS", key, ready, "half", "ATTEMPT", attempt) == 0
    assert r.execute_command("ONCE.CANCEL", key, ready) == 0       # once only
    st = stats(r, key)
    assert (st["acked_total"], st["nacked_total"], st["reserved"], st["cancelled"]) == (0, 1, 0, 0)
    # A cancelled id is free again.
    assert push(r, key, "again", "ID", "custom") == "custom"
    assert stats(r, key)["ready"] == 1
    assert inspect(r, key, "custom")["payload"] == "again"


def test_cancel_of_a_reserved_job_with_keep_keeps_it_as_cancelled(r, key):
    job = push(r, key, "a", "ID", "kept", "KEEP", 60000)
    got, _, attempt = reserve_one(r, key)
    assert got == job
    assert r.execute_command("ONCE.CANCEL", key, job) == 1
    assert inspect(r, key, job)["state"] == "cancelled"
    assert r.execute_command("ONCE.ACK", key, job, "ATTEMPT", attempt) == 0
    assert inspect(r, key, job)["state"] == "cancelled"
    st = stats(r, key)
    assert (st["reserved"], st["cancelled"], st["acked_total"]) == (0, 1, 0)
    # While it is kept, its id is taken (the dedup window): PUSH adds nothing and returns the id.
    assert push(r, key, "again", "ID", "kept") == "kept"
    assert inspect(r, key, job)["state"] == "cancelled" and stats(r, key)["ready"] == 0


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
