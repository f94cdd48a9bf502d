"""Flows (issue 24) through the Python client: ``push(after=..., on_fail=...)``, ``after()``, ``deps()``,
``flow(FlowJob)``, ``job.deps()`` in a worker's handler, the asyncio client, the CLI (``once deps``, ``inspect``,
``list waiting``), the exporter's ``once_jobs{state="waiting"}`` and the dashboard, against real servers (Redis 7.0
and Valkey 9.1; RESP2 and RESP3 where the `once` fixture runs). The contract is /tmp/prompts/flows-contract.md.

Queues of one flow share a hash tag (``{q:...}:charge``), as the module requires of AFTER across queues.
"""
import asyncio
import html as htmllib
import re
from urllib.parse import urlencode

import pytest
import redis
import redis.asyncio

import once as once_pkg
from once import Dep, FlowJob, Once, QueuedId
from once.admin import Admin
from once.aio import Once as AioOnce
from once_helpers import Served, cli_json, need, run_cli, running_worker, url_of, wait_until


@pytest.fixture
def r(once):
    need(once.redis, "ONCE.DEPS", "ONCE.AFTER")
    return once.redis


def tagged(client, queue, name):
    """A Once on a queue that shares the hash slot of the other queues ``tagged`` makes for this ``queue``."""
    return Once(client, f"{{{queue}}}:{name}")


def ids(deps):
    return [(d.queue, d.id) for d in deps]


# ---- push(after=...) -----------------------------------------------------------------------------------------


def test_a_job_pushed_after_others_waits_until_every_one_completed(once, r):
    a, b = once.push("a"), once.push("b")
    c = once.push("c", after=[a, b])
    assert isinstance(c, QueuedId) and c.queue == once.queue
    info = c.inspect()
    assert info.state == "waiting" and info.deps_total == 2 and info.deps_done == 0 and info.deps_left == 2
    assert info.on_fail == "fail"
    outcome = once.result(c)
    assert outcome.state == "waiting" and not outcome.done
    stats = once.stats()
    assert stats.waiting == 1 and stats.ready == 2 and stats.total == 3
    taken = {j.id: j for j in once.reserve(10)}
    assert set(taken) == {a, b}                                   # the waiting job is not served
    assert once.inspect(b).dependents == 1
    assert once.ack(taken[a]) == 1
    info = c.inspect()
    assert info.state == "waiting" and info.deps_done == 1 and info.deps_left == 1
    assert once.ack(taken[b]) == 1
    assert c.inspect().state == "ready" and once.stats().waiting == 0
    assert [j.id for j in once.reserve(10)] == [c]


def test_a_released_job_with_a_delay_still_ahead_is_delayed(once, r):
    a = once.push("a")
    later = once.push("later", after=[a], delay_ms=600_000)
    once.ack(once.reserve()[0])
    assert once.inspect(later).state == "delayed"


def test_after_names_pushed_ids_jobs_pairs_and_plain_ids_in_the_given_order(client, queue):
    need(client, "ONCE.DEPS")
    charge, ship = tagged(client, queue, "charge"), tagged(client, queue, "ship")
    charge.push("held")
    held = charge.reserve()[0]                                    # a Job: it knows its queue
    card = charge.push("card")                                    # a Pushed: it knows its queue
    pair = charge.push("pair")
    local = ship.push("local")                                    # a plain id: the pushing Once's queue
    w = ship.push("ship it", after=[card, str(local), held, (charge.queue, str(pair)), card, local])
    want = [(charge.queue, card), (ship.queue, local), (charge.queue, held.id), (charge.queue, pair)]
    got = ship.deps(w)
    assert ids(got) == want                                       # named twice: listed once, where first named
    assert [d.state for d in got] == ["ready", "ready", "reserved", "ready"]
    assert all(isinstance(d, Dep) and d.outcome == "pending" and not d.done for d in got)
    assert ids(w.deps()) == want and w.inspect().deps_total == 4


def test_call_after_waits_for_its_dependencies_then_for_the_job(once, r):
    first = once.push("first", delay_ms=300)                      # not ready before the CALL is sent
    ran = []

    def handle(data):
        ran.append(data)
        return data.upper()

    with running_worker(once, handle):
        outcome = once.call("second", timeout=10, after=[first])
    assert outcome.ok and outcome.text == "SECOND" and ran == ["first", "second"]


