"""Bounded property-based fuzzing of loading YAML model files: whatever the bytes, text or nested
YAML (with anchors, aliases and tags) a file holds, `openmdao_like.load` either builds a model or
raises one of the documented errors — `PersistenceError` (a `VersionMismatchError` is one) or
`PathError` — at once, and never runs what the file names.

Reproducible: a fixed number of examples per test, derandomized, no example database."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import persist_models as pm
from openmdao_like import Assembly, load, set_as_top
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import FullFactorial
from openmdao_like.errors import PathError, PersistenceError
from openmdao_like.persistence.yaml_io import dump_documents, load_documents
from openmdao_like.recorders import CSVRecorder

#: What loading a model file may raise (anything else is a bug).
DOCUMENTED = (PersistenceError, PathError)
#: A file the fuzzed models try to create (through Popen, os.system, a recorder...).
MARKER = Path(tempfile.gettempdir()) / f'openmdao_like_fuzz_{os.getpid()}'
FUZZ = settings(max_examples=200, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def template() -> str:
    """A saved model (a component with every variable type, a DOE driver with a generator, a
    recorder) whose header also lists the classes the fuzzer names, as an attacker's would."""
    top = set_as_top(Assembly())
    top.add('e', pm.Everything())
    top.add('driver', DOEDriver(FullFactorial(num_levels=2)))
    top.driver.workflow.add('e')
    top.driver.add_parameter('e.f', low=0.0, high=1.0)
    top.recorders = [CSVRecorder('cases.csv')]
    stream = io.StringIO()
    top.save(stream, fmt='yaml')
    rows = ''.join(f'- class: {name}\n  distribution: null\n  version: null\n'
                   for name in ('subprocess.Popen', 'builtins.dict'))
    return stream.getvalue().replace('classes:\n', f'classes:\n{rows}', 1)


TEMPLATE = template()
#: Where a fuzzed value goes: (text it replaces, what the value is).
PLACES = [('l: [1, 2]', 'l: {}'),                                    # a List variable's value
          ('klass: null', 'klass: {}'),                              # an Instance(dict)'s value
          ('f: 1.5', 'f: {}'),                                       # a Float's value
          ('    sequential: true', '    sequential: {}'),            # a driver setting
          ('      num_levels: 2', '      num_levels: {}'),           # a generator's argument
          ('    path: cases.csv', '    path: {}'),                   # a recorder's path
          ('- {target: e.f, low: 0.0, high: 1.0}', '- {}'),          # a driver parameter
          ('openmdao_like_model: 1\n', 'openmdao_like_model: 1\nextra: {}\n'),  # the header
          ('classes:\n', 'classes: {}\nignored:\n')]                  # the header's classes

#: The keys of a model node, an assembly's (the top) or a driver's.
NODE_KEYS = ['class', 'settings', 'directory', 'added_variables', 'variables', 'children',
             'connections', 'driver_workflow', 'recorders', 'workflow', 'parameters',
             'objectives', 'constraints', 'responses', 'unknown']


def with_fuzz_at(node: str, key: str) -> str:
    """TEMPLATE with ``__FUZZ__`` as the value of ``key`` of the top (``node=''``) or of its
    child ``node``."""
    header, model = load_documents(TEMPLATE)
    (model['children'][node] if node else model)[key] = '__FUZZ__'
    return dump_documents([header, model])


SCALARS = st.one_of(
    st.sampled_from(['null', 'true', '~', '0x1F', '0o17', '1_000', '.inf', '-.nan', '1e400',
                     '2001-12-14', '190:20:30', '=', '<<', "''", '"\\u0000"', '-', '?',
                     'subprocess.Popen', 'os.system', 'builtins.dict', 'persist_models.Everything',
                     'openmdao_like.drivers.doe.FullFactorial', '/etc/passwd', '../../x',
                     f'[touch, {MARKER}]', '1' * 5000,
                     # the keys of tagged values: !object, !array, !file
                     'class', 'args', 'dtype', 'shape', 'data', 'path', 'float64', 'int8']),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(st.characters(exclude_categories=('Cc', 'Cs', 'Cn')), max_size=20).map(
        lambda text: json.dumps(text, ensure_ascii=False)))
