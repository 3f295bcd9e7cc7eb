"""Non-numeric variables: `Bool`, `Str`, `Enum`, `List`, `Dict`, `Instance`."""

from __future__ import annotations

from typing import Any

import numpy as np
import traits.api as ta
from traits.api import NoDefaultSpecified, TraitError
from traits.constants import ValidateTrait

from ..errors import ValidationError, describe
from .base import Reject, Variable, var_path


class Bool(Variable):
    """A boolean variable (numpy bools are stored as ``bool``)."""

    type_desc = 'a bool'
    default_value = False
    fast_validate = (ValidateTrait.coerce, bool, None, np.bool_)

    def check_value(self, value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise Reject

    def proves(self, src: Any) -> bool:
        return isinstance(src, Bool)


class Str(Variable):
    """A string variable."""

    type_desc = 'a str'
    default_value = ''
    fast_validate = (ValidateTrait.coerce, str)

    def check_value(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        raise Reject

    def proves(self, src: Any) -> bool:
        return isinstance(src, Str)


class Enum(Variable):
    """A variable restricted to a fixed tuple of ``values``; the default is the first value.

    Parameters
    ----------
    default_value : object, optional
        One of ``values``.
    values : sequence
        The allowed values.
    aliases : sequence of str, optional
        Display names for the values (classic compatibility; metadata only).
    """

    def __init__(self, default_value: Any = NoDefaultSpecified, values: Any = (),
                 iotype: str | None = None, desc: str | None = None, aliases: Any = (),
                 **metadata: Any):
        values = tuple(values)
        if default_value is NoDefaultSpecified and values:
            default_value = values[0]
        md = dict(metadata)
        if aliases:
            md['aliases'] = tuple(aliases)
        super().__init__(default_value, iotype=iotype, desc=desc, values=values, **md)
        self.values = values
        self.fast_validate = (ValidateTrait.enum, values)

    def check_definition(self, where: str) -> None:
        if not self.values:
            raise ValidationError(f'{where}: Enum needs a non-empty sequence of values, got ()')
        aliases = self._metadata.get('aliases')
        if aliases and len(aliases) != len(self.values):
            raise ValidationError(f'{where}: Enum has {len(self.values)} values but '
                                  f'{len(aliases)} aliases')
        super().check_definition(where)

    def check_value(self, value: Any) -> Any:
        if value in self.values:
            return value
        raise Reject

    def expectation(self) -> str:
        return f'one of {self.values!r}'

    def type_compatible(self, src: Any) -> bool:
        return isinstance(src, Variable)

    def proves(self, src: Any) -> bool:
        return isinstance(src, Enum) and set(src.values) <= set(self.values)


class _WrapsTraitsError:
    """Mixin for traits container types: re-raise their `TraitError` as `ValidationError`."""

    def validate(self, obj: Any, name: str, value: Any) -> Any:
        try:
            return super().validate(obj, name, value)
        except TraitError as exc:
            raise ValidationError(f'{var_path(obj, name)}: expected {self.expectation()}, '
                                  f'got {describe(value)} ({exc})') from None

    def error(self, obj: Any, name: str, value: Any) -> None:
        raise ValidationError(f'{var_path(obj, name)}: expected {self.expectation()}, '
                              f'got {describe(value)}')

    def check_definition(self, where: str) -> None:
        iotype = self._metadata.get('iotype')
        if iotype is not None and iotype not in ('in', 'out'):
            raise ValidationError(f"{where}: iotype must be 'in' or 'out', got {describe(iotype)}")

    def type_compatible(self, src: Any) -> bool:
        return isinstance(src, type(self))

    def proves(self, src: Any) -> bool:
        return False

    def copy_on_transfer(self) -> bool:
        return True

    def var_metadata(self) -> dict[str, Any]:
        md = dict(self._metadata)
        md.pop('type', None)
        return md


class List(_WrapsTraitsError, ta.List):
    """A list variable; ``trait`` optionally types its items (``List(Float, iotype='in')``)."""

    type_desc = 'a list'

    def __init__(self, trait: Any = None, value: Any = None, iotype: str | None = None,
                 desc: str | None = None, **metadata: Any):
        if iotype is not None:
            metadata['iotype'] = iotype
        if desc is not None:
            metadata['desc'] = desc
        super().__init__(trait, value, **metadata)

    def expectation(self) -> str:
        item = self.item_trait.handler
        inner = item.info() if item is not None else 'anything'
        return f'a list of {inner}' if item is not None else 'a list'


class Dict(_WrapsTraitsError, ta.Dict):
    """A dict variable; ``key_trait``/``value_trait`` optionally type its entries."""

    type_desc = 'a dict'

    def __init__(self, key_trait: Any = None, value_trait: Any = None, value: Any = None,
                 iotype: str | None = None, desc: str | None = None, **metadata: Any):
        if iotype is not None:
            metadata['iotype'] = iotype
        if desc is not None:
            metadata['desc'] = desc
        super().__init__(key_trait, value_trait, value, **metadata)

    def expectation(self) -> str:
        return 'a dict'


class Instance(_WrapsTraitsError, ta.Instance):
    """A variable holding an instance of ``klass`` (or None when ``allow_none``)."""

    def __init__(self, klass: Any = None, factory: Any = None, args: Any = None, kw: Any = None,
                 allow_none: bool = True, iotype: str | None = None, desc: str | None = None,
                 **metadata: Any):
        if iotype is not None:
            metadata['iotype'] = iotype
        if desc is not None:
            metadata['desc'] = desc
        super().__init__(klass if klass is not None else object, factory, args, kw,
                         allow_none=allow_none, **metadata)

    def expectation(self) -> str:
        klass = self.klass if isinstance(self.klass, type) else None
        name = klass.__name__ if klass is not None else str(self.klass)
        return f'an instance of {name}' + (' or None' if self._allow_none else '')

    def copy_on_transfer(self) -> bool:
        return False
