"""PBSAllocator: the generated ``#PBS`` scripts of both dialects against the PBS Pro and Torque
documentation, and allocation end to end through qsub/qstat/qdel (the slurm-wlm-torque
commands over the session's SLURM cluster, tests/infra/slurm.py)."""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from openmdao_like.errors import AllocationError, RemoteError
from openmdao_like.resources.pbs import PBSAllocator

WORKDIR = '/shared/jobs/oml-job-x'
PILOT = ['/opt/py/bin/python', '-m', 'openmdao_like.resources.pilot', f'{WORKDIR}/settings.json']
FULL = {'job_name': 'optimization_run', 'queue_name': 'workq', 'min_cpus': 4,
        'min_phys_memory': 2048,
        'resource_limits': {'wallclock_time': 90061, 'cpu_time': 59.5, 'virtual_memory': 4096},
        'start_time': datetime.datetime(2030, 1, 2, 3, 4, 5), 'accounting_id': 'proj42',
        'email': ['a@x.org', 'b@x.org'], 'email_on_started': True, 'email_on_terminated': True,
        'native_specification': ['-W group_list=cfd', '-r n'],
        'job_environment': {'PYTHONPATH': '/p q'}}


def directives(script: str) -> list[str]:
    return [line[len('#PBS '):] for line in script.splitlines() if line.startswith('#PBS ')]


# -- the job scripts -------------------------------------------------------------------------------
def test_pbspro_script():
    # PBS Professional / OpenPBS qsub(1B) (github.com/openpbs/openpbs, doc/man1/qsub.1B):
    # "-a [[[[CC]YY]MM]DD]hhmm[.SS]", "-A account_string", "-j oe" (stderr merged into stdout),
    # "-m mail_events" from a, b (begins), e (terminates), "-M user[@host][,...]", "-N name"
    # (up to 236 characters), "-l select=[N:]chunk" with chunk "resource=value[:...]",
    # "-S path". pbs_resources(7B) (doc/man1/pbs_resources.7B): ncpus, mem, vmem and mpiprocs
    # "can be requested only inside of a select statement"; walltime, cput and file only
    # outside of one; size values take the suffix kb.
    pbs = PBSAllocator(queue='default', extra_directives=['-l place=pack'])
    script = pbs.job_script(dict(FULL, resource_limits=dict(FULL['resource_limits'],
                                                            file_size=100)),
                            WORKDIR, PILOT, name='ignored')
    assert directives(script) == [
        '-N optimization_run', '-S /bin/sh', '-q workq',
        '-l select=1:ncpus=4:mem=2048kb:vmem=4096kb', '-l walltime=25:01:01',
        '-l cput=00:01:00', '-l file=100kb', '-a 203001020304.05', '-A proj42',
        '-M a@x.org,b@x.org', '-m be', f'-o {WORKDIR}/job.out', '-j oe',
        '-W group_list=cfd', '-r n', '-l place=pack']
    lines = script.splitlines()
    assert lines[0] == '#!/bin/sh' and "export PYTHONPATH='/p q'" in lines
    # no PBS_O_WORKDIR / PBS_JOBID needed: the script goes to its work directory itself
    assert lines[-2:] == [f'cd {WORKDIR} || exit 1', f'exec {" ".join(PILOT)}']
    mpi = directives(pbs.job_script({'job_category': 'MPI', 'min_cpus': 3}, WORKDIR, PILOT))
    assert '-l select=1:ncpus=3:mpiprocs=3' in mpi


def test_torque_script():
    # Torque qsub(1B) (github.com/adaptivecomputing/torque, doc/man1/qsub.1B): "-N name ... up
    # to and including 15 characters ... the first character alphabetic"; "-S path_list"
    # (else the user's login shell runs the script); "-a [[[[CC]YY]MM]DD]hhmm[.SS]"; "-j oe".
    # Torque "Requesting resources" (docs.adaptivecomputing.com/torque/4-1-4/Content/topics/
    # 2-jobs/requestingRes.htm): nodes={<node_count>}[:ppn=<ppn>], mem, vmem (size), cput,
    # walltime ([[HH:]MM:]SS).
    pbs = PBSAllocator(dialect='torque')
    assert directives(pbs.job_script(FULL, WORKDIR, PILOT)) == [
        '-N optimization_ru', '-S /bin/sh', '-q workq', '-l nodes=1:ppn=4', '-l mem=2048kb',
        '-l vmem=4096kb', '-l walltime=25:01:01', '-l cput=00:01:00', '-a 203001020304.05',
        '-A proj42', '-M a@x.org,b@x.org', '-m be', f'-o {WORKDIR}/job.out', '-j oe',
        '-W group_list=cfd', '-r n']
    apart = directives(pbs.job_script({'output_path': 'o.txt', 'error_path': 'e.txt'},
                                      WORKDIR, PILOT, name='Sim-1'))
    assert apart == ['-N Sim-1', '-S /bin/sh', '-l nodes=1:ppn=1',
                     '-o /shared/jobs/o.txt', '-e /shared/jobs/e.txt']


