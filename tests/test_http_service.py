"""The HTTP component service as a user of its REST API sees it: a real ``openmdao-like http
serve`` (uvicorn) on loopback, logged into with passwords and tokens; components listed,
described and run (synchronously, in instances, as jobs in the job store), files in and out,
every refusal a 4xx naming what was wrong, every failure of a component a typed result.

One service serves the module (starting one takes seconds); another, with ``max_upload: 1000``,
serves the tests of that limit. The service counts at most 30 logins per window from one
address (127.0.0.1 here): the tests share logged-in clients and log in sparingly.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import jwt
import numpy as np
import pytest

import remote_models
from http_servers import SECRET, TESTS_DIR, USERS, HTTPService
from openmdao_like.http import app as http_app
from openmdao_like.http import transfers
from openmdao_like.http.transfers import TransferError
from openmdao_like.jobs import JobStore, State
from openmdao_like.recorders import codec
from remote_servers import pid_alive, server_env

PARABOLOID = 'remote_models.Paraboloid'
ARRAY_SCALE = 'remote_models.ArrayScale'
FAILS = 'remote_models.Fails'
SLEEPER = 'remote_models.Sleeper'
FILE_WRITER = 'remote_models.FileWriter'
FILE_READER = 'remote_models.FileReader'
PID_SLEEPER = 'http_models.PidSleeper'
SCALE = 'remote_models.Scale'
#: The longest execution the module's service allows (its configuration's ``timeout``).
TIMEOUT = 30
NO_JOB = '0' * 32


# -- services and clients --------------------------------------------------------------------
@pytest.fixture(scope='module')
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPService]:
    """The module's service (every test component; alice and bob)."""
    server = HTTPService(tmp_path_factory.mktemp('http-service'), timeout=TIMEOUT).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope='module')
def small_uploads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPService]:
    """A service accepting files of at most 1000 bytes, with one worker."""
    server = HTTPService(tmp_path_factory.mktemp('http-small-uploads'), max_upload=1000,
                         workers=1, components=[PARABOLOID, FILE_WRITER]).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope='module')
def alice(service: HTTPService) -> Iterator[httpx.Client]:
    """alice (no role), logged in once for the module."""
    client = service.client('alice')
    yield client
    client.close()


@pytest.fixture(scope='module')
def bob(service: HTTPService) -> Iterator[httpx.Client]:
    """bob (role admin), logged in once for the module."""
    client = service.client('bob')
    yield client
    client.close()


@pytest.fixture
def anonymous(service: HTTPService) -> Iterator[httpx.Client]:
    """A client that has not logged in."""
    with httpx.Client(base_url=service.url, timeout=60.0) as client:
        yield client


# -- helpers -----------------------------------------------------------------------------------
def refused(response: httpx.Response, status: int, *words: str) -> str:
    """The detail of a refusal with ``status``, checked to hold each of ``words``."""
    assert response.status_code == status, response.text
    detail = response.json()['detail']
    text = detail if isinstance(detail, str) else json.dumps(detail)
    for word in words:
        assert word in text, (word, text)
    return text


def run(client: httpx.Client, name: str, inputs: Any = None, **body: Any) -> dict[str, Any]:
    """The result of ``POST /components/NAME/execute`` (checked to be 200)."""
    response = client.post(f'/components/{name}/execute', json={'inputs': inputs or {}, **body})
    assert response.status_code == 200, response.text
    return response.json()


def outputs(client: httpx.Client, name: str, inputs: Any = None) -> dict[str, Any]:
    """The outputs of a COMPLETED execution."""
    result = run(client, name, inputs)
    assert result['state'] == 'COMPLETED', result
    return result['outputs']


def local(cls: type, **inputs: Any) -> Any:
    """An instance of ``cls`` run here with ``inputs``."""
    obj = cls()
    for name, value in inputs.items():
        setattr(obj, name, value)
    obj.run()
    return obj


def tagged(array: np.ndarray) -> dict[str, Any]:
    """``array`` as the service's JSON tags it."""
    return json.loads(codec.dumps(np.asarray(array)))


def submit(client: httpx.Client, name: str, inputs: dict[str, Any],
           **body: Any) -> dict[str, Any]:
    """A job just submitted (checked to be 202)."""
    response = client.post(f'/components/{name}/jobs', json={'inputs': inputs, **body})
    assert response.status_code == 202, response.text
    return response.json()


def wait(client: httpx.Client, job_id: str, seconds: float = 20.0) -> dict[str, Any]:
    """The job once it ended (or after ``seconds``)."""
    response = client.get(f'/jobs/{job_id}', params={'wait': seconds})
    assert response.status_code == 200, response.text
    return response.json()


def job_store(service: HTTPService) -> JobStore:
    """The service's job store, opened here."""
    return JobStore(f'sqlite:///{service.workdir / "http.jobs.db"}')


def stored_states(service: HTTPService, job_id: str) -> tuple[str, State]:
    """The state of a job's run and of the job, as the service's job store has them."""
    store = job_store(service)
    try:
        return store.run(job_id).state, store.job(job_id, 0).state
    finally:
        store.close()


