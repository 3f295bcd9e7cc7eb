"""Connections inside assemblies: the connect-time checks and their messages, fan-out, unit
conversion, disconnect/remove, when values move, link styles, cycles, workflow order, several
drivers, and passthroughs of nested assemblies."""

from __future__ import annotations

import numpy as np
import pytest

from openmdao_like import (Array, Assembly, Component, ConfigError, ConnectError, Dict, Enum,
                           Float, Int, List, ModelError, SequentialWorkflow, Str,
                           ValidationError, set_as_top)
from openmdao_like.drivers import RunOnce


class Src(Component):
    """Outputs of every kind the checks look at."""

    temp = Float(100.0, iotype='out', units='degC', low=-273.15, high=1000.0)
    length = Float(2.0, iotype='out', units='m')
    count = Int(1, iotype='out')
    label = Str('a', iotype='out')
    mode = Enum('a', values=('a', 'b'), iotype='out')
    other_mode = Enum('c', values=('c', 'd'), iotype='out')
    small = Float(5.0, iotype='out', low=0.0, high=10.0)
    vec3 = Array(np.array([1.0, 2.0, 3.0]), shape=(3,), iotype='out')
    celsius = Array(np.array([0.0, 100.0]), iotype='out', units='degC')
    seq = List(iotype='out')
    table = Dict(iotype='out')
    inp = Float(iotype='in')

    def execute(self) -> None:
        pass


class Dst(Component):
    """Inputs of every kind the checks look at."""

    temp_f = Float(iotype='in', units='degF')
    length_cm = Float(iotype='in', units='cm')
    seconds = Float(iotype='in', units='s')
    plain = Float(iotype='in')
    count = Int(iotype='in')
    label = Str(iotype='in')
    mode = Enum('b', values=('b', 'x'), iotype='in')
    big = Float(50.0, iotype='in', low=20.0, high=100.0)
    mid = Float(6.0, iotype='in', low=5.0, high=100.0)
    vec4 = Array(np.zeros(4), shape=(4,), iotype='in')
    vec3 = Array(np.zeros(3), shape=(3,), iotype='in')
    fahrenheit = Array(iotype='in', units='degF')
    seq = List(iotype='in')
    table = Dict(iotype='in')
    out = Float(iotype='out')

    def execute(self) -> None:
        pass


@pytest.fixture
def top():
    top = set_as_top(Assembly())
    top.add('s', Src())
    top.add('d', Dst())
    top.add('d2', Dst())
    top.driver.workflow.add(['s', 'd', 'd2'])
    return top


def connect_error(top, src, dest, **kw) -> str:
    """Connect and return the ConnectError message; check it names both ends."""
    with pytest.raises(ConnectError) as info:
        top.connect(src, dest, **kw)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert f'cannot connect {src!r} to {dest!r}' in msg
    return msg


# -- the connect-time checks ---------------------------------------------------------------------
def test_unknown_component(top):
    assert "has no component 'q'" in connect_error(top, 'q.temp', 'd.temp_f')
    assert "has no component 'q'" in connect_error(top, 's.temp', 'q.temp_f')


def test_unknown_variable(top):
    assert "'s' has no variable 'nope'" in connect_error(top, 's.nope', 'd.temp_f')
    assert "'d' has no variable 'nope'" in connect_error(top, 's.temp', 'd.nope')


def test_destination_must_be_an_input(top):
    msg = connect_error(top, 's.temp', 'd.out')
    assert "destination 'd.out' is an output; expected an input" in msg


def test_source_must_be_an_output(top):
    msg = connect_error(top, 's.inp', 'd.plain')
    assert "source 's.inp' is an input; expected an output" in msg


def test_same_component(top):
    msg = connect_error(top, 's.length', 's.inp')
    assert "both ends belong to the same component 's'" in msg


def test_destination_already_connected_names_its_source(top):
    top.connect('s.length', 'd.plain')
    msg = connect_error(top, 's.small', 'd.plain')
    assert "'d.plain' is already connected to 's.length'" in msg
    assert top.get_connection('d.plain').src == 's.length'


