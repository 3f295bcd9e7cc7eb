"""Type names a file or a peer may ask for: dotted Python paths outside the standard library.

No model class lives in the standard library, and some of its modules act when imported
(``this`` prints, ``antigravity`` opens a browser), so a name taken from a model file or a
remote request is checked here before anything is imported.
"""

from __future__ import annotations

import sys
from typing import Any


def check_type_name(typname: Any, what: str = '', imported_ok: bool = False) -> str:
    """``typname`` when it is a dotted Python path (``package.module.Class``) whose top-level
    package is not a standard-library module (``imported_ok``: unless already imported, which
    makes importing it do nothing); else `NameError` (`TypeError` for a non-str) saying why,
    prefixed by ``what``, before anything is imported."""
    prefix = f'{what}: ' if what else ''
    if not isinstance(typname, str):
        raise TypeError(f'{prefix}expected a dotted name such as "package.module.Class", got '
                        f'{type(typname).__name__}')
    parts = typname.split('.')
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise NameError(f'{prefix}expected a dotted name such as "package.module.Class", got '
                        f'{typname[:200]!r}')
    top = parts[0]
    if top in sys.stdlib_module_names and not (imported_ok and top in sys.modules):
        raise NameError(f'{prefix}{typname!r} would import the standard-library module '
                        f'{top!r}, which holds no model classes; refused before importing it')
    return typname
