"""Helpers for the durability, replication and keyspace tests (no fixtures here: those live in conftest.py).

- `fill_every_state` builds a queue holding jobs in every state (ready at several priorities, delayed far in the
  future, reserved with a long lease, dead via NACK ... DEAD), custom ids, last_error, a cron schedule that will not
  fire during a test, and non-zero counters.
- `snapshot` records everything a client can see of some queues (STATS, INSPECT of every id, SCHEDULES,
  DEBUG DIGEST-VALUE) plus the server's DEBUG DIGEST, so two servers or two moments can be compared.
- replication helpers: attach a replica, wait until it has processed everything the master sent.
- `RespPipe`: a raw RESP2 connection that pipelines commands and counts replies, for the kill -9 test.
"""
import os
import socket
import struct
import time

import redis

from helpers import RawClient, as_map, encode_command, inspect, push, reserve_one, stats, wait_until

FAR = 10 ** 10          # ms: a delay or lease far beyond any test (~115 days)
NEVER_CRON = "0 0 1 1 *"  # once a year, on January 1st at midnight


def digest(r):
    return r.execute_command("DEBUG", "DIGEST")


def digest_value(r, *keys):
    reply = r.execute_command("DEBUG", "DIGEST-VALUE", *keys)
    return list(reply)


def schedules(r, queue):
    return [as_map(s) for s in (r.execute_command("ONCE.SCHEDULES", queue) or [])]


