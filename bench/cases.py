"""Cases benchmark: serial case throughput of a one-component model, with and without recording.

Model: the paraboloid f_xy = (x-3)^2 + x*y + (y+4)^2 - 3, run over the same CASES random
(x, y) points in [-50, 50]^2 by every contender, serially in this process:
- ours: CaseIteratorDriver(cases=[{'p.x': .., 'p.y': ..}, ...]) with add_response('p.f_xy'),
  optionally with ``top.recorders = [SQLiteRecorder(path)]`` (bench/fw_ours.py);
- openmdao: OpenMDAO 3 DOEDriver with a ListGenerator of the same points, x and y as design
  variables and f_xy as objective, optionally with a SqliteRecorder on the driver.

Metric: cases per second of the driver's run (``top.run()``; ``prob.run_driver()`` plus
``prob.cleanup()``, which closes the recorder). Building and setting up the model is not timed
(OpenMDAO's final_setup is done before timing; whatever ours defers to its first run is
timed). Median over interleaved rounds (ours, baseline, ours, baseline, ...), a fresh model and
a fresh database file in each sample. ``ratio`` = ours / baseline (higher is better), so
ratio > 1 means ours is faster.

A warm-up with a few cases checks, outside the timings, that each contender computes the right
value and records every case. Sized for a noisy 2-core machine: under a minute.
"""

import itertools
import math
import os
import random
import time

import harness

BENCH = "cases"
CASES = 5000
WARMUP_CASES = 50
RECORDERS = (None, "sqlite")

_db_names = (f"cases-{i}.sqlite" for i in itertools.count())


def paraboloid(x, y):
    """The model's exact value, to check the contenders."""
    return (x - 3.0) ** 2 + x * y + (y + 4.0) ** 2 - 3.0


def make_points(count, seed=0):
    """``count`` reproducible (x, y) points, uniform in [-50, 50]^2."""
    rng = random.Random(seed)
    return [(rng.uniform(-50.0, 50.0), rng.uniform(-50.0, 50.0)) for _ in range(count)]


def new_db_path():
    """A fresh database path in the scratch working directory."""
    return os.path.abspath(next(_db_names))


def check(name, value, expected, recorded, count):
    """Fail loudly if a contender computed a wrong value or did not record every case."""
    if not math.isclose(value, expected, rel_tol=1e-12):
        raise AssertionError(f"{name}: f_xy of the last case is {value}, not {expected}")
    if recorded is not None and recorded != count:
        raise AssertionError(f"{name}: {recorded} cases recorded, not {count}")


def sample_openmdao(fw, points, recorder, verify=False):
    """Cases per second of one OpenMDAO DOEDriver run over ``points``."""
    path = new_db_path() if recorder else None
    prob = fw.build_doe(points, path)
    start = time.perf_counter()
    prob.run_driver()
    prob.cleanup()
    elapsed = time.perf_counter() - start
    if verify:
        recorded = fw.recorded_cases(path) if path else None
        check("openmdao", float(prob["p.f_xy"][0]), paraboloid(*points[-1]), recorded,
              len(points))
    return len(points) / elapsed


def sample_ours(fw, points, recorder, verify=False):
    """Cases per second of one run of our CaseIteratorDriver over ``points``."""
    path = new_db_path() if recorder else None
    top = fw.build_cases(points, path)
    start = time.perf_counter()
    top.run()
    elapsed = time.perf_counter() - start
    if verify:
        recorded = fw.recorded_cases(path) if path else None
        check("ours", fw.last_result(top), paraboloid(*points[-1]), recorded, len(points))
    return len(points) / elapsed


def run_ours(points, recorder, verify=False):
    """One sample of ours (cases/s), or None while openmdao_like lacks the API it uses."""
    return harness.call_ours(sample_ours, points, recorder, verify)


def body(rounds):
    """Warm up and check both contenders on a few cases, then measure and report.

    Without OpenMDAO there is nothing to compare with: only the machine line is written.
    """
    harness.emit_machine(BENCH, rounds=rounds)
    openmdao = harness.framework("fw_openmdao")
    if openmdao is None:
        return
    warmup_points = make_points(WARMUP_CASES, seed=1)
    points = make_points(CASES)
    for recorder in RECORDERS:
        run_ours(warmup_points, recorder, verify=True)
        sample_openmdao(openmdao, warmup_points, recorder, verify=True)
    for recorder in RECORDERS:
        ours, base = harness.interleave(
            lambda: run_ours(points, recorder),
            lambda: sample_openmdao(openmdao, points, recorder),
            rounds)
        harness.emit_result(
            BENCH, {"cases": CASES, "recorder": recorder},
            ours=harness.median(ours), baseline=harness.median(base),
            baseline_name="openmdao", unit="cases/s", lower_is_better=False)


if __name__ == "__main__":
    harness.rounds_main(__doc__, body)
