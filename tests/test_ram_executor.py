"""RAMExecutor over a LocalAllocator: case-running drivers with sequential=False on servers
from the resource allocation manager — results equal to the sequential run, the model shipped
once per server, lost servers (killed, hung) retried or recorded, model errors counted apart,
servers released on Ctrl-C, resource-description errors, reuse, pickling and the progress bar."""

from __future__ import annotations

import math
import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import cloudpickle
import pytest

from openmdao_like import Assembly, set_as_top
from openmdao_like.distributed import RAMExecutor
from openmdao_like.drivers import CaseIteratorDriver, DOEDriver
from openmdao_like.drivers.doe import LatinHypercube
from openmdao_like.errors import AllocationError, CaseError
from openmdao_like.execution import BrokenExecutor
from openmdao_like.recorders import SQLiteRecorder, read_cases
from openmdao_like.resources import LocalAllocator
from openmdao_like.resources.manager import ResourceAllocationManager

from ram_models import NotLoadable, Probe, eventually, leftovers

TESTS = Path(__file__).resolve().parent
#: The servers import the test components from this directory.
DESC = {'job_environment': {'PYTHONPATH': os.pathsep.join(
    filter(None, [str(TESTS), os.environ.get('PYTHONPATH')]))}}


def paraboloid(x: float, y: float) -> float:
    """What Probe computes."""
    return (x - 3.0) ** 2 + x * y + (y + 4.0) ** 2 - 3.0


# -- servers and what they leave behind -------------------------------------------------------

def assert_released(ram: ResourceAllocationManager) -> None:
    """Every server the RAM allocated is released: no process, no directory left."""
    allocator = ram.get_allocator('LocalHost')
    assert eventually(lambda: allocator.in_use == 0), f'{allocator.in_use} servers still in use'
    workdir = Path(allocator.workdir)
    assert eventually(lambda: not leftovers(workdir)), leftovers(workdir)


@pytest.fixture
def ram(request, tmp_path: Path) -> Iterator[ResourceAllocationManager]:
    """A RAM of a LocalAllocator for three servers at once (or as many as the test's indirect
    parameter says) whose servers live in tmp_path/servers; checks that a test leaves none of
    them behind."""
    workdir = tmp_path / 'servers'
    manager = ResourceAllocationManager([LocalAllocator(
        total_cpus=3, max_load=None, server_limit=getattr(request, 'param', 3),
        workdir=str(workdir))])
    try:
        yield manager
        while EXECUTORS:  # a user's executor stays warm until shut down
            EXECUTORS.pop().shutdown()
        assert_released(manager)
    finally:
        manager.shutdown()


#: The executors of the running test, shut down by the ``ram`` fixture.
EXECUTORS: list[RAMExecutor] = []


def make_executor(ram: ResourceAllocationManager, max_chunk: int | None = None,
                  **options: Any) -> RAMExecutor:
    """A RAMExecutor for two servers of ``ram`` (``max_chunk=1``: a lost server always had
    exactly one case, so that case is the one blamed)."""
    executor = RAMExecutor(res_desc=DESC, max_servers=2, ram=ram, **options)
    EXECUTORS.append(executor)
    if max_chunk is not None:
        executor.max_chunk = max_chunk
    return executor


def make_model(cases: Any = None, doe: Any = None, comp: type = Probe,
               **options: Any) -> Assembly:
    """A Probe (or ``comp``) run by a CaseIteratorDriver over ``cases``, or by a DOEDriver with
    generator ``doe`` over p.x in [-10, 10] and p.y in [0, 20]."""
    top = set_as_top(Assembly())
    top.add('p', comp())
    if doe is None:
        top.add('driver', CaseIteratorDriver(cases=cases, **options))
    else:
        top.add('driver', DOEDriver(doe, **options))
        top.driver.add_parameter('p.x', low=-10.0, high=10.0)
        top.driver.add_parameter('p.y', low=0.0, high=20.0)
    top.driver.workflow.add('p')
    top.driver.add_response('p.f_xy')
    return top


def points(n: int) -> list[dict[str, float]]:
    """``n`` cases with x = case id."""
    return [{'p.x': float(i), 'p.y': 0.5 * i} for i in range(n)]


def expected(i: int) -> float:
    """f_xy of case ``i`` of `points`."""
    return paraboloid(float(i), 0.5 * i)


# -- results ----------------------------------------------------------------------------------

