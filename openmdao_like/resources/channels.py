"""Channels: how commands and files reach the host where servers run.

`LocalChannel` runs them on this machine; `SSHChannel` (`openmdao_like.resources.ssh`) on
another host over one reused paramiko connection. Allocators (providers) combine a channel with
a launcher: the channel runs what the launcher wrote, wherever the channel leads.

Commands are lists of strings, never shell text: a channel that needs a shell quotes them.
"""

from __future__ import annotations

import abc
import os
import shutil
import signal
import subprocess
import tempfile
from typing import Mapping, NamedTuple, Sequence

__all__ = ['CommandResult', 'Channel', 'ChannelProcess', 'LocalChannel', 'LocalProcess']

#: Characters of a process's output kept for error messages.
TAIL_CHARS = 2000


class CommandResult(NamedTuple):
    """What a finished command gave: return code and decoded output."""

    returncode: int
    stdout: str
    stderr: str


class ChannelProcess(abc.ABC):
    """A long-running command started through a channel (a server process)."""

    @abc.abstractmethod
    def poll(self) -> int | None:
        """Its exit status, or None while it runs."""

    @abc.abstractmethod
    def kill(self) -> None:
        """End it and whatever it started (its process group); no error if it already ended."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds; its exit status, or None if it still runs."""

    @abc.abstractmethod
    def output_tail(self, limit: int = TAIL_CHARS) -> str:
        """The end of what it wrote to stdout and stderr (for error messages)."""


class Channel(abc.ABC):
    """Runs commands and moves files on one host.

    Attributes
    ----------
    host : str
        The host's address as this client reaches it (servers started through the channel
        listen on it).
    """

    host: str = '127.0.0.1'

    @abc.abstractmethod
    def execute(self, command: Sequence[str], timeout: float | None = None,
                env: Mapping[str, str] | None = None, cwd: str | None = None) -> CommandResult:
        """Run ``command`` to completion (`TimeoutError` after ``timeout`` seconds)."""

    @abc.abstractmethod
    def spawn(self, command: Sequence[str], env: Mapping[str, str] | None = None,
              cwd: str | None = None, log_path: str | None = None) -> ChannelProcess:
        """Start ``command`` in the background, its output going to ``log_path`` on the host."""

    @abc.abstractmethod
    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Create ``path`` on the host with ``data``, readable by its owner only by default."""

    @abc.abstractmethod
    def read_file(self, path: str) -> bytes:
        """The content of ``path`` on the host."""

    @abc.abstractmethod
    def push_file(self, local_path: str, remote_path: str) -> None:
        """Copy a file from here to the host."""

    @abc.abstractmethod
    def pull_file(self, remote_path: str, local_path: str) -> None:
        """Copy a file from the host to here."""

    @abc.abstractmethod
    def makedirs(self, path: str) -> None:
        """Create ``path`` (and its parents) on the host; fine if it exists."""

    @abc.abstractmethod
    def remove_tree(self, path: str) -> None:
        """Remove ``path`` and everything below it on the host; fine if it is gone."""

    @abc.abstractmethod
    def mkdtemp(self, prefix: str = 'oml-', parent: str | None = None) -> str:
        """A new private directory on the host (below ``parent`` or its temporary directory)."""

    @abc.abstractmethod
    def client_address(self) -> str:
        """The address at which the host reaches this client (for servers registering back)."""

    def close(self) -> None:
        """Release the channel's connection (nothing to do for a local channel)."""

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalProcess(ChannelProcess):
    """A command running on this machine in its own session (so it is ended as a group)."""

    def __init__(self, proc: subprocess.Popen, log_path: str | None):
        self.proc = proc
        self.pid = proc.pid
        self.log_path = log_path

    def poll(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        return status

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


class LocalChannel(Channel):
    """Commands and files on this machine."""

    def __init__(self, host: str = '127.0.0.1'):
        self.host = host

    def __repr__(self) -> str:
        return f'LocalChannel({self.host!r})'

    def execute(self, command: Sequence[str], timeout: float | None = None,
                env: Mapping[str, str] | None = None, cwd: str | None = None) -> CommandResult:
        try:
            done = subprocess.run(list(command), capture_output=True, timeout=timeout,
                                  env=_environ(env), cwd=cwd)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f'{command[0]}: did not finish within {timeout:g} s '
                               f'(on {self.host})') from None
        return CommandResult(done.returncode, done.stdout.decode(errors='replace'),
                             done.stderr.decode(errors='replace'))

    def spawn(self, command: Sequence[str], env: Mapping[str, str] | None = None,
              cwd: str | None = None, log_path: str | None = None) -> LocalProcess:
        log = open(log_path, 'ab') if log_path else subprocess.DEVNULL
        try:
            # stdin stays open: a server started here exits when this pipe closes (we died)
            proc = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=log,
                                    stderr=subprocess.STDOUT, env=_environ(env), cwd=cwd,
                                    start_new_session=True)
        finally:
            if log_path:
                log.close()
        return LocalProcess(proc, log_path)

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, 'wb') as out:
            out.write(data)
        os.chmod(path, mode)

    def read_file(self, path: str) -> bytes:
        with open(path, 'rb') as src:
            return src.read()

    def push_file(self, local_path: str, remote_path: str) -> None:
        shutil.copyfile(local_path, remote_path)

    def pull_file(self, remote_path: str, local_path: str) -> None:
        shutil.copyfile(remote_path, local_path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def mkdtemp(self, prefix: str = 'oml-', parent: str | None = None) -> str:
        if parent:
            os.makedirs(parent, exist_ok=True)
        return tempfile.mkdtemp(prefix=prefix, dir=parent)

    def client_address(self) -> str:
        return '127.0.0.1'


def _environ(env: Mapping[str, str] | None) -> dict[str, str] | None:
    """This process's environment with ``env`` on top (None: unchanged)."""
    if not env:
        return None
    merged = dict(os.environ)
    merged.update(env)
    return merged
