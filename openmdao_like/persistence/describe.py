"""Model -> the structured description that the YAML format writes: for each node its class,
settings, directory, variable values, added variables, children, and (assemblies) connections,
driver order and recorders, (drivers) workflow, parameters, objectives, constraints and
responses. Every class named is collected, with its distribution and version, for the header."""

from __future__ import annotations

import os
import sys
import types
from typing import Any

import numpy as np

from .. import tree
from ..assembly import Assembly
from ..container import Container
from ..drivers.driver import Driver
from ..errors import PersistenceError, describe as describe_value
from ..factories import TypeInfo, factory_manager
from ..factories.importer import ImportFactory
from ..variables.base import Variable
from ..variables.file import FileRef
from ..variables.simple import Instance
from .extensions import node_handler
from .safety import creatable_object_class
from .settings import read_settings
from .yaml_io import ClassRef, FileSpec, FlowMap, ObjectSpec

#: Metadata that traits adds by itself; not part of a variable's definition.
_TRAITS_METADATA = ('instance_handler', 'type')


class Describer:
    """Walks a model and builds its description; ``classes`` collects every class named."""

    def __init__(self) -> None:
        self.classes: dict[str, TypeInfo] = {}
        self._names: dict[type, str] = {}

    # -- classes --------------------------------------------------------------------------------
    def class_name(self, cls: type, where: str) -> str:
        """The name under which ``cls`` can be created again (entry point or dotted path)."""
        name = self._names.get(cls)
        if name is not None:
            return name
        info = factory_manager.type_info(cls)
        if info.group is None and (ImportFactory().find_class(info.name) is not cls or
                                   not _importable_elsewhere(cls.__module__)):
            raise PersistenceError(
                f'{where}: class {cls.__qualname__} (module {cls.__module__!r}) cannot be '
                f'imported by name, so a YAML file cannot name it; define it in a module on '
                f'sys.path or in an installed plugin, or save with fmt="pickle"')
        self._names[cls] = info.name
        self.classes[info.name] = info
        return info.name

    # -- values ---------------------------------------------------------------------------------
    def value(self, value: Any, where: str) -> Any:
        """``value`` as YAML data (tags for arrays, tuples, files, classes, objects)."""
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in 'biuf':
                raise PersistenceError(f'{where}: cannot write an array of dtype {value.dtype} '
                                       f'in YAML (numbers and bools only); save with '
                                       f'fmt="pickle"')
            return value
        if isinstance(value, list):
            return [self.value(v, f'{where}[{i}]') for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return tuple(self.value(v, f'{where}[{i}]') for i, v in enumerate(value))
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if not isinstance(key, (str, int, float, bool)):
                    raise PersistenceError(f'{where}: YAML keys must be str, int, float or '
                                           f'bool, got key {describe_value(key)}')
                out[key] = self.value(item, f'{where}[{key!r}]')
            return out
        if isinstance(value, np.dtype):
            return value.name
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, FileRef):
            return FileSpec(value.path, value.binary, value.content_type)
        if isinstance(value, type):
            return ClassRef(self.class_name(value, where))
        if isinstance(value, Container):
            raise PersistenceError(f'{where}: a model object ({tree.where(value)!r}) held in a '
                                   f'setting or variable cannot be written in YAML; add it as '
                                   f'a child instead, or save with fmt="pickle"')
        if isinstance(value, (types.FunctionType, types.MethodType, types.GeneratorType,
                              types.BuiltinFunctionType)) or not creatable_object_class(
                                  type(value)):
            raise PersistenceError(
                f'{where}: cannot write {describe_value(value)} in YAML: only numbers, '
                f'strings, lists, dicts, arrays, files and objects of model types (DOE '
                f'generators, recorders, executors, workflows, registered plugin classes) '
                f'are written; save with fmt="pickle"')
        name = self.class_name(type(value), where)
        args = read_settings(value, where)
        return ObjectSpec(name, {k: self.value(v, f'{where}.{k}') for k, v in args.items()})

    # -- the tree -------------------------------------------------------------------------------
    def node(self, obj: Container) -> dict[str, Any]:
        """The description of ``obj`` and everything below it."""
        handler = node_handler(type(obj))
        if handler is not None:
            return handler.describe(self, obj)
        where = tree.where(obj)
        node: dict[str, Any] = {'class': self.class_name(type(obj), where)}
        settings = read_settings(obj, where)
        if settings:
            node['settings'] = {k: self.value(v, f'{where}.{k}') for k, v in settings.items()}
        if obj.directory:
            node['directory'] = obj.directory
        added = self.added_variables(obj)
        if added:
            node['added_variables'] = added
        values = {}
        for name, var in tree.variables(obj).items():
            self.class_name(type(var), f'{where}.{name}')
            values[name] = self.value(getattr(obj, name), f'{where}.{name}')
        if values:
            node['variables'] = values
        if tree.children(obj):
            node['children'] = {name: self.node(child)
                                for name, child in tree.children(obj).items()}
        if isinstance(obj, Assembly):
            node.update(self.assembly(obj))
        if isinstance(obj, Driver):
            node.update(self.driver(obj))
        return node

    def added_variables(self, obj: Container) -> dict[str, Any]:
        """Definitions of the variables added to this object (``add``, passthroughs)."""
        added = {}
        class_vars = type(obj).__class_traits__
        for name, var in tree.variables(obj).items():
            if name in class_vars and class_vars[name].trait_type is var:
                continue
            added[name] = self.variable(var, f'{tree.where(obj)}.{name}')
        return added

    def variable(self, var: Variable, where: str) -> dict[str, Any]:
        """A variable's definition: its type, default and metadata."""
        meta = {k: v for k, v in var.var_metadata().items() if k not in _TRAITS_METADATA}
        spec: dict[str, Any] = {'type': self.class_name(type(var), where)}
        if isinstance(var, Instance):
            spec['klass'] = ClassRef(self.class_name(var.klass, where))
            meta.pop('copy', None)
        else:
            spec['default'] = self.value(var.default_value, f'{where} (default)')
        spec['metadata'] = {k: self.value(v, f'{where} ({k})') for k, v in meta.items()}
        return spec

    def assembly(self, asm: Assembly) -> dict[str, Any]:
        """Connections (in the order made), the driver order and the recorders."""
        out: dict[str, Any] = {}
        conns = []
        for c in tree.connections(asm).values():
            conn = FlowMap(src=c.src, dest=c.dest)
            if c.link != 'push':
                conn['link'] = c.link
            conns.append(conn)
        if conns:
            out['connections'] = conns
        if asm.driver_workflow:
            out['driver_workflow'] = list(asm.driver_workflow)
        if asm.recorders:
            out['recorders'] = [self.value(r, f'{tree.where(asm)}.recorders[{i}]')
                                for i, r in enumerate(asm.recorders)]
        return out

    def driver(self, drv: Driver) -> dict[str, Any]:
        """Workflow, parameters, objectives, constraints and responses."""
        where = tree.where(drv)
        wf = drv.workflow
        out: dict[str, Any] = {'workflow': {'class': self.class_name(type(wf), where),
                                            'members': list(wf._names)}}
        params = [self.parameter(p, f'{where}.parameters') for p in
                  drv.get_parameters().values()]
        if params:
            out['parameters'] = params
        objectives = [_named(o.text, o.name) for o in drv.get_objectives().values()]
        if objectives:
            out['objectives'] = objectives
        constraints = [_named(c.text, c.name) for c in drv.get_constraints().values()]
        if constraints:
            out['constraints'] = constraints
        if drv.get_responses():
            out['responses'] = drv.get_responses()
        return out

    def parameter(self, param: Any, where: str) -> dict[str, Any]:
        """One parameter: its target(s), bounds, and scaling/name/step when not the defaults."""
        spec: dict[str, Any] = FlowMap({
            'target': param.targets[0] if len(param.targets) == 1 else list(param.targets),
            'low': self.value(param.low, where), 'high': self.value(param.high, where)})
        if param.scaler != 1.0:
            spec['scaler'] = param.scaler
        if param.adder != 0.0:
            spec['adder'] = param.adder
        if param.name != param.targets[0]:
            spec['name'] = param.name
        if param.fd_step is not None:
            spec['fd_step'] = param.fd_step
        return spec


def _importable_elsewhere(module: str) -> bool:
    """Whether another process could import ``module`` from sys.path (not ``__main__``, nor a
    file imported under a private name, as ``openmdao-like run`` does)."""
    top = module.partition('.')[0]
    if top == '__main__':
        return False
    for finder in sys.meta_path:  # the finders themselves: sys.modules is not consulted
        find = getattr(finder, 'find_spec', None)
        try:
            if find is not None and find(top, None) is not None:
                return True
        except Exception:  # a broken finder does not decide
            continue
    return False


def _named(text: str, name: str) -> Any:
    """An expression, with its name only when it is not the expression itself."""
    return text if name == text else {'expr': text, 'name': name}
