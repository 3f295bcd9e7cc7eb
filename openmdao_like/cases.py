"""`Case`: one evaluation of a model — its inputs, outputs, status and error — as drivers,
executors and recorders pass it around."""

from __future__ import annotations

import math
from typing import Any

OK = 'ok'
FAILED = 'failed'


class Case:
    """One evaluation of a model.

    Parameters
    ----------
    id : int
        Position of the case in its driver's sequence (0-based).
    inputs : dict
        Variable path -> value set before the run.
    outputs : dict, optional
        Variable path or expression -> value collected after the run.
    status : str
        ``'ok'`` or ``'failed'``.
    error : str or None
        Traceback text of a failed case.
    driver : str
        Dotted path of the driver that ran the case.
    t_start, t_end : float
        Wall-clock times (``time.time()``) around the run; 0.0 when not measured.
    retries : int
        How many times the case was run again after a failure.
    iteration : str, optional
        Where the case sits in the run: ``'driver:3|solver:2'``, the path and iteration number
        of each enclosing running driver, outermost first, then those of ``driver``
        (default: `iteration_of` ``driver`` and ``id``).

    Attributes
    ----------
    encoded : tuple of str or None
        The inputs and outputs as the recorders' JSON, once a recorder encoded them
        (`openmdao_like.recorders.codec.encode_case`): the next recorder does not again.
    output : tuple of str or None
        The ends of what the case printed, ``(stdout, stderr)``, when its driver captured
        them (`openmdao_like.execution.CaseOutcome.output`); a job store keeps them.
    """

    #: What a case is (compared, pickled, sent home from a worker).
    _FIELDS = ('id', 'inputs', 'outputs', 'status', 'error', 'driver', 't_start', 't_end',
               'retries', 'iteration')
    __slots__ = _FIELDS + ('encoded', 'output')

    def __init__(self, id: int, inputs: dict[str, Any], outputs: dict[str, Any] | None = None,
                 status: str = OK, error: str | None = None, driver: str = '',
                 t_start: float = 0.0, t_end: float = 0.0, retries: int = 0,
                 iteration: str | None = None):
        self.id = id
        self.inputs = inputs
        self.outputs = {} if outputs is None else outputs
        self.status = status
        self.error = error
        self.driver = driver
        self.t_start = t_start
        self.t_end = t_end
        self.retries = retries
        self.iteration = iteration_of(driver, id) if iteration is None else iteration
        self.encoded: tuple[str, str] | None = None
        self.output: tuple[str, str] | None = None

    @property
    def ok(self) -> bool:
        """True when the case ran without error."""
        return self.status == OK

    def __getitem__(self, path: str) -> Any:
        """The value of an input or output by its path."""
        try:
            return self.outputs[path]
        except KeyError:
            return self.inputs[path]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Case):
            return NotImplemented
        return all(_same(getattr(self, s), getattr(other, s)) for s in self._FIELDS)

    def __repr__(self) -> str:
        return (f'Case(id={self.id}, status={self.status!r}, inputs={self.inputs!r}, '
                f'outputs={self.outputs!r})')

    def __getstate__(self):
        return tuple(getattr(self, s) for s in self._FIELDS)

    def as_record(self) -> tuple:
        """The case as a tuple of plain data (what travels back from a worker; see
        `from_record`)."""
        return self.__getstate__()

    @classmethod
    def from_record(cls, record: tuple) -> Case:
        """The case `as_record` gave."""
        case = cls.__new__(cls)
        case.__setstate__(record)
        return case

    def __setstate__(self, state):
        for name, value in zip(self._FIELDS, state):
            setattr(self, name, value)
        if len(state) < len(self._FIELDS):  # pickled before cases had an iteration
            self.iteration = iteration_of(self.driver, self.id)
        self.encoded = self.output = None


def iteration_of(driver: str, number: Any) -> str:
    """The iteration coordinate of case ``number`` of ``driver`` run on its own:
    ``'driver:3'`` (just the number when the driver is not known)."""
    return f'{driver}:{number}' if driver else str(number)


def failed_value(value: Any) -> Any:
    """What an output holds in a failed case: NaN for numbers (and arrays of them), else None."""
    if isinstance(value, (bool, str)) or value is None:
        return None
    if isinstance(value, (int, float)):
        return math.nan
    try:
        import numpy as np
        if isinstance(value, np.ndarray) and value.dtype.kind in 'fiuc':
            return np.full(value.shape, np.nan)
        if isinstance(value, np.number):
            return math.nan
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        import numpy as np
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return np.array_equal(a, b, equal_nan=True)
    except ImportError:  # pragma: no cover
        pass
    return bool(a == b)
