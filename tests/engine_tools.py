"""Helpers of the engine tests: a slow component (in a module the engines' workers import
without side effects), and a run while something happens to the workers."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

from openmdao_like import Component, Float


def run_during(top: Any, act: Callable[[], bool], timeout: float = 30.0,
               every: float = 0.3) -> float:
    """Run ``top`` while ``act`` is tried in a thread every ``every`` s until it says it did
    something (True); how long the run took. Fails when ``act`` did nothing before the run
    ended (the test would not test what it says)."""
    done: list[float] = []

    def keep_trying() -> None:
        deadline = time.monotonic() + timeout
        while not done and time.monotonic() < deadline:
            time.sleep(every)
            if act():
                done.append(time.monotonic())
    actor = threading.Thread(target=keep_trying)
    start = time.monotonic()
    actor.start()
    try:
        top.run()
    finally:
        ended = time.monotonic()
        actor.join()
    assert done and done[0] < ended, 'nothing happened to the workers while the run went on'
    return ended - start


class Slow(Component):
    """y = 2 x after ``delay`` seconds; its process id as an output."""

    x = Float(0.0, iotype='in')
    delay = Float(0.0, iotype='in')
    y = Float(iotype='out')
    pid = Float(iotype='out')

    def execute(self) -> None:
        time.sleep(self.delay)
        self.y = 2.0 * self.x
        self.pid = float(os.getpid())
