"""`make fuzz`: the fuzzer for minutes, on every server kind (or one), from a seed it prints first.

    python3 tests/fuzz/fuzz_run.py [--seconds 300] [--seed N] [--server redis|valkey]
    python3 tests/fuzz/fuzz_run.py --replay tests/fuzz/corpus/<file>.json [--server redis|valkey]

A failure prints the seed and the input (hex), keeps the input under tests/fuzz/corpus/ and exits 1.
"""
import argparse
import sys
import time

import fuzz_engine
import harness


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=300, help="per server kind (default 300)")
    p.add_argument("--inputs", type=int, help="stop after this many inputs per server kind")
    p.add_argument("--seed", help="default: from the time")
    p.add_argument("--server", choices=harness.kinds(), help="default: every kind found")
    p.add_argument("--replay", metavar="FILE", help="replay one corpus file instead")
    a = p.parse_args()
    missing = harness.missing_prerequisite()
    if missing:
        sys.exit(missing)
    try:
        replay = fuzz_engine.load(a.replay) if a.replay else None
    except ValueError as e:
        sys.exit(str(e))
    seed = a.seed or str(time.time_ns())
    kinds = [a.server] if a.server else harness.kinds()
    print(f"fuzz seed {seed} (again: --seed {seed}); {', '.join(kinds)}", flush=True)
    for kind in kinds:
        fz = fuzz_engine.Fuzzer(kind, seed, keep_inputs=replay is None)
        started = time.monotonic()
        try:
            if replay:
                fz.replay(replay)
                counts = fz.counts
            else:
                counts = fz.run(inputs=a.inputs, seconds=None if a.inputs else a.seconds)
        except fuzz_engine.Failure as f:
            print(f.report(), flush=True)
            sys.exit(1)
        finally:
            fz.close()
        print(f"{kind}: {counts} in {time.monotonic() - started:.0f} s, no failure", flush=True)


if __name__ == "__main__":
    main()
