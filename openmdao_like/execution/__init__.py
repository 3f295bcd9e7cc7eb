"""Where cases run: the `Executor` interface and the executors of this host.

`SerialExecutor` runs cases in this process; `LocalExecutor` in worker processes (the default
of case-running drivers with ``sequential=False``); `ThreadExecutor` in threads. Executors for
remote servers, job schedulers and MPI (``openmdao_like.distributed``) implement the same
interface.
"""

from .base import BrokenExecutor, CaseOutcome, CaseRunner, Executor, SerialExecutor, lost_outcome
from .local import LocalExecutor, ThreadExecutor
from .pools import ProcessWorkerPool, ThreadWorkerPool

__all__ = ['Executor', 'SerialExecutor', 'LocalExecutor', 'ThreadExecutor', 'CaseOutcome',
           'CaseRunner', 'BrokenExecutor', 'lost_outcome', 'ProcessWorkerPool',
           'ThreadWorkerPool']
