"""`Once.worker` against a real server: processing, failures, retries and dead-letter, monitoring, concurrency,
lease keeping, graceful stop (stop(), SIGTERM/SIGINT), reconnects, and the examples of examples/."""
import os
import signal
import textwrap
import threading
import time

import pytest
import redis

import harness
from once import Job, Once, PermanentError, Stats, Worker
from once_helpers import REPO_ROOT, Proc, command_calls, running_worker, wait_until


# --- processing -----------------------------------------------------------------------------------------------


def test_worker_processes_jobs_on_every_server_kind(once):
    seen = []
    ids = [once.push(f"task {i}") for i in range(5)]
    with running_worker(once, seen.append) as w:
        wait_until(lambda: once.stats().acked_total == 5, what="5 acked jobs")
    assert seen == [f"task {i}" for i in range(5)]          # str by default, FIFO
    assert all(isinstance(x, str) for x in seen)
    s = once.stats()
    assert (s.ready, s.reserved, s.delayed, s.dead) == (0, 0, 0, 0)
    assert all(once.inspect(i) is None for i in ids)
    assert w.summary.processed == 5 and w.summary.failed == 0


def test_worker_acks_with_ack_and_fetch_and_does_not_poll(ronce, rclient):
    acks_before = command_calls(rclient, "once.ack")
    for i in range(5):
        ronce.push(f"t{i}")
    with running_worker(ronce, lambda data: None, block_ms=1000):
        wait_until(lambda: ronce.stats().acked_total == 5, what="5 acked jobs")
        # every ack went inside ONCE.RESERVE ... ACK id: no separate ONCE.ACK
        assert command_calls(rclient, "once.ack") == acks_before
        reserves_idle_start = command_calls(rclient, "once.reserve")
        time.sleep(2.5)
        idle_reserves = command_calls(rclient, "once.reserve") - reserves_idle_start
    # one blocking reserve per block_ms while idle, not a polling loop
    assert idle_reserves <= 4, f"{idle_reserves} RESERVE calls in 2.5 s idle with block_ms=1000"


def test_worker_decode_options(ronce):
    got = []
    ronce.push(b"\xff\xfe raw")
    with running_worker(ronce, got.append, decode=False):
        wait_until(lambda: got, what="a job")
    assert got == [b"\xff\xfe raw"]

    jobs = []
    job_id = ronce.push("whole job")
    with running_worker(ronce, jobs.append, pass_job=True):
        wait_until(lambda: jobs, what="a job")
    assert isinstance(jobs[0], Job) and jobs[0].id == job_id and jobs[0].payload == "whole job"
    assert jobs[0].attempt == 1 and jobs[0].queue == ronce.queue


def test_payload_that_is_not_utf8_fails_the_job_when_decoding(ronce):
    errors = []
    job_id = ronce.push(b"\xff\xfe", retries=0)
    with running_worker(ronce, lambda data: None, lambda job, exc: errors.append((job, exc))):
        wait_until(lambda: errors, what="the error handler")
    job, exc = errors[0]
    assert job.id == job_id and job.payload == b"\xff\xfe" and isinstance(exc, UnicodeDecodeError)
    wait_until(lambda: ronce.inspect(job_id).state == "dead", what="the job to be dead")


@pytest.mark.parametrize("protocol", [2, 3])
def test_worker_with_a_decoding_client(redis_server, queue, protocol):
    c = redis_server.client(decode_responses=True, protocol=protocol)
    try:
        o = Once(c, queue)
        got = []
        o.push("caf\u00e9")
        with running_worker(o, got.append, lambda job, exc: None, lambda stats: got.append(stats)):
            wait_until(lambda: "caf\u00e9" in got and o.stats().acked_total == 1, what="the job")
        assert any(isinstance(x, Stats) for x in got)
    finally:
        c.close()


# --- failures -------------------------------------------------------------------------------------------------


def test_error_handler_receives_the_job_and_the_exception(ronce):
    calls = []
    boom = ValueError("bad payload")

    def execute(data):
        raise boom

    job_id = ronce.push("x", retries=0)
    with running_worker(ronce, execute, lambda task, exc: calls.append((task, exc))) as w:
        wait_until(lambda: ronce.inspect(job_id).state == "dead", what="the job to be dead")
    assert len(calls) == 1
    task, exc = calls[0]
    assert isinstance(task, Job) and task.id == job_id and task.attempt == 1 and task.payload == "x"
    assert exc is boom
    info = ronce.inspect(job_id)
    assert info.last_error == "ValueError: bad payload" and info.attempts == 1
    assert w.summary.failed == 1 and w.summary.processed == 0


