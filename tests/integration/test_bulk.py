"""ONCE.BULK (issue 22): many jobs in one call, all or none, as ONE replicated record (`ONCE._BULK`) that a
replica's own AOF keeps and replays to the master's very state; IDS idempotent like PUSH ID; bad input refused
with nothing changed; MULTI and Lua; a waiting RESERVE served; one `once.push` notification per call."""
import os
import threading

import pytest
import redis

import harness
from durability_helpers import aof_files, digest_value, wait_in_sync, wait_rewrite_done
from helpers import RawClient, inspect, parse_id, reserve, server_ms, stats, wait_until

REPLICA_AOF = ["--appendonly", "yes", "--appendfsync", "always"]
FAR = 10 ** 10


def bulk(r, queue, *args):
    return r.execute_command("ONCE.BULK", queue, *args)


def aof_records(server):
    """Every command in the server's incremental AOF files (the base file is the snapshot of the first sync), as
    lists of bytes."""
    out = []
    for path in aof_files(server):
        if not path.endswith(".aof") or ".base." in os.path.basename(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        i = 0
        while i < len(data):
            assert data[i:i + 1] == b"*", (path, data[i:i + 40])
            end = data.index(b"\r\n", i)
            count, i, argv = int(data[i + 1:end]), end + 2, []
            for _ in range(count):
                end = data.index(b"\r\n", i)
                n = int(data[i + 1:end])
                argv.append(data[end + 2:end + 2 + n])
                i = end + 2 + n + 2
            out.append(argv)
    return out


def naming(records, key):
    """The records that change `key` (SELECT and the like name no key)."""
    return [a for a in records if len(a) > 1 and a[1] == key.encode()]


def start_pair(make_server):
    master = make_server()
    replica = make_server(extra=REPLICA_AOF + ["--replicaof", "127.0.0.1", master.port])
    r = replica.client(decode_responses=True, protocol=2)
    wait_until(lambda: r.info("replication").get("master_link_status") == "up", timeout=20, interval=0.02,
               what="replica link up")
    wait_rewrite_done(r)
    r.close()
    return master, replica


def test_bulk_of_10000_is_one_record_in_a_replicas_aof_and_replays_to_the_same_digest(make_server):
    master, replica = start_pair(make_server)
    m = master.client(decode_responses=True, protocol=2)
    rc = replica.client(decode_responses=True, protocol=2)
    before = server_ms(m)
    ids = bulk(m, "big", "PAYLOADS", *[f"job-{i}" for i in range(10_000)])
    assert len(ids) == 10_000 and len(set(ids)) == 10_000
    parsed = [parse_id(i) for i in ids]
    assert [seq for _, seq in parsed] == list(range(10_000)), "ids in order, one seq each"
    assert len({ms for ms, _ in parsed}) == 1 and before <= parsed[0][0] <= server_ms(m)
    assert stats(m, "big")["ready"] == 10_000 and stats(m, "big")["pushed_total"] == 10_000
    assert inspect(m, "big", ids[4321])["payload"] == "job-4321"
    # a second call with every option, IDS among them
    opts = ["DELAY", FAR, "RETRIES", 7, "BACKOFF", 250, "LEASE", 12345, "PRIORITY", -3, "GROUP", "tenant"]
    assert bulk(m, "big", *opts, "IDS", "a", "b", "a", "PAYLOADS", "pa", "pb", "pa2") == ["a", "b", "a"]
    wait_in_sync(m, rc)
    records = naming(aof_records(replica), "big")
    assert [r[0].upper() for r in records] == [b"ONCE._BULK", b"ONCE._BULK"], [r[:2] for r in records]
    assert len(records[0]) == 10_000 + 4, "key, header, PAYLOADS and the payloads: one record for the call"
    assert records[1][records[1].index(b"IDS") + 1:records[1].index(b"PAYLOADS")] == [b"a", b"b"], \
        "the record carries the jobs added, not the id that was live already"
    want = digest_value(m, "big")
    assert digest_value(rc, "big") == want
    assert inspect(rc, "big", "a") == inspect(m, "big", "a") and inspect(rc, "big", ids[-1]) == inspect(m, "big", ids[-1])
    rc.execute_command("DEBUG", "RELOAD")
    assert digest_value(rc, "big") == want, "after DEBUG RELOAD on the replica"
    m.execute_command("DEBUG", "RELOAD")
    assert digest_value(m, "big") == want, "after DEBUG RELOAD on the master"
    rc.execute_command("BGREWRITEAOF")
    wait_rewrite_done(rc)
    rc.close()
    # restart from the rewritten AOF alone, as the replica of a port where nothing listens
    replica.restart(extra=REPLICA_AOF + ["--replicaof", "127.0.0.1", harness.free_port()])
    rc = replica.client(decode_responses=True, protocol=2)
    assert digest_value(rc, "big") == want, "after an AOF rewrite and a restart"
    assert stats(rc, "big")["pushed_total"] == 10_002
    m.close()
    rc.close()


def test_every_job_gets_the_options_and_they_are_served_in_order(r, key):
    before = server_ms(r)
    ids = bulk(r, key, "PRIORITY", 4, "RETRIES", 2, "BACKOFF", 300, "LEASE", 5000, "PAYLOADS", "a", "b", "c")
    jobs = [inspect(r, key, i) for i in ids]
    assert [j["payload"] for j in jobs] == ["a", "b", "c"]
    for j in jobs:
        assert (j["state"], j["priority"], j["retries"], j["backoff"], j["lease"]) == ("ready", 4, 2, 300, 5000), j
        assert j["created"] == jobs[0]["created"] and before <= j["created"]
    assert [g[0] for g in reserve(r, key, "COUNT", 3)] == ids
    later = bulk(r, key, "DELAY", 60_000, "GROUP", "g1", "PAYLOADS", "d")
    job = inspect(r, key, later[0])
    assert job["state"] == "delayed" and job["due"] >= job["created"] + 60_000 and job["group"] == "g1"
    at = bulk(r, key, "AT", before - 1000, "PAYLOADS", "e")
    assert inspect(r, key, at[0])["state"] == "ready"
    soon = bulk(r, key, "DELAY", 50, "PAYLOADS", "f", "g")
    wait_until(lambda: all(inspect(r, key, i)["state"] == "ready" for i in soon), timeout=5,
               what="the timer to promote a BULK's delayed jobs")
    assert stats(r, key)["pushed_total"] == 7


def test_ids_are_idempotent_like_push_id(r, key):
    assert bulk(r, key, "IDS", "a", "b", "c", "PAYLOADS", "1", "2", "3") == ["a", "b", "c"]
    assert bulk(r, key, "IDS", "a", "b", "c", "PAYLOADS", "x", "y", "z") == ["a", "b", "c"]
    assert stats(r, key)["pushed_total"] == 3 and inspect(r, key, "b")["payload"] == "2"
    # a live id among new ones, and one id twice in a call: each adds one job, the first
    assert bulk(r, key, "IDS", "d", "a", "e", "d", "PAYLOADS", "4", "no", "5", "no") == ["d", "a", "e", "d"]
    assert stats(r, key)["pushed_total"] == 5 and inspect(r, key, "d")["payload"] == "4"
    # PUSH ID and BULK IDS share the ids
    assert r.execute_command("ONCE.PUSH", key, "no", "ID", "e") == "e"
    assert bulk(r, key, "IDS", "f", "PAYLOADS", "6") == ["f"]
    assert stats(r, key)["pushed_total"] == 6
    # the words IDS and PAYLOADS may be ids and payloads too: PAYLOADS is the middle argument after IDS
    assert bulk(r, key, "IDS", "PAYLOADS", "IDS", "PAYLOADS", "PAYLOADS", "IDS") == ["PAYLOADS", "IDS"]
    assert inspect(r, key, "PAYLOADS")["payload"] == "PAYLOADS" and inspect(r, key, "IDS")["payload"] == "IDS"


def raw_error(server, *args):
    c = RawClient(server.port)
    try:
        return c.error(*args)
    finally:
        c.close()


@pytest.mark.parametrize("args,message", [
    ([], "ERR wrong number of arguments for 'once.bulk' command"),
    (["RETRIES", "3"], "ERR PAYLOADS payload [payload ...] must end the command (after the options and IDS)"),
    (["PAYLOADS"], "ERR wrong number of arguments for 'once.bulk' command"),
    (["RETRIES", "1", "PAYLOADS"], "ERR PAYLOADS needs at least one payload"),
    (["IDS", "a", "b", "PAYLOADS", "x"], "ERR IDS gives 2 ids and PAYLOADS 1 payloads: give one id per payload"),
    (["IDS", "a", "PAYLOADS", "x", "y"], "ERR IDS gives 1 ids and PAYLOADS 2 payloads: give one id per payload"),
    (["IDS", "a", "b"], "ERR PAYLOADS payload [payload ...] must end the command (after the options and IDS)"),
    (["IDS", "a", "k" * 257, "PAYLOADS", "x", "y"], "ERR IDS: id 2 must be 1 to 256 bytes"),
    (["IDS", "", "PAYLOADS", "x"], "ERR IDS: id 1 must be 1 to 256 bytes"),
    (["DELAY", "5", "AT", "5", "PAYLOADS", "x"], "ERR DELAY and AT cannot be used together"),
    (["ID", "a", "PAYLOADS", "x"], "ERR unknown option 'ID'"),
    (["RETRIES", "1001", "PAYLOADS", "x"], "ERR RETRIES must be between 0 and 1000, got 1001"),
    (["GROUP", "", "PAYLOADS", "x"], "ERR GROUP must be 1 to 256 bytes"),
    (["LEASE", "1", "LEASE", "2", "PAYLOADS", "x"], "ERR option 'LEASE' given twice"),
    (["PAYLOADS"] + ["p"] * 10_001, "ERR PAYLOADS gives 10001 payloads, over the limit of 10000 per call"),
])
def test_bad_input_is_refused_and_changes_nothing(server, r, key, args, message):
    assert raw_error(server, "ONCE.BULK", key, *args) == message
    assert r.exists(key) == 0, "a refused BULK makes no key"
    bulk(r, key, "IDS", "keep", "PAYLOADS", "kept")
    before = digest_value(r, key)
    assert raw_error(server, "ONCE.BULK", key, *args) == message
    assert digest_value(r, key) == before


def test_a_payload_over_the_limit_refuses_the_whole_call(server, r, key):
    old = r.config_get("once.max-payload-bytes")["once.max-payload-bytes"]
    r.config_set("once.max-payload-bytes", 10)
    try:
        with pytest.raises(redis.ResponseError, match="payload is 11 bytes, over the limit of 10"):
            bulk(r, key, "PAYLOADS", "ok", "y" * 11, "ok")
        assert r.exists(key) == 0
    finally:
        r.config_set("once.max-payload-bytes", old)


def test_a_key_of_another_type_is_wrongtype(r, key):
    r.set(key, "plain")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        bulk(r, key, "PAYLOADS", "a")
    assert r.get(key) == "plain"


def test_multi_and_lua(r, key):
    with r.pipeline(transaction=True) as p:
        p.execute_command("ONCE.BULK", key, "PAYLOADS", "a", "b")
        p.execute_command("ONCE.BULK", key, "IDS", "x", "PAYLOADS", "c")
        p.execute_command("ONCE.STATS", key)
        first, second, s = p.execute()
    assert len(first) == 2 and second == ["x"] and s[s.index("ready") + 1] == 3
    got = r.eval("return redis.call('ONCE.BULK', KEYS[1], 'PRIORITY', 9, 'IDS', 'l1', 'l2', 'PAYLOADS', 'p1', 'p2')",
                 1, key)
    assert got == ["l1", "l2"]
    assert [g[0] for g in reserve(r, key, "COUNT", 2)] == ["l1", "l2"]
    with pytest.raises(redis.ResponseError, match="IDS gives"):
        r.eval("return redis.call('ONCE.BULK', KEYS[1], 'IDS', 'z', 'PAYLOADS')", 1, key)
    assert stats(r, key)["pushed_total"] == 5


def test_a_waiting_reserve_is_served_and_one_notification_is_raised(server, r, key):
    r.config_set("notify-keyspace-events", "Kd")
    sub = server.client(decode_responses=True, protocol=2).pubsub()
    sub.subscribe(f"__keyspace@0__:{key}")
    assert sub.get_message(timeout=5)["type"] == "subscribe"
    got = {}
    waiter = server.client(decode_responses=True, protocol=2, socket_timeout=10)
    t = threading.Thread(target=lambda: got.setdefault("reply", reserve(waiter, key, "BLOCK", 5000, "COUNT", 2)))
    try:
        t.start()
        wait_until(lambda: r.info("clients")["blocked_clients"] >= 1, timeout=5, what="RESERVE to block")
        ids = bulk(r, key, "PAYLOADS", "a", "b", "c")
        t.join(10)
        assert [j[0] for j in got["reply"]] == ids[:2]
        messages = []
        while (m := sub.get_message(timeout=0.5)) is not None:
            messages.append(m["data"])
        assert messages.count("once.push") == 1, messages
    finally:
        t.join(10)
        waiter.close()
        sub.close()
        r.config_set("notify-keyspace-events", "")


def test_the_record_applies_whole_or_not_at_all(server, r, key):
    """ONCE._BULK as a client may send it (README "Internal commands"): validated like the others."""
    now = server_ms(r)
    header = f"0 {now} 0 3 1000 0 0"
    assert r.execute_command("ONCE._BULK", key, header, "IDS", "a", "b", "PAYLOADS", "1", "2") == "OK"
    assert [inspect(r, key, i)["payload"] for i in ("a", "b")] == ["1", "2"]
    before = digest_value(r, key)
    for argv, message in [
        ([f"2 {now} 0 3 1000 0 0", "IDS", "c", "a", "PAYLOADS", "3", "4"], "the id of place 2 is live already"),
        ([header, "PAYLOADS", "5"], "job seq 0 already exists"),
        ([f"2 {now} 0 3 1000 0", "PAYLOADS", "5"], "the header needs 7 numbers"),
        ([f"2 {now} 0 1001 1000 0 0", "PAYLOADS", "5"], "RETRIES out of range"),
        ([f"{2 ** 62} {now} 0 3 1000 0 0", "PAYLOADS", "5"], "seq out of range"),
        ([f"{2 ** 62 - 1} {now} 0 3 1000 0 0", "PAYLOADS", "5", "6"], "used up its id sequence"),
        ([f"2 {now} 0 3 1000 0 0", "GROUP", "", "PAYLOADS", "5"], "GROUP must be 1 to 256 bytes"),
        ([f"2 {now} 0 3 1000 0 0", "IDS", "c", "PAYLOADS"], "IDS gives 1 ids and PAYLOADS 0 payloads"),
    ]:
        with pytest.raises(redis.ResponseError, match="bad bulk: .*" + message.replace("(", r"\(")):
            r.execute_command("ONCE._BULK", key, *argv)
        assert digest_value(r, key) == before, argv
    with pytest.raises(redis.ResponseError, match="live already"):
        r.execute_command("ONCE._BULK", key + "-new", header, "IDS", "x", "x", "PAYLOADS", "1", "2")
    assert r.exists(key + "-new") == 0, "a refused record makes no key"
