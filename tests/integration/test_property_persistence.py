"""Property test (issue 10): random command sequences over every ONCE.* command and option, with values at and
just beyond each range's edges, then every way a state is saved, loaded and replicated must give it back.

Each run starts a master (AOF off, or on: parametrized), a replica with AOF on and a scratch server for RESTORE.
A batch is COMMANDS random commands (property_model.Generator: every client command and option, the internal
ONCE._* commands a client may also send, some in db 1, some inside MULTI/EXEC) sent to the master while its timer
promotes, expires leases and fires schedules; a command README says must fail has to reply an error, no error
reply may quote a long input back, and no command may crash the server. The module configs change too (CONFIG
SET once.*, on the master only). After each batch the master is frozen with `CLIENT PAUSE <ms> WRITE` (its timer
included, see shared/redis-module-notes.md) and the digest D0 of the frozen state must come back from:

- the replica, once its offset equals the master's;
- DUMP of every queue, RESTOREd on the scratch server (a fresh key name, a fresh server): DEBUG DIGEST-VALUE equal;
- DEBUG RELOAD of the master and of the replica;
- the replica restarted from its own AOF, and (every other batch) after BGREWRITEAOF, with and without the RDB
  preamble, then re-attached;
- the master after SAVE + restart, and after BGREWRITEAOF (or its AOF as it is) + restart.

Restarted servers come up as replicas of a port nobody listens on, so their timers stay still until compared;
then the master takes over again with REPLICAOF NO ONE, RESTOREs a copy of each queue under a new name, and the
replica must follow it to an equal DEBUG DIGEST.

Failures are collected (a run goes on past a failed comparison; a queue that cannot be RESTOREd is reported, then
deleted so the rest can still be checked) and reported together with the seed. A server that dies or does not
come back ends the run. Reproduce with ONCE_PROP_SEED=<seed>; ONCE_PROP_BATCHES and ONCE_PROP_COMMANDS change
the size. Every command and reply is written to commands.log in the test's tmp_path.
"""
import collections
import os
import random
import re
import time

import pytest
import redis

import harness
from durability_helpers import (attach_replica, digest, digest_value, first_difference, module_trouble, module_values,
                                snapshot, wait_in_sync, wait_rewrite_done)
from helpers import RawClient
from property_model import CUSTOM_IDS, DBS, KEYS, OTHER_TYPE_KEY, Generator

SEED = int(os.environ.get("ONCE_PROP_SEED") or random.SystemRandom().randrange(1 << 32))
BATCHES = int(os.environ.get("ONCE_PROP_BATCHES", "4"))
COMMANDS = int(os.environ.get("ONCE_PROP_COMMANDS", "150"))
RUN_SECONDS = 40          # no batch starts after this many seconds of a run
PAUSE_MS = 60_000         # CLIENT PAUSE while comparing; lifted explicitly
PACE_S = 0.003           # at most this long between two commands (1.5 ms on average)
MAX_ERROR_REPLY = 400     # "error replies quote at most a short prefix of client input" (design.md, Contract v2)
INTERNAL_MAX_ERROR_BYTES = 1 << 20
MAX_ERROR_BYTES = 4096    # once.max-error-bytes by default: ERROR text beyond it is kept cut (README, ONCE.NACK)
QUEUE_TYPE = b"OnceQueue"


class Fatal(Exception):
    """A server died or did not come back: the run cannot go on."""


