"""The MPI case farm: ``mpiexec -n N python -m openmdao_like.mpi MODEL`` run for real (the mpich
wheel's hydra, oversubscribing the 2 cores), its results compared case by case with the
sequential run of the same model; losses (a client killed, a case that hangs, rank 0 killed)
leave every case recorded and no process behind; bad sizes and inputs give clear errors; the
same farm inside a SLURM batch job; `MPIFarmExecutor` as an object."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import openmdao_like
from openmdao_like.distributed import MPIFarmExecutor
from openmdao_like.distributed.mpi import FarmError
from openmdao_like.drivers import CaseIteratorDriver
from openmdao_like.errors import OpenMDAOLikeError
from openmdao_like.mpi import farm_drivers
from openmdao_like.recorders import read_cases
from openmdao_like.resources.launchers import default_mpiexec

import mpi_farm_models
from remote_servers import pid_alive
from test_resources_mpi import processes_below

pytestmark = pytest.mark.mpi

TESTS = Path(__file__).resolve().parent
#: Longest a farm run may take here before the test calls it hung (a bound, not a timing).
RUN_TIMEOUT = 120.0


def farm_env() -> dict[str, str]:
    """The test environment with tests/ on PYTHONPATH (the ranks import mpi_farm_models)."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get('PYTHONPATH')]))
    return dict(os.environ, PYTHONPATH=path)


def farm_command(n: int, *args: str, model: str = 'model.py',
                 cleanup: bool = True) -> list[str]:
    """``mpiexec -n n python -m openmdao_like.mpi model args``; without ``cleanup``, hydra
    lets the other ranks go on when one dies (``-disable-auto-cleanup``)."""
    launcher = [default_mpiexec()] + ([] if cleanup else ['-disable-auto-cleanup'])
    return [*launcher, '-n', str(n), sys.executable, '-m', 'openmdao_like.mpi', model, *args]


def run_farm(directory: Path, n: int, *args: str, **kw: Any) -> subprocess.CompletedProcess:
    """Run a farm in ``directory`` to its end; afterwards no process works there."""
    try:
        return subprocess.run(farm_command(n, *args, **kw), cwd=directory, env=farm_env(),
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)
    finally:
        wait_gone(directory)


