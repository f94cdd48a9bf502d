"""Deployments for the chaos suite, each on loopback, each node a tests/harness.Server (own port, own dir).

- `MasterReplica(kind, fsync)`: a master and a replica, AOF on both (`appendfsync` everysec or always); the
  clients follow `topology.master`, which the faults move (promotion, FAILOVER).
- `SentinelGroup(kind, fsync)`: the same pair watched by three sentinels (`redis-sentinel`, or
  `valkey-server --sentinel` for Valkey) with a short `down-after-milliseconds`; the clients follow the
  Sentinel's master through redis-py's `Sentinel(...).master_for(...)`.

Every topology offers `factory()` (a client of the current master, for checker.Workload), `heal()` (every node
running, one master, the others its replicas, in sync), `compare(result)` (frozen with CLIENT PAUSE WRITE: every
replica's DEBUG DIGEST equals the master's; then each replica restarted from its own AOF alone, as a replica of
nobody, holds that same digest) and `close()` (kills every process it started, by PID, and removes the dirs).
"""
import os
import shutil
import signal
import sys
import tempfile
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))                       # tests/: harness.py
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness  # noqa: E402
from helpers import wait_until  # noqa: E402

CLIENT_OPTS = dict(socket_timeout=2.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0),
                   decode_responses=True)


def no_one_listens():
    """A loopback port nothing listens on: a node started as its replica loads its own files and stays a replica
    (its timer idle) without ever syncing."""
    return harness.free_port()


