"""Creating objects by type name: `create(typname, version=None, server=None, res_desc=None,
**ctor_args)` through a chain of factories.

::

    from openmdao_like import create
    comp = create('paraboloid_plugin.Paraboloid', version='1.0')

The default chain is a `PkgResourcesFactory` (classes that installed distributions register as
entry points, groups in `GROUPS`) then an `ImportFactory` (``package.module.Class``). Each
factory returns None when it cannot serve a request and the next is tried; when none can,
`NameError` lists what each said. The remote layer appends its server factory, which serves
requests that name a ``server`` or resources.
"""

from __future__ import annotations

from typing import Any, Iterable

from .base import GROUPS, Factory, TypeInfo
from .entry_points import PkgResourcesFactory
from .guard import check_type_name
from .importer import ImportFactory
from .manager import FactoryManager
from .provenance import distribution_of, installed_version
from .versions import version_matches

#: The chain that `create` and model loading use.
factory_manager = FactoryManager([PkgResourcesFactory(), ImportFactory()])


def create(typname: str, version: str | None = None, server: Any = None,
           res_desc: dict | None = None, **ctor_args: Any) -> Any:
    """A new ``typname`` object from the first factory of the default chain that can make it;
    `NameError` saying what each factory answered when none can."""
    if server is not None:
        import openmdao_like.remote  # noqa: F401  (registers the server factory)
    return factory_manager.create(typname, version, server, res_desc, **ctor_args)


def register_factory(factory: Factory, index: int | None = None) -> None:
    """Add ``factory`` to the default chain (at the end, or at ``index``)."""
    factory_manager.register_factory(factory, index)


def remove_factory(factory: Factory) -> None:
    """Take ``factory`` out of the default chain."""
    factory_manager.remove_factory(factory)


def get_available_types(groups: str | Iterable[str] | None = None) -> list[TypeInfo]:
    """(name, version, distribution, group) of every type the default chain can list."""
    return factory_manager.get_available_types(groups)


__all__ = ['create', 'register_factory', 'remove_factory', 'get_available_types',
           'factory_manager', 'FactoryManager', 'Factory', 'PkgResourcesFactory',
           'ImportFactory', 'TypeInfo', 'GROUPS', 'distribution_of', 'installed_version',
           'version_matches', 'check_type_name']
