"""The structured description -> a model. Each node's class is constructed with its saved
settings (so ``configure`` runs as in a fresh model), then the structure is made to match the
description exactly: children added, replaced or removed, variables added, connections,
workflows, parameters, objectives, constraints and responses replayed where they differ, and
every variable set to its saved value. Only classes of model types are created; a class
named (``!class``) or created (``!object``) where the model declares a type (a constructor
argument's annotation, an Instance variable's class) must also be of that type; paths are
checked by the `PathRules` given."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .. import tree
from ..assembly import Assembly
from ..container import Container, set_connected
from ..drivers.driver import Driver
from ..errors import PathError, PersistenceError, bounded_repr, describe as describe_value
from ..options import suggest
from ..variables.base import Variable
from ..variables.file import FileRef
from ..variables.simple import Instance
from ..workflow import Workflow
from .describe import Describer
from .extensions import node_handler
from .paths import PathRules, check_relative
from .safety import creatable_object_class, find_class_for_file
from .settings import read_settings, setting_types, signature_params, split_settings
from .yaml_io import ClassRef, FileSpec, ObjectSpec, line_of

#: Creates an object of a class whose saved version is not the one installed (a version
#: policy's answer): ``creator(typname, saved_version, ctor_args) -> object``.
Creator = Callable[[str, 'str | None', dict], Any]

_NODE_KEYS = {'class', 'settings', 'directory', 'added_variables', 'variables', 'children',
              'connections', 'driver_workflow', 'recorders', 'workflow', 'parameters',
              'objectives', 'constraints', 'responses'}
_PARAM_KEYS = {'target', 'low', 'high', 'scaler', 'adder', 'name', 'fd_step'}
_VARIABLE_KEYS = {'type', 'default', 'klass', 'metadata'}
_CONNECTION_KEYS = {'src', 'dest', 'link'}


class Builder:
    """Builds a model from a description.

    Every error about what the description holds names the file, the line (when the
    description was read from a file: see `yaml_io.line_of`), the model path and the key.

    Parameters
    ----------
    source : str
        How errors name the file being loaded.
    versions : dict
        Class name -> saved version (from the header), for the creators.
    creators : dict
        Class name -> `Creator` for classes a version policy creates elsewhere.
    paths : PathRules, optional
        Where the paths the file names may point (default: relative paths only).
    trust_commands : bool
        Whether the file may create components that run commands (``runs_commands``).
    """

    def __init__(self, source: str, versions: dict[str, str | None] | None = None,
                 creators: dict[str, Creator] | None = None, paths: PathRules | None = None,
                 trust_commands: bool = False):
        self.source = source
        self.trust_commands = trust_commands
        self.versions = versions or {}
        self.creators = creators or {}
        self.paths = paths or PathRules(None)
        self._classes: dict[str, type] = {}
        # (id of a YAML list/tuple/dict, id of its owner) -> (it, kept alive; its value): an
        # alias names the same data, built once (so an alias bomb costs its distinct nodes)
        self._built: dict[tuple[int, int], tuple[Any, Any]] = {}

    def place(self, at: Any = None, key: str | None = None) -> str:
        """The file, and the line where ``key`` of ``at`` (or ``at``) is written if known."""
        line = line_of(at, key)
        return f'{self.source}: line {line}' if line else self.source

    def fail(self, where: str, message: str, at: Any = None,
             key: str | None = None) -> PersistenceError:
        """The error for a problem at model path ``where``, written at ``key`` of ``at`` (a
        mapping or tagged value of the description)."""
        return PersistenceError(f'{self.place(at, key)}: {where or "<top>"}: {message}')

    @contextlib.contextmanager
    def reporting(self, where: str, at: Any = None, key: str | None = None,
                  what: str = '') -> Iterator[None]:
        """Errors of the enclosed calls into the model become `fail` errors (prefixed with
        ``what``), with the type of the original and it as their cause."""
        try:
            yield
        except (PersistenceError, PathError):
            raise
        except Exception as exc:
            raise self.fail(where, f'{what}{type(exc).__name__}: {exc}', at, key) from exc

    def part(self, node: dict[str, Any], key: str, where: str, kind: type = dict) -> Any:
        """``node[key]`` (empty when missing), checked to be a ``kind`` (dict or list)."""
        data = node.get(key) or kind()
        if not isinstance(data, kind):
            raise self.fail(where, f'{key}: expected a {"mapping" if kind is dict else "list"}, '
                                   f'got {describe_value(data)}', node, key)
        return data

    # -- classes and values ---------------------------------------------------------------------
    def find_class(self, name: Any, where: str, base: type | tuple[type, ...] | None,
                   what: str, place: str = '', at: Any = None, key: str | None = None) -> type:
        """The class called ``name`` (written at ``key`` of ``at``): a creatable model type
        deriving from ``base`` if given (the type that model path ``place`` declares)."""
        if not isinstance(name, str):
            raise self.fail(where, f'expected a class name (str) for {what}, got '
                                   f'{describe_value(name)}', at, key)
        cls = self._classes.get(name)
        if cls is None:
            if self.versions and name not in self.versions:
                raise self.fail(where, f'{what} {name!r} is not listed in the header; the '
                                       f'header lists every class a model file uses (with '
                                       f'its distribution and version)', at, key)
            try:
                cls = find_class_for_file(name)
            except NameError as exc:
                raise self.fail(where, f'{what} {name!r} cannot be created here: {exc}', at,
                                key) from exc
            self._classes[name] = cls
        given = f'{what} {name!r} is a {cls.__module__}.{cls.__qualname__}'
        if base is not None and not issubclass(cls, base):
            expected = base.__name__ if isinstance(base, type) else \
                ' or '.join(b.__name__ for b in base)
            why = f'{place} takes {_a(expected)}' if place else \
                'a model file may only create model types'
            raise self.fail(where, f'{given}, not {_a(expected)}; {why}', at, key)
        if not creatable_object_class(cls):
            raise self.fail(where, f'{given}, not a model type; a model file may only create '
                                   f'model types', at, key)
        if getattr(cls, 'runs_commands', False) and not self.trust_commands:
            raise self.fail(where, f'{given}, which runs commands when the model runs; a model '
                                   f'file runs none unless it is loaded with trust_commands=True '
                                   f'(openmdao-like run --trust-commands), for files you trust',
                            at, key)
        return cls

    def value(self, data: Any, where: str, owner: Container | None = None,
              base: type | tuple[type, ...] | None = None, place: str = '') -> Any:
        """YAML data -> the value (creating tagged objects, resolving files to ``owner``).

        ``data`` goes to model path ``place`` (default ``where``, which names errors about the
        class it names); a ``!class`` or ``!object`` there must be a model type deriving from
        ``base`` if given, those in lists and mappings below it a model type."""
        if isinstance(data, (list, tuple, dict)):
            key = (id(data), id(owner))
            if key not in self._built:
                if isinstance(data, dict):
                    built = {k: self.value(v, where, owner) for k, v in data.items()}
                else:
                    built = type(data)(self.value(v, where, owner) for v in data)
                self._built[key] = (data, built)
            return self._built[key][1]
        if isinstance(data, ClassRef):
            return self.find_class(data.name, where, base, 'class', place=place, at=data)
        if isinstance(data, ObjectSpec):
            cls = self.find_class(data.name, where, base, 'object class', place=place, at=data)
            self.check_settings(cls, data.args, place or where, 'args', data)
            args = self.settings(cls, data.args, place or where)
            return self.construct(cls, data.name, args, where, data)
        if isinstance(data, FileSpec):
            check_relative(data.path, where, self.place(data), 'file reference')
            return FileRef(data.path, owner, data.binary, data.content_type)
        return data

    def check_keys(self, data: dict[str, Any], known: Iterable[str], where: str,
                   what: str = '') -> None:
        """Raise naming the first key of ``data`` that is not ``known``, its line and the
        closest known keys (``what``: the part of the node ``data`` is, for the message)."""
        for key in data:
            if key not in known:
                raise self.fail(where, f'{what}{": " if what else ""}unknown key {key!r}'
                                       f'{suggest(str(key), known)} (expected some of '
                                       f'{sorted(known)})', data, key)

    def check_settings(self, cls: type, saved: dict[str, Any], where: str, key: str,
                       at: Any) -> None:
        """Raise unless every setting in ``saved`` (``key`` of ``at``) is a constructor
        argument or declared option of ``cls``."""
        own, inherited, _ = signature_params(cls)
        known = own + inherited
        for name in saved:
            if name not in known:
                listed = ', '.join(sorted(known)) or 'none'
                raise self.fail(where, f'{key}: unknown setting {name!r} of {cls.__name__}'
                                       f'{suggest(str(name), known)} (settings: {listed})',
                                saved if line_of(saved, name) else at,
                                name if line_of(saved, name) else key)

    def settings(self, cls: type, saved: dict[str, Any], where: str,
                 of_node: bool = False) -> dict[str, Any]:
        """The settings of a new ``cls`` object at model path ``where``: each value as the
        constructor argument's annotation asks (its type for a ``!class`` or ``!object``, a
        path checked by the rules). Errors about the class a node's own setting names are
        reported at the node (``of_node``), others at ``where.name``."""
        types = setting_types(cls)
        values = {}
        for key, data in saved.items():
            place = f'{where}.{key}'
            bases, is_path = types.get(key, ((), False))
            values[key] = self.value(data, where if of_node else place, base=bases or None,
                                     place=place)
            if is_path:
                self.paths.check(values[key], place, self.place(saved, key))
        return values

    def construct(self, cls: type | None, name: str, settings: dict[str, Any],
                  where: str, at: Any = None) -> Any:
        """A new ``cls`` from its settings (through a version policy's creator if it has one;
        ``cls`` is None when only the creator knows the class: every setting goes to it)."""
        ctor, later = split_settings(cls, settings) if cls is not None else (settings, {})
        creator = self.creators.get(name)
        with self.reporting(where, at, what=f'cannot create {name} with settings '
                                            f'{bounded_repr(settings, 200)}: '):
            obj = creator(name, self.versions.get(name), ctor) if creator else cls(**ctor)
            for key, val in later.items():
                setattr(obj, key, val)
        return obj

    # -- the tree -------------------------------------------------------------------------------
    def build(self, node: Any, where: str = '', existing: Container | None = None,
              parent: Container | None = None, name: str = '',
              within: Any = None) -> Container:
        """The container described by ``node`` (``within[name]``: the parent's children),
        added to ``parent`` as ``name`` before its contents are applied (so errors carry full
        paths); ``existing`` (made by the parent's configure) is kept when it has the same
        class and settings."""
        if not isinstance(node, dict):
            raise self.fail(where, f'expected a mapping describing a model object, got '
                                   f'{describe_value(node)}', within, name)
        typname = node.get('class')
        if isinstance(typname, str) and typname in self.creators:
            return self.build_elsewhere(node, where, parent, name)
        cls = self.find_class(typname, where, Container, 'class', at=node, key='class')
        handler = node_handler(cls)
        known = {'class'} | handler.keys if handler is not None else _NODE_KEYS
        self.check_keys(node, known, where)
        if handler is not None:
            obj = handler.build(self, node, where, existing)
            if parent is not None and tree.children(parent).get(name) is not obj:
                parent.add(name, obj)
            self.apply_values(obj, node.get('variables') or {}, where, node)
            return obj
        saved = self.part(node, 'settings', where)
        self.check_settings(cls, saved, where, 'settings', node)
        if existing is not None and type(existing) is cls and _same_settings(existing, saved):
            obj = existing
        else:
            obj = self.construct(cls, typname, self.settings(cls, saved, where, True), where,
                                 node)
            if parent is not None:
                parent.add(name, obj)
        self.apply(obj, node, where)
        return obj

    def build_elsewhere(self, node: dict[str, Any], where: str, parent: Container | None,
                        name: str) -> Container:
        """The object of a class that the version policy creates (e.g. in a server that has
        the saved version): made by its creator from the saved settings, then given the saved
        directory and variable values; the class is not imported here."""
        typname = node['class']
        extra = [key for key in node if key not in ('class', 'settings', 'directory',
                                                    'variables')]
        if extra:
            raise self.fail(where, f'{typname} is created by the version policy (saved version '
                                   f'{self.versions.get(typname)}, not installed here), which '
                                   f'gives it its settings and variable values only; its '
                                   f'{", ".join(sorted(map(str, extra)))} cannot be applied',
                            node, str(extra[0]))
        settings = self.value(self.part(node, 'settings', where), where)
        obj = self.construct(None, typname, settings, where, node)
        if not isinstance(obj, Container):
            raise self.fail(where, f'the version policy created {describe_value(obj)} for '
                                   f'{typname}, not a model object', node, 'class')
        if parent is not None:
            parent.add(name, obj)
        self.apply_directory(obj, node, where)
        self.apply_values(obj, node.get('variables') or {}, where, node)
        return obj

    def apply(self, obj: Container, node: dict[str, Any], where: str) -> None:
        """Make ``obj`` match ``node``: structure first, then values."""
        self.apply_directory(obj, node, where)
        self.apply_added_variables(obj, self.part(node, 'added_variables', where), where)
        self.apply_children(obj, node, where)
        if isinstance(obj, Assembly):
            self.apply_connections(obj, node, where)
            for name, child in tree.children(obj).items():
                if isinstance(child, Driver):
                    self.apply_driver(child, node['children'][name], _join(where, name))
            if node.get('driver_workflow') is None:
                obj.driver_workflow = None
            else:
                drivers = self.part(node, 'driver_workflow', where, list)
                known = [n for n, c in tree.children(obj).items() if isinstance(c, Driver)]
                for name in drivers:
                    if name not in known:
                        raise self.fail(where, f'driver_workflow: {name!r} is not a driver of '
                                               f'{type(obj).__name__}{suggest(str(name), known)}'
                                               f' (drivers: {", ".join(known)})',
                                        node, 'driver_workflow')
                obj.driver_workflow = drivers
            from ..recorders.base import CaseRecorder  # only now: it loads sqlite3
            at = _join(where, 'recorders')
            obj.recorders = [self.value(r, f'{at}[{i}]', base=CaseRecorder, place=f'{at}[{i}]')
                             for i, r in enumerate(self.part(node, 'recorders', where, list))]
        self.apply_values(obj, node.get('variables') or {}, where, node)

    def apply_directory(self, obj: Container, node: dict[str, Any], where: str) -> None:
        """The saved directory, relative to the parent's (never leaving it)."""
        directory = node.get('directory', '')
        check_relative(directory, _join(where, 'directory'), self.place(node, 'directory'),
                       'directory')
        obj.directory = directory

    def apply_added_variables(self, obj: Container, specs: dict[str, Any], where: str) -> None:
        """Add the variables ``specs`` defines (``added_variables`` of a node), replacing
        those that differ and removing those it does not name."""
        describer = Describer()
        current = describer.added_variables(obj)
        for name in current:
            if name not in specs or not _same(current[name], specs[name]):
                obj.remove(name)
        for name, spec in specs.items():
            if name not in current or not _same(current[name], spec):
                var = self.variable(spec, _join(where, name), specs, name)
                with self.reporting(_join(where, name), specs, name, 'cannot add variable: '):
                    obj.add(name, var)

    def variable(self, spec: Any, where: str, at: Any = None, key: str | None = None) -> Variable:
        """A variable from its definition (type, default or klass, metadata), written at
        ``key`` of ``at``."""
        if not isinstance(spec, dict) or 'type' not in spec:
            raise self.fail(where, f'expected a variable definition {{type, default, '
                                   f'metadata}}, got {describe_value(spec)}', at, key)
        self.check_keys(spec, _VARIABLE_KEYS, where)
        cls = self.find_class(spec['type'], where, Variable, 'variable type', at=spec,
                              key='type')
        meta = self.value(spec.get('metadata') or {}, where)
        if isinstance(meta, dict) and 'local_path' in meta:
            check_relative(meta['local_path'], f'{where} (local_path)',
                           self.place(spec, 'metadata'), 'local_path')
        first = self.value(spec['klass'], where) if 'klass' in spec else \
            self.value(spec.get('default'), where)
        with self.reporting(where, spec, what='cannot define variable: '):
            return cls(first, **meta)

    def apply_children(self, obj: Container, node: dict[str, Any], where: str) -> None:
        """Add, replace or remove children so that ``obj``'s match ``node['children']``."""
        nodes = node.get('children') or {}
        if not isinstance(nodes, dict):
            raise self.fail(where, f'children: expected a mapping name -> object, got '
                                   f'{describe_value(nodes)}', node, 'children')
        for name in [n for n in tree.children(obj) if n not in nodes]:
            obj.remove(name)
        for name, child_node in nodes.items():
            self.build(child_node, _join(where, name), tree.children(obj).get(name), obj, name,
                       nodes)
        obj.order_children(list(nodes))

    def apply_connections(self, asm: Assembly, node: dict[str, Any], where: str) -> None:
        """Make ``asm``'s connections those of ``node['connections']`` (in that order)."""
        conns = node.get('connections') or []
        wanted = []
        for i, conn in enumerate(conns if isinstance(conns, list) else [conns]):
            if not isinstance(conn, dict) or 'src' not in conn or 'dest' not in conn:
                raise self.fail(where, f'connections[{i}]: expected {{src, dest, link}}, got '
                                       f'{describe_value(conn)}',
                                conn if line_of(conn) else node, 'connections')
            self.check_keys(conn, _CONNECTION_KEYS, where, f'connections[{i}]')
            wanted.append((conn, conn['src'], conn['dest'], conn.get('link', 'push')))
        current = [(c.src, c.dest, c.link) for c in tree.connections(asm).values()]
        if current == [w[1:] for w in wanted]:
            return
        asm.clear_connections()
        for i, (conn, src, dest, link) in enumerate(wanted):
            with self.reporting(where, conn, what=f'connections[{i}]: {src} -> {dest}: '):
                asm.connect(src, dest, link)

    def apply_driver(self, drv: Driver, node: dict[str, Any], where: str) -> None:
        """Workflow, parameters, objectives, constraints, responses (replayed if they differ)."""
        current = Describer().driver(drv)
        wanted = {k: node[k] for k in ('workflow', 'parameters', 'objectives', 'constraints',
                                       'responses') if k in node}
        if _same(current, wanted):
            return
        wf_spec = self.part(node, 'workflow', where)
        wf_cls = self.find_class(wf_spec.get('class', 'openmdao_like.workflow.Dataflow'),
                                 where, Workflow, 'workflow class', at=wf_spec, key='class')
        members = wf_spec.get('members') or []
        with self.reporting(where, wf_spec, 'members', 'workflow: '):
            drv.workflow.clear()
            drv.workflow = wf_cls()
            drv.workflow.add(list(members), check=True)
        drv.clear_parameters()
        for i, spec in enumerate(self.part(node, 'parameters', where, list)):
            self.add_parameter(drv, spec, f'{where}.parameters[{i}]',
                               spec if line_of(spec) else node)
        drv.clear_objectives()
        drv.clear_constraints()
        drv.clear_responses()
        for key, add in (('objectives', drv.add_objective), ('constraints', drv.add_constraint),
                         ('responses', drv.add_response)):
            for i, item in enumerate(self.part(node, key, where, list)):
                with self.reporting(where, item if line_of(item) else node, key,
                                    f'{key}[{i}]: '):
                    expr, name = _expr(item)
                    if key == 'responses':
                        add(expr)
                    else:
                        add(expr, name=name)

    def add_parameter(self, drv: Driver, spec: Any, where: str, at: Any) -> None:
        """Add the parameter ``spec`` (written at ``at``) to ``drv``."""
        if not isinstance(spec, dict) or 'target' not in spec:
            raise self.fail(where, f'expected a parameter {{target, low, high, ...}}, got '
                                   f'{describe_value(spec)}', at, 'parameters')
        self.check_keys(spec, _PARAM_KEYS, where)
        with self.reporting(where, at, 'target'):
            drv.add_parameter(spec['target'], low=self.value(spec.get('low'), where),
                              high=self.value(spec.get('high'), where),
                              scaler=spec.get('scaler', 1.0), adder=spec.get('adder', 0.0),
                              fd_step=spec.get('fd_step'), name=spec.get('name'))

    def apply_values(self, obj: Container, values: Any, where: str, node: Any = None) -> None:
        """Set each variable of ``values`` (``node['variables']``) to its saved value."""
        if not isinstance(values, dict):
            raise self.fail(where, f'variables: expected a mapping name -> value, got '
                                   f'{describe_value(values)}', node, 'variables')
        known = tree.variables(obj)
        for name, data in values.items():
            path = _join(where, name)
            if name not in known:
                raise self.fail(path, f'{type(obj).__name__} has no variable {name!r}'
                                      f'{suggest(str(name), known)} (variables: '
                                      f'{", ".join(known) or "none"})', values, name)
            var = known[name]
            klass = var.klass if isinstance(var, Instance) else None
            value = self.value(data, path, obj, base=klass if isinstance(klass, type) else None,
                               place=path)
            try:
                set_connected(obj, name, value)  # a saved connected input keeps its value
            except Exception as exc:
                raise self.fail(path, str(exc), values, name) from exc


def _same_settings(obj: Container, saved: Any) -> bool:
    """Whether ``obj`` (made by a parent's configure) has the saved settings."""
    try:
        return _same(Describer().value(read_settings(obj, tree.where(obj)), ''), saved)
    except PersistenceError:
        return False


def _expr(item: Any) -> tuple[str, str | None]:
    if isinstance(item, dict):
        return item['expr'], item.get('name')
    return item, None


def _a(noun: str) -> str:
    return f'{"an" if noun[:1] in "AEIOUaeiou" else "a"} {noun}'


def _join(where: str, name: str) -> str:
    return f'{where}.{name}' if where else name


def _same(a: Any, b: Any) -> bool:
    """Deep equality of described data (arrays compared by dtype, shape and values)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind
                                                                == 'f')))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b if not isinstance(a, (int, float)) else a == b
