"""Valkey 9's atomic slot migration (CLUSTER MIGRATESLOTS) of a busy queue's slot, on a cluster of its own (3 masters
+ 3 replicas, so INFO once counts only this file's queues). The target copies the slot from the source's AOF-format
snapshot and then its write stream; until the hand-off it must not act on the queue itself, after it the source
must not, and the source's registry must keep nothing of the keys trimmed from it.

- A migration under load (producers and blocking workers through RedisCluster, a schedule firing every 300 ms,
  delayed jobs and leases falling due after the hand-off): nothing acknowledged is lost or delivered twice, the
  digest on the target at the hand-off equals the source's in its final pause, the source's timer is quiet in that
  pause, promotion, lease expiry and cron run on the target afterwards and never on the source, whose registry
  (and its replica's) is empty; a raw blocked reserve on the source is answered MOVED, RedisCluster follows.
- A migration cancelled half-way (CLUSTER CANCELSLOTMIGRATIONS while the target streams): the target's copy
  followed the source's stream exactly (equal digests while the source is paused: the target's timer did not
  act), the target drops the copy and its registry entries, the source goes on; a second migration then completes.
"""
import threading
import time

import pytest

import harness
from cluster_harness import Cluster, key_slot, wait_until
from cluster_helpers import (Load, RawClient, as_map, cluster_client, digest_value, encode_command, moved_target,
                             note, once_info, scan_queues, slot_migrations, stats)

pytestmark = pytest.mark.skipif("valkey" not in harness.kinds(), reason="CLUSTER MIGRATESLOTS is Valkey 9's")

LEASE_MS = DELAY_MS = 6000  # falls due after the hand-off (checked in the source's final pause)
BACKLOG = 50000


@pytest.fixture(scope="module")
def vcl():
    c = Cluster("valkey")
    yield c
    c.close()


@pytest.fixture
def cl(vcl):
    vcl.wait_healthy(timeout=60)
    return vcl


def other_master(cluster, node):
    return next(m for m in sorted(cluster.masters(), key=lambda m: m.port) if m is not node)


def state_of(client):
    """The state of the node's newest slot migration job."""
    jobs = slot_migrations(client)
    return jobs[0]["state"] if jobs else None


def owns(cluster, node, slot):
    """`node` maps `slot` to itself."""
    return cluster.slot_owner(slot, node) is node


def blocked_reserves(cluster, node):
    c = cluster.client(node)
    try:
        return [x for x in c.client_list() if "b" in x["flags"] and x["cmd"].lower() == "once.reserve"]
    finally:
        c.close()


def list_ids(client, queue, state):
    out, cursor = [], "0"
    while True:
        nxt, jobs = client.execute_command("ONCE.LIST", queue, state, "CURSOR", cursor, "COUNT", 1000)
        out += [as_map(j)["id"] for j in jobs]
        if nxt == "0":
            return out
        cursor = nxt


