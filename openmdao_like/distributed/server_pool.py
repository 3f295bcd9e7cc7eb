"""`ServerPool`: workers that are servers allocated from the ResourceAllocationManager.

Each allocated server (this machine, an SSH host, a SLURM or PBS pilot job, MPI ranks) runs the
case runner in an object server of its own (`FactoryProxy.start_runner`); one client thread per
server makes the ``run_cases`` calls, each carrying a chunk, and reports the answer as an event.
The allocation policy: the first server in `start` (so a description nobody can serve fails at
once), the others in the background while the first cases already run (only if available now),
a replacement after each loss (waiting for one when no server is left), and, at each new run
of a warm pool, another try for the servers that were not available before. A lost connection
(the server's process killed, its host gone, its batch job cancelled, or a server that stopped
answering) is a ``lost`` event carrying the allocator's account of the loss. A warm pool keeps
its servers across runs: `load` gives each of them the next runner (in place, or under MPI in a
new object server), without allocating anything.
"""

from __future__ import annotations

import logging
import queue
import threading
import weakref
from typing import Any, Mapping

from ..errors import AllocationError, RemoteError
from ..execution.base import BrokenExecutor, CaseOutcome
from ..execution.pools import WorkerPool, drain
from ..remote import codec

logger = logging.getLogger(__name__)

__all__ = ['ServerPool']

#: Seconds a call may take without ``case_timeout`` (one day, as remote calls).
NO_TIMEOUT = 24 * 3600.0
#: Seconds before asking again for a server that was not available (then given up until the
#: next run of a warm pool).
RETRY_DELAYS = (2.0, 5.0, 10.0)
#: Seconds `close` waits for servers still being allocated (each is released as soon as its
#: allocation completes, even later).
ALLOCATION_GRACE = 60.0


class _Slot:
    """One allocated server running the case runner, and the client thread that feeds it."""

    def __init__(self, server: Any, info: dict[str, Any], obj_id: int, conn: Any):
        self.server, self.info, self.obj_id, self.conn = server, info, obj_id, conn
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.why: str | None = None
        self.dropped = False
        self.name = f'{info.get("name", "server")} ({info.get("host")}:{info.get("port")})'

    def __repr__(self) -> str:
        return f'<server {self.name}>'