def test_doe_on_servers_equals_the_sequential_run(ram, tmp_path, capsys):
    def doe(**options: Any) -> Assembly:
        top = make_model(doe=LatinHypercube(num_samples=200, seed=11), error_policy='RETRY',
                         max_retries=0, **options)
        top.p.x_limit = 8.0  # about a tenth of the cases fail in the model
        top.driver.add_response('p.pid')
        top.driver.add_response('p.loads')
        return top

    serial = doe()
    serial.run()
    theirs = serial.driver.results
    failed = [c.id for c in theirs if not c.ok]
    assert 5 < len(failed) < 50
    executor = make_executor(ram, case_timeout=600.0)
    allocations = []
    allocate = ram.allocate
    ram.allocate = lambda *args, **kwargs: allocations.append(args) or allocate(*args, **kwargs)
    parallel = doe(sequential=False, executor=executor)
    parallel.p.servers = 2.0
    parallel.recorders = [SQLiteRecorder(tmp_path / 'cases.sqlite')]
    for run, progress in enumerate((False, True)):  # the same executor, run again
        meeting = tmp_path / f'meeting-{progress}'
        meeting.mkdir()
        parallel.p.rendezvous = str(meeting)  # each of the two servers gets cases
        parallel.driver.progress = progress
        parallel.run()
        assert executor.running and len(allocations) == 2  # warm: the same two servers
        assert ('200/200' in capsys.readouterr().err) == progress

        ours = parallel.driver.results
        assert [c.id for c in ours] == list(range(200))
        assert [c.id for c in ours if not c.ok] == failed
        for mine, other in zip(ours, theirs):
            assert (mine.inputs, mine.status, mine.retries) == (other.inputs, other.status, 0)
            if mine.ok:
                assert mine.outputs['p.f_xy'] == other.outputs['p.f_xy']
            else:
                assert math.isnan(mine.outputs['p.f_xy'])
                assert mine.error.splitlines()[-2:] == other.error.splitlines()[-2:]
                assert mine.error.splitlines()[-2].startswith('ValueError: x=')
                assert mine.error.splitlines()[-1] == "raised by component 'p' (Probe)"
        pids = {c.outputs['p.pid'] for c in ours if c.ok}
        assert len(pids) == 2 and os.getpid() not in pids  # two servers, not this process
        # shipped once to each server per run (the same processes: warm)
        assert {c.outputs['p.loads'] for c in ours if c.ok} == {run + 1.0}

        rows = read_cases(tmp_path / 'cases.sqlite')
        assert [r['id'] for r in rows] == list(range(200))
        assert [r['status'] for r in rows] == [c.status for c in theirs]
        assert [r['p.x'] for r in rows] == [c.inputs['p.x'] for c in theirs]
        assert [r['p.f_xy'] for r in rows if r['status'] == 'ok'] == \
            [c.outputs['p.f_xy'] for c in theirs if c.ok]

    copy = pickle.loads(cloudpickle.dumps(parallel)).driver.executor  # as shipped
    assert isinstance(copy, RAMExecutor) and not copy.running and copy.ram is None
    assert (copy.res_desc, copy.max_servers, copy.case_timeout) == (DESC, 2, 600.0)


# -- lost servers and model errors ------------------------------------------------------------

@pytest.mark.parametrize('ram', [1], indirect=True)  # the replacement waits for the release
def test_server_killed_mid_run_is_replaced_and_its_case_retried(ram, tmp_path):
    top = make_model(points(60), sequential=False, executor=make_executor(ram, max_chunk=1),
                     error_policy='RETRY', max_retries=1)
    top.p.kill_server_once_at = 20.0  # SIGKILL the allocated server the first time
    top.p.markers = str(tmp_path)
    top.recorders = [SQLiteRecorder(tmp_path / 'cases.sqlite')]
    top.run()
    results = top.driver.results
    assert [c.status for c in results] == ['ok'] * 60
    assert [c.retries for c in results] == [0] * 20 + [1] + [0] * 39
    assert [c.outputs['p.f_xy'] for c in results] == [expected(i) for i in range(60)]
    rows = read_cases(tmp_path / 'cases.sqlite')
    assert [(r['id'], r['status']) for r in rows] == [(i, 'ok') for i in range(60)]


