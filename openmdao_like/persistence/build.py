"""The structured description -> a model. Each node's class is constructed with its saved
settings (so ``configure`` runs as in a fresh model), then the structure is made to match the
description exactly: children added, replaced or removed, variables added, connections,
workflows, parameters, objectives, constraints and responses replayed where they differ, and
every variable set to its saved value. Only classes of model types are created."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ..assembly import Assembly
from ..container import Container
from ..drivers.driver import Driver
from ..errors import PathError, PersistenceError, describe as describe_value
from ..variables.base import Variable
from ..variables.file import FileRef
from ..workflow import Workflow
from .describe import Describer
from .extensions import node_handler
from .safety import creatable_object_class, find_class_for_file
from .settings import read_settings, split_settings
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
    """

    def __init__(self, source: str, versions: dict[str, str | None] | None = None,
                 creators: dict[str, Creator] | None = None):
        self.source = source
        self.versions = versions or {}
        self.creators = creators or {}
        self._classes: dict[str, type] = {}

    def fail(self, where: str, message: str) -> PersistenceError:
        """The error for a problem at model path ``where``."""
        return PersistenceError(f'{self.source}: {where or "<top>"}: {message}')

    # -- classes and values ---------------------------------------------------------------------
    def find_class(self, name: Any, where: str, base: type | tuple[type, ...] | None,
                   what: str) -> type:
        """The class called ``name``, which must derive from ``base`` (or be creatable)."""
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
        ok = issubclass(cls, base) if base is not None else creatable_object_class(cls)
        if not ok:
            expected = (base.__name__ if isinstance(base, type) else
                        ' or '.join(b.__name__ for b in base) if base else 'model type')
            raise self.fail(where, f'{what} {name!r} is a {cls.__module__}.{cls.__qualname__}, '
                                   f'not a {expected}; a model file may only create model '
                                   f'types')
        return cls

    def value(self, data: Any, where: str, owner: Container | None = None) -> Any:
        """YAML data -> the value (creating tagged objects, resolving files to ``owner``)."""
        if isinstance(data, list):
            return [self.value(v, where, owner) for v in data]
        if isinstance(data, tuple):
            return tuple(self.value(v, where, owner) for v in data)
        if isinstance(data, dict):
            return {k: self.value(v, where, owner) for k, v in data.items()}
        if isinstance(data, ClassRef):
            return self.find_class(data.name, where, object, 'class')
        if isinstance(data, ObjectSpec):
            cls = self.find_class(data.name, where, None, 'object class')
            args = {k: self.value(v, f'{where}.{k}') for k, v in data.args.items()}
            return self.construct(cls, data.name, args, where)
        if isinstance(data, FileSpec):
            return self.file_ref(data, where, owner)
        return data

    def file_ref(self, spec: FileSpec, where: str, owner: Container | None) -> FileRef:
        """A FileRef below ``owner``'s directory; a path that would leave it is refused."""
        path = spec.path
        norm = os.path.normpath(path)
        if os.path.isabs(path) or norm == '..' or norm.startswith('..' + os.sep):
            raise PathError(f'{self.source}: {where}: file reference {path!r} escapes the '
                            f'model directory (expected a path relative to the component '
                            f'directory, without "..")')
        return FileRef(path, owner, spec.binary, spec.content_type)

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
            raise self.fail(where, f'cannot create {name} with settings {settings!r}: '
                                   f'{type(exc).__name__}: {exc}') from exc
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
            if parent is not None and parent._children.get(name) is not obj:
                parent.add(name, obj)
            self.apply_values(obj, node.get('variables') or {}, where)
            return obj
        saved = node.get('settings') or {}
        if existing is not None and type(existing) is cls and _same_settings(existing, saved):
            obj = existing
        else:
            obj = self.construct(cls, typname, self.value(saved, where), where)
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
        settings = self.value(node.get('settings') or {}, where)
        obj = self.construct(None, typname, settings, where)
        if not isinstance(obj, Container):
            raise self.fail(where, f'the version policy created {describe_value(obj)} for '
                                   f'{typname}, not a model object')
        if parent is not None:
            parent.add(name, obj)
        obj.directory = node.get('directory', '')
        self.apply_values(obj, node.get('variables') or {}, where)
        return obj

    def apply(self, obj: Container, node: dict[str, Any], where: str) -> None:
        """Make ``obj`` match ``node``: structure first, then values."""
        obj.directory = node.get('directory', '')
        self.apply_added_variables(obj, node.get('added_variables') or {}, where)
        self.apply_children(obj, node.get('children') or {}, where)
        if isinstance(obj, Assembly):
            self.apply_connections(obj, node.get('connections') or [], where)
            for name, child in obj._children.items():
                if isinstance(child, Driver):
                    self.apply_driver(child, node['children'][name], _join(where, name))
            drivers = node.get('driver_workflow')
            obj.driver_workflow = None if drivers is None else list(drivers)
            obj.recorders = [self.value(r, f'{_join(where, "recorders")}[{i}]')
                             for i, r in enumerate(node.get('recorders') or [])]
        self.apply_values(obj, node.get('variables') or {}, where)

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
        for name in [n for n in obj._children if n not in nodes]:
            obj.remove(name)
        for name, child_node in nodes.items():
            self.build(child_node, _join(where, name), obj._children.get(name), obj, name)
        if list(obj._children) != list(nodes):
            obj._children = {name: obj._children[name] for name in nodes}
            obj._config_changed()

    def apply_connections(self, asm: Assembly, conns: Any, where: str) -> None:
        wanted = []
        for i, conn in enumerate(conns if isinstance(conns, list) else [conns]):
            if not isinstance(conn, dict) or set(conn) - {'src', 'dest', 'link'} or \
                    'src' not in conn or 'dest' not in conn:
                raise self.fail(where, f'connections[{i}]: expected {{src, dest, link}}, got '
                                       f'{describe_value(conn)}')
            wanted.append((conn['src'], conn['dest'], conn.get('link', 'push')))
        current = [(c.src, c.dest, c.link) for c in asm._connections.values()]
        if current == wanted:
            return
        asm._connections.clear()
        asm._config_changed()
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
        known = obj._vars()
        for name, data in values.items():
            path = _join(where, name)
            if name not in known:
                raise self.fail(path, f'{type(obj).__name__} has no variable {name!r} '
                                      f'(variables: {", ".join(known) or "none"})')
            value = self.value(data, path, obj)
            try:
                setattr(obj, name, value)
            except Exception as exc:
                raise self.fail(path, str(exc)) from exc


def _same_settings(obj: Container, saved: Any) -> bool:
    """Whether ``obj`` (made by a parent's configure) has the saved settings."""
    try:
        return _same(Describer().value(read_settings(obj, obj._where()), ''), saved)
    except PersistenceError:
        return False


def _expr(item: Any) -> tuple[str, str | None]:
    if isinstance(item, dict):
        return item['expr'], item.get('name')
    return item, None


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
