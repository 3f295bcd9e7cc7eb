"""The HTTP component service's configuration file (YAML) and its JWT secret.

::

    host: 127.0.0.1            # also --host
    port: 8443                 # also --port
    secret_file: jwt.secret    # or the environment variable OML_HTTP_SECRET
    tls: {cert: server.pem, key: server.key}
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
_KEYS = ('host', 'port', 'secret_file', 'tls', 'components')
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
    """

    path: Path
    host: str = '127.0.0.1'
    port: int = 8443
    secret_file: Path | None = None
    tls: tuple[Path, Path] | None = None
    components: tuple[Exposed, ...] = ()

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
    return ServiceConfig(path, host, port, secret_file, _tls(path, data.get('tls'), base),
                         _components(path, data.get('components', [])))


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
