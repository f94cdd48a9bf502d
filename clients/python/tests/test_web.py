"""The dashboard (`once web`, started as the real console script) in headless Chromium (Debian's /usr/bin/chromium,
driven by Playwright) against a real redis-server with the module.

Cases needing a command of "Operating a queue" (ONCE.LIST, PURGE, PAUSE/RESUME, HISTOGRAM, EVENTS) skip while the
module under test does not have it. ONCE_UPDATE_SCREENSHOT=1 also writes docs/dashboard.png from the seeded demo.
"""
import os
import random
import shutil
import struct
import threading
import time

import pytest

from once_helpers import REPO_ROOT, Served, make_dead, need, retry_all_supported, run_cli, url_of
from once.admin import Admin

pytest.importorskip("flask", reason="flask is not installed (pip install './clients/python[all]')")


@pytest.fixture(scope="module")
def server(redis_server):
    return redis_server


@pytest.fixture(scope="module")
def r(server):
    c = server.client()
    yield c
    c.close()


@pytest.fixture(scope="module")
def web(server):
    w = Served(url_of(server), "web", "--port", 0, "--interval", 0.5)
    yield w
    w.close()


def q_row(page, queue, field):
    return page.locator(f'tr[data-queue="{queue}"] td[data-field="{field}"]')


def job_url(web, queue, jid):
    from urllib.parse import urlencode
    return f"{web.base}/job?{urlencode({'queue': queue, 'id': jid})}"


def queue_url(web, queue):
    from urllib.parse import urlencode
    return f"{web.base}/queue?{urlencode({'name': queue})}"


def test_overview_shows_queues_and_counts_change_after_pushes(web, r, queue, page):
    for i in range(3):
        r.execute_command("ONCE.PUSH", queue, f"job {i}")
    make_dead(r, queue, error="boom")
    page.goto(web.base + "/")
    assert q_row(page, queue, "ready").inner_text() == "3"
    assert q_row(page, queue, "dead").inner_text() == "1"
    assert page.locator(f'tr[data-queue="{queue}"] a.queue-link').inner_text() == queue
    for i in range(5):
        r.execute_command("ONCE.PUSH", queue, f"more {i}")
    # the table refreshes itself (no reload): the new count shows within a few refreshes
    page.wait_for_function(
        "([q, n]) => { const c = document.querySelector(`tr[data-queue=\"${q}\"] td[data-field=\"ready\"]`);"
        " return c && c.textContent.trim() === n; }", arg=[queue, "8"], timeout=10000)
    assert Admin(r, queue).stats()["ready"] == 8
    # the in-rate from the periodic STATS samples saw the pushes at some refresh
    assert page.locator("svg.chart.spark").count() >= 1


def test_queue_page_charts_schedules_and_counts(web, r, queue, page):
    r.execute_command("ONCE.PUSH", queue, "a")
    r.execute_command("ONCE.PUSH", queue, "b", "DELAY", 600000)
    nxt = r.execute_command("ONCE.SCHEDULE", queue, "nightly", "30 2 * * *", "send digest", "TZ", "Europe/Berlin")
    page.goto(web.base + "/")
    page.click(f'tr[data-queue="{queue}"] a.queue-link')
    page.wait_for_selector("h1 .qname")
    assert page.locator("h1 .qname").inner_text() == queue
    assert page.locator("#count-ready").inner_text() == "1"
    assert page.locator("#count-delayed").inner_text() == "1"
    assert page.locator("svg.chart").count() >= 2
    sched = page.locator("#schedules").inner_text()
    from once.cli import fmt_time
    assert "nightly" in sched and "30 2 * * *" in sched and "Europe/Berlin" in sched and fmt_time(nxt) in sched
    assert page.locator("svg.histogram").count() == 2


def test_queue_page_shows_the_event_log_newest_first(web, r, queue, page):
    need(r, "ONCE.EVENTS")
    r.execute_command("ONCE.CONFIGURE", queue, "EVENTS-MAX", 100)
    r.execute_command("ONCE.PAUSE", queue)
    r.execute_command("ONCE.RESUME", queue)
    jid = make_dead(r, queue, error="card declined")
    page.goto(f"{web.base}/queue?name={queue}")
    page.wait_for_selector("#events")
    rows = [[c.strip() for c in row.split("\t")] for row in page.locator("#events tbody tr").all_inner_texts()]
    # newest first: dead, nack, reserve, push of the job, then resume and pause (no job)
    assert [row[2] for row in rows] == ["dead", "nack", "reserve", "push", "resume", "pause"], rows
    assert [row[1] for row in rows] == ["6", "5", "4", "3", "2", "1"], rows
    assert rows[0][3] == jid and rows[0][4] == "1" and rows[0][5] == "card declined", rows
    assert rows[4][3] == "" and rows[5][3] == "", rows          # pause/resume name no job
    assert page.locator("#events tbody tr a").count() == 4       # a link for each job event only


