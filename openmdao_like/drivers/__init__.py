"""Drivers: the iteration protocol, parameters/objectives/constraints, RunOnce, optimizers,
solvers and case-running drivers (DOE, case iterators)."""

from ..assembly import Assembly
from .driver import Driver
from .parameters import Constraint, Objective, Parameter
from .runonce import RunOnce

Assembly.default_driver = RunOnce

__all__ = ['Driver', 'Parameter', 'Objective', 'Constraint', 'RunOnce']
