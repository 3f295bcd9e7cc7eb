"""Servers that register back: an allocated server tells the client where it listens.

A server started by an allocator (a local process, a process on an SSH host, a batch job on a
cluster node) listens on a free port and then connects to the client's `Registrar`, sending
``{host, port, pid, job_id, hostname}`` signed with the one-time secret of its allocation. So no
fixed port is opened on any host, and a batch job need not be polled to learn where it runs.

The registration connection stays open for the server's life: when it closes (the allocation
is released, or the client died) the server stops. So a client that crashes leaves no server
behind, not even a batch job holding nodes until its walltime.

    client                                 allocated server
    expect() -> (id, secret) ─ settings ─> starts, listens on port 0
    wait(id) <──── {payload, HMAC(secret)} ─ registers
             ───── "ok" ────────────────>  serves; exits when this socket closes
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import AllocationError
from ..session import current_session

logger = logging.getLogger(__name__)

__all__ = ['Registrar', 'Registration', 'Expectation', 'registrar_for', 'register_back']

#: Longest registration line accepted (bytes).
MAX_LINE = 1 << 16
#: Seconds a server has to send its whole registration line.
REGISTER_TIMEOUT = 10.0
#: Registrations read at once (one thread each); more connections are closed at once.
MAX_PENDING = 64
#: Seconds between checks that a server we wait for is still starting.
POLL = 0.1


@dataclass
class Registration:
    """Where an allocated server listens, and the socket that keeps it alive."""

    host: str
    port: int
    pid: int
    info: dict[str, Any]
    sock: socket.socket | None = field(default=None, repr=False)

    def close(self) -> None:
        """Close the registration connection: the server stops."""
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@dataclass
class Expectation:
    """A registration the client waits for: one-time id and secret of one allocation."""

    registrar: Registrar
    id: str
    secret: bytes
    event: threading.Event = field(default_factory=threading.Event)
    registration: Registration | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where the server must register."""
        return self.registrar.address

    def settings(self) -> dict[str, Any]:
        """What the server needs to register (goes into its private settings file)."""
        host, port = self.registrar.address
        return {'registrar': [host, port], 'token_id': self.id,
                'token_secret': base64.b64encode(self.secret).decode()}

    def wait(self, timeout: float, check: Callable[[], str | None] | None = None,
             what: str = 'server') -> Registration:
        """The registration, once the server sent it.

        ``check()`` is called between waits and returns why the server can no longer come
        (it exited, its job ended) or None; either that or ``timeout`` raises `AllocationError`.
        """
        deadline = time.monotonic() + timeout
        try:
            while not self.event.wait(POLL):
                why = check() if check is not None else None
                if why is not None and not self.event.is_set():
                    raise AllocationError(f'{what} did not start: {why}')
                if time.monotonic() > deadline:
                    raise AllocationError(f'{what} did not register within {timeout:g} s')
            return self.registration
        finally:
            self.registrar.forget(self.id)


