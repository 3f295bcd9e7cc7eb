"""`RAMExecutor`: cases run on servers allocated from the ResourceAllocationManager.

Each allocated server (this machine, an SSH host, a SLURM or PBS pilot job, MPI ranks) gets the
model once, as a cloudpickled case runner in its own object server
(`FactoryProxy.start_runner`); from then on each call carries a chunk of ``(case_id, inputs)``
pairs and brings back their outcomes. One client thread per server waits on its calls; the
generator in `_run` hands chunks to whichever server is idle (pull-based load balancing) and
grows chunks while cases are quick, as `LocalExecutor` does.

The first server is allocated in `start` (so a description nobody can serve fails at once);
the others are allocated in the background while the first cases already run, only if
available now. A server lost mid-chunk (its process killed, its host gone, its batch job
cancelled) is noticed when its connection breaks (at once, or after TCP keepalive's ~10 s, or
after ``case_timeout``): a lost single case comes back failed with ``lost=True`` and the
allocator's account of the loss (e.g. the job's final state); the cases of a lost multi-case
chunk are run again one by one, so the case that was running is the one blamed. A replacement
server is allocated. `shutdown` releases every server, also on Ctrl-C or error.
"""

from __future__ import annotations

import logging
import operator
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Callable, Mapping

import cloudpickle

from ..errors import AllocationError, RemoteError, describe
from ..execution.base import (BrokenExecutor, CaseOutcome, Executor, check_case_timeout,
                              lost_outcome)
from ..execution.chunks import next_chunk_size, take_chunk
from ..remote import codec

logger = logging.getLogger(__name__)

__all__ = ['RAMExecutor']

#: Seconds a call may take without ``case_timeout`` (one day, as remote calls).
NO_TIMEOUT = 24 * 3600.0
#: Seconds `shutdown` waits for servers still being allocated (each is released as soon as
#: its allocation completes, even later).
ALLOCATION_GRACE = 60.0


class _Slot:
    """One allocated server running the case runner, and the client thread that feeds it."""

    def __init__(self, server: Any, info: dict[str, Any], obj_id: int, conn: Any):
        self.server, self.info, self.obj_id, self.conn = server, info, obj_id, conn
        self.inbox: queue.Queue = queue.Queue()
        self.name = f'{info.get("name", "server")} ({info.get("host")}:{info.get("port")})'

    def __repr__(self) -> str:
        return f'<slot {self.name}>'


