"""`SQLiteRecorder`: cases in an SQLite database, written in batches, one transaction per batch.

Tables::

    metadata(format_version INTEGER, created REAL)               -- one row
    cases(case_id INTEGER, driver TEXT, status TEXT, message TEXT,
          t_start REAL, t_end REAL, retries INTEGER,
          inputs TEXT, outputs TEXT)                             -- one row per case

``message`` holds the error traceback of a failed case (NULL when it ran); ``inputs`` and
``outputs`` hold the variables as JSON written by `openmdao_like.recorders.codec` (arrays keep
their dtype and shape, NaN survives). Rows are in the order they were recorded; readers sort by
``case_id``.

Unlike OpenMDAO's recorder, which commits each case, cases are buffered and written
``batch_size`` at a time with one ``executemany`` in one transaction (plus at `flush()` and
`close()`): a commit costs far more than encoding a case. The database runs in WAL mode while
it is written, so it can be read meanwhile, and is switched back to a single file at `close()`.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from openmdao_like.cases import Case
from openmdao_like.errors import RecorderError
from openmdao_like.options import OptionsDictionary
from openmdao_like.recorders import codec
from openmdao_like.recorders.base import CaseRecorder, case_row, file_error

# Version history of the file format (bump FORMAT_VERSION whenever a table changes, and teach
# read.py to read the older versions it still can):
#   1 -- first version: `metadata(format_version, created)` and
#        `cases(case_id, driver, status, message, t_start, t_end, retries, inputs, outputs)`,
#        variables as codec JSON.
FORMAT_VERSION = 1

#: Magic first 16 bytes of every SQLite 3 database file.
SQLITE_MAGIC = b'SQLite format 3\x00'

CASE_COLUMNS = ('case_id', 'driver', 'status', 'message', 't_start', 't_end', 'retries',
                'inputs', 'outputs')

_SCHEMA = (
    'CREATE TABLE metadata (format_version INTEGER NOT NULL, created REAL)',
    'CREATE TABLE cases (case_id INTEGER NOT NULL, driver TEXT, status TEXT NOT NULL, '
    'message TEXT, t_start REAL, t_end REAL, retries INTEGER, inputs TEXT, outputs TEXT)',
)
_INSERT = f'INSERT INTO cases ({", ".join(CASE_COLUMNS)}) VALUES ({", ".join("?" * 9)})'


class SQLiteRecorder(CaseRecorder):
    """Write cases to an SQLite database (``.sqlite`` or ``.db``).

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
        """Replace any old database, create the tables and write the metadata row."""
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
                conn.execute('INSERT INTO metadata (format_version, created) VALUES (?, ?)',
                             (FORMAT_VERSION, time.time()))
        except sqlite3.Error as exc:
            conn.close()
            raise RecorderError(f'{self!r}: cannot create the database {str(self.path)!r}: '
                                f'{exc}') from exc
        self._conn = conn

    def _record(self, case: Case) -> None:
        """Encode the case into a row now; write the batch once it is full."""
        self._rows.append((int(case.id), case.driver, case.status, case.error,
                           float(case.t_start), float(case.t_end), int(case.retries),
                           codec.dumps(case.inputs), codec.dumps(case.outputs)))
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
    """The `read_cases` dicts of a database `SQLiteRecorder` wrote, ordered by case id."""
    expected = (f'an SQLite case database (tables cases and metadata, format_version at most '
                f'{FORMAT_VERSION})')
    conn = sqlite3.connect(f'{Path(path).resolve().as_uri()}?mode=ro', uri=True)
    try:
        tables = {name for (name,) in
                  conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {'cases', 'metadata'} <= tables:
            raise file_error(path, expected,
                             f'tables {", ".join(sorted(tables)) or "(none)"}')
        version = conn.execute('SELECT format_version FROM metadata').fetchone()
        if version is None or not isinstance(version[0], int) or \
                not 1 <= version[0] <= FORMAT_VERSION:
            raise file_error(path, expected, f'format_version {version and version[0]!r}'
                             + (' (written by a newer openmdao_like?)'
                                if version and isinstance(version[0], int) else ''))
        rows = []
        for case_id, status, message, inputs, outputs in conn.execute(
                'SELECT case_id, status, message, inputs, outputs FROM cases '
                'ORDER BY case_id, rowid'):
            where = f'in the row of case {case_id!r}'
            try:
                decoded = (codec.loads(inputs), codec.loads(outputs))
            except (TypeError, ValueError) as exc:
                raise file_error(path, 'JSON inputs and outputs',
                                 f'{exc} {where}') from exc
            rows.append(case_row(path, where, case_id, status, message, *decoded))
        return rows
    except sqlite3.DatabaseError as exc:
        raise file_error(path, expected, f'SQLite error "{exc}" (truncated or corrupt file?)'
                         ) from exc
    finally:
        conn.close()
