"""Expressions cannot hang the process: integer powers, products, repetitions and constants that
would grow beyond the limits of `openmdao_like.drivers.expressions` are refused with an
ExpressionError naming the driver, the expression and the column, when the expression is added
(constants) or evaluated (variables), through the driver API and through a YAML model file."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from openmdao_like import Array, Assembly, Component, Float, Int, List, Str, load, set_as_top
from openmdao_like.drivers import ScipyOptimizer
from openmdao_like.drivers.expressions import (MAX_INT_DIGITS, MAX_MODULAR_BITS,
                                               MAX_SEQUENCE_LENGTH)
from openmdao_like.errors import ExpressionError, PersistenceError

pytestmark = pytest.mark.timeout(20)


class Sizes(Component):
    """One variable of each kind an expression can grow: Int, Str, List (and bounded ones)."""

    x = Float(2.0, iotype='in', low=-10.0, high=10.0)
    n = Int(3, iotype='in')
    label = Str('ab', iotype='in')
    items = List(value=[1, 2], iotype='in')
    arr = Array(np.array([1.0, 2.0]), iotype='in')
    y = Float(iotype='out')

    def execute(self):
        self.y = (self.x - 1.0) ** 2


class Model(Assembly):
    """An optimizer over ``q.x`` with a harmless objective and constraint."""

    def configure(self):
        self.add('q', Sizes())
        self.add('driver', ScipyOptimizer(method='SLSQP', maxiter=20))
        self.driver.workflow.add('q')
        self.driver.add_parameter('q.x')
        self.driver.add_objective('q.y')
        self.driver.add_constraint('q.x <= 5')


@pytest.fixture
def top():
    return set_as_top(Model())


def bare(top):
    """``top`` with its objective and constraint removed."""
    top.driver.clear_objectives()
    top.driver.clear_constraints()
    return top


# -- refused when added: constant sub-expressions are computed and checked at compile time ------
HUGE_CONSTANTS = [
    ('9 ** 9 ** 9', r"9 \*\* 387420489 would have about 3\.7e\+08 digits; the limit is 4300 "
                    r"digits \(at column 1\)"),
    ('pow(2, 10 ** 10)', r"2 \*\* 10000000000 would have about 3\.01e\+09 digits; the limit is "
                         r"4300 digits \(at column 1\)"),
    ('int(1e300) ** int(1e300)', r"<int of 301 digits> \*\* <int of 301 digits> would have "
                                 r"about 10\^302 digits; the limit is 4300 digits"),
    ('1 + 2 ** 100000', r"2 \*\* 100000 would have about 3\.01e\+04 digits.*\(at column 5\)"),
    ('10 ** 4000 * 10 ** 4000', r"an integer product has 8001 digits; the limit is 4300 "
                                r"digits"),
    ('10 ** 4299 * 10', r"an integer product has 4301 digits; the limit is 4300 digits"),
    ('1' * 100_001, r"an integer constant has 100001 digits; the limit is 4300 digits "
                    r"\(at column 1\)"),
    ('2 * ' + '7' * 5000, r"an integer constant has 5000 digits.*\(at column 5\)"),
    ('0x' + 'f' * 5000, r"an integer constant has 6021 digits; the limit is 4300 digits"),
    ('pow(3, 2 ** 2000, 2 ** 2000 + 1)', r"exponent and modulus may have at most 1024 bits"),
]


@pytest.mark.parametrize('text, why', HUGE_CONSTANTS, ids=[t[:30] for t, _ in HUGE_CONSTANTS])
def test_huge_constants_are_refused_by_add_objective(top, text, why):
    with pytest.raises(ExpressionError, match=why) as info:
        bare(top).driver.add_objective(text)
    assert str(info.value).startswith(f'driver objective: {repr(text[:100])}')
    assert top.driver.get_objectives() == {}


@pytest.mark.parametrize('text, why', HUGE_CONSTANTS, ids=[t[:30] for t, _ in HUGE_CONSTANTS])
def test_huge_constants_are_refused_by_add_constraint(top, text, why):
    constraint = f'{text} <= q.x'
    with pytest.raises(ExpressionError, match=why) as info:
        bare(top).driver.add_constraint(constraint)
    assert str(info.value).startswith(f'driver constraint: {repr(constraint[:100])}')
    assert top.driver.get_constraints() == {}


def test_a_long_expression_is_quoted_short():
    text = '1' * 100_001
    with pytest.raises(ExpressionError) as info:
        set_as_top(Model()).driver.add_response(text)
    assert len(str(info.value)) < 300 and '(100001 characters)' in str(info.value)


def test_an_expression_that_always_fails_is_refused_when_added(top):
    with pytest.raises(ExpressionError, match=r"^driver objective: '1 / 0': always fails: "
                                              r"ZeroDivisionError: division by zero "
                                              r"\(at column 1\)$"):
        top.driver.add_objective('1 / 0')


@pytest.mark.parametrize('text', ['-' * 100_000 + '1', '+'.join(['1'] * 300),
                                  '-(' * 150 + 'q.x' + ')' * 150 + ' + 1' * 100])
def test_deep_nesting_is_refused(top, text):
    with pytest.raises(ExpressionError, match=r'nest.* 200 levels'):
        top.driver.add_objective(text)


# -- refused when evaluated: values of variables are checked before each risky operation --------
AT_RUN_TIME = [
    # (expression, variable values, what the message says)
    ('q.n ** 10 ** 10', {}, r"3 \*\* 10000000000 would have about 4\.77e\+09 digits; the limit "
                            r"is 4300 digits"),
    ('pow(q.n, 10 ** 10)', {}, r"3 \*\* 10000000000 would have about"),
    ('2 ** q.n', {'n': 10 ** 9}, r"2 \*\* 1000000000 would have about 3\.01e\+08 digits"),
    ('int(q.x * 1e300) ** int(q.x * 1e300)', {}, r"<int of 301 digits> \*\* <int of 301 "
                                                  r"digits> would have about 10\^303 digits"),
    ('max(q.x, 9) ** 10 ** 10', {}, r"9 \*\* 10000000000 would have about"),
    ('q.n * q.n', {'n': 1 << 10_000}, r"an integer product has 6021 digits"),
    ('q.n // 7', {'n': 1 << 1_000_000}, r"an integer operand has 301030 digits; the limit is "
                                        r"4300 digits"),
    ('q.n % (q.n - 1)', {'n': 1 << 1_000_000}, r"an integer operand has 301030 digits"),
    ('dot(q.n, q.n) ** 2', {'n': 10 ** 4000}, r"an integer result of dot\(\) has 8001 digits"),
    ('pow(q.n, 2 ** 2000, 7)', {}, r"pow\(3, <int of 603 digits>, 7\): exponent and modulus may "
                                   r"have at most 1024 bits"),
    ('q.label * 10 ** 9', {}, r"'ab' \* 1000000000 would have 2000000000 items; the limit is "
                             r"100000 items"),
    ('q.items * q.n', {'n': 10 ** 12}, r"\[1, 2\] \* 1000000000000 would have 2000000000000 "
                                       r"items"),
    ('q.label % q.x', {'label': '%0999999999d'}, r"'%0999999999d' % \.\.\.: formatting strings "
                                               r"with % is not allowed"),
    ('sum(q.items, q.items)', {}, r"sum\(\) must start from a number, got \[1, 2\]"),
    ('prod(q.items)', {'items': [10 ** 30] * 1000}, r"an array of Python objects is not "
                                                     r"allowed as argument of prod\(\)"),
    ('(q.arr + q.items) ** 2', {'items': [10 ** 30, 1]}, r"an array of Python objects is not "
                                                         r"allowed as operand"),
    ('int(q.label, 2) * 2', {'label': '1' * 20_000}, r"an integer result has 6021 digits"),
]


def with_values(top, values):
    for name, value in values.items():
        setattr(top.q, name, value)
    return top


@pytest.mark.parametrize('text, values, why', AT_RUN_TIME, ids=[t for t, _, _ in AT_RUN_TIME])
def test_growth_through_variables_is_refused_when_evaluated(top, text, values, why):
    objective = bare(with_values(top, values)).driver.add_objective(text)  # no constant: adds
    with pytest.raises(ExpressionError, match=why) as info:
        objective.evaluate()
    assert str(info.value).startswith(f'driver objective: {text!r}: ')
    assert str(info.value).endswith(')') and '(at column ' in str(info.value)


@pytest.mark.parametrize('text, values, why', AT_RUN_TIME[:3],
                         ids=[t for t, _, _ in AT_RUN_TIME[:3]])
def test_run_stops_with_the_error_of_an_objective(top, text, values, why):
    bare(with_values(top, values)).driver.add_objective(text)
    with pytest.raises(ExpressionError, match=why):
        top.run()


def test_run_stops_with_the_error_of_a_constraint(top):
    top.driver.add_constraint('q.n ** 10 ** 10 <= q.x')
    with pytest.raises(ExpressionError, match=r"^driver constraint: 'q\.n \*\* 10 \*\* 10': 3 "
                                              r"\*\* 10000000000 would have about 4\.77e\+09 "
                                              r"digits; the limit is 4300 digits "
                                              r"\(at column 1\)$"):
        top.run()


def test_the_column_points_at_the_operation(top):
    objective = bare(top).driver.add_objective('q.x + (q.n + 1) ** 10 ** 10')
    with pytest.raises(ExpressionError, match=r'4 \*\* 10000000000 .*\(at column 7\)$'):
        objective.evaluate()


# -- through a model file -----------------------------------------------------------------------
def yaml_with(top, **lines: str) -> str:
    """The YAML of ``top`` with the driver's objective/constraint lines replaced."""
    stream = io.StringIO()
    top.save(stream, fmt='yaml')
    text = stream.getvalue()
    for key, value in lines.items():
        old = {'objectives': 'objectives: [q.y]', 'constraints': 'constraints: [q.x <= 5]'}[key]
        assert old in text
        text = text.replace(old, value)
    return text


