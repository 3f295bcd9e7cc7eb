"""The files ``openmdao-like plugin quickstart`` writes, one class template per entry-point group.

Each template is a `string.Template` filled with `substitute`, so a placeholder left unfilled is
an error here rather than a broken plugin. Placeholders: ``$name`` (distribution and package),
``$cls`` (class), ``$group`` (full entry-point group), ``$version``, ``$kind`` (what the class
is, in words).
"""

from __future__ import annotations

from string import Template
from typing import NamedTuple

#: Groups quickstart writes a template for (short names, in the order --help lists them).
#: ``allocator`` waits for the resources layer.
OFFERED_GROUPS = ('component', 'driver', 'doegenerator', 'caserecorder', 'variable')


class GroupTemplate(NamedTuple):
    """What a plugin of one group holds: the class in words, its module's imports (standard
    library lines, then openmdao_like and others) and code, and the same for its test."""

    kind: str
    stdlib: tuple[str, ...]
    imports: str
    body: str
    test_stdlib: tuple[str, ...]
    test_imports: str
    test: str


PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "$name"
version = "$version"
description = "An openmdao_like plugin: the $kind $cls"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["openmdao_like"]

# How openmdao_like finds the class: create('$name.$cls').
[project.entry-points."$group"]
"$name.$cls" = "$name:$cls"

[tool.setuptools]
packages = ["$name"]

[tool.pytest.ini_options]
testpaths = ["tests"]
''')

INIT = Template('''\
"""$name: an openmdao_like plugin providing the $kind `$cls`.

Installed, the class is found through its entry point ``$name.$cls``
(group ``$group``)::

    from openmdao_like import create
    obj = create('$name.$cls')
"""

from __future__ import annotations

$stdlib_imports

$imports

try:
    __version__ = version('$name')
except PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = 'unknown'


$body


__all__ = ['$cls', '__version__']
''')

README = Template('''\
# $name

An openmdao_like plugin: the $kind `$cls`, registered as the entry point `$name.$cls` in the
group `$group` (see `pyproject.toml`). Written by `openmdao-like plugin quickstart`; replace the
example code in `$name/__init__.py` and `tests/test_$name.py` with your own.

## Install and use

```sh
pip install .                                  # or: pip install -e .  while developing
openmdao-like plugin list --group $short_group     # shows $name.$cls $version
```

```python
from openmdao_like import create
obj = create('$name.$cls')                 # or create('$name.$cls', version='$version')
```

## Test

```sh
pip install . && pytest
```

The test creates the class through its entry point, so it runs against the installed plugin.

## Build a wheel

```sh
openmdao-like plugin build .                   # writes dist/$name-$version-py3-none-any.whl
```

The version is written once, in `pyproject.toml`; `$name.__version__` reads it from the
installed metadata.
''')


TEST_MODULE = Template('''\
"""Tests of the installed plugin: $cls is created through its entry point and works."""

from __future__ import annotations

$stdlib_imports

$imports

import $name


$test
''')


#: The component the generated tests of driver-side plugins run (DOE generators, recorders).
_TEST_PARABOLOID = '''\
class Paraboloid(Component):
    x = Float(0.0, iotype='in', low=-50.0, high=50.0)
    y = Float(0.0, iotype='in', low=-50.0, high=50.0)
    f_xy = Float(0.0, iotype='out')

    def execute(self):
        self.f_xy = (self.x - 3.0) ** 2 + self.x * self.y + (self.y + 4.0) ** 2 - 3.0
'''

COMPONENT = GroupTemplate(
    kind='component',
    stdlib=(),
    imports='from openmdao_like import Component, Float',
    body='''\
class $cls(Component):
    """y = 2*x + 1: replace the variables and `execute` with your own model."""

    x = Float(0.0, iotype='in', desc='the input')
    y = Float(0.0, iotype='out', desc='the output')

    def execute(self) -> None:
        """Compute the outputs from the inputs."""
        self.y = 2.0 * self.x + 1.0''',
    test_stdlib=(),
    test_imports='from openmdao_like import Assembly, create, set_as_top',
    test='''\
def test_create_through_the_entry_point():
    comp = create('$name.$cls', version=$name.__version__, x=3.0)
    assert type(comp) is $name.$cls
    comp.run()
    assert comp.y == 7.0


def test_runs_in_a_model():
    top = set_as_top(Assembly())
    top.add('comp', create('$name.$cls'))
    top.driver.workflow.add('comp')
    top.set('comp.x', -1.5)
    top.run()
    assert top.get('comp.y') == -2.0


def test_bad_input_is_refused():
    comp = create('$name.$cls')
    with pytest.raises(ValueError, match='x: expected a float'):
        comp.x = 'one'
