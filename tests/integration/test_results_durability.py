"""Persistence and replication of what issue 21 adds: completed jobs with their result, cancelled jobs, progress,
TTL deadlines, KEEP settings (the queue's and a job's own) and a CALL's pending cancel.

Each state must come back the same (STATS, INSPECT, RESULT, LIST completed/cancelled, EVENTS, DEBUG DIGEST-VALUE)
after DEBUG RELOAD, an AOF replay, an AOF rewrite + restart, from a replica's own AOF alone, and after a failover;
and the deadlines it carries must still fire afterwards, on whichever server now holds the queue. A RESULT BLOCK
or CALL waiter on a master that is turned into a replica gets an error it can retry, not a hang.

Two queues: `res` holds every state with deadlines far in the future (compared exactly); `soon` holds deadlines
~1.5-2 s after they are set (TTL, TTL DROP, KEEP, CALL ... CANCEL), checked still pending right after each step and
then checked to fire. Each test starts its own servers of the parametrized kind (redis 7.0, valkey 9.1).
"""
import threading
import time

from durability_helpers import (FAR, assert_same_snapshot, digest, digest_value, fast_restart, module_trouble,
                                snapshot, wait_in_sync, wait_rewrite_done)
from helpers import RawClient, as_map, inspect, push, reserve, state, stats, wait_until
from test_replica_aof import restart_from_own_aof, start_pair
from test_results import ack, listed, result, start_blocked

