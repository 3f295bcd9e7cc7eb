"""openmdao_like: engineering models from components, run anywhere.

The user API follows OpenMDAO "classic": components with typed, unit-carrying variables,
assemblies that connect them, and drivers that iterate them. Importing it wires the layers
together (`openmdao_like.wiring`).
"""

from ._version import __version__  # noqa: F401  (defined apart: any layer may read it)
from .assembly import Assembly
from .component import Component
from .container import Container, set_as_top
from .drivers import Driver
from .errors import (ConfigError, ConnectError, ConvergenceError, ExpressionError, ModelError,
                     PathError, ValidationError)
from .factories import create, get_available_types, register_factory, remove_factory
from .persistence import load
from .session import Session
from .variables import (Array, Bool, Dict, Enum, File, FileRef, Float, Instance, Int, List, Str,
                        Variable)
from .workflow import Dataflow, SequentialWorkflow
from . import wiring  # noqa: F401,I100  (plugs the layers together: last, once all are loaded)

__all__ = ['create', 'load', 'register_factory', 'remove_factory', 'get_available_types',
           'Component', 'Assembly', 'Container', 'Driver', 'set_as_top',
           'Float', 'Int', 'Bool', 'Str', 'Enum', 'Array', 'List', 'Dict', 'Instance', 'File',
           'FileRef', 'Variable', 'Dataflow', 'SequentialWorkflow', 'Session',
           'ModelError', 'ValidationError', 'ConnectError', 'ConfigError', 'ExpressionError',
           'PathError', 'ConvergenceError']
