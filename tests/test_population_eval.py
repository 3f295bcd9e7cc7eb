"""ScipyOptimizer's differential_evolution, its populations evaluated in this process or as
cases of an executor (LocalExecutor, RAMExecutor): same seed, same optimum; the model shipped
once per worker or server; failed members count as +inf; servers released on Ctrl-C or error;
bad option combinations."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from openmdao_like import Assembly, Component, ConfigError, Float, ValidationError, set_as_top
from openmdao_like.distributed import RAMExecutor
from openmdao_like.drivers import ScipyOptimizer
from openmdao_like.execution import LocalExecutor
from openmdao_like.recorders import JSONRecorder, read_cases
from openmdao_like.resources import LocalAllocator
from openmdao_like.resources.manager import ResourceAllocationManager

from remote_servers import pid_alive

TESTS = Path(__file__).resolve().parent
CONSTRAINED = (7.0 + 1.0 / 6.0, -7.0 - 5.0 / 6.0, -27.0 - 1.0 / 12.0)
UNCONSTRAINED = (20.0 / 3.0, -22.0 / 3.0, -27.0 - 1.0 / 3.0)
#: How many times this process unpickled a `Bowl` (1 in a worker or server the model was shipped
#: to once for the whole optimizer run).
LOADS = 0


class Bowl(Component):
    """f(x, y) = (x-3)^2 + xy + (y+4)^2 - 3, plus the pid of the process running it and how often
    that process received the model. In a process the model was shipped to, x above ``fail_above``
    raises and x below ``exit_below`` ends the process."""

    x = Float(0.0, iotype='in', low=-50.0, high=50.0)
    y = Float(0.0, iotype='in', low=-50.0, high=50.0)
    fail_above = Float(1e9, iotype='in')
    exit_below = Float(-1e9, iotype='in')
    f_xy = Float(0.0, iotype='out')
    pid = Float(0.0, iotype='out')
    loads = Float(0.0, iotype='out')

    def __init__(self) -> None:
        super().__init__()
        self._home = os.getpid()

    def __setstate__(self, state: dict) -> None:
        global LOADS
        LOADS += 1
        super().__setstate__(state)

    def execute(self) -> None:
        if os.getpid() != self._home:
            if self.x > self.fail_above:
                raise ValueError(f'x={self.x} is above fail_above={self.fail_above}')
            if self.x < self.exit_below:
                os._exit(3)
        self.f_xy = (self.x - 3.0) ** 2 + self.x * self.y + (self.y + 4.0) ** 2 - 3.0
        self.pid = os.getpid()
        self.loads = LOADS


class Model(Assembly):
    """The paraboloid under differential_evolution (seeded, deferred updating)."""

    def __init__(self, constrained: bool = True, **driver_args: Any):
        self._constrained, self._driver_args = constrained, driver_args
        super().__init__()

    def configure(self) -> None:
        self.add('p', Bowl())
        options = {'seed': 7, 'popsize': 10, 'updating': 'deferred'}
        self.add('driver', ScipyOptimizer(method='differential_evolution', maxiter=60, tol=1e-6,
                                          options=options, **self._driver_args))
        self.driver.workflow.add('p')
        self.driver.add_parameter('p.x')
        self.driver.add_parameter('p.y')
        self.driver.add_objective('p.f_xy')
        self.driver.add_response('p.pid')
        self.driver.add_response('p.loads')
        if self._constrained:
            self.driver.add_constraint('p.x - p.y >= 15.0')


def parent_of(pid: int) -> int:
    """The parent pid of a running process."""
    with open(f'/proc/{pid}/stat') as f:
        return int(f.read().rsplit(') ', 1)[1].split()[1])


def our_pilots() -> list[int]:
    """Pids of the allocated servers (pilots) this test process started and that still run."""
    done = subprocess.run(['pgrep', '-P', str(os.getpid()), '-f', 'openmdao_like.resources.pilot'],
                          capture_output=True, text=True)
    return [int(pid) for pid in done.stdout.split()]


def eventually(check: Any, limit: float = 60.0) -> bool:
    """Poll ``check()`` until true (the limit only keeps a broken test from hanging)."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def ram() -> Iterator[ResourceAllocationManager]:
    """A RAM of this host only; every server it still has is stopped after the test."""
    manager = ResourceAllocationManager([LocalAllocator(max_load=None)])
    try:
        yield manager
    finally:
        manager.shutdown()


