"""Client side of a connection to an openmdao_like server: connect, authenticate, then call
declared methods, each call one round trip with a timeout, every failure named by host, port
and the object concerned."""

from __future__ import annotations

import itertools
import random
import socket
import ssl
import time
import weakref
from typing import Any

import rpyc
from rpyc.core import consts

from ..errors import RemoteError
from .auth import Login, ServerBusy, check_key, client_handshake, client_tls_context
from .limits import DEFAULT_LIMITS, Limits
from .failures import rebuild
from .transport import OOBConnection, channel, config as protocol_config, keepalive

#: Seconds a call may take before `RemoteError` (long runs: raise it per connection or call).
CALL_TIMEOUT = 24 * 3600.0
#: Seconds to connect and for short calls (ping, describe, release).
SHORT_TIMEOUT = 30.0
#: Seconds of silence after which the kernel declares a peer host dead (TCP keepalive).
LIVENESS = 10.0

_TRANSPORT_ERRORS = (EOFError, OSError, rpyc.AsyncResultTimeout)


class ServerConnection:
    """An authenticated connection to one server (a factory or an object server).

    Parameters
    ----------
    host, port : str, int
        Where the server listens.
    key : str or bytes
        The shared key proving who we are (the server proves it holds it too).
    tls : bool
        Wrap the connection in TLS, checking the server's certificate against ``ca_file``.
    timeout : float
        Default seconds a call may take.
    bind : str, optional
        Local address to connect from (servers talking to peers use their own address, so
        that the peer's allowed hosts see who calls).
    what : str
        How errors name the remote object (e.g. ``'top.cfd'``).
    limits : Limits
        Bounds on what this side receives (``max_message``, ``message_timeout``).
    """

    def __init__(self, host: str, port: int, key: str | bytes, tls: bool = False,
                 ca_file: str | None = None, timeout: float = CALL_TIMEOUT,
                 connect_timeout: float = SHORT_TIMEOUT, liveness: float = LIVENESS,
                 bind: str | None = None, what: str = 'server',
                 limits: Limits = DEFAULT_LIMITS):
        self.host, self.port = host, int(port)
        self.tls = bool(tls)
        self.timeout = timeout
        self.what = what
        self.closed = False
        key = check_key(key, f'{self.where}: key')
        deadline = time.monotonic() + connect_timeout
        for attempt in itertools.count():
            try:
                sock, login = self._login(key, ca_file, deadline, liveness, bind, limits)
                break
            except ServerBusy as exc:
                pause = min(0.05 * 2 ** attempt, 1.0) * random.uniform(0.5, 1.0)
                if time.monotonic() + pause >= deadline:
                    raise RemoteError(f'{exc}; still busy after {connect_timeout:g} s') \
                        from None
                time.sleep(pause)
        self.role = login.role
        try:
            # a connection dropped without close() still closes its socket when collected
            weakref.finalize(self, _close_quietly, sock)
            self._conn = _ClientService._connect(
                channel(sock, limits, login.peer_max_message), protocol_config())
            root = self._conn.async_request(consts.HANDLE_GETROOT,
                                            timeout=connect_timeout).value
            self._root = root
        except Exception as exc:
            sock.close()
            raise RemoteError(f'{self.where}: cannot connect: {type(exc).__name__}: '
                              f'{exc}') from None

    def _login(self, key: bytes, ca_file: str | None, deadline: float, liveness: float,
               bind: str | None, limits: Limits) -> tuple[socket.socket, Login]:
        """A new authenticated socket to the server, and what the login established."""
        left = max(0.01, deadline - time.monotonic())
        try:
            sock = socket.create_connection((self.host, self.port), timeout=left,
                                            source_address=(bind, 0) if bind else None)
        except OSError as exc:
            raise RemoteError(f'{self.where}: cannot connect: {exc.strerror or exc}') from None
        try:
            keepalive(sock, liveness)
            if self.tls:
                try:
                    sock = client_tls_context(ca_file).wrap_socket(sock,
                                                                   server_hostname=self.host)
                except ssl.SSLError as exc:
                    raise RemoteError(f'{self.where}: TLS failed: {exc}') from None
            return sock, client_handshake(sock, key, self.where, limits.max_message)
        except BaseException:
            sock.close()
            raise

    @property
    def where(self) -> str:
        """``'what on host:port'``, how errors name this connection."""
        return f'{self.what} on {self.host}:{self.port}'

    def call(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Call remote method ``name`` (one round trip); re-raise its exception here."""
        if self.closed:
            raise RemoteError(f'{self.where}: the connection is closed')
        wait = self.timeout if timeout is None else timeout
        try:
            answer = self._conn.async_request(consts.HANDLE_CALLATTR, self._root, name, args,
                                              (), timeout=wait).value
        except rpyc.AsyncResultTimeout:
            self.close()
            raise RemoteError(f'{self.where}: no answer to {name}() within {wait:g} s; the '
                              f'connection was closed') from None
        except (EOFError, OSError) as exc:
            if hasattr(exc, '_remote_tb'):  # raised by the server's rpyc layer, not a loss
                raise
            self.close()
            raise RemoteError(f'{self.where}: connection lost during {name}(): '
                              f'{exc or type(exc).__name__}') from None
        status, value = answer
        if status == 'ok':
            return value
        raise rebuild(value, self.where)

    def ping(self, timeout: float = SHORT_TIMEOUT) -> bool:
        """Whether the server answers within ``timeout`` seconds."""
        try:
            self._conn.ping(timeout=timeout)
            return True
        except Exception:
            return False

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self.closed:
            self.closed = True
            try:
                self._conn.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        return f'<ServerConnection {self.where}>'


class _ClientService(rpyc.VoidService):
    """The client's (empty) side of a connection, speaking the out-of-band protocol."""

    _protocol = OOBConnection


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
