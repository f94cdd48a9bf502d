"""Command docs, flags, key specs and ACLs: what redis-cli, COMMAND DOCS, cluster clients and ACL rules read.

The module builds its docs and its option parser from one table (src/commands/spec.rs); these tests check the
docs against the contract and then against the parser itself, so the two cannot drift apart unnoticed."""
import pytest
import redis

from helpers import as_map, push, stats

PUBLIC = ["ONCE.PUSH", "ONCE.BULK", "ONCE.RESERVE", "ONCE.ACK", "ONCE.NACK", "ONCE.EXTEND", "ONCE.RETRY", "ONCE.CANCEL",
          "ONCE.INSPECT", "ONCE.STATS", "ONCE.SCHEDULE", "ONCE.UNSCHEDULE", "ONCE.SCHEDULES", "ONCE.LIST",
          "ONCE.PURGE", "ONCE.PAUSE", "ONCE.RESUME", "ONCE.CONFIGURE", "ONCE.EVENTS", "ONCE.HISTOGRAM", "ONCE.GROUP", "ONCE.GROUPS",
          "ONCE.RPUSH", "ONCE.LPUSH", "ONCE.ADOPT", "ONCE.RESULT", "ONCE.CALL", "ONCE.PROGRESS", "ONCE.AFTER", "ONCE.DEPS"]
INTERNAL = ["ONCE._JOB", "ONCE._RESERVE", "ONCE._FAIL", "ONCE._LEASE", "ONCE._PROMOTE", "ONCE._META",
            "ONCE._SCHED", "ONCE._FIRED", "ONCE._SETTINGS", "ONCE._DROP", "ONCE._AT", "ONCE._EVENTS", "ONCE._HIST",
            "ONCE._GROUP", "ONCE._WINDOW", "ONCE._RING", "ONCE._SWEEP", "ONCE._BULK", "ONCE._TIMED",
            "ONCE._NOTIFY", "ONCE._BACKLOG"]

# The option tokens of the README's command reference.
TOKENS = {
    "ONCE.PUSH": {"ID", "DELAY", "AT", "RETRIES", "BACKOFF", "LEASE", "PRIORITY", "GROUP", "KEEP", "TTL", "DROP",
                  "AFTER", "ON-FAIL"},
    "ONCE.BULK": {"DELAY", "AT", "RETRIES", "BACKOFF", "LEASE", "PRIORITY", "GROUP", "IDS", "PAYLOADS"},
    "ONCE.RESERVE": {"COUNT", "BLOCK", "LEASE", "ACK", "ATTEMPT", "RESULT", "ACKS", "WITHACK", "ALSO"},
    "ONCE.ACK": {"ATTEMPT", "RESULT", "ACKS"},
    "ONCE.NACK": {"ATTEMPT", "ERROR", "DELAY", "DEAD"},
    "ONCE.EXTEND": {"ATTEMPT"},
    "ONCE.RETRY": {"ALL"}, "ONCE.CANCEL": set(), "ONCE.INSPECT": set(), "ONCE.STATS": set(),
    "ONCE.SCHEDULE": {"RETRIES", "BACKOFF", "LEASE", "PRIORITY", "TZ", "MISSED"},
    "ONCE.UNSCHEDULE": set(), "ONCE.SCHEDULES": set(),
    "ONCE.LIST": {"CURSOR", "COUNT", "WITHPAYLOADS", "MATCH"}, "ONCE.PURGE": set(), "ONCE.PAUSE": set(), "ONCE.RESUME": set(),
    "ONCE.CONFIGURE": {"RETRIES", "BACKOFF", "LEASE", "DEAD-MAX", "DEAD-TTL", "EVENTS-MAX", "CONCURRENCY", "RATE",
                       "PER", "GROUP-CONCURRENCY", "GROUP-RATE", "KEEP", "KEEP-MAX"},
    "ONCE.EVENTS": {"AFTER", "COUNT", "BLOCK"}, "ONCE.HISTOGRAM": set(),
    "ONCE.GROUP": {"CONCURRENCY", "RATE", "PER", "RESET"}, "ONCE.GROUPS": {"CURSOR", "COUNT"},
    "ONCE.RPUSH": set(), "ONCE.LPUSH": set(), "ONCE.ADOPT": set(),
    "ONCE.RESULT": {"BLOCK"}, "ONCE.PROGRESS": {"ATTEMPT"}, "ONCE.AFTER": set(), "ONCE.DEPS": {"FROM", "COUNT"},
    # CALL takes PUSH's options, then TIMEOUT (the handler needs it; the docs call it optional) and CANCEL.
    "ONCE.CALL": {"ID", "DELAY", "AT", "RETRIES", "BACKOFF", "LEASE", "PRIORITY", "GROUP", "KEEP", "TTL", "DROP",
                  "AFTER", "ON-FAIL", "TIMEOUT", "CANCEL"},
}
# Commands whose keys include AFTER's dependency queues.
MOVABLE = ("ONCE.PUSH", "ONCE.CALL", "ONCE.AFTER")
# Tokens that a command needs (the others are options).
REQUIRED_TOKENS = {("ONCE.BULK", "PAYLOADS")}
# Words that name a choice (states, MISSED policies), not options.
WORDS = {"once", "skip", "ready", "delayed", "reserved", "dead", "completed", "cancelled", "wait", "run", "waiting",
         "fail", "ignore", "continue"}
