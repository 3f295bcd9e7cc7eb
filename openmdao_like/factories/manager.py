"""`FactoryManager`: a chain of factories tried in order; the module-level `create` uses the
default chain (entry points, dotted imports, then servers and allocated resources)."""

from __future__ import annotations

import threading
from typing import Any, Iterable

from .base import Factory, TypeInfo
from .versions import version_key


class FactoryManager:
    """Creates objects by type name through its factories, in order.

    Thread-safe: the chain is replaced as a whole under a lock, and `create` walks the chain it
    found when called.
    """

    def __init__(self, factories: Iterable[Factory] = ()):
        self._lock = threading.Lock()
        self._factories: tuple[Factory, ...] = ()
        for factory in factories:
            self.register_factory(factory)

    @property
    def factories(self) -> tuple[Factory, ...]:
        """The chain, in the order it is tried."""
        return self._factories

    def register_factory(self, factory: Factory, index: int | None = None) -> None:
        """Add ``factory`` to the end of the chain (or at position ``index``)."""
        if not isinstance(factory, Factory):
            raise TypeError(f'register_factory: expected a Factory (with create(typname, '
                            f'version, server, res_desc, **ctor_args)), got '
                            f'{type(factory).__name__}')
        with self._lock:
            if factory in self._factories:
                raise ValueError(f'register_factory: {factory!r} is already registered')
            chain = list(self._factories)
            chain.insert(len(chain) if index is None else index, factory)
            self._factories = tuple(chain)

    def remove_factory(self, factory: Factory) -> None:
        """Take ``factory`` out of the chain."""
        with self._lock:
            if factory not in self._factories:
                raise ValueError(f'remove_factory: {factory!r} is not registered (registered: '
                                 f'{", ".join(map(repr, self._factories)) or "none"})')
            self._factories = tuple(f for f in self._factories if f is not factory)

    def create(self, typname: str, version: str | None = None, server: Any = None,
               res_desc: dict | None = None, **ctor_args: Any) -> Any:
        """A new object of type ``typname`` from the first factory that can make it.

        Raises `NameError` listing what each factory said when none can.
        """
        _check_typname(typname)
        chain = self._factories
        for factory in chain:
            obj = factory.create(typname, version=version, server=server, res_desc=res_desc,
                                 **ctor_args)
            if obj is not None:
                return obj
        raise NameError(self._refusal(chain, typname, version, server, res_desc))

    def find_class(self, typname: str, version: str | None = None) -> type:
        """The class ``typname`` (``version``) without creating an object; `NameError` when no
        factory provides it here."""
        _check_typname(typname)
        chain = self._factories
        for factory in chain:
            cls = factory.find_class(typname, version)
            if cls is not None:
                return cls
        raise NameError(self._refusal(chain, typname, version, None, None))

    def type_info(self, cls: type) -> TypeInfo:
        """How ``cls`` is named for `create` (entry-point name if it has one, else its dotted
        path) and the distribution and version that provide it."""
        for factory in self._factories:
            info = factory.type_info(cls)
            if info is not None:
                return info
        return TypeInfo(f'{cls.__module__}.{cls.__qualname__}', None, None, None)

    def get_available_types(self, groups: str | Iterable[str] | None = None) -> list[TypeInfo]:
        """Every type the factories can list, sorted by name then version. ``groups`` limits
        them to entry-point groups (``'component'`` or ``'openmdao_like.component'``)."""
        found = {info for factory in self._factories
                 for info in factory.get_available_types(groups)}
        return sorted(found, key=lambda t: (t.name, version_key(t.version)))

    @staticmethod
    def _refusal(chain: tuple[Factory, ...], typname: str, version: str | None, server: Any,
                 res_desc: dict | None) -> str:
        wanted = typname if version is None else f'{typname} (version {version})'
        if not chain:
            return f'cannot create {wanted!r}: no factory is registered'
        lines = [f'cannot create {wanted!r}: no factory could make it:']
        for factory in chain:
            try:
                reason = factory.why_not(typname, version, server, res_desc)
            except Exception as exc:  # explaining must not hide the original problem
                reason = f'(could not say why: {type(exc).__name__}: {exc})'
            lines.append(f'  {factory!r}: {reason}')
        lines.append(f'Is the distribution providing {typname.partition(".")[0]!r} installed? '
                     f'`openmdao-like plugin list` shows what is.')
        return '\n'.join(lines)


def _check_typname(typname: Any) -> None:
    if not isinstance(typname, str) or not typname.strip():
        raise TypeError(f'create: expected a type name such as "package.module.Class", got '
                        f'{typname!r} ({type(typname).__name__})')
