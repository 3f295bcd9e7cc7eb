"""The exception hierarchy shared by every layer of openmdao_like.

Every message names the object or variable by its full dotted path, what was expected and what
was given, so a user can find the offending line of a model without a debugger::

    Exception
    └── OpenMDAOLikeError                 base of everything raised on purpose here
        ├── ModelError                    a model is built or used wrongly
        │   ├── ValidationError (+ValueError)    a variable was given a value it cannot hold
        │   ├── ConnectError (+ValueError)       a connection cannot be made
        │   ├── ConfigError                      check_config() found a problem (e.g. a cycle)
        │   ├── ExpressionError (+ValueError)    an objective/constraint/response is not valid
        │   ├── PathError (+ValueError)          a directory or file path escapes the model
        │   └── ConvergenceError                 an iterative solver did not converge
        ├── CaseError                     a case could not be run (carries the traceback text)
        ├── RecorderError (+ValueError)   a case file cannot be written or read as its format says
        ├── PersistenceError (+ValueError)  a model cannot be saved, or a model file read
        │   └── VersionMismatchError        saved versions that are not the installed ones
        ├── StoreError (+ValueError)      a job store cannot be opened, or lacks what was asked
        │   ├── IllegalTransitionError      a job asked to move to a state it cannot reach
        │   └── RunCancelledError           the run being run was cancelled in its store
        ├── RemoteError                   a remote call failed, or its server was lost
        │   └── WireError (+ValueError)     a value cannot travel: not plain data, or a
        │                                   message that is not one (refused, never built)
        ├── AllocationError               no resource could be allocated (later issues)
        └── JobError                      a batch job failed (later issues)

`ValidationError`, `ConnectError`, `ExpressionError`, `PathError`, `RecorderError` and
`PersistenceError` are also `ValueError`s, so code written for classic OpenMDAO that catches
`ValueError` keeps working.
"""

from __future__ import annotations

import re


class OpenMDAOLikeError(Exception):
    """Base class of every error raised on purpose by openmdao_like."""


class ModelError(OpenMDAOLikeError):
    """A model is built or used wrongly; the message starts with the offending path."""


class ValidationError(ModelError, ValueError):
    """A variable was given a value outside its type, range, shape or allowed values."""


class ConnectError(ModelError, ValueError):
    """A connection between two variables cannot be made; the message names both ends."""


class ConfigError(ModelError):
    """A model's configuration is inconsistent (found by ``check_config()``)."""


class ExpressionError(ModelError, ValueError):
    """An expression (objective, constraint, response) is malformed or names unknown things."""


class PathError(ModelError, ValueError):
    """A directory or file path would escape the directory tree of the model."""


class ConvergenceError(ModelError):
    """An iterative solver stopped without meeting its tolerance."""


class CaseError(OpenMDAOLikeError):
    """A case failed to run; ``traceback`` holds the formatted remote or local traceback."""

    def __init__(self, msg: str, traceback: str | None = None):
        super().__init__(msg)
        self.traceback = traceback


class RecorderError(OpenMDAOLikeError, ValueError):
    """A case recorder was used wrongly, or a case file is not what its format says."""


class ViewError(OpenMDAOLikeError, ValueError):
    """A view, table or plot cannot be made from what it was given (no cases to show, a
    variable a case file does not hold, an output format the kind of plot cannot write)."""


class PersistenceError(OpenMDAOLikeError, ValueError):
    """A model cannot be saved in the format asked for, or a model file is not what its format
    says (unknown format, truncated, malformed, naming classes that cannot be created here)."""


class VersionMismatchError(PersistenceError):
    """A saved model names distribution versions that are not the ones installed here.

    ``mismatches`` lists them (class, distribution, saved version, installed version or None).
    """

    def __init__(self, msg: str, mismatches: list | None = None):
        super().__init__(msg)
        self.mismatches = list(mismatches or ())


class VersionMismatchWarning(UserWarning):
    """A model was loaded although it was saved with other distribution versions."""


class StoreError(OpenMDAOLikeError, ValueError):
    """A job store cannot be opened (bad URL, refused connection, newer schema), or does not
    hold the run or job asked for."""


class StoreUnavailableError(StoreError):
    """A job store's database cannot be reached now (a refused or lost connection, PostgreSQL
    restarting, a lock held too long): worth trying again later."""


class IllegalTransitionError(StoreError):
    """A job was asked to move to a state it cannot reach from its own
    (`openmdao_like.jobs.states.TRANSITIONS`)."""


class RunCancelledError(StoreError):
    """The durable run being run was cancelled in its job store (``openmdao-like jobs
    cancel``): the process running it stops."""


class RemoteError(OpenMDAOLikeError):
    """A call to a remote object failed or its server was lost."""


class WireError(RemoteError, ValueError):
    """A value cannot be sent (it holds more than plain data), or what arrived is not a value
    (a hostile or corrupt message): nothing of it was built."""


class AllocationError(OpenMDAOLikeError):
    """No allocator could provide the requested resources."""


