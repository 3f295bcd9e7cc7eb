"""Import benchmark: wall time of ``python -c "import <package>"`` in a fresh process.

Statements, each timed around a whole subprocess (interpreter start-up included):
- ours: ``import openmdao_like``, with ``--ours-python`` (default: this interpreter);
- openmdao: ``import openmdao.api``; gemseo: ``import gemseo``; with this interpreter;
- bare-python: ``pass``, with this interpreter (the floor: interpreter start-up alone).

Each statement is run once untimed first (byte-code compilation, disk cache), then ours and
each baseline alternately (ours, baseline, ours, baseline, ...), REPEATS times; the median is
reported. ``ratio`` = baseline / ours (lower is better), so ratio > 1 means ours imports faster.
Ours is reported as null while ``openmdao_like`` does not yet export the user API (a namespace
package without ``__init__`` would import in no time and prove nothing); a baseline that is
not installed is skipped. Sized for a noisy 2-core machine: well under a minute.
"""

import argparse
import functools
import subprocess
import sys
import time

import harness

BENCH = "import_time"
REPEATS = 7
OURS = "import openmdao_like"
#: Run once before timing ours: the package must be the real one, exporting the user API.
OURS_CHECK = "import openmdao_like as m; m.Assembly, m.Component, m.set_as_top"
BASELINES = {
    "openmdao": "import openmdao.api",
    "gemseo": "import gemseo",
    "bare-python": "pass",
}


def runs(python, statement):
    """Whether ``python -c statement`` exits successfully (output discarded)."""
    done = subprocess.run([python, "-c", statement], capture_output=True)
    return done.returncode == 0


def import_seconds(python, statement):
    """Wall seconds of one ``python -c statement`` in a fresh process."""
    start = time.perf_counter()
    subprocess.run([python, "-c", statement], check=True, capture_output=True)
    return time.perf_counter() - start


@functools.cache
def ours_has_api(python):
    """Whether openmdao_like, as ``python`` imports it, exports the user API (checked once)."""
    return runs(python, OURS_CHECK)


def run_ours(python):
    """One timing of our import, or None while openmdao_like lacks the user API."""
    if not ours_has_api(python):
        return None
    return import_seconds(python, OURS)


def body(rounds, ours_python):
    """Check and warm up each statement, then time them interleaved and report."""
    harness.emit_machine(BENCH, rounds=rounds, ours_python=ours_python)
    if run_ours(ours_python) is None:
        print(f"{BENCH}: openmdao_like lacks the user API under {ours_python}", file=sys.stderr)
    for name, statement in BASELINES.items():
        if not runs(sys.executable, statement):
            print(f"{BENCH}: {name} not importable by {sys.executable}", file=sys.stderr)
            continue
        ours, base = harness.interleave(
            lambda: run_ours(ours_python),
            lambda: import_seconds(sys.executable, statement),
            rounds)
        harness.emit_result(
            BENCH, {"statement": statement},
            ours=harness.median(ours), baseline=harness.median(base),
            baseline_name=name, unit="s", lower_is_better=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=REPEATS,
                        help=f"interleaved rounds (default {REPEATS})")
    parser.add_argument("--ours-python", default=sys.executable,
                        help="interpreter of the environment holding openmdao_like "
                             "(default: this one)")
    args = parser.parse_args()
    harness.main(lambda: body(args.rounds, args.ours_python))


if __name__ == "__main__":
    main()
