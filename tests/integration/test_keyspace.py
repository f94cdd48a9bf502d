"""A queue is a key (issue 3): each keyspace operation on a queue key, and the timer afterwards.

The timer never touches a queue that is gone (DEL, UNLINK, FLUSHDB, FLUSHALL, EXPIRE): no error in the log, the
server alive, INFO once counting the right queues, no key brought back. It keeps serving a queue that was renamed,
moved, swapped, copied or restored: a delayed job pushed before the operation becomes ready under the new name or
database on time. DEBUG DIGEST-VALUE mixes in every field; MEMORY USAGE follows the payloads.

Each test gets a server of its own (INFO once counts are server-wide).
"""

import pytest

from durability_helpers import digest_value, fill_every_state, module_trouble
from helpers import inspect, push, reserve, server_ms, state, stats, wait_until

ON_TIME_MS = 400          # how late after its due time a job may turn ready and still be "on time"


@pytest.fixture
def srv(make_server):
    return make_server()


def client(server, db=0):
    return server.client(decode_responses=True, protocol=2, db=db)


def with_timer_work(r, key, delay=500, lease=500):
    """A delayed job, a reserved job with a short lease (no retries: it goes dead), and a schedule every 100 ms."""
    delayed = push(r, key, "delayed", "DELAY", delay)
    leased = push(r, key, "leased", "RETRIES", 0, "PRIORITY", 9)
    got = reserve(r, key, "LEASE", lease)
    assert got[0][0] == leased
    r.execute_command("ONCE.SCHEDULE", key, "tick", "@every 100ms", "tick-payload")
    return delayed, leased


def wait_ready_on_time(r, key, job_id):
    """The delayed job turns ready on its own, within ON_TIME_MS of its due time; returns how late it was."""
    job = inspect(r, key, job_id)
    assert job is not None, f"job {job_id} not found under {key!r}"
    assert job["state"] == "delayed", job
    due = job["due"]
    wait_until(lambda: state(r, key, job_id) == "ready", timeout=(due - server_ms(r)) / 1000 + 2, interval=0.005,
               what=f"job {job_id} in {key!r} to be promoted")
    late = server_ms(r) - due
    assert late < ON_TIME_MS, f"promoted {late} ms after due"
    return late


def wait_dead_by_expiry(r, key, job_id):
    wait_until(lambda: state(r, key, job_id) == "dead", timeout=3, interval=0.005,
               what=f"lease of {job_id} in {key!r} to run out")
    assert inspect(r, key, job_id)["last_error"] == "lease expired"


def once_info(r):
    info = r.info("once")
    return {k: info[k] for k in ("once_queues", "once_jobs_ready", "once_jobs_delayed", "once_jobs_reserved",
                                 "once_jobs_dead")}


def assert_clean(server):
    assert server.alive(), server.log_tail()
    assert client(server).ping()
    trouble = module_trouble(server)
    assert not trouble, trouble


def let_timer_run(r, ms=900):
    """Leaves the server alone long enough for every deadline of with_timer_work and several cron ticks."""
    end = server_ms(r) + ms
    wait_until(lambda: server_ms(r) >= end, timeout=ms / 1000 + 2, interval=0.02, what="time to pass")


def assert_gone(server, r, key):
    assert r.exists(key) == 0, f"{key!r} came back"
    assert r.type(key) == "none"


# ---- gone: DEL, UNLINK, FLUSHDB, FLUSHALL, EXPIRE -------------------------------------------------------------

def test_del_queue_timer_leaves_it_alone(srv):
    r = client(srv)
    with_timer_work(r, "gone")
    other = push(r, "other", "o", "DELAY", 300)
    assert r.delete("gone") == 1
    assert once_info(r)["once_queues"] == 1
    wait_ready_on_time(r, "other", other)
    let_timer_run(r)
    assert_gone(srv, r, "gone")
    assert once_info(r) == {"once_queues": 1, "once_jobs_ready": 1, "once_jobs_delayed": 0,
                            "once_jobs_reserved": 0, "once_jobs_dead": 0}
    assert_clean(srv)


