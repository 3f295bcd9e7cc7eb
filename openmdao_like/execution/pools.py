"""Worker pools: the one thing that differs between executors (see `execution.loop`).

A pool starts workers, each of which loads the pickled case runner once, then serves chunks of
``(case_id, inputs)`` and answers each with one list of `CaseOutcome`. Workers are named by
keys the pool chooses (an index, a server slot). The dispatch loop talks to every pool through
`WorkerPool`; ``poll(timeout)`` returns events ``(worker, kind, data)``:

=================  ====================================================================
``ready``          the worker can take work (it loaded the runner, or was just allocated)
``init_failed``    it could not load the runner (data: the traceback text)
``done``           it finished a chunk (data: the list of outcomes)
``lost``           it died, froze or was killed (data: how, in words)
``unavailable``    a worker the pool tried to add could not be had (data: the exception,
                   or None when that does not matter)
=================  ====================================================================

This module holds the pools of this host: `ProcessWorkerPool` (worker processes, each with its
own pipe and a shared slot with the case it runs; a stopped worker is seen from its process
state, so a case holding the GIL in a long native call is not mistaken for a frozen one) and
`ThreadWorkerPool` (threads, to test the loop without processes and for models that release
the GIL). A process worker
ignores Ctrl-C (the parent decides) and exits when orphaned; `close` asks the workers to stop,
then terminates and kills whatever is left, every wait bounded.
"""

from __future__ import annotations

import abc
import logging
import multiprocessing
import os
import pickle
import queue
import selectors
import signal
import threading
import time
import traceback
import weakref
from collections.abc import Hashable
from typing import Any, Callable

from ..cases import FAILED
from .base import CaseOutcome

logger = logging.getLogger(__name__)

__all__ = ['WorkerPool', 'ProcessWorkerPool', 'ThreadWorkerPool', 'IDLE', 'LIVENESS', 'drain',
           'run_chunk']

IDLE = -1  # slot value of a worker between cases
#: Seconds a busy worker process may stay stopped (SIGSTOP, a debugger) before it is replaced.
LIVENESS = 5.0
#: Seconds a stopped worker process has to end before it is killed, and then to be reaped.
GRACE = 1.0


