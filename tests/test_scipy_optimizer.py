"""ScipyOptimizer on the paraboloid: every method, scaling, array parameters, errors, caching."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from openmdao_like import (Array, Assembly, Component, ConfigError, Float, ValidationError,
                           set_as_top)
from openmdao_like.drivers import ScipyOptimizer
from openmdao_like.recorders import JSONRecorder, read_cases

CONSTRAINED = (7.0 + 1.0 / 6.0, -7.0 - 5.0 / 6.0, -27.0 - 1.0 / 12.0)
UNCONSTRAINED = (20.0 / 3.0, -22.0 / 3.0, -27.0 - 1.0 / 3.0)


class Paraboloid(Component):
    """f(x, y) = (x - 3)^2 + x*y + (y + 4)^2 - 3; remembers every point it ran at."""

    x = Float(0.0, iotype='in', low=-50.0, high=50.0, units='m')
    y = Float(0.0, iotype='in', units='m')
    f_xy = Float(iotype='out', units='m**2')

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[float, float]] = []

    def execute(self) -> None:
        self.seen.append((self.x, self.y))
        self.f_xy = (self.x - 3.0)**2 + self.x*self.y + (self.y + 4.0)**2 - 3.0


class Model(Assembly):
    """DESIGN.md's paraboloid problem; ``method``/``constrained``/scaling set per test."""

    def __init__(self, method: str = 'SLSQP', constrained: bool = True,
                 scaling: tuple[tuple[float, float], tuple[float, float]] = ((1.0, 0.0),
                                                                             (1.0, 0.0))):
        self._method, self._constrained, self._scaling = method, constrained, scaling
        super().__init__()

    def configure(self) -> None:
        self.add('p', Paraboloid())
        self.add('driver', ScipyOptimizer(method=self._method))
        self.driver.workflow.add('p')
        (sx, ax), (sy, ay) = self._scaling
        self.driver.add_parameter('p.x', low=-50.0, high=50.0, scaler=sx, adder=ax)
        self.driver.add_parameter('p.y', low=-50.0, high=50.0, scaler=sy, adder=ay)
        self.driver.add_objective('p.f_xy')
        if self._constrained:
            self.driver.add_constraint('p.x - p.y >= 15.0')


def _check_optimum(top: Model, expected: tuple[float, float, float], tol: float) -> None:
    assert top.p.x == pytest.approx(expected[0], abs=tol)
    assert top.p.y == pytest.approx(expected[1], abs=tol)
    assert top.p.f_xy == pytest.approx(expected[2], abs=tol)


@pytest.mark.parametrize('method, tol', [('SLSQP', 1e-5), ('COBYLA', 1e-3), ('COBYQA', 1e-3),
                                         ('trust-constr', 1e-3)])
def test_constrained_paraboloid(method: str, tol: float) -> None:
    top = set_as_top(Model(method))
    top.run()
    _check_optimum(top, CONSTRAINED, tol)
    assert top.driver.success is True
    assert top.p.x - top.p.y >= 15.0 - 1e-6


@pytest.mark.parametrize('method', ['SLSQP', 'Nelder-Mead', 'Powell', 'L-BFGS-B', 'TNC',
                                    'trust-constr', 'COBYLA'])
def test_unconstrained_paraboloid(method: str) -> None:
    top = set_as_top(Model(method, constrained=False))
    top.run()
    _check_optimum(top, UNCONSTRAINED, 1e-3)
    assert top.driver.success is True


@pytest.mark.parametrize('scaling', [((10.0, -2.0), (0.5, 3.0)), ((-2.0, 1.0), (100.0, 0.0))])
def test_scalers_and_adders_give_the_same_optimum(scaling) -> None:
    top = set_as_top(Model('SLSQP', scaling=scaling))
    top.run()
    _check_optimum(top, CONSTRAINED, 1e-4)
    (sx, ax), _ = scaling
    # the driver works in driver space: result.x holds the scaled values
    assert top.driver.result.x[0] == pytest.approx(top.p.x / sx - ax)


