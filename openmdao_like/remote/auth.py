"""Who may talk to a server: shared keys proved by an HMAC challenge in both directions,
allowed hosts checked on connect, and optional TLS around it all.

The handshake runs on the raw socket before rpyc sees a byte, so an unauthenticated peer can
never reach a service method (nor send a value)::

    client -> server   b'OMLK2' + client nonce (32 bytes)
    server -> client   b'OMLK2' + server nonce (32)        or b'OMLKX' + refusal message
                                                           or b'OMLKB' + "busy" message
    client -> server   HMAC(key, b'c' + client nonce + server nonce) + client's max message
    server -> client   b'\\x01' + HMAC(key, b's' + server nonce + client nonce) + role
                       + server's max message              or b'\\x00' + refusal message

Each key a server holds has a role ('owner' or 'user'); the role of the key the client proved
decides which service methods it may call. Each side then refuses to send a message larger
than the other accepts. The whole login must end within the server's login timeout, however
slowly the peer sends; a server too busy to take a connection (see `limits.Limits`) answers
"busy" at once, and the client tries again until its connect timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import stat
import struct
import time
from dataclasses import dataclass
from typing import Iterable

from rpyc.utils.authenticators import AuthenticationError

from ..errors import RemoteError
from .limits import DEFAULT_LIMITS, Limits

logger = logging.getLogger(__name__)

MAGIC = b'OMLK2'
REFUSED = b'OMLKX'
BUSY = b'OMLKB'
NONCE = 32
ROLES = ('owner', 'user')
_SIZE = struct.Struct('!Q')
#: The allowed hosts when none are given: this machine only.
LOOPBACK = ('127.0.0.0/8', '::1/128')


# -- keys ----------------------------------------------------------------------------------------
def generate_key() -> str:
    """A new random key (64 hex digits)."""
    return secrets.token_hex(32)


def write_key_file(path: str | os.PathLike) -> str:
    """Write a new key to ``path``, readable by its owner only; return the key."""
    key = generate_key()
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'w') as out:
        out.write(key + '\n')
    return key


def read_key_file(path: str | os.PathLike) -> bytes:
    """The key in ``path``; refused when others than its owner may read it, like ssh does."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
        with open(path, 'rb') as f:
            key = f.read().strip()
    except OSError as exc:
        raise ValueError(f'key file {path!r}: cannot read it: {exc.strerror}') from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f'key file {path!r}: expected permissions 0600 (owner only), got '
                         f'{stat.S_IMODE(mode):04o}; run: chmod 600 {path}')
    return check_key(key, f'key file {path!r}')


def check_key(key: str | bytes | None, where: str = 'key') -> bytes:
    """``key`` as bytes; at least 16 characters, since it is all that guards the server."""
    if key is None:
        raise ValueError(f'{where}: a key is required (every connection is authenticated); '
                         f'create one with `openmdao-like server keygen FILE`')
    if isinstance(key, str):
        key = key.strip().encode()
    if not isinstance(key, bytes):
        raise TypeError(f'{where}: expected a str or bytes key, got {type(key).__name__}')
    key = key.strip()
    if len(key) < 16:
        raise ValueError(f'{where}: expected a key of at least 16 characters, got {len(key)}')
    return key


def _mac(key: bytes, tag: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(key, tag + first + second, hashlib.sha256).digest()


# -- allowed hosts -------------------------------------------------------------------------------
class HostPolicy:
    """Addresses allowed to connect: IPs, networks (``10.0.0.0/24``), host names (resolved
    once, here) or ``'*'`` for any. None means this machine's loopback addresses only."""

    def __init__(self, hosts: Iterable[str] | None = None):
        given = list(LOOPBACK if hosts is None else hosts)
        self.any = '*' in given
        self.networks = []
        for host in given:
            if host == '*':
                continue
            try:
                self.networks.append(ipaddress.ip_network(host, strict=False))
            except ValueError:
                try:
                    infos = socket.getaddrinfo(host, None)
                except socket.gaierror:
                    raise ValueError(f'allowed hosts: expected an IP address, a network such as '
                                     f'10.0.0.0/24, a resolvable host name or "*", got '
                                     f'{host!r}') from None
                self.networks.extend(ipaddress.ip_network(info[4][0]) for info in infos)
        self.described = ', '.join(given)

    def allows(self, address: str) -> bool:
        """Whether a peer at ``address`` may connect."""
        if self.any:
            return True
        ip = ipaddress.ip_address(address.split('%')[0])
        return any(ip in net for net in self.networks)


# -- TLS -----------------------------------------------------------------------------------------
def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server-side TLS context from a certificate and its private key (PEM files)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f'TLS: cannot load certificate {cert!r} with key {key!r}: {exc}') \
            from None
    return ctx


def client_tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A client-side TLS context that checks the server's certificate (against ``ca_file``, a
    PEM file holding the server's certificate or its CA; the system CAs when None)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# -- the handshake, server side ------------------------------------------------------------------
@dataclass(frozen=True)
class Login:
    """What a successful handshake established: the client's role and the largest message
    it accepts."""

    role: str
    peer_max_message: int


