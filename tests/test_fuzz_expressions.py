"""Bounded fuzzing of the expression parser and evaluator (hypothesis, derandomized).

What may escape, as docs/drivers.md says: compiling an expression raises only ExpressionError;
evaluating one raises ExpressionError (a limit) or what the same arithmetic raises in Python or
numpy (ArithmeticError such as ZeroDivisionError or OverflowError, TypeError, ValueError,
IndexError). Every example must finish within its deadline (2 s), and a hang fails the test
by its timeout.
"""

from __future__ import annotations

import functools
import warnings
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openmdao_like import Array, Assembly, Component, Float, Int, List, Str, set_as_top
from openmdao_like.drivers.expressions import MAX_INT_DIGITS, ExprEvaluator
from openmdao_like.errors import ExpressionError

#: What evaluating may raise besides ExpressionError: the errors of the arithmetic itself.
ARITHMETIC_ERRORS = (ArithmeticError, TypeError, ValueError, IndexError)

FUZZ = settings(max_examples=400, derandomize=True, database=None,
                deadline=timedelta(seconds=2),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


class Fuzzed(Component):
    """Variables of every kind an expression can read, numeric and not."""

    x = Float(1.5, iotype='in')
    n = Int(3, iotype='in')
    label = Str('ab', iotype='in')
    items = List(value=[1, 2], iotype='in')
    arr = Array(np.array([1.0, -2.0, 3.0]), iotype='in')


@functools.cache
def model():
    """The assembly every example reads (built once; each example sets the values it draws)."""
    top = set_as_top(Assembly())
    top.add('q', Fuzzed())
    return top


numbers = st.one_of(
    st.integers(-10, 10**6).map(str),
    st.sampled_from(['9', '10', '2', '0', '0x7f', '1_000', '2 ** 63', '10 ** 10', '1e300',
                     '1e-300', '0.5', '3j', '0.0', '1' * (MAX_INT_DIGITS + 1),
                     '0x' + 'f' * 4000]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
#: Variable paths (the Int and the List several times over), constants and unknown names.
paths = st.sampled_from(['q.n'] * 4 + ['q.items'] * 2 + [
    'q.x', 'q.label', 'q.arr', 'q.arr[0]', 'q.arr[-1]', 'q.arr[7]', 'q.items[0]', 'q.nope', 'x',
    'q', 'pi', 'e', 'inf', 'math.pi', 'np.e'])
#: The functions docs/drivers.md lists, spelled in several ways, and some that are not allowed.
functions = st.sampled_from([
    'sin', 'cos', 'tan', 'asin', 'arccos', 'atan2', 'sinh', 'exp', 'log', 'log10', 'sqrt',
    'floor', 'ceil', 'hypot', 'radians', 'maximum', 'minimum', 'dot', 'mean', 'prod', 'norm',
    'abs', 'min', 'max', 'sum', 'pow', 'float', 'int', 'math.exp', 'np.sqrt', 'numpy.dot',
    'open', 'eval', '__import__', 'round', 'q.x'])
#: Operators, the growing ones several times over; the last four are not allowed.
binary = st.sampled_from(['**'] * 4 + ['*'] * 3 + ['+', '-', '/', '//', '%', '%', '<', '<=',
                                                   '>', '>=', '==', '!=', '&', '@', '<<'])
unary = st.sampled_from(['-', '-', '+', 'not ', '~'])


def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """One more level of the grammar above ``children``."""
    return st.one_of(
        st.builds(lambda a, op, b: f'{a} {op} {b}', children, binary, children),
        st.builds(lambda op, a: f'{op}{a}', unary, children),
        st.builds(lambda a: f'({a})', children),
        st.builds(lambda f, args: f'{f}({", ".join(args)})', functions,
                  st.lists(children, max_size=3)),
    )


expressions = st.recursive(st.one_of(numbers, paths), extend, max_leaves=12)

#: Expressions made only of operations that grow, on values that can: where a hang would be.
growing = st.recursive(
    st.sampled_from(['q.n', 'q.items', 'q.label', 'q.arr[0]', 'q.x', '9', '2', '10 ** 10',
                     '-10 ** 300', 'int(q.x * 1e300)']),
    lambda children: st.one_of(
        st.builds(lambda a, op, b: f'({a}) {op} ({b})', children,
                  st.sampled_from(['**', '*', '//', '%', '+']), children),
        st.builds(lambda f, args: f'{f}({", ".join(args)})',
                  st.sampled_from(['pow', 'sum', 'int', 'dot', 'prod', 'max', 'abs']),
                  st.lists(children, min_size=1, max_size=3))),
    max_leaves=8)
values = st.fixed_dictionaries({
    'n': st.sampled_from([0, 3, -7, 2**64, 10**30, 1 << 20_000]),
    'label': st.sampled_from(['', 'ab', '%s', 'x' * 1000]),
    'items': st.sampled_from([[1, 2], [], [10**30, 1], list(range(1000)), ['a', 'b']]),
})


def compile_and_evaluate(text: str, state: dict) -> None:
    """Compile ``text`` over the model in ``state``; evaluate it if it compiled. Fails the test
    if anything but the documented errors escapes."""
    top = model()
    for name, value in state.items():
        setattr(top.q, name, value)
    try:
        expr = ExprEvaluator(text, top, 'fuzz', allow_compare=True)
    except ExpressionError:
        return
    with warnings.catch_warnings(), np.errstate(all='ignore'):
        warnings.simplefilter('ignore')   # numpy's deprecation and overflow warnings
        try:
            expr.evaluate()
        except ARITHMETIC_ERRORS:          # ExpressionError is a ValueError
            pass


@pytest.mark.timeout(60)
@FUZZ
@given(text=expressions, state=values)
def test_generated_expressions_fail_only_as_documented(text, state):
    compile_and_evaluate(text, state)


@pytest.mark.timeout(60)
@FUZZ
@given(text=growing, state=values)
def test_growing_expressions_fail_only_as_documented(text, state):
    compile_and_evaluate(text, state)


@pytest.mark.timeout(60)
@FUZZ
@given(text=st.text(max_size=80), state=values)
def test_arbitrary_text_fails_only_as_documented(text, state):
    compile_and_evaluate(text, state)


@pytest.mark.timeout(60)
@FUZZ
@given(text=expressions)
def test_compiling_refuses_with_expression_error_only(text):
    try:
        ExprEvaluator(text, model(), 'fuzz', allow_compare=True)
    except ExpressionError as exc:
        assert str(exc).startswith('fuzz: ')
