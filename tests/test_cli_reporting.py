"""What ``openmdao-like run`` reports: the last case's values after a parallel case run (not the
model's defaults), a FixedPointIterator's iterations and final residual, and the optimizer's
progress line (iteration, objective, largest constraint violation)."""

from __future__ import annotations

import io
import re
import sys

import pytest

from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.drivers import ScipyOptimizer
from openmdao_like.progress import Progress
from test_cli import EXAMPLES, PARABOLOID_COMPONENT, cli, row, write

PARALLEL_DOE = PARABOLOID_COMPONENT + '''
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import FullFactorial
from openmdao_like.execution import LocalExecutor


class Grid(Assembly):
    def configure(self):
        self.add('p', Paraboloid())
        self.add('driver', DOEDriver(FullFactorial(num_levels=3), sequential=False,
                                     executor=LocalExecutor(n_workers=2),
                                     keep_results=KEEP))
        self.driver.workflow.add('p')
        self.driver.add_parameter('p.x', low=1.0, high=5.0)
        self.driver.add_parameter('p.y', low=-8.0, high=-2.0)
        self.driver.add_response('p.f_xy')
        self.driver.add_response('p.x * 2')
        self.driver.add_constraint('p.x > 2')
'''


def paraboloid(x: float, y: float) -> float:
    return (x - 3.0)**2 + x*y + (y + 4.0)**2 - 3.0


def test_parallel_doe_reports_the_last_case_not_the_defaults(tmp_path):
    model = write(tmp_path, 'grid.py', PARALLEL_DOE.replace('KEEP', 'True'))
    proc = cli('run', str(model), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert '(values of the last case: id 8, status ok' in out, out
    # the last case of the 3 x 3 grid is (5, -2); the model's own values are (0, 0)
    assert row(out, 'p.x')[1:] == ['5', '1', '5'], out
    assert row(out, 'p.y')[1:] == ['-2', '-8', '-2'], out
    assert float(row(out, 'p.f_xy')[1]) == pytest.approx(paraboloid(5.0, -2.0))
    assert re.search(r'^p\.x \* 2\s+10$', out, re.M), out
    # constraints are not among what a case collects: unknown here, not evaluated at defaults
    assert re.search(r'^p\.x > 2\s+-\s+-$', out, re.M), out
    assert row(out, '9')[1:] == ['9', '0'], out


def test_parallel_doe_without_kept_results_says_the_values_are_unknown(tmp_path):
    model = write(tmp_path, 'grid.py', PARALLEL_DOE.replace('KEEP', 'False'))
    proc = cli('run', str(model), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert ("the cases ran in worker processes and keep_results is off: the last case's values "
            'are not known here') in out, out
    assert row(out, 'p.x')[1:] == ['-', '1', '5'], out
    assert row(out, 'p.f_xy')[1:] == ['-'], out
    assert row(out, '9')[1:] == ['-', '-'], out  # 9 cases ran; none kept to count failures


def test_sequential_case_run_reports_its_last_case(tmp_path):
    model = write(tmp_path, 'grid.py', PARALLEL_DOE.replace('KEEP', 'True'))
    proc = cli('run', str(model), '--set', 'p.x=0.5', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert row(proc.stdout, 'p.x')[1] == '5', proc.stdout


def test_fixed_point_iterator_reports_iterations_and_residual(tmp_path):
    proc = cli('run', str(EXAMPLES / 'sellar.py'), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    solver = proc.stdout.split("driver 'solver' (FixedPointIterator)", 1)[1].split('\n\n')[0]
    assert '  converged: yes' in solver, proc.stdout
    iterations = int(re.search(r'^  iterations: (\d+)$', solver, re.M).group(1))
    assert 2 <= iterations <= 100
    residual = re.search(r'^  residual: (\S+) \(largest change of the last pass; tolerance '
                         r'1e-10\)$', solver, re.M)
    assert residual and float(residual.group(1)) < 1e-10, solver
    assert "(run by 'driver': figures of its last run)" in solver


class Paraboloid(Component):
    x = Float(0.0, iotype='in', low=-50.0, high=50.0)
    y = Float(0.0, iotype='in', low=-50.0, high=50.0)
    f_xy = Float(iotype='out')

    def execute(self) -> None:
        self.f_xy = paraboloid(self.x, self.y)


def optimizer_model(**options) -> Assembly:
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('driver', ScipyOptimizer(method='SLSQP', **options))
    top.driver.workflow.add('p')
    top.driver.add_parameter('p.x', low=-50.0, high=50.0)
    top.driver.add_parameter('p.y', low=-50.0, high=50.0)
    top.driver.add_objective('p.f_xy')
    return top


def last_redraw(text: str) -> str:
    """The last state tqdm drew (redraws are separated by carriage returns)."""
    return [part.rstrip() for part in re.split(r'[\r\n]', text) if part.strip()][-1]


def test_optimizer_progress_line_shows_iteration_objective_violation(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, 'stderr', stream)
    top = optimizer_model(progress=True)
    top.driver.add_constraint('p.x - p.y >= 15.0')
    top.run()
    line = last_redraw(stream.getvalue())
    assert line.startswith(f'driver: {top.driver.iterations}it '), line
    assert line.endswith(', objective=-27.08, violation=0]'), line


def test_optimizer_progress_line_shows_the_largest_violation(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, 'stderr', stream)
    top = optimizer_model(progress=True, maxiter=1)  # stops before it is feasible
    top.driver.add_constraint('p.x**2 + p.y**2 = 100')  # equality: |residual|
    top.driver.add_constraint('p.x - p.y >= 15.0')      # inequality: max(residual, 0)
    top.run()
    equality, inequality = top.driver.eval_constraints()
    violation = max(abs(equality), max(inequality, 0.0))
    assert violation > 1e-3
    line = last_redraw(stream.getvalue())
    assert line.startswith('driver: 1it '), line
    assert line.endswith(f', objective={top.driver.eval_objective():.4g}, '
                         f'violation={violation:.4g}]'), line


def test_optimizer_progress_off_writes_nothing(monkeypatch):
    stream = io.StringIO()  # not a terminal: the default (None) shows nothing either
    monkeypatch.setattr(sys, 'stderr', stream)
    optimizer_model().run()
    optimizer_model(progress=False).run()
    assert stream.getvalue() == ''


def test_progress_postfix_is_shown_on_redraw_and_costs_nothing_when_off():
    stream = io.StringIO()
    with Progress(desc='opt', enabled=True, stream=stream, min_interval=0.0) as bar:
        bar.set_postfix(objective=1.234567, violation=0.0, method='SLSQP')
        bar.update()
    assert last_redraw(stream.getvalue()).endswith(
        ', objective=1.235, violation=0, method=SLSQP]'), stream.getvalue()
    quiet = io.StringIO()
    bar = Progress(enabled=False, stream=quiet)
    bar.set_postfix(objective=1.0)
    bar.update()
    bar.close()
    assert quiet.getvalue() == '' and bar.n == 1
