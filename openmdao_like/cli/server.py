"""``openmdao-like server start|stop|keygen|status``: run and manage an `ObjServerFactory`.

- ``start --key-file K [--host H] [--port P] [--config FILE] ...``: serve in the foreground
  until SIGTERM/SIGINT. Once listening it writes the server file (``--server-file``, JSON
  ``{host, port, pid, tls}``) and prints ``listening on HOST:PORT (pid N, tls on|off)``; on the
  way out it ends every ObjServer and removes the server file.
- ``stop --server-file PATH``: SIGTERM the server the file names (after checking that the pid
  is an openmdao-like process), wait for it, SIGKILL after ``--timeout`` (through
  `openmdao_like.processes.PidProcess`, as every process the framework stops).
- ``keygen FILE``: a new random key, mode 0600; an existing file is never overwritten.
- ``status``: connect and print the server's info, its objects and (``--types``) its types.

Bounds (``--max-message-size``, ``--message-timeout``, ``--login-timeout``, ``--max-startups``,
``--max-connections``) default to `openmdao_like.remote.limits.Limits`; see servers/README.md.

``--config FILE`` reads ``start``'s options from YAML: the long option names with underscores
(``key_file``, ``allowed_hosts``, ...), relative paths taken from the file's directory; options
given on the command line win. ``stop`` reads ``/proc`` and so works on Linux only.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import threading
from typing import Any

from ..processes import REAP_TIMEOUT, PidProcess
from . import CommandError, UsageError
from .server_options import (DEFAULT_HOST, START_OPTIONS, load_config,
                             parse_peer_keys, positive, server_limits, size_argument,
                             start_options)
from ..view.table import format_table

logger = logging.getLogger(__name__)

#: Seconds ``stop`` waits for the server to exit before SIGKILL (default of ``--timeout``).
STOP_TIMEOUT = 15.0
#: Seconds ``status`` allows for each call.
STATUS_TIMEOUT = 30.0
#: Log format of ``--log-file``.
LOG_FORMAT = '%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s'

def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``server`` subcommand (with ``start``, ``stop``, ``keygen`` and ``status``)."""
    parser = subparsers.add_parser(
        'server', parents=[common], help='run, stop and query object servers',
        description='An object server (ObjServerFactory) creates components for authenticated '
                    'clients, each in its own process; clients connect with '
                    'openmdao_like.remote.connect_to_server. See servers/README.md.')
    parser.set_defaults(parser=parser)
    actions = parser.add_subparsers(dest='action', metavar='ACTION', required=True)

    # Defaults are None so that a config file can fill what the command line left out; the
    # real defaults (START_OPTIONS) are applied after merging.
    start = actions.add_parser(
        'start', parents=[common], help='run an object server in the foreground',
        description='Run an ObjServerFactory until SIGTERM or SIGINT. Every connection must '
                    'prove the key; only allowed hosts may connect (default: loopback only).')
    start.add_argument('--config', metavar='FILE',
                       help='YAML file of options (long names with underscores, e.g. '
                            'key_file); command-line options override it')
    start.add_argument('--host', metavar='H',
                       help=f'address to listen on (default {DEFAULT_HOST})')
    start.add_argument('--port', type=int, metavar='P',
                       help='port to listen on (default 0: a free one)')
    start.add_argument('--key-file', metavar='K',
                       help='owner key, mode 0600 (required; create with `server keygen`)')
    start.add_argument('--user-key-file', metavar='U',
                       help='key of the user role: create and use objects, nothing more')
    start.add_argument('--tls-cert', metavar='C', help='PEM certificate: require TLS')
    start.add_argument('--tls-key', metavar='K2', help='PEM private key of --tls-cert')
    start.add_argument('--allowed-hosts', nargs='+', action='extend', metavar='H',
                       help='IPs, networks (10.0.0.0/24), host names or "*" that may connect '
                            '(default: loopback only)')
    start.add_argument('--allowed-types', nargs='+', action='extend', metavar='T',
                       help='type names or globs (mypkg.*) clients may create (default: any '
                            'installed component)')
    start.add_argument('--allow-shell', action=argparse.BooleanOptionalAction,
                       help='let owner-key clients run commands in the root (default: no)')
    start.add_argument('--root', metavar='DIR',
                       help='directory for the objects\' directories (default: a temporary '
                            'one, removed on exit)')
    start.add_argument('--log-file', metavar='F', help='also log (INFO and up) to this file')
    start.add_argument('--server-file', metavar='PATH',
                       help='write {host, port, pid, tls} here once listening; removed on exit')
    start.add_argument('--peer-key', nargs='+', action='extend', metavar='HOST=FILE',
                       help='key file of a peer server (HOST or HOST:PORT) that objects '
                            'exchange data with directly (default: the owner key)')
    bounds = start.add_argument_group(
        'bounds', 'what one client may hold of the server (defaults in servers/README.md)')
    bounds.add_argument('--max-message-size', type=size_argument, metavar='BYTES',
                        help='largest message (call or answer, arrays included), e.g. 512M or '
                             '4G (default 2G)')
    bounds.add_argument('--message-timeout', type=positive(float), metavar='S',
                        help='seconds a message in progress may stall (default 60)')
    bounds.add_argument('--login-timeout', type=positive(float), metavar='S',
                        help='seconds for the whole login (default 15)')
    bounds.add_argument('--max-startups', type=positive(int), metavar='N',
                        help='connections awaiting login at once (default 32)')
    bounds.add_argument('--max-connections', type=positive(int), metavar='N',
                        help='connections open at once, one thread each (default 200)')
    start.set_defaults(handler=start_command, parser=start)

    stop = actions.add_parser(
        'stop', parents=[common], help='stop the server a server file names',
        description='Send SIGTERM to the server named in the server file, wait for it to end '
                    'its objects and exit, and SIGKILL it after --timeout seconds.')
    stop.add_argument('--server-file', required=True, metavar='PATH',
                      help='the file `server start --server-file` wrote')
    stop.add_argument('--timeout', type=float, default=STOP_TIMEOUT, metavar='S',
                      help=f'seconds to wait before SIGKILL (default {STOP_TIMEOUT:g})')
    stop.set_defaults(handler=stop_command, parser=stop)

    keygen = actions.add_parser(
        'keygen', parents=[common], help='write a new key file (mode 0600)',
        description='Write a new random key to FILE, readable by its owner only. An existing '
                    'file is never overwritten.')
    keygen.add_argument('file', metavar='FILE')
    keygen.set_defaults(handler=keygen_command, parser=keygen)

    status = actions.add_parser(
        'status', parents=[common], help='show a running server\'s info and objects',
        description='Connect to a server (found through its server file or --host/--port) and '
                    'print its info and the objects it holds.')
    status.add_argument('--server-file', metavar='PATH', help='the server\'s server file')
    status.add_argument('--host', metavar='H', help='server address (with --port)')
    status.add_argument('--port', type=int, metavar='P', help='server port (with --host)')
    status.add_argument('--key-file', required=True, metavar='K', help='key file (0600)')
    status.add_argument('--tls', action='store_true', default=None,
                        help='connect with TLS (default: what the server file says)')
    status.add_argument('--ca-file', metavar='F',
                        help='PEM certificate (or CA) to check the server\'s certificate')
    status.add_argument('--types', action='store_true',
                        help='also list the types the server can create')
    status.set_defaults(handler=status_command, parser=status)
    return parser


