"""The case browser (`openmdao_like.view.cases`, ``openmdao-like cases``) on real case files of
all three formats: a DOE with failed cases, an optimizer run with a constraint, a solver nested
in a DOE (two drivers), empty files, files that are not case files and newer formats."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from openmdao_like import Array, Assembly, Component, Float, Str, set_as_top
from openmdao_like.cli.main import main
from openmdao_like.drivers import DOEDriver, FixedPointIterator, ScipyOptimizer
from openmdao_like.drivers.doe import FullFactorial
from openmdao_like.errors import ExpressionError, RecorderError, ViewError
from openmdao_like.recorders import CSVRecorder, JSONRecorder, SQLiteRecorder, read_cases
from openmdao_like.view import export_cases, read_case_file, select_cases, summarize

FORMATS = ('csv', 'jsonl', 'sqlite')
#: The DOE's failed cases: x + y > 4 on the 3 x 3 grid of -5, 0, 5.
DOE_FAILED = [5, 7, 8]
PNG = b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00'


class Plate(Component):
    x = Float(0.0, iotype='in', low=-10.0, high=10.0, units='m', desc='x position')
    y = Float(0.0, iotype='in', low=-10.0, high=10.0, units='m')
    f = Float(iotype='out', units='m**2')
    v = Array(np.zeros(2), iotype='out', units='m')
    side = Str('', iotype='out')

    def execute(self):
        if self.x + self.y > 4:
            raise ValueError(f'x + y = {self.x + self.y} is too large')
        self.f = (self.x - 3.0)**2 + self.x*self.y + (self.y + 4.0)**2 - 3.0
        self.v = np.array([self.x, self.y])
        self.side = 'left' if self.x < 0 else 'right'


class Doe(Assembly):
    """A 3 x 3 full factorial over p.x and p.y; three cases fail."""

    def configure(self):
        self.add('p', Plate())
        self.add('driver', DOEDriver(generator=FullFactorial(num_levels=3),
                                     error_policy='RETRY', max_retries=0))
        self.driver.workflow.add('p')
        self.driver.add_parameter('p.x', low=-5.0, high=5.0)
        self.driver.add_parameter('p.y', low=-5.0, high=5.0)
        self.driver.add_response('p.f')
        self.driver.add_response('p.v')
        self.driver.add_response('p.side')


class Opt(Assembly):
    """SLSQP on the paraboloid with one constraint."""

    def configure(self):
        self.add('p', Plate())
        self.add('driver', ScipyOptimizer(method='SLSQP'))
        self.driver.workflow.add('p')
        self.driver.add_parameter('p.x', low=-10.0, high=10.0)
        self.driver.add_parameter('p.y', low=-10.0, high=10.0)
        self.driver.add_objective('p.f')
        self.driver.add_constraint('p.x - p.y >= 15.0')


class Half(Component):
    a = Float(1.0, iotype='in', units='s')
    b = Float(0.0, iotype='in')
    c = Float(iotype='out', units='s')

    def execute(self):
        self.c = 0.5*self.b + self.a


class Loop(Assembly):
    """A recording solver inside a two-case DOE: cases of 'solver' and of 'driver'."""

    def configure(self):
        self.add('h', Half())
        self.add('g', Half())
        self.connect('h.c', 'g.b')
        self.connect('g.c', 'h.b')
        self.add('solver', FixedPointIterator(tolerance=1e-6, record=True))
        self.solver.workflow.add(['h', 'g'])
        self.add('driver', DOEDriver(generator=FullFactorial(num_levels=2)))
        self.driver.workflow.add('solver')
        self.driver.add_parameter(('h.a', 'g.a'), low=1.0, high=2.0)
        self.driver.add_response('h.c')


def record_runs(directory: Path) -> dict[tuple[str, str], Path]:
    """Run Doe, Opt and Loop with the three recorders: (model, format) -> case file."""
    files = {}
    for cls in (Doe, Opt, Loop):
        name = cls.__name__.lower()
        paths = {fmt: directory / f'{name}.{fmt}' for fmt in FORMATS}
        top = set_as_top(cls())
        top.recorders = [CSVRecorder(paths['csv']), JSONRecorder(paths['jsonl']),
                         SQLiteRecorder(paths['sqlite'])]
        top.run()
        files.update(((name, fmt), path) for fmt, path in paths.items())
    for fmt, recorder in zip(FORMATS, (CSVRecorder, JSONRecorder, SQLiteRecorder)):
        path = directory / f'empty.{fmt}'
        with recorder(path):
            pass
        files['empty', fmt] = path
    return files


@pytest.fixture(scope='module')
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    return record_runs(tmp_path_factory.mktemp('cases'))


def ids(records):
    return [record['id'] for record in records]


# -- selecting --------------------------------------------------------------------------------

@pytest.mark.parametrize('fmt', FORMATS)
def test_filters_by_driver_status_and_where(files, fmt):
    path = files['doe', fmt]
    assert ids(select_cases(path)) == list(range(9))
    assert ids(select_cases(path, status='failed')) == DOE_FAILED
    assert ids(select_cases(path, driver='driver', status='ok')) == [0, 1, 2, 3, 4, 6]
    assert ids(select_cases(path, where=['p.x > 3'])) == [6, 7, 8]
    assert ids(select_cases(path, where='p.x > 3')) == [6, 7, 8]      # one string is one
    assert ids(select_cases(path, where=['p.x > 3', 'p.y < 0'])) == [6]   # all must hold
    assert ids(select_cases(path, where=['p.x >= 0'], status='failed')) == DOE_FAILED
    # a failed case's outputs are NaN: they compare false, either way
    assert ids(select_cases(path, where=['p.f > -100'])) == [0, 1, 2, 3, 4, 6]
    assert ids(select_cases(path, where=['p.f <= -100'])) == []
    # the safe evaluator's arithmetic, functions, chained comparisons and constant indices
    assert ids(select_cases(path, where=['-1 < p.x + p.y < 1'])) == [2, 4, 6]
    assert ids(select_cases(path, where=['abs(p.x) == 5', 'sqrt(p.f) > 9'])) == [0, 2]
    assert ids(select_cases(path, where=['p.v[1] > 0', 'p.v[0] < 0'])) == [2]


@pytest.mark.parametrize('fmt', FORMATS)
def test_drivers_of_a_nested_run(files, fmt):
    path = files['loop', fmt]
    solver, driver = select_cases(path, driver='solver'), select_cases(path, driver='driver')
    assert len(driver) == 2 and len(solver) > 2
    assert sorted(ids(solver + driver)) == list(range(len(solver) + len(driver)))
    passes = [r for r in solver if r['iteration'].startswith('driver:0|')]
    assert passes and max(ids(passes)) < driver[0]['id']   # recorded before their case
    assert all(r['iteration'].startswith('driver:') and '|solver:' in r['iteration']
               for r in solver)
    assert ids(select_cases(path, driver='driver', where=['h.a > 1.5'])) == [driver[1]['id']]
    counts = summarize(select_cases(path))
    assert list(counts) == ['solver', 'driver']
    assert counts['driver'] == {'total': 2, 'ok': 2, 'failed': 0}
    assert counts['solver']['total'] == len(solver)


@pytest.mark.parametrize('fmt', FORMATS)
def test_summary_counts(files, fmt):
    assert summarize(select_cases(files['doe', fmt])) == {
        'driver': {'total': 9, 'ok': 6, 'failed': 3}}
    assert summarize(select_cases(files['doe', fmt], where=['p.x < 0'])) == {
        'driver': {'total': 3, 'ok': 3, 'failed': 0}}
    assert summarize([]) == {}


def test_unknown_driver_names_the_drivers_present(files):
    path = files['loop', 'sqlite']
    with pytest.raises(ViewError) as info:
        select_cases(path, driver='slover')
    assert str(info.value) == (
        f"{str(path)!r}: no case recorded by driver 'slover'; expected one of the drivers it "
        f"holds: 'solver', 'driver'; did you mean 'solver'?")


def test_bad_status(files):
    path = files['doe', 'csv']
    with pytest.raises(ViewError, match=r"expected status to be one of 'ok', 'failed' or "
                                        r"None, got 'broken' \(str\)") as info:
        select_cases(path, status='broken')
    assert str(path) in str(info.value)


@pytest.mark.parametrize('fmt', FORMATS)
def test_where_naming_an_unknown_variable(files, fmt):
    path = files['doe', fmt]
    with pytest.raises(ExpressionError) as info:
        select_cases(path, where=['p.x > 0', 'p.yy < 3'])
    assert str(info.value) == (
        f"{str(path)!r} --where 'p.yy < 3': no variable 'p.yy' in this case file; expected "
        f"one of 'p.x', 'p.y', 'p.f', 'p.v', 'p.side'; did you mean 'p.y'?")


def test_where_over_an_optimizer_run(files):
    path = files['opt', 'sqlite']
    records = select_cases(path)
    # the constraint's text is an expression over p.x and p.y (its recorded residual column
    # cannot be named: only dotted paths can)
    met = select_cases(path, where=['p.x - p.y >= 15.0 - 1e-6'])
    assert met and ids(met) == [r['id'] for r in records if r['p.x'] - r['p.y'] >= 15.0 - 1e-6]
    assert ids(met) == [r['id'] for r in records if r['p.x - p.y >= 15.0'] <= 1e-6]


ATTACKS = [
    ("__import__('os').system('touch pwned')", "unknown function \"__import__('os').system\""),
    ("open('pwned', 'w')", "unknown function 'open'"),
    ('p.x.__class__', "no variable 'p.x.__class__'"),
    ('p.__class__', "no variable 'p.__class__'"),
    ('p.x.__class__.__bases__[0].__subclasses__()', "unknown function"),
    ('(lambda: 1)() > 0', "unknown function 'lambda: 1'"),
    ('(lambda: 1) == 1', 'Lambda is not allowed'),
    ('[c for c in (1, 2)]', 'ListComp is not allowed'),
    ("getattr(p, 'x') > 0", "unknown function 'getattr'"),
    ('(1).__class__', 'Attribute is not allowed'),
    ('p.x if p.y else p.f', 'IfExp is not allowed'),
    ('p.x > 0 and p.y > 0', 'BoolOp is not allowed'),
    ('9 ** 9 ** 9 > 0', 'digits; the limit is 4300 digits'),
]


@pytest.mark.parametrize(('text', 'why'), ATTACKS)
def test_where_that_tries_to_run_code_is_refused(files, tmp_path, monkeypatch, text, why):
    monkeypatch.chdir(tmp_path)
    path = files['doe', 'jsonl']
    with pytest.raises(ExpressionError) as info:
        select_cases(path, where=[text])
    message = str(info.value)
    assert message.startswith(f'{str(path)!r} --where'), message
    assert repr(text) in message and why in message, message
    assert list(tmp_path.iterdir()) == []


def test_where_that_is_not_true_or_false(files):
    path = files['doe', 'sqlite']
    with pytest.raises(ViewError) as info:
        select_cases(path, where=['p.v > 1'])
    assert str(info.value) == (
        f"{str(path)!r} --where 'p.v > 1': expected true or false for case 0 (a comparison "
        f"such as p.x > 3; index an array: p.v[0] > 1), got array([False, False]) (ndarray)")
    with pytest.raises(ViewError, match=r"expected true or false for case 0 .* got -5.0 "
                                        r"\(float\)"):
        select_cases(path, where=['p.x'])


def test_where_that_fails_on_a_case(files):
    path = files['doe', 'csv']
    with pytest.raises(ViewError) as info:
        select_cases(path, where=['p.side > 0'])   # a string compared with a number
    assert str(info.value).startswith(f"{str(path)!r} --where 'p.side > 0': cannot be "
                                      f"evaluated for case 0: TypeError: ")


# -- exporting --------------------------------------------------------------------------------

def same(a, b):
    """Equal values, NaN equal to NaN and arrays compared element-wise."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@pytest.mark.parametrize('fmt', FORMATS)
