"""`BatchAllocator`: allocated servers as batch jobs (the base of `SlurmAllocator` and
`PBSAllocator`).

One job is one *pilot*: ``python -m openmdao_like.resources.pilot SETTINGS`` runs as the job
script's command, registers back to this client (no fixed port anywhere) and serves every
object created on it until it is released; releasing ends the job. The job's work directory
(its settings, script and output) is created through a `Channel` on a file system the cluster
nodes share (a `LocalChannel` when this machine is the login node; an SSH channel reaches
another one).

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
import json
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
from typing import Any, Mapping, NamedTuple, Sequence

from ..errors import AllocationError
from ..remote.client import FactoryProxy
from .allocator import COMMON_KEYS, NOT_NOW, Allocator, Estimate
from .channels import TAIL_CHARS, Channel, CommandResult, LocalChannel
from .description import validate_resource_desc
from .launchers import Launcher
from .registration import registrar_for
from .startup import (STOP_GRACE, StartedServer, connect_registered, default_allowed_hosts,
                      pilot_command, server_settings)

logger = logging.getLogger(__name__)

__all__ = ['BatchAllocator', 'JobState', 'UNKNOWN', 'DEFAULT_TEMPLATE', 'TEMPLATE_FIELDS',
           'BATCH_KEYS',
           'hms', 'kilobytes', 'local_time', 'word']

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

#: The state of a job whose scheduler did not answer.
UNKNOWN = 'UNKNOWN'
#: Seconds `BatchAllocator.status` waits for a job on its way out to reach its final state.
ENDING_WAIT = 5.0

_SHELL_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


class JobState(NamedTuple):
    """A job's state as its scheduler reports it: the state's name, whether the job still
    waits or runs (``active``), whether it waits in the queue (``queued``), and details
    (reason, exit code). A scheduler that does not answer gives `UNKNOWN` (active)."""

    state: str
    active: bool
    detail: str = ''
    queued: bool = False


@dataclass
class _Job:
    """A submitted job: its id, work directory and output files."""

    id: str
    workdir: str
    output: str
    error: str | None


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
    #: States of a job on its way out (SLURM COMPLETING, PBS E): `status` waits for the end.
    ending_states: frozenset[str] = frozenset({'COMPLETING', 'E'})

    def __init__(self, name: str, template: str | None = None, python: str | None = None,
                 workdir: str | None = None, channel: Channel | None = None,
                 max_jobs: int = 64, queue_timeout: float = 3600.0,
                 extra_directives: Sequence[str] = (), client_address: str | None = None,
                 allowed_hosts: Sequence[str] = (), mpi_launcher: Launcher | None = None,
                 poll: float = 1.0):
        super().__init__(name)
        self.template = _template(template, name)
        self.python = sys.executable if python is None else _string(python, 'python', name)
        self.workdir = None if workdir is None else _string(workdir, 'workdir', name)
        if channel is not None and not isinstance(channel, Channel):
            raise ValueError(f'{name}: channel must be a Channel, got {channel!r}')
        self.channel = channel or LocalChannel()
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
            raise ValueError(f'{name}: max_jobs must be a positive integer, got {max_jobs!r}')
        self.max_jobs = max_jobs
        self.queue_timeout = _positive(queue_timeout, 'queue_timeout', name)
        self.poll = _positive(poll, 'poll', name)
        self.extra_directives = _strings(extra_directives, 'extra_directives', name)
        self.client_address = None if client_address is None else \
            _string(client_address, 'client_address', name)
        self.allowed_hosts = _strings(allowed_hosts, 'allowed_hosts', name)
        if mpi_launcher is not None and not isinstance(mpi_launcher, Launcher):
            raise ValueError(f'{name}: mpi_launcher must be a Launcher, got {mpi_launcher!r}')
        self.mpi_launcher = mpi_launcher or self._default_mpi_launcher()
        self._jobs: dict[str, _Job] = {}

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
        Allocator.__init__(self, state['name'])
        vars(self).update(state)
        self._jobs = {}

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
    def job_state(self, job_id: str) -> JobState:
        """The job's state now (``active`` False once it ended or the scheduler forgot it)."""

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
        desc = validate_resource_desc(res_desc, f'{self.name}: resource description')
        cpus = desc.get('min_cpus', 1)
        mpi = desc.get('job_category') == 'MPI'
        client = self.client_address or self.channel.client_address()
        expectation = registrar_for(client).expect()
        workdir = self.channel.mkdtemp(prefix='oml-job-',
                                       parent=desc.get('working_directory') or self.workdir)
        job_id: str | None = None
        checker = _Checker(self)
        try:
            settings = server_settings(
                expectation, workdir, 'auto',
                default_allowed_hosts(client, 'auto', self.allowed_hosts),
                self.mpi_launcher.wrap([], cpus) if mpi else None)
            settings_path = posixpath.join(workdir, 'settings.json')
            self.channel.write_file(settings_path, json.dumps(settings).encode(), 0o600)
            job_id = checker.job_id = self.submit_job(
                desc, workdir, pilot_command(self.python, settings_path), name)
            what = f'{self.name}: {self.kind} job {job_id} ({name})'
            try:
                registration = expectation.wait(self.queue_timeout, checker, what)
            except AllocationError as exc:
                if checker.reported:
                    raise
                raise AllocationError(f'{exc}; {self.describe(job_id, checker.last)}') \
                    from None
            proxy = connect_registered(registration, what)
        except BaseException:
            expectation.registrar.forget(expectation.id)
            if job_id is not None:
                self.finish_job(job_id)
            self.channel.remove_tree(workdir)
            raise
        logger.info('%s: job %s serves %s from %s:%d', self.name, job_id, name,
                    registration.host, registration.port)
        info = {'name': name, 'host': registration.host, 'port': registration.port,
                'pid': registration.pid, 'job_id': job_id, 'workdir': workdir, 'cpus': cpus,
                'hostname': registration.info.get('hostname'),
                'output': self._job(job_id).output}
        return StartedServer(proxy, registration, info,
                             lambda: self.finish_job(job_id, grace=STOP_GRACE),
                             lambda: self.channel.remove_tree(workdir))

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
            self._jobs[job_id] = _Job(job_id, workdir, output, error)
        logger.info('%s: submitted %s job %s (%s)', self.name, self.kind, job_id, script_path)
        return job_id

    def finish_job(self, job_id: str, grace: float = 0.0) -> JobState:
        """Let the job end by itself for ``grace`` seconds, then cancel it; wait until it left
        the queue (or `CANCEL_WAIT` passed) and forget it. Its last state."""
        try:
            state = self._wait_inactive(job_id, grace)
            if state.active:
                done = self._run(self._cancel_command(job_id))
                if done.returncode != 0:
                    logger.debug('%s: cancelling job %s: %s', self.name, job_id,
                                 done.stderr.strip())
                state = self._wait_inactive(job_id, CANCEL_WAIT)
                if state.active:
                    logger.warning('%s: job %s still %s %.0f s after it was cancelled',
                                   self.name, job_id, state.state, CANCEL_WAIT)
            return state
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)

    def _wait_inactive(self, job_id: str, timeout: float) -> JobState:
        deadline = time.monotonic() + timeout
        state = self.job_state(job_id)
        while state.active and time.monotonic() < deadline:
            time.sleep(min(0.2, self.poll))
            state = self.job_state(job_id)
        return state

    # -- what went wrong --------------------------------------------------------------------------
    def describe(self, job_id: str, state: JobState | None = None) -> str:
        """``'SLURM job 12 CANCELLED (...)'``, plus the tail of its output once it ended."""
        state = state or self.job_state(job_id)
        text = f'{self.kind} job {job_id} {state.state}'
        if state.detail:
            text += f' ({state.detail})'
        if not state.active and self._job(job_id) is not None:
            text += f'; its output ends with:\n{self.output_tail(job_id)}'
        return text

    def _job(self, job_id: str) -> _Job | None:
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
        job_id = self._started(server).info['job_id']
        state = self.job_state(job_id)
        deadline = time.monotonic() + ENDING_WAIT
        while state.active and state.state in self.ending_states and \
                time.monotonic() < deadline:  # its server just went: wait for the verdict
            time.sleep(0.2)
            state = self.job_state(job_id)
        if state.active and state.state not in self.ending_states:
            return None
        return self.describe(job_id, state)


