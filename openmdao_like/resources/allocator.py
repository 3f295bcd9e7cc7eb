"""The `Allocator` interface: where servers for a resource description come from.

An allocator answers `time_estimate` (can it serve this description, and when), starts a
server with `deploy`, and ends it with `release`. The RAM asks every allocator and deploys on
the best (`openmdao_like.resources.manager`). Estimates follow OpenMDAO classic:

==========  ===========================================================================
``> 0``     can serve it in about that many seconds
``0``       can serve it now (no estimate)
``-1``      cannot now (busy, loaded): ask again later
``-2``      never: ``criteria['refused']`` says which key it refused and why
==========  ===========================================================================

This base class does the bookkeeping every allocator shares: which keys it understands
(`handles`), the common keys (``allocator``, ``localhost``, ``exclude``, ``python_version``,
``required_distributions``), and the servers it started (`StartedServer`), which `release` and
`shutdown` stop. Allocators declare their settings as options (`openmdao_like.options`): each
is a constructor keyword and an attribute, checked on every write.
"""

from __future__ import annotations

import abc
import importlib.metadata
import logging
import os
import sys
import threading
import weakref
from typing import Any, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from ..errors import AllocationError
from ..options import REQUIRED, HasOptions, OptionsDictionary
from ..remote.client import FactoryProxy
from .startup import StartedServer

logger = logging.getLogger(__name__)

__all__ = ['Allocator', 'Estimate', 'NEVER', 'NOT_NOW', 'NOW', 'COMMON_KEYS', 'non_empty']

#: The estimate codes (a positive number is an estimate in seconds).
NOW, NOT_NOW, NEVER = 0, -1, -2
#: (estimate, criteria)
Estimate = tuple[float, dict[str, Any]]
#: Keys every allocator understands (their meaning is the same everywhere).
COMMON_KEYS = frozenset({'allocator', 'localhost', 'exclude', 'python_version',
                         'required_distributions', 'job_name', 'min_cpus', 'max_cpus',
                         'job_environment'})


def non_empty(value: Any) -> Any:
    """``check=`` of an option (`openmdao_like.options`) that must not be empty."""
    if not value:
        raise ValueError('empty')
    return value


