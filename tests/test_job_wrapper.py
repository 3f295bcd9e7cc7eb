"""JobSchedulerWrapper: each execution of a component is one batch job on the session's SLURM
cluster (tests/infra/slurm.py), or through its PBS commands."""

from __future__ import annotations

import _thread
import datetime
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from openmdao_like import Assembly, load, set_as_top
from openmdao_like.distributed.job_wrapper import JobSchedulerWrapper
from openmdao_like.errors import JobError
from openmdao_like.resources.pbs import PBSAllocator
from openmdao_like.resources.slurm import SlurmAllocator

sys.path.insert(0, os.path.dirname(__file__))
from remote_models import CustomError, Fails, Paraboloid, Scale, Sleeper  # noqa: E402


def wrapper(comp, slurm_cluster, tmp_path: Path, **res: object) -> JobSchedulerWrapper:
    return JobSchedulerWrapper(comp, 'slurm', workdir=str(tmp_path / 'jobs'), poll=0.2,
                               res_desc={'job_environment': dict(slurm_cluster.env), **res})


def leftovers(tmp_path: Path) -> list[str]:
    jobs = tmp_path / 'jobs'
    return sorted(os.listdir(jobs)) if jobs.exists() else []


def completion_records(slurm_cluster, name: str) -> list[str]:
    """JobStates the completion log recorded for jobs called ``name``."""
    text = slurm_cluster.jobcomp.read_text() if slurm_cluster.jobcomp.exists() else ''
    return re.findall(rf'Name={re.escape(name)} JobState=(\S+)', text)


def when_running(slurm_cluster, act) -> threading.Thread:
    """A started thread that calls ``act(job_id)`` once a job runs."""
    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = [job for job, state, _ in slurm_cluster.active_jobs() if state == 'RUNNING']
            if running:
                act(running[0])
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


@pytest.mark.slurm
def test_each_run_is_a_job_whose_outputs_come_back(slurm_cluster, tmp_path):
    top = set_as_top(Assembly())
    top.add('p', wrapper(Paraboloid(), slurm_cluster, tmp_path, job_name='wrapped_p'))
    top.add('s', Scale())
    top.connect('p.f_xy', 's.x')
    top.driver.workflow.add(['p', 's'])
    top.p.x, top.p.y = 1.0, 2.0
    top.run()
    expected = (1 - 3) ** 2 + 1 * 2 + (2 + 4) ** 2 - 3
    assert (top.p.f_xy, top.s.y) == (pytest.approx(expected), pytest.approx(2 * expected))
    assert top.p.get_metadata('f_xy', 'units') == 'm**2'
    top.p.x = 3.0
    top.run()
    assert top.p.f_xy == pytest.approx(2 * 3 + (2 + 4) ** 2 - 3)
    assert completion_records(slurm_cluster, 'wrapped_p') == ['COMPLETED', 'COMPLETED']
    assert leftovers(tmp_path) == []


@pytest.mark.slurm
def test_a_saved_and_loaded_wrapper_runs_again(slurm_cluster, tmp_path):
    top = set_as_top(Assembly())
    top.add('s', wrapper(Scale(), slurm_cluster, tmp_path))
    top.driver.workflow.add('s')
    top.save(str(tmp_path / 'model.pkl'))
    again = load(str(tmp_path / 'model.pkl'))
    again.s.x = 3.0
    again.run()
    assert again.s.y == 6.0
    assert leftovers(tmp_path) == []


@pytest.mark.slurm
def test_the_jobs_exception_is_raised_here(slurm_cluster, tmp_path):
    failing = wrapper(Fails(kind='custom'), slurm_cluster, tmp_path)
    with pytest.raises(CustomError, match='a custom failure') as caught:
        failing.run()
    assert 'raise CustomError' in caught.value.remote_traceback
    assert leftovers(tmp_path) == []


