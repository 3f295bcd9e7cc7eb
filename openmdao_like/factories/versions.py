"""Matching a requested version (``'1.0'`` or a specifier such as ``'>=1.0,<2'``) against an
installed one, by PEP 440 rules."""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=256)
def _spec(requested: str) -> Any:
    """A SpecifierSet, a Version, or the text itself when it is neither."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version
    text = requested.strip()
    if text[:1] in '<>=!~':
        try:
            return SpecifierSet(text)
        except InvalidSpecifier:
            return text
    try:
        return Version(text)
    except InvalidVersion:
        return text


def version_matches(requested: str | None, installed: str | None) -> bool:
    """Whether ``installed`` satisfies ``requested`` (None requested: any version does)."""
    if requested is None:
        return True
    if installed is None:
        return False
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version
    spec = _spec(str(requested))
    try:
        if isinstance(spec, SpecifierSet):
            return spec.contains(installed, prereleases=True)
        if isinstance(spec, Version):
            return Version(installed) == spec
    except InvalidVersion:
        pass
    return str(requested).strip() == installed


def version_key(version: str | None) -> tuple:
    """A sort key ordering PEP 440 versions correctly (others as text, after; None first)."""
    from packaging.version import InvalidVersion, Version
    if version is None:
        return (0,)
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (2, version)
