"""An ObjServer: the process that holds one remote object, in its own directory, serving its
proxies and its peers. An `ObjServerFactory` starts it (``python -P -m
openmdao_like.remote.serve_object`` with an absolute PYTHONPATH: its directory, where clients
upload, is never on ``sys.path``), passes its settings as one JSON line on stdin and reads one
JSON line back (the port, or the error that stopped it) on the report channel: the process's
original stdout, which nothing else writes to (``sys.stdout`` and file descriptor 1 go to the
log). When that stdin closes (the factory ended, even by ``kill -9``) the ObjServer exits.

One round trip runs the component: `ObjService.run` sets the changed inputs, fetches values
from peers (``rpull``), executes, sends values to peers (``rpush``) and returns the outputs
asked for.

Started by an MPI launcher, the ObjServer runs as several ranks holding the same object; only
rank 0 serves, and each run executes on every rank (see `openmdao_like.remote.spmd`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
from typing import Any, NoReturn

from rpyc.utils.helpers import classpartial

from .. import tree
from ..component import Component
from ..container import set_as_top
from ..factories import factory_manager
from ..variables.base import Variable
from ..variables.file import FileRef
from ..factories import check_type_name
from . import codec, files, spmd, states
from .auth import Authenticator, HostPolicy, server_tls_context
from .connection import ServerConnection
from .failures import capture
from .files import FileArea, FileService
from .limits import Limits
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
    """What every connection to one ObjServer shares: the object, its directory, its peers,
    and (under MPI) its ranks with the inputs set since the last run, which travel with the
    next one."""

    def __init__(self, obj: Component, settings: dict[str, Any],
                 group: spmd.Group | None = None):
        self.obj = obj
        self.group = group
        self.pending: dict[str, Any] | None = None if group is None else {}
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

    def execute(self) -> None:
        """Run the object: here, or on every rank with the inputs set since the last run."""
        if self.group is None:
            self.obj.run()
            return
        values, self.pending = self.pending, {}
        packet = codec.dumps(values) if values else None
        _, problems = self.group.run(packet, self.obj.run)
        if problems:
            raise self.group.failure(problems)

    def follow(self, packet: tuple | None) -> None:
        """One run on a rank other than 0: the inputs rank 0 set since the last run, then
        the object's own run."""
        obj = self.obj
        if packet is not None:
            for name, value in codec.loads(*packet, owner=obj).items():
                setattr(obj, name, value)
        obj.run()


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
                                  for name, var in tree.variables(obj).items()}}
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
            self.state.execute()
            for host, port, tls, links in pushes:
                self._push(self.state.peer(host, port, tls), links)
            return codec.pack(tuple(getattr(obj, name) for name in fetch))

    def _set(self, values: dict[str, Any]) -> None:
        obj, pending = self.state.obj, self.state.pending
        for name, value in values.items():
            setattr(obj, name, value)
            if pending is not None:
                pending[name] = value

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
        """Pickle the object into ``rel`` (below this server's directory) and sign it, so that
        its factory may keep it and restore it later (see `states`); return its path."""
        from ..persistence import save
        path = self.files.resolve(rel)
        with self.state.lock:
            save(self.state.obj, path, fmt='pickle')
            states.sign(self.state.key, path)
        return path


def _scaled(value: Any, scale: float, offset: float) -> Any:
    return value if scale == 1.0 and offset == 0.0 else value * scale + offset


def _key(text: str) -> bytes:
    return base64.b64decode(text)


def _watch_parent(group: spmd.Group | None) -> None:
    """Exit when stdin (the pipe from the factory) closes: the factory is gone. Under MPI every
    rank ends (a launcher such as srun would otherwise wait for the others)."""
    try:
        while sys.stdin.buffer.read(1 << 16):
            pass
    finally:
        logger.info('factory gone: exiting')
        if group is not None:
            group.abort()
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
    typname = check_type_name(settings['typname'])
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


def _load(line: bytes, group: spmd.Group | None) -> tuple[dict[str, Any], Any]:
    """The settings and what they describe: the object's `ObjState`, or a case runner."""
    settings = json.loads(line)
    rank = '' if group is None else f'rank {group.rank} '
    logging.basicConfig(level=settings.get('log_level', logging.INFO),
                        filename='objserver.log',
                        format=f'%(asctime)s {rank}%(levelname)s %(name)s: %(message)s')
    if settings.get('runner'):
        from .runner_service import load_runner
        return settings, load_runner(settings['runner'])
    return settings, ObjState(_build(settings), settings, group)


def _follow(group: spmd.Group, settings: dict[str, Any], target: Any) -> NoReturn:
    """A rank other than 0: run what rank 0 sends, for good."""
    if settings.get('runner'):
        from .runner_service import follow_cases
        follow_cases(group, target)
    group.follow(target.follow)


def _report_channel() -> Any:
    """The original stdout, kept for the one reply to the factory; from now on fd 1 (and so
    ``print``, in this process and its children) goes to stderr, the log."""
    channel = os.fdopen(os.dup(1), 'w')
    os.dup2(2, 1)
    return channel


def main() -> None:
    """Read settings from stdin, build the object, listen, report the port, serve. Under an
    MPI launcher every rank builds the object and only rank 0 serves (see `spmd`)."""
    report = _report_channel()
    group = spmd.join()
    leader = group is None or group.leader
    line = sys.stdin.buffer.readline() if leader else b''
    try:
        if group is None:
            settings, target = _load(line, None)
        else:
            line = group.share(line)
            settings, target = group.all_ok(lambda: _load(line, group))
            if not leader:
                _follow(group, settings, target)
        tls = settings.get('tls')
        keys = {role: _key(key) for role, key in settings['keys'].items()}
        auth = Authenticator(keys, HostPolicy(settings.get('allowed_hosts')),
                             server_tls_context(*tls) if tls else None,
                             Limits.from_data(settings.get('limits')))
        if settings.get('runner'):
            from .runner_service import RunnerService
            service = classpartial(RunnerService, target, group)
        else:
            service = classpartial(ObjService, target)
        server = Server(service, settings['host'], 0, auth, settings.get('liveness', 10.0))
        server._listen()
    except BaseException as exc:  # reported to the factory, which re-raises it for the client
        if leader:
            report.write(json.dumps({'error': capture(exc)}) + '\n')
            report.flush()
        sys.exit(1)
    threading.Thread(target=_watch_parent, args=(group,), daemon=True).start()
    report.write(json.dumps({'port': server.port, 'pid': os.getpid()}) + '\n')
    report.close()
    logger.info('serving %s on %s:%d', settings['typname'], settings['host'], server.port)
    try:
        server.start()
    finally:
        server.close()


if __name__ == '__main__':
    main()
