"""Components for the RAMExecutor tests: a paraboloid that reports the process running it and
misbehaves on request (model errors, killing its server, cancelling its job, hanging); and the
check that released servers left nothing behind. The servers import this module by name (the
tests put this directory on their PYTHONPATH), so a model refers to it and each server process
unpickles it once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from openmdao_like import Component, Float, Str

#: How many times this process unpickled a `Probe` (once per server when shipped once).
LOADS = 0
#: Whether this process has been to the rendezvous (see `Probe`).
MET = False
#: Longest a hanging or waiting case waits before giving up (only keeps a broken test finite).
PATIENCE = 300.0


def first_time(markers: str, what: str, x: float) -> bool:
    """True the first time any process on this machine asks for (``what``, ``x``): a marker
    file in ``markers`` remembers it."""
    try:
        os.close(os.open(os.path.join(markers, f'{what}-{x!r}'), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


class Probe(Component):
    """f_xy = (x-3)^2 + xy + (y+4)^2 - 3, plus the pid of the process running it and how many
    times that process unpickled a Probe.

    Misbehaves when x equals one of the ``*_at`` inputs: ``fail_at`` raises every time,
    ``fail_once_at`` raises the first time only; ``kill_at`` SIGKILLs its own process every
    time, ``kill_once_at`` the first time only; ``kill_server_once_at`` SIGKILLs its parent (the
    allocated server) the first time and waits to be ended with it; ``cancel_job_once_at``
    cancels the SLURM job it runs in (scancel) the first time and waits to be ended with it;
    ``hang_at`` hangs every time, ``hang_once_at`` the first time only; ``stop_once_at`` stops its process (SIGSTOP) the first
    time. Cases with x > ``x_limit`` raise. "First time" is remembered in ``markers`` (a
    directory), across processes. With a ``rendezvous`` directory, the first
    case of each process waits there until ``servers`` processes have come (so each server
    gets cases). Kills, cancels and hangs happen only in a process the model was shipped to,
    never in the one that made it (the test).
    """

    x = Float(0.0, iotype='in')
    y = Float(0.0, iotype='in')
    x_limit = Float(1e9, iotype='in')
    fail_at = Float(-1.0, iotype='in')
    fail_once_at = Float(-1.0, iotype='in')
    kill_at = Float(-1.0, iotype='in')
    kill_once_at = Float(-1.0, iotype='in')
    kill_server_once_at = Float(-1.0, iotype='in')
    cancel_job_once_at = Float(-1.0, iotype='in')
    hang_at = Float(-1.0, iotype='in')
    hang_once_at = Float(-1.0, iotype='in')
    stop_once_at = Float(-1.0, iotype='in')
    markers = Str('', iotype='in')
    rendezvous = Str('', iotype='in')
    servers = Float(0.0, iotype='in')
    f_xy = Float(0.0, iotype='out')
    pid = Float(0.0, iotype='out')
    loads = Float(0.0, iotype='out')

    def __init__(self) -> None:
        super().__init__()
        self._home = os.getpid()

    def __setstate__(self, state: dict) -> None:
        global LOADS
        LOADS += 1
        super().__setstate__(state)

    def execute(self) -> None:
        x = self.x
        if self.rendezvous and not MET:
            self._meet()
        if os.getpid() != self._home:
            self._misbehave(x)
        if x == self.fail_at or (x == self.fail_once_at and first_time(self.markers, 'fail', x)):
            raise RuntimeError(f'model failure at x={x}')
        if x > self.x_limit:
            raise ValueError(f'x={x} is above x_limit={self.x_limit}')
        self.f_xy = (x - 3.0) ** 2 + x * self.y + (self.y + 4.0) ** 2 - 3.0
        self.pid = os.getpid()
        self.loads = LOADS

    def _misbehave(self, x: float) -> None:
        """Kill this process, its server or its batch job, or hang, as asked."""
        if x == self.kill_at or (x == self.kill_once_at and
                                 first_time(self.markers, 'kill', x)):
            os.kill(os.getpid(), signal.SIGKILL)
        if x == self.kill_server_once_at and first_time(self.markers, 'kill-server', x):
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(PATIENCE)  # this process ends when its server is gone
        if x == self.cancel_job_once_at and first_time(self.markers, 'cancel-job', x):
            subprocess.run(['scancel', os.environ['SLURM_JOB_ID']], check=True)
            time.sleep(PATIENCE)  # this process ends with its job
        if x == self.hang_at or (x == self.hang_once_at and first_time(self.markers, 'hang', x)):
            time.sleep(PATIENCE)
        if x == self.stop_once_at and first_time(self.markers, 'stop', x):
            os.kill(os.getpid(), signal.SIGSTOP)  # frozen until killed
            time.sleep(PATIENCE)  # (the group stop may reach this thread a little later)

    def _meet(self) -> None:
        """Sign in at the rendezvous and wait for ``servers`` processes to have come."""
        global MET
        here = Path(self.rendezvous)
        (here / f'pid-{os.getpid()}').touch()
        deadline = time.monotonic() + PATIENCE
        while len(list(here.glob('pid-*'))) < self.servers:
            if time.monotonic() > deadline:
                raise RuntimeError(f'fewer than {self.servers:g} processes ran cases')
            time.sleep(0.01)
        MET = True


class NotLoadable(Probe):
    """A Probe that pickles but cannot be unpickled (on a server)."""

    def __setstate__(self, state: dict) -> None:
        raise RuntimeError('this component cannot be unpickled')


def leftovers(workdir: Path) -> list[str]:
    """What servers left in ``workdir``: its entries, and the live processes running in it or
    started from it."""
    found = [f'directory {p}' for p in workdir.iterdir()] if workdir.exists() else []
    for proc in Path('/proc').iterdir():
        if not proc.name.isdigit():
            continue
        try:
            state = (proc / 'stat').read_text().rsplit(') ', 1)[1][:1]
            cwd = os.readlink(proc / 'cwd')
            cmdline = (proc / 'cmdline').read_bytes().replace(b'\0', b' ').decode()
        except (OSError, IndexError):
            continue
        if state != 'Z' and (cwd.startswith(str(workdir)) or str(workdir) in cmdline):
            found.append(f'process {proc.name}: {cmdline}')
    return found


def eventually(check: Callable[[], Any], limit: float = 60.0) -> Any:
    """``check()`` once it is true (servers and jobs end in the background); its last value
    otherwise. The limit only keeps a broken test from hanging."""
    deadline = time.monotonic() + limit
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value
