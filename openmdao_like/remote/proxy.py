"""`RemoteComponent`: the local stand-in for a component living in an ObjServer. It mirrors the
remote variables (same types and metadata, fetched once) so `connect` checks them like local
ones, and runs the remote component in one round trip: changed inputs, run, the outputs the
assembly needs.

Link styles, seen from the assembly's process:

- ``push`` (default): a remote source's output comes back with its run's answer;
- ``pull``: it is fetched when something reads it (the destination's transfer, a driver);
- ``rpush``/``rpull`` between two remote components: the source's server sends the value to
  the destination's server (or the destination's server fetches it) inside the run call; the
  value never passes through this process, and reading it here fetches it.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import numpy as np

from .. import tree
from ..component import Component
from ..connections import Connection
from ..container import set_connected
from ..errors import RemoteError, name_component
from ..factories import factory_manager
from ..variables.array import Array
from ..variables.base import Variable
from ..variables.file import File, FileRef
from . import codec, files
from .connection import SHORT_TIMEOUT, ServerConnection

logger = logging.getLogger(__name__)

_LAZY_LINKS = ('pull', 'rpush', 'rpull')


def build_variable(spec: dict[str, Any], where: str) -> Variable:
    """A local variable like the remote one ``spec`` describes (a plain `Variable` when its
    type cannot be built here, e.g. an `Instance` of a remote-only class)."""
    try:
        cls = factory_manager.find_class(spec['type'])
        if isinstance(cls, type) and issubclass(cls, Variable):
            return cls(spec['default'], **spec['metadata'])
    except Exception as exc:
        logger.debug('%s: mirrored as a plain Variable: %s', where, exc)
    return Variable(None, **spec['metadata'])


class RemoteComponent(Component):
    """A proxy for a component served by an ObjServer; add it to an assembly like a local one.

    Obtained from ``factory.create(...)`` (see `connect_to_server`). ``release()`` ends the
    remote object.
    """

    is_remote = True
    _stale: frozenset | set = frozenset()

    def __init__(self, connection: ServerConnection, typname: str, obj_id: int | None = None,
                 factory: Any = None, directory: str | None = None):
        super().__init__()
        self._conn = connection
        self._typname = typname
        self._obj_id = obj_id
        self._factory = factory
        self.remote_directory = directory
        self._sent: dict[str, Any] = {}
        self._stale = set()
        self._plan_fetch: tuple[str, ...] = ()
        self._plan_pulls: tuple = ()
        self._plan_pushes: tuple = ()
        self._plan_sent = False
        self._send_names: tuple[str, ...] = ()
        self._fed_arrays: frozenset = frozenset()
        self._lazy_after_run: frozenset = frozenset()
        self._released = False
        info = codec.unpack(self._call('describe', timeout=SHORT_TIMEOUT), owner=self)
        self.remote_pid = info['pid']
        for name, spec in info['variables'].items():
            self.add_trait(name, build_variable(spec, f'{typname}.{name}'))
            self.__dict__[name] = spec['value']
            if spec['metadata'].get('iotype') == 'in':
                self._sent[name] = _snapshot(spec['value'])
        self._var_cache = None
        self._compile_plan()

    # -- identity -------------------------------------------------------------------------------
    @property
    def typname(self) -> str:
        """The remote object's type name."""
        return self._typname

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the ObjServer holding the object."""
        return self._conn.host, self._conn.port

    @property
    def remote_location(self) -> str:
        """``'host:port'`` of the ObjServer holding the object."""
        return f'{self._conn.host}:{self._conn.port}'

    def _where(self) -> str:
        return self.get_pathname() or self.name or self._typname

    def __repr__(self) -> str:
        return f'<RemoteComponent {tree.where(self)} ({self._typname}) on {self._conn.host}:' \
               f'{self._conn.port}>'

    # -- calls ----------------------------------------------------------------------------------
    def _call(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        if self._released:
            raise RemoteError(f'{tree.where(self)}: the remote {self._typname} was released')
        return self._conn.call(name, *args, timeout=timeout)

    def __getattribute__(self, name: str) -> Any:
        if name in Component.__getattribute__(self, '_stale'):
            Component.__getattribute__(self, 'refresh')((name,))
        return Component.__getattribute__(self, name)

    def refresh(self, names: tuple[str, ...] | None = None) -> None:
        """Fetch variables ``names`` (default: every variable) from the remote object."""
        names = tuple(tree.variables(self)) if names is None else tuple(names)
        values = codec.unpack(self._call('fetch', names), owner=self)
        store = self.__dict__
        for name, value in values.items():
            store[name] = value
        self._stale.difference_update(names)

    # -- running --------------------------------------------------------------------------------
    def run(self, force: bool = False, case_uuid: Any = None) -> None:
        """Move connected inputs in, then one round trip: send the changed inputs, run remotely
        (with the peer transfers of rpush/rpull links), bring back the outputs needed here."""
        for xfer in self._in_xfers:
            xfer()
        try:
            self.execute()  # never in a local directory: the object runs in its own
        except Exception as exc:
            name_component(exc, self._where(), f'remote {self._typname}')
            raise
        self.exec_count += 1

    def execute(self) -> None:
        """Run remotely: one round trip (see `run`)."""
        if self._plan_sent:
            answer = self._call('run', self._changed_inputs())
        else:
            answer = self._call('run', self._changed_inputs(),
                                (self._plan_fetch, self._plan_pulls, self._plan_pushes))
            self._plan_sent = True
        values = codec.unpack(answer, owner=self)
        store = self.__dict__
        for name, value in zip(self._plan_fetch, values):
            store[name] = value
        if self._lazy_after_run:
            self._stale.update(self._lazy_after_run)

    def _changed_inputs(self) -> tuple | None:
        """The inputs whose value differs from what the remote object last received."""
        store, sent, fed = self.__dict__, self._sent, self._fed_arrays
        changed = {}
        for name in self._send_names:
            value = store.get(name)
            if name in fed:  # arrays moved in by a connection: sent as they are, no compare
                changed[name] = value
            elif not _same(value, sent.get(name)):
                changed[name] = value
                sent[name] = _snapshot(value)
        return codec.pack(changed) if changed else None

    # -- plan -----------------------------------------------------------------------------------
    def check_config(self) -> None:
        """Compile what each run sends, fetches, and asks the servers to exchange."""
        self._compile_plan()

    def _compile_plan(self) -> None:
        conns: list[Connection] = list(getattr(self.parent, '_connections', {}).values())
        peers = getattr(self.parent, '_children', {})
        me = self.name if self.parent is not None else None
        outputs = [n for n, v in tree.variables(self).items() if v.iotype == 'out']
        consumers: dict[str, list[str]] = {}
        pushes: dict[tuple, list] = {}
        pulls: dict[tuple, list] = {}
        fed_by_peer: set[str] = set()
        for c in conns:
            src, dst = peers.get(c.src_comp), peers.get(c.dest_comp)
            both_remote = src is not None and dst is not None and src.is_remote and dst.is_remote
            if c.src_comp == me and me is not None:
                consumers.setdefault(c.src_var, []).append(
                    c.link if both_remote or c.link in ('push', 'pull') else 'push')
                if c.link == 'rpush' and both_remote:
                    pushes.setdefault(_peer_key(dst), []).append(_link(c, dst))
            if c.dest_comp == me and me is not None and both_remote and c.link in ('rpush',
                                                                                 'rpull'):
                fed_by_peer.add(c.dest_var)
                if c.link == 'rpull':
                    pulls.setdefault(_peer_key(src), []).append(_link(c, self))
        lazy = {n for n, links in consumers.items() if all(k in _LAZY_LINKS for k in links)}
        self._plan_sent = False
        self._conn.what = f'{tree.where(self)} ({self._typname})'
        self._plan_fetch = tuple(n for n in outputs if n not in lazy)
        self._plan_pushes = tuple(key + (tuple(links),) for key, links in pushes.items())
        self._plan_pulls = tuple(key + (tuple(links),) for key, links in pulls.items())
        self._send_names = tuple(n for n, v in tree.variables(self).items()
                                 if v.iotype == 'in' and n not in fed_by_peer)
        self._fed_arrays = frozenset(c.dest_var for c in conns if c.dest_comp == me and
                                     me is not None and c.dest_var not in fed_by_peer and
                                     isinstance(tree.variables(self)[c.dest_var], Array))
        self._lazy_after_run = frozenset(lazy | fed_by_peer)

    # -- lifetime -------------------------------------------------------------------------------
    def release(self, keep_directory: bool = False) -> None:
        """End the remote object (its ObjServer process) and close the connection."""
        if self._released:
            return
        if self._factory is not None and self._obj_id is not None:
            self._factory.release(self, keep_directory)
        self._released = True
        self._conn.close()

    def pre_delete(self) -> None:
        """Release the remote object when the model is discarded (classic API)."""
        self.release()

    # -- pickling: where the object lives, never the connection (see locations.py) -------------
    def __getstate__(self) -> dict[str, Any]:
        """The object's location (its state saved on the server first), name, parent, directory
        and input values; no connection, no outputs. Only while `save` writes a model."""
        from .locations import proxy_state
        return proxy_state(self)

    def __reduce_ex__(self, protocol: Any) -> tuple:
        from .locations import unpickled_proxy
        state = self.__getstate__()
        return unpickled_proxy, (state.pop('location'), tree.where(self)), state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Give the proxy that `unpickled_proxy` reconnected its name, parent, directory and
        input values."""
        self.name, self.parent = state['name'], state['parent']
        self.directory = state['directory']
        for name, value in state['inputs'].items():
            setattr(self, name, value)