FAST = {"ONCE.PUSH", "ONCE.ACK", "ONCE.NACK", "ONCE.EXTEND", "ONCE.RETRY", "ONCE.CANCEL", "ONCE.INSPECT",
        "ONCE.STATS", "ONCE.UNSCHEDULE", "ONCE.PAUSE", "ONCE.RESUME", "ONCE.HISTOGRAM", "ONCE.GROUP",
        "ONCE.PROGRESS"}
READS = {"ONCE.INSPECT", "ONCE.STATS", "ONCE.SCHEDULES", "ONCE.LIST", "ONCE.EVENTS", "ONCE.HISTOGRAM",
         "ONCE.GROUPS", "ONCE.RESULT", "ONCE.DEPS"}
BLOCKING = {"ONCE.RESERVE", "ONCE.EVENTS", "ONCE.RESULT", "ONCE.CALL"}
# The arity of the issue-21 commands (the others' counts are checked by test_errors' wrong-arity cases).
ARITY = {"ONCE.RESULT": -3, "ONCE.CALL": -3, "ONCE.PROGRESS": -4}
DENYOOM = {"ONCE.PUSH", "ONCE.BULK", "ONCE.SCHEDULE", "ONCE.CONFIGURE", "ONCE.GROUP", "ONCE.RPUSH", "ONCE.LPUSH",
           "ONCE.ADOPT", "ONCE.CALL", "ONCE.AFTER"}
# The positional arguments before the options, as a valid sample.
LEAD = {
    "ONCE.PUSH": ["p"], "ONCE.BULK": [], "ONCE.RESERVE": [], "ONCE.ACK": ["some-id"], "ONCE.NACK": ["some-id"],
    "ONCE.EXTEND": ["some-id", "1000"], "ONCE.SCHEDULE": ["s", "@every 1s", "p"], "ONCE.LIST": ["ready"],
    "ONCE.RETRY": [], "ONCE.CONFIGURE": [], "ONCE.HISTOGRAM": ["wait"], "ONCE.EVENTS": [],
    "ONCE.GROUP": ["g"], "ONCE.GROUPS": [], "ONCE.RPUSH": ["e"], "ONCE.LPUSH": ["e"], "ONCE.ADOPT": [],
    "ONCE.RESULT": ["some-id"], "ONCE.CALL": ["p"], "ONCE.PROGRESS": ["some-id", "data"],
    "ONCE.AFTER": ["some-id", "other-queue", "1", "x"], "ONCE.DEPS": ["some-id"],
}
# The arguments after the options, as a valid sample (CALL's TIMEOUT: it waits 1 ms and replies nil).
TAIL = {"ONCE.BULK": ["PAYLOADS", "p"], "ONCE.CALL": ["TIMEOUT", "1"]}
SAMPLE = {"integer": "1", "unix-time": "1", "string": "x", "key": "other-queue"}
# Tokens that live only inside a block (DROP in TTL ms [DROP]): the sample arguments that carry them.
INNER = {"DROP": ["TTL", "1", "DROP"]}


