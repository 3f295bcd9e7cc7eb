"""`MPIAllocator`: servers on this machine whose objects run as MPI jobs.

A description ``{'job_category': 'MPI', 'min_cpus': N}`` gets a server (started here, like
`LocalAllocator`'s) on which every object created runs as ``N`` ranks: its ObjServer starts
under ``mpiexec -n N`` — or ``srun --mpi=pmi2 -n N`` inside a SLURM allocation — and runs the
object on every rank (see `openmdao_like.remote.spmd`). The allocator hands out at most
``total_cpus`` CPUs at once, counting ``N`` for each server it has allocated.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any, Mapping

from ..errors import AllocationError
from ..options import OptionsDictionary
from .allocator import COMMON_KEYS, NOT_NOW, NOW, Allocator, Estimate, non_empty
from .channels import LocalChannel
from .launchers import Launcher, MpiexecLauncher, SrunLauncher, default_mpiexec
from .startup import StartedServer, start_on_channel

__all__ = ['MPIAllocator']


def _launcher_name(launcher: str | Launcher) -> str | Launcher:
    """``check=`` of the ``launcher`` option: a launcher, or the name of one."""
    if isinstance(launcher, str) and launcher not in ('mpiexec', 'srun'):
        raise ValueError(launcher)
    return launcher


class MPIAllocator(Allocator):
    """Start servers on this machine whose objects each run on ``min_cpus`` MPI ranks.

    Parameters
    ----------
    name : str
        The allocator's name (``'MPI'``).
    launcher : {'mpiexec', 'srun'} or Launcher
        How object servers start their ranks: ``mpiexec -n N``, or ``srun --mpi=pmi2 -n N``
        (only inside a SLURM allocation: ``SLURM_JOB_ID`` set); or such a launcher itself.
    total_cpus : int, optional
        CPUs it may hand out (default: ``SLURM_NTASKS`` under srun when set, else
        ``os.cpu_count()``); a description asking for more is refused.
    mpiexec : str, optional
        The ``mpiexec`` to run (default: the one next to this interpreter, else PATH's).
    workdir : str, optional
        Where servers get their directories (default: the temporary directory).
    """

    handles = COMMON_KEYS | {'job_category', 'working_directory'}
    local = True

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        launchers = "'mpiexec', 'srun' or an MpiexecLauncher/SrunLauncher"
        options.declare('launcher', 'mpiexec', types=(str, MpiexecLauncher, SrunLauncher),
                        accepts=launchers,
                        check=_launcher_name,
                        desc='how object servers start their ranks')
        options.declare('total_cpus', None, types=int, lower=1, allow_none=True,
                        accepts='a positive integer',
                        desc='CPUs it may hand out (None: SLURM_NTASKS under srun, else '
                             'os.cpu_count())')
        options.declare('mpiexec', None, types=str, allow_none=True,
                        accepts='a path or None',
                        check=non_empty,
                        desc="the mpiexec to run (None: the one next to this interpreter)")
        options.declare('workdir', None, types=str, allow_none=True,
                        desc='where servers get their directories')

    def __init__(self, name: str = 'MPI', launcher: str | Launcher = 'mpiexec',
                 total_cpus: int | None = None, mpiexec: str | None = None,
                 workdir: str | None = None, **options: Any):
        super().__init__(name, launcher=launcher, total_cpus=total_cpus, mpiexec=mpiexec,
                         workdir=workdir, **options)
        self.launcher = _launcher(self.name, launcher, mpiexec)
        if self.total_cpus is None:
            tasks = os.environ.get('SLURM_NTASKS', '')
            self.total_cpus = int(tasks) if isinstance(self.launcher, SrunLauncher) and \
                tasks.isdigit() else os.cpu_count() or 1
        self.channel = LocalChannel()
        self._reserved = 0  # CPUs of the servers being started

    def __repr__(self) -> str:
        return (f'MPIAllocator({self.name!r}, launcher={self.launcher!r}, '
                f'total_cpus={self.total_cpus})')

    def host_names(self) -> list[str]:
        return ['localhost', socket.gethostname(), '127.0.0.1']

    def refusals(self, res_desc: Mapping[str, Any]) -> dict[str, str]:
        refused = super().refusals(res_desc)
        category = res_desc.get('job_category')
        if category != 'MPI':
            refused['job_category'] = f"{self.name} runs 'MPI' jobs only, not {category!r}"
        cpus = _cpus(res_desc, self.name)
        if cpus > self.total_cpus:
            refused['min_cpus'] = (f'{self.name} has {self.total_cpus} CPUs, {cpus} were asked '
                                   f'for')
        return refused

    @property
    def cpus_in_use(self) -> int:
        """CPUs held by the servers it has allocated or is starting now."""
        with self._lock:
            return self._reserved + sum(started.info['cpus']
                                        for started in self._servers.values())

    def _estimate(self, res_desc: Mapping[str, Any]) -> Estimate:
        cpus, used = _cpus(res_desc, self.name), self.cpus_in_use
        if used + cpus > self.total_cpus:
            return NOT_NOW, {'reason': f'{used} of the {self.total_cpus} CPUs of {self.name} are '
                                       f'in use, {cpus} were asked for'}
        return NOW, {'host': '127.0.0.1', 'cpus': cpus}

    def max_servers(self, res_desc: Mapping[str, Any]) -> int:
        if self.refusals(res_desc):
            return 0
        return self.total_cpus // _cpus(res_desc, self.name)

    def _start(self, name: str, res_desc: Mapping[str, Any],
               criteria: Mapping[str, Any]) -> StartedServer:
        cpus = _cpus(res_desc, self.name)
        with self._lock:  # deploys started together each passed the estimate: claim the CPUs
            used = self.cpus_in_use
            if used + cpus > self.total_cpus:
                raise AllocationError(f'{self.name}: cannot start {name} now: {used} of the '
                                      f'{self.total_cpus} CPUs are in use, {cpus} were asked '
                                      f'for')
            self._reserved += cpus
        try:
            return start_on_channel(
                self.channel, name, python=sys.executable,
                parent=res_desc.get('working_directory') or self.workdir,
                object_launcher=self.launcher.wrap([], cpus),
                env=res_desc.get('job_environment'),
                info={'cpus': cpus, 'launcher': self.launcher.kind})
        finally:
            with self._lock:
                self._reserved -= cpus


def _launcher(name: str, launcher: str | Launcher, mpiexec: str | None) -> Launcher:
    """The launcher ``MPIAllocator(launcher=..., mpiexec=...)`` asks for (both options checked
    already), checked against each other and the environment."""
    if isinstance(launcher, Launcher):
        chosen: Launcher = launcher
    elif launcher == 'mpiexec':
        chosen = MpiexecLauncher(mpiexec or default_mpiexec())
    else:
        chosen = SrunLauncher()
    if mpiexec is not None and launcher != 'mpiexec':
        raise ValueError(f"{name}: mpiexec={mpiexec!r} applies to launcher='mpiexec' only, "
                         f"got launcher={launcher!r}")
    if isinstance(chosen, SrunLauncher) and not os.environ.get('SLURM_JOB_ID'):
        raise ValueError(f"{name}: launcher 'srun' starts ranks inside a SLURM allocation, "
                         f"and SLURM_JOB_ID is not set here (run inside salloc/sbatch, or use "
                         f"launcher='mpiexec')")
    return chosen


def _cpus(res_desc: Mapping[str, Any], name: str) -> int:
    """The ranks a description asks for (``min_cpus``, default 1), checked."""
    cpus = res_desc.get('min_cpus', 1)
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
        raise ValueError(f'{name}: min_cpus must be a positive integer, got {cpus!r}')
    return cpus
