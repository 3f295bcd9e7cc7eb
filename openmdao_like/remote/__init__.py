"""Remote objects: components living in other processes or hosts, used as if local.

A host runs an `ObjServerFactory` (``openmdao-like server start``); a client connects with
`connect_to_server` and creates components there, each in its own ObjServer process, as
`RemoteComponent` proxies that go into assemblies like local components::

    factory = connect_to_server('127.0.0.2', 18861, key=open('key').read())
    self.add('cfd', factory.create('paraboloid_plugin.Paraboloid'))

Every connection is authenticated (shared key, HMAC challenge both ways, optional TLS); servers
expose only declared methods and keep file operations inside their root. Credentials and the
connections kept for reuse belong to the current `openmdao_like.Session`.

This layer registers nothing itself: `openmdao_like.wiring` puts `remote_factory` in the factory
chain (for ``create(typname, server=...)``), the proxies' YAML node handler and the
``'isolate'`` version policy in persistence, and `proxy.remote_transfer` in the kernel's
connections.
"""

from .auth import generate_key, read_key_file, write_key_file
from .client import (FactoryProxy, RemoteFactory, connect_to_server, credentials_for,
                     read_server_file)
from .connection import CALL_TIMEOUT, LIVENESS, SHORT_TIMEOUT, ServerConnection
from .factory import ObjServerFactory
from .isolation import isolation_servers, register_isolation_server, unregister_isolation_server
from .proxy import RemoteComponent
from .service import SecureService, remote

#: The factory chain's link to servers: ``create(typname, server=...)``.
remote_factory = RemoteFactory()

__all__ = ['connect_to_server', 'ObjServerFactory', 'FactoryProxy', 'RemoteComponent',
           'RemoteFactory', 'remote_factory', 'ServerConnection', 'SecureService', 'remote',
           'generate_key', 'read_key_file', 'write_key_file', 'read_server_file',
           'credentials_for', 'register_isolation_server', 'unregister_isolation_server',
           'isolation_servers', 'CALL_TIMEOUT', 'SHORT_TIMEOUT', 'LIVENESS']
