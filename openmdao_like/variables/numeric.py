"""`Float` and `Int`: scalar numbers with optional bounds and units, validated in C by traits."""

from __future__ import annotations

import math
import numbers
from typing import Any

from traits.api import NoDefaultSpecified
from traits.constants import ValidateTrait

from ..errors import ValidationError, describe
from .base import Reject, Variable


class _Bounded(Variable):
    """Shared logic of numbers with ``low``/``high`` bounds (each optionally exclusive)."""

    kind: type = float

    def __init__(self, default_value: Any = NoDefaultSpecified, iotype: str | None = None,
                 desc: str | None = None, low: Any = None, high: Any = None,
                 exclude_low: bool = False, exclude_high: bool = False,
                 units: str | None = None, **metadata: Any):
        if default_value is NoDefaultSpecified or default_value is None:
            default_value = low if low is not None else high if high is not None else self.kind()
        md = dict(metadata)
        if low is not None:
            md['low'] = low
        if high is not None:
            md['high'] = high
        if exclude_low:
            md['exclude_low'] = True
        if exclude_high:
            md['exclude_high'] = True
        super().__init__(default_value, iotype=iotype, desc=desc, units=units, **md)
        self.low, self.high = low, high
        self.exclude_low, self.exclude_high = bool(exclude_low), bool(exclude_high)
        self._init_fast_validate()

    def _init_fast_validate(self) -> None:
        """Install traits' C validator where the bounds allow one (else `check_value` runs)."""

    def check_definition(self, where: str) -> None:
        for bound in ('low', 'high'):
            value = getattr(self, bound)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, numbers.Real)
                                      or math.isnan(value)):
                raise ValidationError(f'{where}: {bound} must be a real number, '
                                      f'got {describe(value)}')
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValidationError(f'{where}: low ({self.low}) is greater than high ({self.high})')
        super().check_definition(where)

    def in_bounds(self, value: Any) -> bool:
        """Whether a number lies within the declared bounds (NaN lies within none)."""
        low, high = self.low, self.high
        if low is None and high is None:
            return True
        if value != value:  # NaN
            return False
        if low is not None and (value <= low if self.exclude_low else value < low):
            return False
        if high is not None and (value >= high if self.exclude_high else value > high):
            return False
        return True

    def bounds_text(self) -> str:
        if self.low is None and self.high is None:
            return ''
        lo = '-inf' if self.low is None else repr(self.low)
        hi = 'inf' if self.high is None else repr(self.high)
        return (f" in {'(' if self.exclude_low else '['}{lo}, {hi}"
                f"{')' if self.exclude_high else ']'}")

    def expectation(self) -> str:
        return self.type_desc + self.bounds_text()

    def proves(self, src: Any) -> bool:
        if type(src) is not type(self):
            return False
        if self.low is not None and (src.low is None or src.low < self.low
                                     or (self.exclude_low and not src.exclude_low
                                         and src.low == self.low)):
            return False
        if self.high is not None and (src.high is None or src.high > self.high
                                      or (self.exclude_high and not src.exclude_high
                                          and src.high == self.high)):
            return False
        return True


class Float(_Bounded):
    """A floating-point variable; ints and numpy floats are stored as ``float``.

    With no default it starts at ``low``, else ``high``, else 0.0. A bounded one refuses NaN
    (it lies in no range); an unbounded one accepts it.
    """

    type_desc = 'a float'
    kind = float

    def _init_fast_validate(self) -> None:
        # traits' C range check lets NaN through: a bounded Float checks in `validate`
        if self.low is None and self.high is None:
            self.fast_validate = (ValidateTrait.float,)
        else:
            # (malformed bounds: check_definition reports them by name)
            low, high = (b if isinstance(b, numbers.Real) else None for b in (self.low, self.high))
            self._inside = (-math.inf if low is None else float(low),
                            math.inf if high is None else float(high))

    def validate(self, obj: Any, name: str, value: Any) -> Any:
        """traits hook of a bounded Float: a float strictly inside the bounds passes at once
        (NaN never does); anything else is checked by `check_value`."""
        low, high = self._inside
        if type(value) is float and low < value < high:
            return value
        return super().validate(obj, name, value)

    def check_value(self, value: Any) -> float:
        if isinstance(value, (str, bytes, bool)) or not isinstance(value, numbers.Real):
            raise Reject
        value = float(value)
        if not self.in_bounds(value):
            raise Reject
        return value


class Int(_Bounded):
    """An integer variable (bools are rejected; numpy integers are stored as ``int``)."""

    type_desc = 'an int'
    kind = int

    def _init_fast_validate(self) -> None:
        if self.low is None and self.high is None:
            self.fast_validate = (ValidateTrait.int,)

    def check_value(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise Reject
        value = int(value)
        if not self.in_bounds(value):
            raise Reject
        return value


Float.accepts = (Float, Int)
Int.accepts = (Int,)
