"""`PkgResourcesFactory`: creates classes that installed distributions register as entry points
(``[project.entry-points."openmdao_like.component"]`` and the other groups of `GROUPS`)."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from .base import GROUPS, Factory, TypeInfo, remote_request
from .versions import version_key, version_matches

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    """One entry point of one distribution."""

    name: str
    group: str
    value: str          # 'module:attr'
    distribution: str
    version: str
    location: str | None  # the directory holding the distribution, if known

    @property
    def info(self) -> TypeInfo:
        return TypeInfo(self.name, self.version, self.distribution, self.group)


class PkgResourcesFactory(Factory):
    """Finds classes by entry-point name in the groups of `GROUPS`.

    The entry points are read once (and again when a name is missing and the search path has
    changed since, e.g. after ``pip install``); a requested ``version`` is checked against the
    distribution's metadata before anything is imported.

    Parameters
    ----------
    groups : iterable of str
        Entry-point groups to search (default: all of `GROUPS`).
    search_path : list of str, optional
        Directories to look for distributions in, e.g. the site-packages of other environments
        (default: ``sys.path``). A class found outside ``sys.path`` is imported with its
        directory appended to ``sys.path``.
    """

    def __init__(self, groups: Iterable[str] = GROUPS, search_path: Iterable[str] | None = None):
        self.groups = tuple(groups)
        self.search_path = None if search_path is None else [os.path.abspath(p)
                                                             for p in search_path]
        self._lock = threading.RLock()
        self._index: dict[str, list[_Entry]] | None = None
        self._by_value: dict[str, _Entry] = {}
        self._fingerprint: tuple = ()
        self._classes: dict[_Entry, type] = {}
        self._conflicts: dict[_Entry, str] = {}  # entries whose module another version holds
        self._infos: dict[type, TypeInfo | None] = {}
        # (typname, requested version) -> class: create()'s fast path, emptied by refresh()
        self._found: dict[tuple[str, Any], type] = {}

    def __repr__(self) -> str:
        where = '' if self.search_path is None else f'search_path={self.search_path!r}'
        return f'PkgResourcesFactory({where})'

    # -- the index ------------------------------------------------------------------------------
    def _paths(self) -> list[str]:
        return self.search_path if self.search_path is not None else list(sys.path)

    def _current_fingerprint(self) -> tuple:
        """Which directories are searched and when each last changed (installs touch them)."""
        marks = []
        for path in self._paths():
            try:
                marks.append((path, os.stat(path or '.').st_mtime_ns))
            except OSError:
                marks.append((path, None))
        return tuple(marks)

    def refresh(self) -> None:
        """Read the entry points again (after installing or removing a distribution)."""
        import importlib.metadata as metadata  # imported when first needed: ~10 ms
        with self._lock:
            importlib.invalidate_caches()
            fingerprint = self._current_fingerprint()
            index: dict[str, list[_Entry]] = {}
            by_value: dict[str, _Entry] = {}
            seen = set()
            for dist in metadata.distributions(path=self._paths()):
                try:
                    dist_name = dist.metadata['Name']
                    dist_version = dist.version
                    eps = [ep for ep in dist.entry_points if ep.group in self.groups]
                except Exception as exc:  # a broken installed distribution must not stop us
                    logger.warning('skipping an unreadable distribution at %s: %s',
                                   getattr(dist, '_path', '?'), exc)
                    continue
                if not eps:
                    continue
                location = _location(dist)
                for ep in eps:
                    key = (ep.name, ep.group, dist_name, dist_version)
                    if key in seen:  # one distribution seen twice on the path
                        continue
                    seen.add(key)
                    entry = _Entry(ep.name, ep.group, ep.value, dist_name, dist_version, location)
                    index.setdefault(ep.name, []).append(entry)
                    by_value.setdefault(ep.value, entry)
            for entries in index.values():
                entries.sort(key=lambda e: self.groups.index(e.group))
            self._index, self._by_value, self._fingerprint = index, by_value, fingerprint
            self._classes = {e: c for e, c in self._classes.items()
                             if e in index.get(e.name, ())}
            self._conflicts = {}
            self._infos = {}
            self._found = {}

    def _entries(self, typname: str) -> list[_Entry]:
        """The entry points named ``typname`` (reading the index again if it may be stale)."""
        index = self._index
        if index is None:
            self.refresh()
            index = self._index
        found = index.get(typname)
        if found is None and self._current_fingerprint() != self._fingerprint:
            self.refresh()
            found = self._index.get(typname)
        return found or []

    # -- Factory --------------------------------------------------------------------------------
    def _matches(self, typname: str, version: str | None) -> list[_Entry]:
        """The entry points named ``typname`` whose version satisfies ``version``."""
        return [entry for entry in self._entries(typname)
                if version_matches(version, entry.version)]

    def find_class(self, typname: str, version: str | None = None) -> type | None:
        cls = self._found.get((typname, version))
        if cls is not None:
            return cls
        for entry in self._matches(typname, version):
            cls = self._load(entry)
            if cls is not None:
                self._found[(typname, version)] = cls
                return cls
        return None

    def create(self, typname: str, version: str | None = None, server: Any = None,
               res_desc: dict | None = None, **ctor_args: Any) -> Any:
        if server is not None or res_desc:
            return None
        cls = self.find_class(typname, version)  # a request seen before: one dict lookup
        return None if cls is None else cls(**ctor_args)

    def _load(self, entry: _Entry) -> type | None:
        """The class of ``entry``, imported once; None when its module is already imported from
        another installed version of the distribution (one process holds one version of a
        module; the reason is kept for `why_not`)."""
        cls = self._classes.get(entry)
        if cls is not None:
            return cls
        with self._lock:
            # a distribution found on a search path of its own imports from there
            if self.search_path is not None and entry.location is not None and \
                    entry.location not in sys.path:
                sys.path.append(entry.location)
            module_name, _, attr = entry.value.partition(':')
            module = importlib.import_module(module_name.strip())
            conflict = self._other_version(entry, module)
            if conflict is not None:
                self._conflicts[entry] = conflict
                return None
            self._conflicts.pop(entry, None)
            obj: Any = module
            for part in attr.strip().split('.') if attr.strip() else ():
                obj = getattr(obj, part)
            if not isinstance(obj, type):
                raise TypeError(f'entry point {entry.name!r} of {entry.distribution} '
                                f'{entry.version} ({entry.group}) refers to {entry.value!r}, '
                                f'which is not a class')
            self._classes[entry] = obj
            return obj

    def _other_version(self, entry: _Entry, module: Any) -> str | None:
        """Why ``module`` (imported for ``entry``) is not ``entry``'s: it lies in the directory
        of another installed version of the same distribution. None when it is ``entry``'s, or
        when that cannot be told (e.g. an editable install keeps its modules elsewhere)."""
        path = getattr(module, '__file__', None)
        if not path or entry.location is None:
            return None
        path = os.path.realpath(path)
        if _inside(path, entry.location):
            return None
        for other in self._index.get(entry.name, ()) if self._index else ():
            if other.distribution == entry.distribution and other.location is not None \
                    and other.location != entry.location and _inside(path, other.location):
                return (f'{entry.distribution} {entry.version} (in {entry.location}) cannot be '
                        f'loaded: its module {module.__name__!r} is already imported from '
                        f'{other.distribution} {other.version} (in {other.location}), and a '
                        f'process holds one version of a module; create it in another process '
                        f'(a server with that environment)')
        return None

    def why_not(self, typname: str, version: str | None = None, server: Any = None,
                res_desc: dict | None = None) -> str:
        remote = remote_request(server, res_desc)
        if remote:
            return remote
        entries = self._entries(typname)
        if not entries:
            return f'no entry point named {typname!r} in groups {", ".join(self.groups)}'
        conflicts = [self._conflicts[e] for e in self._matches(typname, version)
                     if e in self._conflicts]
        if conflicts:
            return '; '.join(conflicts)
        have = ', '.join(f'{e.version} ({e.distribution})' for e in entries)
        return f'version {version} requested, installed: {have}'

    def get_available_types(self, groups: Any = None) -> list[TypeInfo]:
        # not a hot path: always see distributions installed (or put on the path) since
        if self._index is None or self._current_fingerprint() != self._fingerprint:
            self.refresh()
        wanted = _as_groups(groups)
        return sorted((e.info for entries in self._index.values() for e in entries
                       if wanted is None or e.group in wanted),
                      key=lambda t: (t.name, version_key(t.version)))

    def type_info(self, cls: type) -> TypeInfo | None:
        if self._index is None:
            self.refresh()
        try:
            return self._infos[cls]
        except KeyError:
            info = self._infos[cls] = self._find_info(cls)
            return info

    def _find_info(self, cls: type) -> TypeInfo | None:
        entry = self._by_value.get(f'{cls.__module__}:{cls.__qualname__}')
        if entry is not None:
            return entry.info
        # an entry point may name a re-export ('pkg:Class' for pkg.module.Class): load only the
        # entry points of cls's own top-level package to compare
        top = cls.__module__.partition('.')[0]
        for value, entry in list(self._by_value.items()):
            if value.partition(':')[0].strip().partition('.')[0] == top:
                try:
                    if self._load(entry) is cls:
                        return entry.info
                except Exception:  # a broken plugin does not decide how cls is named
                    continue
        return None


def _location(dist: Any) -> str | None:
    """The real path of the directory holding an installed distribution's metadata."""
    try:
        return os.path.realpath(str(dist.locate_file('')))
    except Exception:  # a distribution without a file location (custom finders)
        return None


def _inside(path: str, directory: str) -> bool:
    return path.startswith(os.path.join(directory, ''))


def _as_groups(groups: Any) -> set[str] | None:
    """None, one group or several -> a set of full group names (short names allowed)."""
    if groups is None:
        return None
    if isinstance(groups, str):
        groups = [groups]
    return {g if g.startswith('openmdao_like.') else f'openmdao_like.{g}' for g in groups}
