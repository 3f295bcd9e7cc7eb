"""Values on the wire: pickle protocol 5 with arrays as out-of-band raw buffers, read back by a
restricted unpickler that builds only plain data (numbers, strings, containers, numpy arrays
and scalars, `FileRef`), so a peer can never make this process import or call anything else.

`pack` gives a packet for a call's arguments or result: plain values (numbers, strings, dicts of
them) as brine values, anything else pickled with its array buffers out of band (see
`transport.OOB`); `unpack` rebuilds it, arrays writable. `dumps`/`loads` give bytes only (for
text channels such as an ObjServer's settings line).
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from rpyc.core import brine

from ..variables.file import FileRef
from .transport import OOB

#: (module, name) pairs the unpickler may resolve: numpy's array/scalar reconstruction and a few
#: builtins. Nothing here can run code given arbitrary arguments.
_ALLOWED = {
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
    ('numpy.core.numeric', '_frombuffer'), ('numpy._core.numeric', '_frombuffer'),
    ('builtins', 'complex'), ('builtins', 'set'), ('builtins', 'frozenset'),
    ('builtins', 'slice'), ('builtins', 'bytearray'), ('builtins', 'range'),
    ('collections', 'OrderedDict'), ('_codecs', 'encode'),
}
_NUMPY_SCALARS = ('float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint64',
                  'uint32', 'uint16', 'uint8', 'bool_', 'complex128', 'complex64', 'str_',
                  'bytes_', 'longdouble', 'clongdouble', 'intc', 'uintc')


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is FileRef:
            return ('FileRef', obj.path, obj.binary, obj.content_type)
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, buffers: Any, owner: Any):
        super().__init__(io.BytesIO(data), buffers=buffers)
        self.owner = owner

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module in ('numpy', 'numpy.dtypes')
                                          and (name in _NUMPY_SCALARS or name.endswith('DType'))):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'refusing to build {module}.{name}: only plain data '
                                     f'(numbers, strings, containers, arrays, files) travels '
                                     f'between openmdao_like processes')

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == 'FileRef':
            return FileRef(pid[1], self.owner, pid[2], pid[3])
        raise pickle.UnpicklingError(f'unknown persistent id {pid!r}')


def _pickle(obj: Any) -> tuple[bytes, list[memoryview]]:
    buffers: list[memoryview] = []
    out = io.BytesIO()
    _Pickler(out, protocol=5, buffer_callback=lambda b: buffers.append(b.raw())).dump(obj)
    return out.getvalue(), buffers


def pack(obj: Any) -> tuple:
    """``obj`` as a packet: brine values when plain (one round trip costs least), else a
    restricted pickle whose buffers travel out of band."""
    if type(obj) is dict and all(type(k) is str for k in obj):
        values = tuple(obj.values())
        if brine.dumpable(values):
            return ('d', tuple(obj), values)
    elif brine.dumpable(obj):
        return ('v', obj)
    payload, buffers = _pickle(obj)
    return ('p', payload, OOB(buffers))


def unpack(packet: tuple, owner: Any = None) -> Any:
    """The object in a `pack` packet; `FileRef` values get ``owner`` (the receiving
    component)."""
    tag = packet[0]
    if tag == 'd':
        return dict(zip(packet[1], packet[2]))
    if tag == 'v':
        return packet[1]
    if tag == 'p':
        return _Unpickler(packet[1], packet[2], owner).load()
    raise ValueError(f'not a value packet: tag {tag!r}')


def travels(obj: Any) -> bool:
    """Whether ``obj`` survives the trip: the restricted unpickler can rebuild it."""
    try:
        payload, buffers = _pickle(obj)
        _Unpickler(payload, buffers, None).load()
        return True
    except Exception:
        return False


def dumps(obj: Any) -> tuple[bytes, tuple[bytes, ...]]:
    """``obj`` as a pickle payload plus its buffers, all bytes."""
    payload, buffers = _pickle(obj)
    return payload, tuple(b.tobytes() for b in buffers)


def loads(payload: bytes, buffers: tuple[bytes, ...] = (), owner: Any = None) -> Any:
    """The object `dumps` encoded."""
    return _Unpickler(payload, [bytearray(b) for b in buffers], owner).load()
