"""What a user sees in a recording: every record's id, driver, iteration, status and error; the
solvers' ``record`` option; the ``driver=``/``status=`` filters of `read_cases` and
`read_cases_array`; `read_metadata`; and files of format 1 still read.

Fixture ``tests/data/cases_v1.sqlite`` was written by the previous release's recorder (commit
36cd027: ``git archive 36cd027 openmdao_like | tar -x -C /tmp/oldtree``, then a script run with
``PYTHONPATH=/tmp/oldtree`` calling ``SQLiteRecorder(path).startup()`` and ``record`` with, in
this order, ``Case(0, {'p.x': 1.0}, {'p.f': 2.5}, driver='driver')``,
``Case(0, {'solver.y': 0.5}, {'solver.r': 0.25}, driver='solver')`` and ``Case(1, {'p.x': 3.0},
{'p.f': nan}, status='failed', error='Traceback (most recent call last):\\nValueError: x = 3.0
is too large', driver='driver')``, then ``close()``). Do not regenerate it with the current code.
"""

from __future__ import annotations

import importlib.util
import math
import platform
import re
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import openmdao_like
from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.drivers import DOEDriver, FixedPointIterator, ScipyOptimizer
from openmdao_like.drivers.doe import FullFactorial
from openmdao_like.errors import RecorderError
from openmdao_like.execution import LocalExecutor
from openmdao_like.options import OptionError
from openmdao_like.recorders import (CSVRecorder, JSONRecorder, SQLiteRecorder, read_cases,
                                     read_cases_array, read_metadata)

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / 'examples'
V1_SQLITE = HERE / 'data' / 'cases_v1.sqlite'

ROW_KEYS = ['id', 'driver', 'iteration', 'status', 'error']
RECORDERS = {'csv': CSVRecorder, 'jsonl': JSONRecorder, 'sqlite': SQLiteRecorder}
FORMATS = sorted(RECORDERS)
OBJECTIVE = 'dis1.x1**2 + dis1.z2 + dis1.y1 + exp(-dis2.y2)'
SOLVER_ROW = re.compile(r'driver:(\d+)\|solver:(\d+)')


