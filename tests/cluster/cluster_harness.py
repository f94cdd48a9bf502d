"""A Redis Cluster (or Valkey cluster) of real servers with the Once module, on loopback, for the cluster tests
and bench/cluster_bench.py.

`Cluster(kind)` starts 3 masters + 3 replicas (tests/harness.py's Server with cluster options), joins them with
`redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes` (redis-cli 7.0 builds a Valkey 9.1 cluster
too) and waits until every node says cluster_state:ok, knows every node, agrees on the slot map and every replica's
link is up. `close()` kills every process by its PID and removes the directories.

Ports are picked in 12000-22000, so that the cluster bus (port + 10000) stays at or below 32000: under the 55535
limit and under the kernel's ephemeral range (client ports never collide with a node or its bus).
"""
import os
import random
import socket
import subprocess
import time

import redis

import harness

REDIS_CLI = "/usr/bin/redis-cli" if os.path.exists("/usr/bin/redis-cli") else "redis-cli"
PORT_LO, PORT_HI = 12000, 22000
BUS_OFFSET = 10000


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_port(taken=()):
    """A port whose bus port (port + 10000) is free as well; both at most 55535 - 10000 and 55535."""
    for _ in range(500):
        p = random.randint(PORT_LO, PORT_HI)
        if p in taken or p + BUS_OFFSET in taken:
            continue
        if _bindable(p) and _bindable(p + BUS_OFFSET):
            assert p + BUS_OFFSET <= 55535
            return p
    raise RuntimeError("no free port pair for a cluster node")


# --- hash slots (CRC16/XMODEM of the key or its {hash tag}, mod 16384), as the cluster computes them ----------

def _crc16_table():
    t = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        t.append(c & 0xFFFF)
    return t


_CRC = _crc16_table()


def key_slot(key):
    k = key.encode() if isinstance(key, str) else bytes(key)
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    crc = 0
    for b in k:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC[((crc >> 8) ^ b) & 0xFF]
    return crc & 0x3FFF


def keys_over_slots(prefix, n, ranges):
    """n queue names `prefix:<i>`, spread evenly over the given slot ranges [(lo, hi), ...] (each range gets n / len
    of them, by trying names in order)."""
    per = [n // len(ranges) + (1 if i < n % len(ranges) else 0) for i in range(len(ranges))]
    out, i = [], 0
    while any(per) and i < 100000:
        name = f"{prefix}:{i}"
        s = key_slot(name)
        for j, (lo, hi) in enumerate(ranges):
            if per[j] and lo <= s <= hi:
                out.append(name)
                per[j] -= 1
                break
        i += 1
    return out


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (redis.RedisError, OSError) as e:
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last})" if last else ""))


