"""HTTP component services for the tests: each an ``openmdao-like http serve`` process (uvicorn)
on a loopback address, with its configuration, secret and users in a fresh directory, the test
components (`remote_models`, `http_models`) importable; stopped afterwards."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import httpx
import yaml

from remote_servers import pid_alive, server_env

#: Users of every test service: name -> (password, roles).
USERS = {'alice': ('alice-password', ()), 'bob': ('bob-password-2', ('admin',))}
#: What every test service offers (Scale only to the role admin).
COMPONENTS: list[Any] = [
    'remote_models.Paraboloid', 'remote_models.ArrayScale', 'remote_models.Fails',
    'remote_models.Sleeper', 'remote_models.FileWriter', 'remote_models.FileReader',
    'http_models.PidSleeper', {'name': 'remote_models.Scale', 'roles': ['admin']}]
SECRET = 'test-secret-' + 's' * 40


def free_port(host: str = '127.0.0.1') -> int:
    """A TCP port free on ``host`` now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class HTTPService:
    """``openmdao-like http serve`` of a configuration written in ``workdir``.

    ``tls``: ``(cert, key)`` files; ``config``: more keys of the configuration file.
    """

    def __init__(self, workdir: Path, host: str = '127.0.0.1',
                 tls: tuple[str, str] | None = None, components: Sequence[Any] = COMPONENTS,
                 **config: Any):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host, self.port = host, free_port(host)
        secret = self.workdir / 'jwt.secret'
        secret.write_text(SECRET + '\n')
        secret.chmod(0o600)
        data = {'host': host, 'port': self.port, 'secret_file': 'jwt.secret',
                'components': list(components), 'workers': 2, **config}
        if tls is not None:
            data['tls'] = {'cert': tls[0], 'key': tls[1]}
        self.config = self.workdir / 'http.yaml'
        self.config.write_text(yaml.safe_dump(data))
        self.url = f'{"https" if tls else "http"}://{host}:{self.port}'
        self.cert = tls[0] if tls else None
        self.verify: Any = ssl.create_default_context(cafile=self.cert) if tls else True
        self.proc: subprocess.Popen | None = None
        for name, (password, roles) in USERS.items():
            self.cli('adduser', name, '--password-stdin', *[f'--role={r}' for r in roles],
                     stdin=password + '\n')

    def cli(self, action: str, *args: str, stdin: str = '') -> subprocess.CompletedProcess:
        """``openmdao-like http ACTION --config FILE ARGS``, checked."""
        return subprocess.run([sys.executable, '-m', 'openmdao_like.cli.main', 'http', action,
                               '--config', str(self.config), *args], input=stdin, text=True,
                              capture_output=True, check=True, env=server_env(TESTS_DIR))

    def start(self, timeout: float = 60.0) -> HTTPService:
        """Start the service; return once ``/health`` answers."""
        log = open(self.workdir / 'serve.log', 'ab')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'openmdao_like.cli.main', 'http', 'serve', '--config',
             str(self.config)], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            env=server_env(TESTS_DIR), start_new_session=True)
        log.close()
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f'the HTTP service ended ({self.proc.returncode}):\n'
                                   f'{self.log()}')
            try:
                if httpx.get(f'{self.url}/health', verify=self.verify,
                             timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f'the HTTP service did not answer within {timeout} s:\n{self.log()}')

    def log(self) -> str:
        """What the service printed."""
        path = self.workdir / 'serve.log'
        return path.read_text(errors='replace') if path.exists() else ''

    def worker_pids(self) -> list[int]:
        """The pids of the service's worker processes (its children but the resource
        tracker)."""
        found = []
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                with open(f'/proc/{entry}/stat') as f:
                    ppid = int(f.read().rsplit(') ', 1)[1].split()[1])
                with open(f'/proc/{entry}/cmdline', 'rb') as f:
                    cmd = f.read()
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid and b'resource_tracker' not in cmd:
                found.append(int(entry))
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Stop the service with ``sig`` (SIGKILL: as if its host died), and its process
        group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers left behind by a SIGKILL
        except ProcessLookupError:
            pass
        self.proc = None

    def client(self, user: str = 'alice') -> httpx.Client:
        """An ``httpx.Client`` logged in as ``user``."""
        client = httpx.Client(base_url=self.url, verify=self.verify, timeout=60.0)
        answer = client.post('/token', data={'username': user, 'password': USERS[user][0]})
        answer.raise_for_status()
        client.headers['Authorization'] = f'Bearer {answer.json()["access_token"]}'
        return client


TESTS_DIR = Path(__file__).resolve().parent
__all__ = ['HTTPService', 'USERS', 'COMPONENTS', 'free_port', 'pid_alive']
