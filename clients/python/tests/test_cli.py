"""The `once` command line, run as the real console script against real servers (Redis 7.0 and Valkey 9.1).

Each subcommand's table output and its --json are checked against what the server itself replies. Tests of the
commands of "Operating a queue" (LIST, PURGE, RETRY ALL, PAUSE/RESUME, CONFIGURE, EVENTS) skip while the module
under test does not have them yet.
"""
import json
import subprocess
import sys
import time

import pytest

from once_helpers import cli_env, cli_json, make_dead, need, once_script, retry_all_supported, run_cli, url_of
from once.admin import Admin

import harness


@pytest.fixture(scope="module")
def r(server):
    c = server.client()
    yield c
    c.close()


@pytest.fixture
def url(server):
    return url_of(server)


def push(r, queue, payload, *opts):
    jid = r.execute_command("ONCE.PUSH", queue, payload, *opts)
    return jid.decode()


def test_console_script_is_installed_from_this_checkout():
    script = once_script()
    assert script, "the console script `once` is not installed (pip install -e './clients/python[all]')"
    p = subprocess.run([script, "--version"], capture_output=True, text=True, env=cli_env(), timeout=30)
    assert p.returncode == 0, p.stderr
    import once
    assert p.stdout.strip() == f"once {once.__version__}"
    # python -m once is the same program
    p2 = subprocess.run([sys.executable, "-m", "once", "--version"], capture_output=True, text=True,
                        env=cli_env(), timeout=30)
    assert p2.returncode == 0 and p2.stdout == p.stdout


def test_help_and_usage_errors(url):
    p = run_cli(url, "--help")
    assert p.returncode == 0
    for sub in ("queues", "stats", "list", "inspect", "retry", "cancel", "purge", "pause", "resume", "schedules",
                "events", "top", "web", "exporter"):
        assert sub in p.stdout
    p = run_cli(url)
    assert p.returncode == 2
    p = run_cli(url, "list", "q", "sideways")
    assert p.returncode == 2 and "invalid choice" in p.stderr
    p = run_cli(url, "retry", "q")                  # neither ids nor --all
    assert p.returncode == 2
    p = run_cli(url, "purge", "q", "reserved")      # reserved jobs are not purgeable
    assert p.returncode == 2


def test_cannot_connect_exits_3():
    port = harness.free_port()
    p = run_cli(f"redis://127.0.0.1:{port}/0", "queues")
    assert p.returncode == 3
    assert "cannot reach" in p.stderr and str(port) in p.stderr


def test_url_from_environment(server, r, queue):
    push(r, queue, "x")
    p = run_cli(url_of(server), "stats", queue, "--json", use_env_url=True)    # $ONCE_URL, no --url
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["ready"] == 1
    # --url wins over $ONCE_URL
    p = run_cli(f"redis://127.0.0.1:{harness.free_port()}/0", "stats", queue, env={"ONCE_URL": url_of(server)})
    assert p.returncode == 3


def test_queues_lists_every_queue_key_with_counts(server, r):
    db = 3                                           # a database of this test's own
    c = server.client(db=db)
    try:
        c.flushdb()
        u = url_of(server, db)
        p = run_cli(u, "queues")
        assert p.returncode == 0 and "no queues" in p.stdout
        assert cli_json(u, "queues") == []
        for i in range(3):
            c.execute_command("ONCE.PUSH", "alpha", f"a{i}")
        c.execute_command("ONCE.PUSH", "beta:jobs", "b", "DELAY", 600000)
        c.execute_command("ONCE.SCHEDULE", "gamma", "tick", "@every 1h", "p")
        make_dead(c, "beta:jobs", error="nope")
        c.set("plain-string", "x")                   # other key types are not queues
        c.hset("a-hash", "f", "v")
        c.rpush("a-list", "x")
        got = cli_json(u, "queues")
        assert [q["queue"] for q in got] == ["alpha", "beta:jobs", "gamma"]
        for q in got:
            want = Admin(c, q["queue"]).stats()
            assert {k: v for k, v in q.items() if k != "queue"} == want
        assert got[0]["ready"] == 3 and got[1]["delayed"] == 1 and got[1]["dead"] == 1 and got[2]["schedules"] == 1
        p = run_cli(u, "queues")
        assert p.returncode == 0
        lines = {ln.split("│")[1].strip(): ln for ln in p.stdout.splitlines() if ln.count("│") > 3}
        assert set(lines) >= {"alpha", "beta:jobs", "gamma"}
        cells = [x.strip() for x in lines["beta:jobs"].split("│")[1:-1]]
        assert cells[:5] == ["beta:jobs", "0", "1", "0", "1"]
        assert "plain-string" not in p.stdout and "a-hash" not in p.stdout
        assert [q["queue"] for q in cli_json(u, "queues", "--match", "b*")] == ["beta:jobs"]
    finally:
        c.flushdb()
        c.close()


