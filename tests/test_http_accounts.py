"""The HTTP component service's configuration file, JWT secret and users (``openmdao-like http
adduser|deluser|users``): every bad entry named, only argon2 hashes stored, never a password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from openmdao_like.errors import ConfigError
from openmdao_like.http import Exposed, User, Users, load_config
from openmdao_like.http.config import MIN_SECRET_BYTES, SECRET_VARIABLE

SECRET = 'k' * 48


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    secret = write(tmp_path / 'jwt.secret', SECRET + '\n')
    secret.chmod(0o600)
    return write(tmp_path / 'http.yaml', 'port: 8443\nsecret_file: jwt.secret\n'
                                         'tls: {cert: server.pem, key: server.key}\n'
                                         'components:\n'
                                         '  - paraboloid_plugin.Paraboloid\n'
                                         '  - {name: aero_plugin.Aero, roles: [aero, admin]}\n')


def http_cli(*args: str, stdin: str = '', cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'openmdao_like.cli.main', 'http', *args],
                          input=stdin, capture_output=True, text=True, timeout=60, cwd=cwd)


# -- the configuration ------------------------------------------------------------------------
def test_a_configuration_is_read_with_paths_beside_it(config: Path) -> None:
    conf = load_config(config)
    base = config.parent.resolve()
    assert (conf.host, conf.port) == ('127.0.0.1', 8443)
    assert conf.secret_file == base / 'jwt.secret'
    assert conf.tls == (base / 'server.pem', base / 'server.key')
    assert conf.components == (Exposed('paraboloid_plugin.Paraboloid'),
                               Exposed('aero_plugin.Aero', ('aero', 'admin')))
    assert conf.users_file == base / 'http.users.yaml'
    assert conf.secret() == SECRET.encode()
    aero = conf.component('aero_plugin.Aero')
    assert aero.allows(['admin']) and not aero.allows(['guest']) and not aero.allows([])
    assert conf.component('paraboloid_plugin.Paraboloid').allows([])
    assert conf.component('os.system') is None
    assert conf.store_url == f'sqlite:///{base / "http.jobs.db"}'
    assert conf.files_dir == base / 'http.files'
    relative = load_config(write(base / 'other.yaml', 'store: sqlite:///j.db\n'))
    assert relative.store_url == f'sqlite:///{base / "j.db"}'


KEYS = ('host, port, secret_file, tls, workers, timeout, max_upload, store, workdir, '
        'components')


@pytest.mark.parametrize('text, message', [
    ('- a\n', f'expected a mapping of {KEYS}, got'),
    ('hots: x\n', f"unknown key(s) 'hots'; expected some of {KEYS}"),
    ('workers: 0\n', 'workers must be an integer >= 1, got 0'),
    ('timeout: -1\n', 'timeout must be a number >= 0.001, got -1'),
    ('max_upload: 1.5\n', 'max_upload must be an integer >= 0, got 1.5'),
    ('store: jobs.db\n', "store must be a job store URL (sqlite:///PATH or postgresql://...), "
                         "got 'jobs.db'"),
    ('port: 70000\n', 'port must be an integer in [0, 65535], got 70000'),
    ('port: "80"\n', "port must be an integer in [0, 65535], got '80'"),
    ('host: 3\n', 'host must be a host name or address, got 3'),
    ('tls: {cert: a.pem}\n', 'tls must be a mapping {cert: PATH, key: PATH}, got'),
    ('components: x.Y\n', 'components must be a list of dotted class names'),
    ('components: [Paraboloid]\n', 'components[0]: name must be a dotted class name '
                                   "(package.Class), got 'Paraboloid'"),
    ('components: [{name: a.B, roles: admin}]\n', "components[0] (a.B): roles must be a list of "
                                                  "role names"),
    ('components: [{name: a.B, role: [x]}]\n', 'components[0] must be a dotted class name or'),
    ('components: [a.B, a.B]\n', 'components[1]: a.B is offered twice'),
    ('port: [\n', 'not valid YAML'),
])
def test_a_bad_configuration_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / 'http.yaml', text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f'{path.resolve()}: ')
    assert message in str(info.value)


def test_a_missing_configuration_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='cannot read the HTTP service configuration'):
        load_config(tmp_path / 'none.yaml')


def test_no_secret_no_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_VARIABLE, raising=False)
    conf = load_config(write(tmp_path / 'http.yaml', 'port: 8443\n'))
    with pytest.raises(ConfigError, match='no JWT secret: the service does not start without '
                                          f'one; .* or set {SECRET_VARIABLE}'):
        conf.secret()
    monkeypatch.setenv(SECRET_VARIABLE, 'short')
    with pytest.raises(ConfigError) as info:
        conf.secret()
    assert f'holds a secret of 5 bytes; expected at least {MIN_SECRET_BYTES}' in str(info.value)
    assert 'short' not in str(info.value).replace('holds a secret', '')  # never shown
    monkeypatch.setenv(SECRET_VARIABLE, SECRET)
    assert conf.secret() == SECRET.encode()


def test_a_secret_file_others_may_read_is_refused(config: Path) -> None:
    (config.parent / 'jwt.secret').chmod(0o644)
    with pytest.raises(ConfigError) as info:
        load_config(config).secret()
    assert 'may be read by other users (mode 0644); expected 0600 or stricter' in str(info.value)
    assert SECRET not in str(info.value)
    (config.parent / 'jwt.secret').unlink()
    with pytest.raises(ConfigError, match="secret_file .*jwt.secret' cannot be read"):
        load_config(config).secret()


# -- users ------------------------------------------------------------------------------------
def test_users_keep_argon2_hashes_only(tmp_path: Path) -> None:
    users = Users(tmp_path / 'http.users.yaml')
    users.add('alice', 'correct horse battery', ['aero'])
    stored = (tmp_path / 'http.users.yaml').read_text()
    assert 'correct horse' not in stored and '$argon2id$' in stored
    assert os.stat(tmp_path / 'http.users.yaml').st_mode & 0o777 == 0o600
    again = Users(tmp_path / 'http.users.yaml')  # read back
    assert again.check('alice', 'correct horse battery').roles == ('aero',)
    assert again.check('alice', 'wrong horse battery') is None
    assert again.check('mallory', 'correct horse battery') is None
    with pytest.raises(ConfigError, match="user 'alice' exists already"):
        again.add('alice', 'another password')
    again.add('alice', 'another password', replace=True)
    assert again.check('alice', 'another password').roles == ()
    again.remove('alice')
    assert again.names() == []
    with pytest.raises(ConfigError, match="no user 'alice'; users: none"):
        again.remove('alice')


@pytest.mark.parametrize('name, password, roles, message', [
    ('bad name', 'long enough', [], "a user name is 1 to 64 letters, digits or _ . @ -, got "
                                    "'bad name'"),
    ('bob', 'short', [], "user 'bob': a password has 8 to 1024 characters, got 5"),
    ('bob', 'long enough', ['a b'], "user 'bob': a role is 1 to 64 letters, digits or _ . -, "
                                    "got 'a b'"),
])
def test_bad_users_are_named(tmp_path: Path, name: str, password: str, roles: list,
                             message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Users(tmp_path / 'u.yaml').add(name, password, roles)
    assert message in str(info.value)
    assert not (tmp_path / 'u.yaml').exists()


def test_a_users_file_that_is_not_one_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / 'u.yaml', yaml.safe_dump({'users': {'eve': {'hash': 'plain'}}}))
    with pytest.raises(ConfigError, match=r"u.yaml: user 'eve': expected \{hash: \$argon2"):
        Users(path)
    write(path, '[1, 2]\n')
    with pytest.raises(ConfigError, match='expected a users file'):
        Users(path)


# -- the command line -------------------------------------------------------------------------
def test_adduser_users_and_deluser(config: Path) -> None:
    done = http_cli('adduser', 'alice', '--config', str(config), '--role', 'aero',
                    '--password-stdin', stdin='correct horse battery\n')
    assert done.returncode == 0, done.stderr
    assert f'added user alice (aero) in {config.parent.resolve() / "http.users.yaml"}' in \
        done.stdout
    assert 'correct horse' not in (config.parent / 'http.users.yaml').read_text()
    assert Users(config.parent / 'http.users.yaml').check('alice', 'correct horse battery')

    listed = http_cli('users', '--config', str(config))
    assert listed.returncode == 0 and 'alice' in listed.stdout and 'aero' in listed.stdout

    again = http_cli('adduser', 'alice', '--config', str(config), '--password-stdin',
                     stdin='another password\n')
    assert again.returncode == 2 and "user 'alice' exists already" in again.stderr

    removed = http_cli('deluser', 'alice', '--config', str(config))
    assert removed.returncode == 0 and 'removed user alice' in removed.stdout
    assert 'no users in' in http_cli('users', '--config', str(config)).stdout


def test_adduser_refuses_bad_input(config: Path, tmp_path: Path) -> None:
    short = http_cli('adduser', 'bob', '--config', str(config), '--password-stdin',
                     stdin='short\n')
    assert short.returncode == 2 and 'a password has 8 to 1024 characters, got 5' in short.stderr
    no_tty = http_cli('adduser', 'bob', '--config', str(config), stdin='')
    assert no_tty.returncode == 2 and 'stdin is not a terminal: give --password-stdin' in \
        no_tty.stderr
    bad = http_cli('adduser', 'bob', '--config', str(write(tmp_path / 'b.yaml', 'port: x\n')),
                   '--password-stdin', stdin='long enough\n')
    assert bad.returncode == 2 and "port must be an integer in [0, 65535], got 'x'" in bad.stderr
    assert not (config.parent / 'http.users.yaml').exists()


# -- tokens and the login guard ---------------------------------------------------------------
def test_tokens_carry_the_user_and_refuse_what_is_wrong() -> None:
    import jwt
    from openmdao_like.http.tokens import TokenError, Tokens
    tokens = Tokens(SECRET.encode(), access_ttl=60)
    alice = User('alice', ('aero',))
    access, refresh = tokens.make(alice), tokens.make(alice, 'refresh')
    assert tokens.check(access) == alice and tokens.check(refresh, 'refresh') == alice
    with pytest.raises(TokenError, match='expected an access token, got a refresh token'):
        tokens.check(refresh)
    with pytest.raises(TokenError, match='the token was not signed by this service'):
        Tokens(b'x' * 48).check(access)
    forged = jwt.encode({'sub': 'root', 'roles': ['admin'], 'kind': 'access',
                         'iss': 'openmdao_like.http', 'iat': 0, 'exp': 2**40}, 'guess' * 8,
                        algorithm='HS256')
    with pytest.raises(TokenError, match='not signed by this service'):
        tokens.check(forged)
    unsigned = jwt.encode({'sub': 'root', 'kind': 'access'}, None, algorithm='none')
    with pytest.raises(TokenError, match='not a token of this service') as info:
        tokens.check(unsigned)
    assert unsigned not in str(info.value)
    with pytest.raises(TokenError, match='not a token of this service'):
        tokens.check('not.a.token')
    with pytest.raises(TokenError, match='not a token of this service'):
        Tokens(SECRET.encode(), issuer='elsewhere').check(access)
    stale = Tokens(SECRET.encode(), access_ttl=-1).make(alice)  # ended a second ago
    with pytest.raises(TokenError, match='the token has expired: log in again'):
        tokens.check(stale)
    assert 'kkkk' not in repr(tokens)


def test_the_login_guard_locks_a_name_and_limits_an_address() -> None:
    from openmdao_like.http.tokens import LoginGuard
    guard = LoginGuard(max_failures=3, window=60.0, lockout=60.0, per_address=5)
    for _ in range(3):
        assert guard.refusal('alice', '10.0.0.1') is None
        guard.failed('alice')
    assert guard.refusal('alice', '10.0.0.2').startswith("too many failed logins for 'alice': "
                                                         'locked for another 60 s')
    assert guard.refusal('bob', '10.0.0.1') is None  # another name from the same address
    guard.succeeded('bob')
    assert guard.refusal('carol', '10.0.0.1') is None
    assert guard.refusal('dave', '10.0.0.1') == ('too many logins from 10.0.0.1: at most 5 per '
                                                 '60 s')
