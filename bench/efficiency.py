"""Efficiency benchmark: many short cases on 16 local workers, beside multiprocessing and MPI.

Each of CASES cases sleeps d seconds, d in {0.001, 0.01, 0.1}, on WORKERS workers (2 cores:
sleeping cases leave the CPUs to the dispatch overhead, which is what is measured).
Efficiency = (CASES * d / WORKERS) / wall time of the run, 1.0 being perfect.

Contenders, every pool started and warmed up before timing, sampled alternately in this run:
- ours ``RAMExecutor``: 16 servers from a ``LocalAllocator(total_cpus=16)``; the case runner
  travels once per server, chunks of cases per call;
- ours ``LocalExecutor(16)``: worker processes with pipes (issue 2's executor);
- ``multiprocessing.Pool(16).map(..., chunksize=1)``;
- ``mpi4py.futures``: ``mpiexec -n 17 python -m mpi4py.futures`` (16 workers, chunksize 1),
  driven through a pipe from this process (bench/_mpi_pool.py).

Lines: one per (d, ours, baseline) with ``ours`` and ``baseline`` the median efficiencies and
``ratio`` = ours / baseline. Target (issue 5): ours >= 0.80 / 0.95 / 0.99. About 2 minutes.
"""

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import harness

BENCH = 'efficiency'
CASES = 320
WORKERS = 16
DELAYS = (0.001, 0.01, 0.1)
BENCH_DIR = Path(__file__).resolve().parent


def sleeper(case_id, inputs):
    """The case runner: sleep, return the case's outcome."""
    from openmdao_like.execution import CaseOutcome
    time.sleep(inputs['d'])
    return CaseOutcome(case_id, {'d': inputs['d']})


def efficiency(delay, wall):
    return CASES * delay / WORKERS / wall


class Ours:
    """An executor of ours, started once, timed per run of CASES cases."""

    def __init__(self, executor):
        self.executor = executor
        executor.start(sleeper)

    def wait_ready(self):
        deadline = time.monotonic() + 120
        while self.executor.n_workers < WORKERS and time.monotonic() < deadline:
            self.run(0.0, 4 * WORKERS)
            time.sleep(0.2)
        self.run(0.0, 4 * WORKERS)

    def run(self, delay, count=CASES):
        cases = iter([(i, {"d": delay}) for i in range(count)])
        start = time.perf_counter()
        outcomes = list(self.executor.run_cases(cases))
        wall = time.perf_counter() - start
        assert len(outcomes) == count and all(o.status == 'ok' for o in outcomes), outcomes[:3]
        return wall

    def close(self):
        self.executor.shutdown()


class MPIPool:
    """mpi4py.futures with WORKERS workers in a subprocess, driven over its stdin."""

    def __init__(self):
        mpiexec = Path(sys.executable).with_name('mpiexec')
        env = dict(os.environ, PATH=f'{mpiexec.parent}:{os.environ["PATH"]}')
        self.proc = subprocess.Popen(
            [str(mpiexec), '-n', str(WORKERS + 1), sys.executable, '-m', 'mpi4py.futures',
             str(BENCH_DIR / '_mpi_pool.py')], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=env)
        self._ask('warm')

    def _ask(self, line):
        self.proc.stdin.write(line + '\n')
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def run(self, delay):
        return float(self._ask(f'{delay} {CASES}'))

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(60)


def body(rounds):
    from openmdao_like.distributed import RAMExecutor
    from openmdao_like.execution import LocalExecutor
    from openmdao_like.resources import LocalAllocator
    from openmdao_like.resources.manager import ResourceAllocationManager

    harness.emit_machine(BENCH, rounds=rounds, cases=CASES, workers=WORKERS)
    ram = ResourceAllocationManager([LocalAllocator(total_cpus=WORKERS, max_load=None)])
    ours = {'RAMExecutor': Ours(RAMExecutor(max_servers=WORKERS, ram=ram)),
            'LocalExecutor': Ours(LocalExecutor(n_workers=WORKERS))}
    for contender in ours.values():
        contender.wait_ready()
    pool = multiprocessing.Pool(WORKERS)
    pool.map(time.sleep, [0.0] * 4 * WORKERS, chunksize=1)
    mpi = MPIPool()

    def pool_run(delay):
        start = time.perf_counter()
        pool.map(time.sleep, [delay] * CASES, chunksize=1)
        return time.perf_counter() - start

    baselines = {'multiprocessing.Pool': pool_run, 'mpi4py.futures': mpi.run}
    try:
        for delay in DELAYS:
            samples = {name: [] for name in [*ours, *baselines]}
            for _ in range(rounds):
                for name, contender in ours.items():
                    samples[name].append(efficiency(delay, contender.run(delay)))
                for name, run in baselines.items():
                    samples[name].append(efficiency(delay, run(delay)))
            for name in ours:
                for base in baselines:
                    harness.emit_result(BENCH, {'d': delay, 'ours': name, 'metric': 'efficiency'},
                                        harness.median(samples[name]),
                                        harness.median(samples[base]), base, 'fraction',
                                        lower_is_better=False)
    finally:
        for contender in ours.values():
            contender.close()
        pool.close()
        pool.join()
        mpi.close()


if __name__ == '__main__':
    harness.rounds_main(__doc__, body, default=3)
