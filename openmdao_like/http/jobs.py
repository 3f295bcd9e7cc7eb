"""The service's asynchronous executions, each a run of one job in the issue-9 job store.

A submitted execution becomes a run (``resources``: this service, the user, the component, the
timeout) with one job (case 0, its inputs) that goes RUNNING when handed to the workers and
COMPLETED or FAILED when it ends (a failure keeps the typed error in ``outputs['__failure__']``
and its traceback in ``error``). The store outlives the service: when the service starts again
it takes up the jobs it left: each RUNNING job is counted as lost (an infrastructure retry) and
run again, until it was lost `MAX_RESTARTS` times; then it is recorded FAILED. Nothing is lost
either way. Clients long-poll a job (`wait`) and may cancel it (its worker is stopped).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import time
from typing import Any

from ..errors import IllegalTransitionError, StoreError
from ..jobs import JobStore, Result, State
from .executions import FAILURE, Call
from .interfaces import Interface
from .users import User
from .wire import ServiceError

logger = logging.getLogger(__name__)

__all__ = ['ServiceJobs', 'MAX_RESTARTS', 'MAX_LISTED']

#: Times a job may be lost to a stop of the service before it is recorded FAILED.
MAX_RESTARTS = 2
#: Jobs `ServiceJobs.list` shows at most (the newest).
MAX_LISTED = 200


class ServiceJobs:
    """The asynchronous executions of ``service`` (see the module docstring)."""

    def __init__(self, service: Any):
        self.service = service
        self.key = str(service.config.path)
        self.store = JobStore(service.config.store_url)
        self._calls: dict[str, Call] = {}
        self._ended: dict[str, concurrent.futures.Future] = {}
        self._writer = concurrent.futures.ThreadPoolExecutor(1, 'openmdao_like-http-jobs')
        self._host = socket.gethostname()
        self._closing = False

    def close(self) -> None:
        """Finish writing what ended; close the store. Jobs still running are left RUNNING
        (`recover` takes them up)."""
        self._closing = True
        self._writer.shutdown(wait=True)
        self.store.close()

    def _ended_call(self, run_id: str, user: User, future: concurrent.futures.Future) -> None:
        """A call ended: record it (in the writer thread), unless the service is stopping."""
        if not self._closing:
            self._writer.submit(self._finish, run_id, user, future)

    # -- submit and run -------------------------------------------------------------------------
    def submit(self, user: User, interface: Interface, values: dict[str, Any],
               timeout: float, prepared: tuple | None = None) -> dict[str, Any]:
        """Record a new job and start it; its view. 422 before anything is recorded when a
        File input names no file of the user's (``prepared``: `Service.prepare`'s, if made)."""
        prepared = prepared or self.service.prepare(user, interface, values)
        run_id = self.store.create_run(
            f'http {interface.name}', total=1, state=State.RUNNING,
            resources={'service': self.key, 'user': user.name, 'component': interface.name,
                       'timeout': timeout})
        self.store.add_jobs(run_id, [(0, values)])
        self._start(run_id, user, interface, values, timeout, prepared)
        return self.view(run_id)

    def _start(self, run_id: str, user: User, interface: Interface, values: dict[str, Any],
               timeout: float, prepared: tuple | None = None) -> None:
        self.store.move(run_id, [0], State.RUNNING, count_attempt=True, host=self._host)
        self._ended[run_id] = concurrent.futures.Future()
        try:
            prepared = prepared or self.service.prepare(user, interface, values)
            call = self.service.call(interface, prepared, timeout)
        except ServiceError as exc:  # (a file gone since: the job fails, it is not lost)
            future: concurrent.futures.Future = concurrent.futures.Future()
            future.set_exception(exc)
            self._ended_call(run_id, user, future)
            return
        self._calls[run_id] = call
        call.future.add_done_callback(lambda future: self._ended_call(run_id, user, future))

    def _finish(self, run_id: str, user: User, future: concurrent.futures.Future) -> None:
        """Record how the job ended (in the writer thread)."""
        now = time.time()
        try:
            result = self.service.settle(user, future)
            if result['state'] == 'COMPLETED':
                self.store.finish(run_id, [Result(0, State.COMPLETED, result['outputs'],
                                                  finished=now, host=self._host)])
            else:
                error = result['error']
                self.store.finish(run_id, [Result(0, State.FAILED, {FAILURE: error},
                                                  error=error['traceback'] or error['message'],
                                                  finished=now, host=self._host)])
            self.store.update_run(run_id, state=result['state'], finished=now)
        except IllegalTransitionError:  # cancelled meanwhile: it stays CANCELLED
            pass
        except Exception:
            logger.exception('job %s: its result could not be recorded', run_id)
        finally:
            self._calls.pop(run_id, None)
            ended = self._ended.pop(run_id, None)
            if ended is not None:
                ended.set_result(None)

    def recover(self) -> None:
        """Take up the jobs this service left unfinished (see the module docstring)."""
        for run in self.store.runs():
            info = run.resources or {}
            if info.get('service') != self.key or run.state in ('COMPLETED', 'FAILED',
                                                                'CANCELLED'):
                continue
            job = self.store.job(run.id, 0)
            if job.state is State.RUNNING:
                self.store.finish(run.id, [Result(0, State.READY,
                                                  error='the service stopped while it ran')])
                job = self.store.job(run.id, 0)
            if job.state is not State.READY:
                continue
            user = User(info['user'])
            interface = self.service.interfaces.get(info['component'])
            why = None
            if interface is None:
                why = f'{info["component"]} is no longer offered by this service'
            elif job.infra_retries > MAX_RESTARTS:
                why = f'the service stopped {job.infra_retries} times while it ran'
            if why is not None:
                self.store.move(run.id, [0], State.RUNNING)
                future: concurrent.futures.Future = concurrent.futures.Future()
                future.set_exception(RuntimeError(why))
                self._ended[run.id] = concurrent.futures.Future()
                self._finish(run.id, user, future)
                continue
            logger.info('job %s (%s of %s) runs again: the service stopped while it ran',
                        run.id, info['component'], info['user'])
            self._start(run.id, user, interface, dict(job.inputs),
                        float(info.get('timeout') or self.service.config.timeout))

    # -- what clients see -----------------------------------------------------------------------
    def _run(self, user: User, job_id: str) -> Any:
        """The run of ``user``'s job ``job_id``; 404 otherwise."""
        try:
            run = self.store.run(job_id) if len(job_id) == 32 else None
        except StoreError:
            run = None
        info = (run.resources or {}) if run is not None else {}
        if run is None or run.id != job_id or info.get('service') != self.key or \
                info.get('user') != user.name:
            raise ServiceError(404, f'no job {job_id!r}')
        return run

    def view(self, job_id: str) -> dict[str, Any]:
        """What a client sees of a job: id, component, state, times, and when it ended its
        outputs or error."""
        run = self.store.run(job_id)
        job = self.store.job(job_id, 0)
        answer: dict[str, Any] = {
            'id': run.id, 'component': (run.resources or {}).get('component'),
            'state': job.state.name, 'created': run.created, 'started': job.started,
            'finished': job.finished, 'attempts': job.attempts}
        if job.state is State.COMPLETED:
            answer['outputs'] = job.outputs
        elif job.state is State.FAILED:
            answer['error'] = (job.outputs or {}).get(FAILURE) or {
                'module': 'openmdao_like.errors', 'type': 'RemoteError',
                'message': job.error or 'the job failed', 'traceback': job.error or ''}
        return answer

    def get(self, user: User, job_id: str) -> dict[str, Any]:
        """``user``'s job ``job_id`` as `view` shows it."""
        return self.view(self._run(user, job_id).id)

    async def wait(self, user: User, job_id: str, seconds: float) -> dict[str, Any]:
        """``user``'s job, once it ended or after ``seconds`` (a long poll)."""
        run = await asyncio.to_thread(self._run, user, job_id)
        ended = self._ended.get(run.id)
        if ended is not None and seconds > 0:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(ended)), seconds)
            except asyncio.TimeoutError:
                pass
        return await asyncio.to_thread(self.view, run.id)

    def cancel(self, user: User, job_id: str) -> dict[str, Any]:
        """Cancel ``user``'s job (its worker is stopped if it runs); its view. An ended job
        is left as it is."""
        run = self._run(user, job_id)
        if not self.store.job(run.id, 0).state.ended:
            self.store.cancel(run.id)
        call = self._calls.get(run.id)
        if call is not None:
            self.service.executions.cancel(call)
        return self.view(run.id)

    def list(self, user: User) -> list[dict[str, Any]]:
        """``user``'s jobs, newest first (at most `MAX_LISTED`), without outputs."""
        found = []
        for run in self.store.runs():
            info = run.resources or {}
            if info.get('service') == self.key and info.get('user') == user.name:
                found.append({'id': run.id, 'component': info.get('component'),
                              'state': run.state, 'created': run.created,
                              'finished': run.finished})
                if len(found) >= MAX_LISTED:
                    break
        return found
