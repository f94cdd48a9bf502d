"""Resharding: a queue's slot moves to another master (SETSLOT IMPORTING/MIGRATING, MIGRATE ... KEYS, SETSLOT NODE)
while producers push and workers block on it. Blocked reserves are answered with MOVED and RedisCluster follows;
the queue goes on at its new node with every job, lease, attempt, schedule and total (digest equal), and its
timer work moves with it: the new node promotes, expires and fires; the old node does nothing for it. The new
owner's replica (and its own AOF) holds the same queue; the old owner's replica drops it. `redis-cli --cluster
reshard`, the tool a user would run, moves queues the same way."""
import os
import subprocess
import threading
import time

from cluster_harness import REDIS_CLI, key_slot, keys_over_slots, wait_until
from cluster_helpers import (Load, RawClient, as_map, cluster_client, encode_command, inspect, moved_target, note,
                             queues_on_every_master, scan_queues, stats)


MOVES = int(os.environ.get("ONCE_CLUSTER_MOVES", "1"))  # slot moves under load in the first test (make chaos: more)


def blocked_reserves(node, cluster):
    """Clients of `node` blocked in ONCE.RESERVE (CLIENT LIST flags b)."""
    c = cluster.client(node)
    try:
        return [cl for cl in c.client_list() if "b" in cl["flags"] and cl["cmd"].lower() == "once.reserve"]
    finally:
        c.close()


def other_master(cluster, node):
    """The master after `node` (by port), so repeated moves visit every master."""
    ms = sorted(cluster.masters(), key=lambda m: m.port)
    return ms[(ms.index(node) + 1) % len(ms)] if node in ms else ms[0]


def test_reshard_a_busy_queue_under_load_redirects_blocked_workers(healthy, prefix):
    cl = healthy
    tag = f"{{{prefix}}}"
    busy, idle = f"{tag}:busy", f"{tag}:idle"     # one slot: the idle queue keeps a BLOCK 0 reserve waiting
    queues = [busy] + queues_on_every_master(cl, prefix, 29)
    slot = key_slot(busy)
    src = cl.owner(busy)
    dst = other_master(cl, src)
    load = Load(cl, queues, block_queues=[busy], producers=2, blockers=3, pollers=1, rate=150, max_secs=60,
                hot=busy).start()
    raw = follower = None
    try:
        wait_until(lambda: load.reserves_by_queue.get(busy, 0) >= 100, 20, "the busy queue being worked")
        # A raw client and a RedisCluster client, each blocked forever on the idle queue (same slot, on src).
        raw = RawClient(src.port, timeout=15)
        raw.sock.sendall(encode_command(["ONCE.RESERVE", idle, "BLOCK", 0]))
        followed = {}

        def follow():
            rc = cluster_client(cl, socket_timeout=30)
            try:
                followed["reply"] = rc.execute_command("ONCE.RESERVE", idle, "BLOCK", 0)
            except Exception as e:  # noqa: BLE001
                followed["error"] = repr(e)
            finally:
                rc.close()

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        wait_until(lambda: len(blocked_reserves(src, cl)) >= 2, 10, "two reserves blocked on the source")
        before = stats(cl.client(src), busy)
        assert before["pushed_total"] > 0 and before["acked_total"] > 0

        moved = cl.migrate_slot(slot, src, dst)
        t_node = time.time()
        assert moved == 1  # the busy queue's key (the idle queue has no key)
        # The raw blocked reserve is answered with a redirect to the new owner.
        reply = raw._read()
        t_redirect = time.time() - t_node
        assert isinstance(reply, tuple) and reply[0] == "error" and reply[1].startswith("MOVED"), reply
        assert moved_target(reply[1]) == (slot, dst.port)
        assert t_redirect < 3.0, f"blocked reserve redirected {t_redirect:.2f}s after SETSLOT NODE"
        note(f"[{cl.kind}] blocked ONCE.RESERVE answered MOVED {t_redirect * 1000:.0f} ms after SETSLOT NODE")
        # RedisCluster followed: its reserve now waits on dst; a push wakes it there.
        wait_until(lambda: len(blocked_reserves(dst, cl)) >= 1 and not any(
            c["cmd"].lower() == "once.reserve" and "b" in c["flags"] for c in blocked_reserves(src, cl)),
            5, "the blocked RedisCluster reserve moved to the new owner")
        time.sleep(1.0)  # load goes on against the new owner
        # The long profile (make chaos) moves the slot on, master to master, under the same load.
        here = dst
        for _ in range(MOVES - 1):
            nxt = other_master(cl, here)
            assert cl.migrate_slot(slot, here, nxt) == 1
            here = nxt
            time.sleep(1.0)
        dst = here
    finally:
        load.drain(timeout=30)
        if raw:
            raw.close()
    rc = cluster_client(cl)
    try:
        assert rc.execute_command("ONCE.PUSH", idle, "wake", "ID", "wake") == "wake"
        follower.join(10)
        assert followed.get("reply") and followed["reply"][0][:2] == ["wake", "wake"], followed
        assert load.errors == [], load.errors[:10]
        assert set(load.pushed) == set(load.acked), (len(load.pushed), len(load.acked))
        assert all(n == 1 for n in load.acked.values())
        busy_pushed = sum(1 for q in load.pushed.values() if q == busy)
        dc = cl.client(dst)
        after = stats(dc, busy)  # every total came along and went on
        assert after["pushed_total"] == busy_pushed > before["pushed_total"], (after, before, busy_pushed)
        assert after["acked_total"] == busy_pushed == after["reserved_total"]
        assert (after["ready"], after["reserved"], after["delayed"]) == (0, 0, 0)
        assert busy in scan_queues(dc)
        for m in cl.masters():
            if m is not dst:
                assert busy not in scan_queues(cl.client(m)), m.port
        note(f"[{cl.kind}] reshard under load ({MOVES} move(s)): {len(load.pushed)} jobs over {len(queues)} queues, "
              f"busy queue "
              f"{before['pushed_total']} pushed before the move, {busy_pushed} in all, every one acked once")
        for q in set(queues) | {idle}:
            rc.delete(q)
    finally:
        rc.close()