@pytest.fixture
def rc(server):
    """A client that returns COMMAND replies as the server sent them (redis-py reshapes some)."""
    c = server.client(decode_responses=True, protocol=2)
    c.response_callbacks.clear()
    yield c
    c.close()


def docs_of(r, name):
    reply = r.execute_command("COMMAND", "DOCS", name)
    flat = as_map(reply)
    assert set(flat) == {name.lower()} or set(flat) == {name}, flat
    return as_map(next(iter(flat.values())))


def arg_maps(args):
    return [as_map(a) for a in args or []]


def walk_tokens(args, out):
    """Every option token in a docs argument tree, with the sample value list that follows it."""
    for a in arg_maps(args):
        if a.get("token") and a["type"] != "block":
            value = [] if a["type"] in ("pure-token", "oneof") else [SAMPLE[a["type"]]]
            if a["type"] == "oneof":
                value = [as_map(arg_maps(a["arguments"])[0])["token"]]
            out[a["token"]] = value
        if a.get("token") and a["type"] == "block":
            subs = arg_maps(a["arguments"])
            out[a["token"]] = [SAMPLE[subs[0]["type"]]] + [x for sub in subs[1:] if sub.get("token")
                                                            for x in ([sub["token"]] if sub["type"] == "pure-token"
                                                                      else [sub["token"], SAMPLE[sub["type"]]])]
        if a["type"] in ("oneof", "block"):
            walk_tokens(a["arguments"], out)
    return out


@pytest.mark.parametrize("name", PUBLIC)
def test_every_command_has_docs_that_match_the_contract(rc, name):
    d = docs_of(rc, name)
    assert d["summary"] and d["complexity"] and d["since"] == "0.1.0", d
    assert d["group"] == "module" and d["module"] == "once", d
    args = arg_maps(d["arguments"])
    assert args[0]["name"] == "queue" and args[0]["type"] == "key" and args[0]["key_spec_index"] == 0, args[0]
    tokens = walk_tokens(d["arguments"], {})
    assert set(tokens) - WORDS == TOKENS[name], tokens
    for a in args[1:]:
        if a.get("token"):
            assert ("optional" in a.get("flags", [])) != ((name, a["token"]) in REQUIRED_TOKENS), (name, a)


@pytest.mark.parametrize("name", [n for n in PUBLIC if TOKENS[n]])
def test_the_parser_accepts_every_documented_option_and_nothing_else(r, rc, key, name):
    for token, value in walk_tokens(docs_of(rc, name)["arguments"], {}).items():
        if token in WORDS or token == "PER" or (name, token) in REQUIRED_TOKENS:
            continue
        args = [name, key] + LEAD[name] + [token.lower()] + value + TAIL.get(name, [])
        if token in INNER:
            args = [name, key] + LEAD[name] + INNER[token] + TAIL.get(name, [])
        if name == "ONCE.RESERVE" and token in ("ATTEMPT", "RESULT"):
            args = [name, key, "ACK", "x", token, "1"]
        if name == "ONCE.ACK":
            args = [name, key, "some-id", "ATTEMPT", "1"]
            if token == "RESULT":
                args = [name, key, "some-id", "RESULT", "x"]
        try:
            r.execute_command(*args)
        except redis.ResponseError as e:
            assert "unknown option" not in str(e), (args, str(e))
    if name in ("ONCE.ACK", "ONCE.RETRY"):
        return          # their other trailing words are ids, not options
    bad = [name, key] + LEAD[name] + ["NOSUCHOPTION", "1"] + TAIL.get(name, [])
    with pytest.raises(redis.ResponseError, match="unknown option 'NOSUCHOPTION'"):
        r.execute_command(*bad)
    for token, inner in INNER.items():
        if token in TOKENS[name]:     # outside its block the token is refused, not taken as an option
            with pytest.raises(redis.ResponseError, match=f"{token} goes with"):
                r.execute_command(name, key, *LEAD[name], token, *TAIL.get(name, []))
    if name == "ONCE.CALL":           # TIMEOUT is documented as an option but the handler needs it
        with pytest.raises(redis.ResponseError, match="TIMEOUT ms is required"):
            r.execute_command(name, key, *LEAD[name])


