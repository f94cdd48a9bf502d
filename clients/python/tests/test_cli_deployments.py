"""The `once` command line and the exporter in real deployments: a monitor user with read-only key rights on some
queues only (NOPERM on the others is skipped, not fatal), the eviction warning of `stats` and `top`, a missing queue
exiting 1 in every command, and next-page hints that keep the options given."""
import json
import shlex
import uuid

import pytest

from once_helpers import cli_env, need, run_cli, url_of
from once.exporter import registry_for

MONITOR_COMMANDS = ("+ONCE.STATS", "+ONCE.LIST", "+ONCE.INSPECT", "+ONCE.SCHEDULES", "+ONCE.EVENTS", "+ONCE.HISTOGRAM",
                    "+ONCE.GROUPS", "+SCAN", "+TYPE", "+EXISTS", "+INFO")


@pytest.fixture
def r(server):
    c = server.client()
    yield c
    c.close()


@pytest.fixture
def monitor(server, r):
    """Queues `<p>:jobs:a` (readable by the monitor user) and `<p>:secret` (not), and the monitor user's URL."""
    p = f"t{uuid.uuid4().hex[:8]}"
    name, pw = f"mon-{p}", f"pw-{p}"
    r.execute_command("ACL", "SETUSER", name, "on", f">{pw}", "resetkeys", f"%R~{p}:jobs:*", "-@all",
                      *MONITOR_COMMANDS)
    r.execute_command("ONCE.CONFIGURE", f"{p}:jobs:a", "EVENTS-MAX", 100)
    r.execute_command("ONCE.PUSH", f"{p}:jobs:a", "visible", "ID", "v1")
    r.execute_command("ONCE.PUSH", f"{p}:secret", "hidden", "ID", "h1")
    yield p, f"redis://{name}:{pw}@127.0.0.1:{server.port}/0"
    r.execute_command("ACL", "DELUSER", name)
    r.delete(f"{p}:jobs:a", f"{p}:secret")


def test_monitor_user_reads_what_it_may(r, monitor):
    p, url = monitor
    got = json.loads(run_cli(url, "queues", "--match", f"{p}:*", "--json").stdout)
    assert [q["queue"] for q in got] == [f"{p}:jobs:a"] and got[0]["ready"] == 1
    q = run_cli(url, "queues", "--match", f"{p}:*")
    assert q.returncode == 0 and f"{p}:jobs:a" in q.stdout and "secret" not in q.stdout
    assert "left out the queues this user may not read" in q.stderr
    top = run_cli(url, "top", "--match", f"{p}:*", "--iterations", 1, "--json")
    assert top.returncode == 0, top.stderr
    assert [row["queue"] for row in json.loads(top.stdout.splitlines()[0])["queues"]] == [f"{p}:jobs:a"]
    for args in (["stats", f"{p}:jobs:a"], ["list", f"{p}:jobs:a", "ready"], ["inspect", f"{p}:jobs:a", "v1"],
                 ["events", f"{p}:jobs:a"], ["schedules", f"{p}:jobs:a"]):
        c = run_cli(url, *args, "--json")
        assert c.returncode == 0, (args, c.stderr)
    assert json.loads(run_cli(url, "stats", f"{p}:jobs:a", "--json").stdout)["ready"] == 1
    assert [e["event"] for e in json.loads(run_cli(url, "events", f"{p}:jobs:a", "--json").stdout)] == ["push"]
    denied = run_cli(url, "stats", f"{p}:secret")
    assert denied.returncode == 1 and "permission" in denied.stderr.lower(), denied.stderr
    writing = run_cli(url, "purge", f"{p}:jobs:a", "ready", "-y")
    assert writing.returncode == 1 and r.execute_command("ONCE.STATS", f"{p}:jobs:a")[b"ready"] == 1


def test_exporter_skips_queues_the_user_may_not_read(server, monitor):
    import redis
    p, url = monitor
    c = redis.Redis.from_url(url)
    text = "\n".join(f"{m.name} {s.labels} {s.value}" for m in registry_for(c, f"{p}:*").collect() for s in m.samples)
    c.close()
    assert "once_up {} 1.0" in text
    assert f"'queue': '{p}:jobs:a'" in text and "secret" not in text


def test_monitor_follows_events(server, r, monitor):
    from once_helpers import Proc
    p, url = monitor
    f = Proc(["-m", "once", "--url", url, "events", f"{p}:jobs:a", "--follow", "--after", "0", "--limit", "2"],
             env=cli_env())
    try:
        f.wait_output("v1", timeout=10)
        r.execute_command("ONCE.PUSH", f"{p}:jobs:a", "later", "ID", "v2")
        assert f.wait(15) == 0
        assert "v2" in f.output()
    finally:
        f.close()


def _eviction_fields(r):
    info = r.info("once")
    return "once_eviction_risk" in info or "eviction_risk" in info


