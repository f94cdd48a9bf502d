"""Replication of queues (issue 3): a replica holds exactly the master's queues (DEBUG DIGEST equal), its timer does
nothing while it is a replica, and carries on when it becomes a master. MULTI/EXEC and Lua replicate too.

Each test starts a master and a replica of the parametrized kind (redis 7.0, valkey 9.1) with `make_server`.
"""
import random
import threading
import time

import pytest

from durability_helpers import (FAR, all_ids, attach_replica, digest, digest_value, fill_every_state,
                                module_trouble, ready_order, schedules, wait_in_sync)
from helpers import RawClient, inspect, push, reserve, reserve_one, server_ms, state, stats, wait_until


@pytest.fixture
def pair(make_server):
    master = make_server()
    replica = make_server()
    attach_replica(replica, master)
    return master, replica


def clients(master, replica):
    return (master.client(decode_responses=True, protocol=2), replica.client(decode_responses=True, protocol=2))


GAUGES = ["once_queues", "once_jobs_ready", "once_jobs_delayed", "once_jobs_reserved", "once_jobs_dead"]


def gauges(c):
    info = c.info("once")
    return {g: info[g] for g in GAUGES}


def assert_same_digest(m, r):
    wait_in_sync(m, r)
    dm, dr = digest(m), digest(r)
    assert dm != "0" * 40
    assert dm == dr, "DEBUG DIGEST differs between master and replica"


def test_full_sync_carries_every_state(make_server):
    master = make_server()
    m = master.client(decode_responses=True, protocol=2)
    ids = all_ids(fill_every_state(m, "q", tag="f"))
    m3 = master.client(decode_responses=True, protocol=2, db=3)
    ids3 = all_ids(fill_every_state(m3, "q3", tag="g"))
    replica = make_server()
    attach_replica(replica, master)
    r = replica.client(decode_responses=True, protocol=2)
    r3 = replica.client(decode_responses=True, protocol=2, db=3)
    assert_same_digest(m, r)
    assert stats(r, "q") == stats(m, "q") and stats(r3, "q3") == stats(m3, "q3")
    for i in ids:
        assert inspect(r, "q", i) == inspect(m, "q", i)
    for i in ids3:
        assert inspect(r3, "q3", i) == inspect(m3, "q3", i)
    assert schedules(r, "q") == schedules(m, "q")
    assert gauges(r) == gauges(m), "INFO once differs between master and replica"
    # changes after the sync stream through as commands
    push(m, "q", "after-sync", "ID", "after")
    job_id, _, _ = reserve_one(m, "q", "LEASE", FAR // 100)
    assert m.execute_command("ONCE.NACK", "q", job_id, "ERROR", "streamed", "DELAY", FAR) == 1
    assert_same_digest(m, r)
    assert inspect(r, "q", job_id) == inspect(m, "q", job_id)
    assert inspect(r, "q", job_id)["last_error"] == "streamed"


def test_replica_refuses_writes(pair):
    master, replica = pair
    m, r = clients(master, replica)
    push(m, "q", "p")
    wait_in_sync(m, r)
    raw = RawClient(replica.port)
    for cmd in (["ONCE.PUSH", "q", "x"], ["ONCE.RESERVE", "q"], ["ONCE.ACK", "q", "x"],
                ["ONCE.SCHEDULE", "q", "s", "@every 1s", "p"]):
        assert raw.error(*cmd).startswith("READONLY "), cmd
    raw.close()
    assert stats(r, "q") == stats(m, "q")
    assert stats(r, "q")["ready"] == 1


class Workload:
    """A mixed workload on the master: pushes with and without DELAY, reserves with short leases that expire, NACKs
    that retry, jobs that go dead, blocking reserves served by pushes, acks, a schedule every 100 ms."""

    def __init__(self, master):
        self.master = master
        self.stop = threading.Event()
        self.errors = []
        self.pushed = {"w:main": [], "w:block": []}
        self.served_blocked = 0
        self.acked = 0
        self.threads = []
        self.lock = threading.Lock()

    def _client(self):
        return self.master.client(decode_responses=True, protocol=2)

    def _guard(self, fn):
        def run():
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))
        return run

    def pusher(self):
        c = self._client()
        rnd = random.Random(1)
        i = 0
        while not self.stop.is_set():
            opts = ["RETRIES", rnd.randint(0, 2), "BACKOFF", 30, "PRIORITY", i % 3]
            if i % 4 == 0:
                opts += ["DELAY", rnd.randint(20, 200)]
            if i % 7 == 0:
                opts += ["ID", f"c{i}"]
            job_id = push(c, "w:main", f"m{i}", *opts)
            with self.lock:
                self.pushed["w:main"].append(job_id)
            if i % 3 == 0:
                job_id = push(c, "w:block", f"b{i}")
                with self.lock:
                    self.pushed["w:block"].append(job_id)
            i += 1
            time.sleep(0.002)
        c.close()

    def worker(self):
        c = self._client()
        rnd = random.Random(2)
        while not self.stop.is_set():
            got = reserve(c, "w:main", "COUNT", 5, "LEASE", 60) or []
            for job_id, _, attempt in got:
                roll = rnd.random()
                if roll < 0.4:
                    self.acked += c.execute_command("ONCE.ACK", "w:main", job_id)
                elif roll < 0.55:
                    c.execute_command("ONCE.NACK", "w:main", job_id, "ATTEMPT", attempt, "ERROR", f"fail {attempt}")
                elif roll < 0.65:
                    c.execute_command("ONCE.NACK", "w:main", job_id, "ERROR", "retry soon", "DELAY", 40)
                elif roll < 0.75:
                    c.execute_command("ONCE.NACK", "w:main", job_id, "ERROR", "fatal", "DEAD")
                elif roll < 0.8:
                    c.execute_command("ONCE.EXTEND", "w:main", job_id, 80, "ATTEMPT", attempt)
                # else: the lease runs out
            if rnd.random() < 0.3:
                reserve(c, "w:cron", "COUNT", 2, "LEASE", 50)        # cron jobs: leases run out, retry, die
            time.sleep(0.003)
        c.close()

    def blocker(self):
        c = self._client()
        previous = None
        while not self.stop.is_set():
            args = ["BLOCK", 200, "LEASE", 5000]
            if previous:
                args += ["ACK", previous]
            got = reserve(c, "w:block", *args)
            previous = None
            if got:
                self.served_blocked += 1
                previous = got[0][0]
        if previous:
            c.execute_command("ONCE.ACK", "w:block", previous)
        c.close()

    def start(self):
        m = self._client()
        m.execute_command("ONCE.SCHEDULE", "w:cron", "tick", "@every 100ms", "tick", "RETRIES", 1, "BACKOFF", 30)
        m.close()
        for fn in (self.pusher, self.worker, self.blocker, self.blocker):
            t = threading.Thread(target=self._guard(fn), daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)
        assert not any(t.is_alive() for t in self.threads)
        assert not self.errors, self.errors


