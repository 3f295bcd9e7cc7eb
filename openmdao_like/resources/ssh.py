"""`SSHChannel`: commands and files on another host over one reused SSH connection (paramiko).

Host keys are checked against a known_hosts file and an unknown key is refused: a host is never
trusted on first use. One connection carries every command (each in its own session) and one
SFTP client every file transfer, because a new connection costs 35–140 ms; a connection that
dropped is reopened on the next use.

Background processes (`spawn`) do not depend on the connection that started them: each runs in
a session of its own on the host, detached from SSH, writing its output to a log file there and
its exit status to a file beside it, so it can be polled, waited for, killed (with everything it
started: its process group) and its output read through any later connection.
"""

from __future__ import annotations

import errno
import getpass
import io
import logging
import os
import re
import select
import shlex
import threading
import time
from typing import Any, Callable, Mapping, Sequence, TypeVar

import paramiko

from ..errors import RemoteError
from .channels import (KILL_GRACE, REAP_TIMEOUT, TAIL_CHARS, Channel, ChannelProcess,
                       CommandResult)

logger = logging.getLogger(__name__)

__all__ = ['SSHChannel', 'SSHProcess', 'SSHError', 'HostKeyError', 'SSHAuthError',
           'command_line']

_T = TypeVar('_T')
_ENV_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
#: Status reported for a background process that ended without writing its exit status (it
#: was killed with its process group).
KILLED = -9
#: Seconds between two polls of a background process while waiting for it (at most).
POLL_INTERVAL = 0.5
#: Seconds a connection that failed a request may take to show that it dropped.
DROP_NOTICE = 2.0

# The wrapper of a background process: prints its pid (= its process group: setsid made it a
# session leader) and where its exit status will go, detaches from the SSH session's pipes and
# runs the command; the exit status is written atomically once the command ends.
_SPAWN = ('log=$1; shift; '
          'if [ "$log" = /dev/null ]; then status="${TMPDIR:-/tmp}/oml-spawn-$$.status"; '
          'else status="$log.$$.status"; fi; '
          'echo "$$ $status"; exec >>"$log" 2>&1 </dev/null; '
          '"$@"; echo $? >"$status.tmp" && mv -f "$status.tmp" "$status"')
# 'running' while any process of a background process's group lives (zombies are dead
# already), else its exit status, else 'gone'. In that order: a status file is complete once
# its writer is gone. A status file it owns alone ($3 = own) is removed once read.
_POLL = ('if ps -A -o pgid= -o stat= | awk -v g="$2" \'$1 == g && $2 !~ /^Z/ {f = 1} '
         'END {exit !f}\'; then echo running; '
         'elif [ -s "$1" ]; then cat "$1"; if [ "$3" = own ]; then rm -f "$1"; fi; '
         'else echo gone; fi')
_WRITE = 'umask 077 && cat >"$1.tmp$$" && chmod "$2" "$1.tmp$$" && mv -f "$1.tmp$$" "$1"'
_MKDTEMP = ('if [ -n "$1" ]; then mkdir -p -- "$1" && mktemp -d "$1/$2XXXXXXXX"; '
            'else mktemp -d "${TMPDIR:-/tmp}/$2XXXXXXXX"; fi')


class SSHError(RemoteError, ConnectionError):
    """A host cannot be reached over SSH, or the connection failed."""


class ConnectionDropped(SSHError):
    """The connection went away while a command ran (whether it finished is unknown)."""


class HostKeyError(SSHError):
    """A host's key is not in the known_hosts file, or differs from the one there."""


class SSHAuthError(SSHError, PermissionError):
    """The host refused our user name or key."""


def command_line(command: Sequence[str], env: Mapping[str, str] | None = None,
                 cwd: str | None = None) -> str:
    """The shell line that runs ``command`` (a list of strings) with ``env`` in ``cwd``."""
    argv = _argv(command)
    if env:
        for name in env:
            if not isinstance(name, str) or not _ENV_NAME.match(name):
                raise ValueError(f'env: expected variable names such as PYTHONPATH, got '
                                 f'{name!r}')
        argv = ['env', *(f'{k}={v}' for k, v in env.items()), *argv]
    line = shlex.join(argv)
    return f'cd {shlex.quote(cwd)} && {line}' if cwd else line


