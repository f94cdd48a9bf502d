"""Results and waiting for them (issue 21): ACK ... RESULT, ONCE.RESULT [BLOCK], ONCE.CALL, KEEP / KEEP-MAX, the
dedup window, TTL before start, ONCE.PROGRESS, CANCEL of a reserved job, and the errors of bad input.

The contract is /tmp/prompts/contract21.md (design.md, "Contract v3"). Every test runs on both server kinds (the
`kind` fixture); the module-scoped `server` is shared, each test on keys of its own. Timers are short (tens to a
few hundred ms) and every wait polls with a deadline, so the file stays fast.
"""
import threading
import time

import pytest
from helpers import (
    RawClient,
    as_map,
    inspect,
    keys_in_order,
    push,
    reserve,
    reserve_one,
    server_ms,
    state,
    stats,
    wait_until,
)

RESULT_FIELDS = ["state", "result", "error", "attempts", "finished", "progress"]
CALL_BLOCKS = "ERR ONCE.CALL blocks: it cannot run inside MULTI, Lua or a function"


def result(r, queue, job_id, *opts):
    return as_map(r.execute_command("ONCE.RESULT", queue, job_id, *opts))


def ack(r, queue, job_id, *opts):
    return r.execute_command("ONCE.ACK", queue, job_id, *opts)


def listed(r, queue, state_name, *opts):
    """Every job of ONCE.LIST queue state (all pages), as maps."""
    out, cursor = [], "0"
    while True:
        cursor, page = r.execute_command("ONCE.LIST", queue, state_name, "CURSOR", cursor, "COUNT", 1000, *opts)
        out += [as_map(j) for j in page]
        if cursor == "0":
            return out


def events(r, queue):
    return r.execute_command("ONCE.EVENTS", queue, "COUNT", 10000) or []


class Bg:
    """One command on a connection of its own, in a thread: a blocked RESULT, a CALL. `join()` returns its reply
    (or raises its error); `elapsed` is how long it took."""

    def __init__(self, server, *args, protocol=2):
        self.args = args
        self.reply = self.error = self.elapsed = None
        self.c = server.client(decode_responses=True, protocol=protocol, socket_timeout=15)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        t0 = time.monotonic()
        try:
            self.reply = self.c.execute_command(*self.args)
        except Exception as e:  # noqa: BLE001 - handed to the test by join()
            self.error = e
        self.elapsed = time.monotonic() - t0

    def running(self):
        return self.t.is_alive()

    def join(self, timeout=5):
        self.t.join(timeout)
        assert not self.t.is_alive(), f"{self.args!r} still blocked after {timeout}s"
        self.c.close()
        if self.error is not None:
            raise self.error
        return self.reply


def blocked_count(r):
    return r.info("clients")["blocked_clients"]


def start_blocked(server, r, *args, protocol=2):
    """Starts `args` in the background and waits until the server counts one more blocked client."""
    base = blocked_count(r)
    bg = Bg(server, *args, protocol=protocol)
    wait_until(lambda: blocked_count(r) > base or not bg.running(), timeout=3, what=f"{args[0]} to block")
    assert bg.running(), f"{args!r} did not block: replied {bg.reply!r} / {bg.error!r}"
    return bg


class Worker:
    """A worker thread as a user writes one: RESERVE BLOCK, then ACK ... ATTEMPT n RESULT <payload upper-cased>."""

    def __init__(self, server, queue, progress=None):
        self.queue, self.progress = queue, progress
        self.stop = threading.Event()
        self.done = []
        self.failure = None
        self.c = server.client(decode_responses=True, protocol=2, socket_timeout=15)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            while not self.stop.is_set():
                got = self.c.execute_command("ONCE.RESERVE", self.queue, "BLOCK", 100)
                if not got:
                    continue
                job_id, payload, attempt = got[0]
                if self.progress is not None:
                    assert self.c.execute_command("ONCE.PROGRESS", self.queue, job_id, self.progress,
                                                  "ATTEMPT", attempt) == 1
                assert self.c.execute_command("ONCE.ACK", self.queue, job_id, "ATTEMPT", attempt,
                                              "RESULT", payload.upper()) == 1
                self.done.append(job_id)
        except Exception as e:  # noqa: BLE001
            self.failure = e

    def close(self):
        self.stop.set()
        self.t.join(5)
        self.c.close()
        assert self.failure is None, self.failure


# ---- ACK RESULT, then RESULT -----------------------------------------------------------------------------------

