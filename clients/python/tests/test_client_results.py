"""Results, waiting for them, progress and cancelling a running job (issue 21), through the Python client, its
worker, the CLI and the dashboard, against real servers (Redis 7.0 and Valkey 9.1, RESP2 and RESP3 where the
`once` fixture runs).

A waiter is shown blocked on the server (INFO clients: blocked_clients) before the job it waits for runs, so each
case tests the wake-up, not a reply that was there already.
"""
import json
import pickle
import threading
import time

import pytest

from once import Once, Pushed, Result
from once_helpers import command_calls, need, run_cli, running_worker, url_of, wait_until


@pytest.fixture
def r(once):
    need(once.redis, "ONCE.RESULT", "ONCE.CALL", "ONCE.PROGRESS")
    return once.redis


def blocked_clients(r):
    return int(r.info("clients")["blocked_clients"])


def in_thread(fn, *args, **kw):
    """Runs fn in a thread; the returned dict gets 'value' or 'error' when it ends."""
    out = {}

    def run():
        try:
            out["value"] = fn(*args, **kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which asserts on it
            out["error"] = exc
    t = threading.Thread(target=run, daemon=True)
    t.start()
    out["thread"] = t
    return out


def joined(out, timeout=10):
    out["thread"].join(timeout)
    assert not out["thread"].is_alive(), "the waiting call did not return"
    if "error" in out:
        raise out["error"]
    return out["value"]


def timed(fn, *args, **kw):
    start = time.monotonic()
    value = fn(*args, **kw)
    return value, time.monotonic() - start


RETURNS = {"text": "héllo", "bytes": b"\xff\x00raw", "json": {"n": [1, 2.5, None], "ok": True}, "none": None,
           "number": 42}


def test_the_handlers_return_value_is_the_result_push_result_waits(once, r):
    jobs = {name: once.push(name, keep=60_000) for name in RETURNS}
    assert all(isinstance(j, Pushed) and isinstance(j, str) for j in jobs.values())
    with running_worker(once, lambda name: RETURNS[name]):
        got = {name: j.result(timeout=10) for name, j in jobs.items()}
    assert all(isinstance(g, Result) and g.ok and g.done and g.error is None for g in got.values()), got
    assert got["text"].text == "héllo"
    assert got["bytes"].result == b"\xff\x00raw"
    assert got["json"].json() == {"n": [1, 2.5, None], "ok": True}
    assert got["number"].json() == 42
    assert got["none"].result is None and got["none"].json() is None
    assert all(g.attempts == 1 and g.finished > 0 for g in got.values())
    assert once.result(jobs["text"], decode=True).result == "héllo"       # kept: read again after the wait


def test_a_waiter_blocked_before_the_ack_gets_the_outcome_of_a_job_not_kept(once, r):
    job = once.push("x", keep=0)
    waiting = in_thread(job.result, timeout=10)
    wait_until(lambda: blocked_clients(r) >= 1, what="the RESULT ... BLOCK waiter")
    assert "value" not in waiting
    with running_worker(once, lambda data: data.upper()):
        outcome = joined(waiting)
    assert outcome.ok and outcome.text == "X"
    assert once.result(job) is None                   # not kept: gone once finished


def test_result_of_a_dead_job_is_its_last_error(once, r):
    job = once.push("x", retries=0, keep=60_000)

    def fail(data):
        raise ValueError("bad input")
    with running_worker(once, fail):
        outcome, waited = timed(job.result, timeout=10)
    assert outcome.state == "dead" and not outcome.ok and outcome.done
    assert waited < 3, f"RESULT ... BLOCK was not woken by the job's death (it waited {waited:.1f}s)"
    assert "ValueError: bad input" in outcome.error and outcome.result is None


def test_result_times_out_while_unfinished_and_none_for_an_unknown_id(once, r):
    job = once.push("x")
    with pytest.raises(TimeoutError):
        job.result(timeout=0.05)
    assert once.result(job).state == "ready" and not once.result(job).done
    assert once.result("no-such-job") is None


def test_call_round_trip_through_a_worker(once, r):
    with running_worker(once, lambda data: {"echo": data}):
        outcome = once.call("ping", timeout=10)
        assert outcome.ok and outcome.json() == {"echo": "ping"}
        assert once.call("pong", timeout=10, keep=60_000, id="call-1").json() == {"echo": "pong"}
    assert once.result("call-1").state == "completed"


def test_call_timeout_leaves_the_job_queued(once, r):
    assert once.call("nobody works", timeout=0.1, id="late") is None
    info = once.inspect("late")
    assert info is not None and info.state == "ready"
    with running_worker(once, lambda data: "done at last"):
        wait_until(lambda: once.stats().acked_total == 1, what="the queued job acked")


def test_call_timeout_with_cancel_cancels_the_job(once, r):
    assert once.call("nobody works", timeout=0.1, id="given-up", cancel=True, keep=60_000) is None
    outcome = once.result("given-up")
    assert outcome.state == "cancelled" and outcome.error == "call timed out"
    assert once.stats().ready == 0 and once.stats().cancelled == 1
    assert once.call("nobody works", timeout=0.1, id="gone", cancel=True, keep=0) is None
    assert once.inspect("gone") is None


def test_progress_is_fenced_and_shown_by_result_and_inspect(once, r):
    jid = once.push("long")
    [job] = once.reserve(lease_ms=60_000)
    assert job.progress({"done": 3, "of": 10}) is True
    assert once.result(jid).progress_json() == {"done": 3, "of": 10}
    assert once.inspect(jid).progress == b'{"done":3,"of":10}'
    assert once.progress(jid, "stale", attempt=job.attempt + 1) is False      # another attempt: fenced
    assert once.progress(jid, "half", attempt=job.attempt) is True
    assert once.result(jid, decode=True).progress == "half"
    assert once.ack(job, result="ok") == 1
    assert once.progress(job, "after") is False and not job.cancelled


def test_cancelling_a_running_job_sets_job_cancelled_and_the_worker_does_not_ack(once, r):
    job_id = once.push("stop me", keep=60_000)
    started, seen = threading.Event(), {}

    def handler(job):
        started.set()
        job.progress("working")
        seen["cancelled"] = wait_until(lambda: job.cancelled, timeout=10, interval=0.005, what="job.cancelled")
        return "finished anyway"                  # returned after the cancel: must not become an ACK
    acks = command_calls(r, "once.ack")
    with running_worker(once, handler, pass_job=True, lease_ms=5000, extend_every_ms=50) as w:
        assert started.wait(10)
        wait_until(lambda: once.result(job_id).progress == b"working", what="the handler's progress")
        assert once.cancel(job_id) == 1
        wait_until(lambda: w.summary.cancelled == 1, what="the worker counting the cancel")
    assert seen["cancelled"] is True
    assert w.summary.processed == 0 and w.summary.failed == 0 and w.summary.late_acks == 0
    assert command_calls(r, "once.ack") == acks
    outcome = once.result(job_id)
    assert outcome.state == "cancelled" and outcome.error == "cancelled" and outcome.result is None
    assert once.stats().acked_total == 0


def test_a_result_the_server_refuses_dead_letters_the_job(once, r):
    job = once.push("big", keep=60_000)
    before = r.config_get("once.max-payload-bytes")["once.max-payload-bytes"]
    r.config_set("once.max-payload-bytes", 1024)
    try:
        with running_worker(once, lambda data: b"x" * 2048) as w:
            outcome, waited = timed(job.result, timeout=10)
    finally:
        r.config_set("once.max-payload-bytes", before)
    assert outcome.state == "dead" and "result refused" in outcome.error, outcome
    assert waited < 3, f"RESULT ... BLOCK was not woken by the job's death (it waited {waited:.1f}s)"
    assert w.summary.failed == 1 and w.summary.processed == 0


def test_waits_longer_than_redis_pys_default_socket_timeout(redis_server, queue):
    """redis-py 8's defaults: a 5 s socket timeout and retries. A CALL and a RESULT ... BLOCK that wait 5.5 s end
    with the outcome, and the CALL was sent once (a retry would push a second job)."""
    client = redis_server.client()
    once = Once(client, queue)
    need(client, "ONCE.CALL")
    calls = command_calls(client, "once.call")
    pushed = once.push("first", keep=60_000)
    waiting = in_thread(pushed.result, timeout=30)
    def slow(data):
        time.sleep(5.5)
        return f"slept {data}"
    with running_worker(once, slow, concurrency=2):
        outcome = once.call("second", timeout=30)
        assert outcome.ok and outcome.text == "slept second"
        assert joined(waiting, 30).text == "slept first"
    assert command_calls(client, "once.call") == calls + 1
    assert once.stats().pushed_total == 2
    client.close()


def test_pushed_is_a_plain_id_when_pickled_and_compares_as_its_id(once, r):
    job = once.push("x", id="the-id")
    assert job == "the-id" and job.id == "the-id" and job.queue == once.queue and hash(job) == hash("the-id")
    copy = pickle.loads(pickle.dumps(job))
    assert copy == "the-id" and type(copy) is str
    assert json.dumps({"id": job}) == '{"id": "the-id"}'


def test_configure_keep_applies_to_pushes_without_their_own(once, r):
    settings = once.configure(keep=60_000, keep_max=10)
    assert settings["keep"] == 60_000 and settings["keep_max"] == 10
    job = once.push("x")
    with running_worker(once, lambda data: "kept by the queue"):
        assert job.result(timeout=10).text == "kept by the queue"
    assert once.result(job).state == "completed" and once.stats().completed == 1
    cursor, kept = once.list("completed")
    assert [j.id for j in kept] == [job]


def test_cli_result_and_call(redis_server, queue):
    """The CLI on one server kind only: each run is a process start, and the commands are the client's."""
    url = url_of(redis_server)
    once = Once(redis_server.client(), queue)
    need(once.redis, "ONCE.CALL")
    with running_worker(once, lambda data: {"got": data}):
        p = run_cli(url, "call", once.queue, "hello", "--timeout", 10_000)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout) == {"got": "hello"}
        p = run_cli(url, "call", once.queue, "again", "--timeout", 10_000, "--id", "cli-1", "--keep", 60_000,
                    "--json")
        assert p.returncode == 0, p.stderr
        assert json.loads(json.loads(p.stdout)["result"]) == {"got": "again"}
    shown = json.loads(run_cli(url, "result", once.queue, "cli-1", "--json").stdout)
    assert shown["state"] == "completed" and shown["attempts"] == 1 and shown["finished"] > 0
    p = run_cli(url, "result", once.queue, "no-such-job")
    assert p.returncode == 1 and "no job" in p.stderr and "Traceback" not in p.stderr
    p = run_cli(url, "call", once.queue, "nobody", "--timeout", 50, "--cancel")
    assert p.returncode == 1 and "cancelled" in p.stderr and "Traceback" not in p.stderr
    once.push("waits", id="cli-2")
    p = run_cli(url, "result", once.queue, "cli-2", "--wait", 0.05)
    assert p.returncode == 1 and "still ready" in p.stderr


