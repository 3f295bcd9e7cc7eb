"""Resource descriptions: the dict that says what a server needs (OpenMDAO classic / DRMAA keys).

`validate_resource_desc` checks one and returns a normalized copy; every error names the key,
what it expects and what was given. `RESOURCE_KEYS` documents each key (the docs and
``openmdao-like resources keys`` print it). A key whose value is None counts as not given.
"""

from __future__ import annotations

import datetime
import difflib
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any, Callable, Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from ..errors import describe

__all__ = ['RESOURCE_KEYS', 'RESOURCE_LIMITS', 'validate_resource_desc']

#: Every resource key and what it asks for.
RESOURCE_KEYS: dict[str, str] = {
    'allocator': 'name of the allocator that must serve it (e.g. LocalHost)',
    'localhost': 'true: a server on this machine only; false: never on this machine',
    'exclude': 'host names the server must not run on',
    'required_distributions': 'PEP 508 requirements the server must satisfy (numpy>=1.24)',
    'python_version': "Python the server must run: a version prefix ('3.11') or a specifier "
                      "('>=3.10')",
    'min_cpus': 'CPUs (processes) the server needs at least',
    'max_cpus': 'CPUs it can use at most (needs min_cpus)',
    'min_phys_memory': 'physical memory it needs at least, in kB',
    'remote_command': 'command to run instead of a server (batch jobs)',
    'args': 'arguments of remote_command',
    'job_environment': 'environment variables of the server or job (name -> value)',
    'working_directory': 'directory where the server or job works',
    'job_category': "kind of job, e.g. 'MPI' (objects start under mpiexec)",
    'job_name': 'name of the batch job (letters, digits, _ - ., starts with a letter, <= 64)',
    'queue_name': 'batch queue or partition to submit to',
    'resource_limits': 'limits: core_file_size, data_seg_size, file_size, open_files, '
                       'stack_size, virtual_memory, cpu_time (s), wallclock_time (s)',
    'accounting_id': 'account the batch job is charged to',
    'native_specification': "extra options passed as given to the batch system (['--qos=low'])",
    'input_path': "file the job's standard input is read from",
    'output_path': "file the job's standard output goes to",
    'error_path': "file the job's standard error goes to",
    'join_files': "true: standard error goes to the output file",
    'email': 'addresses notified about the job',
    'email_on_started': 'true: mail when the job starts',
    'email_on_terminated': 'true: mail when the job ends',
    'start_time': 'datetime before which the job must not start',
    'deadline_time': 'datetime by which the job must be done',
}

#: Keys of ``resource_limits`` (cpu_time and wallclock_time in seconds).
RESOURCE_LIMITS = ('core_file_size', 'data_seg_size', 'file_size', 'open_files', 'stack_size',
                   'virtual_memory', 'cpu_time', 'wallclock_time')

_JOB_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_.-]{0,63}')
_VERSION = re.compile(r'\d+(\.\d+){0,2}')


class _Bad(Exception):
    """A value is not what its key expects (``expected`` says what is)."""

    def __init__(self, expected: str, detail: str = ''):
        super().__init__(expected)
        self.expected = expected
        self.detail = detail


# -- value checks: each returns the normalized value or raises _Bad --------------------------------
def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad('a non-empty string')
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad('true or false')
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise _Bad('a positive integer')
    return int(value)


def _string_list(value: Any, what: str, allow_empty_items: bool = False) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) and (allow_empty_items or v.strip()) for v in value):
        raise _Bad(f'a list of {what}')
    return list(value)


def _hosts(value: Any) -> list[str]:
    return _string_list(value, 'host names')


def _addresses(value: Any) -> list[str]:
    return _string_list(value, 'email addresses')


def _arguments(value: Any) -> list[str]:
    return _string_list(value, 'argument strings', allow_empty_items=True)


def _requirements(value: Any) -> list[str]:
    if isinstance(value, (str, Requirement)) or not isinstance(value, (list, tuple)):
        raise _Bad('a list of PEP 508 requirement strings')
    out = []
    for item in value:
        if not isinstance(item, (str, Requirement)):
            raise _Bad('a list of PEP 508 requirement strings')
        try:
            out.append(str(Requirement(str(item))))
        except InvalidRequirement as exc:
            raise _Bad('a list of PEP 508 requirement strings',
                       detail=f'{item!r} is not one: {exc}') from None
    return out


