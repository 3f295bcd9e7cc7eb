"""Shared helpers of the benchmark scripts: interleaved sampling, timing and JSON-line output.

Every script prints JSON lines on stdout: first one line describing the machine, then one line
per (configuration, baseline) pair::

    {"bench": ..., "config": {...}, "ours": ..., "baseline": ..., "baseline_name": ...,
     "ratio": ..., "unit": ...}

``ratio`` is always oriented so that a value above 1 means openmdao_like is faster: for a time
(lower is better) it is baseline / ours, for a rate (higher is better) ours / baseline. ``ours``
and ``ratio`` are ``null`` while openmdao_like cannot run the benchmark yet (see ``call_ours``).

The models live in one module per framework: bench/fw_ours.py (openmdao_like),
bench/fw_openmdao.py and bench/fw_gemseo.py (baselines).

Whatever the measured libraries print is sent to stderr (see ``main``), so that stdout carries
only the JSON lines.
"""

import argparse
import contextlib
import functools
import gc
import importlib
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback

#: Distributions whose versions are recorded in the machine line.
VERSIONED = ("openmdao_like", "openmdao", "gemseo", "numpy", "scipy", "traits", "pint")

_STDOUT = sys.stdout


def emit(record):
    """Write one JSON line to the real stdout."""
    _STDOUT.write(json.dumps(record) + "\n")
    _STDOUT.flush()


def machine_info():
    """Describe the machine and the software measured (nproc, CPU, Python, versions)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = models[0] if models else cpu
    versions = {}
    for dist in VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "versions": versions,
    }


def emit_machine(bench, **details):
    """Write the machine line of a script (once, first), with any run details (e.g. rounds)."""
    emit({"bench": bench, "machine": machine_info(), **details})


def emit_result(bench, config, ours, baseline, baseline_name, unit, lower_is_better):
    """Write one comparison line; ``ours`` may be None (not runnable yet)."""
    if ours is None or baseline is None:
        ratio = None
    elif lower_is_better:
        ratio = baseline / ours
    else:
        ratio = ours / baseline
    emit({
        "bench": bench,
        "config": config,
        "ours": _round(ours),
        "baseline": _round(baseline),
        "baseline_name": baseline_name,
        "ratio": _round(ratio),
        "unit": unit,
    })


def _round(value, digits=4):
    """Round to ``digits`` significant digits (None stays None)."""
    return None if value is None else float(f"{value:.{digits}g}")


@functools.cache
def framework(module):
    """Import a baseline's bench/fw_*.py module, or None (noted on stderr) if not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        print(f"{module} not available: {exc!r}", file=sys.stderr)
        return None


_ours_failure = None


def call_ours(function, *args):
    """``function(fw_ours, *args)``, or None while openmdao_like cannot run it yet.

    An ImportError or AttributeError, from importing bench/fw_ours.py or from running it, means
    that openmdao_like lacks the API it uses: the traceback is shown on stderr and this call and
    every later one return None (ours is then reported as null). Other errors propagate.
    """
    global _ours_failure
    if _ours_failure is not None:
        return None
    try:
        return function(importlib.import_module("fw_ours"), *args)
    except (ImportError, AttributeError) as exc:
        _ours_failure = exc
        print("openmdao_like cannot run this benchmark yet; ours is reported as null:",
              file=sys.stderr)
        traceback.print_exc()
        return None


def median(samples):
    """Median of a list of samples, or None when there are none."""
    return statistics.median(samples) if samples else None


def interleave(run_ours, run_baseline, rounds):
    """Sample ours and a baseline alternately: ours, baseline, ours, baseline, ...

    Each ``run_*`` takes no argument and returns one sample. ``run_ours`` returns None when
    openmdao_like cannot run the benchmark; it is then not called again. Garbage is collected
    before each sample so that one sample does not pay for the previous one's.
    Returns ``(ours_samples, baseline_samples)``; ``ours_samples`` is empty if ours cannot run.
    """
    ours, base = [], []
    ours_runnable = True
    for _ in range(rounds):
        if ours_runnable:
            gc.collect()
            sample = run_ours()
            if sample is None:
                ours_runnable = False
            else:
                ours.append(sample)
        gc.collect()
        base.append(run_baseline())
    return ours, base


def time_per_call(fn, min_time):
    """Seconds per call of ``fn(value)``, each call with a new float value.

    Calls ``fn`` in batches sized from the rate measured so far, until at least ``min_time``
    seconds have been spent, and returns the mean over all calls.
    """
    calls = 0
    batch = 1
    start = time.perf_counter()
    while True:
        for value in range(calls, calls + batch):
            fn(float(value))
        calls += batch
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls
        wanted = int(calls * (min_time / elapsed - 1.0)) + 1
        batch = min(wanted, 10 * calls)


def main(body):
    """Run ``body()`` in a scratch working directory, sending library prints to stderr."""
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        cwd = os.getcwd()
        os.chdir(scratch)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                body()
        finally:
            os.chdir(cwd)


def rounds_main(doc, body, default=5):
    """Command line of a script whose only option is ``--rounds``: parse it, run ``body``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=default,
                        help=f"interleaved rounds (default {default})")
    args = parser.parse_args()
    main(lambda: body(args.rounds))
