"""The header every saved model starts with (the "Loader" of the design): format version,
Python version, and for every class in the model its name and the distribution and version
that provide it. Loading checks it before anything is built; a version policy decides what
happens when a saved version is not the installed one."""

from __future__ import annotations

import platform
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .._version import __version__
from ..errors import (PersistenceError, VersionMismatchError, VersionMismatchWarning,
                      bounded_repr)
from ..factories import TypeInfo, installed_version, version_matches

#: Version of the layout of saved models; loading reads this one and older ones.
FORMAT = 1
FORMAT_KEY = 'openmdao_like_model'
#: Our own classes are covered by the format version, not by the framework's version.
FRAMEWORK = 'openmdao_like'


@dataclass(frozen=True)
class Mismatch:
    """A class whose saved distribution version is not the one installed (None: missing)."""

    class_name: str
    distribution: str
    saved: str | None
    installed: str | None

    def __str__(self) -> str:
        here = self.installed if self.installed is not None else 'not installed'
        return (f'{self.class_name}: distribution {self.distribution} saved at version '
                f'{self.saved}, installed here: {here}')


def make_header(classes: Iterable[TypeInfo], fmt: str) -> dict[str, Any]:
    """The header for a model made of ``classes``, saved in format ``fmt``."""
    rows = []
    for info in sorted(set(classes), key=lambda t: t.name):
        rows.append({'class': info.name, 'distribution': info.distribution,
                     'version': info.version})
    return {FORMAT_KEY: FORMAT, 'format': fmt, 'openmdao_like': __version__,
            'python': platform.python_version(), 'classes': rows}


def check_structure(header: Any, source: str) -> list[dict[str, Any]]:
    """The header's class rows, after checking that it is one of ours and readable here."""
    if not isinstance(header, dict) or FORMAT_KEY not in header:
        raise PersistenceError(f'{source}: not an openmdao_like model file (expected a header '
                               f'starting with "{FORMAT_KEY}: {FORMAT}", got '
                               f'{bounded_repr(header)})')
    version = header[FORMAT_KEY]
    if not isinstance(version, int) or version < 1:
        raise PersistenceError(f'{source}: header: {FORMAT_KEY} must be a format number >= 1, '
                               f'got {bounded_repr(version)}')
    if version > FORMAT:
        raise PersistenceError(f'{source}: saved in model format {version} by openmdao_like '
                               f'{bounded_repr(header.get("openmdao_like"))}; this openmdao_like '
                               f'({__version__}) reads formats up to {FORMAT}: upgrade it')
    rows = header.get('classes')
    if not isinstance(rows, list) or not all(
            isinstance(r, dict) and isinstance(r.get('class'), str)
            and isinstance(r.get('distribution'), (str, type(None)))
            and isinstance(r.get('version'), (str, int, float, type(None))) for r in rows):
        raise PersistenceError(f'{source}: header: "classes" must be a list of {{class: str, '
                               f'distribution: str or null, version: str or null}}, got '
                               f'{bounded_repr(rows)}')
    return rows


def find_mismatches(rows: list[dict[str, Any]]) -> list[Mismatch]:
    """Classes whose distribution is missing or installed at another version."""
    found = []
    for row in rows:
        dist, saved = row.get('distribution'), row.get('version')
        if dist is None or dist == FRAMEWORK:
            continue
        here = installed_version(dist)
        if here is None or saved is None or not version_matches(str(saved), here):
            found.append(Mismatch(row['class'], dist, None if saved is None else str(saved),
                                  here))
    return found


# -- version policies ----------------------------------------------------------------------------
#: A version policy: ``policy(mismatches, source) -> {class name: creator}``; it raises to
#: refuse, and returns creators for the classes it makes elsewhere (e.g. a server running the
#: saved version: the wiring module registers the remote layer's ``'isolate'``). A policy that
#: always answers with creators says so with an attribute ``creates_elsewhere = True``, so that
#: loading a pickle (which cannot use creators) refuses it before calling it.
VersionPolicy = Callable[[list[Mismatch], str], dict[str, Callable]]


def _refuse(mismatches: list[Mismatch], source: str) -> dict[str, Callable]:
    lines = '\n'.join(f'  {m}' for m in mismatches)
    raise VersionMismatchError(
        f'{source}: saved with versions that are not installed here:\n{lines}\n'
        f'Install the saved versions, or load with on_version_mismatch="warn" to use the '
        f'installed ones', mismatches)


def _warn(mismatches: list[Mismatch], source: str) -> dict[str, Callable]:
    lines = '; '.join(map(str, mismatches))
    warnings.warn(f'{source}: loading with installed versions that differ from the saved '
                  f'ones: {lines}', VersionMismatchWarning, stacklevel=4)
    return {}


_policies: dict[str, VersionPolicy] = {'error': _refuse, 'warn': _warn}
_lock = threading.Lock()


def register_version_policy(name: str, policy: VersionPolicy) -> None:
    """Make ``load(..., on_version_mismatch=name)`` call ``policy``."""
    if not callable(policy):
        raise TypeError(f'register_version_policy: policy must be callable, got '
                        f'{type(policy).__name__}')
    with _lock:
        _policies[name] = policy


def resolve_policy(name: Any) -> VersionPolicy:
    """The policy called ``name`` (a callable is used as it is)."""
    if callable(name):
        return name
    policy = _policies.get(name)
    if policy is None:
        raise ValueError(f'load: on_version_mismatch must be one of '
                         f'{", ".join(map(repr, sorted(_policies)))} (or a callable), got '
                         f'{name!r}')
    return policy