def test_ack_result_then_result(server, r, r3, key):
    assert result(r, key, "nope") is None                     # a missing key
    r.execute_command("ONCE.CONFIGURE", key, "KEEP", 60000)
    job = push(r, key, "compute", "RETRIES", 2)
    assert result(r, key, "nope") is None                     # an unknown id
    ready = r.execute_command("ONCE.RESULT", key, job)
    assert keys_in_order(ready) == RESULT_FIELDS, ready
    assert as_map(ready) == {"state": "ready", "result": None, "error": None, "attempts": 0, "finished": None,
                             "progress": None}
    job_id, _, attempt = reserve_one(r, key)
    assert result(r, key, job)["state"] == "reserved" and result(r, key, job)["attempts"] == 1
    before = server_ms(r)
    assert ack(r, key, job_id, "ATTEMPT", attempt, "RESULT", "forty-two") == 1
    after = server_ms(r)
    got = result(r, key, job)
    assert got["state"] == "completed" and got["result"] == "forty-two" and got["error"] is None, got
    assert got["attempts"] == 1 and got["progress"] is None
    assert before <= got["finished"] <= after, (before, got, after)
    # RESP3: a map, with the same fields and values
    got3 = r3.execute_command("ONCE.RESULT", key, job)
    assert isinstance(got3, dict) and list(got3) == RESULT_FIELDS, got3
    assert got3 == got
    # INSPECT and STATS show the kept, completed job
    job_map = inspect(r, key, job)
    assert job_map["state"] == "completed" and job_map["result"] == "forty-two", job_map
    assert job_map["finished"] == got["finished"] and job_map["progress"] is None
    s = stats(r, key)
    assert (s["ready"], s["reserved"], s["completed"], s["cancelled"], s["acked_total"]) == (0, 0, 1, 0, 1), s
    assert s["expired_unstarted_total"] == 0
    # a completed job is not acked twice, and its result does not change
    assert ack(r, key, job, "RESULT", "other") == 0
    assert result(r, key, job)["result"] == "forty-two"
    # binary data round-trips byte for byte
    rb = server.client(protocol=2)                            # undecoded: bytes as they are
    blob = b"\x00\xff\r\n binary \xc3\xa9"
    bin_job = push(r, key, "bin")
    j, _, _ = reserve_one(r, key)
    assert j == bin_job
    assert rb.execute_command("ONCE.ACK", key, bin_job, "RESULT", blob) == 1
    assert as_map(rb.execute_command("ONCE.RESULT", key, bin_job))[b"result"] == blob
    rb.close()


def test_ack_result_without_keep_leaves_nothing(r, key):
    """KEEP 0 (the default): the job is gone at ACK, as before; RESULT then knows nothing of it."""
    job = push(r, key, "p")
    job_id, _, _ = reserve_one(r, key)
    assert ack(r, key, job_id, "RESULT", "done") == 1
    assert result(r, key, job) is None and inspect(r, key, job) is None
    s = stats(r, key)
    assert (s["completed"], s["acked_total"]) == (0, 1), s


def test_reserve_ack_result_then_result(r, key):
    """Ack-and-fetch carries a RESULT too: RESERVE ... ACK id ATTEMPT n RESULT data."""
    r.execute_command("ONCE.CONFIGURE", key, "KEEP", 60000)
    first, second = push(r, key, "first"), push(r, key, "second")
    job_id, _, attempt = reserve_one(r, key)
    assert job_id == first
    got = r.execute_command("ONCE.RESERVE", key, "ACK", first, "ATTEMPT", attempt, "RESULT", "r1")
    assert got and got[0][0] == second, got
    assert result(r, key, first)["result"] == "r1" and result(r, key, first)["state"] == "completed"
    # fenced: a stale attempt acks nothing and stores no result
    got = r.execute_command("ONCE.RESERVE", key, "ACK", second, "ATTEMPT", 7, "RESULT", "stale", "WITHACK")
    assert got[0] == 0, got
    assert result(r, key, second)["state"] == "reserved" and result(r, key, second)["result"] is None
    got = r.execute_command("ONCE.RESERVE", key, "ACK", second, "RESULT", "r2", "WITHACK")
    assert got[0] == 1, got
    assert result(r, key, second)["result"] == "r2"


# ---- RESULT BLOCK ----------------------------------------------------------------------------------------------

def test_result_block_woken_by_ack_with_keep_0(server, r, key):
    """A waiter blocked before the ACK gets the outcome although the job is not kept; a waiter on another job of
    the queue stays blocked; two waiters on one job both get it."""
    job, other = push(r, key, "mine"), push(r, key, "other")
    w1 = start_blocked(server, r, "ONCE.RESULT", key, job, "BLOCK", 5000)
    w2 = start_blocked(server, r, "ONCE.RESULT", key, job, "BLOCK", 0)
    w_other = start_blocked(server, r, "ONCE.RESULT", key, other, "BLOCK", 5000)
    got = reserve(r, key, "COUNT", 2)
    assert [g[0] for g in got] == [job, other]
    assert w1.running() and w2.running(), "a waiter was woken by RESERVE: the job is not finished"
    assert ack(r, key, job, "ATTEMPT", 1, "RESULT", "answer") == 1
    for w in (w1, w2):
        got = as_map(w.join())
        assert got["state"] == "completed" and got["result"] == "answer" and got["attempts"] == 1, got
        assert isinstance(got["finished"], int)
        assert w.elapsed < 2
    time.sleep(0.05)
    assert w_other.running(), "the ACK of one job woke a waiter on another"
    assert result(r, key, job) is None                        # KEEP 0: gone once the waiters have it
    assert ack(r, key, other, "RESULT", "second") == 1
    assert as_map(w_other.join())["result"] == "second"


