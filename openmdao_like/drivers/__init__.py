"""Drivers: the iteration protocol, parameters/objectives/constraints, RunOnce, optimizers
(scipy's, and pymoo's population algorithms), solvers and case-running drivers (DOE, case
iterators). `openmdao_like.wiring` makes `RunOnce` the default driver of every `Assembly`."""

from .caseiter import CaseIteratorDriver
from .doe import DOEDriver
from .driver import Driver
from .fixed_point import FixedPointIterator
from .parameters import Constraint, Objective, Parameter
from .pymoo_driver import PymooDriver
from .runonce import RunOnce
from .scipy_optimizer import ScipyOptimizer

__all__ = ['Driver', 'Parameter', 'Objective', 'Constraint', 'RunOnce', 'ScipyOptimizer',
           'PymooDriver', 'FixedPointIterator', 'CaseIteratorDriver', 'DOEDriver']
