"""Issue 19's module side: a pause made before the first push holds, ONCE._AT acts only on its own key, a worker
learns that its fenced ACK was refused (RESERVE ... WITHACK), and eviction is never silent: a warning at load and
on a policy change, a log line and INFO count per evicted queue, and cron fires held while the server is full
under noeviction. (The ACL categories are checked in test_command_docs.py.)"""
import glob
import os
import time

import pytest
import redis

from durability_helpers import attach_replica, digest_value, fast_restart, log_has, wait_in_sync
from helpers import push, stats, wait_until


def reserve_withack(r, queue, *opts):
    return r.execute_command("ONCE.RESERVE", queue, *opts, "WITHACK")


# ---- PAUSE before the first push ----------------------------------------------------------------------------------

def test_a_pause_before_the_first_push_holds_after_push_reload_and_on_a_replica(make_server, r, key):
    master = make_server()
    replica = make_server()
    m = master.client(decode_responses=True, protocol=2)
    rep = replica.client(decode_responses=True, protocol=2)
    attach_replica(replica, master)
    assert m.exists(key) == 0
    assert m.execute_command("ONCE.PAUSE", key) == 1
    assert m.exists(key) == 1 and stats(m, key)["paused"] == 1
    assert m.execute_command("ONCE.PAUSE", key) == 0
    job = push(m, key, "deploy-time job")
    assert m.execute_command("ONCE.RESERVE", key) is None
    m.execute_command("DEBUG", "RELOAD")
    assert stats(m, key)["paused"] == 1 and m.execute_command("ONCE.RESERVE", key) is None
    wait_in_sync(m, rep)
    assert stats(rep, key)["paused"] == 1 and stats(rep, key)["ready"] == 1
    assert digest_value(m, key) == digest_value(rep, key)
    assert m.execute_command("ONCE.RESUME", key) == 1
    assert m.execute_command("ONCE.RESERVE", key)[0][0] == job
    m.close()
    rep.close()


def test_resume_of_a_missing_queue_creates_it_unpaused_and_replicates(make_server, key):
    master, replica = make_server(), make_server()
    m, rep = master.client(decode_responses=True), replica.client(decode_responses=True)
    attach_replica(replica, master)
    assert m.execute_command("ONCE.RESUME", key) == 0
    assert m.exists(key) == 1 and stats(m, key)["paused"] == 0
    wait_in_sync(m, rep)
    assert rep.exists(key) == 1
    m.close()
    rep.close()


# ---- ONCE._AT acts on its own key only ----------------------------------------------------------------------------

def test_at_refuses_an_inner_command_on_another_key(r, key):
    other = key + ":other"
    a, b = push(r, key, "a", "ID", "other"), push(r, other, "b", "ID", "id")
    before = digest_value(r, key, other)
    for inner in (["ONCE.CANCEL", other, "id"], ["ONCE.CANCEL", "other", "id"], ["ONCE.ACK"], ["ONCE.CANCEL", other]):
        with pytest.raises(redis.ResponseError, match="ONCE._AT runs a command on its own key only"):
            r.execute_command("ONCE._AT", key, int(time.time() * 1000), *inner)
    assert digest_value(r, key, other) == before
    assert r.execute_command("ONCE.INSPECT", key, a) and r.execute_command("ONCE.INSPECT", other, b)
    # Its own key named: it runs.
    r.execute_command("ONCE._AT", key, int(time.time() * 1000), "ONCE.CANCEL", key, a)
    assert r.execute_command("ONCE.INSPECT", key, a) is None


def test_an_aof_written_before_the_inner_key_was_named_still_replays(make_server, key):
    s = make_server(extra=["--appendonly", "yes", "--appendfsync", "always"])
    c = s.client(decode_responses=True)
    keep, gone = push(c, key, "keep"), push(c, key, "gone")
    fast_restart(s)
    c = s.client(decode_responses=True)
    assert stats(c, key)["ready"] == 2
    # The form today's release wrote: `ONCE._AT key ms ONCE.CANCEL <ids>`, the key implied.
    incr = sorted(glob.glob(os.path.join(s.dir, "appendonlydir", "*.incr.aof")))[-1]
    args = [b"ONCE._AT", key.encode(), str(int(time.time() * 1000)).encode(), b"ONCE.CANCEL", gone.encode()]
    with open(incr, "ab") as f:
        f.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    fast_restart(s)
    c = s.client(decode_responses=True)
    assert c.execute_command("ONCE.INSPECT", key, gone) is None
    assert c.execute_command("ONCE.INSPECT", key, keep)
    c.close()


# ---- RESERVE ... WITHACK -------------------------------------------------------------------------------------------

