"""Driver parameters, objectives, constraints and responses.

A `Parameter` is an input (or several, broadcast) that a driver sets. Values in the model are
``(driver_value + adder) * scaler`` as in classic OpenMDAO; ``low``/``high`` are in model units.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ExpressionError
from .expressions import ExprEvaluator, normalize_constraint


class Parameter:
    """An input variable (or a group of inputs set together) that a driver varies.

    Parameters
    ----------
    targets : list of str
        Variable paths set together (several = a broadcast parameter).
    low, high : float or array
        Bounds in model units.
    scaler, adder : float
        ``model_value = (driver_value + adder) * scaler``.
    name : str
        Name under which the driver reports the parameter (default: the first target).
    fd_step : float, optional
        Finite-difference step in driver units.
    """

    def __init__(self, targets: list[str], low: Any, high: Any, scaler: float = 1.0,
                 adder: float = 0.0, name: str | None = None, fd_step: float | None = None):
        self.targets = targets
        self.low, self.high = low, high
        self.scaler, self.adder = float(scaler), float(adder)
        self.name = name or targets[0]
        self.fd_step = fd_step
        self.size = 1
        self._owners: list[tuple[Any, str]] = []

    def bind(self, scope: Any) -> None:
        """Resolve the targets to (owner, variable name) once, for fast setting."""
        self._owners = [scope._resolve_owner(t) for t in self.targets]
        owner, name = self._owners[0]
        value = getattr(owner, name)
        self.size = int(np.size(value)) if isinstance(value, np.ndarray) else 1

    def set_value(self, value: Any) -> None:
        """Set every target to ``value`` (model units)."""
        for owner, name in self._owners:
            setattr(owner, name, value)

    def get_value(self) -> Any:
        """Value of the first target (model units)."""
        owner, name = self._owners[0]
        return getattr(owner, name)

    def set(self, driver_value: Any) -> None:
        """Set from a driver-space value."""
        self.set_value((driver_value + self.adder) * self.scaler)

    def evaluate(self) -> Any:
        """The current value in driver space."""
        return self.get_value() / self.scaler - self.adder

    @property
    def driver_low(self) -> Any:
        """``low`` in driver space."""
        return self.low / self.scaler - self.adder

    @property
    def driver_high(self) -> Any:
        """``high`` in driver space."""
        return self.high / self.scaler - self.adder

    def __repr__(self) -> str:
        return f'Parameter({self.name!r}, low={self.low}, high={self.high})'


class Objective:
    """A scalar expression a driver minimizes."""

    def __init__(self, text: str, scope: Any, where: str, name: str | None = None):
        self.text = text
        self.name = name or text
        self.expr = ExprEvaluator(text, scope, where)

    def evaluate(self) -> Any:
        """The current value."""
        return self.expr.evaluate()


class Constraint:
    """``lhs <op> rhs``; `evaluate` returns the residual: <= 0 when an inequality holds, 0 when
    an equality does (``lhs - rhs`` for ``<``/``=``, ``rhs - lhs`` for ``>``)."""

    def __init__(self, text: str, scope: Any, where: str, name: str | None = None):
        self.text = text
        self.name = name or text
        expr = ExprEvaluator(normalize_constraint(text), scope, where, allow_compare=True)
        tree = expr.tree
        import ast
        if not isinstance(tree, ast.Compare) or len(tree.ops) != 1:
            raise ExpressionError(f'{where}: constraint {text!r} must compare two expressions '
                                  f'with one of <, <=, >, >=, = (e.g. "p.x - p.y >= 15")')
        op = tree.ops[0]
        self.equality = isinstance(op, ast.Eq)
        self.sign = -1.0 if isinstance(op, (ast.Gt, ast.GtE)) else 1.0
        self.lhs = ExprEvaluator(ast.unparse(tree.left), scope, where)
        self.rhs = ExprEvaluator(ast.unparse(tree.comparators[0]), scope, where)
        self.refs = expr.refs

    def evaluate(self) -> Any:
        """The residual (see class docstring)."""
        return self.sign * (self.lhs.evaluate() - self.rhs.evaluate())
