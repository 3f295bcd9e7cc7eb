"""Server side of every openmdao_like rpyc service: methods are callable only when declared
with `remote` (and only by the roles it names), every answer is plain data (``('ok', result)``
or ``('err', captured exception)``), and `Server` serves authenticated connections only."""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import logging
import socket
import threading
import time
from typing import Any, Callable

import rpyc
from rpyc.utils.authenticators import AuthenticationError
from rpyc.utils.server import ThreadedServer

from .auth import Authenticator, Login, refuse_busy
from .failures import capture
from .transport import (OOBConnection, channel, config as protocol_config, keepalive,
                        sendable)

logger = logging.getLogger(__name__)


def remote(*roles: str) -> Callable[[Callable], Callable]:
    """Declare a service method callable by clients holding one of ``roles`` (default: owner and
    user). Its arguments are checked against its annotations (``str``, ``int``, ``float``,
    ``bool``, ``bytes``, ``tuple`` and ``| None`` of them) before it runs. The method's result
    must be plain data (numbers, str, bytes, None, tuples of them); its exceptions go back to
    the caller as data."""
    allowed = frozenset(roles or ('owner', 'user'))

    def mark(fn: Callable) -> Callable:
        check = _argument_check(fn)

        @functools.wraps(fn)
        def call(self: Any, *args: Any) -> tuple:
            try:
                check(args)
                result = fn(self, *args)
                if not sendable(result):
                    raise TypeError(f'{fn.__name__} returned {type(result).__name__}, which is '
                                    f'not plain data')
            except Exception as exc:
                logger.debug('%s failed', fn.__name__, exc_info=True)
                return ('err', capture(exc))
            return ('ok', result)
        call.remote_roles = allowed
        return call
    return mark


_ANNOTATED = {'str': (str,), 'int': (int,), 'float': (float, int), 'bool': (bool,),
              'bytes': (bytes,), 'tuple': (tuple,), 'None': (type(None),)}


def _argument_check(fn: Callable) -> Callable[[tuple], None]:
    """A check of a remote call's arguments against ``fn``'s parameters and annotations
    (unannotated or other annotations: any plain value)."""
    params = list(inspect.signature(fn).parameters.values())[1:]  # after self
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return lambda args: None
    required = sum(p.default is p.empty for p in params)
    kinds = []
    for p in params:
        parts = str(p.annotation).split('|') if isinstance(p.annotation, str) else ()
        types = tuple(t for part in parts for t in _ANNOTATED.get(part.strip(), ()))
        known = parts and all(part.strip() in _ANNOTATED for part in parts)
        kinds.append((p.name, types if known else None))

    def check(args: tuple) -> None:
        if not required <= len(args) <= len(kinds):
            raise TypeError(f'{fn.__name__}() takes {required} to {len(kinds)} arguments '
                            f'({", ".join(name for name, _ in kinds)}), got {len(args)}')
        for (name, types), arg in zip(kinds, args):
            if types is not None and type(arg) not in types:
                raise TypeError(f'{fn.__name__}(): argument {name!r} must be '
                                f'{" or ".join(t.__name__ for t in types)}, got '
                                f'{type(arg).__name__}')
    return check


class SecureService(rpyc.Service):
    """Base of our services: one instance per connection, knowing the caller's role.

    Only attributes declared with `remote` resolve, and only for the roles they name.
    """

    _protocol = OOBConnection

    def on_connect(self, conn: Any) -> None:
        self.conn = conn
        self.role = conn._config.get('credentials')
        self.peer = conn._config.get('endpoints', (None, ('?', 0)))[1]

    def _rpyc_getattr(self, name: str) -> Any:
        roles = getattr(getattr(type(self), name, None), 'remote_roles', None)
        if roles is None:
            return _refusal(AttributeError(f'{type(self).__name__} has no remote method '
                                           f'{name!r}'))
        if self.role not in roles:
            return _refusal(PermissionError(f'{type(self).__name__}.{name}: allowed for the '
                                            f'{"/".join(sorted(roles))} role, not for the '
                                            f'{self.role!r} role'))
        return getattr(self, name)

    def _rpyc_setattr(self, name: str, value: Any) -> None:
        raise AttributeError('access denied')

    def _rpyc_delattr(self, name: str) -> None:
        raise AttributeError('access denied')


def _refusal(exc: Exception) -> Callable[..., tuple]:
    """A stand-in for a method the caller may not call: it answers with ``exc``."""
    def refuse(*args: Any) -> tuple:
        return ('err', capture(exc))
    return refuse


