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

import html
import json
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
from .cases import (Series, describe_filters, numeric_series, plain, read_case_file,
                    variable_names)

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
    out = _check_output(out, 'history', STATIC_SUFFIXES)
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
    out = _check_output(out, 'scatter', STATIC_SUFFIXES)
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
    out = _check_output(out, 'parallel', STATIC_SUFFIXES + ('.html',))
    series = _series(records, metadata, variables, out)
    if out.suffix.lower() == '.html':
        out.write_text(parallel_html(records, series, title), encoding='utf-8')
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
    _check_output(out, kind, STATIC_SUFFIXES + (('.html',) if kind == 'parallel' else ()))
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

def _check_output(out: str | os.PathLike[str], kind: str, suffixes: Sequence[str]) -> Path:
    """``out`` as a Path, if its suffix is one ``kind`` writes and its directory exists."""
    out = Path(out)
    if out.suffix.lower() not in suffixes:
        raise ViewError(f'cannot write a {kind} plot to {str(out)!r}: expected a file name '
                        f'ending in {", ".join(suffixes)}, got '
                        f'{repr(out.suffix) if out.suffix else "no suffix"}')
    if not out.parent.is_dir():
        raise ViewError(f'cannot write a {kind} plot to {str(out)!r}: expected an existing '
                        f'directory, {str(out.parent)!r} does not exist')
    return out


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
                       'values': [plain(float(s.values[i])) for s in series]}
                      for i, r in enumerate(records)]}
    text = json.dumps(data, allow_nan=False, separators=(',', ':'))
    text = text.replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026')
    heading = html.escape(title or 'parallel coordinates')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<title>{heading}</title>\n<style>{_CSS}</style></head>\n<body>\n'
            f'<h1>{heading}</h1>\n<p id="count"></p>\n<div id="chart"></div>\n'
            f'<p class="help">Drag along an axis to keep the cases in that range; click the '
            f'axis to clear it. <span class="key ok">&#8212; ok</span> <span class="key '
            f'failed">- - failed (drawn through its inputs)</span></p>\n'
            f'<script type="application/json" id="parallel-data">{text}</script>\n'
            f'<script>{_SCRIPT}</script>\n</body></html>\n')


_CSS = """
body{font:14px sans-serif;margin:1em 2em;color:#222}h1{font-size:1.2em}
.case{fill:none;stroke:#1f77b4;stroke-opacity:.6;stroke-width:1.3}
.case.failed{stroke:#d62728;stroke-dasharray:6 3;stroke-opacity:.9;stroke-width:1.8}
.case.hidden{stroke:#bbb;stroke-opacity:.2;stroke-dasharray:none}
.case:hover{stroke-width:3;stroke-opacity:1}
.axis line{stroke:#444}.axis text{font-size:11px;fill:#333}.axis .name{font-size:12px;
font-weight:bold}.overlay{fill:transparent;cursor:crosshair}
.brush{fill:#f5b041;fill-opacity:.3;stroke:#b9770e;pointer-events:none}
.help{color:#555}.key.ok{color:#1f77b4}.key.failed{color:#d62728}
"""

