"""`Once.push_many`: ONCE.BULK, the ids in order, `ids=` idempotent like push(id=...), options shared by every job,
more than one call's limit (10,000 payloads) sent in several calls."""
import pytest
import redis

from once import Once


def test_push_many_returns_the_ids_in_order_and_the_jobs_serve_in_that_order(once):
    ids = once.push_many(["a", b"b", "c"])
    assert len(ids) == 3 and len(set(ids)) == 3
    jobs = once.reserve(3)
    assert [(j.id, j.payload) for j in jobs] == list(zip(ids, [b"a", b"b", b"c"]))


def test_push_many_with_ids_is_idempotent(once):
    assert once.push_many(["x", "y"], ids=["job-x", "job-y"]) == ["job-x", "job-y"]
    assert once.push_many(["x again", "z"], ids=["job-x", "job-z"]) == ["job-x", "job-z"]
    assert once.stats().ready == 3
    assert once.inspect("job-x").payload == b"x"


def test_push_many_options_apply_to_every_job(once):
    ids = once.push_many(["p", "q"], retries=0, priority=5, delay_ms=60000, group="g")
    for i in ids:
        info = once.inspect(i)
        assert (info.state, info.retries, info.priority, info.group) == ("delayed", 0, 5, "g")


def test_push_many_past_one_calls_limit_sends_several_calls(once):
    ids = once.push_many(f"job {i}" for i in range(10_050))
    assert len(ids) == 10_050 and len(set(ids)) == 10_050
    assert once.stats().ready == 10_050
    jobs = once.reserve(10_000) + once.reserve(100)
    assert [j.id for j in jobs] == ids


def test_push_many_refuses_mismatched_ids_before_sending(once):
    with pytest.raises(ValueError, match="ids gives 1 ids for 2 payloads"):
        once.push_many(["a", "b"], ids=["only-one"])
    with pytest.raises(ValueError, match="give delay_ms or at, not both"):
        once.push_many(["a"], delay_ms=1, at=1)
    assert not once.redis.exists(once.queue)


def test_push_many_refused_by_the_server_adds_nothing(once):
    with pytest.raises(redis.ResponseError, match="RETRIES"):
        once.push_many(["a", "b"], retries=-1)
    assert not once.redis.exists(once.queue)


def test_push_many_of_nothing_sends_nothing(once):
    assert once.push_many([]) == []
    assert not once.redis.exists(once.queue)


def test_push_many_on_a_key_of_another_type_names_it(client, queue):
    client.set(queue, "s")
    with pytest.raises(redis.ResponseError, match="holds a string, not a Once queue"):
        Once(client, queue).push_many(["a"])
