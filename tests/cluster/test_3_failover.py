"""Failover on a real cluster while producers push and workers reserve/ack on queues of every master (and a backlog
queue per master that is read only at the end, and a schedule firing every 200 ms on each worked queue), checked by
tests/chaos/checker.py (acknowledged = the push replied and `WAIT 1` on the same connection returned >= 1):
`CLUSTER FAILOVER` on a replica, and kill -9 of a master (the cluster promotes its replica). Nothing acknowledged
may be lost. After the fault, with writes frozen (CLIENT PAUSE WRITE), each master's replica has its digest."""
import os
import time

from cluster_harness import key_slot, keys_over_slots, wait_until

from redis.cluster import ClusterNode, RedisCluster

from cluster_helpers import RawClient, cluster_client, encode_command, moved_target, note, queues_on_every_master

from checker import Workload  # tests/chaos/checker.py

RUN_SECS = float(os.environ.get("ONCE_CLUSTER_FAULT_SECS", "2.5"))  # load before and after the fault


def factory_for(cluster):
    def factory():
        nodes = [ClusterNode("127.0.0.1", n.port) for n in cluster.alive_nodes()]
        return RedisCluster(startup_nodes=nodes, decode_responses=True, protocol=2, socket_timeout=2.0,
                            socket_connect_timeout=1.0)
    return factory


def digests_agree(cluster):
    """Frozen with CLIENT PAUSE WRITE on every master: each replica's DEBUG DIGEST equals its master's."""
    masters = cluster.masters()
    for m in masters:
        cluster.client(m).execute_command("CLIENT", "PAUSE", 10000, "WRITE")
    try:
        out = []
        for m in masters:
            cluster.wait_replicated(m)
            d = cluster.client(m).execute_command("DEBUG", "DIGEST")
            for r in cluster.replicas_of(m):
                assert cluster.client(r).execute_command("DEBUG", "DIGEST") == d, (m.port, r.port)
            out.append(d)
        return out
    finally:
        for m in masters:
            cluster.client(m).execute_command("CLIENT", "UNPAUSE")


def run_with_fault(cluster, prefix, fault_name, fault):
    queues = queues_on_every_master(cluster, prefix, 6)
    backlog = queues_on_every_master(cluster, prefix + ":backlog", 3)  # held across the fault, read at the end
    factory = factory_for(cluster)
    wl = Workload(factory, queues, producers=3, workers=3, lease_ms=1000, tag=prefix[-6:], backlog_queues=backlog,
                  schedule_every_ms=200)
    wl.start()
    t0 = time.time()
    try:
        time.sleep(RUN_SECS)
        wl.note_fault(fault_name)
        fault()
        time.sleep(RUN_SECS)
    finally:
        wl.stop()
    cluster.wait_healthy(timeout=60)
    wl.drain(factory)
    res = wl.check(factory)
    note(f"[{cluster.kind}] {res.line('cluster 3+3 ' + cluster.kind)} secs={time.time() - t0:.1f}")
    assert not res.lost, res.details()
    assert res.ok, res.details()
    assert res.acknowledged >= 100, res.line()
    assert int(res.extra.get("cron_jobs", 0)) > 0, res.line()  # the timer fired schedules across the fault
    digests_agree(cluster)
    # What the run left saves and loads again on every master (a replica that must full-sync loads the same).
    for m in cluster.masters():
        c = cluster.client(m)
        before = c.execute_command("DEBUG", "DIGEST")
        assert c.execute_command("DEBUG", "RELOAD") == "OK", m.port
        assert c.execute_command("DEBUG", "DIGEST") == before, m.port
    rc = factory()
    try:
        for q in queues + backlog:
            rc.delete(q)
    finally:
        rc.close()
    return res


def test_a_reserve_blocked_on_a_master_that_fails_over_is_answered_like_blpop(healthy, prefix):
    """CLUSTER FAILOVER demotes the master a reserve waits on: the reserve is answered at once, as BLPOP is there
    (Valkey 9.1: MOVED to the new master; Redis 7.0: the UNBLOCKED error it gives every blocked client when a
    master turns replica). Re-sent through RedisCluster it waits on the new master and gets the next push."""
    cl = healthy
    m = cl.masters()[0]
    replica = cl.replicas_of(m)[0]
    lo, hi = next(r for r in cl.master_ranges() if cl.slot_owner(r[0]) is m)
    q = keys_over_slots(prefix, 1, [(lo, hi)])[0]
    once, blpop = RawClient(m.port, timeout=15), RawClient(m.port, timeout=15)
    try:
        once.sock.sendall(encode_command(["ONCE.RESERVE", q, "BLOCK", 0]))
        blpop.sock.sendall(encode_command(["BLPOP", "{" + q + "}:list", 0]))  # the same slot
        wait_until(lambda: sum("b" in c["flags"] for c in cl.client(m).client_list()) >= 2, 10, "both blocked")
        t0 = time.time()
        cl.failover(replica)
        r_once, r_blpop = once._read(), blpop._read()
        took = time.time() - t0
    finally:
        once.close()
        blpop.close()
    assert isinstance(r_once, tuple) and r_once[0] == "error", r_once
    assert r_once[1].split()[0] == r_blpop[1].split()[0], (r_once, r_blpop)
    if r_once[1].startswith("MOVED"):
        assert moved_target(r_once[1]) == (key_slot(q), replica.port)
    else:
        assert r_once[1].startswith("UNBLOCKED"), r_once
    assert took < 10, took
    note(f"[{cl.kind}] reserve blocked on a master that failed over: {r_once[1][:60]!r} (BLPOP: the same)")
    rc = cluster_client(cl, socket_timeout=10)
    try:
        got = {}
        import threading

        t = threading.Thread(target=lambda: got.update(r=rc.execute_command("ONCE.RESERVE", q, "BLOCK", 5000)))
        t.start()
        wait_until(lambda: any("b" in c["flags"] for c in cl.client(replica).client_list()), 5,
                   "the re-sent reserve waiting on the new master")
        pc = cluster_client(cl)
        pc.execute_command("ONCE.PUSH", q, "after failover", "ID", "a")
        t.join(10)
        assert got.get("r") and got["r"][0][:2] == ["a", "after failover"], got
        pc.delete(q)
        pc.close()
    finally:
        rc.close()


def test_cluster_failover_of_a_replica_under_load_loses_nothing(healthy, prefix):
    m = healthy.masters()[0]
    replica = healthy.replicas_of(m)[0]
    run_with_fault(healthy, prefix, f"CLUSTER FAILOVER on :{replica.port} (replica of :{m.port})",
                   lambda: healthy.failover(replica))
    assert healthy.role(replica) == "master" and healthy.role(m) == "slave"


def test_kill_9_of_a_master_under_load_loses_nothing(healthy, prefix):
    m = healthy.masters()[1]
    replica = healthy.replicas_of(m)[0]
    run_with_fault(healthy, prefix, f"kill -9 of master :{m.port} (its replica :{replica.port} promoted)",
                   lambda: healthy.kill_master(m))
    assert healthy.role(replica) == "master"
    assert m.alive() and healthy.role(m) == "slave"  # restarted from its own files, rejoined as a replica