class Topology:
    name = "?"

    def __init__(self, kind, fsync="everysec", module_args=()):
        self.kind = kind
        self.fsync = fsync
        self.module_args = list(module_args)
        self.aof = ["--appendonly", "yes", "--appendfsync", fsync]
        self.nodes = []
        self.master = None

    # --- nodes ----------------------------------------------------------------------------------------------

    def _node(self, replica_of=None):
        extra = self.aof + (["--replicaof", "127.0.0.1", str(replica_of.port)] if replica_of else [])
        s = harness.Server(self.kind, module_args=self.module_args, extra=extra)
        self.nodes.append(s)
        return s

    def admin(self, node, timeout=3.0):
        return node.client(socket_timeout=timeout, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0),
                           decode_responses=True)

    def role(self, node):
        try:
            c = self.admin(node, 1.0)
            try:
                return c.info("replication").get("role")
            finally:
                c.close()
        except redis.RedisError:
            return None

    def restart_as_replica(self, node, master):
        """(Re)starts `node` from its own AOF as a replica of `master` (it never acts as a master meanwhile)."""
        if node.alive():
            node.stop()
        node.extra = self.aof + ["--replicaof", "127.0.0.1", str(master.port)]
        node.start()

    def restart_as_master(self, node):
        """SHUTDOWN of `node` (its AOF flushed), then a start from its own AOF alone, as a master."""
        if node.alive():
            node.stop()
        node.extra = list(self.aof)
        node.start()

    def wait_link(self, replica, timeout=20.0):
        """Until `replica`'s link to its master is up; on a timeout the error carries its replication fields and
        the last log lines of every node (a link that never comes up is otherwise silent)."""
        c = self.admin(replica)
        try:
            wait_until(lambda: c.info("replication").get("master_link_status") == "up", timeout=timeout,
                       interval=0.05, what=f"replica :{replica.port} link up")
        except AssertionError as e:
            try:
                rep = {k: v for k, v in c.info("replication").items() if "master" in k or k == "role"}
            except redis.RedisError as err:
                rep = {"error": str(err)}
            tails = "\n".join(f"--- :{n.port} {'alive' if n.alive() else 'exited'} ---\n{n.log_tail(15)}"
                              for n in self.nodes)
            raise AssertionError(f"{e}; replica says {rep}\n{tails}") from None
        finally:
            c.close()

    def replicas(self):
        return [n for n in self.nodes if n is not self.master]

    def factory(self):
        master = self.master
        return redis.Redis(host="127.0.0.1", port=master.port, **CLIENT_OPTS)

    # --- healing and comparing ------------------------------------------------------------------------------

    def heal(self, timeout=30.0):
        """Every node running; `master` a master, every other node its replica with the link up."""
        for n in self.nodes:
            if n.proc is not None and n.alive():
                try:
                    os.kill(n.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
        if not self.master.alive():
            raise RuntimeError("heal: the master is not running")
        for n in self.replicas():
            if not n.alive() or self.role(n) != "slave" or self._master_port_of(n) != self.master.port:
                self.restart_as_replica(n, self.master)
        for n in self.replicas():
            self.wait_link(n, timeout)

    def _master_port_of(self, node):
        c = self.admin(node)
        try:
            return int(c.info("replication").get("master_port", 0))
        finally:
            c.close()

    def _wait_offsets(self, m, reps, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            target = m.info("replication")["master_repl_offset"]
            offs = [r.info("replication").get("slave_repl_offset") for r in reps]
            if all(o == target for o in offs):
                return target
            if time.monotonic() > deadline:
                raise AssertionError(f"replicas not in sync: master {target}, replicas {offs}")
            time.sleep(0.05)

    def compare(self, result, aof_restart=True):
        """Adds to `result` whether every replica's memory and its own AOF rebuild the master's DEBUG DIGEST.
        The master is frozen with CLIENT PAUSE WRITE (timer included) while digests are taken."""
        m = self.admin(self.master, 10.0)
        reps = [self.admin(n, 10.0) for n in self.replicas()]
        try:
            m.execute_command("CLIENT", "PAUSE", 20000, "WRITE")
            try:
                self._wait_offsets(m, reps)
                want = m.execute_command("DEBUG", "DIGEST")
                got = [r.execute_command("DEBUG", "DIGEST") for r in reps]
                result.extra["replica_digest"] = "equal" if all(g == want for g in got) else "DIFFERS"
                if any(g != want for g in got):
                    result.failures.append(f"replica DEBUG DIGEST {got} != master {want}")
                if aof_restart:
                    same = True
                    for node in self.replicas():
                        node.stop()                          # SHUTDOWN: its AOF is flushed
                        node.extra = self.aof + ["--replicaof", "127.0.0.1", str(no_one_listens())]
                        node.start()
                        c = self.admin(node, 10.0)
                        try:
                            d = c.execute_command("DEBUG", "DIGEST")
                        finally:
                            c.close()
                        if d != want:
                            same = False
                            result.failures.append(f"replica :{node.port} restarted from its own AOF: digest {d} "
                                                   f"!= master {want}")
                    result.extra["replica_aof_digest"] = "equal" if same else "DIFFERS"
            finally:
                m.execute_command("CLIENT", "UNPAUSE")
        finally:
            m.close()
            for r in reps:
                r.close()

    def close(self):
        for n in self.nodes:
            try:
                if n.proc is not None and n.alive():
                    os.kill(n.proc.pid, signal.SIGCONT)
            except OSError:
                pass
            n.close()


class MasterReplica(Topology):
    """A master and one replica, AOF on both."""

    def __init__(self, kind, fsync="everysec", module_args=()):
        super().__init__(kind, fsync, module_args)
        self.name = f"master+replica/{kind}/aof-{fsync}"
        try:
            self.master = self._node()
            replica = self._node(replica_of=self.master)
            self.wait_link(replica)
        except BaseException:
            self.close()
            raise

    def promote(self, node):
        """REPLICAOF NO ONE on `node`; the clients follow it from now on."""
        c = self.admin(node)
        try:
            c.execute_command("REPLICAOF", "NO", "ONE")
            wait_until(lambda: c.info("replication")["role"] == "master", timeout=5, what="promotion")
        finally:
            c.close()
        self.master = node


def _pairs(reply):
    """A flat [field, value, ...] reply (or a dict) as a dict of str."""
    if isinstance(reply, dict):
        return {str(k): v for k, v in reply.items()}
    return {reply[i]: reply[i + 1] for i in range(0, len(reply), 2)}


class SentinelNode(harness.Server):
    """One sentinel (not loading the module) watching `master_name` at `master_port`."""

    def __init__(self, kind, master_port, master_name="once", quorum=2, down_after_ms=1000,
                 failover_timeout_ms=4000):
        d = tempfile.mkdtemp(prefix=f"once-sentinel-{kind}-")
        port = harness.free_port()
        self.conf = os.path.join(d, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write(f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {d}\nlogfile {os.path.join(d, 'server.log')}\n"
                    f"sentinel monitor {master_name} 127.0.0.1 {master_port} {quorum}\n"
                    f"sentinel down-after-milliseconds {master_name} {down_after_ms}\n"
                    f"sentinel failover-timeout {master_name} {failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {master_name} 1\n")
        super().__init__(kind, dir=d, port=port, load_module=False)

    def argv(self):
        if self.kind == "redis":
            binary = shutil.which("redis-sentinel") or self.binary
            return [binary, self.conf]
        return [self.binary, self.conf, "--sentinel"]

    def stop(self, kill=False):
        super().stop(kill=True)


class SentinelGroup(Topology):
    """A master and one replica, AOF on both, with three sentinels driving automatic failover."""

    MASTER = "once"

    def __init__(self, kind, fsync="everysec", module_args=(), down_after_ms=1000, failover_timeout_ms=4000):
        super().__init__(kind, fsync, module_args)
        self.name = f"sentinel/{kind}/aof-{fsync}"
        self.sentinels = []
        try:
            self.master = self._node()
            replica = self._node(replica_of=self.master)
            self.wait_link(replica)
            for _ in range(3):
                self.sentinels.append(SentinelNode(kind, self.master.port, self.MASTER, 2, down_after_ms,
                                                   failover_timeout_ms))
            self._wait_sentinels_ready()
        except BaseException:
            self.close()
            raise

    def sentinel(self):
        return Sentinel([("127.0.0.1", s.port) for s in self.sentinels if s.alive()], socket_timeout=1.0,
                        socket_connect_timeout=1.0)

    def factory(self):
        return self.sentinel().master_for(self.MASTER, **CLIENT_OPTS)

    def _ask(self, s, *args):
        c = s.client(socket_timeout=1.0, decode_responses=True)
        try:
            return c.execute_command(*args)
        finally:
            c.close()

    def _wait_sentinels_ready(self, timeout=20.0):
        def ready():
            for s in self.sentinels:
                reps = self._ask(s, "SENTINEL", "REPLICAS", self.MASTER)
                peers = self._ask(s, "SENTINEL", "SENTINELS", self.MASTER)
                if len(reps) < 1 or len(peers) < 2:
                    return False
            return True
        wait_until(ready, timeout=timeout, interval=0.1, what="sentinels to see the replica and each other")

    def sentinel_master_port(self):
        for s in self.sentinels:
            try:
                addr = self._ask(s, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER)
                if addr:
                    return int(addr[1])
            except redis.RedisError:
                continue
        return None

    def wait_failover(self, old, timeout=30.0):
        """Waits until the sentinels name another node as master and that node says it is one."""
        def moved():
            port = self.sentinel_master_port()
            if port is None or port == old.port:
                return None
            node = next((n for n in self.nodes if n.port == port), None)
            return node if node is not None and self.role(node) == "master" else None
        self.master = wait_until(moved, timeout=timeout, interval=0.1, what="sentinel failover")
        return self.master

    def settle(self, timeout=30.0, stable=2.0):
        """Waits until every sentinel names the same master, with no failover under way (flags exactly
        "master"), that node says it is a master, and all this holds for `stable` seconds; `master` follows it."""
        def agreed():
            ports = set()
            for sn in self.sentinels:
                if not sn.alive():
                    continue
                try:
                    info = _pairs(self._ask(sn, "SENTINEL", "MASTER", self.MASTER))
                except redis.RedisError:
                    return None
                if info.get("flags") != "master":
                    return None
                ports.add(int(info["port"]))
            if len(ports) != 1:
                return None
            node = next((n for n in self.nodes if n.port in ports), None)
            return node if node is not None and self.role(node) == "master" else None
        deadline = time.monotonic() + timeout
        since, node = None, None
        while True:
            now_node = agreed()
            if now_node is None or now_node is not node:
                since, node = time.monotonic(), now_node
            elif time.monotonic() - since >= stable:
                self.master = node
                return node
            if time.monotonic() > deadline:
                raise AssertionError("the sentinels did not settle on one master")
            time.sleep(0.1)

    def heal(self, timeout=30.0):
        for n in self.nodes:
            if n.alive():
                try:
                    os.kill(n.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
        self.settle(timeout)
        super().heal(timeout)

    def compare(self, result, aof_restart=True):
        # the sentinels would re-point a replica restarted on its own: their part is over
        for s in self.sentinels:
            s.stop()
        super().compare(result, aof_restart)

    def close(self):
        for s in self.sentinels:
            s.close()
        super().close()
