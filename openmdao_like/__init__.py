"""openmdao_like: engineering models from components, run anywhere.

The user API follows OpenMDAO "classic": components with typed, unit-carrying variables,
assemblies that connect them, and drivers that iterate them.
"""

__version__ = '0.1.0'

from .assembly import Assembly
from .component import Component
from .container import Container, set_as_top
from .drivers import Driver
from .errors import (ConfigError, ConnectError, ConvergenceError, ExpressionError, ModelError,
                     PathError, ValidationError)
from .factories import create, get_available_types, register_factory, remove_factory
from .persistence import load
from .variables import (Array, Bool, Dict, Enum, File, FileRef, Float, Instance, Int, List, Str,
                        Variable)
from .workflow import Dataflow, SequentialWorkflow

__all__ = ['create', 'load', 'register_factory', 'remove_factory', 'get_available_types',
           'Component', 'Assembly', 'Container', 'Driver', 'set_as_top',
           'Float', 'Int', 'Bool', 'Str', 'Enum', 'Array', 'List', 'Dict', 'Instance', 'File',
           'FileRef', 'Variable', 'Dataflow', 'SequentialWorkflow',
           'ModelError', 'ValidationError', 'ConnectError', 'ConfigError', 'ExpressionError',
           'PathError', 'ConvergenceError']
