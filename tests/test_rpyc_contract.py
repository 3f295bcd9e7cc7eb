"""The parts of rpyc that `openmdao_like.remote.transport` builds on, pinned.

The transport keeps rpyc's framing and message layout but sends large buffers after the frame
and serves only declared requests, so it overrides a few of rpyc's internals. pyproject.toml
pins ``rpyc>=6,<7``; these tests fail, naming the difference, if an rpyc release inside (or a
forced install outside) that range changes what the transport relies on."""

from __future__ import annotations

import inspect
import socket
import threading

import numpy as np
import rpyc
from rpyc.core import brine, consts
from rpyc.core.channel import Channel
from rpyc.core.protocol import Connection

from openmdao_like.remote import transport
from openmdao_like.remote.limits import DEFAULT_LIMITS


def test_version_is_in_the_pinned_range():
    major = int(rpyc.__version__.split('.')[0])
    assert major == 6, f'rpyc {rpyc.__version__} is outside the supported range >=6,<7'


def test_frame_layout():
    # a frame is: length (uint32) and a flag byte (rpyc: compressed), the data, a newline
    assert Channel.FRAME_HEADER.format == '!LB'
    assert Channel.FLUSHER == b'\n'
    assert brine.I1.format == '!B'  # the message type byte in front of the brine payload


def test_message_and_box_labels():
    assert (consts.MSG_REQUEST, consts.MSG_REPLY, consts.MSG_EXCEPTION) == (1, 2, 3)
    assert (consts.LABEL_VALUE, consts.LABEL_TUPLE, consts.LABEL_LOCAL_REF,
            consts.LABEL_REMOTE_REF) == (1, 2, 3, 4)
    assert transport._LABEL_OOB not in (1, 2, 3, 4)  # our label for out-of-band values
    assert (consts.HANDLE_PING, consts.HANDLE_GETROOT, consts.HANDLE_CALLATTR) == (1, 3, 8)


def test_connection_internals_the_transport_overrides():
    for name, params in [('_send', ['self', 'msg', 'seq', 'args']), ('_box', ['self', 'obj']),
                         ('_unbox', ['self', 'package']), ('_dispatch', ['self', 'data'])]:
        method = getattr(Connection, name)
        assert list(inspect.signature(method).parameters) == params, name
    init = inspect.getsource(Connection.__init__)
    for attribute in ('_send_queue', '_sendlock', '_recvlock', '_HANDLERS'):
        assert f'self.{attribute} =' in init or f'self.{attribute}.' in init or \
            attribute in inspect.getsource(Connection), attribute
    # transport.OOBConnection._send is rpyc's _send sending frames with buffers: same queue
    send = inspect.getsource(Connection._send)
    assert '_send_queue' in send and '_sendlock' in send and 'brine.dump' in send


def test_brine_round_trips_what_the_codec_sends():
    value = (1, 2.5, 'text', b'bytes', None, True, (3, (4,)), frozenset({1}))
    assert brine.load(brine.dump(value)) == value


def test_a_frame_with_out_of_band_buffers_crosses_a_socket_pair():
    left, right = socket.socketpair()
    try:
        sender = transport.channel(left, DEFAULT_LIMITS)
        receiver = transport.channel(right, DEFAULT_LIMITS)
        array = np.arange(100_000, dtype=float)
        frame = transport.Frame(brine.I1.pack(consts.MSG_REQUEST) + brine.dump((7, ('x',))))
        frame.buffers = (memoryview(array).cast('B'),)
        thread = threading.Thread(target=sender.send, args=(frame,))
        thread.start()
        data = receiver.recv()
        thread.join(10)
        assert brine.I1.unpack(data[:1]) == (consts.MSG_REQUEST,)
        assert brine.load(bytes(data[1:])) == (7, ('x',))
        assert np.array_equal(np.frombuffer(data.buffers[0], float), array)
        plain = transport.Frame(b'small')
        sender.send(plain)
        assert receiver.recv() == b'small' 
    finally:
        left.close()
        right.close()
