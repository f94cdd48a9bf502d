"""Good inputs at the edges: range boundaries accepted, option-like payloads and ids, odd bytes in echoed args."""
import pytest

from helpers import RawClient, inspect, push, reserve, reserve_one, stats

MAX = 9223372036854775807


def test_boundaries_of_push_are_accepted(r, key):
    a = push(r, key, "p", "AT", MAX, "RETRIES", 1000, "BACKOFF", 315360000000, "LEASE", 604800000,
             "PRIORITY", 1000000)
    assert inspect(r, key, a)["due"] == MAX
    b = push(r, key, "p", "AT", 0, "RETRIES", 0, "BACKOFF", 0, "LEASE", 1, "PRIORITY", -1000000)
    assert inspect(r, key, b)["state"] == "ready"
    c = push(r, key, "p", "DELAY", 315360000000)
    assert inspect(r, key, c)["state"] == "delayed"
    assert stats(r, key)["pushed_total"] == 3


def test_boundaries_of_reserve_are_accepted(r, key):
    ids = [push(r, key, f"p{i}") for i in range(3)]
    assert len(reserve(r, key, "COUNT", 10000, "LEASE", 604800000, "BLOCK", 2147483647)) == 3
    assert reserve(r, key, "COUNT", 1, "LEASE", 1) is None
    assert r.execute_command("ONCE.ACK", key, *ids) == 3


def test_boundaries_of_nack_and_extend_are_accepted(r, key):
    job_id = push(r, key, "p", "RETRIES", 5)
    reserve_one(r, key)
    assert r.execute_command("ONCE.EXTEND", key, job_id, 604800000) is not None
    assert r.execute_command("ONCE.EXTEND", key, job_id, 1000, "ATTEMPT", MAX) is None
    assert r.execute_command("ONCE.NACK", key, job_id, "ATTEMPT", MAX) == 0
    assert r.execute_command("ONCE.NACK", key, job_id, "DELAY", 315360000000) == 1
    assert inspect(r, key, job_id)["state"] == "delayed"
    other = push(r, key, "p", "PRIORITY", 1)
    reserve_one(r, key)
    assert r.execute_command("ONCE.EXTEND", key, other, 1) is not None


def test_option_names_as_payload_and_values(r, key):
    job_id = push(r, key, "DELAY")                               # the payload is positional
    assert inspect(r, key, job_id)["payload"] == "DELAY"
    assert push(r, key, "ID", "ID", "DELAY") == "DELAY"           # payload "ID", id "DELAY"
    assert inspect(r, key, "DELAY")["payload"] == "ID"
    got = reserve(r, key, "COUNT", 2)
    assert [j[1] for j in got] == ["DELAY", "ID"]
    assert r.execute_command("ONCE.NACK", key, "DELAY", "ERROR", "DEAD") == 1   # ERROR's value, not the flag
    job = inspect(r, key, "DELAY")
    assert job["state"] == "delayed" and job["last_error"] == "DEAD"


def test_empty_payload(r, key):
    job_id = push(r, key, "")
    assert reserve(r, key) == [[job_id, "", 1]]


def test_binary_id(server, key):
    raw = server.client(protocol=2)
    job_id = b"a\x00b\xff\r\n"
    assert raw.execute_command("ONCE.PUSH", key, "p", "ID", job_id) == job_id
    assert raw.execute_command("ONCE.RESERVE", key) == [[job_id, b"p", 1]]
    assert raw.execute_command("ONCE.ACK", key, job_id) == 1
    raw.close()


@pytest.mark.parametrize("arg", [b"FOO\x00BAR", b"FO\r\nO", b"\xff\xfe"], ids=["nul", "crlf", "non-utf8"])
def test_odd_bytes_in_echoed_argument(server, r, key, arg):
    raw = RawClient(server.port)
    err = raw.error("ONCE.PUSH", key, "p", arg, "1")
    assert err.startswith("ERR unknown option '"), err
    assert "\r" not in err and "\n" not in err
    assert raw.call("PING") == ("status", "PONG")
    raw.close()
    assert r.exists(key) == 0
