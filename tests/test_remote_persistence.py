"""Models holding remote components, saved (YAML and pickle) and loaded in the same process:
the file records where each remote object lives and its saved state, never the object's data
or a key; loading reconnects to the same object, restores it from its saved state once it was
released, creates a fresh one when the state is gone too, and says clearly when the server does
not answer or no credentials are known."""

from __future__ import annotations

import io
import logging
import pickle
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

import remote_models
from openmdao_like import Assembly, load, set_as_top
from openmdao_like.errors import PersistenceError
from openmdao_like.persistence.yaml_io import load_documents
from openmdao_like.remote import RemoteComponent
from remote_servers import KEY, ServerProcess

FORMATS = ['model.yaml', 'model.pkl']


def build(factory: Any) -> Assembly:
    """A remote Scale (k=5, so y = 5 x) feeding a local one (k=2)."""
    top = set_as_top(Assembly())
    top.add('s', factory.create('remote_models.Scale', k=5.0))
    top.add('l', remote_models.Scale())
    top.connect('s.y', 'l.x')
    top.driver.workflow.add(['s', 'l'])
    top.s.x = 3.0
    top.run()
    assert (top.s.y, top.l.y) == (15.0, 30.0)
    return top


def node_of(path: Path, name: str = 's') -> dict:
    """The saved YAML node of child ``name``."""
    _, model = load_documents(path.read_text())
    return model['children'][name]


def state_of(path: Path) -> str:
    """The state file a saved model recorded for ``s`` (a pickle read without reconnecting)."""
    if path.suffix == '.yaml':
        return node_of(path)['remote']['state']
    data = path.read_bytes()
    start = data.index(b'states/Scale_')
    return data[start:data.index(b'.pkl', start) + 4].decode()


def states(factory: Any) -> tuple[str, ...]:
    """The state files kept on ``factory``'s server."""
    return factory.listdir('states') if 'states' in factory.listdir('.') else ()


@pytest.fixture
def saved(factory_a: Any, tmp_path: Path) -> Iterator[tuple[Assembly, Path]]:
    top = build(factory_a)
    for name in FORMATS:
        top.save(tmp_path / name)
    yield top, tmp_path


def test_the_yaml_node_records_the_location_and_inputs_not_the_key(saved, server_a):
    top, where = saved
    node = node_of(where / 'model.yaml')
    remote = node['remote']
    assert node['class'] == 'openmdao_like.remote.proxy.RemoteComponent'
    assert node['variables'] == {'k': 5.0, 'x': 3.0}          # inputs only
    assert remote['type'] == 'remote_models.Scale' and remote['version'] is None
    assert remote['factory'] == {'host': '127.0.0.2', 'port': server_a.port}
    assert remote['server'] == {'host': '127.0.0.2', 'port': top.s.address[1],
                                'pid': top.s.remote_pid}
    assert remote['object_id'] == top.s._obj_id
    assert remote['directory'] == top.s.remote_directory
    assert remote['state'].startswith('states/Scale_') and remote['state'].endswith('.pkl')
    for name in FORMATS:
        assert KEY.encode() not in (where / name).read_bytes()


@pytest.mark.parametrize('name', FORMATS)
def test_loading_reconnects_to_the_same_object(saved, name):
    top, where = saved
    loaded = load(where / name)
    assert isinstance(loaded.s, RemoteComponent) and loaded.s is not top.s
    assert (loaded.s.address, loaded.s.remote_pid) == (top.s.address, top.s.remote_pid)
    assert (loaded.s.x, loaded.s.k, loaded.s.y, loaded.l.y) == (3.0, 5.0, 15.0, 30.0)
    loaded.s.x = 4.0
    loaded.run()
    assert (loaded.s.y, loaded.l.y) == (20.0, 40.0)
    top.s.refresh()
    assert top.s.y == 20.0 and top.s.x == 4.0                   # one object, two proxies


@pytest.mark.parametrize('name', FORMATS)
def test_a_released_object_is_restored_from_its_saved_state(saved, factory_a, name):
    top, where = saved
    old_pid = top.s.remote_pid
    factory_a.release(top.s)
    loaded = load(where / name)
    assert isinstance(loaded.s, RemoteComponent) and loaded.s.remote_pid != old_pid
    assert (loaded.s.x, loaded.s.k) == (3.0, 5.0)
    assert loaded.s.y == 15.0                          # an output: only the saved state has it
    loaded.s.x = 1.0
    loaded.run()
    assert (loaded.s.y, loaded.l.y) == (5.0, 10.0)
    # saved again, the restored object records its own location
    loaded.save(where / 'again.yaml')
    again = node_of(where / 'again.yaml')['remote']
    assert again['server']['pid'] == loaded.s.remote_pid and again['state'] != \
        node_of(where / 'model.yaml')['remote']['state']


@pytest.mark.parametrize('name', FORMATS)
def test_without_its_state_a_fresh_object_gets_the_saved_inputs(saved, factory_a, name,
                                                                 caplog):
    top, where = saved
    factory_a.remove(state_of(where / name))
    factory_a.release(top.s)
    with caplog.at_level(logging.WARNING, logger='openmdao_like.remote.locations'):
        loaded = load(where / name)
    assert 'is not on the server any more; creating a new remote_models.Scale' in caplog.text
    assert (loaded.s.x, loaded.s.k, loaded.s.y) == (3.0, 5.0, 0.0)   # outputs: a new object's
    loaded.run()
    assert (loaded.s.y, loaded.l.y) == (15.0, 30.0)


