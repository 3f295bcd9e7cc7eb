"""sshd on two loopback addresses for the test session (pytest plugin: fixture `sshd_hosts`).

One ``sshd -D -e`` runs as a direct child of the test process on 127.0.0.2 and 127.0.0.3 (a
free port), with its own host key, a client key and a known_hosts file, all in a temporary
directory, and lets one ordinary user in (``omltest``; ``omltest1``, ... when another session
holds that one: each session locks its user, so it may kill whatever that user runs). Root is
never logged into: its login shell is slow and sshd refuses it anyway.

That user runs this repository's interpreter, which lives below /root (mode 700): the session
adds traverse permission (o+x, nothing else) to exactly the ancestor directories that lack it and
restores their modes when the last session using them ends.

At the end every process the user still runs is killed and reported as a failure: a test that
leaves a server behind is a bug.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
ADDRESSES = ('127.0.0.2', '127.0.0.3')
USER = 'omltest'
#: Where the sessions coordinate (users in use, directory modes changed for them).
LOCKS = Path(tempfile.gettempdir())
MODES_STATE = LOCKS / 'oml-sshd-modes.json'
MODES_LOCK = LOCKS / 'oml-sshd-modes.lock'
START_TIMEOUT = 20.0
#: Seconds the processes of the user get to end by themselves once the tests are done.
SETTLE = 5.0

SSHD_CONFIG = """\
Port {port}
{listen}
HostKey {root}/host_key
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
AllowUsers {user}
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
Subsystem sftp internal-sftp
MaxSessions 100
MaxStartups 100:30:200
LogLevel VERBOSE
"""


@dataclass
class SSHHosts:
    """Where the session's sshd listens and how to log in (what `sshd_hosts` yields)."""

    hosts: list[str]
    port: int
    user: str
    key_filename: str
    known_hosts: str
    python: str
    env: dict[str, str]
    pid: int
    root: Path
    uid: int = field(repr=False, default=-1)

    def user_processes(self, sessions: bool = True) -> list[tuple[int, str]]:
        """``(pid, command line)`` of the live processes of the user (zombies are dead already);
        ``sessions=False`` leaves out sshd's own processes serving open connections."""
        found = []
        for pid, cmdline in _processes_of(self.uid):
            if sessions or not cmdline.startswith('sshd:'):
                found.append((pid, cmdline))
        return found

    def drop_connections(self) -> None:
        """Cut every open SSH connection from the server side (kill sshd's per-connection
        processes); the processes the connections started are left alone."""
        for pid in _descendants(self.pid):
            _kill(pid)


# -- the fixture ----------------------------------------------------------------------------------
@pytest.fixture(scope='session')
def sshd_hosts() -> Iterator[SSHHosts]:
    """sshd on 127.0.0.2 and 127.0.0.3 for the session (see the module docstring)."""
    sshd = shutil.which('sshd') or shutil.which('sshd', path='/usr/sbin:/usr/local/sbin')
    keygen = shutil.which('ssh-keygen')
    if sshd is None or keygen is None:
        pytest.fail('the ssh tests need sshd and ssh-keygen: apt-get install -y '
                    '--no-install-recommends openssh-server openssh-client')
    user_lock, user = _claim_user()
    uid = pwd.getpwnam(user).pw_uid
    stale = _processes_of(uid)
    if stale:  # a crashed earlier session's: nobody else may use this user now
        _kill_all(stale)
    root = Path(tempfile.mkdtemp(prefix='oml-sshd-'))
    proc: subprocess.Popen | None = None
    leftovers: list[tuple[int, str]] = []
    try:
        _open_traverse()
        root.chmod(0o711)  # sshd reads authorized_keys as the user
        for name in ('host_key', 'client_key'):
            _run([keygen, '-q', '-t', 'ed25519', '-N', '', '-C', f'oml-{name}', '-f',
                  str(root / name)])
        shutil.copyfile(root / 'client_key.pub', root / 'authorized_keys')
        (root / 'authorized_keys').chmod(0o644)
        os.makedirs('/run/sshd', mode=0o755, exist_ok=True)
        proc, port = _start_sshd(sshd, root, user)
        host_key = (root / 'host_key.pub').read_text().split()[:2]
        known = root / 'known_hosts'
        known.write_text(''.join(f'[{a}]:{port} {" ".join(host_key)}\n' for a in ADDRESSES))
        hosts = SSHHosts(list(ADDRESSES), port, user, str(root / 'client_key'), str(known),
                         sys.executable, {'PYTHONPATH': str(TESTS)}, proc.pid, root, uid)
        yield hosts
    finally:
        leftovers = _settle(uid)
        _kill_all(_processes_of(uid))
        if proc is not None:
            for pid in _descendants(proc.pid):
                _kill(pid)
            _stop(proc)
        _close_traverse()
        shutil.rmtree(root, ignore_errors=True)
        user_lock.close()
    if leftovers:
        pytest.fail(f'processes of {user} were still running after the ssh tests (killed now):\n'
                    + '\n'.join(f'  {pid}: {cmd}' for pid, cmd in leftovers), pytrace=False)


# -- the user ---------------------------------------------------------------------------------
def _claim_user() -> tuple[IO[str], str]:
    """Lock the first free test user (creating it when missing): the lock file and its name."""
    for i in range(16):
        name = USER if i == 0 else f'{USER}{i}'
        lock = open(LOCKS / f'oml-sshd-user-{name}.lock', 'a')
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            _ensure_user(name)
        except BaseException:
            lock.close()
            raise
        return lock, name
    pytest.fail(f'16 test sessions already hold the users {USER}..{USER}15')


