"""An object's settings: the values of its constructor arguments and declared options
(`openmdao_like.options`), read back from the attributes of the same names. Saving records them;
loading passes those of the class's own ``__init__`` and its declared options to the constructor
and sets the others (inherited arguments) afterwards."""

from __future__ import annotations

import functools
import inspect
import os
import types
import typing
from typing import Any

from traits.api import HasTraits

from ..errors import PersistenceError
from ..options import REQUIRED, OptionsDictionary

_STOP = (object, HasTraits)


@functools.lru_cache(maxsize=None)
def signature_params(cls: type) -> tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]:
    """(own, inherited, required): argument names of ``cls.__init__`` and the class's declared
    options (constructor keywords too), the argument names of the ``__init__``s further up the
    MRO, and the own ones without a default."""
    own: list[str] = []
    inherited: list[str] = []
    required: set[str] = set()
    seen_inits = set()
    first = True
    for klass in cls.__mro__:
        if klass in _STOP or klass.__module__.startswith('traits.'):
            break
        init = klass.__dict__.get('__init__')
        if init is None or init in seen_inits:
            continue
        seen_inits.add(init)
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            continue
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in own or \
                    p.name in inherited:
                continue
            (own if first else inherited).append(p.name)
            if first and p.default is p.empty:
                required.add(p.name)
        first = False
    options = _declared(cls)
    for name in options or ():
        if name not in own:
            own.append(name)
            if name in inherited:
                inherited.remove(name)
            if options.declaration(name).default is REQUIRED:
                required.add(name)
    return tuple(own), tuple(inherited), frozenset(required)


def _declared(cls: type) -> OptionsDictionary | None:
    """The declared options of ``cls`` (a `HasOptions` class), or None."""
    template = getattr(cls, '_option_template', None)
    return template if isinstance(template, OptionsDictionary) else None


@functools.lru_cache(maxsize=None)
def setting_types(cls: type) -> dict[str, tuple[tuple[type, ...], bool]]:
    """Argument name -> (the classes its annotation names, whether it names ``os.PathLike``),
    for the arguments of the ``__init__``s of ``cls`` and its bases whose annotation names any
    (``DOEGenerator | Callable | None`` names DOEGenerator; ``str | os.PathLike[str]`` names
    str and a path). An annotation that cannot be resolved names nothing."""
    found: dict[str, tuple[tuple[type, ...], bool]] = {}
    for klass in reversed(cls.__mro__):  # the nearest definition wins
        init = klass.__dict__.get('__init__')
        if init is None or klass in _STOP or klass.__module__.startswith('traits.'):
            continue
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # a forward reference or a type that only a type checker knows
            continue
        for name, hint in hints.items():
            members = _union_members(hint)
            classes = tuple(h for h in members if isinstance(h, type)
                            and h not in (type(None), typing.Any))
            is_path = any(h is os.PathLike or typing.get_origin(h) is os.PathLike
                          for h in members)
            if name != 'return' and (classes or is_path):
                found[name] = (classes, is_path)
    options = _declared(cls)
    for name in options or ():  # an option's annotated argument says more (a path)
        kinds = options.declaration(name).types or ()
        classes = tuple(k for k in kinds if k is not os.PathLike)
        if name not in found and kinds:
            found[name] = (classes, os.PathLike in kinds)
    return found


def _union_members(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(m for arg in typing.get_args(hint) for m in _union_members(arg))
    return (hint,)


def read_settings(obj: Any, where: str) -> dict[str, Any]:
    """``{argument: value}`` for every constructor argument of ``obj``'s class (and its bases)
    readable as an attribute of the same name. Raises `PersistenceError` when a required
    argument cannot be read back."""
    own, inherited, required = signature_params(type(obj))
    found: dict[str, Any] = {}
    for name in own + inherited:
        try:
            found[name] = getattr(obj, name)
        except AttributeError:
            if name in required:
                raise PersistenceError(
                    f'{where}: {type(obj).__name__}() needs argument {name!r}, but the object '
                    f'has no attribute {name!r} to read it back from; store it as '
                    f'self.{name} or save with fmt="pickle"') from None
    return found


def split_settings(cls: type, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(constructor keyword arguments, attributes to set after construction)."""
    own, _, _ = signature_params(cls)
    ctor = {k: v for k, v in settings.items() if k in own}
    later = {k: v for k, v in settings.items() if k not in own}
    return ctor, later
