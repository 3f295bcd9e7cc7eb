"""mpi4py.futures side of bench/efficiency.py: run under ``mpiexec -n 17 python -m mpi4py.futures``.

Reads lines ``D CASES`` on stdin (rank 0 = the master), maps ``time.sleep(D)`` over CASES
tasks on the 16 workers (chunksize 1) and prints the wall time of the map; ``warm`` maps a
few empty tasks so that every worker has started.
"""

import sys
import time

from mpi4py.futures import MPIPoolExecutor


def main():
    with MPIPoolExecutor() as pool:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == 'quit':  # (hydra does not always pass on the end of stdin)
                break
            if words[0] == 'warm':
                list(pool.map(time.sleep, [0.0] * 200, chunksize=1))
                print('ready', flush=True)
                continue
            delay, count = float(words[0]), int(words[1])
            start = time.perf_counter()
            list(pool.map(time.sleep, [delay] * count, chunksize=1))
            print(time.perf_counter() - start, flush=True)


if __name__ == '__main__':
    main()
