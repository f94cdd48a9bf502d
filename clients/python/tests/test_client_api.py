"""Every wrapper method of `Once` against a real server (redis and valkey), and the typed results it returns."""
import datetime
import re
import threading
import time

import pytest
import redis

from once import Job, JobInfo, Once, Schedule, Stats, WrongTypeError
from once_helpers import server_ms, wait_until

ID_RE = re.compile(r"^\d+-\d+$")


# --- push -----------------------------------------------------------------------------------------------------


def test_push_returns_a_server_id_and_the_job_is_ready(once):
    job_id = once.push("hello")
    assert isinstance(job_id, str) and ID_RE.match(job_id), job_id
    info = once.inspect(job_id)
    assert isinstance(info, JobInfo)
    assert info.id == job_id and info.state == "ready" and info.payload == b"hello"
    assert info.attempts == 0 and info.due is None and info.lease_deadline is None and info.last_error is None
    assert info.created > 0 and info.retries == 3 and info.priority == 0 and info.lease is None
    assert info.extra == {}, f"fields the client does not know: {info.extra}"


def test_push_accepts_str_and_bytes_payloads_and_keeps_binary_exactly(once):
    binary = bytes(range(256)) + b"\x00\r\n"
    a = once.push("h\u00e9llo \u2713")
    b = once.push(binary)
    assert once.inspect(a).payload == "h\u00e9llo \u2713".encode("utf-8")
    assert once.inspect(b).payload == binary
    assert once.inspect(a, decode=True).payload == "h\u00e9llo \u2713"
    with pytest.raises(TypeError):
        once.push(12345)


def test_push_with_a_client_id_is_idempotent(once):
    assert once.push("first", id="order-42") == "order-42"
    assert once.push("second", id="order-42") == "order-42"
    stats = once.stats()
    assert stats.ready == 1
    assert once.inspect("order-42").payload == b"first"


def test_push_options_are_stored_on_the_job(once):
    job_id = once.push("p", retries=7, backoff_ms=250, lease_ms=4000, priority=-5)
    info = once.inspect(job_id)
    assert (info.retries, info.backoff, info.lease, info.priority) == (7, 250, 4000, -5)


def test_push_with_delay_is_delayed_then_ready(once, client):
    before = server_ms(client)
    job_id = once.push("later", delay_ms=300)
    info = once.inspect(job_id)
    assert info.state == "delayed"
    assert before + 300 <= info.due <= server_ms(client) + 300
    assert once.reserve() == []
    wait_until(lambda: once.inspect(job_id).state == "ready", timeout=5, what="the delayed job to be ready")
    assert [j.id for j in once.reserve()] == [job_id]


def test_push_with_delay_as_timedelta(once, client):
    before = server_ms(client)
    info = once.inspect(once.push("later", delay_ms=datetime.timedelta(seconds=60)))
    assert info.state == "delayed" and info.due >= before + 60000


def test_push_at_a_unix_time_or_datetime(once, client):
    now = server_ms(client)
    future = once.inspect(once.push("f", at=now + 60000))
    assert future.state == "delayed" and future.due == now + 60000
    when = datetime.datetime.fromtimestamp((now + 120000) / 1000, tz=datetime.timezone.utc)
    assert once.inspect(once.push("g", at=when)).due == now + 120000
    past = once.inspect(once.push("h", at=now - 1000))
    assert past.state == "ready"


def test_push_refuses_delay_and_at_together(once):
    with pytest.raises(ValueError):
        once.push("p", delay_ms=10, at=1)


def test_push_out_of_range_option_is_a_server_error(once):
    with pytest.raises(redis.ResponseError, match="RETRIES must be between 0 and 1000"):
        once.push("p", retries=1001)


# --- reserve --------------------------------------------------------------------------------------------------


def test_reserve_returns_typed_jobs_in_priority_order(once):
    low = once.push("low", priority=-1)
    mid1 = once.push("mid1")
    mid2 = once.push("mid2")
    high = once.push("high", priority=10)
    jobs = once.reserve(count=10)
    assert [j.id for j in jobs] == [high, mid1, mid2, low]
    first = jobs[0]
    assert isinstance(first, Job)
    assert first.payload == b"high" and first.attempt == 1 and first.queue == once.queue
    assert first.text == "high"
    assert once.inspect(high).state == "reserved"


