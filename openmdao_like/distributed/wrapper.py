"""`ComponentWrapper`: a component that stands for another one and runs it its own way.

The wrapper mirrors the wrapped component's (or assembly's) input and output variables, so it
connects in an assembly exactly as the wrapped object would. On each execution it copies its
inputs into the wrapped object, lets the subclass run it (`_run_wrapped`: again on failure, in
a child process, as a batch job, on a host over SSH) and copies the outputs back.
"""

from __future__ import annotations

from typing import Any

from .. import tree
from ..component import Component

__all__ = ['ComponentWrapper']


class ComponentWrapper(Component):
    """Mirrors ``comp``'s variables; subclasses implement `_run_wrapped`.

    Parameters
    ----------
    comp : Component
        The component or assembly to wrap (it becomes the wrapper's, not a child of an
        assembly: do not add it elsewhere).
    """

    def __init__(self, comp: Component, **traits: Any):
        if not isinstance(comp, Component):
            raise TypeError(f'{type(self).__name__}: expected a Component or Assembly to wrap, '
                            f'got {type(comp).__name__}')
        super().__init__(**traits)
        self.wrapped = comp
        for name, var in tree.variables(comp).items():
            if var.iotype in ('in', 'out') and name not in tree.variables(self):
                self.add_trait(name, var)
                self._var_cache = None
                setattr(self, name, getattr(comp, name))

    def execute(self) -> None:
        """Send the inputs to the wrapped object, run it the subclass's way, take the
        outputs back."""
        comp = self.wrapped
        for name in comp.list_inputs():
            setattr(comp, name, getattr(self, name))
        outputs = self._run_wrapped()
        for name in comp.list_outputs():
            setattr(self, name, outputs[name] if outputs is not None else getattr(comp, name))

    def _run_wrapped(self) -> dict[str, Any] | None:
        """Run ``self.wrapped`` (inputs set); its outputs, or None to read them from it."""
        raise NotImplementedError(f'{type(self).__name__} does not implement _run_wrapped()')
