"""`DOEDriver`: a design of experiments — cases drawn by a generator from the driver's
parameters, then run like any `CaseIteratorDriver`'s (serially or through an executor)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, Callable

from ... import tree
from ...errors import ConfigError, describe
from ...options import OptionsDictionary
from ..caseiter import CaseIteratorDriver
from .generators import DOEGenerator, LatinHypercube

logger = logging.getLogger(__name__)

__all__ = ['DOEDriver']


def _generator(value: Any) -> DOEGenerator | Callable[..., Any]:
    """``value`` if it is a DOE generator or a callable; a new seeded `LatinHypercube` for
    None; else TypeError."""
    if value is None:
        return LatinHypercube(num_samples=20, seed=0)
    if not isinstance(value, DOEGenerator) and not callable(value):
        raise TypeError(value)
    return value


def _no_cases(value: Any) -> None:
    """Refuse cases (a DOEDriver draws them from its generator): always TypeError."""
    raise TypeError(value)


class DOEDriver(CaseIteratorDriver):
    """Runs its workflow at the points a DOE generator draws within its parameters' bounds.

    Each case sets every parameter (by its name, all its targets) to the generated value, runs
    the workflow and records the parameters and responses. Parameters are required; the
    generator scales its values into each parameter's ``low``/``high``.

    Parameters
    ----------
    generator : DOEGenerator or callable, optional
        ``generator(parameters) -> iterator of {parameter name: value}``, called at the start
        of each run (default, and what None sets: ``LatinHypercube(num_samples=20, seed=0)``).
    sequential, error_policy, max_retries, executor, progress, keep_results
        As for `CaseIteratorDriver`.

    Examples
    --------
    >>> self.add('driver', DOEDriver(FullFactorial(num_levels=5)))   # doctest: +SKIP
    >>> self.driver.add_parameter('p.x', low=-50.0, high=50.0)       # doctest: +SKIP
    >>> self.driver.add_response('p.f_xy')                           # doctest: +SKIP
    """

    _not_shipped = CaseIteratorDriver._not_shipped + ('generator',)

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``generator``; ``cases`` is always None."""
        super().declare_options(options)
        options.declare('cases', None, allow_none=True, check=_no_cases,
                        accepts='None (a DOEDriver draws its cases from its generator; use '
                                'generator=ListGenerator(cases) or a CaseIteratorDriver)',
                        desc='always None: the cases come from the generator')
        options.declare('generator', None, check=_generator,
                        accepts='a DOEGenerator (FullFactorial, LatinHypercube, Uniform, '
                                'CSVFile, ...) or a callable generator(params) -> iterator of '
                                'dicts',
                        desc='what draws the cases from the parameters (None: a new '
                             'LatinHypercube(num_samples=20, seed=0))')

    def __init__(self, generator: DOEGenerator | Callable[..., Any] | None = None,
                 **kwargs: Any):
        super().__init__(generator=generator, **kwargs)

    def _params_for_generator(self) -> list[Any]:
        """The parameters, checked to be there."""
        params = list(self._parameters.values())
        if not params:
            raise ConfigError(f'{tree.where(self)}: a DOEDriver needs at least one parameter to '
                              f'generate cases from, got none; call '
                              f'add_parameter(path, low=..., high=...) first')
        return params

    def _case_source(self) -> Iterator[Mapping[str, Any]]:
        """The generator's cases for the current parameters."""
        cases = self.generator(self._params_for_generator())
        try:
            return iter(cases)
        except TypeError:
            raise TypeError(f'{tree.where(self)}: generator {self.generator!r} must return an '
                            f'iterator of dicts, got {describe(cases)}') from None

    def _case_count(self) -> int | None:
        """The generator's case count, when it can tell."""
        count = getattr(self.generator, 'num_cases', None)
        if count is None:
            return None
        try:
            return count(self._params_for_generator())
        except Exception:  # only for the progress bar: the run reports the real problem
            return None
