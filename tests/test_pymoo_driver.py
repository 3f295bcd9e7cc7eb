"""PymooDriver: NSGA-II finds the ZDT1 front; GA and DE the constrained optimum of the
paraboloid; constrained fronts are feasible; a generation is one batch of cases, the same run in
this process or on worker processes; every member is recorded, a failing one as failed; bad
settings are named; the options survive save and load."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openmdao_like import (Array, Assembly, Component, ConfigError, Float, ValidationError, load,
                           set_as_top)
from openmdao_like.cases import Case
from openmdao_like.compat import Genetic
from openmdao_like.drivers import FixedPointIterator, PymooDriver
from openmdao_like.execution import LocalExecutor
from openmdao_like.recorders import JSONRecorder, read_cases

CONSTRAINED = (7.0 + 1.0 / 6.0, -7.0 - 5.0 / 6.0, -27.0 - 1.0 / 12.0)
UNCONSTRAINED = (20.0 / 3.0, -22.0 / 3.0, -27.0 - 1.0 / 3.0)


class Paraboloid(Component):
    """f(x, y) = (x-3)^2 + xy + (y+4)^2 - 3 and g = -f; x above ``fail_above`` raises; ``pid``
    is the process that ran it."""

    x = Float(0.0, iotype='in', low=-50.0, high=50.0)
    y = Float(0.0, iotype='in', low=-50.0, high=50.0)
    fail_above = Float(1e9, iotype='in')
    f_xy = Float(0.0, iotype='out')
    g = Float(0.0, iotype='out')
    pid = Float(0.0, iotype='out')

    def execute(self) -> None:
        if self.x > self.fail_above:
            raise ValueError(f'x={self.x} is above fail_above={self.fail_above}')
        self.f_xy = (self.x - 3.0) ** 2 + self.x * self.y + (self.y + 4.0) ** 2 - 3.0
        self.g = -self.f_xy
        self.pid = os.getpid()


class ZDT1(Component):
    """Zitzler-Deb-Thiele's problem 1: the front is f2 = 1 - sqrt(f1), f1 in [0, 1]."""

    x = Array(np.zeros(10), iotype='in', low=0.0, high=1.0)
    f1 = Float(0.0, iotype='out')
    f2 = Float(0.0, iotype='out')

    def execute(self) -> None:
        x = self.x
        g = 1.0 + 9.0 * np.sum(x[1:]) / (x.size - 1)
        self.f1 = float(x[0])
        self.f2 = float(g * (1.0 - np.sqrt(x[0] / g)))


class BNH(Component):
    """Binh and Korn's constrained bi-objective problem."""

    x1 = Float(0.0, iotype='in', low=0.0, high=5.0)
    x2 = Float(0.0, iotype='in', low=0.0, high=3.0)
    f1 = Float(0.0, iotype='out')
    f2 = Float(0.0, iotype='out')

    def execute(self) -> None:
        self.f1 = 4.0 * self.x1 ** 2 + 4.0 * self.x2 ** 2
        self.f2 = (self.x1 - 5.0) ** 2 + (self.x2 - 5.0) ** 2


class Model(Assembly):
    """The paraboloid under a PymooDriver (``driver_args``); constrained or not."""

    def __init__(self, constrained: bool = True, objectives: tuple[str, ...] = ('p.f_xy',),
                 driver_class: type = PymooDriver, **driver_args: Any):
        self._constrained, self._objectives = constrained, objectives
        self._driver_class, self._driver_args = driver_class, driver_args
        super().__init__()

    def configure(self) -> None:
        self.add('p', Paraboloid())
        self.add('driver', self._driver_class(**self._driver_args))
        self.driver.workflow.add('p')
        self.driver.add_parameter('p.x')
        self.driver.add_parameter('p.y')
        for objective in self._objectives:
            self.driver.add_objective(objective)
        if self._constrained:
            self.driver.add_constraint('p.x - p.y >= 15.0')
        self.driver.add_response('p.pid')


