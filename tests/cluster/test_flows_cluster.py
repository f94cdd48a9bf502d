"""Flows (issue 24) on a real cluster: an AFTER that names a queue of another slot is refused with CROSSSLOT (on the
same master or another), and a flow across two queues of one hash tag survives its slot's move to another master
(MIGRATE, as test_2_reshard.py; on Valkey then CLUSTER MIGRATESLOTS to a third, as test_4_atomic_migration.py) with
equal digests, equal DEPS and counts, and then completes there: each waiting job released once, the callback after
the batch's last job, reading every part's result across the move."""
import pytest
from cluster_harness import key_slot, wait_until
from cluster_helpers import (
    RawClient,
    as_map,
    cluster_client,
    digest_value,
    note,
    slot_migrations,
    stats,
)

PARTS = 50


def after(dep_queue, *ids):
    return ["AFTER", dep_queue, len(ids), *ids]


def deps(client, queue, job_id, *opts):
    reply = client.execute_command("ONCE.DEPS", queue, job_id, *opts)
    return None if reply is None else [as_map(d) for d in reply]


def counts(client, queue, job_id):
    j = as_map(client.execute_command("ONCE.INSPECT", queue, job_id))
    return None if j is None else {k: j.get(k) for k in ("state", "deps_total", "deps_done", "deps_failed",
                                                          "deps_left", "dependents")}


def other_master(cluster, *not_these):
    return next(m for m in sorted(cluster.masters(), key=lambda m: m.port) if m not in not_these)


def tag_on(cluster, prefix, node, not_slot=None):
    """A hash tag `{prefix-i}` whose slot `node` owns (and is not `not_slot`)."""
    for i in range(10000):
        t = f"{{{prefix}-{i}}}"
        s = key_slot(t)
        if s != not_slot and cluster.slot_owner(s) is node:
            return t
    raise AssertionError("no tag found")


def test_crossslot_from_a_cluster(healthy, prefix):
    cl = healthy
    node = cl.masters()[0]
    ta = tag_on(cl, prefix, node)
    tb = tag_on(cl, prefix, node, not_slot=key_slot(ta))        # another slot of the same master
    tc = tag_on(cl, prefix, other_master(cl, node))              # a slot of another master
    qa, qb, qc = f"{ta}:q", f"{tb}:q", f"{tc}:q"
    rc = cluster_client(cl)
    raw = RawClient(node.port)
    try:
        rc.execute_command("ONCE.PUSH", qa, "w0", "ID", "w0")
        rc.execute_command("ONCE.PUSH", qa, "w", "ID", "w", *after(qa, "w0"))
        rc.execute_command("ONCE.PUSH", qb, "dep", "ID", "dep")
        rc.execute_command("ONCE.PUSH", qc, "dep", "ID", "dep")
        before = stats(rc, qa)
        for dep_q in (qb, qc):
            err = raw.error("ONCE.PUSH", qa, "x", *after(dep_q, "dep"))
            assert err.startswith("CROSSSLOT"), (dep_q, err)
            err = raw.error("ONCE.PUSH", qa, "x", *after(qa, "w0"), *after(dep_q, "dep"))
            assert err.startswith("CROSSSLOT"), (dep_q, err)
            err = raw.error("ONCE.AFTER", qa, "w", dep_q, 1, "dep")
            assert err.startswith("CROSSSLOT"), (dep_q, err)
        assert stats(rc, qa) == before
        assert counts(rc, qa, "w")["deps_total"] == 1
        # the same tag is one slot: accepted
        rc.execute_command("ONCE.PUSH", f"{ta}:other", "x", "ID", "x", *after(qa, "w0"))
        assert counts(rc, f"{ta}:other", "x")["state"] == "waiting"
    finally:
        raw.close()
        for q in (qa, qb, qc, f"{ta}:other"):
            rc.delete(q)
        rc.close()


def view(client, a, b, parts):
    """What a client sees of the flow on one node."""
    return {
        "digests": [digest_value(client, k) for k in (a, b)],
        "stats": [stats(client, q) for q in (a, b)],
        "counts": {j: counts(client, b, j) for j in ("cb", "w1", "w2")} | {"x": counts(client, a, "x")},
        "deps": {j: deps(client, b, j) for j in ("cb", "w1", "w2")},
        "results": [as_map(client.execute_command("ONCE.RESULT", a, p)) for p in parts],
    }


