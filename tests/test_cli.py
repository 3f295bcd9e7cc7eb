"""The ``openmdao-like`` command, run as the installed console script in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from openmdao_like import __version__
from openmdao_like.view.table import format_table, format_value

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / 'examples'
CLI = Path(sys.executable).parent / 'openmdao-like'

#: The paraboloid component of the models these tests write (with the imports they need).
PARABOLOID_COMPONENT = '''
from openmdao_like import Assembly, Component, Float


class Paraboloid(Component):
    x = Float(0.0, iotype='in', low=-50.0, high=50.0)
    y = Float(0.0, iotype='in', low=-50.0, high=50.0)
    f_xy = Float(iotype='out')

    def execute(self):
        self.f_xy = (self.x - 3.0)**2 + self.x*self.y + (self.y + 4.0)**2 - 3.0
'''

PARABOLOID = PARABOLOID_COMPONENT + '''

class Model(Assembly):
    def configure(self):
        self.add('p', Paraboloid())
        self.driver.workflow.add('p')
        self.driver.add_parameter('p.x', low=-50.0, high=50.0)
        self.driver.add_objective('p.f_xy')
        self.driver.add_constraint('p.x - p.y >= 15.0')
'''


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed ``openmdao-like`` with ``args`` in ``cwd``."""
    assert CLI.exists(), f'{CLI} missing: install the package (bash scripts/setup.sh)'
    return subprocess.run([str(CLI), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def row(stdout: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is ``first_cell``."""
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f'no row {first_cell!r} in:\n{stdout}')


# -- the examples -------------------------------------------------------------------------------
def test_run_paraboloid_prints_the_optimum(tmp_path):
    proc = cli('run', str(EXAMPLES / 'paraboloid.py'), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert 'ScipyOptimizer' in out
    assert float(row(out, 'p.x')[1]) == pytest.approx(7.1667, abs=1e-3)
    assert float(row(out, 'p.y')[1]) == pytest.approx(-7.8333, abs=1e-3)
    assert float(row(out, 'p.f_xy')[1]) == pytest.approx(-27.0833, abs=1e-3)
    assert '7.16' in out and '-7.83' in out and '-27.08' in out
    constraint = [line for line in out.splitlines() if line.startswith('p.x - p.y >= 15.0')]
    assert len(constraint) == 1 and constraint[0].endswith('yes'), out
    assert re.search(r'success: yes', out), out


def test_run_sellar(tmp_path):
    proc = cli('run', str(EXAMPLES / 'sellar.py'), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "driver 'driver' (ScipyOptimizer)" in out
    assert "driver 'solver' (FixedPointIterator)" in out  # nested in the optimizer's workflow
    assert float(row(out, 'dis1.z1')[1]) == pytest.approx(1.9776, abs=1e-3)
    assert float(row(out, 'dis1.x1**2')[-1]) == pytest.approx(3.1834, abs=1e-3)


@pytest.mark.slow
def test_run_doe_sqlite_10k_cases(tmp_path):
    proc = cli('run', str(EXAMPLES / 'doe_sqlite.py'), cwd=tmp_path, timeout=280)
    assert proc.returncode == 0, proc.stderr
    total, ok, failed = row(proc.stdout, '10000')
    assert (total, ok, failed) == ('10000', '10000', '0')
    assert 'SQLiteRecorder' in proc.stdout


# -- finding the model and --set ------------------------------------------------------------------
def test_single_assembly_class_is_instantiated_and_set_applies(tmp_path):
    model = write(tmp_path, 'model.py', PARABOLOID)
    proc = cli('run', str(model), '--set', 'p.x=7', '--set', 'p.y=-8.0', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'RunOnce' in proc.stdout
    assert row(proc.stdout, 'p.x')[1] == '7'
    assert row(proc.stdout, 'p.f_xy')[1] == '-27'  # f(7, -8)
    assert proc.stderr == ''


def test_quiet_prints_nothing(tmp_path):
    model = write(tmp_path, 'model.py', PARABOLOID)
    proc = cli('run', str(model), '--quiet', cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, '', '')


def test_model_file_without_top_and_two_assemblies_names_both(tmp_path):
    model = write(tmp_path, 'two.py', '''
        from openmdao_like import Assembly

        class FirstModel(Assembly):
            pass

        class SecondModel(Assembly):
            pass
        ''')
    proc = cli('run', str(model), cwd=tmp_path)
    assert proc.returncode == 1
    assert 'FirstModel' in proc.stderr and 'SecondModel' in proc.stderr
    assert 'top' in proc.stderr
    assert proc.stdout == ''


def test_model_file_without_any_assembly_lists_what_it_found(tmp_path):
    model = write(tmp_path, 'comps.py', '''
        from openmdao_like import Component, Float

        class Lonely(Component):
            x = Float(iotype='in')
        ''')
    proc = cli('run', str(model), cwd=tmp_path)
    assert proc.returncode == 1
    assert 'no Assembly subclass' in proc.stderr and 'Lonely' in proc.stderr


def test_top_that_is_not_an_assembly_is_rejected(tmp_path):
    model = write(tmp_path, 'nottop.py', 'top = 42\n')
    proc = cli('run', str(model), cwd=tmp_path)
    assert proc.returncode == 1
    assert '`top` is a int; expected an Assembly' in proc.stderr


def test_missing_file_is_a_usage_error_naming_the_path(tmp_path):
    proc = cli('run', 'no/such/model.py', cwd=tmp_path)
    assert proc.returncode == 2
    assert "'no/such/model.py'" in proc.stderr
    assert 'usage: openmdao-like run' in proc.stderr


def test_set_unknown_path_names_it(tmp_path):
    model = write(tmp_path, 'model.py', PARABOLOID)
    proc = cli('run', str(model), '--set', 'q.x=1', cwd=tmp_path)
    assert proc.returncode == 2
    assert '--set q.x=1' in proc.stderr and "'q' does not exist" in proc.stderr
    proc = cli('run', str(model), '--set', 'p.nope=1', cwd=tmp_path)
    assert proc.returncode == 2
    assert "'p' has no variable or child 'nope' (names: f_xy, x, y)" in proc.stderr


def test_set_value_is_validated(tmp_path):
    model = write(tmp_path, 'model.py', PARABOLOID)
    proc = cli('run', str(model), '--set', 'p.x=500', cwd=tmp_path)
    assert proc.returncode == 2
    assert 'p.x: expected a float in [-50.0, 50.0], got 500 (int)' in proc.stderr
    proc = cli('run', str(model), '--set', 'p.x', cwd=tmp_path)
    assert proc.returncode == 2
    assert "expected PATH=VALUE (e.g. p.x=3.5), got 'p.x'" in proc.stderr


def test_model_that_raises_reports_type_and_message(tmp_path):
    model = write(tmp_path, 'boom.py', '''
        from openmdao_like import Assembly, Component, Float, set_as_top

        class Bad(Component):
            x = Float(iotype='in')

            def execute(self):
                raise ZeroDivisionError('the model divided by zero')

        class Model(Assembly):
            def configure(self):
                self.add('bad', Bad())
                self.driver.workflow.add('bad')

        top = set_as_top(Model())
        ''')
    proc = cli('run', str(model), cwd=tmp_path)
    assert proc.returncode == 1
    assert 'ZeroDivisionError: the model divided by zero' in proc.stderr
    assert 'Traceback' not in proc.stderr
    proc = cli('run', str(model), '-v', cwd=tmp_path)
    assert proc.returncode == 1
    assert 'Traceback' in proc.stderr and 'boom.py' in proc.stderr


def test_model_file_that_fails_to_import(tmp_path):
    model = write(tmp_path, 'broken.py', 'import no_such_module_here\n')
    proc = cli('run', str(model), cwd=tmp_path)
    assert proc.returncode == 1
    assert "importing" in proc.stderr and 'no_such_module_here' in proc.stderr


def test_model_file_imports_its_neighbours_and_skips_main_block(tmp_path):
    write(tmp_path, 'helper.py', 'OFFSET = 2.0\n')
    model = write(tmp_path, 'model.py', PARABOLOID + textwrap.dedent('''
        from helper import OFFSET

        if __name__ == '__main__':
            raise SystemExit('the __main__ block must not run')
        '''))
    proc = cli('run', str(model), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


# -- the command itself ---------------------------------------------------------------------------
def test_version(tmp_path):
    proc = cli('--version', cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f'openmdao-like {__version__}'


def test_no_arguments_prints_usage_and_exits_2(tmp_path):
    proc = cli(cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith('usage: openmdao-like')
    assert 'COMMAND' in proc.stderr


def test_unknown_option_prints_usage_and_exits_2(tmp_path):
    proc = cli('run', '--bogus', 'm.py', cwd=tmp_path)
    assert proc.returncode == 2
    assert 'usage: openmdao-like run' in proc.stderr and '--bogus' in proc.stderr


# -- the table formatter --------------------------------------------------------------------------
def test_format_table_aligns_columns_under_a_rule():
    text = format_table(['name', 'value', 'ok'],
                        [['p.x', 7.166666667, True], ['p.long_name', -27.08333, False]])
    assert text.splitlines() == [
        'name            value  ok',
        '-----------  --------  ---',
        'p.x           7.16667  yes',
        'p.long_name  -27.0833  no',
    ]


def test_format_value():
    assert format_value(1234567.891) == '1.23457e+06'
    assert format_value(-0.0) == '0'
    assert format_value(None) == '-'
    assert format_value(np.float64(0.1)) == '0.1'
    assert format_value(np.arange(3.0)) == '[0, 1, 2]'
    assert format_value(np.arange(10)) == '[0, 1, 2, 3, 4, ..., 9]'
    assert format_value('two\nlines') == 'two lines'


def test_format_table_rejects_long_rows():
    with pytest.raises(ValueError, match=r'row 0 has 3 cells, expected at most 2'):
        format_table(['a', 'b'], [[1, 2, 3]])


def test_run_file_pipeline_copies_files_between_component_directories(tmp_path):
    proc = cli('run', str(EXAMPLES / 'file_pipeline.py'), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert float(row(proc.stdout, 'post.integral')[1]) == pytest.approx(8.0 / 3.0, abs=1e-3)
    assert (tmp_path / 'mesher' / 'grid.txt').read_text() == \
        (tmp_path / 'solver' / 'input_grid.txt').read_text()
    assert (tmp_path / 'solver' / 'field.bin').read_bytes() == \
        (tmp_path / 'post' / 'field.bin').read_bytes()


def test_readme_demo_command_prints_the_optimum():
    proc = subprocess.run(['bash', str(ROOT / 'scripts' / 'demo.sh')], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert float(row(proc.stdout, 'p.x')[1]) == pytest.approx(7.1667, abs=1e-3)
    assert float(row(proc.stdout, 'p.f_xy')[1]) == pytest.approx(-27.0833, abs=1e-3)
