"""Case recorders: CSV, JSON Lines and SQLite round trips, life cycle, and bad case files."""

from __future__ import annotations

import json
import logging
import math
import pickle
import sqlite3
import threading

import numpy as np
import pytest

import openmdao_like.recorders as recorders
from openmdao_like.cases import FAILED, Case, failed_value
from openmdao_like.errors import OpenMDAOLikeError, RecorderError
from openmdao_like.recorders import (CaseRecorder, CSVRecorder, JSONRecorder, SQLiteRecorder,
                                     read_cases, read_cases_array)

FORMATS = [(CSVRecorder, 'csv'), (JSONRecorder, 'jsonl'), (SQLiteRecorder, 'sqlite')]
TRACEBACK = ('Traceback (most recent call last):\n  File "comp.py", line 3, in execute\n'
             '    raise ValueError("x, too big")\nValueError: x, too big\n')


def ok_case(i: int, **extra) -> Case:
    """A successful case with one value of every kind the recorders must keep."""
    inputs = {'comp.x': 0.5 * i, 'comp.n': i, 'comp.flag': i % 2 == 0, 'comp.name': f'run "{i}"',
              'comp.v': np.array([[1.0, np.nan], [np.inf, -2.5 * i]]), **extra}
    outputs = {'comp.f': i * 1.25, 'comp.ids': np.arange(3) + i, 'comp.none': None}
    return Case(i, inputs, outputs, driver='top.driver', t_start=100.0 + i, t_end=100.5 + i)


def failed_case(i: int) -> Case:
    """A failed case as a driver records it: outputs replaced by NaN or None, traceback kept."""
    good = ok_case(i)
    outputs = {name: failed_value(value) for name, value in good.outputs.items()}
    return Case(i, good.inputs, outputs, status=FAILED, error=TRACEBACK, driver='top.driver',
                retries=1)


def write(cls, path, cases, **kwargs):
    """Record `cases` with a new recorder of class `cls` and close it."""
    with cls(path, **kwargs) as rec:
        for case in cases:
            rec.record(case)
    return rec


@pytest.fixture(params=FORMATS, ids=[ext for _, ext in FORMATS])
def fmt(request, tmp_path):
    """(recorder class, path with the format's extension)."""
    cls, ext = request.param
    return cls, tmp_path / f'cases.{ext}'


# -- round trips -----------------------------------------------------------------------------

def test_round_trip_ok_and_failed_cases(fmt):
    cls, path = fmt
    write(cls, path, [ok_case(0), failed_case(1), ok_case(2)])
    rows = read_cases(path)
    assert [r['id'] for r in rows] == [0, 1, 2]
    assert [r['status'] for r in rows] == ['ok', 'failed', 'ok']
    assert rows[0]['error'] is None and rows[2]['error'] is None
    assert rows[1]['error'] == TRACEBACK
    assert list(rows[2]) == ['id', 'driver', 'iteration', 'status', 'error', 'comp.x', 'comp.n',
                             'comp.flag', 'comp.name', 'comp.v', 'comp.f', 'comp.ids',
                             'comp.none']
    assert [(r['driver'], r['iteration']) for r in rows] == [
        ('top.driver', 'top.driver:0'), ('top.driver', 'top.driver:1'),
        ('top.driver', 'top.driver:2')]
    ok = rows[2]
    assert ok['comp.x'] == 1.0 and type(ok['comp.x']) is float
    assert ok['comp.n'] == 2 and type(ok['comp.n']) is int
    assert ok['comp.flag'] is True and rows[1]['comp.flag'] is False
    assert ok['comp.name'] == 'run "2"'
    assert ok['comp.f'] == 2.5
    assert ok['comp.none'] is None
    assert isinstance(ok['comp.v'], np.ndarray) and ok['comp.v'].shape == (2, 2)
    np.testing.assert_array_equal(ok['comp.v'], [[1.0, np.nan], [np.inf, -5.0]])
    assert isinstance(ok['comp.ids'], np.ndarray) and ok['comp.ids'].dtype.kind == 'i'
    np.testing.assert_array_equal(ok['comp.ids'], [2, 3, 4])
    bad = rows[1]
    assert bad['comp.x'] == 0.5 and bad['comp.n'] == 1       # inputs kept
    assert math.isnan(bad['comp.f'])                         # numeric outputs -> NaN
    assert bad['comp.ids'].shape == (3,) and np.isnan(bad['comp.ids']).all()
    assert bad['comp.none'] is None


