"""``openmdao-like view MODEL`` (the model view, one self-contained HTML file) and
``openmdao-like show MODEL`` (the variable table in the terminal).

MODEL is loaded as ``openmdao-like run`` loads it (a Python file or a saved model: ``.yaml``,
``.pkl``, ``.zip`` or a directory); a model that fails to load is reported with its own error.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
from typing import Any

from ..view import write_model_view
from ..view.variables import STYLES, format_variables, variable_rows
from . import CommandError
from .run import add_model_arguments, configured_model, model_scope


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``view`` and ``show`` subcommands to ``subparsers``; the ``view`` parser."""
    view = subparsers.add_parser(
        'view', parents=[common], help='write the model view: tree, N2 matrix, drivers (HTML)',
        description='Write one self-contained HTML file showing MODEL: its component tree, the '
                    'N2 matrix of its connections (units, conversions, link styles, remote '
                    'hosts), every connection, and its drivers with their workflows. Open it '
                    'in any browser; it needs no network.')
    add_model_arguments(view)
    view.add_argument('-o', '--output', metavar='FILE.html',
                      help='where to write the view (default: MODEL\'s name with .html, in the '
                           'current directory)')
    view.add_argument('--title', help='the page title (default: the model\'s name and class)')
    view.add_argument('--run', action='store_true',
                      help='run the model first, so that the view shows computed values')
    view.set_defaults(handler=view_command, parser=view)

    show = subparsers.add_parser(
        'show', parents=[common], help='print every variable of a model as a table',
        description='Print one row per variable of MODEL: path, direction, value, units, '
                    'bounds, and the source of each connected input (or the driver whose '
                    'parameter it is).')
    add_model_arguments(show)
    show.add_argument('--match', metavar='GLOB',
                      help="only the variables whose path matches this glob (e.g. 'dis1.*')")
    show.add_argument('--style', choices=('auto',) + STYLES, default='auto',
                      help='plain aligned columns, or a rich boxed table (default: rich on a '
                           'terminal when the rich package is installed, else plain)')
    show.add_argument('--json', action='store_true',
                      help='print the rows as JSON (values as numbers and lists) instead')
    show.add_argument('--run', action='store_true',
                      help='run the model first, so that the table shows computed values')
    show.set_defaults(handler=show_command, parser=show)
    return view


def loaded(args: argparse.Namespace) -> Any:
    """The model of ``args`` (loaded as ``run`` loads it, ``--set`` applied), run first when
    ``--run`` is given."""
    with model_scope(args.model):
        top = configured_model(args)
        if args.run:
            try:
                top.run()
            except Exception as exc:
                raise CommandError(f'running {args.model!r} failed') from exc
    return top


def default_output(model: str) -> str:
    """``sellar.py`` -> ``sellar.html``; a saved directory ``runs/m/`` -> ``m.html``."""
    stem = os.path.splitext(os.path.basename(os.path.normpath(model)))[0] or 'model'
    return f'{stem}.html'


def view_command(args: argparse.Namespace) -> int:
    """Handler of ``view``: load MODEL, write its view, say where."""
    output = args.output or default_output(args.model)
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise CommandError(f'-o {output}: no such directory {parent!r}')
    top = loaded(args)
    path = write_model_view(top, output, args.title)
    print(f'model view of {args.model} written to {path} ({os.path.getsize(path):,} bytes)')
    return 0


def show_command(args: argparse.Namespace) -> int:
    """Handler of ``show``: load MODEL, print its variables."""
    rows = variable_rows(loaded(args), args.match)
    if args.json:
        print(json.dumps([{key: row['data'] if key == 'value' else value
                           for key, value in row.items() if key != 'data'} for row in rows],
                         indent=1))
        return 0
    if not rows:
        what = f'matching {args.match!r}' if args.match else 'at all'
        raise CommandError(f'{args.model}: no variables {what}')
    style = args.style
    if style == 'auto':
        style = 'rich' if sys.stdout.isatty() and importlib.util.find_spec('rich') else 'plain'
    try:
        table = format_variables(rows, style, width=shutil.get_terminal_size((160, 40)).columns)
    except ImportError as exc:  # --style rich without the rich package (the view extra)
        raise CommandError('cannot draw a rich table') from exc
    print(table)
    return 0

