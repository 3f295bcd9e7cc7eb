"""The MPI case farm: ``mpiexec -n N python -m openmdao_like.mpi MODEL`` (or ``srun``).

Rank 0 runs the model; its case-running drivers run their cases through `MPIFarmExecutor` on
the other ranks, in groups of ``procs_per_case`` ranks whose components see the group's
communicator as ``self.comm``. MPI launches the ranks and makes the groups (`roles`); cases and
outcomes travel over authenticated TCP connections between rank 0 (`pool`) and each group's
leader (`client`), so that a rank that dies is seen at once and the others go on. See
docs/mpi.md.

Nothing here imports mpi4py until a farm starts.
"""

from .executor import MPIFarmExecutor
from .roles import FarmError, FarmSizeError

__all__ = ['MPIFarmExecutor', 'FarmError', 'FarmSizeError']
