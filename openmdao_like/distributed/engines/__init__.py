"""Executors on the engines users already run: `DaskExecutor` (a Dask cluster: local, a
scheduler address, or ``dask_jobqueue`` on SLURM or PBS) and `ParslExecutor` (a Parsl
configuration). Both are pools of the dispatch loop (`execution.loop`): recorders, progress,
retries, ``case_timeout``, resends and the job store work as with every executor. The engines
are imported when an executor starts (extras ``[dask]`` and ``[parsl]``)."""

from .dask import DaskExecutor
from .parsl import ParslExecutor

__all__ = ['DaskExecutor', 'ParslExecutor']
