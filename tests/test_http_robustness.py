"""Robustness of the HTTP component service (issue 16), each test against a real ``openmdao-like
http serve`` process (`http_servers.HTTPService`): a worker killed with SIGKILL mid-execution
fails that call only (WorkerLost) and is replaced; a service killed with SIGKILL while a job runs
runs the job again when it starts again, until it was lost `MAX_RESTARTS` times; SIGTERM stops
the service and its workers; TLS; schemathesis against its OpenAPI document: no operation
answers 5xx, and the responses are as documented; and request bodies schemathesis does not
make (NaN, deep nesting, huge numbers) are refused with 4xx."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import ssl
import subprocess
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_headers_conformance,
                                               response_schema_conformance)

from http_servers import HTTPService, pid_alive
from openmdao_like.http.jobs import MAX_RESTARTS
from openmdao_like.http.transfers import upload
from openmdao_like.jobs import JobStore

SLEEPER = 'http_models.PidSleeper'
#: Examples schemathesis generates per operation and generation mode.
EXAMPLES = 25


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first true value of ``predicate()``, polled until ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'{what}: not within {timeout} s')
        time.sleep(0.05)


def read_pid(pidfile: Path, timeout: float = 60.0) -> int:
    """The pid a PidSleeper wrote to ``pidfile`` (waiting for it)."""
    wait_for(pidfile.exists, timeout, f'PidSleeper writes {pidfile}')
    return int(pidfile.read_text())


def sleeper(pidfile: Path, delay: float, x: float) -> dict[str, Any]:
    return {'inputs': {'pidfile': str(pidfile), 'delay': delay, 'x': x}}


def job_store(service: HTTPService) -> JobStore:
    """The service's job store (its default: ``http.jobs.db`` beside ``http.yaml``)."""
    return JobStore('sqlite:///' + str(service.workdir / 'http.jobs.db'))


def group_alive(pgid: int) -> dict[int, str]:
    """The live processes of process group ``pgid``: their command lines."""
    found = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid and pid_alive(int(entry)):
                    with open(f'/proc/{entry}/cmdline', 'rb') as f:
                        found[int(entry)] = f.read().replace(b'\0', b' ').decode()
            except OSError:
                pass
    return found


def workers_replaced(service: HTTPService, killed: int) -> list[int]:
    """Wait until the service has 2 workers again, none of them ``killed``; their pids."""
    def replaced() -> list[int] | None:
        pids = service.worker_pids()
        return pids if len(pids) == 2 and killed not in pids else None
    return wait_for(replaced, 60, f'worker {killed} replaced')


def assert_serves(client: httpx.Client) -> None:
    """The service is healthy and runs an execution."""
    health = client.get('/health').json()
    assert health['status'] == 'ok' and health['workers'] == 2, health
    answer = client.post(f'/components/{SLEEPER}/execute', json={'inputs': {'x': 4.0}})
    assert answer.status_code == 200 and answer.json() == {'state': 'COMPLETED',
                                                           'outputs': {'y': 8.0}}, answer.text


@pytest.fixture(scope='module')
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPService]:
    """One service for the tests that leave it running (workers killed, schemathesis)."""
    svc = HTTPService(tmp_path_factory.mktemp('robust'), timeout=30).start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope='module')
def alice(service: HTTPService) -> Iterator[httpx.Client]:
    """Alice's client of `service`, logged in once: schemathesis's calls of POST /token use up
    the logins one address may try, so the tests do not log in again."""
    with closing(service.client('alice')) as client:
        yield client


# -- a worker killed mid-execution ------------------------------------------------------------
def lost_worker_error(error: dict[str, Any], pid: int) -> None:
    assert (error['module'], error['type']) == ('openmdao_like.http.executions', 'WorkerLost')
    assert f'pid {pid}' in error['message'] and 'SIGKILL' in error['message'], error


