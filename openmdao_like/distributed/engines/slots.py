"""`TaskSlots`: the part of a `WorkerPool` that is the same for every engine whose workers are
task slots and whose tasks are futures (Dask, Parsl).

The loop holds up to two chunks per slot and expects a slot's outcomes in the order it sent
them, so a slot's futures are kept in order and reported as the first of them ends. A task
that ended in an exception (the engine lost it, its worker died) makes its slot ``lost``: the
loop runs its case again and sends the chunks held behind it again, so the slot's other tasks
are dropped (their outcomes, if they come, are not wanted). A slot the loop stops (`kill`) is
reported lost at once, whatever the engine can do about its running task.
"""

from __future__ import annotations

import abc
import collections
import itertools
import queue
from collections.abc import Hashable
from typing import Any

from ...execution.pools import WorkerPool, drain

__all__ = ['TaskSlots']


class TaskSlots(WorkerPool):
    """Task slots fed with engine futures (see the module docstring); an engine's pool says how
    to submit a chunk (`_submit`) and how to give up a future (`_cancel`)."""

    def __init__(self) -> None:
        self._n = 0
        self._tasks: dict[Hashable, collections.deque] = {}  # slot -> its futures, in order
        self._why: dict[Hashable, str] = {}
        self._events: queue.SimpleQueue = queue.SimpleQueue()

    @property
    def size(self) -> int:
        return self._n

    @abc.abstractmethod
    def _submit(self, chunk: list[tuple[int, Any]]) -> Any:
        """A future of the task running ``chunk`` (`tasks.run_task`)."""

    def _cancel(self, future: Any) -> None:
        """Give up ``future`` (an engine that can cancel its task does it here)."""

    def send(self, worker: Hashable, chunk: list[tuple[int, Any]]) -> None:
        future = self._submit(chunk)
        self._tasks.setdefault(worker, collections.deque()).append(future)
        future.add_done_callback(lambda done: self._events.put(worker))

    def _outcomes(self, futures: list[Any]) -> list[Any]:
        """The result of each ended future, or the exception it ended with (an engine whose
        results must be fetched fetches them all at once here)."""
        found = []
        for future in futures:
            try:
                found.append(future.result())
            except Exception as exc:
                found.append(exc)
        return found

    def poll(self, timeout: float) -> list[tuple[Hashable, str, Any]]:
        ended: dict[Hashable, list[Any]] = {}  # slot -> its futures ended first, in order
        for worker in dict.fromkeys(drain(self._events, timeout)):
            futures = self._tasks.get(worker)
            if worker not in self._why and futures:
                ended[worker] = list(itertools.takewhile(lambda f: f.done(), futures))
        flat = [future for futures in ended.values() for future in futures]
        outcomes = dict(zip(map(id, flat), self._outcomes(flat))) if flat else {}
        events: list[tuple[Hashable, str, Any]] = []
        for worker in list(ended) + [w for w in list(self._why) if w not in ended]:
            why = self._why.pop(worker, None)
            for future in ended.get(worker, ()) if why is None else ():
                self._tasks[worker].popleft()
                outcome = outcomes[id(future)]
                if isinstance(outcome, Exception):  # (the engine lost it, or its worker died)
                    why = f'lost its task: {type(outcome).__name__}: {outcome}'
                    break
                events.append((worker, 'done', outcome))
            if why is not None:
                events.append((worker, 'lost', why))
                self._drop(worker)
        return events

    def _drop(self, worker: Hashable) -> None:
        """Forget the futures of a slot the loop counts as lost."""
        for future in self._tasks.pop(worker, None) or ():
            self._cancel(future)

    def _drop_all(self) -> None:
        for worker in list(self._tasks):
            self._drop(worker)

    def kill(self, worker: Hashable, why: str) -> None:
        if self._tasks.get(worker):
            self._why[worker] = why
            self._events.put(worker)

    def replace(self, worker: Hashable) -> list[Hashable]:
        return [worker]
