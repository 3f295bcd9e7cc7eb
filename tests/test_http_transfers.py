"""The HTTP service's file transfers: chunked uploads and downloads checked by SHA-256, each
user's files out of other users' reach, expiry, and metadata that survives a restart."""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from openmdao_like.http.transfers import FileStore, TransferError, download, router, upload

with warnings.catch_warnings():
    # starlette 1.10 asks for httpx2 in its test client; the client code here uses httpx
    warnings.simplefilter('ignore', StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

CHUNK = 64 * 1024


def _client(store: FileStore, name: str) -> TestClient:
    app = FastAPI()
    app.include_router(router(store, lambda: SimpleNamespace(name=name, roles=())))
    return TestClient(app)


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / 'store', max_bytes=1 << 20, chunk_bytes=CHUNK)


@pytest.fixture
def alice(store: FileStore) -> TestClient:
    with _client(store, 'alice') as client:
        yield client


@pytest.fixture
def bob(store: FileStore) -> TestClient:
    with _client(store, 'bob') as client:
        yield client


def _file(tmp_path: Path, size: int, name: str = 'data.bin') -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _begin(client: TestClient, data: bytes, filename: str = 'x.bin') -> str:
    response = client.post('/uploads', json={'filename': filename, 'size': len(data),
                                             'sha256': _sha(data)})
    assert response.status_code == 201, response.text
    return response.json()['id']