def test_type_mismatch(top):
    msg = connect_error(top, 's.label', 'd.plain')
    assert "type mismatch: 'd.plain' expects a float" in msg and 'Str' in msg
    msg = connect_error(top, 's.temp', 'd.count')
    assert "'d.count' expects an int" in msg and 'Float' in msg
    assert 'type mismatch' in connect_error(top, 's.vec3', 'd.plain')
    assert 'type mismatch' in connect_error(top, 's.length', 'd.vec3')


def test_int_output_may_feed_a_float_input(top):
    top.connect('s.count', 'd.plain')
    top.s.count = 7
    top.run()
    assert top.d.plain == 7.0 and type(top.d.plain) is float


def test_enum_values_disjoint(top):
    msg = connect_error(top, 's.other_mode', 'd.mode')
    assert "('c', 'd')" in msg and "('b', 'x')" in msg


def test_enum_values_overlapping_are_checked_at_transfer(top):
    top.connect('s.mode', 'd.mode')
    top.s.mode = 'b'
    top.run()
    assert top.d.mode == 'b'
    top.s.mode = 'a'
    with pytest.raises(ValidationError, match=r"^d\.mode: expected one of \('b', 'x'\), "
                                              r"got 'a' \(str\)"):
        top.run()


def test_range_disjoint(top):
    msg = connect_error(top, 's.small', 'd.big')
    assert 'range mismatch' in msg and '[0.0, 10.0]' in msg and '[20.0, 100.0]' in msg


def test_range_overlapping_is_checked_at_transfer(top):
    top.connect('s.small', 'd.mid')
    top.s.small = 3.0
    with pytest.raises(ValidationError, match=r'^d\.mid: expected a float in \[5\.0, 100\.0\], '
                                              r'got 3\.0'):
        top.run()
    top.s.small = 7.0
    top.run()
    assert top.d.mid == 7.0


def test_range_is_compared_after_unit_conversion():
    class Hot(Component):
        t = Float(150.0, iotype='out', units='degC', low=100.0, high=200.0)

        def execute(self) -> None:
            pass

    class ColdF(Component):
        t = Float(50.0, iotype='in', units='degF', low=0.0, high=100.0)

        def execute(self) -> None:
            pass

    top = set_as_top(Assembly())
    top.add('h', Hot())
    top.add('c', ColdF())
    msg = connect_error(top, 'h.t', 'c.t')       # 100..200 degC = 212..392 degF
    assert 'range mismatch' in msg and '[0.0, 100.0]' in msg
    assert 'source range [211.9' in msg or 'source range [212' in msg


def test_array_shape_mismatch(top):
    msg = connect_error(top, 's.vec3', 'd.vec4')
    assert "array shape mismatch: 'd.vec4' expects shape (4,), 's.vec3' has shape (3,)" in msg
    top.connect('s.vec3', 'd.vec3')


def test_incompatible_units(top):
    msg = connect_error(top, 's.length', 'd.seconds')
    assert 'incompatible units' in msg and "'m'" in msg and "'s'" in msg


@pytest.mark.parametrize('link', ['bogus', 'PUSH', ''])
def test_bad_link_style(top, link):
    msg = connect_error(top, 's.length', 'd.plain', link=link)
    assert f'got {link!r}' in msg and "'push', 'pull', 'rpush', 'rpull'" in msg


def test_nested_paths_need_a_passthrough(top):
    top.add('sub', Inner())
    msg = connect_error(top, 's.length', 'sub.p.x')
    assert 'nested' in msg and 'create_passthrough' in msg


def test_failed_connect_leaves_nothing_behind(top):
    connect_error(top, 's.length', 'd.seconds')
    assert top.list_connections() == [] and top.get_connection('d.seconds') is None


