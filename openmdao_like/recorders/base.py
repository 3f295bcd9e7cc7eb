"""`CaseRecorder`: the life cycle every case recorder shares (startup, record, flush, close).

A recorder is built with only its path, handed to a driver (possibly pickled and shipped to
another process), then started, fed cases, and closed::

    rec = CSVRecorder('cases.csv')      # nothing opened yet: picklable
    rec.startup(top)                    # opens (and overwrites) the file; top: the model
    rec.record(case)                    # any number of times, from any thread
    rec.close()                         # flushes; safe to call again

or ``with CSVRecorder('cases.csv') as rec: ...``. Subclasses implement `_open`, `_record`,
`_flush` and `_close`, and may store the run's metadata (`_write_metadata`); the base class
checks the state, takes the lock, numbers the records (`_count`: the id of the record being
written, unique in the file), collects the metadata (`openmdao_like.recorders.metadata`) and
keeps open handles out of the pickled state. A recorder's settings (``path``, buffer sizes) are declared options
(`openmdao_like.options`): constructor keywords that are also checked attributes; a bad value
raises a `RecorderError` that is also an `OptionError`.
"""

from __future__ import annotations

import abc
import logging
import os
import threading
from pathlib import Path
from typing import Any

from openmdao_like.cases import Case, iteration_of
from openmdao_like.errors import RecorderError
from openmdao_like.options import HasOptions, OptionError, OptionsDictionary, OptionTypeError
from openmdao_like.recorders import codec
from openmdao_like.recorders.metadata import SIDECAR_SUFFIX, RunMetadata

logger = logging.getLogger(__name__)


class RecorderOptionError(OptionError, RecorderError):
    """A recorder's option was given a value it does not accept."""


class RecorderOptionTypeError(OptionTypeError, RecorderOptionError):
    """A recorder's option was given a value of the wrong type."""


class CaseRecorder(HasOptions, abc.ABC):
    """Abstract base of the recorders that write a driver's cases to a file.

    `startup()` overwrites an existing file at `path` (logged at INFO level); it never creates
    directories, so a missing parent directory is an error naming the path.

    Parameters
    ----------
    path : str or os.PathLike
        File the cases are written to.
    **options
        The declared options of the recorder's class.

    Attributes
    ----------
    path : pathlib.Path
        File the cases are written to.
    """

    _option_errors = (RecorderOptionError, RecorderOptionTypeError)

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``path``."""
        super().declare_options(options)
        options.declare('path', types=(str, os.PathLike), check=Path,
                        accepts='a str or os.PathLike', desc='file the cases are written to')

    def __init__(self, path: str | os.PathLike[str], **options: Any):
        self._init_options({'path': path, **options})
        self._reset()

    def _option_owner(self) -> str:
        """How messages name this recorder: its class and path."""
        path = self.declared_options.get('path')
        return type(self).__name__ if path is None else f'{type(self).__name__}({str(path)!r})'

    def _reset(self) -> None:
        """Set the run-time state (handles, buffers, lock) to that of a recorder never started."""
        self._lock = threading.RLock()
        self._open_now = False
        self._closed = False
        self._count = 0  # records written so far: the id of the next one
        self._metadata: RunMetadata | None = None
        self._described: Any = {}.keys()  # the names the metadata describes (a live view)

    @property
    def is_open(self) -> bool:
        """True between `startup()` and `close()`."""
        return self._open_now

    def startup(self, model: Any = None) -> None:
        """Open the file for writing, replacing any file already at `path`.

        Parameters
        ----------
        model : Assembly, optional
            The top of the model whose cases are recorded (`Assembly.run` passes it): the
            units, iotype and description of each recorded variable come from it.
        """
        with self._lock:
            if self._open_now:
                raise RecorderError(f'{self!r}: startup() called twice; close() it first')
            parent = self.path.parent
            if not parent.is_dir():
                raise FileNotFoundError(
                    f'{self!r}: cannot create {str(self.path)!r}: directory {str(parent)!r} '
                    f'does not exist (recorders do not create directories; create it first)')
            if self.path.is_dir():
                raise IsADirectoryError(
                    f'{self!r}: cannot create {str(self.path)!r}: expected a file path, '
                    f'found a directory')
            if self.path.exists():
                logger.info('%s: replacing existing file %s', type(self).__name__, self.path)
            self._reset()
            self._metadata = RunMetadata(model)
            self._described = self._metadata.variables.keys()
            self._open()
            self._open_now = True
            self._save_metadata()

    def record(self, case: Case) -> None:
        """Write one case (possibly buffered until the next `flush()`) as the next record."""
        with self._lock:
            if not self._open_now:
                raise RecorderError(
                    f'{self!r}: cannot record case {case.id}: the recorder is '
                    f'{"closed" if self._closed else "not started"}; call startup() first')
            self._record(case)
            self._count += 1
            described = self._described
            if not (described >= case.inputs.keys() and described >= case.outputs.keys()):
                self._metadata.see(case)

    def flush(self) -> None:
        """Write buffered cases and the metadata so far, so a reader sees everything recorded."""
        with self._lock:
            if self._open_now:
                self._flush()
                self._save_metadata()

    def close(self) -> None:
        """Flush and close the file; calling it again (or before startup) does nothing."""
        with self._lock:
            if not self._open_now:
                return
            try:
                self._flush()
                self._metadata.finish()
                self._save_metadata()
            finally:
                self._open_now = False
                self._closed = True
                self._close()

    def __enter__(self) -> CaseRecorder:
        if not self._open_now:
            self.startup()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        """The options only: handles, buffers and the lock are rebuilt by `_reset`."""
        if self._open_now:
            raise TypeError(f'cannot pickle {self!r} while it is open: pickle it before '
                            f'startup() or after close()')
        return {'_declared': self.declared_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def __repr__(self) -> str:
        return self._option_owner()

    def _save_metadata(self) -> None:
        """Store the metadata if it changed since it was last stored."""
        metadata = self._metadata
        if metadata.changed:
            self._write_metadata(metadata.as_dict())
            metadata.changed = False

    def _write_metadata(self, metadata: dict[str, Any]) -> None:
        """Store the run's metadata (replacing what was stored): at startup, at `flush()` and
        at `close()` when it changed. The base class keeps none; the formats override this."""

    @abc.abstractmethod
    def _open(self) -> None:
        """Create the file and whatever handles the format needs."""

    @abc.abstractmethod
    def _record(self, case: Case) -> None:
        """Encode one case now (values may change later) and buffer or write it, as record
        number ``self._count`` (its id in the file)."""

    @abc.abstractmethod
    def _flush(self) -> None:
        """Write what is buffered and flush the file."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the handles; called once, after `_flush`, even if that failed."""