class ServerPool(WorkerPool):
    """Servers from a ResourceAllocationManager, each running the case runner.

    Parameters
    ----------
    ram : ResourceAllocationManager
        Where servers come from.
    res_desc : dict
        The resource description each server must fit.
    max_servers : int or None
        Most servers (None: as many as ``ram`` could provide for ``res_desc``).
    owner : str
        How messages name the executor.
    case_timeout : float or None
        The executor's ``case_timeout``: a call of n cases is abandoned after n times that
        (plus a margin), should the loop's own check not have stopped it before.
    """

    def __init__(self, ram: Any, res_desc: Mapping[str, Any], max_servers: int | None,
                 owner: str, case_timeout: float | None = None):
        self._ram, self._res_desc, self._max = ram, dict(res_desc), max_servers
        self._owner, self._case_timeout = owner, case_timeout
        self._slots: list[_Slot] = []
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._payload = b''
        self._pending = 0
        self._wanted = 1
        self._allocating: list[threading.Thread] = []
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _release_all, ram, self._slots)

    @property
    def size(self) -> int:
        with self._lock:
            return len(self._slots) + self._pending

    @property
    def live(self) -> int:
        """How many servers run the runner now (those being allocated not counted)."""
        with self._lock:
            return len(self._slots)

    def _fill(self) -> None:
        """Ask, in the background, for the servers still missing (those that were not
        available when first asked for, or lost without replacement)."""
        for _ in range(self._wanted - self.size):
            self._allocate_later(wait=False)

    def describe(self, worker: _Slot) -> str:
        return f'server {worker.name}'

    # -- allocation policy --------------------------------------------------------------------
    def start(self, payload: bytes) -> list[_Slot]:
        self._payload = payload
        self._wanted = self._max or max(1, self._ram.max_servers(self._res_desc))
        first = self._open_slot(wait=True)
        self._fill()
        logger.info('%s: first server ready, %d more being allocated', self._owner,
                    self._wanted - 1)
        return [first]

    def _open_slot(self, wait: bool) -> _Slot:
        """Allocate a server and start the case runner on it (raises on failure)."""
        server, info = self._ram.allocate(self._res_desc, timeout=None if wait else 0)
        try:
            obj_id, conn = self._start_runner(server, info)
        except BaseException:
            _release(self._ram, server)
            raise
        slot = _Slot(server, info, obj_id, conn)
        with self._lock:
            self._slots.append(slot)
        threading.Thread(target=self._serve, args=(slot,), daemon=True,
                         name=f'ram-{slot.name}').start()
        return slot

    def _start_runner(self, server: Any, info: dict[str, Any]) -> tuple[int, Any]:
        """A new object server on ``server`` running the current runner."""
        try:
            return server.start_runner(self._payload)
        except Exception as exc:
            raise self._not_loaded(info.get('name'), exc) from exc

    def _not_loaded(self, name: Any, exc: Exception) -> Exception:
        """What a failure to load the runner on server ``name`` raises: `BrokenExecutor` when
        the server ran and refused the runner (its traceback attached), else ``exc`` (the
        server could not be reached or allocated)."""
        remote_tb = getattr(exc, 'remote_traceback', None)
        if isinstance(exc, (AllocationError, BrokenExecutor)) or \
                (isinstance(exc, RemoteError) and not remote_tb):
            return exc
        return BrokenExecutor(f'{self._owner}: the server {name} could not load the case '
                              f'runner: {type(exc).__name__}: {exc}', remote_tb)

    def _open_slot_retrying(self, wait: bool) -> _Slot:
        """`_open_slot`; a server not available now (the allocator full, or a start that
        failed, e.g. many servers starting at once on a busy host) is asked for again after
        `RETRY_DELAYS`, and waited for when no other server is left."""
        delays = iter(RETRY_DELAYS)
        while True:
            try:
                return self._open_slot(wait)
            except (AllocationError, RemoteError, OSError):
                with self._lock:
                    alone = not self._slots
                if wait or self._closing.is_set():
                    raise
                if alone:
                    return self._open_slot(wait=True)  # no server left: wait for one
                delay = next(delays, None)
                if delay is None or self._closing.wait(delay):
                    raise

    def _allocate_later(self, wait: bool) -> None:
        """Allocate one more server in the background (see `_open_slot_retrying`); report it
        as an event."""
        with self._lock:
            self._pending += 1

        def allocate() -> None:
            try:
                slot = self._open_slot_retrying(wait)
            except BaseException as exc:
                logger.debug('%s: no further server: %s', self._owner, exc)
                with self._lock:
                    self._pending -= 1
                    last = not self._slots and not self._pending
                # only a failure that leaves no server at all may break the run
                self._events.put((None, 'unavailable', exc if last else None))
                return
            with self._lock:
                self._pending -= 1
            if self._closing.is_set():  # closed meanwhile: give it back at once
                self._drop(slot)
                return
            self._events.put((slot, 'ready', None))

        thread = threading.Thread(target=allocate, daemon=True, name='ram-allocate')
        with self._lock:
            self._allocating = [t for t in self._allocating if t.is_alive()] + [thread]
        thread.start()

    def load(self, payload: bytes) -> list[_Slot]:
        """Give every server the new runner (in parallel): in place where the server can,
        else in a new object server that replaces the previous one; nothing is allocated."""
        self._payload = payload
        with self._lock:
            slots = list(self._slots)
        errors: list[BaseException] = []

        def reload(slot: _Slot) -> None:
            try:
                self._reload(slot)
            except BaseException as exc:
                errors.append(exc)
                self.kill(slot, f'could not load the new case runner: {exc}')

        threads = [threading.Thread(target=reload, args=(slot,), daemon=True)
                   for slot in slots]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        broken = [exc for exc in errors if isinstance(exc, BrokenExecutor)]
        if broken:
            raise broken[0]
        self._fill()  # servers not available before may be now
        return [slot for slot in slots if slot.why is None]

    def _reload(self, slot: _Slot) -> None:
        """The current runner on ``slot``'s server."""
        try:
            if slot.conn.call('set_runner', self._payload):
                return
        except Exception as exc:
            raise self._not_loaded(slot.info.get('name'), exc) from exc
        obj_id, conn = self._start_runner(slot.server, slot.info)  # MPI: every rank anew
        old_id, old_conn = slot.obj_id, slot.conn
        slot.obj_id, slot.conn = obj_id, conn
        old_conn.close()
        try:
            slot.server.release_object(old_id)
        except (RemoteError, OSError) as exc:
            logger.warning('%s: ending the previous runner failed: %s', slot.name, exc)

    def replace(self, worker: _Slot) -> list[_Slot]:
        self._allocate_later(wait=False)
        return []

    # -- running --------------------------------------------------------------------------------
    def _serve(self, slot: _Slot) -> None:
        """The client thread of one server: run each chunk put in its inbox."""
        while True:
            message = slot.inbox.get()
            if message is None:
                return
            chunk, timeout = message
            try:
                answer = slot.conn.call('run_cases', codec.pack(chunk), timeout=timeout)
                outcomes = [CaseOutcome(*o) for o in codec.unpack(answer)]
            except BaseException as exc:
                self._events.put((slot, 'lost', self._account(slot, exc)))
                return
            self._events.put((slot, 'done', outcomes))

    def send(self, worker: _Slot, chunk: list[tuple[int, Any]]) -> None:
        limit = self._case_timeout
        worker.inbox.put((chunk, NO_TIMEOUT if limit is None else limit * len(chunk) + 10.0))

    def poll(self, timeout: float) -> list[tuple[Any, str, Any]]:
        return drain(self._events, timeout)

    def _account(self, slot: _Slot, exc: BaseException) -> str:
        """Forget a lost server (releasing what is left of it); the account of the loss."""
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)
        status = None
        try:
            status = self._ram.status(slot.server)
        except Exception:
            logger.debug('status of %s unknown', slot.name, exc_info=True)
        why = slot.why or f'was lost: {exc}'
        if status:
            why += f'\n{status}'
        threading.Thread(target=self._drop, args=(slot,), daemon=True).start()
        return why

    def kill(self, worker: _Slot, why: str) -> None:
        """Close the server's connection (its client thread reports the loss) and release it."""
        worker.why = why
        worker.conn.close(goodbye=False)  # no farewell to a server that may not answer

    # -- shutting down -----------------------------------------------------------------------
    def _drop(self, slot: _Slot) -> None:
        """Stop the client thread and give the server back to the RAM (once)."""
        with self._lock:
            if slot.dropped:
                return
            slot.dropped = True
            if slot in self._slots:
                self._slots.remove(slot)
        slot.inbox.put(None)
        slot.conn.close()
        _release(self._ram, slot.server)

    def close(self, cancel: bool = False) -> None:
        """Release every server, in parallel (each release may wait for a process to end)."""
        self._closing.set()
        with self._lock:
            slots = list(self._slots)
        threads = [threading.Thread(target=self._drop, args=(slot,), daemon=True)
                   for slot in slots]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(ALLOCATION_GRACE)
        deadline = ALLOCATION_GRACE
        for thread in list(self._allocating):  # each gives its server back once it has it
            thread.join(deadline)
            deadline = 0.1
        self._finalizer.detach()


def _release(ram: Any, server: Any) -> None:
    """Give ``server`` back, logging (not raising) a failure: it is being let go anyway."""
    try:
        ram.release(server)
    except (AllocationError, RemoteError, OSError, ValueError) as exc:
        logger.warning('releasing %r failed: %s', server, exc)


def _release_all(ram: Any, slots: list[_Slot]) -> None:
    """At exit or collection of a pool never closed: give back its servers (those its RAM has
    not taken back already, shutting down first)."""
    for slot in list(slots):
        slot.conn.close(goodbye=False)
        try:
            ram.release(slot.server)
        except (AllocationError, RemoteError, OSError, ValueError) as exc:
            logger.debug('releasing %r at collection: %s', slot.server, exc)
