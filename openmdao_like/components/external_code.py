"""`ExternalCode`: a component that runs a program (a solver binary, a script) on files, here or
on a server allocated for its ``resources``, and moves its input and output files.

Here, the command runs in the component's directory as an argument list (no shell), in a process
group of its own (started through `openmdao_like.resources.channels.LocalChannel`; a timeout
kills the whole group), with ``env`` on top of this process's environment and
stdin/stdout/stderr redirected to the named files.

With ``resources``, the component allocates a server from the resource allocation manager
(``openmdao_like.resources.manager.RAM``) and keeps it across runs; `pre_delete`, a change of
``resources``, garbage collection and interpreter exit release it. Each run uploads the input
files into a private directory below the server's root, runs the command there and downloads
the declared output files (and the stdout/stderr files) back (see `.remote_command`).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import glob
import logging
import multiprocessing.util
import os
import posixpath
import re
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

from traits.api import observe

from .. import tree
from ..component import Component
from ..errors import (AllocationError, ExternalCodeError, ExternalCodeTimeout, PathError,
                      RemoteError, ValidationError, describe)
from ..resources.channels import KILL_GRACE, LocalChannel, LocalProcess
from ..variables import Bool, Dict, File, FileRef, Float, Int, List, Str
from .remote_command import fetch_outputs, run_on_server, upload_inputs

logger = logging.getLogger(__name__)

__all__ = ['ExternalCode', 'FileMetadata', 'DEV_NULL', 'STDOUT']

#: Stream value: read nothing / discard the output.
DEV_NULL = os.devnull
#: ``stderr`` value: standard error goes where standard output goes.
STDOUT = subprocess.STDOUT
#: Lines and characters (at most) of standard error quoted in an error message.
TAIL_LINES, TAIL_CHARS = 20, 2000
_GLOB = re.compile(r'[*?[]')
_ENV_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')


class FileMetadata(dict):
    """One entry of `ExternalCode.external_files` (classic API).

    ``path`` is a file name or a glob pattern (in its last part only), relative to the
    component's directory; ``input`` files are checked before the run and sent to a server,
    ``output`` files are checked after it and fetched back; ``binary`` and ``desc`` describe it.
    A plain dict with these keys is accepted as well; entries also read as attributes.
    """

    KEYS = ('path', 'input', 'output', 'binary', 'desc')

    def __init__(self, path: str, **metadata: Any):
        super().__init__(path=path, input=False, output=False, binary=False, desc='')
        self.update(metadata)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class _Outcome:
    """What one run of the command gave."""

    returncode: int
    timed_out: bool = False
    cannot_start: str | None = None
    captured: str = ''
    host: str | None = None


def _stream_setting(name: str, joins: bool, doc: str) -> property:
    """The property of a stdin/stdout/stderr setting: None, `DEV_NULL`, (stderr) `STDOUT` or a
    file name relative to the component's directory, checked when set."""

    def get(self: Any) -> Any:
        return getattr(self, f'_{name}', None)

    def set_(self: Any, value: Any) -> None:
        where = f'{tree.where(self)}.{name}'
        if not (value is None or value == DEV_NULL or (joins and value == STDOUT)):
            if not isinstance(value, str):
                extra = ', ExternalCode.STDOUT' if joins else ''
                raise ValidationError(f'{where}: expected None, ExternalCode.DEV_NULL{extra} or '
                                      f'a file name relative to the component directory, got '
                                      f'{describe(value)}')
            _relative(value, where)
        setattr(self, f'_{name}', value)

    return property(get, set_, doc=doc)