def test_dashboard_shows_result_progress_and_kept_states(once, r):
    pytest.importorskip("flask")
    from once.web.app import create_app

    done = once.push("finishes", keep=60_000)
    with running_worker(once, lambda data: "<b>the result</b>"):
        done.result(timeout=10)
    running = once.push("runs", keep=60_000)
    [job] = once.reserve(lease_ms=60_000)
    job.progress("half way")
    once.cancel(running)
    app = create_app(r, start_history=False)
    web = app.test_client()
    page = web.get("/job", query_string={"queue": once.queue, "id": done}).get_data(as_text=True)
    assert "completed" in page and "&lt;b&gt;the result&lt;/b&gt;" in page and "<b>the result" not in page
    page = web.get("/job", query_string={"queue": once.queue, "id": running}).get_data(as_text=True)
    assert "cancelled" in page and "half way" in page and 'id="action-cancel"' not in page
    listing = web.get("/jobs", query_string={"queue": once.queue, "state": "completed"})
    assert listing.status_code == 200 and str(done) in listing.get_data(as_text=True)
    assert 'id="tab-cancelled"' in listing.get_data(as_text=True)
    live = web.get("/fragment/queue", query_string={"name": once.queue}).get_data(as_text=True)
    assert 'id="count-completed">1<' in live and 'id="count-cancelled">1<' in live
    assert web.get("/job", query_string={"queue": once.queue, "id": done},
                   headers={"Host": "evil.example"}).status_code == 400


