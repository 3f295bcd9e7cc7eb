"""Installing plugin distributions for tests: into a target directory (`install_plugin`) or into
a new virtual environment that sees this one's packages (`make_venv` + `venv_install`).

Everything goes through pip, without build isolation (nothing is downloaded per install: the
test extra brings ``wheel``, which the venv's setuptools needs to build wheels) and without
dependencies (openmdao_like and its dependencies come from the running environment). The
``build`` front end, needed by one test only, is installed once into a cache directory.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / 'plugins'
#: Where `build_frontend` keeps what it installs, once for every session (override with
#: $OPENMDAO_LIKE_TEST_TOOLS).
TOOLS_CACHE = Path(os.environ.get('OPENMDAO_LIKE_TEST_TOOLS')
                   or ROOT / '.pytest_cache' / f'tools-py{sys.version_info[0]}'
                                               f'{sys.version_info[1]}')
#: The build front end `build_frontend` installs.
FRONTEND_REQUIREMENT = 'build>=1.0'
#: Seconds any pip command may take.
PIP_TIMEOUT = 300
#: What is left out when a plugin's source is copied (build leftovers).
_IGNORED = shutil.ignore_patterns('build', 'dist', '*.egg-info', '__pycache__', '.pytest_cache')
_VERSION_LINE = re.compile(r'^version\s*=\s*"[^"\n]*"\s*$', re.MULTILINE)
_tools_lock = threading.Lock()


class InstallError(RuntimeError):
    """A pip command failed; the message holds the command and pip's output."""


# -- the environment pip runs in ------------------------------------------------------------------
def _cached_install(name: str, *requirements: str) -> Path:
    """``TOOLS_CACHE/name``, holding ``requirements`` installed with ``pip --target`` (once:
    complete when its ``.complete`` marker exists)."""
    target = TOOLS_CACHE / name
    with _tools_lock:
        if (target / '.complete').exists():
            return target
        TOOLS_CACHE.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f'.{name}-', dir=TOOLS_CACHE))
        try:
            pip('install', '--target', str(staging), *requirements)
            (staging / '.complete').write_text('\n'.join(requirements) + '\n')
            try:
                staging.rename(target)  # atomic: another session may have won the race
            except OSError:
                if not (target / '.complete').exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


@functools.cache
def build_frontend() -> Path:
    """A directory holding the ``build`` package (the ``python -m build`` front end)."""
    return _cached_install('build', FRONTEND_REQUIREMENT)


def pip_env(*extra: str | os.PathLike[str]) -> dict[str, str]:
    """The environment of the pip commands: quiet about its version, never prompting, and with
    ``extra`` directories first on ``PYTHONPATH``."""
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_NO_INPUT='1')
    path = [str(p) for p in extra]
    if path:
        env['PYTHONPATH'] = os.pathsep.join(path + list(filter(None, [
            os.environ.get('PYTHONPATH')])))
    return env


def pip(*args: str, python: str | os.PathLike[str] | None = None) -> str:
    """Run ``sys.executable -m pip [--python PYTHON] ARGS``; its output, or `InstallError`."""
    command = [sys.executable, '-m', 'pip']
    if python is not None:
        command += ['--python', str(python)]
    command += list(args)
    try:
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=PIP_TIMEOUT, env=pip_env())
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f'{" ".join(command)} took more than {PIP_TIMEOUT} s:\n'
                           f'{exc.output}') from None
    if proc.returncode != 0:
        raise InstallError(f'{" ".join(command)} failed (exit status {proc.returncode}):\n'
                           f'{proc.stdout}')
    return proc.stdout


# -- staging a plugin's source --------------------------------------------------------------------
def stage_source(src_dir: str | os.PathLike[str], dest: str | os.PathLike[str],
                 version: str | None = None) -> Path:
    """Copy the plugin project ``src_dir`` to ``dest`` (without build leftovers), rewriting the
    ``version = "..."`` line of its pyproject.toml when ``version`` is given."""
    src, dest = Path(src_dir), Path(dest)
    shutil.copytree(src, dest, ignore=_IGNORED)
    if version is not None:
        pyproject = dest / 'pyproject.toml'
        text = pyproject.read_text()
        new, count = _VERSION_LINE.subn(f'version = "{version}"', text)
        if count != 1:
            raise ValueError(f'{pyproject}: expected exactly one line `version = "..."`, found '
                             f'{count}')
        pyproject.write_text(new)
    return dest


