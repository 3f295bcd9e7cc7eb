"""The run-time side of case-running drivers: the `CaseFeed` an executor pulls cases from,
and the `ModelCaseRunner` an executor ships to its workers.

`CaseFeed` numbers the cases of a driver's source as they are read (lazily, one at a time),
checks each new set of keys against the model, keeps the inputs of the cases handed out until
their outcome is final, and hands retries out again before any new case. `ModelCaseRunner`
pickles as the whole model, once, and runs cases with the driver found by its path.
"""

from __future__ import annotations

import copy
import pickle
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import cloudpickle

from .. import tree
from ..cases import Case
from ..errors import describe
from ..execution.base import CaseOutcome
from .driver import running_drivers

__all__ = ['CaseFeed', 'ModelCaseRunner', 'RemoteTraceback', 'inner_cases']


class RemoteTraceback(Exception):
    """Carries a case's traceback text as the ``__cause__`` of a `CaseError`."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0].rstrip()}\n"""'


class CaseFeed:
    """The cases an executor pulls: retries first, then new cases, numbered and checked.

    Parameters
    ----------
    source : iterator of dict
        The driver's cases, read one at a time.
    driver : CaseIteratorDriver
        Checks each new set of keys (``driver._use_plan(inputs, case_id)``).
    total : int, optional
        How many cases ``source`` has, when known: the feed then knows how many remain
        (``operator.length_hint``), so executors share them out by guided self-scheduling.
    skip : collection of int, optional
        Ids of cases not to hand out (done in an earlier run that is resumed): their inputs
        are read from ``source`` and passed over.

    Attributes
    ----------
    next_id : int
        Id the next new case gets (= cases read so far).
    inputs : dict
        Case id -> inputs, for the cases handed out whose outcome is not final yet.
    retries : dict
        Case id -> retries so far after model errors, for the cases that failed at least once.
    lost_retries : dict
        Case id -> retries so far after their worker or server was lost (counted apart:
        an infrastructure loss says nothing about the model).
    """

    __slots__ = ('_source', '_driver', '_total', '_keys', '_retry', '_done', '_skip', '_skip_left',
                 'next_id', 'inputs', 'retries', 'lost_retries')

    def __init__(self, source: Iterator[Mapping[str, Any]], driver: Any,
                 total: int | None = None, skip: Any = ()):
        self._source = source
        self._total = total
        self._skip = frozenset(skip)
        self._skip_left = len(self._skip)
        self._driver = driver
        self._keys: frozenset | None = None
        self._retry: deque[int] = deque()
        self._done = False
        self.next_id = 0
        self.inputs: dict[int, Mapping[str, Any]] = {}  # cases handed out, not yet final
        self.retries: dict[int, int] = {}
        self.lost_retries: dict[int, int] = {}

    def __iter__(self) -> CaseFeed:
        return self

    def __length_hint__(self) -> int:
        """Cases left to hand out (retries included), or NotImplemented when unknown."""
        if self._done:
            return len(self._retry)
        if self._total is None:
            return NotImplemented
        return max(0, self._total - self.next_id - self._skip_left) + len(self._retry)

    def __next__(self) -> tuple[int, Mapping[str, Any]]:
        if self._retry:  # (empty once stopped)
            case_id = self._retry.popleft()
            return case_id, self.inputs[case_id]
        if self._done:
            raise StopIteration
        case_id = self.next_id
        try:
            inputs = next(self._source)
            if self._skip_left:
                while case_id in self._skip:  # done in the run being resumed
                    self._skip_left -= 1
                    case_id += 1
                    self.next_id = case_id
                    inputs = next(self._source)
        except StopIteration:
            self._done = True
            raise
        if type(inputs) is not dict:
            if not isinstance(inputs, Mapping):
                raise TypeError(f'{tree.where(self._driver)}: case {case_id}: expected a dict '
                                f'{{variable path: value}}, got {describe(inputs)}')
            inputs = dict(inputs)
        if inputs.keys() != self._keys:
            self._driver._use_plan(inputs, case_id)
            self._keys = frozenset(inputs)
        self.next_id = case_id + 1
        self.inputs[case_id] = inputs
        return case_id, inputs

    def stop(self) -> None:
        """Hand out nothing more (an ABORT)."""
        self._done = True
        self._retry.clear()

    def requeue(self, case_id: int) -> None:
        """Hand case ``case_id`` out again (a retry), before any new case."""
        self._retry.append(case_id)


def _unpicklable_variable(top: Any) -> str | None:
    """The path of the first variable of the model that cannot be pickled, if any (looked for
    only after pickling the model failed)."""
    queue = deque([top])
    while queue:
        node = queue.popleft()
        for name in tree.variables(node):
            try:
                cloudpickle.dumps(getattr(node, name, None))
            except Exception:
                return f'{tree.where(node)}.{name}'
        queue.extend(tree.children(node).values())
    return None


