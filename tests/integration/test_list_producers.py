"""List producers onto a queue (issue 22): RPUSH/LPUSH from an unchanged producer onto a queue's name become jobs
(a command filter turns them into ONCE.RPUSH/ONCE.LPUSH), in MULTI and Lua too, replicated and persisted like any
push; lists that are not queues stay lists; ONCE.ADOPT turns a list a producer made first into a queue."""
import pytest
import redis

from durability_helpers import attach_replica, digest_value, fast_restart, read_aof, wait_in_sync
from helpers import as_map, push, stats


def payloads(r, queue, n=100):
    jobs = r.execute_command("ONCE.RESERVE", queue, "COUNT", n) or []
    return [j[1] for j in jobs]


def test_rpush_onto_a_queue_makes_jobs_in_order(r, key):
    r.execute_command("ONCE.CONFIGURE", key, "RETRIES", 7)      # the queue's own defaults apply
    assert r.rpush(key, "a") == 1
    assert r.rpush(key, "b", "c") == 3
    assert r.type(key) == "OnceQueue"
    jobs = r.execute_command("ONCE.RESERVE", key, "COUNT", 10)
    assert [j[1] for j in jobs] == ["a", "b", "c"]
    assert as_map(r.execute_command("ONCE.INSPECT", key, jobs[0][0]))["retries"] == 7


def test_lpush_of_three_in_one_call_keeps_the_order_given(r, key):
    push(r, key, "first")
    assert r.lpush(key, "x", "y", "z") == 4
    assert payloads(r, key) == ["first", "x", "y", "z"]


def test_rpush_inside_multi_and_from_lua(r, key):
    push(r, key, "p")
    p = r.pipeline(transaction=True)
    p.rpush(key, "in-multi")
    p.execute_command("ONCE.STATS", key)
    assert p.execute()[0] == 2
    assert r.eval("return redis.call('RPUSH', KEYS[1], 'lua-1', 'lua-2')", 1, key) == 4
    assert payloads(r, key) == ["p", "in-multi", "lua-1", "lua-2"]


def test_lists_that_are_not_queues_stay_lists(r, key):
    assert r.rpush(key, "a", "b") == 2 and r.lpush(key, "z") == 3
    assert r.lrange(key, 0, -1) == ["z", "a", "b"] and r.type(key) == "list"
    r.hset(key + ":h", "f", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.rpush(key + ":h", "x")


def test_a_deleted_or_renamed_queue_name_is_a_list_again(r, key):
    push(r, key, "p")
    r.delete(key)
    assert r.rpush(key, "a") == 1 and r.type(key) == "list"
    r.delete(key)
    push(r, key, "p")
    r.rename(key, key + ":new")
    assert r.rpush(key + ":new", "q") == 2 and r.type(key + ":new") == "OnceQueue"
    assert r.rpush(key, "l") == 1 and r.type(key) == "list"


def test_names_are_known_again_after_a_reload_and_an_aof_restart(make_server, key):
    s = make_server(extra=["--appendonly", "yes"])
    c = s.client(decode_responses=True)
    push(c, key, "p")
    c.execute_command("DEBUG", "RELOAD")
    assert c.rpush(key, "after-reload") == 2
    fast_restart(s)
    c = s.client(decode_responses=True)
    assert c.rpush(key, "after-aof") == 3
    assert payloads(c, key) == ["p", "after-reload", "after-aof"]
    c.close()


def test_replicas_and_their_own_aof_get_the_jobs(make_server, key):
    master = make_server()
    replica = make_server(extra=["--appendonly", "yes"])
    m, rep = master.client(decode_responses=True), replica.client(decode_responses=True)
    attach_replica(replica, master)
    push(m, key, "p")
    m.rpush(key, "a", "b", "c")
    m.lpush(key, "d")
    wait_in_sync(m, rep)
    assert stats(rep, key)["ready"] == 5 and digest_value(m, key) == digest_value(rep, key)
    # One record per list command in the replica's own AOF (as BULK), not one per element.
    aof = read_aof(replica)
    assert aof.count(b"ONCE._BULK") == 2 and aof.count(b"ONCE._JOB") == 1, aof[-2000:]
    before = digest_value(rep, key)
    rep.execute_command("REPLICAOF", "NO", "ONE")
    fast_restart(replica)
    rep = replica.client(decode_responses=True)
    assert digest_value(rep, key) == before
    m.close()
    rep.close()


def test_an_element_over_the_payload_limit_changes_nothing(make_server, key):
    s = make_server(module_args=["max-payload-bytes", 10])
    c = s.client(decode_responses=True)
    push(c, key, "p")
    with pytest.raises(redis.ResponseError, match="over the limit of 10"):
        c.rpush(key, "ok", "x" * 11)
    assert stats(c, key)["ready"] == 1
    c.close()


def test_acl_the_rewritten_command_is_what_is_checked(server, r, key):
    push(r, key, "p")
    r.execute_command("ACL", "SETUSER", "lp", "on", ">pw", "~*", "+rpush", "+lrange")
    r.execute_command("ACL", "SETUSER", "lp2", "on", ">pw", "~*", "+rpush", "+once.rpush")
    a = redis.Redis(port=server.port, username="lp", password="pw", decode_responses=True)
    b = redis.Redis(port=server.port, username="lp2", password="pw", decode_responses=True)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError, match="once.rpush"):
            a.rpush(key, "x")
        assert b.rpush(key, "x") == 2
        assert a.rpush(key + ":list", "y") == 1        # a plain list needs only +rpush
    finally:
        a.close()
        b.close()
        r.execute_command("ACL", "DELUSER", "lp", "lp2")


# ---- ONCE.ADOPT ----------------------------------------------------------------------------------------------------

def test_adopt_turns_a_list_into_a_queue_head_first(make_server, key):
    master, replica = make_server(), make_server()
    m, rep = master.client(decode_responses=True), replica.client(decode_responses=True)
    attach_replica(replica, master)
    m.rpush(key, *[f"t{i}" for i in range(1000)])
    assert m.execute_command("ONCE.ADOPT", key) == 1000
    assert m.type(key) == "OnceQueue" and stats(m, key)["ready"] == 1000
    assert m.execute_command("ONCE.ADOPT", key) == 0
    assert m.rpush(key, "after") == 1001
    wait_in_sync(m, rep)
    assert digest_value(m, key) == digest_value(rep, key)
    assert payloads(m, key, 3) == ["t0", "t1", "t2"]
    m.close()
    rep.close()


def test_adopt_of_a_missing_key_or_another_type(r, key):
    assert r.execute_command("ONCE.ADOPT", key) == 0 and r.exists(key) == 0
    r.set(key, "s")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.execute_command("ONCE.ADOPT", key)
    assert r.get(key) == "s"
