"""`SlurmAllocator`: allocated servers as SLURM batch jobs (``sbatch``, ``scontrol``,
``scancel``; ``sinfo`` to know the partitions). See `openmdao_like.resources.batch`.

Directives written for a resource description (sbatch options, https://slurm.schedmd.com/
sbatch.html):

=========================  ================================================================
``job_name``               ``--job-name``
``queue_name``             ``--partition`` (default: the allocator's ``partition``)
``min_cpus`` N             ``--nodes=1 --ntasks=1 --cpus-per-task=N``; with ``job_category``
                           'MPI': ``--nodes=1 --ntasks=N`` (objects run under ``srun``)
``min_phys_memory``        ``--mem=<kB>K``
``wallclock_time``         ``--time=[D-]HH:MM:SS`` (the only limit SLURM enforces per job)
``start_time``             ``--begin=YYYY-MM-DDTHH:MM:SS`` (local time)
``deadline_time``          ``--deadline=YYYY-MM-DDTHH:MM:SS``
``accounting_id``          ``--account``
``email``, ``email_on_*``  ``--mail-user``, ``--mail-type=BEGIN,END``
``output_path`` ...        ``--output`` (default ``job.out`` in the work directory), ``--error``
=========================  ================================================================

`max_servers` counts the jobs the partition's CPUs hold at once (more would only queue). A
job's end state comes from ``scontrol show job`` (SLURM keeps ended jobs for ``MinJobAge``,
300 s by default), then from the job completion log when ``JobCompType=jobcomp/filetxt``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..options import OptionsDictionary
from .allocator import NEVER, NOT_NOW, NOW, Estimate
from .batch import BATCH_KEYS, BatchAllocator, hms, kilobytes, local_time, one_word, word
from .channels import Channel
from .jobstate import JobState, JobStatus, map_native
from .launchers import Launcher, SrunLauncher

__all__ = ['SlurmAllocator', 'SLURM_STATES']

#: SLURM's job states (squeue(1), "JOB STATE CODES") as `JobState`s.
SLURM_STATES: dict[str, JobState] = {
    'PENDING': JobState.QUEUED, 'REQUEUED': JobState.QUEUED,
    'REQUEUE_FED': JobState.QUEUED, 'CONFIGURING': JobState.QUEUED,
    'REQUEUE_HOLD': JobState.PENDING, 'RESV_DEL_HOLD': JobState.PENDING,
    'RUNNING': JobState.RUNNING, 'COMPLETING': JobState.RUNNING,
    'STAGE_OUT': JobState.RUNNING, 'SIGNALING': JobState.RUNNING,
    'RESIZING': JobState.RUNNING, 'SUSPENDED': JobState.RUNNING, 'STOPPED': JobState.RUNNING,
    'COMPLETED': JobState.COMPLETED,
    'FAILED': JobState.FAILED, 'BOOT_FAIL': JobState.FAILED,
    'OUT_OF_MEMORY': JobState.FAILED, 'SPECIAL_EXIT': JobState.FAILED,
    'CANCELLED': JobState.CANCELLED, 'REVOKED': JobState.CANCELLED,
    'TIMEOUT': JobState.TIMEOUT, 'DEADLINE': JobState.TIMEOUT,
    'NODE_FAIL': JobState.LOST, 'PREEMPTED': JobState.LOST,
}
_DATE = '%Y-%m-%dT%H:%M:%S'


class SlurmAllocator(BatchAllocator):
    """Start each server as a SLURM batch job in ``partition`` (default: the cluster's default
    partition). The other parameters are those of `BatchAllocator`."""

    kind = 'SLURM'
    handles = BATCH_KEYS | {'deadline_time'}
    limits = frozenset({'wallclock_time'})
    directive_prefix = '#SBATCH'
    script_name = 'job.sh'

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('partition', None, types=str, allow_none=True,
                        accepts='a partition name',
                        check=one_word,
                        desc="the jobs' partition (None: the cluster's default)")

    def __init__(self, name: str = 'SLURM', partition: str | None = None,
                 template: str | None = None, python: str | None = None,
                 workdir: str | None = None, channel: Channel | None = None,
                 max_jobs: int = 64, queue_timeout: float = 3600.0,
                 extra_directives: Sequence[str] = (), client_address: str | None = None,
                 allowed_hosts: Sequence[str] = (), mpi_launcher: Launcher | None = None,
                 poll: float = 1.0, **options: Any):
        self._jobcomp: str | None = None
        super().__init__(name, template=template, python=python, workdir=workdir,
                         channel=channel, max_jobs=max_jobs, queue_timeout=queue_timeout,
                         extra_directives=extra_directives, client_address=client_address,
                         allowed_hosts=allowed_hosts, mpi_launcher=mpi_launcher, poll=poll,
                         partition=partition, **options)

    def __repr__(self) -> str:
        return (f'SlurmAllocator({self.name!r}, partition={self.partition!r}, '
                f'max_jobs={self.max_jobs})')

    def _default_mpi_launcher(self) -> Launcher:
        return SrunLauncher()

    # -- the script --------------------------------------------------------------------------------
    def directives(self, res_desc: Mapping[str, Any], name: str, output: str,
                   error: str | None) -> list[str]:
        lines = [f'--job-name={word(name, "job_name", self.name)}']
        partition = res_desc.get('queue_name') or self.partition
        if partition:
            lines.append(f'--partition={word(partition, "queue_name", self.name)}')
        cpus = res_desc.get('min_cpus', 1)
        if res_desc.get('job_category') == 'MPI':
            lines += ['--nodes=1', f'--ntasks={cpus}']
        else:
            lines += ['--nodes=1', '--ntasks=1', f'--cpus-per-task={cpus}']
        if 'min_phys_memory' in res_desc:
            lines.append(f'--mem={kilobytes(res_desc["min_phys_memory"])}K')
        wallclock = res_desc.get('resource_limits', {}).get('wallclock_time')
        if wallclock is not None:
            lines.append(f'--time={slurm_time(wallclock)}')
        if 'start_time' in res_desc:
            lines.append(f'--begin={local_time(res_desc["start_time"]).strftime(_DATE)}')
        if 'deadline_time' in res_desc:
            lines.append(f'--deadline={local_time(res_desc["deadline_time"]).strftime(_DATE)}')
        if 'accounting_id' in res_desc:
            lines.append(f'--account={word(res_desc["accounting_id"], "accounting_id", self.name)}')
        if res_desc.get('email'):
            lines.append(f'--mail-user={word(",".join(res_desc["email"]), "email", self.name)}')
        events = [event for key, event in (('email_on_started', 'BEGIN'),
                                           ('email_on_terminated', 'END'))
                  if res_desc.get(key)]
        if events:
            lines.append(f'--mail-type={",".join(events)}')
        lines.append(f'--output={output}')
        if error is not None:
            lines.append(f'--error={error}')
        return lines

    def _submit_command(self, script: str, output: str, error: str | None) -> list[str]:
        return ['sbatch', '--parsable', script]

    def _parse_job_id(self, stdout: str) -> str:
        # --parsable prints "ID" or "ID;CLUSTER"
        lines = stdout.strip().splitlines()
        return lines[-1].split(';')[0].strip() if lines else ''

    def _cancel_command(self, job_id: str) -> list[str]:
        return ['scancel', job_id]

    # -- the job's state ---------------------------------------------------------------------------
    def job_status(self, job_id: str) -> JobStatus:
        done = self._run(['scontrol', '-o', 'show', 'job', job_id])
        found = re.search(r'\bJobState=(\S+)', done.stdout) if done.returncode == 0 else None
        if found:
            code = found.group(1)
            state = map_native(SLURM_STATES, code, self.kind)
            fields = dict(re.findall(r'\b(Reason|ExitCode)=(\S+)', done.stdout))
            reason = fields.get('Reason', 'None')
            if not state.terminal:
                return JobStatus(state, code, '' if reason == 'None' else f'reason {reason}')
            detail = f'exit code {fields.get("ExitCode", "?")}'
            if reason != 'None':
                detail += f', reason {reason}'
            return JobStatus(state, code, detail)
        if 'Invalid job id' in done.stderr:
            ended = self._completion_log_state(job_id)
            if ended is not None:
                return JobStatus(map_native(SLURM_STATES, ended, self.kind), ended,
                                 'from the job completion log')
            return JobStatus(JobState.LOST, 'GONE', 'SLURM no longer knows the job')
        return JobStatus(JobState.UNKNOWN, '',
                         f'scontrol: {(done.stderr or done.stdout).strip()}')

    def _completion_log_state(self, job_id: str) -> str | None:
        """The JobState the job completion log (jobcomp/filetxt) recorded, if readable."""
        if self._jobcomp is None:
            config = self._run(['scontrol', 'show', 'config']).stdout
            kind = re.search(r'^JobCompType\s*=\s*(\S+)', config, re.M)
            where = re.search(r'^JobCompLoc\s*=\s*(\S+)', config, re.M)
            self._jobcomp = where.group(1) if kind and kind.group(1) == 'jobcomp/filetxt' \
                and where else ''
        if not self._jobcomp:
            return None
        try:
            log = self.channel.read_file(self._jobcomp).decode(errors='replace')
        except OSError:
            return None
        found = None
        for line in log.splitlines():  # the last record wins (a requeued job ends twice)
            if line.startswith(f'JobId={job_id} '):
                found = re.search(r'\bJobState=(\S+)', line)
        return found.group(1) if found else None

    def _partition(self, res_desc: Mapping[str, Any]) -> tuple[_Partition | None, Estimate]:
        """The partition a job for ``res_desc`` goes to, as sinfo describes it; or None and
        why (refused: -2, sinfo failing: -1)."""
        done = self._run(['sinfo', '-h', '-o', '%P|%a|%c|%m|%C'])
        if done.returncode == 127:
            return None, (NEVER, {'refused': {'allocator': f'{self.name}: sinfo is not '
                                                           f'installed on {self.channel.host}'}})
        if done.returncode != 0:
            return None, (NOT_NOW, {'reason': f'{self.name}: sinfo failed: '
                                              f'{(done.stderr or done.stdout).strip()}'})
        partitions: dict[str, _Partition] = {}
        default = None
        for line in done.stdout.splitlines():  # one line per group of alike nodes
            fields = line.strip().split('|')
            if len(fields) != 5:
                continue
            name, avail, cpus, memory, counts = fields
            if name.endswith('*'):
                name = default = name[:-1]
            part = partitions.setdefault(name, _Partition(name, avail))
            part.node_cpus = max(part.node_cpus, _leading_int(cpus))
            part.node_memory_kb = max(part.node_memory_kb, _leading_int(memory) * 1024)
            part.total_cpus += _leading_int(counts.split('/')[-1])  # allocated/idle/other/total
        asked = res_desc.get('queue_name')
        wanted = asked or self.partition or default or next(iter(partitions), None)
        if wanted not in partitions:
            key = 'queue_name' if asked else 'allocator'
            return None, (NEVER, {'refused': {key: f'SLURM has no partition {wanted!r} '
                                                   f'(partitions: '
                                                   f'{", ".join(partitions) or "none"})'}})
        return partitions[wanted], (NOW, {'partition': wanted})

    def _probe(self, res_desc: Mapping[str, Any]) -> Estimate:
        part, answer = self._partition(res_desc)
        if part is None:
            return answer
        refused = {}
        if res_desc.get('min_cpus', 1) > part.node_cpus:
            refused['min_cpus'] = (f'the nodes of partition {part.name} have at most '
                                   f'{part.node_cpus} CPUs, {res_desc["min_cpus"]} were asked '
                                   f'for')
        if res_desc.get('min_phys_memory', 0) > part.node_memory_kb:
            refused['min_phys_memory'] = (f'the nodes of partition {part.name} have at most '
                                          f'{part.node_memory_kb} kB, '
                                          f'{res_desc["min_phys_memory"]} kB were asked for')
        if refused:
            return NEVER, {'refused': refused}
        if part.avail != 'up':
            return NOT_NOW, {'reason': f'partition {part.name} is {part.avail}'}
        return answer

    def max_servers(self, res_desc: Mapping[str, Any]) -> int:
        """As many jobs as the partition's CPUs hold at once (at most ``max_jobs``): more
        would only wait in the queue."""
        if self.refusals(res_desc):
            return 0
        part, answer = self._partition(res_desc)
        if part is None:
            return 0 if answer[0] == NEVER else self.max_jobs
        return min(self.max_jobs, part.total_cpus // res_desc.get('min_cpus', 1))


@dataclass
class _Partition:
    """What sinfo says about a partition: availability, the largest node, all its CPUs."""

    name: str
    avail: str
    node_cpus: int = 0
    node_memory_kb: int = 0
    total_cpus: int = 0


def slurm_time(seconds: float) -> str:
    """A SLURM time limit: ``HH:MM:SS`` or ``D-HH:MM:SS`` (SLURM rounds up to minutes)."""
    text = hms(seconds)
    hours, rest = text.split(':', 1)
    days, hours = divmod(int(hours), 24)
    return f'{days}-{hours:02d}:{rest}' if days else text


def _leading_int(text: str) -> int:
    found = re.match(r'\d+', text)
    return int(found.group()) if found else 0
