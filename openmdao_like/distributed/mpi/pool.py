"""Rank 0's side of the MPI case farm: `FarmServer` (the listener and the clients connected to
it) and `MPIFarmPool`, the `WorkerPool` whose workers are the groups of client ranks.

Every client rank connects to rank 0 (`links`): the leader of each group to take chunks of cases
and give back outcomes, its followers only so that rank 0 sees them die (and they see rank 0
die). A worker is a group, named by its index; its leader's connection carries the messages of
`execution.pools._serve` plus these:

=====================  ==================================================================
to the leader          ``bytes`` a runner to load, a chunk (list) to run, None: stop;
                       ``('drop',)``: forget the chunks held, end the current one after the
                       running case, then say ``('idle',)``
from the leader        ``('ready', pid)``, ``('init_failed', text)``, ``('done', outcomes)``;
                       ``('running', case)``: a case has run for `client.LONG_CASE` s
                       (``IDLE`` once it ended); ``('idle',)``: a drop was done
to a follower          ``('exit',)``: its leader was lost, nothing will stop it otherwise
=====================  ==================================================================

A rank cannot be killed from here: `MPIFarmPool.kill` reports the group lost at once, drops
its work and ignores what it says until it is idle again, then reports it ``ready``. A group
whose leader or follower closed its connection is lost for good. `FarmServer.stop` sends every
leader None (stop) and waits, bounded, for every connection to close; the ranks that did not
close theirs (a case that never ends) are left in `FarmServer.unfinished`, for the entry point
to abort the MPI job once it reported the run.
"""

from __future__ import annotations

import logging
import pickle
import queue
import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import wait
from typing import Any, Hashable

from ...execution.base import BrokenExecutor
from ...execution.pools import IDLE, WorkerPool
from . import links
from .roles import FarmError, Role

logger = logging.getLogger(__name__)

__all__ = ['FarmServer', 'MPIFarmPool', 'current_server', 'CONNECT_TIMEOUT', 'STOP_TIMEOUT']

#: Seconds rank 0 waits for every group to connect (it goes on with those that did).
CONNECT_TIMEOUT = 60.0
#: Seconds `FarmServer.stop` waits for every client to close its connection.
STOP_TIMEOUT = 10.0
#: Seconds a new connection has to authenticate and say who it is.
HANDSHAKE_TIMEOUT = 10.0
#: Connections being authenticated at once (more are refused).
MAX_HANDSHAKES = 64

_SERVER: FarmServer | None = None  # the farm this process is rank 0 of


def current_server() -> FarmServer | None:
    """The `FarmServer` of this process (rank 0 of a farm), else None."""
    return _SERVER


class _Member:
    """One connected client rank."""

    def __init__(self, conn: Any, kind: str, group: int, rank: int, host: str, pid: int):
        self.conn, self.kind, self.group, self.rank = conn, kind, group, rank
        self.host, self.pid = host, pid
        self.open = True

    @property
    def name(self) -> str:
        return f'rank {self.rank} on {self.host} (pid {self.pid})'

    def send(self, message: Any) -> None:
        """Send, unless the connection is gone (its end of file reports that)."""
        try:
            self.conn.send(message)
        except OSError:
            pass

    def close(self) -> None:
        self.open = False
        self.conn.close()


def _member(conn: Any, hello: Any, role: Role) -> _Member:
    """The member a hello message announces, checked against the farm's layout."""
    if not (isinstance(hello, tuple) and len(hello) == 6 and hello[0] == 'hello'):
        raise ValueError(f'expected a hello message, got {type(hello).__name__}')
    _, kind, group, rank, host, pid = hello
    k = role.procs_per_case
    if kind not in ('leader', 'follower') or not all(isinstance(v, int) for v in
                                                     (group, rank, pid)):
        raise ValueError(f'malformed hello {hello!r}')
    if not 0 <= group < role.n_groups or (rank - 1) // k != group or \
            (kind == 'leader') != ((rank - 1) % k == 0):
        raise ValueError(f'{kind} rank {rank} of group {group} does not fit {role.n_groups} '
                         f'group(s) of {k}')
    return _Member(conn, kind, group, rank, str(host), pid)