def test_result_block_in_resp3(server, r, key):
    job = push(r, key, "p")
    w = start_blocked(server, r, "ONCE.RESULT", key, job, "BLOCK", 5000, protocol=3)
    reserve_one(r, key)
    assert ack(r, key, job, "RESULT", "v") == 1
    got = w.join()
    assert isinstance(got, dict) and list(got) == RESULT_FIELDS and got["result"] == "v", got


def test_result_block_woken_by_death_after_the_last_retry(server, r, key):
    """Failed attempts with retries left do not wake the waiter; the death after the last one does, with its
    error. (The waiter's BLOCK is 3 s: woken by the death it replies well before.)"""
    job = push(r, key, "p", "RETRIES", 1, "BACKOFF", 0)
    w = start_blocked(server, r, "ONCE.RESULT", key, job, "BLOCK", 3000)
    _, _, attempt = reserve_one(r, key)
    assert r.execute_command("ONCE.NACK", key, job, "ATTEMPT", attempt, "ERROR", "first failure", "DELAY", 0) == 1
    time.sleep(0.05)
    assert w.running(), "woken by a failed attempt that will be retried"
    assert result(r, key, job)["state"] in ("delayed", "ready")
    _, _, attempt = reserve_one(r, key)
    assert attempt == 2
    assert r.execute_command("ONCE.NACK", key, job, "ATTEMPT", attempt, "ERROR", "final failure") == 1
    got = as_map(w.join())
    assert got["state"] == "dead" and got["error"] == "final failure" and got["result"] is None, got
    assert got["attempts"] == 2 and isinstance(got["finished"], int), got
    assert w.elapsed < 1, f"not woken by the death: replied after {w.elapsed:.2f}s (the BLOCK timeout)"
    assert result(r, key, job) == got                           # dead jobs stay, in the dead set


def test_result_block_woken_by_lease_expiry_on_the_last_try(server, r, key):
    leased = push(r, key, "lease", "RETRIES", 0)
    assert reserve(r, key, "LEASE", 300)[0][0] == leased
    w = start_blocked(server, r, "ONCE.RESULT", key, leased, "BLOCK", 3000)
    got = as_map(w.join())
    assert got["state"] == "dead" and got["error"] == "lease expired", got
    assert w.elapsed < 1.5, f"not woken by the death: replied after {w.elapsed:.2f}s (the BLOCK timeout)"


@pytest.mark.parametrize("keep", [0, 60000])
def test_result_block_woken_by_cancel(server, r, key, keep):
    """CANCEL of a ready job and of a reserved one wakes their waiters with `cancelled`, kept or not."""
    ready_job = push(r, key, "ready", "KEEP", keep)
    held_job = push(r, key, "held", "KEEP", keep, "PRIORITY", 5)
    assert reserve_one(r, key)[0] == held_job
    w_ready = start_blocked(server, r, "ONCE.RESULT", key, ready_job, "BLOCK", 5000)
    w_held = start_blocked(server, r, "ONCE.RESULT", key, held_job, "BLOCK", 0)
    assert r.execute_command("ONCE.CANCEL", key, ready_job, held_job) == 2
    for w, attempts in ((w_ready, 0), (w_held, 1)):
        got = as_map(w.join())
        assert got["state"] == "cancelled" and got["error"] == "cancelled" and got["result"] is None, got
        assert got["attempts"] == attempts and isinstance(got["finished"], int) and w.elapsed < 2
    s = stats(r, key)
    assert (s["ready"], s["reserved"], s["cancelled"]) == (0, 0, 2 if keep else 0), s
    if keep:
        assert result(r, key, ready_job)["state"] == "cancelled"
        assert sorted(j["id"] for j in listed(r, key, "cancelled")) == sorted([ready_job, held_job])
    else:
        assert result(r, key, ready_job) is None and result(r, key, held_job) is None


def test_result_block_times_out_with_the_map_as_it_is(r, key):
    job = push(r, key, "p")
    t0 = time.monotonic()
    got = result(r, key, job, "BLOCK", 100)
    elapsed = time.monotonic() - t0
    assert got["state"] == "ready" and got["finished"] is None, got
    assert 0.09 <= elapsed < 1.5, elapsed
    # a finished (kept) job: BLOCK replies at once
    kept = push(r, key, "k", "KEEP", 60000, "PRIORITY", 9)
    reserve_one(r, key)
    assert ack(r, key, kept, "RESULT", "x") == 1
    t0 = time.monotonic()
    assert result(r, key, kept, "BLOCK", 0)["result"] == "x"
    assert time.monotonic() - t0 < 0.5


def test_result_block_of_an_unknown_id_replies_nil_at_once(r, key):
    push(r, key, "p")
    for k in (key, key + ":missing"):
        t0 = time.monotonic()
        assert r.execute_command("ONCE.RESULT", k, "no-such-id", "BLOCK", 2000) is None
        assert time.monotonic() - t0 < 0.5, "RESULT BLOCK waited on an id the queue does not know"


