"""The 200-case DOE through RAMExecutor on each kind of cluster allocator — SSH hosts, SLURM
jobs, PBS jobs, MPI servers — gives the sequential run's results; a SLURM job cancelled and the
SSH connections dropped mid-run still leave every case recorded, and nothing behind."""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from openmdao_like import Assembly, set_as_top
from openmdao_like.cases import Case
from openmdao_like.distributed import RAMExecutor
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import LatinHypercube
from openmdao_like.recorders import SQLiteRecorder, read_cases
from openmdao_like.resources.cluster import ClusterAllocator
from openmdao_like.resources.manager import ResourceAllocationManager
from openmdao_like.resources.mpi import MPIAllocator
from openmdao_like.resources.pbs import PBSAllocator
from openmdao_like.resources.slurm import SlurmAllocator

from ram_models import Probe, eventually, leftovers

TESTS = Path(__file__).resolve().parent
#: The servers import the test components from this directory.
ENV = {'PYTHONPATH': os.pathsep.join(filter(None, [str(TESTS), os.environ.get('PYTHONPATH')]))}
CASES = 200


def doe_model(**options: Any) -> Assembly:
    """A Probe run by a DOEDriver over 200 Latin hypercube cases, a tenth of which fail in the
    model (x > 8), every case retried at most once."""
    top = set_as_top(Assembly())
    top.add('p', Probe())
    top.add('driver', DOEDriver(LatinHypercube(num_samples=CASES, seed=5), error_policy='RETRY',
                                max_retries=1, **options))
    top.driver.add_parameter('p.x', low=-10.0, high=10.0)
    top.driver.add_parameter('p.y', low=0.0, high=20.0)
    top.driver.workflow.add('p')
    top.driver.add_response('p.f_xy')
    top.p.x_limit = 8.0
    return top


@pytest.fixture(scope='module')
def serial() -> list[Case]:
    """The sequential run's cases."""
    top = doe_model()
    top.run()
    return top.driver.results


def run_on(ram: ResourceAllocationManager, res_desc: dict[str, Any], record: Path,
           max_chunk: int | None = None, **probe: Any) -> list[Case]:
    """The DOE run on two servers of ``ram`` (``probe``: Probe inputs to set), recorded in
    ``record``; its cases, after checking the record holds every one."""
    # a user's executor stays warm until shut down: the with block ends it after the run
    with RAMExecutor(res_desc=dict(res_desc, job_environment=ENV), max_servers=2,
                     ram=ram) as executor:
        if max_chunk is not None:
            executor.max_chunk = max_chunk  # a lost server had one case: that case is retried
        top = doe_model(sequential=False, executor=executor)
        for name, value in probe.items():
            setattr(top.p, name, value)
        top.recorders = [SQLiteRecorder(record)]
        top.run()
    rows = read_cases(record)
    assert [(r['id'], r['status']) for r in rows] == [(c.id, c.status)
                                                      for c in top.driver.results]
    return top.driver.results


def assert_same(ours: list[Case], theirs: list[Case]) -> None:
    """Every case as in the sequential run (but for times and retries)."""
    assert [c.id for c in ours] == list(range(CASES))
    assert 5 < [c.status for c in theirs].count('failed') < 50
    for mine, other in zip(ours, theirs):
        assert (mine.inputs, mine.status) == (other.inputs, other.status)
        if mine.ok:
            assert mine.outputs == other.outputs
        else:
            assert math.isnan(mine.outputs['p.f_xy'])
            assert mine.error.splitlines()[-1] == other.error.splitlines()[-1]


def released(ram: ResourceAllocationManager) -> None:
    """Every server of ``ram`` was given back."""
    for allocator in ram.list_allocators():
        assert eventually(lambda: allocator.in_use == 0), \
            f'{allocator.name}: {allocator.in_use} servers still in use'


def nothing_left(workdir: Path) -> None:
    """No directory of a server or job is left in ``workdir``, and no process running there."""
    assert eventually(lambda: not leftovers(workdir)), leftovers(workdir)


# -- SSH --------------------------------------------------------------------------------------
@pytest.fixture
def ssh_ram(sshd_hosts) -> Iterator[tuple[ResourceAllocationManager, Path]]:
    """A RAM of a ClusterAllocator over the two sshd hosts, its servers' directories in a fresh
    directory the test user may write; afterwards no process of that user and no directory is
    left."""
    workdir = Path(tempfile.mkdtemp(prefix='oml-ram-ssh-'))
    workdir.chmod(0o777)
    allocator = ClusterAllocator('SSH', sshd_hosts.hosts, port=sshd_hosts.port,
                                 user=sshd_hosts.user, key_filename=sshd_hosts.key_filename,
                                 known_hosts=sshd_hosts.known_hosts, python=sshd_hosts.python,
                                 method='round-robin', workdir=str(workdir))
    ram = ResourceAllocationManager([allocator])
    try:
        yield ram, workdir
        released(ram)
        assert eventually(lambda: not sshd_hosts.user_processes(sessions=False)), \
            sshd_hosts.user_processes(sessions=False)
        nothing_left(workdir)
    finally:
        ram.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.ssh
