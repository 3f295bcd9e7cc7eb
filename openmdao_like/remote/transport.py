"""The byte transport under rpyc for both servers and clients: large buffers (array data) sent
raw after the rpyc frame that refers to them, never copied into it; frames never compressed;
TCP keepalive so that a vanished host is noticed; the rpyc settings of every connection.

An `OOB` value among a call's arguments (or in its result) travels out of band: rpyc's brine
encodes only a placeholder, the frame is flagged, and the buffers follow it on the socket,
written straight from the arrays' memory and read straight into fresh arrays.
"""

from __future__ import annotations

import errno
import socket
import struct
import threading
from typing import Any

import numpy as np
from rpyc.core import brine
from rpyc.core.channel import Channel
from rpyc.core.protocol import Connection
from rpyc.core.stream import SocketStream

#: rpyc settings of every connection: service mode, nothing reachable but declared methods,
#: no pickling, exceptions never instantiated from arbitrary modules. Our calls set their own
#: timeouts; rpyc's synchronous requests are only its polite goodbye on close, which must not
#: wait long for a peer that hangs.
PROTOCOL_CONFIG = dict(
    allow_pickle=False, allow_public_attrs=False, allow_all_attrs=False, allow_setattr=False,
    allow_delattr=False, import_custom_exceptions=False, instantiate_custom_exceptions=False,
    include_local_traceback=True, sync_request_timeout=1.0, allow_safe_attrs=True,
    bind_threads=False)
_RETRY = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR}
#: rpyc box label of an out-of-band value (rpyc's own labels are 1-4).
_LABEL_OOB = 99
#: Frame flag (where rpyc marks compression) saying that buffers follow the frame.
_FLAG_OOB = 2
_COUNT = struct.Struct('!I')
#: Out-of-band buffers up to this total size are copied into the frame's single write.
_JOIN_LIMIT = 1 << 18


class OOB:
    """Buffers (anything exposing the buffer protocol) to send out of band; received as a
    tuple of writable uint8 numpy arrays."""

    __slots__ = ('buffers',)

    def __init__(self, buffers: Any):
        self.buffers = tuple(memoryview(b).cast('B') for b in buffers)

    @property
    def nbytes(self) -> int:
        """Total size of the buffers."""
        return sum(b.nbytes for b in self.buffers)


def sendable(obj: Any) -> bool:
    """Whether ``obj`` travels by value: brine's plain data, `OOB`, or tuples of those."""
    if type(obj) is OOB:
        return True
    if type(obj) is tuple:
        return all(sendable(item) for item in obj)
    return brine.dumpable(obj)


class Frame(bytes):
    """An rpyc frame with the out-of-band buffers that go after it."""

    buffers: tuple = ()


_local = threading.local()


class FastSocketStream(SocketStream):
    """rpyc's socket stream, with `write` sending through a memoryview (rpyc re-slices the
    remaining bytes after each 64 kB send: quadratic in the frame size) and `read` filling one
    preallocated buffer."""

    __slots__ = ()

    def read(self, count: int) -> bytes:
        buf = bytearray(count)
        self.read_into(memoryview(buf))
        return bytes(buf)

    def read_into(self, view: memoryview) -> None:
        """Fill ``view`` from the socket."""
        got, count = 0, len(view)
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

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                sent = self.sock.send(view)
                view = view[sent:]
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None


class OOBChannel(Channel):
    """rpyc's framing, uncompressed, with out-of-band buffers after flagged frames."""

    __slots__ = ()

    def send(self, data: bytes) -> None:
        buffers = getattr(data, 'buffers', ())
        if not buffers:
            self.stream.write(self.FRAME_HEADER.pack(len(data), 0) + data + self.FLUSHER)
            return
        sizes = struct.pack(f'!I{len(buffers)}Q', len(buffers), *(b.nbytes for b in buffers))
        head = self.FRAME_HEADER.pack(len(data), _FLAG_OOB) + data + self.FLUSHER + sizes
        if sum(b.nbytes for b in buffers) <= _JOIN_LIMIT:
            # one write: a small segment after another would wait for the peer's delayed ACK
            self.stream.write(b''.join((head, *buffers)))
            return
        self.stream.write(head)
        for buf in buffers:
            self.stream.write(buf)

    def recv(self) -> bytes:
        length, flag = self.FRAME_HEADER.unpack(self.stream.read(self.FRAME_HEADER.size))
        data = self.stream.read(length + len(self.FLUSHER))[:-len(self.FLUSHER)]
        if flag != _FLAG_OOB:
            return data
        count, = _COUNT.unpack(self.stream.read(_COUNT.size))
        sizes = struct.unpack(f'!{count}Q', self.stream.read(8 * count))
        frame = Frame(data)
        frame.buffers = tuple(self._receive_buffer(size) for size in sizes)
        return frame

    def _receive_buffer(self, size: int) -> np.ndarray:
        buf = np.empty(size, np.uint8)
        self.stream.read_into(memoryview(buf))
        return buf


class OOBConnection(Connection):
    """An rpyc connection that sends `OOB` values out of band (see the module docstring).

    Boxing and sending happen in the calling thread one after the other, as do receiving and
    unboxing, so the buffers pass between them in a thread-local; they then travel attached
    to the frame, whichever thread rpyc's send queue uses to write it.
    """

    def _box(self, obj: Any) -> Any:
        if type(obj) is OOB:
            pending = _local.__dict__.setdefault('outgoing', [])
            start = len(pending)
            pending.extend(obj.buffers)
            return _LABEL_OOB, (start, len(obj.buffers))
        return super()._box(obj)

    def _send(self, msg: int, seq: int, args: Any) -> None:
        pending = _local.__dict__.pop('outgoing', None)
        if not pending:
            return super()._send(msg, seq, args)
        # rpyc's _send (without bind_threads, which we never enable), sending a Frame
        frame = Frame(brine.I1.pack(msg) + brine.dump((seq, args)))
        frame.buffers = tuple(pending)
        self._send_queue.append(frame)
        while self._send_queue:
            if not self._sendlock.acquire(False):
                return None  # the thread holding the lock sends our frame too
            try:
                if self._send_queue:
                    self._channel.send(self._send_queue.pop(0))
            finally:
                self._sendlock.release()
        return None

    def _unbox(self, package: Any) -> Any:
        label, value = package
        if label == _LABEL_OOB:
            start, count = value
            return _local.incoming[start:start + count]
        return super()._unbox(package)

    def _dispatch(self, data: bytes) -> None:
        _local.incoming = getattr(data, 'buffers', ())
        try:
            super()._dispatch(data)
        finally:
            _local.incoming = ()


def channel(sock: socket.socket) -> Channel:
    """An uncompressed rpyc channel over ``sock`` with out-of-band buffers."""
    return OOBChannel(FastSocketStream(sock), compress=False)


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
