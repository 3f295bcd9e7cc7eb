"""What runs work on allocated resources: `RAMExecutor` (cases on servers from the RAM),
`MPIFarmExecutor` (cases on the ranks of an MPI case farm, `distributed.mpi`), `DaskExecutor`
(cases as tasks of a Dask cluster, `distributed.engines`), the job wrappers
(each execution of a component as a batch job, over SSH, with retries) and the job files they
share."""

from .engines import DaskExecutor
from .job_wrapper import JobSchedulerWrapper
from .mpi import MPIFarmExecutor
from .ram_executor import RAMExecutor
from .retry import RetryWrapper
from .ssh_wrapper import SSHWrapper
from .wrapper import ComponentWrapper

__all__ = ['RAMExecutor', 'MPIFarmExecutor', 'DaskExecutor', 'JobSchedulerWrapper', 'RetryWrapper', 'SSHWrapper',
           'ComponentWrapper']
