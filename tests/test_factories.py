"""Factories: the FactoryManager chain, ImportFactory and PkgResourcesFactory (entry points of
installed distributions, versions, search paths), through `create` as a user calls it."""

from __future__ import annotations

import collections
import os
import shutil
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import openmdao_like
from openmdao_like import create, get_available_types, register_factory, remove_factory
from openmdao_like.drivers import RunOnce, ScipyOptimizer
from openmdao_like.factories import (Factory, FactoryManager, ImportFactory, PkgResourcesFactory,
                                     TypeInfo, factory_manager)
from openmdao_like.recorders import CSVRecorder

PARABOLOID = 'paraboloid_plugin.Paraboloid'


class Made:
    """What the test factories create."""

    def __init__(self, factory: str, typname: str, **kwargs):
        self.factory, self.typname, self.kwargs = factory, typname, kwargs


class Scripted(Factory):
    """A factory that serves the names it is given and logs every request."""

    def __init__(self, label: str, serves=(), reason: str = 'not mine', log=None):
        self.label, self.serves, self.reason = label, set(serves), reason
        self.log = [] if log is None else log

    def create(self, typname, version=None, server=None, res_desc=None, **ctor_args):
        self.log.append(self.label)
        if typname in self.serves:
            return Made(self.label, typname, version=version, server=server, res_desc=res_desc,
                        **ctor_args)
        return None

    def why_not(self, typname, version=None, server=None, res_desc=None):
        return self.reason

    def get_available_types(self, groups=None):
        return [TypeInfo(name, '1.0', f'{self.label}-dist', None) for name in self.serves]

    def __repr__(self):
        return f'Scripted({self.label!r})'


class ServerFactory(Factory):
    """Serves only requests that name a server or resources (as the remote layer's will)."""

    def __init__(self):
        self.requests = []

    def create(self, typname, version=None, server=None, res_desc=None, **ctor_args):
        if server is None and not res_desc:
            return None
        self.requests.append((typname, version, server, res_desc, ctor_args))
        return Made('server', typname, server=server)

    def why_not(self, typname, version=None, server=None, res_desc=None):
        return 'no server or resources requested'


# -- FactoryManager -------------------------------------------------------------------------------
def test_factories_are_tried_in_order_and_the_first_object_wins():
    log = []
    first, second, third = (Scripted('a', log=log), Scripted('b', {'T'}, log=log),
                            Scripted('c', {'T'}, log=log))
    manager = FactoryManager([first, second, third])
    assert manager.factories == (first, second, third)
    obj = manager.create('T', x=1)
    assert (obj.factory, obj.kwargs) == ('b', {'version': None, 'server': None,
                                               'res_desc': None, 'x': 1})
    assert log == ['a', 'b']


def test_a_falsy_object_is_still_an_answer():
    obj = FactoryManager([ImportFactory(), Scripted('never', {'collections.OrderedDict'})]) \
        .create('collections.OrderedDict')
    assert type(obj) is collections.OrderedDict and not obj


def test_name_error_lists_every_factory_and_its_reason():
    manager = FactoryManager([Scripted('a', reason='reason one'),
                              Scripted('b', reason='reason two')])
    with pytest.raises(NameError) as info:
        manager.create('pkg.Thing', version='2.0')
    lines = str(info.value).splitlines()
    assert lines[0] == "cannot create 'pkg.Thing (version 2.0)': no factory could make it:"
    assert lines[1:3] == ["  Scripted('a'): reason one", "  Scripted('b'): reason two"]
    assert "'pkg'" in lines[3] and 'openmdao-like plugin list' in lines[3]
    with pytest.raises(NameError, match='no factory is registered'):
        FactoryManager().create('pkg.Thing')


def test_default_chain_says_what_each_factory_found():
    with pytest.raises(NameError) as info:
        create('no_such_package_xyz.Thing')
    text = str(info.value)
    assert "PkgResourcesFactory(): no entry point named 'no_such_package_xyz.Thing'" in text
    assert 'openmdao_like.component' in text and 'openmdao_like.caserecorder' in text
    assert "ImportFactory(): ImportError: no module named 'no_such_package_xyz'" in text


def test_type_name_must_be_a_string():
    with pytest.raises(TypeError, match=r'expected a type name .* got 42 \(int\)'):
        create(42)


def test_register_at_an_index_and_remove():
    a, b, c = Scripted('a'), Scripted('b'), Scripted('c')
    manager = FactoryManager([a])
    manager.register_factory(b)
    manager.register_factory(c, 0)
    assert manager.factories == (c, a, b)
    manager.remove_factory(a)
    assert manager.factories == (c, b)