def test_stats_and_top_warn_about_eviction(server, r, queue):
    if not _eviction_fields(r):
        pytest.skip("this module's INFO once has no eviction fields yet")
    r.execute_command("ONCE.PUSH", queue, "x")
    url = url_of(server)
    want = ("once: warning: maxmemory-policy is allkeys-lru: the server may evict whole queues with every job in "
            "them; set maxmemory-policy noeviction")
    no_info = f"noinfo-{uuid.uuid4().hex[:8]}"
    r.execute_command("ACL", "SETUSER", no_info, "on", ">pw", "resetkeys", f"%R~{queue}", "-@all",
                      *[c for c in MONITOR_COMMANDS if c != "+INFO"])
    r.config_set("maxmemory-policy", "allkeys-lru")
    try:
        for args in (["stats", queue], ["stats", queue, "--json"], ["top", "--iterations", 1, "--match", queue]):
            p = run_cli(url, *args)
            assert p.returncode == 0, p.stderr
            assert p.stderr.splitlines() == [want], (args, p.stderr)
        assert json.loads(run_cli(url, "stats", queue, "--json").stdout)["ready"] == 1   # stdout stays JSON
        families = {m.name: m for m in registry_for(r, queue).collect()}
        assert [s.value for s in families["once_eviction_risk"].samples] == [1.0]
        # a user that may not run INFO: no warning, and no failure either
        p = run_cli(f"redis://{no_info}:pw@127.0.0.1:{server.port}/0", "stats", queue)
        assert p.returncode == 0 and p.stderr == "", p.stderr
    finally:
        r.config_set("maxmemory-policy", "noeviction")
        r.execute_command("ACL", "DELUSER", no_info)
    for args in (["stats", queue], ["top", "--iterations", 1, "--match", queue]):
        p = run_cli(url, *args)
        assert p.returncode == 0 and p.stderr == "", (args, p.stderr)


def test_a_missing_queue_exits_1_everywhere(server, r, queue):
    url = url_of(server)
    missing = queue + ":missing"
    for args in (["stats", missing], ["list", missing, "ready"], ["list", missing, "dead", "--all"],
                 ["inspect", missing, "x"], ["schedules", missing], ["events", missing],
                 ["events", missing, "--follow", "--limit", 1], ["retry", missing, "x"], ["retry", missing, "--all"],
                 ["cancel", missing, "x"], ["purge", missing, "ready", "-y"], ["resume", missing],
                 ["configure", missing]):
        p = run_cli(url, *args)
        assert p.returncode == 1, (args, p.returncode, p.stdout, p.stderr)
        assert p.stderr == f"once: no queue '{missing}' (no such key)\n", (args, p.stderr)
        j = run_cli(url, *args, "--json")
        assert j.returncode == 1 and j.stdout == "", (args, j.stdout)
    assert not r.exists(missing)


def test_next_page_hint_keeps_the_options_given(server, r, queue):
    need(r, "ONCE.LIST")
    for i in range(5):
        r.execute_command("ONCE.PUSH", queue, f"p{i}", "ID", f"j{i}")
    url = url_of(server)
    p = run_cli(url, "list", queue, "ready", "--count", 2, "--payloads")
    hint = [ln for ln in p.stdout.splitlines() if ln.startswith("more: ")]
    assert len(hint) == 1, p.stdout
    argv = shlex.split(hint[0][len("more: "):])
    assert argv[:3] == ["once", "--url", url] and "--count" in argv and "--payloads" in argv
    seen = []
    for _ in range(5):                                  # follow the hints to the end: each page as asked
        out = run_cli(None, *argv[1:], "--json")
        assert out.returncode == 0, out.stderr
        page = json.loads(out.stdout)
        assert len(page["jobs"]) <= 2 and all("payload" in j for j in page["jobs"])
        seen += [j["id"] for j in page["jobs"]]
        if page["cursor"] == "0":
            break
        argv[argv.index("--cursor") + 1] = page["cursor"]
    assert seen == ["j2", "j3", "j4"]
    # with the URL from $ONCE_URL the hint does not add one
    p = run_cli(url, "list", queue, "ready", "--count", 2, use_env_url=True)
    hint = [ln for ln in p.stdout.splitlines() if ln.startswith("more: ")][0]
    assert shlex.split(hint[len("more: "):])[:3] == ["once", "list", queue]


def test_eviction_warning_text():
    from once.admin import eviction_warning
    assert eviction_warning({"once_eviction_risk": 0, "once_evicted_queues": 0}) is None
    assert eviction_warning({"once_queues": 3}) is None                      # a module without the fields
    assert eviction_warning({"once_eviction_risk": 0, "once_evicted_queues": 2, "once_evicted_jobs": 10}) == (
        "2 queue(s) evicted since the server started (10 jobs)")
    assert eviction_warning({"eviction_risk": 1, "eviction_policy": "allkeys-lfu", "evicted_queues": 1}) == (
        "maxmemory-policy is allkeys-lfu: the server may evict whole queues with every job in them; set "
        "maxmemory-policy noeviction; 1 queue(s) evicted since the server started")