def test_nested_arguments_are_typed(rc):
    push_args = {a["name"]: a for a in arg_maps(docs_of(rc, "ONCE.PUSH")["arguments"])}
    when = push_args["when"]
    assert when["type"] == "oneof" and "optional" in when["flags"]
    assert [(a["token"], a["type"]) for a in arg_maps(when["arguments"])] == [("DELAY", "integer"),
                                                                              ("AT", "unix-time")]
    ack = {a["name"]: a for a in arg_maps(docs_of(rc, "ONCE.RESERVE")["arguments"])}["ack"]
    assert ack["type"] == "block" and ack["token"] == "ACK"
    assert [(a["name"], a.get("token")) for a in arg_maps(ack["arguments"])] == [("id", None), ("attempt", "ATTEMPT"),
                                                                                  ("data", "RESULT")]
    assert all("optional" in a["flags"] for a in arg_maps(ack["arguments"])[1:])
    which = arg_maps(docs_of(rc, "ONCE.ACK")["arguments"])[1]
    assert which["type"] == "oneof"
    ids, fenced = arg_maps(which["arguments"])
    assert ids["type"] == "block" and fenced["token"] == "ACKS"
    assert [(a["name"], "multiple" in a.get("flags", [])) for a in arg_maps(ids["arguments"])] == [("id", True),
                                                                                                  ("attempt", False),
                                                                                                  ("data", False)]
    assert [a.get("token") for a in arg_maps(ids["arguments"])] == [None, "ATTEMPT", "RESULT"]
    assert [a["name"] for a in arg_maps(fenced["arguments"])] == ["n", "reservation"]
    *_, bulk_ids, payloads = arg_maps(docs_of(rc, "ONCE.BULK")["arguments"])
    assert (bulk_ids["token"], sorted(bulk_ids["flags"])) == ("IDS", ["multiple", "optional"]), bulk_ids
    assert (payloads["token"], payloads["flags"]) == ("PAYLOADS", ["multiple"]), payloads
    # PUSH ... [KEEP ms] [TTL ms [DROP]]: TTL is a block whose DROP is an optional pure token.
    ttl = push_args["ttl"]
    assert (ttl["type"], ttl["token"], ttl["flags"]) == ("block", "TTL", ["optional"]), ttl
    assert [(a["name"], a["type"], a.get("token"), a.get("flags", [])) for a in arg_maps(ttl["arguments"])] == [
        ("ms", "integer", None, []), ("drop", "pure-token", "DROP", ["optional"])]
    assert (push_args["keep-ms"]["type"], push_args["keep-ms"]["token"]) == ("integer", "KEEP")
    # CALL takes PUSH's arguments as they are, then TIMEOUT ms and the pure token CANCEL.
    call = arg_maps(docs_of(rc, "ONCE.CALL")["arguments"])
    assert call[:-2] == arg_maps(docs_of(rc, "ONCE.PUSH")["arguments"])
    assert [(a["name"], a["type"], a["token"]) for a in call[-2:]] == [("timeout-ms", "integer", "TIMEOUT"),
                                                                      ("cancel", "pure-token", "CANCEL")]
    assert [(a["name"], a["type"], a.get("token")) for a in arg_maps(docs_of(rc, "ONCE.RESULT")["arguments"])] == [
        ("queue", "key", None), ("id", "string", None), ("timeout-ms", "integer", "BLOCK")]
    assert [(a["name"], a["type"], a.get("token")) for a in arg_maps(docs_of(rc, "ONCE.PROGRESS")["arguments"])] == [
        ("queue", "key", None), ("id", "string", None), ("data", "string", None), ("attempt", "integer", "ATTEMPT")]


