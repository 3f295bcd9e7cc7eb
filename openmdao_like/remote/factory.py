"""`ObjServerFactory`: the server a host runs (``openmdao-like server start``). Each `create`
spawns an ObjServer process holding the new object in its own directory under the factory's
root; `release` ends it; stopping the factory ends them all.

Who may do what: every connection proves a key (owner or user role); hosts outside
``allowed_hosts`` are refused on connect; types outside ``allowed_types`` are refused by name;
commands run only with ``allow_shell``; file operations stay inside ``root``.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import itertools
import json
import logging
import os
import platform
import re
import posixpath
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

from rpyc.utils.helpers import classpartial

from .._version import __version__
from ..errors import RemoteError
from ..factories import check_type_name, factory_manager
from ..processes import KILL_GRACE, CommandTimeout, LocalProcess, execute, spawn
from . import codec, states
from .auth import Authenticator, HostPolicy, check_key, read_key_file, server_tls_context
from .connection import LIVENESS
from .limits import DEFAULT_LIMITS, Limits
from .failures import rebuild
from .files import FileArea, FileService
from .objserver import encode_blob
from .service import SecureService, Server, remote

logger = logging.getLogger(__name__)

#: Seconds an ObjServer may take to start and report its port.
START_TIMEOUT = 60.0
#: Seconds `ObjServerFactory.serve_forever` may take to act on SIGTERM/SIGINT.
SIGNAL_LATENCY = 0.25


@dataclass
class ObjEntry:
    """One object a factory serves: its id, type, process, port, directory, and the role of
    the key that created it (a user-role client manages only the objects it created)."""

    id: int
    typname: str
    process: LocalProcess
    port: int
    directory: str
    role: str = 'owner'

    def visible_to(self, role: str) -> bool:
        """Whether a client of ``role`` may see and manage this object."""
        return role == 'owner' or role == self.role


class ObjServerFactory:
    """Creates objects, each in its own ObjServer process, for authenticated clients.

    Parameters
    ----------
    host : str
        Address to listen on (and that ObjServers listen on).
    port : int
        Port to listen on; 0 picks a free one (see `port` after `start`).
    key, key_file : str or bytes, path
        The owner key (or a file holding it, mode 0600). Required.
    user_key, user_key_file : optional
        A second key whose holders may create objects (of the allowed types), and use, release
        and move files of the objects they created, and nothing else: not others' objects, not
        stopping the server, running commands, shipping models or restoring saved states.
    tls_cert, tls_key : str, optional
        PEM certificate and key: clients must then connect with TLS.
    allowed_hosts : list of str, optional
        IPs, networks, host names or ``'*'``; default this machine's loopback only.
    allowed_types : list of str, optional
        Type names or glob patterns (``'mypkg.*'``) that `create` accepts; default any
        component type installed here.
    allow_shell : bool
        Whether clients (owner role) may run commands and create components that run them.
    root : str, optional
        Directory holding the ObjServers' directories (default: a new temporary one, removed
        on `stop`).
    peer_keys : dict, optional
        ``'host'`` or ``'host:port'`` -> key, for ObjServers exchanging data with peers whose
        key differs (``rpush``/``rpull``); default: the owner key.
    launcher : list of str, optional
        Command prefix that starts each ObjServer, e.g. ``['mpiexec', '-n', '4']``: the object
        then runs on every rank (see `openmdao_like.remote.spmd`).
    limits : Limits, optional
        Bounds on messages, logins and connections (see `openmdao_like.remote.limits`),
        the factory's and its ObjServers'.
    """

    def __init__(self, host: str = '127.0.0.1', port: int = 0, key: str | bytes | None = None,
                 key_file: str | None = None, user_key: str | bytes | None = None,
                 user_key_file: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, allowed_hosts: Iterable[str] | None = None,
                 allowed_types: Iterable[str] | None = None, allow_shell: bool = False,
                 root: str | None = None, peer_keys: dict[str, Any] | None = None,
                 liveness: float = LIVENESS, start_timeout: float = START_TIMEOUT,
                 launcher: Iterable[str] | None = None, limits: Limits | None = None):
        if key_file is not None:
            key = read_key_file(key_file)
        self.keys = {'owner': check_key(key, 'ObjServerFactory key')}
        if user_key_file is not None:
            user_key = read_key_file(user_key_file)
        if user_key is not None:
            self.keys['user'] = check_key(user_key, 'ObjServerFactory user_key')
        if (tls_cert is None) != (tls_key is None):
            raise ValueError('ObjServerFactory: TLS needs both tls_cert and tls_key')
        self.tls = (os.path.abspath(tls_cert), os.path.abspath(tls_key)) if tls_cert else None
        self.host, self.port = host, int(port)
        self.allowed_hosts = None if allowed_hosts is None else list(allowed_hosts)
        self.allowed_types = None if allowed_types is None else list(allowed_types)
        self.allow_shell = bool(allow_shell)
        self.peer_keys = {name: check_key(k, f'peer key for {name}')
                          for name, k in (peer_keys or {}).items()}
        self.liveness = liveness
        self.start_timeout = start_timeout
        self.launcher = list(launcher or ())
        self.limits = limits or DEFAULT_LIMITS
        self.objects: dict[int, ObjEntry] = {}
        #: objects whose ObjServer died, until released
        self.dead: dict[int, ObjEntry] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stop_lock = threading.Lock()
        self._server: Server | None = None
        self._stopped = threading.Event()
        self._auth = Authenticator(self.keys, HostPolicy(self.allowed_hosts),
                                   server_tls_context(*self.tls) if self.tls else None,
                                   self.limits)
        self._own_root = root is None
        self.root = os.path.realpath(root or tempfile.mkdtemp(prefix='omlserver-'))
        os.makedirs(self.root, exist_ok=True)

    # -- lifetime -------------------------------------------------------------------------------
    def start(self) -> tuple[str, int]:
        """Listen and serve in a background thread; return ``(host, port)``."""
        self._server = Server(classpartial(FactoryService, self), self.host, self.port,
                              self._auth, self.liveness)
        self._server.start_in_thread()
        self.port = self._server.port
        logger.info('ObjServerFactory listening on %s:%d (root %s, tls %s)', self.host,
                    self.port, self.root, 'on' if self.tls else 'off')
        return self.host, self.port

    def serve_forever(self) -> None:
        """Block until `stop` (or SIGTERM/SIGINT when called from the main thread)."""
        if self._server is None:
            self.start()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stopped.set())
        try:
            # in slices: a signal that another thread received runs its handler only when the
            # main thread runs Python code again
            while not self._stopped.wait(SIGNAL_LATENCY):
                pass
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop listening and end every ObjServer (their directories are removed). Safe to call
        more than once, from any thread."""
        self._stopped.set()
        with self._stop_lock:
            server, self._server = self._server, None
            if server is not None:
                server.close()
            with self._lock:
                entries = list(self.objects.values())
                self.objects.clear()
                self.dead.clear()
            for entry in entries:
                entry.process.kill(KILL_GRACE)
                shutil.rmtree(entry.directory, ignore_errors=True)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        logger.info('ObjServerFactory on %s:%d stopped', self.host, self.port)

    def info(self) -> dict[str, Any]:
        """What clients and scripts need: host, port, pid, tls (the server file's content)."""
        return {'host': self.host, 'port': self.port, 'pid': os.getpid(),
                'tls': self.tls is not None}

    def write_server_file(self, path: str) -> None:
        """Write `info` as JSON to ``path`` (atomically: readers never see half a file)."""
        tmp = f'{path}.tmp{os.getpid()}'
        with open(tmp, 'w') as out:
            json.dump(self.info(), out)
        os.replace(tmp, path)

    # -- objects --------------------------------------------------------------------------------
    def check_type(self, typname: str) -> None:
        """Refuse, before anything is imported, a name that is not a dotted path outside the
        standard library (`NameError`) or a type outside ``allowed_types`` (`TypeError`)."""
        check_type_name(typname, f'the server on {self.host}:{self.port}')
        if self.allowed_types is not None and not any(
                fnmatch.fnmatchcase(typname, pattern) for pattern in self.allowed_types):
            raise TypeError(f'{typname!r} is not among the allowed types of the server on '
                            f'{self.host}:{self.port} ({", ".join(self.allowed_types)})')

    def create(self, typname: str, version: str | None = None,
               ctor_args: dict[str, Any] | None = None, state: str | None = None,
               runner: bytes | None = None, role: str = 'owner') -> ObjEntry:
        """Start an ObjServer holding a new ``typname`` (or the object saved in ``state``, or
        the cloudpickled case ``runner`` of a case-running driver) for a client of ``role``."""
        if runner is None:
            self.check_type(typname)
        elif not self.allow_shell:
            raise PermissionError(f'the server on {self.host}:{self.port} does not run shipped '
                                  f'models (case runners run code: start it with --allow-shell)')
        obj_id = next(self._ids)
        short = re.sub(r'\W', '_', typname.rsplit('.', 1)[-1])
        directory = os.path.join(self.root, f'{short}_{obj_id}')
        os.makedirs(directory)
        keys = {r: k for r, k in self.keys.items() if r == 'owner' or r == role}
        settings = {
            'typname': typname, 'version': version, 'host': self.host, 'state': state,
            'ctor_args': encode_blob(*codec.dumps(ctor_args or {})),
            'keys': {r: _b64(k) for r, k in keys.items()},
            'peer_keys': {name: _b64(k) for name, k in self.peer_keys.items()},
            'allowed_hosts': self.allowed_hosts, 'tls': self.tls,
            'allow_shell': self.allow_shell, 'liveness': self.liveness,
            'limits': self.limits.as_data(),
            'log_level': logging.getLogger().getEffectiveLevel()}
        if runner is not None:
            settings['runner'] = base64.b64encode(runner).decode()
        if self.tls:
            settings['peer_ca_file'] = self.tls[0]
        try:
            # -P and an absolute PYTHONPATH: its directory, where clients upload, is never on
            # its sys.path. It reads its settings on stdin, which stays open (it exits when
            # the pipe closes), reports on stdout and logs on stderr.
            proc = spawn(
                [*self.launcher, sys.executable, '-P', '-m', 'openmdao_like.remote.serve_object'],
                env=_absolute_pythonpath(os.environ), cwd=directory,
                log_path=os.path.join(directory, 'objserver.log'), stdout=subprocess.PIPE)
        except OSError:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        try:
            proc.stdin.write(json.dumps(settings).encode() + b'\n')
            proc.stdin.flush()
            reply = self._read_reply(proc, typname, directory)
        except BaseException:
            proc.kill(KILL_GRACE)
            shutil.rmtree(directory, ignore_errors=True)
            raise
        entry = ObjEntry(obj_id, typname, proc, reply['port'], directory, role)
        with self._lock:
            self.objects[obj_id] = entry
        logger.info('created %s (id %d, pid %d, port %d) in %s for the %s role', typname,
                    obj_id, proc.pid, entry.port, directory, role)
        return entry

    def _read_reply(self, proc: LocalProcess, typname: str,
                    directory: str) -> dict[str, Any]:
        ready, _, _ = select.select([proc.stdout], [], [], self.start_timeout)
        line = proc.stdout.readline() if ready else b''
        try:
            reply = json.loads(line)
        except ValueError:
            if proc.poll() is not None:
                what = 'exited'
            elif ready:
                what = 'closed its output without reporting its port'
            else:
                what = f'did not report its port within {self.start_timeout:g} s'
            raise RemoteError(f'{typname}: its ObjServer on {self.host}:{self.port} {what}; '
                              f'its log ends with:\n{_tail(directory)}') from None
        if 'error' in reply:
            raise rebuild(tuple(reply['error']), f'{typname} on {self.host}:{self.port}')
        return reply

    def entry(self, obj_id: int, role: str = 'owner') -> ObjEntry:
        """The live object ``obj_id`` as a client of ``role`` may see it; `ValueError` when
        there is none (an object that died is forgotten here)."""
        self.forget_dead()
        with self._lock:
            entry = self.objects.get(obj_id)
            if entry is not None and entry.visible_to(role):
                return entry
            dead = self.dead.get(obj_id)
            visible = sorted(i for i, e in self.objects.items() if e.visible_to(role))
        if dead is not None and dead.visible_to(role):
            raise ValueError(f'object {obj_id} ({dead.typname}) on the server on '
                             f'{self.host}:{self.port} died (exit status '
                             f'{dead.process.poll()})')
        raise ValueError(f'the server on {self.host}:{self.port} has no object {obj_id!r} '
                         f'(objects{"" if role == "owner" else " of this key"}: '
                         f'{visible or "none"})')

    def forget_dead(self) -> None:
        """Forget objects whose ObjServer has exited (their directories are removed); they
        stay in `dead` until released."""
        with self._lock:
            dead = [e for e in self.objects.values() if e.process.poll() is not None]
            for entry in dead:
                del self.objects[entry.id]
                self.dead[entry.id] = entry
        for entry in dead:
            logger.warning('%s (id %d) exited with status %s; its log ended with:\n%s',
                           entry.typname, entry.id, entry.process.poll(),
                           _tail(entry.directory))
            entry.process.kill(KILL_GRACE)
            shutil.rmtree(entry.directory, ignore_errors=True)

    def release(self, obj_id: int, keep_directory: bool = False, role: str = 'owner') -> None:
        """End object ``obj_id``'s ObjServer and remove its directory (unless kept); an
        object that died is released without complaint."""
        self.forget_dead()
        with self._lock:
            dead = self.dead.get(obj_id)
            if dead is not None and dead.visible_to(role):
                del self.dead[obj_id]
                return
        entry = self.entry(obj_id, role)
        with self._lock:
            if self.objects.pop(obj_id, None) is None:
                return  # released meanwhile by another call
        entry.process.kill(KILL_GRACE)
        if not keep_directory:
            shutil.rmtree(entry.directory, ignore_errors=True)
        logger.info('released %s (id %d)', entry.typname, obj_id)