def test_navigate_to_dead_list_open_job_see_error(web, r, queue, page):
    need(r, "ONCE.LIST")
    r.execute_command("ONCE.PUSH", queue, "fine")
    error = "Traceback (most recent call last):\n  File \"task.py\", line 3\nValueError: card declined " + "x" * 300
    jid = make_dead(r, queue, payload="charge card 42", error=error)
    page.goto(queue_url(web, queue))
    page.click("#tab-dead")
    page.wait_for_selector("#jobs")
    rows = page.locator("#jobs tr.job")
    assert rows.count() == 1
    assert jid in rows.first.inner_text() and "card declined" in rows.first.inner_text()
    page.click(f"#jobs a.job-link:text-is('{jid}')")
    page.wait_for_selector("#last-error")
    assert page.locator("#job-id").inner_text() == jid
    assert page.locator("#job-state").inner_text().strip() == "dead"
    assert page.locator("#last-error").text_content() == error         # in full, not cut
    assert page.locator("#payload").text_content() == "charge card 42"


def test_job_list_pages_through_every_job(web, r, queue, page):
    need(r, "ONCE.LIST")
    ids = [r.execute_command("ONCE.PUSH", queue, f"job {i}", "PRIORITY", i % 2).decode() for i in range(7)]
    want = [i for k, i in enumerate(ids) if k % 2] + [i for k, i in enumerate(ids) if not k % 2]
    page.goto(f"{web.base}/jobs?queue={queue}&state=ready&count=3")
    seen, pages = [], 0
    while True:
        pages += 1
        seen += page.locator("#jobs a.job-link").all_inner_texts()
        if page.locator("#next-page").count() == 0:
            break
        assert pages < 10
        with page.expect_navigation():      # the old page has #jobs too: wait for the new one
            page.click("#next-page")
        page.wait_for_selector("#jobs")
    assert seen == want and pages == 3
    with page.expect_navigation():
        page.click("#first-page")
    assert page.locator("#jobs a.job-link").all_inner_texts() == want[:3]


def test_retry_with_confirmation_moves_the_job_to_ready(web, r, queue, page):
    jid = make_dead(r, queue, error="smtp timeout")
    page.goto(job_url(web, queue, jid))
    page.click("#action-retry")
    page.wait_for_selector("#confirm-form")
    assert "Retry the selected dead jobs" in page.locator(".question").inner_text()
    assert Admin(r, queue).inspect(jid)["state"] == "dead"             # nothing happens before the confirmation
    page.click("#cancel-action")                                       # "No": still dead
    page.wait_for_selector("#job-state")
    assert Admin(r, queue).inspect(jid)["state"] == "dead"
    page.click("#action-retry")
    page.click("#confirm")
    page.wait_for_selector(".flash")
    assert "retried 1 of 1" in page.locator(".flash").inner_text()
    assert page.locator("#job-state").inner_text().strip() == "ready"
    assert Admin(r, queue).inspect(jid)["state"] == "ready"


def test_retry_all_and_cancel_selected(web, r, queue, page):
    need(r, "ONCE.LIST")
    dead = [make_dead(r, queue, payload=f"d{i}", error=f"e{i}") for i in range(3)]
    page.goto(f"{web.base}/jobs?queue={queue}&state=dead")
    page.check(f'input[type=checkbox][value="{dead[0]}"]')
    page.click("#cancel-selected")
    page.wait_for_selector("#confirm-form")
    assert dead[0] in page.locator("ul.ids").inner_text()
    page.click("#confirm")
    page.wait_for_selector(".flash")
    assert "cancelled 1 of 1" in page.locator(".flash").inner_text()
    assert Admin(r, queue).inspect(dead[0]) is None
    assert page.locator("#jobs tr.job").count() == 2
    assert retry_all_supported(r), "ONCE.RETRY queue ALL: this repository's module has it"
    page.click("#action-retry-all")
    page.click("#confirm")
    page.wait_for_selector(".flash")
    assert "retried 2 dead" in page.locator(".flash").inner_text()
    assert [Admin(r, queue).inspect(i)["state"] for i in dead[1:]] == ["ready", "ready"]


