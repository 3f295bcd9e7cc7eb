"""File variables: files written in one component's directory and copied into the destination
component's directory when it runs, with binary/content-type checks and path confinement."""

from __future__ import annotations

import os

import pytest

from openmdao_like import (Assembly, Component, ConnectError, File, FileRef, PathError, Str,
                           ValidationError, set_as_top)

PAYLOAD = b'\x00\x01\xffbinary\r\n'


class BinWriter(Component):
    """Writes a binary file declared through ``local_path``."""

    out = File(iotype='out', local_path='data.bin', binary=True, content_type='stl')

    def execute(self) -> None:
        with open('data.bin', 'wb') as f:
            f.write(PAYLOAD)


class BinReader(Component):
    """Reads a binary file and copies it, with one byte more, to its own output."""

    inp = File(iotype='in', binary=True, legal_types=('stl', 'iges'))
    out = File(iotype='out', local_path='copy.bin', binary=True, content_type='stl')
    seen = Str(iotype='out')
    cwd = Str(iotype='out')

    def execute(self) -> None:
        with self.inp.open() as f:
            data = f.read()
        self.seen = data.hex()
        self.cwd = os.getcwd()
        with open('copy.bin', 'wb') as f:
            f.write(data + b'!')


class TextReader(Component):
    inp = File(iotype='in')
    text = Str(iotype='out')

    def execute(self) -> None:
        with self.inp.open() as f:
            self.text = f.read()


class IgesOnly(Component):
    inp = File(iotype='in', binary=True, legal_types=('iges',))

    def execute(self) -> None:
        pass


