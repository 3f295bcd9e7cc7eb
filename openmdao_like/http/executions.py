"""The service's executions, each in a worker process, so a crash or a hang fails one call.

`ServiceRunner` is what every worker loads: it builds the offered components it is asked for
(one object per component and worker, kept), sets the inputs the call carries, runs and
returns the outputs; a component's exception comes back captured (`wire.failure`), and a File
output as the path of its file. `Executions` owns a `ProcessWorkerPool` (the project's worker
processes: started, watched, killed and replaced there) and gives each call to an idle worker
from the web server's event loop, settling its future when the worker answers. A call running
longer than its timeout, or cancelled, has its worker killed and replaced; the call fails with
`TimeoutError` or `CallCancelled`, a worker that dies with `WorkerLost`.

Why not the dispatch loop of `execution.loop`: it runs a driver's batch of cases (chunks,
prefetch, resends of stragglers); the service answers calls one by one as they arrive, each
with its own timeout, and cancels them. Both use the same pool.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import copy
import itertools
import logging
import os
import shutil
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

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
#: Seconds between two checks for stopped workers.
WATCH_EVERY = 1.0


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
        obj = set_as_top(cls(), directory)
        obj.directory = directory  # (each run in it: components write files where they are)
        return obj

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
        variables = tree.variables(obj)
        for var, (path, filename) in files.items():
            target = FileRef(variables[var].local_path or filename, obj, binary=True)
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

    __slots__ = ('id', 'message', 'timeout', 'future', 'timer', 'stop', 'waiter')

    def __init__(self, call_id: int, message: tuple, timeout: float):
        self.id, self.message, self.timeout = call_id, message, timeout
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.timer: asyncio.TimerHandle | None = None
        self.stop: BaseException | None = None  # why its worker was killed
        self.waiter: asyncio.Future | None = None  # `Executions.wait`'s


class Executions:
    """Worker processes and the calls given to them in an event loop (see the module
    docstring).

    The dispatching runs in the asyncio loop `attach` names (the web server's): the workers'
    pipes are watched there, and a call from a coroutine goes to an idle worker at once, with
    no thread in between (a thread handing calls over cost a millisecond a call in GIL
    handovers). `submit` and `cancel` may be called from any thread. `run` attaches a loop of
    its own for the time of a few calls (the service's start).

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
        self._idle: collections.deque[int] = collections.deque()
        self._lock = threading.Lock()  # guards the queue (submit from any thread)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._watch: asyncio.TimerHandle | None = None
        self._strikes = 0  # workers lost in a row before they were ready
        self.broken: str | None = None

    @property
    def n_workers(self) -> int:
        """How many executions may run at once."""
        return self._pool.size

    # -- the loop -------------------------------------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Dispatch in ``loop`` (call from its thread) from now on."""
        self._loop, self._loop_thread = loop, threading.get_ident()
        loop.add_reader(self._pool.fileno(), self._turn)
        self._watch = loop.call_later(WATCH_EVERY, self._check)
        self._turn()

    def detach(self) -> None:
        """Stop dispatching in the loop (call from its thread); calls wait for the next."""
        if self._loop is not None:
            self._loop.remove_reader(self._pool.fileno())
            self._watch.cancel()
            for call in self._busy.values():
                if call.timer is not None:
                    call.timer.cancel()
                    call.timer = None
        self._loop, self._loop_thread = None, 0

    def run(self, message: tuple, timeout: float) -> CaseOutcome:
        """One call from a thread without an event loop: its outcome (or its exception)."""
        async def one() -> CaseOutcome:
            self.attach(asyncio.get_running_loop())
            try:
                call = self.submit(message, timeout)
                await self.wait(call)
                return call.future.result()
            finally:
                self.detach()
        return asyncio.run(one())

    def submit(self, message: tuple, timeout: float) -> Call:
        """Queue one execution; its future gives the `CaseOutcome`, or raises `TimeoutError`,
        `CallCancelled` or `WorkerLost`."""
        if self.broken:
            raise RemoteError(f'the service cannot run executions: {self.broken}')
        call = Call(next(self._ids), message, timeout)
        with self._lock:
            self._queue.append(call)
        self._soon(self._dispatch)
        return call

    async def wait(self, call: Call) -> None:
        """Until ``call`` ended (in the loop's thread: woken by the dispatch itself, with no
        hand-over through ``call_soon_threadsafe`` as ``asyncio.wrap_future`` makes)."""
        if not call.future.done():
            call.waiter = asyncio.get_running_loop().create_future()
            if not call.future.done():  # (not ended meanwhile, from another thread)
                await call.waiter

    def cancel(self, call: Call) -> None:
        """Cancel ``call``: dropped if it waits, its worker killed if it runs."""
        self._soon(self._cancel, call)

    def close(self) -> None:
        """Stop the workers (detach first); calls not ended fail."""
        with self._lock:
            left = list(self._queue) + list(self._busy.values())
            self._queue.clear()
            self._busy.clear()
        for call in left:
            _settle(call, exception=RemoteError('the service stopped before the execution '
                                                'ended'))
        self._pool.close(cancel=True)

    def _soon(self, function: Callable[..., None], *args: Any) -> None:
        """Run ``function`` in the loop: now when called from it, else as soon as it can."""
        loop = self._loop
        if loop is None:
            return  # (attach dispatches what waits)
        if threading.get_ident() == self._loop_thread:
            function(*args)
        else:
            try:
                loop.call_soon_threadsafe(function, *args)
            except RuntimeError:  # (the loop closed meanwhile)
                pass

    # -- in the loop ----------------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Give waiting calls to idle workers."""
        pool, idle = self._pool, self._idle
        while idle:
            with self._lock:
                if not self._queue:
                    return
                call = self._queue.popleft()
            if not call.future.set_running_or_notify_cancel():
                continue
            worker = idle.popleft()
            self._busy[worker] = call
            call.timer = self._loop.call_later(call.timeout, self._overdue, worker, call)
            pool.send(worker, [(call.id, call.message)])

    def _cancel(self, call: Call) -> None:
        with self._lock:
            waiting = call in self._queue
            if waiting:
                self._queue.remove(call)
        if waiting:
            _settle(call, exception=CallCancelled('cancelled before it started'))
            return
        for worker, running in self._busy.items():
            if running is call and call.stop is None:
                call.stop = CallCancelled('cancelled while it ran; its worker was stopped')
                self._pool.kill(worker, str(call.stop))

    def _overdue(self, worker: int, call: Call) -> None:
        if self._busy.get(worker) is call and call.stop is None:
            call.stop = TimeoutError(f'the execution ran longer than its timeout of '
                                     f'{call.timeout:g} s; its worker was stopped')
            self._pool.kill(worker, str(call.stop))

    def _check(self) -> None:
        """Every `WATCH_EVERY` seconds: kill workers stopped (SIGSTOP) for too long."""
        self._pool.check(self._busy)
        self._watch = self._loop.call_later(WATCH_EVERY, self._check)

    def _turn(self) -> None:
        """Take the workers' events (ready, done, lost), then dispatch."""
        pool, busy, idle = self._pool, self._busy, self._idle
        for worker, kind, data in pool.poll(0):
            if kind == 'ready':
                self._strikes = 0
                if worker not in busy and worker not in idle:
                    idle.append(worker)
            elif kind == 'done':
                call = busy.pop(worker, None)
                idle.append(worker)
                if call is not None:
                    _settle(call, result=data[0])
            elif kind == 'lost':
                self._lost(worker, data)
            elif kind == 'init_failed':
                self._broken(f'a worker could not start: {data.strip()}')
        self._dispatch()

    def _lost(self, worker: int, why: str) -> None:
        call = self._busy.pop(worker, None)
        if worker in self._idle:
            self._idle.remove(worker)
        elif call is None:  # (lost before it was ready)
            self._strikes += 1
            if self._strikes >= MAX_STRIKES:
                self._broken(f'{MAX_STRIKES} workers died as they started; the last {why}')
                return
        if call is not None:
            _settle(call, exception=call.stop or WorkerLost(
                f'{self._pool.describe(worker)} running it {why}'))
        logger.warning('%s %s; replacing it', self._pool.describe(worker), why)
        self._pool.replace(worker)

    def _broken(self, why: str) -> None:
        self.broken = why
        logger.error('%s', why)
        with self._lock:
            left = list(self._queue)
            self._queue.clear()
        for call in left:
            _settle(call, exception=RemoteError(f'the service cannot run executions: {why}'))


def _settle(call: Call, result: Any = None, exception: BaseException | None = None) -> None:
    """Give ``call`` its outcome (once)."""
    if call.timer is not None:
        call.timer.cancel()
        call.timer = None
    if call.future.done():
        return
    if exception is not None:
        call.future.set_exception(exception)
    else:
        call.future.set_result(result)
    waiter = call.waiter
    if waiter is not None and not waiter.done():
        loop = waiter.get_loop()
        if loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            waiter.set_result(None)
        else:
            loop.call_soon_threadsafe(lambda: waiter.done() or waiter.set_result(None))
