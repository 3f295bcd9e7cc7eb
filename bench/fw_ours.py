"""The benchmark models written for openmdao_like, against the user API of DESIGN.md.

Importing this module raises ImportError or AttributeError while openmdao_like does not provide
that API yet; the scripts then report ``"ours": null``.
"""

from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.drivers import CaseIteratorDriver, RunOnce
from openmdao_like.recorders import SQLiteRecorder, read_cases


class Plus1(Component):
    """y = x + 1."""

    x = Float(0.0, iotype="in")
    y = Float(0.0, iotype="out")

    def execute(self):
        self.y = self.x + 1.0


class Paraboloid(Component):
    """f_xy = (x-3)^2 + x*y + (y+4)^2 - 3."""

    x = Float(0.0, iotype="in", low=-50.0, high=50.0)
    y = Float(0.0, iotype="in", low=-50.0, high=50.0)
    f_xy = Float(0.0, iotype="out")

    def execute(self):
        self.f_xy = (self.x - 3.0) ** 2 + self.x * self.y + (self.y + 4.0) ** 2 - 3.0


def build_chain(n):
    """Assembly with RunOnce over c0 -> ... -> c{n-1} (c{i}.y connected to c{i+1}.x).

    Returns ``(run, last)``: ``run(x0)`` sets ``top.c0.x`` and runs the assembly, ``last()``
    reads the last component's y.
    """
    top = set_as_top(Assembly())
    top.add("driver", RunOnce())
    names = [f"c{i}" for i in range(n)]
    for name in names:
        top.add(name, Plus1())
    for src, dest in zip(names, names[1:]):
        top.connect(f"{src}.y", f"{dest}.x")
    top.driver.workflow.add(names)
    last = getattr(top, names[-1])

    def run(x0):
        top.c0.x = x0
        top.run()

    return run, lambda: last.y


def build_cases(points, recorder_path=None):
    """CaseIteratorDriver running the paraboloid over ``points`` ((x, y) pairs), serially.

    With ``recorder_path``, ``top.recorders = [SQLiteRecorder(recorder_path)]``. Returns the
    top assembly; ``top.run()`` runs the cases and leaves them in ``top.driver.results`` (and
    on disk, recorder closed, when recording).
    """
    top = set_as_top(Assembly())
    top.add("p", Paraboloid())
    top.add("driver", CaseIteratorDriver(cases=[{"p.x": x, "p.y": y} for x, y in points]))
    top.driver.workflow.add("p")
    top.driver.add_response("p.f_xy")
    if recorder_path is not None:
        top.recorders = [SQLiteRecorder(recorder_path)]
    return top


def last_result(top):
    """f_xy of the last case run by ``build_cases``' driver."""
    return top.driver.results[-1].outputs["p.f_xy"]


def recorded_cases(recorder_path):
    """Number of cases in a SQLiteRecorder file."""
    return len(read_cases(recorder_path))
