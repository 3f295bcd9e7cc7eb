"""Declared options (OpenMDAO 3's ``options.declare``): one checked place for every setting of
drivers, DOE generators, recorders, executors, allocators, wrappers and ``ExternalCode``.

A class lists its options once, in the classmethod ``declare_options``; its instances get a
checked copy, its constructor takes the options as keywords, and each option also reads and
writes as an attribute (``driver.tolerance = 1e-3`` is checked like ``tolerance=1e-3``)::

    class FixedPointIterator(HasOptions, Driver):
        @classmethod
        def declare_options(cls, options):
            super().declare_options(options)
            options.declare('tolerance', 1e-6, types=float, lower=0.0, exclude_lower=True,
                            desc='largest change fed back around the cycle')

An unknown keyword raises `UnknownOptionError` (a ``TypeError``) naming the class, the keyword
and the closest declared names; a bad value raises `OptionError` (a ``ValueError``; a
`OptionTypeError`, also a ``TypeError``, when the type is wrong) naming the option, what is
accepted and what was given. An instance may declare more options at run time
(``self.options.declare(...)``, as in OpenMDAO 3), read through ``self.options[name]``. A class
that declares an option named ``options`` itself (`ScipyOptimizer`: scipy's own options) reaches
its declared options through ``declared_options``.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from traits.traits import generic_trait

from .errors import OpenMDAOLikeError, ValidationError, describe

__all__ = ['OptionsDictionary', 'HasOptions', 'OptionError', 'OptionTypeError',
           'UnknownOptionError', 'REQUIRED', 'suggest']


class OptionError(ValidationError):
    """An option was given a value it does not accept (the message says what it accepts).

    A `ValidationError` (so a ``ValueError``): a setting is checked like a variable's value."""


class OptionTypeError(OptionError, TypeError):
    """An option was given a value of the wrong type."""


class UnknownOptionError(OpenMDAOLikeError, TypeError):
    """A keyword names no declared option (the message lists the closest declared names)."""


class _Required:
    """Default of an option that must be given."""

    def __repr__(self) -> str:
        return 'REQUIRED'

    def __reduce__(self) -> str:
        return 'REQUIRED'


#: The default of an option without one: it must be given to the constructor.
REQUIRED = _Required()

# a bool is an int to Python, never to an option declared as a number
_NUMBER_TYPES = {float: (numbers.Real,), int: (numbers.Integral,)}

#: The errors a bad value raises: (not accepted, wrong type).
Errors = tuple[type[OptionError], type[OptionTypeError]]
_ERRORS: Errors = (OptionError, OptionTypeError)


def suggest(name: str, names: Any, n: int = 3) -> str:
    """``"; did you mean 'a' or 'b'?"`` for the names closest to ``name`` ('' if none is)."""
    close = difflib.get_close_matches(name, [str(x) for x in names], n=n, cutoff=0.6)
    if not close:
        return ''
    quoted = [repr(x) for x in close]
    return '; did you mean ' + (' or '.join(quoted) if len(quoted) < 3 else
                                ', '.join(quoted[:-1]) + ' or ' + quoted[-1]) + '?'


