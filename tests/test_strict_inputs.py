"""Strict inputs (issue 13): constructor keywords, NaN in bounded variables, connected inputs,
disconnect, and get/set paths. Each mistake that used to pass silently now fails loudly, with a
message naming the path, what was expected and what was given."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from openmdao_like import (Array, Assembly, Component, ConnectError, Float, ModelError,
                           ValidationError, set_as_top)
from openmdao_like.drivers.fixed_point import FixedPointIterator
from openmdao_like.options import UnknownOptionError


class MyComp(Component):
    """Two inputs, one output."""

    x = Float(1.0, iotype='in')
    y = Float(2.0, iotype='in')
    z = Float(iotype='out')

    def execute(self) -> None:
        self.z = self.x + self.y


class Bounded(Component):
    """Bounded and unbounded floats and arrays."""

    both = Float(0.0, low=-10.0, high=10.0, iotype='in')
    low_only = Float(0.0, low=0.0, iotype='in')
    high_only = Float(0.0, high=5.0, iotype='in')
    free = Float(0.0, iotype='in')
    arr_low = Array(np.zeros(3), low=0.0, iotype='in')
    arr_high = Array(np.zeros((2, 2)), high=1.0, iotype='in')
    arr_free = Array(np.zeros(3), iotype='in')

    def execute(self) -> None:
        pass


class Pair(Assembly):
    """d1.z feeds d2.x; ``gain`` is a passthrough that `configure` adds."""

    def configure(self) -> None:
        self.add('d1', MyComp())
        self.add('d2', MyComp())
        self.add('v', VecComp())
        self.add('w', VecComp())
        self.driver.workflow.add(['d1', 'd2', 'v', 'w'])
        self.connect('d1.z', 'd2.x')
        self.connect('v.out', 'w.vec')
        self.create_passthrough('d1.y', 'gain')


class VecComp(Component):
    """An array input and output."""

    vec = Array(np.zeros(2), iotype='in')
    out = Array(np.ones(2), iotype='out')

    def execute(self) -> None:
        self.out = self.vec + 1.0


@pytest.fixture
def top() -> Pair:
    return set_as_top(Pair())


# -- constructor keywords --------------------------------------------------------------------

def test_unknown_component_keyword_names_the_closest_variable():
    with pytest.raises(UnknownOptionError) as info:
        MyComp(xx=3)
    assert isinstance(info.value, TypeError)
    assert str(info.value) == ("MyComp: unknown keyword 'xx'; did you mean 'x'? "
                               "(variables: x, y, z)")


def test_component_keyword_naming_a_variable_sets_it_checked():
    comp = MyComp(x=3, y=4.5)
    assert (comp.x, comp.y) == (3.0, 4.5)
    with pytest.raises(ValidationError, match=r"^x: expected a float, got 'a' \(str\)$"):
        MyComp(x='a')


def test_assembly_keyword_may_name_a_variable_configure_adds():
    assert Pair(gain=7.0).gain == 7.0
    with pytest.raises(UnknownOptionError, match=r"^Pair: unknown keyword 'gian'; did you mean "
                                                 r"'gain'\? \(variables: gain\)$"):
        Pair(gian=7.0)


def test_driver_keyword_is_an_option_or_a_variable():
    assert FixedPointIterator(tolerance=1e-3).tolerance == 1e-3
    with pytest.raises(UnknownOptionError, match=r"^FixedPointIterator: unknown option "
                                                 r"'tolerence'; did you mean 'tolerance'\? "
                                                 r"\(options: .*tolerance.*; variables: "):
        FixedPointIterator(tolerence=1e-3)


# -- NaN -------------------------------------------------------------------------------------

@pytest.mark.parametrize('name, expected', [
    ('both', r'a float in \[-10\.0, 10\.0\]'),
    ('low_only', r'a float in \[0\.0, inf\]'),
    ('high_only', r'a float in \[-inf, 5\.0\]'),
])
def test_bounded_float_refuses_nan(name, expected):
    comp = set_as_top(Assembly()).add('b', Bounded())
    with pytest.raises(ValidationError, match=rf'^b\.{name}: expected {expected}, got nan '
                                              rf'\(float\)$'):
        setattr(comp, name, float('nan'))
    assert getattr(comp, name) == 0.0
    setattr(comp, name, 1.0)                   # the fast path inside the bounds
    assert getattr(comp, name) == 1.0


def test_unbounded_float_and_array_accept_nan():
    comp = Bounded(free=float('nan'), arr_free=np.array([0.0, np.nan, 1.0]))
    assert np.isnan(comp.free) and np.isnan(comp.arr_free[1])


@pytest.mark.parametrize('name, value, message', [
    ('arr_low', [1.0, np.nan, 2.0],
     r"^arr_low: expected an array with elements in \[0\.0, None\], got \[1\.0, nan, 2\.0\] "
     r"\(list\): element \[1\] is nan$"),
    ('arr_high', [[0.0, 0.0], [0.0, np.nan]],
     r"^arr_high: expected an array with elements in \[None, 1\.0\], got .*: element \[1, 1\] "
     r"is nan$"),
    ('arr_low', [1.0, -2.0, 3.0], r": element \[1\] is -2\.0$"),
])
def test_bounded_array_names_the_element_it_refuses(name, value, message):
    comp = Bounded()
    with pytest.raises(ValidationError, match=message):
        setattr(comp, name, value)


# -- connected inputs ------------------------------------------------------------------------

def test_setting_a_connected_input_is_refused_naming_its_source(top):
    message = (r"^d2\.x: cannot set a connected input \(to 5\.0 \(float\)\); it is set from "
               r"'d1\.z' at every run \(disconnect it first\)$")
    with pytest.raises(ModelError, match=message):
        top.d2.x = 5.0
    with pytest.raises(ModelError, match=message):
        top.set('d2.x', 5.0)
    with pytest.raises(ModelError, match=r"^w\.vec: cannot set a connected input .* set from "
                                         r"'v\.out'"):
        top.set('w.vec[1]', 3.0)
    top.run()
    assert top.d2.x == 3.0 and list(top.w.vec) == [1.0, 1.0]   # the transfers still set them


def test_disconnect_frees_the_input(top):
    top.disconnect('d1.z', 'd2.x')
    top.d2.x = 5.0
    top.disconnect('v')                          # a whole component
    top.set('w.vec[1]', 3.0)
    top.run()
    assert top.d2.x == 5.0 and list(top.w.vec) == [0.0, 3.0]


def test_removing_the_component_frees_its_inputs(top):
    d2 = top.remove('d2')
    d2.x = 5.0
    assert d2.x == 5.0


def test_a_copied_model_keeps_its_guards(top):
    copy = pickle.loads(pickle.dumps(top))
    with pytest.raises(ModelError, match=r"cannot set a connected input"):
        copy.d2.x = 5.0
    copy.run()
    assert copy.d2.x == 3.0


def test_disconnect_of_a_pair_that_is_not_connected_is_silent(top):
    top.disconnect('d1.z', 'd2.y')
    top.disconnect('d2.z')
    assert ('d1.z', 'd2.x') in top.list_connections()
    with pytest.raises(ConnectError, match=r"cannot disconnect 'd1\.z' from 'd2\.q': 'd2' has "
                                           r"no variable 'q'"):
        top.disconnect('d1.z', 'd2.q')
    with pytest.raises(ConnectError, match=r"^Pair: cannot disconnect 'd22': 'Pair' has no "
                                           r"component or variable 'd22'; did you mean 'd2'\?$"):
        top.disconnect('d22')


# -- get/set paths ---------------------------------------------------------------------------

def test_get_and_set_suggest_the_closest_names(top):
    with pytest.raises(ModelError, match=r"cannot set 'd1\.q3': 'd1' has no variable or child "
                                         r"'q3' \(names: x, y, z\)$"):
        top.set('d1.q3', 1.0)
    with pytest.raises(ModelError, match=r"cannot set 'd1\.xx': 'd1' has no variable or child "
                                         r"'xx'; did you mean 'x'\?$"):
        top.set('d1.xx', 1.0)
    with pytest.raises(ModelError, match=r"cannot get 'd1\.zz': 'd1' has no variable or child "
                                         r"'zz'; did you mean 'z'\?$"):
        top.get('d1.zz')
    with pytest.raises(ModelError, match=r"cannot resolve 'dd1\.x': 'dd1' does not exist; did "
                                         r"you mean 'd1'\?$"):
        top.set('dd1.x', 1.0)
