"""The classic OpenMDAO paraboloid tutorial: minimize f(x, y) subject to x - y >= 15.

Run it with ``openmdao-like run examples/paraboloid.py``; the optimum is x ~ 7.1667,
y ~ -7.8333, f ~ -27.0833 (unconstrained: x ~ 6.6667, y ~ -7.3333, f ~ -27.3333).
"""

from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.drivers import ScipyOptimizer


class Paraboloid(Component):
    """f(x, y) = (x - 3)^2 + x*y + (y + 4)^2 - 3."""

    x = Float(0.0, iotype='in', low=-50.0, high=50.0, units='m', desc='x position')
    y = Float(0.0, iotype='in', units='m', desc='y position')
    f_xy = Float(iotype='out', units='m**2', desc='F(x, y)')

    def execute(self) -> None:
        """Evaluate the paraboloid."""
        self.f_xy = (self.x - 3.0)**2 + self.x*self.y + (self.y + 4.0)**2 - 3.0


class OptimizationUnconstrained(Assembly):
    """Minimize the paraboloid within bounds only."""

    def configure(self) -> None:
        """Add the paraboloid and an SLSQP optimizer over x and y."""
        self.add('p', Paraboloid())
        self.add('driver', ScipyOptimizer(method='SLSQP'))
        self.driver.workflow.add('p')
        self.driver.add_parameter('p.x', low=-50.0, high=50.0)
        self.driver.add_parameter('p.y', low=-50.0, high=50.0)
        self.driver.add_objective('p.f_xy')


class OptimizationConstrained(OptimizationUnconstrained):
    """Minimize the paraboloid subject to x - y >= 15."""

    def configure(self) -> None:
        """The unconstrained problem plus the constraint."""
        super().configure()
        self.driver.add_constraint('p.x - p.y >= 15.0')


top = set_as_top(OptimizationConstrained())
