"""Runners for real: two runners share a run on one PostgreSQL store; a run submitted with
resources runs on SLURM pilot jobs, survives its runner killed with SIGKILL, and when cancelled
leaves no batch job in ``squeue`` and no process of the run; cancelling reaches the scheduler
even when the runner is gone."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from openmdao_like.errors import StoreError
from openmdao_like.jobs import JobStore
from openmdao_like.jobs.pilots import cancel_run
from openmdao_like.recorders import read_cases
from openmdao_like.resources.manager import ResourceAllocationManager
from openmdao_like.resources.pbs import PBSAllocator
from openmdao_like.resources.slurm import SlurmAllocator

from pg_server import PostgresServer
from ram_models import eventually, leftovers
from remote_servers import pid_alive
from test_durable_runs import MODEL as DURABLE_MODEL

CLI = Path(sys.executable).parent / 'openmdao-like'

#: test_durable_runs' DOE, its cases run on workers (not in the runner's process), each noting
#: its case input and process id in $RUNS_FILE.
MODEL = DURABLE_MODEL.replace(
    "fh.write(f'{self.x!r}\\n')", "fh.write(f'{self.x!r} {os.getpid()}\\n')").replace(
    'LatinHypercube(num_samples=CASES, seed=4)',
    'LatinHypercube(num_samples=CASES, seed=4), sequential=False')
assert MODEL.count('getpid') == 1 and MODEL.count('sequential=False') == 1


def cli(*args: str, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def executions(*files: Path) -> collections.Counter:
    """How many times each case input ran, over the runs files."""
    return collections.Counter(line.split()[0] for path in files if path.exists()
                               for line in path.read_text().splitlines())


def pids(*files: Path) -> set[int]:
    return {int(line.split()[1]) for path in files if path.exists()
            for line in path.read_text().splitlines()}


def wait_for(check, what: str, limit: float = 120.0):
    value = eventually(check, limit)
    assert value, f'timed out waiting for {what}'
    return value


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of the CLI and runners: HOME (runner pid files) under the test's."""
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    return {**os.environ, 'RUNS_FILE': str(tmp_path / 'runs.txt')}


