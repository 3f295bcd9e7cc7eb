"""Remote components inside ordinary assemblies: same results as local, connect checks on the
mirrored metadata, arrays, unit conversion, create() through the factory chain."""

from __future__ import annotations

import numpy as np
import pytest

import remote_models
from remote_models import optimize
from openmdao_like import Assembly, ConnectError, ValidationError, create, set_as_top
from openmdao_like.remote import RemoteComponent


def test_mixed_model_gives_the_local_results(factory_a):
    local = optimize(remote_models.Paraboloid)
    mixed = optimize(lambda: factory_a.create('remote_models.Paraboloid'))
    assert isinstance(mixed.p, RemoteComponent)
    assert mixed.p.x == pytest.approx(7.1666, abs=1e-3)
    assert mixed.p.y == pytest.approx(-7.8333, abs=1e-3)
    assert mixed.p.x == pytest.approx(local.p.x, abs=1e-6)
    assert mixed.p.f_xy == pytest.approx(local.p.f_xy, abs=1e-6)
    assert mixed.p.exec_count == local.p.exec_count


def test_chain_across_two_servers_matches_local(factory_a, factory_b):
    def build(remote: bool) -> Assembly:
        class Chain(Assembly):
            def configure(self):
                for i in range(4):
                    if remote:
                        comp = (factory_a if i % 2 else factory_b).create('remote_models.Scale',
                                                                            k=1.5)
                    else:
                        comp = remote_models.Scale(k=1.5)
                    self.add(f's{i}', comp)
                    if i:
                        self.connect(f's{i - 1}.y', f's{i}.x')
                    self.driver.workflow.add(f's{i}')
        return set_as_top(Chain())
    local, mixed = build(False), build(True)
    for value in (1.0, -2.0, 3.5):
        local.s0.x = mixed.s0.x = value
        local.run()
        mixed.run()
        assert mixed.s3.y == pytest.approx(local.s3.y)
    assert mixed.s3.y == pytest.approx(3.5 * 1.5 ** 4)


def test_proxy_mirrors_the_metadata(factory_a):
    p = factory_a.create('remote_models.Paraboloid')
    assert p.get_metadata('x') == remote_models.Paraboloid().get_metadata('x')
    assert p.get_metadata('f_xy', 'units') == 'm**2'
    assert p.list_inputs() == ['x', 'y'] and p.list_outputs() == ['f_xy']
    assert p.typname == 'remote_models.Paraboloid'
    assert p.address[0] == '127.0.0.2'


def test_connect_checks_the_remote_metadata(factory_a):
    class Model(Assembly):
        def configure(self):
            self.add('s', remote_models.Scale())
            self.add('p', factory_a.create('remote_models.Paraboloid'))
            self.add('q', remote_models.Paraboloid())
    top = set_as_top(Model())
    with pytest.raises(ConnectError, match=r"'q.f_xy' to 'p.x'.*incompatible units"):
        top.connect('q.f_xy', 'p.x')
    with pytest.raises(ConnectError, match=r"'p.x'.*is an input"):
        top.connect('p.x', 'q.y')
    with pytest.raises(ValidationError, match=r'p\.x: expected a float in \[-50.0, 50.0\], '
                                              r'got 100.0'):
        top.p.x = 100.0


def test_units_convert_on_the_way_to_a_remote_input(factory_a):
    from openmdao_like import Component, Float

    class Centimetres(Component):
        x = Float(0.0, iotype='in', units='cm')
        out = Float(iotype='out', units='cm')

        def execute(self):
            self.out = self.x

    class Model(Assembly):
        def configure(self):
            self.add('c', Centimetres())
            self.add('p', factory_a.create('remote_models.Paraboloid'))
            self.connect('c.out', 'p.x')
            self.driver.workflow.add(['c', 'p'])
    top = set_as_top(Model())
    top.c.x = 300.0
    top.run()
    assert top.p.x == pytest.approx(3.0)
    assert top.p.f_xy == pytest.approx(0.0 + 0.0 + 16.0 - 3.0)


def test_arrays_travel_both_ways(factory_a):
    a = factory_a.create('remote_models.ArrayScale', k=3.0)
    data = np.arange(100_000, dtype=float)
    a.a = data
    a.run()
    assert np.array_equal(a.b, data * 3.0)
    a.b[0] = -1.0  # writable: the buffer it views is its own
    assert a.b.flags.writeable
    data[1] = 42.0  # changed in place, as a local component's input would be: noticed and sent
    a.run()
    assert a.b[1] == 126.0


def test_only_changed_inputs_are_sent(factory_a):
    p = factory_a.create('remote_models.Paraboloid')
    sent = []
    call = p._conn.call

    def spy(name, *args, **kwargs):
        if name == 'run':
            sent.append(args[0])
        return call(name, *args, **kwargs)
    p._conn.call = spy
    p.x = 1.0
    p.run()
    p.run()
    assert sent[0] == ('d', ('x',), (1.0,)) and sent[1] is None
    assert p.exec_count == 2


def test_create_through_the_factory_chain(server_a, factory_a):
    comp = create('remote_models.Scale', server=(server_a.host, server_a.port), k=4.0)
    assert isinstance(comp, RemoteComponent)
    comp.x = 2.0
    comp.run()
    assert comp.y == 8.0
    comp2 = create('remote_models.Scale', server=factory_a)
    assert comp2.k == 2.0


def test_create_with_an_unknown_server_names_it():
    with pytest.raises(NameError, match=r"127.0.0.9:1.*connect_to_server"):
        create('remote_models.Scale', server=('127.0.0.9', 1))


def test_release_ends_the_object(server_a, factory_a):
    comp = factory_a.create('remote_models.Scale')
    pid = comp.remote_pid
    directory = comp.remote_directory
    comp.release()
    from remote_servers import pid_alive
    import os
    import time
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)
    assert not os.path.exists(directory)
    from openmdao_like.errors import RemoteError
    with pytest.raises(RemoteError, match='released'):
        comp.run()


def test_release_can_keep_the_directory(factory_a):
    import os
    comp = factory_a.create('remote_models.Scale')
    directory = comp.remote_directory
    factory_a.release(comp, keep_directory=True)
    assert os.path.isdir(directory)


def test_variables_that_cannot_travel_are_mirrored_opaque(factory_a):
    comp = factory_a.create('remote_models.Holder')
    assert comp.thing is None
    assert comp.get_metadata('thing', 'iotype') == 'in'
    comp.x = 4.0
    comp.run()
    assert comp.y == 8.0