QUEUES = ["w:main", "w:block", "w:cron"]


def settled(m):
    return all(stats(m, q)["delayed"] == 0 and stats(m, q)["reserved"] == 0 for q in QUEUES)


def test_mixed_workload_replica_identical_then_takes_over(pair):
    master, replica = pair
    m, r = clients(master, replica)
    w = Workload(master)
    w.start()
    time.sleep(2.5)                     # the workload runs on its own for a while
    w.finish()
    assert m.execute_command("ONCE.UNSCHEDULE", "w:cron", "tick") == 1
    wait_until(lambda: settled(m), timeout=15, interval=0.05, what="leases and delays to run out")
    main = stats(m, "w:main")
    cron = stats(m, "w:cron")
    print(f"\n{master.kind}: main {main}\ncron {cron}\nblocked reserves served {w.served_blocked}")
    # the workload did what it claims
    assert main["expired_total"] > 0 and main["retried_total"] > 0 and main["dead_total"] > 0
    assert main["acked_total"] > 0 and main["nacked_total"] > 0
    assert w.served_blocked > 10
    assert cron["pushed_total"] >= 10 and cron["expired_total"] > 0

    assert_same_digest(m, r)
    for q in QUEUES:
        assert stats(r, q) == stats(m, q), q
        assert digest_value(r, q) == digest_value(m, q), q
    assert gauges(r) == gauges(m), "INFO once differs between master and replica"

    # the replica becomes a master: everything the master had is there
    sample = w.pushed["w:main"][::7] + w.pushed["w:block"][::5]
    expected = {q: stats(m, q) for q in QUEUES}
    expected_jobs = {(q, i): inspect(m, q, i) for q in ("w:main", "w:block") for i in sample}
    r.execute_command("REPLICAOF", "NO", "ONE")
    wait_until(lambda: r.info("replication")["role"] == "master", timeout=5, what="replica promoted")
    for q in QUEUES:
        assert stats(r, q) == expected[q], q
    for (q, i), job in expected_jobs.items():
        assert inspect(r, q, i) == job, (q, i)
    # both are masters now, with the same queues: they hand out the ready jobs in the same order
    for q in QUEUES:
        assert ready_order(r, q) == ready_order(m, q), f"{q}: ready order differs after takeover"

    # and its timer carries on with no other command
    job_id = push(r, "w:main", "on-new-master", "DELAY", 200)
    due = inspect(r, "w:main", job_id)["due"]
    assert state(r, "w:main", job_id) == "delayed"
    wait_until(lambda: state(r, "w:main", job_id) == "ready", timeout=3, interval=0.01, what="promotion on new master")
    assert time.time() * 1000 >= due - 5
    lease_id = push(r, "w:lease", "short lease", "RETRIES", 0)
    got = reserve(r, "w:lease", "LEASE", 200)
    assert got[0][0] == lease_id
    wait_until(lambda: state(r, "w:lease", lease_id) == "dead", timeout=3, interval=0.01, what="lease expiry")
    assert inspect(r, "w:lease", lease_id)["last_error"] == "lease expired"
    assert not module_trouble(master) and not module_trouble(replica)