def token(claims: dict[str, Any], key: str = SECRET) -> str:
    """A JWT of ``claims`` signed with ``key`` (HS256)."""
    return jwt.encode(claims, key, algorithm='HS256')


def claims_of(service: HTTPService, **changes: Any) -> dict[str, Any]:
    """The claims of an access token of alice's from ``service``, with ``changes``."""
    now = int(time.time())
    return {'sub': 'alice', 'roles': [], 'kind': 'access',
            'iss': f'openmdao_like.http:{service.config.resolve()}', 'iat': now,
            'exp': now + 600, 'jti': 'test', **changes}


def documented_endpoints(doc: str) -> list[tuple[str | None, str]]:
    """(method or None, path) of each line of the endpoint list in a module docstring, with
    path parameters written ``{}``."""
    block = doc.split('::', 1)[1].strip('\n').split('\n\n')[0]
    found = []
    for line in block.splitlines():
        method, paths = re.match(r'\s*(?:([A-Z]+) +)?(\S.*?)(?:\s{2,}|$)', line).groups()
        for path in paths.split(','):
            found.append((method, re.sub(r'\{[^}]*\}', '{}', path.strip().split('?')[0])))
    return found


# -- the service itself ------------------------------------------------------------------------
def test_health_needs_no_login(anonymous: httpx.Client) -> None:
    answer = anonymous.get('/health')
    assert answer.status_code == 200, answer.text
    health = answer.json()
    assert health['status'] == 'ok' and health['workers'] == 2
    assert health['components'] == 8
    assert abs(health['time'] - time.time()) < 60


def test_openapi_lists_every_documented_endpoint(anonymous: httpx.Client) -> None:
    answer = anonymous.get('/openapi.json')
    assert answer.status_code == 200, answer.text
    schema = answer.json()
    offered = {(method.upper(), re.sub(r'\{[^}]*\}', '{}', path))
               for path, methods in schema['paths'].items() for method in methods}
    documented = documented_endpoints(http_app.__doc__) + \
        documented_endpoints(transfers.__doc__)
    assert len(documented) >= 20, documented
    for method, path in documented:
        if method is None:
            assert any(p == path or p.startswith(path + '/') for _, p in offered), path
        else:
            assert (method, path) in offered, (method, path, sorted(offered))


def test_docs_serve_the_swagger_ui(anonymous: httpx.Client) -> None:
    answer = anonymous.get('/docs')
    assert answer.status_code == 200
    assert answer.headers['content-type'].startswith('text/html')
    assert 'swagger-ui' in answer.text.lower() and '/openapi.json' in answer.text


# -- logging in --------------------------------------------------------------------------------
def test_login_gives_tokens_and_refresh_gives_a_new_access_token(
        anonymous: httpx.Client) -> None:
    answer = anonymous.post('/token', data={'username': 'bob', 'password': USERS['bob'][0]})
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens['token_type'] == 'bearer' and tokens['expires_in'] > 0
    access, refresh = tokens['access_token'], tokens['refresh_token']
    assert access != refresh
    listed = anonymous.get('/components', headers={'Authorization': f'Bearer {access}'})
    assert listed.status_code == 200 and SCALE in [c['name'] for c in listed.json()]

    renewed = anonymous.post('/token', data={'grant_type': 'refresh_token',
                                             'refresh_token': refresh})
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()
    assert fresh['access_token'] not in (access, refresh)
    assert fresh.get('refresh_token') is None
    listed = anonymous.get('/components',
                           headers={'Authorization': f'Bearer {fresh["access_token"]}'})
    assert listed.status_code == 200 and SCALE in [c['name'] for c in listed.json()]

    # each kind of token in the other's place
    as_refresh = anonymous.post('/token', data={'grant_type': 'refresh_token',
                                                'refresh_token': access})
    refused(as_refresh, 401, 'expected an refresh token, got a access token')
    assert as_refresh.headers['www-authenticate'] == 'Bearer'
    refused(anonymous.get('/components', headers={'Authorization': f'Bearer {refresh}'}),
            401, 'got a refresh token')


def test_a_wrong_password_and_an_unknown_user_get_the_same_401(
        anonymous: httpx.Client) -> None:
    wrong = anonymous.post('/token', data={'username': 'alice', 'password': 'not-her-password'})
    unknown = anonymous.post('/token', data={'username': 'nobody-at-all',
                                             'password': 'alice-password'})
    for answer in (wrong, unknown):
        assert refused(answer, 401) == 'wrong user name or password'
        assert answer.headers['www-authenticate'] == 'Bearer'
        assert 'access_token' not in answer.text