def test_purge_with_confirmation(web, r, queue, page):
    need(r, "ONCE.PURGE")
    for i in range(4):
        r.execute_command("ONCE.PUSH", queue, f"poison {i}")
    r.execute_command("ONCE.PUSH", queue, "later", "DELAY", 600000)
    page.goto(queue_url(web, queue))
    page.click("#action-purge-ready")
    page.wait_for_selector("#confirm-form")
    assert "Purge every job in a state" in page.locator(".question").inner_text()
    assert Admin(r, queue).stats()["ready"] == 4
    page.click("#confirm")
    page.wait_for_selector(".flash")
    assert "purged 4 ready" in page.locator(".flash").inner_text()
    s = Admin(r, queue).stats()
    assert s["ready"] == 0 and s["delayed"] == 1
    assert page.locator("#count-ready").inner_text() == "0"


def test_pause_and_resume(web, r, queue, page):
    need(r, "ONCE.PAUSE", "ONCE.RESUME")
    r.execute_command("ONCE.PUSH", queue, "x")
    page.goto(queue_url(web, queue))
    assert page.locator("#queue-state").inner_text().strip() == "running"
    page.click("#action-pause")
    page.click("#confirm")
    page.wait_for_selector(".flash")
    assert "paused" in page.locator(".flash").inner_text()
    assert page.locator("#queue-state").inner_text().strip() == "paused"
    assert Admin(r, queue).stats()["paused"] == 1
    assert r.execute_command("ONCE.RESERVE", queue) is None
    page.goto(web.base + "/")
    assert q_row(page, queue, "paused").inner_text().strip() == "paused"
    page.goto(queue_url(web, queue))
    page.click("#action-resume")
    page.click("#confirm")
    page.wait_for_selector(".flash")
    assert page.locator("#queue-state").inner_text().strip() == "running"
    assert Admin(r, queue).stats()["paused"] == 0


def test_script_payload_and_error_are_shown_as_text(web, r, queue, page):
    payload = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b id="bold">b</b>'
    error = '<script>window.__pwned = 3</script> & <i>not italic</i>'
    jid = make_dead(r, queue, payload=payload, error=error)
    page.goto(job_url(web, queue, jid))
    assert page.locator("#payload").text_content() == payload
    assert page.locator("#last-error").text_content() == error
    assert page.locator("#payload script, #payload img, #payload b, #last-error script, #last-error i").count() == 0
    assert page.locator("#bold").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    page.goto(f"{web.base}/jobs?queue={queue}&state=dead")
    assert "<script>window.__pwned = 1</script>" in page.locator("#jobs").inner_text()
    assert page.locator("#jobs script, #jobs img").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    # a queue name is text too
    evil = queue + ':<img src=x onerror="window.__pwned=4">'
    r.execute_command("ONCE.PUSH", evil, "x")
    page.goto(web.base + "/")
    assert page.locator("#queues img").count() == 0
    assert evil in page.locator("#queues").inner_text()
    page.goto(queue_url(web, evil))
    assert page.locator("h1 .qname").inner_text() == evil
    assert page.evaluate("() => window.__pwned") is None
    r.delete(evil)


def _no_action_ui(page):
    assert page.locator("form[method=post]").count() == 0
    assert page.locator('a[href*="/confirm"]').count() == 0
    assert page.locator("button, input[type=checkbox]").count() == 0


def test_read_only_shows_no_action(server, r, queue, page):
    jid = make_dead(r, queue, error="boom")
    r.execute_command("ONCE.PUSH", queue, "x")
    w = Served(url_of(server), "web", "--port", 0, "--read-only")
    try:
        page.goto(w.base + "/")
        assert page.locator("#mode").inner_text() == "read-only"
        assert q_row(page, queue, "dead").inner_text() == "1"
        _no_action_ui(page)
        page.goto(queue_url(w, queue))
        assert page.locator("#queue-actions").count() == 0
        _no_action_ui(page)
        page.goto(job_url(w, queue, jid))
        assert page.locator("#last-error").text_content() == "boom"
        assert page.locator("#job-actions").count() == 0
        _no_action_ui(page)
        for state in ("ready", "dead"):
            page.goto(f"{w.base}/jobs?queue={queue}&state={state}")
            assert page.locator("#jobs tr.job").count() == 1
            _no_action_ui(page)
        # and the endpoints refuse, whatever is sent
        resp = page.goto(f"{w.base}/confirm?queue={queue}&action=retry&id={jid}")
        assert resp.status == 403
        status, _ = w.post("/action", {"queue": queue, "action": "retry", "id": jid})
        assert status == 403
        assert Admin(r, queue).inspect(jid)["state"] == "dead"
    finally:
        w.close()


