"""Flow control (issue 15): CONCURRENCY, RATE n PER ms (an exact sliding window), groups served round-robin
(PUSH GROUP, GROUP-CONCURRENCY, GROUP-RATE, ONCE.GROUP overrides, ONCE.GROUPS paging); blocked reservers served
when capacity frees or the rate allows; all of it survives DEBUG RELOAD, an AOF rewrite + restart and a replica
(with its own AOF); bad input is refused and changes nothing."""
import threading
import time

import pytest
import redis

from durability_helpers import RespPipe, attach_replica, digest, digest_value, fast_restart, wait_in_sync
from helpers import as_map, inspect, push, reserve, stats, wait_until


def wait_blocked(r, n, timeout=3.0):
    wait_until(lambda: r.info("clients")["blocked_clients"] >= n, timeout=timeout, what=f"{n} blocked clients")


def group(r, queue, name, *opts):
    return as_map(r.execute_command("ONCE.GROUP", queue, name, *opts))


def groups_page(r, queue, *opts):
    cursor, items = r.execute_command("ONCE.GROUPS", queue, *opts)
    return cursor, [as_map(g) for g in items]


def all_groups(r, queue, count=7):
    out, cursor = [], "0"
    while True:
        cursor, items = groups_page(r, queue, "CURSOR", cursor, "COUNT", count)
        out += items
        if cursor == "0":
            return out


def settings(r, queue, *opts):
    return as_map(r.execute_command("ONCE.CONFIGURE", queue, *opts))


def ids_of(got):
    return [g[0] for g in (got or [])]


def payloads_of(got):
    return [g[1] for g in (got or [])]


def pipe_push(server, queue, payloads_and_groups):
    p = RespPipe(server.port)
    try:
        cmds = [["ONCE.PUSH", queue, pl] + (["GROUP", g] if g is not None else []) for pl, g in payloads_and_groups]
        return p.run(cmds)
    finally:
        p.close()