@pytest.mark.parametrize('data, words', [
    ({'username': 'alice'}, 'grant_type password needs username and password'),
    ({'password': 'alice-password'}, 'grant_type password needs username and password'),
    ({}, 'grant_type password needs username and password'),
    ({'grant_type': 'refresh_token'}, 'grant_type refresh_token needs refresh_token'),
    ({'grant_type': 'magic', 'username': 'alice', 'password': 'x'}, 'grant_type'),
])
def test_a_login_missing_fields_is_422(anonymous: httpx.Client, data: dict[str, str],
                                       words: str) -> None:
    refused(anonymous.post('/token', data=data), 422, words)


def test_five_failed_logins_lock_the_name_out(service: HTTPService,
                                              anonymous: httpx.Client) -> None:
    service.cli('adduser', 'carol', '--password-stdin', stdin='carol-password\n')
    right = {'username': 'carol', 'password': 'carol-password'}
    assert anonymous.post('/token', data=right).status_code == 200  # the new user is known
    for _ in range(5):
        refused(anonymous.post('/token', data={'username': 'carol', 'password': 'guess-1234'}),
                401, 'wrong user name or password')
    locked = anonymous.post('/token', data=right)
    refused(locked, 429, "too many failed logins for 'carol'")
    assert int(locked.headers['retry-after']) > 0
    assert 'access_token' not in locked.text


# -- tokens --------------------------------------------------------------------------------------
def test_no_token_is_401_asking_for_a_bearer_token(anonymous: httpx.Client) -> None:
    for method, path in [('GET', '/components'), ('GET', f'/components/{PARABOLOID}'),
                         ('POST', f'/components/{PARABOLOID}/execute'), ('GET', '/jobs'),
                         ('GET', f'/jobs/{NO_JOB}'), ('POST', '/uploads')]:
        answer = anonymous.request(method, path, json={})
        refused(answer, 401, 'not authenticated', 'POST /token')
        assert answer.headers['www-authenticate'] == 'Bearer'


def test_a_token_the_test_signs_with_the_secret_is_accepted(service: HTTPService,
                                                            anonymous: httpx.Client) -> None:
    # (so that the refusals below are about what each token breaks, not its issuer)
    made = token(claims_of(service))
    answer = anonymous.get('/components', headers={'Authorization': f'Bearer {made}'})
    assert answer.status_code == 200, answer.text


def _none_token(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b'=').decode()
    return f'{part({"alg": "none", "typ": "JWT"})}.{part(claims)}.'


@pytest.mark.parametrize('kind, words', [
    ('expired', 'the token has expired'),
    ('forged', 'the token was not signed by this service'),
    ('garbage', 'not a token of this service'),
    ('alg none', 'not a token of this service'),
    ('other issuer', 'not a token of this service'),
    ('no kind', 'not a token of this service'),
    ('bearer of nothing', 'not authenticated'),
    ('basic', 'not authenticated'),
])
def test_a_bad_token_is_401_saying_why(service: HTTPService, anonymous: httpx.Client,
                                       kind: str, words: str) -> None:
    now = int(time.time())
    no_kind = claims_of(service)
    del no_kind['kind']
    bad = {'expired': lambda: token(claims_of(service, iat=now - 1000, exp=now - 100)),
           'forged': lambda: token(claims_of(service), key='another-key-' + 'k' * 40),
           'garbage': lambda: 'not.a.token',
           'alg none': lambda: _none_token(claims_of(service, roles=['admin'])),
           'other issuer': lambda: token(claims_of(service, iss='openmdao_like.http:/x.yaml')),
           'no kind': lambda: token(no_kind),
           'bearer of nothing': lambda: '',
           'basic': lambda: ''}[kind]()
    header = 'Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=' if kind == 'basic' else f'Bearer {bad}'
    answer = anonymous.get('/components', headers={'Authorization': header.strip()})
    text = refused(answer, 401, words)
    assert answer.headers['www-authenticate'] == 'Bearer'
    assert bad == '' or bad not in text  # never echoed


# -- components ---------------------------------------------------------------------------------
def test_each_user_lists_the_components_their_roles_allow(alice: httpx.Client,
                                                          bob: httpx.Client) -> None:
    hers = [c['name'] for c in alice.get('/components').json()]
    his = [c['name'] for c in bob.get('/components').json()]
    assert SCALE not in hers and PARABOLOID in hers and FILE_READER in hers
    assert sorted(his) == sorted(hers + [SCALE])
    assert len(hers) == 7
    described = {c['name']: c['description'] for c in alice.get('/components').json()}
    assert described[PARABOLOID] == 'f(x, y) = (x-3)^2 + xy + (y+4)^2 - 3, in metres.'


def test_a_component_of_a_role_is_403_naming_the_role(alice: httpx.Client,
                                                      bob: httpx.Client) -> None:
    refused(alice.get(f'/components/{SCALE}'), 403, "user 'alice' may not use", 'admin')
    refused(alice.post(f'/components/{SCALE}/execute', json={'inputs': {'x': 1}}), 403,
            'admin')
    refused(alice.post(f'/components/{SCALE}/jobs', json={}), 403, 'admin')
    refused(alice.post(f'/components/{SCALE}/instances'), 403, 'admin')
    assert outputs(bob, SCALE, {'x': 1.5}) == {'y': 3.0}