class Counting(LocalExecutor):
    """A LocalExecutor that notes how many cases each ``run_cases`` call brought."""

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.batches: list[int] = []

    def run_cases(self, cases: Any) -> Any:
        cases = list(cases)
        self.batches.append(len(cases))
        return super().run_cases(iter(cases))


def non_dominated(points: np.ndarray) -> bool:
    """Whether no point of ``points`` (rows) dominates another."""
    for i, p in enumerate(points):
        others = np.delete(points, i, axis=0)
        if np.any(np.all(others <= p, axis=1) & np.any(others < p, axis=1)):
            return False
    return True


def objectives(cases: list[Case], names: tuple[str, ...]) -> np.ndarray:
    return np.array([[case.outputs[name] for name in names] for case in cases], dtype=float)


# -- what the algorithms find ---------------------------------------------------------------------
def test_nsga2_finds_the_zdt1_front():
    top = set_as_top(Assembly())
    top.add('z', ZDT1())
    top.add('driver', PymooDriver('NSGA2', pop_size=60, n_gen=150, seed=1))
    top.driver.workflow.add('z')
    top.driver.add_parameter('z.x')
    top.driver.add_objective('z.f1')
    top.driver.add_objective('z.f2')
    top.run()

    front = objectives(top.driver.pareto, ('z.f1', 'z.f2'))
    f1 = np.linspace(0.0, 1.0, 2001)
    analytic = np.column_stack([f1, 1.0 - np.sqrt(f1)])
    distance = np.linalg.norm(front[:, None, :] - analytic[None, :, :], axis=2).min(axis=1)
    assert len(front) >= 30
    assert distance.mean() < 0.05 and distance.max() < 0.1
    assert front[:, 0].min() < 0.05 and front[:, 0].max() > 0.95
    assert np.all(np.diff(front[:, 0]) >= 0)  # sorted by the first objective
    assert non_dominated(front)
    assert all(case.status == 'ok' and case.driver == 'driver' for case in top.driver.pareto)
    assert top.driver.nfev == 60 * 150


@pytest.mark.parametrize('algorithm, tol_x, tol_f', [('GA', 0.25, 0.15), ('de', 0.05, 5e-3)])
def test_single_objective_algorithms_find_the_constrained_optimum(algorithm, tol_x, tol_f):
    top = set_as_top(Model(algorithm=algorithm, pop_size=40, n_gen=60, seed=3))
    top.run()
    assert top.driver.algorithm == algorithm.upper()
    (best,) = top.driver.pareto
    assert (best.inputs['p.x'], best.inputs['p.y']) == pytest.approx(CONSTRAINED[:2], abs=tol_x)
    assert best.outputs['p.f_xy'] == pytest.approx(CONSTRAINED[2], abs=tol_f)
    assert best.outputs['p.x - p.y >= 15.0'] <= 0.0
    # the model is left at the best member
    assert (top.p.x, top.p.y, top.p.f_xy) == (best.inputs['p.x'], best.inputs['p.y'],
                                              best.outputs['p.f_xy'])


def test_de_meets_an_equality_constraint():
    top = set_as_top(Model(constrained=False, algorithm='DE', pop_size=40, n_gen=60, seed=0))
    top.driver.add_constraint('p.x = 7.0')
    top.run()
    (best,) = top.driver.pareto
    assert abs(best.outputs['p.x = 7.0']) <= 1e-4  # pymoo's tolerance on equalities
    assert (top.p.x, top.p.y, top.p.f_xy) == pytest.approx((7.0, -7.5, -27.25), abs=1e-3)