TAGS = st.sampled_from(['!array', '!tuple', '!class', '!object', '!file', '!!int', '!!float',
                        '!!str', '!!binary', '!!set', '!!omap', '!!timestamp', '!!map',
                        '!!python/object/apply:os.system', '!unknown'])


@st.composite
def yaml_node(draw: st.DrawFn, anchors: list[str], depth: int = 0) -> str:
    """A flow-style YAML node — a scalar, sequence or mapping, with or without an anchor and a
    tag — or an alias of an anchor defined before it (``anchors``, in document order; its own
    enclosing node included)."""
    kind = draw(st.sampled_from(['scalar', 'alias', 'seq', 'map'] if depth < 4 else
                                ['scalar', 'alias']))
    if kind == 'alias' and anchors:
        return '*' + draw(st.sampled_from(anchors))
    prefix = ''
    if draw(st.integers(0, 3)) == 0:
        anchors.append(f'a{len(anchors)}')
        prefix += f'&{anchors[-1]} '
    if draw(st.integers(0, 3)) == 0:
        prefix += f'{draw(TAGS)} '
    if kind in ('scalar', 'alias'):
        return prefix + draw(SCALARS)
    size = draw(st.integers(0, 6))
    if kind == 'seq':
        items = (draw(yaml_node(anchors, depth + 1)) for _ in range(size))
        return prefix + '[' + ', '.join(items) + ']'
    pairs = (f'{draw(SCALARS | yaml_node(anchors, depth + 1))}: '
             f'{draw(yaml_node(anchors, depth + 1))}' for _ in range(size))
    return prefix + '{' + ', '.join(pairs) + '}'


def load_or_refuse(data: str | bytes) -> None:
    """Load ``data``; only the documented errors may escape, and nothing may have run."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else io.StringIO(data)
    try:
        load(stream)
    except DOCUMENTED:
        pass
    assert not MARKER.exists(), 'loading ran something the file named'


@pytest.fixture(autouse=True, scope='module')
def no_marker():
    MARKER.unlink(missing_ok=True)
    yield
    MARKER.unlink(missing_ok=True)


@FUZZ
@given(st.binary(max_size=2000) | st.text(max_size=2000))
def test_arbitrary_bytes_and_text(data):
    load_or_refuse(data)


@FUZZ
@given(st.text(max_size=500))
def test_arbitrary_text_as_the_model_document(text):
    load_or_refuse(f'openmdao_like_model: 1\nclasses: []\n---\n{text}\n...\n')


@FUZZ
@given(st.sampled_from(PLACES), st.builds(list).flatmap(yaml_node))
def test_nested_yaml_with_aliases_and_tags_in_a_model(place, node):
    old, new = place
    load_or_refuse(TEMPLATE.replace(old, new.format(node), 1))


@FUZZ
@given(st.integers(1, 12), st.integers(2, 12), st.sampled_from(PLACES))
def test_alias_chains_of_any_size(levels, width, place):
    """Chains of anchors, each aliasing the one before ``width`` times: from a few nodes to
    ``12 ** 12``; each loads or is refused within the deadline."""
    items = ['&c0 [x]'] + [f'&c{i} [' + ', '.join([f'*c{i - 1}'] * width) + ']'
                           for i in range(1, levels)]
    old, new = place
    load_or_refuse(TEMPLATE.replace(old, new.format('[' + ', '.join(items) + ']'), 1))


@FUZZ
@given(st.sampled_from(['', 'driver', 'e']), st.sampled_from(NODE_KEYS),
       st.builds(list).flatmap(yaml_node))
def test_nested_yaml_as_any_key_of_a_node(node, key, value):
    """Any key of the top, the driver or the component holding any YAML value."""
    load_or_refuse(with_fuzz_at(node, key).replace('__FUZZ__', value, 1))
