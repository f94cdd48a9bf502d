"""ONCE.RESERVE BLOCK edge cases (issue 4), beyond test_block.py.

Waiting clients are served first come, first served; a timer promotion wakes one client per job; the key goes
away (DEL), moves (RENAME) or changes type (SET) under a waiting client; a waiting client disconnects or is
killed; COUNT, LEASE, MULTI/EXEC pushes and the timeout bound with BLOCK; a job served to a waiting client
replicates as reserved.

Every waiting client is a `Waiter`: its own raw connection (no redis-py retries that would re-send a RESERVE
after CLIENT KILL) running ONCE.RESERVE in a thread. A test makes sure each waiter is blocked (CLIENT LIST shows
its id with flag `b` and cmd `once.reserve`) before going on. All waits are bounded.
"""
import threading
import time

import pytest

from durability_helpers import attach_replica, module_trouble, wait_in_sync
from helpers import RawClient, INFO_FIELDS, inspect, push, reserve, server_ms, state, stats, wait_until


def decode(reply):
    """A RawClient reply with bulk strings as str (errors stay ('error', text) tuples)."""
    if isinstance(reply, bytes):
        return reply.decode()
    if isinstance(reply, list):
        return [decode(x) for x in reply]
    return reply


class Waiter:
    """ONCE.RESERVE run on a connection of its own, in a thread."""

    def __init__(self, server, key, *opts, io_timeout=15):
        self.server = server
        self.raw = RawClient(server.port)
        self.raw.sock.settimeout(io_timeout)
        self.id = self.raw.call("CLIENT", "ID")
        self.done = threading.Event()
        self.got = None
        self.exc = None
        self.elapsed = None
        self.finished_at = None
        self.started_at = time.monotonic()
        self.thread = threading.Thread(target=self._run, args=(key, opts), daemon=True)
        self.thread.start()

    def _run(self, key, opts):
        try:
            self.got = decode(self.raw.call("ONCE.RESERVE", key, *opts))
        except Exception as e:  # noqa: BLE001 - inspected by the tests
            self.exc = e
        self.finished_at = time.monotonic()
        self.elapsed = self.finished_at - self.started_at
        self.done.set()

    def result(self, timeout=5):
        assert self.done.wait(timeout), f"waiter {self.id} still waiting after {timeout}s"
        assert self.exc is None, f"waiter {self.id} failed: {self.exc!r}"
        return self.got

    def close(self):
        try:
            self.raw.close()
        except OSError:
            pass
        self.thread.join(2)


def client_entry(r, client_id):
    for c in r.client_list():
        if int(c["id"]) == client_id:
            return c
    return None


def is_blocked(r, client_id):
    c = client_entry(r, client_id)
    return c is not None and "b" in c.get("flags", "") and c.get("cmd", "").lower() == "once.reserve"


def start_waiter(server, r, key, *opts, waiters=None):
    """A Waiter, returned once the server shows it blocked."""
    w = Waiter(server, key, *opts)
    if waiters is not None:
        waiters.append(w)
    wait_until(lambda: is_blocked(r, w.id) or w.done.is_set(), timeout=3, what=f"client {w.id} blocked")
    assert not w.done.is_set(), f"RESERVE returned instead of blocking: {w.got!r} {w.exc!r}"
    return w


def blocked_clients(r):
    return r.info("clients")["blocked_clients"]


def still_waiting(r, w, for_s=0.3):
    """True if `w` is still blocked after `for_s` seconds (an absence check: it must not be served)."""
    time.sleep(for_s)
    return not w.done.is_set() and is_blocked(r, w.id)


def info_once_sane(r):
    info = r.info("once")
    for f in INFO_FIELDS:
        assert f in info, f"INFO once lacks {f}: {info}"
        assert isinstance(info[f], int) and info[f] >= 0, f"INFO once {f} = {info[f]!r}"
    return info


@pytest.fixture
def waiters():
    ws = []
    yield ws
    for w in ws:
        w.close()


