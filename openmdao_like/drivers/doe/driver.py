"""`DOEDriver`: a design of experiments — cases drawn by a generator from the driver's
parameters, then run like any `CaseIteratorDriver`'s (serially or through an executor)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable

from ...errors import ConfigError, describe
from ...execution.base import Executor
from ..caseiter import ABORT, CaseIteratorDriver
from .generators import DOEGenerator, LatinHypercube

logger = logging.getLogger(__name__)

__all__ = ['DOEDriver']


class DOEDriver(CaseIteratorDriver):
    """Runs its workflow at the points a DOE generator draws within its parameters' bounds.

    Each case sets every parameter (by its name, all its targets) to the generated value, runs
    the workflow and records the parameters and responses. Parameters are required; the
    generator scales its values into each parameter's ``low``/``high``.

    Parameters
    ----------
    generator : DOEGenerator or callable, optional
        ``generator(parameters) -> iterator of {parameter name: value}``, called at the start
        of each run (default: ``LatinHypercube(num_samples=20, seed=0)``).
    sequential, error_policy, max_retries, executor, progress, keep_results
        As for `CaseIteratorDriver`.

    Examples
    --------
    >>> self.add('driver', DOEDriver(FullFactorial(num_levels=5)))   # doctest: +SKIP
    >>> self.driver.add_parameter('p.x', low=-50.0, high=50.0)       # doctest: +SKIP
    >>> self.driver.add_response('p.f_xy')                           # doctest: +SKIP
    """

    _not_shipped = CaseIteratorDriver._not_shipped + ('_generator',)

    def __init__(self, generator: DOEGenerator | Callable[..., Any] | None = None,
                 sequential: bool = True, error_policy: str = ABORT, max_retries: int = 1,
                 executor: Executor | None = None, progress: bool | None = None,
                 keep_results: bool = True, **traits: Any):
        super().__init__(None, sequential, error_policy, max_retries, executor, progress,
                         keep_results, **traits)
        self.generator = LatinHypercube(num_samples=20, seed=0) if generator is None \
            else generator

    @property
    def generator(self) -> DOEGenerator | Callable[..., Any]:
        """What draws the cases from the parameters."""
        return self._generator

    @generator.setter
    def generator(self, value: DOEGenerator | Callable[..., Any]) -> None:
        if not isinstance(value, DOEGenerator) and not callable(value):
            raise self._bad('generator', 'a DOEGenerator (FullFactorial, LatinHypercube, '
                            'Uniform, CSVFile, ...) or a callable generator(params) -> '
                            'iterator of dicts', value, TypeError)
        self._generator = value

    @property
    def cases(self) -> Iterable[Mapping[str, Any]] | None:
        """Always None: a DOEDriver's cases come from its generator."""
        return None

    @cases.setter
    def cases(self, value: Any) -> None:
        if value is not None:
            raise self._bad('cases', 'None (a DOEDriver draws its cases from its generator; '
                            'use generator=ListGenerator(cases) or a CaseIteratorDriver)',
                            value, TypeError)
        self._cases = None

    def _params_for_generator(self) -> list[Any]:
        """The parameters, checked to be there."""
        params = list(self._parameters.values())
        if not params:
            raise ConfigError(f'{self._where()}: a DOEDriver needs at least one parameter to '
                              f'generate cases from, got none; call '
                              f'add_parameter(path, low=..., high=...) first')
        return params

    def _case_source(self) -> Iterator[Mapping[str, Any]]:
        """The generator's cases for the current parameters."""
        cases = self._generator(self._params_for_generator())
        try:
            return iter(cases)
        except TypeError:
            raise TypeError(f'{self._where()}: generator {self._generator!r} must return an '
                            f'iterator of dicts, got {describe(cases)}') from None

    def _case_count(self) -> int | None:
        """The generator's case count, when it can tell."""
        count = getattr(self._generator, 'num_cases', None)
        if count is None:
            return None
        try:
            return count(self._params_for_generator())
        except Exception:  # only for the progress bar: the run reports the real problem
            return None
