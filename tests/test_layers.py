"""The layering of DESIGN.md, checked: the import-linter contract of ``pyproject.toml``, the
factory chain's fixed order whatever was imported first, and the deferred layers loading on
first use (``create(..., res_desc=...)`` in an interpreter that imported only
``openmdao_like``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from openmdao_like.factories import (DeferredFactory, ImportFactory, PkgResourcesFactory,
                                     factory_manager)
from openmdao_like.resources.config import ENV_VAR
from remote_servers import pid_alive

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CHAIN = ['PkgResourcesFactory()', 'ImportFactory()', "DeferredFactory('remote')",
         "DeferredFactory('resources')"]


def run_python(script: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """``script`` run by a fresh interpreter of this venv (tests/ on its path)."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get('PYTHONPATH')]))
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=path, **(env or {})))
    assert proc.returncode == 0, proc.stderr
    return proc


def test_no_lower_layer_imports_a_higher_one():
    lint = Path(sys.executable).parent / 'lint-imports'
    assert lint.exists(), f'{lint} missing: install the test extra (pip install -e .[test])'
    proc = subprocess.run([str(lint), '--no-cache'], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        pytest.fail(f'lint-imports found imports against the layers of DESIGN.md '
                    f'(pyproject.toml, [tool.importlinter]):\n{proc.stdout}\n{proc.stderr}',
                    pytrace=False)


@pytest.mark.parametrize('first', [
    'import openmdao_like',
    'import openmdao_like.resources; import openmdao_like.remote',
    'import openmdao_like.remote.client; import openmdao_like.resources.factory',
    'from openmdao_like.factories import factory_manager',
    'import openmdao_like.persistence; import openmdao_like.remote.isolation',
])
def test_factory_chain_order_does_not_depend_on_imports(first):
    proc = run_python(f'''
        {first}
        import sys
        from openmdao_like.factories import factory_manager
        before = [repr(f) for f in factory_manager.factories]
        loaded = [m for m in ('openmdao_like.remote', 'openmdao_like.resources')
                  if m in sys.modules]
        for factory in factory_manager.factories[2:]:
            factory.loaded()                     # load the deferred layers
        after = [repr(f) for f in factory_manager.factories]
        print(__import__('json').dumps([before, after, loaded]))
        ''')
    before, after, loaded = json.loads(proc.stdout)
    assert before == after == CHAIN
    if first == 'import openmdao_like':  # the deferred layers are not imported until used
        assert loaded == []


def test_deferred_factories_stand_for_the_layers_factories():
    from openmdao_like.remote import remote_factory
    from openmdao_like.resources import ram_factory
    chain = factory_manager.factories
    assert isinstance(chain[0], PkgResourcesFactory) and isinstance(chain[1], ImportFactory)
    remote, ram = chain[2], chain[3]
    assert isinstance(remote, DeferredFactory) and isinstance(ram, DeferredFactory)
    assert remote.loaded() is remote_factory and ram.loaded() is ram_factory
    assert remote.create('collections.OrderedDict') is None  # no server: not its request
    assert ram.create('collections.OrderedDict', res_desc={}) is None
    assert ram.why_not('x.Y', server=('h', 1)) == ('serves requests with a resource '
                                                   'description (res_desc=...) and no server')


def test_deferred_factory_checks_what_it_loads():
    bad = DeferredFactory('bad', lambda: object(), lambda server, res_desc: True, 'never')
    with pytest.raises(TypeError, match=r"DeferredFactory\('bad'\): load\(\) should return a "
                                        r"Factory, got object"):
        bad.create('x.Y', server='somewhere')
    assert bad.factory is None and bad.get_available_types() == [] and \
        bad.find_class('x.Y') is None and bad.type_info(int) is None


def test_create_with_res_desc_in_a_fresh_interpreter(tmp_path):
    config = tmp_path / 'resources.yaml'
    config.write_text('allocators:\n  - type: LocalAllocator\n    max_load: null\n')
    proc = run_python(f'''
        import json, sys
        import openmdao_like
        assert 'openmdao_like.resources' not in sys.modules
        p = openmdao_like.create('remote_models.Paraboloid',
                                 res_desc={{'localhost': True,
                                           'job_environment': {{'PYTHONPATH': {str(TESTS)!r}}}}})
        p.x, p.y = 1.0, 2.0
        p.run()
        print(json.dumps([type(p).__name__, p.f_xy, p.remote_pid]))
        ''', env={ENV_VAR: str(config)})
    name, f_xy, pid = json.loads(proc.stdout)
    assert (name, f_xy) == ('RemoteComponent', 39.0)
    deadline = time.monotonic() + 30
    while pid_alive(pid) and time.monotonic() < deadline:  # released at the client's exit
        time.sleep(0.1)
    assert not pid_alive(pid)
