"""`CaseIteratorDriver`: run a model once per case of a (possibly endless, lazily read)
sequence of ``{variable path: value}`` dicts, serially or through an `Executor`.

Each case sets its inputs, runs the workflow and collects every parameter and every
``add_response(path_or_expr)`` as outputs (responses keyed by their expression text). A case
whose model raises is recorded as failed, with its traceback and NaN (numbers, arrays) or None
outputs (parameters keep the values the case gave them), and is never dropped. Then
``error_policy`` decides: ``'ABORT'`` stops handing out cases, lets those in flight finish and
raises a `CaseError` once all are recorded; ``'RETRY'`` runs the case up to ``max_retries``
more times, then records it as failed and goes on. ``driver.results`` lists the cases in case
order, also after a parallel run; the model's recorders get every case, in case order.

The hot path is compiled: each set of case keys is resolved once to (owner, name) setters,
reused while consecutive cases have the same keys; outputs are read through getters built at
the start of a run. With ``sequential=False`` the whole model (from its top) is pickled once
and shipped once to each worker of the executor, which then receives only case inputs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any

import numpy as np

from .. import tree
from ..cases import FAILED, OK, Case, failed_value
from ..container import split_index
from ..errors import CaseError, ExpressionError, describe, error_summary
from ..execution.base import BrokenExecutor, CaseOutcome, Executor, SerialExecutor
from ..execution.local import LocalExecutor
from ..progress import Progress
from .caserun import CaseFeed, ModelCaseRunner, RemoteTraceback, inner_cases
from ..options import OptionsDictionary
from .driver import EXECUTOR_ACCEPTS, Driver

logger = logging.getLogger(__name__)

#: Characters of what a case printed that `_capture_output` keeps, per stream.
OUTPUT_TAIL = 4000

ABORT, RETRY = 'ABORT', 'RETRY'
ERROR_POLICIES = (ABORT, RETRY)
_MAX_PLANS = 64  # key sets whose setters are kept compiled

__all__ = ['CaseIteratorDriver', 'ModelCaseRunner', 'ABORT', 'RETRY']


def _cases(value: Any) -> Any:
    """``value`` if it can be a driver's cases (an iterable that is not a str or dict), else
    TypeError."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(value)
    return value


