"""`PBSAllocator`: allocated servers as PBS jobs (``qsub``, ``qstat``, ``qdel``), for PBS
Professional / OpenPBS (``dialect='pbspro'``) or Torque (``dialect='torque'``). See
`openmdao_like.resources.batch`.

Directives written for a resource description (qsub(1B) and pbs_resources(7B) of PBS Pro;
Torque's qsub(1B) and "Requesting resources"):

=========================  ================================================================
``job_name``               ``-N`` (Torque: at most 15 characters)
``queue_name``             ``-q`` (default: the allocator's ``queue``)
``min_cpus`` N             pbspro: ``-l select=1:ncpus=N`` (+ ``:mpiprocs=N`` for 'MPI',
                           ``:mem=``, ``:vmem=`` in the same chunk); torque:
                           ``-l nodes=1:ppn=N``
``min_phys_memory``        ``mem=<kB>kb``
``wallclock_time``         ``-l walltime=HH:MM:SS``
``cpu_time``               ``-l cput=HH:MM:SS``
``virtual_memory``         ``vmem=<kB>kb``
``file_size`` (pbspro)     ``-l file=<kB>kb`` (Torque's ``file`` means total disk: refused)
``start_time``             ``-a [[[[CC]YY]MM]DD]hhmm[.SS]`` (local time)
``accounting_id``          ``-A``
``email``, ``email_on_*``  ``-M``, ``-m be``
``output_path`` ...        ``-o`` (default ``job.out`` in the work directory), ``-e`` or
                           ``-j oe``
=========================  ================================================================

The script runs under ``/bin/sh`` (``-S``; Torque would use the login shell otherwise). The
output options are also given on the ``qsub`` command line, because the torque wrappers over
SLURM (slurm-wlm-torque) ignore ``#PBS -o``; the script does not rely on ``PBS_JOBID`` or
``PBS_O_WORKDIR`` (it ``cd``s to its work directory itself), which those wrappers do not set.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Sequence

from ..options import OptionsDictionary
from .allocator import NEVER, NOT_NOW, NOW, Estimate, non_empty
from .batch import BATCH_KEYS, BatchAllocator, hms, kilobytes, local_time, one_word, word
from .channels import Channel
from .jobstate import JobState, JobStatus, map_native
from .launchers import Launcher, MpiexecLauncher

__all__ = ['PBSAllocator', 'DIALECTS', 'PBS_STATES']

#: The PBS flavours and the resource limits each enforces per job.
DIALECTS = {'pbspro': frozenset({'wallclock_time', 'cpu_time', 'virtual_memory', 'file_size'}),
            'torque': frozenset({'wallclock_time', 'cpu_time', 'virtual_memory'})}
#: qstat's job_state codes.
STATES = {'Q': 'queued', 'R': 'running', 'E': 'exiting', 'H': 'held', 'W': 'waiting',
          'T': 'moving', 'S': 'suspended', 'U': 'suspended while the workstation is busy',
          'B': 'array job running', 'M': 'moved to another server', 'C': 'completed',
          'F': 'finished', 'X': 'subjob finished'}
#: qstat's job_state codes as `JobState`s (an ended job's exit status is in the details).
PBS_STATES: dict[str, JobState] = {
    'Q': JobState.QUEUED, 'T': JobState.QUEUED, 'M': JobState.QUEUED,
    'H': JobState.PENDING, 'W': JobState.PENDING,
    'R': JobState.RUNNING, 'E': JobState.RUNNING, 'S': JobState.RUNNING,
    'U': JobState.RUNNING, 'B': JobState.RUNNING,
    'C': JobState.COMPLETED, 'F': JobState.COMPLETED, 'X': JobState.COMPLETED,
}
#: qstat's exit status for a job it does not know.
UNKNOWN_JOB = 153


class PBSAllocator(BatchAllocator):
    """Start each server as a PBS job in ``queue`` (default: the server's default queue).

    ``dialect`` is 'pbspro' (PBS Professional, OpenPBS: ``select`` chunks) or 'torque'
    (``nodes=1:ppn=N``). ``mpiexec`` starts the objects of 'MPI' servers (default: the one next
    to ``python`` when there is one, else ``mpiexec`` from PATH). The other parameters are
    those of `BatchAllocator`.
    """

    kind = 'PBS'
    handles = BATCH_KEYS
    directive_prefix = '#PBS'
    script_name = 'job.pbs'

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('queue', None, types=str, allow_none=True, accepts='a queue name',
                        check=one_word,
                        desc="the jobs' queue (None: the server's default)")
        options.declare('dialect', 'pbspro', types=str, values=tuple(DIALECTS),
                        accepts=f'one of {", ".join(DIALECTS)}',
                        desc="'pbspro' (PBS Professional, OpenPBS) or 'torque'")
        options.declare('mpiexec', None, types=str, allow_none=True, accepts='a path',
                        check=non_empty,
                        desc="the mpiexec of 'MPI' servers (None: beside python, else PATH's)")

    def __init__(self, name: str = 'PBS', queue: str | None = None,
                 template: str | None = None, dialect: str = 'pbspro',
                 python: str | None = None, workdir: str | None = None,
                 channel: Channel | None = None, max_jobs: int = 64,
                 queue_timeout: float = 3600.0, extra_directives: Sequence[str] = (),
                 client_address: str | None = None, allowed_hosts: Sequence[str] = (),
                 mpi_launcher: Launcher | None = None, mpiexec: str | None = None,
                 poll: float = 1.0, **options: Any):
        super().__init__(name, template=template, python=python, workdir=workdir,
                         channel=channel, max_jobs=max_jobs, queue_timeout=queue_timeout,
                         extra_directives=extra_directives, client_address=client_address,
                         allowed_hosts=allowed_hosts, mpi_launcher=mpi_launcher, poll=poll,
                         queue=queue, dialect=dialect, mpiexec=mpiexec, **options)
        self.limits = DIALECTS[self.dialect]

    def __repr__(self) -> str:
        return (f'PBSAllocator({self.name!r}, queue={self.queue!r}, dialect={self.dialect!r}, '
                f'max_jobs={self.max_jobs})')

    def _default_mpi_launcher(self) -> Launcher:
        if self.mpiexec:
            return MpiexecLauncher(self.mpiexec)
        beside = os.path.join(os.path.dirname(self.python), 'mpiexec')
        return MpiexecLauncher(beside if os.access(beside, os.X_OK) else 'mpiexec')

    # -- the script --------------------------------------------------------------------------------
    def directives(self, res_desc: Mapping[str, Any], name: str, output: str,
                   error: str | None) -> list[str]:
        if self.dialect == 'torque':
            name = name[:15]
        lines = [f'-N {word(name, "job_name", self.name)}', '-S /bin/sh']
        queue = res_desc.get('queue_name') or self.queue
        if queue:
            lines.append(f'-q {word(queue, "queue_name", self.name)}')
        cpus = res_desc.get('min_cpus', 1)
        limits = res_desc.get('resource_limits', {})
        memory = res_desc.get('min_phys_memory')
        virtual = limits.get('virtual_memory')
        if self.dialect == 'pbspro':
            chunk = f'select=1:ncpus={cpus}'
            if res_desc.get('job_category') == 'MPI':
                chunk += f':mpiprocs={cpus}'
            if memory is not None:
                chunk += f':mem={kilobytes(memory)}kb'
            if virtual is not None:
                chunk += f':vmem={kilobytes(virtual)}kb'
            lines.append(f'-l {chunk}')
        else:
            lines.append(f'-l nodes=1:ppn={cpus}')
            if memory is not None:
                lines.append(f'-l mem={kilobytes(memory)}kb')
            if virtual is not None:
                lines.append(f'-l vmem={kilobytes(virtual)}kb')
        if 'wallclock_time' in limits:
            lines.append(f'-l walltime={hms(limits["wallclock_time"])}')
        if 'cpu_time' in limits:
            lines.append(f'-l cput={hms(limits["cpu_time"])}')
        if 'file_size' in limits:
            lines.append(f'-l file={kilobytes(limits["file_size"])}kb')
        if 'start_time' in res_desc:
            lines.append(f'-a {local_time(res_desc["start_time"]).strftime("%Y%m%d%H%M.%S")}')
        if 'accounting_id' in res_desc:
            lines.append(f'-A {word(res_desc["accounting_id"], "accounting_id", self.name)}')
        if res_desc.get('email'):
            lines.append(f'-M {word(",".join(res_desc["email"]), "email", self.name)}')
        events = ''.join(event for key, event in (('email_on_started', 'b'),
                                                  ('email_on_terminated', 'e'))
                         if res_desc.get(key))
        if events:
            lines.append(f'-m {events}')
        lines.append(f'-o {output}')
        lines.append(f'-e {error}' if error is not None else '-j oe')
        return lines

    def _submit_command(self, script: str, output: str, error: str | None) -> list[str]:
        streams = ['-e', error] if error is not None else ['-j', 'oe']
        return ['qsub', '-o', output, *streams, script]

    def _parse_job_id(self, stdout: str) -> str:
        # PBS Pro / Torque print "123.server"; the SLURM wrappers print "123"
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
        return lines[-1] if lines else ''

    def _cancel_command(self, job_id: str) -> list[str]:
        return ['qdel', job_id]

    # -- the job's state ---------------------------------------------------------------------------
    def job_status(self, job_id: str) -> JobStatus:
        done = self._run(['qstat', '-f', job_id])
        if (done.returncode != 0 or 'job_state' not in done.stdout) and \
                self.dialect == 'pbspro':
            history = self._run(['qstat', '-x', '-f', job_id])  # finished jobs (job history)
            if history.returncode == 0 and 'job_state' in history.stdout:
                done = history
        found = re.search(r'\bjob_state\s*=\s*(\S+)', done.stdout) \
            if done.returncode == 0 else None
        if found:
            code = found.group(1)
            detail = STATES.get(code, 'unknown state')
            status = re.search(r'\bExit_status\s*=\s*(-?\d+)', done.stdout)
            if status:
                detail += f', exit status {status.group(1)}'
            return JobStatus(map_native(PBS_STATES, code, self.kind), code, detail)
        said = (done.stderr or done.stdout).strip()
        if done.returncode == UNKNOWN_JOB or 'Unknown Job' in said or 'has finished' in said:
            return JobStatus(JobState.LOST, 'GONE', 'qstat no longer knows the job')
        return JobStatus(JobState.UNKNOWN, '', f'qstat: {said}')

    def _probe(self, res_desc: Mapping[str, Any]) -> Estimate:
        done = self._run(['qstat', '-Q'])
        if done.returncode == 127:
            return NEVER, {'refused': {'allocator': f'{self.name}: qstat is not installed on '
                                                    f'{self.channel.host}'}}
        if done.returncode != 0:
            return NOT_NOW, {'reason': f'{self.name}: qstat -Q failed: '
                                       f'{(done.stderr or done.stdout).strip()}'}
        return NOW, {'queue': res_desc.get('queue_name') or self.queue}
