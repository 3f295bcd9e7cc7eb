"""`SSHWrapper`: components and assemblies whose executions run on another host over SSH (the
session's real sshd, tests/infra/sshd.py), with their results, files and exceptions coming
back."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Iterator

import pytest

import remote_models
from openmdao_like import Assembly, FileRef, set_as_top
from openmdao_like.distributed.ssh_wrapper import SSHWrapper
from openmdao_like.errors import ConvergenceError, JobError, ValidationError

pytestmark = pytest.mark.ssh


@pytest.fixture
def jobs_dir(sshd_hosts) -> Iterator[str]:
    """Where the test's jobs get their directories on the host (checked empty afterwards)."""
    path = f'/tmp/oml-wrapper-jobs-{os.getpid()}'
    yield path
    left = os.listdir(path) if os.path.isdir(path) else []
    shutil.rmtree(path, ignore_errors=True)
    assert left == [], 'job directories were left on the host'


@pytest.fixture
def wrap(sshd_hosts, jobs_dir: str) -> Iterator:
    """``wrap(comp, **options)``: an SSHWrapper to the first host; closed after the test."""
    made: list[SSHWrapper] = []

    def make(comp, **options) -> SSHWrapper:
        settings = dict(port=sshd_hosts.port, user=sshd_hosts.user,
                        key_filename=sshd_hosts.key_filename,
                        known_hosts=sshd_hosts.known_hosts, python=sshd_hosts.python,
                        workdir=jobs_dir, env=sshd_hosts.env)
        settings.update(options)
        wrapper = SSHWrapper(comp, sshd_hosts.hosts[0], **settings)
        made.append(wrapper)
        return wrapper

    yield make
    for wrapper in made:
        wrapper.close()


def test_wrapped_component_gives_the_local_result(wrap) -> None:
    local = remote_models.Paraboloid(x=1.0, y=2.0)
    local.run()
    wrapper = wrap(remote_models.Paraboloid())
    assert wrapper.list_inputs() == ['x', 'y'] and wrapper.list_outputs() == ['f_xy']
    assert wrapper.get_metadata('x', 'units') == 'm'
    with pytest.raises(ValidationError, match=r'x.*-50.0.*50.0.*99'):
        wrapper.x = 99.0
    wrapper.x, wrapper.y = 1.0, 2.0
    wrapper.run()
    assert wrapper.f_xy == local.f_xy == 39.0
    wrapper.y = -4.0
    wrapper.run()
    assert wrapper.f_xy == (1.0 - 3.0) ** 2 + 1.0 * -4.0 - 3.0
    assert wrapper.exec_count == 2


def test_wrapper_in_an_assembly(wrap) -> None:
    top = set_as_top(Assembly())
    top.add('scale', remote_models.Scale(k=3.0))
    top.add('p', wrap(remote_models.Paraboloid()))
    top.connect('scale.y', 'p.x')
    top.driver.workflow.add(['scale', 'p'])
    top.scale.x = 1.0
    top.run()
    assert top.p.x == 3.0 and top.p.f_xy == 3.0 * 0.0 + 16.0 - 3.0


def test_wrapped_assembly(wrap) -> None:
    inner = Assembly()
    inner.add('a', remote_models.Scale(k=2.0))
    inner.add('b', remote_models.Scale(k=5.0))
    inner.connect('a.y', 'b.x')
    inner.driver.workflow.add(['a', 'b'])
    inner.create_passthrough('a.x')
    inner.create_passthrough('b.y')
    wrapper = wrap(inner)
    wrapper.x = 1.5
    wrapper.run()
    assert wrapper.y == 15.0
    assert wrapper.wrapped.y == 15.0


@pytest.mark.parametrize('kind, exc_type, message', [
    ('ZeroDivisionError', ZeroDivisionError, 'float division by zero'),
    ('ConvergenceError', ConvergenceError, 'did not converge'),
    ('custom', remote_models.CustomError, 'a custom failure'),
])
def test_remote_exception_is_raised_here(wrap, kind, exc_type, message) -> None:
    wrapper = wrap(remote_models.Fails(kind=kind))
    with pytest.raises(exc_type, match=message) as info:
        wrapper.run()
    assert type(info.value) is exc_type
    assert 'remote_models.py' in info.value.remote_traceback
    assert 'in execute' in info.value.remote_traceback
    assert any('Raised remotely by' in note and 'remote_models.py' in note
               for note in info.value.__notes__)


def test_files_travel_both_ways(wrap, tmp_path: Path) -> None:
    top = set_as_top(Assembly(), str(tmp_path))
    writer = top.add('writer', wrap(remote_models.FileWriter()))
    writer.directory = 'writer'
    writer.size = 5000.0
    writer.run()
    produced = writer.out_file.abspath()
    assert produced == str(tmp_path / 'writer' / 'data.bin')
    assert os.path.getsize(produced) == 5000

    reader = top.add('reader', wrap(remote_models.FileReader()))
    reader.in_file = FileRef(produced, binary=True)
    reader.run()
    assert reader.size == 5000.0
    assert reader.where.endswith('/received.bin') and not reader.where.startswith(str(tmp_path))


def test_job_that_dies_and_timeout(wrap) -> None:
    sleeper = wrap(remote_models.Sleeper(delay=30.0), timeout=0.5)
    with pytest.raises(JobError, match=r'did not finish within 0.5 s \(killed\)'):
        sleeper.run()
    broken = wrap(remote_models.Paraboloid(), python='/no/such/python')
    with pytest.raises(JobError, match=r'the job exited with status 127; its output ends with:'
                                       r'\n.*/no/such/python'):
        broken.run()


def test_wrapper_pickles_without_its_connection(wrap) -> None:
    wrapper = wrap(remote_models.Paraboloid(x=2.0))
    wrapper.run()
    copy = pickle.loads(pickle.dumps(wrapper))
    try:
        assert copy.x == 2.0 and copy.f_xy == wrapper.f_xy
        copy.y = 1.0
        copy.run()
        assert copy.f_xy == 1.0 + 2.0 + 25.0 - 3.0
    finally:
        copy.close()


def test_wrapper_arguments_are_checked(sshd_hosts) -> None:
    with pytest.raises(ValueError, match=r"comp must be a local Component or Assembly, got "
                                         r"'p' \(str\)"):
        SSHWrapper('p', '127.0.0.2')
    top = Assembly()
    top.add('p', remote_models.Paraboloid())
    with pytest.raises(ValueError, match=r"'p' belongs to an assembly"):
        SSHWrapper(top.p, '127.0.0.2')
    with pytest.raises(ValueError, match=r'timeout must be a positive number of seconds or '
                                         r'None, got 0'):
        SSHWrapper(remote_models.Paraboloid(), '127.0.0.2', timeout=0)