# ---- first come, first served ---------------------------------------------------------------------------------

def test_waiting_clients_are_served_first_come_first_served(server, r, key, waiters):
    base = blocked_clients(r)
    ws = []
    for i in range(3):
        ws.append(start_waiter(server, r, key, "BLOCK", 10000, waiters=waiters))
        assert blocked_clients(r) == base + i + 1
    for i in range(3):
        job_id = push(r, key, f"job{i}")
        assert ws[i].result() == [[job_id, f"job{i}", 1]], f"job {i} went elsewhere"
        for later in ws[i + 1:]:
            assert not later.done.is_set(), f"client {later.id} served out of turn: {later.got!r}"
            assert is_blocked(r, later.id)
    assert stats(r, key)["reserved"] == 3 and stats(r, key)["ready"] == 0
    wait_until(lambda: blocked_clients(r) == base, timeout=2, what="no client blocked")


def test_timer_promotion_wakes_one_client_per_job(server, r, key, waiters):
    ws = [start_waiter(server, r, key, "BLOCK", 1200, waiters=waiters) for _ in range(3)]
    t_push = time.monotonic()
    a = push(r, key, "a", "DELAY", 150)
    b = push(r, key, "b", "DELAY", 150)
    assert state(r, key, a) == "delayed" and state(r, key, b) == "delayed"
    results = [w.result(5) for w in ws]
    # first come, first served: the first two waiters get the two jobs in order, the third times out
    assert results == [[[a, "a", 1]], [[b, "b", 1]], None], results
    for w in ws[:2]:
        waited = w.finished_at - t_push
        assert waited >= 0.14, f"served {waited:.3f}s after the push: before the jobs were due"
    assert ws[2].elapsed >= 1.1, f"third client returned after {ws[2].elapsed:.3f}s"
    s = stats(r, key)
    assert (s["ready"], s["delayed"], s["reserved"], s["reserved_total"]) == (0, 0, 2, 2), s


def test_count_with_block_takes_every_job_promoted_together(server, r, key, waiters):
    w = start_waiter(server, r, key, "BLOCK", 5000, "COUNT", 5, waiters=waiters)
    at = server_ms(r) + 200
    ids = [push(r, key, f"p{i}", "AT", at) for i in range(3)]
    got = w.result()
    assert got == [[ids[0], "p0", 1], [ids[1], "p1", 1], [ids[2], "p2", 1]], got
    assert stats(r, key)["reserved"] == 3


def test_count_with_block_returns_up_to_count_jobs(server, r, key, waiters):
    w = start_waiter(server, r, key, "BLOCK", 5000, "COUNT", 2, waiters=waiters)
    ids = r.eval("local ids = {} "
                 "for i = 1, 3 do ids[i] = redis.call('ONCE.PUSH', KEYS[1], 'p' .. i) end "
                 "return ids", 1, key)
    got = w.result()
    assert got == [[ids[0], "p1", 1], [ids[1], "p2", 1]], got
    assert state(r, key, ids[2]) == "ready"
    s = stats(r, key)
    assert (s["ready"], s["reserved"]) == (1, 2), s


# ---- the key changes under a waiting client -------------------------------------------------------------------

def _existing_queue_without_ready_jobs(r, key):
    """A queue key that exists but has nothing to reserve (its one job is reserved)."""
    j = push(r, key, "held")
    assert reserve(r, key, "LEASE", 600000)[0][0] == j
    return j


def test_del_while_clients_wait(server, r, key, waiters):
    _existing_queue_without_ready_jobs(r, key)
    w1 = start_waiter(server, r, key, "BLOCK", 10000, waiters=waiters)
    w2 = start_waiter(server, r, key, "BLOCK", 10000, waiters=waiters)
    assert r.delete(key) == 1
    assert still_waiting(r, w1) and still_waiting(r, w2, 0), (w1.got, w1.exc, w2.got, w2.exc)
    assert r.ping()
    a = push(r, key, "a")
    assert w1.result() == [[a, "a", 1]]
    b = push(r, key, "b")
    assert w2.result() == [[b, "b", 1]]
    assert stats(r, key)["reserved"] == 2 and stats(r, key)["pushed_total"] == 2    # a new queue
    assert module_trouble(server) == []


