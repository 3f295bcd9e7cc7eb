"""A private PostgreSQL server for the tests (the job store's ``postgresql://`` URLs).

`PostgresServer` runs Debian's ``initdb`` and ``pg_ctl`` (newest version below
/usr/lib/postgresql) as an ordinary user (``postgres`` via ``runuser`` when the tests run as
root) in a fresh temporary directory that user owns: password authentication (scram-sha-256)
for the superuser ``oml`` with a random password, listening on 127.0.0.1 at a free port only,
its Unix socket in that directory. `stop` stops it by PID and removes the directory.

The server trades durability for speed (``fsync=off``, ``initdb --no-sync``): its data lives
only as long as the test session.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Iterable, LiteralString, Sequence
from urllib.parse import quote

from remote_servers import pid_alive

#: Where Debian installs the server programs: one ``<version>/bin`` directory per major version.
DEBIAN_ROOT = Path('/usr/lib/postgresql')
INSTALL_HINT = 'install it: bash scripts/setup.sh --test'
#: The system user that runs the server when the tests run as root (the package creates it).
SERVER_USER = 'postgres'
SUPERUSER = 'oml'
INITDB_TIMEOUT = 120.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
#: Attempts at a free port (another process may take the one picked before the server binds it).
PORT_ATTEMPTS = 5
_DB_NAME = re.compile(r'[a-z_][a-z0-9_]{0,62}')


class PostgresUnavailable(RuntimeError):
    """PostgreSQL (or psycopg) is not installed, or the server did not start."""


def find_bin_dir(roots: Iterable[Path] = (DEBIAN_ROOT,)) -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: the newest ``<root>/<version>/bin``,
    else the one on PATH; `PostgresUnavailable` when there is none."""
    found: list[tuple[tuple[int, ...], Path]] = []
    for root in roots:
        for bin_dir in Path(root).glob('*/bin'):
            version = bin_dir.parent.name
            if (re.fullmatch(r'\d+(\.\d+)*', version) and (bin_dir / 'initdb').is_file()
                    and (bin_dir / 'pg_ctl').is_file()):
                found.append((tuple(int(part) for part in version.split('.')), bin_dir))
    if found:
        return max(found)[1]
    on_path = [shutil.which(name) for name in ('initdb', 'pg_ctl')]
    if on_path[0] and on_path[1] and Path(on_path[0]).parent == Path(on_path[1]).parent:
        return Path(on_path[0]).parent
    where = ', '.join(f'{root}/<version>/bin' for root in roots)
    raise PostgresUnavailable(f'PostgreSQL is not installed (no initdb and pg_ctl in {where} '
                              f'nor on PATH); {INSTALL_HINT}')