def test_doe_on_ssh_hosts_equals_the_sequential_run(ssh_ram, serial, tmp_path):
    ram, _ = ssh_ram
    assert_same(run_on(ram, {}, tmp_path / 'cases.sqlite'), serial)


class DroppingRecorder(SQLiteRecorder):
    """Cuts every SSH connection from the server side when asked to record case 50."""

    def __init__(self, path: Path, sshd_hosts: Any):
        super().__init__(path)
        self.sshd_hosts = sshd_hosts
        self.dropped = False

    def record(self, case: Case) -> None:
        if case.id == 50:
            self.sshd_hosts.drop_connections()
            self.dropped = True
        super().record(case)


@pytest.mark.ssh
def test_dropped_ssh_connections_mid_run_lose_no_case(ssh_ram, sshd_hosts, serial, tmp_path):
    ram, _ = ssh_ram
    with RAMExecutor(res_desc={'job_environment': ENV}, max_servers=2, ram=ram) as executor:
        top = doe_model(sequential=False, executor=executor)
        recorder = DroppingRecorder(tmp_path / 'cases.sqlite', sshd_hosts)
        top.recorders = [recorder]
        top.run()
    assert recorder.dropped
    assert [r['id'] for r in read_cases(tmp_path / 'cases.sqlite')] == list(range(CASES))
    assert_same(top.driver.results, serial)


# -- SLURM and PBS ----------------------------------------------------------------------------
@pytest.fixture
def slurm_ram(slurm_cluster, tmp_path) -> Iterator[ResourceAllocationManager]:
    """A RAM of a SlurmAllocator on the session's cluster; afterwards no job and no job
    directory is left."""
    jobs = tmp_path / 'jobs'
    ram = ResourceAllocationManager([SlurmAllocator(
        partition=slurm_cluster.partition, workdir=str(jobs), poll=0.2, queue_timeout=120)])
    try:
        yield ram
        released(ram)
        assert eventually(lambda: not slurm_cluster.active_jobs()), slurm_cluster.active_jobs()
        nothing_left(jobs)
    finally:
        ram.shutdown()


@pytest.mark.slurm
def test_doe_on_slurm_jobs_equals_the_sequential_run(slurm_ram, serial, tmp_path):
    assert_same(run_on(slurm_ram, {}, tmp_path / 'cases.sqlite'), serial)


@pytest.mark.slurm
def test_slurm_job_cancelled_mid_run_is_replaced_and_its_case_retried(
        slurm_ram, slurm_cluster, serial, tmp_path, caplog):
    markers = tmp_path / 'markers'
    markers.mkdir()
    victim = next(c.id for c in serial if c.ok and c.id >= 50)
    with caplog.at_level(logging.INFO):
        ours = run_on(slurm_ram, {}, tmp_path / 'cases.sqlite', max_chunk=1,
                      cancel_job_once_at=serial[victim].inputs['p.x'], markers=str(markers))
    assert_same(ours, serial)
    assert [c.id for c in ours if c.retries] == \
        sorted([victim] + [c.id for c in serial if not c.ok])
    assert ours[victim].retries == 1 and ours[victim].ok
    messages = [r.getMessage() for r in caplog.records]
    served = re.findall(r'job (\S+) serves (\S+) from', '\n'.join(messages))
    job_of = {server: job for job, server in served}  # as the allocator logged them
    lost = [m for m in messages if ' was lost: ' in m]
    assert len(lost) == 1
    server = re.search(r'server (SLURM-\d+) ', lost[0]).group(1)
    assert slurm_cluster.wait_ended(job_of[server]) == 'CANCELLED'


@pytest.mark.pbs
def test_doe_on_pbs_jobs_equals_the_sequential_run(pbs_commands, serial, tmp_path):
    jobs = tmp_path / 'jobs'
    ram = ResourceAllocationManager([PBSAllocator(workdir=str(jobs), poll=0.2,
                                                  queue_timeout=120)])
    try:
        assert_same(run_on(ram, {}, tmp_path / 'cases.sqlite'), serial)
        released(ram)
        assert eventually(lambda: not pbs_commands.active_jobs()), pbs_commands.active_jobs()
        nothing_left(jobs)
    finally:
        ram.shutdown()


# -- MPI --------------------------------------------------------------------------------------
@pytest.mark.mpi
def test_doe_on_mpi_servers_equals_the_sequential_run(serial, tmp_path):
    servers = tmp_path / 'servers'
    ram = ResourceAllocationManager([MPIAllocator(total_cpus=4, workdir=str(servers))])
    try:
        ours = run_on(ram, {'job_category': 'MPI', 'min_cpus': 2}, tmp_path / 'cases.sqlite')
        assert_same(ours, serial)
        released(ram)
        nothing_left(servers)
    finally:
        ram.shutdown()
