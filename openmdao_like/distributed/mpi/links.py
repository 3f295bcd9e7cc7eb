"""The TCP links between rank 0 and its clients: `multiprocessing.connection` connections, each
authenticated both ways with the farm's key (HMAC challenges) before anything else is read, with
TCP keepalive so that a peer whose host vanished is seen within seconds, without Nagle's delay,
every wait bounded."""

from __future__ import annotations

import os
import socket
import threading
import time
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from typing import Any

__all__ = ['connect', 'authenticate', 'keepalive', 'close', 'peer', 'KEEPALIVE']

#: TCP keepalive of every link: first probe after 2 s of silence, then every 1 s, 3 probes.
KEEPALIVE = (2, 1, 3)


def keepalive(sock: socket.socket) -> None:
    """Turn TCP keepalive on for ``sock`` (`KEEPALIVE`; where the platform has the knobs), and
    Nagle's algorithm off: a small message (a chunk's outcomes) written while the previous one
    waits for its delayed acknowledgement would otherwise wait for it too, ~40 ms on Linux
    (measured: every group's last outcomes of a run came back 30-40 ms late)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle, interval, count = KEEPALIVE
    for name, value in (('TCP_KEEPIDLE', idle), ('TCP_KEEPINTVL', interval),
                        ('TCP_KEEPCNT', count)):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _socket_of(conn: Connection) -> socket.socket:
    """A socket object on a duplicate of ``conn``'s descriptor (options and shutdown act on
    the connection itself; closing it leaves the connection open)."""
    return socket.socket(fileno=os.dup(conn.fileno()))


def authenticate(conn: Connection, authkey: bytes, server: bool, timeout: float) -> None:
    """Both HMAC challenges on a new connection (the server asks first), within ``timeout``
    seconds: a peer that stalls has its connection shut down, which ends the wait."""
    sock = _socket_of(conn)
    timer = threading.Timer(timeout, _shutdown, (sock,))
    timer.daemon = True
    timer.start()
    try:
        keepalive(sock)
        if server:
            deliver_challenge(conn, authkey)
            answer_challenge(conn, authkey)
        else:
            answer_challenge(conn, authkey)
            deliver_challenge(conn, authkey)
    except EOFError as exc:
        if not timer.is_alive():
            raise TimeoutError(f'no authentication within {timeout:g} s') from exc
        raise
    finally:
        timer.cancel()
        sock.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def close(conn: Connection) -> None:
    """Close ``conn`` so that the peer sees its end at once, even while another thread of
    this process is blocked reading it (a plain close would wait for that read)."""
    try:
        sock = _socket_of(conn)
    except OSError:
        return  # already closed
    _shutdown(sock)
    sock.close()
    conn.close()


def connect(address: tuple[str, int], authkey: bytes, timeout: float) -> Connection:
    """A connection to ``address``, authenticated; retried until ``timeout`` s (the listener
    exists before its address is shared, so a refusal is a transient problem)."""
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:
        left = deadline - time.monotonic()
        try:
            sock = socket.create_connection(address, timeout=max(0.1, min(left, 10.0)))
        except OSError as exc:
            if time.monotonic() + pause > deadline:
                raise ConnectionError(f'cannot connect to {address[0]}:{address[1]} within '
                                      f'{timeout:g} s: {exc}') from exc
            time.sleep(pause)
            pause = min(2 * pause, 1.0)
            continue
        sock.settimeout(None)
        conn = Connection(sock.detach())
        try:
            authenticate(conn, authkey, server=False, timeout=max(1.0, left))
        except BaseException:
            conn.close()
            raise
        return conn


def peer(conn: Any) -> str:
    """``host:port`` of the other end of ``conn`` (or '?')."""
    try:
        sock = _socket_of(conn)
        try:
            host, port = sock.getpeername()[:2]
        finally:
            sock.close()
        return f'{host}:{port}'
    except OSError:
        return '?'
