"""Client side of a factory: `connect_to_server` gives a `FactoryProxy` whose `create` returns
`RemoteComponent` proxies; `RemoteFactory` lets ``create(typname, server=...)`` reach it through
the FactoryManager chain. Credentials given once are remembered per server by the current
`openmdao_like.Session` (so saved models reconnect), never written anywhere; the session closes
every factory connection made in it when it ends."""

from __future__ import annotations

import json
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Iterable

import cloudpickle

from ..errors import RemoteError
from ..factories import Factory, TypeInfo
from ..session import current_session
from . import codec, files
from .auth import check_key, read_key_file
from .connection import CALL_TIMEOUT, SHORT_TIMEOUT, ServerConnection
from .proxy import RemoteComponent

_WILDCARDS = ('', '0.0.0.0', '::')


@dataclass(frozen=True)
class Credentials:
    """How to reach one server: its key and TLS settings."""

    key: bytes
    tls: bool = False
    ca_file: str | None = None


def _known() -> dict[tuple[str, int], Credentials]:
    """The current session's credentials, by server address."""
    return current_session().hold('remote.credentials', dict)


def remember(host: str, port: int, credentials: Credentials) -> None:
    """Remember how to reach ``host:port`` for the current session."""
    _known()[(host, int(port))] = credentials


def credentials_for(host: str, port: int) -> Credentials | None:
    """The credentials given for ``host:port`` in the current session, if any."""
    return _known().get((host, int(port)))


def _close_all(proxies: weakref.WeakSet) -> None:
    for proxy in list(proxies):
        proxy.close()


def read_server_file(path: str) -> dict[str, Any]:
    """The ``{host, port, pid, tls}`` a server wrote with ``--server-file``."""
    try:
        with open(path) as f:
            info = json.load(f)
    except OSError as exc:
        raise ValueError(f'server file {path!r}: cannot read it: {exc.strerror}') from None
    except ValueError:
        raise ValueError(f'server file {path!r}: expected JSON {{host, port, pid, tls}}') \
            from None
    missing = {'host', 'port', 'pid', 'tls'} - set(info)
    if missing:
        raise ValueError(f'server file {path!r}: expected keys host, port, pid, tls; missing '
                         f'{", ".join(sorted(missing))}')
    return info


def connect_to_server(host: str | None = None, port: int | None = None,
                      key: str | bytes | None = None, key_file: str | None = None,
                      tls: bool | None = None, ca_file: str | None = None,
                      server_file: str | None = None,
                      timeout: float = CALL_TIMEOUT) -> 'FactoryProxy':
    """Connect to the ObjServerFactory at ``host:port`` (or the one ``server_file`` names),
    proving ``key`` (or the key in ``key_file``); return its proxy.

    ``timeout`` bounds each call, e.g. a remote component's run (default one day); a server
    that vanished is reported sooner (TCP keepalive, about 10 s).
    """
    if server_file is not None:
        info = read_server_file(server_file)
        host = info['host'] if host is None else host
        port = info['port'] if port is None else port
        tls = info['tls'] if tls is None else tls
    if host is None or port is None:
        raise ValueError('connect_to_server: expected host and port, or server_file')
    if key_file is not None:
        key = read_key_file(key_file)
    creds = Credentials(check_key(key, f'connect_to_server({host}:{port})'), bool(tls), ca_file)
    proxy = FactoryProxy(host, int(port), creds, timeout)
    remember(host, int(port), creds)
    return proxy


