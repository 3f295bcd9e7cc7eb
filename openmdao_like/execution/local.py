"""`LocalExecutor` and `ThreadExecutor`: the dispatch loop over worker processes or threads of
this host.

Each worker gets the cloudpickled case runner once, when it starts (and again only when a
driver's next run loads another runner into the warm executor), then serves chunks of
``(case_id, inputs)`` over its own pipe and sends back one list of `CaseOutcome` per chunk
(`openmdao_like.execution.pools`). A worker that dies (``os._exit``, a signal, the OOM killer)
is seen at once through its process sentinel, one that stays stopped within seconds; the case
it held comes back failed with ``lost=True`` and a new worker takes its place
(`openmdao_like.execution.loop`).
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

from ..options import OptionsDictionary
from .loop import PoolExecutor
from .pools import ProcessWorkerPool, ThreadWorkerPool

__all__ = ['LocalExecutor', 'ThreadExecutor']


class LocalExecutor(PoolExecutor):
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
    """

    pool_class = ProcessWorkerPool

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('n_workers', None, types=int, lower=1, allow_none=True,
                        desc='number of workers (None: one per CPU)')
        methods = multiprocessing.get_all_start_methods()
        options.declare('mp_context', None, values=methods, allow_none=True,
                        accepts=f'None or one of {methods}',
                        desc='multiprocessing start method (None: the platform default)')

    def __init__(self, n_workers: int | None = None, mp_context: str | None = None,
                 case_timeout: float | None = None, **options: Any):
        super().__init__(n_workers=n_workers, mp_context=mp_context, case_timeout=case_timeout,
                         **options)
        if self.n_workers is None:
            self.n_workers = os.cpu_count() or 1

    def _pool_args(self) -> dict[str, Any]:
        return {'n_workers': self.n_workers, 'mp_context': self.mp_context}


class ThreadExecutor(LocalExecutor):
    """`LocalExecutor` with threads for workers: same shipping, dispatch and loss handling,
    no processes (for tests of that logic, and for models that release the GIL)."""

    pool_class = ThreadWorkerPool
