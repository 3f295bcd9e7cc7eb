"""Launchers: how a server process is started on the host a channel reaches.

A launcher only rewrites a command line (as Parsl's launchers do): `SimpleLauncher` runs it as
it is, `MpiexecLauncher` under ``mpiexec -n N``, `SrunLauncher` under ``srun --mpi=pmi2 -n N``
inside a SLURM allocation. Providers (the allocators) pick one; channels run the result.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Sequence

__all__ = ['Launcher', 'SimpleLauncher', 'MpiexecLauncher', 'SrunLauncher', 'launcher_named',
           'default_mpiexec']


def default_mpiexec() -> str:
    """The mpiexec next to this interpreter (the mpich wheel's) when there is one, else
    ``'mpiexec'`` from PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
    return beside if os.access(beside, os.X_OK) else 'mpiexec'


class Launcher:
    """Wraps a command so that it starts ``n`` processes (the base runs it once, as given)."""

    #: The name a resource description or config file uses for this launcher.
    kind = 'simple'

    def wrap(self, command: Sequence[str], n: int = 1) -> list[str]:
        """The command line that starts ``command`` as ``n`` processes."""
        if n != 1:
            raise ValueError(f'{type(self).__name__} starts one process; {n} were asked for '
                             f'(use an MPI launcher: mpiexec or srun)')
        return list(command)

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), shlex.join(map(str, vars(self).values()))))


class SimpleLauncher(Launcher):
    """Run the command as it is: one process."""


class MpiexecLauncher(Launcher):
    """Run ``n`` ranks with ``mpiexec -n N`` (``mpiexec`` found on PATH unless given)."""

    kind = 'mpiexec'

    def __init__(self, mpiexec: str = 'mpiexec', extra: Sequence[str] = ()):
        self.mpiexec = mpiexec
        self.extra = tuple(extra)

    def wrap(self, command: Sequence[str], n: int = 1) -> list[str]:
        return [self.mpiexec, '-n', str(int(n)), *self.extra, *command]

    def __repr__(self) -> str:
        return f'MpiexecLauncher({self.mpiexec!r})'


class SrunLauncher(Launcher):
    """Run ``n`` tasks with ``srun --mpi=pmi2 -n N`` inside a SLURM job (PMI-2 suits the MPICH
    wheel; Debian's Open MPI wants ``mpi='pmix'``)."""

    kind = 'srun'

    def __init__(self, mpi: str = 'pmi2', extra: Sequence[str] = ()):
        self.mpi = mpi
        self.extra = tuple(extra)

    def wrap(self, command: Sequence[str], n: int = 1) -> list[str]:
        # a rank that dies in MPI_Init must end the step, not leave the others waiting
        return ['srun', f'--mpi={self.mpi}', '--kill-on-bad-exit=1', '-n', str(int(n)),
                *self.extra, *command]

    def __repr__(self) -> str:
        return f'SrunLauncher(mpi={self.mpi!r})'


_KINDS = {cls.kind: cls for cls in (SimpleLauncher, MpiexecLauncher, SrunLauncher)}


def launcher_named(name: str | Launcher) -> Launcher:
    """A launcher from its name ('simple', 'mpiexec', 'srun') or itself."""
    if isinstance(name, Launcher):
        return name
    try:
        return _KINDS[name]()
    except (KeyError, TypeError):
        raise ValueError(f'launcher: expected one of {", ".join(sorted(_KINDS))} or a '
                         f'Launcher, got {name!r}') from None
