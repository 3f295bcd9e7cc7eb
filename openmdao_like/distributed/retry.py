"""`RetryWrapper`: run a component again when it fails the way flaky things fail.

Seeded by GEMSEO's RetryDiscipline: each execution of the wrapped component is tried up to
``1 + max_retries`` times, waiting ``wait_time`` seconds between tries, as long as the error is
one of ``retry_on`` and none of ``fatal``. With ``timeout`` each try runs in a child process
(through `openmdao_like.distributed.jobfiles`) that is killed, with its whole process group,
when the time is up — a hung solver cannot be interrupted any other way.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from ..errors import describe
from .jobfiles import job_command, read_result, write_job
from .wrapper import ComponentWrapper

logger = logging.getLogger(__name__)

__all__ = ['RetryWrapper']


class RetryWrapper(ComponentWrapper):
    """Run ``comp``, retrying failures (see the module docstring).

    Parameters
    ----------
    comp : Component
        The component or assembly to run.
    max_retries : int
        Further tries after the first failure (>= 0).
    wait_time : float
        Seconds to wait before each retry.
    timeout : float, optional
        Seconds one try may take (then it is killed and counts as a `TimeoutError`).
    retry_on : tuple of exception types
        Failures worth another try (default: any `Exception`).
    fatal : tuple of exception types
        Failures never retried, even when they match ``retry_on``.

    Attributes
    ----------
    n_tries : int
        Tries used by the last execution.
    """

    def __init__(self, comp: Any, max_retries: int = 3, wait_time: float = 0.0,
                 timeout: float | None = None,
                 retry_on: tuple[type[BaseException], ...] = (Exception,),
                 fatal: tuple[type[BaseException], ...] = ()):
        name = type(self).__name__
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f'{name}: max_retries must be an int >= 0, got '
                             f'{describe(max_retries)}')
        for what, value in (('wait_time', wait_time), ('timeout', timeout)):
            if value is None and what == 'timeout':
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or \
                    (what == 'timeout' and value == 0):
                raise ValueError(f'{name}: {what} must be a number '
                                 f'{"> 0 or None" if what == "timeout" else ">= 0"}, got '
                                 f'{describe(value)}')
        for what, types in (('retry_on', retry_on), ('fatal', fatal)):
            if not isinstance(types, tuple) or not all(
                    isinstance(t, type) and issubclass(t, BaseException) for t in types):
                raise TypeError(f'{name}: {what} must be a tuple of exception types, got '
                                f'{describe(types)}')
        super().__init__(comp)
        self.max_retries = max_retries
        self.wait_time = float(wait_time)
        self.timeout = timeout
        self.retry_on = retry_on
        self.fatal = fatal
        self.n_tries = 0

    def _run_wrapped(self) -> dict[str, Any] | None:
        """Try until a run succeeds, a failure is not retryable, or the tries are used up."""
        for attempt in range(1 + self.max_retries):
            self.n_tries = attempt + 1
            try:
                return self._try_once()
            except self.fatal:
                raise
            except self.retry_on as exc:
                if attempt == self.max_retries:
                    exc.add_note(f'{self._where()}: failed {self.n_tries} times '
                                 f'(max_retries={self.max_retries})')
                    raise
                logger.warning('%s: try %d of %d failed (%s: %s); retrying in %g s',
                               self._where(), self.n_tries, 1 + self.max_retries,
                               type(exc).__name__, exc, self.wait_time)
                time.sleep(self.wait_time)
        raise AssertionError('unreachable')

    def _try_once(self) -> dict[str, Any] | None:
        """One try: in this process, or in a child process killed after ``timeout``."""
        if self.timeout is None:
            self.wrapped.run()
            return None
        with tempfile.TemporaryDirectory(prefix='oml-retry-') as job:
            write_job(self.wrapped, job)
            # the child imports what this process can (the model's modules may come from
            # sys.path entries added at run time, as in a notebook or a test)
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
            proc = subprocess.Popen(job_command(sys.executable, job), start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            try:
                _, stderr = proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                raise TimeoutError(f'{self._where()}: try {self.n_tries} did not finish within '
                                   f'{self.timeout:g} s and was killed') from None
            finally:  # timed out or interrupted: end the try and whatever it started
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
            if proc.returncode not in (0, 1):  # 1: the model raised (in the result)
                tail = stderr.decode(errors='replace')[-2000:]
                raise RuntimeError(f'{self._where()}: try {self.n_tries} ended with status '
                                   f'{proc.returncode}; stderr ends with:\n{tail}')
            return read_result(job, self.wrapped, self._where())