class Run:
    def __init__(self, kind, master_aof, make_server, logpath):
        self.kind = kind
        self.master_aof = master_aof
        self.seed = f"{SEED}:{kind}:{'aof' if master_aof else 'rdb'}"
        self.gen = Generator(self.seed)
        self.pace = random.Random(f"{self.seed}:pace")     # short gaps between commands, so the timer acts among them
        self.failures = []
        self.seen = set()
        self.errors = collections.Counter()
        self.history = collections.defaultdict(lambda: collections.deque(maxlen=6))     # key -> accepted commands
        self.notable = collections.defaultdict(lambda: collections.deque(maxlen=6))     # accepted SCHEDULE, ONCE._*
        self.commands = 0
        self.max_error_bytes = MAX_ERROR_BYTES     # the largest once.max-error-bytes the run has set
        self.batch = 0
        self.log = open(logpath, "w", encoding="utf-8", errors="replace")
        self.logpath = logpath
        self.dead = harness.free_port()     # replicas of this port wait for a master that never answers
        self.master_base = ["--appendonly", "yes" if master_aof else "no", "--aof-use-rdb-preamble", "no"]
        self.replica_base = ["--appendonly", "yes"]
        self.master = make_server(extra=self.master_base)
        self.replica = make_server(extra=self.replica_base)
        self.scratch = make_server()
        self.copies = {}                    # (db, key) -> (DUMP payload, DIGEST-VALUE) taken while frozen
        self.trouble_seen = {}
        attach_replica(self.replica, self.master)
        for db in DBS:
            self.client(self.master, db).set(OTHER_TYPE_KEY, "not a queue")

    # ---- bookkeeping --------------------------------------------------------------------------------------------

    def note(self, text):
        self.log.write(text + "\n")

    def fail(self, check, detail, dedupe=None):
        tag = (check, dedupe if dedupe is not None else detail)
        if tag in self.seen:
            return
        self.seen.add(tag)
        self.failures.append(f"[{self.kind}, master AOF {'on' if self.master_aof else 'off'}, batch {self.batch}] "
                             f"{check}: {detail}")
        self.note(f"FAILURE {check}: {detail}")

    def fatal(self, check, detail):
        self.fail(check, detail)
        raise Fatal(detail)

    def recent(self, key):
        """The latest accepted commands on `key`, and its latest accepted SCHEDULEs and internal commands (those
        set what no other command can); error replies change nothing."""
        key = key.removesuffix(":copy")
        lines = list(self.notable.get(key, [])) + [c for c in self.history.get(key, []) if c not in
                                                   self.notable.get(key, [])]
        return ("; accepted on it lately: " + " | ".join(lines)) if lines else ""

    def known_ids(self):
        ids = set(CUSTOM_IDS) | {i for _, i in self.gen.server_ids} | {i for _, i, _ in self.gen.reserved}
        ids = sorted(i if isinstance(i, bytes) else i.encode() for i in ids)
        return {k: ids for k in KEYS + [f"{k}:copy" for k in KEYS]}

    def client(self, srv, db=0):
        return srv.client(socket_timeout=30, db=db)

    # ---- the commands -----------------------------------------------------------------------------------------

    def run_commands(self):
        c = RawClient(self.master.port, timeout=10)
        self.db = None
        try:
            done = 0
            while done < COMMANDS:
                in_multi = self.gen.group()
                cmds = [self.gen.next() for _ in range(max(in_multi, 1))]
                for cmd, reply in zip(cmds, self.send(c, cmds, in_multi > 0)):
                    self.check_reply(cmd, reply)
                done += len(cmds)
                time.sleep(self.pace.random() * PACE_S)
        finally:
            c.close()

    def send(self, c, cmds, in_multi):
        """Sends `cmds` (inside one MULTI/EXEC if asked), with SELECT where the db changes; returns their replies."""
        calls = []
        for cmd in cmds:
            if cmd.db != self.db:
                calls.append((["SELECT", cmd.db], None))
                self.db = cmd.db
            calls.append((cmd.argv, cmd))
        self.note(f"b{self.batch} " + ("MULTI: " if in_multi else "")
                  + " ; ".join(("SELECT %d" % argv[1]) if cmd is None else repr(cmd) for argv, cmd in calls))
        try:
            if not in_multi:
                replies = [c.call(*argv) for argv, _ in calls]
            else:
                queued = [c.call("MULTI")] + [c.call(*argv) for argv, _ in calls]
                replies = c.call("EXEC")
                if not isinstance(replies, list):        # EXECABORT: nothing ran, not even the SELECTs
                    self.db = None
                    replies = [q if isinstance(q, tuple) and q[0] == "error" else replies for q in queued[1:]]
        except (OSError, ConnectionError) as e:     # a timeout too: no command here takes 10 s
            self.note(repr(e))
            time.sleep(0.2)
            self.fatal("crash", f"`{' ; '.join(map(repr, cmds))}` -> {e!r}; master alive: {self.master.alive()}; "
                                f"log: {self.master.log_tail(8)}")
        return [reply for (_, cmd), reply in zip(calls, replies) if cmd is not None]

    def check_reply(self, cmd, reply):
        self.commands += 1
        self.gen.observe(cmd, reply)
        shown = cut(repr(reply), 120)
        self.note(f"   {cut(repr(cmd), 60)} -> {shown}")
        failed = isinstance(reply, tuple) and reply[0] == "error"
        if not failed:
            if cmd.argv[:3] == ["CONFIG", "SET", "once.max-error-bytes"]:
                self.max_error_bytes = max(self.max_error_bytes, cmd.argv[3])
            if cmd.name in ("ONCE._FAIL", "ONCE._JOB"):
                # README: an internal command carries the master's decision as it is, up to 1 MiB of ERROR text
                # (the master cut a client's NACK text to its own once.max-error-bytes).
                self.max_error_bytes = max(self.max_error_bytes, INTERNAL_MAX_ERROR_BYTES)
            self.history[cmd.where].append(f"{cmd!r} -> {shown}")
            if cmd.name == "ONCE.SCHEDULE" or cmd.name.startswith("ONCE._"):
                self.notable[cmd.where].append(f"{cmd!r} -> {shown}")
        if failed:
            self.errors[f"{cmd.name}: {re.sub(r'[0-9]+', 'N', reply[1])[:90]}"] += 1
            if len(reply[1]) > MAX_ERROR_REPLY:
                self.fail("long error reply", f"`{cmd!r}` replied an error of {len(reply[1])} bytes: "
                                              f"{reply[1][:100]!r}...", dedupe=cmd.name)
        elif cmd.must_fail:
            self.fail("accepted what README refuses", f"`{cmd!r}` ({cmd.must_fail}) replied {shown}",
                      dedupe=(cmd.name, cmd.must_fail))

    # ---- comparing ---------------------------------------------------------------------------------------------

    def pause(self):
        self.client(self.master).execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")

    def unpause(self):
        self.client(self.master).execute_command("CLIENT", "UNPAUSE")

    def freeze(self):
        """Pauses the master, waits for the replica, and takes the digest and snapshot every check compares to."""
        self.pause()
        m = self.client(self.master)
        wait_in_sync(m, self.client(self.replica), timeout=30)
        self.d0 = digest(m)
        self.snap0 = self.state(self.master)
        for queue, seen in self.snap0["queues"].items():
            for job_id, job in seen["jobs"].items():
                if job and len(job.get(b"last_error") or b"") > self.max_error_bytes:
                    self.fail("last_error over once.max-error-bytes", f"{queue} {job_id!r}: last_error of "
                              f"{len(job[b'last_error'])} bytes{self.recent(queue)}", dedupe="")

    def state(self, srv):
        """DEBUG DIGEST-VALUE of every key of every db, and what a client sees of the queues of db 0."""
        keys = {}
        for db in DBS:
            r = self.client(srv, db)
            for k in sorted(r.keys("*")):
                keys[where(db, k)] = digest_value(r, k)
        return {"keys": keys,
                "queues": snapshot(self.client(srv), self.known_ids(), with_server_digest=False, with_order=False)}

    def same(self, check, srv, name):
        """`srv` (alive) must hold the frozen state: DEBUG DIGEST equal to D0, else the first differences."""
        self.note(f"-- b{self.batch} {check} at {time.monotonic() - self.start:.2f} s")
        r = self.client(srv)
        try:
            got = digest(r)
        except redis.ConnectionError as e:
            self.fatal(check, last(f"the {name} does not answer ({e}): {srv.log_tail(6)}"))
        if got == self.d0:
            return
        diffs = differences(self.snap0, self.state(srv))
        where = "; ".join(f"{p}: master {cut(repr(a), 150)} vs {cut(repr(b), 150)}" for p, a, b in diffs[:3])
        first_key = diffs[0][0].split("/")[2] if diffs else ""
        where += self.rdb_difference(srv, first_key)
        self.fail(check, f"DEBUG DIGEST of the {name} {got.decode()} != the frozen master's {self.d0.decode()}; "
                         f"{where or 'every STATS/INSPECT/SCHEDULES/DIGEST-VALUE read alike'}"
                         f"{self.recent(first_key)}", dedupe=(name, first_key))

    def rdb_difference(self, srv, key):
        """The first value where the two nodes' RDB encodings of `key` part (what a digest hides)."""
        key = re.sub(r"\[\d+\]$", "", key)
        db = 1 if key.startswith("db1:") else 0
        name = key[4:] if db else key
        try:
            dumps = []
            for node in (self.master, srv):
                c = self.client(node, db)
                c.config_set("rdbcompression", "no")
                dumps.append(module_values(c.dump(name)))
            return f"; RDB {first_difference(*dumps)}"
        except (redis.RedisError, ValueError, IndexError, TypeError) as e:
            return f"; (no RDB comparison: {e})"

    def restart(self, srv, name, *extra):
        """Stops `srv` and starts it again (same dir and port) as a replica of the dead port."""
        srv.stop()
        srv.extra = list(extra) + ["--replicaof", "127.0.0.1", str(self.dead)]
        try:
            srv.start()
        except RuntimeError as e:
            self.fatal(f"{name} does not come back", last(f"{e}"))

    def reload(self, srv, name):
        try:
            reply = self.client(srv).execute_command("DEBUG", "RELOAD")
        except redis.RedisError as e:
            time.sleep(0.2)
            if not srv.alive():
                self.fatal(f"DEBUG RELOAD of the {name}", last(f"the server died: {srv.log_tail(6)}"))
            self.fail(f"DEBUG RELOAD of the {name}", last(f"{e}; log: {srv.log_tail(4)}"))
            return
        assert reply in (True, b"OK"), reply
        self.same(f"DEBUG RELOAD of the {name}", srv, name)

    def dump_restore(self):
        """DUMP of every queue on the frozen master, RESTOREd under a new name on the scratch server (one MULTI with
        DEBUG DIGEST-VALUE, so its timer cannot act in between). Returns the keys that did not RESTORE."""
        s = self.client(self.scratch)
        bad = []
        self.copies = {}
        for db, key in self.queues():
            m = self.client(self.master, db)
            payload, want = m.dump(key), digest_value(m, key)
            p = s.pipeline(transaction=True)
            p.execute_command("RESTORE", b"restored:" + key, 0, payload, "REPLACE")
            p.execute_command("DEBUG", "DIGEST-VALUE", b"restored:" + key)
            p.delete(b"restored:" + key)
            got = p.execute(raise_on_error=False)
            if isinstance(got[0], Exception):
                bad.append((db, key))
                why = (module_trouble(self.scratch) or ["(nothing in the scratch server's log)"])[-1]
                self.fail("DUMP/RESTORE", f"RESTORE of {key!r} ({len(payload)} bytes) refused: {got[0]}; "
                                          f"scratch log: {why}{self.recent(where(db, key))}",
                          dedupe=re.sub(r"[0-9-]+", "N", why.split("#")[-1]))
            elif list(got[1]) != want:
                self.fail("DUMP/RESTORE", f"{key!r} RESTOREd has DIGEST-VALUE {got[1]} != {want}"
                                          f"{self.recent(where(db, key))}",
                          dedupe=key)
            elif key.decode() in KEYS:
                self.copies[(db, key)] = (payload, want)
        if not self.scratch.alive():
            self.fatal("DUMP/RESTORE", f"the scratch server died: {self.scratch.log_tail(6)}")
        return bad

    def queues(self):
        """(db, key) of every queue on the master."""
        return [(db, k) for db in DBS for k in sorted(self.client(self.master, db).keys("*"))
                if self.client(self.master, db).type(k) == QUEUE_TYPE]

    def restore_copies(self):
        """On the live master, a copy of each queue under a new name (replicated, served by the timer from now on)."""
        for (db, key), (payload, want) in self.copies.items():
            p = self.client(self.master, db).pipeline(transaction=True)
            p.execute_command("RESTORE", key + b":copy", 0, payload, "REPLACE")
            p.execute_command("DEBUG", "DIGEST-VALUE", key + b":copy")
            got = p.execute(raise_on_error=False)
            if isinstance(got[0], Exception) or list(got[1]) != want:
                self.fail("RESTORE on the master", f"{key!r}:copy -> {got}{self.recent(where(db, key))}", dedupe=key)

    # ---- one batch -----------------------------------------------------------------------------------------------

    def check_batch(self):
        self.freeze()
        self.same("replica", self.replica, "replica")
        bad = self.dump_restore()
        if bad:
            # Report, then drop what cannot be restored so the reloads below can still check everything else.
            self.unpause()
            for db, key in bad:
                self.client(self.master, db).delete(key)
            self.note(f"deleted {bad} (could not be RESTOREd)")
            self.freeze()
        self.reload(self.master, "master")
        self.reload(self.replica, "replica")

        # The replica: from its own AOF as it is, then (every other batch) rewritten, then attached again.
        self.restart(self.replica, "replica (own AOF)", *self.replica_base)
        self.same("replica restarted from its own AOF", self.replica, "replica restarted from its own AOF")
        if self.batch % 2 == 1:
            rr = self.client(self.replica)
            preamble = "yes" if self.batch % 4 == 1 else "no"
            rr.config_set("aof-use-rdb-preamble", preamble)
            rr.bgrewriteaof()
            wait_rewrite_done(rr)
            name = f"replica after BGREWRITEAOF (RDB preamble {preamble})"
            self.restart(self.replica, name, *self.replica_base)
            self.same(name, self.replica, name)
        attach_replica(self.replica, self.master)
        wait_in_sync(self.client(self.master), self.client(self.replica), timeout=30)
        self.same("replica re-attached", self.replica, "replica re-attached")

        # The master: SAVE + restart, and its AOF (rewritten, or as it is) + restart; the base config comes last.
        m = self.client(self.master)
        rewrite = not self.master_aof or self.batch % 2 == 1
        if rewrite:
            m.bgrewriteaof()
            wait_rewrite_done(m)
        assert m.save()
        aof_name = "master from its AOF" + (" after BGREWRITEAOF" if rewrite else " (not rewritten)")
        steps = [("master after SAVE", "no"), (aof_name, "yes")]
        if not self.master_aof:
            steps.reverse()
        for name, aof in steps:
            self.restart(self.master, name, *self.master_base, "--appendonly", aof)
            self.same(name, self.master, name)
        self.master.extra = list(self.master_base)
        self.client(self.master).execute_command("REPLICAOF", "NO", "ONE")

        # Live again: copies of the queues, and the replica follows the restarted master.
        self.restore_copies()
        attach_replica(self.replica, self.master, timeout=30)
        self.freeze()
        self.same("replica of the restarted master", self.replica, "replica of the restarted master")
        self.unpause()
        for name, srv in (("master", self.master), ("replica", self.replica)):
            lines = module_trouble(srv)
            for line in lines[self.trouble_seen.get(name, 0):]:
                self.fail(f"{name} log", line[:300], dedupe=(name, re.sub(r"[0-9]+", "N", line[30:90])))
            self.trouble_seen[name] = len(lines)

    def run(self):
        self.start = start = time.monotonic()
        try:
            for self.batch in range(1, BATCHES + 1):
                if time.monotonic() - start > RUN_SECONDS:
                    self.note(f"stopped before batch {self.batch}: {RUN_SECONDS} s spent")
                    break
                self.run_commands()
                self.check_batch()
        except Fatal:
            pass
        except (AssertionError, redis.RedisError, RuntimeError) as e:
            # a wait that timed out, a server that stopped answering: reported with what was found before it
            self.fail("run stopped", last(f"{type(e).__name__}: {e}"))
        finally:
            self.log.close()
        return time.monotonic() - start

    def summary(self, secs):
        top = "\n".join(f"  {n:5d}  {e}" for e, n in self.errors.most_common(12))
        return (f"seed {self.seed} (ONCE_PROP_SEED={SEED}); {self.commands} commands in {self.batch} batch(es), "
                f"{secs:.1f} s; commands and replies: {self.logpath}\nerror replies by kind:\n{top}")


