"""Remote components in saved models: a saved model records where each remote object lives and
where its state was saved, never the object's data nor any key.

Saving (YAML node or pickle) asks the object's ObjServer to pickle the object (``save_state``)
and its factory to keep that file under ``states/`` below the factory's root (``keep_state``),
where it outlives the object. The record (a `Location`) holds the type and its version on the
server, the factory's and the ObjServer's addresses, the ObjServer's pid, the object's id and
directory, and that state file; the component's input values are saved beside it.

Loading, with the credentials that `connect_to_server` remembered for the factory's address in
the current `openmdao_like.Session` (which also keeps the factory connections for reuse, and
closes them when it ends):

1. the factory still serves the same object (same id, pid and port): reconnect to it;
2. else the saved state file is still there and the server restores it (a server restores only
   the states it kept since it started, for the owner role): `restore` the object from it;
3. else create a fresh ``type`` (at the saved version) and set the saved input values
   (logged as a warning saying why: outputs and internal state are those of a new object).

A server that does not answer, or no credentials for it, is a `PersistenceError` naming the
component, the server and what to do.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from typing import Any

from .. import tree
from ..errors import PersistenceError, describe as describe_value
from ..persistence.extensions import saving_model
from ..session import current_session
from .client import FactoryProxy, credentials_for
from .connection import ServerConnection
from .proxy import RemoteComponent

logger = logging.getLogger(__name__)

#: The file an ObjServer pickles its object into when a model is saved (then moved by the
#: factory's ``keep_state`` to ``states/`` below its root).
STATE_FILE = '.saved_state.pkl'
_RECORD_KEYS = {'type', 'version', 'factory', 'server', 'object_id', 'directory', 'state'}


@dataclass(frozen=True)
class Location:
    """Where a remote object lives and where its state was saved.

    Attributes
    ----------
    type, version : str, str or None
        The object's type name and its version on the server (None when the server does not
        list the type, e.g. a class from a plain module).
    factory_host, factory_port : str, int
        The ObjServerFactory that created it.
    server_host, server_port, pid : str, int, int
        The ObjServer holding it, and that process's pid (tells the same object from a new
        one on a reused port).
    object_id : int
        The factory's id of the object.
    directory : str or None
        The object's directory on the server.
    state : str or None
        The state file saved for it, relative to the factory's root (None: not saved).
    """

    type: str
    version: str | None
    factory_host: str
    factory_port: int
    server_host: str
    server_port: int
    pid: int
    object_id: int
    directory: str | None
    state: str | None

    @property
    def factory(self) -> str:
        """``host:port`` of the factory."""
        return f'{self.factory_host}:{self.factory_port}'

    def as_data(self) -> dict[str, Any]:
        """The record as a YAML node's ``remote`` mapping."""
        return {'type': self.type, 'version': self.version,
                'factory': {'host': self.factory_host, 'port': self.factory_port},
                'server': {'host': self.server_host, 'port': self.server_port, 'pid': self.pid},
                'object_id': self.object_id, 'directory': self.directory, 'state': self.state}

    @classmethod
    def from_data(cls, data: Any, where: str) -> 'Location':
        """The record from a node's ``remote`` mapping; `PersistenceError` naming what is
        wrong."""
        expected = ('expected {type, version, factory: {host, port}, server: {host, port, pid}, '
                    'object_id, directory, state}')
        if isinstance(data, dict) and set(data) - _RECORD_KEYS:
            raise PersistenceError(f'{where}: remote: unknown keys '
                                   f'{sorted(set(data) - _RECORD_KEYS)}; {expected}')
        try:
            factory, server = data['factory'], data['server']
            loc = cls(type=data['type'], version=data.get('version'),
                      factory_host=factory['host'], factory_port=factory['port'],
                      server_host=server['host'], server_port=server['port'],
                      pid=server['pid'], object_id=data['object_id'],
                      directory=data.get('directory'), state=data.get('state'))
        except (KeyError, TypeError):
            raise PersistenceError(f'{where}: remote: {expected}, got '
                                   f'{describe_value(data)}') from None
        checks = (('type', loc.type, str), ('factory.host', loc.factory_host, str),
                  ('server.host', loc.server_host, str), ('factory.port', loc.factory_port, int),
                  ('server.port', loc.server_port, int), ('server.pid', loc.pid, int),
                  ('object_id', loc.object_id, int))
        for key, value, typ in checks:
            if not isinstance(value, typ) or isinstance(value, bool):
                raise PersistenceError(f'{where}: remote.{key}: expected {typ.__name__}, got '
                                       f'{describe_value(value)}')
        for key, value in (('version', loc.version), ('directory', loc.directory),
                           ('state', loc.state)):
            if value is not None and not isinstance(value, str):
                raise PersistenceError(f'{where}: remote.{key}: expected a str or null, got '
                                       f'{describe_value(value)}')
        return loc