def test_action_without_the_token_is_refused(server, r, queue, page):
    jid = make_dead(r, queue, error="boom")
    w = Served(url_of(server), "web", "--port", 0, "--token", "s3cret-token")
    try:
        page.goto(job_url(w, queue, jid))
        page.click("#action-retry")
        page.wait_for_selector("#confirm-form")
        assert page.locator("#token").count() == 1
        with page.expect_navigation():
            page.click("#confirm")                                   # no token given
        assert "needs the dashboard" in page.locator("#error-message").inner_text()
        assert Admin(r, queue).inspect(jid)["state"] == "dead"
        page.go_back()
        page.fill("#token", "wrong")
        with page.expect_navigation():
            page.click("#confirm")
        assert "needs the dashboard" in page.locator("#error-message").inner_text()
        assert Admin(r, queue).inspect(jid)["state"] == "dead"
        # a client without the session's CSRF token is refused even with the right token
        status, _ = w.post("/action", {"queue": queue, "action": "retry", "id": jid, "token": "s3cret-token"})
        assert status == 403
        assert Admin(r, queue).inspect(jid)["state"] == "dead"
        # the right token in the confirmation form: done
        page.go_back()
        page.fill("#token", "s3cret-token")
        page.click("#confirm")
        page.wait_for_selector(".flash")
        assert "retried 1 of 1" in page.locator(".flash").inner_text()
        assert Admin(r, queue).inspect(jid)["state"] == "ready"
        # an API client: Authorization: Bearer (no cookie, so no CSRF risk)
        q2 = queue + ":api"
        jid2 = make_dead(r, q2, error="boom")
        status, _ = w.post("/action", {"queue": q2, "action": "retry", "id": jid2},
                           headers={"Authorization": "Bearer nope"})
        assert status == 403 and Admin(r, q2).inspect(jid2)["state"] == "dead"
        status, _ = w.post("/action", {"queue": q2, "action": "retry", "id": jid2},
                           headers={"Authorization": "Bearer s3cret-token"})
        assert status == 200 and Admin(r, q2).inspect(jid2)["state"] == "ready"
    finally:
        w.close()


def test_actions_are_protected_against_csrf(web, r, queue, page):
    jid = make_dead(r, queue, error="boom")
    page.goto(job_url(web, queue, jid))                              # the page's session has a CSRF token
    form = {"queue": queue, "action": "retry", "id": jid}
    resp = page.request.post(web.base + "/action", form=form, max_redirects=0)
    assert resp.status == 403 and "CSRF" in resp.text()               # no token in the form
    resp = page.request.post(web.base + "/action", form={**form, "csrf": "forged"}, max_redirects=0)
    assert resp.status == 403
    page.click("#action-retry")
    csrf = page.locator("input[name=csrf]").get_attribute("value")
    resp = page.request.post(web.base + "/action", form={**form, "csrf": csrf}, max_redirects=0,
                             headers={"Origin": "http://evil.example"})
    assert resp.status == 403                                         # the right token from another origin
    assert Admin(r, queue).inspect(jid)["state"] == "dead"
    csrf_ok = page.request.post(web.base + "/action", form={**form, "csrf": csrf}, max_redirects=0)
    assert csrf_ok.status == 303
    assert Admin(r, queue).inspect(jid)["state"] == "ready"
    headers = page.request.get(web.base + "/").headers
    assert "script-src 'self'" in headers["content-security-policy"]