def fill_every_state(r, queue, tag="j"):
    """Fills `queue` with jobs in every state; returns the ids by what they are."""
    ids = {}
    # ready, several priorities and custom ids, some with their own lease/backoff/retries
    ids["ready"] = [
        push(r, queue, f"{tag}-ready-0"),
        push(r, queue, f"{tag}-ready-1", "PRIORITY", 5),
        push(r, queue, f"{tag}-ready-2", "ID", f"{tag}:custom-ready", "PRIORITY", -3, "RETRIES", 7, "BACKOFF", 250),
        push(r, queue, f"{tag}-ready-3", "PRIORITY", 5, "LEASE", 12345),
        push(r, queue, "\x00bin\r\nary \u00fc payload"),
    ]
    # delayed far in the future
    ids["delayed"] = [
        push(r, queue, f"{tag}-delayed-0", "DELAY", FAR),
        push(r, queue, f"{tag}-delayed-1", "ID", f"{tag}:custom-delayed", "DELAY", FAR + 5, "PRIORITY", 9),
    ]
    # reserved with a long lease: two jobs of the highest priority pushed just for this
    push(r, queue, f"{tag}-reserved-0", "ID", f"{tag}:custom-reserved", "PRIORITY", 1000)
    push(r, queue, f"{tag}-reserved-1", "PRIORITY", 1000, "RETRIES", 2)
    got = r.execute_command("ONCE.RESERVE", queue, "COUNT", 2, "LEASE", FAR // 100)
    assert [g[1] for g in got] == [f"{tag}-reserved-0", f"{tag}-reserved-1"], got
    ids["reserved"] = [g[0] for g in got]
    # a job that failed once with an error text and waits far in the future for its retry
    push(r, queue, f"{tag}-retrying", "ID", f"{tag}:custom-retrying", "PRIORITY", 1000, "RETRIES", 5)
    job_id, _, _ = reserve_one(r, queue, "LEASE", FAR // 100)
    assert r.execute_command("ONCE.NACK", queue, job_id, "ERROR", "temporary failure", "DELAY", FAR) == 1
    ids["delayed"].append(job_id)
    # dead via NACK ... DEAD, with last_error
    push(r, queue, f"{tag}-dead-0", "ID", f"{tag}:custom-dead", "PRIORITY", 1000)
    job_id, _, _ = reserve_one(r, queue)
    assert r.execute_command("ONCE.NACK", queue, job_id, "ERROR", "fatal: bad input \u00e9", "DEAD") == 1
    push(r, queue, f"{tag}-dead-1", "PRIORITY", 1000, "RETRIES", 0)
    job_id2, _, _ = reserve_one(r, queue)
    assert r.execute_command("ONCE.NACK", queue, job_id2, "DEAD") == 1
    ids["dead"] = [job_id, job_id2]
    # a completed job, so acked_total moves
    push(r, queue, f"{tag}-acked", "PRIORITY", 1000)
    done, _, _ = reserve_one(r, queue)
    assert r.execute_command("ONCE.ACK", queue, done) == 1
    # a schedule that does not fire during the test
    r.execute_command("ONCE.SCHEDULE", queue, f"{tag}-yearly", NEVER_CRON, f"{tag}-cron-payload",
                      "RETRIES", 4, "PRIORITY", 2, "TZ", "Europe/Paris")
    s = stats(r, queue)
    assert (s["ready"], s["delayed"], s["reserved"], s["dead"], s["schedules"]) == (5, 3, 2, 2, 1), s
    assert s["acked_total"] == 1 and s["nacked_total"] == 3 and s["dead_total"] == 2, s
    for state_name, group in ids.items():
        for job_id in group:
            assert inspect(r, queue, job_id)["state"] == state_name, (state_name, job_id)
    return ids


def all_ids(ids):
    return [i for group in ids.values() for i in group]


def ready_order(r, queue):
    """The ids RESERVE would hand out, in order, read from a throw-away COPY so the queue itself is left alone.
    (DEBUG DIGEST-VALUE cannot be relied on for this: see test_keyspace.test_digest_value_follows_ready_order.)"""
    tmp = f"__order__:{queue}"
    assert r.copy(queue, tmp, replace=True)
    got = r.execute_command("ONCE.RESERVE", tmp, "COUNT", 10000, "LEASE", 1000) or []
    r.delete(tmp)
    return [g[0] for g in got]


def snapshot(r, queues_and_ids, with_server_digest=True, with_order=True):
    """What a client can see of these queues: {queue: (stats, inspects, schedules, digest-value, ready order)}
    + DEBUG DIGEST. `with_order` needs a writable server (it uses COPY)."""
    out = {}
    for queue, ids in queues_and_ids.items():
        out[queue] = {
            "stats": stats(r, queue),
            "jobs": {i: inspect(r, queue, i) for i in ids},
            "schedules": schedules(r, queue),
            "events": r.execute_command("ONCE.EVENTS", queue, "COUNT", 10000),
            "histograms": [r.execute_command("ONCE.HISTOGRAM", queue, w) for w in ("wait", "run")],
            "groups": all_group_maps(r, queue),
            "digest_value": digest_value(r, queue),
            "ready_order": ready_order(r, queue) if with_order else None,
        }
    if with_server_digest:
        out["__digest__"] = digest(r)
    return out


def all_group_maps(r, queue):
    """Every page of ONCE.GROUPS."""
    out, cursor = [], "0"
    while True:
        cursor, page = r.execute_command("ONCE.GROUPS", queue, "CURSOR", cursor, "COUNT", 1000)
        out += page
        cursor = cursor.decode() if isinstance(cursor, bytes) else cursor
        if cursor == "0":
            return out


def assert_same_snapshot(before, after):
    """Compares two snapshots field by field, so a failure names what differs."""
    assert before.keys() == after.keys()
    for queue in before:
        if queue == "__digest__":
            continue
        b, a = before[queue], after[queue]
        assert a["stats"] == b["stats"], f"{queue}: STATS differ"
        for job_id in b["jobs"]:
            assert a["jobs"][job_id] == b["jobs"][job_id], f"{queue}: INSPECT {job_id} differs"
        assert a["schedules"] == b["schedules"], f"{queue}: SCHEDULES differ"
        assert a["digest_value"] == b["digest_value"], f"{queue}: DEBUG DIGEST-VALUE differs"
        assert a["ready_order"] == b["ready_order"], f"{queue}: the ready jobs come out in another order"
    if "__digest__" in before:
        assert after["__digest__"] == before["__digest__"], "DEBUG DIGEST differs"
        assert before["__digest__"] != "0" * 40, "DEBUG DIGEST of a non-empty data set is all zeros"


def info_once(r):
    return r.info("once")


def log_has(server, *needles):
    """Lines of the server log containing any of `needles` (case-insensitive)."""
    try:
        with open(server.logfile, errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return []
    low = [n.lower() for n in needles]
    return [ln.rstrip() for ln in lines if any(n in ln.lower() for n in low)]


def module_trouble(server):
    """Log lines that show the module in trouble (panics, failed timer ticks, load failures, crashes)."""
    return log_has(server, "panic", "timer tick failed", "cannot load a queue", "crashed", "assert", "guru meditation",
                   "internal error")


# ---- persistence ----------------------------------------------------------------------------------------------

def shutdown(server, save=False):
    """SHUTDOWN [NO]SAVE sent raw, then waits for the process. (Server.stop() goes through redis-py, whose retries
    after the connection drops add seconds: too slow for tests that watch deadlines across a restart.)"""
    if not server.alive():
        return
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        cmd = b"SAVE" if save else b"NOSAVE"
        sock.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$%d\r\n%s\r\n" % (len(cmd), cmd))
        try:
            sock.recv(1024)
        except OSError:
            pass
        sock.close()
    except OSError:
        pass
    server.proc.wait(timeout=20)


def fast_restart(server):
    """Stops (SHUTDOWN NOSAVE: the AOF is flushed, no RDB is written) and starts again in the same dir and port."""
    shutdown(server)
    server.start()


# ---- persistence (waits) ----------------------------------------------------------------------------------------------

def wait_rewrite_done(r, timeout=20):
    def done():
        p = r.info("persistence")
        return p.get("aof_rewrite_in_progress") == 0 and p.get("aof_rewrite_scheduled") == 0
    wait_until(done, timeout=timeout, interval=0.02, what="AOF rewrite to finish")
    p = r.info("persistence")
    assert p.get("aof_last_bgrewrite_status") == "ok", p


def wait_bgsave_done(r, timeout=20):
    wait_until(lambda: r.info("persistence").get("rdb_bgsave_in_progress") == 0, timeout=timeout, interval=0.02,
               what="BGSAVE to finish")


def aof_files(server):
    """Every AOF file of the server (Redis 7 keeps a multi-part AOF in appendonlydir)."""
    found = []
    for root, _, files in os.walk(server.dir):
        for f in files:
            if ".aof" in f:
                found.append(os.path.join(root, f))
    return sorted(found)


def read_aof(server, part=None):
    data = b""
    for path in aof_files(server):
        if part is None or part in os.path.basename(path):
            with open(path, "rb") as f:
                data += f.read()
    return data


# ---- replication ----------------------------------------------------------------------------------------------

def attach_replica(replica, master, timeout=20):
    rc = replica.client(decode_responses=True)
    rc.execute_command("REPLICAOF", "127.0.0.1", master.port)
    wait_until(lambda: rc.info("replication").get("master_link_status") == "up", timeout=timeout, interval=0.02,
               what="replica link up")
    rc.close()


def repl_offsets(master_r, replica_r):
    m = master_r.info("replication")["master_repl_offset"]
    rinfo = replica_r.info("replication")
    return m, rinfo.get("master_repl_offset"), rinfo.get("slave_repl_offset")


def wait_in_sync(master_r, replica_r, timeout=20, stable_reads=3):
    """Waits until the replica has processed every byte of the master's replication stream, seen equal
    `stable_reads` times in a row at the same offset (1: equal once, for a master that keeps writing)."""
    deadline = time.monotonic() + timeout
    stable = 0
    last = None
    while True:
        m, rm_, rs = repl_offsets(master_r, replica_r)
        if m == rm_ == rs:
            stable = stable + 1 if last == m else 1
            last = m
            if stable >= stable_reads:
                return m
        else:
            stable = 0
        if time.monotonic() > deadline:
            raise AssertionError(f"replica not in sync after {timeout}s: master {m}, replica {rm_}/{rs}")
        time.sleep(0.05)


# ---- a raw pipelining client ----------------------------------------------------------------------------------

class RespPipe(RawClient):
    """Sends batches of commands on one connection and reads their replies; no retries, no hidden reconnects.
    Status replies come back as bytes, errors as RuntimeError values."""

    def __init__(self, port):
        super().__init__(port, timeout=10)

    def _status(self, text):
        return text

    def _error(self, text):
        return RuntimeError(text.decode(errors="replace"))

    def send(self, commands):
        self.sock.sendall(b"".join(encode_command(c) for c in commands))

    def read(self):
        return self._read()

    def run(self, commands, chunk=5000):
        """Sends `commands` in pipelined chunks; returns every reply (bulk strings decoded). Error replies fail."""
        out = []
        for i in range(0, len(commands), chunk):
            part = commands[i:i + chunk]
            self.send(part)
            out += [self.read() for _ in part]
        errors = [x for x in out if isinstance(x, RuntimeError)]
        assert not errors, errors[:3]
        return [x.decode() if isinstance(x, bytes) else x for x in out]


# ---- DUMP payloads ---------------------------------------------------------------------------------------------

def _crc64_table():
    poly = 0x95AC9329AC4BC9B5  # Jones polynomial, reflected (what Redis uses for DUMP payloads)
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc64_table()


def crc64(data, crc=0):
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def split_dump(payload):
    """(body, rdb version bytes, crc) of a DUMP payload; checks that our crc64 matches the server's."""
    body, ver, crc = payload[:-10], payload[-10:-8], struct.unpack("<Q", payload[-8:])[0]
    assert crc64(body + ver) == crc, "crc64 here disagrees with the server's DUMP checksum"
    return body, ver, crc


def make_dump(body, ver):
    """A DUMP payload with a valid checksum around `body` (type byte, module id, module opcodes, EOF)."""
    return body + ver + struct.pack("<Q", crc64(body + ver))


def rdb_len(n):
    """The RDB length encoding."""
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n)


def mod_uint(n):
    return rdb_len(2) + rdb_len(n & 0xFFFFFFFFFFFFFFFF)     # RDB_MODULE_OPCODE_UINT


def mod_sint(n):
    return mod_uint(n & 0xFFFFFFFFFFFFFFFF)                 # SaveSigned stores the two's complement as UINT


def mod_str(b):
    b = b if isinstance(b, bytes) else b.encode()
    return rdb_len(5) + rdb_len(len(b)) + b                 # RDB_MODULE_OPCODE_STRING, raw (uncompressed)


MODULE_EOF = rdb_len(0)


def _read_len(b, i):
    first = b[i]
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, i + 1, False
    if kind == 1:
        return ((first & 0x3F) << 8) | b[i + 1], i + 2, False
    if first == 0x80:
        return struct.unpack(">I", b[i + 1:i + 5])[0], i + 5, False
    if first == 0x81:
        return struct.unpack(">Q", b[i + 1:i + 9])[0], i + 9, False
    return first & 0x3F, i + 1, True                  # a special string encoding


def module_values(payload):
    """The values a DUMP of a queue holds, in order (UINTs as ints, strings as bytes): what rdb_save wrote, so two
    queues' payloads can be compared value by value. Needs `rdbcompression no` (no LZF strings)."""
    out, i = [], 10                                   # type byte, module id
    while i < len(payload) - 10:                      # RDB version and CRC at the end
        op, i, _ = _read_len(payload, i)
        if op == 0:
            break
        if op == 5:
            n, i, special = _read_len(payload, i)
            if special:
                size = {0: 1, 1: 2, 2: 4}.get(n)
                if size is None:
                    raise ValueError("a compressed string: set rdbcompression no")
                out.append(int.from_bytes(payload[i:i + size], "little", signed=True))
                i += size
            else:
                out.append(payload[i:i + n])
                i += n
        else:
            v, i, _ = _read_len(payload, i)
            out.append(v)
    return out


def first_difference(a, b, context=4):
    """Where two value lists part, with a few values either side: a short text for a failure message."""
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y:
            lo = max(0, k - context)
            return f"value {k} of {len(a)}/{len(b)}: {a[lo:k + context]!r} vs {b[lo:k + context]!r}"
    return "equal" if len(a) == len(b) else f"lengths {len(a)} vs {len(b)}, tails {a[-context:]!r} vs {b[-context:]!r}"


def encode_queue_v1(next_seq, totals, jobs, scheds=(), count=None):
    """The module's v1 RDB encoding of a queue, as src/persist/rdb.rs writes it (used to craft payloads).
    `count` overrides the job count written before the jobs."""
    out = [mod_uint(next_seq)] + [mod_uint(t) for t in totals] + [mod_uint(len(jobs) if count is None else count)]
    for j in jobs:
        out += [mod_uint(j["seq"]), mod_uint(j["created"]), mod_uint(j["state"]), mod_uint(j["attempts"]),
                mod_uint(j["retries"]), mod_uint(j["backoff"]), mod_uint(j["lease"]), mod_sint(j["priority"]),
                mod_uint(j["deadline"]), mod_str(j["payload"])]
        flags = j.get("flags", (1 if j.get("id") is not None else 0) | (2 if j.get("error") is not None else 0))
        out.append(mod_uint(flags))
        if j.get("id") is not None:
            out.append(mod_str(j["id"]))
        if j.get("error") is not None:
            out.append(mod_str(j["error"]))
    out.append(mod_uint(len(scheds)))
    for s in scheds:
        out += [mod_str(s["name"]), mod_str(s["spec"]), mod_str(s["tz"]), mod_str(s["payload"]), mod_uint(s["retries"]),
                mod_uint(s["backoff"]), mod_uint(s["lease"]), mod_sint(s["priority"]), mod_uint(s["missed"]),
                mod_uint(s["next"]), mod_uint(s["last"])]
    return b"".join(out)


def encode_queue_v2(next_seq, totals, jobs, scheds=()):
    """The module's v2 RDB encoding (numbers in schema order, signed; a job's retry base after attempts; 8
    totals; the settings last), as src/persist/rdb.rs writes it today."""
    out = [mod_uint(next_seq)] + [mod_sint(t) for t in totals] + [mod_uint(len(jobs))]
    for j in jobs:
        out += [mod_sint(j[f]) for f in ("seq", "created", "state", "attempts", "retry_base", "retries", "backoff",
                                         "lease", "priority", "deadline")] + [mod_str(j["payload"])]
        out.append(mod_uint((1 if j.get("id") is not None else 0) | (2 if j.get("error") is not None else 0)))
        out += [mod_str(j[k]) for k in ("id", "error") if j.get(k) is not None]
    out.append(mod_uint(len(scheds)))
    assert not scheds, "schedules are encoded as in v1; not needed by the callers"
    # The queue's settings (retries, backoff, lease: -1 unset; dead_max, dead_ttl, paused), default here.
    out += [mod_sint(v) for v in (-1, -1, -1, 0, 0, 0)]
    return b"".join(out)


def _varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _zigzag(v):
    v = ((v + (1 << 63)) % (1 << 64)) - (1 << 63)      # as the module's wrapping i64 delta
    return ((v << 1) ^ (v >> 63)) % (1 << 64)


def run_blob(jobs):
    """A v6 run's blob (crates/once-core/src/run.rs): per job, seq and created as deltas from the previous job's,
    since as a delta from its own created (zigzag varints), the custom id's length (0: none) and bytes, then the
    payload's length and bytes."""
    def raw(v):
        return v.encode() if isinstance(v, str) else (v or b"")
    out, seq, created = bytearray(), 0, 0
    for j in jobs:
        payload, cid = raw(j["payload"]), raw(j.get("id"))
        out += _varint(_zigzag(j["seq"] - seq)) + _varint(_zigzag(j["created"] - created))
        out += _varint(_zigzag(j["since"] - j["created"])) + _varint(len(cid)) + cid
        out += _varint(len(payload)) + payload
        seq, created = j["seq"], j["created"]
    return bytes(out)


def encode_queue_v4(next_seq, totals, jobs, version=4):
    """The module's v4 RDB encoding of ready jobs of the default group (src/persist/rdb.rs): v2's job numbers
    plus `since`; 13 settings; an empty event log; two empty histograms; no rate windows or groups of their
    own; the round-robin's order (the default group, by its empty name, when it has a ready job).
    `version=5` writes v5, which for such jobs differs only in 9 totals and 15 settings (KEEP, KEEP-MAX).
    `version=6` writes the jobs as v6 items: each fresh ready job (no error, never reserved) as a run of one,
    ended by ITEM_END (0)."""
    assert len(totals) == (8 if version == 4 else 9)
    out = [mod_uint(next_seq)] + [mod_sint(t) for t in totals]
    if version < 6:
        out.append(mod_uint(len(jobs)))
    for j in jobs:
        fresh = j["state"] == 0 and j["attempts"] == 0 and j.get("error") is None
        if version >= 6 and fresh:
            out += [mod_uint(2), mod_str(b""), mod_sint(j["priority"]), mod_uint(j["retries"]), mod_uint(j["backoff"]),
                    mod_uint(j["lease"]), mod_uint(1), mod_str(run_blob([j]))]
            continue
        if version >= 6:
            out.append(mod_uint(1))
        out += [mod_sint(j[f]) for f in ("seq", "created", "state", "attempts", "retry_base", "retries", "backoff",
                                         "lease", "priority", "deadline", "since")] + [mod_str(j["payload"])]
        out.append(mod_uint((1 if j.get("id") is not None else 0) | (2 if j.get("error") is not None else 0)))
        out += [mod_str(j[k]) for k in ("id", "error") if j.get(k) is not None]
    if version >= 6:
        out.append(mod_uint(0))
    out.append(mod_uint(0))  # schedules
    # retries, backoff, lease (-1: unset), dead_max, dead_ttl, paused, events_max, concurrency, rate n, rate per,
    # group concurrency, group rate n, group rate per
    out += [mod_sint(v) for v in (-1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    if version >= 5:
        out += [mod_sint(0), mod_sint(0)]  # keep, keep_max
    out += [mod_uint(0), mod_uint(0)]  # event log: last id, count
    out += [mod_uint(0)] * (2 * 27)  # wait and run: sum, then 26 buckets
    out += [mod_uint(0), mod_uint(0)]  # the queue's window, groups with limits or windows
    ring = [b""] if jobs else []
    out += [mod_uint(len(ring))] + [mod_str(n) for n in ring]
    return b"".join(out)


def module_header(real_payload, encver=1):
    """The type byte and module id of a real DUMP of a queue (everything before the first module opcode), with
    the module id's encoding version set to `encver` (1: what encode_queue_v1 writes).

    The module id is written as an RDB length (0x81 + 8 bytes, big-endian) right after the type byte
    RDB_TYPE_MODULE_2 (7); its low 10 bits are the encoding version."""
    assert real_payload[0] == 7, f"not a module (v2) value: type byte {real_payload[0]}"
    assert real_payload[1] == 0x81, "module id is not a 64-bit length"
    module_id = struct.unpack(">Q", real_payload[2:10])[0]
    return real_payload[:2] + struct.pack(">Q", (module_id & ~0x3FF) | encver)


def restore_error(r, key, payload, *extra):
    """RESTOREs a payload that must be refused; returns the error text."""
    try:
        r.execute_command("RESTORE", key, 0, payload, *extra)
    except redis.ResponseError as e:
        return str(e)
    raise AssertionError(f"RESTORE of a bad payload ({len(payload)} bytes) was accepted")
