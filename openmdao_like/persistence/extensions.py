"""How higher layers extend the YAML format for model objects of their own, and tell whether a
save is under way.

A *node handler* describes and builds the nodes of one class (and its subclasses) instead of
the generic code, e.g. the remote layer's proxies, whose node records where the remote object
lives rather than a constructor call::

    register_node_handler('openmdao_like.remote.proxy.RemoteComponent', describe_proxy,
                          build_proxy, keys={'remote', 'directory', 'variables'})

The class may be named by its dotted path (``module.QualName``) instead of given, so that the
layer defining it is imported only when one of its objects is saved or loaded.

``describe(describer, obj) -> node`` returns the node (a dict with at least ``class``);
``build(builder, node, where, existing) -> obj`` returns the object the node describes
(``existing``: the object the parent's ``configure`` made under that name, or None); the
builder then adds it to its parent and sets the node's ``variables`` (name -> value). ``keys``
are the keys such a node may hold besides ``class``; loading refuses others.

`saving_model` is true while `save` writes a model file, so objects whose pickled form depends
on why they are pickled (a proxy saves its remote state only then) can tell.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator


@dataclass(frozen=True)
class NodeHandler:
    """How the YAML format describes and builds the objects of one class."""

    cls: type | str
    describe: Callable[[Any, Any], dict[str, Any]]
    build: Callable[[Any, dict[str, Any], str, Any], Any]
    keys: frozenset[str] = frozenset()


_handlers: dict[type | str, NodeHandler] = {}
_lock = threading.Lock()
_saving: contextvars.ContextVar[bool] = contextvars.ContextVar('saving_model', default=False)


def register_node_handler(cls: type | str, describe: Callable, build: Callable,
                          keys: Iterable[str] = ()) -> None:
    """Describe and build the YAML nodes of ``cls`` (a class, or its dotted
    ``module.QualName``) and its subclasses with these functions."""
    if isinstance(cls, str):
        name = cls
        if not all(part.isidentifier() for part in cls.split('.')) or '.' not in cls:
            raise ValueError(f'register_node_handler: expected a dotted class name such as '
                             f'"package.module.Class", got {cls!r}')
    elif isinstance(cls, type):
        name = cls.__qualname__
    else:
        raise TypeError(f'register_node_handler: expected a class or its dotted name, got '
                        f'{cls!r}')
    if not (callable(describe) and callable(build)):
        raise TypeError(f'register_node_handler({name}): describe and build must be callable')
    with _lock:
        _handlers[cls] = NodeHandler(cls, describe, build, frozenset(keys))


def node_handler(cls: type) -> NodeHandler | None:
    """The handler registered for ``cls`` or its nearest base, if any."""
    if not _handlers:
        return None
    for klass in cls.__mro__:
        handler = _handlers.get(klass) or _handlers.get(f'{klass.__module__}.'
                                                         f'{klass.__qualname__}')
        if handler is not None:
            return handler
    return None


@contextlib.contextmanager
def saving() -> Iterator[None]:
    """Mark the enclosed code as writing a model file (see `saving_model`)."""
    token = _saving.set(True)
    try:
        yield
    finally:
        _saving.reset(token)


def saving_model() -> bool:
    """Whether `save` is writing a model file in this thread (or task) right now."""
    return _saving.get()
