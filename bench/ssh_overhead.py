"""SSH overhead benchmark: per-case cost of cases on servers started over SSH.

Two "hosts" (127.0.0.2 and 127.0.0.3) served by a private sshd, as the test suite starts it
(tests/infra/sshd.py: an ordinary user, key login, known-hosts checked; needs root to create
that user). CASES cases of a trivial model (sleep 0) on two servers:
- ours ``ClusterAllocator``: RAMExecutor over the two SSH hosts, one pilot server per host
  (the model shipped once per server, chunks of cases per call, SSH used only to start them);
- baseline ``LocalAllocator``: the same RAMExecutor with two servers on this machine, started
  without SSH (what the cases would cost if SSH added nothing);
- baseline ``ssh-exec-per-case``: what a script-per-case setup does: one ``exec_command`` per
  case over an already open paramiko connection, running ``python -c`` on the host
  (EXEC_CASES cases, it is slow).

Metric: milliseconds per case (median over rounds), ratio = baseline / ours (> 1: ours is
faster). Also the time to allocate the two SSH servers (not in the per-case figure).
"""

import sys
import time
from pathlib import Path

import harness

BENCH = 'ssh_overhead'
CASES = 200
EXEC_CASES = 20
ROOT = Path(__file__).resolve().parent.parent


def runner(case_id, inputs):
    """The case: nothing but the round trip."""
    from openmdao_like.execution import CaseOutcome
    return CaseOutcome(case_id, {'y': 2 * inputs['x']})


def per_case(executor):
    cases = iter([(i, {'x': float(i)}) for i in range(CASES)])
    start = time.perf_counter()
    outcomes = list(executor.run_cases(cases))
    wall = time.perf_counter() - start
    assert sorted(o.outputs['y'] for o in outcomes) == [2.0 * i for i in range(CASES)]
    return 1e3 * wall / CASES


def started(executor, servers):
    executor.start(runner)
    deadline = time.monotonic() + 120
    while executor.n_workers < servers and time.monotonic() < deadline:
        per_case(executor)
    return executor


def body(rounds):
    sys.path.insert(0, str(ROOT / 'tests'))
    from infra.sshd import sshd_hosts
    from openmdao_like.distributed import RAMExecutor
    from openmdao_like.resources import (ClusterAllocator, LocalAllocator,
                                         ResourceAllocationManager, SSHChannel)

    harness.emit_machine(BENCH, rounds=rounds, cases=CASES)
    fixture = sshd_hosts.__wrapped__()
    hosts = next(fixture)
    try:
        cluster = ClusterAllocator('ssh', [f'{h}:{hosts.port}' for h in hosts.hosts],
                                   user=hosts.user, key_filename=hosts.key_filename,
                                   known_hosts=hosts.known_hosts, python=hosts.python,
                                   method='round-robin')
        t0 = time.perf_counter()
        ssh = started(RAMExecutor(ram=ResourceAllocationManager([cluster]), max_servers=2), 2)
        allocate_s = time.perf_counter() - t0
        local = started(RAMExecutor(ram=ResourceAllocationManager(
            [LocalAllocator(total_cpus=2, max_load=None)]), max_servers=2), 2)
        channel = SSHChannel(hosts.hosts[0], hosts.port, hosts.user, hosts.key_filename,
                             hosts.known_hosts)

        def exec_per_case():
            start = time.perf_counter()
            for i in range(EXEC_CASES):
                done = channel.execute([hosts.python, '-c', f'print(2 * {i})'])
                assert done.stdout.strip() == str(2 * i), done
            return 1e3 * (time.perf_counter() - start) / EXEC_CASES

        try:
            for name, baseline in (('LocalAllocator', lambda: per_case(local)),
                                   ('ssh-exec-per-case', exec_per_case)):
                ours, base = harness.interleave(lambda: per_case(ssh), baseline, rounds)
                harness.emit_result(BENCH, {'cases': CASES, 'servers': 2,
                                            'metric': 'ms_per_case'},
                                    harness.median(ours), harness.median(base), name, 'ms',
                                    lower_is_better=True)
            harness.emit({'bench': BENCH, 'config': {'metric': 'allocate_2_servers_s'},
                          'ours': round(allocate_s, 3)})
        finally:
            ssh.shutdown()
            local.shutdown()
            cluster.shutdown()
            channel.close()
    finally:
        fixture.close()


if __name__ == '__main__':
    harness.rounds_main(__doc__, body, default=5)