def test_multi_chunk_round_trip(alice: TestClient, tmp_path: Path) -> None:
    source = _file(tmp_path, 3 * CHUNK + CHUNK // 2)
    meta = upload(alice, source, filename='wing.stl')
    assert meta['filename'] == 'wing.stl' and meta['size'] == source.stat().st_size
    assert meta['sha256'] == _sha(source.read_bytes())
    assert alice.get(f'/files/{meta["id"]}/meta').json() == meta
    got = download(alice, meta['id'], tmp_path / 'back.stl')
    assert got == meta
    assert (tmp_path / 'back.stl').read_bytes() == source.read_bytes()
    response = alice.get(f'/files/{meta["id"]}')
    assert response.headers['x-content-sha256'] == meta['sha256']
    assert 'wing.stl' in response.headers['content-disposition']


def test_server_chunk_size_is_used(alice: TestClient, tmp_path: Path) -> None:
    started = alice.post('/uploads', json={'filename': 'a', 'size': 1, 'sha256': '0' * 64})
    assert started.json()['chunk_bytes'] == CHUNK
    source = _file(tmp_path, 2 * CHUNK + 1)
    assert upload(alice, source)['size'] == 2 * CHUNK + 1


def test_empty_file(alice: TestClient, tmp_path: Path) -> None:
    source = _file(tmp_path, 0, 'empty')
    meta = upload(alice, source)
    assert meta['size'] == 0 and meta['sha256'] == _sha(b'')
    download(alice, meta['id'], tmp_path / 'empty.back')
    assert (tmp_path / 'empty.back').read_bytes() == b''


def test_range_request(alice: TestClient, tmp_path: Path) -> None:
    source = _file(tmp_path, 1000)
    meta = upload(alice, source)
    response = alice.get(f'/files/{meta["id"]}', headers={'Range': 'bytes=100-199'})
    assert response.status_code == 206
    assert response.content == source.read_bytes()[100:200]
    assert response.headers['content-range'] == 'bytes 100-199/1000'


def test_wrong_sha_is_refused_and_nothing_kept(alice: TestClient, store: FileStore) -> None:
    data = b'hello world'
    response = alice.post('/uploads', json={'filename': 'h.txt', 'size': len(data),
                                            'sha256': 'ab' * 32})
    upload_id = response.json()['id']
    assert alice.put(f'/uploads/{upload_id}', params={'offset': 0},
                     content=data).json() == {'received': len(data)}
    response = alice.post(f'/uploads/{upload_id}/complete')
    assert response.status_code == 422
    detail = response.json()['detail']
    assert 'ab' * 32 in detail and _sha(data) in detail
    assert alice.get(f'/files/{upload_id}/meta').status_code == 404
    assert alice.put(f'/uploads/{upload_id}', params={'offset': 0},
                     content=data).status_code == 404
    assert not any(store.root.rglob('*.part')) and not any(store.root.rglob('*.data'))


def test_declared_size_over_the_limit(alice: TestClient) -> None:
    response = alice.post('/uploads', json={'filename': 'big', 'size': (1 << 20) + 1,
                                            'sha256': '0' * 64})
    assert response.status_code == 413
    assert str((1 << 20) + 1) in response.json()['detail']
    assert str(1 << 20) in response.json()['detail']


def test_chunk_past_the_declared_size(alice: TestClient) -> None:
    upload_id = _begin(alice, b'12345')
    response = alice.put(f'/uploads/{upload_id}', params={'offset': 0}, content=b'123456')
    assert response.status_code == 413
    assert 'declared size of 5 bytes' in response.json()['detail']


def test_chunk_larger_than_chunk_bytes(alice: TestClient) -> None:
    upload_id = _begin(alice, b'x' * (CHUNK + 1))
    response = alice.put(f'/uploads/{upload_id}', params={'offset': 0},
                         content=b'x' * (CHUNK + 1))
    assert response.status_code == 413
    assert str(CHUNK) in response.json()['detail']


def test_out_of_order_chunk(alice: TestClient) -> None:
    data = b'abcdefgh'
    upload_id = _begin(alice, data)
    response = alice.put(f'/uploads/{upload_id}', params={'offset': 4}, content=data[4:])
    assert response.status_code == 409
    assert 'expected a chunk at offset 0, got offset 4' in response.json()['detail']
    assert alice.put(f'/uploads/{upload_id}', params={'offset': 0},
                     content=data[:4]).json() == {'received': 4}
    # the same chunk again (its answer lost) is accepted; another one at that offset is not
    assert alice.put(f'/uploads/{upload_id}', params={'offset': 0},
                     content=data[:4]).json() == {'received': 4}
    assert alice.put(f'/uploads/{upload_id}', params={'offset': 0},
                     content=b'ABCD').status_code == 409
    early = alice.post(f'/uploads/{upload_id}/complete')
    assert early.status_code == 409 and 'received 4 of 8 bytes' in early.json()['detail']
    assert alice.put(f'/uploads/{upload_id}', params={'offset': 4},
                     content=data[4:]).json() == {'received': 8}
    first = alice.post(f'/uploads/{upload_id}/complete')
    assert first.status_code == 201
    assert alice.post(f'/uploads/{upload_id}/complete').json() == first.json()


@pytest.mark.parametrize('name', ['../x', 'a/b', '..', '.', '', 'x\x00y', 'a\\b', 'x' * 256])
def test_path_like_filenames_are_refused(alice: TestClient, store: FileStore, tmp_path: Path,
                                         name: str) -> None:
    response = alice.post('/uploads', json={'filename': name, 'size': 1, 'sha256': '0' * 64})
    assert response.status_code == 422
    assert f'filename {name!r}: expected' in response.json()['detail']
    with pytest.raises(TransferError, match='expected') as info:
        store.adopt('alice', _file(tmp_path, 1), name)
    assert info.value.status == 422


def test_bad_size_and_sha_are_refused(alice: TestClient, store: FileStore) -> None:
    for body in ({'filename': 'a', 'size': -1, 'sha256': '0' * 64},
                 {'filename': 'a', 'size': '1', 'sha256': '0' * 64},
                 {'filename': 'a', 'size': 1, 'sha256': 'xyz'}):
        assert alice.post('/uploads', json=body).status_code == 422
    with pytest.raises(TransferError, match="expected sha256 as 64 hex digits, got 'xyz'"):
        store.begin('alice', 'a', 1, 'xyz')
    with pytest.raises(TransferError, match='expected a size in bytes'):
        store.begin('alice', 'a', True, '0' * 64)


def test_other_users_uploads_and_files_are_not_found(alice: TestClient, bob: TestClient,
                                                      tmp_path: Path) -> None:
    upload_id = _begin(alice, b'secret')
    put = bob.put(f'/uploads/{upload_id}', params={'offset': 0}, content=b'secret')
    assert put.status_code == 404 and put.json()['detail'] == f'upload {upload_id!r} not found'
    assert bob.post(f'/uploads/{upload_id}/complete').status_code == 404
    meta = upload(alice, _file(tmp_path, 10))
    for response in (bob.get(f'/files/{meta["id"]}'), bob.get(f'/files/{meta["id"]}/meta'),
                     bob.delete(f'/files/{meta["id"]}')):
        assert response.status_code == 404
        assert response.json()['detail'] == f'file {meta["id"]!r} not found'
    assert alice.get(f'/files/{meta["id"]}/meta').status_code == 200
    with pytest.raises(TransferError, match='not found') as info:
        download(bob, meta['id'], tmp_path / 'stolen')
    assert info.value.status == 404 and not (tmp_path / 'stolen').exists()
    assert list(tmp_path.glob('.stolen*')) == []


def test_unknown_and_malformed_ids(alice: TestClient, store: FileStore) -> None:
    unknown = '0' * 32
    assert alice.get(f'/files/{unknown}').status_code == 404
    assert alice.put(f'/uploads/{unknown}', params={'offset': 0}, content=b'x').status_code == 404
    for bad in ('..%2F..%2Fetc', 'ABCDEF' + '0' * 26, 'x' * 32, '0' * 31):
        assert alice.get(f'/files/{bad}/meta').status_code in (404, 422)
        assert alice.delete(f'/files/{bad}').status_code in (404, 422)
        assert alice.post(f'/uploads/{bad}/complete').status_code in (404, 422)
    for bad in ('../files/x', '0' * 31, None):
        with pytest.raises(TransferError, match='not found'):
            store.path('alice', bad)


def test_delete(alice: TestClient, tmp_path: Path) -> None:
    meta = upload(alice, _file(tmp_path, 10))
    assert alice.delete(f'/files/{meta["id"]}').status_code == 204
    assert alice.get(f'/files/{meta["id"]}').status_code == 404


def test_adopt(alice: TestClient, store: FileStore, tmp_path: Path) -> None:
    source = _file(tmp_path, 3000, 'out.dat')
    meta = store.adopt('alice', source, 'result.dat')
    assert meta['filename'] == 'result.dat' and meta['size'] == 3000
    assert meta['sha256'] == _sha(source.read_bytes())
    assert alice.get(f'/files/{meta["id"]}').content == source.read_bytes()
    path, again = store.path('alice', meta['id'])
    assert again == meta and path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(TransferError, match='no such file') as info:
        store.adopt('alice', tmp_path / 'missing', 'm')
    assert info.value.status == 404
    small = FileStore(tmp_path / 'small', max_bytes=100)
    with pytest.raises(TransferError, match='limit of 100 bytes') as info:
        small.adopt('alice', source, 'big')
    assert info.value.status == 413 and list((small.root / 'files').iterdir()) == []


def test_prune_removes_expired(tmp_path: Path) -> None:
    store = FileStore(tmp_path / 'store', ttl=60)
    old = store.adopt('alice', _file(tmp_path, 10), 'old')
    pending = store.begin('alice', 'p', 1, '0' * 64)['id']
    fresh = store.adopt('alice', _file(tmp_path, 10, 'b'), 'fresh')
    past = time.time() - 120
    for path in (store.root / 'files').glob(f'{old["id"]}.*'):
        os.utime(path, (past, past))
    for path in (store.root / 'uploads').glob(f'{pending}.*'):
        os.utime(path, (past, past))
    assert store.prune() == 4
    with pytest.raises(TransferError, match='not found'):
        store.path('alice', old['id'])
    with pytest.raises(TransferError, match='not found'):
        store.write('alice', pending, 0, b'x')
    assert store.path('alice', fresh['id'])[1] == fresh


def test_expired_file_is_not_found_before_pruning(tmp_path: Path) -> None:
    store = FileStore(tmp_path / 'store', ttl=0.05)
    meta = store.adopt('alice', _file(tmp_path, 10), 'f')
    time.sleep(0.1)
    with pytest.raises(TransferError, match='not found'):
        store.path('alice', meta['id'])


def test_metadata_survives_a_new_store(store: FileStore, alice: TestClient,
                                       tmp_path: Path) -> None:
    source = _file(tmp_path, 2 * CHUNK)
    meta = upload(alice, source)
    restarted = FileStore(store.root)
    path, again = restarted.path('alice', meta['id'])
    assert again == meta and path.read_bytes() == source.read_bytes()
    with _client(restarted, 'alice') as client:
        download(client, meta['id'], tmp_path / 'after')
    assert (tmp_path / 'after').read_bytes() == source.read_bytes()


def test_tampered_file_fails_download(store: FileStore, alice: TestClient,
                                      tmp_path: Path) -> None:
    meta = upload(alice, _file(tmp_path, 5000))
    path, _ = store.path('alice', meta['id'])
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    dest = tmp_path / 'dest.bin'
    with pytest.raises(TransferError) as info:
        download(alice, meta['id'], dest)
    assert meta['sha256'] in str(info.value) and hashlib.sha256(data).hexdigest() in str(info.value)
    assert not dest.exists() and list(tmp_path.glob('.dest.bin*')) == []


def test_client_errors_carry_the_service_detail(alice: TestClient, tmp_path: Path) -> None:
    small = _file(tmp_path, CHUNK + 1)
    with pytest.raises(TransferError, match='at most') as info:
        upload(alice, small, chunk_bytes=CHUNK + 1)
    assert info.value.status == 413
    with pytest.raises(TransferError, match="filename '../x'") as info:
        upload(alice, small, filename='../x')
    assert info.value.status == 422


def test_files_and_directories_are_private(store: FileStore, alice: TestClient,
                                           tmp_path: Path) -> None:
    upload_id = _begin(alice, b'abc')
    meta = upload(alice, _file(tmp_path, 10))
    assert (store.root / 'uploads').stat().st_mode & 0o777 == 0o700
    assert (store.root / 'files').stat().st_mode & 0o777 == 0o700
    for path in [*store.root.rglob(f'{upload_id}.*'), *store.root.rglob(f'{meta["id"]}.*')]:
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_openapi_documents_the_endpoints(alice: TestClient) -> None:
    schema = alice.get('/openapi.json').json()
    put = schema['paths']['/uploads/{upload_id}']['put']
    assert 'application/octet-stream' in put['requestBody']['content']
    assert put['tags'] == ['files'] and put['summary']
    get = schema['paths']['/files/{file_id}']['get']
    assert '206' in get['responses']
    assert {'UploadRequest', 'UploadStarted', 'UploadProgress', 'FileMeta'} <= set(
        schema['components']['schemas'])


def test_chunk_without_content_length_is_bounded(alice: TestClient) -> None:
    upload_id = _begin(alice, b'x' * (2 * CHUNK))
    pieces = iter([b'x' * CHUNK, b'x' * CHUNK])
    response = alice.put(f'/uploads/{upload_id}', params={'offset': 0}, content=pieces)
    assert response.status_code == 413 and str(CHUNK) in response.json()['detail']
    assert alice.put(f'/uploads/{upload_id}', params={'offset': 0},
                     content=iter([b'x' * 10, b'x' * 10])).json() == {'received': 20}
