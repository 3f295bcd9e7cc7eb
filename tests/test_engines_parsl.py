"""ParslExecutor on a real Parsl HighThroughputExecutor (a LocalProvider on this machine, and a
SlurmProvider on the session's SLURM cluster): a DOE equal to the sequential run, a Parsl
worker killed mid-run, configurations refused or giving no worker, a shutdown mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.distributed.engines import ParslExecutor
from openmdao_like.drivers import CaseIteratorDriver
from openmdao_like.execution import BrokenExecutor
from openmdao_like.recorders import SQLiteRecorder, read_cases

import parsl  # (the test extra installs it: a missing engine fails here, it never skips)
from parsl.providers import LocalProvider, SlurmProvider

from engine_tools import run_during
from test_local_executor import Square, make_model, same_cases

TESTS = Path(__file__).resolve().parent


class SlowParaboloid(Component):
    """f(x, y) = (x-3)^2 + xy + (y+4)^2 - 3, after ``delay`` seconds."""

    x = Float(0.0, iotype='in')
    y = Float(0.0, iotype='in')
    delay = Float(0.0, iotype='in')
    f_xy = Float(iotype='out')

    def execute(self) -> None:
        if os.environ.get('OML_TEST_PIDS'):  # (where the test finds the worker processes)
            Path(os.environ['OML_TEST_PIDS'], str(os.getpid())).touch()
        time.sleep(self.delay)
        self.f_xy = (self.x - 3.0) ** 2 + self.x * self.y + (self.y + 4.0) ** 2 - 3.0


def doe(n, executor=None, delay=0.0, **options) -> Assembly:
    """A CaseIteratorDriver over n points (x, y) of a SlowParaboloid."""
    top = set_as_top(Assembly())
    top.add('p', SlowParaboloid())
    top.p.delay = delay
    cases = [{'p.x': float(i % 17) - 8.0, 'p.y': float(i % 13) * 0.5} for i in range(n)]
    options.setdefault('sequential', executor is None)
    top.add('driver', CaseIteratorDriver(cases=cases, executor=executor, **options))
    top.driver.workflow.add('p')
    top.driver.add_response('p.f_xy')
    return top


@pytest.fixture
def worker_env(monkeypatch):
    """Parsl's scripts (interchange.py, process_worker_pool.py) on PATH, tests/ on the
    workers' PYTHONPATH."""
    monkeypatch.setenv('PATH', os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    path = os.environ.get('PYTHONPATH')
    monkeypatch.setenv('PYTHONPATH', str(TESTS) + (os.pathsep + path if path else ''))


@pytest.fixture
def local_config(tmp_path, worker_env):
    """A Config maker: an HTEX of 2 workers on this machine, its run directory in tmp_path."""
    def make(init_blocks=1, max_blocks=1, **htex):
        provider = LocalProvider(init_blocks=init_blocks, min_blocks=0, max_blocks=max_blocks,
                                 worker_init=htex.pop('worker_init', ''))
        executor = parsl.HighThroughputExecutor(
            label='htex', max_workers_per_node=2, worker_debug=False, address='127.0.0.1',
            loopback_address='127.0.0.1', provider=provider, heartbeat_period=2,
            heartbeat_threshold=10, **htex)
        return parsl.Config(executors=[executor], run_dir=str(tmp_path / 'runinfo'),
                            strategy_period=1)
    return make


def cmdline(pid: int) -> str:
    try:
        return Path(f'/proc/{pid}/cmdline').read_bytes().replace(b'\0', b' ').decode()
    except OSError:
        return ''


def children(pid: int) -> list[int]:
    """Pids of the child processes of pid."""
    kids = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                stat = Path(f'/proc/{entry}/stat').read_text()
            except OSError:
                continue
            if int(stat.rpartition(')')[2].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def managers(run_dir: Path) -> list[int]:
    """Pids of the Parsl worker pools (process_worker_pool.py) of runs under run_dir."""
    return [int(pid) for pid in os.listdir('/proc') if pid.isdigit() and
            'process_worker_pool' in (line := cmdline(int(pid))) and str(run_dir) in line]


def pool_processes(run_dir: Path) -> list[int]:
    """Pids of the Parsl processes of runs under run_dir: worker pools and their workers, and
    the interchanges this process started."""
    found = [pid for pid in children(os.getpid()) if 'interchange' in cmdline(pid)]
    for manager in managers(run_dir):
        found += [manager] + children(manager)
    return found


def wait_gone(run_dir: Path, timeout: float = 15.0) -> list[int]:
    """The Parsl processes of run_dir still there after timeout s (none: [])."""
    deadline = time.monotonic() + timeout
    while (left := pool_processes(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_doe_equals_the_sequential_run_and_records_each_case_once(local_config, tmp_path,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = doe(200)
    expected.run()
    executor = ParslExecutor(local_config(), workers_timeout=60.0)
    top = doe(200, executor)
    top.recorders = [SQLiteRecorder('cases.sqlite')]
    try:
        top.run()
        assert executor._pool.size == 2  # 2 workers per node x 1 node x max_blocks=1
        assert len(list((tmp_path / 'runinfo').glob('*/openmdao_like-runner-*.pkl'))) == 1
        same_cases(top.driver.results, expected.driver.results)
        rows = read_cases('cases.sqlite')
        assert sorted(r['id'] for r in rows) == list(range(200))
        top.run()  # warm: the same workers, another runner
        same_cases(top.driver.results, expected.driver.results)
    finally:
        executor.shutdown()
    assert list((tmp_path / 'runinfo').glob('*/openmdao_like-runner-*.pkl')) == []
    assert wait_gone(tmp_path / 'runinfo') == []


def test_the_model_travels_once_per_worker_and_run(local_config, tmp_path):
    executor = ParslExecutor(local_config(), workers_timeout=60.0)
    top = make_model(100, executor)
    top.driver.add_response('w.pid')
    top.driver.add_response('w.loads')
    try:
        top.run()
        first = {(c.outputs['w.pid'], c.outputs['w.loads']) for c in top.driver.results}
        top.run()  # warm: another runner, the same worker processes
        second = {(c.outputs['w.pid'], c.outputs['w.loads']) for c in top.driver.results}
    finally:
        executor.shutdown()
    assert [c.outputs['w.y'] for c in top.driver.results] == [2.0 * i for i in range(100)]
    assert len(first) == 2 and {loads for _pid, loads in first} == {1.0}
    assert {pid for pid, _ in second} == {pid for pid, _ in first}
    assert {loads for _pid, loads in second} == {2.0}


def test_a_kernel_loaded_by_the_user_is_used_and_left_running(local_config):
    config = local_config()
    config.initialize_logging = False  # (Parsl 2026.10.26 leaves its parsl.log open at cleanup)
    dfk = parsl.load(config)
    try:
        for target in (config, None, dfk):
            executor = ParslExecutor(target, workers_timeout=60.0)
            top = make_model(20, executor)
            top.run()
            executor.shutdown()
            assert [c.outputs['w.y'] for c in top.driver.results] == [2.0 * i for i in range(20)]
            assert not dfk.cleanup_called and parsl.dfk() is dfk
    finally:
        dfk.cleanup()
    with pytest.raises(BrokenExecutor, match='load one first with parsl.load'):
        ParslExecutor().start(Square())


def test_a_killed_parsl_worker_loses_no_case(local_config, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    pids = tmp_path / 'pids'
    pids.mkdir()
    monkeypatch.setenv('OML_TEST_PIDS', str(pids))
    executor = ParslExecutor(local_config(), workers_timeout=60.0, case_timeout=2.0)
    top = doe(200, executor, delay=0.02, error_policy='RETRY', max_retries=2)
    top.recorders = [SQLiteRecorder('cases.sqlite')]
    killed: list[int] = []

    def kill_a_worker() -> bool:
        workers = [int(pid.name) for pid in pids.iterdir()]
        if len(workers) < 2:
            return False
        assert set(workers) <= {kid for manager in managers(tmp_path / 'runinfo')
                                for kid in children(manager)}
        os.kill(workers[0], signal.SIGKILL)
        killed.append(workers[0])
        return True

    try:
        took = run_during(top, kill_a_worker)
    finally:
        executor.shutdown()
    assert 'lost its task: WorkerLost' in caplog.text  # (the loop ran its cases again)
    rows = read_cases('cases.sqlite')
    assert sorted(r['id'] for r in rows) == list(range(200))
    assert all(r['status'] == 'ok' for r in rows)
    assert len(top.driver.results) == 200 and took < 60.0
    assert wait_gone(tmp_path / 'runinfo') == []


def test_a_frozen_parsl_worker_is_covered_by_case_timeout(local_config, tmp_path, monkeypatch,
                                                         caplog):
    """A stopped worker never fails its task in Parsl (as one that died with its node, parsl
    #1245): case_timeout sends its cases again, each case is recorded once."""
    monkeypatch.chdir(tmp_path)
    pids = tmp_path / 'pids'
    pids.mkdir()
    monkeypatch.setenv('OML_TEST_PIDS', str(pids))
    executor = ParslExecutor(local_config(), workers_timeout=60.0, case_timeout=0.25)
    top = doe(200, executor, delay=0.02)
    top.recorders = [SQLiteRecorder('cases.sqlite')]
    stopped: list[int] = []

    def stop_a_worker() -> bool:
        workers = [int(pid.name) for pid in pids.iterdir()]
        if len(workers) < 2:
            return False
        os.kill(workers[0], signal.SIGSTOP)
        stopped.append(workers[0])
        return True

    try:
        took = run_during(top, stop_a_worker, every=0.5)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        executor.shutdown()
    assert 'ran longer than case_timeout' in caplog.text
    rows = read_cases('cases.sqlite')
    assert sorted(r['id'] for r in rows) == list(range(200))
    assert all(r['status'] == 'ok' for r in rows)
    assert took < 60.0
    assert wait_gone(tmp_path / 'runinfo') == []


def test_without_parsl_the_executor_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, 'parsl', None)
    executor = ParslExecutor(parsl.Config())
    with pytest.raises(ImportError, match=r'pip install openmdao_like\[parsl\]'):
        executor.start(Square())
    assert not executor.running


def test_a_config_that_gives_no_worker_breaks_within_workers_timeout(local_config, tmp_path):
    executor = ParslExecutor(local_config(init_blocks=0, max_blocks=0), workers_timeout=2.0)
    t0 = time.monotonic()
    with pytest.raises(BrokenExecutor, match=r'within 2 s \(workers_timeout\)'):
        executor.start(Square())
    assert time.monotonic() - t0 < 20.0
    assert not executor.running
    assert wait_gone(tmp_path / 'runinfo') == []


def test_workers_that_cannot_start_break_the_executor(local_config, tmp_path):
    executor = ParslExecutor(local_config(worker_init='exit 3'), workers_timeout=60.0)
    t0 = time.monotonic()
    with pytest.raises(BrokenExecutor, match='a first Parsl task could not load'):
        executor.start(Square())
    assert time.monotonic() - t0 < 45.0
    assert wait_gone(tmp_path / 'runinfo') == []


def test_a_config_runs_once_and_parsl_retries_are_turned_off(local_config):
    config = local_config(init_blocks=0, max_blocks=0)
    config.retries = 2
    executor = ParslExecutor(config, workers_timeout=0.5)
    with pytest.warns(UserWarning, match='retries=2'):
        with pytest.raises(BrokenExecutor):
            executor.start(Square())
    assert config.retries == 2  # the user's Config is unchanged
    with pytest.raises(BrokenExecutor, match='give the ParslExecutor a new Config'):
        executor.start(Square())
    with pytest.raises(TypeError, match='expected a parsl.Config'):
        ParslExecutor('htex').start(Square())


def test_shutdown_mid_run_leaves_no_parsl_process(local_config, tmp_path):
    executor = ParslExecutor(local_config(), workers_timeout=60.0)
    try:
        executor.start(Square())
        outcomes = executor.run_cases((i, {'x': i, 'sleep': 0.05}) for i in range(400))
        first = [next(outcomes) for _ in range(10)]
        assert len(pool_processes(tmp_path / 'runinfo')) >= 4  # interchange, pool, 2 workers
    finally:
        t0 = time.monotonic()
        executor.shutdown(cancel_futures=True)
    assert time.monotonic() - t0 < 20.0
    assert all(o.status == 'ok' for o in first)
    assert wait_gone(tmp_path / 'runinfo') == []


def slurm_config(slurm_cluster, tmp_path, blocks, workers, cores_per_node=None, **htex):
    """A SlurmProvider of ``blocks`` jobs on the test cluster, and an HTEX Config over it."""
    path = os.environ['PATH']
    provider = SlurmProvider(partition=slurm_cluster.partition, nodes_per_block=1,
                             init_blocks=blocks, min_blocks=0, max_blocks=blocks,
                             walltime='00:10:00', exclusive=False, cmd_timeout=30,
                             cores_per_node=cores_per_node,
                             worker_init=f'export PATH={path} '
                                         f'PYTHONPATH={slurm_cluster.env["PYTHONPATH"]}',
                             launcher=parsl.launchers.SingleNodeLauncher())
    config = parsl.Config(executors=[parsl.HighThroughputExecutor(
        label='slurm', max_workers_per_node=workers, address='127.0.0.1',
        loopback_address='127.0.0.1', provider=provider, **htex)],
        run_dir=str(tmp_path / 'runinfo'), strategy_period=1)
    return provider, config


def wait_no_job(slurm_cluster) -> None:
    """Until the test cluster has no job (30 s at most), then none."""
    deadline = time.monotonic() + 30.0
    while slurm_cluster.active_jobs() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert slurm_cluster.active_jobs() == []


@pytest.mark.slurm
def test_a_slurm_provider_runs_the_cases_and_leaves_no_job(slurm_cluster, worker_env,
                                                           tmp_path):
    provider, config = slurm_config(slurm_cluster, tmp_path, blocks=1, workers=2)
    executor = ParslExecutor(config, workers_timeout=60.0)
    top = doe(50, executor)
    try:
        top.run()
    finally:
        executor.shutdown()
    expected = doe(50)
    expected.run()
    same_cases(top.driver.results, expected.driver.results)
    wait_no_job(slurm_cluster)
    jobs = list(provider.resources)  # (the block was a SLURM job)
    assert len(jobs) == 1 and slurm_cluster.end_state(jobs[0]) is not None


@pytest.mark.slurm
@pytest.mark.timeout(180)
def test_a_cancelled_slurm_block_costs_no_case(slurm_cluster, worker_env, tmp_path):
    _, config = slurm_config(slurm_cluster, tmp_path, blocks=2, workers=1, cores_per_node=1,
                             heartbeat_period=1, heartbeat_threshold=4)
    executor = ParslExecutor(config, workers_timeout=60.0, case_timeout=5.0)
    top = doe(80, executor, delay=0.1)

    def cancel_one() -> bool:
        jobs = [job for job, state, _ in slurm_cluster.active_jobs() if state == 'RUNNING']
        if jobs:
            subprocess.run(['scancel', jobs[0]], check=True)
        return bool(jobs)
    try:
        run_during(top, cancel_one, every=3.0)
    finally:
        executor.shutdown()
    expected = doe(80)
    expected.run()
    same_cases(top.driver.results, expected.driver.results)
    wait_no_job(slurm_cluster)


CTRL_C = '''
import sys
import parsl
from parsl.providers import LocalProvider
from openmdao_like.distributed.engines import ParslExecutor
import test_engines_parsl as t

provider = LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1)
config = parsl.Config(executors=[parsl.HighThroughputExecutor(
    label='htex', max_workers_per_node=2, address='127.0.0.1', loopback_address='127.0.0.1',
    provider=provider)], run_dir=sys.argv[1], strategy_period=1)
top = t.doe(400, ParslExecutor(config, workers_timeout=60.0), delay=0.5)
print('running', flush=True)
top.run()
print('ended', flush=True)
'''


@pytest.mark.timeout(120)
def test_ctrl_c_of_a_run_leaves_no_parsl_process(worker_env, tmp_path):
    script = tmp_path / 'run.py'
    script.write_text(CTRL_C)
    run_dir = tmp_path / 'runinfo'
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout.readline().strip() == 'running'
        deadline = time.monotonic() + 60
        while len([pid for m in managers(run_dir) for pid in children(m)]) < 2:
            assert time.monotonic() < deadline, 'no Parsl worker started'
            time.sleep(0.2)
        time.sleep(1.0)  # cases running on both workers
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert 'KeyboardInterrupt' in out and 'ended' not in out, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 30
    while (left := [pid for pid in map(int, filter(str.isdigit, os.listdir('/proc')))
                    if str(tmp_path) in cmdline(pid) or 'interchange.py' in cmdline(pid)]) \
            and time.monotonic() < deadline:
        time.sleep(0.3)
    assert left == [], [cmdline(pid) for pid in left]  # no worker pool, worker, interchange
