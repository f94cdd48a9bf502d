"""ONCE.LIST ... MATCH (issue 22): a glob (Redis rules, as SCAN MATCH) over each job's id, payload and last error.
A call examines at most 10 x COUNT jobs (10,000 at most), so it may return fewer than COUNT, even none, with a
cursor to go on; "0" only when the walk is done. LIST's cursor guarantee holds: a job that stays in its state for
the whole walk is returned exactly once."""
import time

import pytest
import redis

from helpers import RawClient, reserve_one

CAP = 10_000          # jobs one call examines at most (crates/once-core/src/limits.rs)


def bulk(r, queue, *args):
    return r.execute_command("ONCE.BULK", queue, *args)


def walk(r, queue, state, pattern, count=100, between=None):
    """Every page of a MATCH walk: (ids in order, the cursors returned)."""
    found, cursors, cursor = [], [], "0"
    while True:
        cursor, page = r.execute_command("ONCE.LIST", queue, state, "CURSOR", cursor, "COUNT", count,
                                         "MATCH", pattern)
        assert len(page) <= count
        found += [dict(zip(j[0::2], j[1::2]))["id"] for j in page]
        cursors.append(cursor)
        if cursor == "0":
            return found, cursors
        if between:
            between()


def test_finds_a_payload_among_a_million_jobs_with_bounded_work_per_call(make_server):
    server = make_server()
    r = server.client(decode_responses=True, protocol=2)
    n, per_call, needle_at = 1_000_000, 10_000, 777_777
    t0 = time.monotonic()
    for start in range(0, n, per_call):
        payloads = [f"job-{i:07d}" if i != needle_at else f"needle-{i}" for i in range(start, start + per_call)]
        bulk(r, "big", "PAYLOADS", *payloads)
    fill_s = time.monotonic() - t0
    assert r.execute_command("ONCE.STATS", "big")[1] == n
    r.config_set("slowlog-log-slower-than", 0)
    r.config_set("slowlog-max-len", 1000)
    r.slowlog_reset()
    found, cursors = walk(r, "big", "ready", "needle-*", count=1000)
    entries = [e for e in r.slowlog_get(1000) if str(e["command"]).lower().lstrip("b'\"").startswith("once.list")]
    r.config_set("slowlog-log-slower-than", 10_000)
    assert len(found) == 1 and r.execute_command("ONCE.INSPECT", "big", found[0])[5] == f"needle-{needle_at}"
    # each ready cursor is group:priority:position in one line without gaps: it moves by the jobs examined
    positions = [0] + [int(c.split(":")[2]) for c in cursors[:-1]]
    steps = [b - a for a, b in zip(positions, positions[1:])]
    assert steps and max(steps) <= CAP and len(cursors) >= n // CAP, (max(steps), len(cursors))
    durations = [e["duration"] for e in entries]
    assert len(durations) == len(cursors), (len(durations), len(cursors))
    longest, total = max(durations), sum(durations)
    print(f"\n[{server.kind}] filled {n} jobs by BULK in {fill_s:.1f} s; MATCH walk: {len(cursors)} calls, "
          f"server time {total / 1000:.1f} ms in all, longest call {longest} us, median "
          f"{sorted(durations)[len(durations) // 2]} us")
    assert longest < total / 4, "one call did a large part of the walk's work"
    r.close()


def test_a_call_examines_at_most_ten_jobs_per_count(r, key):
    bulk(r, key, "PAYLOADS", *[f"miss-{i}" for i in range(1000)])
    cursor, page = r.execute_command("ONCE.LIST", key, "ready", "COUNT", 5, "MATCH", "nothing*")
    assert page == [] and cursor != "0", "fewer than COUNT (none) with a cursor to go on"
    found, cursors = walk(r, key, "ready", "nothing*", count=5)
    assert found == [] and len(cursors) == 1000 // 50
    found, cursors = walk(r, key, "ready", "miss-99?", count=1000)
    assert len(found) == 10 and len(cursors) == 1


def test_matches_on_id_payload_and_last_error(r, key):
    by_id = r.execute_command("ONCE.PUSH", key, "plain", "ID", "order:17")
    by_payload = r.execute_command("ONCE.PUSH", key, '{"user": "ann", "n": 3}')
    r.execute_command("ONCE.PUSH", key, "other", "PRIORITY", 10)
    failed, _, attempt = reserve_one(r, key)
    assert r.execute_command("ONCE.NACK", key, failed, "ATTEMPT", attempt, "ERROR", "smtp timeout: 4.4.1", "DEAD") == 1
    late = r.execute_command("ONCE.PUSH", key, "later ann", "DELAY", 60_000)
    assert walk(r, key, "ready", "order:1?")[0] == [by_id]
    assert walk(r, key, "ready", '*"ann"*')[0] == [by_payload]
    assert walk(r, key, "dead", "*smtp timeout*")[0] == [failed]
    assert walk(r, key, "dead", "other")[0] == [failed], "the payload of a dead job too"
    assert walk(r, key, "ready", "*smtp*")[0] == []
    assert walk(r, key, "delayed", "*ann")[0] == [late]
    assert walk(r, key, "ready", "*")[0] == [by_id, by_payload]
    _, page = r.execute_command("ONCE.LIST", key, "ready", "MATCH", "*ann*", "WITHPAYLOADS")
    assert dict(zip(page[0][0::2], page[0][1::2]))["payload"] == '{"user": "ann", "n": 3}'