class ExternalCode(Component):
    """Run an external program as a component, here or where ``resources`` fit.

    Subclasses declare File variables for the files the program reads (inputs) and writes
    (outputs, with ``local_path``), typically write an input file in `execute`, call
    ``super().execute()``, and parse the output file.

    Parameters
    ----------
    command : list of str
        Program and arguments, run without a shell.
    resources : dict, optional
        A resource description (see `openmdao_like.resources`); empty: run here.
    timeout : float
        Seconds after which the command's process group is killed (0: no limit).
    env : dict, optional
        Environment variables for the command (``env_vars`` is the classic alias).
    external_files : list of FileMetadata or dict, optional
        Further files the command reads or writes (``path``, ``input``, ``output``, ``binary``).
    stdin, stdout, stderr : str or None
        File names (relative to the component's directory) to redirect to; `DEV_NULL`;
        ``stderr=STDOUT`` joins standard error to standard output. None: inherit this
        process's stream here; on a server, the stream is returned and logged at DEBUG level.
    poll_delay : float
        Longest single wait between checks of a local run's timeout (0: one wait).
    check_external_outputs : bool
        Whether `execute` checks that the output files were written (subclasses that make
        outputs themselves turn it off and call `check_files`).
    """

    DEV_NULL = DEV_NULL
    STDOUT = STDOUT
    #: ObjServers serve it only when started with shell access.
    runs_commands = True

    command = List(Str(), desc='The program and its arguments (run without a shell).')
    env = Dict(Str(), Str(), iotype='in',
               desc="Environment variables for the command, on top of this process's.")
    resources = Dict(iotype='in', desc='Resource description of the server to run on '
                                       '(empty: run here).')
    timeout = Float(0.0, low=0.0, iotype='in', units='s',
                    desc='Time after which the command is killed (0: no limit).')
    poll_delay = Float(0.0, low=0.0, iotype='in', units='s',
                       desc='Longest single wait between timeout checks (0: one wait).')
    check_external_outputs = Bool(True, desc='Whether execute checks the output files.')
    timed_out = Bool(False, iotype='out', desc='Whether the last run timed out.')
    return_code = Int(0, iotype='out',
                      desc='Exit status of the last run (negative: killed by that signal).')

    stdin = _stream_setting('stdin', False, 'File read as standard input.')
    stdout = _stream_setting('stdout', False, 'File standard output goes to.')
    stderr = _stream_setting('stderr', True, 'File standard error goes to.')

    # the server allocated for `resources` (never pickled)
    _server: Any = None
    _server_for: dict | None = None
    _remote_dir = ''
    _release_at_exit: Any = None

    def __init__(self, command: Iterable[str] | None = None,
                 resources: Mapping[str, Any] | None = None, timeout: float = 0.0,
                 env: Mapping[str, str] | None = None, external_files: Iterable[Any] = (),
                 stdin: str | None = DEV_NULL, stdout: str | None = None,
                 stderr: str | int | None = 'error.out', poll_delay: float = 0.0,
                 check_external_outputs: bool = True, **traits: Any):
        super().__init__(**traits)
        self.command = [] if command is None else \
            list(command) if isinstance(command, tuple) else command
        self.resources = _mapping(resources, f'{tree.where(self)}.resources',
                                  'a resource description (a dict, e.g. {"allocator": '
                                  '"LocalHost"})')
        self.timeout = timeout
        self.env = _mapping(env, f'{tree.where(self)}.env', 'a dict of variable names to str '
                                                       'values')
        self.external_files = external_files
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.poll_delay = poll_delay
        self.check_external_outputs = check_external_outputs

    # -- settings -------------------------------------------------------------------------------
    @property
    def env_vars(self) -> Any:
        """Classic name of `env`."""
        return self.env

    @env_vars.setter
    def env_vars(self, value: Mapping[str, str]) -> None:
        self.env = value

    @property
    def external_files(self) -> list[FileMetadata]:
        """The further files the command reads or writes (see `FileMetadata`)."""
        return list(self._external_files)

    @external_files.setter
    def external_files(self, value: Iterable[Any]) -> None:
        where = f'{tree.where(self)}.external_files'
        if isinstance(value, (str, Mapping)) or not isinstance(value, Iterable):
            raise ValidationError(f'{where}: expected a list of FileMetadata or dicts, got '
                                  f'{describe(value)}')
        self._external_files = tuple(_file_spec(item, f'{where}[{i}]')
                                     for i, item in enumerate(value))

    @observe('resources, resources_items')
    def _on_resources(self, event: Any) -> None:
        """A server allocated for other resources is released at once."""
        if self._server is not None and dict(self.resources) != self._server_for:
            self._release_server()

    # -- running --------------------------------------------------------------------------------
    def run(self, force: bool = False, case_uuid: Any = None) -> None:
        """Run in the component's directory, which no other ExternalCode (of any process or
        thread) uses meanwhile: parallel case runners share component directories."""
        path = self.get_abs_directory()
        os.makedirs(path, exist_ok=True)
        with _directory_lock(path), _working_directory(path):
            super().run(force, case_uuid)

    def execute(self) -> None:
        """Check the input files, run the command (here or on a server for ``resources``),
        then check the output files and set the File outputs."""
        self.return_code = 0
        self.timed_out = False
        command = self._checked_command()
        env = self._checked_env()
        directory = self.get_abs_directory()
        self._adopt_file_inputs(directory)
        self.check_files(inputs=True)
        self._remove_old_outputs(directory)
        if self.resources:
            outcome = self._run_remote(command, env, directory)
        else:
            outcome = self._run_local(command, env, directory)
        self.return_code = outcome.returncode
        self.timed_out = outcome.timed_out
        if outcome.cannot_start or outcome.timed_out or outcome.returncode:
            raise self._failure(command, outcome, directory)
        if self.check_external_outputs:
            self._check_files(False, outcome)
        for name, var in self._file_vars('out'):
            if var.local_path:
                setattr(self, name, FileRef(var.local_path, self, var.binary, var.content_type))

    def check_files(self, inputs: bool) -> None:
        """Check that the input (``inputs=True``) or output files exist (classic API): File
        variables, `external_files` without a pattern, and (inputs) the stdin file. Raises
        `ExternalCodeError` naming the first missing file."""
        self._check_files(inputs, _Outcome(self.return_code,
                                           host=getattr(self._server, 'host', None)))

    def _check_files(self, inputs: bool, outcome: _Outcome) -> None:
        directory = self.get_abs_directory()
        command = list(self.command)
        for rel, what in self._declared_files(inputs, directory):
            full = os.path.join(directory, rel)
            if os.path.isfile(full):
                continue
            if inputs:
                raise ExternalCodeError(f'{tree.where(self)}: cannot run {command!r}: {what} '
                                        f'{rel!r} is missing (expected {full})', command)
            tail, note = self._stderr_tail(directory, outcome)
            raise ExternalCodeError(
                f'{tree.where(self)}: {command!r}{_on(outcome, directory)} exited with return '
                f'code {outcome.returncode} but did not write {what} {rel!r} (expected '
                f'{full}); {note}', command, outcome.returncode, tail, outcome.host)

    def _checked_command(self) -> list[str]:
        command = list(self.command)
        if not command or not command[0]:
            raise ValidationError(f'{tree.where(self)}.command: expected a non-empty list of '
                                  f'strings, the program first (e.g. ["solver", "in.dat"]), '
                                  f'got {command!r}')
        return command

    def _checked_env(self) -> dict[str, str]:
        env = dict(self.env)
        for name in env:
            if not _ENV_NAME.match(name):
                raise ValidationError(f'{tree.where(self)}.env: expected variable names made of '
                                      f'letters, digits and _ (not starting with a digit), '
                                      f'got {name!r}')
        return env

    # -- files ----------------------------------------------------------------------------------
    def _file_vars(self, iotype: str) -> list[tuple[str, File]]:
        return [(name, var) for name, var in tree.variables(self).items()
                if isinstance(var, File) and var.iotype == iotype]

    def _adopt_file_inputs(self, directory: str) -> None:
        """Copy File inputs that refer to files outside the directory into it."""
        for name, var in self._file_vars('in'):
            ref = getattr(self, name)
            if ref is not None and not _inside(ref.abspath(), directory):
                setattr(self, name, ref.copy_to(self, var.local_path or
                                                os.path.basename(ref.path)))

    def _declared_files(self, inputs: bool, directory: str) -> list[tuple[str, str]]:
        """(path relative to the directory, what it is) of the files that must exist before
        (``inputs``) or after the run; patterns are not listed."""
        found = []
        for name, var in self._file_vars('in' if inputs else 'out'):
            ref = getattr(self, name)
            if not inputs and var.local_path:
                rel = var.local_path
            elif ref is not None:
                rel = os.path.relpath(ref.abspath(), directory)
            else:
                continue
            kind = 'input' if inputs else 'output'
            found.append((rel, f'the file of {kind} {tree.where(self)}.{name}'))
        key = 'input' if inputs else 'output'
        found += [(spec['path'], f'{key} file (external_files)')
                  for spec in self._external_files
                  if spec[key] and not _GLOB.search(spec['path'])]
        if inputs and self.stdin not in (None, DEV_NULL):
            found.append((self.stdin, 'stdin file'))
        return found

    def _remove_old_outputs(self, directory: str) -> None:
        """Remove output files left by an earlier run (unless also inputs), so that a file the
        command did not write is never taken for its result."""
        keep = {os.path.normpath(rel) for rel, _ in self._declared_files(True, directory)}
        for rel, _ in self._declared_files(False, directory):
            if os.path.normpath(rel) not in keep:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(directory, rel))

    def _input_paths(self, directory: str) -> list[str]:
        """Relative paths of every existing input file (patterns expanded), for a server."""
        paths = [rel for rel, _ in self._declared_files(True, directory)]
        for spec in self._external_files:
            if spec['input'] and _GLOB.search(spec['path']):
                paths += sorted(glob.glob(spec['path'], root_dir=directory))
        return [rel for rel in dict.fromkeys(paths)
                if os.path.isfile(os.path.join(directory, rel))]

    def _output_patterns(self) -> list[str]:
        """Relative paths and patterns of the files to fetch from a server."""
        patterns = [var.local_path for _, var in self._file_vars('out') if var.local_path]
        patterns += [spec['path'] for spec in self._external_files if spec['output']]
        patterns += [s for s in (self.stdout, self.stderr) if isinstance(s, str) and
                     s != DEV_NULL]
        return list(dict.fromkeys(patterns))

    # -- here -----------------------------------------------------------------------------------
    def _run_local(self, command: list[str], env: dict[str, str], directory: str) -> _Outcome:
        logger.debug('%s: running %s in %s', tree.where(self), command, directory)
        with contextlib.ExitStack() as files:
            streams = {name: self._local_stream(files, name, directory)
                       for name in ('stdin', 'stdout', 'stderr')}
            try:
                process = LocalChannel().spawn(command, env, directory, **streams)
            except OSError as exc:
                code = 127 if isinstance(exc, FileNotFoundError) else 126
                return _Outcome(code, cannot_start=_why_not_started(
                    exc, command, {**os.environ, **env} if env else None))
            try:
                returncode = self._wait(process)
            except BaseException:
                process.kill(KILL_GRACE)
                raise
        if returncode is None:
            status = process.kill(KILL_GRACE)
            return _Outcome(-signal.SIGKILL if status is None else status, timed_out=True)
        return _Outcome(returncode)

    def _local_stream(self, files: contextlib.ExitStack, name: str, directory: str) -> Any:
        value = getattr(self, name)
        if value is None:
            return None
        if value == DEV_NULL:
            return subprocess.DEVNULL
        if value == STDOUT:
            return subprocess.STDOUT
        path = os.path.join(directory, value)
        if name != 'stdin':
            os.makedirs(os.path.dirname(path), exist_ok=True)
        return files.enter_context(open(path, 'rb' if name == 'stdin' else 'wb'))

    def _wait(self, process: LocalProcess) -> int | None:
        """The exit status of ``process``, or None once ``timeout`` has passed."""
        deadline = time.monotonic() + self.timeout if self.timeout else None
        step = self.poll_delay or None
        while True:
            wait = step
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                wait = remaining if step is None else min(step, remaining)
            status = process.wait(wait)
            if status is not None:
                return status

    # -- on a server ----------------------------------------------------------------------------
    def _run_remote(self, command: list[str], env: dict[str, str], directory: str) -> _Outcome:
        server = self._allocated_server()
        try:
            return self._run_on(server, command, env, directory)
        except RemoteError as exc:
            exc.add_note(f'{tree.where(self)}: the server on {server.host} was released; the next '
                         f'run allocates a new one')
            self._release_server()
            raise

    def _allocated_server(self) -> Any:
        """The server for ``resources`` (allocated on first use, kept across runs)."""
        wanted = copy.deepcopy(dict(self.resources))
        if self._server is not None and wanted != self._server_for:
            self._release_server()
        if self._server is None:
            from ..resources.description import validate_resource_desc
            from ..resources.manager import RAM

            where = tree.where(self)
            desc = validate_resource_desc(wanted, f'{where}.resources')
            try:
                server, info = RAM.allocate(desc, name=where)
            except AllocationError as exc:
                raise AllocationError(f'{where}: cannot allocate a server for its resources: '
                                      f'{exc}') from exc
            self._server, self._server_for = server, wanted
            self._remote_dir = f'external_code-{uuid.uuid4().hex[:12]}'
            self._release_at_exit = multiprocessing.util.Finalize(
                self, _release, args=(RAM, server, where), exitpriority=10)
            logger.info('%s: allocated %s (%s)', where, server, info)
        return self._server

    def _release_server(self) -> None:
        """Release the allocated server, if any."""
        release = self._release_at_exit
        self._server = self._server_for = self._release_at_exit = None
        if release is not None:
            release()

    def _run_on(self, server: Any, command: list[str], env: dict[str, str],
                directory: str) -> _Outcome:
        rdir, host = self._remote_dir, server.host
        upload_inputs(server, rdir, directory, self._input_paths(directory))
        logger.debug('%s: running %s on %s in %s', tree.where(self), command, host, rdir)
        run = run_on_server(server, rdir, command, env, self.stdin or DEV_NULL, self.stdout,
                            self.stderr, self.timeout, KILL_GRACE)
        for name, text in (('output', run.stdout), ('error', run.stderr)):
            if text:
                logger.debug('%s: standard %s of %s on %s:\n%s', tree.where(self), name, command,
                             host, text)
        fetch_outputs(server, rdir, directory, self._output_patterns())
        captured = run.stdout if self.stderr == STDOUT else run.stderr
        if run.cannot_start:
            how = ' with its env' if env else ''
            why = (f'executable {command[0]!r} not found (PATH of the server{how})'
                   if run.returncode == 127 else f'{command[0]!r}: {run.cannot_start}')
            return _Outcome(run.returncode, cannot_start=why, captured=captured, host=host)
        return _Outcome(run.returncode, run.timed_out, captured=captured, host=host)

    # -- failures -------------------------------------------------------------------------------
    def _failure(self, command: list[str], outcome: _Outcome,
                 directory: str) -> ExternalCodeError:
        """The error of a run that could not start, timed out or exited non-zero."""
        where, on = tree.where(self), _on(outcome, directory)
        tail, note = self._stderr_tail(directory, outcome)
        details = (command, outcome.returncode, tail, outcome.host)
        if outcome.cannot_start:
            return ExternalCodeError(f'{where}: cannot run {command!r}{on}: '
                                     f'{outcome.cannot_start}', *details)
        if outcome.timed_out:
            return ExternalCodeTimeout(f'{where}: {command!r}{on} timed out after '
                                       f'{self.timeout:g} s; its process group was killed '
                                       f'(return code {outcome.returncode}); {note}', *details)
        return ExternalCodeError(f'{where}: {command!r}{on} exited with return code '
                                 f'{outcome.returncode}{_signal_name(outcome.returncode)}; '
                                 f'{note}', *details)

    def _stderr_tail(self, directory: str, outcome: _Outcome) -> tuple[str, str]:
        """(end of the command's standard error, a phrase saying what it is)."""
        source = self.stdout if self.stderr == STDOUT else self.stderr
        if source == DEV_NULL:
            return '', 'its standard error was discarded (DEV_NULL)'
        if source is None:
            if outcome.host is None:
                return '', "its standard error went to this process's standard error"
            text, source = outcome.captured, 'returned by the server'
        else:
            try:
                with open(os.path.join(directory, source), 'rb') as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - TAIL_CHARS))
                    text = f.read().decode(errors='replace')
            except FileNotFoundError:
                return '', f'its standard error file {source!r} is missing'
        tail = _tail(text)
        if not tail:
            return '', f'its standard error ({source}) is empty'
        return tail, f'its standard error ({source}) ends with:\n{tail}'

    # -- life cycle -----------------------------------------------------------------------------
    def pre_delete(self) -> None:
        """Release the server allocated for ``resources`` (classic API)."""
        self._release_server()
        super().pre_delete()

    def __getstate__(self):
        state = super().__getstate__()
        for name in ('_server', '_server_for', '_remote_dir', '_release_at_exit'):
            state.pop(name, None)
        return state


