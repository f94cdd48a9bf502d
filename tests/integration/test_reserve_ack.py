"""ONCE.RESERVE (COUNT, LEASE, order, null reply, ACK option) and ONCE.ACK."""
from helpers import inspect, push, reserve, reserve_one, server_ms, state, stats, wait_until


def test_reserve_empty_queue_is_null(r, r3, key):
    assert reserve(r, key) is None          # missing key, RESP2 *-1
    assert reserve(r3, key) is None         # RESP3 null
    push(r, key, "p")
    reserve_one(r, key)
    assert reserve(r, key) is None          # existing key, nothing ready
    assert reserve(r3, key, "COUNT", 5) is None


def test_reserve_reply_shape_and_state(r, key):
    job_id = push(r, key, "payload-1")
    before = server_ms(r)
    got = reserve(r, key)
    after = server_ms(r)
    assert got == [[job_id, "payload-1", 1]]
    assert isinstance(got[0][2], int)
    job = inspect(r, key, job_id)
    assert job["state"] == "reserved"
    assert job["attempts"] == 1
    assert job["due"] is None
    assert before + 30000 <= job["lease_deadline"] <= after + 30000   # once.default-lease-ms
    s = stats(r, key)
    assert (s["ready"], s["reserved"], s["reserved_total"]) == (0, 1, 1)


def test_reserve_without_count_takes_one(r, key):
    a = push(r, key, "a")
    push(r, key, "b")
    assert reserve(r, key) == [[a, "a", 1]]
    assert stats(r, key)["ready"] == 1


def test_reserve_count(r, key):
    ids = [push(r, key, f"p{i}") for i in range(5)]
    got = reserve(r, key, "COUNT", 3)
    assert got == [[ids[i], f"p{i}", 1] for i in range(3)]
    got = reserve(r, key, "count", 10)
    assert got == [[ids[i], f"p{i}", 1] for i in range(3, 5)]
    assert reserve(r, key, "COUNT", 10) is None
    s = stats(r, key)
    assert (s["reserved"], s["reserved_total"], s["ready"]) == (5, 5, 0)


def test_reserve_priority_then_fifo(r, key):
    a = push(r, key, "a")
    b = push(r, key, "b", "PRIORITY", 5)
    c = push(r, key, "c")
    d = push(r, key, "d", "PRIORITY", 5)
    e = push(r, key, "e", "PRIORITY", -1)
    f = push(r, key, "f", "PRIORITY", 1000000)
    got = [job[0] for job in reserve(r, key, "COUNT", 10)]
    assert got == [f, b, d, a, c, e]


def test_reserve_order_one_at_a_time(r, key):
    low = push(r, key, "low", "PRIORITY", -3)
    first = push(r, key, "first")
    high = push(r, key, "high", "PRIORITY", 2)
    second = push(r, key, "second")
    assert [reserve_one(r, key)[0] for _ in range(4)] == [high, first, second, low]


def test_promoted_delayed_job_joins_the_back(r, key):
    late = push(r, key, "late", "DELAY", 100)
    early = push(r, key, "early")
    wait_until(lambda: state(r, key, late) == "ready", what="delayed job promoted")
    after = push(r, key, "after")
    got = [job[0] for job in reserve(r, key, "COUNT", 10)]
    assert got == [early, late, after]


def test_reserve_lease_option(r, key):
    job_id = push(r, key, "p", "LEASE", 90000)
    before = server_ms(r)
    reserve(r, key, "LEASE", 5000)               # RESERVE's LEASE wins over the job's
    after = server_ms(r)
    assert before + 5000 <= inspect(r, key, job_id)["lease_deadline"] <= after + 5000


def test_reserve_uses_job_lease_over_default(r, key):
    job_id = push(r, key, "p", "LEASE", 7000)
    before = server_ms(r)
    reserve(r, key)
    after = server_ms(r)
    assert before + 7000 <= inspect(r, key, job_id)["lease_deadline"] <= after + 7000


def test_reserve_skips_delayed_and_reserved(r, key):
    push(r, key, "d", "DELAY", 60000)
    taken = push(r, key, "t")
    reserve_one(r, key)
    ready = push(r, key, "r")
    assert reserve(r, key, "COUNT", 10) == [[ready, "r", 1]]
    assert inspect(r, key, taken)["state"] == "reserved"


def test_reserve_with_ack_option_acks_then_fetches(r, key):
    a = push(r, key, "a")
    b = push(r, key, "b")
    assert reserve_one(r, key)[0] == a
    assert reserve(r, key, "ACK", a) == [[b, "b", 1]]
    assert inspect(r, key, a) is None
    s = stats(r, key)
    assert (s["acked_total"], s["reserved"], s["reserved_total"]) == (1, 1, 2)
    # the ack happens even when nothing is left to fetch
    assert reserve(r, key, "ACK", b) is None
    assert inspect(r, key, b) is None
    assert stats(r, key)["acked_total"] == 2


def test_ack_counts_completed_jobs(r, key):
    ids = [push(r, key, f"p{i}") for i in range(3)]
    reserve(r, key, "COUNT", 3)
    assert r.execute_command("ONCE.ACK", key, ids[0], ids[1], "no-such-id") == 2
    assert inspect(r, key, ids[0]) is None and inspect(r, key, ids[1]) is None
    assert inspect(r, key, ids[2])["state"] == "reserved"
    s = stats(r, key)
    assert (s["reserved"], s["acked_total"]) == (1, 2)
    assert r.execute_command("ONCE.ACK", key, ids[0]) == 0      # already acked
    assert r.execute_command("ONCE.ACK", key, ids[2]) == 1
    s = stats(r, key)
    assert (s["reserved"], s["acked_total"], s["ready"]) == (0, 3, 0)


def test_ack_same_id_twice_counts_once(r, key):
    a = push(r, key, "a")
    reserve_one(r, key)
    assert r.execute_command("ONCE.ACK", key, a, a) == 1
    assert stats(r, key)["acked_total"] == 1


def test_ack_unknown_ids_count_zero(r, key):
    push(r, key, "p")
    assert r.execute_command("ONCE.ACK", key, "nope", "0-0", "x") == 0
    assert stats(r, key)["acked_total"] == 0


def test_ack_of_job_not_reserved_counts_zero(r, key):
    ready = push(r, key, "ready")
    delayed = push(r, key, "delayed", "DELAY", 60000)
    dead = push(r, key, "dead", "RETRIES", 0, "PRIORITY", 10)
    assert reserve_one(r, key)[0] == dead
    assert r.execute_command("ONCE.NACK", key, dead) == 1
    assert r.execute_command("ONCE.ACK", key, ready, delayed, dead) == 0
    assert inspect(r, key, ready)["state"] == "ready"
    assert inspect(r, key, delayed)["state"] == "delayed"
    assert inspect(r, key, dead)["state"] == "dead"
    s = stats(r, key)
    assert (s["ready"], s["delayed"], s["dead"], s["acked_total"]) == (1, 1, 1, 0)


def test_acked_job_is_not_delivered_again(r, key):
    a = push(r, key, "a")
    reserve_one(r, key)
    assert r.execute_command("ONCE.ACK", key, a) == 1
    assert reserve(r, key) is None
    s = stats(r, key)
    assert sum(s[k] for k in ("ready", "delayed", "reserved", "dead")) == 0