def test_reserve_none_is_an_empty_list(once):
    assert once.reserve() == []
    assert once.reserve(count=5) == []


def test_reserve_count_limits_the_batch(once):
    for i in range(5):
        once.push(f"j{i}")
    assert len(once.reserve(count=2)) == 2
    assert len(once.reserve(count=2)) == 2
    assert len(once.reserve(count=2)) == 1


def test_reserve_decode_gives_str_payloads(client, queue):
    plain = Once(client, queue)
    decoding = Once(client, queue, decode=True)
    plain.push("a")
    plain.push("b")
    assert decoding.reserve()[0].payload == "a"
    assert plain.reserve(decode=True)[0].payload == "b"


def test_reserve_lease_sets_the_deadline(once, client):
    once.push("p")
    before = server_ms(client)
    job = once.reserve(lease_ms=60000)[0]
    info = once.inspect(job)
    assert before + 60000 <= info.lease_deadline <= server_ms(client) + 60000


def test_reserve_block_times_out_with_an_empty_list(once):
    t0 = time.monotonic()
    assert once.reserve(block_ms=300) == []
    elapsed = time.monotonic() - t0
    assert 0.25 <= elapsed < 3, elapsed


def test_reserve_block_wakes_up_on_push(once, client, queue):
    got = {}

    def blocked():
        t0 = time.monotonic()
        got["jobs"] = Once(client, queue).reserve(block_ms=4000)
        got["elapsed"] = time.monotonic() - t0

    other = redis.Redis(connection_pool=client.connection_pool)
    t = threading.Thread(target=blocked)
    t.start()
    wait_until(lambda: any("b" in c["flags"] for c in other.client_list()), what="the reserve to block")
    job_id = Once(other, queue).push("wake up")
    t.join(10)
    assert [j.id for j in got["jobs"]] == [job_id]
    assert got["elapsed"] < 3, got["elapsed"]


def test_reserve_with_ack_acknowledges_then_fetches(once):
    a = once.push("a")
    b = once.push("b")
    first = once.reserve()[0]
    assert first.id == a
    second = once.reserve(ack=first)
    assert [j.id for j in second] == [b]
    assert once.inspect(a) is None
    assert once.stats().acked_total == 1
    # ack-and-fetch on an empty queue still acks, and returns nothing
    assert once.reserve(ack=second[0].id) == []
    assert once.inspect(b) is None
    assert once.stats().acked_total == 2


# --- ack / nack / extend --------------------------------------------------------------------------------------


def test_ack_counts_reserved_jobs_only(once):
    a, b, c = once.push("a"), once.push("b"), once.push("c")
    jobs = once.reserve(count=2)
    assert once.ack(c) == 0                      # not reserved
    assert once.ack("no-such-id") == 0
    assert once.ack(*jobs) == 2                  # Job objects
    assert once.ack(a, b) == 0                   # already gone
    assert once.inspect(a) is None and once.inspect(c).state == "ready"
    with pytest.raises(ValueError):
        once.ack()


def test_nack_retries_with_the_error_text_and_fences_on_attempt(once):
    job_id = once.push("p", retries=3, backoff_ms=60000)
    job = once.reserve()[0]
    assert once.nack(job.id, attempt=job.attempt + 1, error="stale") is False   # another reservation: fenced
    assert once.inspect(job_id).state == "reserved"
    assert once.nack(job, error="boom") is True                                  # Job: its own attempt
    info = once.inspect(job_id)
    assert info.state == "delayed" and info.last_error == "boom" and info.attempts == 1
    assert once.nack(job, error="again") is False                                # no longer reserved
    stats = once.stats()
    assert stats.nacked_total == 1 and stats.retried_total == 1


def test_nack_with_an_exception_keeps_its_text(once):
    once.push("p")
    job = once.reserve()[0]
    assert once.nack(job, error=ValueError("bad input"))
    assert once.inspect(job).last_error == "ValueError: bad input"


def test_nack_delay_and_dead(once, client):
    a = once.push("a", retries=5)
    b = once.push("b", retries=5)
    ja, jb = once.reserve(count=2)
    before = server_ms(client)
    assert once.nack(ja, delay_ms=50000)
    assert once.inspect(a).due >= before + 50000
    assert once.nack(jb, dead=True, error="give up")
    info = once.inspect(b)
    assert info.state == "dead" and info.last_error == "give up"
    assert once.stats().dead == 1
    with pytest.raises(ValueError):
        once.nack(jb, dead=True, delay_ms=1)


