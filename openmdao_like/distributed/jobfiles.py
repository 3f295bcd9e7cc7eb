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
"""

from __future__ import annotations

import os
from typing import Any

import cloudpickle

from ..errors import JobError
from ..remote.failures import capture, rebuild

__all__ = ['write_job', 'job_command', 'read_result', 'run_job', 'JOB_FILE', 'RESULT_FILE']

JOB_FILE = 'job.pkl'
RESULT_FILE = 'result.pkl'


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
