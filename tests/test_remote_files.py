"""File areas and chunked transfers: `FileArea` confinement and operations used directly, then
upload, download and server-to-server copies through real authenticated rpyc servers."""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from openmdao_like.errors import PathError
from openmdao_like.remote.auth import Authenticator, HostPolicy, generate_key
from openmdao_like.remote.connection import ServerConnection
from openmdao_like.remote.files import (CHUNK, FileArea, FileService, copy_between, download,
                                        upload)
from openmdao_like.remote.service import SecureService, Server

MB = 1024 * 1024


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The sha256 hex digest of a local file."""
    sha = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(MB), b''):
            sha.update(block)
    return sha.hexdigest()


def write_random(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path`` in 1 MiB blocks; their sha256."""
    sha = hashlib.sha256()
    with open(path, 'wb') as f:
        for start in range(0, size, MB):
            block = os.urandom(min(MB, size - start))
            f.write(block)
            sha.update(block)
    return sha.hexdigest()


@pytest.fixture
def area(tmp_path: Path) -> FileArea:
    """A file area rooted in a fresh directory ``root`` (its sibling ``outside`` is not in it)."""
    (tmp_path / 'root').mkdir()
    (tmp_path / 'outside').mkdir()
    (tmp_path / 'outside' / 'secret').write_text('secret')
    return FileArea(tmp_path / 'root')


# -- confinement ---------------------------------------------------------------------------------
@pytest.mark.parametrize('rel, reason', [
    ('../x', 'it leads outside through ..'),
    ('/etc/passwd', 'an absolute path'),
    ('a/../../x', 'it leads outside through ..'),
])
def test_resolve_refuses_escapes(area: FileArea, rel: str, reason: str) -> None:
    with pytest.raises(PathError) as info:
        area.resolve(rel)
    assert str(info.value) == (f'file area {area.root}: expected a path relative to {area.root} '
                               f'that stays inside it, got {rel!r} ({reason})')


def test_resolve_refuses_links_leading_outside(area: FileArea, tmp_path: Path) -> None:
    os.symlink(tmp_path / 'outside', Path(area.root) / 'out')
    for rel in ('out', 'out/secret', 'out/sub/../x'):
        with pytest.raises(PathError, match='a symbolic link leads to .*outside'):
            area.resolve(rel)
    # ``..`` is applied to the text, so it never climbs out of a link
    assert area.resolve('out/../x') == os.path.join(area.root, 'x')
    with pytest.raises(PathError, match="got 'out/secret'"):
        area.checksum('out/secret')


def test_resolve_accepts_paths_that_stay_inside(area: FileArea) -> None:
    os.makedirs(Path(area.root) / 'a' / 'b')
    os.symlink(Path(area.root) / 'a', Path(area.root) / 'link')
    assert area.resolve('a/../c') == os.path.join(area.root, 'c')
    assert area.resolve('link/b') == os.path.join(area.root, 'link', 'b')
    assert area.resolve('.') == area.root
    assert area.resolve(Path('a') / 'b') == os.path.join(area.root, 'a', 'b')
    with pytest.raises(TypeError, match='expected a str path, got 3'):
        area.resolve(3)  # type: ignore[arg-type]


def test_root_is_absolute_and_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.symlink(tmp_path, tmp_path.parent / f'{tmp_path.name}-link')
    monkeypatch.chdir(tmp_path.parent)
    assert FileArea(f'{tmp_path.name}-link').root == os.path.realpath(tmp_path)


@pytest.mark.parametrize('rel', ['.', '', 'a/..'])
def test_remove_refuses_the_root(area: FileArea, rel: str) -> None:
    with pytest.raises(PathError, match='refusing to remove the root itself'):
        area.remove(rel)
    assert os.path.isdir(area.root)


# -- plain operations ----------------------------------------------------------------------------
def test_listdir_stat_makedirs_remove(area: FileArea, tmp_path: Path) -> None:
    area.makedirs('d/e/f')
    area.makedirs('d/e')  # existing: fine
    (Path(area.root) / 'd' / 'data.bin').write_bytes(b'x' * 10)
    (Path(area.root) / 'b.txt').write_text('b')
    assert area.listdir() == ('b.txt', 'd')
    assert area.listdir('d') == ('data.bin', 'e')
    size, mtime, is_dir = area.stat('d/data.bin')
    assert (size, is_dir) == (10, False) and abs(mtime - time.time()) < 60
    assert area.stat('d')[2] is True
    area.remove('d/data.bin')
    area.remove('d')
    assert area.listdir() == ('b.txt',)
    with pytest.raises(FileNotFoundError):
        area.remove('d')
    os.symlink(tmp_path / 'outside', Path(area.root) / 'out')
    area.remove('out')  # the link goes, not what it points to
    assert area.listdir() == ('b.txt',)
    assert (tmp_path / 'outside' / 'secret').exists()


