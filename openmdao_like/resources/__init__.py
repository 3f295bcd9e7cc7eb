"""Resources: where work runs. The ResourceAllocationManager and its allocators.

Allocators are split the way Parsl split its providers: *providers* decide where servers run
(`LocalAllocator`: this machine; `ClusterAllocator`: hosts over SSH; `SlurmAllocator`,
`PBSAllocator`: batch jobs; `MPIAllocator`: MPI ranks), *launchers* how they start (plain,
``mpiexec``, ``srun``) and *channels* how commands reach the host (local, SSH). Every allocated
server is an `ObjServerFactory` that registered back to this client; `allocate` returns its
`FactoryProxy`.
"""

from .allocator import Allocator
from .channels import Channel, LocalChannel
from .cluster import ClusterAllocator
from .description import RESOURCE_KEYS, validate_resource_desc
from .factory import RAMFactory
from .jobstate import TERMINAL_STATES, JobState, JobStatus, wait_until
from .launchers import Launcher, MpiexecLauncher, SimpleLauncher, SrunLauncher
from .local import LocalAllocator
from .manager import RAM, ResourceAllocationManager
from .mpi import MPIAllocator
from .pbs import PBSAllocator
from .slurm import SlurmAllocator
from .ssh import SSHChannel

__all__ = ['RAM', 'ResourceAllocationManager', 'RAMFactory', 'ram_factory', 'RESOURCE_KEYS',
           'validate_resource_desc', 'Allocator', 'LocalAllocator', 'ClusterAllocator', 'SlurmAllocator', 'PBSAllocator',
           'MPIAllocator', 'Channel', 'LocalChannel', 'SSHChannel', 'Launcher',
           'SimpleLauncher', 'MpiexecLauncher', 'SrunLauncher', 'JobState', 'JobStatus',
           'TERMINAL_STATES', 'wait_until']

#: The factory chain's link to the RAM: ``create(typname, res_desc=...)`` (put in the chain by
#: `openmdao_like.wiring`).
ram_factory = RAMFactory()
