"""The fuzzer: RESTOREs mutated dumps of real queues and sends malformed internal records to a real server, and
checks after each input that the server lives, that a refused input changed nothing, and that an accepted one
DUMPs and RESTOREs under another name to an equal DEBUG DIGEST-VALUE. Every so often the accepted queues go
through DEBUG RELOAD and BGREWRITEAOF + restart (the AOF holds the module's rewrite, no RDB preamble, so its
records replay) to equal digests, then the server acts as a master for a while (its timer and a round of client
commands on every queue), and the log must show no panic.

The server runs as a writable replica of a port that never answers, so its timer stays still while values are
compared (it acts only on a master). A failure names the seed and the input in hex, keeps the input under
tests/fuzz/corpus/ and stops the run (`Failure`). The same seed makes the same mutations again; the corpus file
replays the exact input (`replay`).
"""
import hashlib
import json
import os
import random
import re
import shutil
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
for path in (os.path.join(TESTS, "integration"), TESTS):
    if path not in sys.path:
        sys.path.insert(0, path)

import harness  # noqa: E402
from durability_helpers import make_dump, split_dump  # noqa: E402
from fuzz_mutate import Mutator, parse  # noqa: E402
from fuzz_records import Context, Records  # noqa: E402
from fuzz_seeds import build  # noqa: E402
from helpers import RawClient  # noqa: E402

CORPUS = os.path.join(HERE, "corpus")
SERVER_ARGS = ["--appendonly", "yes", "--aof-use-rdb-preamble", "no", "--rdbcompression", "no",
               "--appendfsync", "no"]
# A log line that shows the module (or the server) in trouble. A refused RESTORE logs "cannot load a queue: <why>",
# which is expected, except "internal error": a panic caught in the loader.
# "== CRITICAL ==": Redis replying an error to its AOF-loading client (a record the module rewrote but refuses).
TROUBLE = ("panic", "internal error", "crashed", "guru meditation", "assert", "timer tick failed", "== critical ==")
# A refused record at a missing key leaves an empty queue there (README: each internal record "applies whole or
# not at all"). Reported to the module's owner; counted, not fatal, until it is fixed.
EMPTY_LEFT = "a refused record left an empty queue at a missing key"
# Where a record names its queue (its key, the key of the command inside ONCE._AT), its input has this; each run
# puts a key of its own there.
KEY = b"{key}"
DEEP_EVERY_KEPT = 60        # accepted queues between two DEBUG RELOAD / rewrite / restart rounds
DEEP_EVERY_INPUTS = 400
USE_COMMANDS = [
    ["ONCE.STATS"], ["ONCE.SCHEDULES"], ["ONCE.GROUPS"], ["ONCE.EVENTS", "COUNT", 5], ["ONCE.HISTOGRAM", "run"],
    ["ONCE.LIST", "ready", "COUNT", 5, "WITHPAYLOADS"], ["ONCE.LIST", "delayed", "COUNT", 5],
    ["ONCE.LIST", "reserved", "COUNT", 5], ["ONCE.LIST", "dead", "COUNT", 5, "MATCH", "*"],
    ["ONCE.PUSH", "after", "GROUP", "t0"], ["ONCE.BULK", "PAYLOADS", "b1", "b2"],
    ["ONCE.CONFIGURE", "EVENTS-MAX", 3], ["ONCE.GROUP", "t0", "CONCURRENCY", 1], ["ONCE.RETRY", "ALL"],
    ["ONCE.PURGE", "dead"], ["ONCE.RESUME"], ["ONCE.UNSCHEDULE", "s0"],
]


class Failure(Exception):
    """What broke, on which input; `path` is the corpus file that keeps the input."""

    def __init__(self, what, detail, inp, seed, kind, path=None):
        self.what, self.detail, self.input, self.seed, self.kind, self.path = what, detail, inp, seed, kind, path
        super().__init__(self.report())

    def report(self):
        lines = [f"FUZZ FAILURE on {self.kind}: {self.what}", f"  seed: {self.seed}", f"  detail: {self.detail}",
                 f"  input: {describe(self.input)}"]
        if self.path:
            rel = os.path.relpath(self.path, os.path.dirname(TESTS))
            lines.append(f"  kept as {rel}; replay: python3 tests/fuzz/fuzz_run.py --server {self.kind} --replay {rel}")
        return "\n".join(lines)


