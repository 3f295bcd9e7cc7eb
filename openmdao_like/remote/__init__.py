"""Remote objects: components living in other processes or hosts, used as if local.

A host runs an `ObjServerFactory` (``openmdao-like server start``); a client connects with
`connect_to_server` and creates components there, each in its own ObjServer process, as
`RemoteComponent` proxies that go into assemblies like local components::

    factory = connect_to_server('127.0.0.2', 18861, key=open('key').read())
    self.add('cfd', factory.create('paraboloid_plugin.Paraboloid'))

Every connection is authenticated (shared key, HMAC challenge both ways, optional TLS); servers
expose only declared methods and keep file operations inside their root.
"""

from .. import connections as _connections
from ..factories import factory_manager as _factory_manager
from ..persistence.extensions import register_node_handler as _register_node_handler
from .auth import generate_key, read_key_file, write_key_file
from .client import (FactoryProxy, RemoteFactory, connect_to_server, credentials_for,
                     read_server_file)
from .connection import CALL_TIMEOUT, LIVENESS, SHORT_TIMEOUT, ServerConnection
from .factory import ObjServerFactory
from .isolation import (isolation_servers, register_isolation_server,  # registers 'isolate'
                        unregister_isolation_server)
from .locations import build_node as _build_node, describe_node as _describe_node
from .proxy import RemoteComponent, remote_transfer
from .service import SecureService, remote

_connections.remote_transfer = remote_transfer
remote_factory = RemoteFactory()
_factory_manager.register_factory(remote_factory)
_register_node_handler(RemoteComponent, _describe_node, _build_node,
                       keys={'remote', 'directory', 'variables'})

__all__ = ['connect_to_server', 'ObjServerFactory', 'FactoryProxy', 'RemoteComponent',
           'RemoteFactory', 'remote_factory', 'ServerConnection', 'SecureService', 'remote',
           'generate_key', 'read_key_file', 'write_key_file', 'read_server_file',
           'credentials_for', 'register_isolation_server', 'unregister_isolation_server',
           'isolation_servers', 'CALL_TIMEOUT', 'SHORT_TIMEOUT', 'LIVENESS']
