"""`DeferredFactory`: a link of the factory chain whose factory is made on first use.

The remote factory (``server=``) and the RAM factory (``res_desc=``) come from higher layers
that take time to import (rpyc, allocators). The wiring module puts a `DeferredFactory` for
each at its fixed place in the chain; the real factory is loaded only when a request it serves
arrives, so the chain's order never depends on what happened to be imported, and a plain
``create(typname)`` imports neither layer.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from .base import Factory, TypeInfo

__all__ = ['DeferredFactory']


class DeferredFactory(Factory):
    """Stands for the factory that ``load()`` returns, loading it on the first request for
    which ``serves(server, res_desc)`` is true.

    Parameters
    ----------
    name : str
        What it stands for, as shown in `NameError` messages (e.g. ``'remote'``).
    load : callable
        ``load() -> Factory``; called once, on first use.
    serves : callable
        ``serves(server, res_desc) -> bool``: whether a request is one for this factory.
    idle : str
        What `why_not` says about requests it does not serve.
    """

    def __init__(self, name: str, load: Callable[[], Factory],
                 serves: Callable[[Any, dict | None], bool], idle: str):
        self.name = name
        self._load = load
        self._serves = serves
        self._idle = idle
        self._factory: Factory | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f'DeferredFactory({self.name!r})'

    @property
    def factory(self) -> Factory | None:
        """The real factory, once loaded (None before)."""
        return self._factory

    def loaded(self) -> Factory:
        """The real factory, loaded now if it was not yet."""
        with self._lock:
            if self._factory is None:
                factory = self._load()
                if not isinstance(factory, Factory):
                    raise TypeError(f'{self!r}: load() should return a Factory, got '
                                    f'{type(factory).__name__}')
                self._factory = factory
            return self._factory

    def create(self, typname: str, version: str | None = None, server: Any = None,
               res_desc: dict | None = None, **ctor_args: Any) -> Any:
        if not self._serves(server, res_desc):
            return None
        return self.loaded().create(typname, version, server, res_desc, **ctor_args)

    def why_not(self, typname: str, version: str | None = None, server: Any = None,
                res_desc: dict | None = None) -> str:
        if not self._serves(server, res_desc):
            return self._idle
        return self.loaded().why_not(typname, version, server, res_desc)

    def find_class(self, typname: str, version: str | None = None) -> type | None:
        return None if self._factory is None else self._factory.find_class(typname, version)

    def get_available_types(self, groups: Any = None) -> list[TypeInfo]:
        return [] if self._factory is None else self._factory.get_available_types(groups)

    def type_info(self, cls: type) -> TypeInfo | None:
        return None if self._factory is None else self._factory.type_info(cls)