def test_result_block_inside_multi_and_lua_does_not_block(r, key):
    job = push(r, key, "p")
    p = r.pipeline(transaction=True)
    p.execute_command("ONCE.RESULT", key, job, "BLOCK", 0)
    t0 = time.monotonic()
    out = p.execute()
    assert time.monotonic() - t0 < 0.5
    assert as_map(out[0])["state"] == "ready", out
    t0 = time.monotonic()
    got = r.eval("return redis.call('ONCE.RESULT', KEYS[1], ARGV[1], 'BLOCK', 0)", 1, key, job)
    assert time.monotonic() - t0 < 0.5
    assert as_map(got)["state"] == "ready", got


# ---- CALL ------------------------------------------------------------------------------------------------------

def test_call_round_trip_with_a_worker(server, r, r3, key):
    """CALL pushes, blocks, and replies the outcome a worker thread gives with ACK ... RESULT: one round trip."""
    worker = Worker(server, key, progress="half way")
    try:
        times = []
        for i in range(20):
            t0 = time.monotonic()
            got = as_map(r.execute_command("ONCE.CALL", key, f"job-{i}", "TIMEOUT", 5000))
            times.append(time.monotonic() - t0)
            assert got["state"] == "completed" and got["result"] == f"JOB-{i}", got
            assert got["attempts"] == 1 and got["error"] is None and isinstance(got["finished"], int), got
        assert max(times) < 1.0, times
        # PUSH options go with it; KEEP keeps the outcome for RESULT afterwards; RESP3 gets a map
        got = r3.execute_command("ONCE.CALL", key, "kept", "ID", "call-kept", "PRIORITY", 3, "KEEP", 60000,
                                 "TIMEOUT", 5000)
        assert isinstance(got, dict) and list(got) == RESULT_FIELDS and got["result"] == "KEPT", got
        assert result(r, key, "call-kept") == got
        # a delayed CALL waits for the promotion, then the worker
        t0 = time.monotonic()
        got = as_map(r.execute_command("ONCE.CALL", key, "later", "DELAY", 100, "TIMEOUT", 5000))
        assert got["result"] == "LATER" and time.monotonic() - t0 >= 0.09, got
    finally:
        worker.close()
    assert len(worker.done) == 22
    s = stats(r, key)
    assert (s["ready"], s["reserved"], s["acked_total"], s["completed"]) == (0, 0, 22, 1), s
    print(f"\n{server.kind}: CALL round trip through one worker thread: "
          f"p50 {sorted(times)[len(times) // 2] * 1000:.2f} ms, max {max(times) * 1000:.2f} ms")


def test_call_timeout_without_cancel_leaves_the_job_queued(r, key):
    t0 = time.monotonic()
    assert r.execute_command("ONCE.CALL", key, "nobody-home", "ID", "c1", "KEEP", 60000, "TIMEOUT", 100) is None
    assert 0.09 <= time.monotonic() - t0 < 1.5
    assert state(r, key, "c1") == "ready"
    assert [j["id"] for j in listed(r, key, "ready")] == ["c1"]
    # a worker comes later: the job completes, and its outcome is there to read
    job_id, _, attempt = reserve_one(r, key)
    assert job_id == "c1"
    assert ack(r, key, "c1", "ATTEMPT", attempt, "RESULT", "late answer") == 1
    got = result(r, key, "c1")
    assert got["state"] == "completed" and got["result"] == "late answer", got


@pytest.mark.parametrize("keep", [0, 60000])
def test_call_timeout_with_cancel_cancels_the_job(r, key, keep):
    t0 = time.monotonic()
    assert r.execute_command("ONCE.CALL", key, "nobody-home", "ID", "c1", "KEEP", keep, "TIMEOUT", 100,
                             "CANCEL") is None
    assert 0.09 <= time.monotonic() - t0 < 1.5
    s = stats(r, key)
    assert (s["ready"], s["cancelled"]) == (0, 1 if keep else 0), s
    if keep:
        got = result(r, key, "c1")
        assert got["state"] == "cancelled" and got["error"] == "call timed out" and got["attempts"] == 0, got
    else:
        assert inspect(r, key, "c1") is None
    assert reserve(r, key) is None


def test_call_timeout_with_cancel_stops_a_running_job(server, r, key):
    """CANCEL at the timeout also stops a job a worker holds: the holder's ACK then replies 0."""
    bg = start_blocked(server, r, "ONCE.CALL", key, "slow", "ID", "c2", "KEEP", 60000, "TIMEOUT", 300, "CANCEL")
    job_id, _, attempt = reserve_one(r, key)
    assert job_id == "c2"
    assert bg.join() is None
    got = result(r, key, "c2")
    assert got["state"] == "cancelled" and got["error"] == "call timed out" and got["attempts"] == 1, got
    assert ack(r, key, "c2", "ATTEMPT", attempt, "RESULT", "too late") == 0
    assert result(r, key, "c2") == got
    assert stats(r, key)["reserved"] == 0


