"""Case recorders: write the cases a driver runs to CSV, JSON Lines or SQLite, and read them back.

::

    from openmdao_like.recorders import (CSVRecorder, JSONRecorder, SQLiteRecorder, read_cases,
                                         read_metadata)

    top.recorders = [CSVRecorder('cases.csv'), SQLiteRecorder('cases.sqlite')]
    top.run()
    for row in read_cases('cases.sqlite', driver='driver'):  # any format: {'id', 'driver',
        ...                                    # 'iteration', 'status', 'error', 'comp.x', ...}
    read_metadata('cases.csv')['variables']['comp.x']['units']

Every recorder follows `CaseRecorder`'s life cycle (startup, record, flush, close), overwrites an
existing file at startup, never creates directories, and pickles (before startup) so it can be
shipped to another process. `read_cases_array` gives the scalar numeric columns as a numpy
structured array; `read_metadata` the run's versions and times and each recorded variable's
units, iotype and description.
"""

from openmdao_like.recorders.base import CaseRecorder
from openmdao_like.recorders.csv import CSVRecorder
from openmdao_like.recorders.jsonl import JSONRecorder
from openmdao_like.recorders.read import read_cases, read_cases_array, read_metadata
from openmdao_like.recorders.sqlite import SQLiteRecorder

__all__ = ['CaseRecorder', 'CSVRecorder', 'JSONRecorder', 'SQLiteRecorder', 'read_cases',
           'read_cases_array', 'read_metadata']
