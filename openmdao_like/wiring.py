"""The one place where the layers are plugged into each other.

A lower layer never imports a higher one (an import-linter contract in the test suite checks
it); it offers a small interface instead, and this module, at the top of the stack (imported by
``openmdao_like/__init__.py``), fills each in:

- the factory chain, in a fixed order: `PkgResourcesFactory`, `ImportFactory`, then the remote
  layer's factory (``create(..., server=...)``) and the RAM's (``create(..., res_desc=...)``),
  each a `DeferredFactory` whose layer is imported on its first request;
- the kernel's hooks: `Container.save` delegates to `persistence.save`, a new `Assembly` gets a
  `RunOnce` driver, and a connection touching a remote component compiles its transfer with
  the remote layer's `remote_transfer`;
- persistence: the YAML node handlers of `RemoteComponent` (a saved proxy records where its
  object lives) and of `HTTPComponent` (its service and component, never a credential), and
  the ``'isolate'`` version policy.

Everything of the remote and resources layers is named here and imported on first use, so
``import openmdao_like`` loads neither (nor rpyc).
"""

from __future__ import annotations

from typing import Any, Callable

from . import connections
from .assembly import Assembly
from .container import Container
from .drivers import RunOnce
from .factories import (DeferredFactory, Factory, ImportFactory, PkgResourcesFactory,
                        factory_manager)
from .persistence import Mismatch, register_node_handler, register_version_policy, save

#: The dotted name of the remote layer's proxy class, whose YAML nodes the remote layer writes.
REMOTE_COMPONENT = 'openmdao_like.remote.proxy.RemoteComponent'
#: The same for the HTTP layer's proxy.
HTTP_COMPONENT = 'openmdao_like.http.client.HTTPComponent'


# -- factories -----------------------------------------------------------------------------------
def _remote_factory() -> Factory:
    from .remote import remote_factory
    return remote_factory


def _ram_factory() -> Factory:
    from .resources import ram_factory
    return ram_factory


factory_manager.register_factory(PkgResourcesFactory())
factory_manager.register_factory(ImportFactory())
factory_manager.register_factory(DeferredFactory(
    'remote', _remote_factory, lambda server, res_desc: server is not None,
    'serves requests that name a server (server=...)'))
factory_manager.register_factory(DeferredFactory(
    'resources', _ram_factory, lambda server, res_desc: server is None and bool(res_desc),
    'serves requests with a resource description (res_desc=...) and no server'))


# -- kernel hooks --------------------------------------------------------------------------------
def _remote_transfer(*args: Any) -> Callable[[], None] | None:
    """`openmdao_like.remote.proxy.remote_transfer` (called only for remote components, which
    exist only once the remote layer is loaded)."""
    from .remote.proxy import remote_transfer
    return remote_transfer(*args)


Container._saver = save
Assembly.default_driver = RunOnce
connections.remote_transfer = _remote_transfer


# -- persistence ---------------------------------------------------------------------------------
def _describe_remote(describer: Any, proxy: Any) -> dict[str, Any]:
    from .remote.locations import describe_node
    return describe_node(describer, proxy)


def _build_remote(builder: Any, node: dict[str, Any], where: str, existing: Any) -> Any:
    from .remote.locations import build_node
    return build_node(builder, node, where, existing)


def _describe_http(describer: Any, proxy: Any) -> dict[str, Any]:
    from .http.client import describe_node
    return describe_node(describer, proxy)


def _build_http(builder: Any, node: dict[str, Any], where: str, existing: Any) -> Any:
    from .http.client import build_node
    return build_node(builder, node, where, existing)


def _isolate(mismatches: list[Mismatch], source: str) -> dict[str, Callable]:
    """The remote layer's ``'isolate'`` policy (see `openmdao_like.remote.isolation`)."""
    from .remote.isolation import isolate
    return isolate(mismatches, source)


_isolate.creates_elsewhere = True  # type: ignore[attr-defined]

register_node_handler(REMOTE_COMPONENT, _describe_remote, _build_remote,
                      keys={'remote', 'directory', 'variables'})
register_node_handler(HTTP_COMPONENT, _describe_http, _build_http, keys={'http', 'variables'})
register_version_policy('isolate', _isolate)
