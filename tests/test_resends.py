"""Stragglers sent again (every executor of the backbone): a case not back within
``case_timeout`` runs again on another worker while its first copy goes on, up to
``max_resubmits`` times; the first copy to end gives the outcome, the workers still running
other copies are stopped, and the case comes back (and is recorded) once. (RAM servers:
tests/test_ram_executor.py; the MPI farm: tests/test_mpi_farm.py.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from openmdao_like.execution import CaseOutcome, LocalExecutor
from openmdao_like.recorders import JSONRecorder, read_cases

from ram_models import eventually
from test_local_executor import assert_no_workers_left
from test_ram_executor import expected, make_model, points


class Copies:
    """A case runner: y = x**2, plus which copy of its case this is (1 for the first run);
    copy ``n`` of a case sleeps ``inputs['delays'][n]`` seconds. Copies are counted with
    marker files (holding the pid of the copy's worker) in ``inputs['markers']``."""

    def __call__(self, case_id: int, inputs: dict) -> CaseOutcome:
        copy = 1
        while True:
            try:
                fd = os.open(os.path.join(inputs['markers'], f'{case_id}-{copy}'),
                             os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                copy += 1
                continue
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            break
        time.sleep(inputs.get('delays', {}).get(copy, 0.0))
        return CaseOutcome(case_id, {'y': inputs['x'] ** 2, 'copy': copy})


def copy_pids(markers: Path, case_id: int) -> dict[int, int]:
    """copy number -> pid of the worker that ran (or runs) it."""
    return {int(p.name.split('-')[1]): int(p.read_text()) for p in markers.glob(f'{case_id}-*')}


def alive(pid: int) -> bool:
    return os.path.exists(f'/proc/{pid}')


def run(executor: LocalExecutor, markers: Path, slow: dict[int, float], n: int = 8) -> dict:
    """Run cases 0..n-1 (case 3 with the copy ``delays`` ``slow``); outcomes by id, each id
    once."""
    cases = [(i, {'x': i, 'markers': str(markers), 'delays': slow if i == 3 else {}})
             for i in range(n)]
    executor.start(Copies())
    outcomes = list(executor.run(iter(cases)))
    ids = [o.id for o in outcomes]
    assert sorted(ids) == list(range(n)), f'each case once: {sorted(ids)}'
    return {o.id: o for o in outcomes}


def test_a_straggler_runs_again_elsewhere_and_the_copy_wins(tmp_path: Path) -> None:
    with LocalExecutor(n_workers=3, case_timeout=0.5) as executor:
        outcomes = run(executor, tmp_path, {1: 300.0})
        pids = copy_pids(tmp_path, 3)
        assert outcomes[3].status == 'ok' and outcomes[3].outputs == {'y': 9, 'copy': 2}
        assert all(o.status == 'ok' and o.outputs['y'] == i * i for i, o in outcomes.items())
        assert sorted(pids) == [1, 2] and pids[1] != pids[2]
        assert eventually(lambda: not alive(pids[1])), 'the straggler was stopped'
        # the executor goes on with a new worker in its place
        assert [o.outputs['y'] for o in executor.run(iter([(9, {'x': 5, 'markers':
                                                                 str(tmp_path)})]))] == [25]
    assert_no_workers_left()


def test_the_first_copy_wins_when_it_ends_first(tmp_path: Path) -> None:
    with LocalExecutor(n_workers=2, case_timeout=0.5) as executor:
        outcomes = run(executor, tmp_path, {1: 2.0, 2: 300.0})
        pids = copy_pids(tmp_path, 3)
        assert outcomes[3].outputs == {'y': 9, 'copy': 1}
        assert sorted(pids) == [1, 2]
        assert eventually(lambda: not alive(pids[2])), 'the late copy was stopped'
    assert_no_workers_left()


def test_a_case_too_long_on_every_copy_is_lost(tmp_path: Path) -> None:
    with LocalExecutor(n_workers=3, case_timeout=0.3, max_resubmits=2) as executor:
        outcomes = run(executor, tmp_path, {1: 300.0, 2: 300.0, 3: 300.0})
        pids = copy_pids(tmp_path, 3)
    assert outcomes[3].status == 'failed' and outcomes[3].lost
    assert 'case 3 ran longer than case_timeout=0.3 s, with no resend left ' \
           '(max_resubmits=2)' in outcomes[3].error
    assert sorted(pids) == [1, 2, 3], 'sent again twice'
    assert all(o.status == 'ok' for i, o in outcomes.items() if i != 3)
    assert_no_workers_left(list(pids.values()))


def test_without_resubmits_the_case_is_lost_at_its_timeout(tmp_path: Path) -> None:
    with LocalExecutor(n_workers=2, case_timeout=0.3, max_resubmits=0) as executor:
        outcomes = run(executor, tmp_path, {1: 300.0}, n=4)
    assert outcomes[3].lost and 'no resend left (max_resubmits=0)' in outcomes[3].error
    assert sorted(copy_pids(tmp_path, 3)) == [1]


def test_a_driver_records_a_straggler_once(tmp_path: Path) -> None:
    top = make_model(points(12), sequential=False,
                     executor=LocalExecutor(n_workers=2, case_timeout=0.5))
    top.p.hang_once_at = 5.0
    top.p.markers = str(tmp_path)
    top.recorders = [JSONRecorder(str(tmp_path / 'cases.jsonl'))]
    top.run()
    results = top.driver.results
    assert [c.status for c in results] == ['ok'] * 12
    assert [c['p.f_xy'] for c in results] == [expected(i) for i in range(12)]
    recorded = read_cases(str(tmp_path / 'cases.jsonl'))
    assert [c['id'] for c in recorded] == list(range(12))
    assert [c['status'] for c in recorded] == ['ok'] * 12
    top.driver.executor.shutdown()  # (a user's executor stays warm)
    assert_no_workers_left()


@pytest.mark.parametrize('bad, text', [
    (-1, r'^LocalExecutor: max_resubmits must be an int >= 0, got -1 \(int\)'),
    (1.5, r'^LocalExecutor: max_resubmits must be an int >= 0, got 1\.5 \(float\)'),
])
def test_max_resubmits_is_checked(bad, text) -> None:
    with pytest.raises((ValueError, TypeError), match=text):
        LocalExecutor(n_workers=1, max_resubmits=bad)
