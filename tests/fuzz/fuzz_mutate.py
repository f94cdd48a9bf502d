"""Mutations of a queue's DUMP body (no server here): the body parsed into the module's values, changed at the
value level (integers set to edges, counts and lengths lied about, values dropped, repeated, swapped, retyped or
spliced in from another dump, the encoding version changed) or at the byte level (bit flips, bytes inserted or
deleted, truncation), or values made up from nothing. A body is what `durability_helpers.split_dump` returns
before the RDB version and checksum: the type byte, the module id (whose low 10 bits are the encoding version),
the module's opcodes and the module EOF. `make_dump` puts a valid checksum around it, so RESTORE hands it to the
module's loader.
"""
import struct

from durability_helpers import MODULE_EOF, _read_len, rdb_len

HEADER = 10                     # the type byte (7, RDB_TYPE_MODULE_2) and the module id (0x81 + 8 bytes)
UINT, STRING = 2, 5             # RDB_MODULE_OPCODE_UINT, RDB_MODULE_OPCODE_STRING
MASK = (1 << 64) - 1
INT_EDGES = [0, 1, 2, 3, 4, 7, 8, 25, 26, 27, 255, 256, 257, 1000, 1001, 4096, 4097, 100_000, 100_001,
             604_800_000, 604_800_001, 315_360_000_000, 315_360_000_001, 1_000_000, 1_000_001, 86_400_000,
             86_400_001, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 2 ** 62, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1,
             (-1) & MASK, (-2) & MASK, (-1_000_001) & MASK, 253_402_300_799_999, 253_402_300_800_000]
STRING_EDGES = [b"", b"x", b"\xff\xfe", b"\x00", b"0", b"-1", b"18446744073709551616", b"i" * 256, b"i" * 257,
                b"e" * 4097, b"UTC", b"Nowhere/Bogus", b"0 0 1 1 *", b"@every 1ms", b"@every 0ms", b"* * 31 2 *",
                b"t0", b"g" * 256, "\u00e9t\u00e9".encode()]


class Token:
    """One module value: an integer (UINT; a signed one is its two's complement) or a string; `raw` when a
    mutation wrote its bytes itself (a lying length, a wrong opcode)."""
    __slots__ = ("kind", "value")

    def __init__(self, kind, value):
        self.kind, self.value = kind, value

    def encode(self):
        if self.kind == "int":
            return rdb_len(UINT) + rdb_len(self.value & MASK)
        if self.kind == "str":
            return rdb_len(STRING) + rdb_len(len(self.value)) + self.value
        return self.value


def parse(body):
    """The header and the values of a body the module wrote (raw strings only: the server runs with
    rdbcompression no). ValueError for anything else."""
    tokens, i = [], HEADER
    try:
        while True:
            op, i, _ = _read_len(body, i)
            if op == 0:
                break
            if op == UINT:
                v, i, _ = _read_len(body, i)
                tokens.append(Token("int", v))
            elif op == STRING:
                n, i, special = _read_len(body, i)
                if special or i + n > len(body):
                    raise ValueError("a special or short string")
                tokens.append(Token("str", body[i:i + n]))
                i += n
            else:
                raise ValueError(f"opcode {op}")
    except (IndexError, struct.error) as e:
        raise ValueError(f"short body: {e}") from None
    if i != len(body):
        raise ValueError("bytes after the module EOF")
    return body[:HEADER], tokens


def serialize(header, tokens):
    return header + b"".join(t.encode() for t in tokens) + MODULE_EOF


def encver(header):
    return struct.unpack(">Q", header[2:10])[0] & 0x3FF


def with_encver(header, version):
    module_id = struct.unpack(">Q", header[2:10])[0]
    return header[:2] + struct.pack(">Q", (module_id & ~0x3FF) | (version & 0x3FF))


