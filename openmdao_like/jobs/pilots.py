"""The servers runners allocate for runs (batch pilot jobs among them): noted in the job store
as they come and go (`PilotLog`), and cancelled with their run (`cancel_run`), so that
``openmdao-like jobs cancel`` reaches the scheduler even when the run's runner is gone.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .store import JobStore, PilotInfo

logger = logging.getLogger(__name__)

#: Seconds `cancel_run` gives the runners to release a cancelled run's servers themselves.
CANCEL_GRACE = 10.0


class PilotLog:
    """A resource allocation manager that notes in the job store each server it allocates
    for a run (and its batch job) and when it is released."""

    def __init__(self, ram: Any, url: str, run_id: str, runner: str):
        self._ram, self._url, self._run_id, self._runner = ram, url, run_id, runner
        self._lock = threading.Lock()  # servers come and go in several threads
        self._store: JobStore | None = None
        self._pilots: dict[int, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ram, name)

    def allocate(self, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        server, info = self._ram.allocate(*args, **kwargs)
        with self._lock:
            if self._store is None:
                self._store = JobStore(self._url)
            self._pilots[id(server)] = self._store.add_pilot(
                self._run_id, self._runner, info.get('allocator'), info.get('job_id'),
                info.get('host'), info.get('workdir'))
        return server, info

    def release(self, server: Any) -> None:
        try:
            self._ram.release(server)
        finally:
            with self._lock:
                pilot = self._pilots.pop(id(server), None)
                if pilot is not None and self._store is not None:
                    self._store.end_pilot(pilot)
                    if not self._pilots:
                        self._store.close()
                        self._store = None


def cancel_run(store: JobStore, run_id: str, grace: float = CANCEL_GRACE,
               ram: Any = None) -> tuple[int, list[PilotInfo]]:
    """Cancel a run: its jobs that have not ended, then its servers. A runner running the run
    stops it within a second or two and releases its servers (cancelling their batch jobs);
    the batch jobs still noted live after ``grace`` seconds (their runner died, or is stuck)
    are cancelled here through their allocator (from ``ram``, default: the resources config
    file's), waiting until they left the scheduler's queue, and their directories removed. How
    many jobs were cancelled, and
    the batch jobs cancelled here."""
    run_id = store.resolve(run_id)
    cancelled = store.cancel(run_id)
    deadline = time.monotonic() + grace
    live = store.pilots(run_id, live=True)
    while live and time.monotonic() < deadline:
        time.sleep(0.2)
        live = store.pilots(run_id, live=True)
    reached = []
    for pilot in live:
        if pilot.scheduler_id:
            try:
                allocator = (ram or _default_ram()).get_allocator(pilot.allocator)
                status = allocator.finish_job(pilot.scheduler_id)
                _remove_workdir(allocator, pilot)
            except Exception as exc:  # noqa: BLE001 - reported; the others are still cancelled
                logger.warning('%r: run %s: cannot cancel batch job %s of allocator %r: %s',
                               store, run_id, pilot.scheduler_id, pilot.allocator, exc)
                continue
            logger.info('%r: run %s: batch job %s of %s: %s', store, run_id,
                        pilot.scheduler_id, pilot.allocator, status.state.name)
            reached.append(pilot)
        store.end_pilot(pilot.id)
    return cancelled, reached


def reap_pilots(store: JobStore, run_id: str, runner: str, ram: Any = None) -> list[PilotInfo]:
    """The batch jobs of a run noted live by runners other than ``runner`` that have left the
    scheduler (their runner died: a pilot stops when its client goes): their directories are
    removed and they are noted ended. Those returned."""
    reaped = []
    for pilot in store.pilots(run_id, live=True):
        if pilot.runner == runner or not pilot.scheduler_id:
            continue
        try:
            allocator = (ram or _default_ram()).get_allocator(pilot.allocator)
            if allocator.job_status(pilot.scheduler_id).active:
                continue
            _remove_workdir(allocator, pilot)
        except Exception as exc:  # noqa: BLE001 - reported; looked at again next time
            logger.warning('%r: run %s: cannot look at batch job %s of allocator %r: %s',
                           store, run_id, pilot.scheduler_id, pilot.allocator, exc)
            continue
        store.end_pilot(pilot.id)
        reaped.append(pilot)
    return reaped


def _default_ram() -> Any:
    from ..resources.manager import RAM
    return RAM


def _remove_workdir(allocator: Any, pilot: PilotInfo) -> None:
    """Remove the directory of a pilot's batch job (its script, output, objects)."""
    if pilot.workdir:
        allocator.channel.remove_tree(pilot.workdir)
