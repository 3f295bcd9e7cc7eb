"""The two databases a job store lives in, behind one small interface: SQLite (the embedded
default, stdlib ``sqlite3`` in WAL mode) and PostgreSQL (``psycopg`` 3, for many runners and
users). `connect` opens either from a store URL; the store writes its SQL once, with ``?``
placeholders, and each `Backend` adapts it (types, placeholders, error classes).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import StoreError, StoreUnavailableError

#: The URL schemes a store may have.
SCHEMES = ('sqlite', 'postgresql', 'postgres')

#: How long a connection waits for another writer's lock before giving up (seconds).
BUSY_TIMEOUT = 30.0


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f':{parts.password}@', ':***@', 1)
    return urlunsplit(parts._replace(netloc=netloc))


class Backend:
    """One open database connection of a store, used by one thread at a time (`lock`)."""

    #: Column type of binary data and of times.
    blob = 'BLOB'
    real = 'DOUBLE PRECISION'
    #: The exceptions of the database driver that mean "the database failed".
    errors: tuple[type[BaseException], ...] = ()
    #: Whether statements of many rows (``VALUES (...), (...)``) beat ``executemany``.
    many_rows = False

    def __init__(self, url: str, conn: Any):
        self.url = url
        self.conn = conn
        self.lock = threading.RLock()

    def unavailable(self, exc: BaseException) -> bool:
        """Whether ``exc`` (one of `errors`) says the database cannot be reached now, rather
        than that the statement is wrong."""
        return False

    def sql(self, text: str) -> str:
        """``text`` with the placeholders this driver wants."""
        return text

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Any]:
        """A cursor inside one transaction: committed on success, rolled back on error
        (``write``: it will write, so take the write lock at once where that matters)."""
        raise NotImplementedError

    def has_table(self, cur: Any, name: str) -> bool:
        """Whether the database has a table ``name``."""
        raise NotImplementedError

    def grown(self, cur: Any, table: str) -> None:
        """``table`` has just grown by many rows: let the planner know (PostgreSQL plans
        from statistics its autovacuum refreshes only later, and would scan the table for
        each job of the next batch)."""

    def close(self) -> None:
        self.conn.close()


class SQLiteBackend(Backend):
    """SQLite in WAL mode: readers never block the writer; one writer at a time."""

    errors = (sqlite3.Error,)
    many_rows = True

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[sqlite3.Cursor]:
        with self.lock:
            cur = self.conn.cursor()
            cur.execute('BEGIN IMMEDIATE' if write else 'BEGIN')
            try:
                yield cur
            except BaseException:
                self.conn.rollback()
                raise
            else:
                self.conn.commit()
            finally:
                cur.close()

    def has_table(self, cur: Any, name: str) -> bool:
        cur.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (name,))
        return bool(cur.fetchone()[0])

    def unavailable(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        return isinstance(exc, sqlite3.OperationalError) and \
            any(word in text for word in ('locked', 'busy', 'disk i/o'))


class PostgresBackend(Backend):
    """PostgreSQL through psycopg 3 (one connection; transactions explicit)."""

    blob = 'BYTEA'

    def __init__(self, url: str, conn: Any):
        import psycopg
        super().__init__(url, conn)
        self.errors = (psycopg.Error,)
        self._operational = psycopg.OperationalError

    def unavailable(self, exc: BaseException) -> bool:
        return isinstance(exc, self._operational) or self.conn.closed

    def sql(self, text: str) -> str:
        return _QMARK.sub('%s', text)

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Any]:
        with self.lock, self.conn.transaction(), self.conn.cursor() as cur:
            yield cur

    def has_table(self, cur: Any, name: str) -> bool:
        cur.execute('SELECT count(*) FROM information_schema.tables WHERE table_name = %s AND '
                    'table_schema = current_schema()', (name,))
        return bool(cur.fetchone()[0])

    def grown(self, cur: Any, table: str) -> None:
        cur.execute(f'ANALYZE {table}')


_QMARK = re.compile(r'\?')


def connect(url: str) -> Backend:
    """The database of the store at ``url`` (``sqlite:///path``, ``sqlite:///:memory:``, or
    ``postgresql://user:password@host:port/database``), opened; `StoreError` naming the URL
    (password hidden) and why otherwise."""
    if not isinstance(url, str) or '://' not in url:
        raise StoreError(f'expected a job store URL such as "sqlite:///runs.db" or '
                         f'"postgresql://user:password@host:5432/db", got {url!r}')
    scheme = url.split('://', 1)[0].lower()
    if scheme == 'sqlite':
        return _sqlite(url)
    if scheme in ('postgresql', 'postgres'):
        return _postgres(url)
    raise StoreError(f'{redact(url)}: unknown job store scheme {scheme!r}; expected one of '
                     f'{", ".join(SCHEMES)} ("sqlite:///runs.db", "postgresql://...")')


def _sqlite(url: str) -> SQLiteBackend:
    path = url[len('sqlite://'):]
    if not path.startswith('/'):
        raise StoreError(f'{url}: expected "sqlite:///" and a path ("sqlite:///runs.db" is '
                         f'runs.db here, "sqlite:////abs/runs.db" an absolute path)')
    path = path[1:] or ':memory:'
    if path != ':memory:':
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise StoreError(f'{url}: the directory {directory!r} does not exist')
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None,
                               check_same_thread=False)
        conn.execute('PRAGMA journal_mode=WAL')
        conn.execute('PRAGMA synchronous=NORMAL')
        conn.execute('PRAGMA foreign_keys=ON')
    except sqlite3.Error as exc:
        raise StoreError(f'{url}: cannot open the SQLite database: {exc}') from exc
    return SQLiteBackend(url, conn)


def _postgres(url: str) -> PostgresBackend:
    try:
        import psycopg
    except ImportError as exc:
        raise StoreError(f'{redact(url)}: a PostgreSQL job store needs psycopg 3: pip install '
                         f"'openmdao_like[postgres]'") from exc
    try:
        conn = psycopg.connect(url.replace('postgres://', 'postgresql://', 1),
                               autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        why = ' '.join(str(exc).split())
        refused = 'authentication' in why or 'does not exist' in why  # not worth another try
        raise (StoreError if refused else StoreUnavailableError)(
            f'{redact(url)}: cannot connect to PostgreSQL: {why}') from None
    return PostgresBackend(url, conn)


def executemany(cur: Any, sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """Run ``sql`` for each row; the number of rows it changed in all."""
    if not rows:
        return 0
    cur.executemany(sql, rows)
    return cur.rowcount
