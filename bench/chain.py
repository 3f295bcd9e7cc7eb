"""Chain benchmark: framework overhead per component, and setup time.

Model: N scalar components y = x + 1 in a chain (component i's y feeds component i+1's x),
N in {10, 100, 1000}. The first input changes at every evaluation, so nothing can be served
from a cache.

Contenders:
- ours: Assembly with RunOnce over Components connected c{i}.y -> c{i+1}.x; ``top.c0.x`` is set
  and ``top.run()`` called at each evaluation (bench/fw_ours.py);
- plain-python: a loop computing the same values into a list (the floor);
- openmdao: OpenMDAO 3 ExplicitComponents, ``prob['c0.x'] = ...; prob.run_model()``;
- gemseo, gemseo-nocache, gemseo-fast: a GEMSEO MDOChain of Disciplines, with GEMSEO's defaults
  (validation + caches), validation without caches, and ``configuration.fast`` settings
  (bench/fw_gemseo.py).

Metrics, each a median over interleaved rounds (ours, baseline, ours, baseline, ...):
- ``us_per_component``: time of one evaluation / N, in microseconds;
- ``setup``: seconds from nothing to the end of the first evaluation (building the model,
  connecting, setup/configure and the first run: whatever a framework defers to its first run
  is included).
``ratio`` = baseline / ours for both (lower is better), so ratio > 1 means ours is faster.

Run with a Python that has the baselines (``bench/run_all`` picks it); baselines that are not
installed are skipped with a note on stderr. Sized for a noisy 2-core machine: about 1.5
minutes.
"""

import functools
import time

import harness

BENCH = "chain"
SIZES = (10, 100, 1000)
#: Minimum seconds spent evaluating per sample (the per-evaluation time is a mean over them).
MIN_EVAL_TIME = 0.15


def build_plain(n):
    """The floor: y = x + 1 for n values in a plain loop, each output stored in a list."""
    ys = [0.0] * n

    def run(x0):
        x = x0
        for i in range(n):
            x = ys[i] = x + 1.0

    return run, lambda: ys[-1]


def measure(name, build, n):
    """One sample of a chain built by ``build(n)``: ``(setup seconds, seconds per evaluation)``.

    Checks that the first evaluation gives x0 + n at the end of the chain.
    """
    x0 = -0.5
    start = time.perf_counter()
    run, last = build(n)
    run(x0)
    setup = time.perf_counter() - start
    if last() != x0 + n:
        raise AssertionError(f"{name}: chain of {n} gave {last()}, not {x0 + n}")
    return setup, harness.time_per_call(run, MIN_EVAL_TIME)


def run_ours(n):
    """One sample of our chain of n, or None while openmdao_like lacks the API it uses."""
    return harness.call_ours(lambda fw_ours: measure("ours", fw_ours.build_chain, n))


def baselines():
    """The available baselines: name -> function(n) returning one sample."""
    builders = {"plain-python": build_plain}
    openmdao = harness.framework("fw_openmdao")
    if openmdao is not None:
        builders["openmdao"] = openmdao.build_chain
    gemseo = harness.framework("fw_gemseo")
    if gemseo is not None:
        for mode in gemseo.MODES:
            name = "gemseo" if mode == "default" else f"gemseo-{mode}"
            builders[name] = functools.partial(gemseo.build_chain, mode=mode)
    return {name: functools.partial(measure, name, build) for name, build in builders.items()}


def body(rounds):
    """Warm every contender up once (imports, first-use costs), then measure and report."""
    harness.emit_machine(BENCH, rounds=rounds)
    contenders = baselines()
    run_ours(SIZES[0])
    for sample in contenders.values():
        sample(SIZES[0])
    for n in SIZES:
        for name, sample in contenders.items():
            ours, base = harness.interleave(lambda: run_ours(n), lambda: sample(n), rounds)
            for metric, index, scale, unit in (("us_per_component", 1, 1e6 / n, "us"),
                                               ("setup", 0, 1.0, "s")):
                harness.emit_result(
                    BENCH, {"n": n, "metric": metric},
                    ours=_scaled_median(ours, index, scale),
                    baseline=_scaled_median(base, index, scale),
                    baseline_name=name, unit=unit, lower_is_better=True)


def _scaled_median(samples, index, scale):
    """Median of field ``index`` of the samples, times ``scale`` (None if no samples)."""
    value = harness.median([sample[index] for sample in samples])
    return None if value is None else value * scale


if __name__ == "__main__":
    harness.rounds_main(__doc__, body)
