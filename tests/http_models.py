"""Components of the HTTP service tests (importable in the service: the fixtures put this
directory on its PYTHONPATH)."""

from __future__ import annotations

import os
import time

from openmdao_like import Component, Float, Str


class PidSleeper(Component):
    """Writes its process id to ``pidfile``, sleeps ``delay`` seconds, then y = 2 x."""

    pidfile = Str('', iotype='in')
    delay = Float(0.0, iotype='in', low=0.0)
    x = Float(0.0, iotype='in')
    y = Float(iotype='out')

    def execute(self) -> None:
        if self.pidfile:
            with open(self.pidfile + '.tmp', 'w') as f:
                f.write(str(os.getpid()))
            os.replace(self.pidfile + '.tmp', self.pidfile)
        time.sleep(self.delay)
        self.y = 2.0 * self.x
