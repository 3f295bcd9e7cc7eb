"""Worker pools behind `LocalExecutor`: processes (`ProcessWorkerPool`) or threads
(`ThreadWorkerPool`), with one protocol so the executor's dispatch logic runs over either.

A pool starts ``n_workers`` workers, each of which loads the pickled case runner once, then
serves chunks of ``(case_id, inputs)`` and answers each with one list of `CaseOutcome`. Worker
``i`` is addressed by its index: ``send(i, chunk)``, ``current_case(i)`` (the id of the case it
is running, from a shared slot it writes before each case), ``kill(i, why)``, ``restart(i)``.
``poll(timeout)`` returns events ``(i, kind, data)``:

=============  ==============================================================
``ready``      the worker loaded the runner (data: its pid)
``init_failed``  it could not (data: the traceback text)
``done``       it finished a chunk (data: the list of outcomes)
``lost``       it died or was killed (data: how, in words)
=============  ==============================================================

A process worker ignores Ctrl-C (the parent decides) and exits when orphaned; `close` asks
the workers to stop, then terminates and kills whatever is left, always reaping them.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import threading
import time
import traceback
import weakref
from typing import Any, Callable

from ..cases import FAILED
from .base import CaseOutcome

logger = logging.getLogger(__name__)

__all__ = ['ProcessWorkerPool', 'ThreadWorkerPool', 'IDLE']

IDLE = -1  # slot value of a worker between cases


def _serve(recv: Callable[[], Any], send: Callable[[tuple], None], payload: bytes,
           set_slot: Callable[[int], None]) -> None:
    """A worker's life: load the runner once, then run the chunks it receives until None."""
    try:
        runner = pickle.loads(payload)
    except Exception:
        send(('init_failed', traceback.format_exc()))
        return
    send(('ready', os.getpid()))
    while True:
        chunk = recv()
        if chunk is None:
            return
        done = []
        for case_id, inputs in chunk:
            set_slot(case_id)
            try:
                done.append(runner(case_id, inputs))
            except Exception:  # a bug of the runner itself: the case fails, the worker lives
                done.append(CaseOutcome(case_id, None, FAILED, traceback.format_exc()))
        set_slot(IDLE)
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
    """Terminate, then kill, whatever in ``procs`` is still alive; reap them all (bounded)."""
    for proc in procs:
        if proc is not None and proc.is_alive():
            proc.terminate()
    for proc in procs:
        if proc is None:
            continue
        proc.join(grace)
        if proc.is_alive():
            proc.kill()
            proc.join(grace)


