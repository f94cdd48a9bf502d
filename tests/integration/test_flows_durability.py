"""Flows (issue 24) across persistence and replication: a flow stopped mid-way — jobs waiting (on pending, dead and
waiting dependencies, with each ON-FAIL), a batch half done whose callback waits, results of completed
dependencies pinned for their dependents (KEEP 0), and a release backlog (an ACK that 10,000 jobs wait on, frozen
after the ACK released its first ones) — must come back the same (DEBUG DIGEST, DIGEST-VALUE, STATS, INSPECT,
DEPS, EVENTS) after DEBUG RELOAD, an AOF rewrite + restart, from a replica's own AOF alone, and on a promoted
replica; and the flow must then finish as it would have: the backlog released (each job once), the waiting jobs
released or dead by their ON-FAIL, the callback after the batch's last job, reading every result.

The mid-way state is frozen with `CLIENT PAUSE 60000 WRITE` in the same MULTI as the ACK (it holds the module's
timer too), so the comparison sees the backlog mid-way. Each test starts its own servers of the parametrized kind.
"""
import harness
from durability_helpers import (
    assert_same_snapshot,
    digest,
    fast_restart,
    module_trouble,
    shutdown,
    snapshot,
    wait_in_sync,
    wait_rewrite_done,
)
from helpers import as_map, inspect, push, reserve, state, stats, wait_until
from test_flows import (
    N,
    after,
    all_deps,
    bulk_ids,
    complete,
    dep_counts,
    deps,
    events,
    push_waiting,
    result,
    take,
)
from test_replica_aof import restart_from_own_aof, start_pair