def still(predicate, for_s=0.2, interval=0.01):
    """`predicate` holds during all of `for_s` seconds."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        assert predicate()
        time.sleep(interval)
    return True


# ---- CONCURRENCY -------------------------------------------------------------------------------------------

def test_concurrency_2_serves_two_of_five_blocked_workers_and_each_ack_one_more(server, r, key):
    assert settings(r, key, "CONCURRENCY", 2)["concurrency"] == 2
    served = []                      # (worker index, job id) in the order replies arrived
    lock = threading.Lock()

    def worker(i):
        c = server.client(decode_responses=True, protocol=2, socket_timeout=10)
        got = c.execute_command("ONCE.RESERVE", key, "BLOCK", 5000)
        with lock:
            served.append((i, ids_of(got), payloads_of(got)))
        c.close()

    base = r.info("clients")["blocked_clients"]
    threads = []
    for i in range(5):               # one after the other, so the blocking order is known
        t = threading.Thread(target=worker, args=(i,), daemon=True)
        t.start()
        threads.append(t)
        wait_blocked(r, base + i + 1)
    pipe_push(server, key, [(f"job{i}", None) for i in range(10)])
    n = lambda: len(served)          # noqa: E731
    wait_until(lambda: n() == 2, timeout=1, what="two workers served")
    still(lambda: n() == 2, 0.3)
    # first come first served: the first blocked got the first job
    assert sorted((w, p) for w, _, p in served) == [(0, ["job0"]), (1, ["job1"])], served
    assert stats(r, key)["reserved"] == 2 and stats(r, key)["ready"] == 8
    for k in range(3):
        job = served[k][1][0]
        assert r.execute_command("ONCE.ACK", key, job) == 1
        wait_until(lambda: n() == 3 + k, timeout=1, what=f"one more worker served after ACK {k + 1}")
        still(lambda: n() == 3 + k, 0.2)
        assert stats(r, key)["reserved"] == 2
    assert [w for w, _, _ in served[2:]] == [2, 3, 4]
    assert [p for _, _, p in served[2:]] == [["job2"], ["job3"], ["job4"]]
    for t in threads:
        t.join(5)
    # No one waits any more: a non-blocking RESERVE is refused while 2 are out, served after an ACK.
    assert not reserve(r, key)
    assert r.execute_command("ONCE.ACK", key, served[3][1][0]) == 1
    assert len(reserve(r, key, "COUNT", 10)) == 1
    assert stats(r, key)["reserved"] == 2


def test_concurrency_frees_on_nack_and_lease_expiry(server, r, key):
    settings(r, key, "CONCURRENCY", 1)
    for i in range(3):
        push(r, key, f"p{i}")
    (a,) = ids_of(reserve(r, key, "COUNT", 5, "LEASE", 200))
    assert not reserve(r, key)
    assert r.execute_command("ONCE.NACK", key, a) == 1
    got = reserve(r, key, "COUNT", 5, "LEASE", 200)
    assert len(got) == 1
    t0 = time.monotonic()
    got = r.execute_command("ONCE.RESERVE", key, "BLOCK", 3000)     # served when the 200 ms lease expires
    assert len(got) == 1 and time.monotonic() - t0 < 2


def test_reserve_count_returns_fewer_under_concurrency(r, key):
    settings(r, key, "CONCURRENCY", 3)
    for i in range(10):
        push(r, key, f"p{i}")
    assert payloads_of(reserve(r, key, "COUNT", 10)) == ["p0", "p1", "p2"]
    assert not reserve(r, key, "COUNT", 10)
    settings(r, key, "CONCURRENCY", 0)               # 0: no limit
    assert len(reserve(r, key, "COUNT", 10)) == 7


# ---- RATE ------------------------------------------------------------------------------------------------

def test_rate_10_per_1000_over_3s_of_eager_workers(server, r, key):
    settings(r, key, "RATE", 10, "PER", 1000, "EVENTS-MAX", 10000)
    pipe_push(server, key, [(f"p{i}", None) for i in range(200)])
    seen = []
    lock = threading.Lock()
    stop = time.monotonic() + 3.0

    def worker():
        c = server.client(decode_responses=True, protocol=2, socket_timeout=10)
        while time.monotonic() < stop:
            got = c.execute_command("ONCE.RESERVE", key, "BLOCK", 200)
            if got:
                with lock:
                    seen.append((time.monotonic(), got[0][0]))
                assert c.execute_command("ONCE.ACK", key, got[0][0]) == 1
        c.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert 20 <= len(seen) <= 40, len(seen)
    assert len({j for _, j in seen}) == len(seen)
    # The server's reservation times (event log): no 1000 ms window holds more than 10.
    events = r.execute_command("ONCE.EVENTS", key, "COUNT", 10000)
    times = sorted(e[4] for e in events if e[1] == "reserve")
    assert len(times) == stats(r, key)["reserved_total"] >= len(seen)
    for i in range(len(times) - 10):
        assert times[i + 10] - times[i] >= 1000, (i, times[i:i + 11])
    # ... and the clients saw the same (with some slack for the network).
    ct = sorted(t for t, _ in seen)
    for i in range(len(ct) - 10):
        assert ct[i + 10] - ct[i] >= 0.95, (i, ct[i:i + 11])
    # The window is used: each of the three seconds served (about) 10.
    assert times[-1] - times[0] >= 2000 and len(times) >= 30 - 1, times


def test_rate_burst_then_the_next_when_the_oldest_is_per_old_and_blocked_is_served_by_the_timer(server, r, key):
    settings(r, key, "RATE", 3, "PER", 600, "EVENTS-MAX", 100)
    for i in range(10):
        push(r, key, f"p{i}")
    t0 = time.monotonic()
    assert payloads_of(reserve(r, key, "COUNT", 10)) == ["p0", "p1", "p2"]     # up to n at once
    assert not reserve(r, key, "COUNT", 10)
    # A blocked RESERVE is served when the window allows (~600 ms after the first), by the server's timer.
    got = r.execute_command("ONCE.RESERVE", key, "BLOCK", 3000, "COUNT", 10)
    elapsed = time.monotonic() - t0
    assert payloads_of(got) == ["p3", "p4", "p5"], got
    assert 0.5 <= elapsed <= 1.2, elapsed
    times = [e[4] for e in r.execute_command("ONCE.EVENTS", key, "COUNT", 100) if e[1] == "reserve"]
    assert len(times) == 6 and times[3] - times[0] >= 600, times


def test_a_waiting_reserver_is_served_when_the_rate_allows_first_come_first_served(server, r, key):
    settings(r, key, "RATE", 1, "PER", 400)
    for i in range(5):
        push(r, key, f"p{i}")
    assert len(reserve(r, key)) == 1
    order = []
    lock = threading.Lock()

    def worker(i):
        c = server.client(decode_responses=True, protocol=2, socket_timeout=10)
        got = c.execute_command("ONCE.RESERVE", key, "BLOCK", 5000)
        with lock:
            order.append((i, time.monotonic(), payloads_of(got)))
        c.close()

    base = r.info("clients")["blocked_clients"]
    t0 = time.monotonic()
    threads = []
    for i in range(3):
        t = threading.Thread(target=worker, args=(i,), daemon=True)
        t.start()
        threads.append(t)
        wait_blocked(r, base + i + 1)
    for t in threads:
        t.join(5)
    assert [o[0] for o in order] == [0, 1, 2]
    assert [o[2] for o in order] == [["p1"], ["p2"], ["p3"]]
    gaps = [order[0][1] - t0] + [order[i][1] - order[i - 1][1] for i in (1, 2)]
    assert all(0.25 <= g <= 0.8 for g in gaps[1:]), gaps


# ---- groups ------------------------------------------------------------------------------------------------

def test_10000_of_a_then_10_of_b_the_first_20_reservations_hold_all_of_b(server, r, key):
    pipe_push(server, key, [(f"a{i}", "A") for i in range(10000)] + [(f"b{i}", "B") for i in range(10)])
    got = reserve(r, key, "COUNT", 20)
    pl = payloads_of(got)
    assert len(pl) == 20
    assert sorted(p for p in pl if p.startswith("b")) == sorted(f"b{i}" for i in range(10)), pl
    assert [p for p in pl if p.startswith("a")] == [f"a{i}" for i in range(10)], "FIFO within a group"
    assert group(r, key, "A")["ready"] == 9990 and group(r, key, "B") == {
        "name": "B", "ready": 0, "reserved": 10, "concurrency": None, "rate": None, "rate_per": None}


def test_20_single_reserves_alternate_groups_and_the_default_group_takes_its_turn(server, r, key):
    pipe_push(server, key, [(f"a{i}", "A") for i in range(100)] + [(f"b{i}", "B") for i in range(5)]
              + [(f"d{i}", None) for i in range(5)])
    pl = [payloads_of(reserve(r, key))[0] for _ in range(15)]
    assert sorted(p for p in pl if p[0] == "b") == [f"b{i}" for i in range(5)], pl
    assert sorted(p for p in pl if p[0] == "d") == [f"d{i}" for i in range(5)], pl
    # round-robin: in any 3 consecutive reservations (while all three have jobs) each group appears once
    for i in range(0, 15, 3):
        assert sorted(p[0] for p in pl[i:i + 3]) == ["a", "b", "d"], pl


def test_priority_then_fifo_within_a_group(r, key):
    push(r, key, "x0", "GROUP", "g")
    push(r, key, "x1", "GROUP", "g", "PRIORITY", 5)
    push(r, key, "x2", "GROUP", "g")
    push(r, key, "x3", "GROUP", "g", "PRIORITY", 5)
    assert payloads_of(reserve(r, key, "COUNT", 10)) == ["x1", "x3", "x0", "x2"]


def test_group_concurrency_1_and_an_override_wins(r, key):
    settings(r, key, "GROUP-CONCURRENCY", 1)
    for g in ("g1", "g2", "g3"):
        for i in range(5):
            push(r, key, f"{g}-{i}", "GROUP", g)
    got = reserve(r, key, "COUNT", 10)
    assert sorted(payloads_of(got)) == ["g1-0", "g2-0", "g3-0"], got
    assert not reserve(r, key, "COUNT", 10)
    # an ACK in g2 lets g2 (only) go on
    g2 = [g[0] for g in got if g[1].startswith("g2")][0]
    assert r.execute_command("ONCE.ACK", key, g2) == 1
    assert payloads_of(reserve(r, key, "COUNT", 10)) == ["g2-1"]
    # the override: g1 may have 3 out at once
    g1 = group(r, key, "g1", "CONCURRENCY", 3)
    assert (g1["concurrency"], g1["reserved"], g1["ready"]) == (3, 1, 4)
    assert payloads_of(reserve(r, key, "COUNT", 10)) == ["g1-1", "g1-2"]
    assert group(r, key, "g1")["reserved"] == 3 and group(r, key, "g3")["reserved"] == 1
    assert not reserve(r, key, "COUNT", 10)
    # RESET drops it: back to the queue's 1 (3 out stay out, nothing new)
    assert group(r, key, "g1", "RESET")["concurrency"] is None
    assert not reserve(r, key, "COUNT", 10)
    # an override of 0 means no limit for that group even under GROUP-CONCURRENCY 1
    group(r, key, "g3", "CONCURRENCY", 0)
    assert payloads_of(reserve(r, key, "COUNT", 10)) == ["g3-1", "g3-2", "g3-3", "g3-4"]


def test_group_rate_and_an_override(r, key):
    settings(r, key, "GROUP-RATE", 2, "PER", 60000)
    for g in ("a", "b"):
        for i in range(5):
            push(r, key, f"{g}{i}", "GROUP", g)
    assert sorted(payloads_of(reserve(r, key, "COUNT", 10))) == ["a0", "a1", "b0", "b1"]
    assert not reserve(r, key, "COUNT", 10)
    b = group(r, key, "b", "RATE", 4, "PER", 60000)
    assert (b["rate"], b["rate_per"], b["concurrency"]) == (4, 60000, None)
    assert payloads_of(reserve(r, key, "COUNT", 10)) == ["b2", "b3"]
    assert not reserve(r, key, "COUNT", 10)


def test_queue_limits_bound_all_groups(r, key):
    settings(r, key, "CONCURRENCY", 4)
    for g in ("a", "b", "c"):
        for i in range(3):
            push(r, key, f"{g}{i}", "GROUP", g)
    assert sorted(payloads_of(reserve(r, key, "COUNT", 10))) == ["a0", "a1", "b0", "c0"]
    assert not reserve(r, key, "COUNT", 10)


def test_group_reads_groups_pages_and_the_group_field(server, r, key):
    assert group(r, key, "nobody") == {"name": "nobody", "ready": 0, "reserved": 0, "concurrency": None,
                                       "rate": None, "rate_per": None}
    assert r.exists(key) == 0, "reading a group creates nothing"
    assert r.execute_command("ONCE.GROUPS", key) == ["0", []]
    names = [f"t{i:02d}" for i in range(25)]
    pipe_push(server, key, [(f"p-{n}", n) for n in reversed(names)] + [("plain", None)])
    got = all_groups(r, key, 10)
    assert [g["name"] for g in got] == names, "by name; the default group is not listed"
    assert all(g["ready"] == 1 and g["reserved"] == 0 for g in got)
    assert stats(r, key)["groups"] == 25
    cursor, first = groups_page(r, key, "COUNT", 10)
    assert cursor != "0" and len(first) == 10
    _, default_count = groups_page(r, key)
    assert len(default_count) == 25              # COUNT defaults to 100
    ids = [j["id"] for j in map(as_map, r.execute_command("ONCE.LIST", key, "ready", "COUNT", 100)[1])]
    jobs = [inspect(r, key, i) for i in ids]
    assert {j["payload"]: j["group"] for j in jobs}["plain"] is None
    assert {j["payload"]: j["group"] for j in jobs}["p-t07"] == "t07"
    by_id = {j["id"]: j["payload"] for j in jobs}
    listed = {by_id[as_map(j)["id"]]: as_map(j)["group"]
              for j in r.execute_command("ONCE.LIST", key, "ready", "COUNT", 100)[1]}
    assert listed["p-t03"] == "t03" and listed["plain"] is None
    # binary and 256-byte names are fine
    long = "x" * 256
    push(r, key, "long", "GROUP", long)
    assert group(r, key, long)["ready"] == 1


def test_a_drained_group_is_freed_unless_it_has_settings_or_a_rate_window(server, r, key):
    push(r, key, "p", "GROUP", "g")
    (j,) = ids_of(reserve(r, key))
    assert stats(r, key)["groups"] == 1
    assert r.execute_command("ONCE.ACK", key, j) == 1
    assert stats(r, key)["groups"] == 0 and r.execute_command("ONCE.GROUPS", key) == ["0", []]
    # with its own settings it stays
    group(r, key, "kept", "CONCURRENCY", 2)
    assert [g["name"] for g in all_groups(r, key)] == ["kept"]
    group(r, key, "kept", "RESET")
    assert stats(r, key)["groups"] == 0
    # with a group rate, its window is kept until it ends, then freed
    settings(r, key, "GROUP-RATE", 5, "PER", 300)
    push(r, key, "w", "GROUP", "w")
    (j,) = ids_of(reserve(r, key))
    r.execute_command("ONCE.ACK", key, j)
    assert [g["name"] for g in all_groups(r, key)] == ["w"]
    time.sleep(0.4)
    push(r, key, "other")
    reserve(r, key)
    assert stats(r, key)["groups"] == 0, all_groups(r, key)
    # many of them: the timer frees them once their windows end, with no command needed (replicated, so a
    # replica frees them too)
    pipe_push(server, key, [(f"m{i}", f"m{i}") for i in range(50)])
    for j in ids_of(reserve(r, key, "COUNT", 100)):
        r.execute_command("ONCE.ACK", key, j)
    assert stats(r, key)["groups"] == 50
    deadline = time.time() + 3
    while stats(r, key)["groups"] and time.time() < deadline:
        time.sleep(0.05)
    assert stats(r, key)["groups"] == 0, all_groups(r, key)


def test_many_small_groups_cost_little_memory(server, r, key):
    """One job in each of 2,000 groups: the queue's memory grows by a small amount per group (a group is a name, a
    few counters and a ready line of one job), not by a preallocated line chunk; drained, they are freed."""
    push(r, key, "first")
    base = r.memory_usage(key)
    pipe_push(server, key, [(f"p{i}", f"tenant-{i}") for i in range(2000)])
    per_group = (r.memory_usage(key) - base) / 2000
    assert per_group < 2048, f"{per_group:.0f} bytes per one-job group"
    got = reserve(r, key, "COUNT", 5000)
    assert len(got) == 2001
    r.execute_command("ONCE.ACK", key, *ids_of(got))
    assert stats(r, key)["groups"] == 0
    assert (r.memory_usage(key) - base) / 2000 < 256, "drained groups leave little behind"


def test_settings_map_has_the_flow_fields(r3, key):
    s = settings(r3, key, "CONCURRENCY", 7, "RATE", 9, "PER", 1500, "GROUP-CONCURRENCY", 2,
                 "GROUP-RATE", 3, "PER", 250)
    assert {k: s[k] for k in ("concurrency", "rate", "rate_per", "group_concurrency", "group_rate",
                              "group_rate_per")} == {"concurrency": 7, "rate": 9, "rate_per": 1500,
                                                     "group_concurrency": 2, "group_rate": 3, "group_rate_per": 250}
    st = as_map(r3.execute_command("ONCE.STATS", key))
    assert st["concurrency"] == 7 and st["group_rate_per"] == 250 and st["groups"] == 0
    s = settings(r3, key, "RATE", 0, "PER", 1, "CONCURRENCY", 0)
    assert s["rate"] == 0 and s["concurrency"] == 0


# ---- bad input ----------------------------------------------------------------------------------------------

BAD = [
    (["ONCE.CONFIGURE", "{k}", "RATE", 5], "RATE needs PER ms: RATE n PER ms"),
    (["ONCE.CONFIGURE", "{k}", "RATE", 5, "PER", 0], "PER must be between 1 and 86400000, got 0"),
    (["ONCE.CONFIGURE", "{k}", "RATE", 5, "PER", 86400001], "PER must be between 1 and 86400000"),
    (["ONCE.CONFIGURE", "{k}", "RATE", 100001, "PER", 10], "RATE must be between 0 and 100000"),
    (["ONCE.CONFIGURE", "{k}", "GROUP-RATE", 5], "GROUP-RATE needs PER ms"),
    (["ONCE.CONFIGURE", "{k}", "CONCURRENCY", -1], "CONCURRENCY must be between 0 and 1000000, got -1"),
    (["ONCE.CONFIGURE", "{k}", "CONCURRENCY", 1000001], "CONCURRENCY must be between 0 and 1000000, got 1000001"),
    (["ONCE.CONFIGURE", "{k}", "GROUP-CONCURRENCY", 1000001], "must be between 0 and 1000000"),
    (["ONCE.CONFIGURE", "{k}", "CONCURRENCY", 5, "BOGUS", 1], "unknown option 'BOGUS'"),
    (["ONCE.PUSH", "{k}", "x", "GROUP", ""], "GROUP must be 1 to 256 bytes"),
    (["ONCE.PUSH", "{k}", "x", "GROUP", "y" * 257], "GROUP must be 1 to 256 bytes"),
    (["ONCE.GROUP", "{k}", "z" * 257], "a group name is 1 to 256 bytes"),
    (["ONCE.GROUP", "{k}", "", "CONCURRENCY", 1], "a group name is 1 to 256 bytes"),
    (["ONCE.GROUP", "{k}", "g", "CONCURRENCY", 1000001], "must be between 0 and 1000000"),
    (["ONCE.GROUP", "{k}", "g", "RATE", 3], "RATE needs PER ms"),
    (["ONCE.GROUP", "{k}", "g", "FOO"], "unknown option 'FOO'"),
    (["ONCE.GROUPS", "{k}", "CURSOR", "zz"], "invalid cursor 'zz'"),
    (["ONCE.GROUPS", "{k}", "COUNT", 0], "COUNT must be between 1 and 1000, got 0"),
    (["ONCE.GROUPS", "{k}", "COUNT", 1001], "COUNT must be between 1 and 1000"),
]


@pytest.mark.parametrize("cmd,message", BAD, ids=[" ".join(str(a)[:12] for a in c[0][::2]) + str(i)
                                                   for i, c in enumerate(BAD)])
def test_bad_input_is_refused_and_changes_nothing(r, key, cmd, message):
    settings(r, key, "CONCURRENCY", 3, "GROUP-RATE", 2, "PER", 60000)
    push(r, key, "a", "GROUP", "g")
    push(r, key, "b", "GROUP", "h")
    reserve(r, key)
    group(r, key, "g", "CONCURRENCY", 2)
    before = (digest(r), digest_value(r, key), stats(r, key))
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command(*[key if a == "{k}" else a for a in cmd])
    assert message in str(e.value)
    assert (digest(r), digest_value(r, key), stats(r, key)) == before


def test_bad_input_on_a_missing_key_creates_nothing(r, key):
    for cmd, _ in BAD:
        with pytest.raises(redis.ResponseError):
            r.execute_command(*[key if a == "{k}" else a for a in cmd])
    assert r.exists(key) == 0


# ---- durability --------------------------------------------------------------------------------------------

def next_out(r, queue, n=100):
    """What the queue would hand out next, read from a COPY (the queue itself is left alone)."""
    tmp = f"__next__:{queue}"
    assert r.copy(queue, tmp, replace=True)
    got = payloads_of(r.execute_command("ONCE.RESERVE", tmp, "COUNT", n, "LEASE", 60000))
    r.delete(tmp)
    return got


def build_flow_state(server, r):
    """A queue with named and default groups, own limits, rate windows mid-window (60 s), a moved ring."""
    r.execute_command("ONCE.CONFIGURE", "q", "CONCURRENCY", 40, "RATE", 12, "PER", 60000, "GROUP-CONCURRENCY", 3,
                      "GROUP-RATE", 4, "PER", 60000)
    pipe_push(server, "q", [(f"{g}{i}", g if g != "d" else None) for i in range(8) for g in ("a", "b", "c", "d")])
    r.execute_command("ONCE.GROUP", "q", "b", "CONCURRENCY", 5, "RATE", 6, "PER", 60000)
    r.execute_command("ONCE.GROUP", "q", "e", "CONCURRENCY", 1)               # a group with settings, no jobs
    got = r.execute_command("ONCE.RESERVE", "q", "COUNT", 5, "LEASE", 600000)
    r.execute_command("ONCE.ACK", "q", got[0][0])
    r.execute_command("ONCE.RESERVE", "q", "COUNT", 2, "LEASE", 600000)
    for g in ("c", "f"):
        push(r, "q", f"late-{g}", "GROUP", g)
    # a second queue: only the rate window is mid-window (the queue itself has nothing ready)
    r.execute_command("ONCE.CONFIGURE", "w", "RATE", 3, "PER", 60000)
    push(r, "w", "w0")
    j = r.execute_command("ONCE.RESERVE", "w")[0][0]
    r.execute_command("ONCE.ACK", "w", j)
    push(r, "w", "w1")
    push(r, "w", "w2")
    push(r, "w", "w3")


def flow_view(r):
    return {
        "digest": digest(r),
        "dv": digest_value(r, "q", "w"),
        "stats": (stats(r, "q"), stats(r, "w")),
        "groups": all_groups(r, "q", 2),
        "default": group(r, "q", "x-nothing"),
        "next_q": next_out(r, "q"),
        "next_w": next_out(r, "w"),
    }


def test_flow_state_survives_reload_rewrite_restart_and_a_replica(make_server):
    master = make_server(extra=["--appendonly", "yes"])
    replica = make_server(extra=["--appendonly", "yes"])
    attach_replica(replica, master)
    r = master.client(decode_responses=True, protocol=2)
    rr = replica.client(decode_responses=True, protocol=2)
    build_flow_state(master, r)
    wait_in_sync(r, rr)
    before = flow_view(r)
    # sanity: the state is what it should be (so the comparisons below are about something)
    assert before["stats"][0]["groups"] == 5, before["groups"]          # a, b, c, e, f
    assert before["next_w"] == ["w1", "w2"], "RATE 3: one of the window is used"
    assert [g["name"] for g in before["groups"]] == ["a", "b", "c", "e", "f"]
    assert len(before["next_q"]) == 12 - 7 and before["stats"][0]["reserved"] == 6
    assert before["next_q"][0][0] != "a", ("the ring has turned: a's turn is not next", before["next_q"])
    assert len({p[0] for p in before["next_q"]}) == len(before["next_q"]), "one job per group at a turn"
    wait_in_sync(r, rr)
    # Every check is made, then the ones that failed are named together (a replica problem must not hide a
    # reload problem, or the other way round).
    failed = []
    if (digest(rr), digest_value(rr, "q", "w")) != (before["digest"], before["dv"]):
        failed.append(("replica", {"groups": all_groups(rr, "q", 2)}))
    assert r.execute_command("DEBUG", "RELOAD") == "OK"
    if flow_view(r) != before:
        failed.append(("DEBUG RELOAD", flow_view(r)))
    r.execute_command("BGREWRITEAOF")
    wait_until(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0, timeout=10, what="rewrite")
    fast_restart(master)
    r = master.client(decode_responses=True, protocol=2)
    if flow_view(r) != before:
        failed.append(("AOF rewrite + restart", flow_view(r)))
    # The replica restarted from its own AOF holds the same.
    replica.restart()
    rr = replica.client(decode_responses=True, protocol=2)
    rr.execute_command("REPLICAOF", "NO", "ONE")
    if flow_view(rr) != before:
        failed.append(("replica's own AOF", flow_view(rr)))
    assert not failed, (before, failed)


def test_replica_follows_reservations_by_the_masters_time_and_group_changes(make_server):
    master = make_server(extra=["--appendonly", "yes"])
    replica = make_server(extra=["--appendonly", "yes"])
    attach_replica(replica, master)
    r = master.client(decode_responses=True, protocol=2)
    rr = replica.client(decode_responses=True, protocol=2)
    r.execute_command("ONCE.CONFIGURE", "q", "RATE", 5, "PER", 700, "GROUP-CONCURRENCY", 1)
    pipe_push(master, "q", [(f"{g}{i}", g) for i in range(10) for g in ("a", "b", "c")])
    for step in range(6):
        got = r.execute_command("ONCE.RESERVE", "q", "COUNT", 2)
        for j in ids_of(got)[:1]:
            r.execute_command("ONCE.ACK", "q", j)
        if step == 2:
            r.execute_command("ONCE.GROUP", "q", "b", "CONCURRENCY", 2)
        if step == 4:
            r.execute_command("ONCE.GROUP", "q", "b", "RESET")
        time.sleep(0.15)
        wait_in_sync(r, rr, stable_reads=1)
        assert digest_value(rr, "q") == digest_value(r, "q"), step
    assert all_groups(rr, "q") == all_groups(r, "q")


def test_a_group_with_own_settings_and_no_jobs_reaches_the_replica(make_server):
    """ONCE.GROUP on a group that has no jobs yet replicates as ONCE._GROUP; the replica must create it."""
    master = make_server()
    replica = make_server()
    attach_replica(replica, master)
    r = master.client(decode_responses=True, protocol=2)
    rr = replica.client(decode_responses=True, protocol=2)
    push(r, "q", "x")
    r.execute_command("ONCE.GROUP", "q", "e", "CONCURRENCY", 1)
    r.execute_command("ONCE.GROUP", "q", "f", "RATE", 5, "PER", 1000)
    wait_in_sync(r, rr)
    assert all_groups(rr, "q") == all_groups(r, "q") != []
    assert digest(rr) == digest(r)
