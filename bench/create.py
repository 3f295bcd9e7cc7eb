"""Create benchmark: microseconds per `create()` of an entry-point class, beside a direct call of
its constructor.

Class: ``paraboloid_plugin.Paraboloid`` from plugins/paraboloid_plugin, which this script installs
with pip into a target directory under its scratch directory (no dependencies; without build
isolation when this environment's setuptools can build wheels, else with pip's isolated build,
which downloads setuptools) and puts first on ``sys.path``. When it cannot be installed (no
package index reachable, say), the framework's own entry point ``openmdao_like.drivers.RunOnce``
is measured instead (noted on stderr and in the config's ``typname``).

Configurations (``config``): the constructor arguments (none, or ``x`` and ``y``) and the
requested ``version`` (none, exact ``'1.0'``, specifier ``'>=1.0,<2'``). Contenders, sampled
alternately in this process (create, constructor, create, ...), each sample the mean over calls
spanning at least MIN_TIME seconds:
- ours: ``create(typname, version=..., **args)`` through the default factory chain;
- ``constructor``: ``Paraboloid(**args)``, the floor.

Metrics:
- ``us_per_call``: ours and the constructor in microseconds; ``ratio`` = constructor / create,
  so 1 would be a free lookup and the ratio says what share of create() is the constructor;
- ``target-2x-constructor``: the baseline is 2 x the constructor's median of the same rounds, so
  ratio >= 1 means create() costs at most twice the direct call.

Before timing, each created object is checked to be an instance of the class holding the given
arguments. Sized for a noisy 2-core machine: about 15 s (plus the install).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import harness

BENCH = "create"
ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "paraboloid_plugin"
TYPNAME = "paraboloid_plugin.Paraboloid"
FALLBACK = "openmdao_like.drivers.RunOnce"
#: Seconds of calls per sample.
MIN_TIME = 0.2
VERSIONS = (None, "1.0", ">=1.0,<2")
ARGS = ({}, {"x": 1.5, "y": -2.5})
#: create() may cost at most this many times the direct constructor call.
TARGET_FACTOR = 2.0


def install_plugin(target):
    """Install plugins/paraboloid_plugin into ``target`` with pip; True when it worked."""
    from openmdao_like.cli.plugin import build_requirements_met

    source = Path(target).parent / "paraboloid_plugin-src"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns(
        "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
               "--disable-pip-version-check", "--target", str(target), str(source)]
    if build_requirements_met(source):
        command.insert(5, "--no-build-isolation")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        print(f"installing {PLUGIN.name} failed; measuring {FALLBACK} instead:\n"
              f"{proc.stdout}{proc.stderr}", file=sys.stderr)
        return False
    sys.path.insert(0, str(target))
    return True


def contenders(typname, version, args):
    """(create call, constructor call) for one configuration, each checked once."""
    from openmdao_like import create
    from openmdao_like.factories import factory_manager

    cls = factory_manager.find_class(typname, version)

    def ours(_value):
        return create(typname, version=version, **args)

    def direct(_value):
        return cls(**args)

    for make in (ours, direct):
        obj = make(0.0)
        if type(obj) is not cls or any(getattr(obj, k) != v for k, v in args.items()):
            raise AssertionError(f"{make.__name__}: made {obj!r}, not a {cls.__name__} "
                                 f"with {args}")
    return ours, direct


def body(rounds):
    """Install the plugin, then measure every configuration."""
    harness.emit_machine(BENCH, rounds=rounds)
    if install_plugin(Path.cwd() / "site"):
        typname, versions, args_sets = TYPNAME, VERSIONS, ARGS
    else:
        import openmdao_like
        have = openmdao_like.__version__
        typname, versions, args_sets = FALLBACK, (None, have, f">={have}"), ({},)
    for version in versions:
        for args in args_sets:
            ours, direct = contenders(typname, version, args)
            for fn in (ours, direct):  # warm-up
                harness.time_per_call(fn, MIN_TIME / 4)
            ours_s, direct_s = harness.interleave(
                lambda: harness.time_per_call(ours, MIN_TIME),
                lambda: harness.time_per_call(direct, MIN_TIME), rounds)
            create_us = harness.median(ours_s) * 1e6
            direct_us = harness.median(direct_s) * 1e6
            config = {"typname": typname, "version": version, "args": sorted(args)}
            harness.emit_result(BENCH, dict(config, metric="us_per_call"), ours=create_us,
                                baseline=direct_us, baseline_name="constructor", unit="us",
                                lower_is_better=True)
            harness.emit_result(BENCH, dict(config, metric="target-2x-constructor"),
                                ours=create_us, baseline=TARGET_FACTOR * direct_us,
                                baseline_name=f"{TARGET_FACTOR:g}x constructor", unit="us",
                                lower_is_better=True)


if __name__ == "__main__":
    harness.rounds_main(__doc__, body)
