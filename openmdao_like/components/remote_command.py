"""Running a command in a directory of an allocated server (a `FactoryProxy` whose factory
allows shell access): input files go up, the command runs, output files come back.

``execute_command`` runs its argument list in the server's root and captures its output; it has
no directory, environment, redirection or process-group options. So the command runs under
``/bin/sh -c WRAPPER``, which makes and enters the directory, checks that the program exists
(with the environment applied), redirects stdin/stdout/stderr, and with a timeout starts the
command in a session of its own and kills that whole process group when the time is up. The
wrapper reports on the captured standard error, in lines starting with `MARK`: ``not-found``
and ``timed-out``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import posixpath
import subprocess
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ['RemoteRun', 'upload_inputs', 'run_on_server', 'fetch_outputs', 'MARK', 'NO_LIMIT']

#: Prefix of the wrapper's report lines on the captured standard error.
MARK = '@@openmdao_like.external_code'
#: The server's own limit (s) on a command without a timeout (20 days: socket waits cannot be
#: longer).
NO_LIMIT = 20 * 24 * 3600.0
#: Seconds added to the timeout for the server's own limit and the wait for its answer.
MARGIN = 60.0

# Arguments: directory, stdin, stdout ('' = captured), stderr ('' = captured, '-' = stdout),
# timeout (0 = none), kill grace, number of NAME=VALUE settings, the settings, the command.
WRAPPER = r'''
d=$1 i=$2 o=$3 e=$4 t=$5 g=$6 n=$7
shift 7
mkdir -p -- "$d" && cd -- "$d" || exit 125
if ! (k=$n; while [ "$k" -gt 0 ]; do export "$1"; shift; k=$((k - 1)); done
      command -v -- "$1") >/dev/null 2>&1; then
    echo "MARK not-found" >&2
    exit 127
fi
[ "$n" -gt 0 ] && set -- env -- "$@"
for f in "$o" "$e"; do case $f in */*) mkdir -p -- "${f%/*}" ;; esac; done
exec 3>&2
[ -z "$o" ] || exec >"$o"
case $e in '') ;; -) exec 2>&1 ;; *) exec 2>"$e" ;; esac
[ "$t" = 0 ] && exec "$@" <"$i" 3>&-
setsid "$@" <"$i" 3>&- &
p=$!
setsid sh -c 'sleep "$1"; echo "MARK timed-out" >&3; kill -TERM -"$2"; sleep "$3"
              kill -KILL -"$2"' sh "$t" "$p" "$g" 2>/dev/null &
w=$!
wait "$p" 2>/dev/null
r=$?
kill -KILL -"$w" 2>/dev/null
exit "$r"
'''.replace('MARK', MARK)


@dataclass
class RemoteRun:
    """What a command run on a server gave: its exit status (negative: killed by that
    signal), whether it timed out or its program was not found, and its captured output."""

    returncode: int
    timed_out: bool
    not_found: bool
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
    streams = [stdin, '' if stdout is None else stdout,
               '' if stderr is None else '-' if stderr == subprocess.STDOUT else stderr]
    args = ['/bin/sh', '-c', WRAPPER, 'sh', rdir, *streams,
            repr(float(timeout)) if timeout else '0', repr(float(grace)), str(len(env)),
            *(f'{name}={value}' for name, value in env.items()), *command]
    returncode, out, err = server.execute_command(
        args, timeout=timeout + grace + MARGIN if timeout else NO_LIMIT)
    marks, err_text = _split_marks(err.decode(errors='replace'))
    timed_out = 'timed-out' in marks
    if timed_out and returncode > 128:  # the shell's way of saying "killed by signal N"
        returncode = 128 - returncode
    return RemoteRun(returncode, timed_out, 'not-found' in marks, out.decode(errors='replace'),
                     err_text)


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


def _split_marks(text: str) -> tuple[set[str], str]:
    """(the wrapper's reports, the rest of the text) of the captured standard error."""
    marks, rest = set(), []
    for line in text.splitlines(keepends=True):
        if line.startswith(MARK + ' '):
            marks.add(line[len(MARK) + 1:].strip())
        else:
            rest.append(line)
    return marks, ''.join(rest)
