"""Starting an allocated server through a channel and a launcher, and stopping it again.

Every allocator ends up here or in its batch variant: write the server's private settings
(key, one-time registration secret) into a fresh work directory on the host, start
``python -m openmdao_like.resources.pilot`` there, wait until it registers back (or report
why it never did, with the tail of its output), and connect to it. `StartedServer.stop`
undoes all of it, whatever state the server is in.
"""

from __future__ import annotations

import base64
import json
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..errors import AllocationError
from ..remote.auth import generate_key
from ..remote.client import FactoryProxy, connect_to_server
from ..session import current_session
from .channels import Channel
from .launchers import Launcher, SimpleLauncher
from .registration import Expectation, Registration, registrar_for

logger = logging.getLogger(__name__)

__all__ = ['StartedServer', 'session_key', 'server_settings', 'pilot_command',
           'start_on_channel', 'connect_registered', 'START_TIMEOUT']

#: Seconds a server may take to register after it was started (a batch job waits in the
#: queue first: batch allocators use their own, longer, limit).
START_TIMEOUT = 120.0
#: Seconds the graceful part of a stop may take before the process is killed.
STOP_GRACE = 5.0

def session_key() -> bytes:
    """The key of every server the current `openmdao_like.Session` allocates (so they may
    exchange data directly)."""
    return current_session().hold('resources.session_key', lambda: generate_key().encode())


def server_settings(expectation: Expectation, root: str, host: str = 'auto',
                    allowed_hosts: Sequence[str] | None = None,
                    launcher: Sequence[str] | None = None) -> dict[str, Any]:
    """The private settings of one allocated server (see `openmdao_like.resources.pilot`)."""
    settings = {'key': base64.b64encode(session_key()).decode(), 'host': host, 'root': root,
                'allowed_hosts': list(allowed_hosts) if allowed_hosts else None,
                'launcher': list(launcher) if launcher else None,
                'log_level': logging.getLogger().getEffectiveLevel() or logging.INFO}
    settings.update(expectation.settings())
    return settings


def pilot_command(python: str, settings_path: str) -> list[str]:
    """The command line of an allocated server reading ``settings_path``."""
    return [python, '-m', 'openmdao_like.resources.pilot', settings_path]


def default_allowed_hosts(client: str, host: str, extra: Sequence[str] = ()) -> list[str]:
    """Who may connect to an allocated server: the client, the host itself, loopback, peers."""
    hosts = [client, host, '127.0.0.0/8', *extra]
    return list(dict.fromkeys(h for h in hosts if h and h != 'auto'))


def connect_registered(registration: Registration, what: str) -> FactoryProxy:
    """A proxy of the factory that just registered (closing the registration on failure)."""
    try:
        return connect_to_server(registration.host, registration.port, key=session_key())
    except BaseException as exc:
        registration.close()
        raise AllocationError(f'{what}: registered from {registration.host}:'
                              f'{registration.port} but cannot be reached: {exc}') from exc


@dataclass
class StartedServer:
    """One allocated server: its proxy, where it runs, and how to end it.

    ``end`` kills what the allocator started (a process, a batch job); ``cleanup`` removes its
    work directory. `stop` asks the server to stop, closes the registration (the server exits
    when it closes), then calls both; it is idempotent.
    """

    proxy: FactoryProxy
    registration: Registration
    info: dict[str, Any]
    end: Callable[[], None] = lambda: None
    cleanup: Callable[[], None] = lambda: None
    stopped: bool = field(default=False, init=False)

    def stop(self) -> None:
        """Stop the server and remove what it left; safe to call again."""
        if self.stopped:
            return
        self.stopped = True
        try:
            self.proxy._conn.call('stop', timeout=STOP_GRACE)
        except Exception as exc:  # it may be gone already: that is why we also kill it
            logger.debug('%s: stop call failed: %s', self.info.get('name'), exc)
        self.proxy.close()
        self.registration.close()
        try:
            self.end()
        finally:
            self.cleanup()
        logger.info('released %s', self.info.get('name'))


def start_on_channel(channel: Channel, name: str, launcher: Launcher | None = None, *,
                     python: str, parent: str | None = None, n: int = 1,
                     allowed_hosts: Sequence[str] = (),
                     object_launcher: Sequence[str] | None = None,
                     env: dict[str, str] | None = None, timeout: float = START_TIMEOUT,
                     info: dict[str, Any] | None = None) -> StartedServer:
    """Start an allocated server on ``channel``'s host and connect to it.

    ``launcher`` wraps the server command (``n`` processes); ``object_launcher`` prefixes the
    command of each object server it starts (MPI components). The server gets a fresh work
    directory below ``parent`` (the host's temporary directory by default).
    """
    launcher = launcher or SimpleLauncher()
    client = channel.client_address()
    expectation = registrar_for(client).expect()
    workdir = channel.mkdtemp(prefix='oml-server-', parent=parent)
    try:
        settings = server_settings(expectation, workdir, channel.host,
                                   default_allowed_hosts(client, channel.host, allowed_hosts),
                                   object_launcher)
        path = posixpath.join(workdir, 'settings.json')
        channel.write_file(path, json.dumps(settings).encode(), 0o600)
        command = launcher.wrap(pilot_command(python, path), n)
        log_path = posixpath.join(workdir, 'server.log')
        process = channel.spawn(command, env=env, cwd=workdir, log_path=log_path)
    except BaseException:
        expectation.registrar.forget(expectation.id)
        channel.remove_tree(workdir)
        raise

    def gone() -> str | None:
        status = process.poll()
        if status is None:
            return None
        return (f'{" ".join(command)} exited with status {status}; its output ends with:\n'
                f'{process.output_tail()}')

    what = f'{name} server on {channel.host}'
    try:
        registration = expectation.wait(timeout, gone, what)
        proxy = connect_registered(registration, what)
    except BaseException:
        process.kill(STOP_GRACE)
        channel.remove_tree(workdir)
        raise
    details = dict(info or {}, name=name, host=registration.host, port=registration.port,
                   pid=registration.pid, workdir=workdir)

    def end() -> None:
        if process.wait(STOP_GRACE) is None:
            process.kill(STOP_GRACE)

    return StartedServer(proxy, registration, details, end,
                         lambda: channel.remove_tree(workdir))

