"""The byte transport under rpyc for both servers and clients: large buffers (array data) sent
raw after the rpyc frame that refers to them, never copied into it; frames never compressed;
TCP keepalive so that a vanished host is noticed; the rpyc settings of every connection.

An `OOB` value among a call's arguments (or in its result) travels out of band: rpyc's brine
encodes only a placeholder, the frame is flagged, and the buffers follow it on the socket,
written straight from the arrays' memory and read straight into fresh arrays.

Every message is bounded (see `limits.Limits`): what a peer announces beyond the largest
message this side accepts closes the connection before anything is allocated, buffers grow as
bytes arrive, and a message that stalls for the message timeout ends the connection. A side
refuses to send what its peer would refuse. A connection serves only the rpyc requests an
openmdao_like peer needs (see `OOBConnection`).
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from typing import Any

import numpy as np
from rpyc.core import brine, consts
from rpyc.core.channel import Channel
from rpyc.core.protocol import Connection
from rpyc.core.stream import SocketStream

from ..errors import WireError
from .failures import capture
from .limits import DEFAULT_LIMITS, Limits

#: rpyc settings of every connection: service mode, nothing reachable but declared methods,
#: no pickling, exceptions never instantiated from arbitrary modules. Our calls set their own
#: timeouts; rpyc's synchronous requests are only its polite goodbye on close, which must not
#: wait long for a peer that hangs.
PROTOCOL_CONFIG = dict(
    allow_pickle=False, allow_public_attrs=False, allow_all_attrs=False, allow_setattr=False,
    allow_delattr=False, import_custom_exceptions=False, instantiate_custom_exceptions=False,
    include_local_traceback=True, sync_request_timeout=1.0, allow_safe_attrs=True,
    bind_threads=False)
#: What a socket raises when its SO_RCVTIMEO/SO_SNDTIMEO (plain) or timeout (TLS) passes.
_STALLED = (BlockingIOError, socket.timeout)
#: rpyc box label of an out-of-band value (rpyc's own labels are 1-4).
_LABEL_OOB = 99
#: Frame flag (where rpyc marks compression) saying that buffers follow the frame.
_FLAG_OOB = 2
_COUNT = struct.Struct('!I')
#: Out-of-band buffers up to this total size are copied into the frame's single write.
_JOIN_LIMIT = 1 << 18
#: Reads up to this size get their whole buffer at once; larger ones grow as bytes arrive.
_EAGER = 1 << 20
#: Out-of-band buffers up to this size are read into one array at once (allocated untouched:
#: its pages become memory only as bytes arrive); larger ones grow by doubling from `_EAGER`
#: as bytes arrive.
_EAGER_BUFFER = 64 << 20


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
    remaining bytes after each 64 kB send: quadratic in the frame size), `read_into` filling a
    given buffer, and a bound on silence: a read or write in the middle of a message that makes
    no progress for ``timeout`` seconds closes the connection. (On a plain socket the kernel
    keeps that bound, with SO_RCVTIMEO and SO_SNDTIMEO on a blocking socket: a Python socket
    timeout would add a poll before every read and write. Python's TLS layer waits for good
    on a blocking socket, so a TLS socket gets a Python timeout.)"""

    __slots__ = ('timeout',)

    def __init__(self, sock: socket.socket, timeout: float):
        if isinstance(sock, ssl.SSLSocket):
            sock.settimeout(timeout)
        else:
            sock.settimeout(None)
            bound = struct.pack('ll', int(timeout), int(timeout % 1 * 1e6))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, bound)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, bound)
        super().__init__(sock)
        self.timeout = timeout

    def read(self, count: int) -> bytes:
        """``count`` bytes, in buffers grown as they arrive (never allocated from ``count``
        alone, which the peer chose)."""
        if count <= _EAGER:
            buf = bytearray(count)
            self.read_into(memoryview(buf))
            return bytes(buf)
        parts, got = [], 0
        while got < count:
            part = bytearray(min(count - got, max(_EAGER, got)))
            self.read_into(memoryview(part))
            parts.append(part)
            got += len(part)
        return b''.join(parts)

    def read_into(self, view: memoryview) -> None:
        """Fill ``view`` from the socket."""
        got, count = 0, len(view)
        while got < count:
            try:
                n = self.sock.recv_into(view[got:], count - got)
            except _STALLED:
                self.close()
                raise EOFError(f'no data for {self.timeout:g} s in the middle of a message '
                               f'(message timeout)') from None
            except OSError as exc:
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
        except _STALLED:
            self.close()
            raise EOFError(f'the peer accepted no data for {self.timeout:g} s (message '
                           f'timeout)') from None
        except OSError as exc:
            self.close()
            raise EOFError(exc) from None


