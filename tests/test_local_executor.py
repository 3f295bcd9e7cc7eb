"""Executors: LocalExecutor (worker processes) and ThreadExecutor (the same dispatch logic
with threads), used directly and through CaseIteratorDriver(sequential=False): shipping the
model once per worker, lost workers, retries, timeouts, shutdown and argument checks."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import threading
import time
from collections import deque

import pytest

from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.drivers import CaseIteratorDriver
from openmdao_like.errors import CaseError, ExpressionError
from openmdao_like.execution import (BrokenExecutor, CaseOutcome, Executor, LocalExecutor,
                                     SerialExecutor, ThreadExecutor)
from openmdao_like.recorders import SQLiteRecorder, read_cases

LOADS = 0  # how many times this process unpickled a `Worker` component


class Worker(Component):
    """y = 2 x; reports its process and how often that process unpickled it. Dies or raises
    on request: x == exit_at (os._exit), x == kill_at (SIGKILL), x == fail_at (exception)."""

    x = Float(0.0, iotype='in')
    exit_at = Float(-1.0, iotype='in')
    kill_at = Float(-1.0, iotype='in')
    fail_at = Float(-1.0, iotype='in')
    y = Float(0.0, iotype='out')
    pid = Float(0.0, iotype='out')
    loads = Float(0.0, iotype='out')

    def __setstate__(self, state):
        global LOADS
        LOADS += 1
        super().__setstate__(state)

    def execute(self) -> None:
        if self.x == self.exit_at:
            os._exit(3)
        if self.x == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.x == self.fail_at:
            raise RuntimeError(f'model failure at x={self.x}')
        self.y = 2.0 * self.x
        self.pid = os.getpid()
        self.loads = LOADS


class FirstCallFails(Component):
    """Fails on its first call in each process, then y = x + 1."""

    x = Float(0.0, iotype='in')
    y = Float(0.0, iotype='out')
    calls = 0

    def execute(self) -> None:
        type(self).calls += 1
        if type(self).calls == 1:
            raise RuntimeError('first call in this process')
        self.y = self.x + 1.0


def make_model(n=40, executor=None, comp=Worker, **options) -> Assembly:
    """Top assembly: ``comp`` as 'w', run by a parallel CaseIteratorDriver over x = 0..n-1."""
    top = set_as_top(Assembly())
    top.add('w', comp())
    options.setdefault('sequential', False)
    top.add('driver', CaseIteratorDriver(cases=[{'w.x': float(i)} for i in range(n)],
                                         executor=executor, **options))
    top.driver.workflow.add('w')
    top.driver.add_response('w.y')
    return top


def assert_no_workers_left(pids=()) -> None:
    """Every worker process is gone (reaped)."""
    assert multiprocessing.active_children() == []
    for pid in pids:
        if not math.isnan(pid):
            assert not os.path.exists(f'/proc/{int(pid)}'), f'worker {pid} still exists'


def same_cases(a, b) -> None:
    """Cases equal but for their times."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        x.t_start = x.t_end = y.t_start = y.t_end = 0.0
        if x.error is not None:  # tracebacks differ in the executor frames only
            assert x.error.splitlines()[-1] == y.error.splitlines()[-1]
            x.error = y.error
        assert x == y


# -- through the driver ----------------------------------------------------------------------

@pytest.mark.parametrize('executor', [LocalExecutor(n_workers=2), ThreadExecutor(n_workers=2)],
                         ids=['processes', 'threads'])
def test_parallel_results_equal_serial(executor):
    serial = make_model(60, sequential=True, error_policy='RETRY', max_retries=0)
    serial.w.fail_at = 17.0
    serial.run()
    parallel = make_model(60, executor, error_policy='RETRY', max_retries=0)
    parallel.w.fail_at = 17.0
    parallel.run()
    assert [c.status for c in parallel.driver.results].count('failed') == 1
    assert 'RuntimeError: model failure at x=17.0' in parallel.driver.results[17].error
    same_cases(parallel.driver.results, serial.driver.results)
    executor.shutdown()  # a user's executor stays warm until shut down
    assert_no_workers_left()


