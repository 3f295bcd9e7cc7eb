"""An ObjServer: the process that holds one remote object, in its own directory, serving its
proxies and its peers. An `ObjServerFactory` starts it (``python -m
openmdao_like.remote.objserver``), passes its settings as one JSON line on stdin and reads one
JSON line back (the port, or the error that stopped it). When that stdin closes (the factory
ended, even by ``kill -9``) the ObjServer exits.

One round trip runs the component: `ObjService.run` sets the changed inputs, fetches values
from peers (``rpull``), executes, sends values to peers (``rpush``) and returns the outputs
asked for.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
from typing import Any

from rpyc.utils.helpers import classpartial

from ..component import Component
from ..container import set_as_top
from ..factories import factory_manager
from ..variables.base import Variable
from ..variables.file import FileRef
from . import codec, files
from .auth import Authenticator, HostPolicy, server_tls_context
from .connection import ServerConnection
from .failures import capture
from .files import FileArea, FileService
from .service import SecureService, Server, remote

logger = logging.getLogger(__name__)


def describe_variable(var: Variable, value: Any) -> dict[str, Any]:
    """A variable's definition and value as plain data: its type's name for `create`, default,
    metadata. What cannot travel as plain data (an `Instance` of some class) becomes None."""
    meta = {k: v for k, v in var.var_metadata().items() if k not in ('type', 'instance_handler')}
    spec = {'type': factory_manager.type_info(type(var)).name, 'default': var.default_value,
            'metadata': meta, 'value': value}
    if not codec.travels(spec):
        spec = dict(spec, type='openmdao_like.Variable', default=None, value=None,
                    metadata={k: v for k, v in meta.items() if isinstance(v, (str, bool))})
    return spec


class ObjState:
    """What every connection to one ObjServer shares: the object, its directory, its peers."""

    def __init__(self, obj: Component, settings: dict[str, Any]):
        self.obj = obj
        self.typname = settings['typname']
        self.files = FileArea(os.getcwd())
        self.host = settings['host']
        self.key = _key(settings['keys']['owner'])
        self.peer_keys = {k: _key(v) for k, v in settings.get('peer_keys', {}).items()}
        self.liveness = settings.get('liveness', 10.0)
        self.tls_ca = settings.get('peer_ca_file')
        self.lock = threading.RLock()
        self._peers: dict[tuple[str, int], ServerConnection] = {}
        self._peers_lock = threading.Lock()

    def peer(self, host: str, port: int, tls: bool) -> ServerConnection:
        """A connection (kept for reuse) to the ObjServer at ``host:port``, made from this
        server's own address so that the peer's allowed hosts see who calls."""
        with self._peers_lock:
            conn = self._peers.get((host, port))
            if conn is None or conn.closed:
                key = self.peer_keys.get(f'{host}:{port}', self.peer_keys.get(host, self.key))
                conn = ServerConnection(host, port, key, tls=tls, ca_file=self.tls_ca,
                                        bind=self.host, liveness=self.liveness,
                                        what=f'peer of {self.typname}')
                self._peers[(host, port)] = conn
            return conn


class ObjService(FileService, SecureService):
    """The remote interface of one object."""

    def __init__(self, state: ObjState):
        self.state = state
        self.files = state.files
        #: what `run` fetches and exchanges for this connection's proxy (see `set_plan`)
        self.plan: tuple = ((), (), ())

    # -- description ----------------------------------------------------------------------------
    @remote()
    def describe(self) -> tuple:
        """The object's class and variables (definitions and current values), encoded."""
        obj = self.state.obj
        with self.state.lock:
            info = {'class': self.state.typname, 'pid': os.getpid(), 'directory': os.getcwd(),
                    'variables': {name: describe_variable(var, getattr(obj, name))
                                  for name, var in obj._vars().items()}}
            return codec.pack(info)

    @remote()
    def ping(self) -> str:
        """'pong' (a liveness check)."""
        return 'pong'

    # -- values ---------------------------------------------------------------------------------
    @remote()
    def fetch(self, names: tuple) -> tuple:
        """The current values of variables ``names``, encoded."""
        obj = self.state.obj
        with self.state.lock:
            return codec.pack({name: getattr(obj, name) for name in names})

    @remote()
    def receive(self, packet: tuple) -> None:
        """Set variables from a packed ``{name: value}`` (from a proxy or a peer)."""
        values = codec.unpack(packet, owner=self.state.obj)
        with self.state.lock:
            self._set(values)

    @remote()
    def run(self, inputs: tuple | None, plan: tuple | None = None) -> tuple:
        """Set the inputs given, fetch from peers, run, send to peers and return the planned
        outputs' values: one component execution, one round trip.

        ``plan`` (sent when the proxy's model was compiled, then kept for this connection):
        the output names to return, in order; ``rpull`` links to fetch from peers first and
        ``rpush`` links to send after, each ``(host, port, tls, links)``.
        """
        if plan is not None:
            self.plan = plan
        obj = self.state.obj
        fetch, pulls, pushes = self.plan
        with self.state.lock:
            if inputs is not None:
                self._set(codec.unpack(inputs, owner=obj))
            for host, port, tls, links in pulls:
                self._pull(self.state.peer(host, port, tls), links)
            obj.run()
            for host, port, tls, links in pushes:
                self._push(self.state.peer(host, port, tls), links)
            return codec.pack(tuple(getattr(obj, name) for name in fetch))

    def _set(self, values: dict[str, Any]) -> None:
        obj = self.state.obj
        for name, value in values.items():
            setattr(obj, name, value)

    def _pull(self, peer: ServerConnection, links: tuple) -> None:
        """Fetch linked values from ``peer`` (rpull); files are copied server to server."""
        plain = [link for link in links if not link[4]]
        if plain:
            got = codec.unpack(peer.call('fetch', tuple(src for src, *_ in plain)))
            self._set({dest: _scaled(got[src], scale, offset)
                       for src, dest, scale, offset, _ in plain})
        for src, dest, _, _, target in (link for link in links if link[4]):
            ref = codec.unpack(peer.call('fetch', (src,)))[src]
            if ref is None:
                self._set({dest: None})
                continue
            files.download(peer.call, ref.path, self.files.resolve(target))
            self._set({dest: FileRef(target, self.state.obj, ref.binary, ref.content_type)})

    def _push(self, peer: ServerConnection, links: tuple) -> None:
        """Send linked values to ``peer`` (rpush); files are copied server to server."""
        obj = self.state.obj
        values: dict[str, Any] = {}
        for src, dest, scale, offset, target in links:
            value = getattr(obj, src)
            if target and value is not None:
                files.upload(peer.call, value.abspath(), target)
                value = FileRef(target, None, value.binary, value.content_type)
            values[dest] = _scaled(value, scale, offset)
        peer.call('receive', codec.pack(values))

    # -- persistence ----------------------------------------------------------------------------
    @remote()
    def save_state(self, rel: str) -> str:
        """Pickle the object into ``rel`` (below this server's directory); return its path."""
        from ..persistence import save
        path = self.files.resolve(rel)
        with self.state.lock:
            save(self.state.obj, path, fmt='pickle')
        return path


