"""Job states: one closed vocabulary for every scheduler, and one way to wait on a job.

Each scheduler (SLURM, PBS) maps its native codes to a `JobState` through one table
(`map_native`); a code missing from the table becomes `JobState.UNKNOWN`, with a warning naming
it. `wait_until` is the only loop that polls a job's state: with backoff, up to a deadline.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from typing import Callable, Mapping, NamedTuple, Protocol

logger = logging.getLogger(__name__)

__all__ = ['JobState', 'JobStatus', 'TERMINAL_STATES', 'WAITING_STATES', 'map_native',
           'wait_until']


class JobState(enum.Enum):
    """The state of a batch job, whatever its scheduler."""

    #: Submitted but held back: on hold, or waiting for its begin time or a dependency.
    PENDING = 'PENDING'
    #: Eligible to run, waiting in the queue for resources.
    QUEUED = 'QUEUED'
    #: Started (running, suspended, or on its way out).
    RUNNING = 'RUNNING'
    #: Ended by itself (exit status in the details).
    COMPLETED = 'COMPLETED'
    #: Ended with an error the scheduler recorded (non-zero exit, out of memory, boot failure).
    FAILED = 'FAILED'
    #: Cancelled (by ``scancel``/``qdel``, by us or by someone else).
    CANCELLED = 'CANCELLED'
    #: Killed at its time limit or deadline.
    TIMEOUT = 'TIMEOUT'
    #: Gone without a verdict of its own: node failure, preemption, or forgotten by the scheduler.
    LOST = 'LOST'
    #: The scheduler did not answer, or answered with a code no table knows.
    UNKNOWN = 'UNKNOWN'

    @property
    def terminal(self) -> bool:
        """Whether the job has ended (it holds nothing any more)."""
        return self in TERMINAL_STATES


#: States of a job that has ended.
TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED,
                             JobState.TIMEOUT, JobState.LOST})
#: States of a job that waits to start.
WAITING_STATES = frozenset({JobState.PENDING, JobState.QUEUED})


class JobStatus(NamedTuple):
    """One answer of a scheduler about a job: the state, the scheduler's own code for it
    (``'CANCELLED'``, ``'C'``) and details (reason, exit status)."""

    state: JobState
    native: str = ''
    detail: str = ''

    @property
    def active(self) -> bool:
        """Whether the job still waits or runs (an unanswered question counts as active)."""
        return self.state not in TERMINAL_STATES

    @property
    def queued(self) -> bool:
        """Whether the job waits to start."""
        return self.state in WAITING_STATES


class Pollable(Protocol):
    """What `wait_until` polls: anything whose ``status()`` asks the scheduler now."""

    def status(self) -> JobStatus:
        """The job's status now."""


def map_native(table: Mapping[str, JobState], code: str, scheduler: str) -> JobState:
    """``table[code]``, or `JobState.UNKNOWN` with a warning naming the code."""
    state = table.get(code)
    if state is None:
        logger.warning('%s reported job state %r, which openmdao_like does not know: treated '
                       'as UNKNOWN', scheduler, code)
        return JobState.UNKNOWN
    return state


def wait_until(job: Pollable, predicate: Callable[[JobState], bool], deadline: float, *,
               poll: float = 1.0, first_poll: float = 0.05,
               unknown_timeout: float | None = None) -> JobStatus:
    """Poll ``job.status()`` until ``predicate(status.state)`` holds; the last status.

    ``deadline`` is a `time.monotonic` time (``math.inf``: until the predicate holds or the
    job ends). Polls start ``first_poll`` seconds apart and double up to ``poll``. The wait
    also ends when the job reaches a terminal state (a state it can never leave), and, with
    ``unknown_timeout``, once the scheduler has answered `JobState.UNKNOWN` for that many
    seconds in a row. It never raises for any of these: the caller tells them apart by the
    returned status (``predicate(status.state)``, ``status.active``, ``status.state``).
    Exceptions of ``job.status()`` (and KeyboardInterrupt) propagate.
    """
    delay = max(min(first_poll, poll), 1e-3)
    unknown_since: float | None = None
    while True:
        status = job.status()
        now = time.monotonic()
        if predicate(status.state) or not status.active:
            return status
        if status.state is JobState.UNKNOWN:
            unknown_since = now if unknown_since is None else unknown_since
            if unknown_timeout is not None and now - unknown_since >= unknown_timeout:
                return status
        else:
            unknown_since = None
        left = deadline - now
        if left <= 0:
            return status
        time.sleep(min(delay, left) if not math.isinf(left) else delay)
        delay = min(2 * delay, poll)