def test_limits_each_dialect_cannot_enforce_are_refused():
    code, criteria = PBSAllocator(dialect='torque').time_estimate(
        {'resource_limits': {'file_size': 10}})
    assert code == -2 and "cannot enforce 'file_size'" in criteria['refused']['resource_limits']
    code, criteria = PBSAllocator().time_estimate(
        {'resource_limits': {'stack_size': 10, 'open_files': 5}})
    assert code == -2 and "'open_files', 'stack_size'" in criteria['refused']['resource_limits']
    code, criteria = PBSAllocator().time_estimate(
        {'deadline_time': datetime.datetime(2030, 1, 1)})
    assert code == -2 and "PBS does not support 'deadline_time'" in \
        criteria['refused']['deadline_time']
    assert PBSAllocator().max_servers({'resource_limits': {'stack_size': 1}}) == 0


@pytest.mark.parametrize('options, message', [
    ({'dialect': 'sge'}, "dialect must be one of pbspro, torque, got 'sge'"),
    ({'queue': ''}, "queue must be a queue name, got ''"),
    ({'mpiexec': 3}, 'mpiexec must be a path, got 3'),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        PBSAllocator(name='pbs', **options)


def test_a_machine_without_pbs_commands_is_refused(monkeypatch):
    monkeypatch.setenv('PATH', '/nonexistent')
    assert PBSAllocator(name='pbs').time_estimate({}) == (-2, {'refused': {
        'allocator': 'pbs: qstat is not installed on 127.0.0.1'}})


def test_mpi_objects_start_with_mpiexec():
    assert PBSAllocator(mpiexec='/opt/mpi/bin/mpiexec').mpi_launcher.wrap([], 4) == \
        ['/opt/mpi/bin/mpiexec', '-n', '4']


# -- end to end through qsub, qstat and qdel ------------------------------------------------------
@pytest.fixture
def desc(pbs_commands) -> dict:
    return {'job_environment': dict(pbs_commands.env)}


@pytest.fixture(params=['pbspro', 'torque'])
def pbs(request, pbs_commands, tmp_path: Path) -> Iterator[PBSAllocator]:
    allocator = PBSAllocator(dialect=request.param, workdir=str(tmp_path / 'jobs'), poll=0.2,
                             queue_timeout=120)
    try:
        yield allocator
    finally:
        allocator.shutdown()


def leftovers(tmp_path: Path) -> list[str]:
    jobs = tmp_path / 'jobs'
    return sorted(os.listdir(jobs)) if jobs.exists() else []


def qstat_state(job_id: str) -> str | None:
    done = subprocess.run(['qstat', '-f', job_id], capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.strip().startswith('job_state = '):
            return line.split('=', 1)[1].strip()
    return None


@pytest.mark.pbs
def test_pbs_job_serves_objects_until_released(pbs, pbs_commands, desc, tmp_path):
    assert pbs.time_estimate(desc)[0] == 0
    server = pbs.deploy('sim', dict(desc, job_name='pbs_sim', min_cpus=2), {})
    job_id = pbs.server_info(server)['job_id']
    assert qstat_state(job_id) == 'R'
    assert pbs_commands.job_detail(job_id, 'JobName') == 'pbs_sim'
    assert pbs_commands.job_detail(job_id, 'NumCPUs') == '2'
    paraboloid = server.create('remote_models.Paraboloid')
    paraboloid.x = 3.0
    paraboloid.run()
    assert paraboloid.f_xy == pytest.approx(16 - 3)
    assert pbs.status(server) is None
    pbs.release(server)
    assert qstat_state(job_id) == 'C'
    assert pbs_commands.wait_ended(job_id) == 'COMPLETED'
    assert leftovers(tmp_path) == []


@pytest.mark.pbs
def test_pbs_job_deleted_with_qdel_is_reported(pbs_commands, desc, tmp_path):
    pbs = PBSAllocator(workdir=str(tmp_path / 'jobs'), poll=0.2)
    try:
        server = pbs.deploy('victim', desc, {})
        job_id = pbs.server_info(server)['job_id']
        paraboloid = server.create('remote_models.Paraboloid')
        subprocess.run(['qdel', job_id], check=True, capture_output=True)
        pbs_commands.wait_ended(job_id)
        status = pbs.status(server)
        assert status.startswith(f'PBS job {job_id} C (completed)')
        assert f'JOB {job_id} ON localhost CANCELLED' in status  # the output's tail
        with pytest.raises(RemoteError):
            paraboloid.run()
        pbs.release(server)
    finally:
        pbs.shutdown()
    assert leftovers(tmp_path) == []


@pytest.mark.pbs
def test_pbs_job_that_cannot_start_raises_with_its_output(pbs_commands, desc, tmp_path):
    pbs = PBSAllocator(python='/nonexistent/python', workdir=str(tmp_path / 'jobs'), poll=0.2)
    with pytest.raises(AllocationError) as caught:
        pbs.deploy('broken', desc, {})
    message = str(caught.value)
    assert 'PBS job' in message and ' C (completed)' in message
    assert '/nonexistent/python' in message
    assert pbs_commands.active_jobs() == []
    assert leftovers(tmp_path) == []