def test_checksum(area: FileArea) -> None:
    data = os.urandom(3 * MB + 5)
    (Path(area.root) / 'f').write_bytes(data)
    assert area.checksum('f') == hashlib.sha256(data).hexdigest()


# -- zip archives --------------------------------------------------------------------------------
@pytest.mark.parametrize('compress, method', [(True, zipfile.ZIP_DEFLATED),
                                              (False, zipfile.ZIP_STORED)])
def test_pack_unpack_round_trip(area: FileArea, compress: bool, method: int) -> None:
    root = Path(area.root)
    (root / 'src' / 'sub' / 'empty').mkdir(parents=True)
    (root / 'src' / 'a.txt').write_text('alpha')
    (root / 'src' / 'sub' / 'b.bin').write_bytes(os.urandom(2 * MB))
    area.makedirs('out')
    area.pack_zip('src', 'out/src.zip', compress)
    with zipfile.ZipFile(root / 'out' / 'src.zip') as zf:
        assert sorted(zf.namelist()) == ['a.txt', 'sub/', 'sub/b.bin', 'sub/empty/']
        assert {info.compress_type for info in zf.infolist() if not info.is_dir()} == {method}
    area.unpack_zip('out/src.zip', 'copy')
    assert area.listdir('copy') == ('a.txt', 'sub')
    assert area.listdir('copy/sub') == ('b.bin', 'empty')
    for rel in ('a.txt', 'sub/b.bin'):
        assert area.checksum(f'copy/{rel}') == area.checksum(f'src/{rel}')
    assert not (root / 'out' / 'src.zip.part').exists()


def test_pack_zip_into_the_directory_packed(area: FileArea) -> None:
    (Path(area.root) / 'a.txt').write_text('alpha')
    area.pack_zip('.', 'all.zip')
    with zipfile.ZipFile(Path(area.root) / 'all.zip') as zf:
        assert zf.namelist() == ['a.txt']


def test_pack_zip_follows_linked_directories_once(area: FileArea) -> None:
    root = Path(area.root)
    (root / 'src' / 'real').mkdir(parents=True)
    (root / 'src' / 'real' / 'r.txt').write_text('r')
    (root / 'shared' / 'deep').mkdir(parents=True)
    (root / 'shared' / 's.txt').write_text('s')
    os.symlink(root / 'src' / 'real', root / 'src' / 'again')  # below src: archived as real/
    os.symlink(root / 'shared', root / 'src' / 'shared')  # elsewhere in the area: followed
    os.symlink(root / 'shared', root / 'shared' / 'deep' / 'loop')  # a cycle: cut
    area.pack_zip('src', 'src.zip')
    with zipfile.ZipFile(root / 'src.zip') as zf:
        assert sorted(zf.namelist()) == ['real/', 'real/r.txt', 'shared/', 'shared/deep/',
                                         'shared/s.txt']


def test_pack_zip_refuses_links_leading_outside(area: FileArea, tmp_path: Path) -> None:
    (Path(area.root) / 'src').mkdir()
    os.symlink(tmp_path / 'outside' / 'secret', Path(area.root) / 'src' / 'leak')
    with pytest.raises(PathError, match="got 'src/leak'"):
        area.pack_zip('src', 'src.zip')
    assert area.listdir() == ('src',)


def make_zip(path: Path, *names: str) -> None:
    """A zip at ``path`` holding one small member per name, in order."""
    with zipfile.ZipFile(path, 'w') as zf:
        for name in names:
            zf.writestr(zipfile.ZipInfo(name), b'payload')


