"""Malformed internal records (no server here): for every ONCE._* command, argv built from what the target queue
holds (its job numbers, times and names, read from its dump's values) or from edges, then often broken: an
argument dropped, added or replaced by an edge or by bytes that are no number, the arguments out of order, a
header's fields one short or one too many, a huge argument or a huge number of them, a keyword in lower case.
README "Internal commands" says a client may send these and each validates like the rest; whatever one accepts
must persist.
"""
import time

from fuzz_mutate import MASK

I64_MAX = 2 ** 63 - 1
NUMBER_EDGES = [0, 1, -1, 2, 25, 26, 27, 1000, 1001, 100_000, 100_001, 86_400_000, 86_400_001, 604_800_000,
                604_800_001, 315_360_000_000, 315_360_000_001, 1_000_000, -1_000_000, 1_000_001, -1_000_001,
                2 ** 32 - 1, 2 ** 32, 2 ** 53, 2 ** 62, I64_MAX - 1, I64_MAX, I64_MAX + 1, 2 ** 64 - 1, 2 ** 64,
                -I64_MAX - 1, -I64_MAX - 2]
NOT_NUMBERS = [b"", b"abc", b"1.5", b" 1", b"1 ", b"+1", b"-0", b"0x10", b"1e3", b"9" * 40, b"\x00", b"01",
               "\u0663".encode(), b"--1", b"1\x002"]
KINDS = [b"push", b"reserve", b"ack", b"nack", b"expire", b"retry", b"dead", b"drop", b"cancel", b"pause", b"resume"]
STATES = [b"ready", b"delayed", b"reserved", b"dead"]
SPECS = [b"0 0 1 1 *", b"@every 1d", b"0 0 0 1 1 *", b"* * 31 2 *", b"@every 0ms", b"not a spec", b"", b"@hourly"]
ZONES = [b"UTC", b"Europe/Paris", b"Nowhere/Bogus", b"", b"\xff"]
INNER = [b"ONCE.ACK", b"ONCE.RETRY", b"ONCE.CANCEL", b"ONCE._RESERVE", b"ONCE._DROP", b"ONCE._SETTINGS",
         b"ONCE._SWEEP", b"ONCE._AT", b"ONCE.PUSH", b"once._reserve"]
# The schedules' and groups' names of the seed queues (fuzz_seeds.py), which the records name most.
SEED_NAMES = [b"yearly", b"leap", b"secs", "\u00e9t\u00e9".encode(), b"t0", b"t1", b"t2", b"g" * 256, b"idle", b"w0",
              b"w1", b"bulky"]
COMMANDS = ["_JOB", "_BULK", "_RESERVE", "_FAIL", "_LEASE", "_PROMOTE", "_META", "_SCHED", "_FIRED", "_SETTINGS",
            "_DROP", "_AT", "_EVENTS", "_HIST", "_GROUP", "_WINDOW", "_RING", "_SWEEP"]


def now_ms():
    return time.time_ns() // 1_000_000


class Context:
    """What a target queue holds, as far as a record needs it (nothing for a new key): its dump's values (times,
    names) and what the server says of it (`facts`: the seqs of its jobs in each state, its schedules' and groups'
    names)."""

    def __init__(self, tokens=(), facts=None):
        ints = [t.value for t in tokens if t.kind == "int"]
        self.next_seq = ints[0] if ints else 0
        self.times = [v for v in ints if 10 ** 12 <= v < 10 ** 14] or [now_ms()]
        self.names = [t.value for t in tokens if t.kind == "str" and 0 < len(t.value) <= 256] + SEED_NAMES
        self.facts = facts or {}