class _Declaration:
    """One declared option: its default and what it accepts."""

    __slots__ = ('name', 'default', 'types', 'values', 'lower', 'upper', 'exclude_lower',
                 'exclude_upper', 'desc', 'allow_none', 'check', 'accepts')

    def __init__(self, name: str, default: Any, types: Any, values: Any, lower: Any, upper: Any,
                 exclude_lower: bool, exclude_upper: bool, desc: str, allow_none: bool,
                 check: Callable[[Any], Any] | None, accepts: str | None):
        self.name, self.default, self.desc = name, default, desc
        self.types = None if types is None else (types if isinstance(types, tuple) else (types,))
        self.values = None if values is None else tuple(values)
        self.lower, self.upper = lower, upper
        self.exclude_lower, self.exclude_upper = exclude_lower, exclude_upper
        self.allow_none, self.check = allow_none, check
        self.accepts = accepts or self._describe()

    def _describe(self) -> str:
        """What the option accepts, in words."""
        if self.values is not None:
            text = 'one of ' + ', '.join(repr(v) for v in self.values)
        else:
            kinds = self.types or ()
            text = ' or '.join(_article(t) for t in kinds) or 'any value'
            if self.lower is not None:
                text += f' {">" if self.exclude_lower else ">="} {self.lower!r}'
            if self.upper is not None:
                text += f'{" and" if self.lower is not None else ""} ' \
                        f'{"<" if self.exclude_upper else "<="} {self.upper!r}'
        return text + (' or None' if self.allow_none else '')

    def validate(self, value: Any, owner: str, errors: Errors = _ERRORS) -> Any:
        """``value`` as the option holds it; ``errors[0]`` (`OptionError`) if it is not
        accepted, ``errors[1]`` (`OptionTypeError`) if its type is wrong."""
        if value is None and self.allow_none:
            return None
        if self.types is not None and not self._has_type(value):
            raise errors[1](f'{owner}: {self.name} must be {self.accepts}, '
                            f'got {describe(value)}')
        if self.values is not None and not any(_same(value, v) for v in self.values):
            raise errors[0](f'{owner}: {self.name} must be {self.accepts}, got '
                            f'{describe(value)}{suggest(str(value), self.values)}')
        if self.lower is not None or self.upper is not None:
            try:
                low_ok = self.lower is None or (value > self.lower if self.exclude_lower
                                                else value >= self.lower)
                high_ok = self.upper is None or (value < self.upper if self.exclude_upper
                                                 else value <= self.upper)
            except TypeError:
                low_ok = high_ok = False
            if not (low_ok and high_ok):  # NaN fails both
                raise errors[0](f'{owner}: {self.name} must be {self.accepts}, '
                                f'got {describe(value)}')
        if self.check is not None:
            value = self._checked(value, owner, errors)
        if self.types is not None and type(value) is not bool:  # a numpy scalar as Python's
            if type(value).__name__ == 'bool_':
                return bool(value)
            for kind in self.types:
                if kind in _NUMBER_TYPES and isinstance(value, _NUMBER_TYPES[kind]):
                    return kind(value)
        return value

    def _checked(self, value: Any, owner: str, errors: Errors) -> Any:
        """What ``check`` makes of ``value``. A check rejects a value by raising: an
        `OptionError` words the complaint itself (the owner is put in front), a ``TypeError``
        or ``ValueError`` gets the usual message (what is accepted, what was given)."""
        try:
            return self.check(value)
        except OptionError as exc:
            kind = errors[1] if isinstance(exc, TypeError) else errors[0]
            raise kind(f'{owner}: {exc}') from None
        except TypeError:
            raise errors[1](f'{owner}: {self.name} must be {self.accepts}, '
                            f'got {describe(value)}') from None
        except ValueError:
            raise errors[0](f'{owner}: {self.name} must be {self.accepts}, '
                            f'got {describe(value)}') from None

    def _has_type(self, value: Any) -> bool:
        for kind in self.types:
            if kind is bool:
                if isinstance(value, bool) or type(value).__name__ == 'bool_':
                    return True
            elif kind in _NUMBER_TYPES:
                if isinstance(value, _NUMBER_TYPES[kind]) and not isinstance(value, bool) \
                        and type(value).__name__ != 'bool_':
                    if kind is int or not isinstance(value, complex):
                        return True
            elif isinstance(value, kind):
                return True
        return False


def _article(kind: type) -> str:
    """``'a float'``, ``'an int'``, ``'a bool (True or False)'``."""
    if kind is bool:
        return 'a bool (True or False)'
    name = kind.__name__
    return ('an ' if name[0].lower() in 'aeiou' else 'a ') + name


def _same(value: Any, allowed: Any) -> bool:
    """Whether ``value`` is the allowed value ``allowed`` (a bool only as itself)."""
    if isinstance(value, bool) or isinstance(allowed, bool):
        return value is allowed
    try:
        return bool(value == allowed)
    except Exception:  # e.g. an array: never one of the values
        return False


