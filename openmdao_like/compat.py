"""Names from OpenMDAO classic, so that old models port by changing imports.

``SLSQPdriver``, ``COBYLAdriver`` and ``CONMINdriver`` are `ScipyOptimizer` with the method
fixed (CONMIN's feasible-directions method is not available; SLSQP solves the same problems);
``DOEdriver`` is `DOEDriver` with classic's ``DOEgenerator`` and ``case_outputs`` names;
``Genetic`` (classic's pyevolve genetic optimizer) is `PymooDriver` with ``algorithm='GA'`` and
classic's option names, defaults and ``best_individual`` (it needs pymoo:
``pip install openmdao_like[pymoo]``).
Not provided: classic's ``BroydenSolver`` and ``NewtonSolver``; ``Genetic``'s
``selection_method`` and ``elitism`` (pymoo's GA selects by tournament and always keeps the
best members).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .drivers import (CaseIteratorDriver, DOEDriver, FixedPointIterator, PymooDriver,
                      ScipyOptimizer)
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


class Individual(list):
    """Classic ``Genetic.best_individual``: the best member's parameter values, in the order
    the parameters were added, and its objective value as ``score``."""

    def __init__(self, values: list[Any], score: float):
        super().__init__(values)
        self.score = score


#: Classic ``Genetic`` option names -> `PymooDriver`'s.
_GENETIC_NAMES = {'generations': 'n_gen', 'population_size': 'pop_size'}
#: Classic ``Genetic`` defaults (pyevolve's), where they differ from `PymooDriver`'s.
_GENETIC_DEFAULTS = {'n_gen': 100, 'pop_size': 80, 'crossover_rate': 0.9,
                     'mutation_rate': 0.02}


class Genetic(PymooDriver):
    """Classic ``Genetic``: `PymooDriver` with ``algorithm='GA'``.

    Classic's ``generations`` and ``population_size`` are ``n_gen`` and ``pop_size`` (both
    names work, as keywords and attributes); ``crossover_rate`` (two parents cross over),
    ``mutation_rate`` (each variable of an offspring mutates) and ``seed`` keep their names,
    and the defaults are classic's (100 generations of 80, rates 0.9 and 0.02).
    ``opt_type='maximize'`` maximizes the objective. After a run, ``best_individual`` holds
    the best member (`Individual`: its parameter values, and ``score``, its objective value)
    and the model is left evaluated there, as classic did.
    """

    @classmethod
    def declare_options(cls, options: OptionsDictionary) -> None:
        """``opt_type``, besides `PymooDriver`'s."""
        super().declare_options(options)
        options.declare('opt_type', 'minimize', values=('minimize', 'maximize'),
                        desc='minimize or maximize the objective')

    def __init__(self, **kwargs: Any):
        for classic, name in _GENETIC_NAMES.items():
            if classic in kwargs:
                kwargs[name] = kwargs.pop(classic)
        for name, value in _GENETIC_DEFAULTS.items():
            kwargs.setdefault(name, value)
        kwargs.setdefault('algorithm', 'GA')
        super().__init__(**kwargs)
        self.best_individual: Individual | None = None

    @property
    def generations(self) -> int:
        """Classic name of ``n_gen``."""
        return self.n_gen

    @generations.setter
    def generations(self, value: int) -> None:
        self.n_gen = value

    @property
    def population_size(self) -> int:
        """Classic name of ``pop_size``."""
        return self.pop_size

    @population_size.setter
    def population_size(self, value: int) -> None:
        self.pop_size = value

    def _objective_signs(self) -> np.ndarray:
        """-1 to maximize (``opt_type='maximize'``), else +1."""
        return np.full(len(self._objectives), -1.0 if self.opt_type == 'maximize' else 1.0)

    def execute(self) -> None:
        """Run the GA; set ``best_individual`` (None when no member met the constraints)."""
        self.best_individual = None
        super().execute()
        if self.pareto:
            best = self.pareto[0]
            objective = next(iter(self._objectives))
            self.best_individual = Individual(list(best.inputs.values()),
                                              float(np.ravel(best.outputs[objective])[0]))


__all__ = ['SLSQPdriver', 'COBYLAdriver', 'CONMINdriver', 'DOEdriver', 'Genetic',
           'CaseIteratorDriver', 'FixedPointIterator']