def two_queues_and_two_masters(cl, prefix):
    """Two queues of one tag, their slot, the master that owns it and another master."""
    tag = f"{{{prefix}}}"
    a, b = f"{tag}:a", f"{tag}:b"
    src = cl.owner(a)
    return a, b, key_slot(a), src, other_master(cl, src)


def test_a_flow_survives_a_slot_migration(healthy, prefix):
    cl = healthy
    a, b, slot, src, dst = two_queues_and_two_masters(cl, prefix)
    rc = cluster_client(cl, socket_timeout=30)
    try:
        parts = rc.execute_command("ONCE.BULK", a, "PAYLOADS", *[f"part {i}" for i in range(PARTS)])
        rc.execute_command("ONCE.PUSH", b, "callback", "ID", "cb", "KEEP", 600000, *after(a, *parts))
        rc.execute_command("ONCE.PUSH", a, "x", "ID", "x", "PRIORITY", -1)
        rc.execute_command("ONCE.PUSH", b, "w1", "ID", "w1", *after(a, "x"))
        rc.execute_command("ONCE.PUSH", b, "w2", "ID", "w2", *after(b, "w1"), "ON-FAIL", "continue")
        half = rc.execute_command("ONCE.RESERVE", a, "COUNT", PARTS // 2, "LEASE", 600000)
        assert [j[0] for j in half] == parts[:PARTS // 2]
        for job_id, _, _ in half:       # results pinned for the callback (KEEP 0)
            assert rc.execute_command("ONCE.ACK", a, job_id, "RESULT", f"r-{job_id}") == 1
        sc = cl.client(src)
        before = view(sc, a, b, parts)
        assert before["counts"]["cb"]["deps_left"] == PARTS // 2 and before["stats"][1]["waiting"] == 3
        assert all(r is not None for r in before["results"][:PARTS // 2])

        assert cl.migrate_slot(slot, src, dst) == 2
        dc = cl.client(dst)
        assert view(dc, a, b, parts) == before, "the flow differs after MIGRATE"
        assert sc.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        cl.wait_replicated(dst)
        for rep in cl.replicas_of(dst):
            assert [digest_value(cl.client(rep), k) for k in (a, b)] == before["digests"]
        here = dst
        if cl.kind == "valkey":         # then Valkey 9's atomic slot migration on to the third master
            third = other_master(cl, src, dst)
            assert cl.migrate_slots(slot, dst, third) == "OK"

            def moved():
                jobs = slot_migrations(dc)
                return jobs and jobs[0]["state"] == "success" and cl.slot_owner(slot, third) is third
            wait_until(moved, 20, "the atomic migration")
            here = third
            assert view(cl.client(third), a, b, parts) == before, "the flow differs after MIGRATESLOTS"

        # the flow completes on its new master, through RedisCluster
        hc = cl.client(here)
        rest = rc.execute_command("ONCE.RESERVE", a, "COUNT", PARTS, "LEASE", 600000)
        assert [j[0] for j in rest] == parts[PARTS // 2:] + ["x"]
        assert rc.execute_command("ONCE.ACK", a, "x") == 1
        assert counts(hc, b, "w1")["state"] == "ready"
        assert rc.execute_command("ONCE.RESERVE", b)[0][0] == "w1"
        assert rc.execute_command("ONCE.NACK", b, "w1", "DEAD") == 1
        assert counts(hc, b, "w2")["state"] == "ready"           # ON-FAIL continue
        for job_id, _, _ in rest[:-2]:
            assert rc.execute_command("ONCE.ACK", a, job_id, "RESULT", f"r-{job_id}") == 1
        assert counts(hc, b, "cb")["state"] == "waiting"
        assert rc.execute_command("ONCE.ACK", a, rest[-2][0], "RESULT", f"r-{rest[-2][0]}") == 1
        got = rc.execute_command("ONCE.RESERVE", b, "COUNT", 10)
        assert sorted(j[0] for j in got) == ["cb", "w2"], got
        cb = deps(hc, b, "cb", "COUNT", PARTS)
        assert [(d["id"], d["outcome"], d["result"]) for d in cb] == [(p, "completed", f"r-{p}") for p in parts]
        assert rc.execute_command("ONCE.ACK", b, "cb", "w2") == 2
        s = stats(hc, b)
        assert (s["waiting"], s["ready"], s["reserved"], s["acked_total"]) == (0, 0, 0, 2), s
        assert stats(hc, a)["acked_total"] == PARTS + 1
        note(f"[{cl.kind}] a flow ({PARTS}-part batch half done, a chain) moved with its slot "
             f"({'MIGRATE, then MIGRATESLOTS' if cl.kind == 'valkey' else 'MIGRATE'}), digests equal, completed")
    finally:
        rc.delete(a, b)
        rc.close()


def start_move(cl, slot, src, dst):
    cl.client(dst).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", cl.node_id(src))
    cl.client(src).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", cl.node_id(dst))


def move_key(cl, key, src, dst):
    assert cl.client(src).execute_command("MIGRATE", "127.0.0.1", dst.port, key, 0, 5000) == "OK"


def asking(client, *command):
    """A command on a node that is importing the key's slot: ASKING first, on the same connection."""
    p = client.pipeline(transaction=False)
    p.execute_command("ASKING")
    p.execute_command(*command)
    return p.execute()[1]


def held(client):
    """INFO once's count of flow notices and pins held for a missing queue on that node."""
    return int(client.info("once")["once_flow_entries_held"])


def pinned_by(inspect_reply):
    """How many unended jobs keep this job's outcome (0 once it is freed)."""
    return int((as_map(inspect_reply) or {}).get("pinned_by", 0))


def heal_slot(cl, slot, nodes):
    """After a test failed half way through a move: the slot's keys back on the node the other masters name, and
    the slot stable everywhere."""
    owner = cl.slot_owner(slot, other_master(cl, *nodes))
    for n in nodes:
        if n is not owner:
            for k in cl.client(n).execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000):
                move_key(cl, k, n, owner)
    cl.set_slot_node(slot, owner)


def test_a_flow_split_by_a_key_by_key_migration_is_told_once_its_queues_meet_again(healthy, prefix):
    """`redis-cli --cluster reshard` moves a slot key by key, so for a while a flow's queues are on two nodes. An ACK
    there finds the waiting job's queue missing: the notice is held in the acked job's queue (and moves with it), not
    dropped, and the waiting job is told once both queues are on one node. Both orders: the waiting queue moved
    first (ACKs on the source), then back with the dependencies' queue moved first (ACKs on the importing node).
    Then the pins the callback holds on its parts, when it ends with their queue away, are held the same way."""
    cl = healthy
    a, b, slot, src, dst = two_queues_and_two_masters(cl, prefix)
    n = 10
    rc = cluster_client(cl, socket_timeout=30)
    raw = RawClient(src.port)
    done = False
    try:
        parts = rc.execute_command("ONCE.BULK", a, "PAYLOADS", *[f"part {i}" for i in range(2 * n)])
        rc.execute_command("ONCE.PUSH", b, "callback", "ID", "cb", *after(a, *parts))
        sc, dc = cl.client(src), cl.client(dst)

        # 1. The waiting queue goes first; half the parts are acked on the source, where it is missing now.
        start_move(cl, slot, src, dst)
        move_key(cl, b, src, dst)
        for job_id, _, _ in sc.execute_command("ONCE.RESERVE", a, "COUNT", n):
            assert sc.execute_command("ONCE.ACK", a, job_id, "RESULT", f"r-{job_id}") == 1
        assert as_map(asking(dc, "ONCE.INSPECT", b, "cb"))["deps_done"] == 0, "told before its queue was here"
        assert held(sc) == n
        cl.wait_replicated(src)
        assert [held(cl.client(r)) for r in cl.replicas_of(src)] == [n], "a replica holds what its master holds"
        move_key(cl, a, src, dst)
        assert held(sc) == 0
        cl.set_slot_node(slot, dst)
        wait_until(lambda: counts(dc, b, "cb")["deps_done"] == n, 10, "the held notices told on the new node")
        assert held(dc) == 0

        # 2. Back again, the dependencies' queue first: the other half is acked on the importing node (ASKING).
        start_move(cl, slot, dst, src)
        move_key(cl, a, dst, src)
        raw.call("ASKING")
        rest = raw.call("ONCE.RESERVE", a, "COUNT", n)
        for job in rest:
            job_id = job[0].decode() if isinstance(job[0], bytes) else job[0]
            raw.call("ASKING")
            assert raw.call("ONCE.ACK", a, job_id, "RESULT", f"r-{job_id}") == 1
        assert counts(dc, b, "cb")["state"] == "waiting" and counts(dc, b, "cb")["deps_done"] == n
        move_key(cl, b, dst, src)
        cl.set_slot_node(slot, src)
        wait_until(lambda: counts(sc, b, "cb")["state"] == "ready", 10, "the callback released on the old node")

        got = rc.execute_command("ONCE.RESERVE", b)
        assert got[0][0] == "cb", got
        cb = deps(sc, b, "cb", "COUNT", 2 * n)
        assert [(d["id"], d["outcome"], d["result"]) for d in cb] == [(p, "completed", f"r-{p}") for p in parts]
        # 3. The dependencies' queue goes again and the callback ends meanwhile: its pins on the parts (which keep
        #    their results for it) are held until the queues meet on the other node, then handed back there.
        start_move(cl, slot, src, dst)
        move_key(cl, a, src, dst)
        assert sc.execute_command("ONCE.ACK", b, "cb") == 1
        assert [pinned_by(asking(dc, "ONCE.INSPECT", a, p)) for p in parts] == [1] * len(parts)
        move_key(cl, b, src, dst)
        cl.set_slot_node(slot, dst)
        wait_until(lambda: all(pinned_by(dc.execute_command("ONCE.INSPECT", a, p)) == 0 for p in parts), 10,
                   "the held pins handed back on the new node")
        assert held(dc) == 0 and held(sc) == 0
        s = stats(dc, b)
        assert (s["waiting"], s["ready"], s["reserved"], s["acked_total"]) == (0, 0, 0, 1), s
        cl.wait_replicated(dst)
        for rep in cl.replicas_of(dst):
            assert [digest_value(cl.client(rep), k) for k in (a, b)] == [digest_value(dc, k) for k in (a, b)]
        note(f"[{cl.kind}] a flow split by a key-by-key migration (three moves): held notices told and held pins "
             f"handed back once its queues met again, callback released once, replicas' digests equal")
        done = True
    finally:
        raw.close()
        if not done:
            heal_slot(cl, slot, (src, dst))
        rc.delete(a, b)
        rc.close()


@pytest.fixture(autouse=True)
def _no_module_trouble(healthy):
    yield
    for n in healthy.alive_nodes():
        assert "panic" not in n.log_tail(200).lower(), n.log_tail()


def test_the_python_client_routes_after_by_its_first_key(healthy, prefix):
    """AFTER makes ONCE.PUSH `movablekeys`, and redis-py's RedisCluster would then send COMMAND GETKEYS before every
    push (a round trip each); Once's client routes PUSH, CALL, AFTER and RESERVE by their first key instead (their
    keys share its slot), so a flow pushed through RedisCluster costs no GETKEYS — and still lands on the right node."""
    import redis
    from once import Once
    cl = healthy
    node = other_master(cl, cl.masters()[0])
    tag = tag_on(cl, prefix, node)
    rc = cluster_client(cl)
    raw = RawClient(node.port)
    try:
        a, b = Once(rc, f"{tag}:a"), Once(rc, f"{tag}:b")
        dep = a.push("dep")
        masters = [redis.Redis(host="127.0.0.1", port=m.port) for m in cl.masters()]
        for m in masters:
            m.config_resetstat()
        waiting = [b.push(f"w{i}", after=[dep]) for i in range(20)]
        assert stats(rc, f"{tag}:b")["waiting"] == 20
        calls = [m.info("commandstats") for m in masters]
        for m in masters:
            m.close()
        assert sum(c.get("cmdstat_command|getkeys", {}).get("calls", 0) for c in calls) == 0, calls
        assert sum(c.get("cmdstat_once.push", {}).get("calls", 0) for c in calls) == 20, calls
        # a client that asks the server (COMMAND GETKEYS) gets every AFTER queue back
        keys = raw.call("COMMAND", "GETKEYS", "ONCE.PUSH", f"{tag}:b", "p", "AFTER", f"{tag}:a", 1, "x")
        assert [k.decode() if isinstance(k, bytes) else k for k in keys] == [f"{tag}:b", f"{tag}:a"]
        assert len(set(waiting)) == 20
    finally:
        raw.close()
        for q in (f"{tag}:a", f"{tag}:b"):
            rc.delete(q)
        rc.close()
