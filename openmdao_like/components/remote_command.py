"""Running a command in a directory of an allocated server (a `FactoryProxy` whose factory
allows shell access): input files go up, the command runs, output files come back.

The server runs the command itself (`FactoryProxy.run_command`): as an argument list in its own
process group, in the directory, with the environment added and the streams redirected; after
the timeout it kills the whole group (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import posixpath
import subprocess
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ['RemoteRun', 'upload_inputs', 'run_on_server', 'fetch_outputs', 'NO_LIMIT']

#: Seconds the client waits for a command without a timeout (20 days: socket waits cannot be
#: longer; a server that stops responding meanwhile is noticed within seconds).
NO_LIMIT = 20 * 24 * 3600.0
#: Seconds added to the timeout and kill grace for the client's wait for the answer.
MARGIN = 60.0


@dataclass
class RemoteRun:
    """What a command run on a server gave: its exit status (negative: killed by that
    signal), whether it timed out, why it could not start ('' if it did; exit status 127:
    its program was not found) and its captured output."""

    returncode: int
    timed_out: bool
    cannot_start: str
    stdout: str
    stderr: str


def upload_inputs(server: Any, rdir: str, directory: str, paths: Iterable[str]) -> None:
    """Empty ``rdir`` (below the server's root), then upload each of ``paths`` (relative to
    the local ``directory``) to the same place below it."""
    with contextlib.suppress(FileNotFoundError):
        server.remove(rdir)
    for rel in paths:
        server.upload(os.path.join(directory, rel), posixpath.join(rdir, rel))


def run_on_server(server: Any, rdir: str, command: list[str], env: dict[str, str],
                  stdin: str, stdout: str | None, stderr: str | int | None, timeout: float,
                  grace: float) -> RemoteRun:
    """Run ``command`` in ``rdir`` with ``env`` (names checked by the caller) added to the
    server's environment. ``stdin`` is a file name or ``os.devnull``; ``stdout`` and ``stderr``
    file names, ``os.devnull`` or None (captured and returned); ``stderr`` may also be
    ``subprocess.STDOUT``. After ``timeout`` seconds (0: none) the command's process group gets
    SIGTERM, and SIGKILL ``grace`` seconds later."""
    returncode, timed_out, cannot_start, out, err = server.run_command(
        command, rdir, env, stdin=stdin, stdout='' if stdout is None else stdout,
        stderr='' if stderr is None else '-' if stderr == subprocess.STDOUT else stderr,
        timeout=timeout, grace=grace,
        wait=timeout + grace + MARGIN if timeout else NO_LIMIT)
    return RemoteRun(returncode, timed_out, cannot_start, out.decode(errors='replace'),
                     err.decode(errors='replace'))


def fetch_outputs(server: Any, rdir: str, directory: str, patterns: Iterable[str]) -> None:
    """Download the files below ``rdir`` that match ``patterns`` (relative paths, glob
    patterns in the file name) to the same places below the local ``directory``."""
    by_dir: dict[str, list[str]] = {}
    for pattern in patterns:
        head, tail = posixpath.split(pattern)
        by_dir.setdefault(head, []).append(tail)
    for sub, names in by_dir.items():
        try:
            listing = server.listdir(posixpath.join(rdir, sub))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in listing:
            if not any(fnmatch.fnmatchcase(entry, name) for name in names):
                continue
            rel = posixpath.join(sub, entry)
            local = os.path.join(directory, rel)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with contextlib.suppress(IsADirectoryError):
                server.download(posixpath.join(rdir, rel), local)
