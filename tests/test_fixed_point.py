"""FixedPointIterator: loops closed by connections or classically, convergence and failure."""

from __future__ import annotations

import pickle
from math import sqrt

import numpy as np
import pytest

from openmdao_like import (Array, Assembly, Component, ConfigError, ConvergenceError, Float,
                           ModelError, ValidationError, set_as_top)
from openmdao_like.drivers import FixedPointIterator


class Dis1(Component):
    """Sellar discipline 1: y1 = z1**2 + z2 + x1 - 0.2*y2."""

    z1 = Float(5.0, iotype='in')
    z2 = Float(2.0, iotype='in')
    x1 = Float(1.0, iotype='in')
    y2 = Float(1.0, iotype='in')
    y1 = Float(iotype='out')

    def execute(self) -> None:
        self.y1 = self.z1**2 + self.z2 + self.x1 - 0.2*self.y2


class Dis2(Component):
    """Sellar discipline 2: y2 = sqrt(y1) + z1 + z2."""

    z1 = Float(5.0, iotype='in')
    z2 = Float(2.0, iotype='in')
    y1 = Float(1.0, iotype='in')
    y2 = Float(iotype='out')

    def execute(self) -> None:
        self.y2 = sqrt(abs(self.y1)) + self.z1 + self.z2


class Coupled(Assembly):
    """Sellar's coupled disciplines closed by connections, inside a FixedPointIterator."""

    def configure(self) -> None:
        self.add('dis1', Dis1())
        self.add('dis2', Dis2())
        self.connect('dis1.y1', 'dis2.y1')
        self.connect('dis2.y2', 'dis1.y2')
        self.add('driver', FixedPointIterator(tolerance=1e-10))
        self.driver.workflow.add(['dis2', 'dis1'])


def _residuals(top: Assembly) -> tuple[float, float]:
    d1, d2 = top.dis1, top.dis2
    r1 = d1.y1 - (d1.z1**2 + d1.z2 + d1.x1 - 0.2*d2.y2)
    r2 = d2.y2 - (sqrt(abs(d1.y1)) + d2.z1 + d2.z2)
    return abs(r1), abs(r2)


def test_sellar_coupling_converges_to_consistent_values() -> None:
    top = set_as_top(Coupled())
    top.run()
    solver = top.driver
    assert solver.converged is True
    assert max(_residuals(top)) < 1e-9
    assert top.dis1.y1 == pytest.approx(25.58830237, abs=1e-7)
    assert top.dis2.y2 == pytest.approx(12.05848815, abs=1e-7)
    # within the cycle the order added holds: dis2 first, so dis1.y1 is what is fed back
    assert solver.workflow.get_names() == ['dis2', 'dis1']
    assert solver.feedback == ['dis1.y1']
    assert len(solver.history) == solver.current_iteration == top.dis1.exec_count
    assert solver.history[-1] < 1e-10 <= solver.history[-2]
    assert all(b < a for a, b in zip(solver.history, solver.history[1:]))


def test_rerun_after_changing_an_input_starts_a_new_history() -> None:
    top = set_as_top(Coupled())
    top.run()
    top.dis1.z1 = top.dis2.z1 = 2.0
    top.run()
    solver = top.driver
    assert len(solver.history) == solver.current_iteration > 1
    assert max(_residuals(top)) < 1e-9


class Linear(Component):
    """y = 2*x + 1."""

    x = Float(0.0, iotype='in')
    y = Float(iotype='out')

    def execute(self) -> None:
        self.y = 2.0*self.x + 1.0


class Divergent(Assembly):
    """x -> 2x + 1 -> 2(2x + 1) + 1 ...: the loop never settles."""

    def configure(self) -> None:
        self.add('a', Linear())
        self.add('b', Linear())
        self.connect('a.y', 'b.x')
        self.connect('b.y', 'a.x')
        self.add('driver', FixedPointIterator(max_iterations=10))
        self.driver.workflow.add(['a', 'b'])


def test_non_convergence_raises_naming_solver_numbers_and_cycle() -> None:
    top = set_as_top(Divergent())
    with pytest.raises(ConvergenceError) as info:
        top.run()
    # b.y after pass k is 4**k - 1, so the last change is 3 * 4**9
    assert str(info.value) == ('driver (FixedPointIterator): did not converge in 10 iterations: '
                               'largest change 786432 (in b.y) is not below the tolerance 1e-06; '
                               'cycle members: a, b; fed back: b.y')
    assert isinstance(info.value, ModelError)
    assert top.driver.history == [3.0 * 4**k for k in range(10)]
    assert top.driver.converged is False


class Halve(Component):
    """y = 0.5*x + [1, 2] on arrays."""

    x = Array(np.zeros(2), iotype='in', shape=(2,))
    y = Array(np.zeros(2), iotype='out', shape=(2,))

    def execute(self) -> None:
        self.y = 0.5*self.x + np.array([1.0, 2.0])


class Copy(Component):
    """y = x on arrays."""

    x = Array(np.zeros(2), iotype='in', shape=(2,))
    y = Array(np.zeros(2), iotype='out', shape=(2,))

    def execute(self) -> None:
        self.y = self.x.copy()


