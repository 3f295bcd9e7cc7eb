"""Components served by the test object servers (importable there: the fixtures put this
directory on the servers' PYTHONPATH)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from openmdao_like import (Array, Assembly, Component, File, FileRef, Float, Instance, Str,
                           set_as_top)
from openmdao_like.errors import ConvergenceError


class Paraboloid(Component):
    """f(x, y) = (x-3)^2 + xy + (y+4)^2 - 3, in metres."""

    x = Float(0.0, iotype='in', low=-50.0, high=50.0, units='m')
    y = Float(0.0, iotype='in', low=-50.0, high=50.0, units='m')
    f_xy = Float(iotype='out', units='m**2')

    def execute(self) -> None:
        self.f_xy = (self.x - 3.0) ** 2 + self.x * self.y + (self.y + 4.0) ** 2 - 3.0


class Scale(Component):
    """y = k * x (unitless)."""

    x = Float(0.0, iotype='in')
    k = Float(2.0, iotype='in')
    y = Float(iotype='out')

    def execute(self) -> None:
        self.y = self.k * self.x


class ArrayScale(Component):
    """b = k * a for an array of any length."""

    a = Array(np.zeros(3), iotype='in')
    k = Float(2.0, iotype='in')
    b = Array(np.zeros(3), iotype='out')

    def execute(self) -> None:
        self.b = self.a * self.k


class Fails(Component):
    """Raises the exception named by ``kind`` when run."""

    kind = Str('ZeroDivisionError', iotype='in')
    y = Float(iotype='out')

    def execute(self) -> None:
        if self.kind == 'ZeroDivisionError':
            self.y = 1.0 / 0.0
        if self.kind == 'ConvergenceError':
            raise ConvergenceError(f'{self.get_pathname() or "fails"}: did not converge')
        if self.kind == 'custom':
            raise CustomError('a custom failure')
        self.y = 1.0


class CustomError(Exception):
    """An exception type that is neither builtin nor openmdao_like's."""


class Sleeper(Component):
    """Sleeps ``delay`` seconds, then copies x to y."""

    delay = Float(0.0, iotype='in')
    x = Float(0.0, iotype='in')
    y = Float(iotype='out')

    def execute(self) -> None:
        time.sleep(self.delay)
        self.y = self.x


class FileWriter(Component):
    """Writes ``size`` bytes of a deterministic pattern to ``data.bin``."""

    size = Float(1000.0, iotype='in')
    out_file = File(iotype='out', local_path='data.bin', binary=True)

    def execute(self) -> None:
        block = bytes(range(256)) * 4096
        left = int(self.size)
        with open('data.bin', 'wb') as out:
            while left > 0:
                out.write(block[:min(left, len(block))])
                left -= len(block)
        self.out_file = FileRef('data.bin', self, binary=True)


class FileReader(Component):
    """Reads its input file: its size, and where it lies."""

    in_file = File(iotype='in', local_path='received.bin', binary=True)
    size = Float(iotype='out')
    where = Str(iotype='out')

    def execute(self) -> None:
        path = self.in_file.abspath()
        self.size = float(os.path.getsize(path))
        self.where = path


class Holder(Component):
    """An input holding an arbitrary object (mirrored as an opaque variable)."""

    thing = Instance(CustomError, iotype='in')
    x = Float(1.0, iotype='in')
    y = Float(iotype='out')

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.thing = CustomError('held')

    def execute(self) -> None:
        self.y = 2 * self.x


def optimize(make_paraboloid: Any) -> Any:
    """An SLSQP optimization of a Scale and a paraboloid made by ``make_paraboloid`` (local,
    remote or HTTP), run: the tests compare where each kind of component ends."""
    from openmdao_like.drivers import ScipyOptimizer  # (not in the servers importing this)

    class Model(Assembly):
        def configure(self):
            self.add('scale', Scale(k=1.0))
            self.add('p', make_paraboloid())
            self.add('driver', ScipyOptimizer(method='SLSQP'))
            self.driver.workflow.add(['scale', 'p'])
            self.connect('scale.y', 'p.y')
            self.driver.add_parameter('p.x', low=-50.0, high=50.0)
            self.driver.add_parameter('scale.x', low=-50.0, high=50.0)
            self.driver.add_objective('p.f_xy')
            self.driver.add_constraint('p.x - p.y >= 15.0')
    top = set_as_top(Model())
    top.run()
    return top