class JobError(OpenMDAOLikeError):
    """A batch job failed, was cancelled or ran out of time."""


#: How the note naming the component that raised an exception begins (PEP 678).
COMPONENT_NOTE = 'raised by component '


def name_component(exc: BaseException, path: str, class_name: str) -> None:
    """Name the component ``path`` (of class ``class_name``) that raised ``exc`` in a note,
    once: the innermost component is the one that raised, and a message that starts with
    ``path:`` or ``path <word>:`` (the framework's own errors: ``'driver constraint: ...'``)
    names it already."""
    if '_raised_by' in exc.__dict__:
        return
    exc.__dict__['_raised_by'] = path
    try:
        named = re.match(rf'{re.escape(path)}( [\w-]+)?:', str(exc)) is not None
    except Exception:  # an exception whose __str__ fails: name the component anyway
        named = False
    if not named:
        exc.add_note(f'{COMPONENT_NOTE}{path!r} ({class_name})')


def component_notes(exc: BaseException) -> list[str]:
    """The notes of ``exc`` that name the component which raised it (see `name_component`)."""
    return [note for note in getattr(exc, '__notes__', ()) if note.startswith(COMPONENT_NOTE)]


def error_summary(text: str | None) -> str:
    """One line for a traceback's text: the exception's type and message, then the component
    that raised it (``"ZeroDivisionError: float division by zero, raised by component 'b'
    (Divide)"``)."""
    lines = [line.strip() for line in (text or '').splitlines() if line.strip()]
    named = [line for line in lines if line.startswith(COMPONENT_NOTE)]
    others = [line for line in lines if not line.startswith(COMPONENT_NOTE)]
    summary = others[-1] if others else '(no error text)'
    return f'{summary}, {named[-1]}' if named else summary


def describe(value: object, limit: int = 80) -> str:
    """A short ``repr`` of a value for error messages: type and value, truncated."""
    return f'{bounded_repr(value, limit)} ({type(value).__name__})'


#: Brackets of the containers that `bounded_repr` walks itself (a subclass that keeps the
#: builtin ``__repr__`` is walked too).
_BRACKETS = {list: ('[', ']'), tuple: ('(', ')'), dict: ('{', '}'), set: ('{', '}'),
             frozenset: ('frozenset({', '})')}


def bounded_repr(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (ending in ``...``) and computed from no more
    of ``value`` than those characters show: a huge or deeply nested list, tuple, dict or set
    (say, a YAML alias bomb) costs no more than a small one, and an int too long to print is
    shown by its size."""
    pieces: list[str] = []
    room = limit + 1  # one more than fits, to tell whether to cut
    walking: set[int] = set()

    def put(text: str) -> None:
        nonlocal room
        pieces.append(text[:room])
        room -= len(text)

    def walk(item: object) -> None:
        kind = next((k for k in _BRACKETS if isinstance(item, k)
                     and type(item).__repr__ is k.__repr__), None)
        if kind is None:
            put(_leaf_repr(item, room))
        elif id(item) in walking:
            put('[...]' if kind is list else '(...)' if kind is tuple else '{...}')
        elif kind in (set, frozenset) and not item:
            put(f'{kind.__name__}()')
        else:
            opener, closer = _BRACKETS[kind]
            walking.add(id(item))
            put(opener)
            for i, element in enumerate(item.items() if kind is dict else item):
                if room <= 0:
                    break
                if i:
                    put(', ')
                if kind is dict:
                    walk(element[0])
                    put(': ')
                    element = element[1]
                walk(element)
            else:
                put(',' + closer if kind is tuple and len(item) == 1 else closer)
            walking.discard(id(item))

    walk(value)
    text = ''.join(pieces)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _leaf_repr(value: object, room: int) -> str:
    """``repr`` of a value that `bounded_repr` does not walk into (a string: of its start)."""
    if isinstance(value, str) and type(value).__repr__ is str.__repr__:
        return repr(value[:room])
    if isinstance(value, int) and value.bit_length() > 4 * max(room, 1):
        return f'<{type(value).__name__} of {value.bit_length()} bits>'
    try:
        return repr(value)
    except Exception:  # a __repr__ that fails must not hide the error being reported
        return f'<{type(value).__name__} object>'


class ExternalCodeError(ModelError, RuntimeError):
    """An external command (`openmdao_like.components.ExternalCode`) could not run, failed, ran
    out of time or did not write its outputs.

    ``command`` is the command line, ``returncode`` its exit status (negative: killed by that
    signal; None: it never ran), ``stderr_tail`` the end of its standard error, ``host`` where
    it ran when that was not here.
    """

    def __init__(self, msg: str, command: list[str] | None = None, returncode: int | None = None,
                 stderr_tail: str = '', host: str | None = None):
        super().__init__(msg)
        self.command = list(command or ())
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.host = host

    def __reduce__(self):
        return (type(self), (str(self), self.command, self.returncode, self.stderr_tail,
                             self.host))


class ExternalCodeTimeout(ExternalCodeError):
    """An external command ran longer than its timeout; its whole process group was killed."""