def test_an_unknown_component_is_404(alice: httpx.Client) -> None:
    refused(alice.get('/components/remote_models.Nothing'), 404,
            "no component 'remote_models.Nothing' is offered")
    refused(alice.post('/components/os.system/execute', json={}), 404, 'os.system')
    refused(alice.post('/components/os.system/instances'), 404, 'os.system')
    refused(alice.get('/components/Paraboloid'), 422)  # not a dotted name


def test_the_interface_tells_units_bounds_and_iotype(alice: httpx.Client) -> None:
    answer = alice.get(f'/components/{PARABOLOID}')
    assert answer.status_code == 200, answer.text
    interface = answer.json()
    assert interface['name'] == PARABOLOID
    variables = interface['variables']
    assert set(variables) == {'x', 'y', 'f_xy'}
    for name in ('x', 'y'):
        meta = variables[name]['metadata']
        assert meta['units'] == 'm' and meta['iotype'] == 'in'
        assert (meta['low'], meta['high']) == (-50.0, 50.0)
        assert variables[name]['default'] == 0.0
    assert variables['f_xy']['metadata']['iotype'] == 'out'
    assert variables['f_xy']['metadata']['units'] == 'm**2'
    assert variables['x']['type'].endswith('Float')


# -- synchronous executions ----------------------------------------------------------------------
@pytest.mark.parametrize('x, y', [(0.0, 0.0), (1.5, -2.0), (-50.0, 50.0), (3.25, 7)])
def test_paraboloid_computes_what_it_computes_here(alice: httpx.Client, x: float,
                                                   y: float) -> None:
    here = local(remote_models.Paraboloid, x=x, y=y)
    assert outputs(alice, PARABOLOID, {'x': x, 'y': y}) == {'f_xy': here.f_xy}


def test_inputs_not_given_are_at_their_initial_values(alice: httpx.Client) -> None:
    # twice each, so that each of the two workers ran with x set before
    for inputs in ({'x': 7.0}, {'x': 7.0}, {'y': 1.0}, {'y': 1.0}, {}):
        here = local(remote_models.Paraboloid, **inputs)
        assert outputs(alice, PARABOLOID, inputs) == {'f_xy': here.f_xy}, inputs


@pytest.mark.parametrize('given', ['tagged', 'list'])
def test_array_scale_with_an_array_of_five(alice: httpx.Client, given: str) -> None:
    a = np.array([1.0, -2.5, 3.0, 0.0, 1e-3])
    value = tagged(a) if given == 'tagged' else a.tolist()
    result = outputs(alice, ARRAY_SCALE, {'a': value, 'k': 3.0})
    b = result['b']
    assert set(b) == {'__ndarray__', 'dtype', 'shape'}
    assert b['dtype'] == 'float64' and b['shape'] == [5]
    back = codec.from_json_object(b)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, local(remote_models.ArrayScale, a=a, k=3.0).b)


@pytest.mark.parametrize('inputs, words', [
    ({'x': 100}, ["input 'x'", '[-50.0, 50.0]', 'got 100']),
    ({'x': -50.5}, ["input 'x'", '[-50.0, 50.0]']),
    ({'x': 'a'}, ["input 'x'", 'expected a float', "'a'"]),
    ({'y': [1.0]}, ["input 'y'", 'expected a float']),
    ({'f_xy': 1.0}, ["input 'f_xy' is an output", 'inputs: x, y']),
    ({'z': 1.0}, ["input 'z' is not a variable", 'inputs: x, y']),
    ({'x': 1.0, 'z': 1.0}, ["input 'z'"]),
    ([1.0, 2.0], ['inputs']),
    ('x', ['inputs']),
])
def test_a_bad_input_is_422_naming_it(alice: httpx.Client, inputs: Any,
                                      words: list[str]) -> None:
    answer = alice.post(f'/components/{PARABOLOID}/execute', json={'inputs': inputs})
    refused(answer, 422, *words)
    refused(alice.post(f'/components/{PARABOLOID}/jobs', json={'inputs': inputs}), 422, *words)


@pytest.mark.parametrize('a, words', [
    ({'__ndarray__': [1.0, 2.0], 'dtype': 'float64', 'shape': [5]},
     ['does not fill the shape [5]']),
    ({'__ndarray__': [[1.0], [2.0]], 'dtype': 'float64', 'shape': [2, 3]},
     ['does not fill the shape [2, 3]']),
    ({'__ndarray__': [1, 2], 'dtype': 'object', 'shape': [2]}, ["dtype 'object'"]),
    ({'__ndarray__': [1, 2], 'dtype': 'float64'}, ['expected {"__ndarray__"']),
    ({'__ndarray__': ['a', 'b'], 'dtype': 'U1', 'shape': [2]}, ["dtype 'U1'"]),
])
def test_a_malformed_array_is_422_naming_it(alice: httpx.Client, a: dict[str, Any],
                                            words: list[str]) -> None:
    answer = alice.post(f'/components/{ARRAY_SCALE}/execute', json={'inputs': {'a': a}})
    refused(answer, 422, f"{ARRAY_SCALE}: input 'a'", *words)


