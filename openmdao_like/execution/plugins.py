"""Executors from plugins: the entry-point group ``openmdao_like.executor``.

A third-party executor is a `PoolExecutor` subclass whose ``pool_class`` is its own
`WorkerPool` (the loop is never copied); its distribution declares it as::

    [project.entry-points."openmdao_like.executor"]
    "mypkg.FarmExecutor" = "mypkg.farm:FarmExecutor"
"""

from __future__ import annotations

from importlib.metadata import entry_points

from ..options import suggest
from .base import Executor

__all__ = ['GROUP', 'executor_types', 'get_executor_type']

#: The entry-point group executors register under.
GROUP = 'openmdao_like.executor'


def executor_types() -> dict[str, str]:
    """Entry-point name -> ``module:attribute`` of every installed executor."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def get_executor_type(name: str) -> type[Executor]:
    """The executor class registered as ``name`` (`LookupError` naming the installed ones)."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        known = sorted(executor_types())
        raise LookupError(f'no executor {name!r} in entry-point group {GROUP!r}'
                          f'{suggest(name, known)} (installed: {", ".join(known) or "none"})')
    cls = found[0].load()
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise TypeError(f'entry point {name!r} of group {GROUP!r} names {cls!r}, which is not '
                        f'an openmdao_like.execution.Executor subclass')
    return cls
