"""One record per client command (issue 20): whatever a command changes reaches a replica and its AOF as exactly one
entry, never a MULTI/EXEC of several (an ack-and-fetch is an ACK, perhaps a promotion, and a reservation: one
`ONCE._MANY` record); and the replica's AOF alone rebuilds the master's digest."""
from durability_helpers import FAR, NEVER_CRON, digest_value, read_aof, wait_in_sync, wait_rewrite_done
from helpers import push, reserve, reserve_one
from test_replica_aof import restart_from_own_aof, start_pair

LONG = 600_000  # ms: a lease no test outlives


def aof_entries(data):
    """The commands of an AOF (RESP arrays of bulk strings), each as a list of bytes."""
    out, i = [], 0
    while i < len(data):
        assert data[i:i + 1] == b"*", data[i:i + 40]
        end = data.index(b"\r\n", i)
        n, i = int(data[i + 1:end]), end + 2
        args = []
        for _ in range(n):
            end = data.index(b"\r\n", i)
            size = int(data[i + 1:end])
            args.append(data[end + 2:end + 2 + size])
            i = end + 2 + size + 2
        out.append(args)
    return out


def workload(m):
    """Client commands that each change something (nothing left to the timer: every deadline is far). Returns how
    many and how many of them were ack-and-fetch."""
    n = 0

    def run(*args, expect=None):
        nonlocal n
        got = m.execute_command(*args)
        if expect is not None:
            assert got == expect, (args, got)
        n += 1
        return got

    for i in range(6):
        run("ONCE.PUSH", "q", f"job-{i}", "ID", f"j{i}", "KEEP", FAR)
    run("ONCE.PUSH", "q", "later", "ID", "later", "DELAY", FAR)
    run("ONCE.BULK", "q", "PRIORITY", -5, "PAYLOADS", "b1", "b2")
    first = run("ONCE.RESERVE", "q", "LEASE", LONG)[0][0]
    fetches = 0
    for _ in range(3):                       # ack-and-fetch: the previous job's ACK and the next reservation
        got = run("ONCE.RESERVE", "q", "LEASE", LONG, "ACK", first, "RESULT", f"done {first}")
        first = got[0][0]
        fetches += 1
    run("ONCE.PROGRESS", "q", first, "half")
    run("ONCE.EXTEND", "q", first, LONG)
    run("ONCE.ACK", "q", first, "RESULT", "ok", expect=1)
    a, _, att = reserve_one(m, "q", "LEASE", LONG)
    n += 1
    run("ONCE.NACK", "q", a, "ATTEMPT", att, "ERROR", "boom", "DEAD", expect=1)
    run("ONCE.RETRY", "q", a, expect=1)
    b, _, _ = reserve_one(m, "q", "LEASE", LONG)
    n += 1
    run("ONCE.CANCEL", "q", b, expect=1)
    run("ONCE.CONFIGURE", "q", "KEEP-MAX", 100, "EVENTS-MAX", 50)
    run("ONCE.PAUSE", "q")
    run("ONCE.RESUME", "q")
    run("ONCE.GROUP", "q", "tenant", "CONCURRENCY", 2)
    run("ONCE.SCHEDULE", "q", "yearly", NEVER_CRON, "tick")
    run("ONCE.UNSCHEDULE", "q", "yearly", expect=1)
    got = reserve(m, "q", "COUNT", 2, "LEASE", LONG)
    n += 1
    pairs = [x for g in got for x in (g[0], g[2])]
    run("ONCE.RESERVE", "q", "LEASE", LONG, "ACKS", len(got), *pairs)
    run("ONCE.PURGE", "q", "completed")
    return n, fetches


def test_each_client_command_is_one_entry_in_the_replicas_aof(make_server):
    master, replica = start_pair(make_server)
    m = master.client(decode_responses=True, protocol=2)
    r = replica.client(decode_responses=True, protocol=2)
    wait_rewrite_done(r)                      # the rewrite a replica starts after its first sync: the incr file is new
    wait_in_sync(m, r, stable_reads=1)
    before = len([e for e in aof_entries(read_aof(replica, part="incr")) if e[0].upper() != b"SELECT"])
    commands, fetches = workload(m)
    wait_in_sync(m, r, stable_reads=2)
    entries = [e for e in aof_entries(read_aof(replica, part="incr")) if e[0].upper() != b"SELECT"][before:]
    names = [e[0].upper() for e in entries]
    assert b"MULTI" not in names and b"EXEC" not in names, names
    assert len(entries) == commands, (commands, [n.decode() for n in names])
    assert names.count(b"ONCE._MANY") >= fetches, names
    want = digest_value(m, "q")
    r = restart_from_own_aof(replica, as_replica_of_nobody=True)
    assert digest_value(r, "q") == want, "the replica's own AOF does not rebuild the master's queue"


def test_many_is_refused_from_a_client(make_server):
    s = make_server()
    r = s.client(decode_responses=True, protocol=2)
    try:
        r.execute_command("ONCE._MANY", "q", 1, 3, "ONCE.PUSH", "q", "x")
        raise AssertionError("ONCE._MANY ran for a client")
    except Exception as e:  # noqa: BLE001 - the server's error text is what is checked
        assert "replayed from a master or an AOF only" in str(e), e
    assert r.exists("q") == 0