def test_push_after_refuses_what_the_contract_refuses(client, queue):
    need(client, "ONCE.DEPS")
    ship, charge = tagged(client, queue, "ship"), tagged(client, queue, "charge")
    elsewhere = Once(client, f"{queue}:untagged")                 # another hash slot
    far = elsewhere.push("far")
    with pytest.raises(redis.exceptions.ClusterCrossSlotError, match="another slot"):   # the server's CROSSSLOT
        ship.push("x", after=[far])
    with pytest.raises(redis.ResponseError, match="AFTER names no job") as exc:
        ship.push("x", after=[(charge.queue, "no-such-job")])
    # the server shortens a long queue name in its message
    assert charge.queue[:40] in str(exc.value) and str(exc.value).endswith(" no-such-job")
    assert ship.stats().pushed_total == 0                         # nothing was pushed
    a = ship.push("a")
    with pytest.raises(ValueError, match="on_fail"):
        ship.push("x", after=[a], on_fail="sometimes")
    with pytest.raises(ValueError, match="on_fail goes with after"):
        ship.push("x", on_fail="ignore")
    with pytest.raises(TypeError, match="a dependency is"):
        ship.push("x", after=[42])
    assert ship.stats().pushed_total == 1


# ---- ON-FAIL ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("on_fail", [None, "fail", "ignore", "continue"])
def test_a_dependency_that_dies(once, r, on_fail):
    ok, doomed = once.push("ok"), once.push("doomed", retries=0)
    w = once.push("w", after=[ok, doomed], **({} if on_fail is None else {"on_fail": on_fail}))
    taken = {j.payload: j for j in once.reserve(2)}
    assert once.nack(taken[b"doomed"], error="card declined")    # no retries left: dead
    assert once.inspect(doomed).state == "dead"
    assert once.ack(taken[b"ok"]) == 1
    info = once.inspect(w)
    if on_fail in (None, "fail"):
        assert info.state == "dead"
        assert once.result(w).error == f"dependency {once.queue} {doomed} died"
    else:
        # released all the same: ignore drops the dead one, continue counts it done (and failed)
        assert info.state == "ready" and info.on_fail == on_fail
        assert (info.deps_done, info.deps_failed, info.deps_left) == (2 if on_fail == "continue" else 1, 1, 0)
    got = {d.id: d for d in once.deps(w)}
    dead = got[doomed]
    assert dead.outcome == "dead" and dead.done and not dead.ok and "card declined" in (dead.error or "")
    assert got[ok].outcome == "completed"      # recorded even after a failure under fail ended the waiting


def test_a_retried_dependency_wakes_nobody(once, r):
    dep = once.push("flaky", retries=1)
    w = once.push("w", after=[dep])
    assert once.nack(once.reserve()[0], error="try again", delay_ms=0)
    assert once.inspect(dep).state in ("ready", "delayed")
    info = once.inspect(w)
    assert info.state == "waiting" and info.deps_left == 1 and info.deps_failed == 0
    job = once.reserve()[0]
    assert job.id == dep and job.attempt == 2
    once.ack(job)
    assert once.inspect(w).state == "ready"


def test_cancelling_a_dependency_or_a_waiting_job_fails_those_waiting_on_it(once, r):
    dep = once.push("dep")
    w = once.push("w", after=[dep], keep=60_000)
    w2 = once.push("w2", after=[w])                               # waits on a waiting job
    assert once.cancel(dep) == 1
    assert once.result(w).state == "dead" and once.result(w).error == f"dependency {once.queue} {dep} was cancelled"
    assert once.result(w2).error == f"dependency {once.queue} {w} died"
    a = once.push("a")
    x = once.push("x", after=[a], keep=60_000)
    y = once.push("y", after=[x])
    assert once.cancel(x) == 1                                    # a waiting job is cancelled
    assert once.result(x).state == "cancelled"
    assert once.result(y).error == f"dependency {once.queue} {x} was cancelled"


# ---- after(), deps() -------------------------------------------------------------------------------------------