def test_rename_while_client_waits_on_old_name(server, r, key, waiters):
    new = key + ":renamed"
    _existing_queue_without_ready_jobs(r, key)
    w = start_waiter(server, r, key, "BLOCK", 10000, waiters=waiters)
    assert r.rename(key, new)
    on_new = push(r, new, "under the new name")
    assert still_waiting(r, w), f"served from the renamed key: {w.got!r} {w.exc!r}"
    assert state(r, new, on_new) == "ready"
    on_old = push(r, key, "under the old name")
    assert w.result() == [[on_old, "under the old name", 1]]
    assert state(r, new, on_new) == "ready"
    assert stats(r, new)["ready"] == 1 and stats(r, key)["reserved"] == 1


def test_key_replaced_by_another_type_while_client_waits(fresh_server, waiters):
    r = fresh_server.client(decode_responses=True, protocol=2)
    key = "q"
    _existing_queue_without_ready_jobs(r, key)
    info = info_once_sane(r)
    assert (info["once_queues"], info["once_jobs_reserved"]) == (1, 1)
    w = start_waiter(fresh_server, r, key, "BLOCK", 10000, waiters=waiters)
    assert r.set(key, "x")
    # Either answer is allowed: a WRONGTYPE error, or the client keeps waiting.
    w.done.wait(0.5)
    assert r.ping()
    assert fresh_server.alive()
    info = info_once_sane(r)
    assert (info["once_queues"], info["once_jobs_ready"], info["once_jobs_delayed"], info["once_jobs_reserved"],
            info["once_jobs_dead"]) == (0, 0, 0, 0, 0), info
    assert RawClient(fresh_server.port).error("ONCE.RESERVE", key).startswith("WRONGTYPE")
    if w.done.is_set():
        got = w.result()
        print(f"{fresh_server.kind}: waiting client answered {got!r}")
        assert isinstance(got, tuple) and got[0] == "error" and got[1].startswith("WRONGTYPE"), got
    else:
        print(f"{fresh_server.kind}: waiting client keeps waiting")
        assert is_blocked(r, w.id)
        r.delete(key)
        j = push(r, key, "after")
        assert w.result() == [[j, "after", 1]]
    assert module_trouble(fresh_server) == []


# ---- a waiting client goes away -------------------------------------------------------------------------------

def _job_not_lost(r, key):
    job_id = push(r, key, "for the next one")
    assert state(r, key, job_id) == "ready"
    s = stats(r, key)
    assert (s["ready"], s["reserved"], s["reserved_total"]) == (1, 0, 0), s
    assert reserve(r, key) == [[job_id, "for the next one", 1]]


def test_waiting_client_disconnects(server, r, key):
    w = start_waiter(server, r, key, "BLOCK", 0)
    base = blocked_clients(r)
    assert base >= 1
    w.raw.sock.shutdown(2)
    w.close()
    wait_until(lambda: client_entry(r, w.id) is None, timeout=3, what="server drops the closed client")
    wait_until(lambda: blocked_clients(r) == base - 1, timeout=3, what="blocked_clients back down")
    assert blocked_clients(r) == 0
    _job_not_lost(r, key)


def test_waiting_client_killed(server, r, key, waiters):
    w = start_waiter(server, r, key, "BLOCK", 0, waiters=waiters)
    assert r.client_kill_filter(_id=w.id) == 1
    assert w.done.wait(3), "killed client still waiting for a reply"
    assert w.got is None and isinstance(w.exc, (ConnectionError, OSError)), (w.got, w.exc)
    wait_until(lambda: client_entry(r, w.id) is None, timeout=3, what="killed client gone")
    wait_until(lambda: blocked_clients(r) == 0, timeout=3, what="blocked_clients 0")
    _job_not_lost(r, key)


