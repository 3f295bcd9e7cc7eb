"""Tests of the DOE case generators in openmdao_like.drivers.doe.generators."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from openmdao_like.drivers.doe import generators
from openmdao_like.errors import ValidationError
from openmdao_like.drivers.doe.generators import (CSVFile, DOEGenerator, FullFactorial,
                                                  LatinHypercube, ListGenerator, ParamSpec,
                                                  Uniform)

X = ParamSpec('p.x', -1.0, 1.0)
Y = ParamSpec('p.y', 10.0, 20.0)
V = ParamSpec('p.v', np.array([0.0, 100.0]), np.array([1.0, 200.0]), size=2)

RANDOM = [
    pytest.param(lambda seed: LatinHypercube(num_samples=7, seed=seed), id='lhs'),
    pytest.param(lambda seed: LatinHypercube(num_samples=7, seed=seed, criterion='random-cd'),
                 id='lhs-random-cd'),
    pytest.param(lambda seed: Uniform(num_samples=7, seed=seed), id='uniform'),
]
SCALED = RANDOM + [pytest.param(lambda seed: FullFactorial(num_levels=3), id='fullfact')]


def matrix(cases: list[dict], params: list[ParamSpec]) -> np.ndarray:
    """Stack cases into a (cases, elements) array in parameter order."""
    return np.array([np.concatenate([np.atleast_1d(case[p.name]) for p in params])
                     for case in cases])


def write_csv(tmp_path: Path, text: str) -> Path:
    """Write ``text`` to cases.csv in ``tmp_path`` and return its path."""
    path = tmp_path / 'cases.csv'
    path.write_text(text, encoding='utf-8')
    return path


# -- FullFactorial ----------------------------------------------------------------------------

def test_full_factorial_two_params_three_levels_exact_values_first_slowest():
    gen = FullFactorial(num_levels=3)
    cases = list(gen([X, Y]))
    assert gen.num_cases([X, Y]) == 9
    assert cases == [{'p.x': x, 'p.y': y} for x in (-1.0, 0.0, 1.0) for y in (10.0, 15.0, 20.0)]
    assert all(type(v) is float for case in cases for v in case.values())


def test_full_factorial_levels_per_parameter_dict():
    gen = FullFactorial(num_levels={'p.x': 2, 'p.y': 4})
    cases = list(gen([X, Y]))
    assert gen.num_cases([X, Y]) == len(cases) == 8
    assert [c['p.x'] for c in cases[:4]] == [-1.0] * 4
    assert [c['p.y'] for c in cases[:4]] == pytest.approx([10.0, 40 / 3, 50 / 3, 20.0])


def test_full_factorial_dict_must_name_exactly_the_parameters():
    with pytest.raises(ValueError, match=re.escape(
            "FullFactorial: num_levels must name exactly the parameters ['p.x', 'p.y'], "
            "got unknown ['p.z'] and missing ['p.y']")):
        FullFactorial(num_levels={'p.x': 2, 'p.z': 3})([X, Y])


def test_full_factorial_array_parameter_each_element_is_a_factor():
    gen = FullFactorial(num_levels=2)
    cases = list(gen([V]))
    assert gen.num_cases([V]) == len(cases) == 4
    assert all(isinstance(c['p.v'], np.ndarray) and c['p.v'].shape == (2,) for c in cases)
    assert [c['p.v'].tolist() for c in cases] == [[0.0, 100.0], [0.0, 200.0],
                                                  [1.0, 100.0], [1.0, 200.0]]


@pytest.mark.parametrize('bad', [1, 0, 2.0, True, '3', None])
def test_full_factorial_bad_num_levels(bad):
    with pytest.raises(ValidationError, match=re.escape(
            f'FullFactorial: num_levels must be an int >= 2, got {bad!r} ({type(bad).__name__})')):
        FullFactorial(num_levels=bad)


def test_full_factorial_bad_num_levels_in_dict():
    with pytest.raises(ValueError, match=re.escape(
            "FullFactorial: num_levels['p.x'] must be an int >= 2, got 1 (int)")):
        FullFactorial(num_levels={'p.x': 1})
    with pytest.raises(ValueError, match=re.escape(
            'FullFactorial: num_levels keys must be parameter paths (str), got 3 (int)')):
        FullFactorial(num_levels={3: 2})


# -- LatinHypercube and Uniform ---------------------------------------------------------------

@pytest.mark.parametrize('criterion', [None, 'center', 'random-cd'])
def test_lhs_one_sample_per_bin_in_every_dimension(criterion):
    params = [X, Y, V]
    gen = LatinHypercube(num_samples=10, seed=3, criterion=criterion)
    cases = list(gen(params))
    assert len(cases) == gen.num_cases(params) == 10
    low = np.array([-1.0, 10.0, 0.0, 100.0])
    high = np.array([1.0, 20.0, 1.0, 200.0])
    bins = np.floor((matrix(cases, params) - low) / (high - low) * 10).astype(int)
    for dim in range(4):
        assert sorted(bins[:, dim]) == list(range(10)), f'dimension {dim}: {bins[:, dim]}'


def test_lhs_center_puts_samples_at_bin_centres():
    cases = list(LatinHypercube(num_samples=4, seed=0, criterion='center')([X]))
    assert sorted(c['p.x'] for c in cases) == pytest.approx([-0.75, -0.25, 0.25, 0.75])


@pytest.mark.parametrize('make', SCALED)
def test_values_inside_bounds(make):
    params = [X, Y, V]
    data = matrix(list(make(1)(params)), params)
    assert np.all(data >= [-1.0, 10.0, 0.0, 100.0])
    assert np.all(data <= [1.0, 20.0, 1.0, 200.0])


@pytest.mark.parametrize('make', RANDOM)
def test_same_seed_same_cases_reusable_and_different_seed_differs(make):
    params = [X, Y, V]
    gen = make(5)
    first = matrix(list(gen(params)), params)
    assert np.array_equal(first, matrix(list(gen(params)), params))  # reusable
    assert np.array_equal(first, matrix(list(make(5)(params)), params))
    assert not np.array_equal(first, matrix(list(make(6)(params)), params))


@pytest.mark.parametrize('make', RANDOM)
def test_seed_none_gives_fresh_cases(make):
    gen = make(None)
    assert not np.array_equal(matrix(list(gen([X, Y])), [X, Y]),
                              matrix(list(gen([X, Y])), [X, Y]))


@pytest.mark.parametrize('make', RANDOM)
def test_global_numpy_rng_untouched(make):
    np.random.seed(1234)
    before = np.random.get_state()
    list(make(None)([X, Y]))
    list(make(7)([X, Y]))
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1])
    assert before[2:] == after[2:]


@pytest.mark.parametrize('make', SCALED)
def test_array_parameter_yields_arrays_scalar_yields_floats(make):
    case = next(iter(make(0)([X, V])))
    assert type(case['p.x']) is float
    assert isinstance(case['p.v'], np.ndarray) and case['p.v'].shape == (2,)


@pytest.mark.parametrize('cls', [LatinHypercube, Uniform])
@pytest.mark.parametrize('bad', [0, -3, 2.5, True, None])
def test_bad_num_samples(cls, bad):
    with pytest.raises(ValueError, match=re.escape(
            f'{cls.__name__}: num_samples must be an int >= 1, got {bad!r} '
            f'({type(bad).__name__})')):
        cls(num_samples=bad)


@pytest.mark.parametrize('cls', [LatinHypercube, Uniform])
@pytest.mark.parametrize('bad', [-1, 1.5, '0', False])
def test_bad_seed(cls, bad):
    with pytest.raises(ValueError, match=re.escape(
            f'{cls.__name__}: seed must be None or an int >= 0, got {bad!r} '
            f'({type(bad).__name__})')):
        cls(seed=bad)


def test_lhs_bad_criterion():
    with pytest.raises(ValueError, match=re.escape(
            "LatinHypercube: criterion must be one of (None, 'center', 'random-cd'), "
            "got 'maximin' (str)")):
        LatinHypercube(criterion='maximin')


# -- parameter checks (shared by the scaling generators) -------------------------------------

@pytest.mark.parametrize('make', SCALED)
@pytest.mark.parametrize('param, message', [
    (ParamSpec('p.z', None, 1.0),
     "parameter 'p.z': low must be finite (a float or 1 floats), got None (NoneType)"),
    (SimpleNamespace(name='p.z', high=1.0, size=1),
     "parameter 'p.z': low must be finite (a float or 1 floats), got None (NoneType)"),
    (ParamSpec('p.z', 0.0, float('inf')),
     "parameter 'p.z': high must be finite (a float or 1 floats), got inf (float)"),
    (ParamSpec('p.z', 2.0, 1.0), "parameter 'p.z': needs low < high, got low=2.0, high=1.0"),
    (ParamSpec('p.z', 1.0, 1.0), "parameter 'p.z': needs low < high, got low=1.0, high=1.0"),
    (ParamSpec('p.z', np.zeros(3), 1.0, size=2),
     "parameter 'p.z': low must be finite (a float or 2 floats), got array([0., 0., 0.])"),
    (ParamSpec('p.z', 0.0, 1.0, size=0),
     "parameter 'p.z': size must be an int >= 1, got 0 (int)"),
    (ParamSpec('', 0.0, 1.0), 'a parameter name must be a non-empty str'),
])
def test_bad_parameter_names_it(make, param, message):
    gen = make(0)
    with pytest.raises(ValueError, match=re.escape(f'{type(gen).__name__}: {message}')):
        gen([X, param])


def test_elementwise_low_not_below_high_names_parameter():
    bad = ParamSpec('p.v', np.array([0.0, 5.0]), np.array([1.0, 5.0]), size=2)
    with pytest.raises(ValueError, match=re.escape("Uniform: parameter 'p.v': needs low < high")):
        Uniform()([bad])


def test_duplicate_and_missing_parameters():
    with pytest.raises(ValueError, match=re.escape(
            "FullFactorial: parameter 'p.x' is given more than once")):
        FullFactorial()([X, X])
    with pytest.raises(ValueError, match=re.escape(
            'Uniform: needs at least one parameter, got none')):
        Uniform()([])


# -- CSVFile ----------------------------------------------------------------------------------

def test_csv_round_trip_values_unscaled(tmp_path):
    cases = list(Uniform(num_samples=5, seed=2)([X, Y, V]))
    lines = ['p.y,p.v[0],p.x,p.v[1]']  # column order need not follow the parameters
    lines += [','.join(repr(float(v)) for v in (c['p.y'], c['p.v'][0], c['p.x'], c['p.v'][1]))
              for c in cases]
    path = write_csv(tmp_path, '\n'.join(lines) + '\n\n')
    gen = CSVFile(path)
    read = list(gen([X, Y, V]))
    assert gen.num_cases([X, Y, V]) == 5
    assert np.array_equal(matrix(read, [X, Y, V]), matrix(cases, [X, Y, V]))
    assert type(read[0]['p.x']) is float and read[0]['p.v'].shape == (2,)
    unbounded = write_csv(tmp_path, 'p.x\n1e6\n')  # not scaled, not clipped
    assert list(CSVFile(str(unbounded))([ParamSpec('p.x', None, None)])) == [{'p.x': 1e6}]
    assert list(CSVFile(unbounded)([ParamSpec('p.x', -np.inf, np.inf)])) == [{'p.x': 1e6}]


def test_csv_unknown_column(tmp_path):
    path = write_csv(tmp_path, 'p.x,p.q\n1,2\n')
    with pytest.raises(ValueError, match=re.escape(
            f"CSVFile: '{path}' has column 'p.q' that is not a parameter; "
            "known parameter columns: ['p.x', 'p.y']")):
        list(CSVFile(path)([X, Y]))


def test_csv_array_parameter_needs_indexed_columns(tmp_path):
    path = write_csv(tmp_path, 'p.v\n[1, 2]\n')
    with pytest.raises(ValueError, match=re.escape(
            f"CSVFile: '{path}' has column 'p.v' that is not a parameter; "
            "known parameter columns: ['p.v[0]', 'p.v[1]']")):
        CSVFile(path)([V])


def test_csv_missing_parameter_column(tmp_path):
    path = write_csv(tmp_path, 'p.x\n1\n')
    with pytest.raises(ValueError, match=re.escape(
            f"CSVFile: '{path}' has no column 'p.y' for parameter 'p.y'; header is ['p.x']")):
        CSVFile(path)([X, Y])
    path = write_csv(tmp_path, 'p.v[0]\n1\n')
    with pytest.raises(ValueError, match=re.escape(
            f"CSVFile: '{path}' has no column 'p.v[1]' for parameter 'p.v'")):
        CSVFile(path)([V])


def test_csv_duplicate_column(tmp_path):
    path = write_csv(tmp_path, 'p.x,p.x\n1,2\n')
    with pytest.raises(ValueError, match=re.escape(
            f"CSVFile: '{path}' has column 'p.x' more than once")):
        CSVFile(path)([X])


@pytest.mark.parametrize('cell', ['abc', '', 'nan', 'inf'])
def test_csv_non_numeric_cell_names_file_line_and_column(tmp_path, cell):
    path = write_csv(tmp_path, f'p.x,p.y\n1,12\n\n0,{cell}\n')
    with pytest.raises(ValueError, match=re.escape(
            f"CSVFile: '{path}' line 4, column 'p.y': expected a finite number, got {cell!r}")):
        CSVFile(path)([X, Y])


def test_csv_wrong_number_of_cells(tmp_path):
    path = write_csv(tmp_path, 'p.x,p.y\n1,2,3\n')
    with pytest.raises(ValueError, match=re.escape(
            f"CSVFile: '{path}' line 2: expected 2 cells, got 3")):
        CSVFile(path)([X, Y])


def test_csv_missing_file(tmp_path):
    path = tmp_path / 'nope.csv'
    gen = CSVFile(path)  # read only when called, so it may be written later
    with pytest.raises(FileNotFoundError, match=re.escape(f"CSVFile: no such file '{path}'")):
        gen([X])


@pytest.mark.parametrize('bad', [None, 3, ''])
def test_csv_bad_path(bad):
    with pytest.raises(ValueError, match=re.escape(
            f'CSVFile: path must be a non-empty str or os.PathLike, got {bad!r}')):
        CSVFile(bad)


# -- ListGenerator ----------------------------------------------------------------------------

def test_list_generator_passes_values_as_they_are():
    value = np.array([5.0, 500.0])
    gen = ListGenerator([{'p.x': 7.0, 'p.v': value}, {'p.x': -9}])
    cases = list(gen([X, V]))
    assert gen.num_cases([X, V]) == 2
    assert cases[0]['p.x'] == 7.0 and cases[0]['p.v'] is value
    assert cases[1] == {'p.x': -9}
    assert list(gen([X, V]))[1] == {'p.x': -9}  # reusable


def test_list_generator_bad_input():
    with pytest.raises(ValueError, match=re.escape(
            "ListGenerator: cases must be a list of dicts, got {'p.x': 1} (dict)")):
        ListGenerator({'p.x': 1})
    with pytest.raises(ValueError, match=re.escape(
            "ListGenerator: cases[1] must be a dict from parameter path (str) to value, "
            "got [('p.x', 1)] (list)")):
        ListGenerator([{'p.x': 1}, [('p.x', 1)]])
    with pytest.raises(ValueError, match=re.escape(
            "ListGenerator: cases[0] names ['p.q'], which are not parameters; "
            "known parameters: ['p.x']")):
        ListGenerator([{'p.q': 1}])([X])


# -- all generators ---------------------------------------------------------------------------

def test_generators_pickle_and_give_the_same_cases(tmp_path):
    path = write_csv(tmp_path, 'p.x,p.y\n1,12\n')
    for gen in [FullFactorial({'p.x': 2, 'p.y': 3}), LatinHypercube(5, seed=1, criterion='center'),
                Uniform(5, seed=1), CSVFile(path), ListGenerator([{'p.x': 1.0}])]:
        assert isinstance(gen, DOEGenerator)
        copy = pickle.loads(pickle.dumps(gen))
        assert repr(copy) == repr(gen)
        assert np.array_equal(matrix(list(copy([X, Y])), [X]), matrix(list(gen([X, Y])), [X]))


def test_module_does_not_import_scipy():
    # Measure only this module: openmdao_like's own imports are checked elsewhere.
    code = ('import importlib.util, sys\n'
            'import openmdao_like.errors\n'
            'before = set(sys.modules)\n'
            f'spec = importlib.util.spec_from_file_location("gen", {generators.__file__!r})\n'
            'module = sys.modules["gen"] = importlib.util.module_from_spec(spec)\n'
            'spec.loader.exec_module(module)\n'
            'print(sorted(m for m in set(sys.modules) - before if m.startswith("scipy")))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == '[]'
