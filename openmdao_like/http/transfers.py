"""Files in and out of the HTTP component service, in chunks, checked by SHA-256.

A component's `File` variables travel as files, not as JSON: the client uploads an input file
before it sets the variable and downloads an output file after a run. Files can be large (up to
`FileStore.max_bytes`), so an upload is a sequence of chunks a proxy will pass, and the whole
is checked against the SHA-256 the client declared; a download is checked the same way::

    POST   /uploads                    {filename, size, sha256} -> 201 {id, chunk_bytes}
    PUT    /uploads/{id}?offset=N      raw bytes (one chunk, in order) -> {received}
    POST   /uploads/{id}/complete      -> 201 {id, filename, size, sha256}
    GET    /files/{id}                 the bytes (Range: bytes=a-b -> 206), X-Content-SHA256
    GET    /files/{id}/meta            {id, filename, size, sha256}
    DELETE /files/{id}                 -> 204

`FileStore` keeps each user's files on disk (a JSON file of metadata beside each, so a restarted
service still finds them) and forgets them after `ttl`; `router` makes the endpoints; `upload`
and `download` are the client's side. A user never sees another user's uploads or files: they
answer 404, like ids that never existed. The on-disk names are random ids only: neither the
user's name nor the file's name ever becomes part of a path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from .wire import ServiceError

__all__ = ['TransferError', 'FileStore', 'router', 'upload', 'download']

log = logging.getLogger(__name__)

_ID = re.compile(r'[0-9a-f]{32}')
_SHA256 = re.compile(r'[0-9a-fA-F]{64}')
#: Bytes read at a time when hashing or copying a file.
_BLOCK = 1 << 20
#: Longest file name, in bytes of UTF-8 (the limit of most file systems).
_NAME_MAX = 255
_PUBLIC = ('id', 'filename', 'size', 'sha256')


class TransferError(ServiceError):
    """A file cannot be uploaded, stored or downloaded; ``status`` is the HTTP status to answer."""


def _check_filename(filename: Any) -> str:
    """`filename` if it is a plain file name (no directory, nothing path-like), else 422."""
    problem = None
    if not isinstance(filename, str):
        problem = f'a str, got {type(filename).__name__}'
    elif filename in ('', '.', '..'):
        problem = f'a file name, got {filename!r}'
    elif any(c in filename for c in '/\\'):
        problem = f'a file name without a directory (no / or \\), got {filename!r}'
    elif any(ord(c) < 32 or ord(c) == 127 for c in filename):
        problem = f'a file name without NUL or control characters, got {filename!r}'
    else:
        try:
            length = len(filename.encode('utf-8'))
        except UnicodeEncodeError:
            problem = f'a file name that is valid Unicode, got {filename!r}'
        else:
            if length > _NAME_MAX:
                problem = f'a file name of at most {_NAME_MAX} bytes, got {length} bytes'
    if problem:
        raise TransferError(422, f'filename {filename!r}: expected {problem}')
    return filename


def _sha256_file(path: Path) -> str:
    """The SHA-256 of the file at `path`, in hex."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data: dict) -> None:
    """Write `data` to `path` atomically, mode 0600."""
    tmp = path.with_name(f'.{path.name}.{secrets.token_hex(4)}')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class FileStore:
    """The service's files on disk, each owned by one user, forgotten after `ttl` seconds.

    ``root/uploads/<id>.part`` and ``<id>.json`` hold an upload in progress (the bytes received
    so far and what was declared); ``root/files/<id>.data`` and ``<id>.json`` a finished file.
    What was received is the size of the ``.part`` file, so an upload's state lives on disk
    only. Threads may share a store; processes should not share a root.

    Parameters
    ----------
    root : str or Path
        The directory (made, mode 0700, if missing).
    max_bytes : int
        Largest file accepted (413 beyond).
    chunk_bytes : int
        Largest chunk of an upload, told to the client by `begin`.
    ttl : float
        Seconds a file or an unfinished upload is kept.
    """

    def __init__(self, root: str | Path, max_bytes: int = 1 << 30, chunk_bytes: int = 8 << 20,
                 ttl: float = 24 * 3600):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.chunk_bytes = int(chunk_bytes)
        self.ttl = float(ttl)
        self._uploads = self.root / 'uploads'
        self._files = self.root / 'files'
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for sub in (self._uploads, self._files):
            sub.mkdir(mode=0o700, exist_ok=True)
            os.chmod(sub, 0o700)
        self._lock = threading.Lock()
        self._upload_locks: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._last_prune = 0.0

    def __repr__(self) -> str:
        return f'FileStore({str(self.root)!r})'

    # -- uploads --------------------------------------------------------------------------

    def begin(self, user: str, filename: str, size: int, sha256: str) -> dict:
        """Start an upload of `size` bytes whose SHA-256 is `sha256`: ``{'id', 'chunk_bytes'}``."""
        _check_filename(filename)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise TransferError(422, f'upload of {filename!r}: expected a size in bytes (an int '
                                     f'>= 0), got {size!r}')
        if size > self.max_bytes:
            raise TransferError(413, f'upload of {filename!r}: {size} bytes is more than the '
                                     f'limit of {self.max_bytes} bytes')
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise TransferError(422, f'upload of {filename!r}: expected sha256 as 64 hex digits, '
                                     f'got {sha256!r}')
        self._maybe_prune()
        upload_id = secrets.token_hex(16)
        fd = os.open(self._uploads / f'{upload_id}.part', os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600)
        os.close(fd)
        _write_json(self._uploads / f'{upload_id}.json',
                    {'id': upload_id, 'filename': filename, 'size': size,
                     'sha256': sha256.lower(), 'user': user, 'created': time.time()})
        log.info('upload %s of %r (%d bytes) begun by %s', upload_id, filename, size, user)
        return {'id': upload_id, 'chunk_bytes': self.chunk_bytes}

    def write(self, user: str, upload_id: str, offset: int, data: bytes) -> int:
        """Append the chunk `data` at `offset` (the bytes received so far); the new count."""
        meta = self._upload(user, upload_id)
        size = meta['size']
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise TransferError(422, f'upload {upload_id!r}: expected an offset (an int >= 0), '
                                     f'got {offset!r}')
        part = self._uploads / f'{upload_id}.part'
        with self._lock_of(upload_id):
            try:
                f = open(part, 'r+b')
            except FileNotFoundError:
                raise TransferError(404, f'upload {upload_id!r} not found') from None
            with f:
                received = os.fstat(f.fileno()).st_size
                if offset != received:
                    if offset + len(data) == received and data and self._same(f, offset, data):
                        return received  # the last chunk again (its answer was lost)
                    raise TransferError(409, f'upload {upload_id!r}: expected a chunk at offset '
                                             f'{received}, got offset {offset!r}')
                if len(data) > self.chunk_bytes:
                    raise TransferError(413, f'upload {upload_id!r}: a chunk of {len(data)} '
                                             f'bytes is more than the limit of '
                                             f'{self.chunk_bytes} bytes')
                if offset + len(data) > size:
                    raise TransferError(413, f'upload {upload_id!r}: a chunk of {len(data)} bytes '
                                             f'at offset {offset} ends past the declared size of '
                                             f'{size} bytes')
                f.seek(offset)
                try:
                    f.write(data)
                    f.flush()
                except OSError:
                    f.truncate(offset)  # a failed write leaves nothing half-written
                    raise
        return offset + len(data)

    def complete(self, user: str, upload_id: str) -> dict:
        """Check the upload's size and SHA-256 and make it a file; its metadata."""
        if _ID.fullmatch(str(upload_id)):
            done = _read_json(self._files / f'{upload_id}.json')
            if done and done.get('user') == user and not self._expired(done):
                return {k: done[k] for k in _PUBLIC}  # completed before (the answer was lost)
        meta = self._upload(user, upload_id)
        part = self._uploads / f'{upload_id}.part'
        with self._lock_of(upload_id):
            try:
                received = part.stat().st_size
            except FileNotFoundError:
                raise TransferError(404, f'upload {upload_id!r} not found') from None
            if received != meta['size']:
                raise TransferError(409, f'upload {upload_id!r}: received {received} of '
                                         f'{meta["size"]} bytes; send the rest before completing')
            digest = _sha256_file(part)
            if digest != meta['sha256']:
                self._discard_upload(upload_id)
                raise TransferError(422, f'upload {upload_id!r} of {meta["filename"]!r}: expected '
                                         f'SHA-256 {meta["sha256"]}, computed {digest}; the '
                                         f'upload is discarded')
            os.replace(part, self._files / f'{upload_id}.data')
            _write_json(self._files / f'{upload_id}.json', meta)
            (self._uploads / f'{upload_id}.json').unlink(missing_ok=True)
        log.info('upload %s of %r completed by %s', upload_id, meta['filename'], user)
        return {k: meta[k] for k in _PUBLIC}

    # -- finished files -------------------------------------------------------------------

    def path(self, user: str, file_id: str) -> tuple[Path, dict]:
        """The finished file `file_id` of `user`: its path on disk and its metadata."""
        meta = self._file(user, file_id)
        data = self._files / f'{file_id}.data'
        if not data.is_file():
            raise TransferError(404, f'file {file_id!r} not found')
        return data, {k: meta[k] for k in _PUBLIC}

    def adopt(self, user: str, source: Path, filename: str) -> dict:
        """Copy the file `source` (e.g. a component's output) into the store; its metadata."""
        _check_filename(filename)
        source = Path(source)
        if not source.is_file():
            raise TransferError(404, f'{str(source)!r}: no such file to keep as {filename!r}')
        self._maybe_prune()
        file_id = secrets.token_hex(16)
        tmp = self._files / f'.{file_id}.tmp'
        digest = hashlib.sha256()
        size = 0
        try:
            with open(source, 'rb') as src:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, 'wb') as dst:
                    while block := src.read(_BLOCK):
                        size += len(block)
                        if size > self.max_bytes:
                            raise TransferError(413, f'{str(source)!r}: more than the limit of '
                                                     f'{self.max_bytes} bytes')
                        digest.update(block)
                        dst.write(block)
            meta = {'id': file_id, 'filename': filename, 'size': size,
                    'sha256': digest.hexdigest(), 'user': user, 'created': time.time()}
            os.replace(tmp, self._files / f'{file_id}.data')
            _write_json(self._files / f'{file_id}.json', meta)
        except FileNotFoundError:
            raise TransferError(404, f'{str(source)!r}: no such file to keep as '
                                     f'{filename!r}') from None
        finally:
            tmp.unlink(missing_ok=True)
        log.info('file %s (%r, %d bytes) adopted for %s from %s', file_id, filename, size, user,
                 source)
        return {k: meta[k] for k in _PUBLIC}

    def delete(self, user: str, file_id: str) -> None:
        """Forget the finished file `file_id` of `user`."""
        self._file(user, file_id)
        for suffix in ('.json', '.data'):
            (self._files / f'{file_id}{suffix}').unlink(missing_ok=True)
        log.info('file %s deleted by %s', file_id, user)

    def prune(self) -> int:
        """Remove files and unfinished uploads older than `ttl`; how many entries were removed."""
        self._last_prune = time.monotonic()
        cutoff = time.time() - self.ttl
        removed = 0
        for sub in (self._uploads, self._files):
            with os.scandir(sub) as entries:
                for entry in entries:
                    try:
                        if entry.stat().st_mtime < cutoff:
                            os.unlink(entry.path)
                            removed += 1
                    except FileNotFoundError:
                        pass
        if removed:
            log.info('%s: removed %d expired entries', self, removed)
        return removed

    # -- helpers --------------------------------------------------------------------------

    def _maybe_prune(self) -> None:
        """`prune`, at most once a minute (or once a tenth of `ttl`, if shorter)."""
        if time.monotonic() - self._last_prune >= min(60.0, self.ttl / 10):
            self.prune()

    def _lock_of(self, upload_id: str) -> threading.Lock:
        """The lock of one upload (so uploads of different files do not wait for each other)."""
        with self._lock:
            lock = self._upload_locks.get(upload_id)
            if lock is None:
                lock = self._upload_locks[upload_id] = threading.Lock()
            return lock

    def _expired(self, meta: dict) -> bool:
        created = meta.get('created')
        return not isinstance(created, (int, float)) or created < time.time() - self.ttl

    def _owned(self, directory: Path, user: str, ident: Any, kind: str) -> dict:
        """The metadata of `ident` in `directory` if `user` owns it, else 404 (also for others)."""
        if isinstance(ident, str) and _ID.fullmatch(ident):
            meta = _read_json(directory / f'{ident}.json')
            if meta and meta.get('user') == user and not self._expired(meta):
                return meta
        raise TransferError(404, f'{kind} {ident!r} not found')

    def _upload(self, user: str, upload_id: str) -> dict:
        return self._owned(self._uploads, user, upload_id, 'upload')

    def _file(self, user: str, file_id: str) -> dict:
        return self._owned(self._files, user, file_id, 'file')

    def _discard_upload(self, upload_id: str) -> None:
        for suffix in ('.part', '.json'):
            (self._uploads / f'{upload_id}{suffix}').unlink(missing_ok=True)

    @staticmethod
    def _same(f: Any, offset: int, data: bytes) -> bool:
        """Whether the open file `f` holds `data` at `offset`."""
        f.seek(offset)
        return f.read(len(data)) == data


