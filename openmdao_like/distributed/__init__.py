"""What runs work on allocated resources: `RAMExecutor` (cases on servers from the RAM),
`MPIFarmExecutor` (cases on the ranks of an MPI case farm, `distributed.mpi`), `DaskExecutor`
and `ParslExecutor` (cases as tasks of a Dask cluster or a Parsl configuration,
`distributed.engines`), the job wrappers
(each execution of a component as a batch job, over SSH, with retries) and the job files they
share."""

from .engines import DaskExecutor, ParslExecutor
from .job_wrapper import JobSchedulerWrapper
from .mpi import MPIFarmExecutor
from .ram_executor import RAMExecutor
from .retry import RetryWrapper
from .ssh_wrapper import SSHWrapper
from .wrapper import ComponentWrapper

__all__ = ['RAMExecutor', 'MPIFarmExecutor', 'DaskExecutor', 'ParslExecutor',
           'JobSchedulerWrapper', 'RetryWrapper', 'SSHWrapper', 'ComponentWrapper']