class FactoryProxy:
    """A connection to an ObjServerFactory: create and release remote objects, list types,
    move files in and out of the server's root, run commands (when the server allows it).

    The connection belongs to the session current when it was made, and is closed with it."""

    def __init__(self, host: str, port: int, credentials: Credentials,
                 timeout: float = CALL_TIMEOUT):
        self.host, self.port = host, port
        self.credentials = credentials
        self.timeout = timeout
        self._conn = ServerConnection(host, port, credentials.key, credentials.tls,
                                      credentials.ca_file, timeout=SHORT_TIMEOUT,
                                      what='ObjServerFactory')
        self.role = self._conn.role
        current_session().hold('remote.connections', weakref.WeakSet, _close_all).add(self)

    def __repr__(self) -> str:
        return f'<FactoryProxy {self.host}:{self.port}>'

    def _call(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        return self._conn.call(name, *args, timeout=timeout)

    # -- objects --------------------------------------------------------------------------------
    def create(self, typname: str, version: str | None = None, res_desc: dict | None = None,
               **ctor_args: Any) -> RemoteComponent:
        """A new ``typname`` in its own ObjServer process on this server, as a proxy."""
        if res_desc:
            raise ValueError(f'{self!r}.create({typname!r}): resource descriptions are served '
                             f'by the resource allocation manager, not by one server')
        obj_id, host, port, directory = self._call(
            'create', typname, version, codec.pack(ctor_args), timeout=self.timeout)
        return self._attach(typname, obj_id, host, port, directory)

    def restore(self, typname: str, state_path: str) -> RemoteComponent:
        """A new ObjServer holding the object saved at ``state_path`` (below the root)."""
        obj_id, host, port, directory = self._call('restore', typname, state_path,
                                                   timeout=self.timeout)
        return self._attach(typname, obj_id, host, port, directory)

    def _attach(self, typname: str, obj_id: int, host: str, port: int,
                directory: str) -> RemoteComponent:
        host = self.host if host in _WILDCARDS else host
        creds = self.credentials
        try:
            conn = ServerConnection(host, port, creds.key, creds.tls, creds.ca_file,
                                    timeout=self.timeout, what=typname)
            return RemoteComponent(conn, typname, obj_id, self, directory)
        except BaseException:
            self._call('release', obj_id, False)
            raise

    def start_runner(self, runner: Any) -> tuple[int, ServerConnection]:
        """Ship a case runner (cloudpickled, or its cloudpickle bytes: the server must allow
        shell access) to a new ObjServer; its id and a connection for ``run_cases`` calls."""
        blob = runner if isinstance(runner, bytes) else cloudpickle.dumps(runner)
        obj_id, host, port, _directory = self._call('start_runner', blob, timeout=self.timeout)
        host = self.host if host in _WILDCARDS else host
        creds = self.credentials
        try:
            return obj_id, ServerConnection(host, port, creds.key, creds.tls, creds.ca_file,
                                            timeout=self.timeout, what='case runner')
        except BaseException:
            self._call('release', obj_id, False)
            raise

    def release_object(self, obj_id: int) -> None:
        """End object ``obj_id``'s ObjServer (e.g. a case runner) and remove its directory."""
        self._call('release', obj_id, False)

    def release(self, proxy: RemoteComponent, keep_directory: bool = False) -> None:
        """End ``proxy``'s ObjServer and remove its directory (unless ``keep_directory``)."""
        made_by = proxy._factory
        if made_by is None or (made_by.host, made_by.port) != (self.host, self.port):
            raise ValueError(f'{self!r}.release: {proxy!r} was not created by this server')
        self._call('release', proxy._obj_id, bool(keep_directory))
        proxy._released = True
        proxy._conn.close()

    def list_objects(self) -> list[dict[str, Any]]:
        """The objects this server holds: id, type, pid, port, directory."""
        return [dict(zip(('id', 'type', 'pid', 'port', 'directory'), row))
                for row in self._call('list_objects')]

    def get_available_types(self, groups: str | Iterable[str] | None = None) -> list[TypeInfo]:
        """The types this server can create (installed there and allowed)."""
        wanted = (groups,) if isinstance(groups, str) else tuple(groups) if groups else None
        return [TypeInfo(*row) for row in self._call('get_available_types', wanted)]

    def info(self) -> dict[str, Any]:
        """host, port, pid, tls, python and openmdao_like versions, root of the server."""
        keys = ('host', 'port', 'pid', 'tls', 'python', 'openmdao_like', 'root')
        return dict(zip(keys, self._call('info')))

    def ping(self) -> bool:
        """Whether the server answers within the short timeout."""
        try:
            return self._call('ping', timeout=SHORT_TIMEOUT) == 'pong'
        except RemoteError:
            return False

    def execute_command(self, args: list[str], timeout: float = 600.0) -> tuple[int, bytes,
                                                                               bytes]:
        """``(returncode, stdout, stderr)`` of ``args`` run in the server's root (owner role,
        server started with allow-shell)."""
        return self._call('execute_command', tuple(args), float(timeout), timeout=timeout + 30)

    def run_command(self, args: list[str], directory: str, env: dict[str, str] | None = None,
                    stdin: str = os.devnull, stdout: str = '', stderr: str = '',
                    timeout: float = 0.0, grace: float = 5.0,
                    wait: float | None = None) -> tuple[int, bool, str, bytes, bytes]:
        """Run ``args`` in ``directory`` below the server's root (owner role, allow-shell):
        ``stdin`` a file there or os.devnull, ``stdout``/``stderr`` a file there, os.devnull
        or '' (captured), ``stderr='-'`` joined to stdout; its process group killed after
        ``timeout`` seconds (0: none; SIGKILL ``grace`` s after SIGTERM). ``wait`` bounds this
        call (default: the proxy's timeout). ``(returncode, timed out, why it could not start
        or '', stdout, stderr)``."""
        return self._call('run_command', tuple(args), directory,
                          tuple((env or {}).items()), stdin, stdout, stderr, float(timeout),
                          float(grace), timeout=self.timeout if wait is None else wait)

    def stop(self) -> None:
        """Stop the server and every object it holds (owner role)."""
        self._call('stop')
        self._conn.close()

    def close(self) -> None:
        """Close the connection (the objects stay until released or the server stops)."""
        self._conn.close()

    # -- files in the server's root -------------------------------------------------------------
    def upload(self, local_path: str, remote_path: str, progress: Any = None) -> int:
        """Copy a local file into the server's root (chunked, checksummed); return its size."""
        return files.upload(self._call, os.fspath(local_path), remote_path, progress=progress)

    def download(self, remote_path: str, local_path: str, progress: Any = None) -> int:
        """Copy a file from the server's root here (chunked, checksummed); return its size."""
        return files.download(self._call, remote_path, os.fspath(local_path),
                              progress=progress)

    def listdir(self, path: str = '.') -> tuple[str, ...]:
        """Names in a directory below the server's root."""
        return self._call('file_listdir', path)

    def stat(self, path: str) -> tuple:
        """``(size, mtime, is_dir)`` of a path below the server's root."""
        return self._call('file_stat', path)

    def remove(self, path: str) -> None:
        """Remove a file or directory below the server's root."""
        self._call('file_remove', path)

    def pack_zip(self, directory: str, zip_path: str) -> None:
        """Zip a directory below the root into a zip file below the root."""
        self._call('file_pack_zip', directory, zip_path)

    def unpack_zip(self, zip_path: str, directory: str) -> None:
        """Unzip a zip file below the root into a directory below the root."""
        self._call('file_unpack_zip', zip_path, directory)


class RemoteFactory(Factory):
    """The FactoryManager's link to servers: serves ``create(typname, server=...)`` where
    ``server`` is a `FactoryProxy` or the ``(host, port)`` of a server connected to before in
    the current session (whose connection it reuses)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _proxy(self, server: Any) -> FactoryProxy | None:
        if isinstance(server, FactoryProxy):
            return server
        if not (isinstance(server, tuple) and len(server) == 2):
            return None
        host, port = server
        creds = credentials_for(host, port)
        if creds is None:
            return None
        proxies = current_session().hold('remote.factory_proxies', dict)
        with self._lock:
            proxy = proxies.get((host, int(port)))
            if proxy is None or proxy._conn.closed:
                proxy = proxies[(host, int(port))] = FactoryProxy(host, int(port), creds)
            return proxy

    def create(self, typname: str, version: str | None = None, server: Any = None,
               res_desc: dict | None = None, **ctor_args: Any) -> Any:
        proxy = self._proxy(server)
        if proxy is None:
            return None
        return proxy.create(typname, version, res_desc, **ctor_args)

    def why_not(self, typname: str, version: str | None = None, server: Any = None,
                res_desc: dict | None = None) -> str:
        if server is None:
            return 'no server was requested'
        if isinstance(server, tuple) and len(server) == 2:
            return (f'no credentials for the server {server[0]}:{server[1]} in this process; '
                    f'call connect_to_server({server[0]!r}, {server[1]}, key=...) first')
        return f'expected server=(host, port) or a FactoryProxy, got {server!r}'