@pytest.fixture
def top(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return set_as_top(Assembly(), basedir=str(tmp_path))


def test_output_file_is_a_fileref_owned_by_the_component(top, tmp_path):
    w = top.add('w', BinWriter())
    w.directory = 'wdir'
    assert isinstance(w.out, FileRef)
    assert w.out.owner is w and w.out.path == 'data.bin' and w.out.binary
    assert w.out.content_type == 'stl'
    assert w.out.abspath() == str(tmp_path / 'wdir' / 'data.bin')


def test_file_is_copied_into_the_destination_directory(top, tmp_path):
    w = top.add('w', BinWriter())
    r = top.add('r', BinReader())
    w.directory = 'wdir'
    r.directory = 'rdir'
    top.connect('w.out', 'r.inp')
    top.driver.workflow.add(['r', 'w'])
    top.run()
    src = tmp_path / 'wdir' / 'data.bin'
    dst = tmp_path / 'rdir' / 'data.bin'
    assert src.read_bytes() == PAYLOAD and dst.read_bytes() == PAYLOAD
    assert r.inp.owner is r and r.inp.abspath() == str(dst)
    assert r.inp.binary is True and r.inp.content_type == 'stl'
    assert r.seen == PAYLOAD.hex() and r.cwd == str(tmp_path / 'rdir')
    assert (tmp_path / 'rdir' / 'copy.bin').read_bytes() == PAYLOAD + b'!'


def test_file_is_not_copied_before_the_destination_runs(top, tmp_path):
    top.add('w', BinWriter()).directory = 'wdir'
    top.add('r', BinReader()).directory = 'rdir'
    top.connect('w.out', 'r.inp')
    top.driver.workflow.add(['w', 'r'])
    top.check_config()
    top.w.run()
    assert (tmp_path / 'wdir' / 'data.bin').exists()
    assert not (tmp_path / 'rdir').exists() and top.r.inp is None
    top.r.run()
    assert (tmp_path / 'rdir' / 'data.bin').read_bytes() == PAYLOAD


def test_input_local_path_renames_the_copy(top, tmp_path):
    class Renamer(Component):
        inp = File(iotype='in', local_path='renamed.txt')

        def execute(self) -> None:
            pass

    class TextWriter(Component):
        out = File(iotype='out', local_path='notes.txt')

        def execute(self) -> None:
            with open('notes.txt', 'w') as f:
                f.write('hello\n')

    top.add('w', TextWriter())
    top.add('n', Renamer()).directory = 'ndir'
    top.connect('w.out', 'n.inp')
    top.driver.workflow.add(['w', 'n'])
    top.run()
    assert (tmp_path / 'notes.txt').read_text() == 'hello\n'
    assert (tmp_path / 'ndir' / 'renamed.txt').read_text() == 'hello\n'
    assert top.n.inp.path == 'renamed.txt' and top.n.inp.binary is False


def test_text_file_is_read_as_text(top):
    class TextWriter(Component):
        out = File(iotype='out', local_path='t.txt')

        def execute(self) -> None:
            with open('t.txt', 'w') as f:
                f.write('line one\nline two\n')

    top.add('w', TextWriter()).directory = 'w'
    top.add('t', TextReader()).directory = 't'
    top.connect('w.out', 't.inp')
    top.driver.workflow.add(['w', 't'])
    top.run()
    assert top.t.text == 'line one\nline two\n'


# -- connect-time checks -------------------------------------------------------------------------
def test_binary_versus_text_mismatch_at_connect(top):
    top.add('w', BinWriter())
    top.add('t', TextReader())
    with pytest.raises(ConnectError) as info:
        top.connect('w.out', 't.inp')
    msg = str(info.value)
    assert "cannot connect 'w.out' to 't.inp'" in msg
    assert 'binary flag mismatch' in msg and 'binary=False' in msg and 'binary=True' in msg


def test_content_type_not_in_legal_types_at_connect(top):
    top.add('w', BinWriter())
    top.add('q', IgesOnly())
    with pytest.raises(ConnectError) as info:
        top.connect('w.out', 'q.inp')
    msg = str(info.value)
    assert "cannot connect 'w.out' to 'q.inp'" in msg
    assert "content type 'stl' is not among the legal types ('iges',)" in msg


def test_file_cannot_connect_to_a_non_file(top):
    top.add('w', BinWriter())
    top.add('t', TextReader())
    top.add('t2', TextReader())
    with pytest.raises(ConnectError, match=r"type mismatch: 't\.inp' expects a FileRef or None, "
                                           r"'t2\.text' is a Str"):
        top.connect('t2.text', 't.inp')


def test_content_type_is_checked_at_transfer_too(top):
    class Untyped(Component):
        """Declares no content type but produces an 'stl' file at run time."""

        out = File(iotype='out', binary=True)

        def execute(self) -> None:
            with open('part.stl', 'wb') as f:
                f.write(PAYLOAD)
            self.out = FileRef('part.stl', self, binary=True, content_type='stl')

    top.add('u', Untyped()).directory = 'u'
    top.add('q', IgesOnly()).directory = 'q'
    top.connect('u.out', 'q.inp')                       # nothing to object to yet
    top.driver.workflow.add(['u', 'q'])
    with pytest.raises(ValidationError) as info:
        top.run()
    msg = str(info.value)
    assert msg.startswith("q.inp: expected a FileRef with content type in ('iges',)")
    assert 'part.stl' in msg


# -- paths ---------------------------------------------------------------------------------------
def test_missing_source_file_names_the_component_and_file(top, tmp_path):
    class Lazy(Component):
        out = File(iotype='out', local_path='never.txt')

        def execute(self) -> None:
            pass

    top.add('lazy', Lazy()).directory = 'lz'
    top.add('t', TextReader())
    top.connect('lazy.out', 't.inp')
    top.driver.workflow.add(['lazy', 't'])
    with pytest.raises(PathError) as info:
        top.run()
    msg = str(info.value)
    assert msg.startswith('lazy: ') and str(tmp_path / 'lz' / 'never.txt') in msg
    assert 'to exist, but it does not' in msg
    assert top.t.exec_count == 0


def test_fileref_escaping_the_component_directory(top, tmp_path):
    comp = top.add('t', TextReader())
    comp.directory = 'tdir'
    with pytest.raises(PathError) as info:
        FileRef(os.path.join('..', '..', 'etc', 'passwd'), comp).abspath()
    msg = str(info.value)
    assert msg.startswith('t: ') and 'escapes the component directory' in msg
    assert str(tmp_path / 'tdir') in msg
    assert FileRef(os.path.join('sub', '..', 'ok.txt'), comp).abspath() == \
        str(tmp_path / 'tdir' / 'ok.txt')


def test_escaping_output_file_is_not_copied(top, tmp_path):
    (tmp_path / 'secret.txt').write_text('secret')

    class Sneaky(Component):
        out = File(iotype='out')

        def execute(self) -> None:
            self.out = FileRef(os.path.join('..', 'secret.txt'), self)

    top.add('s', Sneaky()).directory = 'sdir'
    top.add('t', TextReader()).directory = 'tdir'
    top.connect('s.out', 't.inp')
    top.driver.workflow.add(['s', 't'])
    with pytest.raises(PathError, match=r"^s: file path '\.\./secret\.txt' escapes"):
        top.run()
    assert not (tmp_path / 'tdir' / 'secret.txt').exists()


def test_fileref_open_modes(top, tmp_path):
    (tmp_path / 'b.bin').write_bytes(PAYLOAD)
    comp = top.add('t', TextReader())
    with FileRef('b.bin', comp, binary=True).open() as f:
        assert f.read() == PAYLOAD
    (tmp_path / 't.txt').write_text('abc')
    with FileRef('t.txt', comp).open() as f:
        assert f.read() == 'abc'


# -- chains --------------------------------------------------------------------------------------
def test_file_chain_through_three_components(top, tmp_path):
    top.add('w', BinWriter()).directory = 'one'
    top.add('r1', BinReader()).directory = os.path.join('two', 'deeper')
    top.add('r2', BinReader()).directory = 'three'
    top.connect('w.out', 'r1.inp')
    top.connect('r1.out', 'r2.inp')
    top.driver.workflow.add(['r2', 'w', 'r1'])
    top.run()
    assert (tmp_path / 'one' / 'data.bin').read_bytes() == PAYLOAD
    assert (tmp_path / 'two' / 'deeper' / 'data.bin').read_bytes() == PAYLOAD
    assert (tmp_path / 'two' / 'deeper' / 'copy.bin').read_bytes() == PAYLOAD + b'!'
    assert (tmp_path / 'three' / 'copy.bin').read_bytes() == PAYLOAD + b'!!'
    assert top.r2.inp.abspath() == str(tmp_path / 'three' / 'copy.bin')
    assert top.r2.seen == (PAYLOAD + b'!').hex()
    assert sorted(os.listdir(tmp_path)) == ['one', 'three', 'two']
    # a second run overwrites with the same content
    top.run()
    assert (tmp_path / 'three' / 'copy.bin').read_bytes() == PAYLOAD + b'!!'