def _python_version(value: Any) -> str:
    expected = "a Python version ('3.11') or a version specifier ('>=3.10')"
    if not isinstance(value, str):
        raise _Bad(expected)
    text = value.strip()
    if text[:1].isdigit():
        if not _VERSION.fullmatch(text):
            raise _Bad(expected)
        return text
    try:
        if not SpecifierSet(text):  # empty
            raise _Bad(expected)
    except InvalidSpecifier:
        raise _Bad(expected) from None
    return text


def _environment(value: Any) -> dict[str, str]:
    expected = 'a mapping of variable names to string values'
    if not isinstance(value, Mapping):
        raise _Bad(expected)
    for name, val in value.items():
        if not isinstance(name, str) or not name or '=' in name or '\0' in name:
            raise _Bad(expected, detail=f'bad variable name {name!r}')
        if not isinstance(val, str):
            raise _Bad(expected, detail=f'{name} is {describe(val)}')
    return dict(value)


def _job_name(value: Any) -> str:
    if not isinstance(value, str) or not _JOB_NAME.fullmatch(value):
        raise _Bad('a name of letters, digits, _, - and ., starting with a letter, at most 64 '
                   'characters')
    return value


def _limits(value: Any) -> dict[str, float]:
    expected = f'a mapping of limits ({", ".join(RESOURCE_LIMITS)}) to numbers >= 0'
    if not isinstance(value, Mapping):
        raise _Bad(expected)
    out = {}
    for name, limit in value.items():
        if name not in RESOURCE_LIMITS:
            raise _Bad(expected,
                       detail=f'unknown limit {name!r}{did_you_mean(name, RESOURCE_LIMITS)}')
        if isinstance(limit, bool) or not isinstance(limit, numbers.Real) \
                or not math.isfinite(limit) or limit < 0:
            raise _Bad(expected, detail=f'{name} is {describe(limit)}')
        out[name] = limit
    return out


def _datetime(value: Any) -> datetime.datetime:
    if not isinstance(value, datetime.datetime):
        raise _Bad('a datetime.datetime')
    return value


_CHECKS: dict[str, Callable[[Any], Any]] = {
    'allocator': _string, 'localhost': _boolean, 'exclude': _hosts,
    'required_distributions': _requirements, 'python_version': _python_version,
    'min_cpus': _positive_int, 'max_cpus': _positive_int, 'min_phys_memory': _positive_int,
    'remote_command': _string, 'args': _arguments, 'job_environment': _environment,
    'working_directory': _string, 'job_category': _string, 'job_name': _job_name,
    'queue_name': _string, 'resource_limits': _limits, 'accounting_id': _string,
    'native_specification': _arguments, 'input_path': _string, 'output_path': _string,
    'error_path': _string, 'join_files': _boolean, 'email': _addresses,
    'email_on_started': _boolean, 'email_on_terminated': _boolean, 'start_time': _datetime,
    'deadline_time': _datetime,
}


def did_you_mean(name: Any, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the entries of ``known`` close to ``name``, or ''."""
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.7)
    return f' (did you mean {" or ".join(map(repr, close))}?)' if close else ''


def validate_resource_desc(res_desc: Mapping[str, Any] | None,
                           where: str = 'resource description') -> dict[str, Any]:
    """A checked, normalized copy of ``res_desc`` (None: empty); `ValueError` naming the bad
    key, what it expects and what was given; `TypeError` when it is not a mapping."""
    if res_desc is None:
        return {}
    if not isinstance(res_desc, Mapping):
        raise TypeError(f'{where}: expected a mapping of resource keys to values, got '
                        f'{describe(res_desc)}')
    out: dict[str, Any] = {}
    for key, value in res_desc.items():
        if key not in _CHECKS:
            raise ValueError(f'{where}: unknown key {key!r}{did_you_mean(key, _CHECKS)}; '
                             f'known keys: {", ".join(RESOURCE_KEYS)}')
        if value is None:
            continue
        try:
            out[key] = _CHECKS[key](value)
        except _Bad as bad:
            detail = f' ({bad.detail})' if bad.detail else ''
            raise ValueError(f'{where}: {key} should be {bad.expected}, got '
                             f'{describe(value)}{detail}') from None
    if 'max_cpus' in out:
        if 'min_cpus' not in out:
            raise ValueError(f'{where}: max_cpus ({out["max_cpus"]}) needs min_cpus too')
        if out['max_cpus'] < out['min_cpus']:
            raise ValueError(f'{where}: max_cpus should be >= min_cpus ({out["min_cpus"]}), '
                             f'got {out["max_cpus"]}')
    return out
