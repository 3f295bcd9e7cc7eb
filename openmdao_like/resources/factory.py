"""`RAMFactory`: ``create(typname, res_desc=...)`` on a server the RAM allocates.

Registered in the factory chain when `openmdao_like.resources` is imported: a description
(without ``server``) makes the manager allocate a server that fits it, and the object is
created there as a `RemoteComponent`. The server stays allocated while the program runs (one
per object created this way); ``RAM.shutdown()``, or the end of the program, releases it.
"""

from __future__ import annotations

from typing import Any

from ..factories import Factory

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
            return allocated.create(typname, version, **ctor_args)
        except BaseException:
            ram.release(allocated)
            raise

    def why_not(self, typname: str, version: str | None = None, server: Any = None,
                res_desc: dict | None = None) -> str:
        if server is not None:
            return 'a server was named: resource descriptions are for servers the RAM allocates'
        return 'no resource description was given'
