"""ONCE.RESERVE BLOCK: timeout, wake-up by PUSH, BLOCK 0, and no blocking inside MULTI or Lua."""
import threading
import time

from helpers import push, reserve, stats


def blocked_reserve(server, key, *opts):
    """Starts ONCE.RESERVE in a thread; returns (thread, result dict)."""
    out = {}

    def run():
        c = server.client(decode_responses=True, socket_timeout=10)
        t0 = time.monotonic()
        out["got"] = c.execute_command("ONCE.RESERVE", key, *opts)
        out["elapsed"] = time.monotonic() - t0
        c.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def wait_blocked(r, n=1, timeout=3.0):
    deadline = time.monotonic() + timeout
    while r.info("clients")["blocked_clients"] < n:
        assert time.monotonic() < deadline, "client did not block"
        time.sleep(0.005)


def test_block_times_out_with_null(r, key):
    t0 = time.monotonic()
    assert reserve(r, key, "BLOCK", 100) is None
    elapsed = time.monotonic() - t0
    assert 0.09 <= elapsed < 1.0, elapsed
    assert r.exists(key) == 0


def test_block_is_woken_by_push(server, r, key):
    t, out = blocked_reserve(server, key, "BLOCK", 5000, "COUNT", 5)
    wait_blocked(r)
    job_id = push(r, key, "wake")
    t.join(5)
    assert out["got"] == [[job_id, "wake", 1]]
    assert out["elapsed"] < 2
    assert stats(r, key)["reserved"] == 1


def test_block_zero_waits_until_push(server, r, key):
    t, out = blocked_reserve(server, key, "BLOCK", 0)
    wait_blocked(r)
    time.sleep(0.2)                  # absence check: still waiting after a while
    assert "got" not in out
    job_id = push(r, key, "late")
    t.join(5)
    assert out["got"] == [[job_id, "late", 1]]


def test_block_one_push_wakes_one_client(server, r, key):
    t1, out1 = blocked_reserve(server, key, "BLOCK", 1000)
    t2, out2 = blocked_reserve(server, key, "BLOCK", 1000)
    wait_blocked(r, 2)
    job_id = push(r, key, "only")
    t1.join(5)
    t2.join(5)
    results = [out1["got"], out2["got"]]
    assert results.count(None) == 1
    assert [[job_id, "only", 1]] in results
    assert stats(r, key)["reserved_total"] == 1


def test_block_inside_multi_does_not_block(r, key):
    p = r.pipeline(transaction=True)
    p.execute_command("ONCE.RESERVE", key, "BLOCK", 0)
    t0 = time.monotonic()
    assert p.execute() == [None]
    assert time.monotonic() - t0 < 1


def test_block_inside_lua_does_not_block(r, key):
    t0 = time.monotonic()
    got = r.eval("return redis.call('ONCE.RESERVE', KEYS[1], 'BLOCK', 0)", 1, key)
    assert got is None
    assert time.monotonic() - t0 < 1


def test_blocked_client_unblocked_returns_null(server, r, key):
    t, out = blocked_reserve(server, key, "BLOCK", 0)
    wait_blocked(r)
    blocked = [c for c in r.client_list() if c.get("cmd", "").lower() == "once.reserve"]
    assert len(blocked) == 1
    assert r.client_unblock(blocked[0]["id"]) == 1
    t.join(5)
    assert "got" in out and out["got"] is None


def test_blocked_reserve_is_woken_by_lease_expiry(server, r, key):
    job_id = push(r, key, "p", "BACKOFF", 0)
    assert reserve(r, key, "LEASE", 100)[0][0] == job_id
    t, out = blocked_reserve(server, key, "BLOCK", 5000)
    wait_blocked(r)
    t.join(5)
    assert out["got"] == [[job_id, "p", 2]]
    assert stats(r, key)["expired_total"] == 1


def test_blocked_reserve_is_woken_by_nack(server, r, key):
    job_id = push(r, key, "p")
    assert reserve(r, key)[0][0] == job_id
    t, out = blocked_reserve(server, key, "BLOCK", 5000)
    wait_blocked(r)
    assert r.execute_command("ONCE.NACK", key, job_id, "DELAY", 0) == 1
    t.join(5)
    assert out["got"] == [[job_id, "p", 2]]
    assert out["elapsed"] < 2


def test_reserve_ack_then_block(server, r, key):
    a = push(r, key, "a")
    assert reserve(r, key)[0][0] == a
    t, out = blocked_reserve(server, key, "ACK", a, "BLOCK", 5000)
    wait_blocked(r)
    assert r.execute_command("ONCE.INSPECT", key, a) is None      # acked before blocking
    assert stats(r, key)["acked_total"] == 1
    b = push(r, key, "b")
    t.join(5)
    assert out["got"] == [[b, "b", 1]]
    assert stats(r, key)["acked_total"] == 1
