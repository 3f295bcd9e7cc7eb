"""A stand-in for a solver binary, run by tests/test_external_code.py.

``solver.py IN OUT`` reads "x y" from file IN and writes f(x, y) to file OUT (the paraboloid
times $SOLVER_SCALE, default 1), and reports "cwd=... ppid=..." on standard output.
``solver.py -`` reads "x y" from standard input and writes f(x, y) to standard output.

Misbehaviour on request (environment): SOLVER_FAIL=N writes 30 numbered lines and a reason to
standard error and exits with N; SOLVER_NO_OUTPUT=1 exits 0 without writing OUT;
SOLVER_HANG=PATH starts a child process, writes "own-pid child-pid" to PATH and sleeps.
"""

import os
import subprocess
import sys
import time


def paraboloid(x: float, y: float) -> float:
    return ((x - 3.0) ** 2 + x * y + (y + 4.0) ** 2 - 3.0) * float(os.environ.get('SOLVER_SCALE',
                                                                                  '1'))


def main() -> int:
    if os.environ.get('SOLVER_FAIL'):
        for i in range(30):
            print(f'diagnostic line {i}', file=sys.stderr)
        print('solver: the mesh is inverted, giving up', file=sys.stderr)
        return int(os.environ['SOLVER_FAIL'])
    if os.environ.get('SOLVER_HANG'):
        child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])
        with open(os.environ['SOLVER_HANG'], 'w') as out:
            out.write(f'{os.getpid()} {child.pid}\n')
        time.sleep(600)
        return 0
    if sys.argv[1:] == ['-']:
        x, y = map(float, sys.stdin.read().split())
        print(repr(paraboloid(x, y)))
        return 0
    source, target = sys.argv[1:3]
    with open(source) as src:
        x, y = map(float, src.read().split())
    print(f'cwd={os.getcwd()} ppid={os.getppid()}')
    if not os.environ.get('SOLVER_NO_OUTPUT'):
        with open(target, 'w') as out:
            out.write(repr(paraboloid(x, y)) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
