"""Random ONCE.* commands for the property test (test_property_persistence.py); no fixtures here.

`Generator(seed)` makes commands over every command and every option of README's command reference (the internal
ONCE._* commands included, which README says a client may send and which validate like the rest), with values
at and just beyond the edges of each range README documents (0, 1, max, max+1, -1) and huge numbers (10^19,
i64::MAX, u64::MAX, ...). Each `Cmd` carries `must_fail` when README says it is an error: a number outside its
documented range, a malformed option list, a wrong arity, a key of another type. What has no documented range (AT,
schedule specs, error texts) carries no expectation: it is judged by the persistence checks, since every state a
command reaches must save, load, rewrite and replicate to an equal digest.

The sequence of commands depends on the seed and on the replies fed back with `observe` (the ids a RESERVE
handed out and their attempts): the same seed replays the same sequence as long as the server replies alike.
"""
import random
import re
import time

I64_MAX = 2 ** 63 - 1
U64_MAX = 2 ** 64 - 1
MS_10Y = 315_360_000_000
LEASE_MAX = 604_800_000
BLOCK_MAX = 2 ** 31 - 1

# README "Commands": the documented ranges, inclusive; None = no upper bound documented (ATTEMPT ≥ 1).
RANGES = {
    "RETRIES": (0, 1000),
    "BACKOFF": (0, MS_10Y),
    "DELAY": (0, MS_10Y),
    "LEASE": (1, LEASE_MAX),
    "PRIORITY": (-1_000_000, 1_000_000),
    "COUNT": (1, 10_000),
    "BLOCK": (0, BLOCK_MAX),
    "ATTEMPT": (1, None),
    "ms": (1, LEASE_MAX),                  # EXTEND's ms
    "DEAD-MAX": (0, 1_000_000_000),
    "DEAD-TTL": (0, MS_10Y),
    "LIST-COUNT": (1, 1000),
    "EVENTS-MAX": (0, 100_000),
    "EVENTS-COUNT": (1, 10_000),
    "CONCURRENCY": (0, 1_000_000),
    "RATE": (0, 100_000),
    "PER": (1, 86_400_000),
    "GROUPS-COUNT": (1, 1000),
    # issue 21: PUSH's KEEP and TTL, CONFIGURE's KEEP and KEEP-MAX, CALL's TIMEOUT
    "KEEP": (0, MS_10Y),
    "TTL": (1, MS_10Y),
    "KEEP-MAX": (0, 1_000_000_000),
    "TIMEOUT": (1, BLOCK_MAX),
}
# Group names: a few tenants, the longest name, and two that README refuses (empty, 257 bytes).
GROUP_NAMES = ["t0", "t1", "t2", "t3", "g" * 256, "\u00e9\x00\r\n"]
HUGE = [10 ** 19, I64_MAX, I64_MAX + 1, U64_MAX, U64_MAX + 1, -I64_MAX - 1, -(2 ** 64), 10 ** 30]
NOT_INTEGERS = ["abc", "1.5", "", "0x10", "1e3", "--1", "\u0663", "9" * 40 + "x"]

KEYS = ["pq:0", "pq:1", "pq:2"]
DBS = [0, 1]                              # most commands go to db 0, some to db 1 (SELECT in the AOF and stream)
OTHER_TYPE_KEY = "pq:string"              # a plain string: every ONCE.* command on it must reply WRONGTYPE
CUSTOM_IDS = [f"j{i}" for i in range(16)] + ["i" * 256, "\x00\xff\r\n id"]
SCHEDULE_NAMES = ["s0", "s1", "s2", "s3", "n" * 200, "\u00e9t\u00e9"]

# Schedule specs: (spec, expectation) with expectation "ok", "bad" (README: `invalid schedule: ...`) or None
# (an edge whose fate README leaves open). Fast ones are rare so a run does not drown in fired jobs.
SPECS = [
    ("0 0 1 1 *", "ok"), ("59 23 31 12 *", "ok"), ("0 0 29 2 *", "ok"), ("*/1 * * * *", "ok"),
    ("0 0 * * 0", "ok"), ("0 0 * * 7", "ok"), ("30 2 * * MON-FRI", "ok"), ("0 0 0 1 1 *", "ok"),
    ("*/1 * * * * *", "ok"), ("0 0 0 * * SUN", "ok"), ("@hourly", "ok"), ("@daily", "ok"), ("@weekly", "ok"),
    ("@monthly", "ok"), ("@yearly", "ok"), ("@every 500ms", "ok"), ("@every 1m30s", "ok"), ("@every 2h", "ok"),
    ("@every 1d", "ok"), ("@every 30s", "ok"), ("@every 315360000000ms", "ok"),
    ("@every 10ms", "ok"), ("@every 200ms", "ok"),
    # README: an @every interval is 1 ms to 315360000000 ms; a spec is at most 256 bytes
    ("@every 1ms", "ok"), ("@every 0ms", "bad"), ("@every 0s", "bad"), ("@every 315360000001ms", "bad"),
    ("@every 100000d", "bad"), ("@every 10000000000000000000ms", "bad"), (f"@every {I64_MAX}ms", "bad"),
    (f"@every {U64_MAX}ms", "bad"), (f"@every {U64_MAX + 1}ms", "bad"), ("@every 9999999999999999h", "bad"),
    ("@every " + "1m" * 300, "bad"), ("* " * 2000, "bad"), ("@every " + "1s" * 124, "ok"),
    ("0 0 1 1 * 2099", None), ("60 * * * *", "bad"), ("* * 31 2 *", None),
    ("not a spec", "bad"), ("", "bad"), ("@every", "bad"), ("@every -5s", "bad"), ("@every 5x", "bad"),
    ("* * * *", "bad"),
]
ZONES = [("UTC", "ok"), ("Europe/Berlin", "ok"), ("Pacific/Kiritimati", "ok"), ("America/St_Johns", "ok"),
         ("Australia/Lord_Howe", "ok"), ("Nowhere/Bogus", "bad"), ("", "bad"), ("x" * 5000, "bad"),
         ("America/Argentina/ComodRivadavia", "ok")]