def test_failing_job_is_retried_then_dead(ronce):
    attempts = []
    job_id = ronce.push("always fails", retries=2, backoff_ms=10)

    def execute(data):
        raise RuntimeError(f"failure {len(attempts)}")

    with running_worker(ronce, execute, lambda task, exc: attempts.append(task.attempt)) as w:
        wait_until(lambda: ronce.inspect(job_id).state == "dead", timeout=15, what="the job to be dead")
    assert attempts == [1, 2, 3]
    info = ronce.inspect(job_id)
    assert info.attempts == 3 and info.last_error == "RuntimeError: failure 2"
    s = ronce.stats()
    assert (s.dead, s.dead_total, s.retried_total, s.nacked_total, s.acked_total) == (1, 1, 2, 3, 0)
    assert w.summary.failed == 3


def test_failing_then_succeeding_job_is_acked(ronce):
    seen = []

    def execute(data):
        seen.append(data)
        if len(seen) == 1:
            raise RuntimeError("flaky")

    job_id = ronce.push("flaky", retries=3, backoff_ms=10)
    with running_worker(ronce, execute):
        wait_until(lambda: ronce.stats().acked_total == 1, timeout=10, what="the retried job to be acked")
    assert seen == ["flaky", "flaky"]
    assert ronce.inspect(job_id) is None


def test_permanent_error_dead_letters_at_once(ronce):
    def execute(data):
        raise PermanentError("cannot ever work")

    job_id = ronce.push("p", retries=10)
    with running_worker(ronce, execute, lambda task, exc: None):
        wait_until(lambda: ronce.inspect(job_id).state == "dead", what="the job to be dead")
    assert ronce.inspect(job_id).attempts == 1


def test_error_handler_that_raises_does_not_stop_the_worker(ronce):
    seen = []

    def execute(data):
        if data == "bad":
            raise ValueError(data)
        seen.append(data)

    def error_handler(task, exc):
        raise RuntimeError("handler bug")

    bad = ronce.push("bad", retries=0)
    ronce.push("good")
    with running_worker(ronce, execute, error_handler):
        wait_until(lambda: seen == ["good"], what="the next job")
    assert ronce.inspect(bad).state == "dead"


# --- monitoring -----------------------------------------------------------------------------------------------


def test_monitor_handler_receives_stats_with_items_waiting(ronce):
    release = threading.Event()
    stats_seen = []
    ronce.push("first")

    def execute(data):
        release.wait(10)

    with running_worker(ronce, execute, monitor_handler=stats_seen.append, monitor_interval=0.05):
        wait_until(lambda: ronce.stats().reserved == 1, what="the first job to be reserved")
        for i in range(3):
            ronce.push(f"waiting {i}")
        wait_until(lambda: any(s.items_waiting == 3 for s in stats_seen), what="stats with 3 items waiting")
        release.set()
        wait_until(lambda: ronce.stats().acked_total == 4, what="all jobs")
        n = len(stats_seen)
        wait_until(lambda: len(stats_seen) > n + 2, what="more monitor calls")
    assert all(isinstance(s, Stats) for s in stats_seen)
    waiting = [s for s in stats_seen if s.items_waiting == 3][0]
    assert waiting.ready == 3 and waiting.reserved == 1 and waiting.pushed_total == 4
    assert stats_seen[-1].items_waiting == 0 and stats_seen[-1].acked_total == 4


# --- concurrency ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 4])
def test_concurrency_runs_n_jobs_at_once(ronce, n):
    lock = threading.Lock()
    active = [0]
    peak = [0]
    threads = set()

    def execute(data):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            threads.add(threading.get_ident())
        time.sleep(0.4)
        with lock:
            active[0] -= 1

    jobs = 2 * n
    for i in range(jobs):
        ronce.push(f"sleep {i}")
    t0 = time.monotonic()
    with running_worker(ronce, execute, concurrency=n):
        wait_until(lambda: ronce.stats().acked_total == jobs, timeout=20, what="all jobs")
    elapsed = time.monotonic() - t0
    assert peak[0] == n, f"at most {peak[0]} jobs ran at once with concurrency={n}"
    assert len(threads) == n
    if n > 1:
        assert elapsed < jobs * 0.4 * 0.75, f"{jobs} jobs of 0.4 s took {elapsed:.2f}s with concurrency={n}"
    else:
        assert elapsed >= jobs * 0.4


def test_concurrency_threads_block_on_their_own_connections(ronce, rclient):
    with running_worker(ronce, lambda data: None, concurrency=3, block_ms=5000):
        wait_until(lambda: sum("b" in c["flags"] for c in rclient.client_list()) == 3,
                   what="3 clients blocked in RESERVE")
        ids = [ronce.push(f"j{i}") for i in range(6)]
        wait_until(lambda: ronce.stats().acked_total == 6, what="all jobs")
    assert all(ronce.inspect(i) is None for i in ids)


