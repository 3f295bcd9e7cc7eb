"""`SQLiteRecorder`: cases in an SQLite database, written in batches, one transaction per batch.

Tables (format 2, see `FORMAT_VERSION`)::

    metadata(format_version INTEGER, created REAL, finished REAL,
             versions TEXT)                                      -- one row
    variables(name TEXT PRIMARY KEY, units TEXT, iotype TEXT,
              description TEXT)                                  -- one row per variable
    cases(id INTEGER PRIMARY KEY, driver TEXT, iteration TEXT, status TEXT, message TEXT,
          t_start REAL, t_end REAL, retries INTEGER,
          inputs TEXT, outputs TEXT)                             -- one row per case

``id`` numbers the records in the order they were recorded (unique in the file); ``driver`` is
the dotted path of the driver that recorded the case and ``iteration`` its coordinate
(``'driver:3|solver:2'``). ``message`` holds the error traceback of a failed case (NULL when it
ran); ``inputs`` and ``outputs`` hold the variables as JSON written by
`openmdao_like.recorders.codec` (arrays keep their dtype and shape, NaN survives). ``created``
and ``finished`` are the run's start and end (``time.time()``; ``finished`` NULL until the
recorder closes), ``versions`` the JSON of `metadata.run_versions`; ``variables`` gives the
units, iotype and description of each recorded name. Files of format 1 (no ``variables`` table,
``cases.case_id`` instead of ``id`` and no ``iteration``) still read.

Unlike OpenMDAO's recorder, which commits each case, cases are buffered and written
``batch_size`` at a time with one ``executemany`` in one transaction (plus at `flush()` and
`close()`): a commit costs far more than encoding a case. The database runs in WAL mode while
it is written, so it can be read meanwhile, and is switched back to a single file at `close()`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openmdao_like.cases import Case
from openmdao_like.errors import RecorderError
from openmdao_like.options import OptionsDictionary
from openmdao_like.recorders import codec
from openmdao_like.recorders.base import CaseRecorder, case_row, file_error
from openmdao_like.recorders.metadata import FORMAT_VERSION

#: Magic first 16 bytes of every SQLite 3 database file.
SQLITE_MAGIC = b'SQLite format 3\x00'

CASE_COLUMNS = ('id', 'driver', 'iteration', 'status', 'message', 't_start', 't_end', 'retries',
                'inputs', 'outputs')

_SCHEMA = (
    'CREATE TABLE metadata (format_version INTEGER NOT NULL, created REAL, finished REAL, '
    'versions TEXT)',
    'CREATE TABLE variables (name TEXT PRIMARY KEY, units TEXT, iotype TEXT, description TEXT)',
    'CREATE TABLE cases (id INTEGER PRIMARY KEY, driver TEXT NOT NULL, iteration TEXT NOT NULL, '
    'status TEXT NOT NULL, message TEXT, t_start REAL, t_end REAL, retries INTEGER, inputs TEXT, '
    'outputs TEXT)',
)
_INSERT = (f'INSERT INTO cases ({", ".join(CASE_COLUMNS)}) '
           f'VALUES ({", ".join("?" * len(CASE_COLUMNS))})')
#: What each format version's rows are read with: id, driver, iteration, status, message,
#: inputs, outputs (format 1 has no iteration: derived from driver and case id).
_SELECT = {
    1: "SELECT case_id, COALESCE(driver, ''), NULL, status, message, inputs, outputs FROM cases "
       'ORDER BY case_id, rowid',
    2: 'SELECT id, driver, iteration, status, message, inputs, outputs FROM cases ORDER BY id',
}


class SQLiteRecorder(CaseRecorder):
    """Write cases and the run's metadata to an SQLite database (``.sqlite`` or ``.db``).

    An existing file at `path` (and its ``-wal``/``-shm``/``-journal`` companions) is replaced
    by `startup()`.

    Parameters
    ----------
    path : str or os.PathLike
        Database file the cases are written to.
    batch_size : int, optional
        Cases buffered before they are written in one transaction (default 1000). A reader sees
        a case once its batch is written, or after `flush()` / `close()`.
    """

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``batch_size``, after ``path``."""
        super().declare_options(options)
        options.declare('batch_size', 1000, types=int, lower=1,
                        desc='cases buffered before they are written in one transaction')

    def _reset(self) -> None:
        """No connection, nothing buffered."""
        super()._reset()
        self._conn: sqlite3.Connection | None = None
        self._rows: list[tuple[Any, ...]] = []

    def _open(self) -> None:
        """Replace any old database, create the tables and the metadata row."""
        for suffix in ('-wal', '-shm', '-journal', ''):
            old = Path(str(self.path) + suffix)
            if old.is_file() or old.is_symlink():
                old.unlink()
        conn = sqlite3.connect(self.path, check_same_thread=False)  # our lock serializes use
        try:
            conn.execute('PRAGMA journal_mode=WAL')
            conn.execute('PRAGMA synchronous=NORMAL')
            with conn:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute('INSERT INTO metadata (format_version) VALUES (?)',
                             (FORMAT_VERSION,))
        except sqlite3.Error as exc:
            conn.close()
            raise RecorderError(f'{self!r}: cannot create the database {str(self.path)!r}: '
                                f'{exc}') from exc
        self._conn = conn

    def _record(self, case: Case) -> None:
        """Encode the case into a row now; write the batch once it is full."""
        self._rows.append((self._count, case.driver, case.iteration, case.status, case.error,
                           float(case.t_start), float(case.t_end), int(case.retries),
                           *codec.encode_case(case)))
        if len(self._rows) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        """Write the buffered rows in one transaction (kept for a retry if that fails)."""
        if not self._rows or self._conn is None:
            return
        try:
            with self._conn:
                self._conn.executemany(_INSERT, self._rows)
        except sqlite3.Error as exc:
            raise RecorderError(f'{self!r}: cannot write {len(self._rows)} cases to '
                                f'{str(self.path)!r}: {exc}') from exc
        self._rows.clear()

    def _write_metadata(self, metadata: dict[str, Any]) -> None:
        """Fill the metadata row and replace the variables, in one transaction."""
        variables = [(name, meta['units'], meta['iotype'], meta['desc'])
                     for name, meta in metadata['variables'].items()]
        try:
            with self._conn:
                self._conn.execute('UPDATE metadata SET created = ?, finished = ?, versions = ?',
                                   (metadata['start'], metadata['end'],
                                    codec.dumps(metadata['versions'])))
                self._conn.executemany('INSERT OR REPLACE INTO variables (name, units, iotype, '
                                       'description) VALUES (?, ?, ?, ?)', variables)
        except sqlite3.Error as exc:
            raise RecorderError(f'{self!r}: cannot write the metadata to '
                                f'{str(self.path)!r}: {exc}') from exc

    def _close(self) -> None:
        """Leave a single-file database (journal_mode DELETE) and close the connection."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:  # else a read-only reader of the finished file would leave -wal/-shm behind
                conn.execute('PRAGMA journal_mode=DELETE')
            except sqlite3.Error:  # a reader still has it open: it stays in WAL mode
                pass
            finally:
                conn.close()
        self._rows = []


def read_sqlite(path: Path) -> list[dict[str, Any]]:
    """The `read_cases` dicts of a database `SQLiteRecorder` wrote, ordered by id."""
    with _case_database(path) as (conn, version):
        rows = []
        for case_id, driver, iteration, status, message, inputs, outputs in conn.execute(
                _SELECT[version]):
            where = f'in the row of case {case_id!r}'
            try:
                decoded = (codec.loads(inputs), codec.loads(outputs))
            except (TypeError, ValueError) as exc:
                raise file_error(path, 'JSON inputs and outputs',
                                 f'{exc} {where}') from exc
            rows.append(case_row(path, where, case_id, driver, iteration, status, message,
                                 *decoded))
        return rows


def read_sqlite_metadata(path: Path) -> dict[str, Any]:
    """The `read_metadata` dict of a database `SQLiteRecorder` wrote (format 1 files kept only
    their start time: no versions, no variables)."""
    with _case_database(path) as (conn, version):
        if version == 1:
            (created,) = conn.execute('SELECT created FROM metadata').fetchone()
            return {'format_version': 1, 'start': created, 'end': None, 'versions': {},
                    'variables': {}}
        created, finished, versions = conn.execute(
            'SELECT created, finished, versions FROM metadata').fetchone()
        variables = {name: {'units': units, 'iotype': iotype, 'desc': desc}
                     for name, units, iotype, desc in conn.execute(
                         'SELECT name, units, iotype, description FROM variables ORDER BY rowid')}
        try:
            versions = {} if versions is None else codec.loads(versions)
        except ValueError as exc:
            raise file_error(path, 'the versions as JSON', f'{exc}') from exc
        return {'format_version': version, 'start': created, 'end': finished,
                'versions': versions, 'variables': variables}


@contextlib.contextmanager
def _case_database(path: Path) -> Iterator[tuple[sqlite3.Connection, int]]:
    """``with _case_database(path) as (conn, version)``: the database opened read-only, its
    format version checked; an SQLite error becomes a `RecorderError` naming the file."""
    conn = sqlite3.connect(f'{Path(path).resolve().as_uri()}?mode=ro', uri=True)
    try:
        tables = {name for (name,) in
                  conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {'cases', 'metadata'} <= tables:
            raise file_error(path, _EXPECTED, f'tables {", ".join(sorted(tables)) or "(none)"}')
        version = conn.execute('SELECT format_version FROM metadata').fetchone()
        if version is None or not isinstance(version[0], int) or \
                not 1 <= version[0] <= FORMAT_VERSION:
            raise file_error(path, _EXPECTED, f'format_version {version and version[0]!r}'
                             + (' (written by a newer openmdao_like?)'
                                if version and isinstance(version[0], int) else ''))
        yield conn, version[0]
    except sqlite3.DatabaseError as exc:
        raise file_error(path, _EXPECTED, f'SQLite error "{exc}" (truncated or corrupt file?)'
                         ) from exc
    finally:
        conn.close()


_EXPECTED = (f'an SQLite case database (tables cases and metadata, format_version at most '
             f'{FORMAT_VERSION})')

