"""Creating objects by type name: `create(typname, version=None, server=None, res_desc=None,
**ctor_args)` through a chain of factories.

::

    from openmdao_like import create
    comp = create('paraboloid_plugin.Paraboloid', version='1.0')

The default chain, which `openmdao_like.wiring` fills, is a `PkgResourcesFactory` (classes that
installed distributions register as entry points, groups in `GROUPS`), an `ImportFactory`
(``package.module.Class``), then a `DeferredFactory` for servers (``server=``) and one for
allocated resources (``res_desc=``), whose layers load on first use. Each factory returns None
when it cannot serve a request and the next is tried; when none can, `NameError` lists what
each said.
"""

from __future__ import annotations

from typing import Any, Iterable

from .base import GROUPS, Factory, TypeInfo
from .deferred import DeferredFactory
from .entry_points import PkgResourcesFactory
from .guard import check_type_name
from .importer import ImportFactory
from .manager import FactoryManager
from .provenance import distribution_of, installed_version
from .versions import version_matches

#: The chain that `create` and model loading use (filled, in its fixed order, by
#: `openmdao_like.wiring`).
factory_manager = FactoryManager()


def create(typname: str, version: str | None = None, server: Any = None,
           res_desc: dict | None = None, **ctor_args: Any) -> Any:
    """A new ``typname`` object from the first factory of the default chain that can make it;
    `NameError` saying what each factory answered when none can."""
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
           'ImportFactory', 'DeferredFactory', 'TypeInfo', 'GROUPS', 'distribution_of',
           'installed_version', 'version_matches', 'check_type_name']
