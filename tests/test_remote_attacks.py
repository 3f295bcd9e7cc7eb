"""Attacks on object servers after (and during) login, each through the wire or the public API
against a real `openmdao-like server start` process: the refusal, the bound it keeps (memory
read from /proc, connections closed within their deadline) and a good client served after.

Numbers refer to the defects of the security review (issue "Security that holds after login").
"""

from __future__ import annotations

import codecs
import io
import os
import select
import socket
import ssl
import struct
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from rpyc.core import brine, consts

from openmdao_like.errors import PathError, RemoteError, WireError
from openmdao_like.remote import connect_to_server
from openmdao_like.remote.auth import client_handshake, check_key
from openmdao_like.remote.connection import ServerConnection
from remote_servers import ServerProcess, reduce_pickle, write_key

USER_KEY = 'user-key-' + 'u' * 30
MB = 1 << 20


def status_field(pid: int, field: str) -> int:
    """A number from /proc/PID/status (VmRSS in kB, Threads)."""
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def rss_mb(pid: int) -> float:
    return status_field(pid, 'VmRSS') / 1024


def login(host: str, port: int, key: str) -> socket.socket:
    """A raw socket past the key challenge: what an attacker holding a key has."""
    sock = socket.create_connection((host, port), timeout=10)
    client_handshake(sock, check_key(key), 'attacker')
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (whatever it sends is read)."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except ConnectionError:
            return True


def still_serves(server: ServerProcess, key: str | None = None) -> None:
    """A good client creates, runs and releases an object."""
    factory = connect_to_server(server.host, server.port, key=key or server.key)
    comp = factory.create('remote_models.Scale')
    comp.x = 2.0
    comp.run()
    assert comp.y == 4.0
    factory.release(comp)
    factory.close()


@pytest.fixture
def connect(server: ServerProcess) -> Iterator[Any]:
    """``connect(key)``: a `FactoryProxy` to ``server``, closed after the test."""
    made: list[Any] = []

    def connect_with(key: str) -> Any:
        made.append(connect_to_server(server.host, server.port, key=key))
        return made[-1]
    yield connect_with
    for proxy in made:
        proxy.close()


@pytest.fixture
def server(tmp_path: Path, remote_key_file: Path) -> Iterator[ServerProcess]:
    """A server with a user key and tight bounds, so attacks end quickly."""
    user = write_key(tmp_path / 'user.key', USER_KEY)
    extra = ['--user-key-file', str(user), '--message-timeout', '2', '--login-timeout', '3',
             '--max-startups', '5', '--max-connections', '12']
    with ServerProcess(tmp_path / 's', '127.0.0.2', remote_key_file, extra) as proc:
        yield proc


# -- 1: no code from a user key --------------------------------------------------------------------
PLANTED = ('_codecs_jp', 'this', 'antigravity', 'zipfile', 'sqlite3', 'json', 'pickletools',
           'sitecustomize', 'usercustomize', 'cloudpickle', 'numpy')


def test_1_modules_uploaded_next_to_an_object_are_never_imported(server, tmp_path, connect):
    user = connect(USER_KEY)
    comp = user.create('remote_models.Scale')
    marker = tmp_path / 'pwned'
    source = tmp_path / 'evil.py'
    source.write_text(f'open({str(marker)!r}, "a").write(__name__)\n')
    from openmdao_like.remote import files
    for name in PLANTED:
        files.upload(comp._conn.call, str(source), f'{name}.py')
    # the exploit of the review: a wire value asking for the euc_jp codec
    exploit = reduce_pickle(codecs.encode, 'x', 'euc_jp')
    assert b'_codecs' in exploit and b'euc_jp' in exploit
    with pytest.raises(WireError, match='not a value packet'):
        comp._call('receive', ('p', exploit, ()))
    # everything a user may make its ObjServer do, which imports lazily
    comp.x = 3.0
    comp.run()
    comp._call('save_state', 'state.pkl')
    comp._call('file_pack_zip', '.', 'all.zip')
    comp._call('describe')
    assert comp.y == 6.0
    assert not marker.exists()
    cmdline = Path(f'/proc/{comp.remote_pid}/cmdline').read_bytes().split(b'\0')
    assert b'-P' in cmdline                     # no writable directory on sys.path
    user.release(comp)
    still_serves(server)


