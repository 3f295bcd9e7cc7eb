"""A design of experiments over the classic paraboloid: 10,000 Latin hypercube cases, each
recorded in an SQLite database.

Run it with ``openmdao-like run examples/doe_sqlite.py``; the cases land in
``doe_results.sqlite`` in the current directory. Read them back with::

    from openmdao_like.recorders import read_cases
    rows = read_cases('doe_results.sqlite')   # [{'id', 'status', 'error', 'p.x', ...}, ...]

To spread the cases over worker processes, give the driver ``sequential=False``.
"""

from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import LatinHypercube
from openmdao_like.recorders import SQLiteRecorder


class Paraboloid(Component):
    """f(x, y) = (x - 3)^2 + x*y + (y + 4)^2 - 3."""

    x = Float(0.0, iotype='in', low=-50.0, high=50.0, units='m', desc='x position')
    y = Float(0.0, iotype='in', low=-50.0, high=50.0, units='m', desc='y position')
    f_xy = Float(iotype='out', units='m**2', desc='F(x, y)')

    def execute(self) -> None:
        """Evaluate the paraboloid."""
        self.f_xy = (self.x - 3.0)**2 + self.x*self.y + (self.y + 4.0)**2 - 3.0


class ParaboloidDOE(Assembly):
    """10,000 Latin hypercube samples of the paraboloid over [-50, 50]^2."""

    def configure(self) -> None:
        """Add the paraboloid, the DOE driver over x and y, and the recorder."""
        self.add('p', Paraboloid())
        self.add('driver', DOEDriver(LatinHypercube(num_samples=10_000, seed=0)))
        self.driver.workflow.add('p')
        self.driver.add_parameter('p.x', low=-50.0, high=50.0)
        self.driver.add_parameter('p.y', low=-50.0, high=50.0)
        self.driver.add_response('p.f_xy')
        self.recorders = [SQLiteRecorder('doe_results.sqlite')]


top = set_as_top(ParaboloidDOE())
