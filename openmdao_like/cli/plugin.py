"""``openmdao-like plugin list|quickstart|build``: see, start and package entry-point plugins.

- ``list [--group G]``: the types installed distributions provide (name, version,
  distribution, group), from `openmdao_like.factories.get_available_types`.
- ``quickstart NAME [--class C] [--group G] [--dest DIR] [--version V]``: write ``DIR/NAME/``, a
  plugin distribution that installs, registers its entry point ``NAME.C`` and passes its own
  test (templates in `plugin_templates`).
- ``build DIR [--dest OUT]``: build a wheel of the project in DIR, with ``python -m build`` when
  it is installed, else ``pip wheel``; print the wheel's path.
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..factories import GROUPS as FULL_GROUPS
from ..processes import CommandTimeout, execute
from ..factories import get_available_types
from . import CommandError, UsageError
from .plugin_templates import OFFERED_GROUPS, render_plugin
from ..view.table import format_table

logger = logging.getLogger(__name__)

#: Every entry-point group: short name -> full name.
GROUPS = {group.rpartition('.')[2]: group for group in FULL_GROUPS}
#: Seconds a wheel build may take before it is stopped.
BUILD_TIMEOUT = 900
#: Lines of a failed build's output shown in the error.
OUTPUT_TAIL = 25


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``plugin`` subcommand (with ``list``, ``quickstart`` and ``build``)."""
    parser = subparsers.add_parser(
        'plugin', parents=[common], help='list, start and build entry-point plugins',
        description='Plugins are distributions that provide components, drivers, variables, '
                    'DOE generators or case recorders through entry points.')
    parser.set_defaults(parser=parser)
    actions = parser.add_subparsers(dest='action', metavar='ACTION', required=True)

    listing = actions.add_parser(
        'list', parents=[common], help='list the types installed plugins provide',
        description='List every type that create() finds through entry points: its name, '
                    'version, distribution and group, sorted by name then version.')
    listing.add_argument('--group', '-g', action='append', metavar='G',
                         help=f'only this entry-point group, short or full '
                              f'({", ".join(GROUPS)}); may be repeated')
    listing.set_defaults(handler=list_command, parser=listing)

    quick = actions.add_parser(
        'quickstart', parents=[common], help='write a new plugin distribution to start from',
        description='Write DIR/NAME/: pyproject.toml with the entry point NAME.C, the package '
                    'NAME with a working class C for the group, a test and a README. Install it '
                    'with `pip install DIR/NAME`, then create(\'NAME.C\') finds the class. '
                    'Nothing existing is overwritten.')
    quick.add_argument('name', metavar='NAME',
                       help='distribution and package name (a Python identifier)')
    quick.add_argument('--class', dest='cls', metavar='C',
                       help='class name (default: NAME in CamelCase)')
    quick.add_argument('--group', '-g', default='component', metavar='G',
                       help=f'entry-point group, short or full: {", ".join(OFFERED_GROUPS)} '
                            f'(default: component)')
    quick.add_argument('--dest', '-d', default='.', metavar='DIR',
                       help='directory to write NAME/ in (default: the current directory)')
    quick.add_argument('--version', default='0.1.0', metavar='V',
                       help='version of the new distribution (default: 0.1.0)')
    quick.set_defaults(handler=quickstart_command, parser=quick)

    build = actions.add_parser(
        'build', parents=[common], help='build a wheel of a plugin project',
        description='Build a wheel of the project in DIR with `python -m build` when it is '
                    'installed, else `pip wheel`, and print its path. Build requirements that '
                    'are installed here are used as they are (no isolated build environment).')
    build.add_argument('project', metavar='DIR', help='project directory (with pyproject.toml '
                                                      'or setup.py)')
    build.add_argument('--dest', '-d', metavar='OUT',
                       help='directory for the wheel (default: DIR/dist)')
    build.set_defaults(handler=build_command, parser=build)
    return parser


# -- groups ---------------------------------------------------------------------------------------
def full_group(text: str, allowed: Any = GROUPS) -> str:
    """``'component'`` or ``'openmdao_like.component'`` -> ``'openmdao_like.component'``;
    `UsageError` naming the allowed groups for anything else."""
    short = text[len('openmdao_like.'):] if text.startswith('openmdao_like.') else text
    if short not in allowed:
        raise UsageError(f'unknown group {text!r}; expected one of {", ".join(allowed)} '
                         f'(or the full name, e.g. openmdao_like.component)')
    return GROUPS[short]