class _Group:
    """A group of client ranks: one worker of the pool."""

    def __init__(self, index: int, size: int):
        self.index, self.size = index, size
        self.leader: _Member | None = None
        self.followers: list[_Member] = []
        #: 'waiting' (not all ranks connected), 'live', 'draining' (killed, not idle yet) or
        #: 'gone' (lost for good)
        self.state = 'waiting'
        self.current = IDLE

    @property
    def members(self) -> list[_Member]:
        return ([self.leader] if self.leader is not None else []) + self.followers

    @property
    def complete(self) -> bool:
        return self.leader is not None and len(self.followers) == self.size - 1

    def describe(self) -> str:
        leader = self.leader
        where = leader.name if leader is not None else 'its leader not connected'
        if self.size == 1:
            return where
        first = 1 + self.index * self.size
        return f'group {self.index} (ranks {first}-{first + self.size - 1}, leader {where})'


class FarmServer:
    """Rank 0 of a farm: accepts the clients' connections (authenticated, each announcing its
    group, rank, host and pid) and holds their groups; `stop` ends them.

    Parameters
    ----------
    role : Role
        Rank 0's role (its listener, key and the farm's layout).
    """

    def __init__(self, role: Role):
        global _SERVER
        self.role = role
        self.procs_per_case = role.procs_per_case
        self.groups = {i: _Group(i, role.procs_per_case) for i in range(role.n_groups)}
        #: Names of the ranks that had not ended when `stop` gave up on them.
        self.unfinished: list[str] = []
        self.stopped = False
        self._arrivals: queue.SimpleQueue = queue.SimpleQueue()
        self._handshakes = threading.BoundedSemaphore(MAX_HANDSHAKES)
        self._closing = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name='farm-acceptor',
                                          daemon=True)
        self._acceptor.start()
        _SERVER = self

    def __repr__(self) -> str:
        return (f'<FarmServer {len(self.groups)} group(s) of {self.procs_per_case} on '
                f'{self.role.address[0]}:{self.role.address[1]}>')

    # -- connections --------------------------------------------------------------------------
    def _accept(self) -> None:
        """Accept connections until the listener closes; each authenticates in a thread."""
        listener = self.role.listener
        while not self._closing.is_set():
            try:
                conn = listener.accept()
            except OSError:
                return
            if not self._handshakes.acquire(blocking=False):
                logger.warning('farm server: refused a connection from %s: %d already '
                               'authenticating', links.peer(conn), MAX_HANDSHAKES)
                conn.close()
                continue
            threading.Thread(target=self._admit, args=(conn,), name='farm-admit',
                             daemon=True).start()

    def _admit(self, conn: Any) -> None:
        """Authenticate ``conn`` and read its hello (bounded); queue the new member."""
        try:
            links.authenticate(conn, self.role.authkey, server=True,
                               timeout=HANDSHAKE_TIMEOUT)
            if not conn.poll(HANDSHAKE_TIMEOUT):
                raise TimeoutError(f'no hello within {HANDSHAKE_TIMEOUT:g} s')
            member = _member(conn, conn.recv(), self.role)
        except (AuthenticationError, OSError, EOFError, ValueError, pickle.UnpicklingError,
                TimeoutError) as exc:
            logger.warning('farm server: refused a connection from %s: %s: %s',
                           links.peer(conn), type(exc).__name__, exc)
            conn.close()
            return
        finally:
            self._handshakes.release()
        self._arrivals.put(member)

    def arrivals(self, timeout: float = 0.0) -> list[_Group]:
        """Take in the members that connected (waiting up to ``timeout`` s for the first);
        the groups that became complete."""
        complete = []
        while True:
            try:
                member = self._arrivals.get(timeout=timeout) if timeout > 0 else \
                    self._arrivals.get_nowait()
            except queue.Empty:
                return complete
            timeout = 0.0
            group = self.groups[member.group]
            if self.stopped or group.state != 'waiting' or any(
                    m.rank == member.rank for m in group.members):
                logger.warning('farm server: %s connected again or too late; closed',
                               member.name)
                member.close()
                continue
            if member.kind == 'leader':
                group.leader = member
            else:
                group.followers.append(member)
            if group.complete:
                group.state = 'live'
                logger.info('farm server: %s connected', group.describe())
                complete.append(group)

    def wait_connected(self, timeout: float = CONNECT_TIMEOUT) -> list[_Group]:
        """Wait until every group connected or ``timeout`` s passed; the live groups."""
        deadline = time.monotonic() + timeout
        while any(g.state == 'waiting' for g in self.groups.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                missing = [g.describe() for g in self.groups.values() if g.state == 'waiting']
                logger.warning('farm server: %d group(s) did not connect within %g s, going '
                               'on without them: %s', len(missing), timeout, '; '.join(missing))
                break
            self.arrivals(min(left, 1.0))
        return [g for g in self.groups.values() if g.state == 'live']

    def open_members(self) -> list[_Member]:
        """Every member whose connection is open."""
        return [m for g in self.groups.values() for m in g.members if m.open]

    # -- stop ---------------------------------------------------------------------------------
    def stop(self, cancel: bool = False, timeout: float = STOP_TIMEOUT) -> None:
        """End the clients (idempotent): None to every leader (with ``cancel``, a drop first:
        chunks held are forgotten), exit to followers whose leader was lost; wait up to
        ``timeout`` s for every connection to close. The ranks that did not close theirs are
        named in `unfinished` (and logged)."""
        if self.stopped:
            return
        if any(g.state == 'waiting' for g in self.groups.values()):
            self.wait_connected()  # those that connect get a stop, not a refusal
        self.stopped = True
        self._closing.set()
        self.role.listener.close()
        for group in self.groups.values():
            leader = group.leader
            if leader is not None and leader.open:
                if cancel:
                    leader.send(('drop',))
                leader.send(None)
            else:
                for follower in group.followers:
                    if follower.open:
                        follower.send(('exit',))
        deadline = time.monotonic() + timeout
        members = {m.conn: m for m in self.open_members()}
        while members:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for conn in wait(list(members), left):
                member = members[conn]
                try:
                    while conn.poll():
                        conn.recv()  # late outcomes: nobody wants them now
                except (EOFError, OSError, pickle.UnpicklingError):
                    del members[conn]
                    member.close()
        self.unfinished = [m.name for m in members.values()]
        self.unfinished += [f'group {g.index} (never connected)' for g in self.groups.values()
                            if g.state == 'waiting']
        for member in members.values():
            member.close()
        if self.unfinished:
            logger.error('farm server: %d rank(s) did not end within %g s of the stop (a case '
                         'that does not return?): %s; the MPI job will be aborted',
                         len(self.unfinished), timeout, '; '.join(self.unfinished))


class MPIFarmPool(WorkerPool):
    """The groups of client ranks of this process's `FarmServer`, as the workers of the
    dispatch loop (see the module docstring).

    Parameters
    ----------
    server : FarmServer
        The farm (this process is its rank 0).
    owner : str
        How messages name the executor.
    """

    tracks_cases = True

    def __init__(self, server: FarmServer, owner: str):
        self._server = server
        self._owner = owner
        self._payload: bytes | None = None
        self._pending: list[tuple[Hashable, str, Any]] = []

    @property
    def size(self) -> int:
        return sum(g.state in ('live', 'draining') for g in self._server.groups.values())

    def describe(self, worker: int) -> str:
        return self._server.groups[worker].describe()

    def current_case(self, worker: int) -> int:
        return self._server.groups[worker].current

    def lost_case(self, worker: Hashable) -> None:
        """None: the reports of long cases lag, so every case of a lost chunk runs again
        alone (the one that killed its group is then the one blamed)."""
        return None

    # -- feeding --------------------------------------------------------------------------------
    def start(self, payload: bytes) -> list[int]:
        server = self._server
        if server.stopped:
            raise BrokenExecutor(f'{self._owner}: the clients of the MPI case farm were '
                                 f'stopped when the executor was shut down; a farm serves one '
                                 f'executor life')
        live = server.wait_connected()
        if not live:
            raise BrokenExecutor(f'{self._owner}: no client group of the MPI case farm '
                                 f'connected to rank 0 within {CONNECT_TIMEOUT:g} s')
        self._payload = payload
        for group in live:
            group.leader.send(payload)
        return []  # each comes as 'ready' (or 'init_failed') once it loaded the runner

    def load(self, payload: bytes) -> list[int]:
        self._payload = payload
        for group in self._server.groups.values():
            if group.state in ('live', 'draining'):
                group.leader.send(payload)
        return []

    def send(self, worker: int, chunk: list[tuple[int, Any]]) -> None:
        self._server.groups[worker].leader.send(chunk)

    # -- watching -------------------------------------------------------------------------------
    def poll(self, timeout: float) -> list[tuple[Hashable, str, Any]]:
        server = self._server
        events, self._pending = self._pending, []
        for group in server.arrivals():  # a group that connected late joins the run
            if self._payload is not None:
                group.leader.send(self._payload)
        members = {m.conn: m for m in server.open_members()}
        for conn in wait(list(members), 0.0 if events else timeout):
            self._read(members[conn], events)
        return events

    def _read(self, member: _Member, events: list) -> None:
        """The messages waiting on ``member``'s connection, as events; its end of file."""
        group = self._server.groups[member.group]
        conn = member.conn
        try:
            while conn.poll():
                message = conn.recv()
                if member is group.leader:
                    self._message(group, message, events)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            member.close()
            how = 'closed its connection' if isinstance(exc, EOFError) else \
                f'closed its connection ({type(exc).__name__}: {exc})'
            if member is not group.leader:  # (the loop names the group and its leader)
                how = f'lost its {member.name}, which {how}'
            self._gone(group, how, events)

    def _message(self, group: _Group, message: Any, events: list) -> None:
        """One message of ``group``'s leader, as an event (or none)."""
        kind = message[0]
        if kind == 'running':
            group.current = message[1]
        elif group.state == 'draining':
            if kind == 'idle':  # its dropped work is gone: it can take work again
                group.state, group.current = 'live', IDLE
                events.append((group.index, 'ready', None))
        elif group.state == 'live' and kind in ('ready', 'init_failed', 'done'):
            events.append((group.index, kind, message[1]))

    def _gone(self, group: _Group, why: str, events: list) -> None:
        """``group`` is lost for good (reported lost unless a kill already did)."""
        if group.state == 'gone':
            return
        was, group.state = group.state, 'gone'
        log = logger.info if was == 'live' else logger.warning  # (the loop logs a loss)
        log('%s of %s %s; %d group(s) left', group.describe(), self._owner, why, self.size)
        if was == 'live':
            events.append((group.index, 'lost', why))
        if self.size == 0:
            events.append((group.index, 'unavailable', FarmError(
                f'every client group of the MPI case farm was lost (the last: {why})')))

    def kill(self, worker: int, why: str) -> None:
        """Report ``worker`` lost now; tell it to drop its work; it comes back ``ready``
        once idle (a rank cannot be killed from here)."""
        group = self._server.groups[worker]
        if group.state != 'live':
            return
        group.state, group.current = 'draining', IDLE
        self._pending.append((worker, 'lost', why))
        group.leader.send(('drop',))

    def replace(self, worker: int) -> list[int]:
        return []  # a killed group comes back as 'ready' once idle; a dead one never

    def close(self, cancel: bool = False) -> None:
        self._server.stop(cancel=cancel)
