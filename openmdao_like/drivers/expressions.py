"""Safe expressions over variable paths (objectives, constraints, responses).

An expression is parsed with `ast`, checked against a whitelist (numbers, arithmetic,
comparisons, calls of listed math functions, variable paths, constant indexing) and compiled
once into a function that reads each variable straight from its owner. Nothing else is ever
evaluated, so a model file cannot smuggle code in through an objective string.

Nor can it hang the process, although Python ints, strings and lists grow without bound
(``9 ** 9 ** 9``, ``p.name * 10**12``). Operations on constants are computed, and checked, when
the expression is compiled. At run time, an operation that may meet a Python int or a non-number
calls a guard that checks its operands and result against the limits below, estimating the size
of a power or a repetition before computing it (a float operand makes a float: no check). Float
and Array values cannot grow, so arithmetic on them compiles to plain operators and costs
nothing extra.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, NoReturn

import numpy as np

from .. import tree
from ..errors import ExpressionError
from ..variables import Array, Float

#: Largest integer, constant or computed, in decimal digits: Python's own limit for turning an
#: int into text, so that every integer an expression makes can still be printed and recorded.
MAX_INT_DIGITS = 4300
#: Longest str, list or tuple an expression may build by repetition (``p.name * 3``).
MAX_SEQUENCE_LENGTH = 100_000
#: Largest exponent and modulus of ``pow(a, b, m)``, in bits (about 4 ms at this size; the cost
#: grows as bits(b) * bits(m)**1.6: 6 s at MAX_INT_DIGITS).
MAX_MODULAR_BITS = 1024
#: Deepest nesting of operations (Python's parser allows 200 nested parentheses).
MAX_DEPTH = 200

_INT_LIMIT = 10 ** MAX_INT_DIGITS
#: 2 ** _MAX_INT_BITS is about 10 ** MAX_INT_DIGITS.
_MAX_INT_BITS = int(MAX_INT_DIGITS / math.log10(2))
_SEQUENCES = (str, bytes, list, tuple)
_LONG_INT_LITERAL = re.compile(rf'(?<![\w.])\d(?:_?\d){{{MAX_INT_DIGITS},}}(?![\w.])')
_LONE_EQUAL = re.compile(r'(?<![<>=!])=(?!=)')


@dataclass(frozen=True)
class _Site:
    """Where an operation sits in an expression, for the errors raised about it."""

    where: str
    text: str
    column: int

    def error(self, why: str) -> ExpressionError:
        """An ExpressionError naming the owner, the expression, ``why`` and the column."""
        return ExpressionError(f'{self.where}: {_quote(self.text)}: {why} '
                               f'(at column {self.column})')


def _quote(text: str) -> str:
    """``repr(text)``, cut short when it is long (a 100,000-digit constant, say)."""
    return repr(text) if len(text) <= 200 else f'{text[:100]!r}... ({len(text)} characters)'


# -- guards: the operations that could grow without bound, checked before they run --------------
def _digits(value: int) -> int:
    """Decimal digits of ``value`` (to within one when it is huge)."""
    return int(math.log10(abs(value))) + 1 if value else 1


def _show(value: Any) -> str:
    """``value`` for a message, sized rather than spelled out when it is large."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f'<int of {_digits(value)} digits>'
    if isinstance(value, _SEQUENCES) and len(value) > 20:
        return f'<{type(value).__name__} of length {len(value)}>'
    return repr(value)


def _check(site: _Site, what: str, *values: Any) -> None:
    """Refuse integers beyond MAX_INT_DIGITS and arrays of Python objects among ``values``."""
    for value in values:
        if isinstance(value, int):
            if value.bit_length() > _MAX_INT_BITS and not -_INT_LIMIT < value < _INT_LIMIT:
                raise site.error(f'an integer {what} has {_digits(value)} digits; '
                                 f'the limit is {MAX_INT_DIGITS} digits')
        elif isinstance(value, np.ndarray) and value.dtype == object:
            raise site.error(f'an array of Python objects is not allowed as {what}')


