"""Declared options of drivers, DOE generators and recorders: every option of every class refuses
a misspelt name, a wrong type and an out-of-range or not-allowed value with a message naming the
class (or the driver's path), the option, what it accepts and what was given; attributes are
checked like keywords; user subclasses declare options the OpenMDAO 3 way; saved models keep
their option values.

The bad values are generated from each declaration (its types, values and bounds), so a new
option is covered without touching this file; an option checked only by a ``check`` function
needs its bad values in `CHECKED_ONLY` (a test fails until it has them).
"""

from __future__ import annotations

from typing import Any

import pytest

from openmdao_like import Assembly, Component, Float, set_as_top
from openmdao_like.compat import COBYLAdriver, CONMINdriver, DOEdriver, SLSQPdriver
from openmdao_like.drivers import (CaseIteratorDriver, DOEDriver, Driver, FixedPointIterator,
                                   RunOnce, ScipyOptimizer)
from openmdao_like.drivers.doe import (CSVFile, FullFactorial, LatinHypercube, ListGenerator,
                                       Uniform)
from openmdao_like.errors import RecorderError, ValidationError, describe
from openmdao_like.execution import LocalExecutor
from openmdao_like.options import OptionError, OptionTypeError, UnknownOptionError
from openmdao_like.persistence import load
from openmdao_like.recorders import CSVRecorder, JSONRecorder, SQLiteRecorder

#: Every class with declared options, and the arguments it needs.
CLASSES: dict[type, dict[str, Any]] = {
    RunOnce: {}, CaseIteratorDriver: {}, DOEDriver: {}, ScipyOptimizer: {},
    FixedPointIterator: {}, SLSQPdriver: {}, COBYLAdriver: {}, CONMINdriver: {}, DOEdriver: {},
    FullFactorial: {}, LatinHypercube: {}, Uniform: {}, CSVFile: {'path': 'cases.csv'},
    ListGenerator: {'cases': [{'p.x': 1.0}]}, CSVRecorder: {'path': 'cases.csv'},
    JSONRecorder: {'path': 'cases.jsonl'}, SQLiteRecorder: {'path': 'cases.sqlite'},
}

#: Bad values of options that only a check function judges: (wrong type, not allowed).
CHECKED_ONLY: dict[str, tuple[Any, Any]] = {
    'cases': (5, None),                   # CaseIteratorDriver, ListGenerator
    'generator': (42, None),              # DOEDriver (None: the default generator)
    'method': (42, 'BFGSX'),              # ScipyOptimizer
}
#: Not-allowed values of options whose declaration has no values or bounds, by class.option.
NOT_ALLOWED: dict[str, Any] = {'FullFactorial.num_levels': 1, 'CSVFile.path': ''}
#: Wrong-type candidates, the first one an option does not accept is used.
WRONG_TYPES = ('text', 1.5, object())


def make(cls: type, **kwargs: Any) -> Any:
    return cls(**{**CLASSES[cls], **kwargs})


def option_params() -> list:
    """(class, option name) for every declared option of every class."""
    return [pytest.param(cls, name, id=f'{cls.__name__}.{name}')
            for cls in CLASSES for name in make(cls).declared_options]


def declaration(cls: type, name: str) -> Any:
    return make(cls).declared_options.declaration(name)


def wrong_type(cls: type, name: str) -> Any:
    """A value of a type the option does not take."""
    decl = declaration(cls, name)
    if decl.types is None:
        assert name in CHECKED_ONLY, f'{cls.__name__}.{name}: add its bad values to CHECKED_ONLY'
        return CHECKED_ONLY[name][0]
    return next(value for value in WRONG_TYPES if not isinstance(value, decl.types))


#: What `not_allowed` says of an option that takes every value of its type.
NONE = object()


def not_allowed(cls: type, name: str) -> Any:
    """A value of the right type that the option refuses (`NONE` if there is none)."""
    decl = declaration(cls, name)
    if decl.values is not None:
        return 'bogus'
    kind = (decl.types or (float,))[0]
    if decl.lower is not None:
        return kind(decl.lower) if decl.exclude_lower else kind(decl.lower - 1)
    if decl.upper is not None:
        return kind(decl.upper) if decl.exclude_upper else kind(decl.upper + 1)
    if name in CHECKED_ONLY and CHECKED_ONLY[name][1] is not None:
        return CHECKED_ONLY[name][1]
    if f'{cls.__name__}.{name}' in NOT_ALLOWED:
        return NOT_ALLOWED[f'{cls.__name__}.{name}']
    return NONE


def restricted_params() -> list:
    """(class, option name) for every option that refuses some value of its own type."""
    return [param for param in option_params() if not_allowed(*param.values) is not NONE]


def assert_names_everything(message: str, owner: str, name: str, decl: Any, value: Any) -> None:
    """The message names the owner, the option, what it accepts and the value given."""
    assert message.startswith(f'{owner}: '), message
    assert name in message and describe(value) in message, message
    assert decl.accepts in message, message


# -- unknown names ---------------------------------------------------------------------------