def test_model_is_shipped_once_per_worker():
    top = make_model(300, LocalExecutor(n_workers=2))
    top.driver.add_response('w.pid')
    top.driver.add_response('w.loads')
    before = LOADS  # thread workers of other tests unpickled in this process
    top.run()
    outputs = [c.outputs for c in top.driver.results]
    assert [o['w.y'] for o in outputs] == [2.0 * i for i in range(300)]
    pids = {o['w.pid'] for o in outputs}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    assert {o['w.loads'] for o in outputs} == {before + 1.0}  # once in each worker
    assert LOADS == before  # and never in this process
    top.driver.executor.shutdown()  # a user's executor stays warm
    assert_no_workers_left(pids)


@pytest.mark.parametrize('how, why', [('exit_at', 'exited with code 3'),
                                      ('kill_at', 'was killed by signal SIGKILL')])
def test_killed_worker_fails_only_its_case(how, why):
    top = make_model(40, LocalExecutor(n_workers=2), error_policy='RETRY', max_retries=0)
    top.driver.add_response('w.pid')
    setattr(top.w, how, 13.0)
    top.run()
    results = top.driver.results
    assert [c.id for c in results] == list(range(40))
    assert [c.status for c in results] == ['ok'] * 13 + ['failed'] + ['ok'] * 26
    lost = results[13]
    assert lost.error.startswith('WorkerLostError: case 13 did not complete: worker ')
    assert f'of LocalExecutor(n_workers=2) {why} while running it' in lost.error
    assert 'infrastructure loss, not an exception raised by the model' in lost.error
    assert math.isnan(lost.outputs['w.y'])
    assert [c.outputs['w.y'] for c in results if c.ok] == [2.0 * i for i in range(40) if i != 13]
    top.driver.executor.shutdown()  # a user's executor stays warm
    assert_no_workers_left({c.outputs['w.pid'] for c in results})


def test_lost_worker_under_abort_raises_and_stops_every_worker():
    top = make_model(40, LocalExecutor(n_workers=2))
    top.w.kill_at = 5.0
    with pytest.raises(CaseError) as info:
        top.run()
    assert str(info.value).startswith("driver: case 5 failed (error_policy='ABORT'): "
                                      "WorkerLostError: case 5 did not complete: worker ")
    assert 'was killed by signal SIGKILL' in str(info.value)
    ids = [c.id for c in top.driver.results]  # cases in flight finished and were recorded
    assert ids == list(range(len(ids))) and len(ids) > 5
    assert [c.id for c in top.driver.results if not c.ok] == [5]
    top.driver.executor.shutdown()  # a user's executor stays warm
    assert_no_workers_left()


def test_lost_case_is_retried_like_a_failed_one():
    top = make_model(10, LocalExecutor(n_workers=2), error_policy='RETRY', max_retries=2)
    top.w.exit_at = 4.0
    top.run()
    case = top.driver.results[4]
    assert (case.status, case.retries) == ('failed', 2)
    assert 'exited with code 3' in case.error
    assert [c.status for c in top.driver.results].count('ok') == 9
    top.driver.executor.shutdown()  # a user's executor stays warm
    assert_no_workers_left()


def test_model_failure_under_abort_in_parallel():
    top = make_model(200, LocalExecutor(n_workers=2))
    top.w.fail_at = 150.0
    with pytest.raises(CaseError, match=r"^driver: case 150 failed \(error_policy='ABORT'\): "
                                        r"RuntimeError: model failure at x=150.0, "
                                        r"raised by component 'w' \(Worker\)$") as info:
        top.run()
    assert 'in execute' in info.value.traceback
    results = top.driver.results  # every case handed out before the abort is recorded
    assert [c.id for c in results] == list(range(len(results))) and len(results) > 150
    assert [c.id for c in results if not c.ok] == [150]
    top.driver.executor.shutdown()  # a user's executor stays warm
    assert_no_workers_left()


