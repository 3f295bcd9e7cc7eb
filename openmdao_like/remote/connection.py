"""Client side of a connection to an openmdao_like server: connect, authenticate, then call
declared methods, each call one round trip with a timeout, every failure named by host, port
and the object concerned.

A dead or frozen server is noticed however long a call may take. TCP keepalive reports a host
that vanished; a server process that died closes its sockets. A process that is stopped or
hung (SIGSTOP, a deadlock) still has its kernel answer keepalives, so a call that has waited
longer than a heartbeat interval checks the server itself: it pings it over a second connection
(opened on first need, authenticated like the first, served by another thread of the server)
every interval, and gives up after `BEAT_MISSES` intervals without an answer. Short calls never
pay for this.
"""

from __future__ import annotations

import itertools
import logging
import random
import socket
import ssl
import threading
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
#: Seconds of silence after which the kernel declares a peer host dead (TCP keepalive); a call
#: waiting longer than a fifth of it pings the server every fifth (the heartbeat interval).
LIVENESS = 10.0
#: Heartbeat intervals without an answer after which a server counts as stopped.
BEAT_MISSES = 3

logger = logging.getLogger(__name__)

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
    liveness : float
        Seconds within which a vanished host is noticed (TCP keepalive); a call waiting longer
        than ``liveness / 5`` pings the server that often (see the module docstring).
    heartbeat : bool
        Whether long calls check the server that way (a heartbeat connection does not).
    """

    def __init__(self, host: str, port: int, key: str | bytes, tls: bool = False,
                 ca_file: str | None = None, timeout: float = CALL_TIMEOUT,
                 connect_timeout: float = SHORT_TIMEOUT, liveness: float = LIVENESS,
                 bind: str | None = None, what: str = 'server',
                 limits: Limits = DEFAULT_LIMITS, heartbeat: bool = True):
        self.host, self.port = host, int(port)
        self.tls = bool(tls)
        self.timeout = timeout
        self.what = what
        self.closed = False
        self.beat_interval = liveness / 5 if heartbeat else None
        self._beat: ServerConnection | None = None
        self._beat_lock = threading.Lock()
        key = check_key(key, f'{self.where}: key')
        self._settings = dict(key=key, tls=tls, ca_file=ca_file, liveness=liveness, bind=bind,
                              limits=limits)
        deadline = time.monotonic() + connect_timeout
        for attempt in itertools.count():
            try:
                sock, login = self._login(key, ca_file, deadline, liveness, bind, limits)
                break
            except ServerBusy as exc:
                pause = min(0.05 * 2 ** attempt, 1.0) * random.uniform(0.5, 1.0)
                if time.monotonic() + pause >= deadline:
                    raise ServerBusy(f'{exc}; still busy after {connect_timeout:g} s') \
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
            request = self._conn.async_request(consts.HANDLE_CALLATTR, self._root, name, args,
                                               (), timeout=wait)
            if self.beat_interval is not None and wait > self.beat_interval:
                self._await(request, name, wait)
            answer = request.value
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

    def _await(self, request: Any, name: str, wait: float) -> None:
        """Serve the connection until ``request`` is answered, checking every heartbeat
        interval that the server still answers pings on the heartbeat connection.
        `rpyc.AsyncResultTimeout` after ``wait`` seconds; `RemoteError` (the connection
        closed) once the server stopped answering."""
        done = threading.Event()
        request.add_callback(lambda _answer: done.set())

        def waiting() -> bool:
            return not done.is_set()

        interval = self.beat_interval
        start = time.monotonic()
        deadline, next_beat = start + wait, start + interval
        ping, silent = None, 0
        while waiting():
            now = time.monotonic()
            if now >= deadline:
                raise rpyc.AsyncResultTimeout(f'no answer within {wait:g} s')
            if now >= next_beat:
                next_beat = now + interval
                try:
                    ping, silent = self._heartbeat(ping, silent)
                except ServerBusy as exc:  # it answers, just not a second connection
                    logger.warning('%s: no heartbeat during %s(): %s', self.where, name, exc)
                    next_beat = deadline
                except RemoteError as exc:
                    self._stopped(name, time.monotonic() - start, str(exc))
                if silent >= BEAT_MISSES:
                    self._stopped(name, time.monotonic() - start,
                                  f'no answer to a ping for {silent * interval:g} s')
            self._conn.serve(max(0.0, min(deadline, next_beat) - time.monotonic()),
                             waiting=waiting)

    def _heartbeat(self, ping: Any, silent: int) -> tuple[Any, int]:
        """One beat: the ping in flight and the beats it has gone unanswered (a new ping once
        the last was answered)."""
        if ping is not None and not ping.ready:  # `ready` reads what arrived meanwhile
            return ping, silent + 1
        with self._beat_lock:
            beat = self._beat
            if beat is None or beat.closed:
                what = f'{self.what} (heartbeat)'
                try:
                    beat = self._beat = ServerConnection(
                        self.host, self.port, connect_timeout=self.beat_interval * BEAT_MISSES,
                        what=what, heartbeat=False, **self._settings)
                except ServerBusy:
                    raise
                except RemoteError as exc:
                    reason = str(exc).removeprefix(f'{what} on {self.host}:{self.port}: ')
                    raise RemoteError(f'a heartbeat connection failed: {reason}') from None
        try:
            return beat._conn.async_request(consts.HANDLE_PING, b'', timeout=None), 0
        except (EOFError, OSError) as exc:
            beat.close(goodbye=False)
            raise RemoteError(f'heartbeat connection lost: {exc or type(exc).__name__}') \
                from None

    def _stopped(self, name: str, waited: float, why: str) -> None:
        """Close the connection and raise `RemoteError`: the server stopped responding."""
        self.close(goodbye=False)
        raise RemoteError(f'{self.where}: the server stopped responding during {name}() '
                          f'({why}; {waited:.1f} s into the call); the connection was closed')

    def ping(self, timeout: float = SHORT_TIMEOUT) -> bool:
        """Whether the server answers within ``timeout`` seconds."""
        try:
            self._conn.ping(timeout=timeout)
            return True
        except Exception:
            return False

    def close(self, goodbye: bool = True) -> None:
        """Close the connection (idempotent); ``goodbye=False`` closes it without telling
        the server (which waits up to a second for a server that cannot answer)."""
        if not self.closed:
            self.closed = True
            if not goodbye:  # the goodbye then fails at once, with nobody to wait for
                try:
                    self._conn._channel.close()
                except Exception:
                    pass
            try:
                self._conn.close()
            except Exception:
                pass
            with self._beat_lock:
                beat, self._beat = self._beat, None
            if beat is not None:
                beat.close(goodbye)

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
