"""Design of experiments: `DOEDriver` and its case generators."""

from .driver import DOEDriver
from .generators import (CSVFile, DOEGenerator, FullFactorial, LatinHypercube, ListGenerator,
                         ParamSpec, Uniform)

__all__ = ['DOEDriver', 'DOEGenerator', 'FullFactorial', 'LatinHypercube', 'Uniform', 'CSVFile',
           'ListGenerator', 'ParamSpec']
