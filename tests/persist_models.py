"""Model classes for the persistence tests, importable by name (a YAML model names its classes)."""

from __future__ import annotations

import numpy as np

from openmdao_like import (Array, Assembly, Bool, Component, Dict, Enum, File, FileRef, Float,
                           Instance, Int, List, Str)
from openmdao_like.drivers import DOEDriver, ScipyOptimizer
from openmdao_like.drivers.doe import LatinHypercube


class Paraboloid(Component):
    x = Float(0.0, iotype='in', low=-50.0, high=50.0, units='m')
    y = Float(0.0, iotype='in', low=-50.0, high=50.0, units='m')
    f_xy = Float(iotype='out', units='m**2')

    def execute(self):
        self.f_xy = (self.x - 3.0)**2 + self.x*self.y + (self.y + 4.0)**2 - 3.0


class Scale(Component):
    """y = k * x (in m**2, the paraboloid's output unit)."""

    x = Float(0.0, iotype='in', units='m**2')
    k = Float(2.0, iotype='in')
    y = Float(iotype='out', units='m**2')

    def execute(self):
        self.y = self.k * self.x


class Settings:
    """A plain object for an Instance variable."""


class Everything(Component):
    """One variable of every type, inputs and outputs."""

    f = Float(1.5, iotype='in', low=0.0, high=10.0, units='m')
    i = Int(3, iotype='in', low=0)
    b = Bool(False, iotype='in')
    s = Str('hello', iotype='in')
    e = Enum('a', values=('a', 'b', 'c'), iotype='in')
    a = Array(np.zeros((2, 3)), iotype='in', shape=(2, 3), dtype=float)
    ai = Array(np.arange(4, dtype=np.int32), iotype='in', dtype=np.int32)
    l = List([1, 2], iotype='in')
    d = Dict({'k': 1.0}, iotype='in')
    klass = Instance(dict, iotype='in')
    total = Float(iotype='out')
    report = File(iotype='out', local_path='report.txt')

    def execute(self):
        self.total = self.f + self.i + float(np.sum(self.a)) + sum(self.l)
        with open('report.txt', 'w') as fh:
            fh.write(f'total {self.total}\n')
        self.report = FileRef('report.txt', self)


class Sub(Assembly):
    """A nested assembly exposing its component's input and output."""

    def configure(self):
        self.add('scale', Scale())
        self.driver.workflow.add('scale')
        self.create_passthrough('scale.x')
        self.create_passthrough('scale.y')


class Chain(Assembly):
    """``n`` Scale components in a row (``n`` is a constructor argument)."""

    def __init__(self, n: int = 3):
        self.n = n
        super().__init__()

    def configure(self):
        for i in range(self.n):
            self.add(f's{i}', Scale())
        for i in range(self.n - 1):
            self.connect(f's{i}.y', f's{i + 1}.x')
        self.driver.workflow.add([f's{i}' for i in range(self.n)])


class Cascade(Assembly):
    """A DOE, then an optimizer started from the DOE's best point, over one paraboloid; plus a
    nested assembly fed by the paraboloid."""

    def configure(self):
        self.add('p', Paraboloid())
        self.add('sub', Sub())
        self.connect('p.f_xy', 'sub.x')
        self.add('doe', DOEDriver(LatinHypercube(num_samples=8, seed=3)))
        self.doe.workflow.add(['p', 'sub'])
        self.doe.add_parameter('p.x', low=-10.0, high=10.0)
        self.doe.add_parameter('p.y', low=-10.0, high=10.0)
        self.doe.add_response('p.f_xy')
        self.doe.add_response('sub.y')
        self.add('opt', ScipyOptimizer(method='SLSQP', tol=1e-9))
        self.opt.workflow.add('p')
        self.opt.add_parameter('p.x', low=-50.0, high=50.0)
        self.opt.add_parameter('p.y', low=-50.0, high=50.0)
        self.opt.add_objective('p.f_xy')
        self.opt.add_constraint('p.x - p.y >= 15.0')
        self.driver_workflow = ['doe', 'opt']