def _peer_key(proxy: RemoteComponent) -> tuple[str, int, bool]:
    conn = proxy._conn
    return (conn.host, conn.port, conn.tls)


def _link(c: Connection, dst: Any) -> tuple:
    """``(src var, dest var, scale, offset, file name at the destination or '')``."""
    dvar = tree.variables(dst)[c.dest_var]
    target = ''
    if isinstance(dvar, File):
        target = dvar.local_path or c.src_var
    return (c.src_var, c.dest_var, c.scale, c.offset, target)


def _same(value: Any, sent: Any) -> bool:
    """Whether ``value`` equals what was last sent (arrays by content)."""
    if value is sent:
        return type(value) is not np.ndarray
    if type(value) is np.ndarray:
        return type(sent) is np.ndarray and value.shape == sent.shape and \
            value.dtype == sent.dtype and bool(np.array_equal(value, sent))
    try:
        return type(value) is type(sent) and bool(value == sent)
    except Exception:
        return False


def _snapshot(value: Any) -> Any:
    """What to remember as sent: a copy for arrays (they may change in place)."""
    return value.copy() if type(value) is np.ndarray else value


# -- transfers involving a remote end (the kernel's compile_transfer hook) ------------------------
def remote_transfer(conn: Connection, src: Any, dst: Any, svar: Variable,
                    dvar: Variable) -> Callable[[], None] | None:
    """The transfer for ``conn`` when an end is remote, or None where the local one works
    (values: the proxies' mirrors carry them; the local one does not copy into a proxy)."""
    if conn.link in ('rpush', 'rpull') and src.is_remote and dst.is_remote:
        return _nothing
    if not isinstance(dvar, File):
        return None
    sname, dname = conn.src_var, conn.dest_var
    local = dvar.local_path

    def xfer_file() -> None:
        ref = getattr(src, sname)
        if ref is None:
            set_connected(dst, dname, None)
            return
        target = local or os.path.basename(ref.path)
        if src.is_remote and dst.is_remote:
            files.copy_between(src._call, ref.path, dst._call, target)
        elif dst.is_remote:
            files.upload(dst._call, ref.abspath(), target)
        else:
            path = FileRef(target, dst).abspath()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            files.download(src._call, ref.path, path)
        value = FileRef(target, dst, ref.binary, ref.content_type)
        if dst.is_remote:
            dst.__dict__[dname] = value
        else:
            set_connected(dst, dname, value)
    return xfer_file


def _nothing() -> None:
    """rpush/rpull: the servers move the value inside the run calls."""
