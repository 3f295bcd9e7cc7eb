"""The allocators of the resources config file (YAML), which the RAM reads on first use.

The file is ``$OPENMDAO_LIKE_RESOURCES`` when set, else
``$XDG_CONFIG_HOME/openmdao_like/resources.yaml`` (``~/.config/...``) when it exists::

    allocators:
      - type: LocalAllocator      # built-in name, entry point or module:Class / module.Class
        name: LocalHost
        total_cpus: 4
      - type: SlurmAllocator
        name: cluster
        partition: debug

Every other key of an item is passed to the class as a keyword argument. Each error names the
file, the item (``allocators[1]``) and the option.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
from typing import Any

from ..errors import OpenMDAOLikeError, describe
from ..options import HasOptions
from .allocator import Allocator
from .description import did_you_mean

__all__ = ['ResourceConfigError', 'config_path', 'load_allocators', 'BUILTIN_ALLOCATORS',
           'ENV_VAR', 'ENTRY_POINT_GROUP']

#: Environment variable naming the config file.
ENV_VAR = 'OPENMDAO_LIKE_RESOURCES'
#: Entry-point group of allocator classes from other distributions.
ENTRY_POINT_GROUP = 'openmdao_like.allocator'
#: Built-in allocator types: name -> 'module:Class' (imported only when a file names them).
BUILTIN_ALLOCATORS: dict[str, str] = {
    'LocalAllocator': 'openmdao_like.resources.local:LocalAllocator',
    'ClusterAllocator': 'openmdao_like.resources.cluster:ClusterAllocator',
    'SlurmAllocator': 'openmdao_like.resources.slurm:SlurmAllocator',
    'PBSAllocator': 'openmdao_like.resources.pbs:PBSAllocator',
    'MPIAllocator': 'openmdao_like.resources.mpi:MPIAllocator',
}


class ResourceConfigError(OpenMDAOLikeError, ValueError):
    """The resources config file is missing, not valid YAML, or describes a bad allocator."""


def config_path() -> str | None:
    """The config file in effect: ``$OPENMDAO_LIKE_RESOURCES`` (which must exist), else the
    per-user file when it exists, else None."""
    named = os.environ.get(ENV_VAR)
    if named:
        if not os.path.isfile(named):
            raise ResourceConfigError(f'${ENV_VAR} names {named!r}, which is not a file')
        return named
    base = os.environ.get('XDG_CONFIG_HOME') or os.path.join(os.path.expanduser('~'), '.config')
    path = os.path.join(base, 'openmdao_like', 'resources.yaml')
    return path if os.path.isfile(path) else None


def load_allocators(path: str | None = None) -> list[Allocator]:
    """The allocators the config file ``path`` (default: `config_path`) describes, in its
    order; `ResourceConfigError` naming the file, the item and the option otherwise."""
    import yaml

    if path is None:
        path = config_path()
        if path is None:
            raise ResourceConfigError(f'no resources config file: set ${ENV_VAR} or create '
                                      f'{_user_file()}')
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ResourceConfigError(f'{path}: cannot read it: {exc.strerror or exc}') from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' line {mark.line + 1}, column {mark.column + 1}:' if mark else ''
        problem = getattr(exc, 'problem', None) or str(exc)
        raise ResourceConfigError(f'{path}:{where} not valid YAML: {problem}') from None
    if not isinstance(data, dict) or not isinstance(data.get('allocators'), list) \
            or not data['allocators']:
        given = describe(data.get('allocators')) if isinstance(data, dict) else describe(data)
        raise ResourceConfigError(f'{path}: expected a mapping with a non-empty "allocators" '
                                  f'list, got {given}')
    unknown = [str(k) for k in data if k != 'allocators']
    if unknown:
        raise ResourceConfigError(f'{path}: unknown top-level keys {", ".join(unknown)}; only '
                                  f'"allocators" is expected')
    allocators: list[Allocator] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data['allocators']):
        allocator = _build(path, index, item)
        if allocator.name in seen:
            raise ResourceConfigError(f'{path}: allocators[{index}]: name {allocator.name!r} is '
                                      f'already used by allocators[{seen[allocator.name]}]')
        seen[allocator.name] = index
        allocators.append(allocator)
    return allocators


def _user_file() -> str:
    base = os.environ.get('XDG_CONFIG_HOME') or '~/.config'
    return os.path.join(base, 'openmdao_like', 'resources.yaml')


def _build(path: str, index: int, item: Any) -> Allocator:
    """The allocator of ``allocators[index]``."""
    where = f'{path}: allocators[{index}]'
    if not isinstance(item, dict):
        raise ResourceConfigError(f'{where}: expected a mapping with "type" and options, got '
                                  f'{describe(item)}')
    options = dict(item)
    typname = options.pop('type', None)
    if not isinstance(typname, str) or not typname:
        raise ResourceConfigError(f'{where}: "type" should be an allocator class name (one of '
                                  f'{", ".join(BUILTIN_ALLOCATORS)}, an entry point of '
                                  f'{ENTRY_POINT_GROUP} or module:Class), got '
                                  f'{describe(typname)}')
    where = f'{where} ({typname})'
    cls = _allocator_class(where, typname)
    bad_names = [k for k in options if not isinstance(k, str)]
    if bad_names:
        raise ResourceConfigError(f'{where}: option names should be strings, got '
                                  f'{describe(bad_names[0])}')
    accepted = _options_of(cls)
    if accepted is not None:
        for option in options:
            if option not in accepted:
                raise ResourceConfigError(
                    f'{where}: unknown option {option!r}{did_you_mean(option, accepted)}; '
                    f'{typname} accepts {", ".join(accepted) or "no options"}')
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ResourceConfigError(f'{where}: {exc}') from None


def _allocator_class(where: str, typname: str) -> type[Allocator]:
    """The class a ``type`` names: built-in, entry point, then import path."""
    target = BUILTIN_ALLOCATORS.get(typname)
    if target is None:
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if entry.name == typname:
                target = entry.value
                break
    if target is None:
        target = typname
    module_name, sep, attr = target.partition(':')
    if not sep:
        module_name, _, attr = target.rpartition('.')
    if not module_name or not attr:
        raise ResourceConfigError(
            f'{where}: unknown type {typname!r}{did_you_mean(typname, BUILTIN_ALLOCATORS)}; '
            f'expected one of {", ".join(BUILTIN_ALLOCATORS)}, an entry point of '
            f'{ENTRY_POINT_GROUP} or module:Class')
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split('.'):
            obj = getattr(obj, part)
    except Exception as exc:
        raise ResourceConfigError(f'{where}: cannot load type {typname!r} from {target!r}: '
                                  f'{type(exc).__name__}: {exc}') from None
    if not (isinstance(obj, type) and issubclass(obj, Allocator)):
        raise ResourceConfigError(f'{where}: type {typname!r} ({target}) should be an Allocator '
                                  f'subclass, got {describe(obj)}')
    return obj


def _options_of(cls: type) -> list[str] | None:
    """The keyword options ``cls`` accepts (its declared options, see `openmdao_like.options`);
    None when it takes ``**kwargs`` (any)."""
    if issubclass(cls, HasOptions):
        return list(cls._option_template)
    params = list(inspect.signature(cls).parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
