"""Channels: how commands and files reach the host where servers run.

`LocalChannel` runs them on this machine; `SSHChannel` (`openmdao_like.resources.ssh`) on
another host over one reused paramiko connection. Allocators (providers) combine a channel with
a launcher: the channel runs what the launcher wrote, wherever the channel leads.

Commands are lists of strings, never shell text: a channel that needs a shell quotes them.

Every process the framework starts goes through a channel (`Channel.spawn`, or
`Channel.execute` for a command run to completion) or, below this layer, through
`openmdao_like.processes`, which `LocalChannel` uses; each is stopped through its handle
(`ChannelProcess.kill`: SIGTERM to its process group, SIGKILL after a grace period, then a
bounded wait until they are gone).
"""

from __future__ import annotations

import abc
import os
import shutil
import subprocess
import tempfile
from typing import Any, Mapping, Sequence

from .. import processes
from ..processes import (KILL_GRACE, LOG, REAP_TIMEOUT, TAIL_CHARS, ChannelProcess,
                         CommandResult, CommandTimeout, LocalProcess, PidProcess)

__all__ = ['CommandResult', 'CommandTimeout', 'Channel', 'ChannelProcess', 'LocalChannel',
           'LocalProcess', 'PidProcess', 'LOG', 'KILL_GRACE', 'REAP_TIMEOUT', 'TAIL_CHARS']


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


class LocalChannel(Channel):
    """Commands and files on this machine (through `openmdao_like.processes`)."""

    def __init__(self, host: str = '127.0.0.1'):
        self.host = host

    def __repr__(self) -> str:
        return f'LocalChannel({self.host!r})'

    def execute(self, command: Sequence[str], timeout: float | None = None,
                env: Mapping[str, str] | None = None, cwd: str | None = None, *,
                stdin: Any = subprocess.DEVNULL, stdout: Any = subprocess.PIPE,
                stderr: Any = subprocess.PIPE, grace: float = KILL_GRACE,
                text: bool = True) -> CommandResult:
        """Run ``command`` to completion in a session of its own (`processes.execute`: output
        captured unless ``stdout``/``stderr`` say otherwise; after ``timeout`` seconds its
        process group is killed and `CommandTimeout`, a `TimeoutError`, raised)."""
        return processes.execute(command, timeout, env, cwd, stdin=stdin, stdout=stdout,
                                 stderr=stderr, grace=grace, text=text, where=self.host)

    def spawn(self, command: Sequence[str], env: Mapping[str, str] | None = None,
              cwd: str | None = None, log_path: str | None = None, *,
              stdin: Any = subprocess.PIPE, stdout: Any = LOG,
              stderr: Any = LOG) -> LocalProcess:
        """Start ``command`` in a session of its own (`processes.spawn`: output to
        ``log_path`` unless ``stdout``/``stderr`` say otherwise; ``stdin`` a pipe, whose
        closing tells a server started here that this process ended)."""
        return processes.spawn(command, env, cwd, log_path, stdin=stdin, stdout=stdout,
                               stderr=stderr)

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


