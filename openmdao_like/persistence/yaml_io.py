"""The YAML dialect of saved models: plain YAML plus a few tags for values that plain YAML
cannot carry (``!array``, ``!tuple``, ``!file``, ``!class``, ``!object``), read with a safe
loader that builds data only — a tagged ``!object`` becomes an `ObjectSpec`, which the model
builder creates later, and only if it is of a type a model may contain.

The loader also bounds what a document may cost before building anything from it: at most
`MAX_NODES` nodes counting every alias as a copy of what it names (a "billion laughs" alias bomb
is a small file that expands to billions), nested at most `MAX_DEPTH` deep, and integers of at
most `MAX_INT_DIGITS` characters.

Every mapping it reads is a `Mapping` that remembers the line of each key, and every tagged value
the line it is written on, so that errors about what a file holds name the line (`line_of`).
A ``!!python/...`` tag is refused: a model file never runs code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import yaml

from ..errors import PersistenceError, bounded_repr

_Dumper = getattr(yaml, 'CSafeDumper', yaml.SafeDumper)
_Loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)

#: A list of at most this many scalars is written on one line (``[1.0, 2.0]``).
FLOW_LIST_MAX = 16
#: Most nodes (scalars, lists, mappings) a document may hold, each alias counted as a copy of
#: the node it names (as code walking the loaded values sees them): a document without aliases
#: is refused only when it is this large itself (a model holding a 1,000,000-element array has
#: about that many nodes), an alias bomb as soon as its expansion would be.
MAX_NODES = 5_000_000
#: Deepest nesting of lists and mappings in a document (a model nests about two levels per
#: assembly); a node that contains itself through an alias is refused by this too.
MAX_DEPTH = 100
#: Most characters of an integer in a document (Python's int parser stops at 4300 digits with
#: a bare ValueError, and an int of 64 bits has 20).
MAX_INT_DIGITS = 100


class Mapping(dict):
    """A mapping read from a file: a dict that also knows the line (1-based) where it starts
    (``line``) and where each of its string keys is written (``key_lines``)."""

    __slots__ = ('line', 'key_lines')

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.line = 0
        self.key_lines: dict[str, int] = {}


def line_of(data: Any, key: Any = None) -> int | None:
    """The line (1-based) of a file where ``key`` of ``data`` is written, else where ``data`` (a
    `Mapping` or a tagged value) starts; None when ``data`` was not read from a file."""
    lines = getattr(data, 'key_lines', None)
    if lines and isinstance(key, str) and key in lines:
        return lines[key]
    return getattr(data, 'line', None) or None


@dataclass(frozen=True)
class ClassRef:
    """``!class pkg.mod.Name``: a class named, not called (e.g. an Instance variable's class)."""

    name: str
    line: int = field(default=0, compare=False, repr=False)


@dataclass
class ObjectSpec:
    """``!object {class: name, args: {...}}``: an object to create from its settings."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    line: int = field(default=0, compare=False)

    def __repr__(self) -> str:
        return f'ObjectSpec({self.name!r}, {bounded_repr(self.args)})'


@dataclass
class FileSpec:
    """``!file {path, binary, content_type}``: a FileRef, relative to its owner's directory."""

    path: str
    binary: bool = False
    content_type: str | None = None
    line: int = field(default=0, compare=False, repr=False)


class Flow(list):
    """A list written on one line."""


class FlowMap(dict):
    """A mapping written on one line (``{src: a.y, dest: b.x}``)."""


class Dumper(_Dumper):
    """Safe dumper with the tags above; stable (insertion) key order."""


class Loader(_Loader):
    """Safe loader with the tags above; refuses a document over its limits before building it.
    ``source`` names the file in errors."""

    source = '<stream>'

    def construct_document(self, node: yaml.Node) -> Any:
        _measure(node, 0, {}, self.source)
        return super().construct_document(node)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """The value of ``node``; a value its tag cannot read (``!!float x``) is a YAML error
        at the node's place, as PyYAML's own constructors raise bare Python errors."""
        try:
            return super().construct_object(node, deep)
        except (yaml.YAMLError, PersistenceError):
            raise
        except Exception as exc:
            text = f' {bounded_repr(node.value)}' if isinstance(node, yaml.ScalarNode) else ''
            raise yaml.constructor.ConstructorError(
                None, None, f'cannot read {node.tag}{text}: {type(exc).__name__}: {exc}',
                node.start_mark) from exc


def _measure(node: yaml.Node, depth: int, seen: dict[int, tuple[int, int]],
             source: str) -> tuple[int, int]:
    """(nodes below and at ``node``, counted through aliases; its height), computed once per
    node (an alias names the same node object); raises `PersistenceError` over the limits."""
    known = seen.get(id(node))
    if depth + (known[1] if known else 0) > MAX_DEPTH:
        raise _over(node, source, f'nests deeper than {MAX_DEPTH} levels (or an alias names a '
                                  f'node that contains it)', 'MAX_DEPTH')
    if known is not None:
        return known
    size, height = 1, 0
    children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) \
        else node.value if isinstance(node, yaml.SequenceNode) else ()
    for child in children:
        child_size, child_height = _measure(child, depth + 1, seen, source)
        size += child_size
        height = max(height, child_height + 1)
        if size > MAX_NODES:
            how = 'holds' if len(seen) >= MAX_NODES else 'expands through its aliases to'
            raise _over(node, source, f'{how} more than {MAX_NODES:,} nodes', 'MAX_NODES')
    seen[id(node)] = (size, height)
    return size, height