# ---- options with BLOCK ---------------------------------------------------------------------------------------

def test_lease_given_with_block_applies_to_the_job(server, r, key, waiters):
    w = start_waiter(server, r, key, "BLOCK", 5000, "LEASE", 7000, waiters=waiters)
    before = server_ms(r)
    job_id = push(r, key, "p", "LEASE", 600000)     # the job's own lease is overridden by RESERVE's
    assert w.result() == [[job_id, "p", 1]]
    after = server_ms(r)
    job = inspect(r, key, job_id)
    assert job["state"] == "reserved"
    deadline = int(job["lease_deadline"])
    assert before + 7000 <= deadline <= after + 7000, (before, deadline, after)


def test_push_inside_multi_serves_waiter_after_exec(server, r, key, waiters):
    w = start_waiter(server, r, key, "BLOCK", 5000, waiters=waiters)
    tx = RawClient(server.port)
    try:
        assert tx.call("MULTI") == ("status", "OK")
        assert tx.call("ONCE.PUSH", key, "a", "ID", "a") == ("status", "QUEUED")
        assert tx.call("ONCE.PUSH", key, "b", "ID", "b") == ("status", "QUEUED")
        assert tx.call("ONCE.INSPECT", key, "a") == ("status", "QUEUED")
        assert still_waiting(r, w, 0.2), "served before EXEC"
        replies = decode(tx.call("EXEC"))
    finally:
        tx.close()
    assert replies[:2] == ["a", "b"]
    in_tx = dict(zip(replies[2][0::2], replies[2][1::2]))
    assert in_tx["state"] == "ready", "the waiter was served in the middle of the transaction"
    assert w.result() == [["a", "a", 1]]
    assert state(r, key, "a") == "reserved" and state(r, key, "b") == "ready"


def test_block_100ms_times_out_quickly(server, r, key, waiters):
    far = push(r, key, "far", "DELAY", 600000)          # the key exists; nothing becomes ready
    times = []
    for _ in range(3):
        w = Waiter(server, key, "BLOCK", 100)
        waiters.append(w)
        assert w.result(3) is None
        times.append(w.elapsed)
    print(f"{server.kind}: BLOCK 100 returned null after " + ", ".join(f"{t * 1000:.0f} ms" for t in times))
    assert all(0.09 <= t < 1.0 for t in times), times
    assert state(r, key, far) == "delayed"


# ---- replication ----------------------------------------------------------------------------------------------

def test_job_served_to_waiter_is_reserved_on_replica(make_server, waiters):
    master, replica = make_server(), make_server()
    attach_replica(replica, master)
    m = master.client(decode_responses=True, protocol=2)
    rr = replica.client(decode_responses=True, protocol=2)
    key = "q"
    # one waiter woken by a push, one by a timer promotion (served from the event loop, not a command)
    w1 = start_waiter(master, m, key, "BLOCK", 5000, "LEASE", 20000, waiters=waiters)
    a = push(m, key, "a")
    assert w1.result() == [[a, "a", 1]]
    w2 = start_waiter(master, m, key, "BLOCK", 5000, waiters=waiters)
    b = push(m, key, "b", "DELAY", 100)
    assert w2.result() == [[b, "b", 1]]
    wait_in_sync(m, rr)
    for job_id in (a, b):
        on_master, on_replica = inspect(m, key, job_id), inspect(rr, key, job_id)
        assert on_master["state"] == "reserved"
        assert on_replica == on_master, f"{job_id}: replica {on_replica} vs master {on_master}"
    assert stats(rr, key) == stats(m, key)
    assert rr.execute_command("DEBUG", "DIGEST-VALUE", key) == m.execute_command("DEBUG", "DIGEST-VALUE", key)
    assert module_trouble(master) == [] and module_trouble(replica) == []