TAG = "{flow}"
A, B, BATCH, BIG = f"{TAG}:a", f"{TAG}:b", f"{TAG}:batch", f"{TAG}:big"
PARTS = 100
LONG_LEASE = 604800000  # the longest lease: nothing expires during a test
AOF_NO_PREAMBLE = ["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "no"]


def build(server, r):
    """The flow, stopped mid-way but for the backlog (see freeze_backlog). Returns {queue: ids to compare}."""
    for q in (A, B, BATCH, BIG):
        r.execute_command("ONCE.CONFIGURE", q, "EVENTS-MAX", 3 * N)
    push(r, A, "x1", "ID", "x1")                                            # pending
    push(r, A, "x2", "ID", "x2", "RETRIES", 0, "PRIORITY", 9)
    take(r, A, "x2")
    assert r.execute_command("ONCE.NACK", A, "x2", "ERROR", "x2 broke") == 1   # dead
    push(r, A, "x3", "ID", "x3", "PRIORITY", 9)
    complete(r, A, "x3", "RESULT", "x3-result")                             # completed, not pinned yet: freed
    push(r, A, "x4", "ID", "x4", "PRIORITY", 9)
    push(r, B, "w1", "ID", "w1", *after(A, "x1"))
    push(r, B, "w2", "ID", "w2", *after(A, "x1", "x2"), "ON-FAIL", "ignore")  # x2 dropped at once
    push(r, B, "w3", "ID", "w3", *after(A, "x1"), *after(B, "w1"), "ON-FAIL", "continue")
    push(r, B, "w4", "ID", "w4", *after(A, "x4", "x1"))
    complete(r, A, "x4", "RESULT", "x4-result")                             # pinned by w4
    push(r, B, "w5", "ID", "w5", *after(A, "x1"), "ON-FAIL", "fail", "DELAY", 10 ** 10)
    # a batch, half done, each part's result pinned for the callback
    parts = bulk_ids(r, BATCH, PARTS)
    push(r, B, "cb", "ID", "cb", "KEEP", 10 ** 10, "PRIORITY", 10, *after(BATCH, *parts))
    got = reserve(r, BATCH, "COUNT", PARTS // 2, "LEASE", LONG_LEASE)
    for job_id, _, attempt in got:
        assert r.execute_command("ONCE.ACK", BATCH, job_id, "ATTEMPT", attempt, "RESULT", f"r-{job_id}") == 1
    # the backlog's jobs: N wait on y, held by a worker
    push(r, BIG, "y", "ID", "y")
    waiting = push_waiting(server.port, BIG, BIG, "y", N, "v")
    take(r, BIG, "y", "LEASE", LONG_LEASE)
    s = stats(r, B)
    assert (s["waiting"], s["ready"]) == (6, 0), s
    assert dep_counts(r, B, "w2")["deps_left"] == 1
    assert result(r, A, "x4")["result"] == "x4-result" and result(r, A, "x3") is None
    return {A: ["x1", "x2", "x3", "x4"], B: ["w1", "w2", "w3", "w4", "w5", "cb"], BATCH: parts,
            BIG: ["y"] + waiting[:20] + waiting[-20:]}


def freeze_backlog(r):
    """ACKs y and pauses the server's writes (and timer) in one transaction: the ACK released its first few and
    the rest wait for timer steps that do not come until CLIENT UNPAUSE."""
    p = r.pipeline(transaction=True)
    p.execute_command("ONCE.ACK", BIG, "y")
    p.execute_command("CLIENT", "PAUSE", 60000, "WRITE")
    assert p.execute() == [1, "OK"]
    s = stats(r, BIG)
    assert 0 < s["ready"] <= 1000 and s["waiting"] == N - s["ready"], s


def look(r, ids, server_digest=True):
    """What a client sees of the flow: durability_helpers.snapshot, plus DEPS and the counts of every job of queue
    b, and every queue's event log."""
    snap = snapshot(r, ids, with_server_digest=server_digest, with_order=False)
    snap["__flow__"] = {
        "deps": {j: deps(r, B, j) for j in ids[B]},
        "counts": {j: dep_counts(r, B, j) for j in ids[B]},
        "events": {q: events(r, q) for q in ids},
        "results": {j: result(r, A, j) for j in ids[A]},
    }
    return snap


def assert_same(before, after, where):
    b_flow, a_flow = before.pop("__flow__"), after.pop("__flow__")
    try:
        assert_same_snapshot(before, after)
        for part in ("deps", "counts", "results"):
            assert a_flow[part] == b_flow[part], f"{part} differ"
        for q in b_flow["events"]:
            assert a_flow["events"][q] == b_flow["events"][q], f"EVENTS of {q} differ"
    except AssertionError as e:
        raise AssertionError(f"{where}: {e}") from e
    finally:
        before["__flow__"], after["__flow__"] = b_flow, a_flow


def finish(r, ids):
    """Runs the rest of the flow on `r` (a master, unpaused) and checks that it ends as it should."""
    # the backlog: every one of the N released once, in timer steps
    wait_until(lambda: stats(r, BIG)["waiting"] == 0, timeout=10, interval=0.01, what="the backlog released")
    released = [e[2] for e in events(r, BIG) if e[1] == "release"]
    assert len(released) == N == len(set(released)), (len(released), len(set(released)))
    assert stats(r, BIG)["ready"] == N
    # x1 completes: w1, w2 (x2 ignored), w4 (x4 pinned), w5 (delayed) are released; w3 still waits on w1
    complete(r, A, "x1", "RESULT", "x1-result")
    assert [state(r, B, j) for j in ("w1", "w2", "w3", "w4", "w5")] == [
        "ready", "ready", "waiting", "ready", "delayed"]
    got = reserve(r, B, "COUNT", 10, "LEASE", 60000)
    assert sorted(g[0] for g in got) == ["w1", "w2", "w4"], got
    w4 = {d["id"]: d for d in deps(r, B, "w4")}
    assert (w4["x4"]["outcome"], w4["x4"]["result"]) == ("completed", "x4-result"), w4
    assert (w4["x1"]["outcome"], w4["x1"]["result"]) == ("completed", "x1-result"), w4
    assert r.execute_command("ONCE.NACK", B, "w1", "ERROR", "w1 broke", "DEAD") == 1
    assert state(r, B, "w3") == "ready"                                   # ON-FAIL continue
    # the batch's other half; the callback waits until the last one
    parts = ids[BATCH]
    rest = reserve(r, BATCH, "COUNT", PARTS, "LEASE", 60000)
    assert len(rest) == PARTS // 2, rest
    for job_id, _, _ in rest[:-1]:
        assert r.execute_command("ONCE.ACK", BATCH, job_id, "RESULT", f"r-{job_id}") == 1
    assert dep_counts(r, B, "cb")["deps_left"] == 1
    assert r.execute_command("ONCE.ACK", BATCH, rest[-1][0], "RESULT", f"r-{rest[-1][0]}") == 1
    take(r, B, "cb")
    got = all_deps(r, B, "cb")
    assert [d["id"] for d in got] == parts
    assert [(d["outcome"], d["result"]) for d in got] == [("completed", f"r-{p}") for p in parts]
    assert r.execute_command("ONCE.ACK", B, "cb", "RESULT", "all done") == 1
    assert r.execute_command("ONCE.ACK", B, "w2", "w4") == 2
    assert result(r, B, "cb")["result"] == "all done"
    s = stats(r, B)
    assert (s["waiting"], s["ready"], s["delayed"], s["dead"]) == (0, 1, 1, 1), s   # w3; w5; w1
    s = stats(r, BATCH)
    assert (s["acked_total"], s["ready"], s["reserved"]) == (PARTS, 0, 0), s
    # nothing pinned is left once every dependent has started
    wait_until(lambda: result(r, A, "x4") is None and result(r, BATCH, parts[0]) is None,
               what="the pinned results freed")


def test_debug_reload_mid_flow(make_server):
    s = make_server()
    r = s.client(decode_responses=True, protocol=2)
    ids = build(s, r)
    freeze_backlog(r)
    try:
        before = look(r, ids)
        assert r.execute_command("DEBUG", "RELOAD") == "OK"
        assert_same(before, look(r, ids), "after DEBUG RELOAD")
    finally:
        r.execute_command("CLIENT", "UNPAUSE")
    finish(r, ids)
    assert not module_trouble(s), s.log_tail()


def restart_idle(s):
    """SHUTDOWN (the AOF is flushed), then a start from the AOF as the replica of a port nothing listens on: it
    loads its files and its timer stays idle, so nothing moves before the comparison."""
    shutdown(s)
    s.extra = AOF_NO_PREAMBLE + ["--replicaof", "127.0.0.1", harness.free_port()]
    s.start()
    return s.client(decode_responses=True, protocol=2)


def test_aof_replay_and_rewrite_mid_flow(make_server):
    """The AOF's commands (a first backlog released in timer steps included) replayed at a restart; then the same
    state rewritten (no RDB preamble: the module's own rewrite commands) and loaded again; then the flow ends."""
    s = make_server(extra=AOF_NO_PREAMBLE)
    r = s.client(decode_responses=True, protocol=2)
    first = f"{TAG}:first"
    push(r, first, "y0", "ID", "y0")
    push_waiting(s.port, first, first, "y0", 2500, "u")
    complete(r, first, "y0")
    wait_until(lambda: stats(r, first)["waiting"] == 0, timeout=10, what="the first backlog released")
    ids = build(s, r)
    freeze_backlog(r)
    before = look(r, ids)
    r = restart_idle(s)
    assert_same(before, look(r, ids), "after an AOF replay")
    r.execute_command("BGREWRITEAOF")
    wait_rewrite_done(r)
    r = restart_idle(s)
    assert_same(before, look(r, ids), "after an AOF rewrite and restart")
    r.execute_command("REPLICAOF", "NO", "ONE")
    finish(r, ids)
    assert not module_trouble(s), s.log_tail()


def frozen_pair(make_server):
    """A master and its replica (with its own AOF) holding the flow mid-way, the master paused; returns them and the
    master's look."""
    master, replica = start_pair(make_server)
    m = master.client(decode_responses=True, protocol=2)
    ids = build(master, m)
    freeze_backlog(m)
    rc = replica.client(decode_responses=True, protocol=2)
    wait_in_sync(m, rc)
    before = look(m, ids)
    assert digest(rc) == before["__digest__"], "the replica's memory differs from the master's"
    assert_same(before, look(rc, ids), "on the replica")
    return master, replica, ids, before


def test_a_replicas_own_aof_holds_the_flow(make_server):
    master, replica, ids, before = frozen_pair(make_server)
    r = restart_from_own_aof(replica, as_replica_of_nobody=True)
    assert_same(before, look(r, ids), "the replica restarted from its own AOF")
    master.stop(kill=True)
    r = restart_from_own_aof(replica)       # as a master now: its timer takes the backlog on
    finish(r, ids)
    assert not module_trouble(replica), replica.log_tail()


def test_a_promoted_replica_finishes_the_flow(make_server):
    master, replica, ids, _ = frozen_pair(make_server)      # the replica held the master's flow (compared there)
    master.stop(kill=True)
    r = replica.client(decode_responses=True, protocol=2)
    r.execute_command("REPLICAOF", "NO", "ONE")
    wait_until(lambda: r.info("replication")["role"] == "master", timeout=5, what="promotion")
    finish(r, ids)
    # and what the promoted replica did is in its own AOF too
    fast_restart(replica)
    r = replica.client(decode_responses=True, protocol=2)
    assert result(r, B, "cb")["result"] == "all done"
    assert stats(r, BIG)["ready"] == N and stats(r, B)["waiting"] == 0
    assert as_map(r.execute_command("ONCE.STATS", BATCH))["acked_total"] == PARTS
    assert inspect(r, B, "w5")["state"] == "delayed"
    assert not module_trouble(replica), replica.log_tail()

