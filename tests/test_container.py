"""The model tree: adding, removing, dotted get/set, items, names, parents, directories and the
classic Component methods."""

from __future__ import annotations

import os

import numpy as np
import pytest

from openmdao_like import (Array, Assembly, Component, Container, Dict, Float, Int, List,
                           ModelError, PathError, Str, ValidationError, set_as_top)


class Comp(Component):
    """A small component with inputs of several kinds."""

    x = Float(1.0, iotype='in', low=-10.0, high=10.0)
    arr = Array(np.array([1.0, 2.0, 3.0]), iotype='in', high=10.0)
    mat = Array(np.zeros((2, 2)), iotype='in')
    names = List(Str, iotype='in')
    opts = Dict(iotype='in')
    y = Float(iotype='out')
    n = Int(iotype='out')

    def execute(self) -> None:
        self.y = 2.0 * self.x
        self.n += 1


class Bare(Component):
    """A component that forgets to implement execute()."""


@pytest.fixture
def tree():
    """top -> a (Assembly) -> b (Comp), plus top.c (Comp)."""
    top = set_as_top(Assembly())
    a = top.add('a', Assembly())
    a.add('b', Comp())
    top.add('c', Comp())
    return top


# -- add / remove / get / set --------------------------------------------------------------------
def test_add_returns_the_object_and_sets_name_and_parent(tree):
    comp = Comp()
    assert tree.add('d', comp) is comp
    assert comp.name == 'd' and comp.parent is tree and tree.d is comp
    assert 'd' in tree.list_containers() and comp in tree.get_children()


def test_remove_returns_the_object_and_detaches_it(tree):
    c = tree.c
    assert tree.remove('c') is c
    assert c.parent is None and 'c' not in tree.list_containers()
    assert not hasattr(tree, 'c')
    with pytest.raises(ModelError, match=r"cannot remove 'c': no such child or variable"):
        tree.remove('c')


def test_dotted_get_and_set(tree):
    assert tree.get('a.b.x') == 1.0
    assert tree.get('a.b') is tree.a.b
    tree.set('a.b.x', 4)
    assert tree.a.b.x == 4.0 and type(tree.a.b.x) is float
    assert tree.a.get('b.x') == 4.0


def test_array_element_get_and_set(tree):
    assert tree.get('a.b.arr[1]') == 2.0
    assert tree.get('a.b.arr[-1]') == 3.0
    tree.set('a.b.arr[1]', 7.5)
    np.testing.assert_array_equal(tree.a.b.arr, [1.0, 7.5, 3.0])
    tree.set('a.b.mat[1][0]', 3.0)
    assert tree.get('a.b.mat[1][0]') == 3.0 and tree.a.b.mat[1, 0] == 3.0


def test_bad_array_element_is_rejected_with_path_and_left_unchanged(tree):
    with pytest.raises(ValidationError, match=r"^a\.b\.arr\[1\]: cannot set it to 'x' \(str\)"):
        tree.set('a.b.arr[1]', 'x')
    with pytest.raises(ValidationError, match=r'^a\.b\.arr\[5\]: .*out of bounds'):
        tree.set('a.b.arr[5]', 1.0)
    with pytest.raises(ValidationError, match=r'^a\.b\.arr: expected an array with elements in '
                                              r'\[None, 10\.0\]'):
        tree.set('a.b.arr[0]', 100.0)
    np.testing.assert_array_equal(tree.a.b.arr, [1.0, 2.0, 3.0])


def test_set_validates_with_the_full_path(tree):
    with pytest.raises(ValidationError, match=r'^a\.b\.x: expected a float in \[-10\.0, 10\.0\], '
                                              r'got 11 \(int\)$'):
        tree.set('a.b.x', 11)
    assert tree.a.b.x == 1.0


def test_get_and_set_of_unknown_paths_name_them(tree):
    with pytest.raises(ModelError, match=r"cannot resolve 'a\.q\.x': 'a\.q' does not exist"):
        tree.get('a.q.x')
    with pytest.raises(ModelError, match=r"cannot get 'a\.b\.q': 'a\.b' has no variable or child "
                                         r"'q'"):
        tree.get('a.b.q')
    with pytest.raises(ModelError, match=r"cannot set 'a\.b\.q': 'a\.b' has no variable or child "
                                         r"'q'"):
        tree.set('a.b.q', 1.0)
    with pytest.raises(ModelError, match='bad variable reference'):
        tree.get('a.b.arr[x]')


def test_add_and_remove_a_variable_on_an_instance(tree):
    comp = tree.a.b
    comp.add('extra', Float(2.0, iotype='in', low=0.0, units='m'))
    assert comp.extra == 2.0 and 'extra' in comp.list_inputs()
    assert comp.get_metadata('extra', 'units') == 'm'
    assert Comp().trait('extra') is None          # the class and other instances are untouched
    with pytest.raises(ModelError, match=r"name 'extra' is already in use"):
        comp.add('extra', Float(iotype='in'))
    with pytest.raises(ValidationError, match=r'^a\.b\.extra: expected a float in \[0\.0, inf\]'):
        comp.extra = -1.0
    comp.remove('extra')
    assert 'extra' not in comp.list_inputs()


