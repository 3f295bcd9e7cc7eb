"""`read_cases` and `read_metadata`: the cases and the metadata of any recorder's file, whatever
the format.

The format comes from `fmt` if given, else from the extension (``.csv``; ``.jsonl``/``.json``;
``.sqlite``/``.db``), else from the SQLite magic header. A file whose content contradicts its
format (an SQLite database named ``.csv``, a ``.sqlite`` file that is text) is an error, as is a
truncated or corrupt file or one written in a newer format than this version reads: a
`RecorderError` (a `ValueError`) naming the path, what was expected and what was found. A
missing file is a `FileNotFoundError`. The metadata of a CSV or JSON Lines file is in its
sidecar ``<path>.meta.json`` (see `openmdao_like.recorders.metadata`); `read_cases` checks the
sidecar's format version when the sidecar is there (a file written before format 2 has none).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from openmdao_like.cases import FAILED, OK
from openmdao_like.errors import RecorderError, describe
from openmdao_like.recorders import codec
from openmdao_like.recorders.base import ROW_KEYS, file_error, sidecar_path
from openmdao_like.recorders.csv import read_csv
from openmdao_like.recorders.jsonl import read_jsonl
from openmdao_like.recorders.metadata import FORMAT_VERSION
from openmdao_like.recorders.sqlite import SQLITE_MAGIC, read_sqlite, read_sqlite_metadata

_READERS: dict[str, Callable[[Path], list[dict[str, Any]]]] = {
    'csv': read_csv, 'jsonl': read_jsonl, 'sqlite': read_sqlite}
_FMT_ALIASES = {'csv': 'csv', 'jsonl': 'jsonl', 'json': 'jsonl', 'sqlite': 'sqlite',
                'db': 'sqlite'}
_EXTENSIONS = {'.csv': 'csv', '.jsonl': 'jsonl', '.json': 'jsonl', '.sqlite': 'sqlite',
               '.db': 'sqlite'}
_FMT_NAMES = {'csv': 'a CSV case file', 'jsonl': 'a JSON Lines case file',
              'sqlite': 'an SQLite case database'}
#: The statuses a case can have (what ``status=`` accepts).
STATUSES = (OK, FAILED)
#: Keys of `read_metadata`'s dict.
METADATA_KEYS = ('format_version', 'start', 'end', 'versions', 'variables')


def read_cases(path: str | os.PathLike[str], fmt: str | None = None, driver: str | None = None,
               status: str | None = None) -> list[dict[str, Any]]:
    """Cases recorded at `path`, ordered by id: dicts of id, driver, iteration, status, error,
    then the variables.

    Parameters
    ----------
    path : str or os.PathLike
        File written by `CSVRecorder`, `JSONRecorder` or `SQLiteRecorder`.
    fmt : {'csv', 'jsonl', 'json', 'sqlite', 'db'}, optional
        Format of the file when its extension does not tell.
    driver : str, optional
        Only the cases recorded by the driver at this dotted path (``'driver'``,
        ``'sub.solver'``).
    status : {'ok', 'failed'}, optional
        Only the cases with this status.

    Returns
    -------
    list of dict
        One dict per case: ``id`` (unique in the file, in record order), ``driver`` (dotted
        path of the driver that recorded it), ``iteration`` (``'driver:3|solver:2'``: the
        iteration number of each enclosing running driver, outermost first, then the recording
        driver's), ``status`` (``'ok'`` or ``'failed'``), ``error`` (traceback text or None),
        then one key per variable path, inputs then outputs (an output with an input's path
        wins). A file written before format 2 has the drivers' own case numbers as ids (they
        may repeat) and ``iteration`` ``'<driver>:<id>'``.
    """
    return _rows(path, fmt, driver, status, 'read_cases')


def _rows(path: str | os.PathLike[str], fmt: str | None, driver: str | None,
          status: str | None, caller: str) -> list[dict[str, Any]]:
    """`read_cases` for ``caller`` (the public function whose name errors give)."""
    path, fmt = _case_file(path, fmt, caller)
    _check_filters(path, driver, status, caller)
    if fmt != 'sqlite' and sidecar_path(path).is_file():  # SQLite checks its own version
        _sidecar_metadata(path)
    rows = _READERS[fmt](path)
    rows.sort(key=lambda row: row['id'])  # stable: format 1 cases with equal ids keep file order
    if driver is not None or status is not None:
        rows = [row for row in rows if (driver is None or row['driver'] == driver)
                and (status is None or row['status'] == status)]
    return rows


def read_metadata(path: str | os.PathLike[str], fmt: str | None = None) -> dict[str, Any]:
    """The metadata of the run recorded at `path`.

    Parameters
    ----------
    path : str or os.PathLike
        File written by `CSVRecorder`, `JSONRecorder` or `SQLiteRecorder` (for CSV and JSON
        Lines the metadata is read from the sidecar ``<path>.meta.json``).
    fmt : {'csv', 'jsonl', 'json', 'sqlite', 'db'}, optional
        As for `read_cases`.

    Returns
    -------
    dict
        ``format_version``; ``start`` and ``end`` (``time.time()`` of the recorder's startup
        and close; ``end`` None if it did not close); ``versions`` (``openmdao_like``,
        ``python`` and the distributions that matter: numpy, scipy, traits...); ``variables``:
        recorded name -> ``{'units', 'iotype', 'desc'}`` (iotype ``'in'``, ``'out'``,
        ``'expression'`` for an objective, constraint or response that is not a plain variable,
        or None when unknown). A format 1 SQLite file has only its ``start``.
    """
    path, fmt = _case_file(path, fmt, 'read_metadata')
    if fmt == 'sqlite':
        return read_sqlite_metadata(path)
    meta_path = sidecar_path(path)
    if not meta_path.is_file():
        raise FileNotFoundError(
            f'{str(path)!r}: no metadata: expected the file {str(meta_path)!r} beside it '
            f'(written by the recorder since format 2; copy it along with the case file)')
    return _sidecar_metadata(path)


_SIDECAR_EXPECTED = (f'a JSON object with keys {", ".join(METADATA_KEYS)} and a format_version '
                     f'from 2 to {FORMAT_VERSION}')


def _sidecar_metadata(path: Path) -> dict[str, Any]:
    """The metadata in the sidecar of the CSV or JSON Lines file at ``path``, its keys and
    format version checked: a `RecorderError` naming the sidecar otherwise."""
    meta_path = sidecar_path(path)
    try:
        metadata = codec.loads(meta_path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, ValueError) as exc:
        raise file_error(meta_path, _SIDECAR_EXPECTED, f'invalid JSON ({exc})') from exc
    if not isinstance(metadata, dict) or not set(METADATA_KEYS) <= metadata.keys():
        found = (f'keys {", ".join(metadata)}' if isinstance(metadata, dict)
                 else f'a JSON {type(metadata).__name__}')
        raise file_error(meta_path, _SIDECAR_EXPECTED, found)
    version = metadata['format_version']
    integer = isinstance(version, int) and not isinstance(version, bool)
    if not (integer and 2 <= version <= FORMAT_VERSION):
        newer = integer and version > FORMAT_VERSION
        raise file_error(meta_path, _SIDECAR_EXPECTED, f'format_version {version!r}'
                         + (' (written by a newer openmdao_like?)' if newer else ''))
    return metadata


def read_cases_array(path: str | os.PathLike[str], fmt: str | None = None,
                     driver: str | None = None, status: str | None = None) -> np.ndarray:
    """The id, driver, iteration, status and scalar numeric variables of every case as a numpy
    structured array.

    A variable becomes a field when every case that has it holds a bool, int or float (None
    counts as missing): bool if all are bools, int64 if all are ints, else float64 with NaN for
    cases that lack it. Strings, arrays and other values are left out; use `read_cases`.

    Parameters
    ----------
    path : str or os.PathLike
        File written by a recorder.
    fmt, driver, status : str, optional
        As for `read_cases`.

    Returns
    -------
    numpy.ndarray
        One record per case, ordered by id, with the fields ``id`` (int64), ``driver``,
        ``iteration`` and ``status`` (str), then one per variable path.
    """
    rows = _rows(path, fmt, driver, status, 'read_cases_array')
    names: dict[str, None] = {}  # variable paths in first-seen order
    for row in rows:
        names.update(dict.fromkeys(key for key in row if key not in ROW_KEYS))
    fields: list[tuple[str, Any]] = [('id', np.int64)]
    for key in ('driver', 'iteration', 'status'):
        fields.append((key, f'U{max((len(row[key]) for row in rows), default=1) or 1}'))
    for name in names:
        dtype = _scalar_dtype(row.get(name) for row in rows)
        if dtype is not None:
            fields.append((name, dtype))
    out = np.empty(len(rows), dtype=fields)
    for name, dtype in fields:
        values = [row.get(name) for row in rows]
        if dtype is np.float64:
            values = [np.nan if v is None else v for v in values]
        out[name] = values
    return out


def _case_file(path: str | os.PathLike[str], fmt: str | None, caller: str) -> tuple[Path, str]:
    """The path of an existing case file and its format (checked against its content)."""
    path = Path(path)
    if fmt is not None:
        if fmt not in _FMT_ALIASES:
            raise RecorderError(f'{caller}({str(path)!r}): expected fmt to be one of '
                                f'{", ".join(map(repr, _FMT_ALIASES))}, found {fmt!r}')
        fmt, told_by = _FMT_ALIASES[fmt], f'fmt={fmt!r}'
    if not path.exists():
        raise FileNotFoundError(f'{str(path)!r}: no such case file')
    if path.is_dir():
        raise IsADirectoryError(f'{str(path)!r}: expected a case file, found a directory')
    with open(path, 'rb') as fh:
        head = fh.read(len(SQLITE_MAGIC))
    is_sqlite = head == SQLITE_MAGIC
    if fmt is None:
        suffix = path.suffix.lower()
        fmt, told_by = _EXTENSIONS.get(suffix), f'its extension {path.suffix!r}'
        if fmt is None:
            if not is_sqlite:
                raise RecorderError(
                    f'{str(path)!r}: cannot tell the case file format: expected an extension '
                    f'{", ".join(_EXTENSIONS)} or fmt=\'csv\'|\'jsonl\'|\'sqlite\', found '
                    f'the extension {path.suffix!r}' + ('' if head else ' and an empty file'))
            fmt, told_by = 'sqlite', 'its SQLite header'
    if fmt == 'sqlite' and not is_sqlite:
        found = f'a file starting with {head!r}' if head else 'an empty file'
        raise file_error(path, f'{_FMT_NAMES[fmt]} (as {told_by} says)', found)
    if fmt != 'sqlite' and is_sqlite:
        raise file_error(path, f'{_FMT_NAMES[fmt]} (as {told_by} says)', 'an SQLite database')
    return path, fmt


def _check_filters(path: Path, driver: Any, status: Any, caller: str) -> None:
    """Raise `RecorderError` for a ``driver`` that is not a dotted path or an unknown
    ``status``."""
    if driver is not None and (not isinstance(driver, str) or not driver):
        raise RecorderError(f'{caller}({str(path)!r}): expected driver to be the dotted path '
                            f"of a driver (e.g. 'driver' or 'sub.solver') or None, got "
                            f'{describe(driver)}')
    if status is not None and status not in STATUSES:
        raise RecorderError(f'{caller}({str(path)!r}): expected status to be one of '
                            f'{", ".join(map(repr, STATUSES))} or None, got {describe(status)}')


def _scalar_dtype(values: Any) -> Any:
    """The field dtype for a variable's values across cases, or None if it is not scalar."""
    kinds = set()
    for value in values:
        if value is None:
            kinds.add('missing')
        elif isinstance(value, (bool, np.bool_)):
            kinds.add('bool')
        elif isinstance(value, (int, np.integer)):
            if not -2**63 <= value < 2**63:
                kinds.add('float')
            kinds.add('int')
        elif isinstance(value, (float, np.floating)):
            kinds.add('float')
        else:
            return None
    if kinds == {'bool'}:
        return np.bool_
    if kinds == {'int'}:
        return np.int64
    if kinds - {'missing'}:
        return np.float64
    return None