def test_saving_a_released_proxy_is_refused(factory_a, tmp_path):
    top = build(factory_a)
    top.s.release()
    for fmt in ('yaml', 'pickle'):
        with pytest.raises(PersistenceError) as info:
            top.save(tmp_path / f'm.{fmt}', fmt=fmt)
        assert str(info.value) == ('s (remote_models.Scale): the remote object was released, '
                                   'so there is nothing to save; remove it from the model, or '
                                   'create it again')
        assert not (tmp_path / f'm.{fmt}').exists()


def test_only_save_pickles_a_proxy(factory_a):
    """A copy (e.g. a model shipped to worker processes) would be a second proxy driving the
    same object with its own idea of what was sent; save() records the location instead."""
    top = build(factory_a)
    before = states(factory_a)
    message = ("cannot pickle s (remote_models.Scale): a remote component is pickled only by "
               "save(), which records where its object lives; a copy would drive the same "
               "remote object as this proxy")
    with pytest.raises(TypeError) as info:
        pickle.dumps(top)
    assert str(info.value) == message
    assert states(factory_a) == before


def test_unknown_server_says_to_connect_first(saved):
    _, where = saved
    text = (where / 'model.yaml').read_text()
    node = node_of(where / 'model.yaml')
    port = node['remote']['factory']['port']
    hostile = text.replace(f'factory: {{host: 127.0.0.2, port: {port}}}',
                           'factory: {host: 127.0.0.9, port: 1}')
    assert hostile != text
    with pytest.raises(PersistenceError) as info:
        load(io.StringIO(hostile))
    assert str(info.value) == (
        "<stream>: s (remote_models.Scale): it lives on the server 127.0.0.9:1, and this "
        "process has no credentials for it; call connect_to_server('127.0.0.9', 1, key=...) "
        "before loading")


def test_a_malformed_location_is_named(saved):
    _, where = saved
    text = re.sub(r'object_id: \d+', 'object_id: x', (where / 'model.yaml').read_text())
    with pytest.raises(PersistenceError, match=r"^<stream>: s: remote.object_id: expected int, "
                                               r"got 'x' \(str\)$"):
        load(io.StringIO(text))


def test_a_remote_node_holds_no_other_keys(saved):
    _, where = saved
    text = (where / 'model.yaml').read_text().replace('    remote:\n',
                                                      '    children: {}\n    remote:\n')
    with pytest.raises(PersistenceError, match=r"^<stream>: line \d+: s: " + re.escape(
            "unknown key 'children' (expected some of ['class', 'directory', 'remote', "
            "'variables'])")):
        load(io.StringIO(text))


@pytest.mark.parametrize('name', FORMATS)
def test_a_stopped_server_is_a_clear_error(tmp_path, remote_key_file, name):
    server = ServerProcess(tmp_path / 'server', '127.0.0.2', remote_key_file).start()
    try:
        factory = server.connect()
        top = build(factory)
        top.save(tmp_path / name)
    finally:
        server.stop()
    with pytest.raises(PersistenceError) as info:
        load(tmp_path / name)
    assert str(info.value) == (
        f'{tmp_path / name}: s (remote_models.Scale): the server 127.0.0.2:{server.port} that '
        f'held it does not answer (ObjServerFactory on 127.0.0.2:{server.port}: cannot '
        f'connect: Connection refused); start it again and load again')


def test_after_a_server_restart_its_saved_state_is_restored(tmp_path, remote_key_file):
    """States are signed with the server's owner key, so a server restarted with the same key
    and root (same port) restores the states it saved before."""
    first = ServerProcess(tmp_path / 'server', '127.0.0.2', remote_key_file).start()
    try:
        top = build(first.connect())
        top.save(tmp_path / 'model.yaml')
    finally:
        first.stop()
    state = node_of(tmp_path / 'model.yaml')['remote']['state']
    second = ServerProcess(tmp_path / 'server', '127.0.0.2', remote_key_file,
                           extra=['--port', str(first.port)]).start()
    try:
        assert second.port == first.port and state in [
            f'states/{n}' for n in second.connect().listdir('states')]
        loaded = load(tmp_path / 'model.yaml')
        assert (loaded.s.x, loaded.s.k, loaded.s.y) == (3.0, 5.0, 15.0)  # the saved output
        loaded.run()
        assert loaded.l.y == 30.0
    finally:
        second.stop()


@pytest.mark.parametrize('name', FORMATS)
def test_a_state_changed_since_it_was_saved_is_not_loaded(saved, factory_a, name, caplog):
    """A state is a pickle: one replaced on the server (here by an owner's upload) no longer
    matches its signature and is refused; a fresh object gets the saved inputs."""
    top, where = saved
    planted = where / 'planted.pkl'
    planted.write_bytes(pickle.dumps({'not': 'a state'}))
    factory_a.upload(str(planted), state_of(where / name))
    factory_a.release(top.s)
    with caplog.at_level(logging.WARNING, logger='openmdao_like.remote.locations'):
        loaded = load(where / name)
    assert 'the server refuses to restore its saved state' in caplog.text
    assert 'not an object state saved by this server (or changed since)' in caplog.text
    assert (loaded.s.x, loaded.s.k, loaded.s.y) == (3.0, 5.0, 0.0)
