"""The case browser: read a case file (CSV, JSON Lines or SQLite), select cases by driver,
status and ``--where`` expressions, count them, and export a selection::

    records = select_cases('doe.sqlite', driver='driver', status='ok',
                           where=['p.x > 3', 'p.y < 0'])
    summarize(records)             # {'driver': {'total': 12, 'ok': 12, 'failed': 0}}
    export_cases(records, 'sel.csv')

A ``where`` expression is compiled once by the drivers' safe evaluator
(`openmdao_like.drivers.expressions.ExprEvaluator`, comparisons allowed), so it can use what an
objective or constraint can (arithmetic, listed math functions, ``<``, ``<=``, ``>``, ``>=``,
``==``, chained comparisons, constant indices) and nothing else: no attribute tricks, calls of
other functions or lambdas. It names the case file's variables by their dotted paths (``p.x``);
a name the file lacks is an error listing the names it has. Several expressions must all hold.
A value a case lacks is NaN there, so a failed case's outputs compare false.

`numeric_series` gives the scalar numeric variables of selected cases as float arrays, with
their units and whether each is a parameter, an output or a constraint: what the plots draw.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import numbers
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cases import FAILED, OK
from ..drivers.expressions import ExprEvaluator
from ..errors import ExpressionError, ViewError, describe
from ..options import suggest
from ..recorders import read_cases, read_metadata
from ..recorders.base import ROW_KEYS
from ..recorders.csv import FIXED_COLUMNS, encode_cell
from .values import json_value

logger = logging.getLogger(__name__)

__all__ = ['CaseFile', 'read_case_file', 'select_cases', 'summarize', 'export_cases',
           'describe_filters', 'variable_names', 'name_list', 'Series', 'numeric_series',
           'EXPORT_SUFFIXES', 'STATUSES', 'GROUPS']

#: What `export_cases` writes, by the output's suffix.
EXPORT_SUFFIXES = ('.csv', '.json')
#: The statuses a case can have.
STATUSES = (OK, FAILED)
#: Variable names an error message lists before saying how many more there are.
MAX_NAMES_SHOWN = 20


@dataclass
class CaseFile:
    """The cases of one case file and its metadata.

    Attributes
    ----------
    path : pathlib.Path
        The case file.
    records : list of dict
        Every case, as `openmdao_like.recorders.read_cases` gives them (ordered by id).
    metadata : dict or None
        What `openmdao_like.recorders.read_metadata` gives, or None for a CSV or JSON Lines
        file without its sidecar ``<path>.meta.json`` (then no units are known).
    """

    path: Path
    records: list[dict[str, Any]]
    metadata: dict[str, Any] | None = None
    drivers: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.drivers = list(dict.fromkeys(record['driver'] for record in self.records))

    def select(self, driver: str | None = None, status: str | None = None,
               where: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The records of ``driver`` (all drivers if None) with ``status`` (any if None) for
        which every expression of ``where`` holds, in file order."""
        if isinstance(where, str):
            where = [where]
        if status is not None and status not in STATUSES:
            raise ViewError(f'{str(self.path)!r}: expected status to be one of '
                            f'{", ".join(map(repr, STATUSES))} or None, got {describe(status)}')
        self.check_driver(driver)
        records = [r for r in self.records if (driver is None or r['driver'] == driver)
                   and (status is None or r['status'] == status)]
        if where:
            records = _Where(self.path, self.names(), where).filter(records)
        return records

    def check_driver(self, driver: str | None) -> None:
        """Raise `ViewError` naming the drivers present if ``driver`` recorded no case here."""
        if driver is not None and driver not in self.drivers:
            raise ViewError(f'{str(self.path)!r}: no case recorded by driver {driver!r}; '
                            f'expected one of the drivers it holds: {name_list(self.drivers)}'
                            f'{suggest(str(driver), self.drivers)}')

    def default_driver(self) -> str:
        """The driver whose cases a plot shows when none is asked for: the only one, or
        ``'driver'`` (the top's) among several."""
        if len(self.drivers) == 1:
            return self.drivers[0]
        if 'driver' in self.drivers:
            return 'driver'
        raise ViewError(f'{str(self.path)!r}: cases of several drivers ({name_list(self.drivers)})'
                        f' and none is the top\'s \'driver\': choose one with --driver')

    def names(self) -> list[str]:
        """Every variable name of the file, in the order first seen."""
        return variable_names(self.records)

    def units(self, name: str) -> str | None:
        """The units of variable ``name`` as the metadata gives them (None if unknown)."""
        described = (self.metadata or {}).get('variables', {}).get(name) or {}
        return described.get('units') or None