''')


DRIVER = GroupTemplate(
    kind='driver',
    stdlib=('from typing import Any',),
    imports='from openmdao_like import Driver',
    body='''\
class $cls(Driver):
    """Runs its workflow ``iterations`` times per run, recording each iteration: replace
    `continue_iteration` and `pre_iteration` with your own iteration logic.

    Parameters
    ----------
    iterations : int
        How many times one run executes the workflow (>= 1).
    """

    def __init__(self, iterations: int = 3, **traits: Any) -> None:
        super().__init__(**traits)
        self.iterations = iterations

    @property
    def iterations(self) -> int:
        """How many times one run executes the workflow."""
        return self._iterations

    @iterations.setter
    def iterations(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'{self.get_pathname() or type(self).__name__}: iterations must '
                             f'be an int >= 1, got {value!r} ({type(value).__name__})')
        self._iterations = value

    def continue_iteration(self) -> bool:
        """Whether another iteration should run."""
        return self.current_iteration < self.iterations

    def post_iteration(self) -> None:
        """Record the iteration (parameters, objectives, responses) and count it."""
        self.record_iteration()
        super().post_iteration()''',
    test_stdlib=(),
    test_imports='from openmdao_like import Assembly, Component, Float, create, set_as_top',
    test='''\
class Increment(Component):
    x = Float(0.0, iotype='in')
    y = Float(0.0, iotype='out')

    def execute(self):
        self.y = self.x + 1.0


def make_model(**settings):
    top = set_as_top(Assembly())
    top.add('inc', Increment())
    top.add('driver', create('$name.$cls', **settings))
    top.driver.workflow.add('inc')
    return top


def test_runs_the_workflow_the_set_number_of_times():
    top = make_model(iterations=4)
    assert type(top.driver) is $name.$cls
    top.run()
    assert top.inc.exec_count == 4
    assert top.driver.current_iteration == 4
    top.driver.iterations = 2
    top.run()
    assert top.inc.exec_count == 6


def test_bad_setting_is_refused():
    with pytest.raises(ValueError, match=r'iterations must be an int >= 1, got 0'):
        create('$name.$cls', iterations=0)
''')


DOEGENERATOR = GroupTemplate(
    kind='DOE generator',
    stdlib=('from collections.abc import Iterator, Sequence', 'from typing import Any'),
    imports='''\
import numpy as np

from openmdao_like.drivers.doe import DOEGenerator''',
    body='''\
