"""Processes on this machine: one way to start them (`spawn`, `execute`) and one way to stop
them (`ChannelProcess.kill`: SIGTERM to the process group, SIGKILL after a grace period, then a
bounded wait until they are gone).

A process started here leads a session of its own, so that everything it starts is ended with
it. `openmdao_like.resources.channels` builds its channels on this module (a `LocalChannel`
runs its commands here; an `SSHChannel`'s processes are `ChannelProcess` handles too); layers
below ``resources`` that start processes (the object server factory) use it directly. It
imports nothing of the framework, so any layer may use it.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import signal
import subprocess
import time
from typing import IO, Any, Mapping, NamedTuple, Sequence

logger = logging.getLogger(__name__)

__all__ = ['CommandResult', 'CommandTimeout', 'ChannelProcess', 'LocalProcess', 'PidProcess',
           'spawn', 'execute', 'LOG', 'KILL_GRACE', 'REAP_TIMEOUT', 'TAIL_CHARS']

#: Characters of a process's output kept for error messages.
TAIL_CHARS = 2000
#: Seconds `ChannelProcess.kill` gives a process group between SIGTERM and SIGKILL (default).
KILL_GRACE = 5.0
#: Seconds `ChannelProcess.kill` waits after SIGKILL for the processes to be gone.
REAP_TIMEOUT = 10.0
#: Longest single sleep while waiting for processes to end.
_POLL_MAX = 0.05


class _Log:
    """The type of `LOG`."""

    def __repr__(self) -> str:
        return 'LOG'


#: Stream value of `spawn`: the ``log_path`` file (discarded without one).
LOG = _Log()


class CommandResult(NamedTuple):
    """What a finished command gave: return code and output (decoded text, or bytes when
    asked for)."""

    returncode: int
    stdout: str
    stderr: str


class CommandTimeout(TimeoutError):
    """A command did not finish in time; its process group was killed. ``result`` holds its
    exit status (negative: the signal that ended it) and the output it wrote until then."""

    def __init__(self, message: str, result: CommandResult):
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple:
        return type(self), (str(self), self.result)


class ChannelProcess(abc.ABC):
    """A handle on a command started in the background (`spawn`, `Channel.spawn`): a server
    process, a job, a program run by a component."""

    pid: int

    @abc.abstractmethod
    def poll(self) -> int | None:
        """Its exit status, or None while it runs."""

    @abc.abstractmethod
    def kill(self, grace: float = KILL_GRACE) -> int | None:
        """End it and whatever it started (its process group): SIGTERM, SIGKILL after
        ``grace`` seconds, then wait (at most `REAP_TIMEOUT` seconds) until they are gone.
        Its exit status (None if it could not be reaped in time); no error if it already
        ended."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds; its exit status, or None if it still runs."""

    @abc.abstractmethod
    def output_tail(self, limit: int = TAIL_CHARS) -> str:
        """The end of what it wrote to stdout and stderr (for error messages)."""


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; whether any process of it was there."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member now runs as another user: nothing we may do
        return True
    return True


