"""`BatchAllocator`: allocated servers as batch jobs (the base of `SlurmAllocator` and
`PBSAllocator`).

A batch allocator is a scheduler *provider* in Parsl's sense: it submits a job script
(`submit_job`), asks a job's state (`job_status`, a `JobStatus` whose `JobState` each scheduler
maps from its native codes through one table) and cancels it (`finish_job`). What runs in the
job is not its business: `openmdao_like.resources.bootstrap` starts a *pilot* there (an
``ObjServerFactory`` that registers back to this client and serves until released), and the
job wrappers run one component execution there. Each job gets a work directory (its script
and output) made through a `Channel` on a file system the cluster nodes share (a
`LocalChannel` when this machine is the login node; an SSH channel reaches another one).

The job script comes from a `string.Template` (`DEFAULT_TEMPLATE`, or ``template=`` as text or
the path of a file) with these placeholders:

================  ==========================================================================
``$directives``   the scheduler directive lines (``#SBATCH ...`` / ``#PBS ...``)
``$environment``  ``export NAME='value'`` lines for ``job_environment``
``$workdir``      the job's work directory (shell-quoted)
``$command``      the pilot's command line (shell-quoted)
``$name``         the job name
================  ==========================================================================

Resource keys (subclasses give the directive syntax): ``job_name``, ``queue_name``,
``min_cpus`` (the job's CPUs; ``max_cpus`` only bounds the description), ``min_phys_memory``
(kB), ``resource_limits`` (the limits in `BatchAllocator.limits`; times in seconds, sizes in
kB; any other limit is refused), ``job_environment`` (exported by the script),
``working_directory`` (where the job's work directory is made), ``accounting_id``,
``native_specification`` (directive arguments written as given), ``output_path`` /
``error_path`` / ``join_files`` (by default the output, stderr joined, goes to ``job.out`` in
the work directory), ``email`` / ``email_on_started`` / ``email_on_terminated``,
``start_time``, and ``job_category`` ``'MPI'``: objects created on the server then run as
``min_cpus`` MPI processes (``srun``/``mpiexec``, see ``mpi_launcher``).
"""

from __future__ import annotations

import abc
import datetime
import logging
import math
import os
import posixpath
import re
import shlex
import string
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..errors import AllocationError
from ..options import OptionError, OptionsDictionary
from ..remote.client import FactoryProxy
from .allocator import COMMON_KEYS, NOT_NOW, Allocator, Estimate, non_empty
from .bootstrap import pilot_job_status, start_pilot_job
from .channels import TAIL_CHARS, Channel, CommandResult, LocalChannel
from .description import validate_resource_desc
from .jobstate import TERMINAL_STATES, JobStatus, wait_until
from .launchers import Launcher
from .startup import StartedServer

logger = logging.getLogger(__name__)

__all__ = ['BatchAllocator', 'BatchJob', 'DEFAULT_TEMPLATE', 'TEMPLATE_FIELDS', 'BATCH_KEYS',
           'hms', 'kilobytes', 'local_time', 'word', 'one_word']

DEFAULT_TEMPLATE = """\
#!/bin/sh
$directives
# $name: an openmdao_like server (it registers back to its client and serves until released)
$environment
cd $workdir || exit 1
exec $command
"""
#: The placeholders a job script template may use.
TEMPLATE_FIELDS = ('directives', 'environment', 'workdir', 'command', 'name')
#: Seconds a scheduler command (submit, query, cancel) may take.
COMMAND_TIMEOUT = 60.0
#: Seconds to wait for a cancelled job to leave the queue (the scheduler's kill grace).
CANCEL_WAIT = 60.0
#: Resource keys every batch allocator acts on.
BATCH_KEYS = COMMON_KEYS | {'queue_name', 'min_phys_memory', 'resource_limits',
                            'working_directory', 'accounting_id', 'native_specification',
                            'output_path', 'error_path', 'join_files', 'email',
                            'email_on_started', 'email_on_terminated', 'start_time',
                            'job_category'}

