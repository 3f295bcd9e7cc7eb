"""Files that File variables refer to, saved beside the model (a directory or a zip holding
``model.yaml``/``model.pkl`` and ``files/...``) and restored under the loading model's
directory — never outside it."""

from __future__ import annotations

import os
import shutil
import zipfile
from typing import IO, Iterator

from .. import tree
from ..container import Container
from ..errors import PathError, PersistenceError
from ..variables.file import FileRef

FILES = 'files'
MODEL_NAMES = {'yaml': 'model.yaml', 'pickle': 'model.pkl'}


def model_files(obj: Container) -> Iterator[tuple[str, str]]:
    """(path relative to ``obj``'s directory, absolute path) of every existing file that a File
    variable below ``obj`` refers to. A reference leaving the directory raises `PathError`."""
    root = obj.get_abs_directory()
    seen = set()
    stack = [obj]
    while stack:
        node = stack.pop()
        for name in tree.variables(node):
            ref = getattr(node, name, None)
            if not isinstance(ref, FileRef):
                continue
            full = ref.abspath()
            rel = os.path.relpath(full, root)
            if rel == '..' or rel.startswith('..' + os.sep) or os.path.isabs(rel):
                raise PathError(f'{tree.where(node)}.{name}: file {full!r} is outside the model '
                                f'directory {root!r}; it cannot be saved with the model')
            if rel not in seen and os.path.isfile(full):
                seen.add(rel)
                yield rel, full
        stack.extend(tree.children(node).values())


def safe_relative(name: str, source: str) -> str:
    """``name`` (an archive entry below ``files/``) as a relative path that stays inside the
    directory it is restored to; `PathError` otherwise."""
    rel = name.replace('\\', '/')
    norm = os.path.normpath(rel)
    if rel.startswith('/') or os.path.isabs(rel) or norm == '..' or \
            norm.startswith('..' + os.sep) or ':' in rel.split('/')[0]:
        raise PathError(f'{source}: file entry {name!r} escapes the model directory (expected '
                        f'a relative path without "..")')
    return norm


def write_directory(path: str, fmt: str, data: bytes, files: list[tuple[str, str]]) -> None:
    """``path/model.<ext>`` and ``path/files/...``."""
    os.makedirs(path, exist_ok=True)
    for rel, full in files:
        dest = os.path.join(path, FILES, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(full, dest)
    write_atomic(os.path.join(path, MODEL_NAMES[fmt]), data)


def write_zip(target: str | IO[bytes], fmt: str, data: bytes,
              files: list[tuple[str, str]]) -> None:
    """A zip (file path or binary stream) holding the model and its files."""
    with zipfile.ZipFile(target, 'w', zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(MODEL_NAMES[fmt], data)
        for rel, full in files:
            zf.write(full, f'{FILES}/{rel.replace(os.sep, "/")}')


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so no half-written file is left."""
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'wb') as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class Archive:
    """A saved model with its files: a directory or a zip."""

    def __init__(self, source: str, zf: zipfile.ZipFile | None = None, root: str | None = None):
        self.source = source
        self.zf = zf
        self.root = root

    def model_bytes(self) -> bytes:
        """The model file inside the archive."""
        for name in MODEL_NAMES.values():
            if self.zf is not None and name in self.zf.namelist():
                return self.zf.read(name)
            if self.root is not None and os.path.isfile(os.path.join(self.root, name)):
                with open(os.path.join(self.root, name), 'rb') as fh:
                    return fh.read()
        raise PersistenceError(f'{self.source}: no model in it (expected '
                               f'{" or ".join(MODEL_NAMES.values())})')

    def entries(self) -> list[str]:
        """Paths (below ``files/``, '/'-separated) of the saved files; each checked."""
        found = []
        if self.zf is not None:
            for info in self.zf.infolist():
                if info.filename.startswith(f'{FILES}/') and not info.is_dir():
                    found.append(info.filename[len(FILES) + 1:])
        elif self.root is not None:
            base = os.path.join(self.root, FILES)
            for dirpath, _, names in os.walk(base):
                for name in names:
                    full = os.path.join(dirpath, name)
                    if os.path.islink(full):
                        raise PathError(f'{self.source}: {full!r} is a symbolic link; saved '
                                        f'files must be regular files')
                    found.append(os.path.relpath(full, base).replace(os.sep, '/'))
        for rel in found:
            safe_relative(rel, self.source)
        return sorted(found)

    def restore(self, directory: str) -> int:
        """Copy the saved files below ``directory``; return how many."""
        entries = self.entries()
        for rel in entries:
            dest = os.path.join(directory, safe_relative(rel, self.source))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if self.zf is not None:
                with self.zf.open(f'{FILES}/{rel}') as src, open(dest, 'wb') as dst:
                    shutil.copyfileobj(src, dst)
            else:
                shutil.copyfile(os.path.join(self.root, FILES, rel), dest)
        return len(entries)