def test_unlink_big_queue_timer_leaves_it_alone(srv):
    r = client(srv)
    with_timer_work(r, "gone")
    for i in range(0, 5000, 500):
        pipe = r.pipeline(transaction=False)
        for j in range(i, i + 500):
            pipe.execute_command("ONCE.PUSH", "gone", f"job-{j}", *(["DELAY", 200] if j % 2 else []))
        pipe.execute()
    other = push(r, "other", "o", "DELAY", 300)
    assert r.unlink("gone") == 1                 # over 64 jobs: freed on the lazy-free thread
    wait_until(lambda: once_info(r)["once_queues"] == 1, timeout=5, what="the unlinked queue to be freed")
    wait_ready_on_time(r, "other", other)
    let_timer_run(r)
    assert_gone(srv, r, "gone")
    assert once_info(r) == {"once_queues": 1, "once_jobs_ready": 1, "once_jobs_delayed": 0,
                            "once_jobs_reserved": 0, "once_jobs_dead": 0}
    assert_clean(srv)


@pytest.mark.parametrize("mode", ["SYNC", "ASYNC"])
def test_flushdb_timer_leaves_flushed_queues_alone(srv, mode):
    r0, r1 = client(srv, 0), client(srv, 1)
    with_timer_work(r0, "gone")
    with_timer_work(r0, "gone2", delay=700)
    kept = push(r1, "kept", "k", "DELAY", 300)
    assert r0.flushdb(asynchronous=(mode == "ASYNC"))
    wait_until(lambda: once_info(r0)["once_queues"] == 1, timeout=5, what="flushed queues freed")
    wait_ready_on_time(r1, "kept", kept)
    let_timer_run(r0)
    assert r0.dbsize() == 0, r0.keys("*")
    assert once_info(r0)["once_queues"] == 1 and once_info(r0)["once_jobs_ready"] == 1
    assert_clean(srv)


@pytest.mark.parametrize("mode", ["SYNC", "ASYNC"])
def test_flushall_timer_leaves_flushed_queues_alone(srv, mode):
    r0, r5 = client(srv, 0), client(srv, 5)
    with_timer_work(r0, "gone")
    with_timer_work(r5, "gone5")
    assert r0.flushall(asynchronous=(mode == "ASYNC"))
    wait_until(lambda: once_info(r0)["once_queues"] == 0, timeout=5, what="flushed queues freed")
    let_timer_run(r0)
    assert r0.dbsize() == 0 and r5.dbsize() == 0
    assert once_info(r0) == {"once_queues": 0, "once_jobs_ready": 0, "once_jobs_delayed": 0,
                             "once_jobs_reserved": 0, "once_jobs_dead": 0}
    # a new queue under the same name works, and is the only one the timer serves
    fresh = push(r0, "gone", "fresh", "DELAY", 200)
    wait_ready_on_time(r0, "gone", fresh)
    let_timer_run(r0, 400)
    s = stats(r0, "gone")
    assert (s["ready"], s["pushed_total"], s["schedules"]) == (1, 1, 0), s
    assert r5.dbsize() == 0
    assert_clean(srv)


def test_expire_queue_key_goes_at_its_ttl(srv):
    r = client(srv)
    delayed, _ = with_timer_work(r, "ttl", delay=1000, lease=1000)
    assert r.pexpire("ttl", 300)
    assert 0 < r.pttl("ttl") <= 300
    # the cron ticks write to the queue before it expires: the TTL must stay
    wait_until(lambda: stats(r, "ttl")["pushed_total"] >= 3, timeout=2, what="cron ticks before expiry")
    assert 0 < r.pttl("ttl") <= 300, "a timer write dropped or moved the TTL"
    other = push(r, "other", "o", "DELAY", 300)
    wait_until(lambda: once_info(r)["once_queues"] == 1, timeout=3, what="the queue to expire (active expiry)")
    assert_gone(srv, r, "ttl")
    wait_ready_on_time(r, "other", other)
    let_timer_run(r, 1300)                        # past the delayed job's and the lease's deadlines
    assert_gone(srv, r, "ttl")
    assert r.info("stats")["expired_keys"] >= 1
    assert once_info(r) == {"once_queues": 1, "once_jobs_ready": 1, "once_jobs_delayed": 0,
                            "once_jobs_reserved": 0, "once_jobs_dead": 0}
    assert_clean(srv)


