"""SPMD object servers: one object held by every rank of an ObjServer that an MPI launcher
started (``ObjServerFactory(launcher=['mpiexec', '-n', '4'])``).

Detection: an MPI launcher gives its processes ``PMI_SIZE`` (MPICH's hydra, SLURM's PMI-2),
``OMPI_COMM_WORLD_SIZE`` (Open MPI) or ``PMIX_RANK`` (PMIx). Only then is mpi4py imported; a
world of one rank is served as usual, and outside a launcher nothing here runs.

Start: rank 0 reads the settings (MPICH forwards stdin to rank 0 only) and shares them, every
rank builds the same object in the same working directory, and the ranks agree that all of
them succeeded. Only rank 0 listens and writes the reply line; the others' stdout goes to
stderr (the ObjServer log), so nothing they print reaches the factory's pipe.

Runs: rank 0 sends each run (the inputs set since the last one) and each case of a case runner
to every rank, so that all of them set the same inputs and run the component, whose
``execute`` may use ``MPI.COMM_WORLD`` collectives. Every rank reports how its share ended;
rank 0's results are what the client gets, and an exception on any rank fails the run, naming
the rank. A rank that raised may leave the others blocked in a collective it never joined:
when some rank has not finished `ERROR_GRACE` seconds after an error, the run fails saying so
and the MPI job is aborted (every rank ends; the client releases the object).

End: the factory's SIGTERM to the launcher ends every rank; when the factory dies, rank 0 sees
its stdin close and aborts the job. Ranks ended so never reach MPI_Finalize, where MPICH would
remove its shared-memory file: once every rank has mapped it, the ranks remove it themselves
(the memory lives on until the last rank ends), so that no MPI object leaves one in /dev/shm.

The MPI case farm (`openmdao_like.distributed.mpi`) reuses `Group` for its groups of K ranks:
their leader also loads each new runner on the followers (a run whose payload is the runner) and
at the end calls `Group.stop`, after which `follow` returns and every rank finalizes MPI. While a
component runs, ``self.comm`` is the communicator of its ranks (`Component.comm`; here
COMM_WORLD, set by `join`).

Our messages travel on a duplicate of COMM_WORLD (never matched by the component's own), and
waiting ranks poll for them with a growing pause, as mpi4py.futures does, instead of spinning
a core in a blocking receive.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Callable, NoReturn, TypeVar

from ..component import Component
from ..errors import RemoteError
from .failures import capture, rebuild

logger = logging.getLogger(__name__)

__all__ = ['Group', 'join', 'abort_job', 'LAUNCHER_VARIABLES', 'ERROR_GRACE', 'ABORT_GRACE']

#: Environment variables an MPI launcher sets in the processes it starts.
LAUNCHER_VARIABLES = ('PMI_SIZE', 'OMPI_COMM_WORLD_SIZE', 'PMIX_RANK')
#: Seconds the other ranks may still take to finish a run after one rank failed it.
ERROR_GRACE = 5.0
#: Seconds between failing a run for good and aborting the MPI job (the reply goes out first).
ABORT_DELAY = 1.0
#: Seconds a rank waits, its output flushed, before MPI_Abort: the launcher ends the job on the
#: abort and may not have forwarded the rank's last lines yet (MPICH's hydra, under load, can
#: lose them: the very lines that say why the job ends).
ABORT_GRACE = 1.0
#: Longest pause between two polls of a waiting rank.
MAX_PAUSE = 1e-3
#: Longest pause of a follower that has waited `IDLE_AFTER` s for rank 0 (idle between runs:
#: many ranks share few cores, and an idle rank should not wake a thousand times a second).
IDLE_PAUSE = 0.02
IDLE_AFTER = 1.0

#: How a rank's share of a run failed: `failures.capture` of its exception, or alike.
Problem = tuple[str, str, str, str]
T = TypeVar('T')

_RUN, _DONE, _STOP = 1, 2, 3


def abort_job(comm: Any) -> NoReturn:
    """End every rank of ``comm``'s MPI job (MPI_Abort, status 1) once this rank's log and
    output are flushed and the launcher had `ABORT_GRACE` s to forward them."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(ABORT_GRACE)
    comm.Abort(1)
    raise SystemExit(1)  # MPI_Abort should not return; if it does, this rank ends


