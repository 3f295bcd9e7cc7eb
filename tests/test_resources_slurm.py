"""SlurmAllocator on the session's one-node SLURM cluster (tests/infra/slurm.py): each allocated
server is a pilot job that registers back; the generated job scripts are checked against the
sbatch documentation and against sbatch itself."""

from __future__ import annotations

import datetime
import os
import subprocess
import threading
import _thread
import time
from pathlib import Path
from typing import Iterator

import pytest

from openmdao_like.errors import AllocationError, RemoteError
from openmdao_like.resources import ResourceAllocationManager
from openmdao_like.resources.launchers import MpiexecLauncher, default_mpiexec
from openmdao_like.resources.slurm import SlurmAllocator

pytestmark = pytest.mark.slurm


@pytest.fixture
def slurm(slurm_cluster, tmp_path: Path) -> Iterator[SlurmAllocator]:
    """A SlurmAllocator whose jobs work below tmp_path; every server it started is released."""
    allocator = SlurmAllocator(partition=slurm_cluster.partition, workdir=str(tmp_path / 'jobs'),
                               poll=0.2, queue_timeout=120)
    try:
        yield allocator
    finally:
        allocator.shutdown()


@pytest.fixture
def desc(slurm_cluster) -> dict:
    """A description whose servers can create the test types."""
    return {'job_environment': dict(slurm_cluster.env)}


def leftovers(tmp_path: Path) -> list[str]:
    jobs = tmp_path / 'jobs'
    return sorted(os.listdir(jobs)) if jobs.exists() else []


def test_allocated_server_is_a_job_that_runs_objects_and_ends_on_release(
        slurm, slurm_cluster, desc, tmp_path):
    ram = ResourceAllocationManager([slurm])
    server, info = ram.allocate(dict(desc, job_name='oml_test', min_phys_memory=100 * 1024,
                                     resource_limits={'wallclock_time': 3600}))
    job_id = info['job_id']
    assert info['allocator'] == 'SLURM'
    assert job_id in [job for job, state, _ in slurm_cluster.active_jobs() if state == 'RUNNING']
    assert [slurm_cluster.job_detail(job_id, field) for field in
            ('JobName', 'TimeLimit', 'MinMemoryNode')] == ['oml_test', '01:00:00', '100M']
    assert ram.status(server) is None

    paraboloid = server.create('remote_models.Paraboloid')
    paraboloid.x, paraboloid.y = 1.0, 2.0
    paraboloid.run()
    assert paraboloid.f_xy == pytest.approx((1 - 3) ** 2 + 1 * 2 + (2 + 4) ** 2 - 3)

    ram.release(server)
    assert job_id not in [job for job, _, _ in slurm_cluster.active_jobs()]
    assert slurm_cluster.wait_ended(job_id) == 'COMPLETED'
    assert leftovers(tmp_path) == []


def test_job_cancelled_from_outside_is_reported_and_its_server_fails(
        slurm, slurm_cluster, desc, tmp_path):
    server = slurm.deploy('victim', desc, {})
    job_id = slurm.server_info(server)['job_id']
    paraboloid = server.create('remote_models.Paraboloid')
    subprocess.run(['scancel', job_id], check=True)
    assert slurm_cluster.wait_ended(job_id) == 'CANCELLED'

    status = slurm.status(server)
    assert status.startswith(f'SLURM job {job_id} CANCELLED')
    assert f'JOB {job_id} ON localhost CANCELLED AT' in status  # the output's tail
    with pytest.raises(RemoteError):
        paraboloid.run()
    with pytest.raises(RemoteError):
        server.create('remote_models.Paraboloid')
    slurm.release(server)
    assert leftovers(tmp_path) == []


def test_job_that_cannot_start_raises_with_its_state_and_output(slurm_cluster, desc, tmp_path):
    broken = SlurmAllocator(partition=slurm_cluster.partition, python='/nonexistent/python',
                            workdir=str(tmp_path / 'jobs'), poll=0.2, queue_timeout=120)
    with pytest.raises(AllocationError) as caught:
        broken.deploy('broken', desc, {})
    message = str(caught.value)
    assert 'SLURM job' in message and 'FAILED' in message and 'exit code 127' in message
    assert '/nonexistent/python' in message  # the shell's complaint, from the output tail
    assert slurm_cluster.active_jobs() == []
    assert leftovers(tmp_path) == []


