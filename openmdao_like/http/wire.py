"""What the HTTP service and `HTTPComponent` exchange, as JSON: values and failures.

Values are the recorders' JSON (`openmdao_like.recorders.codec`): a numpy array travels as
``{"__ndarray__": nested list, "dtype": "float64", "shape": [...]}``, NaN and infinities as
literals. A value coming from a client is decoded by `decode`, which refuses what a client could
use to make the server build something big or odd: object arrays, and arrays whose data does not
fill their shape. A failure travels as ``{"type", "module", "message", "traceback"}`` (the
issue-4 rules, `openmdao_like.remote.failures`): the client raises it again as the same type
when that is a builtin or openmdao_like error, else as `RemoteError`.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import OpenMDAOLikeError, WireError
from ..recorders import codec
from ..remote.failures import capture, rebuild

__all__ = ['dumps', 'decode', 'failure', 'raise_failure', 'FILE_KEY', 'WireError',
           'ServiceError']

#: An input that names an uploaded file, ``{"__file__": file id}``, and an output that is one
#: (``{"__file__": id, "filename", "size", "sha256"}``).
FILE_KEY = '__file__'
_ARRAY_KINDS = 'biufcmM'
#: Deepest nesting of lists and objects accepted in a value.
MAX_DEPTH = 64


class ServiceError(OpenMDAOLikeError):
    """A request the service refuses or cannot serve; ``status`` is the HTTP status it answers
    with, the message its ``detail``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def dumps(value: Any) -> str:
    """JSON text of ``value`` (arrays tagged, NaN kept; what JSON cannot hold, as its repr)."""
    return codec.dumps(value)


def decode(data: Any, where: str, depth: int = 0) -> Any:
    """The value JSON ``data`` from a client stands for; `WireError` naming ``where`` when a
    tagged value is malformed or not accepted, or when lists and objects nest deeper than
    `MAX_DEPTH`."""
    if depth > MAX_DEPTH:
        raise WireError(f'{where}: nested deeper than {MAX_DEPTH} levels')
    if isinstance(data, list):
        return [decode(v, where, depth + 1) for v in data]
    if not isinstance(data, dict):
        return data
    if codec.ARRAY_TAG in data:
        return _array(data, where)
    if codec.COMPLEX_TAG in data:
        pair = data[codec.COMPLEX_TAG]
        expected = f'expected {{"{codec.COMPLEX_TAG}": [re, im]}}'
        if not (isinstance(pair, list) and len(pair) == 2 and
                all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in pair)):
            raise WireError(f'{where}: {expected}, got {_short(data)}')
        try:
            return complex(*pair)
        except OverflowError:
            raise WireError(f'{where}: {expected}; a part is too large for a float') from None
    return {k: decode(v, f'{where}.{k}', depth + 1) for k, v in data.items()}


def _array(data: dict, where: str) -> Any:
    """A tagged array, checked before numpy sees it."""
    import numpy as np
    expected = (f'expected {{"{codec.ARRAY_TAG}": nested list, "dtype": a numeric dtype, '
                f'"shape": [n, ...]}}')
    shape, dtype = data.get('shape'), data.get('dtype')
    if set(data) != {codec.ARRAY_TAG, 'shape', 'dtype'} or not isinstance(shape, list) or \
            not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape) \
            or not isinstance(dtype, str):
        raise WireError(f'{where}: {expected}, got {_short(data)}')
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        kind = '?'
    if kind not in _ARRAY_KINDS:
        raise WireError(f'{where}: {expected}; dtype {dtype!r} is not accepted')
    if len(shape) > 32 or math.prod(shape) > _count(data[codec.ARRAY_TAG], len(shape)):
        raise WireError(f'{where}: {expected}; its data does not fill the shape {shape}')
    try:
        return codec.from_json_object(data)
    except (ValueError, TypeError, OverflowError) as exc:
        raise WireError(f'{where}: {expected}; {exc}') from None


def _count(data: Any, depth: int) -> int:
    """How many items nested lists hold ``depth`` levels deep (an upper bound of the array)."""
    if depth == 0:
        return 1
    if not isinstance(data, list):
        return 0
    return sum(_count(item, depth - 1) for item in data)


def _short(data: Any) -> str:
    text = repr(data)
    return text if len(text) <= 80 else text[:77] + '...'


def failure(exc: BaseException) -> dict[str, str]:
    """``exc`` as JSON-able data (see the module docstring)."""
    module, name, message, text = capture(exc)
    return {'module': module, 'type': name, 'message': message, 'traceback': text}


def raise_failure(info: dict[str, Any], where: str) -> None:
    """Raise the exception `failure` described, as raised at ``where``."""
    raise rebuild((str(info.get('module', '')), str(info.get('type', 'Exception')),
                   str(info.get('message', '')), str(info.get('traceback', ''))), where)
