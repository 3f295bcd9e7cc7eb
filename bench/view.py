"""Model view benchmark: writing and drawing the HTML view of a 1000-component chain.

Model: the chain of bench/chain.py (N = 1000 scalar components y = x + 1, component i's y
feeding component i+1's x), run once before its view is written so that every variable holds
a computed value:
- ours: the top Assembly (RunOnce over ``fw_ours.Plus1`` components, built like
  bench/persistence.py does), viewed by ``openmdao_like.view.write_model_view(top, path)``: one
  self-contained HTML file (component tree, N2 connection matrix, drivers);
- openmdao: the Problem of bench/fw_openmdao.py's chain (``fw_openmdao.Plus1``, reports off,
  ``setup()``, ``final_setup()``, ``run_model()``), viewed by OpenMDAO's
  ``openmdao.api.n2(prob, outfile=path, show_browser=False, display_in_notebook=False)``
  (``show_browser`` is what the installed 3.x calls it; values are included, as they are by
  default after ``final_setup``: OpenMDAO's own n2 report is written at that point).

Metrics, each a median over interleaved rounds (ours, baseline, ours, baseline, ...):
- ``write``: seconds of the one call that writes the file;
- ``html_bytes``: the size of the written file (ratio > 1: ours is smaller);
- ``render``: seconds from ``driver.get(file_uri)`` in headless Chromium until the page is
  drawn. Before each timed load the browser is sent to ``about:blank`` (untimed), so neither
  page pays for unloading the other. The page is polled every 10 ms through
  ``execute_script``; a poll waits for the page's script to yield, so the time cannot end in
  the middle of a drawing script. "Drawn" means:
  - ours: ``document.body.dataset.ready == 'true'``, which the view's script sets when it has
    finished drawing;
  - openmdao: ``#tree`` holds its ``g`` elements (the model tree, drawn by
    ``OmDiagram._updateTreeCells``) and ``#waiting-container`` is back to class ``no-show``.
    The page's ``n2main()`` calls ``OmDiagram.update()``, which shows the spinner (class
    ``show``; the HTML starts with ``no-show``, so the class alone would match before the
    script runs), awaits ``delay(100)`` ms, then in one synchronous block lays out and draws
    the tree, the arrows and the matrix (``Matrix.draw``), and hides the spinner again when
    the d3 transition it started ends (3.45 never disables transitions; their duration is 0
    after a 100 ms start delay). No global or event marks the end of the drawing; this pair is
    the state ``update()`` leaves behind, and a poll cannot run in the middle of the drawing
    block. Why the tree and not the matrix cells (``#n2elements g.n2cell``): with N = 1000 the
    matrix has 2N variables on its diagonal, more than its level-of-detail threshold (matrix
    height / 3 pixels, ``Matrix.tooMuchDetail``), so n2 draws **no** matrix cells at all (an
    empty matrix until one zooms in); the cells are counted once on stderr. OpenMDAO's 100 ms
    delay counts in its time.
``ratio`` = baseline / ours for all three, so ratio > 1 means ours is faster (or smaller).
Target lines, whose baseline is the goal itself (ratio >= 1 means it is met): ``write`` against
``target-1s`` and ``render`` against ``target-2s``.

One browser (Debian's /usr/bin/chromium under selenium with /usr/bin/chromedriver, headless,
1400x1000 window) for the whole run; each page is loaded once untimed first and its console
errors, if any, are shown on stderr. ``OPENMDAO_USE_MPI`` is set to 0 (unless already set):
the run is serial, and an mpi4py without an MPI library would make ``Problem()`` fail. If
openmdao is not importable its lines have ``"baseline": null`` and ours is still measured; if
the browser cannot start, the ``render`` lines are null on both sides. Options: ``--rounds``
(default 5), ``--n`` (default 1000). About 20-25 s on 2 cores.
"""

import argparse
import os
import sys
import time
from pathlib import Path

# A serial benchmark: OpenMDAO must not try mpi4py (installed in .venv-bench for other scripts;
# without an MPI library its import raises RuntimeError, which Problem() does not catch).
os.environ.setdefault("OPENMDAO_USE_MPI", "0")

import harness  # noqa: E402
from persistence import build_model  # noqa: E402

BENCH = "view"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Seconds a page may take to be drawn before the script gives up.
RENDER_TIMEOUT = 300.0
POLL = 0.01
WRITE_TARGET_SECONDS = 1.0
RENDER_TARGET_SECONDS = 2.0

OURS_READY = "return !!document.body && document.body.dataset.ready === 'true';"
N2_DRAWN = """
const waiter = document.getElementById('waiting-container');
return !!waiter && waiter.getAttribute('class') === 'no-show'
    && document.querySelector('#tree g') !== null;
"""
N2_DRAWING = """
return [document.querySelectorAll('#tree g').length,
        document.querySelectorAll('#n2elements g.n2cell').length];
"""


# -- the models and their writers ---------------------------------------------------------------

def build_ours(fw, n):
    """Our chain (top Assembly), run once, and a function writing its view to a path."""
    from openmdao_like.view import write_model_view
    top = build_model(fw, n)
    top.c0.x = -0.5
    top.run()
    last = getattr(top, f"c{n - 1}").y
    if last != n - 0.5:
        raise AssertionError(f"ours: chain of {n} gave {last}, not {n - 0.5}")
    return lambda path: write_model_view(top, path)


