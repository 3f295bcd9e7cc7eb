"""The runner: a process that takes submitted runs from a job store and runs their cases.

::

    openmdao-like submit model.py --store sqlite:///runs.db     # a WAITING run, its cases READY
    openmdao-like runner start --store sqlite:///runs.db        # a daemon (`Runner.serve`)

A runner takes the oldest submitted run with work (`JobStore.claim_run`) and runs its cases
with the model saved with the run: it claims them from the store a batch at a time
(`openmdao_like.jobs.claims`), each under a lease it renews every `POLL` seconds while it runs
them, and records each in the store as it ends. Several runners on one PostgreSQL store thus
share a run, no case going to two of them. A runner killed with SIGKILL leaves its cases
RUNNING under a lease that expires: the next runner to look (the same one started again, or
another) claims them and runs them again. SIGTERM (``runner stop``) stops a runner cleanly:
its cases go back to READY for the next runner. A run cancelled meanwhile
(``openmdao-like jobs cancel``) is stopped within `POLL` seconds: its servers are released
(batch jobs cancelled) and its workers killed.

A run submitted with resources runs its cases on servers from the resource allocation manager
(`openmdao_like.distributed.RAMExecutor`: SSH hosts, SLURM or PBS pilot jobs, MPI), at most
``max_jobs`` at a time per allocator; each server is noted in the store (`JobStore.pilots`),
so that cancelling the run reaches the scheduler even when its runner is gone.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

from ..errors import RunCancelledError, StoreUnavailableError, error_summary
from .claims import ClaimFeed
from .durable import load_run
from .pilots import PilotLog, reap_pilots
from .states import State
from .store import JobStore

logger = logging.getLogger(__name__)

#: Seconds a runner's claim on a case lasts without renewal.
LEASE = 30.0
#: Seconds between two looks for work when there was none, and between two heartbeats.
POLL = 1.0
#: The signal the heartbeat thread sends the main thread when the run was cancelled.
CANCEL_SIGNAL = signal.SIGUSR1


class Stopping(BaseException):
    """Raised in the runner's main thread by SIGTERM: stop, handing the cases back."""


class Cancelled(BaseException):
    """Raised in the runner's main thread when its run was cancelled: stop the run now."""


