"""Persistence of queues (issue 3): DEBUG RELOAD, RDB save + restart, AOF rewrite + restart, AOF replay,
kill -9 under `appendfsync always`, maxmemory, and RESTORE of damaged DUMP payloads.

Each test starts its own server(s) of the parametrized kind (redis 7.0, valkey 9.1) with `make_server`.
"""
import random
import struct
import threading
import time

import pytest
import redis

from durability_helpers import (FAR, MODULE_EOF, RespPipe, all_ids, assert_same_snapshot, digest, digest_value,
                                encode_queue_v1, encode_queue_v2, encode_queue_v4, fast_restart, fill_every_state, make_dump, module_header,
                                module_trouble, read_aof, restore_error, shutdown, snapshot, split_dump,
                                wait_rewrite_done)
from helpers import RawClient, inspect, push, reserve, reserve_one, server_ms, state, stats, wait_until

AOF_NO_PREAMBLE = ["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "no"]
GAUGES = ["once_queues", "once_jobs_ready", "once_jobs_delayed", "once_jobs_reserved", "once_jobs_dead", "once_jobs_waiting"]


def gauges(r):
    info = r.info("once")
    return {g: info[g] for g in GAUGES}


def populate(server):
    """Two queues in db 0 and one in db 4, every state in each; returns {db: {queue: ids}} and the clients."""
    r0 = server.client(decode_responses=True, protocol=2)
    r4 = server.client(decode_responses=True, protocol=2, db=4)
    layout = {0: {}, 4: {}}
    layout[0]["qa"] = all_ids(fill_every_state(r0, "qa", tag="a"))
    layout[0]["qb"] = all_ids(fill_every_state(r0, "qb", tag="b"))
    layout[4]["qc"] = all_ids(fill_every_state(r4, "qc", tag="c"))
    # non-queue keys beside them, so DEBUG DIGEST covers a mixed data set
    r0.set("plain-string", "v")
    r4.rpush("plain-list", "x", "y")
    return layout, {0: r0, 4: r4}


def take(clients, layout):
    snap = {db: snapshot(clients[db], layout[db], with_server_digest=False) for db in layout}
    snap["digest"] = digest(clients[0])
    snap["gauges"] = gauges(clients[0])
    return snap


def assert_same(before, after):
    for db in before:
        if db in ("digest", "gauges"):
            continue
        assert_same_snapshot(before[db], after[db])
    assert after["gauges"] == before["gauges"], "INFO once gauges differ"
    assert after["digest"] == before["digest"], "DEBUG DIGEST differs"
    assert before["digest"] != "0" * 40


def reconnect(server, layout):
    return {db: server.client(decode_responses=True, protocol=2, db=db) for db in layout}


def assert_serves_in_priority_order(r, queue, tag):
    """The ready lines came back in order: priority 5 (FIFO), then 0 (FIFO), then -3."""
    got = reserve(r, queue, "COUNT", 10, "LEASE", 60000)
    assert [g[1] for g in got] == [f"{tag}-ready-1", f"{tag}-ready-3", f"{tag}-ready-0",
                                   "\x00bin\r\nary \u00fc payload", f"{tag}-ready-2"], got


# ---- DEBUG RELOAD / RDB ---------------------------------------------------------------------------------------

def test_debug_reload_keeps_every_state(make_server):
    s = make_server()
    layout, clients = populate(s)
    before = take(clients, layout)
    assert clients[0].execute_command("DEBUG", "RELOAD") in (b"OK", "OK", True)
    after = take(clients, layout)
    assert_same(before, after)
    assert_serves_in_priority_order(clients[0], "qa", "a")
    assert not module_trouble(s), s.log_tail()


def test_rdb_save_and_restart_keeps_every_state(make_server):
    s = make_server()
    layout, clients = populate(s)
    before = take(clients, layout)
    assert clients[0].save()
    fast_restart(s)
    clients = reconnect(s, layout)
    assert s.client().dbsize() > 0, "nothing was loaded from the RDB"
    after = take(clients, layout)
    assert_same(before, after)
    assert_serves_in_priority_order(clients[4], "qc", "c")
    assert not module_trouble(s), s.log_tail()


def test_rdb_restart_twice_is_stable(make_server):
    """Save → load → save → load gives the same data set again (the encoding is a fixed point)."""
    s = make_server()
    layout, clients = populate(s)
    before = take(clients, layout)
    for _ in range(2):
        assert clients[0].save()
        fast_restart(s)
        clients = reconnect(s, layout)
    assert_same(before, take(clients, layout))


def test_bgsave_during_writes_then_restart(make_server):
    """BGSAVE forks inside the command: the RDB it writes holds the queue exactly as it was then, although the
    queue keeps changing while the child writes."""
    s = make_server()
    r = s.client(decode_responses=True, protocol=2)
    for i in range(3000):
        push(r, "big", f"payload-{i}" * 5, "PRIORITY", i % 7, *(["ID", f"c{i}"] if i % 4 == 0 else []))
    reserve(r, "big", "COUNT", 100, "LEASE", FAR // 100)
    at_fork = (stats(r, "big"), digest_value(r, "big"), digest(r))
    r.bgsave()
    for i in range(300):
        got = reserve(r, "big", "COUNT", 3, "LEASE", FAR // 100)
        r.execute_command("ONCE.ACK", "big", got[0][0])
        push(r, "big", f"late-{i}")
    wait_until(lambda: r.info("persistence")["rdb_bgsave_in_progress"] == 0, timeout=20, what="bgsave")
    assert r.info("persistence")["rdb_last_bgsave_status"] == "ok"
    assert stats(r, "big") != at_fork[0]
    fast_restart(s)                                   # SHUTDOWN NOSAVE: the BGSAVE's file is what loads
    r = s.client(decode_responses=True, protocol=2)
    assert (stats(r, "big"), digest_value(r, "big"), digest(r)) == at_fork


@pytest.mark.parametrize("how", ["debug-reload", "rdb", "aof", "aof-rewrite"])
def test_timer_resumes_after_reload_or_restart(make_server, how):
    """After a reload or a restart the timer picks up every queue's deadlines (in every db) with no command."""
    extra = AOF_NO_PREAMBLE if how.startswith("aof") else []
    s = make_server(extra=extra)
    work = {}
    for db in (0, 3):
        r = s.client(decode_responses=True, protocol=2, db=db)
        delayed = push(r, "q", "later", "DELAY", 1500)
        leased = push(r, "q", "leased", "RETRIES", 0, "PRIORITY", 5)
        assert reserve(r, "q", "LEASE", 1500)[0][0] == leased
        r.execute_command("ONCE.SCHEDULE", "q", "tick", "@every 200ms", "tick")
        work[db] = (delayed, leased)
    r = s.client(decode_responses=True, protocol=2)
    if how == "debug-reload":
        r.execute_command("DEBUG", "RELOAD")
    elif how == "rdb":
        r.save()
        fast_restart(s)
    elif how == "aof-rewrite":
        r.bgrewriteaof()
        wait_rewrite_done(r)
        fast_restart(s)
    else:
        fast_restart(s)
    for db, (delayed, leased) in work.items():
        r = s.client(decode_responses=True, protocol=2, db=db)
        pushed = stats(r, "q")["pushed_total"]
        wait_until(lambda: state(r, "q", delayed) == "ready", timeout=4, interval=0.01, what=f"promotion in db {db}")
        due = inspect(r, "q", delayed)["created"] + 1500
        assert server_ms(r) - due < 500, "promoted late"
        wait_until(lambda: state(r, "q", leased) == "dead", timeout=4, interval=0.01, what=f"lease expiry in db {db}")
        assert inspect(r, "q", leased)["last_error"] == "lease expired"
        wait_until(lambda: stats(r, "q")["pushed_total"] >= pushed + 2, timeout=3, what=f"cron ticks in db {db}")
    assert not module_trouble(s), s.log_tail()


def test_expired_queue_is_not_loaded_and_not_served(make_server):
    """A queue whose TTL ran out while the server was down is dropped at load; the timer leaves it alone."""
    s = make_server()
    r = s.client(decode_responses=True, protocol=2)
    push(r, "short", "p", "DELAY", 200)
    r.execute_command("ONCE.SCHEDULE", "short", "tick", "@every 100ms", "tick")
    r.pexpire("short", 400)
    kept = push(r, "kept", "k", "DELAY", 1500)
    r.save()
    shutdown(s)
    time.sleep(0.5)
    s.start()
    r = s.client(decode_responses=True, protocol=2)
    assert r.exists("short") == 0
    assert r.info("once")["once_queues"] == 1
    wait_until(lambda: state(r, "kept", kept) == "ready", timeout=4, what="the kept queue's promotion")
    time.sleep(0.3)
    assert r.exists("short") == 0
    assert not module_trouble(s), s.log_tail()


def test_blocked_reserve_survives_debug_reload(make_server):
    s = make_server()
    r = s.client(decode_responses=True, protocol=2)
    push(r, "other", "x")
    out = {}

    def worker():
        c = s.client(decode_responses=True, protocol=2)
        out["got"] = c.execute_command("ONCE.RESERVE", "waiting", "BLOCK", 5000)
        c.close()

    t = threading.Thread(target=worker)
    t.start()
    wait_until(lambda: r.info("clients")["blocked_clients"] == 1, timeout=3, what="client blocked")
    r.execute_command("DEBUG", "RELOAD")
    job_id = push(r, "waiting", "wake up")
    t.join(6)
    assert out.get("got") == [[job_id, "wake up", 1]]
    assert state(r, "waiting", job_id) == "reserved"


# ---- AOF --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("preamble", ["no", "yes"])
def test_bgrewriteaof_then_restart_keeps_every_state(make_server, preamble):
    """With `aof-use-rdb-preamble no` the rewrite calls the module's aof_rewrite; with `yes` its rdb_save."""
    s = make_server(extra=["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", preamble])
    layout, clients = populate(s)
    before = take(clients, layout)
    clients[0].bgrewriteaof()
    wait_rewrite_done(clients[0])
    base = read_aof(s, part=".base.")
    assert base, "no base AOF file written"
    if preamble == "no":
        assert not base.startswith(b"REDIS"), "the rewrite wrote an RDB preamble; aof_rewrite was not used"
        for cmd in (b"ONCE._JOB", b"ONCE._SCHED", b"ONCE._META"):
            assert cmd in base, f"{cmd!r} missing from the rewritten AOF"
        assert b"ONCE.PUSH" not in base
    else:
        assert base.startswith((b"REDIS", b"VALKEY")), base[:20]
    fast_restart(s)
    clients = reconnect(s, layout)
    after = take(clients, layout)
    assert_same(before, after)
    assert_serves_in_priority_order(clients[0], "qb", "b")
    assert not module_trouble(s), s.log_tail()


def test_bgrewriteaof_then_more_writes_then_restart(make_server):
    """Rewritten base + the incremental AOF written after it replay to the same state."""
    s = make_server(extra=AOF_NO_PREAMBLE)
    layout, clients = populate(s)
    r = clients[0]
    r.bgrewriteaof()
    wait_rewrite_done(r)
    # changes after the rewrite: new jobs, a reserve, an ack, a nack, a new schedule, a removed one
    layout[0]["qa"].append(push(r, "qa", "after-rewrite", "ID", "after", "DELAY", FAR))
    job_id, _, _ = reserve_one(r, "qa", "LEASE", FAR // 100)
    layout[0]["qa"].append(job_id)
    assert r.execute_command("ONCE.NACK", "qa", job_id, "ERROR", "after rewrite", "DELAY", FAR) == 1
    r.execute_command("ONCE.SCHEDULE", "qb", "second", NEVER_CRON_ALT, "p2")
    assert r.execute_command("ONCE.UNSCHEDULE", "qa", "a-yearly") == 1
    before = take(clients, layout)
    fast_restart(s)
    clients = reconnect(s, layout)
    assert_same(before, take(clients, layout))


NEVER_CRON_ALT = "30 4 2 1 *"


def test_aof_replay_of_timer_work_keeps_state(make_server):
    """Without a rewrite, restart replays the explicit commands the master wrote, timer actions included:
    promotions, lease expiries with retry and dead-lettering, backoff, cron ticks."""
    s = make_server(module_args=["default-backoff-ms", 20], extra=AOF_NO_PREAMBLE)
    r = s.client(decode_responses=True, protocol=2)
    ids = all_ids(fill_every_state(r, "q", tag="t"))
    for i in range(20):
        ids.append(push(r, "q", f"soon-{i}", "DELAY", 50 + 10 * i, "RETRIES", 1, "BACKOFF", 20, "PRIORITY", i % 3))
    r.execute_command("ONCE.SCHEDULE", "q", "tick", "@every 100ms", "tick-payload", "RETRIES", 0)
    wait_until(lambda: stats(r, "q")["delayed"] == 3, timeout=5, what="all short delays promoted")
    end = time.monotonic() + 1.5
    while time.monotonic() < end:                   # reserve everything with short leases, never ack
        reserve(r, "q", "COUNT", 100, "LEASE", 30)
        time.sleep(0.1)
    assert r.execute_command("ONCE.UNSCHEDULE", "q", "tick") == 1
    wait_until(lambda: (stats(r, "q")["reserved"], stats(r, "q")["delayed"]) == (2, 3), timeout=10,
               what="leases and backoffs to run out")
    st = stats(r, "q")
    print(f"\n{s.kind}: before restart {st}")
    assert st["expired_total"] >= 20 and st["dead_total"] > 10 and st["pushed_total"] > 35, st
    before = snapshot(r, {"q": ids})
    fast_restart(s)
    r = s.client(decode_responses=True, protocol=2)
    assert_same_snapshot(before, snapshot(r, {"q": ids}))
    assert not module_trouble(s), s.log_tail()


@pytest.mark.parametrize("rewrite_midway", [False, True], ids=["plain", "rewrite-midway"])
def test_kill9_during_push_stream_loses_no_acknowledged_push(make_server, rewrite_midway):
    extra = ["--appendonly", "yes", "--appendfsync", "always"]
    if rewrite_midway:
        extra += ["--aof-use-rdb-preamble", "no"]
    s = make_server(extra=extra)
    acked = []          # (id, payload) of every push whose reply the client read
    errors = []
    stop = threading.Event()

    def pusher(worker):
        try:
            pipe = RespPipe(s.port)
        except OSError as e:
            errors.append(e)
            return
        n = 0
        try:
            while not stop.is_set():
                batch = []
                for _ in range(16):
                    payload = f"w{worker}-{n}"
                    cmd = ["ONCE.PUSH", "stream", payload]
                    if n % 3 == 0:
                        cmd += ["ID", f"custom-{worker}-{n}"]
                    if n % 5 == 0:
                        cmd += ["PRIORITY", n % 11]
                    batch.append((cmd, payload))
                    n += 1
                pipe.send([c for c, _ in batch])
                for _, payload in batch:
                    reply = pipe.read()
                    assert isinstance(reply, bytes), reply
                    acked.append((reply.decode(), payload))
        except (ConnectionError, OSError):
            pass          # the server was killed under us: replies not read are not acknowledged
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(e)
        finally:
            pipe.close()

    threads = [threading.Thread(target=pusher, args=(w,), daemon=True) for w in range(2)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 3000 or errors, timeout=30, interval=0.01, what="3000 acknowledged pushes")
    if rewrite_midway:
        s.client().bgrewriteaof()
        wait_until(lambda: len(acked) >= 6000 or errors, timeout=30, interval=0.01, what="more pushes")
    s.stop(kill=True)                          # SIGKILL while the pushers are mid-stream
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors, errors
    count = len(acked)
    assert count >= 3000
    s.start()
    r = s.client(decode_responses=True, protocol=2)
    st = stats(r, "stream")
    print(f"\n{s.kind}: {count} pushes acknowledged before kill -9; after restart pushed_total "
          f"{st['pushed_total']}, ready {st['ready']}")
    assert st["pushed_total"] >= count
    assert st["ready"] >= count
    missing = []
    pipe = RespPipe(s.port)
    for i in range(0, count, 500):
        chunk = acked[i:i + 500]
        pipe.send([["ONCE.INSPECT", "stream", job_id] for job_id, _ in chunk])
        for job_id, payload in chunk:
            job = pipe.read()
            if job is None:
                missing.append(job_id)
            else:
                fields = dict(zip(job[0::2], job[1::2]))
                assert fields[b"payload"].decode() == payload, (job_id, fields)
    pipe.close()
    assert not missing, f"{len(missing)} acknowledged pushes lost, e.g. {missing[:5]}"
    assert not module_trouble(s), s.log_tail()


# ---- maxmemory -------------------------------------------------------------------------------------------------

def test_maxmemory_noeviction_refuses_push_and_allows_draining(make_server):
    s = make_server()
    r = s.client(decode_responses=True, protocol=2)
    ids = [push(r, "full", "x" * 2000, "RETRIES", 1) for _ in range(300)]
    used = r.info("memory")["used_memory"]
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", used + 256 * 1024)
    raw = RawClient(s.port)
    refused = None
    for i in range(2000):
        reply = raw.call("ONCE.PUSH", "full", "y" * 4096)
        if isinstance(reply, tuple):
            refused = reply[1]
            break
        ids.append(reply.decode())
    assert refused is not None, "ONCE.PUSH was never refused above maxmemory"
    assert refused.startswith("OOM command not allowed when used memory > 'maxmemory'"), refused
    before = stats(r, "full")
    assert raw.call("ONCE.PUSH", "full", "z")[1].startswith("OOM ")
    assert raw.call("ONCE.PUSH", "newqueue", "z")[1].startswith("OOM ")
    assert raw.call("ONCE.SCHEDULE", "full", "s", "@every 1s", "p")[1].startswith("OOM ")
    assert stats(r, "full") == before, "a refused push changed the queue"
    assert r.exists("newqueue") == 0
    # draining works: reserve, ack, nack, extend, inspect
    job_id, payload, attempt = reserve_one(r, "full", "LEASE", 60000)
    assert r.execute_command("ONCE.EXTEND", "full", job_id, 120000) is not None
    assert r.execute_command("ONCE.NACK", "full", job_id, "ERROR", "oom", "DELAY", 0) == 1
    assert inspect(r, "full", job_id)["last_error"] == "oom"
    drained = 0
    while True:
        got = reserve(r, "full", "COUNT", 100, "LEASE", 60000)
        if not got:
            if stats(r, "full")["delayed"] == 0:
                break
            time.sleep(0.01)
            continue
        assert r.execute_command("ONCE.ACK", "full", *[g[0] for g in got]) == len(got)
        drained += len(got)
    assert drained == len(ids)
    after = stats(r, "full")
    assert (after["ready"], after["reserved"], after["delayed"], after["acked_total"]) == (0, 0, 0, len(ids))
    r.config_set("maxmemory", 0)
    assert push(r, "full", "fits again")
    raw.close()


# ---- RESTORE of damaged payloads -------------------------------------------------------------------------------

def _stats_bytes(rb, key):
    reply = rb.execute_command("ONCE.STATS", key)
    return {reply[i].decode(): reply[i + 1] for i in range(0, len(reply), 2)}


def _queue_is_usable(rb, key):
    """A value RESTORE accepted must behave as a queue: reads, a reserve/ack round, pushes, its digest."""
    st = _stats_bytes(rb, key)
    unset_ok = ("retries", "backoff", "lease")
    assert all((k in unset_ok and v is None) or (isinstance(v, int) and v >= 0) for k, v in st.items()), st
    rb.execute_command("ONCE.SCHEDULES", key)
    digest_value(rb, key)
    rb.execute_command("MEMORY", "USAGE", key)
    got = rb.execute_command("ONCE.RESERVE", key, "COUNT", 50, "LEASE", 1000) or []
    for g in got:
        assert rb.execute_command("ONCE.ACK", key, g[0]) == 1
    pushed = [rb.execute_command("ONCE.PUSH", key, f"after-restore-{i}") for i in range(2)]
    st2 = _stats_bytes(rb, key)
    assert st2["ready"] == st["ready"] - len(got) + 2, (st, st2)
    assert all(rb.execute_command("ONCE.INSPECT", key, i) for i in pushed)


def test_restore_truncated_payload_is_refused(make_server):
    s = make_server()
    r = s.client(decode_responses=True, protocol=2)
    rb = s.client(protocol=2)
    fill_every_state(r, "src", tag="d")
    payload = rb.dump("src")
    assert rb.execute_command("RESTORE", "copy", 0, payload) == b"OK"
    assert digest_value(rb, "copy") == digest_value(rb, "src")
    # with the checksum checked: every cut is refused before the module sees it
    for cut in range(1, len(payload), 7):
        restore_error(rb, "bad", payload[:cut])
    # the module's rdb_load sees the short input: body cut, footer kept (checksum not checked). The loader reads
    # on into the footer's bytes, so a cut close to the end can decode into a valid queue by chance: then it must
    # be a working queue; every other cut must be refused.
    assert r.execute_command("DEBUG", "SET-SKIP-CHECKSUM-VALIDATION", 1) in ("OK", True)
    body, footer = payload[:-10], payload[-10:]
    refused = accepted = 0
    for cut in range(11, len(body)):
        try:
            rb.execute_command("RESTORE", "bad", 0, body[:cut] + footer)
        except redis.ResponseError:
            refused += 1
            assert rb.exists("bad") == 0
            continue
        accepted += 1
        assert cut > len(body) - 10, f"a payload cut {len(body) - cut} bytes short of its end was accepted"
        _queue_is_usable(rb, "bad")
        rb.delete("bad")
    print(f"\n{s.kind}: truncated bodies refused {refused}, accepted by chance {accepted}")
    assert refused >= len(body) - 11 - 10
    assert rb.ping()
    assert s.alive()
    trouble = [ln for ln in module_trouble(s) if "cannot load a queue:" not in ln]
    assert not trouble, trouble


def test_restore_garbled_bytes_never_crashes(make_server):
    """Every single byte of the body flipped, with a valid checksum: refused, or a queue that works."""
    s = make_server()
    r = s.client(decode_responses=True, protocol=2)
    rb = s.client(protocol=2)
    fill_every_state(r, "src", tag="g")
    body, ver, _ = split_dump(rb.dump("src"))
    accepted = refused = 0
    for pos in range(10, len(body)):
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(body)
            bad[pos] ^= mask
            try:
                rb.execute_command("RESTORE", "g", 0, make_dump(bytes(bad), ver))
            except redis.ResponseError:
                refused += 1
                assert rb.exists("g") == 0
                continue
            accepted += 1
            _queue_is_usable(rb, "g")
            rb.delete("g")
    print(f"\n{s.kind}: garbled payloads refused {refused}, accepted {accepted}")
    assert rb.ping()
    assert refused > 0
    assert r.info("once")["once_queues"] == 1, "a refused RESTORE leaked a queue in the INFO count"
    trouble = [ln for ln in module_trouble(s) if "cannot load a queue:" not in ln]
    assert not trouble, trouble


def _crafted(header, ver, next_seq=10, totals=(1, 0, 0, 0, 0, 0, 0), jobs=None, scheds=(), count=None):
    if jobs is None:
        jobs = [_job(1)]
    return make_dump(header + encode_queue_v1(next_seq, totals, jobs, scheds, count=count) + MODULE_EOF, ver)


def _job(seq, **kw):
    j = {"seq": seq, "created": 1700000000000, "state": 0, "attempts": 0, "retries": 3, "backoff": 1000,
         "lease": 0, "priority": 0, "deadline": 0, "payload": f"p{seq}", "id": None, "error": None}
    j.update(kw)
    return j


def _sched(**kw):
    s = {"name": "s", "spec": "0 0 1 1 *", "tz": "UTC", "payload": "p", "retries": 3, "backoff": 1000, "lease": 0,
         "priority": 0, "missed": 0, "next": 4102444800000, "last": 0}
    s.update(kw)
    return s


def _read_uints(body, count):
    """The first `count` UINT values of a module value's body (after the type byte and the module id)."""
    pos, values = 10, []
    while len(values) < count:
        assert body[pos] == 2, "expected a UINT opcode"
        first = body[pos + 1]
        if first >> 6 == 0:
            values.append(first & 0x3F)
            pos += 2
        elif first >> 6 == 1:
            values.append(((first & 0x3F) << 8) | body[pos + 2])
            pos += 3
        elif first == 0x80:
            values.append(struct.unpack(">I", body[pos + 2:pos + 6])[0])
            pos += 6
        else:
            values.append(struct.unpack(">Q", body[pos + 2:pos + 10])[0])
            pos += 10
    return values


def _state_codes(r, rb):
    """The state code the encodings use for each state, read from a real one-job queue per state."""
    codes = {}
    # A ready job once sent back by RETRY (its error kept): fresh ready jobs are saved in runs, which carry no
    # state code.
    def retried(k):
        push(r, k, "p")
        r.execute_command("ONCE.NACK", k, reserve(r, k)[0][0], "DEAD")
        r.execute_command("ONCE.RETRY", k, "ALL")

    for name, setup in [("ready", retried),
                        ("delayed", lambda k: push(r, k, "p", "DELAY", FAR)),
                        ("reserved", lambda k: (push(r, k, "p"), reserve(r, k, "LEASE", 100000))),
                        ("dead", lambda k: (push(r, k, "p"), r.execute_command(
                            "ONCE.NACK", k, reserve(r, k)[0][0], "DEAD")))]:
        key = f"codes:{name}"
        setup(key)
        body, _, _ = split_dump(rb.dump(key))
        # v6: next_seq, 9 totals, the item's kind, then the job's seq, created, state: the 14th value
        codes[name] = _read_uints(body, 14)[13]
        r.delete(key)
    return codes


def test_restore_crafted_queues_are_validated(make_server):
    """Payloads with a valid checksum that decode but break the queue's invariants are refused."""
    s = make_server()
    r = s.client(decode_responses=True, protocol=2)
    rb = s.client(protocol=2)
    real_id = push(r, "real", "p")
    real = rb.dump("real")
    header, (body, ver, _) = module_header(real), split_dump(real)
    codes = _state_codes(r, rb)
    assert len(set(codes.values())) == 4, codes
    # the encoder here is right: a well-formed crafted queue loads, with what we wrote into it
    good = _crafted(header, ver, next_seq=5, totals=(4, 2, 1, 1, 0, 1, 0), jobs=[
        _job(1, id="custom-one", priority=7),
        _job(2, state=codes["delayed"], deadline=4102444800000),
        _job(3, state=codes["reserved"], deadline=4102444800000, attempts=1),
        _job(4, state=codes["dead"], attempts=1, error="boom"),
    ], scheds=[_sched()])
    assert rb.execute_command("RESTORE", "good", 0, good) == b"OK"
    st = stats(r, "good")
    assert (st["ready"], st["delayed"], st["reserved"], st["dead"], st["schedules"], st["pushed_total"]) == \
        (1, 1, 1, 1, 1, 4), st
    assert inspect(r, "good", "custom-one")["priority"] == 7
    # the encoder here writes what the module writes: a one-job queue encodes to the module's own bytes (v7 writes what v6 did for a queue without flows)
    created = int(real_id.split("-")[0])
    mine = module_header(real, encver=7) + encode_queue_v4(
        1, (1, 0, 0, 0, 0, 0, 0, 0, 0),
        [dict(_job(0, created=created, state=codes["ready"], payload="p"), retry_base=0, since=created)],
        version=6) \
        + MODULE_EOF
    assert mine == body, (mine, body)

    bad_cases = {
        "unknown state code": dict(jobs=[_job(1, state=max(codes.values()) + 7)]),
        "priority above range": dict(jobs=[_job(1, priority=1_000_001)]),
        "priority below range": dict(jobs=[_job(1, priority=-1_000_001)]),
        "duplicate seq": dict(jobs=[_job(1), _job(1)]),
        "duplicate custom id": dict(jobs=[_job(1, id="x"), _job(2, id="x")]),
        "empty custom id": dict(jobs=[_job(1, id="")]),
        "custom id of 257 bytes": dict(jobs=[_job(1, id="i" * 257)]),
        "retries above 1000": dict(jobs=[_job(1, retries=1001)]),
        "lease above 7 days": dict(jobs=[_job(1, lease=604_800_001)]),
        "seq beyond 2^63": dict(jobs=[_job(1 << 63)]),
        "count larger than the jobs": dict(jobs=[_job(1)], count=2),
        "custom id that is another job's server id": dict(jobs=[_job(1, id="1700000000000-2"), _job(2)]),
        "server id that is another job's custom id": dict(jobs=[_job(2), _job(1, id="1700000000000-2")]),
        "flags with an unknown bit": dict(jobs=[_job(1, flags=4)]),
        "bad cron spec": dict(scheds=[_sched(spec="not a cron")]),
        "bad time zone": dict(scheds=[_sched(tz="Mars/Olympus_Mons")]),
        "missed policy 2": dict(scheds=[_sched(missed=2)]),
        "spec not UTF-8": dict(scheds=[_sched(spec=b"\xff\xfe")]),
    }
    failures = []
    for name, kw in bad_cases.items():
        payload = _crafted(header, ver, **kw)
        try:
            rb.execute_command("RESTORE", "crafted", 0, payload)
        except redis.ResponseError:
            assert rb.exists("crafted") == 0
            continue
        failures.append(name)
        rb.delete("crafted")
    # an encoding version this module does not know (encver is the low 10 bits of the module id)
    module_id = struct.unpack(">Q", header[2:10])[0]
    newer = header[:2] + struct.pack(">Q", (module_id & ~1023) | 3)
    try:
        rb.execute_command("RESTORE", "crafted", 0, make_dump(newer + body[10:], ver))
        failures.append("unknown encoding version 3")
        rb.delete("crafted")
    except redis.ResponseError:
        pass
    assert rb.ping()
    assert not failures, f"accepted invalid queues: {failures}"
    assert r.info("once")["once_queues"] == 2   # real, good


def test_restore_with_exhausted_id_sequence_keeps_every_push(make_server):
    """A queue whose id sequence is at its end (a crafted but checksum-valid payload) must either be refused or
    keep every job later pushed into it: a push that replies with an id must store a job."""
    s = make_server()
    r = s.client(decode_responses=True, protocol=2)
    rb = s.client(protocol=2)
    push(r, "real", "p")
    real = rb.dump("real")
    header, (_, ver, _) = module_header(real), split_dump(real)
    payload = make_dump(header + encode_queue_v1((1 << 64) - 1, (0,) * 7, [], ()) + MODULE_EOF, ver)
    try:
        rb.execute_command("RESTORE", "edge", 0, payload)
    except redis.ResponseError:
        return                                        # refused: fine
    ids = [push(r, "edge", f"p{i}") for i in range(3)]
    st = stats(r, "edge")
    payloads = [(inspect(r, "edge", i) or {}).get("payload") for i in ids]
    assert len(set(ids)) == 3 and st["ready"] == 3 and payloads == ["p0", "p1", "p2"], \
        f"three pushes replied {ids}; the queue holds {st}; INSPECT payloads {payloads}"


def test_restore_at_the_top_of_the_id_range_then_reload(make_server):
    """A RESTOREd queue whose last job has the highest seq the loader accepts (2^63 - 1): a push after it must not
    make a queue that the module then cannot load again (DEBUG RELOAD / restart must keep the data set)."""
    s = make_server()
    r = s.client(decode_responses=True, protocol=2)
    rb = s.client(protocol=2)
    push(r, "real", "p")
    real = rb.dump("real")
    header, (_, ver, _) = module_header(real), split_dump(real)
    top = (1 << 63) - 1
    payload = _crafted(header, ver, next_seq=top, jobs=[_job(top)])
    try:
        rb.execute_command("RESTORE", "top", 0, payload)
    except redis.ResponseError:
        return                                        # refused: fine
    pushed = push(r, "top", "after")
    before = (stats(r, "top"), digest(r))
    try:
        r.execute_command("DEBUG", "RELOAD")
    except redis.ResponseError as e:
        raise AssertionError(f"DEBUG RELOAD failed after a push into a queue at the top of the id range: {e}; "
                             f"log: {s.log_tail(4)}")
    assert s.alive()
    assert (stats(r, "top"), digest(r)) == before
    assert inspect(r, "top", pushed)["payload"] == "after"


def test_kill9_during_worker_stream_acked_jobs_never_return(make_server):
    """Workers reserve and ack as fast as they can under `appendfsync always`; after kill -9 and restart no job whose
    ACK was acknowledged comes back, and every acknowledged reservation is still held (or later)."""
    s = make_server(extra=["--appendonly", "yes", "--appendfsync", "always"])
    total = 20000
    pipe = RespPipe(s.port)
    for i in range(0, total, 1000):
        pipe.send([["ONCE.PUSH", "work", f"job-{j}"] for j in range(i, i + 1000)])
        for _ in range(1000):
            assert isinstance(pipe.read(), bytes)
    pipe.close()
    acked, reserved_only, errors = [], [], []

    def worker():
        try:
            p = RespPipe(s.port)
        except OSError as e:
            errors.append(e)
            return
        try:
            while True:
                p.send([["ONCE.RESERVE", "work", "COUNT", 10, "LEASE", 600000]])
                got = p.read()
                if not got:
                    return
                ids = [g[0] for g in got]
                keep = ids[-1:]                      # one of every ten stays reserved
                p.send([["ONCE.ACK", "work", *ids[:-1]]])
                reserved_only.extend(keep)
                n = p.read()
                assert n == len(ids) - 1, n
                acked.extend(ids[:-1])
        except (ConnectionError, OSError):
            pass
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(e)
        finally:
            p.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 3000 or errors, timeout=30, interval=0.01, what="3000 acknowledged acks")
    s.stop(kill=True)
    for t in threads:
        t.join(10)
    assert not errors, errors
    s.start()
    r = s.client(protocol=2)
    st = {k.decode(): v for k, v in zip(*[iter(r.execute_command("ONCE.STATS", "work"))] * 2)}
    print(f"\n{s.kind}: {len(acked)} acks and {len(reserved_only)} reservations acknowledged; after restart {st}")
    assert st["acked_total"] >= len(acked)
    assert st["ready"] + st["reserved"] == total - st["acked_total"]
    back, lost = [], []
    p = RespPipe(s.port)
    for i in range(0, len(acked), 1000):
        chunk = acked[i:i + 1000]
        p.send([["ONCE.INSPECT", "work", j] for j in chunk])
        back += [j for j in chunk if p.read() is not None]
    p.send([["ONCE.INSPECT", "work", j] for j in reserved_only])
    for j in reserved_only:
        job = p.read()
        fields = dict(zip(job[0::2], job[1::2])) if job else {}
        if fields.get(b"state") != b"reserved":
            lost.append((j, fields.get(b"state")))
    p.close()
    assert not back, f"{len(back)} acknowledged ACKs undone after kill -9, e.g. {back[:5]}"
    assert not lost, f"{len(lost)} acknowledged reservations not held after kill -9, e.g. {lost[:5]}"


# ---- unusual values ---------------------------------------------------------------------------------------------

def fill_unusual(rb, key):
    """Jobs at the edges of every range and payloads of every shape; returns their ids (bytes)."""
    ids = []
    big_random = bytes(random.Random(7).getrandbits(8) for _ in range(65536))
    every_byte = bytes(range(256)) * 4
    ids.append(rb.execute_command("ONCE.PUSH", key, b"a" * 1_000_000, "PRIORITY", 1000000))   # compressible
    ids.append(rb.execute_command("ONCE.PUSH", key, big_random, "PRIORITY", -1000000))           # incompressible
    ids.append(rb.execute_command("ONCE.PUSH", key, every_byte, "ID", bytes(range(1, 256)) + b"\x00"))
    ids.append(rb.execute_command("ONCE.PUSH", key, b"x", "ID", b"i" * 256, "RETRIES", 1000,
                                  "BACKOFF", 315360000000, "LEASE", 604800000))
    ids.append(rb.execute_command("ONCE.PUSH", key, b"far", "AT", (1 << 62)))
    ids.append(rb.execute_command("ONCE.PUSH", key, b"past", "AT", 1))
    ids.append(rb.execute_command("ONCE.PUSH", key, b"0123456789" * 3, "DELAY", 315360000000))
    got = rb.execute_command("ONCE.RESERVE", key, "LEASE", 604800000)
    ids.append(got[0][0])
    ids.append(rb.execute_command("ONCE.PUSH", key, b"with error", "PRIORITY", 1000000))
    job_id = rb.execute_command("ONCE.RESERVE", key, "LEASE", 60000)[0][0]
    assert rb.execute_command("ONCE.NACK", key, job_id, "ERROR", b"e" * 10000 + b"\xff\x00", "DEAD") == 1
    ids.append(job_id)
    rb.execute_command("ONCE.SCHEDULE", key, b"s" * 200, "0 0 29 2 *", b"p" * 5000, "TZ", "Pacific/Kiritimati",
                       "MISSED", "skip", "LEASE", 604800000, "PRIORITY", -1000000, "RETRIES", 0, "BACKOFF", 0)
    return ids


def _inspect_all(rb, key, ids):
    return [rb.execute_command("ONCE.INSPECT", key, i) for i in ids]


@pytest.mark.parametrize("how", ["debug-reload", "rdb", "aof-rewrite", "aof", "replica"])
def test_unusual_values_survive(make_server, how):
    extra = AOF_NO_PREAMBLE if how.startswith("aof") else []
    s = make_server(extra=extra)
    rb = s.client(protocol=2)
    ids = fill_unusual(rb, "odd")
    before = (_inspect_all(rb, "odd", ids), rb.execute_command("ONCE.STATS", "odd"),
              rb.execute_command("ONCE.SCHEDULES", "odd"), digest(rb))
    assert before[3] != b"0" * 40
    if how == "debug-reload":
        rb.execute_command("DEBUG", "RELOAD")
    elif how == "rdb":
        rb.save()
        fast_restart(s)
    elif how == "aof-rewrite":
        rb.bgrewriteaof()
        wait_rewrite_done(rb)
        fast_restart(s)
    elif how == "aof":
        fast_restart(s)
    else:
        from durability_helpers import attach_replica, wait_in_sync
        replica = make_server()
        attach_replica(replica, s)
        ids.append(rb.execute_command("ONCE.PUSH", "odd", b"streamed \x00\xff" * 1000, "ID", b"\xff" * 256))
        before = (_inspect_all(rb, "odd", ids), rb.execute_command("ONCE.STATS", "odd"),
                  rb.execute_command("ONCE.SCHEDULES", "odd"), digest(rb))
        wait_in_sync(rb, replica.client())
        rb = replica.client(protocol=2)
    rb = rb if how == "replica" else s.client(protocol=2)
    after = (_inspect_all(rb, "odd", ids), rb.execute_command("ONCE.STATS", "odd"),
             rb.execute_command("ONCE.SCHEDULES", "odd"), digest(rb))
    for a, b, what in zip(after, before, ("INSPECT", "STATS", "SCHEDULES", "DEBUG DIGEST")):
        assert a == b, f"{what} differs after {how}"


def test_an_event_log_longer_than_one_rewrite_record_survives_aof_rewrite(make_server):
    """A rewrite writes the event log 1,000 events per ONCE._EVENTS record: each record may raise the last id only
    as far as its own events, or the next record's events no longer follow it and are refused at load (the log
    once came back with its first 1,000 events only)."""
    s = make_server(extra=["--appendonly", "yes", "--aof-use-rdb-preamble", "no", "--appendfsync", "always"])
    r = s.client(decode_responses=True, protocol=2)
    r.execute_command("ONCE.CONFIGURE", "evq", "EVENTS-MAX", 5000)
    for i in range(1200):
        push(r, "evq", f"p{i}")
    for _ in range(600):
        job = reserve_one(r, "evq")
        r.execute_command("ONCE.ACK", "evq", job[0])
    before = r.execute_command("ONCE.EVENTS", "evq", "COUNT", 10000)
    assert len(before) == 2400, len(before)
    digest_before = digest_value(r, "evq")
    r.execute_command("BGREWRITEAOF")
    wait_rewrite_done(r)
    fast_restart(s)
    r = s.client(decode_responses=True, protocol=2)
    assert r.execute_command("ONCE.EVENTS", "evq", "COUNT", 10000) == before
    assert digest_value(r, "evq") == digest_before
