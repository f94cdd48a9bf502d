"""README's ACL recipes, run as written: the producer, worker and monitor users of "Security and ACLs" drive the
project's own tools (the Python client, the Python worker, the `once` command line, the exporter and the read-only
dashboard) on Redis 7.0 and Valkey 9.1.

The ACL SETUSER lines are read out of README.md, so README and these tests cannot drift apart. A block that uses a
category (`+@...`) is the category form, run where the server has module ACL categories (`ACL CAT` lists `once`);
the other block is the by-name form, run on every server.
"""
import json
import os
import re
import shlex
import time

import pytest
import redis

from once_helpers import Served, run_cli, running_worker, wait_until  # clients/python/tests: the CLI/dashboard helpers
from once import Once, PermanentError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

USERS = ("producer", "worker", "monitor")
# What each user may run among the public ONCE.* commands, by form; "reads" stands for every ONCE read.
GRANTS = {
    "name": {"producer": {"ONCE.PUSH", "ONCE.CALL", "ONCE.AFTER", "ONCE.RESULT", "ONCE.DEPS"},
             "worker": {"ONCE.RESERVE", "ONCE.ACK", "ONCE.NACK", "ONCE.EXTEND", "ONCE.PROGRESS", "ONCE.STATS",
                        "ONCE.RESULT", "ONCE.DEPS"},
             "monitor": {"reads"}},
    "category": {"producer": {"reads", "ONCE.PUSH", "ONCE.CALL", "ONCE.AFTER"},
                 "worker": {"reads", "ONCE.RESERVE", "ONCE.ACK", "ONCE.NACK", "ONCE.EXTEND", "ONCE.PROGRESS"},
                 "monitor": {"reads"}},
}

# Commands a tool may be refused and go on, as README says: redis-py's CLIENT SETINFO at connect, the worker's
# CLIENT ID / CLIENT UNBLOCK (a prompt stop) and INFO (the eviction warning). Any other refusal is a right missing.
TOLERATED = {"producer": {"client|setinfo"},
             "worker": {"client|setinfo", "client|id", "client|unblock", "info"},
             "monitor": {"client|setinfo"}}


