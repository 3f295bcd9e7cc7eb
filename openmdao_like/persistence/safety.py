"""Which classes a model file may make loading create: model objects (components, assemblies,
drivers), variables, workflows, DOE generators, case recorders, executors, and whatever a
distribution registers through an openmdao_like entry point. Higher layers add their bases
(allocators, remote proxies) with `register_safe_base`."""

from __future__ import annotations

import threading

from ..factories import check_type_name, factory_manager
from ..factories.importer import ImportFactory

_lock = threading.Lock()
_added: tuple[type, ...] = ()


def register_safe_base(cls: type) -> None:
    """Let model files create objects of ``cls`` and its subclasses."""
    global _added
    with _lock:
        if cls not in _added:
            _added = _added + (cls,)


def safe_bases() -> tuple[type, ...]:
    """The base classes of what a model file may create (recorders are imported only now:
    importing them loads sqlite3)."""
    from ..container import Container
    from ..drivers.doe.generators import DOEGenerator
    from ..execution.base import Executor
    from ..recorders.base import CaseRecorder
    from ..variables.base import Variable
    from ..workflow import Workflow
    return (Container, Variable, Workflow, DOEGenerator, CaseRecorder, Executor) + _added


def creatable_object_class(cls: type) -> bool:
    """Whether a model file may make loading create a ``cls`` object from its settings."""
    return issubclass(cls, safe_bases()) or factory_manager.type_info(cls).group is not None


#: What to check when a class a model file names cannot be found.
IMPORT_HINT = ('is its module importable? For `openmdao-like run`, put the module beside the '
               'model file or install its package')


def find_class_for_file(name: str) -> type:
    """The class ``name`` for a model file: like `factory_manager.find_class`, but a file may not
    make loading import a standard-library module (`check_type_name`); the caller still checks
    the class's type. `NameError` says why not in one line (what importing it says), with what
    each factory said as its cause."""
    checked = check_type_name(name, imported_ok=True)
    try:
        return factory_manager.find_class(checked)
    except NameError as exc:
        why = ImportFactory().why_not(checked)
        raise NameError(f'{why}; {IMPORT_HINT}') from exc
