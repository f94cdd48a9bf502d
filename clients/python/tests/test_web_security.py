"""The dashboard's door (issue 19): it answers only the Host names it is served under, a bearer skips the CSRF check
only when it is the configured token, a read-only monitor user can use it, and it warns when the eviction policy can
drop whole queues. Each test runs the real `once web` against Redis 7.0 and Valkey 9.1 (the `server` fixture).
"""
import re
import uuid

import pytest

from once_helpers import Served, make_dead, run_cli, url_of
from once.admin import Admin
from once_helpers import command_calls, wait_until

pytest.importorskip("flask", reason="flask is not installed (pip install './clients/python[all]')")

EVIL = "evil.example"
READS = ("scan", "type", "exists", "once.stats", "once.list", "once.inspect", "once.schedules", "once.events",
         "once.histogram", "info")


@pytest.fixture(scope="module")
def r(server):
    c = server.client()
    yield c
    c.close()


def port_of(web):
    return int(web.base.rsplit(":", 1)[1])


def session_and_csrf(web, queue, host=None):
    """A session cookie and its CSRF token, from the confirmation page of pausing `queue` (as a browser gets them)."""
    headers = {"Host": host} if host else {}
    status, body, resp_headers = web.get(f"/confirm?queue={queue}&action=pause", headers=headers)
    assert status == 200, body
    cookie = resp_headers["Set-Cookie"].split(";", 1)[0]
    csrf = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
    return cookie, csrf


def paused(r, queue):
    return Admin(r, queue).stats().get("paused")


def reads(r):
    """Calls of each read command so far, from one INFO commandstats (which counts itself as one INFO)."""
    stats = {k.lower(): int(v["calls"]) for k, v in r.info("commandstats").items()}
    return {c: stats.get(f"cmdstat_{c}", 0) for c in READS}


def test_foreign_host_gets_400_on_every_route_and_nothing_is_read_or_changed(server, r, queue):
    jid = make_dead(r, queue, payload="secret payload", error="boom")
    r.config_resetstat()
    # one STATS sample when it starts, then none for an hour: the only reads after it are the requests' own
    web = Served(url_of(server), "web", "--port", 0, "--interval", 3600)
    try:
        wait_until(lambda: command_calls(r, "once.stats") >= 1, timeout=10, what="the dashboard's first sample")
        port = port_of(web)
        cookie, csrf = session_and_csrf(web, queue)
        foreign = {"Host": f"{EVIL}:{port}", "Origin": f"http://{EVIL}:{port}", "Cookie": cookie}
        before = reads(r)
        for path in ("/", "/fragment/overview", "/api/queues", f"/queue?name={queue}", f"/fragment/queue?name={queue}",
                     f"/jobs?queue={queue}&state=dead", f"/job?queue={queue}&id={jid}",
                     f"/confirm?queue={queue}&action=pause", "/login", "/metrics", "/static/once.css", "/no-such"):
            status, body, _ = web.get(path, headers=foreign)
            assert status == 400, (path, status, body[:300])
            assert "does not answer to Host" in body and "secret payload" not in body and queue not in body, path
        status, body = web.post("/action", {"queue": queue, "action": "pause", "csrf": csrf}, headers=foreign)
        assert status == 400, body[:300]
        status, _ = web.post("/login", {"token": "x", "csrf": csrf}, headers=foreign)
        assert status == 400
        after = reads(r)
        assert after.pop("info") == before.pop("info") + 1 and after == before
        assert paused(r, queue) == 0
        # the same POST under an allowed Host does pause: the refusal above was the Host's doing
        web.post("/action", {"queue": queue, "action": "pause", "csrf": csrf}, headers={"Cookie": cookie})
        assert paused(r, queue) == 1
    finally:
        web.close()


def test_the_names_it_is_served_under_answer(server, r, queue):
    r.execute_command("ONCE.PUSH", queue, "x")
    web = Served(url_of(server), "web", "--port", 0, env={"ONCE_WEB_ALLOWED_HOSTS": "dash.example.com,ops.test:8443"})
    try:
        port = port_of(web)
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LocalHost:{port}",
                     "dash.example.com", f"dash.example.com:{port}", "ops.test:8443"):
            status, body, _ = web.get("/api/queues", headers={"Host": host})
            assert status == 200 and queue in body, (host, status, body[:300])
        for host in (f"localhost:{port + 1}", "localhost", f"127.0.0.2:{port}", f"dash.example.com.{EVIL}:{port}",
                     "ops.test", "ops.test:8444", f"{EVIL}:{port}", "", "not a host"):
            status, body, _ = web.get("/api/queues", headers={"Host": host})
            assert status == 400 and queue not in body, (host, status, body[:300])
    finally:
        web.close()