def test_ttl_survives_timer_work(srv):
    r = client(srv)
    delayed, leased = with_timer_work(r, "ttl", delay=200, lease=200)
    assert r.pexpire("ttl", 60000)
    wait_ready_on_time(r, "ttl", delayed)
    wait_dead_by_expiry(r, "ttl", leased)
    assert 0 < r.pttl("ttl") <= 60000, "the timer's writes dropped the TTL"


# ---- moved: RENAME, MOVE, SWAPDB --------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["RENAME", "RENAMENX"])
def test_rename_timer_follows_the_new_name(srv, cmd):
    r = client(srv)
    delayed, leased = with_timer_work(r, "old")
    assert r.execute_command(cmd, "old", "new") in (True, "OK", 1)
    wait_ready_on_time(r, "new", delayed)
    wait_dead_by_expiry(r, "new", leased)
    before = stats(r, "new")["pushed_total"]
    wait_until(lambda: stats(r, "new")["pushed_total"] >= before + 2, timeout=2, what="cron ticks under new name")
    assert_gone(srv, r, "old")
    # a key of another type at the old name: the timer's stale hint must leave it alone
    r.set("old", "a string")
    let_timer_run(r, 400)
    assert r.get("old") == "a string"
    assert once_info(r)["once_queues"] == 1
    assert_clean(srv)


def test_rename_over_another_queue(srv):
    r = client(srv)
    delayed, leased = with_timer_work(r, "a")
    b_delayed = push(r, "b", "b-delayed", "ID", "b-only", "DELAY", 200)
    r.execute_command("ONCE.SCHEDULE", "b", "b-tick", "@every 100ms", "b")
    assert once_info(r)["once_queues"] == 2
    assert r.rename("a", "b")
    assert once_info(r)["once_queues"] == 1
    wait_ready_on_time(r, "b", delayed)
    wait_dead_by_expiry(r, "b", leased)
    assert inspect(r, "b", b_delayed) is None, "the overwritten queue's job is still there"
    let_timer_run(r, 400)
    assert [s[1] for s in r.execute_command("ONCE.SCHEDULES", "b")] == ["tick"]
    assert_gone(srv, r, "a")
    assert_clean(srv)


def test_move_timer_follows_to_the_other_db(srv):
    r0, r3 = client(srv, 0), client(srv, 3)
    delayed, leased = with_timer_work(r0, "q")
    assert r0.move("q", 3)
    wait_ready_on_time(r3, "q", delayed)
    wait_dead_by_expiry(r3, "q", leased)
    before = stats(r3, "q")["pushed_total"]
    wait_until(lambda: stats(r3, "q")["pushed_total"] >= before + 2, timeout=2, what="cron ticks in db 3")
    let_timer_run(r0, 400)
    assert_gone(srv, r0, "q")
    assert once_info(r0)["once_queues"] == 1
    assert_clean(srv)


def test_swapdb_timer_follows_both_databases(srv):
    r0, r1 = client(srv, 0), client(srv, 1)
    d0, l0 = with_timer_work(r0, "zero")
    d1, l1 = with_timer_work(r1, "one", delay=700, lease=700)
    assert r0.swapdb(0, 1)
    wait_ready_on_time(r1, "zero", d0)
    wait_ready_on_time(r0, "one", d1)
    wait_dead_by_expiry(r1, "zero", l0)
    wait_dead_by_expiry(r0, "one", l1)
    let_timer_run(r0, 400)
    assert_gone(srv, r0, "zero")
    assert_gone(srv, r1, "one")
    assert r0.keys("*") == ["one"] and r1.keys("*") == ["zero"]
    assert once_info(r0)["once_queues"] == 2
    assert_clean(srv)