@pytest.mark.parametrize('text, why', HUGE_CONSTANTS[:3], ids=[t for t, _ in HUGE_CONSTANTS[:3]])
def test_a_model_file_with_a_huge_constant_does_not_load(top, text, why):
    constraint = f'{text} <= 1'
    model = yaml_with(top, constraints=f'constraints: [{constraint!r}]')
    with pytest.raises(PersistenceError, match=why) as info:
        load(io.StringIO(model))
    assert isinstance(info.value.__cause__, ExpressionError)
    assert f'driver constraint: {constraint!r}' in str(info.value)


@pytest.mark.parametrize('key, line, why', [
    ('constraints', "constraints: ['q.n ** 10 ** 10 <= 1']",
     r"^driver constraint: 'q\.n \*\* 10 \*\* 10': 3 \*\* 10000000000 would have about"),
    ('objectives', "objectives: ['q.label * 10 ** 9']",
     r"^driver objective: 'q\.label \* 10 \*\* 9': 'ab' \* 1000000000 would have 2000000000 "
     r"items"),
])
def test_a_model_file_growing_a_variable_fails_when_run(top, key, line, why):
    loaded = load(io.StringIO(yaml_with(top, **{key: line})))
    with pytest.raises(ExpressionError, match=why):
        loaded.run()


