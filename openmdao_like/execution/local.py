"""`LocalExecutor`: cases run by worker processes on this host.

Each worker gets the cloudpickled case runner once, when it starts, then serves chunks of
``(case_id, inputs)`` over its own pipe and sends back one list of `CaseOutcome` per chunk
(see `openmdao_like.execution.pools`). Chunks grow (doubling, up to
`LocalExecutor.max_chunk`) until one takes about `LocalExecutor.chunk_time`, so quick cases
are batched and slow ones spread one by one; at most one chunk per worker is in flight.

A worker that dies (``os._exit``, a signal, the OOM killer) is seen at once through its
process sentinel. Every worker writes the id of the case it is running into a shared slot, so
the parent knows which case it held: that case comes back failed with ``lost=True``, the other
cases of its chunk are sent again, and a new worker takes its place. With ``case_timeout`` a
case running longer is stopped the same way. Every wait is bounded; `shutdown` stops every
process it started (asking first, then terminating, then killing).

The pool type is a class attribute (as in mpi4py.futures): `ThreadExecutor` swaps processes
for threads, so the dispatch logic is tested without starting processes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Callable

import cloudpickle

from ..errors import describe
from .base import (BrokenExecutor, CaseOutcome, Executor, check_case_timeout,
                   lost_outcome)
from .chunks import next_chunk_size, take_chunk
from .pools import IDLE, ProcessWorkerPool, ThreadWorkerPool

logger = logging.getLogger(__name__)

__all__ = ['LocalExecutor', 'ThreadExecutor']


class LocalExecutor(Executor):
    """Run cases in worker processes on this host (the default with ``sequential=False``).

    Parameters
    ----------
    n_workers : int, optional
        Number of worker processes (default: ``os.cpu_count()``).
    mp_context : str, optional
        multiprocessing start method: 'fork' (fast: a worker starts in milliseconds),
        'forkserver' or 'spawn' (each worker imports the model's modules afresh, ~1-2 s).
        Default: the platform's.
    case_timeout : float, optional
        Seconds after which a running case is stopped (its worker is killed and replaced) and
        reported failed; default: no limit.

    Attributes
    ----------
    chunk_time : float
        Wall time (s) a chunk of cases should take once the case duration is known.
    max_chunk : int
        Largest number of cases sent to a worker at once.
    poll_interval : float
        Longest single wait (s) for worker events.
    """

    _make_pool = staticmethod(ProcessWorkerPool)
    chunk_time = 0.05
    max_chunk = 512
    poll_interval = 0.5

    def __init__(self, n_workers: int | None = None, mp_context: str | None = None,
                 case_timeout: float | None = None):
        super().__init__()
        name = type(self).__name__
        if n_workers is not None and (isinstance(n_workers, bool) or
                                      not isinstance(n_workers, int)):
            raise TypeError(f'{name}: n_workers must be an int >= 1 or None, '
                            f'got {describe(n_workers)}')
        if n_workers is not None and n_workers < 1:
            raise ValueError(f'{name}: n_workers must be an int >= 1 or None, got {n_workers}')
        methods = multiprocessing.get_all_start_methods()
        if mp_context is not None and mp_context not in methods:
            raise ValueError(f'{name}: mp_context must be None or one of {methods}, '
                             f'got {describe(mp_context)}')
        check_case_timeout(name, case_timeout)
        self.n_workers = n_workers or os.cpu_count() or 1
        self.mp_context = mp_context
        self.case_timeout = case_timeout
        self._pool: Any = None
        self._abandoned = False
        self._idle_losses = 0

    def _config_attrs(self) -> tuple[str, ...]:
        return ('n_workers', 'mp_context', 'case_timeout')

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._pool, self._abandoned, self._idle_losses = None, False, 0

    def _start(self, runner: Callable) -> None:
        """Pickle the runner once and start the workers, each loading it once."""
        try:
            payload = cloudpickle.dumps(runner)
        except Exception as exc:
            raise TypeError(f'{self!r}: cannot pickle the case runner {runner!r} to ship it '
                            f'to the workers: {type(exc).__name__}: {exc}') from exc
        self._abandoned = False
        self._idle_losses = 0
        self._pool = self._make_pool(payload, self.n_workers, self.mp_context)

    def _shutdown(self, wait: bool, cancel_futures: bool) -> None:
        """Stop the workers; cases abandoned in flight are cancelled."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(cancel=cancel_futures or self._abandoned or not wait)

    def _run(self, cases: Iterable[tuple[int, Any]]) -> Iterator[CaseOutcome]:
        """Dispatch chunks to idle workers, yield outcomes, replace lost workers."""
        pool = self._pool
        pull = iter(cases).__next__
        backlog: deque = deque()  # cases of a lost worker's chunk, sent again first
        busy: dict[int, tuple[list, float]] = {}  # worker -> (chunk, time sent)
        idle = deque(range(self.n_workers))
        ready = [False] * self.n_workers
        watch: dict[int, tuple[int, float]] = {}  # worker -> (case seen running, since)
        feed_error: list[BaseException] = []
        size = 1
        try:
            while True:
                while idle and (backlog or not feed_error):
                    chunk = take_chunk(backlog, pull, size, feed_error)
                    if not chunk:
                        break
                    i = idle.popleft()
                    busy[i] = (chunk, time.monotonic())
                    pool.send(i, chunk)
                if not busy:
                    if feed_error:
                        raise feed_error[0]
                    return
                for i, kind, data in pool.poll(self.poll_interval):
                    if kind == 'done':
                        chunk, sent = busy.pop(i)
                        idle.append(i)
                        size = next_chunk_size(size, time.monotonic() - sent, len(chunk),
                                               self.chunk_time, self.max_chunk)
                        yield from data
                    elif kind == 'ready':
                        ready[i] = True
                    elif kind == 'lost':
                        outcome = self._lost(pool, i, data, busy, backlog, ready[i])
                        ready[i] = False
                        watch.pop(i, None)
                        idle.append(i)
                        if outcome is not None:
                            yield outcome
                    else:  # 'init_failed'
                        raise self._set_broken(BrokenExecutor(
                            f'{self!r}: worker {i} could not load the case runner '
                            f'(initializer failed): {data.strip().splitlines()[-1]}', data))
                if self.case_timeout is not None:
                    self._check_timeouts(pool, busy, watch)
        finally:
            if busy:
                self._abandoned = True

    def _lost(self, pool: Any, i: int, why: str, busy: dict, backlog: deque,
              was_ready: bool) -> CaseOutcome | None:
        """Handle lost worker ``i``: fail the case it ran, resend the rest, replace it."""
        entry = busy.pop(i, None)
        text = f'worker {i} (pid {pool.pid(i)}) of {self!r} {why}'
        if not was_ready:
            raise self._set_broken(BrokenExecutor(f'{text} while loading the case runner'))
        running = pool.current_case(i)
        try:
            pool.restart(i)
        except Exception as exc:
            raise self._set_broken(BrokenExecutor(f'{text}, and no new worker could be '
                                                  f'started: {exc}')) from exc
        if entry is None:  # no case to blame: give up if it keeps happening
            self._idle_losses += 1
            if self._idle_losses > 3 * self.n_workers:
                raise self._set_broken(BrokenExecutor(
                    f'{text} while idle, {self._idle_losses} times in this run; giving up'))
            logger.warning('%s while idle; started a new worker', text)
            return None
        chunk = entry[0]
        k = next((j for j, (case_id, _) in enumerate(chunk) if case_id == running), 0)
        backlog.extendleft(reversed(chunk[:k] + chunk[k + 1:]))
        victim = chunk[k][0]
        logger.warning('%s while running case %s; started a new worker', text, victim)
        now = time.time()
        return lost_outcome(victim, f'{text} while running it', now, now)

    def _check_timeouts(self, pool: Any, busy: dict, watch: dict) -> None:
        """Kill the workers whose current case has run longer than `case_timeout`."""
        now = time.monotonic()
        for i in busy:
            case_id = pool.current_case(i)
            seen = watch.get(i)
            if seen is None or seen[0] != case_id:
                watch[i] = (case_id, now)
            elif case_id != IDLE and now - seen[1] > self.case_timeout:
                pool.kill(i, f'was stopped: case {case_id} ran longer than '
                             f'case_timeout={self.case_timeout} s')
                watch[i] = (case_id, float('inf'))

    def __repr__(self) -> str:
        return f'{type(self).__name__}(n_workers={self.n_workers})'


class ThreadExecutor(LocalExecutor):
    """`LocalExecutor` with threads for workers: same shipping, dispatch and loss handling,
    no processes (for tests of that logic, and for models that release the GIL)."""

    _make_pool = staticmethod(ThreadWorkerPool)