class Records:
    def __init__(self, rng):
        self.rng = rng
        self.p = 1.0        # how likely a value is plausible rather than an edge: drawn for each record

    def word(self, good, bad):
        """One of the words a field takes, or (as often as values are edges) one it does not."""
        return self.rng.choice(good) if self.rng.random() < self.p else self.rng.choice(bad)

    # ---- values ------------------------------------------------------------------------------------------------

    def edge(self, plausible, p=None):
        """`plausible` most of the time (`p`, else the record's), else a number at an edge, or bytes that are no
        number."""
        if self.rng.random() < (self.p if p is None else p):
            return plausible
        if self.rng.random() < 0.8:
            return self.rng.choice(NUMBER_EDGES)
        return self.rng.choice(NOT_NUMBERS)

    def seq(self, ctx, state=None):
        """A job number: mostly of a job in `state` where the queue has one, else one of the queue's or the next."""
        known = ctx.facts.get(state)
        if known and self.rng.random() < 0.7:
            return self.edge(self.rng.choice(known))
        top = max(ctx.next_seq, 1)
        return self.edge(self.rng.choice([self.rng.randrange(top), top, top, top + 1, top - 1, 0]))

    def when(self, ctx):
        return self.edge(self.rng.choice(ctx.times) + self.rng.choice([0, 0, 1, -1, 10 ** 10, -10 ** 10]))

    def name(self, ctx, what=None):
        """A schedule's or group's name: mostly one the queue has (`what`: "schedules", "groups")."""
        known = ctx.facts.get(what)
        if known and self.rng.random() < 0.7:
            return self.rng.choice(known)
        return self.rng.choice(ctx.names) if self.rng.random() < 0.8 else self.rng.choice(
            [b"", b"t0", b"g" * 256, b"g" * 257, b"\xff\x00", b"idle"])

    def text(self):
        return self.rng.choice([b"", b"boom", b"e" * 4096, b"e" * 4097, b"\x00\xff\r\n", b"lease expired"])

    def small(self, top=5):
        return self.edge(self.rng.randrange(top))

    # ---- each command's argv after the key, well formed more often than not ---------------------------------

    def _job(self, ctx):
        state = self.small(4)
        attempts = self.small(3)
        base = self.edge(self.rng.randrange(attempts + 1) if isinstance(attempts, int) and 0 <= attempts < 3 else 0)
        deadline = self.when(ctx) if state in (1, 2) else self.edge(0)
        numbers = [self.seq(ctx), self.when(ctx), state, attempts, base, self.small(4), self.edge(1000),
                   self.edge(self.rng.choice([0, 60_000])), self.edge(self.rng.randrange(-3, 4)), deadline,
                   self.when(ctx)]
        roll = self.rng.random()
        if roll < 0.08:
            numbers = numbers[:10]                                  # before `since`
        elif roll < 0.14:                                           # before the schema: the state by name
            numbers = numbers[:2] + [self.rng.choice(STATES)] + numbers[3:4] + numbers[5:10]
        mode = self.word([b"PUSH", b"LOAD", b"LOAD"], [b"push", b"MOVE", b""])
        argv = [self.header([mode] + numbers), self.payload()]
        for word, value in ((b"ID", self.id_value()), (b"ERROR", self.text()), (b"GROUP", self.name(ctx))):
            if self.rng.random() < 0.3:
                argv += [word, value]
        return argv

    def _bulk(self, ctx):
        numbers = [self.seq(ctx), self.when(ctx), self.edge(self.rng.choice([0, now_ms() + 10 ** 10])),
                   self.small(4), self.edge(1000), self.edge(self.rng.choice([0, 60_000])),
                   self.edge(self.rng.randrange(-3, 4))]
        argv = [self.header(numbers)]
        if self.rng.random() < 0.3:
            argv += [b"GROUP", self.name(ctx)]
        n = self.rng.choice([1, 1, 2, 3, 10])
        if self.rng.random() < 0.4:
            argv += [b"IDS"] + [self.id_value() for _ in range(n + self.rng.choice([0, 0, 0, 0, -1, 1]))]
        return argv + [b"PAYLOADS"] + [self.payload() for _ in range(n)]

    def _reserve(self, ctx):
        return [x for _ in range(self.rng.choice([1, 1, 2, 3])) for x in (self.seq(ctx, "ready"), self.when(ctx))]

    def _fail(self, ctx):
        argv = [self.seq(ctx, "reserved"), self.word([b"NACK", b"EXPIRE"], [b"nack", b"OTHER"]),
                self.rng.choice([-1, self.when(ctx)]), self.text()]
        return argv + ([self.when(ctx)] if self.rng.random() < 0.7 else [])

    def _lease(self, ctx):
        return [self.seq(ctx, "reserved"), self.when(ctx)]

    def _promote(self, ctx):
        return [self.small(10)]

    def _meta(self, ctx):
        n = self.rng.choice([8, 8, 8, 7])
        return [self.edge(ctx.next_seq + self.rng.choice([0, 1, 100]))] + [self.small(50) for _ in range(n)]

    def _sched(self, ctx):
        return [self.name(ctx, "schedules"), self.rng.choice(SPECS), self.rng.choice(ZONES), self.payload(),
                self.small(4), self.edge(0), self.edge(0), self.edge(0),
                self.word([b"once", b"skip"], [b"SKIP", b"x", b"1"]), self.when(ctx), self.edge(-1)]

    def _fired(self, ctx):
        return [self.name(ctx, "schedules"), self.rng.choice([-1, self.when(ctx)]), self.when(ctx)]

    def _settings(self, ctx):
        n = self.word([13, 13, 13, 6, 7], [12, 14, 0])
        plausible = [-1, -1, -1, 0, 0, self.rng.randrange(2), 10, 0, 3, 1000, 0, 0, 0, 0]
        return [self.edge(plausible[i]) for i in range(n)]

    def _drop(self, ctx):
        return [self.seq(ctx, "dead") for _ in range(self.rng.choice([1, 1, 2, 4]))]

    def _at(self, ctx, key):
        inner = self.rng.choice(INNER)
        rest = {b"ONCE._RESERVE": lambda: self._reserve(ctx), b"ONCE._DROP": lambda: self._drop(ctx),
                b"ONCE._SETTINGS": lambda: self._settings(ctx), b"ONCE._SWEEP": lambda: [self.small(10)],
                b"ONCE._AT": lambda: [self.when(ctx), b"ONCE._SWEEP", key, 1]}.get(
            inner.upper(), lambda: [self.id_value()])()
        inner_key = key if self.rng.random() < 0.85 else self.rng.choice([key + b"-other", b""])
        return [self.when(ctx), inner, inner_key] + rest

    def _events(self, ctx):
        last = self.edge(self.rng.randrange(1, 50))
        argv = [last]
        for i in range(self.rng.choice([0, 1, 2, 3, 6])):
            base = last if isinstance(last, int) else 0
            argv += [self.edge(base - 3 + i), self.word(KINDS, [b"x", b"PUSH"]), self.id_value(),
                     self.small(3), self.when(ctx), self.text()]
        return argv

    def _hist(self, ctx):
        n = self.word([26], [25, 27])
        return [self.word([b"wait", b"run"], [b"RUN", b"other"]), self.edge(100)] + \
            [self.small(5) for _ in range(n)]

    def _group(self, ctx):
        times = [self.when(ctx) for _ in range(self.rng.choice([0, 1, 3]))]
        limits = [self.edge(self.rng.choice([-1, 1, 2])), self.edge(self.rng.choice([-1, 0, 2])),
                  self.edge(self.rng.choice([0, 200]))]
        return [self.name(ctx, "groups")] + limits + times

    def _window(self, ctx):
        return [self.when(ctx) for _ in range(self.rng.choice([0, 1, 2, 5]))]

    def _ring(self, ctx):
        return [self.word([b"FIRST", b"NEXT", b"first"], [b"LAST", b""])] + \
            [self.name(ctx, "groups") for _ in range(self.rng.choice([0, 1, 2, 4]))]

    def _sweep(self, ctx):
        return [self.small(10)]

    # ---- shapes ------------------------------------------------------------------------------------------------

    def header(self, numbers):
        """Numbers joined by spaces (one argument, as _JOB and _BULK carry them), sometimes not quite."""
        fields = [n if isinstance(n, bytes) else str(n).encode() for n in numbers]
        roll = self.rng.random()
        if roll < 0.05 and len(fields) > 1:
            del fields[self.rng.randrange(1, len(fields))]
        elif roll < 0.1:
            fields.insert(self.rng.randrange(1, len(fields) + 1), b"0")
        elif roll < 0.13:
            return b"  ".join(fields)
        elif roll < 0.15:
            return b" ".join(fields) + b" "
        elif roll < 0.16:
            return b" ".join(fields + [b"0"] * 5000)
        return b" ".join(fields)

    def payload(self):
        return self.rng.choice([b"p", b"", b"\x00\xff", b"x" * 300, b"PAYLOADS", b"IDS", b"GROUP"])

    def id_value(self):
        return self.rng.choice([b"j1", b"j2", b"ev-1", b"i" * 256, b"i" * 257, b"", b"1-1", b"0-0",
                                str(now_ms()).encode() + b"-0", b"\x00 id \r\n"])

    def broken(self, argv):
        """`argv` (after the key) changed in one way a record should not be, now and then."""
        roll = self.rng.random()
        argv = list(argv)
        if roll < 0.65 or not argv:
            return argv
        i = self.rng.randrange(len(argv))
        if roll < 0.63:
            del argv[i]
        elif roll < 0.7:
            argv.insert(i, self.edge(0, p=0))
        elif roll < 0.78:
            argv[i] = self.rng.choice(NOT_NUMBERS + NUMBER_EDGES)
        elif roll < 0.84:
            self.rng.shuffle(argv)
        elif roll < 0.88 and len(argv) > 1:
            j = self.rng.randrange(len(argv))
            argv[i], argv[j] = argv[j], argv[i]
        elif roll < 0.91:
            argv = argv[:self.rng.randrange(len(argv))]
        elif roll < 0.94:
            argv[i] = b"9" * 200_000 if self.rng.random() < 0.5 else b"\xff" * 200_000
        elif roll < 0.96:
            argv += [argv[i]] * self.rng.choice([100, 20_000])
        else:
            argv[i] = argv[i].lower() if isinstance(argv[i], bytes) else (argv[i] & MASK) if argv[i] < 0 else -argv[i]
        return argv

    def record(self, key, ctx):
        """One record for `key`: [command, key, args...]."""
        what = self.rng.choice(COMMANDS)
        self.p = self.rng.choice([1.0, 1.0, 0.97, 0.85])
        make = getattr(self, what.lower())
        argv = make(ctx, key) if what == "_AT" else make(ctx)
        return [f"ONCE.{what}".encode(), key] + self.broken(argv)