def _argv(command: Sequence[str]) -> list[str]:
    if isinstance(command, (str, bytes)) or not command or \
            not all(isinstance(arg, str) for arg in command):
        raise ValueError(f'command: expected a non-empty list of strings, got {command!r}')
    return list(command)


class _RejectUnknown(paramiko.RejectPolicy):
    """Refuse a host whose key is not known, saying how to add it."""

    def __init__(self, known_hosts: str, port: int):
        self.known_hosts = known_hosts
        self.port = port

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        host = hostname[1:].rsplit(']:', 1)[0] if hostname.startswith('[') else hostname
        missing = '' if os.path.exists(self.known_hosts) else ' (the file does not exist)'
        raise HostKeyError(
            f'{host}:{self.port}: its host key ({key.get_name()} {key.fingerprint}) is not in '
            f'{self.known_hosts}{missing}; host keys are never trusted on first use. If this is '
            f'the right host, add its key with: ssh-keyscan -p {self.port} {host} >> '
            f'{self.known_hosts}')


class SSHChannel(Channel):
    """Commands and files on ``host`` over SSH (see the module docstring).

    Parameters
    ----------
    host : str
        The host's address or name (servers started through the channel listen on it).
    port : int
        sshd's port.
    user : str, optional
        Who to log in as (default: the local user).
    key_filename : str, optional
        Private key to log in with (default: the SSH agent's and ~/.ssh's keys).
    known_hosts : str, optional
        The known_hosts file the host's key must be in (default ``~/.ssh/known_hosts``).
    connect_timeout : float
        Seconds to connect, authenticate or open a session before giving up.
    """

    def __init__(self, host: str, port: int = 22, user: str | None = None,
                 key_filename: str | None = None, known_hosts: str | None = None,
                 connect_timeout: float = 30.0):
        if not isinstance(host, str) or not host or any(c.isspace() for c in host):
            raise ValueError(f'SSHChannel: host must be an address or host name, got {host!r}')
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f'SSHChannel({host}): port must be an integer in 1..65535, got '
                             f'{port!r}')
        if key_filename is not None and not os.path.isfile(key_filename):
            raise ValueError(f'SSHChannel({host}): key_filename {key_filename!r} is not a file')
        if not isinstance(connect_timeout, (int, float)) or connect_timeout <= 0:
            raise ValueError(f'SSHChannel({host}): connect_timeout must be a positive number of '
                             f'seconds, got {connect_timeout!r}')
        self.host = host
        self.port = port
        self.user = user or getpass.getuser()
        self.key_filename = key_filename
        self.known_hosts = os.path.expanduser(known_hosts or '~/.ssh/known_hosts')
        self.connect_timeout = float(connect_timeout)
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_transport: paramiko.Transport | None = None
        self._lock = threading.Lock()
        self._sftp_lock = threading.Lock()

    @property
    def where(self) -> str:
        """``user@host:port`` (how messages name the channel)."""
        return f'{self.user}@{self.host}:{self.port}'

    def __repr__(self) -> str:
        return f'SSHChannel({self.where!r})'

    def __getstate__(self) -> dict[str, Any]:
        """Where and how to connect, never the connection (a copy connects on first use)."""
        return {'host': self.host, 'port': self.port, 'user': self.user,
                'key_filename': self.key_filename, 'known_hosts': self.known_hosts,
                'connect_timeout': self.connect_timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    # -- the connection --------------------------------------------------------------------------
    @property
    def transport(self) -> paramiko.Transport | None:
        """The current connection (None before the first use or after `close`)."""
        client = self._client
        return client.get_transport() if client is not None else None

    def connect(self) -> paramiko.Transport:
        """The live connection: the current one, or a new one if there is none or it dropped."""
        with self._lock:
            transport = self.transport
            if transport is not None and transport.is_active():
                return transport
            if self._client is not None:
                logger.warning('%s: the connection dropped; reconnecting', self.where)
                self._client.close()
                self._client = None
            self._client = self._open()
            logger.debug('%s: connected', self.where)
            return self._client.get_transport()

    def _open(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if os.path.exists(self.known_hosts):
            try:
                client.load_host_keys(self.known_hosts)
            except (OSError, paramiko.SSHException) as exc:
                raise HostKeyError(f'{self.host}:{self.port}: cannot read the known_hosts file '
                                   f'{self.known_hosts}: {exc}') from None
        client.set_missing_host_key_policy(_RejectUnknown(self.known_hosts, self.port))
        own_key = self.key_filename is None
        timeout = self.connect_timeout
        try:
            client.connect(self.host, self.port, username=self.user,
                           key_filename=self.key_filename, allow_agent=own_key,
                           look_for_keys=own_key, timeout=timeout, banner_timeout=timeout,
                           auth_timeout=timeout, channel_timeout=timeout)
        except BaseException as exc:
            client.close()
            raise self._connect_error(exc) from None
        client.get_transport().set_keepalive(15)
        return client

    def _connect_error(self, exc: BaseException) -> BaseException:
        """A clear error for a failed connection attempt."""
        if isinstance(exc, HostKeyError) or not isinstance(exc, Exception):
            return exc
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyError(
                f'{self.host}:{self.port}: the host key it offers ({exc.key.get_name()} '
                f'{exc.key.fingerprint}) differs from the one in {self.known_hosts} '
                f'({exc.expected_key.fingerprint}): refusing to connect. If the host was '
                f're-keyed, remove the old key (ssh-keygen -R "[{self.host}]:{self.port}" -f '
                f'{self.known_hosts}) and add the new one (ssh-keyscan -p {self.port} '
                f'{self.host} >> {self.known_hosts})')
        if isinstance(exc, paramiko.AuthenticationException):
            keys = (f'the key {self.key_filename}' if self.key_filename else
                    "the SSH agent's and ~/.ssh's keys")
            return SSHAuthError(f'{self.where} refused {keys}: {exc}')
        if isinstance(exc, paramiko.SSHException):
            return SSHError(f'{self.where}: SSH failed: {exc}')
        return SSHError(f'cannot connect to {self.host}:{self.port} (as {self.user}): '
                        f'{exc or type(exc).__name__}')

    def _once_more(self, action: Callable[[paramiko.Transport], _T]) -> _T:
        """``action(connection)``, tried again over a new connection if the connection dropped
        under it (nothing ran then)."""
        transport = self.connect()
        try:
            return action(transport)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if not _broke(exc) or not _dropped(transport):
                raise
        return action(self.connect())

    def _session(self) -> paramiko.Channel:
        """A new session on the connection."""
        try:
            return self._once_more(lambda t: t.open_session(timeout=self.connect_timeout))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if isinstance(exc, SSHError):
                raise
            raise SSHError(f'{self.where}: cannot open a session: {exc}') from None

    def _with_sftp(self, action: Callable[[paramiko.SFTPClient], _T]) -> _T:
        """``action(sftp)`` with the channel's SFTP client (one per connection)."""
        def on(transport: paramiko.Transport) -> _T:
            if self._sftp is None or self._sftp_transport is not transport:
                self._close_sftp()
                self._sftp = paramiko.SFTPClient.from_transport(transport)
                self._sftp_transport = transport
            return action(self._sftp)

        with self._sftp_lock:
            return self._once_more(on)

    def _close_sftp(self) -> None:
        sftp, self._sftp, self._sftp_transport = self._sftp, None, None
        if sftp is not None:
            sftp.close()

    def close(self) -> None:
        """Close the connection (a later use opens a new one)."""
        with self._sftp_lock:
            self._close_sftp()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- commands -------------------------------------------------------------------------------
    def execute(self, command: Sequence[str], timeout: float | None = None,
                env: Mapping[str, str] | None = None, cwd: str | None = None) -> CommandResult:
        return self._run(command_line(command, env, cwd), command[0], timeout)

    def _run(self, line: str, name: str, timeout: float | None,
             stdin: bytes | None = None) -> CommandResult:
        """Run shell ``line`` in a new session; its exit status and output."""
        chan = self._session()
        try:
            chan.exec_command(line)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = _collect(chan, timeout)
            if out is None:
                raise TimeoutError(f'{name}: did not finish within {timeout:g} s (on '
                                   f'{self.where})')
            status = chan.recv_exit_status()
            if status == -1 and not chan.get_transport().is_active():
                raise ConnectionDropped(f'{self.where}: the connection dropped while {name} '
                                        f'ran')
        except (paramiko.SSHException, EOFError) as exc:
            raise SSHError(f'{self.where}: running {name} failed: {exc}') from None
        finally:
            chan.close()
        return CommandResult(status, out.decode(errors='replace'), err.decode(errors='replace'))

    def _check(self, result: CommandResult, what: str) -> str:
        if result.returncode != 0:
            raise OSError(f'{self.where}: {what} failed (exit status {result.returncode}): '
                          f'{result.stderr.strip() or result.stdout.strip()}')
        return result.stdout

    def spawn(self, command: Sequence[str], env: Mapping[str, str] | None = None,
              cwd: str | None = None, log_path: str | None = None) -> SSHProcess:
        argv = _argv(command)
        result = self.execute(['setsid', '-f', 'sh', '-c', _SPAWN, 'oml-spawn',
                               log_path or '/dev/null', *argv], self.connect_timeout, env, cwd)
        words = result.stdout.split(maxsplit=1)
        if result.returncode != 0 or len(words) != 2 or not words[0].isdigit():
            raise RemoteError(f'{self.where}: cannot start {shlex.join(argv)} (exit status '
                              f'{result.returncode}): {result.stderr.strip() or result.stdout}')
        pid, status_path = int(words[0]), words[1].strip()
        logger.debug('%s: started %s as process group %d', self.where, argv[0], pid)
        return SSHProcess(self, pid, status_path, log_path, argv)

    # -- files ----------------------------------------------------------------------------------
    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        # through cat under umask 077: the file is never readable by others, even while written
        line = shlex.join(['sh', '-c', _WRITE, 'oml-write', path, f'{mode:o}'])
        timeout = self.connect_timeout + len(data) / 1e6  # at least 1 MB/s
        try:
            done = self._run(line, 'write_file', timeout, bytes(data))
        except ConnectionDropped:  # writing the whole file again is safe: once more
            logger.warning('%s: the connection dropped while writing %s; writing it again',
                           self.where, path)
            done = self._run(line, 'write_file', timeout, bytes(data))
        self._check(done, f'writing {path}')

    def read_file(self, path: str) -> bytes:
        def fetch(sftp: paramiko.SFTPClient) -> bytes:
            buffer = io.BytesIO()  # a new one per attempt: a read tried again starts afresh
            sftp.getfo(path, buffer)
            return buffer.getvalue()
        return self._sftp_file(path, fetch)

    def push_file(self, local_path: str, remote_path: str) -> None:
        self._sftp_file(remote_path, lambda sftp: sftp.put(os.fspath(local_path), remote_path))

    def pull_file(self, remote_path: str, local_path: str) -> None:
        self._sftp_file(remote_path, lambda sftp: sftp.get(remote_path, os.fspath(local_path)))

    def _sftp_file(self, path: str, action: Callable[[paramiko.SFTPClient], _T]) -> _T:
        try:
            return self._with_sftp(action)
        except (paramiko.SSHException, EOFError) as exc:
            raise SSHError(f'{self.where}: {path}: transfer failed: {exc}') from None
        except OSError as exc:
            if isinstance(exc, SSHError) or exc.errno is None:
                raise
            raise OSError(exc.errno, f'{self.where}: {path}: {exc.strerror}') from None

    def makedirs(self, path: str) -> None:
        self._check(self.execute(['mkdir', '-p', '--', path], self.connect_timeout),
                    f'mkdir -p {path}')

    def remove_tree(self, path: str) -> None:
        if not isinstance(path, str) or not path.startswith('/') or path.rstrip('/') == '':
            raise ValueError(f'{self.where}: remove_tree expects an absolute path below /, got '
                             f'{path!r}')
        self._check(self.execute(['rm', '-rf', '--', path], self.connect_timeout),
                    f'rm -rf {path}')

    def mkdtemp(self, prefix: str = 'oml-', parent: str | None = None) -> str:
        if '/' in prefix:
            raise ValueError(f'{self.where}: mkdtemp prefix must not contain "/", got '
                             f'{prefix!r}')
        out = self._check(self.execute(['sh', '-c', _MKDTEMP, 'oml-mkdtemp', parent or '',
                                        prefix], self.connect_timeout),
                          f'a new directory below {parent or "$TMPDIR"}')
        return out.strip()

    def client_address(self) -> str:
        return self.connect().sock.getsockname()[0]


def _broke(exc: BaseException) -> bool:
    """Whether ``exc`` may mean that the connection broke (rather than a refused request or
    a file error reported by the host)."""
    if isinstance(exc, paramiko.ChannelException):
        return False
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        return exc.errno is None or exc.errno == errno.EBADF
    return True


def _dropped(transport: paramiko.Transport) -> bool:
    """Whether ``transport``'s connection is gone (its reader thread may need a moment to
    notice a connection that the other side cut)."""
    deadline = time.monotonic() + DROP_NOTICE
    while transport.is_active():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _collect(chan: paramiko.Channel, timeout: float | None) -> tuple[bytes | None, bytes]:
    """Everything ``chan``'s command writes until its exit status arrives (stdout is None if
    ``timeout`` seconds passed first)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    while True:
        while chan.recv_ready():
            out += chan.recv(65536)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        # done at the end of its output and its exit status (sshd may send either first)
        if (chan.eof_received or chan.closed) and chan.exit_status_ready() and \
                not chan.recv_ready() and not chan.recv_stderr_ready():
            return bytes(out), bytes(err)
        wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
        if wait <= 0:
            return None, bytes(err)
        if chan.eof_received:  # output is complete, the command still runs: wait for its end
            chan.status_event.wait(wait)
        else:
            select.select([chan], [], [], wait)


class SSHProcess(ChannelProcess):
    """A background process started by `SSHChannel.spawn`: its process group on the host.

    ``pid`` is the host's pid of its wrapper, which leads the process group of everything it
    starts. Works through any connection of the channel (a reconnect does not lose it).
    """

    def __init__(self, channel: SSHChannel, pid: int, status_path: str, log_path: str | None,
                 command: Sequence[str]):
        self.channel = channel
        self.pid = pid
        self.status_path = status_path
        self.log_path = log_path
        self.command = list(command)
        self._status: int | None = None

    def __repr__(self) -> str:
        return f'<SSHProcess {self.pid} on {self.channel.where}: {shlex.join(self.command)}>'

    def poll(self) -> int | None:
        """Its exit status, `KILLED` (-9) when it ended without one, None while it runs."""
        if self._status is not None:
            return self._status
        own = 'own' if self.log_path is None else 'shared'
        result = self.channel.execute(['sh', '-c', _POLL, 'oml-poll', self.status_path,
                                       str(self.pid), own], self.channel.connect_timeout)
        answer = result.stdout.strip()
        if answer == 'running':
            return None
        if answer == 'gone':
            self._status = KILLED
        else:
            try:
                self._status = int(answer)
            except ValueError:
                raise RemoteError(f'{self.channel.where}: cannot tell whether process '
                                  f'{self.pid} runs: {result.stderr.strip() or answer!r}') \
                    from None
        return self._status

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            status = self.poll()
            if status is not None:
                return status
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            time.sleep(delay if left is None else min(delay, left))
            delay = min(2 * delay, POLL_INTERVAL)

    def kill(self, grace: float = KILL_GRACE) -> int | None:
        """SIGTERM to its process group on the host, SIGKILL after ``grace`` seconds, then
        wait (at most `REAP_TIMEOUT` seconds) until the group is gone. Its exit status
        (`KILLED` when the group was killed before it wrote one; None if it survived)."""
        if self._status is not None:
            return self._status
        for sig, wait in (('TERM', grace), ('KILL', REAP_TIMEOUT)):
            self.channel.execute(['sh', '-c', f'kill -{sig} "-$1" 2>/dev/null; true',
                                  'oml-kill', str(self.pid)], self.channel.connect_timeout)
            status = self.wait(max(0.0, wait))
            if status is not None:
                return status
            logger.warning('%s: process group %d still runs %g s after SIG%s',
                           self.channel.where, self.pid, wait, sig)
        return None

    def output_tail(self, limit: int = TAIL_CHARS) -> str:
        if not self.log_path:
            return ''
        try:
            result = self.channel.execute(['tail', '-c', str(int(limit)), self.log_path],
                                          self.channel.connect_timeout)
        except (OSError, TimeoutError) as exc:
            return f'(cannot read {self.log_path}: {exc})'
        return result.stdout
