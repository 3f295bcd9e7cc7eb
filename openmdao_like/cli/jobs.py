"""``openmdao-like jobs list|info|logs|cancel|retry|pause|resume``: the runs of a job store.

- ``list``: every run, newest first: id, name, state, progress (jobs per state), times.
- ``info RUN``: one run: its fields, jobs per state, the failed jobs with their errors, hosts,
  the servers (batch jobs) runners allocated for it.
- ``logs RUN:CASE``: one job: its state, attempts, host, times, error and output tails.
- ``cancel RUN``: every job that has not ended becomes CANCELLED, and the run too; the runners
  running it stop within a second or two, releasing its servers (their batch jobs cancelled);
  batch jobs of the run still alive after ``--grace`` seconds (their runner died) are cancelled
  here (scancel, qdel). A process running it in-process (``run --store``) stops at its next
  write to the store.
- ``retry RUN --failed``: the FAILED jobs become READY (a new attempt each), for the runners
  (a submitted run) or ``run --resume``.
- ``pause RUN`` / ``resume RUN``: hold the jobs that have not started (READY, WAITING), or let
  them go again; runners and ``run --resume`` pass over paused jobs.

RUN is a run id or a unique prefix of it (4 hex digits at least). The store is ``--store URL``,
else ``$OML_JOB_STORE``, else ``~/.openmdao_like/jobs.db``. ``--json`` prints machine-readable
JSON instead of tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

from ..errors import error_summary
from ..jobs import JobStore, State
from ..jobs.pilots import CANCEL_GRACE, cancel_run
from . import UsageError
from ..view.table import format_table

#: Failed jobs ``info`` lists before saying how many more there are.
MAX_FAILURES_SHOWN = 10


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``jobs`` subcommand and its actions."""
    parser = subparsers.add_parser(
        'jobs', parents=[common], help='list, inspect and control the runs of a job store',
        description='List, inspect and control the runs of a job store (durable runs: '
                    'run --store, run --resume).')
    parser.set_defaults(parser=parser)
    actions = parser.add_subparsers(dest='action', metavar='ACTION', required=True)
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument('--store', metavar='URL',
                         help='the job store (default: $OML_JOB_STORE, else '
                              '~/.openmdao_like/jobs.db)')
    options.add_argument('--json', action='store_true', help='print JSON, not tables')

    def action(name: str, handler: Callable[..., int], summary: str, target: str | None,
               target_help: str = '') -> argparse.ArgumentParser:
        sub = actions.add_parser(name, parents=[common, options], help=summary,
                                 description=summary[0].upper() + summary[1:] + '.')
        if target is not None:
            sub.add_argument(target, help=target_help)
        sub.set_defaults(handler=handler, parser=sub)
        return sub

    action('list', list_command, 'list the runs of the store, newest first', None)
    action('info', info_command, 'show one run: jobs per state, failures, hosts, times',
           'run', 'run id (or a unique prefix of 4 hex digits or more)')
    action('logs', logs_command, "show one job: state, attempts, error and output tails",
           'job', 'RUN:CASE, e.g. 7f3a:123')
    cancel = action('cancel', cancel_command, 'cancel every job of a run that has not ended, '
                    'and its batch jobs', 'run')
    cancel.add_argument('--grace', type=float, default=CANCEL_GRACE,
                        help='seconds the runners get to release the servers of the run before '
                             f'their batch jobs are cancelled from here (default {CANCEL_GRACE:g})')
    retry = action('retry', retry_command, 'put the failed jobs of a run back to READY', 'run')
    retry.add_argument('--failed', action='store_true', required=True,
                       help='retry the FAILED jobs (required: the only kind retried)')
    action('pause', pause_command, 'hold the jobs of a run that have not started', 'run')
    action('resume', resume_command, 'let the paused jobs of a run go again', 'run')
    return parser


def _when(stamp: float | None) -> str:
    return '-' if stamp is None else time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(stamp))


def _progress(counts: dict[str, int], total: int | None) -> str:
    """``'180/200 done, 3 failed'``-style summary of a run's jobs."""
    done = counts['COMPLETED']
    of = total if total is not None else sum(counts.values())
    parts = [f'{done}/{of} completed']
    parts += [f'{n} {name.lower()}' for name, n in counts.items()
              if n and name != 'COMPLETED']
    return ', '.join(parts)


def _print(args: argparse.Namespace, data: Any, text: Callable[[], str]) -> int:
    print(json.dumps(data, indent=2, default=str) if args.json else text())
    return 0


def list_command(args: argparse.Namespace) -> int:
    """``jobs list``."""
    with JobStore(args.store) as store:
        runs = [(run, store.counts(run.id)) for run in store.runs()]
    data = [{**dataclasses.asdict(run), 'counts': counts} for run, counts in runs]
    rows = [[run.id[:8], run.name, run.state, _progress(counts, run.total), _when(run.created),
             _when(run.finished)] for run, counts in runs]
    return _print(args, data, lambda: format_table(
        ['run', 'name', 'state', 'jobs', 'created', 'finished'], rows) if rows
        else 'no runs in this store')