def test_register_and_remove_errors_name_the_factory():
    a = Scripted('a')
    manager = FactoryManager([a])
    with pytest.raises(TypeError, match=r'expected a Factory .* got str'):
        manager.register_factory('ImportFactory')
    with pytest.raises(TypeError, match='got function'):
        manager.register_factory(lambda typname: None)
    with pytest.raises(ValueError, match=r"Scripted\('a'\) is already registered"):
        manager.register_factory(a)
    with pytest.raises(ValueError, match=r"Scripted\('b'\) is not registered "
                                         r"\(registered: Scripted\('a'\)\)"):
        manager.remove_factory(Scripted('b'))
    assert manager.factories == (a,)


def test_module_level_register_and_remove_use_the_default_chain():
    extra = Scripted('extra', {'only.in.extra'})
    register_factory(extra)
    try:
        assert factory_manager.factories[-1] is extra
        assert create('only.in.extra').factory == 'extra'
    finally:
        remove_factory(extra)
    assert extra not in factory_manager.factories
    with pytest.raises(NameError):
        create('only.in.extra')


def test_creating_while_the_chain_changes_in_another_thread():
    base = Scripted('base', {'T'})
    manager = FactoryManager([base])
    stop = threading.Event()
    errors, made = [], collections.Counter()

    def creator():
        try:
            while not stop.is_set():
                made[manager.create('T').factory] += 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def churn():
        try:
            for i in range(300):
                f = Scripted(f'f{i}', {'T'})
                manager.register_factory(f, 0)
                manager.remove_factory(f)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    creators = [threading.Thread(target=creator) for _ in range(6)]
    for t in creators:
        t.start()
    churner = threading.Thread(target=churn)
    churner.start()
    churner.join(30)
    stop.set()
    for t in creators:
        t.join(30)
    assert not churner.is_alive() and not any(t.is_alive() for t in creators)
    assert errors == []
    assert sum(made.values()) > 0 and set(made) <= {'base'} | {f'f{i}' for i in range(300)}
    assert manager.factories == (base,)


