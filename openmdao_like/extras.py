"""Optional dependencies: imported when a feature that needs one is used, with the extra that
installs it named when it is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ['require']


def require(module: str, who: str, extra: str) -> ModuleType:
    """``module``, imported; `ImportError` saying that ``who`` needs it and how to install it
    (``pip install openmdao_like[extra]``)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f'{who} needs {module} ({exc}); install it with: pip install '
                          f'openmdao_like[{extra}]') from exc
