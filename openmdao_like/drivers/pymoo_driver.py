"""`PymooDriver`: population optimizers of pymoo — NSGA-II for several objectives, a genetic
algorithm and differential evolution for one — over a model's parameters.

Each generation is one population of design vectors (driver space: scaled parameters, array
parameters flattened), evaluated as one batch of cases through an `Executor`
(`openmdao_like.drivers.population`): in this process one member after the other
(``sequential=True``, a `SerialExecutor`), or on worker processes or allocated servers that
received the model once for the whole run. pymoo minimizes; constraints reach it as residuals
(``out['G'] <= 0``, ``out['H'] == 0``). A member whose case fails, or whose objectives are not
finite numbers, is made infeasible (one more inequality column, +inf for it), so it never
survives into the result and its +inf objectives never meet the crowding distance.

pymoo is an optional dependency (``pip install openmdao_like[pymoo]``), imported when a run
starts.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .. import tree
from ..cases import Case
from ..errors import ConfigError, ValidationError, describe
from ..execution.base import Executor, SerialExecutor
from ..execution.local import LocalExecutor
from ..options import OptionError, OptionsDictionary, OptionTypeError, suggest
from ..progress import Progress
from .driver import Driver
from .population import Member, PopulationEvaluator, declare_execution_options
from .scipy_optimizer import _DesignSpace

logger = logging.getLogger(__name__)

__all__ = ['PymooDriver', 'ALGORITHMS']

#: The algorithms, by the name the ``algorithm`` option takes (any case).
ALGORITHMS = ('NSGA2', 'GA', 'DE')
_BY_LOWER = {a.lower(): a for a in ALGORITHMS}
_ALGORITHM_ACCEPTS = f'one of {", ".join(ALGORITHMS)} (any case)'
#: Algorithms of one objective only.
_SINGLE_OBJECTIVE = frozenset({'GA', 'DE'})
#: Algorithms whose offspring are mutated variable by variable (polynomial mutation).
_MUTATING = frozenset({'NSGA2', 'GA'})
#: Distribution indexes of pymoo's own SBX crossover and polynomial mutation (kept when a
#: rate is given).
_SBX_ETA, _PM_ETA = 15, 20


def _algorithm(value: Any) -> str:
    """The canonical spelling of algorithm ``value`` (any case), or `OptionError`
    (`OptionTypeError` for a value that is not a str)."""
    canonical = _BY_LOWER.get(value.lower()) if isinstance(value, str) else None
    if canonical is None:
        error = OptionError if isinstance(value, str) else OptionTypeError
        hint = suggest(value.upper(), ALGORITHMS) if isinstance(value, str) else ''
        raise error(f'algorithm must be {_ALGORITHM_ACCEPTS}, got {describe(value)}{hint}')
    return canonical


def _pymoo() -> dict[str, Any]:
    """What the driver uses of pymoo, imported now; `ImportError` saying how to install it."""
    try:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.algorithms.soo.nonconvex.de import DE
        from pymoo.algorithms.soo.nonconvex.ga import GA
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.optimize import minimize
    except ImportError as exc:
        raise ImportError(f'PymooDriver needs pymoo (>= 0.6.1), which could not be imported '
                          f'({exc}); install it with: pip install openmdao_like[pymoo]'
                          ) from exc
    return {'NSGA2': NSGA2, 'GA': GA, 'DE': DE, 'Problem': Problem, 'SBX': SBX, 'PM': PM,
            'minimize': minimize}


class PymooDriver(Driver):
    """Population optimizer on pymoo: ``NSGA2`` (one or several objectives), ``GA`` or ``DE``
    (one objective), with inequality and equality constraints.

    The search covers the box of the parameters' bounds (all finite) and ignores their start
    values. Each generation is one batch of ``pop_size`` cases through the executor (the
    first is the random initial population), ``n_gen`` batches in all; every member is
    recorded as a case of the driver. An equality constraint counts as met within 1e-4
    (pymoo's tolerance).

    Parameters
    ----------
    algorithm : str
        One of `ALGORITHMS` (any case): NSGA2 (NSGA-II: non-dominated sorting and crowding
        distance), GA (a genetic algorithm with SBX crossover and polynomial mutation), DE
        (differential evolution, DE/best/1/bin).
    pop_size : int
        Members per generation.
    n_gen : int
        Generations (batches of cases), the initial population included.
    seed : int, optional
        Seed of the algorithm's random numbers: the same seed gives the same run, in this
        process or through any executor. None: a fresh one each run.
    crossover_rate : float, optional
        NSGA2 and GA: the probability that two parents cross over (pymoo's default: 0.9);
        DE: the probability that a variable is taken from the mutant (pymoo's ``CR``: 0.2).
    mutation_rate : float, optional
        NSGA2 and GA: the probability that each variable of an offspring is mutated (pymoo's
        default: one over the number of variables). DE has none (it mutates by scaled
        differences).
    sequential : bool
        True: run the members in this process, on the model itself. False: run each
        generation as cases of ``executor``, the model shipped once per worker or server for
        the whole run.
    executor : Executor, optional
        Where generations run when ``sequential`` is False: a `LocalExecutor` (default: a new
        one per run), or an `openmdao_like.distributed.RAMExecutor` for allocated servers.
    progress : bool, optional
        Show a progress line on stderr — generation, model evaluations and, for one
        objective, the best feasible objective so far — True, False, or None (default) when
        stderr is a terminal.

    Attributes
    ----------
    pareto : list of Case
        After a run, the non-dominated feasible members of the last population, as recorded,
        sorted by their first objective; for one objective, the best feasible member. Empty
        when no member satisfied the constraints.
    nfev : int
        Model runs made by the last run (the cases recorded): the members, and with one
        objective the final run of the best one.
    current_iteration : int
        Model runs made so far in the current run; during a member's run in this process, its
        number from 0 (the last number of its recorded iteration coordinate).

    With one objective, the model is then evaluated once more here, at the best member, and
    that run recorded as the last case, so the model holds the optimum (as
    `ScipyOptimizer` does). With several, the model is not run again: a sequential run leaves
    it at the last member evaluated.
    """

    #: Attributes the workers of a parallel run do not need (see `ModelCaseRunner`).
    _not_shipped: tuple[str, ...] = ('_space', 'pareto')

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``algorithm``, ``pop_size``, ``n_gen``, ``seed``, ``crossover_rate``,
        ``mutation_rate``, ``sequential``, ``executor`` and ``progress`` (see the class
        docstring)."""
        super().declare_options(options)
        options.declare('algorithm', ALGORITHMS[0], check=_algorithm,
                        accepts=_ALGORITHM_ACCEPTS, desc='the pymoo algorithm')
        options.declare('pop_size', 100, types=int, lower=1, desc='members per generation')
        options.declare('n_gen', 100, types=int, lower=1,
                        desc='generations, the initial population included')
        options.declare('seed', None, types=int, lower=0, allow_none=True,
                        desc='seed of the random numbers (None: a fresh one each run)')
        for name, desc in (('crossover_rate', 'crossover probability (None: pymoo default)'),
                           ('mutation_rate', 'mutation probability of each variable '
                                             '(None: pymoo default)')):
            options.declare(name, None, types=float, lower=0.0, upper=1.0, allow_none=True,
                            accepts='a float in [0, 1] or None', desc=desc)
        declare_execution_options(options, 'generations')

    def __init__(self, algorithm: str = ALGORITHMS[0], **kwargs: Any):
        super().__init__(algorithm=algorithm, **kwargs)
        self._check_mode()
        self.pareto: list[Case] = []
        self.nfev = 0
        self._space: _DesignSpace | None = None

    def _check_mode(self) -> None:
        """Raise `ValidationError` unless the rates suit the algorithm."""
        if self.mutation_rate is not None and self.algorithm not in _MUTATING:
            raise ValidationError(
                f'{self._option_owner()}: mutation_rate applies to '
                f'{" and ".join(sorted(_MUTATING))} (each variable mutated with that '
                f'probability); algorithm {self.algorithm!r} mutates by scaled differences: '
                f'expected mutation_rate=None, got {describe(self.mutation_rate)}')

    def _check_problem(self) -> None:
        """Raise `ConfigError` unless the problem suits the algorithm."""
        where = f'{self._option_owner()}, algorithm {self.algorithm!r}'
        self._require_design(where, 'one (or several, with NSGA2)')
        if len(self._objectives) > 1 and self.algorithm in _SINGLE_OBJECTIVE:
            raise ConfigError(f'{where}: expected one objective (the algorithm is '
                              f'single-objective; NSGA2 takes several), got '
                              f'{len(self._objectives)} ({", ".join(self._objectives)})')
        for name, p in self._parameters.items():
            if not (np.all(np.isfinite(p.low)) and np.all(np.isfinite(p.high))):
                raise ConfigError(f'{where}: parameter {name!r} needs finite bounds (the '
                                  f'algorithm searches between them), got low={p.low}, '
                                  f'high={p.high}')
        self._check_mode()

    def _prepare_run(self) -> None:
        """Build the design space from the parameters (also what a worker does on arrival)."""
        self._space = _DesignSpace(list(self._parameters.values()), 1.0)

    def _objective_signs(self) -> np.ndarray:
        """What pymoo minimizes is each objective times its sign: +1 each (`compat.Genetic`
        maximizes with -1)."""
        return np.ones(len(self._objectives))

    # -- running --------------------------------------------------------------------------------
    def execute(self) -> None:
        """Run the algorithm for ``n_gen`` generations; fill `pareto`; with one objective,
        evaluate the best member here (the model holds the optimum)."""
        parent = self.parent
        if parent is not None and parent._dirty:
            parent.check_config()
        self._check_problem()
        pymoo = _pymoo()
        self.start_iteration()
        self.nfev, self.pareto = 0, []
        self._prepare_run()
        own = self.sequential or self.executor is None
        if self.sequential:
            executor: Executor = SerialExecutor()
        else:
            executor = LocalExecutor() if self.executor is None else self.executor
        kept: dict[bytes, Case] = {}  # the recorded case of each member of the population
        with Progress(total=self.n_gen, desc=tree.where(self), unit='gen',
                      enabled=self.progress) as bar, \
                PopulationEvaluator(self, executor, own) as population:
            problem = self._problem(pymoo['Problem'], population, kept)
            result = pymoo['minimize'](problem, self._algorithm(pymoo),
                                       ('n_gen', self.n_gen), seed=self.seed,
                                       callback=self._on_generation(kept, bar))
        self.pareto = self._front(result.opt, kept)
        self._finish()

    def _problem(self, base: type, population: PopulationEvaluator,
                 kept: dict[bytes, Case]) -> Any:
        """The pymoo problem (a subclass of ``base``, pymoo's ``Problem``) whose vectorized
        evaluation runs a population through ``population``, keeping each member's case in
        ``kept`` by its design vector."""
        space, signs = self._space, self._objective_signs()
        try:
            sizes = population.residual_sizes()
        except Exception as exc:
            raise ConfigError(f'{self._option_owner()}: pymoo needs the number of residuals of '
                              f'each constraint before the first generation, but evaluating '
                              f'the constraints on the model as it is failed '
                              f'({type(exc).__name__}: {exc}); set inputs for which they '
                              f'evaluate, or run the model once, first') from exc
        n_ieq = sum(sizes[n] for n, c in self._constraints.items() if not c.equality)
        n_eq = sum(sizes[n] for n, c in self._constraints.items() if c.equality)

        class ModelProblem(base):  # type: ignore[misc, valid-type]
            """The driver's model as a pymoo problem."""

            def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any,
                          **kwargs: Any) -> None:
                members = population.evaluate(X)
                for row, member in zip(X, members):
                    kept[row.tobytes()] = member.case
                out['F'] = _finite_or_inf(population.objectives(members) * signs)
                out['G'] = np.column_stack([_finite_or_inf(population.residuals(members, False)),
                                            _unusable(members, out['F'])])
                if n_eq:
                    out['H'] = _finite_or_inf(population.residuals(members, True))

        return ModelProblem(n_var=space.lower.size, n_obj=len(signs), n_ieq_constr=n_ieq + 1,
                            n_eq_constr=n_eq, xl=space.lower, xu=space.upper, vtype=float)

    def _algorithm(self, pymoo: dict[str, Any]) -> Any:
        """The pymoo algorithm object of the options."""
        name, kwargs = self.algorithm, {'pop_size': self.pop_size}
        if name == 'DE':
            if self.crossover_rate is not None:
                kwargs['CR'] = self.crossover_rate
            return pymoo['DE'](**kwargs)
        if self.crossover_rate is not None:
            kwargs['crossover'] = pymoo['SBX'](eta=_SBX_ETA, prob=self.crossover_rate)
        if self.mutation_rate is not None:
            kwargs['mutation'] = pymoo['PM'](eta=_PM_ETA, prob=1.0, prob_var=self.mutation_rate)
        return pymoo[name](**kwargs)

    def _on_generation(self, kept: dict[bytes, Case], bar: Progress) -> Any:
        """pymoo's callback after each generation: forget the cases of members that left the
        population; move ``bar`` on by one generation."""
        single = len(self._objectives) == 1
        objective = next(iter(self._objectives))

        def on_generation(algorithm: Any) -> None:
            alive = {row.tobytes() for row in algorithm.pop.get('X')}
            for key in [key for key in kept if key not in alive]:
                del kept[key]
            if bar.enabled:
                postfix: dict[str, Any] = {'evaluations': self.nfev}
                best = self._front(algorithm.opt, kept) if single else []
                if best:
                    postfix['objective'] = float(np.ravel(best[0].outputs[objective])[0])
                bar.set_postfix(**postfix)
            bar.update()
        return on_generation

    def _front(self, opt: Any, kept: dict[bytes, Case]) -> list[Case]:
        """The cases of the feasible members of pymoo's optimum ``opt`` (a population or
        None), each once, sorted by their objectives (as pymoo minimizes them)."""
        if opt is None or len(opt) == 0:
            return []
        X, F, feasible = opt.get('X', 'F', 'feas')
        rows = np.flatnonzero(np.ravel(feasible))
        order = rows[np.lexsort(F[rows].T[::-1])] if rows.size else rows
        cases: dict[int, Case] = {}
        for i in order:
            case = kept[X[i].tobytes()]
            cases.setdefault(case.id, case)
        return list(cases.values())

    def _finish(self) -> None:
        """Log how the run ended; with one objective, evaluate the best member here and record
        that run."""
        where = tree.where(self)
        if not self.pareto:
            logger.warning('%s: %s found no member that satisfies the constraints in %d '
                           'generations (%d members)', where, self.algorithm, self.n_gen,
                           self.nfev)
            return
        logger.info('%s: %s ran %d generations, %d members: %d non-dominated', where,
                    self.algorithm, self.n_gen, self.nfev, len(self.pareto))
        if len(self._objectives) == 1:
            for name, value in self.pareto[0].inputs.items():
                self._parameters[name].set_value(value)
            self.run_iteration()
            self.record_iteration()
            self.current_iteration += 1
            self.nfev += 1


def _finite_or_inf(values: np.ndarray) -> np.ndarray:
    """``values`` with NaN replaced by +inf (pymoo compares them)."""
    return np.where(np.isnan(values), np.inf, values)


def _unusable(members: list[Member], objectives: np.ndarray) -> np.ndarray:
    """The extra inequality column: 0 for a member that ran and has finite objectives, +inf
    for one that failed or has not (never feasible, so never in the result)."""
    usable = np.array([m.objectives is not None for m in members], dtype=bool) & \
        np.all(np.isfinite(objectives), axis=1)
    return np.where(usable, 0.0, np.inf)