def test_every_member_of_a_constrained_front_meets_the_constraints():
    top = set_as_top(Assembly())
    top.add('b', BNH())
    top.add('driver', PymooDriver(pop_size=40, n_gen=60, seed=2))
    top.driver.workflow.add('b')
    top.driver.add_parameter('b.x1')
    top.driver.add_parameter('b.x2')
    top.driver.add_objective('b.f1')
    top.driver.add_objective('b.f2')
    top.driver.add_constraint('(b.x1 - 5)**2 + b.x2**2 <= 25', name='c1')
    top.driver.add_constraint('(b.x1 - 8)**2 + (b.x2 + 3)**2 >= 7.7', name='c2')
    top.run()

    pareto = top.driver.pareto
    assert len(pareto) >= 20
    for case in pareto:
        x1, x2 = case.inputs['b.x1'], case.inputs['b.x2']
        assert (x1 - 5) ** 2 + x2 ** 2 <= 25 and (x1 - 8) ** 2 + (x2 + 3) ** 2 >= 7.7
        assert case.outputs['c1'] <= 0 and case.outputs['c2'] <= 0
    front = objectives(pareto, ('b.f1', 'b.f2'))
    assert non_dominated(front)
    assert front[:, 0].min() < 5.0 and front[:, 1].min() < 6.0  # both ends of the front


def test_no_feasible_member_leaves_an_empty_pareto(caplog):
    top = set_as_top(Model(algorithm='GA', pop_size=10, n_gen=3, seed=0))
    top.driver.add_constraint('p.x + p.y >= 1000.0')
    with caplog.at_level(logging.WARNING, logger='openmdao_like.drivers.pymoo_driver'):
        top.run()
    assert top.driver.pareto == [] and top.driver.nfev == 30
    assert [r.getMessage() for r in caplog.records] == [
        'driver: GA found no member that satisfies the constraints in 3 generations (30 '
        'members)']


# -- one batch of cases per generation, anywhere ---------------------------------------------------
@pytest.mark.parametrize('algorithm, objective_names', [
    ('NSGA2', ('p.f_xy', 'p.x**2 + p.y**2')), ('GA', ('p.f_xy',)), ('DE', ('p.f_xy',))])
def test_worker_processes_give_the_sequential_run(algorithm, objective_names, tmp_path):
    args = dict(algorithm=algorithm, objectives=objective_names, pop_size=12, n_gen=8, seed=5)
    here = set_as_top(Model(**args))
    here.recorders = [JSONRecorder(tmp_path / 'here.jsonl')]
    here.run()
    executor = Counting(n_workers=2)
    there = set_as_top(Model(sequential=False, executor=executor, **args))
    there.recorders = [JSONRecorder(tmp_path / 'there.jsonl')]
    there.run()

    # one run_cases call per generation (a member equal to one already evaluated, in this
    # generation or the last, is not run again)
    assert len(executor.batches) == 8 and executor.batches[0] == 12
    assert all(batch <= 12 for batch in executor.batches)
    assert executor.running  # a user's executor stays warm
    executor.shutdown()
    cases_here = read_cases(str(tmp_path / 'here.jsonl'))
    cases_there = read_cases(str(tmp_path / 'there.jsonl'))
    final = len(objective_names) == 1  # the best member, evaluated again here and recorded
    assert len(cases_there) == there.driver.nfev == sum(executor.batches) + final > 80
    drop = ('p.pid', 't_start', 't_end')
    assert [{k: v for k, v in c.items() if k not in drop} for c in cases_there] == \
        [{k: v for k, v in c.items() if k not in drop} for c in cases_here]
    pids = {c['p.pid'] for c in cases_there[:sum(executor.batches)]}
    assert os.getpid() not in pids and len(pids) == 2  # the members ran on the workers
    assert [(c.id, c.inputs) for c in there.driver.pareto] == \
        [(c.id, c.inputs) for c in here.driver.pareto]
    if final:
        assert cases_there[-1]['p.pid'] == there.p.pid == os.getpid()
        assert there.p.x == here.p.x == there.driver.pareto[0].inputs['p.x']


