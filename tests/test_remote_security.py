"""Security by default: every connection authenticated before any call, hosts and types
checked, only declared methods callable (by role), no shell unless allowed, files confined to
the root, nothing but plain data decoded."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import rpyc

from openmdao_like.errors import PathError, RemoteError, WireError
from openmdao_like.remote import connect_to_server
from openmdao_like.remote.connection import ServerConnection
from remote_servers import KEY, ServerProcess, write_key


def test_wrong_key_is_refused(server_a):
    with pytest.raises(RemoteError, match=r'127\.0\.0\.2:\d+: connection refused by the server: '
                                          r'authentication failed: wrong key'):
        connect_to_server(server_a.host, server_a.port, key='not-the-right-key-at-all')


def test_no_key_is_refused_before_connecting(server_a):
    with pytest.raises(ValueError, match='a key is required'):
        connect_to_server(server_a.host, server_a.port)
    with pytest.raises(ValueError, match='at least 16 characters'):
        connect_to_server(server_a.host, server_a.port, key='short')


def test_a_plain_rpyc_client_gets_nothing(server_a):
    with pytest.raises(EOFError):
        conn = rpyc.connect(server_a.host, server_a.port, config={'sync_request_timeout': 5})
        conn.root.create
    with pytest.raises(EOFError):
        rpyc.classic.connect(server_a.host, server_a.port).modules.os.getcwd()


def test_undeclared_methods_are_not_reachable(factory_a):
    with pytest.raises(AttributeError, match="no remote method '_call'"):
        factory_a._call('_call')
    with pytest.raises(AttributeError, match="no remote method '__class__'"):
        factory_a._call('__class__')


def test_disallowed_host(tmp_path, remote_key_file):
    extra = ['--allowed-hosts', '127.0.0.5']
    with ServerProcess(tmp_path / 's', '127.0.0.2', remote_key_file, extra) as server:
        with pytest.raises(RemoteError, match=r'refused by the server: host 127\.0\.0\.1 is not '
                                              r'among the allowed hosts'):
            server.connect()


def test_disallowed_type(tmp_path, remote_key_file):
    extra = ['--allowed-types', 'remote_models.Scale', 'other.*']
    with ServerProcess(tmp_path / 's', '127.0.0.2', remote_key_file, extra) as server:
        factory = server.connect()
        with pytest.raises(TypeError, match=r"'remote_models.Paraboloid' is not among the "
                                            r"allowed types .*remote_models.Scale, other\.\*"):
            factory.create('remote_models.Paraboloid')
        factory.release(factory.create('remote_models.Scale'))
        assert [t.name for t in factory.get_available_types()] == []


def test_only_components_are_served(factory_a):
    with pytest.raises(TypeError, match=r'numpy.random.Generator: expected a Component type'):
        factory_a.create('numpy.random.Generator')
    with pytest.raises(NameError, match=r"'subprocess.Popen' would import the standard-library "
                                        r"module 'subprocess'.*refused before importing it"):
        factory_a.create('subprocess.Popen', args=['touch', 'pwned'])


def test_paths_escaping_the_root_are_refused(factory_a, tmp_path):
    for bad in ('../outside', '/etc/passwd', 'a/../../x'):
        with pytest.raises(PathError, match='outside|escape|relative'):
            factory_a.download(bad, str(tmp_path / 'x'))
    with pytest.raises(PathError):
        factory_a.listdir('..')
    comp = factory_a.create('remote_models.Scale')
    with pytest.raises(PathError):
        comp._call('file_stat', '../..')


def test_shell_needs_allow_shell(factory_a, tmp_path, remote_key_file):
    with pytest.raises(PermissionError, match='does not allow shell access'):
        factory_a.execute_command(['true'])
    with ServerProcess(tmp_path / 's', '127.0.0.2', remote_key_file,
                       ['--allow-shell']) as server:
        code, out, err = server.connect().execute_command(['echo', 'hi'])
        assert (code, out) == (0, b'hi\n')


def test_user_role_cannot_stop_or_run_commands(tmp_path, remote_key_file):
    user_key = write_key(tmp_path / 'user.key', 'user-key-' + 'u' * 30)
    extra = ['--user-key-file', str(user_key), '--allow-shell']
    with ServerProcess(tmp_path / 's', '127.0.0.2', remote_key_file, extra) as server:
        user = connect_to_server(server.host, server.port, key_file=str(user_key))
        assert user.role == 'user'
        with pytest.raises(PermissionError, match='allowed for the owner role, not for the '
                                                  "'user' role"):
            user.stop()
        with pytest.raises(PermissionError):
            user.execute_command(['true'])
        comp = user.create('remote_models.Scale')
        comp.x = 2.0
        comp.run()
        assert comp.y == 4.0
        assert server.connect().ping()


def test_no_code_from_payloads(factory_a, tmp_path):
    marker = tmp_path / 'pwned'

    class Evil:
        def __reduce__(self):
            return (subprocess.call, (['touch', str(marker)],))
    payload = pickle.dumps({'x': Evil()}, protocol=5)
    comp = factory_a.create('remote_models.Scale')
    with pytest.raises(WireError, match=r"not a value packet: expected a tuple tagged d, v or "
                                        r"x, got tuple 'p'"):
        comp._call('receive', ('p', payload, ()))
    with pytest.raises(WireError, match=r"not a value: unknown tag 'subprocess.call'"):
        comp._call('receive', ('x', ('subprocess.call', ('L', 'touch', str(marker)))))
    assert not marker.exists()


def test_tls(tmp_path, remote_key_file, tls_files):
    (cert, key), (other_cert, _) = tls_files
    extra = ['--tls-cert', cert, '--tls-key', key]
    with ServerProcess(tmp_path / 's', '127.0.0.2', remote_key_file, extra) as server:
        factory = server.connect(tls=True, ca_file=cert)
        assert factory.info()['tls'] is True
        comp = factory.create('remote_models.Scale')
        comp.x = 3.0
        comp.run()
        assert comp.y == 6.0
        with pytest.raises(RemoteError, match='TLS failed.*CERTIFICATE_VERIFY_FAILED'):
            server.connect(tls=True, ca_file=other_cert)
        with pytest.raises(RemoteError, match='closed the connection during the handshake.*'
                                              'tls=True'):
            server.connect()
        factory.release(comp)


def test_key_file_must_be_private(tmp_path):
    key = tmp_path / 'key'
    key.write_text(KEY)
    key.chmod(0o644)
    done = subprocess.run([sys.executable, '-m', 'openmdao_like.cli.main', 'server', 'start',
                           '--key-file', str(key)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert 'expected permissions 0600' in done.stderr


def test_server_connection_names_the_object(server_a):
    conn = ServerConnection(server_a.host, server_a.port, KEY, what='thing')
    assert conn.where == f'thing on 127.0.0.2:{server_a.port}'
    conn.close()
    with pytest.raises(RemoteError, match='connection is closed'):
        conn.call('ping')