def join() -> Group | None:
    """The ranks of this ObjServer when an MPI launcher started it with more than one, else
    None (mpi4py is imported only under a launcher)."""
    if not any(name in os.environ for name in LAUNCHER_VARIABLES):
        return None
    import mpi4py
    from mpi4py import MPI
    if MPI.COMM_WORLD.Get_size() == 1:
        return None
    Component.comm = MPI.COMM_WORLD  # what the object's execute sees as self.comm
    if MPI.Query_thread() != MPI.THREAD_MULTIPLE:  # rank 0 waits while its share runs
        raise RuntimeError(f'an MPI object server needs MPI_THREAD_MULTIPLE; this MPI library '
                           f'gives thread level {MPI.Query_thread()} (mpi4py.rc.thread_level '
                           f'is {mpi4py.rc.thread_level!r})')
    group = Group(MPI.COMM_WORLD)  # a collective: every rank has mapped the MPI library's
    _unlink_shared_memory()        # shared memory by now
    if not group.leader:
        os.dup2(2, 1)  # the launcher merges every rank's stdout into the factory's reply pipe
    return group


def _unlink_shared_memory() -> None:
    """Remove the /dev/shm files this process maps (only the MPI library's: nothing else ran
    yet); their memory stays mapped by the ranks until they end."""
    try:
        with open('/proc/self/maps') as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps if '/dev/shm/' in line}
    except OSError:  # no procfs: nothing to clean up this way
        return
    for path in paths:
        if path.startswith('/dev/shm/') and not path.endswith('(deleted)'):
            try:
                os.unlink(path)
            except FileNotFoundError:  # another rank was first
                pass


def no_problem(result: Any) -> Problem | None:
    """The default judge of a rank's result: returning is success."""
    return None