def test_export_csv_reads_back_as_a_case_file(files, fmt, tmp_path):
    selected = select_cases(files['doe', fmt], where=['p.x >= 0'])
    out = export_cases(selected, tmp_path / 'sel.csv')
    assert out == tmp_path / 'sel.csv'
    back = read_cases(out)
    assert ids(back) == ids(selected) == [3, 4, 5, 6, 7, 8]
    for old, new in zip(selected, back):
        assert old.keys() == new.keys()
        assert all(same(old[key], new[key]) for key in old), (old, new)
    assert [r['status'] for r in back] == ['ok', 'ok', 'failed', 'ok', 'failed', 'failed']
    assert 'too large' in back[2]['error']


@pytest.mark.parametrize('fmt', FORMATS)
def test_export_json(files, fmt, tmp_path):
    selected = select_cases(files['doe', fmt], status='failed')
    out = export_cases(selected, tmp_path / 'failed.json')
    data = json.loads(out.read_text(encoding='utf-8'))   # standard JSON: no NaN literals
    assert [r['id'] for r in data] == DOE_FAILED
    assert data[0]['p.x'] == 0.0 and data[0]['p.y'] == 5.0
    assert data[0]['p.f'] is None and data[0]['p.v'] == [None, None]   # NaN -> null
    assert data[0]['p.side'] is None and 'too large' in data[0]['error']
    ok = json.loads(export_cases(select_cases(files['doe', fmt], where=['p.x < 0']),
                                 tmp_path / 'ok.json').read_text(encoding='utf-8'))
    assert ok[0] == {'id': 0, 'driver': 'driver', 'iteration': 'driver:0', 'status': 'ok',
                     'error': None, 'p.x': -5.0, 'p.y': -5.0, 'p.f': 87.0, 'p.v': [-5.0, -5.0],
                     'p.side': 'left'}


