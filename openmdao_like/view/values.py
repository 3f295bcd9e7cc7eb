"""How the views show one value: as one short line of text (`value_text`) and as JSON data
(`json_value`), whatever the value is — numbers, numpy scalars and arrays, NaN, objects."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .table import format_value

#: Longest value text shown (longer ones are cut with an ellipsis).
MAX_VALUE_TEXT = 80


def value_text(value: Any) -> str:
    """``value`` as one short line of text."""
    text = format_value(value)
    return text if len(text) <= MAX_VALUE_TEXT else text[:MAX_VALUE_TEXT - 1] + '…'


def json_value(value: Any) -> Any:
    """``value`` as standard JSON data: numbers and strings as they are (numpy scalars as
    Python ones), arrays and tuples as lists, complex numbers as ``[real, imag]``, NaN and
    infinities as None, mappings with text keys, anything else as its `value_text`."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, complex):
        return [json_value(value.real), json_value(value.imag)]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    return value_text(value)
