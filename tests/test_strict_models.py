"""Strict model files and clear messages (issue 13): a mistake in a YAML model — an unknown
setting, variable, key, workflow member, driver or connection end — is an error naming the file,
the line, the key and the closest valid names, instead of being ignored; a ``!!python/`` tag is
refused as such; a bad unit string says what is wrong with it in words; ``openmdao-like run``
imports the modules beside a saved model and names the class it cannot find in one line; a bad
``--set`` path names the closest ones. Files written by the previous release still load."""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from openmdao_like import Assembly, Float, load, set_as_top
from openmdao_like.cli.main import main
from openmdao_like.errors import PersistenceError, ValidationError
from openmdao_like.variables import units

#: A model saved by openmdao_like 0.1.0 (the release before strict model files): an assembly
#: with a paraboloid and a nested assembly, connected; a DOE driver (a LatinHypercube generator
#: as a tagged object) then a COBYLA optimizer in ``driver_workflow``.
RELEASED = Path(__file__).resolve().parent / 'data' / 'model_0_1_0.yaml'
#: What its optimizer finds: the paraboloid's minimum under p.x - p.y >= 15.
OPTIMUM = {'p.x': 7.1666667, 'p.y': -7.8333333, 'p.f_xy': -27.0833333}


def line_of(path: Path, text: str) -> int:
    """The 1-based number of the first line of ``path`` holding ``text``."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def released_copy(tmp_path: Path, old: str = '', new: str = '') -> Path:
    """The released model, copied into ``tmp_path`` with ``old`` replaced by ``new`` once."""
    text = RELEASED.read_text()
    if old:
        assert old in text, f'{old!r} not in {RELEASED.name}'
        text = text.replace(old, new, 1)
    path = tmp_path / 'model.yaml'
    path.write_text(text)
    return path


def load_error(path: Path) -> str:
    with pytest.raises(PersistenceError) as info:
        load(path)
    return str(info.value)


# -- files of the previous release ----------------------------------------------------------------
def test_a_file_of_the_previous_release_loads_and_runs(tmp_path):
    top = load(released_copy(tmp_path))
    assert (top.p.x, top.sub.scale.k, top.sub.y) == (7.166666663527634, 3.0, -81.2500000106066)
    assert (top.driver.method, top.driver.maxiter) == ('COBYLA', 500)
    assert type(top.doe.generator).__name__ == 'LatinHypercube'
    assert top.doe.generator.num_samples == 6
    assert top.list_connections() == [('p.f_xy', 'sub.x')]
    assert top.driver_workflow == ['doe', 'driver']
    top.p.x, top.p.y = 0.0, 0.0
    top.run()
    assert len(top.doe.results) == 6
    for path, value in OPTIMUM.items():
        assert top.get(path) == pytest.approx(value, abs=1e-4)
    assert top.sub.y == pytest.approx(3.0 * top.p.f_xy)


def test_the_cli_runs_a_file_of_the_previous_release(tmp_path, capsys):
    assert main(['run', str(released_copy(tmp_path))]) == 0
    assert "driver 'driver' (ScipyOptimizer)" in capsys.readouterr().out


# -- one test per silent mistake: each now names file, line, key and the closest names ------------
def test_an_unknown_setting_is_an_error(tmp_path):
    path = released_copy(tmp_path, '      method: COBYLA', '      methd: COBYLA')
    message = load_error(path)
    assert re.fullmatch(rf"{re.escape(str(path))}: line {line_of(path, 'methd:')}: driver: "
                        rf"settings: unknown setting 'methd' of ScipyOptimizer; did you mean "
                        rf"'method'\? \(settings: .*\bmaxiter, method, .*\btol\b.*\)", message), \
        message


def test_the_cli_fails_on_an_unknown_setting(tmp_path, capsys):
    """It ran SLSQP and exited 0."""
    path = released_copy(tmp_path, '      method: COBYLA', '      methd: COBYLA')
    assert main(['run', str(path)]) == 1
    err = capsys.readouterr().err
    assert f"line {line_of(path, 'methd:')}: driver: settings: unknown setting 'methd'" in err
    assert "did you mean 'method'?" in err


def test_an_unknown_setting_of_a_tagged_object_is_an_error(tmp_path):
    path = released_copy(tmp_path, 'num_samples: 6', 'num_sample: 6')
    assert load_error(path).startswith(
        f"{path}: line {line_of(path, 'num_sample:')}: doe.generator: args: unknown setting "
        f"'num_sample' of LatinHypercube; did you mean 'num_samples'? (settings: ")


def test_an_unknown_variable_is_an_error(tmp_path):
    path = released_copy(tmp_path, '      x: 7.166666663527634', '      xx: 7.166666663527634')
    assert load_error(path) == (f"{path}: line {line_of(path, 'xx:')}: p.xx: Paraboloid has no "
                                f"variable 'xx'; did you mean 'x'? (variables: f_xy, x, y)")


def test_an_unknown_key_of_a_node_is_an_error(tmp_path):
    path = released_copy(tmp_path, '    children:\n      driver:', '    childern:\n      driver:')
    assert load_error(path).startswith(
        f"{path}: line {line_of(path, 'childern:')}: sub: unknown key 'childern'; did you mean "
        f"'children'? (expected some of ['added_variables', 'children', 'class', ")


def test_an_unknown_key_of_a_parameter_is_an_error(tmp_path):
    path = released_copy(tmp_path, '{target: p.y, low: -10.0,', '{target: p.y, lo: -10.0,')
    assert load_error(path).startswith(
        f"{path}: line {line_of(path, 'lo: -10.0')}: doe.parameters[1]: unknown key 'lo'; did "
        f"you mean 'low'? (expected some of [")


def test_an_unknown_workflow_member_is_an_error(tmp_path):
    path = released_copy(tmp_path, 'members: [p, sub]', 'members: [p, sbu]')
    message = load_error(path)
    assert message.startswith(f"{path}: line {line_of(path, 'members: [p, sbu]')}: doe: "
                              f"workflow: ConfigError: doe.workflow: 'sbu' is not a component")
    assert message.endswith("did you mean 'sub'?")


@pytest.mark.parametrize('end, suggestion', [
    ('{src: p.fxy, dest: sub.x}', "'p' has no variable 'fxy'; did you mean 'f_xy'?"),
    ('{src: p.f_xy, dest: sbu.x}', "has no component 'sbu'; did you mean 'sub'?"),
])
def test_a_connection_end_that_does_not_exist_is_an_error(tmp_path, end, suggestion):
    path = released_copy(tmp_path, '{src: p.f_xy, dest: sub.x}', end)
    message = load_error(path)
    assert message.startswith(f'{path}: line {line_of(path, end)}: <top>: connections[0]: ')
    assert message.endswith(suggestion)


def test_an_unknown_driver_in_driver_workflow_is_an_error(tmp_path):
    path = released_copy(tmp_path, 'driver_workflow: [doe, driver]',
                         'driver_workflow: [doe, drivr]')
    assert load_error(path) == (
        f"{path}: line {line_of(path, 'driver_workflow:')}: <top>: driver_workflow: 'drivr' is "
        f"not a driver of Assembly; did you mean 'driver'? (drivers: doe, driver)")


def test_an_unknown_parameter_target_names_the_line(tmp_path):
    path = released_copy(tmp_path, '{target: p.y, low: -10.0,', '{target: p.z, low: -10.0,')
    message = load_error(path)
    assert message.startswith(f"{path}: line {line_of(path, 'p.z')}: doe.parameters[1]: ")
    assert "'p.z'" in message


def test_a_bad_value_names_the_line(tmp_path):
    path = released_copy(tmp_path, '      x: 7.166666663527634', '      x: 99.0')
    assert load_error(path).startswith(f"{path}: line {line_of(path, 'x: 99.0')}: p.x: ")


# -- !!python tags ----------------------------------------------------------------------------------
MARKER = Path(tempfile.gettempdir()) / 'openmdao_like_strict_pwned'


@pytest.mark.parametrize('tag, value', [
    ('!!python/object/apply:os.system', f'["touch {MARKER}"]'),
    ('!!python/name:os.system', "''"),
    ('!!python/object:builtins.dict', '{}'),
    ('!!python/module:os', "''"),
])
def test_a_python_tag_is_refused_because_model_files_never_run_code(tmp_path, tag, value):
    path = released_copy(tmp_path, '      x: 7.166666663527634', f'      x: {tag} {value}')
    assert load_error(path) == (
        f'{path}: line {line_of(path, tag)}: the tag {tag} is refused: model files never run '
        f'code (a model file names model classes, created from their settings)')
    assert not MARKER.exists()


def test_a_python_tag_in_the_header_is_refused_too(tmp_path):
    path = released_copy(tmp_path, 'format: yaml', 'format: !!python/name:os.system')
    assert load_error(path).startswith(f'{path}: line {line_of(path, "format:")}: the tag '
                                       f'!!python/name:os.system is refused')


# -- unit strings ---------------------------------------------------------------------------------
SYNTAX = ('not a unit expression; expected unit names joined by "*" or "/", each with an '
          'optional power "**n", such as "m", "m/s**2" or "kg*m**2"')


@pytest.mark.parametrize('bad, why', [
    ('m/ss', "'ss' is not a unit name; did you mean 's'?"),
    ('m**', SYNTAX),
    ('kg -', SYNTAX),
    ('m - s', SYNTAX),
    ('(m', SYNTAX),
])
def test_a_bad_unit_string_says_which_and_why(bad, why):
    with pytest.raises(ValidationError) as info:
        type('Bad', (Assembly,), {'v': Float(1.0, iotype='in', units=bad)})
    assert str(info.value) == f'Bad.v: invalid units: {bad!r} is not a valid unit: {why}'


@pytest.mark.parametrize('bad', ['m/ss', 'kg -'])
def test_a_bad_unit_string_in_a_model_or_a_conversion(bad):
    top = set_as_top(Assembly())
    with pytest.raises(ValidationError, match=rf"^Assembly\.v: invalid units: {re.escape(repr(bad))} is "
                                              rf"not a valid unit: "):
        top.add('v', Float(1.0, iotype='in', units=bad))
    with pytest.raises(ValueError) as info:
        units.conversion('m', bad)
    assert str(info.value).startswith(f'{bad!r} is not a valid unit: ')
    assert 'ParserHelper' not in str(info.value) and 'Error' not in str(info.value)


def test_a_bad_unit_string_in_a_model_file(tmp_path):
    path = released_copy(tmp_path, '          units: m**2', '          units: kg -')
    message = load_error(path)
    added = line_of(path, 'added_variables:') + 1  # its x
    assert message.startswith(f"{path}: line {added}: sub.x: cannot add "
                              f"variable: ")
    assert message.endswith(f"invalid units: 'kg -' is not a valid unit: {SYNTAX}")


# -- openmdao-like run: the modules beside a saved model ---------------------------------------------
BESIDE = '''
from openmdao_like import Assembly, Component, Float


class Twice(Component):
    x = Float(1.5, iotype='in')
    y = Float(iotype='out')

    def execute(self):
        self.y = 2 * self.x


class Model(Assembly):
    def configure(self):
        self.add('t', Twice())
        self.driver.workflow.add('t')
'''


@pytest.fixture()
def beside_module(tmp_path):
    """``model/strict_beside.py`` and an instance of its model; the module is forgotten after
    saving, as in a new process."""
    folder = tmp_path / 'model'
    folder.mkdir()
    (folder / 'strict_beside.py').write_text(BESIDE)
    sys.path.insert(0, str(folder))
    try:
        import strict_beside
        yield folder, set_as_top(strict_beside.Model())
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop('strict_beside', None)


@pytest.mark.parametrize('name', ['model.yaml', 'model.pkl', 'model.zip', 'saved'])
def test_run_imports_the_modules_beside_a_saved_model(beside_module, tmp_path, monkeypatch,
                                                      capsys, name):
    folder, top = beside_module
    top.save(folder / name, include_files=name in ('model.zip', 'saved'))
    if name == 'saved':  # a saved directory is the model file's directory
        shutil.copy(folder / 'strict_beside.py', folder / name)
    sys.modules.pop('strict_beside', None)
    sys.path.remove(str(folder))
    sys.path.append(str(folder))  # for the fixture's teardown; last, so it finds nothing first
    path_before = list(sys.path)
    (tmp_path / 'elsewhere').mkdir()
    monkeypatch.chdir(tmp_path / 'elsewhere')
    try:
        assert main(['run', str(folder / name), '--set', 't.x=4']) == 0, capsys.readouterr().err
    finally:
        sys.modules.pop('strict_beside', None)
    assert "model" in capsys.readouterr().out
    assert sys.path == path_before


def test_a_class_that_cannot_be_found_is_one_message_with_a_hint(beside_module, capsys):
    folder, top = beside_module
    top.save(folder / 'model.yaml')
    (folder / 'strict_beside.py').unlink()
    sys.modules.pop('strict_beside', None)
    path = folder / 'model.yaml'
    assert main(['run', str(path)]) == 1
    err = capsys.readouterr().err
    first = line_of(path, 'class: strict_beside.')
    assert f"{path}: line {first}: header: class 'strict_beside.Model' cannot be found here " \
           f"(nor can strict_beside.Twice); it was saved from a module that no distribution " \
           f"provides: ImportError: no module named 'strict_beside'; is its module importable? " \
           f"For `openmdao-like run`, put the module beside the model file or install its " \
           f"package" in err
    assert 'no factory' not in err and err.count('cannot be found') == 1
    assert main(['run', str(path), '-v']) == 1
    assert 'no factory could make it' in capsys.readouterr().err  # the detail, at -v


# -- --set ------------------------------------------------------------------------------------------
SELLAR_LIKE = '''
from openmdao_like import Assembly, Component, Float


class Discipline(Component):
    z1 = Float(0.0, iotype='in', low=-10.0, high=10.0)
    z2 = Float(0.0, iotype='in')
    y = Float(iotype='out')

    def execute(self):
        self.y = self.z1 + self.z2


class Model(Assembly):
    def configure(self):
        self.add('d1', Discipline())
        self.driver.workflow.add('d1')
'''


@pytest.mark.parametrize('setting, suggestion', [
    ('d1.zz1=1', 'z1'),
    ('dd1.z1=1', 'd1'),
])
def test_a_bad_set_path_names_the_closest(tmp_path, capsys, setting, suggestion):
    """Through the CLI's main function: the kernel's did-you-mean reaches the user, after the
    ``--set`` argument given."""
    model = tmp_path / 'strict_set_model.py'
    model.write_text(SELLAR_LIKE)
    assert main(['run', str(model), '--set', setting]) == 2
    err = capsys.readouterr().err
    message = next(line for line in err.splitlines() if line.startswith('openmdao-like run: '))
    assert message.startswith(f'openmdao-like run: error: --set {setting}: ')
    assert re.search(rf"did you mean '([\w.]*\.)?{suggestion}'\?", message), message
