"""The public names of DESIGN.md exist where the contract puts them, and importing the package
stays light (no scipy, pint, sqlite3, tqdm or pymoo until a model needs them)."""

import subprocess
import sys

import openmdao_like

KERNEL = ['Component', 'Assembly', 'Driver', 'set_as_top', 'Float', 'Int', 'Bool', 'Str', 'Enum',
          'Array', 'List', 'Dict', 'Instance', 'File', 'FileRef']
MODULES = {
    'openmdao_like.drivers': ['RunOnce', 'CaseIteratorDriver', 'DOEDriver', 'ScipyOptimizer',
                              'FixedPointIterator', 'PymooDriver'],
    'openmdao_like.drivers.doe': ['FullFactorial', 'LatinHypercube', 'Uniform', 'CSVFile'],
    'openmdao_like.recorders': ['CSVRecorder', 'JSONRecorder', 'SQLiteRecorder', 'read_cases'],
    'openmdao_like.execution': ['LocalExecutor', 'Executor'],
    'openmdao_like.workflow': ['Dataflow', 'SequentialWorkflow'],
    'openmdao_like.errors': ['ModelError', 'ConnectError', 'ValidationError', 'ConfigError',
                             'ExpressionError', 'PathError', 'ConvergenceError', 'CaseError',
                             'RemoteError', 'AllocationError', 'JobError'],
    'openmdao_like.compat': ['SLSQPdriver', 'COBYLAdriver', 'CONMINdriver', 'DOEdriver',
                             'Genetic', 'CaseIteratorDriver', 'FixedPointIterator'],
}


def test_kernel_names_are_exported_from_the_package():
    missing = [n for n in KERNEL if n not in openmdao_like.__all__]
    assert missing == []
    for name in openmdao_like.__all__:
        assert getattr(openmdao_like, name) is not None


def test_layer_modules_export_the_contract_names():
    import importlib
    for module, names in MODULES.items():
        mod = importlib.import_module(module)
        absent = [n for n in names if not hasattr(mod, n)]
        assert absent == [], f'{module} lacks {absent}'


def test_connect_error_is_a_value_error_and_a_model_error():
    from openmdao_like.errors import ConnectError, ModelError, ValidationError
    assert issubclass(ConnectError, ValueError) and issubclass(ConnectError, ModelError)
    assert issubclass(ValidationError, ValueError)


def test_importing_the_package_loads_no_heavy_optional_modules():
    code = ('import sys, openmdao_like, openmdao_like.drivers, openmdao_like.drivers.doe; '
            'print(sorted(m for m in ("scipy", "pint", "sqlite3", "tqdm", "pymoo") '
            'if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == '[]'
