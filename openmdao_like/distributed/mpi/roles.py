"""Roles of the ranks of an MPI case farm, decided once at start with MPI collectives.

Rank 0 is the server: it opens a TCP listener (on 127.0.0.1 when every rank runs on its host,
else on its host's address; ``OML_MPI_FARM_HOST`` overrides), draws a random key and broadcasts
both. The other ranks, the clients, split into groups of ``procs_per_case`` consecutive ranks
(``Comm.Split``, color ``(rank - 1) // K``); the lowest rank of a group is its leader. After
this, MPI carries only each group's own traffic: cases and results travel over TCP between rank
0 and the clients, where a client that dies is seen at once (end of file) and the others go on
(MPICH cannot go on with MPI after a rank died; see docs/mpi.md).

mpi4py is imported by `world` only, so that importing this module starts nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass
from multiprocessing.connection import Listener
from typing import Any

from ...errors import OpenMDAOLikeError

logger = logging.getLogger(__name__)

__all__ = ['Role', 'FarmError', 'FarmSizeError', 'assign', 'check_size', 'current', 'world',
           'HOST_VARIABLE']

#: Environment variable naming the address rank 0 listens on (when the default is wrong).
HOST_VARIABLE = 'OML_MPI_FARM_HOST'

_CURRENT: Role | None = None  # this process's role, once `assign` decided it


class FarmError(OpenMDAOLikeError, RuntimeError):
    """The MPI case farm cannot start or go on (the message says why and what to do)."""


class FarmSizeError(FarmError, ValueError):
    """The number of ranks does not suit the farm (too few, or not groups of K)."""


@dataclass
class Role:
    """What one rank is in the farm.

    Attributes
    ----------
    rank, size : int
        Its rank in COMM_WORLD and the world's size.
    procs_per_case : int
        Ranks per group (K).
    n_groups : int
        How many groups serve cases: ``(size - 1) // K``.
    address : tuple
        ``(host, port)`` of rank 0's listener.
    authkey : bytes
        The key every connection to rank 0 proves it holds (HMAC challenge, both ways).
    group : int or None
        Index of this rank's group (None on rank 0).
    comm : mpi4py.MPI.Comm or None
        The group's communicator (None on rank 0).
    listener : multiprocessing.connection.Listener or None
        Rank 0's listener (None elsewhere).
    """

    rank: int
    size: int
    procs_per_case: int
    n_groups: int
    address: tuple[str, int]
    authkey: bytes
    group: int | None = None
    comm: Any = None
    listener: Any = None

    @property
    def server(self) -> bool:
        """Whether this rank is rank 0, the server."""
        return self.rank == 0

    @property
    def leader(self) -> bool:
        """Whether this client is its group's leader (the rank that talks to rank 0)."""
        return self.comm is not None and self.comm.Get_rank() == 0

    @property
    def group_ranks(self) -> tuple[int, ...]:
        """World ranks of this client's group."""
        if self.group is None:
            return ()
        first = 1 + self.group * self.procs_per_case
        return tuple(range(first, first + self.procs_per_case))


def world() -> Any:
    """MPI.COMM_WORLD (imports mpi4py, which initializes MPI)."""
    from mpi4py import MPI
    return MPI.COMM_WORLD


def current() -> Role | None:
    """This process's role in a farm, or None when it is not part of one."""
    return _CURRENT


def check_size(size: int, procs_per_case: int) -> int:
    """The number of groups of a world of ``size`` ranks; raises `FarmSizeError`."""
    k = procs_per_case
    if k < 1:
        raise FarmSizeError(f'--procs-per-case must be an integer >= 1, got {k}')
    if size < k + 1:
        given = f'got {size}' + (f' with K={k}' if k > 1 else '')
        raise FarmSizeError(f'the MPI case farm needs at least 2 ranks (K+1 with '
                            f'--procs-per-case K), {given}: rank 0 runs the model, the others '
                            f'run its cases')
    clients = size - 1
    if clients % k:
        fewer, more = 1 + (clients // k) * k, 1 + (clients // k + 1) * k
        raise FarmSizeError(f'{clients} client ranks (all but rank 0 of {size}) cannot be '
                            f'split into groups of --procs-per-case {k}: {clients} is not a '
                            f'multiple of {k} (use {fewer} or {more} ranks)')
    return clients // k


def server_host(hosts: list[str]) -> str:
    """The address rank 0 listens on, given every rank's host name."""
    chosen = os.environ.get(HOST_VARIABLE)
    if chosen:
        return chosen
    if all(host == hosts[0] for host in hosts):
        return '127.0.0.1'
    try:
        infos = socket.getaddrinfo(hosts[0], None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        raise FarmError(f'rank 0 cannot resolve its host name {hosts[0]!r} ({exc}); set '
                        f'{HOST_VARIABLE} to an address of rank 0 the other hosts reach'
                        ) from exc
    addresses = [info[4][0] for info in infos]
    reachable = [a for a in addresses if not a.startswith('127.')]
    if not reachable:
        raise FarmError(f'rank 0 runs on {hosts[0]!r}, whose name resolves only to loopback '
                        f'addresses ({", ".join(addresses)}), and ranks run on other hosts '
                        f'({", ".join(sorted(set(hosts[1:]) - {hosts[0]}))}); set '
                        f'{HOST_VARIABLE} to an address of rank 0 they reach')
    return reachable[0]


def assign(comm: Any, procs_per_case: int) -> Role:
    """Decide every rank's role (a collective over ``comm``, the world): check the size, open
    rank 0's listener and share its address and key, split the clients into groups.

    Raises `FarmSizeError` (on every rank) when the size does not suit ``procs_per_case``, and
    `FarmError` (on every rank) when rank 0 cannot listen.
    """
    global _CURRENT
    from mpi4py import MPI
    rank, size = comm.Get_rank(), comm.Get_size()
    n_groups = check_size(size, procs_per_case)  # the same on every rank: no collective yet
    hosts = comm.allgather(socket.gethostname())
    listener = None
    shared: Any = None
    if rank == 0:
        try:
            host = server_host(hosts)
            listener = Listener((host, 0), family='AF_INET', backlog=max(16, size))
            shared = (listener.address, secrets.token_bytes(32), None)
        except (OSError, FarmError) as exc:
            shared = (None, None, f'rank 0 cannot listen for its clients: {exc}')
    address, authkey, error = comm.bcast(shared, root=0)
    if error is not None:
        raise FarmError(error)
    color = MPI.UNDEFINED if rank == 0 else (rank - 1) // procs_per_case
    group_comm = comm.Split(color, key=rank)
    if rank == 0:
        role = Role(rank, size, procs_per_case, n_groups, tuple(address), authkey,
                    listener=listener)
        logger.info('rank 0 of %d: serving %d group(s) of %d rank(s) on %s:%d', size,
                    n_groups, procs_per_case, *address)
    else:
        role = Role(rank, size, procs_per_case, n_groups, tuple(address), authkey,
                    group=color, comm=group_comm)
    _CURRENT = role
    return role