# -- fan-out -------------------------------------------------------------------------------------
def test_fan_out_to_a_list_of_destinations(top):
    top.connect('s.length', ['d.length_cm', 'd2.length_cm', 'd.plain'])
    top.run()
    assert top.d.length_cm == pytest.approx(200.0) and top.d2.length_cm == pytest.approx(200.0)
    assert top.d.plain == 2.0
    assert top.list_connections() == [('s.length', 'd.length_cm'), ('s.length', 'd2.length_cm'),
                                      ('s.length', 'd.plain')]


def test_fan_out_is_atomic(top):
    with pytest.raises(ConnectError, match=r"cannot connect 's\.length' to 'd2\.seconds'"):
        top.connect('s.length', ['d.length_cm', 'd2.seconds'])
    assert top.list_connections() == []
    with pytest.raises(ConnectError, match='destination listed twice'):
        top.connect('s.length', ['d.plain', 'd.plain'])
    assert top.list_connections() == []
    with pytest.raises(ConnectError, match='no destination given'):
        top.connect('s.length', [])


# -- unit conversion -----------------------------------------------------------------------------
def test_unit_conversion_scale_and_offset(top):
    top.connect('s.temp', 'd.temp_f')
    top.connect('s.length', 'd.length_cm')
    conn = top.get_connection('d.temp_f')
    assert conn.scale == pytest.approx(1.8) and conn.offset == pytest.approx(32.0)
    top.s.temp = 37.0
    top.run()
    assert top.d.temp_f == pytest.approx(98.6)
    assert top.d.length_cm == pytest.approx(200.0)
    top.s.temp = -40.0
    top.run()
    assert top.d.temp_f == pytest.approx(-40.0)


def test_unit_conversion_of_arrays(top):
    top.connect('s.celsius', 'd.fahrenheit')
    top.run()
    np.testing.assert_allclose(top.d.fahrenheit, [32.0, 212.0])
    np.testing.assert_array_equal(top.s.celsius, [0.0, 100.0])   # the source is untouched


def test_units_on_one_side_only_transfer_unchanged(top):
    top.connect('s.length', 'd.plain')
    assert top.get_connection('d.plain').scale == 1.0
    top.run()
    assert top.d.plain == 2.0


# -- disconnect, reconnect, remove ---------------------------------------------------------------
def test_disconnect_one_connection_and_reconnect(top):
    top.connect('s.length', ['d.plain', 'd2.plain'])
    top.disconnect('s.length', 'd.plain')
    assert top.list_connections() == [('s.length', 'd2.plain')]
    top.disconnect('s.length', 'd.plain')              # no longer connected: silent (classic)
    assert top.list_connections() == [('s.length', 'd2.plain')]
    with pytest.raises(ConnectError, match=r"cannot disconnect 's\.length' from 'd\.plian': "
                                           r"'d' has no variable 'plian'; did you mean 'plain'\?"):
        top.disconnect('s.length', 'd.plian')
    top.connect('s.small', 'd.plain')                   # the destination is free again
    top.run()
    assert top.d.plain == 5.0 and top.d2.plain == 2.0


def test_disconnect_every_connection_of_a_variable(top):
    top.connect('s.length', ['d.plain', 'd2.plain'])
    top.connect('s.small', 'd.mid')
    top.disconnect('s.length')
    assert top.list_connections() == [('s.small', 'd.mid')]
    top.disconnect('d.mid')                              # by its destination
    assert top.list_connections() == []
    top.disconnect('s.length')                           # nothing left to remove: silent
    with pytest.raises(ConnectError, match=r"cannot disconnect 's\.lenght': 's' has no variable "
                                           r"'lenght'; did you mean 'length'\?"):
        top.disconnect('s.lenght')


def test_disconnect_a_whole_component(top):
    top.connect('s.length', ['d.plain', 'd2.plain'])
    top.connect('s.small', 'd.mid')
    top.disconnect('d')
    assert top.list_connections() == [('s.length', 'd2.plain')]
    top.s.length = 9.0
    top.d.plain = 1.0
    top.run()
    assert top.d.plain == 1.0 and top.d2.plain == 9.0   # no stale transfer into d