@pytest.mark.parametrize('text', ['', '1.5', 'true', 'null', 'NaN', '[1, 2]', '"quoted"', ' 7',
                                  'a,b\nc', 'Infinity and beyond', '{"__ndarray__": 1}'])
def test_strings_that_look_like_other_values_stay_strings(fmt, text):
    cls, path = fmt
    write(cls, path, [Case(0, {'s': text}, {'t': 'plain'})])
    (row,) = read_cases(path)
    assert row['s'] == text and type(row['s']) is str
    assert row['t'] == 'plain'


def test_exact_types_kept_by_json_and_sqlite(tmp_path):
    values = {'u8': np.array([1, 255], dtype=np.uint8), 'c': np.array([1 + 2j, -3j]),
              's': np.array(['a', 'bc']), 'e': np.zeros((0, 3)), 'z': np.array(4.0),
              'f32': np.float32(1.5), 'i64': np.int64(-7), 'b': np.bool_(True), 'cx': 2 - 1j,
              'nested': {'a': [1, 2.5, None]}, 'obj': object()}
    for cls, name in ((JSONRecorder, 'c.jsonl'), (SQLiteRecorder, 'c.db')):
        write(cls, tmp_path / name, [Case(0, values)])
        (row,) = read_cases(tmp_path / name)
        assert row['u8'].dtype == np.uint8 and row['u8'].tolist() == [1, 255]
        assert row['c'].dtype == np.complex128 and row['c'].tolist() == [1 + 2j, -3j]
        assert row['s'].tolist() == ['a', 'bc']
        assert row['e'].shape == (0, 3) and row['z'].shape == ()
        assert row['f32'] == 1.5 and type(row['f32']) is float
        assert row['i64'] == -7 and type(row['i64']) is int
        assert row['b'] is True and row['cx'] == 2 - 1j
        assert row['nested'] == {'a': [1, 2.5, None]}
        assert row['obj'].startswith('<object object at')


def test_json_lines_layout(tmp_path):
    path = tmp_path / 'c.jsonl'
    write(JSONRecorder, path, [Case(3, {'x': np.float64(1.0), 'n': np.int32(2)},
                                    {'v': np.array([np.nan, 1.0])}, driver='d', retries=2)])
    text = path.read_text()
    assert text.count('\n') == 1 and 'NaN' in text
    line = json.loads(text)
    assert list(line) == ['id', 'driver', 'iteration', 'status', 'error', 't_start', 't_end',
                          'retries', 'inputs', 'outputs']
    assert line['id'] == 0 and line['iteration'] == 'd:3'
    assert line['inputs'] == {'x': 1.0, 'n': 2} and line['retries'] == 2
    assert line['outputs']['v']['__ndarray__'][1] == 1.0
    assert line['outputs']['v']['dtype'] == 'float64' and line['outputs']['v']['shape'] == [2]


def test_ids_number_the_records_and_iterations_keep_the_case_numbers(fmt):
    cls, path = fmt
    write(cls, path, [ok_case(i) for i in (4, 0, 3, 1, 1)])
    rows = read_cases(path)
    assert [r['id'] for r in rows] == [0, 1, 2, 3, 4]
    assert [r['comp.n'] for r in rows] == [4, 0, 3, 1, 1]
    assert [r['iteration'] for r in rows] == [f'top.driver:{n}' for n in (4, 0, 3, 1, 1)]


def test_values_are_taken_when_recorded(fmt):
    cls, path = fmt
    value = np.array([1.0, 2.0])
    inputs = {'x': value}
    with cls(path) as rec:
        rec.record(Case(0, inputs))
        value[0] = 99.0          # a driver reusing its arrays must not change what was recorded
        inputs['x2'] = 5.0
    (row,) = read_cases(path)
    assert row['x'].tolist() == [1.0, 2.0] and 'x2' not in row


def test_output_with_an_input_path_wins(fmt):
    cls, path = fmt
    write(cls, path, [Case(0, {'a': 1.0, 'b': 2.0}, {'a': 3.0})])
    assert read_cases(path) == [{'id': 0, 'driver': '', 'iteration': '0', 'status': 'ok',
                                 'error': None, 'a': 3.0, 'b': 2.0}]