class Cluster:
    """3 masters + 3 replicas (by default) of one kind ('redis' or 'valkey'), each with the module and AOF on."""

    def __init__(self, kind="redis", masters=3, replicas=1, module_args=(), extra=(), node_timeout=2000,
                 aof=True, load_module=True):
        self.kind = kind
        self.nodes = []
        self.node_timeout = node_timeout
        self.want = masters * (1 + replicas)
        self.masters_n = masters
        cfg = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
               "--cluster-node-timeout", str(node_timeout), "--appendonly", "yes" if aof else "no",
               # A replica may always take over from a failed master, however long its link has been down.
               "--cluster-replica-validity-factor", "0"] + [str(a) for a in extra]
        try:
            taken = set()
            for _ in range(self.want):
                for attempt in range(5):
                    p = pick_port(taken)
                    try:
                        s = harness.Server(kind, port=p, module_args=module_args, extra=cfg, load_module=load_module)
                        break
                    except RuntimeError:
                        if attempt == 4:
                            raise
                taken.update((p, p + BUS_OFFSET))
                self.nodes.append(s)
            addrs = [f"127.0.0.1:{s.port}" for s in self.nodes]
            p = subprocess.run([REDIS_CLI, "--cluster", "create", *addrs, "--cluster-replicas", str(replicas),
                                "--cluster-yes"], capture_output=True, text=True, timeout=120)
            if p.returncode != 0 or "[OK] All 16384 slots covered" not in p.stdout:
                raise RuntimeError(f"redis-cli --cluster create failed ({p.returncode}): "
                                   f"{(p.stdout + p.stderr)[-2000:]}")
            self.wait_healthy(timeout=60)
        except BaseException:
            self.close()
            raise

    # --- lookups ----------------------------------------------------------------------------------------------

    def client(self, node, **kw):
        kw.setdefault("decode_responses", True)
        kw.setdefault("protocol", 2)
        return node.client(**kw)

    def alive_nodes(self):
        return [n for n in self.nodes if n.alive()]

    def node_id(self, node):
        c = self.client(node)
        try:
            return c.execute_command("CLUSTER", "MYID")
        finally:
            c.close()

    def by_id(self, node_id):
        for n in self.alive_nodes():
            if self.node_id(n) == node_id:
                return n
        return None

    def by_port(self, port):
        return next(n for n in self.nodes if n.port == int(port))

    def role(self, node):
        c = self.client(node)
        try:
            return c.info("replication")["role"]
        finally:
            c.close()

    def masters(self):
        return [n for n in self.alive_nodes() if self.role(n) == "master"]

    def replicas(self):
        return [n for n in self.alive_nodes() if self.role(n) == "slave"]

    def replicas_of(self, master):
        mid = self.node_id(master)
        out = []
        for n in self.alive_nodes():
            c = self.client(n)
            try:
                for line in c.execute_command("CLUSTER", "NODES").splitlines():
                    f = line.split()
                    if "myself" in f[2] and "slave" in f[2] and f[3] == mid:
                        out.append(n)
            finally:
                c.close()
        return out

    def slot_map(self, node=None):
        """{slot range (lo, hi): master port} as `node` (default: the first live master) sees it."""
        node = node or self.masters()[0]
        c = self.client(node)
        try:
            return {(int(r[0]), int(r[1])): int(r[2][1]) for r in c.execute_command("CLUSTER", "SLOTS")}
        finally:
            c.close()

    def slot_owner(self, slot, node=None):
        for (lo, hi), port in self.slot_map(node).items():
            if lo <= slot <= hi:
                return self.by_port(port)
        return None

    def owner(self, key):
        return self.slot_owner(key_slot(key))

    def master_ranges(self):
        """[(lo, hi), ...] one slot range per master: its largest (after a reshard a master may own several)."""
        best = {}
        for (lo, hi), port in self.slot_map().items():
            if port not in best or hi - lo > best[port][1] - best[port][0]:
                best[port] = (lo, hi)
        return sorted(best.values())

    # --- health -----------------------------------------------------------------------------------------------

    def _node_problem(self, n, expect_nodes):
        """Why node `n` is not yet healthy, or None."""
        c = self.client(n)
        try:
            info = c.execute_command("CLUSTER", "INFO")
            fields = dict(l.split(":", 1) for l in info.splitlines() if ":" in l)
            if fields.get("cluster_state") != "ok" or int(fields.get("cluster_slots_assigned", 0)) != 16384:
                return f"cluster_state {fields.get('cluster_state')}, {fields.get('cluster_slots_assigned')} slots"
            if int(fields.get("cluster_known_nodes", 0)) != expect_nodes:
                return f"knows {fields.get('cluster_known_nodes')} nodes"
            nodes = c.execute_command("CLUSTER", "NODES").splitlines()
            bad = [l for l in nodes if any(f in l.split()[2] for f in ("fail", "handshake", "noaddr"))]
            if bad:
                return f"flags a node: {bad[0]}"
            rep = c.info("replication")
            if rep["role"] == "slave" and rep.get("master_link_status") != "up":
                return f"replica link {rep.get('master_link_status')}"
            if rep["role"] == "slave" and rep.get("master_sync_in_progress", 0):
                return "replica sync in progress"
            return None
        finally:
            c.close()

    def topology(self, node):
        """{node id: (role, master id or '-')} as `node` sees the cluster (CLUSTER NODES)."""
        c = self.client(node)
        try:
            out = {}
            for line in c.execute_command("CLUSTER", "NODES").splitlines():
                f = line.split()
                out[f[0]] = ("master" if "master" in f[2] else "slave", f[3])
            return out
        finally:
            c.close()

    def wait_healthy(self, timeout=60):
        """Every live node: cluster_state ok, all slots assigned, every node known and none failing, replicas
        linked; and every node reports the same slot map. On a timeout the error says which check still failed
        and carries each node's log tail."""
        expect = len(self.nodes)
        why = ["not checked yet"]

        def problem():
            live = self.alive_nodes()
            for n in live:
                p = self._node_problem(n, expect)
                if p:
                    return f":{n.port} {p}"
            maps = [self.slot_map(n) for n in live]
            if not all(m == maps[0] for m in maps):
                return "slot maps differ"
            # Every node sees every node in the same role, replicas of the same master (a manual failover needs
            # the master to know its replica: gossip may still be on the way after a join or a restart).
            views = [self.topology(n) for n in live]
            if not all(v == views[0] for v in views):
                return "nodes see different roles"
            if len(self.masters()) != self.masters_n:
                return f"{len(self.masters())} masters"
            return None

        def ok():
            why[0] = problem() or ""
            return not why[0]

        try:
            wait_until(ok, timeout, f"{self.kind} cluster healthy")
        except TimeoutError as e:
            raise TimeoutError(f"{e}; still: {why[0]}\n{self.log_tails()}") from None

    def wait_replicated(self, master, timeout=20):
        """Until every replica of `master` has processed its whole replication stream."""
        reps = self.replicas_of(master)

        def ok():
            mc = self.client(master)
            try:
                off = int(mc.info("replication")["master_repl_offset"])
            finally:
                mc.close()
            for r in reps:
                rc = self.client(r)
                try:
                    i = rc.info("replication")
                    if i.get("master_link_status") != "up" or int(i.get("slave_repl_offset", -1)) != off:
                        return False
                finally:
                    rc.close()
            return True

        wait_until(ok, timeout, "replicas caught up")

    # --- resharding -------------------------------------------------------------------------------------------

    def migrate_slot(self, slot, src, dst, on_migrating=None, before_node=None, batch=100, timeout_ms=5000):
        """Moves `slot` from master `src` to master `dst`: SETSLOT IMPORTING on dst, MIGRATING on src, MIGRATE the
        keys in batches, then SETSLOT NODE on dst, src and every other master. `on_migrating()` runs once the slot
        is MIGRATING (before any key moves); `before_node()` once the keys have moved (before SETSLOT NODE)."""
        sid, did = self.node_id(src), self.node_id(dst)
        sc, dc = self.client(src), self.client(dst)
        try:
            dc.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", sid)
            sc.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", did)
            if on_migrating:
                on_migrating()
            moved = 0
            for _ in range(100000):
                keys = sc.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
                if not keys:
                    break
                sc.execute_command("MIGRATE", "127.0.0.1", dst.port, "", 0, timeout_ms, "KEYS", *keys)
                moved += len(keys)
            if before_node:
                before_node()
            self.set_slot_node(slot, dst, did)
            return moved
        finally:
            sc.close()
            dc.close()

    def migrate_slots(self, slot, src, dst):
        """Valkey 9's atomic slot migration of `slot` from master `src` to master `dst` (CLUSTER MIGRATESLOTS on
        src: it replies at once, the move goes on in the background)."""
        c = self.client(src)
        try:
            return c.execute_command("CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", slot, slot, "NODE", self.node_id(dst))
        finally:
            c.close()

    def set_slot_node(self, slot, dst, did=None):
        did = did or self.node_id(dst)
        order = [dst] + [m for m in self.masters() if m is not dst]
        for n in order:
            c = self.client(n)
            try:
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", did)
            finally:
                c.close()

    def wait_slot_everywhere(self, slot, dst, timeout=20):
        """Until every live node maps `slot` to `dst`."""
        wait_until(lambda: all(self.slot_owner(slot, n) is dst for n in self.alive_nodes()), timeout,
                   f"slot {slot} owned by :{dst.port} on every node")

    # --- failover ---------------------------------------------------------------------------------------------

    def failover(self, replica, timeout=30):
        """CLUSTER FAILOVER on `replica` (a coordinated, lossless switch); waits until it is master and healthy."""
        c = self.client(replica)
        try:
            c.execute_command("CLUSTER", "FAILOVER")
        finally:
            c.close()
        try:
            wait_until(lambda: self.role(replica) == "master", timeout, f":{replica.port} promoted")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.log_tails()}") from None
        self.wait_healthy(timeout)

    def kill_master(self, master, timeout=40, restart=True):
        """kill -9 of `master`; waits until the cluster promoted its replica and is ok again; then (restart=True)
        starts the killed node again from its own AOF and nodes.conf, so it rejoins as a replica."""
        reps = self.replicas_of(master)
        master.stop(kill=True)
        others = self.alive_nodes()

        def promoted():
            if not any(self.role(r) == "master" for r in reps):
                return False
            for n in others:
                c = self.client(n)
                try:
                    if "cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
                        return False
                finally:
                    c.close()
            return True

        wait_until(promoted, timeout, f"a replica of :{master.port} promoted after kill -9")
        if restart:
            master.start()
            self.wait_healthy(timeout)

    # --- teardown ---------------------------------------------------------------------------------------------

    def close(self):
        for n in self.nodes:
            try:
                n.close()  # SIGKILL by PID, then removes its directory
            except Exception:  # noqa: BLE001 - kill the others whatever happens
                pass

    def log_tails(self, n=20):
        """Each node's last `n` log lines, after any line of its log that tells of a crash or a failed load."""
        out = []
        for s in self.nodes:
            alarms = [l for l in s.log_tail(100000).splitlines(keepends=True)
                      if any(w in l for w in ("crashed", "panicked", "ASSERTION", "Guru", "Failed trying to load",
                                              "Bad file format", "Error loading", "Killed by signal"))][:20]
            state = "alive" if s.alive() else f"exited ({s.proc.returncode if s.proc else '-'})"
            more = "...\n" if alarms else ""
            out.append(f"--- :{s.port} {state} ---\n{''.join(alarms)}{more}{s.log_tail(n)}")
        return "\n".join(out)