# -- 2: claimed lengths hold no memory; a stalled message ends -------------------------------------
def test_2_claimed_message_sizes_hold_no_memory_and_stalled_messages_end(server):
    before = rss_mb(server.pid)
    socks = []
    for _ in range(3):  # a frame claiming 1 GiB, then nothing
        sock = login(server.host, server.port, USER_KEY)
        sock.sendall(struct.pack('!LB', 1 << 30, 0))
        socks.append(sock)
    for _ in range(2):  # an out-of-band buffer count of 2**27 (1 GiB of sizes)
        sock = login(server.host, server.port, USER_KEY)
        sock.sendall(struct.pack('!LB', 10, 2) + b'x' * 11 + struct.pack('!I', 1 << 27))
        socks.append(sock)
    sock = login(server.host, server.port, USER_KEY)  # one buffer of 1.5 GiB, 1 MiB sent
    sock.sendall(struct.pack('!LB', 10, 2) + b'x' * 11 + struct.pack('!IQ', 1, 3 << 29)
                 + b'\0' * MB)
    socks.append(sock)
    time.sleep(0.5)
    assert rss_mb(server.pid) - before < 60
    for sock in socks:   # --message-timeout 2
        assert closed_within(sock, 15)
        sock.close()
    still_serves(server)


def test_2_a_stalled_message_under_tls_ends_too(tmp_path, remote_key_file, tls_files):
    (cert, key), _ = tls_files
    extra = ['--tls-cert', cert, '--tls-key', key, '--message-timeout', '2']
    with ServerProcess(tmp_path / 's', '127.0.0.2', remote_key_file, extra) as server:
        raw = socket.create_connection((server.host, server.port), timeout=10)
        ctx = ssl.create_default_context(cafile=cert)
        with ctx.wrap_socket(raw, server_hostname=server.host) as sock:
            client_handshake(sock, check_key(server.key), 'attacker')
            sock.sendall(struct.pack('!LB', 1000, 0) + b'x' * 10)     # 10 of 1000 bytes
            assert closed_within(sock, 15)
        still = server.connect(tls=True, ca_file=cert)
        assert still.ping()
        still.close()


def test_2_a_message_over_the_limit_closes_at_once(server):
    over = [struct.pack('!LB', (1 << 32) - 1, 0),               # over the 2 GiB default
            struct.pack('!LB', 10, 2) + b'x' * 11 + struct.pack('!I3Q', 3, 1 << 30, 1 << 30,
                                                                1 << 30)]
    for claim in over:
        with login(server.host, server.port, USER_KEY) as sock:
            sock.sendall(claim)
            assert closed_within(sock, 1.5)                  # before the message timeout
    still_serves(server)


def test_2_a_client_refuses_to_send_more_than_the_server_accepts(tmp_path, remote_key_file):
    extra = ['--max-message-size', '1M']
    with ServerProcess(tmp_path / 's', '127.0.0.2', remote_key_file, extra) as server:
        factory = server.connect()
        comp = factory.create('remote_models.ArrayScale', a=np.ones(3))
        comp.a = np.ones(200_000)                           # 1.6 MB
        with pytest.raises(WireError, match=r'exceeds the limit of 1048576 bytes that the '
                                            r'peer accepts \(max message size\)'):
            comp.run()
        comp.a = np.ones(1000)                              # the connection is still good
        comp.run()
        assert np.array_equal(comp.b, 2 * np.ones(1000))
        with pytest.raises(WireError, match='max message size'):
            factory.create('remote_models.ArrayScale', a=np.ones(200_000))
        factory.release(comp)
        factory.close()
        still_serves(server)


# -- 3: decoding never allocates from a claim ------------------------------------------------------
def test_3_a_tiny_create_argument_cannot_make_the_factory_allocate(server, connect):
    before = rss_mb(server.pid)
    user = connect(USER_KEY)
    review = reduce_pickle(bytearray, 1_350_000_000)        # 35 bytes
    with pytest.raises(WireError):
        user._call('create', 'remote_models.Scale', None, ('p', review, ()))
    for tree in (('A', '<f8', (1 << 28,), 'C', 0),            # an array without its data
                 ('A', '|V8', (4,), 'C', 0),                   # a dtype outside the list
                 ('A', 'O', (1 << 28,), 'C', ()),              # an object array, short
                 ('D', 'key without value'),
                 ('R', '/etc/passwd', False, None)):
        with pytest.raises(WireError):
            user._call('create', 'remote_models.Scale', None, ('x', tree))
    assert rss_mb(server.pid) - before < 60
    still_serves(server)


