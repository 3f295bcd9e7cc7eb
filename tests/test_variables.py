"""Variable types through the public API: defaults, coercion, bounds, metadata, definition-time
checks (naming 'ClassName.var'), value errors (naming the full dotted path, the expectation and
the value given) and the units helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openmdao_like import (Array, Assembly, Bool, Component, Dict, Enum, File, FileRef, Float,
                           Instance, Int, List, Str, ValidationError, set_as_top)
from openmdao_like.variables import units


class Thing:
    """A plain class for Instance variables."""


class AllTypes(Component):
    """One variable of each type, with the metadata the tests look at."""

    x = Float(0.0, iotype='in', low=-50.0, high=50.0, units='m', desc='x position')
    f_low = Float(iotype='in', low=2.0, high=9.0)
    f_high = Float(iotype='in', high=-3.0)
    f_none = Float(iotype='in')
    open_range = Float(1.0, iotype='in', low=0.0, high=2.0, exclude_low=True, exclude_high=True)
    n = Int(3, iotype='in', low=0, high=10)
    n_free = Int(iotype='in')
    flag = Bool(iotype='in')
    label = Str('hello', iotype='in')
    mode = Enum('fast', values=('fast', 'slow', 3), iotype='in', desc='mode of operation')
    vec = Array(np.array([1.0, 2.0, 3.0]), iotype='in', shape=(None,), units='s')
    mat = Array(dtype=float, shape=(2, 3), iotype='in')
    ivec = Array(np.array([1, 2]), dtype=np.int64, iotype='in')
    floats = List(Float, iotype='in')
    table = Dict(iotype='in')
    thing = Instance(Thing, iotype='in')
    infile = File(iotype='in', binary=True, legal_types=('csv',))
    result = Float(iotype='out', units='m**2')

    def execute(self) -> None:
        self.result = self.x ** 2


@pytest.fixture
def comp() -> AllTypes:
    return AllTypes()


def make_class(var, name: str = 'Bad'):
    """Create a component class holding ``var`` as ``v`` (definition checks run here)."""
    return type(name, (Component,), {'v': var, 'execute': lambda self: None})


# -- defaults ------------------------------------------------------------------------------------
def test_float_defaults_low_then_high_then_zero(comp):
    assert comp.x == 0.0
    assert comp.f_low == 2.0            # no default: low
    assert comp.f_high == -3.0          # no low: high
    assert comp.f_none == 0.0           # neither: 0.0
    assert all(type(v) is float for v in (comp.f_low, comp.f_high, comp.f_none))


def test_defaults_of_other_types(comp):
    assert comp.n == 3 and comp.n_free == 0 and type(comp.n_free) is int
    assert comp.flag is False
    assert comp.label == 'hello'
    assert comp.mode == 'fast'
    np.testing.assert_array_equal(comp.vec, [1.0, 2.0, 3.0])
    assert comp.mat.shape == (2, 3) and comp.mat.dtype == np.float64 and not comp.mat.any()
    assert comp.floats == [] and comp.table == {}
    assert comp.thing is None and comp.infile is None


def test_enum_default_is_first_value():
    cls = make_class(Enum(values=('b', 'a'), iotype='in'))
    assert cls().v == 'b'


def test_array_default_is_not_shared_between_instances():
    a, b = AllTypes(), AllTypes()
    a.vec[0] = 99.0
    assert b.vec[0] == 1.0
    assert AllTypes().vec[0] == 1.0


# -- coercion ------------------------------------------------------------------------------------
@pytest.mark.parametrize('value', [3, np.int64(3), np.float32(3.0), np.float64(3.0)])
def test_float_coerces_ints_and_numpy_scalars(comp, value):
    comp.x = value
    assert comp.x == 3.0 and type(comp.x) is float


def test_int_coerces_numpy_ints_and_rejects_floats_and_bools(comp):
    comp.n = np.int32(7)
    assert comp.n == 7 and type(comp.n) is int
    for bad in (1.5, True, '2'):
        with pytest.raises(ValidationError, match=r'n: expected an int'):
            comp.n = bad


def test_bool_accepts_numpy_bool_and_rejects_int(comp):
    comp.flag = np.bool_(True)
    assert comp.flag is True
    with pytest.raises(ValidationError, match=r'flag: expected a bool, got 1 \(int\)'):
        comp.flag = 1


def test_array_coerces_lists_and_safe_dtypes(comp):
    comp.vec = [4, 5]
    assert isinstance(comp.vec, np.ndarray)
    np.testing.assert_array_equal(comp.vec, [4, 5])
    comp.mat = np.ones((2, 3), dtype=np.int32)           # int -> float is safe
    assert comp.mat.dtype == np.float64
    with pytest.raises(ValidationError, match=r'ivec: expected an array of dtype int64'):
        comp.ivec = np.array([1.5, 2.5])                 # float -> int is not
    with pytest.raises(ValidationError, match=r'mat: expected an array of dtype float64'):
        comp.mat = np.zeros((2, 3), dtype=complex)
    for bad in ('abc', None, {'a': 1}, [object()]):
        with pytest.raises(ValidationError, match=r'vec: expected an array'):
            comp.vec = bad


# -- bounds --------------------------------------------------------------------------------------
def test_float_bounds_are_inclusive_by_default(comp):
    comp.x = -50.0
    comp.x = 50.0
    with pytest.raises(ValidationError) as info:
        comp.x = 50.5
    msg = str(info.value)
    assert msg.startswith('x: ') and '[-50.0, 50.0]' in msg and '50.5' in msg
    assert comp.x == 50.0                                  # the bad value was not stored


@pytest.mark.parametrize('value', [0.0, 2.0, -0.1, 2.5])
def test_exclude_low_and_high(comp, value):
    with pytest.raises(ValidationError, match=r'open_range: expected a float in \(0\.0, 2\.0\)'):
        comp.open_range = value


def test_exclusive_bounds_accept_values_just_inside(comp):
    comp.open_range = 1e-12
    comp.open_range = 2.0 - 1e-12
    assert 0.0 < comp.open_range < 2.0


def test_int_bounds(comp):
    comp.n = 10
    with pytest.raises(ValidationError, match=r'n: expected an int in \[0, 10\], got 11 \(int\)'):
        comp.n = 11
    with pytest.raises(ValidationError, match=r'got -1 \(int\)'):
        comp.n = -1


def test_int_exclusive_bounds():
    cls = make_class(Int(1, iotype='in', low=0, high=3, exclude_low=True, exclude_high=True))
    obj = cls()
    obj.v = 2
    for bad in (0, 3):
        with pytest.raises(ValidationError, match=r'v: expected an int in \(0, 3\)'):
            obj.v = bad


def test_array_element_bounds():
    cls = make_class(Array(np.zeros(2), iotype='in', low=-1.0, high=1.0))
    obj = cls()
    obj.v = [0.5, -1.0]
    with pytest.raises(ValidationError, match=r'v: expected an array with elements in '
                                              r'\[-1\.0, 1\.0\]'):
        obj.v = [0.5, 1.5]


# -- shapes, enum values, containers, instances, files ------------------------------------------
def test_array_shape_with_none_dimension(comp):
    comp.vec = np.arange(7.0)
    with pytest.raises(ValidationError, match=r'vec: expected an array with shape \(None,\)'):
        comp.vec = np.zeros((2, 2))
    comp.mat = np.ones((2, 3))
    with pytest.raises(ValidationError, match=r'with shape \(2, 3\)'):
        comp.mat = np.ones((3, 2))


def test_array_shape_none_in_second_axis():
    cls = make_class(Array(np.zeros((3, 0)), shape=(3, None), iotype='in'))
    obj = cls()
    obj.v = np.zeros((3, 5))
    with pytest.raises(ValidationError, match=r'shape \(3, None\)'):
        obj.v = np.zeros((2, 5))


@pytest.mark.parametrize('shape, start', [((None, 3), (0, 3)), ((2, None), (2, 0)),
                                          ((None,), (0,)), ((2, 2), (2, 2))])
def test_array_without_default_starts_as_zeros_of_its_shape(shape, start):
    obj = make_class(Array(shape=shape, iotype='in'))()
    assert obj.v.shape == start and not obj.v.any()
    obj.v = np.ones(tuple(n or 4 for n in shape))


def test_enum_values(comp):
    comp.mode = 'slow'
    comp.mode = 3
    with pytest.raises(ValidationError) as info:
        comp.mode = 'medium'
    assert "mode: expected one of ('fast', 'slow', 3), got 'medium' (str)" == str(info.value)


def test_str_list_dict_instance_values(comp):
    comp.label = 'other'
    with pytest.raises(ValidationError, match=r'label: expected a str, got 3 \(int\)'):
        comp.label = 3
    comp.floats = [1, 2.5]
    assert comp.floats == [1.0, 2.5]
    with pytest.raises(ValidationError, match=r"floats.*got 'a' \(str\)"):
        comp.floats = [1.0, 'a']
    comp.table = {'a': 1}
    with pytest.raises(ValidationError, match=r'table: expected a dict, got 3 \(int\)'):
        comp.table = 3
    comp.thing = Thing()
    comp.thing = None
    with pytest.raises(ValidationError, match=r'thing: expected an instance of Thing or None, '
                                              r'got 3 \(int\)'):
        comp.thing = 3


def test_file_variable_values(comp):
    ref = FileRef('data.csv', comp, binary=True, content_type='csv')
    comp.infile = ref
    assert comp.infile is ref
    comp.infile = None
    with pytest.raises(ValidationError, match=r"infile: expected a FileRef with content type in "
                                              r"\('csv',\), got 'data.csv' \(str\)"):
        comp.infile = 'data.csv'
    with pytest.raises(ValidationError, match=r"infile: .*content type in \('csv',\)"):
        comp.infile = FileRef('model.stl', comp, binary=True, content_type='stl')


def test_fileref_requires_a_path():
    with pytest.raises(ValueError, match='FileRef: path must be a non-empty str'):
        FileRef('')


# -- metadata ------------------------------------------------------------------------------------
def test_metadata_dict_and_single_key(comp):
    md = comp.get_metadata('x')
    assert md['iotype'] == 'in' and md['units'] == 'm' and md['low'] == -50.0
    assert md['high'] == 50.0 and md['desc'] == 'x position'
    assert comp.get_metadata('x', 'units') == 'm'
    assert comp.get_metadata('result', 'iotype') == 'out'
    assert comp.get_metadata('result', 'units') == 'm**2'
    assert comp.get_metadata('f_none', 'units') is None
    assert comp.get_metadata('mode', 'values') == ('fast', 'slow', 3)
    assert comp.get_metadata('mode', 'desc') == 'mode of operation'
    assert comp.get_metadata('mat', 'shape') == (2, 3)
    assert comp.get_metadata('mat', 'dtype') == np.float64
    assert comp.get_metadata('vec', 'units') == 's'
    assert comp.get_metadata('open_range', 'exclude_low') is True
    assert comp.get_metadata('infile', 'legal_types') == ('csv',)
    assert comp.get_metadata('infile', 'binary') is True
    assert comp.get_metadata('thing', 'iotype') == 'in'


def test_metadata_of_unknown_variable_names_what_exists(comp):
    with pytest.raises(Exception, match=r"no variable named 'nope'.*x"):
        comp.get_metadata('nope')


def test_metadata_through_a_dotted_path():
    top = set_as_top(Assembly())
    top.add('c', AllTypes())
    assert top.get_metadata('c.x', 'units') == 'm'
    assert top.get_metadata('c.x')['high'] == 50.0


def test_extra_metadata_is_kept():
    cls = make_class(Float(1.0, iotype='in', fd_step=0.01))
    assert cls().get_metadata('v', 'fd_step') == 0.01


# -- class-definition errors ---------------------------------------------------------------------
@pytest.mark.parametrize('var, expected', [
    (lambda: Float(1.0, iotype='in', units='furlongs_per_blargh'), 'invalid units'),
    (lambda: Array(iotype='in', units='blargh'), 'invalid units'),
    (lambda: Float(iotype='in', low=5.0, high=1.0), r'low \(5\.0\) is greater than high \(1\.0\)'),
    (lambda: Int(iotype='in', low=5, high=1), r'low \(5\) is greater than high \(1\)'),
    (lambda: Array(iotype='in', low=1.0, high=0.0), 'greater than high'),
    (lambda: Float(100.0, iotype='in', low=0.0, high=10.0),
     r'default value 100\.0 \(float\) is not a float in \[0\.0, 10\.0\]'),
    (lambda: Float(0.0, iotype='in', low=0.0, exclude_low=True), r'default value 0\.0'),
    (lambda: Float('abc', iotype='in'), r"default value 'abc' \(str\) is not a float"),
    (lambda: Int(1.5, iotype='in'), r'default value 1\.5 \(float\) is not an int'),
    (lambda: Str(3, iotype='in'), r'default value 3 \(int\) is not a str'),
    (lambda: Bool(3, iotype='in'), r'default value 3 \(int\) is not a bool'),
    (lambda: Enum('z', values=('a', 'b'), iotype='in'), r"default value 'z' .* one of"),
    (lambda: Enum(iotype='in'), 'non-empty sequence of values'),
    (lambda: Array(np.zeros(3), shape=(2,), iotype='in'), r'with shape \(2,\)'),
    (lambda: Float(1.0, iotype='inout'), r"iotype must be 'in' or 'out', got 'inout'"),
    (lambda: List(iotype='both'), r"iotype must be 'in' or 'out', got 'both'"),
    (lambda: Instance(Thing, iotype='x'), r"iotype must be 'in' or 'out'"),
    (lambda: File(iotype='out', local_path='/etc/passwd'), 'local_path must be a relative path'),
    (lambda: File(iotype='out', local_path='../outside.txt'), 'local_path must be a relative'),
])
def test_definition_errors_name_class_and_variable(var, expected):
    with pytest.raises(ValidationError, match=r'^Bad\.v: .*' + expected):
        make_class(var())


def test_definition_errors_are_value_errors():
    with pytest.raises(ValueError, match=r'^Broken\.v: invalid units'):
        make_class(Float(1.0, iotype='in', units='not_a_unit'), name='Broken')


@pytest.mark.parametrize('var, expected', [
    (lambda: Float(1.0, iotype='in', low='a'), r"low must be a real number, got 'a' \(str\)"),
    (lambda: Float(1.0, iotype='in', high=float('nan')), 'high must be a real number'),
    (lambda: Array(iotype='in', shape=(-1,)), 'shape must be a tuple of non-negative ints'),
])
def test_malformed_declarations_raise_at_class_creation(var, expected):
    with pytest.raises(ValidationError, match=r'^Bad\.v: ' + expected):
        make_class(var())


def test_variable_added_to_an_instance_is_checked_with_its_path():
    top = set_as_top(Assembly())
    comp = top.add('comp', AllTypes())
    with pytest.raises(ValidationError, match=r'^comp\.extra: default value -2\.0'):
        comp.add('extra', Float(-2.0, iotype='in', low=0.0))
    comp.add('extra', Float(2.0, iotype='in', low=0.0))
    with pytest.raises(ValidationError, match=r'^comp\.extra: expected a float in \[0\.0, inf\], '
                                              r'got -1 \(int\)'):
        comp.extra = -1


# -- value errors carry the full path ------------------------------------------------------------
class Sub(Assembly):
    def configure(self) -> None:
        self.add('comp', AllTypes())


def test_bad_value_message_has_dotted_path_expectation_and_value():
    top = set_as_top(Assembly())
    top.add('sub', Sub())
    with pytest.raises(ValidationError) as info:
        top.sub.comp.x = 100
    assert isinstance(info.value, ValueError)
    assert str(info.value) == 'sub.comp.x: expected a float in [-50.0, 50.0], got 100 (int)'
    with pytest.raises(ValueError, match=r"^sub\.comp\.x: expected a float in \[-50\.0, 50\.0\], "
                                         r"got 'a' \(str\)$"):
        top.set('sub.comp.x', 'a')
    with pytest.raises(ValidationError, match=r"^sub\.comp\.mode: expected one of .*got 'x'"):
        top.sub.comp.mode = 'x'
    with pytest.raises(ValidationError, match=r'^sub\.comp\.mat: expected an array'):
        top.set('sub.comp.mat', np.zeros(2))


def test_error_messages_truncate_huge_values(comp):
    with pytest.raises(ValidationError) as info:
        comp.label = list(range(1000))
    assert len(str(info.value)) < 200 and '...' in str(info.value)


# -- units helpers -------------------------------------------------------------------------------
def test_units_conversion_with_offset():
    scale, offset = units.conversion('degC', 'degF')
    assert scale == pytest.approx(1.8) and offset == pytest.approx(32.0)
    assert units.convert(100.0, 'degC', 'degF') == pytest.approx(212.0)
    assert units.convert(-40.0, 'degC', 'degF') == pytest.approx(-40.0)
    assert units.convert(212.0, 'degF', 'degC') == pytest.approx(100.0)
    np.testing.assert_allclose(units.convert(np.array([0.0, 100.0]), 'degC', 'degF'),
                               [32.0, 212.0])


def test_units_conversion_scale_only():
    assert units.conversion('m', 'cm') == (pytest.approx(100.0), pytest.approx(0.0))
    assert units.convert(2.5, 'm', 'cm') == pytest.approx(250.0)
    assert units.convert(1.0, 'km/h', 'm/s') == pytest.approx(1 / 3.6)
    assert units.conversion('m', 'm') == (1.0, 0.0)


def test_incompatible_units_raise_naming_both():
    with pytest.raises(ValueError) as info:
        units.conversion('m', 's')
    assert "'m'" in str(info.value) and "'s'" in str(info.value)
    assert 'different quantities' in str(info.value)


@pytest.mark.parametrize('bad', ['not_a_unit', '', 'm/', 3])
def test_parse_units_rejects_bad_units(bad):
    with pytest.raises(ValueError, match='unit'):
        units.parse_units(bad)


def test_float_output_unit_value_round_trip(comp):
    comp.x = 3.0
    comp.run()
    assert comp.result == 9.0 and comp.exec_count == 1
    assert not math.isnan(comp.result)


def test_variable_name_ending_in_underscore_is_rejected_at_class_creation():
    from openmdao_like.errors import ModelError
    with pytest.raises(ModelError, match=r'Bad\.x_: a variable name may not end with "_"'):
        class Bad(Component):
            x_ = Float(1.0, iotype='in')