def install_plugin(src_dir: str | os.PathLike[str], target_dir: str | os.PathLike[str],
                   version: str | None = None) -> Path:
    """Install the plugin project ``src_dir`` (at ``version`` when given) into ``target_dir``
    with ``pip install --no-deps --no-build-isolation --target``; return ``target_dir``.

    The source is copied first, so the build leaves nothing in ``src_dir``. Raises
    `InstallError` with pip's output when pip fails."""
    target = Path(target_dir)
    with tempfile.TemporaryDirectory(prefix='plugin-src-') as scratch:
        staged = stage_source(src_dir, Path(scratch) / Path(src_dir).name, version)
        pip('install', '--no-deps', '--no-build-isolation', '--no-cache-dir', '--upgrade',
            '--target', str(target), str(staged))
    return target


# -- virtual environments -------------------------------------------------------------------------
def parent_site_packages() -> list[str]:
    """The site-packages directories of the running environment (where openmdao_like, its
    dependencies and pytest are installed)."""
    found: list[str] = []
    on_path = {os.path.realpath(p) for p in sys.path if p}
    paths = sysconfig.get_paths()
    for key in ('purelib', 'platlib'):
        path = paths.get(key)
        if path and os.path.isdir(path) and os.path.realpath(path) in on_path \
                and path not in found:
            found.append(path)
    if not found:
        raise RuntimeError(f'no site-packages directory of {sys.executable} is on sys.path '
                           f'({sys.path})')
    return found


def make_venv(path: str | os.PathLike[str]) -> Path:
    """A new virtual environment at ``path`` (``--without-pip``) that also sees this
    environment's packages; returns its python.

    A ``.pth`` file in its site-packages calls ``site.addsitedir`` on this environment's
    site-packages, so their own ``.pth`` files (e.g. the editable install of openmdao_like) are
    processed too; the new environment's own site-packages come first on ``sys.path``."""
    path = Path(path)
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(path)], check=True,
                   capture_output=True, timeout=PIP_TIMEOUT)
    python = path / 'bin' / 'python'
    own = subprocess.run([str(python), '-c', 'import sysconfig; '
                          'print(sysconfig.get_paths()["purelib"])'],
                         check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    parents = parent_site_packages()
    lines = [f'import site; site.addsitedir({p!r})' for p in parents]
    (Path(own) / '_openmdao_like_parent_env.pth').write_text('\n'.join(lines) + '\n')
    check = subprocess.run(
        [str(python), '-c', 'import sys, openmdao_like; print(openmdao_like.__file__); '
                            'print("\\n".join(sys.path))'],
        capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        raise RuntimeError(f'the new venv {path} cannot import openmdao_like:\n{check.stderr}')
    search = check.stdout.splitlines()[1:]
    if own not in search or parents[0] not in search \
            or search.index(own) > search.index(parents[0]):
        raise RuntimeError(f'the new venv {path} should search its own {own} first, then '
                           f'{parents[0]}; its sys.path is {search}')
    return python


def venv_install(python: str | os.PathLike[str], *src_dirs: str | os.PathLike[str]) -> str:
    """Install plugin projects into the venv of ``python`` with ``sys.executable -m pip
    --python PYTHON install --no-deps --no-build-isolation``; return pip's output."""
    with tempfile.TemporaryDirectory(prefix='plugin-src-') as scratch:
        staged = [str(stage_source(src, Path(scratch) / f'{i}-{Path(src).name}'))
                  for i, src in enumerate(src_dirs)]
        return pip('install', '--no-deps', '--no-build-isolation', '--no-cache-dir', *staged,
                   python=python)


__all__ = ['ROOT', 'PLUGINS', 'InstallError', 'install_plugin', 'make_venv', 'venv_install',
           'stage_source', 'build_frontend', 'pip', 'pip_env',
           'parent_site_packages']
