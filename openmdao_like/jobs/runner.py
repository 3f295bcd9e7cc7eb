"""The runner: a process that takes submitted runs from a job store and runs them.

::

    openmdao-like submit model.py --store sqlite:///runs.db     # a WAITING run
    openmdao-like runner start --store sqlite:///runs.db        # a daemon (`Runner.serve`)

A runner claims the oldest WAITING run (`JobStore.claim_run`), holds it with a lease it renews
every third of `LEASE` seconds, and runs it as ``run --resume`` does: the model saved with the
run, only its cases that are not COMPLETED, each recorded in the store as it ends. A runner
killed with SIGKILL leaves its run RUNNING with a lease that expires: the next runner to look
(the same one started again, or another on the same PostgreSQL store) claims it and finishes
it, running again only the cases that were in flight. SIGTERM (``runner stop``) stops a runner
cleanly: its run goes back to WAITING for the next runner.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback
from typing import Any

from ..errors import RunCancelledError, error_summary
from .durable import load_run
from .states import State
from .store import JobStore

logger = logging.getLogger(__name__)

#: Seconds a runner holds a run without renewing its lease.
LEASE = 30.0
#: Seconds between two looks for work when there was none.
POLL = 1.0


class Stopping(BaseException):
    """Raised in the runner's main thread by SIGTERM: stop, handing the run back."""


class Runner:
    """Runs the submitted runs of the store at ``url``, one at a time, until `stop`.

    Parameters
    ----------
    url : str
        The job store.
    name : str, optional
        How the runner signs its claims (default: ``host:pid``).
    lease, poll : float
        See `LEASE` and `POLL`.
    """

    def __init__(self, url: str, name: str | None = None, lease: float = LEASE,
                 poll: float = POLL):
        self.store = JobStore(url)
        self.name = name or f'{socket.gethostname()}:{os.getpid()}'
        self.lease = lease
        self.poll = poll
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return f'Runner({self.name!r}, {self.store!r})'

    def stop(self) -> None:
        """Take no new run (the one running goes on: see `serve` for SIGTERM)."""
        self._stop.set()

    def serve(self, once: bool = False) -> int:
        """Claim and run runs until `stop` (``once``: until no run is waiting); how many ran.
        In the main thread, SIGTERM stops it at once, the run in progress handed back."""
        handled = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_stopping) if handled else None
        ran = 0
        try:
            while not self._stop.is_set():
                run_id = self.store.claim_run(self.name, self.lease)
                if run_id is None:
                    if once:
                        break
                    self._stop.wait(self.poll)
                    continue
                self.run(run_id)
                ran += 1
        except Stopping:
            logger.info('%r: SIGTERM: stopping', self)
        finally:
            if handled:
                signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)
            self.store.close()
        return ran

    def run(self, run_id: str) -> None:
        """Run a run this runner has claimed, renewing its lease meanwhile."""
        logger.info('%r: running run %s', self, run_id)
        renewing = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(run_id, renewing),
                                   name=f'lease-{run_id[:8]}', daemon=True)
        renewer.start()
        try:
            top = load_run(self.store, run_id)
            run = self.store.run(run_id)
            top.get(run.driver or 'driver').resume(run_id, self.store)
        except Stopping:
            self.store.release_run(run_id, self.name, State.WAITING)
            raise
        except RunCancelledError:
            logger.info('%r: run %s was cancelled', self, run_id)
        except Exception as exc:  # noqa: BLE001 - the run failed, not the runner
            logger.warning('%r: run %s failed: %s', self, run_id, exc)
            self.store.update_run(run_id, state=State.FAILED, finished=time.time(),
                                  error=error_summary(traceback.format_exc()))
        finally:
            renewing.set()
            renewer.join()
        self.store.release_run(run_id, self.name)
        logger.info('%r: run %s ended: %s', self, run_id, self.store.run_state(run_id))

    def _renew(self, run_id: str, done: threading.Event) -> None:
        """Renew the lease on ``run_id`` every third of it until ``done``."""
        store = JobStore(self.store.url)  # a connection of its own: the run uses the other
        try:
            while not done.wait(self.lease / 3):
                if not store.renew_lease(run_id, self.name, self.lease):
                    logger.warning('%r: lost the lease on run %s', self, run_id)
                    return
        finally:
            store.close()


def _raise_stopping(signum: int, frame: Any) -> None:
    raise Stopping('SIGTERM')