class Allocator(HasOptions, abc.ABC):
    """Starts servers for resource descriptions it can serve (see the module docstring).

    Subclasses implement `_estimate` (the description passed the common checks) and `_start`
    (return a `StartedServer`), extend `handles` with the keys they act on, and declare their
    settings in `declare_options`; their constructors pass their settings on to this one as
    keywords (an unknown keyword is an `UnknownOptionError`, a bad value an `OptionError`).

    Parameters
    ----------
    name : str
        How descriptions select it (``{'allocator': name}``) and how messages name it.
    """

    #: Resource keys this allocator acts on; a description using any other is refused (-2).
    handles: frozenset[str] = COMMON_KEYS
    #: Whether its servers run on this machine (``localhost: True`` asks for that).
    local: bool = False

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('name', REQUIRED, types=str, accepts='a non-empty string',
                        check=non_empty,
                        desc="how descriptions select it ({'allocator': name}) and messages "
                             "name it")

    def _option_owner(self) -> str:
        """Option messages name an allocator by its name (its class until it has one)."""
        return self._declared.get('name') or type(self).__name__

    def __init__(self, name: str, **options: Any):
        self._init_options({'name': name, **options})
        self._init_runtime()

    def _init_runtime(self) -> None:
        """The bookkeeping of servers this process started (never saved or pickled)."""
        self._servers: dict[int, StartedServer] = {}
        self._starting = 0  # deploys under way (they count as in use)
        self._lock = threading.RLock()
        _allocators.add(self)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.name!r})'

    # -- asking -----------------------------------------------------------------------------------
    def time_estimate(self, res_desc: Mapping[str, Any]) -> Estimate:
        """``(estimate, criteria)`` for a validated description (codes in the module doc)."""
        refused = self.refusals(res_desc)
        if refused:
            return NEVER, {'refused': refused}
        return self._estimate(res_desc)

    def refusals(self, res_desc: Mapping[str, Any]) -> dict[str, str]:
        """``{key: why}`` for each key of ``res_desc`` this allocator can never satisfy."""
        refused: dict[str, str] = {}
        for key in res_desc:
            if key not in self.handles:
                refused[key] = f'{self.name} does not support {key!r}'
        wanted = res_desc.get('allocator')
        if wanted is not None and wanted != self.name:
            refused['allocator'] = f'{wanted!r} was asked for, this is {self.name!r}'
        if res_desc.get('localhost') and not self.local:
            refused['localhost'] = f'{self.name} does not run servers on this machine'
        if res_desc.get('localhost') is False and self.local:
            refused['localhost'] = f'{self.name} runs servers on this machine only'
        hosts = self.host_names()
        excluded = set(res_desc.get('exclude') or ())
        if hosts and excluded and not set(hosts) - excluded:
            refused['exclude'] = f'every host of {self.name} is excluded ({", ".join(hosts)})'
        spec = res_desc.get('python_version')
        if spec is not None and not _python_matches(spec, self.python_version()):
            refused['python_version'] = (f'{self.name} runs Python {self.python_version()}, '
                                         f'{spec!r} was asked for')
        missing = [req for req in res_desc.get('required_distributions') or ()
                   if not self.has_distribution(req)]
        if missing:
            refused['required_distributions'] = (f'{self.name} lacks '
                                                 f'{", ".join(map(str, missing))}')
        return refused

    def host_names(self) -> list[str]:
        """The hosts its servers may run on (for ``exclude``); empty when it cannot tell."""
        return []

    def python_version(self) -> str:
        """The Python version its servers run (``'3.11.4'``)."""
        return '.'.join(map(str, sys.version_info[:3]))

    def has_distribution(self, requirement: str) -> bool:
        """Whether its servers have a distribution satisfying ``requirement`` (PEP 508)."""
        return _installed_here(requirement)

    @abc.abstractmethod
    def _estimate(self, res_desc: Mapping[str, Any]) -> Estimate:
        """The estimate once the common checks passed."""

    def max_servers(self, res_desc: Mapping[str, Any]) -> int:
        """How many servers for ``res_desc`` it could have running at once (0: none)."""
        return 0 if self.refusals(res_desc) else 1

    # -- starting and ending ---------------------------------------------------------------------
    def deploy(self, name: str, res_desc: Mapping[str, Any],
               criteria: Mapping[str, Any]) -> FactoryProxy:
        """Start a server for ``res_desc`` (``criteria`` from `time_estimate`); its proxy."""
        with self._lock:  # estimate and claim at once: threads allocating together
            estimate, now = self._estimate(res_desc)  # must not pass the limits between them
            if estimate < 0:
                raise AllocationError(f'{self.name}: cannot start {name} now: '
                                      f'{now.get("reason", "busy")}')
            self._starting += 1
        try:
            started = self._start(name, res_desc, criteria)
        except BaseException:
            with self._lock:
                self._starting -= 1
            raise
        started.info.setdefault('allocator', self.name)
        with self._lock:  # one step: a concurrent estimate sees it starting or started
            self._starting -= 1
            self._servers[id(started.proxy)] = started
        logger.info('%s: deployed %s on %s:%s', self.name, name, started.info.get('host'),
                    started.info.get('port'))
        return started.proxy

    @abc.abstractmethod
    def _start(self, name: str, res_desc: Mapping[str, Any],
               criteria: Mapping[str, Any]) -> StartedServer:
        """Start one server and return it."""

    def server_info(self, server: FactoryProxy) -> dict[str, Any]:
        """What is known about a server it started (host, port, pid, job id, ...)."""
        return dict(self._started(server).info)

    def owns(self, server: Any) -> bool:
        """Whether ``server`` is a server this allocator started and has not released."""
        with self._lock:
            return id(server) in self._servers

    def _started(self, server: Any) -> StartedServer:
        with self._lock:
            started = self._servers.get(id(server))
        if started is None:
            raise ValueError(f'{self.name}: {server!r} is not a server it allocated (or it was '
                             f'released already)')
        return started

    def status(self, server: FactoryProxy) -> str | None:
        """Why ``server`` is gone as the allocator sees it (e.g. a batch job's final state and
        the tail of its output), or None when it knows nothing against it."""
        return None

    def release(self, server: FactoryProxy) -> None:
        """Stop ``server`` and remove everything it left behind."""
        started = self._started(server)
        with self._lock:
            self._servers.pop(id(server), None)
        started.stop()

    @property
    def in_use(self) -> int:
        """How many of its servers are allocated now, or being started."""
        with self._lock:
            return len(self._servers) + self._starting

    def shutdown(self) -> None:
        """Release every server it started (e.g. at exit)."""
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for started in servers:
            try:
                started.stop()
            except Exception:
                logger.exception('%s: stopping %s failed', self.name, started.info.get('name'))


_allocators: weakref.WeakSet[Allocator] = weakref.WeakSet()


def _forget_servers_after_fork() -> None:
    """In a forked child the parent's servers are not ours to stop: forget them."""
    for allocator in list(_allocators):
        allocator._servers = {}
        allocator._starting = 0
        allocator._lock = threading.RLock()


os.register_at_fork(after_in_child=_forget_servers_after_fork)


def _python_matches(spec: str, version: str) -> bool:
    """Whether ``version`` satisfies ``spec``: a specifier (``'>=3.10'``) or a prefix
    (``'3.11'``)."""
    if spec[:1].isdigit():
        return version == spec or version.startswith(spec + '.')
    try:
        return version in SpecifierSet(spec)
    except InvalidSpecifier:
        return False


def _installed_here(requirement: str) -> bool:
    """Whether this interpreter has a distribution satisfying ``requirement``."""
    try:
        req = Requirement(str(requirement))
    except InvalidRequirement:
        return False
    try:
        version = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return not req.specifier or version in req.specifier
