"""The HTTP component service's configuration file (YAML) and its JWT secret.

::

    host: 127.0.0.1            # also --host
    port: 8443                 # also --port
    secret_file: jwt.secret    # or the environment variable OML_HTTP_SECRET
    tls: {cert: server.pem, key: server.key}
    workers: 2                 # worker processes running the executions
    timeout: 3600              # longest execution allowed, seconds (a call may ask for less)
    max_upload: 1073741824     # largest file uploaded, bytes
    store: sqlite:///jobs.db   # the job store of asynchronous executions (default: NAME.jobs.db)
    workdir: files             # uploaded files, files of outputs, components' directories
    components:
      - paraboloid_plugin.Paraboloid            # every user may use it
      - {name: aero_plugin.Aero, roles: [aero]} # only users with the role 'aero'

Relative paths are relative to the configuration file's directory. The users (argon2 hashes,
roles) live beside it, in ``NAME.users.yaml`` for ``NAME.yaml`` (`openmdao_like.http.users`).
The service never starts without a secret, and refuses one that is short or that others can
read; the secret is never logged or shown.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, describe

__all__ = ['ServiceConfig', 'Exposed', 'load_config', 'SECRET_VARIABLE', 'MIN_SECRET_BYTES',
           'MAX_CONFIG_BYTES']

#: The environment variable holding the JWT secret when the file names no ``secret_file``.
SECRET_VARIABLE = 'OML_HTTP_SECRET'
#: Shortest secret accepted (RFC 7518: an HS256 key of at least 256 bits).
MIN_SECRET_BYTES = 32
#: Largest configuration file read.
MAX_CONFIG_BYTES = 1 << 20
_KEYS = ('host', 'port', 'secret_file', 'tls', 'workers', 'timeout', 'max_upload', 'store',
         'workdir', 'components')
_DOTTED = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$')
_ROLE = re.compile(r'^[A-Za-z0-9_.-]{1,64}$')


@dataclasses.dataclass(frozen=True)
class Exposed:
    """A component the service offers: its dotted class name, and the roles that may use it
    (empty: every user)."""

    name: str
    roles: tuple[str, ...] = ()

    def allows(self, roles: tuple[str, ...] | list[str]) -> bool:
        """Whether a user with ``roles`` may use it."""
        return not self.roles or any(role in self.roles for role in roles)


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """A checked configuration file (see the module docstring).

    Attributes
    ----------
    path : Path
        The file it was read from.
    host, port
        Where the service listens.
    secret_file : Path or None
        Where the JWT secret is (None: the environment variable `SECRET_VARIABLE`).
    tls : tuple of Path or None
        ``(cert, key)``; None: plain HTTP.
    components : tuple of Exposed
        What the service offers, by name.
    workers : int
        Worker processes running the executions.
    timeout : float
        Longest execution allowed, seconds.
    max_upload : int
        Largest file that may be uploaded, bytes.
    store : str or None
        URL of the job store (None: ``sqlite:///NAME.jobs.db`` beside the file).
    workdir : Path or None
        Directory of uploaded files and components' files (None: ``NAME.files`` beside it).
    """

    path: Path
    host: str = '127.0.0.1'
    port: int = 8443
    secret_file: Path | None = None
    tls: tuple[Path, Path] | None = None
    components: tuple[Exposed, ...] = ()
    workers: int = 2
    timeout: float = 3600.0
    max_upload: int = 1 << 30
    store: str | None = None
    workdir: Path | None = None

    @property
    def store_url(self) -> str:
        """The job store's URL: `store`, else ``NAME.jobs.db`` beside the file."""
        return self.store or f'sqlite:///{self.path.with_name(f"{self.path.stem}.jobs.db")}'

    @property
    def files_dir(self) -> Path:
        """Where files live: `workdir`, else ``NAME.files`` beside the file."""
        return self.workdir or self.path.with_name(f'{self.path.stem}.files')

    @property
    def users_file(self) -> Path:
        """The users file beside the configuration: ``NAME.users.yaml`` for ``NAME.yaml``."""
        return self.path.with_name(f'{self.path.stem}.users.yaml')

    def component(self, name: str) -> Exposed | None:
        """The component offered under ``name``, if any."""
        return next((c for c in self.components if c.name == name), None)

    def secret(self) -> bytes:
        """The JWT secret: from `secret_file`, else from ``$OML_HTTP_SECRET``; `ConfigError` when
        there is none, when it is shorter than `MIN_SECRET_BYTES` or when its file may be read
        by others (the message never shows the secret)."""
        if self.secret_file is not None:
            where = f'{self.path}: secret_file {str(self.secret_file)!r}'
            try:
                mode = self.secret_file.stat().st_mode
                secret = self.secret_file.read_bytes().strip()
            except OSError as exc:
                raise ConfigError(f'{where} cannot be read: {exc.strerror or exc}') from exc
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(f'{where} may be read by other users (mode '
                                  f'{stat.S_IMODE(mode):04o}); expected 0600 or stricter: '
                                  f'chmod 600 {self.secret_file}')
        else:
            where = f'{self.path}: the environment variable {SECRET_VARIABLE}'
            secret = os.environ.get(SECRET_VARIABLE, '').strip().encode()
            if not secret:
                raise ConfigError(f'{self.path}: no JWT secret: the service does not start '
                                  f'without one; name a file holding it (secret_file: PATH, '
                                  f'e.g. made with `head -c 48 /dev/urandom | base64 > PATH; '
                                  f'chmod 600 PATH`) or set {SECRET_VARIABLE}')
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f'{where} holds a secret of {len(secret)} bytes; expected at '
                              f'least {MIN_SECRET_BYTES}')
        return secret


