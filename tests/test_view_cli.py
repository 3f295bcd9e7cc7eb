"""``openmdao-like view`` from every kind of model file, ``openmdao-like show``, and what they
say about a model that does not load."""

from __future__ import annotations

import json
import re
import sys

import pytest

from openmdao_like import set_as_top
from openmdao_like.cli.main import main
from view_models import Aircraft

COMPONENTS = ('wing', 'body', 'trim', 'engine', 'engine.core')


def cli(capsys, *args):
    """``openmdao-like ARGS`` in this process: (exit status, stdout, stderr)."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def page_data(path):
    """The model description inlined in a written view."""
    text = path.read_text(encoding='utf-8')
    found = re.search(r'<script id="model-data" type="application/json">(.*?)</script>', text,
                      re.S)
    return json.loads(found.group(1))


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    """The aircraft saved as YAML, pickle and a zip (with files)."""
    directory = tmp_path_factory.mktemp('saved')
    top = set_as_top(Aircraft())
    paths = {}
    for name, kwargs in (('aircraft.yaml', {}), ('aircraft.pkl', {}),
                         ('aircraft.zip', {'include_files': True})):
        paths[name.split('.')[1]] = directory / name
        top.save(str(directory / name), **kwargs)
    return paths


MODEL_PY = '''
from openmdao_like import set_as_top
from view_models import Aircraft
top = set_as_top(Aircraft())
'''


@pytest.mark.parametrize('kind', ['py', 'yaml', 'pkl', 'zip'])
def test_view_of_every_kind_of_model_file(capsys, tmp_path, saved, kind, monkeypatch):
    if kind == 'py':
        model = tmp_path / 'aircraft.py'
        model.write_text(MODEL_PY)
    else:
        model = saved[kind]
    monkeypatch.chdir(tmp_path)
    status, out, err = cli(capsys, 'view', model)
    assert status == 0, err
    written = tmp_path / 'aircraft.html'                     # MODEL's name, here
    assert f'written to {written.name}' in out
    data = page_data(written)
    paths = {node['path'] for node in data['nodes'] if node['kind'] != 'driver'}
    assert paths == {'', *COMPONENTS}
    assert len(data['connections']) == 8
    assert data['title'] == 'top (Aircraft)'


def test_view_options(capsys, tmp_path):
    model = tmp_path / 'model.py'
    model.write_text(MODEL_PY)
    out_file = tmp_path / 'out' / 'v.html'
    status, _, err = cli(capsys, 'view', model, '-o', out_file)
    assert status == 1 and f"no such directory {str(out_file.parent)!r}" in err
    out_file.parent.mkdir()
    status, _, err = cli(capsys, 'view', model, '-o', out_file, '--title', 'My plane',
                         '--set', 'body.note=hello', '--run')
    assert status == 0, err
    data = page_data(out_file)
    assert data['title'] == 'My plane'
    values = {f"{node['path']}.{v['name']}": v['data'] for node in data['nodes']
              for v in node['vars']}
    assert values['body.note'] == 'hello'
    assert values['wing.lift'] == pytest.approx(100.0 * values['wing.span'])   # it ran


def test_a_model_that_does_not_load_is_reported_with_its_own_error(capsys, tmp_path):
    broken = tmp_path / 'broken.py'
    broken.write_text('raise ValueError("the wing spar is missing")\n')
    status, out, err = cli(capsys, 'view', broken)
    assert status == 1 and out == ''
    assert f"importing {str(broken)!r} failed" in err
    assert 'ValueError: the wing spar is missing' in err
    assert 'Traceback' not in err and 'openmdao_like/view' not in err
    assert not (tmp_path / 'broken.html').exists()

    bad_yaml = tmp_path / 'bad.yaml'
    bad_yaml.write_text('openmdao_like: {format: 99}\nroot: [unclosed\n')
    status, _, err = cli(capsys, 'show', bad_yaml)
    assert status == 1 and f"loading {str(bad_yaml)!r} failed" in err
    assert 'Traceback' not in err

    status, _, err = cli(capsys, 'view', tmp_path / 'missing.py')
    assert status == 2 and 'no such file' in err and 'missing.py' in err


def test_show_prints_every_variable(capsys, tmp_path):
    model = tmp_path / 'model.py'
    model.write_text(MODEL_PY)
    status, out, err = cli(capsys, 'show', model, '--style', 'plain')
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ['path', 'io', 'value', 'units', 'low', 'high', 'source']
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows['body.length_ft'] == ['body.length_ft', 'in', '1', 'ft', '-', '-',
                                      'wing.length']
    assert rows['wing.span'] == ['wing.span', 'in', '10', 'm', '1', '60', 'trim.span']
    assert rows['wing.temp'][-3:] == ['parameter', 'of', 'driver']
    assert rows['engine.thrust_in'][-1] == 'wing.lift'
    assert rows['engine.core.lift'][-1] == 'engine.thrust_in'
    assert len(rows) == 5 + 6 + 2 + 6 + 2 + 0   # wing, body, trim, engine.core, engine

    status, out, _ = cli(capsys, 'show', model, '--style', 'rich', '--match', 'wing.*')
    assert status == 0
    assert out.startswith('5 variables') and '┃ path' in out and '│ wing.span' in out
    assert 'body' not in out

    status, out, _ = cli(capsys, 'show', model, '--json', '--match', 'body.length_ft')
    assert json.loads(out) == [{'path': 'body.length_ft', 'iotype': 'in', 'type': 'Float',
                                'value': 1.0, 'units': 'ft', 'low': None, 'high': None,
                                'source': 'wing.length', 'desc': ''}]

    status, _, err = cli(capsys, 'show', model, '--match', 'nothing.*')
    assert status == 1 and "no variables matching 'nothing.*'" in err


DOE_PY = '''
from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import FullFactorial
from openmdao_like.recorders import CSVRecorder


class Picky(Component):
    x = Float(0.0, iotype='in', low=-1.0, high=1.0, units='m')
    y = Float(iotype='out', units='m**2')

    def execute(self):
        if self.x > 0.9:
            raise ValueError('too large')
        self.y = self.x**2


class Study(Assembly):
    def configure(self):
        self.add('c', Picky())
        self.add('driver', DOEDriver(FullFactorial(num_levels=5), error_policy=POLICY))
        self.driver.workflow.add('c')
        self.driver.add_parameter('c.x')
        self.driver.add_response('c.y')
        RECORDERS


top = set_as_top(Study())
'''


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b'\x89PNG\r\n\x1a\n', f'{path} is not a PNG'
    return int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')


def test_run_report_writes_the_view_and_the_plots(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / 'doe.py'
    model.write_text(DOE_PY.replace('RECORDERS', '').replace('POLICY', "'RETRY'"))
    status, out, err = cli(capsys, 'run', model, '--report', 'report')
    assert status == 0, err
    report = tmp_path / 'report'
    assert 'report in report: model.html, history.png, scatter.png, parallel.html' in out
    assert (report / 'cases.sqlite').is_file()           # no recorder: the report added one
    assert page_data(report / 'model.html')['title'] == 'top (Study)'
    assert all(side > 100 for side in png_size(report / 'history.png'))
    assert png_size(report / 'scatter.png')[0] > 100
    assert 'c.x' in (report / 'parallel.html').read_text(encoding='utf-8')


def test_a_failed_run_still_reports_what_its_own_recorder_holds(capsys, tmp_path,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / 'doe.py'
    model.write_text(DOE_PY.replace('RECORDERS', "self.recorders = [CSVRecorder('own.csv')]")
                     .replace('POLICY', "'ABORT'"))          # the last case fails: the run too
    status, out, err = cli(capsys, 'run', model, '--report', tmp_path / 'r', '-q')
    assert status == 1 and out == '' and 'ValueError: too large' in err
    assert (tmp_path / 'own.csv').is_file() and not (tmp_path / 'r' / 'cases.sqlite').exists()
    assert {p.name for p in (tmp_path / 'r').iterdir()} == {
        'model.html', 'history.png', 'scatter.png', 'parallel.html'}


def test_run_report_refuses_a_file_and_resume(capsys, tmp_path):
    model = tmp_path / 'doe.py'
    model.write_text(DOE_PY.replace('RECORDERS', '').replace('POLICY', "'RETRY'"))
    (tmp_path / 'taken').write_text('')
    status, _, err = cli(capsys, 'run', model, '--report', tmp_path / 'taken')
    assert status == 2 and 'expected a directory, found a file' in err
    status, _, err = cli(capsys, 'run', '--resume', 'abc', '--store', 'sqlite:///x.db',
                         '--report', tmp_path / 'r')
    assert status == 2 and '--report writes the report of a run of MODEL' in err


def test_a_missing_view_extra_is_named(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / 'doe.py'
    model.write_text(DOE_PY.replace('RECORDERS', "self.recorders = [CSVRecorder('c.csv')]")
                     .replace('POLICY', "'RETRY'"))
    assert cli(capsys, 'run', model, '-q')[0] == 0
    for name in ('matplotlib', 'matplotlib.figure', 'rich', 'rich.console'):
        monkeypatch.setitem(sys.modules, name, None)   # as if not installed
    status, _, err = cli(capsys, 'plot', 'c.csv', '--kind', 'history', '-o', 'h.png')
    assert status == 1 and 'pip install openmdao_like[view]' in err
    assert 'internal error' not in err and not (tmp_path / 'h.png').exists()
    status, _, err = cli(capsys, 'show', model, '--style', 'rich')
    assert status == 1 and 'cannot draw a rich table' in err
    assert 'pip install openmdao_like[view]' in err
