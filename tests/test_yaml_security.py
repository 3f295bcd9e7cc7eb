"""A YAML model file from someone else can neither run code, nor write outside its directory, nor
hang or swell the process that loads it: one regression test per defect the security review
found (alias bomb, huge integer, any class through ``!class``, a recorder writing anywhere), and
the legitimate models that must still load and run."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import persist_models as pm
from openmdao_like import Assembly, load, set_as_top
from openmdao_like.components import ExternalCode
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import CSVFile, FullFactorial
from openmdao_like.errors import PathError, PersistenceError
from openmdao_like.persistence.yaml_io import MAX_DEPTH, MAX_INT_DIGITS, MAX_NODES
from openmdao_like.recorders import CSVRecorder, read_cases

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
EXAMPLES = ROOT / 'examples'
CLI = Path(sys.executable).parent / 'openmdao-like'
ENV = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(TESTS), str(EXAMPLES)])}


def doe_model(base: Path, recorder_path: str | os.PathLike = 'cases.csv') -> Assembly:
    """A 4-case DOE over the paraboloid, recording to ``recorder_path``, rooted at ``base``."""
    top = set_as_top(Assembly(), str(base))
    top.add('p', pm.Paraboloid())
    top.add('driver', DOEDriver(FullFactorial(num_levels=2)))
    top.driver.workflow.add('p')
    top.driver.add_parameter('p.x', low=-1.0, high=1.0)
    top.driver.add_parameter('p.y', low=-1.0, high=1.0)
    top.driver.add_response('p.f_xy')
    top.recorders = [CSVRecorder(recorder_path)]
    return top


def saved(obj: Assembly, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    obj.save(path)
    return path


def edit(path: Path, old: str, new: str, header_rows: tuple[str, ...] = ()) -> Path:
    """Replace ``old`` by ``new`` once, and list ``header_rows`` (class names) in the header, as
    an attacker who knows the format would."""
    text = path.read_text()
    assert old in text, f'{old!r} not in the saved model'
    text = text.replace(old, new, 1)
    rows = ''.join(f'- class: {name}\n  distribution: null\n  version: null\n'
                   for name in header_rows)
    path.write_text(text.replace('classes:\n', f'classes:\n{rows}', 1))
    return path


def line_of(path: Path, text: str) -> int:
    """The 1-based number of the first line of ``path`` holding ``text``."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=ENV)