def load_config(path: str | os.PathLike[str]) -> ServiceConfig:
    """The configuration in ``path``, checked: `ConfigError` naming the file, the key, what was
    expected and what was given."""
    path = Path(path).resolve()
    try:
        with open(path, 'rb') as file:
            text = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f'{path}: cannot read the HTTP service configuration: '
                          f'{exc.strerror or exc}') from exc
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f'{path}: larger than {MAX_CONFIG_BYTES} bytes; not a configuration')
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML: {exc}') from exc
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping of {", ".join(_KEYS)}, got '
                          f'{describe(data)}')
    unknown = sorted(str(key) for key in data if key not in _KEYS)
    if unknown:
        raise ConfigError(f'{path}: unknown key(s) {", ".join(map(repr, unknown))}; expected '
                          f'some of {", ".join(_KEYS)}')
    base = path.parent
    host = data.get('host', ServiceConfig.host)
    if not isinstance(host, str) or not host:
        raise ConfigError(f'{path}: host must be a host name or address, got {describe(host)}')
    port = data.get('port', ServiceConfig.port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f'{path}: port must be an integer in [0, 65535], got '
                          f'{describe(port)}')
    secret_file = data.get('secret_file')
    if secret_file is not None:
        secret_file = _path(path, 'secret_file', secret_file, base)
    workers = _number(path, data, 'workers', ServiceConfig.workers, int, 1)
    timeout = float(_number(path, data, 'timeout', ServiceConfig.timeout, (int, float), 1e-3))
    max_upload = _number(path, data, 'max_upload', ServiceConfig.max_upload, int, 0)
    store = data.get('store')
    if store is not None and (not isinstance(store, str) or '://' not in store):
        raise ConfigError(f'{path}: store must be a job store URL (sqlite:///PATH or '
                          f'postgresql://...), got {describe(store)}')
    if store is not None and store.startswith('sqlite:///') and \
            not store[10:].startswith(('/', ':memory:')):
        store = f'sqlite:///{base / store[10:]}'  # (relative to the file, like every path)
    workdir = data.get('workdir')
    if workdir is not None:
        workdir = _path(path, 'workdir', workdir, base)
    return ServiceConfig(path, host, port, secret_file, _tls(path, data.get('tls'), base),
                         _components(path, data.get('components', [])), workers, timeout,
                         max_upload, store, workdir)


def _number(path: Path, data: dict, key: str, default: Any, types: Any, lowest: float) -> Any:
    """``data[key]`` (default ``default``): a number of ``types`` at least ``lowest``."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, types) or value < lowest:
        kind = 'an integer' if types is int else 'a number'
        raise ConfigError(f'{path}: {key} must be {kind} >= {lowest:g}, got {describe(value)}')
    return value


def _path(path: Path, key: str, value: Any, base: Path) -> Path:
    """``value`` as a path (relative to ``base``)."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f'{path}: {key} must be a file path, got {describe(value)}')
    return (base / value).resolve()


def _tls(path: Path, value: Any, base: Path) -> tuple[Path, Path] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {'cert', 'key'}:
        raise ConfigError(f'{path}: tls must be a mapping {{cert: PATH, key: PATH}}, got '
                          f'{describe(value)}')
    return _path(path, 'tls.cert', value['cert'], base), _path(path, 'tls.key', value['key'],
                                                              base)


def _components(path: Path, value: Any) -> tuple[Exposed, ...]:
    if not isinstance(value, list):
        raise ConfigError(f'{path}: components must be a list of dotted class names or '
                          f'{{name: DOTTED, roles: [ROLE, ...]}}, got {describe(value)}')
    found: dict[str, Exposed] = {}
    for k, entry in enumerate(value):
        where = f'{path}: components[{k}]'
        if isinstance(entry, str):
            entry = {'name': entry}
        if not isinstance(entry, dict) or not set(entry) <= {'name', 'roles'} or \
                'name' not in entry:
            raise ConfigError(f'{where} must be a dotted class name or {{name: DOTTED, roles: '
                              f'[ROLE, ...]}}, got {describe(entry)}')
        name, roles = entry['name'], entry.get('roles', [])
        if not isinstance(name, str) or not _DOTTED.match(name):
            raise ConfigError(f'{where}: name must be a dotted class name (package.Class), got '
                              f'{describe(name)}')
        if not isinstance(roles, list) or not all(isinstance(r, str) and _ROLE.match(r)
                                                  for r in roles):
            raise ConfigError(f'{where} ({name}): roles must be a list of role names (letters, '
                              f'digits, _ . -), got {describe(roles)}')
        if name in found:
            raise ConfigError(f'{where}: {name} is offered twice')
        found[name] = Exposed(name, tuple(roles))
    return tuple(found.values())
