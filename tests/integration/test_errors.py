"""Bad inputs and their exact error replies (docs/contract-notes.md); nothing may be half-applied.

Every case runs against a queue holding one ready job ("waiting") and one reserved job ("held"), so that a NACK or
EXTEND that wrongly went ahead would show in STATS or INSPECT. `Q` in a case is replaced by that queue's key.
"""
import pytest

from helpers import RawClient, inspect, push, reserve_one, stats

Q = object()
H = "held"
MAX = 9223372036854775807


def arity(cmd):
    # The command docs declare each arity, so the server itself refuses a wrong count, naming the command as
    # it was registered (lower case, as Redis names its own).
    return f"ERR wrong number of arguments for '{cmd.lower()}' command"


def between(name, lo, hi, got):
    return f"ERR {name} must be between {lo} and {hi}, got {got}"


def integer(name, got):
    return f"ERR {name} must be an integer, got '{got}'"


CASES = [
    # wrong arity, every command
    (["ONCE.PUSH"], arity("once.push")),
    (["ONCE.PUSH", Q], arity("once.push")),
    (["ONCE.RESERVE"], arity("once.reserve")),
    (["ONCE.ACK"], arity("once.ack")),
    (["ONCE.ACK", Q], arity("once.ack")),
    (["ONCE.NACK"], arity("once.nack")),
    (["ONCE.NACK", Q], arity("once.nack")),
    (["ONCE.EXTEND", Q], arity("once.extend")),
    (["ONCE.EXTEND", Q, H], arity("once.extend")),
    (["ONCE.INSPECT", Q], arity("once.inspect")),
    (["ONCE.INSPECT", Q, H, "extra"], arity("once.inspect")),
    (["ONCE.STATS"], arity("once.stats")),
    (["ONCE.STATS", Q, "extra"], arity("once.stats")),
    (["once.push"], arity("once.push")),
    # unknown option (echoed as given)
    (["ONCE.PUSH", Q, "p", "FOO", "1"], "ERR unknown option 'FOO'"),
    (["ONCE.PUSH", Q, "p", "foo"], "ERR unknown option 'foo'"),
    (["ONCE.RESERVE", Q, "FOO", "1"], "ERR unknown option 'FOO'"),
    (["ONCE.RESERVE", Q, "COUNT", "1", "Bar"], "ERR unknown option 'Bar'"),
    (["ONCE.NACK", Q, H, "FOO"], "ERR unknown option 'FOO'"),
    (["ONCE.NACK", Q, H, "DEAD", "1"], "ERR unknown option '1'"),
    (["ONCE.EXTEND", Q, H, "1000", "FOO", "1"], "ERR unknown option 'FOO'"),
    # repeated option (named in upper case)
    (["ONCE.PUSH", Q, "p", "DELAY", "1", "DELAY", "2"], "ERR option 'DELAY' given twice"),
    (["ONCE.PUSH", Q, "p", "delay", "1", "Delay", "2"], "ERR option 'DELAY' given twice"),
    (["ONCE.PUSH", Q, "p", "ID", "a", "ID", "b"], "ERR option 'ID' given twice"),
    (["ONCE.PUSH", Q, "p", "AT", "1", "AT", "2"], "ERR option 'AT' given twice"),
    (["ONCE.PUSH", Q, "p", "RETRIES", "1", "RETRIES", "1"], "ERR option 'RETRIES' given twice"),
    (["ONCE.PUSH", Q, "p", "BACKOFF", "1", "BACKOFF", "1"], "ERR option 'BACKOFF' given twice"),
    (["ONCE.PUSH", Q, "p", "LEASE", "1", "LEASE", "1"], "ERR option 'LEASE' given twice"),
    (["ONCE.PUSH", Q, "p", "PRIORITY", "1", "PRIORITY", "1"], "ERR option 'PRIORITY' given twice"),
    (["ONCE.RESERVE", Q, "COUNT", "1", "COUNT", "2"], "ERR option 'COUNT' given twice"),
    (["ONCE.RESERVE", Q, "LEASE", "1", "lease", "2"], "ERR option 'LEASE' given twice"),
    (["ONCE.RESERVE", Q, "BLOCK", "1", "BLOCK", "2"], "ERR option 'BLOCK' given twice"),
    (["ONCE.NACK", Q, H, "ERROR", "a", "ERROR", "b"], "ERR option 'ERROR' given twice"),
    (["ONCE.NACK", Q, H, "ATTEMPT", "1", "ATTEMPT", "1"], "ERR option 'ATTEMPT' given twice"),
    (["ONCE.NACK", Q, H, "DELAY", "1", "DELAY", "1"], "ERR option 'DELAY' given twice"),
    (["ONCE.NACK", Q, H, "DEAD", "dead"], "ERR option 'DEAD' given twice"),
    (["ONCE.EXTEND", Q, H, "1000", "ATTEMPT", "1", "ATTEMPT", "1"], "ERR option 'ATTEMPT' given twice"),
    # option without its value
    (["ONCE.PUSH", Q, "p", "DELAY"], "ERR option 'DELAY' needs a value"),
    (["ONCE.PUSH", Q, "p", "id"], "ERR option 'ID' needs a value"),
    (["ONCE.PUSH", Q, "p", "RETRIES", "1", "PRIORITY"], "ERR option 'PRIORITY' needs a value"),
    (["ONCE.RESERVE", Q, "COUNT"], "ERR option 'COUNT' needs a value"),
    (["ONCE.RESERVE", Q, "LEASE"], "ERR option 'LEASE' needs a value"),
    (["ONCE.RESERVE", Q, "BLOCK"], "ERR option 'BLOCK' needs a value"),
    (["ONCE.RESERVE", Q, "ACK"], "ERR option 'ACK' needs a value"),
    (["ONCE.NACK", Q, H, "ERROR"], "ERR option 'ERROR' needs a value"),
    (["ONCE.NACK", Q, H, "attempt"], "ERR option 'ATTEMPT' needs a value"),
    (["ONCE.NACK", Q, H, "DELAY"], "ERR option 'DELAY' needs a value"),
    (["ONCE.EXTEND", Q, H, "1000", "ATTEMPT"], "ERR option 'ATTEMPT' needs a value"),
    # not an integer
    (["ONCE.PUSH", Q, "p", "DELAY", "abc"], integer("DELAY", "abc")),
    (["ONCE.PUSH", Q, "p", "delay", "1.5"], integer("DELAY", "1.5")),
    (["ONCE.PUSH", Q, "p", "AT", "soon"], integer("AT", "soon")),
    (["ONCE.PUSH", Q, "p", "RETRIES", "3x"], integer("RETRIES", "3x")),
    (["ONCE.PUSH", Q, "p", "BACKOFF", ""], integer("BACKOFF", "")),
    (["ONCE.PUSH", Q, "p", "LEASE", "ten"], integer("LEASE", "ten")),
    (["ONCE.PUSH", Q, "p", "PRIORITY", "high"], integer("PRIORITY", "high")),
    (["ONCE.RESERVE", Q, "COUNT", "many"], integer("COUNT", "many")),
    (["ONCE.RESERVE", Q, "BLOCK", "x"], integer("BLOCK", "x")),
    (["ONCE.RESERVE", Q, "LEASE", "1e3"], integer("LEASE", "1e3")),
    (["ONCE.NACK", Q, H, "ATTEMPT", "one"], integer("ATTEMPT", "one")),
    (["ONCE.NACK", Q, H, "DELAY", "abc"], integer("DELAY", "abc")),
    (["ONCE.EXTEND", Q, H, "x"], integer("ms", "x")),
    (["ONCE.EXTEND", Q, H, "1000", "ATTEMPT", "z"], integer("ATTEMPT", "z")),
    # negative
    (["ONCE.PUSH", Q, "p", "DELAY", "-1"], between("DELAY", 0, 315360000000, -1)),
    (["ONCE.PUSH", Q, "p", "AT", "-1"], between("AT", 0, MAX, -1)),
    (["ONCE.PUSH", Q, "p", "RETRIES", "-1"], between("RETRIES", 0, 1000, -1)),
    (["ONCE.PUSH", Q, "p", "BACKOFF", "-5"], between("BACKOFF", 0, 315360000000, -5)),
    (["ONCE.PUSH", Q, "p", "LEASE", "-1"], between("LEASE", 1, 604800000, -1)),
    (["ONCE.RESERVE", Q, "COUNT", "-1"], between("COUNT", 1, 10000, -1)),
    (["ONCE.RESERVE", Q, "BLOCK", "-1"], between("BLOCK", 0, 2147483647, -1)),
    (["ONCE.RESERVE", Q, "LEASE", "-1"], between("LEASE", 1, 604800000, -1)),
    (["ONCE.NACK", Q, H, "ATTEMPT", "-1"], between("ATTEMPT", 1, MAX, -1)),
    (["ONCE.NACK", Q, H, "DELAY", "-1"], between("DELAY", 0, 315360000000, -1)),
    (["ONCE.EXTEND", Q, H, "-1"], between("ms", 1, 604800000, -1)),
    (["ONCE.EXTEND", Q, H, "1000", "ATTEMPT", "-1"], between("ATTEMPT", 1, MAX, -1)),
    # out of range, every ranged option, both ends
    (["ONCE.PUSH", Q, "p", "DELAY", "315360000001"], between("DELAY", 0, 315360000000, 315360000001)),
    (["ONCE.PUSH", Q, "p", "RETRIES", "1001"], between("RETRIES", 0, 1000, 1001)),
    (["ONCE.PUSH", Q, "p", "BACKOFF", "315360000001"], between("BACKOFF", 0, 315360000000, 315360000001)),
    (["ONCE.PUSH", Q, "p", "LEASE", "0"], between("LEASE", 1, 604800000, 0)),
    (["ONCE.PUSH", Q, "p", "LEASE", "604800001"], between("LEASE", 1, 604800000, 604800001)),
    (["ONCE.PUSH", Q, "p", "PRIORITY", "-1000001"], between("PRIORITY", -1000000, 1000000, -1000001)),
    (["ONCE.PUSH", Q, "p", "PRIORITY", "1000001"], between("PRIORITY", -1000000, 1000000, 1000001)),
    (["ONCE.RESERVE", Q, "COUNT", "0"], between("COUNT", 1, 10000, 0)),
    (["ONCE.RESERVE", Q, "COUNT", "10001"], between("COUNT", 1, 10000, 10001)),
    (["ONCE.RESERVE", Q, "LEASE", "0"], between("LEASE", 1, 604800000, 0)),
    (["ONCE.RESERVE", Q, "LEASE", "604800001"], between("LEASE", 1, 604800000, 604800001)),
    (["ONCE.RESERVE", Q, "BLOCK", "2147483648"], between("BLOCK", 0, 2147483647, 2147483648)),
    (["ONCE.NACK", Q, H, "ATTEMPT", "0"], between("ATTEMPT", 1, MAX, 0)),
    (["ONCE.NACK", Q, H, "DELAY", "315360000001"], between("DELAY", 0, 315360000000, 315360000001)),
    (["ONCE.EXTEND", Q, H, "0"], between("ms", 1, 604800000, 0)),
    (["ONCE.EXTEND", Q, H, "604800001"], between("ms", 1, 604800000, 604800001)),
    (["ONCE.EXTEND", Q, H, "1000", "ATTEMPT", "0"], between("ATTEMPT", 1, MAX, 0)),
    # exclusive options
    (["ONCE.PUSH", Q, "p", "DELAY", "1", "AT", "1"], "ERR DELAY and AT cannot be used together"),
    (["ONCE.PUSH", Q, "p", "AT", "1", "DELAY", "1"], "ERR DELAY and AT cannot be used together"),
    (["ONCE.NACK", Q, H, "DELAY", "1", "DEAD"], "ERR DELAY and DEAD cannot be used together"),
    (["ONCE.NACK", Q, H, "DEAD", "DELAY", "1"], "ERR DELAY and DEAD cannot be used together"),
    # ids
    (["ONCE.PUSH", Q, "p", "ID", ""], "ERR ID must be 1 to 256 bytes"),
    (["ONCE.PUSH", Q, "p", "ID", "x" * 257], "ERR ID must be 1 to 256 bytes"),
]


