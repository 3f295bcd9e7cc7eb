"""What an engine's task runs where it lands: a chunk of cases, with the case runner loaded once
per worker thread.

A task carries the runner's key and a way to the pickled runner: the bytes themselves (Dask
hands them over from its memory, so they travel to a worker once), or the path of a file on a
file system the workers share (Parsl). The runner is unpickled the first time a thread of the
worker sees the key and kept for the next tasks (one per thread: a model is not shared between
threads running at once); a new key (the next run of a warm executor) replaces it.
"""

from __future__ import annotations

import pickle
import threading
from typing import Any

from ...execution.base import CaseOutcome
from ...execution.pools import run_chunk

__all__ = ['run_task']

_loaded = threading.local()  # .key, .runner: this thread's runner


def run_task(key: str, payload: bytes | str, chunk: list[tuple[int, Any]]) -> list[CaseOutcome]:
    """The outcomes of ``chunk`` run by the runner ``key`` (``payload``: its pickle, or the
    path of a file holding it)."""
    if getattr(_loaded, 'key', None) != key:
        if isinstance(payload, str):
            with open(payload, 'rb') as file:
                payload = file.read()
        _loaded.runner = pickle.loads(payload)
        _loaded.key = key
    return run_chunk(_loaded.runner, chunk)