# -- saving ----------------------------------------------------------------------------------------
def locate(proxy: RemoteComponent, save_state: bool) -> Location:
    """Where ``proxy``'s object lives; with ``save_state``, its state is saved on the server
    first (and its version looked up there)."""
    where = f'{tree.where(proxy)} ({proxy._typname})'
    if proxy._released:
        raise PersistenceError(f'{where}: the remote object was released, so there is nothing '
                               f'to save; remove it from the model, or create it again')
    factory = proxy._factory
    if not isinstance(factory, FactoryProxy) or proxy._obj_id is None:
        raise PersistenceError(f'{where}: not created through a server factory '
                               f'(connect_to_server(...).create), so where it lives cannot be '
                               f'recorded')
    state = version = None
    if save_state:
        try:
            proxy._call('save_state', STATE_FILE)
            state = factory._call('keep_state', proxy._obj_id, STATE_FILE)
        except Exception as exc:
            raise PersistenceError(f'{where}: cannot save the state of the remote object on '
                                   f'{factory.host}:{factory.port}: {type(exc).__name__}: '
                                   f'{exc}') from exc
        version = _version_on(factory, proxy._typname)
    host, port = proxy.address
    return Location(proxy._typname, version, factory.host, factory.port, host, port,
                    proxy.remote_pid, proxy._obj_id, proxy.remote_directory, state)


def _version_on(factory: FactoryProxy, typname: str) -> str | None:
    """The version of ``typname`` that ``factory``'s server lists (None when not listed)."""
    for info in factory.get_available_types():
        if info.name == typname:
            return info.version
    return None


def proxy_state(proxy: RemoteComponent) -> dict[str, Any]:
    """What a saved pickle of ``proxy`` holds: its location (its state saved on the server
    first), its name, directory and input values; no connection, no outputs.

    Only `save` may pickle a proxy: any other copy (e.g. a model shipped to worker processes)
    would be a second proxy driving the same remote object, and each proxy sends only the
    inputs that it changed, so they would run it with each other's inputs."""
    if not saving_model():
        raise TypeError(f'cannot pickle {tree.where(proxy)} ({proxy._typname}): a remote '
                        f'component is pickled only by save(), which records where its object '
                        f'lives; a copy would drive the same remote object as this proxy')
    return {'location': asdict(locate(proxy, save_state=True)),
            'name': proxy.name, 'parent': proxy.parent, 'directory': proxy.directory,
            'inputs': {name: proxy.__dict__.get(name) for name, var in tree.variables(proxy).items()
                       if var.iotype == 'in'}}


# -- loading ---------------------------------------------------------------------------------------
_factories_lock = threading.Lock()


def factory_at(host: str, port: int, where: str) -> FactoryProxy:
    """A live connection to the factory at ``host:port`` (kept for reuse by the current
    session), with the credentials that session was given for it."""
    creds = credentials_for(host, port)
    if creds is None:
        raise PersistenceError(f'{where}: it lives on the server {host}:{port}, and this process '
                               f'has no credentials for it; call connect_to_server({host!r}, '
                               f'{port}, key=...) before loading')
    factories = current_session().hold('remote.model_factories', dict)
    with _factories_lock:
        proxy = factories.get((host, port))
    if proxy is not None and not proxy._conn.closed and proxy.credentials == creds \
            and proxy.ping():
        return proxy
    try:
        proxy = FactoryProxy(host, port, creds)
    except Exception as exc:
        raise PersistenceError(f'{where}: the server {host}:{port} that held it does not '
                               f'answer ({exc}); start it again and load again') from None
    with _factories_lock:
        factories[(host, port)] = proxy
    return proxy