class Runner:
    """Runs the cases of the submitted runs of the store at ``url`` until `stop`.

    Parameters
    ----------
    url : str
        The job store.
    name : str, optional
        How the runner signs its claims (default: ``host:pid``).
    lease, poll : float
        See `LEASE` and `POLL`.
    max_jobs : int or mapping, optional
        Most servers a run submitted with resources holds at once: one number for every
        allocator, or ``{allocator name: number}`` (``'*'``: the others). Default: as many as
        the allocator can provide.
    ram : ResourceAllocationManager, optional
        Where servers come from (default: the one of the resources config file).
    """

    def __init__(self, url: str, name: str | None = None, lease: float = LEASE,
                 poll: float = POLL, max_jobs: int | Mapping[str, int] | None = None,
                 ram: Any = None):
        self.store = JobStore(url)
        self.name = name or f'{socket.gethostname()}:{os.getpid()}'
        self.lease = lease
        self.poll = poll
        self.max_jobs = max_jobs
        self.ram = ram
        self._stop = threading.Event()
        self._handles_cancel = False  # whether serve() set the handler of CANCEL_SIGNAL
        self._interruptible = False  # whether a cancel may interrupt the main thread now

    def __repr__(self) -> str:
        return f'Runner({self.name!r}, {self.store!r})'

    def stop(self) -> None:
        """Take no new run (the one running goes on: see `serve` for SIGTERM)."""
        self._stop.set()

    def serve(self, once: bool = False) -> int:
        """Claim and run runs until `stop` (``once``: until no run has work); how many ran.
        In the main thread, SIGTERM stops it at once, the cases in progress handed back."""
        handled = threading.current_thread() is threading.main_thread()
        if handled:
            previous = (signal.signal(signal.SIGTERM, _raise_stopping),
                        signal.signal(CANCEL_SIGNAL, self._raise_cancelled))
            self._handles_cancel = True
        ran = 0
        try:
            while not self._stop.is_set():
                run_id = self.store.through_outages(
                    lambda: self.store.claim_run(self.name, self.lease), 'looking for work',
                    self._stop)
                if run_id is None:
                    if once:
                        break
                    self._stop.wait(self.poll)
                    continue
                self.run(run_id)
                ran += 1
        except Stopping:
            logger.info('%r: SIGTERM: stopping', self)
        except StoreUnavailableError:
            logger.info('%r: stopped while its store was unavailable', self)
        finally:
            if handled:
                self._handles_cancel = False
                signal.signal(signal.SIGTERM, previous[0] or signal.SIG_DFL)
                signal.signal(CANCEL_SIGNAL, previous[1] or signal.SIG_DFL)
            self.store.close()
        return ran

    def run(self, run_id: str) -> None:
        """Run the cases of a run this runner has claimed until none is left to claim."""
        logger.info('%r: running run %s', self, run_id)
        try:
            with _Heartbeat(self, run_id):
                self._run(run_id)
        except Stopping:
            self._reconnect()
            raise
        except (Cancelled, RunCancelledError):
            self._reconnect()
            logger.info('%r: run %s was cancelled', self, run_id)
        except StoreUnavailableError as exc:  # its cases go to whoever claims them next
            logger.warning('%r: run %s: the store failed: %s', self, run_id, exc)
        except Exception as exc:  # noqa: BLE001 - the run failed, not the runner
            logger.warning('%r: run %s failed: %s', self, run_id, exc)
            error = error_summary(traceback.format_exc())
            self.store.through_outages(lambda: self.store.update_run(
                run_id, state=State.FAILED, finished=time.time(), error=error),
                'recording the failure')
        finally:
            self._interruptible = False
            self.store.through_outages(lambda: self._let_go(run_id), 'letting the run go')
        logger.info('%r: run %s: %s', self, run_id, self.store.run_state(run_id))

    def _let_go(self, run_id: str) -> None:
        """Hand back the cases claimed but not run (an ABORT, a stop: READY again), and
        clean up after the pilots of a dead runner (they ended by themselves)."""
        self.store.release_run(run_id, self.name, hand_back=True)
        if self.store.pilots(run_id, live=True):
            reap_pilots(self.store, run_id, self.name, self.ram)

    def _reconnect(self) -> None:
        """A new connection to the store: a signal (SIGTERM, a cancel) may have interrupted
        the main thread in the middle of a statement on the old one."""
        try:
            self.store.reconnect()
        except StoreUnavailableError:
            pass  # the next use tries again (JobStore.through_outages)

    def _run(self, run_id: str) -> None:
        top = load_run(self.store, run_id)
        run = self.store.run(run_id)
        driver = top.get(run.driver or 'driver')
        if run.total is None:  # submitted before runs were planned at submission
            self.store.plan_run(run_id, enumerate(driver.iter_cases()))
        claims = functools.partial(  # cases run here unless on the servers of resources
            ClaimFeed, store=self.store, run_id=run_id, runner=self.name, lease=self.lease,
            host=None if run.resources else socket.gethostname())
        with self._executor(run) as executor:
            if executor is not None:
                driver.executor, driver.sequential = executor, False
            path = driver.get_pathname()
            done = self.store.completed_cases(run_id, path)  # (recorded in their place)
            self._interruptible = self._handles_cancel
            driver.run_claimed(claims, self.store.recorder(run_id, path), done)
            self._interruptible = False

    def _executor(self, run: Any) -> Any:
        """The `RAMExecutor` for a run submitted with resources (its servers noted in the
        store), else a null context: the model's driver runs its cases as it was saved to."""
        if not run.resources:
            return contextlib.nullcontext()
        from ..distributed import RAMExecutor
        from ..resources.manager import RAM
        ram = PilotLog(self.ram or RAM, self.store.url, run.id, self.name)
        return RAMExecutor(res_desc=run.resources, ram=ram,
                           max_servers=self._max_jobs(run.resources.get('allocator')))

    def _max_jobs(self, allocator: str | None) -> int | None:
        limit = self.max_jobs
        if isinstance(limit, Mapping):
            return limit.get(allocator or '*', limit.get('*'))
        return limit

    def _raise_cancelled(self, signum: int, frame: Any) -> None:
        if self._interruptible:
            self._interruptible = False
            raise Cancelled('the run was cancelled')


class _Heartbeat:
    """While a runner runs a run: renews its leases every `POLL` seconds (at most a third of
    the lease), and interrupts the runner's main thread when the run was cancelled."""

    def __init__(self, runner: Runner, run_id: str):
        self._runner, self._run_id = runner, run_id
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f'heartbeat-{run_id[:8]}',
                                        daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        runner = self._runner
        period = min(runner.poll, runner.lease / 3)
        store = JobStore(runner.store.url)  # a connection of its own: the run uses the other
        try:
            while not self._done.wait(period):
                state = store.through_outages(
                    lambda: store.heartbeat(self._run_id, runner.name, runner.lease),
                    'renewing leases', self._done)
                if state == State.CANCELLED.name:
                    logger.info('%r: run %s cancelled: stopping it', runner, self._run_id)
                    if runner._interruptible:
                        signal.pthread_kill(threading.main_thread().ident, CANCEL_SIGNAL)
                    return
        except Exception:  # noqa: BLE001 - the leases then expire: another runner goes on
            logger.exception('%r: heartbeat of run %s failed', runner, self._run_id)
        finally:
            store.close()


def _raise_stopping(signum: int, frame: Any) -> None:
    raise Stopping('SIGTERM')
