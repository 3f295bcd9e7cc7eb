"""Which installed distribution provides a module, and at which version."""

from __future__ import annotations

import functools
import sys


@functools.lru_cache(maxsize=1)
def _packages() -> dict[str, list[str]]:
    import importlib.metadata as metadata  # imported when first needed: ~10 ms
    return metadata.packages_distributions()


@functools.lru_cache(maxsize=1024)
def _distribution_of(top: str, path_key: tuple) -> tuple[str | None, str | None]:
    dists = _packages().get(top)
    if not dists:
        _packages.cache_clear()  # installed since the first lookup?
        dists = _packages().get(top)
    if not dists:
        return None, None
    import importlib.metadata as metadata
    name = dists[0]
    try:
        return metadata.metadata(name)['Name'], metadata.version(name)
    except metadata.PackageNotFoundError:
        return None, None


def distribution_of(module: str) -> tuple[str | None, str | None]:
    """(distribution name, version) providing ``module``; (None, None) for scripts, ``__main__``
    and modules that no installed distribution declares."""
    top = module.partition('.')[0]
    if top in ('__main__', '') or top in sys.builtin_module_names:
        return None, None
    return _distribution_of(top, tuple(sys.path))


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None when it is not installed."""
    import importlib.metadata as metadata
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
