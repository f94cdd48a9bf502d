"""Keys (missing key = empty queue, only PUSH creates, WRONGTYPE, the key's life), COMMAND INFO / GETKEYS, INFO once."""
import pytest

from helpers import (EMPTY_STATS, INFO_FIELDS, STATS_FIELDS, RawClient, inspect, push, reserve, reserve_one, state, stats,
                     wait_until)

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"

EVERY_COMMAND = [
    ["ONCE.PUSH", "{k}", "p"],
    ["ONCE.PUSH", "{k}", "p", "ID", "x", "DELAY", "10"],
    ["ONCE.RESERVE", "{k}"],
    ["ONCE.RESERVE", "{k}", "COUNT", "5", "LEASE", "100"],
    ["ONCE.RESERVE", "{k}", "BLOCK", "100"],
    ["ONCE.RESERVE", "{k}", "ACK", "x"],
    ["ONCE.ACK", "{k}", "x"],
    ["ONCE.NACK", "{k}", "x"],
    ["ONCE.NACK", "{k}", "x", "DEAD"],
    ["ONCE.EXTEND", "{k}", "x", "1000"],
    ["ONCE.INSPECT", "{k}", "x"],
    ["ONCE.STATS", "{k}"],
]


def fill(cmd, key):
    return [key if a == "{k}" else a for a in cmd]


@pytest.mark.parametrize("other", ["string", "list", "hash"])
@pytest.mark.parametrize("cmd", EVERY_COMMAND, ids=lambda c: " ".join(c[:1] + c[2:]))
def test_wrongtype_for_every_command(server, r, key, other, cmd):
    if other == "string":
        r.set(key, "v")
    elif other == "list":
        r.rpush(key, "a", "b")
    else:
        r.hset(key, "f", "v")
    raw = RawClient(server.port)
    assert raw.error(*fill(cmd, key)) == WRONGTYPE
    raw.close()
    assert r.type(key) == other                      # the other value is untouched
    assert r.ping() is True


def test_missing_key_acts_as_empty_queue(r, key):
    assert reserve(r, key) is None
    assert reserve(r, key, "COUNT", 10, "LEASE", 100) is None
    assert reserve(r, key, "BLOCK", 10) is None
    assert reserve(r, key, "ACK", "x") is None
    assert r.execute_command("ONCE.ACK", key, "x", "y") == 0
    assert r.execute_command("ONCE.NACK", key, "x") == 0
    assert r.execute_command("ONCE.NACK", key, "x", "DEAD") == 0
    assert r.execute_command("ONCE.EXTEND", key, "x", 1000) is None
    assert inspect(r, key, "x") is None
    assert stats(r, key) == EMPTY_STATS
    assert r.exists(key) == 0                        # none of these created the key
    assert push(r, key, "p") is not None
    assert r.exists(key) == 1


def test_key_type_name(r, key):
    push(r, key, "p")
    name = r.type(key)
    assert name not in ("none", "string", "list", "hash", "set", "zset", "stream")
    assert len(name) == 9                             # module type names are exactly 9 characters


def test_empty_queue_key_stays_and_del_removes_it(r, key):
    job_id = push(r, key, "p")
    reserve_one(r, key)
    assert r.execute_command("ONCE.ACK", key, job_id) == 1
    assert r.exists(key) == 1                         # totals live on, as a stream's do
    assert stats(r, key)["acked_total"] == 1
    assert r.delete(key) == 1
    assert r.exists(key) == 0
    assert stats(r, key) == EMPTY_STATS


def test_rename_moves_the_queue(r, key):
    job_id = push(r, key, "p", "ID", "moved")
    other = key + ":renamed"
    assert r.rename(key, other)
    assert r.exists(key) == 0
    assert inspect(r, other, job_id)["payload"] == "p"
    assert reserve(r, other) == [["moved", "p", 1]]
    assert r.delete(other) == 1


def test_copy_makes_an_independent_queue(r, key):
    push(r, key, "a", "ID", "a")
    push(r, key, "b", "ID", "b", "DELAY", 60000)
    reserve_one(r, key)
    copy = key + ":copy"
    assert r.copy(key, copy) is True
    assert stats(r, copy) == stats(r, key)
    assert inspect(r, copy, "a") == inspect(r, key, "a")
    assert r.execute_command("ONCE.ACK", copy, "a") == 1
    assert inspect(r, copy, "a") is None
    assert inspect(r, key, "a")["state"] == "reserved"
    push(r, copy, "c")
    assert stats(r, key)["pushed_total"] == 2 and stats(r, copy)["pushed_total"] == 3
    r.delete(copy)


