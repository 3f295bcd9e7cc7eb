"""The ``openmdao-like`` command line.

`main.main` parses the arguments and dispatches to one module per subcommand (``run``,
``plugin``, ``server``, ``resources``). A subcommand signals a problem by raising one of the two
exceptions below, and `main.main` turns it into a message on stderr and an exit status::

    0  success
    1  CommandError: the command was understood but failed (e.g. the model raised)
    2  UsageError (or an argparse error): bad arguments; the usage is printed too
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad arguments found after parsing (a missing file, an unknown ``--set`` path): exit 2."""


class CommandError(Exception):
    """A well-formed command failed: exit 1. ``__cause__`` is the error behind it, if any."""


__all__ = ['UsageError', 'CommandError']