def command_info(r, name):
    info = r.execute_command("COMMAND", "INFO", name)[0]
    flags = {f.decode() if isinstance(f, bytes) else f for f in info[2]}
    return info, flags


@pytest.mark.parametrize("name", PUBLIC + INTERNAL)
def test_flags_and_key_specs_say_what_each_command_does(rc, name):
    info, flags = command_info(rc, name)
    assert ("readonly" in flags) == (name in READS), flags
    assert ("write" in flags) == (name not in READS), flags
    assert ("fast" in flags) == (name in FAST), flags
    assert ("blocking" in flags) == (name in BLOCKING), flags
    assert ("denyoom" in flags) == (name in DENYOOM), flags
    assert info[3:6] == [1, 1, 1], info
    if name in ARITY:
        assert info[1] == ARITY[name], info
    specs = [as_map(s) for s in info[8]]
    # RESERVE's ALSO queues are a second spec: every key after the keyword ALSO, with the same access. AFTER's
    # dependency queues are one too, incomplete (several AFTER clauses): the module answers getkeys requests.
    assert len(specs) == (2 if name in ("ONCE.RESERVE",) + MOVABLE else 1), specs
    if name == "ONCE.RESERVE":
        assert specs[1]["begin_search"][3][:2] == ["keyword", "ALSO"] and specs[1]["flags"] == specs[0]["flags"]
    if name in MOVABLE:
        assert {"incomplete", "variable_flags"} <= set(specs[1]["flags"]) and "movablekeys" in flags, (specs, flags)
    spec_flags = set(specs[0]["flags"])
    assert ("RO" in spec_flags) == (name in READS) and ("RW" in spec_flags) == (name not in READS), spec_flags


@pytest.mark.parametrize("name", PUBLIC + INTERNAL)
def test_getkeys_names_the_queue(rc, name):
    sample = {"ONCE.PUSH": ["p"], "ONCE.BULK": ["PAYLOADS", "p"], "ONCE.ACK": ["i"], "ONCE.NACK": ["i"], "ONCE.EXTEND": ["i", "5"],
              "ONCE.RETRY": ["i"], "ONCE.CANCEL": ["i"], "ONCE.INSPECT": ["i"], "ONCE.SCHEDULE": ["s", "x", "p"],
              "ONCE.UNSCHEDULE": ["s"], "ONCE.LIST": ["ready"], "ONCE.PURGE": ["dead"], "ONCE.HISTOGRAM": ["wait"],
              "ONCE.GROUP": ["g"], "ONCE.RPUSH": ["e"], "ONCE.LPUSH": ["e"], "ONCE.RESULT": ["i"],
              "ONCE.CALL": ["p", "TIMEOUT", "1"], "ONCE.PROGRESS": ["i", "d"], "ONCE.DEPS": ["i"],
              "ONCE.AFTER": ["i", "jobs:q", "1", "x"]}.get(name, ["a", "b", "c"] if name in INTERNAL else [])
    expected = ["jobs:q", "jobs:q"] if name == "ONCE.AFTER" else ["jobs:q"]
    assert rc.execute_command("COMMAND", "GETKEYS", name, "jobs:q", *sample) == expected


def test_getkeys_names_every_after_queue(rc):
    """Cluster clients and ACL key rules learn every AFTER queue from the module's getkeys answer."""
    push = ["ONCE.PUSH", "{s}:a", "p", "ID", "AFTER", "AFTER", "{s}:b", "2", "x", "AFTER", "AFTER", "{s}:c", "1", "z"]
    assert rc.execute_command("COMMAND", "GETKEYS", *push) == ["{s}:a", "{s}:b", "{s}:c"]
    after = ["ONCE.AFTER", "{s}:a", "i", "{s}:b", "2", "x", "y", "{s}:c", "1", "z"]
    assert rc.execute_command("COMMAND", "GETKEYS", *after) == ["{s}:a", "{s}:b", "{s}:c"]
    call = ["ONCE.CALL", "{s}:a", "p", "AFTER", "{s}:b", "1", "x", "TIMEOUT", "5"]
    assert rc.execute_command("COMMAND", "GETKEYS", *call) == ["{s}:a", "{s}:b"]


