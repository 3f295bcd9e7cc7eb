"""SLURM overhead benchmark: per-case cost through a pilot job, beside one job per case.

A one-node SLURM cluster (2 CPUs) started as the test suite starts it (tests/infra/slurm.py:
munge, slurmctld, slurmd under a temporary directory; run as root). Short cases (the model
doubles its input):
- ours ``SlurmAllocator`` pilot: RAMExecutor with one server, a batch job that registers back
  and then serves every case it is given (CASES cases per sample); it holds one of the node's
  two CPUs, leaving the other to the baseline's jobs;
- baseline ``sbatch --wait`` per case, the way GEMSEO's job-scheduler wrapper runs each
  execution: a job script per case running ``python -c`` (JOB_CASES cases per sample: it is
  slow), submitted and waited for one after the other.

Metric: milliseconds per case (median over rounds), ratio = baseline / ours (> 1: ours is
faster). Also the time until the pilot job served its first cases (queue + start-up), not in
the per-case figure.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

BENCH = 'slurm_overhead'
CASES = 200
JOB_CASES = 5
ROOT = Path(__file__).resolve().parent.parent


def runner(case_id, inputs):
    """The case: double the input."""
    from openmdao_like.execution import CaseOutcome
    return CaseOutcome(case_id, {'y': 2 * inputs['x']})


def per_case(executor):
    cases = iter([(i, {'x': float(i)}) for i in range(CASES)])
    start = time.perf_counter()
    outcomes = list(executor.run_cases(cases))
    wall = time.perf_counter() - start
    assert sorted(o.outputs['y'] for o in outcomes) == [2.0 * i for i in range(CASES)]
    return 1e3 * wall / CASES


def sbatch_per_case(partition, workdir):
    start = time.perf_counter()
    for i in range(JOB_CASES):
        out = os.path.join(workdir, f'case-{i}.out')
        script = os.path.join(workdir, f'case-{i}.sh')
        with open(script, 'w') as f:
            f.write(f'#!/bin/sh\n#SBATCH --partition={partition}\n#SBATCH --output={out}\n'
                    f'{sys.executable} -c "print(2 * {i})"\n')
        subprocess.run(['sbatch', '--wait', '--quiet', script], check=True, cwd=workdir,
                       timeout=120)
        with open(out) as f:
            assert f.read().strip() == str(2 * i)
    return 1e3 * (time.perf_counter() - start) / JOB_CASES


def body(rounds):
    sys.path.insert(0, str(ROOT / 'tests'))
    from infra.slurm import SlurmCluster
    from openmdao_like.distributed import RAMExecutor
    from openmdao_like.resources import ResourceAllocationManager, SlurmAllocator

    harness.emit_machine(BENCH, rounds=rounds, cases=CASES, job_cases=JOB_CASES)
    root = Path(tempfile.mkdtemp(prefix='oml-slurm-bench-'))
    root.chmod(0o755)
    cluster = SlurmCluster(root).start()
    try:
        slurm = SlurmAllocator(partition=cluster.partition, workdir=str(root / 'jobs'))
        executor = RAMExecutor(ram=ResourceAllocationManager([slurm]), max_servers=1)
        t0 = time.perf_counter()
        executor.start(runner)
        per_case(executor)
        ready_s = time.perf_counter() - t0
        try:
            ours, base = harness.interleave(lambda: per_case(executor),
                                            lambda: sbatch_per_case(cluster.partition, root),
                                            rounds)
            harness.emit_result(BENCH, {'cases': CASES, 'servers': 1, 'metric': 'ms_per_case'},
                                harness.median(ours), harness.median(base),
                                'sbatch-wait-per-case', 'ms', lower_is_better=True)
            harness.emit({'bench': BENCH, 'config': {'metric': 'pilot_ready_s'},
                          'ours': round(ready_s, 3)})
        finally:
            executor.shutdown()
            slurm.shutdown()
    finally:
        cluster.stop()
        subprocess.run(['rm', '-rf', str(root)], check=False)


if __name__ == '__main__':
    harness.rounds_main(__doc__, body, default=3)
