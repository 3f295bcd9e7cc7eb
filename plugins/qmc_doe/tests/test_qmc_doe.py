"""The installed plugin: Halton and Sobol cases, scaled into the bounds, reproducible, and used
through their entry points in a DOEDriver."""

from __future__ import annotations

import warnings
from importlib.metadata import version

import numpy as np
import pytest

import qmc_doe
from openmdao_like import Assembly, Component, Float, create, get_available_types, set_as_top
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import ParamSpec
from qmc_doe import Halton, Sobol

PARAMS = [ParamSpec('p.x', -10.0, 10.0), ParamSpec('p.y', 0.0, 20.0)]


def test_version_and_entry_points():
    assert qmc_doe.__version__ == version('qmc-doe')
    found = {t.name: (t.version, t.distribution) for t in get_available_types('doegenerator')
             if t.name.startswith('qmc_doe.')}
    assert found == {'qmc_doe.Halton': (qmc_doe.__version__, 'qmc-doe'),
                     'qmc_doe.Sobol': (qmc_doe.__version__, 'qmc-doe')}


def test_created_through_entry_points_with_settings_as_attributes():
    halton = create('qmc_doe.Halton', num_samples=8, seed=3, scramble=False)
    sobol = create('qmc_doe.Sobol', m=3, seed=4)
    assert type(halton) is Halton and type(sobol) is Sobol
    assert (halton.num_samples, halton.seed, halton.scramble) == (8, 3, False)
    assert (sobol.m, sobol.seed, sobol.scramble) == (3, 4, True)
    assert repr(sobol) == 'Sobol(m=3, seed=4, scramble=True)'


@pytest.mark.parametrize('gen, n', [(Halton(num_samples=20), 20), (Sobol(m=5), 32),
                                    (Halton(num_samples=7, seed=None), 7), (Sobol(m=0), 1)])
def test_cases_lie_in_the_bounds(gen, n):
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # e.g. scipy's "balance properties of Sobol' points"
        cases = list(gen(PARAMS))
    assert gen.num_cases(PARAMS) == n == len(cases)
    xs = np.array([c['p.x'] for c in cases])
    ys = np.array([c['p.y'] for c in cases])
    assert all(type(c['p.x']) is float for c in cases)
    assert np.all((-10.0 <= xs) & (xs <= 10.0)) and np.all((0.0 <= ys) & (ys <= 20.0))


def test_unscrambled_sequences_are_the_textbook_ones():
    halton = list(Halton(num_samples=4, scramble=False)([ParamSpec('a', 0.0, 1.0),
                                                         ParamSpec('b', 0.0, 1.0)]))
    assert [c['a'] for c in halton] == pytest.approx([0.0, 0.5, 0.25, 0.75])
    assert [c['b'] for c in halton] == pytest.approx([0.0, 1 / 3, 2 / 3, 1 / 9])
    sobol = list(Sobol(m=2, scramble=False)([ParamSpec('a', -1.0, 1.0)]))
    assert [c['a'] for c in sobol] == pytest.approx([-1.0, 0.0, 0.5, -0.5])


def test_seed_fixes_the_cases_and_none_varies_them():
    assert list(Sobol(m=4, seed=7)(PARAMS)) == list(Sobol(m=4, seed=7)(PARAMS))
    assert list(Halton(seed=7)(PARAMS)) == list(Halton(seed=7)(PARAMS))
    assert list(Halton(seed=7)(PARAMS)) != list(Halton(seed=8)(PARAMS))
    assert list(Sobol(seed=None)(PARAMS)) != list(Sobol(seed=None)(PARAMS))


def test_sobol_points_are_balanced():
    # each of the 2**m equal bins of every dimension holds exactly one of the 2**m points
    cases = list(Sobol(m=4, seed=1)(PARAMS))
    bins = np.floor((np.array([c['p.x'] for c in cases]) + 10.0) / 20.0 * 16)
    assert sorted(bins) == list(range(16))


def test_array_parameter_gets_one_dimension_per_element():
    cases = list(Halton(num_samples=5)([ParamSpec('a', np.array([0.0, 10.0]),
                                                  np.array([1.0, 20.0]), size=2)]))
    values = np.array([c['a'] for c in cases])
    assert values.shape == (5, 2)
    assert np.all((values[:, 0] <= 1.0) & (values[:, 1] >= 10.0))


@pytest.mark.parametrize('make, message', [
    (lambda: Halton(num_samples=0), 'Halton: num_samples must be an int >= 1, got 0 (int)'),
    (lambda: Halton(seed=-1), 'Halton: seed must be None or an int >= 0, got -1 (int)'),
    (lambda: Halton(scramble='yes'), "Halton: scramble must be a bool, got 'yes' (str)"),
    (lambda: Sobol(m=31), 'Sobol: m must be an int in [0, 30] (2**m cases), got 31 (int)'),
    (lambda: Sobol(m=2.0), 'Sobol: m must be an int >= 0, got 2.0 (float)'),
])
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == message


def test_unbounded_parameter_is_refused():
    with pytest.raises(ValueError, match=r"Sobol: parameter 'p.x': low must be finite"):
        list(Sobol()([ParamSpec('p.x', None, 1.0)]))


class Paraboloid(Component):
    x = Float(0.0, iotype='in', low=-50.0, high=50.0)
    y = Float(0.0, iotype='in', low=-50.0, high=50.0)
    f_xy = Float(0.0, iotype='out')

    def execute(self):
        self.f_xy = (self.x - 3.0) ** 2 + self.x * self.y + (self.y + 4.0) ** 2 - 3.0


@pytest.mark.parametrize('typname, args, n', [('qmc_doe.Halton', {'num_samples': 10}, 10),
                                              ('qmc_doe.Sobol', {'m': 3}, 8)])
def test_in_a_doe_driver(typname, args, n):
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('driver', DOEDriver(create(typname, **args)))
    top.driver.workflow.add('p')
    top.driver.add_parameter('p.x', low=-10.0, high=10.0)
    top.driver.add_parameter('p.y', low=0.0, high=20.0)
    top.driver.add_response('p.f_xy')
    top.run()
    results = top.driver.results
    assert len(results) == n and all(c.status == 'ok' for c in results)
    for case in results:
        x, y = case.inputs['p.x'], case.inputs['p.y']
        assert case.outputs['p.f_xy'] == pytest.approx((x - 3) ** 2 + x * y + (y + 4) ** 2 - 3)
