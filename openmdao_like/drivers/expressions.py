"""Safe expressions over variable paths (objectives, constraints, responses).

An expression is parsed with `ast`, checked against a whitelist (numbers, arithmetic,
comparisons, calls of listed math functions, variable paths, constant indexing) and compiled
once into a function that reads each variable straight from its owner. Nothing else is ever
evaluated, so a model file cannot smuggle code in through an objective string.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Callable

import numpy as np

from ..errors import ExpressionError

_FUNCTIONS: dict[str, Any] = {
    name: getattr(np, name) for name in (
        'sin', 'cos', 'tan', 'arcsin', 'arccos', 'arctan', 'arctan2', 'sinh', 'cosh', 'tanh',
        'exp', 'log', 'log10', 'sqrt', 'floor', 'ceil', 'hypot', 'radians', 'degrees',
        'maximum', 'minimum', 'dot', 'mean', 'prod')
}
_FUNCTIONS.update(asin=np.arcsin, acos=np.arccos, atan=np.arctan, atan2=np.arctan2,
                  abs=abs, min=min, max=max, sum=sum, pow=pow, norm=np.linalg.norm,
                  float=float, int=int)
_CONSTANTS = {'pi': np.pi, 'e': np.e, 'inf': np.inf}
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_UNARY = (ast.USub, ast.UAdd, ast.Not)
_COMPARE = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq)
_LONE_EQUAL = re.compile(r'(?<![<>=!])=(?!=)')


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
        try:
            tree = ast.parse(text.strip(), mode='eval')
        except SyntaxError as exc:
            raise ExpressionError(f'{where}: {text!r} is not a valid expression '
                                  f'({exc.msg} at column {exc.offset})') from None
        self.refs: list[str] = []
        self._owners: list[tuple[Any, str]] = []
        self._allow_compare = allow_compare
        self._scope = scope
        body = self._rewrite(tree.body)
        self.tree = tree.body
        lam = ast.Expression(ast.Lambda(
            ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body))
        ast.fix_missing_locations(lam)
        env: dict[str, Any] = {'__builtins__': {}}
        env.update(_FUNCTIONS)
        env.update(_CONSTANTS)
        for i, (owner, _) in enumerate(self._owners):
            env[f'_o{i}'] = owner
        self._fn: Callable[[], Any] = eval(compile(lam, '<expression>', 'eval'), env)

    def _fail(self, node: ast.AST, why: str) -> None:
        raise ExpressionError(f'{self.where}: {self.text!r}: {why} (at column '
                              f'{getattr(node, "col_offset", 0) + 1})')

    def _rewrite(self, node: ast.AST) -> ast.AST:
        """Check ``node`` against the whitelist; replace variable paths by owner attributes."""
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float, complex)):
                self._fail(node, f'only numbers are allowed as constants, got {node.value!r}')
            return node
        path = _dotted(node)
        if path is not None:
            if _function_name(node) in _CONSTANTS:
                return ast.Name(_function_name(node), ast.Load())
            return self._variable(node, path)
        if isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
            return ast.BinOp(self._rewrite(node.left), node.op, self._rewrite(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
            return ast.UnaryOp(node.op, self._rewrite(node.operand))
        if isinstance(node, ast.Compare):
            if not self._allow_compare:
                self._fail(node, 'comparisons are only allowed in constraints')
            if not all(isinstance(op, _COMPARE) for op in node.ops):
                self._fail(node, 'only <, <=, >, >= and = may compare')
            return ast.Compare(self._rewrite(node.left), node.ops,
                               [self._rewrite(c) for c in node.comparators])
        if isinstance(node, ast.Call):
            name = _function_name(node.func)
            if name not in _FUNCTIONS or node.keywords:
                self._fail(node, f'unknown function {ast.unparse(node.func)!r}; allowed: '
                                 f'{", ".join(sorted(_FUNCTIONS))}')
            return ast.Call(ast.Name(name, ast.Load()),
                            [self._rewrite(a) for a in node.args], [])
        if isinstance(node, ast.Subscript):
            index = node.slice
            items = index.elts if isinstance(index, ast.Tuple) else [index]
            for item in items:
                value = item.operand if isinstance(item, ast.UnaryOp) and isinstance(
                    item.op, ast.USub) else item
                if not (isinstance(value, ast.Constant) and type(value.value) is int):
                    self._fail(node, 'indices must be integer constants')
            return ast.Subscript(self._rewrite(node.value), index, ast.Load())
        self._fail(node, f'{type(node).__name__} is not allowed in an expression')
        raise AssertionError  # unreachable: _fail raises

    def _variable(self, node: ast.AST, path: str) -> ast.AST:
        try:
            owner, name = self._scope._resolve_owner(path)
        except Exception:
            owner, name = None, None
        if owner is None or name not in owner._vars():
            self._fail(node, f'{path!r} is not a variable of {self._scope._where()!r}')
        if path not in self.refs:
            self.refs.append(path)
            self._owners.append((owner, name))
        i = self.refs.index(path)
        return ast.Attribute(ast.Name(f'_o{i}', ast.Load()), name, ast.Load())

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