def where(db, key):
    """A key as the test names it (property_model.Cmd.where): `pq:0` in db 0, `db1:pq:0` in db 1."""
    key = key.decode(errors="replace") if isinstance(key, bytes) else key
    return key if db == 0 else f"db{db}:{key}"


def last(text, limit=1500):
    """The end of a long text (a log tail ends with what matters)."""
    return text if len(text) <= limit else f"...{text[-limit:]}"


def cut(text, limit):
    return text if len(text) <= limit else f"{text[:limit - 20]}...<{len(text)} chars>"


def differences(a, b, path=""):
    """[(path, a-value, b-value)] where two snapshots (nested dicts/lists) differ, outermost first."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            name = k.decode(errors="replace") if isinstance(k, bytes) else str(k)
            out += differences(a.get(k), b.get(k), f"{path}/{name}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [(path, a, b)]


@pytest.mark.parametrize("master_aof", [False, True], ids=["master-rdb", "master-aof"])
def test_random_commands_survive_every_reload_and_the_replica(kind, master_aof, make_server, tmp_path):
    run = Run(kind, master_aof, make_server, tmp_path / "commands.log")
    secs = run.run()
    text = run.summary(secs)
    print(text)
    assert run.commands > 0, text
    assert not run.failures, (f"{len(run.failures)} failure(s):\n" + "\n".join(run.failures)
                              + f"\n{text}\nreproduce: ONCE_PROP_SEED={SEED} ONCE_MODULE={harness.MODULE} python3 -m "
                              "pytest -q tests/integration/test_property_persistence.py")