# COMMAND INFO / GETKEYS ------------------------------------------------------------------------------------------

FLAGS = {
    # command: (flags that must be present, flags that must be absent)
    "once.push": ({"write", "denyoom"}, {"readonly"}),
    "once.reserve": ({"write"}, {"denyoom", "readonly", "fast"}),
    "once.ack": ({"write"}, {"denyoom", "readonly"}),
    "once.nack": ({"write"}, {"denyoom", "readonly"}),
    "once.extend": ({"write"}, {"denyoom", "readonly"}),
    "once.inspect": ({"readonly", "fast"}, {"write", "denyoom"}),
    "once.stats": ({"readonly", "fast"}, {"write", "denyoom"}),
}


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_command_info_key_position_and_flags(r, name):
    reply = r.execute_command("COMMAND", "INFO", name)
    assert len(reply) == 1, reply
    info = next(iter(reply.values()))
    assert info["name"].lower() == name
    assert (info["first_key_pos"], info["last_key_pos"], info["step_count"]) == (1, 1, 1)
    flags = set(info["flags"])
    must, must_not = FLAGS[name]
    print(f"\n{name}: arity {info['arity']} flags {sorted(flags)}")
    assert must <= flags, f"{name} lacks {must - flags}"
    assert not (must_not & flags), f"{name} has {must_not & flags}"


@pytest.mark.parametrize("args", [
    ["ONCE.PUSH", "myq", "payload", "DELAY", "5"],
    ["ONCE.RESERVE", "myq", "COUNT", "2"],
    ["ONCE.ACK", "myq", "a", "b"],
    ["ONCE.NACK", "myq", "a", "DEAD"],
    ["ONCE.EXTEND", "myq", "a", "1000"],
    ["ONCE.INSPECT", "myq", "a"],
    ["ONCE.STATS", "myq"],
], ids=lambda a: a[0])
def test_command_getkeys(r, args):
    assert r.command_getkeys(*args) == ["myq"]


# INFO once -------------------------------------------------------------------------------------------------------

def test_info_once_fields_present(fresh_server):
    r = fresh_server.client(decode_responses=True)
    info = r.info("once")
    missing = [f for f in INFO_FIELDS if f not in info]
    assert not missing, f"missing {missing}; got {sorted(info)}"
    assert all(isinstance(info[f], int) for f in INFO_FIELDS), info
    assert info["once_queues"] == 0 and info["once_pushed_total"] == 0


def test_info_once_moves(fresh_server):
    r = fresh_server.client(decode_responses=True)
    info0 = r.info("once")
    push(r, "qa", "p", "ID", "a")
    push(r, "qa", "p", "ID", "d", "RETRIES", 0)
    push(r, "qb", "p", "DELAY", 60000)
    push(r, "qb", "p", "ID", "e", "BACKOFF", 0, "LEASE", 50, "RETRIES", 0, "PRIORITY", 9)
    info = r.info("once")
    assert info["once_queues"] == info0["once_queues"] + 2
    assert info["once_pushed_total"] == info0["once_pushed_total"] + 4
    assert (info["once_jobs_ready"], info["once_jobs_delayed"]) == (3, 1)

    assert reserve_one(r, "qa")[0] == "a"
    assert r.execute_command("ONCE.ACK", "qa", "a") == 1
    assert reserve_one(r, "qa")[0] == "d"
    info = r.info("once")
    assert (info["once_acked_total"], info["once_jobs_reserved"], info["once_jobs_ready"]) == (1, 1, 1)
    assert r.execute_command("ONCE.NACK", "qa", "d") == 1
    info = r.info("once")
    assert (info["once_jobs_dead"], info["once_dead_total"], info["once_jobs_reserved"]) == (1, 1, 0)

    assert reserve_one(r, "qb")[0] == "e"
    wait_until(lambda: state(r, "qb", "e") == "dead", timeout=2, what="lease expiry of e")
    info = r.info("once")
    assert (info["once_expired_total"], info["once_dead_total"], info["once_jobs_dead"]) == (1, 2, 2)
    assert info["once_timer_ticks"] > info0["once_timer_ticks"]
    assert info["once_timer_max_tick_us"] >= info["once_timer_last_tick_us"] >= 0

    r.delete("qb")
    info = r.info("once")
    assert info["once_queues"] == 1
    assert (info["once_jobs_delayed"], info["once_jobs_dead"]) == (0, 1)
