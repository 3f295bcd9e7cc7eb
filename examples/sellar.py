"""The Sellar problem, classic MDF formulation: a FixedPointIterator converges the two coupled
disciplines for every design an SLSQP optimizer tries.

Run it with ``openmdao-like run examples/sellar.py``; the optimum is z1 ~ 1.9776, z2 ~ 0,
x1 ~ 0 with objective ~ 3.1834 (y1 on its bound 3.16).
"""

from math import sqrt

from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.drivers import FixedPointIterator, ScipyOptimizer


class SellarDiscipline1(Component):
    """y1 = z1**2 + z2 + x1 - 0.2*y2."""

    z1 = Float(0.0, iotype='in', low=-10.0, high=10.0, desc='global design variable')
    z2 = Float(0.0, iotype='in', low=0.0, high=10.0, desc='global design variable')
    x1 = Float(0.0, iotype='in', low=0.0, high=10.0, desc='local design variable')
    y2 = Float(1.0, iotype='in', desc='coupling from discipline 2')
    y1 = Float(iotype='out', desc='coupling to discipline 2')

    def execute(self) -> None:
        """Evaluate discipline 1."""
        self.y1 = self.z1**2 + self.z2 + self.x1 - 0.2*self.y2


class SellarDiscipline2(Component):
    """y2 = sqrt(y1) + z1 + z2 (|y1| under the root, as in classic OpenMDAO)."""

    z1 = Float(0.0, iotype='in', low=-10.0, high=10.0, desc='global design variable')
    z2 = Float(0.0, iotype='in', low=0.0, high=10.0, desc='global design variable')
    y1 = Float(1.0, iotype='in', desc='coupling from discipline 1')
    y2 = Float(iotype='out', desc='coupling to discipline 1')

    def execute(self) -> None:
        """Evaluate discipline 2."""
        self.y2 = sqrt(abs(self.y1)) + self.z1 + self.z2


class SellarMDF(Assembly):
    """Multidisciplinary feasible Sellar: the optimizer runs the solver, which converges the
    coupled disciplines."""

    #: The discipline classes (a subclass may use its own versions of them).
    discipline1 = SellarDiscipline1
    discipline2 = SellarDiscipline2

    def configure(self) -> None:
        """Add the disciplines, close the loop, and set up solver and optimizer."""
        self.add('dis1', self.discipline1())
        self.add('dis2', self.discipline2())
        self.connect('dis1.y1', 'dis2.y1')
        self.connect('dis2.y2', 'dis1.y2')

        self.add('solver', FixedPointIterator(tolerance=1e-10, max_iterations=100))
        self.solver.workflow.add(['dis1', 'dis2'])

        self.add('driver', ScipyOptimizer(method='SLSQP', tol=1e-8))
        self.driver.workflow.add('solver')
        self.driver.add_parameter(('dis1.z1', 'dis2.z1'), low=-10.0, high=10.0, start=5.0)
        self.driver.add_parameter(('dis1.z2', 'dis2.z2'), low=0.0, high=10.0, start=2.0)
        self.driver.add_parameter('dis1.x1', low=0.0, high=10.0, start=1.0)
        self.driver.add_objective('dis1.x1**2 + dis1.z2 + dis1.y1 + exp(-dis2.y2)')
        self.driver.add_constraint('3.16 < dis1.y1')
        self.driver.add_constraint('dis2.y2 < 24.0')


top = set_as_top(SellarMDF())
