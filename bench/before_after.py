"""Before/after benchmark: the same bench scripts run against an earlier revision of
openmdao_like and against the working tree, alternately, in one run.

    python bench/before_after.py REV bench/remote_call.py bench/remote_array.py [--runs 2]

REV (any git revision, e.g. ``HEAD~3`` or ``main``) is exported with ``git archive`` into a
temporary directory and put first on PYTHONPATH for its runs (the editable install of the
working tree is found only after PYTHONPATH, so each run imports the tree it is meant to, and so
do the servers it starts). Each script runs ``--runs`` times per tree, before and after taking
turns (each going first in every other run). The scripts' own JSON lines go to stderr; stdout gets, per (script, configuration) and
per run, one line whose ``ours`` is the working tree's figure and ``baseline`` REV's:

    {"bench": "before_after", "config": {"script": ..., "config": ..., "run": 1},
     "ours": ..., "baseline": ..., "baseline_name": "openmdao_like@REV", "ratio": ...,
     "unit": ...}

``ratio`` > 1 means the working tree is faster (rates: after / before; times: before / after).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import harness

BENCH = "before_after"
ROOT = Path(__file__).resolve().parent.parent


def export(rev, into):
    """Write the tree of ``rev`` into directory ``into``."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


def run_script(script, pythonpath, extra):
    """The result lines (dicts with "ours") a bench script prints, run with ``pythonpath``."""
    env = dict(os.environ)
    parts = [p for p in (pythonpath, env.get("PYTHONPATH")) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    done = subprocess.run([sys.executable, str(script), *extra], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    sys.stderr.write(done.stdout)
    if done.returncode != 0:
        raise SystemExit(f"{script} failed with status {done.returncode}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [line for line in lines if "ours" in line]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the earlier revision (git), e.g. HEAD~3")
    parser.add_argument("scripts", nargs="+", help="bench scripts to run")
    parser.add_argument("--runs", type=int, default=2, help="runs per tree (default 2)")
    args, extra = parser.parse_known_args()
    harness.emit_machine(BENCH, rev=args.rev, runs=args.runs)
    with tempfile.TemporaryDirectory(prefix="oml-before-") as before:
        export(args.rev, before)
        for run in range(1, args.runs + 1):
            for script in args.scripts:
                if run % 2:  # each tree goes first in every other run
                    old = run_script(script, before, extra)
                    new = run_script(script, None, extra)
                else:
                    new = run_script(script, None, extra)
                    old = run_script(script, before, extra)
                for was, now in zip(old, new):
                    unit = now.get("unit") or ""
                    rate = "/s" in unit
                    harness.emit_result(
                        BENCH, {"script": Path(script).name, "config": now.get("config"),
                                "run": run},
                        now["ours"], was["ours"], f"openmdao_like@{args.rev}", unit,
                        lower_is_better=not rate)


if __name__ == "__main__":
    main()
