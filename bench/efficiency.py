"""Efficiency benchmark: many short cases on 16 local workers, beside multiprocessing and MPI;
and the dispatch overhead of empty cases on 2 workers, beside ``multiprocessing.Pool(2).map``.

Each of CASES (320, then 3,200) cases sleeps d seconds, d in {0.001, 0.01, 0.1}, on WORKERS
workers (2 cores: sleeping cases leave the CPUs to the dispatch overhead, which is what is
measured). Efficiency = (CASES * d / WORKERS) / wall time of the run, 1.0 being perfect.

Contenders, every pool started and warmed up before timing, sampled alternately in this run:
- ours ``RAMExecutor``: 16 servers from a ``LocalAllocator(total_cpus=16)``; the case runner
  travels once per server, chunks of cases per call;
- ours ``LocalExecutor(16)``: worker processes with pipes;
- ``RAMExecutor via driver``: the same RAMExecutor handed to a CaseIteratorDriver, run again
  and again (the executor stays warm: its servers are allocated once), timed per driver run;
- ``multiprocessing.Pool(16).map(..., chunksize=1)``;
- ``mpi4py.futures``: ``mpiexec -n 17 python -m mpi4py.futures`` (16 workers, chunksize 1),
  driven through a pipe from this process (bench/_mpi_pool.py).

Empty cases: EMPTY cases ``(case_id, {'x': float})`` -> ``CaseOutcome(case_id, {'y': x})``
through ``LocalExecutor(2)``, beside ``Pool(2).map`` of the same function over the same cases
with its automatic chunksize; metric cases/s.

Lines: one per (cases, d, ours, baseline) with ``ours`` and ``baseline`` the median efficiencies
and ``ratio`` = ours / baseline. Targets (issue 12): ours >= 0.80 / 0.95 / 0.99 at 320 cases
and >= Pool's figure at 3,200; empty cases ours >= 0.9 x Pool. About 6 minutes with 2 rounds.
"""

import multiprocessing
import time
from pathlib import Path

import bench_models
import harness
from _mpi_jobs import mpi4py_futures

BENCH = 'efficiency'
SIZES = (320, 3200)
WORKERS = 16
EMPTY = 200_000
DELAYS = (0.001, 0.01, 0.1)
BENCH_DIR = Path(__file__).resolve().parent


def sleeper(case_id, inputs):
    """The case runner: sleep, return the case's outcome."""
    from openmdao_like.execution import CaseOutcome
    time.sleep(inputs['d'])
    return CaseOutcome(case_id, {'d': inputs['d']})


def efficiency(cases, delay, wall):
    return cases * delay / WORKERS / wall


def empty_case(case_id, inputs):
    """The case runner of the empty cases."""
    from openmdao_like.execution import CaseOutcome
    return CaseOutcome(case_id, {'y': inputs['x']})


def empty_pool_case(case):
    """The same work for ``Pool.map``: one ``(case_id, inputs)`` in, one outcome out."""
    return empty_case(*case)


class Ours:
    """An executor of ours, started once, timed per run."""

    def __init__(self, executor):
        self.executor = executor
        executor.start(sleeper)

    def wait_ready(self):
        deadline = time.monotonic() + 120
        while self.executor.n_workers < WORKERS and time.monotonic() < deadline:
            self.run(0.0, 4 * WORKERS)
            time.sleep(0.2)
        self.run(0.0, 4 * WORKERS)

    def run(self, delay, count):
        cases = iter([(i, {"d": delay}) for i in range(count)])
        start = time.perf_counter()
        outcomes = list(self.executor.run(cases))
        wall = time.perf_counter() - start
        assert len(outcomes) == count and all(o.status == 'ok' for o in outcomes), outcomes[:3]
        return wall

    def close(self):
        self.executor.shutdown()


