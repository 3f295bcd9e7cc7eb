"""Result plots of a case file: the history of a driver's objectives, constraints and
parameters, a scatter matrix of its cases, and parallel coordinates (a static figure, or a
self-contained interactive HTML page)::

    plot_cases('opt.sqlite', 'history', 'history.png')
    plot_cases('doe.sqlite', 'scatter', 'scatter.svg', variables=['p.x', 'p.y', 'p.f'])
    plot_cases('doe.sqlite', 'parallel', 'parallel.html')
    standard_plots('doe.sqlite', 'report/')      # history.png, scatter.png, parallel.html

Only scalar numeric variables are plotted (arrays and text are left out, as the log says).
Labels carry the units the file's metadata gives (``f.t [s]``). Failed cases are drawn in red:
a band at their iteration in the history, a red x at their inputs elsewhere (their outputs are
NaN). Figures are drawn with matplotlib's object API (no pyplot, no GUI) and written by the
output's suffix: ``.png``, ``.svg`` (text kept as text) or ``.pdf``; parallel coordinates also
``.html``. Nothing is written when a plot cannot be made.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..cases import FAILED
from ..errors import ViewError
from ..extras import require
from ..options import suggest
from .cases import (Series, describe_filters, numeric_series, output_path, read_case_file,
                    variable_names)
from .page import asset, fill_page, write_text_atomically
from .values import json_value

logger = logging.getLogger(__name__)

__all__ = ['plot_cases', 'plot_history', 'plot_scatter', 'plot_parallel', 'standard_plots',
           'parallel_html', 'KINDS', 'STATIC_SUFFIXES']

#: The kinds of plot `plot_cases` makes.
KINDS = ('history', 'scatter', 'parallel')
#: Output suffixes every kind writes; parallel coordinates also write ``.html``.
STATIC_SUFFIXES = ('.png', '.svg', '.pdf')
#: Pixels per inch of the figures (a PNG is its size in inches times this).
DPI = 100
#: History: width and height of each panel (one per group of variables), in inches.
HISTORY_PANEL = (10.0, 3.0)
#: Scatter matrix: inches per variable (the figure is square, at least SCATTER_MIN wide).
SCATTER_CELL = 2.5
SCATTER_MIN = 5.0
#: Variables a scatter matrix shows unless they are chosen (the first ones, parameters first).
MAX_SCATTER_VARIABLES = 8
#: Parallel coordinates: inches per axis (at least PARALLEL_MIN wide) and the height.
PARALLEL_AXIS = 1.6
PARALLEL_MIN = 8.0
PARALLEL_HEIGHT = 5.0
OK_COLOR = '#1f77b4'
FAILED_COLOR = '#d62728'

#: History panels, top down, and their titles.
_HISTORY_PANELS = {'output': 'objectives and responses',
                   'constraint': 'constraints (residual, <= 0 when met)',
                   'parameter': 'parameters',
                   'variable': 'variables (no metadata: inputs and outputs not told apart)'}


# -- the plots ------------------------------------------------------------------------------

def plot_history(records: Sequence[dict[str, Any]], metadata: dict[str, Any] | None,
                 out: str | os.PathLike[str], variables: Sequence[str] | None = None,
                 title: str = '') -> Path:
    """Objectives and responses, constraints and parameters (a panel each) against the
    iteration of the one driver that recorded ``records``, failed cases as red bands; written
    to ``out`` (.png, .svg, .pdf: HISTORY_PANEL inches per panel)."""
    out = output_path(out, 'write a history plot to', STATIC_SUFFIXES)
    series = _series(records, metadata, variables, out)
    drivers = sorted({record['driver'] for record in records})
    if len(drivers) > 1:
        raise ViewError(f'cannot plot the history to {str(out)!r}: expected the cases of one '
                        f'driver, got cases of {", ".join(map(repr, drivers))}')
    x, xlabel = _iterations(records, drivers[0])
    failed = np.array([record['status'] == FAILED for record in records])
    panels = [group for group in _HISTORY_PANELS if any(s.group == group for s in series)]
    fig = _figure((HISTORY_PANEL[0], HISTORY_PANEL[1] * len(panels)))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    ticker = require('matplotlib.ticker', 'openmdao-like plot', 'view')
    for ax, group in zip(axes, panels):
        members = [s for s in series if s.group == group]
        for k, s in enumerate(members):
            ax.plot(x, s.values, marker='.', label=s.label)
            shown = failed & np.isfinite(s.values)  # a failed case's outputs are NaN
            if shown.any():
                ax.plot(x[shown], s.values[shown], linestyle='none', marker='x', ms=8, mew=2,
                        color=FAILED_COLOR, gid=f'failed-{group}-{k}')
        for k, at in enumerate(x[failed]):
            ax.axvspan(at - 0.5, at + 0.5, color=FAILED_COLOR, alpha=0.2, lw=0,
                       label='failed' if k == 0 else None)
        if group == 'constraint':
            ax.axhline(0.0, color='0.4', linestyle=':', linewidth=1)
        ax.set_ylabel(members[0].label if len(members) == 1 else _HISTORY_PANELS[group])
        ax.set_title(_HISTORY_PANELS[group], loc='left', fontsize='medium')
        ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize='small',
                  frameon=False)
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    axes[-1].set_xlabel(xlabel)
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def _iterations(records: Sequence[dict[str, Any]], driver: str) -> tuple[np.ndarray, str]:
    """The x of each case: the driver's own iteration numbers when they increase (a top
    driver), else the case ids (a solver's passes, numbered again in each run)."""
    try:
        numbers_ = [int(r['iteration'].rpartition('|')[2].rpartition(':')[2]) for r in records]
    except ValueError:
        numbers_ = []
    if numbers_ and all(a < b for a, b in zip(numbers_, numbers_[1:])):
        return np.array(numbers_, dtype=float), f'iteration of {driver}'
    return np.array([r['id'] for r in records], dtype=float), 'case id'


def plot_scatter(records: Sequence[dict[str, Any]], metadata: dict[str, Any] | None,
                 out: str | os.PathLike[str], variables: Sequence[str] | None = None,
                 title: str = '') -> Path:
    """A scatter matrix of the scalar numeric variables (parameters first; at most
    MAX_SCATTER_VARIABLES unless chosen): histograms on the diagonal, failed cases as red x at
    their inputs (on the bottom edge where the other value is missing); written to ``out``
    (.png, .svg, .pdf: SCATTER_CELL inches per variable, square)."""
    out = output_path(out, 'write a scatter plot to', STATIC_SUFFIXES)
    series = _series(records, metadata, variables, out)
    if len(series) < 2:
        raise ViewError(f'cannot plot a scatter matrix to {str(out)!r}: expected at least 2 '
                        f'scalar numeric variables, got {len(series)} '
                        f'({", ".join(s.name for s in series) or "none"})')
    if variables is None and len(series) > MAX_SCATTER_VARIABLES:
        logger.warning('scatter matrix %s: showing the first %d variables; left out: %s '
                       '(choose them with variables= / --vars)', out, MAX_SCATTER_VARIABLES,
                       ', '.join(s.name for s in series[MAX_SCATTER_VARIABLES:]))
        series = series[:MAX_SCATTER_VARIABLES]
    failed = np.array([record['status'] == FAILED for record in records])
    n = len(series)
    size = max(SCATTER_MIN, SCATTER_CELL * n)
    fig = _figure((size, size))
    grid = fig.subplots(n, n, sharex='col', squeeze=False)
    for i, sy in enumerate(series):
        for j, sx in enumerate(series):
            ax = grid[i, j]
            xo = sx.values[~failed]
            if i == j:
                finite = xo[np.isfinite(xo)]
                if finite.size:
                    ax.hist(finite, bins=max(5, min(20, int(math.sqrt(finite.size)) + 1)),
                            color=OK_COLOR, alpha=0.7)
            else:
                ax.plot(xo, sy.values[~failed], linestyle='none', marker='o', ms=3,
                        color=OK_COLOR)
            _failed_markers(ax, sx.values[failed], None if i == j else sy.values[failed],
                            f'failed-{i}-{j}')
            ax.tick_params(labelsize='x-small')
            if i == n - 1:
                ax.set_xlabel(sx.label, fontsize='small')
            else:
                ax.tick_params(labelbottom=False)
            if j == 0:
                ax.set_ylabel(sy.label, fontsize='small')
    _legend(fig, failed.any(), 'o')
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def _failed_markers(ax: Any, x: np.ndarray, y: np.ndarray | None, gid: str) -> None:
    """Red x at the failed cases' (x, y); where y is missing (an output), on the bottom edge."""
    at_x = np.isfinite(x)
    if y is not None:
        both = at_x & np.isfinite(y)
        if both.any():
            ax.plot(x[both], y[both], linestyle='none', marker='x', ms=6, mew=1.5,
                    color=FAILED_COLOR, gid=gid)
        at_x &= ~both
    if at_x.any():
        ax.plot(x[at_x], np.full(int(at_x.sum()), 0.04), linestyle='none', marker='x', ms=6,
                mew=1.5, color=FAILED_COLOR, transform=ax.get_xaxis_transform(),
                gid=f'{gid}-edge')


def _legend(fig: Any, any_failed: bool, marker: str | None) -> None:
    """The figure's legend: ok cases, and failed ones when there are."""
    lines = require('matplotlib.lines', 'openmdao-like plot', 'view')
    style = {'marker': marker, 'linestyle': 'none'} if marker else {'linestyle': '-'}
    handles = [lines.Line2D([], [], color=OK_COLOR, label='ok', **style)]
    if any_failed:
        bad = {'marker': 'x', 'linestyle': 'none'} if marker else {'linestyle': '--'}
        handles.append(lines.Line2D([], [], color=FAILED_COLOR, label='failed', **bad))
    fig.legend(handles=handles, loc='outside upper right', ncols=len(handles),
               fontsize='small', frameon=False)


def plot_parallel(records: Sequence[dict[str, Any]], metadata: dict[str, Any] | None,
                  out: str | os.PathLike[str], variables: Sequence[str] | None = None,
                  title: str = '') -> Path:
    """Parallel coordinates, one axis per scalar numeric variable (parameters first), one line
    per case, failed cases in red through their inputs; ``out`` .png, .svg or .pdf (a
    figure), or .html (a self-contained page where dragging along an axis filters the
    lines)."""
    out = output_path(out, 'write a parallel plot to', STATIC_SUFFIXES + ('.html',))
    series = _series(records, metadata, variables, out)
    if out.suffix.lower() == '.html':
        write_text_atomically(out, parallel_html(records, series, title))
        logger.info('wrote %s', out)
        return out
    failed = np.array([record['status'] == FAILED for record in records])
    n = len(series)
    fig = _figure((max(PARALLEL_MIN, PARALLEL_AXIS * n), PARALLEL_HEIGHT))
    ax = fig.subplots()
    xs = np.arange(n, dtype=float)
    scaled = np.empty((n, len(records)))
    for k, s in enumerate(series):
        lo, hi = _range(s.values)
        scaled[k] = (s.values - lo) / (hi - lo)
        ax.axvline(k, color='0.3', linewidth=1)
        ax.text(k + 0.03, 1.0, f'{hi:.4g}', fontsize='x-small', va='top')
        ax.text(k + 0.03, 0.0, f'{lo:.4g}', fontsize='x-small', va='bottom')
    if (~failed).any():
        ax.plot(xs, scaled[:, ~failed], color=OK_COLOR, alpha=0.5, linewidth=1)
    if failed.any():
        for k, line in enumerate(ax.plot(xs, scaled[:, failed], color=FAILED_COLOR,
                                         linestyle='--', linewidth=1.5)):
            line.set_gid(f'failed-{k}')
    ax.set_xticks(xs, [s.label for s in series], rotation=20 if n > 5 else 0,
                  fontsize='small')
    ax.set_xlim(-0.2, n - 0.8 if n > 1 else 0.2)
    ax.set_ylim(-0.03, 1.03)
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    _legend(fig, failed.any(), None)
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def _range(values: np.ndarray) -> tuple[float, float]:
    """The finite min and max of ``values``, widened when equal (0 and 1 when none)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if lo == hi:
        pad = abs(lo) * 0.1 or 0.5
        return lo - pad, hi + pad
    return lo, hi


# -- the entry points -----------------------------------------------------------------------

_PLOTS: dict[str, Callable[..., Path]] = {
    'history': plot_history, 'scatter': plot_scatter, 'parallel': plot_parallel}


def plot_cases(path: str | os.PathLike[str], kind: str, out: str | os.PathLike[str],
               driver: str | None = None, variables: Sequence[str] | None = None,
               status: str | None = None, where: Sequence[str] = ()) -> Path:
    """Plot the cases of the case file ``path`` as ``kind`` (``'history'``, ``'scatter'``,
    ``'parallel'``) to ``out``; the path written.

    The cases are those of ``driver`` (default: the file's only driver, or ``'driver'`` among
    several), with ``status`` and ``where`` as `openmdao_like.view.select_cases` takes them.
    ``variables`` chooses the variables and their order. No cases to plot (an empty file,
    filters that match nothing) is a `ViewError` naming the file and the filters, and nothing
    is written.
    """
    if kind not in _PLOTS:
        raise ViewError(f'cannot plot {str(path)!r}: expected a kind of plot among '
                        f'{", ".join(map(repr, KINDS))}, got {kind!r}{suggest(str(kind), KINDS)}')
    html = ('.html',) if kind == 'parallel' else ()
    output_path(out, f'write a {kind} plot to', STATIC_SUFFIXES + html)
    cases = read_case_file(path)
    if not cases.records:
        raise ViewError(f'{str(path)!r}: no cases to plot: the file holds no cases')
    driver = cases.default_driver() if driver is None else driver
    records = cases.select(driver, status, where)
    if not records:
        raise ViewError(f'{str(path)!r}: no cases to plot: none matches '
                        f'{describe_filters(driver, status, where)} (of the file\'s '
                        f'{len(cases.records)} cases)')
    if variables is not None:  # checked against the file, to name it in the errors
        numeric_series(records, cases.metadata, variables, where=repr(str(path)))
    title = f'{cases.path.name}: {len(records)} cases of {driver}'
    return _PLOTS[kind](records, cases.metadata, out, variables=variables, title=title)


def standard_plots(case_path: str | os.PathLike[str], directory: str | os.PathLike[str],
                   driver: str | None = None) -> list[Path]:
    """The plots of a run's report, written to ``directory``: ``history.png``, ``scatter.png``
    (with 2 cases and 2 scalar numeric variables or more) and ``parallel.html`` of the cases of
    ``driver`` (chosen as `plot_cases` does); the paths written. A file without cases, or
    without scalar numeric variables, gets none (logged)."""
    cases = read_case_file(case_path)
    directory = Path(directory)
    if not cases.records:
        logger.info('%s: no cases recorded: no plots written', case_path)
        return []
    driver = cases.default_driver() if driver is None else driver
    records = cases.select(driver)
    where = str(cases.path)
    series = numeric_series(records, cases.metadata, where=where)
    if not series:
        logger.info('%s: no scalar numeric variables: no plots written', case_path)
        return []
    title = f'{cases.path.name}: {len(records)} cases of {driver}'
    written = [plot_history(records, cases.metadata, directory / 'history.png', title=title)]
    if len(records) >= 2 and len(series) >= 2:
        written.append(plot_scatter(records, cases.metadata, directory / 'scatter.png',
                                    title=title))
    written.append(plot_parallel(records, cases.metadata, directory / 'parallel.html',
                                 title=title))
    return written


# -- figures and files ----------------------------------------------------------------------

def _series(records: Sequence[dict[str, Any]], metadata: dict[str, Any] | None,
            variables: Sequence[str] | None, out: Path) -> list[Series]:
    """The series a plot to ``out`` shows; `ViewError` when there are no cases or none."""
    if not records:
        raise ViewError(f'cannot plot to {str(out)!r}: no cases to plot')
    series = numeric_series(records, metadata, variables, where=f'plot {str(out)!r}')
    if not series:
        raise ViewError(f'cannot plot to {str(out)!r}: expected scalar numeric variables, the '
                        f'cases hold {", ".join(map(repr, variable_names(records))) or "none"}')
    return series


def _figure(size: tuple[float, float]) -> Any:
    """A matplotlib Figure of ``size`` inches at DPI, laid out by constrained layout."""
    figure = require('matplotlib.figure', 'openmdao-like plot', 'view')
    return figure.Figure(figsize=size, dpi=DPI, layout='constrained')


def _save(fig: Any, out: Path) -> Path:
    """Write ``fig`` to ``out`` in the format of its suffix (SVG text kept as text)."""
    matplotlib = require('matplotlib', 'openmdao-like plot', 'view')
    with matplotlib.rc_context({'svg.fonttype': 'none'}):
        fig.savefig(out, dpi=DPI)
    logger.info('wrote %s', out)
    return out


# -- the interactive parallel coordinates page ----------------------------------------------

def parallel_html(records: Sequence[dict[str, Any]], series: Sequence[Series],
                  title: str = '') -> str:
    """A self-contained HTML page drawing ``series`` as parallel coordinates (SVG drawn by
    its own script; the data inlined as JSON; nothing fetched). ``window.parallelView`` lets
    scripts brush (``brush(name, lo, hi)``, ``clear()``) and read the ids of the cases shown
    (``visible()``)."""
    data = {'title': title,
            'axes': [{'name': s.name, 'label': s.label, 'group': s.group} for s in series],
            'cases': [{'id': r['id'], 'iteration': r['iteration'], 'status': r['status'],
                       'values': [json_value(float(s.values[i])) for s in series]}
                      for i, r in enumerate(records)]}
    return fill_page(asset('parallel.html'), title or 'parallel coordinates',
                     asset('parallel.css'), asset('parallel.js'), data)