@pytest.mark.timeout(120)
def test_a_worker_killed_mid_execution_fails_that_call_and_is_replaced(
        service: HTTPService, alice: httpx.Client, tmp_path: Path) -> None:
    pidfile = tmp_path / 'pid'
    answers: list[httpx.Response] = []

    def call() -> None:
        with httpx.Client(base_url=service.url, headers=alice.headers, timeout=60) as client:
            answers.append(client.post(f'/components/{SLEEPER}/execute',
                                       json=sleeper(pidfile, 30, 1.0)))
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    pid = read_pid(pidfile)
    assert pid in service.worker_pids()
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    thread.join(20)
    assert not thread.is_alive() and time.monotonic() - killed < 10
    assert answers[0].status_code == 200
    result = answers[0].json()
    assert result['state'] == 'FAILED' and result.get('outputs') is None, result
    lost_worker_error(result['error'], pid)
    assert not pid_alive(pid)
    workers_replaced(service, pid)
    assert_serves(alice)


@pytest.mark.timeout(120)
def test_a_worker_killed_mid_job_fails_the_job_and_is_replaced(
        service: HTTPService, alice: httpx.Client, tmp_path: Path) -> None:
    pidfile = tmp_path / 'pid'
    submitted = alice.post(f'/components/{SLEEPER}/jobs', json=sleeper(pidfile, 30, 1.0))
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()['id']
    pid = read_pid(pidfile)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    job = alice.get(f'/jobs/{job_id}', params={'wait': 30}).json()
    assert time.monotonic() - killed < 10
    assert job['state'] == 'FAILED' and job['attempts'] == 1 and job.get('outputs') is None, job
    lost_worker_error(job['error'], pid)
    assert {'id': job_id, 'component': SLEEPER, 'state': 'FAILED'}.items() <= \
        next(j for j in alice.get('/jobs').json() if j['id'] == job_id).items()
    workers_replaced(service, pid)
    assert_serves(alice)
    again = alice.post(f'/components/{SLEEPER}/jobs', json={'inputs': {'x': 2.5}}).json()
    done = alice.get(f'/jobs/{again["id"]}', params={'wait': 30}).json()
    assert (done['state'], done['outputs']) == ('COMPLETED', {'y': 5.0}), done


# -- the service killed while a job runs ------------------------------------------------------
def kill_and_restart(svc: HTTPService, pidfile: Path) -> int:
    """Wait until the job wrote ``pidfile``, kill the service with SIGKILL (its workers with
    it), start it again; the pid of the worker that ran the job."""
    pid = read_pid(pidfile)
    svc.stop(signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 10, f'worker {pid} ends with its service')
    pidfile.unlink()
    svc.start()
    return pid


@pytest.mark.timeout(120)
def test_a_job_running_when_the_service_is_killed_runs_again_when_it_restarts(
        tmp_path: Path) -> None:
    svc = HTTPService(tmp_path / 'svc').start()
    try:
        pidfile = tmp_path / 'pid'
        with closing(svc.client()) as client:
            submitted = client.post(f'/components/{SLEEPER}/jobs', json=sleeper(pidfile, 3, 1.5))
            assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()['id']
        first = kill_and_restart(svc, pidfile)
        with closing(svc.client()) as client:  # (a new login: a client may well need one)
            job = client.get(f'/jobs/{job_id}', params={'wait': 30}).json()
        assert (job['state'], job['outputs'], job['attempts']) == ('COMPLETED', {'y': 3.0}, 2), \
            job
        assert read_pid(pidfile, 0) != first  # it ran again, in a worker of the new service
        store = job_store(svc)
        try:
            info = store.job(job_id, 0)
            assert (info.state.name, info.attempts, info.infra_retries) == ('COMPLETED', 2, 1)
        finally:
            store.close()
    finally:
        svc.stop()


