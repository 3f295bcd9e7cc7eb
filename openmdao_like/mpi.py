"""``python -m openmdao_like.mpi MODEL``: run a model as an MPI case farm.

::

    mpiexec -n 17 python -m openmdao_like.mpi model.py --case-timeout 60
    srun -n 65 python -m openmdao_like.mpi model.py --procs-per-case 4   # 16 groups of 4

Rank 0 loads and runs the model as ``openmdao-like run MODEL`` does (same ``--set``, ``-q``,
``--on-version-mismatch``, ``--trust-paths``, ``--trust-commands``, same report); its top-level
case-running drivers — those with the options ``executor`` and ``sequential`` (DOEDriver,
CaseIteratorDriver, a population method of ScipyOptimizer, PymooDriver), found without entering
their workflows, whose nested drivers run inside the cases — run their cases through one
`openmdao_like.distributed.mpi.MPIFarmExecutor` on the other ranks, which serve cases in groups
of ``--procs-per-case`` ranks. A model without such a driver runs on rank 0 alone and the other
ranks end at once. Exit status: as ``openmdao-like``'s (0, 1 failed, 2 bad arguments, also on
every rank for a number of ranks that does not suit); when a rank did not end after the stop
(a case that never returns), rank 0 aborts the MPI job once the report is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from typing import Any, Sequence

from .cli import CommandError, UsageError
from .cli.main import LOG_LEVELS, report_error
from .cli.run import (is_saved_model, model_directory_on_path, parse_setting, prepare_model,
                      report)

logger = logging.getLogger('openmdao_like.mpi')

PROG = 'python -m openmdao_like.mpi'


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m openmdao_like.mpi``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Run MODEL (a Python file or a saved model, as `openmdao-like run`) under '
                    'mpiexec or srun: rank 0 runs the model, the other ranks run the cases of '
                    'its case-running drivers (DOEDriver, CaseIteratorDriver, population '
                    'optimizers), in groups of --procs-per-case ranks.')
    parser.add_argument('model', metavar='MODEL',
                        help='Python file defining the model, or a model saved with save()')
    parser.add_argument('--procs-per-case', type=_positive_int, default=1, metavar='K',
                        help='ranks that run each case together; the component sees their '
                             'communicator as self.comm (default 1; needs 1 + a multiple of K '
                             'ranks)')
    parser.add_argument('--case-timeout', type=_positive_float, default=None, metavar='S',
                        help='seconds after which a case still running is sent again to '
                             'another group (the first result wins; default: no limit)')
    parser.add_argument('--max-resubmits', type=_non_negative_int, default=5, metavar='R',
                        help='how many times a case may be sent again (default 5)')
    parser.add_argument('--set', dest='settings', metavar='PATH=VALUE', action='append',
                        type=parse_setting, default=[],
                        help='set the variable at dotted PATH before the run (a Python '
                             'literal, else a string); may be repeated')
    parser.add_argument('--store', metavar='URL',
                        help="record the cases of the model's driver in this job store as they "
                             "end (sqlite:///runs.db, postgresql://...), so that `openmdao-like "
                             "run --resume RUN_ID --store URL` can finish the run")
    parser.add_argument('--on-version-mismatch', choices=('error', 'warn'), default='error',
                        help='for a saved model: a class saved with another version of its '
                             'distribution is an error (default) or a warning')
    parser.add_argument('--trust-paths', action='store_true',
                        help='for a saved YAML model: let it name paths outside its directory')
    parser.add_argument('--trust-commands', action='store_true',
                        help='for a saved YAML model: let it hold components that run commands')
    parser.add_argument('-q', '--quiet', action='store_true', help='print nothing but errors')
    parser.add_argument('-v', '--verbose', action='count', default=0,
                        help='log more (-v: INFO, -vv: DEBUG) and show full tracebacks')
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected an integer >= 1, got {text}')
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'expected an integer >= 0, got {text}')
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f'expected a number > 0, got {text}')
    return value


def farm_drivers(top: Any) -> list[Any]:
    """The case-running drivers of ``top`` that run on rank 0: ``driver`` (or those of
    ``driver_workflow``) and, below drivers that do not run cases, the drivers of their
    workflows (sub-assemblies included); never what a case-running driver's workflow holds."""
    from .assembly import Assembly
    from .drivers import Driver
    found: list[Any] = []
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, Assembly):
            for name in obj.driver_workflow or ['driver']:
                visit(obj.get(name))
        elif isinstance(obj, Driver):
            if runs_cases(obj):
                found.append(obj)
                return
            for name in obj.workflow:
                visit(obj.parent.get(name))

    visit(top)
    return found