# --- leases ---------------------------------------------------------------------------------------------------


def test_lease_is_extended_while_a_long_job_runs(ronce):
    deadlines = []
    job_id = ronce.push("slow", retries=0)

    def execute(data):
        for _ in range(12):
            time.sleep(0.1)
            deadlines.append(ronce.inspect(job_id).lease_deadline)

    with running_worker(ronce, execute, lease_ms=400, extend_every_ms=100) as w:
        wait_until(lambda: ronce.stats().acked_total == 1, timeout=10, what="the slow job to be acked")
    s = ronce.stats()
    assert s.expired_total == 0 and s.dead_total == 0
    assert deadlines[-1] > deadlines[0] + 500, "the lease deadline did not move forward"
    assert w.summary.processed == 1 and w.summary.lease_lost == 0


def test_without_extension_the_lease_runs_out(ronce):
    # the same job as above, with extensions too rare to keep it: the module expires the lease
    job_id = ronce.push("slow", retries=0)
    with running_worker(ronce, lambda data: time.sleep(1.2), lease_ms=300, extend_every_ms=60000):
        wait_until(lambda: ronce.stats().expired_total == 1, timeout=10, what="the lease to expire")
    info = ronce.inspect(job_id)
    assert info.state == "dead" and info.last_error == "lease expired"


def test_a_lost_lease_is_noticed_and_not_extended(ronce):
    started = threading.Event()
    release = threading.Event()
    job_id = ronce.push("p", retries=0)

    def execute(data):
        started.set()
        release.wait(10)

    with running_worker(ronce, execute, lease_ms=600, extend_every_ms=100) as w:
        assert started.wait(5)
        assert ronce.nack(job_id, attempt=1, error="taken away")    # someone else fails this reservation
        time.sleep(0.4)                                               # a few extension periods
        release.set()
        wait_until(lambda: w.summary.processed == 1, what="the job to finish")
        wait_until(lambda: w.summary.lease_lost == 1, what="the lost lease to be counted")
    info = ronce.inspect(job_id)
    assert info.state == "dead" and info.last_error == "taken away"


# --- stopping -------------------------------------------------------------------------------------------------


def test_stop_finishes_the_job_in_hand_and_reserves_no_more(ronce):
    started = threading.Event()
    release = threading.Event()
    first = ronce.push("first")
    second = ronce.push("second")
    seen = []

    def execute(data):
        seen.append(data)
        started.set()
        release.wait(10)

    w = Worker(ronce, execute, block_ms=1000).start()
    try:
        assert started.wait(5)
        w.stop()
        time.sleep(0.2)
        assert not w.join(0), "the worker ended before its job"
        release.set()
        assert w.join(10), "the worker did not stop"
    finally:
        w.stop()
        release.set()
        w.join(10)
    assert w.error is None
    assert seen == ["first"]
    assert ronce.inspect(first) is None                       # acked
    assert ronce.inspect(second).state == "ready"             # never reserved
    assert ronce.stats().reserved == 0


def test_stop_wakes_an_idle_blocked_worker_quickly(ronce, rclient):
    w = Worker(ronce, lambda data: None, block_ms=30000).start()
    try:
        wait_until(lambda: any("b" in c["flags"] for c in rclient.client_list()), what="the worker to block")
        t0 = time.monotonic()
        w.stop()
        assert w.join(5), "the worker did not stop within 5 s (blocked reserve not woken)"
        assert time.monotonic() - t0 < 3
    finally:
        w.stop()
        w.join(40)
    assert w.error is None


def test_once_stop_stops_a_worker_running_in_a_thread(ronce):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("summary", ronce.worker(lambda d: None, block_ms=500)))
    t.start()
    wait_until(lambda: ronce._workers, what="the worker to start")
    ronce.push("one")
    wait_until(lambda: ronce.stats().acked_total == 1, what="the job")
    ronce.stop()
    t.join(10)
    assert not t.is_alive()
    assert out["summary"].processed == 1


def test_stop_event_stops_the_worker(ronce):
    stop = threading.Event()
    w = Worker(ronce, lambda d: None, stop_event=stop, block_ms=500).start()
    stop.set()
    assert w.join(10)