def ram_executor(ram: ResourceAllocationManager) -> RAMExecutor:
    """Two servers of ``ram`` that can import this module (the model's classes)."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get('PYTHONPATH')]))
    return RAMExecutor(res_desc={'job_environment': {'PYTHONPATH': path}}, ram=ram,
                       max_servers=2)


def run(top: Model, path: Path) -> list[dict[str, Any]]:
    """Run ``top`` recording into ``path``; the recorded cases."""
    top.recorders = [JSONRecorder(path)]
    top.run()
    return read_cases(str(path))


# -- same seed, same optimum ----------------------------------------------------------------------
@pytest.mark.parametrize('where, constrained', [('local', True), ('local', False), ('ram', True)])
def test_population_through_executor_finds_the_sequential_optimum(where, constrained, ram,
                                                                   tmp_path):
    here = set_as_top(Model(constrained))
    run(here, tmp_path / 'here.jsonl')
    executor = LocalExecutor(n_workers=2) if where == 'local' else ram_executor(ram)
    there = set_as_top(Model(constrained, sequential=False, executor=executor))
    cases = run(there, tmp_path / 'there.jsonl')

    expected = CONSTRAINED if constrained else UNCONSTRAINED
    for top in (here, there):
        assert top.driver.success is True, top.driver.message
        assert (top.p.x, top.p.y, top.p.f_xy) == pytest.approx(expected, abs=1e-3)
    assert (there.p.x, there.p.y) == pytest.approx((here.p.x, here.p.y), abs=1e-9)
    assert there.driver.message == here.driver.message
    assert there.driver.iterations == here.driver.iterations
    # every member ran elsewhere, on a copy of the model received once; the optimum is then
    # evaluated here, so the model holds it
    members, final = cases[:-1], cases[-1]
    assert len(cases) == there.driver.nfev and [c['id'] for c in cases] == \
        list(range(len(cases)))
    assert [c['iteration'] for c in cases] == [f'driver:{i}' for i in range(len(cases))]
    assert all(c['status'] == 'ok' for c in cases)
    pids = {c['p.pid'] for c in members}
    assert os.getpid() not in pids and final['p.pid'] == os.getpid()
    assert {c['p.loads'] for c in members} == {1.0}
    assert len(pids) == 2 if where == 'local' else len(pids) >= 1
    assert (final['p.x'], final['p.y']) == (there.p.x, there.p.y)
    executor.shutdown()  # a user's executor stays warm until shut down


# -- failed members -------------------------------------------------------------------------------
def test_failed_and_lost_members_count_as_inf(tmp_path, caplog):
    top = set_as_top(Model(sequential=False, executor=LocalExecutor(n_workers=2)))
    top.p.fail_above, top.p.exit_below = 40.0, -45.0
    with caplog.at_level(logging.WARNING, logger='openmdao_like.drivers.population'):
        cases = run(top, tmp_path / 'cases.jsonl')
    assert top.driver.success is True
    assert (top.p.x, top.p.y, top.p.f_xy) == pytest.approx(CONSTRAINED, abs=1e-3)
    failed = [c for c in cases if c['status'] == 'failed']
    assert any('ValueError: x=' in c['error'] for c in failed)
    assert any('WorkerLostError' in c['error'] for c in failed)
    assert all(np.isnan(c['p.f_xy']) for c in failed)
    messages = [r.getMessage() for r in caplog.records]
    assert any('failed; its objective counts as +inf: ValueError: x=' in m for m in messages)
    assert any('was lost; its objective counts as +inf: WorkerLostError' in m
               for m in messages)
    top.driver.executor.shutdown()  # a user's executor stays warm until shut down


# -- Ctrl-C or an error in the middle -------------------------------------------------------------
class Interrupting(JSONRecorder):
    """Records normally, notes the processes that ran the cases (and their parents), and raises
    ``error`` when case ``at`` comes."""

    def __init__(self, path: Path, at: int, error: BaseException):
        super().__init__(path)
        self.at, self.error = at, error
        self.pids: set[int] = set()
        self.parents: set[int] = set()
        self.pilots: list[int] = []

    def record(self, case: Any) -> None:
        super().record(case)
        pid = int(case.outputs['p.pid'])
        if pid != os.getpid() and pid not in self.pids:
            self.pids.add(pid)
            self.parents.add(parent_of(pid))
        if case.id == self.at:
            self.pilots = our_pilots()
            raise self.error


@pytest.mark.parametrize('where, error', [('local', KeyboardInterrupt()),
                                          ('local', RuntimeError('disk full')),
                                          ('ram', KeyboardInterrupt())])
def test_interrupt_releases_the_workers(where, error, ram, tmp_path):
    executor = LocalExecutor(n_workers=2) if where == 'local' else ram_executor(ram)
    top = set_as_top(Model(sequential=False, executor=executor))
    recorder = Interrupting(tmp_path / 'cases.jsonl', at=35, error=error)
    top.recorders = [recorder]
    with pytest.raises(type(error)):
        top.run()
    assert recorder.pids
    if isinstance(error, KeyboardInterrupt):
        assert not executor.running  # Ctrl-C shuts even a user's executor down
    else:
        assert executor.running  # a user's executor stays warm after a failed run
        executor.shutdown()
    assert eventually(lambda: not any(pid_alive(pid) for pid in recorder.pids))
    if where == 'ram':
        assert recorder.pilots and set(recorder.pilots) >= recorder.parents
        assert eventually(lambda: not our_pilots()), our_pilots()
    else:
        assert recorder.parents == {os.getpid()}
    assert read_cases(str(recorder.path))[-1]['id'] == 35


# -- bad settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs, message', [
    ({'method': 'SLSQP', 'sequential': False},
     "ScipyOptimizer: sequential=False needs a method that evaluates populations: only "
     "differential_evolution does; method 'SLSQP' evaluates one point at a time (use "
     "sequential=True)"),
    ({'method': 'differential_evolution', 'sequential': 'no'},
     "ScipyOptimizer: sequential must be True or False, got 'no' (str)"),
    ({'method': 'differential_evolution', 'executor': 2},
     'ScipyOptimizer: executor must be an openmdao_like.execution.Executor (e.g. '
     'LocalExecutor(n_workers=4)) or None, got 2 (int)'),
    ({'method': 'differential_evolution', 'options': {'workers': 2, 'popsize': 5}},
     "ScipyOptimizer: unknown option(s) 'workers' for method 'differential_evolution'; "
     "expected some of strategy, popsize, mutation, recombination, seed, polish, init, atol, "
     "updating"),
    ({'method': 'differential_evolution', 'sequential': False,
      'options': {'updating': 'immediate'}},
     "ScipyOptimizer: options['updating'] must be 'deferred' with sequential=False (a "
     "population is evaluated at once), got 'immediate' (str)"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValidationError) as info:
        ScipyOptimizer(**kwargs)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_bad_combinations_found_at_run():
    top = set_as_top(Model(constrained=False))
    top.driver.method = 'COBYLA'
    top.driver.sequential = False
    with pytest.raises(ValidationError, match=r"^driver \(ScipyOptimizer\): sequential=False "
                                              r"needs .* method 'COBYLA' evaluates"):
        top.run()
    top.driver.method = 'differential_evolution'
    top.driver.options['updating'] = 'immediate'
    with pytest.raises(ValidationError, match=r"options\['updating'\] must be 'deferred'"):
        top.run()


class Free(Component):
    """A variable without bounds of its own."""

    a = Float(0.0, iotype='in')
    b = Float(iotype='out')

    def execute(self) -> None:
        self.b = self.a ** 2


def test_unbounded_parameter_is_refused():
    top = set_as_top(Assembly())
    top.add('c', Free())
    top.add('driver', ScipyOptimizer(method='differential_evolution'))
    top.driver.workflow.add('c')
    top.driver.add_parameter('c.a', low=-np.inf, high=1.0)
    top.driver.add_objective('c.b')
    with pytest.raises(ConfigError) as info:
        top.run()
    assert str(info.value) == ("driver (ScipyOptimizer), method 'differential_evolution': "
                               "parameter 'c.a' needs finite bounds (the method searches between "
                               "them), got low=-inf, high=1.0")