@pytest.mark.parametrize('timeout, words', [
    (TIMEOUT + 1, [f'timeout: at most {TIMEOUT} s on this service, got {TIMEOUT + 1}']),
    (-1, ['timeout', 'greater than 0']),
    (0, ['timeout', 'greater than 0']),
    ('inf', ['timeout']),
])
def test_a_bad_timeout_is_422(alice: httpx.Client, timeout: Any, words: list[str]) -> None:
    body = {'inputs': {'x': 1.0}, 'timeout': timeout}
    refused(alice.post(f'/components/{PARABOLOID}/execute', json=body), 422, *words)
    refused(alice.post(f'/components/{PARABOLOID}/jobs', json=body), 422, *words)


def test_a_timeout_up_to_the_service_s_is_accepted(alice: httpx.Client) -> None:
    result = run(alice, PARABOLOID, {'x': 1.0}, timeout=TIMEOUT)
    assert result['state'] == 'COMPLETED'


# -- failures ------------------------------------------------------------------------------------
def test_a_component_s_own_exception_comes_back_typed(alice: httpx.Client) -> None:
    result = run(alice, FAILS, {'kind': 'custom'})
    assert result['state'] == 'FAILED' and result.get('outputs') is None
    error = result['error']
    assert (error['module'], error['type']) == ('remote_models', 'CustomError')
    assert error['message'] == 'a custom failure'
    assert 'a custom failure' in error['traceback']
    assert 'remote_models.py' in error['traceback']


@pytest.mark.parametrize('kind, module', [('ZeroDivisionError', 'builtins'),
                                          ('ConvergenceError', 'openmdao_like.errors')])
def test_builtin_and_library_exceptions_come_back_typed(alice: httpx.Client, kind: str,
                                                        module: str) -> None:
    result = run(alice, FAILS, {'kind': kind})
    assert result['state'] == 'FAILED'
    assert (result['error']['module'], result['error']['type']) == (module, kind)
    assert kind in result['error']['traceback']
    assert outputs(alice, FAILS, {'kind': 'none'}) == {'y': 1.0}


@pytest.mark.timeout(60)
def test_an_execution_past_its_timeout_fails_and_the_service_goes_on(
        alice: httpx.Client) -> None:
    start = time.monotonic()
    result = run(alice, SLEEPER, {'delay': 5.0, 'x': 1.0}, timeout=1.0)
    took = time.monotonic() - start
    assert result['state'] == 'FAILED', result
    assert (result['error']['module'], result['error']['type']) == ('builtins', 'TimeoutError')
    assert 'timeout of 1 s' in result['error']['message']
    assert 0.9 < took < 6.0, took
    assert outputs(alice, SLEEPER, {'delay': 0.0, 'x': 2.0}) == {'y': 2.0}
    assert outputs(alice, PARABOLOID, {'x': 1.0}) == \
        {'f_xy': local(remote_models.Paraboloid, x=1.0).f_xy}


# -- instances ---------------------------------------------------------------------------------
def test_an_instance_keeps_the_inputs_set_before(alice: httpx.Client, bob: httpx.Client) -> None:
    created = alice.post(f'/components/{PARABOLOID}/instances')
    assert created.status_code == 201, created.text
    instance = created.json()
    assert re.fullmatch(r'[0-9a-f]{32}', instance['id'])
    assert instance['name'] == PARABOLOID and set(instance['variables']) == {'x', 'y', 'f_xy'}
    url = f'/instances/{instance["id"]}'

    def call(inputs: dict[str, Any]) -> dict[str, Any]:
        answer = alice.post(f'{url}/execute', json={'inputs': inputs})
        assert answer.status_code == 200, answer.text
        assert answer.json()['state'] == 'COMPLETED', answer.text
        return answer.json()['outputs']

    assert call({'x': 5.0}) == {'f_xy': local(remote_models.Paraboloid, x=5.0).f_xy}
    expected = {'f_xy': local(remote_models.Paraboloid, x=5.0, y=2.0).f_xy}
    assert call({'y': 2.0}) == expected
    assert call({}) == expected
    assert outputs(alice, PARABOLOID, {'y': 2.0}) == \
        {'f_xy': local(remote_models.Paraboloid, y=2.0).f_xy}  # not the instance's x
    refused(alice.post(f'{url}/execute', json={'inputs': {'x': 500}}), 422, "input 'x'")
    assert call({}) == expected  # a bad input leaves the instance as it was

    job = alice.post(f'{url}/jobs', json={'inputs': {'x': -1.0}})
    assert job.status_code == 202, job.text
    ended = wait(alice, job.json()['id'])
    assert ended['state'] == 'COMPLETED'
    assert ended['outputs'] == {'f_xy': local(remote_models.Paraboloid, x=-1.0, y=2.0).f_xy}

    refused(bob.post(f'{url}/execute', json={}), 404, 'no instance')
    refused(bob.post(f'{url}/jobs', json={}), 404, 'no instance')
    refused(bob.delete(url), 404, 'no instance')
    assert call({'x': 5.0}) == expected  # still alice's

    assert alice.delete(url).status_code == 204
    refused(alice.post(f'{url}/execute', json={}), 404, 'no instance')
    refused(alice.delete(url), 404)
    refused(alice.post('/instances/not-an-id/execute', json={}), 422)


