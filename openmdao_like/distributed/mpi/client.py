"""The client ranks of the MPI case farm: each group's leader serves cases over its connection to
rank 0; with ``procs_per_case`` K > 1 every case runs on all K ranks of the group.

The leader's life is `execution.pools._serve` (load the runner, run the chunks it receives, a
``bytes`` message is a new runner, None stops), fed by a reader thread that takes every message
off the connection as it arrives, so the next chunk is there when the current one ends. The
reader handles ``('drop',)`` itself (see `pool`), and when the connection ends without a stop
(rank 0 died, or its host: TCP keepalive) it aborts the MPI job, so that no rank is left. A
watcher thread reports a case that has run `LONG_CASE` seconds, so that rank 0 can time it out.

With K > 1 the group is an `openmdao_like.remote.spmd.Group`: the leader sends each case (and
each new runner) to its followers, all run it, and a case that fails on a follower comes back
failed, naming the rank, with its traceback; the group serves the next case as usual. The
followers are connected to rank 0 too, but only so that each side sees the other die.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import threading
from collections import deque
from typing import Any, Callable, NoReturn

from ...component import Component
from ...execution.base import CaseOutcome
from ...execution.pools import IDLE, _serve
from ...remote.spmd import abort_job
from . import links
from .roles import FarmError, Role

logger = logging.getLogger(__name__)

__all__ = ['serve', 'LONG_CASE', 'CONNECT_TIMEOUT']

#: Seconds after which a running case is reported to rank 0 (for its case_timeout).
LONG_CASE = 0.25
#: Seconds a client tries to connect to rank 0.
CONNECT_TIMEOUT = 60.0

_GROUP: Any = None  # this leader's spmd.Group (K > 1), for `_load_on_group`
_DROPPED = object()  # in the leader's inbox: a drop was done
_ENDED = object()  # the connection to rank 0 ended


def serve(role: Role) -> None:
    """The life of a client rank: connect to rank 0, serve cases until it says stop."""
    global _GROUP
    from mpi4py import MPI
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches every rank: rank 0 decides
    k = role.procs_per_case
    group = None
    if k > 1:
        from ...remote.spmd import Group
        Component.comm = role.comm
        group = Group(role.comm)  # a collective of the group's ranks
    else:
        Component.comm = MPI.COMM_SELF.Dup()
    kind = 'leader' if role.leader else 'follower'
    try:
        conn = links.connect(role.address, role.authkey, CONNECT_TIMEOUT)
        conn.send(('hello', kind, role.group, role.rank, socket.gethostname(), os.getpid()))
    except (OSError, EOFError) as exc:  # (includes an authentication refused)
        abort(role, f'cannot reach the farm server (rank 0) at '
                    f'{role.address[0]}:{role.address[1]}: {type(exc).__name__}: {exc}')
    if role.leader:
        _GROUP = group
        _Leader(role, conn, group).serve()
    else:
        _Follower(role, conn, group).serve()


def abort(role: Role, why: str) -> NoReturn:
    """Log ``why``, then end every rank of the MPI job (`spmd.abort_job`; does not return)."""
    from mpi4py import MPI
    logger.error('rank %d: %s: aborting the MPI job', role.rank, why)
    abort_job(MPI.COMM_WORLD)


def _from_server(rank: _Leader | _Follower) -> Any:
    """The next message from rank 0 on ``rank``'s connection, or `_ENDED` once it ended: rank 0
    is gone unless ``rank`` is stopping, and then the MPI job is aborted."""
    try:
        return rank.conn.recv()
    except (EOFError, OSError) as exc:
        if not rank.stopping:
            abort(rank.role, f'the farm server (rank 0) closed the connection '
                             f'({type(exc).__name__}: {str(exc) or "end of file"})')
        return _ENDED


# -- K > 1: cases and runners on every rank of the group ---------------------------------------
def _judge(result: Any) -> Any:
    """A follower's result as a problem: a failed case outcome (a runner loaded is fine)."""
    if isinstance(result, CaseOutcome):
        from ...remote.runner_service import outcome_problem
        return outcome_problem(result)
    return None


class _OnGroup:
    """A runner payload that, unpickled by `_serve` on the leader, loads the runner on every
    rank of the group and gives the leader a `_GroupRunner`."""

    def __init__(self, payload: bytes):
        self.payload = payload

    def __reduce__(self) -> tuple[Callable, tuple]:
        return _load_on_group, (self.payload,)


def _load_on_group(payload: bytes) -> _GroupRunner:
    """The runner of ``payload`` loaded on every rank; raises the first failing rank's error."""
    group = _GROUP
    runner, problems = group.run(payload, lambda: pickle.loads(payload), _judge)
    if problems:
        raise group.failure(problems)
    return _GroupRunner(runner, group)


class _GroupRunner:
    """Runs each case on every rank of the group: the leader's outcome, failed (naming the
    rank, with its traceback) when a follower's run failed."""

    def __init__(self, runner: Any, group: Any):
        from ...remote.runner_service import run_on_group
        self._run = run_on_group
        self.runner, self.group = runner, group

    def __call__(self, case_id: int, inputs: Any) -> CaseOutcome:
        return self._run(self.group, self.runner, case_id, inputs)


