"""`once.aio.Once` against a real server, RESP2 and RESP3: the sync client's methods, awaitable, with the same
results; blocking calls that outlast the client's socket timeout and are sent once; a key of another type named."""
import asyncio
import inspect
import time

import pytest
import redis
import redis.asyncio
from once_helpers import command_calls

import once as sync_once
from once import Job, Stats, WrongTypeError
from once.aio import Once


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def protocol(request):
    return request.param


async def aclient(server, protocol, **kw):
    return redis.asyncio.Redis(host="127.0.0.1", port=server.port, protocol=protocol, **kw)


def test_every_public_method_of_the_sync_client_is_here_with_its_signature():
    for name, fn in inspect.getmembers(sync_once.Once, inspect.isfunction):
        if name.startswith("_"):
            continue
        assert hasattr(Once, name), f"once.aio.Once has no {name}()"
        if name in ("worker", "stop"):
            continue
        assert inspect.signature(getattr(Once, name)) == inspect.signature(fn), name
        assert inspect.iscoroutinefunction(getattr(Once, name)), name


def test_the_methods_give_what_the_sync_client_gives(server, queue, protocol):
    sync = sync_once.Once(server.client(protocol=protocol), queue)

    async def main():
        r = await aclient(server, protocol)
        o = Once(r, queue)
        first = await o.push("hello", retries=1, backoff_ms=1)
        ids = await o.push_many(["a", "b"])
        assert len(ids) == 2 and await o.push("x", id="mine") == "mine"
        info = await o.inspect(first)
        assert info == sync.inspect(first) and info.state == "ready" and info.payload == b"hello"
        stats = await o.stats()
        assert isinstance(stats, Stats) and stats.ready == 4 and stats == sync.stats()
        jobs = await o.reserve(2, lease_ms=5000, decode=True)
        assert [(j.payload, j.attempt, j.queue) for j in jobs] == [("hello", 1, queue), ("a", 1, queue)]
        assert await o.extend(jobs[0], 10000) is not None
        assert await o.nack(jobs[0], error=ValueError("boom")) is True
        acked, more = await o.ack_reserve(jobs[1], 1)
        assert acked == 1 and [j.payload for j in more] == [b"b"]
        assert await o.ack(*more) == 1
        assert await o.ack(more[0]) == 0                     # fenced: that reservation is gone
        assert (await o.inspect(first)).last_error == "ValueError: boom"
        assert await o.cancel("mine") == 1 and await o.retry("nope") == 0
        assert await o.schedule("tick", "@every 1h", "p") > 0
        assert [s.name for s in await o.schedules()] == ["tick"] and await o.unschedule("tick") is True
        assert (await o.group("g")).name == "g"
        await r.aclose()

    run(main())


def test_a_blocking_reserve_outlasts_the_socket_timeout_and_is_sent_once(server, queue, protocol):
    c = server.client()
    before = command_calls(c, "once.reserve")

    async def main():
        r = await aclient(server, protocol, socket_timeout=0.3)
        o = Once(r, queue)
        t0 = time.monotonic()
        got = await o.reserve(block_ms=1200)
        waited = time.monotonic() - t0
        assert got == [] and waited >= 1.1, waited
        await o.push("after")                                 # the connection is still in step
        jobs = await o.reserve(block_ms=1000)
        assert [j.payload for j in jobs] == [b"after"]
        await r.aclose()

    run(main())
    assert command_calls(c, "once.reserve") - before == 2


def test_a_blocking_reserve_is_woken_by_a_push(server, queue, protocol):
    async def main():
        r = await aclient(server, protocol)
        o = Once(r, queue)
        waiting = asyncio.ensure_future(o.reserve(block_ms=0))     # forever, on a connection of its own
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await o.push("wake")
        jobs = await asyncio.wait_for(waiting, 5)
        assert isinstance(jobs[0], Job) and jobs[0].payload == b"wake"
        await r.aclose()

    run(main())


def test_a_key_of_another_type_is_named(server, queue, protocol):
    server.client().set(queue, "a string")

    async def main():
        r = await aclient(server, protocol)
        o = Once(r, queue)
        with pytest.raises(WrongTypeError) as e:
            await o.stats()
        assert e.value.held == "string" and "holds a string, not a Once queue" in str(e.value)
        with pytest.raises(WrongTypeError):
            await o.reserve(block_ms=100)
        with pytest.raises(NotImplementedError, match="not in once.aio yet"):
            await o.push("x", wait_replicas=1)
        await r.aclose()

    run(main())
