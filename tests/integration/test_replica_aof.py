"""A replica's own AOF (issue 11): what a replica applies from its master, internal ONCE._* commands included, goes
into the replica's AOF, so a replica promoted and restarted from its own files holds exactly what the master had.

(Comparing the replica's memory with the master's is not enough: it hides a replica that applies the master's
stream without writing it down.) Each test runs on both server kinds (the `kind` fixture of conftest.py). The
master is frozen with `CLIENT PAUSE <ms> WRITE` (which holds the module's timer too) while its digest is taken.
"""
import threading
import time

import harness
from durability_helpers import (FAR, NEVER_CRON, assert_same_snapshot, digest, module_trouble, snapshot,
                                wait_in_sync, wait_rewrite_done)
from helpers import inspect, push, reserve, reserve_one, state, stats, wait_until

REPLICA_AOF = ["--appendonly", "yes", "--appendfsync", "always"]


def start_pair(make_server):
    """A master without AOF and a replica with its own AOF, replicating from the start."""
    master = make_server()
    replica = make_server(extra=REPLICA_AOF + ["--replicaof", "127.0.0.1", master.port])
    r = replica.client(decode_responses=True, protocol=2)
    wait_until(lambda: r.info("replication").get("master_link_status") == "up", timeout=20, interval=0.02,
               what="replica link up")
    r.close()
    return master, replica


def frozen_snapshot(master, replica, queues):
    """Freezes the master (CLIENT PAUSE WRITE: no client write, no timer action), waits until the replica has
    everything, and returns the master's snapshot (STATS, INSPECT of every id, SCHEDULES, DIGEST-VALUE, DEBUG
    DIGEST). The pause lasts 60 s or until CLIENT UNPAUSE."""
    m = master.client(decode_responses=True, protocol=2)
    r = replica.client(decode_responses=True, protocol=2)
    m.execute_command("CLIENT", "PAUSE", 60000, "WRITE")
    wait_in_sync(m, r)
    snap = snapshot(m, queues, with_order=False)
    assert digest(r) == snap["__digest__"], "the replica's memory already differs from the master's"
    m.close()
    r.close()
    return snap


def restart_from_own_aof(replica, as_replica_of_nobody=False):
    """SHUTDOWN (the AOF is flushed), then a start from the replica's own files alone: as a master, or as the replica
    of a port nothing listens on (it loads its files and never syncs; its timer stays idle)."""
    extra = list(REPLICA_AOF)
    if as_replica_of_nobody:
        extra += ["--replicaof", "127.0.0.1", harness.free_port()]
    replica.restart(extra=extra)
    return replica.client(decode_responses=True, protocol=2)


