"""Object servers for the tests: each an `openmdao-like server start` process on a loopback
address, found through its server file, stopped (with every ObjServer it started) afterwards."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

TESTS = Path(__file__).resolve().parent
KEY = 'test-key-' + 'k' * 40


def write_key(path: Path, key: str = KEY) -> Path:
    """A key file with the permissions a server demands (0600)."""
    path.write_text(key + '\n')
    path.chmod(0o600)
    return path


def server_env(*paths: str | os.PathLike[str]) -> dict[str, str]:
    """The environment for a server: ``paths`` and tests/ first on PYTHONPATH."""
    env = dict(os.environ)
    parts = [os.fspath(p) for p in paths] + [str(TESTS)]
    if env.get('PYTHONPATH'):
        parts.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(parts)
    return env


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(') ', 1)[1][0] not in 'ZX'
    except (OSError, IndexError):
        return False


class ServerProcess:
    """``openmdao-like server start`` on ``host`` with a fresh root, port 0 and a server file.

    ``extra`` adds command-line options (e.g. ``['--allowed-hosts', '127.0.0.1']``).
    """

    def __init__(self, workdir: Path, host: str = '127.0.0.1', key_file: Path | None = None,
                 extra: Sequence[str] = (), env: dict[str, str] | None = None,
                 python: str = sys.executable):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.key_file = key_file or write_key(self.workdir / 'key')
        self.key = self.key_file.read_text().strip()
        self.server_file = self.workdir / 'server.json'
        self.root = self.workdir / 'root'
        self.log = self.workdir / 'server.log'
        self.cmd = [python, '-m', 'openmdao_like.cli.main', 'server', 'start', '--host', host,
                    '--port', '0', '--key-file', str(self.key_file), '--root', str(self.root),
                    '--server-file', str(self.server_file), '--log-file', str(self.log),
                    *extra]
        self.env = env if env is not None else server_env()
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.pid = 0

    def start(self, timeout: float = 60.0) -> 'ServerProcess':
        """Start the server and wait for its server file."""
        with open(self.workdir / 'stderr.txt', 'wb') as err:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.DEVNULL,
                                         stderr=err)
        deadline = time.monotonic() + timeout
        while not self.server_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f'server on {self.host} did not start: '
                                   f'{self.tail()}')
            time.sleep(0.05)
        info = json.loads(self.server_file.read_text())
        self.port, self.pid = info['port'], info['pid']
        return self

    def tail(self) -> str:
        """The end of the server's stderr and log."""
        text = ''
        for path in (self.workdir / 'stderr.txt', self.log):
            if path.exists():
                text += path.read_text(errors='replace')[-3000:]
        return text

    def connect(self, **kwargs: Any) -> Any:
        """A `FactoryProxy` to this server."""
        from openmdao_like.remote import connect_to_server
        return connect_to_server(self.host, self.port, key=self.key, **kwargs)

    def objserver_pids(self) -> list[int]:
        """Pids of the ObjServers this server runs (children in its log directory tree)."""
        pids = []
        for entry in Path('/proc').iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / 'cmdline').read_bytes().split(b'\0')
                cwd = os.readlink(entry / 'cwd')
            except OSError:
                continue
            if b'openmdao_like.remote.serve_object' in cmdline and \
                    cwd.startswith(str(self.root)):
                pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s; always reaped."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> 'ServerProcess':
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def reduce_pickle(func: Any, *args: Any) -> bytes:
    """A pickle that calls ``func(*args)`` when loaded by a plain unpickler (an attacker's
    payload)."""
    class Call:
        def __reduce__(self):
            return (func, args)
    return pickle.dumps(Call(), protocol=5)


def in_model(comp: Any) -> Any:
    """A top assembly whose driver runs ``comp`` (a local or remote component) as 'comp'."""
    from openmdao_like import Assembly, set_as_top

    class Model(Assembly):
        def configure(self):
            self.add('comp', comp)
            self.driver.workflow.add('comp')
    return set_as_top(Model())
