"""`RunOnce`: the default driver; runs its workflow exactly once."""

from __future__ import annotations

from .driver import Driver


class RunOnce(Driver):
    """Runs the workflow once per `run` (the default ``driver`` of every assembly)."""

    def execute(self) -> None:
        """Run the workflow once; record it when the model has recorders and something to record."""
        parent = self.parent
        if parent is not None and parent._dirty:
            parent.check_config()
        self.current_iteration = 0
        self._workflow.run()
        if self._responses or self._parameters or self._objectives:
            self.record_iteration()
        self.current_iteration = 1