# ---- copies: COPY, DUMP/RESTORE ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dest_db", [0, 2])
def test_copy_is_independent_and_served_by_the_timer(srv, dest_db):
    r = client(srv)
    rc = client(srv, dest_db)
    fill_every_state(r, "src", tag="c")
    delayed = push(r, "src", "soon", "DELAY", 1000)
    leased = push(r, "src", "short lease", "RETRIES", 0, "PRIORITY", 100000)
    assert reserve(r, "src", "LEASE", 1000)[0][0] == leased
    assert r.copy("src", "dst", destination_db=dest_db if dest_db else None)
    assert once_info(r)["once_queues"] == 2
    assert digest_value(rc, "dst") == digest_value(r, "src")
    assert stats(rc, "dst") == stats(r, "src")
    # the copy's timer work is its own
    wait_ready_on_time(rc, "dst", delayed)
    wait_dead_by_expiry(rc, "dst", leased)
    assert state(r, "src", delayed) == "ready" and state(r, "src", leased) == "dead"
    assert digest_value(rc, "dst") == digest_value(r, "src")
    # a change to one leaves the other alone
    got = reserve(r, "src", "COUNT", 2, "LEASE", 60000)
    assert r.execute_command("ONCE.ACK", "src", got[0][0]) == 1
    assert digest_value(rc, "dst") != digest_value(r, "src")
    assert inspect(rc, "dst", got[0][0])["state"] == "ready"
    assert inspect(r, "src", got[0][0]) is None
    push(rc, "dst", "only in the copy", "ID", "only-copy")
    assert inspect(r, "src", "only-copy") is None
    assert stats(r, "src")["pushed_total"] + 1 == stats(rc, "dst")["pushed_total"]
    r.delete("src")
    assert stats(rc, "dst")["ready"] > 0
    assert once_info(r)["once_queues"] == 1
    assert_clean(srv)


def test_copy_replace_over_a_queue(srv):
    r = client(srv)
    delayed = push(r, "src", "soon", "DELAY", 300)
    push(r, "dst", "old", "ID", "old-job")
    assert r.copy("src", "dst", replace=True)
    assert once_info(r)["once_queues"] == 2
    assert inspect(r, "dst", "old-job") is None
    wait_ready_on_time(r, "dst", delayed)
    assert_clean(srv)


def test_dump_restore_round_trip_and_timer(srv):
    r = client(srv)
    rb = srv.client(protocol=2)
    fill_every_state(r, "src", tag="d")
    delayed = push(r, "src", "soon", "DELAY", 1000)
    payload = rb.dump("src")
    assert rb.restore("copy", 0, payload) in (True, b"OK")
    assert digest_value(r, "copy") == digest_value(r, "src")
    assert stats(r, "copy") == stats(r, "src")
    wait_ready_on_time(r, "copy", delayed)
    # REPLACE over an existing queue, and a TTL given to RESTORE
    push(r, "other", "x", "ID", "replaced-job")
    assert rb.restore("other", 5000, payload, replace=True) in (True, b"OK")
    assert inspect(r, "other", "replaced-job") is None
    assert 0 < r.pttl("other") <= 5000
    assert once_info(r)["once_queues"] == 3
    assert_clean(srv)


@pytest.mark.parametrize("copy", [False, True], ids=["move", "copy"])
def test_migrate_to_another_server(make_server, copy):
    """MIGRATE carries a queue to another server (DUMP + RESTORE there): the target's timer serves it."""
    source, target = make_server(), make_server()
    r, t = client(source), client(target)
    fill_every_state(r, "q", tag="m")
    delayed, leased = with_timer_work(r, "q", delay=1000, lease=1000)
    before = digest_value(r, "q")
    assert r.migrate("127.0.0.1", target.port, "q", 0, 5000, copy=copy) in (True, "OK", b"OK")
    assert digest_value(t, "q") == before
    assert r.exists("q") == (1 if copy else 0)
    assert once_info(r)["once_queues"] == (1 if copy else 0)
    assert once_info(t)["once_queues"] == 1
    wait_ready_on_time(t, "q", delayed)
    wait_dead_by_expiry(t, "q", leased)
    assert_clean(source)
    assert_clean(target)


# ---- DEBUG DIGEST-VALUE and MEMORY USAGE --------------------------------------------------------------------------

# The fields of a job: seq created state attempts retries backoff lease priority deadline payload id last_error
BASE_JOB = ["7", "1700000000000", "delayed", "2", "5", "1000", "30000", "3", str(4102444800000), "payload", "cid",
            "oops"]