def test_stats(url, r, queue):
    for i in range(4):
        push(r, queue, f"job {i}")
    r.execute_command("ONCE.RESERVE", queue, "COUNT", 2)
    got = cli_json(url, "stats", queue)
    assert got == Admin(r, queue).stats()
    assert got["ready"] == 2 and got["reserved"] == 2 and got["pushed_total"] == 4
    p = run_cli(url, "stats", queue)
    assert p.returncode == 0
    rows = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in p.stdout.splitlines() if ln.count("│") == 3}
    assert rows["ready"] == "2" and rows["reserved"] == "2" and rows["pushed_total"] == "4"
    p = run_cli(url, "stats", queue + ":missing")
    assert p.returncode == 1 and "no queue" in p.stderr
    r.set(queue + ":str", "x")
    p = run_cli(url, "stats", queue + ":str")
    assert p.returncode == 1
    assert p.stderr == (f"once: key '{queue}:str' holds a string, not a Once queue: push jobs with ONCE.PUSH "
                        f"(Once.push)\n")


def test_inspect_shows_the_job_and_never_reads_markup(url, r, queue):
    payload = "[bold red]not markup[/bold red] <script>alert(1)</script>"
    jid = push(r, queue, payload, "PRIORITY", 7)
    got = cli_json(url, "inspect", queue, jid)
    assert got == Admin(r, queue).inspect(jid)
    assert got["payload"] == payload and got["state"] == "ready" and got["priority"] == 7
    p = run_cli(url, "inspect", queue, jid)
    assert p.returncode == 0
    assert "[bold red]not markup[/bold red]" in p.stdout          # shown as written, not as rich markup
    assert jid in p.stdout and "ready" in p.stdout
    dead = make_dead(r, queue, error="Traceback: [red]ValueError[/red]: bad input")
    p = run_cli(url, "inspect", queue, dead)
    assert "Traceback: [red]ValueError[/red]: bad input" in p.stdout and "dead" in p.stdout
    p = run_cli(url, "inspect", queue, "no-such-id")
    assert p.returncode == 1 and "no job 'no-such-id'" in p.stderr
    p = run_cli(url, "inspect", queue, "no-such-id", "--json")
    assert p.returncode == 1 and p.stdout.strip() == "null"


def test_retry_ids_and_cancel(url, r, queue):
    dead = make_dead(r, queue, error="smtp timeout")
    other = push(r, queue, "alive", "DELAY", 600000)
    assert cli_json(url, "retry", queue, dead) == {"retried": 1}
    assert Admin(r, queue).inspect(dead)["state"] == "ready"
    p = run_cli(url, "retry", queue, other)               # not dead: nothing retried, exit 1
    assert p.returncode == 1 and "retried 0 of 1" in p.stdout
    p = run_cli(url, "cancel", queue, other, "nope")
    assert p.returncode == 0 and "cancelled 1 of 2" in p.stdout
    assert Admin(r, queue).inspect(other) is None
    got = r.execute_command("ONCE.RESERVE", queue)
    running = got[0][0].decode()
    p = run_cli(url, "cancel", queue, running, "--json")   # reserved: finishes as cancelled (issue 21)
    assert p.returncode == 0 and json.loads(p.stdout) == {"cancelled": 1}
    assert r.execute_command("ONCE.ACK", queue, running, "ATTEMPT", 1) == 0      # its holder's ACK is refused
    p = run_cli(url, "cancel", queue, running, "--json")   # gone (not kept): nothing to cancel, exit 1
    assert p.returncode == 1 and json.loads(p.stdout) == {"cancelled": 0}