def test_concurrent_registrations_are_not_lost():
    manager = FactoryManager()
    factories = [Scripted(f'f{i}') for i in range(200)]
    barrier = threading.Barrier(8)

    def register(chunk):
        barrier.wait()
        for f in chunk:
            manager.register_factory(f)

    threads = [threading.Thread(target=register, args=(factories[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert set(manager.factories) == set(factories) and len(manager.factories) == 200


# -- ImportFactory --------------------------------------------------------------------------------
@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    """A directory on sys.path holding modules whose import fails."""
    (tmp_path / 'needs_missing_dep.py').write_text(
        'import no_such_dependency_xyz\n\nclass Thing:\n    pass\n')
    (tmp_path / 'raises_on_import.py').write_text(
        "raise RuntimeError('configuration file not found')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ('needs_missing_dep', 'raises_on_import'):
        sys.modules.pop(name, None)


@pytest.mark.parametrize('typname, reason', [
    ('Thing', 'expected a dotted path "package.module.Class"'),
    ('no_such_package_xyz.mod.Thing', "no module named 'no_such_package_xyz.mod'"),
    ('os.path.no_such_function', "module 'os.path' has no attribute 'no_such_function'"),
    ('os.path.join', "'os.path.join' is a function, not a class"),
    ('os.sep', "'os.sep' is a str, not a class"),
    ('1bad.name', "'1bad.name' is not a dotted Python path"),
    ('needs_missing_dep.Thing', "No module named 'no_such_dependency_xyz'"),
    ('raises_on_import.Thing', 'RuntimeError: configuration file not found'),
])
def test_import_factory_returns_none_and_says_why(module_dir, typname, reason):
    factory = ImportFactory()
    assert factory.create(typname) is None
    assert factory.find_class(typname) is None
    assert reason in factory.why_not(typname)
    with pytest.raises(NameError, match='ImportFactory') as info:
        create(typname)
    assert reason in str(info.value)


@pytest.mark.parametrize('request_args, reason', [
    ({'version': '1.0'}, 'version 1.0 requested; an import cannot choose a version'),
    ({'server': 'host:1234'}, "a server ('host:1234') was requested"),
    ({'res_desc': {'min_cpus': 2}}, 'resources (min_cpus) were requested'),
])
def test_import_factory_refuses_versions_servers_and_resources(request_args, reason):
    factory = ImportFactory()
    assert factory.create('collections.OrderedDict', **request_args) is None
    assert factory.why_not('collections.OrderedDict', **request_args).startswith(reason)


def test_import_factory_creates_any_class_and_empty_res_desc_is_local():
    factory = ImportFactory()
    assert type(factory.create('collections.OrderedDict', res_desc={})) is \
        collections.OrderedDict
    counter = create('collections.Counter', a=2)
    assert counter == collections.Counter(a=2)
    assert type(create('openmdao_like.drivers.runonce.RunOnce')) is RunOnce


# -- the framework's own entry points -------------------------------------------------------------
def test_framework_classes_are_entry_points():
    opt = create('openmdao_like.drivers.ScipyOptimizer', method='COBYLA', maxiter=50)
    assert type(opt) is ScipyOptimizer and (opt.method, opt.maxiter) == ('COBYLA', 50)
    same = create('openmdao_like.drivers.ScipyOptimizer', version=openmdao_like.__version__)
    assert type(same) is ScipyOptimizer
    assert type(create('openmdao_like.recorders.CSVRecorder', path='cases.csv')) is CSVRecorder
    names = {t.name: t for t in get_available_types()}
    assert names['openmdao_like.Float'] == TypeInfo('openmdao_like.Float',
                                                     openmdao_like.__version__,
                                                     'openmdao_like', 'openmdao_like.variable')
    assert names['openmdao_like.drivers.RunOnce'].group == 'openmdao_like.driver'


def test_framework_version_mismatch_names_the_installed_version():
    with pytest.raises(NameError) as info:
        create('openmdao_like.drivers.RunOnce', version='99.0')
    assert (f'version 99.0 requested, installed: {openmdao_like.__version__} (openmdao_like)'
            in str(info.value))


def test_groups_filter_short_or_full_names():
    doe = get_available_types('doegenerator')
    assert doe == get_available_types('openmdao_like.doegenerator')
    assert {t.group for t in doe} == {'openmdao_like.doegenerator'}
    assert 'openmdao_like.drivers.doe.LatinHypercube' in {t.name for t in doe}
    both = get_available_types(['doegenerator', 'caserecorder'])
    assert {t.group for t in both} == {'openmdao_like.doegenerator',
                                       'openmdao_like.caserecorder'}
    assert {t.name for t in get_available_types('allocator')} == {
        f'openmdao_like.resources.{name}' for name in
        ('LocalAllocator', 'ClusterAllocator', 'SlurmAllocator', 'PBSAllocator', 'MPIAllocator')}


# -- PkgResourcesFactory with installed plugins ---------------------------------------------------
def test_plugin_created_by_entry_point_name_and_version(on_sys_path, paraboloid_plugin_v1):
    on_sys_path(paraboloid_plugin_v1)
    for version in (None, '1.0', '1', '==1.0', '>=1.0,<2', '~=1.0'):
        p = create(PARABOLOID, version=version, x=7.0, y=-8.0)
        p.run()
        assert p.f_xy == -27.0
    module = sys.modules['paraboloid_plugin']
    assert module.__version__ == '1.0'
    assert Path(module.__file__).is_relative_to(paraboloid_plugin_v1)
    assert factory_manager.type_info(type(p)) == TypeInfo(PARABOLOID, '1.0', 'paraboloid-plugin',
                                                          'openmdao_like.component')


def test_version_mismatch_is_found_before_importing(on_sys_path, paraboloid_plugin_v1):
    on_sys_path(paraboloid_plugin_v1)
    for version in ('2.0', '>=2'):
        with pytest.raises(NameError) as info:
            create(PARABOLOID, version=version)
        text = str(info.value)
        assert f"cannot create '{PARABOLOID} (version {version})'" in text
        assert (f'PkgResourcesFactory(): version {version} requested, installed: '
                f'1.0 (paraboloid-plugin)') in text
        assert f'ImportFactory(): version {version} requested' in text
    assert 'paraboloid_plugin' not in sys.modules


def test_server_and_resource_requests_go_down_the_chain(on_sys_path, paraboloid_plugin_v1):
    on_sys_path(paraboloid_plugin_v1)
    with pytest.raises(NameError) as info:
        create(PARABOLOID, server='127.0.0.1:18861')
    assert str(info.value).count("a server ('127.0.0.1:18861') was requested") == 2
    remote = ServerFactory()
    register_factory(remote, index=0)  # before the chain's own remote and RAM factories
    try:
        made = create(PARABOLOID, version='1.0', server='127.0.0.1:18861', x=1.0)
        assert (made.factory, made.kwargs) == ('server', {'server': '127.0.0.1:18861'})
        made = create(PARABOLOID, res_desc={'min_cpus': 2})
        assert made.factory == 'server'
        assert remote.requests == [(PARABOLOID, '1.0', '127.0.0.1:18861', None, {'x': 1.0}),
                                   (PARABOLOID, None, None, {'min_cpus': 2}, {})]
        assert type(create(PARABOLOID)).__name__ == 'Paraboloid'  # local requests stay local
        assert len(remote.requests) == 2
    finally:
        remove_factory(remote)


def test_search_path_of_two_environments_picks_the_requested_version(paraboloid_plugin_v1,
                                                                      paraboloid_plugin_v2):
    saved = list(sys.path)
    factory = PkgResourcesFactory(search_path=[paraboloid_plugin_v1, paraboloid_plugin_v2])
    manager = FactoryManager([factory, ImportFactory()])
    try:
        listed = factory.get_available_types('component')
        assert [(t.name, t.version) for t in listed] == [(PARABOLOID, '1.0'), (PARABOLOID, '2.0')]
        assert factory.get_available_types('driver') == []
        p = manager.create(PARABOLOID, version='>=2')
        assert Path(sys.modules['paraboloid_plugin'].__file__).is_relative_to(
            paraboloid_plugin_v2)
        assert str(paraboloid_plugin_v2) in sys.path and str(paraboloid_plugin_v1) not in sys.path
        assert type(manager.create(PARABOLOID, version='2.0')) is type(p)
        # 2.0's module is imported now: 1.0 cannot join it in this process, and says so
        with pytest.raises(NameError) as info:
            manager.create(PARABOLOID, version='1.0')
        text = str(info.value)
        assert 'paraboloid-plugin 1.0' in text and 'paraboloid-plugin 2.0' in text
        assert "its module 'paraboloid_plugin' is already imported" in text
        assert type(manager.create(PARABOLOID)) is type(p)  # any version: the loaded one
    finally:
        sys.path[:] = saved
        _forget('paraboloid_plugin')
    p = manager.create(PARABOLOID, version='1.0')
    assert Path(sys.modules['paraboloid_plugin'].__file__).is_relative_to(paraboloid_plugin_v1)
    sys.path[:] = saved
    _forget('paraboloid_plugin')


def test_default_chain_with_both_versions_on_sys_path(on_sys_path, paraboloid_plugin_v1,
                                                      paraboloid_plugin_v2):
    on_sys_path(paraboloid_plugin_v2, paraboloid_plugin_v1)
    listed = [(t.version, t.distribution) for t in get_available_types('component')
              if t.name == PARABOLOID]
    assert listed == [('1.0', 'paraboloid-plugin'), ('2.0', 'paraboloid-plugin')]
    create(PARABOLOID, version='2.0')  # first on sys.path: imported from there
    with pytest.raises(NameError, match="'paraboloid_plugin' is already imported from "
                                        "paraboloid-plugin 2.0"):
        create(PARABOLOID, version='1.0')


def test_an_install_after_the_first_lookup_is_found(tmp_path, paraboloid_plugin_v1):
    site = tmp_path / 'site-packages'
    site.mkdir()
    factory = PkgResourcesFactory(search_path=[site])
    assert factory.create(PARABOLOID) is None
    assert factory.why_not(PARABOLOID).startswith(f"no entry point named '{PARABOLOID}'")
    os.utime(site, ns=(0, 0))  # make sure the install below changes the directory's mtime
    for item in paraboloid_plugin_v1.iterdir():
        shutil.copytree(item, site / item.name)
    saved = list(sys.path)
    try:
        assert type(factory.create(PARABOLOID, x=2.0)).__name__ == 'Paraboloid'
    finally:
        sys.path[:] = saved
        _forget('paraboloid_plugin')


def test_available_types_are_sorted_by_name_then_version(on_sys_path, paraboloid_plugin_v1,
                                                        paraboloid_plugin_v2, qmc_doe_site):
    from packaging.version import Version
    on_sys_path(paraboloid_plugin_v1, paraboloid_plugin_v2, qmc_doe_site)
    types = get_available_types()
    assert types == sorted(types, key=lambda t: (t.name, Version(t.version)))
    assert len(types) == len(set(types))
    assert {t.name for t in get_available_types('doegenerator')} >= {'qmc_doe.Halton',
                                                                     'qmc_doe.Sobol'}
    assert PARABOLOID not in {t.name for t in get_available_types('doegenerator')}


def _forget(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + '.')]:
        del sys.modules[name]


def test_plugin_modules_whose_import_fails_raise_with_the_cause(tmp_path, on_sys_path):
    """A broken installed plugin is not silently skipped: its import error comes through."""
    site = tmp_path / 'site'
    dist = site / 'broken_plugin-1.0.dist-info'
    dist.mkdir(parents=True)
    (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n')
    (dist / 'entry_points.txt').write_text(textwrap.dedent('''\
        [openmdao_like.component]
        broken_plugin.Thing = broken_plugin:Thing
        '''))
    (site / 'broken_plugin.py').write_text('import no_such_dependency_xyz\n')
    on_sys_path(site)
    with pytest.raises(ModuleNotFoundError, match='no_such_dependency_xyz'):
        create('broken_plugin.Thing')
