"""The HTTP service's users: names, argon2 password hashes and roles, in a YAML file beside the
configuration (``NAME.users.yaml``), written by ``openmdao-like http adduser``.

Only hashes are stored (argon2id, the parameters of ``argon2-cffi``'s `PasswordHasher`), never a
password; the file is written whole to a temporary file and renamed (a crash leaves the old
one), with mode 0600. Checking a password for an unknown user still computes a hash, so that the
time taken does not tell which names exist.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, describe
from ..extras import require

__all__ = ['User', 'Users', 'MIN_PASSWORD', 'MAX_PASSWORD']

#: Shortest and longest passwords accepted.
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
_NAME = re.compile(r'^[A-Za-z0-9_.@-]{1,64}$')
_ROLE = re.compile(r'^[A-Za-z0-9_.-]{1,64}$')


def _hasher() -> Any:
    """argon2-cffi's PasswordHasher; `ImportError` saying how to install it."""
    return require('argon2', 'the HTTP service', 'http').PasswordHasher()


@dataclasses.dataclass(frozen=True)
class User:
    """A user of the service: name and roles."""

    name: str
    roles: tuple[str, ...] = ()


class Users:
    """The users file at ``path`` (it may not exist yet: no users).

    Raises `ConfigError` naming the file and the entry when it is not a users file.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._hasher = _hasher()
        self._entries: dict[str, dict[str, Any]] = self._read()
        self._decoy = self._hasher.hash('not a password of anyone')

    def __repr__(self) -> str:
        return f'<Users {str(self.path)!r}: {len(self._entries)} user(s)>'

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        """Every user name, sorted."""
        return sorted(self._entries)

    def user(self, name: str) -> User | None:
        """The user called ``name``, if any."""
        entry = self._entries.get(name)
        return None if entry is None else User(name, tuple(entry.get('roles', ())))

    def add(self, name: str, password: str, roles: list[str] | tuple[str, ...] = (),
            replace: bool = False) -> User:
        """Add user ``name`` (or, with ``replace``, give an existing one a new password and
        roles) and write the file."""
        where = f'{self.path}: user {name!r}'
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f'{self.path}: a user name is 1 to 64 letters, digits or _ . @ -, '
                              f'got {describe(name)}')
        if name in self._entries and not replace:
            raise ConfigError(f'{where} exists already (give --replace to set a new password '
                              f'and roles)')
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise ConfigError(f'{where}: a password has {MIN_PASSWORD} to {MAX_PASSWORD} '
                              f'characters, got {len(password)}')
        bad = [role for role in roles if not isinstance(role, str) or not _ROLE.match(role)]
        if bad:
            raise ConfigError(f'{where}: a role is 1 to 64 letters, digits or _ . -, got '
                              f'{describe(bad[0])}')
        self._entries[name] = {'hash': self._hasher.hash(password), 'roles': sorted(set(roles))}
        self._write()
        return User(name, tuple(self._entries[name]['roles']))

    def remove(self, name: str) -> None:
        """Remove user ``name`` and write the file."""
        if name not in self._entries:
            raise ConfigError(f'{self.path}: no user {name!r}; users: '
                              f'{", ".join(self.names()) or "none"}')
        del self._entries[name]
        self._write()

    def check(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs, else None (an unknown name takes as long)."""
        from argon2.exceptions import InvalidHashError, VerificationError
        entry = self._entries.get(name) if isinstance(name, str) else None
        try:
            self._hasher.verify(entry['hash'] if entry else self._decoy, password)
        except (VerificationError, InvalidHashError):
            return None
        return self.user(name) if entry else None

    # -- the file -------------------------------------------------------------------------------
    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text(encoding='utf-8')
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f'{self.path}: cannot read the users file: '
                              f'{exc.strerror or exc}') from exc
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f'{self.path}: not valid YAML: {exc}') from exc
        users = data.get('users') if isinstance(data, dict) else None
        if not isinstance(users, dict):
            raise ConfigError(f'{self.path}: expected a users file ({{users: {{NAME: {{hash: '
                              f'..., roles: [...]}}}}}}), got {describe(data)}')
        for name, entry in users.items():
            if not (isinstance(name, str) and _NAME.match(name) and isinstance(entry, dict)
                    and isinstance(entry.get('hash'), str) and entry['hash'].startswith('$argon2')
                    and isinstance(entry.get('roles', []), list)):
                raise ConfigError(f'{self.path}: user {name!r}: expected {{hash: $argon2..., '
                                  f'roles: [...]}}, got {describe(entry)}')
        return users

    def _write(self) -> None:
        text = yaml.safe_dump({'users': self._entries}, sort_keys=True)
        fd, temp = tempfile.mkstemp(prefix='.users-', dir=self.path.parent)
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as file:
                file.write(text)
            os.chmod(temp, 0o600)
            os.replace(temp, self.path)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