# -- what stays allowed gives the same values as before --------------------------------------------
LEGITIMATE = [
    ('q.x ** 2', 4.0),
    ('2 ** 10', 1024),
    ('q.n ** 3', 27),
    ('q.x ** 0.5', math.sqrt(2.0)),
    ('q.x ** -1.5', 2.0 ** -1.5),
    ('2.5 ** q.x', 6.25),
    ('pow(2, 3)', 8),
    ('pow(q.x, 3)', 8.0),
    ('pow(q.n, 4, 5)', 1),
    ('pow(3, -1, 7)', 5),
    ('q.n ** -2', 1 / 9),
    ('10 ** 4000 // 10 ** 3998', 100),
    ('2 ** 14000 // 2 ** 13999', 2),
    ('int(q.x) ** int(q.x)', 4),
    ('max(q.x, 0) ** 2', 4.0),
    ('q.label * 3', 'ababab'),
    ('q.items * q.n', [1, 2, 1, 2, 1, 2]),
    ('sum(q.items) + sum(q.arr)', 6.0),
    ('q.n // 2 + q.n % 2', 2),
    ('sin(q.x) + exp(q.n)', math.sin(2.0) + math.exp(3)),
    ('prod(q.items) * dot(q.arr, q.arr)', 10.0),
    ('2 * pi + e', 2 * math.pi + math.e),
]


@pytest.mark.parametrize('text, value', LEGITIMATE, ids=[t for t, _ in LEGITIMATE])
def test_legitimate_expressions_keep_their_values(top, text, value):
    expected = pytest.approx(value) if isinstance(value, float) else value
    assert top.driver.add_response(text).evaluate() == expected


def test_array_powers(top):
    top.q.arr = np.array([1.0, 2.0, 3.0])
    assert np.array_equal(top.driver.add_response('q.arr ** 2').evaluate(), [1.0, 4.0, 9.0])
    assert np.array_equal(top.driver.add_response('2 ** q.arr').evaluate(), [2.0, 4.0, 8.0])
    assert np.array_equal(top.driver.add_response('q.arr ** q.n').evaluate(), [1.0, 8.0, 27.0])


def test_the_limits_are_exact_enough(top):
    """The largest allowed results sit just under the limits."""
    largest = f'9 * 10 ** {MAX_INT_DIGITS - 1} + (10 ** {MAX_INT_DIGITS - 1} - 1)'
    assert top.driver.add_response(largest).evaluate() == 10 ** MAX_INT_DIGITS - 1
    with pytest.raises(ExpressionError, match='an integer constant has 4301 digits'):
        top.driver.add_response(f'{largest} + 1')
    top.q.label = 'x'
    assert len(top.driver.add_response(f'q.label * {MAX_SEQUENCE_LENGTH}').evaluate()) == \
        MAX_SEQUENCE_LENGTH
    assert top.driver.add_response(f'pow(3, 2 ** {MAX_MODULAR_BITS - 1}, 2 ** '
                                   f'{MAX_MODULAR_BITS - 1} + 1)').evaluate() > 0


def test_the_optimizer_still_optimizes(top):
    top.driver.add_constraint('q.n ** 2 * q.x >= 9 * 1.5')   # an Int in a guarded product
    top.run()
    assert top.driver.success and top.q.x == pytest.approx(1.5, abs=1e-6)