@pytest.mark.slurm
def test_a_job_cancelled_by_the_scheduler_is_a_job_error(slurm_cluster, tmp_path):
    sleeper = wrapper(Sleeper(delay=120.0), slurm_cluster, tmp_path)
    watcher = when_running(slurm_cluster, lambda job: subprocess.run(['scancel', job]))
    try:
        with pytest.raises(JobError) as caught:
            sleeper.run()
    finally:
        watcher.join()
    message = str(caught.value)
    assert re.search(r'SLURM job \d+ CANCELLED', message)
    assert 'CANCELLED AT' in message  # the tail of the job's output
    assert slurm_cluster.active_jobs() == []
    assert leftovers(tmp_path) == []


@pytest.mark.slurm
def test_a_job_that_cannot_run_is_a_job_error(slurm_cluster, tmp_path):
    broken = JobSchedulerWrapper(Paraboloid(), 'slurm', python='/nonexistent/python',
                                 workdir=str(tmp_path / 'jobs'), poll=0.2)
    with pytest.raises(JobError, match=r'(?s)SLURM job \d+ FAILED .*exit code 127.*'
                                       r'/nonexistent/python'):
        broken.run()
    assert leftovers(tmp_path) == []


@pytest.mark.slurm
def test_keyboard_interrupt_cancels_the_running_job(slurm_cluster, tmp_path):
    sleeper = wrapper(Sleeper(delay=120.0), slurm_cluster, tmp_path, job_name='interrupted')
    watcher = when_running(slurm_cluster, lambda job: _thread.interrupt_main())
    try:
        with pytest.raises(KeyboardInterrupt):
            sleeper.run()
    finally:
        watcher.join()
    assert slurm_cluster.active_jobs() == []
    assert completion_records(slurm_cluster, 'interrupted') == ['CANCELLED']
    assert leftovers(tmp_path) == []


@pytest.mark.slurm
def test_a_job_held_in_the_queue_past_queue_timeout_is_cancelled(slurm_cluster, tmp_path):
    slurm = SlurmAllocator(workdir=str(tmp_path / 'jobs'), poll=0.2, queue_timeout=1)
    later = datetime.datetime.now() + datetime.timedelta(hours=1)
    held = JobSchedulerWrapper(Scale(), slurm, poll=0.2,
                               res_desc={'start_time': later, 'job_name': 'held'})
    with pytest.raises(JobError, match=r'SLURM job \d+ did not start within queue_timeout=1 s '
                                       r'\(SLURM job \d+ PENDING \(reason BeginTime\)\)'):
        held.run()
    assert slurm_cluster.active_jobs() == []
    assert completion_records(slurm_cluster, 'held') == ['CANCELLED']
    assert leftovers(tmp_path) == []


@pytest.mark.pbs
def test_jobs_through_pbs_commands(pbs_commands, tmp_path):
    pbs = PBSAllocator(dialect='torque', workdir=str(tmp_path / 'jobs'), poll=0.2)
    wrapped = JobSchedulerWrapper(Scale(), pbs, poll=0.2,
                                  res_desc={'job_environment': dict(pbs_commands.env),
                                            'job_name': 'pbs_scale'})
    wrapped.x, wrapped.k = 4.0, 2.5
    wrapped.run()
    assert wrapped.y == 10.0
    assert completion_records(pbs_commands, 'pbs_scale') == ['COMPLETED']
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize('args, kwargs, message', [
    ((Paraboloid(), 'lsf'), {}, "must be one of 'slurm', 'pbs' .* got 'lsf'"),
    ((Paraboloid(), SlurmAllocator()), {'python': '/usr/bin/python3'},
     'python belong to the allocator'),
    ((Paraboloid(),), {'res_desc': {'resource_limits': {'cpu_time': 5}}},
     "res_desc: resource_limits: SLURM cannot enforce 'cpu_time'"),
    ((Paraboloid(),), {'res_desc': {'min_cpus': 0}}, 'min_cpus should be a positive integer'),
    ((Paraboloid(),), {'poll': 0}, 'poll must be a positive number of seconds, got 0'),
    ((Paraboloid(),), {'template': '#!/bin/sh\n$command\n'}, 'must contain directives'),
])
def test_bad_arguments_are_refused(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        JobSchedulerWrapper(*args, **kwargs)


def test_only_components_are_wrapped():
    with pytest.raises(TypeError, match='expected a Component or Assembly to wrap'):
        JobSchedulerWrapper(object())