AOF_NO_PREAMBLE = ["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "no"]
RES = "res"
SOON = "soon"
SOON_IDS = ["ttl-dead", "ttl-drop", "kept", "call"]
BINARY_RESULT = "r\u00e9sultat \x00\r\n with bytes"


class RawWaiter:
    """A blocking command on a raw connection in a thread: keeps an error reply exactly as the server sent it."""

    def __init__(self, server, *args):
        self.reply = None
        self.done_at = None
        self.c = RawClient(server.port, timeout=20)
        self.t = threading.Thread(target=self._run, args=(args,), daemon=True)
        self.t.start()

    def _run(self, args):
        try:
            self.reply = self.c.call(*args)
        except OSError as e:
            self.reply = ("oserror", str(e))
        self.done_at = time.monotonic()

    def running(self):
        return self.t.is_alive()

    def join(self, timeout):
        self.t.join(timeout)
        assert not self.t.is_alive(), "still blocked: a silent hang"
        self.c.close()
        return self.reply


def start_raw_blocked(server, r, *args):
    """Starts `args` on a RawWaiter and waits until the server counts one more blocked client. (The CALLs here run
    on raw connections: redis-py would send a CALL again on a new connection after a restart.)"""
    base = r.info("clients")["blocked_clients"]
    w = RawWaiter(server, *args)
    wait_until(lambda: r.info("clients")["blocked_clients"] > base or not w.running(), timeout=3,
               what=f"{args[0]} to block")
    assert w.running(), f"{args!r} did not block: replied {w.reply!r}"
    return w


def fill_far(server, r):
    """Every state of issue 21 in queue `res`, nothing due during a test. Returns (ids, the blocked CALL)."""
    conf = as_map(r.execute_command("ONCE.CONFIGURE", RES, "KEEP", FAR, "KEEP-MAX", 1000, "EVENTS-MAX", 1000))
    assert (conf["keep"], conf["keep_max"]) == (FAR, 1000), conf
    for i, job in enumerate(["done", "done-plain", "held-cancel", "progress"]):
        push(r, RES, job, "ID", job, "PRIORITY", 50 - i)
    got = reserve(r, RES, "COUNT", 4, "LEASE", FAR // 100)
    assert [g[0] for g in got] == ["done", "done-plain", "held-cancel", "progress"], got
    assert ack(r, RES, "done", "ATTEMPT", 1, "RESULT", BINARY_RESULT) == 1          # completed with a result
    assert ack(r, RES, "done-plain") == 1                                          # completed, no result
    assert r.execute_command("ONCE.PROGRESS", RES, "held-cancel", "halfway", "ATTEMPT", 1) == 1
    assert r.execute_command("ONCE.CANCEL", RES, "held-cancel") == 1               # cancelled while reserved
    assert r.execute_command("ONCE.PROGRESS", RES, "progress", "42%", "ATTEMPT", 1) == 1   # progress, reserved
    push(r, RES, "ready-cancel", "ID", "ready-cancel")
    assert r.execute_command("ONCE.CANCEL", RES, "ready-cancel") == 1              # cancelled while ready
    push(r, RES, "dead", "ID", "dead", "RETRIES", 0, "PRIORITY", 60)
    assert reserve(r, RES, "LEASE", FAR // 100)[0][0] == "dead"
    assert r.execute_command("ONCE.NACK", RES, "dead", "ERROR", "boom") == 1      # dead with its error
    push(r, RES, "ttl-pending", "ID", "ttl-pending", "TTL", FAR)                   # TTL pending
    push(r, RES, "ttl-drop-pending", "ID", "ttl-drop-pending", "TTL", FAR, "DROP", "DELAY", FAR)
    push(r, RES, "ttl-expired", "ID", "ttl-expired", "TTL", 1)                     # expired before start
    push(r, RES, "ttl-dropped", "ID", "ttl-dropped", "TTL", 1, "DROP")
    push(r, RES, "keep0", "ID", "keep0", "KEEP", 0, "PRIORITY", 100)               # a job's own KEEP
    push(r, RES, "keep-own", "ID", "keep-own", "KEEP", 12345678, "PRIORITY", 99)
    wait_until(lambda: state(r, RES, "ttl-expired") == "dead" and inspect(r, RES, "ttl-dropped") is None,
               timeout=3, what="TTL 1 jobs to expire")
    # a CALL ... CANCEL whose caller waits (its cancel is an hour away)
    caller = start_raw_blocked(server, r, "ONCE.CALL", RES, "call far", "ID", "call-far", "TIMEOUT", 3600000,
                               "CANCEL")
    s = stats(r, RES)
    assert (s["completed"], s["cancelled"], s["dead"], s["reserved"]) == (2, 2, 2, 1), s
    assert s["expired_unstarted_total"] == 2, s
    ids = ["done", "done-plain", "held-cancel", "progress", "ready-cancel", "dead", "ttl-pending",
           "ttl-drop-pending", "ttl-expired", "ttl-dropped", "keep0", "keep-own", "call-far"]
    return ids, caller


def fill_soon(server, r, ms):
    """Deadlines `ms` from now in queue `soon`: a TTL, a TTL DROP, a KEEP, a CALL ... CANCEL. Returns the CALL."""
    push(r, SOON, "ttl dead", "ID", "ttl-dead", "TTL", ms)
    push(r, SOON, "ttl drop", "ID", "ttl-drop", "TTL", ms, "DROP")
    push(r, SOON, "kept", "ID", "kept", "KEEP", ms, "PRIORITY", 10)
    assert reserve(r, SOON)[0][0] == "kept"
    assert ack(r, SOON, "kept", "RESULT", "soon gone") == 1
    return start_raw_blocked(server, r, "ONCE.CALL", SOON, "call", "ID", "call", "KEEP", FAR, "TIMEOUT", ms,
                             "CANCEL")


def assert_soon_pending(r, where):
    got = (state(r, SOON, "ttl-dead"), state(r, SOON, "ttl-drop"), state(r, SOON, "kept"), state(r, SOON, "call"))
    assert got == ("ready", "ready", "completed", "ready"), \
        f"{where}: the short deadlines already fired (the machine is too slow for this test?): {got}"


def assert_soon_fired(r, where):
    """The short deadlines fire on `r` with no command: TTL → dead / dropped, KEEP → freed, CALL → cancelled."""
    wait_until(lambda: state(r, SOON, "ttl-dead") == "dead" and inspect(r, SOON, "ttl-drop") is None
               and result(r, SOON, "kept") is None and state(r, SOON, "call") == "cancelled", timeout=6,
               interval=0.02, what=f"{where}: the short deadlines to fire")
    assert inspect(r, SOON, "ttl-dead")["last_error"] == "expired before start"
    got = result(r, SOON, "call")
    assert got["error"] == "call timed out", got
    s = stats(r, SOON)
    assert (s["expired_unstarted_total"], s["completed"], s["cancelled"], s["ready"]) == (2, 0, 1, 0), s


def look(r, ids, master=True):
    """What a client sees of both queues: durability_helpers.snapshot plus RESULT of every id, LIST completed and
    cancelled, and (on a master) CONFIGURE's settings."""
    snap = snapshot(r, {RES: ids, SOON: SOON_IDS}, with_server_digest=False, with_order=master)
    for q, q_ids in ((RES, ids), (SOON, SOON_IDS)):
        snap[q]["results"] = {i: result(r, q, i) for i in q_ids}
        snap[q]["kept"] = {st: listed(r, q, st) for st in ("completed", "cancelled")}
        snap[q]["configure"] = as_map(r.execute_command("ONCE.CONFIGURE", q)) if master else None
    return snap


def assert_same(before, after, where):
    if after[RES]["ready_order"] is None:                    # read on a replica: no COPY there, no order
        before = {q: dict(v, ready_order=None) for q, v in before.items()}
    try:
        assert_same_snapshot(before, after)
    except AssertionError as e:
        raise AssertionError(f"{where}: {e}") from e
    for q in (RES, SOON):
        b, a = before[q], after[q]
        for i in b["results"]:
            assert a["results"][i] == b["results"][i], f"{where}: {q}: RESULT {i} differs"
        assert a["kept"] == b["kept"], f"{where}: {q}: LIST completed/cancelled differ"
        assert a["events"] == b["events"], f"{where}: {q}: EVENTS differ"
        if b["configure"] is not None and a["configure"] is not None:
            assert a["configure"] == b["configure"], f"{where}: {q}: CONFIGURE differs"


def check_far_contents(r):
    """The far queue holds what fill_far made (read on any server holding it)."""
    got = result(r, RES, "done")
    assert (got["state"], got["result"], got["attempts"]) == ("completed", BINARY_RESULT, 1), got
    assert result(r, RES, "done-plain")["result"] is None
    got = result(r, RES, "held-cancel")
    assert (got["state"], got["error"], got["progress"]) == ("cancelled", "cancelled", "halfway"), got
    assert result(r, RES, "ready-cancel")["state"] == "cancelled"
    got = result(r, RES, "progress")
    assert (got["state"], got["progress"]) == ("reserved", "42%"), got
    assert inspect(r, RES, "progress")["progress"] == "42%"
    assert result(r, RES, "dead")["error"] == "boom"
    assert result(r, RES, "ttl-expired")["error"] == "expired before start"
    assert result(r, RES, "ttl-dropped") is None
    assert sorted(j["id"] for j in listed(r, RES, "completed")) == ["done", "done-plain"]
    assert sorted(j["id"] for j in listed(r, RES, "cancelled")) == ["held-cancel", "ready-cancel"]


def check_far_behaviour(r):
    """On a master holding the far queue: the kept ids still dedup, a job's own KEEP 0 still wins over the
    queue's KEEP, a job's own KEEP is still its own."""
    pushed = stats(r, RES)["pushed_total"]
    assert push(r, RES, "again", "ID", "done") == "done" and stats(r, RES)["pushed_total"] == pushed
    got = reserve(r, RES, "COUNT", 2, "LEASE", 60000)
    assert [g[0] for g in got] == ["keep0", "keep-own"], got
    assert ack(r, RES, "keep0", "RESULT", "x") == 1 and ack(r, RES, "keep-own", "RESULT", "y") == 1
    assert result(r, RES, "keep0") is None, "a job's own KEEP 0 was lost"
    kept = result(r, RES, "keep-own")
    assert kept["state"] == "completed" and kept["result"] == "y", kept


# ---- one server: DEBUG RELOAD, AOF replay, AOF rewrite + restart -------------------------------------------------

def test_reload_aof_replay_and_rewrite_keep_every_new_state(make_server):
    s = make_server(extra=AOF_NO_PREAMBLE)
    r = s.client(decode_responses=True, protocol=2)
    ids, far_caller = fill_far(s, r)
    soon_caller = fill_soon(s, r, 2000)
    check_far_contents(r)
    before = look(r, ids)
    before_digest = digest(r)

    assert r.execute_command("DEBUG", "RELOAD") in ("OK", True)
    assert_soon_pending(r, "after DEBUG RELOAD")
    assert_same(before, look(r, ids), "after DEBUG RELOAD")
    assert digest(r) == before_digest, "after DEBUG RELOAD: DEBUG DIGEST differs"
    assert far_caller.running() and soon_caller.running(), "DEBUG RELOAD ended a blocked CALL"

    fast_restart(s)                                          # the AOF as written, command by command
    r = s.client(decode_responses=True, protocol=2)
    assert_soon_pending(r, "after an AOF replay")
    assert_same(before, look(r, ids), "after an AOF replay")
    assert digest(r) == before_digest, "after an AOF replay: DEBUG DIGEST differs"

    r.execute_command("BGREWRITEAOF")
    wait_rewrite_done(r)
    fast_restart(s)                                          # the rewritten AOF
    r = s.client(decode_responses=True, protocol=2)
    assert_soon_pending(r, "after an AOF rewrite + restart")
    assert_same(before, look(r, ids), "after an AOF rewrite + restart")
    assert digest(r) == before_digest, "after an AOF rewrite + restart: DEBUG DIGEST differs"

    check_far_contents(r)
    assert_soon_fired(r, "after an AOF rewrite + restart")   # the CALL's caller is gone; its cancel is not
    check_far_behaviour(r)
    for caller in (far_caller, soon_caller):                # their connections went with the first restart
        assert caller.join(5)[0] == "oserror", caller.reply
    assert not module_trouble(s), s.log_tail()


# ---- a replica's own AOF ---------------------------------------------------------------------------------------

def test_replica_own_aof_rebuilds_every_new_state(make_server):
    """The replica writes what it applies into its own AOF: restarted from that alone, it holds the master's
    queues (DEBUG DIGEST-VALUE of each key equal), and as a master its timer fires the deadlines it carries."""
    master, replica = start_pair(make_server)
    m = master.client(decode_responses=True, protocol=2)
    rc = replica.client(decode_responses=True, protocol=2)
    ids, far_caller = fill_far(master, m)
    fill_soon(master, m, 2000)
    before = look(m, ids)
    wait_in_sync(m, rc, stable_reads=1)
    wait_rewrite_done(rc)                                   # the AOF rewrite a replica starts after its first sync
    assert_soon_pending(rc, "on the replica")
    assert_same(before, look(rc, ids, master=False), "the replica's memory")
    check_far_contents(rc)
    rc.close()

    # as the replica of nobody: loads its own AOF, never syncs, its timer idle
    rc = restart_from_own_aof(replica, as_replica_of_nobody=True)
    assert_soon_pending(rc, "the replica restarted from its own AOF")
    for q in (RES, SOON):
        assert digest_value(rc, q) == before[q]["digest_value"], f"{q}: DEBUG DIGEST-VALUE differs from the master's"
    assert_same(before, look(rc, ids, master=False), "the replica restarted from its own AOF")
    rc.close()

    # as a master, from its own AOF again: the same, then its own timer fires the short deadlines
    rc = restart_from_own_aof(replica)
    assert_soon_pending(rc, "the replica restarted as a master")
    for q in (RES, SOON):
        assert digest_value(rc, q) == before[q]["digest_value"], f"{q}: DEBUG DIGEST-VALUE differs from the master's"
    assert_same(before, look(rc, ids), "the replica restarted as a master")
    check_far_contents(rc)
    assert_soon_fired(rc, "on the replica restarted as a master")
    check_far_behaviour(rc)
    assert far_caller.running(), "the master's CALL ended early"
    assert not module_trouble(replica) and not module_trouble(master), replica.log_tail() + master.log_tail()


# ---- failover --------------------------------------------------------------------------------------------------

def test_failover_keeps_every_new_state_and_unblocks_waiters(make_server):
    master = make_server()
    replica = make_server(extra=["--replicaof", "127.0.0.1", master.port])
    m = master.client(decode_responses=True, protocol=2)
    rc = replica.client(decode_responses=True, protocol=2)
    wait_until(lambda: rc.info("replication").get("master_link_status") == "up", timeout=20, interval=0.02,
               what="replica link up")
    ids, _ = fill_far(master, m)
    soon_caller = fill_soon(master, m, 2000)

    # RESULT is readonly: it answers on the replica, and a RESULT BLOCK there is woken by the replicated ACK
    push(m, "wake", "on replica", "ID", "wake", "KEEP", FAR)
    assert reserve(m, "wake", "LEASE", FAR // 100)[0][0] == "wake"
    wait_in_sync(m, rc, stable_reads=1)
    assert result(rc, "wake", "wake")["state"] == "reserved"
    w_rep = start_blocked(replica, rc, "ONCE.RESULT", "wake", "wake", "BLOCK", 5000)
    assert ack(m, "wake", "wake", "RESULT", "seen on the replica") == 1
    got = as_map(w_rep.join())
    assert got["state"] == "completed" and got["result"] == "seen on the replica", got
    assert w_rep.elapsed < 2, "the replica's waiter was not woken by the replicated ACK"

    before = look(m, ids)
    wait_in_sync(m, rc, stable_reads=1)
    assert digest(rc) == digest(m), "the replica's memory differs from the master's"
    assert_soon_pending(rc, "on the replica")

    # waiters on the master: a RESULT BLOCK on an unfinished job, and the soon CALL already waiting
    base = m.info("clients")["blocked_clients"]
    w_master = RawWaiter(master, "ONCE.RESULT", RES, "ttl-pending", "BLOCK", 0)
    wait_until(lambda: m.info("clients")["blocked_clients"] > base, timeout=3, what="the RESULT waiter to block")

    # failover: the replica takes over, the old master follows it
    rc.execute_command("REPLICAOF", "NO", "ONE")
    wait_until(lambda: rc.info("replication")["role"] == "master", timeout=5, what="promotion")
    assert_soon_pending(rc, "on the promoted replica")
    promoted = look(rc, ids)
    assert_same(before, promoted, "the promoted replica")
    t0 = time.monotonic()
    m.execute_command("REPLICAOF", "127.0.0.1", replica.port)
    reply = w_master.join(5)
    assert w_master.done_at - t0 < 2, f"the RESULT waiter got its reply {w_master.done_at - t0:.1f}s late"
    assert reply[0] == "error" and reply[1].startswith("UNBLOCKED"), \
        f"a RESULT BLOCK waiter on a master turned replica got {reply!r}"
    reply = soon_caller.join(5)
    assert reply[0] == "error" and reply[1].startswith("UNBLOCKED"), \
        f"a CALL waiter on a master turned replica got {reply!r}"

    # the new master's timer fires the short deadlines (the CALL's cancel included), and the old master follows
    assert_soon_fired(rc, "on the promoted replica")
    check_far_contents(rc)
    check_far_behaviour(rc)
    wait_until(lambda: m.info("replication").get("master_link_status") == "up", timeout=20, interval=0.02,
               what="the old master following")
    wait_in_sync(rc, m)
    assert digest(m) == digest(rc), "the old master differs from the new one"
    for q in (RES, SOON):
        assert digest_value(m, q) == digest_value(rc, q), q
    assert result(m, SOON, "call")["error"] == "call timed out"
    assert not module_trouble(master) and not module_trouble(replica), master.log_tail() + replica.log_tail()


# ---- DUMP / RESTORE: what MIGRATE and a cluster's slot move carry ------------------------------------------------

def test_dump_restore_carries_every_new_state_to_another_server(make_server):
    """MIGRATE (redis-cli --cluster reshard) moves a key as its DUMP payload: restored on another server, the queue
    holds every new state (digest equal), and its deadlines fire on the server that now holds it."""
    src = make_server()
    dst = make_server()
    r = src.client(decode_responses=True, protocol=2)
    rd = dst.client(decode_responses=True, protocol=2)
    fill_far(src, r)
    fill_soon(src, r, 2000)
    check_far_contents(r)
    for q in (RES, SOON):
        r.execute_command("MIGRATE", "127.0.0.1", dst.port, q, 0, 5000, "COPY")
        assert digest_value(rd, q) == digest_value(r, q), f"{q}: the restored queue differs"
    check_far_contents(rd)
    assert_soon_pending(rd, "after MIGRATE")
    assert_soon_fired(rd, "after MIGRATE")
    check_far_behaviour(rd)