def test_schedules(url, r, queue):
    p = run_cli(url, "schedules", queue)
    assert p.returncode == 1 and f"no queue '{queue}'" in p.stderr
    r.execute_command("ONCE.PUSH", queue, "x")
    assert run_cli(url, "schedules", queue).stdout.strip().startswith("no schedules")
    nxt = r.execute_command("ONCE.SCHEDULE", queue, "nightly", "30 2 * * *", "send digest", "TZ", "Europe/Berlin")
    r.execute_command("ONCE.SCHEDULE", queue, "often", "@every 10m", "poll")
    got = cli_json(url, "schedules", queue)
    assert got == Admin(r, queue).schedules()
    by = {s["name"]: s for s in got}
    assert by["nightly"]["next_fire"] == nxt and by["nightly"]["tz"] == "Europe/Berlin"
    assert by["often"]["spec"] == "@every 10m"
    p = run_cli(url, "schedules", queue)
    assert p.returncode == 0
    for text in ("nightly", "30 2 * * *", "Europe/Berlin", "often", "@every 10m", "send digest"):
        assert text in p.stdout


def test_list_every_state_and_paging(url, r, queue):
    need(r, "ONCE.LIST")
    ids = [push(r, queue, f"job {i}", "PRIORITY", i % 3) for i in range(9)]
    delayed = [push(r, queue, f"later {i}", "DELAY", 600000 + i * 1000) for i in range(3)]
    # the order RESERVE would serve: priority, then FIFO
    want = sorted(ids, key=lambda i: (-(ids.index(i) % 3), ids.index(i)))
    got = cli_json(url, "list", queue, "ready")
    assert [j["id"] for j in got["jobs"]] == want and got["cursor"] == "0"
    assert all("payload" not in j for j in got["jobs"])
    assert [j["id"] for j in cli_json(url, "list", queue, "delayed")["jobs"]] == delayed
    # paging by 2 walks every job exactly once
    seen, cursor = [], "0"
    for _ in range(20):
        page = cli_json(url, "list", queue, "ready", "--count", 2, "--cursor", cursor)
        assert len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["cursor"]
        if cursor == "0":
            break
    assert seen == want
    assert [j["id"] for j in cli_json(url, "list", queue, "ready", "--all", "--count", 4)["jobs"]] == want
    withp = cli_json(url, "list", queue, "ready", "--payloads", "--count", 1)
    assert withp["jobs"][0]["payload"] == f"job {ids.index(want[0])}" == Admin(r, queue).inspect(want[0])["payload"]
    p = run_cli(url, "list", queue, "ready", "--count", 3)
    assert p.returncode == 0 and "--cursor" in p.stdout and want[0] in p.stdout
    dead = make_dead(r, queue, error="poisoned")
    p = run_cli(url, "list", queue, "dead")
    assert dead in p.stdout and "poisoned" in p.stdout and "end of list" in p.stdout
    reserved = r.execute_command("ONCE.RESERVE", queue, "COUNT", 2, "LEASE", 600000)
    got = cli_json(url, "list", queue, "reserved")
    assert [j["id"] for j in got["jobs"]] == [x[0].decode() for x in reserved]
    p = run_cli(url, "list", queue, "ready", "--count", 5000)       # COUNT out of range: the server says so
    assert p.returncode == 1 and "COUNT must be between 1 and 1000" in p.stderr


def test_retry_all(url, r, queue):
    if not retry_all_supported(r):
        p = run_cli(url, "retry", queue, "--all")          # an older module: a clear refusal, not "retried 0"
        assert p.returncode == 1 and "no ONCE.RETRY queue ALL" in p.stderr
        pytest.fail("ONCE.RETRY queue ALL: this repository's module has it; rebuild target/release/libonce.so")
    dead = [make_dead(r, queue, payload=f"d{i}", error="bad") for i in range(3)]
    n = cli_json(url, "retry", queue, "--all")
    assert n == {"retried": 3}
    assert [Admin(r, queue).inspect(i)["state"] for i in dead] == ["ready"] * 3
    p = run_cli(url, "retry", queue, "--all")
    assert p.returncode == 0 and "retried 0 dead" in p.stdout