def acl_client(server, user):
    return redis.Redis(host="127.0.0.1", port=server.port, username=user, password="pw", decode_responses=True,
                       protocol=2)


def has_once_category(r):
    return "once" in r.execute_command("ACL", "CAT")


def test_acl_read_only_user_reads_but_cannot_write(server, r, key):
    queue = f"jobs:{key}"
    push(r, queue, "p")
    r.execute_command("ACL", "SETUSER", "monitor", "on", ">pw", "%R~jobs:*",
                      "+ONCE.STATS", "+ONCE.INSPECT", "+ONCE.SCHEDULES", "+ONCE.PUSH", "+ONCE.RESERVE", "+ONCE.ACK")
    m = acl_client(server, "monitor")
    try:
        assert stats(m, queue)["ready"] == 1
        assert m.execute_command("ONCE.INSPECT", queue, "nope") is None
        assert m.execute_command("ONCE.SCHEDULES", queue) == []
        for cmd in (["ONCE.PUSH", queue, "x"], ["ONCE.RESERVE", queue], ["ONCE.ACK", queue, "x"]):
            with pytest.raises(redis.exceptions.NoPermissionError):
                m.execute_command(*cmd)
        assert stats(r, queue)["ready"] == 1 and stats(r, queue)["reserved"] == 0
    finally:
        m.close()
        r.execute_command("ACL", "DELUSER", "monitor")


def test_acl_category_once_where_the_server_has_module_categories(server, r, key):
    if not has_once_category(r):
        # Redis 7.0 has no module ACL categories: the module loads without one, and commands are named one by one.
        assert r.execute_command("ACL", "CAT", "write")
        pytest.skip("this server has no module ACL categories (Redis < 7.4)")
    listed = set(r.execute_command("ACL", "CAT", "once"))
    assert {c.lower() for c in listed} == {c.lower() for c in PUBLIC}, listed
    r.execute_command("ACL", "SETUSER", "worker", "on", ">pw", "~*", "+@once")
    r.execute_command("ACL", "SETUSER", "producer", "on", ">pw", "~*", "+ONCE.PUSH", "+ONCE.STATS")
    w, p = acl_client(server, "worker"), acl_client(server, "producer")
    try:
        job = push(p, key, "x")
        assert w.execute_command("ONCE.RESERVE", key)[0][0] == job
        assert w.execute_command("ONCE.ACK", key, job) == 1
        with pytest.raises(redis.exceptions.NoPermissionError):
            p.execute_command("ONCE.RESERVE", key)
        with pytest.raises(redis.exceptions.NoPermissionError):
            w.execute_command("ONCE._PROMOTE", key, 1)     # internal commands are not in @once
    finally:
        w.close()
        p.close()
        r.execute_command("ACL", "DELUSER", "worker", "producer")


# ---- ACL categories: what `-@write`, `+@read` and `-@dangerous` users get (issue 19) ----------------------------

def has_acl_category_api(r):
    """Module commands get categories only where the server has SetCommandACLCategories (not Redis 7.0)."""
    info, _ = command_info(r, "ONCE.STATS")
    return bool(info[6])


def categories(r, name):
    info, _ = command_info(r, name)
    return {c.decode() if isinstance(c, bytes) else c for c in info[6]}


def expected_categories(name, with_once):
    cats = {"@read" if name in READS else "@write", "@fast" if name in FAST else "@slow"}
    if name in BLOCKING:
        cats.add("@blocking")
    if name in INTERNAL:
        cats |= {"@admin", "@dangerous"}
    elif with_once:
        cats.add("@once")
    return cats


@pytest.mark.parametrize("name", PUBLIC + INTERNAL)
def test_command_info_lists_the_categories_the_flags_imply(rc, name):
    if not has_acl_category_api(rc):
        assert categories(rc, name) == set()
        pytest.skip("Redis 7.0 has no module ACL category API: README gives the by-name recipes")
    assert categories(rc, name) == expected_categories(name, has_once_category(rc))