def test_instances_hold_their_own_arrays(alice: httpx.Client) -> None:
    first = alice.post(f'/components/{ARRAY_SCALE}/instances').json()['id']
    second = alice.post(f'/components/{ARRAY_SCALE}/instances').json()['id']

    def b(instance: str, inputs: dict[str, Any]) -> list[float]:
        answer = alice.post(f'/instances/{instance}/execute', json={'inputs': inputs})
        assert answer.status_code == 200, answer.text
        return answer.json()['outputs']['b']['__ndarray__']

    assert b(first, {'a': [1.0, 2.0]}) == [2.0, 4.0]
    assert b(second, {'a': [5.0, 6.0, 7.0], 'k': 1.0}) == [5.0, 6.0, 7.0]
    assert b(first, {}) == [2.0, 4.0]
    assert b(second, {}) == [5.0, 6.0, 7.0]
    for instance in (first, second):
        assert alice.delete(f'/instances/{instance}').status_code == 204


def test_a_call_refused_for_its_timeout_leaves_the_instance_as_it_was(
        alice: httpx.Client) -> None:
    instance = alice.post(f'/components/{PARABOLOID}/instances').json()['id']
    try:
        answer = alice.post(f'/instances/{instance}/execute',
                            json={'inputs': {'x': 5.0}, 'timeout': TIMEOUT * 10})
        refused(answer, 422, 'timeout')
        after = alice.post(f'/instances/{instance}/execute', json={})
        assert after.json()['outputs'] == {'f_xy': local(remote_models.Paraboloid).f_xy}
    finally:
        alice.delete(f'/instances/{instance}')


# -- asynchronous jobs -------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_job_ends_with_the_outputs_of_a_synchronous_call(service: HTTPService,
                                                           alice: httpx.Client,
                                                           bob: httpx.Client) -> None:
    submitted = submit(alice, SLEEPER, {'delay': 0.5, 'x': 3.0})
    job_id = submitted['id']
    assert re.fullmatch(r'[0-9a-f]{32}', job_id)
    assert (submitted['state'], submitted['component']) == ('RUNNING', SLEEPER)
    assert submitted['attempts'] == 1 and submitted.get('outputs') is None
    assert wait(alice, job_id, 0)['state'] == 'RUNNING'  # no wait: at once
    ended = wait(alice, job_id, 10)
    assert ended['state'] == 'COMPLETED', ended
    assert ended['outputs'] == outputs(alice, SLEEPER, {'x': 3.0}) == {'y': 3.0}
    assert ended['finished'] >= ended['started'] >= ended['created']

    parab = wait(alice, submit(alice, PARABOLOID, {'x': 2.0, 'y': -3.0})['id'])
    assert parab['state'] == 'COMPLETED'
    assert parab['outputs'] == outputs(alice, PARABOLOID, {'x': 2.0, 'y': -3.0})
    arrays = wait(alice, submit(alice, ARRAY_SCALE, {'a': tagged(np.arange(5.0))})['id'])
    assert arrays['outputs'] == outputs(alice, ARRAY_SCALE, {'a': list(range(5))})
    failed = wait(alice, submit(alice, FAILS, {'kind': 'custom'})['id'])
    assert failed['state'] == 'FAILED'
    assert (failed['error']['type'], failed['error']['module']) == ('CustomError',
                                                                    'remote_models')
    assert 'a custom failure' in failed['error']['traceback']

    listed = alice.get('/jobs')
    assert listed.status_code == 200
    mine = {job['id']: job for job in listed.json()}
    assert mine[job_id]['state'] == 'COMPLETED' and mine[job_id]['component'] == SLEEPER
    assert mine[failed['id']]['state'] == 'FAILED'
    assert listed.json()[0]['id'] == failed['id']  # newest first
    assert job_id not in {job['id'] for job in bob.get('/jobs').json()}
    refused(bob.get(f'/jobs/{job_id}'), 404, 'no job')
    refused(bob.delete(f'/jobs/{job_id}'), 404, 'no job')

    store = job_store(service)
    try:
        run_info = store.run(job_id)
        assert run_info.state == 'COMPLETED'
        assert run_info.resources['user'] == 'alice'
        assert run_info.resources['component'] == SLEEPER
        assert run_info.resources['timeout'] == TIMEOUT
        job = store.job(job_id, 0)
        assert job.state is State.COMPLETED and job.outputs == {'y': 3.0}
        assert job.inputs == {'delay': 0.5, 'x': 3.0}
        assert store.run(failed['id']).state == 'FAILED'
        assert store.job(failed['id'], 0).state is State.FAILED
    finally:
        store.close()