def runs_cases(driver: Any) -> bool:
    """Whether ``driver`` runs cases through an executor: it declares ``executor`` and
    ``sequential``, and, when it has a ``method``, that method evaluates populations."""
    from .drivers.scipy_optimizer import _POPULATION
    declared = getattr(driver, 'declared_options', None)
    if declared is None or 'executor' not in declared or 'sequential' not in declared:
        return False
    return 'method' not in declared or declared['method'] in _POPULATION


def main(argv: Sequence[str] | None = None) -> int:
    """Run the farm with ``argv`` (default ``sys.argv[1:]``); the exit status of this rank."""
    parser = build_parser()
    args = parser.parse_args(argv)  # --help and bad arguments end here, before MPI starts
    from .distributed.mpi import client, roles
    comm = roles.world()
    rank = comm.Get_rank()
    logging.basicConfig(level=LOG_LEVELS[min(args.verbose, len(LOG_LEVELS) - 1)], stream=sys.stderr,
                        format=f'%(levelname)s rank {rank} %(name)s: %(message)s')
    try:
        role = roles.assign(comm, args.procs_per_case)
    except roles.FarmError as exc:
        if rank == 0:
            parser.print_usage(sys.stderr)
            print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2 if isinstance(exc, roles.FarmSizeError) else 1
    if not role.server:
        client.serve(role)
        return 0
    from .distributed.mpi.pool import FarmServer
    server = FarmServer(role)
    try:
        return _rank0(args, parser, server)
    finally:
        server.stop(cancel=True)  # (already done unless the run failed)
        if server.unfinished:
            from .remote.spmd import abort_job
            abort_job(comm)


def _rank0(args: argparse.Namespace, parser: argparse.ArgumentParser, server: Any) -> int:
    """Rank 0: run the model with the farm; report; the exit status."""
    try:
        return _run(args, server)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2
    except CommandError as exc:
        report_error(f'{PROG}: error: {exc}', exc.__cause__, args.verbose)
        return 1
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted', file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still no bare traceback
        report_error(f'{PROG}: internal error', exc, args.verbose)
        return 1


def _run(args: argparse.Namespace, server: Any) -> int:
    """Load the model, give its case drivers the farm, run it, stop the clients, report."""
    from mpi4py import MPI

    from .component import Component
    from .distributed.mpi import MPIFarmExecutor
    Component.comm = MPI.COMM_SELF  # what runs on rank 0 runs there alone
    saved = is_saved_model(args.model)
    with model_directory_on_path(args.model) if saved else contextlib.nullcontext():
        top = prepare_model(args)
        executor = MPIFarmExecutor(procs_per_case=args.procs_per_case,
                                   case_timeout=args.case_timeout,
                                   max_resubmits=args.max_resubmits)
        drivers = farm_drivers(top)
        for driver in drivers:
            driver.executor = executor
            driver.sequential = False
        if drivers:
            logger.info('cases of %s run on %d group(s) of %d rank(s)',
                        ', '.join(repr(d.get_pathname()) for d in drivers),
                        len(server.groups), args.procs_per_case)
        else:
            logger.warning('%s has no case-running driver: it runs on rank 0 alone; the '
                           'other %d rank(s) have nothing to do', args.model,
                           server.role.size - 1)
        start = time.perf_counter()
        try:
            top.run()
        except BaseException as exc:
            executor.shutdown(wait=False, cancel_futures=True)
            server.stop(cancel=True)
            if isinstance(exc, Exception):
                raise CommandError(f'running {args.model!r} failed') from exc
            raise
        executor.shutdown(wait=True)  # (the clients end: one farm, one run of the model)
        server.stop()
        elapsed = time.perf_counter() - start
    if not args.quiet:
        print(report(top, args.model, elapsed), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
