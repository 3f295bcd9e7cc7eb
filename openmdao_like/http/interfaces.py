"""What a client may send to an offered component, checked before any worker sees it.

An `Interface` is a component's variables as a worker described them (type, default, units,
bounds, description: `remote.objserver.describe_variable`). Inputs from a client are set on a
mirror made of the same variables (`remote.proxy.build_variable`), so a value of the wrong type
or shape, or out of bounds, is refused in the service with a message naming the variable, and
the component's own code never runs for it. An `Instance` is one client's set of inputs kept
between calls, so a client sends only what changed.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from typing import Any

from ..component import Component
from ..remote.proxy import build_variable
from .wire import FILE_KEY, ServiceError, decode

__all__ = ['Interface', 'Instance', 'Instances', 'MAX_INSTANCES', 'INSTANCE_TTL']

#: Instances one user may hold; the one used longest ago goes first.
MAX_INSTANCES = 256
#: Seconds an unused instance is kept.
INSTANCE_TTL = 3600.0


class Interface:
    """An offered component's variables (see the module docstring)."""

    def __init__(self, name: str, description: str, variables: dict[str, dict[str, Any]]):
        self.name, self.description, self.variables = name, description, variables
        self.inputs = tuple(n for n, s in variables.items()
                            if s['metadata'].get('iotype') == 'in')
        self.files = frozenset(n for n in self.inputs if variables[n]['type'].endswith('.File'))
        self._mirror = Component()
        for n in self.inputs:
            if n not in self.files:
                self._mirror.add_trait(n, build_variable(variables[n], f'{name}.{n}'))
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """The interface as the service shows it."""
        return {'name': self.name, 'description': self.description, 'variables': self.variables}

    def check(self, values: dict[str, Any], given: Any) -> None:
        """Set the inputs ``given`` (JSON data from a client) into ``values``, each checked;
        `ServiceError` 422 naming the first bad one (``values`` then unchanged)."""
        if not isinstance(given, dict):
            raise ServiceError(422, f'{self.name}: inputs must be an object of input names '
                                    f'and values, got {type(given).__name__}')
        checked = {}
        with self._lock:
            for n, data in given.items():
                where = f'{self.name}: input {n!r}'
                if n not in self.inputs:
                    what = 'an output' if n in self.variables else 'not a variable'
                    raise ServiceError(422, f'{where} is {what}; inputs: '
                                            f'{", ".join(self.inputs) or "none"}')
                try:
                    value = decode(data, where)
                except ValueError as exc:
                    raise ServiceError(422, str(exc)) from None
                if n in self.files:
                    checked[n] = _file_id(where, value)
                    continue
                try:
                    setattr(self._mirror, n, value)
                except Exception as exc:
                    text = str(exc)
                    text = text[len(n) + 2:] if text.startswith(f'{n}: ') else text
                    raise ServiceError(422, f'{where}: {text}') from None
                checked[n] = getattr(self._mirror, n)
        values.update(checked)


def _file_id(where: str, value: Any) -> str | None:
    """The id of the uploaded file a File input names."""
    if value is None:
        return None
    if isinstance(value, dict) and set(value) == {FILE_KEY} and isinstance(value[FILE_KEY], str):
        return value[FILE_KEY]
    raise ServiceError(422, f'{where} is a file: expected {{"{FILE_KEY}": id of an uploaded file '
                            f'(POST /uploads)}} or null, got {str(value)[:80]}')


@dataclasses.dataclass
class Instance:
    """One client's inputs of a component, kept between calls: those it set (the others are
    at the component's initial values)."""

    id: str
    user: str
    interface: Interface
    values: dict[str, Any]
    used: float = dataclasses.field(default_factory=time.monotonic)


class Instances:
    """The live instances, by id; each user sees only theirs; bounded in number and age."""

    def __init__(self, max_per_user: int = MAX_INSTANCES, ttl: float = INSTANCE_TTL):
        self.max_per_user, self.ttl = max_per_user, ttl
        self._all: dict[str, Instance] = {}
        self._lock = threading.Lock()

    def create(self, user: str, interface: Interface) -> Instance:
        """A new instance of ``interface`` for ``user``, every input at its initial value."""
        now = time.monotonic()
        instance = Instance(secrets.token_hex(16), user, interface, {})
        with self._lock:
            for key in [k for k, i in self._all.items() if now - i.used > self.ttl]:
                del self._all[key]
            mine = sorted((i for i in self._all.values() if i.user == user),
                          key=lambda i: i.used)
            for old in mine[:max(0, len(mine) - self.max_per_user + 1)]:
                del self._all[old.id]
            self._all[instance.id] = instance
        return instance

    def get(self, user: str, instance_id: str) -> Instance:
        """``user``'s instance ``instance_id``; `ServiceError` 404 otherwise (another user's
        instance answers as one that does not exist)."""
        instance = self._all.get(instance_id)
        if instance is None or instance.user != user:
            raise ServiceError(404, f'no instance {instance_id!r}: it ended, expired (unused '
                                    f'for {self.ttl:g} s) or the service restarted; create '
                                    f'another')
        instance.used = time.monotonic()
        return instance

    def drop(self, user: str, instance_id: str) -> None:
        """End ``user``'s instance ``instance_id`` (404 if there is none)."""
        self.get(user, instance_id)
        with self._lock:
            self._all.pop(instance_id, None)