# -- start ----------------------------------------------------------------------------------------
class _Terminated(Exception):
    """SIGTERM arrived before the factory installed its own handler."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated(signal.Signals(signum).name)


def add_log_file(path: str) -> logging.Handler:
    """Log INFO and up to ``path`` too; stderr keeps the level ``-v`` chose."""
    try:
        handler = logging.FileHandler(path, encoding='utf-8')
    except OSError as exc:
        raise CommandError(f'--log-file {path!r}: cannot open it: {exc.strerror}') from None
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for existing in root.handlers:
        if existing.level == logging.NOTSET:
            existing.setLevel(root.level)
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, logging.INFO))
    return handler


def start_command(args: argparse.Namespace) -> int:
    """Handler of ``server start``: serve until SIGTERM/SIGINT."""
    from ..remote.factory import ObjServerFactory

    opts = start_options(args)
    limits = server_limits(opts)
    peer_keys = parse_peer_keys(opts['peer_key'])
    if (opts['tls_cert'] is None) != (opts['tls_key'] is None):
        given, missing = ('--tls-cert', '--tls-key') if opts['tls_cert'] else \
            ('--tls-key', '--tls-cert')
        raise CommandError(f'{given} needs {missing} too (TLS needs the certificate and its '
                           f'private key)')
    server_file = opts['server_file']
    if server_file:
        _refuse_running(server_file)
    if opts['log_file']:
        add_log_file(opts['log_file'])
    where = f'{opts["host"]}:{opts["port"]}'
    try:
        factory = ObjServerFactory(
            opts['host'], opts['port'], key_file=opts['key_file'],
            user_key_file=opts['user_key_file'], tls_cert=opts['tls_cert'],
            tls_key=opts['tls_key'], allowed_hosts=opts['allowed_hosts'],
            allowed_types=opts['allowed_types'], allow_shell=opts['allow_shell'],
            root=opts['root'], peer_keys=peer_keys, limits=limits)
    except (ValueError, TypeError) as exc:
        raise CommandError(f'cannot start the server on {where}: {exc}') from None
    except OSError as exc:
        raise CommandError(f'cannot start the server on {where}: {exc}') from None

    main_thread = threading.current_thread() is threading.main_thread()
    previous = None
    served = False
    try:
        if main_thread:  # until serve_forever installs the factory's own handlers
            previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            host, port = factory.start()
        except OSError as exc:
            reason = 'the port is in use' if exc.errno == errno.EADDRINUSE else \
                (exc.strerror or str(exc))
            raise CommandError(f'cannot listen on {where}: {reason}') from None
        if server_file:
            try:
                factory.write_server_file(server_file)
            except OSError as exc:
                raise CommandError(f'--server-file {server_file!r}: cannot write it: '
                                   f'{exc.strerror}') from None
        print(f'listening on {host}:{port} (pid {os.getpid()}, tls '
              f'{"on" if factory.tls else "off"})', flush=True)
        factory.serve_forever()  # stops the factory on its way out
        served = True
    except (_Terminated, KeyboardInterrupt) as exc:
        logger.info('server on %s: %s before serving; stopping', where, exc or 'SIGINT')
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the cleanup finish
        try:
            if not served:
                factory.stop()
        finally:
            if server_file:
                _remove_own_server_file(server_file)
            if main_thread:
                signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)
    return 0


def _refuse_running(server_file: str) -> None:
    """`CommandError` if ``server_file`` names a live openmdao-like process (not this one)."""
    from ..remote.client import read_server_file

    if not os.path.exists(server_file):
        return
    try:
        pid = int(read_server_file(server_file)['pid'])
    except (ValueError, TypeError):
        pid = None
    if pid and pid != os.getpid() and _openmdao_process(pid):
        raise CommandError(f'--server-file {server_file!r} names a running server (pid {pid}); '
                           f'stop it first (openmdao-like server stop --server-file '
                           f'{server_file}) or use another server file')
    logger.warning('replacing the stale server file %s', server_file)


def _remove_own_server_file(server_file: str) -> None:
    """Remove ``server_file`` if it is still the one this process wrote."""
    from ..remote.client import read_server_file

    try:
        if read_server_file(server_file)['pid'] == os.getpid():
            os.remove(server_file)
    except (ValueError, OSError) as exc:
        logger.warning('could not remove the server file %s: %s', server_file, exc)


# -- processes ------------------------------------------------------------------------------------
def process_cmdline(pid: int) -> str | None:
    """Process ``pid``'s command line, arguments separated by spaces; None if it is gone."""
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace').strip()
    except OSError:
        return None