class Server(ThreadedServer):
    """A threaded rpyc server whose connections are authenticated by `Authenticator` (within
    its login timeout), bounded in number (``limits.max_startups`` awaiting login,
    ``limits.max_connections`` in all, one thread each: more are told the server is busy),
    kept alive by TCP keepalive, and carried by uncompressed channels whose messages are
    bounded by ``limits``."""

    def __init__(self, service: Any, host: str, port: int, authenticator: Authenticator,
                 liveness: float = 10.0):
        super().__init__(service, hostname=host, port=port, authenticator=authenticator,
                         protocol_config=protocol_config(), logger=logging.getLogger(
                             'openmdao_like.remote.server'))
        self.liveness = liveness
        self.limits = authenticator.limits
        self._counts = threading.Lock()
        self.awaiting_login = 0
        self.connections = 0
        self._closing = _LingeringCloser()

    def _accept_method(self, sock: socket.socket) -> None:
        limits = self.limits
        with self._counts:
            if self.connections >= limits.max_connections:
                busy = (f'{self.connections} connections open, the most it serves '
                        f'(max_connections)')
            elif self.awaiting_login >= limits.max_startups:
                busy = (f'{self.awaiting_login} connections awaiting login, the most it '
                        f'accepts (max_startups)')
            else:
                busy = None
                self.connections += 1
                self.awaiting_login += 1
        if busy is not None:
            self.clients.discard(sock)
            self.logger.warning('refusing a connection from %s: %s', _peer(sock), busy)
            refuse_busy(sock, busy)
            self._closing.add(sock)
            return
        try:
            threading.Thread(target=self._authenticate_and_serve_client, args=(sock,),
                             daemon=True).start()
        except BaseException:
            self._done(sock, logged_in=False)
            raise

    def _authenticate_and_serve_client(self, sock: socket.socket) -> None:
        logged_in, served = False, sock
        try:
            try:
                served, login = self.authenticator(sock)  # TLS wraps it in a new socket
            except AuthenticationError as exc:
                self.logger.info('refused: %s', exc)
                return
            with self._counts:
                self.awaiting_login -= 1
            logged_in = True
            self._serve_client(served, login)
        except Exception:
            self.logger.exception('client connection terminated abruptly')
        finally:
            self._done(sock, logged_in, served)

    def _done(self, sock: socket.socket, logged_in: bool,
              served: socket.socket | None = None) -> None:
        """Close a connection (the accepted socket and the one served over it) and free its
        place."""
        for each in {sock, served or sock}:
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()
        self.clients.discard(sock)
        with self._counts:
            self.connections -= 1
            if not logged_in:
                self.awaiting_login -= 1

    def _serve_client(self, sock: socket.socket, login: Login) -> None:
        keepalive(sock, self.liveness)
        addrinfo = sock.getpeername()
        cfg = dict(self.protocol_config, credentials=login.role,
                   endpoints=(sock.getsockname(), addrinfo), logger=self.logger)
        conn = self.service._connect(channel(sock, self.limits, login.peer_max_message), cfg)
        try:
            conn.serve_all()
        finally:
            self.logger.debug('goodbye %s', addrinfo)

    def close(self) -> None:
        super().close()
        self._closing.close_all()

    def start_in_thread(self) -> threading.Thread:
        """Listen now, serve in a daemon thread; the port is known on return."""
        self._listen()
        thread = threading.Thread(target=self.start, name=f'server-{self.port}', daemon=True)
        thread.start()
        return thread


def _peer(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return '?'


class _LingeringCloser:
    """Closes refused connections a moment after their refusal was sent (closing at once,
    with the client's first bytes unread, would reset the connection and could lose the
    refusal), from one thread whatever their number; beyond `MAX` waiting, at once."""

    LINGER = 1.0
    MAX = 256

    def __init__(self) -> None:
        self._waiting: collections.deque[tuple[float, socket.socket]] = collections.deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, sock: socket.socket) -> None:
        """Close ``sock`` (its refusal sent) after `LINGER` seconds."""
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        with self._lock:
            if len(self._waiting) >= self.MAX:
                sock.close()
                return
            self._waiting.append((time.monotonic() + self.LINGER, sock))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name='refused-connections')
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._waiting:
                    self._thread = None
                    return
                due, sock = self._waiting[0]
                if due <= time.monotonic():
                    self._waiting.popleft()
                    sock.close()
                    continue
            time.sleep(min(0.1, max(0.0, due - time.monotonic())))

    def close_all(self) -> None:
        """Close every connection still waiting."""
        with self._lock:
            while self._waiting:
                self._waiting.popleft()[1].close()
