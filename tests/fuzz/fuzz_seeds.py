"""The fuzzer's starting points: queues in many states made by real commands on a real server (a master, whose
timer runs), dumped. Every state a queue can hold shows in one of them: jobs ready, delayed, reserved, retrying
and dead, custom ids, error texts, binary payloads, BULK jobs, groups with limits of their own and rate windows,
the round-robin's order, schedules, the event log, both latency histograms, every setting, a paused queue.
Nothing here fires or expires during a run: delays, leases and schedules are far away.
"""
from durability_helpers import FAR, NEVER_CRON, fill_every_state
from helpers import push, reserve

MINUTE = 60_000


def _every_state(r, q):
    fill_every_state(r, q, tag="f")


def _paused_empty(r, q):
    r.execute_command("ONCE.PAUSE", q)


def _settings(r, q):
    r.execute_command("ONCE.CONFIGURE", q, "RETRIES", 7, "BACKOFF", 2500, "LEASE", 90_000, "DEAD-MAX", 10,
                      "DEAD-TTL", 3_600_000, "EVENTS-MAX", 5, "CONCURRENCY", 4, "RATE", 100, "PER", MINUTE,
                      "GROUP-CONCURRENCY", 2, "GROUP-RATE", 9, "PER", 1000)
    push(r, q, "a")
    push(r, q, "b", "DELAY", FAR)
    r.execute_command("ONCE.PAUSE", q)


def _events_and_histograms(r, q):
    r.execute_command("ONCE.CONFIGURE", q, "EVENTS-MAX", 40)
    for i in range(8):
        push(r, q, f"e{i}", "ID", f"ev-{i}", "RETRIES", 2)
    got = reserve(r, q, "COUNT", 6, "LEASE", FAR // 100)
    r.execute_command("ONCE.ACK", q, got[0][0], got[1][0])
    r.execute_command("ONCE.NACK", q, got[2][0], "ERROR", "try again", "DELAY", FAR)
    r.execute_command("ONCE.NACK", q, got[3][0], "ERROR", "gave up", "DEAD")
    r.execute_command("ONCE.RETRY", q, got[3][0])
    r.execute_command("ONCE.CANCEL", q, "ev-7")
    r.execute_command("ONCE.PAUSE", q)
    r.execute_command("ONCE.RESUME", q)


def _groups(r, q):
    r.execute_command("ONCE.CONFIGURE", q, "GROUP-CONCURRENCY", 3, "GROUP-RATE", 4, "PER", FAR // 1000)
    for g in ("t0", "t1", "t2", "g" * 256):
        for i in range(3):
            push(r, q, f"{g[:4]}-{i}", "GROUP", g, "PRIORITY", i)
    push(r, q, "default-0")
    r.execute_command("ONCE.GROUP", q, "t1", "CONCURRENCY", 1, "RATE", 2, "PER", FAR // 1000)
    r.execute_command("ONCE.GROUP", q, "idle", "CONCURRENCY", 5)
    reserve(r, q, "COUNT", 7, "LEASE", FAR // 100)


def _rate_windows(r, q):
    r.execute_command("ONCE.CONFIGURE", q, "RATE", 50, "PER", FAR // 1000, "GROUP-RATE", 3, "PER", FAR // 1000)
    for i in range(6):
        push(r, q, f"w{i}", "GROUP", f"w{i % 2}")
    got = reserve(r, q, "COUNT", 4, "LEASE", FAR // 100)
    r.execute_command("ONCE.ACK", q, *[g[0] for g in got])


def _bulk(r, q):
    r.execute_command("ONCE.BULK", q, "PRIORITY", 3, "RETRIES", 1, "PAYLOADS", "b0", "b1", "b2")
    r.execute_command("ONCE.BULK", q, "DELAY", FAR, "GROUP", "bulky", "LEASE", 5000, "IDS", "bid-0", "bid-1",
                      "PAYLOADS", "c0", "c1")


def _schedules(r, q):
    r.execute_command("ONCE.SCHEDULE", q, "yearly", NEVER_CRON, "y", "TZ", "Pacific/Kiritimati", "MISSED", "skip")
    r.execute_command("ONCE.SCHEDULE", q, "leap", "0 0 29 2 *", "l", "RETRIES", 0, "LEASE", 1000, "PRIORITY", -5)
    r.execute_command("ONCE.SCHEDULE", q, "secs", "0 0 0 1 1 *", "s", "BACKOFF", 10)
    r.execute_command("ONCE.SCHEDULE", q, "\u00e9t\u00e9", "@every 1d", "e", "TZ", "America/St_Johns")
    push(r, q, "beside the schedules")


def _many(r, q):
    for i in range(120):
        push(r, q, f"m{i}", "PRIORITY", i % 5 - 2, *(("ID", f"m-{i}") if i % 7 == 0 else ()))
    got = reserve(r, q, "COUNT", 20, "LEASE", FAR // 100)
    r.execute_command("ONCE.ACK", q, *[g[0] for g in got[:10]])


def _odd_values(r, q):
    push(r, q, "\x00\xff\r\n", "ID", "i" * 256)
    push(r, q, "", "ID", "\x00 id \r\n")
    push(r, q, "z" * 3000, "PRIORITY", 1_000_000, "RETRIES", 1000, "BACKOFF", 315_360_000_000)
    push(r, q, "low", "PRIORITY", -1_000_000, "LEASE", 604_800_000)
    job_id = reserve(r, q, "LEASE", FAR // 100)[0][0]
    r.execute_command("ONCE.NACK", q, job_id, "ERROR", "e" * 4096 + "cut", "DEAD")


BUILDERS = {
    "every-state": _every_state,
    "paused-empty": _paused_empty,
    "settings": _settings,
    "events-histograms": _events_and_histograms,
    "groups": _groups,
    "rate-windows": _rate_windows,
    "bulk": _bulk,
    "schedules": _schedules,
    "many": _many,
    "odd-values": _odd_values,
}


def build(server):
    """{name: DUMP payload} of every seed queue, made on `server` (a master) and deleted again."""
    r = server.client(decode_responses=True, protocol=2)
    rb = server.client(protocol=2)
    dumps = {}
    try:
        for name, make in BUILDERS.items():
            key = f"seed:{name}"
            make(r, key)
            dumps[name] = rb.dump(key)
            assert dumps[name], f"seed {name} made no queue"
            r.delete(key)
    finally:
        r.close()
        rb.close()
    return dumps
