"""ExternalCode: a solver script (tests/external_tools/solver.py) run as a component between
other components, here and on a server allocated from the resource allocation manager: files
moved both ways, failures, timeouts, environment, redirections, a parallel DOE, and the life
cycle of the allocated server."""

from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import cloudpickle
import pytest

from openmdao_like import Assembly, Component, File, Float, set_as_top
from openmdao_like.components import ExternalCode, FileMetadata
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import FullFactorial
from openmdao_like.errors import (ExternalCodeError, ExternalCodeTimeout, ModelError, PathError,
                                  RemoteError, ValidationError)
from openmdao_like.execution import LocalExecutor
from openmdao_like.resources import LocalAllocator
from openmdao_like.resources.manager import RAM

SOLVER = str(Path(__file__).resolve().parent / 'external_tools' / 'solver.py')
PY = sys.executable
ALLOCATOR = 'ExternalCodeHost'
ON_SERVER = {'allocator': ALLOCATOR}


def paraboloid(x: float, y: float, scale: float = 1.0) -> float:
    """What the solver computes."""
    return ((x - 3.0) ** 2 + x * y + (y + 4.0) ** 2 - 3.0) * scale


# -- the model ------------------------------------------------------------------------------------
class Writer(Component):
    """Writes its inputs to a file (upstream of the solver)."""

    x = Float(0.0, iotype='in')
    y = Float(0.0, iotype='in')
    xy = File(iotype='out', local_path='xy.dat')

    def execute(self) -> None:
        with open('xy.dat', 'w') as out:
            out.write(f'{self.x!r} {self.y!r}\n')


class Solver(ExternalCode):
    """The solver script, reading File input ``infile`` and writing File output ``outfile``."""

    infile = File(iotype='in', local_path='in.dat')
    outfile = File(iotype='out', local_path='out.dat')
    f_xy = Float(0.0, iotype='out')

    def __init__(self, **kwargs: Any):
        super().__init__(command=[PY, SOLVER, 'in.dat', 'out.dat'], stdout='solver.log',
                         **kwargs)

    def execute(self) -> None:
        super().execute()
        with self.outfile.open() as result:
            self.f_xy = float(result.read())


class Reader(Component):
    """Reads the solver's output file (downstream of the solver)."""

    result = File(iotype='in', local_path='result.dat')
    value = Float(0.0, iotype='out')

    def execute(self) -> None:
        with self.result.open() as result:
            self.value = float(result.read())


def make_model(base: Path, **solver_args: Any) -> Assembly:
    """writer -> solver -> reader, each in its own directory below ``base``."""
    top = set_as_top(Assembly(), str(base))
    for name, comp in (('writer', Writer()), ('solver', Solver(**solver_args)),
                       ('reader', Reader())):
        top.add(name, comp)
        comp.directory = name
    top.connect('writer.xy', 'solver.infile')
    top.connect('solver.outfile', 'reader.result')
    top.driver.workflow.add(['writer', 'solver', 'reader'])
    top.writer.x, top.writer.y = 1.0, 2.0
    return top


@pytest.fixture
def model(tmp_path: Path) -> Iterator[Callable[..., Assembly]]:
    """``model(**solver_args)``: a model below tmp_path, released after the test."""
    made: list[Assembly] = []

    def make(**solver_args: Any) -> Assembly:
        made.append(make_model(tmp_path, **solver_args))
        return made[-1]

    yield make
    for top in made:
        top.pre_delete()


# -- servers and processes ------------------------------------------------------------------------
@pytest.fixture(scope='module')
def allocator() -> Iterator[LocalAllocator]:
    """A LocalAllocator (no load limit) first in the RAM, shut down after the module."""
    local = LocalAllocator(ALLOCATOR, max_load=None)
    RAM.insert_allocator(0, local)
    try:
        yield local
    finally:
        RAM.remove_allocator(local)
        local.shutdown()


