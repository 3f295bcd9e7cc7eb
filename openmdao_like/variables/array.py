"""`Array`: a numpy array variable with optional ``dtype``, ``shape``, bounds and units."""

from __future__ import annotations

from typing import Any

import numpy as np
from traits.api import NoDefaultSpecified
from traits.constants import DefaultValue

from ..errors import ValidationError, describe
from .base import Reject, Variable


class Array(Variable):
    """A numpy array variable.

    Parameters
    ----------
    default_value : array_like, optional
        Initial value (copied for each component); zeros of ``shape`` when omitted.
    dtype : numpy dtype, optional
        Values are converted to it when the conversion is safe (ints into a float array).
    shape : tuple, optional
        Required shape; ``None`` entries accept any length along that axis.
    low, high : float, optional
        Element-wise bounds; with either, NaN elements are refused.
    units : str, optional
        Physical units of every element.
    """

    type_desc = 'an array'

    def __init__(self, default_value: Any = NoDefaultSpecified, dtype: Any = None,
                 shape: Any = None, iotype: str | None = None, desc: str | None = None,
                 units: str | None = None, low: Any = None, high: Any = None, **metadata: Any):
        self.dtype = np.dtype(dtype) if dtype is not None else None
        self.shape = tuple(shape) if shape is not None else None
        self.low, self.high = low, high
        if default_value is NoDefaultSpecified or default_value is None:
            if self.shape is not None and all(n is None or (isinstance(n, int) and n >= 0)
                                              for n in self.shape):
                # a free (None) axis starts empty: shape (None, 3) -> zeros((0, 3))
                default_value = np.zeros(tuple(n or 0 for n in self.shape),
                                         dtype=self.dtype or float)
            else:
                default_value = np.zeros((0,) * max(1, len(self.shape or (0,))),
                                         dtype=self.dtype or float)
        md = dict(metadata)
        for key, value in (('dtype', self.dtype), ('shape', self.shape), ('low', low),
                           ('high', high)):
            if value is not None:
                md[key] = value
        super().__init__(np.array(default_value, dtype=self.dtype), iotype=iotype, desc=desc,
                         units=units, **md)

    def get_default_value(self) -> tuple[int, Any]:
        """Each component gets its own copy of the default array."""
        return DefaultValue.callable_and_args, (np.array, (self.default_value,), None)

    def check_definition(self, where: str) -> None:
        if self.shape is not None and not all(n is None or (isinstance(n, int) and n >= 0)
                                              for n in self.shape):
            raise ValidationError(f'{where}: shape must be a tuple of non-negative ints or None, '
                                  f'got {describe(self.shape)}')
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValidationError(f'{where}: low ({self.low}) is greater than high ({self.high})')
        super().check_definition(where)

    def check_value(self, value: Any) -> np.ndarray:
        if isinstance(value, (str, bytes, dict)) or value is None:
            raise Reject
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            raise Reject from None
        if arr.dtype == object:
            raise Reject
        if self.dtype is not None and arr.dtype != self.dtype:
            if not np.can_cast(arr.dtype, self.dtype, casting='same_kind'):
                raise Reject
            arr = arr.astype(self.dtype)
        elif arr.dtype.kind not in 'biufc':
            raise Reject
        if self.shape is not None and not self._shape_ok(arr.shape):
            raise Reject
        if (self.low is not None or self.high is not None) and arr.size:
            self._check_elements(arr)
        return arr

    def _check_elements(self, arr: np.ndarray) -> None:
        """Raise `Reject` naming the first element outside the bounds (NaN is outside any)."""
        bad = np.isnan(arr) if arr.dtype.kind in 'fc' else np.zeros(arr.shape, dtype=bool)
        if self.low is not None:
            bad |= arr < self.low
        if self.high is not None:
            bad |= arr > self.high
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            at = f'element {list(index)}' if index else 'the value'
            raise Reject(f'{at} is {arr[index].item()!r}')

    def _shape_ok(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.shape) and all(
            want is None or want == got for want, got in zip(self.shape, shape))

    def expectation(self) -> str:
        parts = [self.type_desc]
        if self.dtype is not None:
            parts.append(f'of dtype {self.dtype}')
        if self.shape is not None:
            parts.append(f'with shape {self.shape}')
        if self.low is not None or self.high is not None:
            parts.append(f'with elements in [{self.low}, {self.high}]')
        return ' '.join(parts)

    def shapes_match(self, src: 'Array') -> bool:
        """False when both arrays declare fixed shapes that differ."""
        if self.shape is None or src.shape is None:
            return True
        return len(self.shape) == len(src.shape) and all(
            a is None or b is None or a == b for a, b in zip(self.shape, src.shape))

    def copy_on_transfer(self) -> bool:
        return True


Array.accepts = (Array,)