@pytest.mark.parametrize('member', ['../evil.txt', '/abs/evil.txt', 'a/../../evil.txt'])
def test_unpack_zip_refuses_zip_slip(area: FileArea, tmp_path: Path, member: str) -> None:
    make_zip(Path(area.root) / 'bad.zip', 'first.txt', member)
    with pytest.raises(PathError) as info:
        area.unpack_zip('bad.zip', 'dest')
    assert str(info.value) == (f"file area {area.root}: zip 'bad.zip': expected members with "
                               f"paths relative to {area.root}/dest and inside it, got member "
                               f"{member!r}; nothing was extracted")
    assert area.listdir() == ('bad.zip',)  # not even the first member
    assert not (tmp_path / 'evil.txt').exists() and not (Path(area.root) / 'evil.txt').exists()


def test_unpack_zip_refuses_members_through_links_leading_outside(area: FileArea,
                                                                  tmp_path: Path) -> None:
    area.makedirs('dest')
    os.symlink(tmp_path / 'outside', Path(area.root) / 'dest' / 'out')
    make_zip(Path(area.root) / 'bad.zip', 'out/planted.txt')
    with pytest.raises(PathError, match="refusing member 'out/planted.txt'"):
        area.unpack_zip('bad.zip', 'dest')
    assert os.listdir(tmp_path / 'outside') == ['secret']


# -- chunked writes in the area ------------------------------------------------------------------
def test_write_in_chunks(area: FileArea) -> None:
    handle = area.begin_write('deep/dir/f.bin')
    assert area.listdir('deep/dir') == ('f.bin.part',)
    area.write_chunk(handle, b'abc')
    area.write_chunk(handle, b'def')
    assert area.end_write(handle, hashlib.sha256(b'abcdef').hexdigest().upper()) == 6
    assert area.listdir('deep/dir') == ('f.bin',)
    assert area.read_chunk('deep/dir/f.bin', 2, 3) == b'cde'
    assert area.read_chunk('deep/dir/f.bin', 6, 3) == b''


def test_checksum_mismatch_leaves_no_file(area: FileArea) -> None:
    handle = area.begin_write('f.bin')
    area.write_chunk(handle, b'abc')
    wrong = hashlib.sha256(b'abd').hexdigest()
    with pytest.raises(ValueError) as info:
        area.end_write(handle, wrong)
    assert str(info.value) == (f"file area {area.root}: upload of 'f.bin' corrupted: expected "
                               f"sha256 {wrong}, got {hashlib.sha256(b'abc').hexdigest()}; the "
                               f"partial file was removed")
    assert area.listdir() == ()


def test_abort_and_unknown_handles(area: FileArea) -> None:
    handle = area.begin_write('f.bin')
    with pytest.raises(ValueError, match="'f.bin' is already being written"):
        area.begin_write('f.bin')
    area.write_chunk(handle, b'abc')
    area.abort_write(handle)
    assert area.listdir() == ()
    for call in (lambda: area.write_chunk(handle, b'x'), lambda: area.end_write(handle, ''),
                 lambda: area.abort_write(handle), lambda: area.write_chunk(99, b'x')):
        with pytest.raises(ValueError, match='expected the handle of an upload in progress'):
            call()
    with pytest.raises(IsADirectoryError):
        area.begin_write('.')
    with pytest.raises(PathError):
        area.begin_write('../f.bin')


def test_read_chunk_bounds(area: FileArea) -> None:
    (Path(area.root) / 'f').write_bytes(b'abc')
    for offset, size in ((-1, 1), (0, -1), (0, 10 ** 9), ('0', 1)):
        with pytest.raises(ValueError, match='expected offset >= 0'):
            area.read_chunk('f', offset, size)  # type: ignore[arg-type]


# -- through real servers ------------------------------------------------------------------------
class Servers:
    """Starts authenticated servers whose connections each see a `FileArea` of their root."""

    def __init__(self) -> None:
        self.key = generate_key()
        self.servers: list[Server] = []
        self.connections: list[ServerConnection] = []

    def start(self, root: Path) -> ServerConnection:
        """Serve ``root``; a connection to the new server."""
        class AreaService(FileService, SecureService):
            def on_connect(self, conn: Any) -> None:
                super().on_connect(conn)
                self.files = FileArea(root)

        root.mkdir(exist_ok=True)
        server = Server(AreaService, '127.0.0.1', 0,
                        Authenticator({'owner': self.key.encode()}, HostPolicy()))
        server.start_in_thread()
        self.servers.append(server)
        return self.connect(server)

    def connect(self, server: Server) -> ServerConnection:
        """One more connection to ``server``."""
        conn = ServerConnection('127.0.0.1', server.port, self.key, timeout=30.0)
        self.connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection, then every server."""
        for conn in self.connections:
            conn.close()
        for server in self.servers:
            server.close()


@pytest.fixture
def servers() -> Iterator[Servers]:
    """Real servers, closed at teardown."""
    started = Servers()
    yield started
    started.close()


@pytest.fixture(scope='module')
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 50 MB random file and its sha256."""
    path = tmp_path_factory.mktemp('big') / 'big.bin'
    return path, write_random(path, 50 * MB)


