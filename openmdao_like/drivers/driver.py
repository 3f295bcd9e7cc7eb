"""`Driver`: a component that iterates a workflow, with parameters, objectives, constraints and
responses, and the classic iteration protocol (start, continue, pre, run, post).

A driver's settings are declared options (`openmdao_like.options`): a subclass declares them in
``declare_options``, its constructor takes them as keywords (besides the values of its
variables), and each reads and writes as a checked attribute.

Recording: a driver whose ``record`` option is on (the class's `Driver.record_by_default`
unless given: on for optimizers and case-running drivers, off for solvers) sends its cases to
the top assembly's recorders. Each case names the driver (its dotted path) and its iteration
coordinate, ``'driver:3|solver:2'``: the path and ``current_iteration`` of every enclosing
driver that is running (the drivers running in this thread are kept on a stack by
`Driver.run`), outermost first, then the recording driver's own number.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterable

import numpy as np

from .. import tree
from ..cases import Case
from ..component import Component
from ..errors import ConfigError, ExpressionError
from ..options import HasOptions, OptionsDictionary
from ..workflow import Dataflow, Workflow
from .expressions import ExprEvaluator
from .parameters import Constraint, Objective, Parameter


#: What the ``executor`` option of the drivers that run cases through one accepts, in messages.
EXECUTOR_ACCEPTS = ('an openmdao_like.execution.Executor (e.g. LocalExecutor(n_workers=4)) '
                    'or None')


class Driver(HasOptions, Component):
    """Base of every driver.

    `execute` runs the iteration protocol: ``start_iteration()``, then while
    ``continue_iteration()``: ``pre_iteration()``, ``run_iteration()`` (runs the workflow once),
    ``post_iteration()``. Subclasses override the steps they need.

    Parameters
    ----------
    **kwargs
        Declared options of the driver's class and values of its variables; any other name
        raises `UnknownOptionError` naming the closest ones.

    Attributes
    ----------
    workflow : Workflow
        What one iteration runs (a `Dataflow` unless replaced).
    current_iteration : int
        Iterations completed in the current run; during an iteration, its number (what the
        iteration coordinates of the cases recorded meanwhile show for this driver).
    """

    #: Whether data cycles among this driver's workflow members are expected (solvers).
    iterates_cycles = False
    #: Default of the ``record`` option: whether the driver's cases go to the model's recorders
    #: unless told otherwise (a subclass sets it: solvers record only when asked).
    record_by_default = True

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``record`` (default: the class's `record_by_default`)."""
        super().declare_options(options)
        options.declare('record', cls.record_by_default, types=bool, accepts='True or False',
                        desc="whether this driver's cases go to the top assembly's recorders")

    def __init__(self, **kwargs: Any):
        self._workflow: Workflow = Dataflow()
        self._parameters: dict[str, Parameter] = {}
        self._objectives: dict[str, Objective] = {}
        self._constraints: dict[str, Constraint] = {}
        self._responses: dict[str, ExprEvaluator] = {}
        self._cycles: list[list[str]] = []
        self.current_iteration = 0
        super().__init__(**kwargs)
        self._workflow._driver = self

    def _option_owner(self) -> str:
        """How messages name this driver: its path and type (just the type before it joins a
        model)."""
        where, kind = tree.where(self), type(self).__name__
        return where if where == kind else f'{where} ({kind})'

    def _require_design(self, where: str, objectives: str = 'one') -> None:
        """Raise `ConfigError` (its message starting with ``where``) unless the driver has
        parameters and an objective; ``objectives`` says how many it may have."""
        if not self._parameters:
            raise ConfigError(f'{where}: no parameters; add some with add_parameter()')
        if not self._objectives:
            raise ConfigError(f'{where}: no objective; add {objectives} with add_objective()')

    @property
    def workflow(self) -> Workflow:
        """The workflow this driver iterates."""
        return self._workflow

    @workflow.setter
    def workflow(self, wf: Workflow) -> None:
        if not isinstance(wf, Workflow):
            raise ExpressionError(f'{tree.where(self)}.workflow: expected a Workflow, got {wf!r}')
        for name in self._workflow._names:
            if name not in wf:
                wf.add(name)
        wf._driver = self
        self._workflow = wf
        wf._changed()

    def _scope(self) -> Any:
        if self.parent is None:
            raise ExpressionError(f'{tree.where(self)}: add the driver to an assembly before '
                                  f'giving it parameters, objectives or constraints')
        return self.parent

    # -- iteration protocol ---------------------------------------------------------------------
    def run(self, force: bool = False, case_uuid: Any = None) -> None:
        """Run as every component does (`Component.run`), on the stack of running drivers
        meanwhile (see `iteration_prefix`)."""
        running = running_drivers()
        running.append(self)
        try:
            super().run(force, case_uuid)
        finally:
            running.pop()

    def execute(self) -> None:
        """Run the iteration protocol."""
        parent = self.parent
        if parent is not None and parent._dirty:
            parent.check_config()
        self.start_iteration()
        while self.continue_iteration():
            self.pre_iteration()
            self.run_iteration()
            self.post_iteration()

    def start_iteration(self) -> None:
        """Prepare a run (resets ``current_iteration``)."""
        self.current_iteration = 0

    def continue_iteration(self) -> bool:
        """Whether another iteration should run (the base driver runs one)."""
        return self.current_iteration < 1

    def pre_iteration(self) -> None:
        """Called before each iteration."""

    def run_iteration(self) -> None:
        """Run the workflow once."""
        self._workflow.run()

    def post_iteration(self) -> None:
        """Called after each iteration."""
        self.current_iteration += 1

    def check_config(self) -> None:
        """Re-resolve parameters, objectives, constraints and responses against the model."""
        scope = self.parent
        for param in self._parameters.values():
            param.bind(scope)
        for name, obj in list(self._objectives.items()):
            self._objectives[name] = Objective(obj.text, scope, obj.expr.where, obj.name)
        for name, con in list(self._constraints.items()):
            self._constraints[name] = Constraint(con.text, scope, f'{tree.where(self)} constraint',
                                                 con.name)
        for name, resp in list(self._responses.items()):
            self._responses[name] = ExprEvaluator(resp.text, scope, resp.where)

    # -- parameters -----------------------------------------------------------------------------
    def add_parameter(self, target: str | Iterable[str], low: Any = None, high: Any = None,
                      scaler: float = 1.0, adder: float = 0.0, start: Any = None,
                      fd_step: float | None = None, name: str | None = None) -> Parameter:
        """Add an input (or a tuple of inputs set together) for this driver to vary."""
        targets = [target] if isinstance(target, str) else list(target)
        where = f'{tree.where(self)}: cannot add parameter {target!r}'
        if not targets:
            raise ExpressionError(f'{where}: no target given')
        scope = self._scope()
        var_low, var_high = None, None
        for path in targets:
            var = self._check_target(scope, path, where)
            var_low = getattr(var, 'low', None) if var_low is None else var_low
            var_high = getattr(var, 'high', None) if var_high is None else var_high
        low = var_low if low is None else low
        high = var_high if high is None else high
        if low is None or high is None:
            raise ExpressionError(f'{where}: expected low and high bounds (pass them, or declare '
                                  f'them on the variable), got low={low}, high={high}')
        if np.any(np.asarray(low) >= np.asarray(high)):
            raise ExpressionError(f'{where}: expected low < high, got low={low}, high={high}')
        if var_low is not None and np.any(np.asarray(low) < var_low) or \
                var_high is not None and np.any(np.asarray(high) > var_high):
            raise ExpressionError(f'{where}: bounds [{low}, {high}] exceed the variable\'s own '
                                  f'bounds [{var_low}, {var_high}]')
        if scaler == 0:
            raise ExpressionError(f'{where}: scaler must be non-zero, got 0')
        param = Parameter(targets, low, high, scaler, adder, name, fd_step)
        if param.name in self._parameters:
            raise ExpressionError(f'{where}: {param.name!r} is already a parameter')
        param.bind(scope)
        if start is not None:
            param.set_value(start)
        self._parameters[param.name] = param
        scope._config_changed()
        return param

    def _check_target(self, scope: Any, path: str, where: str) -> Any:
        for other in self._parameters.values():
            if path in other.targets:
                raise ExpressionError(f'{where}: {path!r} is already set by parameter '
                                      f'{other.name!r}')
        try:
            owner, name = scope._resolve_owner(path)
            var = tree.variables(owner)[name]
        except Exception:
            raise ExpressionError(f'{where}: {path!r} is not a variable of '
                                  f'{tree.where(scope)!r}') from None
        if var.iotype != 'in':
            raise ExpressionError(f'{where}: {path!r} is an output; a parameter must be an input')
        source = owner.input_source(name) if owner is not scope else None
        if source is not None:
            raise ExpressionError(f'{where}: {path!r} is connected to {source!r}; a parameter '
                                  f'cannot drive a connected input')
        return var

    def remove_parameter(self, name: str) -> None:
        """Remove the parameter called ``name``."""
        if name not in self._parameters:
            raise ExpressionError(f'{tree.where(self)}: no parameter {name!r} (parameters: '
                                  f'{list(self._parameters)})')
        del self._parameters[name]
        self._scope()._config_changed()

    def clear_parameters(self) -> None:
        """Remove every parameter."""
        self._parameters.clear()

    def get_parameters(self) -> dict[str, Parameter]:
        """Name -> `Parameter`, in the order added."""
        return dict(self._parameters)

    def list_param_targets(self) -> list[str]:
        """Every variable path that a parameter sets."""
        return [t for p in self._parameters.values() for t in p.targets]

    def set_parameters(self, values: Iterable[Any]) -> None:
        """Set all parameters from driver-space values, in order."""
        values = list(values)
        if len(values) != len(self._parameters):
            raise ExpressionError(f'{tree.where(self)}: expected {len(self._parameters)} parameter '
                                  f'values, got {len(values)}')
        for param, value in zip(self._parameters.values(), values):
            param.set(value)

    def eval_parameters(self) -> list[Any]:
        """Current driver-space values of the parameters."""
        return [p.evaluate() for p in self._parameters.values()]

    # -- objectives, constraints, responses -----------------------------------------------------
    def add_objective(self, expr: str, name: str | None = None) -> Objective:
        """Add an expression to minimize."""
        obj = Objective(expr, self._scope(), f'{tree.where(self)} objective', name)
        if obj.name in self._objectives:
            raise ExpressionError(f'{tree.where(self)}: objective {obj.name!r} already exists')
        self._objectives[obj.name] = obj
        return obj

    def get_objectives(self) -> dict[str, Objective]:
        """Name -> `Objective`."""
        return dict(self._objectives)

    def clear_objectives(self) -> None:
        """Remove every objective."""
        self._objectives.clear()

    def eval_objective(self) -> Any:
        """Value of the (first) objective."""
        if not self._objectives:
            raise ExpressionError(f'{tree.where(self)}: no objective has been added')
        return next(iter(self._objectives.values())).evaluate()

    def eval_objectives(self) -> list[Any]:
        """Values of every objective."""
        return [o.evaluate() for o in self._objectives.values()]

    def add_constraint(self, expr: str, name: str | None = None) -> Constraint:
        """Add ``'lhs <op> rhs'`` with op one of <, <=, >, >=, = (or ==)."""
        con = Constraint(expr, self._scope(), f'{tree.where(self)} constraint', name)
        if con.name in self._constraints:
            raise ExpressionError(f'{tree.where(self)}: constraint {con.name!r} already exists')
        self._constraints[con.name] = con
        return con

    def get_constraints(self) -> dict[str, Constraint]:
        """Name -> `Constraint`."""
        return dict(self._constraints)

    def get_eq_constraints(self) -> dict[str, Constraint]:
        """The equality constraints."""
        return {n: c for n, c in self._constraints.items() if c.equality}

    def get_ineq_constraints(self) -> dict[str, Constraint]:
        """The inequality constraints."""
        return {n: c for n, c in self._constraints.items() if not c.equality}

    def clear_constraints(self) -> None:
        """Remove every constraint."""
        self._constraints.clear()

    def eval_constraints(self) -> list[Any]:
        """Residuals of every constraint (<= 0 or == 0 when satisfied)."""
        return [c.evaluate() for c in self._constraints.values()]

    def add_response(self, expr: str) -> ExprEvaluator:
        """Record ``expr`` (a variable path or an expression) for every case."""
        resp = ExprEvaluator(expr, self._scope(), f'{tree.where(self)} response')
        self._responses[expr] = resp
        return resp

    def clear_responses(self) -> None:
        """Remove every response."""
        self._responses.clear()

    def get_responses(self) -> list[str]:
        """The response expressions, in the order added."""
        return list(self._responses)

    def get_response_exprs(self) -> dict[str, ExprEvaluator]:
        """Expression text -> its compiled `ExprEvaluator` (``refs``: the paths it reads)."""
        return dict(self._responses)

    def eval_responses(self) -> dict[str, Any]:
        """Expression -> current value of every response."""
        return {text: resp.evaluate() for text, resp in self._responses.items()}

    # -- recording ------------------------------------------------------------------------------
    def _recorders(self) -> list[Any]:
        """The top assembly's recorders if this driver records (``record``), else []."""
        if not self.record:
            return []
        return getattr(self._top(), 'recorders', None) or []

    def _top(self) -> Any:
        """The top of the model this driver is in (whose recorders it records to)."""
        top = self
        while top.parent is not None:
            top = top.parent
        return top

    def iteration_prefix(self) -> str:
        """The iteration coordinate of this driver's cases up to their own number:
        ``'driver:3|sub.solver:'`` (each enclosing running driver's path and
        ``current_iteration``, outermost first, then this driver's path)."""
        parts = []
        for driver in running_drivers():
            if driver is self:
                break
            parts.append(f'{tree.where(driver)}:{driver.current_iteration}|')
        parts.append(f'{tree.where(self)}:')
        return ''.join(parts)

    def record_iteration(self, status: str = 'ok', error: str | None = None) -> Case | None:
        """Send the current parameters, objectives, constraints and responses to the top's
        recorders as one case numbered ``current_iteration`` (no-op without recorders, or when
        ``record`` is off). Call it during the iteration, before `post_iteration` counts it."""
        recorders = self._recorders()
        if not recorders:
            return None
        inputs = {n: p.get_value() for n, p in self._parameters.items()}
        now = time.time()
        number = self.current_iteration
        case = Case(number, inputs, self._iteration_outputs(), status, error, tree.where(self),
                    now, now, iteration=f'{self.iteration_prefix()}{number}')
        for rec in recorders:
            rec.record(case)
        return case

    def _iteration_outputs(self) -> dict[str, Any]:
        """The outputs of a case `record_iteration` records: objectives, constraint residuals
        and responses, by name (a subclass may add its own state)."""
        outputs: dict[str, Any] = {n: o.evaluate() for n, o in self._objectives.items()}
        outputs.update((n, c.evaluate()) for n, c in self._constraints.items())
        outputs.update((n, r.evaluate()) for n, r in self._responses.items())
        return outputs


_RUNNING = threading.local()


def running_drivers() -> list[Driver]:
    """The drivers running in this thread, outermost first (kept by `Driver.run`)."""
    try:
        return _RUNNING.drivers
    except AttributeError:
        drivers = _RUNNING.drivers = []
        return drivers
