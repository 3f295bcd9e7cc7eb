"""Values on the wire: pickle protocol 5 with arrays as out-of-band raw buffers, read back by a
restricted unpickler that builds only plain data (numbers, strings, containers, numpy arrays
and scalars, `FileRef`), so a peer can never make this process import or call anything else.

`dumps` gives ``(payload, buffers)``, all ``bytes`` so that rpyc's brine sends them by value;
`loads` rebuilds the object, arrays writable and owning their memory.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from ..variables.file import FileRef

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


def dumps(obj: Any) -> tuple[bytes, tuple[bytes, ...]]:
    """``obj`` as a pickle payload plus its large buffers (array data), uncompressed."""
    buffers: list[bytes] = []
    out = io.BytesIO()

    def keep(buf: pickle.PickleBuffer) -> None:
        buffers.append(buf.raw().tobytes())
    _Pickler(out, protocol=5, buffer_callback=keep).dump(obj)
    return out.getvalue(), tuple(buffers)


def loads(payload: bytes, buffers: tuple[bytes, ...] = (), owner: Any = None) -> Any:
    """The object `dumps` encoded; `FileRef` values get ``owner`` (the receiving component)."""
    writable = [bytearray(b) for b in buffers]
    return _Unpickler(payload, writable, owner).load()