def test_migrateslots_of_a_busy_queue_under_load(cl, prefix):
    busy, idle = f"{{{prefix}}}:busy", f"{{{prefix}}}:idle"  # one slot; the idle queue keeps reserves waiting
    later = f"{{{prefix}}}:later"  # its only work is an hour away: nothing but the migration clears its entry
    backlog = f"{{{prefix}}}:backlog"  # BACKLOG jobs nobody reserves: the bulk of the slot's snapshot
    slot = key_slot(busy)
    src = cl.owner(busy)
    dst = other_master(cl, src)
    sc, dc = cl.client(src), cl.client(dst)
    rc = cluster_client(cl, socket_timeout=30)
    raw = follower = None
    load = Load(cl, [busy], block_queues=[busy], producers=2, blockers=2, pollers=0, rate=150, max_secs=90)
    try:
        assert rc.execute_command("ONCE.SCHEDULE", busy, "tick", "@every 300ms", "tick")
        for i in range(3):  # reserved here and never acked: their leases run out after the hand-off
            rc.execute_command("ONCE.PUSH", busy, f"lease {i}", "ID", f"l{i}", "PRIORITY", 100, "RETRIES", 3,
                               "BACKOFF", 100)
        assert sorted(j[0] for j in rc.execute_command("ONCE.RESERVE", busy, "COUNT", 3, "LEASE", LEASE_MS)) == [
            "l0", "l1", "l2"]
        for i in range(10):  # promoted after the hand-off
            rc.execute_command("ONCE.PUSH", busy, f"delayed {i}", "ID", f"d{i}", "DELAY", DELAY_MS)
        setup_pushes = 13
        rc.execute_command("ONCE.PUSH", later, "in an hour", "ID", "h", "DELAY", 3600000)
        for start in range(0, BACKLOG, 5000):
            p = sc.pipeline(transaction=False)
            for i in range(start, start + 5000):
                p.execute_command("ONCE.PUSH", backlog, f"backlog job {i:06d} " + "x" * 80)
            p.execute()
        src_info0 = once_info(sc)
        assert src_info0["queues"] == 3 and src_info0["timer_queues_waiting"] == 2, src_info0

        load.start()
        wait_until(lambda: load.reserves_by_queue.get(busy, 0) >= 50, 20, "the busy queue being worked")
        raw = RawClient(src.port, timeout=20)
        raw.sock.sendall(encode_command(["ONCE.RESERVE", idle, "BLOCK", 0]))
        followed = {}

        def follow():
            c = cluster_client(cl, socket_timeout=60)
            try:
                followed["reply"] = c.execute_command("ONCE.RESERVE", idle, "BLOCK", 0)
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                followed["error"] = repr(e)
            finally:
                c.close()

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        wait_until(lambda: len(blocked_reserves(cl, src)) >= 2, 10, "two reserves on the idle queue blocked on src")

        # The target holds the slot at its last step, so the source stays in its final pause (writes and timer
        # stopped, everything sent) while both copies are compared.
        dc.execute_command("DEBUG", "SLOTMIGRATION", "PREVENT-FAILOVER", 1)
        t0 = time.time()
        assert cl.migrate_slots(slot, src, dst) == "OK"
        wait_until(lambda: state_of(sc) == "failover-granted", 10, "the source paused for the hand-off")
        t_paused = time.time() - t0
        src_ticks = once_info(sc)["timer_ticks"]
        pause = {"digest": digest_value(sc, busy), "stats": stats(sc, busy), "backlog": digest_value(sc, backlog),
                 "schedule": as_map(sc.execute_command("ONCE.SCHEDULES", busy)[0]),
                 "reserved": list_ids(sc, busy, "reserved"), "delayed": list_ids(sc, busy, "delayed")}
        time.sleep(0.5)  # schedule ticks fall due meanwhile: a timer that acted would count a tick
        assert once_info(sc)["timer_ticks"] == src_ticks, "the source's timer acted in the hand-off pause"
        assert {"l0", "l1", "l2"} <= set(pause["reserved"]), pause["reserved"]
        assert {f"d{i}" for i in range(10)} <= set(pause["delayed"]), pause["delayed"]
        # The target applied the whole stream, and did nothing of its own (its commands still answer MOVED for
        # the slot: only DEBUG sees the copy).
        there = digest_value(dc, busy)
        assert there == pause["digest"] != "0" * 40, (there, pause["digest"])
        assert digest_value(dc, later) == digest_value(sc, later)
        assert digest_value(dc, backlog) == pause["backlog"]

        # The hand-off. (Not under CLIENT PAUSE on the target: Valkey 9.1.2 aborts on an assertion when a slot
        # import completes while its writes are paused.) The target's copy cannot change before it: the source
        # sends nothing more, and the target's timer holds the queue until the import completes.
        dc.execute_command("DEBUG", "SLOTMIGRATION", "PREVENT-FAILOVER", 0)
        wait_until(lambda: state_of(dc) == "success" and owns(cl, dst, slot), 10, "the target owning the slot")
        t_handoff = time.time()

        # The source lets go: the blocked reserve is redirected, the slot is trimmed, the registry is empty.
        reply = raw._read()
        assert isinstance(reply, tuple) and reply[0] == "error" and reply[1].startswith("MOVED"), reply
        assert moved_target(reply[1]) == (slot, dst.port)
        t_moved = time.time() - t_handoff
        wait_until(lambda: state_of(sc) == "success", 10, "the source's export done")
        assert sc.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        src_info1 = once_info(sc)
        assert (src_info1["queues"], src_info1["timer_queues_waiting"]) == (0, 0), src_info1
        wait_until(lambda: blocked_reserves(cl, dst) and not blocked_reserves(cl, src), 10,
                   "the RedisCluster reserve waiting on the target")

        # Timer work goes on at the target only: the leases run out there, the delayed jobs are promoted there,
        # the schedule fires there.
        def target_did_it():
            s = stats(dc, busy)
            sch = as_map(dc.execute_command("ONCE.SCHEDULES", busy)[0])
            return (s["expired_total"] >= 3 and int(sch["last_fire"]) > int(pause["schedule"]["next_fire"])
                    and all(f"d{i}" in load.acked for i in range(10)) and all(f"l{i}" in load.acked for i in range(3)))

        wait_until(target_did_it, 20, "lease expiry, promotion and schedule fires on the target")
        for i in range(3):
            j = as_map(dc.execute_command("ONCE.INSPECT", busy, f"l{i}"))
            assert j is None or int(j["attempts"]) >= 2, j  # acked after its second reservation
    finally:
        dc.execute_command("DEBUG", "SLOTMIGRATION", "PREVENT-FAILOVER", 0)
        if load.t0:
            load.drain(timeout=30)
        if raw:
            raw.close()
    try:
        assert rc.execute_command("ONCE.PUSH", idle, "wake", "ID", "wake") == "wake"
        follower.join(10)
        assert followed.get("reply") and followed["reply"][0][:2] == ["wake", "wake"], followed
        rc.execute_command("ONCE.UNSCHEDULE", busy, "tick")
        assert load.errors == [], load.errors[:10]
        lost = set(load.pushed) - set(load.acked)
        assert not lost, f"lost {len(lost)}: {sorted(lost)[:10]}"
        assert all(n == 1 for n in load.acked.values()), {k: n for k, n in load.acked.items() if n != 1}
        # Every tick fired once: pushed_total counts the setup, the producers' pushes and one push per tick id.
        ticks = {j for j in load.acked if j.startswith("tick@")} | {
            j for st in ("ready", "reserved", "delayed") for j in list_ids(dc, busy, st) if j.startswith("tick@")}
        final = stats(dc, busy)
        assert final["pushed_total"] == setup_pushes + len(load.pushed) + len(ticks), (final, len(load.pushed),
                                                                                       len(ticks))
        times = sorted(int(t.split("@")[1]) for t in ticks)
        assert all(b - a >= 300 for a, b in zip(times, times[1:])), times
        # The source never did anything more for the queue; its replica dropped it too; the target's replica
        # has the target's queue.
        src_info2 = once_info(sc)
        for f in ("pushed_total", "expired_total", "acked_total"):
            assert src_info2[f] == src_info1[f], (f, src_info1, src_info2)
        assert (src_info2["queues"], src_info2["timer_queues_waiting"]) == (0, 0), src_info2
        cl.wait_replicated(src)
        for r in cl.replicas_of(src):
            rinfo = once_info(cl.client(r))
            assert (rinfo["queues"], rinfo["timer_queues_waiting"]) == (0, 0), rinfo
            assert busy not in scan_queues(cl.client(r))
        assert as_map(dc.execute_command("ONCE.INSPECT", later, "h"))["state"] == "delayed"
        assert stats(dc, backlog)["ready"] == BACKLOG
        dc.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        try:
            cl.wait_replicated(dst)
            for r in cl.replicas_of(dst):
                assert digest_value(cl.client(r), busy) == digest_value(dc, busy)
                assert digest_value(cl.client(r), later) == digest_value(dc, later)
        finally:
            dc.execute_command("CLIENT", "UNPAUSE")
        moved = BACKLOG + 1 + sum(pause["stats"][k] for k in ("ready", "delayed", "reserved"))
        note(f"[valkey] CLUSTER MIGRATESLOTS under load: {len(load.pushed)} pushes + {len(ticks)} schedule ticks, "
             f"lost 0, none twice; {moved} jobs in 3 queues moved, the source paused for the hand-off "
             f"{t_paused * 1000:.0f} ms after MIGRATESLOTS; digests equal at the hand-off; "
             f"blocked reserve MOVED {t_moved * 1000:.0f} ms after the hand-off; source registry empty")
    finally:
        for q in (busy, idle, later, backlog):
            rc.delete(q)
        for c in (sc, dc, rc):
            c.close()


