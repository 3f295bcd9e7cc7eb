"""One execution of a component as files: what job wrappers ship and bring back.

A wrapper writes the component (or assembly), inputs set, into a job directory
(`write_job`), runs `job_command` wherever the job goes (a batch job, an SSH host), and reads
the outcome back (`read_result`): the outputs are set on the local object, or the exception the
run raised is raised here, with the remote traceback attached::

    job/job.pkl     the object, cloudpickled, inputs set
    job/result.pkl  {'outputs': {name: value}, 'error': (module, type, message, traceback),
                     'exception': cloudpickled exception or None}

The job directory must be private to the user: both files are pickles (the object is the
user's own code; nothing else is ever loaded from them).

`ShippedJob` is the one path every wrapper takes: make the job directory through a `Channel`
(this machine's, an SSH host's, a cluster's shared file system), ship the object, run it there
(`ShippedJob.run` as a process of the channel, stopped by ``kill(grace)`` on a timeout or an
interrupt; or as a batch job the wrapper submits), fetch the result, and clean up both sides.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tempfile
from typing import Any, Mapping

import cloudpickle

from ..errors import JobError
from ..processes import KILL_GRACE
from ..remote.failures import capture, rebuild
from ..resources.channels import Channel

logger = logging.getLogger(__name__)

__all__ = ['write_job', 'job_command', 'read_result', 'run_job', 'ShippedJob', 'JOB_FILE',
           'RESULT_FILE', 'LOG_FILE', 'JOB_RAN']

JOB_FILE = 'job.pkl'
RESULT_FILE = 'result.pkl'
#: The output of a job run by `ShippedJob.run`, in its directory.
LOG_FILE = 'job.log'
#: Exit statuses of ``run_job``: 0 the object ran, 1 it raised (the result says what).
JOB_RAN = (0, 1)


def write_job(obj: Any, directory: str) -> None:
    """Pickle ``obj`` (a Component or Assembly, inputs set) into ``directory``."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    _write(os.path.join(directory, JOB_FILE), cloudpickle.dumps(obj))


def job_command(python: str, directory: str) -> list[str]:
    """The command that runs the job in ``directory`` with interpreter ``python``."""
    return [python, '-m', 'openmdao_like.distributed.run_job', directory]


def run_job(directory: str) -> int:
    """Load the job, run it, write the result (never raises for a model error): exit status."""
    result: dict[str, Any] = {'outputs': {}, 'error': None, 'exception': None}
    try:
        with open(os.path.join(directory, JOB_FILE), 'rb') as src:
            obj = cloudpickle.load(src)
        obj.run()
        result['outputs'] = {name: getattr(obj, name) for name in obj.list_outputs()}
    except Exception as exc:
        result['error'] = capture(exc)
        try:
            result['exception'] = cloudpickle.dumps(exc)
        except Exception:  # an exception that does not pickle travels as its description
            result['exception'] = None
    _write(os.path.join(directory, RESULT_FILE), cloudpickle.dumps(result))
    return 0 if result['error'] is None else 1


def read_result(directory: str, obj: Any, where: str = 'job') -> dict[str, Any]:
    """Set the job's outputs on ``obj`` (and return them), or raise its exception here."""
    path = os.path.join(directory, RESULT_FILE)
    try:
        with open(path, 'rb') as src:
            result = cloudpickle.load(src)
    except FileNotFoundError:
        raise JobError(f'{where}: the job left no result ({path} is missing): it did not '
                       f'run to its end') from None
    if result['error'] is not None:
        raise _exception(result, where)
    outputs = result['outputs']
    for name, value in outputs.items():
        setattr(obj, name, value)
    return outputs


class ShippedJob:
    """One execution of an object in a job directory reached through ``channel``: a context
    manager that removes the directory (and its local copy) on exit.

    Parameters
    ----------
    channel : Channel
        Where the job runs and its directory is made.
    where : str
        How messages name the execution (the wrapper's path, the host).
    parent : str, optional
        Directory below which the job directory is made (default: the host's temporary one).
    prefix : str
        Prefix of the job directory's name.
    """

    def __init__(self, channel: Channel, where: str, parent: str | None = None,
                 prefix: str = 'oml-job-'):
        self.channel = channel
        self.where = where
        self.remote = channel.mkdtemp(prefix=prefix, parent=parent)
        self.local = tempfile.mkdtemp(prefix='oml-jobfiles-')

    def __enter__(self) -> ShippedJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path(self, name: str) -> str:
        """``name`` in the job directory (on the channel's host)."""
        return posixpath.join(self.remote, name)

    def ship(self, obj: Any) -> None:
        """Write ``obj`` (inputs set) into the job directory."""
        write_job(obj, self.local)
        self.channel.push_file(os.path.join(self.local, JOB_FILE), self.path(JOB_FILE))

    def command(self, python: str) -> list[str]:
        """The command that runs the shipped object with interpreter ``python``."""
        return job_command(python, self.remote)

    def run(self, python: str, timeout: float | None, env: Mapping[str, str] | None = None,
            grace: float = KILL_GRACE) -> tuple[int | None, str]:
        """Run the shipped object as a process of the channel, up to ``timeout`` seconds
        (None: until it ends): ``(exit status, the end of its output)``, the status None when
        it timed out. A process still running then (or when this call is interrupted) is
        stopped with ``kill(grace)``, whatever it started with it."""
        process = self.channel.spawn(self.command(python), env=env, cwd=self.remote,
                                     log_path=self.path(LOG_FILE))
        try:
            status = process.wait(timeout)
        finally:
            if process.poll() is None:
                process.kill(grace)
        return status, process.output_tail()

    def fetch(self) -> bool:
        """Copy the job's result here; False when it left none."""
        try:
            self.channel.pull_file(self.path(RESULT_FILE),
                                   os.path.join(self.local, RESULT_FILE))
        except FileNotFoundError:
            return False
        return True

    def result(self, obj: Any, where: str | None = None) -> dict[str, Any]:
        """Set the fetched outputs on ``obj`` (and return them), or raise the job's
        exception here (see `read_result`)."""
        return read_result(self.local, obj, where or self.where)

    def close(self) -> None:
        """Remove the job directory and its local copy (a failure is logged: the outcome of
        the execution matters more than the litter)."""
        shutil.rmtree(self.local, ignore_errors=True)
        try:
            self.channel.remove_tree(self.remote)
        except (OSError, TimeoutError) as exc:
            logger.warning('%s: cannot remove %s on %s: %s', self.where, self.remote,
                           self.channel.host, exc)


def _exception(result: dict[str, Any], where: str) -> BaseException:
    """The job's exception: the original type when it unpickles here, else rebuilt."""
    text = result['error'][3]
    if result.get('exception') is not None:
        try:
            exc = cloudpickle.loads(result['exception'])
        except Exception:
            exc = None
        if isinstance(exc, BaseException):
            exc.remote_traceback = text
            exc.add_note(f'Raised remotely by {where}:\n{text.rstrip()}')
            return exc
    return rebuild(tuple(result['error']), where)


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as out:
        out.write(data)
