"""`MPIFarmExecutor`: the dispatch loop over the groups of client ranks of an MPI case farm.

Rank 0 of ``mpiexec -n N python -m openmdao_like.mpi MODEL`` runs the model; its case-running
drivers run their cases through this executor on the other ranks, in groups of
``procs_per_case`` (see `openmdao_like.distributed.mpi`). Chunking, losses, ``case_timeout``
with resends (``max_resubmits``), warm reuse across a driver's runs and shutdown are the loop's
(`openmdao_like.execution.loop`), as for every executor; the pool (`pool.MPIFarmPool`) only
feeds and watches the groups.
"""

from __future__ import annotations

from typing import Any

from ...execution.loop import PoolExecutor
from ...options import OptionsDictionary
from . import roles
from .pool import MPIFarmPool, current_server
from .roles import FarmError

__all__ = ['MPIFarmExecutor']

_HOW = 'start the model with `mpiexec -n N python -m openmdao_like.mpi MODEL`'


class MPIFarmExecutor(PoolExecutor):
    """Run cases on the client ranks of the MPI case farm this process is rank 0 of.

    Parameters
    ----------
    procs_per_case : int
        Ranks that run each case together (the farm's ``--procs-per-case``); the component
        sees their communicator as ``self.comm``.
    case_timeout : float, optional
        Seconds after which a case still running is sent again to another group (the first
        result wins); default: no limit.
    max_resubmits : int
        How many times a case may be sent again (default 5).
    """

    max_chunk = 256

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('procs_per_case', 1, types=int, lower=1,
                        desc='ranks that run each case together (a group)')

    def __init__(self, procs_per_case: int = 1, case_timeout: float | None = None,
                 max_resubmits: int = 5, **options: Any):
        super().__init__(procs_per_case=procs_per_case, case_timeout=case_timeout,
                         max_resubmits=max_resubmits, **options)

    def __repr__(self) -> str:
        return f'MPIFarmExecutor(procs_per_case={self.procs_per_case})'

    @property
    def n_workers(self) -> int:
        """Groups serving cases (outside a farm: 1)."""
        pool = self._pool
        if pool is not None:
            return max(1, pool.size)
        server = current_server()
        return len(server.groups) if server is not None else 1

    def _make_pool(self) -> MPIFarmPool:
        server = current_server()
        role = roles.current()
        if server is None:
            if role is not None:
                raise FarmError(
                    f'{self!r}: this process is rank {role.rank} of the MPI case farm, a '
                    f'client that runs cases; only rank 0 runs cases on the farm (a driver '
                    f'inside a case runs its cases here: give it sequential=True or a '
                    f'LocalExecutor)')
            raise FarmError(f'{self!r}: this process is not rank 0 of an MPI case farm; '
                            f'{_HOW}, whose case-running drivers get the farm\'s executor')
        if server.procs_per_case != self.procs_per_case:
            raise FarmError(f'{self!r}: the farm runs each case on groups of '
                            f'{server.procs_per_case} rank(s) (--procs-per-case '
                            f'{server.procs_per_case}), not {self.procs_per_case}')
        return MPIFarmPool(server, repr(self))