# -- list -----------------------------------------------------------------------------------------
def list_command(args: argparse.Namespace) -> int:
    """Handler of ``plugin list``: the table of available types."""
    groups = None if not args.group else sorted({full_group(g) for g in args.group})
    types = get_available_types(groups)
    if not types:
        where = ', '.join(groups) if groups else 'any group'
        print(f'no types found in {where}')
        return 0
    print(format_table(['name', 'version', 'distribution', 'group'],
                       [[t.name, t.version, t.distribution, t.group] for t in types]))
    return 0


# -- quickstart -----------------------------------------------------------------------------------
def camel_case(name: str) -> str:
    """``'my_comp'`` -> ``'MyComp'`` (leading and repeated underscores dropped)."""
    camel = ''.join(part[:1].upper() + part[1:] for part in name.split('_'))
    return camel or name


def _identifier(what: str, text: str) -> str:
    if not text.isidentifier() or keyword.iskeyword(text):
        raise UsageError(f'{what} must be a valid Python identifier (letters, digits and '
                         f'underscores, not starting with a digit, not a keyword), got {text!r}')
    return text


def quickstart_command(args: argparse.Namespace) -> int:
    """Handler of ``plugin quickstart``: write the new plugin's files."""
    name = _identifier('NAME', args.name)
    if args.cls is not None:
        cls = _identifier('--class', args.cls)
    else:
        cls = camel_case(name)
        if keyword.iskeyword(cls):  # 'none' -> 'None'
            raise UsageError(f'the default class name {cls!r} (NAME in CamelCase) is a Python '
                             f'keyword; give a class name with --class')
    group_text = args.group
    short = group_text[len('openmdao_like.'):] if group_text.startswith('openmdao_like.') \
        else group_text
    if short == 'allocator':
        raise UsageError(f'the allocator group is not offered by quickstart yet (the resources '
                         f'layer does not exist); offered groups: {", ".join(OFFERED_GROUPS)}')
    group = full_group(group_text, OFFERED_GROUPS)
    version = _check_version(args.version)
    dest = Path(args.dest)
    if dest.exists() and not dest.is_dir():
        raise UsageError(f'--dest {args.dest!r} is not a directory')
    root = dest / name
    if root.exists() or root.is_symlink():
        raise UsageError(f'{str(root)!r} already exists; quickstart does not overwrite '
                         f'anything (choose another NAME or --dest, or remove it)')
    files = render_plugin(name, cls, group, version)
    try:
        root.mkdir(parents=True)
    except OSError as exc:
        raise CommandError(f'cannot create {str(root)!r}') from exc
    try:
        for relpath, text in files.items():
            path = root / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding='utf-8')
    except OSError as exc:
        shutil.rmtree(root, ignore_errors=True)  # ours: it did not exist before
        raise CommandError(f'cannot write the plugin under {str(root)!r}') from exc
    print(f'wrote {root}/ ({group} plugin, entry point {name}.{cls}):')
    for relpath in files:
        print(f'  {relpath}')
    # './name', not 'name': pip reads a bare name as a requirement to download
    where = str(root) if root.is_absolute() else f'./{root.as_posix()}'
    print(f'next: pip install {where}   then   pytest {where}')
    return 0


def _check_version(text: str) -> str:
    from packaging.version import InvalidVersion, Version
    try:
        Version(text)
    except InvalidVersion:
        raise UsageError(f'--version must be a PEP 440 version such as 0.1.0, got '
                         f'{text!r}') from None
    return text


