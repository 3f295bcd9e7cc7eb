"""`File` variables and the `FileRef` values they hold: files that live in a component's
directory and are copied into the destination component's directory when a connection fires."""

from __future__ import annotations

import os
import shutil
from typing import Any, IO

from traits.api import NoDefaultSpecified

from ..errors import PathError, ValidationError, describe
from .base import Reject, Variable


class FileRef:
    """A file, named relative to its owner component's directory.

    Parameters
    ----------
    path : str
        File name relative to the owner's directory (or absolute when there is no owner).
    owner : Component, optional
        The component whose directory holds the file.
    binary : bool
        Whether the file holds binary data (it is then opened in binary mode).
    content_type : str, optional
        A free-form type tag (e.g. ``'stl'``) matched against a destination's ``legal_types``.
    """

    __slots__ = ('path', 'owner', 'binary', 'content_type')

    def __init__(self, path: str, owner: Any = None, binary: bool = False,
                 content_type: str | None = None):
        if not isinstance(path, str) or not path:
            raise ValueError(f'FileRef: path must be a non-empty str, got {describe(path)}')
        self.path = path
        self.owner = owner
        self.binary = bool(binary)
        self.content_type = content_type

    def abspath(self) -> str:
        """Absolute path of the file; a relative path may not climb out of the owner's directory."""
        if self.owner is None:
            return os.path.abspath(self.path)
        base = self.owner.get_abs_directory()
        full = os.path.normpath(os.path.join(base, self.path))
        if os.path.commonpath([base, full]) != base:
            raise PathError(f'{self.owner.get_pathname()}: file path {self.path!r} escapes '
                            f'the component directory {base!r}')
        return full

    def open(self, mode: str | None = None) -> IO[Any]:
        """Open the file for reading (binary mode for binary files)."""
        return open(self.abspath(), mode or ('rb' if self.binary else 'r'))

    def copy_to(self, owner: Any, path: str) -> 'FileRef':
        """Copy the file into ``owner``'s directory as ``path``; return the new reference."""
        dest = FileRef(path, owner, self.binary, self.content_type)
        src_path, dst_path = self.abspath(), dest.abspath()
        if not os.path.isfile(src_path):
            where = self.owner.get_pathname() if self.owner is not None else 'FileRef'
            raise PathError(f'{where}: expected file {src_path!r} to exist, but it does not')
        if src_path != dst_path:
            os.makedirs(os.path.dirname(dst_path), exist_ok=True)
            shutil.copyfile(src_path, dst_path)
        return dest

    def __getstate__(self):
        return (self.path, self.owner, self.binary, self.content_type)

    def __setstate__(self, state):
        self.path, self.owner, self.binary, self.content_type = state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FileRef):
            return NotImplemented
        return (self.path, self.owner, self.binary, self.content_type) == \
            (other.path, other.owner, other.binary, other.content_type)

    def __hash__(self) -> int:
        return hash((self.path, id(self.owner)))

    def __repr__(self) -> str:
        return f'FileRef({self.path!r}, binary={self.binary})'


class File(Variable):
    """A variable whose value is a `FileRef` (or None).

    Parameters
    ----------
    local_path : str, optional
        For an output, the file the component writes; for an input, the name the incoming file
        gets in this component's directory (default: the source file's name).
    legal_types : sequence of str, optional
        Content types an input accepts.
    binary : bool
        Whether the file is binary.
    content_type : str, optional
        The content type an output produces.
    """

    type_desc = 'a FileRef'

    def __init__(self, default_value: Any = NoDefaultSpecified, iotype: str | None = None,
                 desc: str | None = None, local_path: str | None = None,
                 legal_types: Any = None, binary: bool = False, content_type: str | None = None,
                 path: str | None = None, **metadata: Any):
        local_path = local_path if local_path is not None else path
        md = dict(metadata, binary=bool(binary))
        if local_path is not None:
            md['local_path'] = local_path
        if legal_types is not None:
            md['legal_types'] = tuple(legal_types)
        if content_type is not None:
            md['content_type'] = content_type
        if default_value is NoDefaultSpecified:
            default_value = None
        super().__init__(default_value, iotype=iotype, desc=desc, **md)
        self.local_path, self.binary, self.content_type = local_path, bool(binary), content_type
        self.legal_types = tuple(legal_types) if legal_types is not None else None

    def check_definition(self, where: str) -> None:
        if self.local_path is not None and (not isinstance(self.local_path, str)
                                            or os.path.isabs(self.local_path)
                                            or '..' in self.local_path.split(os.sep)):
            raise ValidationError(f'{where}: local_path must be a relative path inside the '
                                  f'component directory, got {describe(self.local_path)}')
        super().check_definition(where)

    def check_value(self, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, FileRef):
            raise Reject
        if self.legal_types is not None and value.content_type is not None \
                and value.content_type not in self.legal_types:
            raise Reject
        return value

    def expectation(self) -> str:
        if self.legal_types:
            return f'a FileRef with content type in {self.legal_types!r}'
        return 'a FileRef or None'


File.accepts = (File,)
