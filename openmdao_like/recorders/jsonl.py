"""`JSONRecorder`: one JSON object per line per case (JSON Lines), easy to stream and to append.

Each line is::

    {"id": 3, "driver": "driver", "iteration": "driver:3", "status": "ok", "error": null,
     "t_start": ..., "t_end": ..., "retries": 0, "inputs": {"comp.x": 1.5, ...},
     "outputs": {"comp.f": 2.25, ...}}

The run's metadata (versions, times, each variable's units, iotype and description) is in the
sidecar file ``<path>.meta.json``, so every line of the file is a case. Lines written before
format 2 (no ``iteration``; ``id`` the driver's case number) still read.

Values are written by `openmdao_like.recorders.codec`: numpy arrays as
``{"__ndarray__": [...], "dtype": "float64", "shape": [...]}`` so they read back as arrays, NaN
and infinities as the ``NaN``/``Infinity`` literals Python's ``json`` reads back.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from openmdao_like.cases import Case
from openmdao_like.recorders import codec
from openmdao_like.recorders.base import CaseRecorder, SidecarMetadata, case_row, file_error

#: Keys of every line, in the order they are written.
LINE_KEYS = ('id', 'driver', 'iteration', 'status', 'error', 't_start', 't_end', 'retries',
             'inputs', 'outputs')
#: Keys a line must have (``iteration`` is missing from format 1 files).
_REQUIRED = tuple(key for key in LINE_KEYS if key != 'iteration')


class JSONRecorder(SidecarMetadata, CaseRecorder):
    """Write cases to a JSON Lines file (``.jsonl``; ``.json`` is read the same way) and the
    run's metadata to ``<path>.meta.json``.

    Each case is encoded when recorded and lands in the file's write buffer; `flush()` pushes it
    to the operating system. An existing file at `path` (and its metadata file) is overwritten
    by `startup()`.

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
        self._fh.write(codec.dumps(case_to_dict(case, self._count)) + '\n')

    def _flush(self) -> None:
        """Hand the buffered lines to the operating system."""
        if self._fh is not None:
            self._fh.flush()

    def _close(self) -> None:
        """Close the file."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()


def case_to_dict(case: Case, record_id: int) -> dict[str, Any]:
    """The plain dict a case is written as (record ``record_id`` of the file), keys in
    `LINE_KEYS` order."""
    return {'id': record_id, 'driver': case.driver, 'iteration': case.iteration,
            'status': case.status, 'error': case.error, 't_start': case.t_start,
            't_end': case.t_end, 'retries': case.retries, 'inputs': case.inputs,
            'outputs': case.outputs}


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
                missing = [key for key in _REQUIRED if key not in obj]
                if missing:
                    raise file_error(path, expected, f'no {", ".join(missing)} {where}')
                rows.append(case_row(path, where, obj['id'], obj['driver'],
                                     obj.get('iteration'), obj['status'], obj['error'],
                                     obj['inputs'], obj['outputs']))
    except UnicodeDecodeError as exc:
        raise file_error(path, 'UTF-8 JSON Lines text',
                         f'undecodable bytes ({exc.reason}) after line {lineno}') from exc
    return rows
