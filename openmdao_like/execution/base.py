"""The `Executor` interface that case-running drivers use, and the in-process `SerialExecutor`.

An executor follows ``concurrent.futures`` (and mpi4py.futures): it is started once with a
picklable *case runner* — a callable ``runner(case_id, inputs) -> CaseOutcome`` that holds the
whole model — which it ships **once** to each of its workers. It then runs many cases, sending
only each case's inputs out and getting only its outputs, status and error back::

    executor = LocalExecutor(n_workers=2)
    executor.start(runner)                      # the model travels once per worker
    try:
        for outcome in executor.run(feed):          # feed yields (case_id, inputs) lazily
            ...                                     # outcomes arrive as cases complete
    finally:
        executor.shutdown()                     # idempotent; stops every worker it started

    ┌────────┐  start(runner) ┌──────────┐ runner, once ┌──────────┐
    │ driver │ ─────────────> │ executor │ ───────────> │ worker i │
    │        │ (id, inputs).. │          │ chunks of    │ runner() │
    │        │ <───────────── │          │ <─────────── │          │
    └────────┘  CaseOutcome   └──────────┘ outcomes     └──────────┘

`run` pulls from ``cases`` only when it has room (bounded in-flight work) and may call
``next()`` again after a ``StopIteration``: it finishes only when the feed is empty while no
case is in flight, so a driver may put a failed case back into its feed (a retry) after seeing
its outcome. A model exception is the runner's business (it returns a failed outcome with the
traceback text); a lost worker is the executor's: the case it was running comes back failed
with ``lost=True`` and an error saying so, and the executor carries on with a new worker. An
executor that cannot go on raises `BrokenExecutor`.

Every executor but `SerialExecutor` is the one dispatch loop of `execution.loop` plus a worker
pool (`execution.pools`); later layers add pools, not loops.
"""

from __future__ import annotations

import abc
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Callable, NamedTuple

from ..cases import FAILED, OK
from ..errors import OpenMDAOLikeError

logger = logging.getLogger(__name__)

__all__ = ['CaseOutcome', 'CaseRunner', 'Executor', 'SerialExecutor', 'BrokenExecutor',
           'lost_outcome', 'OK', 'FAILED']


class CaseOutcome(NamedTuple):
    """What running one case gives back: only outputs, status and error travel home.

    Parameters
    ----------
    id : int
        The case id the driver gave with the inputs.
    outputs : dict or None
        Output path or expression -> value; None when unknown (e.g. the worker was lost).
    status : str
        ``'ok'`` or ``'failed'``.
    error : str or None
        Traceback text of a failed case.
    t_start, t_end : float
        ``time.time()`` around the run (0.0 when not measured).
    lost : bool
        True when the case failed because its worker was lost (infrastructure, not the model).
    records : tuple
        The cases that drivers inside this case recorded where it ran (a worker, whose copy of
        the model has no recorders), as `Case.as_record` tuples, for the case's driver to
        record before the case itself; () in the usual case.
    output : tuple of str, optional
        The ends of what the case printed, ``(stdout, stderr)``, when its driver captures
        them (``capture_output``: a runner's runs, for ``openmdao-like jobs logs``).
    """

    id: int
    outputs: dict[str, Any] | None
    status: str = OK
    error: str | None = None
    t_start: float = 0.0
    t_end: float = 0.0
    lost: bool = False
    records: tuple = ()
    output: tuple[str, str] | None = None


#: A case runner: ``runner(case_id, inputs) -> CaseOutcome``; picklable when shipped.
CaseRunner = Callable[[int, dict[str, Any]], CaseOutcome]


def lost_outcome(case_id: int, why: str, t_start: float = 0.0, t_end: float = 0.0
                 ) -> CaseOutcome:
    """The outcome of a case whose worker was lost: failed, outputs unknown, ``lost=True``."""
    error = (f'WorkerLostError: case {case_id} did not complete: {why}. This is an '
             f'infrastructure loss, not an exception raised by the model; the case outputs '
             f'are unknown.\n')
    return CaseOutcome(case_id, None, FAILED, error, t_start, t_end, True)


class BrokenExecutor(OpenMDAOLikeError, concurrent.futures.BrokenExecutor):
    """The executor cannot run cases any more (e.g. its workers cannot load the case runner).

    Parameters
    ----------
    msg : str
        Why, naming the executor.
    traceback : str, optional
        Formatted traceback from the worker, when there is one.
    """

    def __init__(self, msg: str, traceback: str | None = None):
        super().__init__(msg)
        self.traceback = traceback


