"""`Session`: what one user of the framework holds — credentials, server connections,
registrars, servers started for it — released together when it ends.

::

    with Session():
        factory = connect_to_server('127.0.0.2', 18861, key=key)
        comp = create('paraboloid_plugin.Paraboloid', server=('127.0.0.2', 18861))
        ...
    # connections closed, registrars stopped, servers allocated for res_desc= stopped

Outside any ``with Session()`` block the simple API uses the default session, which is
released at interpreter exit. Entering a session makes it the current one for the whole
process (every thread, so background allocations belong to it too) until its block ends;
sessions nest.

The session knows nothing of what it holds: each layer keeps its own kind of resource in it
with `Session.hold` (a kind name, how to make it, how to release it), so this module sits
below every layer and no layer imports a higher one to reach its resources.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any, Callable, TypeVar

logger = logging.getLogger(__name__)

__all__ = ['Session', 'current_session', 'default_session']

T = TypeVar('T')


class Session:
    """Owns what the framework holds for one user: credentials, connections, registrars,
    servers. ``with Session() as s:`` makes it current and releases it all on exit."""

    def __init__(self, name: str = 'session') -> None:
        self.name = name
        self._lock = threading.RLock()
        self._held: dict[str, tuple[Any, Callable[[Any], None] | None]] = {}
        self._closed = False
        #: The default session is released at exit but may hold things again afterwards
        #: (a daemon thread still running): only user sessions refuse use after close.
        self._reopens = False

    def __repr__(self) -> str:
        state = 'closed' if self._closed else f'holding {", ".join(self._held) or "nothing"}'
        return f'<Session {self.name!r}: {state}>'

    # -- what layers keep here -------------------------------------------------------------------
    def hold(self, kind: str, make: Callable[[], T],
             release: Callable[[T], None] | None = None) -> T:
        """The resource of ``kind`` this session holds, made by ``make()`` on first use;
        ``release(resource)`` is called when the session closes (resources are released in
        the reverse order of their making)."""
        with self._lock:
            entry = self._held.get(kind)
            if entry is None:
                if self._closed and not self._reopens:
                    raise RuntimeError(f'{self!r}: cannot hold {kind!r}: the session was '
                                       f'closed; start a new Session')
                entry = self._held[kind] = (make(), release)
            return entry[0]

    def held(self, kind: str) -> Any:
        """The resource of ``kind`` if this session holds one, else None (nothing is made)."""
        with self._lock:
            entry = self._held.get(kind)
        return None if entry is None else entry[0]

    def kinds(self) -> list[str]:
        """The kinds of resource held, in the order they were made."""
        with self._lock:
            return list(self._held)

    # -- lifetime -------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """Whether `close` ran."""
        return self._closed

    def __enter__(self) -> 'Session':
        with self._lock:
            if self._closed:
                raise RuntimeError(f'{self!r}: a closed session cannot be entered again')
        with _stack_lock:
            _stack.append(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop being current, and release everything held, newest first (a failing release
        is logged and the others still run). Idempotent."""
        with _stack_lock:
            if self in _stack and self is not _default:
                _stack.remove(self)
        with self._lock:
            self._closed = True
            held, self._held = self._held, {}
        for kind, (resource, release) in reversed(held.items()):
            if release is None:
                continue
            try:
                release(resource)
            except Exception:
                logger.warning('%s: releasing %s failed', self.name, kind, exc_info=True)


_default = Session('default')
_default._reopens = True
_stack: list[Session] = [_default]
_stack_lock = threading.Lock()
atexit.register(_default.close)


def _after_fork_in_child() -> None:
    """A forked child (a LocalExecutor worker) gets fresh locks: one held by another thread
    at the fork would never be released there."""
    global _stack_lock
    _stack_lock = threading.Lock()
    for session in _stack:
        session._lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def current_session() -> Session:
    """The innermost session entered and not yet left, else the default session."""
    return _stack[-1]  # a list read is atomic: no lock on this frequent path


def default_session() -> Session:
    """The session the simple API uses outside any ``with Session()`` block (released at
    interpreter exit)."""
    return _default
