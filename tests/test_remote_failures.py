"""Failures across processes: remote exceptions arrive as the same type with the remote
traceback; a killed ObjServer or factory, a hung server, or a dead address gives `RemoteError`
naming host, port and object within the timeout, never a hang, and leaves no process behind."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from openmdao_like.errors import ConvergenceError, RemoteError, ValidationError
from openmdao_like.remote import connect_to_server
from remote_servers import KEY, ServerProcess, in_model, pid_alive


def wait_gone(pids, timeout=10.0) -> list[int]:
    """The pids still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


def wait_state(pid: int, state: str, timeout: float = 10.0) -> None:
    """Wait until every thread of process ``pid`` is in ``state`` (a /proc stat letter)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = set()
        for task in os.listdir(f'/proc/{pid}/task'):
            with open(f'/proc/{pid}/task/{task}/stat') as f:
                states.add(f.read().split(') ', 1)[1][0])
        if states == {state}:
            return
        time.sleep(0.01)
    raise AssertionError(f'process {pid} did not reach state {state!r}')


def test_builtin_exception_type_and_remote_traceback(factory_a):
    top = in_model(factory_a.create('remote_models.Fails'))
    with pytest.raises(ZeroDivisionError, match='float division by zero') as info:
        top.run()
    assert 'remote_models.py' in info.value.remote_traceback
    assert 'in execute' in info.value.remote_traceback
    assert any('Raised remotely by comp (remote_models.Fails) on 127.0.0.2:' in note
               for note in info.value.__notes__)


def test_openmdao_like_exception_type(factory_a):
    top = in_model(factory_a.create('remote_models.Fails', kind='ConvergenceError'))
    with pytest.raises(ConvergenceError, match='did not converge'):
        top.run()


def test_other_exception_types_become_remote_error(factory_a):
    top = in_model(factory_a.create('remote_models.Fails', kind='custom'))
    with pytest.raises(RemoteError, match=r'comp \(remote_models.Fails\) on 127\.0\.0\.2:\d+: '
                                          r'remote_models.CustomError: a custom failure'):
        top.run()


def test_constructor_errors_arrive_as_their_type(factory_a):
    with pytest.raises(ValidationError, match=r"k: expected a float, got 'abc' \(str\)"):
        factory_a.create('remote_models.Scale', k='abc')
    with pytest.raises(NameError, match="cannot create 'remote_models.Missing'"):
        factory_a.create('remote_models.Missing')
    assert factory_a.list_objects() == []


def test_unknown_address_is_reported_quickly():
    start = time.monotonic()
    with pytest.raises(RemoteError, match=r'127\.0\.0\.2:1: cannot connect'):
        connect_to_server('127.0.0.2', 1, key=KEY)
    assert time.monotonic() - start < 5


def test_killed_objserver_mid_run(factory_a):
    top = in_model(factory_a.create('remote_models.Sleeper', delay=30.0))
    pid = top.comp.remote_pid
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    start = time.monotonic()
    with pytest.raises(RemoteError, match=r'comp \(remote_models.Sleeper\) on 127\.0\.0\.2:\d+: '
                                          r'connection lost during run'):
        top.run()
    assert time.monotonic() - start < 10
    assert wait_gone([pid]) == []


def test_hung_objserver_times_out(server_a):
    factory = connect_to_server(server_a.host, server_a.port, key=server_a.key, timeout=2.0)
    comp = factory.create('remote_models.Scale')
    top = in_model(comp)
    os.kill(comp.remote_pid, signal.SIGSTOP)
    try:
        wait_state(comp.remote_pid, 'T')  # every thread stopped, not just signalled
        start = time.monotonic()
        with pytest.raises(RemoteError, match=r'comp \(remote_models.Scale\) on 127\.0\.0\.2:\d+: '
                                              r'no answer to run\(\) within 2 s'):
            top.run()
        assert time.monotonic() - start < 6
    finally:
        os.kill(comp.remote_pid, signal.SIGCONT)
        factory.release(comp)
        factory.close()


def test_killed_factory_mid_run(tmp_path, remote_key_file):
    with ServerProcess(tmp_path / 'doomed', '127.0.0.2', remote_key_file) as server:
        factory = server.connect()
        top = in_model(factory.create('remote_models.Sleeper', delay=30.0))
        objservers = server.objserver_pids()
        assert objservers == [top.comp.remote_pid]
        threading.Timer(0.5, os.kill, (server.pid, signal.SIGKILL)).start()
        start = time.monotonic()
        with pytest.raises(RemoteError, match=r'comp \(remote_models.Sleeper\) on '
                                              r'127\.0\.0\.2:\d+: connection lost'):
            top.run()
        assert time.monotonic() - start < 10
        assert wait_gone(objservers) == []  # no orphan ObjServer
        assert not factory.ping()
        with pytest.raises(RemoteError, match='ObjServerFactory on 127.0.0.2'):
            factory.list_objects()


def test_stopping_a_factory_ends_its_objservers(tmp_path, remote_key_file):
    with ServerProcess(tmp_path / 'stopped', '127.0.0.2', remote_key_file) as server:
        factory = server.connect()
        comps = [factory.create('remote_models.Scale') for _ in range(2)]
        pids = server.objserver_pids()
        assert sorted(pids) == sorted(c.remote_pid for c in comps)
    assert wait_gone(pids) == []
    assert not any((tmp_path / 'stopped' / 'root').glob('Scale_*'))