def test_nack_zero_delay_makes_the_job_ready_again(once):
    job_id = once.push("p", retries=1)
    once.nack(once.reserve()[0], delay_ms=0)
    again = wait_until(lambda: once.reserve(), what="the retried job")
    assert again[0].id == job_id and again[0].attempt == 2


def test_extend_moves_the_deadline_and_is_fenced(once, client):
    once.push("p")
    job = once.reserve(lease_ms=1000)[0]
    before = server_ms(client)
    deadline = once.extend(job, 90000)
    assert isinstance(deadline, int) and before + 90000 <= deadline <= server_ms(client) + 90000
    assert once.inspect(job).lease_deadline == deadline
    assert once.extend(job.id, 90000, attempt=job.attempt + 1) is None
    assert once.extend(job.id, datetime.timedelta(seconds=100)) >= before + 100000
    once.ack(job)
    assert once.extend(job, 1000) is None


# --- inspect / stats ------------------------------------------------------------------------------------------


def test_inspect_unknown_is_none(once):
    assert once.inspect("nope") is None      # missing key
    once.push("p")
    assert once.inspect("nope") is None      # unknown id


def test_stats_has_every_field_and_items_waiting(once):
    empty = once.stats()
    assert isinstance(empty, Stats) and empty == Stats()
    for i in range(3):
        once.push(f"r{i}")
    once.push("d", delay_ms=60000)
    once.reserve()
    s = once.stats()
    assert (s.ready, s.delayed, s.reserved, s.dead) == (2, 1, 1, 0)
    assert s.items_waiting == 2
    assert s.pushed_total == 4 and s.reserved_total == 1 and s.schedules == 0
    assert s.total == 4
    for name in ("acked_total", "nacked_total", "expired_total", "retried_total", "dead_total"):
        assert getattr(s, name) == 0
    assert s.extra == {}, f"fields the client does not know: {s.extra}"


def test_wrong_type_is_an_error(client, queue):
    client.set(queue, "a string")
    o = Once(client, queue)
    want = f"key '{queue}' holds a string, not a Once queue: push jobs with ONCE.PUSH (Once.push)"
    for call in (lambda: o.push("p"), o.stats, lambda: o.reserve(block_ms=10)):
        with pytest.raises(WrongTypeError) as err:
            call()
        assert str(err.value) == want and isinstance(err.value, redis.ResponseError)


# --- schedules ------------------------------------------------------------------------------------------------


def test_schedule_schedules_unschedule(once, client):
    now = server_ms(client)
    next_fire = once.schedule("tick", "@every 200ms", "tock", retries=2, backoff_ms=100, lease_ms=5000,
                              priority=3, missed="skip")
    assert isinstance(next_fire, int) and now < next_fire <= server_ms(client) + 1000
    nightly = once.schedule("nightly", "0 3 * * *", b"\x00bin", tz="Europe/Paris")
    assert nightly > now
    listed = {s.name: s for s in once.schedules()}
    assert set(listed) == {"tick", "nightly"}
    tick = listed["tick"]
    assert isinstance(tick, Schedule)
    assert tick.spec == "@every 200ms" and tick.payload == b"tock" and tick.last_fire is None
    assert tick.extra == {}, f"fields the client does not know: {tick.extra}"
    assert (tick.retries, tick.backoff, tick.lease, tick.priority, tick.missed) == (2, 100, 5000, 3, "skip")
    assert listed["nightly"].tz == "Europe/Paris" and listed["nightly"].payload == b"\x00bin"
    assert listed["nightly"].next_fire == nightly
    assert once.schedules(decode=True)[0].payload in ("tock", "\x00bin")
    assert once.stats().schedules == 2

    jobs = wait_until(lambda: once.reserve(), timeout=5, what="a scheduled job")
    assert re.match(r"^tick@\d+$", jobs[0].id) and jobs[0].payload == b"tock"
    assert once.inspect(jobs[0]).priority == 3
    wait_until(lambda: {s.name: s for s in once.schedules()}["tick"].last_fire, what="last_fire to be set")

    assert once.unschedule("tick") is True
    assert once.unschedule("tick") is False
    assert [s.name for s in once.schedules()] == ["nightly"]


