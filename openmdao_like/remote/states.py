"""Saved object states that a server will load again: each written by an ObjServer and signed
with an HMAC of the server's owner key, so `restore` unpickles only files a server wrote,
never one a client uploaded or changed (a state is a pickle: loading runs code)."""

from __future__ import annotations

import hashlib
import hmac
import os

#: Suffix of the file holding a state's signature, beside the state.
SIGNATURE = '.sig'
_DOMAIN = b'openmdao_like object state\0'


def _digest(key: bytes, path: str) -> str:
    sha = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            sha.update(block)
    return hmac.new(key, _DOMAIN + sha.digest(), hashlib.sha256).hexdigest()


def sign(key: bytes, path: str) -> None:
    """Sign the state just written to ``path`` (its signature goes beside it)."""
    with open(path + SIGNATURE, 'w') as out:
        out.write(_digest(key, path))


def verify(key: bytes, path: str, shown: str) -> None:
    """Check the state at ``path`` against its signature; `PermissionError` naming ``shown``
    when it was not written by a server holding ``key``, or was changed since."""
    try:
        with open(path + SIGNATURE) as f:
            signature = f.read().strip()
    except OSError:
        signature = ''
    if not os.path.isfile(path) or not hmac.compare_digest(signature, _digest(key, path)):
        raise PermissionError(f'{shown!r}: not an object state saved by this server (or '
                              f'changed since); only those are loaded')


def move(source: str, target: str) -> None:
    """Move a state and its signature."""
    os.replace(source + SIGNATURE, target + SIGNATURE)
    os.replace(source, target)