def test_call_inside_multi_lua_and_functions_is_refused(server, r, key):
    raw = RawClient(server.port)
    try:
        assert raw.call("MULTI") == ("status", "OK")
        queued = raw.call("ONCE.CALL", key, "p", "TIMEOUT", 1000)
        if queued == ("status", "QUEUED"):
            out = raw.call("EXEC")
            assert out == [("error", CALL_BLOCKS)], out
        else:                                                   # refused when queued: EXEC aborts
            assert queued == ("error", CALL_BLOCKS), queued
            assert raw.call("EXEC")[0] == "error"
        err = raw.error("EVAL", "return redis.call('ONCE.CALL', KEYS[1], 'p', 'TIMEOUT', 1000)", 1, key)
        assert CALL_BLOCKS[len("ERR "):] in err, err
        lib = ("#!lua name=oncecall\n"
               "redis.register_function('ocall', function(keys, args) "
               "return redis.call('ONCE.CALL', keys[1], 'p', 'TIMEOUT', 1000) end)")
        assert raw.call("FUNCTION", "LOAD", "REPLACE", lib) == b"oncecall"
        err = raw.error("FCALL", "ocall", 1, key)
        assert CALL_BLOCKS[len("ERR "):] in err, err
        raw.call("FUNCTION", "DELETE", "oncecall")
    finally:
        raw.close()
    assert r.exists(key) == 0, "a refused CALL pushed a job"


# ---- TTL before start ------------------------------------------------------------------------------------------

def test_ttl_dead_and_ttl_drop(server, r, key):
    held = push(r, key, "started in time", "TTL", 100, "PRIORITY", 5)
    assert reserve_one(r, key)[0] == held
    dies = push(r, key, "dies", "TTL", 300)
    dropped = push(r, key, "dropped", "TTL", 300, "DROP")
    delayed = push(r, key, "delayed past its ttl", "TTL", 300, "DELAY", 60000)
    w = start_blocked(server, r, "ONCE.RESULT", key, dies, "BLOCK", 5000)
    got = as_map(w.join())
    assert got["state"] == "dead" and got["error"] == "expired before start" and got["attempts"] == 0, got
    wait_until(lambda: state(r, key, delayed) == "dead" and inspect(r, key, dropped) is None, timeout=3,
               what="the TTLs to run out")
    for job in (dies, delayed):
        j = inspect(r, key, job)
        assert j["last_error"] == "expired before start", j
        assert 300 <= j["died"] - j["created"] < 300 + 500, j
    assert result(r, key, dropped) is None
    s = stats(r, key)
    assert (s["ready"], s["delayed"], s["reserved"], s["dead"]) == (0, 0, 1, 2), s
    assert (s["expired_unstarted_total"], s["dead_total"], s["expired_total"]) == (3, 2, 0), s
    # the reserved job's TTL ran out long ago: it started in time, and nothing happened to it
    assert state(r, key, held) == "reserved"
    assert ack(r, key, held) == 1


# ---- KEEP and KEEP-MAX -----------------------------------------------------------------------------------------

def test_keep_and_keep_max_expiry_by_the_timer(r, key):
    conf = as_map(r.execute_command("ONCE.CONFIGURE", key, "KEEP", 500, "KEEP-MAX", 2))
    assert conf["keep"] == 500 and conf["keep_max"] == 2, conf
    assert as_map(r.execute_command("ONCE.CONFIGURE", key)) == conf
    ids = [push(r, key, f"p{i}", "ID", f"k{i}") for i in range(3)]
    got = reserve(r, key, "COUNT", 3)
    for job_id, payload, attempt in got:
        assert ack(r, key, job_id, "ATTEMPT", attempt, "RESULT", f"r-{payload}") == 1
    # past KEEP-MAX the kept job nearest its expiry (the first acked) is dropped
    s = stats(r, key)
    assert (s["completed"], s["acked_total"]) == (2, 3), s
    assert result(r, key, "k0") is None
    kept = listed(r, key, "completed")
    assert sorted(j["id"] for j in kept) == ["k1", "k2"], kept
    assert all(j["state"] == "completed" for j in kept)
    assert [result(r, key, i)["result"] for i in ids[1:]] == ["r-p1", "r-p2"]
    finished = result(r, key, "k2")["finished"]
    # then the timer frees them once KEEP has passed
    wait_until(lambda: stats(r, key)["completed"] == 0, timeout=3, interval=0.01, what="kept jobs to expire")
    assert server_ms(r) >= finished + 500, "freed before KEEP ran out"
    assert result(r, key, "k1") is None and result(r, key, "k2") is None
    assert listed(r, key, "completed") == []
    assert stats(r, key)["acked_total"] == 3


