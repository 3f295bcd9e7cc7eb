"""The service's executions, each in a worker process, so a crash or a hang fails one call.

`ServiceRunner` is what every worker loads: it builds the offered components it is asked for
(one object per component and worker, kept), sets every input the call carries, runs and
returns the outputs; a component's exception comes back captured (`wire.failure`), and a File
output as the path of its file. `Executions` owns a `ProcessWorkerPool` (the project's worker
processes: started, watched, killed and replaced there) and one thread that gives each call to
an idle worker and settles its future. A call running longer than its timeout, or cancelled,
has its worker killed and replaced; the call fails with `TimeoutError` or `CallCancelled`, a
worker that dies with `WorkerLost`.

Why not the dispatch loop of `execution.loop`: it runs a driver's batch of cases (chunks,
prefetch, resends of stragglers); the service answers calls one by one as they arrive, each
with its own timeout, and cancels them. Both use the same pool.
"""

from __future__ import annotations

import collections
import concurrent.futures
import copy
import itertools
import logging
import os
import shutil
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import cloudpickle

from .. import tree
from ..cases import FAILED, OK
from ..component import Component
from ..container import set_as_top
from ..errors import OpenMDAOLikeError, RemoteError
from ..execution.base import CaseOutcome
from ..execution.pools import ProcessWorkerPool
from ..factories import factory_manager
from ..remote.objserver import describe_variable
from ..variables.file import FileRef
from .wire import failure

logger = logging.getLogger(__name__)

__all__ = ['ServiceRunner', 'Executions', 'Call', 'CallCancelled', 'WorkerLost', 'FAILURE',
           'PATH_KEY']

#: Key of a failed outcome's outputs holding the captured exception.
FAILURE = '__failure__'
#: A File output, as a worker returns it: ``{PATH_KEY: absolute path, 'filename': name}``.
PATH_KEY = '__path__'
#: Workers dying in a row as they start after which the service gives up on executions.
MAX_STRIKES = 3
#: Seconds the dispatcher waits for events when nothing is due sooner.
IDLE_WAIT = 1.0


class CallCancelled(OpenMDAOLikeError):
    """The call was cancelled before it ended."""


class WorkerLost(RemoteError):
    """The worker process running the call died (the component crashed it)."""


class ServiceRunner:
    """What a worker process runs: ``runner(call id, message)`` -> `CaseOutcome`.

    Messages: ``('describe', names)`` -> outputs ``{name: {'description', 'variables'}}``;
    ``('run', name, inputs, files)`` -> the outputs of one execution of component ``name``
    with ``inputs`` and ``files`` (input name -> (path, file name)); every other input is at
    its initial value (the one object a worker keeps per component is reset to it, so a call
    never sees another's inputs).
    """

    def __init__(self, components: tuple[str, ...], workdir: str):
        self.components = frozenset(components)
        self.workdir = workdir
        self._objects: dict[str, Component] = {}
        self._initial: dict[str, dict[str, Any]] = {}  # name -> its inputs as built
        self._set: dict[str, frozenset] = {}  # name -> the inputs the last call set

    def __call__(self, call_id: int, message: tuple) -> CaseOutcome:
        try:
            if message[0] == 'describe':
                outputs = {name: self._describe(name) for name in message[1]}
            else:
                outputs = self._run(*message[1:])
        except Exception as exc:
            return CaseOutcome(call_id, {FAILURE: failure(exc)}, FAILED, traceback.format_exc())
        return CaseOutcome(call_id, outputs, OK, None)

    def _build(self, name: str, directory: str) -> Component:
        if name not in self.components:  # (the service checks first: never reached by users)
            raise LookupError(f'{name} is not offered by this service')
        cls = factory_manager.find_class(name)
        if not (isinstance(cls, type) and issubclass(cls, Component)):
            raise TypeError(f'{name}: expected a Component class to offer, got {cls!r}')
        os.makedirs(directory, exist_ok=True)
        return set_as_top(cls(), directory)

    def _describe(self, name: str) -> dict[str, Any]:
        obj = self._object(name)
        doc = (type(obj).__doc__ or '').strip().split('\n\n')[0]
        return {'description': ' '.join(doc.split()),
                'variables': {n: describe_variable(var, getattr(obj, n))
                              for n, var in tree.variables(obj).items()}}

    def _object(self, name: str) -> Component:
        obj = self._objects.get(name)
        if obj is None:
            directory = os.path.join(self.workdir, f'worker-{os.getpid()}', name)
            obj = self._objects[name] = self._build(name, directory)
            self._initial[name] = {n: copy.deepcopy(getattr(obj, n))
                                   for n, v in tree.variables(obj).items() if v.iotype == 'in'}
            self._set[name] = frozenset()
        return obj

    def _run(self, name: str, inputs: dict[str, Any], files: dict[str, tuple[str, str]]
             ) -> dict[str, Any]:
        obj = self._object(name)
        for var, (path, filename) in files.items():
            target = FileRef(filename, obj, binary=True)
            shutil.copyfile(path, target.abspath())
            inputs[var] = target
        initial = self._initial[name]
        for var in self._set[name] - inputs.keys():
            setattr(obj, var, copy.deepcopy(initial[var]))
        self._set[name] = frozenset(inputs)
        for var, value in inputs.items():
            setattr(obj, var, value)
        obj.run()
        outputs = {}
        for var, meta in tree.variables(obj).items():
            if meta.iotype != 'out':
                continue
            value = getattr(obj, var)
            if isinstance(value, FileRef):
                value = {PATH_KEY: value.abspath(), 'filename': os.path.basename(value.path)}
            outputs[var] = value
        return outputs


