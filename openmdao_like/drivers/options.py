"""Checked driver settings shared by the drivers, and how messages name a driver."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ValidationError, describe


def who(driver: Any) -> str:
    """A driver's path and type, for messages (just the type before it joins a model)."""
    where, kind = driver._where(), type(driver).__name__
    return where if where == kind else f'{where} ({kind})'


def check_positive(owner: str, name: str, value: Any, kind: type) -> Any:
    """``value`` if it is a positive ``kind`` (ints accepted for floats), else raise."""
    ok_types = (int, float, np.integer, np.floating) if kind is float else (int, np.integer)
    if isinstance(value, bool) or not isinstance(value, ok_types) or not value > 0:
        raise ValidationError(f'{owner}: {name} must be a positive {kind.__name__}, got '
                              f'{describe(value)}')
    return kind(value)


def positive_setting(name: str, kind: type, doc: str) -> property:
    """A driver setting that must be a positive ``kind``, checked whenever it is set."""
    def fget(self: Any) -> Any:
        return getattr(self, f'_{name}')

    def fset(self: Any, value: Any) -> None:
        setattr(self, f'_{name}', check_positive(who(self), name, value, kind))
    return property(fget, fset, doc=doc)