def test_reshard_carries_every_job_lease_schedule_and_total_and_the_timer_moves(healthy, prefix):
    cl = healthy
    q = queues_on_every_master(cl, prefix, 1)[0]
    slot = key_slot(q)
    src = cl.owner(q)
    dst = other_master(cl, src)
    sc, dc = cl.client(src), cl.client(dst)
    rc = cluster_client(cl, socket_timeout=30)
    try:
        # Every state: delayed (due in ~3 s), reserved with a lease of ~3 s, dead, retrying with a long backoff,
        # a schedule firing every 2 s; nothing ready, so reserves block.
        for j in ("d1", "d2"):
            rc.execute_command("ONCE.PUSH", q, f"payload {j}", "ID", j, "DELAY", 3000, "PRIORITY", 3)
        for j in ("r1", "r2"):
            rc.execute_command("ONCE.PUSH", q, f"payload {j}", "ID", j, "RETRIES", 5, "BACKOFF", 60000)
        rc.execute_command("ONCE.PUSH", q, "payload x", "ID", "x", "RETRIES", 0)
        rc.execute_command("ONCE.PUSH", q, "payload n", "ID", "n", "RETRIES", 3, "BACKOFF", 600000)
        got = rc.execute_command("ONCE.RESERVE", q, "COUNT", 4, "LEASE", 3000)
        assert sorted(j[0] for j in got) == ["n", "r1", "r2", "x"]
        assert rc.execute_command("ONCE.NACK", q, "x", "ERROR", "no retries") == 1
        assert rc.execute_command("ONCE.NACK", q, "n", "ATTEMPT", 1, "ERROR", "later") == 1
        rc.execute_command("ONCE.SCHEDULE", q, "tick", "@every 2s", "tick payload")
        s0 = stats(rc, q)
        assert (s0["ready"], s0["delayed"], s0["reserved"], s0["dead"], s0["schedules"]) == (0, 3, 2, 1, 1), s0

        # Two reserves blocked on the queue at src: one RedisCluster (follows), one raw BLOCK 0 (sees the MOVED).
        woke = {}

        def wait_job():
            c = cluster_client(cl, socket_timeout=30)
            try:
                woke["reply"] = c.execute_command("ONCE.RESERVE", q, "BLOCK", 20000, "LEASE", 60000)
                woke["at"] = time.time()
            except Exception as e:  # noqa: BLE001
                woke["error"] = repr(e)
            finally:
                c.close()

        t = threading.Thread(target=wait_job, daemon=True)
        t.start()
        raw = RawClient(src.port, timeout=15)
        raw.sock.sendall(encode_command(["ONCE.RESERVE", q, "BLOCK", 0]))
        wait_until(lambda: len(blocked_reserves(src, cl)) == 2, 10, "two reserves blocked on the source")
        # Not too near a schedule tick or a deadline: the move must happen in a quiet moment of the queue.
        nxt = int(as_map(rc.execute_command("ONCE.SCHEDULES", q)[0])["next_fire"])
        now_ms = int(sc.time()[0]) * 1000 + int(sc.time()[1]) // 1000
        if nxt - now_ms < 700:
            time.sleep((nxt - now_ms + 200) / 1000)
        src_info0 = sc.info("once")

        # The move. On src, digest + every reply + MIGRATE in one transaction (nothing runs in between).
        dc.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", cl.node_id(src))
        sc.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", cl.node_id(dst))
        p = sc.pipeline(transaction=True)
        p.execute_command("DEBUG", "DIGEST-VALUE", q)
        p.execute_command("ONCE.STATS", q)
        p.execute_command("ONCE.SCHEDULES", q)
        for j in ("d1", "d2", "r1", "r2", "x", "n"):
            p.execute_command("ONCE.INSPECT", q, j)
        p.execute_command("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", q)
        out = p.execute()
        assert out[-1] == "OK"
        t_moved = time.time()
        cl.set_slot_node(slot, dst)
        # On dst, frozen (CLIENT PAUSE WRITE also stops the module's timer): the same digest and replies.
        dc.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        try:
            p = dc.pipeline(transaction=False)
            p.execute_command("DEBUG", "DIGEST-VALUE", q)
            p.execute_command("ONCE.STATS", q)
            p.execute_command("ONCE.SCHEDULES", q)
            for j in ("d1", "d2", "r1", "r2", "x", "n"):
                p.execute_command("ONCE.INSPECT", q, j)
            there = p.execute()
            quiet = time.time() - t_moved
            # The new owner's replica got the same queue, and so does its own AOF; the old owner's replica
            # dropped it.
            cl.wait_replicated(dst)
            rep = cl.client(cl.replicas_of(dst)[0])
            try:
                assert rep.execute_command("DEBUG", "DIGEST-VALUE", q) == there[0]
                assert rep.execute_command("DEBUG", "LOADAOF") == "OK"  # not inside MULTI (crashes 7.0)
                assert rep.execute_command("DEBUG", "DIGEST-VALUE", q) == there[0]
            finally:
                rep.close()
            cl.wait_replicated(src)
            for r in cl.replicas_of(src):
                assert q not in scan_queues(cl.client(r))
        finally:
            dc.execute_command("CLIENT", "UNPAUSE")
        assert quiet < 0.7, "the move took too long to be compared in a quiet moment"
        d_src = out[0][0] if isinstance(out[0], list) else out[0]
        d_dst = there[0][0] if isinstance(there[0], list) else there[0]
        assert d_src == d_dst and d_src != "0" * 40, (d_src, d_dst)
        assert out[1:-1] == there[1:], (out[1:-1], there[1:])
        assert as_map(there[1]) == as_map(out[1])
        r1 = as_map(there[5])
        assert (r1["state"], int(r1["attempts"])) == ("reserved", 1) and r1["lease_deadline"] is not None

        # The raw reserve blocked on src is redirected; the RedisCluster one follows and waits on dst.
        reply = raw._read()
        raw.close()
        assert isinstance(reply, tuple) and reply[1].startswith("MOVED"), reply
        assert moved_target(reply[1]) == (slot, dst.port)
        wait_until(lambda: len(blocked_reserves(dst, cl)) == 1 and not blocked_reserves(src, cl), 5,
                   "the RedisCluster reserve waiting on dst")

        # The timer moved: on dst the delayed jobs are promoted (waking the follower), leases run out, the
        # schedule fires.
        t.join(15)
        assert "reply" in woke, woke
        assert woke["reply"][0][0] in ("d1", "d2") or woke["reply"][0][0].startswith("tick@"), woke
        first = time.time()

        def moved_on():
            s = stats(dc, q)
            sch = as_map(dc.execute_command("ONCE.SCHEDULES", q)[0])
            return (s["expired_total"] == 2 and s["delayed"] >= 2 and sch["last_fire"] is not None
                    and int(sch["last_fire"]) > int(as_map(out[2][0])["next_fire"]) - 1
                    and inspect(dc, q, "d1")["state"] != "delayed" and inspect(dc, q, "d2")["state"] != "delayed")

        wait_until(moved_on, 10, "promotion, lease expiry and a schedule fire on the new owner")
        for j in ("r1", "r2"):
            i = inspect(dc, q, j)
            assert i["state"] == "delayed" and i["last_error"] == "lease expired" and int(i["attempts"]) == 1, i
        assert inspect(dc, q, "x")["state"] == "dead"
        assert int(stats(dc, q)["pushed_total"]) > s0["pushed_total"]  # schedule ticks on dst
        # The old node did nothing for it: no key came back, no push, no expiry, no promotion counted there.
        src_info1 = sc.info("once")
        assert q not in scan_queues(sc)
        for f in ("once_pushed_total", "once_expired_total", "once_dead_total"):
            assert src_info1[f] == src_info0[f], (f, src_info0, src_info1)
        note(f"[{cl.kind}] moved queue: digest {d_src[:12]}… equal on both nodes; follower woken on the new node "
              f"{woke['at'] - t_moved:.2f}s after the move; timer work done there within {time.time() - first:.1f}s")
    finally:
        rc.delete(q)
        for c in (sc, dc, rc):
            c.close()


