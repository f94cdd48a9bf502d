"""Flows (issue 24): jobs that wait for other jobs. ONCE.PUSH ... AFTER dep-queue n id ... [ON-FAIL], ONCE.AFTER,
ONCE.DEPS, the `waiting` state in STATS / LIST / INSPECT / EVENTS / PURGE / CANCEL, results of dependencies kept
for their dependents (KEEP 0), and releases of many waiting jobs at once (part in the ACK, the rest in timer
steps); batches of 10,000 with one callback, also run by worker processes killed -9 half-way.

The contract is /tmp/prompts/flows-contract.md. Every test runs on both server kinds (the `kind` fixture); the
module-scoped `server` is shared, each test on keys of its own (queues of one flow share a hash tag, as the
contract requires). The ACK that releases 10,000 jobs runs on a server of its own, so INFO's timer figures and
commandstats are its own.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
from durability_helpers import RespPipe, digest_value
from helpers import (
    RawClient,
    as_map,
    inspect,
    push,
    reserve,
    reserve_one,
    state,
    stats,
    wait_until,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY_CLIENT = os.path.join(ROOT, "clients", "python")
FAR = 10 ** 10


# ---- helpers (test_flows_durability.py uses them too) --------------------------------------------------------

@pytest.fixture
def tag():
    """A hash tag no other test uses: the queues of one flow must hash to one slot."""
    return f"{{shop-{uuid.uuid4().hex[:8]}}}"


def after(dep_queue, *ids):
    """One AFTER clause: the ids live in dep_queue."""
    return ["AFTER", dep_queue, len(ids), *ids]


def deps(r, queue, job_id, *opts):
    """ONCE.DEPS as a list of dicts (RESP2 maps are flat arrays); None for an unknown job."""
    reply = r.execute_command("ONCE.DEPS", queue, job_id, *opts)
    return None if reply is None else [as_map(d) for d in reply]


def all_deps(r, queue, job_id, page=1000):
    """Every dependency of a job, read page by page with FROM / COUNT."""
    out = []
    while True:
        got = deps(r, queue, job_id, "FROM", len(out), "COUNT", page)
        out += got
        if len(got) < page:
            return out


def result(r, queue, job_id, *opts):
    return as_map(r.execute_command("ONCE.RESULT", queue, job_id, *opts))


def ack(r, queue, *ids_and_opts):
    return r.execute_command("ONCE.ACK", queue, *ids_and_opts)


def take(r, queue, job_id, *opts):
    """Reserves one job, which must be `job_id`; returns its attempt."""
    got_id, _, attempt = reserve_one(r, queue, *opts)
    assert got_id == job_id, f"reserved {got_id}, expected {job_id}"
    return attempt


def complete(r, queue, job_id, *opts):
    """Reserves `job_id` (the only or first ready job of its queue) and acks it (with ACK's `opts`)."""
    take(r, queue, job_id)
    assert ack(r, queue, job_id, *opts) == 1


def events(r, queue):
    """The whole event log, page by page."""
    out = []
    while True:
        page = r.execute_command("ONCE.EVENTS", queue, *(["AFTER", out[-1][0]] if out else []), "COUNT", 10000)
        if not page:
            return out
        out += page


def events_of(r, queue, job_id):
    """The names of the events recorded for one job, oldest first."""
    return [e[1] for e in events(r, queue) if e[2] == job_id]


def waiting_ids(r, queue):
    out, cursor = [], "0"
    while True:
        cursor, page = r.execute_command("ONCE.LIST", queue, "waiting", "CURSOR", cursor, "COUNT", 1000)
        out += [as_map(j)["id"] for j in page]
        if cursor == "0":
            return out


def dep_counts(r, queue, job_id):
    j = inspect(r, queue, job_id)
    return {k: j.get(k) for k in ("state", "deps_total", "deps_done", "deps_failed", "deps_left", "on_fail")}


def error_of(r, *args):
    """The exact error text of a command that must fail (RawClient keeps the 'ERR ' prefix)."""
    c = RawClient(r.connection_pool.connection_kwargs["port"])
    try:
        return c.error(*args)
    finally:
        c.close()


# ---- a chain, a diamond --------------------------------------------------------------------------------------

def test_chain_of_three_across_same_tag_queues_runs_in_order(server, r, tag):
    """charge -> ship -> email on three queues of one tag, each run by a worker of the Python client that reads
    the result of the job before it with ONCE.DEPS; all three workers wait from the start."""
    from once import Once, Worker

    charge_q, ship_q, email_q = f"{tag}:charge", f"{tag}:ship", f"{tag}:email"
    p = r.pipeline(transaction=True)  # one transaction: a worker may not finish charge before ship names it
    p.execute_command("ONCE.PUSH", charge_q, "order 42", "ID", "charge-42")
    p.execute_command("ONCE.PUSH", ship_q, "order 42", "ID", "ship-42", *after(charge_q, "charge-42"))
    p.execute_command("ONCE.PUSH", email_q, "order 42", "ID", "email-42", "KEEP", 60000,
                      *after(ship_q, "ship-42"))
    assert p.execute() == ["charge-42", "ship-42", "email-42"]
    assert [state(r, q, i) for q, i in ((charge_q, "charge-42"), (ship_q, "ship-42"), (email_q, "email-42"))] == [
        "ready", "waiting", "waiting"]
    assert result(r, ship_q, "ship-42")["state"] == "waiting"
    assert reserve(r, ship_q) is None and reserve(r, email_q) is None
    s = stats(r, ship_q)
    assert (s["waiting"], s["ready"]) == (1, 0), s

    order, seen, lock = [], {}, threading.Lock()

    def stage(name, queue, make):
        c = server.client(decode_responses=True, protocol=2)

        def run(job):
            got = deps(c, queue, job.id)
            with lock:
                order.append(name)
                seen[name] = got
            return make(got[0]["result"] if got else None)
        return run

    workers = [
        Worker(Once(server.client(), q), stage(name, q, make), pass_job=True, block_ms=500, lease_ms=10000)
        for name, q, make in (("charge", charge_q, lambda _: "charged 42.00"),
                              ("ship", ship_q, lambda prev: f"{prev} -> shipped"),
                              ("email", email_q, lambda prev: f"{prev} -> emailed"))]
    for w in workers:
        w.start()
    try:
        done = result(r, email_q, "email-42", "BLOCK", 15000)
    finally:
        for w in workers:
            w.stop()
        for w in workers:
            assert w.join(15) and w.error is None, w.error
    assert order == ["charge", "ship", "email"], order
    assert (done["state"], done["result"]) == ("completed", "charged 42.00 -> shipped -> emailed"), done
    assert seen["charge"] == []
    for name, dep_q, dep_id, res in (("ship", charge_q, "charge-42", "charged 42.00"),
                                     ("email", ship_q, "ship-42", "charged 42.00 -> shipped")):
        [d] = seen[name]
        assert (d["queue"], d["id"], d["outcome"], d["result"], d["error"]) == (dep_q, dep_id, "completed", res,
                                                                               None), (name, d)
        assert d["state"] in ("completed", "gone"), (name, d)
    for q in (charge_q, ship_q, email_q):
        s = stats(r, q)
        assert (s["acked_total"], s["waiting"], s["ready"], s["reserved"]) == (1, 0, 0, 0), (q, s)
    # KEEP 0: each dependency was kept only for its dependent (the timer frees it)
    wait_until(lambda: result(r, charge_q, "charge-42") is None and result(r, ship_q, "ship-42") is None,
               what="the dependencies freed")


def test_a_released_job_wakes_a_blocked_reserve(server, r, tag):
    """A job released by its dependency's ACK is served to a RESERVE already blocked on its queue (no polling)."""
    first, then = f"{tag}:first", f"{tag}:then"
    push(r, first, "a", "ID", "a")
    push(r, then, "b", "ID", "b", *after(first, "a"))
    c = server.client(decode_responses=True, protocol=2, socket_timeout=15)
    got = {}
    base = r.info("clients")["blocked_clients"]
    t = threading.Thread(target=lambda: got.update(reply=c.execute_command("ONCE.RESERVE", then, "BLOCK", 10000)),
                         daemon=True)
    t.start()
    wait_until(lambda: r.info("clients")["blocked_clients"] > base, what="the RESERVE to block")
    complete(r, first, "a")
    t0 = time.monotonic()
    t.join(10)
    assert not t.is_alive(), "the blocked RESERVE was not served"
    assert got["reply"][0][:2] == ["b", "b"], got
    assert time.monotonic() - t0 < 2, "served by its BLOCK timeout, not by the release"
    c.close()


@pytest.mark.parametrize("one_ack", [False, True], ids=["two-acks", "one-ack"])
def test_diamond_releases_the_join_exactly_once(r, key, one_ack):
    q = key
    r.execute_command("ONCE.CONFIGURE", q, "EVENTS-MAX", 1000)
    assert push(r, q, "A", "ID", "A") == "A"
    assert push(r, q, "B", "ID", "B", *after(q, "A")) == "B"
    assert push(r, q, "C", "ID", "C", *after(q, "A")) == "C"
    assert push(r, q, "D", "ID", "D", *after(q, "B", "C")) == "D"
    assert [state(r, q, j) for j in "ABCD"] == ["ready", "waiting", "waiting", "waiting"]
    d = dep_counts(r, q, "D")
    assert (d["deps_total"], d["deps_done"], d["deps_failed"], d["deps_left"]) == (2, 0, 0, 2), d
    assert d["on_fail"] == "fail"
    assert inspect(r, q, "A")["dependents"] == 2
    assert stats(r, q)["waiting"] == 3
    complete(r, q, "A")
    got = reserve(r, q, "COUNT", 10, "LEASE", 60000)
    assert [g[0] for g in got] == ["B", "C"], got
    if one_ack:
        assert ack(r, q, "B", "C") == 2
    else:
        assert ack(r, q, "B") == 1
        d = dep_counts(r, q, "D")
        assert (d["state"], d["deps_done"], d["deps_left"]) == ("waiting", 1, 1), d
        assert reserve(r, q) is None
        assert ack(r, q, "C") == 1
    assert state(r, q, "D") == "ready"
    got = reserve(r, q, "COUNT", 10, "LEASE", 60000)
    assert [g[0] for g in got] == ["D"], got
    assert reserve(r, q, "COUNT", 10) is None
    assert events_of(r, q, "D").count("release") == 1, events_of(r, q, "D")
    assert "wait" in events_of(r, q, "D")
    assert events_of(r, q, "B").count("release") == 1 and events_of(r, q, "A").count("release") == 0
    s = stats(r, q)
    assert (s["waiting"], s["ready"], s["reserved"], s["reserved_total"]) == (0, 0, 1, 4), s


# ---- ON-FAIL, retries --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cause", ["dead", "cancelled"])
@pytest.mark.parametrize("on_fail", ["fail", "ignore", "continue"])
def test_on_fail(r, tag, on_fail, cause):
    """A job waits on x and y; x dies after its last retry (or is cancelled) while y is pending; then y completes."""
    work, dq = f"{tag}:work", f"{tag}:deps"
    r.execute_command("ONCE.CONFIGURE", work, "EVENTS-MAX", 1000)
    push(r, dq, "x", "ID", "x", "RETRIES", 1, "BACKOFF", 1, "PRIORITY", 10)
    push(r, dq, "y", "ID", "y")
    assert push(r, work, "w", "ID", "w", *after(dq, "x", "y"), "ON-FAIL", on_fail) == "w"
    assert dep_counts(r, work, "w")["on_fail"] == on_fail
    if cause == "dead":
        wait_until(lambda: state(r, dq, "x") == "ready")
        assert take(r, dq, "x") == 1
        assert r.execute_command("ONCE.NACK", dq, "x", "ATTEMPT", 1, "ERROR", "first", "DELAY", 1) == 1
        # a retry is no death: nobody is woken
        wait_until(lambda: state(r, dq, "x") == "ready", what="x back for its retry")
        c = dep_counts(r, work, "w")
        assert (c["state"], c["deps_failed"], c["deps_left"]) == ("waiting", 0, 2), c
        assert take(r, dq, "x") == 2
        assert r.execute_command("ONCE.NACK", dq, "x", "ATTEMPT", 2, "ERROR", "second") == 1
        assert state(r, dq, "x") == "dead"
        how, x_error = "died", "second"
    else:
        assert r.execute_command("ONCE.CANCEL", dq, "x") == 1
        how, x_error = "was cancelled", "cancelled"
    c = dep_counts(r, work, "w")
    if on_fail == "fail":
        j = inspect(r, work, "w")
        assert j["state"] == "dead", c
        assert j["last_error"] == f"dependency {dq} x {how}", j
        complete(r, dq, "y")
        assert state(r, work, "w") == "dead"
        s = stats(r, work)
        assert (s["waiting"], s["ready"], s["dead"]) == (0, 0, 1), s
        assert "release" not in events_of(r, work, "w")
        # nobody waits on y any more: KEEP 0 frees it
        wait_until(lambda: result(r, dq, "y") is None, what="y freed")
    else:
        assert (c["state"], c["deps_failed"], c["deps_left"]) == ("waiting", 1, 1), c
        assert reserve(r, work) is None
        complete(r, dq, "y")
        c = dep_counts(r, work, "w")
        assert (c["state"], c["deps_left"], c["deps_total"]) == ("ready", 0, 2), c
        # ignore: x is dropped, not counted as done; continue: it counts as done
        assert c["deps_done"] == (1 if on_fail == "ignore" else 2), c
        assert events_of(r, work, "w").count("release") == 1
    got = {d["id"]: d for d in deps(r, work, "w")}
    assert [d["id"] for d in deps(r, work, "w")] == ["x", "y"]
    assert (got["x"]["outcome"], got["x"]["result"]) == (cause, None), got["x"]
    if cause == "dead":                   # dead jobs stay (DEAD-TTL); a cancelled one is kept while w holds it
        assert (got["x"]["state"], got["x"]["error"]) == ("dead", x_error), got["x"]
    else:
        assert got["x"]["state"] in ("cancelled", "gone"), got["x"]
        assert got["x"]["error"] in (x_error, None), got["x"]
    assert got["y"]["outcome"] == "completed", got["y"]


def test_a_dependency_that_already_finished_counts_at_once(r, tag):
    """Completed (kept) -> done at once; dead or cancelled (kept) -> ON-FAIL at once; a DELAY still applies."""
    work, dq = f"{tag}:work", f"{tag}:deps"
    push(r, dq, "done", "ID", "done", "KEEP", 60000, "PRIORITY", 3)
    complete(r, dq, "done", "RESULT", "ok")
    push(r, dq, "dead", "ID", "dead", "RETRIES", 0, "PRIORITY", 2)
    take(r, dq, "dead")
    assert r.execute_command("ONCE.NACK", dq, "dead", "ERROR", "bad") == 1
    push(r, dq, "gone", "ID", "gone", "KEEP", 60000)
    assert r.execute_command("ONCE.CANCEL", dq, "gone") == 1
    pending = push(r, dq, "pending", "ID", "pending")

    push(r, work, "on-done", "ID", "on-done", *after(dq, "done"))
    c = dep_counts(r, work, "on-done")
    assert (c["state"], c["deps_done"], c["deps_left"]) == ("ready", 1, 0), c
    push(r, work, "on-dead", "ID", "on-dead", *after(dq, "dead", "pending"))
    j = inspect(r, work, "on-dead")
    assert (j["state"], j["last_error"]) == ("dead", f"dependency {dq} dead died"), j
    push(r, work, "on-cancelled", "ID", "on-cancelled", *after(dq, "gone"))
    j = inspect(r, work, "on-cancelled")
    assert (j["state"], j["last_error"]) == ("dead", f"dependency {dq} gone was cancelled"), j
    push(r, work, "ignore-dead", "ID", "ignore-dead", *after(dq, "dead"), "ON-FAIL", "ignore")
    assert state(r, work, "ignore-dead") == "ready"          # nothing left to wait for
    push(r, work, "continue-both", "ID", "continue-both", *after(dq, "dead", "gone"), "ON-FAIL", "continue")
    assert state(r, work, "continue-both") == "ready"
    # a DELAY (or AT) applies from the release; the dependency here is still pending
    push(r, work, "later", "ID", "later", "DELAY", FAR, *after(dq, pending))
    assert state(r, work, "later") == "waiting"
    push(r, work, "later-done", "ID", "later-done", "DELAY", FAR, *after(dq, "done"))
    assert state(r, work, "later-done") == "delayed"
    # ONCE.AFTER naming a dependency that is dead already: ON-FAIL (fail) at once
    push(r, work, "grows", "ID", "grows", *after(dq, pending))
    assert r.execute_command("ONCE.AFTER", work, "grows", dq, 1, "dead") == 1
    j = inspect(r, work, "grows")
    assert (j["state"], j["last_error"]) == ("dead", f"dependency {dq} dead died"), j
    complete(r, dq, pending)
    assert state(r, work, "later") == "delayed"
    s = stats(r, work)
    assert (s["waiting"], s["ready"], s["delayed"], s["dead"]) == (0, 3, 2, 3), s


def test_retries_of_a_dependency_wake_nobody(r, tag):
    """A NACK with a retry left and a lease that runs out with a retry left leave the dependent waiting; the
    dependency's later ACK releases it once."""
    work, dq = f"{tag}:work", f"{tag}:deps"
    r.execute_command("ONCE.CONFIGURE", work, "EVENTS-MAX", 1000)
    push(r, dq, "x", "ID", "x", "RETRIES", 3, "BACKOFF", 1)
    push(r, work, "w", "ID", "w", *after(dq, "x"))
    assert take(r, dq, "x") == 1
    assert r.execute_command("ONCE.NACK", dq, "x", "ATTEMPT", 1, "ERROR", "transient", "DELAY", 1) == 1
    wait_until(lambda: state(r, dq, "x") == "ready", what="x retried")
    assert take(r, dq, "x", "LEASE", 20) == 2
    wait_until(lambda: stats(r, dq)["expired_total"] == 1, what="x's lease to run out")
    wait_until(lambda: state(r, dq, "x") == "ready", what="x retried after its lease ran out")
    c = dep_counts(r, work, "w")
    assert (c["state"], c["deps_done"], c["deps_failed"], c["deps_left"]) == ("waiting", 0, 0, 1), c
    assert "wait" in events_of(r, work, "w") and "release" not in events_of(r, work, "w")
    [d] = deps(r, work, "w")
    assert (d["state"], d["outcome"]) == ("ready", "pending"), d
    assert take(r, dq, "x") == 3
    assert ack(r, dq, "x", "ATTEMPT", 3) == 1
    assert state(r, work, "w") == "ready"
    assert events_of(r, work, "w").count("release") == 1


# ---- refused: cycles, missing ids, CROSSSLOT, bad arguments --------------------------------------------------

def test_cycles_and_missing_ids_are_refused_with_nothing_changed(r, tag):
    q, other = f"{tag}:q", f"{tag}:other"
    push(r, q, "z", "ID", "z")
    push(r, q, "a", "ID", "a", *after(q, "z"))
    push(r, q, "b", "ID", "b", *after(q, "a"))
    push(r, other, "c", "ID", "c", *after(q, "b"))
    before = (stats(r, q), stats(r, other), digest_value(r, q, other), [dep_counts(r, q, j) for j in "ab"])

    def unchanged():
        assert (stats(r, q), stats(r, other), digest_value(r, q, other),
                [dep_counts(r, q, j) for j in "ab"]) == before

    # a -> z; b -> a; c -> b: a waiting on c (or on b, or on itself) closes a cycle
    for dep_q, dep in ((other, "c"), (q, "b"), (q, "a")):
        err = error_of(r, "ONCE.AFTER", q, "a", dep_q, 1, dep)
        assert err.startswith("ERR AFTER would make a cycle"), (dep, err)
        unchanged()
    # one good id beside a missing one: nothing is added
    assert error_of(r, "ONCE.AFTER", q, "a", q, 2, "z", "nope") == f"ERR AFTER names no job: {q} nope"
    assert error_of(r, "ONCE.PUSH", q, "n", "ID", "n", "AFTER", q, 2, "z", "nope") == \
        f"ERR AFTER names no job: {q} nope"
    assert error_of(r, "ONCE.PUSH", q, "n", "AFTER", q, 1, "z", "AFTER", other, 1, "nope") == \
        f"ERR AFTER names no job: {other} nope"
    unchanged()
    assert error_of(r, "ONCE.AFTER", q, "nope", q, 1, "z") == "ERR no such job"
    assert error_of(r, "ONCE.AFTER", q, "z", q, 1, "a").startswith("ERR job is not waiting")
    assert error_of(r, "ONCE.PUSH", q, "n", "ON-FAIL", "ignore").startswith("ERR")   # ON-FAIL without AFTER
    assert error_of(r, "ONCE.PUSH", q, "n", *after(q, "z"), "ON-FAIL", "sometimes").startswith("ERR")
    assert error_of(r, "ONCE.PUSH", q, "n", "AFTER", q, 2, "z").startswith("ERR")    # fewer ids than n
    too_many = 100001                     # the most one call may name is 100,000
    assert error_of(r, "ONCE.PUSH", q, "n", "AFTER", q, too_many, *["z"] * too_many).startswith("ERR")
    # an id a live job holds: nothing is added, whatever AFTER says (a keeps its one dependency)
    assert push(r, q, "again", "ID", "a", *after(q, "b")) == "a"
    unchanged()
    assert r.execute_command("ONCE.DEPS", q, "nope") is None
    # a cycle needs no error when the new dependency does not reach back: z is still pending, d waits on a and z
    push(r, q, "d", "ID", "d", *after(q, "a", "z", "z"))   # z twice counts once
    assert dep_counts(r, q, "d")["deps_total"] == 2


def test_crossslot_on_standalone(r):
    tag_a, tag_b = f"{{a-{uuid.uuid4().hex[:6]}}}", f"{{b-{uuid.uuid4().hex[:6]}}}"
    qa, qb = f"{tag_a}:q", f"{tag_b}:q"
    push(r, qb, "dep", "ID", "dep")
    push(r, qa, "w0", "ID", "w0")
    push(r, qa, "w", "ID", "w", *after(qa, "w0"))
    before = (stats(r, qa), stats(r, qb))
    assert error_of(r, "ONCE.PUSH", qa, "x", *after(qb, "dep")).startswith("CROSSSLOT")
    assert error_of(r, "ONCE.PUSH", qa, "x", *after(qa, "w0"), *after(qb, "dep")).startswith("CROSSSLOT")
    assert error_of(r, "ONCE.AFTER", qa, "w", qb, 1, "dep").startswith("CROSSSLOT")
    # a missing id in another slot is CROSSSLOT too, and a queue of no tag as well
    assert error_of(r, "ONCE.PUSH", qa, "x", *after(qb, "nope")).startswith("CROSSSLOT")
    assert error_of(r, "ONCE.PUSH", "plain-queue", "x", *after(qa, "w0")).startswith("CROSSSLOT")
    assert (stats(r, qa), stats(r, qb)) == before
    assert r.exists("plain-queue") == 0
    assert dep_counts(r, qa, "w")["deps_total"] == 1


def test_after_adds_to_a_waiting_job(r, tag):
    q, other = f"{tag}:q", f"{tag}:other"
    push(r, q, "x", "ID", "x")
    push(r, other, "y", "ID", "y", "PRIORITY", 1)
    push(r, other, "y2", "ID", "y2")
    push(r, q, "w", "ID", "w", *after(q, "x"))
    assert r.execute_command("ONCE.AFTER", q, "w", other, 2, "y", "y", q, 1, "x") == 1   # y once; x is there
    assert r.execute_command("ONCE.AFTER", q, "w", other, 2, "y", "y2") == 1
    c = dep_counts(r, q, "w")
    assert (c["state"], c["deps_total"], c["deps_left"]) == ("waiting", 3, 3), c
    assert [(d["queue"], d["id"]) for d in deps(r, q, "w")] == [(q, "x"), (other, "y"), (other, "y2")]
    assert inspect(r, other, "y")["dependents"] == 1
    complete(r, q, "x")
    complete(r, other, "y")
    assert state(r, q, "w") == "waiting"
    complete(r, other, "y2")
    assert state(r, q, "w") == "ready"
    assert error_of(r, "ONCE.AFTER", q, "w", q, 1, "x").startswith("ERR job is not waiting")


# ---- waiting jobs in the admin commands ------------------------------------------------------------------------

def test_waiting_jobs_in_stats_list_inspect_events_purge_cancel(r, r3, tag):
    q, dq = f"{tag}:q", f"{tag}:deps"
    r.execute_command("ONCE.CONFIGURE", q, "EVENTS-MAX", 1000)
    push(r, dq, "x", "ID", "x")
    for w in ("w1", "w2", "w3"):
        push(r, q, w, "ID", w, *after(dq, "x"))
    push(r, q, "w4", "ID", "w4", *after(q, "w1"))      # waits on a waiting job
    push(r, q, "ready", "ID", "ready")
    s = stats(r, q)
    assert (s["waiting"], s["ready"], s["pushed_total"]) == (4, 1, 5), s
    assert sorted(waiting_ids(r, q)) == ["w1", "w2", "w3", "w4"]
    assert inspect(r, dq, "x")["dependents"] == 3
    j = inspect(r, q, "w1")
    assert (j["state"], j["deps_total"], j["deps_left"], j["dependents"], j["due"]) == ("waiting", 1, 1, 1, None), j
    j3 = as_map(r3.execute_command("ONCE.INSPECT", q, "w1"))
    assert j3["state"] == "waiting" and j3["deps_total"] == 1, j3
    [d3] = r3.execute_command("ONCE.DEPS", q, "w1")
    assert isinstance(d3, dict) and d3["id"] == "x" and d3["outcome"] == "pending", d3
    assert [e[2] for e in events(r, q) if e[1] == "wait"] == ["w1", "w2", "w3", "w4"]
    assert result(r, q, "w2")["state"] == "waiting"
    assert state(r, q, "ready") == "ready"
    assert inspect(r, dq, "x")["pinned_by"] == 3
    # CANCEL of a waiting job: its own dependent sees it cancelled, and its pin on x goes back
    assert r.execute_command("ONCE.CANCEL", q, "w1") == 1
    j = inspect(r, q, "w4")
    assert (j["state"], j["last_error"]) == ("dead", f"dependency {q} w1 was cancelled"), j
    assert "cancel" in events_of(r, q, "w1")
    assert inspect(r, dq, "x")["pinned_by"] == 2
    # PURGE waiting: the rest go, and nothing is released later
    assert r.execute_command("ONCE.PURGE", q, "waiting") == 2
    s = stats(r, q)
    assert (s["waiting"], s["ready"], s["dead"]) == (0, 1, 1), s
    assert waiting_ids(r, q) == [] and inspect(r, q, "w2") is None
    # The purged jobs' pins are not handed back (documented): x stays kept for them (at most PIN_MAX, 7 days),
    # whatever KEEP says.
    complete(r, dq, "x", "RESULT", "nobody reads me")
    time.sleep(0.05)                      # KEEP 0 would have freed it by now (the timer frees within a few ms)
    j = inspect(r, dq, "x")
    assert (j["state"], j["result"], j["pinned_by"]) == ("completed", "nobody reads me", 2), j
    s = stats(r, q)
    assert (s["waiting"], s["ready"]) == (0, 1), s
    assert "release" not in [e[1] for e in events(r, q)]


def test_keep0_dependency_results_are_kept_for_their_dependents(r, tag):
    q, dq = f"{tag}:q", f"{tag}:deps"
    push(r, dq, "x", "ID", "x")
    push(r, dq, "y", "ID", "y")
    push(r, q, "w1", "ID", "w1", "PRIORITY", 1, *after(dq, "x"))
    push(r, q, "w2", "ID", "w2", *after(dq, "x", "y"))
    complete(r, dq, "x", "RESULT", "x-result")
    # KEEP 0, and yet kept: w1 and w2 have not started
    got = result(r, dq, "x")
    assert (got["state"], got["result"]) == ("completed", "x-result"), got
    assert stats(r, dq)["completed"] == 1
    take(r, q, "w1")                      # w1 started; w2 still waits (on y)
    assert result(r, dq, "x")["result"] == "x-result"
    [d] = deps(r, q, "w1")
    assert (d["outcome"], d["result"]) == ("completed", "x-result"), d
    complete(r, dq, "y", "RESULT", "y-result")
    take(r, q, "w2")                      # the last dependent started
    # the running dependent reads what its dependencies gave (a worker's handler does this)
    got = {d["id"]: d for d in deps(r, q, "w2")}
    assert got["x"]["state"] in ("completed", "gone"), got
    assert (got["x"]["outcome"], got["x"]["result"]) == ("completed", "x-result"), got
    assert (got["y"]["outcome"], got["y"]["result"]) == ("completed", "y-result"), got
    # KEEP 0 applies once the dependents are under way: x and y go (the timer frees them)
    assert ack(r, q, "w1") == 1 and ack(r, q, "w2") == 1
    wait_until(lambda: result(r, dq, "x") is None and result(r, dq, "y") is None, what="x and y freed")
    assert stats(r, dq)["completed"] == 0
    assert deps(r, q, "w2") is None       # w2 itself is gone (KEEP 0)
    # the ids are free again (the dedup window of KEEP 0 ended)
    assert push(r, dq, "x again", "ID", "x") == "x" and stats(r, dq)["pushed_total"] == 3


def test_a_queue_keep_applies_after_the_dependents_started(r, tag):
    q, dq = f"{tag}:q", f"{tag}:deps"
    r.execute_command("ONCE.CONFIGURE", dq, "KEEP", 300)
    push(r, dq, "x", "ID", "x")
    push(r, q, "w", "ID", "w", *after(dq, "x"))
    complete(r, dq, "x", "RESULT", "r")
    time.sleep(0.5)                       # past KEEP: still kept, w has not started
    assert result(r, dq, "x")["result"] == "r"
    take(r, q, "w")
    assert ack(r, q, "w") == 1
    wait_until(lambda: result(r, dq, "x") is None, timeout=5, what="KEEP to free x once w ran")


# ---- many at once --------------------------------------------------------------------------------------------

N = 10000


def push_waiting(port, queue, dep_queue, dep_id, n, prefix):
    """n jobs waiting on one dependency, pipelined."""
    pipe = RespPipe(port)
    try:
        ids = [f"{prefix}{i}" for i in range(n)]
        got = pipe.run([["ONCE.PUSH", queue, f"job {i}", "ID", i, *after(dep_queue, dep_id)] for i in ids])
        assert got == ids
        return ids
    finally:
        pipe.close()


def test_an_ack_releases_ten_thousand_waiting_jobs_each_once(fresh_server):
    r = fresh_server.client(decode_responses=True, protocol=2)
    q, dq = "{big}:q", "{big}:deps"
    r.execute_command("ONCE.CONFIGURE", q, "EVENTS-MAX", 3 * N)
    push(r, dq, "x", "ID", "x")
    ids = push_waiting(fresh_server.port, q, dq, "x", N, "w")
    assert stats(r, q)["waiting"] == N
    take(r, dq, "x")
    ticks = r.info("once")["once_timer_ticks"]
    p = r.pipeline(transaction=True)      # nothing (the timer neither) runs between the ACK and the STATS
    p.execute_command("ONCE.ACK", dq, "x")
    p.execute_command("ONCE.STATS", q)
    acked, s = p.execute()
    t0 = time.monotonic()
    s = as_map(s)
    assert acked == 1
    # The ACK itself releases a bounded part (the contract says up to 1,000), timer steps the rest.
    assert 0 < s["ready"] <= 1000 and s["waiting"] == N - s["ready"], s
    wait_until(lambda: stats(r, q)["waiting"] == 0, timeout=5, interval=0.001, what="the timer's releases")
    took = time.monotonic() - t0
    assert stats(r, q)["ready"] == N
    released = [e[2] for e in events(r, q) if e[1] == "release"]
    assert len(released) == N and set(released) == set(ids), len(released)
    got = []
    while True:
        page = reserve(r, q, "COUNT", 1000, "LEASE", 60000)
        if not page:
            break
        got += [g[0] for g in page]
    assert len(got) == N and set(got) == set(ids)
    assert took < 2, f"releasing {N} took {took:.2f}s"
    # In steps: several timer ticks, none of them long, and a short ACK.
    info = r.info("once")
    assert info["once_timer_ticks"] - ticks >= 2, info
    assert info["once_timer_max_tick_us"] < 200000, info
    assert r.info("commandstats")["cmdstat_once.ack"]["usec"] < 200000


def bulk_ids(r, queue, n, *opts, chunk=1000):
    ids = []
    for start in range(0, n, chunk):
        ids += r.execute_command("ONCE.BULK", queue, *opts, "PAYLOADS",
                                 *[f"part {i}" for i in range(start, min(n, start + chunk))])
    return ids


def test_a_batch_of_ten_thousand_with_one_callback(r, tag):
    jobs, done = f"{tag}:jobs", f"{tag}:done"
    ids = bulk_ids(r, jobs, N)
    cb = push(r, done, "all parts done", "ID", "callback", *after(jobs, *ids))
    c = dep_counts(r, done, cb)
    assert (c["state"], c["deps_total"], c["deps_left"]) == ("waiting", N, N), c
    assert len(all_deps(r, done, cb)) == N
    acked = 0
    while acked < N:
        got = reserve(r, jobs, "COUNT", 1000, "LEASE", 60000)
        batch = [g[0] for g in got]
        if acked + len(batch) == N:
            last = batch.pop()
            if batch:
                assert ack(r, jobs, *batch) == len(batch)
            # Before the last ACK the callback still waits, on exactly one job.
            c = dep_counts(r, done, cb)
            assert (c["state"], c["deps_done"], c["deps_left"]) == ("waiting", N - 1, 1), c
            assert reserve(r, done) is None
            assert ack(r, jobs, last) == 1
            acked = N
        else:
            assert ack(r, jobs, *batch) == len(batch)
            acked += len(batch)
    assert state(r, done, cb) == "ready"
    take(r, done, cb)
    assert reserve(r, done) is None
    page = deps(r, done, cb, "FROM", N - 10, "COUNT", 10)
    assert [d["id"] for d in page] == ids[-10:]
    assert all(d["outcome"] == "completed" for d in all_deps(r, done, cb))
    assert ack(r, done, cb) == 1
    s = stats(r, done)
    assert (s["reserved_total"], s["acked_total"], s["waiting"], s["ready"]) == (1, 1, 0, 0), s


WORKER_SCRIPT = r'''
import sys
import redis
from once import Once, Worker

port, queue, kind, log_key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
r = redis.Redis(port=port, decode_responses=True, protocol=2)

def part(job):
    r.hincrby(log_key, job.id, 1)          # every execution, so a rerun after kill -9 shows

def callback(job):
    deps, page = [], 1000
    while True:
        got = r.execute_command("ONCE.DEPS", queue, job.id, "FROM", len(deps), "COUNT", page)
        deps += [dict(zip(d[0::2], d[1::2])) for d in got]
        if len(got) < page:
            break
    done = sum(1 for d in deps if d["outcome"] == "completed")
    r.rpush(log_key, f"{job.id} {done} {len(deps)}")
    return str(done)

print("worker up", flush=True)
Worker(Once(redis.Redis(port=port), queue), part if kind == "part" else callback, pass_job=True,
       prefetch=20 if kind == "part" else 1, lease_ms=1000, block_ms=200).run()
'''


def start_worker(script, port, queue, kind, log_key):
    env = dict(os.environ, PYTHONPATH=PY_CLIENT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, script, str(port), queue, kind, log_key], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_batch_callback_runs_once_when_workers_are_killed_halfway(server, r, tag):
    """10,000 jobs run by two worker processes, killed -9 halfway and started again; their leases (1 s) hand the
    jobs they held to the new workers. A third worker runs the callback: once, after every job completed."""
    jobs, done = f"{tag}:jobs", f"{tag}:done"
    runs, ran = f"{tag}:runs", f"{tag}:ran"
    ids = bulk_ids(r, jobs, N, "RETRIES", 10, "BACKOFF", 10)
    push(r, done, "callback", "ID", "callback", "KEEP", 60000, *after(jobs, *ids))
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(WORKER_SCRIPT)
    procs = []
    try:
        procs.append(start_worker(f.name, server.port, done, "callback", ran))
        parts = [start_worker(f.name, server.port, jobs, "part", runs) for _ in range(2)]
        procs += parts
        wait_until(lambda: stats(r, jobs)["acked_total"] >= N // 2, timeout=60, interval=0.02,
                   what="half the batch done")
        for p in parts:
            p.send_signal(signal.SIGKILL)
        for p in parts:
            p.wait(10)
        s = stats(r, jobs)
        assert s["acked_total"] < N and s["reserved"] > 0, s   # the killed workers held jobs
        c = dep_counts(r, done, "callback")
        assert (c["state"], c["deps_done"]) == ("waiting", s["acked_total"]), (c, s)
        procs += [start_worker(f.name, server.port, jobs, "part", runs) for _ in range(2)]
        got = result(r, done, "callback", "BLOCK", 90000)
        assert got["state"] == "completed", got
        time.sleep(0.3)   # a second run of the callback would show in the log by now
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(10)
        os.unlink(f.name)
    assert r.lrange(ran, 0, -1) == [f"callback {N} {N}"]
    assert got["result"] == str(N)
    s = stats(r, jobs)
    assert (s["acked_total"], s["ready"], s["reserved"], s["delayed"], s["dead"]) == (N, 0, 0, 0, 0), s
    assert s["expired_total"] >= 1, "no lease ran out: the kill did not hit a job in hand"
    counts = r.hgetall(runs)
    assert set(counts) == set(ids)
    d = stats(r, done)
    assert (d["reserved_total"], d["acked_total"]) == (1, 1), d
