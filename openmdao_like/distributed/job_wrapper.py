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
import math
import time
from collections.abc import Mapping
from typing import Any

from ..component import Component
from ..errors import JobError
from ..options import HasOptions, OptionError, OptionsDictionary
from ..resources.batch import BatchAllocator
from ..resources.description import validate_resource_desc
from ..resources.jobstate import JobState, JobStatus, wait_until
from ..resources.pbs import PBSAllocator
from ..resources.slurm import SlurmAllocator
from .jobfiles import ShippedJob
from .wrapper import ComponentWrapper

logger = logging.getLogger(__name__)

__all__ = ['JobSchedulerWrapper']

#: Seconds a scheduler may fail to answer about a job before the job is given up.
UNANSWERED = 600.0
#: Schedulers known by name.
SCHEDULERS = {'slurm': SlurmAllocator, 'pbs': PBSAllocator}


def _scheduler(given: str | BatchAllocator) -> str | BatchAllocator:
    """``check=`` of ``allocator_or_scheduler``: a batch allocator or a scheduler's name."""
    if isinstance(given, str) and given.lower() not in SCHEDULERS:
        raise ValueError(given)
    return given


class JobSchedulerWrapper(HasOptions, ComponentWrapper):
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

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('allocator_or_scheduler', 'slurm', types=(str, BatchAllocator),
                        accepts=f'one of {", ".join(map(repr, SCHEDULERS))} or a '
                                f'SlurmAllocator / PBSAllocator',
                        check=_scheduler, desc='the scheduler, by name or as an allocator')
        for what, desc in (('template', 'the job script template (text or a file path)'),
                           ('python', 'the interpreter the job runs (None: this one)'),
                           ('workdir', 'shared directory below which each execution gets '
                                       'its job directory')):
            options.declare(what, None, types=str, allow_none=True, desc=desc)
        options.declare('res_desc', None, types=Mapping, allow_none=True, check=dict,
                        accepts='a resource description (a dict) or None',
                        desc="the job's resource description")
        options.declare('poll', 1.0, types=float, lower=0.0, exclude_lower=True,
                        accepts='a positive number of seconds',
                        desc="seconds between two looks at the job's state")

    def __init__(self, comp: Component, allocator_or_scheduler: str | BatchAllocator = 'slurm',
                 template: str | None = None, res_desc: Mapping[str, Any] | None = None,
                 python: str | None = None, workdir: str | None = None, poll: float = 1.0,
                 **options: Any):
        super().__init__(comp, allocator_or_scheduler=allocator_or_scheduler,
                         template=template, res_desc=res_desc, python=python,
                         workdir=workdir, poll=poll, **options)
        what = type(self).__name__
        self._allocator = _allocator(self.allocator_or_scheduler, self.template, self.python,
                                     self.workdir, self.poll)
        desc = validate_resource_desc(self.res_desc, f'{what}: res_desc')
        refused = self._allocator.refusals(desc)
        if refused:
            key, why = next(iter(refused.items()))
            raise OptionError(f'{what}: res_desc: {key}: {why}')
        self._res_desc = desc

    def __repr__(self) -> str:
        return (f'<{type(self).__name__} {self.get_pathname() or type(self.wrapped).__name__} '
                f'via {self._allocator!r}>')

    def _run_wrapped(self) -> dict[str, Any]:
        """Ship the wrapped object as a job, wait for it, take its result."""
        allocator = self._allocator
        where = self.get_pathname() or type(self.wrapped).__name__
        with ShippedJob(allocator.channel, where, prefix='oml-run-', parent=self._res_desc.get(
                'working_directory') or allocator.workdir) as job:
            job.ship(self.wrapped)
            job_id = allocator.submit_job(self._res_desc, job.remote,
                                          job.command(allocator.python), name=where)
            try:
                status = self._wait(job_id, where)
                if not job.fetch():
                    raise JobError(f'{where}: {allocator.describe(job_id, status)}')
            finally:  # cancels the job when interrupted (Ctrl-C) or failing here
                allocator.finish_job(job_id)
            return job.result(self.wrapped, f'{where} ({allocator.kind} job {job_id})')

    def _wait(self, job_id: str, where: str) -> JobStatus:
        """Wait until the job ended; `JobError` when it waited in the queue longer than the
        allocator's ``queue_timeout`` or the scheduler did not answer for `UNANSWERED`
        seconds (the caller cancels it). A running job is bounded by its scheduler's time
        limit."""
        allocator = self._allocator
        job = allocator.job(job_id)
        queued_until = time.monotonic() + allocator.queue_timeout
        status = wait_until(job, lambda state: state is JobState.RUNNING, queued_until,
                            poll=self.poll, unknown_timeout=UNANSWERED)
        if status.queued:
            raise JobError(f'{where}: {allocator.kind} job {job_id} did not start within '
                           f'queue_timeout={allocator.queue_timeout:g} s '
                           f'({allocator.describe(job_id, status)}); it was cancelled')
        unanswered = status.state is JobState.UNKNOWN and time.monotonic() < queued_until
        if status.active and not unanswered:
            status = wait_until(job, lambda state: state.terminal, math.inf, poll=self.poll,
                                unknown_timeout=UNANSWERED)
        if status.state is JobState.UNKNOWN:
            raise JobError(f'{where}: {allocator.kind} did not say the state of job '
                           f'{job_id} for {UNANSWERED:g} s ({status.detail}); the job was '
                           f'cancelled')
        logger.debug('%s job %s ended: %s', allocator.kind, job_id, status)
        return status


def _allocator(given: str | BatchAllocator, template: str | None, python: str | None,
               workdir: str | None, poll: float) -> BatchAllocator:
    """The allocator that submits the jobs: ``given`` itself or a new one for its name."""
    if isinstance(given, BatchAllocator):
        options = {'template': template, 'python': python, 'workdir': workdir}
        mixed = [key for key, value in options.items() if value is not None]
        if mixed:
            raise OptionError(f'JobSchedulerWrapper: {", ".join(mixed)} belong to the '
                              f'allocator {given!r}: set them there')
        return given
    return SCHEDULERS[given.lower()](template=template, python=python, workdir=workdir,
                                     poll=poll)
