"""``openmdao-like server start|stop|keygen|status`` as real processes, plus the operator files
in servers/ (the launch script run for real, the config example, the systemd unit)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from openmdao_like.cli.main import build_parser
from openmdao_like.cli.server import START_OPTIONS, load_config
from openmdao_like.cli.server_options import parse_size
from remote_servers import ServerProcess, pid_alive, server_env, write_key

ROOT = Path(__file__).resolve().parents[1]
SERVERS = ROOT / 'servers'


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    """``openmdao-like ARGS`` through this interpreter."""
    return subprocess.run([sys.executable, '-m', 'openmdao_like.cli.main', *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def kill_quietly(pid: int) -> None:
    """SIGTERM, then SIGKILL after 10 s, a process that is not our child (cleanup only)."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not pid_alive(pid):
            return


class CapturedServer(ServerProcess):
    """A `ServerProcess` whose stdout is kept (for the listening line), optionally with a
    command of the test's own (``cmd``, ``server_file``)."""

    def start(self, timeout: float = 60.0) -> 'CapturedServer':
        self.stdout = self.workdir / 'stdout.txt'
        with open(self.stdout, 'wb') as out, open(self.workdir / 'stderr.txt', 'wb') as err:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while not self.server_file.exists() or not self.stdout.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f'server did not start: {self.tail()}')
            time.sleep(0.05)
        info = json.loads(self.server_file.read_text())
        self.port, self.pid = info['port'], info['pid']
        return self


@pytest.fixture(scope='module')
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CapturedServer]:
    """One server on 127.0.0.2 shared by the tests that only look at it."""
    with CapturedServer(tmp_path_factory.mktemp('shared'), '127.0.0.2') as srv:
        yield srv


# -- start and stop ------------------------------------------------------------------------------
def test_start_writes_the_server_file_and_stop_ends_the_server(tmp_path: Path) -> None:
    srv = CapturedServer(tmp_path, '127.0.0.2')
    with srv:
        info = json.loads(srv.server_file.read_text())
        assert info == {'host': '127.0.0.2', 'port': srv.port, 'pid': srv.proc.pid,
                        'tls': False}
        assert srv.port > 0
        assert srv.stdout.read_text() == \
            f'listening on 127.0.0.2:{srv.port} (pid {srv.pid}, tls off)\n'
        factory = srv.connect()
        try:
            remote = factory.info()
        finally:
            factory.close()
        assert (remote['host'], remote['port'], remote['pid'], remote['tls']) == \
            ('127.0.0.2', srv.port, srv.pid, False)
        assert remote['root'] == os.path.realpath(srv.root)

        done = cli('server', 'stop', '--server-file', str(srv.server_file))
        assert done.returncode == 0, done.stderr
        assert done.stdout == f'stopped server 127.0.0.2:{srv.port} (pid {srv.pid})\n'
        assert not srv.server_file.exists()
        assert not pid_alive(srv.pid)
        assert srv.proc.wait(10) == 0
        assert 'ObjServerFactory on 127.0.0.2' in srv.log.read_text()  # --log-file, INFO


def test_stop_kills_after_the_timeout(tmp_path: Path) -> None:
    with CapturedServer(tmp_path, '127.0.0.2') as srv:
        done = cli('server', 'stop', '--server-file', str(srv.server_file), '--timeout', '0')
        assert done.returncode == 0, done.stderr
        assert 'killed with SIGKILL after 0 s' in done.stdout
        assert srv.proc.wait(10) == -signal.SIGKILL
        assert not srv.server_file.exists()


