"""`ScipyOptimizer`: minimize a model's objective with ``scipy.optimize.minimize`` or, globally,
``scipy.optimize.differential_evolution``.

The optimizer works in driver space (scaled parameters, array parameters flattened into one
design vector). One model run yields the objective and every constraint; results are cached by
design vector, so scipy's separate calls for the objective and each constraint at the same point
run the model once, and the forward finite differences it is handed for gradient methods run the
model once per design variable. With ``sequential=False``, differential evolution evaluates each
population as cases of an `Executor` (see `openmdao_like.drivers.population`): the model is
shipped once per worker or server for the whole run, each member sends only its design vector.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from .. import tree
from ..errors import ConfigError, ExpressionError, ValidationError, describe
from ..execution.local import LocalExecutor
from ..options import OptionError, OptionsDictionary, OptionTypeError
from ..progress import Progress
from .driver import Driver
from .population import PopulationEvaluator, declare_execution_options

logger = logging.getLogger(__name__)

#: Supported methods: those of ``scipy.optimize.minimize``, then the global ones.
METHODS = ('SLSQP', 'COBYLA', 'COBYQA', 'trust-constr', 'Nelder-Mead', 'Powell', 'L-BFGS-B',
           'TNC', 'differential_evolution')
_BY_LOWER = {m.lower(): m for m in METHODS}
_GRADIENT = frozenset({'SLSQP', 'trust-constr', 'L-BFGS-B', 'TNC'})
_CONSTRAINED = frozenset({'SLSQP', 'COBYLA', 'COBYQA', 'trust-constr', 'differential_evolution'})
#: Methods that evaluate populations (and can do so through an executor).
_POPULATION = frozenset({'differential_evolution'})
#: ``differential_evolution`` arguments that ``options`` may set.
_DE_OPTIONS = ('strategy', 'popsize', 'mutation', 'recombination', 'seed', 'polish', 'init',
               'atol', 'updating')
#: Name of the option that limits the iterations, where it is not ``maxiter``.
_MAXITER_OPTION = {'TNC': 'maxfun'}


_METHOD_ACCEPTS = f'one of {", ".join(METHODS)}'


def _method(value: Any) -> str:
    """The canonical spelling of method ``value`` (case-insensitive), or `OptionError`
    (`OptionTypeError` for a value that is not a str)."""
    canonical = _BY_LOWER.get(value.lower()) if isinstance(value, str) else None
    if canonical is None:
        error = OptionError if isinstance(value, str) else OptionTypeError
        raise error(f'method must be {_METHOD_ACCEPTS}; got {describe(value)}')
    return canonical


class _DesignSpace:
    """Maps a flat driver-space design vector to the driver's parameters and back."""

    def __init__(self, params: list[Any], default_step: float):
        self.params = params
        self.slices: list[slice] = []
        self.shapes: list[tuple[int, ...] | None] = []
        lows, highs, steps, start = [], [], [], 0
        for p in params:
            value = p.get_value()
            shape = np.shape(value) if isinstance(value, np.ndarray) else None
            n = p.size
            self.slices.append(slice(start, start + n))
            self.shapes.append(shape)
            start += n
            lo, hi = (np.broadcast_to(np.ravel(np.asarray(b, dtype=float)), (n,))
                      for b in (p.driver_low, p.driver_high))
            lows.append(np.minimum(lo, hi))
            highs.append(np.maximum(lo, hi))
            steps.append(np.full(n, float(p.fd_step or default_step)))
        self.lower = np.concatenate(lows) if lows else np.zeros(0)
        self.upper = np.concatenate(highs) if highs else np.zeros(0)
        self.steps = np.concatenate(steps) if steps else np.zeros(0)

    def current(self) -> np.ndarray:
        """The parameters' current values as a design vector, clipped to the bounds."""
        x = np.concatenate([np.ravel(np.asarray(p.evaluate(), dtype=float))
                            for p in self.params])
        return np.clip(x, self.lower, self.upper)

    def model_values(self, x: np.ndarray) -> list[Any]:
        """The model value of each parameter for design vector ``x`` (kept inside bounds)."""
        values = []
        for p, sl, shape in zip(self.params, self.slices, self.shapes):
            value = (x[sl] + p.adder) * p.scaler
            lo, hi = np.minimum(p.low, p.high), np.maximum(p.low, p.high)
            value = np.clip(value, lo, hi)
            values.append(float(value[0]) if shape is None else value.reshape(shape))
        return values

    def apply(self, x: np.ndarray) -> None:
        """Set every parameter from design vector ``x`` (model values kept inside bounds)."""
        for p, value in zip(self.params, self.model_values(x)):
            p.set_value(value)


