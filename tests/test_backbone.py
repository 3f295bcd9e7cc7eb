"""The execution backbone: one dispatch loop for every executor, seen from outside.

Warm executors across a driver's runs, the chunk policy (guided self-scheduling when the case
count is known), a third-party pool plugged into the loop, frozen (SIGSTOPped) workers detected
and their case retried, nothing left behind after shutdown or Ctrl-C, and the executors'
declared options."""

from __future__ import annotations

import multiprocessing
import os
import signal
import textwrap
import threading
import time
from collections import deque
from typing import Any

import pytest

from openmdao_like import (Assembly, Component, Float, Str, create, get_available_types,
                           set_as_top)
from openmdao_like.drivers import CaseIteratorDriver
from openmdao_like.drivers.doe import DOEDriver, FullFactorial
from openmdao_like.execution import CaseOutcome, LocalExecutor, PoolExecutor, ThreadExecutor
from openmdao_like.execution.pools import ThreadWorkerPool
from openmdao_like.options import OptionError, UnknownOptionError

from conftest import refresh_factories


class Marked(Component):
    """y = 3 x, with the pid of the process that ran it; stops its own process (SIGSTOP) when
    x == stop_at the first time (a marker file in ``markers`` remembers it)."""

    x = Float(0.0, iotype='in')
    scale = Float(3.0, iotype='in')
    stop_at = Float(-1.0, iotype='in')
    markers = Str('', iotype='in')
    y = Float(0.0, iotype='out')
    pid = Float(0.0, iotype='out')

    def execute(self) -> None:
        if self.x == self.stop_at and _first_time(self.markers, self.x):
            os.kill(os.getpid(), signal.SIGSTOP)
            time.sleep(300.0)  # (only reached if the stop comes late: the case is still on)
        self.y = self.scale * self.x
        self.pid = os.getpid()


