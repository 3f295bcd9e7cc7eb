"""`Container`: a named node of the model tree holding variables and child containers, with
dotted-path access and a working directory confined below the top of the tree."""

from __future__ import annotations

import copy
import keyword
import os
import re
from typing import Any, Iterator

from traits.api import Event, HasTraits, TraitType

from .errors import ModelError, PathError, ValidationError, describe
from .options import suggest
from .variables.base import Variable, var_path

_INDEX = re.compile(r'^([A-Za-z_]\w*)((?:\[-?\d+\])+)$')


def _check_class_variables(cls: type) -> None:
    """Check every variable declared on ``cls`` once, when the class is created."""
    for prefix, ctrait in cls.__prefix_traits__.items():
        if prefix != '*' and isinstance(getattr(ctrait, 'handler', None), Variable):
            raise ModelError(f'{cls.__name__}.{prefix}_: a variable name may not end with "_" '
                             f'(traits would read it as a prefix for every name starting '
                             f'with {prefix!r})')
    for name, ctrait in cls.__class_traits__.items():
        check = getattr(type(ctrait.handler), 'check_definition', None)
        if check is not None:
            check(ctrait.handler, f'{cls.__name__}.{name}')


class Container(HasTraits):
    """A node of the model tree: variables (traits with an ``iotype``) and named children.

    Attributes
    ----------
    name : str
        The name under which the parent holds this container ('' for the top).
    parent : Container or None
        The container holding this one.
    """

    #: Whether this object lives in another process (remote proxies say True).
    is_remote = False
    #: Where this node runs when not in this process (a proxy's server or service), else None.
    remote_location: str | None = None

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        _check_class_variables(cls)

    def __init__(self) -> None:
        self.name = ''
        self.parent = None
        self._children: dict[str, Any] = {}
        self._directory = ''
        self._top_dir: str | None = None
        self._var_cache: dict[str, Variable] | None = None
        super().__init__()

    # -- naming ---------------------------------------------------------------------------------
    def get_pathname(self, rel_to_scope: Any = None) -> str:
        """The dotted path from the top of the tree ('' for the top itself)."""
        parts = []
        node = self
        while node is not None and node is not rel_to_scope and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return '.'.join(reversed(parts))

    @property
    def pathname(self) -> str:
        """The dotted path from the top of the tree."""
        return self.get_pathname()

    def _where(self) -> str:
        """How error messages name this container."""
        return self.get_pathname() or self.name or type(self).__name__

    # -- children -------------------------------------------------------------------------------
    def add(self, name: str, obj: Any) -> Any:
        """Add a child container (or a `Variable`, as a new trait) under ``name``; return it."""
        self._check_name(name)
        if isinstance(obj, TraitType):
            if name in self._children or self.trait(name) is not None:
                raise ModelError(f'{self._where()}: name {name!r} is already in use')
            check = getattr(type(obj), 'check_definition', None)
            if check is not None:
                check(obj, f'{self._where()}.{name}')
            self.add_trait(name, obj)
            self._var_cache = None
            self._config_changed()
            return obj
        if not isinstance(obj, Container):
            raise ModelError(f'{self._where()}: cannot add {name!r}: expected a Container, '
                             f'Component or Variable, got {describe(obj)}')
        node = self
        while node is not None:
            if node is obj:
                raise ModelError(f'{self._where()}: cannot add {name!r}: it would contain itself '
                                 f'(container recursion)')
            node = node.parent
        if obj.parent is not None and obj.parent is not self:
            raise ModelError(f'{self._where()}: cannot add {name!r}: it already belongs to '
                             f'{obj.parent._where()!r}; remove it there first')
        if self.trait(name) is not None and self.trait(name).iotype is not None:
            raise ModelError(f'{self._where()}: name {name!r} is already a variable')
        if name in self._children:
            self.remove(name)
        obj.name = name
        obj.parent = self
        self._children[name] = obj
        self.__dict__[name] = obj
        self._child_added(name, obj)
        self._config_changed()
        return obj

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ModelError(f'{self._where()}: expected a valid Python identifier as name, '
                             f'got {describe(name)}')
        if name.startswith('_'):
            raise ModelError(f'{self._where()}: names starting with "_" are reserved, '
                             f'got {name!r}')
        if name in self._children or name in self._replaceable_names():
            return
        # instance attributes too (exec_count, recorders, ...): a child would overwrite them
        if hasattr(type(self), name) or name in ('name', 'parent') or \
                (name in self.__dict__ and name not in self._vars()):
            raise ModelError(f'{self._where()}: {name!r} is a reserved name (an attribute of '
                             f'{type(self).__name__})')

    def _replaceable_names(self) -> tuple[str, ...]:
        """Names of attributes that ``add`` may replace (e.g. an assembly's ``driver``)."""
        return ()

    def _child_added(self, name: str, obj: Any) -> None:
        """Hook for subclasses (assemblies register components)."""

    def _child_removed(self, name: str, obj: Any) -> None:
        """Hook for subclasses (assemblies drop connections of a removed child)."""

    def _config_changed(self) -> None:
        """Called whenever the structure changes, so compiled plans are rebuilt."""

    def remove(self, name: str) -> Any:
        """Remove child (or dynamically added variable) ``name`` and return it."""
        if name in self._children:
            obj = self._children.pop(name)
            self.__dict__.pop(name, None)
            self._child_removed(name, obj)
            obj.parent = None
            self._config_changed()
            return obj
        if name in self._added_traits():
            trait = self.trait(name)
            self.remove_trait(name)
            self._var_cache = None
            self._child_removed(name, None)
            self._config_changed()
            return trait.trait_type
        raise ModelError(f'{self._where()}: cannot remove {name!r}: no such child or variable '
                         f'(children: {sorted(self._children)})')

    def rename(self, oldname: str, newname: str) -> None:
        """Rename child ``oldname`` to ``newname`` (classic API)."""
        obj = self.remove(oldname)
        self.add(newname, obj)

    def order_children(self, names: list[str]) -> None:
        """Put the children in the order of ``names`` (the same names, reordered)."""
        if sorted(names) != sorted(self._children):
            raise ValueError(f'{self._where()}: order_children() needs the names of the '
                             f'children, {sorted(self._children)}, got {sorted(names)}')
        if list(self._children) != list(names):
            self._children = {name: self._children[name] for name in names}
            self._config_changed()

    def list_containers(self) -> list[str]:
        """Names of the child containers, in the order they were added."""
        return list(self._children)

    def get_children(self) -> list[Any]:
        """The child containers, in the order they were added."""
        return list(self._children.values())

    # -- variables ------------------------------------------------------------------------------
    def _vars(self) -> dict[str, Variable]:
        """Name -> Variable for every trait with an ``iotype`` (cached; shared by a class's
        instances until one gets a variable of its own through `add`)."""
        if self._var_cache is None:
            found = _class_vars(type(self))
            extra = {name: ct.trait_type for name, ct in self._added_traits().items()}
            if extra:
                found = dict(sorted({**found, **extra}.items()))
            self._var_cache = found
        return self._var_cache

    def _added_traits(self) -> dict[str, Any]:
        """Name -> ``CTrait`` of the variables added to this instance (`add`, passthroughs);
        not the instance copies traits makes of declared ones (a connected input's guard)."""
        declared = _class_vars(type(self))
        return {name: ct for name, ct in self._instance_traits().items()
                if ct.iotype in ('in', 'out') and name not in declared
                and not _is_items_event(ct)}

    def _var(self, name: str) -> Variable:
        """The `Variable` called ``name``, or a `ModelError` naming what exists."""
        try:
            return self._vars()[name]
        except KeyError:
            raise ModelError(f'{self._where()}: no variable named {name!r}'
                             f'{suggest(name, self._vars())} (variables: '
                             f'{", ".join(self._vars()) or "none"})') from None

    def input_source(self, name: str) -> str | None:
        """Path of the source connected to input ``name`` in the parent assembly, if any."""
        conns = getattr(self.parent, '_connections', None)
        conn = conns.get(f'{self.name}.{name}') if conns else None
        return None if conn is None else conn.src

    def get_trait(self, name: str) -> Any:
        """The traits ``CTrait`` of variable ``name`` (classic API)."""
        self._var(name)
        return self.trait(name)

    def get_metadata(self, name: str, key: str | None = None) -> Any:
        """Metadata dict of variable ``name``, or one entry of it when ``key`` is given."""
        meta = self._resolve_owner(name)
        obj, vname = meta
        md = obj._var(vname).var_metadata()
        md.setdefault('iotype', None)
        md['vartype'] = type(obj._var(vname)).__name__
        return md if key is None else md.get(key)

    def items(self, recurse: bool = False, **metadata: Any) -> Iterator[tuple[str, Any]]:
        """(name, value) of variables matching ``metadata`` (e.g. iotype='in') and children."""
        for name, var in self._vars().items():
            if all(var.var_metadata().get(k) == v for k, v in metadata.items()):
                yield name, getattr(self, name)
        for name, child in self._children.items():
            if not metadata:
                yield name, child
            if recurse:
                for sub, value in child.items(recurse=True, **metadata):
                    yield f'{name}.{sub}', value

    def keys(self, recurse: bool = False, **metadata: Any) -> list[str]:
        """Names yielded by `items`."""
        return [name for name, _ in self.items(recurse, **metadata)]

    # -- dotted access --------------------------------------------------------------------------
    def _resolve_owner(self, path: str) -> tuple[Any, str]:
        """(container, last name) for a dotted ``path``; the last name may carry ``[i]``."""
        if not isinstance(path, str) or not path:
            raise ModelError(f'{self._where()}: expected a dotted path, got {describe(path)}')
        *heads, last = path.split('.')
        node = self
        for i, head in enumerate(heads):
            child = node._children.get(head) if isinstance(node, Container) else None
            if child is None:
                names = node._names() if isinstance(node, Container) else ()
                raise ModelError(f'{self._where()}: cannot resolve {path!r}: '
                                 f'{".".join(heads[:i + 1])!r} does not exist'
                                 f'{suggest(head, names)}')
            node = child
        return node, last

    def _names(self) -> list[str]:
        """Names a dotted path may take below this container: children, then variables."""
        return [*self._children, *self._vars()]

    def _no_such(self, verb: str, path: str, node: Container, name: str) -> ModelError:
        """The error of `get`/`set` for a path whose last name is unknown: the closest names,
        or all of them when none is close."""
        names = node._names()
        hint = suggest(name, names) or f' (names: {", ".join(names) or "none"})'
        return ModelError(f'{self._where()}: cannot {verb} {path!r}: {node._where()!r} has no '
                          f'variable or child {name!r}{hint}')

    def get(self, path: str) -> Any:
        """Value of a variable or child at dotted ``path`` (``'a.b.x'``, ``'a.arr[2]'``)."""
        node, last = self._resolve_owner(path)
        name, index = split_index(last)
        if name in node._children:
            value = node._children[name]
        elif name in node._vars() or (index is None and hasattr(node, name)):
            value = getattr(node, name)
        else:
            raise self._no_such('get', path, node, name)
        try:
            for i in index or ():
                value = value[i]
        except (IndexError, KeyError, TypeError) as exc:
            raise ModelError(f'{self._where()}: cannot get {path!r}: {exc}') from None
        return value

    def set(self, path: str, value: Any) -> None:
        """Set the variable at dotted ``path`` (validated; ``'arr[1]'`` sets one element)."""
        node, last = self._resolve_owner(path)
        name, index = split_index(last)
        if name not in node._vars():
            raise self._no_such('set', path, node, name)
        if index:
            # set the element in a copy, then assign the whole value so that the variable's
            # checks (type, shape, bounds) run and a bad element leaves the variable unchanged
            whole = copy.deepcopy(getattr(node, name))
            target = whole
            try:
                for i in index[:-1]:
                    target = target[i]
                target[index[-1]] = value
            except (IndexError, KeyError, TypeError, ValueError) as exc:
                raise ValidationError(f'{var_path(node, last)}: cannot set it to '
                                      f'{describe(value)}: {exc}') from None
            setattr(node, name, whole)
        else:
            setattr(node, name, value)

    # -- directories ----------------------------------------------------------------------------
    @property
    def directory(self) -> str:
        """This container's directory, relative to its parent's ('' = the parent's)."""
        return self._directory

    @directory.setter
    def directory(self, value: str) -> None:
        if not isinstance(value, str):
            raise PathError(f'{self._where()}.directory: expected a str, got {describe(value)}')
        self._directory = value

    def get_abs_directory(self) -> str:
        """Absolute directory, checked to lie below the top's directory."""
        if self.parent is None:
            if self._top_dir is None:
                return os.path.abspath(self._directory or os.getcwd())
            return self._top_dir
        base = self.parent.get_abs_directory()
        if not self._directory:
            return base
        full = os.path.normpath(os.path.join(base, self._directory))
        top = self
        while top.parent is not None:
            top = top.parent
        root = top.get_abs_directory()
        if os.path.isabs(self._directory) or os.path.commonpath([root, full]) != root:
            raise PathError(f'{self._where()}.directory: expected a relative path below the top '
                            f'directory {root!r}, got {self._directory!r}')
        return full

    #: `save` delegates to this; set by ``openmdao_like.wiring`` (persistence: a higher layer).
    _saver: Any = None

    def save(self, path_or_stream: Any, fmt: str | None = None,
             include_files: bool = False) -> None:
        """Save this object and everything below it (``fmt='pickle'`` or ``'yaml'``; see
        `openmdao_like.persistence.save`)."""
        Container._saver(self, path_or_stream, fmt=fmt, include_files=include_files)

    def pre_delete(self) -> None:
        """Called before the container is discarded (classic API); children first."""
        for child in self._children.values():
            child.pre_delete()

    def __getstate__(self):
        state = super().__getstate__()
        state.pop('_var_cache', None)
        # variables added to this instance (`add`, passthroughs) are not in the class
        added = {name: ct.trait_type for name, ct in self._added_traits().items()}
        if added:
            state['_added_vars'] = added
        # traits keeps no instance trait in the state: the guards of connected inputs neither
        guarded = [name for name, ct in self._instance_traits().items() if _is_guard(ct)]
        if guarded:
            state['_guarded_inputs'] = guarded
        return state

    def __setstate__(self, state):
        for name, var in state.pop('_added_vars', {}).items():
            self.add_trait(name, var)
        guarded = state.pop('_guarded_inputs', ())
        super().__setstate__(state)
        self.__dict__['_var_cache'] = None
        # `add` stores children straight into __dict__, which traits' state does not carry.
        for name, child in self.__dict__.get('_children', {}).items():
            self.__dict__[name] = child
        for name in guarded:
            self._guard_input(name)

    # -- connected inputs -----------------------------------------------------------------------
    def _guard_input(self, name: str) -> None:
        """Refuse every set of input ``name`` but the framework's (it is connected): its
        instance trait validates with `_refuse_connected`; `set_connected` goes around it."""
        self._trait(name, 2).set_validate(_refuse_connected)

    def _free_input(self, name: str) -> None:
        """Let input ``name`` be set again (it was disconnected)."""
        ctrait = self._trait(name, 0)
        if _is_guard(ctrait):
            ctrait.set_validate(unguarded_trait(self, name, ctrait.trait_type).get_validate())