WORKER_SCRIPT = textwrap.dedent("""
    import sys, time, redis
    from once import Once

    port, queue, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])

    def execute(data):
        print("started", data, flush=True)
        time.sleep(seconds)
        print("finished", data, flush=True)

    once = Once(redis.Redis(host="127.0.0.1", port=port), queue)
    summary = once.worker(execute, block_ms=10000)
    print("exited processed=%d" % summary.processed, flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_a_job_lets_it_finish_and_ack(redis_server, ronce, queue, sig):
    first = ronce.push("first")
    second = ronce.push("second")
    p = Proc(["-c", WORKER_SCRIPT, str(redis_server.port), queue, "1.5"])
    try:
        p.wait_output("started first")
        p.proc.send_signal(sig)
        code = p.wait(15)
        out = p.output()
    finally:
        p.close()
    assert code == 0, out
    assert "finished first" in out and "exited processed=1" in out, out
    assert "second" not in out, out
    assert ronce.inspect(first) is None, "the job in hand was not acked"
    assert ronce.inspect(second).state == "ready"
    s = ronce.stats()
    assert s.acked_total == 1 and s.reserved == 0


def test_signal_while_idle_exits_promptly(redis_server, queue):
    p = Proc(["-c", WORKER_SCRIPT, str(redis_server.port), queue, "0"])
    try:
        c = redis_server.client()
        wait_until(lambda: any("b" in x["flags"] for x in c.client_list()), what="the worker to block")
        c.close()
        t0 = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        code = p.wait(15)
        elapsed = time.monotonic() - t0
        out = p.output()
    finally:
        p.close()
    assert code == 0 and "exited processed=0" in out, out
    assert elapsed < 5, f"took {elapsed:.1f}s to exit"


# --- connection loss ------------------------------------------------------------------------------------------


def test_worker_survives_a_server_restart(queue):
    server = harness.Server("redis" if "redis" in harness.kinds() else harness.kinds()[0])
    try:
        client = server.client()
        once = Once(client, queue)
        seen = []
        with running_worker(once, seen.append, block_ms=500, max_backoff=0.3) as w:
            once.push("before")
            wait_until(lambda: seen == ["before"], what="the first job")
            server.restart()                           # same port; the data set is gone (no persistence)
            job_id = once.push("after")
            wait_until(lambda: seen == ["before", "after"], timeout=15, what="a job after the restart")
            wait_until(lambda: once.inspect(job_id) is None, what="the job after the restart to be acked")
            assert w._bg.is_alive()
        client.close()
    finally:
        server.close()


# --- the examples ---------------------------------------------------------------------------------------------


def test_examples_producer_and_consumer(kind):
    server = harness.Server(kind)
    consumer = producer = None
    try:
        env = dict(os.environ, ONCE_HOST="127.0.0.1", ONCE_PORT=str(server.port), PYTHONUNBUFFERED="1")
        env.pop("PYTHONPATH", None)   # the examples find the package of this checkout themselves
        consumer = Proc([os.path.join(REPO_ROOT, "examples", "task_consumer.py")], env=env)
        producer = Proc([os.path.join(REPO_ROOT, "examples", "task_producer.py"), "127.0.0.1", str(server.port)],
                        env=dict(env, ONCE_PORT="1"))     # argv wins over the environment
        consumer.wait_output("Queue size: 0", timeout=10)
        consumer.wait_output("Processing task: Task created at", timeout=10)
        wait_until(lambda: consumer.output().count("Processing task: Task created at") >= 2, timeout=10,
                   what="a second task")
        producer.proc.send_signal(signal.SIGINT)
        consumer.proc.send_signal(signal.SIGTERM)
        assert consumer.wait(15) == 0, consumer.output()
        assert producer.wait(15) == 0, producer.output()
        out = consumer.output()
        lines = [ln for ln in out.splitlines() if ln.startswith("Processing task:")]
        assert all(ln.startswith("Processing task: Task created at ") for ln in lines), out
        assert "b'" not in out, out
        number = int(lines[0].rsplit(":", 1)[1])
        assert 0 <= number <= 100
        s = Once(server.client(), "tasks").stats()
        assert s.acked_total >= 2 and s.dead_total == 0
    finally:
        for p in (consumer, producer):
            if p is not None:
                p.close()
        server.close()


@pytest.mark.parametrize("kind", harness.kinds())
def test_worker_rides_out_its_master_becoming_a_replica(kind, queue):
    """A failover demotes the worker's server while a RESERVE blocks on it (Redis 7.0 answers UNBLOCKED, Valkey
    MOVED, then READONLY): the worker keeps going and works again once its server is a master."""
    a, b = harness.Server(kind), harness.Server(kind)
    done = []
    try:
        w = Worker(Once(a.client(), queue), done.append, block_ms=5000,
                   handle_signals=False).start()
        time.sleep(0.5)
        a.client().execute_command("REPLICAOF", "127.0.0.1", b.port)
        time.sleep(1.5)
        assert not w.join(0.1), f"the worker stopped: {w.error!r}"
        a.client().execute_command("REPLICAOF", "NO", "ONE")
        a.client().execute_command("ONCE.PUSH", queue, "after")
        wait_until(lambda: done, timeout=10, what="the job pushed after the failover")
        assert done == ["after"] and w.error is None
        w.stop()
        assert w.join(10)
    finally:
        a.close()
        b.close()
