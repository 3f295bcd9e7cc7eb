"""Link styles between processes: push, pull, rpush, rpull; server-to-server transfers that never
pass through the assembly; a one-way firewall between servers; files moved between component
directories in chunks with a checksum."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pytest

import remote_models
from openmdao_like import Assembly, set_as_top
from openmdao_like.errors import RemoteError
from remote_servers import ServerProcess

N = 200_000  # 1.6 MB arrays: big enough to see whether they pass through the client


class Traffic:
    """Counts the bytes each proxy's connection sends and receives."""

    def __init__(self, *proxies):
        self.bytes = 0
        for proxy in proxies:
            self._wrap(proxy)

    def _wrap(self, proxy):
        call = proxy._conn.call

        def counted(name, *args, **kwargs):
            result = call(name, *args, **kwargs)
            self.bytes += _size(args) + _size(result)
            return result
        proxy._conn.call = counted


def _size(value) -> int:
    if hasattr(value, 'nbytes'):
        return value.nbytes
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, tuple):
        return sum(_size(v) for v in value)
    return 0


def pair_model(fa, fb, link: str) -> Assembly:
    class Pair(Assembly):
        def configure(self):
            self.add('a', fa.create('remote_models.ArrayScale', k=2.0))
            self.add('b', fb.create('remote_models.ArrayScale', k=3.0))
            self.connect('a.b', 'b.a', link=link)
            self.driver.workflow.add(['a', 'b'])
    top = set_as_top(Pair())
    top.a.a = np.arange(N, dtype=float)
    return top


@pytest.mark.parametrize('link', ['push', 'pull', 'rpush', 'rpull'])
def test_every_link_style_gives_the_same_result(factory_a, factory_b, link):
    top = pair_model(factory_a, factory_b, link)
    top.run()
    assert np.array_equal(top.b.b, np.arange(N) * 6.0)
    top.a.k = 1.0
    top.run()
    assert np.array_equal(top.b.b, np.arange(N) * 3.0)
    assert top.b.a[1] == 1.0  # reading the destination's input here fetches it


@pytest.mark.parametrize('link', ['rpush', 'rpull'])
def test_server_to_server_links_bypass_the_assembly(factory_a, factory_b, link):
    top = pair_model(factory_a, factory_b, link)
    top.run()
    traffic = Traffic(top.a, top.b)
    top.a.k = 5.0
    top.run()
    array_bytes = N * 8
    # a.a (unchanged) is not sent again, a.b goes server to server, b.b comes back once
    assert traffic.bytes < 1.2 * array_bytes, traffic.bytes
    assert top.b.b[1] == 15.0


def test_push_through_the_assembly_carries_the_data(factory_a, factory_b):
    top = pair_model(factory_a, factory_b, 'push')
    top.run()
    traffic = Traffic(top.a, top.b)
    top.a.k = 5.0
    top.run()
    assert traffic.bytes > 2.9 * N * 8  # a.b back, b.a out, b.b back


def test_pull_fetches_when_the_destination_runs(factory_a):
    class Model(Assembly):
        def configure(self):
            self.add('r', factory_a.create('remote_models.Scale', k=2.0))
            self.add('l', remote_models.Scale(k=1.0))
            self.connect('r.y', 'l.x', link='pull')
            self.driver.workflow.add(['r', 'l'])
    top = set_as_top(Model())
    top.r.x = 4.0
    fetched = []
    call = top.r._conn.call

    def spy(name, *args, **kwargs):
        fetched.append((name, args))
        return call(name, *args, **kwargs)
    top.r._conn.call = spy
    top.run()
    assert top.l.y == 8.0
    assert fetched[0][1][1] == ((), (), ())  # plan: r's runs bring nothing back
    assert fetched[1] == ('fetch', (('y',),))  # l's transfer fetches r.y


def test_local_to_remote_rlink_behaves_as_its_plain_style(factory_a):
    class Model(Assembly):
        def configure(self):
            self.add('l', remote_models.Scale(k=2.0))
            self.add('r', factory_a.create('remote_models.Scale', k=2.0))
            self.connect('l.y', 'r.x', link='rpush')
            self.driver.workflow.add(['l', 'r'])
    top = set_as_top(Model())
    top.l.x = 1.5
    top.run()
    assert top.r.y == 6.0


