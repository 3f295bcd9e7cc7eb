"""``openmdao-like cases FILE`` and ``openmdao-like plot FILE``: browse and plot the cases a
recorder wrote (CSV, JSON Lines or SQLite).

- ``cases``: the counts per driver (total, ok, failed), then the cases selected by
  ``--driver``, ``--status`` and ``--where`` (safe expressions over the file's variables, all
  of which must hold) as a table of ``--limit`` rows; ``--json`` prints them as JSON instead;
  ``--export OUT.csv|OUT.json`` writes them.
- ``plot``: ``--kind history|scatter|parallel`` of one driver's cases to ``-o OUT`` (.png,
  .svg, .pdf; parallel also .html, interactive), the variables chosen by ``--vars``.

A missing FILE is a usage error (exit 2); a file that is not a case file, an unknown driver or
variable, an expression that is not allowed or a plot that cannot be made fail (exit 1) with
the library's message.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ExpressionError, RecorderError, ViewError, error_summary
from ..view.cases import (STATUSES, describe_filters, export_cases, read_case_file,
                          summarize, variable_names)
from ..view.plots import KINDS, plot_cases
from ..view.table import format_table
from ..view.values import json_value
from . import CommandError, UsageError

#: Rows ``cases`` shows unless ``--limit`` says otherwise.
DEFAULT_LIMIT = 20
#: What the library raises about a case file, a selection or a plot (ImportError: matplotlib,
#: the view extra, is not installed).
_FAILURES = (ViewError, RecorderError, ExpressionError, OSError, ImportError)


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``cases`` and ``plot`` subcommands."""
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument('file', metavar='FILE',
                         help='case file written by a recorder (.csv, .jsonl, .sqlite)')
    filters.add_argument('--driver', metavar='D',
                         help="only the cases of the driver at this dotted path (cases: all "
                              "drivers by default; plot: the file's only driver, or 'driver')")
    filters.add_argument('--status', choices=STATUSES, help='only the cases with this status')
    filters.add_argument('--where', metavar='EXPR', action='append', default=[],
                         help="only the cases for which EXPR holds, e.g. 'p.x > 3' (the "
                              'operators and functions of driver constraints); may be '
                              'repeated: all must hold')
    cases = subparsers.add_parser(
        'cases', parents=[common, filters], help='count, list and export the cases of a case file',
        description='Count the cases of a case file per driver, then list the selected ones.')
    cases.add_argument('--limit', metavar='N', type=int, default=DEFAULT_LIMIT,
                       help=f'cases listed (default {DEFAULT_LIMIT}; 0: all)')
    cases.add_argument('--json', action='store_true',
                       help='print the selected cases as JSON (NaN as null) instead of tables')
    cases.add_argument('--export', metavar='OUT',
                       help='write the selected cases to OUT.csv (a case file) or OUT.json')
    cases.set_defaults(handler=cases_command, parser=cases)
    plot = subparsers.add_parser(
        'plot', parents=[common, filters], help='plot the cases of a case file',
        description='Plot the cases of one driver: history (objectives, constraints and '
                    'parameters per iteration), scatter (a scatter matrix) or parallel '
                    '(parallel coordinates; .html is interactive).')
    plot.add_argument('--kind', choices=KINDS, required=True, help='the kind of plot')
    plot.add_argument('-o', '--output', metavar='OUT', required=True,
                      help='file to write: .png, .svg or .pdf (parallel also .html)')
    plot.add_argument('--vars', metavar='A,B,...', type=_names,
                      help='the variables to plot, comma-separated (default: every scalar '
                           'numeric one)')
    plot.set_defaults(handler=plot_command, parser=plot)


def _names(text: str) -> list[str]:
    """``--vars a,b`` as a list of names."""
    names = [name.strip() for name in text.split(',')]
    if not all(names):
        raise argparse.ArgumentTypeError(f'expected comma-separated variable names, got '
                                         f'{text!r}')
    return names


def _case_path(args: argparse.Namespace) -> Path:
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f'{args.file!r}: no such case file' if not path.exists()
                         else f'{args.file!r}: expected a case file, found a directory')
    return path


def cases_command(args: argparse.Namespace) -> int:
    """``cases FILE``: counts per driver, then the selected cases (or JSON), and the export."""
    path = _case_path(args)
    if args.limit < 0:
        raise UsageError(f'--limit: expected a number of cases, 0 or more, got {args.limit}')
    try:
        case_file = read_case_file(path)
        records = case_file.select(args.driver, args.status, args.where)
        if args.export:
            export_cases(records, args.export)
    except _FAILURES as exc:
        raise CommandError(f'cannot list the cases of {args.file!r}') from exc
    if args.json:
        print(json.dumps([json_value(record) for record in records], indent=1, allow_nan=False))
    else:
        print(cases_text(args.file, case_file.records, records,
                         describe_filters(args.driver, args.status, args.where), args.limit))
    if args.export:
        print(f'wrote {_cases(len(records))} to {args.export}',
              file=sys.stderr if args.json else sys.stdout)
    return 0


def cases_text(name: str, everything: Sequence[dict[str, Any]],
               selected: Sequence[dict[str, Any]], filters: str, limit: int) -> str:
    """The counts per driver of ``everything``, then up to ``limit`` rows of ``selected``."""
    counts = summarize(everything)
    if not everything:
        return f'{name}: no cases (an empty case file)'
    blocks = [f'{name}: {_cases(len(everything))}\n' + format_table(
        ['driver', 'total', 'ok', 'failed'],
        [[d, c['total'], c['ok'], c['failed']] for d, c in counts.items()])]
    if not selected:
        blocks.append(f'no case matches {filters}')
        return '\n\n'.join(blocks)
    shown = selected if limit == 0 else selected[:limit]
    names = variable_names(shown)
    errors = any(record['error'] for record in shown)
    rows = [[r['id'], r['driver'], r['iteration'], r['status']] + [r.get(n) for n in names]
            + ([error_summary(r['error']) if r['error'] else ''] if errors else [])
            for r in shown]
    selection = f'{len(selected)} of {_cases(len(everything))} selected ({filters})'
    table = format_table(['id', 'driver', 'iteration', 'status'] + names
                         + (['error'] if errors else []), rows)
    more = len(selected) - len(shown)
    blocks.append(f'{selection}:\n{table}' + (f'\n({more} more not shown: --limit 0 shows '
                                               f'all)' if more else ''))
    return '\n\n'.join(blocks)


def _cases(n: int) -> str:
    return f'{n} case' if n == 1 else f'{n} cases'


def plot_command(args: argparse.Namespace) -> int:
    """``plot FILE --kind K -o OUT``."""
    path = _case_path(args)
    try:
        out = plot_cases(path, args.kind, args.output, driver=args.driver, variables=args.vars,
                         status=args.status, where=args.where)
    except _FAILURES as exc:
        raise CommandError(f'cannot plot {args.file!r}') from exc
    print(f'wrote {out}')
    return 0
