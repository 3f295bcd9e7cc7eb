"""`DaskExecutor`: the cases of a driver as tasks of a Dask cluster, through the dispatch loop.

::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=1, memory='1GB', processes=1); cluster.scale(8)
    top.driver = DOEDriver(..., sequential=False, executor=DaskExecutor(cluster))

`DaskPool` is a `WorkerPool` whose workers are task slots (`slots.TaskSlots`): as many as the
cluster has threads (or ``n_workers``). The runner is scattered to every worker once
(``broadcast``) and each task carries a chunk of case inputs and returns outcomes only
(`tasks.run_task`). The loop keeps its
policies: chunks, case_timeout and resends, losses. Our case ids are the source of truth: a
task the engine ran again (after one of its workers died) gives its outcome once, and one that
failed for the engine (``KilledWorker``, a lost connection) is a ``lost`` slot whose cases the
loop runs again. Tasks are submitted with ``pure=False`` and ``retries=0``, one per chunk: no
graph larger than the work in flight.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Hashable
from typing import Any

from ...execution.base import BrokenExecutor
from ...execution.loop import PoolExecutor
from ...extras import require
from ...options import OptionsDictionary
from .slots import TaskSlots
from .tasks import run_task

logger = logging.getLogger(__name__)

__all__ = ['DaskExecutor', 'DaskPool']


def _distributed() -> Any:
    """The ``distributed`` module; `ImportError` saying how to install it."""
    return require('distributed', 'DaskExecutor', 'dask')


class DaskPool(TaskSlots):
    """Task slots on a Dask cluster (see the module docstring).

    Parameters
    ----------
    target : Client, cluster, str or None
        A ``distributed.Client``, a cluster (``LocalCluster``, a ``dask_jobqueue`` cluster), a
        scheduler address, or None for a ``LocalCluster`` of this machine's cores (one thread
        per worker process), made here and closed with the pool.
    n_workers : int or None
        Task slots (None: the cluster's threads when it has its first worker).
    connect_timeout, workers_timeout : float
        Seconds to reach the scheduler, and to wait for the cluster's first worker.
    owner : str
        How messages name the executor.
    """

    def __init__(self, target: Any, n_workers: int | None, connect_timeout: float,
                 workers_timeout: float, owner: str):
        super().__init__()
        self._target, self._n_wanted = target, n_workers
        self._connect_timeout, self._workers_timeout = connect_timeout, workers_timeout
        self._owner = owner
        self._client: Any = None
        self._made: list[Any] = []  # what the pool made, closed with it (client, cluster)
        self._key = ''
        self._payload: Any = None  # the scattered runner (a dask Future)

    def describe(self, worker: Hashable) -> str:
        return f'Dask task slot {worker}'

    # -- life cycle -----------------------------------------------------------------------------
    def start(self, payload: bytes) -> list[int]:
        distributed = _distributed()
        try:
            self._client = self._connect(distributed)
            try:
                self._client.wait_for_workers(1, timeout=self._workers_timeout)
            except (TimeoutError, distributed.TimeoutError) as exc:
                raise BrokenExecutor(f'{self._owner}: the Dask cluster at '
                                     f'{self._client.scheduler.address} has no worker after '
                                     f'{self._workers_timeout:g} s (workers_timeout)') from exc
            self._n = self._n_wanted or max(1, sum(self._client.nthreads().values()))
            return self.load(payload)
        except BaseException:
            self.close(cancel=True)
            raise

    def _connect(self, distributed: Any) -> Any:
        """The client of `_target` (made here when it is not a client already)."""
        target = self._target
        if isinstance(target, distributed.Client):
            return target
        if target is None:
            cluster = distributed.LocalCluster(n_workers=os.cpu_count() or 1,
                                               threads_per_worker=1, processes=True,
                                               dashboard_address=':0')
            self._made.append(cluster)
            target = cluster
        try:
            client = distributed.Client(target, timeout=self._connect_timeout,
                                        set_as_default=False)
        except (OSError, TimeoutError) as exc:
            where = target if isinstance(target, str) else repr(target)
            raise BrokenExecutor(f'{self._owner}: cannot reach the Dask scheduler at {where} '
                                 f'within {self._connect_timeout:g} s (connect_timeout): '
                                 f'{exc}') from exc
        self._made.insert(0, client)
        return client

    def load(self, payload: bytes) -> list[int]:
        self._key = hashlib.sha256(payload).hexdigest()[:24]
        self._payload = self._client.scatter(payload, broadcast=True, hash=False)
        return list(range(self._n))

    def close(self, cancel: bool = False) -> None:
        try:
            self._drop_all()
        except Exception as exc:  # (the cluster is gone already)
            logger.debug('%s: tasks not cancelled: %s', self._owner, exc)
        for made in self._made:
            try:
                made.close()
            except Exception as exc:
                logger.debug('%s: %r not closed: %s', self._owner, made, exc)
        self._made.clear()
        self._client = None

    # -- work -----------------------------------------------------------------------------------
    def _submit(self, chunk: list[tuple[int, Any]]) -> Any:
        return self._client.submit(run_task, self._key, self._payload, chunk, pure=False,
                                   retries=0, key=f'openmdao_like-chunk-{uuid.uuid4().hex}')

    def _outcomes(self, futures: list[Any]) -> list[Any]:
        """The outcomes of the finished tasks fetched in one gather (a fetch per task costs a
        round trip of milliseconds), the exceptions of the others."""
        finished = [f for f in futures if f.status == 'finished']
        try:
            fetched = iter(self._client.gather(finished)) if finished else iter(())
        except Exception:  # (a result lost with its worker): one by one, to blame the right one
            return super()._outcomes(futures)
        found = []
        for future in futures:
            if future.status == 'finished':
                found.append(next(fetched))
            else:
                found.append(future.exception() if future.status == 'error' else
                             RuntimeError(f'its task was {future.status}'))
        return found

    def _cancel(self, future: Any) -> None:
        future.cancel()  # (a task already running goes on in its worker: Dask cannot stop it)


class DaskExecutor(PoolExecutor):
    """Run cases as tasks of a Dask cluster (see the module docstring).

    Parameters
    ----------
    client_or_address : Client, cluster, str or None
        Where to run: a ``distributed.Client``, a cluster object (``LocalCluster``,
        ``dask_jobqueue.SLURMCluster``, ...), a scheduler address (``'tcp://host:8786'``), or
        None for a ``LocalCluster`` of this machine (made at start, closed at shutdown).
    n_workers : int, optional
        Cases in flight at once (default: the cluster's threads at start).
    connect_timeout : float
        Seconds to reach the scheduler (default 30).
    workers_timeout : float
        Seconds to wait for the cluster's first worker (a batch cluster queues; default 300).
    case_timeout, max_resubmits
        As for every executor (`PoolExecutor`).
    """

    max_chunk = 256

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('n_workers', None, types=int, lower=1, allow_none=True,
                        desc='cases in flight at once (None: the threads of the cluster)')
        options.declare('connect_timeout', 30.0, types=float, lower=0.0, exclude_lower=True,
                        desc='seconds to reach the scheduler')
        options.declare('workers_timeout', 300.0, types=float, lower=0.0, exclude_lower=True,
                        desc="seconds to wait for the cluster's first worker")

    def __init__(self, client_or_address: Any = None, **options: Any):
        super().__init__(**options)
        self.target = client_or_address

    def __repr__(self) -> str:
        target = self.target
        where = target if target is None or isinstance(target, str) else type(target).__name__
        return f'DaskExecutor({where!r})'

    def __getstate__(self) -> dict[str, Any]:
        """Options and, of the target, only a scheduler address (a client or cluster object
        stays with the process that made it)."""
        state = super().__getstate__()
        state['target'] = _address(self.target)
        return state

    def _make_pool(self) -> DaskPool:
        return DaskPool(self.target, self.n_workers,
                        self.connect_timeout, self.workers_timeout, repr(self))


def _address(target: Any) -> str | None:
    """The scheduler address of a client, cluster or address (None: a LocalCluster)."""
    if target is None or isinstance(target, str):
        return target
    address = getattr(target, 'scheduler_address', None)
    if address is None:
        scheduler = getattr(target, 'scheduler', None)
        address = getattr(scheduler, 'address', None)
    return address