class OptionsDictionary:
    """The declared options of one object: checked on every write, read like a dict.

    Parameters
    ----------
    owner : str or callable
        How messages name the owner (a callable is asked each time, so a driver added to a
        model is named by its path).
    errors : (type, type), optional
        The errors a bad value raises (not accepted, wrong type): `OptionError` and
        `OptionTypeError`, or subclasses that are also the owner's own error.
    """

    __slots__ = ('_decls', '_values', '_owner', '_errors')

    def __init__(self, owner: str | Callable[[], str] = 'options', errors: Errors = _ERRORS):
        self._decls: dict[str, _Declaration] = {}
        self._values: dict[str, Any] = {}
        self._owner = owner
        self._errors = errors

    @property
    def owner(self) -> str:
        """How messages name the owner."""
        return self._owner() if callable(self._owner) else self._owner

    def declare(self, name: str, default: Any = REQUIRED, types: Any = None, values: Any = None,
                lower: Any = None, upper: Any = None, desc: str = '', allow_none: bool = False,
                exclude_lower: bool = False, exclude_upper: bool = False,
                check: Callable[[Any], Any] | None = None, accepts: str | None = None) -> None:
        """Declare option ``name`` (again: replace its declaration).

        ``types`` (a type or tuple) and ``values`` (the allowed values) restrict it; ``lower``
        and ``upper`` bound it (``exclude_*`` makes a bound strict); ``check`` is called with a
        value that passed the rest and returns the value to keep (or raises `OptionError`);
        ``accepts`` replaces the generated description of what is accepted in messages.
        The default is not checked (it may be a sentinel such as None meaning "automatic").
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f'{self.owner}: an option name must be an identifier, '
                             f'got {describe(name)}')
        self._decls[name] = _Declaration(name, default, types, values, lower, upper,
                                         exclude_lower, exclude_upper, desc, allow_none, check,
                                         accepts)
        if default is not REQUIRED:
            self._values[name] = default
        else:
            self._values.pop(name, None)

    def copy(self, owner: str | Callable[[], str] | None = None,
             errors: Errors | None = None) -> OptionsDictionary:
        """The same declarations and values, for another owner (a list, dict or set value is
        copied, so that changing one owner's in place leaves the other's alone)."""
        new = OptionsDictionary(self._owner if owner is None else owner,
                                self._errors if errors is None else errors)
        new._decls = dict(self._decls)
        new._values = {name: type(value)(value) if type(value) in (list, dict, set) else value
                       for name, value in self._values.items()}
        return new

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            if name in self._decls:
                raise self._errors[0](f'{self.owner}: option {name!r} is required and was '
                                      f'not given') from None
            raise self._unknown(name, KeyError) from None

    def __setitem__(self, name: str, value: Any) -> None:
        decl = self._decls.get(name)
        if decl is None:
            raise self._unknown(name, UnknownOptionError)
        self._values[name] = decl.validate(value, self.owner, self._errors)

    def _unknown(self, name: str, kind: type[Exception]) -> Exception:
        declared = ', '.join(sorted(self._decls)) or 'none'
        return kind(f'{self.owner}: unknown option {name!r}{suggest(name, self._decls)} '
                    f'(declared options: {declared})')

    def __contains__(self, name: object) -> bool:
        return name in self._decls

    def __iter__(self) -> Iterator[str]:
        return iter(self._decls)

    def __len__(self) -> int:
        return len(self._decls)

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(name, value)`` of each option that has a value."""
        return ((name, self._values[name]) for name in self._decls if name in self._values)

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default`` when it has none (or is not declared)."""
        return self._values.get(name, default)

    def update(self, values: Mapping[str, Any]) -> None:
        """Set several options, each checked; unknown names first, all together."""
        unknown = [name for name in values if name not in self._decls]
        if unknown:
            raise self._unknown(unknown[0], UnknownOptionError)
        for name, value in values.items():
            self[name] = value

    def check_required(self) -> None:
        """Raise `OptionError` naming the first required option without a value."""
        for name in self._decls:
            if name not in self._values:
                raise self._errors[0](f'{self.owner}: option {name!r} is required and was '
                                      f'not given')

    def declaration(self, name: str) -> _Declaration:
        """What option ``name`` accepts (its default, types, values, bounds, desc)."""
        return self._decls[name]

    def to_table(self) -> list[dict[str, Any]]:
        """One dict per option (name, value, default, accepts, desc): for docs and the CLI."""
        return [{'name': d.name, 'value': self._values.get(d.name, REQUIRED),
                 'default': d.default, 'accepts': d.accepts, 'desc': d.desc}
                for d in self._decls.values()]

    def __getstate__(self) -> dict[str, Any]:
        return {'decls': self._decls, 'values': self._values, 'owner': self._owner,
                'errors': self._errors}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._decls, self._values, self._owner = state['decls'], state['values'], state['owner']
        self._errors = state.get('errors', _ERRORS)

    def __repr__(self) -> str:
        body = ', '.join(f'{k}={v!r}' for k, v in self.items())
        return f'OptionsDictionary({body})'


# _Declaration must pickle (a model holding an executor is shipped to workers)
def _decl_getstate(self: _Declaration) -> dict[str, Any]:
    return {name: getattr(self, name) for name in _Declaration.__slots__}


def _decl_setstate(self: _Declaration, state: dict[str, Any]) -> None:
    for name, value in state.items():
        setattr(self, name, value)


_Declaration.__getstate__ = _decl_getstate  # type: ignore[attr-defined]
_Declaration.__setstate__ = _decl_setstate  # type: ignore[attr-defined]


class _OptionAttribute:
    """Reads and writes a declared option as an attribute of its owner, checked."""

    def __init__(self, name: str, doc: str):
        self.name = name
        self.__doc__ = doc

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._declared[self.name]

    def __set__(self, obj: Any, value: Any) -> None:
        obj._declared[self.name] = value


def _defines_property(cls: type, name: str) -> bool:
    """Whether ``cls`` already gives ``name`` its own property (a data descriptor that is not
    an option's attribute): the option then reads through that property. A plain class
    attribute of the same name (a documented default) is replaced by the option, and so is
    `HasOptions.options` by an option named ``options``."""
    for klass in cls.__mro__:
        if name in klass.__dict__ and klass is not HasOptions:
            found = klass.__dict__[name]
            return hasattr(type(found), '__set__') and not isinstance(found, _OptionAttribute)
    return False


class HasOptions:
    """Mixin of classes with declared options.

    A subclass overrides the classmethod `declare_options` (calling ``super()`` first); the
    declarations run once per class. `_init_options` (called by the constructor with its
    option keywords) gives the instance its checked copy. Each declared option that the class
    does not define otherwise is also an attribute.
    """

    _option_template: OptionsDictionary = OptionsDictionary()
    #: The errors a bad value raises (see `OptionsDictionary`); a family of classes may raise
    #: subclasses that are also its own error.
    _option_errors: Errors = _ERRORS
    # the instance's options live here, not in an attribute 'options', which traits' objects
    # would read before an option of that name (`ScipyOptimizer.options`)
    _declared: OptionsDictionary

    @property
    def declared_options(self) -> OptionsDictionary:
        """This object's declared options, checked on every write."""
        return self._declared

    @property
    def options(self) -> OptionsDictionary:
        """This object's declared options (OpenMDAO 3's ``self.options``); a class that
        declares an option named ``options`` replaces this with that option."""
        return self._declared

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """Declare this class's options on ``options`` (subclasses: call super() first)."""

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        template = OptionsDictionary(cls.__name__)
        cls.declare_options(template)
        cls._option_template = template
        for name in template:
            if not _defines_property(cls, name):
                setattr(cls, name, _OptionAttribute(name, template.declaration(name).desc))
        # traits stores a value of a name without a trait straight in the instance: a traits
        # class gives each option's attribute a generic trait (as traits does for a property),
        # so that setting it goes through the option's check
        class_traits = cls.__dict__.get('__class_traits__')
        if class_traits is not None:
            for name in template:
                if class_traits.get(name) is None:
                    class_traits[name] = generic_trait

    def _option_owner(self) -> str:
        """How option messages name this object (default: its class name)."""
        return type(self).__name__

    def _init_options(self, values: Mapping[str, Any] | None = None) -> None:
        """Give this instance its options, set from ``values`` (each checked)."""
        options = self._declared = self._option_template.copy(self._option_owner,
                                                              self._option_errors)
        if values:
            options.update(values)
        options.check_required()

    def option_values(self) -> dict[str, Any]:
        """Name -> value of every option (what a saved model records)."""
        return dict(self.declared_options.items())
