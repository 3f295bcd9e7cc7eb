"""The result plots (`openmdao_like.view.plots`, ``openmdao-like plot``) of real case files of
all three formats: image sizes, axis labels with units, failed cases drawn apart, the
interactive parallel coordinates page in a real headless chromium, and the errors that leave
no plot file behind."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from browser import console_errors, open_page, save_screenshot
from openmdao_like.cli.main import main
from openmdao_like.errors import ExpressionError, RecorderError, ViewError
from openmdao_like.view import plot_cases, select_cases, standard_plots
from openmdao_like.view.cases import numeric_series
from openmdao_like.view.plots import (DPI, HISTORY_PANEL, SCATTER_CELL, SCATTER_MIN,
                                      parallel_html, plot_history)
from test_view_cases import DOE_FAILED, FORMATS, PNG, record_runs

SVG = '{http://www.w3.org/2000/svg}'
XLINK = '{http://www.w3.org/1999/xlink}'


@pytest.fixture(scope='module')
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    return record_runs(tmp_path_factory.mktemp('plots'))


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', data[:8]
    return int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big')


def svg_texts(path: Path) -> list[str]:
    """Every text of an SVG figure (matplotlib writes them as <text> with svg.fonttype none)."""
    root = ET.parse(path).getroot()
    return [''.join(node.itertext()) for node in root.iter(f'{SVG}text')]


def svg_markers(path: Path, prefix: str) -> dict[str, int]:
    """Group id -> markers drawn in it, for the groups whose id starts with ``prefix``."""
    root = ET.parse(path).getroot()
    return {group.get('id'): len(list(group.iter(f'{SVG}use')))
            for group in root.iter(f'{SVG}g') if (group.get('id') or '').startswith(prefix)}


# -- history ----------------------------------------------------------------------------------

@pytest.mark.parametrize('fmt', FORMATS)
def test_history_of_an_optimizer(files, tmp_path, fmt):
    path = files['opt', fmt]
    png = plot_cases(path, 'history', tmp_path / 'history.png')
    # three panels: objective, constraint, parameters
    assert png_size(png) == (HISTORY_PANEL[0] * DPI, 3 * HISTORY_PANEL[1] * DPI)
    svg = plot_cases(path, 'history', tmp_path / 'history.svg')
    texts = svg_texts(svg)
    for label in ('objectives and responses', 'constraints (residual, <= 0 when met)',
                  'parameters', 'p.f [m**2]', 'p.x [m]', 'p.y [m]', 'p.x - p.y >= 15.0',
                  'iteration of driver', f'{path.name}: 11 cases of driver'):
        assert label in texts, (label, texts)
    assert 'failed' not in texts and svg_markers(svg, 'failed') == {}
    pdf = plot_cases(path, 'history', tmp_path / 'history.pdf')
    assert pdf.read_bytes().startswith(b'%PDF')


@pytest.mark.parametrize('fmt', FORMATS)
def test_history_shows_failed_cases(files, tmp_path, fmt):
    svg = plot_cases(files['doe', fmt], 'history', tmp_path / 'doe.svg')
    texts = svg_texts(svg)
    assert texts.count('failed') == 2        # the legend of each panel: outputs, parameters
    assert {'p.f [m**2]', 'p.x [m]', 'p.y [m]'} <= set(texts)
    assert 'p.v [m]' not in texts and 'p.side' not in texts   # an array, a string: left out
    # red x at the parameters of the failed cases (their outputs are NaN: none there)
    assert svg_markers(svg, 'failed') == {'failed-parameter-0': len(DOE_FAILED),
                                          'failed-parameter-1': len(DOE_FAILED)}
    png = plot_cases(files['doe', fmt], 'history', tmp_path / 'doe.png')
    assert png_size(png) == (1000, 600)      # two panels


def test_history_of_a_solver_is_by_case_id(files, tmp_path):
    svg = plot_cases(files['loop', 'sqlite'], 'history', tmp_path / 'solver.svg',
                     driver='solver')
    texts = svg_texts(svg)
    assert 'case id' in texts and 'g.c [s]' in texts   # its passes restart in each DOE case
    svg = plot_cases(files['loop', 'sqlite'], 'history', tmp_path / 'driver.svg')
    assert 'iteration of driver' in svg_texts(svg)      # the default among several: 'driver'


def test_history_needs_the_cases_of_one_driver(files, tmp_path):
    records = select_cases(files['loop', 'csv'])
    with pytest.raises(ViewError) as info:
        plot_history(records, None, tmp_path / 'h.png')
    assert str(info.value) == (f"cannot plot the history to {str(tmp_path / 'h.png')!r}: "
                               f"expected the cases of one driver, got cases of 'driver', "
                               f"'solver'")
    assert not (tmp_path / 'h.png').exists()


def test_without_metadata_labels_have_no_units(files, tmp_path):
    path = tmp_path / 'doe.jsonl'
    path.write_bytes(files['doe', 'jsonl'].read_bytes())      # without its sidecar
    texts = svg_texts(plot_cases(path, 'history', tmp_path / 'h.svg'))
    assert 'p.x' in texts and 'p.f' in texts and 'p.x [m]' not in texts
    assert 'variables (no metadata: inputs and outputs not told apart)' in texts


# -- scatter ----------------------------------------------------------------------------------

@pytest.mark.parametrize('fmt', FORMATS)
def test_scatter_matrix_of_a_doe(files, tmp_path, fmt):
    path = files['doe', fmt]
    png = plot_cases(path, 'scatter', tmp_path / 'scatter.png')
    side = int(3 * SCATTER_CELL * DPI)          # p.x, p.y, p.f
    assert png_size(png) == (side, side)
    svg = plot_cases(path, 'scatter', tmp_path / 'scatter.svg')
    texts = svg_texts(svg)
    assert {'p.x [m]', 'p.y [m]', 'p.f [m**2]', 'ok', 'failed'} <= set(texts)
    markers = svg_markers(svg, 'failed')
    # rows and columns p.x, p.y, p.f: the failed cases at their inputs (p.x, p.y) ...
    assert markers['failed-1-0'] == markers['failed-0-1'] == len(DOE_FAILED)
    # ... and on the bottom edge where the other value is an output (NaN) or a histogram
    for key in ('failed-2-0-edge', 'failed-2-1-edge', 'failed-0-0-edge', 'failed-1-1-edge'):
        assert markers[key] == len(DOE_FAILED), (key, markers)
    assert not any(key.startswith(('failed-0-2', 'failed-1-2', 'failed-2-2'))
                   for key in markers)              # p.f on the x axis: nothing to show
    assert plot_cases(path, 'scatter', tmp_path / 's.pdf').read_bytes()[:4] == b'%PDF'


def test_scatter_of_chosen_variables(files, tmp_path):
    png = plot_cases(files['opt', 'csv'], 'scatter', tmp_path / 's.png',
                     variables=['p.f', 'p.x'])
    assert png_size(png) == (int(SCATTER_MIN * DPI),) * 2
    texts = svg_texts(plot_cases(files['opt', 'csv'], 'scatter', tmp_path / 's.svg',
                                 variables=['p.f', 'p.x']))
    assert 'p.f [m**2]' in texts and 'p.y [m]' not in texts and 'failed' not in texts


def test_scatter_needs_two_variables(files, tmp_path):
    out = tmp_path / 's.png'
    with pytest.raises(ViewError) as info:
        plot_cases(files['doe', 'sqlite'], 'scatter', out, variables=['p.x'])
    assert str(info.value) == (f'cannot plot a scatter matrix to {str(out)!r}: expected at '
                               f'least 2 scalar numeric variables, got 1 (p.x)')
    assert not out.exists()


# -- parallel coordinates -----------------------------------------------------------------------

@pytest.mark.parametrize('fmt', FORMATS)
def test_parallel_static(files, tmp_path, fmt):
    svg = plot_cases(files['doe', fmt], 'parallel', tmp_path / 'p.svg')
    texts = svg_texts(svg)
    assert {'p.x [m]', 'p.y [m]', 'p.f [m**2]', 'ok', 'failed'} <= set(texts)
    assert len(svg_markers(svg, 'failed-')) == len(DOE_FAILED)     # a dashed red line each
    assert png_size(plot_cases(files['doe', fmt], 'parallel', tmp_path / 'p.png')) == (800, 500)


def polylines(browser, selector='polyline.case'):
    return browser.find_elements(By.CSS_SELECTOR, selector)


@pytest.mark.parametrize('fmt', FORMATS)
def test_parallel_html_in_a_browser(files, tmp_path, browser, fmt):
    page = plot_cases(files['doe', fmt], 'parallel', tmp_path / 'parallel.html')
    text = page.read_text(encoding='utf-8')
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', text)   # nothing fetched
    open_page(browser, page)
    assert console_errors(browser) == []
    assert len(polylines(browser)) == 9
    assert len(polylines(browser, 'polyline.case.failed')) == len(DOE_FAILED)
    assert browser.execute_script('return window.parallelView.axes') == ['p.x', 'p.y', 'p.f']
    assert browser.find_element(By.ID, 'count').text == '9 of 9 cases shown (3 failed)'
    shown = browser.execute_script("return window.parallelView.brush('p.x', 1, 6)")
    assert shown == [6, 7, 8]
    assert len(polylines(browser, 'polyline.case:not(.hidden)')) == 3
    assert browser.find_element(By.ID, 'count').text == '3 of 9 cases shown (2 failed)'
    # a failed case has no p.f: brushing that axis leaves it out
    assert browser.execute_script("return window.parallelView.brush('p.f', -100, 0)") == [6]
    save_screenshot(browser, tmp_path, f'parallel-{fmt}')
    assert browser.execute_script('return window.parallelView.clear()') == list(range(9))
    assert len(polylines(browser, 'polyline.case:not(.hidden)')) == 9
    assert console_errors(browser) == []


def test_parallel_html_brushing_by_dragging(files, tmp_path, browser):
    page = plot_cases(files['doe', 'sqlite'], 'parallel', tmp_path / 'parallel.html')
    open_page(browser, page)
    overlay = browser.find_element(By.CSS_SELECTOR, "g.axis[data-name='p.y'] rect.overlay")
    height = overlay.size['height']
    # drag from above the top of the p.y axis to a quarter down: the cases with p.y = 5
    ActionChains(browser).move_to_element_with_offset(overlay, 0, -height // 2 + 2) \
        .click_and_hold().move_by_offset(0, height // 4).release().perform()
    assert browser.execute_script('return window.parallelView.visible()') == [2, 5, 8]
    assert len(polylines(browser, 'polyline.case:not(.hidden)')) == 3
    assert browser.find_element(By.CSS_SELECTOR, "g.axis[data-name='p.y'] rect.brush") \
        .get_attribute('visibility') == 'visible'
    ActionChains(browser).move_to_element(overlay).click().perform()   # a click clears it
    assert browser.execute_script('return window.parallelView.visible()') == list(range(9))
    assert console_errors(browser) == []


def test_parallel_html_escapes_the_data(tmp_path, browser):
    records = [{'id': 0, 'driver': 'driver', 'iteration': 'driver:0', 'status': 'ok',
                'error': None, '</script><script>alert(1)</script>': 1.0, 'b': 2.0},
               {'id': 1, 'driver': 'driver', 'iteration': 'driver:1', 'status': 'failed',
                'error': 'boom', '</script><script>alert(1)</script>': 3.0, 'b': None}]
    page = tmp_path / 'evil.html'
    page.write_text(parallel_html(records, numeric_series(records, None), '<b>title</b>'),
                    encoding='utf-8')
    assert '</script><script>alert' not in page.read_text(encoding='utf-8')
    open_page(browser, page)
    assert browser.execute_script('return window.parallelView.axes') == [
        'b', '</script><script>alert(1)</script>']    # '<' and '>': a constraint, last
    assert browser.find_element(By.TAG_NAME, 'h1').text == '<b>title</b>'
    assert console_errors(browser) == []


# -- what cannot be plotted -------------------------------------------------------------------

@pytest.mark.parametrize(('kind', 'name', 'expected'), [
    ('history', 'h.html', '.png, .svg or .pdf'), ('scatter', 's.html', '.png, .svg or .pdf'),
    ('history', 'h.jpg', '.png, .svg or .pdf'), ('parallel', 'p.txt', '.png, .svg, .pdf or .html'),
    ('scatter', 'noext', '.png, .svg or .pdf')])
def test_an_output_of_the_wrong_kind(files, tmp_path, kind, name, expected):
    out = tmp_path / name
    with pytest.raises(ViewError) as info:
        plot_cases(files['doe', 'csv'], kind, out)
    given = repr(out.suffix) if out.suffix else 'no suffix'
    assert str(info.value) == (f'cannot write a {kind} plot to {str(out)!r}: expected a file '
                               f'name ending in {expected}, got {given}')
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_kind(files, tmp_path):
    with pytest.raises(ViewError, match=r"expected a kind of plot among 'history', 'scatter', "
                                        r"'parallel', got 'histroy'; did you mean 'history'\?"):
        plot_cases(files['doe', 'csv'], 'histroy', tmp_path / 'h.png')


@pytest.mark.parametrize('fmt', FORMATS)
def test_an_empty_case_file_writes_no_plot(files, tmp_path, caplog, fmt):
    path = files['empty', fmt]
    for kind in ('history', 'scatter', 'parallel'):
        with pytest.raises(ViewError) as info:
            plot_cases(path, kind, tmp_path / 'out.png')
        assert str(info.value) == f'{str(path)!r}: no cases to plot: the file holds no cases'
    with caplog.at_level(logging.INFO, logger='openmdao_like.view'):
        assert standard_plots(path, tmp_path) == []
    assert f'{path}: no cases recorded: no plots written' in caplog.messages
    assert list(tmp_path.iterdir()) == []


def test_filters_matching_nothing_write_no_plot(files, tmp_path):
    path, out = files['doe', 'sqlite'], tmp_path / 'h.png'
    with pytest.raises(ViewError) as info:
        plot_cases(path, 'history', out, status='failed', where=['p.x < 0'])
    assert str(info.value) == (f"{str(path)!r}: no cases to plot: none matches --driver "
                               f"driver --status failed --where 'p.x < 0' (of the file's 9 "
                               f"cases)")
    assert not out.exists()


def test_unknown_driver_and_variables(files, tmp_path):
    path = files['loop', 'jsonl']
    with pytest.raises(ViewError, match="no case recorded by driver 'optimizer'; expected one "
                                        "of the drivers it holds: 'solver', 'driver'"):
        plot_cases(path, 'history', tmp_path / 'h.png', driver='optimizer')
    path = files['doe', 'jsonl']
    with pytest.raises(ViewError) as info:
        plot_cases(path, 'scatter', tmp_path / 's.png', variables=['p.x', 'p.ff'])
    assert str(info.value) == (f"{str(path)!r}: no variable 'p.ff' to plot; expected one of "
                               f"'p.x', 'p.y', 'p.f', 'p.v', 'p.side'; did you mean 'p.f'?")
    with pytest.raises(ViewError) as info:
        plot_cases(path, 'parallel', tmp_path / 'p.html', variables=['p.x', 'p.v'])
    assert str(info.value) == (f"{str(path)!r}: cannot plot 'p.v': expected scalar numbers, it "
                               f"holds ndarray values")
    with pytest.raises(ExpressionError, match="no variable 'p.q'"):
        plot_cases(path, 'parallel', tmp_path / 'p.html', where=['p.q > 0'])
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_case_file(tmp_path, capsys):
    path = tmp_path / 'results.sqlite'
    path.write_bytes(PNG)
    with pytest.raises(RecorderError, match=re.escape(
            f"{str(path)!r}: expected an SQLite case database (as its extension '.sqlite' "
            f"says), found a file starting with b'\\x89PNG")):
        plot_cases(path, 'history', tmp_path / 'h.png')
    assert main(['plot', str(path), '--kind', 'history', '-o', str(tmp_path / 'h.png')]) == 1
    assert f"error: cannot plot {str(path)!r}: RecorderError: {str(path)!r}: expected an " \
           f"SQLite case database" in capsys.readouterr().err
    assert not (tmp_path / 'h.png').exists()


# -- standard plots and the command line --------------------------------------------------------

def test_standard_plots(files, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger='openmdao_like.view'):
        written = standard_plots(files['doe', 'sqlite'], tmp_path)
    assert written == [tmp_path / 'history.png', tmp_path / 'scatter.png',
                       tmp_path / 'parallel.html']
    assert all(path.is_file() for path in written)
    assert any(message.endswith('not plotted (not scalar numbers): p.v, p.side')
               for message in caplog.messages)
    one = tmp_path / 'one'
    one.mkdir()
    path = tmp_path / 'single.jsonl'     # a single case: no scatter matrix
    lines = files['opt', 'jsonl'].read_text(encoding='utf-8').splitlines()
    path.write_text(lines[0] + '\n', encoding='utf-8')
    assert standard_plots(path, one) == [one / 'history.png', one / 'parallel.html']


def test_cli_plot(files, tmp_path, capsys):
    path, out = files['opt', 'sqlite'], tmp_path / 'history.png'
    assert main(['plot', str(path), '--kind', 'history', '-o', str(out)]) == 0
    assert capsys.readouterr().out == f'wrote {out}\n'
    assert png_size(out) == (1000, 900)
    out = tmp_path / 'scatter.png'
    assert main(['plot', str(files['doe', 'csv']), '--kind', 'scatter', '-o', str(out),
                 '--vars', 'p.x, p.f', '--status', 'ok']) == 0
    assert png_size(out) == (500, 500)
    out = tmp_path / 'parallel.html'
    assert main(['plot', str(files['loop', 'jsonl']), '--kind', 'parallel', '-o', str(out),
                 '--driver', 'solver', '--where', 'g.c > 2']) == 0
    assert out.read_text(encoding='utf-8').startswith('<!DOCTYPE html>')


def test_cli_plot_errors(files, tmp_path, capsys):
    path = files['doe', 'csv']
    out = tmp_path / 'h.html'
    assert main(['plot', str(path), '--kind', 'history', '-o', str(out)]) == 1
    err = capsys.readouterr().err
    assert err == (f"openmdao-like plot: error: cannot plot {str(path)!r}: ViewError: cannot "
                   f"write a history plot to {str(out)!r}: expected a file name ending in "
                   f".png, .svg or .pdf, got '.html'\n(run with -v for the full traceback)\n")
    assert main(['plot', str(files['empty', 'csv']), '--kind', 'parallel', '-o',
                 str(tmp_path / 'p.html')]) == 1
    assert 'no cases to plot: the file holds no cases' in capsys.readouterr().err
    assert main(['plot', str(tmp_path / 'missing.csv'), '--kind', 'history', '-o',
                 str(tmp_path / 'h.png')]) == 2
    assert 'no such case file' in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(['plot', str(path), '--kind', 'pie', '-o', str(tmp_path / 'p.png')])
    assert info.value.code == 2
    assert "argument --kind: invalid choice: 'pie'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(['plot', str(path), '--kind', 'scatter', '-o', str(tmp_path / 'p.png'),
              '--vars', 'p.x,,p.y'])
    assert info.value.code == 2
    assert "expected comma-separated variable names, got 'p.x,,p.y'" in \
        capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_importing_the_view_does_not_import_matplotlib():
    code = ('import sys, openmdao_like.view, openmdao_like.cli.main; '
            'assert "matplotlib" not in sys.modules, "matplotlib imported"')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=60)
