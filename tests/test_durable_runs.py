"""Durable runs: `openmdao-like run MODEL --store URL` records each case of the model's driver in
the job store as it ends; after the process is killed (SIGKILL), `run --resume RUN --store URL`
runs only the cases not COMPLETED, and the recorders hold every case once. Against a SQLite file
and a real PostgreSQL server (tests/pg_server.py)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from openmdao_like import set_as_top
from openmdao_like.errors import StoreError
from openmdao_like.jobs import JobStore, State
from openmdao_like.jobs.durable import load_run, start_run
from openmdao_like.recorders import read_cases

CLI = Path(sys.executable).parent / 'openmdao-like'

#: A DOE of CASES cases, each taking a little time and writing its x to $RUNS_FILE when it runs.
MODEL = '''
import os
import time

from openmdao_like import Assembly, Component, Float
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import LatinHypercube
from openmdao_like.recorders import CSVRecorder


class Counted(Component):
    x = Float(0.0, iotype='in', low=-10.0, high=10.0)
    f = Float(0.0, iotype='out')

    def execute(self):
        time.sleep(float(os.environ.get('CASE_SECONDS', '0')))
        with open(os.environ['RUNS_FILE'], 'a') as fh:
            fh.write(f'{self.x!r}\\n')
        self.f = self.x ** 2


class Model(Assembly):
    def configure(self):
        self.add('p', Counted())
        self.add('driver', DOEDriver(LatinHypercube(num_samples=CASES, seed=4)))
        self.driver.workflow.add('p')
        self.driver.add_parameter('p.x', low=-1.0, high=1.0)
        self.driver.add_response('p.f')
        self.recorders = [CSVRecorder('cases.csv')]
'''


def _write_model(tmp_path: Path, cases: int) -> Path:
    path = tmp_path / 'doe_model.py'
    path.write_text(MODEL.replace('CASES', str(cases)), encoding='utf-8')
    return path


def _env(tmp_path: Path, seconds: float) -> dict[str, str]:
    return {**os.environ, 'RUNS_FILE': str(tmp_path / 'runs.txt'), 'CASE_SECONDS': str(seconds)}


def _runs(tmp_path: Path) -> collections.Counter:
    """How many times each case (by its x) ran."""
    text = (tmp_path / 'runs.txt').read_text(encoding='utf-8')
    return collections.Counter(line for line in text.splitlines() if line)


def test_a_killed_run_resumes_without_running_completed_cases_again(tmp_path, store_url):
    model = _write_model(tmp_path, 2000)
    proc = subprocess.Popen([str(CLI), 'run', str(model), '--store', store_url, '-q'],
                            cwd=tmp_path, env=_env(tmp_path, 0.002), stderr=subprocess.PIPE,
                            text=True)
    try:
        first = proc.stderr.readline()
        assert first.startswith('run '), first + proc.stderr.read()
        run_id = first.split()[1]
        with JobStore(store_url) as store:
            deadline = time.monotonic() + 60
            while store.counts(run_id)['COMPLETED'] < 300:  # well into the run, not at its end
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            done = {job.inputs['p.x'] for job in store.jobs(run_id, State.COMPLETED)}
            assert 300 <= len(done) < 2000
            assert store.run(run_id).state == 'RUNNING'  # it died: nobody marked it ended
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    ran_before = _runs(tmp_path)

    resumed = subprocess.run([str(CLI), 'run', '--resume', run_id[:8], '--store', store_url,
                              '-q'], cwd=tmp_path, env=_env(tmp_path, 0.0),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f'resuming run {run_id}: {len(done)} case(s) COMPLETED are not run again' in \
        resumed.stderr
    runs = _runs(tmp_path)
    assert len(runs) == 2000  # every case ran
    for x in done:  # a case COMPLETED before the kill did not run again
        assert runs[repr(x)] == 1
    twice = [x for x, n in runs.items() if n > 1]
    assert all(ran_before[x] == 1 for x in twice)  # only cases in flight at the kill ran twice
    rows = read_cases(tmp_path / 'cases.csv')
    assert [row['iteration'] for row in rows] == [f'driver:{k}' for k in range(2000)]
    assert len({row['p.x'] for row in rows}) == 2000  # each case once
    with JobStore(store_url) as store:
        assert store.counts(run_id)['COMPLETED'] == 2000
        assert store.run(run_id).state == 'COMPLETED'


def test_a_run_in_process_is_in_the_store_and_resuming_a_finished_one_runs_nothing(
        tmp_path, store_url, monkeypatch):
    model = _write_model(tmp_path, 20)
    monkeypatch.setenv('RUNS_FILE', str(tmp_path / 'runs.txt'))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(model.read_text(), str(model), 'exec'), namespace)
    top = set_as_top(namespace['Model']())
    with JobStore(store_url) as store:
        run_id = start_run(top, store, 'doe_model.py')
        top.run()
        assert store.counts(run_id)['COMPLETED'] == 20 and store.run(run_id).state == 'COMPLETED'
        job = store.job(run_id, 3)
        assert job.outputs['p.f'] == pytest.approx(job.inputs['p.x'] ** 2)
        assert job.attempts == 1 and job.finished >= job.started > 0
        again = load_run(store, run_id)
        again.driver.resume(run_id, store)
        assert len(_runs(tmp_path)) == 20 and sum(_runs(tmp_path).values()) == 20
        assert [c.id for c in again.driver.results] == list(range(20))
        assert len(read_cases(tmp_path / 'cases.csv')) == 20


def test_resume_bad_input_is_a_clear_error(tmp_path, store_url):
    model = _write_model(tmp_path, 5)
    proc = subprocess.run([str(CLI), 'run', '--resume', 'beefbeef', '--store', store_url],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "error: " in proc.stderr and "no run 'beefbeef'" in proc.stderr
    assert 'internal error' not in proc.stderr
    proc = subprocess.run([str(CLI), 'run', '--resume', 'beefbeef'], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and '--resume needs --store URL' in proc.stderr
    proc = subprocess.run([str(CLI), 'run', str(model), '--resume', 'beef', '--store',
                           store_url], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and '--resume runs the model saved with the run' in proc.stderr
    with JobStore(store_url) as store:  # a run whose model no longer loads
        run_id = store.create_run('gone.py', model=b'not a pickle', model_format='pickle',
                                  driver='driver')
        with pytest.raises(StoreError, match=rf'run {run_id}: its model \(pickle\) does not '
                                             rf'load here: '):
            load_run(store, run_id)
    proc = subprocess.run([str(CLI), 'run', '--resume', run_id, '--store', store_url],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and 'does not load here' in proc.stderr
    assert 'internal error' not in proc.stderr
