"""Names from OpenMDAO classic, so that old models port by changing imports.

``SLSQPdriver``, ``COBYLAdriver`` and ``CONMINdriver`` are `ScipyOptimizer` with the method
fixed (CONMIN's feasible-directions method is not available; SLSQP solves the same problems);
``DOEdriver`` is `DOEDriver`; ``BroydenSolver``-style solvers are not provided.
"""

from __future__ import annotations

from typing import Any

from .drivers import CaseIteratorDriver, DOEDriver, FixedPointIterator, ScipyOptimizer


class _ClassicOptimizer(ScipyOptimizer):
    """Classic optimizer settings mapped onto `ScipyOptimizer`: ``accuracy`` is ``tol``;
    ``iprint`` (output level) is accepted and stored, output goes through logging."""

    method_name = 'SLSQP'

    def __init__(self, **kwargs: Any):
        self.iprint = kwargs.pop('iprint', 0)
        if 'accuracy' in kwargs:
            kwargs['tol'] = kwargs.pop('accuracy')
        super().__init__(method=self.method_name, **kwargs)

    @property
    def accuracy(self) -> float:
        """Classic name of ``tol``."""
        return self.tol

    @accuracy.setter
    def accuracy(self, value: float) -> None:
        self.tol = value


class SLSQPdriver(_ClassicOptimizer):
    """Classic ``SLSQPdriver``: `ScipyOptimizer` with ``method='SLSQP'``."""


class COBYLAdriver(_ClassicOptimizer):
    """Classic ``COBYLAdriver``: `ScipyOptimizer` with ``method='COBYLA'``."""

    method_name = 'COBYLA'


class CONMINdriver(_ClassicOptimizer):
    """Classic ``CONMINdriver``, served by SLSQP (a gradient method for the same problems)."""


DOEdriver = DOEDriver

__all__ = ['SLSQPdriver', 'COBYLAdriver', 'CONMINdriver', 'DOEdriver', 'CaseIteratorDriver',
           'FixedPointIterator']