class Registrar:
    """Listens on ``host`` (port 0: a free one) for servers registering back."""

    def __init__(self, host: str = '127.0.0.1'):
        self._sock = socket.create_server((host, 0))
        self.address = (host, self._sock.getsockname()[1])
        self._expected: dict[str, Expectation] = {}
        self._lock = threading.Lock()
        #: The process whose thread listens (a forked child inherits the socket, not the
        #: thread).
        self.pid = os.getpid()
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name=f'registrar-{host}:{self.address[1]}')
        self._thread.start()
        logger.debug('registrar listening on %s:%d', *self.address)

    def close(self) -> None:
        """Stop listening and end the listening thread (servers that registered already keep
        their registration connections). In a forked child only the inherited descriptor is
        closed: the parent's registrar keeps listening."""
        if self.pid == os.getpid():
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept
            except OSError:
                pass
        self._sock.close()
        if self.pid == os.getpid() and self._thread is not threading.current_thread():
            self._thread.join(POLL * 10)

    def expect(self) -> Expectation:
        """A new one-time id and secret for one server to register with."""
        exp = Expectation(self, secrets.token_hex(16), secrets.token_bytes(32))
        with self._lock:
            self._expected[exp.id] = exp
        return exp

    def forget(self, token_id: str) -> None:
        """Stop accepting ``token_id`` (it registered, or we gave up on it)."""
        with self._lock:
            self._expected.pop(token_id, None)

    def _accept(self) -> None:
        pending = threading.BoundedSemaphore(MAX_PENDING)
        while True:
            try:
                conn, peer = self._sock.accept()
            except OSError:
                return
            if not pending.acquire(blocking=False):
                logger.warning('registration from %s refused: %d registrations in progress',
                               peer[0], MAX_PENDING)
                conn.close()
                continue
            threading.Thread(target=self._handle, args=(conn, peer, pending),
                             daemon=True).start()

    def _handle(self, conn: socket.socket, peer: tuple, pending: threading.Semaphore) -> None:
        try:
            self._register(conn, peer)
        finally:
            pending.release()

    def _register(self, conn: socket.socket, peer: tuple) -> None:
        try:
            line = _read_line(conn, time.monotonic() + REGISTER_TIMEOUT)
            message = json.loads(line)
            token_id, payload, mac = message['id'], message['payload'], message['mac']
            with self._lock:
                exp = self._expected.get(token_id)
            if exp is None or exp.event.is_set():
                raise PermissionError('unknown or used registration id')
            want = hmac.new(exp.secret, payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, mac):
                raise PermissionError('bad signature')
            info = json.loads(payload)
            conn.sendall(b'ok\n')
            conn.settimeout(None)
            exp.registration = Registration(info['host'], int(info['port']), int(info['pid']),
                                            info, conn)
            exp.event.set()
            logger.debug('server registered from %s: %s', peer[0], info)
        except Exception as exc:  # a stray or forged connection: refuse it, keep serving
            logger.warning('registration from %s refused: %s', peer[0], exc)
            conn.close()


_registrars_lock = threading.Lock()


def _close_all(registrars: dict[str, Registrar]) -> None:
    for reg in registrars.values():
        reg.close()


def registrar_for(host: str) -> Registrar:
    """The current `openmdao_like.Session`'s registrar listening on ``host`` (started on
    first use, stopped when the session ends)."""
    registrars = current_session().hold('resources.registrars', dict, _close_all)
    with _registrars_lock:
        reg = registrars.get(host)
        if reg is not None and reg.pid != os.getpid():
            # A forked child (a LocalExecutor worker) inherits the registrar but not its
            # thread: it starts its own.
            reg.close()
            reg = None
        if reg is None:
            reg = registrars[host] = Registrar(host)
        return reg


def _read_line(conn: socket.socket, deadline: float | None = None) -> bytes:
    """One line from ``conn``, all of it by ``deadline`` (None: the socket's own timeout)."""
    data = b''
    while not data.endswith(b'\n'):
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'no full line within {REGISTER_TIMEOUT:g} s')
            conn.settimeout(left)
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError('closed before a full line')
        data += chunk
        if len(data) > MAX_LINE:
            raise ValueError('registration line too long')
    return data


# -- server side ------------------------------------------------------------------------------
def local_address_towards(host: str, port: int) -> str:
    """The address of this host that ``host:port`` sees connections come from."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # UDP: nothing is sent
        probe.connect((host, port))
        return probe.getsockname()[0]


def register_back(settings: dict[str, Any], info: dict[str, Any],
                  timeout: float = 30.0) -> socket.socket:
    """Send ``info`` to the registrar named in ``settings``; the open socket, once accepted."""
    host, port = settings['registrar']
    secret = base64.b64decode(settings['token_secret'])
    payload = json.dumps(dict(info, job_id=_job_id(), hostname=socket.gethostname()))
    mac = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.sendall(json.dumps({'id': settings['token_id'], 'payload': payload,
                             'mac': mac}).encode() + b'\n')
    if _read_line(sock) != b'ok\n':
        sock.close()
        raise PermissionError(f'the registrar at {host}:{port} refused this server')
    sock.settimeout(None)
    return sock


def _job_id() -> str | None:
    """The batch job this process runs in, if any (SLURM or PBS)."""
    return os.environ.get('SLURM_JOB_ID') or os.environ.get('PBS_JOBID')
