"""The wire decoder builds data only: hostile payloads are refused without importing a module,
starting a process or touching a file, and random input (bounded property-based fuzzing)
either decodes to plain data or raises `WireError`, never anything else."""

from __future__ import annotations

import codecs
import importlib
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from rpyc.core import brine

from openmdao_like.errors import WireError
from openmdao_like.remote import codec
from openmdao_like.variables.file import FileRef
from remote_servers import reduce_pickle

FUZZ = settings(max_examples=300, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def children() -> set[int]:
    """Pids of this process's children."""
    found = set()
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / 'stat').read_text().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                found.add(int(entry.name))
    return found


def hostile(marker: Path) -> list[tuple[str, Any]]:
    """Payloads that ran code, imported modules or allocated gigabytes under the old decoder,
    and trees that try the new one's edges."""
    pickles = [reduce_pickle(os.system, f'touch {marker}'),
               reduce_pickle(subprocess.Popen, ['touch', str(marker)]),
               reduce_pickle(codecs.encode, 'x', 'euc_jp'),
               reduce_pickle(importlib.import_module, 'antigravity'),
               reduce_pickle(bytearray, 1 << 31),
               reduce_pickle(eval, f'open({str(marker)!r}, "w")')]
    packets: list[tuple[str, Any]] = [(f'pickle {i}', ('p', p, ())) for i, p in
                                      enumerate(pickles)]
    packets += [(f'tree {i}', ('x', tree)) for i, tree in enumerate([
        ('os.system', f'touch {marker}'),
        ('A', '|O', (1,), 'C', 0), ('A', '<V8', (1,), 'C', 0), ('A', 'float64', (1,), 'C', 0),
        ('A', '<f8', (1 << 40,), 'C', 0), ('A', '<f8', (-1,), 'C', 0),
        ('A', '<f8', (2,), 'X', 0), ('A', 'O', (3,), 'C', ('L',)),
        ('N', 'O', b''), ('N', '<f8', b'123'), ('R', '/etc/shadow', True, None),
        ('R', 'a/../../b', False, None), ('Z', 0, 10, 0), ('D', ('L',), 1),
        ('S', ('L', 1)), ('T', ('Q',)),
        (), (1, 2), ('',), ('A',), ('C', 1), ('F', 1.5, ('L',)),
    ])]
    nested: Any = 1
    for _ in range(codec.MAX_DEPTH + 5):
        nested = ('L', nested)
    packets.append(('too deep', ('x', nested)))
    return packets


def test_hostile_payloads_are_refused_and_build_nothing(tmp_path: Path) -> None:
    marker = tmp_path / 'pwned'
    cases = hostile(marker)
    modules, procs = set(sys.modules), children()
    for name, packet in cases:
        with pytest.raises(WireError):
            codec.unpack(packet)
    for name, packet in cases:   # and as the bytes of an ObjServer's settings line
        if packet[0] == 'x':
            with pytest.raises(WireError):
                codec.loads(brine.dump(packet[1]))
    assert set(sys.modules) == modules
    assert children() == procs
    assert not marker.exists()


# -- random input ------------------------------------------------------------------------------
TAGS = st.sampled_from(['L', 'T', 'D', 'O', 'S', 'F', 'A', 'N', 'R', 'Z', 'C', '<f8', 'O',
                        '|b1', '<U3', 'x', 'v', 'd', ''])
ATOMS = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(),
                  st.text(max_size=8), st.binary(max_size=16), TAGS)
TREES = st.recursive(ATOMS, lambda inner: st.tuples(TAGS, inner) | st.lists(
    inner, max_size=6).map(tuple) | st.tuples(TAGS, st.lists(inner, max_size=4).map(tuple),
                                              st.sampled_from(['C', 'F']), st.integers(-1, 3)),
                     max_leaves=30)


@FUZZ
@given(tree=TREES, buffers=st.lists(st.binary(max_size=64), max_size=3))
def test_random_trees_decode_to_data_or_wire_error(tree: Any, buffers: list[bytes]) -> None:
    try:
        codec.decode(tree, [bytearray(b) for b in buffers])
    except WireError:
        pass


@FUZZ
@given(data=st.binary(max_size=256))
def test_random_bytes_decode_to_data_or_wire_error(data: bytes) -> None:
    try:
        codec.loads(data)
    except WireError:
        pass


KEYS = st.one_of(st.text(max_size=6), st.integers(-100, 100), st.tuples(st.integers(0, 3)))
PLAIN = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2 ** 64, 2 ** 64),
              st.floats(allow_nan=False), st.text(max_size=10), st.binary(max_size=10),
              st.builds(np.array, st.lists(st.floats(allow_nan=False), max_size=5)),
              st.builds(np.int32, st.integers(-1000, 1000))),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(KEYS, inner, max_size=4)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3).map(OrderedDict)
    | st.frozensets(st.integers(0, 9), max_size=4),
    max_leaves=20)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return type(b) is np.ndarray and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@FUZZ
@given(value=PLAIN)
def test_plain_data_round_trips(value: Any) -> None:
    packet = codec.pack(value)
    if packet[0] == 'x' and len(packet) == 3:   # as the transport delivers out-of-band data
        packet = ('x', packet[1], tuple(np.frombuffer(bytes(b), np.uint8).copy()
                                        for b in packet[2].buffers))
    assert same(codec.unpack(packet), value)
    assert same(codec.loads(*codec.dumps(value)), value)


def test_files_travel_as_relative_paths_with_their_owner() -> None:
    owner = object()
    ref = codec.unpack(codec.pack([FileRef('out/data.bin', None, True, 'stl')]), owner)[0]
    assert (ref.path, ref.owner, ref.binary, ref.content_type) == ('out/data.bin', owner, True,
                                                                     'stl')


def test_what_cannot_travel_says_so() -> None:
    class Thing:
        pass
    with pytest.raises(WireError, match=r'cannot send a .*Thing: only plain data'):
        codec.pack({'x': Thing()})
    with pytest.raises(WireError, match='cannot send an array of dtype'):
        codec.pack(np.zeros(2, dtype=[('a', 'f8')]))
    assert not codec.travels([Thing()]) and codec.travels([1, 'a', np.zeros(2)])
