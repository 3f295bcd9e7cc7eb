"""MPI: components whose execute uses COMM_WORLD collectives, served by object servers that
`MPIAllocator` starts under ``mpiexec -n N`` (MPICH from the mpich wheel; oversubscribing the
2 cores is fine) or ``srun --mpi=pmi2 -n N`` inside a SLURM allocation: every rank runs each
run and each case, failures on any rank are reported, and no rank outlives its object."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from openmdao_like import Assembly, set_as_top
from openmdao_like.drivers import CaseIteratorDriver
from openmdao_like.drivers.caseiter import ModelCaseRunner
from openmdao_like.errors import RemoteError
from openmdao_like.remote import codec
from openmdao_like.resources.launchers import default_mpiexec
from openmdao_like.resources.mpi import MPIAllocator

from mpi_models import RankSum
from remote_servers import TESTS, pid_alive

pytestmark = pytest.mark.mpi

#: What a test may wait for processes to end (they end at once; this only bounds a failure).
WAIT = 60.0


def mpi_desc(cpus: int) -> dict[str, Any]:
    """An MPI job of ``cpus`` ranks whose servers can import tests/mpi_models.py."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get('PYTHONPATH')]))
    return {'job_category': 'MPI', 'min_cpus': cpus, 'job_environment': {'PYTHONPATH': path}}


def processes_below(directory: str | Path) -> dict[int, str]:
    """Pid -> command line of the live processes working below ``directory`` (servers,
    mpiexec, hydra proxies and MPI ranks all work in their server's or object's directory)."""
    root = os.path.realpath(directory)
    found = {}
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / 'cwd')
            cmdline = (entry / 'cmdline').read_bytes().replace(b'\0', b' ').decode().strip()
        except OSError:
            continue
        if (cwd == root or cwd.startswith(root + os.sep)) and pid_alive(int(entry.name)):
            found[int(entry.name)] = cmdline
    return found


def shared_memory_files(pid: int) -> set[str]:
    """The files in /dev/shm that process ``pid`` maps and that would outlive it."""
    with open(f'/proc/{pid}/maps') as maps:
        paths = {line.split(None, 5)[5].strip() for line in maps if '/dev/shm/' in line}
    return {path for path in paths if not path.endswith('(deleted)')}


def wait_until(check: Callable[[], Any], what: str) -> Any:
    """Poll ``check`` until it returns something true (a bounded wait, never a timing claim)."""
    deadline = time.monotonic() + WAIT
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f'{what}: still not so after {WAIT:g} s'
            return result
        time.sleep(0.05)


def deploy(allocator: MPIAllocator, cpus: int) -> Any:
    """A server of ``allocator`` for ``cpus`` ranks (it must be available now)."""
    desc = mpi_desc(cpus)
    estimate, criteria = allocator.time_estimate(desc)
    assert estimate == 0, criteria
    return allocator.deploy(f'mpi-{cpus}', desc, criteria)


@pytest.fixture
def allocator(tmp_path: Path) -> Iterator[MPIAllocator]:
    """An MPIAllocator with 4 CPUs whose servers work below tmp_path; all released after."""
    mpi = MPIAllocator(total_cpus=4, workdir=str(tmp_path))
    try:
        yield mpi
    finally:
        mpi.shutdown()
        wait_until(lambda: not processes_below(tmp_path), 'every process ended at shutdown')