def test_after_adds_dependencies_to_a_waiting_job(once, r):
    a, b, c = once.push("a"), once.push("b"), once.push("c")
    w = once.push("w", after=[a])
    assert once.after(w, [b, c, a]) == 2                          # a: waited on already
    assert once.after(w, [b]) == 0
    assert [d.id for d in once.deps(w)] == [a, b, c]
    assert [d.id for d in once.deps(w, start=1, count=1)] == [b]
    assert [d.id for d in once.deps(w, start=2)] == [c]
    assert w.inspect().deps_total == 3
    with pytest.raises(redis.ResponseError, match="job is not waiting"):
        once.after(a, [b])
    with pytest.raises(redis.ResponseError, match="no such job"):
        once.after("no-such-job", [b])
    with pytest.raises(redis.ResponseError, match="AFTER names no job"):
        once.after(w, [(once.queue, "no-such-job")])
    x = once.push("x", after=[w])
    with pytest.raises(redis.ResponseError, match="cycle"):
        once.after(w, [x])
    with pytest.raises(ValueError):
        once.after(w, [])
    assert [d.id for d in once.deps(w)] == [a, b, c]              # the refused calls added nothing


def test_deps_give_each_dependency_its_outcome_and_result(once, r):
    assert once.deps("no-such-job") is None
    plain = once.push("plain")
    assert once.deps(plain) == []
    a, b, c = once.push("a"), once.push("b", retries=0), once.push("c")
    w = once.push("w", after=[a, b, c], on_fail="continue")
    taken = {j.id: j for j in once.reserve(3)}                    # plain, a and b
    assert once.ack(taken[a], result={"total": 5}) == 1
    assert once.nack(taken[b], error="nope")
    got = once.deps(w, decode=True)
    assert [(d.id, d.outcome) for d in got] == [(a, "completed"), (b, "dead"), (c, "pending")]
    assert got[0].ok and got[0].json() == {"total": 5} and got[0].text == '{"total":5}'
    assert got[0].error is None and isinstance(got[0].result, str)
    assert got[1].result is None and "nope" in got[1].error
    assert got[2].state == "ready" and got[2].result is None and got[2].json() is None
    assert once.deps(w)[0].result == b'{"total":5}'               # bytes unless decoded


def test_registered_clients_parse_deps_and_after_in_pipelines(once, r):
    once_pkg.register(r)
    a, b = once.push("a"), once.push("b")
    w = once.push("w", after=[a])
    with r.pipeline() as pipe:
        pipe.execute_command("ONCE.AFTER", once.queue, w, once.queue, 1, b)
        pipe.execute_command("ONCE.DEPS", once.queue, w)
        pipe.execute_command("ONCE.DEPS", once.queue, "no-such-job")
        added, deps, missing = pipe.execute()
    assert added == 1 and missing is None
    assert [(type(d), d.id, d.outcome) for d in deps] == [(Dep, a, "pending"), (Dep, b, "pending")]
    assert [d.id for d in once.deps(w)] == [a, b]                 # Once on a registered client works as before


def test_waiting_jobs_are_listed_and_purged(once, r):
    a = once.push("a")
    w1, w2 = once.push("w1", after=[a]), once.push("w2", after=[a])
    cursor, jobs = once.list("waiting")
    assert cursor == "0" and sorted(j.id for j in jobs) == sorted([w1, w2])
    assert all(j.state == "waiting" for j in jobs)
    assert Admin(r, once.queue).purge("waiting") == 2
    assert once.stats().waiting == 0 and once.inspect(w1) is None


# ---- flow() ----------------------------------------------------------------------------------------------------


