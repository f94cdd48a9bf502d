"""RESERVE ... ALSO on a real cluster (issue 22): queues in different slots are CROSSSLOT, with nothing reserved;
hash-tagged queues share a slot and are served in strict order through redis-py's RedisCluster."""
from cluster_harness import key_slot
from cluster_helpers import RawClient, stats


def test_also_across_slots_is_crossslot_and_hash_tags_work(healthy, rc, prefix):
    a, b = f"{prefix}:a", f"{prefix}:b"
    assert key_slot(a) != key_slot(b)
    rc.execute_command("ONCE.PUSH", a, "x")
    owner = healthy.owner(a)
    c = RawClient(owner.port)   # exact error texts (redis-py strips the CROSSSLOT word)
    try:
        kind, text = c.call("ONCE.RESERVE", a, "ALSO", b)
        assert kind == "error" and text.startswith("CROSSSLOT"), text
    finally:
        c.close()
    assert stats(rc, a)["reserved"] == 0
    tagged = [f"{{{prefix}}}:urgent", f"{{{prefix}}}:normal"]
    assert key_slot(tagged[0]) == key_slot(tagged[1])
    n = rc.execute_command("ONCE.PUSH", tagged[1], "normal")
    u = rc.execute_command("ONCE.PUSH", tagged[0], "urgent")
    got = rc.execute_command("ONCE.RESERVE", tagged[0], "COUNT", 2, "ALSO", tagged[1])
    assert [(j[0], j[3]) for j in got] == [(u, tagged[0]), (n, tagged[1])]