def test_purge(url, r, queue):
    need(r, "ONCE.PURGE")
    for i in range(5):
        push(r, queue, f"r{i}")
    push(r, queue, "later", "DELAY", 600000)
    p = run_cli(url, "purge", queue, "ready")                          # no tty, no --yes: refused, nothing done
    assert p.returncode == 2 and "--yes" in p.stderr
    assert Admin(r, queue).stats()["ready"] == 5
    assert cli_json(url, "purge", queue, "ready", "--yes") == {"purged": 5}
    s = Admin(r, queue).stats()
    assert s["ready"] == 0 and s["delayed"] == 1
    p = run_cli(url, "purge", queue, "delayed", "-y")
    assert p.returncode == 0 and "purged 1 delayed" in p.stdout


def test_pause_and_resume(url, r, queue):
    need(r, "ONCE.PAUSE", "ONCE.RESUME")
    push(r, queue, "x")
    assert cli_json(url, "pause", queue) == {"paused": True, "changed": True}
    assert Admin(r, queue).stats()["paused"] == 1
    assert r.execute_command("ONCE.RESERVE", queue) is None
    p = run_cli(url, "pause", queue)
    assert p.returncode == 0 and "already paused" in p.stdout
    assert "yes" in [ln.split("│")[2].strip() for ln in run_cli(url, "stats", queue).stdout.splitlines()
                     if "paused" in ln and ln.count("│") == 3]
    p = run_cli(url, "resume", queue)
    assert p.returncode == 0 and f"resumed {queue}" in p.stdout
    assert Admin(r, queue).stats()["paused"] == 0
    assert r.execute_command("ONCE.RESERVE", queue)
    assert "was not paused" in run_cli(url, "resume", queue).stdout
    p = run_cli(url, "resume", queue + ":missing")
    assert p.returncode == 1 and "no queue" in p.stderr and not r.exists(queue + ":missing")
    p = run_cli(url, "pause", queue + ":missing")
    if r.exists(queue + ":missing"):                  # the module keeps a pause made before the first push
        assert p.returncode == 0 and Admin(r, queue + ":missing").stats()["paused"] == 1
    else:
        assert p.returncode == 1 and "does not keep a pause" in p.stderr


def test_configure(url, r, queue):
    need(r, "ONCE.CONFIGURE")
    push(r, queue, "x")
    got = cli_json(url, "configure", queue, "--dead-max", 7, "--dead-ttl", 86400000, "--retries", 2)
    assert got["dead_max"] == 7 and got["dead_ttl"] == 86400000 and got["retries"] == 2
    assert cli_json(url, "configure", queue) == got                   # no options: reads
    assert Admin(r, queue).settings() == got
    p = run_cli(url, "configure", queue)
    assert p.returncode == 0 and "dead_max" in p.stdout and "86400000" in p.stdout
    p = run_cli(url, "configure", queue, "--dead-max", -1)
    assert p.returncode == 1 and "DEAD-MAX must be between" in p.stderr
    assert Admin(r, queue).settings() == got                          # a refused change changes nothing
    assert cli_json(url, "configure", queue, "--events-max", 100)["events_max"] == 100