def test_withack_tells_the_worker_whether_its_fenced_ack_was_taken(r, key):
    a = push(r, key, "a")
    push(r, key, "b")
    acked, jobs = reserve_withack(r, key)
    assert acked == 0 and jobs[0][0] == a and jobs[0][2] == 1
    acked, jobs = reserve_withack(r, key, "ACK", a, "ATTEMPT", 1)
    assert acked == 1 and jobs[0][1] == "b"
    b, attempt = jobs[0][0], jobs[0][2]
    # A refused fence (not this reservation): 0, and the queue still serves.
    push(r, key, "c")
    acked, jobs = reserve_withack(r, key, "ACK", b, "ATTEMPT", attempt + 1)
    assert acked == 0 and jobs[0][1] == "c"
    assert r.execute_command("ONCE.INSPECT", key, b)[r.execute_command("ONCE.INSPECT", key, b).index("state") + 1] \
        == "reserved"
    # Nothing to serve: the count, then nil.
    assert reserve_withack(r, key, "ACK", b, "ATTEMPT", attempt) == [1, None]


def test_withack_after_a_lease_ran_out_reports_zero(r, key):
    job = push(r, key, "slow", "BACKOFF", 0)
    (_, _, attempt), = [tuple(j) for j in r.execute_command("ONCE.RESERVE", key, "LEASE", 50)]
    wait_until(lambda: stats(r, key)["expired_total"] == 1, timeout=5, what="the lease to run out")
    acked, jobs = reserve_withack(r, key, "ACK", job, "ATTEMPT", attempt)
    assert acked == 0 and jobs[0][0] == job and jobs[0][2] == attempt + 1


def test_withack_through_a_block_and_a_timeout(server, r, key):
    job = push(r, key, "a")
    attempt = r.execute_command("ONCE.RESERVE", key)[0][2]
    # Blocked after its ACK: the count leads the jobs that a later push serves...
    c = server.client(decode_responses=True, protocol=2, socket_timeout=10)
    import threading
    out = {}
    t = threading.Thread(target=lambda: out.update(reply=reserve_withack(c, key, "BLOCK", 5000, "ACK", job,
                                                                            "ATTEMPT", attempt)))
    t.start()
    wait_until(lambda: r.info("clients")["blocked_clients"] >= 1, what="the reserve to block")
    late = push(r, key, "late")
    t.join(10)
    assert out["reply"][0] == 1 and out["reply"][1][0][0] == late
    # ...and the timeout's nil.
    assert reserve_withack(c, key, "BLOCK", 100, "ACK", late, "ATTEMPT", 99) == [0, None]
    c.close()


def test_withack_in_resp3(r3, key):
    job = push(r3, key, "a")
    r3.execute_command("ONCE.RESERVE", key)
    assert reserve_withack(r3, key, "ACK", job) == [1, None]


# ---- eviction ------------------------------------------------------------------------------------------------------

def info_once(c):
    return c.info("once")


def test_a_risky_policy_is_warned_at_load_and_when_it_is_set(make_server):
    s = make_server(extra=["--maxmemory-policy", "allkeys-lru"])
    c = s.client(decode_responses=True)
    assert log_has(s, "maxmemory-policy is allkeys-lru")
    i = info_once(c)
    assert i["once_eviction_policy"] == "allkeys-lru" and i["once_eviction_risk"] == 1
    c.config_set("maxmemory-policy", "volatile-lru")
    assert info_once(c)["once_eviction_risk"] == 0
    c.config_set("maxmemory-policy", "allkeys-lfu")
    wait_until(lambda: log_has(s, "maxmemory-policy is allkeys-lfu"), what="the warning on CONFIG SET")
    assert info_once(c)["once_eviction_risk"] == 1
    c.close()


def test_noeviction_is_not_warned(make_server):
    s = make_server()
    c = s.client(decode_responses=True)
    i = info_once(c)
    assert i["once_eviction_policy"] == "noeviction" and i["once_eviction_risk"] == 0
    assert not log_has(s, "maxmemory-policy is")
    c.close()


def test_an_evicted_queue_is_logged_with_what_it_held_and_counted(make_server):
    s = make_server(extra=["--maxmemory-policy", "allkeys-lru", "--maxmemory-samples", "10"])
    c = s.client(decode_responses=True)
    c.execute_command("ONCE.SCHEDULE", "idle", "nightly", "0 3 * * *", "p")
    push(c, "idle", "old job")
    c.config_set("maxmemory", str(c.info("memory")["used_memory"] + 2_000_000))
    p = c.pipeline(transaction=False)
    for i in range(40_000):
        p.execute_command("ONCE.PUSH", f"busy{i % 4}", "x" * 100)
    p.execute(raise_on_error=False)
    i = info_once(c)
    assert i["once_evicted_queues"] >= 1 and i["once_evicted_jobs"] >= 1, i
    lines = log_has(s, "was EVICTED")
    assert len(lines) == i["once_evicted_queues"], lines
    assert any("ready" in ln and "schedules" in ln for ln in lines)
    c.close()


