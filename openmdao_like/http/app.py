"""The HTTP component service's endpoints (FastAPI), over `service.Service`.

::

    GET    /health                           is it up (no login)
    POST   /token                            OAuth2 password flow, or grant_type=refresh_token
    GET    /components                       the components this user may use
    GET    /components/{name}                one's interface: variables, units, bounds, ...
    POST   /components/{name}/execute        run it once with {inputs, timeout}: the result
    POST   /components/{name}/jobs           the same, asynchronous: a job (202)
    POST   /components/{name}/instances      an instance keeping its inputs between calls
    POST   /instances/{id}/execute           run it with the inputs that changed
    POST   /instances/{id}/jobs              the same, asynchronous
    DELETE /instances/{id}                   end it
    GET    /jobs, /jobs/{id}?wait=S          jobs; one, long-polled until it ends or S seconds
    DELETE /jobs/{id}                        cancel it (its worker is stopped)
    /uploads, /files                         files in chunks with SHA-256 (`transfers`)

OpenAPI at ``/openapi.json``, Swagger UI at ``/docs``. A result is ``{"state": "COMPLETED",
"outputs": {...}}`` or ``{"state": "FAILED", "error": {"module", "type", "message",
"traceback"}}``: a component that fails is a result, not an HTTP error; refusals are 4xx with a
``detail`` naming what was wrong.
"""

import asyncio  # (no `from __future__ import annotations`: FastAPI reads the annotations)
import contextlib
from typing import Annotated, Any, AsyncIterator, Literal

from fastapi import Body, Depends, FastAPI, Form, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel, Field

from .._version import __version__
from .config import ServiceConfig
from .interfaces import Interface
from .service import Service
from .transfers import router as files_router
from .users import User
from .wire import ServiceError, dumps

__all__ = ['create_app', 'MAX_BODY', 'MAX_WAIT']

#: Largest request body accepted, bytes (files go in chunks through /uploads).
MAX_BODY = 64 << 20
#: Longest long poll of a job, seconds.
MAX_WAIT = 60.0

_HEX32 = r'^[0-9a-f]{32}$'
_NAME = r'^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$'


class Refusal(BaseModel):
    """Why a request is refused: what was wrong, named."""

    detail: str


class Invalid(BaseModel):
    """Why a request is refused as invalid (422): a message naming the input, or FastAPI's
    list of problems with the request's parameters ``{loc, msg, type}``."""

    detail: str | list[dict[str, Any]]


#: The refusals every endpoint may answer, declared once for the OpenAPI document.
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {'model': Refusal, 'description': 'not logged in: no token, an expired or forged one'},
    403: {'model': Refusal, 'description': 'your roles do not open this component'},
    404: {'model': Refusal, 'description': 'no such component, instance, job or file of yours'},
    413: {'model': Refusal, 'description': 'the request body or the file is too large'},
    422: {'model': Invalid, 'description': 'an input or parameter is not accepted (named)'},
    429: {'model': Refusal, 'description': 'too many failed logins: locked for a while'},
}


class Failure(BaseModel):
    """An exception raised by the component (or why its execution ended early)."""

    module: str
    type: str
    message: str
    traceback: str


class Result(BaseModel):
    """How one execution ended: outputs, or the error."""

    state: Literal['COMPLETED', 'FAILED']
    outputs: dict[str, Any] | None = None
    error: Failure | None = None


