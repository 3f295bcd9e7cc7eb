"""The benchmark models written for OpenMDAO 3 (baseline).

Reports (n2 diagrams etc.) are turned off, as a user timing a model would do.
"""

import openmdao.api as om


class Plus1(om.ExplicitComponent):
    """y = x + 1."""

    def setup(self):
        self.add_input("x", 0.0)
        self.add_output("y", 0.0)

    def compute(self, inputs, outputs):
        outputs["y"] = inputs["x"] + 1.0


class Paraboloid(om.ExplicitComponent):
    """f_xy = (x-3)^2 + x*y + (y+4)^2 - 3."""

    def setup(self):
        self.add_input("x", 0.0)
        self.add_input("y", 0.0)
        self.add_output("f_xy", 0.0)
        self.declare_partials("*", "*", method="cs")

    def compute(self, inputs, outputs):
        x = inputs["x"]
        y = inputs["y"]
        outputs["f_xy"] = (x - 3.0) ** 2 + x * y + (y + 4.0) ** 2 - 3.0


def build_chain(n):
    """Chain c0 -> ... -> c{n-1} (c{i}.y feeds c{i+1}.x), set up and run-ready.

    Returns ``(run, last)``: ``run(x0)`` sets ``c0.x`` and runs the model, ``last()`` reads the
    last component's y.
    """
    prob = om.Problem(reports=None)
    for i in range(n):
        prob.model.add_subsystem(f"c{i}", Plus1())
    for i in range(n - 1):
        prob.model.connect(f"c{i}.y", f"c{i + 1}.x")
    prob.setup()
    prob.final_setup()
    last_y = f"c{n - 1}.y"

    def run(x0):
        prob["c0.x"] = x0
        prob.run_model()

    return run, lambda: float(prob[last_y][0])


def build_doe(points, recorder_path=None):
    """A DOEDriver running the paraboloid over ``points`` ((x, y) pairs) given as a list.

    With ``recorder_path``, a SqliteRecorder is attached to the driver. Returns the set-up
    Problem; ``prob.run_driver()`` then ``prob.cleanup()`` run the cases and close the recorder.
    """
    prob = om.Problem(reports=None)
    prob.model.add_subsystem("p", Paraboloid())
    prob.model.add_design_var("p.x", lower=-50.0, upper=50.0)
    prob.model.add_design_var("p.y", lower=-50.0, upper=50.0)
    prob.model.add_objective("p.f_xy")
    cases = [[("p.x", x), ("p.y", y)] for x, y in points]
    prob.driver = om.DOEDriver(om.ListGenerator(cases))
    if recorder_path is not None:
        prob.driver.add_recorder(om.SqliteRecorder(recorder_path))
    prob.setup()
    prob.final_setup()
    return prob


def recorded_cases(recorder_path):
    """Number of driver cases in a SqliteRecorder file."""
    reader = om.CaseReader(recorder_path)
    return len(reader.list_cases("driver", recurse=False, out_stream=None))
