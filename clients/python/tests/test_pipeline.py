"""ONCE.* commands inside redis-py pipelines and transactions: once.register() sets response callbacks, so each
command returns the typed value the matching Once method returns (RESP2 and RESP3, see the `client` fixture)."""
import pytest

import once
from once import GroupInfo, JobInfo, Once, Schedule, Stats
from once.admin import Admin
from once import Event


@pytest.fixture
def plain_client(server, client):
    """A second client of the same server and protocol, without the callbacks: what Once returns elsewhere."""
    c = server.client(protocol=client.get_connection_kwargs().get("protocol") or 2)
    yield c
    c.close()


def fill(q: Once) -> str:
    """A queue with a job in each interesting shape; returns the id of a ready one."""
    q.redis.execute_command("ONCE.CONFIGURE", q.queue, "EVENTS-MAX", 100)
    q.push("to run")
    q.ack(q.reserve()[0])
    first = q.push("payload é", id="first", retries=2, group="tenant-a")
    q.push("later", delay_ms=60_000)
    q.schedule("tick", "@every 1h", "scheduled")
    return str(first)


@pytest.mark.parametrize("transaction", [False, True], ids=["pipeline", "multi"])
def test_pipeline_returns_the_typed_values(client, plain_client, queue, transaction):
    once.register(client)
    first = fill(Once(plain_client, queue))
    typed = Once(plain_client, queue)
    with client.pipeline(transaction=transaction) as pipe:
        pipe.execute_command("ONCE.STATS", queue)
        pipe.execute_command("ONCE.INSPECT", queue, first)
        pipe.execute_command("ONCE.INSPECT", queue, "no-such-job")
        pipe.execute_command("ONCE.SCHEDULES", queue)
        pipe.execute_command("ONCE.GROUP", queue, "tenant-a")
        pipe.execute_command("ONCE.GROUPS", queue, "CURSOR", "0")
        pipe.execute_command("ONCE.LIST", queue, "ready", "WITHPAYLOADS")
        pipe.execute_command("ONCE.EVENTS", queue)
        pipe.execute_command("ONCE.HISTOGRAM", queue, "wait")
        pipe.execute_command("ONCE.CONFIGURE", queue)
        pipe.execute_command("ONCE.EXTEND", queue, first, 1000)
        stats, info, missing, schedules, group, groups, listed, events, hist, settings, extended = pipe.execute()

    assert isinstance(stats, Stats) and stats == typed.stats()
    assert stats.ready == 1 and stats.delayed == 1 and stats.acked_total == 1
    assert isinstance(info, JobInfo) and info == typed.inspect(first)
    assert info.payload == "payload é".encode() and info.group == "tenant-a"
    assert missing is None
    assert schedules == typed.schedules() and isinstance(schedules[0], Schedule)
    assert group == typed.group("tenant-a") and isinstance(group, GroupInfo) and group.ready == 1
    assert groups == typed.groups() and groups[0] == "0"
    cursor, jobs = listed
    assert cursor == "0" and [j.id for j in jobs] == [first] and jobs[0] == info
    assert [e.event for e in events] == ["push", "reserve", "ack", "push", "push"]
    assert all(isinstance(e, Event) for e in events) and events[3].job_id == first
    assert hist[-1][1] == 1 and all(isinstance(b, float) and isinstance(c, int) for b, c in hist)
    assert settings["events_max"] == 100 and settings["retries"] is None
    assert extended is None                # a ready job has no lease to extend


def test_writes_in_a_pipeline(client, queue):
    once.register(client)
    with client.pipeline(transaction=False) as pipe:
        pipe.execute_command("ONCE.PUSH", queue, "a", "ID", "a")
        pipe.execute_command("ONCE.PUSH", queue, "b")
        pipe.execute_command("ONCE.PAUSE", queue)
        pipe.execute_command("ONCE.PAUSE", queue)
        pipe.execute_command("ONCE.RESUME", queue)
        pipe.execute_command("ONCE.CANCEL", queue, "a", "nope")
        pipe.execute_command("ONCE.UNSCHEDULE", queue, "nope")
        pushed, other, paused, again, resumed, cancelled, unscheduled = pipe.execute()
    assert pushed == "a" and isinstance(other, str) and other != "a"
    assert (paused, again, resumed) == (True, False, True)
    assert cancelled == 1 and unscheduled is False


def test_once_and_admin_on_a_registered_client(client, plain_client, queue):
    """The typed client and Admin give the same results whether the client parses the replies or they do."""
    first = fill(Once(plain_client, queue))
    before = (Once(plain_client, queue).stats(), Admin(plain_client, queue).inspect(first),
              Admin(plain_client, queue).list("ready", payloads=True), Admin(plain_client, queue).events(),
              Admin(plain_client, queue).schedules())
    once.register(client)
    q = Once(client, queue, decode=True)
    admin = Admin(client, queue)
    assert (q.stats(), admin.inspect(first), admin.list("ready", payloads=True), admin.events(),
            admin.schedules()) == before
    assert q.inspect(first).payload == "payload é"
    assert q.schedules()[0].payload == "scheduled"
    assert admin.stats()["ready"] == 1 and admin.settings()["events_max"] == 100
    job_id = q.push("more")
    assert isinstance(job_id, str) and q.inspect(job_id).state == "ready"
    assert q.cancel(job_id) == 1


def test_register_returns_the_client_and_leaves_other_commands(client, queue):
    assert once.register(client) is client
    client.set("plain:" + queue, "v")
    assert client.get("plain:" + queue) == b"v"
    assert client.execute_command("ONCE.STATS", queue) == Stats()      # a missing queue reads as zeros