def _group_running(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies, which init reaps, do not
    count)."""
    if not _signal_group(pgid, 0):
        return False
    try:
        entries = os.listdir('/proc')
    except OSError:  # no /proc: take the kernel's word, zombies included
        return True
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/stat', 'rb') as stat:
                fields = stat.read().rsplit(b') ', 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != b'Z':
            return True
    return False


class LocalProcess(ChannelProcess):
    """A command running on this machine in its own session (so it is ended as a group).

    ``stdin`` and ``stdout`` are its pipes when `LocalChannel.spawn` was asked for them.
    """

    def __init__(self, proc: subprocess.Popen, log_path: str | None,
                 command: Sequence[str] = ()):
        self.proc = proc
        self.pid = proc.pid
        self.log_path = log_path
        self.command = list(command)

    def __repr__(self) -> str:
        return f'<LocalProcess {self.pid}: {" ".join(self.command)[:200]}>'

    @property
    def stdin(self) -> IO[bytes] | None:
        """The pipe to its standard input (None unless asked for)."""
        return self.proc.stdin

    @property
    def stdout(self) -> IO[bytes] | None:
        """The pipe from its standard output (None unless asked for)."""
        return self.proc.stdout

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._close_pipes()
        return status

    def communicate(self, timeout: float | None) -> tuple[Any, Any]:
        """Its output on the pipes asked for, once it ends; `subprocess.TimeoutExpired` after
        ``timeout`` seconds (call again, e.g. after `kill`, for the rest)."""
        return self.proc.communicate(timeout=timeout)

    def kill(self, grace: float = KILL_GRACE) -> int | None:
        proc = self.proc
        # Only while the leader is unreaped is its pid surely still this group's id (it could
        # be reused once the group is empty): a process whose end was seen is left alone.
        if proc.returncode is None:
            _signal_group(self.pid, signal.SIGTERM)
            if not self._ended(time.monotonic() + max(0.0, grace)):
                logger.debug('%r: still running %g s after SIGTERM; sending SIGKILL', self,
                             grace)
                _signal_group(self.pid, signal.SIGKILL)
                if not self._ended(time.monotonic() + REAP_TIMEOUT):
                    logger.warning('%r: process group %d still running %g s after SIGKILL',
                                   self, self.pid, REAP_TIMEOUT)
        self._close_pipes()
        return proc.returncode

    def _ended(self, deadline: float) -> bool:
        """Wait until the leader is reaped and its group gone, or ``deadline``; whether
        they are."""
        delay = 0.001
        while True:
            if self.proc.poll() is not None and not _group_running(self.pid):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(delay, left))
            delay = min(2 * delay, _POLL_MAX)

    def _close_pipes(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def output_tail(self, limit: int = TAIL_CHARS) -> str:
        if not self.log_path:
            return ''
        try:
            with open(self.log_path, 'rb') as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - limit))
                return log.read().decode(errors='replace')
        except OSError:
            return ''


class PidProcess(ChannelProcess):
    """A process of this machine known only by its pid (e.g. from a server file), not
    started by this process: `kill` signals that process alone (whatever group it leads
    may hold others' processes) and waits for it within bounds. Its exit status is its
    parent's to learn: once it ended, it reads -1."""

    def __init__(self, pid: int):
        self.pid = int(pid)
        #: whether `kill` had to send SIGKILL
        self.sigkilled = False

    def __repr__(self) -> str:
        return f'<PidProcess {self.pid}>'

    def running(self) -> bool:
        """Whether the process exists and has not exited (a zombie has)."""
        try:
            with open(f'/proc/{self.pid}/stat', 'rb') as stat:
                return stat.read().rsplit(b') ', 1)[1][:1] != b'Z'
        except (OSError, IndexError):
            return False

    def poll(self) -> int | None:
        """None while it runs; its status is not ours to know once it ended (then -1)."""
        return None if self.running() else -1

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while self.running():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            time.sleep(delay if left is None else min(delay, left))
            delay = min(2 * delay, _POLL_MAX)
        return -1

    def kill(self, grace: float = KILL_GRACE) -> int | None:
        """SIGTERM, SIGKILL after ``grace`` seconds, then wait up to `REAP_TIMEOUT`; -1 once
        it is gone, None if it survived. `PermissionError` if it is not ours to signal."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, REAP_TIMEOUT)):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return -1
            if self.wait(max(0.0, wait)) is not None:
                return -1
            if sig == signal.SIGTERM:
                logger.warning('process %d still running %g s after SIGTERM; sending SIGKILL',
                               self.pid, grace)
                self.sigkilled = True
        logger.warning('process %d still running %g s after SIGKILL', self.pid, REAP_TIMEOUT)
        return None

    def output_tail(self, limit: int = TAIL_CHARS) -> str:
        return ''


def spawn(command: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None,
          log_path: str | None = None, *, stdin: Any = subprocess.PIPE, stdout: Any = LOG,
          stderr: Any = LOG) -> LocalProcess:
    """Start ``command`` (a list of strings, no shell) in a session of its own, with ``env``
    on top of this process's environment, in ``cwd``.

    ``stdout`` and ``stderr`` go to `LOG` (``log_path``, appended; discarded without one)
    unless given as `subprocess.Popen` takes them (None inherits this process's,
    `subprocess.PIPE` gives `LocalProcess.stdout`, an open file, ...). ``stdin`` is a pipe by
    default: a server started here exits when it closes (this process ended). `OSError` if
    it cannot start (`FileNotFoundError`: no such program).
    """
    argv = list(command)
    with contextlib.ExitStack() as files:
        log: Any = subprocess.DEVNULL
        if log_path and LOG in (stdout, stderr):
            log = files.enter_context(open(log_path, 'ab'))
        proc = subprocess.Popen(argv, stdin=stdin, stdout=log if stdout is LOG else stdout,
                                stderr=log if stderr is LOG else stderr, env=_environ(env),
                                cwd=cwd, start_new_session=True)
    logger.debug('started %s as process group %d', argv[0], proc.pid)
    return LocalProcess(proc, log_path, argv)


def execute(command: Sequence[str], timeout: float | None = None,
            env: Mapping[str, str] | None = None, cwd: str | None = None, *,
            stdin: Any = subprocess.DEVNULL, stdout: Any = subprocess.PIPE,
            stderr: Any = subprocess.PIPE, grace: float = KILL_GRACE, text: bool = True,
            where: str = 'this host') -> CommandResult:
    """Run ``command`` to completion (see `spawn`); its output is captured unless
    ``stdout``/``stderr`` say otherwise (the result then holds '' for it). After ``timeout``
    seconds its process group is killed (`ChannelProcess.kill` with ``grace``) and
    `CommandTimeout` (a `TimeoutError`, naming ``where``) raised. ``text=False``: the output
    as bytes."""
    process = spawn(command, env, cwd, stdin=stdin, stdout=stdout, stderr=stderr)
    try:
        out, err = process.communicate(timeout)
    except subprocess.TimeoutExpired:
        status = process.kill(grace)
        try:  # what it wrote before its end, unless an escaped process holds the pipes
            out, err = process.communicate(REAP_TIMEOUT)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            out = err = None
        result = _result(-signal.SIGKILL if status is None else status, out, err, text)
        raise CommandTimeout(f'{command[0]}: did not finish within {timeout:g} s (on '
                             f'{where}); its process group was killed', result) from None
    except BaseException:
        process.kill(grace)
        raise
    return _result(process.proc.returncode, out, err, text)


def _result(status: int, out: Any, err: Any, text: bool) -> CommandResult:
    """A `CommandResult` from captured output (None: not captured)."""
    def convert(data: Any) -> Any:
        data = data or b''
        return data.decode(errors='replace') if text else bytes(data)
    return CommandResult(status, convert(out), convert(err))


def _environ(env: Mapping[str, str] | None) -> dict[str, str] | None:
    """This process's environment with ``env`` on top (None: unchanged)."""
    if not env:
        return None
    merged = dict(os.environ)
    merged.update(env)
    return merged