def wait_gone(directory: Path, timeout: float = 30.0) -> None:
    """Wait (bounded) until no process works below ``directory``; fail naming those left."""
    deadline = time.monotonic() + timeout
    while processes_below(directory):
        if time.monotonic() > deadline:
            left = processes_below(directory)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            pytest.fail(f'processes left below {directory}: {left}')
        time.sleep(0.05)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it gives something true (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f'{what}: not so after {timeout:g} s'
        time.sleep(0.02)


def write_model(directory: Path, call: str = 'doe_model()') -> None:
    (directory / 'model.py').write_text(f'from mpi_farm_models import {call.split("(")[0]}\n'
                                        f'top = {call}\n')


def sequential_cases(directory: Path, **settings: Any) -> list[dict[str, Any]]:
    """The cases of `mpi_farm_models.doe_model` run in this process, one by one."""
    path = directory / 'sequential.jsonl'
    top = mpi_farm_models.doe_model(record=str(path))
    for name, value in settings.items():
        top.set(name, value)
    top.run()
    return read_cases(path)


def same_results(farm: list[dict], sequential: list[dict]) -> None:
    """Case by case: the same ids, inputs, status and f."""
    assert len(farm) == len(sequential) == 200
    for got, want in zip(farm, sequential):
        assert (got['id'], got['c.x'], got['c.y'], got['status']) == \
            (want['id'], want['c.x'], want['c.y'], want['status'])
        assert got['c.f'] == want['c.f'], got


def ranks_of(mask: int) -> list[int]:
    return [rank for rank in range(mask.bit_length()) if mask >> rank & 1]


# -- runs -------------------------------------------------------------------------------------
def test_doe_on_the_farm_equals_the_sequential_run(tmp_path: Path) -> None:
    write_model(tmp_path)
    done = run_farm(tmp_path, 5)
    assert done.returncode == 0, done.stderr
    cases = read_cases(tmp_path / 'cases.jsonl')
    same_results(cases, sequential_cases(tmp_path))
    assert {case['c.size'] for case in cases} == {1}
    assert len({case['c.pid'] for case in cases}) > 1  # the cases were shared out
    assert {r for case in cases for r in ranks_of(case['c.ranks'])} <= {1, 2, 3, 4}  # not 0
    for line in ('cases', 'total', '200', 'JSONRecorder'):
        assert line in done.stdout


def test_a_farm_run_is_recorded_in_the_job_store(tmp_path: Path) -> None:
    """--store: each case is in the job store as it ends; the run resumes with nothing to do
    (and through the executor it was saved with, not the farm's)."""
    from openmdao_like.jobs import JobStore
    write_model(tmp_path)
    url = f'sqlite:///{tmp_path / "runs.db"}'
    done = run_farm(tmp_path, 3, '--store', url)
    assert done.returncode == 0, done.stderr
    run_id = re.search(r'^run (\S+) in ', done.stderr, re.MULTILINE).group(1)
    counts = JobStore(url).counts(run_id)
    assert counts['COMPLETED'] == 200 and sum(counts.values()) == 200, counts
    resumed = subprocess.run([sys.executable, '-m', 'openmdao_like.cli.main', 'run', '--resume',
                              run_id, '--store', url, '-q'], cwd=tmp_path, env=farm_env(),
                             capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr
    assert '200 case(s) COMPLETED are not run again' in resumed.stderr


def test_groups_of_two_run_each_case_on_both_ranks(tmp_path: Path) -> None:
    write_model(tmp_path)
    done = run_farm(tmp_path, 5, '--procs-per-case', '2')
    assert done.returncode == 0, done.stderr
    cases = read_cases(tmp_path / 'cases.jsonl')
    same_results(cases, sequential_cases(tmp_path))
    for case in cases:  # an allreduce over self.comm: both ranks of one group ran it
        assert case['c.size'] == 2
        assert ranks_of(case['c.ranks']) in ([1, 2], [3, 4])
        assert case['c.total'] == pytest.approx(2 * case['c.f'])
    assert {case['c.ranks'] for case in cases} == {0b110, 0b11000}  # both groups served


def test_a_case_failing_on_one_rank_of_its_group(tmp_path: Path) -> None:
    write_model(tmp_path)
    done = run_farm(tmp_path, 3, '--procs-per-case', '2', '--set', 'c.fail_rank=1',
                    '--set', 'c.fail_x=1.0', '--set', 'c.fail_y=-1.0')
    assert done.returncode == 0, done.stderr
    cases = read_cases(tmp_path / 'cases.jsonl')
    failed = [case for case in cases if case['status'] != 'ok']
    assert [(case['c.x'], case['c.y']) for case in failed] == [(1.0, -1.0)]
    error = failed[0]['error']
    assert error.startswith('rank 1 of 2: ') and 'Traceback' in error
    assert 'ZeroDivisionError: rank 1 of its group divides by zero' in error
    assert all(case['status'] == 'ok' and case['c.size'] == 2 for case in cases
               if case is not failed[0])
    assert failed[0]['id'] < cases[-1]['id']  # cases after it ran on the same group
    assert 'failed cases' in done.stdout and 'rank 1 of its group divides by zero' in done.stdout


def test_population_optimizer_runs_its_populations_on_the_farm(tmp_path: Path) -> None:
    write_model(tmp_path, 'optimizer_model()')
    done = run_farm(tmp_path, 3)
    assert done.returncode == 0, done.stderr
    here = mpi_farm_models.optimizer_model()  # the same populations, in worker processes here
    here.driver.sequential = False
    here.driver.executor = openmdao_like.execution.LocalExecutor(n_workers=2)
    try:
        here.run()
    finally:
        here.driver.executor.shutdown()
    assert "driver 'driver' (ScipyOptimizer)" in done.stdout
    value = next(line.split()[1] for line in done.stdout.splitlines()
                 if line.startswith('c.f ') or line.startswith('c.f\t'))
    assert float(value) == pytest.approx(here.c.f)


def test_two_case_drivers_share_the_farm(tmp_path: Path) -> None:
    write_model(tmp_path, 'two_drivers_model()')
    done = run_farm(tmp_path, 3)
    assert done.returncode == 0, done.stderr
    cases = read_cases(tmp_path / 'cases.jsonl')
    for name, y in (('first', 1.0), ('second', 2.0)):
        mine = [case for case in cases if case['driver'] == name]
        assert [case['c.f'] for case in mine] == [(x - 1.0) ** 2 + x * y for x in range(30)]
        assert {case['status'] for case in mine} == {'ok'}


# -- losses -----------------------------------------------------------------------------------
def start_farm(directory: Path, n: int, *args: str, **kw: Any) -> subprocess.Popen:
    return subprocess.Popen(farm_command(n, *args, **kw), cwd=directory, env=farm_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f'the farm did not end within {RUN_TIMEOUT:g} s:\n{out}\n{err}')


def pids_in(directory: Path) -> list[int]:
    return sorted(int(name) for name in os.listdir(directory))


def start_noting_pids(directory: Path) -> tuple[Path, subprocess.Popen]:
    """A farm of 5 ranks (hydra lets the others go on when one dies) running 0.1 s cases whose
    client ranks note their pids in ``directory/pids``; that directory and the farm."""
    write_model(directory)
    pids = directory / 'pids'
    pids.mkdir()
    return pids, start_farm(directory, 5, '--set', 'c.delay=0.1', '--set',
                            f'c.pid_dir={pids}', cleanup=False)


#: Farms tried when MPICH's launcher tears the whole job down after the kill (see below).
KILL_ATTEMPTS = 3


def kill_a_client(directory: Path) -> tuple[int, str, str]:
    """Run a farm in ``directory`` and SIGKILL one of its clients once all four ran cases;
    the victim's pid and what the farm printed."""
    pids, proc = start_noting_pids(directory)
    try:
        victim = wait_for(lambda: len(pids_in(pids)) == 4 and pids_in(pids)[0],
                          'the four clients ran cases')
        os.kill(victim, signal.SIGKILL)
        out, err = finish(proc)
    finally:
        proc.kill()
        wait_gone(directory)
    return victim, out, err


def test_a_client_killed_mid_run_loses_no_case(tmp_path: Path) -> None:
    # With -disable-auto-cleanup hydra usually lets the other ranks go on, but on a loaded
    # machine it sometimes kills them all at once (rank 0 never reports): that farm proves
    # nothing about ours, so another is run. A farm whose rank 0 ended must have lost no case.
    torn_down = []
    for attempt in range(KILL_ATTEMPTS):
        directory = tmp_path / f'attempt{attempt}'
        directory.mkdir()
        victim, out, err = kill_a_client(directory)
        if 'total' in out:
            break
        torn_down.append(f'attempt {attempt}: {out}\n{err}')
    else:
        pytest.fail(f'hydra ended the whole job after the kill {KILL_ATTEMPTS} times:\n'
                    + '\n'.join(torn_down))
    # hydra ends the job with the killed rank's status once the others finalized: the exit
    # status says a rank was killed, the results are complete all the same
    assert f'(pid {victim}) of MPIFarmExecutor(procs_per_case=1) closed its connection' in err
    cases = read_cases(directory / 'cases.jsonl')
    assert len(cases) == 200, f'{len(cases)} cases recorded; the farm said:\n{out}\n{err}'
    same_results(cases, sequential_cases(directory))
    assert {case['status'] for case in cases} == {'ok'}


def test_a_hung_case_is_sent_again_and_the_hung_rank_is_ended(tmp_path: Path) -> None:
    write_model(tmp_path)
    done = run_farm(tmp_path, 5, '--case-timeout', '2', '--set', f'c.hang_dir={tmp_path}',
                    '--set', 'c.hang_x=0.0526315789473684', '--set', 'c.hang_y=-0.1111111111111111')
    hung = int((tmp_path / 'hung').read_text())
    cases = read_cases(tmp_path / 'cases.jsonl')
    same_results(cases, sequential_cases(tmp_path))
    assert {case['status'] for case in cases} == {'ok'}
    assert 'ran longer than case_timeout=2 s; sending 1 case(s) again' in done.stderr
    said = f'exit status {done.returncode}; stdout:\n{done.stdout}\nstderr:\n{done.stderr}'
    assert f'(pid {hung})' in done.stderr and 'did not end within' in done.stderr, said
    assert done.returncode != 0  # rank 0 aborted the job to end the hung rank
    assert 'total' in done.stdout  # printed before the abort; RUN_TIMEOUT << HANG: the farm
    # never waited for the hung case


def test_clients_end_when_the_server_dies(tmp_path: Path) -> None:
    pids, proc = start_noting_pids(tmp_path)
    try:
        clients = wait_for(lambda: len(pids_in(pids)) == 4 and pids_in(pids),
                           'every client ran cases')
        ranks = [pid for pid, cmd in processes_below(tmp_path).items()
                 if 'openmdao_like.mpi' in cmd and 'mpiexec' not in cmd]
        server = [pid for pid in ranks if pid not in clients]
        assert len(server) == 1, (ranks, clients)
        os.kill(server[0], signal.SIGKILL)
        wait_for(lambda: not any(map(pid_alive, clients)),
                 'every client ended after rank 0 was killed', timeout=10.0)  # the requirement
        _out, err = finish(proc)
    finally:
        proc.kill()
        wait_gone(tmp_path)
    assert 'the farm server (rank 0) closed the connection' in err


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize('launch', ['mpiexec -n 1', 'no launcher'])
def test_one_rank_is_refused(tmp_path: Path, launch: str) -> None:
    write_model(tmp_path)
    command = farm_command(1) if launch != 'no launcher' else \
        [sys.executable, '-m', 'openmdao_like.mpi', 'model.py']
    done = subprocess.run(command, cwd=tmp_path, env=farm_env(), capture_output=True,
                          text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 2
    assert 'needs at least 2 ranks (K+1 with --procs-per-case K), got 1' in done.stderr
    assert not (tmp_path / 'cases.jsonl').exists()


def test_ranks_that_do_not_make_whole_groups_are_refused(tmp_path: Path) -> None:
    write_model(tmp_path)
    done = run_farm(tmp_path, 4, '--procs-per-case', '2')
    assert done.returncode == 2
    assert ('3 client ranks (all but rank 0 of 4) cannot be split into groups of '
            '--procs-per-case 2: 3 is not a multiple of 2 (use 3 or 5 ranks)') in done.stderr
    assert done.stderr.count('error:') == 1  # said once, by rank 0


def test_a_model_without_case_driver_runs_on_rank_0(tmp_path: Path) -> None:
    (tmp_path / 'model.py').write_text(
        'from openmdao_like import Assembly, set_as_top\n'
        'from mpi_farm_models import Probe\n'
        'top = set_as_top(Assembly())\n'
        'top.add("c", Probe(x=3.0, y=1.0))\n'
        'top.driver.workflow.add("c")\n'
        'for name in ("c.f", "c.size", "c.ranks"):\n'
        '    top.driver.add_response(name)\n')
    done = run_farm(tmp_path, 3)
    assert done.returncode == 0, done.stderr
    rows = dict(line.split()[:2] for line in done.stdout.splitlines()
                if line.startswith(('c.f ', 'c.size ', 'c.ranks ')))
    assert rows == {'c.f': '7', 'c.size': '1', 'c.ranks': '1'}  # COMM_SELF on rank 0
    assert 'has no case-running driver: it runs on rank 0 alone' in done.stderr


def test_bad_options_and_help_need_no_mpi(tmp_path: Path) -> None:
    command = [sys.executable, '-m', 'openmdao_like.mpi']
    done = subprocess.run([*command, '--help'], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and '--procs-per-case K' in done.stdout
    done = subprocess.run([*command, 'm.py', '--procs-per-case', '0'], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and 'expected an integer >= 1, got 0' in done.stderr
    done = subprocess.run([*command, 'm.py', '--case-timeout', '-1'], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and 'expected a number > 0, got -1' in done.stderr


def test_a_missing_model_file_ends_every_rank(tmp_path: Path) -> None:
    done = run_farm(tmp_path, 3, model='missing.py')
    assert done.returncode == 2
    assert "no such file: 'missing.py'" in done.stderr


# -- under SLURM ------------------------------------------------------------------------------
@pytest.mark.slurm
def test_the_farm_in_a_slurm_batch_job(slurm_cluster: Any, tmp_path: Path) -> None:
    write_model(tmp_path)
    tmp_path.chmod(0o755)
    script = (f'#!/bin/sh\ncd {tmp_path}\n'
              f'export PYTHONPATH={farm_env()["PYTHONPATH"]}\n'
              f'exec {" ".join(farm_command(3))}\n')
    job = slurm_cluster.submit('-n', '2', '-J', 'mpi-farm', '-o', str(tmp_path / 'job.out'),
                               script=script)
    try:
        state = slurm_cluster.wait_ended(job, timeout=RUN_TIMEOUT)
    finally:
        subprocess.run(['scancel', job], capture_output=True)
    output = (tmp_path / 'job.out').read_text()
    assert state == 'COMPLETED', output
    same_results(read_cases(tmp_path / 'cases.jsonl'), sequential_cases(tmp_path))
    assert 'total' in output
    wait_gone(tmp_path)


# -- the executor as an object ----------------------------------------------------------------
def test_the_executor_outside_a_farm_is_refused() -> None:
    top = mpi_farm_models.doe_model(nx=2, ny=2, record=os.devnull)
    top.driver.sequential = False
    top.driver.executor = MPIFarmExecutor()
    with pytest.raises(FarmError, match=r'not rank 0 of an MPI case farm; start the model '
                                        r'with `mpiexec -n N python -m openmdao_like.mpi'):
        top.run()
    assert isinstance(FarmError('x'), (OpenMDAOLikeError, RuntimeError))


def test_the_executor_on_a_client_rank_is_refused(tmp_path: Path) -> None:
    write_model(tmp_path, 'nested_model()')
    done = run_farm(tmp_path, 3)
    assert done.returncode == 0, done.stderr
    cases = read_cases(tmp_path / 'cases.jsonl')
    assert [case['status'] for case in cases] == ['failed', 'failed']
    for case in cases:  # the outer cases ran on rank 1 or 2, where the inner driver started
        assert 'FarmError' in case['error']
        assert 'of the MPI case farm, a client that runs cases; only rank 0' in case['error']


def test_the_executor_is_created_by_entry_point() -> None:
    executor = openmdao_like.create('openmdao_like.distributed.MPIFarmExecutor',
                                    procs_per_case=2, case_timeout=30.0, max_resubmits=2)
    assert isinstance(executor, MPIFarmExecutor)
    assert (executor.procs_per_case, executor.case_timeout, executor.max_resubmits) == \
        (2, 30.0, 2)
    assert executor.n_workers == 1 and not executor.running
    with pytest.raises(TypeError, match="MPIFarmExecutor: unknown option 'procs_per_cases'.*"
                                        "did you mean 'procs_per_case'"):
        MPIFarmExecutor(procs_per_cases=2)
    with pytest.raises(ValueError, match='procs_per_case'):
        MPIFarmExecutor(procs_per_case=0)


def test_farm_drivers_are_the_case_drivers_run_on_rank_0() -> None:
    from openmdao_like import Assembly, set_as_top
    from openmdao_like.drivers import FixedPointIterator, PymooDriver, ScipyOptimizer
    top = set_as_top(Assembly())
    top.add('c', mpi_farm_models.Probe())
    top.add('doe', CaseIteratorDriver(cases=[]))
    top.add('inner', CaseIteratorDriver(cases=[]))  # inside doe's cases: runs on the clients
    top.doe.workflow.add('inner')
    top.inner.workflow.add('c')
    top.add('slsqp', ScipyOptimizer(method='SLSQP'))  # one point at a time: stays on rank 0
    top.slsqp.workflow.add('c')
    top.add('de', ScipyOptimizer(method='differential_evolution'))
    top.de.workflow.add('c')
    top.add('loop', FixedPointIterator())  # not a case driver: its workflow is searched
    top.add('nsga', PymooDriver(pop_size=4, n_gen=2))  # found by its options, as the others
    top.nsga.workflow.add('c')
    top.add('sub', Assembly())
    top.sub.add('d', mpi_farm_models.Probe())
    top.sub.add('driver', CaseIteratorDriver(cases=[]))
    top.sub.driver.workflow.add('d')
    top.loop.workflow.add(['sub'])
    top.driver_workflow = ['doe', 'slsqp', 'de', 'loop', 'nsga']
    found = farm_drivers(top)
    assert [d.get_pathname() for d in found] == ['doe', 'de', 'sub.driver', 'nsga']
