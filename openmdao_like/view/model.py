"""What the model view shows, as plain data: every node of the tree with its variables, every
connection with the units and link style of both ends, and every driver with its workflow and
its parameters, objectives, constraints and responses.

`describe_model` reads the model through the read-only `openmdao_like.tree` API and the
drivers' public getters; the result is JSON-ready (strings, numbers, lists, dicts) so that the
HTML page, ``openmdao-like show --json`` and tests all read the same description.
"""

from __future__ import annotations

from typing import Any, Iterable

from .. import tree
from ..assembly import Assembly
from ..container import split_index
from ..drivers import Driver
from .values import json_value, value_text

#: Variable metadata that a description carries when set.
BOUNDS = ('low', 'high')


def node_kind(node: Any) -> str:
    """'driver', 'assembly' or 'component'."""
    if isinstance(node, Driver):
        return 'driver'
    return 'assembly' if isinstance(node, Assembly) else 'component'


def read_value(node: Any, name: str) -> Any:
    """The value of ``node.name``, or the error reading it as text (a view never fails on one
    value)."""
    try:
        return getattr(node, name)
    except Exception as exc:  # e.g. a remote component whose server went away
        return f'<{type(exc).__name__}: {exc}>'


def describe_variable(node: Any, name: str, var: Any) -> dict[str, Any]:
    """Name, direction, type, units, bounds, description and value of one variable."""
    meta = var.var_metadata()
    value = read_value(node, name)
    found = {'name': name, 'iotype': meta.get('iotype'), 'type': type(var).__name__,
             'units': meta.get('units'), 'desc': meta.get('desc') or '',
             'value': value_text(value), 'data': json_value(value)}
    found.update((key, json_value(meta[key])) for key in BOUNDS if meta.get(key) is not None)
    return found


def _variable_units(owner: Any, name: str) -> str | None:
    var = tree.variables(owner).get(split_index(name)[0])
    return None if var is None else var.var_metadata().get('units')


def _joined(prefix: str, name: str) -> str:
    return f'{prefix}.{name}' if prefix else name


def describe_connections(asm: Any) -> list[dict[str, Any]]:
    """The connections of assembly ``asm`` (not of its sub-assemblies), with full paths."""
    prefix = tree.path(asm)
    found = []
    for conn in tree.connections(asm).values():
        src_owner = asm if conn.src_comp is None else tree.children(asm)[conn.src_comp]
        dest_owner = asm if conn.dest_comp is None else tree.children(asm)[conn.dest_comp]
        found.append({
            'src': _joined(prefix, conn.src), 'dest': _joined(prefix, conn.dest),
            'src_node': tree.path(src_owner), 'dest_node': tree.path(dest_owner),
            'link': conn.link,
            'src_units': _variable_units(src_owner, conn.src_var),
            'dest_units': _variable_units(dest_owner, conn.dest_var),
            'scale': conn.scale, 'offset': conn.offset,
            'assembly': prefix})
    return found


def _driver_refs(driver: Driver) -> dict[str, list[dict[str, Any]]]:
    """Parameters, objectives, constraints and responses of ``driver``: names, expressions and
    the full paths of the variables each reads or sets."""
    prefix = tree.path(driver.parent)

    def full(paths: Iterable[str]) -> list[str]:
        return [_joined(prefix, p) for p in paths]

    parameters = [{'name': name, 'targets': full(p.targets), 'low': json_value(p.low),
                   'high': json_value(p.high)} for name, p in driver.get_parameters().items()]
    objectives = [{'name': name, 'text': o.text, 'refs': full(o.expr.refs)}
                  for name, o in driver.get_objectives().items()]
    constraints = [{'name': name, 'text': c.text, 'refs': full(c.refs)}
                   for name, c in driver.get_constraints().items()]
    responses = [{'name': text, 'text': text, 'refs': full(expr.refs)}
                 for text, expr in driver.get_response_exprs().items()]
    return {'parameters': parameters, 'objectives': objectives, 'constraints': constraints,
            'responses': responses}


def describe_driver(driver: Driver) -> dict[str, Any]:
    """A driver's path, type, workflow (full paths) and what it sets and reads."""
    scope = driver.parent
    prefix = tree.path(scope)
    return {'path': tree.path(driver), 'type': type(driver).__name__,
            'workflow': [_joined(prefix, name) for name in driver.workflow
                         if name in tree.children(scope)],
            **_driver_refs(driver)}


def _host(node: Any) -> str | None:
    """Where ``node`` runs when it is a proxy (its server or service), else None."""
    host = node.remote_location
    return host if isinstance(host, str) else None


def describe_node(node: Any, parent: int | None) -> dict[str, Any]:
    """One node of the tree: path, name, class, kind, where it runs, its variables."""
    return {'path': tree.path(node), 'name': node.name or '', 'type': type(node).__name__,
            'kind': node_kind(node), 'parent': parent, 'host': _host(node),
            'vars': [describe_variable(node, name, var)
                     for name, var in tree.variables(node).items()]}


def describe_model(top: Any, title: str | None = None) -> dict[str, Any]:
    """The whole model under ``top`` (an assembly, usually the top one) as JSON-ready data:
    ``nodes`` (depth first, each naming its parent's index), ``connections`` (of every
    assembly), ``drivers``, and a ``title``."""
    if not isinstance(top, Assembly):
        raise TypeError(f'describe_model: expected an Assembly, got {type(top).__name__}')
    nodes: list[dict[str, Any]] = []
    connections: list[dict[str, Any]] = []
    drivers: list[dict[str, Any]] = []

    def visit(node: Any, parent: int | None) -> None:
        index = len(nodes)
        nodes.append(describe_node(node, parent))
        if isinstance(node, Driver):
            drivers.append(describe_driver(node))
        if isinstance(node, Assembly):
            connections.extend(describe_connections(node))
        for child in tree.children(node).values():
            visit(child, index)

    visit(top, None)
    return {'title': title or f'{top.name or "top"} ({type(top).__name__})',
            'top': type(top).__name__, 'nodes': nodes, 'connections': connections,
            'drivers': drivers}