def test_every_member_is_recorded(tmp_path):
    top = set_as_top(Model(algorithm='DE', pop_size=10, n_gen=5, seed=1))
    top.recorders = [JSONRecorder(tmp_path / 'cases.jsonl')]
    top.run()
    cases = read_cases(str(tmp_path / 'cases.jsonl'))
    # 10 x 5 members, then the best member's final run here
    assert len(cases) == top.driver.nfev == top.driver.current_iteration == 51
    assert [c['id'] for c in cases] == list(range(51))
    assert [c['iteration'] for c in cases] == [f'driver:{i}' for i in range(51)]
    assert {c['driver'] for c in cases} == {'driver'} and {c['status'] for c in cases} == {'ok'}
    for c in cases:
        x, y = c['p.x'], c['p.y']
        assert -50.0 <= x <= 50.0 and -50.0 <= y <= 50.0
        assert c['p.f_xy'] == pytest.approx((x - 3) ** 2 + x * y + (y + 4) ** 2 - 3)
        assert c['p.x - p.y >= 15.0'] == pytest.approx(15.0 - (x - y))
    (best,) = top.driver.pareto
    assert cases[best.id]['p.f_xy'] == cases[-1]['p.f_xy'] == best.outputs['p.f_xy']
    assert (cases[-1]['p.x'], cases[-1]['p.y']) == (best.inputs['p.x'], best.inputs['p.y'])


class Coupled(Component):
    """One half of a loop: out = 0.5 * loop + a."""

    a = Float(0.0, iotype='in', low=-1.0, high=1.0)
    loop = Float(0.0, iotype='in')
    out = Float(0.0, iotype='out')

    def execute(self) -> None:
        self.out = 0.5 * self.loop + self.a


class Nested(Assembly):
    """A PymooDriver around a solver (record=True) that converges a loop of two components."""

    def __init__(self, **driver_args: Any):
        self._driver_args = driver_args
        super().__init__()

    def configure(self) -> None:
        self.add('c1', Coupled())
        self.add('c2', Coupled())
        self.connect('c1.out', 'c2.loop')
        self.connect('c2.out', 'c1.loop')
        self.add('solver', FixedPointIterator(tolerance=1e-6, record=True))
        self.solver.workflow.add(['c1', 'c2'])
        self.add('driver', PymooDriver('GA', pop_size=4, n_gen=2, seed=0, **self._driver_args))
        self.driver.workflow.add('solver')
        self.driver.add_parameter('c1.a')
        self.driver.add_objective('(c2.out - 0.5)**2')


@pytest.mark.parametrize('sequential', [True, False])
def test_a_solver_inside_records_its_passes_before_each_member(sequential, tmp_path):
    extra = {} if sequential else {'executor': LocalExecutor(n_workers=2)}
    top = set_as_top(Nested(sequential=sequential, **extra))
    top.recorders = [JSONRecorder(tmp_path / 'cases.jsonl')]
    top.run()
    if not sequential:
        top.driver.executor.shutdown()
    rows = read_cases(str(tmp_path / 'cases.jsonl'))
    members = [i for i, row in enumerate(rows) if row['driver'] == 'driver']
    # 4 x 2 members, then the best one's final run here
    assert [rows[i]['iteration'] for i in members] == [f'driver:{k}' for k in range(9)]
    start = 0
    for k, end in enumerate(members):
        passes = rows[start:end]
        assert passes and [row['iteration'] for row in passes] == \
            [f'driver:{k}|solver:{j}' for j in range(len(passes))]
        start = end + 1
    assert start == len(rows)


@pytest.mark.parametrize('sequential', [True, False])
def test_a_failing_member_is_recorded_as_failed_and_the_run_goes_on(sequential, tmp_path,
                                                                    caplog):
    extra = {} if sequential else {'executor': LocalExecutor(n_workers=2)}
    top = set_as_top(Model(algorithm='DE', pop_size=40, n_gen=60, seed=3, sequential=sequential,
                           **extra))
    top.p.fail_above = 30.0
    top.recorders = [JSONRecorder(tmp_path / 'cases.jsonl')]
    with caplog.at_level(logging.WARNING, logger='openmdao_like.drivers.population'):
        top.run()
    if not sequential:
        top.driver.executor.shutdown()
    cases = read_cases(str(tmp_path / 'cases.jsonl'))
    failed = [c for c in cases if c['status'] == 'failed']
    assert failed and len(cases) == 2401
    assert all('ValueError: x=' in c['error'] and c['p.x'] > 30.0 for c in failed)
    assert all(math.isnan(c['p.f_xy']) for c in failed)
    assert any('failed; its objective counts as +inf: ValueError: x=' in r.getMessage()
               for r in caplog.records)
    (best,) = top.driver.pareto
    assert best.status == 'ok'
    assert (top.p.x, top.p.y, top.p.f_xy) == pytest.approx(CONSTRAINED, abs=0.05)