class Group:
    """The ranks of one SPMD ObjServer: rank 0 (the leader) serves the clients and sends each
    run to the others (the followers), which run it too and report how it ended.

    Parameters
    ----------
    world : mpi4py.MPI.Comm
        Every rank of the ObjServer (duplicated for our own messages).
    grace : float
        See `ERROR_GRACE`.
    """

    def __init__(self, world: Any, grace: float = ERROR_GRACE):
        from mpi4py import MPI
        self._mpi = MPI
        self.comm = world.Dup()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.leader = self.rank == 0
        self.grace = grace
        #: why the group cannot run any more (its MPI job is being aborted), else None
        self.broken: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f'<spmd.Group rank {self.rank} of {self.size}>'

    # -- start ----------------------------------------------------------------------------------
    def share(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank (the others pass anything)."""
        return self.comm.bcast(value, root=0)

    def all_ok(self, build: Callable[[], T]) -> T:
        """``build()`` on every rank, checked together: its result when no rank failed, else
        this rank's own exception or (when this rank succeeded) the first failing rank's."""
        try:
            result, problem = build(), None
        except Exception as exc:
            result, problem = exc, capture(exc)
        problems = self.comm.allgather(problem)
        if problem is not None:
            raise result
        failed = {rank: p for rank, p in enumerate(problems) if p is not None}
        if failed:
            raise self.failure(failed)
        return result

    # -- runs -----------------------------------------------------------------------------------
    def follow(self, task: Callable[[Any], Any],
               judge: Callable[[Any], Problem | None] = no_problem) -> None:
        """Followers: run ``task(payload)`` for every payload rank 0 sends and report how it
        ended (an exception, or what ``judge`` finds wrong with the result); return when rank
        0 calls `stop` (an object server's followers never return: the launcher ends them)."""
        while True:
            payload, stop = self._receive()
            if stop:
                return
            try:
                problem = judge(task(payload))
            except Exception as exc:
                logger.debug('rank %d: run failed', self.rank, exc_info=True)
                problem = capture(exc)
            self.comm.send(problem, dest=0, tag=_DONE)

    def run(self, payload: Any, local: Callable[[], T],
            judge: Callable[[T], Problem | None] = no_problem) -> tuple[T, dict[int, Problem]]:
        """Rank 0: send ``payload`` to the followers, run ``local()`` here meanwhile, wait for
        every rank; ``local``'s result and ``{rank: problem}`` of the followers that failed.

        Raises ``local``'s exception once every rank finished, or `RemoteError` (and aborts
        the MPI job) when a rank failed and some other did not finish within the grace time.
        """
        mpi = self._mpi
        with self._lock:
            if self.broken is not None:
                raise RemoteError(self.broken)
            sends = [self.comm.isend(payload, dest=rank, tag=_RUN)
                     for rank in range(1, self.size)]
            mine = _Share(local)
            mine.start()
            problems: dict[int, Problem] = {}
            waiting = set(range(1, self.size))
            first: tuple[int, Problem] | None = None
            deadline = pause = 0.0
            status = mpi.Status()
            while waiting or mine.is_alive():
                message = self._probe(mpi.ANY_SOURCE, _DONE, status)
                if message is not None:
                    rank = status.Get_source()
                    problem = message.recv()
                    waiting.discard(rank)
                    if problem is not None:
                        problems[rank] = problem
                        first = first or (rank, problem)
                    pause = 0.0
                    continue
                if first is None and not mine.is_alive():
                    own = mine.problem(judge)
                    first = (0, own) if own is not None else None
                if first is not None:
                    now = time.monotonic()
                    deadline = deadline or now + self.grace
                    if now > deadline:
                        self._break(first, sorted(waiting | ({0} if mine.is_alive() else set())))
                if mine.is_alive():
                    mine.join(pause)  # wakes as soon as rank 0's share ends
                else:
                    time.sleep(pause)
                pause = min(2 * pause or 1e-5, MAX_PAUSE)
            mpi.Request.waitall(sends)
            if mine.error is not None:
                for rank in sorted(problems):
                    mine.error.add_note(f'rank {rank} of {self.size} failed too: '
                                        f'{problems[rank][1]}: {problems[rank][2]}')
                raise mine.error
            return mine.result, problems

    def stop(self) -> None:
        """Rank 0: make every follower return from `follow` (after the run in progress)."""
        self._mpi.Request.waitall([self.comm.isend(None, dest=rank, tag=_STOP)
                                   for rank in range(1, self.size)])

    def failure(self, problems: dict[int, Problem]) -> BaseException:
        """The exception of the lowest failing rank in ``problems``, its message naming the
        rank (the same type when a client can rebuild it), the others noted."""
        rank = min(problems)
        module, name, message, text = problems[rank]
        where = f'rank {rank} of {self.size}'
        exc = rebuild((module, name, f'{where}: {message}', text), where)
        for other in sorted(problems)[1:]:
            exc.add_note(f'rank {other} of {self.size} failed too: {problems[other][1]}: '
                         f'{problems[other][2]}')
        return exc

    def _break(self, first: tuple[int, Problem], unfinished: list[int]) -> NoReturn:
        """Fail the run for good: the ranks left may be blocked forever, so abort the job."""
        rank, (_module, name, message, text) = first
        self.broken = (
            f'rank {rank} of {self.size} failed ({name}: {message}) and rank(s) '
            f'{", ".join(map(str, unfinished))} did not finish within {self.grace:g} s after '
            f'that (blocked in a collective operation rank {rank} never reached?): the MPI '
            f'job of this object is aborted; release the object. Traceback of rank {rank}:\n'
            f'{text.rstrip()}')
        logger.error('%s', self.broken)
        abort = threading.Timer(ABORT_DELAY, self.abort)
        abort.daemon = True
        abort.start()
        raise RemoteError(self.broken)

    def abort(self) -> None:
        """End every rank (`abort_job`; this call does not return)."""
        abort_job(self.comm)

    def _receive(self) -> tuple[Any, bool]:
        """The next payload from rank 0 and whether it is `stop` (polling, with growing pauses
        while idle; the two tags come from one sender on one communicator, so in order)."""
        pause = 0.0
        status = self._mpi.Status()
        idle = time.monotonic() + IDLE_AFTER
        longest = MAX_PAUSE
        while True:
            message = self._probe(0, self._mpi.ANY_TAG, status)
            if message is not None:
                return message.recv(), status.Get_tag() == _STOP
            time.sleep(pause)
            if longest < IDLE_PAUSE and time.monotonic() > idle:
                longest = IDLE_PAUSE
            pause = min(2 * pause or 1e-5, longest)

    def _probe(self, source: int, tag: int, status: Any = None) -> Any:
        """A matching message that arrived, else None. Probed twice: after a pause, the first
        probe's progress may only take the message in (MPICH), and waiting for the next poll
        would double the latency."""
        message = self.comm.improbe(source, tag, status)
        return message if message is not None else self.comm.improbe(source, tag, status)


class _Share(threading.Thread):
    """Rank 0's share of one run, in a thread of its own: waiting for the other ranks must go
    on even while it is blocked in a collective operation."""

    def __init__(self, fn: Callable[[], Any]):
        super().__init__(name='spmd-rank0', daemon=True)
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # handed to the waiting thread, which raises it
            self.error = exc

    def problem(self, judge: Callable[[Any], Problem | None]) -> Problem | None:
        """How it failed, once finished (None: it did not)."""
        return capture(self.error) if self.error is not None else judge(self.result)
