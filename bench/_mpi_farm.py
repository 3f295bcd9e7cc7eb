"""Our side of bench/mpi_farm.py: run under ``mpiexec -n N python bench/_mpi_farm.py``.

Rank 0 starts the MPI case farm's `MPIFarmExecutor` (the other ranks serve cases, one rank per
group) with a case runner that sleeps ``inputs['d']`` seconds, then reads lines ``D CASES`` on
stdin: it runs CASES cases of D seconds through the warm executor and prints the wall time of
the run; ``warm`` runs a few empty cases so that every client has loaded the runner; ``quit``
ends the farm.
"""

import sys
import time

from openmdao_like.distributed.mpi import MPIFarmExecutor, client, roles
from openmdao_like.distributed.mpi.pool import FarmServer
from openmdao_like.execution import CaseOutcome


def sleeper(case_id, inputs):
    """The case runner: sleep, return the case's outcome."""
    time.sleep(inputs['d'])
    return CaseOutcome(case_id, {'d': inputs['d']})


def main():
    role = roles.assign(roles.world(), 1)
    if not role.server:
        client.serve(role)
        return
    FarmServer(role)
    executor = MPIFarmExecutor()
    executor.start(sleeper)
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == 'quit':  # (hydra does not always pass on the end of stdin)
                break
            if words[0] == 'warm':
                while executor.n_workers < role.n_groups:
                    time.sleep(0.1)
                for _ in range(3):
                    list(executor.run(iter([(i, {'d': 0.0}) for i in range(50 * role.n_groups)])))
                print('ready', flush=True)
                continue
            delay, count = float(words[0]), int(words[1])
            cases = iter([(i, {'d': delay}) for i in range(count)])
            start = time.perf_counter()
            done = sum(1 for o in executor.run(cases) if o.status == 'ok')
            wall = time.perf_counter() - start
            assert done == count, f'{done} of {count} cases ok'
            print(wall, flush=True)
    finally:
        executor.shutdown()


if __name__ == '__main__':
    main()