class Call:
    """One execution handed to `Executions`: its message, timeout and future (whose result
    is the `CaseOutcome`)."""

    __slots__ = ('id', 'message', 'timeout', 'future', 'deadline', 'stop', 'killed')

    def __init__(self, call_id: int, message: tuple, timeout: float):
        self.id, self.message, self.timeout = call_id, message, timeout
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.deadline = float('inf')
        self.stop: BaseException | None = None  # why its worker is being killed
        self.killed = False


class Executions:
    """Worker processes and the thread that gives them calls (see the module docstring).

    Parameters
    ----------
    components : tuple of str
        Dotted class names the workers may build.
    workdir : str or Path
        Where the components' directories are made.
    n_workers : int
        Worker processes.
    """

    def __init__(self, components: tuple[str, ...], workdir: str | Path, n_workers: int = 2):
        self._pool = ProcessWorkerPool(n_workers, 'spawn')  # (the server has threads: no fork)
        self._pool.start(cloudpickle.dumps(ServiceRunner(tuple(components), str(workdir))))
        self._ids = itertools.count()
        self._queue: collections.deque[Call] = collections.deque()
        self._busy: dict[int, Call] = {}
        self._lock = threading.Lock()
        self._closing = False
        self.broken: str | None = None
        self._thread = threading.Thread(target=self._dispatch, name='openmdao_like-http-calls',
                                        daemon=True)
        self._thread.start()

    @property
    def n_workers(self) -> int:
        """How many executions may run at once."""
        return self._pool.size

    def submit(self, message: tuple, timeout: float) -> Call:
        """Queue one execution; its future gives the `CaseOutcome`, or raises `TimeoutError`,
        `CallCancelled` or `WorkerLost`."""
        call = Call(next(self._ids), message, timeout)
        with self._lock:
            if self._closing or self.broken:
                raise RemoteError(f'the service cannot run executions: '
                                  f'{self.broken or "it is stopping"}')
            self._queue.append(call)
        self._pool.wake()
        return call

    def cancel(self, call: Call) -> None:
        """Cancel ``call``: dropped if it waits, its worker killed if it runs."""
        with self._lock:
            if call in self._queue:
                self._queue.remove(call)
                call.future.set_exception(CallCancelled('cancelled before it started'))
                return
            if call in self._busy.values() and call.stop is None:
                call.stop = CallCancelled('cancelled while it ran; its worker was stopped')
        self._pool.wake()

    def close(self) -> None:
        """Stop the workers (calls still running fail)."""
        with self._lock:
            self._closing = True
        self._pool.wake()
        self._thread.join(30.0)

    # -- the dispatcher thread ------------------------------------------------------------------
    def _dispatch(self) -> None:
        pool, busy, idle = self._pool, self._busy, collections.deque()
        strikes = 0  # workers lost in a row before they were ready
        try:
            while True:
                with self._lock:
                    closing = self._closing
                    while idle and self._queue and not closing:
                        call = self._queue.popleft()
                        if not call.future.set_running_or_notify_cancel():
                            continue
                        worker = idle.popleft()
                        call.deadline = time.monotonic() + call.timeout
                        busy[worker] = call
                        pool.send(worker, [(call.id, call.message)])
                if closing or self.broken:
                    break
                self._stop_overdue()
                due = min((c.deadline for c in busy.values()), default=float('inf'))
                wait = min(IDLE_WAIT, max(0.0, due - time.monotonic()))
                for worker, kind, data in pool.poll(wait):
                    if kind == 'ready':
                        strikes = 0
                        if worker not in busy and worker not in idle:
                            idle.append(worker)
                    elif kind == 'done':
                        call = busy.pop(worker, None)
                        idle.append(worker)
                        if call is not None and not call.future.done():
                            call.future.set_result(data[0])
                    elif kind == 'lost':
                        call = busy.pop(worker, None)
                        if worker in idle:
                            idle.remove(worker)
                        elif call is None:  # (lost before it was ready)
                            strikes += 1
                            if strikes >= MAX_STRIKES:
                                self.broken = f'{MAX_STRIKES} workers died as they started; ' \
                                              f'the last {data}'
                                logger.error('%s', self.broken)
                                break
                        if call is not None:
                            call.future.set_exception(call.stop or WorkerLost(
                                f'{pool.describe(worker)} running it {data}'))
                        logger.warning('%s %s; replacing it', pool.describe(worker), data)
                        pool.replace(worker)
                    elif kind == 'init_failed':
                        self.broken = f'a worker could not start: {data.strip()}'
                        logger.error('%s', self.broken)
                pool.check(busy)
        finally:
            self._fail_all()
            pool.close(cancel=True)

    def _stop_overdue(self) -> None:
        """Kill the workers of calls past their deadline or cancelled."""
        now = time.monotonic()
        for worker, call in self._busy.items():
            if call.stop is None and now >= call.deadline:
                call.stop = TimeoutError(f'the execution ran longer than its timeout of '
                                         f'{call.timeout:g} s; its worker was stopped')
            if call.stop is not None and not call.killed:
                call.killed = True
                self._pool.kill(worker, str(call.stop))

    def _fail_all(self) -> None:
        with self._lock:
            left = list(self._queue) + list(self._busy.values())
            self._queue.clear()
            self._busy.clear()
        for call in left:
            if not call.future.done():
                call.future.set_exception(RemoteError('the service stopped before the '
                                                      'execution ended'))
