"""The one dispatch loop: every executor is this loop plus a `WorkerPool`.

`PoolExecutor` hands chunks of cases to idle workers, yields outcomes as chunks complete, and
applies the policies every executor shares:

- **chunks** (`execution.chunks.ChunkPolicy`): guided self-scheduling when the number of cases
  left is known, measured growth otherwise; each worker holds the next chunk while it runs
  one (``prefetch``), so it never waits for the loop — except for the last cases (no more
  than there are workers), which go to the first workers free rather than wait behind a
  running chunk;
- **losses**: when a worker is lost, a case known to be running on it comes back failed with
  ``lost=True`` and the rest of its chunk is sent again; when the pool cannot tell which case
  was running, each case of the chunk runs again alone, so the one that kills its worker is the
  one blamed (a lone case lost comes back failed); chunks it held but had not started are sent
  again as they were. Lost cases count as infrastructure retries
  in the driver, apart from model errors. The pool replaces the worker;
- **case_timeout** (`execution.copies`): a case running longer (or a chunk longer than
  ``case_timeout`` per case, when the pool cannot tell which case runs) is sent again to another
  worker while the first copy goes on, up to ``max_resubmits`` times; the first copy to end
  gives the outcome, the workers still running the others are stopped and replaced, so the
  case is recorded once. When every copy ran too long and no resend is left, their workers are
  stopped and the case is reported lost;
- **warm reuse**: `start` ships the runner and starts the pool once; `load` ships another
  runner to the same workers (a driver's next run), so workers and servers are allocated once
  per executor, until `shutdown`;
- **shutdown**: idempotent and bounded; workers left busy by an abandoned run are killed.

The pool type is a class attribute (as in mpi4py.futures): `LocalExecutor` sets processes,
`ThreadExecutor` threads, `RAMExecutor` allocated servers. A new executor never copies the loop.
"""

from __future__ import annotations

import logging
import operator
import time
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from typing import Any, Callable, ClassVar

import cloudpickle

from ..options import HasOptions, OptionsDictionary
from .base import BrokenExecutor, CaseOutcome, CaseRunner, Executor, lost_outcome
from .chunks import ChunkPolicy, take_chunk
from .copies import Copies
from .pools import IDLE, WorkerPool

logger = logging.getLogger(__name__)

__all__ = ['PoolExecutor']


class _Flight:
    """A chunk in flight on a worker: its cases, since when it runs (or was sent), and whether
    its one case is a suspect of a loss, running alone."""

    __slots__ = ('chunk', 'since', 'alone')

    def __init__(self, chunk: list, since: float, alone: bool):
        self.chunk, self.since, self.alone = chunk, since, alone