def _refuse_connected(obj: Any, name: str, value: Any) -> Any:
    """The validator of a connected input (see `Container._guard_input`)."""
    source = obj.input_source(name)
    raise ModelError(f'{var_path(obj, name)}: cannot set a connected input (to '
                     f'{describe(value)}); it is set from {source!r} at every run (disconnect '
                     f'it first)')


def _is_guard(ctrait: Any) -> bool:
    """Whether ``ctrait`` (or None) is the guard of a connected input."""
    return ctrait is not None and ctrait.get_validate() is _refuse_connected


def unguarded_trait(obj: Any, name: str, var: Variable) -> Any:
    """A ``CTrait`` checking values of variable ``name`` (``var``) of ``obj`` as it would
    without a connected input's guard: its class's trait, or one made from ``var``."""
    ctrait = type(obj).__class_traits__.get(name)
    return ctrait if ctrait is not None and ctrait.trait_type is var else var.as_ctrait()


def set_connected(obj: Any, name: str, value: Any) -> None:
    """Set variable ``name`` of ``obj``, checked like any set, even when it is a connected
    input: for the framework's own moves of values (transfers, loading a saved model), never
    for a user's."""
    if not _is_guard(obj._trait(name, 0)):
        setattr(obj, name, value)
        return
    obj._free_input(name)
    try:
        setattr(obj, name, value)
    finally:
        obj._guard_input(name)