def test_cron_fires_are_held_at_maxmemory_under_noeviction_and_resume_below(make_server, key):
    s = make_server()
    c = s.client(decode_responses=True)
    c.execute_command("ONCE.SCHEDULE", key, "tick", "@every 100ms", "p", "MISSED", "skip")
    wait_until(lambda: stats(c, key)["ready"] >= 2, what="the schedule to fire")
    c.set("filler", "x" * 3_000_000)
    c.close()       # its 3 MB query buffer goes with it, so used_memory below is what stays
    c = s.client(decode_responses=True)
    c.config_set("maxmemory", str(c.info("memory")["used_memory"] - 1_000_000))
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        c.execute_command("ONCE.PUSH", key, "refused")
    held_from = stats(c, key)["pushed_total"]
    time.sleep(1.5)
    assert stats(c, key)["pushed_total"] == held_from
    assert info_once(c)["once_schedule_fires_held"] >= 5
    c.delete("filler")
    c.config_set("maxmemory", "0")
    wait_until(lambda: stats(c, key)["pushed_total"] >= held_from + 2, what="fires to resume")
    # MISSED skip: the ticks held longer than the grace were not pushed late.
    assert stats(c, key)["pushed_total"] < held_from + 15
    c.close()


# ---- ACKS: a prefetching worker acknowledges a batch, each job fenced by its own attempt ---------------------------

def test_acks_fences_each_job_by_its_attempt(r, key):
    ids = [push(r, key, f"j{i}", "ID", f"j{i}") for i in range(4)]
    got = r.execute_command("ONCE.RESERVE", key, "COUNT", 3)
    assert [j[0] for j in got] == ids[:3]
    # j1's attempt is wrong: it stays reserved; j0 and j2 complete.
    assert r.execute_command("ONCE.ACK", key, "ACKS", 3, "j0", 1, "j1", 2, "j2", 1) == 2
    assert stats(r, key)["acked_total"] == 2 and stats(r, key)["reserved"] == 1
    # In ack-and-fetch, with the count reported.
    acked, jobs = r.execute_command("ONCE.RESERVE", key, "COUNT", 5, "ACKS", 1, "j1", 1, "WITHACK")
    assert acked == 1 and [j[0] for j in jobs] == ["j3"]
    assert r.execute_command("ONCE.ACK", key, "ACKS", 1, "j3", 1) == 1


def test_acks_bad_input_changes_nothing(r, key):
    push(r, key, "a", "ID", "a")
    r.execute_command("ONCE.RESERVE", key)
    before = digest_value(r, key)
    with pytest.raises(redis.ResponseError, match="ATTEMPT must be an integer"):
        r.execute_command("ONCE.ACK", key, "ACKS", 1, "a", "x")
    with pytest.raises(redis.ResponseError, match="ACK and ACKS cannot be used together"):
        r.execute_command("ONCE.RESERVE", key, "ACK", "a", "ACKS", 1, "a", 1)
    with pytest.raises(redis.ResponseError, match="option 'ACKS' needs a value"):
        r.execute_command("ONCE.RESERVE", key, "ACKS", 2, "a", 1)
    with pytest.raises(redis.ResponseError, match="ACKS must be between 1 and 10000"):
        r.execute_command("ONCE.RESERVE", key, "ACKS", 0)
    assert digest_value(r, key) == before
    # A first word ACKS always starts the fenced form: a malformed batch is an error, never an unfenced ACK of "a".
    with pytest.raises(redis.ResponseError, match="ACKS 2 needs 2 id attempt pairs after it, got 2 words"):
        r.execute_command("ONCE.ACK", key, "ACKS", 2, "a", 1)
    with pytest.raises(redis.ResponseError, match="ACKS must be an integer"):
        r.execute_command("ONCE.ACK", key, "ACKS", "a")
    assert digest_value(r, key) == before


def test_acks_replicates_to_an_equal_replica(make_server, key):
    master, replica = make_server(), make_server()
    m, rep = master.client(decode_responses=True), replica.client(decode_responses=True)
    attach_replica(replica, master)
    for i in range(20):
        push(m, key, f"j{i}", "ID", f"j{i}")
    got = m.execute_command("ONCE.RESERVE", key, "COUNT", 10)
    pairs = [x for j in got for x in (j[0], j[2])]
    m.execute_command("ONCE.RESERVE", key, "COUNT", 10, "ACKS", 10, *pairs)
    wait_in_sync(m, rep)
    assert stats(rep, key)["acked_total"] == 10 and digest_value(m, key) == digest_value(rep, key)
    m.close()
    rep.close()
