"""Seeing a model and its results: the model view (one self-contained HTML file with the
component tree, the N2 connection matrix and the drivers), the variable table, the case browser
and the result plots.

The functions that need matplotlib import it when called (the ``view`` extra).
"""

from __future__ import annotations