_SHELL_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def _template(template: str | string.Template) -> string.Template:
    """``check=`` of the ``template`` option: the job script template from text or a file,
    checked for its placeholders (a `string.Template` is one checked already)."""
    if isinstance(template, string.Template):
        return template
    if '\n' not in template and os.path.isfile(template):
        with open(template, encoding='utf-8') as src:
            text = src.read()
    elif '\n' not in template:
        raise OptionError(f'template {template!r} is no file '
                          f'(template text has more than one line)')
    else:
        text = template
    parsed = string.Template(text)
    if not parsed.is_valid():
        raise OptionError(f'template has a bad placeholder ("$" '
                          f'must be followed by a name or "$"): {text[:200]!r}')
    used = set(parsed.get_identifiers())
    unknown = used - set(TEMPLATE_FIELDS)
    if unknown:
        raise OptionError(f'template uses unknown placeholders '
                          f'{", ".join(sorted(unknown))}; known: {", ".join(TEMPLATE_FIELDS)}')
    missing = {'directives', 'command'} - used
    if missing:
        raise OptionError(f'template must contain '
                          f'{", ".join(sorted(missing))} (as $directives and $command)')
    return parsed


def _lines_check(what: str) -> Callable[[Sequence[str]], tuple[str, ...]]:
    """``check=`` of option ``what``, a list of directive-like strings: each non-empty, on
    one line."""
    def check(value: Sequence[str]) -> tuple[str, ...]:
        if not all(isinstance(v, str) and v for v in value):
            raise ValueError(value)
        for v in value:
            if '\n' in v or '\r' in v:
                raise OptionError(f'{what} items must be single lines, got {v!r}')
        return tuple(value)
    return check


def one_word(value: str) -> str:
    """``check=`` of a name used in a directive (partition, queue): one word."""
    if not value or re.search(r'\s', value):
        raise ValueError(value)
    return value


@dataclass
class BatchJob:
    """A submitted job: its id, work directory and output files; ``status()`` asks its
    scheduler (so `wait_until` can poll it)."""

    id: str
    workdir: str
    output: str
    error: str | None
    provider: BatchAllocator

    def status(self) -> JobStatus:
        """The job's status now."""
        return self.provider.job_status(self.id)


