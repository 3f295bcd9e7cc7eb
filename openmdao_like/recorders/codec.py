"""How recorded values become JSON text and back, shared by every recorder format.

JSON holds ``None``, bools, ints, floats (NaN and infinities too, as the non-standard literals
``NaN``/``Infinity`` that Python's ``json`` writes and reads), strings, lists and dicts. Beyond
that:

* a numpy array becomes ``{"__ndarray__": nested list, "dtype": str, "shape": [...]}`` and reads
  back as an array of the same dtype and shape (complex arrays store ``[re, im]`` pairs);
* a numpy scalar becomes the matching Python scalar; a complex number ``{"__complex__": [re, im]}``;
* a tuple becomes a list (JSON has no tuple);
* anything else is stored as ``{"__repr__": repr(value), "type": "module.Class"}`` and reads back
  as that repr string, so a recorder never stops a run because of one odd value.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

ARRAY_TAG = '__ndarray__'
COMPLEX_TAG = '__complex__'
REPR_TAG = '__repr__'


def to_json_value(value: Any) -> Any:
    """JSON-able stand-in for one value that ``json`` cannot write itself (the ``default`` hook)."""
    if isinstance(value, np.ndarray) and value.dtype.kind != 'V':
        kind = value.dtype.kind
        if kind == 'c':
            data = np.stack([value.real, value.imag], axis=-1).tolist()
        elif kind in 'Mm':  # datetimes as their int64 ticks: exact, NaT included
            data = np.ascontiguousarray(value).view(np.int64).tolist()
        else:
            data = value.tolist()
        return {ARRAY_TAG: data, 'dtype': str(value.dtype), 'shape': list(value.shape)}
    if isinstance(value, np.generic):
        return to_json_value(value.item()) if value.dtype.kind == 'c' else value.item()
    if isinstance(value, complex):
        return {COMPLEX_TAG: [value.real, value.imag]}
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    cls = type(value)
    return {REPR_TAG: repr(value), 'type': f'{cls.__module__}.{cls.__qualname__}'}


def from_json_object(obj: dict[str, Any]) -> Any:
    """Turn a decoded JSON object back into the value it stands for (the ``object_hook``)."""
    if ARRAY_TAG in obj:
        dtype = np.dtype(obj['dtype'])
        data = obj[ARRAY_TAG]
        shape = tuple(obj['shape'])
        if dtype.kind == 'c':
            pairs = np.array(data, dtype=float).reshape(shape + (2,))
            return (pairs[..., 0] + 1j * pairs[..., 1]).astype(dtype)
        if dtype.kind in 'Mm':
            return np.array(data, dtype=np.int64).reshape(shape).view(dtype)
        if dtype.kind == 'O':  # numpy would guess a shape from nested lists; fill it instead
            out = np.empty(shape, dtype=object)
            for i, item in enumerate(_flatten(data, len(shape))):
                out.flat[i] = item
            return out
        return np.array(data, dtype=dtype).reshape(shape)
    if COMPLEX_TAG in obj:
        re, im = obj[COMPLEX_TAG]
        return complex(re, im)
    if REPR_TAG in obj:
        return obj[REPR_TAG]
    return obj


def dumps(value: Any) -> str:
    """JSON text for a value (dicts of variables included), NaN and numpy arrays kept."""
    if _C_ENCODER is None:
        return _ENCODER.encode(value)
    return ''.join(_C_ENCODER(value, 0))


def encode_case(case: Any) -> tuple[str, str]:
    """The JSON text of a case's inputs and outputs, encoded once for every recorder that
    stores them (kept in ``case.encoded``)."""
    encoded = case.encoded
    if encoded is None:
        encoded = case.encoded = (dumps(case.inputs), dumps(case.outputs))
    return encoded


def loads(text: str) -> Any:
    """The value that `dumps` wrote."""
    return _DECODER.decode(text)


# Built once: json.dumps/loads with options build a new coder per call, which costs more than
# encoding a small case; so does JSONEncoder.encode, hence the C encoder called directly (as
# JSONEncoder.iterencode makes it, without the check for circular references: variables hold
# none, and one would end in a RecursionError rather than a ValueError).
_ENCODER = json.JSONEncoder(default=to_json_value, allow_nan=True, separators=(',', ':'))
_C_ENCODER = None if json.encoder.c_make_encoder is None else json.encoder.c_make_encoder(
    None, to_json_value, json.encoder.encode_basestring_ascii, None, ':', ',', False, False,
    True)
_DECODER = json.JSONDecoder(object_hook=from_json_object)


def _flatten(data: Any, depth: int) -> list[Any]:
    """The items of nested lists `depth` levels deep, in C order."""
    if depth == 0:
        return [data]
    return [x for item in data for x in _flatten(item, depth - 1)]
