"""RESERVE ... ALSO q2 q3: one worker takes from several queues in strict order (issue 22). Each job's reply
names its queue; a BLOCK wakes on any of them; the ACK applies to the first queue; pause, flow control and
groups hold per queue; a replica and a reload agree. (CROSSSLOT: tests/cluster/test_also_cluster.py.)"""
import threading

import pytest
import redis

from durability_helpers import attach_replica, digest_value, wait_in_sync
from helpers import push, stats, wait_until


@pytest.fixture
def qs(key):
    return [f"{key}:urgent", f"{key}:normal", f"{key}:bulk"]


def reserve_also(r, qs, *opts):
    return r.execute_command("ONCE.RESERVE", qs[0], *opts, "ALSO", *qs[1:])


def test_strict_order_across_three_queues(r, qs):
    bulk = [push(r, qs[2], f"b{i}") for i in range(3)]
    normal = [push(r, qs[1], f"n{i}") for i in range(2)]
    urgent = push(r, qs[0], "u0")
    got = reserve_also(r, qs, "COUNT", 1)
    assert got == [[urgent, "u0", 1, qs[0]]]
    got = reserve_also(r, qs, "COUNT", 4)
    assert [(j[0], j[3]) for j in got] == [(normal[0], qs[1]), (normal[1], qs[1]), (bulk[0], qs[2]), (bulk[1], qs[2])]
    # A job pushed to a higher queue goes first again.
    u1 = push(r, qs[0], "u1")
    assert [j[0] for j in reserve_also(r, qs, "COUNT", 2)] == [u1, bulk[2]]
    assert reserve_also(r, qs) is None
    assert [stats(r, q)["reserved"] for q in qs] == [2, 2, 3]


def test_without_also_the_reply_keeps_three_elements(r, qs):
    push(r, qs[0], "x")
    assert len(r.execute_command("ONCE.RESERVE", qs[0])[0]) == 3


def test_a_block_wakes_on_a_push_to_the_last_queue(server, r, qs):
    c = server.client(decode_responses=True, protocol=2, socket_timeout=10)
    out = {}
    t = threading.Thread(target=lambda: out.update(reply=reserve_also(c, qs, "BLOCK", 5000)))
    t.start()
    wait_until(lambda: r.info("clients")["blocked_clients"] >= 1, what="the reserve to block")
    job = push(r, qs[2], "late")
    t.join(10)
    assert out["reply"] == [[job, "late", 1, qs[2]]]
    c.close()


def test_a_blocked_reserve_times_out_with_null(r, qs):
    assert reserve_also(r, qs, "BLOCK", 50) is None


def test_a_paused_first_queue_is_skipped(r, qs):
    push(r, qs[0], "held")
    n = push(r, qs[1], "served")
    r.execute_command("ONCE.PAUSE", qs[0])
    assert reserve_also(r, qs, "COUNT", 5) == [[n, "served", 1, qs[1]]]
    r.execute_command("ONCE.RESUME", qs[0])
    assert reserve_also(r, qs)[0][1] == "held"


def test_flow_control_holds_per_queue(r, qs):
    r.execute_command("ONCE.CONFIGURE", qs[0], "CONCURRENCY", 1)
    for i in range(3):
        push(r, qs[0], f"u{i}")
    push(r, qs[1], "n0")
    got = reserve_also(r, qs, "COUNT", 3)
    assert [j[1] for j in got] == ["u0", "n0"]


def test_the_ack_applies_to_the_first_queue(r, qs):
    first = push(r, qs[0], "a", "ID", "first")
    other = push(r, qs[1], "b", "ID", "other")
    r.execute_command("ONCE.RESERVE", qs[0])
    r.execute_command("ONCE.RESERVE", qs[1])
    # `other` lives in the second queue: ACK looks only in the first, so it counts 0 there.
    acked, jobs = r.execute_command("ONCE.RESERVE", qs[0], "ACK", other, "WITHACK", "ALSO", *qs[1:])
    assert acked == 0 and jobs is None and stats(r, qs[1])["reserved"] == 1
    acked, jobs = r.execute_command("ONCE.RESERVE", qs[0], "ACK", first, "ATTEMPT", 1, "WITHACK", "ALSO", *qs[1:])
    assert acked == 1 and jobs is None and stats(r, qs[0])["acked_total"] == 1


def test_bad_input_changes_nothing(r, qs):
    push(r, qs[0], "a")
    r.set(qs[2], "a string")
    before = digest_value(r, qs[0])
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        reserve_also(r, qs)
    with pytest.raises(redis.ResponseError, match="ALSO needs at least one queue"):
        r.execute_command("ONCE.RESERVE", qs[0], "ALSO")
    with pytest.raises(redis.ResponseError, match="ALSO takes at most 64 queues"):
        r.execute_command("ONCE.RESERVE", qs[0], "ALSO", *[f"{qs[1]}{i}" for i in range(65)])
    assert digest_value(r, qs[0]) == before and stats(r, qs[0])["reserved"] == 0


def test_getkeys_names_every_queue(server, qs):
    c = server.client(decode_responses=True, protocol=2)
    c.response_callbacks.clear()      # redis-py reshapes COMMAND replies
    assert c.execute_command("COMMAND", "GETKEYS", "ONCE.RESERVE", qs[0], "COUNT", "2", "ALSO", qs[1], qs[2]) == qs
    c.close()


def test_inside_multi_it_does_not_block(r, qs):
    p = r.pipeline(transaction=True)
    p.execute_command("ONCE.RESERVE", qs[0], "BLOCK", 0, "ALSO", *qs[1:])
    assert p.execute() == [None]


def test_a_replica_and_a_reload_agree(make_server, qs):
    master, replica = make_server(), make_server()
    m, rep = master.client(decode_responses=True), replica.client(decode_responses=True)
    attach_replica(replica, master)
    for q in qs:
        for i in range(4):
            push(m, q, f"{q}{i}")
    for _ in range(3):
        m.execute_command("ONCE.RESERVE", qs[0], "COUNT", 3, "ALSO", *qs[1:])
    wait_in_sync(m, rep)
    assert digest_value(m, *qs) == digest_value(rep, *qs)
    before = digest_value(m, *qs)
    m.execute_command("DEBUG", "RELOAD")
    assert digest_value(m, *qs) == before
    m.close()
    rep.close()