def test_basic_auth_guards_every_page(server, r, queue, browser):
    r.execute_command("ONCE.PUSH", queue, "x")
    w = Served(url_of(server), "web", "--port", 0, "--basic-auth", "admin:pw")
    try:
        status, _, headers = w.get("/")
        assert status == 401 and "Basic" in headers["WWW-Authenticate"]
        assert w.get("/metrics")[0] == 401
        import base64
        good = {"Authorization": "Basic " + base64.b64encode(b"admin:pw").decode()}
        bad = {"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()}
        assert w.get("/", headers=bad)[0] == 401
        assert w.get("/", headers=good)[0] == 200
        ctx = browser.new_context(http_credentials={"username": "admin", "password": "pw"})
        try:
            pg = ctx.new_page()
            pg.goto(w.base + "/")
            assert q_row(pg, queue, "ready").inner_text() == "1"
        finally:
            ctx.close()
    finally:
        w.close()


def test_refuses_to_serve_actions_beyond_loopback_without_auth(server):
    # 192.0.2.10 (TEST-NET-1) is no address of this machine: the check comes before any bind
    p = run_cli(url_of(server), "web", "--host", "192.0.2.10", "--port", 0, timeout=30)
    assert p.returncode == 2
    assert "refusing to serve actions on 192.0.2.10" in p.stderr and "--token" in p.stderr
    p = run_cli(url_of(server), "web", "--host", "192.0.2.10", "--port", 0, "--token", "t", timeout=30)
    assert p.returncode == 1 and "cannot listen on 192.0.2.10" in p.stderr     # allowed; only the bind fails


def test_no_asset_from_elsewhere(web, r, queue, page):
    r.execute_command("ONCE.PUSH", queue, "x")
    requested = []
    page.on("request", lambda req: requested.append(req.url))
    for path in ("/", f"/queue?name={queue}", f"/jobs?queue={queue}&state=ready"):
        page.goto(web.base + path)
    page.wait_for_timeout(1200)                                       # a refresh of the live parts too
    assert requested and all(u.startswith(web.base) for u in requested), requested
    assert any(u.endswith("/static/once.css") for u in requested)
    assert any(u.endswith("/static/once.js") for u in requested)


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_screenshot_of_a_seeded_demo(browser, tmp_path):
    """A demo: three queues with workers at different speeds, failures, a schedule; the overview and a queue page
    are photographed (ONCE_UPDATE_SCREENSHOT=1 writes docs/dashboard.png and docs/dashboard-queue.png)."""
    import harness
    s = harness.Server("redis" if "redis" in harness.kinds() else harness.kinds()[0])
    stop = threading.Event()
    try:
        r = s.client()
        r.execute_command("ONCE.CONFIGURE", "emails", "EVENTS-MAX", 200)
        r.execute_command("ONCE.CONFIGURE", "payments", "DEAD-MAX", 1000)
        r.execute_command("ONCE.SCHEDULE", "reports", "nightly", "30 2 * * *", "build the nightly report",
                          "TZ", "Europe/Berlin")
        r.execute_command("ONCE.SCHEDULE", "emails", "digest", "@every 1h", "send the hourly digest")
        rng = random.Random(7)
        for i in range(40):
            r.execute_command("ONCE.PUSH", "reports", f"report {i}", "DELAY", 600000 + i)
        for i in range(6):
            make_dead(r, "payments", payload=f'{{"order": {1000 + i}, "amount": {rng.randint(5, 500)}}}',
                      error="PaymentDeclined: card 4242 declined by issuer (code 51)")

        def worker(queue, push_rate, work_s, fail_every):
            c = s.client()
            n = 0
            t_end = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < t_end:
                for _ in range(push_rate):
                    c.execute_command("ONCE.PUSH", queue, f"{queue} job {n}", "RETRIES", 1, "BACKOFF", 200)
                    n += 1
                got = c.execute_command("ONCE.RESERVE", queue, "COUNT", max(1, push_rate - 1), "LEASE", 10000)
                time.sleep(work_s)
                for k, j in enumerate(got or []):
                    if fail_every and (n + k) % fail_every == 0:
                        c.execute_command("ONCE.NACK", queue, j[0], "ATTEMPT", j[2], "ERROR", "SMTPTimeout: 30 s")
                    else:
                        c.execute_command("ONCE.ACK", queue, j[0])
                time.sleep(0.05 + rng.random() * 0.1)
            c.close()

        threads = [threading.Thread(target=worker, args=a, daemon=True)
                   for a in (("emails", 6, 0.02, 9), ("payments", 3, 0.08, 0), ("thumbnails", 10, 0.01, 0))]
        for t in threads:
            t.start()
        w = Served(url_of(s), "web", "--port", 0, "--interval", 0.5)
        try:
            ctx = browser.new_context(viewport={"width": 1360, "height": 820}, device_scale_factor=1)
            pg = ctx.new_page()
            time.sleep(8)                                              # some minutes' worth of samples
            pg.goto(w.base + "/")
            pg.wait_for_selector('tr[data-queue="emails"]')
            over = tmp_path / "dashboard.png"
            pg.screenshot(path=str(over), full_page=False)
            pg.goto(w.base + "/queue?name=emails")
            pg.wait_for_selector("svg.chart")
            queue_png = tmp_path / "dashboard-queue.png"
            pg.screenshot(path=str(queue_png), full_page=True)
            ctx.close()
        finally:
            w.close()
        stop.set()
        for t in threads:
            t.join(10)
        for png in (over, queue_png):
            width, height = _png_size(png)
            assert width >= 1000 and height >= 600 and os.path.getsize(png) > 20000
        if os.environ.get("ONCE_UPDATE_SCREENSHOT"):
            docs = os.path.join(REPO_ROOT, "docs")
            shutil.copy(over, os.path.join(docs, "dashboard.png"))
            shutil.copy(queue_png, os.path.join(docs, "dashboard-queue.png"))
    finally:
        stop.set()
        s.close()
