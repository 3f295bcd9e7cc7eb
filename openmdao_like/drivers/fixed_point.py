"""`FixedPointIterator`: a nonlinear Gauss-Seidel solver for coupled components.

The coupled components sit in the solver's workflow and the loop is closed by ordinary
connections; `check_config` finds the values fed back around it (sources of connections whose
destination runs before the source in a pass). Each pass runs the workflow once; the solver stops
when the largest change of a fed-back value between two passes is below ``tolerance``.

The classic way of closing a loop works too: ``add_parameter('c.x')`` plus
``add_constraint('c.x = d.y')``; each pass then sets ``c.x`` to the value of ``d.y``.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import numpy as np

from .. import tree
from ..errors import ConfigError, ConvergenceError
from ..options import OptionsDictionary
from ..workflow import Workflow
from .driver import Driver
from .parameters import Parameter

logger = logging.getLogger(__name__)


def _difference(old: Any, new: Any) -> float:
    """Largest absolute elementwise difference (inf when shapes or non-numbers differ)."""
    try:
        a, b = np.asarray(new, dtype=float), np.asarray(old, dtype=float)
    except (TypeError, ValueError):
        try:
            return 0.0 if bool(new == old) else float('inf')
        except Exception:
            return float('inf')
    if a.shape != b.shape:
        return float('inf')
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def _copy(value: Any) -> Any:
    """A copy of arrays (components may change them in place); other values as they are."""
    return value.copy() if isinstance(value, np.ndarray) else value


def _largest(changes: list[tuple[float, str]]) -> tuple[float, str]:
    """The (change, label) with the largest change; a NaN counts as largest."""
    worst = (0.0, '')
    for change, label in changes:
        if np.isnan(change):
            return change, label
        if change > worst[0]:
            worst = (change, label)
    return worst


class FixedPointIterator(Driver):
    """Iterates its workflow until the values fed back around a data cycle stop changing.

    Parameters
    ----------
    tolerance : float
        Converged when the largest absolute change (arrays: elementwise) of any fed-back value,
        and of any classic parameter against its constraint's other side, is below this.
    max_iterations : int
        Passes allowed before `ConvergenceError` is raised.
    record : bool
        Send each pass to the model's recorders as a case holding the fed-back values (off by
        default: a solver's passes would bury the cases of the driver around it), numbered from
        0 in its iteration coordinate (``'driver:3|solver:0'``).

    Attributes
    ----------
    current_iteration : int
        Passes made in the current (or last) run.
    history : list of float
        The largest change after each pass of the last run.
    iterations : int
        Passes made by the last run (read-only; the same as ``current_iteration`` once it ended).
    residual : float or None
        The largest change of the last pass of the last run, the figure compared with
        ``tolerance`` (read-only; None before any pass).
    converged : bool
        Whether the last run converged.
    feedback : list of str
        Paths of the fed-back source variables (known after ``check_config``).
    """

    iterates_cycles = True
    record_by_default = False

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``tolerance`` and ``max_iterations``."""
        super().declare_options(options)
        options.declare('tolerance', 1e-6, types=float, lower=0.0, exclude_lower=True,
                        accepts='a positive float',
                        desc='converged when the largest change of a fed-back value is below '
                             'this')
        options.declare('max_iterations', 100, types=int, lower=0, exclude_lower=True,
                        accepts='a positive int',
                        desc='passes allowed before ConvergenceError is raised')

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.history: list[float] = []
        self.converged = False
        self.feedback: list[str] = []
        self._sources: list[tuple[str, Any, str]] = []
        self._pairs: list[tuple[Parameter, Any, str]] = []
        self._old: list[Any] = []
        self._worst = ''

    @property
    def iterations(self) -> int:
        """Passes made by the last run."""
        return len(self.history)

    @property
    def residual(self) -> float | None:
        """The largest change of the last pass of the last run (None before any pass)."""
        return self.history[-1] if self.history else None

    @property
    def max_iteration(self) -> int:
        """Classic name of `max_iterations`."""
        return self.max_iterations

    @max_iteration.setter
    def max_iteration(self, value: int) -> None:
        self.max_iterations = value

    # -- configuration --------------------------------------------------------------------------
    def add_parameter(self, target: str | Iterable[str], low: Any = None, high: Any = None,
                      scaler: float = 1.0, adder: float = 0.0, start: Any = None,
                      fd_step: float | None = None, name: str | None = None) -> Parameter:
        """Add an input that each pass sets from its equality constraint (bounds optional)."""
        if low is None or high is None:
            var_low, var_high = self._declared_bounds(target)
            low = (-np.inf if var_low is None else var_low) if low is None else low
            high = (np.inf if var_high is None else var_high) if high is None else high
        return super().add_parameter(target, low, high, scaler, adder, start, fd_step, name)

    def _declared_bounds(self, target: str | Iterable[str]) -> tuple[Any, Any]:
        """``low``/``high`` declared by the targets (None if not; unknown ones reported later)."""
        scope = self._scope()
        low = high = None
        for path in [target] if isinstance(target, str) else list(target):
            try:
                owner, name = scope._resolve_owner(path)
                var = tree.variables(owner)[name]
            except Exception:
                continue
            low = getattr(var, 'low', None) if low is None else low
            high = getattr(var, 'high', None) if high is None else high
        return low, high

    def check_config(self) -> None:
        """Find the values fed back around the loop (sources read earlier in a pass)."""
        super().check_config()
        asm = self.parent
        owner_of: dict[str, tuple[int, str]] = {}
        for i, name in enumerate(self._workflow.get_names()):
            sub = getattr(tree.children(asm).get(name), 'workflow', None)
            members = {name} | (sub.members() if isinstance(sub, Workflow) else set())
            for member in members:
                owner_of.setdefault(member, (i, name))
        self._sources = []
        for conn in tree.connections(asm).values():
            src, dest = owner_of.get(conn.src_comp), owner_of.get(conn.dest_comp)
            if src is None or dest is None or src[1] == dest[1] or dest[0] > src[0]:
                continue
            if all(label != conn.src for label, _, _ in self._sources):
                self._sources.append((conn.src, tree.children(asm)[conn.src_comp], conn.src_var))
        self.feedback = [label for label, _, _ in self._sources]

    def _pair_parameters(self) -> list[tuple[Parameter, Any, str]]:
        """(parameter, expression giving its next value, constraint text) for each parameter."""
        params = list(self._parameters.values())
        cons = list(self._constraints.values())
        where = f'{self._option_owner()}: cannot close the loop'
        if len(params) != len(cons):
            raise ConfigError(f'{where}: expected one equality constraint per parameter, got '
                              f'{len(params)} parameters ({", ".join(self._parameters)}) and '
                              f'{len(cons)} constraints ({", ".join(self._constraints)})')
        pairs, unused = [], list(params)
        for con in cons:
            if not con.equality:
                raise ConfigError(f'{where}: constraint {con.text!r} must be an equality '
                                  f'("c.x = d.y")')
            for param in unused:
                if con.lhs.text in param.targets or con.rhs.text in param.targets:
                    other = con.rhs if con.lhs.text in param.targets else con.lhs
                    pairs.append((param, other, con.text))
                    unused.remove(param)
                    break
            else:
                raise ConfigError(f'{where}: constraint {con.text!r} must have a parameter '
                                  f'alone on one side (parameters not yet paired: '
                                  f'{", ".join(p.name for p in unused)})')
        return pairs

    # -- iteration protocol ---------------------------------------------------------------------
    def start_iteration(self) -> None:
        """Pair parameters with constraints, reset the history, snapshot fed-back values."""
        super().start_iteration()
        self._pairs = self._pair_parameters()
        self.history = []
        self.converged = False
        self._old = [_copy(getattr(owner, name)) for _, owner, name in self._sources]

    def continue_iteration(self) -> bool:
        """Another pass is needed until converged; raise when out of passes."""
        if self.converged:
            return False
        if self.current_iteration >= self.max_iterations:
            raise ConvergenceError(self._failure(f'did not converge in {self.current_iteration} '
                                                 f'iterations'))
        return True

    def post_iteration(self) -> None:
        """Record the pass (with ``record``), count and measure it, update classic
        parameters."""
        self.record_iteration()
        super().post_iteration()
        new = [_copy(getattr(owner, name)) for _, owner, name in self._sources]
        changes = [(_difference(old, value), label)
                   for (label, _, _), old, value in zip(self._sources, self._old, new)]
        self._old = new
        targets = [other.evaluate() for _, other, _ in self._pairs]
        changes += [(_difference(param.get_value(), value), text)
                    for (param, _, text), value in zip(self._pairs, targets)]
        change, self._worst = _largest(changes)
        self.history.append(change)
        logger.debug('%s: pass %d, largest change %g (%s)', tree.where(self),
                     self.current_iteration, change, self._worst)
        if np.isnan(change):
            raise ConvergenceError(self._failure(f'produced NaN after '
                                                 f'{self.current_iteration} iterations'))
        if change < self.tolerance:
            self.converged = True
            return
        for (param, _, _), value in zip(self._pairs, targets):
            param.set_value(_copy(value))

    def _iteration_outputs(self) -> dict[str, Any]:
        """A recorded pass holds the fed-back values it produced, then the base's outputs."""
        outputs = {label: _copy(getattr(owner, name)) for label, owner, name in self._sources}
        outputs.update(super()._iteration_outputs())
        return outputs

    def _failure(self, what: str) -> str:
        """A `ConvergenceError` message naming the solver, the numbers and the cycle."""
        members = [m for group in self._cycles for m in group] or self._workflow.get_names()
        fed_back = self.feedback + [t for _, _, t in self._pairs]
        change = self.history[-1] if self.history else float('nan')
        return (f'{self._option_owner()}: {what}: largest change {change:.6g} (in '
                f'{self._worst}) is not below the tolerance {self.tolerance:g}; cycle members: '
                f'{", ".join(members)}; fed back: {", ".join(fed_back) or "none"}')