def test_allowed_host_flag(server, r, queue):
    if "--allowed-host" not in run_cli(None, "web", "--help").stdout:
        pytest.skip("once web has no --allowed-host option yet (cli.py; ONCE_WEB_ALLOWED_HOSTS works meanwhile)")
    r.execute_command("ONCE.PUSH", queue, "x")
    web = Served(url_of(server), "web", "--port", 0, "--allowed-host", "dash.example.com",
                 "--allowed-host", "ops.test:8443")
    try:
        for host, want in (("dash.example.com", 200), ("ops.test:8443", 200), ("ops.test", 400), (EVIL, 400)):
            assert web.get("/", headers={"Host": host})[0] == want, host
    finally:
        web.close()


def test_a_bad_allowed_host_is_refused_in_one_line(server):
    p = run_cli(url_of(server), "web", "--port", 0, env={"ONCE_WEB_ALLOWED_HOSTS": "http://dash.example.com/"},
                timeout=30)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().count("\n") == 0 and "'http://dash.example.com/' is not a host name" in p.stderr


def test_the_host_it_binds_answers(server, r, queue):
    r.execute_command("ONCE.PUSH", queue, "x")
    web = Served(url_of(server), "web", "--host", "127.0.0.3", "--port", 0, "--read-only")
    try:
        port = port_of(web)
        assert web.get("/", headers={"Host": f"127.0.0.3:{port}"})[0] == 200
        assert web.get("/", headers={"Host": f"{EVIL}:{port}"})[0] == 400
    finally:
        web.close()


def test_a_junk_bearer_without_token_does_not_skip_the_csrf_check(server, r, queue):
    r.execute_command("ONCE.PUSH", queue, "x")
    web = Served(url_of(server), "web", "--port", 0)
    try:
        status, body = web.post("/action", {"queue": queue, "action": "pause"},
                                headers={"Authorization": "Bearer junk"})
        assert status == 403 and "CSRF" in body
        # a browser's session with a junk bearer still needs its CSRF token
        cookie, csrf = session_and_csrf(web, queue)
        status, _ = web.post("/action", {"queue": queue, "action": "pause"},
                             headers={"Authorization": "Bearer junk", "Cookie": cookie})
        assert status == 403
        assert paused(r, queue) == 0
        status, _ = web.post("/action", {"queue": queue, "action": "pause", "csrf": csrf},
                             headers={"Authorization": "Bearer junk", "Cookie": cookie})
        assert status == 200 and paused(r, queue) == 1
    finally:
        web.close()


def test_only_the_configured_token_as_bearer_skips_the_csrf_check(server, r, queue):
    r.execute_command("ONCE.PUSH", queue, "x")
    web = Served(url_of(server), "web", "--port", 0, "--token", "s3cret-token")
    try:
        for junk in ("junk", "s3cret-toke", "s3cret-token2", "s3cret-tökén"):
            status, _ = web.post("/action", {"queue": queue, "action": "pause"},
                                 headers={"Authorization": f"Bearer {junk}"})
            assert status == 403, junk
        assert paused(r, queue) == 0
        status, body = web.post("/action", {"queue": queue, "action": "pause"},
                                headers={"Authorization": "Bearer s3cret-token"})
        assert status == 200 and '"ok"' in body
        assert paused(r, queue) == 1
        # the right bearer under a foreign Host is still refused at the door
        status, _ = web.post("/action", {"queue": queue, "action": "resume"},
                             headers={"Authorization": "Bearer s3cret-token", "Host": EVIL})
        assert status == 400 and paused(r, queue) == 1
    finally:
        web.close()


def test_eviction_banner_under_allkeys_policies_only(server, r, queue):
    r.execute_command("ONCE.PUSH", queue, "x")
    web = Served(url_of(server), "web", "--port", 0, "--read-only")
    try:
        for path in ("/", f"/queue?name={queue}"):
            status, body, _ = web.get(path)
            assert status == 200 and 'id="eviction-warning"' not in body, path
        r.config_set("maxmemory-policy", "allkeys-lru")
        for path in ("/", f"/queue?name={queue}"):
            status, body, _ = web.get(path)
            assert status == 200 and 'id="eviction-warning"' in body, path
            assert "maxmemory-policy is allkeys-lru" in body and "noeviction" in body
        r.config_set("maxmemory-policy", "noeviction")
        assert 'id="eviction-warning"' not in web.get("/")[1]
    finally:
        r.config_set("maxmemory-policy", "noeviction")
        web.close()