@pytest.mark.timeout(60)
def test_cancelling_a_running_job_stops_its_worker(service: HTTPService, alice: httpx.Client,
                                                   tmp_path: Path) -> None:
    pidfile = tmp_path / 'pid'
    job_id = submit(alice, PID_SLEEPER, {'pidfile': str(pidfile), 'delay': 30.0, 'x': 1.0})['id']
    deadline = time.monotonic() + 20
    while not pidfile.exists():
        assert time.monotonic() < deadline, 'the job did not start'
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    assert pid in service.worker_pids()
    start = time.monotonic()
    answer = alice.delete(f'/jobs/{job_id}')
    assert answer.status_code == 200, answer.text
    assert answer.json()['state'] == 'CANCELLED'
    while pid_alive(pid):
        assert time.monotonic() - start < 5, 'the worker of a cancelled job still runs'
        time.sleep(0.05)
    after = wait(alice, job_id, 3)
    assert after['state'] == 'CANCELLED' and after.get('outputs') is None
    assert time.monotonic() - start < 10
    assert alice.delete(f'/jobs/{job_id}').json()['state'] == 'CANCELLED'  # again: the same
    assert stored_states(service, job_id) == ('CANCELLED', State.CANCELLED)
    assert outputs(alice, PID_SLEEPER, {'x': 4.0}) == {'y': 8.0}
    assert outputs(alice, PARABOLOID, {'x': 4.0}) == \
        {'f_xy': local(remote_models.Paraboloid, x=4.0).f_xy}


@pytest.mark.timeout(60)
def test_cancelling_an_ended_job_leaves_it_as_it_ended(service: HTTPService,
                                                       alice: httpx.Client) -> None:
    job_id = submit(alice, PARABOLOID, {'x': 1.0})['id']
    done = wait(alice, job_id)
    assert done['state'] == 'COMPLETED'
    answer = alice.delete(f'/jobs/{job_id}')
    assert answer.status_code == 200, answer.text
    assert answer.json()['state'] == 'COMPLETED'
    assert answer.json()['outputs'] == done['outputs']
    assert wait(alice, job_id, 0) == done
    assert stored_states(service, job_id) == ('COMPLETED', State.COMPLETED)


@pytest.mark.parametrize('path, params, status', [
    ('/jobs/not-hex', {}, 422),
    (f'/jobs/{NO_JOB[:-1]}', {}, 422),
    (f'/jobs/{"A" * 32}', {}, 422),
    (f'/jobs/{NO_JOB}', {}, 404),
    (f'/jobs/{NO_JOB}', {'wait': 1}, 404),
    (f'/jobs/{NO_JOB}', {'wait': http_app.MAX_WAIT + 1}, 422),
    (f'/jobs/{NO_JOB}', {'wait': -1}, 422),
    (f'/jobs/{NO_JOB}', {'wait': 'nan'}, 422),
])
def test_a_bad_job_id_or_wait_is_refused(alice: httpx.Client, path: str,
                                         params: dict[str, Any], status: int) -> None:
    refused(alice.get(path, params=params), status)
    if not params:
        refused(alice.delete(path), status)


# -- files -------------------------------------------------------------------------------------
def test_an_uploaded_file_is_a_file_input(alice: httpx.Client, bob: httpx.Client,
                                          tmp_path: Path) -> None:
    source = tmp_path / 'geometry.bin'
    source.write_bytes(os.urandom(12345))
    meta = transfers.upload(alice, source)
    assert meta['size'] == 12345 and meta['filename'] == 'geometry.bin'
    result = outputs(alice, FILE_READER, {'in_file': {'__file__': meta['id']}})
    assert result['size'] == 12345.0
    job = wait(alice, submit(alice, FILE_READER, {'in_file': {'__file__': meta['id']}})['id'])
    assert job['state'] == 'COMPLETED' and job['outputs']['size'] == 12345.0
    # another user's file is no file of bob's
    refused(bob.post(f'/components/{FILE_READER}/execute',
                     json={'inputs': {'in_file': {'__file__': meta['id']}}}), 422,
            "input 'in_file'", 'no file')


def test_an_input_file_takes_its_variable_s_local_path(alice: httpx.Client,
                                                       tmp_path: Path) -> None:
    source = tmp_path / 'geometry.bin'
    source.write_bytes(b'0123456789')
    meta = transfers.upload(alice, source)
    result = outputs(alice, FILE_READER, {'in_file': {'__file__': meta['id']}})
    assert result['size'] == 10.0
    assert Path(result['where']).name == 'received.bin'


@pytest.mark.parametrize('value, words', [
    ({'__file__': NO_JOB}, ['no file', 'POST /uploads']),
    ({'__file__': '../x'}, ['no file']),
    ({'__file__': '/etc/passwd'}, ['no file']),
    ('data.bin', ['is a file']),
    ({'__file__': 3}, ['is a file']),
    ({'__file__': NO_JOB, 'path': '/etc/passwd'}, ['is a file']),
])
def test_a_file_input_naming_no_file_of_yours_is_422(alice: httpx.Client, value: Any,
                                                     words: list[str]) -> None:
    answer = alice.post(f'/components/{FILE_READER}/execute', json={'inputs': {'in_file': value}})
    refused(answer, 422, f"{FILE_READER}: input 'in_file'", *words)