def test_promoted_replica_restarted_from_its_own_aof_holds_the_masters_queue(make_server):
    """The reproduction of issue 11: PUSH 5, RESERVE COUNT 2, a NACK, a delayed job promoted by the timer, a lease
    that runs out, a schedule that fires; then the master goes, the replica is promoted and restarted from its own
    AOF, and holds exactly what the master had."""
    master, replica = start_pair(make_server)
    m = master.client(decode_responses=True, protocol=2)
    ids = [push(m, "q", f"job{i}") for i in range(1, 6)]
    got = reserve(m, "q", "COUNT", 2, "LEASE", FAR // 100)
    assert [g[0] for g in got] == ids[:2]
    nacked = push(m, "q", "nacked", "PRIORITY", 10, "RETRIES", 3)
    job_id, _, attempt = reserve_one(m, "q", "LEASE", FAR // 100)
    assert job_id == nacked
    assert m.execute_command("ONCE.NACK", "q", nacked, "ATTEMPT", attempt, "ERROR", "smtp timeout", "DELAY", FAR) == 1
    later = push(m, "q", "later", "DELAY", 200)
    leased = push(m, "q", "leased", "RETRIES", 0, "PRIORITY", 10)
    job_id, _, _ = reserve_one(m, "q", "LEASE", 200)
    assert job_id == leased
    m.execute_command("ONCE.SCHEDULE", "q", "tick", "@every 200ms", "tick-payload", "PRIORITY", -1)
    wait_until(lambda: state(m, "q", later) == "ready" and state(m, "q", leased) == "dead"
               and stats(m, "q")["pushed_total"] >= 10, timeout=5, interval=0.02,
               what="promotion, lease expiry and two schedule fires")
    # the schedule stays, with its fire history, but fires no more during the test
    m.execute_command("ONCE.SCHEDULE", "q", "tick", NEVER_CRON, "tick-payload", "PRIORITY", -1)
    s = stats(m, "q")
    assert (s["reserved"], s["dead"], s["schedules"]) == (2, 1, 1) and s["expired_total"] == 1, s
    before = frozen_snapshot(master, replica, {"q": ids + [nacked, later, leased]})

    master.stop(kill=True)
    r = replica.client(decode_responses=True, protocol=2)
    r.execute_command("REPLICAOF", "NO", "ONE")
    wait_until(lambda: r.info("replication")["role"] == "master", timeout=5, what="promotion")
    r.close()
    r = restart_from_own_aof(replica)
    after = snapshot(r, {"q": ids + [nacked, later, leased]}, with_order=False)
    assert after["q"]["stats"] == before["q"]["stats"], (
        f"after a restart from its own AOF the promoted replica has {after['q']['stats']}, "
        f"the master had {before['q']['stats']}")
    assert_same_snapshot(before, after)
    assert not module_trouble(replica), replica.log_tail()


class Blocker:
    """A blocking RESERVE ... BLOCK on its own connection, served by a later push (the blocked-client path)."""

    def __init__(self, server, queue, *args):
        self.reply = None
        self.c = server.client(decode_responses=True, protocol=2, socket_timeout=10)
        self.t = threading.Thread(target=self._run, args=(queue, args), daemon=True)
        self.t.start()

    def _run(self, queue, args):
        self.reply = self.c.execute_command("ONCE.RESERVE", queue, *args)

    def join(self):
        self.t.join(10)
        assert not self.t.is_alive()
        self.c.close()
        return self.reply


def mixed_workload(master):
    """Every command and every timer-driven change (promotion, lease expiry with retry and with death, schedule
    fires). Returns {queue: ids}; every short timer (delays, leases, backoffs, schedules) has run out when it
    returns or does within ~0.5 s; everything else is far in the future."""
    m = master.client(decode_responses=True, protocol=2)
    now = int(time.time() * 1000)
    mix = []
    # PUSH with every option
    plain = push(m, "mix", "plain")
    mix.append(plain)
    mix.append(push(m, "mix", "with-id", "ID", "custom-1", "PRIORITY", 5, "RETRIES", 7, "BACKOFF", 250,
                    "LEASE", 12345))
    assert push(m, "mix", "again", "ID", "custom-1") == "custom-1"            # idempotent: nothing added
    mix.append(push(m, "mix", "far", "DELAY", FAR, "PRIORITY", -2))
    mix.append(push(m, "mix", "at-future", "AT", now + FAR))
    at_past = push(m, "mix", "at-past", "AT", now - 1000, "PRIORITY", 3)
    soon = push(m, "mix", "soon", "DELAY", 150)                                 # promoted by the timer
    mix += [at_past, soon, push(m, "mix", "\x00bin\r\nary \u00fc")]
    # RESERVE (priority order: custom-1, at-past, plain), ACK, EXTEND (fenced), NACK (fenced, short DELAY)
    got = reserve(m, "mix", "COUNT", 3, "LEASE", FAR // 100)
    assert [g[0] for g in got] == ["custom-1", at_past, plain], got
    (a, _, _), (b, _, b_att), (c, _, c_att) = got
    assert m.execute_command("ONCE.ACK", "mix", a) == 1
    assert m.execute_command("ONCE.EXTEND", "mix", b, FAR // 50, "ATTEMPT", b_att)
    assert m.execute_command("ONCE.NACK", "mix", c, "ATTEMPT", c_att, "ERROR", "short delay", "DELAY", 100) == 1
    # ACK fenced by ATTEMPT: a stale token does nothing, the right one completes
    fence = push(m, "mix", "fence-me", "PRIORITY", 200)
    job, _, att = reserve_one(m, "mix", "LEASE", FAR // 100)
    assert job == fence
    assert m.execute_command("ONCE.ACK", "mix", fence, "ATTEMPT", att + 1) == 0
    assert m.execute_command("ONCE.ACK", "mix", fence, "ATTEMPT", att) == 1
    # NACK ... DEAD, RETRY (dead -> ready; reserved again, its attempt grows), CANCEL
    dead = push(m, "mix", "to-die", "PRIORITY", 100, "RETRIES", 5)
    job, _, att = reserve_one(m, "mix")
    assert job == dead
    assert m.execute_command("ONCE.NACK", "mix", dead, "ATTEMPT", att, "ERROR", "fatal", "DEAD") == 1
    assert m.execute_command("ONCE.RETRY", "mix", dead) == 1
    job, _, att2 = reserve_one(m, "mix", "LEASE", FAR // 100)
    assert job == dead and att2 > att, (job, att, att2)
    cancel_ready = push(m, "mix", "cancel-me", "PRIORITY", -5)
    cancel_delayed = push(m, "mix", "cancel-me-too", "DELAY", FAR)
    assert m.execute_command("ONCE.CANCEL", "mix", cancel_ready, cancel_delayed, "unknown-id") == 2
    # leases that run out on the timer: one retried after a short backoff, one dead
    exp_retry = push(m, "mix", "expire-retry", "PRIORITY", 100, "RETRIES", 1, "BACKOFF", 50)
    exp_dead = push(m, "mix", "expire-dead", "PRIORITY", 100, "RETRIES", 0)
    got = reserve(m, "mix", "COUNT", 2, "LEASE", 150)
    assert sorted(g[0] for g in got) == sorted([exp_retry, exp_dead]), got
    mix += [fence, dead, cancel_ready, cancel_delayed, exp_retry, exp_dead]
    # a blocked RESERVE served by a push; RESERVE ... ACK id ATTEMPT n (ack-and-fetch, fenced)
    blocker = Blocker(master, "blocked", "BLOCK", 5000, "LEASE", FAR // 100, "ACK", "not-reserved")
    wait_until(lambda: m.info("clients")["blocked_clients"] >= 1, timeout=5, what="a blocked RESERVE")
    served = push(m, "blocked", "wake-up")
    reply = blocker.join()
    assert reply and reply[0][0] == served, reply
    fetch = [push(m, "fetch", "first"), push(m, "fetch", "second")]
    job, _, att = reserve_one(m, "fetch", "LEASE", FAR // 100)
    got = m.execute_command("ONCE.RESERVE", "fetch", "LEASE", FAR // 100, "ACK", job, "ATTEMPT", att)
    assert inspect(m, "fetch", job) is None, "RESERVE ... ACK id ATTEMPT n did not ack"
    assert got and got[0][0] == fetch[1], got
    # schedules: one fires every 100 ms (its jobs' leases run out, retried once, then dead), one is removed, one
    # never fires during the test
    m.execute_command("ONCE.SCHEDULE", "cron", "tick", "@every 100ms", "tick", "RETRIES", 1, "BACKOFF", 50,
                      "LEASE", 100, "PRIORITY", 2)
    m.execute_command("ONCE.SCHEDULE", "cron", "gone", "@every 1s", "gone")
    m.execute_command("ONCE.SCHEDULE", "cron", "yearly", NEVER_CRON, "yearly", "TZ", "Europe/Berlin",
                      "MISSED", "skip")
    assert m.execute_command("ONCE.UNSCHEDULE", "cron", "gone") == 1
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and stats(m, "cron")["dead_total"] < 2:
        reserve(m, "cron", "COUNT", 10, "LEASE", 50)
        time.sleep(0.05)
    assert m.execute_command("ONCE.UNSCHEDULE", "cron", "tick") == 1
    wait_until(lambda: state(m, "mix", soon) == "ready" and state(m, "mix", exp_dead) == "dead"
               and state(m, "mix", exp_retry) == "ready" and state(m, "mix", c) == "ready", timeout=5,
               interval=0.02, what="promotions and lease expiries on the timer")
    s, cs = stats(m, "mix"), stats(m, "cron")
    assert s["expired_total"] == 2 and s["retried_total"] >= 2 and s["dead_total"] == 2, s
    assert cs["pushed_total"] >= 3 and cs["expired_total"] >= 2 and cs["dead_total"] >= 2, cs
    assert cs["schedules"] == 1, cs
    m.close()
    return {"mix": mix, "blocked": [served], "fetch": fetch, "cron": []}


def quiet(m, seconds=1.5, timeout=10):
    """Waits until the master's DEBUG DIGEST stays the same for `seconds`: the timer has nothing left to do soon."""
    deadline = time.monotonic() + timeout
    last, since = digest(m), time.monotonic()
    while time.monotonic() - since < seconds:
        time.sleep(0.1)
        d = digest(m)
        if d != last:
            last, since = d, time.monotonic()
        assert time.monotonic() < deadline, "the master never became quiet"


def test_replica_aof_alone_rebuilds_the_master_after_every_command(make_server):
    """A replica's AOF alone (an AOF rewrite half way through) rebuilds the master's digest after a workload of every
    command, timer-driven changes included, in two databases: restarted as the replica of nobody, and as a master."""
    master, replica = start_pair(make_server)
    m = master.client(decode_responses=True, protocol=2)
    r = replica.client(decode_responses=True, protocol=2)
    # a rewrite of the replica's AOF half way: its base holds the first part, its incr file the rest
    push(m, "early", "before-rewrite", "ID", "early", "DELAY", 100)
    wait_in_sync(m, r, stable_reads=1)
    wait_rewrite_done(r)                  # the rewrite a replica starts by itself after its first sync
    r.execute_command("BGREWRITEAOF")
    wait_rewrite_done(r)
    queues = mixed_workload(master)
    queues["early"] = ["early"]
    m2 = master.client(decode_responses=True, protocol=2, db=2)
    other = [push(m2, "db2", "in db 2", "DELAY", 100), push(m2, "db2", "in db 2 too", "RETRIES", 0)]
    job, _, _ = reserve_one(m2, "db2", "LEASE", 100)
    assert job == other[1]
    wait_until(lambda: state(m2, "db2", job) == "dead" and state(m2, "db2", other[0]) == "ready", timeout=5,
               what="timer work in db 2")
    quiet(m)
    before = frozen_snapshot(master, replica, queues)
    before2 = snapshot(m2, {"db2": other}, with_server_digest=False, with_order=False)
    try:
        # 1. as the replica of nobody: its timer stays idle, so nothing can move between the two digests
        r = restart_from_own_aof(replica, as_replica_of_nobody=True)
        assert_same_snapshot(before, snapshot(r, queues, with_order=False))
        # 2. as a standalone master (the state is quiet: nothing is due for a long while)
        r = restart_from_own_aof(replica)
        assert_same_snapshot(before, snapshot(r, queues, with_order=False))
        r2 = replica.client(decode_responses=True, protocol=2, db=2)
        assert_same_snapshot(before2, snapshot(r2, {"db2": other}, with_server_digest=False, with_order=False))
    finally:
        m.execute_command("CLIENT", "UNPAUSE")
    assert not module_trouble(replica) and not module_trouble(master), replica.log_tail() + master.log_tail()


def test_sub_replica_and_its_aof_hold_the_masters_queues(make_server):
    """master -> replica -> sub-replica: what the replica applies (internal commands included) reaches the
    sub-replica, whose memory and whose own AOF both rebuild the master's digest."""
    master, replica = start_pair(make_server)
    sub = make_server(extra=REPLICA_AOF + ["--replicaof", "127.0.0.1", replica.port])
    s = sub.client(decode_responses=True, protocol=2)
    wait_until(lambda: s.info("replication").get("master_link_status") == "up", timeout=20, interval=0.02,
               what="sub-replica link up")
    queues = mixed_workload(master)
    m = master.client(decode_responses=True, protocol=2)
    quiet(m)
    before = frozen_snapshot(master, replica, queues)
    try:
        r = replica.client(decode_responses=True, protocol=2)
        wait_in_sync(r, s)
        assert digest(s) == before["__digest__"], "the sub-replica's memory differs from the master's"
        s = restart_from_own_aof(sub, as_replica_of_nobody=True)
        assert_same_snapshot(before, snapshot(s, queues, with_order=False))
    finally:
        m.execute_command("CLIENT", "UNPAUSE")
    assert not module_trouble(sub), sub.log_tail()
