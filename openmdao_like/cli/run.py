"""``openmdao-like run MODEL``: load a model, apply ``--set`` values, run the model and print
what its drivers found.

MODEL is a Python file or a saved model (``.yaml``/``.yml``, ``.pkl``/``.pickle``, a ``.zip`` or
a directory written with ``include_files=True``). From a Python file the model is the
module-level ``top`` (an `Assembly`); without one, the single `Assembly` subclass defined in the
file, instantiated and made the top. The file is imported under its own module name, so an
``if __name__ == '__main__':`` block in it does not run. A saved model is loaded with
`openmdao_like.load` (its header checked first) and rooted in the current directory; the paths
a saved YAML model names must stay inside its directory unless ``--trust-paths`` is given, and
it may hold components that run commands (``ExternalCode``) only with ``--trust-commands``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import importlib.util
import logging
import os
import re
import sys
import time
from types import ModuleType
from typing import Any, Callable, Iterator

from ..assembly import Assembly
from ..component import Component
from ..container import set_as_top
from ..drivers import Driver
from ..errors import error_summary
from ..jobs import JobStore
from ..jobs.backends import redact
from ..jobs.durable import load_run, start_run
from ..recorders import SQLiteRecorder
from ..view.report import recorded_files, write_report
from ..view.table import format_table, format_value
from . import CommandError, UsageError

logger = logging.getLogger(__name__)

#: A constraint residual up to this is reported as satisfied.
SATISFIED_TOL = 1e-6
#: Failed cases whose error is shown, per case driver.
MAX_ERRORS_SHOWN = 3


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``run`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        'run', parents=[common], help='run a model file and print its results',
        description='Load MODEL — a Python file (its module-level `top`, or its only Assembly '
                    'subclass) or a saved model (.yaml, .pkl, .zip or a directory) — apply '
                    '--set values, run it and print a table per driver.')
    add_model_arguments(parser, optional=True)
    parser.add_argument('--store', metavar='URL',
                        help='record the cases of the model\'s driver in this job store as they '
                             'end (sqlite:///runs.db, postgresql://user:pw@host/db), so that '
                             '--resume can finish the run if this process dies')
    parser.add_argument('--resume', metavar='RUN_ID',
                        help='run again the run RUN_ID of --store (its saved model), running '
                             'only its cases that are not COMPLETED')
    parser.add_argument('--report', metavar='DIR',
                        help='after the run, write into DIR the model view (model.html) and the '
                             'plots of the recorded cases (history.png, scatter.png, '
                             'parallel.html); a model without recorders gets one writing '
                             'DIR/cases.sqlite')
    parser.add_argument('-q', '--quiet', action='store_true',
                        help='print nothing but errors')
    parser.set_defaults(handler=run_command, parser=parser)
    return parser


def add_model_arguments(parser: argparse.ArgumentParser, optional: bool = False) -> None:
    """The arguments that name a model and how to load it (MODEL, --on-version-mismatch,
    --trust-paths, --trust-commands, --set), shared by the commands that load a model."""
    parser.add_argument('model', metavar='MODEL', nargs='?' if optional else None,
                        help='Python file defining the model, or a model saved with save()'
                             + (' (not with --resume)' if optional else ''))
    parser.add_argument('--on-version-mismatch', choices=('error', 'warn'), default='error',
                        help='for a saved model: what to do when a class was saved with '
                             'another version of its distribution than the installed one '
                             '(default: error)')
    parser.add_argument('--trust-paths', action='store_true',
                        help='for a saved YAML model: let it name paths outside its directory '
                             '(e.g. a recorder writing elsewhere); only for files you trust')
    parser.add_argument('--trust-commands', action='store_true',
                        help='for a saved YAML model: let it hold components that run commands '
                             '(ExternalCode); only for files you trust')
    parser.add_argument('--set', dest='settings', metavar='PATH=VALUE', action='append',
                        type=parse_setting, default=[],
                        help='set the variable at dotted PATH before the run; VALUE is a '
                             'Python literal (3, 2.5e-3, [1, 2], True) or else a string; '
                             'may be repeated')


def parse_setting(text: str) -> tuple[str, Any, str]:
    """``'p.x=3.5'`` -> ``('p.x', 3.5, '3.5')``: the path, the value and the text given."""
    path, sep, raw = text.partition('=')
    path = path.strip()
    if not sep or not path:
        raise argparse.ArgumentTypeError(f'expected PATH=VALUE (e.g. p.x=3.5), got {text!r}')
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = raw
    return path, value, raw


def run_command(args: argparse.Namespace) -> int:
    """Handler of ``run``: load, set, run, report. A saved model's directory is first on
    ``sys.path`` while it loads and runs (a Python file's while it is imported), as
    ``python script.py`` puts the script's, so the modules beside it can be imported."""
    if args.resume is not None:
        return resume_command(args)
    if args.model is None:
        raise UsageError('expected MODEL (a model file), or --resume RUN_ID --store URL')
    with model_scope(args.model):
        top = prepare_model(args)
        if args.report is not None:
            record_for_report(top, args.report)
        start = time.perf_counter()
        try:
            top.run()
        except Exception as exc:
            if args.report is not None:  # what was recorded before the failure is worth seeing
                try:
                    _write_report(top, args.report, args.quiet)
                except CommandError as report_exc:  # (the run's own error is the one to see)
                    logger.warning('%s: %s', report_exc, report_exc.__cause__)
            raise CommandError(f'running {args.model!r} failed') from exc
        elapsed = time.perf_counter() - start
    if not args.quiet:
        print(report(top, args.model, elapsed))
    if args.report is not None:
        _write_report(top, args.report, args.quiet)
    return 0


def record_for_report(top: Assembly, directory: str) -> None:
    """Make the report directory; give a model without recorders one writing
    ``DIR/cases.sqlite``, so that the report can plot the run's cases."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f'--report {directory}: expected a directory, found a file')
    os.makedirs(directory, exist_ok=True)
    if not recorded_files(top):
        top.recorders = [*(getattr(top, 'recorders', None) or []),
                         SQLiteRecorder(os.path.join(directory, 'cases.sqlite'))]


def _write_report(top: Assembly, directory: str, quiet: bool) -> None:
    """Write the run's report (`write_report`) and say what was written."""
    try:
        written = write_report(top, directory)
    except Exception as exc:
        raise CommandError(f'writing the report into {directory!r} failed') from exc
    if not quiet:
        print(f'\nreport in {directory}: {", ".join(path.name for path in written)}')


def resume_command(args: argparse.Namespace) -> int:
    """``run --resume RUN_ID --store URL``: reload the run's model, run what is not done."""
    if args.model is not None:
        raise UsageError(f'--resume runs the model saved with the run: give no MODEL (got '
                         f'{args.model!r})')
    if args.report is not None:
        raise UsageError('--report writes the report of a run of MODEL; a resumed run\'s '
                         'cases are in its job store (openmdao-like jobs)')
    if args.store is None:
        raise UsageError('--resume needs --store URL: the job store that holds the run')
    store = JobStore(args.store)
    run = store.run(args.resume)
    top = load_run(store, run.id, args.on_version_mismatch)
    driver = case_driver(top.get(run.driver or 'driver'), run.name)
    counts = store.counts(run.id)
    print(f'resuming run {run.id}: {counts["COMPLETED"]} case(s) COMPLETED are not run again',
          file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        driver.resume(run.id, store)
    except Exception as exc:
        raise CommandError(f'resuming run {run.id} ({run.name}) failed') from exc
    if not args.quiet:
        print(report(top, run.name, time.perf_counter() - start))
    return 0


def prepare_model(args: argparse.Namespace) -> Assembly:
    """The model of ``args.model`` (`load_model`), its ``--set`` values applied and, with
    ``--store``, its run started in the job store (`record_in_store`), ready to run."""
    top = configured_model(args)
    if args.store is not None:  # (saved as it is: a resumed run chooses its executor)
        record_in_store(top, args.store, args.model)
    return top


def configured_model(args: argparse.Namespace) -> Assembly:
    """The model of ``args.model`` (`load_model`) with its ``--set`` values applied."""
    top = load_model(args.model, args.on_version_mismatch, args.trust_paths, args.trust_commands)
    for path, value, raw in args.settings:
        try:
            top.set(path, value)
        except Exception as exc:
            raise UsageError(f'--set {path}={raw}: {exc}') from exc
        logger.info('set %s = %r', path, value)
    return top


def model_scope(path: str) -> contextlib.AbstractContextManager[None]:
    """What to hold while the model of ``path`` loads and runs: a saved model's directory
    first on ``sys.path`` (a Python file's is there while it is imported)."""
    return model_directory_on_path(path) if is_saved_model(path) else contextlib.nullcontext()


def record_in_store(top: Assembly, url: str, name: str) -> str:
    """Start a run of ``top``'s case driver in the job store at ``url`` (``--store``): its
    cases are recorded there as they end, so that ``--resume`` can finish the run; its id."""
    store = JobStore(url)
    driver = case_driver(top.driver, name)
    run_id = start_run(top, store, name, driver.get_pathname())
    print(f'run {run_id} in {redact(url)}', file=sys.stderr, flush=True)
    return run_id


def case_driver(driver: Any, name: str) -> Any:
    """``driver``, checked to be one whose cases a job store can hold."""
    if not callable(getattr(driver, 'resume', None)):
        raise UsageError(f'{name}: --store records the cases of a case-running driver '
                         f'(DOEDriver, CaseIteratorDriver); {driver.get_pathname()!r} is a '
                         f'{type(driver).__name__}')
    return driver


# -- finding the model ----------------------------------------------------------------------------
SAVED_SUFFIXES = ('.yaml', '.yml', '.pkl', '.pickle', '.zip')


def load_model(path: str, on_version_mismatch: str = 'error', trust_paths: bool = False,
               trust_commands: bool = False) -> Assembly:
    """The model in ``path``: a saved model (`load_saved`) or a Python file (`find_model`)."""
    if is_saved_model(path):
        return load_saved(path, on_version_mismatch, trust_paths, trust_commands)
    return find_model(load_module(path), path)


def is_saved_model(path: str) -> bool:
    """Whether ``path`` names a saved model rather than a Python file."""
    return path.endswith(SAVED_SUFFIXES) or os.path.isdir(path)


@contextlib.contextmanager
def model_directory_on_path(path: str) -> Iterator[None]:
    """The directory holding the model file ``path`` (a saved directory: itself) first on
    ``sys.path`` while the block runs."""
    directory = os.path.abspath(path if os.path.isdir(path) else os.path.dirname(path) or '.')
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        if directory in sys.path:
            sys.path.remove(directory)


def load_saved(path: str, on_version_mismatch: str, trust_paths: bool = False,
               trust_commands: bool = False) -> Assembly:
    """The model saved at ``path``, rooted in the current directory (``trust_paths`` and
    ``trust_commands``: see `openmdao_like.load`)."""
    from ..errors import PathError, PersistenceError
    from ..persistence import load
    if not os.path.exists(path):
        raise UsageError(f'no such file: {path!r}')
    try:
        top = load(path, on_version_mismatch=on_version_mismatch, trust_paths=trust_paths,
                   trust_commands=trust_commands)
    except (PersistenceError, PathError) as exc:
        raise CommandError(f'loading {path!r} failed') from exc
    if not isinstance(top, Assembly):
        raise CommandError(f'{path!r} holds a {type(top).__name__}; expected an Assembly '
                           f'(a whole model)')
    return top


def load_module(path: str) -> ModuleType:
    """Import the Python file ``path`` under a module name of its own, with its directory on
    ``sys.path`` while it is imported."""
    if not os.path.exists(path):
        raise UsageError(f'no such file: {path!r}')
    if not os.path.isfile(path):
        raise UsageError(f'{path!r} is not a file; expected a Python file defining a model')
    abspath = os.path.abspath(path)
    stem = re.sub(r'\W', '_', os.path.splitext(os.path.basename(abspath))[0])
    name = f'_openmdao_like_run_{stem}_{hashlib.sha1(abspath.encode()).hexdigest()[:8]}'
    spec = importlib.util.spec_from_file_location(name, abspath)
    if spec is None or spec.loader is None:
        raise UsageError(f'{path!r} is not a Python file (expected a name ending in .py)')
    module = importlib.util.module_from_spec(spec)
    # Registered so that pickle and dataclasses find the module while the model runs.
    sys.modules[name] = module
    try:
        with model_directory_on_path(abspath):
            spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise CommandError(f'importing {path!r} failed') from exc
    _pickle_by_value(module)
    return module


def _pickle_by_value(module: ModuleType) -> None:
    """Let cloudpickle ship the file's classes to worker processes, which cannot import this
    private module name."""
    try:
        import cloudpickle
        cloudpickle.register_pickle_by_value(module)
    except (ImportError, AttributeError, ValueError):  # pragma: no cover - old cloudpickle
        logger.debug('cloudpickle cannot pickle %s by value', module.__name__)


def find_model(module: ModuleType, path: str) -> Assembly:
    """The model of ``module``: its ``top``, else its only Assembly subclass, instantiated."""
    namespace = vars(module)
    if 'top' in namespace:
        top = namespace['top']
        if not isinstance(top, Assembly):
            raise CommandError(f'{path!r}: module-level `top` is a {type(top).__name__}; '
                               f'expected an Assembly')
        return top
    defined = [obj for obj in namespace.values() if isinstance(obj, type)
               and obj.__module__ == module.__name__]
    assemblies = [cls for cls in defined if issubclass(cls, Assembly)]
    if len(assemblies) == 1:
        cls = assemblies[0]
        try:
            return set_as_top(cls())
        except Exception as exc:
            raise CommandError(f'{path!r}: building {cls.__name__}() failed') from exc
    hint = 'define `top = set_as_top(MyModel())` at module level to choose the model'
    if assemblies:
        names = ', '.join(cls.__name__ for cls in assemblies)
        raise CommandError(f'{path!r} has no module-level `top` and defines '
                           f'{len(assemblies)} Assembly subclasses ({names}); {hint}')
    components = [cls.__name__ for cls in defined if issubclass(cls, Component)]
    imported = sorted({obj.__name__ for obj in namespace.values() if isinstance(obj, type)
                       and issubclass(obj, Assembly) and obj is not Assembly
                       and obj.__module__ != module.__name__})
    found = [f'components defined: {", ".join(components)}' if components else '',
             f'assemblies imported from elsewhere: {", ".join(imported)}' if imported else '']
    found_text = '; '.join(f for f in found if f) or 'no components or assemblies'
    raise CommandError(f'{path!r} has no module-level `top` and defines no Assembly subclass '
                       f'(found {found_text}); {hint}')


# -- reporting ------------------------------------------------------------------------------------
def drivers_run(top: Assembly) -> list[Driver]:
    """The drivers a run of ``top`` ran: ``driver`` or those of ``driver_workflow``, each
    followed by the drivers nested in its workflow."""
    found: list[Driver] = []

    def visit(driver: Any) -> None:
        if not isinstance(driver, Driver) or any(d is driver for d in found):
            return
        found.append(driver)
        scope = driver.parent
        for name in driver.workflow:
            visit(scope.get(name))

    for name in top.driver_workflow or ['driver']:
        visit(top.get(name))
    return found


def _value(func: Callable[[], Any]) -> Any:
    """``func()``, or the error it raised as text (a report must not crash on one value)."""
    try:
        return func()
    except Exception as exc:
        return f'<{type(exc).__name__}: {exc}>'


def _satisfied(residual: Any, equality: bool) -> Any:
    try:
        import numpy as np
        values = np.asarray(residual, dtype=float)
        ok = np.abs(values) <= SATISFIED_TOL if equality else values <= SATISFIED_TOL
        return bool(np.all(ok))
    except (TypeError, ValueError):
        return None


class _Values:
    """Where the values a driver's report shows come from: a case driver's last case, the
    model in this process, or nowhere (the cases ran in workers and none was kept).

    Parameters
    ----------
    driver : Driver
        The driver reported.

    Attributes
    ----------
    case : dict
        Inputs and outputs of the last case kept, by path, parameter name or expression text.
    live : bool
        Whether the model in this process holds the values reported (else unknown: '-').
    note : str
        What the reader needs to know about the values, or ''.
    """

    def __init__(self, driver: Driver):
        results = getattr(driver, 'results', None)
        self.case: dict[str, Any] = {}
        self.live = True
        self.note = ''
        if results is None:  # not a case driver: the model holds its final point
            return
        self.live = getattr(driver, 'sequential', True)
        if results:
            last = results[-1]
            self.case = {**last.inputs, **last.outputs}
            self.note = f'values of the last case: id {last.id}, status {last.status}'
            if not self.live:
                self.note += ("; '-': not collected by the cases, which ran in worker "
                              'processes')
        elif driver.current_iteration == 0:
            self.live = True
            self.note = "no case ran: values are the model's own"
        elif self.live:
            self.note = 'values are those of the last case (keep_results is off)'
        else:
            self.note = ('the cases ran in worker processes and keep_results is off: the last '
                         "case's values are not known here")

    def get(self, key: str, func: Callable[[], Any]) -> Any:
        """The last case's value of ``key``, else ``func()`` when the model holds the values,
        else None (shown as '-')."""
        if key in self.case:
            return self.case[key]
        return _value(func) if self.live else None


#: Status attributes of drivers shown at the top of their report, when they have them.
STATUS_ATTRIBUTES = ('success', 'message', 'converged', 'iterations', 'residual')


def _status_lines(driver: Driver, run_by: Driver | None) -> list[str]:
    """The indented status lines of ``driver`` (success, iterations, residual...)."""
    lines = []
    for attr in STATUS_ATTRIBUTES:
        if not hasattr(driver, attr):
            continue
        text = format_value(getattr(driver, attr))
        if attr == 'residual' and hasattr(driver, 'tolerance'):
            text += f' (largest change of the last pass; tolerance {driver.tolerance:g})'
        lines.append(f'  {attr}: {text}')
    if run_by is not None and lines:
        lines.append(f'  (run by {run_by.get_pathname()!r}: figures of its last run)')
    return lines


def driver_report(driver: Driver, run_by: Driver | None = None) -> str:
    """Tables of one driver: status, parameters, objectives, constraints, responses, cases
    (``run_by``: the driver whose workflow runs this one, if any)."""
    lines = [f'driver {driver.get_pathname()!r} ({type(driver).__name__})']
    lines += _status_lines(driver, run_by)
    results = getattr(driver, 'results', None)
    values = _Values(driver)
    if values.note:
        lines.append(f'  ({values.note})')
    blocks = ['\n'.join(lines)]
    params = driver.get_parameters()
    if params:
        rows = [[name, values.get(name, p.get_value), p.low, p.high]
                for name, p in params.items()]
        blocks.append('parameters\n' + format_table(['name', 'value', 'low', 'high'], rows))
    objectives = driver.get_objectives()
    if objectives:
        rows = [[name, values.get(name, o.evaluate)] for name, o in objectives.items()]
        blocks.append('objectives\n' + format_table(['name', 'value'], rows))
    constraints = driver.get_constraints()
    if constraints:
        rows = []
        for name, con in constraints.items():
            residual = values.get(name, con.evaluate)
            rows.append([con.text, residual,
                         None if residual is None else _satisfied(residual, con.equality)])
        blocks.append('constraints\n' + format_table(['expression', 'residual', 'satisfied'],
                                                     rows))
    responses = driver.get_responses()
    if responses:
        rows = [[text, values.get(text, lambda t=text: driver.eval_responses()[t])]
                for text in responses]
        blocks.append('responses\n' + format_table(['expression', 'value'], rows))
    if results is not None:
        failed = [case for case in results if case.status != 'ok']
        counts = [len(results), len(results) - len(failed), len(failed)] if results else \
            [driver.current_iteration, None, None]  # none kept: only how many ran is known
        blocks.append('cases\n' + format_table(['total', 'ok', 'failed'], [counts]))
        if failed:
            rows = [[case.id, error_summary(case.error)] for case in failed[:MAX_ERRORS_SHOWN]]
            title = 'failed cases' if len(failed) <= MAX_ERRORS_SHOWN else \
                f'failed cases (first {MAX_ERRORS_SHOWN} of {len(failed)})'
            blocks.append(f'{title}\n' + format_table(['id', 'error'], rows))
    return '\n\n'.join(blocks)


def report(top: Assembly, path: str, elapsed: float) -> str:
    """The whole printout of ``run``: a header, each driver's tables, the recorders."""
    blocks = [f'model {path} ({type(top).__name__}) ran in {elapsed:.3g} s']
    drivers = drivers_run(top)
    run_by = {id(d.parent.get(name)): d for d in drivers for name in d.workflow}
    blocks.extend(driver_report(d, run_by.get(id(d))) for d in drivers)
    recorders = getattr(top, 'recorders', None) or []
    if recorders:
        rows = [[type(rec).__name__, str(getattr(rec, 'path', '-'))] for rec in recorders]
        blocks.append('recorders\n' + format_table(['recorder', 'path'], rows))
    return '\n\n'.join(blocks)