class BatchAllocator(Allocator):
    """Start each server as a batch job that registers back (see the module docstring).

    Parameters
    ----------
    name : str
        The allocator's name.
    template : str, optional
        The job script template: its text, or the path of a file (here) holding it.
    python : str, optional
        The interpreter jobs run (default: this one; the nodes must see the same path).
    workdir : str, optional
        Directory (on the shared file system) below which each job gets its work directory
        (default: the temporary directory of the channel's host).
    channel : Channel, optional
        Where scheduler commands run and work directories are made (default: this machine).
    max_jobs : int
        Most jobs submitted at once; more are answered "not now" (-1).
    queue_timeout : float
        Seconds a job may take to start and register (waiting in the queue included).
    extra_directives : list of str
        Directive arguments added to every job script (e.g. ``['--qos=debug']``).
    client_address : str, optional
        Address the jobs register back to (default: what the channel says reaches this client).
    allowed_hosts : list of str
        Hosts or networks, besides the client and loopback, that may connect to the servers.
    mpi_launcher : Launcher, optional
        Starts the objects of ``job_category: 'MPI'`` servers (default per scheduler).
    poll : float
        Seconds between queries of a job's state while waiting for it.
    """

    handles = BATCH_KEYS
    #: The scheduler's name in messages ('SLURM', 'PBS').
    kind = 'batch'
    #: ``resource_limits`` the scheduler enforces (the others are refused).
    limits: frozenset[str] = frozenset({'wallclock_time'})
    #: Prefix of the directive lines.
    directive_prefix = '#'
    #: Name of the job script in the work directory.
    script_name = 'job.sh'
    #: Native states of a job on its way out (SLURM COMPLETING, PBS E): its `JobState` is
    #: still RUNNING, and `status` waits a little for the end.
    ending_states: frozenset[str] = frozenset({'COMPLETING', 'E'})

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('template', None, types=(str, string.Template), allow_none=True,
                        accepts='template text or the path of a file holding it',
                        check=_template,
                        desc='the job script template (text or a file path)')
        for what, desc in (('python', 'the interpreter jobs run (None: this one)'),
                           ('workdir', 'directory below which each job gets its own'),
                           ('client_address', 'address the jobs register back to')):
            # None (the default) is accepted too; the message words the old contract
            options.declare(what, None, types=str, allow_none=True,
                            accepts='a non-empty string', check=non_empty, desc=desc)
        options.declare('channel', None, types=Channel, allow_none=True,
                        accepts='a Channel',
                        desc='where scheduler commands run (None: this machine)')
        options.declare('max_jobs', 64, types=int, lower=1, accepts='a positive integer',
                        desc='most jobs submitted at once')
        seconds = 'a positive number of seconds'
        options.declare('queue_timeout', 3600.0, types=float, lower=0.0, exclude_lower=True,
                        accepts=seconds, desc='seconds a job may take to start and register')
        options.declare('poll', 1.0, types=float, lower=0.0, exclude_lower=True,
                        accepts=seconds, desc="seconds between queries of a job's state")
        lines = 'a list of non-empty strings'
        for what, desc in (('extra_directives', 'directive arguments of every job script'),
                           ('allowed_hosts', 'hosts besides the client that may connect')):
            options.declare(what, (), types=(list, tuple), accepts=lines,
                            check=_lines_check(what), desc=desc)
        options.declare('mpi_launcher', None, types=Launcher, allow_none=True,
                        accepts='a Launcher or None',
                        desc="starts the objects of 'MPI' servers (None: per scheduler)")

    def __init__(self, name: str, template: str | None = None, python: str | None = None,
                 workdir: str | None = None, channel: Channel | None = None,
                 max_jobs: int = 64, queue_timeout: float = 3600.0,
                 extra_directives: Sequence[str] = (), client_address: str | None = None,
                 allowed_hosts: Sequence[str] = (), mpi_launcher: Launcher | None = None,
                 poll: float = 1.0, **options: Any):
        super().__init__(name, template=template, python=python, workdir=workdir,
                         channel=channel, max_jobs=max_jobs, queue_timeout=queue_timeout,
                         extra_directives=extra_directives, client_address=client_address,
                         allowed_hosts=allowed_hosts, mpi_launcher=mpi_launcher, poll=poll,
                         **options)
        self.template = self.template or _template(DEFAULT_TEMPLATE)
        self.python = self.python or sys.executable
        self.channel = self.channel or LocalChannel()
        self.mpi_launcher = self.mpi_launcher or self._default_mpi_launcher()

    def _init_runtime(self) -> None:
        super()._init_runtime()
        self._jobs: dict[str, BatchJob] = {}

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.name!r}, max_jobs={self.max_jobs})'

    def __getstate__(self) -> dict[str, Any]:
        """Its configuration only (a saved model may hold it): the jobs and servers it runs
        belong to this process."""
        state = dict(vars(self))
        for runtime in ('_lock', '_servers', '_starting', '_jobs'):
            state.pop(runtime, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._init_runtime()
        vars(self).update(state)

    # -- what a subclass says about its scheduler -------------------------------------------------
    @abc.abstractmethod
    def _default_mpi_launcher(self) -> Launcher:
        """The launcher of MPI objects inside a job of this scheduler."""

    @abc.abstractmethod
    def directives(self, res_desc: Mapping[str, Any], name: str, output: str,
                   error: str | None) -> list[str]:
        """The directive arguments (without prefix) for a checked description."""

    @abc.abstractmethod
    def _submit_command(self, script: str, output: str, error: str | None) -> list[str]:
        """The command that submits ``script`` and prints the job id."""

    @abc.abstractmethod
    def _parse_job_id(self, stdout: str) -> str:
        """The job id in the submit command's output."""

    @abc.abstractmethod
    def _cancel_command(self, job_id: str) -> list[str]:
        """The command that cancels (or deletes) a job."""

    @abc.abstractmethod
    def job_status(self, job_id: str) -> JobStatus:
        """The job's status now: its native code mapped through the scheduler's table
        (`JobState.LOST` once the scheduler forgot it, `JobState.UNKNOWN` when it did not
        answer)."""

    @abc.abstractmethod
    def _probe(self, res_desc: Mapping[str, Any]) -> Estimate:
        """Ask the scheduler whether it can run a job for ``res_desc``: NOW, NOT_NOW (with a
        reason) or NEVER (with refusals)."""

    # -- asking -----------------------------------------------------------------------------------
    def refusals(self, res_desc: Mapping[str, Any]) -> dict[str, str]:
        refused = super().refusals(res_desc)
        category = res_desc.get('job_category')
        if category not in (None, 'MPI'):
            refused['job_category'] = (f"{self.name} runs 'MPI' jobs or plain ones, not "
                                       f"{category!r}")
        unsupported = sorted(set(res_desc.get('resource_limits') or ()) - self.limits)
        if unsupported:
            who = self.name if self.name == self.kind else f'{self.name} ({self.kind})'
            refused['resource_limits'] = (f'{who} cannot enforce '
                                          f'{", ".join(map(repr, unsupported))}; it supports '
                                          f'{", ".join(sorted(self.limits))}')
        bad_names = [name for name in res_desc.get('job_environment') or ()
                     if not _SHELL_NAME.fullmatch(str(name))]
        if bad_names:
            refused['job_environment'] = (f'{self.name} exports variables from a shell script: '
                                          f'{", ".join(map(repr, bad_names))} are not shell '
                                          f'variable names')
        return refused

    def _estimate(self, res_desc: Mapping[str, Any]) -> Estimate:
        with self._lock:  # deploys under way count before their job is submitted
            submitted = max(self.in_use, len(self._jobs))
        if submitted >= self.max_jobs:
            return NOT_NOW, {'reason': f'all max_jobs={self.max_jobs} jobs of {self.name} are '
                                       f'submitted'}
        return self._probe(res_desc)

    def max_servers(self, res_desc: Mapping[str, Any]) -> int:
        return 0 if self.refusals(res_desc) else self.max_jobs

    def _run(self, command: Sequence[str], cwd: str | None = None) -> CommandResult:
        """Run a scheduler command through the channel (a missing program: rc 127)."""
        try:
            return self.channel.execute(command, timeout=COMMAND_TIMEOUT, cwd=cwd)
        except FileNotFoundError as exc:
            return CommandResult(127, '', f'{command[0]}: {exc.strerror}')

    # -- the job script ---------------------------------------------------------------------------
    def job_script(self, res_desc: Mapping[str, Any], workdir: str, command: Sequence[str],
                   name: str = 'server') -> str:
        """The job script for ``res_desc`` that runs ``command`` in ``workdir``.

        `ValueError` names a key whose value cannot go into a script (or that this allocator
        refuses).
        """
        desc = validate_resource_desc(res_desc, f'{self.name}: resource description')
        refused = self.refusals(desc)
        if refused:
            key, why = next(iter(refused.items()))
            raise ValueError(f'{self.name}: resource description: {key}: {why}')
        output, error = self._output_paths(desc, workdir)
        lines = [*self.directives(desc, self._job_name(desc, name), output, error),
                 *(_directive_text(d, 'native_specification', self.name)
                   for d in desc.get('native_specification', ())),
                 *self.extra_directives]
        environment = '\n'.join(f'export {key}={shlex.quote(value)}'
                                for key, value in desc.get('job_environment', {}).items())
        return self.template.substitute(
            directives='\n'.join(f'{self.directive_prefix} {line}' for line in lines),
            environment=environment, workdir=shlex.quote(workdir),
            command=shlex.join(command), name=self._job_name(desc, name))

    def _job_name(self, desc: Mapping[str, Any], name: str) -> str:
        """``job_name``, or the server's name made into a job name."""
        given = desc.get('job_name')
        if given:
            return given
        cleaned = re.sub(r'[^A-Za-z0-9_.-]', '_', name)
        return cleaned if cleaned[:1].isalpha() else f'oml-{cleaned}'

    def _output_paths(self, desc: Mapping[str, Any], workdir: str) -> tuple[str, str | None]:
        """Where the job's output (and its stderr when kept apart) goes; relative paths are
        relative to the directory the work directory is made in."""
        parent = posixpath.dirname(workdir.rstrip('/'))
        output = posixpath.join(parent, desc.get('output_path') or
                                posixpath.join(workdir, 'job.out'))
        error = desc.get('error_path')
        if error is not None and not desc.get('join_files'):
            error = posixpath.join(parent, error)
        else:
            error = None
        word(output, 'output_path', self.name)
        if error is not None:
            word(error, 'error_path', self.name)
        return output, error

    # -- starting and ending ----------------------------------------------------------------------
    def _start(self, name: str, res_desc: Mapping[str, Any],
               criteria: Mapping[str, Any]) -> StartedServer:
        return start_pilot_job(self, name, res_desc)

    def submit_job(self, res_desc: Mapping[str, Any], workdir: str, command: Sequence[str],
                   name: str = 'job') -> str:
        """Write the job script that runs ``command`` into ``workdir`` (an existing directory
        on the channel's host) and submit it; the job id. The job counts against ``max_jobs``
        until `finish_job`. `AllocationError` when the scheduler refuses it."""
        desc = validate_resource_desc(res_desc, f'{self.name}: resource description')
        script = self.job_script(desc, workdir, command, name)
        script_path = posixpath.join(workdir, self.script_name)
        self.channel.write_file(script_path, script.encode(), 0o700)
        output, error = self._output_paths(desc, workdir)
        submit = self._submit_command(script_path, output, error)
        done = self._run(submit, cwd=workdir)
        job_id = self._parse_job_id(done.stdout) if done.returncode == 0 else ''
        if not job_id:
            raise AllocationError(f'{self.name}: {submit[0]} refused the job (exit status '
                                  f'{done.returncode}): {(done.stderr or done.stdout).strip()}')
        with self._lock:
            self._jobs[job_id] = BatchJob(job_id, workdir, output, error, self)
        logger.info('%s: submitted %s job %s (%s)', self.name, self.kind, job_id, script_path)
        return job_id

    def job(self, job_id: str) -> BatchJob:
        """The job ``job_id`` (one it submitted and has not finished, or one it did not submit,
        whose files it does not know)."""
        with self._lock:
            job = self._jobs.get(job_id)
        return job or BatchJob(job_id, '', '', None, self)

    def finish_job(self, job_id: str, grace: float = 0.0) -> JobStatus:
        """Let the job end by itself for ``grace`` seconds, then cancel it; wait until it left
        the queue (or `CANCEL_WAIT` passed) and forget it. Its last status."""
        job = self.job(job_id)
        poll = min(0.2, self.poll)
        ended = TERMINAL_STATES.__contains__
        try:
            status = wait_until(job, ended, time.monotonic() + grace, poll=poll)
            if status.active:
                done = self._run(self._cancel_command(job_id))
                if done.returncode != 0:
                    logger.debug('%s: cancelling job %s: %s', self.name, job_id,
                                 done.stderr.strip())
                status = wait_until(job, ended, time.monotonic() + CANCEL_WAIT, poll=poll)
                if status.active:
                    logger.warning('%s: job %s still %s %.0f s after it was cancelled',
                                   self.name, job_id, status.native or status.state.name,
                                   CANCEL_WAIT)
            return status
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)

    # -- what went wrong --------------------------------------------------------------------------
    def describe(self, job_id: str, status: JobStatus | None = None) -> str:
        """``'SLURM job 12 CANCELLED (...)'`` (the scheduler's own code for the state), plus
        the tail of its output once it ended."""
        status = status or self.job_status(job_id)
        text = f'{self.kind} job {job_id} {status.native or status.state.name}'
        if status.detail:
            text += f' ({status.detail})'
        if not status.active and self._job(job_id) is not None:
            text += f'; its output ends with:\n{self.output_tail(job_id)}'
        return text

    def _job(self, job_id: str) -> BatchJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def output_tail(self, job_id: str, limit: int = TAIL_CHARS) -> str:
        """The end of the job's output (and of its error file when kept apart)."""
        job = self._job(job_id)
        if job is None:
            return ''
        parts = []
        for path in filter(None, (job.output, job.error)):
            try:
                text = self.channel.read_file(path).decode(errors='replace')[-limit:]
            except OSError as exc:
                text = f'({path}: {exc.strerror or exc})'
            parts.append(text if job.error is None else f'--- {path}\n{text}')
        return '\n'.join(parts).rstrip()

    def status(self, server: FactoryProxy) -> str | None:
        """Once a server's job ended (cancelled, timed out, failed): the scheduler's state and
        the tail of the job's output; None while the job runs."""
        return pilot_job_status(self, self._started(server).info['job_id'])


# -- formatting helpers shared by the schedulers --------------------------------------------------
def hms(seconds: float) -> str:
    """``'HH:MM:SS'`` for a duration (rounded up to whole seconds; hours may exceed 24)."""
    total = math.ceil(seconds)
    return f'{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}'


def kilobytes(value: float) -> int:
    """A size in kB as a whole number (rounded up)."""
    return math.ceil(value)


def local_time(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` as a naive local time (schedulers read dates in the local time zone)."""
    return moment.astimezone().replace(tzinfo=None) if moment.tzinfo else moment


def word(value: str, key: str, name: str) -> str:
    """``value`` for a directive: one word (directives are split on whitespace)."""
    if not value or re.search(r'\s', value):
        raise ValueError(f'{name}: {key} must be one word for a batch directive (no '
                         f'whitespace), got {value!r}')
    return value


def _directive_text(value: str, key: str, name: str) -> str:
    if '\n' in value or '\r' in value:
        raise ValueError(f'{name}: {key} items must be single lines, got {value!r}')
    return value
