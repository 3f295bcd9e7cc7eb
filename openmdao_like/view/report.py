"""A run's report (``openmdao-like run MODEL --report DIR``): the model view and the standard
plots of the cases the run recorded, in one directory."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable

from .html import write_model_view
from .plots import standard_plots

logger = logging.getLogger(__name__)

#: The model view's file name in a report directory.
MODEL_VIEW = 'model.html'


def recorded_files(top: Any) -> list[Path]:
    """The case files ``top``'s recorders write (those that say where: a ``path``)."""
    found = []
    for recorder in getattr(top, 'recorders', None) or ():
        path = getattr(recorder, 'path', None)
        if isinstance(path, (str, os.PathLike)):
            found.append(Path(path))
    return found


def write_report(top: Any, directory: str | os.PathLike[str],
                 case_files: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """Write ``model.html`` (the model view of ``top``) and the standard plots of the first
    readable file of ``case_files`` (default: those ``top``'s recorders wrote) into
    ``directory``, made if missing; the paths written. Several recorders of one run hold the
    same cases: one file's plots are the run's."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = [write_model_view(top, directory / MODEL_VIEW)]
    files = [Path(p) for p in case_files] or recorded_files(top)
    existing = [path for path in files if path.is_file()]
    if not existing:
        logger.info('%s: no case file recorded: the report has no plots', directory)
        return written
    written += standard_plots(existing[0], directory)
    return written
