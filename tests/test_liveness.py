"""Every wait bounded, every dead peer noticed: a server (object server or factory) killed or
frozen (SIGKILL, SIGSTOP) during a call whose limit is a day is reported as `RemoteError`
within 10 s, a healthy server is never taken for a frozen one, and a process group stopped with
``kill(grace)`` leaves no process behind, even one that ignores SIGTERM.

The detection times are measured and asserted < 10 s: a correctness bound (the issue's), not a
benchmark."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from openmdao_like.errors import RemoteError
from openmdao_like.processes import CommandTimeout, PidProcess, execute, spawn
from openmdao_like.resources.channels import LocalChannel
from remote_servers import ServerProcess, in_model, pid_alive

#: The bound on noticing a dead or frozen server (the issue's).
DETECTION = 10.0
#: A call's own limit in these tests: far beyond any detection.
DAY = 24 * 3600.0


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """The pids still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.02)
    return [p for p in pids if pid_alive(p)]


class Signal:
    """Sends ``sig`` to ``pid`` after ``delay`` seconds (in a thread) and notes when."""

    def __init__(self, pid: int, sig: int, delay: float = 1.0):
        self.pid, self.sig = pid, sig
        self.sent: float | None = None
        self._timer = threading.Timer(delay, self._send)
        self._timer.start()

    def _send(self) -> None:
        os.kill(self.pid, self.sig)
        self.sent = time.monotonic()

    def detection_time(self) -> float:
        """Seconds from the signal to now."""
        self._timer.join(5)
        assert self.sent is not None, 'the signal was never sent'
        return time.monotonic() - self.sent


# -- object servers -------------------------------------------------------------------------------
def test_objserver_killed_during_a_long_call(factory_a):
    top = in_model(factory_a.create('remote_models.Sleeper', delay=60.0))
    pid = top.comp.remote_pid
    kill = Signal(pid, signal.SIGKILL)
    with pytest.raises(RemoteError, match=r'comp \(remote_models.Sleeper\) on 127\.0\.0\.2:\d+: '
                                          r'connection lost during run\(\)'):
        top.run()
    assert kill.detection_time() < DETECTION
    assert wait_gone([pid]) == []


def test_objserver_frozen_during_a_long_call(factory_a):
    top = in_model(factory_a.create('remote_models.Sleeper', delay=60.0))
    pid = top.comp.remote_pid
    stop = Signal(pid, signal.SIGSTOP)
    try:
        with pytest.raises(RemoteError, match=r'comp \(remote_models.Sleeper\) on '
                                              r'127\.0\.0\.2:\d+: the server stopped responding '
                                              r'during run\(\)') as info:
            top.run()
        assert stop.detection_time() < DETECTION
        assert 'the connection was closed' in str(info.value)
    finally:
        stop.detection_time()  # the signal went out before SIGCONT follows it
        os.kill(pid, signal.SIGCONT)
    factory_a.release(top.comp)
    assert wait_gone([pid]) == []


def test_a_healthy_server_busy_in_a_long_call_is_not_taken_for_frozen(factory_a):
    """The call outlasts several heartbeat misses' worth of time: the server's other thread
    answers the pings while the first is busy."""
    top = in_model(factory_a.create('remote_models.Sleeper', delay=8.0, x=3.0))
    top.run()
    assert top.comp.y == 3.0


# -- factories ------------------------------------------------------------------------------------
@pytest.fixture
def shell_server(tmp_path: Path, remote_key_file: Path):
    """A factory of its own (allowing commands), stopped (if still running) after the test."""
    server = ServerProcess(tmp_path / 'shell', '127.0.0.2', remote_key_file,
                           extra=['--allow-shell'])
    with server:
        yield server