def test_job_keep_overrides_the_queues(r, key):
    r.execute_command("ONCE.CONFIGURE", key, "KEEP", 60000)
    not_kept = push(r, key, "p", "KEEP", 0)
    plain = push(r, key, "q")
    reserve(r, key, "COUNT", 2)
    assert ack(r, key, not_kept) == 1 and ack(r, key, plain) == 1
    assert result(r, key, not_kept) is None
    assert result(r, key, plain)["state"] == "completed"
    other = key + ":nokeep"                                  # no queue KEEP: the job's own keeps it
    job = push(r, other, "p", "KEEP", 60000)
    reserve_one(r, other)
    assert ack(r, other, job) == 1
    assert result(r, other, job)["state"] == "completed" and stats(r, other)["completed"] == 1


def test_keep_max_drops_the_kept_job_nearest_its_expiry(r, key):
    r.execute_command("ONCE.CONFIGURE", key, "KEEP-MAX", 1)
    long_kept = push(r, key, "a", "KEEP", 600000)
    short_kept = push(r, key, "b", "KEEP", 60000)
    reserve(r, key, "COUNT", 2)
    assert ack(r, key, long_kept) == 1 and ack(r, key, short_kept) == 1
    assert result(r, key, long_kept)["state"] == "completed"
    assert result(r, key, short_kept) is None
    assert stats(r, key)["completed"] == 1


# ---- the dedup window ------------------------------------------------------------------------------------------

def test_dedup_window(server, r, key):
    r.execute_command("ONCE.CONFIGURE", key, "KEEP", 600)
    assert push(r, key, "first", "ID", "x") == "x"
    reserve_one(r, key)
    assert ack(r, key, "x", "RESULT", "r1") == 1
    pushed = stats(r, key)["pushed_total"]
    # while x is kept, a push with its id adds nothing and returns the id
    assert push(r, key, "second", "ID", "x") == "x"
    s = stats(r, key)
    assert (s["pushed_total"], s["ready"], s["completed"]) == (pushed, 0, 1), s
    assert result(r, key, "x")["result"] == "r1"
    # a CALL with that id adds nothing either, and replies the kept outcome at once
    t0 = time.monotonic()
    got = as_map(r.execute_command("ONCE.CALL", key, "third", "ID", "x", "TIMEOUT", 2000))
    assert got["state"] == "completed" and got["result"] == "r1", got
    assert time.monotonic() - t0 < 0.5
    assert stats(r, key)["pushed_total"] == pushed
    # a kept cancelled job holds its id too
    assert push(r, key, "c", "ID", "y") == "y"
    assert r.execute_command("ONCE.CANCEL", key, "y") == 1
    assert push(r, key, "c again", "ID", "y") == "y"
    assert result(r, key, "y")["state"] == "cancelled"
    assert stats(r, key)["pushed_total"] == pushed + 1
    # once x's KEEP has run out the id is free: a push adds a new job
    wait_until(lambda: result(r, key, "x") is None, timeout=3, interval=0.01, what="x to expire")
    assert push(r, key, "fresh", "ID", "x") == "x"
    assert stats(r, key)["pushed_total"] == pushed + 2
    got = result(r, key, "x")
    assert got["state"] == "ready" and got["result"] is None and got["attempts"] == 0, got
    assert inspect(r, key, "x")["payload"] == "fresh"


# ---- PROGRESS --------------------------------------------------------------------------------------------------

def test_progress_is_fenced(r, key):
    r.execute_command("ONCE.CONFIGURE", key, "EVENTS-MAX", 100, "KEEP", 60000)
    job = push(r, key, "p", "RETRIES", 3)
    assert r.execute_command("ONCE.PROGRESS", key, job, "too early") == 0      # ready: not reserved
    assert r.execute_command("ONCE.PROGRESS", key, "unknown", "x") == 0
    assert r.execute_command("ONCE.PROGRESS", key + ":missing", "unknown", "x") == 0
    _, _, attempt = reserve_one(r, key)
    assert r.execute_command("ONCE.PROGRESS", key, job, "wrong", "ATTEMPT", attempt + 1) == 0
    assert inspect(r, key, job)["progress"] is None and result(r, key, job)["progress"] is None
    assert r.execute_command("ONCE.PROGRESS", key, job, "10%", "ATTEMPT", attempt) == 1
    assert r.execute_command("ONCE.PROGRESS", key, job, "20%") == 1
    assert inspect(r, key, job)["progress"] == "20%"
    got = result(r, key, job)
    assert got["state"] == "reserved" and got["progress"] == "20%" and got["finished"] is None, got
    # the next attempt: the old reservation's progress reports are refused
    assert r.execute_command("ONCE.NACK", key, job, "ATTEMPT", attempt, "DELAY", 0) == 1
    assert r.execute_command("ONCE.PROGRESS", key, job, "not reserved", "ATTEMPT", attempt) == 0
    _, _, attempt2 = reserve_one(r, key)
    assert r.execute_command("ONCE.PROGRESS", key, job, "stale", "ATTEMPT", attempt) == 0
    assert r.execute_command("ONCE.PROGRESS", key, job, "30%", "ATTEMPT", attempt2) == 1
    assert inspect(r, key, job)["progress"] == "30%" and result(r, key, job)["progress"] == "30%"
    # the event log records each progress stored, with no data in it
    progress_events = [e for e in events(r, key) if e[1] == "progress"]
    assert [(e[2], e[3], e[5]) for e in progress_events] == [(job, 1, None), (job, 1, None), (job, 2, None)], \
        progress_events