@pytest.fixture(params=['here', 'on a server'])
def resources(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Run here ({}) or on a server of the test allocator."""
    if request.param == 'here':
        return {}
    request.getfixturevalue('allocator')
    return dict(ON_SERVER)


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie counts as ended)."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(')', 1)[1].split()[0] in ('Z', 'X')


def processes_with_env(setting: str) -> list[int]:
    """Live processes whose environment holds ``NAME=value``."""
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / 'environ').read_bytes().split(b'\0')
        except OSError:
            continue
        if setting.encode() in environ and not gone(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Wait (bounded) until ``condition()``; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f'{what} did not happen within {limit} s')
        time.sleep(0.05)


def solver_log(base: Path) -> dict[str, str]:
    """The ``cwd`` and ``ppid`` the solver reported in solver/solver.log."""
    text = (base / 'solver' / 'solver.log').read_text()
    return dict(item.split('=', 1) for item in text.split())


# -- runs -----------------------------------------------------------------------------------------
def test_solver_between_components(model: Callable[..., Assembly], tmp_path: Path,
                                   resources: dict[str, Any]) -> None:
    top = model(resources=resources)
    top.run()
    assert top.solver.f_xy == top.reader.value == paraboloid(1.0, 2.0)
    assert top.solver.return_code == 0 and not top.solver.timed_out
    assert (tmp_path / 'solver' / 'out.dat').is_file()
    assert (tmp_path / 'reader' / 'result.dat').is_file()
    assert (tmp_path / 'solver' / 'error.out').read_text() == ''
    first = solver_log(tmp_path)
    if resources:  # it ran in the server's directory: in.dat went there, out.dat came back
        assert first['cwd'] != str(tmp_path / 'solver')
        assert not (Path(first['cwd']) / 'xy.dat').exists()
    else:
        assert first['cwd'] == str(tmp_path / 'solver')

    top.writer.x = 4.0
    top.run()
    assert top.solver.f_xy == top.reader.value == paraboloid(4.0, 2.0)
    assert solver_log(tmp_path)['ppid'] == first['ppid']  # the same server (or this process)


def test_failing_command_names_command_return_code_and_stderr(
        model: Callable[..., Assembly], resources: dict[str, Any]) -> None:
    top = model(resources=resources, env={'SOLVER_FAIL': '3'})
    with pytest.raises(ExternalCodeError) as info:
        top.run()
    err = info.value
    assert isinstance(err, ModelError) and isinstance(err, RuntimeError)
    text = str(err)
    assert text.startswith('solver: ')
    assert repr([PY, SOLVER, 'in.dat', 'out.dat']) in text
    assert 'exited with return code 3' in text
    assert 'solver: the mesh is inverted, giving up' in text and 'diagnostic line 29' in text
    assert 'diagnostic line 0\n' not in text  # only the tail
    assert err.command == [PY, SOLVER, 'in.dat', 'out.dat']
    assert err.returncode == top.solver.return_code == 3
    assert err.stderr_tail.endswith('giving up')
    assert err.host == ('127.0.0.1' if resources else None)
    if resources:
        assert ' on 127.0.0.1 ' in text
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), str(copy), copy.returncode, copy.stderr_tail) == \
        (type(err), text, 3, err.stderr_tail)


def test_timeout_kills_the_process_group(model: Callable[..., Assembly], tmp_path: Path,
                                         resources: dict[str, Any]) -> None:
    setting = f'SOLVER_HANG={tmp_path / "pids"}'
    top = model(resources=resources, env={'SOLVER_HANG': str(tmp_path / 'pids')}, timeout=1.0,
                poll_delay=0.2)
    with pytest.raises(ExternalCodeTimeout) as info:
        top.run()
    assert isinstance(info.value, ExternalCodeError)
    assert 'timed out after 1 s; its process group was killed' in str(info.value)
    assert top.solver.timed_out
    assert top.solver.return_code < 0  # killed by a signal
    wait_for(lambda: not processes_with_env(setting), 'the end of the solver and its child')


def test_env_and_env_vars(model: Callable[..., Assembly], resources: dict[str, Any]) -> None:
    top = model(resources=resources, env={'SOLVER_SCALE': '2'})
    top.run()
    assert top.solver.f_xy == paraboloid(1.0, 2.0, scale=2.0)
    top.solver.env_vars = {'SOLVER_SCALE': '3'}
    assert top.solver.env == {'SOLVER_SCALE': '3'}
    top.run()
    assert top.reader.value == paraboloid(1.0, 2.0, scale=3.0)


def test_missing_executable(tmp_path: Path, resources: dict[str, Any]) -> None:
    code = set_as_top(ExternalCode(command=['no-such-solver-4711', 'in.dat'],
                                   resources=resources), str(tmp_path))
    try:
        with pytest.raises(ExternalCodeError) as info:
            code.run()
    finally:
        code.pre_delete()
    assert "cannot run ['no-such-solver-4711', 'in.dat']" in str(info.value)
    assert "executable 'no-such-solver-4711' not found" in str(info.value)
    assert code.return_code == info.value.returncode == 127


def test_missing_output_file(model: Callable[..., Assembly], tmp_path: Path,
                             resources: dict[str, Any]) -> None:
    top = model(resources=resources)
    top.run()  # leaves an out.dat behind: it must not pass for the next run's result
    top.solver.env = {'SOLVER_NO_OUTPUT': '1'}
    with pytest.raises(ExternalCodeError) as info:
        top.run()
    text = str(info.value)
    assert 'exited with return code 0 but did not write the file of output solver.outfile ' \
           "'out.dat'" in text
    assert str(tmp_path / 'solver' / 'out.dat') in text


def test_stdin_and_stdout_redirection(tmp_path: Path, resources: dict[str, Any]) -> None:
    (tmp_path / 'xy.txt').write_text('2.0 -1.0\n')
    code = set_as_top(ExternalCode(command=[PY, SOLVER, '-'], stdin='xy.txt', stdout='f.txt',
                                   stderr=ExternalCode.STDOUT, resources=resources),
                      str(tmp_path))
    try:
        code.run()
    finally:
        code.pre_delete()
    assert float((tmp_path / 'f.txt').read_text()) == paraboloid(2.0, -1.0)
    assert not (tmp_path / 'error.out').exists()


class ParaboloidCode(ExternalCode):
    """The solver wrapped the classic way: inputs to a file, run, parse the output file."""

    x = Float(0.0, iotype='in', low=-10.0, high=10.0)
    y = Float(0.0, iotype='in', low=-10.0, high=10.0)
    f_xy = Float(0.0, iotype='out')

    def __init__(self) -> None:
        super().__init__(command=[PY, SOLVER, 'in.dat', 'out.dat'],
                         external_files=[FileMetadata('in.dat', input=True),
                                         {'path': 'out.dat', 'output': True}])

    def execute(self) -> None:
        with open('in.dat', 'w') as out:
            out.write(f'{self.x!r} {self.y!r}\n')
        super().execute()
        with open('out.dat') as result:
            self.f_xy = float(result.read())


def test_parallel_doe_over_external_code(tmp_path: Path) -> None:
    top = set_as_top(Assembly(), str(tmp_path))
    top.add('code', ParaboloidCode())
    top.add('driver', DOEDriver(FullFactorial(num_levels=3), sequential=False,
                                executor=LocalExecutor(n_workers=2)))
    top.driver.workflow.add('code')
    top.driver.add_parameter('code.x', low=-10.0, high=10.0)
    top.driver.add_parameter('code.y', low=-10.0, high=10.0)
    top.driver.add_response('code.f_xy')
    top.run()
    results = top.driver.results
    assert [c.status for c in results] == ['ok'] * 9, [c.error for c in results]
    assert [c.outputs['code.f_xy'] for c in results] == \
        [paraboloid(c.inputs['code.x'], c.inputs['code.y']) for c in results]


# -- the allocated server -------------------------------------------------------------------------
def test_server_is_kept_then_released(model: Callable[..., Assembly], tmp_path: Path,
                                      allocator: LocalAllocator) -> None:
    top = model(resources=ON_SERVER)
    top.run()
    first = int(solver_log(tmp_path)['ppid'])  # the server the command ran under
    assert allocator.in_use == 1

    for dumps in (pickle.dumps, cloudpickle.dumps):  # its state holds no live server
        copy = pickle.loads(dumps(top.solver))
        assert copy.resources == ON_SERVER and allocator.in_use == 1

    top.solver.resources = {**ON_SERVER, 'localhost': True}  # new resources: released at once
    assert allocator.in_use == 0
    wait_for(lambda: gone(first), f'the end of server process {first}')
    top.run()
    second = int(solver_log(tmp_path)['ppid'])
    assert second != first and allocator.in_use == 1

    top.pre_delete()
    assert allocator.in_use == 0
    wait_for(lambda: gone(second), f'the end of server process {second}')


def test_lost_server_is_replaced(model: Callable[..., Assembly], tmp_path: Path,
                                 allocator: LocalAllocator) -> None:
    top = model(resources=ON_SERVER)
    top.run()
    lost = int(solver_log(tmp_path)['ppid'])
    os.kill(lost, signal.SIGKILL)  # a server this test allocated
    wait_for(lambda: gone(lost), f'the end of server process {lost}')
    with pytest.raises(RemoteError) as info:
        top.run()
    assert 'solver: the server on 127.0.0.1 was released; the next run allocates a new one' in \
        info.value.__notes__
    top.run()
    assert top.solver.f_xy == paraboloid(1.0, 2.0)
    assert int(solver_log(tmp_path)['ppid']) != lost and allocator.in_use == 1


def test_server_of_a_collected_component_is_released(tmp_path: Path,
                                                      allocator: LocalAllocator) -> None:
    code = set_as_top(ExternalCode(command=[PY, '-c', 'import os; print(os.getppid())'],
                                   stdout='ppid.txt', resources=ON_SERVER), str(tmp_path))
    code.run()
    pid = int((tmp_path / 'ppid.txt').read_text())
    assert allocator.in_use == 1
    del code
    gc.collect()
    assert allocator.in_use == 0
    wait_for(lambda: gone(pid), f'the end of server process {pid}')


# -- bad settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize('settings, error, words', [
    ({'command': []}, ValidationError, 'code.command: expected a non-empty list'),
    ({'env': {'BAD-NAME': '1'}}, ValidationError, "code.env: expected variable names made of "
                                                  "letters, digits and _ (not starting with a "
                                                  "digit), got 'BAD-NAME'"),
    ({'resources': {'allocatr': ALLOCATOR}}, ValueError, "code.resources: unknown key "
                                                         "'allocatr' (did you mean "
                                                         "'allocator'?)"),
    ({'external_files': [{'path': 'nothere.dat', 'input': True}]}, ExternalCodeError,
     "input file (external_files) 'nothere.dat' is missing"),
    ({'stdin': 'nothere.txt'}, ExternalCodeError, "stdin file 'nothere.txt' is missing"),
])
def test_bad_settings_found_when_run(tmp_path: Path, settings: dict[str, Any],
                                     error: type[Exception], words: str) -> None:
    top = set_as_top(Assembly(), str(tmp_path))
    top.add('code', ExternalCode(**{'command': [PY, '-c', 'pass'], **settings}))
    with pytest.raises(error) as info:
        top.code.run()
    assert words in str(info.value)


@pytest.mark.parametrize('settings, error, words', [
    ({'stdin': '/etc/passwd'}, PathError, "ExternalCode.stdin: expected a path relative to "
                                          "the component directory"),
    ({'stdout': '../up.txt'}, PathError, "ExternalCode.stdout: expected a path relative"),
    ({'stderr': 5}, ValidationError, 'ExternalCode.stderr: expected None, '
                                     'ExternalCode.DEV_NULL, ExternalCode.STDOUT or a file '
                                     'name relative to the component directory, got 5 (int)'),
    ({'external_files': [{'path': 'a.dat', 'inptu': True}]}, ValidationError,
     "ExternalCode.external_files[0]: unknown key 'inptu'"),
    ({'external_files': [{'path': 'a.dat', 'input': 'yes'}]}, ValidationError,
     "ExternalCode.external_files[0].input: expected True or False, got 'yes' (str)"),
    ({'external_files': [{'path': '*/a.dat', 'output': True}]}, ValidationError,
     'expected a glob pattern in the file name only'),
    ({'external_files': 'a.dat'}, ValidationError,
     'ExternalCode.external_files: expected a list of FileMetadata or dicts'),
    ({'command': 'solver in.dat'}, ValidationError, "command: expected a list of a str"),
    ({'timeout': -1.0}, ValidationError, 'timeout'),
])
def test_bad_settings_refused_when_set(settings: dict[str, Any], error: type[Exception],
                                       words: str) -> None:
    with pytest.raises(error) as info:
        ExternalCode(**settings)
    assert words in str(info.value)


@pytest.mark.parametrize('settings, words', [
    ({'timeout': -1.0}, ('timeout', 'a float in [0.0, inf]', '-1.0')),
    ({'timeout': 'soon'}, ('timeout', 'a float in [0.0, inf]', "'soon' (str)")),
    ({'poll_delay': -0.5}, ('poll_delay', 'a float in [0.0, inf]', '-0.5')),
    ({'check_external_outputs': 'yes'}, ('check_external_outputs', 'a bool', "'yes' (str)")),
    ({'command': ['solver', 1]}, ('command', 'a str', '1 (int)')),
    ({'env': {'SCALE': 2}}, ('env', 'a str', '2 (int)')),
    ({'env': ['SCALE=2']}, ('ExternalCode.env', 'a dict of variable names to str values',
                            "['SCALE=2'] (list)")),
    ({'resources': ['LocalHost']}, ('ExternalCode.resources', 'a resource description (a dict',
                                    "['LocalHost'] (list)")),
    ({'stdout': 3.5}, ('ExternalCode.stdout', 'ExternalCode.DEV_NULL or a file name relative '
                                              'to the component directory', '3.5 (float)')),
])
def test_bad_values_name_the_setting_what_it_accepts_and_the_value(
        settings: dict[str, Any], words: tuple[str, str, str]) -> None:
    with pytest.raises(ValueError) as info:
        ExternalCode(**settings)
    assert isinstance(info.value, ValidationError)
    for part in words:
        assert part in str(info.value)
