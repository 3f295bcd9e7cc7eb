"""CaseIteratorDriver run serially: results, failures and error policies, lazy input, input
checks, recorders, progress bar and argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openmdao_like import Array, Assembly, Component, Float, Str, set_as_top
from openmdao_like.cases import Case
from openmdao_like.drivers import CaseIteratorDriver
from openmdao_like.errors import CaseError, ExpressionError, ValidationError
from openmdao_like.recorders import CSVRecorder, SQLiteRecorder, read_cases


def paraboloid(x: float, y: float) -> float:
    """The exact value the model computes."""
    return (x - 3.0) ** 2 + x * y + (y + 4.0) ** 2 - 3.0


class Paraboloid(Component):
    """f_xy = (x-3)^2 + x*y + (y+4)^2 - 3; raises when x == fail_at; tags and arrays too."""

    x = Float(0.0, iotype='in', low=-50.0, high=50.0)
    y = Float(0.0, iotype='in', low=-50.0, high=50.0)
    fail_at = Float(1e9, iotype='in')
    f_xy = Float(0.0, iotype='out')
    tag = Str('', iotype='out')
    vec = Array(np.zeros(2), iotype='out', shape=(2,))

    def execute(self) -> None:
        if self.x == self.fail_at:
            raise RuntimeError(f'cannot evaluate at x={self.x}')
        self.f_xy = paraboloid(self.x, self.y)
        self.tag = f'x={self.x}'
        self.vec[:] = (self.x, self.y)  # in place: the driver must copy recorded arrays


class Flaky(Component):
    """Fails on its first ``failures`` calls (per process), then doubles x."""

    x = Float(0.0, iotype='in')
    y = Float(0.0, iotype='out')
    failures = 2
    calls = 0

    def execute(self) -> None:
        type(self).calls += 1
        if type(self).calls <= self.failures:
            raise RuntimeError(f'transient failure {type(self).calls}')
        self.y = 2.0 * self.x


class Doubler(Component):
    """y = 2 x."""

    x = Float(0.0, iotype='in')
    y = Float(0.0, iotype='out')

    def execute(self) -> None:
        self.y = 2.0 * self.x


def make_model(cases=None, **options) -> Assembly:
    """A top assembly with a paraboloid run by a CaseIteratorDriver over ``cases``."""
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('driver', CaseIteratorDriver(cases=cases, **options))
    top.driver.workflow.add('p')
    top.driver.add_response('p.f_xy')
    return top


def points(n: int) -> list[dict[str, float]]:
    """``n`` cases over x and y."""
    return [{'p.x': float(i) - 5.0, 'p.y': 0.5 * i} for i in range(n)]


# -- results ---------------------------------------------------------------------------------

def test_results_in_case_order_with_outputs():
    cases = points(12)
    top = make_model(cases)
    top.driver.add_response('p.f_xy * 2 + p.x')
    top.driver.add_response('p.tag')
    top.run()
    results = top.driver.results
    assert [c.id for c in results] == list(range(12))
    for case, given in zip(results, cases):
        assert isinstance(case, Case) and case.status == 'ok' and case.error is None
        assert case.inputs == given
        f = paraboloid(given['p.x'], given['p.y'])
        assert case.outputs == {'p.f_xy': f, 'p.f_xy * 2 + p.x': 2 * f + given['p.x'],
                                'p.tag': f"x={given['p.x']}"}
        assert case.driver == 'driver' and case.retries == 0
        assert case.t_start <= case.t_end
    assert top.driver.current_iteration == 12
    assert top.p.exec_count == 12


def test_parameters_are_outputs_and_keys_may_be_parameter_names():
    top = set_as_top(Assembly())
    top.add('a', Doubler())
    top.add('b', Doubler())
    top.add('driver', CaseIteratorDriver(cases=[{'x': 1.0}, {'x': 2.5}]))
    top.driver.workflow.add(['a', 'b'])
    top.driver.add_parameter(['a.x', 'b.x'], low=-10.0, high=10.0, name='x')
    top.driver.add_response('a.y + b.y')
    top.run()
    assert [c.outputs for c in top.driver.results] == [{'x': 1.0, 'a.y + b.y': 4.0},
                                                       {'x': 2.5, 'a.y + b.y': 10.0}]


def test_array_outputs_are_copied_and_indexed_inputs_set():
    top = make_model([{'p.x': 1.0, 'p.y': 2.0}, {'p.x': 3.5, 'p.y': -1.0}])
    top.driver.add_response('p.vec')
    top.run()
    vecs = [c.outputs['p.vec'] for c in top.driver.results]
    np.testing.assert_array_equal(vecs[0], [1.0, 2.0])
    np.testing.assert_array_equal(vecs[1], [3.5, -1.0])


def test_a_list_runs_again_and_a_generator_only_once():
    top = make_model(points(3))
    top.run()
    top.run()
    assert len(top.driver.results) == 3
    top.driver.cases = iter(points(2))
    top.run()
    assert len(top.driver.results) == 2
    top.run()
    assert top.driver.results == []


def test_generator_input_is_consumed_lazily():
    top = make_model()
    seen = []

    def cases():
        for i in range(200):
            seen.append((i, top.p.exec_count))  # how many cases ran when case i was pulled
            yield {'p.x': float(i % 40), 'p.y': 1.0}

    top.driver.cases = cases()
    top.run()
    assert seen == [(i, i) for i in range(200)]
    assert len(top.driver.results) == 200


def test_keep_results_false_keeps_nothing_but_records_everything(tmp_path):
    top = make_model(({'p.x': float(i % 7), 'p.y': 0.0} for i in range(500)),
                     keep_results=False)
    top.recorders = [SQLiteRecorder(tmp_path / 'cases.sqlite')]
    top.run()
    assert top.driver.results == []
    assert [row['id'] for row in read_cases(tmp_path / 'cases.sqlite')] == list(range(500))


# -- failures and error policies -------------------------------------------------------------

def test_failed_case_is_recorded_with_traceback_and_nan_or_none():
    top = make_model(points(6), error_policy='RETRY', max_retries=0)
    top.p.fail_at = -2.0  # case 3
    top.driver.add_response('p.tag')
    top.driver.add_response('p.vec')
    top.run()
    results = top.driver.results
    assert [c.status for c in results] == ['ok'] * 3 + ['failed'] + ['ok'] * 2
    failed = results[3]
    assert failed.error.startswith('Traceback (most recent call last):')
    assert 'RuntimeError: cannot evaluate at x=-2.0' in failed.error
    assert math.isnan(failed.outputs['p.f_xy'])
    assert failed.outputs['p.tag'] is None
    assert failed.outputs['p.vec'].shape == (2,) and np.isnan(failed.outputs['p.vec']).all()
    assert failed.inputs == {'p.x': -2.0, 'p.y': 1.5}
    assert failed.retries == 0
    assert results[4].outputs['p.f_xy'] == paraboloid(-1.0, 2.0)


def test_abort_records_the_failure_then_raises(tmp_path):
    top = make_model(points(6))
    top.p.fail_at = -3.0  # case 2
    top.recorders = [SQLiteRecorder(tmp_path / 'cases.sqlite')]
    with pytest.raises(CaseError) as info:
        top.run()
    msg = str(info.value)
    assert msg.startswith("driver: case 2 failed (error_policy='ABORT'): ")
    assert msg.endswith("RuntimeError: cannot evaluate at x=-3.0, raised by component 'p' "
                        "(Paraboloid)")
    assert 'Traceback (most recent call last)' in info.value.traceback
    assert 'cannot evaluate at x=-3.0' in str(info.value.__cause__)
    assert [c.status for c in top.driver.results] == ['ok', 'ok', 'failed']
    rows = read_cases(tmp_path / 'cases.sqlite')
    assert [(r['id'], r['status']) for r in rows] == [(0, 'ok'), (1, 'ok'), (2, 'failed')]
    assert 'RuntimeError: cannot evaluate at x=-3.0' in rows[2]['error']
    assert math.isnan(rows[2]['p.f_xy'])


def test_bad_value_fails_the_case_naming_the_variable():
    top = make_model([{'p.x': 1.0, 'p.y': 0.0}, {'p.x': 100.0, 'p.y': 0.0}])
    with pytest.raises(CaseError) as info:
        top.run()
    assert str(info.value).startswith("driver: case 1 failed (error_policy='ABORT'): ")
    assert 'ValidationError: p.x: expected' in str(info.value)
    assert 'got 100.0 (float)' in str(info.value)
    assert top.driver.results[1].status == 'failed'


def make_flaky(cases, failures, **options) -> Assembly:
    """A model whose component fails on its first ``failures`` calls."""
    Flaky.calls = 0
    Flaky.failures = failures
    top = set_as_top(Assembly())
    top.add('c', Flaky())
    top.add('driver', CaseIteratorDriver(cases=cases, **options))
    top.driver.workflow.add('c')
    top.driver.add_response('c.y')
    return top


def test_retry_recovers_from_transient_failures():
    top = make_flaky([{'c.x': float(i)} for i in range(4)], failures=2, error_policy='RETRY',
                     max_retries=2)
    top.run()
    results = top.driver.results
    assert [(c.id, c.status, c.retries) for c in results] == \
        [(0, 'ok', 2), (1, 'ok', 0), (2, 'ok', 0), (3, 'ok', 0)]
    assert [c.outputs['c.y'] for c in results] == [0.0, 2.0, 4.0, 6.0]
    assert Flaky.calls == 6


def test_retry_gives_up_after_max_retries_and_goes_on(tmp_path):
    top = make_flaky([{'c.x': 1.0}, {'c.x': 2.0}], failures=3, error_policy='RETRY',
                     max_retries=1)
    top.recorders = [CSVRecorder(tmp_path / 'cases.csv')]
    top.run()
    first, second = top.driver.results
    assert (first.status, first.retries) == ('failed', 1)
    assert 'RuntimeError: transient failure 2' in first.error
    assert math.isnan(first.outputs['c.y'])
    assert (second.status, second.retries, second.outputs) == ('ok', 1, {'c.y': 4.0})
    assert second.error is None  # its first run failed (call 3), its retry passed
    rows = read_cases(tmp_path / 'cases.csv')
    assert [(r['id'], r['status']) for r in rows] == [(0, 'failed'), (1, 'ok')]
    assert Flaky.calls == 4


def test_retry_zero_means_one_attempt():
    top = make_flaky([{'c.x': 1.0}, {'c.x': 2.0}], failures=1, error_policy='RETRY',
                     max_retries=0)
    top.run()
    assert [c.status for c in top.driver.results] == ['failed', 'ok']
    assert Flaky.calls == 2


# -- input checks ----------------------------------------------------------------------------

@pytest.mark.parametrize('key, given', [
    ('p.z', "got an unknown variable: 'p' has no variable 'z' (its inputs: fail_at, x, y)"),
    ('q.x', "got an unknown path: 'Assembly' has no component 'q'"),
    ('p.x[', 'got a malformed path (expected name or name[int] after the last dot)'),
    ('p.f_xy', "got an output of 'p'"),
    ('b.x', "got an input connected to 'a.y'"),
])
def test_bad_case_path_raises_naming_path_case_and_expectation(key, given):
    top = make_model([{'p.x': 1.0}, {'p.x': 1.0}, {key: 2.0}])
    top.add('a', Doubler())
    top.add('b', Doubler())
    top.connect('a.y', 'b.x')
    with pytest.raises(ExpressionError) as info:
        top.run()
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert msg.startswith(f"driver: case 2: cannot set {key!r} to 2.0 (float): expected the "
                          f"path of an unconnected input variable of ")
    assert msg.endswith(given)
    assert len(top.driver.results) == 2  # the cases before it ran


def test_case_that_is_not_a_dict_raises_type_error():
    top = make_model([{'p.x': 1.0}, ('p.x', 2.0)])
    with pytest.raises(TypeError, match=r"^driver: case 1: expected a dict \{variable path: "
                                        r"value\}, got \('p.x', 2.0\) \(tuple\)$"):
        top.run()


def test_cases_with_changing_keys():
    top = make_model([{'p.x': 1.0}, {'p.y': 2.0}, {'p.x': 3.0, 'p.y': 4.0}, {'p.x': 5.0}])
    top.run()
    assert [c.outputs['p.f_xy'] for c in top.driver.results] == \
        [paraboloid(1, 0), paraboloid(1, 2), paraboloid(3, 4), paraboloid(5, 4)]


# -- recorders, progress, running the driver alone -------------------------------------------

def test_sqlite_recorder_gets_every_case(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    top = make_model(points(50), error_policy='RETRY', max_retries=0)
    top.p.fail_at = 0.0  # case 5
    top.recorders = [SQLiteRecorder('cases.sqlite')]
    top.run()
    rows = read_cases('cases.sqlite')
    assert [r['id'] for r in rows] == list(range(50))
    assert [r['status'] for r in rows].count('failed') == 1 and rows[5]['status'] == 'failed'
    for row, case in zip(rows, top.driver.results):
        assert row['p.x'] == case.inputs['p.x']
        if case.ok:
            assert row['p.f_xy'] == case.outputs['p.f_xy']


def test_running_the_driver_alone_opens_and_closes_the_recorders(tmp_path):
    top = make_model(points(4))
    top.recorders = [SQLiteRecorder(tmp_path / 'cases.sqlite')]
    top.check_config()
    top.driver.run()
    assert not top.recorders[0].is_open
    assert len(read_cases(tmp_path / 'cases.sqlite')) == 4


def test_progress_bar_only_when_asked(capsys):
    make_model(points(30), progress=True).run()
    assert '30/30' in capsys.readouterr().err
    make_model(points(30)).run()  # stderr is not a terminal here
    assert capsys.readouterr().err == ''


# -- arguments -------------------------------------------------------------------------------

@pytest.mark.parametrize('kwargs, exc, text', [
    ({'error_policy': 'IGNORE'}, ValueError,
     "error_policy must be 'ABORT' or 'RETRY', got 'IGNORE' (str)"),
    ({'error_policy': None}, ValueError,
     "error_policy must be 'ABORT' or 'RETRY', got None (NoneType)"),
    ({'max_retries': -1}, ValueError, 'max_retries must be an int >= 0, got -1 (int)'),
    ({'max_retries': 1.5}, TypeError, 'max_retries must be an int >= 0, got 1.5 (float)'),
    ({'max_retries': True}, TypeError, 'max_retries must be an int >= 0, got True (bool)'),
    ({'cases': 5}, TypeError, 'cases must be an iterable of dicts {path: value} (a list, '
                              'iterator or generator) or None, got 5 (int)'),
    ({'cases': {'p.x': 1.0}}, TypeError, "got {'p.x': 1.0} (dict)"),
    ({'cases': 'p.x=1'}, TypeError, "got 'p.x=1' (str)"),
    ({'executor': 'local'}, TypeError,
     "executor must be an openmdao_like.execution.Executor (e.g. LocalExecutor(n_workers=4)) "
     "or None, got 'local' (str)"),
    ({'sequential': 'no'}, TypeError, "sequential must be True or False, got 'no' (str)"),
    ({'progress': 1}, TypeError, 'progress must be True, False or None, got 1 (int)'),
])
def test_bad_arguments(kwargs, exc, text):
    with pytest.raises(exc) as info:
        CaseIteratorDriver(**kwargs)
    assert str(info.value).startswith('CaseIteratorDriver: ')
    assert str(info.value).endswith(text)


def test_bad_option_set_later_names_the_driver_path():
    top = make_model()
    with pytest.raises(ValueError, match=r"^driver: error_policy must be 'ABORT' or 'RETRY', "
                                         r"got 'abort' \(str\)$"):
        top.driver.error_policy = 'abort'
    assert top.driver.error_policy == 'ABORT'


def test_value_checked_by_variable_on_retry_policy():
    top = make_model([{'p.x': 'one'}], error_policy='RETRY', max_retries=0)
    top.run()
    case = top.driver.results[0]
    assert case.status == 'failed'
    assert "ValidationError: p.x: expected" in case.error and "got 'one' (str)" in case.error
    with pytest.raises(ValidationError):
        top.p.x = 'one'