def read_case_file(path: str | os.PathLike[str]) -> CaseFile:
    """The cases and metadata of the case file at ``path``.

    The format comes from the extension or content (`openmdao_like.recorders.read_cases`); a
    file that is not a case file, is truncated, or was written in a newer format than this
    version reads raises `RecorderError` naming the file, what was expected and what was found;
    a missing file `FileNotFoundError`.
    """
    path = Path(path)
    metadata = None
    if path.is_file():
        try:
            metadata = read_metadata(path)
        except FileNotFoundError:  # a CSV or JSON Lines file without its sidecar
            logger.info('%s: no metadata beside it: no units known', path)
    return CaseFile(path, read_cases(path), metadata)


def select_cases(path: str | os.PathLike[str], driver: str | None = None,
                 status: str | None = None, where: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The cases of the file at ``path`` recorded by ``driver``, with ``status``, for which
    every ``where`` expression holds (see the module docstring); [] when none does.

    Raises `RecorderError` for a file that is not a readable case file, `ViewError` for a
    driver that recorded nothing there or a bad status, `ExpressionError` for an expression
    that is not allowed or names a variable the file does not hold.
    """
    return read_case_file(path).select(driver, status, where)


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Driver -> ``{'total', 'ok', 'failed'}`` counts of ``records``, drivers in the order
    first seen."""
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        count = counts.setdefault(record['driver'], {'total': 0, OK: 0, FAILED: 0})
        count['total'] += 1
        if record['status'] in (OK, FAILED):
            count[record['status']] += 1
    return counts


def variable_names(records: Iterable[dict[str, Any]]) -> list[str]:
    """The variable names (keys after the fixed ones) of ``records``, in the order first
    seen."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(key for key in record if key not in ROW_KEYS))
    return list(names)


def describe_filters(driver: str | None = None, status: str | None = None,
                     where: Sequence[str] = ()) -> str:
    """The filters as command-line options (``--driver driver --where 'p.x > 3'``), or
    ``'no filters'``."""
    parts = ([f'--driver {driver}'] if driver else []) + \
        ([f'--status {status}'] if status else []) + [f'--where {w!r}' for w in where]
    return ' '.join(parts) or 'no filters'


def output_path(out: str | os.PathLike[str], doing: str, suffixes: Sequence[str]) -> Path:
    """``out`` as a Path, checked to end in one of ``suffixes`` and to be in an existing
    directory; else a `ViewError` saying what cannot be done (``doing``: 'export cases to')."""
    out = Path(out)
    if out.suffix.lower() not in suffixes:
        choices = ', '.join(suffixes[:-1]) + ' or ' + suffixes[-1] if len(suffixes) > 1 \
            else suffixes[0]
        raise ViewError(f'cannot {doing} {str(out)!r}: expected a file name ending in '
                        f'{choices}, got '
                        f'{repr(out.suffix) if out.suffix else "no suffix"}')
    if not out.parent.is_dir():
        raise ViewError(f'cannot {doing} {str(out)!r}: expected an existing directory, '
                        f'{str(out.parent)!r} does not exist')
    return out


def export_cases(records: Sequence[dict[str, Any]], out_path: str | os.PathLike[str]) -> Path:
    """Write ``records`` to ``out_path``; the path written.

    ``.csv``: a case file in `CSVRecorder`'s layout (``id,driver,iteration,status,error,
    t_start,t_end,retries`` then one column per variable; times and retries left empty), so
    `read_cases` reads it back (without units: no metadata file is written). ``.json``: a JSON
    array of the records for other programs, arrays as lists and NaN or infinities as null.
    """
    out = output_path(out_path, 'export cases to', EXPORT_SUFFIXES)
    suffix = out.suffix.lower()
    if suffix == '.csv':
        names = variable_names(records)
        clash = sorted(set(names) & set(FIXED_COLUMNS))
        if clash:
            raise ViewError(f'cannot export cases to {str(out)!r}: a variable is named '
                            f'{clash[0]!r} like a fixed CSV column; export to .json instead')
        with open(out, 'w', newline='', encoding='utf-8') as fh:
            writer = csv.writer(fh, lineterminator='\n')
            writer.writerow(list(FIXED_COLUMNS) + names)
            writer.writerows(
                [str(r['id']), r['driver'], r['iteration'], r['status'], r['error'] or '',
                 '', '', ''] + [encode_cell(r[n]) if n in r else '' for n in names]
                for r in records)
    else:
        text = json.dumps([json_value(record) for record in records], indent=1, allow_nan=False)
        out.write_text(text + '\n', encoding='utf-8')
    logger.info('wrote %d cases to %s', len(records), out)
    return out


def name_list(names: Sequence[str]) -> str:
    """``'a', 'b' and 3 more`` for a message (at most MAX_NAMES_SHOWN names)."""
    shown = ', '.join(map(repr, names[:MAX_NAMES_SHOWN]))
    more = len(names) - MAX_NAMES_SHOWN
    return (shown + (f' and {more} more' if more > 0 else '')) if names else '(none)'


# -- the numeric columns that plots show --------------------------------------------------

#: Groups of variables, in the order the scatter matrix and parallel axes show them.
GROUPS = ('parameter', 'variable', 'output', 'constraint')
_COMPARISON = re.compile(r'[<>]|==|(?<![<>=!])=(?!=)')


@dataclass
class Series:
    """One scalar numeric variable across the cases plotted.

    Attributes
    ----------
    name : str
        The recorded name (``'p.x'``, ``'p.x - p.y >= 15.0'``).
    label : str
        The name with its units, if known (``'p.x [m]'``).
    group : str
        ``'parameter'`` (an input), ``'output'`` (an output, objective or response),
        ``'constraint'`` (a constraint residual: <= 0 when met) or ``'variable'`` (unknown:
        no metadata).
    values : numpy.ndarray
        One float per case, NaN where the case has none (a failed case's outputs).
    """

    name: str
    label: str
    group: str
    values: np.ndarray


def numeric_series(records: Sequence[dict[str, Any]], metadata: dict[str, Any] | None,
                   variables: Sequence[str] | None = None, where: str = 'cases'
                   ) -> list[Series]:
    """The scalar numeric variables of ``records``: ``variables`` in that order, else every one,
    parameters first. Others are left out (logged); a chosen variable that is unknown or not
    scalar numeric is a `ViewError` naming ``where`` (the file)."""
    names = variable_names(records)
    described = (metadata or {}).get('variables') or {}
    numeric, skipped = [], []
    for name in names:
        (numeric if _is_numeric(records, name) else skipped).append(name)
    if variables is not None:
        for name in variables:
            if name not in names:
                raise ViewError(f'{where}: no variable {name!r} to plot; expected one of '
                                f'{name_list(names)}{suggest(name, names)}')
            if name not in numeric:
                raise ViewError(f'{where}: cannot plot {name!r}: expected scalar numbers, it '
                                f'holds {_kinds(records, name)}')
        chosen = list(dict.fromkeys(variables))
    else:
        if skipped:
            logger.info('%s: not plotted (not scalar numbers): %s', where, ', '.join(skipped))
        chosen = sorted(numeric, key=lambda n: GROUPS.index(_group(n, described)))
    series = []
    for name in chosen:
        units = (described.get(name) or {}).get('units')
        values = np.array([_float(record.get(name)) for record in records], dtype=float)
        series.append(Series(name, f'{name} [{units}]' if units else name,
                             _group(name, described), values))
    return series


def _is_numeric(records: Sequence[dict[str, Any]], name: str) -> bool:
    """Whether the values of ``name`` in ``records`` are scalar numbers (some may be missing,
    not all)."""
    values = [r[name] for r in records if r.get(name) is not None]
    return bool(values) and all(isinstance(v, (numbers.Real, np.bool_)) for v in values)


def _kinds(records: Sequence[dict[str, Any]], name: str) -> str:
    """What ``name`` holds, for a message: ``'ndarray values'``."""
    kinds = {type(r[name]).__name__ for r in records if r.get(name) is not None}
    return (', '.join(sorted(kinds)) or 'no') + ' values'


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _group(name: str, described: dict[str, Any]) -> str:
    """A variable's group (see `Series.group`) from its metadata iotype and its name."""
    iotype = (described.get(name) or {}).get('iotype')
    if iotype == 'in':
        return 'parameter'
    if _COMPARISON.search(name):
        return 'constraint'
    return 'output' if iotype in ('out', 'expression') else 'variable'


# -- --where: the safe evaluator over a case file's columns ----------------------------------

def _nameable(name: str) -> bool:
    """Whether an expression can name ``name``: a dotted path of identifiers (an objective
    such as ``'p.x**2 + p.y'`` recorded under its text cannot)."""
    return all(part.isidentifier() for part in name.split('.'))


class _Columns:
    """The variables under one dotted prefix of a case file (``p`` of ``p.x``) as
    `ExprEvaluator` reads a variable's owner: ``_vars()`` names them, and every other
    attribute, dunder or not, is looked up in the record being tested only."""

    __slots__ = ('_scope', '_prefix', '_names')

    def __init__(self, scope: _CaseScope, prefix: str, names: dict[str, None]):
        object.__setattr__(self, '_scope', scope)
        object.__setattr__(self, '_prefix', prefix)
        object.__setattr__(self, '_names', names)

    def __getattribute__(self, name: str) -> Any:
        get = object.__getattribute__
        names = get(self, '_names')
        if name == '_vars':
            return lambda: names
        if name not in names:
            raise AttributeError(name)
        return get(self, '_scope').record.get(get(self, '_prefix') + name, math.nan)


class _CaseScope:
    """What `ExprEvaluator` resolves variable paths in: the columns of one case file, the
    record being tested in ``record``. Remembers the first path it could not resolve."""

    def __init__(self, path: Path, names: Sequence[str]):
        self.path = path
        self.record: dict[str, Any] = {}
        self.unknown: str | None = None
        groups: dict[str, dict[str, None]] = {}
        for name in names:
            prefix, _, last = name.rpartition('.')
            if _nameable(name) and last != '_vars':
                groups.setdefault(prefix, {})[last] = None
        self._owners = {prefix: (_Columns(self, f'{prefix}.' if prefix else '', group), group)
                        for prefix, group in groups.items()}

    def _resolve_owner(self, path: str) -> tuple[_Columns, str]:
        prefix, _, last = path.rpartition('.')
        owner, names = self._owners.get(prefix, (None, {}))
        if last not in names:
            if self.unknown is None:
                self.unknown = path
            raise KeyError(path)
        return owner, last

    def _where(self) -> str:
        return f'case file {str(self.path)!r}'


class _Where:
    """``where`` expressions compiled once against a case file's columns, tested per record."""

    def __init__(self, path: Path, names: Sequence[str], texts: Sequence[str]):
        self.path = path
        self.texts = list(texts)
        self.scope = _CaseScope(path, names)
        self.evaluators = [self._compile(text, names) for text in self.texts]

    def _compile(self, text: str, names: Sequence[str]) -> ExprEvaluator:
        scope = self.scope
        scope.unknown = None
        try:
            return ExprEvaluator(text, scope, where=f'{str(self.path)!r} --where',
                                 allow_compare=True)
        except ExpressionError as exc:
            if scope.unknown is None:
                raise
            usable = [n for n in names if _nameable(n)]
            raise ExpressionError(
                f'{str(self.path)!r} --where {text!r}: no variable {scope.unknown!r} in this '
                f'case file; expected one of {name_list(usable)}'
                f'{suggest(scope.unknown, usable)}') from exc

    def filter(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records for which every expression holds (numpy's invalid results, such as
        ``sqrt`` of a negative number, are NaN and compare false, without a warning)."""
        scope, kept = self.scope, []
        tests = list(zip(self.texts, self.evaluators))
        with np.errstate(all='ignore'):
            for record in records:
                scope.record = record
                if all(self._holds(text, ev, record) for text, ev in tests):
                    kept.append(record)
        scope.record = {}
        return kept

    def _holds(self, text: str, evaluator: ExprEvaluator, record: dict[str, Any]) -> bool:
        try:
            value = evaluator()
        except ExpressionError:
            raise
        except Exception as exc:
            raise ViewError(f'{str(self.path)!r} --where {text!r}: cannot be evaluated for '
                            f'case {record["id"]}: {type(exc).__name__}: {exc}') from exc
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise ViewError(f'{str(self.path)!r} --where {text!r}: expected true or false for '
                        f'case {record["id"]} (a comparison such as p.x > 3; index an array: '
                        f'p.v[0] > 1), got {describe(value)}')
