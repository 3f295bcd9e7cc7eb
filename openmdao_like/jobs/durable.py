"""Runs recorded in a job store as they go, and resumed after the process that ran them died.

::

    store = JobStore('sqlite:///runs.db')
    run_id = start_run(top, store, 'doe.py')   # saves the model with the run; records its cases
    top.run()                                  # each case's job lands in the store as it ends
    ...                                        # the process dies; later, elsewhere:
    top = load_run(store, run_id)              # the model saved with the run
    top.driver.resume(run_id, store)           # runs only the cases not COMPLETED

`JobRecorder` is how cases reach the store: a recorder (like the file recorders) for the cases
of one driver, which gets each case as soon as it ends rather than in case order
(``records_as_ended``). It writes a case at once unless it wrote less than `FLUSH_SECONDS`
ago; then it keeps it for the next write, which comes with a later case (`FLUSH_CASES` at most)
or when the run ends. Slow cases are thus in the store as soon as they end, and fast ones in
batches, so a run killed at any moment loses at most the cases of its last fraction of a second
(they only run again).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Mapping
from typing import Any

from ..errors import RunCancelledError, StoreError
from ..persistence import load, save
from ..resources.description import validate_resource_desc
from .states import State
from .store import JobStore

logger = logging.getLogger(__name__)

#: A `JobRecorder` writes at most every FLUSH_SECONDS (a case that ends sooner waits for the
#: next write)...
FLUSH_SECONDS = 0.1
#: ... unless it holds this many cases.
FLUSH_CASES = 500


class JobRecorder:
    """Records the cases of driver ``driver`` (a dotted path) as the jobs of run ``run_id`` in
    ``store``, each when it ends (COMPLETED or FAILED), in batches; other drivers' cases are
    not jobs and are left to the file recorders.
    """

    is_open = False
    #: Cases come as they end, not in case order (see `CaseIteratorDriver`).
    records_as_ended = True

    def __init__(self, store: JobStore, run_id: str, driver: str):
        self.store = store
        self.run_id = store.resolve(run_id)
        self.driver = driver
        self._rows: list[Case] = []
        self._written = 0.0  # time.monotonic() of the last write

    def startup(self, model: Any = None) -> None:
        """Mark the run RUNNING."""
        if self.store.run_state(self.run_id) != State.RUNNING.name:  # (a runner's: it is)
            self.store.update_run(self.run_id, state=State.RUNNING, started=time.time(),
                                  finished=None, error=None)
        self.is_open = True

    def record(self, case: Case) -> None:
        """Keep a case of the driver to write (soon); ignore the others."""
        if case.driver != self.driver:
            return
        rows = self._rows
        rows.append(case)
        if len(rows) >= FLUSH_CASES or time.monotonic() - self._written >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the cases kept so far; `RunCancelledError` when the run was cancelled
        meanwhile (``openmdao-like jobs cancel``), which stops the driver."""
        if self._rows:
            rows, self._rows = self._rows, []
            self.store.record_cases(self.run_id, rows)
            self._written = time.monotonic()
            if self.store.run_state(self.run_id) == State.CANCELLED.name:
                raise RunCancelledError(f'{self.store!r}: run {self.run_id} was cancelled '
                                        f'(openmdao-like jobs cancel): stopping')

    def close(self) -> None:
        """Write what is left. Once every job of the run has ended, the run is COMPLETED, or
        FAILED if a job is not COMPLETED; with jobs left only PAUSED (or WAITING), PAUSED;
        with jobs still READY or RUNNING (other runners'), it stays as it is. A cancelled run
        stays CANCELLED."""
        if not self.is_open:
            return
        self.is_open = False
        try:
            self.flush()
        except RunCancelledError:
            pass
        if self.store.run_state(self.run_id) == State.CANCELLED.name:
            return
        counts = self.store.counts(self.run_id)
        if counts['READY'] or counts['RUNNING'] or counts['SUBMITTED']:
            return
        held = counts['PAUSED'] + counts['WAITING']
        failed = counts['FAILED'] + counts['CANCELLED']
        if held:
            state, error = State.PAUSED, f'{held} case(s) paused'
        else:
            state, error = ((State.FAILED, f'{failed} case(s) failed') if failed else
                            (State.COMPLETED, None))
        self.store.update_run(self.run_id, state=state, finished=time.time(), error=error)

    def __repr__(self) -> str:
        return f'JobRecorder({self.store!r}, {self.run_id[:8]!r}, driver={self.driver!r})'


def start_run(top: Any, store: JobStore, name: str, driver: str = 'driver') -> str:
    """Make ``top`` a durable run of ``store`` run in this process: save it with a new run
    (named ``name``, RUNNING), and record the cases of its driver at path ``driver`` there as
    they end; the run's id."""
    run_id = _create(top, store, name, driver, State.RUNNING)
    top.recorders = [*getattr(top, 'recorders', ()), JobRecorder(store, run_id, driver)]
    return run_id


def submit_run(top: Any, store: JobStore, name: str, driver: str = 'driver',
               resources: Mapping[str, Any] | None = None) -> str:
    """Save ``top`` with a new run of ``store`` (named ``name``, WAITING) for runners
    (`openmdao_like.jobs.runner`) to run, its cases as READY jobs; the run's id. The model
    is not run here. ``resources``: the resource description of the servers its cases run
    on (checked here; default: where the model's driver runs them)."""
    if resources is not None:
        resources = validate_resource_desc(resources, f'{name}: resources')
    run_id = _create(top, store, name, driver, State.WAITING, resources)
    store.plan_run(run_id, enumerate(top.get(driver).iter_cases()))
    return run_id


def _create(top: Any, store: JobStore, name: str, driver: str, state: State,
            resources: Mapping[str, Any] | None = None) -> str:
    buffer = io.BytesIO()
    save(top, buffer, 'pickle')
    return store.create_run(name, model=buffer.getvalue(), model_format='pickle',
                            driver=driver, state=state, resources=resources)


def load_run(store: JobStore, run_id: str, on_version_mismatch: str = 'error') -> Any:
    """The model saved with run ``run_id`` (to `resume` it); `StoreError` naming the run when
    it cannot be loaded."""
    model, fmt = store.model(run_id)
    if model is None:
        raise StoreError(f'{store!r}: run {run_id} has no saved model to resume from')
    try:
        return load(io.BytesIO(model), on_version_mismatch)
    except Exception as exc:
        raise StoreError(f'{store!r}: run {run_id}: its model ({fmt}) does not load here: '
                         f'{type(exc).__name__}: {exc}') from exc
