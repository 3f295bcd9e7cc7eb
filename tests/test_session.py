"""`openmdao_like.Session`: what it holds (credentials, connections, registrars, allocated
servers) is its own, and is released when its ``with`` block ends; outside any block the
default session serves the simple API."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

import openmdao_like
from openmdao_like import Session, create
from openmdao_like.remote import RemoteComponent, connect_to_server, credentials_for
from openmdao_like.resources import LocalAllocator, ResourceAllocationManager, ram_factory
from openmdao_like.resources.registration import registrar_for
from openmdao_like.resources.startup import session_key
from openmdao_like.session import current_session, default_session
from remote_servers import pid_alive

TESTS = Path(__file__).resolve().parent


def open_connections_to(host: str, port: int) -> int:
    """How many established TCP connections this process has to ``host:port`` (from /proc)."""
    inodes = set()
    for fd in os.listdir('/proc/self/fd'):
        try:
            target = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            continue
        if target.startswith('socket:['):
            inodes.add(target[8:-1])
    want = '%08X:%04X' % (int.from_bytes(socket.inet_aton(host), 'little'), port)
    count = 0
    with open('/proc/net/tcp') as table:
        for line in list(table)[1:]:
            fields = line.split()
            if fields[2] == want and fields[3] == '01' and fields[9] in inodes:
                count += 1
    return count


def wait_gone(pid: int, limit: float = 30.0) -> bool:
    """Whether ``pid`` is gone within ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not pid_alive(pid)


# -- the session itself ---------------------------------------------------------------------------
def test_exported_and_default_outside_any_block():
    assert openmdao_like.Session is Session and 'Session' in openmdao_like.__all__
    assert current_session() is default_session()
    with Session('outer') as outer:
        assert current_session() is outer
        with Session('inner') as inner:
            assert current_session() is inner
        assert current_session() is outer and inner.closed
    assert current_session() is default_session() and outer.closed


def test_resources_are_made_once_and_released_newest_first(caplog):
    released = []

    def broken(_resource):
        raise OSError('cannot close')

    with Session('s') as s:
        first = s.hold('first', lambda: ['a'], released.append)
        assert s.hold('first', lambda: ['other']) is first
        s.hold('plain', dict)  # nothing to release
        s.hold('broken', object, broken)
        s.hold('last', lambda: ['z'], released.append)
        assert s.kinds() == ['first', 'plain', 'broken', 'last']
        assert s.held('missing') is None and s.held('first') is first
    assert released == [['z'], ['a']]  # the failing release did not stop the others
    assert "s: releasing broken failed" in caplog.text
    assert s.kinds() == [] and repr(s) == "<Session 's': closed>"
    with pytest.raises(RuntimeError, match=r"<Session 's': closed>: cannot hold 'x': the "
                                           r"session was closed; start a new Session"):
        s.hold('x', dict)
    with pytest.raises(RuntimeError, match='a closed session cannot be entered again'):
        s.__enter__()
    s.close()  # idempotent


# -- what the layers keep in it -------------------------------------------------------------------
def test_two_sessions_share_no_credentials_nor_connections(server_a):
    host, port = server_a.host, server_a.port
    before = open_connections_to(host, port)
    default = credentials_for(host, port)  # what earlier tests left in the default session
    with Session() as first:
        connect_to_server(host, port, key=server_a.key)
        comp1 = create('remote_models.Scale', server=(host, port), k=3.0)
        with Session() as second:
            assert credentials_for(host, port) is None
            with pytest.raises(NameError, match=f'no credentials for the server {host}:{port}'):
                create('remote_models.Scale', server=(host, port))
            connect_to_server(host, port, key=server_a.key)
            comp2 = create('remote_models.Scale', server=(host, port), k=5.0)
            mine = second.held('remote.factory_proxies')[(host, port)]
            assert mine is not first.held('remote.factory_proxies')[(host, port)]
            assert not set(second.held('remote.connections')) & \
                set(first.held('remote.connections'))
            comp2.release()
        assert mine._conn.closed  # the second session's connections are closed...
        assert credentials_for(host, port) is not None  # ...the first one's are untouched
        comp1.x = 2.0
        comp1.run()
        assert comp1.y == 6.0
        comp1.release()
        held = list(first.held('remote.connections'))
        assert held and open_connections_to(host, port) > before
    assert all(proxy._conn.closed for proxy in held)
    assert open_connections_to(host, port) == before
    assert credentials_for(host, port) == default  # the default session's are untouched


def test_leaving_the_block_stops_its_registrars():
    with Session():
        key = session_key()
        registrar = registrar_for('127.0.0.1')
        assert registrar_for('127.0.0.1') is registrar
        name = f'registrar-127.0.0.1:{registrar.address[1]}'
        assert name in {t.name for t in threading.enumerate()}
        with Session():
            assert session_key() != key and registrar_for('127.0.0.1') is not registrar
    assert name not in {t.name for t in threading.enumerate()}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(registrar.address, timeout=5).close()


@pytest.mark.slow
def test_leaving_the_block_stops_the_servers_allocated_for_it(monkeypatch):
    ram = ResourceAllocationManager([LocalAllocator(max_load=None)])
    monkeypatch.setattr(ram_factory, 'ram', ram)
    try:
        with Session():
            comp = create('remote_models.Paraboloid',
                          res_desc={'localhost': True,
                                    'job_environment': {'PYTHONPATH': str(TESTS)}})
            assert isinstance(comp, RemoteComponent)
            server_pid, object_pid = comp._factory.info()['pid'], comp.remote_pid
            assert ram.list_allocators()[0].in_use == 1
        assert wait_gone(server_pid) and wait_gone(object_pid)
        assert ram.list_allocators()[0].in_use == 0
    finally:
        ram.shutdown()


def test_default_session_keeps_credentials_for_the_simple_api(server_a):
    factory = connect_to_server(server_a.host, server_a.port, key=server_a.key)
    try:
        assert credentials_for(server_a.host, server_a.port) == factory.credentials
        assert factory in default_session().held('remote.connections')
    finally:
        factory.close()
