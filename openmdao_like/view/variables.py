"""The variable table of a model (``openmdao-like show``): one row per variable with its path,
direction, value, units, bounds and where an input's value comes from (a connection's source or
a driver's parameter), as data and as a plain or a rich text table."""

from __future__ import annotations

import fnmatch
import io
from typing import Any

from ..errors import ViewError
from ..extras import require
from .model import describe_model
from .table import format_table, format_value

#: Columns of the text tables, in order: (row key, header).
COLUMNS = (('path', 'path'), ('iotype', 'io'), ('value', 'value'), ('units', 'units'),
           ('low', 'low'), ('high', 'high'), ('source', 'source'))
STYLES = ('plain', 'rich')


def variable_rows(top: Any, pattern: str | None = None) -> list[dict[str, Any]]:
    """One dict per variable of every node under ``top`` (depth first): ``path``, ``iotype``,
    ``type``, ``value`` (text), ``data`` (JSON value), ``units``, ``low``, ``high``,
    ``source`` and ``desc``. ``pattern`` (a glob such as ``'dis1.*'``) keeps only the paths
    it matches."""
    model = describe_model(top)
    sources = {c['dest']: c['src'] for c in model['connections']}
    for driver in model['drivers']:
        for param in driver['parameters']:
            for target in param['targets']:
                sources.setdefault(target, f'parameter of {driver["path"]}')
    rows = []
    for node in model['nodes']:
        prefix = f'{node["path"]}.' if node['path'] else ''
        for var in node['vars']:
            path = prefix + var['name']
            if pattern is not None and not fnmatch.fnmatchcase(path, pattern):
                continue
            rows.append({'path': path, 'iotype': var['iotype'], 'type': var['type'],
                         'value': var['value'], 'data': var['data'], 'units': var['units'],
                         'low': var.get('low'), 'high': var.get('high'),
                         'source': sources.get(path), 'desc': var['desc']})
    return rows


def format_variables(rows: list[dict[str, Any]], style: str = 'plain',
                     width: int = 120) -> str:
    """``rows`` (from `variable_rows`) as a text table: ``'plain'`` (aligned columns) or
    ``'rich'`` (boxed, wrapped to ``width`` columns; needs the ``rich`` package)."""
    if style not in STYLES:
        raise ViewError(f'format_variables: expected style to be one of {", ".join(STYLES)}, '
                        f'got {style!r}')
    headers = [header for _, header in COLUMNS]
    cells = [[row[key] for key, _ in COLUMNS] for row in rows]
    if style == 'plain':
        return format_table(headers, cells)
    rich_console = require('rich.console', 'openmdao-like show --style rich', 'view')
    rich_table = require('rich.table', 'openmdao-like show --style rich', 'view')
    rich_text = require('rich.text', 'openmdao-like show --style rich', 'view')
    table = rich_table.Table(*headers, title=f'{len(rows)} variables', title_justify='left')
    for row in cells:  # Text: a value such as '[1, 2]' is not read as rich markup
        table.add_row(*[rich_text.Text(format_value(value)) for value in row])
    out = io.StringIO()
    console = rich_console.Console(file=out, width=width, force_terminal=False,
                                   color_system=None, highlight=False)
    console.print(table)
    return out.getvalue().rstrip('\n')