class WorkerPool(abc.ABC):
    """What an executor's workers are: processes, threads, servers, MPI ranks, engine tasks.

    The dispatch loop (`execution.loop.PoolExecutor`) owns chunking, losses, timeouts and
    shutdown; a pool only starts, feeds, watches and stops workers. A third-party executor is
    a pool class set as ``pool_class`` of a `PoolExecutor` subclass.
    """

    #: Whether `current_case` tells which case of a chunk a worker is running.
    tracks_cases = False

    @abc.abstractmethod
    def start(self, payload: bytes) -> list[Hashable]:
        """Start the workers, each loading the pickled runner ``payload``; the workers that
        can take work now (others may follow as ``ready`` events)."""

    @abc.abstractmethod
    def load(self, payload: bytes) -> list[Hashable]:
        """Give every live worker another runner (a warm pool's next run); the workers that
        can take work now."""

    @abc.abstractmethod
    def send(self, worker: Hashable, chunk: list[tuple[int, Any]]) -> None:
        """Give ``worker`` a chunk of cases (a worker that is gone is reported by `poll`)."""

    @abc.abstractmethod
    def poll(self, timeout: float) -> list[tuple[Hashable, str, Any]]:
        """The events of the next ``timeout`` seconds (see the module docstring)."""

    @abc.abstractmethod
    def kill(self, worker: Hashable, why: str) -> None:
        """Stop ``worker`` now; `poll` reports it ``lost`` with ``why``."""

    @abc.abstractmethod
    def replace(self, worker: Hashable) -> list[Hashable]:
        """Replace lost ``worker``; the workers that can take work now (a replacement that
        takes time comes later as a ``ready`` or ``unavailable`` event)."""

    @abc.abstractmethod
    def close(self, cancel: bool = False) -> None:
        """Stop every worker (bounded); ``cancel``: without waiting for chunks in flight."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """How many workers there are, or will be once those being added arrive."""

    def current_case(self, worker: Hashable) -> int | None:
        """Id of the case ``worker`` is running (`IDLE` between cases; None if unknown)."""
        return None

    def lost_case(self, worker: Hashable) -> int | None:
        """The case ``worker`` was running when it was lost, if the pool is sure of it (the
        loop blames that case; None: every case of the chunk runs again alone)."""
        return self.current_case(worker) if self.tracks_cases else None

    def check(self, busy: Any) -> None:
        """Called by the loop at every turn with the busy workers: a pool that can tell a
        frozen worker kills it here."""

    def describe(self, worker: Hashable) -> str:
        """How messages name ``worker``."""
        return f'worker {worker}'


def drain(events: queue.SimpleQueue, timeout: float) -> list:
    """The events in ``events`` after waiting up to ``timeout`` s for the first (the `poll`
    of a pool whose workers report through one queue)."""
    try:
        found = [events.get(timeout=timeout)]
    except queue.Empty:
        return []
    while not events.empty():
        found.append(events.get_nowait())
    return found


# -- the worker side ---------------------------------------------------------------------------

def _load(payload: bytes, send: Callable[[tuple], None]) -> Any:
    """The runner from ``payload``, after telling the parent 'ready' (None if it failed)."""
    try:
        runner = pickle.loads(payload)
    except Exception:
        send(('init_failed', traceback.format_exc()))
        return None
    send(('ready', os.getpid()))
    return runner


def run_chunk(runner: Any, chunk: list[tuple[int, Any]],
              set_slot: Callable[[int], None] = lambda case_id: None) -> list[CaseOutcome]:
    """The outcomes of a chunk of cases run by ``runner`` where a worker is (a process, a
    thread, an engine's task); ``set_slot`` is told which case runs, then `IDLE`."""
    done = []
    for case_id, inputs in chunk:
        set_slot(case_id)
        try:
            done.append(runner(case_id, inputs))
        except Exception:  # a bug of the runner itself: the case fails, the worker lives
            done.append(CaseOutcome(case_id, None, FAILED, traceback.format_exc()))
    set_slot(IDLE)
    return done


def _serve(recv: Callable[[], Any], send: Callable[[tuple], None], payload: bytes,
           set_slot: Callable[[int], None]) -> None:
    """A worker's life: load the runner, run the chunks it receives until None; a bytes
    message is another runner to load (the next run of a warm pool)."""
    runner = _load(payload, send)
    while True:
        message = recv()
        if message is None:
            return
        if isinstance(message, bytes):
            runner = _load(message, send)
            continue
        if runner is None:  # (a chunk sent before the failure was seen)
            continue
        done = run_chunk(runner, message, set_slot)
        try:
            send(('done', done))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:  # nothing was sent
            send(('done', [CaseOutcome(o.id, None, FAILED, f'{type(exc).__name__}: the '
                                       f'outputs of case {o.id} cannot be sent back: {exc}\n')
                           for o in done]))


def _process_main(conn: Any, payload: bytes, slots: Any, index: int, ppid: int) -> None:
    """Entry point of a worker process (ignores Ctrl-C: the parent decides; exits if orphaned)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def recv() -> Any:
        while not conn.poll(1.0):
            if os.getppid() != ppid:
                return None
        try:
            return conn.recv()
        except (EOFError, OSError):
            return None

    def set_slot(case_id: int) -> None:
        slots[index] = case_id

    try:
        _serve(recv, conn.send, payload, set_slot)
    except (BrokenPipeError, EOFError):  # the parent went away
        pass


# -- the parent side ---------------------------------------------------------------------------

def _exit_text(proc: Any) -> str:
    """How a finished worker process ended, in words."""
    code = proc.exitcode
    if code is None:
        return 'stopped responding'
    if code < 0:
        try:
            return f'was killed by signal {signal.Signals(-code).name}'
        except ValueError:
            return f'was killed by signal {-code}'
    return f'exited with code {code}'


def _stop_processes(procs: list[Any], grace: float) -> None:
    """Terminate, then kill, whatever in ``procs`` is still alive; reap them all (bounded: a
    process that does not end even after SIGKILL, e.g. in uninterruptible I/O, is logged)."""
    live = [proc for proc in procs if proc is not None and proc.pid is not None]
    for proc in live:
        if proc.is_alive():
            _signal(proc, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in live:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in live:
        if proc.is_alive():
            proc.kill()
            proc.join(grace)
            if proc.is_alive():
                logger.error('worker process %d did not end after SIGKILL', proc.pid)


def _stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (by a signal or a tracer), from /proc (Linux)."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as stat:
            return stat.read().rpartition(b')')[2][:3].strip() in (b'T', b't')
    except OSError:
        return False


def _signal(proc: Any, sig: int) -> None:
    try:
        os.kill(proc.pid, sig)
    except OSError:
        pass


class ProcessWorkerPool(WorkerPool):
    """Worker processes, each with its own pipe and a shared slot holding its current case.

    Parameters
    ----------
    n_workers : int
        Number of processes.
    mp_context : str or None
        multiprocessing start method (None: the platform default).
    """

    tracks_cases = True

    def __init__(self, n_workers: int, mp_context: str | None = None):
        self._ctx = multiprocessing.get_context(mp_context)
        self._n = n_workers
        self._payload = b''
        self._slots = self._ctx.RawArray('q', [IDLE] * n_workers)
        self._stopped_since: dict[int, float] = {}
        self._procs: list[Any] = [None] * n_workers
        self._conns: list[Any] = [None] * n_workers
        self._why: dict[int, str] = {}
        self._selector = selectors.DefaultSelector()  # pipes and sentinels, kept registered
        self._finalizer = weakref.finalize(self, _stop_processes, self._procs, GRACE)

    @property
    def size(self) -> int:
        return self._n

    def start(self, payload: bytes) -> list[int]:
        self._payload = payload
        try:
            for i in range(self._n):
                self._spawn(i)
        except BaseException:
            self.close(cancel=True)
            raise
        return list(range(self._n))

    def load(self, payload: bytes) -> list[int]:
        self._payload = payload
        for i in range(self._n):
            self._send(i, payload)
        return list(range(self._n))

    def _spawn(self, i: int) -> None:
        """Start worker ``i``."""
        ours, theirs = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_process_main, name=f'openmdao_like-worker-{i}', daemon=True,
            args=(theirs, self._payload, self._slots, i, os.getpid()))
        self._slots[i] = IDLE
        self._stopped_since.pop(i, None)
        proc.start()
        theirs.close()
        self._procs[i], self._conns[i] = proc, ours
        self._selector.register(ours, selectors.EVENT_READ, i)
        self._selector.register(proc.sentinel, selectors.EVENT_READ, i)

    def describe(self, worker: int) -> str:
        return f'worker {worker} (pid {self._procs[worker].pid})'

    def current_case(self, worker: int) -> int:
        return self._slots[worker]

    def send(self, worker: int, chunk: list[tuple[int, Any]]) -> None:
        self._send(worker, chunk)

    def _send(self, i: int, message: Any) -> None:
        try:
            self._conns[i].send(message)
        except OSError:
            pass

    def fileno(self) -> int:
        """A descriptor readable when `poll` has events (to watch the workers from an event
        loop: ``loop.add_reader(pool.fileno(), ...)``, then ``poll(0)``)."""
        return self._selector.fileno()

    def poll(self, timeout: float) -> list[tuple[int, str, Any]]:
        ready = self._selector.select(timeout)
        events: list[tuple[int, str, Any]] = []
        # a worker may have ended when its sentinel is ready or its pipe ended (not asked
        # otherwise: a message costs no process check)
        ended = {key.data for key, _mask in ready if key.fileobj is not self._conns[key.data]}
        for i in sorted({key.data for key, _mask in ready}):
            conn, proc = self._conns[i], self._procs[i]
            try:
                while conn.poll():
                    events.append((i, *conn.recv()))
            except Exception:  # EOF or a message cut short: the worker is gone
                proc.join(GRACE)
                ended.add(i)
            if i in ended and not proc.is_alive():
                events.append((i, 'lost', self._why.pop(i, None) or _exit_text(proc)))
        return events

    def check(self, busy: Any) -> None:
        """Kill each busy worker that has been stopped for `LIVENESS` seconds."""
        now = time.monotonic()
        for i in busy:
            if not _stopped(self._procs[i].pid):
                self._stopped_since.pop(i, None)
                continue
            since = self._stopped_since.setdefault(i, now)
            if now - since > LIVENESS and i not in self._why:
                self.kill(i, f'stopped responding (process stopped for {now - since:.0f} s)')

    def kill(self, worker: int, why: str) -> None:
        self._why[worker] = why
        _signal(self._procs[worker], signal.SIGKILL)

    def replace(self, worker: int) -> list[int]:
        proc, conn = self._procs[worker], self._conns[worker]
        _stop_processes([proc], GRACE)
        self._selector.unregister(conn)
        self._selector.unregister(proc.sentinel)
        conn.close()
        self._spawn(worker)
        return [worker]

    def close(self, cancel: bool = False, timeout: float = 10.0) -> None:
        if not cancel:
            for i in range(self._n):
                if self._conns[i] is not None:
                    self._send(i, None)
            deadline = time.monotonic() + timeout
            for proc in self._procs:
                if proc is not None:
                    proc.join(max(0.0, deadline - time.monotonic()))
        _stop_processes(self._procs, GRACE)
        self._selector.close()
        for conn in self._conns:
            if conn is not None:
                conn.close()
        self._finalizer.detach()


class ThreadWorkerPool(WorkerPool):
    """Worker threads with the protocol of `ProcessWorkerPool` (each loads its own copy of the
    runner). A worker whose runner raises a ``BaseException`` such as ``SystemExit`` ends, and
    is reported lost, as a dying process would be. Threads cannot be stopped from outside:
    `kill` logs and lets the case finish.

    Parameters
    ----------
    n_workers : int
        Number of threads.
    mp_context : str or None
        Ignored.
    """

    tracks_cases = True

    def __init__(self, n_workers: int, mp_context: str | None = None):
        self._n = n_workers
        self._payload = b''
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._slots = [IDLE] * n_workers
        self._inboxes: list[Any] = [None] * n_workers
        self._threads: list[Any] = [None] * n_workers

    @property
    def size(self) -> int:
        return self._n

    def start(self, payload: bytes) -> list[int]:
        self._payload = payload
        for i in range(self._n):
            self._spawn(i)
        return list(range(self._n))

    def load(self, payload: bytes) -> list[int]:
        self._payload = payload
        for inbox in self._inboxes:
            inbox.put(payload)
        return list(range(self._n))

    def _spawn(self, i: int) -> None:
        """Start worker thread ``i``."""
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        thread = threading.Thread(target=self._main, args=(i, inbox), daemon=True,
                                  name=f'openmdao_like-worker-{i}')
        self._slots[i] = IDLE
        self._inboxes[i], self._threads[i] = inbox, thread
        thread.start()

    def _main(self, i: int, inbox: queue.SimpleQueue) -> None:
        """Thread body: serve until told to stop; report an escaping BaseException as lost."""
        def set_slot(case_id: int) -> None:
            self._slots[i] = case_id
        try:
            _serve(inbox.get, lambda msg: self._events.put((i, *msg)), self._payload, set_slot)
        except BaseException as exc:  # noqa: B036 - the thread "dies", as a process would
            self._events.put((i, 'lost', f'ended by {type(exc).__name__}: {exc}'))

    def current_case(self, worker: int) -> int:
        return self._slots[worker]

    def send(self, worker: int, chunk: list[tuple[int, Any]]) -> None:
        self._inboxes[worker].put(chunk)

    def poll(self, timeout: float) -> list[tuple[int, str, Any]]:
        return drain(self._events, timeout)

    def kill(self, worker: int, why: str) -> None:
        logger.warning('worker thread %s cannot be stopped (%s); waiting for it', worker, why)

    def replace(self, worker: int) -> list[int]:
        self._spawn(worker)
        return [worker]

    def close(self, cancel: bool = False, timeout: float = 10.0) -> None:
        for inbox in self._inboxes:
            if inbox is not None:
                inbox.put(None)
        deadline = time.monotonic() + (0.0 if cancel else timeout)
        for thread in self._threads:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