def _scaled(value: Any, scale: float, offset: float) -> Any:
    return value if scale == 1.0 and offset == 0.0 else value * scale + offset


def _key(text: str) -> bytes:
    return base64.b64decode(text)


def _watch_parent() -> None:
    """Exit when stdin (the pipe from the factory) closes: the factory is gone."""
    try:
        while sys.stdin.buffer.read(1 << 16):
            pass
    finally:
        logger.info('factory gone: exiting')
        os._exit(0)


def _build(settings: dict[str, Any]) -> Component:
    """The object: created fresh by type name, or loaded from a saved state."""
    if settings.get('state'):
        from ..persistence import load
        obj = load(settings['state'], directory=os.getcwd())
        if not isinstance(obj, Component):
            raise TypeError(f'{settings["state"]}: holds a {type(obj).__name__}, expected a '
                            f'Component')
        return obj
    typname = settings['typname']
    cls = factory_manager.find_class(typname, settings.get('version'))
    if not (isinstance(cls, type) and issubclass(cls, Component)):
        raise TypeError(f'{typname}: expected a Component type to serve, got {cls!r}')
    if getattr(cls, 'runs_commands', False) and not settings.get('allow_shell'):
        raise PermissionError(f'{typname}: it runs commands, and this server does not allow '
                              f'shell access (start it with --allow-shell)')
    args = codec.loads(*_decode_blob(settings.get('ctor_args')))
    return set_as_top(cls(**args), os.getcwd())


def _decode_blob(blob: Any) -> tuple[bytes, tuple[bytes, ...]]:
    if not blob:
        return codec.dumps({})
    return base64.b64decode(blob[0]), tuple(base64.b64decode(b) for b in blob[1])


def encode_blob(payload: bytes, buffers: tuple[bytes, ...]) -> list:
    """An encoded value as JSON-safe text (for the settings line)."""
    return [base64.b64encode(payload).decode(), [base64.b64encode(b).decode() for b in buffers]]


def main() -> None:
    """Read settings from stdin, build the object, listen, report the port, serve."""
    line = sys.stdin.buffer.readline()
    out = sys.stdout
    try:
        settings = json.loads(line)
        logging.basicConfig(level=settings.get('log_level', logging.INFO),
                            filename='objserver.log',
                            format='%(asctime)s %(levelname)s %(name)s: %(message)s')
        tls = settings.get('tls')
        keys = {role: _key(key) for role, key in settings['keys'].items()}
        auth = Authenticator(keys, HostPolicy(settings.get('allowed_hosts')),
                             server_tls_context(*tls) if tls else None)
        if settings.get('runner'):
            from .runner_service import RunnerService, load_runner
            service = classpartial(RunnerService, load_runner(settings['runner']))
        else:
            service = classpartial(ObjService, ObjState(_build(settings), settings))
        server = Server(service, settings['host'], 0, auth, settings.get('liveness', 10.0))
        server._listen()
    except BaseException as exc:  # reported to the factory, which re-raises it for the client
        out.write(json.dumps({'error': capture(exc)}) + '\n')
        out.flush()
        sys.exit(1)
    threading.Thread(target=_watch_parent, daemon=True).start()
    out.write(json.dumps({'port': server.port, 'pid': os.getpid()}) + '\n')
    out.flush()
    logger.info('serving %s on %s:%d', settings['typname'], settings['host'], server.port)
    try:
        server.start()
    finally:
        server.close()


if __name__ == '__main__':
    main()