def test_a_flow_of_three_levels_runs_leaves_first_and_each_job_reads_its_children(client, queue):
    need(client, "ONCE.DEPS")
    report, fetch = tagged(client, queue, "report"), tagged(client, queue, "fetch")
    tree = FlowJob(report.queue, "report", keep=60_000, children=[
        FlowJob(report.queue, "sum a", children=[FlowJob(fetch.queue, "fetch 1"), FlowJob(fetch.queue, "fetch 2")]),
        FlowJob(report.queue, "sum b", children=[FlowJob(fetch.queue, "fetch 30")]),
    ])
    both = Once(client, [report.queue, fetch.queue])
    root = both.flow(tree)
    sum_a, sum_b = root.children
    fetches = list(sum_a.children) + list(sum_b.children)
    assert root.queue == sum_a.queue == sum_b.queue == report.queue
    assert [f.queue for f in fetches] == [fetch.queue] * 3 and not any(f.children for f in fetches)
    assert report.stats().waiting == 3 and report.stats().ready == 0
    assert fetch.stats().ready == 3 and fetch.stats().waiting == 0
    assert root.inspect().state == "waiting" and sum_a.inspect().deps_total == 2   # a Pushed reads its own queue
    assert ids(root.deps()) == [(report.queue, sum_a), (report.queue, sum_b)]

    ran, seen = [], {}

    def handle(job):
        ran.append(job.id)
        deps = job.deps()
        seen[job.id] = [(d.queue, d.id, d.outcome, d.json()) for d in deps]
        kind, _, n = job.payload.partition(" ")
        # a missing result counts 0 here, so that the flow ends and the assertions below say what was missing
        return int(n) if kind == "fetch" else sum(d.json() or 0 for d in deps)

    with running_worker(both, handle, pass_job=True):
        outcome = root.result(timeout=20)
    for parent in (root, sum_a, sum_b):
        for child in parent.children:
            assert ran.index(child) < ran.index(parent), (ran, parent, child)
    assert all(seen[f] == [] for f in fetches)
    # the children were pushed without KEEP: their results are there for the parent's handler all the same
    assert seen[sum_a] == [(fetch.queue, fetches[0], "completed", 1), (fetch.queue, fetches[1], "completed", 2)]
    assert seen[sum_b] == [(fetch.queue, fetches[2], "completed", 30)]
    assert seen[root] == [(report.queue, sum_a, "completed", 3), (report.queue, sum_b, "completed", 30)]
    assert outcome.ok and outcome.json() == 33


def test_a_retried_job_reads_its_dependencies_results_again(once, r):
    root = once.flow(FlowJob(once.queue, "parent", retries=1, backoff_ms=1, keep=60_000,
                             children=[FlowJob(once.queue, "child")]))
    child = root.children[0]
    seen = []

    def handle(job):
        seen.append((job.payload, job.attempt, [(d.id, d.state, d.text) for d in job.deps()]))
        if job.payload == "parent" and job.attempt == 1:
            raise RuntimeError("first attempt fails")
        return job.payload.upper()

    with running_worker(once, handle, pass_job=True):
        outcome = root.result(timeout=15)
    assert outcome.ok and outcome.text == "PARENT"
    assert seen == [("child", 1, []), ("parent", 1, [(child, "completed", "CHILD")]),
                    ("parent", 2, [(child, "completed", "CHILD")])]
    # the parent has ended: the child (KEEP 0) is freed, and DEPS still says how it ended
    gone = wait_until(lambda: once.deps(root)[0].state == "gone" and once.deps(root)[0], what="the child freed")
    assert gone.outcome == "completed" and gone.result is None and once.inspect(child) is None


def test_a_flow_job_named_under_two_parents_is_one_job_both_wait_on(once, r):
    shared = FlowJob(once.queue, "shared")
    root = once.flow(FlowJob(once.queue, "root", children=[
        FlowJob(once.queue, "left", children=[shared]), FlowJob(once.queue, "right", children=[shared])]))
    left, right = root.children
    assert left.children == right.children and len(left.children) == 1
    stats = once.stats()
    assert stats.pushed_total == 4 and stats.ready == 1 and stats.waiting == 3
    assert once.inspect(left.children[0]).dependents == 2


def test_a_flow_job_also_waits_on_jobs_outside_the_tree(once, r):
    outside = once.push("outside")
    root = once.flow(FlowJob("", "root", after=[outside], children=[FlowJob("", "child")]))   # "": once.queue
    assert root.queue == root.children[0].queue == once.queue
    assert [d.id for d in root.deps()] == [root.children[0], outside]   # its children first, then ``after``
    for _ in range(2):
        once.ack(once.reserve()[0])
    assert root.inspect().state == "ready"


def test_a_flow_with_ids_pushed_again_adds_nothing(once, r):
    def tree():
        return FlowJob(once.queue, "order", id="order-1", on_fail="continue",
                       children=[FlowJob(once.queue, "charge", id="charge-1", retries=5, priority=7)])
    root = once.flow(tree())
    assert root == "order-1" and root.children == ("charge-1",)
    assert once.inspect("charge-1").retries == 5 and once.inspect("charge-1").priority == 7
    assert once.inspect("order-1").on_fail == "continue"
    before = once.stats()
    again = once.flow(tree())
    assert again == "order-1" and again.children == ("charge-1",)
    after = once.stats()
    assert (after.ready, after.waiting) == (before.ready, before.waiting) == (1, 1)


