"""DOE case generators: callables that turn a driver's parameters into cases.

Calling a generator with parameters checks them and returns an iterator of ``{path: value}``
dicts, one per case; a value is a ``float``, or a numpy array when the parameter's ``size`` > 1::

    gen = LatinHypercube(num_samples=20, seed=0)
    for case in gen([ParamSpec('p.x', -50.0, 50.0), ParamSpec('p.y', -50.0, 50.0)]):
        ...                                   # {'p.x': 12.3, 'p.y': -4.5}

A parameter is any object with ``name``, ``low``, ``high`` and ``size`` (`ParamSpec` is the plain
one). `FullFactorial`, `LatinHypercube` and `Uniform` scale into [low, high] and need finite
low < high; `CSVFile` passes values as they are after checking each against [low, high] (a
bound that is None or infinite is not checked); `ListGenerator` passes values as they are and
uses only ``name`` and ``size``.
A generator's settings are declared options (`openmdao_like.options`), checked when given and
when set as attributes; bad settings or parameters raise `ValidationError` (a ``ValueError``)
naming the generator. Generators hold only their settings: they pickle, and a fixed seed gives
the same cases on every call. Random ones use their own ``numpy.random.default_rng(seed)``,
never the global RNG; scipy is imported only when a Latin hypercube is drawn."""

from __future__ import annotations

import abc
import csv
import inspect
import itertools
import math
import numbers
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from openmdao_like.errors import ValidationError, describe
from openmdao_like.options import HasOptions, OptionError, OptionsDictionary

_LHS_CRITERIA = (None, 'center', 'random-cd')
#: Defaults of the first (positional) settings.
_NUM_LEVELS, _NUM_SAMPLES = 3, 20


@dataclass(frozen=True)
class ParamSpec:
    """A parameter as a generator sees it.

    Parameters
    ----------
    name : str
        Path of the parameter, e.g. ``'p.x'``.
    low, high : float or numpy.ndarray
        Bounds; arrays (of length ``size``) give elementwise bounds for an array parameter.
    size : int
        Number of elements; 1 for a scalar.
    """

    name: str
    low: Any
    high: Any
    size: int = 1


@dataclass(frozen=True)
class _Column:
    """A checked parameter: path, size and bounds broadcast to ``size`` (None when unchecked)."""

    name: str
    size: int
    low: np.ndarray | None = None
    high: np.ndarray | None = None


def _is_int(value: Any) -> bool:
    """Return True for an integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_count(owner: str, arg: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an int, or raise ValidationError if it is not an int >= minimum."""
    if not _is_int(value) or value < minimum:
        raise ValidationError(f'{owner}: {arg} must be an int >= {minimum}, '
                              f'got {describe(value)}')
    return int(value)


def _columns(owner: str, params: Sequence[Any], bounds: str) -> list[_Column]:
    """Check ``params`` (names, sizes and bounds) and return them. ``bounds``: 'scale' needs
    finite low < high (values are scaled into them); 'check' takes low and high as limits that
    values are checked against (None or an infinity: no limit on that side); 'ignore' leaves
    them out."""
    columns: list[_Column] = []
    for param in params:
        name, size = getattr(param, 'name', None), getattr(param, 'size', 1)
        if not isinstance(name, str) or not name:
            raise ValidationError(f'{owner}: a parameter name must be a non-empty str, '
                                  f'got {describe(name)} from {param!r}')
        if any(col.name == name for col in columns):
            raise ValidationError(f"{owner}: parameter '{name}' is given more than once")
        where = f"{owner}: parameter '{name}'"
        if not _is_int(size) or size < 1:
            raise ValidationError(f'{where}: size must be an int >= 1, got {describe(size)}')
        limits = []
        for attr, unset in (('low', -np.inf), ('high', np.inf)) if bounds != 'ignore' else ():
            value = getattr(param, attr, None)
            if value is None and bounds == 'check':
                value = unset
            try:
                vec = np.broadcast_to(np.asarray(value, dtype=float), (size,)).copy()
            except (TypeError, ValueError):
                vec = np.array([np.nan])
            if bounds == 'scale' and not np.all(np.isfinite(vec)):
                raise ValidationError(f'{where}: {attr} must be finite (a float or {size} '
                                      f'floats), got {describe(value)}')
            if np.any(np.isnan(vec)):
                raise ValidationError(f'{where}: {attr} must be None or a number (a float or '
                                      f'{size} floats), got {describe(value)}')
            limits.append(vec)
        if limits and not np.all(limits[0] < limits[1]):
            raise ValidationError(f'{where}: needs low < high, got low={param.low!r}, '
                                  f'high={param.high!r}')
        columns.append(_Column(name, int(size), *limits))
    if not columns:
        raise ValidationError(f'{owner}: needs at least one parameter, got none')
    return columns