class ArrayLoop(Assembly):
    """An array loop whose fixed point is x = [2, 4]."""

    def configure(self) -> None:
        self.add('h', Halve())
        self.add('c', Copy())
        self.connect('h.y', 'c.x')
        self.connect('c.y', 'h.x')
        self.add('driver', FixedPointIterator(tolerance=1e-8, max_iterations=60))
        self.driver.workflow.add(['h', 'c'])


def test_array_feedback_counts_elementwise() -> None:
    top = set_as_top(ArrayLoop())
    top.run()
    assert top.c.y == pytest.approx([2.0, 4.0], abs=1e-7)
    # c.y after pass k is [2, 4] * (1 - 0.5**k); the larger element dominates: 4 * 0.5**k
    assert top.driver.history[:3] == pytest.approx([2.0, 1.0, 0.5])
    assert top.driver.history[-1] < 1e-8


class Classic(Assembly):
    """The loop closed the classic way: a parameter and an equality constraint."""

    def configure(self) -> None:
        self.add('dis1', Dis1())
        self.add('dis2', Dis2())
        self.connect('dis1.y1', 'dis2.y1')
        self.add('driver', FixedPointIterator(tolerance=1e-10))
        self.driver.workflow.add(['dis1', 'dis2'])
        self.driver.add_parameter('dis1.y2')            # no bounds needed for a solver
        self.driver.add_constraint('dis1.y2 = dis2.y2')


def test_classic_parameter_and_equality_constraint() -> None:
    top = set_as_top(Classic())
    top.run()
    solver = top.driver
    assert solver.converged is True
    assert abs(top.dis1.y2 - top.dis2.y2) < 1e-10
    assert abs(solver.eval_constraints()[0]) < 1e-10
    assert top.dis1.y1 == pytest.approx(25.58830237, abs=1e-7)
    assert solver.feedback == []
    assert solver.history[-1] < 1e-10 and len(solver.history) == solver.current_iteration


def test_classic_constraint_sides_may_be_swapped() -> None:
    class Swapped(Classic):
        def configure(self) -> None:
            super().configure()
            self.driver.clear_constraints()
            self.driver.add_constraint('dis2.y2 = dis1.y2')

    top = set_as_top(Swapped())
    top.run()
    assert abs(top.dis1.y2 - top.dis2.y2) < 1e-10


def test_classic_style_needs_one_equality_per_parameter() -> None:
    class Unpaired(Classic):
        def configure(self) -> None:
            super().configure()
            self.driver.clear_constraints()
            self.driver.add_constraint('dis1.y2 < dis2.y2')

    top = set_as_top(Unpaired())
    with pytest.raises(ConfigError) as info:
        top.run()
    assert str(info.value) == ("driver (FixedPointIterator): cannot close the loop: constraint "
                               "'dis1.y2 < dis2.y2' must be an equality (\"c.x = d.y\")")

    class Missing(Classic):
        def configure(self) -> None:
            super().configure()
            self.driver.clear_constraints()

    with pytest.raises(ConfigError) as info:
        set_as_top(Missing()).run()
    assert str(info.value) == ('driver (FixedPointIterator): cannot close the loop: expected one '
                               'equality constraint per parameter, got 1 parameters (dis1.y2) '
                               'and 0 constraints ()')


def test_settings_are_checked() -> None:
    with pytest.raises(ValidationError) as info:
        FixedPointIterator(tolerance=0)
    assert str(info.value) == 'FixedPointIterator: tolerance must be a positive float, got 0 (int)'
    with pytest.raises(ValidationError) as info:
        FixedPointIterator(max_iterations=1.5)
    assert str(info.value) == ('FixedPointIterator: max_iterations must be a positive int, '
                               'got 1.5 (float)')
    solver = FixedPointIterator()
    solver.max_iteration = 7            # classic spelling
    assert solver.max_iterations == 7


def test_max_iterations_one_converging_immediately_without_a_loop() -> None:
    class NoLoop(Assembly):
        def configure(self) -> None:
            self.add('a', Linear())
            self.add('b', Linear())
            self.connect('a.y', 'b.x')
            self.add('driver', FixedPointIterator(max_iterations=1))
            self.driver.workflow.add(['a', 'b'])

    top = set_as_top(NoLoop())
    top.run()
    assert top.driver.converged and top.driver.history == [0.0]
    assert top.b.y == 3.0


def test_constraint_added_after_a_run_is_used() -> None:
    top = set_as_top(Classic())
    top.run()
    top.driver.clear_constraints()
    top.driver.add_constraint('dis2.y2 = dis1.y2')
    top.dis1.z1 = top.dis2.z1 = 2.0
    top.run()
    assert top.driver.converged and abs(top.dis1.y2 - top.dis2.y2) < 1e-10


def test_solver_survives_pickling() -> None:
    top = set_as_top(Coupled())
    top.run()
    copy = pickle.loads(pickle.dumps(top))
    assert (copy.driver.tolerance, copy.driver.max_iterations) == (1e-10, 100)
    copy.dis1.z1 = copy.dis2.z1 = 2.0
    copy.run()
    assert copy.driver.converged and max(_residuals(copy)) < 1e-9