# ---- CANCEL of a reserved job ----------------------------------------------------------------------------------

def test_cancel_of_a_reserved_job_and_the_holders_replies(server, r, key):
    r.execute_command("ONCE.CONFIGURE", key, "EVENTS-MAX", 100)
    job = push(r, key, "long task", "KEEP", 60000)
    _, _, attempt = reserve_one(r, key, "LEASE", 60000)
    assert r.execute_command("ONCE.PROGRESS", key, job, "working", "ATTEMPT", attempt) == 1
    w = start_blocked(server, r, "ONCE.RESULT", key, job, "BLOCK", 5000)
    assert r.execute_command("ONCE.CANCEL", key, job) == 1
    got = as_map(w.join())
    assert got["state"] == "cancelled" and got["error"] == "cancelled" and got["attempts"] == 1, got
    s = stats(r, key)
    assert (s["reserved"], s["cancelled"], s["acked_total"], s["nacked_total"]) == (0, 1, 0, 0), s
    assert [j["id"] for j in listed(r, key, "cancelled")] == [job]
    # the holder learns it at its next call; nothing it sends changes the outcome
    assert r.execute_command("ONCE.EXTEND", key, job, 60000, "ATTEMPT", attempt) is None
    assert r.execute_command("ONCE.EXTEND", key, job, 60000) is None
    assert r.execute_command("ONCE.PROGRESS", key, job, "still working", "ATTEMPT", attempt) == 0
    assert r.execute_command("ONCE.PROGRESS", key, job, "still working") == 0
    assert r.execute_command("ONCE.NACK", key, job, "ATTEMPT", attempt, "ERROR", "x") == 0
    assert ack(r, key, job, "ATTEMPT", attempt, "RESULT", "done anyway") == 0
    assert ack(r, key, job) == 0
    assert result(r, key, job) == got
    assert r.execute_command("ONCE.CANCEL", key, job) == 0                   # cancelled once only
    kinds = [(e[1], e[2]) for e in events(r, key)]
    assert ("cancel", job) in kinds, kinds
    s = stats(r, key)
    assert (s["acked_total"], s["nacked_total"], s["cancelled"]) == (0, 0, 1), s


def test_cancel_of_a_reserved_job_without_keep(r, key):
    job = push(r, key, "p")
    _, _, attempt = reserve_one(r, key)
    assert r.execute_command("ONCE.CANCEL", key, job) == 1
    assert inspect(r, key, job) is None and stats(r, key)["reserved"] == 0
    assert ack(r, key, job, "ATTEMPT", attempt) == 0
    assert r.execute_command("ONCE.NACK", key, job, "ATTEMPT", attempt) == 0
    assert r.execute_command("ONCE.EXTEND", key, job, 1000, "ATTEMPT", attempt) is None
    assert r.execute_command("ONCE.PROGRESS", key, job, "x", "ATTEMPT", attempt) == 0


# ---- bad input -------------------------------------------------------------------------------------------------

def arity(cmd):
    return f"ERR wrong number of arguments for '{cmd}' command"


@pytest.fixture
def held(server, r, key):
    """A queue with one reserved job `held` and one ready job `waiting`; a raw client; what they look like."""
    push(r, key, "waiting", "ID", "waiting")
    push(r, key, "held", "ID", "held", "PRIORITY", 1)
    assert reserve_one(r, key)[0] == "held"
    raw = RawClient(server.port)
    look = lambda: (stats(r, key), inspect(r, key, "held"), inspect(r, key, "waiting"))
    yield raw, look
    raw.close()


EXACT = [
    (["ONCE.ACK", "Q", "held", "waiting", "RESULT", "r"], "ERR RESULT goes with a single id"),
    (["ONCE.ACK", "Q", "held", "RESULT", "a", "RESULT", "b"], "ERR option 'RESULT' given twice"),
    (["ONCE.ACK", "Q", "held", "RESULT"], "ERR option 'RESULT' needs a value"),
    (["ONCE.RESERVE", "Q", "ACK", "held", "RESULT"], "ERR option 'RESULT' needs a value"),
    (["ONCE.RESULT", "Q"], arity("once.result")),
    (["ONCE.RESULT", "Q", "held", "waiting"], "ERR unknown option 'waiting'"),
    (["ONCE.RESULT", "Q", "held", "BLOCK"], "ERR option 'BLOCK' needs a value"),
    (["ONCE.RESULT", "Q", "held", "BLOCK", "-1"], "ERR BLOCK must be between 0 and 2147483647, got -1"),
    (["ONCE.RESULT", "Q", "held", "BLOCK", "soon"], "ERR BLOCK must be an integer, got 'soon'"),
    (["ONCE.PROGRESS", "Q", "held"], arity("once.progress")),
    (["ONCE.PROGRESS", "Q", "held", "d", "ATTEMPT", "0"],
     "ERR ATTEMPT must be between 1 and 9223372036854775807, got 0"),
    (["ONCE.PROGRESS", "Q", "held", "d", "FOO", "1"], "ERR unknown option 'FOO'"),
    (["ONCE.CALL", "Q"], arity("once.call")),
    (["ONCE.CALL", "Q", "p", "TIMEOUT", "soon"], "ERR TIMEOUT must be an integer, got 'soon'"),
    (["ONCE.CALL", "Q", "p", "TIMEOUT", "100", "TIMEOUT", "100"], "ERR option 'TIMEOUT' given twice"),
    (["ONCE.PUSH", "Q", "p", "KEEP", "abc"], "ERR KEEP must be an integer, got 'abc'"),
    (["ONCE.PUSH", "Q", "p", "KEEP", "1", "KEEP", "1"], "ERR option 'KEEP' given twice"),
    (["ONCE.PUSH", "Q", "p", "TTL"], "ERR option 'TTL' needs a value"),
    (["ONCE.BULK", "Q", "KEEP", "100", "PAYLOADS", "a"], "ERR KEEP and TTL are not BULK options"),
    (["ONCE.BULK", "Q", "TTL", "100", "PAYLOADS", "a"], "ERR KEEP and TTL are not BULK options"),
]