def test_retry_recovers_from_transient_failures_in_parallel():
    top = make_model(30, LocalExecutor(n_workers=2), comp=FirstCallFails, error_policy='RETRY',
                     max_retries=2)
    top.run()
    assert [c.status for c in top.driver.results] == ['ok'] * 30
    assert [c.outputs['w.y'] for c in top.driver.results] == [i + 1.0 for i in range(30)]
    assert 1 <= sum(c.retries for c in top.driver.results) <= 2
    assert FirstCallFails.calls == 0  # only the workers ran it
    top.driver.executor.shutdown()  # a user's executor stays warm


def test_recorder_gets_every_parallel_case(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    top = make_model(500, LocalExecutor(n_workers=2), error_policy='RETRY', max_retries=0)
    top.w.fail_at = 99.0
    top.recorders = [SQLiteRecorder('cases.sqlite')]
    top.run()
    rows = read_cases('cases.sqlite')
    assert [r['id'] for r in rows] == list(range(500))
    assert [r['w.x'] for r in rows] == [float(i) for i in range(500)]
    assert rows[99]['status'] == 'failed' and math.isnan(rows[99]['w.y'])
    assert [r['w.y'] for r in rows if r['status'] == 'ok'] == \
        [2.0 * i for i in range(500) if i != 99]
    top.driver.executor.shutdown()  # a user's executor stays warm


def test_driver_in_a_subassembly_is_found_by_path():
    top = set_as_top(Assembly())
    sub = top.add('sub', Assembly())
    sub.add('w', Worker())
    sub.add('driver', CaseIteratorDriver(cases=[{'w.x': float(i)} for i in range(20)],
                                         sequential=False, executor=LocalExecutor(2)))
    sub.driver.workflow.add('w')
    sub.driver.add_response('w.y * 3')
    top.driver.workflow.add('sub')
    top.run()
    assert [c.outputs['w.y * 3'] for c in sub.driver.results] == [6.0 * i for i in range(20)]
    assert sub.driver.results[0].driver == 'sub.driver'
    sub.driver.executor.shutdown()  # a user's executor stays warm
    assert_no_workers_left()


def test_bad_case_midway_raises_after_the_cases_in_flight():
    cases = [{'w.x': float(i)} for i in range(100)] + [{'w.nope': 1.0}]
    top = make_model(0, LocalExecutor(n_workers=2))
    top.driver.cases = cases
    with pytest.raises(ExpressionError, match=r"^driver: case 100: cannot set 'w.nope'"):
        top.run()
    assert [c.id for c in top.driver.results] == list(range(100))
    top.driver.executor.shutdown()  # a user's executor stays warm
    assert_no_workers_left()


def test_interrupt_stops_every_worker():
    def cases():
        for i in range(10_000):
            if i == 3000:
                raise KeyboardInterrupt
            yield {'w.x': float(i)}

    top = make_model(0, LocalExecutor(n_workers=2))
    top.driver.cases = cases()
    with pytest.raises(KeyboardInterrupt):
        top.run()
    assert_no_workers_left()


class Unpicklable(Worker):
    """A component holding a lock, which does not pickle."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()


class NotLoadable(Worker):
    """A component that pickles but cannot be loaded in a worker."""

    def __setstate__(self, state):
        raise RuntimeError('this component cannot be unpickled')


def test_model_that_cannot_load_in_the_workers_breaks_the_run():
    top = make_model(5, LocalExecutor(n_workers=2), comp=NotLoadable)
    with pytest.raises(BrokenExecutor) as info:
        top.run()
    assert str(info.value).startswith('driver: LocalExecutor(n_workers=2): worker ')
    assert str(info.value).endswith('could not load the case runner (initializer failed): '
                                    'RuntimeError: this component cannot be unpickled')
    assert 'in __setstate__' in info.value.traceback
    assert_no_workers_left()  # a broken executor is shut down


def test_unpicklable_model_names_the_driver():
    top = make_model(5, LocalExecutor(n_workers=2), comp=Unpicklable)
    with pytest.raises(TypeError, match=r"^driver: cannot ship the model to the workers of "
                                        r"LocalExecutor\(n_workers=2\) \(sequential=False\): "
                                        r".*cannot pickle"):
        top.run()
    assert_no_workers_left()


# -- the executors directly ------------------------------------------------------------------

class Square:
    """A case runner: y = x**2; 'exit' ends the worker (SystemExit / os._exit), 'sleep' sleeps."""

    def __call__(self, case_id, inputs):
        if inputs.get('exit'):
            if multiprocessing.current_process().name.startswith('openmdao_like-worker'):
                os._exit(1)
            raise SystemExit('bye')
        time.sleep(inputs.get('sleep', 0.0))
        return CaseOutcome(case_id, {'y': inputs['x'] ** 2})


class Unloadable:
    """Pickles, but cannot be unpickled."""

    def __reduce__(self):
        return (_explode, ())

    def __call__(self, case_id, inputs):  # pragma: no cover - never loaded
        return CaseOutcome(case_id, {})


def _explode():
    raise RuntimeError('cannot load this runner')


EXECUTORS = [pytest.param(lambda: LocalExecutor(n_workers=2), id='processes'),
             pytest.param(lambda: ThreadExecutor(n_workers=2), id='threads')]


@pytest.mark.parametrize('make', EXECUTORS)
def test_run_cases_yields_every_outcome(make):
    with make() as executor:
        executor.start(Square())
        outcomes = list(executor.run_cases((i, {'x': i}) for i in range(1000)))
    assert sorted(o.id for o in outcomes) == list(range(1000))
    assert all(o.outputs == {'y': o.id ** 2} and o.status == 'ok' for o in outcomes)
    assert_no_workers_left()


@pytest.mark.parametrize('make', EXECUTORS)
def test_lost_worker_is_replaced(make):
    cases = [(i, {'x': i, 'exit': i in (3, 11)}) for i in range(30)]
    with make() as executor:
        executor.start(Square())
        outcomes = {o.id: o for o in executor.run_cases(cases)}
    assert sorted(outcomes) == list(range(30))
    assert sorted(i for i, o in outcomes.items() if o.lost) == [3, 11]
    assert outcomes[3].status == 'failed' and outcomes[3].outputs is None
    assert 'WorkerLostError: case 3 did not complete' in outcomes[3].error
    assert all(o.outputs == {'y': i * i} for i, o in outcomes.items() if i not in (3, 11))
    assert_no_workers_left()


@pytest.mark.parametrize('make', EXECUTORS)
def test_feed_is_asked_again_after_it_ran_dry(make):
    feed = deque([(0, {'x': 2})])

    class Feed:
        def __iter__(self):
            return self

        def __next__(self):
            if not feed:
                raise StopIteration
            return feed.popleft()

    seen = []
    with make() as executor:
        executor.start(Square())
        for outcome in executor.run_cases(Feed()):
            seen.append(outcome.id)
            if len(seen) < 3:
                feed.append((outcome.id + 1, {'x': 3}))  # e.g. a retry, put back afterwards
    assert seen == [0, 1, 2]


def test_cases_are_pulled_lazily():
    pulled = []

    def cases():
        for i in range(100_000):
            pulled.append(i)
            yield i, {'x': i}

    executor = LocalExecutor(n_workers=2)
    executor.start(Square())
    try:
        outcomes = executor.run_cases(cases())
        next(outcomes)
        assert len(pulled) <= 2 * LocalExecutor.max_chunk
        outcomes.close()
    finally:
        executor.shutdown(cancel_futures=True)
    assert_no_workers_left()


@pytest.mark.parametrize('make', EXECUTORS)
def test_runner_that_cannot_load_breaks_the_executor(make):
    executor = make()
    executor.start(Unloadable())
    with pytest.raises(BrokenExecutor) as info:
        list(executor.run_cases([(0, {})]))
    assert 'could not load the case runner (initializer failed): RuntimeError: cannot load ' \
           'this runner' in str(info.value)
    assert 'Traceback' in info.value.traceback
    with pytest.raises(BrokenExecutor):
        executor.run_cases([(0, {})])
    executor.shutdown()
    assert_no_workers_left()


def test_case_timeout_stops_the_case():
    with LocalExecutor(n_workers=2, case_timeout=0.5, max_resubmits=0) as executor:
        executor.start(Square())
        outcomes = {o.id: o for o in executor.run_cases(
            [(0, {'x': 1}), (1, {'x': 2, 'sleep': 60.0}), (2, {'x': 3})])}
    assert outcomes[1].lost and 'case 1 ran longer than case_timeout=0.5 s, with no resend ' \
        'left (max_resubmits=0)' in outcomes[1].error
    assert outcomes[0].outputs == {'y': 1} and outcomes[2].outputs == {'y': 9}
    assert_no_workers_left()


def test_outputs_that_cannot_travel_fail_the_case():
    class Lambdas:
        def __call__(self, case_id, inputs):
            return CaseOutcome(case_id, {'f': lambda: 1})

    with LocalExecutor(n_workers=1) as executor:
        executor.start(Lambdas())
        [outcome] = executor.run_cases([(0, {})])
    assert outcome.status == 'failed' and 'outputs of case 0 cannot be sent back' in \
        outcome.error


def test_life_cycle():
    executor = SerialExecutor()
    with pytest.raises(RuntimeError, match=r'not started; call start\(runner\)'):
        executor.run_cases([])
    with pytest.raises(TypeError, match='expected a callable case runner'):
        executor.start(42)
    executor.start(Square())
    with pytest.raises(RuntimeError, match=r'already started; call shutdown\(\)'):
        executor.start(Square())
    assert [o.outputs for o in executor.run_cases([(0, {'x': 3})])] == [{'y': 9}]
    executor.shutdown()
    executor.shutdown()  # idempotent
    executor.start(Square())  # and startable again
    assert executor.running
    executor.shutdown()
    local = LocalExecutor(n_workers=1)
    local.shutdown()  # before start: nothing to do
    with pytest.raises(TypeError, match=r'^LocalExecutor\(n_workers=1\): cannot pickle the '
                                        r'case runner'):
        local.start(threading.Lock().acquire)
    assert_no_workers_left()


def test_executor_pickles_its_configuration_only():
    import pickle
    executor = LocalExecutor(n_workers=3, case_timeout=2.0)
    executor.start(Square())
    try:
        copy = pickle.loads(pickle.dumps(executor))
    finally:
        executor.shutdown()
    assert isinstance(copy, Executor) and not copy.running
    assert (copy.n_workers, copy.case_timeout) == (3, 2.0)


@pytest.mark.parametrize('kwargs, exc, text', [
    ({'n_workers': 0}, ValueError, 'n_workers must be an int >= 1 or None, got 0'),
    ({'n_workers': 'two'}, TypeError, "n_workers must be an int >= 1 or None, got 'two' (str)"),
    ({'n_workers': 2.0}, TypeError, 'n_workers must be an int >= 1 or None, got 2.0 (float)'),
    ({'mp_context': 'threads'}, ValueError, "mp_context must be None or one of"),
    ({'case_timeout': -1}, ValueError, 'case_timeout must be a number > 0 or None, got -1 (int)'),
])
def test_bad_arguments(kwargs, exc, text):
    with pytest.raises(exc) as info:
        LocalExecutor(**kwargs)
    assert str(info.value).startswith(f'LocalExecutor: {text}')


def test_default_is_one_worker_per_cpu():
    assert LocalExecutor().n_workers == os.cpu_count()