class ModelCaseRunner:
    """The case runner a driver hands to an executor: runs cases with that driver.

    In this process it calls the live driver. Pickled, it carries the whole model from its
    top (cloudpickled once, without the top's recorders and the driver's cases and results);
    unpickled in a worker it checks and compiles that copy and finds the driver by its path.
    When drivers inside the cases record (``record`` on, and the top has recorders), the
    worker's copy records into a `_Collector` instead, whose cases go home with each case's
    outcome (`CaseOutcome.records`) for the driver to record in order.

    Parameters
    ----------
    driver : CaseIteratorDriver
        The driver whose cases are run.
    """

    def __init__(self, driver: Any):
        top = driver
        while top.parent is not None:
            top = top.parent
        self._top, self._path, self._driver = top, driver.get_pathname(), driver
        self._evaluate = _evaluator_of(driver)
        self._collected: list[tuple] | None = None  # in a worker: what inner drivers recorded

    def __call__(self, case_id: int, inputs: Mapping[str, Any]) -> CaseOutcome:
        collected = self._collected
        if collected is None:
            return self._run(case_id, inputs)
        # inner drivers number their cases from this case down; a forked worker inherits the
        # stack of running drivers of the process that forked it: none is running here
        running = running_drivers()
        outer = running[:]
        running.clear()
        try:
            outcome = self._run(case_id, inputs)
        finally:
            running[:] = outer
        if collected:
            outcome = outcome._replace(records=tuple(collected))
            collected.clear()
        return outcome

    def _run(self, case_id: int, inputs: Mapping[str, Any]) -> CaseOutcome:
        """Run one case with the driver."""
        return self._evaluate(case_id, inputs)

    def __getstate__(self) -> dict[str, Any]:
        top, driver = self._top, self._driver
        # What the workers do not need (and may not pickle): the top's open recorders and the
        # driver's case source, generator and results; put back right after pickling.
        names = getattr(driver, '_not_shipped', ())
        saved = [getattr(driver, name) for name in names]
        recorders = getattr(top, 'recorders', None)
        collect = bool(recorders) and self._inner_recording()
        try:
            if recorders is not None:
                top.recorders = []
            for name in names:
                setattr(driver, name, None)
            try:
                model = cloudpickle.dumps(top)
            except Exception as exc:  # name what cannot travel, as saving a model does
                where = _unpicklable_variable(top)
                if where is None:
                    raise
                raise TypeError(f'{where}: cannot be pickled to ship the model to the workers: '
                                f'{type(exc).__name__}: {exc}') from exc
        finally:
            if recorders is not None:
                top.recorders = recorders
            for name, value in zip(names, saved):
                setattr(driver, name, value)
        return {'model': model, 'path': self._path, 'collect': collect}

    def _inner_recording(self) -> bool:
        """Whether a driver of the model other than this runner's records (``record`` on)."""
        queue = deque(tree.children(self._top).values())
        while queue:
            node = queue.popleft()
            if node is not self._driver and getattr(node, 'record', False) is True \
                    and callable(getattr(node, 'record_iteration', None)):
                return True
            if isinstance(getattr(node, '_children', None), dict):
                queue.extend(tree.children(node).values())
        return False

    def __setstate__(self, state: dict[str, Any]) -> None:
        top = pickle.loads(state['model'])
        if getattr(top, '_dirty', False):
            top.check_config()
        driver = top.get(state['path'])
        driver._prepare_run()
        self._top, self._path, self._driver = top, state['path'], driver
        self._evaluate = _evaluator_of(driver)
        self._collected = None
        if state.get('collect'):
            collector = _Collector()
            top.recorders = [collector]
            self._collected = collector.records

    def __repr__(self) -> str:
        return f'ModelCaseRunner({self._path!r})'


def _evaluator_of(driver: Any) -> Any:
    """What runs one case of ``driver`` (a `CaseIteratorDriver`: see its ``_evaluator``);
    None for a driver whose runner overrides `ModelCaseRunner._run`."""
    evaluator = getattr(driver, '_evaluator', None)
    return evaluator() if evaluator is not None else None


def inner_cases(records: tuple, prefix: str) -> list[Case]:
    """The cases of `CaseOutcome.records` (recorded in a worker by drivers inside one case),
    their iteration coordinates prefixed with that case's (``prefix``: ``'driver:7|'``)."""
    cases = [Case.from_record(record) for record in records]
    for case in cases:
        case.iteration = f'{prefix}{case.iteration}'
    return cases


class _Collector:
    """The recorder of a worker's copy of the model: keeps the cases that drivers inside a case
    record, as plain data copied at once (values may change later), for the case's outcome."""

    is_open = True  # never started nor closed: a driver in the worker only records to it

    def __init__(self) -> None:
        self.records: list[tuple] = []

    def record(self, case: Case) -> None:
        self.records.append(copy.deepcopy(case.as_record()))