def test_remove_drops_connections_and_workflow_entries(top):
    top.connect('s.length', ['d.plain', 'd2.plain'])
    top.remove('d')
    assert top.list_connections() == [('s.length', 'd2.plain')]
    assert list(top.driver.workflow) == ['s', 'd2']
    top.run()
    assert top.d2.plain == 2.0
    top.add('d', Dst())                                  # a new 'd' starts unconnected
    top.connect('s.length', 'd.plain')


def test_is_connected(top):
    top.connect('s.length', 'd.plain')
    assert top.is_connected('d.plain') and top.is_connected('s.length')
    assert not top.is_connected('d2.plain')


# -- when values move ----------------------------------------------------------------------------
class Recorder(Component):
    """Records the input it saw when it ran."""

    x = Float(iotype='in')
    y = Float(iotype='out')

    def __init__(self, log: list):
        super().__init__()
        self._log = log

    def execute(self) -> None:
        self._log.append((self.name, self.x))
        self.y = self.x + 1.0


def test_values_move_only_when_the_destination_runs():
    log: list = []
    top = set_as_top(Assembly())
    for name in ('a', 'b', 'c'):
        top.add(name, Recorder(log))
    top.a.y = 5.0
    top.connect('a.y', 'b.x')
    top.connect('b.y', 'c.x')
    assert top.b.x == 0.0                       # not at connect time
    top.check_config()
    assert top.b.x == 0.0                       # nor when the plan is compiled
    top.driver.workflow = SequentialWorkflow()
    top.driver.workflow.add(['b', 'a', 'c'])    # b runs before a has produced anything new
    top.a.x = 10.0
    top.run()
    assert log == [('b', 5.0), ('a', 10.0), ('c', 6.0)]
    assert top.b.x == 5.0 and top.c.x == 6.0 and top.b.y == 6.0


def test_a_component_run_by_hand_pulls_its_inputs():
    log: list = []
    top = set_as_top(Assembly())
    top.add('a', Recorder(log))
    top.add('b', Recorder(log))
    top.connect('a.y', 'b.x')
    top.driver.workflow.add(['a', 'b'])
    top.run()
    top.a.y = 42.0
    top.b.run()
    assert top.b.x == 42.0


def test_arrays_are_copied_between_components(top):
    top.connect('s.vec3', 'd.vec3')
    top.run()
    assert top.d.vec3 is not top.s.vec3
    top.s.vec3[0] = 99.0
    assert top.d.vec3[0] == 1.0
    top.d.vec3[1] = -1.0
    assert top.s.vec3[1] == 2.0


def test_lists_and_dicts_are_copied_deeply(top):
    top.connect('s.seq', 'd.seq')
    top.connect('s.table', 'd.table')
    top.s.seq = [[1], 2]
    top.s.table = {'k': [1]}
    top.run()
    top.s.seq[0].append(5)
    top.s.table['k'].append(3)
    assert top.d.seq == [[1], 2] and top.d.table == {'k': [1]}


# -- link styles ---------------------------------------------------------------------------------
@pytest.mark.parametrize('link', ['push', 'pull'])
def test_local_link_styles_are_stored_and_work(top, link):
    top.connect('s.length', 'd.plain', link=link)
    assert top.get_connection('d.plain').link == link
    top.run()
    assert top.d.plain == 2.0


def test_default_link_is_push(top):
    top.connect('s.length', 'd.plain')
    assert top.get_connection('d.plain').link == 'push'


@pytest.mark.parametrize('link', ['rpush', 'rpull'])
def test_remote_links_between_local_components_fail_check_config(top, link):
    top.connect('s.length', 'd.plain', link=link)        # accepted by connect
    assert top.get_connection('d.plain').link == link
    with pytest.raises(ConfigError) as info:
        top.check_config()
    msg = str(info.value)
    assert "'s.length' -> 'd.plain'" in msg and f'link={link!r}' in msg
    assert 'both ends are local' in msg
    with pytest.raises(ConfigError, match='both ends are local'):
        top.run()


