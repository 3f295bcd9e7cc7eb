"""`RAMExecutor`: the dispatch loop over servers allocated from the ResourceAllocationManager.

The servers (this machine, SSH hosts, SLURM or PBS pilot jobs, MPI ranks) are the workers of a
`ServerPool` (`openmdao_like.distributed.server_pool`): the model travels once per server and
run, each call carries a chunk of cases. Chunking, losses, ``case_timeout``, warm reuse across
a driver's runs and shutdown are the loop's (`openmdao_like.execution.loop`), as for every
executor.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..options import OptionsDictionary
from ..execution.loop import PoolExecutor
from ..resources.description import validate_resource_desc
from .server_pool import ServerPool

__all__ = ['RAMExecutor']


class RAMExecutor(PoolExecutor):
    """Run cases on servers allocated from the resource allocation manager.

    Parameters
    ----------
    res_desc : dict, optional
        The resource description each server must fit (validated at once).
    max_servers : int, optional
        Most servers to allocate (default: as many as the RAM could provide for
        ``res_desc``, see `ResourceAllocationManager.max_servers`).
    ram : ResourceAllocationManager, optional
        Where servers come from (default: the module-level ``RAM``).
    case_timeout : float, optional
        Seconds after which a case is taken as hung: its server is released and the case
        reported lost.
    """

    max_chunk = 256

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('res_desc', {}, check=lambda desc: validate_resource_desc(
                            desc, f'{cls.__name__}(res_desc)'),
                        accepts='a resource description (a dict)',
                        desc='the resource description each server must fit')
        options.declare('max_servers', None, types=int, lower=1, allow_none=True,
                        desc='most servers to allocate (None: as many as the RAM could)')

    def __init__(self, res_desc: Mapping[str, Any] | None = None,
                 max_servers: int | None = None, ram: Any = None,
                 case_timeout: float | None = None, **options: Any):
        # checked here first for the message of the resource description's own check
        desc = validate_resource_desc(res_desc or {}, f'{type(self).__name__}(res_desc)')
        super().__init__(res_desc=desc, max_servers=max_servers, case_timeout=case_timeout,
                         **options)
        self.ram = ram

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.ram = None

    def __repr__(self) -> str:
        return f'RAMExecutor(res_desc={self.res_desc!r}, max_servers={self.max_servers})'

    @property
    def n_workers(self) -> int:
        """Servers running the model now (before `start`: the most there will be)."""
        pool = self._pool
        return (pool.live if pool is not None else 0) or self.max_servers or 1

    def _manager(self) -> Any:
        if self.ram is not None:
            return self.ram
        from ..resources.manager import RAM
        return RAM

    def _make_pool(self) -> ServerPool:
        return ServerPool(self._manager(), self.res_desc, self.max_servers, repr(self),
                          self.case_timeout)