@pytest.mark.parametrize('name', ['cases.txt', 'cases', 'cases.JSONL'])
def test_export_to_an_unknown_suffix(files, tmp_path, name):
    out = tmp_path / name
    with pytest.raises(ViewError) as info:
        export_cases(select_cases(files['doe', 'csv']), out)
    given = repr(out.suffix) if out.suffix else 'no suffix'
    assert str(info.value) == (f'cannot export cases to {str(out)!r}: expected a file name '
                               f'ending in .csv or .json, got {given}')
    assert not out.exists()


# -- files that are not what they should be ---------------------------------------------------

BAD_FILES = [
    ('image.sqlite', PNG, "expected an SQLite case database (as its extension '.sqlite' says), "
                          "found a file starting with b'\\x89PNG"),
    ('notes.sqlite', b'some notes\n', "expected an SQLite case database (as its extension "
                                      "'.sqlite' says), found a file starting with b'some notes"),
    ('image.jsonl', PNG, 'expected UTF-8 JSON Lines text, found undecodable bytes'),
    ('notes.jsonl', b'some notes\n', 'expected one JSON object per line with keys id, driver, '
                                     'iteration, status, error, t_start, t_end, retries, inputs, '
                                     'outputs, found invalid JSON on line 1'),
    ('image.csv', PNG, 'expected UTF-8 CSV text, found undecodable bytes'),
    ('notes.csv', b'a,b\n1,2\n', 'expected a CSV case file with a header starting id,driver,'
                                 "iteration,status,error,t_start,t_end,retries, found the header "
                                 "'a,b'"),
    ('image.png', PNG, "cannot tell the case file format: expected an extension .csv, .jsonl, "
                       ".json, .sqlite, .db or fmt='csv'|'jsonl'|'sqlite', found the extension "
                       "'.png'"),
]