class ScipyOptimizer(Driver):
    """Gradient-based, derivative-free or global optimizer built on ``scipy.optimize``.

    Parameters
    ----------
    method : str
        One of `METHODS` (case-insensitive): SLSQP, COBYLA, COBYQA, trust-constr and
        differential_evolution handle constraints; the others only bounds.
        differential_evolution is global: it searches the whole box of the parameters' bounds
        (all finite) and ignores their start values.
    tol : float
        Tolerance handed to scipy (``ftol`` for SLSQP, final trust radius for COBYLA, relative
        spread of the population's objectives for differential_evolution...).
    maxiter : int
        Iteration limit (for COBYLA, the limit on model evaluations; for
        differential_evolution, on generations).
    fd_step : float
        Forward finite-difference step in driver units, for parameters without their own.
    options : dict, optional
        Further method options, overriding the ones derived from ``maxiter``. For
        differential_evolution, arguments of ``scipy.optimize.differential_evolution``: one of
        `_DE_OPTIONS` (``popsize``, ``seed``, ``polish``, ``updating``, ``strategy``...).
    sequential : bool
        True: evaluate the model in this process. False (differential_evolution only): run
        each population as cases of ``executor``, the model shipped once per worker or server
        for the whole run; a member whose case fails counts as +inf (with a warning).
    executor : Executor, optional
        Where populations run when ``sequential`` is False: a `LocalExecutor` (default: a new
        one per run), or an `openmdao_like.distributed.RAMExecutor` for allocated servers.
    progress : bool, optional
        Show a progress line on stderr — iteration, objective and largest constraint
        violation at the current iterate — True, False, or None (default) when stderr is a
        terminal.

    Attributes
    ----------
    success : bool or None
        Whether scipy reported convergence (None before a run).
    message : str
        Scipy's message.
    nfev : int
        Model evaluations made by the last run (finite differences and the final one included).
    iterations : int
        Optimizer iterations (``result.nit``; model evaluations for methods without it).
    result : scipy.optimize.OptimizeResult or None
        The full result of the last run.
    current_iteration : int
        Model evaluations made so far in the current run; during one, its number from 0 (the
        last number of the iteration coordinate of its recorded case, ``'driver:7'``).
    """

    #: Attributes the workers of a parallel run do not need (see `ModelCaseRunner`).
    _not_shipped: tuple[str, ...] = ('_cache', '_jac', '_space', 'result')

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``method``, ``tol``, ``maxiter``, ``fd_step``, ``options``, ``sequential`` and
        ``executor``, ``progress`` (see the class docstring)."""
        super().declare_options(options)
        options.declare('method', METHODS[0], check=_method, accepts=_METHOD_ACCEPTS,
                        desc='the scipy method (any case)')
        options.declare('tol', 1e-8, types=float, lower=0.0, exclude_lower=True,
                        accepts='a positive float', desc='tolerance handed to scipy')
        options.declare('maxiter', 200, types=int, lower=0, exclude_lower=True,
                        accepts='a positive int', desc='iteration limit')
        options.declare('fd_step', 1e-6, types=float, lower=0.0, exclude_lower=True,
                        accepts='a positive float',
                        desc='default finite-difference step (driver units)')
        options.declare('options', {}, types=dict, check=dict,
                        desc="further options of the scipy method (scipy's own)")
        declare_execution_options(options, 'populations')

    def __init__(self, method: str = METHODS[0], **kwargs: Any):
        super().__init__(method=method, **kwargs)
        self._check_mode()
        self.success: bool | None = None
        self.message = ''
        self.nfev = 0
        self.iterations = 0
        self.result: Any = None
        self._cache: dict[bytes, tuple[float, np.ndarray]] = {}
        self._jac: tuple[bytes, np.ndarray, np.ndarray] | None = None
        self._last_key: bytes | None = None
        self._space: _DesignSpace | None = None

    def _check_mode(self) -> None:
        """Raise `ValidationError` unless ``sequential`` and ``options`` suit the method."""
        method, owner = self.method, self._option_owner()
        if not self.sequential and method not in _POPULATION:
            raise ValidationError(
                f'{owner}: sequential=False needs a method that evaluates populations: only '
                f'{", ".join(sorted(_POPULATION))} does; method {method!r} evaluates one point '
                f'at a time (use sequential=True)')
        if method not in _POPULATION:
            return
        unknown = sorted(set(self.options) - set(_DE_OPTIONS))
        if unknown:
            raise ValidationError(f'{owner}: unknown option(s) '
                                  f'{", ".join(map(repr, unknown))} for method {method!r}; '
                                  f'expected some of {", ".join(_DE_OPTIONS)}')
        updating = self.options.get('updating', 'deferred')
        if not self.sequential and updating != 'deferred':
            raise ValidationError(f"{owner}: options['updating'] must be "
                                  f"'deferred' with sequential=False (a population is evaluated "
                                  f"at once), got {describe(updating)}")

    # -- running --------------------------------------------------------------------------------
    def _check_problem(self) -> None:
        """Raise `ConfigError` unless the problem suits the method."""
        where = f'{self._option_owner()}, method {self.method!r}'
        self._require_design(where)
        if len(self._objectives) > 1:
            raise ConfigError(f'{where}: expected one objective, got {len(self._objectives)} '
                              f'({", ".join(self._objectives)})')
        if self._constraints and self.method not in _CONSTRAINED:
            raise ConfigError(f'{where}: the method does not support constraints '
                              f'({", ".join(self._constraints)}); use one of '
                              f'{", ".join(m for m in METHODS if m in _CONSTRAINED)}')
        if self.method in _POPULATION:
            for name, p in self._parameters.items():
                if not (np.all(np.isfinite(p.low)) and np.all(np.isfinite(p.high))):
                    raise ConfigError(f'{where}: parameter {name!r} needs finite bounds (the '
                                      f'method searches between them), got low={p.low}, '
                                      f'high={p.high}')
        self._check_mode()

    def _prepare_run(self) -> None:
        """Build the design space from the parameters (also what a worker does on arrival)."""
        self._space = _DesignSpace(list(self._parameters.values()), self.fd_step)

    def execute(self) -> None:
        """Minimize the objective, then leave the model evaluated at the optimum."""
        parent = self.parent
        if parent is not None and parent._dirty:
            parent.check_config()
        self._check_problem()
        self.start_iteration()
        self.nfev, self.success, self.message, self.result = 0, None, '', None
        self._cache, self._jac, self._last_key = {}, None, None
        self._prepare_run()
        space = self._space
        method = self.method
        with warnings.catch_warnings(), \
                Progress(desc=tree.where(self), unit='it', enabled=self.progress) as bar:
            # quasi-Newton Hessians of linear constraints (trust-constr) are harmless
            warnings.filterwarnings('ignore', message='delta_grad == 0.0', category=UserWarning)
            callback = self._progress_callback(bar) if bar.enabled else None
            result = self._global_search(callback) if method in _POPULATION \
                else self._local_search(callback)
        self.result = result
        self.success = bool(result.success)
        self.message = str(result.message)
        self.iterations = int(result.get('nit', result.get('nfev', 0)))
        best = np.clip(np.asarray(result.x, dtype=float), space.lower, space.upper)
        if best.tobytes() != self._last_key:
            self._evaluate(best, use_cache=False)
        log = logger.info if self.success else logger.warning
        log('%s: %s %s after %d iterations, %d model runs: %s', tree.where(self), method,
            'converged' if self.success else 'did not converge', self.iterations, self.nfev,
            self.message)

    def _progress_callback(self, bar: Progress) -> Any:
        """The scipy callback (called with each iterate) that moves ``bar`` on by one
        iteration and shows the objective and the largest constraint violation there (when
        the iterate was evaluated in this process; else the model evaluations so far)."""
        equality = None

        def on_iteration(x: Any, *_: Any) -> None:
            nonlocal equality
            space = self._space
            key = np.clip(np.asarray(x, dtype=float).ravel(), space.lower, space.upper).tobytes()
            entry = self._cache.get(key)
            if entry is None:
                bar.set_postfix(evaluations=self.nfev)
            else:
                objective, residuals = entry
                if equality is None:
                    cons = list(self._constraints.values())
                    equality = np.concatenate(
                        [np.full(group.size, con.equality)
                         for con, group in zip(cons, self._residual_groups(cons))] or
                        [np.zeros(0, dtype=bool)])
                violation = np.where(equality, np.abs(residuals), np.maximum(residuals, 0.0))
                bar.set_postfix(objective=objective,
                                violation=float(violation.max()) if violation.size else 0.0)
            bar.update()
        return on_iteration

    def _local_search(self, callback: Any = None) -> Any:
        """``scipy.optimize.minimize`` from the parameters' current values (``callback``: see
        `_progress_callback`)."""
        from scipy.optimize import Bounds, minimize
        space, method = self._space, self.method
        options = {_MAXITER_OPTION.get(method, 'maxiter'): self.maxiter}
        options.update(self.options)
        kwargs: dict[str, Any] = dict(method=method, bounds=Bounds(space.lower, space.upper),
                                      tol=self.tol, options=options)
        if method in _GRADIENT:
            kwargs['jac'] = lambda x: self._gradients(x)[0].copy()
        if self._constraints:
            kwargs['constraints'] = self._scipy_constraints(method)
        return minimize(lambda x: self._evaluate(x)[0], space.current(), callback=callback,
                        **kwargs)

    def _global_search(self, callback: Any = None) -> Any:
        """``scipy.optimize.differential_evolution`` over the parameters' bounds; populations
        evaluated here one member at a time, or (not sequential) as cases of the executor
        (``callback``: see `_progress_callback`)."""
        from scipy.optimize import Bounds, NonlinearConstraint, differential_evolution
        space = self._space
        kwargs: dict[str, Any] = dict(maxiter=self.maxiter, tol=self.tol)
        kwargs.update(self.options)
        bounds = Bounds(space.lower, space.upper)
        if self.sequential:
            constraints = self._scipy_constraints(self.method) if self._constraints else ()
            return differential_evolution(lambda x: self._evaluate(x)[0], bounds,
                                          constraints=constraints, callback=callback, **kwargs)
        # scipy hands whole populations to vectorized functions, the constraints included
        kwargs.update(updating='deferred', vectorized=True)
        own = self.executor is None
        executor = LocalExecutor() if own else self.executor
        with PopulationEvaluator(self, executor, own) as population:
            constraints = [NonlinearConstraint(population.constraint(eq), low, 0.0)
                           for eq, low in ((False, -np.inf), (True, 0.0))
                           if population.has(eq)]
            return differential_evolution(population.objective, bounds,
                                          constraints=constraints, callback=callback, **kwargs)

    def _scipy_constraints(self, method: str) -> list[Any]:
        """The constraints in the form ``method`` expects (residual g <= 0 or g == 0)."""
        cons = list(self._constraints.values())
        ineq = [i for i, c in enumerate(cons) if not c.equality]
        eq = [i for i, c in enumerate(cons) if c.equality]
        self._evaluate(self._space.current())  # sizes of array-valued residuals
        groups = self._residual_groups(cons)
        ineq_idx = np.concatenate([groups[i] for i in ineq]) if ineq else None
        eq_idx = np.concatenate([groups[i] for i in eq]) if eq else None
        out: list[Any] = []
        if method == 'SLSQP':
            for kind, idx, sign in (('ineq', ineq_idx, -1.0), ('eq', eq_idx, 1.0)):
                if idx is not None:
                    out.append({'type': kind,
                                'fun': lambda x, i=idx, s=sign: s * self._evaluate(x)[1][i],
                                'jac': lambda x, i=idx, s=sign: s * self._gradients(x)[1][i]})
            return out
        from scipy.optimize import NonlinearConstraint
        for idx, low in ((ineq_idx, -np.inf), (eq_idx, 0.0)):
            if idx is None:
                continue
            extra = {'jac': (lambda x, i=idx: self._gradients(x)[1][i])} \
                if method in _GRADIENT else {}
            out.append(NonlinearConstraint(lambda x, i=idx: self._evaluate(x)[1][i], low, 0.0,
                                           **extra))
        return out

    def _residual_groups(self, cons: list[Any]) -> list[np.ndarray]:
        """Index arrays into the flat residual vector, one per constraint."""
        groups, start = [], 0
        for con in cons:
            n = int(np.size(con.evaluate()))
            groups.append(np.arange(start, start + n))
            start += n
        return groups

    def _evaluate(self, x: Any, use_cache: bool = True) -> tuple[float, np.ndarray]:
        """(objective, flat constraint residuals) at design vector ``x``: one model run."""
        space = self._space
        x = np.clip(np.asarray(x, dtype=float).ravel(), space.lower, space.upper)
        key = x.tobytes()
        hit = self._cache.get(key) if use_cache else None
        if hit is not None:
            return hit
        space.apply(x)
        self._workflow.run()
        self.nfev += 1
        obj = next(iter(self._objectives.values()))
        value = np.asarray(obj.evaluate(), dtype=float)
        if value.size != 1:
            raise ExpressionError(f'{tree.where(self)}: objective {obj.text!r} must be a scalar, '
                                  f'got shape {value.shape}')
        resid = [np.ravel(np.asarray(c.evaluate(), dtype=float))
                 for c in self._constraints.values()]
        entry = (float(value.reshape(-1)[0]),
                 np.concatenate(resid) if resid else np.zeros(0))
        self._cache[key] = entry
        self._last_key = key
        logger.debug('%s: evaluation %d at %s: objective %r', tree.where(self), self.nfev, x,
                     entry[0])
        self.record_iteration()
        self.current_iteration += 1
        return entry

    def _gradients(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Forward-difference gradient of the objective and jacobian of the residuals."""
        space = self._space
        x = np.clip(np.asarray(x, dtype=float).ravel(), space.lower, space.upper)
        key = x.tobytes()
        if self._jac is not None and self._jac[0] == key:
            return self._jac[1], self._jac[2]
        f0, g0 = self._evaluate(x)
        grad = np.empty(x.size)
        jac = np.empty((g0.size, x.size))
        for i in range(x.size):
            step = space.steps[i] if x[i] + space.steps[i] <= space.upper[i] \
                else -space.steps[i]
            xp = x.copy()
            xp[i] += step
            f1, g1 = self._evaluate(xp)
            h = xp[i] - x[i]
            grad[i] = (f1 - f0) / h
            jac[:, i] = (g1 - g0) / h
        self._jac = (key, grad, jac)
        return grad, jac