def _ensure_user(name: str) -> None:
    """An ordinary user ``name`` that sshd lets in with a key (no password, not locked)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        _run(['useradd', '-m', '-s', '/bin/sh', name])
    _run(['usermod', '-p', '*', name])  # '!' (locked) makes sshd refuse even keys


# -- directory modes --------------------------------------------------------------------------
def _needed_dirs() -> list[str]:
    """Ancestors of what the user must reach (interpreter, its stdlib, the repository) lacking
    o+x."""
    targets = [os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix),
               str(REPO), str(TESTS)]
    found: list[str] = []
    for target in targets:
        path = Path(target)
        for parent in [*reversed(path.parents), path]:
            if parent.is_dir() and not os.stat(parent).st_mode & stat.S_IXOTH:
                if str(parent) not in found:
                    found.append(str(parent))
    return found


def _modes(update: Callable[[dict], None]) -> None:
    """Apply ``update(state)`` to the shared state of the modes, under its lock."""
    with open(MODES_LOCK, 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.loads(MODES_STATE.read_text())
        except (OSError, ValueError):
            state = {'modes': {}, 'holders': []}
        state['holders'] = [pid for pid in state['holders'] if _alive(pid)]
        update(state)
        if state['holders']:
            MODES_STATE.write_text(json.dumps(state))
        else:
            MODES_STATE.unlink(missing_ok=True)


def _open_traverse() -> None:
    """Give the user traverse permission where it lacks it (first session: remember modes)."""
    def update(state: dict) -> None:
        if not state['holders']:
            state['modes'] = {}
        for path in _needed_dirs():
            mode = stat.S_IMODE(os.stat(path).st_mode)
            state['modes'].setdefault(path, mode)
            os.chmod(path, mode | stat.S_IXOTH)
        state['holders'].append(os.getpid())
    _modes(update)


def _close_traverse() -> None:
    """Restore the modes once no session needs them."""
    def update(state: dict) -> None:
        state['holders'] = [pid for pid in state['holders'] if pid != os.getpid()]
        if not state['holders']:
            for path, mode in state['modes'].items():
                try:
                    os.chmod(path, mode)
                except OSError:
                    pass
    _modes(update)


# -- sshd ---------------------------------------------------------------------------------------
def _start_sshd(sshd: str, root: Path, user: str) -> tuple[subprocess.Popen, int]:
    """sshd listening on both addresses (a free port; retried if someone took it meanwhile)."""
    config = root / 'sshd_config'
    log = root / 'sshd.log'
    for _attempt in range(3):
        port = _free_port()
        listen = '\n'.join(f'ListenAddress {a}:{port}' for a in ADDRESSES)
        config.write_text(SSHD_CONFIG.format(port=port, listen=listen, root=root, user=user))
        _run([sshd, '-t', '-f', str(config)])
        with open(log, 'ab') as err:
            proc = subprocess.Popen([sshd, '-D', '-e', '-f', str(config)],
                                    stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            if all(_listening(a, port) for a in ADDRESSES):
                return proc, port
            time.sleep(0.05)
        _stop(proc)
        if 'Address already in use' not in log.read_text(errors='replace'):
            break
    pytest.fail(f'sshd did not start (config {config}); its log ends with:\n'
                f'{log.read_text(errors="replace")[-2000:]}')


def _free_port() -> int:
    """A port free on every address."""
    while True:
        with socket.socket() as probe:
            probe.bind((ADDRESSES[0], 0))
            port = probe.getsockname()[1]
        try:
            for address in ADDRESSES[1:]:
                with socket.socket() as other:
                    other.bind((address, port))
        except OSError:
            continue
        return port


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1.0):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM, SIGKILL after 5 s; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f'{" ".join(command)} failed ({done.returncode}): '
                    f'{(done.stderr or done.stdout).strip()}')


# -- processes ----------------------------------------------------------------------------------
def _proc_status(pid: str) -> dict[str, str]:
    with open(f'/proc/{pid}/status') as src:
        return dict(line.split(':\t', 1) for line in src.read().splitlines() if ':\t' in line)


def _processes_of(uid: int) -> list[tuple[int, str]]:
    """``(pid, command line)`` of the live (not zombie) processes whose real uid is ``uid``."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            status = _proc_status(entry)
            if int(status['Uid'].split()[0]) != uid or status['State'].startswith('Z'):
                continue
            with open(f'/proc/{entry}/cmdline', 'rb') as src:
                cmdline = src.read().replace(b'\0', b' ').decode(errors='replace').strip()
        except (OSError, KeyError, ValueError):
            continue
        found.append((int(entry), cmdline))
    return found


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            status = _proc_status(entry)
        except (OSError, ValueError):
            continue
        if not status.get('State', 'Z').startswith('Z'):
            children.setdefault(int(status.get('PPid', '0')), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def _settle(uid: int) -> list[tuple[int, str]]:
    """The user's processes still alive after up to `SETTLE` seconds (closing connections and
    stopping servers take a moment)."""
    deadline = time.monotonic() + SETTLE
    left = _processes_of(uid)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _processes_of(uid)
    return left


def _kill_all(processes: list[tuple[int, str]]) -> None:
    for pid, _cmd in processes:
        _kill(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