@pytest.mark.parametrize(('name', 'content', 'why'), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_file_that_is_not_a_case_file(tmp_path, capsys, name, content, why):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RecorderError) as info:
        select_cases(path)
    assert str(info.value).startswith(f'{str(path)!r}: {why}'), str(info.value)
    assert main(['cases', str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'openmdao-like cases: error: cannot list the cases of {str(path)!r}: '
                          f'RecorderError: {str(path)!r}: {why}'), err


def copy_run(files, tmp_path, fmt):
    """A copy of the DOE's case file (and its sidecar) of format ``fmt``."""
    source = files['doe', fmt]
    target = tmp_path / source.name
    target.write_bytes(source.read_bytes())
    if fmt != 'sqlite':
        sidecar = Path(f'{source}.meta.json')
        Path(f'{target}.meta.json').write_bytes(sidecar.read_bytes())
    return target


@pytest.mark.parametrize('fmt', FORMATS)
def test_a_newer_format_version(files, tmp_path, capsys, fmt):
    path = case_file = copy_run(files, tmp_path, fmt)
    if fmt == 'sqlite':
        with sqlite3.connect(path) as conn:
            conn.execute('UPDATE metadata SET format_version = 99')
        conn.close()
        why = ('expected an SQLite case database (tables cases and metadata, format_version '
               'at most 2), found format_version 99 (written by a newer openmdao_like?)')
    else:
        sidecar = Path(f'{path}.meta.json')
        meta = json.loads(sidecar.read_text(encoding='utf-8'))
        sidecar.write_text(json.dumps({**meta, 'format_version': 99}), encoding='utf-8')
        why = ('expected a JSON object with keys format_version, start, end, versions, '
               'variables and a format_version from 2 to 2, found format_version 99 (written '
               'by a newer openmdao_like?)')
        path = sidecar                          # the error names the file that says so
    with pytest.raises(RecorderError) as info:
        select_cases(case_file)
    assert str(info.value) == f'{str(path)!r}: {why}'
    assert main(['cases', str(case_file)]) == 1
    assert f'RecorderError: {str(path)!r}: {why}' in capsys.readouterr().err


@pytest.mark.parametrize('fmt', FORMATS)
def test_an_empty_case_file(files, capsys, fmt):
    path = files['empty', fmt]
    assert select_cases(path) == []
    assert read_case_file(path).drivers == []
    assert main(['cases', str(path)]) == 0
    assert capsys.readouterr().out == f'{path}: no cases (an empty case file)\n'


def test_without_the_metadata_sidecar(files, tmp_path):
    path = tmp_path / 'doe.csv'
    path.write_bytes(files['doe', 'csv'].read_bytes())
    case_file = read_case_file(path)
    assert case_file.metadata is None and case_file.units('p.x') is None
    assert read_case_file(files['doe', 'csv']).units('p.x') == 'm'
    assert ids(select_cases(path, where=['p.x > 3'])) == [6, 7, 8]


# -- openmdao-like cases ----------------------------------------------------------------------

def test_cli_cases_lists_and_counts(files, capsys):
    path = files['doe', 'sqlite']
    assert main(['cases', str(path), '--status', 'failed', '--where', 'p.x > 3']) == 0
    out = capsys.readouterr().out
    head, listing = out.split('\n\n')
    assert head.splitlines() == [f'{path}: 9 cases', 'driver  total  ok  failed',
                                 '------  -----  --  ------', 'driver      9   6       3']
    lines = listing.splitlines()
    assert lines[0] == "2 of 9 cases selected (--status failed --where 'p.x > 3'):"
    assert lines[1].split() == ['id', 'driver', 'iteration', 'status', 'p.x', 'p.y', 'p.f',
                                'p.v', 'p.side', 'error']
    assert lines[3].split()[:7] == ['7', 'driver', 'driver:7', 'failed', '5', '0', 'nan']
    assert lines[3].endswith("ValueError: x + y = 5.0 is too large, raised by component 'p' "
                             "(Plate)")
    assert len(lines) == 5


def test_cli_cases_limit(files, capsys):
    assert main(['cases', str(files['loop', 'csv']), '--limit', '3']) == 0
    listing = capsys.readouterr().out.split('\n\n')[1].splitlines()
    assert listing[0].startswith('26 of 26 cases selected (no filters)')
    assert [line.split()[0] for line in listing[3:6]] == ['0', '1', '2']
    assert listing[6] == '(23 more not shown: --limit 0 shows all)'
    assert main(['cases', str(files['loop', 'csv']), '--limit', '0', '--driver', 'driver']) == 0
    listing = capsys.readouterr().out.split('\n\n')[1].splitlines()
    assert len(listing) == 5 and 'not shown' not in listing[-1]


def test_cli_cases_json(files, capsys):
    assert main(['cases', str(files['doe', 'jsonl']), '--json', '--where', 'p.y == 5']) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(r['id'], r['status'], r['p.f']) for r in data] == [
        (2, 'ok', 117.0), (5, 'failed', None), (8, 'failed', None)]


