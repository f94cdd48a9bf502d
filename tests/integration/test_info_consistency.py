"""INFO once job counts stay equal to the sum over queues whatever happens to the keys."""
from helpers import push, reserve, stats, wait_until

STATES = ("ready", "delayed", "reserved", "dead")


def sums(r):
    """INFO once queues and per-state jobs, and the same figures summed from STATS over every queue key."""
    info = r.info("once")
    from_info = (info["once_queues"],) + tuple(info[f"once_jobs_{s}"] for s in STATES)
    queues, totals = 0, [0, 0, 0, 0]
    for db in range(16):
        c = r.connection_pool.connection_kwargs
        rc = type(r)(host=c["host"], port=c["port"], db=db, decode_responses=True, protocol=2)
        for k in rc.scan_iter(count=1000):
            if rc.type(k) not in ("string", "list", "hash", "set", "zset", "stream"):
                queues += 1
                st = stats(rc, k)
                for i, s in enumerate(STATES):
                    totals[i] += st[s]
        rc.close()
    return from_info, (queues, *totals)


def assert_consistent(r):
    from_info, from_stats = sums(r)
    assert from_info == from_stats, f"INFO {from_info} != STATS {from_stats}"
    return from_info


def settled(r, expected, what):
    """After an asynchronous flush Redis frees the values on its lazy-free thread; INFO follows when it has."""
    wait_until(lambda: sums(r)[0] == expected, timeout=5, what=what)
    return assert_consistent(r)


def client(s):
    return s.client(decode_responses=True, protocol=2)


def test_counts_after_copy_rename_move(fresh_server):
    r = client(fresh_server)
    push(r, "a", "p1")
    push(r, "a", "p2", "DELAY", 60000)
    assert assert_consistent(r) == (1, 1, 1, 0, 0)
    r.copy("a", "b")
    assert assert_consistent(r) == (2, 2, 2, 0, 0)
    r.rename("b", "c")
    assert assert_consistent(r) == (2, 2, 2, 0, 0)
    r.move("c", 3)
    assert assert_consistent(r) == (2, 2, 2, 0, 0)
    r.copy("a", "c")                   # a new 'c' in db 0 beside the moved one in db 3
    assert assert_consistent(r) == (3, 3, 3, 0, 0)
    r.copy("c", "a", replace=True)     # replaces a queue: the old 'a' is freed
    assert assert_consistent(r) == (3, 3, 3, 0, 0)


def test_counts_after_rename_over_existing_queue(fresh_server):
    r = client(fresh_server)
    push(r, "a", "p1")
    for i in range(3):
        push(r, "b", f"q{i}")
    r.rename("a", "b")                 # the old 'b' is freed
    assert assert_consistent(r) == (1, 1, 0, 0, 0)


def test_counts_after_debug_reload(fresh_server):
    r = client(fresh_server)
    for i in range(5):
        push(r, "q", f"p{i}")
    push(r, "q", "d", "DELAY", 60000)
    reserve(r, "q", "COUNT", 2)
    before = assert_consistent(r)
    assert before == (1, 3, 1, 2, 0)
    assert r.execute_command("DEBUG", "RELOAD") in (True, "OK")
    # Valkey empties the old data set asynchronously on DEBUG RELOAD.
    assert settled(r, before, "INFO once after DEBUG RELOAD") == before


def test_counts_after_restart(make_server):
    s = make_server()
    r = client(s)
    for i in range(4):
        push(r, f"q{i % 2}", f"p{i}")
    before = assert_consistent(r)
    r.save()
    r.close()
    s.restart()
    r = client(s)
    assert assert_consistent(r) == before == (2, 4, 0, 0, 0)


def push_many(r, key, n):
    p = r.pipeline(transaction=False)
    for i in range(n):
        p.execute_command("ONCE.PUSH", key, "x")
        if i % 10000 == 9999:
            p.execute()
    p.execute()


# A queue this big is freed on Redis's lazy-free thread (free_effort > 64), which takes a while: INFO must not
# count it once it has left the keyspace, whenever its memory goes.
BIG = 20000


def test_counts_after_unlink_of_a_big_queue(fresh_server):
    r = client(fresh_server)
    push_many(r, "big", BIG)
    push(r, "small", "p")
    assert assert_consistent(r) == (2, BIG + 1, 0, 0, 0)
    assert r.unlink("big") == 1
    assert assert_consistent(r) == (1, 1, 0, 0, 0)


def test_counts_after_flushall_async(fresh_server):
    r = client(fresh_server)
    push_many(r, "big", BIG)
    r.flushall(asynchronous=True)
    assert settled(r, (0, 0, 0, 0, 0), "INFO once after FLUSHALL ASYNC") == (0, 0, 0, 0, 0)
    push(r, "new", "p")
    assert assert_consistent(r) == (1, 1, 0, 0, 0)


def test_counts_after_debug_reload_of_a_big_queue(fresh_server):
    r = client(fresh_server)
    push_many(r, "big", BIG)
    assert r.execute_command("DEBUG", "RELOAD") in (True, "OK")
    assert settled(r, (1, BIG, 0, 0, 0), "INFO once after DEBUG RELOAD") == (1, BIG, 0, 0, 0)


def test_counts_after_key_expiry(fresh_server):
    r = client(fresh_server)
    push(r, "keep", "p")
    push(r, "gone", "p")
    push(r, "gone", "d", "DELAY", 60000)
    r.pexpire("gone", 30)
    wait_until(lambda: r.info("once")["once_queues"] == 1, timeout=3, what="expired queue leaves INFO")
    assert assert_consistent(r) == (1, 1, 0, 0, 0)


def test_counts_after_overwrite_by_set(fresh_server):
    r = client(fresh_server)
    push(r, "q", "p")
    push(r, "q", "p2")
    r.set("q", "now a string")
    assert assert_consistent(r) == (0, 0, 0, 0, 0)
