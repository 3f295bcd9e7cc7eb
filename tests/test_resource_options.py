"""Declared options of the allocators and the wrappers: every option refuses an unknown
spelling (the message names the class, the keyword and the closest option), a wrong type and a
value out of its range (the message names the owner — a wrapper's class, an allocator's name,
or its class while the name itself is wrong —, the option, what it accepts and the value
given)."""

import os
import sys
from typing import Any, Callable

import pytest

from openmdao_like.distributed import JobSchedulerWrapper, RetryWrapper, SSHWrapper
from openmdao_like.options import OptionError, OptionTypeError, UnknownOptionError
from openmdao_like.resources import (ClusterAllocator, LocalAllocator, MPIAllocator,
                                     PBSAllocator, SlurmAllocator)

sys.path.insert(0, os.path.dirname(__file__))
from remote_models import Paraboloid  # noqa: E402

SKIP = object()  # an option without a range to leave (any value of its type is fine)

# the options every batch allocator shares: name -> (wrong type, out of range)
BATCH = {'name': (42, ''), 'template': (42, SKIP), 'python': (42, ''), 'workdir': (42, ''),
         'client_address': (42, ''), 'channel': ('localhost', SKIP),
         'max_jobs': (1.5, 0), 'queue_timeout': ('1h', 0), 'poll': (True, -1.0),
         'extra_directives': ('--qos=low', ['']), 'allowed_hosts': ('10.0.0.1', ['']),
         'mpi_launcher': ('srun', SKIP)}

#: class -> (a maker taking keywords, {option: (wrong type, out of range)})
CASES: dict[type, tuple[Callable[..., Any], dict[str, tuple[Any, Any]]]] = {
    LocalAllocator: (LocalAllocator, {
        'name': (42, ''), 'total_cpus': ('2', 0), 'max_load': ('high', 0.0),
        'server_limit': (2.5, 0), 'workdir': (42, SKIP)}),
    ClusterAllocator: (lambda **kw: ClusterAllocator(**{'name': 'c', 'hosts': ['h1'], **kw}), {
        'name': (42, ''), 'hosts': ('h1', []), 'user': (42, SKIP), 'key_filename': (42, SKIP),
        'known_hosts': (42, SKIP), 'python': (42, ''), 'method': (1, 'random'),
        'port': ('22', 70000), 'workdir': (42, SKIP), 'max_load': ('x', -1.0)}),
    SlurmAllocator: (SlurmAllocator, {**BATCH, 'partition': (42, 'two words')}),
    PBSAllocator: (PBSAllocator, {**BATCH, 'queue': (42, 'two words'), 'dialect': (1, 'sge'),
                                  'mpiexec': (42, '')}),
    MPIAllocator: (MPIAllocator, {
        'name': (42, ''), 'launcher': (42, 'ssh'), 'total_cpus': (2.0, 0),
        'mpiexec': (42, ''), 'workdir': (42, SKIP)}),
    RetryWrapper: (lambda **kw: RetryWrapper(Paraboloid(), **kw), {
        'max_retries': (1.0, -1), 'wait_time': ('1s', -0.5), 'timeout': ('1s', 0),
        'retry_on': (ValueError, (ValueError, 1)), 'fatal': ([KeyError], ('KeyError',))}),
    SSHWrapper: (lambda **kw: SSHWrapper(Paraboloid(), **{'host': '127.0.0.1', **kw}), {
        'host': (42, ''), 'port': ('22', 0), 'user': (42, SKIP), 'key_filename': (42, SKIP),
        'known_hosts': (42, SKIP), 'python': (42, SKIP), 'workdir': (42, SKIP),
        'env': ('A=1', SKIP), 'timeout': ('1s', -1.0)}),
    JobSchedulerWrapper: (lambda **kw: JobSchedulerWrapper(Paraboloid(), **kw), {
        'allocator_or_scheduler': (42, 'lsf'), 'template': (42, SKIP), 'python': (42, SKIP),
        'workdir': (42, SKIP), 'res_desc': ('min_cpus=2', SKIP), 'poll': ('1s', 0.0)}),
}

#: How messages name an allocator made with its default name.
NAMES = {LocalAllocator: 'LocalHost', ClusterAllocator: 'c', SlurmAllocator: 'SLURM',
         PBSAllocator: 'PBS', MPIAllocator: 'MPI'}


