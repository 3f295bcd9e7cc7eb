"""RetryWrapper: flaky components retried, fatal errors not, hung tries killed."""

import os
import subprocess
import sys

import pytest

from openmdao_like import Assembly, Float
from openmdao_like.component import Component
from openmdao_like.distributed import RetryWrapper
from openmdao_like.errors import ConnectError

sys.path.insert(0, os.path.dirname(__file__))
from remote_models import Paraboloid, Scale  # noqa: E402


def count(counter):
    """Tries so far, as the counter file says."""
    if not os.path.exists(counter):
        return 0
    with open(counter) as src:
        return int(src.read())


class Flaky(Component):
    """Fails (with ``error``) until it has been tried ``failures`` times; counts tries in a
    file, so tries in child processes count too."""

    x = Float(1.0, iotype='in')
    y = Float(0.0, iotype='out')

    def __init__(self, counter, failures, error=ConnectionError, hang=False):
        super().__init__()
        self.counter, self.failures, self.error, self.hang = counter, failures, error, hang

    def execute(self):
        tries = count(self.counter)
        with open(self.counter, 'w') as out:
            out.write(str(tries + 1))
        if tries < self.failures:
            if self.hang:
                import time
                time.sleep(3600)
            raise self.error(f'flaky failure {tries + 1}')
        self.y = 2 * self.x


tries = count


def test_flaky_component_succeeds_after_retries(tmp_path):
    counter = str(tmp_path / 'n')
    wrapper = RetryWrapper(Flaky(counter, failures=2), max_retries=2)
    wrapper.x = 4.0
    wrapper.run()
    assert wrapper.y == 8.0
    assert wrapper.n_tries == 3 and tries(counter) == 3


def test_tries_exhausted_raise_the_last_error_with_a_note(tmp_path):
    counter = str(tmp_path / 'n')
    wrapper = RetryWrapper(Flaky(counter, failures=5), max_retries=1)
    with pytest.raises(ConnectionError, match='flaky failure 2') as info:
        wrapper.run()
    assert 'failed 2 times (max_retries=1)' in '\n'.join(info.value.__notes__)
    assert tries(counter) == 2


def test_fatal_and_unlisted_errors_are_not_retried(tmp_path):
    counter = str(tmp_path / 'n')
    fatal = RetryWrapper(Flaky(counter, failures=5, error=ValueError), max_retries=3,
                         retry_on=(Exception,), fatal=(ValueError,))
    with pytest.raises(ValueError, match='flaky failure 1'):
        fatal.run()
    assert tries(counter) == 1
    other = str(tmp_path / 'm')
    unlisted = RetryWrapper(Flaky(other, failures=5, error=KeyError), max_retries=3,
                            retry_on=(ConnectionError,))
    with pytest.raises(KeyError):
        unlisted.run()
    assert tries(other) == 1


def test_timeout_kills_a_hung_try_and_the_next_one_succeeds(tmp_path):
    counter = str(tmp_path / 'n')
    wrapper = RetryWrapper(Flaky(counter, failures=1, hang=True), max_retries=1, timeout=3.0)
    wrapper.x = 5.0
    wrapper.run()
    assert wrapper.y == 10.0 and wrapper.n_tries == 2
    left = subprocess.run(['pgrep', '-f', f'run_job.*oml-retry'], capture_output=True,
                          text=True).stdout
    assert left == ''


def test_timeout_exhausted_raises_timeout_error(tmp_path):
    counter = str(tmp_path / 'n')
    wrapper = RetryWrapper(Flaky(counter, failures=5, hang=True), max_retries=0, timeout=1.0)
    with pytest.raises(TimeoutError, match='did not finish within 1 s and was killed'):
        wrapper.run()


def test_a_child_process_keeps_the_exception_type(tmp_path):
    counter = str(tmp_path / 'n')
    wrapper = RetryWrapper(Flaky(counter, failures=5, error=ZeroDivisionError),
                           max_retries=0, timeout=30.0)
    with pytest.raises(ZeroDivisionError, match='flaky failure 1') as info:
        wrapper.run()
    assert 'Raised remotely by' in '\n'.join(info.value.__notes__)


def test_wrapper_connects_in_an_assembly_like_the_wrapped_component():
    class Top(Assembly):
        def configure(self):
            self.add('a', RetryWrapper(Scale(), max_retries=1))
            self.add('b', Paraboloid())
            self.connect('a.y', 'b.x')
            self.driver.workflow.add(['a', 'b'])

    top = Top()
    top.a.x, top.b.y = 1.5, -4.0
    top.run()
    assert top.a.y == 3.0 and top.b.f_xy == pytest.approx(0.0 - 12.0 - 3.0)
    assert top.a.get_metadata('x')['iotype'] == 'in'
    # the mirrored variables keep their units: m**2 does not connect to m
    with pytest.raises(ConnectError, match="cannot connect 'w.f_xy' to 'b.y'"):
        top.add('w', RetryWrapper(Paraboloid()))
        top.connect('w.f_xy', 'b.y')


@pytest.mark.parametrize('kwargs, match', [
    ({'max_retries': -1}, 'max_retries must be an int >= 0, got -1'),
    ({'max_retries': True}, 'max_retries must be an int >= 0'),
    ({'wait_time': -1.0}, 'wait_time must be a number >= 0, got -1.0'),
    ({'timeout': 0}, 'timeout must be a number > 0 or None, got 0'),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RetryWrapper(Paraboloid(), **kwargs)


def test_bad_exception_lists_and_wrapped_objects_are_refused():
    with pytest.raises(TypeError, match='retry_on must be a tuple of exception types'):
        RetryWrapper(Paraboloid(), retry_on=ValueError)
    with pytest.raises(TypeError, match='expected a Component or Assembly to wrap, got int'):
        RetryWrapper(3)