WRITE_SAMPLES = {
    "ONCE.PUSH": ["p"], "ONCE.BULK": ["PAYLOADS", "p"], "ONCE.RESERVE": [], "ONCE.ACK": ["i"], "ONCE.NACK": ["i"],
    "ONCE.EXTEND": ["i", "5"],
    "ONCE.RETRY": ["i"], "ONCE.CANCEL": ["i"], "ONCE.SCHEDULE": ["s", "@every 1s", "p"], "ONCE.UNSCHEDULE": ["s"],
    "ONCE.PURGE": ["ready"], "ONCE.PAUSE": [], "ONCE.RESUME": [], "ONCE.CONFIGURE": ["RETRIES", "1"],
    "ONCE.GROUP": ["g", "CONCURRENCY", "1"], "ONCE.RPUSH": ["e"], "ONCE.LPUSH": ["e"], "ONCE.ADOPT": [],
    "ONCE.CALL": ["p", "TIMEOUT", "1"], "ONCE.PROGRESS": ["i", "d"], "ONCE.AFTER": ["i", "q", "1", "x"],
}
READ_SAMPLES = {
    "ONCE.STATS": [], "ONCE.INSPECT": ["i"], "ONCE.LIST": ["ready"], "ONCE.EVENTS": [],
    "ONCE.HISTOGRAM": ["wait"], "ONCE.GROUPS": [], "ONCE.SCHEDULES": [], "ONCE.RESULT": ["i"], "ONCE.DEPS": ["i"],
}


def test_write_and_read_categories_mean_what_they_say(server, r, rc, key):
    if not has_acl_category_api(rc):
        pytest.skip("Redis 7.0 has no module ACL category API: README gives the by-name recipes")
    assert set(WRITE_SAMPLES) == set(PUBLIC) - READS and set(READ_SAMPLES) == READS
    push(r, key, "p")
    before = r.execute_command("DEBUG", "DIGEST-VALUE", key)
    r.execute_command("ACL", "SETUSER", "nowrite", "on", ">pw", "~*", "+@all", "-@write", "-@dangerous")
    r.execute_command("ACL", "SETUSER", "reader", "on", ">pw", "~*", "+@read")
    nw, rd = acl_client(server, "nowrite"), acl_client(server, "reader")
    try:
        for name, sample in WRITE_SAMPLES.items():
            dry = r.execute_command("ACL", "DRYRUN", "nowrite", name, key, *sample)
            assert "no permissions" in str(dry).lower(), (name, dry)
            with pytest.raises(redis.exceptions.NoPermissionError):
                nw.execute_command(name, key, *sample)
            with pytest.raises(redis.exceptions.NoPermissionError):
                rd.execute_command(name, key, *sample)
        for name, sample in READ_SAMPLES.items():
            assert r.execute_command("ACL", "DRYRUN", "reader", name, key, *sample) == "OK", name
            rd.execute_command(name, key, *sample)
            nw.execute_command(name, key, *sample)
        assert r.execute_command("DEBUG", "DIGEST-VALUE", key) == before
    finally:
        nw.close()
        rd.close()
        r.execute_command("ACL", "DELUSER", "nowrite", "reader")


def test_dangerous_excludes_the_internal_commands(server, r, rc, key):
    if not has_acl_category_api(rc):
        pytest.skip("Redis 7.0 has no module ACL category API: README gives the by-name recipes")
    push(r, key, "p")
    r.execute_command("ACL", "SETUSER", "safe", "on", ">pw", "~*", "+@all", "-@dangerous")
    s = acl_client(server, "safe")
    try:
        for name in INTERNAL:
            with pytest.raises(redis.exceptions.NoPermissionError):
                s.execute_command(name, key, "1", "2")
        assert stats(s, key)["ready"] == 1
        assert s.execute_command("ONCE.RESERVE", key)        # the public commands stay allowed
    finally:
        s.close()
        r.execute_command("ACL", "DELUSER", "safe")