def _is_items_event(ctrait: Any) -> bool:
    """traits gives each List/Dict a write-only ``<name>_items`` event that inherits its
    metadata (iotype too); it is not a variable."""
    return isinstance(ctrait.trait_type, Event)


def _class_vars(cls: type) -> dict[str, Variable]:
    """Name -> Variable declared on ``cls`` (computed once per class)."""
    cached = cls.__dict__.get('_class_var_cache')
    if cached is None:
        cached = {name: ct.trait_type for name, ct in sorted(cls.__class_traits__.items())
                  if ct.iotype in ('in', 'out') and not _is_items_event(ct)}
        type.__setattr__(cls, '_class_var_cache', cached)
    return cached


def split_index(name: str) -> tuple[str, tuple[int, ...] | None]:
    """``'x[1][2]'`` -> ``('x', (1, 2))``; ``'x'`` -> ``('x', None)``."""
    if '[' not in name:
        return name, None
    match = _INDEX.match(name)
    if match is None:
        raise ModelError(f'bad variable reference {name!r}: expected name or name[int]...')
    return match.group(1), tuple(int(i) for i in re.findall(r'-?\d+', match.group(2)))


def set_as_top(cont: Container, basedir: str | None = None) -> Container:
    """Make ``cont`` the top of a model tree, rooted at ``basedir`` (default: cwd); return it."""
    if cont.parent is not None:
        raise ModelError(f'{cont._where()}: cannot be made the top: it belongs to '
                         f'{cont.parent._where()!r}')
    cont.name = ''
    cont._top_dir = os.path.abspath(basedir or cont.directory or os.getcwd())
    return cont
