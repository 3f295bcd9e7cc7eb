"""The PostgreSQL the job store's tests run against (tests/pg_server.py, fixtures in conftest):
a real server that takes connections, keeps tests apart, checks passwords and stops cleanly."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest

from pg_server import PostgresServer, PostgresUnavailable, find_bin_dir, pid_alive


def test_a_table_round_trips(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, connect_timeout=10) as conn:
        conn.execute('CREATE TABLE jobs (id serial PRIMARY KEY, state text NOT NULL)')
        conn.execute('INSERT INTO jobs (state) VALUES (%s), (%s)', ('queued', 'done'))
        rows = conn.execute('SELECT id, state FROM jobs ORDER BY id').fetchall()
    assert rows == [(1, 'queued'), (2, 'done')]


def test_each_url_is_its_own_database(postgres_server: PostgresServer, postgres_url: str) -> None:
    other_url = postgres_server.create_database('test_other_database')
    try:
        assert other_url != postgres_url
        with psycopg.connect(postgres_url, connect_timeout=10) as conn:
            conn.execute('CREATE TABLE mine (x int)')
            name = conn.execute('SELECT current_database()').fetchone()
        with psycopg.connect(other_url, connect_timeout=10) as conn:
            other_name = conn.execute('SELECT current_database()').fetchone()
            seen = conn.execute("SELECT to_regclass('mine')").fetchone()
        assert name != other_name
        assert seen == (None,)  # the other database does not see the table
    finally:
        postgres_server.drop_database('test_other_database')


def test_the_url_names_the_server(postgres_server: PostgresServer, postgres_url: str) -> None:
    prefix = f'postgresql://oml:{postgres_server.password}@127.0.0.1:{postgres_server.port}/'
    assert postgres_server.url == prefix + 'postgres'
    assert postgres_url.startswith(prefix + 'test_')
    assert postgres_server.password not in repr(postgres_server)


def test_a_wrong_password_is_refused(postgres_server: PostgresServer, postgres_url: str) -> None:
    database = postgres_url.rsplit('/', 1)[1]
    wrong = postgres_server.url_for(database, password='not-the-password')
    with pytest.raises(psycopg.OperationalError, match='password authentication failed'):
        psycopg.connect(wrong, connect_timeout=10)


def test_only_loopback_tcp_is_served(postgres_server: PostgresServer) -> None:
    with socket.create_connection(('127.0.0.1', postgres_server.port), timeout=5):
        pass
    with psycopg.connect(postgres_server.url, connect_timeout=10) as conn:
        listen = conn.execute('SHOW listen_addresses').fetchone()
    assert listen == ('127.0.0.1',)


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    server = PostgresServer()  # not the session's: this one is stopped
    try:
        pid, port, root = server.pid, server.port, server.root
        assert pid_alive(pid)
        with psycopg.connect(server.url, connect_timeout=10) as conn:
            backend = conn.execute('SELECT pg_backend_pid()').fetchone()[0]
            helpers = [row[0] for row in conn.execute(
                'SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()')]
        assert helpers  # checkpointer, background writer, ...: they must go too
    finally:
        server.stop()
    assert not pid_alive(pid)
    assert [p for p in [backend, *helpers] if pid_alive(p)] == []
    assert not root.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(('127.0.0.1', port), timeout=5).close()
    server.stop()  # a second stop is harmless


def test_missing_postgresql_says_how_to_install_it(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('PATH', str(tmp_path))
    with pytest.raises(PostgresUnavailable) as info:
        find_bin_dir([tmp_path])
    assert 'PostgreSQL is not installed' in str(info.value)
    assert 'install it: bash scripts/setup.sh --test' in str(info.value)


def test_the_newest_installed_version_is_used(tmp_path: Path) -> None:
    for version in ('9.6', '15', '16'):
        bin_dir = tmp_path / version / 'bin'
        bin_dir.mkdir(parents=True)
        for name in ('initdb', 'pg_ctl'):
            (bin_dir / name).touch()
    (tmp_path / '17' / 'bin').mkdir(parents=True)  # only a client: no initdb, no pg_ctl
    assert find_bin_dir([tmp_path]) == tmp_path / '16' / 'bin'