# -- 4: logins bounded in time and number ----------------------------------------------------------
def test_4_a_trickling_login_ends_at_the_login_timeout(server):
    sock = socket.create_connection((server.host, server.port))
    start = time.monotonic()
    for byte in b'OMLK2' + b'n' * 32:  # one byte every 0.5 s: each read is quick, the total not
        try:
            sock.sendall(bytes([byte]))
            readable, _, _ = select.select([sock], [], [], 0.5)
            if readable and not sock.recv(100):
                break
        except ConnectionError:
            break
    ended = time.monotonic() - start
    assert ended < 3 + 3, f'the login went on for {ended:.1f} s'   # --login-timeout 3
    sock.close()
    still_serves(server)


def test_4_connections_awaiting_login_are_capped(server):
    base = status_field(server.pid, 'Threads')
    socks = [socket.create_connection((server.host, server.port)) for _ in range(60)]
    time.sleep(0.5)
    # --max-startups 5, and one thread closing the refused ones
    assert status_field(server.pid, 'Threads') <= base + 6
    busy = 0
    for sock in socks:
        sock.settimeout(0.2)
        try:
            busy += sock.recv(5) == b'OMLKB'
        except (socket.timeout, ConnectionError):
            pass
    assert busy >= 50
    # a good client is told "busy" and retries until a place is free (the login timeout)
    still_serves(server)
    for sock in socks:
        sock.close()


def test_4_connections_beyond_the_cap_are_refused_clearly(server):
    held = [ServerConnection(server.host, server.port, server.key) for _ in range(12)]
    try:
        with pytest.raises(RemoteError, match=r'the server is busy: 12 connections open, the '
                                              r'most it serves \(max_connections\); still busy '
                                              r'after 2 s'):
            ServerConnection(server.host, server.port, server.key, connect_timeout=2)
    finally:
        for conn in held:
            conn.close()
    time.sleep(0.5)
    still_serves(server)


# -- 5: roles: a user key manages only its own objects, states are signed --------------------------
def test_5_a_user_key_cannot_plant_a_state_or_touch_the_owners_objects(server, tmp_path,
                                                                     connect):
    owner = connect(server.key)
    user = connect(USER_KEY)
    theirs = owner.create('remote_models.Scale')
    mine = user.create('remote_models.Scale')
    marker = tmp_path / 'pwned'
    planted = tmp_path / 'planted.pkl'
    planted.write_bytes(reduce_pickle(os.system, f'touch {marker}'))
    from openmdao_like.remote import files
    files.upload(mine._conn.call, str(planted), 'state.pkl')
    with pytest.raises(PermissionError, match="'state.pkl': not an object state saved by "
                                              "this server"):
        user._call('keep_state', mine._obj_id, 'state.pkl')
    user.upload(str(planted), f'{os.path.basename(mine.remote_directory)}/x.pkl')
    with pytest.raises(PermissionError, match='allowed for the owner role'):
        user._call('restore', 'remote_models.Scale',
                   f'{os.path.basename(mine.remote_directory)}/x.pkl')
    with pytest.raises(PermissionError, match='not an object state saved by this server'):
        owner._call('restore', 'remote_models.Scale',
                    f'{os.path.basename(mine.remote_directory)}/x.pkl')
    assert not marker.exists()
    # the owner's object is out of the user's reach
    with pytest.raises(ValueError, match=f'has no object {theirs._obj_id}'):
        user._call('release', theirs._obj_id, False)
    assert [o['id'] for o in user.list_objects()] == [mine._obj_id]
    assert {o['id'] for o in owner.list_objects()} == {mine._obj_id, theirs._obj_id}
    with pytest.raises(PathError, match='outside the directories of the objects this key'):
        user.listdir(os.path.basename(theirs.remote_directory))
    with pytest.raises(RemoteError, match='wrong key'):
        ServerConnection(server.host, theirs.address[1], USER_KEY)
    theirs.x = 1.0
    theirs.run()
    assert theirs.y == 2.0
    # a state the user's own object saved is kept (signed by its ObjServer)
    mine._call('save_state', 'good.pkl')
    assert user._call('keep_state', mine._obj_id, 'good.pkl').startswith('states/')
    user.release(mine)
    owner.release(theirs)