class _Checker:
    """``check()`` for `Expectation.wait`: why the job can no longer register (it ended), asking
    the scheduler at most every ``poll`` seconds."""

    def __init__(self, allocator: BatchAllocator):
        self.allocator = allocator
        self.job_id: str | None = None
        self.last: JobState | None = None
        self.reported = False
        self._next = 0.0

    def __call__(self) -> str | None:
        now = time.monotonic()
        if self.job_id is None or now < self._next:
            return None
        self._next = now + self.allocator.poll
        self.last = self.allocator.job_state(self.job_id)
        if self.last.active:
            return None
        self.reported = True
        return self.allocator.describe(self.job_id, self.last)


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


def _template(template: str | None, name: str) -> string.Template:
    """The job script template from text or a file, checked for its placeholders."""
    if template is None:
        text = DEFAULT_TEMPLATE
    elif not isinstance(template, str) or not template:
        raise ValueError(f'{name}: template must be template text or the path of a file '
                         f'holding it, got {template!r}')
    elif '\n' not in template and os.path.isfile(template):
        with open(template, encoding='utf-8') as src:
            text = src.read()
    elif '\n' not in template:
        raise ValueError(f'{name}: template {template!r} is no file (template text has more '
                         f'than one line)')
    else:
        text = template
    parsed = string.Template(text)
    if not parsed.is_valid():
        raise ValueError(f'{name}: template has a bad placeholder ("$" must be followed by a '
                         f'name or "$"): {text[:200]!r}')
    used = set(parsed.get_identifiers())
    unknown = used - set(TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(f'{name}: template uses unknown placeholders '
                         f'{", ".join(sorted(unknown))}; known: {", ".join(TEMPLATE_FIELDS)}')
    missing = {'directives', 'command'} - used
    if missing:
        raise ValueError(f'{name}: template must contain {", ".join(sorted(missing))} (as '
                         f'$directives and $command)')
    return parsed


def _string(value: Any, what: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f'{name}: {what} must be a non-empty string, got {value!r}')
    return value


def _strings(value: Any, what: str, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) and v for v in value):
        raise ValueError(f'{name}: {what} must be a list of non-empty strings, got {value!r}')
    return tuple(_directive_text(v, what, name) for v in value)


def _positive(value: Any, what: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f'{name}: {what} must be a positive number of seconds, got {value!r}')
    return float(value)
