"""Files written by older releases load into today's module with the same jobs, states, settings, schedules, groups
and events: tests/fixtures/v4/ (RDB encoding version 4, commit c11e109) and tests/fixtures/v5/ (encoding 5, commit
c1c5fff: one record per client command, `ONCE._MANY`) and tests/fixtures/v6/ (encoding 6, commit 22974c8: compact
jobs in runs) each hold one data set as an RDB, as an AOF of the raw
command stream (the records the module replicated) and as a rewritten AOF (the module's rewrite records), and the
state the old module read from it (expected.json). tests/fixtures/make_fixtures.py wrote them and holds
the reading and the comparison used here (see tests/fixtures/README.md).

Each file is loaded as a replica of a master that is not there, so the timer leaves leases, due times, rate windows
and schedules as they were saved, and compared field by field with expected.json (fields a newer module adds are
not looked at; every field the old module gave must be there with its value). It is then saved by today's module
and loaded again (the new encoding), and must read the same, with the same DEBUG DIGEST-VALUE."""
import importlib.util
import os
import shutil
import tempfile

import harness
import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASES = ("v4", "v5", "v6")
_spec = importlib.util.spec_from_file_location("make_fixtures", os.path.join(TESTS, "fixtures", "make_fixtures.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

EXPECTED = {v: fx.load_expected(os.path.join(TESTS, "fixtures", v)) for v in RELEASES}
AOF = ["--appendonly", "yes", "--appenddirname", "appendonlydir"]
FILES = {"dump.rdb": [], "aof-commands": AOF, "aof-rewrite": AOF}


def load(kind, release, name):
    """A server of `kind` with today's module that loaded the fixture `name` of `release` (a replica of nobody)."""
    d = tempfile.mkdtemp(prefix=f"once-fixture-{kind}-")
    src = os.path.join(TESTS, "fixtures", release, name)
    if name == "dump.rdb":
        shutil.copy(src, os.path.join(d, "dump.rdb"))
    else:
        shutil.copytree(src, os.path.join(d, "appendonlydir"))
    return harness.Server(kind, dir=d, extra=FILES[name] + fx.replica_of_nobody())


def check(r, release, what):
    diff = fx.compare(EXPECTED[release], fx.snapshot(r))
    assert not diff, f"{what} differs from tests/fixtures/{release}/expected.json in {len(diff)} place(s):\n" + \
        "\n".join(diff[:60])


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("name", list(FILES))
def test_an_old_file_loads_as_the_old_module_read_it_and_saves_again(kind, release, name):
    s = load(kind, release, name)
    try:
        r = fx.client(s.port)
        if name != "dump.rdb":
            assert r.info("persistence")["aof_enabled"] == 1
        check(r, release, f"{name} loaded by {kind}")
        before = fx.digests(r)
        # Saved by today's module and loaded from that RDB (the AOF off, so the RDB is what loads).
        assert r.execute_command("SAVE") is True
        s.restart(extra=fx.replica_of_nobody() + ["--appendonly", "no"])
        r = fx.client(s.port)
        check(r, release, f"{name} saved again and reloaded by {kind}")
        assert fx.digests(r) == before
    finally:
        s.close()


@pytest.mark.parametrize("release", RELEASES)
def test_the_three_files_load_to_one_digest(kind, release):
    """The RDB, the command stream and the rewrite hold one data set: today's module digests them alike."""
    seen = {}
    for name in FILES:
        s = load(kind, release, name)
        try:
            seen[name] = fx.digests(fx.client(s.port))
        finally:
            s.close()
    assert seen["aof-commands"] == seen["dump.rdb"] and seen["aof-rewrite"] == seen["dump.rdb"], seen