def _pow(site: _Site, base: Any, exp: Any, mod: Any = None) -> Any:
    """``pow(base, exp[, mod])``, refused if an integer result would exceed the limits."""
    if mod is None and (type(base) is float or type(exp) is float or (
            type(base) is int and type(exp) is int and 0 <= exp
            and base.bit_length() * exp <= _MAX_INT_BITS)):
        return base ** exp  # the usual cases: a float, or a small power of an int
    _check(site, 'operand', base, exp, mod)
    if isinstance(base, int) and isinstance(exp, int):
        if mod is not None:
            if isinstance(mod, int) and max(exp.bit_length(),
                                            mod.bit_length()) > MAX_MODULAR_BITS:
                raise site.error(f'pow({_show(base)}, {_show(exp)}, {_show(mod)}): exponent and '
                                 f'modulus may have at most {MAX_MODULAR_BITS} bits')
        elif exp > 0 and abs(base) > 1 and (exp > _MAX_INT_BITS or exp * math.log10(
                abs(base)) >= MAX_INT_DIGITS):
            log_digits = math.log10(exp) + math.log10(math.log10(abs(base)))
            digits = f'{10 ** log_digits:.3g}' if log_digits < 300 else f'10^{log_digits:.0f}'
            raise site.error(f'{_show(base)} ** {_show(exp)} would have about {digits} digits; '
                             f'the limit is {MAX_INT_DIGITS} digits')
    return pow(base, exp) if mod is None else pow(base, exp, mod)


def _mul(site: _Site, a: Any, b: Any) -> Any:
    """``a * b``, refused if a repeated sequence would exceed MAX_SEQUENCE_LENGTH or an
    integer product MAX_INT_DIGITS (the operands being within it, the product is cheap)."""
    if type(a) is float or type(b) is float or (
            type(a) is int and type(b) is int
            and a.bit_length() + b.bit_length() <= _MAX_INT_BITS):
        return a * b  # the usual cases: a float, or a product of small ints
    _check(site, 'operand', a, b)
    if isinstance(a, _SEQUENCES) or isinstance(b, _SEQUENCES):
        seq, count = (a, b) if isinstance(a, _SEQUENCES) else (b, a)
        if isinstance(count, (int, np.integer)) and len(seq) * int(count) > MAX_SEQUENCE_LENGTH:
            raise site.error(f'{_show(seq)} * {_show(count)} would have '
                             f'{len(seq) * int(count)} items; the limit is '
                             f'{MAX_SEQUENCE_LENGTH} items')
    product = a * b
    _check(site, 'product', product)
    return product


def _floordiv(site: _Site, a: Any, b: Any) -> Any:
    """``a // b`` of integers within the limit (dividing huge ints takes quadratic time)."""
    if type(a) is not float and type(b) is not float:
        _check(site, 'operand', a, b)
    return a // b


def _mod(site: _Site, a: Any, b: Any) -> Any:
    """``a % b`` of integers within the limit; never string formatting."""
    if isinstance(a, (str, bytes)):
        raise site.error(f'{_show(a)} % ...: formatting strings with % is not allowed')
    if type(a) is not float and type(b) is not float:
        _check(site, 'operand', a, b)
    return a % b


def _sum(site: _Site, values: Any, start: Any = 0) -> Any:
    """``sum(values, start)`` from a number (adding up lists takes quadratic time)."""
    if isinstance(start, _SEQUENCES):
        raise site.error(f'sum() must start from a number, got {_show(start)}')
    return sum(values, start)


def _int(site: _Site, *args: Any) -> int:
    """``int(*args)``, refused when the result exceeds MAX_INT_DIGITS."""
    value = int(*args)
    _check(site, 'result', value)
    return value


