"""`CSVRecorder`: one row per case, one column per variable, for spreadsheets and pandas.

Columns: ``id,driver,iteration,status,error,t_start,t_end,retries``, then one per variable path
in the order first seen (a case's inputs, then its outputs). A cell is empty when the case has no
such variable, and ``error`` is empty when the case ran. The run's metadata (versions, times,
each variable's units, iotype and description) is in the sidecar file ``<path>.meta.json``,
so the CSV itself stays plain for spreadsheets and pandas. Files written before format 2 (columns
``id,status,error,driver,...``) still read. Cells hold:

* numbers, bools and ``None`` as JSON (``1.5``, ``3``, ``NaN``, ``Infinity``, ``true``,
  ``null``); non-empty numeric or bool arrays as JSON lists (``[1.0, 2.5]``);
* strings as they are, unless they would read back as something else (``''``, ``'1.5'``,
  ``'true'``, ``'[1]'``...): those are JSON-quoted (``"1.5"``);
* anything else (string, complex or empty arrays, dicts...) as `codec` JSON.

CSV keeps values, not dtypes: a JSON list of numbers reads back as a numpy array (so a Python
list does too) and integer arrays as int64. Use `JSONRecorder` or `SQLiteRecorder` for exact
types.

Columns are only known once cases arrive, so rows are buffered (up to `buffer_size`) until the
first flush writes the header. When a later case brings a new variable, the next flush rewrites
the file with the widened header (the old rows get empty cells); that costs a pass over the
file, so it is cheap for the usual case of a few late variables.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from openmdao_like.cases import Case
from openmdao_like.errors import RecorderError
from openmdao_like.options import OptionsDictionary
from openmdao_like.recorders import codec
from openmdao_like.recorders.base import CaseRecorder, SidecarMetadata, case_row, file_error

FIXED_COLUMNS = ('id', 'driver', 'iteration', 'status', 'error', 't_start', 't_end', 'retries')
#: The fixed columns of format 1 files (no iteration; ids were the drivers' case numbers).
V1_COLUMNS = ('id', 'status', 'error', 'driver', 't_start', 't_end', 'retries')
_JSON_START = frozenset('-0123456789tfnNI"[{ \t\r\n')  # first characters of JSON text


class CSVRecorder(SidecarMetadata, CaseRecorder):
    """Write cases to a CSV file, one row per case, and the run's metadata to
    ``<path>.meta.json``.

    An existing file at `path` (and its metadata file) is overwritten by `startup()`.

    Parameters
    ----------
    path : str or os.PathLike
        File the cases are written to.
    buffer_size : int, optional
        Rows buffered before they are written (default 1000); `flush()` and `close()` write too.
    """

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``buffer_size``, after ``path``."""
        super().declare_options(options)
        options.declare('buffer_size', 1000, types=int, lower=1,
                        desc='rows buffered before they are written')

    def _reset(self) -> None:
        """No file, no columns, nothing buffered."""
        super()._reset()
        self._fh: IO[str] | None = None
        self._columns: list[str] = []
        self._known: set[str] = set()
        self._rows: list[tuple[list[str], dict[str, str]]] = []
        self._written: int | None = None  # variable columns in the header on disk (None: none)

    def _open(self) -> None:
        """Create (truncate) the file; the header waits for the first flush."""
        self._fh = open(self.path, 'w', newline='', encoding='utf-8')

    def _record(self, case: Case) -> None:
        """Encode the case's cells now and buffer the row."""
        cells: dict[str, str] = {}
        for variables in (case.inputs, case.outputs):
            for name, value in variables.items():
                if name not in self._known:
                    self._add_column(name, case)
                cells[name] = encode_cell(value)
        fixed = [str(self._count), case.driver, case.iteration, case.status,
                 '' if case.error is None else case.error, repr(float(case.t_start)),
                 repr(float(case.t_end)), str(int(case.retries))]
        self._rows.append((fixed, cells))
        if len(self._rows) >= self.buffer_size:
            self._flush()

    def _add_column(self, name: str, case: Case) -> None:
        """Give a new variable its column, refusing names the fixed columns already use."""
        if name in FIXED_COLUMNS:
            raise RecorderError(
                f'{self!r}: case {case.id} has a variable named {name!r}: expected variable '
                f'paths other than the fixed columns {",".join(FIXED_COLUMNS)} '
                f'(use JSONRecorder or SQLiteRecorder for such a model)')
        self._columns.append(name)
        self._known.add(name)

    def _flush(self) -> None:
        """Write the header (widening the file if needed) and the buffered rows."""
        if self._fh is None:
            return
        header = list(FIXED_COLUMNS) + self._columns
        if self._written is None:
            csv.writer(self._fh, lineterminator='\n').writerow(header)
        elif self._written < len(self._columns):
            self._rewrite(header)
        self._written = len(self._columns)
        writer = csv.writer(self._fh, lineterminator='\n')
        columns = self._columns
        writer.writerows(fixed + [cells.get(c, '') for c in columns] for fixed, cells in self._rows)
        self._rows.clear()
        self._fh.flush()

    def _rewrite(self, header: list[str]) -> None:
        """Copy the file under a wider header, padding the old rows, then append to the copy."""
        assert self._fh is not None and self._written is not None
        self._fh.close()
        pad = [''] * (len(self._columns) - self._written)
        tmp = self.path.with_name(self.path.name + '.widening')
        with big_fields(), open(self.path, newline='', encoding='utf-8') as src, \
                open(tmp, 'w', newline='', encoding='utf-8') as dst:
            rows = csv.reader(src)
            next(rows)
            writer = csv.writer(dst, lineterminator='\n')
            writer.writerow(header)
            writer.writerows(row + pad for row in rows)
        os.replace(tmp, self.path)
        self._fh = open(self.path, 'a', newline='', encoding='utf-8')

    def _close(self) -> None:
        """Close the file."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()
        self._rows = []


def encode_cell(value: Any) -> str:
    """The CSV cell text for one variable value (see the module docstring)."""
    if isinstance(value, str):
        return json.dumps(value) if _reads_as_json(value) else value
    if (isinstance(value, np.ndarray) and value.dtype.kind in 'biuf' and value.ndim
            and value.size):
        return json.dumps(value.tolist(), allow_nan=True)
    return codec.dumps(value)


def decode_cell(text: str) -> Any:
    """The value `encode_cell` wrote (text that is not JSON is a plain string)."""
    if not text or text[0] not in _JSON_START:
        return text
    try:
        value = codec.loads(text)
    except ValueError:
        return text
    if isinstance(value, list):
        try:
            array = np.array(value)
        except ValueError:  # ragged nesting: not an array
            return value
        if array.dtype.kind in 'biuf' and array.size:
            return array
    return value


def _reads_as_json(text: str) -> bool:
    """True if `text` written bare would read back as something other than this string."""
    if not text:
        return True
    if text[0] not in _JSON_START:
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def big_fields() -> Iterator[None]:
    """Let the csv module read cells of any size (large arrays), restoring its limit after."""
    old = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def read_csv(path: Path) -> list[dict[str, Any]]:
    """The `read_cases` dicts of a file `CSVRecorder` wrote, in file order."""
    expected_header = f'a CSV case file with a header starting {",".join(FIXED_COLUMNS)}'
    fixed = len(FIXED_COLUMNS)
    rows: list[dict[str, Any]] = []
    with big_fields(), open(path, newline='', encoding='utf-8') as fh:
        reader = csv.reader(fh, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise file_error(path, expected_header, 'an empty file')
            v1 = tuple(header[:len(V1_COLUMNS)]) == V1_COLUMNS
            if v1:
                fixed = len(V1_COLUMNS)
            elif tuple(header[:fixed]) != FIXED_COLUMNS:
                raise file_error(path, expected_header,
                                 f'the header {",".join(header)[:100]!r}')
            names = header[fixed:]
            for row in reader:
                where = f'on line {reader.line_num}'
                if len(row) != len(header):
                    raise file_error(path, f'{len(header)} fields per row (one per column)',
                                     f'{len(row)} {where} (truncated or corrupt file?)')
                try:
                    case_id = int(row[0])
                except ValueError:
                    raise file_error(path, 'an integer case id', f'{row[0]!r} {where}') from None
                variables = {name: decode_cell(cell)
                             for name, cell in zip(names, row[fixed:]) if cell}
                if v1:
                    rows.append(case_row(path, where, case_id, row[3], None, row[1],
                                         row[2] or None, variables, {}))
                else:
                    rows.append(case_row(path, where, case_id, row[1], row[2], row[3],
                                         row[4] or None, variables, {}))
        except UnicodeDecodeError as exc:
            raise file_error(path, 'UTF-8 CSV text',
                             f'undecodable bytes ({exc.reason}) after line {reader.line_num}'
                             ) from exc
        except csv.Error as exc:
            raise file_error(path, 'well-formed CSV',
                             f'{exc} on line {reader.line_num} (truncated or corrupt file?)'
                             ) from exc
    return rows
