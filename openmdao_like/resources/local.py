"""`LocalAllocator`: servers on this machine, one process per allocation."""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping

from ..options import OptionsDictionary
from .allocator import COMMON_KEYS, NOT_NOW, NOW, Allocator, Estimate
from .channels import LocalChannel
from .launchers import MpiexecLauncher, default_mpiexec
from .startup import StartedServer, start_on_channel

__all__ = ['LocalAllocator']


class LocalAllocator(Allocator):
    """Start servers on this machine, while its load and the server limit allow.

    Parameters
    ----------
    name : str
        The allocator's name (``'LocalHost'``).
    total_cpus : int, optional
        CPUs it may hand out (default: ``os.cpu_count()``); a description asking for more
        (``min_cpus``) is refused.
    max_load : float or None
        Highest 1-minute load average per CPU at which it still starts a server (busy: -1,
        ask later); None ignores the load.
    server_limit : int, optional
        Most servers allocated at once (default: ``total_cpus``).
    workdir : str, optional
        Where servers get their directories (default: the temporary directory).
    """

    handles = COMMON_KEYS | {'working_directory', 'resource_limits', 'job_category'}
    local = True

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        super().declare_options(options)
        options.declare('total_cpus', None, types=int, lower=1, allow_none=True,
                        accepts='a positive integer',
                        desc='CPUs it may hand out (None: os.cpu_count())')
        options.declare('max_load', 1.0, types=float, lower=0.0, exclude_lower=True,
                        allow_none=True, accepts='a positive number or None',
                        desc='highest load average per CPU at which it starts a server')
        options.declare('server_limit', None, types=int, lower=1, allow_none=True,
                        accepts='a positive integer',
                        desc='most servers allocated at once (None: total_cpus)')
        options.declare('workdir', None, types=str, allow_none=True,
                        desc='where servers get their directories')

    def __init__(self, name: str = 'LocalHost', total_cpus: int | None = None,
                 max_load: float | None = 1.0, server_limit: int | None = None,
                 workdir: str | None = None, **options: Any):
        super().__init__(name, total_cpus=total_cpus, max_load=max_load,
                         server_limit=server_limit, workdir=workdir, **options)
        self.total_cpus = self.total_cpus or os.cpu_count() or 1
        self.server_limit = self.server_limit or self.total_cpus
        self.channel = LocalChannel()

    def __repr__(self) -> str:
        return (f'LocalAllocator({self.name!r}, total_cpus={self.total_cpus}, '
                f'max_load={self.max_load}, server_limit={self.server_limit})')

    def host_names(self) -> list[str]:
        import socket
        return ['localhost', socket.gethostname(), '127.0.0.1']

    def refusals(self, res_desc: Mapping[str, Any]) -> dict[str, str]:
        refused = super().refusals(res_desc)
        cpus = res_desc.get('min_cpus', 1)
        if cpus > self.total_cpus:
            refused['min_cpus'] = (f'{self.name} has {self.total_cpus} CPUs, {cpus} were asked '
                                   f'for')
        category = res_desc.get('job_category')
        if category not in (None, 'MPI'):
            refused['job_category'] = f"{self.name} runs 'MPI' jobs or plain ones, not {category!r}"
        return refused

    def _estimate(self, res_desc: Mapping[str, Any]) -> Estimate:
        if self.in_use >= self.server_limit:
            return NOT_NOW, {'reason': f'all {self.server_limit} servers of {self.name} in use'}
        if self.max_load is not None:
            load = os.getloadavg()[0] / self.total_cpus
            if load > self.max_load:
                return NOT_NOW, {'reason': f'load {load:.2f} per CPU exceeds max_load '
                                           f'{self.max_load:g}'}
        return NOW, {'host': '127.0.0.1'}

    def max_servers(self, res_desc: Mapping[str, Any]) -> int:
        if self.refusals(res_desc):
            return 0
        return min(self.server_limit, self.total_cpus // res_desc.get('min_cpus', 1))

    def _start(self, name: str, res_desc: Mapping[str, Any],
               criteria: Mapping[str, Any]) -> StartedServer:
        n = res_desc.get('min_cpus', 1)
        mpi = res_desc.get('job_category') == 'MPI'
        return start_on_channel(
            self.channel, name, python=sys.executable,
            parent=res_desc.get('working_directory') or self.workdir,
            object_launcher=MpiexecLauncher(default_mpiexec()).wrap([], n) if mpi else None,
            env=res_desc.get('job_environment'), info={'cpus': n})