# -- the endpoints --------------------------------------------------------------------------


class UploadRequest(BaseModel):
    """An upload to begin."""

    filename: str = Field(description='A plain file name (no directory), at most 255 bytes.',
                          examples=['wing.stl'])
    size: int = Field(strict=True, ge=0, description='The file\'s size in bytes.')
    sha256: str = Field(pattern=r'^[0-9a-fA-F]{64}$',
                        description='The SHA-256 of the whole file, 64 hex digits.')


class UploadStarted(BaseModel):
    """An upload begun: send its chunks, in order, then complete it."""

    id: str = Field(description='The upload\'s id (32 hex digits); also the finished file\'s.')
    chunk_bytes: int = Field(description='Largest chunk the service accepts, in bytes.')


class UploadProgress(BaseModel):
    """How much of an upload the service has."""

    received: int = Field(description='Bytes received so far: the offset of the next chunk.')


class FileMeta(BaseModel):
    """A finished file."""

    id: str = Field(description='The file\'s id (32 hex digits).')
    filename: str = Field(description='The name it was uploaded or made with.')
    size: int = Field(description='Its size in bytes.')
    sha256: str = Field(description='Its SHA-256, 64 hex digits.')


_Id = Annotated[str, PathParam(pattern=r'^[0-9a-f]{32}$', description='32 hex digits.')]
_BINARY = {'schema': {'type': 'string', 'format': 'binary'}}