JOB_VARIANTS = {
    "seq": (0, "8"), "created": (1, "1700000000001"), "state": (2, "reserved"), "attempts": (3, "3"),
    "retries": (4, "6"), "backoff": (5, "1001"), "lease": (6, "30001"), "priority": (7, "4"),
    "deadline": (8, str(4102444800001)), "payload": (9, "payloae"), "id": (10, "cie"),
    "no id": (10, ""), "last_error": (11, "oopt"), "no last_error": (11, ""),
}
# ONCE._META key next_seq pushed reserved acked nacked expired retried dead
BASE_META = ["100", "10", "9", "8", "7", "6", "5", "4"]
# ONCE._SCHED key name spec tz payload retries backoff lease priority missed next_fire last_fire
BASE_SCHED = ["nightly", "0 0 1 1 *", "UTC", "cron-payload", "3", "1000", "0", "0", "once", str(4102444800000),
              "-1"]
SCHED_VARIANTS = {
    "name": (0, "nightlz"), "spec": (1, "0 0 2 1 *"), "tz": (2, "Europe/Paris"), "payload": (3, "cron-payloae"),
    "retries": (4, "4"), "backoff": (5, "1001"), "lease": (6, "5"), "priority": (7, "1"), "missed": (8, "skip"),
    "next_fire": (9, str(4102444800001)), "last_fire": (10, "1700000000000"),
}


def load_job(r, key, fields, mode="LOAD"):
    """ONCE._JOB key "<mode> <9 numbers>" payload [ID id] [ERROR text], from the 12 fields above."""
    header = " ".join([mode, *fields[:9]])
    extra = []
    if fields[10]:
        extra += ["ID", fields[10]]
    if fields[11]:
        extra += ["ERROR", fields[11]]
    r.execute_command("ONCE._JOB", key, header, fields[9], *extra)


def build(r, key, job=BASE_JOB, meta=BASE_META, sched=BASE_SCHED):
    load_job(r, key, job)
    load_job(r, key, ["1", "1700000000000", "ready", "0", "3", "1000", "0", "0", "0", "ready-one", "", ""])
    r.execute_command("ONCE._SCHED", key, *sched)
    r.execute_command("ONCE._META", key, *meta)


def test_digest_value_mixes_in_every_field(srv):
    r = client(srv)
    build(r, "base")
    build(r, "base-again")
    base = digest_value(r, "base")
    assert base == digest_value(r, "base-again"), "two identical queues digest differently"
    assert base != digest_value(r, "missing-key")
    same_as_base = []
    for name, (i, value) in JOB_VARIANTS.items():
        job = list(BASE_JOB)
        job[i] = value
        build(r, f"job-{name}", job=job)
        if digest_value(r, f"job-{name}") == base:
            same_as_base.append(f"job {name}")
    for i in range(len(BASE_META)):
        meta = list(BASE_META)
        meta[i] = str(int(meta[i]) + 1)
        build(r, f"meta-{i}", meta=meta)
        if digest_value(r, f"meta-{i}") == base:
            same_as_base.append(f"counter #{i} of ONCE._META")
    for name, (i, value) in SCHED_VARIANTS.items():
        sched = list(BASE_SCHED)
        sched[i] = value
        build(r, f"sched-{name}", sched=sched)
        if digest_value(r, f"sched-{name}") == base:
            same_as_base.append(f"schedule {name}")
    assert not same_as_base, f"DEBUG DIGEST-VALUE ignores: {same_as_base}"


def test_digest_value_follows_ready_order(srv):
    """Two queues with the same jobs whose ready line is in a different order are different queues."""
    r = client(srv)

    def load(key, order):
        for jid in order:
            seq, payload = ("0", "x") if jid == "a" else ("1", "y")
            load_job(r, key, [seq, "1700000000000", "ready", "0", "3", "1000", "0", "0", "0", payload, jid, ""])

    for suffix in ("", "-check"):
        load("ab" + suffix, ["a", "b"])
        load("ba" + suffix, ["b", "a"])
    assert reserve(r, "ab-check")[0][0] == "a" and reserve(r, "ba-check")[0][0] == "b"
    assert stats(r, "ab") == stats(r, "ba")
    assert digest_value(r, "ab") != digest_value(r, "ba"), \
        "DEBUG DIGEST-VALUE is blind to the order of the ready line (each job is its own XORed sequence)"


