"""Persistence benchmark: save + load of a 1000-component chain model, in each format.

Model: the chain of bench/chain.py (N = 1000 scalar components y = x + 1, component i's y
feeding component i+1's x, an Assembly with RunOnce), built through the user API with the
``Plus1`` class of bench/fw_ours.py (importable by name, as a YAML model file requires), and
run once before it is saved, so every variable holds a computed value.

Contenders, each saving the same object graph and loading it back:
- ours, ``fmt='pickle'``: ``top.save(stream, fmt='pickle')`` then ``openmdao_like.load(stream)``
  (header line, checked payload, cloudpickle inside);
- ours, ``fmt='yaml'``: the same with ``fmt='yaml'`` (a readable description, rebuilt through the
  constructors on load);
- cloudpickle: plain ``cloudpickle.dumps(top)`` / ``cloudpickle.loads(data)`` (the baseline of
  both formats).
Each in memory (config ``"via": "memory"``: an ``io.BytesIO``) and through a file in the
scratch directory (``"via": "file"``: ``top.save(path)`` / ``load(path)`` against
``cloudpickle.dump`` / ``cloudpickle.load`` on an open file).

Metrics, each a median over interleaved rounds (ours, baseline, ours, baseline, ...):
``save``, ``load`` and ``save_load`` seconds (the median of the per-sample sums), and ``bytes``
(the size of what was written). ``ratio`` = baseline / ours, so ratio > 1 means ours is faster
(or smaller). The issue's targets get a line each whose baseline is the target itself, so there
too ratio >= 1 means the target is met:
- ``target-1.5x-cloudpickle``: pickle save + load at most 1.5 times cloudpickle's dumps + loads
  (baseline = 1.5 x the cloudpickle median of the same rounds);
- ``target-1s``: YAML save + load at most 1 s.

After every load, outside the timings, the loaded model must hold the saved values and, run
with a new input, give the original model's result; anything else stops the script. Sized for
a noisy 2-core machine: well under a minute.
"""

import io
import os
import time

import cloudpickle

import harness

BENCH = "persistence"
N = 1000
FORMATS = ("pickle", "yaml")
VIA = ("memory", "file")
EXTENSIONS = {"pickle": "pkl", "yaml": "yaml"}
#: Ours (pickle) save + load may take at most this many times cloudpickle's dumps + loads.
PICKLE_TARGET_FACTOR = 1.5
#: Seconds that YAML save + load of the chain may take at most.
YAML_TARGET_SECONDS = 1.0
#: The input the model is saved with, and the one each loaded model is run with.
X_SAVED, X_CHECK = -0.5, 0.25


def build_model(fw, n):
    """The chain of bench/chain.py as a top Assembly (fw_ours.build_chain hides its top)."""
    from openmdao_like import Assembly, set_as_top
    from openmdao_like.drivers import RunOnce
    top = set_as_top(Assembly())
    top.add("driver", RunOnce())
    names = [f"c{i}" for i in range(n)]
    for name in names:
        top.add(name, fw.Plus1())
    for src, dest in zip(names, names[1:]):
        top.connect(f"{src}.y", f"{dest}.x")
    top.driver.workflow.add(names)
    return top


class Reference:
    """What every loaded copy must show: the saved end value, and the result of a new run."""

    def __init__(self, top, n):
        self.n = n
        self.last = f"c{n - 1}"
        self.result = self.run(top, X_CHECK)
        self.saved = self.run(top, X_SAVED)  # the state the model is saved in
        if self.result != X_CHECK + n or self.saved != X_SAVED + n:
            raise AssertionError(f"the original chain of {n} gave {self.result} and "
                                 f"{self.saved}, not {X_CHECK + n} and {X_SAVED + n}")

    def run(self, top, x0):
        """Run ``top`` from ``x0``; the end of the chain."""
        top.c0.x = x0
        top.run()
        return getattr(top, self.last).y

    def check(self, name, copy):
        """Fail loudly unless ``copy`` holds the saved values and computes like the original.

        A missing component or variable is a wrong result too: it must stop the script, not
        pass for "openmdao_like cannot run this yet" (AttributeError, see harness.call_ours).
        """
        try:
            saved = getattr(copy, self.last).y
            result = None if saved != self.saved else self.run(copy, X_CHECK)
        except AttributeError as exc:
            raise AssertionError(f"{name}: the loaded chain is incomplete: {exc}") from exc
        if saved != self.saved:
            raise AssertionError(f"{name}: loaded {self.last}.y = {saved}, saved {self.saved}")
        if result != self.result:
            raise AssertionError(f"{name}: the loaded chain of {self.n} gave {result}, the "
                                 f"original {self.result}")


