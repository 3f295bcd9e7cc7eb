"""Models the model-view tests draw: units on both sides of connections (a scale, an offset,
none), a sub-assembly with boundary variables, every link style, nested drivers, and a chain
of any length."""

from __future__ import annotations

from openmdao_like import Assembly, Component, Float, Str, set_as_top
from openmdao_like.drivers import FixedPointIterator, ScipyOptimizer


class Wing(Component):
    """Span in metres, a temperature in Celsius, a lift."""

    span = Float(10.0, iotype='in', units='m', low=1.0, high=60.0, desc='wing span')
    temp = Float(15.0, iotype='in', units='degC')
    lift = Float(iotype='out', units='N')
    length = Float(iotype='out', units='m', desc='half span')
    t_out = Float(iotype='out', units='degC')

    def execute(self) -> None:
        self.lift = 100.0 * self.span
        self.length = self.span / 2.0
        self.t_out = self.temp


class Fuselage(Component):
    """Reads a length in feet and a temperature in Fahrenheit."""

    length_ft = Float(1.0, iotype='in', units='ft')
    temp_f = Float(32.0, iotype='in', units='degF')
    lift = Float(0.0, iotype='in', units='N')
    drag = Float(iotype='out', units='N')
    weight = Float(iotype='out')
    note = Str('', iotype='in', desc='a note')

    def execute(self) -> None:
        self.drag = 0.01 * self.lift + self.length_ft
        self.weight = self.length_ft * 2.0


class Balance(Component):
    """A unitless feedback: reads the weight, feeds a span back."""

    weight = Float(1.0, iotype='in')
    span = Float(10.0, iotype='out', units='m')

    def execute(self) -> None:
        self.span = 10.0 + 0.001 * self.weight


class Engine(Assembly):
    """A sub-assembly: its boundary input feeds a child, a child feeds its boundary output."""

    def configure(self) -> None:
        self.add('core', Fuselage())
        self.create_passthrough('core.lift', 'thrust_in')
        self.create_passthrough('core.drag', 'thrust_out')
        self.driver.workflow.add('core')


class Aircraft(Assembly):
    """Every kind of cell: unit scale (m -> ft), unit offset (degC -> degF), feedback,
    push/pull links, a sub-assembly, a solver under an optimizer."""

    def configure(self) -> None:
        self.add('wing', Wing())
        self.add('body', Fuselage())
        self.add('trim', Balance())
        self.add('engine', Engine())
        self.connect('wing.length', 'body.length_ft')
        self.connect('wing.t_out', 'body.temp_f', link='pull')
        self.connect('wing.lift', ['body.lift', 'engine.thrust_in'])
        self.connect('body.weight', 'trim.weight')
        self.connect('trim.span', 'wing.span')
        self.add('solver', FixedPointIterator(tolerance=1e-8))
        self.solver.workflow.add(['wing', 'body', 'trim'])
        self.add('driver', ScipyOptimizer(method='SLSQP'))
        self.driver.workflow.add(['solver', 'engine'])
        self.driver.add_parameter('wing.temp', low=-40.0, high=40.0)
        self.driver.add_objective('body.drag + engine.thrust_out')
        self.driver.add_constraint('body.weight < 100')


class Stage(Component):
    """y = x + 1."""

    x = Float(0.0, iotype='in', units='m')
    y = Float(iotype='out', units='m')

    def execute(self) -> None:
        self.y = self.x + 1.0


def chain(n: int) -> Assembly:
    """A top assembly of ``n`` stages, stage i's y feeding stage i+1's x."""
    top = set_as_top(Assembly())
    for i in range(n):
        top.add(f'c{i}', Stage())
    for i in range(n - 1):
        top.connect(f'c{i}.y', f'c{i + 1}.x')
    top.driver.workflow.add([f'c{i}' for i in range(n)])
    return top
