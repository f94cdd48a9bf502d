"""A write that panics between changing a queue and replicating the change (injected with once.fault-writes)
stops the server instead of answering an error: the master never holds a change its replicas and its AOF do not
(issue 20's rule). Restarted from its AOF, the master's digest equals its replica's."""

from durability_helpers import attach_replica, digest_value, log_has, wait_in_sync
from helpers import push, stats, wait_until

import pytest
import redis


@pytest.mark.parametrize("fault", ["push", "ack"])
def test_a_write_panic_stops_the_server_and_nothing_parts(make_server, key, fault):
    master = make_server(extra=["--appendonly", "yes", "--appendfsync", "always"])
    replica = make_server(extra=["--appendonly", "yes"])
    m, rep = master.client(decode_responses=True), replica.client(decode_responses=True)
    attach_replica(replica, master)
    kept = [push(m, key, f"j{i}") for i in range(5)]
    job = m.execute_command("ONCE.RESERVE", key)[0][0]
    wait_in_sync(m, rep)
    m.config_set("once.fault-writes", 1)
    with pytest.raises(redis.exceptions.ConnectionError):
        if fault == "push":
            m.execute_command("ONCE.PUSH", key, "never")
        else:
            m.execute_command("ONCE.ACK", key, job)
    wait_until(lambda: not master.alive(), timeout=10, what="the master to stop")
    assert log_has(master, "a write command panicked")
    master.start()
    m = master.client(decode_responses=True)
    # What the master comes back with is exactly what its replica got.
    assert stats(m, key)["ready"] == 4 and stats(m, key)["reserved"] == 1
    assert digest_value(m, key) == digest_value(rep, key)
    assert kept[0] == job
    m.close()
    rep.close()
