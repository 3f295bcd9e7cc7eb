"""The HTTP component service without its web layer: accounts, components, executions.

`Service` holds what every request uses: the users and tokens (`users`, `tokens`), the offered
components' interfaces (described once by a worker at start), the instances of clients, the
worker processes (`executions`), the files (`transfers.FileStore`) and the asynchronous jobs
(`jobs.ServiceJobs`, in the issue-9 job store). Refusals are `ServiceError` with the HTTP status
to answer; `openmdao_like.http.app` maps each to its endpoint.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..cases import OK
from ..errors import ConfigError, RemoteError
from .config import ServiceConfig
from .executions import FAILURE, PATH_KEY, Call, Executions
from .interfaces import Instances, Interface
from .jobs import ServiceJobs
from .tokens import LoginGuard, TokenError, Tokens
from .transfers import FileStore
from .users import User, Users
from .wire import FILE_KEY, ServiceError, failure

logger = logging.getLogger(__name__)

__all__ = ['Service', 'DESCRIBE_TIMEOUT']

#: Seconds the workers have to describe the offered components at start.
DESCRIBE_TIMEOUT = 120.0


class Service:
    """One running service (see the module docstring); `start` before use, `stop` after."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self.tokens = Tokens(config.secret(), issuer=f'openmdao_like.http:{config.path}')
        self.guard = LoginGuard()
        self.files = FileStore(config.files_dir / 'transfers', max_bytes=config.max_upload)
        self.instances = Instances()
        self.interfaces: dict[str, Interface] = {}
        self.executions: Executions | None = None
        self.jobs: Any = None
        self._users: tuple[float, Users] | None = None
        self.started = False

    # -- life -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers, describe the components (`ConfigError` naming one that cannot be
        built) and take up the jobs a previous run of the service left unfinished (they run
        once the executions are attached to the web server's loop)."""
        if self.started:
            return
        names = tuple(c.name for c in self.config.components)
        self.executions = Executions(names, self.config.files_dir / 'components',
                                     self.config.workers)
        try:
            self.interfaces = self._describe(names)
            self.jobs = ServiceJobs(self)
            self.jobs.recover()
        except BaseException:
            self.stop()
            raise
        self.started = True
        logger.info('offering %d component(s) with %d worker(s)', len(names),
                    self.executions.n_workers)

    def _describe(self, names: tuple[str, ...]) -> dict[str, Interface]:
        found = {}
        for name in names:
            try:
                outcome = self.executions.run(('describe', (name,)), DESCRIBE_TIMEOUT)
            except Exception as exc:  # (its import or constructor killed the worker, ...)
                raise ConfigError(f'{self.config.path}: component {name} cannot be offered: '
                                  f'{exc}') from exc
            if outcome.status != OK:
                info = outcome.outputs[FAILURE]
                raise ConfigError(f'{self.config.path}: component {name} cannot be offered: '
                                  f'{info["type"]}: {info["message"]}')
            spec = outcome.outputs[name]
            found[name] = Interface(name, spec['description'], spec['variables'])
        return found

    def stop(self) -> None:
        """Stop the job writer (jobs still running stay RUNNING: the next start runs them
        again), then the workers."""
        if self.jobs is not None:
            self.jobs.close()
        if self.executions is not None:
            self.executions.close()

    # -- accounts -------------------------------------------------------------------------------
    def users(self) -> Users:
        """The users file, read again when it changed (``http adduser`` while serving)."""
        path = self.config.users_file
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            mtime = -1
        if self._users is None or self._users[0] != mtime:
            self._users = (mtime, Users(path))
        return self._users[1]

    def login(self, name: str, password: str, address: str) -> dict[str, Any]:
        """Tokens for ``name`` with ``password``; 401 when wrong, 429 when locked out."""
        refusal = self.guard.refusal(name, address)
        if refusal:
            raise ServiceError(429, refusal)
        user = self.users().check(name, password)
        if user is None:
            self.guard.failed(name)
            logger.warning('failed login of %r from %s', name, address)
            raise ServiceError(401, 'wrong user name or password')
        self.guard.succeeded(name)
        return self._tokens(user, refresh=True)

    def refresh(self, token: str) -> dict[str, Any]:
        """A new access token for a refresh token (its user must still exist)."""
        try:
            user = self.tokens.check(token, 'refresh')
        except TokenError as exc:
            raise ServiceError(401, str(exc)) from None
        user = self.users().user(user.name)
        if user is None:
            raise ServiceError(401, 'the user of this token no longer exists')
        return self._tokens(user, refresh=False)

    def _tokens(self, user: User, refresh: bool) -> dict[str, Any]:
        answer = {'access_token': self.tokens.make(user, 'access'), 'token_type': 'bearer',
                  'expires_in': int(self.tokens.ttl['access'])}
        if refresh:
            answer['refresh_token'] = self.tokens.make(user, 'refresh')
        return answer

    def authenticate(self, token: str | None) -> User:
        """The user of an access token; 401 saying what is wrong."""
        if not token:
            raise ServiceError(401, 'not authenticated: send "Authorization: Bearer TOKEN" '
                                    '(POST /token gives one)')
        try:
            return self.tokens.check(token, 'access')
        except TokenError as exc:
            raise ServiceError(401, str(exc)) from None

    # -- components -----------------------------------------------------------------------------
    def offered(self, user: User) -> list[dict[str, str]]:
        """The components ``user`` may use."""
        return [{'name': c.name, 'description': self.interfaces[c.name].description}
                for c in self.config.components if c.allows(user.roles)]

    def interface(self, user: User, name: str) -> Interface:
        """The interface of component ``name``; 404 when not offered, 403 when ``user`` may
        not use it."""
        exposed = self.config.component(name)
        if exposed is None:
            raise ServiceError(404, f'no component {name!r} is offered here (GET /components '
                                    f'lists them)')
        if not exposed.allows(user.roles):
            raise ServiceError(403, f'user {user.name!r} may not use {name} (it needs one of '
                                    f'the roles {", ".join(exposed.roles)})')
        return self.interfaces[name]

    # -- executions -----------------------------------------------------------------------------
    def timeout(self, requested: float | None) -> float:
        """The timeout of a call: ``requested`` (at most the service's), else the service's."""
        limit = self.config.timeout
        if requested is None:
            return limit
        if requested > limit:
            raise ServiceError(422, f'timeout: at most {limit:g} s on this service, got '
                                    f'{requested:g}')
        return requested

    def call(self, interface: Interface, prepared: tuple[dict[str, Any], dict[str, Any]],
             timeout: float) -> Call:
        """Start one execution of ``interface``'s component with inputs `prepare` made."""
        return self.executions.submit(('run', interface.name, *prepared), timeout)

    def prepare(self, user: User, interface: Interface, values: dict[str, Any]
                ) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
        """``values`` as a worker takes them: ``(inputs, files)``, files as ``(path on
        disk, file name)``; 422 naming a File input whose file is not the user's."""
        files, inputs = {}, {}
        for name, value in values.items():
            if name in interface.files and value is not None:
                try:
                    path, meta = self.files.path(user.name, value)
                except ServiceError:
                    raise ServiceError(422, f'{interface.name}: input {name!r}: no file '
                                            f'{value!r} (upload it first: POST /uploads)'
                                       ) from None
                files[name] = (str(path), meta['filename'])
            else:
                inputs[name] = value
        return inputs, files

    def settle(self, user: User, future: concurrent.futures.Future) -> dict[str, Any]:
        """The result of an ended execution: ``{'state': 'COMPLETED', 'outputs'}`` or
        ``{'state': 'FAILED', 'error'}`` (`wire.failure`); File outputs become files of the
        user's to download."""
        try:
            outcome = future.result(0)
        except Exception as exc:  # the service's reason (timeout, lost, ...): no traceback
            return {'state': 'FAILED', 'error': dict(failure(exc), traceback='')}
        if outcome.status != OK:
            return {'state': 'FAILED', 'error': (outcome.outputs or {}).get(FAILURE) or
                    {'module': 'openmdao_like.errors', 'type': 'RemoteError',
                     'message': 'the execution failed', 'traceback': outcome.error or ''}}
        outputs = outcome.outputs
        for name, value in outputs.items():
            if isinstance(value, dict) and PATH_KEY in value:
                try:
                    meta = self.files.adopt(user.name, Path(value[PATH_KEY]),
                                            value['filename'])
                except (ServiceError, OSError) as exc:  # (too big, gone): the run failed
                    return {'state': 'FAILED', 'error': dict(failure(RemoteError(
                        f'output {name!r}: its file cannot be kept: {exc}')), traceback='')}
                outputs[name] = {FILE_KEY: meta['id'], **{k: v for k, v in meta.items()
                                                           if k != 'id'}}
        return {'state': 'COMPLETED', 'outputs': outputs}

    @staticmethod
    def has_files(future: concurrent.futures.Future) -> bool:
        """Whether an ended execution has File outputs (`settle` then copies files)."""
        if future.exception() is not None:
            return False
        outputs = future.result().outputs or {}
        return any(isinstance(v, dict) and PATH_KEY in v for v in outputs.values())

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers."""
        ex = self.executions
        ok = ex is not None and not ex.broken
        return {'status': 'ok' if ok else 'broken', 'workers': ex.n_workers if ex else 0,
                'components': len(self.interfaces), 'time': time.time(),
                **({} if ok or ex is None else {'error': ex.broken})}