def _case(columns: list[_Column], row: Sequence[float]) -> dict[str, Any]:
    """Split one flat row of values into a case: a float per scalar, an array per array param."""
    case: dict[str, Any] = {}
    start = 0
    for col in columns:
        chunk = row[start:start + col.size]
        case[col.name] = float(chunk[0]) if col.size == 1 else np.array(chunk, dtype=float)
        start += col.size
    return case


def _bounds(columns: list[_Column]) -> tuple[np.ndarray, np.ndarray]:
    """Return the flat lower and upper bounds of checked parameters."""
    return (np.concatenate([col.low for col in columns]),
            np.concatenate([col.high for col in columns]))


def _num_levels(value: int | Mapping[str, int]) -> int | dict[str, int]:
    """``value`` (an int >= 2, or a dict {parameter path: int >= 2}, copied) or an error."""
    if not isinstance(value, Mapping):
        if value < 2:
            raise ValueError(value)
        return value
    for key, levels in value.items():
        if not isinstance(key, str):
            raise OptionError(f'num_levels keys must be parameter paths (str), got '
                              f'{describe(key)}')
        if not _is_int(levels) or levels < 2:
            raise OptionError(f"num_levels['{key}'] must be an int >= 2, got {describe(levels)}")
    return {key: int(levels) for key, levels in value.items()}


def _path(value: str | os.PathLike[str]) -> str:
    """``value`` as a non-empty str, or ValueError."""
    path = os.fspath(value)
    if not path:
        raise ValueError(value)
    return path