def _numpy(site: _Site, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` for a numpy function: numbers and arrays of numbers only (numpy
    multiplies arrays of Python ints as Python ints), integers within the limit."""
    numeric = []
    for arg in args:
        if not isinstance(arg, (int, float, complex, np.ndarray, np.generic)):
            arg = np.asarray(arg)
        _check(site, f'argument of {function.__name__}()', arg)
        numeric.append(arg)
    value = function(*numeric)
    _check(site, f'result of {function.__name__}()', value)
    return value


_FUNCTIONS: dict[str, Any] = {
    name: getattr(np, name) for name in (
        'sin', 'cos', 'tan', 'arcsin', 'arccos', 'arctan', 'arctan2', 'sinh', 'cosh', 'tanh',
        'exp', 'log', 'log10', 'sqrt', 'floor', 'ceil', 'hypot', 'radians', 'degrees',
        'maximum', 'minimum', 'dot', 'mean', 'prod')
}
_FUNCTIONS.update(asin=np.arcsin, acos=np.arccos, atan=np.arctan, atan2=np.arctan2,
                  abs=abs, min=min, max=max, sum=sum, pow=pow, norm=np.linalg.norm,
                  float=float, int=int)
#: The builtins among _FUNCTIONS that need a guard when an argument may be a Python int or a
#: non-number (abs, min, max and float cannot make anything larger than their arguments).
_GUARDED_BUILTINS = {'pow': _pow, 'sum': _sum, 'int': _int}
_BUILTINS = {'abs', 'min', 'max', 'float', *_GUARDED_BUILTINS}
_CONSTANTS = {'pi': np.pi, 'e': np.e, 'inf': np.inf}
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
              ast.Pow: operator.pow}
_GUARDED_OPERATORS = {ast.Pow: _pow, ast.Mult: _mul, ast.FloorDiv: _floordiv, ast.Mod: _mod}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq)
_GUARDS = {guard.__name__: guard for guard in (_pow, _mul, _floordiv, _mod, _sum, _int, _numpy)}


def _dotted(node: ast.AST) -> str | None:
    """'a.b.c' for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return '.'.join(reversed(parts))
    return None


def _function_name(node: ast.AST) -> str | None:
    """``exp`` for ``exp``, ``math.exp``, ``numpy.exp`` or ``np.exp`` (classic models wrote
    ``math.exp``); None for anything else."""
    path = _dotted(node)
    if path is None:
        return None
    module, _, name = path.rpartition('.')
    return name if module in ('', 'math', 'numpy', 'np') else None


def _is_int_constant(node: ast.AST) -> bool:
    """Whether ``node`` is an integer constant (which min(), max()... may return as is)."""
    return isinstance(node, ast.Constant) and isinstance(node.value, int)


class ExprEvaluator:
    """A checked, compiled expression over the variables of ``scope`` (an assembly).

    Parameters
    ----------
    text : str
        The expression, e.g. ``'(p.x - 3)**2 + p.y'``.
    scope : Assembly
        The assembly whose (nested) variables the paths name.
    where : str
        The owner named in error messages (e.g. ``"top.driver objective"``).
    allow_compare : bool
        Whether comparison operators may appear (constraints).
    """

    def __init__(self, text: str, scope: Any, where: str = 'expression',
                 allow_compare: bool = False):
        if not isinstance(text, str) or not text.strip():
            raise ExpressionError(f'{where}: expected an expression string, got {text!r}')
        self.text = text
        self.where = where
        self.refs: list[str] = []
        self._owners: list[tuple[Any, str]] = []
        self._sites: list[_Site] = []
        self._allow_compare = allow_compare
        self._scope = scope
        self._source = text.strip()
        tree = self._parse()
        body, _ = self._rewrite(tree.body, 0)
        self.tree = tree.body
        lam = ast.Expression(ast.Lambda(
            ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body))
        ast.fix_missing_locations(lam)
        env: dict[str, Any] = {'__builtins__': {}, **_FUNCTIONS, **_GUARDS}
        env.update((f'_o{i}', owner) for i, (owner, _) in enumerate(self._owners))
        env.update((f'_s{i}', site) for i, site in enumerate(self._sites))
        self._fn: Callable[[], Any] = eval(compile(lam, '<expression>', 'eval'), env)

    def _parse(self) -> ast.Expression:
        """The syntax tree of the expression; Python's own refusals become ExpressionErrors."""
        try:
            return ast.parse(self._source, mode='eval')
        except (SyntaxError, ValueError) as exc:
            # Python refuses integer literals beyond its own digit limit (4300 by default)
            literal = _LONG_INT_LITERAL.search(self._source)
            if literal is not None:
                digits = sum(c.isdigit() for c in literal.group())
                raise _Site(self.where, self._source, literal.start() + 1).error(
                    f'an integer constant has {digits} digits; the limit is '
                    f'{MAX_INT_DIGITS} digits') from None
            msg, offset = getattr(exc, 'msg', str(exc)), getattr(exc, 'offset', None)
            raise ExpressionError(f'{self.where}: {_quote(self._source)} is not a valid '
                                  f'expression ({msg} at column {offset})') from None
        except (RecursionError, MemoryError):  # the parser's own stack overflowed
            raise _Site(self.where, self._source, 1).error(
                f'nested too deeply (the limit is {MAX_DEPTH} levels)') from None

    def _site(self, node: ast.AST) -> _Site:
        return _Site(self.where, self._source, getattr(node, 'col_offset', 0) + 1)

    def _fail(self, node: ast.AST, why: str) -> NoReturn:
        raise self._site(node).error(why)

    def _guarded(self, guard: Callable[..., Any], node: ast.AST,
                 args: list[ast.AST]) -> ast.Call:
        """A call of ``guard(site, *args)`` for the operation at ``node``."""
        self._sites.append(self._site(node))
        site = ast.Name(f'_s{len(self._sites) - 1}', ast.Load())
        return ast.Call(ast.Name(guard.__name__, ast.Load()), [site, *args], [])

    def _fold(self, node: ast.AST, guard: Callable[..., Any] | None,
              plain: Callable[..., Any], values: list[Any]) -> ast.Constant:
        """The value of an operation on constants, computed now (through its guard, if any)."""
        try:
            value = plain(*values) if guard is None else guard(self._site(node), *values)
        except ExpressionError:
            raise
        except Exception as exc:
            self._fail(node, f'always fails: {type(exc).__name__}: {exc}')
        return self._constant(node, value)

    def _constant(self, node: ast.AST, value: Any) -> ast.Constant:
        _check(self._site(node), 'constant', value)
        return ast.Constant(value)

    def _rewrite(self, node: ast.AST, depth: int) -> tuple[ast.AST, bool]:
        """Check ``node`` against the whitelist and the limits; return it rewritten (variable
        paths read from their owners, operations on constants folded, operations that could
        grow guarded) and whether its value is bounded: a constant, a float or complex, or a
        numpy array or scalar. An operation on bounded values has a bounded value (an int
        constant times a float is a float), so it needs no guard."""
        if depth > MAX_DEPTH:
            self._fail(node, f'nested more than {MAX_DEPTH} levels deep')
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float, complex)):
                self._fail(node, f'only numbers are allowed as constants, got {node.value!r}')
            return self._constant(node, node.value), True
        path = _dotted(node)
        if path is not None:
            if _function_name(node) in _CONSTANTS:
                return ast.Constant(_CONSTANTS[_function_name(node)]), True
            return self._variable(node, path)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return self._binop(node, depth)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            operand, bounded = self._rewrite(node.operand, depth + 1)
            if isinstance(operand, ast.Constant):
                return self._fold(node, None, _UNARY[type(node.op)], [operand.value]), True
            return ast.UnaryOp(node.op, operand), bounded and not isinstance(node.op, ast.Not)
        if isinstance(node, ast.Compare):
            if not self._allow_compare:
                self._fail(node, 'comparisons are only allowed in constraints')
            if not all(isinstance(op, _COMPARE) for op in node.ops):
                self._fail(node, 'only <, <=, >, >= and = may compare')
            left, _ = self._rewrite(node.left, depth + 1)
            rights = [self._rewrite(c, depth + 1)[0] for c in node.comparators]
            return ast.Compare(left, node.ops, rights), False
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        if isinstance(node, ast.Subscript):
            index = node.slice
            for item in index.elts if isinstance(index, ast.Tuple) else [index]:
                value = item.operand if isinstance(item, ast.UnaryOp) and isinstance(
                    item.op, ast.USub) else item
                if not (isinstance(value, ast.Constant) and type(value.value) is int):
                    self._fail(node, 'indices must be integer constants')
                _check(self._site(value), 'index', value.value)
            target, bounded = self._rewrite(node.value, depth + 1)
            return ast.Subscript(target, index, ast.Load()), bounded
        self._fail(node, f'{type(node).__name__} is not allowed in an expression')

    def _binop(self, node: ast.BinOp, depth: int) -> tuple[ast.AST, bool]:
        (left, left_bounded), (right, right_bounded) = (self._rewrite(node.left, depth + 1),
                                                        self._rewrite(node.right, depth + 1))
        guard = _GUARDED_OPERATORS.get(type(node.op))
        if isinstance(left, ast.Constant) and isinstance(right, ast.Constant):
            return self._fold(node, guard, _OPERATORS[type(node.op)],
                              [left.value, right.value]), True
        if left_bounded and right_bounded:
            return ast.BinOp(left, node.op, right), True
        if guard is None:  # + - / cannot make a value much larger than its operands
            return ast.BinOp(left, node.op, right), False
        return self._guarded(guard, node, [left, right]), False

    def _call(self, node: ast.Call, depth: int) -> tuple[ast.AST, bool]:
        name = _function_name(node.func)
        if name not in _FUNCTIONS or node.keywords:
            self._fail(node, f'unknown function {ast.unparse(node.func)!r}; allowed: '
                             f'{", ".join(sorted(_FUNCTIONS))}')
        args, bounded = [], []
        for arg in node.args:
            new, arg_bounded = self._rewrite(arg, depth + 1)
            args.append(new)
            bounded.append(arg_bounded and not _is_int_constant(new))
        function = ast.Name(name, ast.Load())
        if name not in _BUILTINS:  # a numpy function
            if all(bounded):
                return ast.Call(function, args, []), True
            return self._guarded(_numpy, node, [function, *args]), False
        guard = _GUARDED_BUILTINS.get(name)
        if all(isinstance(a, ast.Constant) for a in args):
            return self._fold(node, guard, _FUNCTIONS[name], [a.value for a in args]), True
        if name == 'pow':  # as for **, a constant exponent of a float is harmless
            safe = all(isinstance(a, ast.Constant) or b for a, b in zip(args, bounded))
        else:
            safe = all(bounded)
        call = self._guarded(guard, node, args) if guard and not safe else \
            ast.Call(function, args, [])
        return call, name == 'float' or (safe and name != 'int')

    def _variable(self, node: ast.AST, path: str) -> tuple[ast.AST, bool]:
        try:
            owner, name = self._scope._resolve_owner(path)
        except Exception:
            owner, name = None, None
        if owner is None or name not in tree.variables(owner):
            self._fail(node, f'{path!r} is not a variable of {tree.where(self._scope)!r}')
        if path not in self.refs:
            self.refs.append(path)
            self._owners.append((owner, name))
        i = self.refs.index(path)
        bounded = isinstance(tree.variables(owner)[name], (Float, Array))
        return ast.Attribute(ast.Name(f'_o{i}', ast.Load()), name, ast.Load()), bounded

    def evaluate(self) -> Any:
        """The current value of the expression."""
        return self._fn()

    def __call__(self) -> Any:
        return self._fn()

    def __getstate__(self):
        return {'text': self.text, 'scope': self._scope, 'where': self.where,
                'allow_compare': self._allow_compare}

    def __setstate__(self, state):
        # While a model is unpickled the scope may still be half-built (its children not yet
        # restored), so compile on first use rather than now.
        self.__dict__.update(text=state['text'], where=state['where'], _scope=state['scope'],
                             _allow_compare=state['allow_compare'], _fn=self._compile_late)

    def _compile_late(self) -> Any:
        """Compile an unpickled expression on its first evaluation, then evaluate it."""
        self.__init__(self.text, self._scope, self.where, self._allow_compare)
        return self._fn()

    def __getattr__(self, name: str) -> Any:
        """Compile an unpickled expression when one of its compiled attributes is first read."""
        if name.startswith('__') or '_scope' not in self.__dict__ or name == '_scope':
            raise AttributeError(name)
        self.__init__(self.text, self._scope, self.where, self._allow_compare)
        return object.__getattribute__(self, name)


def normalize_constraint(text: str) -> str:
    """Classic constraints may use a lone ``=`` for equality; turn it into ``==``."""
    return _LONE_EQUAL.sub('==', text)