def test_stop_refuses_a_missing_file_a_gone_server_and_a_foreign_process(
        tmp_path: Path) -> None:
    missing = cli('server', 'stop', '--server-file', str(tmp_path / 'nope.json'))
    assert missing.returncode == 1 and 'nope.json' in missing.stderr
    assert 'does not exist' in missing.stderr

    gone = subprocess.Popen([sys.executable, '-c', 'pass'])
    gone.wait()
    stale = tmp_path / 'stale.json'
    stale.write_text(json.dumps({'host': '127.0.0.2', 'port': 1, 'pid': gone.pid,
                                 'tls': False}))
    done = cli('server', 'stop', '--server-file', str(stale))
    assert done.returncode == 1
    assert f'pid {gone.pid}' in done.stderr and 'not running' in done.stderr
    assert 'removed its stale server file' in done.stderr
    assert not stale.exists()

    sleeper = subprocess.Popen(['sleep', '60'])
    try:
        foreign = tmp_path / 'foreign.json'
        foreign.write_text(json.dumps({'host': '127.0.0.2', 'port': 1, 'pid': sleeper.pid,
                                       'tls': False}))
        done = cli('server', 'stop', '--server-file', str(foreign))
        assert done.returncode == 1
        assert f'process {sleeper.pid}' in done.stderr and 'refusing' in done.stderr
        assert sleeper.poll() is None and foreign.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_start_with_tls_as_the_operators_guide_shows(tmp_path: Path) -> None:
    """The self-signed certificate recipe of servers/README.md, then status over TLS."""
    host = '127.0.0.2'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', f'/CN={host}', '-addext', f'subjectAltName=IP:{host},DNS:{host}',
                    '-keyout', str(tmp_path / 'cert.key'), '-out', str(tmp_path / 'cert.pem')],
                   check=True, capture_output=True, timeout=60)
    with CapturedServer(tmp_path, host, extra=['--tls-cert', str(tmp_path / 'cert.pem'),
                                               '--tls-key', str(tmp_path / 'cert.key')]) as srv:
        assert json.loads(srv.server_file.read_text())['tls'] is True
        assert srv.stdout.read_text().endswith('tls on)\n')
        done = cli('server', 'status', '--server-file', str(srv.server_file), '--key-file',
                   str(srv.key_file), '--ca-file', str(tmp_path / 'cert.pem'))
        assert done.returncode == 0, done.stderr
        assert re.search(r'^tls +on$', done.stdout, re.M)
        untrusted = cli('server', 'status', '--server-file', str(srv.server_file),
                        '--key-file', str(srv.key_file))
        assert untrusted.returncode == 1 and 'CERTIFICATE_VERIFY_FAILED' in untrusted.stderr


# -- keygen ---------------------------------------------------------------------------------------
def test_keygen_writes_an_owner_only_key_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / 'owner.key'
    done = cli('server', 'keygen', str(path))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text()
    assert re.fullmatch(r'[0-9a-f]{64}\n', key)
    assert key not in done.stdout  # the key is never printed

    again = cli('server', 'keygen', str(path))
    assert again.returncode == 1
    assert 'owner.key' in again.stderr and 'already exists' in again.stderr
    assert path.read_text() == key


# -- bad inputs to start --------------------------------------------------------------------------
@pytest.mark.parametrize('args, status, expected', [
    (['--key-file', '{tmp}/missing.key'], 1, ["missing.key", 'cannot read it']),
    (['--key-file', '{tmp}/open.key'], 1, ['open.key', '0600', '0644']),
    (['--key-file', '{tmp}/key', '--tls-cert', '{tmp}/cert.pem'], 1,
     ['--tls-cert needs --tls-key']),
    (['--key-file', '{tmp}/key', '--tls-key', '{tmp}/cert.key'], 1,
     ['--tls-key needs --tls-cert']),
    (['--key-file', '{tmp}/key', '--allowed-hosts', '127.0.0.1', 'no-such-host.invalid'], 1,
     ['allowed hosts', 'no-such-host.invalid']),
    (['--key-file', '{tmp}/key', '--peer-key', '127.0.0.3'], 1,
     ['--peer-key expects HOST=FILE', "'127.0.0.3'"]),
    (['--key-file', '{tmp}/key', '--peer-key', '127.0.0.3={tmp}/nokey'], 1,
     ['--peer-key 127.0.0.3', 'nokey']),
    (['--host', '127.0.0.2'], 2, ['--key-file is required']),
    (['--key-file', '{tmp}/key', '--port', '70000'], 2, ['--port', '70000']),
    (['--key-file', '{tmp}/key', '--port', 'abc'], 2, ['--port', "'abc'"]),
], ids=['missing-key', 'open-key', 'cert-no-key', 'key-no-cert', 'bad-host', 'peer-no-equals',
        'peer-missing-file', 'no-key-file', 'port-range', 'port-not-int'])
def test_start_refuses_bad_inputs_naming_them(tmp_path: Path, args: list[str], status: int,
                                              expected: list[str]) -> None:
    write_key(tmp_path / 'key')
    write_key(tmp_path / 'open.key').chmod(0o644)
    done = cli('server', 'start', '--server-file', str(tmp_path / 'server.json'),
               *[a.format(tmp=tmp_path) for a in args], timeout=30)
    assert done.returncode == status, done.stderr
    for text in expected:
        assert text in done.stderr
    assert 'Traceback' not in done.stderr
    assert not (tmp_path / 'server.json').exists()


def test_start_refuses_a_port_in_use_and_a_running_server_file(server: CapturedServer,
                                                               tmp_path: Path) -> None:
    done = cli('server', 'start', '--host', '127.0.0.2', '--port', str(server.port),
               '--key-file', str(server.key_file), timeout=30)
    assert done.returncode == 1
    assert f'127.0.0.2:{server.port}' in done.stderr and 'in use' in done.stderr

    done = cli('server', 'start', '--key-file', str(server.key_file), '--server-file',
               str(server.server_file), timeout=30)
    assert done.returncode == 1
    assert f'running server (pid {server.pid})' in done.stderr
    assert json.loads(server.server_file.read_text())['pid'] == server.pid  # untouched