# -- build ----------------------------------------------------------------------------------------
def build_command(args: argparse.Namespace) -> int:
    """Handler of ``plugin build``: build the wheel, print its path."""
    project = Path(args.project)
    if not project.is_dir():
        raise UsageError(f'{args.project!r} is not a directory; expected a project directory '
                         f'with pyproject.toml or setup.py')
    if not (project / 'pyproject.toml').is_file() and not (project / 'setup.py').is_file():
        raise UsageError(f'{args.project!r} has no pyproject.toml or setup.py; expected a '
                         f'Python project directory (e.g. one `plugin quickstart` wrote)')
    out = Path(args.dest) if args.dest else project / 'dist'
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f'cannot create the output directory {str(out)!r}: {exc}') from None
    # absolute: pip reads a bare 'name' as a requirement to download, not as a directory
    command = build_wheel_command(project.resolve(), out.resolve())
    logger.info('building: %s', ' '.join(command))
    before = _wheels(out)
    try:
        proc = execute(command, timeout=BUILD_TIMEOUT, stderr=subprocess.STDOUT)
    except CommandTimeout as exc:
        raise CommandError(f'building a wheel of {str(project)!r} took more than '
                           f'{BUILD_TIMEOUT} s and was stopped:\n'
                           f'{_tail(exc.result.stdout)}') from None
    output = proc.stdout or ''
    if logger.isEnabledFor(logging.INFO):
        sys.stderr.write(output)
    if proc.returncode != 0:
        raise CommandError(f'building a wheel of {str(project)!r} failed (exit status '
                           f'{proc.returncode} from {" ".join(command[:4])} ...); the end of '
                           f'its output:\n{_tail(output)}')
    built = sorted(path for path, mark in _wheels(out).items() if before.get(path) != mark)
    if not built:
        raise CommandError(f'the build of {str(project)!r} reported success but wrote no '
                           f'wheel to {str(out)!r}; the end of its output:\n{_tail(output)}')
    for path in built:
        print(path)
    return 0


def build_wheel_command(project: Path, out: Path) -> list[str]:
    """The command that builds a wheel of ``project`` into ``out``: ``python -m build`` if the
    ``build`` package is installed, else ``pip wheel``; without build isolation when the
    project's build requirements are all installed in this environment."""
    local = build_requirements_met(project)
    if importlib.util.find_spec('build') is not None:
        return [sys.executable, '-m', 'build', '--wheel', '--outdir', str(out),
                *(['--no-isolation'] if local else []), str(project)]
    return [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--disable-pip-version-check',
            *(['--no-build-isolation'] if local else []), '-w', str(out), str(project)]


def build_requirements_met(project: Path) -> bool:
    """Whether every build requirement of ``project`` is installed here, so that the build can
    run without downloading an isolated build environment.

    setuptools older than 70.1 also needs the ``wheel`` package to build wheels."""
    import importlib.metadata as metadata
    import tomllib

    from packaging.requirements import InvalidRequirement, Requirement

    requires: list[str] = ['setuptools>=40.8.0']  # PEP 517's default for projects without one
    backend = 'setuptools.build_meta:__legacy__'
    pyproject = project / 'pyproject.toml'
    if pyproject.is_file():
        try:
            system = tomllib.loads(pyproject.read_text(encoding='utf-8')).get('build-system', {})
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f'cannot read {str(pyproject)!r}: {exc}') from None
        requires = list(system.get('requires', requires))
        backend = system.get('build-backend', backend)
    for text in requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            return False
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            return False
        if not req.specifier.contains(have, prereleases=True):
            return False
    if backend.startswith('setuptools'):
        from packaging.version import InvalidVersion, Version
        try:
            old = Version(metadata.version('setuptools')) < Version('70.1')
        except (metadata.PackageNotFoundError, InvalidVersion):
            return False
        if old and importlib.util.find_spec('wheel') is None:
            return False
    return True


def _wheels(directory: Path) -> dict[str, tuple[int, int]]:
    """The wheels in ``directory``: path -> (mtime, size), to see which a build wrote."""
    found = {}
    for path in directory.glob('*.whl'):
        try:
            stat = path.stat()
        except OSError:
            continue
        found[str(path)] = (stat.st_mtime_ns, stat.st_size)
    return found


def _tail(output: str, lines: int = OUTPUT_TAIL) -> str:
    """The last ``lines`` non-blank lines of a builder's output, indented."""
    kept = [line for line in output.splitlines() if line.strip()][-lines:]
    return '\n'.join(f'  {line}' for line in kept) or '  (no output)'


__all__ = ['add_parser', 'list_command', 'quickstart_command', 'build_command',
           'build_wheel_command', 'build_requirements_met', 'camel_case', 'full_group']