def _load_sellar() -> ModuleType:
    spec = importlib.util.spec_from_file_location('example_sellar_recordings',
                                                  EXAMPLES / 'sellar.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sellar = _load_sellar()


class Discipline1(sellar.SellarDiscipline1):
    """The example's discipline 1 with units on x1 and y2; counts its runs (solver passes)."""

    x1 = Float(0.0, iotype='in', low=0.0, high=10.0, units='m', desc='local design variable')
    y2 = Float(1.0, iotype='in', units='m', desc='coupling from discipline 2')

    def execute(self) -> None:
        super().execute()
        self.passes = getattr(self, 'passes', 0) + 1


class Discipline2(sellar.SellarDiscipline2):
    """The example's discipline 2 with units on y2."""

    y2 = Float(iotype='out', units='m', desc='coupling to discipline 1')


class SellarWithUnits(sellar.SellarMDF):
    """examples/sellar.py's SellarMDF (SLSQP around a FixedPointIterator) with units, and
    the solver's ``record`` option given (None: its default)."""

    discipline1 = Discipline1
    discipline2 = Discipline2

    def __init__(self, solver_record: bool | None = None, **kwargs: Any):
        self._solver_record = solver_record
        super().__init__(**kwargs)

    def configure(self) -> None:
        super().configure()
        if self._solver_record is not None:
            self.solver.record = self._solver_record


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return [row['id'] for row in rows]


def _coordinates(rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(row['id'], row['iteration']) for row in rows]


def _run_sellar(path: Path, fmt: str, solver_record: bool | None) -> Any:
    top = set_as_top(SellarWithUnits(solver_record=solver_record))
    top.recorders = [RECORDERS[fmt](path)]
    top.run()
    assert top.driver.success is True
    return top


@pytest.fixture(scope='module', params=FORMATS)
def sellar_recording(request: pytest.FixtureRequest,
                     tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """(file, optimizer evaluations, solver passes) of a Sellar run with ``record=True`` on the
    solver, recorded in each format."""
    fmt = request.param
    path = tmp_path_factory.mktemp(f'sellar-{fmt}') / f'cases.{fmt}'
    top = _run_sellar(path, fmt, solver_record=True)
    return path, top.driver.nfev, top.dis1.passes


# -- a nested run, recorded and read back -------------------------------------------------------

def test_every_record_has_id_driver_iteration_status_error_first(sellar_recording):
    path, nfev, passes = sellar_recording
    rows = read_cases(path)
    assert len(rows) == nfev + passes
    assert [row['id'] for row in rows] == list(range(len(rows)))
    for row in rows:
        assert list(row)[:5] == ROW_KEYS, row
        assert row['status'] == 'ok' and row['error'] is None, row


def test_rows_per_driver(sellar_recording):
    path, nfev, passes = sellar_recording
    optimizer = read_cases(path, driver='driver')
    solver = read_cases(path, driver='solver')
    assert len(optimizer) == nfev > 1
    assert len(solver) == passes > nfev  # several passes per evaluation
    assert {row['driver'] for row in optimizer} == {'driver'}
    assert {row['driver'] for row in solver} == {'solver'}
    # the optimizer's rows hold its parameters, objective and constraints; the solver's the
    # fed-back value
    assert {'dis1.z1', 'dis1.z2', 'dis1.x1', OBJECTIVE, '3.16 < dis1.y1'} <= optimizer[-1].keys()
    assert optimizer[-1][OBJECTIVE] == pytest.approx(3.1834, abs=1e-3)
    assert all(set(row) == set(ROW_KEYS) | {'dis2.y2'} for row in solver)
    assert read_cases(path, driver='solver.dis1') == []
    assert read_cases(path, driver='nowhere') == []


def test_iteration_coordinates(sellar_recording):
    """Each optimizer evaluation k records its solver's passes 0, 1, ... as
    ``driver:k|solver:j``, then itself as ``driver:k``."""
    path, nfev, _ = sellar_recording
    rows = read_cases(path)
    optimizer = [row for row in rows if row['driver'] == 'driver']
    assert [row['iteration'] for row in optimizer] == [f'driver:{k}' for k in range(nfev)]
    expected_pass = 0
    for k, row in enumerate(optimizer):
        before = rows[:row['id']] if k == 0 else rows[optimizer[k - 1]['id'] + 1:row['id']]
        assert before, f'evaluation {k} recorded no solver pass'
        for j, solver_row in enumerate(before):
            assert solver_row['driver'] == 'solver'
            assert SOLVER_ROW.fullmatch(solver_row['iteration']), solver_row['iteration']
            assert solver_row['iteration'] == f'driver:{k}|solver:{j}'
            expected_pass += 1
    assert rows[-1]['driver'] == 'driver'  # nothing recorded after the last evaluation
    assert expected_pass == len(rows) - nfev


def test_status_and_combined_filters(sellar_recording):
    path, nfev, passes = sellar_recording
    everything = read_cases(path)
    assert read_cases(path, status='ok') == everything
    assert read_cases(path, status='failed') == []
    solver = read_cases(path, driver='solver', status='ok')
    assert [row['id'] for row in solver] == [row['id'] for row in everything
                                           if row['driver'] == 'solver']
    assert read_cases(path, driver='driver', status='failed') == []


def test_read_cases_array_fields_and_filters(sellar_recording):
    path, nfev, passes = sellar_recording
    rows = read_cases(path)
    array = read_cases_array(path)
    assert array.dtype.names[:4] == ('id', 'driver', 'iteration', 'status')
    assert 'error' not in array.dtype.names
    assert array['id'].tolist() == list(range(nfev + passes))
    assert array['driver'].tolist() == [row['driver'] for row in rows]
    assert array['iteration'].tolist() == [row['iteration'] for row in rows]
    assert set(array['status'].tolist()) == {'ok'}
    assert np.array_equal(array['dis2.y2'],
                          [row.get('dis2.y2', np.nan) for row in rows], equal_nan=True)

    solver = read_cases_array(path, driver='solver')
    assert len(solver) == passes and set(solver['driver'].tolist()) == {'solver'}
    assert all(SOLVER_ROW.fullmatch(it) for it in solver['iteration'].tolist())
    optimizer = read_cases_array(path, driver='driver', status='ok')
    assert optimizer['iteration'].tolist() == [f'driver:{k}' for k in range(nfev)]
    assert optimizer[OBJECTIVE][-1] == pytest.approx(3.1834, abs=1e-3)
    assert len(read_cases_array(path, status='failed')) == 0


def test_read_metadata_describes_the_recorded_variables(sellar_recording):
    path, _, _ = sellar_recording
    metadata = read_metadata(path)
    assert metadata['format_version'] == 2
    variables = metadata['variables']
    assert variables['dis1.x1'] == {'units': 'm', 'iotype': 'in',
                                    'desc': 'local design variable'}
    assert variables['dis2.y2'] == {'units': 'm', 'iotype': 'out',
                                    'desc': 'coupling to discipline 1'}
    assert variables['dis1.z1'] == {'units': None, 'iotype': 'in',
                                    'desc': 'global design variable'}
    assert variables[OBJECTIVE]['iotype'] == 'expression'
    assert variables[OBJECTIVE]['units'] is None
    assert variables['3.16 < dis1.y1']['iotype'] == 'expression'
    recorded = {key for row in read_cases(path) for key in row if key not in ROW_KEYS}
    assert set(variables) == recorded
    versions = metadata['versions']
    assert versions['openmdao_like'] == openmdao_like.__version__
    assert versions['python'] == platform.python_version()
    assert isinstance(metadata['start'], float) and isinstance(metadata['end'], float)
    assert metadata['start'] <= metadata['end']


# -- solvers record only when asked -------------------------------------------------------------

@pytest.mark.parametrize('fmt', FORMATS)
def test_solver_does_not_record_by_default(fmt, tmp_path):
    """The issue's bug: 138 empty solver rows were interleaved with the optimizer's 25."""
    path = tmp_path / f'cases.{fmt}'
    top = _run_sellar(path, fmt, solver_record=None)
    assert top.solver.record is False and top.driver.record is True
    rows = read_cases(path)
    assert len(rows) == top.driver.nfev
    assert {row['driver'] for row in rows} == {'driver'}
    assert [row['iteration'] for row in rows] == [f'driver:{k}' for k in range(len(rows))]
    assert [row['id'] for row in rows] == list(range(len(rows)))
    assert all('dis1.x1' in row and OBJECTIVE in row for row in rows)
    assert read_cases(path, driver='solver') == []
    assert 'dis1.x1' in read_metadata(path)['variables']


def test_record_false_on_the_optimizer_too_leaves_no_rows(tmp_path):
    path = tmp_path / 'cases.sqlite'
    top = set_as_top(SellarWithUnits(solver_record=False))
    top.driver.record = False
    top.recorders = [SQLiteRecorder(path)]
    top.run()
    assert top.driver.nfev > 0
    assert read_cases(path) == []
    assert read_metadata(path)['variables'] == {}


def test_record_option_is_checked():
    with pytest.raises(OptionError) as info:
        FixedPointIterator(record='yes')
    message = str(info.value)
    assert 'record' in message and 'True or False' in message and "'yes'" in message
    solver = FixedPointIterator()
    with pytest.raises(OptionError, match=r"record must be True or False, got 1 \(int\)"):
        solver.record = 1
    assert solver.record is False


# -- failed cases ----------------------------------------------------------------------------

class Picky(Component):
    x = Float(0.0, iotype='in', low=-1.0, high=1.0, units='s', desc='picky input')
    y = Float(iotype='out', desc='x squared')

    def execute(self) -> None:
        if self.x > 0.6:
            raise ValueError(f'x = {self.x} is too large')
        self.y = self.x**2


class PickyStudy(Assembly):
    def configure(self) -> None:
        self.add('c', Picky())
        self.add('driver', DOEDriver(generator=FullFactorial(num_levels=5),
                                     error_policy='RETRY', max_retries=0))
        self.driver.workflow.add('c')
        self.driver.add_parameter('c.x')
        self.driver.add_response('c.y')


@pytest.mark.parametrize('fmt', FORMATS)
def test_failed_case_is_recorded_with_its_error(fmt, tmp_path):
    path = tmp_path / f'doe.{fmt}'
    top = set_as_top(PickyStudy())
    top.recorders = [RECORDERS[fmt](path)]
    top.run()
    rows = read_cases(path)
    assert [row['c.x'] for row in rows] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert [row['id'] for row in rows] == list(range(5))
    assert [row['iteration'] for row in rows] == [f'driver:{k}' for k in range(5)]
    assert [row['status'] for row in rows] == ['ok'] * 4 + ['failed']

    [failed] = read_cases(path, status='failed')
    assert failed['id'] == 4 and failed['iteration'] == 'driver:4'
    assert failed['driver'] == 'driver' and failed['c.x'] == 1.0
    assert 'ValueError' in failed['error'] and 'x = 1.0 is too large' in failed['error']
    assert math.isnan(failed['c.y'])
    ok = read_cases(path, status='ok')
    assert _ids(ok) == [0, 1, 2, 3]
    assert all(row['error'] is None and row['c.y'] == row['c.x']**2 for row in ok)
    assert _ids(read_cases(path, driver='driver', status='failed')) == [4]

    array = read_cases_array(path, status='failed')
    assert array['id'].tolist() == [4] and array['status'].tolist() == ['failed']
    assert math.isnan(array['c.y'][0])
    assert read_metadata(path)['variables']['c.x'] == {'units': 's', 'iotype': 'in',
                                                       'desc': 'picky input'}


# -- clear errors -------------------------------------------------------------------------------

@pytest.fixture
def small_recording(tmp_path: Path) -> Path:
    path = tmp_path / 'doe.csv'
    top = set_as_top(PickyStudy())
    top.recorders = [CSVRecorder(path)]
    top.run()
    return path


@pytest.mark.parametrize('reader', [read_cases, read_cases_array])
def test_bad_status_filter(small_recording, reader):
    with pytest.raises(RecorderError) as info:
        reader(small_recording, status='bogus')
    message = str(info.value)
    assert message.startswith(f'{reader.__name__}({str(small_recording)!r}): ')
    assert "expected status to be one of 'ok', 'failed' or None" in message
    assert "got 'bogus' (str)" in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(('driver', 'given'), [(3, '3 (int)'), ('', "'' (str)"),
                                               (['driver'], "['driver'] (list)")])
def test_bad_driver_filter(small_recording, driver, given):
    with pytest.raises(RecorderError) as info:
        read_cases(small_recording, driver=driver)
    message = str(info.value)
    assert str(small_recording) in message
    assert 'expected driver to be the dotted path of a driver' in message
    assert f'got {given}' in message


def test_status_filter_is_case_sensitive(small_recording):
    with pytest.raises(RecorderError, match=r"got 'FAILED' \(str\)"):
        read_cases(small_recording, status='FAILED')


@pytest.mark.parametrize('fmt', ['csv', 'jsonl'])
def test_read_metadata_without_the_sidecar(fmt, tmp_path):
    path = tmp_path / f'doe.{fmt}'
    top = set_as_top(PickyStudy())
    top.recorders = [RECORDERS[fmt](path)]
    top.run()
    sidecar = tmp_path / f'doe.{fmt}.meta.json'
    assert sidecar.is_file()
    moved = tmp_path / 'elsewhere'
    moved.mkdir()
    shutil.move(path, moved / path.name)  # copied without its sidecar
    copy = moved / path.name
    with pytest.raises(FileNotFoundError) as info:
        read_metadata(copy)
    message = str(info.value)
    assert str(copy) in message
    assert f'expected the file {str(copy) + ".meta.json"!r}' in message
    assert len(read_cases(copy)) == 5  # the cases still read


_SIDECAR_EXPECTED = ('expected a JSON object with keys format_version, start, end, versions, '
                     'variables and a format_version from 2 to 2, found ')


@pytest.mark.parametrize('fmt', ['csv', 'jsonl'])
@pytest.mark.parametrize(('content', 'found'), [
    ('{"format_version": 99, "start": 1.0, "end": null, "versions": {}, "variables": {}}',
     'format_version 99 (written by a newer openmdao_like?)'),
    ('{"format_version": "2", "start": 1.0, "end": null, "versions": {}, "variables": {}}',
     "format_version '2'"),
    ('{"format_version": 2, "start": 1.0}', 'keys format_version, start'),
    ('[1, 2]', 'a JSON list'),
    ('{"format_version": 2, "sta', 'invalid JSON'),
])
def test_a_bad_sidecar_is_refused_by_both_readers(fmt, content, found, tmp_path):
    """A sidecar saying the file is of a newer format (or not a sidecar at all): neither the
    metadata nor the cases are read, and the error names the sidecar."""
    path = tmp_path / f'doe.{fmt}'
    top = set_as_top(PickyStudy())
    top.recorders = [RECORDERS[fmt](path)]
    top.run()
    sidecar = tmp_path / f'doe.{fmt}.meta.json'
    sidecar.write_text(content, encoding='utf-8')
    for read in (read_metadata, read_cases):
        with pytest.raises(RecorderError) as info:
            read(path)
        assert str(info.value).startswith(f'{str(sidecar)!r}: {_SIDECAR_EXPECTED}{found}')


# -- format 1 files still read ----------------------------------------------------------------

def _check_format_1_rows(rows: list[dict[str, Any]]) -> None:
    """The rows every format 1 fixture holds: two drivers whose own case numbers repeat (so
    the ids do), the iteration derived as 'driver:id', the first case's values."""
    assert [(row['id'], row['driver'], row['iteration'], row['status']) for row in rows] == [
        (0, 'driver', 'driver:0', 'ok'),
        (0, 'solver', 'solver:0', 'ok'),
        (1, 'driver', 'driver:1', 'failed')]
    assert all(list(row)[:5] == ROW_KEYS for row in rows)
    assert rows[0]['p.x'] == 1.0 and rows[0]['p.f'] == 2.5 and rows[0]['error'] is None


def test_format_1_sqlite_still_reads():
    assert V1_SQLITE.stat().st_size < 32_000
    rows = read_cases(V1_SQLITE)
    _check_format_1_rows(rows)
    assert rows[1]['solver.y'] == 0.5 and rows[1]['solver.r'] == 0.25
    assert rows[2]['p.x'] == 3.0 and math.isnan(rows[2]['p.f'])
    assert rows[2]['error'].endswith('ValueError: x = 3.0 is too large')
    assert _coordinates(read_cases(V1_SQLITE, driver='driver', status='failed')) == [
        (1, 'driver:1')]
    assert _coordinates(read_cases(V1_SQLITE, driver='solver')) == [(0, 'solver:0')]
    array = read_cases_array(V1_SQLITE, driver='driver')
    assert array['iteration'].tolist() == ['driver:0', 'driver:1']

    metadata = read_metadata(V1_SQLITE)
    assert metadata['format_version'] == 1
    assert isinstance(metadata['start'], float)
    assert metadata['end'] is None and metadata['versions'] == {}
    assert metadata['variables'] == {}


V1_JSONL = (
    '{"id":0,"status":"ok","error":null,"driver":"driver","t_start":1.0,"t_end":2.0,'
    '"retries":0,"inputs":{"p.x":1.0},"outputs":{"p.f":2.5,'
    '"p.v":{"__ndarray__":[1.0,2.0],"dtype":"float64","shape":[2]}}}\n'
    '{"id":0,"status":"ok","error":null,"driver":"solver","t_start":1.1,"t_end":1.2,'
    '"retries":0,"inputs":{"solver.y":0.5},"outputs":{}}\n'
    '{"id":1,"status":"failed","error":"Traceback (most recent call last):\\nValueError: boom",'
    '"driver":"driver","t_start":3.0,"t_end":4.0,"retries":1,"inputs":{"p.x":3.0},'
    '"outputs":{"p.f":NaN,"p.v":{"__ndarray__":[NaN,NaN],"dtype":"float64","shape":[2]}}}\n')

V1_CSV = (
    'id,status,error,driver,t_start,t_end,retries,p.x,solver.y,p.f,p.v\n'
    '0,ok,,driver,1.0,2.0,0,1.0,,2.5,"[1.0, 2.0]"\n'
    '0,ok,,solver,1.1,1.2,0,,0.5,,\n'
    '1,failed,"Traceback (most recent call last):\nValueError: boom",driver,3.0,4.0,1,3.0,,'
    'NaN,"[NaN, NaN]"\n')


@pytest.mark.parametrize(('name', 'text'), [('old.jsonl', V1_JSONL), ('old.csv', V1_CSV)])
def test_format_1_text_files_still_read(name, text, tmp_path):
    """Files as the previous release's JSONRecorder and CSVRecorder wrote them: no iteration,
    the drivers' own case numbers as ids (they repeat), no sidecar."""
    path = tmp_path / name
    path.write_text(text, encoding='utf-8')
    rows = read_cases(path)
    _check_format_1_rows(rows)
    assert np.array_equal(rows[0]['p.v'], [1.0, 2.0])
    assert rows[1]['solver.y'] == 0.5 and 'p.x' not in rows[1]
    assert rows[2]['error'] == 'Traceback (most recent call last):\nValueError: boom'
    assert math.isnan(rows[2]['p.f']) and np.isnan(rows[2]['p.v']).all()
    assert _coordinates(read_cases(path, status='failed')) == [(1, 'driver:1')]
    assert _coordinates(read_cases(path, driver='solver')) == [(0, 'solver:0')]
    with pytest.raises(FileNotFoundError, match=re.escape(f"{str(path) + '.meta.json'!r}")):
        read_metadata(path)


def _solver_doe(path: Path, sequential: bool) -> list[dict[str, Any]]:
    """The rows of a 4-case DOE around the Sellar solver (``record=True``) recorded at
    ``path``, run here or in two worker processes."""
    top = set_as_top(SellarWithUnits(solver_record=True))
    top.recorders = [CSVRecorder(str(path))]
    executor = None if sequential else LocalExecutor(n_workers=2)
    top.add('driver', DOEDriver(FullFactorial(num_levels=2), sequential=sequential,
                                executor=executor))
    top.driver.workflow.add('solver')
    top.driver.add_parameter('dis1.z1', low=-1.0, high=1.0)
    top.driver.add_parameter('dis1.x1', low=1.0, high=2.0)
    top.driver.add_response('dis1.y1')
    top.driver.add_response('dis2.y2')
    try:
        top.run()
    finally:
        if executor is not None:  # the user's executor stays warm until shut down
            executor.shutdown()
    return read_cases(path)


@pytest.mark.parametrize('sequential', [True, False])
def test_a_recording_solver_inside_a_doe_records_each_pass_before_its_case(tmp_path,
                                                                          sequential):
    """In worker processes (whose copies of the model have no recorders) as here: the solver's
    passes of case k are recorded right before case k, numbered 'driver:k|solver:j' (in a
    worker they travel home with the case's outcome)."""
    rows = _solver_doe(tmp_path / 'cases.csv', sequential)
    assert [row['id'] for row in rows] == list(range(len(rows)))
    assert [row['iteration'] for row in rows if row['driver'] == 'driver'] == \
        [f'driver:{k}' for k in range(4)]
    passes: list[dict[str, Any]] = []
    for row in rows:
        if row['driver'] == 'solver':
            passes.append(row)
            continue
        k = int(row['iteration'].split(':')[1])
        assert passes  # each case solves the coupling: at least one pass
        assert [p['iteration'] for p in passes] == [f'driver:{k}|solver:{j}'
                                                    for j in range(len(passes))]
        assert passes[-1]['dis2.y2'] == pytest.approx(row['dis2.y2'], rel=1e-9)
        passes = []
    assert not passes  # no pass without its case
    assert len(rows) > 2 * 4  # a cold solve takes several passes