class Job(BaseModel):
    """An asynchronous execution; outputs or error once it ended."""

    id: str
    component: str | None
    state: Literal['READY', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED']
    created: float | None = None
    started: float | None = None
    finished: float | None = None
    attempts: int | None = None
    outputs: dict[str, Any] | None = None
    error: Failure | None = None


class JobSummary(BaseModel):
    """A job in a listing."""

    id: str
    component: str | None
    state: str
    created: float | None = None
    finished: float | None = None


class Variable(BaseModel):
    """A variable: its type, default, metadata (iotype, units, low, high, desc, ...), value."""

    type: str
    default: Any = None
    metadata: dict[str, Any]
    value: Any = None


class ComponentInterface(BaseModel):
    """An offered component and its variables."""

    name: str
    description: str
    variables: dict[str, Variable]


class InstanceInterface(ComponentInterface):
    """A new instance: its id, and its component's interface."""

    id: str


class ComponentSummary(BaseModel):
    """An offered component in a listing."""

    name: str
    description: str


class Tokens(BaseModel):
    """OAuth2 token answer."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str | None = None


class Health(BaseModel):
    """Whether the service can run executions."""

    status: Literal['ok', 'broken']
    workers: int
    components: int
    time: float
    error: str | None = None


class Execution(BaseModel):
    """Inputs to set (name -> value; arrays as {"__ndarray__", "dtype", "shape"}, files as
    {"__file__": id}) and the longest the execution may take, seconds."""

    inputs: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(None, gt=0, allow_inf_nan=False)


def _json(value: Any, status: int = 200) -> Response:
    """A JSON response of the recorders' encoding (arrays tagged, NaN kept)."""
    return Response(dumps(value), status_code=status, media_type='application/json')


def create_app(config: ServiceConfig) -> FastAPI:
    """The application serving ``config`` (`ConfigError` at once when it has no usable
    secret); its service (``app.state.service``) starts with the application's lifespan,
    unless it was started before."""
    service = Service(config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not service.started:
            await asyncio.to_thread(service.start)
        service.executions.attach(asyncio.get_running_loop())
        try:
            yield
        finally:
            service.executions.detach()
            await asyncio.to_thread(service.stop)

    app = FastAPI(title='openmdao_like component service', version=__version__,
                  lifespan=lifespan, description=__doc__.split('\n\n')[0], responses=REFUSALS)
    app.state.service = service
    app.add_middleware(_BodyLimit, limit=MAX_BODY)
    app.add_exception_handler(ServiceError, _refused)
    app.add_exception_handler(RequestValidationError, _invalid)
    current_user = _Bearer(service)
    Who = Annotated[User, Depends(current_user)]
    Name = Annotated[str, Path(pattern=_NAME, max_length=200,
                               description='dotted class name of the component')]
    Id = Annotated[str, Path(pattern=_HEX32)]
    Body_ = Annotated[Execution, Body()]

    async def execute(user: User, interface: Interface, prepared: tuple,
                      timeout: float) -> Response:
        call = service.call(interface, prepared, timeout)
        try:
            await service.executions.wait(call)
        except asyncio.CancelledError:  # the client went away: so does the execution
            service.executions.cancel(call)
            raise
        if service.has_files(call.future):  # (copies and hashes files: not in the loop)
            return _json(await asyncio.to_thread(service.settle, user, call.future))
        return _json(service.settle(user, call.future))

    async def submit(user: User, interface: Interface, values: dict[str, Any],
                     prepared: tuple, timeout: float) -> Response:
        view = await asyncio.to_thread(service.jobs.submit, user, interface, values, timeout,
                                       prepared)
        return _json(view, 202)

    def checked(user: User, interface: Interface, body: Execution,
                values: dict[str, Any] | None = None) -> tuple[dict[str, Any], tuple, float]:
        """The inputs of a call (``values`` updated with the body's, checked, in a copy), as
        a worker takes them (`Service.prepare`), and its timeout; 422 naming what is refused,
        before anything changes."""
        timeout = service.timeout(body.timeout)
        values = dict(values or {})
        interface.check(values, body.inputs)
        return values, service.prepare(user, interface, values), timeout

    @app.get('/health', response_model=Health, tags=['service'])
    async def health() -> Any:
        """Whether the service is up and can run executions (no login needed)."""
        return service.health()

    @app.post('/token', response_model=Tokens, tags=['accounts'])
    async def token(request: Request,
                    grant_type: Annotated[Literal['password', 'refresh_token'], Form()] =
                    'password',
                    username: Annotated[str | None, Form(max_length=200)] = None,
                    password: Annotated[str | None, Form(max_length=2048)] = None,
                    refresh_token: Annotated[str | None, Form(max_length=4096)] = None) -> Any:
        """Log in (OAuth2 password flow): an access token and a refresh token; or, with
        ``grant_type=refresh_token``, a new access token."""
        if grant_type == 'refresh_token':
            if not refresh_token:
                raise ServiceError(422, 'grant_type refresh_token needs refresh_token')
            return service.refresh(refresh_token)
        if not username or password is None:
            raise ServiceError(422, 'grant_type password needs username and password')
        address = request.client.host if request.client else 'unknown'
        return await asyncio.to_thread(service.login, username, password, address)

    @app.get('/components', response_model=list[ComponentSummary], tags=['components'])
    async def components(user: Who) -> Any:
        """The components you may use."""
        return service.offered(user)

    @app.get('/components/{name}', response_model=ComponentInterface, tags=['components'])
    async def component(user: Who, name: Name) -> Any:
        """A component's interface: each variable's type, default, value and metadata (iotype,
        units, low, high, desc, ...)."""
        return _json(service.interface(user, name).describe())

    @app.post('/components/{name}/execute', response_model=Result, tags=['executions'])
    async def execute_component(user: Who, name: Name, body: Body_) -> Any:
        """Run the component once with these inputs (the others at their initial values)."""
        interface = service.interface(user, name)
        _, prepared, timeout = checked(user, interface, body)
        return await execute(user, interface, prepared, timeout)

    @app.post('/components/{name}/jobs', response_model=Job, status_code=202,
              tags=['executions'])
    async def submit_component(user: Who, name: Name, body: Body_) -> Any:
        """Run the component once, asynchronously: the job (poll ``GET /jobs/{id}``)."""
        interface = service.interface(user, name)
        return await submit(user, interface, *checked(user, interface, body))

    @app.post('/components/{name}/instances', response_model=InstanceInterface,
              status_code=201, tags=['instances'])
    async def create_instance(user: Who, name: Name) -> Any:
        """An instance of the component: it keeps the inputs you set, so that each call sends
        only those that changed."""
        interface = service.interface(user, name)
        instance = service.instances.create(user.name, interface)
        return _json({'id': instance.id, **interface.describe()}, 201)

    @app.post('/instances/{instance_id}/execute', response_model=Result, tags=['instances'])
    async def execute_instance(user: Who, instance_id: Id, body: Body_) -> Any:
        """Set these inputs of the instance, run it: the result."""
        instance = service.instances.get(user.name, instance_id)
        values, prepared, timeout = checked(user, instance.interface, body, instance.values)
        instance.values = values
        return await execute(user, instance.interface, prepared, timeout)

    @app.post('/instances/{instance_id}/jobs', response_model=Job, status_code=202,
              tags=['instances'])
    async def submit_instance(user: Who, instance_id: Id, body: Body_) -> Any:
        """Set these inputs of the instance, run it asynchronously: the job."""
        instance = service.instances.get(user.name, instance_id)
        values, prepared, timeout = checked(user, instance.interface, body, instance.values)
        instance.values = values
        return await submit(user, instance.interface, values, prepared, timeout)

    @app.delete('/instances/{instance_id}', status_code=204, tags=['instances'])
    async def drop_instance(user: Who, instance_id: Id) -> Response:
        """End the instance."""
        service.instances.drop(user.name, instance_id)
        return Response(status_code=204)

    @app.get('/jobs', response_model=list[JobSummary], tags=['jobs'])
    def jobs(user: Who) -> Any:
        """Your jobs, newest first."""
        return service.jobs.list(user)

    @app.get('/jobs/{job_id}', response_model=Job, tags=['jobs'])
    async def job(user: Who, job_id: Id,
                  wait: Annotated[float, Query(ge=0, le=MAX_WAIT, allow_inf_nan=False,
                                               description='seconds to wait for the job to '
                                                           'end')] = 0.0) -> Any:
        """A job; with ``wait``, once it ended or after that many seconds (a long poll)."""
        return _json(await service.jobs.wait(user, job_id, wait))

    @app.delete('/jobs/{job_id}', response_model=Job, tags=['jobs'])
    def cancel_job(user: Who, job_id: Id) -> Any:
        """Cancel the job (its worker is stopped if it runs); an ended job stays as it is."""
        return _json(service.jobs.cancel(user, job_id))

    app.include_router(files_router(service.files, current_user))
    return app


class _Bearer(OAuth2PasswordBearer):
    """The user of the request's bearer token (401 otherwise), documented as the OAuth2
    password flow: one dependency, where a scheme and a user function make two."""

    def __init__(self, service: Service):
        super().__init__(tokenUrl='token', auto_error=False)
        self.service = service

    async def __call__(self, request: Request) -> User:  # type: ignore[override]
        header = request.headers.get('authorization', '')
        scheme, _, token = header.partition(' ')
        return self.service.authenticate(token if scheme.lower() == 'bearer' else None)


async def _refused(_request: Request, exc: Exception) -> JSONResponse:
    """A `ServiceError` as its status and ``{"detail": message}``."""
    assert isinstance(exc, ServiceError)
    headers = {'WWW-Authenticate': 'Bearer'} if exc.status == 401 else None
    if exc.status == 429:
        headers = {'Retry-After': '60'}
    return JSONResponse({'detail': exc.message}, exc.status, headers=headers)


async def _invalid(_request: Request, exc: Exception) -> Response:
    """FastAPI's 422 for invalid parameters, written with the service's JSON (FastAPI's own
    answer echoes the input, and fails on NaN, which the service accepts)."""
    assert isinstance(exc, RequestValidationError)
    return _json({'detail': exc.errors()}, 422)


class _BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        declared = dict(scope['headers']).get(b'content-length')
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({'detail': f'the request body has {int(declared)} bytes; '
                                               f'at most {self.limit} are accepted (send '
                                               f'files through /uploads)'}, 413)
            return await response(scope, receive, send)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get('body', b''))
            if seen > self.limit:  # (HTTPException: FastAPI passes it on as it is)
                raise HTTPException(413, f'the request body has more than {self.limit} bytes')
            return message
        return await self.app(scope, counted, send)