class ProcessWorkerPool:
    """Worker processes, each with its own pipe and a shared slot holding its current case.

    Parameters
    ----------
    payload : bytes
        The pickled case runner, loaded once by each worker.
    n_workers : int
        Number of processes.
    mp_context : str or None
        multiprocessing start method (None: the platform default).
    """

    def __init__(self, payload: bytes, n_workers: int, mp_context: str | None = None):
        self._ctx = multiprocessing.get_context(mp_context)
        self._payload = payload
        self._slots = self._ctx.RawArray('q', [IDLE] * n_workers)
        self._procs: list[Any] = [None] * n_workers
        self._conns: list[Any] = [None] * n_workers
        self._why: dict[int, str] = {}
        self._finalizer = weakref.finalize(self, _stop_processes, self._procs, 1.0)
        try:
            for i in range(n_workers):
                self._spawn(i)
        except BaseException:
            self.close(cancel=True)
            raise

    def _spawn(self, i: int) -> None:
        """Start worker ``i``."""
        ours, theirs = self._ctx.Pipe()
        proc = self._ctx.Process(target=_process_main, name=f'openmdao_like-worker-{i}',
                                 args=(theirs, self._payload, self._slots, i, os.getpid()),
                                 daemon=True)
        self._slots[i] = IDLE
        proc.start()
        theirs.close()
        self._procs[i], self._conns[i] = proc, ours

    def pid(self, i: int) -> int | None:
        """Process id of worker ``i``."""
        return self._procs[i].pid

    def current_case(self, i: int) -> int:
        """Id of the case worker ``i`` is running (-1 between cases)."""
        return self._slots[i]

    def send(self, i: int, chunk: list[tuple[int, Any]]) -> None:
        """Give worker ``i`` a chunk of cases (a dead worker is reported by `poll`)."""
        try:
            self._conns[i].send(chunk)
        except OSError:
            pass

    def poll(self, timeout: float) -> list[tuple[int, str, Any]]:
        """Events within ``timeout`` s: (worker, 'ready'|'init_failed'|'done'|'lost', data)."""
        owner = {}
        for i, (proc, conn) in enumerate(zip(self._procs, self._conns)):
            owner[conn] = owner[proc.sentinel] = i
        ready = multiprocessing.connection.wait(list(owner), timeout)
        events: list[tuple[int, str, Any]] = []
        for i in sorted({owner[obj] for obj in ready}):
            conn, proc = self._conns[i], self._procs[i]
            try:
                while conn.poll():
                    events.append((i, *conn.recv()))
            except Exception:  # EOF or a message cut short: the worker is gone
                proc.join(1.0)
            if not proc.is_alive():
                events.append((i, 'lost', self._why.pop(i, None) or _exit_text(proc)))
        return events

    def kill(self, i: int, why: str) -> None:
        """Stop worker ``i`` now; `poll` reports it lost with ``why``."""
        self._why[i] = why
        self._procs[i].kill()

    def restart(self, i: int) -> None:
        """Replace (lost) worker ``i`` with a new process."""
        _stop_processes([self._procs[i]], 1.0)
        self._conns[i].close()
        self._spawn(i)

    def close(self, cancel: bool = False, timeout: float = 10.0) -> None:
        """Stop every worker: ask and wait up to ``timeout`` s, or (``cancel``) terminate now."""
        if not cancel:
            for conn in self._conns:
                if conn is not None:
                    try:
                        conn.send(None)
                    except OSError:
                        pass
            deadline = time.monotonic() + timeout
            for proc in self._procs:
                if proc is not None:
                    proc.join(max(0.0, deadline - time.monotonic()))
        _stop_processes(self._procs, 1.0)
        for conn in self._conns:
            if conn is not None:
                conn.close()
        self._finalizer.detach()


class ThreadWorkerPool:
    """Worker threads with the same protocol as `ProcessWorkerPool` (each loads its own copy of
    the runner). A worker whose runner raises a ``BaseException`` such as ``SystemExit`` ends,
    and is reported lost, as a dying process would be.

    Parameters
    ----------
    payload : bytes
        The pickled case runner, loaded once by each worker.
    n_workers : int
        Number of threads.
    mp_context : str or None
        Ignored.
    """

    def __init__(self, payload: bytes, n_workers: int, mp_context: str | None = None):
        self._payload = payload
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._slots = [IDLE] * n_workers
        self._inboxes: list[Any] = [None] * n_workers
        self._threads: list[Any] = [None] * n_workers
        for i in range(n_workers):
            self._spawn(i)

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

    def pid(self, i: int) -> int | None:
        """Process id (all threads share this process's)."""
        return os.getpid()

    def current_case(self, i: int) -> int:
        """Id of the case worker ``i`` is running (-1 between cases)."""
        return self._slots[i]

    def send(self, i: int, chunk: list[tuple[int, Any]]) -> None:
        """Give worker ``i`` a chunk of cases."""
        self._inboxes[i].put(chunk)

    def poll(self, timeout: float) -> list[tuple[int, str, Any]]:
        """Events within ``timeout`` s, as `ProcessWorkerPool.poll`."""
        try:
            events = [self._events.get(timeout=timeout)]
        except queue.Empty:
            return []
        while not self._events.empty():
            events.append(self._events.get_nowait())
        return events

    def kill(self, i: int, why: str) -> None:
        """Threads cannot be stopped from outside: log it and let the case finish."""
        logger.warning('worker thread %d cannot be stopped (%s); waiting for it', i, why)

    def restart(self, i: int) -> None:
        """Start a new thread in place of (ended) worker ``i``."""
        self._spawn(i)

    def close(self, cancel: bool = False, timeout: float = 10.0) -> None:
        """Ask every thread to stop; wait up to ``timeout`` s unless ``cancel``."""
        for inbox in self._inboxes:
            inbox.put(None)
        deadline = time.monotonic() + (0.0 if cancel else timeout)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