def _mapping(value: Any, where: str, accepts: str) -> dict:
    """A copy of ``value``, a mapping (None: empty); `ValidationError` otherwise."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f'{where}: expected {accepts}, got {describe(value)}')
    return dict(value)


def _file_spec(item: Any, where: str) -> FileMetadata:
    """``item`` (a FileMetadata or a dict) checked, as a FileMetadata."""
    if not isinstance(item, Mapping):
        raise ValidationError(f'{where}: expected a FileMetadata or a dict with keys '
                              f'{", ".join(FileMetadata.KEYS)}, got {describe(item)}')
    unknown = sorted(set(item) - set(FileMetadata.KEYS))
    if unknown:
        raise ValidationError(f'{where}: unknown key {unknown[0]!r}; expected keys among '
                              f'{", ".join(FileMetadata.KEYS)}')
    if 'path' not in item:
        raise ValidationError(f'{where}: expected a "path" key, got keys {sorted(item)}')
    spec = FileMetadata(**item)
    path = _relative(spec['path'], f'{where}.path')
    if _GLOB.search(posixpath.dirname(path)):
        raise ValidationError(f'{where}.path: expected a glob pattern in the file name only, '
                              f'got {path!r}')
    for key in ('input', 'output', 'binary'):
        if not isinstance(spec[key], bool):
            raise ValidationError(f'{where}.{key}: expected True or False, got '
                                  f'{describe(spec[key])}')
    if not isinstance(spec['desc'], str):
        raise ValidationError(f'{where}.desc: expected a str, got {describe(spec["desc"])}')
    return spec


def _relative(path: Any, where: str) -> str:
    """``path`` checked to be relative and to stay inside the component's directory."""
    if not isinstance(path, str) or not path:
        raise ValidationError(f'{where}: expected a non-empty file name relative to the '
                              f'component directory, got {describe(path)}')
    norm = posixpath.normpath(path)
    if posixpath.isabs(path) or norm == '..' or norm.startswith('../') or path.startswith('-'):
        raise PathError(f'{where}: expected a path relative to the component directory that '
                        f'stays inside it and does not start with "-", got {path!r}')
    return path