def test_progress_line_counts_generations(capsys):
    top = set_as_top(Model(algorithm='GA', pop_size=5, n_gen=4, seed=0, progress=True))
    top.run()
    err = capsys.readouterr().err
    assert 'driver' in err and '4/4' in err and 'gen' in err


# -- bad settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs, message', [
    ({'algorithm': 'PSO'},
     "PymooDriver: algorithm must be one of NSGA2, GA, DE (any case), got 'PSO' (str)"),
    ({'algorithm': 'nsga'},
     "PymooDriver: algorithm must be one of NSGA2, GA, DE (any case), got 'nsga' (str); did "
     "you mean 'NSGA2' or 'GA'?"),
    ({'pop_size': 0}, 'PymooDriver: pop_size must be an int >= 1, got 0 (int)'),
    ({'n_gen': 2.5}, 'PymooDriver: n_gen must be an int >= 1, got 2.5 (float)'),
    ({'seed': -1}, 'PymooDriver: seed must be an int >= 0 or None, got -1 (int)'),
    ({'crossover_rate': 1.5},
     'PymooDriver: crossover_rate must be a float in [0, 1] or None, got 1.5 (float)'),
    ({'algorithm': 'DE', 'mutation_rate': 0.1},
     "PymooDriver: mutation_rate applies to GA and NSGA2 (each variable mutated with that "
     "probability); algorithm 'DE' mutates by scaled differences: expected "
     "mutation_rate=None, got 0.1 (float)"),
    ({'sequential': 'no'}, "PymooDriver: sequential must be True or False, got 'no' (str)"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValidationError) as info:
        PymooDriver(**kwargs)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_bad_settings_name_the_driver_path():
    top = set_as_top(Model())
    with pytest.raises(ValidationError) as info:
        top.driver.pop_size = 0
    assert str(info.value) == 'driver (PymooDriver): pop_size must be an int >= 1, got 0 (int)'
    with pytest.raises(ValidationError) as info:
        top.driver.algorithm = 'CMAES'
    assert str(info.value) == ("driver (PymooDriver): algorithm must be one of NSGA2, GA, DE "
                               "(any case), got 'CMAES' (str)")
    assert (top.driver.pop_size, top.driver.algorithm) == (100, 'NSGA2')


def test_problems_are_refused_at_run():
    top = set_as_top(Model(objectives=('p.f_xy', 'p.g'), algorithm='GA'))
    with pytest.raises(ConfigError) as info:
        top.run()
    assert str(info.value) == ("driver (PymooDriver), algorithm 'GA': expected one objective "
                               "(the algorithm is single-objective; NSGA2 takes several), got 2 "
                               "(p.f_xy, p.g)")
    top.driver.clear_objectives()
    with pytest.raises(ConfigError, match=r"^driver \(PymooDriver\), algorithm 'GA': no "
                                          r"objective; add one"):
        top.run()
    top.driver.clear_parameters()
    with pytest.raises(ConfigError, match=r"^driver \(PymooDriver\), algorithm 'GA': no "
                                          r"parameters; add some with add_parameter\(\)"):
        top.run()


def test_constraints_that_cannot_be_sized_are_named():
    top = set_as_top(Model(constrained=False, algorithm='DE', n_gen=2, pop_size=4))
    top.driver.add_constraint('p.x / p.y <= 1.0')  # p.y is 0.0 until a member sets it
    with pytest.raises(ConfigError) as info:
        top.run()
    assert str(info.value).startswith(
        'driver (PymooDriver): pymoo needs the number of residuals of each constraint before '
        'the first generation, but evaluating the constraints on the model as it is failed '
        '(ZeroDivisionError: ')
    top.p.y = 1.0
    top.run()
    # 4 members, then up to 4 offspring (one equal to a member evaluated before is not run
    # again: DE repeats some with so small a population), then the best run once more
    assert 4 <= top.driver.nfev <= 9