def _openmdao_process(pid: int) -> bool:
    return PidProcess(pid).running() and 'openmdao' in (process_cmdline(pid) or '')


# -- stop -----------------------------------------------------------------------------------------
def stop_command(args: argparse.Namespace) -> int:
    """Handler of ``server stop``: SIGTERM, wait, SIGKILL after the timeout."""
    from ..remote.client import read_server_file

    path = args.server_file
    if args.timeout < 0:
        raise UsageError(f'--timeout must be 0 or more seconds, got {args.timeout:g}')
    if not os.path.exists(path):
        raise CommandError(f'server file {path!r} does not exist (no server started with it is '
                           f'running, or it was started with another --server-file)')
    try:
        info = read_server_file(path)
        pid = int(info['pid'])
    except (ValueError, TypeError) as exc:
        raise CommandError(str(exc)) from None
    where = f'{info["host"]}:{info["port"]}'
    process = PidProcess(pid)
    if not process.running():
        _remove(path)
        raise CommandError(f'the server on {where} (pid {pid}) is not running; removed its '
                           f'stale server file {path!r}')
    cmdline = process_cmdline(pid) or ''
    if 'openmdao' not in cmdline:
        raise CommandError(f'process {pid} named by {path!r} is not an openmdao-like server '
                           f'(its command line: {cmdline[:200]!r}); refusing to signal it')
    try:
        status = process.kill(args.timeout)
    except PermissionError:
        raise CommandError(f'not allowed to signal the server on {where} (pid {pid}); run '
                           f'as its user') from None
    if status is None:
        raise CommandError(f'the server on {where} (pid {pid}) survived SIGKILL for '
                           f'{REAP_TIMEOUT:g} s')
    how = ''
    if process.sigkilled:
        how = f', killed with SIGKILL after {args.timeout:g} s'
        _remove(path)
    elif os.path.exists(path):  # the server removes it; a file left behind is stale
        _remove(path)
    print(f'stopped server {where} (pid {pid}){how}')
    return 0


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CommandError(f'cannot remove the server file {path!r}: {exc.strerror}') from None


