"""Faults for the chaos suite. Each takes (topology, workload, pause) and names what it did with
`workload.note_fault(...)`; `pause` (seconds) is how long the workload runs between two steps of a fault."""
import os
import signal
import time

from helpers import wait_until


def _run(pause):
    time.sleep(pause)


def kill_promote_restart_rejoin(topo, wl, pause, crash=False):
    """kill -9 of the master; REPLICAOF NO ONE on the replica (the clients follow it); a restart of the promoted
    replica from its own AOF (`crash`: after a kill -9 too, for `appendfsync always`, where a replica fsyncs
    before it acknowledges); the old master back from its own AOF as a replica of the new one."""
    old, new = topo.master, topo.replicas()[0]
    old.stop(kill=True)
    wl.note_fault("kill -9 master")
    _run(pause / 2)
    topo.promote(new)
    wl.note_fault("promote replica")
    _run(pause)
    if crash:
        new.stop(kill=True)
        wl.note_fault("kill -9 promoted")
    topo.restart_as_master(new)        # (SHUTDOWN), then a start from its own AOF alone
    wl.note_fault("restart promoted from its AOF")
    _run(pause)
    topo.restart_as_replica(old, new)
    topo.wait_link(old)
    wl.note_fault("old master rejoins as replica")
    _run(pause)


def kill_promote_crash_rejoin(topo, wl, pause):
    """As kill_promote_restart_rejoin, the promoted replica killed -9 before its restart (`appendfsync always`)."""
    kill_promote_restart_rejoin(topo, wl, pause, crash=True)


def power_loss(topo, wl, pause):
    """kill -9 of every node at once, then each starts from its own AOF: the master as master, the others as its
    replicas. With `appendfsync always` a node fsyncs its AOF before it replies (or acknowledges to its master), so
    no acknowledged push may be lost."""
    for n in topo.nodes:
        n.stop(kill=True)
    wl.note_fault("kill -9 every node")
    _run(pause / 2)
    topo.restart_as_master(topo.master)
    for n in topo.replicas():
        topo.restart_as_replica(n, topo.master)
    for n in topo.replicas():
        topo.wait_link(n)
    wl.note_fault("all restarted from their AOFs")
    _run(pause)


def restart_master(topo, wl, pause):
    """SHUTDOWN of the master (its AOF flushed) and a start from its own AOF alone; under Sentinel, the group then
    settles on whichever node the sentinels name."""
    topo.restart_as_master(topo.master)
    wl.note_fault("restart master from its AOF")
    if hasattr(topo, "settle"):
        topo.settle()
    _run(pause)


def sigstop_master(topo, wl, pause, seconds=None):
    """SIGSTOP of the master for longer than the lease, then SIGCONT: its clients time out, and when it runs again
    every lease is past its deadline at once."""
    seconds = seconds if seconds is not None else max(2.0, 2.5 * wl.lease_ms / 1000.0)
    pid = topo.master.proc.pid
    os.kill(pid, signal.SIGSTOP)
    wl.note_fault(f"SIGSTOP master {seconds:.1f}s")
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
    _run(pause)


def client_pause_write(topo, wl, pause, ms=1000):
    """CLIENT PAUSE <ms> WRITE on the master while delayed jobs fall due and leases run out (the timer must hold
    until the pause ends, then catch up)."""
    c = topo.admin(topo.master)
    try:
        c.execute_command("CLIENT", "PAUSE", ms, "WRITE")
    finally:
        c.close()
    wl.note_fault(f"CLIENT PAUSE {ms} WRITE")
    time.sleep(ms / 1000.0)
    _run(pause)


def failover(topo, wl, pause):
    """FAILOVER on the master (it pauses writes, waits for the replica, hands over, becomes a replica)."""
    old, new = topo.master, topo.replicas()[0]
    c = topo.admin(old, 10.0)
    try:
        c.execute_command("FAILOVER", "TIMEOUT", 5000)
    finally:
        c.close()
    wait_until(lambda: topo.role(new) == "master" and topo.role(old) == "slave", timeout=15, interval=0.02,
               what="FAILOVER to hand over")
    topo.master = new
    wl.note_fault("FAILOVER")
    topo.wait_link(old)
    _run(pause)


def sentinel_kill_master(topo, wl, pause):
    """kill -9 of the master; the sentinels fail over; the old master comes back from its AOF as a replica."""
    old = topo.master
    old.stop(kill=True)
    wl.note_fault("kill -9 master")
    topo.wait_failover(old)
    wl.note_fault("sentinel failover")
    _run(pause)
    topo.restart_as_replica(old, topo.master)
    topo.wait_link(old)
    wl.note_fault("old master rejoins as replica")
    _run(pause)


def sentinel_sigstop_master(topo, wl, pause):
    """SIGSTOP of the master until the sentinels fail over, then SIGCONT: the old master wakes up still a master
    with stale leases (its clients may write to it) until the sentinels turn it into a replica."""
    old = topo.master
    pid = old.proc.pid
    os.kill(pid, signal.SIGSTOP)
    wl.note_fault("SIGSTOP master")
    try:
        topo.wait_failover(old)
        wl.note_fault("sentinel failover")
    finally:
        os.kill(pid, signal.SIGCONT)
    wl.note_fault("SIGCONT old master")
    wait_until(lambda: topo.role(old) == "slave", timeout=20, interval=0.1, what="sentinels to demote the old master")
    topo.wait_link(old)
    wl.note_fault("old master demoted by sentinels")
    _run(pause)
