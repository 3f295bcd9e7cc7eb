"""`CSVFile` checks every value against its parameter's low/high: a row out of range is an error
naming the file, the line, the column, the range and the value; rows in range run unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from openmdao_like import Array, Assembly, Component, Float, set_as_top
from openmdao_like.drivers import DOEDriver
from openmdao_like.drivers.doe import CSVFile
from openmdao_like.drivers.doe.generators import ParamSpec
from openmdao_like.errors import ValidationError


class Paraboloid(Component):
    x = Float(0.0, iotype='in')
    y = Float(0.0, iotype='in')
    v = Array(np.zeros(2), iotype='in')
    f = Float(iotype='out')

    def execute(self) -> None:
        self.f = (self.x - 3.0)**2 + self.x*self.y + float(np.sum(self.v))


def model(path: Path) -> Assembly:
    """A DOE over p.x in [-10, 10] and p.y in [0, 5] reading its cases from ``path``."""
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('driver', DOEDriver(CSVFile(path)))
    top.driver.workflow.add('p')
    top.driver.add_parameter('p.x', low=-10, high=10)
    top.driver.add_parameter('p.y', low=0.0, high=5.0)
    top.driver.add_response('p.f')
    return top


def test_row_out_of_range_names_file_line_column_range_and_value(tmp_path):
    path = tmp_path / 'points.csv'
    path.write_text('p.x,p.y\n1,2\n-10,0\n30,1\n')
    top = model(path)
    with pytest.raises(ValidationError, match=re.escape(
            f"CSVFile: '{path}' line 4, column 'p.x': expected a value in [-10, 10], "
            f"got 30.0")):
        top.run()
    assert top.driver.results == []  # checked before any case runs


def test_value_below_low_is_refused_too(tmp_path):
    path = tmp_path / 'points.csv'
    path.write_text('p.y,p.x\n\n-0.5,1\n')
    with pytest.raises(ValidationError, match=re.escape(
            f"CSVFile: '{path}' line 3, column 'p.y': expected a value in [0, 5], got -0.5")):
        model(path).run()


def test_rows_in_range_run_unchanged_bounds_included(tmp_path):
    path = tmp_path / 'points.csv'
    path.write_text('p.x,p.y\n-10,0\n10,5\n2.5,1.25\n')
    top = model(path)
    top.run()
    assert [case.inputs for case in top.driver.results] == [
        {'p.x': -10.0, 'p.y': 0.0}, {'p.x': 10.0, 'p.y': 5.0}, {'p.x': 2.5, 'p.y': 1.25}]
    assert all(case.status == 'ok' for case in top.driver.results)


def test_array_parameter_is_checked_per_element(tmp_path):
    v = ParamSpec('p.v', np.array([0.0, 100.0]), np.array([1.0, 200.0]), size=2)
    path = tmp_path / 'v.csv'
    path.write_text('p.v[0],p.v[1]\n0.5,150\n1,250\n')
    with pytest.raises(ValidationError, match=re.escape(
            f"CSVFile: '{path}' line 3, column 'p.v[1]': expected a value in [100, 200], "
            f"got 250.0")):
        list(CSVFile(path)([v]))
    path.write_text('p.v[0],p.v[1]\n0.5,150\n1,200\n')
    cases = list(CSVFile(path)([v]))
    assert [case['p.v'].tolist() for case in cases] == [[0.5, 150.0], [1.0, 200.0]]


def test_array_parameter_in_a_model(tmp_path):
    path = tmp_path / 'v.csv'
    path.write_text('p.v[1],p.v[0]\n-1,0\n0,2\n')
    top = set_as_top(Assembly())
    top.add('p', Paraboloid())
    top.add('driver', DOEDriver(CSVFile(path)))
    top.driver.workflow.add('p')
    top.driver.add_parameter('p.v', low=-1.0, high=1.0)
    with pytest.raises(ValidationError, match=re.escape(
            f"CSVFile: '{path}' line 3, column 'p.v[0]': expected a value in [-1, 1], "
            f"got 2.0")):
        top.run()


def test_unbounded_sides_are_not_checked(tmp_path):
    path = tmp_path / 'points.csv'
    path.write_text('p.x\n-1e300\n1e300\n')
    half = ParamSpec('p.x', None, np.inf)
    assert [case['p.x'] for case in CSVFile(path)([half])] == [-1e300, 1e300]
    with pytest.raises(ValidationError, match=re.escape(
            f"CSVFile: '{path}' line 2, column 'p.x': expected a value in [0, inf], "
            f"got -1e+300")):
        list(CSVFile(path)([ParamSpec('p.x', 0.0, None)]))


def test_a_bound_that_is_not_a_number_names_the_parameter(tmp_path):
    path = tmp_path / 'points.csv'
    path.write_text('p.x\n1\n')
    with pytest.raises(ValidationError, match=re.escape(
            "CSVFile: parameter 'p.x': low must be None or a number (a float or 1 floats), "
            "got 'low' (str)")):
        list(CSVFile(path)([ParamSpec('p.x', 'low', 1.0)]))
