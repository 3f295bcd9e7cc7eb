"""The installed plugin: found through its entry point, at its installed version, and correct."""

from __future__ import annotations

from importlib.metadata import version

import pytest

import paraboloid_plugin
from openmdao_like import Assembly, create, get_available_types, set_as_top
from openmdao_like.drivers import ScipyOptimizer
from paraboloid_plugin import Paraboloid


def test_version_comes_from_the_installed_metadata():
    assert paraboloid_plugin.__version__ == version('paraboloid-plugin')


def test_entry_point_is_listed_with_its_distribution():
    found = [t for t in get_available_types('component')
             if t.name == 'paraboloid_plugin.Paraboloid']
    assert [(t.version, t.distribution, t.group) for t in found] == \
        [(paraboloid_plugin.__version__, 'paraboloid-plugin', 'openmdao_like.component')]


def test_create_by_entry_point_name_and_version():
    p = create('paraboloid_plugin.Paraboloid', version=paraboloid_plugin.__version__, x=2.0)
    assert type(p) is Paraboloid
    assert p.x == 2.0


@pytest.mark.parametrize('x, y, f', [(0.0, 0.0, 22.0), (3.0, -4.0, -15.0), (5.0, 5.0, 107.0)])
def test_values(x, y, f):
    p = Paraboloid(x=x, y=y)
    p.run()
    assert p.f_xy == f


def test_metadata_and_bounds():
    p = Paraboloid()
    assert p.get_metadata('x', 'units') == 'm'
    assert p.get_metadata('f_xy', 'units') == 'm**2'
    with pytest.raises(ValueError, match=r'x: expected a float in \[-50.0, 50.0\], got 51'):
        p.x = 51


def test_unconstrained_optimum():
    top = set_as_top(Assembly())
    top.add('p', create('paraboloid_plugin.Paraboloid'))
    top.add('driver', ScipyOptimizer(method='SLSQP'))
    top.driver.workflow.add('p')
    top.driver.add_parameter('p.x', low=-50.0, high=50.0)
    top.driver.add_parameter('p.y', low=-50.0, high=50.0)
    top.driver.add_objective('p.f_xy')
    top.run()
    assert top.driver.success
    assert top.p.x == pytest.approx(20 / 3, abs=1e-4)
    assert top.p.y == pytest.approx(-22 / 3, abs=1e-4)
    assert top.p.f_xy == pytest.approx(-82 / 3, abs=1e-6)