def test_missing_pymoo_says_how_to_install_it():
    code = ('import sys; sys.modules["pymoo"] = None\n'
            'from openmdao_like import Assembly, set_as_top\n'
            'from openmdao_like.drivers import PymooDriver\n'
            'from test_pymoo_driver import Model\n'
            'try:\n'
            '    set_as_top(Model()).run()\n'
            'except ImportError as exc:\n'
            '    print(exc)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).parent, check=True).stdout
    assert 'PymooDriver needs pymoo (>= 0.6.1)' in out
    assert 'install it with: pip install openmdao_like[pymoo]' in out


# -- compat.Genetic ------------------------------------------------------------------------------
def test_genetic_takes_classic_options_and_maximizes():
    top = set_as_top(Model(constrained=False, objectives=('p.g',), driver_class=Genetic,
                           opt_type='maximize', generations=60, population_size=40, seed=4,
                           mutation_rate=0.5))
    assert (top.driver.algorithm, top.driver.n_gen, top.driver.pop_size) == ('GA', 60, 40)
    assert (top.driver.crossover_rate, top.driver.mutation_rate) == (0.9, 0.5)
    top.driver.generations = 50
    assert top.driver.n_gen == 50
    top.run()
    best = top.driver.best_individual
    assert best.score == pytest.approx(-UNCONSTRAINED[2], abs=5e-3)
    assert list(best) == pytest.approx(UNCONSTRAINED[:2], abs=0.05)
    assert (top.p.x, top.p.y) == tuple(best)


def test_genetic_without_a_feasible_member_has_no_best_individual():
    top = set_as_top(Model(driver_class=Genetic, generations=2, population_size=4, seed=0))
    top.driver.add_constraint('p.x + p.y >= 1000.0')
    top.run()
    assert top.driver.best_individual is None and top.driver.pareto == []


# -- persistence ----------------------------------------------------------------------------------
class Saved(Assembly):
    """The paraboloid, its driver given after configure (saving records it)."""

    def configure(self) -> None:
        self.add('p', Paraboloid())


@pytest.mark.parametrize('fmt', ['yaml', 'pickle'])
@pytest.mark.parametrize('driver', [
    lambda: PymooDriver('DE', pop_size=10, n_gen=5, seed=9, crossover_rate=0.7,
                        sequential=False, executor=LocalExecutor(n_workers=2)),
    lambda: Genetic(population_size=10, generations=5, seed=9, opt_type='maximize',
                    mutation_rate=0.2, sequential=False, executor=LocalExecutor(n_workers=2))],
    ids=['PymooDriver', 'Genetic'])
def test_saved_and_loaded_models_keep_the_options(driver, fmt, tmp_path):
    top = set_as_top(Saved())
    top.add('driver', driver())
    top.driver.workflow.add('p')
    top.driver.add_parameter('p.x')
    top.driver.add_parameter('p.y')
    top.driver.add_objective('p.g' if isinstance(top.driver, Genetic) else 'p.f_xy')
    top.driver.add_constraint('p.x - p.y >= 15.0')
    top.driver.n_gen = 6
    top.run()
    path = tmp_path / f'model.{"yaml" if fmt == "yaml" else "pkl"}'
    top.save(path, fmt=fmt)
    loaded = load(path, directory=tmp_path)

    assert type(loaded.driver) is type(top.driver)
    options = [name for name, _ in top.driver.declared_options.items() if name != 'executor']
    assert 'opt_type' in options or not isinstance(top.driver, Genetic)
    assert {name: getattr(loaded.driver, name) for name in options} == \
        {name: getattr(top.driver, name) for name in options}
    assert loaded.driver.n_gen == 6 and loaded.driver.seed == 9
    assert repr(loaded.driver.executor) == repr(top.driver.executor) == \
        'LocalExecutor(n_workers=2)'
    loaded.run()
    assert [(c.id, c.inputs) for c in loaded.driver.pareto] == \
        [(c.id, c.inputs) for c in top.driver.pareto]
    top.driver.executor.shutdown()
    loaded.driver.executor.shutdown()
