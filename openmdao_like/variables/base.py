"""`Variable`: the traits type every openmdao_like variable derives from.

A variable carries its metadata (``iotype``, ``desc``, ``units``, ...) as traits metadata, checks
its own definition once when the owning class is created, and reports a bad value as a
`ValidationError` naming the variable's full path, what it accepts and what it was given.
Simple types validate in C (traits' ``fast_validate``); the rest implement `check_value`.
"""

from __future__ import annotations

from typing import Any

from traits.api import NoDefaultSpecified, TraitType

from ..errors import ValidationError, describe

IOTYPES = ('in', 'out')


class Reject(Exception):
    """Raised by `Variable.check_value` when a value is not acceptable (internal signal); its
    message, if any, says which part of the value is wrong."""


def var_path(obj: Any, name: str) -> str:
    """The full dotted path of variable ``name`` of ``obj`` (or just ``name``)."""
    get = getattr(obj, 'get_pathname', None)
    prefix = get() if get is not None else ''
    return f'{prefix}.{name}' if prefix else name


class Variable(TraitType):
    """Base of all variable types.

    Parameters
    ----------
    default_value : object, optional
        The value a new component starts with.
    iotype : {'in', 'out'}, optional
        Whether the variable is an input or an output of its component.
    desc : str, optional
        A description shown in listings.
    units : str, optional
        Physical units, parsed by pint (checked once, when the owning class is defined).
    **metadata
        Further metadata, readable through ``comp.get_metadata(name)``.
    """

    #: Words for "what this accepts" in error messages.
    type_desc = 'a value'
    #: Variable classes whose values this type accepts in a connection.
    accepts: tuple[type, ...] = ()

    def __init__(self, default_value: Any = NoDefaultSpecified, iotype: str | None = None,
                 desc: str | None = None, units: str | None = None, **metadata: Any):
        if iotype is not None:
            metadata['iotype'] = iotype
        if desc is not None:
            metadata['desc'] = desc
        if units is not None:
            metadata['units'] = units
        super().__init__(default_value, **metadata)

    # -- definition checks (run once, when the owning class is created) ------------------------
    def check_definition(self, where: str) -> None:
        """Check the declared metadata and default; ``where`` is e.g. ``'Paraboloid.x'``."""
        iotype = self._metadata.get('iotype')
        if iotype is not None and iotype not in IOTYPES:
            raise ValidationError(f"{where}: iotype must be 'in' or 'out', got {describe(iotype)}")
        units = self._metadata.get('units')
        if units is not None:
            from .units import parse_units
            try:
                parse_units(units)
            except ValueError as exc:
                raise ValidationError(f'{where}: invalid units: {exc}') from None
        self._check_default(where)

    def _check_default(self, where: str) -> None:
        default = self.default_value
        if default is NoDefaultSpecified or default is None:
            return
        try:
            self.check_value(default)
        except Reject:
            raise ValidationError(f'{where}: default value {describe(default)} is not '
                                  f'{self.expectation()}') from None

    # -- value checks -----------------------------------------------------------------------------
    def check_value(self, value: Any) -> Any:
        """Return ``value`` as stored (possibly coerced) or raise `Reject`."""
        return value

    def validate(self, obj: Any, name: str, value: Any) -> Any:
        """traits hook for types without a C validator."""
        try:
            return self.check_value(value)
        except Reject as exc:
            self.error(obj, name, value, str(exc))

    def error(self, obj: Any, name: str, value: Any, why: str = '') -> None:
        """traits hook: raise `ValidationError` naming the path, expectation and value (and
        ``why``: which part of it is wrong)."""
        raise ValidationError(f'{var_path(obj, name)}: expected {self.expectation()}, '
                              f'got {describe(value)}{f": {why}" if why else ""}')

    def expectation(self) -> str:
        """What this variable accepts, in words (e.g. ``a float in [0, 10]``)."""
        return self.type_desc

    def info(self) -> str:
        return self.expectation()

    # -- connections ------------------------------------------------------------------------------
    def type_compatible(self, src: Any) -> bool:
        """Whether values of the source variable type ``src`` may be connected to this one."""
        if not self.accepts:
            return isinstance(src, type(self))
        return isinstance(src, self.accepts)

    def proves(self, src: Any) -> bool:
        """True when every value ``src`` can hold is valid here unchanged, so a transfer may
        skip validation."""
        return False

    def copy_on_transfer(self) -> bool:
        """True for mutable values (arrays, lists) that must not be shared between components."""
        return False

    def var_metadata(self) -> dict[str, Any]:
        """All metadata of this variable (``iotype``, ``units``, ``low``...)."""
        md = dict(self._metadata)
        md.pop('type', None)
        return md