def test_a_flow_refuses_a_cycle_and_raises_what_the_server_refused(once, r):
    loop = FlowJob(once.queue, "loop")
    loop.children = [FlowJob(once.queue, "inner", children=[loop])]
    with pytest.raises(ValueError, match="cycle"):
        once.flow(loop)
    assert once.stats().pushed_total == 0                         # nothing was sent
    elsewhere = f"{once.queue}:untagged"                          # another hash slot: the parent's AFTER is refused
    with pytest.raises(redis.exceptions.ClusterCrossSlotError, match="another slot"):
        once.flow(FlowJob(once.queue, "parent", children=[FlowJob(elsewhere, "child")]))
    assert once.stats().pushed_total == 0
    assert Once(once.redis, elsewhere).stats().ready == 1          # pushed before the refusal: it stays


# ---- the asyncio client ----------------------------------------------------------------------------------------


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def protocol(request):
    return request.param


def test_the_asyncio_client_pushes_after_reads_deps_and_pushes_flows(server, queue, protocol):
    need(server.client(), "ONCE.DEPS")

    async def main():
        r = redis.asyncio.Redis(host="127.0.0.1", port=server.port, protocol=protocol)
        try:
            o = AioOnce(r, queue)
            a = await o.push("a")
            assert type(a) is str                                  # as once.aio's push gives it
            w = await o.push("w", after=[a], on_fail="ignore")
            b = await o.push("b")
            assert await o.after(w, [b]) == 1
            assert [d.id for d in await o.deps(w)] == [a, b]
            assert (await o.inspect(w)).deps_total == 2
            root = await o.flow(FlowJob(queue, "root", children=[FlowJob(queue, "leaf", id="leaf-1")]))
            assert isinstance(root, QueuedId) and root.children == ("leaf-1",)
            assert (await o.inspect(root)).state == "waiting"      # the id flow() returned is the job's
            assert [d.id for d in await o.deps(root)] == ["leaf-1"]
            assert (await o.stats()).waiting == 2
        finally:
            await r.aclose()

    asyncio.run(main())


# ---- the CLI, the exporter, the dashboard ----------------------------------------------------------------------


def test_cli_deps_and_inspect_show_what_a_job_waits_on(server, queue):
    r = server.client()
    need(r, "ONCE.DEPS")
    o = Once(r, queue)
    a, b = o.push("a"), o.push("b")
    w = o.push("w", after=[a, b])
    o.ack(o.reserve()[0], result="fine")
    url = url_of(server)
    got = cli_json(url, "deps", queue, w)
    assert got == Admin(r, queue).deps(w)
    assert [(d["id"], d["outcome"], d["result"]) for d in got] == [(a, "completed", "fine"), (b, "pending", None)]
    p = run_cli(url, "deps", queue, w)
    assert p.returncode == 0, p.stderr
    assert a in p.stdout and b in p.stdout and "fine" in p.stdout and "2 dependencies: 1 completed, 1 pending" in \
        p.stdout
    p = run_cli(url, "deps", queue, "no-such-job")
    assert p.returncode == 1 and "no job" in p.stderr
    p = run_cli(url, "deps", queue, b)
    assert p.returncode == 0 and "waits on no job" in p.stdout
    info = cli_json(url, "inspect", queue, w)
    assert (info["state"], info["deps_total"], info["deps_done"], info["deps_left"], info["on_fail"]) == \
        ("waiting", 2, 1, 1, "fail")
    other = cli_json(url, "inspect", queue, b)
    assert other["dependents"] == 1 and "deps_total" not in other  # only the fields that apply
    p = run_cli(url, "inspect", queue, w)
    assert p.returncode == 0 and f"once --url {url} deps {queue} {w}" in p.stdout
    assert [j["id"] for j in cli_json(url, "list", queue, "waiting")["jobs"]] == [w]
    p = run_cli(url, "list", queue, "waiting")
    cells = [[c.strip() for c in ln.split("│")[1:-1]] for ln in p.stdout.splitlines() if ln.count("│") > 3]
    assert p.returncode == 0 and [c[:2] for c in cells] == [[w, "1"]]     # id, deps_left
    assert "deps_left" in p.stdout
    row = next(q for q in cli_json(url, "queues", "--match", queue) if q["queue"] == queue)
    assert row["waiting"] == 1
    r.close()