def test_digest_value_changes_with_state(srv):
    r = client(srv)
    job_id = push(r, "q", "p")
    d0 = digest_value(r, "q")
    reserve(r, "q", "LEASE", 60000)
    d1 = digest_value(r, "q")
    r.execute_command("ONCE.EXTEND", "q", job_id, 120000)
    d2 = digest_value(r, "q")
    r.execute_command("ONCE.ACK", "q", job_id)
    d3 = digest_value(r, "q")
    assert len({tuple(d0), tuple(d1), tuple(d2), tuple(d3)}) == 4


def test_memory_usage_follows_payload_size(srv):
    r = client(srv)
    for key, size in (("small", 10), ("big", 10_000)):
        pipe = r.pipeline(transaction=False)
        for i in range(200):
            pipe.execute_command("ONCE.PUSH", key, "x" * size)
        pipe.execute()
    small = r.memory_usage("small", samples=0)
    big = r.memory_usage("big", samples=0)
    print(f"\n{srv.kind}: MEMORY USAGE small {small}, big {big}")
    assert small > 200 * 10
    assert big >= small + 200 * (10_000 - 10), (small, big)
    assert big < 3 * 200 * 10_000, "MEMORY USAGE far above the data held"
    # grows with more jobs, and with ids and error texts
    pipe = r.pipeline(transaction=False)
    for i in range(100):
        pipe.execute_command("ONCE.PUSH", "big", "x" * 10_000)
    pipe.execute()
    assert r.memory_usage("big", samples=0) >= big + 100 * 10_000
    ids = r.memory_usage("small", samples=0)
    for i in range(50):
        push(r, "small", "x", "ID", f"{i:03d}" + "i" * 250)
    assert r.memory_usage("small", samples=0) >= ids + 50 * 250
    # an emptied queue is small again
    empty = push(r, "empty", "y" * 100_000)
    reserve(r, "empty", "LEASE", 60000)
    assert r.memory_usage("empty", samples=0) > 100_000
    r.execute_command("ONCE.ACK", "empty", empty)
    assert r.memory_usage("empty", samples=0) < 50_000


# ---- blocked clients and keyspace changes ---------------------------------------------------------------------------

def _blocked_reserve(server, key, out, block_ms=3000):
    import threading

    def worker():
        c = client(server)
        try:
            out["got"] = c.execute_command("ONCE.RESERVE", key, "BLOCK", block_ms)
        except Exception as e:  # noqa: BLE001 - checked by the test
            out["error"] = str(e)
        c.close()

    t = threading.Thread(target=worker, daemon=True)
    t.start()
    wait_until(lambda: client(server).info("clients")["blocked_clients"] >= 1, timeout=3, what="client blocked")
    return t


def test_blocked_reserve_stays_on_its_key_across_rename(srv):
    r = client(srv)
    push(r, "k", "first", "DELAY", FAR_DELAY)
    out = {}
    t = _blocked_reserve(srv, "k", out)
    assert r.rename("k", "k2")
    push(r, "k2", "under the new name")              # not the key the client waits on
    job_id = push(r, "k", "under the old name")     # a new queue at the old name wakes it
    t.join(5)
    assert out.get("got") == [[job_id, "under the old name", 1]], out
    assert_clean(srv)


@pytest.mark.parametrize("op", ["del", "flushall", "set-string", "swapdb"])
def test_blocked_reserve_survives_the_key_going_away(srv, op):
    r = client(srv)
    push(r, "k", "delayed", "DELAY", FAR_DELAY)
    out = {}
    t = _blocked_reserve(srv, "k", out, block_ms=800)
    if op == "del":
        r.delete("k")
    elif op == "flushall":
        r.flushall()
    elif op == "set-string":
        r.delete("k")
        r.set("k", "now a string")
    else:
        in_db1 = client(srv, 1).execute_command("ONCE.PUSH", "k", "in db 1")
        r.swapdb(0, 1)
    t.join(5)
    assert not t.is_alive()
    if op == "swapdb":
        # the key the client waits on now holds db 1's queue with a ready job: serving it is right, so is waiting
        assert "error" not in out and out.get("got") in (None, [[in_db1, "in db 1", 1]]), out
    elif op == "set-string":
        assert out.get("got") is None or "WRONGTYPE" in out.get("error", ""), out
    else:
        assert out.get("got") is None and "error" not in out, out
    assert_clean(srv)


FAR_DELAY = 10 ** 9
