"""``openmdao-like http serve|adduser|deluser|users``: the HTTP component service.

``serve`` runs the service of a configuration file (`openmdao_like.http.config`) with uvicorn,
over TLS when the file names a certificate and key; it refuses to start without a JWT secret.

Users live in the users file beside the service's configuration (``NAME.users.yaml`` for
``--config NAME.yaml``), as argon2 hashes and roles (`openmdao_like.http.users`). ``adduser``
asks for the password twice on a terminal, or reads one line from stdin with
``--password-stdin`` (for scripts: the password never appears in a command line).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import logging
import sys
from typing import Any, Callable, Iterator

from ..errors import ConfigError
from ..http import Users, load_config
from . import CommandError, UsageError
from ..view.table import format_table

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``http`` subcommand and its actions."""
    parser = subparsers.add_parser(
        'http', parents=[common], help='serve components over HTTP; manage its users',
        description='Serve components over HTTP (REST, OAuth2 tokens, TLS), and manage the '
                    "service's users (argon2 password hashes and roles, in the users file "
                    'beside its configuration).')
    parser.set_defaults(parser=parser)
    actions = parser.add_subparsers(dest='action', metavar='ACTION', required=True)
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument('--config', required=True, metavar='FILE',
                         help="the service's configuration file (YAML)")

    def action(name: str, handler: Callable[..., int], summary: str
               ) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, parents=[common, options], help=summary,
                                 description=summary[0].upper() + summary[1:] + '.')
        sub.set_defaults(handler=handler, parser=sub)
        return sub

    serve = action('serve', serve_command, 'serve the components of the configuration')
    serve.add_argument('--host', help='address to listen on (default: the file\'s host)')
    serve.add_argument('--port', type=int, help='port to listen on (default: the file\'s port)')
    serve.add_argument('--workers', type=int, metavar='N',
                       help='worker processes running executions (default: the file\'s)')
    add = action('adduser', adduser_command, 'add a user (or, with --replace, set a new '
                                             'password and roles)')
    add.add_argument('name', help='user name (letters, digits, _ . @ -)')
    add.add_argument('--role', dest='roles', action='append', default=[], metavar='ROLE',
                     help='a role of the user (may be repeated): components whose entry names '
                          'roles are open to their users only')
    add.add_argument('--password-stdin', action='store_true',
                     help='read the password from the first line of stdin instead of asking')
    add.add_argument('--replace', action='store_true',
                     help='the user exists: give it this password and these roles')
    remove = action('deluser', deluser_command, 'remove a user')
    remove.add_argument('name', help='user name')
    action('users', users_command, 'list the users and their roles')
    return parser


def serve_command(args: argparse.Namespace) -> int:
    """Handler of ``http serve``: runs until interrupted."""
    try:
        import uvicorn
        from ..http.app import create_app
    except ImportError as exc:
        raise UsageError(f'the HTTP service needs fastapi and uvicorn ({exc}); install them '
                         f'with: pip install openmdao_like[http]') from exc
    try:
        config = load_config(args.config)
        overrides = {k: v for k, v in (('host', args.host), ('port', args.port),
                                       ('workers', args.workers)) if v is not None}
        if overrides:
            config = dataclasses.replace(config, **overrides)
        if config.workers < 1 or not 0 <= config.port <= 65535:
            raise UsageError(f'--workers must be >= 1 and --port in [0, 65535], got '
                             f'{config.workers} and {config.port}')
        for path in config.tls or ():
            if not path.is_file():
                raise UsageError(f'{config.path}: tls: no file {path}')
        app = create_app(config)
        app.state.service.start()  # here, so that a component that cannot be offered is named
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    scheme = 'https' if config.tls else 'http'
    logger.info('serving %s on %s://%s:%d', config.path, scheme, config.host, config.port)
    cert, key = config.tls or (None, None)
    level = min(logging.getLogger().getEffectiveLevel(), logging.INFO)
    server = _server(uvicorn)(uvicorn.Config(
        app, host=config.host, port=config.port, ssl_certfile=cert, ssl_keyfile=key,
        log_level=logging.getLevelName(level).lower(), timeout_graceful_shutdown=10))
    server.run()
    if not server.started:
        raise CommandError(f'{config.path}: the service could not start on '
                           f'{config.host}:{config.port} (see the log above)')
    return 0


def _server(uvicorn: Any) -> type:
    """uvicorn's Server, but one that does not raise the SIGTERM or SIGINT it shut down for
    again once done (which would end this process by that signal): stopping as asked exits 0."""
    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()
    return Server


def _users(args: argparse.Namespace) -> Users:
    """The users file of ``--config``."""
    try:
        return Users(load_config(args.config).users_file)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def _password(args: argparse.Namespace) -> str:
    """The new password: stdin's first line, or asked twice on the terminal."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip('\r\n')
    if not sys.stdin.isatty():
        raise UsageError('stdin is not a terminal: give --password-stdin and the password on '
                         'its first line')
    first = getpass.getpass(f'password for {args.name}: ')
    if getpass.getpass('again: ') != first:
        raise UsageError('the two passwords differ; nothing was changed')
    return first


def adduser_command(args: argparse.Namespace) -> int:
    """Handler of ``http adduser``."""
    users = _users(args)
    if args.name in users and not args.replace:
        raise UsageError(f'{users.path}: user {args.name!r} exists already (give --replace to '
                         f'set a new password and roles)')
    try:
        user = users.add(args.name, _password(args), args.roles, replace=args.replace)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    roles = ', '.join(user.roles) or 'no role'
    print(f'{"replaced" if args.replace else "added"} user {user.name} ({roles}) in '
          f'{users.path}')
    return 0


def deluser_command(args: argparse.Namespace) -> int:
    """Handler of ``http deluser``."""
    users = _users(args)
    try:
        users.remove(args.name)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    print(f'removed user {args.name} from {users.path}')
    return 0


def users_command(args: argparse.Namespace) -> int:
    """Handler of ``http users``."""
    users = _users(args)
    rows = [(name, ', '.join(users.user(name).roles) or '-') for name in users.names()]
    print(format_table(['user', 'roles'], rows) if rows else f'no users in {users.path}')
    return 0