def test_adding_something_that_is_not_a_container_fails(tree):
    with pytest.raises(ModelError, match=r"cannot add 'z': expected a Container, Component or "
                                         r"Variable, got 3 \(int\)"):
        tree.add('z', 3)


# -- items ---------------------------------------------------------------------------------------
def test_items_recurse(tree):
    found = dict(tree.items(recurse=True))
    assert found['a'] is tree.a and found['a.b'] is tree.a.b
    assert found['a.b.x'] == 1.0 and found['c.y'] == 0.0
    assert 'a.driver' in found and 'driver' in found
    assert set(dict(tree.items())) == {'driver', 'a', 'c'}


def test_items_filtered_by_iotype(tree):
    inputs = dict(tree.items(recurse=True, iotype='in'))
    assert set(inputs) == {'a.b.x', 'a.b.arr', 'a.b.mat', 'a.b.names', 'a.b.opts',
                           'c.x', 'c.arr', 'c.mat', 'c.names', 'c.opts'}
    outputs = dict(tree.c.items(iotype='out'))
    assert outputs == {'y': 0.0, 'n': 0}
    assert tree.keys(recurse=True, iotype='out') == ['a.b.n', 'a.b.y', 'c.n', 'c.y']


def test_list_and_dict_variables_are_listed_once():
    """traits' hidden ``<name>_items`` events of List/Dict are not variables."""
    comp = Comp()
    comp.names = ['a']
    comp.names.append('b')
    comp.opts['k'] = 1
    assert comp.list_inputs() == ['arr', 'mat', 'names', 'opts', 'x']
    assert dict(comp.items())['opts'] == {'k': 1}
    assert comp.get_metadata('names', 'iotype') == 'in'


# -- names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('name, expected', [
    ('run', r"'run' is a reserved name"),
    ('get', r"'get' is a reserved name"),
    ('parent', r"'parent' is a reserved name"),
    ('exec_count', r"'exec_count' is a reserved name"),
    ('recorders', r"'recorders' is a reserved name"),
    ('1abc', r"expected a valid Python identifier as name, got '1abc'"),
    ('a b', r'expected a valid Python identifier'),
    ('for', r"expected a valid Python identifier as name, got 'for'"),
    ('_x', r'names starting with "_" are reserved'),
    ('', r'expected a valid Python identifier'),
    (3, r'expected a valid Python identifier as name, got 3 \(int\)'),
])
def test_reserved_and_invalid_names(tree, name, expected):
    with pytest.raises(ModelError, match=expected):
        tree.add(name, Comp())
    assert tree.exec_count == 0 and tree.recorders == []


def test_a_component_cannot_have_a_child_named_like_its_variable(tree):
    with pytest.raises(ModelError, match=r"name 'x' is already a variable"):
        tree.c.add('x', Comp())


def test_driver_may_be_replaced(tree):
    from openmdao_like.drivers import RunOnce
    new = RunOnce()
    tree.add('driver', new)
    assert tree.driver is new


# -- recursion and ownership ---------------------------------------------------------------------
def test_container_cannot_contain_itself(tree):
    with pytest.raises(ModelError, match=r'it would contain itself \(container recursion\)'):
        tree.a.b.add('loop', tree)
    with pytest.raises(ModelError, match='container recursion'):
        tree.a.add('me', tree.a)


def test_object_owned_by_another_parent_must_be_removed_first(tree):
    other = set_as_top(Assembly())
    with pytest.raises(ModelError, match=r"cannot add 'b': it already belongs to 'a'; remove it "
                                         r"there first"):
        other.add('b', tree.a.b)
    b = tree.a.remove('b')
    other.add('b', b)
    assert b.parent is other and b.pathname == 'b'


def test_plain_containers_nest():
    top = set_as_top(Container())
    inner = top.add('inner', Container())
    inner.add('v', Float(3.0, iotype='in'))
    assert top.get('inner.v') == 3.0
    top.set('inner.v', 4)
    assert inner.v == 4.0 and inner.pathname == 'inner'


# -- pathnames -----------------------------------------------------------------------------------
def test_pathname_parent_and_set_as_top(tree):
    b = tree.a.b
    assert b.pathname == 'a.b' and b.get_pathname() == 'a.b'
    assert b.get_pathname(rel_to_scope=tree.a) == 'b'
    assert tree.pathname == '' and tree.a.parent is tree and tree.parent is None
    with pytest.raises(ModelError, match=r"a\.b: cannot be made the top: it belongs to 'a'"):
        set_as_top(b)


def test_rename_keeps_the_object(tree):
    b = tree.a.b
    tree.a.rename('b', 'bb')
    assert tree.a.bb is b and b.name == 'bb' and b.pathname == 'a.bb'
    assert tree.a.list_containers() == ['driver', 'bb']