def test_exporter_counts_waiting_jobs(server, queue):
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client is not installed")
    r = server.client()
    need(r, "ONCE.DEPS")
    o = Once(r, queue)
    a = o.push("a")
    o.push("w1", after=[a])
    o.push("w2", after=[a])
    e = Served(url_of(server), "exporter", "--port", 0, "--match", queue)
    try:
        status, text, _ = e.get("/metrics")
        assert status == 200
        fam = next(f for f in parser.text_string_to_metric_families(text) if f.name == "once_jobs")
        got = {s.labels["state"]: s.value for s in fam.samples if s.labels["queue"] == queue}
        assert got["waiting"] == o.stats().waiting == 2 and got["ready"] == 1
        o.ack(o.reserve()[0])                                     # releases both: every scrape reads afresh
        fam = next(f for f in parser.text_string_to_metric_families(e.get("/metrics")[1]) if f.name == "once_jobs")
        got = {s.labels["state"]: s.value for s in fam.samples if s.labels["queue"] == queue}
        assert got["waiting"] == 0 and got["ready"] == 2
    finally:
        e.close()
        r.close()


@pytest.fixture(scope="module")
def web(redis_server):
    pytest.importorskip("flask", reason="flask is not installed (pip install './clients/python[all]')")
    w = Served(url_of(redis_server), "web", "--port", 0, "--interval", 0.5)
    yield w
    w.close()


def _html_text(html, element_id):
    """The text inside the element with this id (tags stripped, entities undone), as a browser shows it."""
    m = re.search(rf'id="{re.escape(element_id)}"[^>]*>(.*?)</(dd|td|p|span|h1|a)>', html, re.S)
    assert m, f"no element #{element_id} in the page"
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", m.group(1))).split())


def test_dashboard_shows_waiting_jobs_and_what_they_wait_on(web, redis_server, queue):
    # The real `once web` process read over HTTP, as test_web.py serves it. Not through the browser: its
    # Playwright session keeps an event loop running in this thread, which would break the asyncio tests of the
    # files after this one.
    r = redis_server.client()
    need(r, "ONCE.DEPS")
    o = Once(r, queue)
    a, b = o.push("fetch"), o.push("resize")
    w = o.push("upload", after=[a, b], on_fail="continue")
    o.ack(o.reserve()[0], result="fetched <3> files")

    def get(path, **query):
        status, html, _ = web.get(f"{path}?{urlencode(query)}")
        assert status == 200, html
        return html

    overview = get("/")
    row = re.search(rf'<tr data-queue="{re.escape(queue)}">(.*?)</tr>', overview, re.S).group(1)
    assert re.search(r'data-field="waiting">1<', row)
    page = get("/queue", name=queue)
    assert _html_text(page, "count-waiting") == "1" and 'id="action-purge-waiting"' in page
    assert _html_text(page, "tab-waiting") == "waiting (1)"
    listing = get("/jobs", queue=queue, state="waiting")
    assert re.findall(r'class="job-link"[^>]*>([^<]*)<', listing) == [w]
    page = get("/job", queue=queue, id=w)
    assert _html_text(page, "job-state") == "waiting"
    assert (_html_text(page, "deps-total"), _html_text(page, "deps-done"), _html_text(page, "deps-left"),
            _html_text(page, "deps-on-fail")) == ("2", "1", "1", "continue")
    rows = [" ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", x)).split())
            for x in re.findall(r'<tr class="dep">(.*?)</tr>', page, re.S)]
    assert rows == [f"{queue} {a} completed completed fetched <3> files",      # the result as text, escaped
                    f"{queue} {b} ready pending"]
    assert "fetched &lt;3&gt; files" in page and "<3>" not in page
    links = [htmllib.unescape(h) for h in re.findall(r'<a class="dep-link" href="([^"]+)"', page)]
    status, linked, _ = web.get(links[1])                          # each dependency links to its own page
    assert status == 200 and _html_text(linked, "job-id") == b
    assert _html_text(linked, "job-dependents") == "1 job(s) wait on this one."
    r.close()