def test_keyboard_interrupt_while_queued_cancels_the_job(slurm, slurm_cluster, desc, tmp_path):
    later = datetime.datetime.now() + datetime.timedelta(hours=1)  # --begin holds it queued
    seen: list[str] = []

    def interrupt_once_queued() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pending = [job for job, state, _ in slurm_cluster.active_jobs()
                       if state == 'PENDING']
            if pending:
                seen.extend(pending)
                _thread.interrupt_main()
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=interrupt_once_queued)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            slurm.deploy('impatient', dict(desc, start_time=later), {})
    finally:
        watcher.join()
    assert len(seen) == 1
    assert slurm_cluster.wait_ended(seen[0]) == 'CANCELLED'
    assert slurm_cluster.active_jobs() == []
    assert leftovers(tmp_path) == []


def test_mpi_servers_start_their_objects_with_the_mpi_launcher(slurm_cluster, desc, tmp_path):
    assert SlurmAllocator().mpi_launcher.wrap([], 4) == [
        'srun', '--mpi=pmi2', '--kill-on-bad-exit=1', '-n', '4']
    # The PyPI MPICH wheel's MPI_Init fails now and then under srun --mpi=pmi2 (its UCX
    # addresses come back garbled through SLURM's PMI-2), never under its own mpiexec inside
    # the job: the test uses that launcher.
    slurm = SlurmAllocator(workdir=str(tmp_path / 'jobs'), poll=0.2,
                           mpi_launcher=MpiexecLauncher(default_mpiexec()))
    try:
        server = slurm.deploy('mpi', dict(desc, job_category='MPI', min_cpus=2), {})
        assert slurm_cluster.job_detail(slurm.server_info(server)['job_id'], 'NumTasks') == '2'
        ranks = server.create('mpi_models.RankSum')
        ranks.x = 2.0
        ranks.run()
        assert (ranks.size, ranks.total) == (2, 2.0 * (1 + 2))
    finally:
        slurm.shutdown()


def test_estimates_refusals_and_the_job_limit(slurm_cluster, desc, tmp_path):
    slurm = SlurmAllocator(partition=slurm_cluster.partition, max_jobs=1, poll=0.2,
                           workdir=str(tmp_path / 'jobs'))
    try:
        assert slurm.time_estimate({}) == (0, {'partition': 'debug'})
        assert slurm.max_servers({}) == 1  # max_jobs
        roomy = SlurmAllocator(partition=slurm_cluster.partition)
        assert [roomy.max_servers({'min_cpus': n}) for n in (1, 2, 3)] == [2, 1, 0]  # 2 CPUs

        code, criteria = slurm.time_estimate({'resource_limits': {'cpu_time': 60}})
        assert code == -2 and "'cpu_time'" in criteria['refused']['resource_limits']
        code, criteria = slurm.time_estimate({'queue_name': 'nope'})
        assert code == -2 and "no partition 'nope'" in criteria['refused']['queue_name']
        code, criteria = slurm.time_estimate({'min_cpus': 3})
        assert code == -2 and 'at most 2 CPUs, 3' in criteria['refused']['min_cpus']
        code, criteria = slurm.time_estimate({'job_category': 'OpenMP'})
        assert code == -2 and "'OpenMP'" in criteria['refused']['job_category']
        code, criteria = slurm.time_estimate({'job_environment': {'NOT-A-NAME': 'x'}})
        assert code == -2 and "'NOT-A-NAME'" in criteria['refused']['job_environment']
        assert slurm.max_servers({'localhost': True}) == 0

        server = slurm.deploy('only', desc, {})
        code, criteria = slurm.time_estimate({})
        assert code == -1 and 'max_jobs=1' in criteria['reason']
        slurm.release(server)
        assert slurm.time_estimate({})[0] == 0
    finally:
        slurm.shutdown()


def test_a_partition_that_does_not_exist_is_refused(slurm_cluster):
    code, criteria = SlurmAllocator(partition='gpu').time_estimate({})
    assert code == -2 and "no partition 'gpu' (partitions: debug)" in \
        criteria['refused']['allocator']


def test_sbatch_refusing_a_job_is_an_allocation_error(slurm, desc, tmp_path):
    # a native option overrides the allocator's partition: sbatch itself refuses
    with pytest.raises(AllocationError, match='sbatch refused the job.*invalid partition'):
        slurm.deploy('nowhere', dict(desc, native_specification=['--partition=nope']), {})
    assert leftovers(tmp_path) == []