# -- status ---------------------------------------------------------------------------------------
def test_status_prints_the_info_and_the_objects(server: CapturedServer) -> None:
    factory = server.connect()
    try:
        comp = factory.create('remote_models.Scale')
        try:
            (row,) = factory.list_objects()
            done = cli('server', 'status', '--server-file', str(server.server_file),
                       '--key-file', str(server.key_file))
            assert done.returncode == 0, done.stderr
            assert re.search(rf'^server +127\.0\.0\.2:{server.port}$', done.stdout, re.M)
            assert re.search(rf'^pid +{server.pid}$', done.stdout, re.M)
            assert re.search(r'^tls +off$', done.stdout, re.M)
            assert re.search(r'^role +owner$', done.stdout, re.M)
            assert re.search(r'^id +type +pid +port +directory$', done.stdout, re.M)
            assert re.search(rf'^ *{row["id"]} +remote_models\.Scale +{row["pid"]} +'
                             rf'{row["port"]} +{re.escape(row["directory"])}$', done.stdout,
                             re.M)

            by_address = cli('server', 'status', '--host', '127.0.0.2', '--port',
                             str(server.port), '--key-file', str(server.key_file), '--types')
            assert by_address.returncode == 0, by_address.stderr
            assert 'remote_models.Scale' in by_address.stdout
            assert re.search(r'^name +version +distribution +group$', by_address.stdout, re.M)
            assert 'openmdao_like.Assembly' in by_address.stdout
        finally:
            factory.release(comp)
    finally:
        factory.close()
    done = cli('server', 'status', '--server-file', str(server.server_file), '--key-file',
               str(server.key_file))
    assert done.returncode == 0 and 'no objects' in done.stdout


def test_status_errors(server: CapturedServer, tmp_path: Path) -> None:
    usage = cli('server', 'status', '--key-file', str(server.key_file))
    assert usage.returncode == 2 and '--server-file PATH, or both --host and --port' in \
        usage.stderr
    other = write_key(tmp_path / 'other.key', 'another-key-' + 'x' * 40)
    wrong = cli('server', 'status', '--server-file', str(server.server_file), '--key-file',
                str(other))
    assert wrong.returncode == 1
    assert f'127.0.0.2:{server.port}' in wrong.stderr and 'wrong key' in wrong.stderr


# -- the config file ------------------------------------------------------------------------------
def test_config_file_options_with_command_line_overrides(tmp_path: Path) -> None:
    write_key(tmp_path / 'key')
    config = tmp_path / 'factory.yaml'
    config.write_text('host: 127.0.0.3\nport: 0\nkey_file: key\n'       # relative to the file
                      'allowed_types: [remote_models.Scale]\nroot: root\n'
                      'server_file: server.json\nlog_file: factory.log\n')
    srv = CapturedServer(tmp_path, '127.0.0.2', tmp_path / 'key')
    srv.cmd = [sys.executable, '-m', 'openmdao_like.cli.main', 'server', 'start',
               '--config', str(config), '--host', '127.0.0.2']   # overrides the file's host
    with srv:
        assert json.loads(srv.server_file.read_text())['host'] == '127.0.0.2'
        factory = srv.connect()
        try:
            assert factory.info()['root'] == os.path.realpath(tmp_path / 'root')
            with pytest.raises(TypeError, match='not among the allowed types'):
                factory.create('remote_models.Paraboloid')
        finally:
            factory.close()
        done = cli('server', 'stop', '--server-file', str(srv.server_file))
        assert done.returncode == 0, done.stderr
        assert srv.proc.wait(10) == 0
    assert (tmp_path / 'factory.log').exists()


@pytest.mark.parametrize('text, expected', [
    ('key_file: key\nlisten: 1.2.3.4\nallow_shel: true\n', ['unknown keys', 'allow_shel',
                                                           'listen']),
    ('key_file: key\nport: "18861"\n', ['port should be an integer port', "'18861'"]),
    ('key_file: key\nallow_shell: yes please\n', ['allow_shell should be true or false']),
    ('- key_file\n', ['expected a mapping']),
    ('key_file: [unclosed\n', ['not valid YAML']),
    ('key_file: key\nmax_message_size: lots\n',
     ["max_message_size should be a size in bytes such as 1048576, 512M or 2G, got 'lots'"]),
    ('key_file: key\nmax_startups: 0\n', ['max_startups should be a whole number > 0']),
    ('key_file: key\nlogin_timeout: soon\n', ['login_timeout should be a number of seconds']),
], ids=['unknown', 'port-type', 'bool-type', 'not-mapping', 'bad-yaml', 'size', 'count',
        'seconds'])