@contextlib.contextmanager
def _http_errors() -> Iterator[None]:
    """Turn a `TransferError` into the `HTTPException` of its status."""
    try:
        yield
    except TransferError as exc:
        raise HTTPException(exc.status, detail=exc.message) from None


def router(files: FileStore, user: Callable[..., Any]) -> APIRouter:
    """The file endpoints over `files`; `user` is the dependency giving the caller (``.name``)."""
    api = APIRouter(tags=['files'])

    @api.post('/uploads', status_code=201, response_model=UploadStarted,
              summary='Begin an upload', responses={413: {'description': 'File too large'}})
    def begin_upload(body: UploadRequest, who: Any = Depends(user)) -> UploadStarted:
        """Declare a file's name, size and SHA-256; send its chunks next."""
        with _http_errors():
            return UploadStarted(**files.begin(who.name, body.filename, body.size, body.sha256))

    @api.put('/uploads/{upload_id}', response_model=UploadProgress, summary='Send a chunk',
             responses={409: {'description': 'Not the expected offset'},
                        413: {'description': 'Chunk too large, or past the declared size'}},
             openapi_extra={'requestBody': {'content': {'application/octet-stream': _BINARY},
                                            'required': True}})
    async def send_chunk(upload_id: _Id, request: Request,
                         offset: int = Query(ge=0, description='Bytes sent before this chunk.'),
                         who: Any = Depends(user)) -> UploadProgress:
        """Append the request's body (at most `chunk_bytes`) at `offset`."""
        limit = files.chunk_bytes
        too_large = HTTPException(413, detail=f'upload {upload_id!r}: a chunk is at most '
                                              f'{limit} bytes')
        declared = request.headers.get('content-length', '')
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise too_large
        with _http_errors():
            received = await run_in_threadpool(files.write, who.name, upload_id, offset,
                                               bytes(body))
        return UploadProgress(received=received)

    @api.post('/uploads/{upload_id}/complete', status_code=201, response_model=FileMeta,
              summary='Complete an upload',
              responses={409: {'description': 'Not all bytes received'},
                         422: {'description': 'SHA-256 mismatch (the upload is discarded)'}})
    def complete_upload(upload_id: _Id, who: Any = Depends(user)) -> FileMeta:
        """Check the size and SHA-256 and keep the file."""
        with _http_errors():
            return FileMeta(**files.complete(who.name, upload_id))

    @api.get('/files/{file_id}', response_class=FileResponse, summary='Download a file',
             responses={200: {'content': {'application/octet-stream': _BINARY},
                              'description': 'The bytes; X-Content-SHA256 holds their SHA-256'},
                        206: {'content': {'application/octet-stream': _BINARY},
                              'description': 'The bytes of the Range asked for'}})
    def get_file(file_id: _Id, who: Any = Depends(user)) -> FileResponse:
        """The file's bytes, or a `Range: bytes=a-b` of them."""
        with _http_errors():
            path, meta = files.path(who.name, file_id)
        return FileResponse(path, filename=meta['filename'], media_type='application/octet-stream',
                            headers={'X-Content-SHA256': meta['sha256'],
                                     'ETag': f'"{meta["sha256"]}"'})

    @api.get('/files/{file_id}/meta', response_model=FileMeta, summary='Describe a file')
    def file_meta(file_id: _Id, who: Any = Depends(user)) -> FileMeta:
        """The file's name, size and SHA-256."""
        with _http_errors():
            return FileMeta(**files.path(who.name, file_id)[1])

    @api.delete('/files/{file_id}', status_code=204, response_class=Response,
                summary='Delete a file')
    def delete_file(file_id: _Id, who: Any = Depends(user)) -> Response:
        """Forget the file."""
        with _http_errors():
            files.delete(who.name, file_id)
        return Response(status_code=204)

    return api