def test_zero_cases(fmt):
    cls, path = fmt
    write(cls, path, [])
    assert read_cases(path) == []
    assert read_cases_array(path).dtype.names == ('id', 'driver', 'iteration', 'status')


# -- CSV specifics ---------------------------------------------------------------------------

def test_csv_layout(tmp_path):
    path = tmp_path / 'c.csv'
    write(CSVRecorder, path, [Case(0, {'x': 1.5, 'v': np.array([1.0, 2.0])}, {'ok': True},
                                   driver='top.driver', t_start=1.0, t_end=2.0)])
    assert path.read_text().splitlines() == [
        'id,driver,iteration,status,error,t_start,t_end,retries,x,v,ok',
        '0,top.driver,top.driver:0,ok,,1.0,2.0,0,1.5,"[1.0, 2.0]",true']


@pytest.mark.parametrize('buffer_size', [1, 1000])
def test_csv_variable_first_seen_in_a_later_case(tmp_path, buffer_size):
    path = tmp_path / 'late.csv'
    cases = [Case(0, {'x': 1.0}, {'f': 2.0}, status=FAILED, error=TRACEBACK),
             Case(1, {'x': 3.0, 'late_in': 'new'}, {'f': 4.0, 'late_out': np.array([1, 2])}),
             Case(2, {'x': 5.0}, {'f': 6.0})]
    with CSVRecorder(path, buffer_size=buffer_size) as rec:
        rec.record(cases[0])
        rec.flush()                               # header written before 'late_*' are known
        for case in cases[1:]:
            rec.record(case)
    header = path.read_text().splitlines()[0]
    assert header == ('id,driver,iteration,status,error,t_start,t_end,retries,x,f,late_in,'
                      'late_out')
    rows = read_cases(path)
    assert rows[0] == {'id': 0, 'driver': '', 'iteration': '0', 'status': 'failed',
                       'error': TRACEBACK, 'x': 1.0, 'f': 2.0}
    assert rows[1]['late_in'] == 'new' and rows[1]['late_out'].tolist() == [1, 2]
    assert rows[2] == {'id': 2, 'driver': '', 'iteration': '2', 'status': 'ok', 'error': None,
                       'x': 5.0, 'f': 6.0}
    # no temporary file left behind; the metadata beside the cases
    assert sorted(p.name for p in tmp_path.iterdir()) == ['late.csv', 'late.csv.meta.json']


def test_csv_refuses_a_variable_named_like_a_fixed_column(tmp_path):
    path = tmp_path / 'c.csv'
    with CSVRecorder(path) as rec:
        with pytest.raises(RecorderError, match=r"case 7 has a variable named 'status'.*"
                                                r"id,driver,iteration,status,error"):
            rec.record(Case(7, {'status': 1.0}))


# -- SQLite specifics ------------------------------------------------------------------------

def test_sqlite_schema_and_batches(tmp_path):
    path = tmp_path / 'c.sqlite'
    rec = SQLiteRecorder(path, batch_size=2)
    rec.startup()
    try:
        for i in range(3):
            rec.record(ok_case(i))
        assert [r['id'] for r in read_cases(path)] == [0, 1]     # one full batch written
        rec.flush()
        assert [r['id'] for r in read_cases(path)] == [0, 1, 2]
    finally:
        rec.close()
    conn = sqlite3.connect(path)
    try:
        columns = [row[1] for row in conn.execute('PRAGMA table_info(cases)')]
        assert columns == ['id', 'driver', 'iteration', 'status', 'message', 't_start', 't_end',
                           'retries', 'inputs', 'outputs']
        assert conn.execute('SELECT format_version FROM metadata').fetchall() == [(2,)]
        assert conn.execute('SELECT driver, iteration, t_start FROM cases WHERE id = 2'
                            ).fetchone() == ('top.driver', 'top.driver:2', 102.0)
    finally:
        conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['c.sqlite']   # WAL folded back


