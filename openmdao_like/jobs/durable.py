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
(``records_as_ended``) and writes them in batches, each within `FLUSH_SECONDS` of its end. A
run killed at any moment thus loses at most the cases of its last fraction of a second (they
only run again).
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from ..cases import Case
from ..errors import RunCancelledError, StoreError, StoreUnavailableError
from ..persistence import load, save
from ..resources.description import validate_resource_desc
from .states import State
from .store import JobStore

logger = logging.getLogger(__name__)

#: A `JobRecorder` writes the cases that ended at most every FLUSH_SECONDS, in one transaction,
#: and no case waits longer...
FLUSH_SECONDS = 0.1
#: ... or as soon as this many wait.
FLUSH_CASES = 500


class JobRecorder:
    """Records the cases of driver ``driver`` (a dotted path) as the jobs of run ``run_id`` in
    ``store``, each when it ends (COMPLETED or FAILED); other drivers' cases are not jobs and
    are left to the file recorders.

    A case is written at once unless a write happened less than `FLUSH_SECONDS` ago; then it
    waits for the next, which comes with a later case (quick cases are thus written in
    batches, by the driver's thread) or, when none comes within `FLUSH_SECONDS` (the next case
    is slow), from a thread of the recorder on a connection of its own. So every case is in
    the store a fraction of a second after it ended. While the store is unavailable
    (PostgreSQL restarting, the network), the cases are kept and written again
    (`JobStore.through_outages`).
    """

    is_open = False
    #: Cases come as they end, not in case order (see `CaseIteratorDriver`).
    records_as_ended = True

    def __init__(self, store: JobStore, run_id: str, driver: str):
        self.store = store
        self.run_id = store.resolve(run_id)
        self.driver = driver
        self._rows: list[Case] = []
        self._lock = threading.Lock()  # guards _rows: the driver adds, both threads take
        self._written = 0.0  # time.monotonic() of the last write
        self._closing = threading.Event()
        self._cancelled = False  # a write saw the run CANCELLED
        self._error: BaseException | None = None  # what stopped the recorder's thread
        self._writer: threading.Thread | None = None

    def startup(self, model: Any = None) -> None:
        """Mark the run RUNNING; start the thread that writes the cases left waiting."""
        if self.store.run_state(self.run_id) != State.RUNNING.name:  # (a runner's: it is)
            self.store.update_run(self.run_id, state=State.RUNNING, started=time.time(),
                                  finished=None, error=None)
        self._closing.clear()
        self._writer = threading.Thread(target=self._write_late, args=(JobStore(self.store.url),),
                                        daemon=True, name=f'job-recorder-{self.run_id[:8]}')
        self._writer.start()
        self.is_open = True

    def record(self, case: Case) -> None:
        """Keep a case of the driver to write (soon); ignore the others. `RunCancelledError`
        once the run was cancelled (``openmdao-like jobs cancel``): it stops the driver."""
        if case.driver != self.driver:
            return
        with self._lock:
            rows = self._rows
            rows.append(case)
        if len(rows) >= FLUSH_CASES or time.monotonic() - self._written >= FLUSH_SECONDS:
            self.flush()
        if self._cancelled or self._error is not None:
            self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
        raise RunCancelledError(f'{self.store!r}: run {self.run_id} was cancelled '
                                f'(openmdao-like jobs cancel): stopping')

    def _take(self) -> list[Case]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    def _write(self, store: JobStore, rows: list[Case]) -> None:
        """Write ``rows`` through ``store`` (through outages), or keep them when it fails."""
        try:
            store.through_outages(lambda: store.record_cases(self.run_id, rows),
                                  'recording cases', self._closing)
            self._written = time.monotonic()
            if store.run_state(self.run_id) == State.CANCELLED.name:
                self._cancelled = True
        except BaseException:
            with self._lock:  # kept, before those handed over since
                self._rows[:0] = rows
            raise

    def flush(self) -> None:
        """Write the cases kept so far, now, in this thread."""
        rows = self._take()
        if rows:
            self._write(self.store, rows)

    def _write_late(self, store: JobStore) -> None:
        """The recorder's thread: write the cases that waited FLUSH_SECONDS for the next."""
        try:
            while not self._closing.wait(FLUSH_SECONDS):
                if self._rows and time.monotonic() - self._written >= FLUSH_SECONDS:
                    rows = self._take()
                    if rows:
                        self._write(store, rows)
        except StoreUnavailableError:
            pass  # closing while the store is unavailable: close() tries again
        except BaseException as exc:  # noqa: BLE001 - raised in the driver's thread
            self._error = exc
        finally:
            store.close()

    def close(self) -> None:
        """Write what is left. Once every job of the run has ended, the run is COMPLETED, or
        FAILED if a job is not COMPLETED; with jobs left only PAUSED (or WAITING), PAUSED;
        with jobs still READY or RUNNING (other runners'), it stays as it is. A cancelled run
        stays CANCELLED."""
        if not self.is_open:
            return
        self.is_open = False
        self._closing.set()
        self._writer.join()
        self._closing.clear()  # the last write below goes through outages
        if self._error is not None:
            raise self._error
        self.flush()
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
