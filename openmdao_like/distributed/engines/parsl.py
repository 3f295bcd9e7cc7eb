"""`ParslExecutor`: the cases of a driver as tasks of a Parsl configuration, through the dispatch
loop.

::

    from parsl import Config, HighThroughputExecutor
    from parsl.providers import SlurmProvider
    config = Config(executors=[HighThroughputExecutor(
        max_workers_per_node=4, provider=SlurmProvider(partition='cpu', max_blocks=2))])
    top.driver = DOEDriver(..., sequential=False, executor=ParslExecutor(config))

`ParslPool` is a `WorkerPool` whose workers are task slots: as many as the configuration can
run at once (workers per node x nodes per block x ``max_blocks`` of each executor, the workers
a node really has once its first manager connected; or ``n_workers``). The runner is pickled
once per `load` into a file of the run directory (``payload_dir``: a file system the workers
share), and each task carries the runner's key, that path and a chunk of case inputs, and
returns outcomes only (`tasks.run_task`: a worker reads the file once per run).

The loop keeps its policies: chunks, case_timeout and resends, losses. Our case ids are the
source of truth: a task that failed for the engine (``WorkerLost``, ``ManagerLost``, an
executor in a bad state) is a ``lost`` slot whose cases the loop runs again, and a case is
recorded once whatever the engine did. Parsl's own retries would run a lost task again behind
the loop's back: the kernel made here has ``retries=0``. Parsl cannot cancel a task: a slot the
loop stops (a resend won elsewhere, a run abandoned) is reported lost at once and its task's
outcome, when it comes, is dropped. The tasks of a worker that died with its node may never be
marked failed by Parsl (parsl issue #1245): set ``case_timeout`` so that their cases are sent
again to other slots.

The DataFlowKernel: for a ``Config``, the pool starts a kernel of its own from a copy of it
(the user's object is not changed, but its executors are started, and stopped at shutdown: a
Parsl executor runs once, so starting again needs a new ``Config``). A ``Config`` already loaded
with ``parsl.load``, a ``DataFlowKernel``, or None (the kernel ``parsl.load`` made) is used as
it is, with its retries, and left running at shutdown.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import time
import warnings
import weakref
from collections.abc import Hashable
from typing import Any

from ...execution.base import BrokenExecutor
from ...execution.loop import PoolExecutor
from ...extras import require
from ...options import OptionsDictionary
from .slots import TaskSlots
from .tasks import run_task

logger = logging.getLogger(__name__)

__all__ = ['ParslExecutor', 'ParslPool']

#: Configs whose executors a pool of ours started (a Parsl executor does not start twice).
_SPENT: weakref.WeakSet = weakref.WeakSet()


def _parsl() -> Any:
    """The ``parsl`` module (with ``parsl.app.python``); `ImportError` saying how to install
    it."""
    require('parsl.app.python', 'ParslExecutor', 'parsl')
    return require('parsl', 'ParslExecutor', 'parsl')


class ParslPool(TaskSlots):
    """Task slots of a Parsl configuration (see the module docstring).

    Parameters
    ----------
    target : Config, DataFlowKernel or None
        A ``parsl.Config`` (a kernel is made of a copy of it, and cleaned up with the pool),
        a running ``DataFlowKernel``, or None for the kernel loaded with ``parsl.load``.
    n_workers : int or None
        Task slots (None: derived from the configuration's executors).
    workers_timeout : float
        Seconds to wait for a first worker to run a task.
    payload_dir : str or None
        Where the pickled runner is written (None: the kernel's run directory).
    owner : str
        How messages name the executor.
    """

    def __init__(self, target: Any, n_workers: int | None, workers_timeout: float,
                 payload_dir: str | None, owner: str):
        super().__init__()
        self._target, self._n_wanted = target, n_workers
        self._workers_timeout, self._payload_dir = workers_timeout, payload_dir
        self._owner = owner
        self._dfk: Any = None
        self._own = False  # whether the kernel is ours to clean up
        self._app: Any = None
        self._key = ''
        self._path = ''  # the payload file of the current runner

    def describe(self, worker: Hashable) -> str:
        return f'Parsl task slot {worker}'

    # -- life cycle -----------------------------------------------------------------------------
    def start(self, payload: bytes) -> list[int]:
        parsl = _parsl()
        try:
            self._dfk = self._kernel(parsl)
            executors = list(self._dfk.config.executors)
            self._app = parsl.app.python.PythonApp(
                run_task, data_flow_kernel=self._dfk,
                executors=[ex.label for ex in executors])
            self._write(payload)
            self._probe()
            self._n = self._n_wanted or _slots(executors, self._owner)
            return list(range(self._n))
        except BaseException:
            self.close(cancel=True)
            raise

    def _kernel(self, parsl: Any) -> Any:
        """The DataFlowKernel of `_target` (made here from a copy of a Config not loaded)."""
        from parsl.dataflow.dflow import DataFlowKernel
        from parsl.errors import NoDataFlowKernelError
        target = self._target
        try:
            loaded = parsl.dfk()
        except NoDataFlowKernelError:
            loaded = None
        if target is None or (loaded is not None and loaded.config is target):
            if loaded is None:
                raise BrokenExecutor(f'{self._owner}: no Parsl configuration: pass a Config, or '
                                     f'load one first with parsl.load(config)')
            target = loaded
        if isinstance(target, DataFlowKernel):
            if target.cleanup_called:
                raise BrokenExecutor(f'{self._owner}: the Parsl DataFlowKernel was cleaned up')
            _warn_retries(target.config, self._owner, 'its')
            return target
        if not isinstance(target, parsl.Config):
            raise TypeError(f'{self._owner}: expected a parsl.Config, a DataFlowKernel or None, '
                            f'got {target!r}')
        if target in _SPENT:
            raise BrokenExecutor(f'{self._owner}: the executors of this Parsl Config ran '
                                 f'already and were shut down (a Parsl executor starts once): '
                                 f'give the ParslExecutor a new Config')
        _warn_retries(target, self._owner, 'the')
        config = copy.copy(target)  # (the user's stays as it is)
        config.retries, config.retry_handler = 0, None
        _SPENT.add(target)
        try:
            dfk = DataFlowKernel(config)
        except Exception as exc:
            raise BrokenExecutor(f'{self._owner}: cannot start the Parsl configuration: '
                                 f'{type(exc).__name__}: {exc}') from exc
        self._own = True
        return dfk

    def _probe(self) -> None:
        """Wait for a first worker: a task that loads the runner (`workers_timeout`). A task
        lost with its worker or block (``WorkerLost``, ``ManagerLost``: e.g. a batch job
        cancelled while it started) is sent again while time remains: another may come."""
        errors = require('parsl.executors.high_throughput.errors', 'ParslExecutor', 'parsl')
        lost = (errors.WorkerLost, errors.ManagerLost)  # with a worker or block, not by it
        deadline = time.monotonic() + self._workers_timeout
        while True:
            future = self._app(self._key, self._path, [])
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                return
            except TimeoutError as exc:
                raise BrokenExecutor(f'{self._owner}: the Parsl configuration ran no task '
                                     f'within {self._workers_timeout:g} s (workers_timeout): '
                                     f'no worker came') from exc
            except Exception as exc:
                if isinstance(exc, lost) and time.monotonic() < deadline:
                    logger.info('%s: the first task was lost (%s: %s); sending it again',
                                self._owner, type(exc).__name__, exc)
                    continue
                raise BrokenExecutor(f'{self._owner}: a first Parsl task could not load the '
                                     f'case runner: {type(exc).__name__}: {exc}') from exc

    def _write(self, payload: bytes) -> None:
        """Write the runner to a payload file (key: its hash); remove the previous one."""
        folder = self._payload_dir or self._dfk.run_dir
        os.makedirs(folder, exist_ok=True)
        key = hashlib.sha256(payload).hexdigest()[:24]
        path = os.path.abspath(os.path.join(folder, f'openmdao_like-runner-{key}.pkl'))
        partial = f'{path}.{os.getpid()}.part'
        with open(partial, 'wb') as file:
            file.write(payload)
        os.replace(partial, path)
        if self._path and self._path != path:
            _remove(self._path)
        self._key, self._path = key, path

    def load(self, payload: bytes) -> list[int]:
        self._write(payload)
        return list(range(self._n))

    def close(self, cancel: bool = False) -> None:
        self._drop_all()  # (Parsl cannot cancel a task: those in flight end on their own)
        dfk, self._dfk, self._app = self._dfk, None, None
        if dfk is not None and self._own:
            logs = _log_files(dfk.run_dir)
            try:
                dfk.cleanup()
            except Exception as exc:
                logger.warning('%s: the Parsl kernel was not cleaned up: %s', self._owner, exc)
            _cancel_blocks(dfk, self._owner)
            for handler in logs:  # (Parsl removes its parsl.log handler without closing it)
                if handler not in logging.getLogger('parsl').handlers:
                    handler.close()
        self._own = False
        if self._path:
            _remove(self._path)
            self._path = ''

    # -- work -----------------------------------------------------------------------------------
    def _submit(self, chunk: list[tuple[int, Any]]) -> Any:
        return self._app(self._key, self._path, chunk)


def _slots(executors: list[Any], owner: str) -> int:
    """Tasks the Parsl executors run at once: threads, or workers per node (those of a
    connected node when it is known) x nodes per block x max_blocks."""
    total = 0
    for ex in executors:
        threads = getattr(ex, 'max_threads', None)
        provider = getattr(ex, 'provider', None)
        if isinstance(threads, int):
            total += threads
            continue
        per_node = getattr(ex, 'workers_per_node', None)
        if provider is None or not isinstance(per_node, (int, float)):
            raise ValueError(f'{owner}: cannot tell how many tasks the Parsl executor '
                             f'{ex.label!r} runs at once: set n_workers')
        try:
            seen = [m['worker_count'] for m in ex.connected_managers()]
        except Exception:  # (not a HighThroughputExecutor)
            seen = []
        per_node = max(seen) if seen else per_node
        blocks = getattr(provider, 'max_blocks', 1) or 0
        total += int(per_node) * (getattr(provider, 'nodes_per_block', 1) or 1) * blocks
    return max(1, total)


def _warn_retries(config: Any, owner: str, whose: str) -> None:
    """Warn that Parsl retries are not needed (our loss policy runs lost cases again)."""
    if config.retries or config.retry_handler is not None:
        action = 'kept' if whose == 'its' else 'turned off for the kernel made here'
        warnings.warn(f'{owner}: Parsl retries ({whose} Config has retries={config.retries}) '
                      f'are {action}: a case whose task is lost is run again by the '
                      f'executor (max_resubmits, the driver\'s max_retries)', UserWarning,
                      stacklevel=4)


def _cancel_blocks(dfk: Any, owner: str) -> None:
    """Cancel the blocks of executors Parsl left in place (it does not scale in an executor
    in a bad state)."""
    for ex in dfk.config.executors:
        jobs = list(getattr(ex, 'blocks_to_job_id', {}).values())
        if jobs and getattr(ex, 'bad_state_is_set', False):
            try:
                ex.provider.cancel(jobs)
            except Exception as exc:
                logger.warning('%s: Parsl blocks %s not cancelled: %s', owner, jobs, exc)


def _log_files(run_dir: str) -> list[logging.FileHandler]:
    """The handlers of the ``parsl`` logger writing to a file under ``run_dir``."""
    run_dir = os.path.abspath(run_dir) + os.sep
    return [handler for handler in logging.getLogger('parsl').handlers
            if isinstance(handler, logging.FileHandler) and
            handler.baseFilename.startswith(run_dir)]


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


class ParslExecutor(PoolExecutor):
    """Run cases as tasks of a Parsl configuration (see the module docstring).

    Parameters
    ----------
    config : parsl.Config, DataFlowKernel or None
        Where to run: a ``Config`` (typically a ``HighThroughputExecutor`` with a
        ``LocalProvider`` or a ``SlurmProvider``; a kernel is made of a copy with
        ``retries=0`` at start, cleaned up at shutdown), a running ``DataFlowKernel``, or None
        for the one ``parsl.load`` made (both left running at shutdown).
    n_workers : int, optional
        Cases in flight at once (default: what the configuration's executors run at once).
    workers_timeout : float
        Seconds to wait for a first worker to run a task (a batch job queues; default 300).
    payload_dir : str, optional
        Directory on a file system the workers share for the pickled runner (default: the
        kernel's run directory, ``Config.run_dir``).
    case_timeout, max_resubmits
        As for every executor (`PoolExecutor`). Set ``case_timeout`` on clusters: the tasks of
        a worker that died with its node may never be marked failed by Parsl (parsl #1245);
        the case timeout sends their cases again.
    """

    max_chunk = 256

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('n_workers', None, types=int, lower=1, allow_none=True,
                        desc='cases in flight at once (None: what the Parsl executors run at '
                             'once)')
        options.declare('workers_timeout', 300.0, types=float, lower=0.0, exclude_lower=True,
                        desc='seconds to wait for a first worker to run a task')
        options.declare('payload_dir', None, types=str, allow_none=True,
                        desc="directory the workers share for the pickled runner (None: the "
                             "Parsl run directory)")

    def __init__(self, config: Any = None, **options: Any):
        super().__init__(**options)
        self.target = config

    def __repr__(self) -> str:
        target = self.target
        return f'ParslExecutor({type(target).__name__ if target is not None else None})'

    def __getstate__(self) -> dict[str, Any]:
        """Options only: a Config or kernel stays with the process that made it (a copy uses
        the kernel loaded with ``parsl.load`` where it is unpickled)."""
        state = super().__getstate__()
        state['target'] = None
        return state

    def _make_pool(self) -> ParslPool:
        return ParslPool(self.target, self.n_workers, self.workers_timeout, self.payload_dir,
                         repr(self))