# (args, what the error must start with, words it must contain)
NAMED = [
    (["ONCE.CALL", "Q", "p"], "ERR ", ["TIMEOUT"]),                                    # TIMEOUT missing
    (["ONCE.CALL", "Q", "p", "ID", "c"], "ERR ", ["TIMEOUT"]),
    (["ONCE.CALL", "Q", "p", "TIMEOUT", "-1"], "ERR TIMEOUT must be between ", [", got -1"]),
    (["ONCE.PUSH", "Q", "p", "KEEP", "-1"], "ERR KEEP must be between 0 and ", [", got -1"]),
    (["ONCE.PUSH", "Q", "p", "TTL", "-1"], "ERR TTL must be between ", [", got -1"]),
    (["ONCE.PUSH", "Q", "p", "DROP"], "ERR ", ["DROP"]),                               # DROP without TTL
    (["ONCE.CALL", "Q", "p", "KEEP", "-5", "TIMEOUT", "100"], "ERR KEEP must be between 0 and ", [", got -5"]),
    (["ONCE.CONFIGURE", "Q", "KEEP", "-1"], "ERR KEEP must be between 0 and ", [", got -1"]),
    (["ONCE.CONFIGURE", "Q", "KEEP-MAX", "-1"], "ERR KEEP-MAX must be between 0 and ", [", got -1"]),
]


@pytest.mark.parametrize("case", EXACT, ids=lambda c: " ".join(c[0])[:60])
def test_bad_input_exact_error(r, key, held, case):
    raw, look = held
    args, expected = case
    before = look()
    assert raw.error(*[key if a == "Q" else a for a in args]) == expected
    assert look() == before, "a refused command changed the queue"


@pytest.mark.parametrize("case", NAMED, ids=lambda c: " ".join(c[0])[:60])
def test_bad_input_error_names_the_problem(r, key, held, case):
    raw, look = held
    args, prefix, words = case
    before = look()
    err = raw.error(*[key if a == "Q" else a for a in args])
    assert err.startswith(prefix) and all(w in err for w in words), err
    assert look() == before, "a refused command changed the queue"


def test_bad_input_on_keys_that_are_no_queue(server, r, key):
    raw = RawClient(server.port)
    r.set(key, "a string")
    wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value"
    for args in (["ONCE.RESULT", key, "x"], ["ONCE.RESULT", key, "x", "BLOCK", 10],
                 ["ONCE.CALL", key, "p", "TIMEOUT", 10], ["ONCE.PROGRESS", key, "x", "d"]):
        assert raw.error(*args) == wrongtype, args
    # a CALL refused for its options creates no key
    missing = key + ":new"
    assert raw.error("ONCE.CALL", missing, "p").startswith("ERR ")
    assert raw.error("ONCE.CALL", missing, "p", "TIMEOUT", "-1").startswith("ERR ")
    assert r.exists(missing) == 0
    raw.close()


def test_result_over_the_size_limit(r, key, held):
    raw, look = held
    r.config_set("once.max-payload-bytes", 16)
    try:
        before = look()
        for args in (["ONCE.ACK", key, "held", "RESULT", "x" * 17],
                     ["ONCE.ACK", key, "held", "ATTEMPT", 1, "RESULT", "x" * 17],
                     ["ONCE.RESERVE", key, "ACK", "held", "RESULT", "x" * 17]):
            err = raw.error(*args)
            assert err.startswith("ERR ") and "17 bytes" in err and "16" in err, err
            assert "result" in err.lower() and "once.max-payload-bytes" in err, err
            assert look() == before, "a refused ACK changed the queue"
        assert ack(r, key, "held", "RESULT", "x" * 16) == 1                  # at the limit: fine
    finally:
        r.config_set("once.max-payload-bytes", 67108864)
