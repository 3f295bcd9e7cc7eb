"""What a case file says besides its cases: the run's versions and times, and the units, iotype
and description of every recorded variable, as `read_metadata` returns them::

    {'format_version': 2,
     'start': 1712000000.2, 'end': 1712000003.9,            # time.time(); end None while open
     'versions': {'openmdao_like': '0.1.0', 'python': '3.12.3', 'numpy': '2.1.0', ...},
     'variables': {'p.x': {'units': 'm', 'iotype': 'in', 'desc': 'position'},
                   'p.x**2 + p.y': {'units': None, 'iotype': 'expression',
                                    'desc': 'objective of driver'}}}

A variable is keyed as in `read_cases` (a variable path, or a driver's parameter, objective,
constraint or response name). One recorded straight from a model variable carries that
variable's ``units``, ``iotype`` ('in' or 'out') and ``desc``; an expression (an objective or
response that is not a plain path, every constraint residual) has ``iotype`` 'expression' and no
units; a name the model does not know (or a recorder started without a model) has None for both.

`RunMetadata` collects this while a recorder runs; each format stores `RunMetadata.as_dict`
(SQLite in tables, CSV and JSON Lines in the sidecar file ``<path>.meta.json``).
"""

from __future__ import annotations

import functools
import platform
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .. import tree
from .._version import __version__
from ..cases import Case

#: Version of the case file formats (CSV, JSON Lines and SQLite together). History:
#:   1 -- CSV columns ``id,status,error,driver,t_start,t_end,retries`` then variables; JSON
#:        Lines keys ``id, status, error, driver, t_start, t_end, retries, inputs, outputs``;
#:        SQLite ``metadata(format_version, created)`` and ``cases(case_id, driver, status,
#:        message, t_start, t_end, retries, inputs, outputs)``. Ids were the drivers' own case
#:        numbers (they repeat when several drivers record) and no metadata was kept.
#:   2 -- every record has ``id`` (unique in the file: record order), ``driver`` and
#:        ``iteration``; CSV columns ``id,driver,iteration,status,error,t_start,t_end,retries``;
#:        JSON Lines keys ``id, driver, iteration, status, ...``; SQLite ``cases(id INTEGER
#:        PRIMARY KEY, driver, iteration, status, ...)``, ``metadata(format_version, created,
#:        finished, versions)`` and ``variables(name, units, iotype, description)``; CSV and
#:        JSON Lines metadata in ``<path>.meta.json``.
FORMAT_VERSION = 2

#: Distributions whose versions a run records (besides openmdao_like and Python).
DISTRIBUTIONS = ('numpy', 'scipy', 'traits', 'pint', 'cloudpickle', 'pyyaml')

#: Suffix of the sidecar file that holds the metadata of a CSV or JSON Lines case file.
SIDECAR_SUFFIX = '.meta.json'

_UNKNOWN = {'units': None, 'iotype': None, 'desc': ''}


@functools.cache
def run_versions() -> dict[str, str | None]:
    """openmdao_like's, Python's and `DISTRIBUTIONS`' versions (None if not installed); read
    once per process, without importing anything."""
    from importlib import metadata
    versions: dict[str, str | None] = {'openmdao_like': __version__,
                                       'python': platform.python_version()}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


class RunMetadata:
    """The metadata of one recorder run: started with the recorder, told every case, ended when
    the recorder closes.

    Parameters
    ----------
    model : Assembly, optional
        The top of the model whose cases are recorded: where units, iotypes and descriptions
        come from (without it every variable's are unknown).

    Attributes
    ----------
    start, end : float or None
        ``time.time()`` at startup and at close (None while open).
    variables : dict
        Recorded name -> ``{'units', 'iotype', 'desc'}``, in the order first recorded.
    changed : bool
        Whether something changed since the recorder last stored the metadata.
    """

    __slots__ = ('start', 'end', 'variables', 'changed', '_describe')

    def __init__(self, model: Any = None):
        self.start: float = time.time()
        self.end: float | None = None
        self.variables: dict[str, dict[str, Any]] = {}
        self.changed = True
        self._describe = None if model is None else describer(model)

    def see(self, case: Case) -> None:
        """Describe the variables of ``case`` not seen before (a recorder calls it only for a
        case with a name ``variables`` lacks: the hot path is that check)."""
        describe, variables = self._describe, self.variables
        for names in (case.inputs, case.outputs):
            for name in names:
                if name not in variables:
                    variables[name] = dict(_UNKNOWN) if describe is None else describe(name)
                    self.changed = True

    def finish(self) -> None:
        """Note the end time."""
        self.end = time.time()
        self.changed = True

    def as_dict(self) -> dict[str, Any]:
        """What `read_metadata` returns (see the module docstring)."""
        return {'format_version': FORMAT_VERSION, 'start': self.start, 'end': self.end,
                'versions': dict(run_versions()),
                'variables': {name: dict(meta) for name, meta in self.variables.items()}}


def describer(top: Any) -> Callable[[str], dict[str, Any]]:
    """A function giving the ``{'units', 'iotype', 'desc'}`` of a recorded name in model
    ``top``: a driver's parameter, objective, constraint or response (drivers nearer the top
    first), else a variable path from the top."""
    index: dict[str, dict[str, Any]] = {}
    for driver in _drivers(top):
        scope, where = driver.parent, tree.where(driver)
        for name, param in driver.get_parameters().items():
            index.setdefault(name, _variable(scope, param.targets[0]) or dict(_UNKNOWN))
        for kind, texts in (('objective', {n: o.text for n, o in
                                           driver.get_objectives().items()}),
                            ('response', {t: t for t in driver.get_responses()})):
            for name, text in texts.items():
                index.setdefault(name, _variable(scope, text.strip())
                                 or _expression(f'{kind} of {where}: {text}'))
        for name, con in driver.get_constraints().items():
            index.setdefault(name, _expression(f'constraint of {where}: {con.text} (the '
                                               f'residual: <= 0 or == 0 when it holds)'))

    def describe(name: str) -> dict[str, Any]:
        found = index.get(name)
        if found is None:
            found = _variable(top, name) if isinstance(name, str) else None
        return dict(_UNKNOWN if found is None else found)
    return describe


def _drivers(top: Any) -> list[Any]:
    """Every driver in the model, breadth first (those of ``top`` first)."""
    found, queue = [], deque([top])
    while queue:
        node = queue.popleft()
        for child in tree.children(node).values():
            if callable(getattr(child, 'get_parameters', None)):
                found.append(child)
            elif getattr(child, '_children', None):
                queue.append(child)
    return found


def _variable(scope: Any, path: str) -> dict[str, Any] | None:
    """The metadata of the variable at ``path`` (``'a.b.x'`` or ``'a.x[2]'``) in ``scope``,
    or None if it names none."""
    try:
        owner, last = scope._resolve_owner(path)
        var = tree.variables(owner).get(last.split('[', 1)[0])
    except Exception:  # not a path (an expression), or a path the model does not have
        return None
    if var is None:
        return None
    return {'units': var.units, 'iotype': var.iotype, 'desc': var.desc or ''}


def _expression(desc: str) -> dict[str, Any]:
    return {'units': None, 'iotype': 'expression', 'desc': desc}