#: A command that writes its pid to the file "$1" and runs until its parent (the factory) ends.
UNTIL_ORPHANED = ('import os, sys, time\n'
                  'open(sys.argv[1], "w").write(str(os.getpid()))\n'
                  'parent, end = os.getppid(), time.monotonic() + 120\n'
                  'while os.getppid() == parent and time.monotonic() < end:\n'
                  '    time.sleep(0.05)\n')


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGSTOP], ids=['SIGKILL', 'SIGSTOP'])
def test_factory_lost_during_a_long_call(shell_server: ServerProcess, sig: int,
                                         tmp_path: Path):
    factory = shell_server.connect()
    where = tmp_path / 'command.pid'
    hit = Signal(shell_server.pid, sig)
    try:
        with pytest.raises(RemoteError, match=r'ObjServerFactory on 127\.0\.0\.2:\d+: '
                                              r'(connection lost|the server stopped responding) '
                                              r'during execute_command\(\)'):
            factory.execute_command([sys.executable, '-c', UNTIL_ORPHANED, str(where)],
                                    timeout=DAY)
        assert hit.detection_time() < DETECTION
    finally:
        hit.detection_time()
        if sig == signal.SIGSTOP:
            os.kill(shell_server.pid, signal.SIGCONT)
        factory.close()
        shell_server.stop()
    assert wait_gone(_pids(where, 1)) == []


# -- process groups -------------------------------------------------------------------------------
def _pids(path: Path, count: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            words = path.read_text().split()
            if len(words) == count:
                return [int(w) for w in words]
        time.sleep(0.01)
    raise AssertionError(f'{path} did not list {count} pids')


#: A leader (sh) whose child ignores SIGTERM; it writes both pids to the file "$1".
STUBBORN = '(trap "" TERM; exec sleep 600) & echo $$ $! > "$1"; wait'


def test_kill_with_grace_leaves_no_process_even_one_ignoring_sigterm(tmp_path: Path):
    where = tmp_path / 'pids'
    process = LocalChannel().spawn(['sh', '-c', STUBBORN, 'stubborn', str(where)])
    leader, child = _pids(where, 2)
    assert leader == process.pid and pid_alive(child)
    start = time.monotonic()
    status = process.kill(grace=0.5)
    took = time.monotonic() - start
    assert status == -signal.SIGTERM  # the leader ended at SIGTERM, its child needed SIGKILL
    assert 0.5 <= took < 5.0
    assert wait_gone([leader, child], timeout=2.0) == []
    assert process.kill() == status  # again: nothing left to do


def test_kill_of_a_group_that_ends_at_sigterm_is_quick(tmp_path: Path):
    process = spawn([sys.executable, '-c', 'import time; time.sleep(600)'])
    start = time.monotonic()
    assert process.kill(grace=30.0) == -signal.SIGTERM
    assert time.monotonic() - start < 5.0
    assert not pid_alive(process.pid)


def test_execute_kills_the_group_after_its_timeout(tmp_path: Path):
    where = tmp_path / 'pid'
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match=r'sh: did not finish within 0\.5 s \(on this '
                                             r'host\); its process group was killed') as info:
        execute(['sh', '-c', 'echo started; sleep 600 & echo $! > "$1"; wait', 'sh',
                 str(where)], timeout=0.5, grace=0.5)
    assert time.monotonic() - start < 5.0
    assert isinstance(info.value, TimeoutError)
    assert info.value.result.returncode == -signal.SIGTERM
    assert info.value.result.stdout == 'started\n'
    assert wait_gone(_pids(where, 1), timeout=2.0) == []


def test_pid_process_kill_signals_the_process_alone(tmp_path: Path):
    """A process known by pid only (a server file's): SIGTERM to it, not to its group."""
    neighbour = spawn(['sleep', '600'])
    target = spawn(['sleep', '600'])
    try:
        adopted = PidProcess(target.pid)
        assert adopted.running() and adopted.poll() is None
        assert adopted.kill(grace=5.0) == -1 and not adopted.sigkilled
        assert target.wait(5) == -signal.SIGTERM
        assert neighbour.poll() is None
    finally:
        neighbour.kill(0.0)
        target.kill(0.0)
