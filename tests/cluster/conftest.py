"""Fixtures for the cluster tests: one real cluster (3 masters + 3 replicas, AOF on, the module on every node) per
server kind, shared by the whole session so the suite stays fast.

- `cluster`  session-scoped, parametrized over the kinds available (redis, valkey); pytest groups the tests by
             kind, so one cluster runs at a time. Tests leave it healthy (the failover tests restart what they
             kill), and each test uses queue names of its own (`prefix`).
- `rc`       a redis-py RedisCluster client of `cluster` (str replies, RESP2), closed after the test.
- `prefix`   a key prefix no other test uses.
"""
import re
import uuid

import cluster_harness
import cluster_helpers
import harness
import pytest

KINDS = harness.kinds()


@pytest.fixture(scope="session", params=KINDS)
def cluster(request):
    c = cluster_harness.Cluster(request.param)
    yield c
    c.close()


@pytest.fixture
def healthy(cluster):
    """The cluster, checked healthy before the test (an earlier test's failover must have settled)."""
    cluster.wait_healthy(timeout=60)
    return cluster


@pytest.fixture
def rc(healthy):
    from redis.cluster import RedisCluster

    c = RedisCluster(host="127.0.0.1", port=healthy.masters()[0].port, decode_responses=True, protocol=2)
    yield c
    c.close()


@pytest.fixture
def prefix(request):
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return f"{name}:{uuid.uuid4().hex[:6]}"


def pytest_terminal_summary(terminalreporter):
    if cluster_helpers.NOTES:
        terminalreporter.section("Once on a cluster")
        for line in cluster_helpers.NOTES:
            terminalreporter.write_line(line)