def counting(call: Callable[..., Any], counts: dict[str, int]) -> Callable[..., Any]:
    """``call``, counting calls by method name into ``counts``."""
    def counted(name: str, *args: Any) -> Any:
        counts[name] = counts.get(name, 0) + 1
        return call(name, *args)
    return counted


def test_upload_download_50mb(servers: Servers, tmp_path: Path,
                              big_file: tuple[Path, str]) -> None:
    path, digest = big_file
    conn = servers.start(tmp_path / 'area')
    counts: dict[str, int] = {}
    seen: list[tuple[int, int]] = []
    size = upload(counting(conn.call, counts), path, 'in/big.bin',
                  progress=lambda done, total: seen.append((done, total)))
    assert size == 50 * MB
    assert counts == {'file_begin': 1, 'file_write': 13, 'file_end': 1}  # 4 MiB chunks
    assert seen[0] == (CHUNK, 50 * MB) and seen[-1] == (50 * MB, 50 * MB)
    assert sha256_of(tmp_path / 'area' / 'in' / 'big.bin') == digest
    assert conn.call('file_listdir', 'in') == ('big.bin',)
    assert conn.call('file_stat', 'in/big.bin')[::2] == (50 * MB, False)

    counts.clear()
    assert download(counting(conn.call, counts), 'in/big.bin', tmp_path / 'back.bin',
                    chunk_size=16 * MB, progress=True) == 50 * MB
    assert counts == {'file_stat': 1, 'file_read': 4, 'file_checksum': 1}
    assert sha256_of(tmp_path / 'back.bin') == digest
    assert not (tmp_path / 'back.bin.part').exists()


def test_small_and_empty_files(servers: Servers, tmp_path: Path) -> None:
    conn = servers.start(tmp_path / 'area')
    (tmp_path / 'empty').write_bytes(b'')
    (tmp_path / 'small').write_bytes(b'0123456789')
    assert upload(conn.call, tmp_path / 'empty', 'empty', progress=True) == 0
    assert upload(conn.call, str(tmp_path / 'small'), 'small', chunk_size=3) == 10
    assert download(conn.call, 'empty', tmp_path / 'e2') == 0
    assert download(conn.call, 'small', tmp_path / 's2', chunk_size=4) == 10
    assert (tmp_path / 's2').read_bytes() == b'0123456789'
    assert (tmp_path / 'e2').read_bytes() == b''


def test_copy_between_servers(servers: Servers, tmp_path: Path) -> None:
    one = servers.start(tmp_path / 'src')
    digest = write_random(tmp_path / 'src' / 'f.bin', 9 * MB + 7)
    two = servers.start(tmp_path / 'dst')
    counts: dict[str, int] = {}
    size = copy_between(counting(one.call, counts), 'f.bin', counting(two.call, counts),
                        'copies/f.bin', chunk_size=2 * MB)
    assert size == 9 * MB + 7
    assert counts == {'file_stat': 1, 'file_read': 5, 'file_begin': 1, 'file_write': 5,
                      'file_checksum': 1, 'file_end': 1}
    assert sha256_of(tmp_path / 'dst' / 'copies' / 'f.bin') == digest
    assert os.listdir(tmp_path / 'dst' / 'copies') == ['f.bin']


def test_remote_paths_are_confined(servers: Servers, tmp_path: Path) -> None:
    conn = servers.start(tmp_path / 'area')
    root = os.path.realpath(tmp_path / 'area')
    with pytest.raises(PathError) as info:
        conn.call('file_stat', '../secret')
    assert isinstance(info.value, ValueError)
    assert str(info.value) == (f"file area {root}: expected a path relative to {root} that "
                               f"stays inside it, got '../secret' (it leads outside through ..)")
    assert 'Raised remotely by server on 127.0.0.1' in info.value.__notes__[0]
    (tmp_path / 'local').write_bytes(b'data')
    with pytest.raises(PathError, match="got '/tmp/evil'"):
        upload(conn.call, tmp_path / 'local', '/tmp/evil')
    with pytest.raises(PathError, match="got '../evil'"):
        download(conn.call, '../evil', tmp_path / 'evil')
    with pytest.raises(PathError, match='refusing to remove the root itself'):
        conn.call('file_remove', '.')
    assert os.listdir(tmp_path) == ['area', 'local']


