"""Saving and loading whole models: YAML and pickle round trips give the same model and the same
results; the YAML is readable, stable and diffable; files travel with the model."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

import persist_models as pm
from openmdao_like import Assembly, SequentialWorkflow, load, set_as_top
from openmdao_like.persistence import read_header
from openmdao_like.recorders import CSVRecorder, read_cases

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ['yaml', 'pickle']


@pytest.fixture
def examples(monkeypatch):
    """The examples directory on sys.path, so its model classes import by name."""
    monkeypatch.syspath_prepend(str(ROOT / 'examples'))
    import paraboloid
    import sellar
    return paraboloid, sellar


def roundtrip(obj, fmt, tmp_path, name='model'):
    path = tmp_path / f'{name}.{"yaml" if fmt == "yaml" else "pkl"}'
    obj.save(path, fmt=fmt)
    return load(path, directory=tmp_path)


def yaml_text(obj) -> str:
    stream = io.BytesIO()
    obj.save(stream, fmt='yaml')
    return stream.getvalue().decode()


@pytest.mark.parametrize('fmt', FORMATS)
def test_paraboloid_gives_the_same_optimum_after_load(examples, tmp_path, fmt):
    paraboloid, _ = examples
    original = set_as_top(paraboloid.OptimizationConstrained())
    loaded = roundtrip(original, fmt, tmp_path)
    assert type(loaded) is paraboloid.OptimizationConstrained
    original.run()
    loaded.run()
    assert loaded.p.x == pytest.approx(7.1666, abs=1e-3)
    assert (loaded.p.x, loaded.p.y, loaded.p.f_xy) == pytest.approx(
        (original.p.x, original.p.y, original.p.f_xy), abs=1e-9)
    assert loaded.driver.get_constraints().keys() == original.driver.get_constraints().keys()


@pytest.mark.parametrize('fmt', FORMATS)
def test_sellar_gives_the_same_optimum_after_load(examples, tmp_path, fmt):
    _, sellar = examples
    original = set_as_top(sellar.SellarMDF())
    loaded = roundtrip(original, fmt, tmp_path)
    original.run()
    loaded.run()
    assert loaded.dis1.z1 == pytest.approx(1.9776, abs=1e-3)
    assert loaded.dis1.y1 == pytest.approx(original.dis1.y1, abs=1e-9)
    assert loaded.solver.tolerance == 1e-10
    assert loaded.list_connections() == original.list_connections()
    assert [p.targets for p in loaded.driver.get_parameters().values()] == \
        [['dis1.z1', 'dis2.z1'], ['dis1.z2', 'dis2.z2'], ['dis1.x1']]


@pytest.mark.parametrize('fmt', FORMATS)
def test_a_model_run_before_saving_keeps_its_values(examples, tmp_path, fmt):
    paraboloid, _ = examples
    top = set_as_top(paraboloid.OptimizationConstrained())
    top.run()
    loaded = roundtrip(top, fmt, tmp_path)
    assert (loaded.p.x, loaded.p.y, loaded.p.f_xy) == (top.p.x, top.p.y, top.p.f_xy)


@pytest.mark.parametrize('fmt', FORMATS)
def test_every_variable_type_round_trips_exactly(tmp_path, fmt):
    top = set_as_top(Assembly(), str(tmp_path))
    comp = top.add('e', pm.Everything())
    comp.set('f', 2.25)
    comp.i = 7
    comp.b = True
    comp.s = 'ünïcode "quoted" # not a comment'
    comp.e = 'c'
    comp.a = np.arange(6.0).reshape(2, 3) / 3.0
    comp.ai = np.array([5, -1, 2**31 - 1, 0], dtype=np.int32)
    comp.l = [1, 'two', [3.0, None]]
    comp.d = {'nested': {'x': [1, 2]}, 'nan': float('nan'), 7: 'int key'}
    comp.klass = {'plain': 'dict'}
    comp.total = -0.1
    loaded = roundtrip(top, fmt, tmp_path).e
    assert loaded.f == 2.25 and loaded.i == 7 and loaded.b is True
    assert loaded.s == comp.s and loaded.e == 'c'
    assert loaded.a.dtype == np.float64 and loaded.a.shape == (2, 3)
    assert np.array_equal(loaded.a, comp.a)
    assert loaded.ai.dtype == np.int32 and np.array_equal(loaded.ai, comp.ai)
    assert loaded.l == [1, 'two', [3.0, None]]
    assert loaded.d['nested'] == {'x': [1, 2]} and np.isnan(loaded.d['nan'])
    assert loaded.d[7] == 'int key'
    assert loaded.klass == {'plain': 'dict'} and loaded.total == -0.1


def test_yaml_is_readable_and_names_classes_and_versions(examples):
    paraboloid, _ = examples
    text = yaml_text(set_as_top(paraboloid.OptimizationConstrained()))
    header, model = yaml.safe_load_all(text.replace('!array', ''))
    assert header['openmdao_like_model'] == 1 and header['format'] == 'yaml'
    assert header['python'].count('.') == 2
    rows = {row['class']: row for row in header['classes']}
    assert rows['openmdao_like.drivers.ScipyOptimizer']['distribution'] == 'openmdao_like'
    assert rows['paraboloid.Paraboloid']['distribution'] is None
    assert model['class'] == 'paraboloid.OptimizationConstrained'
    driver = model['children']['driver']
    assert driver['settings']['method'] == 'SLSQP'
    assert driver['parameters'][0] == {'target': 'p.x', 'low': -50.0, 'high': 50.0}
    assert driver['objectives'] == ['p.f_xy']
    assert driver['constraints'] == ['p.x - p.y >= 15.0']
    assert driver['workflow'] == {'class': 'openmdao_like.workflow.Dataflow', 'members': ['p']}
    assert model['children']['p']['variables'] == {'f_xy': 0.0, 'x': 0.0, 'y': 0.0}
    assert text.rstrip().endswith('\n...')


def test_arrays_are_written_with_dtype_and_shape():
    top = set_as_top(Assembly())
    top.add('e', pm.Everything())
    text = yaml_text(top)
    assert '    a: !array\n        dtype: float64\n        shape: [2, 3]\n' \
           '        data: [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]' in text
    assert 'dtype: int32' in text


def test_yaml_is_stable_across_save_load_save(examples, tmp_path):
    _, sellar = examples
    first = yaml_text(set_as_top(sellar.SellarMDF()))
    again = yaml_text(roundtrip(set_as_top(sellar.SellarMDF()), 'yaml', tmp_path))
    assert first == again
    assert first == yaml_text(set_as_top(sellar.SellarMDF()))


def test_a_changed_value_changes_one_line_of_the_yaml(examples):
    paraboloid, _ = examples
    top = set_as_top(paraboloid.OptimizationConstrained())
    before = yaml_text(top).splitlines()
    top.p.x = 2.5
    after = yaml_text(top).splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(before) == len(after) and changed == [('      x: 0.0', '      x: 2.5')]


@pytest.mark.parametrize('fmt', FORMATS)
def test_structure_changed_after_configure_is_rebuilt_exactly(tmp_path, fmt):
    top = set_as_top(pm.Cascade())
    # change what configure built: add, rewire, re-link, new variables, other drivers
    top.remove('sub')
    top.add('sub', pm.Sub())
    top.doe.workflow.add('sub')
    top.add('extra', pm.Scale(k=5.0))
    top.connect('sub.y', 'extra.x', link='pull')
    top.doe.workflow.add('extra')
    top.opt.remove_parameter('p.y')
    top.opt.add_parameter('p.y', low=-20.0, high=20.0, scaler=2.0, adder=1.0, name='why')
    top.opt.add_response('p.x + p.y')
    top.create_passthrough('p.f_xy', 'objective')
    top.driver_workflow = ['opt', 'doe']
    top.recorders = [CSVRecorder(tmp_path / 'cases.csv')]

    loaded = roundtrip(top, fmt, tmp_path)
    assert list(loaded._children) == list(top._children)
    assert loaded.list_connections() == top.list_connections()
    assert loaded.get_connection('extra.x').link == 'pull'
    assert loaded.get_connection('sub.x') is None  # the replaced sub lost its feed
    assert loaded.extra.k == 5.0
    assert loaded.driver_workflow == ['opt', 'doe']
    assert list(loaded.doe.workflow._names) == list(top.doe.workflow._names)
    why = loaded.opt.get_parameters()['why']
    assert (why.low, why.high, why.scaler, why.adder) == (-20.0, 20.0, 2.0, 1.0)
    assert loaded.opt.get_responses() == ['p.x + p.y']
    assert loaded.get_metadata('objective')['units'] == 'm**2'
    assert [type(r) for r in loaded.recorders] == [CSVRecorder]
    assert Path(loaded.recorders[0].path) == tmp_path / 'cases.csv'

    top.run()
    loaded.run()
    assert loaded.objective == pytest.approx(top.objective, abs=1e-9)
    assert loaded.extra.y == pytest.approx(top.extra.y, abs=1e-9)
    rows = read_cases(tmp_path / 'cases.csv')
    assert all(r['status'] == 'ok' for r in rows)
    doe_rows = [r for r in rows if 'sub.y' in r and r['sub.y'] is not None]
    assert len(doe_rows) == 8 and all(-10 <= r['p.x'] <= 10 for r in doe_rows)


@pytest.mark.parametrize('fmt', FORMATS)
def test_links_and_sequential_workflows_round_trip(tmp_path, fmt):
    top = set_as_top(Assembly())
    top.add('a', pm.Scale())
    top.add('b', pm.Scale())
    top.connect('a.y', 'b.x', link='pull')
    top.driver.workflow = SequentialWorkflow()
    top.driver.workflow.add(['a', 'b', 'a', 'b'])
    top.a.x = 1.0
    loaded = roundtrip(top, fmt, tmp_path)
    assert loaded.get_connection('b.x').link == 'pull'
    assert type(loaded.driver.workflow) is SequentialWorkflow
    assert list(loaded.driver.workflow._names) == ['a', 'b', 'a', 'b']
    loaded.run()
    assert loaded.b.y == 4.0 and loaded.a.exec_count == 2


@pytest.mark.parametrize('fmt', FORMATS)
def test_constructor_arguments_are_saved_as_settings(tmp_path, fmt):
    top = set_as_top(pm.Chain(n=5))
    top.s0.x = 1.0
    loaded = roundtrip(top, fmt, tmp_path)
    assert loaded.n == 5 and len(loaded.driver.workflow) == 5
    loaded.run()
    assert loaded.s4.y == 32.0


@pytest.mark.parametrize('fmt', FORMATS)
def test_a_component_is_saved_without_its_assembly(tmp_path, fmt):
    top = set_as_top(pm.Cascade())
    top.p.x = 4.0
    loaded = roundtrip(top.p, fmt, tmp_path)
    assert type(loaded) is pm.Paraboloid and loaded.parent is None and loaded.x == 4.0
    assert top.p.parent is top  # saving did not detach it
    loaded.run()
    assert loaded.f_xy == pytest.approx((4 - 3)**2 + 0 + 16 - 3)


@pytest.mark.parametrize('fmt', FORMATS)
def test_streams(examples, fmt):
    paraboloid, _ = examples
    top = set_as_top(paraboloid.OptimizationConstrained())
    stream = io.BytesIO()
    top.save(stream, fmt=fmt)
    stream.seek(0)
    assert type(load(stream)) is paraboloid.OptimizationConstrained


def test_yaml_goes_to_a_text_stream_too(examples):
    paraboloid, _ = examples
    text = io.StringIO()
    set_as_top(paraboloid.OptimizationConstrained()).save(text, fmt='yaml')
    assert text.getvalue().startswith('# openmdao_like model')
    assert type(load(io.StringIO(text.getvalue()))) is paraboloid.OptimizationConstrained


def test_format_follows_the_file_name(examples, tmp_path):
    paraboloid, _ = examples
    top = set_as_top(paraboloid.OptimizationConstrained())
    top.save(tmp_path / 'm.yml')
    top.save(tmp_path / 'm.bin')
    assert (tmp_path / 'm.yml').read_text().startswith('# openmdao_like model')
    assert (tmp_path / 'm.bin').read_bytes().startswith(b'OPENMDAO_LIKE_MODEL pickle\n')
    assert read_header(tmp_path / 'm.bin')['format'] == 'pickle'
    assert read_header(tmp_path / 'm.yml')['format'] == 'yaml'


def test_pickle_header_lists_the_classes(examples, tmp_path):
    paraboloid, _ = examples
    set_as_top(paraboloid.OptimizationConstrained()).save(tmp_path / 'm.pkl')
    header = read_header(tmp_path / 'm.pkl')
    names = {row['class'] for row in header['classes']}
    assert {'paraboloid.OptimizationConstrained', 'paraboloid.Paraboloid',
            'openmdao_like.drivers.ScipyOptimizer', 'openmdao_like.Float'} <= names
    assert header['payload']['bytes'] > 0


# -- files ----------------------------------------------------------------------------------------
def _model_with_files(base: Path):
    base.mkdir(parents=True, exist_ok=True)
    top = set_as_top(Assembly(), str(base))
    comp = top.add('e', pm.Everything())
    comp.directory = 'work/e'
    top.driver.workflow.add('e')
    top.run()
    return top


@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('container', ['dir', 'zip'])
def test_files_are_saved_beside_the_model_and_restored_below_the_new_directory(
        tmp_path, fmt, container):
    top = _model_with_files(tmp_path / 'orig')
    target = tmp_path / ('saved.zip' if container == 'zip' else 'saved')
    top.save(target, fmt=fmt, include_files=True)
    if container == 'zip':
        names = zipfile.ZipFile(target).namelist()
    else:
        names = sorted(str(p.relative_to(target)) for p in target.rglob('*') if p.is_file())
    assert f'model.{"yaml" if fmt == "yaml" else "pkl"}' in names
    assert 'files/work/e/report.txt' in names

    elsewhere = tmp_path / 'elsewhere'
    loaded = load(target, directory=elsewhere)
    assert loaded.get_abs_directory() == str(elsewhere)
    restored = elsewhere / 'work' / 'e' / 'report.txt'
    assert restored.read_text() == f'total {top.e.total}\n'
    assert loaded.e.report.abspath() == str(restored)
    with loaded.e.report.open() as fh:
        assert fh.read().startswith('total')


def test_files_go_into_a_zip_written_to_a_stream(tmp_path):
    top = _model_with_files(tmp_path / 'orig')
    stream = io.BytesIO()
    top.save(stream, fmt='yaml', include_files=True)
    stream.seek(0)
    loaded = load(stream, directory=tmp_path / 'new')
    assert (tmp_path / 'new' / 'work' / 'e' / 'report.txt').is_file()
    assert loaded.e.directory == 'work/e'


def test_without_include_files_only_the_reference_is_saved(tmp_path):
    top = _model_with_files(tmp_path / 'orig')
    top.save(tmp_path / 'm.yaml')
    assert "report: !file {path: report.txt}" in (tmp_path / 'm.yaml').read_text()
    loaded = load(tmp_path / 'm.yaml', directory=tmp_path / 'new')
    assert loaded.e.report.path == 'report.txt' and loaded.e.report.owner is loaded.e
    assert not (tmp_path / 'new' / 'work').exists()


def test_saving_leaves_no_temporary_files(examples, tmp_path):
    paraboloid, _ = examples
    set_as_top(paraboloid.OptimizationConstrained()).save(tmp_path / 'm.yaml')
    assert os.listdir(tmp_path) == ['m.yaml']


def test_a_model_of_a_model_file_loaded_from_a_pickle_runs_on_process_workers(tmp_path):
    """A model whose classes come from a model file (not importable: pickled by value) saved
    and loaded pickles again, so it ships to the workers of a LocalExecutor: what a runner
    does with the model saved with a submitted run."""
    from openmdao_like.cli.run import load_model

    source = tmp_path / 'square_model.py'
    source.write_text(
        'from openmdao_like import Assembly, Component, Float\n'
        'from openmdao_like.drivers import CaseIteratorDriver\n\n\n'
        'class Square(Component):\n'
        "    x = Float(0.0, iotype='in')\n"
        "    y = Float(0.0, iotype='out')\n\n"
        '    def execute(self):\n'
        '        self.y = self.x ** 2\n\n\n'
        'class Model(Assembly):\n'
        '    def configure(self):\n'
        "        self.add('p', Square())\n"
        "        self.add('driver', CaseIteratorDriver(\n"
        "            cases=[{'p.x': float(i)} for i in range(6)], sequential=False))\n"
        "        self.driver.workflow.add('p')\n"
        "        self.driver.add_response('p.y')\n", encoding='utf-8')
    from openmdao_like.persistence import save

    stream = io.BytesIO()
    save(load_model(str(source)), stream, 'pickle')
    stream.seek(0)
    top = load(stream)
    top.run()
    assert [case.outputs['p.y'] for case in top.driver.results] == [i * i for i in range(6)]
    assert top.p.pathname == 'p'