def test_schedules_of_a_missing_queue_is_empty(once):
    assert once.schedules() == []


# --- the client's protocol and decoding settings --------------------------------------------------------------


@pytest.mark.parametrize("options", [dict(protocol=2, decode_responses=True), dict(protocol=3, decode_responses=True)],
                         ids=["resp2-decoded", "resp3-decoded"])
def test_other_client_settings_give_the_same_results(server, queue, options):
    c = server.client(**options)
    try:
        o = Once(c, queue)
        job_id = o.push("p\u00e9", priority=2)
        assert isinstance(job_id, str)
        info = o.inspect(job_id)
        assert info.payload == "p\u00e9".encode() and info.priority == 2 and info.due is None
        s = o.stats()
        assert s.ready == 1 and s.items_waiting == 1 and s.pushed_total == 1 and s.extra == {}
        assert o.reserve(block_ms=100)[0].payload == "p\u00e9".encode()
        assert o.reserve(block_ms=100) == []
        o.schedule("s", "@every 1s", "x")
        assert [x.name for x in o.schedules()] == ["s"]
        assert o.ack(job_id) == 1
    finally:
        c.close()


def test_retry_brings_a_dead_job_back_and_cancel_removes_jobs(once):
    dead = once.push("poison", retries=0)
    job = once.reserve()[0]
    assert once.nack(job, error="bad input") is True
    assert once.inspect(dead).state == "dead"
    assert once.retry(dead) == 1
    info = once.inspect(dead)
    assert (info.state, info.attempts, info.tries) == ("ready", 1, 0)     # the fencing token keeps growing
    assert once.retry(dead) == 0                  # not dead any more
    later = once.push("later", delay_ms=60000)
    assert once.cancel(dead, later, "no-such-id") == 2
    assert once.inspect(dead) is None and once.inspect(later) is None
    with pytest.raises(ValueError):
        once.retry()
    with pytest.raises(ValueError):
        once.cancel()


# --- flow control ---------------------------------------------------------------------------------------------


def test_groups_limits_and_typed_group_results(once, client, queue):
    from once import GroupInfo
    from once.admin import Admin
    admin = Admin(client, queue)
    s = admin.configure(concurrency=10, rate=(100, 1000), group_concurrency=1, group_rate=(50, 2000))
    assert (s["concurrency"], s["rate"], s["rate_per"], s["group_concurrency"], s["group_rate"],
            s["group_rate_per"]) == (10, 100, 1000, 1, 50, 2000)
    assert once.group("nobody") == GroupInfo(name="nobody")
    a = [once.push(f"a{i}", group="tenant-a") for i in range(3)]
    once.push("b0", group=b"tenant-b")
    once.push("plain")
    assert once.inspect(a[0]).group == "tenant-a"
    assert once.inspect(once.push("plain2")).group is None
    got = once.reserve(count=10)
    assert sorted(j.text for j in got) == ["a0", "b0", "plain"]      # GROUP-CONCURRENCY 1 per group
    info = once.group("tenant-a", concurrency=2)
    assert info == GroupInfo(name="tenant-a", ready=2, reserved=1, concurrency=2)
    assert [j.text for j in once.reserve(count=10)] == ["a1"]
    info = once.group("tenant-a", rate=(5, 1000), reset=True)
    assert (info.concurrency, info.rate, info.rate_per) == (None, 5, 1000)
    cursor, page = once.groups(count=1)
    assert cursor != "0" and [g.name for g in page] == ["tenant-a"]
    cursor, page = once.groups(cursor)
    assert cursor == "0" and [g.name for g in page] == ["tenant-b"]
    assert [g.name for g in admin.all_groups(count=1)] == ["tenant-a", "tenant-b"]
    assert admin.group("tenant-b").reserved == 1
    st = once.stats()
    assert (st.groups, st.concurrency, st.rate, st.rate_per, st.group_concurrency, st.group_rate,
            st.group_rate_per) == (2, 10, 100, 1000, 1, 50, 2000)
    assert st.extra == {}, st.extra
    with pytest.raises(redis.ResponseError, match="GROUP must be 1 to 256 bytes"):
        once.push("x", group="")
