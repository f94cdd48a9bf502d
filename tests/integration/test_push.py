"""ONCE.PUSH: ids, idempotent push, DELAY / AT, and the per-job options RETRIES, BACKOFF, LEASE, PRIORITY."""
import re

from helpers import inspect, parse_id, push, reserve, reserve_one, server_ms, stats


def test_push_returns_server_id_that_sorts_by_creation(r, key):
    before = server_ms(r)
    ids = [push(r, key, f"p{i}") for i in range(5)]
    after = server_ms(r)
    for job_id in ids:
        assert re.fullmatch(r"\d+-\d+", job_id), job_id
        assert before <= parse_id(job_id)[0] <= after
    assert len(set(ids)) == 5
    assert [parse_id(i) for i in ids] == sorted(parse_id(i) for i in ids)
    assert stats(r, key)["pushed_total"] == 5
    assert stats(r, key)["ready"] == 5


def test_push_new_job_is_ready_with_defaults(r, key):
    before = server_ms(r)
    job_id = push(r, key, "hello")
    after = server_ms(r)
    job = inspect(r, key, job_id)
    assert job["id"] == job_id
    assert job["state"] == "ready"
    assert job["payload"] == "hello"
    assert job["attempts"] == 0
    assert job["retries"] == 3          # once.default-retries
    assert job["backoff"] == 1000       # once.default-backoff-ms
    assert job["priority"] == 0
    assert job["lease"] is None         # nil = module default, decided at RESERVE
    assert before <= job["created"] <= after
    assert job["due"] is None
    assert job["lease_deadline"] is None
    assert job["last_error"] is None


def test_push_binary_payload_round_trips(server, key):
    raw = server.client(protocol=2)  # no decoding: payloads are bytes
    payload = b"\x00\xff\r\n bin \x00" + bytes(range(256))
    job_id = raw.execute_command("ONCE.PUSH", key, payload)
    assert raw.execute_command("ONCE.INSPECT", key, job_id)[5] == payload  # RESP2 flat: payload after 'payload'
    got = raw.execute_command("ONCE.RESERVE", key)
    assert got[0][0] == job_id
    assert got[0][1] == payload
    raw.close()


def test_push_with_id_returns_that_id(r, key):
    assert push(r, key, "a", "ID", "job-1") == "job-1"
    job = inspect(r, key, "job-1")
    assert job["id"] == "job-1" and job["payload"] == "a" and job["state"] == "ready"


def test_push_with_live_id_is_idempotent(r, key):
    assert push(r, key, "first", "ID", "dup") == "dup"
    assert push(r, key, "second", "ID", "dup", "PRIORITY", 9, "DELAY", 60000) == "dup"
    s = stats(r, key)
    assert s["ready"] == 1 and s["delayed"] == 0
    assert s["pushed_total"] == 1
    job = inspect(r, key, "dup")
    assert job["payload"] == "first"
    assert job["priority"] == 0
    assert job["state"] == "ready"
    assert reserve(r, key, "COUNT", 10) == [["dup", "first", 1]]


def test_push_with_id_of_reserved_job_adds_nothing(r, key):
    push(r, key, "x", "ID", "busy")
    reserve_one(r, key)
    assert push(r, key, "y", "ID", "busy") == "busy"
    job = inspect(r, key, "busy")
    assert job["state"] == "reserved" and job["payload"] == "x" and job["attempts"] == 1
    assert stats(r, key)["ready"] == 0
    assert reserve(r, key) is None


def test_push_with_id_of_dead_job_adds_nothing(r, key):
    push(r, key, "x", "ID", "gone-bad", "RETRIES", 0)
    reserve_one(r, key)
    assert r.execute_command("ONCE.NACK", key, "gone-bad") == 1
    assert inspect(r, key, "gone-bad")["state"] == "dead"
    assert push(r, key, "again", "ID", "gone-bad") == "gone-bad"
    job = inspect(r, key, "gone-bad")
    assert job["state"] == "dead" and job["payload"] == "x"
    s = stats(r, key)
    assert s["dead"] == 1 and s["ready"] == 0 and s["pushed_total"] == 1
    assert reserve(r, key) is None


