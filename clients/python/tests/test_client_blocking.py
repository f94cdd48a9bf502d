"""Blocking calls on a redis-py client made with its defaults (redis-py 8: a 5 s socket timeout, retries on timeout).

Every wait of the client and the CLI (RESERVE ... BLOCK, EVENTS ... BLOCK, WAIT) must outlast its block time and be
sent exactly once: MONITOR shows what the server received (INFO commandstats will not do: Valkey counts a blocked
command again when it is served).
"""
import contextlib
import socket
import threading
import time

import pytest

from once_helpers import Proc, cli_env, url_of
from once import DurabilityError, Once
from once_helpers import wait_until


class Monitor:
    """The commands the server receives, read off MONITOR on a plain socket (no client timeouts in the way)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"MONITOR\r\n")
        self.sock.settimeout(0.1)
        self.buf = b""
        while not self.buf.startswith(b"+OK\r\n"):
            self._read()

    def _read(self):
        try:
            self.buf += self.sock.recv(65536)
        except socket.timeout:
            pass

    def count(self, command, key):
        """How many times `command` was received for `key` so far."""
        self._read()
        want = f'"{command}" "{key}"'.lower()
        return sum(1 for ln in self.buf.decode(errors="replace").splitlines() if want in ln.lower())

    def close(self):
        self.sock.close()


@contextlib.contextmanager
def monitoring(server):
    m = Monitor(server.port)
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def default_client(server):
    """A client exactly as redis-py makes it (only the address given)."""
    c = server.client()
    timeout = c.connection_pool.connection_kwargs.get("socket_timeout")
    assert timeout is not None and timeout < 6, f"redis-py's default socket_timeout is {timeout!r}: the trap is gone"
    yield c
    c.close()


@pytest.mark.parametrize("protocol", [None, 2], ids=["default-protocol", "resp2"])
def test_reserve_blocks_past_the_socket_timeout_and_is_sent_once(server, default_client, queue, protocol):
    c = default_client if protocol is None else server.client(protocol=protocol)
    once = Once(c, queue)
    with monitoring(server) as m:
        t0 = time.monotonic()
        assert once.reserve(block_ms=6000) == []
        took = time.monotonic() - t0
        assert 5.5 < took < 9.0, took
        assert m.count("ONCE.RESERVE", queue) == 1
        # the connection went back to the pool in step: the next commands read their own replies
        assert once.push("after", id="after") == "after" and once.stats().ready == 1
        assert [j.id for j in once.reserve(block_ms=6000)] == ["after"]
        assert m.count("ONCE.RESERVE", queue) == 2
    if c is not default_client:
        c.close()


def test_reserve_block_0_ended_by_a_push_after_7s(default_client, server, queue):
    once = Once(default_client, queue)
    pusher_client = server.client()

    def push_later():
        time.sleep(7)
        Once(pusher_client, queue).push("late", id="late")
    with monitoring(server) as m:
        t = threading.Thread(target=push_later, daemon=True)
        t.start()
        t0 = time.monotonic()
        jobs = once.reserve(block_ms=0)
        took = time.monotonic() - t0
        t.join()
        assert m.count("ONCE.RESERVE", queue) == 1
    pusher_client.close()
    assert [j.id for j in jobs] == ["late"] and jobs[0].attempt == 1
    assert 6.5 < took < 12.0, took
    assert once.inspect("late").state == "reserved"


def test_durable_push_waits_past_the_socket_timeout_and_pushes_once(server, default_client, queue):
    """WAIT 1 7000 with no replica: the full 7 s, then DurabilityError; the job was pushed exactly once."""
    once = Once(default_client, queue, wait_replicas=1, wait_timeout_ms=7000)
    with monitoring(server) as m:
        t0 = time.monotonic()
        with pytest.raises(DurabilityError) as err:
            once.push("x")
        assert 6.5 < time.monotonic() - t0 < 12.0
        assert m.count("ONCE.PUSH", queue) == 1
    assert err.value.replicas == 0 and err.value.wanted == 1
    assert once.stats().pushed_total == 1


def test_events_follow_survives_10s_of_quiet(default_client, server, queue):
    default_client.execute_command("ONCE.CONFIGURE", queue, "EVENTS-MAX", 100)
    with monitoring(server) as m:
        p = Proc(["-m", "once", "--url", url_of(server), "events", queue, "--follow"], env=cli_env())
        try:
            wait_until(lambda: m.count("ONCE.EVENTS", queue) >= 1, timeout=10,
                       what="the first ONCE.EVENTS of the follower")
            time.sleep(10)                       # quiet: no event for twice the client's socket timeout
            assert p.proc.poll() is None, f"`once events --follow` ended during the quiet: {p.output()}"
            Once(default_client, queue).push("hello", id="after-quiet")
            p.wait_output("after-quiet", timeout=10)
            assert "cannot reach" not in p.output()
            # one ONCE.EVENTS BLOCK 5000 per 5 s of quiet, all on one connection: none was re-sent by a retry
            lines = [ln for ln in m.buf.decode().splitlines() if '"ONCE.EVENTS"' in ln]
            assert 2 <= len(lines) <= 4, lines
            assert len({ln.split("]")[0].split()[-1] for ln in lines}) == 1, lines
        finally:
            p.close()