# -- the job script --------------------------------------------------------------------------------
WORKDIR = '/shared/jobs/oml-job-x'
PILOT = ['/opt/py/bin/python', '-m', 'openmdao_like.resources.pilot', f'{WORKDIR}/settings.json']


def directives(script: str, prefix: str = '#SBATCH ') -> list[str]:
    return [line[len(prefix):] for line in script.splitlines() if line.startswith(prefix)]


def test_job_script_maps_each_key_to_its_sbatch_directive():
    # sbatch(1), Slurm 22.05 (https://slurm.schedmd.com/sbatch.html): --mem takes a size with
    # the unit suffix K (kilobytes); --time "days-hours:minutes:seconds"; --begin and
    # --deadline "YYYY-MM-DD[THH:MM[:SS]]"; --mail-type takes BEGIN, END, ...; --output and
    # --error take file names; "#SBATCH" lines must precede the first command.
    desc = {'job_name': 'opt_run', 'queue_name': 'long', 'min_cpus': 4, 'max_cpus': 8,
            'min_phys_memory': 2048, 'resource_limits': {'wallclock_time': 90061.5},
            'start_time': datetime.datetime(2030, 1, 2, 3, 4, 5),
            'deadline_time': datetime.datetime(2030, 1, 3, 0, 0, 0),
            'accounting_id': 'proj42', 'email': ['a@x.org', 'b@x.org'],
            'email_on_started': True, 'email_on_terminated': True,
            'native_specification': ['--qos=low', '--exclusive'],
            'job_environment': {'PYTHONPATH': '/p q', 'OMP_NUM_THREADS': '1'}}
    slurm = SlurmAllocator(partition='debug', extra_directives=['--constraint=fast'])
    script = slurm.job_script(desc, WORKDIR, PILOT, name='ignored')
    assert directives(script) == [
        '--job-name=opt_run', '--partition=long', '--nodes=1', '--ntasks=1',
        '--cpus-per-task=4', '--mem=2048K', '--time=1-01:01:02',
        '--begin=2030-01-02T03:04:05', '--deadline=2030-01-03T00:00:00', '--account=proj42',
        '--mail-user=a@x.org,b@x.org', '--mail-type=BEGIN,END',
        f'--output={WORKDIR}/job.out', '--qos=low', '--exclusive', '--constraint=fast']
    lines = script.splitlines()
    assert lines[0] == '#!/bin/sh'
    assert "export PYTHONPATH='/p q'" in lines and 'export OMP_NUM_THREADS=1' in lines
    assert lines[-2:] == [f'cd {WORKDIR} || exit 1', f'exec {" ".join(PILOT)}']
    first_command = next(i for i, line in enumerate(lines) if not line.startswith('#'))
    assert all(not line.startswith('#SBATCH') for line in lines[first_command:])


def test_job_script_defaults_mpi_and_output_files():
    slurm = SlurmAllocator()
    plain = directives(slurm.job_script({}, WORKDIR, PILOT, name='Sim 1'))
    assert plain == ['--job-name=Sim_1', '--nodes=1', '--ntasks=1', '--cpus-per-task=1',
                     f'--output={WORKDIR}/job.out']
    assert directives(slurm.job_script({}, WORKDIR, PILOT, name='7up'))[0] == \
        '--job-name=oml-7up'
    mpi = directives(slurm.job_script({'job_category': 'MPI', 'min_cpus': 3}, WORKDIR, PILOT))
    assert mpi[1:3] == ['--nodes=1', '--ntasks=3']
    # relative paths are relative to the directory the work directory is made in
    apart = directives(slurm.job_script({'output_path': 'out.txt', 'error_path': '/logs/err'},
                                        WORKDIR, PILOT))
    assert apart[-2:] == ['--output=/shared/jobs/out.txt', '--error=/logs/err']
    joined = directives(slurm.job_script({'output_path': '/logs/o', 'error_path': '/logs/e',
                                          'join_files': True}, WORKDIR, PILOT))
    assert joined[-1] == '--output=/logs/o'
    aware = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    begin = directives(slurm.job_script({'start_time': aware}, WORKDIR, PILOT))[-2]
    assert begin == f'--begin={aware.astimezone().replace(tzinfo=None):%Y-%m-%dT%H:%M:%S}'


