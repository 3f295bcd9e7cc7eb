"""Session fixtures shared by the test modules: the example plugins installed once per session
into target directories (see tests/plugin_tools.py), and a way to use them in-process."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from plugin_tools import PLUGINS, install_plugin


@pytest.fixture(scope='session')
def paraboloid_plugin_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding paraboloid-plugin 1.0 as ``pip install --target`` left it."""
    return install_plugin(PLUGINS / 'paraboloid_plugin', tmp_path_factory.mktemp('paraboloid-1.0'))


@pytest.fixture(scope='session')
def paraboloid_plugin_v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding paraboloid-plugin 2.0 (the same code, version rewritten)."""
    return install_plugin(PLUGINS / 'paraboloid_plugin', tmp_path_factory.mktemp('paraboloid-2.0'),
                          version='2.0')


@pytest.fixture(scope='session')
def qmc_doe_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding qmc-doe 1.0."""
    return install_plugin(PLUGINS / 'qmc_doe', tmp_path_factory.mktemp('qmc-doe-1.0'))


def forget_modules_under(*dirs: str | os.PathLike[str]) -> None:
    """Drop from ``sys.modules`` every module loaded from below one of ``dirs``."""
    roots = tuple(os.path.join(os.path.realpath(d), '') for d in dirs)
    for name, module in list(sys.modules.items()):
        path = getattr(module, '__file__', None)
        if path and os.path.realpath(path).startswith(roots):
            del sys.modules[name]


def refresh_factories() -> None:
    """Make the default factory chain read the installed entry points again."""
    from openmdao_like.factories import factory_manager
    importlib.invalidate_caches()
    for factory in factory_manager.factories:
        refresh = getattr(factory, 'refresh', None)
        if refresh is not None:
            refresh()


@pytest.fixture
def on_sys_path() -> Iterator[Callable[..., None]]:
    """``on_sys_path(dir, ...)`` puts plugin install directories first on ``sys.path`` for one
    test; afterwards ``sys.path`` is restored, the modules imported from them are forgotten and
    the default factories re-read the entry points."""
    saved = list(sys.path)
    added: list[str] = []

    def add(*dirs: str | os.PathLike[str]) -> None:
        for directory in reversed(dirs):
            sys.path.insert(0, str(directory))
            added.append(str(directory))
        importlib.invalidate_caches()

    try:
        yield add
    finally:
        sys.path[:] = saved
        forget_modules_under(*added)
        refresh_factories()


