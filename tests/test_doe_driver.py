"""DOEDriver: cases from generators over the driver's parameters, serial and parallel, recorded;
argument and configuration errors; the examples/doe_sqlite.py demo."""

from __future__ import annotations

import importlib.util
import itertools
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.drivers import CaseIteratorDriver, DOEDriver
from openmdao_like.drivers.doe import CSVFile, FullFactorial, ListGenerator, Uniform
from openmdao_like.errors import CaseError, ConfigError, ValidationError
from openmdao_like.execution import LocalExecutor
from openmdao_like.recorders import SQLiteRecorder, read_cases

EXAMPLE = Path(__file__).resolve().parents[1] / 'examples' / 'doe_sqlite.py'


def paraboloid(x: float, y: float) -> float:
    """The exact value the model computes."""
    return (x - 3.0) ** 2 + x * y + (y + 4.0) ** 2 - 3.0


class Paraboloid(Component):
    """f_xy = (x-3)^2 + x*y + (y+4)^2 - 3."""

    x = Float(0.0, iotype='in', low=-50.0, high=50.0)
    y = Float(0.0, iotype='in', low=-50.0, high=50.0)
    f_xy = Float(0.0, iotype='out')

    def execute(self) -> None:
        if self.x > 45.0:
            raise ValueError(f'x={self.x} is out of the trusted range')
        self.f_xy = paraboloid(self.x, self.y)


def make_model(generator=None, x_high=10.0, **options) -> Assembly:
    """Top assembly with a DOEDriver over p.x in [-10, x_high] and p.y in [0, 20]."""
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('driver', DOEDriver(generator, **options))
    top.driver.workflow.add('p')
    top.driver.add_parameter('p.x', low=-10.0, high=x_high)
    top.driver.add_parameter('p.y', low=0.0, high=20.0)
    top.driver.add_response('p.f_xy')
    return top


def test_full_factorial_gives_exact_cases():
    top = make_model(FullFactorial(num_levels=3))
    top.run()
    expected = list(itertools.product([-10.0, 0.0, 10.0], [0.0, 10.0, 20.0]))
    results = top.driver.results
    assert [c.id for c in results] == list(range(9))
    assert [c.inputs for c in results] == [{'p.x': x, 'p.y': y} for x, y in expected]
    assert [c.outputs for c in results] == \
        [{'p.x': x, 'p.y': y, 'p.f_xy': paraboloid(x, y)} for x, y in expected]
    assert all(c.status == 'ok' and c.driver == 'driver' for c in results)


def test_default_generator_is_a_seeded_latin_hypercube():
    top = make_model()
    assert repr(top.driver.generator) == 'LatinHypercube(num_samples=20, seed=0, criterion=None)'
    top.run()
    first = [c.inputs for c in top.driver.results]
    assert len(first) == 20
    xs = sorted(c['p.x'] for c in first)
    assert all(-10.0 + 1.0 * i <= x <= -10.0 + 1.0 * (i + 1) for i, x in enumerate(xs))
    assert all(0.0 <= c['p.y'] <= 20.0 for c in first)
    top.run()
    assert [c.inputs for c in top.driver.results] == first


def test_callable_generator_and_broadcast_parameter():
    top = set_as_top(Assembly())
    top.add('a', Paraboloid())
    top.add('b', Paraboloid())

    def corners(params):
        (x,) = params
        return iter([{x.name: x.low}, {x.name: x.high}])

    top.add('driver', DOEDriver(corners))
    top.driver.workflow.add(['a', 'b'])
    top.driver.add_parameter(['a.x', 'b.x'], low=-2.0, high=4.0, name='x')
    top.driver.add_response('a.f_xy - b.f_xy')
    top.driver.add_response('b.f_xy')
    top.run()
    assert [c.outputs for c in top.driver.results] == [
        {'x': -2.0, 'a.f_xy - b.f_xy': 0.0, 'b.f_xy': paraboloid(-2.0, 0.0)},
        {'x': 4.0, 'a.f_xy - b.f_xy': 0.0, 'b.f_xy': paraboloid(4.0, 0.0)}]


def test_csv_and_list_generators(tmp_path):
    path = tmp_path / 'points.csv'
    path.write_text('p.y,p.x\n1.5,2.0\n3.0,4.5\n')
    top = make_model(CSVFile(path))
    top.run()
    assert [c.inputs for c in top.driver.results] == [{'p.x': 2.0, 'p.y': 1.5},
                                                      {'p.x': 4.5, 'p.y': 3.0}]
    top.driver.generator = ListGenerator([{'p.x': 1.0}, {'p.y': 2.0, 'p.x': 0.0}])
    top.run()
    assert [c.outputs['p.f_xy'] for c in top.driver.results] == [paraboloid(1.0, 3.0),
                                                                 paraboloid(0.0, 2.0)]


def test_failed_case_under_retry_and_abort(tmp_path):
    top = make_model(FullFactorial(num_levels=2), x_high=50.0, error_policy='RETRY',
                     max_retries=1)  # x = 50 fails in the model
    top.recorders = [SQLiteRecorder(tmp_path / 'doe.sqlite')]
    top.run()
    assert [c.status for c in top.driver.results] == ['ok', 'ok', 'failed', 'failed']
    failed = top.driver.results[2]
    assert failed.retries == 1 and 'ValueError: x=50.0 is out of the trusted range' in \
        failed.error
    assert math.isnan(failed.outputs['p.f_xy'])
    assert (failed.outputs['p.x'], failed.outputs['p.y']) == (50.0, 0.0)  # what the case set
    rows = read_cases(tmp_path / 'doe.sqlite')
    assert [(r['id'], r['status']) for r in rows] == \
        [(0, 'ok'), (1, 'ok'), (2, 'failed'), (3, 'failed')]
    top.driver.error_policy = 'ABORT'
    with pytest.raises(CaseError, match=r"^driver: case 2 failed \(error_policy='ABORT'\): "
                                        r"ValueError: x=50.0 is out of the trusted range, "
                                        r"raised by component 'p' \(Paraboloid\)$"):
        top.run()
    assert len(read_cases(tmp_path / 'doe.sqlite')) == 3


