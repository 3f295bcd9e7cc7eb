"""``openmdao-like run`` on saved models (YAML, pickle, a zip with files), as it runs .py files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / 'examples'
CLI = Path(sys.executable).parent / 'openmdao-like'


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONPATH': str(EXAMPLES)}
    return subprocess.run([str(CLI), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def save_example(module: str, target: Path, **kwargs) -> Path:
    """Save examples/<module>.py's ``top`` to ``target`` in a subprocess (its own directory)."""
    code = f'import {module}; {module}.top.save({str(target)!r}, **{kwargs!r})'
    subprocess.run([sys.executable, '-c', code], cwd=target.parent, check=True, timeout=120,
                   env={**os.environ, 'PYTHONPATH': str(EXAMPLES)})
    return target


def cell(stdout: str, first: str, index: int = 1) -> str:
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0] == first:
            return cells[index]
    raise AssertionError(f'no row {first!r} in:\n{stdout}')


@pytest.mark.parametrize('name', ['sellar.yaml', 'sellar.pkl'])
def test_run_a_saved_model(tmp_path, name):
    model = save_example('sellar', tmp_path / name)
    proc = run('run', str(model), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f'model {model}' in proc.stdout
    assert "driver 'solver' (FixedPointIterator)" in proc.stdout
    assert float(cell(proc.stdout, 'dis1.z1')) == pytest.approx(1.9776, abs=1e-3)


def test_a_hand_edited_yaml_runs_and_set_applies(tmp_path):
    model = save_example('paraboloid', tmp_path / 'para.yaml')
    text = model.read_text().replace('OptimizationConstrained', 'OptimizationUnconstrained', 2)
    text = text.replace("    constraints: [p.x - p.y >= 15.0]\n", '')
    model.write_text(text)
    proc = run('run', str(model), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert float(cell(proc.stdout, 'p.x')) == pytest.approx(6.6667, abs=1e-3)
    proc = run('run', str(model), '--set', 'p.x=60', cwd=tmp_path)
    assert proc.returncode == 2
    assert 'p.x: expected a float in [-50.0, 50.0], got 60' in proc.stderr


def test_run_a_zip_with_files_restores_them_here(tmp_path):
    saved = tmp_path / 'saved'
    saved.mkdir()
    code = ('import os, file_pipeline as fp; fp.top.run(); '
            'fp.top.save("pipeline.zip", fmt="yaml", include_files=True)')
    subprocess.run([sys.executable, '-c', code], cwd=saved, check=True, timeout=120,
                   env={**os.environ, 'PYTHONPATH': str(EXAMPLES)})
    here = tmp_path / 'here'
    here.mkdir()
    proc = run('run', str(saved / 'pipeline.zip'), cwd=here)
    assert proc.returncode == 0, proc.stderr
    assert (here / 'mesher' / 'grid.txt').is_file()
    assert (here / 'post' / 'field.bin').is_file()


def test_version_mismatch_fails_or_warns(tmp_path):
    model = save_example('paraboloid', tmp_path / 'para.yaml')
    model.write_text(model.read_text().replace(
        '- class: paraboloid.Paraboloid\n  distribution: null\n  version: null',
        "- class: paraboloid.Paraboloid\n  distribution: numpy\n  version: '0.0.1'"))
    proc = run('run', str(model), cwd=tmp_path)
    assert proc.returncode == 1
    assert 'VersionMismatchError' in proc.stderr
    assert 'paraboloid.Paraboloid: distribution numpy saved at version 0.0.1' in proc.stderr
    proc = run('run', str(model), '--on-version-mismatch', 'warn', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'numpy saved at version 0.0.1' in proc.stderr  # the warning
    assert float(cell(proc.stdout, 'p.x')) == pytest.approx(7.1667, abs=1e-3)


def test_bad_saved_models(tmp_path):
    proc = run('run', str(tmp_path / 'missing.yaml'), cwd=tmp_path)
    assert proc.returncode == 2 and "no such file: " in proc.stderr
    (tmp_path / 'broken.yaml').write_text('openmdao_like_model: 1\nclasses: [\n')
    proc = run('run', str(tmp_path / 'broken.yaml'), cwd=tmp_path)
    assert proc.returncode == 1
    assert "loading" in proc.stderr and 'malformed YAML at line 3' in proc.stderr
    component = tmp_path / 'comp.yaml'
    subprocess.run([sys.executable, '-c', 'import paraboloid; paraboloid.top.p.save('
                    f'{str(component)!r})'], check=True, timeout=60,
                   env={**os.environ, 'PYTHONPATH': str(EXAMPLES)})
    proc = run('run', str(component), cwd=tmp_path)
    assert proc.returncode == 1 and 'holds a Paraboloid; expected an Assembly' in proc.stderr
