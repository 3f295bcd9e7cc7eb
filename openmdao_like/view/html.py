"""`write_model_view`: the model view as one self-contained HTML file — its data (from
`describe_model`), style and script inlined, nothing fetched from any host, so the file opens
in any browser, offline, and can be mailed or archived with the results."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .model import describe_model
from .page import asset, fill_page, write_text_atomically


def model_view_html(top: Any, title: str | None = None) -> str:
    """The model view of ``top`` as the text of an HTML page."""
    data = describe_model(top, title)
    return fill_page(asset('model_view.html'), data['title'], asset('model_view.css'),
                     asset('model_view.js'), data)


def write_model_view(top: Any, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write the model view of ``top`` (an `Assembly`) to the HTML file ``path``: the
    component tree, the N2 connection matrix, the connections and the drivers; the path
    written. Open it in any browser; it needs no network."""
    return write_text_atomically(path, model_view_html(top, title))
