"""Components whose execute uses MPI collectives over ``self.comm`` (for ObjServers started under
an MPI launcher: their COMM_WORLD), for those servers (the tests put this directory on the
servers' PYTHONPATH). mpi4py is imported in execute only, so that the test process can build
models of them without starting MPI."""

from __future__ import annotations

from openmdao_like import Bool, Component, Float, Int


class RankSum(Component):
    """total = sum over the ranks of (rank + 1) * x; size = how many ranks ran it.

    ``fail_rank`` makes that rank raise `ZeroDivisionError` (-1: none, -2: every rank), after
    the collective, or before it when ``fail_before`` (the other ranks then wait in it for
    good).
    """

    x = Float(1.0, iotype='in')
    fail_rank = Int(-1, iotype='in')
    fail_before = Bool(False, iotype='in')
    total = Float(iotype='out')
    size = Int(iotype='out')

    def execute(self) -> None:
        from mpi4py import MPI
        comm = self.comm
        rank = comm.Get_rank()
        fails = self.fail_rank in (rank, -2)
        if fails and self.fail_before:
            raise ZeroDivisionError(f'rank {rank} divides by zero before the allreduce')
        self.total = comm.allreduce((rank + 1) * self.x, op=MPI.SUM)
        self.size = comm.Get_size()
        if fails:
            raise ZeroDivisionError(f'rank {rank} divides by zero after the allreduce')
