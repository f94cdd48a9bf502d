"""Failover on a real cluster while producers push and workers reserve/ack on queues of every master, checked by
tests/chaos/checker.py (acknowledged = the push replied and `WAIT 1` on the same connection returned >= 1):
`CLUSTER FAILOVER` on a replica, and kill -9 of a master (the cluster promotes its replica). Nothing acknowledged
may be lost. After the fault, with writes frozen (CLIENT PAUSE WRITE), each master's replica has its digest."""
import os
import sys
import time

from redis.cluster import ClusterNode, RedisCluster

from cluster_helpers import queues_on_every_master

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "chaos"))

from checker import Workload  # noqa: E402  (tests/chaos/checker.py)

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
    factory = factory_for(cluster)
    wl = Workload(factory, queues, producers=3, workers=3, lease_ms=1000, tag=prefix[-6:])
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
    print(f"\n[{cluster.kind}] {res.line('cluster 3+3 ' + cluster.kind)} secs={time.time() - t0:.1f}")
    assert not res.lost, res.details()
    assert res.ok, res.details()
    assert res.acknowledged >= 100, res.line()
    digests_agree(cluster)
    rc = factory()
    try:
        for q in queues:
            rc.delete(q)
    finally:
        rc.close()
    return res


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