class OOBChannel(Channel):
    """rpyc's framing, uncompressed, with out-of-band buffers after flagged frames, and
    messages bounded: ``max_in`` bytes received (a larger claim closes the connection before
    anything is allocated), ``max_out`` sent (the peer's limit: a larger message is refused
    here with `WireError`, and the connection stays usable)."""

    __slots__ = ('max_in', 'max_out')

    def __init__(self, stream: FastSocketStream, max_in: int, max_out: int):
        super().__init__(stream, compress=False)
        self.max_in, self.max_out = max_in, max_out

    def size(self, data: bytes) -> int:
        """Bytes ``data`` (a frame, maybe with buffers) takes on the wire."""
        return len(data) + sum(b.nbytes for b in getattr(data, 'buffers', ()))

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
        self._check(length, 'frame')
        data = self.stream.read(length + len(self.FLUSHER))[:-len(self.FLUSHER)]
        if flag != _FLAG_OOB:
            return data
        count, = _COUNT.unpack(self.stream.read(_COUNT.size))
        self._check(length + 8 * count, f'frame with {count} buffers')
        sizes = struct.unpack(f'!{count}Q', self.stream.read(8 * count))
        self._check(length + sum(sizes), 'message')
        frame = Frame(data)
        frame.buffers = tuple(self._receive_buffer(size) for size in sizes)
        return frame

    def _check(self, size: int, what: str) -> None:
        """Close the connection when the peer announces more than ``max_in`` bytes."""
        if size > self.max_in:
            self.close()
            raise EOFError(f'the peer announced a {what} of {size} bytes, over the limit of '
                           f'{self.max_in} (max message size): connection closed')

    def _receive_buffer(self, size: int) -> np.ndarray:
        if size <= _EAGER_BUFFER:
            buf = np.empty(size, np.uint8)
            self.stream.read_into(memoryview(buf))
            return buf
        grown = bytearray()
        while len(grown) < size:  # doubling; a large bytearray grows in place (mremap)
            start = len(grown)
            grown += bytes(min(size - start, max(_EAGER, start)))
            with memoryview(grown) as view:
                self.stream.read_into(view[start:])
        return np.frombuffer(grown, np.uint8)


class RemoteRef:
    """A client's handle on a server's root service: its id, nothing callable. (rpyc would
    build a netref, asking the server to list the service's attributes.)"""

    __slots__ = ('id_pack',)

    def __init__(self, id_pack: tuple):
        self.id_pack = id_pack


class _Handlers(dict):
    """The rpyc requests a side serves; any other is answered with `PermissionError`."""

    def __missing__(self, handler: Any) -> Any:
        def refuse(conn: Any, *args: Any) -> None:
            raise PermissionError(f'rpyc request {handler!r} is not served here')
        return refuse


class OOBConnection(Connection):
    """An rpyc connection that sends `OOB` values out of band (see the module docstring),
    bounds its messages (see `OOBChannel`), and serves only what an openmdao_like peer needs:
    a server answers ping, close, its root and calls of declared methods, and never accepts a
    reference to a peer's object; a client answers ping and close.

    Boxing and sending happen in the calling thread one after the other, as do receiving and
    unboxing, so the buffers pass between them in a thread-local; they then travel attached
    to the frame, whichever thread rpyc's send queue uses to write it.
    """

    def __init__(self, root: Any, channel: OOBChannel, config: dict[str, Any]):
        super().__init__(root, channel, config)
        self._serving = config.get('credentials') is not None
        allowed = _SERVER_REQUESTS if self._serving else _CLIENT_REQUESTS
        self._HANDLERS = _Handlers((k, v) for k, v in self._HANDLERS.items() if k in allowed)

    def __del__(self) -> None:
        # rpyc says goodbye to the peer when a connection is collected; at interpreter exit
        # the modules that needs may be gone already, and there is nobody left to tell
        try:
            self.close()
        except Exception:
            pass

    def _box(self, obj: Any) -> Any:
        if type(obj) is OOB:
            pending = _local.__dict__.setdefault('outgoing', [])
            start = len(pending)
            pending.extend(obj.buffers)
            return _LABEL_OOB, (start, len(obj.buffers))
        if type(obj) is RemoteRef:
            return consts.LABEL_LOCAL_REF, obj.id_pack
        return super()._box(obj)

    def _send(self, msg: int, seq: int, args: Any) -> None:
        # rpyc's _send (without bind_threads, which we never enable), sending a Frame that may
        # carry buffers, after checking its size against the peer's limit
        frame = Frame(brine.I1.pack(msg) + brine.dump((seq, args)))
        frame.buffers = tuple(_local.__dict__.pop('outgoing', ()))
        size, limit = self._channel.size(frame), self._channel.max_out
        if size > limit:
            error = WireError(f'a message of {size} bytes exceeds the limit of {limit} bytes '
                              f'that the peer accepts (max message size); nothing was sent')
            if msg != consts.MSG_REPLY:
                raise error
            # a declared method's answer (see service.remote): say why instead
            frame = Frame(brine.I1.pack(msg) + brine.dump(
                (seq, self._box(('err', capture(error))))))
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
        if label == consts.LABEL_REMOTE_REF:
            if self._serving:
                raise PermissionError('a server accepts values only, not references to its '
                                      "peer's objects")
            return RemoteRef(value)
        return super()._unbox(package)

    def _dispatch(self, data: bytes) -> None:
        _local.incoming = getattr(data, 'buffers', ())
        try:
            super()._dispatch(data)
        except Exception as exc:  # not a message of ours: rpyc's parsing failed
            if self._recvlock._is_owned():
                self._recvlock.release()
            self._channel.close()
            raise EOFError(f'the peer sent a malformed message ({type(exc).__name__}): '
                           f'connection closed') from None
        finally:
            _local.incoming = ()


_SERVER_REQUESTS = {consts.HANDLE_PING, consts.HANDLE_CLOSE, consts.HANDLE_GETROOT,
                    consts.HANDLE_CALLATTR}
_CLIENT_REQUESTS = {consts.HANDLE_PING, consts.HANDLE_CLOSE}


def channel(sock: socket.socket, limits: Limits = DEFAULT_LIMITS,
            peer_max_message: int | None = None) -> OOBChannel:
    """An uncompressed rpyc channel over ``sock`` with out-of-band buffers, receiving messages
    up to ``limits.max_message`` bytes and sending up to ``peer_max_message`` (the peer's
    limit, told at login); silence in the middle of a message ends it after
    ``limits.message_timeout`` seconds."""
    return OOBChannel(FastSocketStream(sock, limits.message_timeout), limits.max_message,
                      limits.max_message if peer_max_message is None else peer_max_message)


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
