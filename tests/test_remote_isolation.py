"""Isolated versions: a model saved with paraboloid-plugin 1.0 loads in a process that has 2.0,
its paraboloid created by a server running from a virtual environment that has 1.0, and used
through a proxy (``load(..., on_version_mismatch='isolate')``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

import remote_models
from openmdao_like import load
from openmdao_like.errors import PersistenceError, VersionMismatchError
from openmdao_like.persistence.yaml_io import load_documents
from openmdao_like.remote import (RemoteComponent, isolation_servers, register_isolation_server,
                                  unregister_isolation_server)
from plugin_tools import PLUGINS, make_venv, venv_install
from remote_servers import TESTS, ServerProcess, server_env

SAVE = '''
from openmdao_like import Assembly, create, set_as_top
from openmdao_like.drivers import ScipyOptimizer
from remote_models import Scale
top = set_as_top(Assembly())
top.add('p', create('paraboloid_plugin.Paraboloid', version='1.0'))
top.add('s', Scale(k=3.0))
top.add('driver', ScipyOptimizer(method='SLSQP'))
top.driver.workflow.add(['p', 's'])
top.connect('p.f_xy', 's.x')
top.driver.add_parameter('p.x', low=-50.0, high=50.0)
top.driver.add_parameter('p.y', low=-50.0, high=50.0)
top.driver.add_objective('p.f_xy')
top.driver.add_constraint('p.x - p.y >= 15.0')
top.p.x, top.p.y = 1.0, 2.0
top.save('model.yaml')
top.save('model.pkl')
'''
MISMATCH = ('paraboloid_plugin.Paraboloid: distribution paraboloid-plugin saved at version 1.0, '
            'installed here: 2.0')
ADVICE = ('(openmdao-like server start ...), then call openmdao_like.remote.'
          'register_isolation_server(connect_to_server(host, port, key=...)) before loading')


@pytest.fixture(scope='session')
def plugin_v1_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a virtual environment holding paraboloid-plugin 1.0 (and seeing this
    environment's packages)."""
    python = make_venv(tmp_path_factory.mktemp('venv-paraboloid-1.0') / 'venv')
    venv_install(python, PLUGINS / 'paraboloid_plugin')
    return python


@pytest.fixture(scope='module')
def v1_server(tmp_path_factory, plugin_v1_python, remote_key_file) -> Iterator[ServerProcess]:
    """A server started from the 1.0 environment (its ObjServers run there too)."""
    with ServerProcess(tmp_path_factory.mktemp('server-v1'), '127.0.0.2', remote_key_file,
                       python=str(plugin_v1_python)) as server:
        yield server


@pytest.fixture(scope='module')
def v2_server(tmp_path_factory, paraboloid_plugin_v2,
              remote_key_file) -> Iterator[ServerProcess]:
    """A server whose environment has 2.0 only."""
    with ServerProcess(tmp_path_factory.mktemp('server-v2'), '127.0.0.2', remote_key_file,
                       env=server_env(paraboloid_plugin_v2)) as server:
        yield server