def test_remote_operations(servers: Servers, tmp_path: Path) -> None:
    conn = servers.start(tmp_path / 'area')
    conn.call('file_makedirs', 'src/sub')
    (tmp_path / 'area' / 'src' / 'sub' / 'x').write_bytes(b'xyz')
    conn.call('file_pack_zip', 'src', 'src.zip')
    conn.call('file_unpack_zip', 'src.zip', 'copy')
    assert conn.call('file_listdir', '.') == ('copy', 'src', 'src.zip')
    assert conn.call('file_checksum', 'copy/sub/x') == hashlib.sha256(b'xyz').hexdigest()
    assert conn.call('file_read', 'copy/sub/x', 1, 5) == b'yz'
    conn.call('file_remove', 'copy')
    assert conn.call('file_listdir', '.') == ('src', 'src.zip')
    with pytest.raises(FileNotFoundError):
        conn.call('file_stat', 'copy')
    with pytest.raises(IsADirectoryError, match="remote 'src': expected a file"):
        download(conn.call, 'src', tmp_path / 'src')


def corrupting(call: Callable[..., Any], method: str, nth: int) -> Callable[..., Any]:
    """``call``, flipping a byte of the ``nth`` chunk sent by or received from ``method``."""
    seen = [0]

    def corrupt(data: bytes) -> bytes:
        return bytes([data[0] ^ 0xFF]) + data[1:]

    def wrapped(name: str, *args: Any) -> Any:
        if name == method:
            seen[0] += 1
            if seen[0] == nth and name == 'file_write':
                args = (args[0], corrupt(args[1]))
            elif seen[0] == nth:
                return corrupt(call(name, *args))
        return call(name, *args)
    return wrapped


def test_corrupted_upload_is_detected(servers: Servers, tmp_path: Path) -> None:
    conn = servers.start(tmp_path / 'area')
    digest = write_random(tmp_path / 'f.bin', 3 * MB)
    with pytest.raises(ValueError, match=f"upload of 'f.bin' corrupted: expected sha256 "
                                         f"{digest}, got [0-9a-f]{{64}}; the partial file was "
                                         f"removed"):
        upload(corrupting(conn.call, 'file_write', 2), tmp_path / 'f.bin', 'f.bin',
               chunk_size=MB)
    assert conn.call('file_listdir', '.') == ()


def test_corrupted_download_is_detected(servers: Servers, tmp_path: Path) -> None:
    conn = servers.start(tmp_path / 'area')
    digest = write_random(tmp_path / 'area' / 'f.bin', 3 * MB)
    target = tmp_path / 'local' / 'f.bin'
    target.parent.mkdir()
    with pytest.raises(ValueError) as info:
        download(corrupting(conn.call, 'file_read', 3), 'f.bin', target, chunk_size=MB)
    assert str(info.value).startswith(f"copy of 'f.bin' to {str(target)!r} corrupted: "
                                      f"expected sha256 {digest} (source), got ")
    assert os.listdir(target.parent) == []


def test_corrupted_copy_is_detected(servers: Servers, tmp_path: Path) -> None:
    one = servers.start(tmp_path / 'src')
    two = servers.start(tmp_path / 'dst')
    write_random(tmp_path / 'src' / 'f.bin', 2 * MB)
    with pytest.raises(ValueError, match="copy of 'f.bin' to 'g.bin' corrupted"):
        copy_between(corrupting(one.call, 'file_read', 1), 'f.bin', two.call, 'g.bin',
                     chunk_size=MB)
    assert os.listdir(tmp_path / 'dst') == []


def test_disconnect_aborts_unfinished_uploads(servers: Servers, tmp_path: Path) -> None:
    conn = servers.start(tmp_path / 'area')
    handle = conn.call('file_begin', 'f.bin')
    conn.call('file_write', handle, b'partial')
    assert os.listdir(tmp_path / 'area') == ['f.bin.part']
    conn.close()
    deadline = time.monotonic() + 5.0
    while os.listdir(tmp_path / 'area') and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.listdir(tmp_path / 'area') == []
