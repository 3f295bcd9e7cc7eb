"""Seeing a model and its results: the model view (one self-contained HTML file with the
component tree, the N2 connection matrix and the drivers), the variable table, the case browser
and the result plots.

The functions that need matplotlib import it when called (the ``view`` extra).
"""

from __future__ import annotations

from .cases import export_cases, read_case_file, select_cases, summarize
from .html import model_view_html, write_model_view
from .model import describe_model
from .plots import plot_cases, standard_plots

__all__ = ['write_model_view', 'model_view_html', 'describe_model', 'select_cases',
           'read_case_file', 'summarize', 'export_cases', 'plot_cases', 'standard_plots']