def test_migrateslots_cancelled_half_way_leaves_the_target_clean(cl, prefix):
    busy = f"{{{prefix}}}:busy"
    later = f"{{{prefix}}}:later"  # its only work is an hour away: nothing but the cancel clears its copy's entry
    slot = key_slot(busy)
    src = cl.owner(busy)
    dst = other_master(cl, src)
    sc, dc = cl.client(src), cl.client(dst)
    rc = cluster_client(cl, socket_timeout=30)
    load = Load(cl, [busy], block_queues=[busy], producers=2, blockers=2, pollers=0, rate=150, max_secs=90)
    try:
        assert rc.execute_command("ONCE.SCHEDULE", busy, "tick", "@every 200ms", "tick")
        for i in range(5):
            rc.execute_command("ONCE.PUSH", busy, f"delayed {i}", "ID", f"d{i}", "DELAY", 1500)
        rc.execute_command("ONCE.PUSH", later, "in an hour", "ID", "h", "DELAY", 3600000)
        dst_info0 = once_info(dc)
        load.start()
        wait_until(lambda: load.reserves_by_queue.get(busy, 0) >= 50, 20, "the busy queue being worked")

        # The source never pauses for the hand-off: the migration streams until it is cancelled.
        sc.execute_command("DEBUG", "SLOTMIGRATION", "PREVENT-PAUSE", 1)
        assert cl.migrate_slots(slot, src, dst) == "OK"
        wait_until(lambda: state_of(dc) == "waiting-for-paused", 10, "the target streaming the slot's writes")
        time.sleep(1.0)  # ticks, promotions and pushes stream over while the target holds its copy
        held = once_info(dc)
        assert held["queues"] == dst_info0["queues"] + 2, held
        assert held["timer_queues_waiting"] >= dst_info0["timer_queues_waiting"] + 1, held  # the later queue
        # Frozen source: the target's copy catches up with it exactly (a target timer that acted would diverge).
        sc.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        try:
            d_src = digest_value(sc, busy)
            wait_until(lambda: digest_value(dc, busy) == d_src, 5, "the target's copy equal to the source's")
        finally:
            sc.execute_command("CLIENT", "UNPAUSE")

        assert sc.execute_command("CLUSTER", "CANCELSLOTMIGRATIONS") == "OK"
        wait_until(lambda: state_of(sc) == "cancelled" and state_of(dc) == "failed", 10, "the migration cancelled")
        assert owns(cl, src, slot)
        wait_until(lambda: dc.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0, 10, "the target cleaned up")
        info = once_info(dc)
        assert (info["queues"], info["timer_queues_waiting"]) == (dst_info0["queues"],
                                                                  dst_info0["timer_queues_waiting"]), info
        # The source goes on: its schedule keeps firing.
        last = int(as_map(sc.execute_command("ONCE.SCHEDULES", busy)[0])["last_fire"])
        wait_until(lambda: int(as_map(sc.execute_command("ONCE.SCHEDULES", busy)[0])["last_fire"]) > last, 5,
                   "the schedule firing on the source")

        # Nothing is stuck: the same slot then moves for real.
        sc.execute_command("DEBUG", "SLOTMIGRATION", "PREVENT-PAUSE", 0)
        t0 = time.time()
        assert cl.migrate_slots(slot, src, dst) == "OK"
        wait_until(lambda: state_of(sc) == "success" and owns(cl, dst, slot), 20, "the second migration")
        took = time.time() - t0
        time.sleep(0.5)
    finally:
        sc.execute_command("DEBUG", "SLOTMIGRATION", "PREVENT-PAUSE", 0)
        if load.t0:
            load.drain(timeout=30)
    try:
        assert load.errors == [], load.errors[:10]
        lost = set(load.pushed) - set(load.acked)
        assert not lost, f"lost {len(lost)}: {sorted(lost)[:10]}"
        assert all(n == 1 for n in load.acked.values()), {k: n for k, n in load.acked.items() if n != 1}
        assert all(f"d{i}" in load.acked for i in range(5))
        info = once_info(sc)
        assert (info["queues"], info["timer_queues_waiting"]) == (0, 0), info
        assert as_map(rc.execute_command("ONCE.INSPECT", later, "h"))["state"] == "delayed"
        note(f"[valkey] MIGRATESLOTS cancelled half-way: target copy equal to the source's while streaming, then "
             f"dropped with its registry entries; {len(load.pushed)} pushes, lost 0; the next migration took "
             f"{took * 1000:.0f} ms")
    finally:
        rc.execute_command("ONCE.UNSCHEDULE", busy, "tick")
        rc.delete(busy, later)
        for c in (sc, dc, rc):
            c.close()
