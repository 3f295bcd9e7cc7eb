"""The remote interface of a shipped case runner: many cases per round trip.

A case-running driver's model travels once, cloudpickled, to an ObjServer started with
``runner`` settings (owner role and a server that allows shell access: a shipped model is
code). Each call of `RunnerService.run_cases` then carries only a chunk of ``(case_id, inputs)``
pairs and brings back only their outcomes, both through the restricted codec. The driver's
next run replaces the runner in place (`RunnerService.set_runner`).

Under MPI (see `openmdao_like.remote.spmd`) each case runs on every rank, one case at a time;
the outcome is rank 0's, failed when any rank's run of that case failed.
"""

from __future__ import annotations

import base64
import threading
from typing import Any, NoReturn

import cloudpickle

from ..cases import FAILED, OK, failed_value
from ..errors import error_summary
from . import codec, spmd
from .service import SecureService, remote

__all__ = ['RunnerService', 'load_runner', 'follow_cases']


def load_runner(blob: str) -> Any:
    """The case runner from its base64 cloudpickle."""
    return cloudpickle.loads(base64.b64decode(blob))


class RunnerService(SecureService):
    """Runs chunks of cases with the runner this ObjServer was started with (on every rank
    of ``group`` under MPI)."""

    def __init__(self, runner: Any, group: spmd.Group | None = None):
        self.runner = runner
        self.group = group
        self.lock = threading.Lock()

    @remote()
    def ping(self) -> str:
        """'pong' (a liveness check)."""
        return 'pong'

    @remote('owner')
    def set_runner(self, runner: bytes) -> bool:
        """Replace the case runner with the cloudpickled ``runner`` (a driver's next run on a
        warm server: no new process); False under MPI, where every rank holds the runner and a
        new object server is started instead."""
        if self.group is not None:
            return False
        new = cloudpickle.loads(bytes(runner))
        with self.lock:
            self.runner = new
        return True

    @remote('owner')
    def run_cases(self, packet: tuple) -> tuple:
        """Run each ``(case_id, inputs)`` of the packed chunk; the packed outcomes, in order."""
        cases = codec.unpack(packet)
        runner, group = self.runner, self.group
        with self.lock:
            if group is None:
                return codec.pack([tuple(runner(case_id, inputs)) for case_id, inputs in cases])
            return codec.pack([tuple(run_on_group(group, runner, case_id, inputs))
                               for case_id, inputs in cases])


def follow_cases(group: spmd.Group, runner: Any) -> NoReturn:
    """A rank other than 0 of an MPI case runner: run each case rank 0 sends, for good."""
    group.follow(lambda case: runner(*case), outcome_problem)


def run_on_group(group: spmd.Group, runner: Any, case_id: int, inputs: Any) -> Any:
    """One case run on every rank: rank 0's outcome, failed with the lowest failing rank's
    error when rank 0's run succeeded and another's did not."""
    outcome, problems = group.run((case_id, inputs), lambda: runner(case_id, inputs),
                                  outcome_problem)
    if not problems or outcome.status != OK:
        return outcome
    rank = min(problems)
    outputs = {key: failed_value(value) for key, value in (outcome.outputs or {}).items()}
    return outcome._replace(outputs=outputs, status=FAILED,
                            error=f'rank {rank} of {group.size}: {problems[rank][3]}')


def outcome_problem(outcome: Any) -> spmd.Problem | None:
    """A failed outcome as a rank's problem (the runner catches the model's exceptions)."""
    if outcome.status == OK:
        return None
    return ('', 'case failed', error_summary(outcome.error), outcome.error or '')