def test_sqlite_records_from_many_threads(tmp_path):
    path = tmp_path / 'c.sqlite'
    with SQLiteRecorder(path, batch_size=7) as rec:
        def work(start):
            for i in range(start, start + 250):
                rec.record(Case(i, {'x': float(i)}))
        threads = [threading.Thread(target=work, args=(k * 250,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    rows = read_cases(path)
    assert [r['id'] for r in rows] == list(range(1000))
    assert sorted(r['x'] for r in rows) == [float(i) for i in range(1000)]
    assert all(r['iteration'] == str(int(r['x'])) for r in rows)


def test_bad_batch_size():
    with pytest.raises(RecorderError, match=r"'x.db'.*batch_size must be an int >= 1, got 0"):
        SQLiteRecorder('x.db', batch_size=0)


# -- life cycle ------------------------------------------------------------------------------

def test_existing_file_is_overwritten_and_logged(fmt, caplog):
    cls, path = fmt
    path.write_text('old content that is not a case file\n')
    with caplog.at_level(logging.INFO, logger='openmdao_like.recorders'):
        write(cls, path, [ok_case(5)])
    assert [r['iteration'] for r in read_cases(path)] == ['top.driver:5']
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any('replacing existing file' in m and str(path) in m for m in messages)


def test_new_file_is_not_logged(fmt, caplog):
    cls, path = fmt
    with caplog.at_level(logging.INFO, logger='openmdao_like.recorders'):
        write(cls, path, [ok_case(0)])
    assert not [r for r in caplog.records if 'replacing' in r.getMessage()]


def test_missing_parent_directory_is_a_clear_error(fmt):
    cls, path = fmt
    target = path.parent / 'no_such_dir' / path.name
    rec = cls(target)
    with pytest.raises(FileNotFoundError) as info:
        rec.startup()
    message = str(info.value)
    assert str(target) in message and 'does not exist' in message
    assert not target.parent.exists()
    rec.close()                       # nothing was opened: still fine


def test_pickle_before_startup_then_use_the_copy(fmt):
    cls, path = fmt
    rec = cls(path) if cls is JSONRecorder else cls(path, **{
        CSVRecorder: {'buffer_size': 3}, SQLiteRecorder: {'batch_size': 3}}[cls])
    copy = pickle.loads(pickle.dumps(rec))
    assert type(copy) is cls and copy.path == path and not copy.is_open
    assert getattr(copy, 'batch_size', getattr(copy, 'buffer_size', 3)) == 3
    with copy:
        copy.record(ok_case(1))
    assert [r['comp.n'] for r in read_cases(path)] == [1]
    pickle.loads(pickle.dumps(copy))   # closed again: picklable


def test_pickling_an_open_recorder_is_refused(fmt):
    cls, path = fmt
    with cls(path) as rec:
        with pytest.raises(TypeError, match=r'while it is open.*before startup\(\)'):
            pickle.dumps(rec)


def test_close_is_idempotent_and_record_needs_startup(fmt):
    cls, path = fmt
    rec = cls(path)
    rec.close()                                      # before startup: nothing to do
    with pytest.raises(RecorderError, match=r'cannot record case 0.*not started.*startup\(\)'):
        rec.record(ok_case(0))
    rec.startup()
    with pytest.raises(RecorderError, match='startup\\(\\) called twice'):
        rec.startup()
    rec.record(ok_case(0))
    rec.close()
    rec.close()
    rec.flush()
    assert not rec.is_open
    with pytest.raises(RecorderError, match=r'cannot record case 1.*closed'):
        rec.record(ok_case(1))
    assert [r['id'] for r in read_cases(path)] == [0]


def test_context_manager_closes_on_error(fmt):
    cls, path = fmt
    with pytest.raises(KeyError):
        with cls(path) as rec:
            rec.record(ok_case(0))
            raise KeyError('boom')
    assert not rec.is_open
    assert [r['id'] for r in read_cases(path)] == [0]


def test_case_recorder_is_abstract(tmp_path):
    with pytest.raises(TypeError):
        CaseRecorder(tmp_path / 'x')


# -- reading: formats and bad input ----------------------------------------------------------

def test_fmt_argument_and_sqlite_sniffing(tmp_path):
    write(JSONRecorder, tmp_path / 'a.jsonl', [ok_case(0)])
    (tmp_path / 'a.jsonl').rename(tmp_path / 'a.txt')
    assert read_cases(tmp_path / 'a.txt', fmt='json')[0]['comp.n'] == 0
    write(SQLiteRecorder, tmp_path / 'b.sqlite', [ok_case(1)])
    (tmp_path / 'b.sqlite').rename(tmp_path / 'b.out')
    assert read_cases(str(tmp_path / 'b.out'))[0]['comp.n'] == 1      # SQLite magic header
    write(JSONRecorder, tmp_path / 'c.json', [ok_case(2)])
    assert read_cases(tmp_path / 'c.json')[0]['comp.n'] == 2


def test_missing_file(tmp_path):
    path = tmp_path / 'nope.csv'
    with pytest.raises(FileNotFoundError, match='no such case file') as info:
        read_cases(path)
    assert str(path) in str(info.value)


def test_unknown_extension_without_fmt(tmp_path):
    path = tmp_path / 'cases.txt'
    path.write_text('id,status\n')
    with pytest.raises(ValueError) as info:
        read_cases(path)
    message = str(info.value)
    assert isinstance(info.value, RecorderError) and isinstance(info.value, OpenMDAOLikeError)
    assert str(path) in message and ".csv, .jsonl, .json, .sqlite, .db" in message
    assert "found the extension '.txt'" in message


def test_unknown_fmt(tmp_path):
    with pytest.raises(ValueError, match=r"expected fmt to be one of 'csv'.*found 'xml'"):
        read_cases(tmp_path / 'x.csv', fmt='xml')


@pytest.mark.parametrize('ext', ['csv', 'jsonl'])
def test_sqlite_database_with_a_text_extension(tmp_path, ext):
    path = tmp_path / f'really_sqlite.{ext}'
    write(SQLiteRecorder, path, [ok_case(0)])
    with pytest.raises(RecorderError) as info:
        read_cases(path)
    message = str(info.value)
    assert str(path) in message and f"(as its extension '.{ext}' says)" in message
    assert message.endswith('found an SQLite database')


@pytest.mark.parametrize('content, found', [(b'id,status,error\n0,ok,\n', "b'id,status,error"),
                                            (b'', 'an empty file')])
def test_text_file_with_the_sqlite_extension(tmp_path, content, found):
    path = tmp_path / 'cases.sqlite'
    path.write_bytes(content)
    with pytest.raises(RecorderError) as info:
        read_cases(path)
    message = str(info.value)
    assert str(path) in message and 'expected an SQLite case database' in message
    assert found in message


def test_truncated_csv(tmp_path):
    path = tmp_path / 'c.csv'
    write(CSVRecorder, path, [ok_case(0), ok_case(1)])
    text = path.read_text()
    path.write_text(text[:text.rindex('\n', 0, len(text) - 1) + 20])   # cut the last row
    with pytest.raises(RecorderError) as info:
        read_cases(path)
    message = str(info.value)
    assert str(path) in message
    assert 'expected 16 fields per row' in message
    assert 'on line 3' in message and 'truncated' in message


def test_csv_cut_inside_a_quoted_cell(tmp_path):
    path = tmp_path / 'c.csv'
    write(CSVRecorder, path, [failed_case(0)])
    text = path.read_text()
    path.write_text(text[:text.index('Traceback') + 20])
    with pytest.raises(RecorderError, match=r'expected well-formed CSV|expected 16 fields') as info:
        read_cases(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize('content, found', [
    ('', 'found an empty file'),
    ('a,b,c\n1,2,3\n', "found the header 'a,b,c'"),
    ('id,status,error,driver,t_start,t_end,retries\nseven,ok,,,0.0,0.0,0\n', "'seven' on line 2"),
])
def test_csv_that_is_not_a_case_file(tmp_path, content, found):
    path = tmp_path / 'c.csv'
    path.write_text(content)
    with pytest.raises(RecorderError) as info:
        read_cases(path)
    assert str(path) in str(info.value) and found in str(info.value)
    assert 'expected a' in str(info.value)


def test_binary_garbage_csv(tmp_path):
    path = tmp_path / 'c.csv'
    path.write_bytes(b'id,status,error,driver,t_start,t_end,retries\n\xff\xfe\x00garbage\n')
    with pytest.raises(RecorderError, match='expected UTF-8 CSV text, found undecodable'):
        read_cases(path)


def test_truncated_jsonl(tmp_path):
    path = tmp_path / 'c.jsonl'
    write(JSONRecorder, path, [ok_case(0), ok_case(1)])
    path.write_text(path.read_text()[:-30])
    with pytest.raises(RecorderError) as info:
        read_cases(path)
    message = str(info.value)
    assert str(path) in message and 'expected one JSON object per line' in message
    assert 'invalid JSON on line 2' in message


@pytest.mark.parametrize('line, found', [
    ('[1, 2]', 'found a JSON list on line 1'),
    ('{"id": 0, "status": "ok"}', 'found no driver, error, t_start'),
    ('{"id": "zero", "status": "ok", "error": null, "driver": "", "t_start": 0, "t_end": 0, '
     '"retries": 0, "inputs": {}, "outputs": {}}', "expected an integer case id, found 'zero'"),
    ('{"id": 0, "status": "ok", "error": null, "driver": "", "t_start": 0, "t_end": 0, '
     '"retries": 0, "inputs": {"id": 1}, "outputs": {}}', "a variable named 'id' on line 1"),
])
def test_jsonl_that_is_not_a_case_file(tmp_path, line, found):
    path = tmp_path / 'c.jsonl'
    path.write_text(line + '\n')
    with pytest.raises(RecorderError) as info:
        read_cases(path)
    assert str(path) in str(info.value) and found in str(info.value)


def test_truncated_sqlite(tmp_path):
    path = tmp_path / 'c.sqlite'
    write(SQLiteRecorder, path, [ok_case(i) for i in range(2000)])
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])
    with pytest.raises(RecorderError) as info:
        read_cases(path)
    message = str(info.value)
    assert str(path) in message and 'expected an SQLite case database' in message
    assert 'SQLite error' in message


def test_sqlite_that_is_not_a_case_database(tmp_path):
    path = tmp_path / 'other.db'
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute('CREATE TABLE results (x REAL)')
    finally:
        conn.close()
    with pytest.raises(RecorderError) as info:
        read_cases(path)
    assert str(path) in str(info.value)
    assert 'expected an SQLite case database (tables cases and metadata' in str(info.value)
    assert str(info.value).endswith('found tables results')


def test_sqlite_from_a_newer_version(tmp_path):
    path = tmp_path / 'c.sqlite'
    write(SQLiteRecorder, path, [ok_case(0)])
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute('UPDATE metadata SET format_version = 99')
    finally:
        conn.close()
    with pytest.raises(RecorderError, match=r'format_version at most 2\), found format_version 99 '
                                            r'\(written by a newer'):
        read_cases(path)


# -- read_cases_array ------------------------------------------------------------------------

def test_read_cases_array(fmt):
    cls, path = fmt
    write(cls, path, [ok_case(1), failed_case(0), Case(2, {'comp.x': 7.0, 'extra': 3})])
    arr = read_cases_array(path)
    assert arr.dtype.names == ('id', 'driver', 'iteration', 'status', 'comp.x', 'comp.n',
                               'comp.flag', 'comp.f', 'extra')
    assert arr['id'].tolist() == [0, 1, 2]
    assert arr['status'].tolist() == ['ok', 'failed', 'ok']
    assert arr['iteration'].tolist() == ['top.driver:1', 'top.driver:0', '2']
    assert arr['comp.x'].tolist() == [0.5, 0.0, 7.0]
    assert arr.dtype['comp.n'] == np.float64 and np.isnan(arr['comp.n'][2])   # missing -> NaN
    assert arr.dtype['comp.f'] == np.float64 and np.isnan(arr['comp.f'][1])   # failed -> NaN
    assert arr['comp.f'][0] == 1.25
    assert arr.dtype['comp.flag'] == np.float64   # bools with a missing value
    assert arr.dtype['id'] == np.int64


def test_read_cases_array_keeps_ints_and_bools(tmp_path):
    path = tmp_path / 'c.jsonl'
    write(JSONRecorder, path, [Case(i, {'n': i, 'b': bool(i)}) for i in range(3)])
    arr = read_cases_array(path)
    assert arr.dtype['n'] == np.int64 and arr.dtype['b'] == np.bool_
    assert arr['n'].tolist() == [0, 1, 2] and arr['b'].tolist() == [False, True, True]


def test_public_names():
    assert sorted(recorders.__all__) == sorted(['CaseRecorder', 'CSVRecorder', 'JSONRecorder',
                                                'SQLiteRecorder', 'read_cases',
                                                'read_cases_array', 'read_metadata'])
    assert all(hasattr(recorders, name) for name in recorders.__all__)
