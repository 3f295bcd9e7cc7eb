"""`ImportFactory`: creates a class named by its dotted import path (``pkg.mod.Class``)."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from .base import Factory, TypeInfo, remote_request
from .provenance import distribution_of


class ImportFactory(Factory):
    """Imports ``pkg.mod.Class`` and calls it. Returns None — never raises — for a name that
    does not import to a class, and for any request with a ``version``, a ``server`` or
    resources (an import cannot choose a version or a place)."""

    def find_class(self, typname: str, version: str | None = None) -> type | None:
        if version is not None:
            return None
        try:
            return _import_class(typname)
        except Exception:
            return None

    def create(self, typname: str, version: str | None = None, server: Any = None,
               res_desc: dict | None = None, **ctor_args: Any) -> Any:
        if server is not None or res_desc:
            return None
        cls = self.find_class(typname, version)
        return None if cls is None else cls(**ctor_args)

    def why_not(self, typname: str, version: str | None = None, server: Any = None,
                res_desc: dict | None = None) -> str:
        remote = remote_request(server, res_desc)
        if remote:
            return remote
        if version is not None:
            return f'version {version} requested; an import cannot choose a version'
        try:
            _import_class(typname)
        except Exception as exc:
            return f'{type(exc).__name__}: {exc}'
        return 'cannot create it'

    def type_info(self, cls: type) -> TypeInfo | None:
        dist, version = distribution_of(cls.__module__)
        return TypeInfo(f'{cls.__module__}.{cls.__qualname__}', version, dist, None)


def _import_class(typname: str) -> type:
    """The class at dotted path ``typname`` (the module part is imported; ``Outer.Inner`` works).

    Raises ImportError, AttributeError or TypeError saying what is wrong."""
    if not isinstance(typname, str) or '.' not in typname.strip('.'):
        raise ImportError(f'expected a dotted path "package.module.Class", got {typname!r}')
    parts = typname.split('.')
    if not all(p.isidentifier() for p in parts):
        raise ImportError(f'{typname!r} is not a dotted Python path')
    error: Exception | None = None
    for cut in range(len(parts) - 1, 0, -1):
        module_name = '.'.join(parts[:cut])
        try:
            obj: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not module_name.startswith(exc.name):
                raise  # the module exists but one of its own imports is missing
            error = exc
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                raise AttributeError(f'module {module_name!r} has no attribute '
                                     f'{".".join(parts[cut:])!r}')
        if not isinstance(obj, type):
            raise TypeError(f'{typname!r} is a {type(obj).__name__}, not a class')
        return obj
    raise ImportError(f'no module named {".".join(parts[:-1])!r}') from error
