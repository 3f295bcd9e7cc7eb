"""Session fixtures shared by the test modules: the example plugins installed once per session
into target directories (see tests/plugin_tools.py), and a way to use them in-process."""

from __future__ import annotations

import importlib
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from plugin_tools import PLUGINS, install_plugin

# Real daemons the resource tests use, each started once per session on loopback.
pytest_plugins = ['infra.sshd', 'infra.slurm', 'browser']


@pytest.fixture(scope='session')
def paraboloid_plugin_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding paraboloid-plugin 1.0 as ``pip install --target`` left it."""
    return install_plugin(PLUGINS / 'paraboloid_plugin', tmp_path_factory.mktemp('paraboloid-1.0'))


@pytest.fixture(scope='session')
def paraboloid_plugin_v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding paraboloid-plugin 2.0 (the same code, version rewritten)."""
    return install_plugin(PLUGINS / 'paraboloid_plugin', tmp_path_factory.mktemp('paraboloid-2.0'),
                          version='2.0')


@pytest.fixture(scope='session')
def qmc_doe_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding qmc-doe 1.0."""
    return install_plugin(PLUGINS / 'qmc_doe', tmp_path_factory.mktemp('qmc-doe-1.0'))


def forget_modules_under(*dirs: str | os.PathLike[str]) -> None:
    """Drop from ``sys.modules`` every module loaded from below one of ``dirs``."""
    roots = tuple(os.path.join(os.path.realpath(d), '') for d in dirs)
    for name, module in list(sys.modules.items()):
        path = getattr(module, '__file__', None)
        if path and os.path.realpath(path).startswith(roots):
            del sys.modules[name]


def refresh_factories() -> None:
    """Make the default factory chain read the installed entry points again."""
    from openmdao_like.factories import factory_manager
    importlib.invalidate_caches()
    for factory in factory_manager.factories:
        refresh = getattr(factory, 'refresh', None)
        if refresh is not None:
            refresh()


@pytest.fixture
def on_sys_path() -> Iterator[Callable[..., None]]:
    """``on_sys_path(dir, ...)`` puts plugin install directories first on ``sys.path`` for one
    test; afterwards ``sys.path`` is restored, the modules imported from them are forgotten and
    the default factories re-read the entry points."""
    saved = list(sys.path)
    added: list[str] = []

    def add(*dirs: str | os.PathLike[str]) -> None:
        for directory in reversed(dirs):
            sys.path.insert(0, str(directory))
            added.append(str(directory))
        importlib.invalidate_caches()

    try:
        yield add
    finally:
        sys.path[:] = saved
        forget_modules_under(*added)
        refresh_factories()




# -- object servers (see tests/remote_servers.py) -------------------------------------------------
from remote_servers import ServerProcess, write_key  # noqa: E402


@pytest.fixture(scope='session')
def remote_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The key the session's servers and clients share (mode 0600)."""
    return write_key(tmp_path_factory.mktemp('key') / 'key')


def _session_server(tmp_path_factory: pytest.TempPathFactory, key_file: Path,
                    host: str) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp(f'server-{host}'), host, key_file,
                           extra=['--allowed-hosts', '127.0.0.0/8'])
    with server:
        yield server


@pytest.fixture(scope='session')
def server_a(tmp_path_factory: pytest.TempPathFactory,
             remote_key_file: Path) -> Iterator[ServerProcess]:
    """An ObjServerFactory on 127.0.0.2 for the whole session."""
    yield from _session_server(tmp_path_factory, remote_key_file, '127.0.0.2')


@pytest.fixture(scope='session')
def server_b(tmp_path_factory: pytest.TempPathFactory,
             remote_key_file: Path) -> Iterator[ServerProcess]:
    """An ObjServerFactory on 127.0.0.3 for the whole session."""
    yield from _session_server(tmp_path_factory, remote_key_file, '127.0.0.3')


def _factory(server: ServerProcess) -> Iterator[Any]:
    proxy = server.connect()
    try:
        yield proxy
    finally:
        for row in proxy.list_objects():  # whatever the test created, even on failure
            proxy._call('release', row['id'], False)
        proxy.close()


@pytest.fixture
def factory_a(server_a: ServerProcess) -> Iterator[Any]:
    """A client of server_a; the objects a test creates are released after it."""
    yield from _factory(server_a)


@pytest.fixture
def factory_b(server_b: ServerProcess) -> Iterator[Any]:
    """A client of server_b; the objects a test creates are released after it."""
    yield from _factory(server_b)


# -- PostgreSQL (see tests/pg_server.py) ---------------------------------------------------------
from pg_server import PostgresServer, PostgresUnavailable  # noqa: E402


@pytest.fixture(scope='session')
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the session; missing PostgreSQL fails, never skips."""
    try:
        server = PostgresServer()
    except PostgresUnavailable as err:
        pytest.fail(str(err), pytrace=False)
    with server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database of its own for one test (dropped after it)."""
    name = f'test_{uuid.uuid4().hex}'
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


@pytest.fixture(params=['sqlite', 'postgresql'])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty job store of each kind: a SQLite file, a PostgreSQL database."""
    if request.param == 'sqlite':
        return f'sqlite:///{tmp_path / "runs.db"}'
    return request.getfixturevalue('postgres_url')


@pytest.fixture(scope='session')
def tls_files(tmp_path_factory):
    """Two self-signed certificates for 127.0.0.2, ((cert, key), (other cert, other key))."""
    from datetime import datetime, timedelta, timezone
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    root = tmp_path_factory.mktemp('tls')

    def make(name):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, '127.0.0.2')])
        now = datetime.now(timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address('127.0.0.2'))]), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        (root / f'{name}.pem').write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (root / f'{name}.key').write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return str(root / f'{name}.pem'), str(root / f'{name}.key')
    return make('server'), make('other')