class _Chunk(list):
    """A chunk whose iteration stops early once its leader was told to drop its work."""

    def __init__(self, cases: list, leader: _Leader):
        super().__init__(cases)
        self._leader = leader

    def __iter__(self) -> Any:
        leader = self._leader
        for case in list.__iter__(self):
            if leader.dropping:
                return
            yield case


# -- the leader ------------------------------------------------------------------------------
class _Leader:
    """A group's leader: the reader, the case watcher and `_serve`."""

    def __init__(self, role: Role, conn: Any, group: Any):
        self.role, self.conn, self.group = role, conn, group
        self.dropping = False
        self.stopping = False
        self._send_lock = threading.Lock()
        self._inbox: deque = deque()
        self._arrived = threading.Condition()
        self._slot_lock = threading.Lock()
        self._case, self._seq, self._reported = IDLE, 0, False
        self._busy = threading.Event()
        self._stop = threading.Event()

    def serve(self) -> None:
        for target, name in ((self._read, 'farm-reader'), (self._watch, 'farm-watch')):
            threading.Thread(target=target, name=name, daemon=True).start()
        try:
            first = self.recv()
            if isinstance(first, bytes):
                _serve(self.recv, self.send, first, self.set_slot)
            elif first is not None:
                logger.error('rank %d: expected a runner first, got a %s', self.role.rank,
                             type(first).__name__)
        finally:
            self.stopping = True
            self._stop.set()
            self._busy.set()
            if self.group is not None:
                self.group.stop()
            links.close(self.conn)

    def send(self, message: Any) -> None:
        with self._send_lock:
            self.conn.send(message)

    def recv(self) -> Any:
        """The next message for `_serve` (a chunk wrapped so that a drop can end it)."""
        while True:
            with self._arrived:
                self._arrived.wait_for(lambda: self._inbox)
                message = self._inbox.popleft()
            if message is _DROPPED:
                self.dropping = False
                self.send(('idle',))
            elif isinstance(message, list):
                return _Chunk(message, self)
            elif isinstance(message, bytes) and self.group is not None:
                return pickle.dumps(_OnGroup(message))
            else:
                return message

    def _read(self) -> None:
        """Take every message off the connection; handle drops; abort if rank 0 is gone."""
        while True:
            message = _from_server(self)
            if message is _ENDED:
                return
            with self._arrived:
                if message == ('drop',):
                    self.dropping = True  # the running chunk ends after its current case
                    kept = [m for m in self._inbox if not isinstance(m, list)]
                    self._inbox.clear()
                    self._inbox.extend(kept)
                    self._inbox.append(_DROPPED)
                else:
                    self._inbox.append(message)
                self._arrived.notify()
            if message is None:
                return

    def set_slot(self, case_id: int) -> None:
        """`_serve` starts ``case_id`` (or is `IDLE`): a reported long case has ended."""
        with self._slot_lock:
            was = self._case
            self._seq += 1
            self._case = case_id
            if self._reported:
                self._reported = False
                self.send(('running', IDLE))
            if was == IDLE and case_id != IDLE:
                self._busy.set()

    def _watch(self) -> None:
        """Report each case still running `LONG_CASE` s after it started (no spinning: it
        sleeps while no chunk runs)."""
        while True:
            self._busy.wait()
            if self.stopping:
                return
            with self._slot_lock:
                seq, case = self._seq, self._case
                if case == IDLE:
                    self._busy.clear()
                    continue
            if self._stop.wait(LONG_CASE):
                return
            with self._slot_lock:
                if self._seq == seq and not self._reported:
                    self._reported = True
                    try:
                        self.send(('running', case))
                    except OSError:  # rank 0 is gone: the reader aborts
                        return


# -- a follower (K > 1) ----------------------------------------------------------------------
class _Follower:
    """A rank of a group other than its leader: runs what the leader sends; its connection to
    rank 0 only watches for rank 0's death (abort) or its leader's loss (exit)."""

    def __init__(self, role: Role, conn: Any, group: Any):
        self.role, self.conn, self.group = role, conn, group
        self.stopping = False

    def serve(self) -> None:
        threading.Thread(target=self._watch, name='farm-watch', daemon=True).start()
        runner = None

        def task(message: Any) -> Any:
            nonlocal runner
            if isinstance(message, bytes):
                runner = pickle.loads(message)
                return None
            if runner is None:
                raise FarmError(f'rank {self.role.rank}: no runner loaded (its load failed)')
            return runner(*message)

        try:
            self.group.follow(task, _judge)
        finally:
            self.stopping = True
            links.close(self.conn)

    def _watch(self) -> None:
        while True:
            message = _from_server(self)
            if message is _ENDED:
                return
            if message == ('exit',):
                logger.error('rank %d: the leader of group %d was lost; this rank exits',
                             self.role.rank, self.role.group)
                for handler in logging.getLogger().handlers:
                    handler.flush()
                os._exit(1)