def _first_time(markers: str, x: float) -> bool:
    try:
        os.close(os.open(os.path.join(markers, f'stop-{x!r}'), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def model(n: int, executor: Any = None, **options: Any) -> Assembly:
    top = set_as_top(Assembly())
    top.add('m', Marked())
    top.add('driver', CaseIteratorDriver(cases=[{'m.x': float(i)} for i in range(n)],
                                         sequential=False, executor=executor, **options))
    top.driver.workflow.add('m')
    top.driver.add_response('m.y')
    top.driver.add_response('m.pid')
    return top


def workers_left() -> list[Any]:
    return multiprocessing.active_children()


# -- warm executors ---------------------------------------------------------------------------

def test_a_users_executor_stays_warm_across_runs_and_gets_the_model_again():
    with LocalExecutor(n_workers=2) as executor:
        top = model(40, executor)
        top.run()
        first = {c.outputs['m.pid'] for c in top.driver.results}
        top.m.scale = 5.0  # the next run ships the model as it is now, to the same workers
        top.run()
        second = {c.outputs['m.pid'] for c in top.driver.results}
        assert [c.outputs['m.y'] for c in top.driver.results] == [5.0 * i for i in range(40)]
        assert executor.running and second == first and len(first) == 2
    assert workers_left() == []  # the with block ended it


def test_an_executor_the_driver_made_is_shut_down_after_the_run():
    top = model(20)  # sequential=False and no executor: the driver makes a LocalExecutor
    top.run()
    assert [c.outputs['m.y'] for c in top.driver.results] == [3.0 * i for i in range(20)]
    assert workers_left() == []


def test_ctrl_c_shuts_a_users_executor_down():
    def cases():
        for i in range(10_000):
            if i == 500:
                raise KeyboardInterrupt
            yield {'m.x': float(i)}

    executor = LocalExecutor(n_workers=2)
    top = model(0, executor)
    top.driver.cases = cases()
    with pytest.raises(KeyboardInterrupt):
        top.run()
    assert not executor.running and workers_left() == []


# -- the chunk policy, through a pool of our own ----------------------------------------------

class RecordingPool(ThreadWorkerPool):
    """Threads, remembering the size of every chunk sent (a third-party pool in miniature)."""

    sizes: list[int] = []

    def send(self, worker: int, chunk: list) -> None:
        type(self).sizes.append(len(chunk))
        super().send(worker, chunk)


class RecordingExecutor(ThreadExecutor):
    """The loop over `RecordingPool`: nothing else to write for a new executor."""

    pool_class = RecordingPool


def test_known_case_count_gives_guided_self_scheduling():
    RecordingPool.sizes = []
    with RecordingExecutor(n_workers=4) as executor:
        top = set_as_top(Assembly())
        top.add('m', Marked())
        top.add('driver', DOEDriver(FullFactorial(num_levels=20), sequential=False,
                                    executor=executor))
        top.driver.add_parameter('m.x', low=0.0, high=19.0)
        top.driver.add_parameter('m.scale', low=1.0, high=2.0)
        top.driver.workflow.add('m')
        top.run()
    sizes = RecordingPool.sizes
    assert sum(sizes) == 400 and len(top.driver.results) == 400
    # each chunk is a share of what was left (400 / (2 chunks per worker * 4 workers) first),
    # shrinking towards the end
    assert sizes[:8] == sorted(sizes[:8], reverse=True) and sizes[0] == 50
    assert sizes[-1] == 1 and max(sizes[8:]) < sizes[7]


def test_unknown_case_count_grows_chunks_from_one():
    RecordingPool.sizes = []

    def endless():
        for i in range(3000):
            yield {'m.x': float(i)}

    with RecordingExecutor(n_workers=2) as executor:
        top = model(0, executor)
        top.driver.cases = endless()
        top.run()
    sizes = RecordingPool.sizes
    assert sizes[0] == 1 and max(sizes) > 8 and sum(sizes) == 3000


def test_executor_plugins_register_under_an_entry_point_group(tmp_path, on_sys_path):
    dist = tmp_path / 'farm_plugin-1.0.dist-info'
    dist.mkdir()
    (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: farm-plugin\nVersion: 1.0\n')
    (dist / 'entry_points.txt').write_text(
        '[openmdao_like.executor]\nfarm_plugin.Farm = farm_plugin:Farm\n')
    (tmp_path / 'farm_plugin.py').write_text(textwrap.dedent('''
        from openmdao_like.execution import ThreadExecutor

        class Farm(ThreadExecutor):
            """A third-party executor: the loop with its own pool class."""
    '''))
    on_sys_path(tmp_path)
    refresh_factories()
    found = {t.name: t for t in get_available_types('executor')}
    assert found['farm_plugin.Farm'].distribution == 'farm-plugin'
    assert {'openmdao_like.execution.LocalExecutor', 'openmdao_like.execution.ThreadExecutor',
            'openmdao_like.distributed.RAMExecutor'} <= set(found)
    with create('farm_plugin.Farm', n_workers=2) as executor:
        assert isinstance(executor, PoolExecutor)
        top = model(10, executor)
        top.run()
    assert [c.outputs['m.y'] for c in top.driver.results] == [3.0 * i for i in range(10)]


# -- frozen and lost workers ------------------------------------------------------------------

def test_a_stopped_worker_is_replaced_and_its_case_run_again(tmp_path):
    with LocalExecutor(n_workers=2) as executor:
        top = model(12, executor, error_policy='RETRY', max_retries=1)
        top.m.stop_at = 5.0
        top.m.markers = str(tmp_path)
        start = time.monotonic()
        top.run()
        took = time.monotonic() - start
    results = top.driver.results
    assert [c.status for c in results] == ['ok'] * 12
    assert [c.retries for c in results] == [0] * 5 + [1] + [0] * 6
    assert took < 10.0  # detected within seconds although no case_timeout is set
    assert workers_left() == []


def test_a_stopped_worker_without_retries_fails_its_case_as_lost(tmp_path):
    with LocalExecutor(n_workers=2) as executor:
        top = model(6, executor, error_policy='RETRY', max_retries=0)
        top.m.stop_at = 2.0
        top.m.markers = str(tmp_path)
        top.run()
    lost = top.driver.results[2]
    assert lost.status == 'failed'
    assert 'stopped responding (process stopped for' in lost.error
    assert 'infrastructure loss' in lost.error


def test_shutdown_leaves_no_process_and_no_thread():
    before = set(threading.enumerate())
    for make in (lambda: LocalExecutor(n_workers=3), lambda: ThreadExecutor(n_workers=3)):
        executor = make()
        executor.start(_square)
        pids = [p.pid for p in workers_left()]
        list(executor.run((i, {'x': i}) for i in range(50)))
        executor.shutdown()
        executor.shutdown()  # idempotent
        assert workers_left() == []
        assert not any(os.path.exists(f'/proc/{pid}') for pid in pids)
        deadline = time.monotonic() + 5.0
        while set(threading.enumerate()) - before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(threading.enumerate()) - before == set()


def _square(case_id: int, inputs: dict) -> CaseOutcome:
    return CaseOutcome(case_id, {'y': inputs['x'] ** 2})


# -- declared options -------------------------------------------------------------------------

@pytest.mark.parametrize('cls', [LocalExecutor, ThreadExecutor], ids=lambda c: c.__name__)
@pytest.mark.parametrize('kwargs, kind, text', [
    ({'n_wokers': 2}, UnknownOptionError, "unknown option 'n_wokers'; did you mean 'n_workers'?"),
    ({'n_workers': 'two'}, TypeError, "n_workers must be an int >= 1 or None, got 'two' (str)"),
    ({'n_workers': 0}, OptionError, 'n_workers must be an int >= 1 or None, got 0 (int)'),
    ({'case_timeout': float('nan')}, OptionError,
     'case_timeout must be a number > 0 or None, got nan (float)'),
    ({'case_timeout': '1'}, TypeError, "case_timeout must be a number > 0 or None, got '1'"),
])
def test_bad_executor_options_name_class_option_and_value(cls, kwargs, kind, text):
    with pytest.raises(kind) as info:
        cls(**kwargs)
    assert str(info.value).startswith(f'{cls.__name__}: {text}')


def test_options_are_checked_when_set_as_attributes():
    executor = LocalExecutor(n_workers=2)
    with pytest.raises(OptionError, match=r'^LocalExecutor: case_timeout must be a number > 0 '
                                          r'or None, got -1\.0 \(float\)'):
        executor.case_timeout = -1.0
    executor.case_timeout = 2
    assert executor.case_timeout == 2.0 and isinstance(executor.case_timeout, float)
    assert dict(executor.options.items()) == {'case_timeout': 2.0, 'max_resubmits': 5,
                                              'n_workers': 2, 'mp_context': None}


def test_every_wait_of_the_loop_is_bounded():
    """A run whose feed raises after cases are in flight returns the outcomes in flight first,
    then raises (the loop never waits forever on a feed or a worker)."""
    feed = deque((i, {'x': i}) for i in range(5))

    def cases():
        while feed:
            yield feed.popleft()
        raise RuntimeError('the feed broke')

    with ThreadExecutor(n_workers=2) as executor:
        executor.start(_square)
        seen = []
        with pytest.raises(RuntimeError, match='the feed broke'):
            for outcome in executor.run(cases()):
                seen.append(outcome.id)
    assert sorted(seen) == list(range(5))


@pytest.mark.parametrize('n', [1, 7])
def test_a_feed_of_known_length_is_shared_out_whole(n):
    with ThreadExecutor(n_workers=3) as executor:
        executor.start(_square)
        outcomes = list(executor.run([(i, {'x': i}) for i in range(n)]))
    assert sorted(o.id for o in outcomes) == list(range(n))