def test_job_script_template_from_text_or_file(tmp_path):
    text = '#!/bin/bash\n$directives\nmodule load python\n$environment\ncd $workdir\n$command\n'
    script = SlurmAllocator(template=text).job_script({}, WORKDIR, PILOT, name='s')
    assert script.splitlines()[0] == '#!/bin/bash'
    assert 'module load python' in script and script.rstrip().endswith(' '.join(PILOT))
    path = tmp_path / 'job.tmpl'
    path.write_text(text.replace('module load python', 'echo $$HOME on $name'))
    script = SlurmAllocator(template=str(path)).job_script({}, WORKDIR, PILOT, name='s')
    assert 'echo $HOME on s' in script


@pytest.mark.parametrize('template, message', [
    ('#!/bin/sh\n$command\n', 'template must contain directives'),
    ('#!/bin/sh\n$directives\n$cmd\n', 'unknown placeholders cmd; known: directives'),
    ('#!/bin/sh\n$directives\n$command 5$\n', 'bad placeholder'),
    ('/no/such/template.sh', "template '/no/such/template.sh' is no file"),
    (42, 'template must be template text or the path of a file'),
])
def test_bad_templates_are_refused(template, message):
    with pytest.raises(ValueError, match=message):
        SlurmAllocator(name='cluster', template=template)


@pytest.mark.parametrize('options, message', [
    ({'max_jobs': 0}, 'max_jobs must be a positive integer, got 0'),
    ({'queue_timeout': -1}, 'queue_timeout must be a positive number of seconds, got -1'),
    ({'poll': True}, 'poll must be a positive number of seconds, got True'),
    ({'partition': 'a b'}, "partition must be a partition name, got 'a b'"),
    ({'extra_directives': '--qos=low'}, 'extra_directives must be a list of non-empty'),
    ({'extra_directives': ['--a\n--b']}, 'extra_directives items must be single lines'),
    ({'channel': 'localhost'}, "channel must be a Channel, got 'localhost'"),
    ({'python': ''}, "python must be a non-empty string, got ''"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        SlurmAllocator(name='cluster', **options)


@pytest.mark.parametrize('desc, message', [
    ({'resource_limits': {'stack_size': 10}}, "resource_limits: SLURM cannot enforce "
                                              "'stack_size'; it supports wallclock_time"),
    ({'accounting_id': 'two words'}, "accounting_id must be one word .* got 'two words'"),
    ({'output_path': '/my logs/out'}, "output_path must be one word"),
    ({'native_specification': ['--qos=a\n--x']}, 'native_specification items must be single'),
    ({'min_cpus': '2'}, 'min_cpus should be a positive integer'),
    ({'input_path': '/dev/null'}, "input_path: SLURM does not support 'input_path'"),
])
def test_values_a_job_script_cannot_hold_are_errors(desc, message):
    with pytest.raises(ValueError, match=message):
        SlurmAllocator().job_script(desc, WORKDIR, PILOT)


def test_sbatch_accepts_every_directive(slurm_cluster, tmp_path):
    desc = {'job_name': 'check', 'queue_name': 'debug', 'min_cpus': 2,
            'min_phys_memory': 1024, 'resource_limits': {'wallclock_time': 600},
            'start_time': datetime.datetime.now() + datetime.timedelta(days=1),
            'deadline_time': datetime.datetime.now() + datetime.timedelta(days=2),
            'email': ['root@localhost'], 'email_on_started': True,
            'email_on_terminated': True, 'output_path': str(tmp_path / 'o'),
            'error_path': str(tmp_path / 'e'), 'accounting_id': 'proj42',
            'native_specification': ['--qos=normal']}
    script = tmp_path / 'job.sh'
    script.write_text(SlurmAllocator().job_script(desc, str(tmp_path / 'w'), ['true']))
    done = subprocess.run(['sbatch', '--test-only', str(script)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert 'to start at' in done.stderr


def test_a_machine_without_slurm_is_refused(monkeypatch):
    monkeypatch.setenv('PATH', '/nonexistent')
    code, criteria = SlurmAllocator(name='cluster').time_estimate({})
    assert (code, criteria) == (-2, {'refused': {
        'allocator': 'cluster: sinfo is not installed on 127.0.0.1'}})
    assert SlurmAllocator().max_servers({}) == 0