def test_cli_cases_export(files, tmp_path, capsys):
    out = tmp_path / 'sel.csv'
    assert main(['cases', str(files['opt', 'sqlite']), '--where', 'p.x > 3', '--where',
                 'p.y < 0', '--export', str(out)]) == 0
    stdout = capsys.readouterr().out
    exported = read_cases(out)
    assert stdout.endswith(f'wrote {len(exported)} cases to {out}\n')
    assert exported and all(r['p.x'] > 3 and r['p.y'] < 0 for r in exported)
    assert ids(exported) == ids(select_cases(files['opt', 'sqlite'], where=['p.x > 3']))
    out = tmp_path / 'sel.json'
    assert main(['cases', str(files['opt', 'csv']), '--json', '--export', str(out)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == json.loads(out.read_text(encoding='utf-8'))
    assert captured.err == f'wrote 11 cases to {out}\n'


def test_cli_cases_errors(files, tmp_path, capsys):
    path = files['doe', 'csv']
    assert main(['cases', str(path), '--where', 'p.z > 1']) == 1
    err = capsys.readouterr().err
    assert f"ExpressionError: {str(path)!r} --where 'p.z > 1': no variable 'p.z'" in err
    assert main(['cases', str(path), '--driver', 'optimizer']) == 1
    assert "no case recorded by driver 'optimizer'; expected one of the drivers it holds: " \
           "'driver'" in capsys.readouterr().err
    assert main(['cases', str(path), '--export', str(tmp_path / 'out.xlsx')]) == 1
    assert "expected a file name ending in .csv or .json, got '.xlsx'" in capsys.readouterr().err
    assert not (tmp_path / 'out.xlsx').exists()
    assert main(['cases', str(tmp_path / 'missing.sqlite')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('usage: openmdao-like cases')
    assert f"error: {str(tmp_path / 'missing.sqlite')!r}: no such case file" in err
    assert main(['cases', str(path), '--limit', '-1']) == 2
    assert 'error: --limit: expected a number of cases, 0 or more, got -1' in \
        capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(['cases', str(path), '--status', 'broken'])
    assert info.value.code == 2
    assert "argument --status: invalid choice: 'broken' (choose from 'ok', 'failed')" in \
        capsys.readouterr().err