def test_mpi_program_under_mpiexec(tmp_path: Path) -> None:
    program = tmp_path / 'allreduce.py'
    program.write_text('from mpi4py import MPI\n'
                       'comm = MPI.COMM_WORLD\n'
                       'rank = comm.Get_rank()\n'
                       'seen = comm.gather((rank, comm.allreduce(rank + 1)))\n'
                       'if seen:\n'
                       '    print(comm.Get_size(), seen)\n')  # one writer: lines never interleave
    done = subprocess.run([default_mpiexec(), '-n', '2', sys.executable, str(program)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == '2 [(0, 3), (1, 3)]\n'


@pytest.mark.parametrize('cpus', [2, 3])
def test_component_runs_on_every_rank(allocator: MPIAllocator, cpus: int) -> None:
    server = deploy(allocator, cpus)
    assert allocator.server_info(server)['cpus'] == cpus
    busy, why = allocator.time_estimate(mpi_desc(4 - cpus + 1))
    assert busy == -1 and f'{cpus} of the 4 CPUs' in why['reason']

    comp = server.create('mpi_models.RankSum')
    comp.x = 2.0
    comp.run()
    assert (comp.size, comp.total) == (cpus, 2.0 * cpus * (cpus + 1) / 2)
    comp.x = 5.0  # the new input reaches every rank
    comp.run()
    assert comp.total == 5.0 * cpus * (cpus + 1) / 2

    below = processes_below(comp.remote_directory)
    ranks = [pid for pid, cmd in below.items() if 'serve_object' in cmd and 'mpiexec' not in cmd]
    assert len(ranks) == cpus, below
    assert any('hydra_pmi_proxy' in cmd for cmd in below.values()), below
    assert not [path for pid in ranks for path in shared_memory_files(pid)]
    server.release(comp)
    wait_until(lambda: not processes_below(comp.remote_directory), 'no rank, proxy, mpiexec left')
    allocator.release(server)
    assert allocator.time_estimate(mpi_desc(4))[0] == 0


@pytest.mark.parametrize('link', ['rpush', 'rpull'])
def test_values_from_peers_reach_every_rank(allocator: MPIAllocator, link: str) -> None:
    server = deploy(allocator, 2)

    class Pair(Assembly):
        def configure(self) -> None:
            self.add('a', server.create('mpi_models.RankSum'))
            self.add('b', server.create('mpi_models.RankSum'))
            self.connect('a.total', 'b.x', link=link)  # server to server: 'receive' / 'fetch'
            self.driver.workflow.add(['a', 'b'])

    top = set_as_top(Pair())
    for x, expected in ((1.0, 9.0), (2.0, 18.0)):  # a rank left with x = 1.0 would miss it
        top.a.x = x
        top.run()
        assert (top.a.total, top.b.total) == (3 * x, expected)


def test_failure_on_one_rank(allocator: MPIAllocator) -> None:
    server = deploy(allocator, 2)
    comp = server.create('mpi_models.RankSum')

    comp.fail_rank = 1  # after the allreduce: rank 0 finishes, rank 1's error is reported
    with pytest.raises(ZeroDivisionError, match='rank 1 of 2: rank 1 divides by zero after'):
        comp.run()
    comp.fail_rank, comp.x = -1, 3.0
    comp.run()
    assert comp.total == 9.0

    comp.fail_rank, comp.fail_before = -2, True  # every rank raises: nobody waits
    with pytest.raises(ZeroDivisionError, match='rank 0 divides by zero before') as failed:
        comp.run()
    assert 'rank 1 of 2 failed too' in failed.value.remote_traceback
    comp.fail_rank = -1
    comp.run()
    assert comp.total == 9.0

    comp.fail_rank = 1  # before the allreduce: rank 0 waits in it for good
    with pytest.raises(RemoteError) as broken:
        comp.run()
    for part in ('rank 1 of 2 failed (ZeroDivisionError: rank 1 divides by zero before',
                 'rank(s) 0 did not finish', 'aborted'):
        assert part in str(broken.value)
    wait_until(lambda: not processes_below(comp.remote_directory), 'the aborted ranks ended')
    with pytest.raises(RemoteError, match='connection'):
        comp.run()
    server.release(comp)

    again = server.create('mpi_models.RankSum')  # the server itself is not hung
    again.run()
    assert again.total == 3.0


def test_ranks_end_when_the_server_dies(allocator: MPIAllocator) -> None:
    server = deploy(allocator, 2)
    comp = server.create('mpi_models.RankSum')
    comp.run()
    assert comp.size == 2
    assert len(processes_below(comp.remote_directory)) == 4  # mpiexec, its proxy, 2 ranks
    os.kill(allocator.server_info(server)['pid'], signal.SIGKILL)
    wait_until(lambda: not processes_below(comp.remote_directory), 'no rank left after kill -9')
    allocator.release(server)


def test_case_runner_runs_each_case_on_every_rank(allocator: MPIAllocator) -> None:
    top = set_as_top(Assembly())
    top.add('comp', RankSum())
    top.add('driver', CaseIteratorDriver(cases=[]))
    top.driver.workflow.add('comp')
    top.driver.add_response('comp.total')
    top.driver.add_response('comp.size')
    server = deploy(allocator, 2)
    obj_id, conn = server.start_runner(ModelCaseRunner(top.driver))
    try:
        cases = [(0, {'comp.x': 1.0}), (1, {'comp.x': 2.0}),
                 (2, {'comp.x': 4.0, 'comp.fail_rank': 1}),
                 (3, {'comp.x': 3.0, 'comp.fail_rank': -1})]
        outcomes = codec.unpack(conn.call('run_cases', codec.pack(cases)))
    finally:
        conn.close()
        server.release_object(obj_id)
    ids, outputs, status, errors = zip(*(outcome[:4] for outcome in outcomes))
    assert ids == (0, 1, 2, 3) and status == ('ok', 'ok', 'failed', 'ok')
    assert [outputs[i] for i in (0, 1, 3)] == [{'comp.total': 3.0, 'comp.size': 2},
                                               {'comp.total': 6.0, 'comp.size': 2},
                                               {'comp.total': 9.0, 'comp.size': 2}]
    assert math.isnan(outputs[2]['comp.total'])
    assert errors[2].startswith('rank 1 of 2: ') and 'rank 1 divides by zero after' in errors[2]


def test_refusals_and_bad_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    mpi = MPIAllocator(total_cpus=2)
    estimate, criteria = mpi.time_estimate({'min_cpus': 2})
    assert estimate == -2 and "'MPI' jobs only, not None" in criteria['refused']['job_category']
    estimate, criteria = mpi.time_estimate({'job_category': 'MPI', 'min_cpus': 3})
    assert estimate == -2 and 'has 2 CPUs, 3 were asked for' in criteria['refused']['min_cpus']
    assert mpi.max_servers({'job_category': 'MPI', 'min_cpus': 1}) == 2
    with pytest.raises(ValueError, match="min_cpus must be a positive integer, got 'two'"):
        mpi.time_estimate({'job_category': 'MPI', 'min_cpus': 'two'})
    with pytest.raises(ValueError, match="launcher must be 'mpiexec', 'srun' .* got 'ssh'"):
        MPIAllocator(launcher='ssh')
    with pytest.raises(ValueError, match='total_cpus must be a positive integer, got 0'):
        MPIAllocator(total_cpus=0)
    monkeypatch.delenv('SLURM_JOB_ID', raising=False)
    with pytest.raises(ValueError, match="'srun' .* SLURM_JOB_ID is not set"):
        MPIAllocator(launcher='srun')
    monkeypatch.setenv('SLURM_JOB_ID', '1')
    with pytest.raises(ValueError, match="mpiexec='/bin/mpiexec' applies to launcher='mpiexec'"):
        MPIAllocator(launcher='srun', mpiexec='/bin/mpiexec')


@pytest.mark.slurm
def test_component_under_srun(slurm_cluster: Any, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    job = slurm_cluster.submit('-n', '2', '-J', 'mpi-allocation', '-o', str(tmp_path / 'job.out'),
                               script='#!/bin/sh\nexec sleep 600\n')
    try:
        wait_until(lambda: slurm_cluster.job_state(job) == 'RUNNING', 'the allocation runs')
        monkeypatch.setenv('SLURM_JOB_ID', job)  # as inside salloc / sbatch
        mpi = MPIAllocator(launcher='srun', total_cpus=2, workdir=str(tmp_path / 'servers'))
        try:
            server = deploy(mpi, 2)
            assert mpi.server_info(server)['launcher'] == 'srun'
            comp = server.create('mpi_models.RankSum')
            for x in (2.0, 3.0):
                comp.x = x
                comp.run()
                assert (comp.size, comp.total) == (2, 3 * x)
            tasks = [cmd for cmd in processes_below(comp.remote_directory).values()
                     if 'serve_object' in cmd and not cmd.startswith('srun')]
            assert len(tasks) == 2, tasks
            server.release(comp)
            wait_until(lambda: not processes_below(comp.remote_directory), 'no task left')

            again = server.create('mpi_models.RankSum')
            again.run()
            # the server dies: rank 0 aborts the step (srun alone would wait for every task)
            os.kill(mpi.server_info(server)['pid'], signal.SIGKILL)
            wait_until(lambda: not processes_below(again.remote_directory),
                       'no task left after kill -9 of the server')
        finally:
            mpi.shutdown()
    finally:
        subprocess.run(['scancel', job], capture_output=True)
        slurm_cluster.wait_ended(job)