class Executor(abc.ABC):
    """Runs cases of a model with a case runner shipped once to each worker.

    The life cycle is ``start(runner)``, any number of ``run(feed)`` and ``load(runner)``
    (another runner on the same workers: a driver's next run, with the model as it is then),
    ``shutdown()``; after a shutdown the executor may be started again. Also a context manager: leaving the block shuts the
    executor down, cancelling in-flight work if the block raised.

    Subclasses implement `_start`, `_run` and `_shutdown`; this class keeps the state (one lock
    guards it, as in mpi4py.futures) and makes `shutdown` idempotent.

    Attributes
    ----------
    n_workers : int
        How many cases may run at the same time.
    """

    n_workers: int = 1

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = False
        self._broken: BrokenExecutor | None = None

    @property
    def running(self) -> bool:
        """True between `start` and `shutdown`."""
        return self._started

    def start(self, runner: CaseRunner) -> None:
        """Ship ``runner`` to the workers (once each) and get them ready for `run`."""
        self._check_runner(runner, 'start')
        with self._lock:
            if self._started:
                raise RuntimeError(f'{self!r}: already started; call shutdown() before '
                                   f'starting it with another runner, or load() to give its '
                                   f'workers another runner')
            self._broken = None
            self._start(runner)
            self._started = True

    def load(self, runner: CaseRunner) -> None:
        """Give the workers of a started executor another runner (a driver's next run): the
        workers, servers or jobs already there are kept, only the runner travels."""
        self._check_runner(runner, 'load')
        with self._lock:
            if not self._started:
                raise RuntimeError(f'{self!r}: not started; call start(runner) before load()')
            if self._broken is not None:
                raise self._broken
            self._load(runner)

    @contextlib.contextmanager
    def serving(self, runner: CaseRunner, own: bool) -> Iterator[Executor]:
        """The executor ready with ``runner`` for one run of a driver: started, or, when it is
        already running (warm), given the runner. Afterwards an executor the driver made
        (``own``) is shut down; a user's stays warm for the next run, unless the run was
        interrupted (Ctrl-C) or the executor broke. Entering raises what `start`/`load`
        raise (a broken executor is shut down first)."""
        try:
            if self.running:
                self.load(runner)
            else:
                self.start(runner)
        except BrokenExecutor:
            self.shutdown(wait=True, cancel_futures=True)
            raise
        ended = 'interrupted'
        try:
            yield self
            ended = 'ok'
        except BrokenExecutor:
            ended = 'broken'
            raise
        except Exception:
            ended = 'failed'
            raise
        finally:
            if own or ended in ('interrupted', 'broken'):
                self.shutdown(wait=True, cancel_futures=ended != 'ok')

    def _check_runner(self, runner: Any, method: str) -> None:
        """Refuse a runner that is not callable, naming ``method``."""
        if not callable(runner):
            raise TypeError(f'{self!r}: {method}() expected a callable case runner '
                            f'runner(case_id, inputs) -> CaseOutcome, got {runner!r}')

    def run(self, cases: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[CaseOutcome]:
        """Run ``(case_id, inputs)`` pairs pulled lazily from ``cases``; yield outcomes as they
        complete (not necessarily in order)."""
        with self._lock:
            if self._broken is not None:
                raise self._broken
            if not self._started:
                raise RuntimeError(f'{self!r}: not started; call start(runner) before '
                                   f'run_cases()')
        return self._run(cases)

    #: The name of `run` in issue 2's interface.
    run_cases = run

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop every worker; with ``cancel_futures`` abandon in-flight cases at once.

        Calling it again, or before `start`, does nothing. With ``wait`` it returns once the
        workers are gone.
        """
        with self._lock:
            if not self._started:
                return
            self._started = False
        self._shutdown(wait, cancel_futures)

    def _set_broken(self, exc: BrokenExecutor) -> BrokenExecutor:
        """Remember that the executor is broken; return ``exc`` for the caller to raise."""
        with self._lock:
            self._broken = exc
        logger.error('%s', exc)
        return exc

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.shutdown(wait=True, cancel_futures=exc_type is not None)

    def __getstate__(self) -> dict[str, Any]:
        """Only the configuration pickles (a model holding an executor can be shipped)."""
        return {k: v for k, v in self.__dict__.items() if k in self._config_attrs()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        Executor.__init__(self)
        self.__dict__.update(state)

    def _config_attrs(self) -> tuple[str, ...]:
        """Names of the attributes that make up the configuration."""
        return ('n_workers',)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(n_workers={self.n_workers})'

    @abc.abstractmethod
    def _start(self, runner: CaseRunner) -> None:
        """Ship the runner and start the workers (called under the lock)."""

    @abc.abstractmethod
    def _load(self, runner: CaseRunner) -> None:
        """Give the running workers another runner (called under the lock)."""

    @abc.abstractmethod
    def _run(self, cases: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[CaseOutcome]:
        """The generator behind `run_cases`."""

    @abc.abstractmethod
    def _shutdown(self, wait: bool, cancel_futures: bool) -> None:
        """Stop the workers (called once per start, outside the lock)."""


class SerialExecutor(Executor):
    """Runs each case in this process, one after the other, with the runner as given.

    Nothing is pickled: the runner works on the live model. Used by case-running drivers with
    ``sequential=True``; also handy to debug a model that fails in a parallel run.
    """

    def __init__(self) -> None:
        super().__init__()
        self._runner: CaseRunner | None = None

    def _start(self, runner: CaseRunner) -> None:
        """Keep the runner."""
        self._runner = runner

    def _load(self, runner: CaseRunner) -> None:
        """Keep the new runner."""
        self._runner = runner

    def _run(self, cases: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[CaseOutcome]:
        """Run each case as it is pulled; ask the feed again after each outcome."""
        runner = self._runner
        pull = iter(cases).__next__
        while True:
            try:
                case_id, inputs = pull()
            except StopIteration:
                return
            yield runner(case_id, inputs)

    def _shutdown(self, wait: bool, cancel_futures: bool) -> None:
        """Drop the runner."""
        self._runner = None

    def _config_attrs(self) -> tuple[str, ...]:
        return ()
