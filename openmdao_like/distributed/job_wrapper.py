"""`JobSchedulerWrapper`: a component whose every execution is one batch job (SLURM or PBS).

Seeded by GEMSEO's execution of a discipline as a SLURM job. The wrapper has the wrapped
component's (or assembly's) inputs and outputs, so it connects in an assembly like the object
itself. Each execution writes the object, inputs set, into a fresh job directory on the
cluster's shared file system (`openmdao_like.distributed.jobfiles`), submits a job script made
from the allocator's template (``sbatch`` / ``qsub``) that runs
``python -m openmdao_like.distributed.run_job DIR``, and polls the job until it ended (as
``sbatch --wait`` would, but Ctrl-C cancels the job; so does waiting in the queue longer than
the allocator's ``queue_timeout``). Then the outputs come back, or the exception the run raised
is raised here (its type when it can be rebuilt, the remote traceback attached), or, when the
scheduler killed the job (cancelled, out of time, node failure) or it never ran, `JobError`
says the job's final state and shows the end of its output.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tempfile
import time
from typing import Any, Mapping

from ..component import Component
from ..errors import JobError
from ..resources.batch import UNKNOWN, BatchAllocator, JobState
from ..resources.description import validate_resource_desc
from ..resources.pbs import PBSAllocator
from ..resources.slurm import SlurmAllocator
from .jobfiles import JOB_FILE, RESULT_FILE, job_command, read_result, write_job
from .wrapper import ComponentWrapper

logger = logging.getLogger(__name__)

__all__ = ['JobSchedulerWrapper']

#: Seconds a scheduler may fail to answer about a running job before the job is given up.
UNANSWERED = 600.0
#: Schedulers known by name.
SCHEDULERS = {'slurm': SlurmAllocator, 'pbs': PBSAllocator}


class JobSchedulerWrapper(ComponentWrapper):
    """Run ``comp`` as a batch job each time this component executes.

    Parameters
    ----------
    comp : Component
        The component or assembly to run (its class must be importable by the job's Python).
    allocator_or_scheduler : str or BatchAllocator
        ``'slurm'``, ``'pbs'``, or a configured `SlurmAllocator` / `PBSAllocator` (its queue,
        template, interpreter, work directory and channel are used).
    template : str, optional
        The job script template, as text or a file path (see
        `openmdao_like.resources.batch`); only with a scheduler name.
    res_desc : dict, optional
        The job's resource description (``min_cpus``, ``queue_name``, ``resource_limits``,
        ``job_environment``, ``job_name``, ...), as for allocations.
    python : str, optional
        The interpreter the job runs (default: this one); only with a scheduler name.
    workdir : str, optional
        Shared directory below which each execution gets its job directory; only with a
        scheduler name.
    poll : float
        Seconds between two looks at the job's state.
    """

    def __init__(self, comp: Component, allocator_or_scheduler: str | BatchAllocator = 'slurm',
                 template: str | None = None, res_desc: Mapping[str, Any] | None = None,
                 python: str | None = None, workdir: str | None = None, poll: float = 1.0):
        what = type(self).__name__
        if isinstance(poll, bool) or not isinstance(poll, (int, float)) or not poll > 0:
            raise ValueError(f'{what}: poll must be a positive number of seconds, got '
                             f'{poll!r}')
        allocator = _allocator(allocator_or_scheduler, template, python, workdir, poll)
        desc = validate_resource_desc(res_desc, f'{what}: res_desc')
        refused = allocator.refusals(desc)
        if refused:
            key, why = next(iter(refused.items()))
            raise ValueError(f'{what}: res_desc: {key}: {why}')
        super().__init__(comp)
        self._allocator = allocator
        self._res_desc = desc
        self._poll = float(poll)

    def __repr__(self) -> str:
        return (f'<{type(self).__name__} {self.get_pathname() or type(self.wrapped).__name__} '
                f'via {self._allocator!r}>')

    def _run_wrapped(self) -> dict[str, Any]:
        """Ship the wrapped object as a job, wait for it, take its result."""
        allocator, channel = self._allocator, self._allocator.channel
        where = self.get_pathname() or type(self.wrapped).__name__
        remote = channel.mkdtemp(prefix='oml-run-', parent=self._res_desc.get(
            'working_directory') or allocator.workdir)
        local = tempfile.mkdtemp(prefix='oml-jobrun-')
        try:
            write_job(self.wrapped, local)
            channel.push_file(os.path.join(local, JOB_FILE), posixpath.join(remote, JOB_FILE))
            job_id = allocator.submit_job(self._res_desc, remote,
                                          job_command(allocator.python, remote), name=where)
            try:
                state = self._wait(job_id, where)
                if not self._fetch_result(remote, local):
                    raise JobError(f'{where}: {allocator.describe(job_id, state)}')
            finally:  # cancels the job when interrupted (Ctrl-C) or failing here
                allocator.finish_job(job_id)
            return read_result(local, self.wrapped, f'{where} ({allocator.kind} job {job_id})')
        finally:
            shutil.rmtree(local, ignore_errors=True)
            channel.remove_tree(remote)

    def _wait(self, job_id: str, where: str) -> JobState:
        """Poll the job's state until it ended; `JobError` when it waited in the queue longer
        than the allocator's ``queue_timeout`` or the scheduler stopped answering for
        `UNANSWERED` seconds (the caller cancels it)."""
        allocator = self._allocator
        submitted = time.monotonic()
        unanswered_since = None
        while True:
            state = allocator.job_state(job_id)
            now = time.monotonic()
            if not state.active:
                logger.debug('%s job %s ended: %s', allocator.kind, job_id, state)
                return state
            if state.queued and now - submitted > allocator.queue_timeout:
                raise JobError(f'{where}: {allocator.kind} job {job_id} did not start within '
                               f'queue_timeout={allocator.queue_timeout:g} s '
                               f'({allocator.describe(job_id, state)}); it was cancelled')
            if state.state != UNKNOWN:
                unanswered_since = None
            elif unanswered_since is None:
                unanswered_since = now
            elif now - unanswered_since > UNANSWERED:
                raise JobError(f'{where}: {allocator.kind} did not say the state of job '
                               f'{job_id} for {UNANSWERED:g} s ({state.detail}); the job was '
                               f'cancelled')
            time.sleep(self._poll)

    def _fetch_result(self, remote: str, local: str) -> bool:
        """Copy the job's result here; False when it left none."""
        try:
            self._allocator.channel.pull_file(posixpath.join(remote, RESULT_FILE),
                                              os.path.join(local, RESULT_FILE))
        except FileNotFoundError:
            return False
        return True


def _allocator(given: str | BatchAllocator, template: str | None, python: str | None,
               workdir: str | None, poll: float) -> BatchAllocator:
    """The allocator that submits the jobs: ``given`` itself or a new one for its name."""
    if isinstance(given, BatchAllocator):
        options = {'template': template, 'python': python, 'workdir': workdir}
        mixed = [key for key, value in options.items() if value is not None]
        if mixed:
            raise ValueError(f'JobSchedulerWrapper: {", ".join(mixed)} belong to the allocator '
                             f'{given!r}: set them there')
        return given
    kind = given.lower() if isinstance(given, str) else None
    if kind not in SCHEDULERS:
        raise ValueError(f'JobSchedulerWrapper: allocator_or_scheduler must be one of '
                         f'{", ".join(map(repr, SCHEDULERS))} or a SlurmAllocator / '
                         f'PBSAllocator, got {given!r}')
    return SCHEDULERS[kind](template=template, python=python, workdir=workdir, poll=poll)