def test_replica_timer_waits_until_promoted(pair):
    """A replica whose master died does not act on its own: delayed jobs stay delayed, leases stay held and
    schedules do not fire until it is made a master; then the timer acts at once."""
    master, replica = pair
    m, r = clients(master, replica)
    delayed = push(m, "q", "later", "DELAY", 2000)
    leased = push(m, "q", "leased", "RETRIES", 0, "PRIORITY", 5)
    reserve(m, "q", "LEASE", 2000)
    m.execute_command("ONCE.SCHEDULE", "q", "tick", "@every 100ms", "tick")
    assert m.execute_command("WAIT", 1, 5000) == 1    # the replica has everything up to here
    master.stop(kill=True)
    pushed_before = stats(r, "q")["pushed_total"]
    assert (state(r, "q", delayed), state(r, "q", leased)) == ("delayed", "reserved"), "too slow: already due"
    due = inspect(r, "q", delayed)["due"]
    lease_deadline = inspect(r, "q", leased)["lease_deadline"]
    # the point: well past the due time, the lease and several cron ticks, with no master
    wait_until(lambda: server_ms(r) > max(due, lease_deadline) + 500, timeout=5, what="time to pass")
    assert state(r, "q", delayed) == "delayed"
    assert state(r, "q", leased) == "reserved"
    assert stats(r, "q")["pushed_total"] == pushed_before, "the replica's timer fired a schedule"
    r.execute_command("REPLICAOF", "NO", "ONE")
    wait_until(lambda: state(r, "q", delayed) == "ready", timeout=3, interval=0.01, what="promotion after takeover")
    wait_until(lambda: state(r, "q", leased) == "dead", timeout=3, interval=0.01, what="lease expiry after takeover")
    wait_until(lambda: stats(r, "q")["pushed_total"] > pushed_before, timeout=3, what="cron tick after takeover")
    assert inspect(r, "q", leased)["last_error"] == "lease expired"
    assert not module_trouble(replica), replica.log_tail()


def test_multi_exec_replicates(pair):
    master, replica = pair
    m, r = clients(master, replica)
    pipe = m.pipeline(transaction=True)
    pipe.execute_command("ONCE.PUSH", "tx", "first", "ID", "t1", "PRIORITY", 10)
    pipe.execute_command("ONCE.PUSH", "tx", "second", "ID", "t2")
    pipe.execute_command("ONCE.PUSH", "tx", "later", "ID", "t3", "DELAY", 150)
    pipe.execute_command("ONCE.RESERVE", "tx", "LEASE", 60000)
    pipe.execute_command("ONCE.ACK", "tx", "t1")
    pipe.execute_command("ONCE.RESERVE", "tx", "COUNT", 5, "LEASE", 100)
    pipe.execute_command("ONCE.RESERVE", "tx", "BLOCK", 1000)       # no blocking inside MULTI: nil at once
    pipe.execute_command("ONCE.PUSH", "tx", "server-id")
    started = time.monotonic()
    out = pipe.execute()
    assert time.monotonic() - started < 0.5
    assert out[:3] == ["t1", "t2", "t3"]
    assert out[3] == [["t1", "first", 1]]
    assert out[4] == 1
    assert out[5] == [["t2", "second", 1]]
    assert out[6] is None
    assert inspect(m, "tx", out[7])["state"] == "ready"
    assert_same_digest(m, r)
    assert inspect(r, "tx", "t2") == inspect(m, "tx", "t2")
    assert inspect(r, "tx", "t1") is None
    # the timer's later work (promotion of t3, expiry of t2's 100 ms lease) reaches the replica too
    wait_until(lambda: state(m, "tx", "t3") == "ready" and state(m, "tx", "t2") != "reserved", timeout=3,
               what="timer work on the master")
    assert_same_digest(m, r)
    assert inspect(r, "tx", "t2")["last_error"] == "lease expired"


