"""Expressions benchmark: microseconds per evaluation of a driver expression, beside the same
arithmetic written as a plain Python lambda.

Model: an assembly with a component ``p`` (Float ``x``, ``y``) and a component ``q`` (Int ``n``,
``m``). Each expression is added with ``driver.add_response(text)``, which returns the compiled
`ExprEvaluator`; ours is ``expr.evaluate()``, the baseline a lambda reading the same attributes
from the same components (``lambda: (p.x - 3)**2 + p.x*p.y``), the floor.

Configurations (``config``):
- ``float``: ``(p.x - 3)**2 + p.x*p.y`` over Float variables, the hot path of an optimizer's
  objective (Float values cannot grow, so nothing is guarded);
- ``int``: ``(q.n - 3)**2 + q.n*q.m`` over Int variables, where the power and the product go
  through the size guards (a Python int can grow without bound);
- ``functions``: ``sin(p.x) + max(p.x, 0.0) + sqrt(p.y**2)`` over Float variables.

Metric ``us_per_call``: medians of interleaved rounds (ours, baseline, ...), each sample the mean
over calls spanning at least MIN_TIME seconds; ratio = baseline / ours (lower is better, so a
ratio near 1 means evaluating an expression costs about what the plain lambda costs). Both
values are checked to agree before timing. About 10 s.
"""

import math

import numpy as np

import harness

BENCH = "expressions"
#: Seconds of calls per sample.
MIN_TIME = 0.2


def build():
    """The model, and (name, expression text, equivalent lambda) for every configuration."""
    from openmdao_like import Assembly, Component, Float, Int, set_as_top

    class Floats(Component):
        x = Float(1.5, iotype="in")
        y = Float(-2.5, iotype="in")

    class Ints(Component):
        n = Int(7, iotype="in")
        m = Int(-4, iotype="in")

    top = set_as_top(Assembly())
    p = top.add("p", Floats())
    q = top.add("q", Ints())
    configs = [
        ("float", "(p.x - 3)**2 + p.x*p.y", lambda: (p.x - 3)**2 + p.x*p.y),
        ("int", "(q.n - 3)**2 + q.n*q.m", lambda: (q.n - 3)**2 + q.n*q.m),
        ("functions", "sin(p.x) + max(p.x, 0.0) + sqrt(p.y**2)",
         lambda: np.sin(p.x) + max(p.x, 0.0) + np.sqrt(p.y**2)),
    ]
    return top, configs


def body(rounds):
    """Measure every configuration."""
    harness.emit_machine(BENCH, rounds=rounds)
    top, configs = build()
    for name, text, plain in configs:
        expr = top.driver.add_response(text)
        if not math.isclose(expr.evaluate(), plain()):
            raise AssertionError(f"{text}: ours gives {expr.evaluate()}, plain {plain()}")

        def ours(_value, evaluate=expr.evaluate):
            return evaluate()

        def baseline(_value, plain=plain):
            return plain()

        for fn in (ours, baseline):  # warm-up
            harness.time_per_call(fn, MIN_TIME / 4)
        ours_s, base_s = harness.interleave(lambda: harness.time_per_call(ours, MIN_TIME),
                                            lambda: harness.time_per_call(baseline, MIN_TIME),
                                            rounds)
        harness.emit_result(BENCH, {"expression": name, "text": text, "metric": "us_per_call"},
                            ours=harness.median(ours_s) * 1e6,
                            baseline=harness.median(base_s) * 1e6,
                            baseline_name="plain-lambda", unit="us", lower_is_better=True)


if __name__ == "__main__":
    harness.rounds_main(__doc__, body)