# -- the client's side ----------------------------------------------------------------------


def _check(response: httpx.Response) -> httpx.Response:
    """`response` if it succeeded, else `TransferError` with the service's detail."""
    if response.is_success:
        return response
    try:
        detail = response.json().get('detail', response.text)
    except (ValueError, AttributeError):
        detail = response.text
    raise TransferError(response.status_code, f'{response.request.method} '
                                              f'{response.request.url.path}: {detail}')


def upload(client: httpx.Client, path: str | Path, filename: str | None = None,
           chunk_bytes: int | None = None) -> dict:
    """Upload the file at `path` (as `filename`, default its own name) in chunks; its metadata."""
    path = Path(path)
    filename = path.name if filename is None else filename
    size = path.stat().st_size
    sha256 = _sha256_file(path)
    started = _check(client.post('/uploads', json={'filename': filename, 'size': size,
                                                   'sha256': sha256})).json()
    upload_id = started['id']
    step = chunk_bytes or started['chunk_bytes']
    offset = 0
    with open(path, 'rb') as f:
        while chunk := f.read(step):
            _check(client.put(f'/uploads/{upload_id}', params={'offset': offset}, content=chunk,
                              headers={'Content-Type': 'application/octet-stream'}))
            offset += len(chunk)
    meta = _check(client.post(f'/uploads/{upload_id}/complete')).json()
    log.debug('uploaded %s as %s (%d bytes)', path, upload_id, size)
    return meta


def download(client: httpx.Client, file_id: str, dest: str | Path) -> dict:
    """Download the file `file_id` to `dest`, checking its SHA-256; its metadata."""
    dest = Path(dest)
    meta = _check(client.get(f'/files/{file_id}/meta')).json()
    fd, name = tempfile.mkstemp(prefix=f'.{dest.name}.', suffix='.part', dir=dest.parent)
    tmp = Path(name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, 'wb') as f, client.stream('GET', f'/files/{file_id}') as response:
            if not response.is_success:
                response.read()
                _check(response)
            expected = response.headers.get('X-Content-SHA256', meta['sha256']).lower()
            for block in response.iter_bytes(_BLOCK):
                digest.update(block)
                f.write(block)
        if digest.hexdigest() != expected:
            raise TransferError(422, f'download of file {file_id!r} to {str(dest)!r}: expected '
                                     f'SHA-256 {expected}, computed {digest.hexdigest()}')
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.debug('downloaded %s to %s (%d bytes)', file_id, dest, meta['size'])
    return meta