def test_push_with_id_after_ack_makes_a_new_job(r, key):
    push(r, key, "x", "ID", "reuse")
    reserve_one(r, key)
    assert r.execute_command("ONCE.ACK", key, "reuse") == 1
    assert push(r, key, "y", "ID", "reuse") == "reuse"
    job = inspect(r, key, "reuse")
    assert job["state"] == "ready" and job["payload"] == "y" and job["attempts"] == 0
    assert stats(r, key)["pushed_total"] == 2


def test_push_id_limits_accepted(r, key):
    assert push(r, key, "p", "ID", "x") == "x"
    long_id = "i" * 256
    assert push(r, key, "p", "ID", long_id) == long_id
    assert inspect(r, key, long_id)["id"] == long_id


def test_push_delay(r, key):
    before = server_ms(r)
    job_id = push(r, key, "later", "DELAY", 10000)
    after = server_ms(r)
    job = inspect(r, key, job_id)
    assert job["state"] == "delayed"
    assert before + 10000 <= job["due"] <= after + 10000
    assert job["lease_deadline"] is None
    s = stats(r, key)
    assert s["delayed"] == 1 and s["ready"] == 0
    assert reserve(r, key) is None


def test_push_delay_zero_is_reservable_now(r, key):
    job_id = push(r, key, "now", "DELAY", 0)
    assert reserve(r, key) == [[job_id, "now", 1]]


def test_push_at_future(r, key):
    at = server_ms(r) + 20000
    job_id = push(r, key, "later", "AT", at)
    job = inspect(r, key, job_id)
    assert job["state"] == "delayed"
    assert job["due"] == at
    assert reserve(r, key) is None


def test_push_at_in_the_past_is_ready_now(r, key):
    old = push(r, key, "old", "AT", server_ms(r) - 10000)
    ancient = push(r, key, "ancient", "AT", 1)
    for job_id in (old, ancient):
        job = inspect(r, key, job_id)
        assert job["state"] == "ready"
        assert job["due"] is None
    assert stats(r, key)["ready"] == 2
    assert reserve(r, key, "COUNT", 2) == [[old, "old", 1], [ancient, "ancient", 1]]


def test_push_options_are_stored(r, key):
    job_id = push(r, key, "p", "RETRIES", 7, "BACKOFF", 250, "LEASE", 1234, "PRIORITY", -5)
    job = inspect(r, key, job_id)
    assert job["retries"] == 7
    assert job["backoff"] == 250
    assert job["lease"] == 1234
    assert job["priority"] == -5


def test_push_option_extremes_accepted(r, key):
    a = push(r, key, "p", "RETRIES", 0, "BACKOFF", 0, "LEASE", 1, "PRIORITY", -1000000)
    b = push(r, key, "p", "RETRIES", 1000, "BACKOFF", 315360000000, "LEASE", 604800000, "PRIORITY", 1000000,
             "DELAY", 315360000000)
    assert inspect(r, key, a)["retries"] == 0
    job = inspect(r, key, b)
    assert (job["retries"], job["backoff"], job["lease"], job["priority"]) == (1000, 315360000000, 604800000, 1000000)
    assert job["state"] == "delayed"


def test_push_options_case_insensitive_any_order(r, key):
    job_id = push(r, key, "p", "priority", 3, "lease", 500, "Id", "mixed", "retries", 2, "dElAy", 60000,
                  "backoff", 10)
    assert job_id == "mixed"
    job = inspect(r, key, "mixed")
    assert (job["priority"], job["lease"], job["retries"], job["backoff"], job["state"]) == (3, 500, 2, 10, "delayed")


def test_push_lease_is_used_by_reserve(r, key):
    push(r, key, "p", "LEASE", 5000)
    before = server_ms(r)
    job_id, _, _ = reserve_one(r, key)
    after = server_ms(r)
    assert before + 5000 <= inspect(r, key, job_id)["lease_deadline"] <= after + 5000