def _case_list(value: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A copy of ``value`` as a list of dicts keyed by str, or an error naming what is wrong."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(value)
    cases = []
    for index, case in enumerate(value):
        if not isinstance(case, Mapping) or not all(isinstance(k, str) for k in case):
            raise OptionError(f'cases[{index}] must be a dict from parameter path (str) to '
                              f'value, got {describe(case)}')
        cases.append(dict(case))
    return cases


class DOEGenerator(HasOptions, abc.ABC):
    """Base class of DOE generators: a callable from parameters to an iterator of cases.

    A subclass declares its settings in `declare_options`; the constructor takes them as
    keywords (``**options``) and each is also a checked attribute. A subclass that keeps its
    settings as plain attributes instead (without calling this constructor) works too.
    """

    def __init__(self, **options: Any) -> None:
        self._init_options(options)

    @abc.abstractmethod
    def __call__(self, params: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """Check ``params`` and return an iterator of ``{path: value}`` dicts, one per case."""

    def num_cases(self, params: Sequence[Any]) -> int | None:
        """Return how many cases a call with ``params`` yields, or None if not known up front."""
        return None

    def __repr__(self) -> str:
        """Return the constructor call that rebuilds this generator."""
        declared = self.__dict__.get('_declared')
        settings = vars(self) if declared is None else dict(declared.items())
        args = ', '.join(f'{key}={value!r}' for key, value in settings.items())
        return f'{type(self).__name__}({args})'


class FullFactorial(DOEGenerator):
    """Every combination of evenly spaced levels, from low to high, of every parameter.

    Cases come in ``itertools.product`` order: the first parameter varies slowest and the last
    fastest; each element of an array parameter is a factor of its own, element 0 slowest.

    Parameters
    ----------
    num_levels : int or dict of str to int
        Levels per factor (>= 2), or a dict from parameter path to its levels, which must then
        name every parameter and nothing else.
    """

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``num_levels``."""
        super().declare_options(options)
        options.declare('num_levels', _NUM_LEVELS, types=(int, Mapping), check=_num_levels,
                        accepts='an int >= 2',
                        desc='levels per factor, or a dict {parameter path: levels} naming '
                             'every parameter')

    def __init__(self, num_levels: int | Mapping[str, int] = _NUM_LEVELS, **options: Any) -> None:
        super().__init__(num_levels=num_levels, **options)

    def _levels(self, columns: list[_Column]) -> list[int]:
        """Return the number of levels of each parameter, checking a dict against ``columns``."""
        if not isinstance(self.num_levels, dict):
            return [self.num_levels] * len(columns)
        names = [col.name for col in columns]
        unknown = sorted(set(self.num_levels) - set(names))
        missing = [name for name in names if name not in self.num_levels]
        if unknown or missing:
            raise ValidationError(f'FullFactorial: num_levels must name exactly the parameters '
                                  f'{names}, got unknown {unknown} and missing {missing}')
        return [self.num_levels[name] for name in names]

    def __call__(self, params: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """Check ``params`` and iterate over every combination of levels, first slowest."""
        columns = _columns('FullFactorial', params, bounds='scale')
        axes = []
        for col, levels in zip(columns, self._levels(columns)):
            grid = np.linspace(col.low, col.high, levels)  # (levels, size)
            axes.extend(grid[:, i] for i in range(col.size))
        return (_case(columns, row) for row in itertools.product(*axes))

    def num_cases(self, params: Sequence[Any]) -> int:
        """Return the product of the levels of every factor."""
        columns = _columns('FullFactorial', params, bounds='scale')
        return math.prod(lv ** col.size for col, lv in zip(columns, self._levels(columns)))


class _Sampler(DOEGenerator):
    """Base of the random generators: ``num_samples`` cases from ``default_rng(seed)``."""

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``num_samples`` and ``seed``."""
        super().declare_options(options)
        options.declare('num_samples', _NUM_SAMPLES, types=int, lower=1,
                        desc='number of cases')
        options.declare('seed', 0, types=int, lower=0, allow_none=True,
                        accepts='None or an int >= 0',
                        desc='seed of the numpy.random.default_rng (None: fresh randomness on '
                             'each call)')

    def __init__(self, num_samples: int = _NUM_SAMPLES, **options: Any) -> None:
        super().__init__(num_samples=num_samples, **options)

    def num_cases(self, params: Sequence[Any]) -> int:
        """Return ``num_samples``."""
        return self.num_samples


class LatinHypercube(_Sampler):
    """Latin hypercube samples from ``scipy.stats.qmc.LatinHypercube``, scaled into the bounds.

    Each element of each parameter is one dimension, and each of ``num_samples`` equal bins of
    every dimension holds exactly one sample.

    Parameters
    ----------
    num_samples : int
        Number of cases (>= 1).
    seed : int or None
        Seed of the generator's own ``numpy.random.default_rng``; None draws fresh randomness on
        each call, an int gives the same cases on every call.
    criterion : {None, 'center', 'random-cd'}
        None: random points within their bins; 'center': points at the bin centres;
        'random-cd': bins permuted to lower the centered discrepancy (better spread).
    """

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``criterion``, after ``num_samples`` and ``seed``."""
        super().declare_options(options)
        options.declare('criterion', None, types=str, allow_none=True, values=_LHS_CRITERIA,
                        accepts=f'one of {_LHS_CRITERIA}',
                        desc="None: random points in their bins; 'center': bin centres; "
                             "'random-cd': bins permuted for a lower discrepancy")

    def __call__(self, params: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """Check ``params`` and iterate over ``num_samples`` Latin hypercube cases."""
        from scipy.stats import qmc

        columns = _columns('LatinHypercube', params, bounds='scale')
        kwargs: dict[str, Any] = {'scramble': self.criterion != 'center'}
        if self.criterion == 'random-cd':
            kwargs['optimization'] = self.criterion
        # scipy >= 1.15 takes rng=, older releases seed=.
        key = 'rng' if 'rng' in inspect.signature(qmc.LatinHypercube).parameters else 'seed'
        kwargs[key] = np.random.default_rng(self.seed)
        low, high = _bounds(columns)
        sample = qmc.LatinHypercube(low.size, **kwargs).random(self.num_samples)
        return (_case(columns, row) for row in qmc.scale(sample, low, high))


class Uniform(_Sampler):
    """Independent samples, uniform in [low, high) for every parameter element.

    Parameters
    ----------
    num_samples : int
        Number of cases (>= 1).
    seed : int or None
        Seed of the generator's own ``numpy.random.default_rng``; None draws fresh randomness on
        each call, an int gives the same cases on every call.
    """

    def __call__(self, params: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """Check ``params`` and iterate over ``num_samples`` uniform random cases."""
        columns = _columns('Uniform', params, bounds='scale')
        low, high = _bounds(columns)
        unit = np.random.default_rng(self.seed).random((self.num_samples, low.size))
        return (_case(columns, row) for row in low + unit * (high - low))


class CSVFile(DOEGenerator):
    """Cases read from a CSV file, values used as they are (not scaled) but checked against
    each parameter's ``low``/``high``.

    The header row holds parameter paths: one column per scalar parameter and one per element of
    an array parameter, named ``'p.x[0]'``, ``'p.x[1]'``, ...; columns may come in any order, but
    every parameter needs its columns and every column must be a parameter's. Each further
    non-blank row is a case of finite numbers within the bounds (inclusive; elementwise for an
    array parameter; a bound that is None or infinite is not checked): a value outside raises
    `ValidationError` naming the file, the line, the column, the range and the value. The file
    is read when the generator is called, so it may be written after the generator is built (a
    relative path is resolved then).

    Parameters
    ----------
    path : str or os.PathLike
        Path of the CSV file.
    """

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``path``."""
        super().declare_options(options)
        options.declare('path', types=(str, os.PathLike), check=_path,
                        accepts='a non-empty str or os.PathLike', desc='the CSV file')

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        super().__init__(path=path, **options)

    def _fail(self, what: str) -> ValidationError:
        """Return a ValidationError about this file."""
        return ValidationError(f"CSVFile: '{self.path}' {what}")

    def _read(self, params: Sequence[Any]) -> list[dict[str, Any]]:
        """Read and check the whole file against ``params`` and return its cases."""
        columns = _columns('CSVFile', params, bounds='check')
        owner = {(col.name if col.size == 1 else f'{col.name}[{i}]'): col.name
                 for col in columns for i in range(col.size)}
        low, high = _bounds(columns)
        try:
            stream = open(self.path, newline='', encoding='utf-8')
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"CSVFile: no such file '{self.path}'") from exc
        with stream:
            reader = csv.reader(stream)
            header = [cell.strip() for cell in next(reader, [])]
            for name in header:
                if name not in owner:
                    raise self._fail(f"has column '{name}' that is not a parameter; "
                                     f'known parameter columns: {list(owner)}')
                if header.count(name) > 1:
                    raise self._fail(f"has column '{name}' more than once")
            for name, param in owner.items():
                if name not in header:
                    raise self._fail(f"has no column '{name}' for parameter '{param}'; "
                                     f'header is {header}')
            where = [header.index(name) for name in owner]
            cases = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise self._fail(f'line {reader.line_num}: expected {len(header)} cells, '
                                     f'got {len(row)}')
                values = [self._number(row[i], reader.line_num, name, lo, hi)
                          for name, i, lo, hi in zip(owner, where, low, high)]
                cases.append(_case(columns, values))
        return cases

    def _number(self, cell: str, line: int, column: str, low: float, high: float) -> float:
        """Return ``cell`` as a finite float in [low, high], or raise naming the file, line
        and column."""
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise self._fail(f"line {line}, column '{column}': expected a finite number, "
                             f'got {cell!r}')
        if not low <= value <= high:
            raise self._fail(f"line {line}, column '{column}': expected a value in "
                             f'[{low:g}, {high:g}], got {value!r}')
        return value

    def __call__(self, params: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """Read and check the file now, then iterate over its rows as cases, in file order."""
        return iter(self._read(params))

    def num_cases(self, params: Sequence[Any]) -> int:
        """Return the number of cases in the file (reading and checking it)."""
        return len(self._read(params))


class ListGenerator(DOEGenerator):
    """Cases given as a list of ``{path: value}`` dicts, values used as they are.

    A case may leave parameters out (the driver keeps their current values) but may not name
    anything that is not a parameter.

    Parameters
    ----------
    cases : iterable of dict
        The cases, in order; copied when the generator is built.
    """

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``cases``."""
        super().declare_options(options)
        options.declare('cases', check=_case_list, accepts='a list of dicts',
                        desc='the cases, in order (copied)')

    def __init__(self, cases: Iterable[Mapping[str, Any]], **options: Any) -> None:
        super().__init__(cases=cases, **options)

    def __call__(self, params: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """Check that every case names only parameters, then iterate over copies of them."""
        names = [col.name for col in _columns('ListGenerator', params, bounds='ignore')]
        for index, case in enumerate(self.cases):
            unknown = [key for key in case if key not in names]
            if unknown:
                raise ValidationError(f'ListGenerator: cases[{index}] names {unknown}, which '
                                      f'are not parameters; known parameters: {names}')
        return iter([dict(case) for case in self.cases])

    def num_cases(self, params: Sequence[Any]) -> int:
        """Return the number of cases."""
        return len(self.cases)
