"""``openmdao-like submit`` and ``openmdao-like runner serve|start|stop|status``: runs that a
runner daemon takes from a job store (`openmdao_like.jobs.runner`), while the terminal that
submitted them may close.

- ``submit MODEL --store URL [--name N] [--resources D]``: save the model with a new WAITING
  run, its cases READY jobs; print its id. D (a resource description, JSON or YAML text or a
  file) says which servers its cases run on (e.g. ``'{"allocator": "SLURM"}'``).
- ``runner serve --store URL``: run submitted runs in this process until SIGTERM/Ctrl-C.
- ``runner start --store URL``: ``runner serve`` as a daemon (a session of its own, output to
  a log file), its pid in a file named after the store (`state_files`); refused while another
  runner of this machine serves that store.
- ``runner stop --store URL``: SIGTERM to that daemon (SIGKILL after a grace period); its run
  goes back to WAITING. ``runner status --store URL``: whether it runs, and the runs it holds.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import subprocess
import sys
import time
from typing import Any

from ..jobs import JobStore
from ..jobs.backends import redact
from ..jobs.durable import submit_run
from ..jobs.runner import LEASE, POLL, Runner
from ..processes import PidProcess, spawn
from . import CommandError, UsageError
from .resources import parse_desc
from .run import case_driver, is_saved_model, load_model, model_directory_on_path
from ..view.table import format_table

#: Where runner daemons keep their pid and log files.
STATE_DIR = os.path.join('~', '.openmdao_like', 'runners')
#: Seconds `runner start` waits for the daemon to say it serves.
START_TIMEOUT = 30.0
#: Seconds `runner stop` gives the daemon after SIGTERM before SIGKILL.
STOP_GRACE = 30.0


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``submit`` and ``runner`` subcommands (returns ``runner``'s parser)."""
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument('--store', metavar='URL',
                       help='the job store (default: $OML_JOB_STORE, else '
                            '~/.openmdao_like/jobs.db)')
    sub = subparsers.add_parser(
        'submit', parents=[common, store], help='submit a model for a runner to run',
        description='Save MODEL with a new WAITING run of the job store and print its id; a '
                    'runner (openmdao-like runner start) runs it.')
    sub.add_argument('model', metavar='MODEL', help='Python file defining the model, or a '
                                                    'model saved with save()')
    sub.add_argument('--name', help='what listings call the run (default: MODEL)')
    sub.add_argument('--resources', metavar='D',
                     help='resource description of the servers the cases run on: JSON or YAML '
                          'text, or a file holding it (e.g. \'{"allocator": "SLURM"}\'); '
                          "default: where the model's driver runs them")
    sub.set_defaults(handler=submit_command, parser=sub)

    parser = subparsers.add_parser(
        'runner', parents=[common], help='run submitted runs: a daemon per job store',
        description='Run the submitted runs of a job store.')
    parser.set_defaults(parser=parser)
    actions = parser.add_subparsers(dest='action', metavar='ACTION', required=True)
    timing = argparse.ArgumentParser(add_help=False)
    timing.add_argument('--lease', type=float, default=LEASE,
                        help=f'seconds a run is held without renewal: after a runner dies, '
                             f'its run waits this long for the next (default {LEASE:g})')
    timing.add_argument('--poll', type=float, default=POLL,
                        help=f'seconds between looks for work (default {POLL:g})')
    timing.add_argument('--max-jobs', metavar='[ALLOCATOR=]N', action='append', default=[],
                        help='most servers (batch jobs) a run holds at once, for every '
                             'allocator or for the one named (repeat for several)')
    for name, handler, summary, parents in (
            ('serve', serve_command, 'run submitted runs in this process until SIGTERM',
             [common, store, timing]),
            ('start', start_command, 'start a runner daemon for the store',
             [common, store, timing]),
            ('stop', stop_command, "stop the store's runner daemon (its run goes back to "
                                   'WAITING)', [common, store]),
            ('status', status_command, "show the store's runner daemon and the runs held",
             [common, store])):
        action = actions.add_parser(name, parents=parents, help=summary,
                                    description=summary[0].upper() + summary[1:] + '.')
        action.set_defaults(handler=handler, parser=action)
    return parser


def state_files(url: str | None) -> tuple[str, str, str]:
    """The store URL (the default filled in), and the pid and log files of its daemon here."""
    url = url or os.environ.get('OML_JOB_STORE') or ''
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    base = os.path.join(os.path.expanduser(STATE_DIR), f'runner-{key}')
    return url, base + '.pid', base + '.log'


def _daemon(pid_file: str) -> PidProcess | None:
    """The live runner daemon whose pid ``pid_file`` holds, if any."""
    try:
        with open(pid_file, encoding='utf-8') as fh:
            proc = PidProcess(int(fh.read().split()[0]))
    except (OSError, ValueError, IndexError):
        return None
    return proc if proc.running() else None