def test_a_key_of_another_type_is_named_plainly(server, r):
    key = "tasks"
    r.delete(key)
    r.rpush(key, "job 1")
    web = Served(url_of(server), "web", "--port", 0, "--read-only")
    try:
        for path in (f"/queue?name={key}", f"/jobs?queue={key}&state=ready", f"/job?queue={key}&id=1"):
            status, body, _ = web.get(path)
            assert status == 409, (path, status)
            assert "key &#39;tasks&#39; holds a list, not a Once queue: push jobs with ONCE.PUSH" in body, path
            assert "WRONGTYPE" not in body
        assert web.get("/queue?name=no-such-queue")[0] == 404
    finally:
        web.close()
        r.delete(key)


def monitor_url(server, user, password):
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


def make_user(r, name, *rules):
    r.execute_command("ACL", "SETUSER", name, "reset", "on", ">pw", *rules)


def test_read_only_dashboard_for_a_monitor_user(server, r):
    tag = uuid.uuid4().hex[:8]
    mine, other = f"jobs:web-{tag}", f"other:web-{tag}"
    user = f"monitor-{tag}"
    jid = make_dead(r, mine, payload="pay me", error="card declined")
    r.execute_command("ONCE.SCHEDULE", mine, "nightly", "30 2 * * *", "digest")
    r.execute_command("ONCE.PUSH", other, "not for the monitor")
    # named one by one: Redis 7.0 has no module ACL categories
    make_user(r, user, "%R~jobs:*", "+once.stats", "+once.list", "+once.inspect", "+once.schedules",
              "+once.events", "+once.histogram", "+once.groups", "+scan", "+type", "+info")
    web = Served(monitor_url(server, user, "pw"), "web", "--port", 0, "--read-only", "--interval", 0.2)
    try:
        status, body, _ = web.get("/")
        assert status == 200, body[:500]
        assert mine in body and other not in body and 'id="hidden-queues"' in body
        status, body, _ = web.get("/api/queues")
        assert status == 200 and mine in body and other not in body
        status, body, _ = web.get(f"/queue?name={mine}")
        assert status == 200, body[:500]
        assert "nightly" in body and "30 2 * * *" in body and 'id="histograms-note"' not in body
        status, body, _ = web.get(f"/jobs?queue={mine}&state=dead")
        assert status == 200 and jid in body
        status, body, _ = web.get(f"/job?queue={mine}&id={jid}")
        assert status == 200 and "card declined" in body
        status, body, _ = web.get(f"/queue?name={other}")
        assert status == 403 and "no permissions" in body.lower() and "not for the monitor" not in body
        # the History thread samples around the key it may not read rather than failing on it
        wait_until(lambda: mine in web.get("/fragment/overview")[1], timeout=5, what="a sampled overview row")
    finally:
        web.close()
        r.execute_command("ACL", "DELUSER", user)


def test_panels_a_monitor_may_not_run_say_so(server, r):
    tag = uuid.uuid4().hex[:8]
    mine, user, a_list = f"jobs:web-{tag}", f"narrow-{tag}", f"jobs:list-{tag}"
    r.execute_command("ONCE.PUSH", mine, "x")
    r.rpush(a_list, "job")
    # EXISTS rather than TYPE, as README's monitor recipe grants
    make_user(r, user, "%R~jobs:*", "+once.stats", "+scan", "+exists")
    web = Served(monitor_url(server, user, "pw"), "web", "--port", 0, "--read-only")
    try:
        status, body, _ = web.get("/")
        assert status == 200 and mine in body and 'id="eviction-warning"' not in body
        status, body, _ = web.get(f"/queue?name={mine}")
        assert status == 200, body[:500]
        for note in ("histograms-note", "schedules-note"):
            assert re.search(f'id="{note}">[^<]*no permissions', body, re.I), note
        assert re.search(r"no permissions[^<]*once\.events", body, re.I)
        assert web.get(f"/queue?name=jobs:none-{tag}")[0] == 404
        status, body, _ = web.get(f"/queue?name={a_list}")
        assert status == 409 and "holds another type, not a Once queue: push jobs with ONCE.PUSH" in body
    finally:
        r.delete(a_list)
        web.close()
        r.execute_command("ACL", "DELUSER", user)