@pytest.mark.timeout(150)
def test_a_job_lost_more_than_max_restarts_times_fails(tmp_path: Path) -> None:
    svc = HTTPService(tmp_path / 'svc').start()
    try:
        pidfile = tmp_path / 'pid'
        with closing(svc.client()) as client:
            job_id = client.post(f'/components/{SLEEPER}/jobs',
                                 json=sleeper(pidfile, 60, 1.0)).json()['id']
        for restart in range(MAX_RESTARTS):  # each time it runs again, in a new worker
            kill_and_restart(svc, pidfile)
            with closing(svc.client()) as client:
                job = client.get(f'/jobs/{job_id}').json()
            assert (job['state'], job['attempts']) == ('RUNNING', restart + 2), job
        kill_and_restart(svc, pidfile)  # lost once more than MAX_RESTARTS: it fails
        with closing(svc.client()) as client:
            job = client.get(f'/jobs/{job_id}', params={'wait': 10}).json()
            listed = next(j for j in client.get('/jobs').json() if j['id'] == job_id)
        assert (job['state'], job['attempts'], listed['state']) == \
            ('FAILED', MAX_RESTARTS + 1, 'FAILED'), job
        assert f'the service stopped {MAX_RESTARTS + 1} times while it ran' in \
            job['error']['message'], job
        assert not pidfile.exists()  # and it did not run again
        store = job_store(svc)
        try:
            assert store.job(job_id, 0).infra_retries == MAX_RESTARTS + 1
        finally:
            store.close()
    finally:
        svc.stop()


# -- SIGTERM ----------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def stoppable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPService]:
    """A service (not started) that the SIGTERM tests start and stop."""
    svc = HTTPService(tmp_path_factory.mktemp('sigterm'))
    try:
        yield svc
    finally:
        svc.stop()


def terminate(svc: HTTPService, group: bool) -> tuple[int, float, list[int], int]:
    """Start ``svc``, run one execution, send SIGTERM to the service (``group``: to its
    process group, as a terminal or systemd does); its exit status, the seconds it took, the
    worker pids it had and its pid."""
    svc.start()
    with closing(svc.client()) as client:
        assert_serves(client)
    workers = svc.worker_pids()
    assert len(workers) == 2
    proc = svc.proc
    assert proc is not None
    sent = time.monotonic()
    if group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        status = proc.wait(15)
    except subprocess.TimeoutExpired:
        svc.stop(signal.SIGKILL)
        raise AssertionError(f'SIGTERM did not stop the service in 15 s:\n{svc.log()}')
    return status, time.monotonic() - sent, workers, proc.pid


@pytest.mark.timeout(60)
@pytest.mark.parametrize('group', [False, True], ids=['service', 'process-group'])
def test_sigterm_stops_the_service_and_its_workers(stoppable: HTTPService, group: bool) -> None:
    try:
        _, took, workers, pid = terminate(stoppable, group)
        assert took < 8
        wait_for(lambda: not any(pid_alive(p) for p in workers), 5, 'the workers end')
        left: dict[int, str] = {}

        def ended() -> bool:
            left.clear()
            left.update(group_alive(pid))
            return not left
        try:  # nothing of the service is left
            wait_for(ended, 5, 'the group ends')
        except AssertionError:
            raise AssertionError(f'left 5 s after SIGTERM: {left}') from None
        log = stoppable.log()
        assert 'Application shutdown complete' in log and \
            f'Finished server process [{pid}]' in log, log
    finally:
        stoppable.stop()


@pytest.mark.timeout(60)
def test_sigterm_exit_status_is_0(stoppable: HTTPService) -> None:
    try:
        status, *_ = terminate(stoppable, group=False)
        assert status == 0
    finally:
        stoppable.stop()


# -- TLS --------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_tls(tmp_path: Path, tls_files: tuple[tuple[str, str], tuple[str, str]]) -> None:
    (cert, key), (other, _) = tls_files
    svc = HTTPService(tmp_path / 'svc', host='127.0.0.2', tls=(cert, key)).start()
    try:
        assert svc.url.startswith('https://127.0.0.2:')
        trusting = ssl.create_default_context(cafile=cert)
        with httpx.Client(base_url=svc.url, verify=trusting, timeout=60) as client:
            assert client.get('/health').json()['status'] == 'ok'
            tokens = client.post('/token', data={'username': 'alice',
                                                 'password': 'alice-password'})
            assert tokens.status_code == 200, tokens.text
            client.headers['Authorization'] = f'Bearer {tokens.json()["access_token"]}'
            assert_serves(client)
        for verify in (ssl.create_default_context(cafile=other), True):
            with pytest.raises(httpx.ConnectError, match='certificate verify failed'):
                httpx.get(f'{svc.url}/health', verify=verify, timeout=10)
        with pytest.raises(httpx.TransportError):  # plain HTTP to the TLS port
            httpx.get(svc.url.replace('https://', 'http://') + '/health', timeout=10)
    finally:
        svc.stop()