def info_command(args: argparse.Namespace) -> int:
    """``jobs info RUN``."""
    with JobStore(args.store) as store:
        run = store.run(args.run)
        counts = store.counts(run.id)
        failed = store.jobs(run.id, State.FAILED)
        jobs = store.jobs(run.id)
        pilots = store.pilots(run.id)
    hosts: dict[str, int] = {}
    for job in jobs:
        if job.host:
            hosts[job.host] = hosts.get(job.host, 0) + 1
    data = {**dataclasses.asdict(run), 'counts': counts, 'hosts': hosts,
            'failed': [{'case_id': j.case_id, 'error': j.error, 'attempts': j.attempts}
                       for j in failed],
            'servers': [dataclasses.asdict(p) for p in pilots]}

    def text() -> str:
        lines = [f'run {run.id} ({run.name})', f'  state: {run.state}',
                 f'  driver: {run.driver or "-"}', f'  jobs: {_progress(counts, run.total)}',
                 f'  created: {_when(run.created)}', f'  started: {_when(run.started)}',
                 f'  finished: {_when(run.finished)}']
        if run.error:
            lines.append(f'  error: {run.error}')
        blocks = ['\n'.join(lines),
                  'jobs\n' + format_table(['state', 'jobs'], [[k, v] for k, v in counts.items()
                                                              if v])]
        if hosts:
            blocks.append('hosts\n' + format_table(['host', 'jobs'], sorted(hosts.items())))
        if pilots:
            blocks.append('servers\n' + format_table(
                ['allocator', 'batch job', 'host', 'runner', 'started', 'released'],
                [[p.allocator, p.scheduler_id or '-', p.host or '-', p.runner,
                  _when(p.started), _when(p.ended) if p.ended else 'in use'] for p in pilots]))
        if failed:
            title = 'failed jobs' if len(failed) <= MAX_FAILURES_SHOWN else \
                f'failed jobs (first {MAX_FAILURES_SHOWN} of {len(failed)})'
            blocks.append(f'{title}\n' + format_table(
                ['case', 'attempts', 'error'],
                [[j.case_id, j.attempts, error_summary(j.error)]
                 for j in failed[:MAX_FAILURES_SHOWN]]))
        return '\n\n'.join(blocks)
    return _print(args, data, text)


def logs_command(args: argparse.Namespace) -> int:
    """``jobs logs RUN:CASE``."""
    run, sep, case = args.job.partition(':')
    if not sep or not case.strip().isdigit():
        raise UsageError(f'expected RUN:CASE (a run id and a case number, e.g. 7f3a:123), got '
                         f'{args.job!r}')
    with JobStore(args.store) as store:
        job = store.job(run, int(case))
    data = dataclasses.asdict(job)
    data['state'] = job.state.name

    def text() -> str:
        lines = [f'job {job.run_id[:8]}:{job.case_id}', f'  state: {job.state.name}',
                 f'  attempts: {job.attempts} (model retries {job.model_retries}, '
                 f'infrastructure retries {job.infra_retries})',
                 f'  host: {job.host or "-"}', f'  scheduler id: {job.scheduler_id or "-"}',
                 f'  started: {_when(job.started)}', f'  finished: {_when(job.finished)}']
        for title, body in (('error', job.error), ('stdout (tail)', job.stdout_tail),
                            ('stderr (tail)', job.stderr_tail)):
            if body:
                lines += ['', f'{title}:', body.rstrip()]
        return '\n'.join(lines)
    return _print(args, data, text)


def _control(args: argparse.Namespace, verb: str, change: Callable[[JobStore, str], int],
             more: Callable[[], dict[str, Any]] = dict) -> int:
    """Apply ``change(store, run_id)`` (how many jobs it changed) and report it (with what
    ``more()`` adds)."""
    with JobStore(args.store) as store:
        run = store.run(args.run)
        changed = change(store, run.id)
        counts = store.counts(run.id)
        state = store.run(run.id).state
    data = {'run': run.id, 'action': verb, 'changed': changed, 'state': state,
            'counts': counts, **more()}
    extra = ''.join(f'; {key.replace("_", " ")}: {" ".join(map(str, value))}'
                    for key, value in data.items() if key not in
                    ('run', 'action', 'changed', 'state', 'counts') and value)
    return _print(args, data, lambda: f'run {run.id}: {verb} {changed} job(s); run {state}, '
                                      f'{_progress(counts, run.total)}{extra}')


def cancel_command(args: argparse.Namespace) -> int:
    """``jobs cancel RUN``."""
    reached: list[Any] = []

    def cancel(store: JobStore, run_id: str) -> int:
        cancelled, pilots = cancel_run(store, run_id, args.grace)
        reached.extend(pilots)
        return cancelled
    return _control(args, 'cancelled', cancel,
                    lambda: {'batch_jobs_cancelled': [p.scheduler_id for p in reached]})


def retry_command(args: argparse.Namespace) -> int:
    """``jobs retry RUN --failed``."""
    return _control(args, 'retried', lambda store, run_id: store.retry(run_id))


def pause_command(args: argparse.Namespace) -> int:
    """``jobs pause RUN``."""
    return _control(args, 'paused', lambda store, run_id: store.pause(run_id))


def resume_command(args: argparse.Namespace) -> int:
    """``jobs resume RUN``."""
    return _control(args, 'resumed', lambda store, run_id: store.unpause(run_id))