class RAMExecutor(Executor):
    """Run cases on servers allocated from the resource allocation manager.

    Parameters
    ----------
    res_desc : dict, optional
        The resource description each server must fit (validated at once).
    max_servers : int, optional
        Most servers to allocate (default: as many as the RAM could provide for
        ``res_desc``, see `ResourceAllocationManager.max_servers`).
    ram : ResourceAllocationManager, optional
        Where servers come from (default: the module-level ``RAM``).
    case_timeout : float, optional
        Seconds after which a case is taken as hung: its server is released and the case
        reported lost.

    Attributes
    ----------
    chunk_time : float
        Wall time (s) a chunk of cases should take once the case duration is known.
    max_chunk : int
        Largest number of cases sent to a server at once.
    guided_share : int
        With a known number of remaining cases, a chunk is that number divided by
        ``guided_share`` times the number of servers.
    """

    chunk_time = 0.05
    max_chunk = 256
    guided_share = 1
    poll_interval = 0.5

    def __init__(self, res_desc: Mapping[str, Any] | None = None,
                 max_servers: int | None = None, ram: Any = None,
                 case_timeout: float | None = None):
        super().__init__()
        from ..resources.description import validate_resource_desc
        name = type(self).__name__
        self.res_desc = validate_resource_desc(res_desc or {}, f'{name}(res_desc)')
        if max_servers is not None and (isinstance(max_servers, bool) or
                                        not isinstance(max_servers, int) or max_servers < 1):
            raise ValueError(f'{name}: max_servers must be an int >= 1 or None, '
                             f'got {describe(max_servers)}')
        check_case_timeout(name, case_timeout)
        self.max_servers = max_servers
        self.case_timeout = case_timeout
        self.ram = ram
        self._reset()

    def _reset(self) -> None:
        self._slots: list[_Slot] = []
        self._events: queue.Queue = queue.Queue()
        self._payload: bytes | None = None
        self._closing = threading.Event()
        self._pending = 0
        self._wanted = 1
        self._allocating: list[threading.Thread] = []
        self._state_lock = threading.Lock()

    def _config_attrs(self) -> tuple[str, ...]:
        return ('res_desc', 'max_servers', 'case_timeout')

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.ram = None
        self._reset()

    def __repr__(self) -> str:
        return (f'RAMExecutor(res_desc={self.res_desc!r}, '
                f'max_servers={self.max_servers})')

    @property
    def n_workers(self) -> int:  # type: ignore[override]
        """Servers running the model now (or that will, before `start`: the limit)."""
        return len(self._slots) or self.max_servers or 1

    def _manager(self) -> Any:
        if self.ram is not None:
            return self.ram
        from ..resources.manager import RAM
        return RAM

    # -- starting ---------------------------------------------------------------------------------
    def _start(self, runner: Callable) -> None:
        """Pickle the runner once, allocate the first server and ship it; the others follow
        in the background."""
        try:
            self._payload = cloudpickle.dumps(runner)
        except Exception as exc:
            raise TypeError(f'{self!r}: cannot pickle the case runner {runner!r} to ship it '
                            f'to the servers: {type(exc).__name__}: {exc}') from exc
        self._closing.clear()
        ram = self._manager()
        wanted = self._wanted = self.max_servers or max(1, ram.max_servers(self.res_desc))
        self._add_slot(self._open_slot(wait=True))
        for _ in range(wanted - 1):
            self._allocate_later(wait=False)
        logger.info('%r: first server ready, %d more being allocated', self, wanted - 1)

    def _open_slot(self, wait: bool) -> _Slot:
        """Allocate a server and start the case runner on it (raises on failure)."""
        ram = self._manager()
        server, info = ram.allocate(self.res_desc, timeout=None if wait else 0)
        try:
            obj_id, conn = server.start_runner(self._payload)
        except BaseException as exc:
            _release(ram, server)
            if isinstance(exc, RemoteError) and not getattr(exc, 'remote_traceback', None):
                raise
            if isinstance(exc, Exception):
                raise BrokenExecutor(f'{self!r}: the server {info.get("name")} could not load '
                                     f'the case runner: {type(exc).__name__}: {exc}',
                                     getattr(exc, 'remote_traceback', None)) from exc
            raise
        slot = _Slot(server, info, obj_id, conn)
        threading.Thread(target=self._serve, args=(slot,), daemon=True,
                         name=f'ram-{slot.name}').start()
        return slot

    def _add_slot(self, slot: _Slot) -> None:
        with self._state_lock:
            self._slots.append(slot)

    def _allocate_later(self, wait: bool) -> None:
        """Allocate one more server in the background; report it as an event."""
        with self._state_lock:
            self._pending += 1

        def allocate() -> None:
            try:
                slot = self._open_slot(wait)
            except BaseException as exc:  # none available now: run with fewer servers
                logger.debug('%r: no further server: %s', self, exc)
                # only a waiting allocation's failure may break the run: one that did not wait
                # may have come before the release of a lost server freed its place
                self._events.put(('unavailable', None, exc if wait else None, 0.0))
                return
            if self._closing.is_set():  # shut down meanwhile: give it back at once
                self._close_slot(slot)
                self._events.put(('unavailable', None, None, 0.0))
                return
            self._add_slot(slot)
            self._events.put(('ready', slot, None, 0.0))

        thread = threading.Thread(target=allocate, daemon=True, name='ram-allocate')
        with self._state_lock:
            self._allocating = [t for t in self._allocating if t.is_alive()] + [thread]
        thread.start()

    def _serve(self, slot: _Slot) -> None:
        """The client thread of one server: run each chunk put in its inbox."""
        while True:
            chunk = slot.inbox.get()
            if chunk is None:
                return
            timeout = NO_TIMEOUT if self.case_timeout is None else \
                self.case_timeout * len(chunk) + 5.0
            sent = time.monotonic()
            try:
                answer = slot.conn.call('run_cases', codec.pack(chunk), timeout=timeout)
                outcomes = [CaseOutcome(*o) for o in codec.unpack(answer)]
            except BaseException as exc:
                self._events.put(('lost', slot, exc, time.monotonic() - sent))
                return
            self._events.put(('done', slot, outcomes, time.monotonic() - sent))

    # -- running ----------------------------------------------------------------------------------
    def _run(self, cases: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[CaseOutcome]:
        """Hand chunks to idle servers, yield outcomes, replace lost servers."""
        feed = iter(cases)
        pull = feed.__next__
        backlog: deque = deque()   # cases to send again, before new ones
        suspects: deque = deque()  # cases of a lost chunk: each runs alone
        busy: dict[_Slot, list] = {}
        with self._state_lock:
            idle = deque(self._slots)
        feed_error: list[BaseException] = []
        size = 1
        while True:
            while idle and (suspects or backlog or not feed_error):
                chunk = [suspects.popleft()] if suspects else take_chunk(
                    backlog, pull, self._chunk_size(feed, backlog, size), feed_error)
                if not chunk:
                    break
                slot = idle.popleft()
                busy[slot] = chunk
                slot.inbox.put(chunk)
            if not busy and not idle and not (suspects or backlog or feed_error):
                # every server lost: is there a case left to allocate a new one for?
                backlog.extend(take_chunk(backlog, pull, 1, feed_error))
            if not busy and not (suspects or backlog):
                if feed_error:
                    raise feed_error[0]
                return
            if not busy and not idle and not self._pending:
                self._allocate_later(wait=True)  # every server lost: wait for a new one
            try:
                kind, slot, data, elapsed = self._events.get(timeout=self.poll_interval)
            except queue.Empty:
                continue
            if kind == 'done':
                chunk = busy.pop(slot)
                idle.append(slot)
                size = next_chunk_size(size, elapsed, len(chunk), self.chunk_time,
                                       self.max_chunk)
                yield from data
            elif kind == 'ready':
                with self._state_lock:
                    self._pending -= 1
                if slot not in idle and slot not in busy:  # not already taken by this run
                    idle.append(slot)
            elif kind == 'unavailable':
                with self._state_lock:
                    self._pending -= 1
                    alive = bool(self._slots)
                if not alive and isinstance(data, BaseException):
                    raise self._set_broken(BrokenExecutor(
                        f'{self!r}: every server was lost and no new one could be allocated: '
                        f'{data}'))
            else:  # 'lost'
                chunk = busy.pop(slot)
                if self.case_timeout is not None and \
                        elapsed >= self.case_timeout * len(chunk):
                    data = TimeoutError(f'{len(chunk)} case(s) ran longer than case_timeout='
                                        f'{self.case_timeout:g} s each: {data}')
                why = self._lost(slot, data)
                if len(chunk) == 1:
                    now = time.time()
                    yield lost_outcome(chunk[0][0], why, now - elapsed, now)
                else:
                    suspects.extend(chunk)
                self._allocate_later(wait=False)

    def _chunk_size(self, feed: Iterator, backlog: deque, size: int) -> int:
        """Cases for the next chunk. When the feed knows how many cases remain: guided
        self-scheduling (a share of what remains, so chunks shrink towards the end and the
        servers finish together); otherwise ``size``, grown from measured case times."""
        remaining = operator.length_hint(feed, 0) + len(backlog)
        if remaining <= 0:
            return size
        servers = max(1, len(self._slots), self._wanted)  # share with servers still coming
        return max(1, min(self.max_chunk, -(-remaining // (self.guided_share * servers))))

    def _lost(self, slot: _Slot, exc: BaseException) -> str:
        """Forget a lost server (releasing what is left of it); the account of the loss."""
        with self._state_lock:
            if slot in self._slots:
                self._slots.remove(slot)
        status = None
        try:
            status = self._manager().status(slot.server)
        except Exception:
            logger.debug('status of %s unknown', slot.name, exc_info=True)
        why = f'server {slot.name} was lost: {exc}'
        if status:
            why += f'\n{status}'
        logger.warning('%r: %s', self, why)
        threading.Thread(target=self._close_slot, args=(slot,), daemon=True).start()
        return why

    # -- shutting down ----------------------------------------------------------------------------
    def _close_slot(self, slot: _Slot) -> None:
        """Stop the client thread and give the server back to the RAM."""
        slot.inbox.put(None)
        slot.conn.close()
        _release(self._manager(), slot.server)

    def _shutdown(self, wait: bool, cancel_futures: bool) -> None:
        """Release every server, in parallel (each release may wait for a process to end)."""
        self._closing.set()
        with self._state_lock:
            slots, self._slots = self._slots, []
        threads = [threading.Thread(target=self._close_slot, args=(slot,), daemon=True)
                   for slot in slots]
        for thread in threads:
            thread.start()
        if wait:
            for thread in threads:
                thread.join()
            deadline = time.monotonic() + ALLOCATION_GRACE
            for thread in self._allocating:  # they give their server back once they have it
                thread.join(max(0.0, deadline - time.monotonic()))
        self._events = queue.Queue()
        with self._state_lock:
            self._pending = 0


def _release(ram: Any, server: Any) -> None:
    """Give ``server`` back, logging (not raising) a failure: it is being let go anyway."""
    try:
        ram.release(server)
    except (AllocationError, RemoteError, OSError, ValueError) as exc:
        logger.warning('releasing %r failed: %s', server, exc)