def _over(node: yaml.Node, source: str, what: str, limit: str) -> PersistenceError:
    return PersistenceError(f'{source}: line {node.start_mark.line + 1}: the document {what}, '
                            f'over the limit of a model file ({__name__}.{limit})')


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _represent_list(dumper: Dumper, data: list) -> yaml.Node:
    flow = isinstance(data, Flow) or (len(data) <= FLOW_LIST_MAX and all(map(_scalar, data)))
    return dumper.represent_sequence('tag:yaml.org,2002:seq', data, flow_style=flow)


def _flow_nested(data: Any) -> Any:
    return Flow(_flow_nested(x) for x in data) if isinstance(data, list) else data


def _represent_flow_map(dumper: Dumper, data: FlowMap) -> yaml.Node:
    return dumper.represent_mapping('tag:yaml.org,2002:map', data, flow_style=True)


def _represent_array(dumper: Dumper, arr: np.ndarray) -> yaml.Node:
    if arr.dtype.kind not in 'biuf':
        raise yaml.representer.RepresenterError(f'cannot write an array of dtype {arr.dtype}')
    body = {'dtype': arr.dtype.name, 'shape': Flow(arr.shape),
            'data': _flow_nested(arr.tolist())}
    return dumper.represent_mapping('!array', body, flow_style=False)


def _represent_tuple(dumper: Dumper, data: tuple) -> yaml.Node:
    return dumper.represent_sequence('!tuple', list(data), flow_style=all(map(_scalar, data)))


def _represent_classref(dumper: Dumper, ref: ClassRef) -> yaml.Node:
    return dumper.represent_scalar('!class', ref.name)


def _represent_object(dumper: Dumper, spec: ObjectSpec) -> yaml.Node:
    body: dict[str, Any] = {'class': spec.name}
    if spec.args:
        body['args'] = spec.args
    return dumper.represent_mapping('!object', body)


def _represent_file(dumper: Dumper, spec: FileSpec) -> yaml.Node:
    body: dict[str, Any] = {'path': spec.path}
    if spec.binary:
        body['binary'] = True
    if spec.content_type is not None:
        body['content_type'] = spec.content_type
    return dumper.represent_mapping('!file', body, flow_style=True)


def _represent_numpy_scalar(dumper: Dumper, value: np.generic) -> yaml.Node:
    return dumper.represent_data(value.item())


Dumper.add_representer(Mapping, yaml.representer.SafeRepresenter.represent_dict)
Dumper.add_representer(list, _represent_list)
Dumper.add_representer(Flow, _represent_list)
Dumper.add_representer(FlowMap, _represent_flow_map)
Dumper.add_representer(tuple, _represent_tuple)
Dumper.add_representer(np.ndarray, _represent_array)
Dumper.add_representer(ClassRef, _represent_classref)
Dumper.add_representer(ObjectSpec, _represent_object)
Dumper.add_representer(FileSpec, _represent_file)
Dumper.add_multi_representer(np.generic, _represent_numpy_scalar)


def _mapping(loader: Loader, node: yaml.Node, tag: str) -> dict[str, Any]:
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(None, None, f'{tag} expects a mapping',
                                                node.start_mark)
    return loader.construct_mapping(node, deep=True)