def test_parallel_doe_equals_serial():
    serial = make_model(Uniform(num_samples=200, seed=3))
    serial.run()
    parallel = make_model(Uniform(num_samples=200, seed=3), sequential=False,
                          executor=LocalExecutor(n_workers=2))
    parallel.run()
    assert [(c.id, c.inputs, c.outputs) for c in parallel.driver.results] == \
        [(c.id, c.inputs, c.outputs) for c in serial.driver.results]


def test_generator_is_not_shipped_to_the_workers():
    lock = threading.Lock()  # does not pickle: the generator must stay in this process

    def grid(params):
        with lock:
            return iter([{'p.x': float(x), 'p.y': 1.0} for x in range(-5, 5)])

    top = make_model(grid, sequential=False, executor=LocalExecutor(n_workers=2))
    top.run()
    assert [c.outputs['p.f_xy'] for c in top.driver.results] == \
        [paraboloid(float(x), 1.0) for x in range(-5, 5)]
    assert top.driver.generator is grid


def test_array_parameter():
    class Vec(Component):
        from openmdao_like import Array
        v = Array(np.zeros(2), iotype='in', shape=(2,))
        s = Float(0.0, iotype='out')

        def execute(self) -> None:
            self.s = float(self.v.sum())

    top = set_as_top(Assembly())
    top.add('c', Vec())
    top.add('driver', DOEDriver(FullFactorial(num_levels=2)))
    top.driver.workflow.add('c')
    top.driver.add_parameter('c.v', low=np.array([0.0, 10.0]), high=np.array([1.0, 20.0]))
    top.driver.add_response('c.s')
    top.run()
    assert [c.outputs['c.s'] for c in top.driver.results] == [10.0, 20.0, 11.0, 21.0]
    np.testing.assert_array_equal(top.driver.results[1].outputs['c.v'], [0.0, 20.0])


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize('generator, given', [
    (42, '42 (int)'), ('LatinHypercube', "'LatinHypercube' (str)"),
    ([{'p.x': 1.0}], "[{'p.x': 1.0}] (list)")])
def test_generator_must_be_a_generator_or_callable(generator, given):
    with pytest.raises(TypeError) as info:
        DOEDriver(generator)
    assert str(info.value) == (
        'DOEDriver: generator must be a DOEGenerator (FullFactorial, LatinHypercube, Uniform, '
        f'CSVFile, ...) or a callable generator(params) -> iterator of dicts, got {given}')


def test_generator_returning_no_iterator():
    top = make_model(lambda params: 7)
    with pytest.raises(TypeError, match=r'^driver: generator <function .*> must return an '
                                        r'iterator of dicts, got 7 \(int\)$'):
        top.run()


def test_parameters_are_required():
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('driver', DOEDriver(FullFactorial()))
    top.driver.workflow.add('p')
    with pytest.raises(ConfigError, match=r'^driver: a DOEDriver needs at least one parameter '
                                          r'to generate cases from, got none; call '
                                          r'add_parameter\(path, low=\.\.\., high=\.\.\.\) '
                                          r'first$'):
        top.run()


def test_cases_argument_is_refused():
    with pytest.raises(TypeError):
        DOEDriver(FullFactorial(), cases=[{'p.x': 1.0}])
    top = make_model()
    with pytest.raises(TypeError, match=r"^driver: cases must be None \(a DOEDriver draws its "
                                        r"cases from its generator"):
        top.driver.cases = [{'p.x': 1.0}]


@pytest.mark.parametrize('kwargs, exc, text', [
    ({'error_policy': 'SKIP'}, ValueError, "error_policy must be 'ABORT' or 'RETRY'"),
    ({'max_retries': -2}, ValueError, 'max_retries must be an int >= 0, got -2 (int)'),
    ({'executor': LocalExecutor}, TypeError, 'executor must be an openmdao_like.execution'),
])
def test_shared_options_are_checked(kwargs, exc, text):
    with pytest.raises(exc, match=r'^DOEDriver: ' + text.replace('(', r'\(').replace(')', r'\)')):
        DOEDriver(FullFactorial(), **kwargs)


def test_generator_checks_its_parameters():
    top = make_model(FullFactorial(num_levels={'p.x': 2}))
    with pytest.raises(ValidationError, match=r'^FullFactorial: num_levels must name exactly'):
        top.run()


def test_doe_is_a_case_iterator():
    assert issubclass(DOEDriver, CaseIteratorDriver)


# -- the demo --------------------------------------------------------------------------------

def test_example_doe_sqlite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location('doe_sqlite_example', EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.top.run()
    rows = read_cases(tmp_path / 'doe_results.sqlite')
    assert len(rows) == 10_000 and [r['id'] for r in rows] == list(range(10_000))
    assert all(r['status'] == 'ok' for r in rows)
    for row in rows[:100]:
        assert -50.0 <= row['p.x'] <= 50.0 and -50.0 <= row['p.y'] <= 50.0
        assert math.isclose(row['p.f_xy'], paraboloid(row['p.x'], row['p.y']))