def _children(pid: int) -> list[int]:
    """The PIDs whose parent is ``pid`` (the server's backends and helper processes)."""
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    ppid = int(f.read().rsplit(') ', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class PostgresServer:
    """A PostgreSQL server in a temporary directory, started at construction.

    ``url`` connects as the superuser to the ``postgres`` database; `create_database` gives
    each test its own database. Use it as a context manager, or call `stop`.
    """

    def __init__(self, base_dir: str | os.PathLike[str] | None = None,
                 bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.password = secrets.token_urlsafe(24)
        self.port = 0
        self.pid = 0
        self._prefix: list[str] = []
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            try:
                entry = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresUnavailable(f'the system user {SERVER_USER!r} is missing (the '
                                          f'postgresql package creates it); '
                                          f'{INSTALL_HINT}') from None
            runuser = shutil.which('runuser') or '/usr/sbin/runuser'
            self._prefix = [runuser, '-u', SERVER_USER, '--']
            self._owner = (entry.pw_uid, entry.pw_gid)
        # Not below pytest's basetemp: that is private to the user running the tests.
        self.root = Path(tempfile.mkdtemp(prefix='oml-pg-', dir=base_dir))
        self.data = self.root / 'data'
        self.log = self.root / 'log'
        try:
            if self._owner:
                os.chown(self.root, *self._owner)
            self._initdb()
            self._start()
        except BaseException:
            self.stop()
            raise

    # -- public -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``postgresql://oml:PW@127.0.0.1:PORT/postgres``."""
        return self.url_for('postgres')

    def url_for(self, database: str, password: str | None = None) -> str:
        """The URL of ``database`` on this server (with another ``password`` if given)."""
        pw = self.password if password is None else password
        return (f'postgresql://{SUPERUSER}:{quote(pw, safe="")}@127.0.0.1:{self.port}/'
                f'{quote(database, safe="")}')

    def create_database(self, name: str) -> str:
        """Create the empty database ``name`` (lower case letters, digits, ``_``); its URL."""
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f'database name {name!r}: expected lower case letters, digits and '
                             f'_ (at most 63, not starting with a digit)')
        self._admin('CREATE DATABASE {}', name)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop the database ``name``, ending the connections still open to it."""
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f'database name {name!r}: not one `create_database` makes')
        self._admin('DROP DATABASE IF EXISTS {} WITH (FORCE)', name)

    def stop(self) -> None:
        """Stop the server (``pg_ctl -m fast``; SIGKILL if its PID outlives that) and remove
        its directory. Idempotent."""
        try:
            if self.pid and pid_alive(self.pid):
                try:
                    self._run([self._bin('pg_ctl'), '-D', str(self.data), '-m', 'fast', '-w',
                               '-t', str(int(STOP_TIMEOUT)), 'stop'], STOP_TIMEOUT + 10)
                except (PostgresUnavailable, subprocess.TimeoutExpired):
                    pass  # killed below
                self._wait_gone(self.pid, 10.0)
                if pid_alive(self.pid):
                    for pid in [self.pid, *_children(self.pid)]:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    self._wait_gone(self.pid, 10.0)
                if pid_alive(self.pid):
                    raise PostgresUnavailable(f'PostgreSQL (PID {self.pid}) survived SIGKILL')
        finally:
            if self.pid == 0 or not pid_alive(self.pid):
                shutil.rmtree(self.root, ignore_errors=True)

    def restart(self, down: float = 0.0) -> None:
        """Stop the server (``-m fast``: its clients' connections are cut), wait ``down``
        seconds, and start it again on the same port and data."""
        self._run([self._bin('pg_ctl'), '-D', str(self.data), '-m', 'fast', '-w', '-t',
                   str(int(STOP_TIMEOUT)), 'stop'], STOP_TIMEOUT + 10)
        self._wait_gone(self.pid, 10.0)
        time.sleep(down)
        self._start_on(self.port)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:  # no password
        return f'PostgresServer(port={self.port}, pid={self.pid}, root={str(self.root)!r})'

    # -- private ----------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _env(self) -> dict[str, str]:
        # PGDATA, PGPORT, PGHOST, ... of the caller would redirect the programs.
        env = {k: v for k, v in os.environ.items() if not k.startswith('PG')}
        env['LC_ALL'] = 'C'
        return env

    def _run(self, args: Sequence[str], timeout: float) -> None:
        try:
            result = subprocess.run([*self._prefix, *args], cwd=self.root, env=self._env(),
                                    stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    timeout=timeout)
        except FileNotFoundError as err:
            raise PostgresUnavailable(f'cannot run {err.filename}; {INSTALL_HINT}') from None
        if result.returncode != 0:
            raise PostgresUnavailable(
                f'{Path(args[0]).name} failed (exit {result.returncode}): {shlex.join(args)}\n'
                f'{result.stdout}{result.stderr}{self._log_tail()}')

    def _initdb(self) -> None:
        pwfile = self.root / 'pw'
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if self._owner:
                os.fchown(fd, *self._owner)
            os.write(fd, (self.password + '\n').encode())
        finally:
            os.close(fd)
        try:
            self._run([self._bin('initdb'), '-D', str(self.data), '-A', 'scram-sha-256',
                       f'--pwfile={pwfile}', '-U', SUPERUSER, '-E', 'UTF8', '--no-locale',
                       '--no-sync'], INITDB_TIMEOUT)
        finally:
            pwfile.unlink(missing_ok=True)

    def _start(self) -> None:
        for attempt in range(PORT_ATTEMPTS):
            try:
                self._start_on(_free_port())
            except PostgresUnavailable:
                if 'Address already in use' in self._log_tail() and attempt + 1 < PORT_ATTEMPTS:
                    self.log.unlink(missing_ok=True)
                    continue
                raise
            return

    def _start_on(self, port: int) -> None:
        self.port = port
        options = (f'-c listen_addresses=127.0.0.1 -p {self.port} '
                   f'-k {shlex.quote(str(self.root))} -c fsync=off')
        try:
            self._run([self._bin('pg_ctl'), '-D', str(self.data), '-o', options,
                       '-l', str(self.log), '-w', '-t', str(int(START_TIMEOUT)), 'start'],
                      START_TIMEOUT + 10)
        finally:
            self.pid = self._read_pid()
        if not self.pid:
            raise PostgresUnavailable(f'PostgreSQL started but wrote no PID to '
                                      f'{self.data}/postmaster.pid{self._log_tail()}')

    def _read_pid(self) -> int:
        try:
            return int((self.data / 'postmaster.pid').read_text().split('\n', 1)[0])
        except (OSError, ValueError):
            return 0

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors='replace')
        except OSError:
            return ''
        return '\nserver log (last lines):\n' + '\n'.join(text.splitlines()[-lines:])

    def _admin(self, statement: LiteralString, database: str) -> None:
        """Run ``statement`` (outside a transaction) with ``{}`` standing for ``database``."""
        try:
            import psycopg
            from psycopg import sql
        except ImportError:
            raise PostgresUnavailable(f'psycopg is not installed; {INSTALL_HINT}') from None
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(database)))

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
