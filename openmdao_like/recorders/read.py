"""`read_cases`: the cases of any recorder's file as dicts, whatever the format.

The format comes from `fmt` if given, else from the extension (``.csv``; ``.jsonl``/``.json``;
``.sqlite``/``.db``), else from the SQLite magic header. A file whose content contradicts its
format (an SQLite database named ``.csv``, a ``.sqlite`` file that is text) is an error, as is a
truncated or corrupt file: a `RecorderError` (a `ValueError`) naming the path, what was
expected and what was found. A missing file is a `FileNotFoundError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from openmdao_like.errors import RecorderError
from openmdao_like.recorders.base import ROW_KEYS, file_error
from openmdao_like.recorders.csv import read_csv
from openmdao_like.recorders.jsonl import read_jsonl
from openmdao_like.recorders.sqlite import SQLITE_MAGIC, read_sqlite

_READERS: dict[str, Callable[[Path], list[dict[str, Any]]]] = {
    'csv': read_csv, 'jsonl': read_jsonl, 'sqlite': read_sqlite}
_FMT_ALIASES = {'csv': 'csv', 'jsonl': 'jsonl', 'json': 'jsonl', 'sqlite': 'sqlite',
                'db': 'sqlite'}
_EXTENSIONS = {'.csv': 'csv', '.jsonl': 'jsonl', '.json': 'jsonl', '.sqlite': 'sqlite',
               '.db': 'sqlite'}
_FMT_NAMES = {'csv': 'a CSV case file', 'jsonl': 'a JSON Lines case file',
              'sqlite': 'an SQLite case database'}


def read_cases(path: str | os.PathLike[str], fmt: str | None = None) -> list[dict[str, Any]]:
    """Cases recorded at `path` ordered by id: dicts of id, status, error, then the variables.

    Parameters
    ----------
    path : str or os.PathLike
        File written by `CSVRecorder`, `JSONRecorder` or `SQLiteRecorder`.
    fmt : {'csv', 'jsonl', 'json', 'sqlite', 'db'}, optional
        Format of the file when its extension does not tell.

    Returns
    -------
    list of dict
        One dict per case: ``id``, ``status``, ``error`` (traceback text or None), then one key
        per variable path, inputs then outputs (an output with an input's path wins).
    """
    path = Path(path)
    if fmt is not None:
        if fmt not in _FMT_ALIASES:
            raise RecorderError(f'read_cases({str(path)!r}): expected fmt to be one of '
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
    rows = _READERS[fmt](path)
    rows.sort(key=lambda row: row['id'])  # stable: cases with equal ids keep the file order
    return rows


def read_cases_array(path: str | os.PathLike[str], fmt: str | None = None) -> np.ndarray:
    """The id and scalar numeric variables of every case as a numpy structured array.

    A variable becomes a field when every case that has it holds a bool, int or float (None
    counts as missing): bool if all are bools, int64 if all are ints, else float64 with NaN for
    cases that lack it. Strings, arrays and other values are left out; use `read_cases`.

    Parameters
    ----------
    path : str or os.PathLike
        File written by a recorder.
    fmt : str, optional
        As for `read_cases`.

    Returns
    -------
    numpy.ndarray
        One record per case, ordered by id, with the field ``id`` then one per variable path.
    """
    rows = read_cases(path, fmt)
    names: dict[str, None] = {}  # variable paths in first-seen order
    for row in rows:
        names.update(dict.fromkeys(key for key in row if key not in ROW_KEYS))
    fields: list[tuple[str, Any]] = [('id', np.int64)]
    for name in names:
        dtype = _scalar_dtype(row.get(name) for row in rows)
        if dtype is not None:
            fields.append((name, dtype))
    out = np.empty(len(rows), dtype=fields)
    out['id'] = [row['id'] for row in rows]
    for name, dtype in fields[1:]:
        values = [row.get(name) for row in rows]
        if dtype is np.float64:
            values = [np.nan if v is None else v for v in values]
        out[name] = values
    return out


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
