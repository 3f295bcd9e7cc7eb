"""`ResourceAllocationManager`: finds the allocator that serves a resource description best and
starts a server there. `RAM` is the process-wide instance; its servers are released at exit.

``allocate`` asks every allocator for its `time_estimate <Allocator.time_estimate>`, deploys on
the one with the lowest estimate (ties: the first added), falls through to the next when a
deploy fails, and waits while every willing allocator is busy (-1).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import numbers
import threading
import time
from typing import Any, Mapping

from ..errors import AllocationError, RemoteError
from ..remote.client import FactoryProxy
from .allocator import NEVER, NOT_NOW, Allocator, Estimate
from .description import validate_resource_desc

logger = logging.getLogger(__name__)

__all__ = ['ResourceAllocationManager', 'RAM']

#: Errors of a deploy after which the next allocator is tried.
DEPLOY_ERRORS = (AllocationError, RemoteError, OSError)


class ResourceAllocationManager:
    """Allocates servers from a list of allocators (thread-safe).

    Parameters
    ----------
    allocators : list of Allocator, optional
        The allocators, in order of preference for equal estimates.
    config : str, optional
        A resources config file to read the allocators from (see
        `openmdao_like.resources.config`). With neither argument the allocators come, on first
        use, from the config file when there is one, else a `LocalAllocator`.
    """

    #: Seconds `allocate` waits by default while every willing allocator is busy.
    wait_timeout: float = 600.0
    #: First and longest pause between asking busy allocators again.
    poll_interval: float = 0.2
    max_poll_interval: float = 5.0

    def __init__(self, allocators: list[Allocator] | None = None, config: str | None = None):
        if allocators is not None and config is not None:
            raise ValueError('ResourceAllocationManager: give allocators or config, not both')
        self._lock = threading.RLock()
        self._config = config
        self._counter = itertools.count(1)
        self._allocators: list[Allocator] | None = None
        if allocators is not None:
            if isinstance(allocators, Allocator) or not isinstance(allocators, (list, tuple)):
                raise TypeError(f'ResourceAllocationManager: allocators should be a list of '
                                f'Allocator, got {allocators!r}')
            self._allocators = []
            for allocator in allocators:
                self._insert(len(self._allocators), allocator)

    def __repr__(self) -> str:
        with self._lock:
            listed = 'not loaded yet' if self._allocators is None else \
                ', '.join(a.name for a in self._allocators)
        return f'<ResourceAllocationManager: {listed}>'

    # -- the allocators ---------------------------------------------------------------------------
    def _loaded(self) -> list[Allocator]:
        """The allocator list, read from the config (or defaulted) on first use."""
        with self._lock:
            if self._allocators is None:
                from .config import config_path, load_allocators

                path = self._config or config_path()
                if path is not None:
                    self._allocators = load_allocators(path)
                    logger.info('allocators from %s: %s', path,
                                ', '.join(a.name for a in self._allocators))
                else:
                    from .local import LocalAllocator
                    self._allocators = [LocalAllocator()]
            return self._allocators

    def _insert(self, index: int, allocator: Allocator) -> None:
        if not isinstance(allocator, Allocator):
            raise TypeError(f'ResourceAllocationManager: expected an Allocator, got '
                            f'{allocator!r} ({type(allocator).__name__})')
        allocators = self._loaded()
        if any(a.name == allocator.name for a in allocators):
            raise ValueError(f'ResourceAllocationManager: an allocator named '
                             f'{allocator.name!r} is already added')
        allocators.insert(index, allocator)

    def add_allocator(self, allocator: Allocator) -> None:
        """Append ``allocator`` (last in preference among equal estimates)."""
        with self._lock:
            self._insert(len(self._loaded()), allocator)

    def insert_allocator(self, index: int, allocator: Allocator) -> None:
        """Insert ``allocator`` at ``index`` of the preference order."""
        with self._lock:
            self._insert(index, allocator)

    def get_allocator(self, name: str) -> Allocator:
        """The allocator called ``name``; `ValueError` listing the names otherwise."""
        with self._lock:
            for allocator in self._loaded():
                if allocator.name == name:
                    return allocator
            raise ValueError(self._unknown(name))

    def remove_allocator(self, name_or_allocator: str | Allocator) -> Allocator:
        """Remove an allocator (by name or itself) and return it; its servers stay allocated
        until it is shut down."""
        with self._lock:
            allocators = self._loaded()
            for i, allocator in enumerate(allocators):
                if allocator is name_or_allocator or allocator.name == name_or_allocator:
                    return allocators.pop(i)
            raise ValueError(self._unknown(name_or_allocator))

    def _unknown(self, what: Any) -> str:
        names = ', '.join(a.name for a in self._loaded()) or 'none'
        return f'ResourceAllocationManager: no allocator {what!r}; allocators: {names}'

    def list_allocators(self) -> list[Allocator]:
        """The allocators in order of preference."""
        with self._lock:
            return list(self._loaded())

    # -- asking -----------------------------------------------------------------------------------
    def estimates(self, res_desc: Mapping[str, Any] | None = None
                  ) -> list[tuple[Allocator, float, dict[str, Any]]]:
        """``(allocator, estimate, criteria)`` of every allocator for ``res_desc``. An allocator
        whose `time_estimate` raises counts as refusing (-2) with the error as its reason."""
        desc = validate_resource_desc(res_desc)
        return [(a, *self._estimate(a, desc)) for a in self.list_allocators()]

    @staticmethod
    def _estimate(allocator: Allocator, desc: dict[str, Any]) -> Estimate:
        try:
            estimate, criteria = allocator.time_estimate(desc)
        except Exception as exc:
            logger.warning('%s: time_estimate failed: %s: %s', allocator.name,
                           type(exc).__name__, exc)
            return NEVER, {'refused': {'time_estimate': f'{type(exc).__name__}: {exc}'}}
        return estimate, dict(criteria or {})

    def max_servers(self, res_desc: Mapping[str, Any] | None = None) -> int:
        """How many servers for ``res_desc`` all allocators together could run at once."""
        desc = validate_resource_desc(res_desc)
        return sum(a.max_servers(desc) for a in self.list_allocators())

    # -- allocating -------------------------------------------------------------------------------
    def allocate(self, res_desc: Mapping[str, Any] | None = None, timeout: float | None = None,
                 name: str | None = None) -> tuple[FactoryProxy, dict[str, Any]]:
        """A server for ``res_desc`` and what is known about it (host, port, ..., 'allocator').

        Waits up to ``timeout`` seconds (default `wait_timeout`; 0: not at all) while the
        allocators that could serve it are busy. `AllocationError` says what each allocator
        answered when none can.
        """
        desc = validate_resource_desc(res_desc)
        if timeout is None:
            timeout = self.wait_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or timeout < 0:
            raise ValueError(f'allocate: timeout should be a number of seconds >= 0, got '
                             f'{timeout!r}')
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f'allocate: name should be a non-empty string, got {name!r}')
        deadline = time.monotonic() + timeout
        interval = self.poll_interval
        while True:
            answers = [(a, *self._estimate(a, desc)) for a in self.list_allocators()]
            if not answers:
                raise AllocationError('cannot allocate: the ResourceAllocationManager has no '
                                      'allocators')
            candidates = sorted((x for x in answers if x[1] >= 0), key=lambda x: x[1])
            if candidates:
                return self._deploy(candidates, desc, name)
            busy = [x for x in answers if x[1] == NOT_NOW]
            if not busy:
                raise AllocationError(f'no allocator can serve {desc}: '
                                      f'{_refusals(answers)}')
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                never = [x for x in answers if x[1] != NOT_NOW]
                extra = f'; never: {_refusals(never)}' if never else ''
                raise AllocationError(
                    f'no allocator could serve {desc} within {timeout:g} s; busy: '
                    + '; '.join(f'{a.name}: {c.get("reason", "busy")}' for a, _, c in busy)
                    + extra)
            logger.debug('every allocator that could serve %s is busy; asking again in %.1f s',
                         desc, min(interval, remaining))
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, self.max_poll_interval)

    def _deploy(self, candidates: list[tuple[Allocator, float, dict[str, Any]]],
                desc: dict[str, Any], name: str | None) -> tuple[FactoryProxy, dict[str, Any]]:
        """Deploy on the first candidate that succeeds."""
        failures = []
        for allocator, _estimate, criteria in candidates:
            server_name = name or f'{allocator.name}-{self._next_number()}'
            try:
                server = allocator.deploy(server_name, desc, criteria)
            except DEPLOY_ERRORS as exc:
                logger.warning('%s: deploying %s failed (%s: %s); trying the next allocator',
                               allocator.name, server_name, type(exc).__name__, exc)
                failures.append(f'{allocator.name}: {type(exc).__name__}: {exc}')
                continue
            info = dict(allocator.server_info(server), allocator=allocator.name)
            return server, info
        raise AllocationError(f'every allocator that could serve {desc} failed to deploy: '
                              + '; '.join(failures))

    def _next_number(self) -> int:
        with self._lock:
            return next(self._counter)

    def _owner(self, server: Any) -> Allocator | None:
        with self._lock:
            allocators = list(self._allocators or ())
        return next((a for a in allocators if a.owns(server)), None)

    def release(self, server: FactoryProxy) -> None:
        """Stop ``server`` through the allocator that started it."""
        owner = self._owner(server)
        if owner is None:
            raise ValueError(f'release: {server!r} is not a server of this '
                             f'ResourceAllocationManager (or it was released already)')
        owner.release(server)

    def status(self, server: FactoryProxy) -> str | None:
        """What the owning allocator knows against ``server`` (see `Allocator.status`); None
        when it knows nothing or the server is not one of ours."""
        owner = self._owner(server)
        return None if owner is None else owner.status(server)

    def shutdown(self) -> None:
        """Release every server of every allocator (at exit, or when done)."""
        with self._lock:
            allocators = list(self._allocators or ())
        for allocator in allocators:
            try:
                allocator.shutdown()
            except Exception:
                logger.exception('%s: shutdown failed', allocator.name)


def _refusals(answers: list[tuple[Allocator, float, dict[str, Any]]]) -> str:
    """``'A refused key (why); B refused ...'`` for allocators that answered -2."""
    parts = []
    for allocator, _estimate, criteria in answers:
        refused = criteria.get('refused')
        if refused:
            parts.append(f'{allocator.name} refused ' + ', '.join(
                f'{key} ({why})' for key, why in refused.items()))
        else:
            parts.append(f'{allocator.name} refused: {criteria.get("reason", "no reason given")}')
    return '; '.join(parts)


#: The process-wide manager (its allocators are read from the config file on first use).
RAM = ResourceAllocationManager()
atexit.register(RAM.shutdown)