def _absolute_pythonpath(environ: Any) -> dict[str, str]:
    """``environ`` with the empty and relative entries of PYTHONPATH, which Python would take
    from the directory a process starts in, made absolute from here (or dropped)."""
    env = dict(environ)
    if env.get('PYTHONPATH'):
        parts = [os.path.abspath(p) for p in env['PYTHONPATH'].split(os.pathsep) if p]
        env['PYTHONPATH'] = os.pathsep.join(parts)
    return env


def _tail(directory: str, limit: int = 2000) -> str:
    """The end of the ObjServer log in ``directory``."""
    try:
        with open(os.path.join(directory, 'objserver.log'), 'rb') as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - limit))
            return log.read().decode(errors='replace').strip() or '(empty)'
    except OSError as exc:
        return f'(no log: {exc.strerror})'


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


class FactoryService(FileService, SecureService):
    """The remote interface of an `ObjServerFactory`. A user-role client sees and manages
    only the objects it created, and its file operations reach only their directories."""

    def __init__(self, factory: ObjServerFactory):
        self.factory = factory
        self.files = FileArea(factory.root)

    def on_connect(self, conn: Any) -> None:
        super().on_connect(conn)
        if self.role != 'owner':
            self.files = FileArea(self.factory.root, within=self._own_directories)

    def _own_directories(self) -> list[str]:
        """The directories of the objects this connection's role may manage."""
        return [e.directory for e in list(self.factory.objects.values())
                if e.visible_to(self.role)]

    @remote()
    def create(self, typname: str, version: str | None, ctor_args: tuple) -> tuple:
        """``(id, host, port, directory)`` of a new object in its own ObjServer."""
        args = codec.unpack(ctor_args)
        entry = self.factory.create(typname, version, args, role=self.role)
        return (entry.id, self.factory.host, entry.port, entry.directory)

    @remote('owner')
    def restore(self, typname: str, state_rel: str) -> tuple:
        """Like `create`, from an object state kept by `keep_state`: only a state an ObjServer
        of this server saved and signed, unchanged since, is loaded (a state is a pickle)."""
        path = self.files.resolve(state_rel)
        states.verify(self.factory.keys['owner'], path, state_rel)
        entry = self.factory.create(typname, state=path)
        return (entry.id, self.factory.host, entry.port, entry.directory)

    @remote()
    def keep_state(self, obj_id: int, rel: str) -> str:
        """Move the state that object ``obj_id`` saved as ``rel`` (`ObjService.save_state`:
        signed by its ObjServer) to a new name under ``states/`` below the root, where it
        outlives the object; return that path relative to the root (for `restore`)."""
        entry = self.factory.entry(obj_id, self.role)
        source = FileArea(entry.directory).resolve(rel)
        states.verify(self.factory.keys['owner'], source, rel)
        kept = f'states/{os.path.basename(entry.directory)}-{uuid.uuid4().hex[:12]}.pkl'
        os.makedirs(os.path.join(self.factory.root, 'states'), exist_ok=True)
        states.move(source, os.path.join(self.factory.root, kept))
        return kept

    @remote()
    def release(self, obj_id: int, keep_directory: bool) -> None:
        """End object ``obj_id``'s ObjServer."""
        self.factory.release(obj_id, keep_directory, self.role)

    @remote()
    def list_objects(self) -> tuple:
        """``(id, type, pid, port, directory)`` of every live object this role may manage."""
        self.factory.forget_dead()
        return tuple((e.id, e.typname, e.process.pid, e.port, e.directory)
                     for e in list(self.factory.objects.values()) if e.visible_to(self.role))

    @remote()
    def get_available_types(self, groups: tuple | None) -> tuple:
        """``(name, version, distribution, group)`` of the types installed on this server and
        allowed by it."""
        found = factory_manager.get_available_types(list(groups) if groups else None)
        allowed = self.factory.allowed_types
        return tuple(tuple(info) for info in found if allowed is None or any(
            fnmatch.fnmatchcase(info.name, pattern) for pattern in allowed))

    @remote()
    def info(self) -> tuple:
        """``(host, port, pid, tls, python version, openmdao_like version, root)``."""
        f = self.factory
        return (f.host, f.port, os.getpid(), f.tls is not None, platform.python_version(),
                __version__, f.root)

    @remote()
    def ping(self) -> str:
        """'pong' (a liveness check)."""
        return 'pong'

    @remote('owner')
    def start_runner(self, runner: bytes) -> tuple:
        """A new ObjServer running the cloudpickled case ``runner`` (needs allow_shell):
        ``(id, host, port, directory)``."""
        entry = self.factory.create('case runner', runner=bytes(runner))
        return (entry.id, self.factory.host, entry.port, entry.directory)

    def _check_shell(self) -> None:
        if not self.factory.allow_shell:
            raise PermissionError(f'the server on {self.factory.host}:{self.factory.port} does '
                                  f'not allow shell access (start it with --allow-shell)')

    @remote('owner')
    def execute_command(self, args: tuple, timeout: float) -> tuple:
        """``(returncode, stdout, stderr)`` of a command run in the root (needs allow_shell);
        `TimeoutError` once its process group was killed after ``timeout`` seconds."""
        self._check_shell()
        try:
            done = execute(list(args), timeout, cwd=self.factory.root, text=False,
                           where=self.factory.host)
        except CommandTimeout as exc:
            raise TimeoutError(str(exc)) from None
        return (done.returncode, done.stdout, done.stderr)

    @remote('owner')
    def run_command(self, args: tuple, directory: str, env: tuple, stdin: str, stdout: str,
                    stderr: str, timeout: float, grace: float) -> tuple:
        """Run ``args`` (no shell) in ``directory`` below the root (made if missing), with
        the ``(name, value)`` pairs of ``env`` on top of the server's environment (needs
        allow_shell). ``stdin`` is a file in that directory or os.devnull; ``stdout`` and
        ``stderr`` a file there, os.devnull or '' (captured and returned); ``stderr`` '-'
        joins stdout. After ``timeout`` seconds (0: none) its process group gets SIGTERM,
        and SIGKILL ``grace`` seconds later. ``(returncode, timed out, why it could not start
        ('' when it did), stdout, stderr)``."""
        self._check_shell()
        cwd = self.files.resolve(directory)
        os.makedirs(cwd, exist_ok=True)
        with contextlib.ExitStack() as files:
            def stream(name: str, mode: str) -> Any:
                if name == '':
                    return subprocess.PIPE
                if name == os.devnull:
                    return subprocess.DEVNULL
                path = self.files.resolve(posixpath.join(directory, name))
                if mode == 'wb':
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                return files.enter_context(open(path, mode))

            streams = {'stdin': stream(stdin, 'rb'), 'stdout': stream(stdout, 'wb'),
                       'stderr': subprocess.STDOUT if stderr == '-' else stream(stderr, 'wb')}
            try:
                done = execute(list(args), timeout or None, dict(env), cwd, grace=grace,
                               text=False, where=self.factory.host, **streams)
            except CommandTimeout as exc:
                return (exc.result.returncode, True, '', exc.result.stdout, exc.result.stderr)
            except OSError as exc:  # could not start (the files above are open already)
                code = 127 if isinstance(exc, FileNotFoundError) else 126
                return (code, False, exc.strerror or str(exc), b'', b'')
        return (done.returncode, False, '', done.stdout, done.stderr)

    @remote('owner')
    def stop(self) -> None:
        """Stop the factory (after answering)."""
        threading.Timer(0.1, self.factory.stop).start()
