"""Bootstrapping a pilot in a batch job: what makes a submitted job an allocated server.

A batch allocator (`openmdao_like.resources.batch`) only submits, asks and cancels jobs. To
allocate a server, `start_pilot_job` writes the pilot's private settings (key, one-time
registration secret) into a fresh work directory on the shared file system, submits a job
whose command is ``python -m openmdao_like.resources.pilot SETTINGS``, waits until the pilot
(an ``ObjServerFactory``) registers back — or reports why the job ended before it did, with the
tail of its output — and connects to it. Releasing the server lets the job end, then cancels
it (`BatchAllocator.finish_job`).
"""

from __future__ import annotations

import json
import logging
import posixpath
import time
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import AllocationError
from .description import validate_resource_desc
from .jobstate import TERMINAL_STATES, JobStatus, wait_until
from .registration import registrar_for
from .startup import (STOP_GRACE, StartedServer, connect_registered, default_allowed_hosts,
                      pilot_command, server_settings)

if TYPE_CHECKING:
    from .batch import BatchAllocator

logger = logging.getLogger(__name__)

__all__ = ['start_pilot_job', 'pilot_job_status', 'ENDING_WAIT']

#: Seconds `pilot_job_status` waits for a job on its way out to reach its final state.
ENDING_WAIT = 5.0


def start_pilot_job(provider: BatchAllocator, name: str,
                    res_desc: Mapping[str, Any]) -> StartedServer:
    """Submit a job running a pilot for ``res_desc`` through ``provider`` and connect to the
    pilot once it registered back. `AllocationError` when the job ends first or does not
    register within the provider's ``queue_timeout``; nothing is left behind then."""
    desc = validate_resource_desc(res_desc, f'{provider.name}: resource description')
    cpus = desc.get('min_cpus', 1)
    mpi = desc.get('job_category') == 'MPI'
    channel = provider.channel
    client = provider.client_address or channel.client_address()
    expectation = registrar_for(client).expect()
    workdir = channel.mkdtemp(prefix='oml-job-',
                              parent=desc.get('working_directory') or provider.workdir)
    job_id: str | None = None
    checker = _Checker(provider)
    try:
        settings = server_settings(
            expectation, workdir, 'auto',
            default_allowed_hosts(client, 'auto', provider.allowed_hosts),
            provider.mpi_launcher.wrap([], cpus) if mpi else None)
        settings_path = posixpath.join(workdir, 'settings.json')
        channel.write_file(settings_path, json.dumps(settings).encode(), 0o600)
        job_id = checker.job_id = provider.submit_job(
            desc, workdir, pilot_command(provider.python, settings_path), name)
        what = f'{provider.name}: {provider.kind} job {job_id} ({name})'
        try:
            registration = expectation.wait(provider.queue_timeout, checker, what)
        except AllocationError as exc:
            if checker.reported:
                raise
            raise AllocationError(f'{exc}; {provider.describe(job_id, checker.last)}') \
                from None
        proxy = connect_registered(registration, what)
    except BaseException:
        expectation.registrar.forget(expectation.id)
        if job_id is not None:
            provider.finish_job(job_id)
        channel.remove_tree(workdir)
        raise
    logger.info('%s: job %s serves %s from %s:%d', provider.name, job_id, name,
                registration.host, registration.port)
    info = {'name': name, 'host': registration.host, 'port': registration.port,
            'pid': registration.pid, 'job_id': job_id, 'workdir': workdir, 'cpus': cpus,
            'hostname': registration.info.get('hostname'),
            'output': provider.job(job_id).output}
    return StartedServer(proxy, registration, info,
                         lambda: provider.finish_job(job_id, grace=STOP_GRACE),
                         lambda: channel.remove_tree(workdir))


def pilot_job_status(provider: BatchAllocator, job_id: str) -> str | None:
    """Why a pilot's job is gone (its final state and the tail of its output), or None while
    it runs. A job on its way out (SLURM COMPLETING, PBS E: its server just went) is given up
    to `ENDING_WAIT` seconds to reach its verdict."""
    job = provider.job(job_id)
    status = job.status()
    if status.active and status.native in provider.ending_states:
        status = wait_until(job, TERMINAL_STATES.__contains__,
                            time.monotonic() + ENDING_WAIT, poll=0.2)
    if status.active and status.native not in provider.ending_states:
        return None
    return provider.describe(job_id, status)


class _Checker:
    """``check()`` for `Expectation.wait`: why the job can no longer register (it ended),
    asking the scheduler at most every ``poll`` seconds."""

    def __init__(self, provider: BatchAllocator):
        self.provider = provider
        self.job_id: str | None = None
        self.last: JobStatus | None = None
        self.reported = False
        self._next = 0.0

    def __call__(self) -> str | None:
        now = time.monotonic()
        if self.job_id is None or now < self._next:
            return None
        self._next = now + self.provider.poll
        self.last = self.provider.job_status(self.job_id)
        if self.last.active:
            return None
        self.reported = True
        return self.provider.describe(self.job_id, self.last)
