"""`JobStore`: the runs and their jobs in a database that outlives the processes using it.

::

    store = JobStore('sqlite:///runs.db')           # or 'postgresql://user:pw@host/db'
    run_id = store.create_run('doe', model=blob)    # a run: one submitted model
    store.add_jobs(run_id, [(0, {'p.x': 1.0}), (1, {'p.x': 2.0})])     # its cases, READY
    store.move(run_id, [0, 1], State.RUNNING, host='node7')
    store.finish(run_id, [Result(0, State.COMPLETED, {'p.f': 3.0}), ...])
    store.counts(run_id)                            # {'COMPLETED': 1, 'RUNNING': 1, ...}

Every change of jobs is one transaction, and moves are checked against the transition table of
`openmdao_like.jobs.states` inside it: a batch with one illegal move changes nothing and raises
`IllegalTransitionError` naming the job. Inputs and outputs are stored as the recorders' JSON
(`openmdao_like.recorders.codec`: arrays and NaN survive). Retries are counted apart: ``attempts``
(every start), ``model_retries`` (the model raised) and ``infra_retries`` (the worker or runner
was lost), as the execution loop counts them.

Schema versions (`SCHEMA_VERSION`; `MIGRATIONS` upgrades an older store when it is opened, and a
store of a newer version is refused rather than misread):
  1 -- tables ``meta(schema_version)``, ``runs`` and ``jobs`` (below).
  2 -- ``runs.lease_expires``: until when the runner named in ``runs.runner`` last said it
       works on the run.
  3 -- ``runs.kind`` (``'submitted'``: runners run it; ``'in-process'``: the process that
       started it does) and the table ``pilots``: the batch jobs and servers runners allocated
       for a run (so that cancelling it reaches the scheduler even when its runner is gone).
       Jobs are claimed one by one under leases (``jobs.lease_owner``, ``jobs.lease_expires``):
       several runners share a run, and a dead runner's jobs go to the next one. The index of
       jobs by state gives way to ``jobs_to_run``: the READY and RUNNING jobs by case id.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ..cases import OK, Case
from ..errors import IllegalTransitionError, StoreError, StoreUnavailableError
from ..recorders import codec
from .backends import Backend, connect, executemany, redact
from .states import ENDED, SOURCES, State, as_state, check_transition, names

#: The schema this code writes and reads.
SCHEMA_VERSION = 3

#: Environment variable naming the default store; else `DEFAULT_STORE`.
STORE_ENV = 'OML_JOB_STORE'
DEFAULT_STORE = 'sqlite:///' + os.path.join('~', '.openmdao_like', 'jobs.db')

#: Characters of output tails kept per job.
TAIL_CHARS = 4000
#: Jobs added at once from which the database is told its table grew (`Backend.grown`).
GROWN_ROWS = 1000
#: Case ids one statement names at most (SQLite allows 32,766 parameters).
IDS_PER_STATEMENT = 5000
#: Rows one statement writes at most (`JobStore._each_chunk`)...
ROWS_PER_STATEMENT = 2000
#: ... and parameters (SQLite allows 32,766).
MAX_PARAMETERS = 30_000
#: Seconds between tries while a store is unavailable (`through_outages`); the last repeats.
OUTAGE_DELAYS = (0.5, 1.0, 2.0, 5.0)

logger = logging.getLogger(__name__)
T = TypeVar('T')


def _schema(b: Backend) -> list[str]:
    return [
        'CREATE TABLE meta (schema_version INTEGER NOT NULL)',
        f'CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL, '
        f'driver TEXT, model {b.blob}, model_format TEXT, resources TEXT, created {b.real}, '
        f'started {b.real}, finished {b.real}, total BIGINT, runner TEXT, error TEXT, '
        f'lease_expires {b.real}, kind TEXT)',
        f'CREATE TABLE jobs (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, '
        f'case_id BIGINT NOT NULL, state TEXT NOT NULL, inputs TEXT, outputs TEXT, error TEXT, '
        f'attempts INTEGER NOT NULL DEFAULT 0, model_retries INTEGER NOT NULL DEFAULT 0, '
        f'infra_retries INTEGER NOT NULL DEFAULT 0, host TEXT, scheduler_id TEXT, '
        f'created {b.real}, started {b.real}, finished {b.real}, stdout_tail TEXT, '
        f'stderr_tail TEXT, lease_owner TEXT, lease_expires {b.real}, '
        f'PRIMARY KEY (run_id, case_id))',
        *_schema_3(b),
    ]


def _schema_3(b: Backend) -> list[str]:
    """What schema 3 added: the jobs runners claim, by case id (partial: a job written
    COMPLETED costs no index entry), and the pilots."""
    return ["CREATE INDEX jobs_to_run ON jobs (run_id, case_id) WHERE state IN ('READY', "
            "'RUNNING')",
            f'CREATE TABLE pilots (id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id) '
            f'ON DELETE CASCADE, runner TEXT, allocator TEXT, scheduler_id TEXT, host TEXT, '
            f'workdir TEXT, started {b.real}, ended {b.real})',
            'CREATE INDEX pilots_by_run ON pilots (run_id)']



#: Version -> the statements that bring a store of the version before it up to it.
MIGRATIONS: dict[int, Callable[[Backend], list[str]]] = {
    2: lambda b: [f'ALTER TABLE runs ADD COLUMN lease_expires {b.real}'],
    # a run that waited for a runner or had one was submitted; the others ran in-process
    3: lambda b: ['ALTER TABLE runs ADD COLUMN kind TEXT',
                  "UPDATE runs SET kind = CASE WHEN state = 'WAITING' OR runner IS NOT NULL "
                  "THEN 'submitted' ELSE 'in-process' END",
                  'DROP INDEX IF EXISTS jobs_by_state', *_schema_3(b)],
}

#: `RunInfo.kind` of a run that runners run (``submit``) and of one run where it was started.
SUBMITTED, IN_PROCESS = 'submitted', 'in-process'


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What a store knows of a run (see `JobStore.run`)."""

    id: str
    name: str
    state: str
    driver: str | None
    created: float | None
    started: float | None
    finished: float | None
    total: int | None
    runner: str | None
    error: str | None
    resources: dict[str, Any] | None
    lease_expires: float | None
    kind: str | None