def test_a_file_name_with_a_path_is_422(alice: httpx.Client, tmp_path: Path) -> None:
    source = tmp_path / 'x'
    source.write_bytes(b'12345')
    for name in ('../x', 'a/b', '..'):
        with pytest.raises(TransferError) as caught:
            transfers.upload(alice, source, filename=name)
        assert caught.value.status == 422 and 'filename' in str(caught.value)


def test_a_file_output_comes_back_as_a_file_to_download(alice: httpx.Client,
                                                        tmp_path: Path) -> None:
    result = run(alice, FILE_WRITER, {'size': 5000})
    assert result['state'] == 'COMPLETED', result
    out = result['outputs']['out_file']
    assert set(out) == {'__file__', 'filename', 'size', 'sha256'}
    assert out['filename'] == 'data.bin' and out['size'] == 5000
    meta = transfers.download(alice, out['__file__'], tmp_path / 'back.bin')
    data = (tmp_path / 'back.bin').read_bytes()
    assert len(data) == 5000 and data == (bytes(range(256)) * 20)[:5000]
    assert meta['sha256'] == out['sha256']


def test_an_upload_over_max_upload_is_413(small_uploads: HTTPService, tmp_path: Path) -> None:
    with contextlib.closing(small_uploads.client('alice')) as client:
        small, big = tmp_path / 'small.bin', tmp_path / 'big.bin'
        small.write_bytes(os.urandom(1000))
        big.write_bytes(os.urandom(1001))
        assert transfers.upload(client, small)['size'] == 1000
        with pytest.raises(TransferError) as caught:
            transfers.upload(client, big)
        assert caught.value.status == 413
        assert '1001 bytes is more than the limit of 1000 bytes' in str(caught.value)


@pytest.mark.timeout(60)
def test_a_job_whose_file_output_cannot_be_kept_fails(small_uploads: HTTPService) -> None:
    with contextlib.closing(small_uploads.client('bob')) as client:
        job = wait(client, submit(client, FILE_WRITER, {'size': 5000})['id'], 3)
        assert job['state'] == 'FAILED', job


# -- the size of a request ---------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_body_declared_over_the_limit_is_413(service: HTTPService,
                                               alice: httpx.Client) -> None:
    declared = 100_000_000
    assert declared > http_app.MAX_BODY
    request = (f'POST /components/{PARABOLOID}/execute HTTP/1.1\r\n'
               f'Host: {service.host}:{service.port}\r\n'
               f'Authorization: {alice.headers["Authorization"]}\r\n'
               f'Content-Type: application/json\r\nContent-Length: {declared}\r\n'
               f'Connection: close\r\n\r\n{{"inputs": {{}}}}').encode()
    with socket.create_connection((service.host, service.port), timeout=20) as sock:
        sock.sendall(request)
        answer = b''
        while b'\r\n\r\n' not in answer or not answer.rstrip().endswith(b'}'):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status_line = answer.split(b'\r\n', 1)[0]
    assert status_line.startswith(b'HTTP/1.1 413'), answer[:300]
    assert f'the request body has {declared} bytes'.encode() in answer
    assert outputs(alice, PARABOLOID, {'x': 1.0})  # the service goes on


# -- the secret --------------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_the_service_does_not_start_without_a_secret(tmp_path: Path) -> None:
    config = tmp_path / 'http.yaml'
    config.write_text(f'host: 127.0.0.1\nport: 0\ncomponents: [{PARABOLOID}]\n')
    env = server_env(TESTS_DIR)
    env.pop('OML_HTTP_SECRET', None)
    done = subprocess.run([sys.executable, '-m', 'openmdao_like.cli.main', 'http', 'serve',
                           '--config', str(config)], capture_output=True, text=True,
                          timeout=90, env=env, cwd=tmp_path)
    assert done.returncode != 0
    assert 'no JWT secret' in done.stderr and 'OML_HTTP_SECRET' in done.stderr, done.stderr
    assert 'Uvicorn running' not in done.stdout + done.stderr


def test_the_secret_never_appears_in_the_log(service: HTTPService, small_uploads: HTTPService,
                                             anonymous: httpx.Client) -> None:
    anonymous.post('/token', data={'username': 'alice', 'password': SECRET})
    anonymous.post('/token', data={'grant_type': 'refresh_token', 'refresh_token': SECRET})
    anonymous.get('/components', headers={'Authorization': f'Bearer {SECRET}'})
    assert "failed login of 'alice'" in service.log()  # (the log holds the attempts)
    for server in (service, small_uploads):
        log = server.log()
        assert 'Application startup complete' in log and 'POST /token' in log
        assert SECRET not in log and SECRET[12:] not in log
        for password, _ in USERS.values():  # nor a password
            assert password not in log
