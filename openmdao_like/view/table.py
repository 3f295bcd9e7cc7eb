"""Plain-text tables for the command line: aligned columns under a header rule, no extra
dependencies::

    >>> print(format_table(['name', 'value'], [['p.x', 7.166666667], ['p.y', -7.8333333]]))
    name     value
    ----  --------
    p.x    7.16667
    p.y   -7.83333
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence

import numpy as np

#: Significant digits shown for floats.
DIGITS = 6
#: Array elements shown before eliding the middle.
MAX_ELEMENTS = 6


def format_value(value: Any, digits: int = DIGITS) -> str:
    """One cell's text: floats to ``digits`` significant digits, short arrays in full, long
    arrays elided, None as '-', anything else as ``str``."""
    if value is None:
        return '-'
    if isinstance(value, (bool, np.bool_)):
        return 'yes' if value else 'no'
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value) + 0.0  # + 0.0 turns -0.0 into 0.0
        return str(value) if math.isnan(value) or math.isinf(value) else f'{value:.{digits}g}'
    if isinstance(value, (np.ndarray, list, tuple)):
        items = np.asarray(value, dtype=object).ravel() if isinstance(value, np.ndarray) \
            else list(value)
        shown = [format_value(v, digits) for v in items[:MAX_ELEMENTS]]
        if len(items) > MAX_ELEMENTS:
            shown[-1:] = ['...', format_value(items[-1], digits)]
        text = f"[{', '.join(shown)}]"
        if isinstance(value, np.ndarray) and value.ndim > 1:
            text += f' shape {value.shape}'
        return text
    return ' '.join(str(value).split())


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
                 digits: int = DIGITS) -> str:
    """Render ``rows`` under ``headers`` as aligned text with a rule below the header.

    Columns holding only numbers (and blanks) are right-aligned, the others left-aligned. A
    row shorter than ``headers`` is padded with blanks; a longer one is an error.
    """
    rows = [list(row) for row in rows]
    ncols = len(headers)
    for i, row in enumerate(rows):
        if len(row) > ncols:
            raise ValueError(f'format_table: row {i} has {len(row)} cells, expected at most '
                             f'{ncols} (headers: {list(headers)})')
        row.extend([''] * (ncols - len(row)))
    cells = [[format_value(v, digits) for v in row] for row in rows]
    right = [any(_is_number(row[c]) for row in rows)
             and all(_is_number(row[c]) or _is_blank(row[c]) for row in rows)
             for c in range(ncols)]
    widths = [max([len(str(h))] + [len(row[c]) for row in cells]) for c, h in
              enumerate(headers)]

    def line(texts: Sequence[str]) -> str:
        return '  '.join(t.rjust(w) if r else t.ljust(w)
                         for t, w, r in zip(texts, widths, right)).rstrip()

    out = [line([str(h) for h in headers]), line(['-' * w for w in widths])]
    out.extend(line(row) for row in cells)
    return '\n'.join(out)
