"""Values on the wire: data only.

A value is encoded as a tree of rpyc brine values (None, bool, int, float, complex, str,
bytes, tuples) in which each container or array is a tuple tagged with its kind, and array
data travels as raw buffers out of band (see `transport.OOB`). Decoding walks that tree and
builds only the types of a closed list: numbers, strings, bytes, lists, tuples, dicts, sets,
ranges, slices, numpy arrays and scalars of plain dtypes (numbers, bools, fixed-size strings,
dates), and `FileRef` (a relative path). It never imports a module and never calls anything
else, so a peer can make this process build data, never run code.

`pack` gives a packet for a call's arguments or result (plain values as they are: one round
trip costs least); `unpack` rebuilds it, arrays writable. `dumps`/`loads` give bytes only (for
text channels such as an ObjServer's settings line).
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from typing import Any, Callable

import numpy as np
from rpyc.core import brine

from ..errors import WireError
from ..variables.file import FileRef
from .transport import OOB

#: Deepest nesting of containers a value may have (each side refuses deeper ones).
MAX_DEPTH = 100
#: Array dtypes that travel: bool, integers, floats, complex, bytes/str of fixed size, dates.
_DTYPE = re.compile(r'[<>|=]?(b1|[iuf][1248]|f16|c(8|16|32)|[SU][1-9][0-9]{0,8}|'
                    r'[mM]8(\[[0-9]{0,4}(Y|M|W|D|h|m|s|ms|us|ns|ps|fs|as)\])?)')
_PLAIN = frozenset({type(None), bool, int, float, complex, str, bytes})

# tags of the tree's tuples
_LIST, _TUPLE, _DICT, _ODICT, _SET, _FSET = 'L', 'T', 'D', 'O', 'S', 'F'
_ARRAY, _SCALAR, _FILE, _RANGE, _SLICE = 'A', 'N', 'R', 'Z', 'C'


# -- encoding ------------------------------------------------------------------------------------
def _encode(obj: Any, buffers: list, depth: int) -> Any:
    kind = type(obj)
    if kind in _PLAIN:
        return obj
    if depth >= MAX_DEPTH:
        raise WireError(f'cannot send a value nested more than {MAX_DEPTH} levels deep')
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        if isinstance(obj, np.generic):
            encoder = _encode_scalar
        else:
            raise WireError(f'cannot send a {kind.__module__}.{kind.__qualname__}: only plain '
                            f'data (numbers, strings, bytes, containers, numpy arrays, files) '
                            f'travels between openmdao_like processes')
    return encoder(obj, buffers, depth + 1)


def _items(tag: str) -> Callable[[Any, list, int], tuple]:
    def encode(obj: Any, buffers: list, depth: int) -> tuple:
        return (tag, *(_encode(item, buffers, depth) for item in obj))
    return encode


def _mapping(tag: str) -> Callable[[Any, list, int], tuple]:
    def encode(obj: Any, buffers: list, depth: int) -> tuple:
        flat: list = [tag]
        for key, value in obj.items():
            flat.append(_encode(key, buffers, depth))
            flat.append(_encode(value, buffers, depth))
        return tuple(flat)
    return encode


def _dtype_name(dtype: np.dtype) -> str:
    name = dtype.str
    if not _DTYPE.fullmatch(name):
        raise WireError(f'cannot send an array of dtype {dtype}: only numbers, bools, '
                        f'fixed-size strings and dates travel')
    return name


def _encode_array(arr: np.ndarray, buffers: list, depth: int) -> tuple:
    if arr.dtype.hasobject:
        return (_ARRAY, 'O', arr.shape, 'C',
                tuple(_encode(item, buffers, depth) for item in arr.ravel().tolist()))
    name = _dtype_name(arr.dtype)
    order = 'F' if arr.flags.f_contiguous and not arr.flags.c_contiguous else 'C'
    if order == 'C' and not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    buffers.append(arr.reshape(-1, order=order).view(np.uint8))
    return (_ARRAY, name, arr.shape, order, len(buffers) - 1)


def _encode_scalar(value: np.generic, buffers: list, depth: int) -> tuple:
    return (_SCALAR, _dtype_name(value.dtype), value.tobytes())


def _encode_file(ref: FileRef, buffers: list, depth: int) -> tuple:
    return (_FILE, ref.path, ref.binary, ref.content_type)


def _encode_range(value: range, buffers: list, depth: int) -> tuple:
    return (_RANGE, value.start, value.stop, value.step)


def _encode_slice(value: slice, buffers: list, depth: int) -> tuple:
    return (_SLICE, *(_encode(v, buffers, depth) for v in (value.start, value.stop, value.step)))


_ENCODERS: dict[type, Callable[[Any, list, int], Any]] = {
    list: _items(_LIST), tuple: _items(_TUPLE), set: _items(_SET), frozenset: _items(_FSET),
    dict: _mapping(_DICT), OrderedDict: _mapping(_ODICT), np.ndarray: _encode_array,
    FileRef: _encode_file, range: _encode_range, slice: _encode_slice,
}


def encode(obj: Any) -> tuple[Any, list[memoryview]]:
    """``obj`` as a brine tree plus the array buffers that go with it; `WireError` when it
    holds anything but plain data."""
    buffers: list = []
    return _encode(obj, buffers, 0), buffers


# -- decoding ------------------------------------------------------------------------------------
class _Decoder:
    """Rebuilds one encoded tree; every node checked before anything is built."""

    def __init__(self, buffers: Any, owner: Any):
        self.buffers = buffers
        self.owner = owner
        self.used: set[int] = set()

    def value(self, node: Any, depth: int) -> Any:
        kind = type(node)
        if kind in _PLAIN:
            return node
        if kind is not tuple or not node or type(node[0]) is not str:
            raise WireError(f'not a value: expected plain data or a tagged tuple, got '
                            f'{kind.__name__}')
        if depth >= MAX_DEPTH:
            raise WireError(f'refusing a value nested more than {MAX_DEPTH} levels deep')
        build = self.BUILDERS.get(node[0])
        if build is None:
            raise WireError(f'not a value: unknown tag {node[0][:20]!r}')
        return build(self, node, depth + 1)

    def items(self, node: tuple, depth: int) -> list:
        return [self.value(item, depth) for item in node[1:]]

    def pairs(self, node: tuple, depth: int) -> list[tuple[Any, Any]]:
        if len(node) % 2 != 1:
            raise WireError('not a value: a mapping needs key, value pairs')
        flat = self.items(node, depth)
        return list(zip(flat[0::2], flat[1::2]))

    def hashable(self, values: list) -> list:
        for value in values:
            try:
                hash(value)
            except TypeError:
                raise WireError(f'not a value: a {type(value).__name__} cannot be a key or a '
                                f'set member') from None
        return values

    def list_(self, node: tuple, depth: int) -> list:
        return self.items(node, depth)

    def tuple_(self, node: tuple, depth: int) -> tuple:
        return tuple(self.items(node, depth))

    def dict_(self, node: tuple, depth: int) -> dict:
        pairs = self.pairs(node, depth)
        self.hashable([key for key, _ in pairs])
        return dict(pairs)

    def odict(self, node: tuple, depth: int) -> OrderedDict:
        return OrderedDict(self.dict_(node, depth))

    def set_(self, node: tuple, depth: int) -> set:
        return set(self.hashable(self.items(node, depth)))

    def fset(self, node: tuple, depth: int) -> frozenset:
        return frozenset(self.hashable(self.items(node, depth)))

    def array(self, node: tuple, depth: int) -> np.ndarray:
        if len(node) != 5:
            raise WireError('not a value: an array needs dtype, shape, order and data')
        _, name, shape, order, data = node
        if not (type(shape) is tuple and all(type(n) is int and n >= 0 for n in shape)
                and len(shape) <= 32 and order in ('C', 'F')):
            raise WireError(f'not a value: bad array shape {shape!r:.60} or order {order!r:.5}')
        count = math.prod(shape)
        if name == 'O':
            if type(data) is not tuple or len(data) != count:
                raise WireError(f'not a value: an object array of shape {shape} needs {count} '
                                f'items')
            arr = np.empty(count, dtype=object)
            arr[:] = [self.value(item, depth) for item in data] if count else []
            return arr.reshape(shape)
        if type(name) is not str or not _DTYPE.fullmatch(name):
            raise WireError(f'refusing an array of dtype {name!r:.40}: only numbers, bools, '
                            f'fixed-size strings and dates travel')
        dtype = np.dtype(name)
        buf = self.buffer(data)
        if len(buf) != count * dtype.itemsize:
            raise WireError(f'not a value: an array of shape {shape} and dtype {name} needs '
                            f'{count * dtype.itemsize} bytes, got {len(buf)}')
        return np.frombuffer(buf, dtype).reshape(shape, order=order)

    def buffer(self, index: Any) -> Any:
        if type(index) is not int or not 0 <= index < len(self.buffers) or index in self.used:
            raise WireError(f'not a value: no out-of-band buffer {index!r:.20}')
        self.used.add(index)
        return self.buffers[index]

    def scalar(self, node: tuple, depth: int) -> np.generic:
        if len(node) != 3 or type(node[1]) is not str or type(node[2]) is not bytes \
                or not _DTYPE.fullmatch(node[1]):
            raise WireError(f'refusing a numpy scalar {node[1:2]!r:.60}: only numbers, bools, '
                            f'fixed-size strings and dates travel')
        dtype = np.dtype(node[1])
        if len(node[2]) != dtype.itemsize:
            raise WireError(f'not a value: a {dtype} scalar needs {dtype.itemsize} bytes')
        return np.frombuffer(node[2], dtype)[0]

    def file(self, node: tuple, depth: int) -> FileRef:
        if len(node) != 4 or type(node[1]) is not str or type(node[2]) is not bool \
                or not (node[3] is None or type(node[3]) is str):
            raise WireError('not a value: a file needs path, binary and content type')
        path = node[1]
        norm = os.path.normpath(path) if path else ''
        if not path or os.path.isabs(path) or norm == '..' or norm.startswith('..' + os.sep):
            raise WireError(f'refusing file reference {path!r:.200}: expected a path relative '
                            f'to the component directory, without ".."')
        return FileRef(path, self.owner, node[2], node[3])

    def range_(self, node: tuple, depth: int) -> range:
        if len(node) != 4 or not all(type(v) is int for v in node[1:]) or node[3] == 0:
            raise WireError('not a value: a range needs three ints, the step not 0')
        return range(*node[1:])

    def slice_(self, node: tuple, depth: int) -> slice:
        if len(node) != 4:
            raise WireError('not a value: a slice needs start, stop and step')
        return slice(*self.items(node, depth))

    BUILDERS: dict[str, Callable[..., Any]] = {
        _LIST: list_, _TUPLE: tuple_, _DICT: dict_, _ODICT: odict, _SET: set_, _FSET: fset,
        _ARRAY: array, _SCALAR: scalar, _FILE: file, _RANGE: range_, _SLICE: slice_,
    }


def decode(tree: Any, buffers: Any = (), owner: Any = None) -> Any:
    """The value `encode` gave ``tree`` for; `FileRef` values get ``owner`` (the receiving
    component). `WireError` for anything else."""
    decoder = _Decoder(tuple(buffers), owner)
    value = decoder.value(tree, 0)
    if len(decoder.used) != len(decoder.buffers):
        raise WireError(f'not a value: {len(decoder.buffers) - len(decoder.used)} out-of-band '
                        f'buffers left unused')
    return value


# -- packets -------------------------------------------------------------------------------------
def pack(obj: Any) -> tuple:
    """``obj`` as a packet: brine values when plain (one round trip costs least), else an
    encoded tree whose array buffers travel out of band."""
    if type(obj) is dict and all(type(k) is str for k in obj):
        values = tuple(obj.values())
        if brine.dumpable(values):
            return ('d', tuple(obj), values)
    elif brine.dumpable(obj):
        return ('v', obj)
    tree, buffers = encode(obj)
    return ('x', tree, OOB(buffers)) if buffers else ('x', tree)


def unpack(packet: Any, owner: Any = None) -> Any:
    """The object in a `pack` packet; `FileRef` values get ``owner`` (the receiving
    component). `WireError` for anything but a packet of plain data."""
    tag = packet[0] if type(packet) is tuple and packet else None
    if tag == 'd' and len(packet) == 3 and type(packet[1]) is tuple \
            and type(packet[2]) is tuple and len(packet[1]) == len(packet[2]) \
            and all(type(k) is str for k in packet[1]):
        return dict(zip(packet[1], packet[2]))
    if tag == 'v' and len(packet) == 2:
        return packet[1]
    if tag == 'x' and len(packet) in (2, 3):
        buffers = packet[2] if len(packet) == 3 else ()
        if type(buffers) is not tuple:
            raise WireError('not a value packet: its buffers are not out-of-band data')
        return decode(packet[1], buffers, owner)
    raise WireError(f'not a value packet: expected a tuple tagged d, v or x, got '
                    f'{type(packet).__name__} {str(tag)[:20]!r}')


def travels(obj: Any) -> bool:
    """Whether ``obj`` can be sent (it holds plain data only)."""
    try:
        encode(obj)
        return True
    except (WireError, RecursionError):
        return False


def dumps(obj: Any) -> tuple[bytes, tuple[bytes, ...]]:
    """``obj`` as bytes (the brine tree) plus its buffers, all bytes."""
    tree, buffers = encode(obj)
    return brine.dump(tree), tuple(bytes(b) for b in buffers)


def loads(payload: bytes, buffers: tuple[bytes, ...] = (), owner: Any = None) -> Any:
    """The object `dumps` encoded."""
    try:
        tree = brine.load(payload)
    except Exception as exc:  # brine reports bad input as whatever its parser hit
        raise WireError(f'not a value: unreadable payload ({type(exc).__name__})') from None
    return decode(tree, [bytearray(b) for b in buffers], owner)
