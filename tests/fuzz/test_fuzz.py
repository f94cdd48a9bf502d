"""The decoder fuzzer's bounded run (issue 20, "Fuzzing") on every server kind, and its corpus as regressions.

- `test_bounded_run`: ONCE_FUZZ_SECONDS (default 20) of mutated dumps and malformed internal records per server
  kind, from ONCE_FUZZ_SEED (default: random, printed). A failure prints the seed and the input in hex and keeps the
  input under tests/fuzz/corpus/. `make fuzz` runs it for minutes.
- `test_corpus`: every kept input replayed through every check, on every kind.
- `test_seeds_parse`: the fuzzer reads the module's encoding of every seed queue value by value, so its mutations
  hit values and not just bytes.
"""
import os
import random

import pytest

import fuzz_engine
import harness
from fuzz_mutate import parse, serialize

SEED = os.environ.get("ONCE_FUZZ_SEED") or str(random.SystemRandom().randrange(1 << 32))
SECONDS = float(os.environ.get("ONCE_FUZZ_SECONDS", "20"))
# Inputs of findings reported to the module's owner and not fixed yet: while one still shows, its test is an xfail.
OPEN_FINDINGS: dict[str, str] = {}


@pytest.fixture(scope="module", params=harness.kinds())
def fuzz_kind(request):
    if harness.missing_prerequisite():
        pytest.skip(harness.missing_prerequisite())
    return request.param


def test_bounded_run(fuzz_kind):
    print(f"\nfuzz seed {SEED} (again: ONCE_FUZZ_SEED={SEED}), {SECONDS:.0f} s on {fuzz_kind}")
    fz = fuzz_engine.Fuzzer(fuzz_kind, SEED)
    try:
        counts, failure = fz.run(seconds=SECONDS), None
    except fuzz_engine.Failure as f:
        failure = f.report()
    finally:
        fz.close()
    if failure:
        pytest.fail(failure, pytrace=False)
    print(f"{fuzz_kind}: {counts}")
    # The run reached the loader and the appliers with inputs they took and inputs they refused, and checked the
    # queues it kept in full rounds.
    assert counts["restore_accepted"] > 0 and counts["restore_accepted"] < counts["restore"], counts
    assert counts["records_applied"] > 0 and counts["records_refused"] > 0, counts
    assert counts["deep"] >= 1, counts


@pytest.fixture(scope="module")
def replayer(fuzz_kind):
    fz = fuzz_engine.Fuzzer(fuzz_kind, f"replay:{SEED}", keep_inputs=False)
    yield fz
    fz.close()


@pytest.mark.parametrize("path", fuzz_engine.corpus_files(), ids=os.path.basename)
def test_corpus(replayer, path):
    name = os.path.basename(path)
    replayer._reset()
    replayer.findings.clear()
    try:
        replayer.replay(fuzz_engine.load(path))
        failure = None
    except fuzz_engine.Failure as f:
        failure = f.report()
    if failure:
        pytest.fail(failure, pytrace=False)
    if name in OPEN_FINDINGS and OPEN_FINDINGS[name] in replayer.findings:
        pytest.xfail(f"open finding, reported to the module's owner: {OPEN_FINDINGS[name]}")
    assert not replayer.findings, replayer.findings


def test_seeds_parse(replayer):
    for name, body in replayer.seeds.items():
        header, tokens = parse(body)
        assert serialize(header, tokens) == body, name
        assert len(tokens) > 50, (name, len(tokens))
