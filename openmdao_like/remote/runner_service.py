"""The remote interface of a shipped case runner: many cases per round trip.

A case-running driver's model travels once, cloudpickled, to an ObjServer started with
``runner`` settings (owner role and a server that allows shell access: a shipped model is
code). Each call of `RunnerService.run_cases` then carries only a chunk of ``(case_id, inputs)``
pairs and brings back only their outcomes, both through the restricted codec.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

import cloudpickle

from . import codec
from .service import SecureService, remote

__all__ = ['RunnerService', 'load_runner']


def load_runner(blob: str) -> Any:
    """The case runner from its base64 cloudpickle."""
    return cloudpickle.loads(base64.b64decode(blob))


class RunnerService(SecureService):
    """Runs chunks of cases with the runner this ObjServer was started with."""

    def __init__(self, runner: Any):
        self.runner = runner
        self.lock = threading.Lock()

    @remote()
    def ping(self) -> str:
        """'pong' (a liveness check)."""
        return 'pong'

    @remote('owner')
    def run_cases(self, packet: tuple) -> tuple:
        """Run each ``(case_id, inputs)`` of the packed chunk; the packed outcomes, in order."""
        cases = codec.unpack(packet)
        runner = self.runner
        with self.lock:
            return codec.pack([tuple(runner(case_id, inputs)) for case_id, inputs in cases])