# -- 6. alias bombs -------------------------------------------------------------------------------
def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A one-line flow sequence of ``levels`` anchors, each ``width`` aliases of the previous:
    under 1 kB of text that expands to ``width ** levels`` (387 million) scalars."""
    items = ['&b0 [' + ', '.join(['lol'] * width) + ']']
    items += [f'&b{i} [' + ', '.join([f'*b{i - 1}'] * width) + ']' for i in range(1, levels)]
    return '[' + ', '.join(items) + ']'


#: Loads argv[1] with the address space capped 1 GiB above where it starts (a regression fails
#: with MemoryError instead of swapping), and prints the error, the seconds taken and the peak
#: resident size growth.
_MEASURE = '''
import resource, sys, time
import openmdao_like
from openmdao_like.errors import PersistenceError
size = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1])
resource.setrlimit(resource.RLIMIT_AS, (size * 1024 + (1 << 30), resource.RLIM_INFINITY))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
try:
    openmdao_like.load(sys.argv[1])
except PersistenceError as exc:
    print('ERROR', exc)
print('SECONDS', time.monotonic() - start)
print('GROWTH_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
'''


def load_measured(path: Path) -> tuple[str, float, int]:
    """(error text, seconds, peak RSS growth in kB) of loading ``path`` in a fresh process."""
    proc = subprocess.run([sys.executable, '-c', _MEASURE, str(path)], capture_output=True,
                          text=True, timeout=60, env=ENV)
    assert proc.returncode == 0, proc.stderr
    out = dict(line.split(' ', 1) for line in proc.stdout.splitlines())
    return out.get('ERROR', ''), float(out['SECONDS']), int(out['GROWTH_KB'])


@pytest.mark.parametrize('where', ['header', 'variable'])
def test_an_alias_bomb_is_refused_at_once_without_growing(tmp_path, where):
    if where == 'header':  # a header that fails its check: the error text once str()-ed it
        path = tmp_path / 'bomb.yaml'
        path.write_text(f'openmdao_like_model: 1\nclasses: {alias_bomb()}\n---\n{{}}\n...\n')
        line = 2
    else:  # a variable value: the builder once copied it element by element
        top = set_as_top(Assembly())
        top.add('e', pm.Everything())
        path = edit(saved(top, tmp_path / 'bomb.yaml'), 'l: [1, 2]', f'l: {alias_bomb()}')
        line = line_of(path, 'l: [&b0')
    error, seconds, growth_kb = load_measured(path)
    assert f'{path}: line {line}: the document expands through its aliases to more than ' \
           f'{MAX_NODES:,} nodes' in error
    assert 'MAX_NODES' in error
    assert seconds < 5.0
    assert growth_kb < 200 * 1024


def test_a_few_aliases_and_a_large_alias_free_document_load(tmp_path):
    top = set_as_top(Assembly())
    top.add('e', pm.Everything())
    path = saved(top, tmp_path / 'm.yaml')
    edit(path, 'd:\n        k: 1.0', 'd: {k: &pair [1, 2], again: *pair}')
    edit(path, 'l: [1, 2]', 'l: *pair')
    loaded = load(path)
    assert loaded.e.l == [1, 2] and loaded.e.d == {'k': [1, 2], 'again': [1, 2]}
    # no aliases: only the absolute size limit applies, far above this 200,000-element list
    path = saved(top, tmp_path / 'big.yaml')
    edit(path, 'l: [1, 2]', 'l: [' + ', '.join(['7'] * 200_000) + ']')
    assert load(path).e.l == [7] * 200_000


def test_nesting_and_self_reference_are_refused_with_the_line(tmp_path):
    top = set_as_top(Assembly())
    top.add('e', pm.Everything())
    path = saved(top, tmp_path / 'm.yaml')
    edit(path, 'l: [1, 2]', 'l: ' + '[' * (MAX_DEPTH + 5) + ']' * (MAX_DEPTH + 5))
    with pytest.raises(PersistenceError, match=rf'm.yaml: line \d+: the document nests deeper '
                                               rf'than {MAX_DEPTH} levels'):
        load(path)
    path = saved(top, tmp_path / 'm.yaml')
    edit(path, 'l: [1, 2]', 'l: &me [1, *me]')
    with pytest.raises(PersistenceError, match=rf'line {line_of(path, "&me")}: .*an alias '
                                               r'names a node that contains it'):
        load(path)


# -- 7. huge integers -----------------------------------------------------------------------------
@pytest.mark.parametrize('where', ['header', 'model'])
def test_an_integer_with_too_many_digits_names_the_line(tmp_path, where):
    top = set_as_top(Assembly())
    top.add('e', pm.Everything())
    path = saved(top, tmp_path / 'm.yaml')
    digits = '1' * 100_001
    if where == 'header':
        edit(path, 'openmdao_like_model: 1', f'openmdao_like_model: {digits}')
        line = line_of(path, 'openmdao_like_model:')
    else:
        edit(path, 'i: 3', f'i: {digits}')
        line = line_of(path, 'i: 111')
    with pytest.raises(PersistenceError) as info:
        load(path)
    assert str(info.value) == (f'{path}: line {line}: an integer of 100,001 characters; a model '
                               f'file may hold integers of at most {MAX_INT_DIGITS}')


def test_integers_up_to_the_limit_still_load(tmp_path):
    top = set_as_top(Assembly())
    top.add('e', pm.Everything())
    path = edit(saved(top, tmp_path / 'm.yaml'), 'l: [1, 2]',
                f'l: [{"9" * MAX_INT_DIGITS}, 0x{"f" * 40}, -12_345]')
    assert load(path).e.l == [int('9' * MAX_INT_DIGITS), 16 ** 40 - 1, -12345]


# -- 8. !class only for the type a place declares -------------------------------------------------
def test_a_generator_slot_takes_only_a_doe_generator(tmp_path):
    """The attack: ``generator: !class subprocess.Popen`` loaded, and ``run()`` called
    ``Popen(parameters)``."""
    marker = tmp_path / 'pwned'
    path = edit(saved(doe_model(tmp_path), tmp_path / 'm.yaml'),
                'generator: !object\n        class: openmdao_like.drivers.doe.FullFactorial\n'
                '        args:\n          num_levels: 2',
                'generator: !class subprocess.Popen', header_rows=('subprocess.Popen',))
    with pytest.raises(PersistenceError) as info:
        load(path).run()
    line = line_of(path, 'generator: !class')
    assert str(info.value) == (f"{path}: line {line}: driver: class 'subprocess.Popen' is a "
                               f"subprocess.Popen, not a DOEGenerator; driver.generator takes "
                               f"a DOEGenerator")
    # an object of another model type is refused too, with where it was and what it is
    edit(path, 'generator: !class subprocess.Popen',
         f"generator: !object {{class: openmdao_like.recorders.CSVRecorder, args: {{path: "
         f"'{marker}'}}}}", header_rows=('openmdao_like.recorders.CSVRecorder',))
    with pytest.raises(PersistenceError, match=r"driver: object class 'openmdao_like.recorders."
                                               r"CSVRecorder' is a openmdao_like.recorders.csv."
                                               r"CSVRecorder, not a DOEGenerator; "
                                               r"driver.generator takes a DOEGenerator"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize('old, new', [
    ('l: [1, 2]', 'l: [!class subprocess.Popen]'),  # a variable value
    ('- {target: p.x, low: -1.0, high: 1.0}',  # a driver parameter's bound
     '- {target: p.x, low: !class subprocess.Popen, high: 1.0}'),
    ('        num_levels: 2', '        num_levels: !class subprocess.Popen'),  # an int setting
])
def test_a_class_anywhere_else_must_be_a_model_type(tmp_path, old, new):
    top = doe_model(tmp_path)
    top.add('e', pm.Everything())
    path = edit(saved(top, tmp_path / 'm.yaml'), old, new, header_rows=('subprocess.Popen',))
    with pytest.raises(PersistenceError, match=r"m.yaml: line \d+: [a-z_.\[\]0-9]+: class "
                                               r"'subprocess.Popen' is a subprocess.Popen, "
                                               r"not an? (model type|int)"):
        load(path)


def test_an_instance_variable_takes_its_declared_class(tmp_path):
    top = set_as_top(Assembly())
    top.add('e', pm.Everything())  # e.klass = Instance(dict)
    path = edit(saved(top, tmp_path / 'm.yaml'), 'klass: null',
                'klass: !object {class: openmdao_like.drivers.doe.FullFactorial}',
                header_rows=('openmdao_like.drivers.doe.FullFactorial',))
    with pytest.raises(PersistenceError, match=r"m.yaml: line \d+: e.klass: object class 'openmdao_like."
                                               r"drivers.doe.FullFactorial' is a .*FullFactorial,"
                                               r" not a dict; e.klass takes a dict"):
        load(path)


# -- 9. paths stay inside the model's directory ---------------------------------------------------
def test_a_recorder_may_not_overwrite_a_file_outside_the_model_directory(tmp_path):
    victim = tmp_path / 'elsewhere' / 'victim.txt'
    victim.parent.mkdir()
    victim.write_text('precious\n')
    model_dir = tmp_path / 'model'
    path = edit(saved(doe_model(model_dir), model_dir / 'm.yaml'), 'path: cases.csv',
                f"path: '{victim}'")
    with pytest.raises(PathError) as info:
        load(path).run()
    assert str(info.value) == (
        f"{path}: line {line_of(path, 'path: ')}: recorders[0].path: path '{victim}' is outside the model directory; a model "
        f"file may name relative paths without \"..\", or absolute ones inside the model "
        f"directory '{model_dir}'. Load it with trust_paths=True (openmdao-like run "
        f"--trust-paths) to allow it")
    edit(path, f"path: '{victim}'", 'path: ../elsewhere/victim.txt')
    with pytest.raises(PathError, match=r"recorders\[0\].path: path '../elsewhere/victim.txt' "
                                        r"is outside the model directory"):
        load(path)
    assert victim.read_text() == 'precious\n'
    # a stream has no directory of its own: relative paths only, unless given one
    text = path.read_text().replace('path: ../elsewhere/victim.txt', f"path: '{victim}'")
    with pytest.raises(PathError, match=r'<stream>: line \d+: recorders\[0\].path: .*it was read from a '
                                        r'stream: give load\(\) a directory'):
        load(io.StringIO(text))
    assert load(io.StringIO(text), directory=victim.parent).recorders[0].path == victim


def test_the_cli_refuses_an_outside_path_unless_told_to_trust_it(tmp_path):
    victim = tmp_path / 'victim.csv'
    victim.write_text('precious\n')
    model_dir = tmp_path / 'model'
    path = edit(saved(doe_model(model_dir), model_dir / 'm.yaml'), 'path: cases.csv',
                f"path: '{victim}'")
    proc = cli('run', str(path), cwd=model_dir)
    assert proc.returncode == 1
    assert f"recorders[0].path: path '{victim}' is outside the model directory" in proc.stderr
    assert 'openmdao-like run --trust-paths' in proc.stderr
    assert victim.read_text() == 'precious\n'
    proc = cli('run', str(path), '--trust-paths', cwd=model_dir)
    assert proc.returncode == 0, proc.stderr
    assert len(read_cases(victim)) == 4


def test_a_component_that_runs_commands_needs_trust(tmp_path):
    marker = tmp_path / 'ran'
    top = set_as_top(Assembly(), str(tmp_path))
    top.add('x', ExternalCode(command=['touch', str(marker)]))
    top.driver.workflow.add('x')
    path = saved(top, tmp_path / 'model' / 'm.yaml')
    with pytest.raises(PersistenceError, match=r"m.yaml: line \d+: x: class "
                                               r"'openmdao_like.components.ExternalCode' is a "
                                               r".*ExternalCode, which runs commands when the "
                                               r"model runs; .*trust_commands=True "
                                               r"\(openmdao-like run --trust-commands\)"):
        load(path)
    proc = cli('run', str(path), cwd=tmp_path)
    assert proc.returncode == 1 and '--trust-commands' in proc.stderr
    assert not marker.exists()
    proc = cli('run', str(path), '--trust-commands', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


def test_a_csv_file_generator_may_not_read_outside_the_model_directory(tmp_path):
    top = doe_model(tmp_path)
    top.driver.generator = CSVFile('cases_in.csv')
    path = edit(saved(top, tmp_path / 'm.yaml'), 'path: cases_in.csv', 'path: /etc/passwd')
    with pytest.raises(PathError, match=r"m.yaml: line \d+: driver.generator.path: path '/etc/passwd' is "
                                        r"outside the model directory.*trust_paths=True"):
        load(path)
    assert isinstance(load(path, trust_paths=True).driver.generator, CSVFile)


@pytest.mark.parametrize('old, new, message', [
    ('    class: persist_models.Everything\n',
     '    class: persist_models.Everything\n    directory: /tmp\n',
     r"e.directory: directory '/tmp' escapes the model directory"),
    ('    class: persist_models.Everything\n',
     '    class: persist_models.Everything\n    directory: ../..\n',
     r"e.directory: directory '../..' escapes the model directory"),
    ('report: !file {path: report.txt}', 'report: !file {path: /etc/passwd}',
     r"e.report: file reference '/etc/passwd' escapes the model directory"),
])
def test_component_directories_and_files_never_leave_the_model(tmp_path, old, new, message):
    """Trusted or not: the framework keeps them below the top directory."""
    top = set_as_top(Assembly())
    top.add('e', pm.Everything())
    path = edit(saved(top, tmp_path / 'm.yaml'), old, new)
    for trust in (False, True):
        with pytest.raises(PathError, match=message):
            load(path, trust_paths=trust)


# -- what still works -----------------------------------------------------------------------------
@pytest.mark.parametrize('module', ['paraboloid', 'sellar', 'file_pipeline'])
def test_saved_examples_still_load_and_run(tmp_path, module):
    code = f'import {module}; {module}.top.save("model.yaml")'
    subprocess.run([sys.executable, '-c', code], cwd=tmp_path, check=True, timeout=120, env=ENV)
    proc = cli('run', 'model.yaml', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_recorders_writing_inside_the_model_directory_run(tmp_path):
    model_dir = tmp_path / 'model'
    inside = model_dir / 'results' / 'cases.csv'
    inside.parent.mkdir(parents=True)
    path = saved(doe_model(model_dir, inside), model_dir / 'm.yaml')
    loaded = load(path)  # an absolute path below the model file's directory
    loaded.run()
    assert len(read_cases(inside)) == 4
    path = edit(path, f'path: {inside}', 'path: results/relative.csv')
    proc = cli('run', str(path), cwd=model_dir)  # relative: where the model runs
    assert proc.returncode == 0, proc.stderr
    assert len(read_cases(model_dir / 'results' / 'relative.csv')) == 4
