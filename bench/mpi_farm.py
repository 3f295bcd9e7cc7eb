"""MPI case farm benchmark: our `MPIFarmExecutor` beside ``mpi4py.futures`` (chunksize 1) and
the best executor of issue 7 (`LocalExecutor`, worker processes), one run, interleaved.

- **efficiency**: CASES (320, then 3,200) cases sleeping d seconds, d in {0.001, 0.01, 0.1},
  on 16 clients; efficiency = (CASES * d / 16) / wall time of the run (1.0 is perfect; sleeping
  cases leave the 2 CPUs to the dispatch overhead, which is what is measured). Goals (issue
  15): >= 0.90 / 0.98 / 0.995.
- **empty cases**: cases/s of EMPTY cases of d = 0 with 2 and with 16 clients, beside
  mpi4py.futures with as many workers.
- **long cases**: 32 cases of 5 s on 16 clients (one round: Geneva's paper reports ~94 %
  efficiency at >= 5 s evaluations).

Contenders, every pool started and warmed up before timing:
- ours: ``mpiexec -n 17 python bench/_mpi_farm.py`` (rank 0 + 16 client ranks, one rank per
  group), driven over a pipe from this process; the timed run is ``executor.run(cases)`` on
  the warm executor;
- ``mpi4py.futures``: ``mpiexec -n 17 python -m mpi4py.futures bench/_mpi_pool.py`` (16
  workers, ``pool.map(time.sleep, ..., chunksize=1)``);
- ``LocalExecutor(16)``: worker processes of this process (efficiency only).

Lines: one per (metric, configuration, baseline); ``ratio`` = ours / baseline (higher: ours
better). About 8 minutes with 2 rounds.
"""

import time

import harness
from _mpi_jobs import BENCH_DIR, MPIJob, mpi4py_futures

BENCH = 'mpi_farm'
SIZES = (320, 3200)
DELAYS = (0.001, 0.01, 0.1)
CLIENTS = 16
EMPTY = 20_000
LONG = (32, 5.0)


def sleeper(case_id, inputs):
    """LocalExecutor's case runner (the same as bench/_mpi_farm.py's)."""
    from openmdao_like.execution import CaseOutcome
    time.sleep(inputs['d'])
    return CaseOutcome(case_id, {'d': inputs['d']})


def ours(clients):
    """Our farm with ``clients`` client ranks (bench/_mpi_farm.py)."""
    return MPIJob(clients, str(BENCH_DIR / '_mpi_farm.py'))


class Local:
    """LocalExecutor(16), started once, timed per run."""

    def __init__(self):
        from openmdao_like.execution import LocalExecutor
        self.executor = LocalExecutor(n_workers=CLIENTS)
        self.executor.start(sleeper)
        for _ in range(3):
            self.run(0.0, 50 * CLIENTS)

    def run(self, delay, count):
        cases = iter([(i, {'d': delay}) for i in range(count)])
        start = time.perf_counter()
        done = sum(1 for o in self.executor.run(cases) if o.status == 'ok')
        wall = time.perf_counter() - start
        assert done == count
        return wall

    def close(self):
        self.executor.shutdown()


def efficiency(count, delay, wall):
    return count * delay / CLIENTS / wall


def body(rounds):
    harness.emit_machine(BENCH, rounds=rounds, sizes=SIZES, clients=CLIENTS, empty=EMPTY)
    contenders = {'MPIFarmExecutor': ours(CLIENTS), 'mpi4py.futures': mpi4py_futures(CLIENTS),
                  'LocalExecutor(16)': Local()}
    mine = 'MPIFarmExecutor'
    try:
        for count in SIZES:
            for delay in DELAYS:
                samples = {name: [] for name in contenders}
                for _ in range(rounds):
                    for name, contender in contenders.items():
                        samples[name].append(efficiency(count, delay,
                                                        contender.run(delay, count)))
                for base in contenders:
                    if base != mine:
                        harness.emit_result(
                            BENCH, {'cases': count, 'd': delay, 'clients': CLIENTS,
                                    'metric': 'efficiency'},
                            harness.median(samples[mine]), harness.median(samples[base]),
                            base, 'fraction', lower_is_better=False)
        count, delay = LONG
        long = {name: efficiency(count, delay, contenders[name].run(delay, count))
                for name in (mine, 'mpi4py.futures')}
        harness.emit_result(BENCH, {'cases': count, 'd': delay, 'clients': CLIENTS,
                                    'metric': 'efficiency'},
                            long[mine], long['mpi4py.futures'], 'mpi4py.futures', 'fraction',
                            lower_is_better=False)
        empty(contenders[mine], contenders['mpi4py.futures'], CLIENTS, rounds)
    finally:
        for contender in contenders.values():
            contender.close()
    small = {'ours': ours(2), 'futures': mpi4py_futures(2)}
    try:
        empty(small['ours'], small['futures'], 2, rounds)
    finally:
        for contender in small.values():
            contender.close()


def empty(mine, base, clients, rounds):
    """Cases/s of EMPTY empty cases, ours beside mpi4py.futures."""
    samples = {'ours': [], 'base': []}
    for _ in range(rounds):
        samples['ours'].append(EMPTY / mine.run(0.0, EMPTY))
        samples['base'].append(EMPTY / base.run(0.0, EMPTY))
    harness.emit_result(BENCH, {'cases': EMPTY, 'd': 0.0, 'clients': clients,
                                'metric': 'cases/s'},
                        harness.median(samples['ours']), harness.median(samples['base']),
                        'mpi4py.futures', 'cases/s', lower_is_better=False)


if __name__ == '__main__':
    harness.rounds_main(__doc__, body, default=2)