# -- a one-way firewall: X (127.0.0.2) may call Y (127.0.0.3), Y refuses calls from X ------------
@pytest.fixture(scope='module')
def firewall(tmp_path_factory, remote_key_file):
    x = ServerProcess(tmp_path_factory.mktemp('fw-x'), '127.0.0.2', remote_key_file,
                      extra=['--allowed-hosts', '127.0.0.1', '127.0.0.3'])
    y = ServerProcess(tmp_path_factory.mktemp('fw-y'), '127.0.0.3', remote_key_file,
                      extra=['--allowed-hosts', '127.0.0.1'])
    with x, y:
        fx, fy = x.connect(), y.connect()
        yield fx, fy
        fx.close()
        fy.close()


@contextmanager
def one_way(src_factory, dst_factory, link: str) -> Iterator[Assembly]:
    """src.y -> dst.x with ``link``; both objects released afterwards."""
    class Model(Assembly):
        def configure(self):
            self.add('src', src_factory.create('remote_models.Scale', k=2.0))
            self.add('dst', dst_factory.create('remote_models.Scale', k=1.0))
            self.connect('src.y', 'dst.x', link=link)
            self.driver.workflow.add(['src', 'dst'])
    top = set_as_top(Model())
    top.src.x = 2.0
    try:
        yield top
    finally:
        top.src.release()
        top.dst.release()


# (source on, destination on, link, passes): only calls from Y's server to X's may pass
@pytest.mark.parametrize(('src', 'dst', 'link', 'passes'), [
    ('x', 'y', 'rpush', False), ('x', 'y', 'rpull', True),
    ('y', 'x', 'rpull', False), ('y', 'x', 'rpush', True)])
def test_firewall_lets_one_direction_pass(firewall, src, dst, link, passes):
    factories = dict(zip('xy', firewall))
    with one_way(factories[src], factories[dst], link) as top:
        if passes:
            top.run()
            assert top.dst.y == 4.0
        else:
            with pytest.raises(RemoteError, match=r'127\.0\.0\.2 is not among the allowed '
                                                  r'hosts'):
                top.run()


# -- files ----------------------------------------------------------------------------------------
def pattern_sha256(size: int) -> str:
    block = bytes(range(256)) * 4096
    digest = hashlib.sha256()
    left = size
    while left > 0:
        digest.update(block[:min(left, len(block))])
        left -= len(block)
    return digest.hexdigest()


@pytest.mark.parametrize('link', ['push', 'rpush', 'rpull'])
def test_a_50mb_file_between_two_servers(factory_a, factory_b, link):
    size = 50_000_000

    class Model(Assembly):
        def configure(self):
            self.add('w', factory_a.create('remote_models.FileWriter', size=float(size)))
            self.add('r', factory_b.create('remote_models.FileReader'))
            self.connect('w.out_file', 'r.in_file', link=link)
            self.driver.workflow.add(['w', 'r'])
    top = set_as_top(Model())
    top.run()
    assert top.r.size == size
    assert top.r.where.startswith(top.r.remote_directory)
    assert factory_b._call('file_checksum', os.path.relpath(top.r.where, _root(factory_b))) \
        == pattern_sha256(size)


def _root(factory) -> str:
    return factory.info()['root']


def test_files_between_local_and_remote(factory_a, tmp_path):
    class Model(Assembly):
        def configure(self):
            self.add('w', factory_a.create('remote_models.FileWriter', size=3e6))
            self.add('local', remote_models.FileReader())
            self.add('back', factory_a.create('remote_models.FileReader'))
            self.connect('w.out_file', 'local.in_file')
            self.driver.workflow.add(['w', 'local', 'back'])
    top = set_as_top(Model(), str(tmp_path))
    top.local.directory = 'here'
    writer = remote_models.FileWriter(size=1e6)
    top.add('lw', writer)
    top.connect('lw.out_file', 'back.in_file')
    top.driver.workflow.add('lw', index=0)
    top.lw.directory = 'lw'
    top.run()
    assert top.local.size == 3e6
    assert top.local.where == str(tmp_path / 'here' / 'received.bin')
    with open(top.local.where, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == pattern_sha256(3_000_000)
    assert top.back.size == 1e6
    assert top.back.where.startswith(top.back.remote_directory)