def max_jobs(given: list[str]) -> dict[str, int] | None:
    """The ``--max-jobs`` options as ``{allocator: limit}`` (``'*'``: every other)."""
    limits: dict[str, int] = {}
    for text in given:
        name, _, number = text.rpartition('=')
        try:
            limit = int(number)
        except ValueError:
            limit = 0
        if limit < 1:
            raise UsageError(f'--max-jobs: expected N or ALLOCATOR=N with N a whole number >= '
                             f'1, got {text!r}')
        limits[name or '*'] = limit
    return limits or None


def submit_command(args: argparse.Namespace) -> int:
    """``submit MODEL``."""
    with model_directory_on_path(args.model) if is_saved_model(args.model) else \
            contextlib.nullcontext():
        top = load_model(args.model)
    driver = case_driver(top.driver, args.model)
    resources = None if args.resources is None else parse_desc(args.resources, '--resources')
    store = JobStore(args.store)
    with store:
        run_id = submit_run(top, store, args.name or args.model, driver.get_pathname(),
                            resources)
    print(run_id)
    return 0


def serve_command(args: argparse.Namespace) -> int:
    """``runner serve``: until SIGTERM (the run in progress goes back to WAITING)."""
    url, pid_file, _ = state_files(args.store)
    other = _daemon(pid_file)
    if other is not None and other.pid != os.getpid() and url.startswith('sqlite:'):
        raise CommandError(f'{redact(url)}: a runner (pid {other.pid}) serves this SQLite '
                           f'store already; one runner per SQLite store (PostgreSQL takes '
                           f'several)')
    runner = Runner(args.store, lease=args.lease, poll=args.poll,
                    max_jobs=max_jobs(args.max_jobs))
    os.makedirs(os.path.dirname(pid_file), exist_ok=True)
    with open(pid_file, 'w', encoding='utf-8') as fh:
        fh.write(f'{os.getpid()}\n')
    print(f'runner {runner.name} serving {redact(runner.store.url)}', flush=True)
    try:
        runner.serve()
    except KeyboardInterrupt:
        pass
    finally:
        daemon = _daemon(pid_file)
        if daemon is None or daemon.pid == os.getpid():
            with contextlib.suppress(OSError):
                os.remove(pid_file)
    return 0


def start_command(args: argparse.Namespace) -> int:
    """``runner start``: ``runner serve`` in a session of its own, logging to a file."""
    url, pid_file, log_file = state_files(args.store)
    running = _daemon(pid_file)
    if running is not None:
        raise CommandError(f'{redact(url)}: a runner daemon runs already (pid {running.pid}); '
                           f'openmdao-like runner stop first')
    JobStore(args.store).close()  # a bad URL is reported here, not in the log
    os.makedirs(os.path.dirname(pid_file), exist_ok=True)
    max_jobs(args.max_jobs)  # checked here, not in the log
    command = [sys.executable, '-m', 'openmdao_like.cli.main', 'runner', 'serve',
               '--lease', str(args.lease), '--poll', str(args.poll),
               *(f'--max-jobs={limit}' for limit in args.max_jobs)]
    if args.store:
        command += ['--store', args.store]
    proc = spawn(command, log_path=log_file, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT
    while _daemon(pid_file) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = proc.output_tail()
            proc.kill()
            raise CommandError(f'{redact(url)}: the runner did not start; its log '
                               f'{log_file}: {tail.strip()[-500:]}')
        time.sleep(0.05)
    print(f'runner daemon pid {proc.pid} serving {redact(url)} (log {log_file})')
    return 0


def stop_command(args: argparse.Namespace) -> int:
    """``runner stop``."""
    url, pid_file, _ = state_files(args.store)
    daemon = _daemon(pid_file)
    if daemon is None:
        raise CommandError(f'{redact(url)}: no runner daemon runs for this store here')
    if daemon.kill(STOP_GRACE) is None:
        raise CommandError(f'runner daemon pid {daemon.pid} survived SIGKILL')
    with contextlib.suppress(OSError):
        os.remove(pid_file)
    print(f'runner daemon pid {daemon.pid} stopped')
    return 0


def status_command(args: argparse.Namespace) -> int:
    """``runner status``."""
    url, pid_file, log_file = state_files(args.store)
    daemon = _daemon(pid_file)
    with JobStore(args.store) as store:
        held = [run for run in store.runs() if run.runner]
    print(f'runner daemon: {"pid " + str(daemon.pid) if daemon else "not running"} '
          f'({redact(url) or "default store"}; log {log_file})')
    if held:
        print(format_table(['run', 'name', 'state', 'runner', 'lease left (s)'],
                           [[r.id[:8], r.name, r.state, r.runner,
                             round((r.lease_expires or 0) - time.time(), 1)] for r in held]))
    return 0
