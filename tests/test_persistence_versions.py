"""A model saved with paraboloid-plugin 1.0, loaded where 2.0 is installed (both versions built
by the test session), or where the plugin is missing: each process sees one environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SAVE = '''
from openmdao_like import Assembly, create, set_as_top
from openmdao_like.drivers import ScipyOptimizer
top = set_as_top(Assembly())
top.add('p', create('paraboloid_plugin.Paraboloid', version='1.0'))
top.add('driver', ScipyOptimizer(method='SLSQP'))
top.driver.workflow.add('p')
top.driver.add_parameter('p.x', low=-50.0, high=50.0)
top.driver.add_parameter('p.y', low=-50.0, high=50.0)
top.driver.add_objective('p.f_xy')
top.driver.add_constraint('p.x - p.y >= 15.0')
top.save('model.yaml')
top.save('model.pkl')
'''

LOAD = '''
import json, sys, warnings
from openmdao_like import load
from openmdao_like.errors import VersionMismatchError, PersistenceError
policy = sys.argv[2]
try:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        top = load(sys.argv[1], on_version_mismatch=policy)
        top.run()
except VersionMismatchError as exc:
    print(json.dumps({'error': 'mismatch', 'message': str(exc),
                      'mismatches': [vars(m) for m in exc.mismatches]}))
except PersistenceError as exc:
    print(json.dumps({'error': 'persistence', 'message': str(exc)}))
else:
    import paraboloid_plugin
    print(json.dumps({'x': top.p.x, 'y': top.p.y, 'module': paraboloid_plugin.__file__,
                      'warnings': [str(w.message) for w in caught]}))
'''


def python(code: str, cwd: Path, site: Path | None, *args: str) -> dict | None:
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    if site is not None:
        env['PYTHONPATH'] = str(site)
    proc = subprocess.run([sys.executable, '-W', 'error', '-c', textwrap.dedent(code), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else None


@pytest.fixture(scope='module')
def saved_with_v1(tmp_path_factory, paraboloid_plugin_v1) -> Path:
    where = tmp_path_factory.mktemp('saved-v1')
    python(SAVE, where, paraboloid_plugin_v1)
    return where


@pytest.mark.parametrize('name', ['model.yaml', 'model.pkl'])
def test_the_header_records_the_plugin_version(saved_with_v1, name):
    from openmdao_like.persistence import read_header
    rows = {r['class']: r for r in read_header(saved_with_v1 / name)['classes']}
    assert rows['paraboloid_plugin.Paraboloid'] == {
        'class': 'paraboloid_plugin.Paraboloid', 'distribution': 'paraboloid-plugin',
        'version': '1.0'}


@pytest.mark.parametrize('name', ['model.yaml', 'model.pkl'])
def test_loading_where_v2_is_installed_names_distribution_and_both_versions(
        saved_with_v1, paraboloid_plugin_v2, name):
    out = python(LOAD, saved_with_v1, paraboloid_plugin_v2, name, 'error')
    assert out['error'] == 'mismatch'
    assert out['mismatches'] == [{'class_name': 'paraboloid_plugin.Paraboloid',
                                  'distribution': 'paraboloid-plugin', 'saved': '1.0',
                                  'installed': '2.0'}]
    assert 'paraboloid_plugin.Paraboloid: distribution paraboloid-plugin saved at version ' \
           '1.0, installed here: 2.0' in out['message']


@pytest.mark.parametrize('name', ['model.yaml', 'model.pkl'])
def test_warn_loads_with_v2_and_says_so(saved_with_v1, paraboloid_plugin_v2, name):
    out = python(LOAD, saved_with_v1, paraboloid_plugin_v2, name, 'warn')
    assert out['module'].startswith(str(paraboloid_plugin_v2))
    assert out['x'] == pytest.approx(7.1667, abs=1e-3)
    assert len(out['warnings']) == 1 and 'paraboloid-plugin saved at version 1.0, installed ' \
        'here: 2.0' in out['warnings'][0]


@pytest.mark.parametrize('name', ['model.yaml', 'model.pkl'])
def test_loading_with_v1_installed_is_silent(saved_with_v1, paraboloid_plugin_v1, name):
    out = python(LOAD, saved_with_v1, paraboloid_plugin_v1, name, 'error')
    assert out['warnings'] == [] and out['module'].startswith(str(paraboloid_plugin_v1))
    assert (out['x'], out['y']) == pytest.approx((7.1667, -7.8333), abs=1e-3)


@pytest.mark.parametrize('name', ['model.yaml', 'model.pkl'])
def test_loading_without_the_plugin_says_it_is_not_installed(saved_with_v1, name):
    out = python(LOAD, saved_with_v1, None, name, 'error')
    assert out['error'] == 'mismatch'
    assert 'distribution paraboloid-plugin saved at version 1.0, installed here: not ' \
           'installed' in out['message']
