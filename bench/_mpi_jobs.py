"""An MPI job driven over a pipe, for the benchmarks that compare MPI pools (bench/efficiency.py,
bench/mpi_farm.py): ``mpiexec -n CLIENTS+1 python COMMAND...`` whose rank 0 answers each line
``D CASES`` with the wall time of CASES cases of D seconds, ``warm`` with ``ready`` once every
worker has started, and ends on ``quit``.
"""

import os
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


class MPIJob:
    """``mpiexec -n clients+1 python *command`` with bench/ on PYTHONPATH, warmed up."""

    def __init__(self, clients, *command):
        mpiexec = Path(sys.executable).with_name('mpiexec')
        env = dict(os.environ, PATH=f'{mpiexec.parent}:{os.environ["PATH"]}',
                   PYTHONPATH=os.pathsep.join(filter(None, [str(BENCH_DIR),
                                                            os.environ.get('PYTHONPATH')])))
        self.proc = subprocess.Popen([str(mpiexec), '-n', str(clients + 1), sys.executable,
                                      *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        answer = self._ask('warm')
        assert answer == 'ready', answer

    def _ask(self, line):
        self.proc.stdin.write(line + '\n')
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def run(self, delay, count):
        """Wall time (s) of ``count`` cases of ``delay`` seconds."""
        return float(self._ask(f'{delay} {count}'))

    def close(self):
        """``quit`` (hydra does not always pass on the end of stdin), then wait."""
        self.proc.stdin.write('quit\n')
        self.proc.stdin.close()
        self.proc.wait(60)


def mpi4py_futures(clients):
    """mpi4py.futures with ``clients`` workers (bench/_mpi_pool.py, chunksize 1)."""
    return MPIJob(clients, '-m', 'mpi4py.futures', str(BENCH_DIR / '_mpi_pool.py'))