def _inside(path: str, directory: str) -> bool:
    return os.path.commonpath([directory, os.path.abspath(path)]) == directory


@contextlib.contextmanager
def _working_directory(path: str) -> Iterator[None]:
    cwd = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(cwd)


_held = threading.local()


@contextlib.contextmanager
def _directory_lock(path: str) -> Iterator[None]:
    """Hold ``path`` against other processes and threads (an flock on the directory itself;
    re-entrant within a thread)."""
    held = _held.__dict__.setdefault('paths', set())
    if path in held:
        yield
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(path)
        try:
            yield
        finally:
            held.discard(path)
    finally:
        os.close(fd)


def _why_not_started(exc: OSError, command: list[str], env: Mapping[str, str] | None) -> str:
    program = command[0]
    if isinstance(exc, FileNotFoundError) and os.sep not in program:
        path = (env if env is not None else os.environ).get('PATH', os.defpath)
        return f'executable {program!r} not found on PATH ({path})'
    return f'{program!r}: {exc.strerror}'


def _release(manager: Any, server: Any, where: str) -> None:
    """Release ``server`` (pre_delete, new resources, garbage collection or exit)."""
    try:
        manager.release(server)
        logger.info('%s: released %s', where, server)
    except (ValueError, RemoteError, OSError) as exc:  # e.g. released by the manager at exit
        logger.debug('%s: releasing %s: %s', where, server, exc)


def _tail(text: str) -> str:
    """The last `TAIL_LINES` lines of ``text``, at most `TAIL_CHARS` characters, stripped."""
    text = '\n'.join(text.strip().splitlines()[-TAIL_LINES:])
    if len(text) > TAIL_CHARS:
        text = text[-TAIL_CHARS:]
        text = text.split('\n', 1)[-1] if '\n' in text else text
    return text


def _on(outcome: _Outcome, directory: str) -> str:
    return f' on {outcome.host}' if outcome.host else f' in {directory}'


def _signal_name(returncode: int) -> str:
    if returncode >= 0:
        return ''
    try:
        return f' (killed by {signal.Signals(-returncode).name})'
    except ValueError:
        return f' (killed by signal {-returncode})'
