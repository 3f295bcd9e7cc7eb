"""Names from OpenMDAO classic, so that old models port by changing imports.

``SLSQPdriver``, ``COBYLAdriver`` and ``CONMINdriver`` are `ScipyOptimizer` with the method
fixed (CONMIN's feasible-directions method is not available; SLSQP solves the same problems);
``DOEdriver`` is `DOEDriver`; ``BroydenSolver``-style solvers are not provided.
"""

from __future__ import annotations

from typing import Any

from .drivers import CaseIteratorDriver, DOEDriver, FixedPointIterator, ScipyOptimizer


class SLSQPdriver(ScipyOptimizer):
    """Classic ``SLSQPdriver``: `ScipyOptimizer` with ``method='SLSQP'``."""

    def __init__(self, **kwargs: Any):
        super().__init__(method='SLSQP', **kwargs)


class COBYLAdriver(ScipyOptimizer):
    """Classic ``COBYLAdriver``: `ScipyOptimizer` with ``method='COBYLA'``."""

    def __init__(self, **kwargs: Any):
        super().__init__(method='COBYLA', **kwargs)


class CONMINdriver(ScipyOptimizer):
    """Classic ``CONMINdriver``, served by SLSQP (a gradient method for the same problems)."""

    def __init__(self, **kwargs: Any):
        super().__init__(method='SLSQP', **kwargs)


DOEdriver = DOEDriver

__all__ = ['SLSQPdriver', 'COBYLAdriver', 'CONMINdriver', 'DOEdriver', 'CaseIteratorDriver',
           'FixedPointIterator']