def reconnect(loc: Location, where: str) -> RemoteComponent:
    """A proxy for the object ``loc`` describes: the same object if it still lives, else one
    restored from its saved state, else a fresh one (see the module docstring)."""
    where = f'{where} ({loc.type})' if where else loc.type
    factory = factory_at(loc.factory_host, loc.factory_port, where)
    try:
        alive = any(row['id'] == loc.object_id and row['pid'] == loc.pid and
                    row['port'] == loc.server_port for row in factory.list_objects())
        if alive:
            return _attach(factory, loc, where)
        if loc.state is None:
            why = 'no state was saved'
        elif not _exists(factory, loc.state):
            why = f'its saved state {loc.state} is not on the server any more'
        else:
            logger.info('%s: object %d is gone; restoring it on %s from %s', where,
                        loc.object_id, loc.factory, loc.state)
            try:
                return factory.restore(loc.type, loc.state)
            except PermissionError as exc:  # not kept since the server started, user role
                why = f'the server refuses to restore its saved state: {exc}'
        logger.warning('%s: object %d is gone and %s; creating a new %s on %s with the saved '
                       'inputs', where, loc.object_id, why, loc.type, loc.factory)
        return factory.create(loc.type, loc.version)
    except PersistenceError:
        raise
    except Exception as exc:
        raise PersistenceError(f'{where}: cannot reconnect to it on {loc.factory}: '
                               f'{type(exc).__name__}: {exc}') from exc


def _attach(factory: FactoryProxy, loc: Location, where: str) -> RemoteComponent:
    """A new proxy for the live object (the object itself is left alone if that fails)."""
    creds = factory.credentials
    conn = ServerConnection(loc.server_host, loc.server_port, creds.key, creds.tls,
                            creds.ca_file, timeout=factory.timeout, what=loc.type)
    try:
        proxy = RemoteComponent(conn, loc.type, loc.object_id, factory, loc.directory)
    except BaseException:
        conn.close()
        raise
    if proxy.remote_pid != loc.pid:  # a factory listing raced with the object's end
        proxy._released = True
        conn.close()
        raise PersistenceError(f'{where}: the ObjServer on {loc.server_host}:'
                               f'{loc.server_port} is not the saved one any more (pid '
                               f'{proxy.remote_pid}, saved {loc.pid}); load again')
    logger.info('%s: reconnected to object %d on %s:%d', where, loc.object_id, loc.server_host,
                loc.server_port)
    return proxy


def _exists(factory: FactoryProxy, rel: str) -> bool:
    try:
        factory.stat(rel)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def unpickled_proxy(location: dict[str, Any], where: str) -> RemoteComponent:
    """The proxy a pickle describes (the callable of `RemoteComponent.__reduce_ex__`)."""
    return reconnect(Location(**location), where)


# -- the YAML node ---------------------------------------------------------------------------------
def describe_node(describer: Any, proxy: RemoteComponent) -> dict[str, Any]:
    """A proxy's YAML node: class, ``remote`` (the `Location`), directory, input values."""
    from ..persistence.yaml_io import FlowMap
    where = tree.where(proxy)
    node: dict[str, Any] = {'class': describer.class_name(type(proxy), where)}
    record = locate(proxy, save_state=saving_model()).as_data()
    record['factory'], record['server'] = FlowMap(record['factory']), FlowMap(record['server'])
    node['remote'] = record
    if proxy.directory:
        node['directory'] = proxy.directory
    values = {}
    for name, var in tree.variables(proxy).items():
        if var.iotype == 'in':
            describer.class_name(type(var), f'{where}.{name}')
            values[name] = describer.value(proxy.__dict__.get(name), f'{where}.{name}')
    if values:
        node['variables'] = values
    return node


def build_node(builder: Any, node: dict[str, Any], where: str,
               existing: Any) -> RemoteComponent:
    """The proxy a YAML node describes (the builder then sets the saved input values)."""
    loc = Location.from_data(node.get('remote'), f'{builder.source}: {where or "<top>"}')
    if isinstance(existing, RemoteComponent) and not existing._released and \
            existing.address == (loc.server_host, loc.server_port) and \
            existing.remote_pid == loc.pid:
        proxy = existing
    else:
        try:
            proxy = reconnect(loc, where)
        except PersistenceError as exc:
            raise PersistenceError(f'{builder.source}: {exc}') from exc
        if isinstance(existing, RemoteComponent):  # made by the parent's configure: replaced
            logger.info('%s: releasing the %s made by configure; the saved one replaces it',
                        where, existing._typname)
            existing.release()
    proxy.directory = node.get('directory', '')
    return proxy