def owner(cls: type, option: str) -> str:
    """How an option message of ``cls`` begins when ``option`` is wrong."""
    return cls.__name__ if option == 'name' else NAMES.get(cls, cls.__name__)


OPTIONS = [(cls, name) for cls, (_, table) in CASES.items() for name in table]
RANGED = [(cls, name) for cls, name in OPTIONS if CASES[cls][1][name][1] is not SKIP]


def ids(case: tuple[type, str]) -> str:
    return f'{case[0].__name__}.{case[1]}'


@pytest.mark.parametrize('cls', CASES, ids=lambda cls: cls.__name__)
def test_every_declared_option_is_covered(cls):
    assert set(CASES[cls][1]) == set(cls._option_template)


@pytest.mark.parametrize('case', OPTIONS, ids=ids)
def test_unknown_keyword_names_the_class_and_the_closest_option(case):
    cls, name = case
    make = CASES[cls][0]
    wrong = name + 's'
    with pytest.raises(UnknownOptionError) as caught:
        make(**{wrong: 1})
    message = str(caught.value)
    assert isinstance(caught.value, TypeError)
    assert message.startswith(f'{cls.__name__}: unknown option {wrong!r}')
    assert f'did you mean {name!r}' in message or f"'{name}'" in message.split('?')[0]


@pytest.mark.parametrize('case', OPTIONS, ids=ids)
def test_wrong_type_names_class_option_accepted_and_given(case):
    cls, name = case
    make, table = CASES[cls]
    value = table[name][0]
    with pytest.raises(OptionTypeError) as caught:
        make(**{name: value})
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)
    accepts = cls._option_template.declaration(name).accepts
    assert str(caught.value) == (f'{owner(cls, name)}: {name} must be {accepts}, got '
                                 f'{value!r} ({type(value).__name__})')


@pytest.mark.parametrize('case', RANGED, ids=ids)
def test_value_out_of_range_names_class_option_accepted_and_given(case):
    cls, name = case
    make, table = CASES[cls]
    value = table[name][1]
    with pytest.raises(OptionError) as caught:
        make(**{name: value})
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    accepts = cls._option_template.declaration(name).accepts
    assert message.startswith(f'{owner(cls, name)}: {name} must be {accepts}, got {value!r} '
                              f'({type(value).__name__})')


def test_positional_arguments_still_work():
    cluster = ClusterAllocator('cluster', ['user@h1:2222', 'h2'], 'me')
    assert (cluster.name, cluster.hosts, cluster.user) == ('cluster', ['user@h1:2222', 'h2'],
                                                           'me')
    local = LocalAllocator('L', 4, 2.0, 3)
    assert (local.total_cpus, local.max_load, local.server_limit) == (4, 2.0, 3)
    slurm = SlurmAllocator('S', 'debug')
    assert (slurm.name, slurm.partition) == ('S', 'debug')
    pbs = PBSAllocator('P', 'workq', None, 'torque')
    assert (pbs.queue, pbs.dialect) == ('workq', 'torque')
    assert MPIAllocator('M', 'mpiexec', 3).total_cpus == 3


def test_defaults_are_resolved_and_writes_are_checked():
    local = LocalAllocator()
    assert local.total_cpus == (os.cpu_count() or 1) and local.server_limit == local.total_cpus
    slurm = SlurmAllocator()
    assert slurm.python == sys.executable and slurm.channel is not None
    assert slurm.extra_directives == ()
    slurm.max_jobs = 3
    assert slurm.options['max_jobs'] == 3
    with pytest.raises(OptionError, match='SLURM: max_jobs must be a positive integer, '
                                          'got 0'):
        slurm.max_jobs = 0
    assert slurm.max_jobs == 3


def test_cross_option_errors_name_both():
    with pytest.raises(ValueError, match="mpiexec='/bin/mpiexec' applies to launcher="):
        MPIAllocator(launcher='srun', mpiexec='/bin/mpiexec')
    with pytest.raises(OptionError, match='python belong to the allocator'):
        JobSchedulerWrapper(Paraboloid(), SlurmAllocator(), python='/usr/bin/python3')