def _construct_map(loader: Loader, node: yaml.MappingNode) -> Iterator[Mapping]:
    """A `Mapping` (yielded empty first, so that aliases of it inside it resolve)."""
    data = Mapping()
    yield data
    data.update(loader.construct_mapping(node))
    data.line = node.start_mark.line + 1
    data.key_lines = {key.value: key.start_mark.line + 1 for key, _ in node.value
                      if isinstance(key, yaml.ScalarNode)}


def _refuse_python(loader: Loader, suffix: str, node: yaml.Node) -> None:
    """A ``!!python/...`` tag: refused, whatever it names."""
    raise PersistenceError(f'{loader.source}: line {node.start_mark.line + 1}: the tag '
                           f'!!python/{suffix} is refused: model files never run code (a model '
                           f'file names model classes, created from their settings)')


def _construct_array(loader: Loader, node: yaml.Node) -> np.ndarray:
    body = _mapping(loader, node, '!array')
    try:
        dtype = np.dtype(str(body['dtype']))
        if dtype.kind not in 'biuf':
            raise TypeError(f'dtype {dtype} is not a number or bool type')
        arr = np.array(body['data'], dtype=dtype)
        return arr.reshape([int(n) for n in body['shape']])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f'!array needs dtype, shape and data that agree: {exc}',
            node.start_mark) from None


def _construct_int(loader: Loader, node: yaml.Node) -> int:
    text = loader.construct_scalar(node)
    if len(text) > MAX_INT_DIGITS:
        raise PersistenceError(f'{loader.source}: line {node.start_mark.line + 1}: an integer '
                               f'of {len(text):,} characters; a model file may hold integers '
                               f'of at most {MAX_INT_DIGITS}')
    return loader.construct_yaml_int(node)


def _construct_tuple(loader: Loader, node: yaml.Node) -> tuple:
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(None, None, '!tuple expects a sequence',
                                                node.start_mark)
    return tuple(loader.construct_sequence(node, deep=True))


def _construct_classref(loader: Loader, node: yaml.Node) -> ClassRef:
    return ClassRef(str(loader.construct_scalar(node)), node.start_mark.line + 1)


def _construct_object(loader: Loader, node: yaml.Node) -> ObjectSpec:
    body = _mapping(loader, node, '!object')
    args = body.get('args') or {}
    if not isinstance(body.get('class'), str) or not isinstance(args, dict) or \
            set(body) - {'class', 'args'}:
        raise yaml.constructor.ConstructorError(
            None, None, '!object expects {class: dotted.Name, args: {...}}', node.start_mark)
    return ObjectSpec(body['class'], args, node.start_mark.line + 1)


def _construct_file(loader: Loader, node: yaml.Node) -> FileSpec:
    body = _mapping(loader, node, '!file')
    if not isinstance(body.get('path'), str) or set(body) - {'path', 'binary', 'content_type'}:
        raise yaml.constructor.ConstructorError(
            None, None, '!file expects {path: str, binary: bool, content_type: str}',
            node.start_mark)
    return FileSpec(body['path'], bool(body.get('binary', False)), body.get('content_type'),
                    node.start_mark.line + 1)


Loader.add_constructor('tag:yaml.org,2002:int', _construct_int)
Loader.add_constructor('tag:yaml.org,2002:map', _construct_map)
Loader.add_multi_constructor('tag:yaml.org,2002:python/', _refuse_python)
Loader.add_constructor('!array', _construct_array)
Loader.add_constructor('!tuple', _construct_tuple)
Loader.add_constructor('!class', _construct_classref)
Loader.add_constructor('!object', _construct_object)
Loader.add_constructor('!file', _construct_file)


def dump_documents(documents: list[Any], comment: str = '') -> str:
    """YAML text of ``documents`` (each starting with ``---``, the last ending with ``...``)."""
    text = yaml.dump_all(documents, Dumper=Dumper, sort_keys=False, explicit_start=True,
                         explicit_end=False, default_flow_style=False, allow_unicode=True,
                         width=100)
    return f'{comment}{text}...\n'


def load_documents(text: str, source: str = '<stream>') -> Iterator[Any]:
    """An iterator over the documents of ``text`` (parsed one at a time; errors name
    ``source``)."""
    loader = Loader(text)
    loader.source = source
    try:
        while loader.check_data():
            yield loader.get_data()
    finally:
        loader.dispose()