def test_events_and_follow(url, r, queue):
    need(r, "ONCE.EVENTS", "ONCE.CONFIGURE")
    r.execute_command("ONCE.CONFIGURE", queue, "EVENTS-MAX", 100)
    jid = push(r, queue, "x")
    r.execute_command("ONCE.RESERVE", queue)
    r.execute_command("ONCE.ACK", queue, jid)
    got = cli_json(url, "events", queue)
    assert got == Admin(r, queue).events()
    mine = [(e["event"], e["job_id"]) for e in got if e["job_id"] == jid]
    assert [e for e, _ in mine] == ["push", "reserve", "ack"], mine
    assert all(e["event_id"].isdigit() for e in got) and [int(e["event_id"]) for e in got] == \
        sorted(int(e["event_id"]) for e in got)
    assert [e["attempt"] for e in got if e["job_id"] == jid] == [0, 1, 1]
    p = run_cli(url, "events", queue)
    assert p.returncode == 0 and jid in p.stdout and "ack" in p.stdout
    after = got[-1]["event_id"]
    follow = _start_follow(url, queue, after)
    try:
        time.sleep(0.5)                          # let it block on ONCE.EVENTS BLOCK
        dead = make_dead(r, queue, error="late failure")
        assert follow.wait() == 0                # --limit 3: push, reserve, nack/dead... stops by itself
        out = [json.loads(ln) for ln in follow.output().splitlines() if ln.startswith("{")]
        assert len(out) == 3 and all(e["job_id"] == dead for e in out)
        assert [e["event"] for e in out] == ["push", "reserve", "nack"], out
        assert [int(e["event_id"]) for e in out] == [int(after) + 1, int(after) + 2, int(after) + 3], out
    finally:
        follow.close()


def test_events_follow_by_keyspace_notifications(url, r, queue):
    r.config_set("notify-keyspace-events", "Kd")
    from once_helpers import _ScriptProc
    follow = _ScriptProc([once_script(), "--url", url, "events", queue, "--follow", "--notifications", "--limit", "4",
                          "--json"], env=cli_env())
    try:
        time.sleep(1.0)                                   # subscribed by now
        jid = push(r, queue, "x")
        r.execute_command("ONCE.RESERVE", queue)
        r.execute_command("ONCE.ACK", queue, jid)
        make_dead(r, queue, error="bad")
        assert follow.wait(20) == 0                       # --limit 4: stops by itself
        got = [json.loads(ln)["event"] for ln in follow.output().splitlines() if ln.startswith("{")]
        assert got == ["once.push", "once.reserve", "once.ack", "once.push"], follow.output()
    finally:
        follow.close()
        r.config_set("notify-keyspace-events", "")
    # with notifications off, following says how to turn them on
    quiet = _ScriptProc([once_script(), "--url", url, "events", queue, "--follow", "--notifications", "--limit", "1"],
                        env=cli_env())
    try:
        quiet.wait_output("CONFIG SET notify-keyspace-events Kd", timeout=15)
    finally:
        quiet.close()


def _start_follow(url, queue, after):
    from once_helpers import _ScriptProc
    return _ScriptProc([once_script(), "--url", url, "events", queue, "--follow", "--after", after, "--limit", "3",
                        "--json", "--block-ms", "1000"], env=cli_env())


def test_top_shows_rates_and_counts(url, r, queue):
    push(r, queue, "first")
    top = _top(url, "--iterations", 4, "--interval", 1.0, "--json", "--match", queue)
    try:
        top.wait_output('"queues"', timeout=15)           # the first frame is out: now push
        for i in range(60):
            push(r, queue, f"j{i}")
        assert top.wait(30) == 0
        frames = [json.loads(ln) for ln in top.output().splitlines() if ln.startswith("{")]
        assert len(frames) == 4
        rows = [next(q for q in f["queues"] if q["queue"] == queue) for f in frames]
        assert rows[0]["in_per_s"] is None                   # no rate before two samples
        assert rows[0]["ready"] == 1
        assert rows[-1]["ready"] == Admin(r, queue).stats()["ready"] == 61
        pushed = sum(x["in_per_s"] for x in rows[1:]) * 1.0  # about 1 s apart: the rates add up to the pushes
        assert 35 <= pushed <= 75, rows
    finally:
        top.close()
    p = run_cli(url, "top", "--iterations", 1, "--match", queue)
    assert p.returncode == 0 and queue in p.stdout and "in/s" in p.stdout and "wait p99" in p.stdout


def _top(url, *args):
    from once_helpers import _ScriptProc
    return _ScriptProc([once_script(), "--url", url, "top"] + [str(a) for a in args], env=cli_env())


def test_info(url, r):
    got = cli_json(url, "info")
    info = r.info("once")
    assert got["once_queues"] == info["once_queues"] and "once_timer_ticks" in got