# -- keygen ---------------------------------------------------------------------------------------
def keygen_command(args: argparse.Namespace) -> int:
    """Handler of ``server keygen``: write a new key file (0600), never overwriting."""
    from ..remote.auth import write_key_file

    try:
        write_key_file(args.file)
    except FileExistsError:
        raise CommandError(f'{args.file!r} already exists; keygen never overwrites a key '
                           f'(remove it first if you mean to replace it)') from None
    except OSError as exc:
        raise CommandError(f'cannot write the key file {args.file!r}: {exc.strerror}') from None
    print(f'wrote a new key to {args.file} (mode 0600); give it to clients over a secure '
          f'channel')
    return 0


# -- status ---------------------------------------------------------------------------------------
def status_command(args: argparse.Namespace) -> int:
    """Handler of ``server status``: the server's info, objects and (optionally) types."""
    from ..errors import RemoteError
    from ..remote.client import connect_to_server

    by_address = args.host is not None or args.port is not None
    if args.server_file and by_address:
        raise UsageError('give either --server-file or --host and --port, not both')
    if not args.server_file and (args.host is None or args.port is None):
        raise UsageError('expected --server-file PATH, or both --host and --port')
    where = args.server_file or f'{args.host}:{args.port}'
    try:
        factory = connect_to_server(args.host, args.port, key_file=args.key_file,
                                    tls=args.tls, ca_file=args.ca_file,
                                    server_file=args.server_file, timeout=STATUS_TIMEOUT)
    except (ValueError, TypeError, RemoteError, OSError) as exc:
        raise CommandError(f'cannot connect to the server ({where}): {exc}') from None
    try:
        info = factory.info()
        objects = factory.list_objects()
        types = factory.get_available_types() if args.types else None
    except RemoteError as exc:
        raise CommandError(f'the server on {factory.host}:{factory.port} failed: {exc}') \
            from None
    finally:
        factory.close()
    rows = [('server', f'{info["host"]}:{info["port"]}'), ('pid', info['pid']),
            ('tls', 'on' if info['tls'] else 'off'), ('python', info['python']),
            ('openmdao_like', info['openmdao_like']), ('root', info['root']),
            ('role', factory.role)]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f'{name:<{width}}  {value}')
    print()
    if objects:
        print(format_table(['id', 'type', 'pid', 'port', 'directory'],
                           [[o['id'], o['type'], o['pid'], o['port'], o['directory']]
                            for o in objects]))
    else:
        print('no objects')
    if types is not None:
        print()
        if types:
            print(format_table(['name', 'version', 'distribution', 'group'],
                               [[t.name, t.version, t.distribution, t.group] for t in types]))
        else:
            print('no types available')
    return 0


__all__ = ['add_parser', 'start_command', 'stop_command', 'keygen_command', 'status_command',
           'load_config', 'start_options', 'parse_peer_keys', 'process_cmdline',
           'START_OPTIONS']
