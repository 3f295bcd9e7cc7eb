"""`RAMFactory`: ``create(typname, res_desc=...)`` on a server the RAM allocates.

`openmdao_like.wiring` puts it in the factory chain (loaded on the first such request): a
description (without ``server``) makes the manager allocate a server that fits it, and the
object is created there as a `RemoteComponent`. The server stays allocated (one per object
created this way) until the current `openmdao_like.Session` ends (the default one: at exit),
or ``RAM.shutdown()``.
"""

from __future__ import annotations

import logging
from typing import Any

from ..factories import Factory
from ..session import current_session

logger = logging.getLogger(__name__)

__all__ = ['RAMFactory']


class RAMFactory(Factory):
    """Creates objects on servers allocated for their resource description."""

    def __init__(self, ram: Any = None):
        self.ram = ram

    def _manager(self) -> Any:
        if self.ram is not None:
            return self.ram
        from .manager import RAM
        return RAM

    def create(self, typname: str, version: str | None = None, server: Any = None,
               res_desc: dict | None = None, **ctor_args: Any) -> Any:
        if server is not None or not res_desc:
            return None
        ram = self._manager()
        allocated, _info = ram.allocate(res_desc)
        try:
            obj = allocated.create(typname, version, **ctor_args)
        except BaseException:
            ram.release(allocated)
            raise
        current_session().hold('resources.allocated_servers', list, _release_all).append(
            (ram, allocated))
        return obj

    def why_not(self, typname: str, version: str | None = None, server: Any = None,
                res_desc: dict | None = None) -> str:
        if server is not None:
            return 'a server was named: resource descriptions are for servers the RAM allocates'
        return 'no resource description was given'


def _release_all(servers: list[tuple[Any, Any]]) -> None:
    """Release the servers allocated for a session's objects (the session ends)."""
    for ram, server in servers:
        try:
            ram.release(server)
        except ValueError:  # released already, e.g. by RAM.shutdown()
            logger.debug('%r was released already', server)
