"""`Run`: a handle on one run of a job store, from `submit` or `open_run`.

::

    from openmdao_like.jobs import submit, open_run

    run = submit(top, store='sqlite:///runs.db')   # a runner (openmdao-like runner start) runs it
    run.wait(timeout=600)                          # True once every job has ended
    run.state, run.counts()                        # 'COMPLETED', {'COMPLETED': 200, ...}
    for case in run.cases(): ...                   # the COMPLETED cases, in case order
    open_run(run.id[:8], 'sqlite:///runs.db').cancel()
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..cases import Case
from .durable import submit_run
from .pilots import CANCEL_GRACE, cancel_run
from .store import JobStore

#: Run states after which a run does no more work.
ENDED_RUN_STATES = ('COMPLETED', 'FAILED', 'CANCELLED')


class Run:
    """One run of ``store`` (a `JobStore`, or its URL: the handle then opens the store and
    `close` closes it), named by ``run_id`` (or a prefix). A context manager."""

    def __init__(self, run_id: str, store: JobStore | str | None = None):
        self._owns = not isinstance(store, JobStore)
        self.store = JobStore(store) if self._owns else store
        try:
            self.id = self.store.resolve(run_id)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f'Run({self.id[:8]!r}, {self.state}, {self.store!r})'

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the store if this handle opened it."""
        if self._owns:
            self.store.close()

    @property
    def state(self) -> str:
        """The run's state: WAITING (for a runner), RUNNING, COMPLETED, FAILED or CANCELLED."""
        return self.store.run_state(self.id)

    def counts(self) -> dict[str, int]:
        """Jobs per state (every `State`, 0 included)."""
        return self.store.counts(self.id)

    def wait(self, timeout: float | None = None, poll: float = 0.2) -> bool:
        """Wait until the run has ended (COMPLETED, FAILED or CANCELLED), at most ``timeout``
        seconds; whether it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.state not in ENDED_RUN_STATES:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def cases(self) -> list[Case]:
        """The COMPLETED cases of the run, in case order."""
        return self.store.completed_cases(self.id)

    def cancel(self, grace: float = CANCEL_GRACE) -> int:
        """Cancel the run and its batch jobs (`openmdao_like.jobs.pilots.cancel_run`); how
        many jobs were cancelled."""
        return cancel_run(self.store, self.id, grace)[0]


def submit(model: Any, store: JobStore | str | None = None, name: str | None = None,
           driver: str = 'driver', resources: Mapping[str, Any] | None = None) -> Run:
    """Save ``model`` (a top assembly) with a new WAITING run of ``store`` for runners to run
    (`openmdao_like.jobs.runner`), on servers fitting the resource description ``resources``
    when given; its handle (which closes the store it opened)."""
    name = name or type(model).__name__
    if isinstance(store, JobStore):
        return Run(submit_run(model, store, name, driver, resources), store)
    with JobStore(store) as opened:
        run_id = submit_run(model, opened, name, driver, resources)
    return Run(run_id, store)


def open_run(run_id: str, store: JobStore | str | None = None) -> Run:
    """The handle of run ``run_id`` (or a unique prefix of it) of ``store``."""
    return Run(run_id, store)