def build_openmdao(fw, n):
    """OpenMDAO's chain (Problem set up and run once), and a function writing its n2 to a path."""
    import openmdao.api as om
    prob = om.Problem(reports=None)
    for i in range(n):
        prob.model.add_subsystem(f"c{i}", fw.Plus1())
    for i in range(n - 1):
        prob.model.connect(f"c{i}.y", f"c{i + 1}.x")
    prob.setup()
    prob.final_setup()
    prob["c0.x"] = -0.5
    prob.run_model()
    last = float(prob[f"c{n - 1}.y"][0])
    if last != n - 0.5:
        raise AssertionError(f"openmdao: chain of {n} gave {last}, not {n - 0.5}")
    return lambda path: om.n2(prob, outfile=str(path), show_browser=False,
                              display_in_notebook=False)


def timed_write(write, path):
    """One sample: ``(seconds of write(path), bytes written)``."""
    start = time.perf_counter()
    write(path)
    elapsed = time.perf_counter() - start
    return elapsed, os.path.getsize(path)


# -- the browser --------------------------------------------------------------------------------

def start_browser():
    """Headless Debian chromium under selenium, or None (noted on stderr) if it cannot start."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        options = webdriver.ChromeOptions()
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1000"):
            options.add_argument(flag)
        options.binary_location = CHROMIUM
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except Exception as exc:  # noqa: BLE001 - any failure to start means: no render lines
        print(f"no browser, render not measured: {exc!r}", file=sys.stderr)
        return None


def timed_render(browser, path, drawn):
    """Seconds from ``browser.get`` of ``path`` until the script ``drawn`` returns true."""
    browser.get("about:blank")
    browser.get_log("browser")
    uri = Path(path).resolve().as_uri()
    start = time.perf_counter()
    browser.get(uri)
    while not browser.execute_script(drawn):
        if time.perf_counter() - start > RENDER_TIMEOUT:
            raise AssertionError(f"{path}: not drawn after {RENDER_TIMEOUT} s; console: "
                                 f"{browser.get_log('browser')}")
        time.sleep(POLL)
    return time.perf_counter() - start


def show_console(browser, name):
    """The page's console errors (level SEVERE) since its load, on stderr."""
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    if errors:
        print(f"{name}: console errors: {errors}", file=sys.stderr)


# -- sampling and report ------------------------------------------------------------------------

def sample_pairs(run_ours, run_base, rounds):
    """``harness.interleave``, or ours alone when there is no baseline (``run_base`` None)."""
    if run_base is not None:
        return harness.interleave(run_ours, run_base, rounds)
    return harness.interleave(run_ours, lambda: None, rounds)[0], []


def report(n, metric, ours, base, unit, target=None):
    """One line against openmdao (baseline null when absent), and one against the target."""
    ours_median = harness.median(ours)
    harness.emit_result(BENCH, {"n": n, "metric": metric}, ours=ours_median,
                        baseline=harness.median(base), baseline_name="openmdao", unit=unit,
                        lower_is_better=True)
    if target is not None:
        harness.emit_result(BENCH, {"n": n, "metric": metric}, ours=ours_median,
                            baseline=target, baseline_name=f"target-{target:g}s", unit=unit,
                            lower_is_better=True)


def body(rounds, n):
    """Build both models, warm up, then time the writes, the sizes and the renders."""
    harness.emit_machine(BENCH, rounds=rounds, n=n)
    ours_path, base_path = Path("ours.html").resolve(), Path("n2.html").resolve()
    write_ours = harness.call_ours(build_ours, n)
    fw_openmdao = harness.framework("fw_openmdao")
    write_base = None if fw_openmdao is None else build_openmdao(fw_openmdao, n)

    def run_ours():
        if write_ours is None:
            return None
        return harness.call_ours(lambda fw_ours: timed_write(write_ours, ours_path))

    run_base = None if write_base is None else (lambda: timed_write(write_base, base_path))

    # untimed warm-up writes (first-use costs: imports, templates, assets)
    run_ours()
    if run_base is not None:
        run_base()
    ours, base = sample_pairs(run_ours, run_base, rounds)
    report(n, "write", [s[0] for s in ours], [s[0] for s in base], "s", WRITE_TARGET_SECONDS)
    report(n, "html_bytes", [s[1] for s in ours], [s[1] for s in base], "bytes")

    browser = start_browser() if ours or base else None
    ours_render, base_render = [], []
    if browser is not None:
        try:
            def render_ours():
                return None if not ours else timed_render(browser, ours_path, OURS_READY)

            render_base = None if not base else (
                lambda: timed_render(browser, base_path, N2_DRAWN))
            # untimed first load of each page
            if ours:
                render_ours()
                show_console(browser, "ours")
            if render_base is not None:
                render_base()
                tree, cells = browser.execute_script(N2_DRAWING)
                print(f"openmdao n2 drawn: {tree} tree groups, {cells} matrix cells",
                      file=sys.stderr)
                show_console(browser, "openmdao")
            ours_render, base_render = sample_pairs(render_ours, render_base, rounds)
        finally:
            browser.quit()
    report(n, "render", ours_render, base_render, "s", RENDER_TARGET_SECONDS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--n", type=int, default=1000, help="components in the chain "
                        "(default 1000)")
    args = parser.parse_args()
    harness.main(lambda: body(args.rounds, args.n))


if __name__ == "__main__":
    main()
