"""Configs: defaults, module args at load, CONFIG SET once.*, and their effect on new jobs."""
import pytest
import redis

from helpers import RawClient, inspect, push, reserve_one, server_ms, stats

DEFAULTS = {
    "once.default-retries": "3",
    "once.default-backoff-ms": "1000",
    "once.backoff-max-ms": "3600000",
    "once.default-lease-ms": "30000",
    "once.max-payload-bytes": "67108864",
    "once.max-error-bytes": "4096",
    "once.fault-saves": "0",
    "once.fault-writes": "0",
}


def test_config_defaults(fresh_server):
    r = fresh_server.client(decode_responses=True)
    assert r.config_get("once.*") == DEFAULTS


def test_module_args_at_load(make_server, key):
    s = make_server(module_args=["default-retries", 1, "default-backoff-ms", 50, "backoff-max-ms", 70000,
                                 "default-lease-ms", 200, "max-payload-bytes", 100])
    r = s.client(decode_responses=True)
    assert r.config_get("once.*") == {
        "once.default-retries": "1",
        "once.default-backoff-ms": "50",
        "once.backoff-max-ms": "70000",
        "once.default-lease-ms": "200",
        "once.max-payload-bytes": "100",
        "once.max-error-bytes": "4096",
        "once.fault-saves": "0",
        "once.fault-writes": "0",
    }
    job_id = push(r, key, "p")
    job = inspect(r, key, job_id)
    assert (job["retries"], job["backoff"], job["lease"]) == (1, 50, None)
    before = server_ms(r)
    reserve_one(r, key)
    after = server_ms(r)
    assert before + 200 <= inspect(r, key, job_id)["lease_deadline"] <= after + 200


def test_module_arg_bad_value_refuses_to_load(kind):
    import harness
    with pytest.raises(RuntimeError):
        s = harness.Server(kind, module_args=["default-lease-ms", "abc"])
        s.close()


def test_config_set_default_lease(fresh_server, key):
    r = fresh_server.client(decode_responses=True)
    job_id = push(r, key, "p")                      # pushed before the change: lease nil = default at RESERVE
    assert r.config_set("once.default-lease-ms", 200)
    assert r.config_get("once.default-lease-ms") == {"once.default-lease-ms": "200"}
    before = server_ms(r)
    reserve_one(r, key)
    after = server_ms(r)
    assert before + 200 <= inspect(r, key, job_id)["lease_deadline"] <= after + 200


def test_config_set_default_retries_and_backoff(fresh_server, key):
    r = fresh_server.client(decode_responses=True)
    r.config_set("once.default-retries", 0)
    r.config_set("once.default-backoff-ms", 12345)
    job_id = push(r, key, "p")
    job = inspect(r, key, job_id)
    assert (job["retries"], job["backoff"]) == (0, 12345)
    reserve_one(r, key)
    assert r.execute_command("ONCE.NACK", key, job_id) == 1
    assert inspect(r, key, job_id)["state"] == "dead"


def test_config_set_backoff_max_caps_backoff(fresh_server, key):
    r = fresh_server.client(decode_responses=True)
    r.config_set("once.backoff-max-ms", 100)
    job_id = push(r, key, "p", "BACKOFF", 10000)
    reserve_one(r, key)
    before = server_ms(r)
    r.execute_command("ONCE.NACK", key, job_id)
    after = server_ms(r)
    assert before + 50 <= inspect(r, key, job_id)["due"] <= after + 100


def test_config_set_max_payload(fresh_server, key):
    r = fresh_server.client(decode_responses=True)
    r.config_set("once.max-payload-bytes", 10)
    push(r, key, "x" * 10)
    raw = RawClient(fresh_server.port)
    assert raw.error("ONCE.PUSH", key, "x" * 11) == \
        "ERR payload is 11 bytes, over the limit of 10 (once.max-payload-bytes)"
    raw.close()
    assert stats(r, key)["pushed_total"] == 1


@pytest.mark.parametrize("name,value", [
    ("once.default-lease-ms", "0"),
    ("once.default-lease-ms", "abc"),
    ("once.default-retries", "-1"),
    ("once.default-retries", "1001"),
    ("once.default-backoff-ms", "-1"),
    ("once.backoff-max-ms", "-1"),
    ("once.max-payload-bytes", "-1"),
])
def test_config_set_rejects_bad_values(fresh_server, name, value):
    r = fresh_server.client(decode_responses=True)
    with pytest.raises(redis.ResponseError):
        r.config_set(name, value)
    assert r.config_get(name) == {name: DEFAULTS[name]}
