"""SSH: `SSHChannel` (commands, files, background processes, host keys, reconnects) and
`ClusterAllocator` (servers on two loopback hosts), against the session's real sshd
(tests/infra/sshd.py) logged into as an ordinary user."""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import pytest

from openmdao_like.errors import AllocationError, RemoteError
from openmdao_like.resources.cluster import ClusterAllocator
from openmdao_like.resources.ssh import (KILLED, HostKeyError, SSHAuthError, SSHChannel,
                                         SSHError)

pytestmark = pytest.mark.ssh

#: CPUs of each host (both are this machine).
CPUS = len(os.sched_getaffinity(0))


def wait_until(condition: Callable[[], object], timeout: float = 20.0) -> bool:
    """Whether ``condition()`` became true within ``timeout`` seconds (checked every 0.05 s)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def running(sshd_hosts, text: str) -> list[tuple[int, str]]:
    """The user's processes (not sshd's) whose command line contains ``text``."""
    return [p for p in sshd_hosts.user_processes(sessions=False) if text in p[1]]


def channel_to(sshd_hosts, host: int = 0, **kwargs) -> SSHChannel:
    options = dict(user=sshd_hosts.user, key_filename=sshd_hosts.key_filename,
                   known_hosts=sshd_hosts.known_hosts, connect_timeout=10.0)
    options.update(kwargs)
    return SSHChannel(sshd_hosts.hosts[host], sshd_hosts.port, **options)


@pytest.fixture
def channel(sshd_hosts) -> Iterator[SSHChannel]:
    """A channel to the first host, closed after the test."""
    with channel_to(sshd_hosts) as ch:
        yield ch


@pytest.fixture
def remote_dir(channel: SSHChannel) -> Iterator[str]:
    """A private directory on the host, removed after the test."""
    path = channel.mkdtemp(prefix='oml-test-')
    yield path
    channel.remove_tree(path)


@pytest.fixture
def spawned(channel: SSHChannel) -> Iterator[list]:
    """The background processes a test starts (it appends them): killed after it, even when
    it failed."""
    processes: list = []
    yield processes
    for process in processes:
        process.kill()


# -- channel: commands ----------------------------------------------------------------------------
def test_execute_env_cwd_and_return_codes(channel: SSHChannel, sshd_hosts) -> None:
    result = channel.execute(['sh', '-c', 'id -un; pwd; echo "$GREETING"; echo oops >&2; exit 3'],
                             env={'GREETING': "it's $HOME; ls"}, cwd='/tmp')
    assert result.returncode == 3
    assert result.stdout == f"{sshd_hosts.user}\n/tmp\nit's $HOME; ls\n"
    assert result.stderr == 'oops\n'
    quoted = channel.execute(['printf', '%s|', 'a b', '*', '$(id)', ''])
    assert (quoted.returncode, quoted.stdout) == (0, 'a b|*|$(id)||')
    assert channel.execute(['false']).returncode == 1
    missing = channel.execute(['pwd'], cwd='/no/such/dir')
    assert missing.returncode != 0 and '/no/such/dir' in missing.stderr
    assert channel.client_address() == '127.0.0.1'


def test_execute_bad_input_and_timeout(channel: SSHChannel, sshd_hosts) -> None:
    with pytest.raises(ValueError, match=r"env: expected variable names.*'A B'"):
        channel.execute(['true'], env={'A B': '1'})
    with pytest.raises(ValueError, match="command: expected a non-empty list of strings, got "
                                         "'ls -l'"):
        channel.execute('ls -l')
    timed_out = rf'sh: did not finish within 0.2 s \(on {sshd_hosts.user}@'
    with pytest.raises(TimeoutError, match=timed_out):
        channel.execute(['sh', '-c', 'sleep 1; echo oml-timeout'], timeout=0.2)
    assert wait_until(lambda: not running(sshd_hosts, 'oml-timeout'))


def test_channel_arguments_are_checked(sshd_hosts, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r'port must be an integer in 1..65535, got 0'):
        SSHChannel('127.0.0.2', 0)
    with pytest.raises(ValueError, match=rf"key_filename '{tmp_path}/nokey' is not a file"):
        SSHChannel('127.0.0.2', key_filename=str(tmp_path / 'nokey'))
    with pytest.raises(ValueError, match=r"host must be an address or host name, got ''"):
        SSHChannel('')


def test_one_channel_serves_many_threads(channel: SSHChannel, remote_dir: str) -> None:
    def work(i: int) -> tuple[str, bytes]:
        path = f'{remote_dir}/f{i}'
        channel.write_file(path, str(i).encode())
        return channel.execute(['echo', str(i)]).stdout, channel.read_file(path)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(24)))
    assert results == [(f'{i}\n', str(i).encode()) for i in range(24)]


# -- channel: files -------------------------------------------------------------------------------
def test_files_up_and_down(channel: SSHChannel, remote_dir: str, tmp_path: Path) -> None:
    assert channel.execute(['stat', '-c', '%a', remote_dir]).stdout.strip() == '700'
    secret = f'{remote_dir}/sub/deeper/settings.json'
    channel.makedirs(os.path.dirname(secret))
    channel.write_file(secret, b'{"key": "x"}')
    assert channel.read_file(secret) == b'{"key": "x"}'
    assert channel.execute(['stat', '-c', '%a', secret]).stdout.strip() == '600'
    channel.write_file(secret, b'shared', 0o644)
    assert channel.execute(['stat', '-c', '%a', secret]).stdout.strip() == '644'
    assert channel.read_file(secret) == b'shared'

    data = os.urandom(300_000)
    (tmp_path / 'up.bin').write_bytes(data)
    channel.push_file(str(tmp_path / 'up.bin'), f'{remote_dir}/up.bin')
    channel.pull_file(f'{remote_dir}/up.bin', str(tmp_path / 'down.bin'))
    assert (tmp_path / 'down.bin').read_bytes() == data

    inner = channel.mkdtemp(prefix='inner-', parent=f'{remote_dir}/new')
    assert os.path.basename(inner).startswith('inner-') and inner.startswith(remote_dir)
    channel.remove_tree(f'{remote_dir}/sub')
    with pytest.raises(FileNotFoundError, match=rf'127.0.0.2:\d+: {remote_dir}/sub/deeper/'
                                                r'settings.json'):
        channel.read_file(secret)
    with pytest.raises(ValueError, match=r"remove_tree expects an absolute path below /, got "
                                         r"'relative'"):
        channel.remove_tree('relative')
    with pytest.raises(ValueError, match=r"mkdtemp prefix must not contain \"/\", got 'a/b'"):
        channel.mkdtemp(prefix='a/b')
    with pytest.raises(OSError, match=r'writing /no/such/dir/f failed'):
        channel.write_file('/no/such/dir/f', b'x')


# -- channel: background processes ----------------------------------------------------------------
def test_spawn_poll_wait_kill(channel: SSHChannel, remote_dir: str, sshd_hosts,
                              spawned: list) -> None:
    log = f'{remote_dir}/sleeper.log'
    sleeper = channel.spawn(['sh', '-c', 'echo started; exec sleep 120'],
                            env={'UNUSED': '1'}, cwd=remote_dir, log_path=log)
    spawned.append(sleeper)
    assert sleeper.poll() is None
    assert wait_until(lambda: 'started' in sleeper.output_tail())
    assert sleeper.wait(0.1) is None
    assert len(running(sshd_hosts, 'sleep 120')) == 2  # the wrapper and the sleeper
    sleeper.kill()
    assert sleeper.poll() == KILLED
    assert not running(sshd_hosts, 'sleep 120')
    sleeper.kill()  # no error once it ended

    done = channel.spawn(['sh', '-c', 'pwd; echo "$WHO"; exit 7'], env={'WHO': 'me'},
                         cwd=remote_dir, log_path=f'{remote_dir}/done.log')
    assert done.wait(60) == 7
    assert done.output_tail() == f'{remote_dir}\nme\n'
    assert done.output_tail(limit=3) == 'me\n'

    quiet = channel.spawn(['true'])
    assert quiet.wait(60) == 0
    assert quiet.output_tail() == ''
    assert channel.execute(['test', '-e', quiet.status_path]).returncode == 1  # cleaned up

    missing = channel.spawn(['no-such-program-oml'], log_path=f'{remote_dir}/missing.log')
    assert missing.wait(60) == 127
    assert 'no-such-program-oml' in missing.output_tail()
    with pytest.raises(RemoteError, match=r'cannot start true .*/no/such/dir'):
        channel.spawn(['true'], cwd='/no/such/dir')


def test_dropped_connection_is_reopened(channel: SSHChannel, remote_dir: str, sshd_hosts,
                                        spawned: list,
                                        caplog: pytest.LogCaptureFixture) -> None:
    sleeper = channel.spawn(['sh', '-c', 'exec sleep 120 # oml-survivor'], cwd=remote_dir,
                            log_path=f'{remote_dir}/survivor.log')
    spawned.append(sleeper)
    first = channel.transport
    first.close()
    with caplog.at_level(logging.WARNING, logger='openmdao_like.resources.ssh'):
        assert channel.execute(['echo', 'again']).stdout == 'again\n'
    assert channel.transport is not first and channel.transport.is_active()
    assert 'the connection dropped; reconnecting' in caplog.text

    sshd_hosts.drop_connections()  # this time the server side cuts it
    assert sleeper.poll() is None  # the process outlived both connections
    assert running(sshd_hosts, 'oml-survivor')
    assert channel.read_file(f'{remote_dir}/survivor.log') == b''
    sleeper.kill()
    assert sleeper.poll() == KILLED
    assert not running(sshd_hosts, 'oml-survivor')


def test_connection_dropped_during_a_command_is_reported(channel: SSHChannel, remote_dir: str,
                                                         sshd_hosts) -> None:
    started, stop = f'{remote_dir}/started', f'{remote_dir}/stop'
    script = 'touch "$1"; while [ ! -e "$2" ]; do sleep 0.05; done # oml-waiter'

    def cut_when_started() -> None:
        if wait_until(lambda: os.path.exists(started)):
            sshd_hosts.drop_connections()

    cutter = threading.Thread(target=cut_when_started)
    cutter.start()
    try:
        with pytest.raises(SSHError, match=rf'{sshd_hosts.user}@127.0.0.2:\d+: the connection '
                                           r'dropped '
                                           r'while sh ran'):
            channel.execute(['sh', '-c', script, 'waiter', started, stop])
    finally:
        cutter.join()
        Path(stop).touch()  # the orphaned command ends
    assert channel.execute(['echo', 'on']).stdout == 'on\n'
    assert wait_until(lambda: not running(sshd_hosts, 'oml-waiter'))


# -- channel: refusals ----------------------------------------------------------------------------
def test_unknown_host_key_is_refused(sshd_hosts, tmp_path: Path) -> None:
    empty = tmp_path / 'known_hosts'
    empty.write_text('')
    port = sshd_hosts.port
    with channel_to(sshd_hosts, 1, known_hosts=str(empty)) as ch:
        with pytest.raises(HostKeyError) as info:
            ch.execute(['true'])
    message = str(info.value)
    assert f'127.0.0.3:{port}: its host key (ssh-ed25519 SHA256:' in message
    assert f'is not in {empty}' in message
    assert f'ssh-keyscan -p {port} 127.0.0.3 >> {empty}' in message

    with channel_to(sshd_hosts, known_hosts=str(tmp_path / 'missing')) as ch:
        with pytest.raises(HostKeyError, match=r'\(the file does not exist\)'):
            ch.execute(['true'])

    # a known_hosts entry with another key: refused, whoever answers
    other = Path(sshd_hosts.key_filename + '.pub').read_text().split()[:2]
    wrong = tmp_path / 'wrong_known_hosts'
    wrong.write_text(f'[127.0.0.2]:{port} {" ".join(other)}\n')
    with channel_to(sshd_hosts, known_hosts=str(wrong)) as ch:
        with pytest.raises(HostKeyError, match=rf'127.0.0.2:{port}: the host key it offers .* '
                                               rf'differs from the one in {wrong}'):
            ch.execute(['true'])


def test_wrong_key_is_refused(sshd_hosts, tmp_path: Path) -> None:
    key = tmp_path / 'stranger'
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(key)], check=True)
    with channel_to(sshd_hosts, key_filename=str(key)) as ch:
        with pytest.raises(SSHAuthError, match=rf'{sshd_hosts.user}@127.0.0.2:'
                                               rf'{sshd_hosts.port} refused the key {key}'):
            ch.execute(['true'])
    assert issubclass(SSHAuthError, PermissionError) and issubclass(SSHError, ConnectionError)


# -- ClusterAllocator ---------------------------------------------------------------------------
def cluster(sshd_hosts, *extra: str, **kwargs) -> ClusterAllocator:
    hosts = [f'{h}:{sshd_hosts.port}' for h in sshd_hosts.hosts] + list(extra)
    options = dict(user=sshd_hosts.user, key_filename=sshd_hosts.key_filename,
                   known_hosts=sshd_hosts.known_hosts, python=sshd_hosts.python)
    options.update(kwargs)
    return ClusterAllocator('ssh-cluster', hosts, **options)


def test_deploy_on_two_hosts_and_release(sshd_hosts) -> None:
    allocator = cluster(sshd_hosts, method='round-robin')
    desc = {'min_cpus': CPUS, 'job_environment': sshd_hosts.env}  # one server per host
    servers = []
    try:
        assert allocator.max_servers(desc) == 2
        assert allocator.max_servers({}) == 2 * CPUS
        for host in sshd_hosts.hosts:
            estimate, criteria = allocator.time_estimate(desc)
            assert (estimate, criteria['host']) == (0, host)
            servers.append(allocator.deploy(f'server-{host}', desc, criteria))
        estimate, criteria = allocator.time_estimate(desc)
        assert estimate == -1
        assert f'127.0.0.2: {CPUS} of {CPUS} CPUs in use; 127.0.0.3: {CPUS} of {CPUS} CPUs in ' \
            f'use' in criteria['reason']

        workdirs = []
        for host, server in zip(sshd_hosts.hosts, servers):
            info = allocator.server_info(server)
            assert (info['host'], info['allocator']) == (host, 'ssh-cluster')
            workdirs.append(info['workdir'])
            comp = server.create('remote_models.Paraboloid')
            assert comp.address[0] == host
            comp.x, comp.y = 1.0, 2.0
            comp.run()
            assert comp.f_xy == 39.0
        assert all(os.path.isdir(w) for w in workdirs)

        for server in servers:
            allocator.release(server)
        servers.clear()
        assert wait_until(lambda: not sshd_hosts.user_processes(sessions=False)), \
            sshd_hosts.user_processes()
        assert not any(os.path.exists(w) for w in workdirs)
        assert allocator.time_estimate(desc)[0] == 0
    finally:
        for server in servers:
            allocator.release(server)
        allocator.shutdown()


def test_load_average_counts_own_servers(sshd_hosts) -> None:
    allocator = cluster(sshd_hosts, workdir='/tmp/oml-unused')
    work = f'/tmp/oml-cluster-work-{os.getpid()}'
    desc = {'job_environment': sshd_hosts.env, 'working_directory': work}
    try:
        estimate, criteria = allocator.time_estimate(desc)
        assert estimate == 0
        first = criteria['host']
        server = allocator.deploy('busy', desc, criteria)
        assert allocator.server_info(server)['workdir'].startswith(f'{work}/')
        estimate, criteria = allocator.time_estimate(desc)  # the same load, one server more
        assert estimate == 0 and criteria['host'] != first
        assert allocator.time_estimate({'exclude': [criteria['host']]})[1]['host'] == first
    finally:
        allocator.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def test_estimates_refuse_what_cannot_be_served(sshd_hosts) -> None:
    allocator = cluster(sshd_hosts)
    try:
        estimate, criteria = allocator.time_estimate({'resource_limits': {'wallclock_time': 60},
                                                      'localhost': True})
        assert estimate == -2
        assert set(criteria['refused']) == {'resource_limits', 'localhost'}
        assert "does not support 'resource_limits'" in criteria['refused']['resource_limits']
        estimate, criteria = allocator.time_estimate({'exclude': sshd_hosts.hosts})
        assert estimate == -2
        assert 'every host of ssh-cluster is excluded' in criteria['refused']['exclude']
        estimate, criteria = allocator.time_estimate({'min_cpus': 64})
        assert (estimate, criteria['refused']['min_cpus']) == \
            (-2, f'the largest host of ssh-cluster has {CPUS} CPUs, 64 were asked for')
        assert allocator.max_servers({'min_cpus': 64}) == 0
        assert allocator.host_names() == sshd_hosts.hosts
    finally:
        allocator.shutdown()


def test_unreachable_hosts_are_reported_and_skipped(sshd_hosts) -> None:
    gone = f'127.0.0.4:{sshd_hosts.port}'
    allocator = cluster(sshd_hosts, gone)
    try:
        estimate, criteria = allocator.time_estimate({'exclude': ['127.0.0.2']})
        assert (estimate, criteria['host']) == (0, '127.0.0.3')
        assert f'cannot connect to {gone}' in criteria['unreachable']['127.0.0.4']
        assert allocator.max_servers({}) == 2 * CPUS
    finally:
        allocator.shutdown()
    lonely = ClusterAllocator('lonely', [gone], key_filename=sshd_hosts.key_filename)
    estimate, criteria = lonely.time_estimate({})
    assert estimate == -1
    assert f'127.0.0.4: unreachable: cannot connect to {gone}' in criteria['reason']
    with pytest.raises(AllocationError, match=r'lonely: cannot start never now: .*127.0.0.4: '
                                              r'unreachable'):
        lonely.deploy('never', {}, criteria)
    lonely.shutdown()


@pytest.mark.parametrize('hosts, message', [
    (['node1', 'bad host'], r"ssh: hosts\[1\] = 'bad host': expected 'host', 'host:port' or "
                            r"'user@host:port'"),
    (['node1:70000'], r"hosts\[0\] = 'node1:70000': expected .*\(port 1..65535\)"),
    (['me@'], r"hosts\[0\] = 'me@': expected"),
    ([5], r"hosts\[0\] = 5: expected"),
    (['node1', 'me@node1:23'], r"hosts\[1\] = 'me@node1:23': node1 is listed twice"),
    ('node1', r"ssh: hosts must be a non-empty list .* got 'node1'"),
    ([], r"ssh: hosts must be a non-empty list .* got \[\]"),
])
def test_cluster_hosts_are_checked(hosts, message) -> None:
    with pytest.raises(ValueError, match=message):
        ClusterAllocator('ssh', hosts)


def test_cluster_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"ssh: method must be one of load-average, "
                                         r"round-robin, got 'fastest'"):
        ClusterAllocator('ssh', ['node1'], method='fastest')
    with pytest.raises(ValueError, match=r'ssh: max_load must be a positive number or None, '
                                         r'got -1'):
        ClusterAllocator('ssh', ['node1'], max_load=-1)
    allocator = ClusterAllocator('ssh', ['me@node1:2200', '[::1]', 'node2'], port=2222)
    assert allocator.host_names() == ['node1', '::1', 'node2']
    me = getpass.getuser()
    assert repr(allocator) == (f"ClusterAllocator('ssh', ['me@node1:2200', '{me}@::1:2222', "
                               f"'{me}@node2:2222'], method='load-average')")
