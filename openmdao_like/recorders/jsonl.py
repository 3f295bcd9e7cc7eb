"""`JSONRecorder`: one JSON object per line per case (JSON Lines), easy to stream and to append.

Each line is::

    {"id": 3, "status": "ok", "error": null, "driver": "top.driver", "t_start": ..., "t_end": ...,
     "retries": 0, "inputs": {"comp.x": 1.5, ...}, "outputs": {"comp.f": 2.25, ...}}

Values are written by `openmdao_like.recorders.codec`: numpy arrays as
``{"__ndarray__": [...], "dtype": "float64", "shape": [...]}`` so they read back as arrays, NaN
and infinities as the ``NaN``/``Infinity`` literals Python's ``json`` reads back.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from openmdao_like.cases import Case
from openmdao_like.recorders import codec
from openmdao_like.recorders.base import CaseRecorder, case_row, file_error

#: Keys of every line, in the order they are written.
LINE_KEYS = ('id', 'status', 'error', 'driver', 't_start', 't_end', 'retries', 'inputs', 'outputs')


class JSONRecorder(CaseRecorder):
    """Write cases to a JSON Lines file (``.jsonl``; ``.json`` is read the same way).

    Each case is encoded when recorded and lands in the file's write buffer; `flush()` pushes it
    to the operating system. An existing file at `path` is overwritten by `startup()`.

    Parameters
    ----------
    path : str or os.PathLike
        File the cases are written to.
    """

    def _reset(self) -> None:
        """No file open yet."""
        super()._reset()
        self._fh: IO[str] | None = None

    def _open(self) -> None:
        """Create (truncate) the file."""
        self._fh = open(self.path, 'w', encoding='utf-8', buffering=1 << 16)

    def _record(self, case: Case) -> None:
        """Encode the case as one line now, so later changes to its values do not leak in."""
        assert self._fh is not None
        self._fh.write(codec.dumps(case_to_dict(case)) + '\n')

    def _flush(self) -> None:
        """Hand the buffered lines to the operating system."""
        if self._fh is not None:
            self._fh.flush()

    def _close(self) -> None:
        """Close the file."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()


def case_to_dict(case: Case) -> dict[str, Any]:
    """The plain dict a case is written as, keys in `LINE_KEYS` order."""
    return {'id': case.id, 'status': case.status, 'error': case.error, 'driver': case.driver,
            't_start': case.t_start, 't_end': case.t_end, 'retries': case.retries,
            'inputs': case.inputs, 'outputs': case.outputs}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The `read_cases` dicts of a file `JSONRecorder` wrote, in file order."""
    expected = f'one JSON object per line with keys {", ".join(LINE_KEYS)}'
    rows: list[dict[str, Any]] = []
    lineno = 0
    try:
        with open(path, encoding='utf-8') as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f'on line {lineno}'
                try:
                    obj = codec.loads(line)
                except ValueError as exc:
                    raise file_error(path, expected, f'invalid JSON {where} ({exc}; truncated '
                                     f'or corrupt file?)') from exc
                if not isinstance(obj, dict):
                    raise file_error(path, expected, f'a JSON {type(obj).__name__} {where}')
                missing = [key for key in LINE_KEYS if key not in obj]
                if missing:
                    raise file_error(path, expected, f'no {", ".join(missing)} {where}')
                rows.append(case_row(path, where, obj['id'], obj['status'], obj['error'],
                                     obj['inputs'], obj['outputs']))
    except UnicodeDecodeError as exc:
        raise file_error(path, 'UTF-8 JSON Lines text',
                         f'undecodable bytes ({exc.reason}) after line {lineno}') from exc
    return rows
