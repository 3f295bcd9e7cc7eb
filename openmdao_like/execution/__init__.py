"""Where cases run: the `Executor` interface, the one dispatch loop and this host's pools.

`SerialExecutor` runs cases in this process; every other executor is `PoolExecutor` (the
dispatch loop: chunks, losses, timeouts, warm reuse, shutdown) plus a `WorkerPool`:
`LocalExecutor` (worker processes, the default of case-running drivers with
``sequential=False``), `ThreadExecutor` (threads), and in higher layers `RAMExecutor` (servers
from the resource allocation manager). Third-party executors register under the entry-point
group ``openmdao_like.executor`` and are made by ``openmdao_like.create(name, **options)``.
"""

from .base import BrokenExecutor, CaseOutcome, CaseRunner, Executor, SerialExecutor, lost_outcome
from .local import LocalExecutor, ThreadExecutor
from .loop import PoolExecutor
from .pools import ProcessWorkerPool, ThreadWorkerPool, WorkerPool

__all__ = ['Executor', 'SerialExecutor', 'PoolExecutor', 'LocalExecutor', 'ThreadExecutor',
           'CaseOutcome', 'CaseRunner', 'BrokenExecutor', 'lost_outcome', 'WorkerPool',
           'ProcessWorkerPool', 'ThreadWorkerPool']
