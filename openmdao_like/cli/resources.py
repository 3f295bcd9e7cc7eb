"""``openmdao-like resources list|check|keys``: what the configured allocators can serve.

- ``list [--desc D]``: every allocator with its type, how many servers it could run and its
  answer for the description D (default: an empty one) — estimate and reason.
- ``check --desc D``: validate D, then show which allocators could serve it; exit status 1
  when none ever could.
- ``keys``: the resource description keys and what each means.

D is JSON or YAML text (``'{min_cpus: 2}'``) or the path of a file holding it. The allocators
come from ``--config FILE``, else from the resources config file (see
`openmdao_like.resources.config`), else a default `LocalAllocator`. Nothing is started.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from . import CommandError, UsageError
from ..view.table import format_table


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``resources`` subcommand (with ``list``, ``check`` and ``keys``)."""
    parser = subparsers.add_parser(
        'resources', parents=[common], help='show allocators and check resource descriptions',
        description='Show what the configured allocators (the resources config file, '
                    '$OPENMDAO_LIKE_RESOURCES) can serve. Nothing is started.')
    parser.set_defaults(parser=parser)
    actions = parser.add_subparsers(dest='action', metavar='ACTION', required=True)

    def with_options(action: argparse.ArgumentParser, desc_required: bool) -> None:
        action.add_argument('--desc', metavar='D', required=desc_required,
                            help='resource description: JSON or YAML text, or a file holding '
                                 'it (e.g. \'{min_cpus: 2, localhost: true}\')')
        action.add_argument('--config', metavar='FILE',
                            help='resources config file (default: $OPENMDAO_LIKE_RESOURCES or '
                                 '~/.config/openmdao_like/resources.yaml)')

    listing = actions.add_parser(
        'list', parents=[common], help='list the allocators and their answers',
        description='List every allocator: its type, how many servers it could run, and its '
                    'estimate and reason for the description (default: an empty one).')
    with_options(listing, desc_required=False)
    listing.set_defaults(handler=list_command, parser=listing)

    check = actions.add_parser(
        'check', parents=[common], help='validate a description and show who can serve it',
        description='Validate a resource description and show which allocators could serve '
                    'it. Exit status 1 when it is invalid or no allocator ever could.')
    with_options(check, desc_required=True)
    check.set_defaults(handler=check_command, parser=check)

    keys = actions.add_parser(
        'keys', parents=[common], help='list the resource description keys',
        description='List the keys a resource description may hold.')
    keys.set_defaults(handler=keys_command, parser=keys)
    return parser


def parse_desc(text: str | None, option: str = '--desc') -> dict[str, Any]:
    """The description option ``option`` gives (text or a file; None: empty), validated;
    `UsageError` when it cannot be read or parsed, `CommandError` when it is not valid."""
    import yaml

    from ..resources.description import validate_resource_desc

    if text is None:
        return {}
    source = option
    if os.path.isfile(text):
        source = f'{option} file {text!r}'
        try:
            with open(text, encoding='utf-8') as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f'{source}: cannot read it: {exc.strerror}') from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f'{source}: not valid JSON or YAML: {exc}') from None
    try:
        return validate_resource_desc(data, where=source)
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from None


def _manager(config: str | None) -> Any:
    """A manager with the allocators of ``config`` (or the default ones), loaded now."""
    from ..resources.config import ResourceConfigError
    from ..resources.manager import ResourceAllocationManager

    if config is not None and not os.path.isfile(config):
        raise UsageError(f'--config {config!r}: no such file')
    try:
        manager = ResourceAllocationManager(config=config)
        manager.list_allocators()
    except ResourceConfigError as exc:
        raise CommandError(str(exc)) from None
    return manager


def _answers(manager: Any, desc: dict[str, Any]) -> list[list[Any]]:
    """One row per allocator: name, type, max servers, estimate, reason."""
    rows = []
    for allocator, estimate, criteria in manager.estimates(desc):
        rows.append([allocator.name, type(allocator).__name__, allocator.max_servers(desc),
                     describe_estimate(estimate), reason(criteria)])
    return rows


def describe_estimate(estimate: float) -> str:
    """An estimate code in words: 'now', 'N s', 'not now', 'never'."""
    if estimate == 0:
        return 'now'
    if estimate > 0:
        return f'{estimate:g} s'
    return 'not now' if estimate == -1 else 'never'


def reason(criteria: dict[str, Any]) -> str:
    """Why an allocator answered as it did: its refusals, else its reason, else ''."""
    refused = criteria.get('refused')
    if refused:
        return '; '.join(f'{key}: {why}' for key, why in refused.items())
    return str(criteria.get('reason', ''))


def list_command(args: argparse.Namespace) -> int:
    """Handler of ``resources list``."""
    desc = parse_desc(args.desc)
    manager = _manager(args.config)
    print(format_table(['name', 'type', 'max_servers', 'estimate', 'reason'],
                       _answers(manager, desc)))
    return 0


def check_command(args: argparse.Namespace) -> int:
    """Handler of ``resources check``."""
    desc = parse_desc(args.desc)
    manager = _manager(args.config)
    rows = _answers(manager, desc)
    print(f'valid description: {desc}')
    print(format_table(['name', 'type', 'max_servers', 'estimate', 'reason'], rows))
    able = [row[0] for row in rows if row[3] != 'never']
    if not able:
        raise CommandError('no allocator can serve this description')
    print(f'can serve it (now or later): {", ".join(able)}')
    return 0


def keys_command(args: argparse.Namespace) -> int:
    """Handler of ``resources keys``."""
    from ..resources.description import RESOURCE_KEYS

    print(format_table(['key', 'meaning'], list(RESOURCE_KEYS.items())))
    return 0


__all__ = ['add_parser', 'list_command', 'check_command', 'keys_command', 'parse_desc',
           'describe_estimate', 'reason']
