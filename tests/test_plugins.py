"""The example plugins of plugins/: installed with pip, used through `create()` in real model
runs, their own tests passing, and listed by ``openmdao-like plugin list``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from openmdao_like import Assembly, Component, Float, create, set_as_top
from openmdao_like.drivers import DOEDriver, ScipyOptimizer
from openmdao_like.recorders import SQLiteRecorder, read_cases
from plugin_tools import PLUGINS

CLI = Path(sys.executable).parent / 'openmdao-like'


def with_pythonpath(*dirs: Path) -> dict[str, str]:
    """This environment with ``dirs`` first on PYTHONPATH (and no bytecode written)."""
    path = os.pathsep.join([*(str(d) for d in dirs), os.environ.get('PYTHONPATH', '')])
    return dict(os.environ, PYTHONPATH=path.rstrip(os.pathsep), PYTHONDONTWRITEBYTECODE='1')


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


def rows(stdout: str) -> list[list[str]]:
    """The cells of a table's body (below the header rule)."""
    lines = stdout.splitlines()
    return [line.split() for line in lines[2:]]


# -- used in models -----------------------------------------------------------------------------
@pytest.mark.parametrize('constrained, optimum', [
    (False, (20 / 3, -22 / 3, -82 / 3)),
    (True, (43 / 6, -47 / 6, -27.083333333)),
])
def test_paraboloid_plugin_optimized(on_sys_path, paraboloid_plugin_v1, constrained, optimum):
    on_sys_path(paraboloid_plugin_v1)
    top = set_as_top(Assembly())
    top.add('p', create('paraboloid_plugin.Paraboloid', version='1.0'))
    top.add('driver', create('openmdao_like.drivers.ScipyOptimizer', method='SLSQP'))
    top.driver.workflow.add('p')
    top.driver.add_parameter('p.x', low=-50.0, high=50.0)
    top.driver.add_parameter('p.y', low=-50.0, high=50.0)
    top.driver.add_objective('p.f_xy')
    if constrained:
        top.driver.add_constraint('p.x - p.y >= 15.0')
    top.run()
    assert isinstance(top.driver, ScipyOptimizer) and top.driver.success
    x, y, f = optimum
    assert top.p.x == pytest.approx(x, abs=1e-4)
    assert top.p.y == pytest.approx(y, abs=1e-4)
    assert top.p.f_xy == pytest.approx(f, abs=1e-6)
    assert top.p.get_metadata('f_xy', 'units') == 'm**2'


def test_halton_plugin_drives_a_recorded_doe(on_sys_path, paraboloid_plugin_v1, qmc_doe_site,
                                             tmp_path):
    on_sys_path(paraboloid_plugin_v1, qmc_doe_site)
    top = set_as_top(Assembly())
    top.add('p', create('paraboloid_plugin.Paraboloid'))
    top.add('driver', DOEDriver(create('qmc_doe.Halton', num_samples=16, seed=2)))
    top.driver.workflow.add('p')
    top.driver.add_parameter('p.x', low=-5.0, high=5.0)
    top.driver.add_parameter('p.y', low=0.0, high=10.0)
    top.driver.add_response('p.f_xy')
    top.recorders = [SQLiteRecorder(tmp_path / 'halton.sqlite')]
    top.run()
    cases = read_cases(tmp_path / 'halton.sqlite')
    assert [c['id'] for c in cases] == list(range(16))
    assert all(c['status'] == 'ok' for c in cases)
    x = np.array([c['p.x'] for c in cases])
    y = np.array([c['p.y'] for c in cases])
    assert np.all((-5 <= x) & (x <= 5)) and np.all((0 <= y) & (y <= 10))
    assert len(set(x)) == 16  # a low-discrepancy sequence does not repeat points
    f = np.array([c['p.f_xy'] for c in cases])
    assert np.allclose(f, (x - 3) ** 2 + x * y + (y + 4) ** 2 - 3)
    # the generator's settings are attributes named like its arguments
    gen = top.driver.generator
    assert (gen.num_samples, gen.seed, gen.scramble) == (16, 2, True)


class Sphere(Component):
    a = Float(0.0, iotype='in')
    b = Float(0.0, iotype='in')
    r2 = Float(0.0, iotype='out')

    def execute(self):
        self.r2 = self.a ** 2 + self.b ** 2