def test_redis_cli_cluster_reshard_moves_queues_whole(healthy, prefix):
    cl = healthy
    src = cl.masters()[0]
    dst = other_master(cl, src)
    lo, hi = next(r for r in sorted(cl.slot_map()) if cl.slot_owner(r[0]) is src)
    n = min(40, hi - lo + 1)
    queues = keys_over_slots(prefix, 8, [(lo, lo + n - 1)])  # redis-cli moves the source's lowest slots first
    rc = cluster_client(cl)
    try:
        for i, q in enumerate(queues):
            rc.execute_command("ONCE.PUSH", q, "now", "ID", "now")
            rc.execute_command("ONCE.PUSH", q, "later", "ID", "later", "DELAY", 600000)
            rc.execute_command("ONCE.PUSH", q, "held", "ID", "held")
            assert rc.execute_command("ONCE.RESERVE", q, "COUNT", 1, "LEASE", 600000)[0][0] == "now"
        sc = cl.client(src)
        before = {q: (sc.execute_command("DEBUG", "DIGEST-VALUE", q)[0], stats(sc, q)) for q in queues}
        p = subprocess.run([REDIS_CLI, "--cluster", "reshard", f"127.0.0.1:{src.port}", "--cluster-from",
                            cl.node_id(src), "--cluster-to", cl.node_id(dst), "--cluster-slots", str(n),
                            "--cluster-yes"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (p.stdout + p.stderr)[-2000:]
        for q in queues:
            cl.wait_slot_everywhere(key_slot(q), dst)
        dc = cl.client(dst)
        for q in queues:
            assert (dc.execute_command("DEBUG", "DIGEST-VALUE", q)[0], stats(dc, q)) == before[q], q
            assert q not in scan_queues(sc)
            # and it goes on there, through RedisCluster
            assert rc.execute_command("ONCE.ACK", q, "now") == 1
            assert rc.execute_command("ONCE.RESERVE", q)[0][0] == "held"
        note(f"[{cl.kind}] redis-cli --cluster reshard moved {n} slots with {len(queues)} queues, digests equal")
    finally:
        for q in queues:
            rc.delete(q)
        rc.close()
