"""Exceptions across processes: a server captures an exception as plain data (type, message,
traceback text); the client raises it again as the same type when that type is a builtin or an
openmdao_like error, else as `RemoteError`, with the remote traceback attached either way."""

from __future__ import annotations

import builtins
import traceback

from .. import errors
from ..errors import RemoteError


def capture(exc: BaseException) -> tuple[str, str, str, str]:
    """``(module, type name, message, traceback text)`` of ``exc``."""
    text = ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return (type(exc).__module__, type(exc).__qualname__, str(exc), text)


def _known_type(module: str, name: str) -> type[BaseException] | None:
    """The exception class ``module.name`` when it is a builtin or openmdao_like error."""
    if module == 'builtins':
        cls = getattr(builtins, name, None)
    elif module == 'openmdao_like.errors':
        cls = getattr(errors, name, None)
    else:
        return None
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls
    return None


def rebuild(info: tuple, where: str) -> BaseException:
    """The exception ``capture`` described, raised by the object at ``where``."""
    module, name, message, text = info
    cls = _known_type(module, name)
    exc: BaseException | None = None
    if cls is not None:
        try:
            exc = cls(message)
        except Exception:  # a builtin with a special signature (UnicodeDecodeError, ...)
            exc = None
    if exc is None:
        qual = name if module == 'builtins' else f'{module}.{name}'
        exc = RemoteError(f'{where}: {qual}: {message}')
    exc.remote_traceback = text
    exc.add_note(f'Raised remotely by {where}:\n{text.rstrip()}')
    return exc