_SCRIPT = r"""
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('parallel-data').textContent);
  var NS = 'http://www.w3.org/2000/svg', n = data.axes.length;
  var M = {top: 50, bottom: 30, left: 70, right: 90}, H = 460;
  var W = Math.max(640, 160 * n), plotH = H - M.top - M.bottom;
  var plotW = W - M.left - M.right, brushes = {};
  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function fmt(v) { return String(Number(v.toPrecision(4))); }
  var scales = data.axes.map(function (axis, k) {
    var vals = data.cases.map(function (c) { return c.values[k]; })
      .filter(function (v) { return v !== null; });
    var lo = vals.length ? Math.min.apply(null, vals) : 0;
    var hi = vals.length ? Math.max.apply(null, vals) : 1;
    if (lo === hi) { var pad = Math.abs(lo) * 0.1 || 0.5; lo -= pad; hi += pad; }
    return {lo: lo, hi: hi};
  });
  function xOf(k) { return M.left + (n === 1 ? plotW / 2 : k * plotW / (n - 1)); }
  function yOf(k, v) {
    var s = scales[k]; return M.top + (1 - (v - s.lo) / (s.hi - s.lo)) * plotH;
  }
  function valueAt(k, y) {
    var s = scales[k]; return s.lo + (1 - (y - M.top) / plotH) * (s.hi - s.lo);
  }
  var svg = el('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H},
               document.getElementById('chart'));
  var lineGroup = el('g', {'class': 'lines'}, svg);
  var order = data.cases.map(function (c, i) { return i; });
  order.sort(function (a, b) {  // failed cases drawn last, over the others
    return (data.cases[a].status === 'failed') - (data.cases[b].status === 'failed');
  });
  var lines = [];
  order.forEach(function (i) {
    var c = data.cases[i], points = [], tip = [];
    c.values.forEach(function (v, k) {
      if (v !== null) { points.push(xOf(k) + ',' + yOf(k, v)); }
      tip.push(data.axes[k].label + ' = ' + (v === null ? 'none' : fmt(v)));
    });
    var line = el('polyline', {points: points.join(' '), 'class': 'case ' + c.status,
                               'data-id': c.id}, lineGroup);
    el('title', {}, line).textContent = 'case ' + c.id + ' (' + c.iteration + ', ' +
      c.status + ')\n' + tip.join('\n');
    lines[i] = line;
  });
  var rects = data.axes.map(function (axis, k) {
    var g = el('g', {'class': 'axis', 'data-name': axis.name}, svg), x = xOf(k);
    el('line', {x1: x, x2: x, y1: M.top, y2: M.top + plotH}, g);
    var name = el('text', {x: x, y: M.top - 22, 'text-anchor': 'middle', 'class': 'name'}, g);
    name.textContent = axis.label;
    for (var t = 0; t <= 4; t++) {
      var v = scales[k].lo + t * (scales[k].hi - scales[k].lo) / 4, y = yOf(k, v);
      el('line', {x1: x - 4, x2: x, y1: y, y2: y}, g);
      el('text', {x: x - 7, y: y + 4, 'text-anchor': 'end'}, g).textContent = fmt(v);
    }
    var rect = el('rect', {'class': 'brush', x: x - 9, width: 18, y: M.top, height: 0,
                           visibility: 'hidden'}, g);
    var overlay = el('rect', {'class': 'overlay', x: x - 14, width: 28, y: M.top - 10,
                              height: plotH + 20}, g);  // a drag may start past the ends
    overlay.addEventListener('mousedown', function (ev) { startDrag(k, ev); });
    return rect;
  });
  var count = document.getElementById('count');
  function shown(c) {
    return Object.keys(brushes).every(function (k) {
      var v = c.values[k], b = brushes[k];
      return v !== null && v >= b[0] && v <= b[1];
    });
  }
  function update() {
    var visible = 0, failed = 0;
    data.cases.forEach(function (c, i) {
      var keep = shown(c);
      lines[i].classList.toggle('hidden', !keep);
      if (keep) { visible += 1; failed += c.status === 'failed'; }
    });
    rects.forEach(function (rect, k) {
      var b = brushes[k];
      rect.setAttribute('visibility', b ? 'visible' : 'hidden');
      if (b) {
        var top = yOf(k, b[1]), bottom = yOf(k, b[0]);
        rect.setAttribute('y', Math.max(M.top, top));
        rect.setAttribute('height', Math.max(0, Math.min(M.top + plotH, bottom) -
                                                Math.max(M.top, top)));
      }
    });
    count.textContent = visible + ' of ' + data.cases.length + ' cases shown (' + failed +
      ' failed)';
  }
  function svgY(ev) { return ev.clientY - svg.getBoundingClientRect().top; }
  function startDrag(k, ev) {
    ev.preventDefault();
    var y0 = svgY(ev), moved = false;
    function move(e) {
      var y1 = svgY(e);
      if (Math.abs(y1 - y0) < 3) { return; }
      moved = true;
      var a = valueAt(k, y0), b = valueAt(k, y1);
      brushes[k] = [Math.min(a, b), Math.max(a, b)];
      update();
    }
    function up(e) {
      window.removeEventListener('mousemove', move);
      window.removeEventListener('mouseup', up);
      if (moved) { move(e); } else { delete brushes[k]; update(); }
    }
    window.addEventListener('mousemove', move);
    window.addEventListener('mouseup', up);
  }
  function axisIndex(name) {
    for (var k = 0; k < n; k++) { if (data.axes[k].name === name) { return k; } }
    throw new Error('no axis ' + JSON.stringify(name) + '; the axes are ' +
                    data.axes.map(function (a) { return a.name; }).join(', '));
  }
  window.parallelView = {
    axes: data.axes.map(function (a) { return a.name; }),
    brush: function (name, lo, hi) {
      brushes[axisIndex(name)] = [Math.min(lo, hi), Math.max(lo, hi)];
      update();
      return this.visible();
    },
    clear: function (name) {
      if (name === undefined) { brushes = {}; } else { delete brushes[axisIndex(name)]; }
      update();
      return this.visible();
    },
    visible: function () {
      return data.cases.filter(shown).map(function (c) { return c.id; });
    }
  };
  update();
  document.body.dataset.ready = 'true';
}());
"""