def test_glob_rules_as_scan_match(r, key):
    payloads = ["a*b", "a?b", "axb", "[x]", "abc", "abd", "abe", "a\\b", "h\u00e9llo"]
    ids = bulk(r, key, "IDS", *[f"id{i}" for i in range(len(payloads))], "PAYLOADS", *payloads)
    by = dict(zip(payloads, ids))

    def hits(pattern):
        return {p for p, i in by.items() if i in walk(r, key, "ready", pattern)[0]}

    assert hits("a?b") == {"a*b", "a?b", "axb", "a\\b"}
    assert hits("a\\*b") == {"a*b"} and hits("a\\?b") == {"a?b"} and hits("a\\\\b") == {"a\\b"}
    assert hits("ab[cd]") == {"abc", "abd"} and hits("ab[^c]") == {"abd", "abe"}
    assert hits("ab[c-d]") == {"abc", "abd"} and hits("ab[e-d]") == {"abd", "abe"}
    assert hits("\\[x\\]") == {"[x]"} and hits("[[]x]") == {"[x]"}
    assert hits("h?llo") == set() and hits("h??llo") == {"h\u00e9llo"}, "bytes, not characters"
    assert hits("id[0-2]") == {"a*b", "a?b", "axb"}
    assert hits("A*") == set(), "case matters"


def test_the_cursor_goes_on_across_pushes_and_returns_each_job_once(r, key):
    originals = []
    for i in range(300):
        payload = f"hit-{i}" if i % 3 == 0 else f"miss-{i}"
        originals.append((r.execute_command("ONCE.PUSH", key, payload, "PRIORITY", (i * 7) % 3), payload))
    hits = [i for i, p in originals if p.startswith("hit-")]
    pushed = []

    def push_more():
        k = len(pushed)
        pushed.append(r.execute_command("ONCE.PUSH", key, f"hit-new-{k}", "PRIORITY", k % 3))
        r.execute_command("ONCE.PUSH", key, f"miss-new-{k}", "PRIORITY", 2 - k % 3)

    found, cursors = walk(r, key, "ready", "hit-*", count=5, between=push_more)
    assert len(found) == len(set(found)), "a job returned twice"
    assert set(hits) <= set(found), "a job that stayed ready was missed"
    assert set(found) <= set(hits) | set(pushed)
    assert len(cursors) > 300 // 50, "every call examined at most 50 jobs"
    # in the order RESERVE serves them: priority first, then first come first served
    order = [g[0] for g in r.execute_command("ONCE.RESERVE", key, "COUNT", 10_000)]
    assert [i for i in order if i in set(hits)] == [i for i in found if i in set(hits)]


@pytest.mark.parametrize("args,message", [
    (["MATCH"], "ERR option 'MATCH' needs a value"),
    (["MATCH", "a", "MATCH", "b"], "ERR option 'MATCH' given twice"),
    (["MATCH", "x" * 1025], "ERR MATCH pattern is 1025 bytes, over 1024"),
])
def test_bad_match_is_refused(server, key, args, message):
    c = RawClient(server.port)
    try:
        assert c.error("ONCE.LIST", key, "ready", *args) == message
    finally:
        c.close()


def test_a_pattern_of_the_longest_length_is_accepted(r, key):
    r.execute_command("ONCE.PUSH", key, "x" * 1024)
    assert len(walk(r, key, "ready", "x" * 1024)[0]) == 1
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.set(key + ":s", "v")
        r.execute_command("ONCE.LIST", key + ":s", "ready", "MATCH", "*")


def test_large_payloads_end_a_call_early_and_the_walk_goes_on(r, key):
    """The matcher's steps are budgeted too (4,194,304 per call, a step per byte at least): ten 1 MB payloads take
    more than one call even with COUNT 10, and the walk still finds the one that matches."""
    payloads = ["a" * 1_000_000 for _ in range(9)] + ["a" * 999_999 + "z"]
    ids = bulk(r, key, "PAYLOADS", *payloads)
    found, cursors = walk(r, key, "ready", "*z", count=10)
    assert found == [ids[-1]] and len(cursors) >= 2, cursors