class Mutator:
    """Changes bodies with a seeded `random.Random`; every choice comes from it, so a seed replays."""

    def __init__(self, rng, seeds):
        self.rng = rng
        self.seeds = seeds          # [(header, tokens)] of real dumps, for splicing and made-up values

    # ---- values ------------------------------------------------------------------------------------------------

    def int_value(self, near=None):
        roll = self.rng.random()
        if near is not None and roll < 0.3:
            return (near + self.rng.choice([-2, -1, 1, 2, 1000, -1000])) & MASK
        if roll < 0.75:
            return self.rng.choice(INT_EDGES)
        if roll < 0.9:
            return self.rng.getrandbits(self.rng.choice([8, 16, 32, 48, 64]))
        return self.some_token("int").value

    def str_value(self, old=b""):
        roll = self.rng.random()
        if roll < 0.4:
            return self.rng.choice(STRING_EDGES)
        if roll < 0.6 and old:
            b = bytearray(old)
            b[self.rng.randrange(len(b))] ^= 1 << self.rng.randrange(8)
            return bytes(b)
        if roll < 0.7:
            return old + old[:self.rng.randrange(len(old) + 1)] if old else b"\x00" * 300
        if roll < 0.8:
            return old[:self.rng.randrange(len(old) + 1)]
        return self.some_token("str").value

    def some_token(self, kind=None):
        """A value from one of the real dumps (of a kind, if given)."""
        for _ in range(20):
            _, tokens = self.rng.choice(self.seeds)
            if tokens:
                t = self.rng.choice(tokens)
                if kind is None or t.kind == kind:
                    return Token(t.kind, t.value)
        return Token("int", 0) if kind == "int" else Token("str", b"")

    # ---- value-level mutations -----------------------------------------------------------------------------------

    def set_int(self, header, tokens):
        ints = [t for t in tokens if t.kind == "int"]
        if ints:
            t = self.rng.choice(ints)
            t.value = self.int_value(t.value)
        return header, tokens

    def lie_count(self, header, tokens):
        """A small integer (a count, a length, a flags word, a state) one off, or huge."""
        small = [t for t in tokens if t.kind == "int" and t.value < 100_000]
        if small:
            t = self.rng.choice(small)
            t.value = self.rng.choice([t.value + 1, t.value - 1 if t.value else 1, t.value + 2, 2 ** 32, 2 ** 62,
                                       2 ** 64 - 1]) & MASK
        return header, tokens

    def set_str(self, header, tokens):
        strs = [t for t in tokens if t.kind == "str"]
        if strs:
            t = self.rng.choice(strs)
            t.value = self.str_value(t.value)
        return header, tokens

    def lie_length(self, header, tokens):
        """A string whose declared length is not its length (the bytes after it then read as something else)."""
        strs = [i for i, t in enumerate(tokens) if t.kind == "str"]
        if strs:
            i = self.rng.choice(strs)
            v = tokens[i].value
            n = self.rng.choice([len(v) + 1, max(len(v) - 1, 0), len(v) + 9, 2 ** 32 - 1, 2 ** 40, 0])
            tokens[i] = Token("raw", rdb_len(STRING) + rdb_len(n) + v)
        return header, tokens

    def retype(self, header, tokens):
        """An integer where a string stands or the other way round, or an opcode the module never writes."""
        if not tokens:
            return header, tokens
        i = self.rng.randrange(len(tokens))
        t = tokens[i]
        roll = self.rng.random()
        if roll < 0.4:
            tokens[i] = Token("str", str(t.value).encode()) if t.kind == "int" else Token("int", len(t.value))
        elif roll < 0.7:
            tokens[i] = Token("raw", rdb_len(self.rng.choice([1, 3, 4, 6, 7, 63])) + t.encode()[1:])
        else:
            # the same integer with a longer length encoding than needed, which RDB's reader accepts
            value = t.value if t.kind == "int" else len(t.value)
            tokens[i] = Token("raw", rdb_len(UINT) + b"\x81" + struct.pack(">Q", value & MASK))
        return header, tokens

    def drop(self, header, tokens):
        if tokens:
            i = self.rng.randrange(len(tokens))
            del tokens[i:i + self.rng.choice([1, 1, 1, 2, 3, 13])]
        return header, tokens

    def repeat(self, header, tokens):
        if tokens:
            i = self.rng.randrange(len(tokens))
            n = self.rng.choice([1, 1, 2, 12, 13])
            tokens[i:i] = [Token(t.kind, t.value) for t in tokens[i:i + n]]
        return header, tokens

    def swap(self, header, tokens):
        if len(tokens) > 1:
            i = self.rng.randrange(len(tokens) - 1)
            j = i + 1 if self.rng.random() < 0.7 else self.rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        return header, tokens

    def splice(self, header, tokens):
        """A run of values from another dump in place of (or in front of) a run of these."""
        _, other = self.rng.choice(self.seeds)
        if not other or not tokens:
            return header, tokens
        a = self.rng.randrange(len(other))
        piece = [Token(t.kind, t.value) for t in other[a:a + self.rng.randrange(1, 40)]]
        i = self.rng.randrange(len(tokens))
        cut = 0 if self.rng.random() < 0.3 else len(piece)
        tokens[i:i + cut] = piece
        return header, tokens

    def version(self, header, tokens):
        """Read as another encoding version: each older one, the next, 0 and the top."""
        return with_encver(header, self.rng.choice(list(range(encver(header) + 2)) + [1023])), tokens

    VALUE_MUTATIONS = ((set_int, 6), (lie_count, 4), (set_str, 3), (lie_length, 1), (retype, 1), (drop, 2),
                       (repeat, 2), (swap, 2), (splice, 2), (version, 1))

    # ---- byte-level mutations --------------------------------------------------------------------------------------

    def bytes_mutation(self, body):
        b = bytearray(body)
        roll = self.rng.random()
        start = HEADER if self.rng.random() < 0.95 else 1     # the module id rarely: Redis checks it first
        if len(b) <= start:
            return bytes(b)
        i = self.rng.randrange(start, len(b))
        if roll < 0.35:
            for _ in range(self.rng.choice([1, 1, 2, 4])):
                b[self.rng.randrange(start, len(b))] ^= 1 << self.rng.randrange(8)
        elif roll < 0.5:
            b[i] = self.rng.choice([0, 0xFF, 0x80, 0x81, 0x40, 0x3F, 0xC0, self.rng.randrange(256)])
        elif roll < 0.65:
            b[i:i] = bytes(self.rng.randrange(256) for _ in range(self.rng.choice([1, 1, 2, 8])))
        elif roll < 0.8:
            del b[i:i + self.rng.choice([1, 1, 2, 8, 30])]
        elif roll < 0.9:
            b = b[:i] + (MODULE_EOF if self.rng.random() < 0.5 else b"")     # cut, with or without the EOF
        else:
            n = self.rng.choice([2, 8, 40])
            b[i:i] = b[i:i + n]
        return bytes(b)

    # ---- made up ----------------------------------------------------------------------------------------------

    def made_up(self):
        """Values from nothing: a real header at a random version, then random integers and strings."""
        header, _ = self.rng.choice(self.seeds)
        tokens = []
        for _ in range(self.rng.choice([0, 1, 3, 10, 40, 120])):
            if self.rng.random() < 0.75:
                tokens.append(Token("int", self.int_value() if self.rng.random() < 0.5 else self.rng.randrange(8)))
            else:
                tokens.append(Token("str", self.str_value()))
        return serialize(with_encver(header, self.rng.randint(1, encver(header))), tokens)

    # ---- one input ----------------------------------------------------------------------------------------------

    def mutate(self):
        """A new body: a real dump changed 1 to 4 times (values, then maybe bytes), or made up."""
        if self.rng.random() < 0.05:
            return self.made_up()
        header, tokens = self.rng.choice(self.seeds)
        tokens = [Token(t.kind, t.value) for t in tokens]
        fns = [f for f, _ in self.VALUE_MUTATIONS]
        weights = [w for _, w in self.VALUE_MUTATIONS]
        for _ in range(self.rng.choice([1, 1, 1, 2, 3, 4])):
            header, tokens = self.rng.choices(fns, weights)[0](self, header, tokens)
        body = serialize(header, tokens)
        if self.rng.random() < 0.25:
            body = self.bytes_mutation(body)
        return body