def sample_ours(fw, top, ref, fmt, via):
    """One save + load of ours: ``(save seconds, load seconds, bytes)``."""
    from openmdao_like import load
    if via == "memory":
        stream = io.BytesIO()
        start = time.perf_counter()
        top.save(stream, fmt=fmt)
        saved = time.perf_counter()
        data = stream.getvalue()
        size = len(data)
        start_load = time.perf_counter()
        copy = load(io.BytesIO(data))
        end = time.perf_counter()
    else:
        path = os.path.abspath(f"chain.{EXTENSIONS[fmt]}")
        start = time.perf_counter()
        top.save(path, fmt=fmt)
        saved = time.perf_counter()
        size = os.path.getsize(path)
        start_load = time.perf_counter()
        copy = load(path)
        end = time.perf_counter()
    ref.check(f"ours ({fmt}, {via})", copy)
    return saved - start, end - start_load, size


def sample_cloudpickle(top, ref, via):
    """One ``cloudpickle`` dumps + loads of the same object graph: ``(save, load, bytes)``."""
    if via == "memory":
        start = time.perf_counter()
        data = cloudpickle.dumps(top)
        saved = time.perf_counter()
        copy = cloudpickle.loads(data)
        end = time.perf_counter()
        size = len(data)
    else:
        path = os.path.abspath("chain.cloudpickle")
        start = time.perf_counter()
        with open(path, "wb") as fh:
            cloudpickle.dump(top, fh)
        saved = time.perf_counter()
        with open(path, "rb") as fh:
            copy = cloudpickle.load(fh)
        end = time.perf_counter()
        size = os.path.getsize(path)
    ref.check(f"cloudpickle ({via})", copy)
    return saved - start, end - saved, size


def run_ours(top, ref, fmt, via):
    """One sample of ours, or None while openmdao_like lacks the API it uses."""
    return harness.call_ours(sample_ours, top, ref, fmt, via)


def report(fmt, via, ours, base):
    """The lines of one (format, via) pairing: save, load, save_load, bytes, the target."""
    config = {"n": N, "format": fmt, "via": via}
    metrics = {"save": lambda s: s[0], "load": lambda s: s[1], "save_load": lambda s: s[0] + s[1]}
    for metric, pick in metrics.items():
        harness.emit_result(BENCH, {**config, "metric": metric},
                            ours=harness.median([pick(s) for s in ours]),
                            baseline=harness.median([pick(s) for s in base]),
                            baseline_name="cloudpickle", unit="s", lower_is_better=True)
    if via == "memory":
        harness.emit_result(BENCH, {**config, "metric": "bytes"},
                            ours=harness.median([s[2] for s in ours]),
                            baseline=harness.median([s[2] for s in base]),
                            baseline_name="cloudpickle", unit="bytes", lower_is_better=True)
    ours_total = harness.median([s[0] + s[1] for s in ours])
    if fmt == "pickle":
        limit = PICKLE_TARGET_FACTOR * harness.median([s[0] + s[1] for s in base])
        name = f"target-{PICKLE_TARGET_FACTOR:g}x-cloudpickle"
    else:
        limit, name = YAML_TARGET_SECONDS, f"target-{YAML_TARGET_SECONDS:g}s"
    harness.emit_result(BENCH, {**config, "metric": "save_load"}, ours=ours_total,
                        baseline=limit, baseline_name=name, unit="s", lower_is_better=True)


def body(rounds):
    """Build and check the model, warm every contender up once, then measure and report."""
    import yaml
    harness.emit_machine(BENCH, rounds=rounds, cloudpickle=cloudpickle.__version__,
                         pyyaml=yaml.__version__, libyaml=hasattr(yaml, "CSafeLoader"))
    top = harness.call_ours(build_model, N)
    if top is None:
        for fmt in FORMATS:
            for via in VIA:
                harness.emit_result(BENCH, {"n": N, "format": fmt, "via": via,
                                            "metric": "save_load"}, ours=None, baseline=None,
                                    baseline_name="cloudpickle", unit="s",
                                    lower_is_better=True)
        return
    ref = Reference(top, N)
    for via in VIA:
        sample_cloudpickle(top, ref, via)
        for fmt in FORMATS:
            run_ours(top, ref, fmt, via)
    for via in VIA:
        for fmt in FORMATS:
            ours, base = harness.interleave(lambda: run_ours(top, ref, fmt, via),
                                            lambda: sample_cloudpickle(top, ref, via),
                                            rounds)
            report(fmt, via, ours, base)


if __name__ == "__main__":
    harness.rounds_main(__doc__, body, default=7)
