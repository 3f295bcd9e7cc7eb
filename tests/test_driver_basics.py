"""The Driver base: parameters (checks, scaler/adder, broadcast), objectives and constraints as
safe expressions, rejected expressions, current_iteration and the iteration protocol."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from openmdao_like import (Array, Assembly, Component, ConnectError, Driver, ExpressionError,
                           Float, ValidationError, set_as_top)
from openmdao_like.drivers import RunOnce


class Paraboloid(Component):
    x = Float(0.0, iotype='in', low=-50.0, high=50.0)
    y = Float(0.0, iotype='in')
    z = Float(0.0, iotype='in')
    fed = Float(0.0, iotype='in')
    arr = Array(np.array([1.0, 2.0, 3.0]), iotype='in')
    f_xy = Float(iotype='out')

    def execute(self) -> None:
        self.f_xy = (self.x - 3.0) ** 2 + self.x * self.y + (self.y + 4.0) ** 2 - 3.0


class Source(Component):
    out = Float(1.0, iotype='out')

    def execute(self) -> None:
        pass


class Sub(Assembly):
    def configure(self) -> None:
        self.add('p', Paraboloid())
        self.driver.workflow.add('p')
        self.create_passthrough('p.x', alias='px')


@pytest.fixture
def top():
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('p2', Paraboloid())
    top.add('src', Source())
    top.add('sub', Sub())
    top.connect('src.out', 'p.fed')
    top.driver.workflow.add(['src', 'p', 'p2', 'sub'])
    return top


def param_error(driver, target, **kw) -> str:
    """add_parameter must fail; return the message, which names the driver and the target."""
    with pytest.raises(ExpressionError) as info:
        driver.add_parameter(target, **kw)
    msg = str(info.value)
    assert msg.startswith(f'driver: cannot add parameter {target!r}')
    assert isinstance(info.value, ValueError)
    return msg


# -- add_parameter checks ------------------------------------------------------------------------
def test_unknown_variable(top):
    assert "'p.nope' is not a variable of" in param_error(top.driver, 'p.nope', low=0, high=1)
    assert "'ghost.x' is not a variable" in param_error(top.driver, 'ghost.x', low=0, high=1)


def test_output_is_rejected(top):
    msg = param_error(top.driver, 'p.f_xy', low=0, high=1)
    assert "'p.f_xy' is an output; a parameter must be an input" in msg


def test_connected_input_is_rejected(top):
    msg = param_error(top.driver, 'p.fed', low=0, high=1)
    assert "'p.fed' is connected to 'src.out'" in msg


def test_input_behind_a_passthrough_is_connected(top):
    msg = param_error(top.driver, 'sub.p.x', low=-1, high=1)
    assert "'sub.p.x' is connected to 'px'" in msg
    top.driver.add_parameter('sub.px', low=-1.0, high=1.0)


@pytest.mark.parametrize('kw', [{}, {'low': 0.0}, {'high': 1.0}])
def test_missing_bounds(top, kw):
    msg = param_error(top.driver, 'p.y', **kw)
    assert 'expected low and high bounds' in msg


def test_bounds_default_to_the_variables_own(top):
    param = top.driver.add_parameter('p.x')
    assert (param.low, param.high) == (-50.0, 50.0)


@pytest.mark.parametrize('low, high', [(2.0, 1.0), (1.0, 1.0)])
def test_low_must_be_below_high(top, low, high):
    msg = param_error(top.driver, 'p.y', low=low, high=high)
    assert f'expected low < high, got low={low}, high={high}' in msg


@pytest.mark.parametrize('low, high', [(-100.0, 0.0), (0.0, 60.0)])
def test_bounds_beyond_the_variables_are_rejected(top, low, high):
    msg = param_error(top.driver, 'p.x', low=low, high=high)
    assert f'bounds [{low}, {high}] exceed' in msg and '[-50.0, 50.0]' in msg


def test_duplicate_parameter(top):
    top.driver.add_parameter('p.y', low=0.0, high=1.0)
    msg = param_error(top.driver, 'p.y', low=0.0, high=2.0)
    assert "'p.y' is already set by parameter 'p.y'" in msg
    top.driver.add_parameter(('p2.y', 'p2.z'), low=0.0, high=1.0)
    msg = param_error(top.driver, 'p2.z', low=0.0, high=1.0)
    assert "'p2.z' is already set by parameter 'p2.y'" in msg


def test_zero_scaler_is_rejected(top):
    assert 'scaler must be non-zero' in param_error(top.driver, 'p.y', low=0, high=1, scaler=0)


def test_driver_outside_an_assembly():
    with pytest.raises(ExpressionError, match='add the driver to an assembly before'):
        Driver().add_parameter('p.x', low=0.0, high=1.0)


def test_a_parameter_target_cannot_then_be_connected(top):
    top.driver.add_parameter('p.y', low=-5.0, high=5.0)
    with pytest.raises(ConnectError, match=r"'p\.y' is a parameter of driver 'driver'"):
        top.connect('src.out', 'p.y')


def test_broadcast_parameter_sets_every_target(top):
    param = top.driver.add_parameter(('p.z', 'p2.z'), low=-5.0, high=5.0, name='zz')
    assert param.targets == ['p.z', 'p2.z'] and param.name == 'zz'
    assert top.driver.list_param_targets() == ['p.z', 'p2.z']
    top.driver.set_parameters([2.5])
    assert top.p.z == 2.5 and top.p2.z == 2.5
    assert top.driver.eval_parameters() == [2.5]


def test_array_parameter(top):
    param = top.driver.add_parameter('p.arr', low=np.zeros(3), high=np.full(3, 5.0))
    assert param.size == 3
    top.driver.set_parameters([np.array([1.0, 2.0, 4.0])])
    np.testing.assert_array_equal(top.p.arr, [1.0, 2.0, 4.0])


# -- scaler and adder ----------------------------------------------------------------------------
def test_scaler_and_adder(top):
    param = top.driver.add_parameter('p.y', low=-10.0, high=10.0, scaler=2.0, adder=1.0)
    top.driver.set_parameters([1.5])
    assert top.p.y == pytest.approx((1.5 + 1.0) * 2.0)            # model = (driver + adder) * scaler
    assert top.driver.eval_parameters() == [pytest.approx(1.5)]    # and back
    top.p.y = 8.0
    assert param.evaluate() == pytest.approx(8.0 / 2.0 - 1.0)
    assert param.driver_low == pytest.approx(-10.0 / 2.0 - 1.0)
    assert param.driver_high == pytest.approx(10.0 / 2.0 - 1.0)


def test_set_get_eval_and_clear_parameters(top):
    d = top.driver
    d.add_parameter('p.x', low=-10.0, high=10.0)
    d.add_parameter('p.y', low=-10.0, high=10.0, adder=-1.0)
    assert list(d.get_parameters()) == ['p.x', 'p.y']
    d.set_parameters([3.0, 4.0])
    assert (top.p.x, top.p.y) == (3.0, 3.0)
    assert d.eval_parameters() == [3.0, 4.0]
    with pytest.raises(ExpressionError, match='expected 2 parameter values, got 1'):
        d.set_parameters([1.0])
    d.remove_parameter('p.x')
    assert list(d.get_parameters()) == ['p.y']
    with pytest.raises(ExpressionError, match=r"no parameter 'nope' \(parameters: \['p\.y'\]\)"):
        d.remove_parameter('nope')
    d.clear_parameters()
    assert d.get_parameters() == {} and d.eval_parameters() == []
    top.connect('src.out', 'p.y')                         # free again


def test_parameter_values_are_validated_by_the_variable(top):
    top.driver.add_parameter('p.x', low=-50.0, high=50.0, scaler=10.0)
    with pytest.raises(ValidationError, match=r'^p\.x: expected a float in \[-50\.0, 50\.0\], '
                                              r'got 60\.0'):
        top.driver.set_parameters([6.0])


def test_start_value(top):
    top.driver.add_parameter('p.y', low=-5.0, high=5.0, start=2.0)
    assert top.p.y == 2.0


# -- objectives and constraints ------------------------------------------------------------------
def test_objective_with_math_functions_and_indexing(top):
    d = top.driver
    d.add_objective('sqrt(abs(p.f_xy)) + sin(0) + p.arr[1] * pi - log(exp(2)) + max(p.x, 1)')
    top.p.x, top.p.y = 3.0, -4.0
    top.run()
    expected = math.sqrt(abs(top.p.f_xy)) + 2.0 * math.pi - 2.0 + 3.0
    assert d.eval_objective() == pytest.approx(expected)
    assert d.eval_objectives() == [pytest.approx(expected)]
    assert list(d.get_objectives()) == [
        'sqrt(abs(p.f_xy)) + sin(0) + p.arr[1] * pi - log(exp(2)) + max(p.x, 1)']


def test_objective_reads_nested_and_negative_indices(top):
    d = top.driver
    obj = d.add_objective('sub.p.x + p.arr[-1]', name='obj')
    top.sub.px = 2.0
    assert obj.evaluate() == 0.0 + 3.0                   # sub has not run yet
    top.run()
    assert d.get_objectives()['obj'].evaluate() == 5.0


def test_duplicate_objective(top):
    top.driver.add_objective('p.f_xy')
    with pytest.raises(ExpressionError, match=r"objective 'p\.f_xy' already exists"):
        top.driver.add_objective('p.f_xy')
    top.driver.clear_objectives()
    with pytest.raises(ExpressionError, match='no objective has been added'):
        top.driver.eval_objective()


@pytest.mark.parametrize('text, lhs_minus_rhs_sign, equality', [
    ('p.x - p.y < 15.0', 1.0, False),
    ('p.x - p.y <= 15.0', 1.0, False),
    ('p.x - p.y > 15.0', -1.0, False),
    ('p.x - p.y >= 15.0', -1.0, False),
    ('p.x - p.y = 15.0', 1.0, True),
    ('p.x - p.y == 15.0', 1.0, True),
])
def test_constraint_residuals(top, text, lhs_minus_rhs_sign, equality):
    con = top.driver.add_constraint(text)
    assert con.equality is equality
    top.p.x, top.p.y = 20.0, 1.0                          # lhs = 19, rhs = 15
    assert con.evaluate() == pytest.approx(lhs_minus_rhs_sign * 4.0)
    assert top.driver.eval_constraints() == [pytest.approx(lhs_minus_rhs_sign * 4.0)]


def test_constraint_satisfied_means_residual_not_positive(top):
    d = top.driver
    d.add_constraint('p.x < 2')
    d.add_constraint('p.x > -2')
    d.add_constraint('p.arr[0] = 1')
    top.p.x = 0.0
    residuals = d.eval_constraints()
    assert residuals[0] < 0 and residuals[1] < 0 and residuals[2] == 0
    assert set(d.get_eq_constraints()) == {'p.arr[0] = 1'}
    assert set(d.get_ineq_constraints()) == {'p.x < 2', 'p.x > -2'}
    d.clear_constraints()
    assert d.eval_constraints() == []


@pytest.mark.parametrize('text', ['p.x', 'p.x < p.y < p.z', '2 + 3'])
def test_constraint_needs_one_comparison(top, text):
    with pytest.raises(ExpressionError) as info:
        top.driver.add_constraint(text)
    assert repr(text) in str(info.value) and 'must compare two expressions' in str(info.value)


def test_constraint_rejects_not_equal(top):
    with pytest.raises(ExpressionError, match=r"'p\.x != 3': only <, <=, >, >= and = may compare"):
        top.driver.add_constraint('p.x != 3')


# -- rejected expressions ------------------------------------------------------------------------
@pytest.mark.parametrize('text, why', [
    ('p.nope', r"'p\.nope' is not a variable of"),
    ('ghost.x + 1', r"'ghost\.x' is not a variable of"),
    ('p', r"'p' is not a variable of"),
    ('p.__class__', r"'p\.__class__' is not a variable of"),
    ('p.x.real', r"'p\.x\.real' is not a variable"),
    ('p._children', r"'p\._children' is not a variable"),
    ('driver.current_iteration', 'is not a variable'),
    ('(1).__class__', 'Attribute is not allowed'),
    ('__import__("os")', r"unknown function '__import__'"),
    ('open("x")', r"unknown function 'open'"),
    ('eval("1")', r"unknown function 'eval'"),
    ('getattr(p, "x")', r"unknown function 'getattr'"),
    ('p.f_xy(1)', r"unknown function 'p\.f_xy'"),
    ('sin(x=1)', r"unknown function 'sin'"),
    ('max(*p.arr)', 'Starred is not allowed'),
    ('lambda: 1', 'Lambda is not allowed'),
    ('[v for v in p.arr]', 'ListComp is not allowed'),
    ('sum(v for v in p.arr)', 'GeneratorExp is not allowed'),
    ('{1: 2}', 'Dict is not allowed'),
    ('"abc"', "only numbers are allowed as constants, got 'abc'"),
    ('True', 'only numbers are allowed as constants'),
    ('p.x if p.y else 1', 'IfExp is not allowed'),
    ('p.x and p.y', 'BoolOp is not allowed'),
    ('p.arr[p.x]', 'indices must be integer constants'),
    ('p.arr[1:2]', 'indices must be integer constants'),
    ('p.x < 2', 'comparisons are only allowed in constraints'),
    ('1 +', 'is not a valid expression'),
    ('(v := 3)', 'NamedExpr is not allowed'),
])
def test_rejected_expressions_name_the_expression(top, text, why):
    with pytest.raises(ExpressionError) as info:
        top.driver.add_objective(text)
    msg = str(info.value)
    assert msg.startswith('driver objective: ') and repr(text) in msg
    assert re.search(why, msg), msg
    assert top.driver.get_objectives() == {}


@pytest.mark.parametrize('text', ['', '   ', None, 3])
def test_empty_or_non_string_expression(top, text):
    with pytest.raises(ExpressionError, match='expected an expression string'):
        top.driver.add_objective(text)


def test_rejected_constraint_and_response_name_their_kind(top):
    with pytest.raises(ExpressionError, match=r"^driver constraint: 'open\(\"x\"\) < 1'"):
        top.driver.add_constraint('open("x") < 1')
    with pytest.raises(ExpressionError, match=r"^driver response: 'p\.q'"):
        top.driver.add_response('p.q')


def test_responses(top):
    top.driver.add_response('p.f_xy')
    top.driver.add_response('p.x * 2')
    assert top.driver.get_responses() == ['p.f_xy', 'p.x * 2']


# -- iterations ----------------------------------------------------------------------------------
class Logging(Driver):
    """Runs its workflow ``n`` times, logging every protocol call."""

    def __init__(self, n: int = 2):
        super().__init__()
        self.n = n
        self.log: list[str] = []

    def start_iteration(self) -> None:
        self.log.append('start')
        super().start_iteration()

    def continue_iteration(self) -> bool:
        self.log.append('continue')
        return self.current_iteration < self.n

    def pre_iteration(self) -> None:
        self.log.append('pre')
        super().pre_iteration()

    def run_iteration(self) -> None:
        self.log.append('run')
        super().run_iteration()

    def post_iteration(self) -> None:
        self.log.append('post')
        super().post_iteration()


def test_iteration_protocol_order_and_current_iteration():
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('driver', Logging(n=2))
    top.driver.workflow.add('p')
    top.run()
    assert top.driver.log == ['start', 'continue', 'pre', 'run', 'post',
                              'continue', 'pre', 'run', 'post', 'continue']
    assert top.driver.current_iteration == 2 and top.p.exec_count == 2
    top.driver.log.clear()
    top.run()                                             # start_iteration resets the count
    assert top.driver.current_iteration == 2 and top.p.exec_count == 4
    assert top.driver.log[0] == 'start'


def test_zero_iterations_run_nothing():
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('driver', Logging(n=0))
    top.driver.workflow.add('p')
    top.run()
    assert top.driver.log == ['start', 'continue'] and top.p.exec_count == 0


def test_base_driver_and_runonce_run_once():
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    assert isinstance(top.driver, RunOnce)
    top.driver.workflow.add('p')
    top.run()
    assert top.driver.current_iteration == 1 and top.p.exec_count == 1
    top.add('driver', Driver())
    top.driver.workflow.add('p')
    top.run()
    assert top.driver.current_iteration == 1 and top.p.exec_count == 2


def test_workflow_must_be_a_workflow(top):
    with pytest.raises(ExpressionError, match=r'driver\.workflow: expected a Workflow'):
        top.driver.workflow = ['p']


def test_driver_cannot_be_in_its_own_workflow(top):
    from openmdao_like import ConfigError
    top.driver.workflow.add('driver')
    with pytest.raises(ConfigError, match='a driver cannot be in its own workflow'):
        top.run()