class CaseIteratorDriver(Driver):
    """Runs its workflow once per case.

    Parameters
    ----------
    cases : iterable of dict, optional
        ``{variable path: value}`` per case: a list (run again on every `run`) or any
        iterator/generator (read lazily, one case at a time, never held all at once). A key
        may also be the name of one of the driver's parameters.
    sequential : bool
        True: run the cases one by one in this process. False: run them through
        ``executor`` (default: a new `LocalExecutor` per run).
    error_policy : {'ABORT', 'RETRY'}
        What a failed case does: stop the run with a `CaseError`, or be run again.
    max_retries : int
        With 'RETRY', how many more times a failed case is run (>= 0). Model errors and
        lost workers or servers (infrastructure) are counted apart, each up to this bound;
        ``case.retries`` is their sum.
    executor : Executor, optional
        Where cases run when ``sequential`` is False: a `LocalExecutor`, or a
        `openmdao_like.distributed.RAMExecutor` for servers from the resource allocation
        manager (this machine, SSH hosts, SLURM or PBS jobs, MPI).
    progress : bool, optional
        Show a progress bar on stderr: True, False, or None (default) when stderr is a terminal.
    keep_results : bool
        Keep every `Case` in `results` (turn off for runs too large to hold; recorders still
        get every case).

    Attributes
    ----------
    results : list of Case
        The cases of the last run, in case order.
    """

    #: Attributes a worker does not need: not shipped with the model (see `ModelCaseRunner`).
    _not_shipped: tuple[str, ...] = ('cases', '_results', '_resumed', '_claims')
    #: While `resume` runs: case id -> the case done in the run resumed, or None for one
    #: paused or cancelled there (neither is run again; None is not recorded either).
    _resumed: dict[int, Case | None] | None = None
    #: While `run_claimed` runs: makes the feed of the cases claimed from a job store.
    _claims: Callable[[Any, dict], CaseFeed] | None = None
    #: Whether each case's printed output is captured (`CaseOutcome.output`): while
    #: `run_claimed` runs, for the job store.
    _capture_output = False

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``cases``, ``sequential``, ``error_policy``, ``max_retries``, ``executor``,
        ``progress`` and ``keep_results`` (see the class docstring)."""
        super().declare_options(options)
        options.declare('cases', None, allow_none=True, check=_cases,
                        accepts='an iterable of dicts {path: value} (a list, iterator or '
                                'generator) or None',
                        desc='the cases to run (a list runs again on every run; an iterator '
                             'is read lazily)')
        options.declare('sequential', True, types=bool, accepts='True or False',
                        desc='True: run the cases one by one in this process; False: through '
                             'executor')
        options.declare('error_policy', ABORT, types=str, values=ERROR_POLICIES,
                        accepts=' or '.join(map(repr, ERROR_POLICIES)),
                        desc='what a failed case does: stop the run, or run again')
        options.declare('max_retries', 1, types=int, lower=0,
                        desc="with 'RETRY', how many more times a failed case is run")
        options.declare('executor', None, types=Executor, allow_none=True,
                        accepts=EXECUTOR_ACCEPTS,
                        desc='where cases run when not sequential (None: a new LocalExecutor '
                             'per run)')
        options.declare('progress', None, types=bool, allow_none=True,
                        accepts='True, False or None',
                        desc='progress bar on stderr (None: when stderr is a terminal)')
        options.declare('keep_results', True, types=bool, accepts='True or False',
                        desc='whether results keeps every case')

    def __init__(self, cases: Iterable[Mapping[str, Any]] | None = None, **kwargs: Any):
        super().__init__(cases=cases, **kwargs)
        self._results: list[Case] = []
        self._reset_plans()

    def _option_owner(self) -> str:
        """How messages name this driver: its path (its type before it joins a model)."""
        return tree.where(self)

    @property
    def results(self) -> list[Case]:
        """The cases of the last run, in case order."""
        return self._results

    def resume(self, run_id: str, store: Any) -> None:
        """Run the model again as run ``run_id`` of ``store`` (an
        `openmdao_like.jobs.JobStore`), running only its cases that are not COMPLETED there.

        The cases done before are kept in `results` and recorded in their place, so the
        recorders hold every case once; the cases run now are recorded in the store as well.
        Cases paused or cancelled in the store are passed over.
        The cases must come out of the driver as they did (a DOE with a fixed seed, a list).
        """
        done = store.completed_cases(run_id, tree.where(self))
        self._resumed = {**dict.fromkeys(store.passed_over(run_id)),
                         **{case.id: case for case in done}}
        try:
            self._run_top_with(store.recorder(run_id, tree.where(self)))
        finally:
            self._resumed = None

    def run_claimed(self, claims: Callable[[Any, dict], CaseFeed], recorder: Any,
                    done: Iterable[Case] = ()) -> None:
        """Run the model with this driver's cases coming from ``claims(driver, pending)``, a
        feed (`CaseFeed`) that hands out the cases a runner claimed from a job store
        (`openmdao_like.jobs.claims`), which marks the case ids it passes over (other runners'
        cases) in ``pending`` as ``{case_id: (None, ())}``; each case is recorded in
        ``recorder`` (a `records_as_ended` recorder) as well as in the model's recorders,
        with the end of what it printed (`Case.output`).
        ``done``: cases of the run done before (kept in `results` and recorded in their
        place, as by `resume`)."""
        self._claims = claims
        self._resumed = {case.id: case for case in done}
        self._capture_output = True
        try:
            self._run_top_with(recorder)
        finally:
            self._claims = self._resumed = None
            self._capture_output = False

    def _run_top_with(self, recorder: Any) -> None:
        """Run the top assembly with ``recorder`` added to its recorders meanwhile."""
        top = self._top()
        top.recorders = [*getattr(top, 'recorders', ()), recorder]
        try:
            top.run()
        finally:
            top.recorders = [rec for rec in top.recorders if rec is not recorder]

    # -- what the cases are -------------------------------------------------------------------
    def iter_cases(self) -> Iterator[Mapping[str, Any]]:
        """The inputs of each case a run of this driver has, in case order (what
        ``openmdao-like submit`` stores as the jobs of a run)."""
        return self._case_source()

    def _case_source(self) -> Iterator[Mapping[str, Any]]:
        """The cases of this run, as an iterator (subclasses generate them)."""
        cases = self.cases
        return iter(()) if cases is None else iter(cases)

    def _case_count(self) -> int | None:
        """How many cases this run has, if known without reading them."""
        try:
            return len(self.cases)  # type: ignore[arg-type]
        except TypeError:
            return None

    # -- compiling ----------------------------------------------------------------------------
    def _reset_plans(self) -> None:
        """Forget compiled setters and getters (the model may have changed)."""
        self._plans: dict[frozenset, tuple] = {}
        self._plan_keys: frozenset | None = None
        self._set_fast: tuple = ()
        self._set_slow: tuple = ()
        self._getters: tuple = ()
        self._exprs: tuple = ()
        self._copies: tuple = ()

    def _prepare_run(self) -> None:
        """Compile the output getters: every parameter, then every response."""
        self._reset_plans()
        getters, exprs, copies = [], [], []
        for name, param in self._parameters.items():
            getters.append((name, *param._owners[0]))
        for text, resp in self._responses.items():
            if resp.refs == [text.strip()]:  # a plain variable path: read it directly
                getters.append((text, *resp._owners[0]))
            else:
                exprs.append((text, resp.evaluate))
        for key, owner, name in getters:
            if isinstance(getattr(owner, name), (np.ndarray, list, dict)):
                copies.append(key)  # mutable: a later case must not change this one's value
        self._getters, self._exprs, self._copies = tuple(getters), tuple(exprs), tuple(copies)

    def _use_plan(self, inputs: Mapping[str, Any], case_id: int) -> None:
        """Make the setters of ``inputs``' keys current (compiled, checked, once per key set)."""
        keys = frozenset(inputs)
        plan = self._plans.get(keys)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            plan = self._plans[keys] = self._compile_setters(inputs, case_id)
        self._plan_keys = keys
        self._set_fast, self._set_slow = plan

    def _compile_setters(self, inputs: Mapping[str, Any], case_id: int) -> tuple[tuple, tuple]:
        """(owner, name) setters for plain paths and parameter names; callables for 'a.x[i]'."""
        scope = self._scope()
        fast: list[tuple[str, Any, str]] = []
        slow: list[tuple[str, Any]] = []
        for key in inputs:
            param = self._parameters.get(key) if isinstance(key, str) else None
            if param is not None:
                fast.extend((key, owner, name) for owner, name in param._owners)
                continue
            owner, name, index = self._check_input(scope, key, inputs[key], case_id)
            if index:
                slow.append((key, partial(scope.set, key)))
            else:
                fast.append((key, owner, name))
        return tuple(fast), tuple(slow)

    def _check_input(self, scope: Any, key: Any, value: Any, case_id: int
                     ) -> tuple[Any, str, tuple | None]:
        """Resolve a case key to (owner, variable name, index); raise naming what is wrong."""
        def fail(given: str) -> ExpressionError:
            return ExpressionError(
                f'{tree.where(self)}: case {case_id}: cannot set {key!r} to {describe(value)}: '
                f'expected the path of an unconnected input variable of '
                f'{tree.where(scope)!r}, got {given}')
        if not isinstance(key, str):
            raise fail(f'a key of type {type(key).__name__}')
        *heads, last = key.split('.')
        owner = scope
        for head in heads:
            child = getattr(owner, '_children', {}).get(head)
            if child is None:
                raise fail(f'an unknown path: {tree.where(owner)!r} has no component {head!r}')
            owner = child
        try:
            name, index = split_index(last)
        except Exception:
            raise fail('a malformed path (expected name or name[int] after the last dot)'
                       ) from None
        var = tree.variables(owner).get(name) if hasattr(owner, '_vars') else None
        if var is None:
            inputs = sorted(n for n, v in tree.variables(owner).items() if v.iotype == 'in') \
                if hasattr(owner, '_vars') else []
            raise fail(f'an unknown variable: {tree.where(owner)!r} has no variable {name!r} '
                       f'(its inputs: {", ".join(inputs) or "none"})')
        if var.iotype != 'in':
            raise fail(f'an output of {tree.where(owner)!r}')
        source = owner.input_source(name) if owner is not scope else None
        if source is not None:
            raise fail(f'an input connected to {source!r}')
        return owner, name, index

    # -- running one case (in this process or in a worker) -------------------------------------
    def _evaluator(self) -> Callable[[int, Mapping[str, Any]], CaseOutcome]:
        """What runs one case: `_evaluate`, or `_evaluate_capturing` while
        `_capture_output` (chosen once per run, not per case)."""
        return self._evaluate_capturing if self._capture_output else self._evaluate

    def _evaluate_capturing(self, case_id: int, inputs: Mapping[str, Any]) -> CaseOutcome:
        """`_evaluate`, the end of what the case printed in `CaseOutcome.output`."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            outcome = self._evaluate(case_id, inputs)
        return outcome._replace(output=(out.getvalue()[-OUTPUT_TAIL:],
                                        err.getvalue()[-OUTPUT_TAIL:]))

    def _evaluate(self, case_id: int, inputs: Mapping[str, Any]) -> CaseOutcome:
        """Set the inputs, run the workflow, collect the outputs: one `CaseOutcome`."""
        if inputs.keys() != self._plan_keys:
            self._use_plan(inputs, case_id)
        self.current_iteration = case_id  # what drivers run by this case record as our number
        t_start = time.time()
        try:
            for key, owner, name in self._set_fast:
                setattr(owner, name, inputs[key])
            for key, setter in self._set_slow:
                setter(inputs[key])
            self.run_iteration()
            outputs = {key: getattr(owner, name) for key, owner, name in self._getters}
            for key, expr in self._exprs:
                outputs[key] = expr()
            for key in self._copies:
                outputs[key] = outputs[key].copy()
        except Exception:
            error = traceback.format_exc()
            return CaseOutcome(case_id, self._failed_outputs(), FAILED, error, t_start,
                               time.time())
        return CaseOutcome(case_id, outputs, OK, None, t_start, time.time())

    def _failed_outputs(self) -> dict[str, Any]:
        """Outputs of a failed case: NaN (or NaN arrays) for numbers, None otherwise."""
        outputs: dict[str, Any] = {}
        for key, owner, name in self._getters:
            try:
                outputs[key] = failed_value(getattr(owner, name))
            except Exception:
                outputs[key] = None
        for key, expr in self._exprs:
            try:
                outputs[key] = failed_value(expr())
            except Exception:
                outputs[key] = None
        return outputs

    # -- the run ------------------------------------------------------------------------------
    def execute(self) -> None:
        """Run every case (see the class docstring); raise `CaseError` on an ABORT."""
        scope = self._scope()
        if scope._dirty:
            scope.check_config()
        self.start_iteration()
        self._results = []
        self._prepare_run()
        recorders = self._recorders()
        opened = [rec for rec in recorders if not getattr(rec, 'is_open', True)]
        for rec in opened:  # run on its own, not from the top's run(): open them here
            rec.startup(self._top())
        try:
            self._run_cases(self._case_source(), recorders)
        finally:
            for rec in opened:
                rec.close()

    def _run_cases(self, source: Iterator[Mapping[str, Any]], recorders: list[Any]) -> None:
        """Run the cases of ``source`` through the executor; record them in case order (but
        each as it ends in a recorder whose ``records_as_ended`` is true, e.g. a job store's).

        An executor the driver makes (sequential, or the default `LocalExecutor`) is shut down
        after the run; one the user gave stays warm for the next run (its workers or servers
        are kept and get the model again) until the user shuts it down, except after Ctrl-C
        or when it broke."""
        executor = self.executor
        own = self.sequential or executor is None
        if self.sequential:
            executor, runner = SerialExecutor(), self._evaluator()
        else:
            executor = LocalExecutor() if executor is None else executor
            runner = ModelCaseRunner(self)
        bar = Progress(desc=tree.where(self), unit='case', enabled=self.progress)
        done = self._resumed or {}
        # cases waiting for an earlier one to be recorded first (None: not to be recorded)
        pending: dict[int, tuple[Case | None, Any]] = {case_id: (case, ()) for case_id, case
                                                       in done.items()}
        if self._claims is None:
            count = self._case_count()
            feed = CaseFeed(source, self, count, skip=done)
        else:
            count, feed = None, self._claims(self, pending)
        if bar.enabled:
            bar.set_total(count)
        record = [rec.record for rec in recorders if not getattr(rec, 'records_as_ended', False)]
        ended = [rec.record for rec in recorders if getattr(rec, 'records_as_ended', False)]
        with contextlib.ExitStack() as stack:
            stack.callback(bar.close)
            try:
                stack.enter_context(executor.serving(runner, own))
            except BrokenExecutor as exc:
                raise BrokenExecutor(f'{tree.where(self)}: {exc}', exc.traceback) from exc
            except TypeError as exc:
                raise TypeError(f'{tree.where(self)}: cannot ship the model to the workers of '
                                f'{executor!r} (sequential=False): {exc}') from exc
            outcomes = executor.run(feed)
            try:
                self._collect(outcomes, feed, record, ended, bar if bar.enabled else None,
                              pending)
            except BrokenExecutor as exc:
                raise BrokenExecutor(f'{tree.where(self)}: {exc}', exc.traceback) from exc
            finally:
                outcomes.close()
                self.current_iteration = feed.next_id

    def _collect(self, outcomes: Iterator[CaseOutcome], feed: CaseFeed, record: list[Any],
                 ended: list[Any], bar: Progress | None,
                 pending: dict[int, tuple[Case | None, Any]]) -> None:
        """Turn outcomes into cases: retry, keep, record in order (``record``) and as they
        end (``ended``), abort (the hot loop). ``pending``: cases waiting for an earlier one,
        at first those of the run being resumed, kept and recorded in their place (None: a
        case passed over, not recorded)."""
        where = tree.where(self)
        prefix = self.iteration_prefix()
        retry = self.error_policy == RETRY
        max_retries = self.max_retries
        results = self._results if self.keep_results else None
        inputs_of, retries, lost_retries = feed.inputs, feed.retries, feed.lost_retries
        abort: tuple[int, str | None] | None = None
        next_id = 0
        while next_id in pending:  # a resumed run whose first cases were done
            case, inner = pending.pop(next_id)
            next_id += 1
            if case is not None:
                self._emit(case, inner, results, record)
        for case_id, outputs, status, error, t_start, t_end, lost, inner, output in outcomes:
            if status != OK:
                counts = lost_retries if lost else retries
                tries = counts.get(case_id, 0)
                if retry and tries < max_retries:
                    counts[case_id] = tries + 1
                    feed.requeue(case_id)
                    continue
                outputs = self._failed_case_outputs(outputs, inputs_of[case_id])
            tried = (retries.pop(case_id, 0) if retries else 0) + \
                (lost_retries.pop(case_id, 0) if lost_retries else 0)
            case = Case(case_id, inputs_of.pop(case_id), outputs, status, error, where,
                        t_start, t_end, tried, f'{prefix}{case_id}')
            if output is not None:
                case.output = output
            if inner:  # recorded in a worker by drivers inside the case: before it, as here
                inner = inner_cases(inner, f'{prefix}{case_id}|')
            if bar is not None:
                bar.update()
            for rec in ended:  # a job store: each case as soon as it is final
                for sub in inner:
                    rec(sub)
                rec(case)
            if case_id != next_id:
                pending[case_id] = (case, inner)
            else:
                next_id += 1
                if results is not None:
                    results.append(case)
                for rec in record:
                    for sub in inner:
                        rec(sub)
                    rec(case)
            while pending and next_id in pending:
                done, inner = pending.pop(next_id)
                next_id += 1
                if done is not None:  # (None: passed over: resumed run, another runner's)
                    self._emit(done, inner, results, record)
            if status != OK and not retry and abort is None:
                abort = (case_id, error)
                feed.stop()  # no new case; those in flight finish and are recorded
        self._emit_pending(pending, results, record)
        if abort is not None:
            case_id, error = abort
            err = CaseError(f"{where}: case {case_id} failed (error_policy='ABORT'): "
                            f'{error_summary(error)}', traceback=error)
            raise err from RemoteTraceback(error)

    def _failed_case_outputs(self, outputs: dict[str, Any] | None,
                             inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Outputs of a failed case: NaN/None, but parameters the case set keep its values."""
        outputs = self._failed_outputs() if outputs is None else dict(outputs)
        for name in self._parameters:
            if name in inputs:
                outputs[name] = inputs[name]
        return outputs

    @classmethod
    def _emit_pending(cls, pending: dict[int, tuple[Case | None, Any]], results: list | None,
                      record: list) -> None:
        """Keep and record the cases still waiting for an earlier one (a run cut short)."""
        for case_id in sorted(pending):
            case, inner = pending.pop(case_id)
            if case is not None:  # (None: passed over)
                cls._emit(case, inner, results, record)

    @staticmethod
    def _emit(case: Case, inner: Any, results: list | None, record: list) -> None:
        """Keep ``case`` in ``results`` (unless None) and record it, after the cases drivers
        inside it recorded (``inner``). (The hot loop of `_collect` does the same inline for
        the case that comes in order.)"""
        if results is not None:
            results.append(case)
        for rec in record:
            for sub in inner:
                rec(sub)
            rec(case)

    # -- pickling -----------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for key in ('_plans', '_plan_keys', '_set_fast', '_set_slow', '_getters', '_exprs',
                    '_copies'):
            state.pop(key, None)
        cases = self.cases
        if cases is not None and iter(cases) is cases:  # a one-shot iterator does not pickle
            state['_declared'] = options = self.declared_options.copy()
            options['cases'] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._reset_plans()