def test_method_name_is_case_insensitive() -> None:
    assert ScipyOptimizer(method='slsqp').method == 'SLSQP'
    assert ScipyOptimizer(method='NELDER-MEAD').method == 'Nelder-Mead'


class Shifted(Component):
    """f = sum((x - [1, 2, 3])**2) over an array input."""

    x = Array(np.zeros(3), iotype='in', shape=(3,), low=-10.0, high=10.0)
    f = Float(iotype='out')

    def execute(self) -> None:
        self.f = float(np.sum((self.x - np.array([1.0, 2.0, 3.0]))**2))


class ArrayModel(Assembly):
    """An array parameter flattened into the design vector, with one element constrained."""

    def configure(self) -> None:
        self.add('c', Shifted())
        self.add('driver', ScipyOptimizer())
        self.driver.workflow.add('c')
        self.driver.add_parameter('c.x', low=-10.0, high=10.0)
        self.driver.add_objective('c.f')
        self.driver.add_constraint('c.x[2] <= 2.5')


def test_array_parameter() -> None:
    top = set_as_top(ArrayModel())
    top.run()
    assert isinstance(top.c.x, np.ndarray) and top.c.x.shape == (3,)
    assert top.c.x == pytest.approx([1.0, 2.0, 2.5], abs=1e-5)
    assert top.c.f == pytest.approx(0.25, abs=1e-6)
    assert top.driver.result.x.shape == (3,)


def test_array_parameter_with_elementwise_bounds() -> None:
    top = set_as_top(ArrayModel())
    top.driver.clear_constraints()
    top.driver.remove_parameter('c.x')
    top.driver.add_parameter('c.x', low=np.array([-10.0, -10.0, -10.0]),
                             high=np.array([10.0, 10.0, 2.0]))
    top.run()
    assert top.c.x == pytest.approx([1.0, 2.0, 2.0], abs=1e-5)


def test_success_message_and_result_are_exposed() -> None:
    top = set_as_top(Model())
    assert top.driver.success is None and top.driver.result is None
    top.run()
    drv = top.driver
    assert drv.success is True
    assert drv.message == 'Optimization terminated successfully'
    assert drv.result.success and drv.result.x == pytest.approx(CONSTRAINED[:2], abs=1e-5)
    assert drv.iterations == drv.result.nit > 0
    assert drv.nfev > 0


def test_iteration_limit_reports_failure_and_leaves_a_consistent_model() -> None:
    top = set_as_top(Model())
    top.driver.maxiter = 1
    top.run()
    assert top.driver.success is False
    assert top.driver.message == 'Iteration limit reached'
    x, y = top.p.x, top.p.y
    assert top.p.f_xy == (x - 3.0)**2 + x*y + (y + 4.0)**2 - 3.0


def test_model_is_left_at_the_optimum() -> None:
    top = set_as_top(Model())
    top.run()
    best = top.driver.result.x
    assert (top.p.x, top.p.y) == (best[0], best[1])
    assert top.p.seen[-1] == (best[0], best[1])
    x, y = top.p.x, top.p.y
    assert top.p.f_xy == (x - 3.0)**2 + x*y + (y + 4.0)**2 - 3.0


@pytest.mark.parametrize('method', ['SLSQP', 'trust-constr', 'COBYLA'])
def test_one_model_run_per_distinct_point(method: str) -> None:
    top = set_as_top(Model(method))
    top.run()
    seen = top.p.seen
    assert top.p.exec_count == top.driver.nfev == len(seen)
    # every run is at a new point, except possibly the final one at the optimum
    assert len(set(seen)) == len(seen) or (len(set(seen)) == len(seen) - 1
                                           and seen[-1] in seen[:-1])
    if method == 'SLSQP':
        # one run per gradient element, not one per (function x element) as scipy's own FD does
        res = top.driver.result
        assert top.driver.nfev <= res.nfev + 2 * res.njev + 1