# -- directories ---------------------------------------------------------------------------------
class WhereAmI(Component):
    cwd = Str(iotype='out')

    def execute(self) -> None:
        self.cwd = os.getcwd()
        with open('marker.txt', 'w') as f:
            f.write(self.name)


def test_execute_runs_in_the_component_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    top = set_as_top(Assembly(), basedir=str(tmp_path))
    sub = top.add('sub', Assembly())
    sub.directory = 'subdir'
    comp = sub.add('w', WhereAmI())
    comp.directory = os.path.join('deep', 'er')
    sub.driver.workflow.add('w')
    top.driver.workflow.add('sub')
    assert not (tmp_path / 'subdir').exists()
    top.run()
    expected = tmp_path / 'subdir' / 'deep' / 'er'
    assert comp.cwd == str(expected)
    assert (expected / 'marker.txt').read_text() == 'w'
    assert os.getcwd() == str(tmp_path)                # restored afterwards
    assert comp.get_abs_directory() == str(expected)


def test_cwd_is_restored_when_execute_fails(tmp_path, monkeypatch):
    class Boom(Component):
        def execute(self) -> None:
            raise RuntimeError('boom')

    monkeypatch.chdir(tmp_path)
    top = set_as_top(Assembly(), basedir=str(tmp_path))
    top.add('b', Boom()).directory = 'bdir'
    top.driver.workflow.add('b')
    with pytest.raises(RuntimeError, match='boom'):
        top.run()
    assert os.getcwd() == str(tmp_path) and (tmp_path / 'bdir').is_dir()


@pytest.mark.parametrize('directory', ['/tmp', '..', os.path.join('a', '..', '..', 'x')])
def test_directory_escaping_the_top_is_rejected(tmp_path, monkeypatch, directory):
    monkeypatch.chdir(tmp_path)
    top = set_as_top(Assembly(), basedir=str(tmp_path / 'top'))
    w = top.add('w', WhereAmI())
    w.directory = directory
    top.driver.workflow.add('w')
    with pytest.raises(PathError) as info:
        top.run()
    msg = str(info.value)
    assert msg.startswith('w.directory: expected a relative path below the top directory')
    assert str(tmp_path / 'top') in msg and repr(directory) in msg
    assert w.exec_count == 0 and not (tmp_path / 'marker.txt').exists()


def test_directory_must_be_a_string(tree):
    with pytest.raises(PathError, match=r'c\.directory: expected a str, got 3 \(int\)'):
        tree.c.directory = 3


def test_top_directory_is_basedir(tmp_path):
    top = set_as_top(Assembly(), basedir=str(tmp_path))
    top.add('c', Comp()).directory = 'cdir'
    assert top.get_abs_directory() == str(tmp_path)
    assert top.c.get_abs_directory() == str(tmp_path / 'cdir')


# -- running -------------------------------------------------------------------------------------
def test_missing_execute_names_the_component(tree):
    tree.a.add('bare', Bare())
    with pytest.raises(NotImplementedError, match=r'^a\.bare: Bare does not implement execute'):
        tree.a.bare.run()


def test_exec_count_counts_runs(tree):
    c = tree.c
    assert c.exec_count == 0
    for _ in range(3):
        c.run()
    assert c.exec_count == 3 and c.n == 3
    tree.driver.workflow.add('c')
    tree.run()
    assert c.exec_count == 4 and tree.exec_count == 1


# -- classic methods -----------------------------------------------------------------------------
def test_list_inputs_and_outputs(tree):
    assert tree.c.list_inputs() == ['arr', 'mat', 'names', 'opts', 'x']
    assert tree.c.list_outputs() == ['n', 'y']


def test_get_trait(tree):
    trait = tree.c.get_trait('x')
    assert trait.iotype == 'in' and trait.low == -10.0
    with pytest.raises(ModelError, match=r"no variable named 'nope'"):
        tree.c.get_trait('nope')


def test_revert_to_defaults_resets_inputs_only(tree):
    c = tree.c
    c.x = 5.0
    c.arr = [9.0, 9.0]
    c.run()
    c.revert_to_defaults()
    assert c.x == 1.0
    np.testing.assert_array_equal(c.arr, [1.0, 2.0, 3.0])
    assert c.y == 10.0                                   # outputs keep their values


def test_raise_exception_prefixes_the_path(tree):
    with pytest.raises(ValueError, match=r'^a\.b: something is wrong$'):
        tree.a.b.raise_exception('something is wrong', ValueError)
    with pytest.raises(RuntimeError, match=r'^c: default type$'):
        tree.c.raise_exception('default type')


def test_list_connections_and_get_pathname(tree):
    tree.add('d', Comp())
    tree.connect('c.y', 'd.x')
    assert tree.list_connections() == [('c.y', 'd.x')]
    assert tree.d.get_pathname() == 'd'


def test_pre_delete_reaches_children(tree):
    seen = []

    class Tracked(Comp):
        def pre_delete(self) -> None:
            seen.append(self.pathname)
            super().pre_delete()

    tree.a.add('t', Tracked())
    tree.pre_delete()
    assert seen == ['a.t']
