"""The byte transport under rpyc for both servers and clients: a socket stream that moves
large frames without quadratic copying, frames never compressed, TCP keepalive so a vanished
host is noticed, and the rpyc settings every openmdao_like connection uses."""

from __future__ import annotations

import errno
import socket
from typing import Any

from rpyc.core.channel import Channel
from rpyc.core.stream import SocketStream

#: rpyc settings of every connection: service mode, nothing reachable but declared methods,
#: no pickling, exceptions never instantiated from arbitrary modules.
PROTOCOL_CONFIG = dict(
    allow_pickle=False, allow_public_attrs=False, allow_all_attrs=False, allow_setattr=False,
    allow_delattr=False, import_custom_exceptions=False, instantiate_custom_exceptions=False,
    include_local_traceback=True, sync_request_timeout=None, allow_safe_attrs=True)
_RETRY = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR}


class FastSocketStream(SocketStream):
    """rpyc's socket stream, with `write` sending through a memoryview (rpyc re-slices the
    remaining bytes after each 64 kB send: quadratic in the frame size) and `read` filling one
    preallocated buffer."""

    __slots__ = ()

    def read(self, count: int) -> bytes:
        buf = bytearray(count)
        view = memoryview(buf)
        got = 0
        while got < count:
            try:
                n = self.sock.recv_into(view[got:], count - got)
            except socket.timeout:
                continue
            except OSError as exc:
                if exc.errno in _RETRY:
                    continue
                self.close()
                raise EOFError(exc) from None
            if not n:
                self.close()
                raise EOFError('connection closed by peer')
            got += n
        return bytes(buf)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                sent = self.sock.send(view)
                view = view[sent:]
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None


def channel(sock: socket.socket) -> Channel:
    """An uncompressed rpyc channel over ``sock`` (arrays travel as raw bytes)."""
    return Channel(FastSocketStream(sock), compress=False)


def keepalive(sock: socket.socket, liveness: float) -> None:
    """Make the kernel probe an idle connection so that a peer host that vanished without
    closing it is reported within about ``liveness`` seconds."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = max(1, int(liveness / 2))
    interval = max(1, int(liveness / 6))
    for name, value in (('TCP_KEEPIDLE', idle), ('TCP_KEEPINTVL', interval),
                        ('TCP_KEEPCNT', 3), ('TCP_USER_TIMEOUT', int(liveness * 1000))):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def config(**extra: Any) -> dict[str, Any]:
    """`PROTOCOL_CONFIG` with ``extra`` settings."""
    return dict(PROTOCOL_CONFIG, **extra)