ERROR_TEXTS = ["smtp timeout", "", "fatal: bad input \u00e9", "\x00bin\r\nary\xff", "t" * 4096, "u" * 4097,
               "Traceback (most recent call last):\n" + "  frame\n" * 2000, "v" * 100_000]


def now_ms():
    return time.time_ns() // 1_000_000


class Cmd:
    """One command: argv (str/bytes/int items), its db and key, and whether README says it must fail (with why)."""

    def __init__(self, argv, key, must_fail=None, db=0):
        self.argv = argv
        self.key = key
        self.db = db
        self.must_fail = must_fail    # None, or a short reason ("LEASE=0 out of range", "arity", ...)

    @property
    def name(self):
        return self.argv[0]

    @property
    def where(self):
        """The key as the test names it: `pq:0`, or `db1:pq:0` outside db 0."""
        return self.key if self.db == 0 else f"db{self.db}:{self.key}"

    def __repr__(self):
        return " ".join(short(a) for a in self.argv)


def short(a, limit=60):
    """An argument as it reads in a log or a redis-cli line: quoted, long ones cut with their length."""
    if isinstance(a, int):
        return str(a)
    s = a.decode("latin-1") if isinstance(a, bytes) else a
    if len(s) > limit:
        return repr(s[:20] + "...")[:-1] + f"<{len(s)} chars>'"
    return repr(s) if (not s or any(c in s for c in " \"'\\") or not s.isprintable()) else s


