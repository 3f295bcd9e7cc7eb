"""The Sellar MDF example: solver inside optimizer reaches the known optimum."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from openmdao_like import Assembly, ConfigError, set_as_top

EXAMPLES = Path(__file__).resolve().parent.parent / 'examples'


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f'example_{name}', EXAMPLES / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def sellar() -> ModuleType:
    return _load('sellar')


def test_sellar_reaches_the_optimum(sellar: ModuleType) -> None:
    top = sellar.top
    top.run()
    driver = top.driver
    assert driver.success is True
    assert top.dis1.z1 == pytest.approx(1.9776, abs=1e-3)
    assert top.dis2.z1 == top.dis1.z1                      # broadcast parameter
    assert top.dis1.z2 == pytest.approx(0.0, abs=1e-4)
    assert top.dis1.x1 == pytest.approx(0.0, abs=1e-4)
    assert driver.eval_objective() == pytest.approx(3.1834, abs=1e-3)
    assert top.dis1.y1 == pytest.approx(3.16, abs=1e-5)    # the active constraint
    # the coupled values are consistent at the optimum
    d1, d2 = top.dis1, top.dis2
    assert abs(d1.y1 - (d1.z1**2 + d1.z2 + d1.x1 - 0.2*d2.y2)) < 1e-8
    assert abs(d2.y2 - (abs(d1.y1)**0.5 + d2.z1 + d2.z2)) < 1e-8
    assert top.solver.converged and top.solver.feedback == ['dis2.y2']


def test_sellar_module_defines_the_assembly(sellar: ModuleType) -> None:
    assert isinstance(sellar.top, sellar.SellarMDF)
    assert sellar.top.parent is None


def test_sellar_without_solver_reports_the_cycle(sellar: ModuleType) -> None:
    class NoSolver(Assembly):
        def configure(self) -> None:
            self.add('dis1', sellar.SellarDiscipline1())
            self.add('dis2', sellar.SellarDiscipline2())
            self.connect('dis1.y1', 'dis2.y1')
            self.connect('dis2.y2', 'dis1.y2')
            self.driver.workflow.add(['dis1', 'dis2'])

    top = set_as_top(NoSolver())
    with pytest.raises(ConfigError) as info:
        top.check_config()
    message = str(info.value)
    assert message.startswith('driver: its workflow has a data cycle: dis1 -> dis2 -> dis1.')
    assert 'FixedPointIterator' in message


def test_paraboloid_example() -> None:
    module = _load('paraboloid')
    top = module.top
    assert isinstance(top, module.OptimizationConstrained)
    top.run()
    assert top.p.x == pytest.approx(7.1667, abs=1e-4)
    assert top.p.y == pytest.approx(-7.8333, abs=1e-4)
    assert top.p.f_xy == pytest.approx(-27.0833, abs=1e-4)
    assert isinstance(top.p, module.Paraboloid)
