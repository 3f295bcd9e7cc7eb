"""The `Factory` interface that `FactoryManager` chains, and `TypeInfo`, one creatable type."""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

#: Entry-point groups through which distributions provide classes to openmdao_like.
GROUPS = ('openmdao_like.component', 'openmdao_like.driver', 'openmdao_like.variable',
          'openmdao_like.allocator', 'openmdao_like.doegenerator', 'openmdao_like.caserecorder',
          'openmdao_like.executor')


class TypeInfo(NamedTuple):
    """A type a factory can create: its name, the version and distribution that provide it,
    and its entry-point group (None when not known through an entry point)."""

    name: str
    version: str | None
    distribution: str | None
    group: str | None


class Factory(abc.ABC):
    """Creates objects by type name.

    `create` returns None when this factory cannot serve the request (unknown type, version not
    available, a server or resources it cannot provide), so that the manager tries the next one;
    `why_not` then says why, for the manager's `NameError`.
    """

    @abc.abstractmethod
    def create(self, typname: str, version: str | None = None, server: Any = None,
               res_desc: dict | None = None, **ctor_args: Any) -> Any:
        """A new ``typname`` object, or None when this factory cannot make it."""

    def find_class(self, typname: str, version: str | None = None) -> type | None:
        """The class ``typname`` (``version``) without creating an object, or None."""
        return None

    def why_not(self, typname: str, version: str | None = None, server: Any = None,
                res_desc: dict | None = None) -> str:
        """Why `create` returned None for this request (one line)."""
        return 'cannot create it'

    def get_available_types(self, groups: Any = None) -> list[TypeInfo]:
        """The types this factory can create (those it can enumerate)."""
        return []

    def type_info(self, cls: type) -> TypeInfo | None:
        """How this factory names ``cls`` (None when it does not provide it)."""
        return None

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


def remote_request(server: Any, res_desc: dict | None) -> str | None:
    """Why a local factory refuses a request that names a server or resources (None if not)."""
    if server is not None:
        return f'a server ({server!r}) was requested; this factory creates objects in this process'
    if res_desc:
        return (f'resources ({", ".join(sorted(res_desc))}) were requested; this factory creates '
                f'objects in this process')
    return None
