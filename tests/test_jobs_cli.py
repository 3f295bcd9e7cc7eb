"""``openmdao-like jobs list|info|logs|cancel|retry|pause|resume`` on the runs that
``run --store`` leaves in a job store (a SQLite file and a real PostgreSQL database)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openmdao_like.jobs import JobStore
from openmdao_like.recorders import read_cases

CLI = Path(sys.executable).parent / 'openmdao-like'

#: 10 cases; case 4 raises while $FAIL_FILE exists; each case sleeps $CASE_SECONDS.
MODEL = '''
import os
import time

from openmdao_like import Assembly, Component, Float
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import FullFactorial
from openmdao_like.recorders import CSVRecorder


class Picky(Component):
    x = Float(0.0, iotype='in', low=0.0, high=9.0)
    f = Float(0.0, iotype='out')

    def execute(self):
        time.sleep(float(os.environ.get('CASE_SECONDS', '0')))
        if self.x == 4.0 and os.path.exists(os.environ.get('FAIL_FILE', '-')):
            raise ValueError('x = 4 is unlucky')
        self.f = 2.0 * self.x


class Model(Assembly):
    def configure(self):
        self.add('p', Picky())
        self.add('driver', DOEDriver(FullFactorial(num_levels=10), error_policy='RETRY',
                                     max_retries=0))
        self.driver.workflow.add('p')
        self.driver.add_parameter('p.x', low=0.0, high=9.0)
        self.driver.add_response('p.f')
        self.recorders = [CSVRecorder('cases.csv')]
'''


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture
def failed_run(tmp_path: Path, store_url: str) -> tuple[str, str, Path, dict]:
    """A run of MODEL recorded in the store, its case 4 FAILED: (store, run id, dir, env)."""
    (tmp_path / 'model.py').write_text(MODEL, encoding='utf-8')
    (tmp_path / 'fail').write_text('', encoding='utf-8')
    env = {**os.environ, 'FAIL_FILE': str(tmp_path / 'fail')}
    proc = cli('run', 'model.py', '--store', store_url, '-q', cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stderr.split()[1]
    return store_url, run_id, tmp_path, env


def test_list_info_and_logs_show_the_run_and_its_failure(failed_run):
    store, run_id, where, env = failed_run
    listed = cli('jobs', 'list', '--store', store, cwd=where)
    assert listed.returncode == 0, listed.stderr
    assert run_id[:8] in listed.stdout and 'model.py' in listed.stdout
    assert 'FAILED' in listed.stdout and '9/10 completed, 1 failed' in listed.stdout
    as_json = json.loads(cli('jobs', 'list', '--store', store, '--json', cwd=where).stdout)
    assert [(r['id'], r['state'], r['counts']['COMPLETED']) for r in as_json] == \
        [(run_id, 'FAILED', 9)]
    info = cli('jobs', 'info', run_id[:6], '--store', store, cwd=where)
    assert info.returncode == 0, info.stderr
    assert f'run {run_id} (model.py)' in info.stdout and 'state: FAILED' in info.stdout
    assert "ValueError: x = 4 is unlucky, raised by component 'p' (Picky)" in info.stdout
    logs = cli('jobs', 'logs', f'{run_id[:6]}:4', '--store', store, cwd=where)
    assert logs.returncode == 0, logs.stderr
    assert 'state: FAILED' in logs.stdout and 'ValueError: x = 4 is unlucky' in logs.stdout
    job = json.loads(cli('jobs', 'logs', f'{run_id}:3', '--store', store, '--json',
                         cwd=where).stdout)
    assert (job['state'], job['outputs'], job['attempts']) == \
        ('COMPLETED', {'p.x': 3.0, 'p.f': 6.0}, 1)


def test_retry_pause_and_resume_then_run_resume(failed_run):
    store, run_id, where, env = failed_run
    os.remove(where / 'fail')  # the model is fixed
    retried = cli('jobs', 'retry', run_id, '--failed', '--store', store, cwd=where)
    assert retried.returncode == 0 and 'retried 1 job(s)' in retried.stdout, retried.stderr
    paused = cli('jobs', 'pause', run_id, '--store', store, cwd=where)
    assert 'paused 1 job(s)' in paused.stdout, paused.stderr
    # a resumed run passes over paused jobs: case 4 neither runs nor is recorded
    again = cli('run', '--resume', run_id, '--store', store, '-q', cwd=where, env=env)
    assert again.returncode == 0, again.stderr
    assert [r['p.x'] for r in read_cases(where / 'cases.csv')] == \
        [0.0, 1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    resumed = cli('jobs', 'resume', run_id, '--store', store, cwd=where)
    assert 'resumed 1 job(s)' in resumed.stdout, resumed.stderr
    again = cli('run', '--resume', run_id, '--store', store, '-q', cwd=where, env=env)
    assert again.returncode == 0, again.stderr
    assert len(read_cases(where / 'cases.csv')) == 10
    with JobStore(store) as opened:
        assert opened.counts(run_id)['COMPLETED'] == 10
        assert opened.run(run_id).state == 'COMPLETED'
        assert opened.job(run_id, 4).attempts == 2


def test_cancel_stops_a_running_run(tmp_path, store_url):
    (tmp_path / 'model.py').write_text(MODEL, encoding='utf-8')
    env = {**os.environ, 'CASE_SECONDS': '0.5'}
    proc = subprocess.Popen([str(CLI), 'run', 'model.py', '--store', store_url, '-q'],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        run_id = proc.stderr.readline().split()[1]
        with JobStore(store_url) as store:
            deadline = time.monotonic() + 60
            while store.counts(run_id)['COMPLETED'] < 1:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        cancelled = cli('jobs', 'cancel', run_id, '--store', store_url, cwd=tmp_path)
        assert cancelled.returncode == 0, cancelled.stderr
        assert 'run CANCELLED' in cancelled.stdout
        proc.wait(timeout=30)  # it stops at its next write, well before its 10 cases
        err = proc.stderr.read()
        assert proc.returncode == 1 and 'RunCancelledError' in err and 'was cancelled' in err
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        proc.stderr.close()
    with JobStore(store_url) as store:
        assert store.run(run_id).state == 'CANCELLED'
        assert store.counts(run_id)['COMPLETED'] < 10


def test_bad_input_is_a_clear_error(tmp_path, store_url):
    proc = cli('jobs', 'info', 'beefbeef', '--store', store_url, cwd=tmp_path)
    assert proc.returncode == 1 and "no run 'beefbeef'" in proc.stderr
    proc = cli('jobs', 'logs', 'beefbeef', '--store', store_url, cwd=tmp_path)
    assert proc.returncode == 2 and 'expected RUN:CASE' in proc.stderr
    proc = cli('jobs', 'list', '--store', 'mysql://x/y', cwd=tmp_path)
    assert proc.returncode == 1 and "unknown job store scheme 'mysql'" in proc.stderr
    proc = cli('jobs', 'retry', 'beefbeef', '--store', store_url, cwd=tmp_path)
    assert proc.returncode == 2 and '--failed' in proc.stderr
    assert cli('jobs', 'list', '--store', store_url, cwd=tmp_path).stdout.strip() == \
        'no runs in this store'
