"""The structured description -> a model. Each node's class is constructed with its saved
settings (so ``configure`` runs as in a fresh model), then the structure is made to match the
description exactly: children added, replaced or removed, variables added, connections,
workflows, parameters, objectives, constraints and responses replayed where they differ, and
every variable set to its saved value. Only classes of model types are created; a class
named (``!class``) or created (``!object``) where the model declares a type (a constructor
argument's annotation, an Instance variable's class) must also be of that type; paths are
checked by the `PathRules` given."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import tree
from ..assembly import Assembly
from ..container import Container
from ..drivers.driver import Driver
from ..errors import PersistenceError, bounded_repr, describe as describe_value
from ..variables.base import Variable
from ..variables.file import FileRef
from ..variables.simple import Instance
from ..workflow import Workflow
from .describe import Describer
from .extensions import node_handler
from .paths import PathRules, check_relative
from .safety import creatable_object_class, find_class_for_file
from .settings import read_settings, setting_types, split_settings
from .yaml_io import ClassRef, FileSpec, ObjectSpec

#: Creates an object of a class whose saved version is not the one installed (a version
#: policy's answer): ``creator(typname, saved_version, ctor_args) -> object``.
Creator = Callable[[str, 'str | None', dict], Any]

_NODE_KEYS = {'class', 'settings', 'directory', 'added_variables', 'variables', 'children',
              'connections', 'driver_workflow', 'recorders', 'workflow', 'parameters',
              'objectives', 'constraints', 'responses'}
_PARAM_KEYS = {'target', 'low', 'high', 'scaler', 'adder', 'name', 'fd_step'}


class Builder:
    """Builds a model from a description.

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

    def fail(self, where: str, message: str) -> PersistenceError:
        """The error for a problem at model path ``where``."""
        return PersistenceError(f'{self.source}: {where or "<top>"}: {message}')

    def part(self, node: dict[str, Any], key: str, where: str, kind: type = dict) -> Any:
        """``node[key]`` (empty when missing), checked to be a ``kind`` (dict or list)."""
        data = node.get(key) or kind()
        if not isinstance(data, kind):
            raise self.fail(where, f'{key}: expected a {"mapping" if kind is dict else "list"}, '
                                   f'got {describe_value(data)}')
        return data

    # -- classes and values ---------------------------------------------------------------------
    def find_class(self, name: Any, where: str, base: type | tuple[type, ...] | None,
                   what: str, place: str = '') -> type:
        """The class called ``name``: a creatable model type deriving from ``base`` if given
        (the type that model path ``place`` declares)."""
        if not isinstance(name, str):
            raise self.fail(where, f'expected a class name (str) for {what}, got '
                                   f'{describe_value(name)}')
        cls = self._classes.get(name)
        if cls is None:
            if self.versions and name not in self.versions:
                raise self.fail(where, f'{what} {name!r} is not listed in the header; the '
                                       f'header lists every class a model file uses (with '
                                       f'its distribution and version)')
            try:
                cls = find_class_for_file(name)
            except NameError as exc:
                raise self.fail(where, f'{what} {name!r} cannot be created here: {exc}') \
                    from None
            self._classes[name] = cls
        given = f'{what} {name!r} is a {cls.__module__}.{cls.__qualname__}'
        if base is not None and not issubclass(cls, base):
            expected = base.__name__ if isinstance(base, type) else \
                ' or '.join(b.__name__ for b in base)
            why = f'{place} takes {_a(expected)}' if place else \
                'a model file may only create model types'
            raise self.fail(where, f'{given}, not {_a(expected)}; {why}')
        if not creatable_object_class(cls):
            raise self.fail(where, f'{given}, not a model type; a model file may only create '
                                   f'model types')
        if getattr(cls, 'runs_commands', False) and not self.trust_commands:
            raise self.fail(where, f'{given}, which runs commands when the model runs; a model '
                                   f'file runs none unless it is loaded with trust_commands=True '
                                   f'(openmdao-like run --trust-commands), for files you trust')
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
            return self.find_class(data.name, where, base, 'class', place=place)
        if isinstance(data, ObjectSpec):
            cls = self.find_class(data.name, where, base, 'object class', place=place)
            args = self.settings(cls, data.args, place or where)
            return self.construct(cls, data.name, args, where)
        if isinstance(data, FileSpec):
            check_relative(data.path, where, self.source, 'file reference')
            return FileRef(data.path, owner, data.binary, data.content_type)
        return data

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
                self.paths.check(values[key], place, self.source)
        return values

    def construct(self, cls: type | None, name: str, settings: dict[str, Any],
                  where: str) -> Any:
        """A new ``cls`` from its settings (through a version policy's creator if it has one;
        ``cls`` is None when only the creator knows the class: every setting goes to it)."""
        ctor, later = split_settings(cls, settings) if cls is not None else (settings, {})
        creator = self.creators.get(name)
        try:
            obj = creator(name, self.versions.get(name), ctor) if creator else cls(**ctor)
            for key, val in later.items():
                setattr(obj, key, val)
        except PersistenceError:
            raise
        except Exception as exc:
            raise self.fail(where, f'cannot create {name} with settings '
                                   f'{bounded_repr(settings, 200)}: {type(exc).__name__}: '
                                   f'{exc}') from exc
        return obj

    # -- the tree -------------------------------------------------------------------------------
    def build(self, node: Any, where: str = '', existing: Container | None = None,
              parent: Container | None = None, name: str = '') -> Container:
        """The container described by ``node``, added to ``parent`` as ``name`` before its
        contents are applied (so errors carry full paths); ``existing`` (made by the parent's
        configure) is kept when it has the same class and settings."""
        if not isinstance(node, dict):
            raise self.fail(where, f'expected a mapping describing a model object, got '
                                   f'{describe_value(node)}')
        typname = node.get('class')
        if isinstance(typname, str) and typname in self.creators:
            return self.build_elsewhere(node, where, parent, name)
        cls = self.find_class(typname, where, Container, 'class')
        handler = node_handler(cls)
        known = {'class'} | handler.keys if handler is not None else _NODE_KEYS
        unknown = set(node) - known
        if unknown:
            raise self.fail(where, f'unknown keys {sorted(unknown)} (expected some of '
                                   f'{sorted(known)})')
        if handler is not None:
            obj = handler.build(self, node, where, existing)
            if parent is not None and tree.children(parent).get(name) is not obj:
                parent.add(name, obj)
            self.apply_values(obj, node.get('variables') or {}, where)
            return obj
        saved = self.part(node, 'settings', where)
        if existing is not None and type(existing) is cls and _same_settings(existing, saved):
            obj = existing
        else:
            obj = self.construct(cls, typname, self.settings(cls, saved, where, True), where)
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
        extra = sorted(set(node) - {'class', 'settings', 'directory', 'variables'})
        if extra:
            raise self.fail(where, f'{typname} is created by the version policy (saved version '
                                   f'{self.versions.get(typname)}, not installed here), which '
                                   f'gives it its settings and variable values only; its '
                                   f'{", ".join(extra)} cannot be applied')
        settings = self.value(self.part(node, 'settings', where), where)
        obj = self.construct(None, typname, settings, where)
        if not isinstance(obj, Container):
            raise self.fail(where, f'the version policy created {describe_value(obj)} for '
                                   f'{typname}, not a model object')
        if parent is not None:
            parent.add(name, obj)
        self.apply_directory(obj, node, where)
        self.apply_values(obj, node.get('variables') or {}, where)
        return obj

    def apply(self, obj: Container, node: dict[str, Any], where: str) -> None:
        """Make ``obj`` match ``node``: structure first, then values."""
        self.apply_directory(obj, node, where)
        self.apply_added_variables(obj, self.part(node, 'added_variables', where), where)
        self.apply_children(obj, node.get('children') or {}, where)
        if isinstance(obj, Assembly):
            self.apply_connections(obj, node.get('connections') or [], where)
            for name, child in tree.children(obj).items():
                if isinstance(child, Driver):
                    self.apply_driver(child, node['children'][name], _join(where, name))
            drivers = node.get('driver_workflow')
            obj.driver_workflow = None if drivers is None else \
                self.part(node, 'driver_workflow', where, list)
            from ..recorders.base import CaseRecorder  # only now: it loads sqlite3
            at = _join(where, 'recorders')
            obj.recorders = [self.value(r, f'{at}[{i}]', base=CaseRecorder, place=f'{at}[{i}]')
                             for i, r in enumerate(self.part(node, 'recorders', where, list))]
        self.apply_values(obj, node.get('variables') or {}, where)

    def apply_directory(self, obj: Container, node: dict[str, Any], where: str) -> None:
        """The saved directory, relative to the parent's (never leaving it)."""
        directory = node.get('directory', '')
        check_relative(directory, _join(where, 'directory'), self.source, 'directory')
        obj.directory = directory

    def apply_added_variables(self, obj: Container, specs: dict[str, Any], where: str) -> None:
        describer = Describer()
        current = describer.added_variables(obj)
        for name in current:
            if name not in specs or not _same(current[name], specs[name]):
                obj.remove(name)
        for name, spec in specs.items():
            if name not in current or not _same(current[name], spec):
                obj.add(name, self.variable(spec, _join(where, name)))

    def variable(self, spec: Any, where: str) -> Variable:
        """A variable from its definition (type, default or klass, metadata)."""
        if not isinstance(spec, dict) or 'type' not in spec or \
                set(spec) - {'type', 'default', 'klass', 'metadata'}:
            raise self.fail(where, f'expected a variable definition {{type, default, '
                                   f'metadata}}, got {describe_value(spec)}')
        cls = self.find_class(spec['type'], where, Variable, 'variable type')
        meta = self.value(spec.get('metadata') or {}, where)
        if isinstance(meta, dict) and 'local_path' in meta:
            check_relative(meta['local_path'], f'{where} (local_path)', self.source,
                           'local_path')
        first = self.value(spec['klass'], where) if 'klass' in spec else \
            self.value(spec.get('default'), where)
        try:
            return cls(first, **meta)
        except Exception as exc:
            raise self.fail(where, f'cannot define variable: {type(exc).__name__}: {exc}') \
                from exc

    def apply_children(self, obj: Container, nodes: Any, where: str) -> None:
        if not isinstance(nodes, dict):
            raise self.fail(where, f'children: expected a mapping name -> object, got '
                                   f'{describe_value(nodes)}')
        for name in [n for n in tree.children(obj) if n not in nodes]:
            obj.remove(name)
        for name, child_node in nodes.items():
            self.build(child_node, _join(where, name), tree.children(obj).get(name), obj, name)
        obj.order_children(list(nodes))

    def apply_connections(self, asm: Assembly, conns: Any, where: str) -> None:
        wanted = []
        for i, conn in enumerate(conns if isinstance(conns, list) else [conns]):
            if not isinstance(conn, dict) or set(conn) - {'src', 'dest', 'link'} or \
                    'src' not in conn or 'dest' not in conn:
                raise self.fail(where, f'connections[{i}]: expected {{src, dest, link}}, got '
                                       f'{describe_value(conn)}')
            wanted.append((conn['src'], conn['dest'], conn.get('link', 'push')))
        current = [(c.src, c.dest, c.link) for c in tree.connections(asm).values()]
        if current == wanted:
            return
        asm.clear_connections()
        for src, dest, link in wanted:
            try:
                asm.connect(src, dest, link)
            except Exception as exc:
                raise self.fail(where, f'connection {src} -> {dest}: {exc}') from exc

    def apply_driver(self, drv: Driver, node: dict[str, Any], where: str) -> None:
        """Workflow, parameters, objectives, constraints, responses (replayed if they differ)."""
        current = Describer().driver(drv)
        wanted = {k: node[k] for k in ('workflow', 'parameters', 'objectives', 'constraints',
                                       'responses') if k in node}
        if _same(current, wanted):
            return
        try:
            wf_spec = wanted.get('workflow') or {}
            wf_cls = self.find_class(wf_spec.get('class', 'openmdao_like.workflow.Dataflow'),
                                     where, Workflow, 'workflow class')
            drv.workflow.clear()
            drv.workflow = wf_cls()
            drv.workflow.add(list(wf_spec.get('members') or []), check=True)
            drv.clear_parameters()
            for i, spec in enumerate(wanted.get('parameters') or []):
                self.add_parameter(drv, spec, f'{where}.parameters[{i}]')
            drv.clear_objectives()
            for expr, name in map(_expr, wanted.get('objectives') or []):
                drv.add_objective(expr, name=name)
            drv.clear_constraints()
            for expr, name in map(_expr, wanted.get('constraints') or []):
                drv.add_constraint(expr, name=name)
            drv.clear_responses()
            for expr in wanted.get('responses') or []:
                drv.add_response(expr)
        except PersistenceError:
            raise
        except Exception as exc:
            raise self.fail(where, f'{type(exc).__name__}: {exc}') from exc

    def add_parameter(self, drv: Driver, spec: Any, where: str) -> None:
        if not isinstance(spec, dict) or 'target' not in spec or set(spec) - _PARAM_KEYS:
            raise self.fail(where, f'expected a parameter {{target, low, high, ...}}, got '
                                   f'{describe_value(spec)}')
        drv.add_parameter(spec['target'], low=self.value(spec.get('low'), where),
                          high=self.value(spec.get('high'), where),
                          scaler=spec.get('scaler', 1.0), adder=spec.get('adder', 0.0),
                          fd_step=spec.get('fd_step'), name=spec.get('name'))

    def apply_values(self, obj: Container, values: Any, where: str) -> None:
        if not isinstance(values, dict):
            raise self.fail(where, f'variables: expected a mapping name -> value, got '
                                   f'{describe_value(values)}')
        known = tree.variables(obj)
        for name, data in values.items():
            path = _join(where, name)
            if name not in known:
                raise self.fail(path, f'{type(obj).__name__} has no variable {name!r} '
                                      f'(variables: {", ".join(known) or "none"})')
            var = known[name]
            klass = var.klass if isinstance(var, Instance) else None
            value = self.value(data, path, obj, base=klass if isinstance(klass, type) else None,
                               place=path)
            try:
                setattr(obj, name, value)
            except Exception as exc:
                raise self.fail(path, str(exc)) from exc


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
