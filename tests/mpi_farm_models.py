"""Models for the MPI case farm tests (tests/test_mpi_farm.py): the farm's ranks import this
module (tests/ is on their PYTHONPATH), so the model files the tests write are two lines.

`Probe` computes a paraboloid on every rank of its group and proves which ranks ran it (an
allreduce over ``self.comm``); its inputs make it slow (``delay``), tell the test its pid
(``pid_dir``), hang once (``hang_dir``) or fail on one rank (``fail_rank``). mpi4py is imported
in execute only, when ``self.comm`` is set, so that the tests also run the models in-process."""

from __future__ import annotations

import os
import time

from openmdao_like import Assembly, Component, Float, Int, Str, set_as_top
from openmdao_like.drivers import CaseIteratorDriver, DOEDriver, ScipyOptimizer
from openmdao_like.drivers.doe import FullFactorial
from openmdao_like.recorders import JSONRecorder

#: Seconds the first run of the hanging case sleeps (the farm must not wait for it).
HANG = 600.0


def _near(a: float, b: float) -> bool:
    return abs(a - b) < 1e-9


class Probe(Component):
    """f = (x - 1)**2 + x*y, computed on every rank of the case's group.

    ``size``: ranks in ``self.comm`` (1 outside MPI); ``ranks``: sum of 2**(world rank) over
    them (0 outside MPI); ``total``: the allreduced sum of f (size * f); ``pid``: the group
    leader's process id.
    """

    x = Float(0.0, iotype='in')
    y = Float(0.0, iotype='in')
    delay = Float(0.0, iotype='in', desc='seconds each run sleeps')
    pid_dir = Str('', iotype='in', desc='each process that runs a case drops a file named '
                                        'by its pid here')
    hang_dir = Str('', iotype='in', desc='the first run of case (hang_x, hang_y) writes '
                                         'hang_dir/hung and sleeps HANG s; runs after it '
                                         'return at once')
    hang_x = Float(0.0, iotype='in')
    hang_y = Float(0.0, iotype='in')
    fail_rank = Int(-1, iotype='in', desc='rank of the group that raises in case (fail_x, '
                                          'fail_y), after the allreduce')
    fail_x = Float(0.0, iotype='in')
    fail_y = Float(0.0, iotype='in')

    f = Float(iotype='out')
    total = Float(iotype='out')
    size = Int(iotype='out')
    ranks = Int(iotype='out')
    pid = Int(iotype='out')

    def execute(self) -> None:
        if self.pid_dir:
            mark = os.path.join(self.pid_dir, str(os.getpid()))
            if not os.path.exists(mark):
                with open(mark, 'w'):
                    pass
        if self.hang_dir and _near(self.x, self.hang_x) and _near(self.y, self.hang_y):
            marker = os.path.join(self.hang_dir, 'hung')
            if not os.path.exists(marker):
                with open(marker, 'w') as out:
                    out.write(str(os.getpid()))
                time.sleep(HANG)
        if self.delay:
            time.sleep(self.delay)
        f = (self.x - 1.0) ** 2 + self.x * self.y
        comm = self.comm
        if comm is None:
            rank, self.size, self.ranks, self.total = 0, 1, 0, f
        else:
            from mpi4py import MPI
            rank, self.size = comm.Get_rank(), comm.Get_size()
            self.ranks = comm.allreduce(1 << MPI.COMM_WORLD.Get_rank(), op=MPI.SUM)
            self.total = comm.allreduce(f, op=MPI.SUM)
        self.f = f
        self.pid = os.getpid()
        if rank == self.fail_rank and _near(self.x, self.fail_x) and _near(self.y, self.fail_y):
            raise ZeroDivisionError(f'rank {rank} of its group divides by zero')


RESPONSES = ('c.f', 'c.total', 'c.size', 'c.ranks', 'c.pid')


def doe_model(nx: int = 20, ny: int = 10, record: str = 'cases.jsonl') -> Assembly:
    """A DOE of `Probe` on an nx-by-ny grid of [-1, 1]^2, recorded to ``record``; a failed or
    lost case runs once more (error_policy RETRY), so one failure does not stop the run."""
    top = set_as_top(Assembly())
    top.add('c', Probe())
    top.add('driver', DOEDriver(FullFactorial(num_levels={'c.x': nx, 'c.y': ny}),
                                error_policy='RETRY', max_retries=1))
    top.driver.workflow.add('c')
    top.driver.add_parameter('c.x', low=-1.0, high=1.0)
    top.driver.add_parameter('c.y', low=-1.0, high=1.0)
    for response in RESPONSES:
        top.driver.add_response(response)
    top.recorders = [JSONRecorder(record)]
    return top


def two_drivers_model(record: str = 'cases.jsonl') -> Assembly:
    """Two case lists run one after the other (``driver_workflow``): the second one gives the
    farm's warm groups another runner."""
    top = set_as_top(Assembly())
    top.add('c', Probe())
    for name, y in (('first', 1.0), ('second', 2.0)):
        top.add(name, CaseIteratorDriver(cases=[{'c.x': float(x), 'c.y': y}
                                                for x in range(30)]))
        top.get(name).workflow.add('c')
        top.get(name).add_response('c.f')
    top.driver_workflow = ['first', 'second']
    top.recorders = [JSONRecorder(record)]
    return top


def nested_model(record: str = 'cases.jsonl') -> Assembly:
    """A CaseIteratorDriver whose cases each run an inner CaseIteratorDriver that asks for
    ``MPIFarmExecutor`` (which a client rank must refuse)."""
    from openmdao_like.distributed import MPIFarmExecutor
    top = set_as_top(Assembly())
    top.add('c', Probe())
    top.add('inner', CaseIteratorDriver(cases=[{'c.y': 1.0}, {'c.y': 2.0}], sequential=False,
                                        executor=MPIFarmExecutor()))
    top.inner.workflow.add('c')
    top.add('driver', CaseIteratorDriver(cases=[{'c.x': 1.0}, {'c.x': 2.0}],
                                         error_policy='RETRY', max_retries=0))
    top.driver.workflow.add('inner')
    top.driver.add_response('c.f')
    top.recorders = [JSONRecorder(record)]
    return top


def optimizer_model() -> Assembly:
    """Differential evolution (a population method) minimizing `Probe`'s f over [-1, 1]^2."""
    top = set_as_top(Assembly())
    top.add('c', Probe())
    top.add('driver', ScipyOptimizer(method='differential_evolution', maxiter=4,
                                     options={'popsize': 4, 'seed': 3, 'polish': False}))
    top.driver.workflow.add('c')
    top.driver.add_parameter('c.x', low=-1.0, high=1.0)
    top.driver.add_parameter('c.y', low=-1.0, high=1.0)
    top.driver.add_objective('c.f')
    return top
