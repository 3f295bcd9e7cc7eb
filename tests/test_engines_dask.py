"""DaskExecutor on real Dask clusters: a LocalCluster of worker processes and a dask-jobqueue
SLURMCluster on the test SLURM cluster. The same results as the sequential run, each case
recorded once when a worker is SIGKILLed or its batch job cancelled, nothing left behind, and
the bad inputs named."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import distributed
import pytest

_sigint = signal.getsignal(signal.SIGINT)
import dask_jobqueue  # noqa: E402
# dask_jobqueue's runner module makes Ctrl-C call sys.exit() in the whole process when it is
# imported; the tests after these expect KeyboardInterrupt (workers import this module in a
# thread, where signals cannot be set)
if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, _sigint)

from openmdao_like import Assembly, Instance, set_as_top
from openmdao_like.distributed.engines import DaskExecutor
from openmdao_like.distributed.engines import dask as dask_engine
from openmdao_like.drivers import CaseIteratorDriver
from openmdao_like.execution import BrokenExecutor
from engine_tools import Slow, run_during
from remote_models import Paraboloid

pytestmark = pytest.mark.timeout(180)


def model(executor: Any, n: int = 200, comp: type = Paraboloid, **values: float) -> Assembly:
    top = set_as_top(Assembly())
    top.add('c', comp(**values))
    cases = [{'c.x': float(i % 50), **({'c.y': float(i % 7)} if comp is Paraboloid else {})}
             for i in range(n)]
    top.add('driver', CaseIteratorDriver(cases=cases, sequential=executor is None,
                                         executor=executor))
    top.driver.workflow.add('c')
    top.driver.add_response('c.f_xy' if comp is Paraboloid else 'c.y')
    if comp is not Paraboloid:
        top.driver.add_response('c.pid')
    return top


def outcomes(top: Assembly) -> dict[int, dict[str, Any]]:
    """Case id -> outputs; every case once and ok."""
    results = top.driver.results
    assert all(case.ok for case in results), [case.msg for case in results if not case.ok][:3]
    ids = [case.id for case in results]
    assert len(ids) == len(set(ids))
    return {case.id: case.outputs for case in results}


@pytest.fixture(scope='module')
def cluster() -> Iterator[Any]:
    local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=':0')
    yield local
    local.close()


def test_a_doe_on_a_local_cluster_equals_the_sequential_run(cluster):
    sequential = model(None)
    sequential.run()
    executor = DaskExecutor(cluster)
    try:
        farmed = model(executor)
        farmed.run()
        assert outcomes(farmed) == outcomes(sequential)
        farmed.run()  # a warm executor: the same workers, the runner sent again
        assert outcomes(farmed) == outcomes(sequential)
    finally:
        executor.shutdown()
    assert cluster.scheduler_info['workers']  # the user's cluster is left running


def test_a_sigkilled_worker_costs_nothing(cluster):
    client = distributed.Client(cluster, set_as_default=False)
    try:
        executor = DaskExecutor(client, case_timeout=5.0)
        top = model(executor, 200, Slow, delay=0.02)
        pids = sorted(client.run(os.getpid).values())
        killer = threading.Timer(1.0, os.kill, (pids[0], signal.SIGKILL))
        killer.start()
        try:
            top.run()
        finally:
            killer.cancel()
            executor.shutdown()
        got = outcomes(top)
        assert sorted(got) == list(range(200))
        assert all(got[i]['c.y'] == 2.0 * float(i % 50) for i in got)
        client.wait_for_workers(2, timeout=60)  # the nanny started another
    finally:
        client.close()


def test_the_executor_pickles_with_an_address_only(cluster):
    executor = DaskExecutor(cluster, n_workers=3, connect_timeout=5.0)
    copy = pickle.loads(pickle.dumps(executor))
    assert copy.target == cluster.scheduler_address and copy.n_workers == 3
    assert repr(copy) == f'DaskExecutor({cluster.scheduler_address!r})'


def test_an_unreachable_scheduler_is_named_within_the_timeout():
    executor = DaskExecutor('tcp://127.0.0.1:9', connect_timeout=2.0)
    top = model(executor, 4)
    started = time.monotonic()
    with pytest.raises(BrokenExecutor, match=r"cannot reach the Dask scheduler at "
                                             r"tcp://127.0.0.1:9 within 2 s"):
        top.run()
    assert time.monotonic() - started < 20


def test_a_cluster_without_workers_is_named_after_the_deadline():
    empty = distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=':0')
    try:
        executor = DaskExecutor(empty, workers_timeout=1.0)
        with pytest.raises(BrokenExecutor, match=r'has no worker after 1 s \(workers_timeout\)'):
            model(executor, 4).run()
    finally:
        empty.close()


def test_bad_options_and_a_missing_engine_are_named(monkeypatch):
    with pytest.raises(Exception, match='connect_timeout'):
        DaskExecutor('tcp://x:1', connect_timeout=-1.0)

    def missing() -> Any:
        raise ImportError("DaskExecutor needs dask.distributed (No module named 'distributed'); "
                          "install it with: pip install openmdao_like[dask]")
    monkeypatch.setattr(dask_engine, '_distributed', missing)
    with pytest.raises(ImportError, match=r'pip install openmdao_like\[dask\]'):
        model(DaskExecutor('tcp://x:1'), 2).run()


# -- dask-jobqueue on the test SLURM cluster ----------------------------------------------------
def squeue() -> list[str]:
    done = subprocess.run(['squeue', '-h', '-o', '%i %j %T'], capture_output=True, text=True)
    return done.stdout.split('\n')[:-1]


@pytest.fixture
def slurm_dask(slurm_cluster, tmp_path) -> Iterator[Any]:
    env = [f'export {k}={v}' for k, v in slurm_cluster.env.items()]
    jobs = dask_jobqueue.SLURMCluster(
        cores=1, processes=1, memory='200MB', queue=slurm_cluster.partition,
        walltime='00:10:00', python=sys.executable, job_name='oml-dask',
        job_directives_skip=['--mem'], job_script_prologue=env,
        log_directory=str(tmp_path / 'logs'), scheduler_options={
            'host': '127.0.0.1', 'dashboard_address': None},
        worker_extra_args=['--host', '127.0.0.1'], local_directory=str(tmp_path))
    try:
        yield jobs
    finally:
        jobs.close()
        deadline = time.monotonic() + 30
        while [line for line in squeue() if 'oml-dask' in line] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [line for line in squeue() if 'oml-dask' in line], squeue()


@pytest.mark.slurm
def test_slurm_jobs_run_the_cases_and_a_cancelled_job_costs_nothing(slurm_dask):
    slurm_dask.scale(2)
    with distributed.Client(slurm_dask, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=120)
    sequential = model(None, 120, Slow, delay=0.05)
    sequential.run()
    executor = DaskExecutor(slurm_dask, case_timeout=5.0, workers_timeout=120.0)
    top = model(executor, 120, Slow, delay=0.05)
    def cancel_one() -> bool:
        jobs = [line.split()[0] for line in squeue() if 'oml-dask' in line]
        subprocess.run(['scancel', jobs[0]], check=True)
        return True
    try:
        run_during(top, cancel_one, every=1.0)
    finally:
        executor.shutdown()
    expected = outcomes(sequential)
    got = outcomes(top)
    assert sorted(got) == sorted(expected)
    assert all(got[i]['c.y'] == expected[i]['c.y'] for i in got)


class LockHolder(Slow):
    """Slow, with an input holding whatever it is given (here: a lock, which cannot travel)."""

    lock = Instance(object, iotype='in')


def test_a_model_that_cannot_be_pickled_names_the_variable(cluster):
    top = model(DaskExecutor(cluster), 4, LockHolder)
    top.c.lock = threading.Lock()
    with pytest.raises(TypeError, match=r"c.lock: cannot be pickled to ship the model to "
                                        r"the workers: TypeError: cannot pickle "
                                        r"'_thread.lock'"):
        top.run()
    top.driver.executor.shutdown()


CTRL_C = '''
import sys, time
from dask_jobqueue import SLURMCluster
from openmdao_like.distributed.engines import DaskExecutor
import test_engines_dask as t

cluster = SLURMCluster(cores=1, processes=1, memory='200MB', queue=sys.argv[1],
                       walltime='00:10:00', python=sys.executable, job_name='oml-dask',
                       job_directives_skip=['--mem'], job_script_prologue=sys.argv[2:],
                       scheduler_options={'host': '127.0.0.1', 'dashboard_address': None},
                       worker_extra_args=['--host', '127.0.0.1'])
cluster.scale(2)
top = t.model(DaskExecutor(cluster), 400, t.Slow, delay=0.5)
print('running', flush=True)
top.run()
print('ended', len(top.driver.results), [c.msg for c in top.driver.results if not c.ok][:2])
'''


@pytest.mark.slurm
def test_ctrl_c_of_a_run_leaves_no_job(slurm_cluster, tmp_path):
    env = [f'export {k}={v}' for k, v in slurm_cluster.env.items()]
    script = tmp_path / 'run.py'
    script.write_text(CTRL_C)
    proc = subprocess.Popen([sys.executable, str(script), slurm_cluster.partition, *env],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, **slurm_cluster.env))
    try:
        assert proc.stdout.readline().strip() == 'running'
        deadline = time.monotonic() + 90
        while len([line for line in squeue() if 'oml-dask' in line and 'RUNNING' in line]) < 2:
            assert time.monotonic() < deadline, squeue()
            time.sleep(0.5)
        time.sleep(2.0)  # cases running on both jobs
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        # the run stopped (dask_jobqueue, once imported, turns Ctrl-C into sys.exit())
        assert 'ended' not in out, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 30
    while [line for line in squeue() if 'oml-dask' in line] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [line for line in squeue() if 'oml-dask' in line], squeue()
