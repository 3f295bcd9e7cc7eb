"""The read-only model-tree API: what higher layers (drivers, persistence, remote, components,
the CLI) read of a model, instead of the kernel's private attributes.

Every function takes a node of the tree (a `Container`: component, assembly, driver, or a
remote proxy) and returns a view that cannot change the model: mappings are read-only, names
are strings. The kernel keeps its internals free to change behind these functions::

    from openmdao_like import tree

    for name, child in tree.children(top).items():
        print(tree.where(child), sorted(tree.variables(child)))
    for dest, conn in tree.connections(top).items():
        print(conn.src, '->', dest)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ['where', 'path', 'children', 'variables', 'connections']


def where(node: Any) -> str:
    """How messages name ``node``: its dotted path, else its name, else its type."""
    return node._where()


def path(node: Any) -> str:
    """The dotted path of ``node`` from the top of its tree ('' for the top)."""
    return node.get_pathname()


def children(node: Any) -> Mapping[str, Any]:
    """Name -> child of ``node``, in the order they were added (read-only)."""
    return MappingProxyType(node._children)


def variables(node: Any) -> Mapping[str, Any]:
    """Name -> `Variable` of every input and output of ``node`` (read-only)."""
    return MappingProxyType(node._vars())


def connections(assembly: Any) -> Mapping[str, Any]:
    """Destination path -> `Connection` of every connection of ``assembly`` (read-only)."""
    return MappingProxyType(assembly._connections)
