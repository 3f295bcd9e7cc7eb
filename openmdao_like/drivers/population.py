"""Population evaluation for optimizers: each population member is one case run by an
`Executor`, the model shipped once per worker or server for the whole optimizer run.

`MemberRunner` is the case runner shipped to the workers: a case's only input is the design
vector ``x``; its outputs are the driver's objective, constraint residuals and responses.
`PopulationEvaluator` is the optimizer's side: it readies the executor once per optimizer run
(`Executor.serving`: a user's executor stays warm afterwards, one the driver made is shut
down, and Ctrl-C shuts either down), runs each
population handed to it as one ``run_cases`` call, records every member as a case, and gives
scipy vectorized objective and constraint functions. A member whose case fails (the model
raised, or its worker or server was lost) gets +inf for its objective and constraint residuals,
with a warning, so the optimizer moves on without it.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import tree
from ..cases import FAILED, OK, Case
from ..errors import ExpressionError, error_summary
from ..execution.base import BrokenExecutor, CaseOutcome, Executor
from .caserun import ModelCaseRunner, inner_cases

logger = logging.getLogger(__name__)

__all__ = ['MemberRunner', 'PopulationEvaluator']

#: Entry of an evaluated member: (objective, {constraint name: residual array}) or None if it
#: failed.
_Entry = tuple[float, dict[str, np.ndarray]] | None


def _member_outputs(driver: Any) -> dict[str, Any]:
    """Objective, constraint residuals and responses of the model as it is now, by name."""
    outputs: dict[str, Any] = {n: o.evaluate() for n, o in driver._objectives.items()}
    outputs.update((n, c.evaluate()) for n, c in driver._constraints.items())
    outputs.update((n, r.evaluate()) for n, r in driver._responses.items())
    return outputs


class MemberRunner(ModelCaseRunner):
    """Case runner for population members: sets the design vector ``inputs['x']`` (driver
    space), runs the workflow, returns the objective, constraints and responses.

    Pickles as the whole model once (see `ModelCaseRunner`); the driver must provide
    ``_prepare_run()`` (called in the worker) and ``_space`` (its design space).
    """

    def _run(self, case_id: int, inputs: Mapping[str, Any]) -> CaseOutcome:
        driver = self._driver
        t_start = time.time()
        try:
            driver._space.apply(np.asarray(inputs['x'], dtype=float))
            driver.run_iteration()
            outputs = _member_outputs(driver)
        except Exception:
            return CaseOutcome(case_id, None, FAILED, traceback.format_exc(), t_start,
                               time.time())
        return CaseOutcome(case_id, outputs, OK, None, t_start, time.time())

    def __repr__(self) -> str:
        return f'MemberRunner({self._path!r})'


class PopulationEvaluator:
    """Runs populations of design vectors through ``executor`` for ``driver``, one
    ``run_cases`` call per population; a context manager around the executor's life.

    Parameters
    ----------
    driver : Driver
        The optimizer (one objective; its ``_space`` maps design vectors to parameters).
    executor : Executor
        Where the members run: started (or, warm, given the model) on entering.
    own : bool
        Whether the driver made ``executor``: shut down on leaving (a user's stays warm).
    """

    def __init__(self, driver: Any, executor: Executor, own: bool = False):
        self._driver = driver
        self._executor = executor
        self._serving = executor.serving(MemberRunner(driver), own)
        self._objective_name, self._objective = next(iter(driver._objectives.items()))
        cons = driver._constraints
        self._ineq = [name for name, c in cons.items() if not c.equality]
        self._eq = [name for name, c in cons.items() if c.equality]
        self._sizes: dict[str, int] | None = None  # residual size of each constraint
        self._last: dict[bytes, _Entry] = {}  # the members of the last population
        self._next_id = 0

    # -- the executor's life --------------------------------------------------------------------
    def __enter__(self) -> PopulationEvaluator:
        try:
            self._serving.__enter__()
        except TypeError as exc:
            raise TypeError(f'{tree.where(self._driver)}: cannot ship the model to the workers of '
                            f'{self._executor!r} (sequential=False): {exc}') from exc
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._serving.__exit__(exc_type, exc, tb)

    # -- what scipy calls (vectorized: x is (N,) for one member or (N, S) for S members) ----------
    def objective(self, x: np.ndarray) -> Any:
        """The objective of each member: a float for x of shape (N,), else shape (S,)."""
        entries = self.evaluate(_members(x))
        values = np.array([np.inf if e is None else e[0] for e in entries])
        return float(values[0]) if np.ndim(x) == 1 else values

    def constraint(self, equality: bool) -> Callable[[np.ndarray], np.ndarray]:
        """The residual function of the inequality (g <= 0) or equality (g == 0) constraints:
        shape (M,) for x of shape (N,), else (M, S)."""
        names = self._eq if equality else self._ineq

        def residuals(x: np.ndarray) -> np.ndarray:
            entries = self.evaluate(_members(x))
            sizes = self._sizes  # known once any member has been evaluated
            columns = [np.concatenate([np.full(sizes[n], np.inf) if e is None else e[1][n]
                                       for n in names]) for e in entries]
            return columns[0] if np.ndim(x) == 1 else np.stack(columns, axis=1)
        return residuals

    def has(self, equality: bool) -> bool:
        """Whether there are equality (or inequality) constraints."""
        return bool(self._eq if equality else self._ineq)

    # -- running a population -------------------------------------------------------------------
    def evaluate(self, members: np.ndarray) -> list[_Entry]:
        """The entry of each row of ``members``; the rows not in the last population run now,
        as one ``run_cases`` call."""
        space = self._driver._space
        rows = [np.clip(row, space.lower, space.upper) for row in members]
        keys = [row.tobytes() for row in rows]
        last = self._last
        todo: dict[bytes, np.ndarray] = {}
        for key, row in zip(keys, rows):
            if key not in last:
                todo.setdefault(key, row)
        found = {key: last[key] for key in keys if key in last}
        if todo:
            found.update(self._run(list(todo.values())))
        self._last = found
        return [found[key] for key in keys]

    def _run(self, rows: list[np.ndarray]) -> dict[bytes, _Entry]:
        """Run ``rows`` as cases; record them in order; their entries by key."""
        driver = self._driver
        first = self._next_id
        self._next_id += len(rows)
        feed = iter([(first + i, {'x': row}) for i, row in enumerate(rows)])
        done: dict[int, CaseOutcome] = {}
        outcomes = self._executor.run_cases(feed)
        try:
            for outcome in outcomes:
                done[outcome.id] = outcome
        except BrokenExecutor as exc:
            raise BrokenExecutor(f'{tree.where(driver)}: {exc}', exc.traceback) from exc
        finally:
            outcomes.close()
        ordered = [done[first + i] for i in range(len(rows))]
        if self._sizes is None:
            self._learn_sizes(ordered)
        recorders = driver._recorders()
        prefix = driver.iteration_prefix() if recorders else ''
        entries: dict[bytes, _Entry] = {}
        for row, outcome in zip(rows, ordered):
            driver.nfev += 1
            driver.current_iteration += 1
            entry = self._entry(row, outcome)
            entries[row.tobytes()] = entry
            if recorders:
                self._record(recorders, prefix, row, outcome, entry)
        return entries

    def _entry(self, row: np.ndarray, outcome: CaseOutcome) -> _Entry:
        """(objective, residuals) of an ok outcome; None (with a warning) for a failed one."""
        where = tree.where(self._driver)
        if outcome.status != OK:
            logger.warning('%s: population member at %s %s; its objective counts as +inf: %s',
                           where, row, 'was lost' if outcome.lost else 'failed',
                           error_summary(outcome.error))
            return None
        outputs = outcome.outputs
        value = np.asarray(outputs[self._objective_name], dtype=float)
        if value.size != 1:
            raise ExpressionError(f'{where}: objective {self._objective.text!r} must be a '
                                  f'scalar, got shape {value.shape}')
        residuals = {n: np.ravel(np.asarray(outputs[n], dtype=float))
                     for n in self._ineq + self._eq}
        for name, resid in residuals.items():
            if resid.size != self._sizes[name]:
                raise ExpressionError(f'{where}: constraint {name!r} has {resid.size} '
                                      f'residuals at {row}, expected {self._sizes[name]} as '
                                      f'for the other members')
        return float(value.reshape(-1)[0]), residuals

    def _learn_sizes(self, outcomes: list[CaseOutcome]) -> None:
        """Residual sizes per constraint: from the first member that ran, else (all failed so
        far) from the constraints' current values in this process's model."""
        names = self._ineq + self._eq
        ran = next((o for o in outcomes if o.status == OK), None)
        if ran is not None:
            self._sizes = {n: int(np.size(ran.outputs[n])) for n in names}
        else:
            cons = self._driver._constraints
            self._sizes = {n: int(np.size(cons[n].evaluate())) for n in names}

    def _record(self, recorders: list[Any], prefix: str, row: np.ndarray, outcome: CaseOutcome,
                entry: _Entry) -> None:
        """Send a member to the recorders as one case of the driver, numbered as the case it
        ran as (from 0 in each optimizer run; ``prefix``: the driver's `iteration_prefix`)."""
        driver = self._driver
        names = list(driver._parameters)
        inputs = dict(zip(names, driver._space.model_values(row)))
        if entry is None:
            outputs = {name: np.nan for name in (*driver._objectives, *driver._constraints,
                                                 *driver._responses)}
        else:
            outputs = outcome.outputs
        case = Case(outcome.id, inputs, outputs, outcome.status, outcome.error,
                    tree.where(driver), outcome.t_start, outcome.t_end,
                    iteration=f'{prefix}{outcome.id}')
        inner = inner_cases(outcome.records, f'{prefix}{outcome.id}|')
        for rec in recorders:
            for sub in inner:  # recorded in a worker by drivers inside the member's run
                rec.record(sub)
            rec.record(case)


def _members(x: np.ndarray) -> np.ndarray:
    """The members of scipy's vectorized argument as rows: (N,) -> (1, N), (N, S) -> (S, N)."""
    x = np.asarray(x, dtype=float)
    return x.reshape(1, -1) if x.ndim == 1 else np.ascontiguousarray(x.T)
