"""A one-node SLURM cluster for the test session (pytest plugin: fixtures `slurm_cluster` and
`pbs_commands`).

munged (with its own key), slurmctld and slurmd run as direct children of the test process,
every file under one temporary directory, on free ports, so that several sessions can run side
by side. ``SLURM_CONF`` is exported into ``os.environ`` for the session (sbatch, squeue, the
torque wrappers qsub/qstat/qdel all read it) and restored at the end. Jobs still queued or
running when the session ends are cancelled and reported as a failure: a test that leaves a job
behind is a bug. Missing binaries fail the session with the package to install.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

TESTS = Path(__file__).resolve().parents[1]
#: Programs the cluster needs, and the Debian package of each.
DAEMONS = {'munged': 'munge', 'mungekey': 'munge', 'slurmctld': 'slurmctld', 'slurmd': 'slurmd',
           'sbatch': 'slurm-client', 'squeue': 'slurm-client', 'scontrol': 'slurm-client',
           'scancel': 'slurm-client', 'sinfo': 'slurm-client', 'srun': 'slurm-client'}
PBS_COMMANDS = {'qsub': 'slurm-wlm-torque', 'qstat': 'slurm-wlm-torque',
                'qdel': 'slurm-wlm-torque'}
#: Job states in which a job still holds or waits for resources.
ACTIVE_STATES = frozenset({'PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING', 'SUSPENDED',
                           'REQUEUED', 'RESIZING', 'SIGNALING', 'STAGE_OUT', 'STOPPED'})
START_TIMEOUT = 60.0

SLURM_CONF = """\
ClusterName=omltest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
FirstJobId={first_job_id}
SlurmdPort={slurmd_port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/jobcomp.txt
MpiDefault=none
# start batch jobs at submission, and kill cancelled ones 2 s after SIGTERM (not 30 s)
SchedulerParameters=batch_sched_delay=0
KillWait=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName={partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def require(programs: dict[str, str], what: str) -> None:
    """Fail (never skip) when one of ``programs`` is not on PATH, naming its package."""
    missing = [f'{name} (apt-get install {package})' for name, package in programs.items()
               if shutil.which(name) is None]
    if missing:
        pytest.fail(f'{what} needs programs that are not installed: {", ".join(missing)}',
                    pytrace=False)


def _first_job_id() -> int:
    """A random first job id: MPICH names its shared memory under srun after the job and step
    ids, so two clusters (or a stale file of a killed step) must not reuse them."""
    return random.randrange(1000, 60_000_000)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors='replace')[-limit:]
    except OSError:
        return ''


class SlurmCluster:
    """munged + slurmctld + slurmd under ``root``; `start`, then `stop` (idempotent).

    Attributes: ``conf`` (path of slurm.conf), ``partition``, ``jobcomp`` (the job completion
    log: one line per ended job with its JobState), ``env`` (environment for allocated servers:
    tests/ on PYTHONPATH so they can create the test types).
    """

    def __init__(self, root: Path, partition: str = 'debug'):
        self.root = root
        self.partition = partition
        self.conf = str(root / 'slurm.conf')
        self.jobcomp = root / 'jobcomp.txt'
        pythonpath = [str(TESTS)] + ([os.environ['PYTHONPATH']]
                                     if os.environ.get('PYTHONPATH') else [])
        self.env = {'PYTHONPATH': os.pathsep.join(pythonpath)}
        self._procs: dict[str, subprocess.Popen] = {}
        self._saved_conf: str | None = None
        self._exported = False

    # -- lifetime ---------------------------------------------------------------------------------
    def start(self) -> 'SlurmCluster':
        """Start the daemons and wait until the node is idle."""
        for sub in ('state', 'spool'):
            (self.root / sub).mkdir()
        key = self.root / 'munge.key'
        subprocess.run(['mungekey', '-c', '-k', str(key)], check=True, capture_output=True)
        self._spawn('munged', ['munged', '-F', f'--key-file={key}',
                               f'--socket={self.root}/munge.socket',
                               f'--pid-file={self.root}/munged.pid',
                               f'--log-file={self.root}/munged.log',
                               f'--seed-file={self.root}/munged.seed'])
        self._wait(lambda: (self.root / 'munge.socket').exists(), 'munged to create its socket')
        Path(self.conf).write_text(SLURM_CONF.format(root=self.root, partition=self.partition,
                                                     first_job_id=_first_job_id(),
                                                     ctld_port=_free_port(),
                                                     slurmd_port=_free_port()))
        self._saved_conf = os.environ.get('SLURM_CONF')
        os.environ['SLURM_CONF'] = self.conf
        self._exported = True
        self._spawn('slurmctld', ['slurmctld', '-D', '-i', '-f', self.conf])
        self._spawn('slurmd', ['slurmd', '-D', '-N', 'localhost', '-f', self.conf])
        self._wait(lambda: self._sinfo() == 'idle', 'the node to be idle (sinfo)')
        return self

    def _spawn(self, name: str, command: list[str]) -> None:
        with open(self.root / f'{name}.out', 'wb') as out:
            self._procs[name] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL)

    def _sinfo(self) -> str:
        done = subprocess.run(['sinfo', '-h', '-o', '%T'], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ''

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            dead = [name for name, proc in self._procs.items() if proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f'{", ".join(dead)} exited' if dead else f'timed out after {START_TIMEOUT} s'
                logs = '\n'.join(f'--- {path.name}\n{_tail(path)}'
                                 for path in sorted(self.root.glob('*.out')) +
                                 sorted(self.root.glob('*.log')))
                self.stop()
                pytest.fail(f'SLURM test cluster: waiting for {what}: {why}\n{logs}',
                            pytrace=False)
            time.sleep(0.1)

    def stop(self) -> list[str]:
        """Cancel the jobs left in the queue, stop the daemons by PID, remove the directory;
        the jobs that were left (``'ID STATE NAME'``)."""
        left: list[str] = []
        if 'slurmctld' in self._procs and self._procs['slurmctld'].poll() is None:
            left = [f'{job} {state} {name}' for job, state, name in self.active_jobs()]
            if left:
                subprocess.run(['scancel', *[line.split()[0] for line in left]],
                               capture_output=True)
                deadline = time.monotonic() + 30
                while self.active_jobs() and time.monotonic() < deadline:
                    time.sleep(0.2)
        for name in ('slurmd', 'slurmctld', 'munged'):
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._exported:
            if self._saved_conf is None:
                os.environ.pop('SLURM_CONF', None)
            else:
                os.environ['SLURM_CONF'] = self._saved_conf
            self._exported = False
        shutil.rmtree(self.root, ignore_errors=True)
        return left

    # -- looking at jobs --------------------------------------------------------------------------
    def active_jobs(self) -> list[tuple[str, str, str]]:
        """``(job id, state, name)`` of every job still queued or running."""
        done = subprocess.run(['squeue', '-h', '-o', '%i|%T|%j'], capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise RuntimeError(f'squeue failed: {done.stderr.strip()}')
        rows = [tuple(line.split('|', 2)) for line in done.stdout.splitlines() if line.strip()]
        return [row for row in rows if row[1] in ACTIVE_STATES]

    def job_state(self, job_id: str) -> str | None:
        """The job's state from scontrol (ended jobs stay known for MinJobAge, 300 s)."""
        return self.job_detail(job_id, 'JobState')

    def job_detail(self, job_id: str, field: str) -> str | None:
        """One field of ``scontrol show job`` (e.g. NumTasks, TimeLimit, MinMemoryNode)."""
        done = subprocess.run(['scontrol', '-o', 'show', 'job', str(job_id)],
                              capture_output=True, text=True)
        found = re.search(rf'\b{re.escape(field)}=(\S*)', done.stdout)
        return found.group(1) if found else None

    def end_state(self, job_id: str) -> str | None:
        """The JobState the completion log recorded for the job, or None if it has not ended."""
        try:
            lines = self.jobcomp.read_text().splitlines()
        except FileNotFoundError:
            return None
        for line in lines:
            if re.match(rf'JobId={re.escape(str(job_id))}\s', line):
                found = re.search(r'\bJobState=(\S+)', line)
                return found.group(1) if found else None
        return None

    def wait_ended(self, job_id: str, timeout: float = 60.0) -> str:
        """Wait until the job left the queue (completing included); its end state."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.end_state(job_id)
            if state is not None and str(job_id) not in [job for job, _, _ in
                                                         self.active_jobs()]:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f'SLURM job {job_id} did not end within {timeout:g} s '
                                   f'(state {self.job_state(job_id)})')
            time.sleep(0.1)

    def submit(self, *args: str, script: str) -> str:
        """Submit a batch script (text) with sbatch ``args``; its job id."""
        path = self.root / f'script-{time.monotonic_ns()}.sh'
        path.write_text(script)
        done = subprocess.run(['sbatch', '--parsable', *args, str(path)], capture_output=True,
                              text=True, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f'sbatch failed: {done.stderr.strip()}')
        return done.stdout.strip().split(';')[0]


@pytest.fixture(scope='session')
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A one-node SLURM cluster (2 CPUs, partition 'debug') for the whole session."""
    require(DAEMONS, 'the SLURM test cluster')
    root = Path(tempfile.mkdtemp(prefix='oml-slurm-'))
    root.chmod(0o755)  # munged refuses a socket directory others cannot traverse
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        left = cluster.stop()
    if left:
        pytest.fail(f'jobs were left in the SLURM queue (cancelled now): {"; ".join(left)}',
                    pytrace=False)


@pytest.fixture(scope='session')
def pbs_commands(slurm_cluster: SlurmCluster) -> SlurmCluster:
    """The SLURM test cluster reached through the PBS commands of slurm-wlm-torque."""
    require(PBS_COMMANDS, 'the PBS tests')
    return slurm_cluster
