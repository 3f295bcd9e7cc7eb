"""The states of a job in a job store, and the moves between them, written down and enforced.

::

    WAITING ──> READY ──> SUBMITTED ──> RUNNING ──> COMPLETED
       │          ▲ │         │            │
       │          │ │         └──> READY   ├──> FAILED ──> READY (retry: a new attempt)
       │          │ │                      └──> READY (its worker or runner was lost)
       └─> PAUSED ┘ └──> PAUSED ──> READY (resume)
    any state but COMPLETED and CANCELLED ──> CANCELLED

A job is one case of a run (or one wrapped execution). ``WAITING``: not to run yet (its run has
not started, or it waits for another job); ``READY``: may run; ``SUBMITTED``: handed to an
executor or a scheduler, not started; ``RUNNING``: started on a worker; ``COMPLETED`` and
``FAILED``: ended (FAILED may be retried); ``CANCELLED``: will not run; ``PAUSED``: held until
resumed. A run's jobs reach these states only through `check_transition`'s table, so an illegal
move (retrying a COMPLETED job, running a CANCELLED one) is an error, not a silent change.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from ..errors import IllegalTransitionError


class State(enum.Enum):
    """The state of a job in a job store (not a batch scheduler's: see
    `openmdao_like.resources.JobState`)."""

    WAITING = 'WAITING'
    READY = 'READY'
    SUBMITTED = 'SUBMITTED'
    RUNNING = 'RUNNING'
    COMPLETED = 'COMPLETED'
    FAILED = 'FAILED'
    CANCELLED = 'CANCELLED'
    PAUSED = 'PAUSED'

    @property
    def ended(self) -> bool:
        """Whether the job has ended (COMPLETED, FAILED or CANCELLED)."""
        return self in ENDED


#: States of a job that has ended (a FAILED one may still be retried).
ENDED = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})

#: State -> the states a job in it may move to.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.WAITING: frozenset({State.READY, State.PAUSED, State.CANCELLED}),
    State.READY: frozenset({State.SUBMITTED, State.RUNNING, State.PAUSED, State.CANCELLED}),
    State.SUBMITTED: frozenset({State.RUNNING, State.READY, State.FAILED, State.CANCELLED}),
    State.RUNNING: frozenset({State.COMPLETED, State.FAILED, State.READY, State.CANCELLED}),
    State.COMPLETED: frozenset(),
    State.FAILED: frozenset({State.READY, State.CANCELLED}),
    State.CANCELLED: frozenset(),
    State.PAUSED: frozenset({State.READY, State.WAITING, State.CANCELLED}),
}

#: State -> the states a job may come from to reach it (the table read the other way).
SOURCES: dict[State, frozenset[State]] = {
    new: frozenset(old for old, targets in TRANSITIONS.items() if new in targets)
    for new in State}


def as_state(value: State | str, what: str = 'state') -> State:
    """``value`` as a `State` (a member or its name, any case); `ValueError` naming the states
    otherwise."""
    if isinstance(value, State):
        return value
    try:
        return State[str(value).upper()]
    except KeyError:
        raise ValueError(f'expected a {what}: one of {", ".join(s.name for s in State)}, got '
                         f'{value!r}') from None


def check_transition(job: str, old: State, new: State) -> None:
    """Raise `IllegalTransitionError` naming ``job`` unless a job may move from ``old`` to
    ``new``."""
    if new not in TRANSITIONS[old]:
        allowed = names(TRANSITIONS[old])
        why = (f'from {old.name} a job may go to {", ".join(allowed)}' if allowed else
               f'a {old.name} job has ended for good')
        raise IllegalTransitionError(f'{job}: cannot go from {old.name} to {new.name} ({why})')


def names(states: Iterable[State]) -> list[str]:
    """The names of ``states``, in the order `State` lists them."""
    wanted = set(states)
    return [s.name for s in State if s in wanted]
