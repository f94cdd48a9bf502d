"""Blocking calls on a redis-py client made with its defaults (redis-py 8: a 5 s socket timeout, retries on timeout).

Every wait of the client and the CLI (RESERVE ... BLOCK, EVENTS ... BLOCK, WAIT) must outlast its block time and be
sent exactly once: the server's INFO commandstats counts the calls.
"""
import threading
import time

import pytest

from conftest_web import Proc, cli_env, url_of
from once import DurabilityError, Once
from once_helpers import command_calls, wait_until


@pytest.fixture
def default_client(server):
    """A client exactly as redis-py makes it (only the address given)."""
    c = server.client()
    timeout = c.connection_pool.connection_kwargs.get("socket_timeout")
    assert timeout is not None and timeout < 6, f"redis-py's default socket_timeout is {timeout!r}: the trap is gone"
    yield c
    c.close()


def test_reserve_blocks_past_the_socket_timeout_and_is_sent_once(default_client, queue):
    once = Once(default_client, queue)
    before = command_calls(default_client, "once.reserve")
    t0 = time.monotonic()
    assert once.reserve(block_ms=6000) == []
    took = time.monotonic() - t0
    assert 5.5 < took < 9.0, took
    assert command_calls(default_client, "once.reserve") - before == 1
    # the connection went back to the pool in step: the next command reads its own reply
    assert once.push("after") and once.stats().ready == 1


def test_reserve_block_0_ended_by_a_push_after_7s(default_client, server, queue):
    once = Once(default_client, queue)
    before = command_calls(default_client, "once.reserve")
    pusher_client = server.client()

    def push_later():
        time.sleep(7)
        Once(pusher_client, queue).push("late", id="late")
    t = threading.Thread(target=push_later, daemon=True)
    t.start()
    t0 = time.monotonic()
    jobs = once.reserve(block_ms=0)
    took = time.monotonic() - t0
    t.join()
    pusher_client.close()
    assert [j.id for j in jobs] == ["late"] and jobs[0].attempt == 1
    assert 6.5 < took < 12.0, took
    assert command_calls(default_client, "once.reserve") - before == 1
    assert once.inspect("late").state == "reserved"


def test_durable_push_waits_past_the_socket_timeout_and_pushes_once(default_client, queue):
    """WAIT 1 7000 with no replica: the full 7 s, then DurabilityError; the job was pushed exactly once."""
    once = Once(default_client, queue, wait_replicas=1, wait_timeout_ms=7000)
    before = command_calls(default_client, "once.push")
    t0 = time.monotonic()
    with pytest.raises(DurabilityError) as err:
        once.push("x")
    assert 6.5 < time.monotonic() - t0 < 12.0
    assert err.value.replicas == 0 and err.value.wanted == 1
    assert command_calls(default_client, "once.push") - before == 1
    assert once.stats().pushed_total == 1


def test_events_follow_survives_10s_of_quiet(default_client, server, queue):
    default_client.execute_command("ONCE.CONFIGURE", queue, "EVENTS-MAX", 100)
    before = command_calls(default_client, "once.events")
    p = Proc(["-m", "once", "--url", url_of(server), "events", queue, "--follow"], env=cli_env())
    try:
        wait_until(lambda: command_calls(default_client, "once.events") > before, timeout=10,
                   what="the first ONCE.EVENTS of the follower")
        time.sleep(10)                       # quiet: no event for twice the client's socket timeout
        assert p.proc.poll() is None, f"`once events --follow` ended during the quiet: {p.output()}"
        Once(default_client, queue).push("hello", id="after-quiet")
        p.wait_output("after-quiet", timeout=10)
        assert "cannot reach" not in p.output()
    finally:
        p.close()