def test_lua_and_functions_push_and_replicate(pair):
    master, replica = pair
    m, r = clients(master, replica)
    job_id = m.eval("return redis.call('ONCE.PUSH', KEYS[1], ARGV[1])", 1, "lua", "from-lua")
    assert inspect(m, "lua", job_id)["payload"] == "from-lua"
    delayed = m.eval("return redis.call('ONCE.PUSH', KEYS[1], ARGV[1], 'DELAY', ARGV[2])", 1, "lua", "later", 150)
    # a reserve inside a script never blocks; a reserve + ack in one script
    assert m.eval("return redis.call('ONCE.RESERVE', KEYS[1], 'BLOCK', 1000, 'COUNT', 5)", 1, "empty") is None
    got = m.eval("""
        local got = redis.call('ONCE.RESERVE', KEYS[1], 'LEASE', 60000)
        local n = redis.call('ONCE.ACK', KEYS[1], got[1][1])
        return {got[1][1], n}""", 1, "lua")
    assert got == [job_id, 1]
    second = m.eval("return redis.call('ONCE.PUSH', KEYS[1], ARGV[1], 'ID', 'lua-custom')", 1, "lua", "x")
    assert second == "lua-custom"
    lib = ("#!lua name=oncelib\n"
           "redis.register_function('opush', function(keys, args) "
           "return redis.call('ONCE.PUSH', keys[1], args[1]) end)")
    m.execute_command("FUNCTION", "LOAD", "REPLACE", lib)
    fid = m.execute_command("FCALL", "opush", 1, "lua", "from-function")
    assert inspect(m, "lua", fid)["payload"] == "from-function"
    assert_same_digest(m, r)
    for i in (delayed, second, fid):
        assert inspect(r, "lua", i) == inspect(m, "lua", i)
    assert inspect(r, "lua", job_id) is None
    wait_until(lambda: state(m, "lua", delayed) == "ready", timeout=3, what="promotion")
    assert_same_digest(m, r)


def test_client_pause_write_holds_the_timer(pair):
    """While writes are paused (CLIENT PAUSE WRITE, as FAILOVER does) the timer must not write or replicate; it
    catches up when the pause ends. Redis 7.0 aborts if a module propagates during such a pause."""
    master, replica = pair
    m, r = clients(master, replica)
    delayed = push(m, "p", "later", "DELAY", 300)
    leased = push(m, "p", "leased", "RETRIES", 0, "PRIORITY", 1)
    reserve(m, "p", "LEASE", 300)
    m.execute_command("CLIENT", "PAUSE", 1200, "WRITE")
    due = inspect(m, "p", delayed)["due"]
    lease_deadline = inspect(m, "p", leased)["lease_deadline"]
    wait_until(lambda: server_ms(m) > max(due, lease_deadline) + 300, timeout=3, what="past due while paused")
    assert master.alive(), master.log_tail()
    assert m.execute_command("CLIENT", "INFO")                      # still answering
    paused = (state(m, "p", delayed), state(m, "p", leased))
    wait_until(lambda: state(m, "p", delayed) == "ready" and state(m, "p", leased) == "dead", timeout=3,
               what="the timer to catch up after the pause")
    assert paused == ("delayed", "reserved"), f"the timer acted during CLIENT PAUSE WRITE: {paused}"
    assert master.alive()
    assert_same_digest(m, r)
    assert not module_trouble(master), master.log_tail()


