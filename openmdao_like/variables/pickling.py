"""Pickling of the traits a class of the model holds, so that a model class pickled by value
(one defined in a model file, not importable) pickles again after it was unpickled.

traits maps each Python ``property`` of a HasTraits class (``Container.pathname``,
``directory``, ...) to one shared CTrait, ``traits.has_traits.generic_trait``. Pickled by value
with the class, it comes back as a copy without its internals, which the next pickling (a
runner shipping a model it loaded from a job store to its workers) fails on with a
``SystemError``. Here it is pickled by reference; every other CTrait as traits pickles it.
"""

from __future__ import annotations

import copyreg
from typing import Any

from traits.ctrait import CTrait
from traits.has_traits import generic_trait


def shared_generic_trait() -> CTrait:
    """traits' one CTrait of Python properties (what its pickle stands for)."""
    return generic_trait


def _reduce_ctrait(trait: CTrait) -> Any:
    if trait is generic_trait:
        return shared_generic_trait, ()
    return trait.__reduce_ex__(2)


copyreg.pickle(CTrait, _reduce_ctrait)
