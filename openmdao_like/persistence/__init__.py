"""Saving and loading whole models: ``obj.save(path, fmt='pickle'|'yaml')`` and
``openmdao_like.load(path)``.

::

    top.save('model.yaml')                        # readable, diffable; loads without running
    top.save('model.pkl')                         # exact and fast (cloudpickle)
    top.save('run1.zip', include_files=True)      # the model plus the files it refers to
    top = load('model.yaml')                      # header checked first

Both formats start with a header: the format version, the Python version and, for every class
in the model, its name and the distribution and version that provide it. Loading checks it
before anything is built: a class whose distribution is missing or at another version raises
`VersionMismatchError` listing each, unless ``on_version_mismatch='warn'`` (or a policy
registered with `register_version_policy`, such as the remote layer's ``'isolate'``). Higher
layers write and read objects of their own classes in YAML with `register_node_handler` (the
remote layer's proxies record where their object lives); `openmdao_like.wiring` registers
them, and makes ``Container.save`` call `save`.

A YAML model file is read with a safe loader: it can make loading create only model types
(components, drivers, variables, workflows, DOE generators, recorders, executors and classes
registered as openmdao_like entry points), and only of the type that each place declares; it
may name paths only inside its directory (unless loaded with ``trust_paths=True``); a document
over the loader's limits (an alias bomb, deep nesting, a huge integer) is refused before anything
is built. A pickle runs code as it loads: load pickles only from sources you trust.
"""

from .api import FORMATS, load, read_header, save
from .extensions import register_node_handler
from .header import FORMAT, Mismatch, register_version_policy
from .safety import register_safe_base

__all__ = ['save', 'load', 'read_header', 'register_version_policy', 'register_safe_base',
           'register_node_handler', 'Mismatch', 'FORMAT', 'FORMATS']
