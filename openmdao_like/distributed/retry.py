"""`RetryWrapper`: run a component again when it fails the way flaky things fail.

Seeded by GEMSEO's RetryDiscipline: each execution of the wrapped component is tried up to
``1 + max_retries`` times, waiting ``wait_time`` seconds between tries, as long as the error is
one of ``retry_on`` and none of ``fatal``. With ``timeout`` each try runs in a child process
started through a `LocalChannel` (the job path of `openmdao_like.distributed.jobfiles`, shared
with the SSH and batch wrappers), stopped with its whole process group when the time is up —
a hung solver cannot be interrupted any other way.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from .. import tree
from ..options import HasOptions, OptionsDictionary
from ..resources.channels import LocalChannel
from .jobfiles import JOB_RAN, ShippedJob
from .wrapper import ComponentWrapper

logger = logging.getLogger(__name__)

__all__ = ['RetryWrapper']


def _exception_types(types: tuple[Any, ...]) -> tuple[type[BaseException], ...]:
    """``check=`` of ``retry_on`` and ``fatal``: a tuple of exception classes."""
    if not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise TypeError(types)
    return types


class RetryWrapper(HasOptions, ComponentWrapper):
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

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('max_retries', 3, types=int, lower=0, accepts='an int >= 0',
                        desc='further tries after the first failure')
        options.declare('wait_time', 0.0, types=float, lower=0.0, accepts='a number >= 0',
                        desc='seconds to wait before each retry')
        options.declare('timeout', None, types=float, lower=0.0, exclude_lower=True,
                        allow_none=True, accepts='a number > 0 or None',
                        desc='seconds one try may take (then it is killed)')
        exceptions = 'a tuple of exception types'
        options.declare('retry_on', (Exception,), types=tuple, accepts=exceptions,
                        check=_exception_types, desc='failures worth another try')
        options.declare('fatal', (), types=tuple, accepts=exceptions,
                        check=_exception_types, desc='failures never retried')

    def __init__(self, comp: Any, max_retries: int = 3, wait_time: float = 0.0,
                 timeout: float | None = None,
                 retry_on: tuple[type[BaseException], ...] = (Exception,),
                 fatal: tuple[type[BaseException], ...] = (), **options: Any):
        super().__init__(comp, max_retries=max_retries, wait_time=wait_time, timeout=timeout,
                         retry_on=retry_on, fatal=fatal, **options)
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
                    exc.add_note(f'{tree.where(self)}: failed {self.n_tries} times '
                                 f'(max_retries={self.max_retries})')
                    raise
                logger.warning('%s: try %d of %d failed (%s: %s); retrying in %g s',
                               tree.where(self), self.n_tries, 1 + self.max_retries,
                               type(exc).__name__, exc, self.wait_time)
                time.sleep(self.wait_time)
        raise AssertionError('unreachable')

    def _try_once(self) -> dict[str, Any] | None:
        """One try: in this process, or in a child process killed after ``timeout``."""
        if self.timeout is None:
            self.wrapped.run()
            return None
        where = tree.where(self)
        with ShippedJob(LocalChannel(), where, prefix='oml-retry-') as job:
            job.ship(self.wrapped)
            # the child imports what this process can (the model's modules may come from
            # sys.path entries added at run time, as in a notebook or a test)
            env = {'PYTHONPATH': os.pathsep.join(os.path.abspath(p) for p in sys.path if p)}
            status, tail = job.run(sys.executable, self.timeout, env)
            if status is None:
                raise TimeoutError(f'{where}: try {self.n_tries} did not finish within '
                                   f'{self.timeout:g} s and was killed')
            if status not in JOB_RAN:
                raise RuntimeError(f'{where}: try {self.n_tries} ended with status {status}; '
                                   f'its output ends with:\n{tail}')
            if not job.fetch():
                raise RuntimeError(f'{where}: try {self.n_tries} left no result')
            return job.result(self.wrapped)