def submit(tmp_path: Path, env: dict, store: str, cases: int, *options: str) -> str:
    model = tmp_path / 'doe_model.py'
    model.write_text(MODEL.replace('CASES', str(cases)), encoding='utf-8')
    done = cli('submit', str(model), '--store', store, *options, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def no_lock_left(store: JobStore, run_id: str) -> None:
    """No job of the run is held by a runner, nor the run."""
    with store._reading() as cur:
        cur.execute(store._db.sql('SELECT count(*) FROM jobs WHERE run_id = ? AND '
                                  '(lease_owner IS NOT NULL OR lease_expires IS NOT NULL)'),
                    (run_id,))
        assert cur.fetchone()[0] == 0
    assert store.run(run_id).runner is None


def test_two_runners_on_postgresql_share_a_run_without_running_a_case_twice(
        tmp_path, env, postgres_url):
    # 400 cases of 20 ms on two workers per runner: ~4 s for one runner alone, long enough for
    # the second (started a moment later) to join
    run_id = submit(tmp_path, env, postgres_url, 400)
    runners = []
    for k in (1, 2):
        cwd = tmp_path / f'runner{k}'
        cwd.mkdir()
        runners.append(subprocess.Popen(
            [str(CLI), 'runner', 'serve', '--store', postgres_url, '--poll', '0.1'], cwd=cwd,
            env={**env, 'RUNS_FILE': str(cwd / 'runs.txt'), 'CASE_SECONDS': '0.02',
                 'HOME': str(cwd)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    try:
        with JobStore(postgres_url) as store:
            wait_for(lambda: store.run_state(run_id) == 'COMPLETED', 'the run to complete')
            assert store.counts(run_id)['COMPLETED'] == 400
            no_lock_left(store, run_id)
    finally:
        for proc in runners:
            proc.send_signal(signal.SIGTERM)
        errors = [proc.communicate(timeout=60)[1] for proc in runners]
    assert [proc.returncode for proc in runners] == [0, 0], errors
    with JobStore(postgres_url) as store:  # cases ran on the runners' machine
        assert {job.host for job in store.jobs(run_id)} == {socket.gethostname()}
    files = [tmp_path / f'runner{k}' / 'runs.txt' for k in (1, 2)]
    ran = executions(*files)
    assert len(ran) == 400 and set(ran.values()) == {1}  # every case once, no case twice
    assert all(executions(path) for path in files)  # both runners ran cases


def test_a_runner_and_its_run_outlive_a_postgresql_restart(tmp_path, env):
    """PostgreSQL restarted (down 2 s) in the middle of a run: the runner and its job recorder
    keep their cases and try again, and the run completes, every case recorded once."""
    with PostgresServer() as server:
        url = server.create_database('restarted')
        run_id = submit(tmp_path, env, url, 300)
        runner = subprocess.Popen(
            [str(CLI), 'runner', 'serve', '--store', url, '--poll', '0.1', '--lease', '5'],
            cwd=tmp_path, env={**env, 'CASE_SECONDS': '0.01'}, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: completed(url, run_id) >= 50, '50 cases done')
            server.restart(down=2.0)
            wait_for(lambda: completed(url, run_id) == 300, 'the run to complete')
            with JobStore(url) as store:
                assert store.run_state(run_id) == 'COMPLETED'
                no_lock_left(store, run_id)
            assert runner.poll() is None  # it lived through the outage
        finally:
            runner.send_signal(signal.SIGTERM)
            log = runner.communicate(timeout=60)[1]
        assert runner.returncode == 0, log
        assert 'trying again' in log  # it saw the outage
    ran = executions(tmp_path / 'runs.txt')
    assert len(ran) == 300 and sum(ran.values()) - 300 <= 64  # again: only cases in flight


def completed(url: str, run_id: str) -> int:
    """COMPLETED jobs of the run, on a new connection (0 while the store is down)."""
    try:
        with JobStore(url) as store:
            return store.counts(run_id)['COMPLETED']
    except StoreError:
        return 0


# -- SLURM ----------------------------------------------------------------------------------------
@pytest.fixture
def slurm_env(slurm_cluster, env, tmp_path) -> Iterator[dict[str, str]]:
    """``env`` with a resources config file naming the session's cluster 'SLURM'; afterwards
    no batch job is left, nor a process in the jobs' directory."""
    jobs = tmp_path / 'jobs'
    config = tmp_path / 'resources.yaml'
    config.write_text(json.dumps({'allocators': [{
        'type': 'SlurmAllocator', 'name': 'SLURM', 'partition': slurm_cluster.partition,
        'workdir': str(jobs), 'poll': 0.2, 'queue_timeout': 120}]}), encoding='utf-8')
    yield {**env, 'OPENMDAO_LIKE_RESOURCES': str(config), 'CASE_SECONDS': '0.02'}
    assert eventually(lambda: not slurm_cluster.active_jobs()), slurm_cluster.active_jobs()
    assert eventually(lambda: not leftovers(jobs)), leftovers(jobs)


def slurm_resources(slurm_cluster) -> str:
    return json.dumps({'allocator': 'SLURM', 'job_environment': slurm_cluster.env})


@pytest.mark.slurm
@pytest.mark.slow
def test_a_runner_killed_mid_run_on_slurm_pilots_leaves_the_run_to_the_next_one(
        tmp_path, slurm_env, slurm_cluster):
    run_id = submit(tmp_path, slurm_env, 'sqlite:///' + str(tmp_path / 'runs.db'), 300,
                    '--resources', slurm_resources(slurm_cluster))
    store_url = 'sqlite:///' + str(tmp_path / 'runs.db')
    start = ('runner', 'start', '--store', store_url, '--lease', '3', '--poll', '0.2',
             '--max-jobs', 'SLURM=2')
    assert cli(*start, cwd=tmp_path, env=slurm_env).returncode == 0
    with JobStore(store_url) as store:
        wait_for(lambda: store.counts(run_id)['COMPLETED'] >= 60, '60 cases done')
        pilots = store.pilots(run_id, live=True)
        assert 1 <= len(pilots) <= 2 and all(p.scheduler_id for p in pilots)
        assert {p.scheduler_id for p in pilots} <= {job for job, _, _ in
                                                    slurm_cluster.active_jobs()}
        daemon = int(next((tmp_path / 'home' / '.openmdao_like' / 'runners').glob(
            '*.pid')).read_text().split()[0])
        os.kill(daemon, signal.SIGKILL)
        wait_for(lambda: not pid_alive(daemon), 'the runner to die')
        assert store.counts(run_id)['COMPLETED'] < 300 and store.run_state(run_id) == 'RUNNING'
        # its pilots lost their client: they end by themselves (the cases they had end first)
        killed = {p.scheduler_id for p in pilots}
        wait_for(lambda: not killed & {j for j, _, _ in slurm_cluster.active_jobs()},
                 'the dead runner\'s pilots to end')
        ran_before = executions(tmp_path / 'runs.txt')

        assert cli(*start, cwd=tmp_path, env=slurm_env).returncode == 0
        try:
            wait_for(lambda: store.run_state(run_id) == 'COMPLETED', 'the run to complete', 180)
        finally:
            stopped = cli('runner', 'stop', '--store', store_url, cwd=tmp_path, env=slurm_env)
        assert stopped.returncode == 0, stopped.stderr
        assert store.counts(run_id)['COMPLETED'] == 300
        no_lock_left(store, run_id)
        new = {p.scheduler_id for p in store.pilots(run_id)} - killed
        assert new and all(p.ended for p in store.pilots(run_id) if p.scheduler_id in new)
    ran = executions(tmp_path / 'runs.txt')
    assert len(ran) == 300  # no case lost...
    twice = [x for x, n in ran.items() if n > 1]
    assert all(ran_before[x] == 1 for x in twice) and len(twice) <= 40  # ...only those in flight
    rows = read_cases(tmp_path / 'cases.csv')  # the model's recorder: every case once
    assert sorted(int(row['iteration'].split(':')[1]) for row in rows) == list(range(300))


@pytest.mark.slurm
@pytest.mark.slow
def test_cancelling_a_run_on_slurm_leaves_no_batch_job_and_no_process(
        tmp_path, slurm_env, slurm_cluster):
    store_url = 'sqlite:///' + str(tmp_path / 'runs.db')
    slow = {**slurm_env, 'CASE_SECONDS': '5'}
    run_id = submit(tmp_path, slow, store_url, 40, '--resources',
                    slurm_resources(slurm_cluster))
    assert cli('runner', 'start', '--store', store_url, '--poll', '0.2', '--max-jobs', '2',
               cwd=tmp_path, env=slow).returncode == 0
    try:
        with JobStore(store_url) as store:
            wait_for(lambda: len(pids(tmp_path / 'runs.txt')) >= 2, 'cases on two pilots')
            pilots = {p.scheduler_id for p in store.pilots(run_id, live=True)}
            workers = pids(tmp_path / 'runs.txt')
            assert len(pilots) == 2 and pilots <= {j for j, _, _ in slurm_cluster.active_jobs()}
            info = cli('jobs', 'info', run_id[:8], '--store', store_url, cwd=tmp_path, env=slow)
            assert info.returncode == 0 and 'servers' in info.stdout and \
                all(job in info.stdout for job in pilots), info.stdout
            done = cli('jobs', 'cancel', run_id[:8], '--store', store_url, '--json',
                       cwd=tmp_path, env=slow)
            assert done.returncode == 0, done.stderr
            report = json.loads(done.stdout)
            assert report['state'] == 'CANCELLED' and report['changed'] == \
                40 - report['counts']['COMPLETED'] == report['counts']['CANCELLED']
            # the runner stopped the run at once: its pilots left the queue, its workers died
            wait_for(lambda: not pilots & {j for j, _, _ in slurm_cluster.active_jobs()},
                     'the pilots to leave squeue', 30)
            assert all(slurm_cluster.wait_ended(job) in ('CANCELLED', 'COMPLETED')
                       for job in pilots)
            wait_for(lambda: not any(map(pid_alive, workers)), 'the workers to die', 30)
            assert not store.pilots(run_id, live=True)
            wait_for(lambda: store.run(run_id).runner is None, 'the runner to let go', 30)
            no_lock_left(store, run_id)
            assert store.run_state(run_id) == 'CANCELLED'
            assert len(executions(tmp_path / 'runs.txt')) < 40
    finally:
        assert cli('runner', 'stop', '--store', store_url, cwd=tmp_path,
                   env=slow).returncode == 0


@pytest.mark.slurm
@pytest.mark.parametrize('scheduler', ['SLURM', pytest.param('PBS', marks=pytest.mark.pbs)])
def test_cancel_reaches_the_batch_jobs_of_a_run_whose_runner_is_gone(
        tmp_path, slurm_cluster, store_url, scheduler, request):
    """A pilot noted live whose runner died (its batch job still queued or running) is
    cancelled by `cancel_run` through its allocator (scancel; qdel), and leaves the queue;
    its directory goes too."""
    job = slurm_cluster.submit('--job-name=pilot', script='#!/bin/sh\nsleep 300\n')
    workdir = tmp_path / 'jobs' / 'oml-job-gone'
    workdir.mkdir(parents=True)
    if scheduler == 'PBS':
        request.getfixturevalue('pbs_commands')  # the cluster through qsub, qstat, qdel
        allocator = PBSAllocator(name='PBS', workdir=str(tmp_path / 'jobs'), poll=0.2)
    else:
        allocator = SlurmAllocator(name='SLURM', partition=slurm_cluster.partition,
                                   workdir=str(tmp_path / 'jobs'), poll=0.2)
    ram = ResourceAllocationManager([allocator])
    try:
        with JobStore(store_url) as store:
            run_id = store.create_run('gone')
            store.plan_run(run_id, [(0, {'p.x': 1.0})])
            store.add_pilot(run_id, 'dead-runner', scheduler, job, 'localhost', str(workdir))
            cancelled, reached = cancel_run(store, run_id, grace=0.5, ram=ram)
            assert cancelled == 1 and [p.scheduler_id for p in reached] == [job]
            assert not store.pilots(run_id, live=True) and not workdir.exists()
        assert slurm_cluster.wait_ended(job) == 'CANCELLED'
    finally:
        ram.shutdown()


def test_bad_resources_and_job_limits_are_refused_naming_the_option(tmp_path, env):
    store = 'sqlite:///' + str(tmp_path / 'runs.db')
    model = tmp_path / 'doe_model.py'
    model.write_text(MODEL.replace('CASES', '10'), encoding='utf-8')
    bad = cli('submit', str(model), '--store', store, '--resources', '{min_cpus: two}',
              cwd=tmp_path, env=env)
    assert bad.returncode != 0 and '--resources' in bad.stderr and 'min_cpus' in bad.stderr \
        and "'two'" in bad.stderr, bad.stderr
    with JobStore(store) as opened:
        assert opened.runs() == []  # nothing submitted
    for limit in ('0', 'SLURM=x', 'many'):
        bad = cli('runner', 'start', '--store', store, '--max-jobs', limit, cwd=tmp_path,
                  env=env)
        assert bad.returncode != 0 and '--max-jobs' in bad.stderr and repr(limit) in \
            bad.stderr, bad.stderr
