"""The chain benchmark model written for GEMSEO (baseline): one Discipline per component.

GEMSEO's switches are global (``gemseo.configuration``): ``build_chain`` applies a named mode,
which then holds until the next ``build_chain`` (each benchmark sample builds a chain and runs
it before the next sample starts). Validation is read at every run, the cache choice when a
discipline is created. Modes:

- ``default``: GEMSEO as installed: JSON-grammar validation of inputs and outputs, and a
  SimpleCache on every discipline (never hit here: the first input changes every evaluation);
- ``nocache``: validation on, caches off;
- ``fast``: what ``configuration.fast = True`` does: no validation, no cache, no status or
  statistics, no bound checks.
"""

from numpy import array
from gemseo import configuration
from gemseo.core.chains.chain import MDOChain
from gemseo.core.discipline import Discipline

MODES = {
    "default": {"validate": True, "cache": True},
    "nocache": {"validate": True, "cache": False},
    "fast": {"validate": False, "cache": False},
}


class Plus1(Discipline):
    """Component ``i`` of the chain: x{i+1} = x{i} + 1 (GEMSEO links disciplines by name)."""

    def __init__(self, i):
        super().__init__(f"c{i}")
        self._x = f"x{i}"
        self._y = f"x{i + 1}"
        self.io.input_grammar.update_from_names([self._x])
        self.io.output_grammar.update_from_names([self._y])
        self.io.input_grammar.defaults = {self._x: array([0.0])}

    def _run(self, input_data):
        return {self._y: input_data[self._x] + 1.0}


def configure(mode):
    """Apply one of ``MODES`` to GEMSEO's global configuration."""
    switches = MODES[mode]
    configuration.validate_input_data = switches["validate"]
    configuration.validate_output_data = switches["validate"]
    configuration.enable_discipline_cache = switches["cache"]
    configuration.check_desvars_bounds = switches["validate"]
    configuration.enable_discipline_statistics = False
    configuration.enable_discipline_status = False


def build_chain(n, mode):
    """MDOChain of n Plus1 disciplines under ``mode``.

    Returns ``(run, last)``: ``run(x0)`` executes the chain with ``x0`` as first input,
    ``last()`` reads the last output of the latest run.
    """
    configure(mode)
    chain = MDOChain([Plus1(i) for i in range(n)])
    last_y = f"x{n}"

    def run(x0):
        chain.execute({"x0": array([x0])})

    return run, lambda: float(chain.io.data[last_y][0])
