"""paraboloid_plugin: the classic OpenMDAO paraboloid as an installable openmdao_like component.

Installed, it is found by entry-point name::

    from openmdao_like import create
    p = create('paraboloid_plugin.Paraboloid', version='1.0')
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from openmdao_like import Component, Float

try:
    __version__ = version('paraboloid-plugin')
except PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = 'unknown'


class Paraboloid(Component):
    """f(x, y) = (x - 3)^2 + x*y + (y + 4)^2 - 3.

    Its minimum is f = -27.333 at x = 6.667, y = -7.333; subject to x - y >= 15 it is
    f = -27.083 at x = 7.167, y = -7.833.
    """

    x = Float(0.0, iotype='in', low=-50.0, high=50.0, units='m', desc='x position')
    y = Float(0.0, iotype='in', low=-50.0, high=50.0, units='m', desc='y position')
    f_xy = Float(0.0, iotype='out', units='m**2', desc='F(x, y)')

    def execute(self) -> None:
        """Evaluate the paraboloid at (x, y)."""
        x, y = self.x, self.y
        self.f_xy = (x - 3.0) ** 2 + x * y + (y + 4.0) ** 2 - 3.0


__all__ = ['Paraboloid', '__version__']