def test_keyspace_operations_replicate_then_takeover(pair):
    """RENAME, MOVE, SWAPDB, COPY, DEL and EXPIRE on the master reach the replica as they are; after a takeover
    the new master's timer serves every queue under its new name and database, and none of the gone ones."""
    master, replica = pair
    m = {db: master.client(decode_responses=True, protocol=2, db=db) for db in (0, 1, 2)}
    r = {db: replica.client(decode_responses=True, protocol=2, db=db) for db in (0, 1, 2)}
    jobs = {}
    for name in ("renamed", "moved", "swapped", "copied", "deleted", "expiring"):
        jobs[name] = push(m[0], name, name, "DELAY", 1500, "ID", f"job-{name}")
        m[0].execute_command("ONCE.SCHEDULE", name, "tick", "@every 100ms", name)
    assert m[0].rename("renamed", "renamed-new")
    assert m[0].move("moved", 2)
    assert m[0].copy("copied", "copied-new", destination_db=1)
    assert m[0].delete("deleted") == 1
    assert m[0].pexpire("expiring", 200)
    assert m[0].swapdb(0, 1)                 # db 0 ⇄ db 1: "swapped", "renamed-new", "copied" go to db 1
    where = {"renamed-new": 1, "moved": 2, "swapped": 1, "copied": 1, "copied-new": 0}
    wait_until(lambda: m[1].exists("expiring") == 0, timeout=3, what="expiry on the master")
    wait_in_sync(m[0], r[0], stable_reads=1)
    for key, db in where.items():
        assert r[db].exists(key) == 1, (key, db)
    assert r[0].dbsize() == 1 and r[1].dbsize() == 3 and r[2].dbsize() == 1
    master.stop(kill=True)
    r[0].execute_command("REPLICAOF", "NO", "ONE")
    for key, db in where.items():
        job_id = "job-" + key.replace("-new", "")
        wait_until(lambda: state(r[db], key, job_id) == "ready", timeout=4, interval=0.01,
                   what=f"{key} in db {db} promoted on the new master")
        before = stats(r[db], key)["pushed_total"]
        wait_until(lambda: stats(r[db], key)["pushed_total"] >= before + 2, timeout=2,
                   what=f"cron ticks of {key} in db {db}")
    time.sleep(0.3)
    assert r[0].dbsize() == 1 and r[1].dbsize() == 3 and r[2].dbsize() == 1, "a key came back"
    assert r[0].info("once")["once_queues"] == 5
    assert not module_trouble(replica), replica.log_tail()


def test_shutdown_waiting_for_a_lagging_replica_with_timer_work(pair):
    """SHUTDOWN waits (up to shutdown-timeout) for a lagging replica with writes paused. The timer has work due all
    the while (a schedule every 100 ms, delayed jobs): it must stay quiet, and the master must exit cleanly."""
    import os
    import signal
    master, replica = pair
    m, r = clients(master, replica)
    m.execute_command("ONCE.SCHEDULE", "q", "tick", "@every 100ms", "tick")
    for i in range(20):
        push(m, "q", f"d{i}", "DELAY", 100 + 50 * i)
    assert m.execute_command("WAIT", 1, 5000) == 1
    m.config_set("shutdown-timeout", 2)
    os.kill(replica.proc.pid, signal.SIGSTOP)          # the replica stops reading: it lags from now on
    try:
        push(m, "q", "lagging")
        sock = RawClient(master.port)
        sock.sock.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
        code = master.proc.wait(timeout=15)
        sock.close()
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    log = master.log_tail(40)
    assert code == 0, log
    assert "ready to exit" in log, log
    assert not module_trouble(master), module_trouble(master)


def test_failover_with_timer_work(pair):
    """FAILOVER pauses writes on the master while the replica catches up and takes over; the timer keeps quiet
    during the pause, then only the new master acts, and the two end up identical."""
    master, replica = pair
    m, r = clients(master, replica)
    m.execute_command("ONCE.SCHEDULE", "q", "tick", "@every 100ms", "tick", "RETRIES", 0)
    ids = [push(m, "q", f"d{i}", "DELAY", 50 * i, "RETRIES", 0) for i in range(30)]
    reserve(m, "q", "COUNT", 3, "LEASE", 150)
    assert m.execute_command("WAIT", 1, 5000) == 1
    m.execute_command("FAILOVER", "TIMEOUT", 5000)
    wait_until(lambda: r.info("replication")["role"] == "master" and m.info("replication")["role"] == "slave",
               timeout=10, what="failover to finish")
    wait_until(lambda: m.info("replication")["master_link_status"] == "up", timeout=10, what="old master following")
    assert master.alive() and replica.alive()
    # quiet: stop the schedule on the new master and let delays and leases run out
    assert r.execute_command("ONCE.UNSCHEDULE", "q", "tick") == 1
    wait_until(lambda: stats(r, "q")["delayed"] == 0 and stats(r, "q")["reserved"] == 0, timeout=5,
               what="the new master's timer to finish the work")
    assert_same_digest(r, m)
    assert [inspect(m, "q", i) for i in ids] == [inspect(r, "q", i) for i in ids]
    assert not module_trouble(master) and not module_trouble(replica)