@dataclasses.dataclass(frozen=True)
class JobInfo:
    """One job of a run (see `JobStore.jobs`)."""

    run_id: str
    case_id: int
    state: State
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    error: str | None
    attempts: int
    model_retries: int
    infra_retries: int
    host: str | None
    scheduler_id: str | None
    created: float | None
    started: float | None
    finished: float | None
    stdout_tail: str | None
    stderr_tail: str | None


@dataclasses.dataclass(frozen=True)
class Result:
    """How one job ended, for `JobStore.finish`: COMPLETED or FAILED (or READY again: lost)."""

    case_id: int
    state: State
    outputs: dict[str, Any] | None = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    host: str | None = None
    stdout_tail: str | None = None
    stderr_tail: str | None = None


@dataclasses.dataclass(frozen=True)
class PilotInfo:
    """A server a runner allocated for a run (see `JobStore.pilots`)."""

    id: str
    run_id: str
    runner: str | None
    allocator: str | None
    scheduler_id: str | None
    host: str | None
    workdir: str | None
    started: float | None
    ended: float | None


_PILOT_COLUMNS = ('id', 'run_id', 'runner', 'allocator', 'scheduler_id', 'host', 'workdir',
                  'started', 'ended')
_RUN_COLUMNS = ('id', 'name', 'state', 'driver', 'created', 'started', 'finished', 'total',
                'runner', 'error', 'resources', 'lease_expires', 'kind')
_JOB_COLUMNS = ('run_id', 'case_id', 'state', 'inputs', 'outputs', 'error', 'attempts',
                'model_retries', 'infra_retries', 'host', 'scheduler_id', 'created', 'started',
                'finished', 'stdout_tail', 'stderr_tail')


