"""Isolated versions: ``load(path, on_version_mismatch='isolate')`` creates each component whose
saved version is not the one installed here on a server whose environment has that version,
and puts a `RemoteComponent` for it in the loaded model.

Servers are registered per environment, e.g. one started from a virtual environment holding
plugin 1.0 while this process has 2.0::

    register_isolation_server(connect_to_server('127.0.0.2', 18861, key=key))
    top = load('model.yaml', on_version_mismatch='isolate')

Classes whose saved version is installed here stay local. For every other one the first
registered server that lists the class (``get_available_types``) at the saved version, as a
component, creates it. When some class has no such server, nothing is created and
`VersionMismatchError` lists, for each such class, its saved version and what each registered
server offers.

Only the YAML format can do this: a pickle rebuilds every object from the class installed
here, so loading one with ``'isolate'`` is refused (save the model in YAML).

The registered servers belong to the current `openmdao_like.Session` (which closes the
connections made in it when it ends); `openmdao_like.wiring` registers the policy.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..errors import RemoteError, VersionMismatchError
from ..factories import TypeInfo, version_matches
from ..persistence.header import Mismatch
from ..session import current_session
from .client import FactoryProxy, credentials_for

COMPONENT_GROUP = 'openmdao_like.component'


class _Registered:
    """One session's isolation servers, in the order they are tried."""

    def __init__(self) -> None:
        self.servers: list[FactoryProxy] = []
        self.owned: set[int] = set()  # ids of the proxies made here: closed on unregister
        self.lock = threading.Lock()


def _registered() -> _Registered:
    return current_session().hold('remote.isolation_servers', _Registered)


def _address(server: Any, what: str) -> tuple[str, int]:
    if isinstance(server, FactoryProxy):
        return server.host, server.port
    if isinstance(server, tuple) and len(server) == 2 and isinstance(server[0], str):
        return server[0], int(server[1])
    raise TypeError(f'{what}: expected a FactoryProxy (from connect_to_server) or (host, port), '
                    f'got {server!r}')


def register_isolation_server(server: FactoryProxy | tuple[str, int]) -> FactoryProxy:
    """Let ``on_version_mismatch='isolate'`` create objects on ``server``: a `FactoryProxy`, or
    the ``(host, port)`` of a server that `connect_to_server` reached before in this process.
    Servers are tried in the order registered; registering one again changes nothing."""
    host, port = _address(server, 'register_isolation_server')
    reg = _registered()
    with reg.lock:
        for known in reg.servers:
            if (known.host, known.port) == (host, port):
                return known
    if not isinstance(server, FactoryProxy):
        creds = credentials_for(host, port)
        if creds is None:
            raise ValueError(f'register_isolation_server: no credentials for the server '
                             f'{host}:{port} in this process; call connect_to_server({host!r}, '
                             f'{port}, key=...) first, or pass the FactoryProxy it returns')
        server = FactoryProxy(host, port, creds)
        owned = True
    else:
        owned = False
    with reg.lock:
        reg.servers.append(server)
        if owned:
            reg.owned.add(id(server))
    return server


def unregister_isolation_server(server: FactoryProxy | tuple[str, int]) -> None:
    """Stop using ``server`` (a `FactoryProxy` or ``(host, port)``) for isolated versions;
    objects created there stay until released."""
    host, port = _address(server, 'unregister_isolation_server')
    reg = _registered()
    with reg.lock:
        found = [s for s in reg.servers if (s.host, s.port) == (host, port)]
        if not found:
            raise ValueError(f'unregister_isolation_server: {host}:{port} is not registered '
                             f'(registered: {_names(reg.servers) or "none"})')
        reg.servers.remove(found[0])
        owned = id(found[0]) in reg.owned
        reg.owned.discard(id(found[0]))
    if owned:
        found[0].close()


def isolation_servers() -> list[FactoryProxy]:
    """The servers registered in the current session, in the order they are tried."""
    reg = _registered()
    with reg.lock:
        return list(reg.servers)


def _names(servers: list[FactoryProxy]) -> str:
    return ', '.join(f'{s.host}:{s.port}' for s in servers)


# -- the policy ------------------------------------------------------------------------------------
def isolate(mismatches: list[Mismatch], source: str) -> dict[str, Callable]:
    """The ``'isolate'`` version policy: a creator per mismatched class, each creating the
    class at its saved version on a registered server; `VersionMismatchError` if any class has
    no server."""
    servers = isolation_servers()
    offers: dict[FactoryProxy, list[TypeInfo] | str] = {}
    for server in servers:
        try:
            offers[server] = server.get_available_types()
        except (RemoteError, OSError) as exc:
            offers[server] = f'does not answer ({exc})'
    creators: dict[str, Callable] = {}
    missing: list[tuple[Mismatch, list[str]]] = []
    for m in mismatches:
        server, why = _server_for(m, servers, offers)
        if server is None:
            missing.append((m, why))
        else:
            creators[m.class_name] = _creator(server)
    if missing:
        raise VersionMismatchError(_refusal(source, missing, servers),
                                   [m for m, _ in missing])
    return creators


isolate.creates_elsewhere = True  # type: ignore[attr-defined]


def _server_for(m: Mismatch, servers: list[FactoryProxy],
                offers: dict[FactoryProxy, Any]) -> tuple[FactoryProxy | None, list[str]]:
    """The first server offering ``m``'s class at its saved version as a component, or None
    and what each server said."""
    said = []
    for server in servers:
        offer = offers[server]
        name = f'server {server.host}:{server.port}'
        if isinstance(offer, str):
            said.append(f'{name} {offer}')
            continue
        listed = [t for t in offer if t.name == m.class_name]
        if m.saved is not None:
            for info in listed:
                if info.group == COMPONENT_GROUP and version_matches(m.saved, info.version):
                    return server, said
        if not listed:
            said.append(f'{name} does not offer it')
        else:
            found = ', '.join(f'{t.version}' + ('' if t.group == COMPONENT_GROUP else
                                                f' (in entry-point group {t.group}: only '
                                                f'components can be isolated)')
                              for t in listed)
            said.append(f'{name} offers version {found}')
    return None, said


def _creator(server: FactoryProxy) -> Callable:
    def create_there(typname: str, version: str | None, ctor_args: dict) -> Any:
        return server.create(typname, version, **ctor_args)
    create_there.server = server  # type: ignore[attr-defined]
    return create_there


def _refusal(source: str, missing: list[tuple[Mismatch, list[str]]],
             servers: list[FactoryProxy]) -> str:
    lines = []
    for m, said in missing:
        lines.append(f'  {m}')
        if m.saved is None:
            lines.append('    the file does not say which version was saved')
        lines.extend(f'    {line}' for line in said)
    if servers:
        advice = ('Start a server in an environment where the saved versions are installed and '
                  'register it too')
        head = (f'{source}: saved with versions that are not installed here, and no '
                f'registered isolation server ({_names(servers)}) has them:')
    else:
        advice = 'Start a server in an environment where the saved versions are installed'
        head = (f'{source}: saved with versions that are not installed here, and no isolation '
                f'server is registered:')
    return '\n'.join([head, *lines,
                      f'{advice} (openmdao-like server start ...), then call '
                      f'openmdao_like.remote.register_isolation_server(connect_to_server(host, '
                      f'port, key=...)) before loading'])


__all__ = ['register_isolation_server', 'unregister_isolation_server', 'isolation_servers',
           'isolate']