# -- schemathesis -----------------------------------------------------------------------------
#: Every operation of the OpenAPI document (checked against it below, so none is left out).
OPERATIONS = [
    'GET /health', 'POST /token', 'GET /components', 'GET /components/{name}',
    'POST /components/{name}/execute', 'POST /components/{name}/jobs',
    'POST /components/{name}/instances', 'POST /instances/{instance_id}/execute',
    'POST /instances/{instance_id}/jobs', 'DELETE /instances/{instance_id}', 'GET /jobs',
    'GET /jobs/{job_id}', 'DELETE /jobs/{job_id}', 'POST /uploads', 'PUT /uploads/{upload_id}',
    'POST /uploads/{upload_id}/complete', 'GET /files/{file_id}', 'DELETE /files/{file_id}',
    'GET /files/{file_id}/meta']


@pytest.fixture(scope='module')
def schema(service: HTTPService) -> Any:
    return schemathesis.openapi.from_url(service.url + '/openapi.json')


@pytest.fixture
def live(alice: httpx.Client, tmp_path: Path) -> dict[str, str]:
    """Path parameters naming things that exist, so that the generated calls get past the
    404 of an unknown id: an offered component, an instance, a job, an upload, a file (new for
    each test: some operations end them)."""
    name = 'remote_models.Paraboloid'
    data = tmp_path / 'data.bin'
    data.write_bytes(b'0123456789' * 10)
    instance = alice.post(f'/components/{name}/instances')
    job = alice.post(f'/components/{name}/jobs', json={'inputs': {'x': 1.0}})
    started = alice.post('/uploads', json={'filename': 'part.bin', 'size': 10,
                                           'sha256': hashlib.sha256(b'x' * 10).hexdigest()})
    assert (instance.status_code, job.status_code, started.status_code) == (201, 202, 201)
    return {'name': name, 'instance_id': instance.json()['id'], 'job_id': job.json()['id'],
            'upload_id': started.json()['id'], 'file_id': upload(alice, data)['id']}


def operation(schema: Any, label: str) -> Any:
    method, path = label.split(' ')
    return schema[path][method]


def fuzz(op: Any, mode: GenerationMode, checks: list, token: str,
         path_parameters: dict[str, str] | None = None) -> None:
    """Call ``op`` with `EXAMPLES` cases of ``mode`` (deterministic, no shrinking: failures are
    reported as found), each with alice's token, each response validated by ``checks``."""
    kwargs = {'path_parameters': path_parameters} if path_parameters else {}

    @given(case=op.as_strategy(mode, **kwargs))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate], database=None, derandomize=True)
    def run(case: Any) -> None:
        case.call_and_validate(headers={'Authorization': token}, checks=checks, timeout=60)
    try:
        run()
    except Unsatisfiable:
        if mode is not GenerationMode.NEGATIVE:
            raise  # (negative: an operation without parameters or body has no invalid call)


def test_the_schema_lists_every_operation(schema: Any) -> None:
    found = [f'{r.ok().method.upper()} {r.ok().path}' for r in schema.get_all_operations()]
    assert sorted(found) == sorted(OPERATIONS)


# status_code_conformance is not run: an operation may answer 400 for a body that is not JSON
# without declaring it (FastAPI's own answer); every other check of responses is.
CONFORMANCE = [not_a_server_error, response_schema_conformance, content_type_conformance,
               response_headers_conformance]