def test_lost_server_under_abort_is_recorded_then_raises(ram, tmp_path):
    top = make_model(points(100), sequential=False, executor=make_executor(ram))
    top.p.kill_at = 40.0  # every time: also when its chunk's cases run again one by one
    top.recorders = [SQLiteRecorder(tmp_path / 'cases.sqlite')]
    with pytest.raises(CaseError) as info:
        top.run()
    message = str(info.value)
    assert message.startswith("driver: case 40 failed (error_policy='ABORT'): WorkerLostError: "
                              "case 40 did not complete: server LocalHost-")
    assert ' was lost: ' in message
    rows = read_cases(tmp_path / 'cases.sqlite')  # recorded before the error was raised
    assert [r['id'] for r in rows] == list(range(len(rows))) and len(rows) > 40
    assert [r['id'] for r in rows if r['status'] != 'ok'] == [40]
    assert 'infrastructure loss, not an exception raised by the model' in rows[40]['error']
    assert math.isnan(rows[40]['p.f_xy'])


def test_model_errors_and_lost_servers_are_counted_apart(ram, tmp_path):
    top = make_model(points(40), sequential=False, executor=make_executor(ram, max_chunk=1),
                     error_policy='RETRY', max_retries=1)
    top.p.markers = str(tmp_path)
    top.p.fail_at = 5.0                                # the model fails every time
    top.p.kill_once_at = top.p.fail_once_at = 12.0     # lost once, then a model error, then ok
    top.p.kill_at = 30.0                               # kills its server every time
    top.run()
    results = top.driver.results
    bad = {5, 30}
    assert [c.id for c in results if not c.ok] == [5, 30]
    assert [c.retries for c in results] == [{5: 1, 12: 2, 30: 1}.get(i, 0) for i in range(40)]
    assert results[5].error.splitlines()[-2:] == ['RuntimeError: model failure at x=5.0',
                                                  "raised by component 'p' (Probe)"]
    assert 'WorkerLostError' not in results[5].error
    assert results[30].error.startswith('WorkerLostError: case 30 did not complete: server ')
    assert math.isnan(results[5].outputs['p.f_xy']) and math.isnan(results[30].outputs['p.f_xy'])
    assert [c.outputs['p.f_xy'] for c in results if c.id not in bad] == \
        [expected(i) for i in range(40) if i not in bad]


def test_stopped_server_mid_case_is_noticed_and_its_case_retried(ram, tmp_path):
    """A server frozen (SIGSTOP) in the middle of a case that could run for a day is noticed
    within seconds, released, and its case run again elsewhere."""
    top = make_model(points(12), sequential=False, executor=make_executor(ram, max_chunk=1),
                     error_policy='RETRY', max_retries=1)
    top.p.stop_once_at = 5.0
    top.p.markers = str(tmp_path)
    start = time.monotonic()
    top.run()
    took = time.monotonic() - start
    results = top.driver.results
    assert [c.status for c in results] == ['ok'] * 12
    assert [c.retries for c in results] == [0] * 5 + [1] + [0] * 6
    assert took < 20.0  # detection within 10 s, then a new server


def test_case_timeout_reports_a_hanging_case_lost(ram):
    top = make_model(points(10), sequential=False,
                     executor=make_executor(ram, max_chunk=1, case_timeout=1.0,
                                           max_resubmits=0),
                     error_policy='RETRY', max_retries=0)
    top.p.hang_at = 4.0
    top.run()
    results = top.driver.results
    assert [c.status for c in results] == ['ok'] * 4 + ['failed'] + ['ok'] * 5
    assert results[4].error.startswith('WorkerLostError: case 4 did not complete: server ')
    assert 'infrastructure loss' in results[4].error


def test_ram_servers_send_a_straggler_again(ram, tmp_path: Path) -> None:
    """Servers do not say which case of a chunk runs: the chunk (here of one case) is sent
    again once it ran longer than case_timeout per case; the hung server is released."""
    top = make_model(points(8), sequential=False,
                     executor=make_executor(ram, max_chunk=1, case_timeout=1.0))
    top.p.hang_once_at = 4.0
    top.p.markers = str(tmp_path)
    top.run()
    results = top.driver.results
    assert [c.status for c in results] == ['ok'] * 8
    assert [c['p.f_xy'] for c in results] == [expected(i) for i in range(8)]
    assert [c.retries for c in results] == [0] * 8


# -- interrupts and errors --------------------------------------------------------------------

class InterruptingRecorder(SQLiteRecorder):
    """Raises KeyboardInterrupt (as Ctrl-C would) when asked to record case 50."""

    def record(self, case: Any) -> None:
        if case.id == 50:
            raise KeyboardInterrupt
        super().record(case)