# -- cycles and order ----------------------------------------------------------------------------
def test_cycles_are_accepted_by_connect_and_reported_by_check_config():
    top = set_as_top(Assembly())
    for name in ('a', 'b', 'c', 'free'):
        top.add(name, Recorder([]))
    top.connect('a.y', 'b.x')
    top.connect('b.y', 'c.x')
    top.connect('c.y', 'a.x')
    top.driver.workflow.add(['free', 'a', 'b', 'c'])
    with pytest.raises(ConfigError) as info:
        top.check_config()
    msg = str(info.value)
    assert 'data cycle' in msg and 'FixedPointIterator' in msg
    cycle_text = msg.split('data cycle: ')[1].split('.')[0]
    assert set(cycle_text.replace('->', ' ').split()) == {'a', 'b', 'c'}
    with pytest.raises(ConfigError, match='data cycle'):
        top.run()
    top.disconnect('c.y', 'a.x')                          # breaking the cycle fixes it
    top.run()


def test_dataflow_order_follows_connections_not_add_order():
    log: list = []
    top = set_as_top(Assembly())
    for name in ('c', 'b', 'a'):
        top.add(name, Recorder(log))
    top.connect('a.y', 'b.x')
    top.connect('b.y', 'c.x')
    top.driver.workflow.add(['c', 'b', 'a'])
    top.run()
    assert [name for name, _ in log] == ['a', 'b', 'c']
    assert list(top.driver.workflow) == ['a', 'b', 'c']
    assert top.c.x == 2.0


def test_dataflow_ties_keep_the_order_added():
    log: list = []
    top = set_as_top(Assembly())
    for name in ('z', 'm', 'a', 'k'):
        top.add(name, Recorder(log))
    top.connect('a.y', 'k.x')                            # only k depends on a
    top.driver.workflow.add(['z', 'k', 'm', 'a'])
    for _ in range(3):
        log.clear()
        top.run()
        assert [name for name, _ in log] == ['z', 'm', 'a', 'k']


def test_dataflow_runs_each_name_once(top):
    top.driver.workflow.add(['s', 'd', 's'])
    assert len(top.driver.workflow) == 3
    top.run()
    assert top.s.exec_count == 1


def test_sequential_workflow_runs_repeats():
    log: list = []
    top = set_as_top(Assembly())
    top.add('p', Recorder(log))
    top.add('q', Recorder(log))
    top.driver.workflow = SequentialWorkflow()
    top.driver.workflow.add(['p', 'q', 'p', 'p'])
    assert len(top.driver.workflow) == 4
    assert list(top.driver.workflow) == ['p', 'q', 'p', 'p']
    top.run()
    assert top.p.exec_count == 3 and top.q.exec_count == 1
    assert [n for n, _ in log] == ['p', 'q', 'p', 'p']
    top.driver.workflow.remove('p')
    assert list(top.driver.workflow) == ['q']


def test_workflow_with_an_unknown_member_fails_check_config(top):
    top.driver.workflow.add('ghost')
    with pytest.raises(ConfigError, match=r"'ghost' is not a component"):
        top.check_config()


def test_workflow_remove_of_unknown_name(top):
    with pytest.raises(ModelError, match=r"'nope' is not in the workflow"):
        top.driver.workflow.remove('nope')


class LoggingDriver(RunOnce):
    """RunOnce that notes when it starts."""

    def __init__(self, log: list):
        super().__init__()
        self._log = log

    def execute(self) -> None:
        self._log.append(('driver', self.name))
        super().execute()


def test_driver_workflow_runs_drivers_in_turn():
    log: list = []
    top = set_as_top(Assembly())
    top.add('p', Recorder(log))
    top.add('q', Recorder(log))
    top.add('first', LoggingDriver(log))
    top.add('second', LoggingDriver(log))
    top.first.workflow.add('p')
    top.second.workflow.add(['q', 'p'])
    top.connect('p.y', 'q.x')
    top.driver_workflow = ['second', 'first']
    top.run()
    assert log == [('driver', 'second'), ('p', 0.0), ('q', 1.0), ('driver', 'first'),
                   ('p', 0.0)]
    assert top.p.exec_count == 2 and top.q.exec_count == 1