class SidecarMetadata:
    """Mixin of the text formats (CSV, JSON Lines): the metadata lives in the sidecar file
    ``<path>.meta.json`` (`sidecar_path`), one JSON object rewritten whole (through a temporary
    file, so a reader never sees half of it) whenever it changes."""

    path: Path

    def _write_metadata(self, metadata: dict[str, Any]) -> None:
        """Replace the sidecar file with ``metadata``."""
        target = sidecar_path(self.path)
        tmp = target.with_name(target.name + '.tmp')
        try:
            tmp.write_text(codec.dumps(metadata) + '\n', encoding='utf-8')
            os.replace(tmp, target)
        except OSError as exc:
            raise RecorderError(f'{self!r}: cannot write the metadata file {str(target)!r}: '
                                f'{exc}') from exc


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the metadata of the CSV or JSON Lines case file at ``path`` lives."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


# -- shared by the format readers (csv.read_csv, jsonl.read_jsonl, sqlite.read_sqlite) --------

#: Keys `read_cases` puts before the variables of each case.
ROW_KEYS = ('id', 'driver', 'iteration', 'status', 'error')


def file_error(path: str | os.PathLike[str], expected: str, found: str) -> RecorderError:
    """The error for a case file that is not what it should be: path, expectation, finding."""
    return RecorderError(f'{str(path)!r}: expected {expected}, found {found}')


def case_row(path: str | os.PathLike[str], where: str, case_id: Any, driver: Any,
             iteration: Any, status: Any, error: Any, inputs: Any, outputs: Any
             ) -> dict[str, Any]:
    """One `read_cases` dict (`ROW_KEYS`, then inputs and outputs), checking what was read.
    An ``iteration`` of None (a format 1 file) becomes ``'driver:case id'``."""
    if isinstance(case_id, bool) or not isinstance(case_id, int):
        raise file_error(path, 'an integer case id', f'{case_id!r} {where}')
    if not isinstance(driver, str):
        raise file_error(path, 'a driver path string', f'{driver!r} {where}')
    if iteration is None:
        iteration = iteration_of(driver, case_id)
    elif not isinstance(iteration, str):
        raise file_error(path, 'an iteration string such as "driver:3"', f'{iteration!r} {where}')
    if not isinstance(status, str):
        raise file_error(path, 'a status string', f'{status!r} {where}')
    if error is not None and not isinstance(error, str):
        raise file_error(path, 'an error string or null', f'{error!r} {where}')
    row = {'id': case_id, 'driver': driver, 'iteration': iteration, 'status': status,
           'error': error}
    for variables in (inputs, outputs):
        if not isinstance(variables, dict):
            raise file_error(path, 'a mapping of variable paths to values',
                             f'{type(variables).__name__} {where}')
        if not set(ROW_KEYS).isdisjoint(variables):
            clash = sorted(set(ROW_KEYS).intersection(variables))[0]
            raise file_error(path, f'variable paths other than {", ".join(ROW_KEYS)}',
                             f'a variable named {clash!r} {where} (read the file directly)')
        row.update(variables)
    return row
