"""`Component`: a container that computes outputs from inputs in `execute()`."""

from __future__ import annotations

import os
from typing import Any

from .container import Container
from .errors import name_component
from .options import UnknownOptionError, suggest
from .variables.file import File, FileRef


class Component(Container):
    """A unit of computation.

    Subclasses declare variables as class attributes (``x = Float(0.0, iotype='in')``) and
    implement `execute`. `run` first moves this component's connected inputs in (the transfers
    its parent assembly compiled), then calls `execute` — in the component's directory when one
    is set.

    Parameters
    ----------
    **keywords
        Values of the component's variables (each checked), and of its declared options when
        its class has some (`openmdao_like.options.HasOptions`); any other name raises
        `UnknownOptionError` naming the closest ones.

    Attributes
    ----------
    exec_count : int
        How many times the component has run.
    comm : mpi4py.MPI.Comm or None
        The MPI communicator of the ranks running this component: the group of a case under
        ``python -m openmdao_like.mpi --procs-per-case K`` (``COMM_SELF`` for K=1), every rank
        of an SPMD object server (`openmdao_like.remote.spmd`); None outside MPI. Set for the
        whole process (a class attribute), before the model is loaded.
    """

    #: See the class docstring (a class attribute: never pickled with a component).
    comm: Any = None

    def __init__(self, **keywords: Any):
        super().__init__()
        self.exec_count = 0
        self._in_xfers: tuple = ()
        for name, var in self._vars().items():
            if isinstance(var, File) and var.iotype == 'out' and var.local_path:
                setattr(self, name, FileRef(var.local_path, self, var.binary, var.content_type))
        declared = getattr(type(self), '_option_template', None)
        if declared is not None:
            self._init_options({name: keywords.pop(name) for name in list(keywords)
                                if name in declared})
        self._set_keywords(keywords)

    def _set_keywords(self, keywords: dict[str, Any]) -> None:
        """Set the variable each keyword names (checked); raise `UnknownOptionError` naming
        the closest names for a keyword that names none, before setting any."""
        for name in keywords:
            if name not in self._vars():
                raise self._unknown_keyword(name)
        for name, value in keywords.items():
            setattr(self, name, value)

    def _unknown_keyword(self, name: str) -> UnknownOptionError:
        """The error for constructor keyword ``name``: the closest variables and declared
        options (a class with declared options calls its keywords options)."""
        variables = list(self._vars())
        listing = f'variables: {", ".join(variables) or "none"}'
        declared = getattr(type(self), '_option_template', None)
        if declared is None:
            noun, known = 'keyword', variables
        else:
            noun, known = 'option', [*declared, *variables]
            listing = f'options: {", ".join(sorted(declared)) or "none"}; {listing}'
        return UnknownOptionError(f'{type(self).__name__}: unknown {noun} {name!r}'
                                  f'{suggest(name, known)} ({listing})')

    def run(self, force: bool = False, case_uuid: Any = None) -> None:
        """Transfer connected inputs, then `execute`; counts the run in ``exec_count``. An
        exception from `execute` keeps its type and gains a note naming this component (its
        dotted path and class), unless a component inside this one already named itself."""
        for xfer in self._in_xfers:
            xfer()
        try:
            if self._directory:
                self._execute_in_directory()
            else:
                self.execute()
        except Exception as exc:
            name_component(exc, self._where(), type(self).__name__)
            raise
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