@pytest.mark.parametrize('cls, name', option_params())
def test_misspelt_option_is_refused_with_the_closest_names(cls, name):
    typo = name[:-1] if len(name) > 3 else name + 'x'
    with pytest.raises(UnknownOptionError) as info:
        make(cls, **{typo: 1})
    message = str(info.value)
    assert isinstance(info.value, TypeError)
    assert message.startswith(cls.__name__) and repr(typo) in message, message
    assert 'did you mean' in message and repr(name) in message, message


@pytest.mark.parametrize('cls', list(CLASSES), ids=lambda cls: cls.__name__)
def test_unknown_keyword_is_refused(cls):
    with pytest.raises(UnknownOptionError, match=rf"^{cls.__name__}: unknown option 'frobnicate'"):
        make(cls, frobnicate=1)


@pytest.mark.parametrize('make_it, text', [
    (lambda: ScipyOptimizer(methd='COBYLA'), "ScipyOptimizer: unknown option 'methd'; did you "
                                             "mean 'method'?"),
    (lambda: FixedPointIterator(tolerence=1e-3), "FixedPointIterator: unknown option "
                                                 "'tolerence'; did you mean 'tolerance'?"),
    (lambda: CSVRecorder('x.csv', bufer_size=3), "CSVRecorder: unknown option 'bufer_size'; "
                                                 "did you mean 'buffer_size'?"),
    (lambda: LatinHypercube(20, sed=1), "LatinHypercube: unknown option 'sed'; did you mean "
                                        "'seed'?"),
])
def test_classic_typos(make_it, text):
    with pytest.raises(TypeError) as info:
        make_it()
    assert str(info.value).startswith(text)


def test_a_driver_keyword_may_set_a_variable():
    class Counting(RunOnce):
        limit = Float(3.0, iotype='in')

    assert Counting(limit=5.0).limit == 5.0
    with pytest.raises(UnknownOptionError, match=r"^Counting: unknown option 'limt'; did you "
                                                 r"mean 'limit'\? \(options: record; variables: "
                                                 r"limit\)"):
        Counting(limt=5.0)


# -- bad values ------------------------------------------------------------------------------

@pytest.mark.parametrize('cls, name', option_params())
def test_wrong_type_is_refused(cls, name):
    bad = wrong_type(cls, name)
    with pytest.raises(OptionTypeError) as info:
        make(cls, **{name: bad})
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    owner = make(cls).declared_options.owner if name != 'path' else cls.__name__
    assert_names_everything(str(info.value), owner, name, declaration(cls, name), bad)


@pytest.mark.parametrize('cls, name', restricted_params())
def test_value_out_of_range_or_not_allowed_is_refused(cls, name):
    bad = not_allowed(cls, name)
    with pytest.raises(OptionError) as info:
        make(cls, **{name: bad})
    assert not isinstance(info.value, TypeError)
    owner = make(cls).declared_options.owner if name != 'path' else cls.__name__
    assert_names_everything(str(info.value), owner, name, declaration(cls, name), bad)


@pytest.mark.parametrize('cls, name', option_params())
def test_option_set_as_an_attribute_is_checked(cls, name):
    obj = make(cls)
    before = getattr(obj, name)
    bad = wrong_type(cls, name)
    with pytest.raises(OptionTypeError) as info:
        setattr(obj, name, bad)
    assert_names_everything(str(info.value), obj.declared_options.owner, name,
                            declaration(cls, name), bad)
    assert getattr(obj, name) is before


def test_errors_keep_each_familys_own_type():
    with pytest.raises(ValidationError):
        FixedPointIterator(tolerance=-1.0)
    with pytest.raises(ValidationError):
        FullFactorial(num_levels=1)
    with pytest.raises(RecorderError, match=r"^SQLiteRecorder\('x.db'\): batch_size must be an "
                                            r"int >= 1, got 0 \(int\)$"):
        SQLiteRecorder('x.db', batch_size=0)
    rec = CSVRecorder('x.csv')
    with pytest.raises(RecorderError) as info:
        rec.buffer_size = 'big'
    assert isinstance(info.value, OptionTypeError) and rec.buffer_size == 1000


class Paraboloid(Component):
    x = Float(0.0, iotype='in', low=-50.0, high=50.0)
    f = Float(iotype='out')

    def execute(self) -> None:
        self.f = (self.x - 3.0) ** 2


@pytest.mark.parametrize('driver, owner', [
    (ScipyOptimizer(), 'driver (ScipyOptimizer)'), (FixedPointIterator(), 'driver '
                                                    '(FixedPointIterator)'),
    (CaseIteratorDriver(), 'driver'), (DOEDriver(), 'driver')])
def test_messages_name_the_driver_by_its_path_in_a_model(driver, owner):
    top = set_as_top(Assembly())
    top.add('driver', driver)
    for name in driver.declared_options:
        bad = wrong_type(type(driver), name)
        with pytest.raises(OptionError) as info:
            setattr(driver, name, bad)
        assert str(info.value).startswith(f'{owner}: '), str(info.value)


