"""Durable pushes (`wait_replicas`, `wait_aof`: WAIT / WAITAOF after the push) and the worker's fenced ACK, against a
real master + replica of each server kind."""
import os
import signal
import threading

import pytest
import redis

import harness
from once import Once
from once.client import DurabilityError
from once_helpers import command_calls, running_worker, wait_until

AOF = ["--appendonly", "yes", "--appendfsync", "everysec"]


def start_replica(kind, master, extra=()):
    replica = harness.Server(kind, extra=list(extra) + ["--replicaof", "127.0.0.1", master.port])
    c = replica.client(decode_responses=True)
    wait_until(lambda: c.info("replication").get("master_link_status") == "up", timeout=20, what="replica link")
    c.close()
    return replica


@pytest.fixture
def pair(kind):
    """A master and a replica, AOF on both; both killed at the end."""
    started = []
    try:
        master = harness.Server(kind, extra=AOF)
        started.append(master)
        started.append(start_replica(kind, master, AOF))
        yield started[0], started[1]
    finally:
        for s in started:
            if s.alive():
                try:
                    os.kill(s.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
            s.close()


def has_waitaof(server):
    """Whether the server has WAITAOF: Redis 7.2 and later (Valkey reports a redis_version of 7.2.4)."""
    c = server.client(decode_responses=True)
    try:
        version = tuple(int(x) for x in c.info("server")["redis_version"].split(".")[:2])
    finally:
        c.close()
    return version >= (7, 2)


def test_durable_push_returns_once_the_replica_has_the_job(pair, queue):
    master, replica = pair
    m, r = master.client(), replica.client()
    once = Once(m, queue, wait_replicas=1, wait_timeout_ms=2000)
    waits = command_calls(m, "wait")
    ids = [once.push(f"job {i}") for i in range(20)]
    assert command_calls(m, "wait") == waits + 20, "one WAIT per durable push"
    # the replica holds every job the moment push() returned (WAIT counted it)
    replica_view = Once(r, queue)
    for job_id in ids:
        info = replica_view.inspect(job_id)
        assert info is not None and info.state == "ready", job_id


def test_push_without_durability_sends_no_wait(pair, queue):
    master, _ = pair
    m = master.client()
    once = Once(m, queue, wait_replicas=1)
    waits = command_calls(m, "wait")
    once.push("fast", wait_replicas=0)
    Once(m, queue).push("plain")
    assert command_calls(m, "wait") == waits


def test_durable_push_raises_when_no_replica_confirms(pair, queue):
    master, replica = pair
    m = master.client()
    once = Once(m, queue, wait_replicas=1, wait_timeout_ms=200)
    os.kill(replica.proc.pid, signal.SIGSTOP)           # the replica cannot acknowledge anything
    with pytest.raises(DurabilityError) as err:
        once.push("maybe lost", id="order-1")
    e = err.value
    assert (e.job_id, e.replicas, e.wanted) == ("order-1", 0, 1)
    assert "order-1" in str(e) and "0 of 1" in str(e)
    assert once.inspect("order-1").state == "ready"    # it is on the master
    os.kill(replica.proc.pid, signal.SIGCONT)
    # pushing again with the same id adds nothing, and now it is confirmed
    assert once.push("maybe lost", id="order-1", wait_timeout_ms=5000) == "order-1"
    assert once.stats().pushed_total == 1


def test_durable_push_asking_more_replicas_than_there_are(pair, queue):
    master, _ = pair
    once = Once(master.client(), queue, wait_timeout_ms=1000)     # time enough for the one replica to answer
    with pytest.raises(DurabilityError) as err:
        once.push("p", wait_replicas=2)
    assert (err.value.replicas, err.value.wanted) == (1, 2)
    assert once.push("q", wait_replicas=1)


def test_durable_push_after_the_replica_died(pair, queue):
    master, replica = pair
    once = Once(master.client(), queue, wait_replicas=1, wait_timeout_ms=150)
    once.push("before", wait_timeout_ms=3000)        # confirmed while the replica lives
    replica.stop(kill=True)
    with pytest.raises(DurabilityError):
        once.push("after")


def test_wait_aof_uses_waitaof_where_the_server_has_it(pair, queue):
    master, replica = pair
    m = master.client()
    once = Once(m, queue, wait_replicas=1, wait_aof=True, wait_timeout_ms=3000)
    before = command_calls(m, "waitaof")
    job_id = once.push("fsynced")
    expected = has_waitaof(master)
    assert once.waitaof is expected
    # the probe (WAITAOF 0 0 0) and the push's own WAITAOF where it exists; none on Redis 7.0
    assert command_calls(m, "waitaof") - before == (2 if expected else 0)
    assert Once(replica.client(), queue).inspect(job_id) is not None


def test_wait_aof_raises_when_the_replica_has_no_aof(kind, queue):
    master = harness.Server(kind, extra=AOF)
    replica = None
    try:
        replica = start_replica(kind, master)               # a replica without AOF
        # time enough for the replica's WAIT and the master's own fsync (appendfsync everysec)
        once = Once(master.client(), queue, wait_replicas=1, wait_aof=True, wait_timeout_ms=1500)
        if not has_waitaof(master):
            assert once.push("wait only")                   # Redis 7.0: WAIT is all there is, and it is met
            assert once.waitaof is False
            return
        with pytest.raises(DurabilityError) as err:
            once.push("not fsynced on the replica")
        e = err.value
        assert e.replicas == 1 and e.aof_local == 1 and e.aof_replicas == 0, str(e)
    finally:
        master.close()
        if replica is not None:
            replica.close()


def test_durable_push_on_a_master_without_aof_asks_no_local_fsync(kind, queue):
    master = harness.Server(kind)
    replica = None
    try:
        replica = start_replica(kind, master, AOF)
        once = Once(master.client(), queue, wait_replicas=1, wait_aof=True, wait_timeout_ms=3000)
        assert once.push("replica fsyncs it")
        if once.waitaof:
            assert once._aof_local == 0
    finally:
        master.close()
        if replica is not None:
            replica.close()


def test_invalid_durability_settings(pair, queue):
    master, _ = pair
    with pytest.raises(ValueError):
        Once(master.client(), queue, wait_replicas=-1)


# --- fenced ACK -----------------------------------------------------------------------------------------------


def test_ack_of_a_job_is_fenced_by_its_attempt(pair, queue):
    master, _ = pair
    once = Once(master.client(), queue)
    once.push("p", retries=3, backoff_ms=0)
    stale = once.reserve(lease_ms=100)[0]
    wait_until(lambda: once.inspect(stale.id).state == "ready", timeout=5, what="the lease to run out")
    current = once.reserve(lease_ms=60000)[0]
    assert current.id == stale.id and current.attempt > stale.attempt
    assert once.ack(stale) == 0                         # the old reservation does not complete the new one
    assert once.inspect(stale.id).state == "reserved"
    assert once.ack(stale.id, attempt=stale.attempt) == 0
    assert once.reserve(ack=stale) == []                # ack-and-fetch is fenced too
    assert once.inspect(stale.id).state == "reserved"
    assert once.ack(current) == 1
    assert once.inspect(stale.id) is None
    with pytest.raises(ValueError):
        once.ack(current, stale, attempt=1)


def test_ack_of_several_jobs_fences_each(pair, queue):
    master, _ = pair
    once = Once(master.client(), queue)
    for i in range(3):
        once.push(f"p{i}")
    jobs = once.reserve(count=3)
    stale = jobs[0].__class__(jobs[0].id, jobs[0].payload, jobs[0].attempt + 1, queue)
    assert once.ack(stale, jobs[1], jobs[2].id) == 2
    assert once.inspect(jobs[0].id).state == "reserved"
    assert once.ack(jobs[0]) == 1


@pytest.mark.parametrize("stop_while_running", [False, True], ids=["ack-and-fetch", "final-ack"])
def test_worker_ack_after_its_lease_ran_out_does_not_complete_the_new_reservation(pair, queue, stop_while_running):
    """The worker's job outlives its lease (no extension); meanwhile the job is reserved again (attempt 2). The
    worker's late ACK, by RESERVE ... ACK (running) or by ONCE.ACK (stopping), carries attempt 1 and is refused."""
    master, _ = pair
    m = master.client()
    once = Once(m, queue)
    job_id = once.push("slow", retries=3, backoff_ms=0)
    taken = threading.Event()
    started = threading.Event()
    theirs = {}

    def execute(data):
        started.set()
        assert taken.wait(10), "the test never took the job over"

    with running_worker(once, execute, lease_ms=200, extend_every_ms=60000, block_ms=200) as w:
        assert started.wait(10)
        wait_until(lambda: once.inspect(job_id).state == "ready", timeout=5, what="the worker's lease to run out")
        theirs["job"] = once.reserve(lease_ms=60000)[0]
        assert theirs["job"].id == job_id and theirs["job"].attempt == 2
        reserves = command_calls(m, "once.reserve")
        acks = command_calls(m, "once.ack")
        taken.set()
        wait_until(lambda: w.summary.processed == 1, timeout=5, what="the task to return")
        if stop_while_running:
            w.stop()
            wait_until(lambda: command_calls(m, "once.ack") > acks or command_calls(m, "once.reserve") > reserves,
                       timeout=5, what="the worker's ACK")
        else:
            wait_until(lambda: command_calls(m, "once.reserve") > reserves, timeout=5, what="the next RESERVE ... ACK")
    info = once.inspect(job_id)
    assert info is not None and info.state == "reserved", "the late ACK completed another reservation"
    assert info.attempts == 2
    assert once.ack(theirs["job"]) == 1


def test_worker_acks_its_own_reservation(pair, queue):
    master, _ = pair
    once = Once(master.client(), queue, wait_replicas=1, wait_timeout_ms=3000)
    for i in range(5):
        once.push(f"t{i}")
    with running_worker(once, lambda data: None, block_ms=200):
        wait_until(lambda: once.stats().acked_total == 5, what="5 acked jobs")
    assert once.stats().reserved == 0


def test_durable_push_through_sentinel_style_client_errors_are_not_swallowed(pair, queue):
    """A push the master refuses (a replica answering READONLY) raises the server's error, not DurabilityError."""
    _, replica = pair
    once = Once(replica.client(), queue, wait_replicas=1)
    with pytest.raises(redis.ReadOnlyError):
        once.push("to a replica")
