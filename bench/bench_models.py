"""Components the benchmarks ship to servers, importable by name there (the benchmarks put
this directory on the servers' PYTHONPATH)."""

import time

from openmdao_like import Component, Float


class Sleeper(Component):
    """Sleeps ``d`` seconds: a case whose duration is known exactly."""

    d = Float(0.0, iotype='in')

    def execute(self):
        time.sleep(self.d)
