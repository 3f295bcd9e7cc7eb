"""A real headless browser for the tests of the HTML views: Debian's chromium driven by selenium
(installed by ``scripts/setup.sh --test``). One browser per test module (``browser`` fixture,
via ``pytest_plugins``: quit when the module is done, so no chromium outlives the tests that
use it); missing, the tests that use it fail with the reason, never skip."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
#: Longest a page may take to signal that it is drawn (``document.body.dataset.ready``).
READY_TIMEOUT = 30.0


def start_browser() -> Any:
    """A headless chromium under selenium that keeps the page's console messages."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if not os.access(program, os.X_OK):
            raise RuntimeError(f'{program} is missing: run `bash scripts/setup.sh --test` '
                               f'(apt-get install chromium chromium-driver)')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                 '--window-size=1400,1000'):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def open_page(browser: Any, path: str | os.PathLike[str]) -> float:
    """Load the HTML file ``path`` and wait until its script says it is drawn
    (``document.body.dataset.ready == 'true'``); the seconds that took. The console is
    emptied first, so ``console_errors`` reports this page's."""
    browser.get_log('browser')
    start = time.perf_counter()
    browser.get(Path(path).resolve().as_uri())
    while browser.execute_script("return document.body && document.body.dataset.ready") \
            != 'true':
        if time.perf_counter() - start > READY_TIMEOUT:
            raise AssertionError(f'{path}: not drawn after {READY_TIMEOUT} s; console: '
                                 f'{browser.get_log("browser")}')
        time.sleep(0.01)
    return time.perf_counter() - start


def console_errors(browser: Any) -> list[dict[str, Any]]:
    """The page's console messages of level SEVERE (errors, failed loads) since `open_page`."""
    return [entry for entry in browser.get_log('browser') if entry['level'] == 'SEVERE']


@pytest.fixture(scope='module')
def browser() -> Iterator[Any]:
    """One headless chromium for the test module."""
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


def save_screenshot(browser: Any, directory: Path, name: str) -> Path:
    """A PNG of the browser's window under ``directory`` (a test's temp dir)."""
    path = directory / f'{name}.png'
    assert browser.save_screenshot(str(path)), f'no screenshot written to {path}'
    return path


__all__ = ['start_browser', 'open_page', 'console_errors', 'browser', 'save_screenshot']
