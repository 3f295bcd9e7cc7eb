"""Durable runs: runs and their jobs (one per case) in a store that outlives the processes
using it.

::

    from openmdao_like.jobs import JobStore, State

    store = JobStore('sqlite:///runs.db')    # or 'postgresql://user:pw@host:5432/db'
    for run in store.runs():
        print(run.id[:8], run.name, store.counts(run.id))

`JobStore` (`openmdao_like.jobs.store`) keeps runs and jobs in SQLite (the embedded default) or
PostgreSQL; `State` and its transition table (`openmdao_like.jobs.states`) say what a job may
become; `submit` hands a model to a runner (`openmdao_like.jobs.runner`) and gives a `Run`
handle, as `open_run` does for a run already there.
"""

from openmdao_like.jobs.handle import Run, open_run, submit
from openmdao_like.jobs.states import ENDED, TRANSITIONS, State, check_transition
from openmdao_like.jobs.store import (DEFAULT_STORE, SCHEMA_VERSION, JobInfo, JobStore, Result,
                                      RunInfo)

__all__ = ['DEFAULT_STORE', 'ENDED', 'JobInfo', 'JobStore', 'Result', 'Run', 'RunInfo',
           'SCHEMA_VERSION', 'State', 'TRANSITIONS', 'check_transition', 'open_run', 'submit']