@pytest.fixture(scope='module')
def saved_with_v1(tmp_path_factory, paraboloid_plugin_v1) -> Path:
    """model.yaml and model.pkl saved by a process that has paraboloid-plugin 1.0."""
    where = tmp_path_factory.mktemp('saved-v1')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['PYTHONPATH'] = os.pathsep.join([str(paraboloid_plugin_v1), str(TESTS)])
    proc = subprocess.run([sys.executable, '-W', 'error', '-c', textwrap.dedent(SAVE)],
                          cwd=where, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return where


@pytest.fixture
def with_v2(on_sys_path, paraboloid_plugin_v2) -> None:
    """This process has paraboloid-plugin 2.0."""
    on_sys_path(paraboloid_plugin_v2)


@pytest.fixture
def registered() -> Iterator[list[Any]]:
    """Servers a test registers (append their proxies); unregistered, and whatever they
    created released, afterwards."""
    servers: list[Any] = []
    try:
        yield servers
    finally:
        for server in isolation_servers():
            unregister_isolation_server(server)
        for server in servers:
            for row in server.list_objects():
                server._call('release', row['id'], False)
            server.close()


def test_the_paraboloid_runs_at_the_saved_version_on_the_isolation_server(
        with_v2, saved_with_v1, v1_server, plugin_v1_python, registered, tmp_path):
    import paraboloid_plugin
    assert paraboloid_plugin.__version__ == '2.0'
    registered.append(register_isolation_server(v1_server.connect()))
    top = load(saved_with_v1 / 'model.yaml', on_version_mismatch='isolate')
    assert isinstance(top.p, RemoteComponent)
    assert type(top.s) is remote_models.Scale                  # no version to isolate: local
    assert (top.p.typname, top.p.address[0]) == ('paraboloid_plugin.Paraboloid', '127.0.0.2')
    assert [(r['type'], r['pid']) for r in registered[0].list_objects()] == \
        [('paraboloid_plugin.Paraboloid', top.p.remote_pid)]
    cmdline = Path(f'/proc/{top.p.remote_pid}/cmdline').read_bytes().split(b'\0')
    assert cmdline[0].decode() == str(plugin_v1_python)       # it runs in the 1.0 venv
    assert (top.p.x, top.p.y, top.s.k) == (1.0, 2.0, 3.0)      # the saved values
    assert top.p.get_metadata('f_xy', 'units') == 'm**2'
    top.run()
    assert top.driver.success
    assert (top.p.x, top.p.y) == pytest.approx((7.1667, -7.8333), abs=1e-3)
    assert top.s.y == pytest.approx(3.0 * -27.0833, abs=1e-3)
    # saved again, the model records the remote object at its version there
    top.save(tmp_path / 'again.yaml')
    _, model = load_documents((tmp_path / 'again.yaml').read_text())
    remote = model['children']['p']['remote']
    assert (remote['type'], remote['version']) == ('paraboloid_plugin.Paraboloid', '1.0')
    assert remote['factory'] == {'host': '127.0.0.2', 'port': v1_server.port}


def test_without_a_registered_server_the_error_says_how_to_register_one(
        with_v2, saved_with_v1):
    assert isolation_servers() == []
    path = saved_with_v1 / 'model.yaml'
    with pytest.raises(VersionMismatchError) as info:
        load(path, on_version_mismatch='isolate')
    assert str(info.value) == (
        f'{path}: saved with versions that are not installed here, and no isolation server is '
        f'registered:\n  {MISMATCH}\nStart a server in an environment where the saved versions '
        f'are installed {ADVICE}')
    assert [m.class_name for m in info.value.mismatches] == ['paraboloid_plugin.Paraboloid']


def test_a_server_without_the_saved_version_is_listed_with_what_it_offers(
        with_v2, saved_with_v1, v2_server, registered):
    registered.append(register_isolation_server(v2_server.connect()))
    path = saved_with_v1 / 'model.yaml'
    with pytest.raises(VersionMismatchError) as info:
        load(path, on_version_mismatch='isolate')
    where = f'127.0.0.2:{v2_server.port}'
    assert str(info.value) == (
        f'{path}: saved with versions that are not installed here, and no registered isolation '
        f'server ({where}) has them:\n  {MISMATCH}\n    server {where} offers version 2.0\n'
        f'Start a server in an environment where the saved versions are installed and register '
        f'it too {ADVICE}')
    assert registered[0].list_objects() == []


def test_the_first_server_with_the_version_is_used(with_v2, saved_with_v1, v1_server,
                                                   v2_server, registered):
    v2, v1 = v2_server.connect(), v1_server.connect()
    registered.extend([v2, v1])
    register_isolation_server((v2_server.host, v2_server.port))    # by address: connected
    assert register_isolation_server(v1) is v1
    assert register_isolation_server(v1) is v1                      # once only
    assert [(s.host, s.port) for s in isolation_servers()] == \
        [('127.0.0.2', v2_server.port), ('127.0.0.2', v1_server.port)]
    top = load(saved_with_v1 / 'model.yaml', on_version_mismatch='isolate')
    assert top.p.remote_pid in [r['pid'] for r in v1.list_objects()]
    assert v2.list_objects() == []
    top.p.release()


def test_a_pickle_cannot_isolate(with_v2, saved_with_v1, v1_server, registered):
    registered.append(register_isolation_server(v1_server.connect()))
    path = saved_with_v1 / 'model.pkl'
    with pytest.raises(PersistenceError) as info:
        load(path, on_version_mismatch='isolate')
    assert str(info.value) == (
        f"{path}: on_version_mismatch='isolate' creates the classes saved at versions not "
        f"installed here in another process, which the pickle format cannot do (unpickling "
        f"rebuilds every object from the class installed here):\n  {MISMATCH}\nSave the model "
        f"in YAML (fmt=\"yaml\") where the saved versions are installed, and load that file; or "
        f"install the saved versions here")
    assert registered[0].list_objects() == []


def test_registering_needs_a_proxy_or_known_credentials():
    with pytest.raises(ValueError) as info:
        register_isolation_server(('127.0.0.9', 1))
    assert str(info.value) == (
        "register_isolation_server: no credentials for the server 127.0.0.9:1 in this process; "
        "call connect_to_server('127.0.0.9', 1, key=...) first, or pass the FactoryProxy it "
        "returns")
    with pytest.raises(TypeError, match='expected a FactoryProxy'):
        register_isolation_server('127.0.0.9:1')
    with pytest.raises(ValueError, match=r'^unregister_isolation_server: 127.0.0.9:1 is not '
                                         r'registered \(registered: none\)$'):
        unregister_isolation_server(('127.0.0.9', 1))