def readme_recipes():
    """{"category"|"name": {user: "ACL SETUSER ..."}} from the code blocks of README's "Security and ACLs"."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n## Security and ACLs\n", 1)[1].split("\n## ", 1)[0]
    forms = {}
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", section, re.S | re.M):
        lines = [line.strip() for line in block.splitlines() if line.strip().startswith("ACL SETUSER ")]
        if lines:
            form = "category" if any("+@" in line for line in lines) else "name"
            forms[form] = {shlex.split(line)[2]: line for line in lines}
    return forms


def has_module_categories(r):
    return "once" in r.execute_command("ACL", "CAT")


@pytest.fixture(params=["category", "name"])
def form(request, r):
    if request.param == "category" and not has_module_categories(r):
        pytest.skip("this server has no module ACL categories (Redis 7.0): README's by-name form applies")
    return request.param


@pytest.fixture
def urls(form, server, r):
    """The README users of `form`, made by running their lines verbatim; {user: redis:// URL}."""
    recipes = readme_recipes()[form]
    assert set(recipes) == set(USERS), recipes
    r.execute_command("ACL", "DELUSER", *USERS)
    r.execute_command("ACL", "LOG", "RESET")
    out = {}
    try:
        for user, line in recipes.items():
            args = shlex.split(line)
            r.execute_command(*args)
            password = next(a[1:] for a in args if a.startswith(">"))
            out[user] = f"redis://{user}:{password}@127.0.0.1:{server.port}/0"
        yield out
    finally:
        r.execute_command("ACL", "DELUSER", *USERS)


@pytest.fixture
def queue(key):
    return f"jobs:{key}"


@pytest.fixture
def seeded(r, queue, key):
    """`queue` with 2 ready jobs, 1 dead, a schedule and an event log, and a queue outside `jobs:*` that the monitor
    may not read. Returns (the dead job's id, the unreadable queue)."""
    r.execute_command("ONCE.CONFIGURE", queue, "EVENTS-MAX", 100)
    r.execute_command("ONCE.PUSH", queue, "one")
    r.execute_command("ONCE.PUSH", queue, "two")
    dead = r.execute_command("ONCE.PUSH", queue, "doomed", "RETRIES", 0, "PRIORITY", 10)
    r.execute_command("ONCE.RESERVE", queue)
    r.execute_command("ONCE.NACK", queue, dead, "ERROR", "boom")
    r.execute_command("ONCE.SCHEDULE", queue, "hourly", "@every 1h", "tick")
    hidden = f"secret:{key}"
    r.execute_command("ONCE.PUSH", hidden, "not for the monitor")
    yield dead, hidden
    r.delete(queue, hidden)


def stats(r, queue):
    reply = r.execute_command("ONCE.STATS", queue)
    return dict(zip(reply[::2], reply[1::2])) if isinstance(reply, list) else reply


def refused(r, user):
    """The commands ACL LOG says `user` was refused since the users were made."""
    out = set()
    for entry in r.acl_log():
        if entry["username"] == user and entry["reason"] == "command":
            out.add(entry["object"])
    return out


def once_cli(url, *args):
    """`once --url URL ARGS --json` as the user of URL: the parsed output (one JSON document per line)."""
    p = run_cli(url, *args, "--json", timeout=60)
    assert p.returncode == 0, f"once {' '.join(args)} exited {p.returncode}: {p.stderr}{p.stdout}"
    assert "Traceback" not in p.stderr, p.stderr
    docs = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    return docs[0] if len(docs) == 1 else docs


# ---------------------------------------------------------------------------------------------------------------


def test_readme_has_both_forms_for_the_three_users():
    forms = readme_recipes()
    assert set(forms) == {"category", "name"}, forms
    for form, users in forms.items():
        assert set(users) == set(USERS), (form, users)


def test_each_user_may_run_exactly_the_once_commands_readme_gives_it(form, urls, server):
    """ACL DRYRUN of every public ONCE.* command on a `jobs:` key: allowed exactly where README says. In the category
    form this is what `+@once -@write` must mean (every ONCE read, no ONCE write)."""
    r = server.client(decode_responses=True, protocol=2)
    r.response_callbacks.clear()                   # COMMAND INFO rows as the server sends them
    names = [n.upper() for n in r.execute_command("COMMAND", "LIST", "FILTERBY", "PATTERN", "once.*")]
    info = {row[0].upper(): row for row in r.execute_command("COMMAND", "INFO", *names)}
    reads = {n for n in names if not n.startswith("ONCE._") and "write" not in info[n][2]}
    internal = {n for n in names if n.startswith("ONCE._")}
    assert {"ONCE.STATS", "ONCE.LIST", "ONCE.EVENTS"} <= reads and "ONCE.PUSH" not in reads

    def allowed(user, name):
        arity = abs(int(info[name][1]))
        args = ["jobs:q"] + ["x"] * max(0, arity - 2)
        return r.execute_command("ACL", "DRYRUN", user, name, *args) == "OK"

    for user in USERS:
        want = set()
        for g in GRANTS[form][user]:
            want |= reads if g == "reads" else {g}
        got = {n for n in names if allowed(user, n)}
        assert got == want, f"{form} {user}: may run {sorted(got - want)} beyond README, not {sorted(want - got)}"
        assert not got & internal
    r.close()


def test_what_readme_says_of_categories(r):
    """With module categories `+@all -@write` stops ONCE.PUSH and `-@dangerous` the internal commands; on Redis 7.0
    ONCE commands are in no category (`-@write` leaves PUSH allowed) and `+@once` is an unknown category."""
    r.execute_command("ACL", "SETUSER", "nowrite", "on", ">pw", "~*", "+@all", "-@write", "-@dangerous")
    try:
        push = r.execute_command("ACL", "DRYRUN", "nowrite", "ONCE.PUSH", "jobs:q", "x")
        internal = r.execute_command("ACL", "DRYRUN", "nowrite", "ONCE._PROMOTE", "jobs:q", "1")
        if has_module_categories(r):
            assert push != "OK" and internal != "OK", (push, internal)
        else:
            assert push == "OK", push
            with pytest.raises(redis.ResponseError, match="(?i)unknown"):
                r.execute_command("ACL", "SETUSER", "nowrite", "+@once")
    finally:
        r.execute_command("ACL", "DELUSER", "nowrite")


def test_producer_pushes_with_the_python_client(urls, r, queue):
    producer = redis.Redis.from_url(urls["producer"])
    try:
        job = Once(producer, queue).push("hello", retries=2)
        assert stats(r, queue)["ready"] == 1
        assert r.execute_command("ONCE.INSPECT", queue, job)
        with pytest.raises(redis.exceptions.NoPermissionError):
            Once(producer, queue).reserve()
        with pytest.raises(redis.exceptions.NoPermissionError):
            Once(producer, f"other:{queue}").push("outside jobs:*")
        assert refused(r, "producer") <= TOLERATED["producer"] | {"once.reserve"}
    finally:
        producer.close()


def test_worker_runs_the_python_worker(urls, r, queue):
    """Without CLIENT ID / CLIENT UNBLOCK: jobs run and are acked (RESERVE ... ACK), one raises (NACK), one outlives
    its first lease (EXTEND), the monitor handler reads STATS, and the worker stops."""
    producer, worker = redis.Redis.from_url(urls["producer"]), redis.Redis.from_url(urls["worker"])
    try:
        p = Once(producer, queue)
        for payload in ("a", "b", "c", "fail", "slow"):
            p.push(payload)
        done, seen_stats = [], []

        def execute(data):
            if data == "fail":
                raise PermanentError("no retry for this one")
            if data == "slow":
                time.sleep(2.5)                     # longer than the 1.5 s lease: only EXTEND keeps it
            done.append(data)

        def finished(w):
            assert w.error is None, f"the worker ended with {w.error!r}"
            s = stats(r, queue)
            return s["acked_total"] == 4 and s["dead"] == 1

        with running_worker(Once(worker, queue), execute, monitor_handler=seen_stats.append,
                            lease_ms=1500, extend_every_ms=300, monitor_interval=0.2) as w:
            wait_until(lambda: finished(w), timeout=30, what="4 acked and 1 dead")
        s = stats(r, queue)
        assert sorted(done) == ["a", "b", "c", "slow"]
        assert s["expired_total"] == 0 and s["reserved"] == 0 and s["ready"] == 0, s
        assert seen_stats, "the monitor handler never got STATS"
        assert refused(r, "worker") <= TOLERATED["worker"]
    finally:
        producer.close()
        worker.close()


def test_monitor_runs_the_command_line(urls, r, queue, seeded):
    dead, hidden = seeded
    url = urls["monitor"]
    assert once_cli(url, "stats", queue)["ready"] == 2
    assert [j["id"] for j in once_cli(url, "list", queue, "dead")["jobs"]] == [dead]
    assert once_cli(url, "inspect", queue, dead)["last_error"] == "boom"
    assert [s["name"] for s in once_cli(url, "schedules", queue)] == ["hourly"]
    assert any(e["event"] == "dead" for e in once_cli(url, "events", queue))
    assert once_cli(url, "events", queue, "--follow", "--limit", "1")["event"] == "push"
    assert once_cli(url, "info")["once_queues"] >= 2

    listed = {q["queue"]: q for q in once_cli(url, "queues")}
    assert listed[queue]["dead"] == 1 and hidden not in listed
    top = once_cli(url, "top", "--iterations", "1")
    shown = {q["queue"] for q in top["queues"]}
    assert queue in shown and hidden not in shown

    p = run_cli(url, "pause", queue)
    assert p.returncode == 1 and "permission" in p.stderr.lower() and "Traceback" not in p.stderr, p.stderr
    assert stats(r, queue)["paused"] == 0
    assert refused(r, "monitor") <= TOLERATED["monitor"] | {"once.pause"}


def test_monitor_runs_the_exporter(urls, r, queue, seeded):
    dead, hidden = seeded
    e = Served(urls["monitor"], "exporter", "--port", 0)
    try:
        status, text, _ = e.get("/metrics")
    finally:
        e.close()
    assert status == 200
    assert re.search(r"^once_up 1\.0$", text, re.M), text[:500]
    assert re.search(rf'^once_jobs\{{queue="{re.escape(queue)}",state="dead"\}} 1\.0$', text, re.M), text[:2000]
    assert re.search(r"^once_timer_ticks_total ", text, re.M)
    assert hidden not in text
    assert refused(r, "monitor") <= TOLERATED["monitor"]


def test_monitor_runs_the_read_only_dashboard(urls, r, queue, seeded):
    dead, hidden = seeded
    w = Served(urls["monitor"], "web", "--port", 0, "--read-only")
    try:
        pages = {path: w.get(path) for path in
                 ("/", "/api/queues", f"/queue?name={queue}", f"/jobs?queue={queue}&state=dead",
                  f"/job?queue={queue}&id={dead}", "/metrics")}
    finally:
        w.close()
    for path, (status, body, _) in pages.items():
        assert status == 200, f"GET {path}: {status} {body[:500]}"
    assert queue in pages["/"][1] and hidden not in pages["/"][1]
    assert [q["queue"] for q in json.loads(pages["/api/queues"][1]) if q["queue"] in (queue, hidden)] == [queue]
    assert "boom" in pages[f"/job?queue={queue}&id={dead}"][1]
    assert "hourly" in pages[f"/queue?name={queue}"][1]
    assert refused(r, "monitor") <= TOLERATED["monitor"]
