"""The framework's version, in a module of its own so that any layer may read it without
importing the package root (which wires every layer together)."""

__version__ = '0.1.0'
