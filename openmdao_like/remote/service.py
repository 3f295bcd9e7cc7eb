"""Server side of every openmdao_like rpyc service: methods are callable only when declared
with `remote` (and only by the roles it names), every answer is plain data (``('ok', result)``
or ``('err', captured exception)``), and `Server` serves authenticated connections only."""

from __future__ import annotations

import functools
import logging
import socket
import threading
from typing import Any, Callable

import rpyc
from rpyc.utils.server import ThreadedServer

from .auth import Authenticator
from .failures import capture
from .transport import (OOBConnection, channel, config as protocol_config, keepalive,
                        sendable)

logger = logging.getLogger(__name__)


def remote(*roles: str) -> Callable[[Callable], Callable]:
    """Declare a service method callable by clients holding one of ``roles`` (default: owner and
    user). The method's result must be plain data (numbers, str, bytes, None, tuples of them);
    its exceptions go back to the caller as data."""
    allowed = frozenset(roles or ('owner', 'user'))

    def mark(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def call(self: Any, *args: Any) -> tuple:
            try:
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
    """A threaded rpyc server whose connections are authenticated by `Authenticator`, kept
    alive by TCP keepalive, and carried by uncompressed channels."""

    def __init__(self, service: Any, host: str, port: int, authenticator: Authenticator,
                 liveness: float = 10.0):
        super().__init__(service, hostname=host, port=port, authenticator=authenticator,
                         protocol_config=protocol_config(), logger=logging.getLogger(
                             'openmdao_like.remote.server'))
        self.liveness = liveness

    def _serve_client(self, sock: socket.socket, credentials: Any) -> None:
        keepalive(sock, self.liveness)
        addrinfo = sock.getpeername()
        cfg = dict(self.protocol_config, credentials=credentials,
                   endpoints=(sock.getsockname(), addrinfo), logger=self.logger)
        conn = self.service._connect(channel(sock), cfg)
        try:
            conn.serve_all()
        finally:
            self.logger.debug('goodbye %s', addrinfo)

    def start_in_thread(self) -> threading.Thread:
        """Listen now, serve in a daemon thread; the port is known on return."""
        self._listen()
        thread = threading.Thread(target=self.start, name=f'server-{self.port}', daemon=True)
        thread.start()
        return thread