# -- 11: create checks the name before importing; the port has its own channel ---------------------
def test_11_create_refuses_a_stdlib_name_before_importing_it(server, connect):
    user = connect(USER_KEY)
    for name in ('this.Zen', 'antigravity.Fly', 'os.system', 'nonsense', '__import__'):
        with pytest.raises(NameError, match='refused before importing it|expected a dotted'):
            user.create(name)
    assert 'Zen of Python' not in server.tail()
    still_serves(server, USER_KEY)


def test_11_a_component_module_that_prints_does_not_break_the_port_report(server, connect):
    factory = connect(server.key)
    comp = factory.create('noisy_models.Noisy')
    comp.x = 1.5
    comp.run()
    assert comp.y == 3.0
    log = Path(comp.remote_directory) / 'objserver.log'
    assert 'noisy_models imported' in log.read_text()
    factory.release(comp)


# -- 12: dead objects, half-done unzips, introspection requests ------------------------------------
def test_12_a_dead_object_leaves_list_objects(server, connect):
    factory = connect(server.key)
    comp = factory.create('remote_models.Scale')
    os.kill(comp.remote_pid, 9)
    deadline = time.monotonic() + 15
    while any(o['id'] == comp._obj_id for o in factory.list_objects()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with pytest.raises(ValueError, match=rf'object {comp._obj_id} \(remote_models.Scale\) '
                                         rf'on the server on .* died \(exit status -9\)'):
        factory._call('keep_state', comp._obj_id, 'state.pkl')
    factory.release(comp)                                  # cleaning up is no error
    with pytest.raises(ValueError, match=f'has no object {comp._obj_id}'):
        factory._call('release', comp._obj_id, False)
    still_serves(server)


def test_12_a_failed_unzip_removes_what_it_extracted(server, tmp_path, connect):
    factory = connect(server.key)
    comp = factory.create('remote_models.Scale')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_STORED) as zf:
        zf.writestr('first/a.txt', b'a' * 100)
        zf.writestr('second/b.txt', b'b' * 100)
    data = bytearray(buf.getvalue())
    at = data.index(b'b' * 100)
    data[at:at + 10] = b'X' * 10                      # the second member's CRC fails
    archive = tmp_path / 'bad.zip'
    archive.write_bytes(bytes(data))
    base = os.path.basename(comp.remote_directory)
    factory.upload(str(archive), f'{base}/bad.zip')
    with pytest.raises(Exception, match='CRC|Bad'):
        factory.unpack_zip(f'{base}/bad.zip', f'{base}/out')
    assert 'out' not in factory.listdir(base)
    factory.release(comp)


@pytest.mark.parametrize('request_type', [consts.HANDLE_DIR, consts.HANDLE_STR,
                                          consts.HANDLE_REPR, consts.HANDLE_INSPECT,
                                          consts.HANDLE_GETATTR, consts.HANDLE_HASH])
def test_12_introspection_requests_are_not_served(server, request_type):
    conn = ServerConnection(server.host, server.port, USER_KEY)
    args = {consts.HANDLE_GETATTR: ('__class__',)}.get(request_type, ())
    root = conn._root if request_type != consts.HANDLE_INSPECT else conn._root.id_pack
    with pytest.raises(Exception, match=f'rpyc request {request_type} is not served here'):
        conn._conn.sync_request(request_type, root, *args)
    assert conn.call('ping') == 'pong'
    conn.close()


def test_a_server_accepts_no_reference_to_a_client_object(server):
    conn = ServerConnection(server.host, server.port, USER_KEY)
    with pytest.raises(Exception, match='accepts values only'):
        conn._conn.sync_request(consts.HANDLE_CALLATTR, conn._root, 'ping', (object(),), ())
    assert conn.call('ping') == 'pong'
    conn.close()


def test_a_malformed_frame_closes_only_that_connection(server):
    junk = brine.I1.pack(consts.MSG_REQUEST) + b'\xff' * 20
    deep = brine.I1.pack(consts.MSG_REQUEST) + b'\x10' * 5000   # tuples nested 5000 deep
    for frame in (junk, deep):
        with login(server.host, server.port, USER_KEY) as sock:
            sock.sendall(struct.pack('!LB', len(frame), 0) + frame + b'\n')
            assert closed_within(sock, 5)
    still_serves(server)
