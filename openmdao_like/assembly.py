"""`Assembly`: a component made of components, connected variable to variable and iterated by
drivers. Connections are checked when made and compiled into transfer plans before a run."""

from __future__ import annotations

import copy
from typing import Any, Callable

from .component import Component
from .connections import Connection, check_connection, compile_transfer, endpoint
from .container import _class_vars
from .errors import ConfigError, ConnectError, ModelError
from .options import suggest
from .workflow import Workflow


class Assembly(Component):
    """A container of components, connections and drivers.

    Subclasses build the model in `configure`, which the constructor calls. ``driver`` (a
    `RunOnce` by default) runs the model; ``driver_workflow`` may instead name several drivers
    to run in turn.

    Parameters
    ----------
    **keywords
        Values of the assembly's variables, as for any `Component`; a name that only
        `configure` creates (a passthrough) is set once it has run.

    Attributes
    ----------
    driver_workflow : list of str or None
        Names of drivers that `run` executes in order (default: just ``driver``).
    recorders : list
        Case recorders that this model's drivers write to (used on the top assembly).
    """

    #: Factory of the default driver; set by ``openmdao_like.wiring`` (drivers: a higher layer).
    default_driver: Callable[[], Any] | None = None

    def __init__(self, **keywords: Any):
        self._connections: dict[str, Connection] = {}
        self._dirty = True
        self._driver_runs: tuple = ()
        self._out_xfers: tuple = ()
        self._driver_names: list[str] = []
        # a keyword may name a variable that `configure` adds (a passthrough): set after it
        known = {*_class_vars(type(self)), *getattr(type(self), '_option_template', ())}
        later = {name: keywords.pop(name) for name in list(keywords) if name not in known}
        super().__init__(**keywords)
        self.driver_workflow: list[str] | None = None
        self.recorders: list[Any] = []
        if Assembly.default_driver is not None:
            self.add('driver', Assembly.default_driver())
        self.configure()
        self._set_keywords(later)

    def configure(self) -> None:
        """Build the model: add components, connect them, set up drivers (override this)."""

    def _replaceable_names(self) -> tuple[str, ...]:
        return ('driver',)

    def _config_changed(self) -> None:
        self._dirty = True

    # -- connections ----------------------------------------------------------------------------
    def connect(self, src: str, dest: str | list[str], link: str = 'push') -> None:
        """Connect output (or boundary input) ``src`` to input ``dest`` (a path or a list)."""
        dests = [dest] if isinstance(dest, str) else list(dest)
        if not dests:
            raise ConnectError(f'{self._where()}: cannot connect {src!r}: no destination given')
        conns = []
        for d in dests:
            if any(c.dest == d for c in conns):
                raise ConnectError(f'{self._where()}: cannot connect {src!r} to {d!r}: '
                                   f'destination listed twice')
            conns.append(check_connection(self, src, d, link))
        for conn in conns:
            self._connections[conn.dest] = conn
            self._guard(conn)
        self._config_changed()

    def disconnect(self, src: str, dest: str | None = None) -> None:
        """Remove the connection ``src -> dest``; with no ``dest``, every connection of ``src``
        (``src`` may also name a whole component). Names that are not connected are no error
        (classic); names of nothing are (`ConnectError`)."""
        where = f'{self._where()}: cannot disconnect {src!r}'
        if dest is not None:
            for path in (src, dest):
                endpoint(self, path, f'{where} from {dest!r}')
            conn = self._connections.get(dest)
            gone = [dest] if conn is not None and conn.src == src else []
        else:
            names = [*self._children, *self._vars()]
            if '.' in src:
                endpoint(self, src, where)
            elif src not in names:
                raise ConnectError(f'{where}: {self._where()!r} has no component or variable '
                                   f'{src!r}{suggest(src, names)}')
            gone = [d for d, c in self._connections.items()
                    if src in (c.src, c.dest, c.src_comp, c.dest_comp)]
        for d in gone:
            self._unguard(self._connections.pop(d))
        if gone:
            self._config_changed()

    def clear_connections(self) -> None:
        """Remove every connection of this assembly."""
        for conn in self._connections.values():
            self._unguard(conn)
        self._connections.clear()
        self._config_changed()

    def _guard(self, conn: Connection) -> None:
        """Refuse sets of the input ``conn`` feeds but the transfer's (see
        `Container._guard_input`); an assembly's own outputs are not guarded."""
        if conn.dest_comp is not None:
            self._children[conn.dest_comp]._guard_input(conn.dest_var)

    def _unguard(self, conn: Connection, child: Any = None) -> None:
        """Let the input ``conn`` fed be set again (``child``: its owner, when it has just
        been removed from this assembly)."""
        if conn.dest_comp is not None:
            owner = self._children[conn.dest_comp] if child is None else child
            owner._free_input(conn.dest_var)

    def list_connections(self, show_passthrough: bool = True) -> list[tuple[str, str]]:
        """``(src, dest)`` pairs in the order they were made."""
        return [(c.src, c.dest) for c in self._connections.values()
                if show_passthrough or (c.src_comp is not None and c.dest_comp is not None)]

    def get_connection(self, dest: str) -> Connection | None:
        """The connection feeding ``dest``, if any (its link style, unit scale and offset)."""
        return self._connections.get(dest)

    def is_connected(self, path: str) -> bool:
        """Whether ``path`` is the destination or source of a connection."""
        return path in self._connections or any(c.src == path for c in
                                                self._connections.values())

    def create_passthrough(self, pathname: str, alias: str | None = None) -> Any:
        """Expose child variable ``pathname`` (``'comp.var'``) as a variable of this assembly
        with the same type and metadata, connected to it."""
        parts = pathname.split('.')
        if len(parts) != 2 or parts[0] not in self._children:
            raise ModelError(f'{self._where()}: cannot create passthrough for {pathname!r}: '
                             f'expected "component.variable" of a child')
        comp = self._children[parts[0]]
        var = comp._var(parts[1])
        name = alias or parts[1]
        clone = copy.deepcopy(var)
        self.add(name, clone)
        setattr(self, name, getattr(comp, parts[1]))
        try:
            if var.iotype == 'in':
                self.connect(name, pathname)
            else:
                self.connect(pathname, name)
        except ConnectError:
            self.remove(name)
            raise
        return clone

    def _child_removed(self, name: str, obj: Any) -> None:
        if name in self._driver_names:
            self._driver_names.remove(name)
        for dest in [d for d, c in self._connections.items()
                     if name in (c.src_comp, c.dest_comp)
                     or (obj is None and name in (c.src, c.dest))]:
            conn = self._connections.pop(dest)
            self._unguard(conn, obj if conn.dest_comp == name else None)
        for child in self._children.values():
            wf = getattr(child, 'workflow', None)
            if isinstance(wf, Workflow) and name in wf:
                wf.remove(name)
        if self.driver_workflow and name in self.driver_workflow:
            self.driver_workflow = [n for n in self.driver_workflow if n != name]

    def _child_added(self, name: str, obj: Any) -> None:
        if hasattr(obj, 'list_param_targets'):
            self._driver_names.append(name)

    def _driver_of_parameter(self, path: str) -> str | None:
        """Name of the driver whose parameter sets ``path``, if any."""
        for name in self._driver_names:
            if path in self._children[name].list_param_targets():
                return name
        return None

    # -- checking and compiling -----------------------------------------------------------------
    def _drivers_to_run(self) -> list[Any]:
        names = self.driver_workflow or ['driver']
        drivers = []
        for name in names:
            obj = self._children.get(name)
            if obj is None or not hasattr(obj, 'workflow'):
                raise ConfigError(f'{self._where()}: driver_workflow names {name!r}, which is '
                                  f'not a driver of this assembly')
            drivers.append(obj)
        return drivers

    def _component_graph(self) -> dict[str, set[str]]:
        """child name -> names of children fed by its outputs."""
        graph: dict[str, set[str]] = {}
        for c in self._connections.values():
            if c.src_comp is not None and c.dest_comp is not None:
                graph.setdefault(c.src_comp, set()).add(c.dest_comp)
        return graph

    def check_config(self) -> None:
        """Check the whole model (drivers, workflows, links, cycles, children) and compile it.

        Raises `ConfigError` naming the problem: an unknown workflow member, an ``rpush`` or
        ``rpull`` link between two local components, or a cycle that no solver iterates.
        """
        for c in self._connections.values():
            if c.link in ('rpush', 'rpull'):
                ends = [self._children.get(n) for n in (c.src_comp, c.dest_comp)]
                if not any(e is not None and e.is_remote for e in ends):
                    raise ConfigError(f'{self._where()}: connection {c.src!r} -> {c.dest!r} uses '
                                      f'link={c.link!r}, which needs two remote components; '
                                      f'both ends are local (use "push" or "pull")')
        graph = self._component_graph()
        drivers = self._drivers_to_run()
        for child in self._children.values():
            wf = getattr(child, 'workflow', None)
            if not isinstance(wf, Workflow):
                continue
            cycles = wf.compile(graph)
            if cycles and not getattr(child, 'iterates_cycles', False):
                text = '; '.join(' -> '.join(c + [c[0]]) for c in cycles)
                raise ConfigError(f'{child._where()}: its workflow has a data cycle: {text}. Put '
                                  f'the members of a cycle in the workflow of a solver such as '
                                  f'FixedPointIterator')
            child._cycles = cycles
        for child in self._children.values():
            child.check_config()
        plans: dict[str | None, list] = {}
        for conn in self._connections.values():
            if self._children.get(conn.dest_comp, self).is_remote:
                self._guard(conn)  # again: a proxy pickles no guard (its own state)
            plans.setdefault(conn.dest_comp, []).append(compile_transfer(self, conn))
        for name, child in self._children.items():
            child._in_xfers = tuple(plans.get(name, ()))
        self._out_xfers = tuple(plans.get(None, ()))
        self._driver_runs = tuple(d.run for d in drivers)
        self._dirty = False

    def _setup(self) -> None:
        if self._dirty:
            self.check_config()

    # -- running --------------------------------------------------------------------------------
    def execute(self) -> None:
        """Run the drivers of ``driver_workflow`` (or ``driver``), then fill boundary outputs."""
        if self._dirty:
            self.check_config()
        top = self.parent is None
        if top and self.recorders:
            for rec in self.recorders:
                rec.startup(self)  # the model: where the recorded variables' metadata is
            try:
                self._run_drivers()
            finally:
                for rec in self.recorders:
                    rec.close()
        else:
            self._run_drivers()

    def _run_drivers(self) -> None:
        for run in self._driver_runs:
            run()
        for xfer in self._out_xfers:
            xfer()

    def __getstate__(self):
        state = super().__getstate__()
        state['_driver_runs'] = ()
        state['_out_xfers'] = ()
        state['_dirty'] = True
        return state
