"""Errors name the component: an exception raised by a component's ``execute()`` keeps its type
and carries the component's dotted path and class (a PEP 678 note) — in the traceback, in a
recorded case's ``error``, across processes and servers, and in the CLI's one-line summary."""

from __future__ import annotations

import traceback

import pytest

from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.cli.main import main
from openmdao_like.drivers import CaseIteratorDriver, FixedPointIterator
from openmdao_like.errors import ConvergenceError, component_notes
from openmdao_like.execution import LocalExecutor
from remote_servers import in_model


class Divide(Component):
    """y = 1 / x."""

    x = Float(1.0, iotype='in')
    y = Float(iotype='out')

    def execute(self) -> None:
        self.y = 1.0 / self.x


class Twice(Assembly):
    """Two instances of the same component class."""

    def configure(self) -> None:
        self.add('a', Divide())
        self.add('b', Divide())
        self.driver.workflow.add(['a', 'b'])


class Outer(Assembly):
    """An assembly holding `Twice` as 'inner'."""

    def configure(self) -> None:
        self.add('inner', Twice())
        self.driver.workflow.add('inner')


def test_the_failing_instance_is_named_and_the_type_kept():
    top = set_as_top(Twice())
    top.b.x = 0.0
    with pytest.raises(ZeroDivisionError, match='float division by zero') as info:
        top.run()
    assert info.value.__notes__ == ["raised by component 'b' (Divide)"]
    text = ''.join(traceback.format_exception(info.value))
    assert "raised by component 'b' (Divide)" in text


def test_only_the_innermost_component_is_named_with_its_dotted_path():
    top = set_as_top(Outer())
    top.inner.a.x = 0.0
    with pytest.raises(ZeroDivisionError) as info:
        top.run()
    assert component_notes(info.value) == ["raised by component 'inner.a' (Divide)"]


def test_a_driver_that_fails_is_named_too():
    class Loop(Assembly):
        def configure(self):
            self.add('c', Divide())
            self.add('solver', FixedPointIterator(max_iterations=2))
            self.solver.workflow.add('c')
            self.solver.add_parameter('c.x', low=-1e9, high=1e9)
            self.solver.add_constraint('c.x = c.y + 1')
            self.driver.workflow.add('solver')
    top = set_as_top(Loop())
    with pytest.raises(ConvergenceError) as info:
        top.run()
    assert component_notes(info.value) == ["raised by component 'solver' (FixedPointIterator)"]


@pytest.mark.parametrize('parallel', [False, True], ids=['serial', 'parallel'])
def test_recorded_failed_cases_name_the_component(parallel):
    class Doe(Assembly):
        def configure(self):
            self.add('a', Divide())
            self.add('b', Divide())
            self.add('driver', CaseIteratorDriver(
                cases=[{'b.x': 2.0}, {'b.x': 0.0}], error_policy='RETRY', max_retries=0,
                sequential=not parallel,
                executor=LocalExecutor(n_workers=2) if parallel else None))
            self.driver.workflow.add(['a', 'b'])
            self.driver.add_response('b.y')
    top = set_as_top(Doe())
    top.run()
    ok, failed = top.driver.results
    assert ok.status == 'ok' and failed.status == 'failed'
    assert 'ZeroDivisionError: float division by zero' in failed.error
    assert "raised by component 'b' (Divide)" in failed.error


def test_a_remote_component_is_named_by_its_local_path_and_remotely(factory_a):
    top = in_model(factory_a.create('remote_models.Fails'))
    with pytest.raises(ZeroDivisionError) as info:
        top.run()
    assert component_notes(info.value) == [
        "raised by component 'comp' (remote remote_models.Fails)"]
    # the server ran the component too, and named it in the traceback it sent back
    assert 'raised by component ' in info.value.remote_traceback


def test_cli_summary_names_the_component(tmp_path, capsys):
    model = tmp_path / 'boom_model.py'
    model.write_text(
        'from openmdao_like import Assembly, Component, Float\n\n\n'
        'class Divide(Component):\n'
        "    x = Float(1.0, iotype='in')\n"
        "    y = Float(iotype='out')\n\n"
        '    def execute(self):\n'
        '        self.y = 1.0 / self.x\n\n\n'
        'class Boom(Assembly):\n'
        '    def configure(self):\n'
        "        self.add('a', Divide())\n"
        "        self.add('b', Divide(x=0.0))\n"
        "        self.driver.workflow.add(['a', 'b'])\n")
    assert main(['run', str(model)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"openmdao-like run: error: running {str(model)!r} failed: "
                      f"ZeroDivisionError: float division by zero, "
                      f"raised by component 'b' (Divide)")
