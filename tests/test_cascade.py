"""Several drivers over the same components, run in turn through ``driver_workflow``: a design
of experiments explores, then an optimizer refines."""

import pytest

from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.drivers import DOEDriver, ScipyOptimizer
from openmdao_like.drivers.doe import FullFactorial


class LoggedParaboloid(Component):
    x = Float(0.0, iotype='in', low=-50.0, high=50.0)
    y = Float(0.0, iotype='in', low=-50.0, high=50.0)
    f_xy = Float(iotype='out')

    def __init__(self):
        super().__init__()
        self.log = []

    def execute(self):
        self.log.append((self.x, self.y))
        self.f_xy = (self.x - 3.0)**2 + self.x*self.y + (self.y + 4.0)**2 - 3.0


class Cascade(Assembly):
    def configure(self):
        self.add('p', LoggedParaboloid())
        self.add('doe', DOEDriver(FullFactorial(num_levels=5)))
        self.add('opt', ScipyOptimizer(method='SLSQP'))
        for drv in (self.doe, self.opt):
            drv.workflow.add('p')
            drv.add_parameter('p.x', low=-50.0, high=50.0)
            drv.add_parameter('p.y', low=-50.0, high=50.0)
        self.doe.add_response('p.f_xy')
        self.opt.add_objective('p.f_xy')
        self.opt.add_constraint('p.x - p.y >= 15.0')
        self.driver_workflow = ['doe', 'opt']


def test_doe_then_optimizer_run_in_turn_over_the_same_component():
    top = set_as_top(Cascade())
    top.run()
    assert len(top.doe.results) == 25
    doe_points = [(c.inputs['p.x'], c.inputs['p.y']) for c in top.doe.results]
    assert top.p.log[:25] == doe_points
    assert len(top.p.log) > 25
    assert top.opt.success
    assert top.p.x == pytest.approx(7.1667, abs=1e-3)
    assert top.p.y == pytest.approx(-7.8333, abs=1e-3)


def test_driver_workflow_order_is_respected():
    top = set_as_top(Cascade())
    top.driver_workflow = ['opt', 'doe']
    top.run()
    # the DOE ran last, so the component holds the DOE's last case, not the optimum
    assert (top.p.x, top.p.y) == (50.0, 50.0)
    assert top.p.log[-25:] == [(c.inputs['p.x'], c.inputs['p.y']) for c in top.doe.results]
