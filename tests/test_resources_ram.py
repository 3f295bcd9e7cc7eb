"""The ResourceAllocationManager: resource descriptions, ranking, waiting, refusals, fall-through,
the resources config file, the ``openmdao-like resources`` command, and one real allocation of a
local server (plus one released by the exit hook of the module-level RAM)."""

from __future__ import annotations

import datetime
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import pytest
from packaging.requirements import Requirement

from openmdao_like.cli.main import main
from openmdao_like.errors import AllocationError, RemoteError
from openmdao_like.resources import LocalAllocator
from openmdao_like.resources.allocator import COMMON_KEYS, Allocator
from openmdao_like.resources.config import (ENV_VAR, ResourceConfigError, config_path,
                                            load_allocators)
from openmdao_like.resources.description import (RESOURCE_KEYS, RESOURCE_LIMITS,
                                                 validate_resource_desc)
from openmdao_like.resources.manager import RAM, ResourceAllocationManager

from remote_servers import pid_alive

TESTS = Path(__file__).resolve().parent


# -- test doubles ---------------------------------------------------------------------------------
class FakeServer:
    """What a FakeAllocator hands out instead of a server proxy."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f'FakeServer({self.name!r})'


class FakeAllocator(Allocator):
    """Answers the estimates it is given (in turn; the last one repeats) and records deploys
    instead of starting servers; ``error`` makes every deploy fail with it."""

    handles = COMMON_KEYS | {'queue_name'}

    def __init__(self, name: str, answers: Any = (0,), reason: str = 'busy',
                 error: Exception | None = None):
        super().__init__(name)
        self.answers = list(answers)
        self.reason = reason
        self.error = error
        self.asked = 0
        self.deployed: list[tuple[str, dict, dict]] = []
        self.live: list[FakeServer] = []
        self.released: list[FakeServer] = []

    def _estimate(self, res_desc: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
        self.asked += 1
        estimate = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return estimate, ({'reason': self.reason} if estimate == -1 else {'by': self.name})

    def _start(self, name: str, res_desc: Mapping[str, Any], criteria: Mapping[str, Any]):
        raise NotImplementedError('FakeAllocator deploys without starting anything')

    def deploy(self, name: str, res_desc: Mapping[str, Any],
               criteria: Mapping[str, Any]) -> Any:
        self.deployed.append((name, dict(res_desc), dict(criteria)))
        if self.error is not None:
            raise self.error
        server = FakeServer(name)
        with self._lock:
            self.live.append(server)
        return server

    def server_info(self, server: Any) -> dict[str, Any]:
        return {'name': server.name, 'host': 'fake-host'}

    def owns(self, server: Any) -> bool:
        with self._lock:
            return server in self.live

    def status(self, server: Any) -> str | None:
        return f'{server.name} is fine'

    def release(self, server: Any) -> None:
        with self._lock:
            self.live.remove(server)
            self.released.append(server)

    def shutdown(self) -> None:
        with self._lock:
            self.released.extend(self.live)
            self.live.clear()


def wait_gone(pid: int, limit: float = 30.0) -> bool:
    """Poll until ``pid`` is gone (the limit only keeps a broken test from hanging)."""
    deadline = time.monotonic() + limit
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- resource descriptions ------------------------------------------------------------------------
BAD_VALUES = [
    ('allocator', 3, 'a non-empty string'),
    ('allocator', '', 'a non-empty string'),
    ('localhost', 1, 'true or false'),
    ('localhost', 'yes', 'true or false'),
    ('exclude', 'node1', 'a list of host names'),
    ('exclude', ['node1', 2], 'a list of host names'),
    ('required_distributions', 'numpy', 'a list of PEP 508 requirement strings'),
    ('required_distributions', ['numpy>>1'], "'numpy>>1' is not one"),
    ('required_distributions', [3], 'a list of PEP 508 requirement strings'),
    ('python_version', 3.11, "a Python version ('3.11') or a version specifier"),
    ('python_version', '3.x', "a Python version ('3.11') or a version specifier"),
    ('python_version', '>>3', "a Python version ('3.11') or a version specifier"),
    ('python_version', '', "a Python version ('3.11') or a version specifier"),
    ('min_cpus', 0, 'a positive integer'),
    ('min_cpus', True, 'a positive integer'),
    ('min_cpus', 2.0, 'a positive integer'),
    ('max_cpus', -1, 'a positive integer'),
    ('min_phys_memory', 0, 'a positive integer'),
    ('min_phys_memory', '1GB', 'a positive integer'),
    ('remote_command', ['ls'], 'a non-empty string'),
    ('args', 'a b', 'a list of argument strings'),
    ('args', [1], 'a list of argument strings'),
    ('job_environment', ['A=1'], 'a mapping of variable names to string values'),
    ('job_environment', {'A': 1}, 'A is 1 (int)'),
    ('job_environment', {'A=B': 'x'}, "bad variable name 'A=B'"),
    ('working_directory', 5, 'a non-empty string'),
    ('job_category', 5, 'a non-empty string'),
    ('job_name', '1abc', 'starting with a letter'),
    ('job_name', 'a' * 65, 'at most 64 characters'),
    ('job_name', 'a b', 'letters, digits, _, - and .'),
    ('queue_name', 1, 'a non-empty string'),
    ('resource_limits', 5, 'a mapping of limits'),
    ('resource_limits', {'wallclock': 5}, "unknown limit 'wallclock' (did you mean "
                                          "'wallclock_time'?)"),
    ('resource_limits', {'cpu_time': -1}, 'cpu_time is -1 (int)'),
    ('resource_limits', {'cpu_time': True}, 'cpu_time is True (bool)'),
    ('resource_limits', {'file_size': float('nan')}, 'file_size is nan (float)'),
    ('accounting_id', 1, 'a non-empty string'),
    ('native_specification', '--qos=low', 'a list of argument strings'),
    ('input_path', 1, 'a non-empty string'),
    ('output_path', '', 'a non-empty string'),
    ('error_path', 2, 'a non-empty string'),
    ('join_files', 'yes', 'true or false'),
    ('email', 'me@example.org', 'a list of email addresses'),
    ('email_on_started', 1, 'true or false'),
    ('email_on_terminated', 'no', 'true or false'),
    ('start_time', '2030-01-01', 'a datetime.datetime'),
    ('deadline_time', 5, 'a datetime.datetime'),
]


@pytest.mark.parametrize(('key', 'value', 'expected'), BAD_VALUES,
                         ids=[f'{k}={v!r}'[:40] for k, v, _ in BAD_VALUES])
def test_bad_value_names_key_expected_and_given(key, value, expected):
    with pytest.raises(ValueError) as info:
        validate_resource_desc({key: value})
    message = str(info.value)
    assert message.startswith(f'resource description: {key} should be ')
    assert expected in message
    assert repr(value)[:60] in message


def test_every_key_is_documented_and_checked():
    good = {
        'allocator': 'LocalHost', 'localhost': True, 'exclude': ('node1',),
        'required_distributions': ['numpy>=1', Requirement('packaging')],
        'python_version': '>=3.10', 'min_cpus': 2, 'max_cpus': 4, 'min_phys_memory': 1024,
        'remote_command': 'run.sh', 'args': ['-x', ''], 'job_environment': {'A': '1'},
        'working_directory': '/tmp', 'job_category': 'MPI', 'job_name': 'job_1.a-b',
        'queue_name': 'debug', 'resource_limits': {name: 1 for name in RESOURCE_LIMITS},
        'accounting_id': 'acct', 'native_specification': ['--qos=low'], 'input_path': 'in',
        'output_path': 'out', 'error_path': 'err', 'join_files': True, 'email': ['a@b.c'],
        'email_on_started': False, 'email_on_terminated': True,
        'start_time': datetime.datetime(2030, 1, 1), 'deadline_time': datetime.datetime(2030, 1, 2),
    }
    assert set(good) == set(RESOURCE_KEYS)
    desc = validate_resource_desc(good)
    assert desc['exclude'] == ['node1']
    assert desc['required_distributions'] == ['numpy>=1', 'packaging']
    desc['job_environment']['B'] = '2'
    assert good['job_environment'] == {'A': '1'}  # a copy


def test_user_guide_lists_every_key():
    guide = (TESTS.parent / 'docs' / 'resources.md').read_text()
    assert [key for key in RESOURCE_KEYS if f'`{key}`' not in guide] == []


def test_python_version_prefix_none_values_and_empty():
    assert validate_resource_desc({'python_version': '3.11'}) == {'python_version': '3.11'}
    assert validate_resource_desc({'min_cpus': None, 'localhost': None}) == {}
    assert validate_resource_desc(None) == {}


def test_unknown_key_lists_close_matches():
    with pytest.raises(ValueError, match=r"resource description: unknown key 'min_cpu' \(did "
                                         r"you mean 'min_cpus'"):
        validate_resource_desc({'min_cpu': 2})
    with pytest.raises(ValueError, match=r"my job: unknown key 'zzz'; known keys: allocator,"):
        validate_resource_desc({'zzz': 1}, where='my job')


def test_max_cpus_needs_min_cpus_and_not_less():
    with pytest.raises(ValueError, match=r'max_cpus \(4\) needs min_cpus too'):
        validate_resource_desc({'max_cpus': 4})
    with pytest.raises(ValueError, match=r'max_cpus should be >= min_cpus \(4\), got 2'):
        validate_resource_desc({'min_cpus': 4, 'max_cpus': 2})


@pytest.mark.parametrize('value', [['min_cpus'], 'min_cpus=2', 3])
def test_not_a_mapping_is_a_type_error(value):
    with pytest.raises(TypeError) as info:
        validate_resource_desc(value)
    assert str(info.value) == (f'resource description: expected a mapping of resource keys to '
                               f'values, got {value!r} ({type(value).__name__})')


# -- choosing an allocator ------------------------------------------------------------------------
def test_lowest_estimate_wins_and_ties_go_to_the_first():
    slow, fast, fast_too, busy = (FakeAllocator('slow', [30]), FakeAllocator('fast', [2]),
                                  FakeAllocator('fast_too', [2]), FakeAllocator('busy', [-1]))
    ram = ResourceAllocationManager([slow, busy, fast, fast_too])
    server, info = ram.allocate({'min_cpus': 1})
    assert info == {'name': 'fast-1', 'host': 'fake-host', 'allocator': 'fast'}
    assert fast.deployed == [('fast-1', {'min_cpus': 1}, {'by': 'fast'})]
    assert not (slow.deployed or fast_too.deployed or busy.deployed)
    ram.insert_allocator(0, FakeAllocator('now', [0]))
    assert ram.allocate(name='mine')[1] == {'name': 'mine', 'host': 'fake-host',
                                            'allocator': 'now'}


def test_invalid_description_is_refused_before_any_allocator_is_asked():
    fake = FakeAllocator('A')
    ram = ResourceAllocationManager([fake])
    with pytest.raises(ValueError, match="unknown key 'cpus'"):
        ram.allocate({'cpus': 2})
    with pytest.raises(ValueError, match='timeout should be a number of seconds >= 0'):
        ram.allocate(timeout=-1)
    with pytest.raises(ValueError, match='name should be a non-empty string'):
        ram.allocate(name='')
    assert fake.asked == 0


def test_waits_while_busy_then_deploys():
    fake = FakeAllocator('A', [-1, -1, 0])
    ram = ResourceAllocationManager([fake])
    server, info = ram.allocate(timeout=60)
    assert info['allocator'] == 'A' and fake.asked == 3


def test_busy_until_timeout_lists_every_reason():
    a = FakeAllocator('A', [-1], reason='queue full')
    b = FakeAllocator('B', [-1], reason='load 3.0 per CPU')
    c = FakeAllocator('C', [0])
    ram = ResourceAllocationManager([a, b, c])
    with pytest.raises(AllocationError) as info:
        ram.allocate({'allocator': 'A'}, timeout=0.3)
    message = str(info.value)
    assert 'within 0.3 s' in message and 'A: queue full' in message
    assert "C refused allocator ('A' was asked for, this is 'C')" in message
    assert a.asked >= 2
    b.asked = 0
    with pytest.raises(AllocationError, match='B: load 3.0 per CPU'):
        ram.allocate({'allocator': 'B'}, timeout=0)
    assert b.asked == 1 and not a.deployed and not b.deployed


def test_all_refusing_names_allocator_and_key():
    ram = ResourceAllocationManager([FakeAllocator('A'), LocalAllocator('L', max_load=None)])
    with pytest.raises(AllocationError) as info:
        ram.allocate({'min_phys_memory': 10})
    message = str(info.value)
    assert "A refused min_phys_memory (A does not support 'min_phys_memory')" in message
    assert "L refused min_phys_memory (L does not support 'min_phys_memory')" in message


def test_deploy_failure_falls_through_to_the_next(caplog):
    broken = FakeAllocator('broken', [0], error=AllocationError('no luck'))
    lost = FakeAllocator('lost', [1], error=RemoteError('connection lost'))
    good = FakeAllocator('good', [5])
    ram = ResourceAllocationManager([broken, lost, good])
    with caplog.at_level(logging.WARNING, logger='openmdao_like.resources.manager'):
        server, info = ram.allocate()
    assert info['allocator'] == 'good' and len(broken.deployed) == len(lost.deployed) == 1
    assert 'broken: deploying broken-1 failed (AllocationError: no luck)' in caplog.text
    ram.remove_allocator('good')
    with pytest.raises(AllocationError) as failed:
        ram.allocate()
    assert 'broken: AllocationError: no luck' in str(failed.value)
    assert 'lost: RemoteError: connection lost' in str(failed.value)


def test_failing_estimate_counts_as_refusal():
    class Broken(FakeAllocator):
        def _estimate(self, res_desc):
            raise OSError('host unreachable')

    ram = ResourceAllocationManager([Broken('B')])
    with pytest.raises(AllocationError, match=r'B refused time_estimate \(OSError: host '
                                              r'unreachable\)'):
        ram.allocate()


def test_no_allocators():
    with pytest.raises(AllocationError, match='has no allocators'):
        ResourceAllocationManager([]).allocate()


def test_release_status_shutdown():
    a, b = FakeAllocator('A'), FakeAllocator('B', [3])
    ram = ResourceAllocationManager([a, b])
    first, _ = ram.allocate()
    second, _ = ram.allocate({'allocator': 'B'})
    assert ram.status(first) == 'A-1 is fine' and ram.status(object()) is None
    ram.release(first)
    assert a.released == [first]
    with pytest.raises(ValueError, match='is not a server of this ResourceAllocationManager'):
        ram.release(first)
    ram.shutdown()
    assert b.released == [second]


def test_concurrent_allocations_get_distinct_servers():
    fakes = [FakeAllocator('A'), FakeAllocator('B')]
    ram = ResourceAllocationManager(fakes)
    results: list[Any] = []

    def allocate() -> None:
        results.append(ram.allocate()[1]['name'])

    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted(f'A-{i}' for i in range(1, 9))
    assert len(fakes[0].live) == 8


def test_allocator_list_management():
    a, b = FakeAllocator('A'), FakeAllocator('B')
    ram = ResourceAllocationManager([a])
    ram.add_allocator(b)
    assert ram.list_allocators() == [a, b] and ram.get_allocator('B') is b
    with pytest.raises(ValueError, match="an allocator named 'A' is already added"):
        ram.add_allocator(FakeAllocator('A'))
    with pytest.raises(TypeError, match="expected an Allocator, got 'A' \\(str\\)"):
        ram.insert_allocator(0, 'A')
    with pytest.raises(ValueError, match="no allocator 'C'; allocators: A, B"):
        ram.remove_allocator('C')
    with pytest.raises(ValueError, match="no allocator 'C'; allocators: A, B"):
        ram.get_allocator('C')
    assert ram.remove_allocator(a) is a and ram.remove_allocator('B') is b
    assert ram.list_allocators() == []
    with pytest.raises(ValueError, match='give allocators or config, not both'):
        ResourceAllocationManager([a], config='x.yaml')


def test_max_servers_sums_allocators():
    ram = ResourceAllocationManager([LocalAllocator('L3', total_cpus=3, max_load=None),
                                     LocalAllocator('L2', total_cpus=2, server_limit=1)])
    assert ram.max_servers() == 4
    assert ram.max_servers({'min_cpus': 3}) == 1
    with pytest.raises(ValueError, match='min_cpus should be a positive integer'):
        ram.max_servers({'min_cpus': 0})


# -- the config file ------------------------------------------------------------------------------
def write_config(tmp_path: Path, text: str, name: str = 'resources.yaml') -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $OPENMDAO_LIKE_RESOURCES and an empty XDG config directory (returned)."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    home = tmp_path / 'xdg'
    home.mkdir()
    monkeypatch.setenv('XDG_CONFIG_HOME', str(home))
    return home


def test_config_file_builds_allocators(tmp_path, monkeypatch):
    site = tmp_path / 'site'
    info = site / 'fake_allocators-1.0.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: fake-allocators\n'
                                   'Version: 1.0\n')
    (info / 'entry_points.txt').write_text('[openmdao_like.allocator]\nfake.Local = '
                                           'openmdao_like.resources.local:LocalAllocator\n')
    monkeypatch.syspath_prepend(str(site))
    path = write_config(tmp_path, '''\
        allocators:
          - type: LocalAllocator
            name: One
            total_cpus: 4
            max_load: null
          - type: openmdao_like.resources.local:LocalAllocator
            name: Two
          - type: openmdao_like.resources.local.LocalAllocator
            name: Three
          - type: fake.Local
            name: Four
        ''')
    allocators = load_allocators(str(path))
    assert [a.name for a in allocators] == ['One', 'Two', 'Three', 'Four']
    assert all(type(a) is LocalAllocator for a in allocators)
    assert allocators[0].total_cpus == 4 and allocators[0].max_load is None


CONFIG_ERRORS = [
    ('allocators:\n  - type: LocalAllocator\n    name: x: y\n',
     r'line 3, column \d+: not valid YAML: mapping values are not allowed here'),
    ('allocators:\n  - type: LocalAlocator\n',
     r"allocators\[0\] \(LocalAlocator\): unknown type 'LocalAlocator' \(did you mean "
     r"'LocalAllocator'\?\); expected one of LocalAllocator, ClusterAllocator"),
    ('allocators:\n  - type: no_such_module.Alloc\n',
     r"allocators\[0\] \(no_such_module.Alloc\): cannot load type 'no_such_module.Alloc' from "
     r"'no_such_module.Alloc': ModuleNotFoundError"),
    ('allocators:\n  - type: collections.OrderedDict\n',
     r"allocators\[0\] \(collections.OrderedDict\): type 'collections.OrderedDict' "
     r"\(collections.OrderedDict\) should be an Allocator subclass"),
    ('allocators:\n  - type: LocalAllocator\n  - type: LocalAllocator\n    name: X\n'
     '    total_cpu: 2\n',
     r"allocators\[1\] \(LocalAllocator\): unknown option 'total_cpu' \(did you mean "
     r"'total_cpus'\?\); LocalAllocator accepts name, total_cpus, max_load"),
    ('allocators:\n  - type: LocalAllocator\n    total_cpus: -1\n',
     r'allocators\[0\] \(LocalAllocator\): LocalHost: total_cpus must be a positive integer, '
     r'got -1'),
    ('allocators:\n  - type: LocalAllocator\n  - type: LocalAllocator\n',
     r"allocators\[1\]: name 'LocalHost' is already used by allocators\[0\]"),
    ('allocators:\n  - LocalAllocator\n',
     r"allocators\[0\]: expected a mapping with \"type\" and options, got 'LocalAllocator'"),
    ('allocators:\n  - name: X\n', r'allocators\[0\]: "type" should be an allocator class'),
    ('allocator:\n  - type: LocalAllocator\n', r'expected a mapping with a non-empty '
                                               r'"allocators" list, got None'),
    ('allocators: []\n', r'a non-empty "allocators" list, got \[\]'),
    ('- type: LocalAllocator\n', r'a non-empty "allocators" list, got \['),
    ('allocators:\n  - type: LocalAllocator\nextra: 1\n', r'unknown top-level keys extra'),
]


@pytest.mark.parametrize(('text', 'pattern'), CONFIG_ERRORS,
                         ids=[p[:30] for _, p in CONFIG_ERRORS])
def test_config_errors_name_file_item_and_option(tmp_path, text, pattern):
    path = write_config(tmp_path, text)
    with pytest.raises(ResourceConfigError, match=f'^{str(path)}:.*{pattern}'):
        load_allocators(str(path))


def test_config_path_env_var_then_xdg(tmp_path, monkeypatch, no_user_config):
    assert config_path() is None
    with pytest.raises(ResourceConfigError, match='no resources config file: set '
                                                  '\\$OPENMDAO_LIKE_RESOURCES or create'):
        load_allocators()
    user = no_user_config / 'openmdao_like' / 'resources.yaml'
    user.parent.mkdir()
    user.write_text('allocators:\n  - type: LocalAllocator\n    name: Mine\n')
    assert config_path() == str(user)
    named = write_config(tmp_path, 'allocators:\n  - type: LocalAllocator\n    name: Named\n',
                         'named.yaml')
    monkeypatch.setenv(ENV_VAR, str(named))
    assert config_path() == str(named)
    assert [a.name for a in load_allocators()] == ['Named']
    monkeypatch.setenv(ENV_VAR, str(tmp_path / 'missing.yaml'))
    with pytest.raises(ResourceConfigError, match=r"\$OPENMDAO_LIKE_RESOURCES names '.*"
                                                  r"missing.yaml', which is not a file"):
        config_path()


def test_ram_reads_config_lazily(tmp_path, monkeypatch, no_user_config):
    assert [type(a) for a in ResourceAllocationManager().list_allocators()] == [LocalAllocator]
    broken = write_config(tmp_path, 'allocators: [', 'broken.yaml')
    monkeypatch.setenv(ENV_VAR, str(broken))
    ram = ResourceAllocationManager()  # nothing read yet
    with pytest.raises(ResourceConfigError, match='not valid YAML'):
        ram.allocate()
    good = write_config(tmp_path, 'allocators:\n  - type: LocalAllocator\n    name: A\n'
                                  '  - type: LocalAllocator\n    name: B\n', 'good.yaml')
    monkeypatch.setenv(ENV_VAR, str(good))
    ram.add_allocator(FakeAllocator('C'))
    assert [a.name for a in ram.list_allocators()] == ['A', 'B', 'C']
    explicit = ResourceAllocationManager(config=str(broken))
    with pytest.raises(ResourceConfigError, match='broken.yaml'):
        explicit.list_allocators()
    assert isinstance(RAM, ResourceAllocationManager)


# -- a real server --------------------------------------------------------------------------------
def test_local_server_end_to_end():
    ram = ResourceAllocationManager([LocalAllocator(max_load=None)])
    env = {'PYTHONPATH': os.pathsep.join(filter(None, [str(TESTS),
                                                       os.environ.get('PYTHONPATH')]))}
    try:
        server, info = ram.allocate({'job_environment': env, 'localhost': True})
        assert info['allocator'] == 'LocalHost' and info['name'].startswith('LocalHost-')
        assert pid_alive(info['pid'])
        comp = server.create('remote_models.Paraboloid')
        comp.x, comp.y = 1.0, 2.0
        comp.run()
        assert comp.f_xy == pytest.approx(39.0)
        object_pid = server.list_objects()[0]['pid']
        ram.release(server)
        assert wait_gone(info['pid']) and wait_gone(object_pid)
        assert not os.path.exists(info['workdir'])
    finally:
        ram.shutdown()


def test_module_ram_releases_its_servers_at_exit(tmp_path):
    config = write_config(tmp_path, 'allocators:\n  - type: LocalAllocator\n'
                                    '    max_load: null\n')
    script = ('from openmdao_like.resources.manager import RAM\n'
              'server, info = RAM.allocate()\n'
              'print(info["pid"], flush=True)\n')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, **{ENV_VAR: str(config)}))
    assert proc.returncode == 0, proc.stderr
    assert wait_gone(int(proc.stdout.split()[0]))


# -- openmdao-like resources ----------------------------------------------------------------------
@pytest.fixture
def two_local(tmp_path: Path) -> Path:
    return write_config(tmp_path, '''\
        allocators:
          - type: LocalAllocator
            name: Small
            total_cpus: 1
            max_load: null
          - type: LocalAllocator
            name: Big
            total_cpus: 4
            max_load: null
        ''')


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The rows of a printed table (after its header rule) by first cell."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('---')) + 1
    return {line.split()[0]: line.split(None, 4) for line in lines[start:] if line.strip()
            and not line.startswith('can serve')}


def test_cli_list(two_local, capsys):
    assert main(['resources', 'list', '--config', str(two_local), '--desc',
                 '{"min_cpus": 2}']) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows['Small'] == ['Small', 'LocalAllocator', '0', 'never',
                             'min_cpus: Small has 1 CPUs, 2 were asked for']
    assert rows['Big'] == ['Big', 'LocalAllocator', '2', 'now']


def test_cli_check(two_local, tmp_path, capsys):
    desc = tmp_path / 'desc.yaml'
    desc.write_text('min_cpus: 1\nresource_limits: {wallclock_time: 60}\n')
    assert main(['resources', 'check', '--config', str(two_local), '--desc', str(desc)]) == 0
    out = capsys.readouterr().out
    assert "valid description: {'min_cpus': 1, 'resource_limits': {'wallclock_time': 60}}" in out
    assert 'can serve it (now or later): Small, Big' in out

    assert main(['resources', 'check', '--config', str(two_local), '--desc',
                 '{min_cpus: 8}']) == 1
    captured = capsys.readouterr()
    assert 'error: no allocator can serve this description' in captured.err
    assert 'Big has 4 CPUs, 8 were asked for' in captured.out

    assert main(['resources', 'check', '--desc', '{min_cpu: 2}']) == 1
    assert "--desc: unknown key 'min_cpu' (did you mean 'min_cpus'" in capsys.readouterr().err
    assert main(['resources', 'check', '--desc', '{min_cpus: 2']) == 2
    assert '--desc: not valid JSON or YAML' in capsys.readouterr().err
    assert main(['resources', 'check', '--config', str(tmp_path / 'nope.yaml'),
                 '--desc', '{}']) == 2
    assert "--config '" in capsys.readouterr().err


def test_cli_bad_config_and_keys(tmp_path, capsys):
    bad = write_config(tmp_path, 'allocators:\n  - type: Nope\n', 'bad.yaml')
    assert main(['resources', 'list', '--config', str(bad)]) == 1
    assert f"{bad}: allocators[0] (Nope): unknown type 'Nope'" in capsys.readouterr().err
    assert main(['resources', 'keys']) == 0
    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == set(RESOURCE_KEYS)


def test_create_with_a_resource_description_runs_on_an_allocated_server(monkeypatch):
    """``create(typname, res_desc=...)``: the RAM allocates a server and the object lives there."""
    from openmdao_like import create
    from openmdao_like.remote import RemoteComponent
    from openmdao_like.resources import ram_factory

    tests_dir = os.path.dirname(os.path.abspath(__file__))
    ram = ResourceAllocationManager([LocalAllocator(max_load=None)])
    monkeypatch.setattr(ram_factory, 'ram', ram)
    try:
        p = create('remote_models.Paraboloid',
                   res_desc={'localhost': True, 'job_environment': {'PYTHONPATH': tests_dir}})
        assert isinstance(p, RemoteComponent)
        p.x, p.y = 1.0, 2.0
        p.run()
        assert p.f_xy == 39.0
        assert ram.list_allocators()[0].in_use == 1
        with pytest.raises(AllocationError, match='refused min_cpus'):
            create('remote_models.Paraboloid', res_desc={'min_cpus': 10_000})
    finally:
        ram.shutdown()
    assert ram.list_allocators()[0].in_use == 0
