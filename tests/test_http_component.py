"""HTTPComponent against a real service (uvicorn): the same results as local components, inside
assemblies with local and rpyc-remote components, under RetryWrapper, in a parallel DOE, in
saved models, with files, typed failures, and a service restarted under it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import remote_models
from http_servers import USERS, HTTPService
from remote_models import optimize
from openmdao_like import Assembly, ConfigError, ConvergenceError, Float, set_as_top
from openmdao_like.component import Component
from openmdao_like.distributed import RetryWrapper
from openmdao_like.drivers import CaseIteratorDriver
from openmdao_like.errors import RemoteError
from openmdao_like.execution import LocalExecutor
from openmdao_like.http import HTTPComponent
from openmdao_like.http.wire import ServiceError
from openmdao_like.persistence import load

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope='module')
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPService]:
    served = HTTPService(tmp_path_factory.mktemp('http-component')).start()
    yield served
    served.stop()


def proxy(service: HTTPService, name: str = 'remote_models.Paraboloid', user: str = 'alice',
          **options) -> HTTPComponent:
    return HTTPComponent(service.url, name, username=user, password=USERS[user][0], **options)


@pytest.mark.parametrize('execution', ['sync', 'async'])
def test_an_optimization_through_http_gives_the_local_result(service, execution):
    local = optimize(remote_models.Paraboloid)
    served = optimize(lambda: proxy(service, execution=execution))
    assert isinstance(served.p, HTTPComponent)
    assert served.p.x == pytest.approx(local.p.x, abs=1e-6)
    assert served.p.f_xy == pytest.approx(local.p.f_xy, abs=1e-6)
    assert served.p.exec_count == local.p.exec_count


def test_variables_come_from_the_service(service):
    p = proxy(service)
    variables = p._vars()
    assert variables['x'].units == 'm' and (variables['x'].low, variables['x'].high) == (-50, 50)
    assert variables['f_xy'].iotype == 'out' and variables['f_xy'].units == 'm**2'
    with pytest.raises(Exception, match=r'x: expected a float in \[-50.0, 50.0\]'):
        p.x = 100.0  # checked here already, like a local component


class Feet(Component):
    """An output in feet."""

    x = Float(0.0, iotype='in')
    length = Float(iotype='out', units='ft')

    def execute(self) -> None:
        self.length = self.x


def test_a_model_mixing_local_rpyc_and_http_components(service, factory_a):
    top = set_as_top(Assembly())
    top.add('feet', Feet(x=10.0))
    top.add('http', proxy(service))
    top.add('rpyc', factory_a.create('remote_models.Scale'))
    top.add('local', remote_models.Paraboloid())
    top.driver.workflow.add(['feet', 'http', 'rpyc', 'local'])
    top.connect('feet.length', 'http.x')  # ft -> m: the units come from the service
    top.connect('http.f_xy', 'rpyc.x')
    top.connect('rpyc.y', 'local.x')
    top.http.y, top.rpyc.k, top.local.y = 1.5, 0.01, -2.0
    top.run()
    first = remote_models.Paraboloid(x=10.0 * 0.3048, y=1.5)
    first.run()
    last = remote_models.Paraboloid(x=0.01 * first.f_xy, y=-2.0)
    last.run()
    assert top.http.x == pytest.approx(3.048)
    assert top.http.f_xy == pytest.approx(first.f_xy)
    assert top.local.f_xy == pytest.approx(last.f_xy)


def test_only_changed_inputs_travel(service, monkeypatch):
    p = proxy(service)
    sent = []
    execute = p._execute
    monkeypatch.setattr(p, '_execute', lambda body: sent.append(dict(body['inputs'])) or
                        execute(body))
    p.x, p.y = 1.0, 2.0
    p.run()
    p.y = 3.0
    p.run()
    p.run()
    assert sent == [{'x': 1.0, 'y': 2.0}, {'y': 3.0}, {}]
    expected = remote_models.Paraboloid(x=1.0, y=3.0)
    expected.run()
    assert p.f_xy == expected.f_xy


def test_arrays_travel_both_ways(service):
    p = proxy(service, 'remote_models.ArrayScale')
    p.a = np.arange(5.0)
    p.k = 3.0
    p.run()
    assert isinstance(p.b, np.ndarray) and p.b.dtype == np.float64
    np.testing.assert_array_equal(p.b, np.arange(5.0) * 3.0)


def test_failures_come_back_typed(service):
    p = proxy(service, 'remote_models.Fails')
    with pytest.raises(ZeroDivisionError) as info:
        p.run()
    assert 'ZeroDivisionError' in info.value.remote_traceback
    p.kind = 'ConvergenceError'
    with pytest.raises(ConvergenceError, match='did not converge'):
        p.run()
    p.kind = 'custom'
    with pytest.raises(RemoteError, match='remote_models.CustomError: a custom failure') as info:
        p.run()
    assert 'a custom failure' in info.value.remote_traceback


def test_a_timeout_stops_the_execution(service):
    p = proxy(service, 'remote_models.Sleeper', timeout=1.0)
    p.delay, p.x = 30.0, 2.0
    with pytest.raises(TimeoutError, match='longer than its timeout of 1 s'):
        p.run()
    p.delay = 0.0
    p.run()
    assert p.y == 2.0


def test_retry_wrapper_retries_an_http_component(service, tmp_path):
    wrapper = RetryWrapper(proxy(service, 'remote_models.Fails'), max_retries=2,
                           retry_on=(ZeroDivisionError,))
    with pytest.raises(ZeroDivisionError):
        wrapper.run()
    assert wrapper.n_tries == 3
    wrapper = RetryWrapper(proxy(service, 'remote_models.Sleeper'), max_retries=1)
    wrapper.x = 4.0
    wrapper.run()
    assert wrapper.y == 4.0 and wrapper.n_tries == 1


def test_a_parallel_doe_uses_one_instance_per_worker(service):
    top = set_as_top(Assembly())
    top.add('p', proxy(service))
    cases = [{'p.x': float(i), 'p.y': float(-i)} for i in range(40)]
    top.add('driver', CaseIteratorDriver(cases=cases, sequential=False,
                                         executor=LocalExecutor(n_workers=2)))
    top.driver.workflow.add('p')
    top.driver.add_response('p.f_xy')
    top.run()
    assert all(c.ok for c in top.driver.results)
    got = {(c.inputs['p.x'], c.inputs['p.y']): c.outputs['p.f_xy'] for c in top.driver.results}
    for x, y in got:
        expected = remote_models.Paraboloid(x=x, y=y)
        expected.run()
        assert got[(x, y)] == pytest.approx(expected.f_xy)
    assert len(got) == 40


def test_a_saved_model_keeps_no_credentials(service, tmp_path, monkeypatch):
    top = set_as_top(Assembly())
    top.add('p', proxy(service, execution='async', timeout=30.0))
    top.driver.workflow.add('p')
    top.p.x = 4.0
    path = tmp_path / 'model.yaml'
    top.save(str(path))
    text = path.read_text()
    assert service.url in text and 'remote_models.Paraboloid' in text
    for secret in (USERS['alice'][0], 'Bearer', 'token', 'password'):
        assert secret not in text
    top.save(str(tmp_path / 'model.pkl'))
    assert USERS['alice'][0].encode() not in (tmp_path / 'model.pkl').read_bytes()
    for name in ('OML_HTTP_TOKEN', 'OML_HTTP_USERNAME', 'OML_HTTP_PASSWORD'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(Exception, match='no credentials: give username and password'):
        load(str(path))
    monkeypatch.setenv('OML_HTTP_USERNAME', 'alice')
    monkeypatch.setenv('OML_HTTP_PASSWORD', USERS['alice'][0])
    loaded = load(str(path))
    assert isinstance(loaded.p, HTTPComponent) and loaded.p.execution == 'async'
    assert loaded.p.x == 4.0
    loaded.run()
    expected = remote_models.Paraboloid(x=4.0)
    expected.run()
    assert loaded.p.f_xy == expected.f_xy
    pickled = load(str(tmp_path / 'model.pkl'))  # logs in from the environment too
    pickled.run()
    assert pickled.p.f_xy == expected.f_xy


def test_files_are_uploaded_and_downloaded(service, tmp_path):
    top = set_as_top(Assembly(), str(tmp_path))
    top.add('writer', proxy(service, 'remote_models.FileWriter'))
    top.add('reader', proxy(service, 'remote_models.FileReader'))
    top.driver.workflow.add(['writer', 'reader'])
    top.connect('writer.out_file', 'reader.in_file')
    top.writer.size = 5000.0
    top.run()
    path = top.writer.out_file.abspath()
    assert os.path.getsize(path) == 5000
    assert Path(path).parent == tmp_path
    assert top.reader.size == 5000.0


def test_a_service_restart_is_survived(tmp_path):
    served = HTTPService(tmp_path / 'svc').start()
    try:
        p = proxy(served)
        p.x, p.y = 1.0, 2.0
        p.run()
        served.stop()
        served.start()
        p.y = 3.0  # the new service has no instance: another is made and sent every input
        p.run()
        expected = remote_models.Paraboloid(x=1.0, y=3.0)
        expected.run()
        assert p.f_xy == expected.f_xy
    finally:
        served.stop()


def test_bad_settings_and_refusals_are_named(service):
    with pytest.raises(ServiceError, match='401 wrong user name or password'):
        HTTPComponent(service.url, 'remote_models.Paraboloid', username='alice',
                      password='wrong')
    with pytest.raises(ServiceError, match="404 no component 'remote_models.Nope'"):
        proxy(service, 'remote_models.Nope')
    with pytest.raises(ServiceError, match="403 user 'alice' may not use remote_models.Scale"):
        proxy(service, 'remote_models.Scale')
    assert proxy(service, 'remote_models.Scale', user='bob').k == 2.0
    with pytest.raises(ConfigError, match="url must start with http:// or https://"):
        HTTPComponent('ftp://x', 'a.B', token='t')
    with pytest.raises(ConfigError, match="execution must be one of sync, async"):
        HTTPComponent(service.url, 'a.B', token='t', execution='later')
    with pytest.raises(ConfigError, match='give both username and password'):
        HTTPComponent(service.url, 'a.B', username='alice')
    with pytest.raises(ServiceError, match='401 not a token of this service'):
        HTTPComponent(service.url, 'remote_models.Paraboloid', token='garbage')
    with pytest.raises(ConfigError, match="verify: no CA file '/nonexistent.pem'"):
        HTTPComponent(service.url, 'a.B', token='t', verify='/nonexistent.pem')


def test_tls_with_the_right_and_a_wrong_ca(tmp_path, tls_files):
    served = HTTPService(tmp_path / 'tls', host='127.0.0.2', tls=tls_files[0]).start()
    try:
        good = HTTPComponent(served.url, 'remote_models.Paraboloid', username='alice',
                             password=USERS['alice'][0], verify=tls_files[0][0])
        good.x = 2.0
        good.run()
        assert good.f_xy == pytest.approx((2.0 - 3.0) ** 2 + 16.0 - 3.0)
        with pytest.raises(RemoteError, match='CERTIFICATE_VERIFY_FAILED'):
            HTTPComponent(served.url, 'remote_models.Paraboloid', username='alice',
                          password=USERS['alice'][0], verify=tls_files[1][0])
    finally:
        served.stop()
