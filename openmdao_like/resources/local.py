"""`LocalAllocator`: servers on this machine, one process per allocation."""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping

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

    def __init__(self, name: str = 'LocalHost', total_cpus: int | None = None,
                 max_load: float | None = 1.0, server_limit: int | None = None,
                 workdir: str | None = None):
        super().__init__(name)
        self.total_cpus = _positive_int(total_cpus or os.cpu_count() or 1, 'total_cpus', name)
        if max_load is not None and not (isinstance(max_load, (int, float)) and max_load > 0):
            raise ValueError(f'{name}: max_load must be a positive number or None, got '
                             f'{max_load!r}')
        self.max_load = max_load
        self.server_limit = _positive_int(server_limit or self.total_cpus, 'server_limit', name)
        self.workdir = workdir
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


def _positive_int(value: Any, what: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name}: {what} must be a positive integer, got {value!r}')
    return value
