"""Variable types: traits-based, carrying iotype, units and bounds, with errors that name the
variable's full path."""

from . import pickling  # noqa: F401 - registers how CTraits pickle
from .array import Array
from .base import Variable
from .file import File, FileRef
from .numeric import Float, Int
from .simple import Bool, Dict, Enum, Instance, List, Str

__all__ = ['Variable', 'Float', 'Int', 'Bool', 'Str', 'Enum', 'Array', 'List', 'Dict',
           'Instance', 'File', 'FileRef']