class JobStore:
    """The runs and jobs of the store at ``url``; creates its tables on first use.

    Parameters
    ----------
    url : str, optional
        ``sqlite:///path.db`` or ``postgresql://user:password@host:port/db``; default
        ``$OML_JOB_STORE``, else ``sqlite:///~/.openmdao_like/jobs.db``.

    Raises
    ------
    StoreError
        The URL has an unknown scheme, the database refuses the connection, or its schema is
        newer than this code's (the message names the URL, password hidden).
    """

    def __init__(self, url: str | None = None):
        url = url or os.environ.get(STORE_ENV) or DEFAULT_STORE
        if url.startswith('sqlite:///~'):
            path = os.path.expanduser(url[len('sqlite:///'):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            url = 'sqlite:///' + path
        self.url = url
        self._db = connect(url)
        try:
            self._prepare()
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return f'JobStore({redact(self.url)!r})'

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the store's content stays)."""
        self._db.close()

    def reconnect(self) -> None:
        """A new connection in place of the old one (after `StoreUnavailableError`: the
        database restarted, the network failed); `StoreUnavailableError` while it cannot be
        reached."""
        try:
            self._db.close()
        except Exception:  # noqa: BLE001 - a connection already lost may not close cleanly
            pass
        self._db = connect(self.url)

    def through_outages(self, call: Callable[[], T], what: str,
                        stop: threading.Event | None = None) -> T:
        """``call()``, tried again while the store is unavailable, after each of
        `OUTAGE_DELAYS` (the last repeating) and a `reconnect`, until it works or ``stop`` is
        set (then the last error is raised). Other errors are raised at once. The retries of
        every process that must outlive a PostgreSQL restart: runners, job recorders."""
        failures = 0
        while True:
            try:
                return call()
            except StoreUnavailableError as exc:
                failures += 1
                delay = OUTAGE_DELAYS[min(failures, len(OUTAGE_DELAYS)) - 1]
                logger.warning('%r: %s failed (%s): trying again in %g s', self, what, exc,
                               delay)
                if stop is None:
                    time.sleep(delay)
                elif stop.wait(delay):
                    raise
                try:
                    self.reconnect()
                except StoreUnavailableError:
                    pass  # the next try fails the same way, and waits longer

    # -- schema ---------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Create the tables, or upgrade them (`MIGRATIONS`), or refuse a newer schema."""
        with self._writing() as cur:
            version = self._schema_version(cur)
            if version is None:
                for statement in _schema(self._db):
                    cur.execute(statement)
                cur.execute(self._db.sql('INSERT INTO meta (schema_version) VALUES (?)'),
                            (SCHEMA_VERSION,))
                return
            if version > SCHEMA_VERSION:
                raise StoreError(f'{self!r}: schema version {version} is newer than this '
                                 f'openmdao_like reads ({SCHEMA_VERSION}): upgrade openmdao_like')
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step](self._db):
                    cur.execute(statement)
            if version < SCHEMA_VERSION:
                cur.execute(self._db.sql('UPDATE meta SET schema_version = ?'),
                            (SCHEMA_VERSION,))

    def _schema_version(self, cur: Any) -> int | None:
        if not self._db.has_table(cur, 'meta'):
            return None
        cur.execute('SELECT schema_version FROM meta')
        row = cur.fetchone()
        if row is None or not isinstance(row[0], int):
            raise StoreError(f'{self!r}: not a job store (its meta table holds '
                             f'{row!r}, not a schema version)')
        return row[0]

    def schema_version(self) -> int:
        """The schema version of the store (after any upgrade: `SCHEMA_VERSION`)."""
        with self._reading() as cur:
            return self._schema_version(cur)

    # -- transactions ---------------------------------------------------------------------------
    def _writing(self) -> Any:
        """``with self._writing() as cur``: a transaction that writes."""
        return _Guard(self, self._db.transaction(write=True))

    def _reading(self) -> Any:
        """``with self._reading() as cur``: a transaction that only reads."""
        return _Guard(self, self._db.transaction(write=False))

    # -- runs -----------------------------------------------------------------------------------
    def create_run(self, name: str, model: bytes | None = None, model_format: str | None = None,
                   driver: str | None = None, resources: Mapping[str, Any] | None = None,
                   total: int | None = None, state: State | str = State.WAITING) -> str:
        """A new run and its id (32 hex digits). A WAITING run (the default) is submitted: it
        waits for runners (`claim_run`); one run in-process starts RUNNING.

        Parameters
        ----------
        name : str
            What the run is called in listings (e.g. the model file).
        model : bytes, optional
            The saved model (issue-3 format ``model_format``) that resuming reloads.
        driver : str, optional
            Dotted path of the driver whose cases the jobs are.
        resources : mapping, optional
            The resource description the run was submitted with (JSON).
        total : int, optional
            How many cases the run has, when known.
        """
        if not isinstance(name, str) or not name:
            raise StoreError(f'{self!r}: a run needs a name (str), got {name!r}')
        run_id = uuid.uuid4().hex
        state = as_state(state, 'run state')
        with self._writing() as cur:
            cur.execute(self._db.sql(
                'INSERT INTO runs (id, name, state, driver, model, model_format, resources, '
                'created, total, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
                (run_id, name, state.name, driver, model, model_format,
                 None if resources is None else json.dumps(dict(resources)), time.time(),
                 total, SUBMITTED if state is State.WAITING else IN_PROCESS))
        return run_id

    def run(self, run_id: str) -> RunInfo:
        """The run whose id is or starts with ``run_id`` (at least 4 characters, unique).

        Raises
        ------
        StoreError
            No run, or several, match.
        """
        return self._run_row(self.resolve(run_id))

    def resolve(self, run_id: str) -> str:
        """The full id of the run ``run_id`` names (a unique prefix of at least 4 characters)."""
        if not isinstance(run_id, str) or len(run_id) < 4 or \
                not all(c in '0123456789abcdef' for c in run_id.lower()):
            raise StoreError(f'{self!r}: expected a run id (at least 4 of its hex digits), got '
                             f'{run_id!r}')
        with self._reading() as cur:
            cur.execute(self._db.sql('SELECT id FROM runs WHERE id LIKE ? ORDER BY id LIMIT 2'),
                        (run_id.lower() + '%',))
            found = [row[0] for row in cur.fetchall()]
        if not found:
            raise StoreError(f'{self!r}: no run {run_id!r}')
        if len(found) > 1:
            raise StoreError(f'{self!r}: {run_id!r} names several runs ({found[0]}, '
                             f'{found[1]}, ...): give more of the id')
        return found[0]

    def runs(self) -> list[RunInfo]:
        """Every run, newest first."""
        with self._reading() as cur:
            cur.execute(f'SELECT {", ".join(_RUN_COLUMNS)} FROM runs ORDER BY created DESC')
            return [_run_info(row) for row in cur.fetchall()]

    def _run_row(self, run_id: str) -> RunInfo:
        with self._reading() as cur:
            cur.execute(self._db.sql(f'SELECT {", ".join(_RUN_COLUMNS)} FROM runs WHERE id = ?'),
                        (run_id,))
            row = cur.fetchone()
        if row is None:
            raise StoreError(f'{self!r}: no run {run_id!r}')
        return _run_info(row)

    def model(self, run_id: str) -> tuple[bytes | None, str | None]:
        """The saved model of a run and its format."""
        run_id = self.resolve(run_id)
        with self._reading() as cur:
            cur.execute(self._db.sql('SELECT model, model_format FROM runs WHERE id = ?'),
                        (run_id,))
            model, fmt = cur.fetchone()
        return (None if model is None else bytes(model)), fmt

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set fields of a run: ``state``, ``started``, ``finished``, ``total``, ``runner``,
        ``error``."""
        allowed = {'state', 'started', 'finished', 'total', 'runner', 'error'}
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise StoreError(f'{self!r}: cannot update run field(s) {", ".join(unknown)} '
                             f'(fields: {", ".join(sorted(allowed))})')
        if 'state' in fields:
            fields['state'] = as_state(fields['state'], 'run state').name
        run_id = self.resolve(run_id)
        sets = ', '.join(f'{name} = ?' for name in fields)
        with self._writing() as cur:
            cur.execute(self._db.sql(f'UPDATE runs SET {sets} WHERE id = ?'),
                        (*fields.values(), run_id))

    # -- jobs -----------------------------------------------------------------------------------
    def add_jobs(self, run_id: str, cases: Iterable[tuple[int, Mapping[str, Any]]],
                 state: State = State.READY) -> int:
        """Add the cases ``(case_id, inputs)`` of a run as jobs in ``state`` (READY, WAITING or
        PAUSED), in one transaction; how many were added. A case id the run has already is an
        error naming it."""
        state = as_state(state)
        if state not in (State.READY, State.WAITING, State.PAUSED):
            raise IllegalTransitionError(f'{self!r}: new jobs start READY, WAITING or PAUSED, '
                                         f'not {state.name}')
        now = time.time()
        rows = [(run_id, _case_id(case_id), state.name, codec.dumps(dict(inputs)), now)
                for case_id, inputs in cases]
        with self._writing() as cur:
            try:
                added = self._each_chunk(cur, rows, lambda values: (
                    f'INSERT INTO jobs (run_id, case_id, state, inputs, created) {values}'))
                if added >= GROWN_ROWS:
                    self._db.grown(cur, 'jobs')
                return added
            except self._db.errors as exc:
                if 'unique' in str(exc).lower() or 'duplicate' in str(exc).lower():
                    raise StoreError(f'{self!r}: run {run_id}: a case id is there already '
                                     f'({" ".join(str(exc).split())})') from None
                if 'foreign' in str(exc).lower():
                    raise StoreError(f'{self!r}: no run {run_id!r}') from None
                raise

    def move(self, run_id: str, case_ids: Sequence[int], new: State | str,
             count_attempt: bool = False, host: str | None = None,
             scheduler_id: str | None = None) -> None:
        """Move jobs of a run to state ``new``, all or none (`IllegalTransitionError` naming
        the first job that cannot make the move). ``count_attempt``: a start (RUNNING), counted
        in ``attempts`` and timed in ``started``."""
        new = as_state(new)
        sources = SOURCES[new]
        extra, values = '', []
        if count_attempt:
            extra += ', attempts = attempts + 1, started = ?'
            values.append(time.time())
        if host is not None:
            extra += ', host = ?'
            values.append(host)
        if scheduler_id is not None:
            extra += ', scheduler_id = ?'
            values.append(scheduler_id)
        ids = [_case_id(c) for c in case_ids]
        if len(set(ids)) != len(ids):
            raise StoreError(f'{self!r}: run {run_id}: a case id is repeated in {ids!r}')
        marks = ', '.join('?' * len(sources))
        try:
            with self._writing() as cur:
                # one statement per chunk of ids: a batch costs one round trip, not one per job
                for first in range(0, len(ids), IDS_PER_STATEMENT):
                    chunk = ids[first:first + IDS_PER_STATEMENT]
                    cur.execute(self._db.sql(
                        f'UPDATE jobs SET state = ?{extra} WHERE run_id = ? AND state IN '
                        f'({marks}) AND case_id IN ({", ".join("?" * len(chunk))})'),
                        (new.name, *values, run_id, *names(sources), *chunk))
                    if cur.rowcount != len(chunk):
                        raise _Refused
        except _Refused:
            self._explain(run_id, ids, new)

    def finish(self, run_id: str, results: Sequence[Result]) -> None:
        """Record how jobs ended (COMPLETED, FAILED, or READY again when their worker was
        lost: counted in ``infra_retries``), all or none, checking each move."""
        groups: dict[State, list[tuple]] = {}
        for r in results:
            state = as_state(r.state)
            if state not in (State.COMPLETED, State.FAILED, State.READY):
                raise IllegalTransitionError(f'{self!r}: job {run_id}:{r.case_id}: a result is '
                                             f'COMPLETED, FAILED or READY (lost), not '
                                             f'{state.name}')
            groups.setdefault(state, []).append(
                (state.name, None if r.outputs is None else codec.dumps(r.outputs), r.error,
                 r.started, r.finished, r.host, _tail(r.stdout_tail), _tail(r.stderr_tail),
                 1 if state is State.READY else 0, 1 if state is State.FAILED else 0,
                 run_id, _case_id(r.case_id)))
        try:
            with self._writing() as cur:
                self._finish(cur, run_id, groups)
        except _Refused as refused:
            self._explain(run_id, refused.args[0], refused.args[1])

    def _finish(self, cur: Any, run_id: str, groups: dict[State, list[tuple]]) -> None:
        """The updates of `finish`; `_Refused` (case ids, state) when a job cannot move."""
        real = self._db.real
        for state, rows in groups.items():
            sources = names(SOURCES[state])
            marks = ', '.join('?' * len(sources))
            # v's columns (VALUES names them column1...): state, outputs, error, started,
            # finished, host, stdout_tail, stderr_tail, lost, failed, run_id, case_id
            done = self._each_chunk(cur, rows, lambda values: (
                f'UPDATE jobs SET state = v.column1, outputs = v.column2, error = v.column3, '
                f'started = COALESCE(CAST(v.column4 AS {real}), jobs.started), '
                f'finished = CAST(v.column5 AS {real}), '
                f'host = COALESCE(v.column6, jobs.host), stdout_tail = v.column7, '
                f'stderr_tail = v.column8, '
                f'infra_retries = jobs.infra_retries + CAST(v.column9 AS INTEGER), '
                f'model_retries = jobs.model_retries + CAST(v.column10 AS INTEGER) '
                f'FROM ({values}) AS v WHERE jobs.run_id = ? AND jobs.case_id = v.column12 '
                f'AND jobs.state IN ({marks})'), after=(run_id, *sources))
            if done != len(rows):
                raise _Refused([row[-1] for row in rows], state)

    def record_cases(self, run_id: str, cases: Sequence[Any]) -> None:
        """Record cases as they ended (`openmdao_like.cases.Case`: ``ok`` -> COMPLETED, else
        FAILED; ``output``: the tails of what it printed), adding their jobs if the run has
        none yet, in one transaction. A job that is COMPLETED or CANCELLED already is left as
        it is."""
        encode, completed, failed = codec.encode_case, State.COMPLETED.name, State.FAILED.name
        # the tails of what cases printed, when they were captured (a runner's cases)
        tails = any(case.output is not None for case in cases)
        rows = []
        for case in cases:  # (per case: this loop is most of a durable run's overhead)
            ok = case.status == OK
            case_id = case.id
            if type(case_id) is not int or case_id < 0:
                _case_id(case_id)  # raises, naming it
            retries = int(case.retries)
            row = (run_id, case_id, completed if ok else failed, *encode(case), case.error,
                   retries + 1, retries if ok else retries + 1, case.t_start or None,
                   case.t_start or None, case.t_end or None)
            if tails:
                out, err = case.output or (None, None)
                row += (out or None, err or None)
            rows.append(row)
        columns, updates = ((', stdout_tail, stderr_tail', 'stdout_tail = excluded.stdout_tail, '
                             'stderr_tail = excluded.stderr_tail, ') if tails else ('', ''))
        with self._writing() as cur:
            self._each_chunk(cur, rows, lambda values: (
                'INSERT INTO jobs (run_id, case_id, state, inputs, outputs, error, attempts, '
                f'model_retries, created, started, finished{columns}) {values} '
                'ON CONFLICT (run_id, case_id) DO UPDATE SET state = excluded.state, '
                f'outputs = excluded.outputs, error = excluded.error, {updates}'
                'attempts = jobs.attempts + excluded.attempts, '
                'model_retries = jobs.model_retries + excluded.model_retries, '
                'started = excluded.started, finished = excluded.finished, lease_owner = NULL, '
                "lease_expires = NULL WHERE jobs.state NOT IN ('COMPLETED', 'CANCELLED')"))

    def _each_chunk(self, cur: Any, rows: Sequence[tuple], statement: Callable[[str], str],
                    after: Sequence[Any] = ()) -> int:
        """Run ``statement(values)`` (``values``: ``VALUES (?, ...), (?, ...)``), then the
        parameters ``after``, for ``rows``; the rows it changed. On SQLite, one statement per
        chunk of rows: one step, run without Python's GIL (``executemany`` goes row by row,
        taking and dropping the GIL at each). On PostgreSQL, one row per statement, all sent
        at once (``executemany`` pipelines them; a statement of many rows is slower there,
        and its prepared generic plan far slower)."""
        if not rows:
            return 0
        marks = f'({", ".join("?" * len(rows[0]))})'
        if not self._db.many_rows:
            return executemany(cur, self._db.sql(statement(f'VALUES {marks}')),
                               [(*row, *after) for row in rows])
        size = max(1, min(ROWS_PER_STATEMENT, MAX_PARAMETERS // len(rows[0])))
        changed = 0
        for first in range(0, len(rows), size):
            chunk = rows[first:first + size]
            cur.execute(self._db.sql(statement('VALUES ' + ', '.join([marks] * len(chunk)))),
                        [*(value for row in chunk for value in row), *after])
            changed += cur.rowcount
        return changed

    def completed_cases(self, run_id: str, driver: str | None = None) -> list[Any]:
        """The COMPLETED jobs of a run as `openmdao_like.cases.Case`s of ``driver`` (default:
        the run's), in case order: what resuming the run does not run again."""
        run = self.run(run_id)
        driver = driver or run.driver or 'driver'
        return [Case(job.case_id, job.inputs, job.outputs or {}, OK, None, driver,
                     job.started or 0.0, job.finished or 0.0)
                for job in self.jobs(run.id, State.COMPLETED)]

    def recorder(self, run_id: str, driver: str) -> Any:
        """A `openmdao_like.jobs.durable.JobRecorder` of the cases of ``driver`` as the jobs
        of run ``run_id``."""
        from .durable import JobRecorder
        return JobRecorder(self, run_id, driver)

    def retry(self, run_id: str, case_ids: Sequence[int] | None = None) -> int:
        """Put FAILED jobs back to READY (all of the run's, or those of ``case_ids``, which must
        all be FAILED); how many. A submitted run waits for runners again."""
        run_id = self.resolve(run_id)
        if case_ids is None:
            case_ids = [j.case_id for j in self.jobs(run_id, State.FAILED)]
        sql = self._db.sql('UPDATE jobs SET state = ?, outputs = NULL, error = NULL, '
                           'finished = NULL WHERE run_id = ? AND case_id = ? AND state = ?')
        rows = [(State.READY.name, run_id, _case_id(c), State.FAILED.name) for c in case_ids]
        try:
            with self._writing() as cur:
                if executemany(cur, sql, rows) != len(rows):
                    raise _Refused
        except _Refused:
            self._explain(run_id, case_ids, State.READY, only_from=State.FAILED)
        if case_ids:
            self._wait_again(run_id)
        return len(case_ids)

    def _wait_again(self, run_id: str) -> None:
        """A submitted run that ended or was paused has jobs READY again: WAITING for runners."""
        with self._writing() as cur:
            cur.execute(self._db.sql(
                f"UPDATE runs SET state = 'WAITING', finished = NULL, error = NULL WHERE id = ? "
                f"AND kind = '{SUBMITTED}' AND state IN ('COMPLETED', 'FAILED', 'PAUSED')"),
                (run_id,))

    def cancel(self, run_id: str) -> int:
        """Cancel a run: every job of it that has not ended becomes CANCELLED, and the run
        CANCELLED (a process running it stops at its next write: see `JobRecorder`); how many
        jobs."""
        run_id = self.resolve(run_id)
        changed = self._move_all(run_id, State.CANCELLED)
        self.update_run(run_id, state=State.CANCELLED, finished=time.time(),
                        error='cancelled (openmdao-like jobs cancel)')
        return changed

    def pause(self, run_id: str) -> int:
        """Hold the jobs of a run that have not started (READY, WAITING): PAUSED; how many."""
        return self._move_all(self.resolve(run_id), State.PAUSED,
                              (State.READY, State.WAITING))

    def unpause(self, run_id: str) -> int:
        """Let the PAUSED jobs of a run go again: READY; how many. A submitted run waits for
        runners again."""
        run_id = self.resolve(run_id)
        moved = self._move_all(run_id, State.READY, (State.PAUSED,))
        if moved:
            self._wait_again(run_id)
        return moved

    def _move_all(self, run_id: str, new: State, sources: Iterable[State] | None = None) -> int:
        """Move every job of a run in one of ``sources`` (default: every state it may come
        from) to ``new``; how many moved."""
        sources = names(SOURCES[new] if sources is None else sources)
        marks = ', '.join('?' * len(sources))
        with self._writing() as cur:
            cur.execute(self._db.sql(f'UPDATE jobs SET state = ?, lease_owner = NULL, '
                                     f'lease_expires = NULL WHERE run_id = ? AND state IN '
                                     f'({marks})'), (new.name, run_id, *sources))
            return cur.rowcount

    def passed_over(self, run_id: str) -> list[int]:
        """Case ids of a run that resuming it must not run (PAUSED or CANCELLED)."""
        run_id = self.resolve(run_id)
        with self._reading() as cur:
            cur.execute(self._db.sql('SELECT case_id FROM jobs WHERE run_id = ? AND state IN '
                                     '(?, ?) ORDER BY case_id'),
                        (run_id, State.PAUSED.name, State.CANCELLED.name))
            return [row[0] for row in cur.fetchall()]

    # -- runners --------------------------------------------------------------------------------
    def claim_run(self, runner: str, lease: float) -> str | None:
        """The oldest submitted run, WAITING or RUNNING, with work for runner ``runner``: one
        whose cases are not planned yet (`plan_run`), or that has a READY job or a RUNNING job
        whose runner's lease expired (it died); its id, or None. Several runners may work on
        one run: they share its jobs through `claim_jobs`. The run names ``runner`` as the
        last to join, and is RUNNING once its cases are planned. (A FAILED run, e.g. stopped
        by an ABORT, waits again once its failed jobs are retried: `retry`.)"""
        now = time.time()
        lock = ' FOR UPDATE SKIP LOCKED' if self._db.blob == 'BYTEA' else ''
        with self._writing() as cur:
            cur.execute(self._db.sql(
                f"SELECT id, total FROM runs WHERE kind = '{SUBMITTED}' AND state IN ('WAITING', "
                "'RUNNING') AND ((total IS NULL AND state = 'WAITING') OR EXISTS (SELECT 1 FROM "
                "jobs WHERE jobs.run_id = runs.id AND jobs.state IN ('READY', 'RUNNING') AND "
                "(jobs.state = 'READY' OR COALESCE(jobs.lease_expires, 0) < ?))) ORDER BY "
                "created LIMIT 1"
                + lock),
                (now,))
            row = cur.fetchone()
            if row is None:
                return None
            run_id, total = row
            cur.execute(self._db.sql(
                'UPDATE runs SET runner = ?, lease_expires = ?, started = COALESCE(started, ?)'
                + ('' if total is None else ', state = ?, finished = NULL, error = NULL')
                + ' WHERE id = ?'),
                (runner, now + lease, now, *(() if total is None else (State.RUNNING.name,)),
                 run_id))
        return run_id

    def plan_run(self, run_id: str, cases: Iterable[tuple[int, Mapping[str, Any]]]) -> int:
        """Add the cases ``(case_id, inputs)`` of a submitted run as READY jobs and set its
        total, in one transaction; the total. When the run has its cases already
        (another runner planned it first), nothing changes."""
        now = time.time()
        rows = [(run_id, _case_id(case_id), State.READY.name, codec.dumps(dict(inputs)), now)
                for case_id, inputs in cases]
        with self._writing() as cur:
            cur.execute(self._db.sql('SELECT total FROM runs WHERE id = ?'), (run_id,))
            row = cur.fetchone()
            if row is None:
                raise StoreError(f'{self!r}: no run {run_id!r}')
            if row[0] is not None:
                return row[0]
            self._each_chunk(cur, rows, lambda values: (
                f'INSERT INTO jobs (run_id, case_id, state, inputs, created) {values} '
                'ON CONFLICT (run_id, case_id) DO NOTHING'))
            if len(rows) >= GROWN_ROWS:
                self._db.grown(cur, 'jobs')
            cur.execute(self._db.sql('UPDATE runs SET total = ? WHERE id = ?'),
                        (len(rows), run_id))
        return len(rows)

    def claim_jobs(self, run_id: str, runner: str, lease: float, limit: int,
                   host: str | None = None) -> list[tuple[int, dict[str, Any]]]:
        """Give runner ``runner`` up to ``limit`` jobs of a run to run, lowest case ids first:
        READY ones, and RUNNING ones whose runner's lease expired (counted in
        ``infra_retries``). They are RUNNING under ``runner``'s lease for ``lease`` seconds
        (`heartbeat` renews it), run on ``host`` if known; their ``(case_id, inputs)``. Two
        runners never get the same
        job: the claim is one transaction, and on PostgreSQL the rows are locked (``FOR UPDATE
        SKIP LOCKED``)."""
        now = time.time()
        lock = ' FOR UPDATE SKIP LOCKED' if self._db.blob == 'BYTEA' else ''
        with self._writing() as cur:
            cur.execute(self._db.sql(
                "SELECT case_id, inputs FROM jobs WHERE run_id = ? AND state IN ('READY', "
                "'RUNNING') AND (state = 'READY' OR COALESCE(lease_expires, 0) < ?) ORDER BY "
                "case_id LIMIT ?" + lock), (run_id, now, limit))
            found = cur.fetchall()
            for first in range(0, len(found), IDS_PER_STATEMENT):
                chunk = [row[0] for row in found[first:first + IDS_PER_STATEMENT]]
                cur.execute(self._db.sql(
                    "UPDATE jobs SET infra_retries = infra_retries + CASE WHEN state = 'RUNNING' "
                    "THEN 1 ELSE 0 END, state = 'RUNNING', lease_owner = ?, lease_expires = ?, "
                    "started = ?, host = COALESCE(?, host) WHERE run_id = ? AND case_id IN "
                    f"({', '.join('?' * len(chunk))})"),
                    (runner, now + lease, now, host, run_id, *chunk))
        return [(case_id, codec.loads(inputs) if inputs else {}) for case_id, inputs in found]

    def heartbeat(self, run_id: str, runner: str, lease: float) -> str:
        """Extend ``runner``'s leases on a run and on its RUNNING jobs by ``lease`` seconds from
        now; the run's state (a runner stops a run found CANCELLED)."""
        until = time.time() + lease
        with self._writing() as cur:
            cur.execute(self._db.sql("UPDATE jobs SET lease_expires = ? WHERE run_id = ? AND "
                                     "lease_owner = ? AND state = 'RUNNING'"),
                        (until, run_id, runner))
            cur.execute(self._db.sql('UPDATE runs SET lease_expires = ? WHERE id = ? AND '
                                     'runner = ?'), (until, run_id, runner))
            cur.execute(self._db.sql('SELECT state FROM runs WHERE id = ?'), (run_id,))
            row = cur.fetchone()
        if row is None:
            raise StoreError(f'{self!r}: no run {run_id!r}')
        return row[0]

    def release_run(self, run_id: str, runner: str, hand_back: bool = False) -> None:
        """``runner`` lets go of a run. ``hand_back`` (it stops before the run ends): its
        RUNNING jobs go back to READY for the next runner, and the run, if no other runner
        holds a job of it, back to WAITING."""
        with self._writing() as cur:
            if hand_back:
                cur.execute(self._db.sql(
                    "UPDATE jobs SET state = 'READY', lease_owner = NULL, lease_expires = NULL "
                    "WHERE run_id = ? AND lease_owner = ? AND state = 'RUNNING'"), (run_id, runner))
                cur.execute(self._db.sql(
                    "UPDATE runs SET state = 'WAITING' WHERE id = ? AND state = 'RUNNING' AND NOT "
                    "EXISTS (SELECT 1 FROM jobs WHERE run_id = ? AND state = 'RUNNING')"),
                    (run_id, run_id))
            cur.execute(self._db.sql('UPDATE runs SET runner = NULL, lease_expires = NULL '
                                     'WHERE id = ? AND runner = ?'), (run_id, runner))

    # -- pilots ---------------------------------------------------------------------------------
    def add_pilot(self, run_id: str, runner: str, allocator: str, scheduler_id: str | None,
                  host: str | None, workdir: str | None = None) -> str:
        """Note a server runner ``runner`` allocated for a run (``scheduler_id``: its batch
        job, if it is one; ``workdir``: the job's directory); the pilot's id, for
        `end_pilot`."""
        pilot_id = uuid.uuid4().hex
        with self._writing() as cur:
            cur.execute(self._db.sql(
                'INSERT INTO pilots (id, run_id, runner, allocator, scheduler_id, host, workdir, '
                'started) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
                (pilot_id, run_id, runner, allocator, scheduler_id, host, workdir, time.time()))
        return pilot_id

    def end_pilot(self, pilot_id: str) -> None:
        """Note that a pilot (`add_pilot`) was released."""
        with self._writing() as cur:
            cur.execute(self._db.sql('UPDATE pilots SET ended = ? WHERE id = ? AND ended IS '
                                     'NULL'), (time.time(), pilot_id))

    def pilots(self, run_id: str, live: bool = False) -> list[PilotInfo]:
        """The servers allocated for a run, oldest first (``live``: those not released)."""
        run_id = self.resolve(run_id)
        with self._reading() as cur:
            cur.execute(self._db.sql(
                f'SELECT {", ".join(_PILOT_COLUMNS)} FROM pilots WHERE run_id = ?'
                + (' AND ended IS NULL' if live else '') + ' ORDER BY started'), (run_id,))
            return [PilotInfo(*row) for row in cur.fetchall()]

    def run_state(self, run_id: str) -> str:
        """The state of a run (its full id: the quick check a running process makes)."""
        with self._reading() as cur:
            cur.execute(self._db.sql('SELECT state FROM runs WHERE id = ?'), (run_id,))
            row = cur.fetchone()
        if row is None:
            raise StoreError(f'{self!r}: no run {run_id!r}')
        return row[0]

    def _explain(self, run_id: str, case_ids: Sequence[int], new: State,
                 only_from: State | None = None) -> None:
        """Raise for the first of ``case_ids`` that cannot move to ``new`` (called after the
        batch that tried was rolled back)."""
        with self._reading() as cur:
            cur.execute(self._db.sql('SELECT count(*) FROM runs WHERE id = ?'), (run_id,))
            if not cur.fetchone()[0]:
                raise StoreError(f'{self!r}: no run {run_id!r}')
            sql = self._db.sql('SELECT state FROM jobs WHERE run_id = ? AND case_id = ?')
            for case_id in case_ids:
                cur.execute(sql, (run_id, _case_id(case_id)))
                row = cur.fetchone()
                job = f'{self!r}: job {run_id[:8]}:{case_id}'
                if row is None:
                    raise StoreError(f'{job}: no such job in run {run_id}')
                old = State[row[0]]
                if only_from is not None and old is not only_from:
                    raise IllegalTransitionError(f'{job}: only a {only_from.name} job can go '
                                                 f'to {new.name}, and this one is {old.name}')
                check_transition(job, old, new)
        raise StoreError(f'{self!r}: run {run_id}: jobs changed while they were moved to '
                         f'{new.name}; nothing was changed (try again)')

    def jobs(self, run_id: str, state: State | str | None = None,
             case_ids: Sequence[int] | None = None) -> list[JobInfo]:
        """The jobs of a run by case id, all or those in ``state`` or of ``case_ids``."""
        run_id = self.resolve(run_id)
        where, params = 'run_id = ?', [run_id]
        if state is not None:
            where += ' AND state = ?'
            params.append(as_state(state).name)
        with self._reading() as cur:
            cur.execute(self._db.sql(f'SELECT {", ".join(_JOB_COLUMNS)} FROM jobs WHERE {where} '
                                     f'ORDER BY case_id'), params)
            found = [_job_info(row) for row in cur.fetchall()]
        if case_ids is not None:
            wanted = set(case_ids)
            found = [job for job in found if job.case_id in wanted]
        return found

    def job(self, run_id: str, case_id: int) -> JobInfo:
        """One job (``run_id`` may be a prefix); `StoreError` naming it if there is none."""
        found = self.jobs(run_id, case_ids=[case_id])
        if not found:
            raise StoreError(f'{self!r}: run {run_id} has no job {case_id!r}')
        return found[0]

    def counts(self, run_id: str) -> dict[str, int]:
        """Jobs per state name (every state, 0 included, in `State` order)."""
        run_id = self.resolve(run_id)
        with self._reading() as cur:
            cur.execute(self._db.sql('SELECT state, count(*) FROM jobs WHERE run_id = ? '
                                     'GROUP BY state'), (run_id,))
            found = dict(cur.fetchall())
        return {s.name: int(found.get(s.name, 0)) for s in State}

    def ended(self, run_id: str) -> bool:
        """Whether every job of the run has ended (COMPLETED, FAILED or CANCELLED)."""
        counts = self.counts(run_id)
        return not any(n for name, n in counts.items() if State[name] not in ENDED)


def _case_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StoreError(f'expected a case id (an int >= 0), got {value!r}')
    return value


def _tail(text: str | None) -> str | None:
    return None if text is None else text[-TAIL_CHARS:]


def _run_info(row: Sequence[Any]) -> RunInfo:
    values = dict(zip(_RUN_COLUMNS, row))
    values['resources'] = None if values['resources'] is None else json.loads(values['resources'])
    return RunInfo(**values)


def _job_info(row: Sequence[Any]) -> JobInfo:
    values = dict(zip(_JOB_COLUMNS, row))
    values['state'] = State[values['state']]
    values['inputs'] = codec.loads(values['inputs']) if values['inputs'] else {}
    values['outputs'] = None if values['outputs'] is None else codec.loads(values['outputs'])
    return JobInfo(**values)


class _Refused(Exception):
    """A batch could not move every job it named (rolls the batch back; see `_explain`)."""


class _Guard:
    """A transaction whose database errors become `StoreError`s naming the store
    (`StoreUnavailableError` when the database cannot be reached now)."""

    def __init__(self, store: JobStore, inner: Any):
        self._store, self._inner = store, inner

    def _error(self, exc: BaseException) -> StoreError:
        db = self._store._db
        kind = StoreUnavailableError if db.unavailable(exc) else StoreError
        return kind(f'{self._store!r}: {" ".join(str(exc).split())}')

    def __enter__(self) -> Any:
        try:
            return self._inner.__enter__()
        except self._store._db.errors as exc:
            raise self._error(exc) from exc

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool | None:
        try:
            self._inner.__exit__(kind, exc, tb)
        except self._store._db.errors as err:
            raise self._error(err) from err
        if exc is not None and isinstance(exc, self._store._db.errors):
            raise self._error(exc) from exc
        return None