class Authenticator:
    """rpyc authenticator: TLS (optional), allowed hosts, then the HMAC challenge, all within
    ``limits.login_timeout`` seconds.

    Returns ``(socket, Login)``.
    """

    def __init__(self, keys: dict[str, bytes], hosts: HostPolicy,
                 tls: ssl.SSLContext | None = None, limits: Limits = DEFAULT_LIMITS):
        if not keys:
            raise ValueError('a server needs at least one key')
        for role in keys:
            if role not in ROLES:
                raise ValueError(f'key roles must be among {ROLES}, got {role!r}')
        self.keys = {role: check_key(key, f'{role} key') for role, key in keys.items()}
        self.hosts = hosts
        self.tls = tls
        self.limits = limits

    def __call__(self, sock: socket.socket) -> tuple[socket.socket, Login]:
        deadline = time.monotonic() + self.limits.login_timeout
        peer = '?'
        try:
            peer = sock.getpeername()[0]
            if self.tls is not None:
                _set_deadline(sock, deadline)  # CPython bounds the whole TLS handshake by it
                sock = self.tls.wrap_socket(sock, server_side=True)
            if _recv_exact(sock, len(MAGIC), deadline) != MAGIC:  # others hang up at once
                raise AuthenticationError(f'{peer}: not an openmdao_like client (or TLS '
                                          f'mismatch)')
            if not self.hosts.allows(peer):
                _refuse(sock, REFUSED, f'host {peer} is not among the allowed hosts')
                raise AuthenticationError(f'{peer}: not among the allowed hosts '
                                          f'({self.hosts.described})')
            client_nonce = _recv_exact(sock, NONCE, deadline)
            server_nonce = secrets.token_bytes(NONCE)
            sock.sendall(MAGIC + server_nonce)
            proof = _recv_exact(sock, 32, deadline)
            peer_max, = _SIZE.unpack(_recv_exact(sock, _SIZE.size, deadline))
            for role, key in self.keys.items():
                if hmac.compare_digest(proof, _mac(key, b'c', client_nonce, server_nonce)):
                    answer = _mac(key, b's', server_nonce, client_nonce)
                    sock.sendall(b'\x01' + answer + struct.pack('!B', len(role)) +
                                 role.encode() + _SIZE.pack(self.limits.max_message))
                    logger.info('%s authenticated as %s', peer, role)
                    return sock, Login(role, peer_max)
            _refuse(sock, b'\x00', 'authentication failed: wrong key')
            raise AuthenticationError(f'{peer}: wrong key')
        except socket.timeout:
            raise AuthenticationError(f'{peer}: login not completed within '
                                      f'{self.limits.login_timeout:g} s') from None
        except (OSError, EOFError) as exc:
            raise AuthenticationError(f'{peer}: handshake failed: {exc}') from None


def refuse_busy(sock: socket.socket, message: str) -> None:
    """Tell a client at once that the server cannot take its connection now (it retries)."""
    sock.setblocking(False)  # the send buffer of a new connection is empty: this never waits
    _refuse(sock, BUSY, message)


def _refuse(sock: socket.socket, tag: bytes, message: str) -> None:
    data = message.encode()
    try:
        sock.sendall(tag + struct.pack('!H', len(data)) + data)
    except OSError:
        pass


def _set_deadline(sock: socket.socket, deadline: float | None) -> None:
    """Make the next operation on ``sock`` wait no later than ``deadline`` (None: as set)."""
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout('deadline passed')
        sock.settimeout(left)


def _recv_exact(sock: socket.socket, n: int, deadline: float | None = None) -> bytes:
    data = b''
    while len(data) < n:
        _set_deadline(sock, deadline)
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f'connection closed after {len(data)} of {n} bytes')
        data += chunk
    return data


# -- the handshake, client side ------------------------------------------------------------------
class ServerBusy(RemoteError):
    """The server refused the connection for now (too many connections); try again."""


def client_handshake(sock: socket.socket, key: bytes, where: str,
                     max_message: int = DEFAULT_LIMITS.max_message) -> Login:
    """Prove ``key`` to the server on ``sock`` and check that the server holds it too; return
    the role the server granted and the largest message it accepts. Raises `RemoteError`
    naming ``where`` on refusal (`ServerBusy` when it is too busy to take the connection)."""
    client_nonce = secrets.token_bytes(NONCE)
    try:
        sock.sendall(MAGIC + client_nonce)
        head = _recv_exact(sock, len(MAGIC))
        if head == BUSY:
            raise ServerBusy(f'{where}: the server is busy: {_message(sock)}')
        if head == REFUSED:
            raise RemoteError(f'{where}: connection refused by the server: {_message(sock)}')
        if head != MAGIC:
            raise RemoteError(f'{where}: not an openmdao_like server of this version (got '
                              f'{head!r})')
        server_nonce = _recv_exact(sock, NONCE)
        sock.sendall(_mac(key, b'c', client_nonce, server_nonce) + _SIZE.pack(max_message))
        status = _recv_exact(sock, 1)
        if status != b'\x01':
            raise RemoteError(f'{where}: connection refused by the server: {_message(sock)}')
        answer = _recv_exact(sock, 32)
        if not hmac.compare_digest(answer, _mac(key, b's', server_nonce, client_nonce)):
            raise RemoteError(f'{where}: the server could not prove it holds the key; '
                              f'refusing to talk to it')
        role = _recv_exact(sock, _recv_exact(sock, 1)[0]).decode()
        server_max, = _SIZE.unpack(_recv_exact(sock, _SIZE.size))
        return Login(role, server_max)
    except (EOFError, ConnectionError) as exc:
        raise RemoteError(f'{where}: the server closed the connection during the handshake '
                          f'({exc}); if it uses TLS, connect with tls=True') from None
    except ssl.SSLError as exc:
        raise RemoteError(f'{where}: TLS failed: {exc}') from None
    except socket.timeout:
        raise RemoteError(f'{where}: no answer to the handshake within '
                          f'{sock.gettimeout()} s') from None


def _message(sock: socket.socket) -> str:
    try:
        length = struct.unpack('!H', _recv_exact(sock, 2))[0]
        return _recv_exact(sock, length).decode(errors='replace')
    except (OSError, EOFError):
        return '(no reason given)'