class $cls(DOEGenerator):
    """A star design: the centre of the parameter box, then every parameter element at its
    low and at its high bound with the others at the centre (2*n + 1 cases for n elements).
    Replace `__call__` and `num_cases` with your own design.

    Parameters
    ----------
    include_centre : bool
        Start with the centre point (default True).
    """

    def __init__(self, include_centre: bool = True) -> None:
        # Settings are attributes named like the constructor's arguments (a saved model
        # records a generator by reading them).
        self.include_centre = bool(include_centre)

    def __call__(self, params: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """Check ``params`` (name, low, high, size) and iterate over the cases."""
        names, sizes, lows, highs = [], [], [], []
        for param in params:
            size = getattr(param, 'size', 1)
            bounds = [np.broadcast_to(np.asarray(b, dtype=float), (size,))
                      for b in (param.low, param.high)]
            if not (np.all(np.isfinite(bounds[0])) and np.all(np.isfinite(bounds[1]))
                    and np.all(bounds[0] < bounds[1])):
                raise ValueError(f'{type(self).__name__}: parameter {param.name!r} needs '
                                 f'finite low < high, got low={param.low!r}, '
                                 f'high={param.high!r}')
            names.append(param.name)
            sizes.append(size)
            lows.append(bounds[0])
            highs.append(bounds[1])
        if not names:
            raise ValueError(f'{type(self).__name__}: needs at least one parameter, got none')
        low, high = np.concatenate(lows), np.concatenate(highs)
        centre = (low + high) / 2.0
        rows = [centre] if self.include_centre else []
        for i in range(low.size):
            for bound in (low, high):
                row = centre.copy()
                row[i] = bound[i]
                rows.append(row)
        return (self._case(names, sizes, row) for row in rows)

    @staticmethod
    def _case(names: list[str], sizes: list[int], row: np.ndarray) -> dict[str, Any]:
        """One flat row -> {parameter name: float, or an array for an array parameter}."""
        case, start = {}, 0
        for name, size in zip(names, sizes):
            chunk = row[start:start + size]
            case[name] = float(chunk[0]) if size == 1 else chunk.copy()
            start += size
        return case

    def num_cases(self, params: Sequence[Any]) -> int:
        """2*n + 1 cases (2*n without the centre) for n parameter elements."""
        n = sum(getattr(param, 'size', 1) for param in params)
        return 2 * n + int(self.include_centre)''',
    test_stdlib=(),
    test_imports='''\
from openmdao_like import Assembly, Component, Float, create, set_as_top
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import ParamSpec''',
    test=_TEST_PARABOLOID + '''\


def test_cases_scaled_into_the_bounds():
    gen = create('$name.$cls')
    assert type(gen) is $name.$cls
    params = [ParamSpec('p.x', -10.0, 10.0), ParamSpec('p.y', 0.0, 20.0)]
    cases = list(gen(params))
    assert gen.num_cases(params) == len(cases) == 5
    assert cases[0] == {'p.x': 0.0, 'p.y': 10.0}
    assert {'p.x': -10.0, 'p.y': 10.0} in cases and {'p.x': 0.0, 'p.y': 20.0} in cases


def test_in_a_doe_driver():
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('driver', DOEDriver(create('$name.$cls', include_centre=False)))
    top.driver.workflow.add('p')
    top.driver.add_parameter('p.x', low=-10.0, high=10.0)
    top.driver.add_parameter('p.y', low=0.0, high=20.0)
    top.driver.add_response('p.f_xy')
    top.run()
    results = top.driver.results
    assert len(results) == 4 and all(case.status == 'ok' for case in results)
    assert results[0].outputs['p.f_xy'] == pytest.approx(169.0 - 100.0 + 196.0 - 3.0)


def test_unbounded_parameter_is_refused():
    with pytest.raises(ValueError, match="parameter 'p.x' needs finite low < high"):
        list(create('$name.$cls')([ParamSpec('p.x', 1.0, 1.0)]))
''')


CASERECORDER = GroupTemplate(
    kind='case recorder',
    stdlib=('import ast', 'from typing import IO, Any'),
    imports='''\
from openmdao_like.cases import Case
from openmdao_like.recorders import CaseRecorder''',
    body='''\
class $cls(CaseRecorder):
    """Writes one tab-separated line per case: the id, the status, then ``path=value`` for
    every input and output (values as Python literals). Replace `_record` with your format.

    Parameters
    ----------
    path : str or os.PathLike
        File the cases are written to (overwritten at startup).
    """

    def _reset(self) -> None:
        """No file open (also after unpickling)."""
        super()._reset()
        self._fh: IO[str] | None = None

    def _open(self) -> None:
        self._fh = open(self.path, 'w', encoding='utf-8')

    def _record(self, case: Case) -> None:
        fields = [str(case.id), case.status]
        for variables in (case.inputs, case.outputs):
            fields.extend(f'{name}={_literal(value)}' for name, value in variables.items())
        self._fh.write('\\t'.join(fields) + '\\n')

    def _flush(self) -> None:
        self._fh.flush()

    def _close(self) -> None:
        self._fh.close()
        self._fh = None


def _literal(value: Any) -> str:
    """A value as Python literal text (numpy scalars and arrays as plain numbers and lists)."""
    if hasattr(value, 'tolist'):
        value = value.tolist()
    return repr(value)


def read_cases(path: str) -> list[dict[str, Any]]:
    """The cases a `$cls` wrote: dicts with ``id``, ``status`` and one key per
    variable."""
    rows = []
    with open(path, encoding='utf-8') as fh:
        for line in fh:
            case_id, status, *pairs = line.rstrip('\\n').split('\\t')
            row: dict[str, Any] = {'id': int(case_id), 'status': status}
            for pair in pairs:
                name, _, text = pair.partition('=')
                row[name] = ast.literal_eval(text)
            rows.append(row)
    return rows''',
    test_stdlib=('import pickle',),
    test_imports='''\
from openmdao_like import Assembly, Component, Float, create, set_as_top
from openmdao_like.cases import Case
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import FullFactorial''',
    test=_TEST_PARABOLOID + '''\


def test_records_every_case_of_a_doe(tmp_path):
    path = tmp_path / 'cases.txt'
    recorder = create('$name.$cls', path=path)
    assert type(recorder) is $name.$cls
    pickle.loads(pickle.dumps(recorder))  # recorders are shipped to workers before startup
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('driver', DOEDriver(FullFactorial(num_levels=2)))
    top.driver.workflow.add('p')
    top.driver.add_parameter('p.x', low=-1.0, high=1.0)
    top.driver.add_parameter('p.y', low=0.0, high=2.0)
    top.driver.add_response('p.f_xy')
    top.recorders = [recorder]
    top.run()
    rows = $name.read_cases(path)
    assert [row['id'] for row in rows] == [0, 1, 2, 3]
    assert all(row['status'] == 'ok' for row in rows)
    assert rows[3] == {'id': 3, 'status': 'ok', 'p.x': 1.0, 'p.y': 2.0, 'p.f_xy': 39.0}


def test_recording_before_startup_is_refused(tmp_path):
    recorder = create('$name.$cls', path=tmp_path / 'cases.txt')
    with pytest.raises(ValueError, match='not started'):
        recorder.record(Case(0, {'p.x': 1.0}))
''')


VARIABLE = GroupTemplate(
    kind='variable type',
    stdlib=('import numbers', 'from typing import Any'),
    imports='from openmdao_like.variables.base import Reject, Variable',
    body='''\
class $cls(Variable):
    """A fraction: a float in [0, 1] (ints are accepted and stored as floats). Replace
    `check_value` and `type_desc` with your own rule.

    Use it like any variable: ``eta = $cls(0.9, iotype='in', desc='efficiency')``.
    """

    type_desc = 'a float in [0, 1]'
    default_value = 0.0

    def check_value(self, value: Any) -> float:
        """Return ``value`` as a float, or raise `Reject` (the error then names the path)."""
        is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if is_number and 0.0 <= value <= 1.0:
            return float(value)
        raise Reject

    def proves(self, src: Any) -> bool:
        """A connection from another `$cls` needs no check of the values it carries."""
        return isinstance(src, $cls)''',
    test_stdlib=(),
    test_imports='from openmdao_like import Assembly, Component, Float, create, set_as_top',
    test='''\
def make_class(default=0.9):
    class Motor(Component):
        eta = create('$name.$cls', default_value=default, iotype='in',
                     desc='efficiency')
        power = Float(0.0, iotype='out')

        def execute(self):
            self.power = 100.0 * self.eta

    return Motor


def test_declares_checks_and_runs():
    assert type(create('$name.$cls')) is $name.$cls
    motor = make_class()()
    assert motor.get_metadata('eta', 'vartype') == '$cls'
    assert motor.get_metadata('eta', 'desc') == 'efficiency'
    assert motor.eta == 0.9
    motor.eta = 1
    assert motor.eta == 1.0 and type(motor.eta) is float
    motor.eta = 0.5
    motor.run()
    assert motor.power == 50.0


def test_bad_value_names_the_variable():
    top = set_as_top(Assembly())
    top.add('motor', make_class()())
    with pytest.raises(ValueError) as info:
        top.motor.eta = 1.5
    assert str(info.value) == 'motor.eta: expected a float in [0, 1], got 1.5 (float)'


def test_bad_default_is_refused_when_the_class_is_defined():
    with pytest.raises(ValueError, match='default value 2.0'):
        make_class(default=2.0)
''')


TEMPLATES = {'component': COMPONENT, 'driver': DRIVER, 'doegenerator': DOEGENERATOR,
             'caserecorder': CASERECORDER, 'variable': VARIABLE}
assert tuple(TEMPLATES) == OFFERED_GROUPS


def render_plugin(name: str, cls: str, group: str, version: str) -> dict[str, str]:
    """The files of a new plugin: relative path -> text. ``group`` is a full group name of
    one of `OFFERED_GROUPS`."""
    short = group.rpartition('.')[2]
    spec = TEMPLATES[short]
    values = {'name': name, 'cls': cls, 'group': group, 'short_group': short,
              'version': version, 'kind': spec.kind}
    module = dict(values, stdlib_imports=_stdlib(spec.stdlib + (_METADATA_IMPORT,)),
                  imports=spec.imports, body=Template(spec.body).substitute(values))
    test_head = '\n\n'.join(filter(None, [_stdlib(spec.test_stdlib), 'import pytest']))
    test = dict(values, stdlib_imports=test_head,
                imports=spec.test_imports, test=Template(spec.test).substitute(values))
    return {
        'pyproject.toml': PYPROJECT.substitute(values),
        'README.md': README.substitute(values),
        f'{name}/__init__.py': INIT.substitute(module),
        f'tests/test_{name}.py': TEST_MODULE.substitute(test),
    }


_METADATA_IMPORT = 'from importlib.metadata import PackageNotFoundError, version'


def _stdlib(lines: tuple[str, ...]) -> str:
    """Standard-library import lines in isort's order: ``import x`` lines, then ``from x``."""
    return '\n'.join(sorted(set(lines), key=lambda line: (line.startswith('from '), line)))


__all__ = ['OFFERED_GROUPS', 'TEMPLATES', 'GroupTemplate', 'render_plugin']
