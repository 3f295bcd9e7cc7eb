"""`Progress`: a progress bar on stderr for long loops (cases run, bytes transferred).

The bar is shown only when asked for (``enabled=True``) or, by default, when the stream is a
terminal; otherwise `Progress` only counts. Updates reach tqdm in batches that grow until one
comes at most every ``min_interval`` seconds, so a loop can call `update` once per item at a
cost of a few attribute operations::

    with Progress(total=len(cases), desc='top.driver', unit='case') as bar:
        for case in cases:
            ...
            bar.update()

A loop that also shows how it is doing hands its latest figures to `set_postfix` (kept until
the next redraw, formatted only then; nothing at all when the bar is not shown)::

    bar.set_postfix(objective=f, violation=g)
    bar.update()
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

logger = logging.getLogger(__name__)

__all__ = ['Progress']


def _tqdm_class() -> Any:
    """tqdm without its monitor thread (a thread would make forking worker processes unsafe)."""
    from tqdm import tqdm

    class _Bar(tqdm):
        monitor_interval = 0

    return _Bar


class Progress:
    """Counts done work and, when enabled, shows it as a tqdm bar.

    Parameters
    ----------
    total : int, optional
        Expected count (None when unknown: the bar shows count and rate only).
    desc : str
        Label in front of the bar.
    unit : str
        Name of one item ('case', 'B', ...).
    enabled : bool, optional
        True: always show; False: never; None (default): when ``stream`` is a terminal.
    stream : file, optional
        Where the bar is drawn (default ``sys.stderr``).
    min_interval : float
        Shortest time (s) between two redraws.
    **tqdm_args
        Passed on to tqdm (e.g. ``unit_scale=True`` for bytes).

    Attributes
    ----------
    n : int
        Count so far.
    """

    def __init__(self, total: int | None = None, desc: str = '', unit: str = 'it',
                 enabled: bool | None = None, stream: TextIO | None = None,
                 min_interval: float = 0.2, **tqdm_args: Any):
        stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(stream, 'isatty', None)
            enabled = bool(isatty and isatty())
        self.n = 0
        self._pending = 0
        self._batch = 1
        self._min_interval = min_interval
        self._last = time.monotonic()
        self._bar = None
        self._postfix: dict[str, Any] | None = None
        if enabled:
            self._bar = _tqdm_class()(total=total, desc=desc, unit=unit, file=stream,
                                      mininterval=min_interval, dynamic_ncols=True, **tqdm_args)

    @property
    def enabled(self) -> bool:
        """Whether a bar is shown."""
        return self._bar is not None

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items (redraws at most every ``min_interval`` s)."""
        self.n += n
        if self._bar is None:
            return
        self._pending += n
        if self._pending >= self._batch:
            self._flush()

    def set_postfix(self, **values: Any) -> None:
        """Show ``name=value`` pairs after the count from the next redraw on (replacing those
        shown before); numbers are shown to 4 significant digits. Costs nothing when no bar is
        shown."""
        if self._bar is not None:
            self._postfix = values

    def _flush(self) -> None:
        """Hand the pending count (and figures) to tqdm; adapt the batch to the update rate."""
        now = time.monotonic()
        self._show_postfix()
        self._bar.update(self._pending)
        self._pending = 0
        if now - self._last < self._min_interval:
            self._batch *= 2
        elif self._batch > 1:
            self._batch //= 2
        self._last = now

    def _show_postfix(self) -> None:
        """Format the figures given since the last redraw and hand them to tqdm (no redraw)."""
        values, self._postfix = self._postfix, None
        if values is not None:
            text = ', '.join(f'{name}={value:.4g}' if isinstance(value, float) else
                             f'{name}={value}' for name, value in values.items())
            self._bar.set_postfix_str(text, refresh=False)

    def set_total(self, total: int | None) -> None:
        """Change the expected count."""
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def close(self) -> None:
        """Draw the final count and release the bar (safe to call again)."""
        if self._bar is not None:
            self._show_postfix()
            if self._pending:
                self._bar.update(self._pending)
                self._pending = 0
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
