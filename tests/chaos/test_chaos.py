"""The chaos suite's short profile inside `make test` (`make chaos` runs the full one through run.py), and proof that
the checker does catch what it claims to: a queue deleted under the workload shows as lost jobs, a payload no
producer sent shows as unexpected, so a run that passes is not a checker that cannot fail."""
import time

import pytest

import run
import topologies
import harness
from checker import Workload

KINDS = harness.kinds()
SHORT = [sc for sc in run.scenarios() if "short" in sc.profiles]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scenario", SHORT, ids=[sc.name for sc in SHORT])
def test_no_acknowledged_job_is_lost(scenario, kind, capsys):
    res = run.run_one(scenario, kind, "short")
    with capsys.disabled():
        print("\n" + res.line())
    assert res.acknowledged > 100, f"too few acknowledged pushes to mean anything: {res.line()}"
    assert res.completed > 100, res.line()
    assert any("kill" in f or "SIGSTOP" in f or "FAILOVER" in f for f in res.faults), res.faults
    assert res.ok, res.line() + "\n" + res.details()


def _quick_run(kind, during):
    """A short workload on a master+replica with `during(topology, workload)` in the middle; the Result."""
    topo = topologies.MasterReplica(kind, "everysec")
    wl = Workload(topo.factory, run.QUEUES, lease_ms=500, backlog_queues=run.BACKLOG)
    try:
        wl.start()
        time.sleep(1.0)
        during(topo, wl)
        time.sleep(0.5)
        wl.stop()
        wl.drain(topo.factory, settle=1.0)
        return wl.check(topo.factory)
    finally:
        wl.stop()
        topo.close()


@pytest.mark.parametrize("kind", KINDS)
def test_checker_reports_a_deleted_queue_as_lost(kind):
    def delete_backlog(topo, wl):
        c = topo.admin(topo.master)
        try:
            # Producers pick their queue at random: on a loaded machine the first second may not reach the backlog.
            deadline = time.monotonic() + 15
            while not c.exists(run.BACKLOG[0]) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert c.delete(run.BACKLOG[0]) == 1
        finally:
            c.close()
        wl.note_fault("DEL backlog")
    res = _quick_run(kind, delete_backlog)
    assert res.lost, res.line()
    assert not res.ok
    assert all(run.BACKLOG[0] in item for item in res.lost), res.lost[:5]
    assert "lost=%d" % len(res.lost) in res.line() and res.line().endswith("FAIL")


@pytest.mark.parametrize("kind", KINDS)
def test_checker_reports_a_foreign_payload_as_unexpected(kind):
    def intrude(topo, wl):
        c = topo.admin(topo.master)
        try:
            c.execute_command("ONCE.PUSH", run.QUEUES[0], "intruder-payload")
        finally:
            c.close()
    res = _quick_run(kind, intrude)
    assert res.unexpected == ["intruder-payload"], res.line()
    assert not res.lost, res.details()
    assert not res.ok