def test_driver_workflow_naming_a_non_driver_fails(top):
    top.driver_workflow = ['s']
    with pytest.raises(ConfigError, match=r"driver_workflow names 's', which is not a driver"):
        top.run()


# -- nested assemblies and passthroughs ----------------------------------------------------------
class Doubler(Component):
    x = Float(1.0, iotype='in', low=-10.0, high=10.0, units='m', desc='the x')
    y = Float(iotype='out', units='m', desc='twice x')

    def execute(self) -> None:
        self.y = 2.0 * self.x


class Inner(Assembly):
    def configure(self) -> None:
        self.add('p', Doubler())
        self.driver.workflow.add('p')
        self.create_passthrough('p.x')
        self.create_passthrough('p.y', alias='yy')


class Meter(Component):
    cm = Float(300.0, iotype='out', units='cm')
    back = Float(iotype='in', units='mm')

    def execute(self) -> None:
        pass


def test_passthrough_copies_metadata():
    inner = Inner()
    md = inner.get_metadata('x')
    assert (md['iotype'], md['units'], md['low'], md['high'], md['desc']) == \
        ('in', 'm', -10.0, 10.0, 'the x')
    assert inner.get_metadata('yy', 'iotype') == 'out'
    assert inner.get_metadata('yy', 'units') == 'm'
    assert inner.get_metadata('yy', 'desc') == 'twice x'
    assert inner.list_inputs() == ['x'] and inner.list_outputs() == ['yy']
    assert inner.list_connections() == [('x', 'p.x'), ('p.y', 'yy')]


def test_passthrough_bounds_are_enforced_with_the_path():
    top = set_as_top(Assembly())
    top.add('inner', Inner())
    with pytest.raises(ValidationError, match=r'^inner\.x: expected a float in \[-10\.0, 10\.0\]'):
        top.inner.x = 100.0


def test_values_flow_through_input_and_output_passthroughs():
    top = set_as_top(Assembly())
    top.add('m', Meter())
    top.add('inner', Inner())
    top.add('m2', Meter())
    top.connect('m.cm', 'inner.x')                        # cm -> m
    top.connect('inner.yy', 'm2.back')                    # m -> mm
    top.driver.workflow.add(['m2', 'inner', 'm'])
    top.run()
    assert top.inner.x == pytest.approx(3.0) and top.inner.p.x == pytest.approx(3.0)
    assert top.inner.p.y == pytest.approx(6.0) and top.inner.yy == pytest.approx(6.0)
    assert top.m2.back == pytest.approx(6000.0)
    assert list(top.driver.workflow) == ['m', 'inner', 'm2']


def test_passthrough_errors():
    inner = Inner()
    with pytest.raises(ModelError, match=r"name 'x' is already in use"):
        inner.create_passthrough('p.x')
    with pytest.raises(ModelError, match=r"no variable named 'q'"):
        inner.create_passthrough('p.q')
    with pytest.raises(ModelError, match=r'expected "component.variable" of a child'):
        inner.create_passthrough('ghost.x')


def test_passthrough_of_a_connected_input_fails_clearly():
    class Fed(Assembly):
        def configure(self) -> None:
            self.add('m', Meter())
            self.add('p', Doubler())
            self.connect('m.cm', 'p.x')

    fed = Fed()
    with pytest.raises(ConnectError) as info:
        fed.create_passthrough('p.x', alias='px')
    msg = str(info.value)
    assert "'p.x' is already connected to 'm.cm'" in msg and "'px'" in msg
    assert 'px' not in fed.list_inputs()                  # nothing left half-made
    assert fed.list_connections() == [('m.cm', 'p.x')]


def test_assembly_boundary_direction_checks():
    inner = Inner()
    with pytest.raises(ConnectError, match=r"the assembly's own 'yy' is an output"):
        inner.connect('yy', 'p.x')
    with pytest.raises(ConnectError, match=r"the assembly's own 'x' is an input"):
        inner.connect('p.y', 'x')
