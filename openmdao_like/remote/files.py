"""Files of a server, confined to one root directory, and moved in checksummed chunks.

`FileArea` does every file operation below its root and refuses paths that would leave it
(absolute, ``..``, symbolic links, zip members). `FileService` exposes it as remote methods of
a `SecureService`. `upload`, `download` and `copy_between` stream a file through any
``call(name, *args)`` callable (``ServerConnection.call``, or a server's connection to a peer)
chunk by chunk (``file_begin``, ``file_write``..., ``file_end``; ``file_read``...), never
holding a whole file in memory, and check its sha256 at the end.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import os
import shutil
import threading
import zipfile
from dataclasses import dataclass, field
from stat import S_ISDIR
from typing import Any, BinaryIO, Callable, Iterable, Iterator, NoReturn

from tqdm import tqdm

from ..errors import PathError
from .service import remote

#: Bytes per chunk of a transfer (one round trip each).
CHUNK = 4 * 1024 * 1024
#: Largest chunk a client may ask `FileArea.read_chunk` for (bounds the server's memory).
MAX_CHUNK = 64 * 1024 * 1024
#: Bytes read at a time to checksum or zip a file.
BLOCK = 1024 * 1024

Call = Callable[..., Any]
Progress = Callable[[int, int], Any] | bool | None


@dataclass
class _Upload:
    """A file being written: its part file, running checksum and size."""

    rel: str
    final: str
    part: str
    file: BinaryIO
    sha: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _below(base: str, path: str) -> bool:
    """Whether absolute ``path`` is ``base`` or below it."""
    return os.path.commonpath([base, path]) == base


class FileArea:
    """File operations confined to the directory ``root`` (made absolute, links resolved), and
    further to the directories ``within()`` lists when given (a user-role client's objects)."""

    def __init__(self, root: str | os.PathLike[str],
                 within: Callable[[], Iterable[str]] | None = None):
        self.root = os.path.realpath(os.path.abspath(os.fspath(root)))
        self.within = within
        self._uploads: dict[int, _Upload] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- paths -----------------------------------------------------------------------------------
    def resolve(self, relpath: str | os.PathLike[str]) -> str:
        """The absolute path of ``relpath``; `PathError` unless it stays inside the root."""
        return self._confine(relpath, follow_last=True)

    def _confine(self, relpath: Any, follow_last: bool) -> str:
        """``relpath`` below the root, checked lexically then through links (all, or all but
        the last component, so that a link itself can be removed)."""
        rel = os.fspath(relpath) if isinstance(relpath, os.PathLike) else relpath
        if not isinstance(rel, str):
            raise TypeError(f'file area {self.root}: expected a str path, got {rel!r}')
        if os.path.isabs(rel):
            self._refuse(rel, 'an absolute path')
        full = os.path.normpath(os.path.join(self.root, rel))
        if not _below(self.root, full):
            self._refuse(rel, 'it leads outside through ..')
        head, tail = os.path.split(full)
        real = (os.path.realpath(full) if follow_last or full == self.root
                else os.path.join(os.path.realpath(head), tail))
        if not _below(self.root, real):
            self._refuse(rel, f'a symbolic link leads to {real}')
        if self.within is not None and not any(
                _below(os.path.realpath(d), real) for d in self.within()):
            raise PathError(f'file area {self.root}: {rel!r} is outside the directories of the '
                            f'objects this key created, the only ones it may reach')
        return full

    def _refuse(self, rel: str, reason: str) -> NoReturn:
        """Raise the `PathError` of a path that leaves the root."""
        raise PathError(f'file area {self.root}: expected a path relative to {self.root} '
                        f'that stays inside it, got {rel!r} ({reason})')

    # -- plain operations ------------------------------------------------------------------------
    def listdir(self, rel: str = '.') -> tuple[str, ...]:
        """The names in directory ``rel``, sorted."""
        return tuple(sorted(os.listdir(self.resolve(rel))))

    def stat(self, rel: str) -> tuple[int, float, bool]:
        """``(size, mtime, is_dir)`` of ``rel``."""
        st = os.stat(self.resolve(rel))
        return st.st_size, st.st_mtime, S_ISDIR(st.st_mode)

    def remove(self, rel: str) -> None:
        """Remove file, link or directory tree ``rel`` (never the root itself)."""
        path = self._confine(rel, follow_last=False)
        if path == self.root:
            raise PathError(f'file area {self.root}: refusing to remove the root itself '
                            f'(given {rel!r}); expected a path below it')
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)

    def makedirs(self, rel: str) -> None:
        """Create directory ``rel`` and its parents (existing ones are fine)."""
        os.makedirs(self.resolve(rel), exist_ok=True)

    def checksum(self, rel: str) -> str:
        """The sha256 hex digest of file ``rel``, read in `BLOCK`-sized blocks."""
        sha = hashlib.sha256()
        with open(self.resolve(rel), 'rb') as f:
            for block in iter(lambda: f.read(BLOCK), b''):
                sha.update(block)
        return sha.hexdigest()

    # -- zip archives ----------------------------------------------------------------------------
    def pack_zip(self, rel_dir: str, rel_zip: str, compress: bool = True) -> None:
        """Zip directory ``rel_dir`` into ``rel_zip`` (written aside, then renamed into place)."""
        top, target = self.resolve(rel_dir), self.resolve(rel_zip)
        if not os.path.isdir(top):
            raise NotADirectoryError(f'file area {self.root}: expected a directory to zip, '
                                     f'got {rel_dir!r}')
        part = target + '.part'
        method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        try:
            with zipfile.ZipFile(part, 'w', method) as zf:
                for path, arcname in self._walk(top, skip={target, part}):
                    zf.write(path, arcname)
            os.replace(part, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(part)
            raise

    def _walk(self, top: str, skip: set[str]) -> Iterator[tuple[str, str]]:
        """``(path, name in archive)`` of each file and directory below ``top``, refusing links
        that leave the root; a linked directory is followed once, unless it is below ``top``
        (its files are archived there)."""
        real_top, followed = os.path.realpath(top), set()
        for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
            dirnames.sort()
            for name in list(dirnames) + sorted(filenames):
                path = os.path.join(dirpath, name)
                real = os.path.realpath(self.resolve(os.path.relpath(path, self.root)))
                if name in dirnames and os.path.islink(path):
                    if _below(real_top, real) or real in followed:
                        dirnames.remove(name)
                        continue
                    followed.add(real)
                if path not in skip:
                    yield path, os.path.relpath(path, top)

    def unpack_zip(self, rel_zip: str, rel_dir: str) -> None:
        """Extract ``rel_zip`` into ``rel_dir``, after checking that no member leaves it; when
        extraction fails half-way, what it created is removed again."""
        with zipfile.ZipFile(self.resolve(rel_zip)) as zf:
            base = self.resolve(rel_dir)
            targets = [(info, self._member(rel_zip, base, info.filename))
                       for info in zf.infolist()]
            created: list[str] = []
            try:
                for info, target in targets:
                    folder = target if info.is_dir() else os.path.dirname(target)
                    _makedirs_noting(folder, created)
                    if info.is_dir():
                        continue
                    if not os.path.lexists(target):
                        created.append(target)
                    with zf.open(info) as src, open(target, 'wb') as out:
                        shutil.copyfileobj(src, out, BLOCK)
            except BaseException:
                for path in reversed(created):
                    with contextlib.suppress(OSError):
                        (os.rmdir if os.path.isdir(path) else os.remove)(path)
                raise

    def _member(self, rel_zip: str, base: str, name: str) -> str:
        """Where member ``name`` of ``rel_zip`` goes below ``base``; `PathError` if outside."""
        full = os.path.normpath(os.path.join(base, name))
        if os.path.isabs(name) or name.startswith('\\') or not _below(base, full):
            raise PathError(f'file area {self.root}: zip {rel_zip!r}: expected members with '
                            f'paths relative to {base} and inside it, got member {name!r}; '
                            f'nothing was extracted')
        try:
            return self.resolve(os.path.relpath(full, self.root))
        except PathError as exc:
            raise PathError(f'{exc}; zip {rel_zip!r}: refusing member {name!r}, nothing was '
                            f'extracted') from None

    # -- chunked transfers -----------------------------------------------------------------------
    def begin_write(self, rel: str) -> int:
        """Open ``<rel>.part`` for writing (parents created); the handle of the upload."""
        final = self.resolve(rel)
        if os.path.isdir(final):
            raise IsADirectoryError(f'file area {self.root}: cannot upload onto directory '
                                    f'{rel!r}')
        part = self.resolve(os.path.relpath(final, self.root) + '.part')
        with self._lock:
            if any({final, part} & {up.final, up.part} for up in self._uploads.values()):
                raise ValueError(f'file area {self.root}: {rel!r} is already being written')
            os.makedirs(os.path.dirname(part), exist_ok=True)
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            handle = next(self._ids)
            self._uploads[handle] = _Upload(rel, final, part, os.fdopen(fd, 'wb'))
        return handle

    def _upload(self, handle: int, pop: bool = False) -> _Upload:
        """The upload ``handle`` names (removed from the table when ``pop``)."""
        with self._lock:
            up = self._uploads.pop(handle, None) if pop else self._uploads.get(handle)
        if up is None:
            raise ValueError(f'file area {self.root}: expected the handle of an upload in '
                             f'progress, got {handle!r}')
        return up

    def write_chunk(self, handle: int, data: bytes) -> None:
        """Append ``data`` to the upload ``handle``, updating its checksum."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f'file area {self.root}: expected bytes to write, got '
                            f'{type(data).__name__}')
        up = self._upload(handle)
        with up.lock:
            up.file.write(data)
            up.sha.update(data)
            up.size += len(data)

    def end_write(self, handle: int, sha256hex: str) -> int:
        """Finish upload ``handle``: check its sha256, rename into place; its size."""
        up = self._upload(handle, pop=True)
        with up.lock:
            try:
                up.file.close()
                actual = up.sha.hexdigest()
                if actual != str(sha256hex).lower():
                    raise ValueError(f'file area {self.root}: upload of {up.rel!r} corrupted: '
                                     f'expected sha256 {sha256hex}, got {actual}; the partial '
                                     f'file was removed')
                os.replace(up.part, up.final)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.remove(up.part)
                raise
            return up.size

    def abort_write(self, handle: int) -> None:
        """Abandon upload ``handle`` and remove its part file."""
        up = self._upload(handle, pop=True)
        with up.lock:
            up.file.close()
            with contextlib.suppress(OSError):
                os.remove(up.part)

    def read_chunk(self, rel: str, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of file ``rel`` from ``offset`` (empty at its end)."""
        if not (isinstance(offset, int) and isinstance(size, int)
                and offset >= 0 and 0 <= size <= MAX_CHUNK):
            raise ValueError(f'file area {self.root}: read of {rel!r}: expected offset >= 0 '
                             f'and 0 <= size <= {MAX_CHUNK}, got {offset!r}, {size!r}')
        with open(self.resolve(rel), 'rb') as f:
            f.seek(offset)
            return f.read(size)


def _makedirs_noting(path: str, created: list[str]) -> None:
    """Create directory ``path`` and missing parents, appending each one made to ``created``
    (parents first)."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        os.mkdir(folder)
        created.append(folder)


def _forward(method: Callable) -> Callable:
    """A remote method doing ``method`` on ``self.files``."""
    @functools.wraps(method)
    def forward(self: Any, *args: Any) -> Any:
        return method(self.files, *args)
    forward.__name__ = f'file_{method.__name__}'
    return remote()(forward)


class FileService:
    """Remote methods over ``self.files`` (a `FileArea`); mix in before `SecureService`.

    Uploads a connection leaves unfinished are aborted when it closes.
    """

    files: FileArea
    file_listdir = _forward(FileArea.listdir)
    file_stat = _forward(FileArea.stat)
    file_remove = _forward(FileArea.remove)
    file_makedirs = _forward(FileArea.makedirs)
    file_checksum = _forward(FileArea.checksum)
    file_pack_zip = _forward(FileArea.pack_zip)
    file_unpack_zip = _forward(FileArea.unpack_zip)
    file_write = _forward(FileArea.write_chunk)
    file_read = _forward(FileArea.read_chunk)

    def on_disconnect(self, conn: Any) -> None:
        """Abort this connection's unfinished uploads, so no part file stays open."""
        for handle in self.__dict__.pop('_file_handles', ()):
            with contextlib.suppress(ValueError):
                self.files.abort_write(handle)
        super().on_disconnect(conn)  # type: ignore[misc]

    @remote()
    def file_begin(self, rel: str) -> int:
        """`FileArea.begin_write`, remembering the handle to abort on disconnect."""
        handle = self.files.begin_write(rel)
        self.__dict__.setdefault('_file_handles', set()).add(handle)
        return handle

    @remote()
    def file_end(self, handle: int, sha256hex: str) -> int:
        """`FileArea.end_write`."""
        self.__dict__.get('_file_handles', set()).discard(handle)
        return self.files.end_write(handle, sha256hex)

    @remote()
    def file_abort(self, handle: int) -> None:
        """`FileArea.abort_write`."""
        self.__dict__.get('_file_handles', set()).discard(handle)
        self.files.abort_write(handle)


# -- client side ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _reporter(progress: Progress, total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """A ``report(bytes_done)`` for ``progress``: a tqdm bar (True), a callable, or nothing."""
    if progress is True:
        bar = tqdm(total=total, unit='B', unit_scale=True, disable=None, desc=desc)
        try:
            yield lambda done: bar.update(done - bar.n)
        finally:
            bar.close()
    elif callable(progress):
        yield lambda done: progress(done, total)
    else:
        yield lambda done: None


def _pump(chunks: Iterable[bytes], sink: Callable[[bytes], Any], total: int,
          progress: Progress, desc: str) -> str:
    """Feed ``chunks`` to ``sink``, reporting progress; their sha256 hex digest."""
    sha, done = hashlib.sha256(), 0
    with _reporter(progress, total, desc) as report:
        for chunk in chunks:
            sink(chunk)
            sha.update(chunk)
            done += len(chunk)
            report(done)
    return sha.hexdigest()


def _remote_stat(call: Call, rel: str) -> int:
    """The size of remote file ``rel``; `IsADirectoryError` when it is a directory."""
    size, _, is_dir = call('file_stat', rel)
    if is_dir:
        raise IsADirectoryError(f'remote {rel!r}: expected a file, got a directory')
    return size


def _remote_chunks(call: Call, rel: str, total: int, chunk_size: int) -> Iterator[bytes]:
    """The ``total`` bytes of remote file ``rel``, ``chunk_size`` at a time."""
    offset = 0
    while offset < total:
        chunk = call('file_read', rel, offset, min(chunk_size, total - offset))
        if not chunk:
            raise ValueError(f'remote {rel!r}: ended after {offset} of {total} bytes '
                             f'(changed while being read?)')
        offset += len(chunk)
        yield chunk


def _send(call: Call, rel: str, chunks: Iterable[bytes], total: int, progress: Progress,
          finish: Callable[[str], str]) -> int:
    """Write ``chunks`` to remote ``rel``; ``finish(local sha256)`` gives the checksum to
    commit with. Aborts the upload on any error."""
    handle = call('file_begin', rel)
    try:
        sha = _pump(chunks, lambda chunk: call('file_write', handle, chunk), total, progress, rel)
        return call('file_end', handle, finish(sha))
    except BaseException:
        with contextlib.suppress(Exception):
            call('file_abort', handle)
        raise


def upload(call: Call, local_path: str | os.PathLike[str], remote_rel: str,
           chunk_size: int = CHUNK, progress: Progress = None) -> int:
    """Copy ``local_path`` to ``remote_rel`` in chunks, checksum checked; its size.

    ``call`` is ``ServerConnection.call`` or alike (bind a timeout with `functools.partial`).
    """
    with open(local_path, 'rb') as f:
        total = os.fstat(f.fileno()).st_size
        chunks = iter(lambda: f.read(chunk_size), b'')
        return _send(call, remote_rel, chunks, total, progress, lambda sha: sha)


def download(call: Call, remote_rel: str, local_path: str | os.PathLike[str],
             chunk_size: int = CHUNK, progress: Progress = None) -> int:
    """Copy remote ``remote_rel`` to ``local_path`` in chunks, checksum checked; its size."""
    local_path = os.fspath(local_path)
    part = local_path + '.part'
    total = _remote_stat(call, remote_rel)
    try:
        with open(part, 'wb') as out:
            chunks = _remote_chunks(call, remote_rel, total, chunk_size)
            sha = _pump(chunks, out.write, total, progress, remote_rel)
        _same(call('file_checksum', remote_rel), sha, remote_rel, local_path)
        os.replace(part, local_path)
        return total
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(part)
        raise


def copy_between(src_call: Call, src_rel: str, dst_call: Call, dst_rel: str,
                 chunk_size: int = CHUNK, progress: Progress = None) -> int:
    """Copy remote ``src_rel`` to another remote ``dst_rel`` chunk by chunk through here,
    checked against the source's checksum; its size."""
    total = _remote_stat(src_call, src_rel)

    def finish(sha: str) -> str:
        return _same(src_call('file_checksum', src_rel), sha, src_rel, dst_rel)
    chunks = _remote_chunks(src_call, src_rel, total, chunk_size)
    return _send(dst_call, dst_rel, chunks, total, progress, finish)


def _same(expected: str, actual: str, source: str, target: str) -> str:
    """``expected``, after checking that the bytes received hash to it too."""
    if expected != actual:
        raise ValueError(f'copy of {source!r} to {target!r} corrupted: expected sha256 '
                         f'{expected} (source), got {actual}')
    return expected