def interrupted_cases() -> Iterator[dict[str, float]]:
    """Cases until Ctrl-C arrives while the 100th is read."""
    for i in range(10_000):
        if i == 100:
            raise KeyboardInterrupt
        yield {'p.x': float(i), 'p.y': 1.0}


@pytest.mark.parametrize('where', ['recorder', 'feed'])
def test_interrupt_releases_every_server(ram, tmp_path, where):
    top = make_model(points(10_000), sequential=False, executor=make_executor(ram))
    if where == 'recorder':
        top.recorders = [InterruptingRecorder(tmp_path / 'cases.sqlite')]
    else:
        top.driver.cases = interrupted_cases()
    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        top.run()
    assert_released(ram)
    assert eventually(lambda: not [t for t in set(threading.enumerate()) - before
                                   if t.name.startswith('ram-')]), threading.enumerate()


@pytest.mark.parametrize('kwargs, exc, text', [
    ({'res_desc': {'min_cpu': 2}}, ValueError,
     "(res_desc): unknown key 'min_cpu' (did you mean 'min_cpus'?); known keys: allocator, "),
    ({'res_desc': {'min_cpus': 0}}, ValueError,
     '(res_desc): min_cpus should be a positive integer, got 0 (int)'),
    ({'res_desc': ['min_cpus']}, TypeError,
     "(res_desc): expected a mapping of resource keys to values, got ['min_cpus'] (list)"),
    ({'max_servers': 0}, ValueError, 'max_servers must be an int >= 1 or None, got 0 (int)'),
    ({'case_timeout': -1}, ValueError, 'case_timeout must be a number > 0 or None, got -1 (int)'),
])
def test_bad_arguments_fail_at_construction(kwargs, exc, text):
    with pytest.raises(exc) as info:
        RAMExecutor(**kwargs)
    assert str(info.value).startswith('RAMExecutor')
    assert text in str(info.value)


@pytest.mark.parametrize('desc, refusal', [
    ({'min_cpus': 8}, 'LocalHost refused min_cpus (LocalHost has 3 CPUs, 8 were asked for)'),
    ({'queue_name': 'fast'}, "LocalHost refused queue_name (LocalHost does not support "
                             "'queue_name')"),
])
def test_unservable_description_names_allocator_and_key(ram, desc, refusal):
    executor = RAMExecutor(res_desc=dict(DESC, **desc), ram=ram)
    top = make_model(points(5), sequential=False, executor=executor)
    with pytest.raises(AllocationError) as info:
        top.run()
    assert refusal in str(info.value)
    assert not executor.running


def test_model_that_cannot_load_on_the_servers_breaks_the_run(ram):
    top = make_model(points(5), comp=NotLoadable, sequential=False,
                     executor=make_executor(ram))
    with pytest.raises(BrokenExecutor) as info:
        top.run()
    message = str(info.value)
    assert message.startswith('driver: RAMExecutor(')
    assert message.endswith('could not load the case runner: RuntimeError: this component '
                            'cannot be unpickled')
    assert 'in __setstate__' in info.value.traceback


def test_a_recording_solver_inside_cases_on_servers_is_recorded(ram, tmp_path):
    """The servers' copies of the model have no recorders: the passes of a solver with
    record=True come back with each case's outcome (through the wire codec) and are recorded
    right before their case, numbered 'driver:k|solver:j'."""
    from test_recordings import SellarWithUnits
    top = set_as_top(SellarWithUnits(solver_record=True))
    path = tmp_path / 'cases.sqlite'
    top.recorders = [SQLiteRecorder(str(path))]
    top.add('driver', DOEDriver(LatinHypercube(num_samples=6, seed=3), sequential=False,
                                executor=make_executor(ram)))
    top.driver.workflow.add('solver')
    top.driver.add_parameter('dis1.z1', low=-1.0, high=1.0)
    top.driver.add_response('dis2.y2')
    top.run()
    rows = read_cases(path)
    assert [row['id'] for row in rows] == list(range(len(rows)))
    passes = []
    cases = []
    for row in rows:
        if row['driver'] == 'solver':
            passes.append(row['iteration'])
            continue
        k = len(cases)
        cases.append(row['iteration'])
        assert passes == [f'driver:{k}|solver:{j}' for j in range(len(passes))] and passes
        passes = []
    assert cases == [f'driver:{k}' for k in range(6)] and not passes
