"""Physical units through pint: parsed once, conversions (scale, offset) computed once and cached.

pint takes ~0.4 s to build its registry, so it is loaded on first use, never at import.
"""

from __future__ import annotations

import functools
from typing import Any

from ..options import suggest


@functools.lru_cache(maxsize=1)
def registry() -> Any:
    """The process-wide pint ``UnitRegistry`` (created on first use)."""
    import pint
    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


#: How a unit string is written, said when one is not.
UNIT_SYNTAX = ('unit names joined by "*" or "/", each with an optional power "**n", such as '
               '"m", "m/s**2" or "kg*m**2"')


@functools.lru_cache(maxsize=None)
def parse_units(units: str) -> Any:
    """The pint ``Unit`` for ``units``; raises ``ValueError`` naming the unit string and saying
    why it is not a unit (a name pint does not know, with the closest it does; or text that is
    not a unit expression), in words rather than pint's internals."""
    if not isinstance(units, str) or not units.strip():
        raise ValueError(f'expected a unit string such as "m" or "m/s**2", got {units!r}')
    import pint
    try:
        return registry().Unit(units)
    except pint.errors.UndefinedUnitError as exc:
        names = [str(n) for n in (exc.unit_names if isinstance(exc.unit_names, (list, tuple))
                                  else (exc.unit_names,))]
        known = _unit_names()
        why = '; '.join(f'{name!r} is not a unit name{suggest(name, known)}' for name in names)
    except ValueError as exc:  # pint's own words: "cannot have a scaling factor", ...
        why = f'{str(exc).rstrip(".")}; expected {UNIT_SYNTAX}'
    except Exception:  # noqa: BLE001 - pint's parser trips over malformed text with whatever
        # its code runs into (AssertionError, TypeError between its parser objects, tokenize
        # errors), which says nothing about the text
        why = f'not a unit expression; expected {UNIT_SYNTAX}'
    raise ValueError(f'{units!r} is not a valid unit: {why}')


@functools.lru_cache(maxsize=1)
def _unit_names() -> tuple[str, ...]:
    """The names (and symbols) of the units the registry defines."""
    reg = registry()
    return tuple(name for name in dir(reg) if not name.startswith('_') and name in reg)


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