def test_config_file_errors_name_the_key(tmp_path: Path, text: str,
                                         expected: list[str]) -> None:
    write_key(tmp_path / 'key')
    config = tmp_path / 'bad.yaml'
    config.write_text(text)
    done = cli('server', 'start', '--config', str(config), timeout=30)
    assert done.returncode == 2, done.stderr
    assert 'bad.yaml' in done.stderr
    for fragment in expected:
        assert fragment in done.stderr


def test_the_example_config_lists_every_option_and_loads() -> None:
    example = SERVERS / 'factory.yaml'
    mentioned = set(re.findall(r'^#? ?(\w+):', example.read_text(), re.M))
    assert set(START_OPTIONS) <= mentioned
    options = load_config(str(example))
    assert options['key_file'] == str(SERVERS / 'owner.key')
    assert options['allow_shell'] is False


def test_bounds_on_the_command_line_are_checked(tmp_path: Path) -> None:
    key = write_key(tmp_path / 'key')
    done = cli('server', 'start', '--key-file', str(key), '--max-message-size', '2 lots')
    assert done.returncode == 2
    assert "--max-message-size: expected a size in bytes such as 1048576, 512M or 2G, got " \
           "'2 lots'" in done.stderr
    done = cli('server', 'start', '--key-file', str(key), '--max-startups', '50',
               '--max-connections', '10')
    assert done.returncode == 1
    assert 'max_startups (50) cannot exceed max_connections (10)' in done.stderr


@pytest.mark.parametrize('text, size', [('1048576', 1 << 20), ('512M', 512 << 20),
                                        ('2G', 2 << 30), ('1.5k', 1536), ('64 KiB', 64 << 10)])
def test_sizes_take_binary_suffixes(text: str, size: int) -> None:
    assert parse_size(text) == size


# -- servers/ -------------------------------------------------------------------------------------
def test_start_factory_script_starts_a_server_that_stop_ends(tmp_path: Path) -> None:
    script = SERVERS / 'start-factory.sh'
    assert subprocess.run(['bash', '-n', str(script)], capture_output=True).returncode == 0
    env = server_env()
    env['PATH'] = f'{Path(sys.executable).parent}{os.pathsep}{env["PATH"]}'
    env.update(OML_HOST='127.0.0.3', OML_CLI=f'{sys.executable} -m openmdao_like.cli.main')
    directory = tmp_path / 'factory'
    server_file = directory / 'server.json'
    try:
        done = subprocess.run(['bash', str(script), str(directory), '--', '--allowed-types',
                               'remote_models.*'], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        info = json.loads(server_file.read_text())
        assert info['host'] == '127.0.0.3'
        assert f'listening on 127.0.0.3:{info["port"]}' in done.stdout
        assert f'server stop --server-file {server_file}' in done.stdout
        assert stat.S_IMODE((directory / 'key').stat().st_mode) == 0o600

        from openmdao_like.remote import connect_to_server
        factory = connect_to_server(server_file=str(server_file),
                                    key_file=str(directory / 'key'))
        try:
            assert factory.ping()
            assert factory.info()['root'] == os.path.realpath(directory / 'root')
        finally:
            factory.close()

        again = subprocess.run(['bash', str(script), str(directory)], env=env,
                               capture_output=True, text=True, timeout=30)
        assert again.returncode == 1 and 'server.json exists' in again.stderr

        stopped = cli('server', 'stop', '--server-file', str(server_file))
        assert stopped.returncode == 0, stopped.stderr
        assert not server_file.exists() and not pid_alive(info['pid'])
    finally:
        if server_file.exists():
            kill_quietly(json.loads(server_file.read_text())['pid'])


def test_systemd_unit_has_its_sections_and_a_valid_exec_start() -> None:
    text = (SERVERS / 'openmdao-like-factory.service').read_text()
    sections = re.findall(r'^\[(\w+)\]$', text, re.M)
    assert sections == ['Unit', 'Service', 'Install']
    joined = re.sub(r'\\\n\s*', ' ', text)
    (exec_start,) = re.findall(r'^ExecStart=(.*)$', joined, re.M)
    assert 'openmdao-like server start' in exec_start
    argv = shlex.split(exec_start)
    args = build_parser().parse_args(argv[1:])  # the options are ones `server start` knows
    assert args.key_file and args.allowed_hosts and args.root
    for option in ('NoNewPrivileges=yes', 'ProtectSystem=strict', 'PrivateTmp=yes',
                   f'ReadWritePaths={args.root}', 'Restart=on-failure',
                   'WorkingDirectory=', 'User='):
        assert option in text
