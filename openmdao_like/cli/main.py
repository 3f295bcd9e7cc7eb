"""Entry point of ``openmdao-like``: the top-level parser and the mapping of errors to exit
statuses (see `openmdao_like.cli`).

Each subcommand module provides ``add_parser(subparsers, common)``; the parser it adds sets the
defaults ``handler`` (``args -> int``, the exit status) and ``parser`` (for usage messages).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import Sequence

from .._version import __version__
from ..errors import StoreError, component_notes
from . import (CommandError, UsageError, http, jobs, plugin, resources, results, run, runner,
               server, view)

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = (run, view, results, runner, jobs, plugin, server, resources, http)

LOG_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)


def build_parser() -> argparse.ArgumentParser:
    """The ``openmdao-like`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog='openmdao-like',
        description='Run and manage openmdao_like models.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    parser.add_argument('-v', '--verbose', action='count', default=0,
                        help='log more (-v: INFO, -vv: DEBUG) and show full tracebacks')
    # Lets -v also follow the subcommand ("openmdao-like run m.py -v").
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('-v', '--verbose', action='count', default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for module in COMMANDS:
        module.add_parser(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``openmdao-like`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the subcommand's parser, so that its usage is shown
        args.parser.error(f'unrecognized arguments: {" ".join(extra)}')
    verbose = args.verbose
    logging.basicConfig(level=LOG_LEVELS[min(verbose, len(LOG_LEVELS) - 1)], stream=sys.stderr,
                        format='%(levelname)s %(name)s: %(message)s')
    try:
        return args.handler(args)
    except UsageError as exc:
        args.parser.print_usage(sys.stderr)
        print(f'{args.parser.prog}: error: {exc}', file=sys.stderr)
        return 2
    except CommandError as exc:
        report_error(f'{args.parser.prog}: error: {exc}', exc.__cause__, verbose)
        return 1
    except StoreError as exc:  # its message names the store, what was asked and why not
        report_error(f'{args.parser.prog}: error: {exc}', None, verbose)
        return 1
    except KeyboardInterrupt:
        print(f'{args.parser.prog}: interrupted', file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in the command itself: still no bare traceback
        report_error(f'{args.parser.prog}: internal error', exc, verbose)
        return 1


def report_error(message: str, cause: BaseException | None, verbose: int) -> None:
    """Print ``message`` and the cause's type, message and the component that raised it; its
    traceback when verbose."""
    if cause is None:
        print(message, file=sys.stderr)
        return
    if verbose:
        traceback.print_exception(cause, file=sys.stderr)
    where = ''.join(f', {note}' for note in component_notes(cause))
    print(f'{message}: {type(cause).__name__}: {cause}{where}', file=sys.stderr)
    if not verbose:
        print('(run with -v for the full traceback)', file=sys.stderr)


if __name__ == '__main__':
    sys.exit(main())
