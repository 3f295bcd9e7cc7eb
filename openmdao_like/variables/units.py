"""Physical units through pint: parsed once, conversions (scale, offset) computed once and cached.

pint takes ~0.4 s to build its registry, so it is loaded on first use, never at import.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def registry() -> Any:
    """The process-wide pint ``UnitRegistry`` (created on first use)."""
    import pint
    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


@functools.lru_cache(maxsize=None)
def parse_units(units: str) -> Any:
    """The pint ``Unit`` for ``units``; raises ``ValueError`` saying why it is not a unit."""
    if not isinstance(units, str) or not units.strip():
        raise ValueError(f'expected a unit string such as "m" or "m/s**2", got {units!r}')
    import pint
    try:
        return registry().Unit(units)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError,
            AttributeError, TypeError, ValueError, AssertionError) as exc:
        raise ValueError(f'{units!r} is not a valid unit ({type(exc).__name__}: {exc})') from None


@functools.lru_cache(maxsize=None)
def conversion(src: str, dst: str) -> tuple[float, float]:
    """``(scale, offset)`` such that ``value_in_dst = value_in_src * scale + offset``.

    Raises ``ValueError`` when the units measure different quantities.
    """
    if src == dst:
        return 1.0, 0.0
    su, du = parse_units(src), parse_units(dst)
    if su.dimensionality != du.dimensionality:
        raise ValueError(f'units {src!r} ({su.dimensionality}) and {dst!r} '
                         f'({du.dimensionality}) measure different quantities')
    q = registry().Quantity
    offset = float(q(0.0, su).to(du).magnitude)
    scale = float(q(1.0, su).to(du).magnitude) - offset
    return scale, offset


def convert(value: Any, src: str, dst: str) -> Any:
    """``value`` (a number or array) given in ``src`` units, expressed in ``dst`` units."""
    scale, offset = conversion(src, dst)
    return value * scale + offset
