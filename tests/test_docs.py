"""Every ```python block of docs/*.md runs as a script and succeeds, so the user guide stays true.

Each block is a complete program: it runs in a fresh interpreter (this venv's python) in an
empty temporary directory, and fails the test by raising (the examples assert what they show).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / 'docs'
BLOCK = re.compile(r'^```python[ \t]*\n(.*?)^```[ \t]*$', re.MULTILINE | re.DOTALL)
TIMEOUT = 120


def doc_blocks() -> list:
    """One pytest param per python block: id ``page.md:line``."""
    params = []
    for page in sorted(DOCS.glob('*.md')):
        text = page.read_text(encoding='utf-8')
        for match in BLOCK.finditer(text):
            line = text.count('\n', 0, match.start()) + 2  # first line of the code
            params.append(pytest.param(page, line, match.group(1),
                                       id=f'{page.name}:{line}'))
    return params


def test_docs_have_examples():
    pages = {p.name for p in DOCS.glob('*.md')}
    assert {'index.md', 'variables.md', 'connections.md', 'drivers.md',
            'recorders.md'} <= pages
    with_code = {param.values[0].name for param in doc_blocks()}
    assert with_code == pages, f'pages without a python example: {pages - with_code}'


@pytest.mark.parametrize(('page', 'line', 'code'), doc_blocks())
def test_doc_example_runs(page, line, code, tmp_path):
    script = tmp_path / f'{page.stem}_{line}.py'
    script.write_text(code, encoding='utf-8')
    proc = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, (f'{page.name}, block at line {line} failed:\n'
                                  f'{proc.stdout}\n{proc.stderr}')