class Generator:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.reserved = []          # (key, id, attempt) handed out by RESERVE, newest last
        self.server_ids = []        # (key, id) of jobs pushed without ID
        self.seqs = []              # (key, job number) read from server ids `<ms>-<seq>`, for the internal commands
        self.must_fail = None
        self.in_multi = False       # the commands being made go inside one MULTI/EXEC (CALL is refused there)

    # ---- feedback from the replies ----------------------------------------------------------------------------

    def observe(self, cmd, reply):
        if cmd.name in ("ONCE.PUSH", "ONCE.BULK") and isinstance(reply, (bytes, list)):
            ids = [i for i in (reply if isinstance(reply, list) else [reply]) if isinstance(i, bytes)]
            self.server_ids = (self.server_ids + [(cmd.key, i) for i in ids])[-60:]
        elif cmd.name == "ONCE.RESERVE" and isinstance(reply, list):
            got = [(cmd.key, j[0], j[2]) for j in reply if isinstance(j, list) and len(j) == 3]
            self.reserved = (self.reserved + got)[-100:]
            ids = [j[0] for j in got]
        else:
            return
        made = [r for r in ids if isinstance(r, bytes) and re.fullmatch(rb"[0-9]+-[0-9]+", r)]
        self.seqs = (self.seqs + [(cmd.key, int(r.split(b"-")[1])) for r in made])[-60:]

    # ---- values --------------------------------------------------------------------------------------------

    def _bad(self, why):
        self.must_fail = self.must_fail or why

    def number(self, name, typical):
        """A value for option `name`: mostly typical, often at or just beyond an edge of its range, sometimes
        huge or not an integer at all. Marks the command must_fail when README's range excludes it."""
        lo, hi = RANGES[name]
        roll = self.rng.random()
        if roll < 0.6:
            v = typical()
        elif roll < 0.88:
            edges = [lo - 1, lo, lo + 1, -1, 0, 1]
            if hi is not None:
                edges += [hi - 1, hi, hi + 1]
            v = self.rng.choice(edges)
        elif roll < 0.96:
            v = self.rng.choice(HUGE)
        else:
            v = self.rng.choice(NOT_INTEGERS)
            self._bad(f"{name}={short(v)} is not an integer")
            return v
        if v < lo or (hi is not None and v > hi):
            self._bad(f"{name}={v} out of range")
        return v

    def pick(self, choices):
        """(value, expectation) from a list: marks must_fail for "bad"."""
        value, expect = self.rng.choice(choices)
        if expect == "bad":
            self._bad(f"{short(value)} is invalid")
        return value

    def key(self):
        if self.rng.random() < 0.03:
            self._bad("WRONGTYPE")
            return OTHER_TYPE_KEY
        return self.rng.choice(KEYS)

    def payload(self, big=True):
        """A job's payload; `big=False` for schedules (one firing every ms would push 70 MB/s)."""
        roll = self.rng.random()
        if roll < 0.85:
            return f"p{self.rng.randrange(1000)}"
        return self.rng.choice(["", "\x00\xff\r\nbinary \u00fc", "x" * 23, "z" * 300] + (["y" * 70_000] if big else []))

    def job_id(self, key):
        """An id that may name a job of `key`: one it reserved, one the server made, a custom one, or none."""
        roll = self.rng.random()
        mine = [r for r in self.reserved if r[0] == key]
        if roll < 0.45 and mine:
            return self.rng.choice(mine)[1]
        made = [s for s in self.server_ids if s[0] == key]
        if roll < 0.65 and made:
            return self.rng.choice(made)[1]
        if roll < 0.95:
            return self.rng.choice(CUSTOM_IDS)
        return self.rng.choice(["nope", "1-1", "s0@1", "", "z" * 300])

    def attempt(self, key, job_id):
        """ATTEMPT for `job_id`: mostly the attempt RESERVE gave it (so the fence holds), else an edge."""
        known = [a for k, i, a in self.reserved if k == key and i == job_id]
        if known and self.rng.random() < 0.7:
            return known[-1]
        return self.number("ATTEMPT", lambda: self.rng.randrange(1, 4))

    def delay(self):
        return self.number("DELAY", lambda: self.rng.choice([0, self.rng.randrange(1, 300), 10 ** 10]))

    def lease(self):
        return self.number("LEASE", lambda: self.rng.choice([self.rng.randrange(20, 300), 60_000, 10 ** 8]))

    def options(self, opts):
        """Flattens [(name, value-or-None)] in random order; sometimes repeats, invents or truncates one."""
        self.rng.shuffle(opts)
        out = []
        for name, value in opts:
            out += [name] if value is None else [name, value]
        roll = self.rng.random()
        if opts and roll < 0.03:
            name, value = self.rng.choice(opts)
            out += [name] if value is None else [name.lower(), value]
            self._bad(f"option {name} given twice")
        elif roll < 0.05:
            out += ["BOGUS", "1"]
            self._bad("unknown option")
        elif opts and roll < 0.07 and opts[-1][1] is not None:
            out.pop()
            self._bad(f"option {opts[-1][0]} without its value")
        return out

    def maybe(self, p=0.5):
        return self.rng.random() < p

    # ---- commands ---------------------------------------------------------------------------------------------

    def push(self, key):
        opts = []
        if self.maybe(0.4):
            opts.append(("ID", self.custom_id()))
        return ["ONCE.PUSH", key, self.payload()] + self.options(self.finish_options(self.job_options(opts)))

    def finish_options(self, opts):
        """Issue 21's PUSH (and CALL) options, added to `opts`: KEEP ms, TTL ms [DROP] (DROP is a token of its own
        that the parser takes anywhere after the payload, but only with TTL)."""
        if self.maybe(0.3):
            opts.append(("KEEP", self.number("KEEP", lambda: self.rng.choice([0, self.rng.randrange(1, 300), 60_000]))))
        if self.maybe(0.2):
            opts.append(("TTL", self.number("TTL", lambda: self.rng.choice([self.rng.randrange(1, 300), 60_000]))))
            if self.maybe(0.4):
                opts.append(("DROP", None))
        elif self.maybe(0.01):
            opts.append(("DROP", None))
            self._bad("DROP goes with TTL")
        return opts

    def call(self, key):
        """ONCE.CALL: PUSH's options, a short TIMEOUT (a valid long one would wait that long), sometimes CANCEL.
        Inside MULTI it is refused."""
        opts = []
        if self.maybe(0.4):
            opts.append(("ID", self.custom_id()))
        opts = self.finish_options(self.job_options(opts))
        if self.maybe(0.97):
            v = self.rng.choice([1, 5, 20] if self.maybe(0.85) else [0, -1, BLOCK_MAX + 1, 10 ** 19, "soon"])
            if not isinstance(v, int) or not 1 <= v <= BLOCK_MAX:
                self._bad(f"TIMEOUT={v} invalid")
            opts.append(("TIMEOUT", v))
        else:
            self._bad("TIMEOUT ms is required")
        if self.maybe(0.4):
            opts.append(("CANCEL", None))
        argv = ["ONCE.CALL", key, self.payload()] + self.options(opts)
        if self.in_multi:
            self._bad("CALL inside MULTI")
        return argv

    def result(self, key):
        """ONCE.RESULT, sometimes with a short or invalid BLOCK (a valid long one on an unfinished job would wait)."""
        argv = ["ONCE.RESULT", key, self.job_id(key)]
        if self.maybe(0.2):
            v = self.rng.choice([1, 5, 20, -1, BLOCK_MAX + 1, 10 ** 19, "soon"])
            if not isinstance(v, int) or not 0 <= v <= BLOCK_MAX:
                self._bad(f"BLOCK={v} invalid")
            argv += ["BLOCK", v]
        return argv

    def progress(self, key):
        job_id = self.job_id(key)
        opts = [("ATTEMPT", self.attempt(key, job_id))] if self.maybe(0.6) else []
        return ["ONCE.PROGRESS", key, job_id, self.payload()] + self.options(opts)

    def custom_id(self):
        idv = self.rng.choice(CUSTOM_IDS + ["", "k" * 257]) if self.maybe(0.9) else ""
        if not 1 <= len(idv.encode()) <= 256:
            self._bad("ID must be 1 to 256 bytes")
        return idv

    def bulk(self, key):
        """BULK: PUSH's options but ID, then IDS (as many as the payloads, else an error) and PAYLOADS, at the
        edges: none, one, a few, the limit of 10,000 and one beyond it."""
        n = self.rng.choice([1, 2, 3, 5]) if self.maybe(0.94) else self.rng.choice([0, 10_000, 10_001])
        if n == 0:
            self._bad("PAYLOADS needs a payload")
        elif n > 10_000:
            self._bad("over 10000 payloads")
        opts = self.job_options([])
        if self.maybe(0.03):
            opts.append(self.rng.choice([("KEEP", 1000), ("TTL", 1000)]))
            self._bad("KEEP and TTL are not BULK options")
        argv = ["ONCE.BULK", key] + self.options(opts)
        if self.maybe(0.4):
            m = n if self.maybe(0.92) else max(0, n + self.rng.choice([-1, 1]))
            if m != n:
                self._bad("IDS and PAYLOADS differ in number")
            argv += ["IDS"] + [self.custom_id() for _ in range(m)]
        payloads = [self.payload() for _ in range(min(n, 5))] + [f"b{i}" for i in range(n - 5)]
        return argv + ["PAYLOADS"] + payloads

    def job_options(self, opts):
        """PUSH's options but ID, added to `opts`."""
        when = self.rng.random()
        if when < 0.3:
            opts.append(("DELAY", self.delay()))
        elif when < 0.5:
            now = now_ms()
            at = self.rng.choice([now + self.rng.randrange(300), now - 1000, 0, 1, -1, 2 ** 62, I64_MAX,
                                  I64_MAX + 1, U64_MAX, 10 ** 19, 253_402_300_799_999, "soon"])
            if isinstance(at, str):
                self._bad("AT is not an integer")
            opts.append(("AT", at))
            if self.maybe(0.05):
                opts.append(("DELAY", self.delay()))
                self._bad("DELAY and AT together")
        for name, typical in (("RETRIES", lambda: self.rng.randrange(6)),
                              ("BACKOFF", lambda: self.rng.choice([0, self.rng.randrange(1, 200), 10 ** 9])),
                              ("PRIORITY", lambda: self.rng.randrange(-5, 6))):
            if self.maybe(0.35):
                opts.append((name, self.number(name, typical)))
        if self.maybe(0.35):
            opts.append(("LEASE", self.lease()))
        if self.maybe(0.4):
            opts.append(("GROUP", self.group_name()))
        return opts

    def group_name(self):
        name = self.rng.choice(GROUP_NAMES) if self.maybe(0.95) else self.rng.choice(["", "h" * 257])
        if not 1 <= len(name.encode()) <= 256:
            self._bad("a group name is 1 to 256 bytes")
        return name

    def rate(self, token):
        """`TOKEN n PER ms`, at and beyond the edges; sometimes without PER."""
        n = self.number("RATE", lambda: self.rng.choice([0, 1, 2, 5, 100]))
        if self.maybe(0.05):
            self._bad(f"{token} without PER")
            return [token, n]
        return [token, n, "PER", self.number("PER", lambda: self.rng.choice([50, 200, 1000, 60_000]))]

    def reserve(self, key):
        opts = []
        if self.maybe(0.6):
            opts.append(("COUNT", self.number("COUNT", lambda: self.rng.choice([1, 2, 5, 10000]))))
        if self.maybe(0.5):
            opts.append(("LEASE", self.lease()))
        if self.maybe(0.3):
            acked = self.job_id(key)
            opts.append(("ACK", acked))
            if self.maybe(0.3):
                opts.append(("ATTEMPT", self.attempt(key, acked)))
            if self.maybe(0.25):
                opts.append(("RESULT", self.payload()))
        elif self.maybe(0.03):
            opts.append(self.rng.choice([("ATTEMPT", 1), ("RESULT", "r")]))
            self._bad("ATTEMPT and RESULT go with ACK")
        if self.maybe(0.15):
            # BLOCK only short or invalid: a valid long BLOCK on an empty queue would wait that long
            v = self.rng.choice([1, 5, 20, -1, BLOCK_MAX + 1, 10 ** 19, "soon"])
            if not isinstance(v, int) or not 0 <= v <= BLOCK_MAX:
                self._bad(f"BLOCK={v} invalid")
            opts.append(("BLOCK", v))
        return ["ONCE.RESERVE", key] + self.options(opts)

    def ids(self, key):
        return [self.job_id(key) for _ in range(self.rng.randrange(1, 5))]

    def ack(self, key):
        ids = self.ids(key)
        argv = ["ONCE.ACK", key] + ids
        if self.maybe(0.3):
            if len(ids) > 1:
                self._bad("ATTEMPT goes with a single id")
            argv += ["ATTEMPT", self.attempt(key, ids[0])]
        if self.maybe(0.25):            # README: RESULT data are the last two arguments, with exactly one id
            if len(ids) > 1:
                self._bad("RESULT goes with a single id")
            argv += ["RESULT", self.payload()]
        return argv

    def nack(self, key):
        job_id = self.job_id(key)
        opts = []
        if self.maybe(0.6):
            opts.append(("ATTEMPT", self.attempt(key, job_id)))
        if self.maybe(0.5):
            opts.append(("ERROR", self.rng.choice(ERROR_TEXTS)))
        how = self.rng.random()
        if how < 0.3:
            opts.append(("DELAY", self.delay()))
        elif how < 0.5:
            opts.append(("DEAD", None))
        elif how < 0.53:
            opts += [("DELAY", self.delay()), ("DEAD", None)]
            self._bad("DELAY and DEAD together")
        return ["ONCE.NACK", key, job_id] + self.options(opts)

    def extend(self, key):
        job_id = self.job_id(key)
        ms = self.number("ms", lambda: self.rng.choice([self.rng.randrange(20, 300), 60_000]))
        opts = [("ATTEMPT", self.attempt(key, job_id))] if self.maybe(0.6) else []
        return ["ONCE.EXTEND", key, job_id, ms] + self.options(opts)

    def schedule(self, key):
        name = self.rng.choice(SCHEDULE_NAMES + ["", "m" * 201]) if self.maybe(0.95) else ""
        if not 1 <= len(name.encode()) <= 200:
            self._bad("schedule name must be 1 to 200 bytes")
        spec = self.pick(SPECS)
        opts = []
        for opt, typical in (("RETRIES", lambda: self.rng.randrange(4)),
                             ("BACKOFF", lambda: self.rng.choice([0, 100, 10 ** 9])),
                             ("PRIORITY", lambda: self.rng.randrange(-3, 4))):
            if self.maybe(0.3):
                opts.append((opt, self.number(opt, typical)))
        if self.maybe(0.3):
            opts.append(("LEASE", self.lease()))
        if self.maybe(0.4):
            opts.append(("TZ", self.pick(ZONES)))
        if self.maybe(0.3):
            opts.append(("MISSED", self.pick([("once", "ok"), ("skip", "ok"), ("SKIP", "ok"), ("never", "bad")])))
        return ["ONCE.SCHEDULE", key, name, spec, self.payload(big=False)] + self.options(opts)

    def arity(self, key):
        self._bad("arity")
        return self.rng.choice([["ONCE.PUSH", key], ["ONCE.ACK", key], ["ONCE.NACK", key], ["ONCE.EXTEND", key, "j1"],
                                ["ONCE.RETRY", key], ["ONCE.CANCEL", key], ["ONCE.INSPECT", key],
                                ["ONCE.INSPECT", key, "j1", "j2"], ["ONCE.STATS", key, "x"],
                                ["ONCE.SCHEDULE", key, "s0", "@hourly"], ["ONCE.UNSCHEDULE", key],
                                ["ONCE.SCHEDULES", key, "x"], ["ONCE.RESERVE"], ["ONCE.RESULT", key],
                                ["ONCE.CALL", key], ["ONCE.PROGRESS", key, "j1"]])

    # ---- internal commands: a client may send them (README "Internal commands"); what they accept must persist ----

    def edge(self, plausible, *edges):
        """A plausible value most of the time, else an edge: 0, -1, the top of i64/u64 and just beyond."""
        if self.rng.random() < 0.75:
            return plausible
        return self.rng.choice(list(edges) + [0, -1, I64_MAX, I64_MAX + 1, U64_MAX])

    def seq(self, key):
        mine = [q for k, q in self.seqs if k == key]
        return self.edge(self.rng.choice(mine) if mine and self.maybe(0.8) else self.rng.randrange(60), 2 ** 53)

    def when(self, ahead=600_000):
        return self.edge(now_ms() + self.rng.randrange(-1000, ahead), 2 ** 62, 253_402_300_799_999)

    def timed_args(self, key):
        """`ONCE._TIMED key TTL|CALL|FORGET seq …`: one timer step (README), naming a few job numbers."""
        return [self.rng.choice(["TTL", "CALL", "FORGET", "FORGET", "x"])] + \
            [self.seq(key) for _ in range(self.rng.randrange(1, 3))]

    def internal(self, key):
        what = self.rng.choice(["_JOB", "_JOB", "_RESERVE", "_FAIL", "_LEASE", "_PROMOTE", "_META", "_SCHED",
                                "_FIRED", "_AT", "_AT", "_EVENTS", "_HIST", "_GROUP", "_WINDOW", "_RING", "_BULK", "_BULK",
                                "_TIMED"])
        if what == "_BULK":
            numbers = [self.seq(key), self.when(0), self.edge(self.rng.choice([0, now_ms() + 10 ** 10])),
                       self.edge(self.rng.randrange(4), 1000, 1001), self.edge(1000, MS_10Y, MS_10Y + 1),
                       self.edge(self.rng.choice([0, 60_000]), LEASE_MAX, LEASE_MAX + 1),
                       self.edge(self.rng.randrange(-3, 4), 1_000_000, 1_000_001, -1_000_001)]
            if self.maybe(0.05):
                numbers.pop()
            argv = [" ".join(map(str, numbers))]
            if self.maybe(0.3):
                argv += ["GROUP", self.rng.choice(GROUP_NAMES + [""])]
            n = self.rng.randrange(1, 4)
            if self.maybe(0.4):
                argv += ["IDS"] + [self.rng.choice(CUSTOM_IDS + ["", "k" * 257])
                                   for _ in range(n + (self.rng.choice([-1, 1]) if self.maybe(0.05) else 0))]
            return ["ONCE._BULK", key] + argv + ["PAYLOADS"] + [self.payload() for _ in range(n)]
        if what == "_AT":
            inner = self.rng.choice([["ONCE.ACK", self.job_id(key)], ["ONCE.RETRY", self.job_id(key)],
                                     ["ONCE.CANCEL", self.job_id(key)], ["ONCE._RESERVE", self.seq(key), self.when()],
                                     ["ONCE.ACK", self.job_id(key), "RESULT", self.payload()],
                                     ["ONCE.PROGRESS", self.job_id(key), self.payload()],
                                     ["ONCE._TIMED"] + self.timed_args(key),
                                     ["ONCE._DROP", self.seq(key)], ["ONCE.PUSH", "x"], ["ONCE._AT", key, "1"]])
            # The inner command names its key, which must be _AT's own (a foreign one is refused).
            inner_key = key if self.rng.random() < 0.9 else key + "-other"
            return ["ONCE._AT", key, self.edge(now_ms(), 2 ** 62), inner[0], inner_key] + inner[1:]
        if what == "_EVENTS":
            last = self.edge(self.rng.randrange(1, 50), 2 ** 53)
            argv = [last]
            for i in range(self.rng.randrange(3)):
                argv += [self.edge(last - 2 + i, 2 ** 53), self.rng.choice(["push", "ack", "dead", "pause", "x"]),
                         self.rng.choice(CUSTOM_IDS + ["", "k" * 257]), self.edge(1, 2 ** 32),
                         self.edge(now_ms()), self.rng.choice(ERROR_TEXTS[:4])]
            return ["ONCE._EVENTS", key] + argv
        if what == "_HIST":
            buckets = [self.edge(self.rng.randrange(5)) for _ in range(self.rng.choice([26, 26, 26, 25]))]
            return ["ONCE._HIST", key, self.rng.choice(["wait", "run", "other"]), self.edge(100)] + buckets
        if what == "_GROUP":
            times = [self.edge(now_ms() - self.rng.randrange(500)) for _ in range(self.rng.randrange(4))]
            return ["ONCE._GROUP", key, self.rng.choice(GROUP_NAMES + [""]), self.edge(self.rng.choice([-1, 1, 2])),
                    self.edge(self.rng.choice([-1, 0, 2])), self.edge(self.rng.choice([0, 200]), 86_400_001)] + times
        if what == "_WINDOW":
            return ["ONCE._WINDOW", key] + [self.edge(now_ms() - self.rng.randrange(500))
                                            for _ in range(self.rng.randrange(4))]
        if what == "_RING":
            return ["ONCE._RING", key, self.rng.choice(["FIRST", "NEXT", "x"])] + \
                self.rng.sample(GROUP_NAMES + [""], self.rng.randrange(1, 4))
        if what == "_JOB":
            state = self.edge(self.rng.randrange(6), 6)
            attempts = self.edge(self.rng.randrange(3), 2 ** 32 - 1, 2 ** 32)
            deadline = self.when() if state in (1, 2) else self.edge(0)
            header = [self.rng.choice(["PUSH", "LOAD"]), self.seq(key), self.when(0), state, attempts,
                      self.edge(self.rng.randrange(attempts + 1) if 0 <= attempts < 3 else 0, 2 ** 32),
                      self.edge(self.rng.randrange(4), 1000, 1001), self.edge(1000, MS_10Y, MS_10Y + 1),
                      self.edge(self.rng.choice([0, 60_000]), LEASE_MAX, LEASE_MAX + 1),
                      self.edge(self.rng.randrange(-3, 4), 1_000_000, 1_000_001, -1_000_001), deadline]
            argv = [" ".join(map(str, header)), self.payload()]
            if self.maybe(0.3):
                argv += ["ID", self.rng.choice(CUSTOM_IDS + ["", "k" * 257])]
            if self.maybe(0.3):
                argv += ["ERROR", self.rng.choice(ERROR_TEXTS)]
            # issue 21's job fields
            if self.maybe(0.15):
                argv += ["RESULT", self.payload()]
            if self.maybe(0.15):
                argv += ["PROGRESS", self.payload()]
            if self.maybe(0.2):
                argv += ["KEEP", self.edge(self.rng.choice([0, 200, 60_000]), MS_10Y, MS_10Y + 1)]
            if self.maybe(0.15):
                argv += ["TTL", self.when()]
                if self.maybe(0.4):
                    argv += ["TTL-DROP", self.edge(1, 2)]
            if self.maybe(0.1):
                argv += ["CANCEL-AT", self.when()]
        elif what == "_TIMED":
            argv = self.timed_args(key)
        elif what == "_RESERVE":
            argv = [x for _ in range(self.rng.randrange(1, 3)) for x in (self.seq(key), self.when())]
        elif what == "_FAIL":
            argv = [self.seq(key), self.rng.choice(["NACK", "EXPIRE", "nack"]),
                    self.edge(self.when(), -1), self.rng.choice(ERROR_TEXTS)]
        elif what == "_LEASE":
            argv = [self.seq(key), self.when()]
        elif what == "_PROMOTE":
            argv = [self.edge(self.rng.randrange(1, 5))]
        elif what == "_META":
            argv = [self.edge(self.rng.randrange(100, 10_000), 2 ** 53)] + [self.edge(self.rng.randrange(50))
                                                                             for _ in range(7)]
        elif what == "_SCHED":
            last = self.edge(-1, now_ms())
            argv = [self.rng.choice(SCHEDULE_NAMES), self.rng.choice(SPECS)[0], self.rng.choice(ZONES)[0],
                    self.payload(big=False), self.edge(self.rng.randrange(4), 1000, 1001), self.edge(0, MS_10Y + 1),
                    self.edge(0, LEASE_MAX + 1), self.edge(0, 1_000_001), self.rng.choice(["once", "skip", "x"]),
                    self.when(), last]
        else:
            argv = [self.rng.choice(SCHEDULE_NAMES), self.edge(self.when(0), -1), self.when()]
        return [f"ONCE.{what}", key] + argv

    def config(self, key):
        """CONFIG SET of a module config (README "Configs") on the master only: configs do not replicate, and the
        master decides every value they feed before it replicates it. (Not once.fault-saves: that one breaks saves
        on purpose.)"""
        name, typical = self.rng.choice([("default-retries", 3), ("default-backoff-ms", 1000),
                                         ("backoff-max-ms", 3_600_000), ("default-lease-ms", 30_000),
                                         ("max-payload-bytes", 67_108_864), ("max-error-bytes", 4096)])
        value = self.edge(self.rng.choice([typical, 1, 100]), 1000, 1001, LEASE_MAX, MS_10Y, MS_10Y + 1, 2 ** 31)
        return ["CONFIG", "SET", f"once.{name}", value]

    WEIGHTS = [("push", 26), ("bulk", 5), ("reserve", 15), ("ack", 7), ("nack", 10), ("extend", 6), ("retry", 5), ("cancel", 6),
               ("inspect", 5), ("stats", 3), ("schedule", 7), ("unschedule", 4), ("schedules", 2), ("arity", 2),
               ("internal", 6), ("config", 1), ("operate", 6), ("flow", 4),
               ("call", 3), ("result", 3), ("progress", 3)]

    def operate(self, key):
        """README "Operating a queue": LIST, PURGE, RETRY ALL, PAUSE/RESUME, CONFIGURE, at and beyond their edges."""
        roll = self.rng.random()
        if roll < 0.3:
            state = self.pick([("ready", "ok"), ("delayed", "ok"), ("reserved", "ok"), ("dead", "ok"),
                               ("completed", "ok"), ("cancelled", "ok"), ("finished", "bad")])
            argv = ["ONCE.LIST", key, state]
            if self.maybe(0.5):
                argv += ["COUNT", self.number("LIST-COUNT", lambda: self.rng.randint(1, 20))]
            if self.maybe(0.3):
                argv += ["CURSOR", self.pick([("0", "ok"), ("0:5", "ok"), ("-3:2", "ok"), ("x", "bad"),
                                              ("1:-1", "bad")])]
            if self.maybe(0.3):
                argv.append("WITHPAYLOADS")
            if self.maybe(0.3):
                argv += ["MATCH", self.pick([("*", "ok"), ("p1*", "ok"), ("j?", "ok"), ("[a-j]*", "ok"),
                                             ("*[^0-9]", "ok"), ("\\*", "ok"), ("[", "ok"), ("", "ok"),
                                             ("*b*i*n*", "ok"), ("x" * 1024, "ok"), ("x" * 1025, "bad")])]
            return argv
        if roll < 0.45:
            return ["ONCE.PURGE", key, self.pick([("ready", "ok"), ("delayed", "ok"), ("dead", "ok"),
                                                  ("completed", "ok"), ("reserved", "bad"), ("cancelled", "bad")])]
        if roll < 0.55:
            return ["ONCE.RETRY", key, "ALL"]
        if roll < 0.7:
            return [self.rng.choice(["ONCE.PAUSE", "ONCE.RESUME"]), key]
        argv = ["ONCE.CONFIGURE", key]
        for opt, typical in [("RETRIES", lambda: self.rng.randint(0, 5)), ("BACKOFF", lambda: self.rng.randint(0, 500)),
                             ("LEASE", lambda: self.rng.randint(50, 5000)),
                             ("DEAD-MAX", lambda: self.rng.randint(0, 5)),
                             ("DEAD-TTL", lambda: self.rng.choice([0, 200, 60_000])),
                             ("KEEP", lambda: self.rng.choice([0, 200, 60_000])),
                             ("KEEP-MAX", lambda: self.rng.randint(0, 5))]:
            if self.maybe(0.35):
                argv += [opt, self.number(opt, typical)]
        for opt, name, typical in [("EVENTS-MAX", "EVENTS-MAX", lambda: self.rng.choice([0, 3, 50])),
                                   ("CONCURRENCY", "CONCURRENCY", lambda: self.rng.choice([0, 1, 2, 5])),
                                   ("GROUP-CONCURRENCY", "CONCURRENCY", lambda: self.rng.choice([0, 1, 2]))]:
            if self.maybe(0.2):
                argv += [opt, self.number(name, typical)]
        for token in ("RATE", "GROUP-RATE"):
            if self.maybe(0.15):
                argv += self.rate(token)
        return argv

    def flow(self, key):
        """README "Flow control" and the event log and histograms: GROUP, GROUPS, EVENTS, HISTOGRAM."""
        roll = self.rng.random()
        if roll < 0.4:
            argv = ["ONCE.GROUP", key, self.group_name()]
            if self.maybe(0.5):
                argv += ["CONCURRENCY", self.number("CONCURRENCY", lambda: self.rng.choice([0, 1, 3]))]
            if self.maybe(0.4):
                argv += self.rate("RATE")
            if self.maybe(0.15):
                argv.append("RESET")
            return argv
        if roll < 0.55:
            argv = ["ONCE.GROUPS", key]
            if self.maybe(0.4):
                argv += ["COUNT", self.number("GROUPS-COUNT", lambda: self.rng.randint(1, 3))]
            if self.maybe(0.3):
                argv += ["CURSOR", self.pick([("0", "ok"), ("7431", "ok"), ("zz", "bad"), ("123", "bad")])]
            return argv
        if roll < 0.85:
            argv = ["ONCE.EVENTS", key]
            if self.maybe(0.5):
                argv += ["AFTER", self.pick([("0", "ok"), ("3", "ok"), ("$", "ok"), ("-1", "bad"), ("x", "bad")])]
            if self.maybe(0.4):
                argv += ["COUNT", self.number("EVENTS-COUNT", lambda: self.rng.randint(1, 10))]
            return argv
        return ["ONCE.HISTOGRAM", key, self.pick([("wait", "ok"), ("run", "ok"), ("RUN", "ok"), ("both", "bad")])]

    def group(self):
        """How many of the next commands to send inside one MULTI/EXEC (0: none)."""
        n = self.rng.randrange(2, 5) if self.rng.random() < 0.04 else 0
        self.in_multi = n > 0
        return n

    def next(self):
        self.must_fail = None
        db = 1 if self.rng.random() < 0.15 else 0
        key = self.key()
        what = self.rng.choices([w for w, _ in self.WEIGHTS], [n for _, n in self.WEIGHTS])[0]
        simple = {
            "ack": lambda: self.ack(key),
            "retry": lambda: ["ONCE.RETRY", key] + self.ids(key),
            "cancel": lambda: ["ONCE.CANCEL", key] + self.ids(key),
            "inspect": lambda: ["ONCE.INSPECT", key, self.job_id(key)],
            "stats": lambda: ["ONCE.STATS", key],
            "unschedule": lambda: ["ONCE.UNSCHEDULE", key, self.rng.choice(SCHEDULE_NAMES + ["missing"])],
            "schedules": lambda: ["ONCE.SCHEDULES", key],
        }
        argv = simple[what]() if what in simple else getattr(self, what)(key)
        if what == "config":
            self.must_fail, key = None, "(config)"      # no key: WRONGTYPE does not apply
        return Cmd(argv, key, self.must_fail, db)
