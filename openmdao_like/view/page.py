"""Self-contained HTML pages (the model view, the parallel coordinates): a template from
``openmdao_like/view/assets`` with its style, script and data inlined, written atomically.
Nothing in a page is fetched from any host."""

from __future__ import annotations

import html
import json
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .._version import __version__

_PLACEHOLDER = re.compile(r'__(TITLE|VERSION|CSS|JS|DATA)__')


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """The text of ``openmdao_like/view/assets/<name>``."""
    return resources.files(__package__).joinpath('assets', name).read_text(encoding='utf-8')


def script_json(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element: no ``</script>`` or
    ``<!--`` can end or change it, whatever the strings in the model say."""
    text = json.dumps(data, separators=(',', ':'), ensure_ascii=False, allow_nan=False)
    return text.replace('<', '\\u003c').replace('\u2028', '\\u2028').replace('\u2029', '\\u2029')


def fill_page(template: str, title: str, css: str, js: str, data: Any) -> str:
    """``template`` with its ``__TITLE__``, ``__VERSION__``, ``__CSS__``, ``__JS__`` and
    ``__DATA__`` filled in one pass (a value is never searched for placeholders)."""
    values = {'TITLE': html.escape(title), 'VERSION': __version__, 'CSS': css, 'JS': js,
              'DATA': script_json(data)}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def write_text_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file beside it, so that a reader never
    sees half a page; the path written."""
    target = Path(path)
    partial = target.with_name(f'.{target.name}.{os.getpid()}.partial')
    try:
        partial.write_text(text, encoding='utf-8')
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
