"""JobState, the schedulers' tables and wait_until (a unit test of the polling logic; the real
schedulers are polled by tests/test_resources_slurm.py, test_resources_pbs.py and
test_job_wrapper.py)."""

import logging
import math
import time

import pytest

from openmdao_like.resources import TERMINAL_STATES, JobState, JobStatus, wait_until
from openmdao_like.resources.jobstate import map_native
from openmdao_like.resources.pbs import PBS_STATES, STATES
from openmdao_like.resources.slurm import SLURM_STATES


class Script:
    """A job whose scheduler answers the given states in turn (the last one from then on)."""

    def __init__(self, *states: JobState):
        self.states = list(states)
        self.asked: list[float] = []

    def status(self) -> JobStatus:
        self.asked.append(time.monotonic())
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return JobStatus(state, state.name.lower())


def test_the_enum_is_closed_and_terminal_states_are_the_ended_ones():
    assert [s.name for s in JobState] == ['PENDING', 'QUEUED', 'RUNNING', 'COMPLETED', 'FAILED',
                                          'CANCELLED', 'TIMEOUT', 'LOST', 'UNKNOWN']
    assert TERMINAL_STATES == {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED,
                               JobState.TIMEOUT, JobState.LOST}
    assert JobStatus(JobState.QUEUED).queued and JobStatus(JobState.UNKNOWN).active
    assert not JobStatus(JobState.LOST).active


def test_scheduler_tables_cover_their_codes_and_unknown_codes_warn(caplog):
    assert set(PBS_STATES) == set(STATES)  # every qstat code qstat documents
    for code in ('PENDING', 'RUNNING', 'COMPLETING', 'COMPLETED', 'CANCELLED', 'FAILED',
                 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'OUT_OF_MEMORY', 'BOOT_FAIL', 'DEADLINE',
                 'SUSPENDED', 'REQUEUED'):  # squeue(1) JOB STATE CODES
        assert code in SLURM_STATES
    with caplog.at_level(logging.WARNING, logger='openmdao_like.resources.jobstate'):
        assert map_native(SLURM_STATES, 'HIBERNATING', 'SLURM') is JobState.UNKNOWN
    assert "SLURM reported job state 'HIBERNATING'" in caplog.text


def test_wait_until_returns_once_the_predicate_holds_with_backoff():
    job = Script(JobState.QUEUED, JobState.QUEUED, JobState.QUEUED, JobState.RUNNING)
    status = wait_until(job, lambda s: s is JobState.RUNNING, time.monotonic() + 10,
                        poll=0.2, first_poll=0.01)
    assert status.state is JobState.RUNNING and len(job.asked) == 4
    gaps = [b - a for a, b in zip(job.asked, job.asked[1:])]
    assert gaps[0] < gaps[2]  # the delay doubles


def test_wait_until_stops_at_a_terminal_state_and_at_the_deadline():
    ended = wait_until(Script(JobState.RUNNING, JobState.FAILED), lambda s: False,
                       math.inf, poll=0.01)
    assert ended.state is JobState.FAILED
    start = time.monotonic()
    late = wait_until(Script(JobState.QUEUED), lambda s: s is JobState.RUNNING,
                      start + 0.3, poll=0.05)
    assert late.state is JobState.QUEUED
    assert 0.3 <= time.monotonic() - start < 1.0


def test_wait_until_gives_up_on_a_scheduler_that_does_not_answer():
    start = time.monotonic()
    status = wait_until(Script(JobState.RUNNING, JobState.UNKNOWN), lambda s: s.terminal,
                        math.inf, poll=0.05, unknown_timeout=0.3)
    assert status.state is JobState.UNKNOWN
    assert 0.3 <= time.monotonic() - start < 1.5


def test_wait_until_propagates_the_schedulers_errors():
    class Broken:
        def status(self):
            raise OSError('scheduler unreachable')

    with pytest.raises(OSError, match='unreachable'):
        wait_until(Broken(), lambda s: True, math.inf)