class ThroughDriver:
    """A warm executor handed to a CaseIteratorDriver: each sample is one driver run."""

    def __init__(self, executor):
        from openmdao_like import Assembly, set_as_top
        from openmdao_like.drivers import CaseIteratorDriver
        self.executor = executor
        self.top = set_as_top(Assembly())
        self.top.add('s', bench_models.Sleeper())
        self.top.add('driver', CaseIteratorDriver(sequential=False, executor=executor))
        self.top.driver.workflow.add('s')

    def run(self, delay, count):
        self.top.driver.cases = [{'s.d': delay}] * count
        start = time.perf_counter()
        self.top.run()
        wall = time.perf_counter() - start
        assert all(c.ok for c in self.top.driver.results)
        return wall

    def wait_ready(self):
        deadline = time.monotonic() + 120
        self.run(0.0, 4 * WORKERS)  # starts the executor: the first server, the rest coming
        while self.executor.n_workers < WORKERS and time.monotonic() < deadline:
            time.sleep(0.2)
        self.run(0.0, 4 * WORKERS)

    def close(self):
        self.executor.shutdown()


def body(rounds):
    from openmdao_like.distributed import RAMExecutor
    from openmdao_like.execution import LocalExecutor
    from openmdao_like.resources import LocalAllocator
    from openmdao_like.resources.manager import ResourceAllocationManager

    harness.emit_machine(BENCH, rounds=rounds, sizes=SIZES, workers=WORKERS, empty=EMPTY)
    ram = ResourceAllocationManager([LocalAllocator(total_cpus=2 * WORKERS, max_load=None)])
    desc = {'job_environment': {'PYTHONPATH': str(BENCH_DIR)}}
    ours = {'RAMExecutor': Ours(RAMExecutor(max_servers=WORKERS, ram=ram)),
            'LocalExecutor': Ours(LocalExecutor(n_workers=WORKERS)),
            'RAMExecutor via driver': ThroughDriver(RAMExecutor(desc, max_servers=WORKERS,
                                                                ram=ram))}
    for contender in ours.values():
        contender.wait_ready()
    pool = multiprocessing.Pool(WORKERS)
    pool.map(time.sleep, [0.0] * 4 * WORKERS, chunksize=1)
    mpi = mpi4py_futures(WORKERS)

    def pool_run(delay, count):
        start = time.perf_counter()
        pool.map(time.sleep, [delay] * count, chunksize=1)
        return time.perf_counter() - start

    baselines = {'multiprocessing.Pool': pool_run, 'mpi4py.futures': mpi.run}
    try:
        for count in SIZES:
            for delay in DELAYS:
                samples = {name: [] for name in [*ours, *baselines]}
                for _ in range(rounds):
                    for name, contender in ours.items():
                        samples[name].append(efficiency(count, delay,
                                                        contender.run(delay, count)))
                    for name, run in baselines.items():
                        samples[name].append(efficiency(count, delay, run(delay, count)))
                for name in ours:
                    for base in baselines:
                        harness.emit_result(
                            BENCH, {'cases': count, 'd': delay, 'ours': name,
                                    'metric': 'efficiency'},
                            harness.median(samples[name]), harness.median(samples[base]), base,
                            'fraction', lower_is_better=False)
    finally:
        for contender in ours.values():
            contender.close()
        pool.close()
        pool.join()
        mpi.close()
        ram.shutdown()
    empty_cases(rounds)


def empty_cases(rounds):
    """Cases/s of empty cases through LocalExecutor(2) beside Pool(2).map."""
    from openmdao_like.execution import LocalExecutor
    cases = [(i, {'x': float(i)}) for i in range(EMPTY)]
    executor = LocalExecutor(n_workers=2)
    executor.start(empty_case)
    pool = multiprocessing.Pool(2)
    try:
        list(executor.run(cases[:1000]))
        pool.map(empty_pool_case, cases[:1000])

        def ours():
            start = time.perf_counter()
            done = sum(1 for _ in executor.run(iter(cases)))
            assert done == EMPTY
            return EMPTY / (time.perf_counter() - start)

        def theirs():
            start = time.perf_counter()
            pool.map(empty_pool_case, cases)
            return EMPTY / (time.perf_counter() - start)

        mine, base = harness.interleave(ours, theirs, rounds)
        harness.emit_result(BENCH, {'cases': EMPTY, 'd': 0.0, 'ours': 'LocalExecutor(2)',
                                    'metric': 'cases/s'},
                            harness.median(mine), harness.median(base), 'multiprocessing.Pool(2)',
                            'cases/s', lower_is_better=False)
    finally:
        executor.shutdown()
        pool.close()
        pool.join()


if __name__ == '__main__':
    harness.rounds_main(__doc__, body, default=2)
