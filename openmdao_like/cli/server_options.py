"""The options of ``openmdao-like server start``: their kinds and defaults, the ``--config``
YAML file, and what they turn into (peer keys, `Limits`)."""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from . import CommandError, UsageError

#: Default address to listen on: this machine only.
DEFAULT_HOST = '127.0.0.1'

#: ``start`` options a config file may set: name -> (kind, default). Kinds: 'str', 'path',
#: 'port', 'bool', 'list' (of str), 'peers' (HOST=FILE items or a HOST: FILE mapping), 'size'
#: (bytes: a number, or with a K/M/G suffix), 'seconds' and 'count' (numbers > 0); None
#: defaults of the last three mean `Limits`' defaults.
START_OPTIONS: dict[str, tuple[str, Any]] = {
    'host': ('str', DEFAULT_HOST),
    'port': ('port', 0),
    'key_file': ('path', None),
    'user_key_file': ('path', None),
    'tls_cert': ('path', None),
    'tls_key': ('path', None),
    'allowed_hosts': ('list', None),
    'allowed_types': ('list', None),
    'allow_shell': ('bool', False),
    'root': ('path', None),
    'log_file': ('path', None),
    'server_file': ('path', None),
    'peer_key': ('peers', None),
    'max_message_size': ('size', None),
    'message_timeout': ('seconds', None),
    'login_timeout': ('seconds', None),
    'max_startups': ('count', None),
    'max_connections': ('count', None),
}
_SIZE = re.compile(r'\s*([0-9]+(?:\.[0-9]*)?)\s*([KMG]i?B?|B)?\s*', re.IGNORECASE)
_UNITS = {'': 1, 'b': 1, 'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30}


def parse_size(text: Any) -> int:
    """Bytes from ``text``: an int, or a number with a K, M or G suffix (binary: 1K = 1024);
    `ValueError` saying what was expected otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f'expected a size in bytes such as 1048576, 512M or 2G, got {text!r}')
    unit = (match.group(2) or '')[:1].lower()
    return int(float(match.group(1)) * _UNITS[unit])


def positive(kind: type) -> Any:
    """An argparse type: a number of ``kind`` greater than 0."""
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise argparse.ArgumentTypeError(f'expected a number > 0, got {text!r}')
        return value
    return convert


def size_argument(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- options and the config file ------------------------------------------------------------------
def load_config(path: str) -> dict[str, Any]:
    """The ``start`` options in the YAML file ``path``, checked and with relative paths made
    relative to the file's directory; `UsageError` naming the file and the key otherwise."""
    import yaml

    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise UsageError(f'config file {path!r}: cannot read it: {exc.strerror}') from None
    except yaml.YAMLError as exc:
        raise UsageError(f'config file {path!r}: not valid YAML: {exc}') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f'config file {path!r}: expected a mapping of option names to values, '
                         f'got {type(data).__name__}')
    unknown = sorted(str(k) for k in data if k not in START_OPTIONS)
    if unknown:
        raise UsageError(f'config file {path!r}: unknown keys {", ".join(unknown)}; expected '
                         f'some of {", ".join(START_OPTIONS)}')
    base = os.path.dirname(os.path.abspath(path))
    return {name: _config_value(path, base, name, value) for name, value in data.items()
            if value is not None}


def _config_value(path: str, base: str, name: str, value: Any) -> Any:
    kind = START_OPTIONS[name][0]

    def bad(expected: str) -> UsageError:
        return UsageError(f'config file {path!r}: {name} should be {expected}, got '
                          f'{value!r} ({type(value).__name__})')

    def local(text: str) -> str:
        return os.path.join(base, os.path.expanduser(text))

    if kind == 'str':
        if not isinstance(value, str):
            raise bad('a string')
        return value
    if kind == 'path':
        if not isinstance(value, str):
            raise bad('a path (string)')
        return local(value)
    if kind == 'port':
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad('an integer port')
        return value
    if kind == 'bool':
        if not isinstance(value, bool):
            raise bad('true or false')
        return value
    if kind == 'size':
        try:
            return parse_size(value)
        except ValueError:
            raise bad('a size in bytes such as 1048576, 512M or 2G') from None
    if kind in ('seconds', 'count'):
        number = (float,) if kind == 'seconds' else ()
        if isinstance(value, bool) or not isinstance(value, (int, *number)) or value <= 0:
            raise bad('a number of seconds > 0' if kind == 'seconds' else 'a whole number > 0')
        return value
    if kind == 'list':
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise bad('a list of strings')
        return items
    # peers: {host: file} or ['host=file', ...]
    if isinstance(value, dict):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise bad('a mapping of HOST to key file')
        return [f'{host}={local(file)}' for host, file in value.items()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad('a mapping of HOST to key file, or a list of HOST=FILE')
    out = []
    for item in value:  # items without '=' are kept for parse_peer_keys to refuse
        host, sep, file = item.partition('=')
        out.append(f'{host}={local(file)}' if sep and file else item)
    return out


def start_options(args: argparse.Namespace) -> dict[str, Any]:
    """The effective ``start`` options: the command line over ``--config`` over defaults."""
    config = load_config(args.config) if args.config else {}
    options = {}
    for name, (_kind, default) in START_OPTIONS.items():
        given = getattr(args, name)
        options[name] = given if given is not None else config.get(name, default)
    if not options['key_file']:
        raise UsageError('--key-file is required (or key_file in the --config file); create a '
                         'key with `openmdao-like server keygen FILE`')
    if not 0 <= options['port'] <= 65535:
        raise UsageError(f'--port must be between 0 and 65535, got {options["port"]}')
    return options


def parse_peer_keys(items: list[str] | None) -> dict[str, bytes]:
    """``['host=file', ...]`` -> ``{host: key}``; `CommandError` naming a bad item or file."""
    from ..remote.auth import read_key_file

    peers: dict[str, bytes] = {}
    for item in items or ():
        host, sep, file = item.partition('=')
        if not sep or not host.strip() or not file.strip():
            raise CommandError(f'--peer-key expects HOST=FILE (e.g. 10.0.0.7=peer.key), got '
                               f'{item!r}')
        try:
            peers[host.strip()] = read_key_file(file.strip())
        except ValueError as exc:
            raise CommandError(f'--peer-key {host.strip()}: {exc}') from None
    return peers


def server_limits(opts: dict[str, Any]) -> Any:
    """The `Limits` the bounds options ask for (the defaults where none is given)."""
    from ..remote.limits import Limits

    given = {'max_message': opts['max_message_size'], 'message_timeout': opts['message_timeout'],
             'login_timeout': opts['login_timeout'], 'max_startups': opts['max_startups'],
             'max_connections': opts['max_connections']}
    try:
        return Limits(**{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:
        raise CommandError(str(exc)) from None
