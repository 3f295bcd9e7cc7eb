"""`HTTPComponent`: a component served by an HTTP component service, used like a local one.

::

    aero = HTTPComponent('https://partner:8443', 'aero_plugin.Aero', username='alice',
                         password=..., verify='ca.pem')
    top.add('aero', aero)
    top.connect('geom.span', 'aero.span')    # units and bounds come from the server

Its variables (types, units, bounds, descriptions) come from the service, which keeps an
instance of the component for it: each execution sends only the inputs that changed since the
last (one request; ``execution='async'``: a job submitted, then long-polled). File inputs are
uploaded and File outputs downloaded into the component's directory, checked by SHA-256. A
failure on the server is raised here with its own type when that is a builtin or openmdao_like
error (else `RemoteError`), with the remote traceback. An expired access token is refreshed; an
instance the service lost (a restart) is made again and sent every input set.

Credentials: ``username`` and ``password``, or a ``token``, or the environment variables
``OML_HTTP_TOKEN`` or ``OML_HTTP_USERNAME`` and ``OML_HTTP_PASSWORD``. A copy sent to the workers
of a parallel DOE logs in again (one connection and instance per worker); a saved model records
the URL and the component's name, never a password or a token: a loaded one logs in from the
environment.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
import weakref
from typing import Any

from .. import tree
from ..component import Component
from ..errors import ConfigError, RemoteError, name_component
from ..extras import require
from ..persistence.extensions import saving_model
from ..remote.proxy import _same, _snapshot, build_variable
from ..variables.file import File, FileRef
from .wire import FILE_KEY, ServiceError, WireError, decode, dumps, raise_failure

logger = logging.getLogger(__name__)

__all__ = ['HTTPComponent', 'TOKEN_VARIABLE', 'USERNAME_VARIABLE', 'PASSWORD_VARIABLE']

TOKEN_VARIABLE = 'OML_HTTP_TOKEN'
USERNAME_VARIABLE, PASSWORD_VARIABLE = 'OML_HTTP_USERNAME', 'OML_HTTP_PASSWORD'
#: Seconds added to an execution's timeout for the HTTP request carrying it.
REQUEST_MARGIN = 30.0
#: Longest long poll of a job, seconds (the service allows 60).
POLL_WAIT = 30.0
_EXECUTIONS = ('sync', 'async')


class HTTPComponent(Component):
    """A proxy for component ``name`` of the service at ``url`` (see the module docstring).

    Parameters
    ----------
    url : str
        The service, e.g. ``'https://partner:8443'``.
    name : str
        Dotted class name of the component, as the service offers it.
    username, password : str, optional
        Credentials to log in with.
    token : str, optional
        An access token instead.
    verify : bool or str
        TLS: check the server's certificate against the system's CAs (True), a CA file (str), or
        not at all (False).
    timeout : float, optional
        Longest an execution may take, seconds (default: the service's limit).
    execution : {'sync', 'async'}
        One request per execution, or a job submitted and long-polled (executions longer than
        proxies allow a request to take).
    """

    def __init__(self, url: str, name: str, username: str | None = None,
                 password: str | None = None, token: str | None = None,
                 verify: bool | str = True, timeout: float | None = None,
                 execution: str = 'sync'):
        super().__init__()
        if not isinstance(url, str) or not url.startswith(('http://', 'https://')):
            raise ConfigError(f'HTTPComponent: url must start with http:// or https://, got '
                              f'{url!r}')
        if execution not in _EXECUTIONS:
            raise ConfigError(f'HTTPComponent({url!r}, {name!r}): execution must be one of '
                              f'{", ".join(_EXECUTIONS)}, got {execution!r}')
        if timeout is not None and (isinstance(timeout, bool) or
                                    not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ConfigError(f'HTTPComponent({url!r}, {name!r}): timeout must be a number > 0 '
                              f'or None, got {timeout!r}')
        self.url, self.typname = url.rstrip('/'), name
        self.verify, self.timeout, self.execution = verify, timeout, execution
        self._credentials = _credentials(username, password, token, f'{url} {name}')
        self._refresh: str | None = None
        self._http = self._client()
        self._login()
        self._instance = ''
        self._sent: dict[str, Any] = {}
        self._create_instance(first=True)

    # -- connection -----------------------------------------------------------------------------
    def _client(self) -> Any:
        httpx = require('httpx', 'HTTPComponent', 'http')
        verify: Any = self.verify
        if isinstance(verify, str):
            if not os.path.isfile(verify):
                raise ConfigError(f'HTTPComponent({self.url!r}, {self.typname!r}): verify: no '
                                  f'CA file {verify!r}')
            verify = ssl.create_default_context(cafile=verify)
        limit = None if self.timeout is None else self.timeout + REQUEST_MARGIN
        client = httpx.Client(base_url=self.url, verify=verify,
                              timeout=httpx.Timeout(limit, connect=30.0))
        weakref.finalize(self, client.close)  # (a proxy dropped unreleased closes its sockets)
        return client

    @property
    def remote_location(self) -> str:
        """The service's URL."""
        return self.url

    def _where(self) -> str:
        return self.get_pathname() or self.name or f'HTTPComponent {self.typname}'

    def _login(self) -> None:
        """Get an access token (and a refresh token) with the credentials."""
        kind, first, second = self._credentials
        if kind == 'token':
            self._http.headers['Authorization'] = f'Bearer {first}'
            return
        answer = self._request('POST', '/token', data={'username': first, 'password': second},
                               auth=False)
        self._http.headers['Authorization'] = f'Bearer {answer["access_token"]}'
        self._refresh = answer.get('refresh_token')

    def _request(self, method: str, path: str, auth: bool = True, **kwargs: Any) -> Any:
        """One request; its JSON answer decoded. A 401 with a refresh token at hand refreshes
        the access token and tries once more; other refusals raise `ServiceError`."""
        import httpx
        try:
            answer = self._http.request(method, path, **kwargs)
            if answer.status_code == 401 and auth and self._refresh:
                self._renew()
                answer = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RemoteError(f'{self._where()}: {method} {self.url}{path}: {exc}') from exc
        if answer.status_code >= 400:
            try:
                detail = answer.json().get('detail')
            except (ValueError, AttributeError):
                detail = answer.text[:500]
            raise ServiceError(answer.status_code, f'{self._where()}: {method} {path}: '
                                                   f'{answer.status_code} {detail}')
        if answer.status_code == 204:
            return None
        try:
            return decode(json.loads(answer.content), f'{self._where()}: the answer')
        except ValueError as exc:
            raise WireError(f'{self._where()}: {method} {path}: not a JSON answer: {exc}'
                            ) from None

    def _renew(self) -> None:
        """A new access token from the refresh token (or a new login when it expired)."""
        answer = self._http.post('/token', data={'grant_type': 'refresh_token',
                                                 'refresh_token': self._refresh})
        if answer.status_code == 200:
            self._http.headers['Authorization'] = f'Bearer {answer.json()["access_token"]}'
        else:
            self._login()

    def _create_instance(self, first: bool = False) -> None:
        """A new instance on the service; the first time, the variables are made from it."""
        info = self._request('POST', f'/components/{self.typname}/instances')
        self._instance = info['id']
        if first:
            for name, spec in info['variables'].items():
                self.add_trait(name, build_variable(spec, f'{self.typname}.{name}'))
                if spec['metadata'].get('iotype') == 'out' or spec['value'] is not None:
                    self.__dict__[name] = spec['value']
            self._var_cache = None
        self._sent = {n: _snapshot(spec['value']) for n, spec in info['variables'].items()
                      if spec['metadata'].get('iotype') == 'in'}

    # -- running --------------------------------------------------------------------------------
    def run(self, force: bool = False, case_uuid: Any = None) -> None:
        """Move connected inputs in, then execute on the service (see `execute`)."""
        for xfer in self._in_xfers:
            xfer()
        try:
            self.execute()
        except Exception as exc:
            name_component(exc, self._where(), f'HTTP {self.typname}')
            raise
        self.exec_count += 1

    def execute(self) -> None:
        """Send the changed inputs, run on the service, set the outputs: one request (sync),
        or a job submitted and long-polled (async)."""
        body = {'inputs': self._changed(), 'timeout': self.timeout}
        try:
            result = self._execute(body)
        except ServiceError as exc:
            if exc.status != 404 or 'no instance' not in exc.message:
                raise
            logger.warning('%s: the service lost its instance (restarted?); making another',
                           self._where())
            self._create_instance()
            result = self._execute({'inputs': self._changed(), 'timeout': self.timeout})
        if result['state'] != 'COMPLETED':
            self._sent.clear()  # (what the service holds is not known for sure: send all)
            error = result.get('error') or {'module': 'openmdao_like.errors',
                                            'type': 'RemoteError',
                                            'message': f'the job ended {result["state"]}'}
            raise_failure(error, self._where())
        store = self.__dict__
        for name, value in result['outputs'].items():
            if isinstance(value, dict) and FILE_KEY in value:
                value = self._download(name, value)
            store[name] = value

    def _execute(self, body: dict[str, Any]) -> dict[str, Any]:
        path = f'/instances/{self._instance}'
        content = dumps(body)
        headers = {'Content-Type': 'application/json'}
        if self.execution == 'sync':
            return self._request('POST', f'{path}/execute', content=content, headers=headers)
        job = self._request('POST', f'{path}/jobs', content=content, headers=headers)
        try:
            while job['state'] not in ('COMPLETED', 'FAILED', 'CANCELLED'):
                job = self._request('GET', f'/jobs/{job["id"]}', params={'wait': POLL_WAIT})
        except BaseException:
            if job['state'] not in ('COMPLETED', 'FAILED', 'CANCELLED'):
                self._cancel(job['id'])
            raise
        return job

    def _cancel(self, job_id: str) -> None:
        try:
            self._request('DELETE', f'/jobs/{job_id}')
        except Exception as exc:  # (the interruption is what the caller must see)
            logger.warning('%s: job %s could not be cancelled: %s', self._where(), job_id, exc)

    def _changed(self) -> dict[str, Any]:
        """The inputs whose value differs from what the service holds (files: uploaded)."""
        store, sent, changed = self.__dict__, self._sent, {}
        for name, var in tree.variables(self).items():
            if var.iotype != 'in':
                continue
            value = store.get(name, var.default_value)
            if isinstance(var, File):
                if value is not None:  # (a file's content may change under the same name)
                    changed[name] = {FILE_KEY: self._upload(name, value)}
                elif name in sent and sent[name] is not None:
                    changed[name] = None
                sent[name] = None
            elif name not in sent or not _same(value, sent[name]):
                changed[name] = value
                sent[name] = _snapshot(value)
        return changed

    def _upload(self, name: str, ref: FileRef) -> str:
        from .transfers import upload
        try:
            return upload(self._http, ref.abspath(), os.path.basename(ref.path))['id']
        except ServiceError as exc:
            raise ServiceError(exc.status, f'{self._where()}.{name}: {exc}') from None

    def _download(self, name: str, info: dict[str, Any]) -> FileRef:
        from .transfers import download
        var = tree.variables(self)[name]
        ref = FileRef(var.local_path or info['filename'], self, binary=True)
        try:
            download(self._http, info[FILE_KEY], ref.abspath())
        except ServiceError as exc:
            raise ServiceError(exc.status, f'{self._where()}.{name}: {exc}') from None
        return ref

    # -- lifetime -------------------------------------------------------------------------------
    def release(self) -> None:
        """End the instance on the service and close the connection."""
        if self._http is None:
            return
        try:
            self._request('DELETE', f'/instances/{self._instance}')
        except Exception as exc:
            logger.debug('%s: instance not ended: %s', self._where(), exc)
        self._http.close()
        self._http = None

    def pre_delete(self) -> None:
        """Release the instance when the model is discarded (classic API)."""
        self.release()

    # -- pickling: the service and the inputs; credentials only when not saving a model --------
    def settings(self) -> dict[str, Any]:
        """What a saved model records to make this proxy again (never a credential)."""
        return {'url': self.url, 'name': self.typname, 'verify': self.verify,
                'timeout': self.timeout, 'execution': self.execution}

    def __reduce_ex__(self, protocol: Any) -> tuple:
        credentials = None if saving_model() else self._credentials
        inputs = {n: self.__dict__[n] for n, v in tree.variables(self).items()
                  if v.iotype == 'in' and n in self.__dict__}
        state = {'name': self.name, 'parent': self.parent, 'directory': self.directory,
                 'inputs': inputs}
        return _unpickled, (self.settings(), credentials), state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name, self.parent = state['name'], state['parent']
        self.directory = state['directory']
        for name, value in state['inputs'].items():
            setattr(self, name, value)


def _unpickled(settings: dict[str, Any], credentials: tuple | None) -> HTTPComponent:
    """An `HTTPComponent` made again from its settings (logged in anew)."""
    kind, first, second = credentials or (None, None, None)
    if kind == 'token':
        return HTTPComponent(**settings, token=first)
    return HTTPComponent(**settings, username=first, password=second)


def _credentials(username: str | None, password: str | None, token: str | None,
                 what: str) -> tuple[str, str, str | None]:
    """``('token', token, None)`` or ``('password', username, password)``, from the arguments
    or the environment; `ConfigError` when there are none."""
    if token:
        return 'token', token, None
    if username and password is not None:
        return 'password', username, password
    if username or password:
        raise ConfigError(f'HTTPComponent {what}: give both username and password (or a '
                          f'token)')
    env = os.environ
    if env.get(TOKEN_VARIABLE):
        return 'token', env[TOKEN_VARIABLE], None
    if env.get(USERNAME_VARIABLE) and env.get(PASSWORD_VARIABLE) is not None:
        return 'password', env[USERNAME_VARIABLE], env[PASSWORD_VARIABLE]
    raise ConfigError(f'HTTPComponent {what}: no credentials: give username and password, or '
                      f'token, or set {TOKEN_VARIABLE}, or {USERNAME_VARIABLE} and '
                      f'{PASSWORD_VARIABLE} (a saved model never holds them)')


def describe_node(describer: Any, proxy: HTTPComponent) -> dict[str, Any]:
    """An `HTTPComponent`'s YAML node: class, ``http`` (its settings), input values."""
    where = tree.where(proxy)
    node: dict[str, Any] = {'class': describer.class_name(type(proxy), where),
                            'http': proxy.settings()}
    values = {}
    for name, var in tree.variables(proxy).items():
        if var.iotype == 'in' and not isinstance(var, File):
            describer.class_name(type(var), f'{where}.{name}')
            values[name] = describer.value(proxy.__dict__.get(name), f'{where}.{name}')
    if values:
        node['variables'] = values
    return node


def build_node(builder: Any, node: dict[str, Any], where: str, existing: Any) -> HTTPComponent:
    """The `HTTPComponent` a YAML node describes, logged in from the environment (the builder
    then sets the saved input values)."""
    settings = node.get('http')
    keys = {'url', 'name', 'verify', 'timeout', 'execution'}
    if not isinstance(settings, dict) or not {'url', 'name'} <= set(settings) <= keys:
        raise ConfigError(f'{builder.source}: {where or "<top>"}: http must be a mapping with '
                          f'url and name (and verify, timeout, execution), got {settings!r}')
    if isinstance(existing, HTTPComponent):
        existing.release()
    started = time.monotonic()
    proxy = HTTPComponent(**settings)
    logger.debug('%s: connected to %s in %.3f s', where, settings['url'],
                 time.monotonic() - started)
    return proxy
