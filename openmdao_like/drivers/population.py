"""Population evaluation for optimizers: each population member is one case run by an
`Executor`, the model shipped once per worker or server for the whole optimizer run.

`MemberRunner` is the case runner shipped to the workers: a case's only input is the design
vector ``x``; its outputs are the driver's objectives, constraint residuals and responses.
`PopulationEvaluator` is the optimizer's side: it readies the executor once per optimizer run
(`Executor.serving`: a user's executor stays warm afterwards, one the driver made is shut
down, and Ctrl-C shuts either down), runs each population handed to it as one ``run_cases``
call, records every member as a case (in member order, each as soon as it and those before it
are back), and gives the optimizer what it asks for: scipy's vectorized objective and
constraint functions, or the objective and residual matrices of a population (pymoo). A member
whose case fails (the model raised, or its worker or server was lost) gets +inf for its
objectives and constraint residuals, with a warning, so the optimizer moves on without it.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import tree
from ..cases import FAILED, OK, Case
from ..errors import ExpressionError, error_summary
from ..execution.base import BrokenExecutor, CaseOutcome, Executor
from ..options import OptionsDictionary
from .caserun import ModelCaseRunner, inner_cases
from .driver import EXECUTOR_ACCEPTS

logger = logging.getLogger(__name__)

__all__ = ['Member', 'MemberRunner', 'PopulationEvaluator']


class Member(NamedTuple):
    """One evaluated population member.

    Parameters
    ----------
    case : Case
        The member as recorded: parameter values in, objectives, residuals and responses out.
    objectives : ndarray or None
        The value of each objective, in the order added (None: the case failed).
    residuals : dict or None
        Constraint name -> flat residual array (None: the case failed).
    """

    case: Case
    objectives: np.ndarray | None
    residuals: dict[str, np.ndarray] | None


def _member_outputs(driver: Any) -> dict[str, Any]:
    """Objectives, constraint residuals and responses of the model as it is now, by name."""
    outputs: dict[str, Any] = {n: o.evaluate() for n, o in driver._objectives.items()}
    outputs.update((n, c.evaluate()) for n, c in driver._constraints.items())
    outputs.update((n, r.evaluate()) for n, r in driver._responses.items())
    return outputs


def declare_execution_options(options: OptionsDictionary, runs: str) -> None:
    """``sequential``, ``executor`` and ``progress``: how a population optimizer evaluates its
    ``runs`` (populations, generations), in this process or through an executor."""
    options.declare('sequential', True, types=bool, accepts='True or False',
                    desc=f'True: evaluate in this process; False: {runs} run through executor')
    options.declare('executor', None, types=Executor, allow_none=True, accepts=EXECUTOR_ACCEPTS,
                    desc=f'where {runs} run when not sequential (None: a new LocalExecutor per '
                         f'run)')
    options.declare('progress', None, types=bool, allow_none=True,
                    accepts='True, False or None',
                    desc='progress line on stderr (None: when stderr is a terminal)')


class MemberRunner(ModelCaseRunner):
    """Case runner for population members: sets the design vector ``inputs['x']`` (driver
    space), runs the workflow, returns the objectives, constraints and responses.

    Pickles as the whole model once (see `ModelCaseRunner`); the driver must provide
    ``_prepare_run()`` (called in the worker) and ``_space`` (its design space). Unpickled
    nowhere (a `SerialExecutor`), it runs the members on the live model.
    """

    def _run(self, case_id: int, inputs: Mapping[str, Any]) -> CaseOutcome:
        driver = self._driver
        driver.current_iteration = case_id  # what drivers run by this member record as ours
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
        The optimizer (its ``_space`` maps design vectors to parameters). Members are
        numbered from 0 in each optimizer run: ``driver.current_iteration`` and
        ``driver.nfev`` count those evaluated.
    executor : Executor
        Where the members run: started (or, warm, given the model) on entering.
    own : bool
        Whether the driver made ``executor``: shut down on leaving (a user's stays warm).
    """

    def __init__(self, driver: Any, executor: Executor, own: bool = False):
        self._driver = driver
        self._executor = executor
        self._serving = executor.serving(MemberRunner(driver), own)
        self._objectives = dict(driver._objectives)
        cons = driver._constraints
        self._ineq = [name for name, c in cons.items() if not c.equality]
        self._eq = [name for name, c in cons.items() if c.equality]
        self._sizes: dict[str, int] | None = None  # residual size of each constraint
        self._last: dict[bytes, Member] = {}  # the members of the last population
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
        """The (first) objective of each member: a float for x of shape (N,), else shape
        (S,)."""
        values = self.objectives(self.evaluate(_members(x)))[:, 0]
        return float(values[0]) if np.ndim(x) == 1 else values

    def constraint(self, equality: bool) -> Callable[[np.ndarray], np.ndarray]:
        """The residual function of the inequality (g <= 0) or equality (g == 0) constraints:
        shape (M,) for x of shape (N,), else (M, S)."""

        def residuals(x: np.ndarray) -> np.ndarray:
            matrix = self.residuals(self.evaluate(_members(x)), equality)
            return matrix[0] if np.ndim(x) == 1 else matrix.T
        return residuals

    def has(self, equality: bool) -> bool:
        """Whether there are equality (or inequality) constraints."""
        return bool(self._eq if equality else self._ineq)

    # -- matrices of a population (pymoo) -------------------------------------------------------
    def objectives(self, members: list[Member]) -> np.ndarray:
        """Shape (S, n_obj): each member's objectives, +inf for a failed one."""
        inf = np.full(len(self._objectives), np.inf)
        return np.array([inf if m.objectives is None else m.objectives for m in members]
                        ).reshape(len(members), len(inf))

    def residuals(self, members: list[Member], equality: bool) -> np.ndarray:
        """Shape (S, M): each member's residuals of the equality (or inequality) constraints,
        concatenated in the order added; +inf for a failed member."""
        names = self._eq if equality else self._ineq
        sizes = self.residual_sizes()
        width = sum(sizes[n] for n in names)
        rows = [np.full(width, np.inf) if m.residuals is None else
                np.concatenate([m.residuals[n] for n in names] or [np.zeros(0)])
                for m in members]
        return np.array(rows, dtype=float).reshape(len(members), width)

    def residual_sizes(self) -> dict[str, int]:
        """Constraint name -> how many residuals it has: as the members that ran gave them,
        else (none ran yet, or all failed) as the constraints evaluate on this process's model
        as it is now."""
        if self._sizes is None:
            cons = self._driver._constraints
            self._sizes = {n: int(np.size(cons[n].evaluate())) for n in self._ineq + self._eq}
        return self._sizes

    # -- running a population -------------------------------------------------------------------
    def evaluate(self, members: np.ndarray) -> list[Member]:
        """The `Member` of each row of ``members`` (design vectors); the rows not in the last
        population run now, as one ``run_cases`` call."""
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

    def _run(self, rows: list[np.ndarray]) -> dict[bytes, Member]:
        """Run ``rows`` as cases; record each in order once it and those before it are back;
        their members by key."""
        driver = self._driver
        first = self._next_id
        self._next_id += len(rows)
        feed = iter([(first + i, {'x': row}) for i, row in enumerate(rows)])
        recorders = driver._recorders()
        prefix = driver.iteration_prefix()
        waiting: dict[int, CaseOutcome] = {}
        members: dict[bytes, Member] = {}
        outcomes = self._executor.run_cases(feed)
        try:
            for outcome in outcomes:
                waiting[outcome.id] = outcome
                while first + len(members) in waiting:
                    row = rows[len(members)]
                    done = waiting.pop(first + len(members))
                    members[row.tobytes()] = self._member(row, done, recorders, prefix)
        except BrokenExecutor as exc:
            raise BrokenExecutor(f'{tree.where(driver)}: {exc}', exc.traceback) from exc
        finally:
            outcomes.close()
        return members

    def _member(self, row: np.ndarray, outcome: CaseOutcome, recorders: list[Any],
                prefix: str) -> Member:
        """The member of an outcome, recorded (``prefix``: the driver's `iteration_prefix`);
        a failed one with a warning."""
        driver = self._driver
        driver.nfev += 1
        driver.current_iteration = outcome.id + 1
        objectives, residuals = self._values(row, outcome)
        if objectives is None:
            outputs = {name: np.nan for name in (*driver._objectives, *driver._constraints,
                                                 *driver._responses)}
        else:
            outputs = outcome.outputs
        names = list(driver._parameters)
        inputs = dict(zip(names, driver._space.model_values(row)))
        case = Case(outcome.id, inputs, outputs, outcome.status, outcome.error,
                    tree.where(driver), outcome.t_start, outcome.t_end,
                    iteration=f'{prefix}{outcome.id}')
        if recorders:
            inner = inner_cases(outcome.records, f'{prefix}{outcome.id}|')
            for rec in recorders:
                for sub in inner:  # recorded in a worker by drivers inside the member's run
                    rec.record(sub)
                rec.record(case)
        return Member(case, objectives, residuals)

    def _values(self, row: np.ndarray, outcome: CaseOutcome
                ) -> tuple[np.ndarray | None, dict[str, np.ndarray] | None]:
        """(objectives, residuals) of an ok outcome; (None, None), with a warning, for a failed
        one."""
        where = tree.where(self._driver)
        if outcome.status != OK:
            logger.warning('%s: population member at %s %s; its objective counts as +inf: %s',
                           where, row, 'was lost' if outcome.lost else 'failed',
                           error_summary(outcome.error))
            return None, None
        outputs = outcome.outputs
        objectives = []
        for name, objective in self._objectives.items():
            value = np.asarray(outputs[name], dtype=float)
            if value.size != 1:
                raise ExpressionError(f'{where}: objective {objective.text!r} must be a '
                                      f'scalar, got shape {value.shape}')
            objectives.append(float(value.reshape(-1)[0]))
        residuals = {n: np.ravel(np.asarray(outputs[n], dtype=float))
                     for n in self._ineq + self._eq}
        if self._sizes is None:  # the first member that ran gives the sizes
            self._sizes = {n: resid.size for n, resid in residuals.items()}
        for name, resid in residuals.items():
            if resid.size != self._sizes[name]:
                raise ExpressionError(f'{where}: constraint {name!r} has {resid.size} '
                                      f'residuals at {row}, expected {self._sizes[name]} as '
                                      f'for the other members')
        return np.array(objectives), residuals


def _members(x: np.ndarray) -> np.ndarray:
    """The members of scipy's vectorized argument as rows: (N,) -> (1, N), (N, S) -> (S, N)."""
    x = np.asarray(x, dtype=float)
    return x.reshape(1, -1) if x.ndim == 1 else np.ascontiguousarray(x.T)
