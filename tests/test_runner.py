"""The runner (`openmdao-like submit`, `openmdao-like runner serve|start|stop|status`): runs
submitted to a job store run in a daemon while the submitting terminal may close; a runner killed
with SIGKILL leaves its run to the next runner once its lease expires, and the run completes with
no case lost or recorded twice. Against a SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openmdao_like.jobs import JobStore
from openmdao_like.jobs.runner import Runner
from openmdao_like.recorders import read_cases

from test_durable_runs import MODEL

CLI = Path(sys.executable).parent / 'openmdao-like'


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment whose HOME (where runner daemons keep their pid files) is the test's."""
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    return {**os.environ, 'RUNS_FILE': str(tmp_path / 'runs.txt')}


def cli(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def _model(tmp_path: Path, cases: int) -> Path:
    path = tmp_path / 'doe_model.py'
    path.write_text(MODEL.replace('CASES', str(cases)), encoding='utf-8')
    return path


def _daemon_pid(env: dict, store_url: str) -> int:
    from openmdao_like.cli.runner import state_files
    old = os.environ.get('HOME')
    os.environ['HOME'] = env['HOME']
    try:
        pid_file = state_files(store_url)[1]
    finally:
        os.environ['HOME'] = old
    return int(Path(pid_file).read_text().split()[0])


def test_a_submitted_run_is_run_by_a_runner(tmp_path, store_url, home):
    model = _model(tmp_path, 30)
    submitted = cli('submit', str(model), '--store', store_url, '--name', 'sweep',
                    cwd=tmp_path, env=home)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    with JobStore(store_url) as store:
        assert store.run(run_id).state == 'WAITING' and store.run(run_id).name == 'sweep'
    os.environ['RUNS_FILE'] = home['RUNS_FILE']
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the model's recorder writes cases.csv here
    try:
        assert Runner(store_url, poll=0.1).serve(once=True) == 1
    finally:
        os.chdir(cwd)
    with JobStore(store_url) as store:
        run = store.run(run_id)
        assert (run.state, run.runner, store.counts(run_id)['COMPLETED']) == \
            ('COMPLETED', None, 30)
    assert len(read_cases(tmp_path / 'cases.csv')) == 30


def test_a_killed_runner_leaves_its_run_to_the_next_one(tmp_path, store_url, home):
    model = _model(tmp_path, 2000)
    home = {**home, 'CASE_SECONDS': '0.002'}
    run_id = cli('submit', str(model), '--store', store_url, cwd=tmp_path,
                 env=home).stdout.strip()
    started = cli('runner', 'start', '--store', store_url, '--lease', '2', '--poll', '0.2',
                  cwd=tmp_path, env=home)
    assert started.returncode == 0, started.stderr
    pid = _daemon_pid(home, store_url)
    with JobStore(store_url) as store:
        deadline = time.monotonic() + 60
        while store.counts(run_id)['COMPLETED'] < 300:
            assert time.monotonic() < deadline, cli('runner', 'status', '--store', store_url,
                                                    cwd=tmp_path, env=home).stdout
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        while os.path.exists(f'/proc/{pid}') and 'Z' not in \
                Path(f'/proc/{pid}/stat').read_text().rsplit(') ', 1)[1][:1]:
            time.sleep(0.01)
        done = {job.case_id for job in store.jobs(run_id, 'COMPLETED')}
        assert 300 <= len(done) < 2000 and store.run(run_id).state == 'RUNNING'
    ran_before = collections.Counter((tmp_path / 'runs.txt').read_text().splitlines())

    home['CASE_SECONDS'] = '0'
    again = cli('runner', 'start', '--store', store_url, '--lease', '2', '--poll', '0.2',
                cwd=tmp_path, env=home)
    assert again.returncode == 0, again.stderr
    try:
        with JobStore(store_url) as store:
            deadline = time.monotonic() + 120
            # once the dead one's lease expired; the run ends, then its runner lets it go
            while (store.run(run_id).state, store.run(run_id).runner) != ('COMPLETED', None):
                assert time.monotonic() < deadline, (store.counts(run_id), store.run(run_id))
                time.sleep(0.1)
            assert store.counts(run_id)['COMPLETED'] == 2000
    finally:
        stopped = cli('runner', 'stop', '--store', store_url, cwd=tmp_path, env=home)
    assert stopped.returncode == 0, stopped.stderr
    runs = collections.Counter((tmp_path / 'runs.txt').read_text().splitlines())
    assert len(runs) == 2000
    twice = [x for x, n in runs.items() if n > 1]
    assert all(ran_before[x] == 1 for x in twice) and len(twice) < 100  # only those in flight
    # the model's recorder holds every case once: those done before the kill recorded again in
    # their place, the ones in flight at the kill when they ended (taken over last)
    rows = read_cases(tmp_path / 'cases.csv')
    assert sorted(int(row['iteration'].split(':')[1]) for row in rows) == list(range(2000))


def test_runner_stop_hands_the_run_back_and_one_runner_per_sqlite_store(tmp_path, store_url,
                                                                       home):
    model = _model(tmp_path, 500)
    home = {**home, 'CASE_SECONDS': '0.01'}
    run_id = cli('submit', str(model), '--store', store_url, cwd=tmp_path,
                 env=home).stdout.strip()
    assert cli('runner', 'start', '--store', store_url, '--poll', '0.2', cwd=tmp_path,
               env=home).returncode == 0
    try:
        with JobStore(store_url) as store:
            deadline = time.monotonic() + 60
            while store.counts(run_id)['COMPLETED'] < 20:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        status = cli('runner', 'status', '--store', store_url, cwd=tmp_path, env=home)
        assert 'runner daemon: pid' in status.stdout and run_id[:8] in status.stdout
        second = cli('runner', 'start', '--store', store_url, cwd=tmp_path, env=home)
        assert second.returncode == 1 and 'a runner daemon runs already' in second.stderr
        if store_url.startswith('sqlite:'):  # PostgreSQL takes several runners
            serve = cli('runner', 'serve', '--store', store_url, cwd=tmp_path, env=home)
            assert serve.returncode == 1 and 'one runner per SQLite store' in serve.stderr
    finally:
        stopped = cli('runner', 'stop', '--store', store_url, cwd=tmp_path, env=home)
    assert stopped.returncode == 0 and 'stopped' in stopped.stdout, stopped.stderr
    with JobStore(store_url) as store:
        run = store.run(run_id)
        assert (run.state, run.runner) == ('WAITING', None)  # for the next runner
        assert 20 <= store.counts(run_id)['COMPLETED'] < 500
    status = cli('runner', 'status', '--store', store_url, cwd=tmp_path, env=home)
    assert 'runner daemon: not running' in status.stdout
    stop = cli('runner', 'stop', '--store', store_url, cwd=tmp_path, env=home)
    assert stop.returncode == 1 and 'no runner daemon runs for this store here' in stop.stderr


def test_the_python_api_submit_wait_cases_and_cancel(tmp_path, store_url, monkeypatch):
    """`jobs.submit` gives a `Run` handle: a runner (here in a thread) runs it; `wait`,
    `state`, `counts` and `cases` follow it; `cancel` stops a run in the middle."""
    import threading

    from openmdao_like.cli.run import find_model, load_module
    from openmdao_like.jobs import open_run, submit

    monkeypatch.setenv('RUNS_FILE', str(tmp_path / 'runs.txt'))
    monkeypatch.chdir(tmp_path)
    path = str(_model(tmp_path, 40))

    def model():
        return find_model(load_module(path), path)

    with submit(model(), store=store_url, name='api') as run:
        assert run.state == 'WAITING' and not run.wait(timeout=0.2)
        runner = threading.Thread(target=Runner(store_url, poll=0.1).serve,
                                  kwargs={'once': True})
        runner.start()
        assert run.wait(timeout=60)
        runner.join(timeout=60)
        assert run.state == 'COMPLETED' and run.counts()['COMPLETED'] == 40
        cases = run.cases()
        assert [c.id for c in cases] == list(range(40))
        assert all(c.outputs['p.f'] == pytest.approx(c.inputs['p.x'] ** 2) for c in cases)

    monkeypatch.setenv('CASE_SECONDS', '0.05')
    with submit(model(), store=store_url, name='slow') as slow:
        runner = threading.Thread(target=Runner(store_url, poll=0.1).serve,
                                  kwargs={'once': True})
        runner.start()
        deadline = time.monotonic() + 60
        while slow.counts()['COMPLETED'] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with open_run(slow.id[:8], store_url) as same:
            cancelled = same.cancel()  # the jobs not COMPLETED yet
        runner.join(timeout=60)  # the runner stops the cancelled run at its next write
        assert not runner.is_alive()
        counts = slow.counts()
        assert slow.state == 'CANCELLED' and counts['COMPLETED'] < 40
        assert counts['CANCELLED'] == cancelled == 40 - counts['COMPLETED']


def test_an_aborted_run_stays_failed_until_its_failed_jobs_are_retried(tmp_path, store_url,
                                                                      monkeypatch):
    """A run whose driver ABORTs on a failed case is FAILED: the runner hands back the cases
    it claimed but did not run, and no runner takes the run up again; `retry` of its failed
    job makes it WAITING, and a runner then runs what is left."""
    from openmdao_like import Assembly, Component, Float, set_as_top
    from openmdao_like.drivers import CaseIteratorDriver
    from openmdao_like.jobs import open_run, submit

    class Picky(Component):
        x = Float(0.0, iotype='in')
        y = Float(0.0, iotype='out')

        def execute(self):
            if self.x == 5.0 and os.environ.get('PICKY') == 'yes':
                raise ValueError('x = 5 refused')
            self.y = 2.0 * self.x

    top = set_as_top(Assembly())
    top.add('p', Picky())
    top.add('driver', CaseIteratorDriver(cases=[{'p.x': float(i)} for i in range(200)]))
    top.driver.workflow.add('p')
    top.driver.add_response('p.y')
    monkeypatch.setenv('PICKY', 'yes')
    with submit(top, store=store_url, name='picky') as run:
        assert Runner(store_url, poll=0.05).serve(once=True) == 1
        counts = run.counts()
        assert run.state == 'FAILED' and counts['FAILED'] == 1 and counts['RUNNING'] == 0
        assert counts['COMPLETED'] == 5 and counts['READY'] == 194  # handed back, not lost
        assert Runner(store_url, poll=0.05).serve(once=True) == 0  # nobody's work now
        monkeypatch.setenv('PICKY', 'no')
        with open_run(run.id, store_url) as same:
            assert same.store.retry(run.id) == 1 and same.state == 'WAITING'
        assert Runner(store_url, poll=0.05).serve(once=True) == 1
        assert run.state == 'COMPLETED' and run.counts()['COMPLETED'] == 200
        assert [c.outputs['p.y'] for c in run.cases()] == [2.0 * i for i in range(200)]
        assert run.store.job(run.id, 5).attempts == 2


@pytest.mark.parametrize('sequential', [True, False])
def test_what_each_case_printed_is_kept_with_its_job(tmp_path, sequential):
    """A runner keeps the end of what each case printed (stdout, stderr) with its job, in this
    process or on workers; ``jobs logs RUN:CASE`` shows it."""
    from openmdao_like import Assembly, Component, Float, set_as_top
    from openmdao_like.drivers import CaseIteratorDriver
    from openmdao_like.jobs import submit

    class Talky(Component):
        x = Float(0.0, iotype='in')
        y = Float(0.0, iotype='out')

        def execute(self):
            print(f'solving for x = {self.x}')
            print(f'residual {self.x / 10}', file=sys.stderr)
            if self.x == 3.0:
                raise ValueError('diverged')
            self.y = self.x

    top = set_as_top(Assembly())
    top.add('p', Talky())
    top.add('driver', CaseIteratorDriver(cases=[{'p.x': float(i)} for i in range(6)],
                                         sequential=sequential, error_policy='RETRY',
                                         max_retries=0))
    top.driver.workflow.add('p')
    top.driver.add_response('p.y')
    url = f'sqlite:///{tmp_path / "runs.db"}'
    with submit(top, store=url, name='talky') as run:
        assert Runner(url, poll=0.05).serve(once=True) == 1
        jobs = run.store.jobs(run.id)
        assert [(j.stdout_tail, j.stderr_tail) for j in jobs] == [
            (f'solving for x = {float(i)}\n', f'residual {i / 10}\n') for i in range(6)]
        assert jobs[3].state.name == 'FAILED' and 'diverged' in jobs[3].error
    logs = subprocess.run([str(CLI), 'jobs', 'logs', f'{run.id[:8]}:3', '--store', url],
                          capture_output=True, text=True, timeout=60)
    assert logs.returncode == 0, logs.stderr
    assert 'solving for x = 3.0' in logs.stdout and 'residual 0.3' in logs.stdout