def test_sobol_plugin_in_a_doe_driver(on_sys_path, qmc_doe_site):
    on_sys_path(qmc_doe_site)
    top = set_as_top(Assembly())
    top.add('s', Sphere())
    top.add('driver', DOEDriver(create('qmc_doe.Sobol', m=4, seed=1)))
    top.driver.workflow.add('s')
    top.driver.add_parameter('s.a', low=-1.0, high=1.0)
    top.driver.add_parameter('s.b', low=-1.0, high=1.0)
    top.driver.add_response('s.r2')
    top.run()
    results = top.driver.results
    assert len(results) == 16 and all(c.status == 'ok' for c in results)
    a = np.array([c.inputs['s.a'] for c in results])
    assert sorted(np.floor((a + 1.0) / 2.0 * 16)) == list(range(16))  # one point per bin
    assert all(c.outputs['s.r2'] == pytest.approx(c.inputs['s.a'] ** 2 + c.inputs['s.b'] ** 2)
               for c in results)


# -- the plugins' own tests -----------------------------------------------------------------------
@pytest.mark.parametrize('plugin, site_fixture, expected', [
    ('paraboloid_plugin', 'paraboloid_plugin_v1', '8 passed'),
    ('qmc_doe', 'qmc_doe_site', '18 passed'),
])
def test_plugins_own_tests_pass_against_the_installed_plugin(request, plugin, site_fixture,
                                                             expected):
    site = request.getfixturevalue(site_fixture)
    # -P: the plugin comes from its install directory, not from the source tree (the cwd)
    proc = subprocess.run([sys.executable, '-P', '-m', 'pytest', '-q', '-p', 'no:cacheprovider'],
                          cwd=PLUGINS / plugin, env=with_pythonpath(site), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert expected in proc.stdout.splitlines()[-1]


# -- openmdao-like plugin list --------------------------------------------------------------------
def test_plugin_list_shows_installed_plugins(paraboloid_plugin_v1, qmc_doe_site, tmp_path):
    env = with_pythonpath(paraboloid_plugin_v1, qmc_doe_site)
    proc = cli('plugin', 'list', env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ['name', 'version', 'distribution', 'group']
    table = rows(proc.stdout)
    assert ['paraboloid_plugin.Paraboloid', '1.0', 'paraboloid-plugin',
            'openmdao_like.component'] in table
    assert ['qmc_doe.Halton', '1.0', 'qmc-doe', 'openmdao_like.doegenerator'] in table
    assert ['qmc_doe.Sobol', '1.0', 'qmc-doe', 'openmdao_like.doegenerator'] in table
    assert ['openmdao_like.drivers.RunOnce', '0.1.0', 'openmdao_like',
            'openmdao_like.driver'] in table
    assert [r[0] for r in table] == sorted(r[0] for r in table)


@pytest.mark.parametrize('group', ['doegenerator', 'openmdao_like.doegenerator'])
def test_plugin_list_filters_by_group(paraboloid_plugin_v1, qmc_doe_site, tmp_path, group):
    env = with_pythonpath(paraboloid_plugin_v1, qmc_doe_site)
    proc = cli('plugin', 'list', '--group', group, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = rows(proc.stdout)
    names = [r[0] for r in table]
    assert {'qmc_doe.Halton', 'qmc_doe.Sobol', 'openmdao_like.drivers.doe.LatinHypercube'} \
        <= set(names)
    assert {r[3] for r in table} == {'openmdao_like.doegenerator'}


def test_plugin_list_two_versions_and_errors(paraboloid_plugin_v1, paraboloid_plugin_v2,
                                             tmp_path):
    env = with_pythonpath(paraboloid_plugin_v2, paraboloid_plugin_v1)
    proc = cli('plugin', 'list', '-g', 'component', env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [r[:2] for r in rows(proc.stdout) if r[0] == 'paraboloid_plugin.Paraboloid'] == \
        [['paraboloid_plugin.Paraboloid', '1.0'], ['paraboloid_plugin.Paraboloid', '2.0']]
    proc = cli('plugin', 'list', '--group', 'allocator', env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'openmdao_like.resources.SlurmAllocator' in [r[0] for r in rows(proc.stdout)]
    proc = cli('plugin', 'list', '--group', 'widgets', env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert 'usage: openmdao-like plugin list' in proc.stderr
    assert ("unknown group 'widgets'; expected one of component, driver, variable, allocator, "
            "doegenerator, caserecorder") in proc.stderr
