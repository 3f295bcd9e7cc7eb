"""qmc_doe: quasi-Monte Carlo DOE generators for openmdao_like, built on ``scipy.stats.qmc``.

Low-discrepancy sequences fill the parameter box more evenly than random samples::

    from openmdao_like import create
    from openmdao_like.drivers import DOEDriver

    driver = DOEDriver(create('qmc_doe.Sobol', m=6))        # 64 cases
    driver = DOEDriver(create('qmc_doe.Halton', num_samples=50, seed=1))

The generators follow the built-in `LatinHypercube`: every element of every parameter is one
dimension, the unit samples are scaled into each parameter's ``low``/``high``, a fixed seed gives
the same cases on every call, and ``seed=None`` draws fresh ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from openmdao_like.drivers.doe import DOEGenerator
from openmdao_like.errors import ValidationError, describe
# The scaling helpers of the built-in generators, so that cases are checked, scaled and split
# into parameters exactly as LatinHypercube does it.
from openmdao_like.drivers.doe.generators import _bounds, _case, _check_count, _columns, _is_int

try:
    __version__ = version('qmc-doe')
except PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = 'unknown'

#: Largest ``m`` of `Sobol` (scipy's default 30-bit Sobol' sequence holds 2**30 points).
MAX_SOBOL_M = 30


def _check_seed(owner: str, seed: Any) -> int | None:
    """``seed`` as an int, or None; raise ValidationError naming ``owner`` otherwise."""
    if seed is not None and (not _is_int(seed) or seed < 0):
        raise ValidationError(f'{owner}: seed must be None or an int >= 0, got {describe(seed)}')
    return None if seed is None else int(seed)


def _check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValidationError(f'{owner}: {name} must be a bool, got {describe(value)}')
    return bool(value)


def _rng_kwargs(engine: type, seed: int | None) -> dict[str, Any]:
    """The seeding keyword of a scipy QMC engine: ``rng=`` (scipy >= 1.15) or ``seed=``."""
    key = 'rng' if 'rng' in inspect.signature(engine).parameters else 'seed'
    return {key: np.random.default_rng(seed)}


class Halton(DOEGenerator):
    """Halton sequence samples from ``scipy.stats.qmc.Halton``, scaled into the bounds.

    Parameters
    ----------
    num_samples : int
        Number of cases (>= 1).
    seed : int or None
        Seed of the generator's own ``numpy.random.default_rng`` (used to scramble); None draws
        fresh randomness on each call, an int gives the same cases on every call.
    scramble : bool
        Scramble the sequence (recommended: the plain Halton sequence correlates in high
        dimensions and starts at the lower corner).
    """

    def __init__(self, num_samples: int = 20, seed: int | None = 0, scramble: bool = True) -> None:
        self.num_samples = _check_count('Halton', 'num_samples', num_samples, 1)
        self.seed = _check_seed('Halton', seed)
        self.scramble = _check_bool('Halton', 'scramble', scramble)

    def __call__(self, params: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """Check ``params`` and iterate over ``num_samples`` Halton cases."""
        from scipy.stats import qmc

        columns = _columns('Halton', params, bounds='scale')
        low, high = _bounds(columns)
        engine = qmc.Halton(low.size, scramble=self.scramble,
                            **_rng_kwargs(qmc.Halton, self.seed))
        sample = engine.random(self.num_samples)
        return (_case(columns, row) for row in qmc.scale(sample, low, high))

    def num_cases(self, params: Sequence[Any]) -> int:
        """Return ``num_samples``."""
        return self.num_samples


class Sobol(DOEGenerator):
    """``2**m`` points of the Sobol' sequence from ``scipy.stats.qmc.Sobol``, scaled into the
    bounds (a power of two keeps the sequence's balance properties, so scipy does not warn).

    Parameters
    ----------
    m : int
        Base-2 logarithm of the number of cases (0 to 30): ``m=5`` gives 32 cases.
    seed : int or None
        Seed of the generator's own ``numpy.random.default_rng`` (used to scramble); None draws
        fresh randomness on each call, an int gives the same cases on every call.
    scramble : bool
        Scramble the sequence (Owen scrambling); unscrambled, the first case is every lower bound.
    """

    def __init__(self, m: int = 5, seed: int | None = 0, scramble: bool = True) -> None:
        self.m = _check_count('Sobol', 'm', m, 0)
        if self.m > MAX_SOBOL_M:
            raise ValidationError(f'Sobol: m must be an int in [0, {MAX_SOBOL_M}] (2**m cases), '
                                  f'got {describe(m)}')
        self.seed = _check_seed('Sobol', seed)
        self.scramble = _check_bool('Sobol', 'scramble', scramble)

    def __call__(self, params: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """Check ``params`` and iterate over ``2**m`` Sobol' cases."""
        from scipy.stats import qmc

        columns = _columns('Sobol', params, bounds='scale')
        low, high = _bounds(columns)
        if low.size > qmc.Sobol.MAXDIM:
            raise ValidationError(f'Sobol: at most {qmc.Sobol.MAXDIM} parameter elements, got '
                                  f'{low.size}')
        engine = qmc.Sobol(low.size, scramble=self.scramble, **_rng_kwargs(qmc.Sobol, self.seed))
        sample = engine.random_base2(self.m)
        return (_case(columns, row) for row in qmc.scale(sample, low, high))

    def num_cases(self, params: Sequence[Any]) -> int:
        """Return ``2**m``."""
        return 2 ** self.m


__all__ = ['Halton', 'Sobol', '__version__']