def test_attributes_read_the_checked_values():
    opt = ScipyOptimizer('cobyla', tol=1e-3)
    assert opt.method == 'COBYLA' and opt.tol == 1e-3
    opt.method = 'nelder-mead'
    assert opt.method == 'Nelder-Mead' and opt.declared_options['method'] == 'Nelder-Mead'
    assert opt.options == {} and ScipyOptimizer().options is not opt.options  # scipy's own
    solver = FixedPointIterator(max_iterations=7)
    solver.tolerance = 1e-3
    assert (solver.tolerance, solver.max_iterations, solver.max_iteration) == (1e-3, 7, 7)
    executor = LocalExecutor(1)
    try:
        driver = CaseIteratorDriver([{'x': 1.0}], sequential=False, executor=executor)
        assert driver.executor is executor and driver.sequential is False
    finally:
        executor.shutdown()
    assert LatinHypercube(5).num_samples == 5 and FullFactorial(4).num_levels == 4
    assert CSVRecorder('a.csv', buffer_size=5).buffer_size == 5


# -- OpenMDAO 3 style in user classes --------------------------------------------------------

class Stepper(Driver):
    """A user driver declaring an option at run time, as OpenMDAO 3 does in ``initialize``."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.options.declare('step', 0.5, types=float, lower=0.0, exclude_lower=True,
                             desc='how far each iteration moves')

    def execute(self) -> None:
        self.current_iteration = int(1 / self.options['step'])


class Damped(FixedPointIterator):
    """A user solver declaring one more option for its class."""

    @classmethod
    def declare_options(cls, options):
        super().declare_options(options)
        options.declare('damping', 1.0, types=float, lower=0.0, upper=1.0,
                        desc='fraction of the new value taken each pass')


def test_user_driver_declares_options_at_run_time():
    driver = Stepper()
    assert driver.options['step'] == 0.5
    driver.options['step'] = 0.25
    driver.execute()
    assert driver.current_iteration == 4
    with pytest.raises(OptionError, match=r'^Stepper: step must be a float > 0.0, got -1.0 '
                                          r'\(float\)$'):
        driver.options['step'] = -1.0
    with pytest.raises(UnknownOptionError, match=r"did you mean 'step'\?"):
        driver.options['stp'] = 1.0


def test_user_subclass_declares_options_for_its_class():
    solver = Damped(damping=0.5, tolerance=1e-4)
    assert (solver.damping, solver.tolerance, solver.options['damping']) == (0.5, 1e-4, 0.5)
    with pytest.raises(OptionError, match=r'^Damped: damping must be a float >= 0.0 and <= 1.0, '
                                          r'got 2.0 \(float\)$'):
        Damped(damping=2.0)
    with pytest.raises(UnknownOptionError, match=r"did you mean 'damping'\?"):
        Damped(dampng=0.5)
    assert 'damping' not in FixedPointIterator().options


# -- saved models ----------------------------------------------------------------------------

def model(driver: Driver) -> Assembly:
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('driver', driver)
    top.driver.workflow.add('p')
    top.recorders = [CSVRecorder('cases.csv', buffer_size=7), JSONRecorder('cases.jsonl'),
                     SQLiteRecorder('cases.sqlite', batch_size=9)]
    return top


@pytest.mark.parametrize('fmt', ['yaml', 'pickle'])
@pytest.mark.parametrize('driver', [
    lambda: RunOnce(),
    lambda: CaseIteratorDriver([{'p.x': 1.0}], error_policy='RETRY', max_retries=3,
                               keep_results=False, progress=False),
    lambda: DOEDriver(LatinHypercube(7, seed=4, criterion='center'), max_retries=2),
    lambda: DOEDriver(FullFactorial({'p.x': 3})),
    lambda: ScipyOptimizer('COBYLA', tol=1e-5, maxiter=50, options={'rhobeg': 2.0}),
    lambda: FixedPointIterator(tolerance=1e-4, max_iterations=12),
    lambda: SLSQPdriver(accuracy=1e-7, iprint=2),
    lambda: DOEdriver(Uniform(3, seed=None)),
], ids=['RunOnce', 'CaseIteratorDriver', 'DOEDriver-LHS', 'DOEDriver-FF', 'ScipyOptimizer',
        'FixedPointIterator', 'SLSQPdriver', 'DOEdriver'])
def test_saved_models_keep_their_options(tmp_path, fmt, driver):
    top = model(driver())
    path = tmp_path / ('m.yaml' if fmt == 'yaml' else 'm.pkl')
    top.save(path, fmt=fmt)
    loaded = load(path, directory=tmp_path)
    assert type(loaded.driver) is type(top.driver)
    assert loaded.driver.option_values().keys() == top.driver.option_values().keys()
    for name, value in top.driver.option_values().items():
        if name == 'generator':
            assert repr(loaded.driver.generator) == repr(value)
        else:
            assert loaded.driver.declared_options[name] == value, name
    assert [rec.option_values() for rec in loaded.recorders] == \
        [rec.option_values() for rec in top.recorders]