class PoolExecutor(HasOptions, Executor):
    """An executor made of the dispatch loop and a worker pool (see the module docstring).

    Subclasses set `pool_class` (or override `_make_pool`) and declare their options.

    Parameters
    ----------
    case_timeout : float, optional
        Seconds after which a running case is sent again to another worker (the first copy to
        end wins); default: no limit.
    max_resubmits : int
        How many times a case may be sent again; when its copies all ran longer than
        ``case_timeout`` and none is left, their workers are stopped and the case is reported
        failed as lost (default 5).

    Attributes
    ----------
    chunk_time : float
        Wall time (s) a chunk should take once the case duration is known (unknown count).
    max_chunk : int
        Largest number of cases sent to a worker at once.
    poll_interval : float
        Longest single wait (s) for worker events.
    prefetch : int
        Chunks a worker holds beside the one it runs, so that it never waits for the loop
        between two chunks.
    """

    #: Makes the pool; called with the keyword arguments of `_pool_args`.
    pool_class: ClassVar[Callable[..., WorkerPool]]
    chunk_time = 0.05
    max_chunk = 512
    poll_interval = 0.5
    prefetch = 1

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('case_timeout', None, types=float, lower=0.0, exclude_lower=True,
                        allow_none=True, accepts='a number > 0 or None',
                        desc='seconds after which a running case is sent again to another '
                             'worker')
        options.declare('max_resubmits', 5, types=int, lower=0,
                        desc='times a case that ran longer than case_timeout may be sent again')

    def __init__(self, **options: Any):
        Executor.__init__(self)
        self._init_options(options)
        self._reset()

    def _reset(self) -> None:
        """The state of a stopped executor."""
        self._pool: WorkerPool | None = None
        self._idle: deque = deque()    # workers with nothing in flight
        self._primed: deque = deque()  # workers running a chunk, with room for the next one
        self._busy: dict[Hashable, deque[_Flight]] = {}  # worker -> its chunks in flight
        self._copies = Copies(0)  # the cases sent again in the current run

    # -- configuration ----------------------------------------------------------------------
    def _config_attrs(self) -> tuple[str, ...]:
        return ('_declared',)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._reset()

    def _pool_args(self) -> dict[str, Any]:
        """Keyword arguments of `pool_class`."""
        return {}

    def _make_pool(self) -> WorkerPool:
        """A new, not yet started, pool."""
        return self.pool_class(**self._pool_args())

    def __repr__(self) -> str:
        return f'{type(self).__name__}(n_workers={self.n_workers})'

    # -- life cycle -------------------------------------------------------------------------
    def _payload(self, runner: CaseRunner) -> bytes:
        """``runner`` pickled once, for every worker."""
        try:
            return cloudpickle.dumps(runner)
        except Exception as exc:
            raise TypeError(f'{self!r}: cannot pickle the case runner {runner!r} to ship it '
                            f'to the workers: {type(exc).__name__}: {exc}') from exc

    def _start(self, runner: CaseRunner) -> None:
        payload = self._payload(runner)
        pool = self._make_pool()
        self._idle = deque(pool.start(payload))
        self._pool = pool

    def _load(self, runner: CaseRunner) -> None:
        payload = self._payload(runner)
        self._drop_busy('a new runner was loaded')
        self._idle = deque(self._pool.load(payload))

    def _shutdown(self, wait: bool, cancel_futures: bool) -> None:
        pool = self._pool
        self._reset()
        if pool is not None:
            pool.close(cancel=cancel_futures or not wait)

    def _drop_busy(self, why: str) -> None:
        """Kill the workers still busy with an abandoned run's cases (their results would come
        into the next run), and replace them."""
        pool, busy, idle = self._pool, self._busy, self._idle
        for worker in list(busy):
            pool.kill(worker, f'was stopped: {why} while it ran cases of an abandoned run')
        deadline = time.monotonic() + 30.0
        while busy and time.monotonic() < deadline:
            for worker, kind, _data in pool.poll(self.poll_interval):
                if worker not in busy or kind not in ('lost', 'done'):
                    continue
                if kind == 'lost':
                    del busy[worker]
                    idle.extend(pool.replace(worker))
                else:
                    busy[worker].popleft()
                    if not busy[worker]:
                        del busy[worker]
                        idle.append(worker)
        busy.clear()
        self._primed.clear()

    # -- the loop ---------------------------------------------------------------------------
    def _run(self, cases: Iterable[tuple[int, Any]]) -> Iterator[CaseOutcome]:
        """Dispatch chunks to workers (each runs one and holds the next), yield outcomes,
        replace lost workers."""
        if self._busy:
            self._drop_busy('a new run started')
        pool, idle, primed, busy = self._pool, self._idle, self._primed, self._busy
        depth = 1 + self.prefetch
        feed = iter(cases)
        pull = feed.__next__
        policy = ChunkPolicy(self.chunk_time, self.max_chunk)
        backlog: deque = deque()   # cases to send again, before new ones
        suspects: deque = deque()  # cases of a lost chunk: each runs alone
        watch: dict[Hashable, tuple[int, float]] = {}  # worker -> (case seen running, since)
        copies = self._copies = Copies(self.max_resubmits)
        feed_error: list[BaseException] = []
        while True:
            while (idle or primed) and (suspects or backlog or not feed_error):
                if not idle and 0 < (operator.length_hint(feed, 0) + len(backlog) +
                                     len(suspects)) <= pool.size:
                    break  # the last cases wait for the first worker free, not in a queue
                if suspects:
                    chunk, alone, queued = [suspects.popleft()], True, 1
                else:
                    remaining = operator.length_hint(feed, 0) + len(backlog)
                    size = policy.size(remaining, depth * pool.size)
                    queued = min(size, len(backlog))
                    chunk = take_chunk(backlog, pull, size, feed_error)
                    alone = False
                if copies.out and chunk:
                    chunk = copies.dispatchable(chunk, queued)
                    if not chunk:  # only copies no longer needed
                        continue
                if not chunk:
                    break
                worker = idle.popleft() if idle else primed.popleft()  # idle workers first
                flights = busy.setdefault(worker, deque())
                flights.append(_Flight(chunk, time.monotonic(), alone))
                if len(flights) < depth:
                    primed.append(worker)
                pool.send(worker, chunk)
            if not busy and not idle and not (suspects or backlog or feed_error):
                # no worker now (all lost, replacements coming): is there a case left?
                backlog.extend(take_chunk(backlog, pull, 1, feed_error))
            if not busy and not (suspects or backlog):
                if feed_error:
                    raise feed_error[0]
                return
            for worker, kind, data in pool.poll(self.poll_interval):
                if kind == 'done':
                    flights = busy.get(worker)
                    if not flights:  # (a chunk of an abandoned run)
                        continue
                    now = time.monotonic()
                    flight = flights.popleft()
                    policy.measured(now - flight.since, len(flight.chunk))
                    if flights:
                        flights[0].since = now  # the next chunk starts now
                        if worker not in primed:
                            primed.append(worker)
                    else:
                        del busy[worker]
                        if worker in primed:
                            primed.remove(worker)
                        idle.append(worker)
                    if copies.out:
                        yield from filter(copies.keep, data)
                    else:
                        yield from data
                elif kind == 'ready':
                    if worker not in busy and worker not in idle:
                        idle.append(worker)
                elif kind == 'lost':
                    watch.pop(worker, None)
                    for waiting in (idle, primed):
                        if worker in waiting:
                            waiting.remove(worker)
                    lost = self._lost(worker, data, busy.pop(worker, None), backlog, suspects)
                    yield from filter(copies.keep, lost)
                    idle.extend(pool.replace(worker))
                elif kind == 'unavailable':
                    if pool.size == 0 and isinstance(data, BaseException):
                        raise self._set_broken(BrokenExecutor(
                            f'{self!r}: every worker was lost and no new one could be had: '
                            f'{data}'))
                else:  # 'init_failed'
                    raise self._set_broken(BrokenExecutor(
                        f'{self!r}: {pool.describe(worker)} could not load the case runner '
                        f'(initializer failed): {data.strip().splitlines()[-1]}', data))
            pool.check(busy)
            if self.case_timeout is not None:
                self._check_timeouts(pool, busy, watch, backlog, primed)

    def _lost(self, worker: Hashable, why: str, flights: deque[_Flight] | None,
              backlog: deque, suspects: deque) -> Iterator[CaseOutcome]:
        """The loss policy (see the module docstring): yields the outcome of the case blamed."""
        pool = self._pool
        text = f'{pool.describe(worker)} of {self!r} {why}'
        if not flights:
            logger.warning('%s while idle; replacing it', text)
            return
        running = flights.popleft()
        for waiting in reversed(flights):  # sent ahead, never started: as they were
            (suspects if waiting.alone else backlog).extendleft(reversed(waiting.chunk))
        chunk = running.chunk
        current = pool.lost_case(worker)
        k = next((j for j, (case_id, _) in enumerate(chunk) if case_id == current), None)
        if k is None and len(chunk) > 1:
            logger.warning('%s while running %d cases; each runs again alone', text, len(chunk))
            suspects.extend(chunk)
            return
        k = k or 0
        backlog.extendleft(reversed(chunk[:k] + chunk[k + 1:]))
        victim = chunk[k][0]
        logger.warning('%s while running case %s; replacing it', text, victim)
        now = time.time()
        yield lost_outcome(victim, f'{text} while running it',
                           now - (time.monotonic() - running.since), now)

    def _check_timeouts(self, pool: WorkerPool, busy: dict, watch: dict, backlog: deque,
                        primed: deque) -> None:
        """The resend policy (see the module docstring): a case running longer than
        `case_timeout` is sent again while another copy may be had; a worker still running a
        case that gave its outcome elsewhere, or whose every copy ran too long with no resend
        left, is stopped (reported lost, then replaced)."""
        now = time.monotonic()
        limit = self.case_timeout
        copies = self._copies
        overdue: dict[int, list[Hashable]] = {}  # case -> the workers running it too long
        held: dict[Hashable, tuple] = {}  # worker -> (its cases that ran too long, why)
        stop: dict[Hashable, str] = {}
        for worker, flights in busy.items():
            chunk, sent = flights[0].chunk, flights[0].since
            if pool.tracks_cases:
                case_id = pool.current_case(worker)
                seen = watch.get(worker)
                if seen is None or seen[0] != case_id:
                    watch[worker] = seen = (case_id, now)
                if case_id in (IDLE, None) or seen[1] == float('inf'):
                    continue
                if copies.settled(case_id):
                    stop[worker] = f'was stopped: case {case_id} ended first on another worker'
                    continue
                if now - seen[1] <= limit:
                    continue
                late = [entry for entry in chunk if entry[0] == case_id]
                why = f'case {case_id} ran longer than case_timeout={limit:g} s'
            else:
                if watch.get(worker) == (-2, sent):
                    continue
                late = [entry for entry in chunk if not copies.settled(entry[0])]
                if not late:
                    stop[worker] = 'was stopped: its cases ended first on other workers'
                    continue
                if now - sent <= limit * len(chunk):
                    continue
                why = (f'its {len(chunk)} case(s) ran longer than case_timeout={limit:g} s '
                       f'each')
            held[worker] = (late, why)
            for case_id, _inputs in late:
                overdue.setdefault(case_id, []).append(worker)
        for worker, (late, why) in held.items():
            again = []
            for entry in late:
                case_id = entry[0]
                if copies.copies(case_id) > len(overdue[case_id]):
                    continue  # a copy that is not late yet is out
                if not copies.can_resend(case_id):
                    stop[worker] = (f'was stopped: {why}, with no resend left '
                                    f'(max_resubmits={self.max_resubmits})')
                    break
                copies.resend(case_id)
                again.append(entry)
            if again:
                logger.warning('%s of %r: %s; sending %d case(s) again to another worker',
                               pool.describe(worker), self, why, len(again))
                backlog.extendleft(reversed(again))
                if worker in primed:  # (its copy must go elsewhere)
                    primed.remove(worker)
        for worker, why in stop.items():
            pool.kill(worker, why)
            watch[worker] = (-2, busy[worker][0].since) if not pool.tracks_cases else \
                (watch[worker][0], float('inf'))