def describe(inp):
    if inp is None:
        return "not yet pinned on one"
    if inp["kind"] == "round":
        return f"{len(inp['inputs'])} inputs together: " + " | ".join(describe(i) for i in inp["inputs"])
    if inp["kind"] == "restore":
        return f"RESTORE of module body {inp['body']}"
    seed = f"queue from seed dump {inp['seed_body']}" if inp.get("seed_body") else "a missing key"
    recs = "; ".join(" ".join(bytes.fromhex(a)[:80].hex() for a in r) for r in inp["records"])
    return f"records (argv in hex) on {seed}: {recs}"


def _argv_hex(argv):
    return [(a if isinstance(a, bytes) else str(a).encode()).hex() for a in argv]


class Fuzzer:
    def __init__(self, kind, seed, log=print, keep_inputs=True):
        self.kind, self.seed, self.log, self.keep_inputs = kind, seed, log, keep_inputs
        self.rng = random.Random(f"{seed}:{kind}")
        self.records = Records(self.rng)
        self.hold = socket.socket()              # a bound port nobody listens on: the master that never answers
        self.hold.bind(("127.0.0.1", 0))
        self.server = harness.Server(kind, extra=SERVER_ARGS)
        self.c = None
        self.log_at = 0
        # records_accepted: inputs that left a queue to check; records_applied/_refused: the records one by one
        self.counts = {"inputs": 0, "restore": 0, "restore_accepted": 0, "records": 0, "records_accepted": 0,
                       "records_applied": 0, "records_refused": 0, "deep": 0}
        self.kept = {}                            # key -> (input, digest) of accepted queues since the last round
        self.findings = {}                        # what -> its first input
        self.n = 0
        dumps = build(self.server)
        self.ver = split_dump(next(iter(dumps.values())))[1]
        self.seeds = {name: split_dump(d)[0] for name, d in dumps.items()}
        self.parsed = [parse(b) for b in self.seeds.values()]
        self.mutator = Mutator(self.rng, self.parsed)
        self._freeze(flush=True)
        self.contexts = [Context(tokens, self.facts(body)) for body, (_, tokens) in zip(self.seeds.values(),
                                                                                        self.parsed)]

    # ---- the server ------------------------------------------------------------------------------------------

    def _connect(self):
        if self.c:
            self.c.close()
        self.c = RawClient(self.server.port, timeout=30)

    def _freeze(self, flush=False):
        """Makes the server a writable replica of the held port: its timer stops acting."""
        self._connect()
        if flush:
            self.call("FLUSHALL")
        self.call("CONFIG", "SET", "replica-read-only", "no")
        self.call("REPLICAOF", "127.0.0.1", self.hold.getsockname()[1])
        replica = ["--replicaof", "127.0.0.1", str(self.hold.getsockname()[1]), "--replica-read-only", "no"]
        self.server.extra = SERVER_ARGS + replica

    def call(self, *args):
        return self.c.call(*args)

    def facts(self, body):
        """What the server says of a seed queue: its jobs' seqs by state (those with server ids), its schedules'
        and groups' names (for Context)."""
        key = b"facts"
        self.call("RESTORE", key, 0, make_dump(body, self.ver), "REPLACE")
        out = {}
        for state in ("ready", "delayed", "reserved", "dead"):
            _, jobs = self.call("ONCE.LIST", key, state, "COUNT", 1000)
            ids = [as_dict(j)[b"id"] for j in jobs]
            out[state] = [int(i.split(b"-")[1]) for i in ids if re.fullmatch(rb"[0-9]+-[0-9]+", i)]
        out["schedules"] = [as_dict(s)[b"name"] for s in self.call("ONCE.SCHEDULES", key) or []]
        out["groups"] = [as_dict(g)[b"name"] for g in self.call("ONCE.GROUPS", key, "COUNT", 1000)[1]]
        self.call("DEL", key)
        return out

    def close(self):
        if self.c:
            self.c.close()
        self.server.close()
        self.hold.close()

    def new_log(self):
        """Lines the server logged since the last look that show trouble."""
        try:
            with open(self.server.logfile, "rb") as f:
                f.seek(self.log_at)
                data = f.read()
        except OSError:
            return []
        self.log_at += len(data)
        lines = data.decode(errors="replace").splitlines()
        return [ln for ln in lines if any(t in ln.lower() for t in TROUBLE)]

    # ---- failures -----------------------------------------------------------------------------------------------

    def note(self, what, detail, inp):
        """A known kind of finding that does not stop the run (reported to the module's owner, its reduced input in
        the corpus): the first of each kind told, every one counted."""
        if what not in self.findings:
            self.findings[what] = inp
            self.log(f"{self.kind}: finding: {what} ({detail}); input: {describe(inp)}")
        self.counts[what] = self.counts.get(what, 0) + 1

    def fail(self, what, detail, inp):
        path = keep(inp, what, self.seed, self.kind) if self.keep_inputs else None
        raise Failure(what, detail, inp, self.seed, self.kind, path)

    def _guard(self, inp, step):
        """Runs `step`; a dropped connection or a dead server is a crash of this input."""
        try:
            return step()
        except (ConnectionError, OSError) as e:
            time.sleep(0.2)      # the log's last lines are written as the process dies
            tail = self.server.log_tail(25)
            alive = "alive" if self.server.alive() else f"exited with {self.server.proc.poll()}"
            self.fail("crash", f"{e!r}; server {alive}; log tail:\n{tail}", inp)

    def _check_log(self, inp):
        trouble = self.new_log()
        if trouble:
            self.fail("trouble in the server log", "\n".join(trouble[:10]), inp)

    # ---- inputs -------------------------------------------------------------------------------------------------

    def key(self):
        self.n += 1
        return f"x:{self.n}".encode()

    def one(self):
        """One random input, checked."""
        if self.rng.random() < 0.5:
            inp = {"kind": "restore", "body": self.mutator.mutate().hex()}
        else:
            seeded = self.rng.random() < 0.85
            seed_i = self.rng.randrange(len(self.parsed))
            ctx = self.contexts[seed_i] if seeded else Context()
            recs = [self.records.record(KEY, ctx) for _ in range(self.rng.choice([1, 1, 2, 3, 4]))]
            inp = {"kind": "records", "seed_body": list(self.seeds.values())[seed_i].hex() if seeded else None,
                   "records": [_argv_hex(r) for r in recs]}
        self.run_input(inp)

    def run_input(self, inp):
        self.counts["inputs"] += 1
        self.counts[inp["kind"]] += 1
        key = self.key()
        accepted = self._guard(inp, lambda: self.apply(inp, key))
        if accepted:
            self.counts[inp["kind"] + "_accepted"] += 1
            self._guard(inp, lambda: self.check_accepted(key, inp))
        self._guard(inp, lambda: self.call("PING"))
        self._check_log(inp)

    def apply(self, inp, key):
        """Applies the input at `key`; whether a queue stands there for the checks."""
        if inp["kind"] == "restore":
            reply = self.call("RESTORE", key, 0, make_dump(bytes.fromhex(inp["body"]), self.ver))
            if reply == ("status", "OK"):
                return True
            self._refused(reply, inp)
            if self.call("EXISTS", key) != 0:
                self.fail("a refused RESTORE left a key", repr(reply), inp)
            return False
        if inp.get("seed_body"):
            reply = self.call("RESTORE", key, 0, make_dump(bytes.fromhex(inp["seed_body"]), self.ver))
            if reply != ("status", "OK"):
                self.fail("a seed dump did not RESTORE", repr(reply), inp)
        for rec in inp["records"]:
            argv = [bytes.fromhex(a).replace(KEY, key) for a in rec]
            argv[1] = key
            before = (self.call("EXISTS", key), self.call("DEBUG", "DIGEST-VALUE", key))
            reply = self.call(*argv)
            refused = isinstance(reply, tuple) and reply[0] == "error"
            self.counts["records_refused" if refused else "records_applied"] += 1
            if refused:
                self._refused(reply, inp)
                after = (self.call("EXISTS", key), self.call("DEBUG", "DIGEST-VALUE", key))
                if after != before and before[0] == 0:
                    self.note(EMPTY_LEFT, reply[1], inp)
                elif after != before:
                    self.fail("a refused record changed the queue", f"{reply[1]!r}: {before} -> {after}", inp)
        return self.call("EXISTS", key) == 1

    def _refused(self, reply, inp):
        if not (isinstance(reply, tuple) and reply[0] == "error"):
            self.fail("a reply that is neither OK nor an error", repr(reply)[:300], inp)
        if "internal error" in reply[1]:
            self.fail("internal error (a caught panic)", reply[1], inp)

    def check_accepted(self, key, inp):
        digest = self.call("DEBUG", "DIGEST-VALUE", key)
        payload = self.call("DUMP", key)
        if not isinstance(payload, bytes):
            self.fail("an accepted queue does not DUMP", repr(payload), inp)
        copy = key + b":copy"
        reply = self.call("RESTORE", copy, 0, payload)
        if reply != ("status", "OK"):
            self.fail("saves but cannot load: the DUMP of an accepted queue is refused by RESTORE",
                      f"{reply!r}; dump {payload.hex()}", inp)
        again = self.call("DEBUG", "DIGEST-VALUE", copy)
        if again != digest:
            self.fail("the RESTOREd DUMP differs (DEBUG DIGEST-VALUE)", f"{digest} vs {again}", inp)
        self.call("DEL", copy)
        self.kept[key] = (inp, digest)
        if len(self.kept) >= DEEP_EVERY_KEPT:
            self.deep()

    # ---- the rounds over every accepted queue --------------------------------------------------------------

    def _digests_equal(self, when, kept=None):
        kept = self.kept if kept is None else kept
        for key, (inp, digest) in kept.items():
            now = self._guard(inp, lambda k=key: self.call("DEBUG", "DIGEST-VALUE", k))
            if now != digest:
                self.fail(f"DEBUG DIGEST-VALUE differs after {when}", f"{digest} vs {now}", inp)

    def deep(self):
        """DEBUG RELOAD, BGREWRITEAOF + restart, then the master round, over the queues kept since the last one;
        a failure of the round as a whole is pinned on one input (`isolate`)."""
        self.counts["deep"] += 1
        kept, self.kept = self.kept, {}
        try:
            self._reload_and_restart(kept)
            self._master_round(kept)
        except Failure as f:
            if f.input is not None:
                raise
            self.isolate(kept, f)
        self._freeze(flush=True)

    def _whole(self, what, detail):
        """A failure of a round, not yet pinned on an input."""
        return Failure(what, detail, None, self.seed, self.kind)

    def _round_step(self, step, what):
        try:
            return step()
        except (ConnectionError, OSError, RuntimeError) as e:
            time.sleep(0.2)
            raise self._whole(what, f"{e!r}; log tail:\n{self.server.log_tail(25)}") from None

    def _reload_and_restart(self, kept):
        reply = self._round_step(lambda: self.call("DEBUG", "RELOAD"), "saves but cannot load: DEBUG RELOAD")
        if reply != ("status", "OK"):
            raise self._whole("saves but cannot load: DEBUG RELOAD", repr(reply))
        self._digests_equal("DEBUG RELOAD", kept)
        self._round_step(self._rewrite, "BGREWRITEAOF")
        self._round_step(self._restart, "saves but cannot load: restart from the rewritten AOF")
        self._digests_equal("BGREWRITEAOF and restart", kept)
        trouble = self.new_log()
        if trouble:
            raise self._whole("trouble in the server log", "\n".join(trouble[:10]))

    def _rewrite(self):
        reply = self.call("BGREWRITEAOF")
        if isinstance(reply, tuple) and reply[0] == "error":
            raise self._whole("BGREWRITEAOF refused", reply[1])
        deadline = time.monotonic() + 30
        while True:
            p = info(self.call("INFO", "persistence"))
            if p.get("aof_rewrite_in_progress") == "0" and p.get("aof_rewrite_scheduled") == "0":
                break
            if time.monotonic() > deadline:
                raise self._whole("BGREWRITEAOF did not finish", repr(p))
            time.sleep(0.01)
        if p.get("aof_last_bgrewrite_status") != "ok":
            raise self._whole("a queue cannot be rewritten: BGREWRITEAOF failed", self.server.log_tail(10))

    def _restart(self):
        self.c.close()
        self.c = None
        self.server.restart()
        self._connect()

    def _master_round(self, kept):
        """The server as a master for a few timer ticks and a round of client commands on every queue; then still
        again, and each queue must reload to what it was."""
        def ticks():
            return int(info(self.call("INFO", "once")).get("once_timer_ticks", 0))

        def run():
            start = ticks()
            self.call("REPLICAOF", "NO", "ONE")
            # A job due at once makes the timer fire even when no kept queue has anything due.
            self.call("ONCE.PUSH", "tick", "t", "DELAY", 1)
            deadline = time.monotonic() + 5
            while ticks() < start + 1:
                if time.monotonic() > deadline:
                    raise self._whole("the timer did not tick on the master", repr(info(self.call("INFO", "once"))))
                time.sleep(0.005)
            for key in kept:
                self.use(key)
            self._freeze()
            return {key: self.call("DEBUG", "DIGEST-VALUE", key) for key in kept}

        digests = self._round_step(run, "crash while the queues were used")
        reply = self._round_step(lambda: self.call("DEBUG", "RELOAD"), "saves but cannot load: DEBUG RELOAD")
        if reply != ("status", "OK"):
            raise self._whole("saves but cannot load: DEBUG RELOAD after use", repr(reply))
        for key, digest in digests.items():
            now = self.call("DEBUG", "DIGEST-VALUE", key)
            if now != digest:
                raise self._whole("DEBUG DIGEST-VALUE differs after use and DEBUG RELOAD", f"{key!r}")
        trouble = self.new_log()
        if trouble:
            raise self._whole("trouble in the server log while the queues were used", "\n".join(trouble[:10]))

    def use(self, key):
        """A round of client commands; an error reply is fine, an internal error is not."""
        replies = [self.call(cmd[0], key, *cmd[1:]) for cmd in USE_COMMANDS]
        got = self.call("ONCE.RESERVE", key, "COUNT", 4, "LEASE", 60_000)
        for i, job in enumerate(got if isinstance(got, list) else []):
            job_id, attempt = job[0], job[2]
            replies.append(self.call(*[["ONCE.ACK", key, job_id, "ATTEMPT", attempt],
                                       ["ONCE.NACK", key, job_id, "ERROR", "fuzz"],
                                       ["ONCE.NACK", key, job_id, "DEAD"],
                                       ["ONCE.EXTEND", key, job_id, 1000]][i % 4]))
            replies.append(self.call("ONCE.INSPECT", key, job_id))
        bad = [r for r in replies + [got] if isinstance(r, tuple) and "internal error" in r[1]]
        if bad:
            raise self._whole("internal error (a caught panic) from a client command", f"{key!r}: {bad[0]}")

    def isolate(self, kept, failure):
        """Replays each input of a failed round alone, each through the round, to find the one that fails it."""
        self.log(f"{self.kind}: a round failed ({failure.what}); replaying its {len(kept)} inputs one by one")
        for inp, _ in kept.values():
            self._reset()
            self.kept = {}
            key = self.key()
            if not self._guard(inp, lambda i=inp, k=key: self.apply(i, k)):
                continue
            self._guard(inp, lambda i=inp, k=key: self.check_accepted(k, i))
            try:
                self._reload_and_restart(self.kept)
                self._master_round(self.kept)
            except Failure as f:
                self.fail(f.what, f.detail, inp)
        self.fail(failure.what, failure.detail + "\n(no single input of the round fails it alone)",
                  {"kind": "round", "inputs": [inp for inp, _ in kept.values()]})

    def _reset(self):
        """A fresh server in the same place (its files gone), frozen."""
        if self.c:
            self.c.close()
            self.c = None
        self.server.stop(kill=True)
        for name in os.listdir(self.server.dir):
            path = os.path.join(self.server.dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif name != "server.log":
                os.remove(path)
        self.server.start()
        self._freeze(flush=True)
        self.new_log()

    # ---- runs ---------------------------------------------------------------------------------------------------

    def run(self, inputs=None, seconds=None):
        """Random inputs until `inputs` are done or `seconds` have passed, then a last round."""
        deadline = time.monotonic() + seconds if seconds else None
        done = 0
        while (inputs is None or done < inputs) and (deadline is None or time.monotonic() < deadline):
            self.one()
            done += 1
            if done % DEEP_EVERY_INPUTS == 0 and self.kept:
                self.deep()
        if self.kept:
            self.deep()
        return self.counts

    def replay(self, inp):
        """One kept input through every check, with a round of its own."""
        inputs = inp["inputs"] if inp["kind"] == "round" else [inp]
        for one in inputs:
            self.run_input(one)
        if self.kept:
            self.deep()


def as_dict(flat):
    return dict(zip(flat[0::2], flat[1::2]))


def info(reply):
    """INFO's bulk text as {field: value} (values as text)."""
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    return dict(ln.split(":", 1) for ln in text.splitlines() if ":" in ln and not ln.startswith("#"))


def keep(inp, what, seed, kind):
    """Writes the input under tests/fuzz/corpus/ (named by its hash, so a second find of it overwrites)."""
    os.makedirs(CORPUS, exist_ok=True)
    text = json.dumps(inp, sort_keys=True)
    name = f"{inp['kind']}-{hashlib.sha1(text.encode()).hexdigest()[:12]}.json"
    path = os.path.join(CORPUS, name)
    with open(path, "w") as f:
        json.dump({"what": what, "seed": str(seed), "server": kind, "input": inp}, f, indent=1, sort_keys=True)
        f.write("\n")
    return path


def corpus_files():
    if not os.path.isdir(CORPUS):
        return []
    return sorted(os.path.join(CORPUS, n) for n in os.listdir(CORPUS) if n.endswith(".json"))


def load(path):
    """The input a corpus file keeps; ValueError (one line) when the file is not one."""
    try:
        with open(path) as f:
            inp = json.load(f)["input"]
        for part in [inp.get("body")] + [a for r in inp.get("records", ()) for a in r]:
            if part is not None:
                bytes.fromhex(part)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path} is not a fuzz corpus file: {e}") from None
    if inp.get("kind") not in ("restore", "records", "round"):
        raise ValueError(f"{path} is not a fuzz corpus file: kind {inp.get('kind')!r}")
    return inp
