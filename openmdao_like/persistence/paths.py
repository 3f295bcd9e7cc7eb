"""Where the paths that a YAML model file names may point.

A file from someone else must not make loading or running write (or read) files anywhere: a
path the builder knows to be one — a constructor argument annotated ``os.PathLike``, such as a
recorder's or a `CSVFile`'s ``path`` — must be relative without climbing out (``..``), or
absolute inside the model's directory: the directory holding the model file, or for a model
read from a stream the ``directory`` given to `load` (none given: relative paths only).
``load(..., trust_paths=True)`` lifts this for files you trust. A component's ``directory``, a
``!file`` reference and a File variable's ``local_path`` are relative to their component's
directory whatever the trust: the framework never lets them out of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import PathError


@dataclass(frozen=True)
class PathRules:
    """The paths a model file may name: below ``root`` (absolute; None: relative paths only),
    or anywhere when ``trusted``."""

    root: str | None
    trusted: bool = False

    def check(self, path: Any, where: str, source: str) -> None:
        """Raise `PathError` if ``path`` (the value at model path ``where``) is outside."""
        if self.trusted or not isinstance(path, str) or _stays_below(path):
            return
        if os.path.isabs(path) and self.root is not None and _inside(path, self.root):
            return
        allowed = (f'relative paths without "..", or absolute ones inside the model directory '
                   f'{self.root!r}' if self.root is not None else
                   'relative paths without ".." (it was read from a stream: give load() a '
                   'directory to allow absolute paths inside it)')
        raise PathError(f'{source}: {where}: path {path!r} is outside the model directory; a '
                        f'model file may name {allowed}. Load it with trust_paths=True '
                        f'(openmdao-like run --trust-paths) to allow it')


def check_relative(path: Any, where: str, source: str, what: str) -> None:
    """Raise `PathError` unless ``path`` is relative and stays below the directory it is
    relative to (a component's directory, which no trust lets a path leave)."""
    if not isinstance(path, str) or _stays_below(path):  # not a str: its consumer says so
        return
    raise PathError(f'{source}: {where}: {what} {path!r} escapes the model directory (expected '
                    f'a path relative to the component directory, without "..")')


def _stays_below(path: str) -> bool:
    """Whether relative ``path`` stays below the directory it is relative to."""
    norm = os.path.normpath(path)
    return not os.path.isabs(path) and norm != '..' and not norm.startswith('..' + os.sep)


def _inside(path: str, root: str) -> bool:
    """Whether absolute ``path`` lies below ``root``, symbolic links resolved."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root