def test_recorded_cases_match_model_runs(tmp_path) -> None:
    top = set_as_top(Model())
    path = tmp_path / 'cases.jsonl'
    top.recorders = [JSONRecorder(str(path))]
    top.run()
    cases = read_cases(str(path))
    assert len(cases) == top.driver.nfev
    assert [c['id'] for c in cases] == list(range(len(cases)))
    assert [c['iteration'] for c in cases] == [f'driver:{i}' for i in range(len(cases))]
    assert cases[-1]['p.x'] == top.p.x and cases[-1]['p.f_xy'] == top.p.f_xy


def test_bad_method() -> None:
    with pytest.raises(ValueError) as info:
        ScipyOptimizer(method='BFGSX')
    assert str(info.value) == ("ScipyOptimizer: method must be one of SLSQP, COBYLA, COBYQA, "
                               "trust-constr, Nelder-Mead, Powell, L-BFGS-B, TNC, "
                               "differential_evolution; got 'BFGSX' (str)")
    top = set_as_top(Model())
    with pytest.raises(ValidationError) as info:
        top.driver.method = 42
    assert str(info.value).startswith('driver (ScipyOptimizer): method must be one of SLSQP, ')
    assert str(info.value).endswith('; got 42 (int)')


@pytest.mark.parametrize('kwargs, message', [
    ({'tol': 'small'}, "ScipyOptimizer: tol must be a positive float, got 'small' (str)"),
    ({'tol': -1.0}, 'ScipyOptimizer: tol must be a positive float, got -1.0 (float)'),
    ({'maxiter': 2.5}, 'ScipyOptimizer: maxiter must be a positive int, got 2.5 (float)'),
    ({'maxiter': True}, 'ScipyOptimizer: maxiter must be a positive int, got True (bool)'),
    ({'fd_step': 0}, 'ScipyOptimizer: fd_step must be a positive float, got 0 (int)'),
    ({'options': [1]}, 'ScipyOptimizer: options must be a dict, got [1] (list)'),
])
def test_bad_settings(kwargs, message) -> None:
    with pytest.raises(ValidationError) as info:
        ScipyOptimizer(**kwargs)
    assert str(info.value) == message


def test_no_objective() -> None:
    class NoObjective(Assembly):
        def configure(self) -> None:
            self.add('p', Paraboloid())
            self.add('driver', ScipyOptimizer())
            self.driver.workflow.add('p')
            self.driver.add_parameter('p.x', low=-50.0, high=50.0)

    top = set_as_top(NoObjective())
    with pytest.raises(ConfigError) as info:
        top.run()
    assert str(info.value) == ("driver (ScipyOptimizer), method 'SLSQP': no objective; add one "
                               "with add_objective()")
    assert top.p.exec_count == 0


def test_method_without_constraint_support() -> None:
    top = set_as_top(Model('Nelder-Mead'))
    with pytest.raises(ConfigError) as info:
        top.run()
    assert str(info.value) == ("driver (ScipyOptimizer), method 'Nelder-Mead': the method does "
                               "not support constraints (p.x - p.y >= 15.0); use one of SLSQP, "
                               "COBYLA, COBYQA, trust-constr, differential_evolution")


def test_options_are_passed_to_scipy() -> None:
    top = set_as_top(Model('COBYLA'))
    top.driver.options = {'rhobeg': 5.0}
    top.run()
    _check_optimum(top, CONSTRAINED, 1e-3)


def test_importing_does_not_import_scipy() -> None:
    code = ('import sys, openmdao_like, openmdao_like.drivers; '
            'print(any(m == "scipy" or m.startswith("scipy.") for m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == 'False'


def test_optimizer_survives_pickling() -> None:
    top = set_as_top(Model('COBYLA'))
    top.driver.options = {'rhobeg': 2.0}
    top.run()
    copy = pickle.loads(pickle.dumps(top))
    drv = copy.driver
    assert (drv.method, drv.tol, drv.maxiter, drv.fd_step, drv.options) == \
        ('COBYLA', 1e-8, 200, 1e-6, {'rhobeg': 2.0})
    copy.p.x, copy.p.y = 0.0, 0.0
    copy.run()
    _check_optimum(copy, CONSTRAINED, 1e-3)
