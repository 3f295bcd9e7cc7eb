"""Names from OpenMDAO classic, so that old models port by changing imports.

``SLSQPdriver``, ``COBYLAdriver`` and ``CONMINdriver`` are `ScipyOptimizer` with the method
fixed (CONMIN's feasible-directions method is not available; SLSQP solves the same problems);
``DOEdriver`` is `DOEDriver` with classic's ``DOEgenerator`` and ``case_outputs`` names.
Not provided: classic's ``BroydenSolver``, ``NewtonSolver`` and the genetic optimizer.
"""

from __future__ import annotations

from typing import Any

from .drivers import CaseIteratorDriver, DOEDriver, FixedPointIterator, ScipyOptimizer
from .options import OptionsDictionary


class _ClassicOptimizer(ScipyOptimizer):
    """Classic optimizer settings mapped onto `ScipyOptimizer`: ``accuracy`` is ``tol``;
    ``iprint`` (output level) is a declared option that is stored, output goes through
    logging."""

    method_name = 'SLSQP'

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``iprint``, besides `ScipyOptimizer`'s."""
        super().declare_options(options)
        options.declare('iprint', 0, types=int, lower=0,
                        desc="classic output level (stored; output goes through logging)")

    def __init__(self, **kwargs: Any):
        if 'accuracy' in kwargs:
            kwargs['tol'] = kwargs.pop('accuracy')
        kwargs.setdefault('method', self.method_name)
        super().__init__(**kwargs)

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


class DOEdriver(DOEDriver):
    """Classic ``DOEdriver``: `DOEDriver` whose generator is also reachable as
    ``DOEgenerator`` and whose ``case_outputs`` list adds responses."""

    @property
    def DOEgenerator(self) -> Any:
        """Classic name of ``generator``."""
        return self.generator

    @DOEgenerator.setter
    def DOEgenerator(self, value: Any) -> None:
        self.generator = value

    @property
    def case_outputs(self) -> list[str]:
        """Classic (before ``add_response``) list of the outputs to collect for every case."""
        return self.get_responses()

    @case_outputs.setter
    def case_outputs(self, paths: list[str]) -> None:
        for path in paths:
            self.add_response(path)

__all__ = ['SLSQPdriver', 'COBYLAdriver', 'CONMINdriver', 'DOEdriver', 'CaseIteratorDriver',
           'FixedPointIterator']