def case_id(case):
    args, _ = case
    text = " ".join("Q" if a is Q else (a if len(a) < 20 else a[:8] + "...") for a in args)
    return text or "empty"


@pytest.fixture
def prepared(server, r, key):
    push(r, key, "waiting", "ID", "waiting")
    push(r, key, "held", "ID", H, "PRIORITY", 1)
    assert reserve_one(r, key)[0] == H
    snapshot = (stats(r, key), inspect(r, key, H), inspect(r, key, "waiting"))
    raw = RawClient(server.port)
    yield raw, snapshot
    raw.close()


def assert_untouched(r, key, snapshot):
    assert (stats(r, key), inspect(r, key, H), inspect(r, key, "waiting")) == snapshot
    assert r.ping() is True


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_bad_input_exact_error(r, key, prepared, case):
    raw, snapshot = prepared
    args, expected = case
    args = [key if a is Q else a for a in args]
    assert raw.error(*args) == expected
    assert raw.call("PING") == ("status", "PONG")
    assert_untouched(r, key, snapshot)


@pytest.mark.parametrize("case", [c for c in CASES if c[0][0].upper() == "ONCE.PUSH" and Q in c[0]],
                         ids=lambda c: case_id(c))
def test_bad_push_does_not_create_the_key(server, r, key, case):
    raw = RawClient(server.port)
    args, expected = case
    assert raw.error(*[key if a is Q else a for a in args]) == expected
    raw.close()
    assert r.exists(key) == 0


def test_payload_over_the_limit(make_server, key):
    s = make_server(module_args=["max-payload-bytes", 100])
    r = s.client(decode_responses=True)
    raw = RawClient(s.port)
    assert push(r, key, "x" * 100, "ID", "fits") == "fits"
    before = stats(r, key)
    assert raw.error("ONCE.PUSH", key, "x" * 101) == \
        "ERR payload is 101 bytes, over the limit of 100 (once.max-payload-bytes)"
    assert raw.error("ONCE.PUSH", key, "y" * 5000, "ID", "big") == \
        "ERR payload is 5000 bytes, over the limit of 100 (once.max-payload-bytes)"
    assert raw.error("ONCE.PUSH", "other-key", "x" * 101) == \
        "ERR payload is 101 bytes, over the limit of 100 (once.max-payload-bytes)"
    assert stats(r, key) == before
    assert inspect(r, key, "big") is None
    assert r.exists("other-key") == 0
    assert raw.call("PING") == ("status", "PONG")
    raw.close()