def test_bad_timeouts_are_refused_before_anything_is_sent(once, r):
    with pytest.raises(ValueError):
        once.call("x", timeout=0)
    with pytest.raises(ValueError):
        once.push("x", ttl_drop=True)
    with pytest.raises(ValueError):
        once.ack("a", "b", result="r")
    assert once.stats().pushed_total == 0


def test_ttl_before_start_and_keep_pass_through(once, r):
    dead = once.push("late", ttl=30, keep=60_000)
    dropped = once.push("later", ttl=30, ttl_drop=True)
    wait_until(lambda: once.stats().expired_unstarted_total == 2, what="both jobs expiring unstarted")
    outcome = once.result(dead)
    assert outcome.state == "dead" and outcome.error == "expired before start"
    assert once.inspect(dropped) is None


def test_the_worker_survives_a_result_json_cannot_encode(once, r):
    job = once.push("x", keep=60_000)
    with running_worker(once, lambda data: object()) as w:
        outcome = job.result(timeout=10)
    assert outcome.ok and outcome.result is None and w.summary.processed == 1


def test_registered_callbacks_parse_result_and_call(once, r):
    import once as package
    client = package.register(once.redis)
    job = once.push("x", keep=60_000)
    parsed = client.execute_command("ONCE.RESULT", once.queue, job)
    assert isinstance(parsed, Result) and parsed.state == "ready"
    assert once.result(job).state == "ready"                       # Once parses a parsed reply as it is


def test_aio_call_and_result(once, r, server):
    import asyncio

    import redis.asyncio

    from once.aio import Once as AioOnce

    async def main():
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        aonce = AioOnce(client, once.queue)
        try:
            job_id = await aonce.push("first", keep=60_000)
            assert type(job_id) is str
            outcome = await aonce.result(job_id, wait=10)
            called = await aonce.call("second", timeout=10)
            idle = AioOnce(client, once.queue + ":no-worker")
            late = await idle.call("third", timeout=0.05, cancel=True, id="aio-late", keep=60_000)
            return outcome, called, late, await idle.result("aio-late")
        finally:
            await client.aclose()
    with running_worker(once, lambda data: data[::-1]):
        outcome, called, late, cancelled = asyncio.run(main())
    assert outcome.text == "tsrif" and called.text == "dnoces"
    assert late is None and cancelled.state == "cancelled" and cancelled.error == "call timed out"
