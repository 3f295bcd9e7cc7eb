"""`Component`: a container that computes outputs from inputs in `execute()`."""

from __future__ import annotations

import os
from typing import Any

from .container import Container
from .variables.file import File, FileRef


class Component(Container):
    """A unit of computation.

    Subclasses declare variables as class attributes (``x = Float(0.0, iotype='in')``) and
    implement `execute`. `run` first moves this component's connected inputs in (the transfers
    its parent assembly compiled), then calls `execute` — in the component's directory when one
    is set.

    Attributes
    ----------
    exec_count : int
        How many times the component has run.
    """

    def __init__(self, **traits: Any):
        super().__init__(**traits)
        self.exec_count = 0
        self._in_xfers: tuple = ()
        for name, var in self._vars().items():
            if isinstance(var, File) and var.iotype == 'out' and var.local_path:
                setattr(self, name, FileRef(var.local_path, self, var.binary, var.content_type))

    def run(self, force: bool = False, case_uuid: Any = None) -> None:
        """Transfer connected inputs, then `execute`; counts the run in ``exec_count``."""
        for xfer in self._in_xfers:
            xfer()
        if self._directory:
            self._execute_in_directory()
        else:
            self.execute()
        self.exec_count += 1

    def _execute_in_directory(self) -> None:
        path = self.get_abs_directory()
        os.makedirs(path, exist_ok=True)
        cwd = os.getcwd()
        os.chdir(path)
        try:
            self.execute()
        finally:
            os.chdir(cwd)

    def execute(self) -> None:
        """Compute the outputs from the inputs; every component must implement it."""
        raise NotImplementedError(f'{self._where()}: {type(self).__name__} does not implement '
                                  f'execute()')

    def check_config(self) -> None:
        """Check the component's configuration before a run; raise naming the problem."""

    # -- classic API ----------------------------------------------------------------------------
    def list_inputs(self) -> list[str]:
        """Names of the input variables, sorted."""
        return [n for n, v in self._vars().items() if v.iotype == 'in']

    def list_outputs(self) -> list[str]:
        """Names of the output variables, sorted."""
        return [n for n, v in self._vars().items() if v.iotype == 'out']

    def revert_to_defaults(self) -> None:
        """Reset every input variable to its default value."""
        self.reset_traits(self.list_inputs())

    def raise_exception(self, msg: str, exc_type: type[Exception] = RuntimeError) -> None:
        """Raise ``exc_type`` with ``msg`` prefixed by this component's path."""
        raise exc_type(f'{self._where()}: {msg}')

    def __getstate__(self):
        state = super().__getstate__()
        state['_in_xfers'] = ()
        return state