@pytest.mark.timeout(180)
@pytest.mark.parametrize('label', OPERATIONS)
def test_every_operation_answers_as_documented(schema: Any, alice: httpx.Client,
                                               live: dict[str, str], label: str) -> None:
    """No 5xx and every response as the OpenAPI document says, for made-up requests (valid
    and invalid), then with the ids of things that exist (to get past the 404s)."""
    op = operation(schema, label)
    token = alice.headers['Authorization']
    names = re.findall(r'{(\w+)}', op.path)
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        fuzz(op, mode, CONFORMANCE, token)
        if names:
            fuzz(op, mode, CONFORMANCE, token, {n: live[n] for n in names})


@pytest.mark.parametrize('label, path, request_args', [
    ('POST /token', '/token', {'data': {'username': 'alice'}}),
    ('POST /uploads', '/uploads', {'json': {'filename': '', 'size': 1, 'sha256': '0' * 64}}),
    ('POST /components/{name}/jobs', '/components/remote_models.Paraboloid/jobs',
     {'json': {'inputs': {'z': 1}}}),
], ids=['token', 'uploads', 'jobs'])
def test_a_refusal_422_is_as_documented(schema: Any, alice: httpx.Client, label: str,
                                        path: str, request_args: dict[str, Any]) -> None:
    method, template = label.split(' ')
    declared = schema.raw_schema['paths'][template][method.lower()]['responses']['422']
    assert declared['content']['application/json']['schema'] == \
        {'$ref': '#/components/schemas/Invalid'}
    answer = alice.request(method, path, **request_args)
    assert answer.status_code == 422
    detail = answer.json()['detail']
    assert isinstance(detail, str) and detail, answer.text  # a message naming what is wrong
    invalid = alice.post(PARABOLOID, json=[1])  # FastAPI's own 422: a list of problems
    assert invalid.status_code == 422 and isinstance(invalid.json()['detail'], list)


# -- bodies schemathesis does not make --------------------------------------------------------
PARABOLOID = '/components/remote_models.Paraboloid/execute'
NESTED = 600  # levels: far fewer than the JSON parser accepts


@pytest.mark.timeout(60)
@pytest.mark.parametrize('path, body, status', [
    (PARABOLOID, '{"inputs": {"x": ' + '[' * 100_000 + ']' * 100_000 + '}}', 400),
    (PARABOLOID, '{"inputs": {"x": ' + '9' * 5000 + '}}', 400),
    (PARABOLOID, '{"inputs": {"x": ' + '9' * 400 + '}}', 422),
    (PARABOLOID, '{"inputs": {"x": NaN}}', 422),
    (PARABOLOID, '{"inputs": {"x": {"__ndarray__": [1], "dtype": "float64", "shape": [' +
     '9' * 30 + ']}}}', 422),
    (PARABOLOID, '{"inputs": {"\\ud800": 1}}', 422),
    (PARABOLOID, '{"inputs": {"x": ' + '[' * NESTED + ']' * NESTED + '}}', 422),
    (PARABOLOID, '{"inputs": {"x": ' + '{"a": ' * NESTED + '1' + '}' * NESTED + '}}', 422),
    (PARABOLOID, '{"inputs": {"x": {"__complex__": [' + '9' * 400 + ', 1]}}}', 422),
    (PARABOLOID, '{"timeout": NaN}', 422),
    (PARABOLOID, '{"inputs": Infinity}', 422),
    ('/uploads', '{"filename": "a", "size": -Infinity, "sha256": "' + '0' * 64 + '"}', 422),
], ids=['nested-100000', 'int-5000-digits', 'int-400-digits', 'nan', 'shape-overflow',
        'surrogate-name', 'nested-lists', 'nested-objects', 'complex-overflow', 'nan-timeout',
        'infinite-inputs', 'infinite-size'])
def test_odd_bodies_are_refused_with_4xx(service: HTTPService, alice: httpx.Client, path: str,
                                         body: str, status: int) -> None:
    # a fresh connection each: after a 500 the server closes the one it answered on
    with httpx.Client(base_url=service.url, headers=alice.headers, timeout=30) as client:
        answer = client.post(path, content=body, headers={'Content-Type': 'application/json'})
    assert answer.status_code == status, answer.text
    with httpx.Client(base_url=service.url, timeout=30) as client:
        assert client.get('/health').json()['status'] == 'ok'
